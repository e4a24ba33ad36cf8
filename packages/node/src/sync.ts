/**
 * Block sync (PROTOCOL.md §7): a node that is behind downloads committed blocks from its peers and
 * applies them in order before it joins consensus. Finality is immediate (§6), so there are no
 * forks to choose between: the best peer is simply the one with the highest committed height, and
 * any block that does not apply proves the peer that served it wrong.
 */
import { blockCodec, decode } from '@unc/core';
import { BlockWriteError, type Chain } from './chain.js';
import { type Cancel, type Clock, monotonicNow, systemClock } from './clock.js';
import { type Logger, silentLogger } from './log.js';
import { BLOCK_SERVE_MAX_WAIT_MS } from './p2p/serve-budget.js';
import {
  type BlockTake,
  type ChainStatus,
  MAX_BLOCKS_PER_REQUEST,
  type Network,
  type NetworkHandlers,
} from './p2p/types.js';

/**
 * Thrown by `SyncChain.applyBlock` when a block proves that this node's history and the one a peer
 * serves cannot both be the chain (a commit certificate of the head's validators on a block that
 * does not extend the head, or a block that conflicts with the operator's trusted checkpoint):
 * the sync ends with it, no later block is applied, and no peer is asked to settle it.
 */
export class SyncConflictError extends Error {
  override readonly name = 'SyncConflictError';
  /** The peer that served the block (set by syncChain): the operator's lead on the other history. */
  peer?: string;
  /**
   * `final`: the sync stops. Otherwise (a trusted checkpoint ahead will tell the histories apart)
   * only the peer serving the block is set aside from this sync, unblamed, and the sync goes on.
   */
  constructor(
    message: string,
    readonly final = true,
  ) {
    super(message);
  }
}

/** What sync needs from the node's chain. */
export interface SyncChain {
  /** Height of the latest committed block. */
  height(): bigint;
  /** Verifies and commits the next block (encoded with its commit); throws if it is invalid. */
  applyBlock(encodedBlock: Uint8Array): Promise<void>;
  /**
   * `following`, already fetched, is the block after `current`, which is about to be applied: its
   * signature checks can start on the verify pool while `current` executes (optional; only ever
   * a head start, never a verdict).
   */
  prepare?(following: Uint8Array, current: Uint8Array): void;
  /**
   * A block `peer` served ended in a SyncConflictError (two certified histories): the peer to ask
   * for the other history's commit at the fork, which may prove double signing (optional).
   */
  conflictFrom?(peer: string, err: SyncConflictError): void;
}

export interface SyncProgress {
  height: bigint;
  target: bigint;
  /** Blocks applied per second since this sync started. */
  blocksPerSecond: number;
  /** Seconds left at that rate; null until a rate is known. */
  etaSeconds: number | null;
}

export interface SyncOptions {
  network: Network;
  chain: SyncChain;
  onProgress?: (progress: SyncProgress) => void;
  /** Range requests in flight at once, spread over peers. Default 4. */
  parallel?: number;
  /** Heights per request, at most MAX_BLOCKS_PER_REQUEST (the default). */
  batchSize?: number;
  /** Minimum milliseconds between progress reports (the last one is always sent). Default 250. */
  progressIntervalMs?: number;
  signal?: AbortSignal;
  logger?: Logger;
  /** For the progress rate and the serve waits, read monotonic (clock.ts `monotonicNow`); `systemClock` by default. */
  clock?: Clock;
  /**
   * Peers known to have claimed heights they did not serve (sync-reactor.ts): asked, and their
   * claims counted, only when no other peer is ahead, or when those ahead were all dropped.
   */
  distrusted?: (peer: string) => boolean;
  /**
   * The most a range answer may carry (the network's response cap, DEFAULT_MAX_BLOCKS_RESPONSE_BYTES)
   * and the largest block: an answer short of its range is honest only when the next block would
   * not have fit under the cap. Defaults: 64 MiB and 9 MiB (libp2p.ts).
   */
  responseCapBytes?: number;
  maxBlockBytes?: number;
  /**
   * How long a server may wait for its serve budget before it ends an answer short
   * (BLOCK_SERVE_MAX_WAIT_MS, serve-budget.ts): a short answer that came sooner, on `clock`, is a
   * lie; a later one is not held against the peer beyond this sync.
   */
  serveWaitMs?: number;
  /**
   * How long the range the pipeline waits on may go without a block (since it was asked, or since
   * its last block) before another peer is asked for it too (a hedged request). Default
   * HEDGE_AFTER_MS.
   */
  hedgeMs?: number;
}

/**
 * A range whose peer sent no block for this long is asked of another peer as well, the first
 * valid answer taken and the other request cancelled. Peer ids cost nothing: a fresh id claiming a
 * high height and answering late (or never) held the pipeline's head for a full serve wait
 * (BLOCK_SERVE_MAX_WAIT_MS) or request deadline each, ten of them a syncing node's first minute.
 * An honest server's blocks come a round trip and a disk read apart, or after a budget wait
 * (serve-budget.ts): then the hedge is what saves the wait.
 */
export const HEDGE_AFTER_MS = 1_000;

/**
 * The slowest an answer may come, in bytes a second, before its range is hedged though it never
 * went silent for HEDGE_AFTER_MS: a peer that sent a tiny block every 0.9 s was never hedged, and
 * held the pipeline's head to the request deadline (10 s) for a few hundred bytes. 128 KiB/s
 * (1 Mbit/s) a request: a syncer with its `parallel` + 1 requests sharing a 6 Mbit/s downlink is not
 * hedged for slowness; a trickle above it costs its peer that upload for each second it holds the
 * head.
 */
export const HEDGE_MIN_BYTES_PER_SECOND = 128 * 1024;

export interface SyncResult {
  /** Our height when sync stopped. */
  height: bigint;
  /** The best height a usable peer reported; `height >= target` means we caught up. */
  target: bigint;
  /** Blocks applied by this call. */
  applied: number;
  /** Peers penalised or dropped during this sync (bad blocks, failed requests, empty answers). */
  excluded: string[];
  /**
   * Peers dropped from this sync only for being beaten by a hedge (they were answering, just
   * later than another peer), not in `excluded`: a faster node claiming one height more wins
   * every tie, and the honest peers it beat were then, as `excluded`, ignored by the stall probe
   * and asked last for ten minutes (sync-reactor.ts). Not held against them past this sync.
   */
  slower: string[];
  /**
   * Of `excluded`, those that served less of a range than they claimed to hold (empty or short
   * answers that came quickly, blocks that do not apply): their status claims are not to be
   * trusted for a while. Not those whose request failed or whose short answer came late.
   */
  disproved: string[];
}

/** `at`: when the answer arrived, on the sync's clock (it may be read later, in range order). */
type Answer = { blocks: Uint8Array[]; at: number } | { error: Error };

interface Slot {
  from: bigint;
  to: bigint;
  peer: string;
  /** When it was asked, on the sync's clock. */
  asked: number;
  answer: Promise<Answer>;
  /**
   * When a hedge may be asked for its range, on the clock: `hedgeMs` after the latest bytes of
   * the answer arrived (after it was asked, before any), or sooner when the answer so far is
   * slower than HEDGE_MIN_BYTES_PER_SECOND (allowing `hedgeMs` for the first bytes).
   */
  due: () => number;
  /** Whether the answer (or a failure) arrived. */
  done: () => boolean;
  /**
   * Whether, now, the answer is one an honest server gives: asked less than serveWaitMs ago, some
   * bytes came, and they came no slower than HEDGE_MIN_BYTES_PER_SECOND up to the latest.
   */
  fair: () => boolean;
  /** `fair()` when the latest hedge for its range went out (race): whether a loss is `slower`. */
  fairWhenHedged?: boolean;
  /** Abandons the request: another peer answered the range first. Blames no one. */
  cancel: () => void;
}

/** Asks every connected peer for its status (in parallel); peers that do not answer are left out. */
export async function peerStatuses(network: Network): Promise<Map<string, ChainStatus>> {
  const peers = network.peers().map((p) => p.id);
  const answers = await Promise.allSettled(peers.map((p) => network.requestStatus(p)));
  const out = new Map<string, ChainStatus>();
  answers.forEach((a, i) => {
    if (a.status === 'fulfilled') out.set(peers[i]!, a.value);
  });
  return out;
}

/**
 * The highest committed height among peers and the peer that has it, or null without peers.
 * `refresh: false` uses the statuses from the last exchange instead of asking again.
 */
export async function bestPeerHeight(
  network: Network,
  opts: { refresh?: boolean } = {},
): Promise<{ peer: string; height: bigint } | null> {
  const statuses =
    opts.refresh === false
      ? new Map(network.peers().flatMap((p) => (p.status ? [[p.id, p.status] as const] : [])))
      : await peerStatuses(network);
  let best: { peer: string; height: bigint } | null = null;
  for (const [peer, s] of statuses) if (!best || s.height > best.height) best = { peer, height: s.height };
  return best;
}

/**
 * For the consensus driver: true when some peer is more than `k` blocks ahead of `localHeight`,
 * i.e. the node should sync before taking part in consensus. Within `k` it can catch up through
 * the normal proposal/commit flow.
 */
export async function isBehind(
  network: Network,
  localHeight: bigint,
  k: bigint | number,
  opts: { refresh?: boolean } = {},
): Promise<boolean> {
  const best = await bestPeerHeight(network, opts);
  return best !== null && best.height - localHeight > BigInt(k);
}

/**
 * Downloads and applies blocks until the node reaches the best height its peers report (asking
 * again once there, since the chain moves on while we sync). Ranges are fetched from several peers
 * at once but applied strictly in order. A peer whose block does not apply is penalised and not
 * asked again in this sync; its range is fetched from another. Resolves when caught up, or when
 * no usable peer is ahead of us any more (`height < target` then says sync did not complete).
 * Rejects with the signal's reason when `signal` aborts, and with whatever `applyBlock` throws
 * only through the peer that served the block (never as a rejection of the whole sync).
 */
export async function syncChain(opts: SyncOptions): Promise<SyncResult> {
  const { network, chain, signal } = opts;
  const parallel = Math.max(1, opts.parallel ?? 4);
  const batch = BigInt(
    Math.min(MAX_BLOCKS_PER_REQUEST, Math.max(1, opts.batchSize ?? MAX_BLOCKS_PER_REQUEST)),
  );
  const log = (opts.logger ?? silentLogger).child('sync');
  const progressEvery = opts.progressIntervalMs ?? 250;
  const excluded = new Set<string>();
  const disproved = new Set<string>();
  /** Of `excluded`, those dropped only for losing a hedge race (SyncResult.slower). */
  const slower = new Set<string>();
  const responseCap = opts.responseCapBytes ?? 64 * 1024 * 1024;
  const maxBlockBytes = opts.maxBlockBytes ?? 9 * 1024 * 1024;
  const clock = opts.clock ?? systemClock;
  const serveWaitMs = opts.serveWaitMs ?? BLOCK_SERVE_MAX_WAIT_MS;
  const hedgeMs = opts.hedgeMs ?? HEDGE_AFTER_MS;
  const started = monotonicNow(clock);
  let applied = 0;
  let target = chain.height();
  let lastReport = Number.NEGATIVE_INFINITY;

  const report = (force: boolean) => {
    if (!opts.onProgress) return;
    const now = monotonicNow(clock);
    if (!force && now - lastReport < progressEvery) return;
    lastReport = now;
    const seconds = (now - started) / 1000;
    const blocksPerSecond = seconds > 0 ? applied / seconds : 0;
    const left = target > chain.height() ? Number(target - chain.height()) : 0;
    opts.onProgress({
      height: chain.height(),
      target,
      blocksPerSecond,
      etaSeconds: blocksPerSecond > 0 ? left / blocksPerSecond : left === 0 ? 0 : null,
    });
  };

  const drop = (peer: string, why: string, blame: boolean, disprove = blame, beaten = false) => {
    if (beaten && !excluded.has(peer)) slower.add(peer);
    else if (!beaten) slower.delete(peer);
    excluded.add(peer);
    if (disprove) disproved.add(peer);
    if (blame) network.penalize(peer, why);
    log.info('peer dropped from sync', { peer, why, penalized: blame });
  };

  const ask = (peer: string, from: bigint, to: bigint): Slot => {
    const abandon = new AbortController();
    const asked = monotonicNow(clock);
    let progress = asked;
    let bytes = 0;
    let done = false;
    const answer = network
      .requestBlocks(peer, from, to, {
        signal: abandon.signal,
        // Progress counted in bytes, not blocks: a peer sending 9 MiB blocks on a modest link
        // (a second or more each) was hedged on every range, though its bytes kept coming. No
        // onBlock: a block arrives with the bytes that end it, which onBytes marked already.
        onBytes: (n) => {
          progress = monotonicNow(clock);
          bytes += n;
        },
      })
      .then(
        (blocks): Answer => {
          done = true;
          return { blocks, at: monotonicNow(clock) };
        },
        (error: Error): Answer => {
          done = true;
          return { error };
        },
      );
    return {
      from,
      to,
      peer,
      asked,
      answer,
      due: () => Math.min(progress + hedgeMs, asked + hedgeMs + (bytes * 1000) / HEDGE_MIN_BYTES_PER_SECOND),
      done: () => done,
      fair: () =>
        monotonicNow(clock) - asked < serveWaitMs &&
        bytes > 0 &&
        (bytes * 1000) / HEDGE_MIN_BYTES_PER_SECOND >= progress - asked,
      cancel: () => abandon.abort(),
    };
  };

  /**
   * The first of `racing` to answer, or 'hedge' once `at` (on the clock) came first. The timer is
   * set only when a hedge is possible (`at` not null).
   */
  const first = (racing: Slot[], at: number | null): Promise<{ slot: Slot; answer: Answer } | 'hedge'> =>
    new Promise((resolve) => {
      let stop: Cancel = () => {};
      if (at !== null) stop = clock.schedule(Math.max(0, at - monotonicNow(clock)), () => resolve('hedge'));
      for (const slot of racing)
        slot.answer.then((answer) => {
          stop();
          resolve({ slot, answer });
        });
    });

  /**
   * Applies what `slot`'s peer answered: 'full' (the whole range), 'capped' (as much as fits
   * under the response cap), 'bad' (the peer is dropped) or 'moved' (something else committed).
   */
  const consume = async (slot: Slot, answer: Answer): Promise<'full' | 'capped' | 'bad' | 'moved'> => {
    if ('error' in answer) {
      // The network layer has already scored a bad or failed answer; here we only stop asking
      // in this sync. Not distrusted: a timeout or a broken stream is also what an honest peer
      // on a slow link gives (a liar gains no more by it than a deadline per sync).
      drop(slot.peer, `request ${slot.from}…${slot.to} failed: ${answer.error.message}`, false, false);
      return 'bad';
    }
    // A server past its serve budget waits for it to renew, up to serveWaitMs, before it ends
    // an answer short (serve-budget.ts BlockAnswerBudget): a short answer that came sooner is a
    // lie, a later one may be an honest, busy server, only dropped from this sync (as a timeout).
    const late = answer.at - slot.asked >= serveWaitMs;
    if (answer.blocks.length === 0) {
      if (late) drop(slot.peer, `served no blocks of ${slot.from}…${slot.to}, late`, false, false);
      else drop(slot.peer, `served no blocks of ${slot.from}…${slot.to} though it claims them`, true);
      return 'bad';
    }
    let moved = false;
    let failed = false;
    for (const [i, block] of answer.blocks.entries()) {
      const height = slot.from + BigInt(i);
      if (chain.height() !== height - 1n) {
        // Something else (e.g. consensus) committed meanwhile; restart from the new head.
        moved = true;
        break;
      }
      const following = answer.blocks[i + 1];
      if (following) chain.prepare?.(following, block);
      try {
        await chain.applyBlock(block);
      } catch (err) {
        // Our disk failed, not the block: no peer is to blame, and no later block can be
        // written either (chain.ts BlockWriteError), so the sync ends with the failure.
        if (err instanceof BlockWriteError) throw err;
        // Two certified histories: choosing between them (first come, most peers) is what a
        // long-range attacker counts on; the sync stops and the operator decides.
        if (err instanceof SyncConflictError) {
          drop(slot.peer, `block ${height} conflicts with this node's chain: ${err.message}`, false, false);
          err.peer ??= slot.peer;
          chain.conflictFrom?.(slot.peer, err);
          if (err.final) throw err;
          failed = true;
          break;
        }
        drop(slot.peer, `block ${height} does not apply: ${(err as Error).message}`, true);
        failed = true;
        break;
      }
      applied++;
      report(false);
    }
    if (moved) return 'moved';
    if (failed) return 'bad';
    const got = answer.blocks.length;
    if (BigInt(got) < slot.to - slot.from + 1n) {
      // A range never runs past the height its peer claimed, so an honest peer serves all of
      // it, or as much as fits under the response cap (the next block would not have fitted).
      // Any other short answer is a peer claiming blocks it does not serve: one that answered
      // each range with one block, just before the deadline, held sync (and the node, out of
      // consensus) to a block per deadline. Dropped and penalised like an empty answer.
      const bytes = answer.blocks.reduce((n, b) => n + b.byteLength, 0);
      if (bytes + maxBlockBytes > responseCap) {
        served.add(slot.peer);
        return 'capped';
      }
      if (late) drop(slot.peer, `served ${got} blocks of ${slot.from}…${slot.to}, late`, false, false);
      else drop(slot.peer, `served ${got} blocks of ${slot.from}…${slot.to} though it claims them`, true);
      return 'bad';
    }
    served.add(slot.peer);
    return 'full';
  };

  // The peer the next range goes to, counted over the whole sync, not per pass: restarted at 0
  // each pass, the peer claiming the highest height got the first range of every pass, and one
  // that answered each with a single block (a short answer starts a new pass) held sync to a
  // block per request deadline, for as long as it liked.
  let turn = 0;
  /** Peers that served a range in full (or up to the response cap) in this sync. */
  const served = new Set<string>();
  let sawBelieved = false;
  for (;;) {
    signal?.throwIfAborted();
    const statuses = await peerStatuses(network);
    const unexcluded = [...statuses]
      .filter(([peer]) => !excluded.has(peer))
      .sort((a, b) => (b[1].height > a[1].height ? 1 : b[1].height < a[1].height ? -1 : 0));
    // Peers that a recent sync caught claiming what they did not serve are asked only once no
    // other peer is ahead (they may have been honest and merely short of their serve budget).
    const believed = unexcluded.filter(([peer, s]) => !opts.distrusted?.(peer) && s.height > chain.height());
    // Decided once a sync: when believed peers were ahead, the distrusted ones are not asked once
    // we reached the believed peers' heights (a liar would then hold every sync's end). But when
    // the believed peers were dropped short of what they claimed, the distrusted ones are asked
    // (one range each until one serves a range in full: pick), or one honest server distrusted
    // for a short answer in some earlier sync would be lost for this one.
    if (believed.length > 0) sawBelieved = true;
    const lostClaim = [...statuses]
      .filter(([peer]) => excluded.has(peer) && !opts.distrusted?.(peer))
      .reduce((top, [, s]) => (s.height > top ? s.height : top), 0n);
    const usable =
      !sawBelieved || (believed.length === 0 && lostClaim > chain.height()) ? unexcluded : believed;
    // Only peers still trusted count: a peer that claimed a height and failed to serve it does not
    // keep the target (and the progress bar) pinned to its claim.
    target =
      usable.length > 0 && usable[0]![1].height > chain.height() ? usable[0]![1].height : chain.height();
    const ahead = usable.filter(([, s]) => s.height > chain.height());
    if (ahead.length === 0) break;
    log.info('syncing', { height: chain.height(), target, peers: ahead.length });
    report(true);

    // One pass: a pipeline of ranges from our height up, applied in order. A range a peer failed
    // to serve (or served in part) is asked again, what is missing of it, of another peer at the
    // head of the pipeline, so the ranges already asked of others stay in flight and each failing
    // peer costs the requests it had (restarting the pass dropped them unread: sybils that each
    // answered late were asked again and again). The pass ends when nobody left can serve the
    // gap, or when something else committed meanwhile; the outer loop then starts afresh.
    const pending: Slot[] = [];
    let next = chain.height() + 1n;
    /**
     * A range from `from` (up to `to`, or as far as the peer claims) for the next able peer in
     * turn, preferring one with no request in flight: a slow peer is not handed more while others
     * wait idle, and a peer that fails holds at most the requests it already had.
     */
    const pick = (from: bigint, to: bigint, gap: boolean): Slot | null => {
      const able = ahead.filter(([peer, s]) => !excluded.has(peer) && s.height >= from);
      const idle = able.filter(([peer]) => !pending.some((p) => p.peer === peer));
      // Ahead of the gap, a peer gets a second range in flight only once it served one in full:
      // a peer claiming heights no one else has would otherwise get every range past the others'
      // claims at once, each answered late and short.
      // A gap holds the whole pipeline: a peer that already served a range in full comes first.
      const proven = idle.filter(([peer]) => served.has(peer));
      const some =
        gap && proven.length > 0
          ? proven
          : idle.length > 0
            ? idle
            : gap
              ? able
              : able.filter(([peer]) => served.has(peer));
      if (some.length === 0) return null;
      const [peer, s] = some[turn++ % some.length]!;
      return ask(peer, from, to < s.height ? to : s.height);
    };
    /**
     * Who else may be asked for `head`'s range: an able peer not already racing for it (nor
     * `tried` for it), one that served a range in full and has nothing in flight first, then any
     * idle one, then any.
     */
    const hedgePeer = (head: Slot, racing: Slot[], tried: Set<string>): [string, ChainStatus] | null => {
      const able = ahead.filter(
        ([peer, s]) =>
          !excluded.has(peer) &&
          !tried.has(peer) &&
          s.height >= head.from &&
          !racing.some((r) => r.peer === peer),
      );
      const rank = ([peer]: [string, ChainStatus]) =>
        (pending.some((p) => p.peer === peer) ? 2 : 0) + (served.has(peer) ? 0 : 1);
      let best: [string, ChainStatus] | null = null;
      for (const p of able) if (!best || rank(p) < rank(best)) best = p;
      return best;
    };
    /**
     * The answer to the range the pipeline waits on (`head`). While no byte of it came for
     * hedgeMs (since it was asked, or since the last bytes: a peer must not escape the hedge by
     * sending one block and stalling), or while it comes slower than HEDGE_MIN_BYTES_PER_SECOND
     * (nor by trickling tiny blocks: Slot.due), another peer is asked for it too (one at a time: at
     * most two requests per range, `parallel` + 1 in all); a hedge that is due a hedge in turn is
     * cancelled, and the next peer asked, so each silent peer costs about hedgeMs, not a serve
     * wait (and is dropped from the sync unless it served a range in full in it). The first answer
     * is taken; `rival` is the other request, still in flight.
     */
    const race = async (head: Slot): Promise<{ slot: Slot; answer: Answer; rival?: Slot }> => {
      let hedge: Slot | undefined;
      /** Hedges given up on for this range (silent for hedgeMs): not asked for it again. */
      const tried = new Set<string>();
      /** When every request racing for the range is due a hedge. */
      const due = (racing: Slot[]) => Math.max(...racing.map((r) => r.due()));
      for (;;) {
        const racing = hedge ? [head, hedge] : [head];
        // Chosen before the wait, taken after it: nothing hedgePeer reads changes meanwhile (the
        // pipeline waits on this race, and only the race drops peers while it runs).
        const other = racing.some((r) => r.done()) ? null : hedgePeer(head, racing, tried);
        const got = await first(racing, other ? due(racing) : null);
        if (got !== 'hedge') return { ...got, rival: racing.find((r) => r !== got.slot) };
        // A block came meanwhile: the timer is set again from it. (The timer is set only with
        // `other`: never null here.)
        if (!other || monotonicNow(clock) < due(racing)) continue;
        if (hedge) {
          // Not blamed (a busy server waits for its budget before a block), and not asked for
          // this range again. Dropped from this sync, as a late answer is, only when it served
          // no range in full yet (a fresh id answering late, or never): one that did is a
          // server, busy now. Dropping those too (and so, in sync-reactor.ts, ignoring their
          // claims for ten minutes) made a node whose servers were all busy drop the peers it
          // hedged to, one a second, though each would have served the range in full.
          hedge.cancel();
          tried.add(hedge.peer);
          if (!served.has(hedge.peer))
            drop(hedge.peer, `sent no block of ${hedge.from}…${hedge.to} for ${hedgeMs} ms`, false, false);
        }
        const [peer, s] = other;
        head.fairWhenHedged = head.fair();
        hedge = ask(peer, head.from, head.to < s.height ? head.to : s.height);
      }
    };
    const fill = () => {
      while (pending.length < parallel && next <= target) {
        const slot = pick(next, next + batch - 1n, false);
        if (!slot) return;
        pending.push(slot);
        next = slot.to + 1n;
      }
    };
    try {
      fill();
      for (;;) {
        signal?.throwIfAborted();
        // What a peer failed to serve (or served in part) is a gap before the ranges still in
        // flight: asked again of another peer, at the head of the pipeline.
        const want = chain.height() + 1n;
        const gapEnd = (pending[0]?.from ?? next) - 1n;
        if (want <= gapEnd) {
          const slot = pick(want, gapEnd, true);
          if (!slot) break;
          pending.unshift(slot);
        }
        const head = pending.shift();
        if (!head) break;
        const { slot, answer, rival } = await race(head);
        let outcome: Awaited<ReturnType<typeof consume>>;
        try {
          outcome = await consume(slot, answer);
        } catch (err) {
          rival?.cancel();
          throw err;
        }
        if (rival) {
          if (outcome === 'bad' && chain.height() === rival.from - 1n) {
            // The other request for the range carries on, at the head of the pipeline.
            pending.unshift(rival);
          } else {
            rival.cancel();
            // The peer asked first was beaten by one asked hedgeMs later: slower, not a liar. Not
            // penalised nor distrusted, only dropped from this sync (or each slow sybil would
            // cost every range a hedge delay), and reported as `slower`, not `excluded`: a faster
            // attacker claiming one height more would otherwise get the honest peers it beat
            // ignored for ten minutes (sync-reactor.ts).
            // Only when it was hedged within serveWaitMs of the ask after sending at an honest
            // rate: one that trickled just above that rate, then went silent (hedged late, ~10 s),
            // or sent nothing, would else lose the race on purpose and hold the pipeline's head
            // that long in every sync, never excluded. Those are excluded, as before (asked last
            // for ten minutes by sync-reactor.ts).
            if (outcome !== 'bad' && outcome !== 'moved' && rival === head)
              drop(
                head.peer,
                `slower than ${slot.peer} to serve ${head.from}…${head.to}`,
                false,
                false,
                head.fairWhenHedged === true,
              );
          }
        }
        if (outcome === 'moved') break;
        if (outcome === 'full') fill();
      }
    } finally {
      // The ranges still in flight when the pass ends (something else committed, no one left to
      // serve the gap) or the sync fails or is aborted: cancelled, or each held a stream of its
      // server (and the budget wait or read slot behind it) to the request deadline for nothing.
      for (const p of pending) p.cancel();
    }
  }
  report(true);
  const height = chain.height();
  if (height < target) log.warn('sync stopped before the target', { height, target });
  else log.info('sync complete', { height, applied, seconds: (monotonicNow(clock) - started) / 1000 });
  return {
    height,
    target,
    applied,
    excluded: [...excluded].filter((p) => !slower.has(p)),
    slower: [...slower],
    disproved: [...disproved],
  };
}

/** Sync's view of a `Chain`: decode each block and let the chain verify and commit it. */
export function chainSyncTarget(chain: Chain): SyncChain {
  return {
    height: () => chain.height,
    applyBlock: async (encoded) => {
      await chain.verifyAndCommit(decode(blockCodec, encoded));
    },
  };
}

/** The status and block-range answers a node serves from its `Chain` (NetworkHandlers minus gossip). */
export function chainServer(chain: Chain): Pick<NetworkHandlers, 'status' | 'blocks'> {
  return {
    status: () => ({
      chainId: chain.genesis.chainId,
      genesisHash: chain.genesisHash,
      height: chain.height,
      headHash: chain.head.hash,
    }),
    blocks: (from, to, take) => readBlockRange(from, to, chain, take),
  };
}

/**
 * The stored blocks `from`…`to` (no further than the chain's head) as a
 * `/blocks/1` answer reads them: the peer's budget and a read slot waited for before each read
 * (`take.room`, holding no block), each block offered to `take` (which sends it) once read, and
 * the answer ended at the first block missing or refused.
 */
export async function readBlockRange(
  from: bigint,
  to: bigint,
  chain: Pick<Chain, 'db' | 'height'>,
  take?: BlockTake,
): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  const last = to < chain.height ? to : chain.height;
  for (let h = from; h <= last; h++) {
    if (take?.room && !(await take.room())) break;
    const raw = await chain.db.getBlockBytes(h);
    if (!raw || (take && !(await take(raw.byteLength, raw)))) break;
    // A block `take` sent is not kept: a slow reader would pin its whole answer (BlockTake.sends).
    if (!take?.sends) out.push(raw);
  }
  return out;
}
