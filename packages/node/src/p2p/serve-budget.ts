/**
 * What a node serves of `/txs/1` (the transactions of a compact proposal) per peer and per
 * interval. The stream limit (2 per connection) bounds only concurrency: a peer asking again the
 * moment an answer ends could make a node send a block's worth (up to 8 MiB) every round trip,
 * forever, from each connection it opens. A peer that rebuilds a proposal needs its missing
 * transactions once per proposal, a few proposals per block interval; past its budget it gets a
 * short answer (a valid one: fewer than asked), and asks another peer.
 *
 * Pure bookkeeping: the caller passes the time. Counted in fixed windows per peer, and over all
 * peers together (peer ids cost nothing to make, so a per-peer budget alone bounds nothing).
 *
 * The overall budget is split, or four fresh ids downloading at the per-peer cap would use it all
 * and every validator's fetch would get a short answer: a share is kept for relaying peers (those
 * that relayed a consensus message this node accepted, as for catch-ups: consensus/driver.ts),
 * and the peers that never did share the rest. Relaying peers may also use what the others left.
 *
 * `/blocks/1` (block sync) has a budget of its own (DEFAULT_BLOCK_SERVE_LIMITS): ids are then the
 * heights asked for (each a disk read), bytes the blocks sent. Without it any peer could ask for
 * 64 blocks again the moment an answer ended, on four streams per connection, without end.
 */

export interface ServeBudgetLimits {
  /** Length of one accounting window, ms. Default 1000. */
  intervalMs: number;
  /** Wire ids one peer may ask for per window (two full requests). Default 8192. */
  maxIdsPerPeer: number;
  /** Ids all peers together may ask for per window. Default: no bound beyond the per-peer one. */
  maxIdsInAll: number;
  /** Bytes of transactions one peer may be sent per window (two largest blocks). Default 16 MiB. */
  maxBytesPerPeer: number;
  /** Bytes of transactions sent to all peers together per window. Default 64 MiB. */
  maxBytesInAll: number;
  /**
   * Of `maxBytesInAll`, what only relaying peers may be sent per window: the peers that never
   * relayed a usable consensus message share the rest. Default 32 MiB (two relaying peers at
   * their cap; an honest rebuild asks for a few missing transactions, far less).
   */
  reservedBytesForRelaying: number;
  /** Peers tracked; past it the oldest window is forgotten (it could only reset a peer's count). */
  maxPeers: number;
}

export const DEFAULT_TX_SERVE_LIMITS: Readonly<ServeBudgetLimits> = {
  intervalMs: 1_000,
  maxIdsPerPeer: 8_192,
  maxIdsInAll: Number.MAX_SAFE_INTEGER,
  maxBytesPerPeer: 16 * 1024 * 1024,
  maxBytesInAll: 64 * 1024 * 1024,
  reservedBytesForRelaying: 32 * 1024 * 1024,
  maxPeers: 4_096,
};

/**
 * Block sync's budget. A node catching up asks one peer for at most 4 ranges of 64 blocks at a
 * time, as fast as it applies them (about a thousand empty blocks a second at best): 4,096 heights
 * a second per peer is above that, and 64 MiB (one full answer) a second per peer, 256 MiB in
 * all, above what a link carries. No overall bound on heights: a range of small blocks costs the
 * server little once served from the stored bytes, while fresh ids asking for tiny blocks could
 * fill such a bound cheaply, and every honest peer syncing from this node would then get empty
 * answers, and penalise it for them (sync.ts). The overall bytes cost the asker as much bandwidth.
 */
export const DEFAULT_BLOCK_SERVE_LIMITS: Readonly<ServeBudgetLimits> = {
  intervalMs: 1_000,
  maxIdsPerPeer: 4_096,
  maxIdsInAll: Number.MAX_SAFE_INTEGER,
  maxBytesPerPeer: 64 * 1024 * 1024,
  maxBytesInAll: 256 * 1024 * 1024,
  reservedBytesForRelaying: 64 * 1024 * 1024,
  maxPeers: 4_096,
};

interface Window {
  start: number;
  ids: number;
  bytes: number;
  /** Of `bytes` (the overall window only): sent to peers that are not relaying peers. */
  unproven: number;
}

export class ServeBudget {
  readonly limits: ServeBudgetLimits;
  private readonly peers = new Map<string, Window>();
  private all: Window = { start: Number.NEGATIVE_INFINITY, ids: 0, bytes: 0, unproven: 0 };

  /** `name`: the option these limits come from, for the errors (txServe, blockServe). */
  constructor(
    limits: Partial<ServeBudgetLimits> = {},
    defaults: Readonly<ServeBudgetLimits> = DEFAULT_TX_SERVE_LIMITS,
    name = 'txServe',
  ) {
    this.limits = { ...defaults, ...limits };
    for (const [k, v] of Object.entries(this.limits))
      if (!Number.isSafeInteger(v) || v <= 0) throw new RangeError(`${name}.${k} must be a positive integer`);
    if (this.limits.reservedBytesForRelaying >= this.limits.maxBytesInAll)
      throw new RangeError(`${name}.reservedBytesForRelaying must be less than ${name}.maxBytesInAll`);
  }

  /**
   * A request naming `ids` ids arrives: false (serve nothing) once the peer asked for more than
   * its ids per window. Counted whether or not the ids are held: asking costs the server a lookup.
   */
  takeIds(peer: string, ids: number, now: number): boolean {
    const w = this.windowOf(peer, now);
    this.renewAll(now);
    if (w.ids + ids > this.limits.maxIdsPerPeer || this.all.ids + ids > this.limits.maxIdsInAll) return false;
    w.ids += ids;
    this.all.ids += ids;
    return true;
  }

  private renewAll(now: number): void {
    if (now - this.all.start >= this.limits.intervalMs)
      this.all = { start: now, ids: 0, bytes: 0, unproven: 0 };
  }

  /**
   * One transaction of `bytes` is about to be sent to `peer`, a relaying peer or not: false (stop
   * the answer) past the peer's budget, the overall one, or (not relaying) the others' share.
   */
  takeBytes(peer: string, bytes: number, now: number, relaying = false): boolean {
    const w = this.windowOf(peer, now);
    this.renewAll(now);
    const othersShare = this.limits.maxBytesInAll - this.limits.reservedBytesForRelaying;
    if (
      w.bytes + bytes > this.limits.maxBytesPerPeer ||
      this.all.bytes + bytes > this.limits.maxBytesInAll ||
      (!relaying && this.all.unproven + bytes > othersShare)
    )
      return false;
    w.bytes += bytes;
    this.all.bytes += bytes;
    if (!relaying) this.all.unproven += bytes;
    return true;
  }

  /**
   * Gives back `bytes` taken at `takenAt` and then not sent (the stream broke or was reset), while
   * the window they were taken in is still current. The budget bounds what is sent: taken as each
   * block is read (so reads stay bounded too) and given back when it never left, or a peer opening
   * streams and resetting them would spend the overall budget for nothing, and honest peers
   * syncing from this node would then get short answers. Only the overall window is given back:
   * the peer's own stays charged, or a peer resetting each stream at once would have this node read
   * its whole height budget's worth of blocks (4,096 a second) for no byte of its byte budget.
   */
  refundBytes(bytes: number, takenAt: number, now: number, relaying = false): void {
    const a = this.all;
    if (a.start <= takenAt && now - a.start < this.limits.intervalMs) {
      a.bytes = Math.max(0, a.bytes - bytes);
      if (!relaying) a.unproven = Math.max(0, a.unproven - bytes);
    }
  }

  /**
   * Gives back `bytes` held for a block that was never read (BlockAnswerBudget.room), to the
   * peer's window and the overall one, each while it is still the one they were taken in: unlike
   * `refundBytes`, nothing was read for them, so the peer is charged only what it was sent.
   */
  releaseBytes(peer: string, bytes: number, takenAt: number, now: number, relaying = false): void {
    const w = this.peers.get(peer);
    if (w && w.start <= takenAt && now - w.start < this.limits.intervalMs)
      w.bytes = Math.max(0, w.bytes - bytes);
    this.refundBytes(bytes, takenAt, now, relaying);
  }

  /** The most one take of bytes can ever be granted (a block past it is never served). */
  mostAtOnce(relaying: boolean): number {
    const all = relaying
      ? this.limits.maxBytesInAll
      : this.limits.maxBytesInAll - this.limits.reservedBytesForRelaying;
    return Math.min(this.limits.maxBytesPerPeer, all);
  }

  /** Milliseconds until both `peer`'s window and the overall one have renewed (at least 1). */
  msUntilRenewal(peer: string, now: number): number {
    const w = this.peers.get(peer);
    const ends = [this.all.start + this.limits.intervalMs, w ? w.start + this.limits.intervalMs : now];
    return Math.max(1, Math.ceil(Math.max(...ends) - now));
  }

  private windowOf(peer: string, now: number): Window {
    let w = this.peers.get(peer);
    if (w && now - w.start < this.limits.intervalMs) return w;
    if (w) this.peers.delete(peer);
    w = { start: now, ids: 0, bytes: 0, unproven: 0 };
    this.peers.set(peer, w);
    if (this.peers.size > this.limits.maxPeers) {
      const oldest = this.peers.keys().next().value;
      if (oldest !== undefined) this.peers.delete(oldest);
    }
    return w;
  }
}

/**
 * The longest a `/blocks/1` answer waits, in all, for the serve budget to renew before it ends
 * short. Well inside the requester's 10 s deadline (what is left of it carries the blocks),
 * and the line sync.ts draws: an answer short of what its peer claims that comes sooner than this
 * cannot be the budget's doing, so it is a lie; a later one may be an honest, busy server.
 */
export const BLOCK_SERVE_MAX_WAIT_MS = 6_000;

export interface BlockAnswerOptions {
  peer: string;
  /** Heights asked for: at most that many blocks are taken. */
  asked: number;
  /** The response cap and the largest block frame (libp2p.ts). */
  capBytes: number;
  maxBlockBytes: number;
  relaying: boolean;
  now: () => number;
  sleep: (ms: number) => Promise<void>;
  /** Default BLOCK_SERVE_MAX_WAIT_MS. */
  maxWaitMs?: number;
}

/**
 * One `/blocks/1` answer's use of the block serve budget. Past the budget (not the cap) it waits
 * for the window to renew, up to `maxWaitMs` in all, instead of ending the answer at once: a
 * per-peer budget of one full answer a second, and a syncer with four ranges in flight, made an
 * honest server answer three of them short within the second, and the honest syncer then dropped,
 * penalised and distrusted it (sync.ts reads a quick short answer as a lie). Blocks are taken as
 * they are read and given back (`unsent`) when they were not sent.
 */
export class BlockAnswerBudget {
  private total = 0;
  private waited = 0;
  private readonly taken: { bytes: number; at: number }[] = [];
  /** Room held (`room`) for the block about to be read. */
  private held: { bytes: number; at: number } | null = null;
  private readonly maxWaitMs: number;

  constructor(
    private readonly budget: ServeBudget,
    private readonly opts: BlockAnswerOptions,
  ) {
    this.maxWaitMs = opts.maxWaitMs ?? BLOCK_SERVE_MAX_WAIT_MS;
  }

  /** Blocks taken so far. */
  get count(): number {
    return this.taken.length;
  }

  /** Whether the heights asked for may be looked up at all (waiting for the budget as above). */
  ids(): Promise<boolean> {
    return this.wait(() => this.budget.takeIds(this.opts.peer, this.opts.asked, this.opts.now()));
  }

  /**
   * Before the next block is read: waits for room for the largest block the answer may still carry
   * (its stored size is not known without reading it) and holds it; false ends the answer unread.
   * Waiting after the read (in `take`) held the block, up to 9 MiB, for up to the longest wait:
   * a peer opening streams while the budget was spent pinned that much memory per stream.
   */
  async room(): Promise<boolean> {
    const { opts } = this;
    if (this.held) return true;
    const bytes = Math.min(
      opts.maxBlockBytes,
      opts.capBytes - this.total,
      this.budget.mostAtOnce(opts.relaying),
    );
    if (this.taken.length >= opts.asked || bytes <= 0) return false;
    let at = 0;
    const ok = await this.wait(() => {
      at = opts.now();
      return this.budget.takeBytes(opts.peer, bytes, at, opts.relaying);
    });
    if (ok) this.held = { bytes, at };
    return ok;
  }

  /**
   * A block of `bytes` was read: true to send it, false to end the answer (all asked blocks taken,
   * an oversized block, the cap reached, or the budget still spent after the longest wait). Taken
   * from the room held for it (`room`), what it did not need given back, or else waited for now.
   */
  async take(bytes: number): Promise<boolean> {
    const { opts } = this;
    if (this.taken.length >= opts.asked || bytes > opts.maxBlockBytes || this.total + bytes > opts.capBytes)
      return false;
    const held = this.release(bytes);
    if (held) {
      this.total += bytes;
      this.taken.push({ bytes, at: held.at });
      return true;
    }
    let at = 0;
    const ok = await this.wait(() => {
      at = opts.now();
      return this.budget.takeBytes(opts.peer, bytes, at, opts.relaying);
    });
    if (!ok) return false;
    this.total += bytes;
    this.taken.push({ bytes, at });
    return true;
  }

  /**
   * Gives back what the held room has beyond `used` bytes (all of it by default); returns the
   * room when it covered `used`, else null (and nothing is held any more).
   */
  private release(used = 0): { bytes: number; at: number } | null {
    const held = this.held;
    if (!held) return null;
    this.held = null;
    const fits = used <= held.bytes;
    const back = fits ? held.bytes - used : held.bytes;
    if (back > 0)
      this.budget.releaseBytes(this.opts.peer, back, held.at, this.opts.now(), this.opts.relaying);
    return fits ? held : null;
  }

  /**
   * The answer ended after `sent` blocks left: what was taken of the others is given back, and
   * any room still held for a block never read.
   */
  unsent(sent: number): void {
    this.release();
    for (const t of this.taken.slice(sent))
      this.budget.refundBytes(t.bytes, t.at, this.opts.now(), this.opts.relaying);
    this.taken.length = Math.min(this.taken.length, sent);
  }

  private async wait(attempt: () => boolean): Promise<boolean> {
    for (;;) {
      if (attempt()) return true;
      if (this.waited >= this.maxWaitMs) return false;
      // Never past the longest wait in all, so an answer ends short only at that wait, exactly.
      const ms = Math.min(
        this.budget.msUntilRenewal(this.opts.peer, this.opts.now()),
        this.maxWaitMs - this.waited,
      );
      await this.opts.sleep(ms);
      this.waited += ms;
    }
  }
}
