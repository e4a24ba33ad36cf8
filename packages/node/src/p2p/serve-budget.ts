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
    if (w.bytes + bytes > this.limits.maxBytesPerPeer || !this.allHasRoom(bytes, now, relaying)) return false;
    w.bytes += bytes;
    this.chargeAll(bytes, now, relaying);
    return true;
  }

  /**
   * Whether the overall window (and, for a peer that is not relaying, the others' share) has room
   * for `bytes` now; charges nothing (`chargeAll` does, once they are sent).
   */
  allHasRoom(bytes: number, now: number, relaying = false): boolean {
    this.renewAll(now);
    const othersShare = this.limits.maxBytesInAll - this.limits.reservedBytesForRelaying;
    return (
      this.all.bytes + bytes <= this.limits.maxBytesInAll &&
      (relaying || this.all.unproven + bytes <= othersShare)
    );
  }

  /**
   * Charges the overall window `bytes` that were sent. `/blocks/1` charges a block here only once
   * its frame was written to the stream (BlockAnswerBudget.sent), after the room check made when it
   * was read: charged at the read, a peer that never read its answers (their frames then wait,
   * unsent, up to the request deadline) spent the non-relaying share, three ids at their per-peer
   * cap, without downloading a byte, and every honest syncer's answer waited for it.
   */
  chargeAll(bytes: number, now: number, relaying = false): void {
    this.renewAll(now);
    this.all.bytes += bytes;
    if (!relaying) this.all.unproven += bytes;
  }

  /**
   * Holds `bytes` of `peer`'s own window (not the overall one) for a block about to be read
   * (BlockAnswerBudget.room): false past the peer's budget. Only the peer's window: the overall
   * one is charged the block's real size once sent (`chargeAll`), or each read in flight
   * would hold the largest block's worth of it, and a few sybil streams asking for tiny blocks
   * (about 21 reads of 9 MiB) would fill the non-relaying share without receiving a byte.
   */
  takePeerBytes(peer: string, bytes: number, now: number): boolean {
    const w = this.windowOf(peer, now);
    if (w.bytes + bytes > this.limits.maxBytesPerPeer) return false;
    w.bytes += bytes;
    return true;
  }

  /** Gives back `bytes` held by `takePeerBytes` at `takenAt` and not used, while that window lasts. */
  releasePeerBytes(peer: string, bytes: number, takenAt: number, now: number): void {
    const w = this.peers.get(peer);
    if (w && w.start <= takenAt && now - w.start < this.limits.intervalMs)
      w.bytes = Math.max(0, w.bytes - bytes);
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

/**
 * Block reads in flight for `/blocks/1` answers, over all peers: the bound on the memory those
 * answers pin while they wait (a block read and then refused by the overall window waits, up to
 * the longest wait, holding it and its slot), separate from the bandwidth windows. Holding room
 * in the overall window for the largest block before each read bounded that memory too, but
 * charged 9 MiB of the window per read whatever the block's size: some 21 reads in flight from a
 * few sybil streams asking for tiny blocks filled the non-relaying share, and every honest
 * answer then waited, unserved, until it ended short. A slot is held for the read, a window
 * wait, and until the block's frame was written (BlockAnswerBudget.sent), so that blocks a peer
 * does not read are bounded too; a peer holds at most `perPeer` of them, so that one peer's
 * streams cannot hold them all; waiters are served first come, first served (among those whose peer is under its
 * share), woken as a read finishes, not at a window's renewal.
 */
export class BlockReadSlots {
  private busy = 0;
  /** Of `busy`: held by peers that are not relaying peers. */
  private unproven = 0;
  private readonly byPeer = new Map<string, number>();
  private readonly waiters: Waiter[] = [];
  /** Slots whose block is being written, with how far each write has drained (`writing`). */
  private readonly writes = new Set<SlotWrite>();
  /** Counts `takenOver` (reclaimStalled adds one per slot it hands over). */
  private takenOverCount = 0;

  /**
   * `reservedForRelaying`: slots only relaying peers may hold, as the windows keep a share for
   * them: a read waiting for the non-relaying share of the overall window to renew keeps its slot,
   * so peers downloading that share could otherwise hold every slot and hold up validators' reads.
   */
  constructor(
    readonly slots = DEFAULT_BLOCK_READ_SLOTS,
    readonly perPeer = DEFAULT_BLOCK_READ_SLOTS_PER_PEER,
    readonly reservedForRelaying = DEFAULT_BLOCK_READ_SLOTS_FOR_RELAYING,
    readonly stallMs = DEFAULT_BLOCK_WRITE_STALL_MS,
  ) {
    for (const v of [slots, perPeer, stallMs])
      if (!Number.isSafeInteger(v) || v <= 0)
        throw new RangeError('block read slots must be positive integers');
    if (!Number.isSafeInteger(reservedForRelaying) || reservedForRelaying < 0 || reservedForRelaying >= slots)
      throw new RangeError('block read slots kept for relaying peers must be fewer than the slots');
  }

  /**
   * Stalled writes whose slot went to a waiter so far (`reclaimStalled`). A waiter is also served
   * when a write ends and frees its slot; only this count tells the two apart, so that a test (or
   * an operator) can see that slots were held by stalled writes and taken over, not given back.
   */
  get takenOver(): number {
    return this.takenOverCount;
  }

  /** Called at each takeover, after the count moved (the node's Prometheus counter); must not throw. */
  onTakenOver: (() => void) | null = null;

  /** Slots held now (by `peer`, when given). */
  held(peer?: string): number {
    return peer === undefined ? this.busy : (this.byPeer.get(peer) ?? 0);
  }

  /**
   * A slot for `peer`: true once held; false when none came before `timeout()` settled (then
   * nothing is held; it is called only when the slot is not granted at once, so a read that finds
   * a slot free leaves no timer behind). The caller gives it back with `release`.
   *
   * `watch` (a clock): while it waits, the waiter takes over a slot whose write has stalled
   * (`reclaimStalled`), checked at each sampling step (`stallMs` / 8) while it waits.
   */
  acquire(
    peer: string,
    timeout: () => Promise<void>,
    relaying = false,
    watch?: { now: () => number; sleep: (ms: number) => Promise<void> },
  ): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      const waiter: Waiter = {
        peer,
        relaying,
        done: false,
        grant: () => {
          waiter.done = true;
          resolve(true);
        },
      };
      this.waiters.push(waiter);
      this.pump();
      if (waiter.done) return;
      void timeout().then(() => {
        if (waiter.done) return;
        waiter.done = true;
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        resolve(false);
      });
      if (watch)
        void (async () => {
          while (!waiter.done) {
            const ms = this.reclaimStalled(waiter, watch.now());
            if (waiter.done) return;
            await watch.sleep(ms);
          }
        })();
    });
  }

  /**
   * A block holding a slot of `peer` is being written: `drained()` says how many bytes of the
   * stream's writes have left its write buffer so far, `reclaim()` gives the slot up (it aborts the
   * stream: the slot is no longer the caller's to release). `done()` once the write ended.
   */
  writing(
    peer: string,
    relaying: boolean,
    drained: () => number,
    now: number,
    reclaim: () => void,
  ): { done: () => void } {
    const w: SlotWrite = {
      peer,
      relaying,
      drained,
      samples: [{ at: now, drained: drained() }],
      since: now,
      reclaim,
    };
    this.writes.add(w);
    return { done: () => this.writes.delete(w) };
  }

  /**
   * Attack review: 3 sybil ids x 2 streams that never read held the 6 slots open to peers that
   * never relayed, each until its request deadline (10 s), renewably, and a fresh node catching
   * up was not served. A waiter blocked by the others' slots (not by its own share) takes over
   * the slot of another peer's write that is stalled (`stalled`), the longest held first: that
   * write's stream is aborted, a failed stream as any other (no penalty). Returns the ms until
   * the next check.
   */
  private reclaimStalled(waiter: Waiter, now: number): number {
    if ((this.byPeer.get(waiter.peer) ?? 0) >= this.perPeer) return this.sampleStep();
    const openUnproven = this.unproven < this.slots - this.reservedForRelaying;
    let oldest: SlotWrite | undefined;
    let next = this.sampleStep();
    for (const w of this.writes) {
      // Sampled whichever waiter looks, so that every write's history is kept while any waits.
      const left = this.stalled(w, now);
      // Only a slot whose release lets this waiter in: one that never relayed, held back by the
      // share of such peers being full, can take over only a slot of that share.
      if (!waiter.relaying && !openUnproven && w.relaying) continue;
      // Never the waiter's own peer's: its write stalls on the same link the waiter would use (a
      // syncer's busy link), and taking it over aborted that syncer's answer for its own next one
      // (the syncer then dropped this server for the failed request).
      if (w.peer === waiter.peer) continue;
      if (left > 0) next = Math.min(next, left);
      else if (!oldest || w.since < oldest.since) oldest = w;
    }
    if (!oldest) return Math.max(1, next);
    this.writes.delete(oldest);
    this.takenOverCount++;
    // The slot passes to the waiter directly: first come, first served would hand it to whichever
    // waiter is first, the attacker's own next stream as likely as not.
    this.take(oldest.peer, oldest.relaying, -1);
    const i = this.waiters.indexOf(waiter);
    if (i >= 0) this.waiters.splice(i, 1);
    this.take(waiter.peer, waiter.relaying, 1);
    waiter.grant();
    oldest.reclaim();
    this.onTakenOver?.();
    return this.sampleStep();
  }

  /**
   * 0 when `w` is stalled at `now`: it has held its slot at least `stallMs` and drained less than
   * DEFAULT_BLOCK_WRITE_MIN_DRAIN_PER_SECOND x `stallMs` in the last `stallMs`; else the ms until
   * it could be (at most the sampling step). Records a sample of its drained bytes.
   *
   * Over a window of seconds, not the last second (review of the takeover): yamux grants window
   * back only once a whole data frame arrived (a frame is as large as the window, 256 KiB at
   * first), so an honest reader on a link under about 256 KiB/s drains in 256 KiB steps more than
   * 1 s apart, and with a 1 s rule any waiter, an attacker's fresh id included, aborted it (its
   * syncer then dropped this server). Over 4 s, a link of r bytes/s with frames of F drains at
   * least r x 4 s - F in any 4 s: 256 KiB from 128 KiB/s with 256 KiB frames. Not "no byte" (an
   * earlier review): a peer granting its window 64 bytes every 300 ms drained a byte each time
   * and held its slots to the deadline as if it never read; it must now receive 64 KiB a second
   * per slot. A window, not the average since the write began, so that bytes drained early buy
   * no stall later.
   *
   * Samples are taken only when a waiter looks (no timer runs without one): the bytes drained in
   * the window are read from the latest sample at or before its start, so a sparse history can
   * only count more than drained in the window, never less (an honest writer is never judged on
   * too short a span; a stalled one may be kept longer: when the first waiter comes after a quiet
   * spell, the write is measured from its first sample until one is `stallMs` old, up to a whole
   * window and a step). One sample per step
   * of `stallMs` / 8, and only the latest before the window is kept: at most 10 per write.
   */
  private stalled(w: SlotWrite, now: number): number {
    const step = this.sampleStep();
    const drained = w.drained();
    const latest = w.samples[w.samples.length - 1];
    if (!latest || now - latest.at >= step) w.samples.push({ at: now, drained });
    const start = now - this.stallMs;
    while (w.samples.length > 1 && (w.samples[1] as Sample).at <= start) w.samples.shift();
    if (now - w.since < this.stallMs) return Math.min(step, w.since + this.stallMs - now);
    // At or before the window's start: the write's first sample (at `since`) or a later one.
    const from = w.samples[0] as Sample;
    const needed = (DEFAULT_BLOCK_WRITE_MIN_DRAIN_PER_SECOND * this.stallMs) / 1_000;
    if (drained - from.drained < needed) return 0;
    const after = w.samples[1];
    return Math.max(1, Math.min(step, after ? after.at - start : step));
  }

  /** How often waiters sample the writes: `stallMs` / 8 (500 ms by default). */
  private sampleStep(): number {
    return Math.max(1, Math.floor(this.stallMs / 8));
  }

  private take(peer: string, relaying: boolean, by: 1 | -1): void {
    const n = (this.byPeer.get(peer) ?? 0) + by;
    if (n <= 0) this.byPeer.delete(peer);
    else this.byPeer.set(peer, n);
    this.busy += by;
    if (!relaying) this.unproven = Math.max(0, this.unproven + by);
  }

  /** Gives back a slot `peer` holds (`relaying`: as it was acquired). */
  release(peer: string, relaying = false): void {
    if ((this.byPeer.get(peer) ?? 0) <= 0) return;
    this.take(peer, relaying, -1);
    this.pump();
  }

  /**
   * Grants free slots to the waiters, in order, skipping those whose peer holds its share, and
   * non-relaying peers' once they hold all but the relaying peers' slots.
   */
  private pump(): void {
    for (let i = 0; i < this.waiters.length && this.busy < this.slots; ) {
      const w = this.waiters[i] as Waiter;
      const n = this.byPeer.get(w.peer) ?? 0;
      if (n >= this.perPeer || (!w.relaying && this.unproven >= this.slots - this.reservedForRelaying)) {
        i++;
        continue;
      }
      this.waiters.splice(i, 1);
      this.take(w.peer, w.relaying, 1);
      w.grant();
    }
  }
}

interface Waiter {
  peer: string;
  relaying: boolean;
  done: boolean;
  grant: () => void;
}

interface Sample {
  at: number;
  drained: number;
}

interface SlotWrite {
  peer: string;
  relaying: boolean;
  drained: () => number;
  /** `drained()` as waiters saw it, oldest first (BlockReadSlots.stalled). */
  samples: Sample[];
  /** When the write began (its slot is never taken over sooner than `stallMs` after). */
  since: number;
  reclaim: () => void;
}

/**
 * The window over which a block's write must keep draining to keep its slot from a waiter that
 * needs it (BlockReadSlots.stalled), and the least it holds a slot: a peer that never reads holds
 * one about this long (its first window, drained at once, counts only within it; up to a sampling
 * step more), not the request deadline. Not 1 s: yamux grants window a whole received frame at
 * a time (frames as large as the window, 256 KiB at first), so an honest reader on a link under
 * about 256 KiB/s drains in steps more than a second apart, and a 1 s window had any waiter, an
 * attacker's fresh id included, abort it (its syncer then dropped this server for the failed
 * request). Over 4 s a reader at 128 KiB/s or more keeps its slot (docs/consensus.md).
 */
export const DEFAULT_BLOCK_WRITE_STALL_MS = 4_000;

/**
 * What a block's write must drain per second, on average over the stall window, to keep its slot
 * (256 KiB in 4 s): an honest muxer grants window a received frame at a time, 256 KiB at first; a
 * peer granting a few bytes at a time must receive this much a second per slot to hold it
 * (384 KiB a second for the 6 slots open to peers that never relayed), where any byte did before.
 */
export const DEFAULT_BLOCK_WRITE_MIN_DRAIN_PER_SECOND = 64 * 1024;

/** Block reads in flight over all peers: at most 8 x 9 MiB read and not yet written. */
export const DEFAULT_BLOCK_READ_SLOTS = 8;
/** Of those, one peer's: an honest syncer's four ranges still read two at a time. */
export const DEFAULT_BLOCK_READ_SLOTS_PER_PEER = 2;
/** Of those, what only relaying peers may hold (BlockReadSlots). */
export const DEFAULT_BLOCK_READ_SLOTS_FOR_RELAYING = 2;

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
  /** The node's block read slots (libp2p.ts); without them, `room` holds only the peer's window. */
  slots?: BlockReadSlots;
  /**
   * Whether the answer can no longer be sent (its stream was reset or aborted): the answer then
   * ends, reading and waiting no more. Without it a request cancelled by its syncer (sync.ts
   * cancels those a pass leaves in flight) kept its server reading the whole range and waiting
   * up to the longest wait, holding its read slots, for an answer no one would read.
   */
  gone?: () => boolean;
  /**
   * Bytes of this answer's stream writes that have left its write buffer so far, and how to abort
   * the stream: with both, a block's write that drains too little over the slots' stall window gives its
   * slot to a waiter that needs it, aborting this answer (BlockReadSlots.reclaimStalled), and this
   * answer's own slot waits take over such stalled slots. Without them, neither.
   */
  drained?: () => number;
  abort?: () => void;
}

/**
 * One `/blocks/1` answer's use of the block serve budget. Past the budget (not the cap) it waits
 * for the window to renew, up to `maxWaitMs` in all, instead of ending the answer at once: a
 * per-peer budget of one full answer a second, and a syncer with four ranges in flight, made an
 * honest server answer three of them short within the second, and the honest syncer then dropped,
 * penalised and distrusted it (sync.ts reads a quick short answer as a lie).
 *
 * Before each read (`room`): room for the largest block the answer may still carry is held in the
 * peer's own window (waited for holding nothing: a peer past its budget pins no memory), then a
 * read slot (BlockReadSlots). After the read (`take`): the peer keeps the block's real size of its
 * hold, the overall window is waited for until it has room for that size (holding the block and
 * the slot: only the slots bound that memory). Once the block's frame was written to the stream
 * (`sent`), the overall window is charged and the slot given back (a slot bounds a block from its
 * read to its write): a peer that does not read its
 * answers holds its own window, never the one all peers share (ServeBudget.chargeAll).
 */
export class BlockAnswerBudget {
  private total = 0;
  private waited = 0;
  private taken = 0;
  /**
   * Room held in the peer's window (`room`) for the block about to be read, and its read slot.
   * `bytes`: what may still be given back to the peer's window (0 once the block used it).
   */
  private held: { bytes: number; at: number; slot: boolean } | null = null;
  /**
   * Whether the read slot of a block taken (`take`) is still held until its frame is written
   * (`sent`): given back when the block was read, a stuck send held the block, up to 9 MiB, under
   * no slot nor window, and a few sybil streams per connection that never read pinned some 7 GiB
   * (4 streams x 200 connections x 9 MiB). Held until written, the slots bound that memory too.
   */
  private sending = false;
  /** The write of the block in `sending`, as the slots see it (`BlockReadSlots.writing`). */
  private write: { done: () => void } | null = null;
  private readonly maxWaitMs: number;

  constructor(
    private readonly budget: ServeBudget,
    private readonly opts: BlockAnswerOptions,
  ) {
    this.maxWaitMs = opts.maxWaitMs ?? BLOCK_SERVE_MAX_WAIT_MS;
  }

  /** Blocks taken so far. */
  get count(): number {
    return this.taken;
  }

  /** Whether the heights asked for may be looked up at all (waiting for the budget as above). */
  ids(): Promise<boolean> {
    return this.wait(() => this.budget.takeIds(this.opts.peer, this.opts.asked, this.opts.now()));
  }

  /**
   * Before the next block is read: holds room in the peer's window for the largest block the
   * answer may still carry (its stored size is not known without reading it), then a read slot,
   * each waited for up to what is left of the longest wait; false ends the answer unread.
   * Waiting after the read with no bound on reads in flight held the block, up to 9 MiB, for up to
   * the longest wait: a peer opening streams while the budget was spent pinned that much per stream.
   */
  async room(): Promise<boolean> {
    const { opts } = this;
    if (this.held) return true;
    // A block taken and not reported sent (a handler that keeps its blocks and has them sent after
    // it returns): its slot goes back before the next read, or its own reads would wait on it.
    this.releaseSending();
    const bytes = Math.min(
      opts.maxBlockBytes,
      opts.capBytes - this.total,
      this.budget.limits.maxBytesPerPeer,
    );
    if (this.taken >= opts.asked || bytes <= 0 || opts.gone?.()) return false;
    let at = 0;
    const ok = await this.wait(() => {
      at = opts.now();
      return this.budget.takePeerBytes(opts.peer, bytes, at);
    });
    if (!ok) return false;
    this.held = { bytes, at, slot: false };
    const slots = opts.slots;
    if (!slots) return true;
    const left = this.maxWaitMs - this.waited;
    const start = opts.now();
    // With no time left, only a slot free now (the timeout settles at once otherwise).
    const got = await slots.acquire(
      opts.peer,
      () => (left > 0 ? opts.sleep(left) : Promise.resolve()),
      opts.relaying,
      opts.drained && opts.abort ? { now: opts.now, sleep: opts.sleep } : undefined,
    );
    this.waited += Math.max(0, opts.now() - start);
    if (got) this.held.slot = true;
    if (!got || opts.gone?.()) {
      this.release();
      return false;
    }
    return true;
  }

  /**
   * A block of `bytes` was read: true to send it, false to end the answer (all asked blocks taken,
   * an oversized block, the cap reached, or the budget still spent after the longest wait). The
   * peer's share is taken from the room held for it (`room`), what it did not need given back;
   * then the overall window must have room for it, waited for holding the read slot. It is charged
   * only once the block is sent (`sent`). Blocks that passed this check and are still being sent
   * may take the window past its bound, by at most a block per answer being sent: the price of
   * never charging what a peer does not read.
   */
  async take(bytes: number): Promise<boolean> {
    const { opts } = this;
    try {
      if (this.taken >= opts.asked || bytes > opts.maxBlockBytes || this.total + bytes > opts.capBytes)
        return false;
      // Read with room held: the peer keeps the real size of it; else (a handler that did not
      // ask for room) the peer's window is charged now.
      const fits = this.held !== null && bytes <= this.held.bytes;
      if (fits) this.shrink(bytes);
      let charged = fits;
      const ok = await this.wait(() => {
        const now = opts.now();
        if (!charged) charged = this.budget.takePeerBytes(opts.peer, bytes, now);
        return charged && this.budget.allHasRoom(bytes, now, opts.relaying);
      });
      if (!ok) return false;
      this.total += bytes;
      this.taken++;
      // Its slot stays held until the block is written (`sent`): see `sending`.
      if (this.held?.slot) {
        this.held.slot = false;
        this.sending = true;
        const { drained, abort, slots } = opts;
        if (drained && abort && slots)
          this.write = slots.writing(opts.peer, opts.relaying, drained, opts.now(), () => {
            // The slot went to a waiter: it is no longer this answer's to give back.
            this.sending = false;
            this.write = null;
            abort();
          });
      }
      return true;
    } finally {
      // Any room the block did not use goes back, and its slot if it was refused.
      this.release();
    }
  }

  /**
   * A taken block of `bytes` was written to the stream (its frame handed, piece by piece, to the
   * muxer: libp2p.ts, write-gate.ts): the
   * overall window is charged it now, not when it was read (ServeBudget.chargeAll).
   */
  sent(bytes: number): void {
    this.budget.chargeAll(bytes, this.opts.now(), this.opts.relaying);
    this.releaseSending();
  }

  private releaseSending(): void {
    if (!this.sending) return;
    this.sending = false;
    this.write?.done();
    this.write = null;
    this.opts.slots?.release(this.opts.peer, this.opts.relaying);
  }

  /** The held room, cut to the `used` bytes the block read needs (they stay charged to the peer). */
  private shrink(used: number): void {
    const held = this.held;
    if (!held || used > held.bytes) return;
    this.budget.releasePeerBytes(this.opts.peer, held.bytes - used, held.at, this.opts.now());
    held.bytes = 0;
  }

  /** Gives back the read slot and the room of the peer's window still held (none after `shrink`). */
  private release(): void {
    const held = this.held;
    if (!held) return;
    this.held = null;
    if (held.bytes > 0) this.budget.releasePeerBytes(this.opts.peer, held.bytes, held.at, this.opts.now());
    if (held.slot) this.opts.slots?.release(this.opts.peer, this.opts.relaying);
  }

  /**
   * The answer ended: any slot and room still held for a block never read go back. Blocks taken
   * and never sent were never charged to the overall window; the peer's own stays charged for
   * them (it made this node read them: a peer resetting each stream at once would otherwise have
   * it read its whole height budget, 4,096 blocks a second, for no byte of its byte budget).
   */
  end(): void {
    this.release();
    this.releaseSending();
  }

  private async wait(attempt: () => boolean): Promise<boolean> {
    for (;;) {
      if (this.opts.gone?.()) return false;
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
