/**
 * The mempool reactor: transaction gossip. Out, it batches the transactions this node admitted
 * into one message per burst; in, it admits a peer's batch through the node's admission queue
 * (`admitTxs`: bounded, signatures checked by the verifier, admitted in slices that yield to
 * consensus) or, without one, each transaction directly (`admitTx`), and scores the peer by what
 * the batch held. The costly chip checks a relaying peer may cost this node are reserved against
 * its budget first (costly-relay-budget.ts): what is over it waits, and is admitted later.
 *
 * Gossip reaches only the peers connected (and subscribed) when it is published: a transaction
 * admitted while this node had no peers, or while a peer was cut off or restarting, reached
 * nobody, and nothing sent it later, so it got into a block only if this node proposed one (a full
 * node: never). So a peer that connects gets this node's pending transactions, sent to it alone
 * (`peerConnected`, `shareMempool`), bounded per peer and in all per interval.
 *
 * A peer that stayed connected through a split that dropped messages without closing the
 * connection (or whose admission queue was full when the gossip came) gets no share: so every
 * `reannounceAfterMs` the transactions pending here for that long, not re-announced lately, go
 * again to a few connected peers (`reannounce`), bounded in count and bytes per interval. One
 * admitted behind a deep backlog waits also for the full blocks it had ahead to commit
 * (`reannounceDue`): there it is pending because blocks are full, and its peers hold it already.
 */
import {
  costlyActionCount,
  encode,
  envelopeFromBytes,
  keyId,
  type Transaction,
  type TxEnvelope,
  ValidationError,
} from '@unc/core';
import {
  type AdmissionResult,
  isFinalRefusal,
  refusedAfterSignatureCheck,
  SignatureCheckBusy,
} from '../admission.js';
import { type Cancel, type Clock, every, monotonicNow } from '../clock.js';
import type { Logger } from '../log.js';
import { provablyBadEvidence } from '../mempool.js';
import type { DirectMessage, Verdict } from '../p2p/types.js';
import { AdmissionTimes, type Admitted, TxIndex } from './compact-block.js';
import { CostlyRelayBudget, type CostlyRelayBudgetOptions, type Deferred } from './costly-relay-budget.js';
import { decodeTxBatch } from './gossip-checks.js';
import { MAX_TX_BATCH_BYTES, MAX_TXS_PER_MESSAGE, txBatchCodec } from './wire.js';

export interface MempoolReactorOptions {
  clock: Clock;
  /** Admits a gossiped transaction to the mempool; throws a ValidationError when it is refused. */
  admitTx(env: TxEnvelope): void;
  /**
   * Admits a batch through the admission queue; each gets its result, in order. Rejects, having
   * done nothing, with an error whose code is 'BUSY' when the queue is full.
   */
  admitTxs?(envs: readonly TxEnvelope[]): Promise<AdmissionResult[]>;
  /** Sends a batch on the `tx` topic (a no-op without a network). */
  publishBatch(data: Uint8Array): void;
  /** Whether there is a network to announce to at all. */
  connected(): boolean;
  /**
   * The mempool's pending transactions in the order a block would take them: what a newly
   * connected peer is sent (`peerConnected`). Without it, nothing is.
   */
  pending?(): Iterable<TxEnvelope>;
  /**
   * Bytes of the pending transactions now: a share reserves no more of the interval's budget than
   * there is to send (an empty mempool reserves nothing). Without it, a full share is reserved.
   */
  pendingBytes?(): number;
  /** Sends messages to one peer only, not relayed by it (`Network.sendDirect`). */
  sendDirect?(peer: string, messages: readonly DirectMessage[]): Promise<void>;
  /**
   * Whether `peer` is still connected when its share is due: one that left gets none, and the
   * bytes reserved for it go back to the interval's budget.
   */
  peerStillConnected?(peer: string): boolean;
  /**
   * Whether `peer` relayed a consensus message this node accepted: such peers get the half of the
   * per-interval share budget that fresh identities cannot take.
   */
  provenPeer?(peer: string): boolean;
  /**
   * A peer that connects again within this long gets no second share of the mempool, and the
   * budget over all peers (`MAX_SHARED_*_PER_INTERVAL`) is per this long. Default 10 s.
   */
  shareIntervalMs?: number;
  /**
   * How long after a connection its share is sent (default 1 s): the consensus catch-up goes
   * first, and a transaction published meanwhile, before the peer's gossip subscription was known
   * here (lost to it like the ones before), is still in the share.
   */
  shareDelayMs?: number;
  /**
   * What a re-announcement looks at: the includable transactions of the `maxSenders` senders
   * longest pending, at a cost bounded by that (mempool.ts `longestPending`). Without it, the
   * first MAX_REANNOUNCE_SCAN of `pending` (whose block order costs a walk of the whole pool).
   */
  reannounceCandidates?(maxSenders: number): Iterable<TxEnvelope>;
  /** The peers connected now (`Network.peers`): who a re-announcement goes to. Without it, none does. */
  peers?(): readonly string[];
  /**
   * A transaction pending here this long since it was admitted (a few block intervals: a block
   * would have taken it had every validator held it) is re-announced, and the re-announcement runs
   * this often. Without it (or 0), nothing is re-announced.
   */
  reannounceAfterMs?: number;
  /**
   * Transactions waiting here to go into blocks: the mempool's and the admission queue's. A
   * transaction admitted behind a deep backlog is re-announced only once the blocks it had ahead
   * committed (`reannounceDue`). Without it, after `reannounceAfterMs` whatever the depth.
   */
  backlog?(): number;
  /** The block interval: the most a block of backlog puts a re-announcement off (default a quarter of `reannounceAfterMs`). */
  blockTimeMs?: number;
  /** Bounds on the costly chip checks a relaying peer may cost this node (costly-relay-budget.ts). */
  costlyBudget?: Partial<CostlyRelayBudgetOptions>;
  /**
   * Scores down a peer found at fault outside gossip validation (`Network.penalize`): a
   * transaction it relayed that waited for its budget and then failed for a reason that proves
   * the relay wrong, whose message was answered long before. Without it, nobody is.
   */
  penalize?(peer: string, reason: string): void;
  /** Where a failure nobody awaits (admitting waiting transactions) is told. */
  logger?: Logger;
}

/** How often transactions waiting for their relay's costly-check budget are looked at again. */
export const DEFERRED_PUMP_MS = 500;

/** Most transactions one re-announcement sends (one batch message, the same one to each peer). */
export const MAX_REANNOUNCE_TXS = 256;
/** Most bytes of transactions one re-announcement sends each peer. */
export const MAX_REANNOUNCE_BYTES = 64 * 1024;
/**
 * Peers one re-announcement goes to (taking turns when there are more): with the bytes above, at
 * most 512 KiB leave per interval however large the mempool or however many peers connect. At
 * most half of them peers that never relayed a consensus message (fresh identities are free).
 */
export const MAX_REANNOUNCE_PEERS = 8;
/**
 * Pending transactions (and senders) looked at per re-announcement, those of the senders longest
 * in the pool first: a mempool of 100,000 costs no full walk each interval (the block order
 * would: a heap over every sender, about half a second at 100,000 on the event loop).
 */
export const MAX_REANNOUNCE_SCAN = 4_096;
/**
 * A transaction re-announced waits twice as long before its next one, up to this many intervals:
 * one that no validator includes (refused everywhere but here) is not re-sent every interval for
 * its whole life.
 */
const MAX_REANNOUNCE_BACKOFF = 64;
/**
 * Most block intervals a deep backlog adds to the re-announcement delay: a transaction truly lost
 * (a split that kept connections open, its peers' queues full when its gossip came) is still
 * re-announced, at worst this much later, however deep a pool a flood of fee-paying transactions
 * keeps.
 */
export const MAX_BACKLOG_INTERVALS = 32;
/** Committed blocks whose sizes give what a block takes (the largest of them). */
const BLOCK_SIZES_KEPT = 8;
/**
 * Least transactions a block is taken to carry when the backlog is measured in blocks, and that
 * every recent block must have carried for the backlog to count at all (`blocksAhead`): recent
 * blocks nearly empty (no load, or their proposers lack what is pending here, the very case
 * re-announcement is for) must not make pending transactions, few or many, look like a backlog
 * of full blocks. Its own figure: what one re-announcement sends is no measure of a full block.
 */
const MIN_BLOCK_TXS = 256;
/** Transactions whose re-announcement back-off is remembered; beyond it the oldest are forgotten. */
const MAX_REANNOUNCED_REMEMBERED = 16_384;

/** Most pending transactions one share sends one peer (`peerConnected`). */
export const MAX_SHARED_TXS_PER_PEER = 4_096;
/** Most bytes of pending transactions one share sends one peer. */
export const MAX_SHARED_BYTES_PER_PEER = 1024 * 1024;
/**
 * Bytes of shares per interval over all peers: peer ids cost nothing, so the per-peer limit
 * alone would let a crowd of fresh identities make this node send its mempool to each. Eight
 * full shares; peers that never relayed a consensus message take at most half.
 */
export const MAX_SHARED_BYTES_PER_INTERVAL = 8 * MAX_SHARED_BYTES_PER_PEER;
/** Times a due share waits `shareDelayMs` for a re-announcement to its peer still being sent. */
const MAX_SHARE_WAITS = 5;
/** Peers remembered for the once-per-interval limit; beyond it the oldest are forgotten. */
const MAX_SHARE_PEERS = 4_096;

/** Gossiped transactions held from their arrival (`heard`): a quarter of the index's bounds. */
export const HEARD_MAX_ENTRIES = 12_500;
export const HEARD_MAX_BYTES = 16 * 1024 * 1024;

export class MempoolReactor {
  /** What this node admitted, by wire id: compact proposals are rebuilt from it. */
  private readonly txIndex = new TxIndex();
  /**
   * Every transaction gossiped to this node, from its arrival: those still waiting in its
   * admission queue (under load for a second or more), those it did not admit (the queue full, a
   * nonce ahead of its state...). Not in its mempool, but a peer that admitted one may put it in a
   * block, and rebuilding that block from here beats fetching it from a busy proposer. Used only
   * to rebuild compact proposals, whose transactions are all checked; bounded on its own
   * (`HEARD_MAX_*`), so junk gossip can push out only other gossiped ones, never what this node
   * admitted.
   */
  private readonly heard = new TxIndex(HEARD_MAX_ENTRIES, HEARD_MAX_BYTES);
  /** When each recent transaction was admitted here: what a proposal carries (compact-block.ts). */
  private readonly admitted = new AdmissionTimes();
  private txOut: Uint8Array[] = [];
  private txOutBytes = 0;
  private txFlush: Cancel | null = null;
  private stopped = false;
  /** When each peer last got a share (oldest first), for the once-per-interval limit. */
  private readonly sharedAt = new Map<string, number>();
  /** This interval's share budget over all peers: bytes granted, of which to unproven peers. */
  private shareWindow = { start: Number.NEGATIVE_INFINITY, bytes: 0, unprovenBytes: 0 };
  private readonly shareTimers = new Set<Cancel>();
  /**
   * Peers whose share is still being sent (a peer that reads slowly holds it up to the network's
   * deadline per batch): no second share meanwhile, so a share holds at most one of the peer's
   * two direct streams and the other stays free for consensus messages (p2p/libp2p.ts).
   */
  private readonly sharing = new Set<string>();
  private readonly shareIntervalMs: number;
  private readonly shareDelayMs: number;
  /** Shares sent and refused (reconnecting within the interval, the budget spent), and what they carried. */
  readonly shareStats = { sent: 0, refused: 0, txs: 0, bytes: 0 };
  /** What this node published as gossip (`flushTxs`): batches, transactions and bytes of transactions. */
  readonly publishStats = { batches: 0, txs: 0, bytes: 0 };
  /** Re-announcements: rounds that sent something, direct sends (one per peer), transactions and bytes sent. */
  readonly reannounceStats = { rounds: 0, sends: 0, txs: 0, bytes: 0 };
  /** When each transaction re-announced may go again, and its current back-off (last updated last). */
  private readonly reannounced = new Map<string, { next: number; gap: number }>();
  private reannounceTimer: Cancel | null = null;
  /** Peers a re-announcement is still being sent to (one of their direct streams). */
  private readonly reannouncing = new Set<string>();
  /** Where the next re-announcement starts in the peer list (peers take turns). */
  private reannounceTurn = 0;
  /** Transactions of the last BLOCK_SIZES_KEPT committed blocks (`blockCommitted`). */
  private readonly blockSizes: number[] = [];
  /** Blocks committed since this reactor started (`blockCommitted`). */
  private commits = 0;

  /** Costly chip checks per relaying peer, and the transactions waiting for that budget. */
  readonly costly: CostlyRelayBudget;
  private deferredTimer: Cancel | null = null;

  constructor(private readonly opts: MempoolReactorOptions) {
    this.costly = new CostlyRelayBudget(opts.costlyBudget, opts.clock.now());
    this.shareIntervalMs = opts.shareIntervalMs ?? 10_000;
    this.shareDelayMs = opts.shareDelayMs ?? 1_000;
  }

  /** Announces a transaction this node admitted (from RPC) to its peers, batched. */
  announceTx(env: TxEnvelope): void {
    if (!this.opts.connected() || this.stopped) return;
    this.noteAdmitted(env, this.opts.clock.now(), true);
  }

  /**
   * A transaction this node admitted: kept by wire id to rebuild compact proposals, timed for what
   * a proposal carries, and with `gossip` published (batched) to peers.
   */
  private noteAdmitted(env: TxEnvelope, at: number, gossip: boolean): void {
    this.txIndex.add(env.bytes);
    this.admitted.record(env.hash, { at, commits: this.commits, ahead: this.blocksAhead() });
    if (gossip && this.opts.connected() && !this.stopped) this.queueOut(env.bytes);
  }

  private queueOut(bytes: Uint8Array): void {
    if (this.txOutBytes + bytes.length > MAX_TX_BATCH_BYTES || this.txOut.length >= MAX_TXS_PER_MESSAGE)
      this.flushTxs();
    this.txOut.push(bytes);
    this.txOutBytes += bytes.length;
    this.txFlush ??= this.opts.clock.schedule(20, () => this.flushTxs());
  }

  flushTxs(): void {
    this.txFlush?.();
    this.txFlush = null;
    if (this.txOut.length === 0 || !this.opts.connected()) return;
    const batch = this.txOut;
    this.publishStats.batches++;
    this.publishStats.txs += batch.length;
    this.publishStats.bytes += this.txOutBytes;
    this.txOut = [];
    this.txOutBytes = 0;
    this.opts.publishBatch(encode(txBatchCodec, batch));
  }

  /** When this node admitted a recent transaction (by its hash), from RPC or gossip. */
  admittedAt(hash: Uint8Array): Admitted | undefined {
    return this.admitted.get(hash);
  }

  /** A transaction this node admitted, by its wire id (compact-block.ts). */
  lookup(id: Uint8Array): Uint8Array | undefined {
    return this.txIndex.get(id) ?? this.heard.get(id);
  }

  /**
   * A batch `from` relayed (a peer id: every batch has one, so that every batch through the
   * admission queue is budgeted and settled alike). `direct`: sent to this node alone (a peer's
   * share of its mempool), which no one relays: what this node admits from it, new here, it
   * publishes as gossip itself, or a transaction shared with a node of a partial mesh would reach
   * no one past it.
   */
  onTxGossip(data: Uint8Array, from: string, direct = false): Verdict | Promise<Verdict> {
    const envelopes = decodeTxBatch(data);
    if (!envelopes) return 'reject';
    for (const env of envelopes) this.heard.add(env.bytes);
    if (this.opts.admitTxs) return this.admitBudgeted(envelopes, this.opts.admitTxs, direct, from);
    const admitted: TxEnvelope[] = [];
    let fault = false;
    // Whether the batch holds a transaction refused here: the mempool refuses most before the
    // signature check (a duplicate, a nonce used...), so its signature is not known (see settle).
    let refused = false;
    for (const env of envelopes) {
      try {
        this.opts.admitTx(env);
        admitted.push(env);
      } catch (err) {
        // A transaction valid at the sender may already be stale here (nonce used, duplicate).
        if (!(err instanceof ValidationError)) throw err;
        refused = true;
        // But a signature that does not verify is the relay's fault whatever the state: ignoring
        // it would let a peer make this node check up to a batch of signatures per message, free.
        // The rest of the batch is still admitted: one bad transaction put in front of valid ones
        // must not keep them out.
        if (relayAtFault(err)) fault = true;
      }
    }
    // A batch not forwarded (rejected, or holding a refused one): what this node admitted from
    // it, it publishes itself.
    const now = this.opts.clock.now();
    for (const env of admitted) this.noteAdmitted(env, now, direct || fault || refused);
    if (fault) return 'reject';
    return admitted.length > 0 && !refused ? 'accept' : 'ignore';
  }

  /**
   * A batch `from` relayed, through the admission queue, its costly chip checks reserved against
   * the peer's budget first (costly-relay-budget.ts): a transaction over it waits (not dropped: its
   * message id is in gossipsub's seen-cache already) and is admitted once budget refills, or now
   * if it waited for another peer's budget and this one has some.
   */
  private async admitBudgeted(
    envelopes: readonly TxEnvelope[],
    admitTxs: (envs: readonly TxEnvelope[]) => Promise<AdmissionResult[]>,
    direct: boolean,
    from: string,
  ): Promise<Verdict> {
    const now = this.opts.clock.now();
    const proven = this.opts.provenPeer?.(from) ?? false;
    const submit: TxEnvelope[] = [];
    const costs: number[] = [];
    let deferred = false;
    // The waiting queue refused one of this batch's: full, and this peer holding (about) most of
    // it, which the rest of the batch cannot change (but for a waiting copy it takes out below).
    // The rest is refused without a look, the same answer (a look was once a walk of the whole
    // queue; now a look at the top of an ordering of the relays, costly-relay-budget.ts).
    let refusedWait = false;
    for (const env of envelopes) {
      const cost = costlyActionCount(env.stx.tx);
      if (cost > 0 && !this.costly.tryTake(from, cost, now)) {
        deferred = true;
        if (this.costly.isDeferred(env)) continue;
        if (refusedWait) {
          this.costly.droppedDeferred++;
        } else {
          // Decoded again from a copy of its bytes: the envelope's fields are views into the gossip
          // frame, which waiting would hold whole.
          refusedWait = !this.costly.defer({
            env: envelopeFromBytes(env.bytes.slice()),
            peer: from,
            cost,
            proven,
            at: now,
          });
        }
        continue;
      }
      // A copy that waited going ahead frees a place: the queue may no longer be full, and what
      // follows in the batch is looked at again rather than refused for a fullness gone.
      if (cost > 0 && this.costly.undefer(env)) refusedWait = false;
      submit.push(env);
      costs.push(cost);
    }
    if (this.costly.deferred > 0) this.scheduleDeferred();
    if (submit.length === 0) return 'ignore';
    let results: AdmissionResult[];
    try {
      results = await admitTxs(submit);
    } catch (err) {
      // Nothing was checked: every reservation goes back.
      costs.forEach((cost) => {
        this.costly.refund(from, cost, this.opts.clock.now());
      });
      if ((err as { code?: unknown }).code === 'BUSY') return 'ignore';
      throw err;
    }
    return this.settle(submit, costs, results, from, { publishHere: direct, deferred });
  }

  /**
   * The results of a budgeted batch: reservations given back for what was admitted or refused for
   * good (a duplicate, a nonce used: no state reason), and the batch's verdict. `publishHere`: what
   * is admitted is published by this node whatever the verdict (a batch sent to this node alone,
   * which nobody relays, or one that waited for budget, whose message gossipsub has long settled);
   * `deferred`: some of the batch
   * waits for budget, unchecked; `fromTotal`: per transaction, whether its reservation came from
   * the shared total rather than the peer's own budget.
   */
  private settle(
    envs: readonly TxEnvelope[],
    costs: readonly number[],
    results: readonly AdmissionResult[],
    from: string,
    {
      publishHere,
      deferred = false,
      fromTotal = [],
    }: { publishHere: boolean; deferred?: boolean; fromTotal?: readonly boolean[] },
  ): Verdict {
    const now = this.opts.clock.now();
    const admittedAt: number[] = [];
    let fault = false;
    // Whether a costly check of the batch was spent for a state reason, or is not made yet (a
    // deferred transaction), or a signature or chip evidence of it is not known good here:
    // gossipsub forwards an accepted message whole, and each node past this one would charge that
    // check to this node (its relay), not to the peer that sent it, or score it down for that
    // signature or evidence.
    let unchecked = deferred;
    for (const [i, r] of results.entries()) {
      const cost = costs[i] ?? 0;
      if (!(r instanceof ValidationError)) {
        admittedAt.push(i);
        this.costly.refund(from, cost, now, fromTotal[i]);
        continue;
      }
      // Refused before its signature was checked (a duplicate: its hash leaves the signature
      // out; a nonce used, funds, a busy pool): a forged copy of a transaction held here passes
      // as one. Forwarded whole, the batch would reach a node without that transaction (one
      // block behind, or that never had it), which checks the signature and blames this node:
      // one fee-paying transaction per batch would get honest relays banned by each other. Not
      // the sender's fault either (copies are normal under re-announcement): ignored, unscored.
      // The same holds for chip evidence: a transaction carrying some, refused after its signature
      // check but before its evidence was looked at (a pending one of its nonce it does not
      // outbid, a nonce gap...), may carry junk evidence that a node without the pending one
      // checks and blames this node for. The few refused after their evidence passed here are
      // not told apart: not forwarded whole, what the batch held that was admitted is published
      // by this node all the same.
      // A costly transaction carries chip evidence, so a refused one is counted unchecked here
      // whatever its refusal.
      if (!refusedAfterSignatureCheck(r) || carriesChipEvidence(envs[i]!.stx.tx)) unchecked = true;
      // Refused before any check (its signature never checked) or for good (not a state reason):
      // no state failure of the relay's, so its reservation goes back. ALREADY_PENDING is no such
      // one: a registration meets it only after its evidence check (the chip id is read from the
      // evidence), so any number of copies of one valid registration, each with another fee or
      // nonce, would each cost a check for free. A refusal deferred while this node is behind
      // (SyncingRefusal, code BUSY) is not refunded either: deferWhileBehind wraps only refusals
      // that are not final, so its check stays spent and the batch is not forwarded.
      if (relayAtFault(r)) fault = true;
      else if (r instanceof SignatureCheckBusy || refundable(r))
        this.costly.refund(from, cost, now, fromTotal[i]);
    }
    // A batch whose costly checks were not all spent well, or holding a signature not checked
    // here, is not forwarded: what was admitted from it this node publishes itself (only that:
    // nothing is published twice), so a peer mixing junk with one valid transaction
    // cannot spend the budget other nodes hold for this node. A rejected batch is not forwarded
    // either: else a peer putting one bad signature in a batch of valid transactions (or in
    // front of an honest batch it relays first) would keep them from every node past this one.
    for (const i of admittedAt) this.noteAdmitted(envs[i]!, now, publishHere || unchecked || fault);
    if (fault) return 'reject';
    return admittedAt.length > 0 && !unchecked ? 'accept' : 'ignore';
  }

  private scheduleDeferred(): void {
    if (this.deferredTimer || this.stopped) return;
    this.deferredTimer = this.opts.clock.schedule(DEFERRED_PUMP_MS, () => {
      this.deferredTimer = null;
      void this.pumpDeferred();
    });
  }

  /**
   * The waiting transactions whose relay's budget refilled, admitted per relay; what this node
   * admits from them it gossips itself (their messages were answered 'ignore', not forwarded).
   */
  async pumpDeferred(): Promise<void> {
    const admitTxs = this.opts.admitTxs;
    if (this.stopped || !admitTxs) return;
    const byPeer = new Map<string, Deferred[]>();
    for (const d of this.costly.takeReady(this.opts.clock.now())) {
      const list = byPeer.get(d.peer) ?? [];
      list.push(d);
      byPeer.set(d.peer, list);
    }
    if (this.costly.deferred > 0) this.scheduleDeferred();
    await Promise.all(
      [...byPeer].map(async ([peer, list]) => {
        const envs = list.map((d) => d.env);
        const costs = list.map((d) => d.cost);
        const fromTotal = list.map((d) => d.fromTotal === true);
        try {
          // Scored as the direct path scores a rejected batch: else a peer whose budget is spent
          // would have its junk checked later, for free, however provably bad.
          if (
            this.settle(envs, costs, await admitTxs(envs), peer, { publishHere: true, fromTotal }) ===
            'reject'
          )
            this.opts.penalize?.(peer, 'relayed a transaction that fails its check whatever the state');
        } catch (err) {
          // A full queue (or a bug: nobody awaits this, and a rejection would end the process):
          // nothing was checked, the reservations go back, and these are dropped as a busy
          // node drops gossip (re-announcement brings an honest one again).
          costs.forEach((cost, i) => {
            this.costly.refund(peer, cost, this.opts.clock.now(), fromTotal[i]);
          });
          // A bug swallowed unseen would drop every waiting transaction without a trace.
          // `?.`: a bug may throw what is no object, and this handler must not throw in turn.
          if ((err as { code?: unknown } | null | undefined)?.code !== 'BUSY')
            this.opts.logger?.error('admitting waiting transactions failed', {
              peer,
              txs: envs.length,
              error: (err as Error | null | undefined)?.stack ?? String(err),
            });
        }
      }),
    );
  }

  /**
   * A peer connected (or reconnected: a restart, a healed partition): after `shareDelayMs` it
   * gets this node's pending transactions, sent to it alone. At most once per peer per
   * `shareIntervalMs` however often it reconnects, `MAX_SHARED_*_PER_PEER` each, and no more
   * than `MAX_SHARED_BYTES_PER_INTERVAL` over all peers per interval, half of it kept for peers
   * that relay consensus messages. Reserved when the connection comes, so a crowd of fresh
   * connections cannot all pass the check before any share is counted.
   */
  peerConnected(peer: string): void {
    if (this.stopped || !this.opts.pending || !this.opts.sendDirect) return;
    // On the clock's monotonic reading (clock.ts): on the wall clock a step back held every
    // peer's share, and the interval's budget, for the step's length.
    const now = monotonicNow(this.opts.clock);
    if (now - this.shareWindow.start >= this.shareIntervalMs)
      this.shareWindow = { start: now, bytes: 0, unprovenBytes: 0 };
    const last = this.sharedAt.get(peer);
    const proven = this.opts.provenPeer?.(peer) ?? false;
    const left = MAX_SHARED_BYTES_PER_INTERVAL - this.shareWindow.bytes;
    const unprovenLeft = MAX_SHARED_BYTES_PER_INTERVAL / 2 - this.shareWindow.unprovenBytes;
    const pendingBytes = this.opts.pendingBytes?.() ?? MAX_SHARED_BYTES_PER_PEER;
    // Nothing pending: nothing to send, nothing reserved, and no share counted against the peer.
    if (pendingBytes <= 0) return;
    const budget = Math.min(MAX_SHARED_BYTES_PER_PEER, pendingBytes, left, proven ? left : unprovenLeft);
    if ((last !== undefined && now - last < this.shareIntervalMs) || budget <= 0 || this.sharing.has(peer)) {
      this.shareStats.refused++;
      return;
    }
    this.shareWindow.bytes += budget;
    if (!proven) this.shareWindow.unprovenBytes += budget;
    this.sharedAt.delete(peer);
    this.sharedAt.set(peer, now);
    if (this.sharedAt.size > MAX_SHARE_PEERS) {
      const oldest = this.sharedAt.keys().next().value;
      if (oldest !== undefined) this.sharedAt.delete(oldest);
    }
    const window = this.shareWindow;
    let waits = 0;
    const due = () => {
      // A re-announcement to this peer is still being sent (it holds one of the peer's two direct
      // streams): the share waits for it, a few times at most, so that the other stream stays free
      // for consensus messages.
      if (this.reannouncing.has(peer) && waits++ < MAX_SHARE_WAITS) {
        const again = this.opts.clock.schedule(this.shareDelayMs, () => {
          this.shareTimers.delete(again);
          due();
        });
        this.shareTimers.add(again);
        return;
      }
      const sent = this.reannouncing.has(peer) ? 0 : this.shareMempool(peer, budget);
      // What the share did not use goes back to its interval's budget (the mempool shrank since,
      // or held less than a share's bound in transactions that fit).
      if (window === this.shareWindow) {
        window.bytes -= budget - sent;
        if (!proven) window.unprovenBytes -= budget - sent;
      }
    };
    const timer = this.opts.clock.schedule(this.shareDelayMs, () => {
      this.shareTimers.delete(timer);
      due();
    });
    this.shareTimers.add(timer);
  }

  /**
   * Sends `peer` the pending transactions, in block order, up to `budget` bytes: one batch message
   * per direct send, each awaited, so the sends spread over event-loop turns and a peer that reads
   * slowly (or whose admission queue is full) slows only its own share. Taken from the mempool
   * when sent: what a block took or the mempool dropped meanwhile is not sent.
   */
  private shareMempool(peer: string, budget: number): number {
    const { pending, sendDirect } = this.opts;
    if (this.stopped || !pending || !sendDirect) return 0;
    if (this.opts.peerStillConnected && !this.opts.peerStillConnected(peer)) return 0;
    const batches: Uint8Array[][] = [];
    let batch: Uint8Array[] = [];
    let batchBytes = 0;
    let count = 0;
    let bytes = 0;
    for (const env of pending()) {
      if (count >= MAX_SHARED_TXS_PER_PEER || bytes + env.bytes.length > budget) break;
      if (batchBytes + env.bytes.length > MAX_TX_BATCH_BYTES || batch.length >= MAX_TXS_PER_MESSAGE) {
        batches.push(batch);
        batch = [];
        batchBytes = 0;
      }
      batch.push(env.bytes);
      batchBytes += env.bytes.length;
      count++;
      bytes += env.bytes.length;
    }
    if (batch.length > 0) batches.push(batch);
    if (count === 0) return 0;
    this.shareStats.sent++;
    this.shareStats.txs += count;
    this.shareStats.bytes += bytes;
    this.sharing.add(peer);
    void this.sendBatches(peer, batches, sendDirect).finally(() => this.sharing.delete(peer));
    return bytes;
  }

  private async sendBatches(
    peer: string,
    batches: readonly Uint8Array[][],
    sendDirect: (peer: string, messages: readonly DirectMessage[]) => Promise<void>,
  ): Promise<void> {
    for (const b of batches) {
      if (this.stopped) return;
      try {
        await sendDirect(peer, [{ topic: 'tx', data: encode(txBatchCodec, b) }]);
      } catch {
        // Gone or not reading: the rest waits for its next connection.
        return;
      }
    }
  }

  /**
   * Starts the periodic re-announcement (the driver, once it has a network), on the clock: the
   * simulator's virtual one fires it in order with everything else, so runs stay deterministic.
   */
  startReannouncing(): void {
    const after = this.opts.reannounceAfterMs ?? 0;
    if (this.stopped || this.reannounceTimer || after <= 0 || !this.opts.peers) return;
    this.reannounceTimer = every(this.opts.clock, after, () => this.reannounce());
  }

  /** A block committed with `txs` transactions: what a block takes, for `blocksAhead`. */
  blockCommitted(txs: number): void {
    this.commits++;
    this.blockSizes.push(txs);
    if (this.blockSizes.length > BLOCK_SIZES_KEPT) this.blockSizes.shift();
  }

  /**
   * Full blocks of backlog now: `backlog` over the largest recent block (at least MIN_BLOCK_TXS),
   * up to MAX_BACKLOG_INTERVALS; 0 without `backlog`, and 0 unless every recent block carried
   * MIN_BLOCK_TXS or more. Recorded with each transaction admitted (`noteAdmitted`): those blocks
   * must commit before it is re-announced (`reannounceDue`).
   */
  blocksAhead(): number {
    const { backlog } = this.opts;
    if (!backlog) return 0;
    // Pending because blocks are full only if they are: a deep pool behind small blocks is one the
    // proposers lack (its gossip lost: what re-announcement is for), or one that cannot go into
    // blocks (gapped nonces, which pay nothing while they wait), which an attacker fills for free
    // to put everyone's re-announcements off. Every recent block, not the largest: to keep the
    // delay on, the blocks must stay full, paid for.
    if (this.blockSizes.length === 0 || Math.min(...this.blockSizes) < MIN_BLOCK_TXS) return 0;
    const perBlock = Math.max(MIN_BLOCK_TXS, ...this.blockSizes);
    return Math.min(MAX_BACKLOG_INTERVALS, Math.floor(Math.max(0, backlog()) / perBlock));
  }

  /**
   * Whether a pending transaction admitted here (`admitted`; undefined: no time known, admitted
   * while this node had no network or long ago) is due for re-announcement `now`: its own gossip
   * had `reannounceAfterMs` to reach the peers and every validator holding it a turn to propose it,
   * and the full blocks of backlog it had ahead when admitted have committed since. Behind a deep
   * backlog a transaction is pending because blocks are full, not because its peers lack it: at
   * saturation every node re-announced its pending transactions every few intervals, about twice
   * the bytes of the gossip itself, all of them copies the peers held. Counted in blocks, not
   * time: a loaded chain makes fewer blocks per second. Bounded in time all the same (a block
   * interval per block ahead, `blockTimeMs`): a chain that stalls, or a backlog an attacker keeps
   * deep, puts off a transaction that was truly lost by MAX_BACKLOG_INTERVALS intervals at most.
   */
  reannounceDue(admitted: Admitted | undefined, now: number): boolean {
    if (admitted === undefined) return true;
    const after = this.opts.reannounceAfterMs ?? 0;
    const age = now - admitted.at;
    if (age < after) return false;
    const ahead = admitted.ahead ?? 0;
    if (ahead === 0 || admitted.commits === undefined) return true;
    if (this.commits - admitted.commits >= ahead) return true;
    const blockTimeMs = this.opts.blockTimeMs ?? after / 4;
    return age >= after + ahead * blockTimeMs;
  }

  /**
   * One re-announcement: up to MAX_REANNOUNCE_TXS / MAX_REANNOUNCE_BYTES of the transactions
   * pending here for `reannounceAfterMs` or more and due (back-off), those of the senders longest
   * in the pool first (`reannounceCandidates`), as one batch
   * sent directly to up to MAX_REANNOUNCE_PEERS connected peers. The receiver admits it like a
   * share (a transaction it holds costs it a hash lookup) and gossips on what is new to it. A peer
   * whose share or last re-announcement is still being sent is skipped: each holds one of its two
   * direct streams, and the other stays free for consensus messages.
   */
  reannounce(): void {
    const { pending, reannounceCandidates, sendDirect, peers } = this.opts;
    const after = this.opts.reannounceAfterMs ?? 0;
    if (this.stopped || !pending || !sendDirect || !peers || after <= 0 || !this.opts.connected()) return;
    const targets = this.reannounceTargets(peers());
    if (targets.length === 0) return;
    const now = this.opts.clock.now();
    const batch: Uint8Array[] = [];
    let bytes = 0;
    let scanned = 0;
    const candidates = reannounceCandidates ? reannounceCandidates(MAX_REANNOUNCE_SCAN) : pending();
    for (const env of candidates) {
      if (++scanned > MAX_REANNOUNCE_SCAN || batch.length >= MAX_REANNOUNCE_TXS) break;
      // Admitted here not long ago: its own gossip is recent, or blocks full of what was ahead of
      // it have not reached it yet (no time known: admitted while this node had no network, or
      // long enough ago to be forgotten; either way due).
      if (!this.reannounceDue(this.admitted.get(env.hash), now)) continue;
      const id = keyId(env.hash);
      const backoff = this.reannounced.get(id);
      if (backoff && now < backoff.next) continue;
      if (bytes + env.bytes.length > MAX_REANNOUNCE_BYTES) continue;
      batch.push(env.bytes);
      bytes += env.bytes.length;
      const gap = backoff ? Math.min(backoff.gap * 2, after * MAX_REANNOUNCE_BACKOFF) : after;
      this.reannounced.delete(id);
      this.reannounced.set(id, { next: now + gap, gap });
      if (this.reannounced.size > MAX_REANNOUNCED_REMEMBERED) {
        const oldest = this.reannounced.keys().next().value;
        if (oldest !== undefined) this.reannounced.delete(oldest);
      }
    }
    if (batch.length === 0) return;
    const data = encode(txBatchCodec, batch);
    this.reannounceStats.rounds++;
    this.reannounceStats.txs += batch.length;
    for (const peer of targets) {
      this.reannounceStats.sends++;
      this.reannounceStats.bytes += bytes;
      this.reannouncing.add(peer);
      void sendDirect(peer, [{ topic: 'tx', data }])
        .catch(() => {
          // Gone or not reading: the next round, or its next connection's share, tries again.
        })
        .finally(() => this.reannouncing.delete(peer));
    }
  }

  /**
   * Up to MAX_REANNOUNCE_PEERS of the connected peers not being sent a share, taking turns: peers
   * that relayed consensus messages first, fresh identities in at most half the places.
   */
  private reannounceTargets(connected: readonly string[]): string[] {
    const free = connected.filter((p) => !this.sharing.has(p) && !this.reannouncing.has(p));
    const proven = free.filter((p) => this.opts.provenPeer?.(p) ?? false);
    const unproven = free.filter((p) => !(this.opts.provenPeer?.(p) ?? false));
    const turn = this.reannounceTurn++;
    const take = (list: string[], n: number): string[] => {
      if (list.length <= n) return list;
      const start = (turn * n) % list.length;
      return Array.from({ length: n }, (_, k) => list[(start + k) % list.length]!);
    };
    const first = take(proven, MAX_REANNOUNCE_PEERS);
    return [
      ...first,
      ...take(unproven, Math.min(MAX_REANNOUNCE_PEERS / 2, MAX_REANNOUNCE_PEERS - first.length)),
    ];
  }

  stop(): void {
    this.stopped = true;
    this.reannounceTimer?.();
    this.reannounceTimer = null;
    this.deferredTimer?.();
    this.deferredTimer = null;
    this.txFlush?.();
    this.txFlush = null;
    for (const cancel of this.shareTimers) cancel();
    this.shareTimers.clear();
  }
}

/**
 * Whether a refusal proves the relay wrong from the bytes alone, whatever state it saw: a signature
 * that does not verify, chip evidence that is garbled or not signed over its message (checked
 * at admission for every transaction, a registration's costing milliseconds: relaying junk that
 * makes every node run that check is a fault), or consensus evidence that proves no offence or
 * whose vote or proposal signatures fail. Evidence refused for a state reason (vendor,
 * revocation, expiry at block time, a transfer's consent checked against the chip's key as this
 * node's state holds it) is not: the relay may be behind or ahead.
 */
function relayAtFault(err: ValidationError): boolean {
  return err.code === 'BAD_SIGNATURE' || provablyBadEvidence(err);
}

/**
 * Whether `tx` carries evidence that admission checks, with a verdict that can blame the relay
 * (relayAtFault): a registration's evidence, a transfer's consent (its costly actions), a
 * heartbeat's answers (checked at admission, the transaction fee-free or paying), or consensus
 * evidence (BAD_EVIDENCE_PROOF, BAD_EVIDENCE_SIGNATURE).
 */
function carriesChipEvidence(tx: Transaction): boolean {
  return costlyActionCount(tx) > 0 || tx.actions.some((a) => a.type === 'heartbeat' || a.type === 'evidence');
}

/** A refusal whose costly checks go back to the relay's budget (settle): final, and met before any check. */
function refundable(err: ValidationError): boolean {
  return isFinalRefusal(err) && err.code !== 'ALREADY_PENDING';
}
