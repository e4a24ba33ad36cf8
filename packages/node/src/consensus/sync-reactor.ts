/**
 * The sync reactor: serves committed blocks to peers, and catches this node up with peers that
 * are ahead (block sync, sync.ts), each block checked with its commit like any block from a
 * stranger. The consensus reactor asks it whether a peer is ahead when a height stalls.
 */
import {
  type Block,
  blockCodec,
  blockHash,
  type Commit,
  type ConsensusEvidence,
  checkEvidence,
  decode,
  type Ed25519Verified,
  ed25519CheckKey,
  ed25519Verify,
  epochOf,
  equalBytes,
  evidenceOffender,
  getPociParams,
  keyId,
  latestValidatorSetEpoch,
  type TxEnvelope,
  toHex,
  txRootOf,
  ValidationError,
  VerifiedSignatures,
  type VerifyFn,
} from '@unc/core';
import type { Chain, CommittedBlock } from '../chain.js';
import { type Clock, monotonicNow } from '../clock.js';
import type { Logger } from '../log.js';
import type { BlockTake, Network } from '../p2p/types.js';
import { peerStatuses, readBlockRange, SyncConflictError, type SyncProgress, syncChain } from '../sync.js';
import type { BlockPreverifier } from './block-preverify.js';
import { commitConflictEvidence } from './sync-evidence.js';

/** How long a peer whose claimed heights a sync found it did not serve is not believed. */
export const DISPROVED_MS = 10 * 60_000;
/** The unbonding period in epochs (execute.ts: 3 × epochBlocks). */
const UNBONDING_EPOCHS = 3n;
/**
 * How often a sync stopped on conflicting histories is logged again (a stall check asks for a
 * sync every few seconds: a line each time buried the first, and the cause, in repeats).
 */
export const CONFLICT_REMINDER_MS = 5 * 60_000;
/** What the operator does about a conflict (docs/operators.md "Long-range attacks"). */
export const CONFLICT_NEXT_STEP =
  'find out which history the network follows (a block explorer, other operators), restart with --trusted-checkpoint HEIGHT:HASH on it, and remove data/chain first if this node is on the other (docs/operators.md, Long-range attacks)';
/** Peers remembered as disproved at once. */
const MAX_DISPROVED = 1_024;
/** How long the peer of a conflict is given to serve its block at the fork (the evidence probe). */
export const EVIDENCE_PROBE_TIMEOUT_MS = 5_000;
/** Conflicts probed for evidence per sync (each costs one one-block request). */
const MAX_PROBES_PER_SYNC = 4;
/** Peers asked for the other history's block at one fork (the one that served it first). */
const PROBE_PEERS = 3;
/** Forks (height and the other history's block there) remembered as probed already. */
const MAX_PROBED = 256;
/**
 * Duplicate-vote pieces taken from one pair of commits: each costs two signature checks, and the
 * evidence pool takes at most two per offender anyway. A third of the largest set (MAX_VALIDATORS).
 */
const MAX_EVIDENCE_PER_CONFLICT = 334;

export interface SyncReactorOptions {
  clock: Clock;
  chain: Chain;
  logger: Logger;
  /** After every block applied by sync (the node prunes its mempool, listeners hear of it). */
  onSynced(committed: CommittedBlock): void;
  /**
   * Checks a synced block's signatures ahead of its execution (block-preverify.ts) and says which
   * passed; null (or absent) lets execution check every one itself. `abandoned` says true once
   * the block will not be applied (the block before it failed, or sync moved on): the pre-check
   * then sends nothing more. Called only for a block whose commit verified (`commitVerifies`):
   * see `preverifySyncedBlock`, which also checks that the body is the one the header names.
   * `awaited` says true once applying the block waits on its pre-check (a look-ahead is started
   * while the block before it executes): the calling thread helps the workers only from then.
   */
  preverify?(
    block: Block,
    parent?: Block,
    abandoned?: () => boolean,
    awaited?: () => boolean,
  ): Promise<SyncPreverified | null>;
  /**
   * A fetched block's commit certificate verified (+2/3 of the power the head state knows signed
   * it): the network decided its height, evidence that this node is behind (behind-view.ts).
   */
  onCertified?(height: bigint): void;
  /**
   * A peer served a block proving two certified histories (SyncReactor.conflict): sync has
   * stopped for good, until the operator restarts the node. Called once, after the reactor logged
   * it (the driver shows it in unc_status and in a held fresh signer's warning).
   */
  onConflict?(conflict: SyncConflict): void;
  /**
   * Duplicate-vote evidence a sync conflict proved (two commits of one height on different blocks,
   * of the same round), its signatures checked against the set of its epoch (core
   * `checkEvidence`): the driver hands it to the evidence pool, which gossips it and puts it on
   * chain. Nothing else follows from it: sync stays on this node's history.
   */
  onEvidence?(evidence: ConsensusEvidence): void;
  /** Checks one precommit signature of a synced block's commit (default: ed25519Verify; tests count). */
  verifyCommitSignature?: VerifyFn;
}

/** A fetched block whose pre-check started while the block before it (`parent`) executed. */
interface Prepared {
  block: Block;
  preverified: Promise<SyncPreverified | null>;
  /** Set once it will not be applied: a block from a peer whose earlier block failed costs no more. */
  abandoned: boolean;
  /** Gathered with `parent` as the head, before it ran: keys and challenges are a guess. */
  guessed: boolean;
  /** Applying it waits on its pre-check: the calling thread may help the workers. */
  awaited: boolean;
}

/** Signatures of a synced block found valid before it executes (passes only). */
export interface SyncPreverified {
  envelopes: readonly TxEnvelope[];
  isSignatureVerified: (hash: Uint8Array) => boolean;
  isEd25519Verified: Ed25519Verified;
  /**
   * False when the pre-check stopped before every check was made and passed. For a look-ahead
   * (gathered before the block before it ran: a chip it registers, an epoch it opens, make other
   * keys and challenges) that is no verdict on the block: it is checked again once current.
   */
  complete?: boolean;
}

/**
 * A certified block that does not extend the head (`refuseConflict`): the other history's block
 * at the head's height is its parent, whose commit, set against the head's, may prove double signing.
 */
interface Fork {
  /** The head's height and commit when the block was refused. */
  height: bigint;
  ours: Commit;
  /** The refused block's parent: the other history's block at `height`. */
  theirs: Uint8Array;
}

/** Why sync stopped for good: a block that cannot belong to this node's chain, yet is certified. */
export interface SyncConflict {
  height: bigint;
  /** The peer's block (hex). */
  theirs: string;
  /** This node's head (hex) when the conflict was found. */
  head: string;
  why: string;
  /** The peer that served that block, when sync knew it. */
  peer?: string;
  /** What the operator should do (CONFLICT_NEXT_STEP). */
  nextStep: string;
}

export class SyncReactor {
  /**
   * Set once sync found two certified histories: block sync then refuses to run, so that a
   * node is never carried down one of them by whichever peer answered first.
   */
  conflict: SyncConflict | null = null;

  /** A sync is running (it holds the consensus queue meanwhile). */
  syncing = false;
  /** The latest block-sync progress, while a sync runs. */
  syncProgress: SyncProgress | null = null;

  /**
   * Blocks whose pre-check is under way, by their encoded bytes (the very array sync hands to
   * `applyBlock` next): at most the one being applied and the one after it.
   */
  private readonly prepared = new Map<Uint8Array, Prepared>();

  /**
   * Commit signatures that passed when a block's commit was checked before its pre-check: the
   * same commit is checked again when the block is applied (against the head it builds on), and
   * a signature each validator made is not verified twice on this thread for it. Exact (key,
   * message, signature) triples, bounded; a forgotten one is only verified again.
   */
  private readonly commitPasses = new VerifiedSignatures(4_096);

  constructor(private readonly opts: SyncReactorOptions) {}

  private readonly verifyAndRemember: VerifyFn = (publicKey, message, signature) => {
    const key = ed25519CheckKey(publicKey, message, signature);
    if (this.commitPasses.hasKey(key)) return true;
    const ok = (this.opts.verifyCommitSignature ?? ed25519Verify)(publicKey, message, signature);
    if (ok) this.commitPasses.addKey(key);
    return ok;
  };

  /**
   * Peers that claimed heights a sync then found they did not serve (sync.ts `disproved`), and
   * until when their claims are ignored. A status claim costs nothing: without this, one peer
   * claiming a height far ahead made every stall probe start a sync that held the consensus queue
   * until it gave up on that peer, stall after stall. Bounded (oldest forgotten first).
   */
  private readonly disproved = new Map<string, number>();
  // The marks (and the conflict reminder) are on the clock's monotonic reading (clock.ts): on the
  // wall clock, a step forward lifted every mark at once, a step back held them for its length.

  /**
   * Peers a sync dropped without proof of a lie (a failed request, a late short or empty answer:
   * sync.ts asks them again, blames them for nothing), and until when the stall probe ignores
   * their status claims. Without this, a peer claiming a far height and answering every request
   * late (or never) was believed by every stall probe: each stall started a sync that held the
   * consensus queue for its deadline, and the probe then went again at once, the height still
   * stalled. Only the probe: signed evidence (behind-view.ts) still starts a sync, which asks them.
   */
  private readonly unserved = new Map<string, number>();

  /**
   * Whether some peer is ahead of our head (asks every peer for its status), counting only peers
   * whose claims no recent sync disproved.
   */
  async peerAhead(network: Network): Promise<boolean> {
    const statuses = await peerStatuses(network);
    const head = this.opts.chain.tipHeight;
    for (const [peer, s] of statuses)
      if (s.height > head && !this.isDisproved(peer) && !this.until(this.unserved, peer)) return true;
    return false;
  }

  /**
   * Whether this node has caught up with its peers: at least one answered its status, and none
   * claims a height above our head. A held fresh signer waits for this (driver.ts
   * `releaseSigner`): without a peer's answer an empty chain store proves nothing. Stricter than
   * `peerAhead`: a claim a recent sync disproved still counts, since releasing the signer behind the
   * network would let it sign at a height it may have signed at; a peer that lies costs only the
   * wait (the operator's way out: `--allow-fresh-signer`), and the driver warns naming the peers
   * that claim to be ahead (`ahead`, `peer@height`) so that the operator sees it.
   */
  async caughtUp(network: Network): Promise<{ caughtUp: boolean; answered: number; ahead: string[] }> {
    const statuses = await peerStatuses(network);
    const head = this.opts.chain.tipHeight;
    const ahead = [...statuses].filter(([, s]) => s.height > head).map(([peer, s]) => `${peer}@${s.height}`);
    return { caughtUp: statuses.size > 0 && ahead.length === 0, answered: statuses.size, ahead };
  }

  private isDisproved(peer: string): boolean {
    return this.until(this.disproved, peer);
  }

  private until(marks: Map<string, number>, peer: string): boolean {
    const until = marks.get(peer);
    if (until === undefined) return false;
    if (monotonicNow(this.opts.clock) < until) return true;
    marks.delete(peer);
    return false;
  }

  private disprove(peer: string, marks = this.disproved): void {
    marks.delete(peer);
    marks.set(peer, monotonicNow(this.opts.clock) + DISPROVED_MS);
    if (marks.size > MAX_DISPROVED) {
      const oldest = marks.keys().next().value;
      if (oldest !== undefined) marks.delete(oldest);
    }
  }

  /** Fetches and checks the blocks peers have beyond our head, until no peer is ahead. */
  async catchUp(network: Network): Promise<void> {
    if (this.conflict) {
      this.remindConflict();
      return;
    }
    this.syncing = true;
    this.probes = [];
    try {
      await this.syncFromPeers(network);
    } catch (err) {
      if (!(err instanceof SyncConflictError)) throw err;
      if (err.final && this.conflict && this.conflictLoggedAt === null) this.reportConflict(err.peer);
    } finally {
      this.syncing = false;
      this.syncProgress = null;
      this.abandonPrepared();
    }
    // Run apart from the sync, not awaited: the driver calls catchUp inside its consensus queue,
    // and a peer holding each probe to its deadline held every vote and proposal 5 s a probe
    // (20 s a sync) once the sync was over (review: sync evidence).
    for (const probe of this.probes)
      if (this.probeQueue.length < MAX_PROBES_PER_SYNC) this.probeQueue.push(probe);
    this.probes = [];
    this.startProbes(network);
  }

  /** Probes waiting to run (at most MAX_PROBES_PER_SYNC); one runner drains them (`probing`). */
  private probeQueue: { peer: string; fork: Fork }[] = [];
  /** The runner draining `probeQueue`, while one runs. */
  private probing: Promise<void> | null = null;

  private startProbes(network: Network): void {
    if (this.probing || this.probeQueue.length === 0) return;
    this.probing = (async () => {
      for (let next = this.probeQueue.shift(); next; next = this.probeQueue.shift()) {
        try {
          await this.probeForEvidence(network, next.peer, next.fork);
        } catch (err) {
          this.opts.logger.debug('evidence probe failed', { error: (err as Error).message });
        }
      }
    })().finally(() => {
      this.probing = null;
      this.startProbes(network);
    });
  }

  /** Resolves once the evidence probes queued so far have run (the driver never waits for them). */
  async probesSettled(): Promise<void> {
    while (this.probing) await this.probing;
  }

  /** The fork `refuseConflict` saw last, until sync names the peer that served it. */
  private refusedFork: Fork | null = null;
  /** The conflicts of this sync to probe for evidence once it ends (at most MAX_PROBES_PER_SYNC). */
  private probes: { peer: string; fork: Fork }[] = [];
  /** Forks probed already (`height:their block`), bounded: one fork costs one request. */
  private readonly probed = new Set<string>();

  /**
   * Asks `peer`, which served a certified block off this node's head, for its history's block at
   * the head's height, and sets that block's commit against the head's: validators that signed
   * both in one round double-signed (duplicate-vote evidence, checked, handed to `onEvidence`,
   * logged at error level). Never changes the chain: sync stays stopped (or, with a checkpoint
   * ahead, on this node's history). Bounded: one one-block request per peer asked, with a
   * deadline. That block is known by its hash (the refused block's certified parent), so any peer
   * may serve it: where `peer` does not (no answer, another block, a commit that proves nothing),
   * up to PROBE_PEERS - 1 other peers are asked. Before, the peer that served the fork alone was
   * asked, once: one that held its answer (or served a commit of bad signatures) kept the double
   * signing unreported for good, a final conflict stopping sync for good.
   */
  private async probeForEvidence(network: Network, peer: string, fork: Fork): Promise<void> {
    const { logger } = this.opts;
    const key = `${fork.height}:${toHex(fork.theirs)}`;
    if (this.probed.has(key)) return;
    if (this.probed.size >= MAX_PROBED) this.probed.clear();
    this.probed.add(key);
    const others = network
      .peers()
      .map((p) => p.id)
      .filter((id) => id !== peer);
    for (const asked of [peer, ...others].slice(0, PROBE_PEERS)) {
      const block = await this.forkBlockFrom(network, asked, fork);
      if (block && this.reportForkEvidence(fork, block, asked)) return;
    }
    logger.warn(
      'no peer asked served a commit at the fork of a conflicting certified block that proves anything',
      {
        height: fork.height,
        theirs: toHex(fork.theirs),
        peer,
      },
    );
  }

  /** `peer`'s block at the fork, if it is the other history's (the refused block's parent). */
  private async forkBlockFrom(network: Network, peer: string, fork: Fork): Promise<Block | null> {
    const { logger, clock } = this.opts;
    const abort = new AbortController();
    const cancel = clock.schedule(EVIDENCE_PROBE_TIMEOUT_MS, () => abort.abort());
    let block: Block;
    try {
      const answer = await network.requestBlocks(peer, fork.height, fork.height, { signal: abort.signal });
      if (answer.length !== 1) throw new Error(`${answer.length} blocks answered`);
      block = decode(blockCodec, answer[0]!);
    } catch (err) {
      logger.debug('a peer did not serve its block at the fork of a conflicting certified block', {
        peer,
        height: fork.height,
        error: (err as Error).message,
      });
      return null;
    } finally {
      cancel();
    }
    // Its block at the fork must be the refused block's parent, under its own commit.
    if (
      block.header.height !== fork.height ||
      block.commit.height !== fork.height ||
      !equalBytes(blockHash(block.header), fork.theirs) ||
      !equalBytes(block.commit.blockHash, fork.theirs)
    ) {
      logger.debug('a peer served another block at the fork of a conflicting certified block', {
        peer,
        height: fork.height,
      });
      return null;
    }
    return block;
  }

  /**
   * Sets the other history's commit at the fork against the head's and reports what it proves.
   * Returns whether that is settled: false where pieces were found but none checked (its commit's
   * signatures may be a peer's forgery), for the next peer to be asked.
   */
  private reportForkEvidence(fork: Fork, block: Block, peer: string): boolean {
    const { chain, logger } = this.opts;
    const chainId = chain.genesis.chainId;
    // Checked as a block would check it (signatures, the set of its epoch, age, tombstones),
    // against the tip: a pair that fails proves nothing this chain can punish.
    const state = chain.tipState;
    const height = chain.tipHeight + 1n;
    const found = commitConflictEvidence(chainId, fork.ours, block.commit, MAX_EVIDENCE_PER_CONFLICT, (e) => {
      try {
        checkEvidence(state, chainId, height, e, chain.genesis);
        return true;
      } catch {
        return false;
      }
    });
    const at = { height: fork.height, ours: toHex(fork.ours.blockHash), theirs: toHex(fork.theirs), peer };
    if (found.kind === 'none') return true;
    if (found.kind === 'rounds') {
      // Nothing checked in it (a forged round): the next peer is asked.
      if (found.both === 0) return found.rejected === 0;
      logger.error(
        'CONFLICTING COMMITS: two blocks certified at one height, in different rounds: validators that signed both broke their lock, which duplicate-vote evidence cannot prove',
        { ...at, ourRound: found.ours, theirRound: found.theirs, signedBoth: found.both },
      );
      return true;
    }
    if (found.evidence.length === 0) {
      logger.warn('conflicting commits at one height name no validator this chain can still punish', {
        ...at,
        rejected: found.rejected,
      });
      // Entries that failed (a bad signature, a piece that did not check) may be a peer's forgery.
      return found.rejected === 0;
    }
    const offenders: string[] = [];
    for (const evidence of found.evidence) {
      offenders.push(toHex(evidenceOffender(evidence)));
      this.opts.onEvidence?.(evidence);
    }
    logger.error(
      'DOUBLE SIGNING: two blocks certified at one height in one round; the validators that signed both are reported (this node stays on its chain)',
      { ...at, round: fork.ours.round, offenders: offenders.length, validators: offenders.join(',') },
    );
    return true;
  }

  /** Block sync (sync.ts) from the peers that are ahead, each block checked with its commit. */
  private async syncFromPeers(network: Network): Promise<void> {
    const { chain, logger } = this.opts;
    let lastLog = Number.NEGATIVE_INFINITY;
    const result = await syncChain({
      network,
      chain: {
        // The tip: a decided block still being written is not fetched again (it would no longer
        // fit once written, and the peer that served it would be blamed for it).
        height: () => chain.tipHeight,
        applyBlock: async (encoded) => {
          const ahead = this.prepared.get(encoded);
          this.prepared.delete(encoded);
          const block = ahead?.block ?? decode(blockCodec, encoded);
          let committed: CommittedBlock;
          try {
            // Before any work on it: a block proving two certified histories ends the sync.
            this.refuseConflict(block);
            // A look-ahead that could not check the block's commit (its validator set was not
            // known before the block before it ran: an epoch's first block) started nothing; now
            // that the head is that block, the commit can be checked and the pre-check run.
            if (ahead) ahead.awaited = true;
            let preverified = ahead
              ? await ahead.preverified
              : ((this.commitVerifies(block) ? await this.opts.preverify?.(block) : null) ?? null);
            // The look-ahead gathered this block's checks before the block before it ran, a guess
            // of the keys and challenges its answers are checked against: a check that failed there
            // (or the rest it then left unsent) says nothing about this block. Now that the block
            // before it is the head, the rest is checked again (passes are remembered, so only
            // what did not pass goes again); only a failure now is the block's.
            if (ahead?.guessed && preverified?.complete === false && this.opts.preverify)
              preverified = (await this.opts.preverify(block)) ?? preverified;
            committed = await chain.verifyAndCommit(block, null, preverified, this.verifyAndRemember);
          } catch (err) {
            // The next block (same peer, same answer) will not be applied: its pre-check stops.
            this.abandonPrepared();
            throw err;
          }
          this.opts.onSynced(committed);
        },
        // The fork refuseConflict just saw, now that its peer is known: probed once the sync ends.
        conflictFrom: (peer) => {
          const fork = this.refusedFork;
          this.refusedFork = null;
          if (fork && this.probes.length < MAX_PROBES_PER_SYNC) this.probes.push({ peer, fork });
        },
        // The next block's signatures go to the pool now, gathered on the head state with the
        // block about to execute as their head (the slot its answers answer), so that the workers
        // check them while this thread executes that block: block sync keeps every core busy.
        // Only passes count (block-preverify.ts), so a guess that misses costs a check, no verdict.
        prepare: (following, current) => {
          if (!this.opts.preverify) return;
          const now = this.prepared.get(current) ?? this.prepare(current, undefined);
          if (!now) return;
          for (const [k, p] of this.prepared) {
            if (k === current) continue;
            p.abandoned = true;
            this.prepared.delete(k);
          }
          this.prepare(following, now.block);
        },
      },
      onProgress: (p) => {
        this.syncProgress = p;
        this.warnLongRange(p);
        if (monotonicNow(this.opts.clock) - lastLog < 2_000 && p.height < p.target) return;
        lastLog = monotonicNow(this.opts.clock);
        logger.info('syncing blocks', {
          height: p.height,
          target: p.target,
          blocksPerSecond: Math.round(p.blocksPerSecond),
          eta: p.etaSeconds === null ? '?' : `${Math.ceil(p.etaSeconds)}s`,
        });
      },
      logger,
      clock: this.opts.clock,
      // Also those a recent sync dropped for a late or failed answer: asked only once no other
      // peer is ahead (or those ahead were dropped), so that sybils answering late, each costing a
      // serve wait at the head of the pipeline, cost it once in ten minutes, not once a sync.
      distrusted: (peer) => this.isDisproved(peer) || this.until(this.unserved, peer),
    });
    for (const peer of result.disproved) this.disprove(peer);
    // Not `result.slower`: peers beaten by a hedge served in full, only later than another; a
    // faster node claiming one height more would otherwise get every honest peer it beat set aside.
    for (const peer of result.excluded)
      if (!result.disproved.includes(peer)) this.disprove(peer, this.unserved);
    if (result.applied > 0) logger.info('synced', { height: result.height, applied: result.applied });
  }

  private warnedLongRange = false;

  /**
   * Warns, once, when the blocks to sync past the head (or past the trusted checkpoint, if it is
   * ahead) span more than the unbonding period: validators that signed there may have unbonded
   * since, and an alternative history signed by their keys costs them nothing (long-range attack).
   * Only a warning: peers' heights are bare claims, and a chain synced from genesis is the normal
   * way to start a node; the operator's answer is `--trusted-checkpoint` (docs/operators.md).
   */
  private warnLongRange(p: SyncProgress): void {
    if (this.warnedLongRange) return;
    const { chain } = this.opts;
    const cp = chain.trustedCheckpoint;
    const from = cp && cp.height > p.height ? cp.height : p.height;
    const unbonding = UNBONDING_EPOCHS * getPociParams(chain.tipState).epochBlocks;
    if (p.target - from <= unbonding) return;
    this.warnedLongRange = true;
    this.opts.logger.warn(
      'syncing past the unbonding period without a trusted checkpoint there: set --trusted-checkpoint HEIGHT:HASH from a source you trust (docs/operators.md, weak subjectivity)',
      { height: p.height, target: p.target, checkpoint: cp ? cp.height : 'none', unbondingBlocks: unbonding },
    );
  }

  /**
   * Stops sync (SyncConflictError) on a block that proves this node's history is not the one its
   * peer serves, though both are certified: +2/3 of the validators the head knows signed a block
   * that does not extend the head (a fork of the current set: over a third of it equivocated, or
   * this node followed a long-range history), or the block is the trusted checkpoint and does not
   * extend the head (this node followed another history below it). Before, such a block was
   * "a bad block" like any other: its peer was penalised and ignored for ten minutes, and the node
   * went on down the history whichever peer answered first had served. A block at the checkpoint's
   * height that is not the checkpoint is refused by the chain itself (Chain.trustedCheckpoint).
   */
  private refuseConflict(block: Block): void {
    const { chain } = this.opts;
    const height = block.header.height;
    if (height !== chain.tipHeight + 1n) return;
    const cp = chain.trustedCheckpoint;
    const atCheckpoint = cp !== null && cp.height === height;
    const builds = equalBytes(block.header.prevHash, chain.tip.hash);
    if (builds && !atCheckpoint) return;
    const hash = blockHash(block.header);
    let why: string | null = null;
    if (builds) {
      // The checkpoint itself, or an uncertified block the chain refuses (its peer blamed).
      if (equalBytes(cp!.hash, hash) || !this.commitVerifies(block)) return;
      // The operator's checkpoint is wrong (or above the network's head), or this node followed
      // another history below it: either way not the fault of the peer serving a certified block,
      // which was penalised and set aside for ten minutes at every sync.
      why =
        "the head's validators certified a block at the trusted checkpoint's height that is not the checkpoint: the checkpoint is wrong, or this node followed another history below it";
    } else if (atCheckpoint && equalBytes(cp!.hash, hash))
      why = "the trusted checkpoint does not extend this node's chain";
    else if (this.commitVerifies(block))
      why = "the head's validators certified a block that does not extend the head";
    // Not certified: an ordinary bad block, its peer blamed, without checking its commit again.
    if (!why)
      throw new ValidationError('BAD_BLOCK', `block ${height}: previous hash does not match the head`);
    // A certified block off the head: its parent is the other history's block at the head's
    // height, whose commit may prove double signing (probeForEvidence, once the sync ends).
    if (!builds && chain.tipHeight > 0n)
      this.refusedFork = {
        height: chain.tipHeight,
        ours: chain.tip.block.commit,
        theirs: block.header.prevHash,
      };
    else this.refusedFork = null;
    // A trusted checkpoint ahead tells the two histories apart once reached: the peer serving this
    // one is set aside (unblamed) and the sync goes on. Stopping for good here let holders of
    // long-unbonded keys (a set's +2/3 signs any block at its heights at no cost) halt every node
    // syncing through those heights, at every restart. On the wrong history, the node stops at
    // the checkpoint instead (its certified block there is not the checkpoint, or does not extend).
    if (cp && cp.height > height && !builds) {
      this.opts.logger.warn(
        "a certified block does not extend this node's chain: its peer is set aside, the trusted checkpoint ahead decides",
        { height, theirs: Buffer.from(hash).toString('hex'), checkpoint: cp.height },
      );
      throw new SyncConflictError(`${why} (block ${height}; the trusted checkpoint ahead decides)`, false);
    }
    // Reported (logged, onConflict) by catchUp once syncChain has named the peer that served it.
    this.conflict = {
      height,
      theirs: Buffer.from(hash).toString('hex'),
      head: Buffer.from(chain.tip.hash).toString('hex'),
      why,
      nextStep: CONFLICT_NEXT_STEP,
    };
    throw new SyncConflictError(`${why} (block ${height})`);
  }

  /** When the conflict was last logged (null: not yet). */
  private conflictLoggedAt: number | null = null;

  /** The stop, logged at error level and handed to onConflict: once, for the one conflict kept. */
  private reportConflict(peer: string | undefined): void {
    const conflict = this.conflict!;
    if (peer !== undefined) conflict.peer = peer;
    this.conflictLoggedAt = monotonicNow(this.opts.clock);
    this.opts.logger.error(
      'CONFLICTING CHAIN: block sync stopped; check the trusted checkpoint and the peers (docs/operators.md)',
      { ...conflict },
    );
    this.opts.onConflict?.(conflict);
  }

  /**
   * A sync asked for after the stop: a reminder at most every CONFLICT_REMINDER_MS (the stall
   * check asks every few seconds), so the log says the node is still stopped without burying why.
   */
  private remindConflict(): void {
    const conflict = this.conflict!;
    const now = monotonicNow(this.opts.clock);
    if (this.conflictLoggedAt === null) {
      this.reportConflict(conflict.peer);
      return;
    }
    if (now - this.conflictLoggedAt < CONFLICT_REMINDER_MS) return;
    this.conflictLoggedAt = now;
    this.opts.logger.warn(
      'block sync still stopped: conflicting certified histories (CONFLICTING CHAIN above)',
      {
        ...conflict,
      },
    );
  }

  /**
   * Decodes `encoded` and starts its pre-check; null if it does not decode, or if its commit does
   * not verify (yet) against the validators the head state knows for its height: any peer can
   * answer a range request, and a block full of forged signatures must cost this node no check
   * before +2/3 of the validators are known to have signed it. applyBlock checks it again on the
   * head it builds on, and blames its peer if it still fails.
   */
  private prepare(encoded: Uint8Array, parent: Block | undefined): Prepared | null {
    let block: Block;
    try {
      block = decode(blockCodec, encoded);
    } catch {
      return null;
    }
    if (!this.commitVerifies(block)) return null;
    this.opts.onCertified?.(block.header.height);
    const prepared: Prepared = {
      block,
      preverified: Promise.resolve(null),
      abandoned: false,
      guessed: parent !== undefined,
      awaited: false,
    };
    prepared.preverified = this.opts.preverify!(
      block,
      parent,
      () => prepared.abandoned,
      () => prepared.awaited,
    );
    prepared.preverified.catch(() => {});
    this.prepared.set(encoded, prepared);
    return prepared;
  }

  /**
   * Whether +2/3 of the validators the head state knows for the block's height precommitted its
   * header. False also where that set is not computed yet (the look-ahead block opens an epoch
   * whose set the block before it computes). Before the chain's first epoch boundary no set is
   * stored and the state answers the genesis set for every epoch, epoch 1 included, although the
   * last block of epoch 0 may compute another: only a computed set (or epoch 0's) may vouch for a
   * block, or a commit by the genesis validators alone would buy a look-ahead pre-check of epoch
   * 1's first block from validators that may no longer be the ones that sign it.
   */
  private commitVerifies(block: Block): boolean {
    const { chain } = this.opts;
    const state = chain.tipState;
    const known = latestValidatorSetEpoch(state) ?? 0n;
    if (epochOf(block.header.height, getPociParams(state)) > known) return false;
    return (
      chain.checkCommit(
        block.commit,
        blockHash(block.header),
        block.header.height,
        this.verifyAndRemember,
      ) === null
    );
  }

  private abandonPrepared(): void {
    for (const p of this.prepared.values()) p.abandoned = true;
    this.prepared.clear();
  }

  /**
   * A peer's range request, answered by `readBlockRange` (sync.ts): the stored bytes as they are,
   * each read only once the peer's budget and a read slot have room, and offered to `take`.
   */
  async blocksFor(from: bigint, to: bigint, take?: BlockTake): Promise<Uint8Array[]> {
    return readBlockRange(from, to, this.opts.chain, take);
  }
}

/** What `preverifySyncedBlock` reads of the node's chain. */
export type PreverifyChain = Pick<Chain, 'tip' | 'tipState' | 'genesis'>;

/**
 * A synced block's signatures checked on the pool (block-preverify.ts) before it executes. The
 * caller has checked its commit (SyncReactor.commitVerifies), which vouches for the header only:
 * a peer can attach any transactions to a genuine header and commit, so nothing is checked unless
 * the body is the one the header's transaction root names. `parent`: the block being executed
 * while this one is checked (sync's look-ahead); the head state does not hold it yet, so its
 * header names the slot the heartbeats' answers answer. `isTxVerified`: what admission already
 * checked. Null where nothing was checked (execution then checks every signature itself).
 */
export async function preverifySyncedBlock(
  preverifier: BlockPreverifier,
  chain: PreverifyChain,
  block: Block,
  parent: Block | undefined,
  abandoned: (() => boolean) | undefined,
  isTxVerified: (env: TxEnvelope) => boolean,
  awaited?: () => boolean,
): Promise<SyncPreverified | null> {
  const envelopes = preverifier.decode(block);
  // The root binds each transaction's body, not its signature (a transaction's hash leaves the
  // signature out): a peer can still swap signatures in a genuine block. What that costs is
  // bounded by the pre-check itself (it stops sending after the first failure) and is no more
  // than executing the block would check; a genuine signature it finds is one the genuine block
  // needs anyway.
  if (!envelopes || !equalBytes(txRootOf(envelopes), block.header.txRoot)) return null;
  const head = parent
    ? { height: parent.header.height, hash: blockHash(parent.header), beacon: parent.header.beacon }
    : { height: chain.tip.header.height, hash: chain.tip.hash, beacon: chain.tip.header.beacon };
  const { complete } = await preverifier.preverifyAll(
    envelopes,
    chain.tipState,
    chain.genesis.chainId,
    head,
    () => false,
    abandoned,
    awaited,
  );
  const verified = new Set<string>();
  const unverified = new Set<string>();
  for (const env of envelopes)
    (isTxVerified(env) || preverifier.isTxVerified(env) ? verified : unverified).add(keyId(env.hash));
  return {
    envelopes,
    isSignatureVerified: (hash) => {
      const id = keyId(hash);
      return verified.has(id) && !unverified.has(id);
    },
    isEd25519Verified: preverifier.isEd25519Verified,
    complete,
  };
}
