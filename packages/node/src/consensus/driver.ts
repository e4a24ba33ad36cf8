/**
 * The consensus driver: runs the pure Tendermint machine (@unc/core consensus/tendermint.ts)
 * between real processes. It feeds the machine network messages it has verified (decoding,
 * signature, validator membership, height) and the timeouts it scheduled, and carries out the
 * machine's actions: build a block when this validator proposes, broadcast proposals and votes,
 * commit a decided block with its certificate. The machine signs through a PrivValidator whose
 * state the driver writes to disk before any signature leaves the process.
 *
 * Everything that touches the machine or the chain runs on one queue, one task at a time, so a
 * block is never validated against a head that is being replaced under it.
 *
 * A node that finds peers ahead of it (at start, or stalled while they move on) fetches the
 * missing blocks with their commits and checks each like any block from a stranger, then joins
 * consensus at the next height. With no network and one validator this is the dev chain: the
 * same code path, deciding each block alone.
 *
 * The driver is the consensus reactor and routes each gossip topic to its reactor: transactions
 * to the mempool reactor (mempool-reactor.ts), evidence to the evidence pool (evidence-pool.ts),
 * block ranges and catching up to the sync reactor (sync-reactor.ts). What each topic checks
 * before anything acts on a message is in gossip-checks.ts, as plain functions.
 */
import {
  type Block,
  type ConsensusAction,
  type ConsensusEvent,
  commitHash,
  DEFAULT_TIMEOUTS,
  decode,
  defaultVerify,
  duplicateProposalEvidence,
  encode,
  equalBytes,
  keyId,
  MAX_BLOCK_BYTES,
  MAX_BLOCK_TIME_DRIFT_MS,
  PrivValidator,
  type PrivValidatorState,
  type Proposal,
  selectProposer,
  sha256,
  Tendermint,
  type TimeoutParams,
  type TimeoutStep,
  type TxEnvelope,
  toHex,
  ValidationError,
  type ValidatorSet,
  type VerifiedSignatures,
  type VerifyFn,
  type Vote,
} from '@unc/core';
import type { AdmissionResult } from '../admission.js';
import {
  BlockWriteError,
  type Chain,
  type CommittedBlock,
  type PendingBlock,
  type Rejected,
  type ValidatorKey,
} from '../chain.js';
import { type Cancel, type Clock, every, sleep, systemClock } from '../clock.js';
import type { Logger } from '../log.js';
import {
  type ChainStatus,
  type DirectMessage,
  type GossipTopic,
  MAX_DIRECT_MESSAGES,
  MAX_TXS_PER_REQUEST,
  type Network,
  type NetworkHandlers,
  type Verdict,
} from '../p2p/types.js';
import type { SyncProgress } from '../sync.js';
import type { SignatureVerifier } from '../verify-pool.js';
import { BehindView } from './behind-view.js';
import { BlockPreverifier, type InFlightChecks } from './block-preverify.js';
import {
  carrying,
  compactOf,
  encodeCompactWithin,
  idListHash,
  MAX_CARRIED_BYTES,
  MAX_FETCH_PEERS,
  MAX_FETCHES,
  MAX_FETCHES_IN_ALL,
  mayBeMissingAtPeers,
  Rebuild,
  signProposalIds,
  txsOfBlock,
  wireIdsOfBlock,
} from './compact-block.js';
import { EvidencePool } from './evidence-pool.js';
import {
  checkCompactProposalGossip,
  checkProposalGossip,
  checkVoteGossip,
  type GossipView,
  proposalEnvelopeProblem,
  signedContentMatches,
} from './gossip-checks.js';
import { HeightTrace } from './height-trace.js';
import { MempoolReactor } from './mempool-reactor.js';
import { type PeerBinding, peerBindingCodec, peerBindingSigned, signPeerBinding } from './peer-binding.js';
import {
  filePrivvalStorage,
  loadPrivvalFrom,
  type PrivvalStorage,
  type SignedProposalRecord,
  storePrivval,
} from './privval-store.js';
import { budgetForRound, HeightPace, ProposalBudget } from './proposal-budget.js';
import { ProposerLiveness } from './proposer-liveness.js';
import { regossipTargets } from './regossip-targets.js';
import {
  OwnSignaturesAbove,
  recentlySignedHeights,
  SIGNER_GUARD_HEIGHTS,
  SignerStateMissing,
} from './signer-guard.js';
import {
  preverifySyncedBlock,
  type SyncConflict,
  type SyncPreverified,
  SyncReactor,
} from './sync-reactor.js';
import {
  type CompactProposalMessage,
  compactProposalCodec,
  type ProposalMessage,
  proposalMessageCodec,
  voteMessageCodec,
} from './wire.js';

/** What the driver needs from the node around it (mempool, notifications). */
export interface DriverHost {
  /** Transactions for the next block, in the order they should be tried. */
  /** The mempool in block order; told (through `next`) whether each went into the block. */
  proposalCandidates(): Iterable<TxEnvelope>;
  /**
   * What a re-announcement looks at (mempool-reactor.ts `reannounce`): the includable transactions
   * of the `maxSenders` senders longest in the mempool, at a cost bounded by that, not by the
   * pool's size. Without it, the first of `proposalCandidates` (a heap over every sender).
   */
  reannounceCandidates?(maxSenders: number): Iterable<TxEnvelope>;
  /** Bytes of the transactions pending in the mempool (what a connecting peer's share may hold). */
  pendingBytes?(): number;
  /**
   * Transactions waiting to go into blocks: the mempool's and the admission queue's. A deep
   * backlog puts off re-announcements (mempool-reactor.ts `reannounceDue`).
   */
  backlog?(): number;
  /** Whether these very bytes (the signature included) passed the signature check at admission. */
  isTxVerified(env: TxEnvelope): boolean;
  /** Candidates that no longer apply, found while building a block. */
  onRejected(rejected: Rejected[]): void;
  /** After every committed block, from consensus or from sync. */
  onCommitted(committed: CommittedBlock): void;
  /** Admits a gossiped transaction to the mempool; throws a ValidationError when it is refused. */
  admitTx(env: TxEnvelope): void;
  /**
   * Admits a gossiped batch through the admission queue (signatures on worker threads, slices
   * that yield); rejects, having done nothing, when the queue is full. Without it, `admitTx`.
   */
  admitTxs?(envs: readonly TxEnvelope[]): Promise<AdmissionResult[]>;
  /**
   * A decided block could not be written to disk, or the signer's state could not be saved
   * before a signature: consensus has stopped (it signs nothing more) and the node must stop too,
   * since everything after that block would build on state that is not on disk, and a validator
   * that cannot save its signer state cannot sign. Without it the driver only stops itself and logs.
   */
  onFatal?(error: Error): void;
}

export interface DriverOptions {
  chain: Chain;
  host: DriverHost;
  /** The validator's key; null for a node that follows consensus without voting. */
  validator: ValidatorKey | null;
  /** Where the private validator's state lives (required with a validator). */
  privvalPath: string | null;
  /** Overrides `privvalPath` (the simulator keeps each validator's signer state in memory). */
  privvalStorage?: PrivvalStorage;
  /** Time and timers; `systemClock` unless the simulator passes its virtual clock. */
  clock?: Clock;
  /** Target interval between blocks: the next height starts this long after the last block's time. */
  blockTimeMs: number;
  timeouts?: TimeoutParams;
  logger: Logger;
  /** Worker threads that check a proposed or synced block's signatures before it executes. */
  verifyPool?: SignatureVerifier | null;
  /** Signature checks passed here, shared with admission (`BlockPreverifier`'s `passed`). */
  verifiedSignatures?: VerifiedSignatures;
  /**
   * With no progress for this long, the driver re-sends the current height's messages and asks
   * peers whether they are ahead. Default: twice the block time plus two seconds.
   */
  stallMs?: number;
  /**
   * Whether proposals gossip transaction ids instead of transactions (compact-block.ts; default
   * true). Off, every proposal travels whole: the simulator compares the bytes of both.
   */
  compactProposals?: boolean;
  /**
   * Whether the next height starts while the decided block is written (default true; its
   * signatures still wait for the write). Off, the height waits for the write first, as before:
   * bench:commit measures both in one run.
   */
  overlapCommit?: boolean;
  /**
   * Whether the proposal budget follows how long heights take here (HeightPace; default true).
   * Off, it follows the measured execution cost alone (a benchmark's baseline, tests).
   */
  paceHeights?: boolean;
  /**
   * A peer that connects again within this long gets no second catch-up (default: the block
   * time). Reconnecting must not buy a peer (or everyone else) a re-send of the height.
   */
  peerCatchUpIntervalMs?: number;
  /**
   * A decided block whose write has not finished after this long (ms, on `clock`) is taken as
   * not written: fatal, like a write that failed (`BlockWriteError`, `DriverHost.onFatal`), so
   * that a supervisor restarts the node from what is on disk instead of it serving a stale head
   * and signing nothing, forever. Default `DEFAULT_BLOCK_WRITE_TIMEOUT_MS`.
   */
  blockWriteTimeoutMs?: number;
  /**
   * Sign at once with a signer that starts with no saved state (no `privval.json`): `unc dev`, and
   * `unc start --allow-fresh-signer`. Without it such a signer is held (`signerHeld`): the node
   * follows without signing until it has caught up with its peers and the last commits it then
   * holds show no precommit of this key (signer-guard.ts), and stops (SIGNER_STATE_MISSING, fatal)
   * if they do; caught up, it stays held until the height then under way is decided without it,
   * or, not decided after a bounded wait, is released there from the round the others are in
   * (`lateSignerFloor`); released, it signs nothing at or before the latest slot at head + 1 that
   * a message of its own key, seen while held, was signed for (`OwnSignaturesAbove`).
   */
  allowFreshSigner?: boolean;
}

/**
 * `state` (what a held fresh signer saw its key sign at `height`, or null) raised to sign nothing
 * at `height` before round `floor`: a released signer that follows the others from round `floor`
 * must not sign in the rounds before, where its lost life may have signed unseen. Null when
 * nothing is to be refused.
 */
export function withRoundFloor(
  state: PrivValidatorState | null,
  height: bigint,
  floor: number,
): PrivValidatorState | null {
  if (floor <= 0) return state;
  const at = state?.height === height ? state : null;
  if (at && at.round >= floor) return at;
  return {
    height,
    round: floor,
    step: 0,
    signBytes: null,
    signature: null,
    lock: at?.lock ?? null,
    votes: at ? [...at.votes] : [],
  };
}

/**
 * How long a block's write may take before the node gives up on its disk: far beyond a slow
 * disk's fsync (tens to hundreds of ms; seconds on a loaded network volume), so only a write that
 * will not finish (a hung device or mount) reaches it.
 */
export const DEFAULT_BLOCK_WRITE_TIMEOUT_MS = 60_000;
/** How long a held fresh signer waits before it warns that it is held, and how often it warns again. */
export const FRESH_SIGNER_WARN_MS = 5_000;
export const FRESH_SIGNER_WARN_EVERY_MS = 60_000;
/**
 * How long a caught-up held fresh signer waits for the height under way to be decided without it
 * before it takes it for one that needs its vote, in block intervals plus propose timeouts: peers
 * stuck on a height send its messages again once idle a block interval and a propose timeout, then
 * every block interval (`maybeRegossip`), so by then each has re-sent this key's lost votes at the
 * round it is stuck in, if it holds any.
 */
export const FRESH_SIGNER_STUCK_WAIT = 3;
/**
 * The highest head at which a caught-up held fresh signer of a new chain is released at once,
 * without waiting out the height under way (`launchExempt`): the chain's first block.
 */
export const FRESH_SIGNER_LAUNCH_HEAD = 1n;

/**
 * Round timeouts: a proposer that is down costs a round of 3 s (plus 0.5 s per further round).
 * Shorter propose timeouts give up on full blocks that are merely slow to build, send and
 * execute on a busy machine, which costs more rounds than it saves.
 */
export const DRIVER_TIMEOUTS: TimeoutParams = DEFAULT_TIMEOUTS;

const MAX_BUFFERED_FUTURE = 2_000;
/** Of those, the votes one validator signed: a few rounds' prevotes and precommits of a few heights. */
const MAX_BUFFERED_VOTES_PER_VALIDATOR = 64;
/**
 * Of those, proposals (full or compact) kept at most, in all and per proposer. An honest node
 * needs the next height's few: its first round's, and a later round's when a round fails.
 */
const MAX_BUFFERED_PROPOSALS = 16;
const MAX_BUFFERED_PROPOSALS_PER_PROPOSER = 2;
const MAX_PENDING_BLOCKS = 16;
const VERIFIED_CACHE = 20_000;
/** Peers remembered for the per-peer catch-up limit; beyond it the oldest are forgotten. */
const MAX_CATCH_UP_PEERS = 4_096;
/**
 * Catch-ups per interval over all peers: peer ids cost nothing to make, so the per-peer limit
 * alone lets a crowd of fresh identities buy a height's messages each. A healing split of 100
 * validators needs 50.
 */
const MAX_CATCH_UPS_PER_INTERVAL = 256;
/**
 * Of those, what peers that never relayed a usable consensus message may take: the rest is kept
 * for peers that did (`relayingPeers`), so a flood of fresh ids cannot starve the peers that carry
 * the network's votes and proposals of their catch-up.
 */
const MAX_UNPROVEN_CATCH_UPS_PER_INTERVAL = MAX_CATCH_UPS_PER_INTERVAL / 2;
/** Peers remembered as relaying usable consensus messages (most recent kept). */
const MAX_RELAYING_PEERS = 1_024;

/**
 * A connection brings the re-send of the height forward only once the height made no progress for
 * this many block intervals: a healthy chain commits one block per interval.
 */
const CONNECT_REGOSSIP_IDLE_INTERVALS = 2;

/**
 * The share of the propose timeout one peer has to answer a transaction fetch before the next is
 * asked (the last peer asked has the request's full timeout): 1 s of the default 3 s.
 */
const FETCH_PEER_SHARE_OF_PROPOSE = 1 / 3;

/**
 * Proposals held for rounds more than one past this node's (`holdIfFarAhead`), in all: one per
 * round, the nearest rounds kept. A proposer may sign one proposal for each of its own turns, as
 * far ahead as it likes; each used to be checked (its block executed) and relayed once, at every
 * node. Held ones are neither checked, fetched nor relayed until their round comes near.
 */
export const MAX_FAR_ROUND_PROPOSALS = 4;
/**
 * Of those, one proposer's at most: a Byzantine proposer signing its own far turns nearest to a
 * lagging node could otherwise take every place and shut out the honest proposal of the round the
 * network is in, so the node prevoted nil there after skipping to it.
 */
export const MAX_FAR_ROUND_PROPOSALS_PER_PROPOSER = 2;
/**
 * Distinct blocks (block hash and the transaction ids its proposer signed) executed per round of
 * the height being decided (`holdOverCap`), but for a block the machine may still need (2/3+
 * prevoted or precommitted it). Only the round's proposer may sign its proposals, and an honest one
 * signs one block: each further one is an equivocation, new signature and block hash, relayed once
 * and executed once at every node. With no cap a Byzantine proposer made every node execute as
 * many (maximum-size, invalid) blocks per turn as it cared to sign, and a block found invalid
 * blames no relay (clock skew), so nothing stopped it. One is all the machine uses: a round keeps
 * the first proposal it is given, and a later one counts only once 2/3+ commit to its block.
 */
export const MAX_EXECUTED_BLOCKS_PER_ROUND = 1;
/**
 * Blocks over that cap held unexecuted in all, for the height being decided: executed once 2/3+
 * prevote or precommit them, dropped with the height. Held compact (`HeldProposal`: the signed
 * parts and the packed transaction ids, no bodies; rebuilt from the mempool and the peers that
 * sent it when released), so four times the places the whole blocks once took fit in the same
 * memory (`MAX_HELD_OVER_CAP_BYTES`). One place per sender and round (a peer, or a validator for
 * all the peers it bound to itself), the least supported given up for a newcomer that ranks at
 * least as high (`holdUnexecuted`).
 */
export const MAX_HELD_OVER_CAP = 16;
/**
 * The bytes the held blocks may take in all: what four whole blocks took before they were held
 * compact. A block of 100,000 tiny transactions has 3.2 MB of ids, so an attacker signing such
 * blocks fills ten places at least; honest blocks take a few kilobytes.
 */
const MAX_HELD_OVER_CAP_BYTES = 4 * MAX_BLOCK_BYTES;
/** Peers remembered per compact proposal being fetched as having sent it too (`announcers`). */
const MAX_ANNOUNCERS = 8;

/**
 * A proposal held over its round's execution cap (`holdUnexecuted`): its compact form without the
 * bodies and ids (`msg`), the ids packed in one buffer (`ids`, 32 bytes each: one allocation, not
 * one object per transaction), the peers that sent it, and what it takes (`bytes`, estimated).
 * Its bodies are rebuilt from the mempool and fetched from its senders, or any peer that executed
 * it, once it is released: 2/3+ then voted for it, so most validators hold it.
 */
interface HeldProposal {
  msg: CompactProposalMessage;
  ids: Uint8Array;
  bytes: number;
  senders: Set<string>;
}

type Buffered =
  | { kind: 'vote'; vote: Vote }
  | { kind: 'proposal'; msg: ProposalMessage; from: string }
  | { kind: 'compact'; msg: CompactProposalMessage; from: string };

/** The precommit wait after a nil quorum in round 0; it doubles with each round (`nilQuorumPrecommitWait`). */
const NIL_QUORUM_PRECOMMIT_WAIT_MS = 100;

/**
 * The precommit wait of `round` once 2/3+ precommitted nil there, given the machine's wait
 * (`delayMs`): 100 ms in round 0, doubling with each round, never more than the machine's, which
 * it equals from round 6 on with the default timeouts (4 s).
 *
 * Safe: no block can be decided in such a round (a quorum for a block would need a validator
 * honest in both quorums to precommit twice), and timeouts decide only when a round gives up.
 * Live: Tendermint's argument needs each wait to eventually outgrow the network's delay after GST;
 * these do (from round 6 they are the machine's own), and rounds with shorter waits before that
 * only pass sooner to a round where it holds. A wait cut to nothing in every round did stall: the
 * simulator's seeds 1767 and 4486 (a validator voting for unknown blocks) raced validators
 * through rounds ahead of each other's messages for 60 s and more (sim.test.ts runs them).
 */
export function nilQuorumPrecommitWait(delayMs: number, round: number, proposerWrittenOff = false): number {
  // A round whose proposer is cut off (proposer-liveness.ts: its node's connection closed, and
  // nothing it signed for the height since) failed for a reason this node saw, not for a delay a
  // longer wait could outlast; and a proven equivocator's round needs no wait to grow for
  // liveness, which rests on honest proposers' rounds. The next round follows after the short
  // wait, whatever the round.
  if (proposerWrittenOff) return Math.min(delayMs, NIL_QUORUM_PRECOMMIT_WAIT_MS);
  return Math.min(delayMs, NIL_QUORUM_PRECOMMIT_WAIT_MS * 2 ** Math.max(0, Math.min(round, 30)));
}
export class ConsensusDriver {
  readonly chain: Chain;
  private readonly host: DriverHost;
  private readonly logger: Logger;
  private readonly validator: ValidatorKey | null;
  private readonly privvalStorage: PrivvalStorage | null;
  private readonly clock: Clock;
  private readonly blockTimeMs: number;
  private readonly maxClockDriftMs: number;
  private readonly stallMs: number;
  private readonly timeouts: TimeoutParams;
  private readonly compactProposals: boolean;
  private readonly overlapCommit: boolean;
  private readonly paceHeights: boolean;

  /** Replaced once, when a held fresh signer is released (`releaseSigner`). */
  private machine: Tendermint;
  private privval: PrivValidator | null = null;
  /**
   * A fresh signer (no saved state at start) not yet cleared to sign: the machine runs without it
   * (a follower), and its state is not written, so a restart still finds it fresh. A node whose
   * whole data directory was lost starts with an empty chain store, which the start guard cannot
   * search; this waits until the store holds what its peers hold, then searches it.
   */
  private signerHeld = false;
  private signerProbing = false;
  /**
   * While held: this key's own signatures seen above the head (peers re-send the undecided height,
   * where the lost node may have voted), to release the signer with the state they prove.
   */
  private ownSignatures: OwnSignaturesAbove | null = null;
  /**
   * When a held fresh signer was first found caught up, and the head then: the height after that
   * head is the one its lost life may have signed at (`releaseSigner` waits it out).
   */
  private signerCaughtUp: { head: bigint; at: number } | null = null;
  /**
   * Whether the chain store held no block when this driver was built: no earlier life of this
   * data directory decided a block here (a condition of `launchExempt`).
   */
  private readonly storeWasEmpty: boolean;
  /** Since when a held fresh signer was first found not caught up, and when it last warned. */
  private signerHeldSince: number | null = null;
  private signerWarnedAt: number | null = null;
  /** What identifies the signer state last written (its latest signatures), to skip rewrites. */
  private lastSavedPrivval = '';
  private lastProposal: SignedProposalRecord | null = null;
  private network: Network | null = null;
  private unsubscribe: (() => void) | null = null;
  private unsubscribeDisconnect: (() => void) | null = null;
  /** This validator's signed binding to its node's peer id (peer-binding.ts), encoded once. */
  private ownBinding: Uint8Array | null = null;
  /** Bindings already checked and taken, by validator and peer id: a repeat costs no signature check. */
  private readonly knownBindings = new Set<string>();
  private lastRegossip = 0;
  private lastProbe = 0;
  private readonly peerCatchUpIntervalMs: number;
  /** When each peer last got a catch-up (oldest first), for the once-per-interval limit. */
  private readonly caughtUpAt = new Map<string, number>();
  private catchUpWindow = { start: Number.NEGATIVE_INFINITY, count: 0, unproven: 0 };
  /**
   * Peers that sent this node a consensus message it accepted (a vote or proposal of the height
   * being decided, signed by a validator), most recent last: such a peer carries the network's
   * traffic, which costs a fresh identity a connection that stays up and relays genuine messages.
   */
  private readonly relayingPeers = new Map<string, true>();
  /** Signatures of the votes and proposals heard so far (`firstHeard`). */
  private readonly heardSignatures = new Set<string>();
  /**
   * The form of each compact proposal first accepted here (by the proposer's signature over its
   * ids: the hash of the message without `sentAt`), bounded like `heardSignatures`. Its carried
   * bodies are not signed, so copies of one proposal carrying different subsets have different
   * gossip ids (p2p/message-id.ts): only the first form is relayed, or anyone could flood the
   * network with one genuine proposal cut into many copies.
   */
  private readonly compactForms = new Map<string, string>();
  /** Catch-ups sent and refused (churn within the interval), for tests and metrics. */
  readonly catchUpStats = { sent: 0, refused: 0, messages: 0 };
  /**
   * Validators' signed peer bindings taken, and validators cut off by a closed connection to
   * their node (proposer-liveness.ts), for tests and the simulator.
   */
  readonly livenessStats = { bindings: 0, cutOff: 0 };
  /** What the mempool reactor published as gossip (mempool-reactor.ts `flushTxs`). */
  get mempoolPublishStats(): Readonly<{ batches: number; txs: number; bytes: number }> {
    return this.mempoolReactor.publishStats;
  }

  /** The mempool reactor's periodic re-announcements (mempool-reactor.ts `reannounce`). */
  get mempoolReannounceStats(): Readonly<{ rounds: number; sends: number; txs: number; bytes: number }> {
    return this.mempoolReactor.reannounceStats;
  }

  /** Pending transactions shared with connecting peers (mempool-reactor.ts), for tests and metrics. */
  get mempoolShareStats(): Readonly<{ sent: number; refused: number; txs: number; bytes: number }> {
    return this.mempoolReactor.shareStats;
  }
  /**
   * Re-sends of a stalled height to every peer, and the messages they carried; `onConnect`: those
   * a connection brought forward (`peerConnected`), the rest a stall timer's (tests, metrics).
   */
  readonly regossipStats = { rounds: 0, messages: 0, onConnect: 0 };
  /** Re-proposals this node sent its polka's prevotes with (`sendPolka`). */
  readonly polkaStats = { sent: 0 };
  /** Where the stall re-send's walk over the peers goes on (`regossipTargets`). */
  private regossipCursor: string | null = null;
  /**
   * Each proposal's and vote's catch-up encoding, made once and shared by every catch-up (and
   * every send in flight): up to 256 new peers per interval, each made to encode the height's
   * blocks (up to 9 MiB each) and votes afresh on the consensus queue, could take more than the
   * interval and hold a copy per unread stream. Dropped with the machine's messages.
   */
  private readonly catchUpEncoded = new WeakMap<Proposal | Vote, Uint8Array>();

  private queue: Promise<void> = Promise.resolve();
  /** Whether the last commits' signers were recalled (`recallRecentCommits`, at the first height). */
  private recalled = false;
  private stopped = false;
  /** The height the machine was started at; 0 until the first start. */
  private height = 0n;
  private readonly timers = new Set<Cancel>();
  private startTimer: Cancel | null = null;
  /** When the next height is due to start on this node's clock (`scheduleHeight`). */
  private heightDueAt = 0;
  private watchdog: Cancel | null = null;
  /** Checks that no block write stays pending past `blockWriteTimeoutMs`. */
  private writeWatchdog: Cancel | null = null;
  private readonly blockWriteTimeoutMs: number;
  /** The write in flight as last seen by the write watchdog: its block's height, and since when. */
  private watchedWrite: { height: bigint; since: number } | null = null;
  /** The write watchdog gave up on a write (once: the chain's failure is final). */
  private writeGivenUp = false;
  private lastProgress: number;
  /**
   * Blocks of the current height found valid on the head state, by hash, with the message they
   * came in (null for this validator's own). Only valid ones: the block hash leaves transaction
   * signatures out, so a verdict of invalid holds only for the exact bytes checked
   * (`invalidContent`), never for every block under that hash.
   */
  private pending = new Map<string, { pending: PendingBlock; message: ProposalMessage | null }>();
  /**
   * Blocks of the current height found invalid, by block hash and the hash of their transactions'
   * wire ids (`idListHash`): the exact bytes checked, which their proposer signed.
   */
  private invalidContent = new Set<string>();
  /** Votes of later heights, kept for when their height begins (`buffer`, `replayBuffered`). */
  private futureVotes: Extract<Buffered, { kind: 'vote' }>[] = [];
  /** The precommit timeout last scheduled: when it fires, the machine's wait, whether it is the short one. */
  private precommitDue: {
    height: bigint;
    round: number;
    at: number;
    machineMs: number;
    short: boolean;
  } | null = null;
  /** How many of `futureVotes` each validator signed (`keepVote`). */
  private readonly futureVoteCounts = new Map<string, number>();
  /** Proposals (full or compact) of later heights, bounded apart from the votes (`buffer`). */
  private futureProposals: Exclude<Buffered, { kind: 'vote' }>[] = [];
  /** Heights the network decided beyond the head, from votes and certificates (behind-view.ts). */
  private readonly behindView = new BehindView();
  private readonly verified = new Set<string>();
  /** A stall check is asking the peers how far they are. */
  private probingPeers = false;
  private readonly mempoolReactor: MempoolReactor;
  /** The bodies a block this node built carries in its compact proposal (`carrying`), by block. */
  private readonly carriedOf = new WeakMap<Block, Uint8Array[]>();
  private readonly evidencePool: EvidencePool;
  private readonly syncReactor: SyncReactor;
  private readonly commitListeners = new Set<(c: CommittedBlock, round: number) => void>();
  private readonly preverifier: BlockPreverifier;
  /** How many transactions a proposal should carry to fit a round (proposal-budget.ts). */
  readonly proposalBudget: ProposalBudget;
  /** The proposer's closed loop on how long heights take here (proposal-budget.ts). */
  readonly heightPace: HeightPace;
  /** Who has been heard from lately: a round of a validator that is down waits less for it. */
  private readonly liveness = new ProposerLiveness();
  /**
   * Compact proposals whose missing transactions are being fetched, by the proposer's signature
   * over their ids (a re-wrapped copy is the same fetch), and the peers they came from (one fetch
   * at a time per peer).
   */
  private readonly fetching = new Map<string, Rebuild>();
  private readonly fetchingFrom = new Set<string>();
  /** Fetches in flight by height and round (`MAX_FETCHES` each; earlier rounds share one). */
  private readonly fetchingRounds = new Map<string, number>();
  /**
   * Each fetch in flight of the current height, with the round and block it is for: a fetch of a
   * round that is over lets go of its request and slots (`releaseRounds`) unless the machine may
   * still need its block.
   */
  private readonly roundFetches = new Set<{ round: number; blockHash: Uint8Array; abort: AbortController }>();
  /**
   * Peers other than the first that sent a compact proposal being fetched (by the proposer's
   * signature over its ids): they announced its ids, and are asked before peers that did not.
   */
  private readonly announcers = new Map<string, string[]>();
  /** Proposals for rounds more than one ahead, held until their round comes near (`holdIfFarAhead`). */
  private readonly farRounds = new Map<
    string,
    {
      topic: 'proposal' | 'compact-proposal';
      data: Uint8Array;
      from: string;
      height: bigint;
      round: number;
      proposer: string;
    }
  >();
  /** The height and round last seen by `releaseRounds`. */
  private releasedAt = { height: 0n, round: 0 };
  /**
   * Far-ahead proposals held, released, dropped (bound or stale), and relayed once handled
   * (`relayReleased`), for tests and metrics.
   */
  readonly farRoundStats = { held: 0, released: 0, dropped: 0, relayed: 0 };
  /**
   * Per round of the current height: the first proposal whose block was executed (evidence against
   * a proposer that signs another), the contents (`blockHash:idsHash`) executed, and whether
   * evidence was reported (`holdOverCap`).
   */
  private executedRounds = new Map<number, { first: Proposal; contents: Set<string>; reported: boolean }>();
  /**
   * Proposals over the round's execution cap, by content, held compact until 2/3+ vote for their
   * block, with every peer that sent that content (`holdUnexecuted`), oldest first.
   */
  private overCap = new Map<string, HeldProposal>();
  /**
   * The height after the head while it is not being decided yet (syncing, or waiting for its block
   * time), and per round and proposer the first content (`blockHash:idsHash`) forwarded unchecked
   * for it (`forwardUnchecked`): a few rounds (`holdIfFarAhead`), each of its own proposer only.
   */
  private forwardedUnchecked: { height: bigint; firsts: Map<string, string> } = {
    height: 0n,
    firsts: new Map(),
  };
  /**
   * Blocks over a round's execution cap: held; released (executed once 2/3+ voted for them);
   * dropped (held, then given up: for a newcomer past the bounds, or for its sender's newer
   * block); refused (a newcomer never held: every place it could take ranks higher). For tests
   * and metrics.
   */
  readonly overCapStats = { held: 0, released: 0, dropped: 0, refused: 0 };
  /**
   * Aborted when the height is decided (or another starts): a fetch for it then lets go of its
   * request and its slots at once, rather than holding them until the request times out.
   */
  private fetchesOfHeight = new AbortController();
  /** Rounds of the current height whose propose timeout fired here. */
  private proposeTimedOut = new Set<number>();
  /** Rounds of this height whose propose wait was cut below a missed turn's (`onTimeout`). */
  private proposeCutShort = new Set<number>();
  /**
   * The current height's proposals accepted (and so relayed) once, by the proposal's signature,
   * with their proposer's signature over the transaction ids they came with and the hash of those
   * ids: what a re-send of the proposal carries (`proposalMessage`).
   */
  private signedIds = new Map<string, { idsSignature: Uint8Array; idsHash: string }>();
  /**
   * Rounds of the current height whose proposer's signed proposal arrived (checked or not yet),
   * with when the first did on this node's clock (`timelyProposal`).
   */
  private proposalArrived = new Map<number, number>();
  /** The round the machine is in and when it entered it on this node's clock (`roundEnteredAt`). */
  private roundEntered = { height: -1n, round: -1, at: 0 };
  /** Rounds of the current height whose proposed block went to the pre-check (one block each). */
  private preverifiedRounds = new Set<number>();
  /** When each stage of the current height happened here (debug log `height stages`). */
  private trace: HeightTrace | null = null;

  constructor(opts: DriverOptions) {
    this.chain = opts.chain;
    this.host = opts.host;
    this.logger = opts.logger;
    this.validator = opts.validator;
    this.clock = opts.clock ?? systemClock;
    this.lastProgress = this.clock.now();
    this.privvalStorage =
      opts.privvalStorage ?? (opts.privvalPath ? filePrivvalStorage(opts.privvalPath) : null);
    this.blockTimeMs = opts.blockTimeMs;
    // The protocol's drift, not a node option: core's tpm2 credit slack allows 2 × this for the
    // proposers' skew on two block times, so every node must refuse past the same bound.
    this.maxClockDriftMs = MAX_BLOCK_TIME_DRIFT_MS;
    this.stallMs = opts.stallMs ?? 2 * opts.blockTimeMs + 2_000;
    this.timeouts = opts.timeouts ?? DRIVER_TIMEOUTS;
    this.compactProposals = opts.compactProposals ?? true;
    this.overlapCommit = opts.overlapCommit ?? true;
    this.paceHeights = opts.paceHeights ?? true;
    this.peerCatchUpIntervalMs = opts.peerCatchUpIntervalMs ?? opts.blockTimeMs;
    this.blockWriteTimeoutMs = opts.blockWriteTimeoutMs ?? DEFAULT_BLOCK_WRITE_TIMEOUT_MS;
    if (!Number.isSafeInteger(this.blockWriteTimeoutMs) || this.blockWriteTimeoutMs <= 0)
      throw new RangeError('blockWriteTimeoutMs must be a positive integer');
    // This thread checks its share of a block's signatures while the workers check theirs,
    // instead of idling until they answer: on 2 cores the pre-check then uses both (bench:attest on
    // the idle machine, heartbeats: 0.47-0.58 x raw one-core verify waiting, 0.65-0.75 sharing).
    // It is busy for its share of a chunk at a time (about 20 ms), and yields between chunks.
    this.preverifier = new BlockPreverifier(opts.verifyPool ?? null, {
      shareWithCaller: true,
      ...(opts.verifiedSignatures ? { passed: opts.verifiedSignatures } : {}),
    });
    this.proposalBudget = new ProposalBudget({
      budgetMs: budgetForRound(this.blockTimeMs, this.timeouts.proposeMs),
    });
    this.heightPace = new HeightPace({ intervalMs: this.blockTimeMs });
    this.storeWasEmpty = this.chain.tipHeight === 0n;
    if (this.validator) {
      if (!this.privvalStorage) throw new Error('a validator needs a path for its private validator state');
      const stored = loadPrivvalFrom(this.privvalStorage, this.validator.publicKey);
      this.privval = new PrivValidator(this.validator.seed, this.chain.genesis.chainId, stored?.state);
      this.lastProposal = stored?.lastProposal ?? null;
      this.signerHeld = stored === null && opts.allowFreshSigner !== true;
      if (this.signerHeld)
        this.ownSignatures = new OwnSignaturesAbove(
          this.chain.genesis.chainId,
          this.validator.publicKey,
          this.cachedVerify,
        );
    }
    this.machine = this.newMachine();
    this.mempoolReactor = new MempoolReactor({
      clock: this.clock,
      admitTx: (env) => this.host.admitTx(env),
      ...(this.host.admitTxs ? { admitTxs: this.host.admitTxs.bind(this.host) } : {}),
      publishBatch: (data) => this.publish('tx', data),
      connected: () => this.network !== null,
      pending: () => this.host.proposalCandidates(),
      ...(this.host.pendingBytes ? { pendingBytes: this.host.pendingBytes.bind(this.host) } : {}),
      ...(this.host.reannounceCandidates
        ? { reannounceCandidates: this.host.reannounceCandidates.bind(this.host) }
        : {}),
      // Only to a peer still connected: it may have left since it connected (the share waits a
      // second, and each batch waits for the one before), and a send to a peer not connected
      // only fails (libp2p.ts openStream never dials: libp2p's dialProtocol dialled it at whatever
      // address it announced).
      sendDirect: async (peer, messages) => {
        const network = this.network;
        if (network && !this.stopped && network.peers().some((p) => p.id === peer))
          await network.sendDirect(peer, messages);
      },
      provenPeer: (peer) => this.relayingPeers.has(peer),
      peerStillConnected: (peer) => this.network?.peers().some((p) => p.id === peer) ?? false,
      peers: () => this.network?.peers().map((p) => p.id) ?? [],
      // Pending four block intervals: every validator holding it would have had a turn to propose
      // it by then, and those whose gossip was lost (a split that kept connections open) had not.
      reannounceAfterMs: 4 * opts.blockTimeMs,
      ...(this.host.backlog ? { backlog: this.host.backlog.bind(this.host) } : {}),
      blockTimeMs: opts.blockTimeMs,
      penalize: (peer, reason) => this.network?.penalize(peer, reason),
      logger: this.logger,
    });
    this.evidencePool = new EvidencePool({
      chain: this.chain,
      validator: this.validator,
      logger: this.logger,
      nextValidators: () => this.nextValidators(),
      admitTx: (env) => this.host.admitTx(env),
      announceTx: (env) => this.announceTx(env),
      publishEvidence: (data) => this.publish('evidence', data),
      // A proven equivocator's turns as proposer get the short wait (proposer-liveness.ts).
      onEquivocation: (offender) => this.liveness.equivocated(offender),
    });
    this.syncReactor = new SyncReactor({
      clock: this.clock,
      chain: this.chain,
      preverify: (block, parent, abandoned, awaited) =>
        this.preverifySynced(block, parent, abandoned, awaited),
      logger: this.logger,
      onCertified: (height) => this.behindView.sawCertified(height, this.clock.now()),
      // Double signing a sync conflict proved: gossiped and put on chain like any other evidence.
      onEvidence: (evidence) => this.evidencePool.reportEvidence(evidence, 'sync'),
      // The reactor logged it; a held fresh signer's next warning names it at once, not after its
      // usual minute (`caughtUpToSign`): the operator must act, and waiting will not release it.
      onConflict: () => {
        this.signerWarnedAt = null;
      },
      onSynced: (committed) => {
        this.signerSyncedPast(committed.block.header.height);
        this.behindView.noteHead(committed.block.header.height);
        this.abandonFetches();
        this.committedToMempool(committed);
        for (const l of this.commitListeners) l(committed, committed.block.commit.round);
      },
    });
  }

  /**
   * While the network has decided heights this node has not committed yet (behind-view.ts, from
   * signed votes and verified certificates, never a peer's claim): how long a client refused on
   * this node's stale state should wait before retrying (a block interval, within 250 ms…5 s).
   * Null when it is not behind, or has been stuck behind too long to promise anything.
   */
  retryWhileBehind(): number | null {
    if (!this.behindView.behind(this.chain.tipHeight, this.nextValidators(), this.clock.now())) return null;
    return Math.min(5_000, Math.max(250, this.blockTimeMs));
  }

  /** The latest block-sync progress, while a sync runs. */
  get syncProgress(): SyncProgress | null {
    return this.syncReactor.syncProgress;
  }

  /** Why block sync stopped for good (conflicting certified histories), until a restart; else null. */
  get syncStopped(): SyncConflict | null {
    return this.syncReactor.conflict;
  }

  private get syncing(): boolean {
    return this.syncReactor.syncing;
  }

  /** What the gossip checks see: the head and the set voting after it. */
  private gossipView(): GossipView {
    return {
      chainId: this.chain.genesis.chainId,
      headHeight: this.chain.tipHeight,
      validators: this.nextValidators(),
      verify: this.cachedVerify,
    };
  }

  private validatorMemo: { head: string; set: ValidatorSet } | null = null;

  /** The set that votes on the block after the head (it changes only at epoch boundaries). */
  private nextValidators(): ValidatorSet {
    const head = toHex(this.chain.tip.hash);
    if (this.validatorMemo?.head !== head) this.validatorMemo = { head, set: this.chain.validatorSet() };
    return this.validatorMemo.set;
  }

  /** The signer the machine may use: none while a fresh signer is held. */
  private get signer(): PrivValidator | null {
    return this.signerHeld ? null : this.privval;
  }

  /** Whether a fresh signer is still held back from signing (tests, status). */
  get holdingFreshSigner(): boolean {
    return this.signerHeld;
  }

  private newMachine(): Tendermint {
    return new Tendermint({
      chainId: this.chain.genesis.chainId,
      timeouts: this.timeouts,
      privval: this.signer,
      verify: this.cachedVerify,
      timely: this.timelyProposal,
    });
  }

  /**
   * Whether this node prevotes for a fresh proposal it holds valid (the machine asks at line 22,
   * in the proposal's round): not if its block time lies more than `maxClockDriftMs` behind the
   * later of when the round's proposal first arrived here and when this node entered the round
   * (`proposalEnvelopeProblem`, `stale`). Arrival, not the end of fetching and executing the block:
   * that is this node's time, not the proposer's. The round's start, not arrival alone: a proposal
   * for the next round arrives before it, and a round can stall far longer than the drift (waiting
   * for 2/3+ of the votes), so one signed at the start of such a stall would otherwise be taken
   * when the round comes, stamped before the whole stall. The block stays valid here (executed,
   * relayed, locked on at a polka, decided on 2/3+ precommits), and a re-proposal is never asked
   * about, so a block the others went on with is never held back. An honest proposer whose clock
   * runs more than the drift behind the others' loses its fresh proposals this way: they prevote
   * nil, and the next round's proposer proposes.
   */
  private readonly timelyProposal = (proposal: Proposal): boolean => {
    const block = this.pending.get(toHex(proposal.blockHash))?.pending.block;
    // A valid block is held until its height ends (for its commit); without it, nothing to judge.
    if (!block) return true;
    const entered = this.roundEnteredAt();
    const reference = Math.max(this.proposalArrived.get(proposal.round) ?? entered, entered);
    const problem = proposalEnvelopeProblem(
      proposal,
      { block },
      reference,
      this.staleWindowMs(proposal.round),
    );
    if (problem?.kind !== 'stale') return true;
    this.logger.info('prevote nil: a fresh proposal stamped too far before its round here', {
      height: proposal.height,
      round: proposal.round,
      proposer: toHex(proposal.proposer).slice(0, 16),
      reason: problem.reason,
    });
    this.mark('stale', proposal.round, this.clock.now(), { behindMs: reference - Number(block.header.time) });
    return false;
  };

  /**
   * How far behind its reference a fresh proposal of `round` may be stamped and still be prevoted:
   * the drift, widened by as much per round as the round's timeouts grow (propose, prevote and
   * precommit deltas). A fixed window would break Tendermint's liveness where honest proposals
   * take longer than it to arrive (a slow link, a saturated node, a late round entry): every fresh
   * proposal would get nil prevotes, round after round, while the growing timeouts wait for
   * nothing. Widened with the rounds, some round's window covers the network's real delay, as the
   * timeouts do; it still grows far slower than a stall lasts (timeouts grow linearly, so a stall
   * of R rounds lasts about R² × delta / 2), so a proposer after a stall backdates by a fraction of it.
   */
  private staleWindowMs(round: number): number {
    const t = this.timeouts;
    return this.maxClockDriftMs + round * (t.proposeDeltaMs + t.prevoteDeltaMs + t.precommitDeltaMs);
  }

  /**
   * When the machine entered the round it is in, on this node's clock. Noted after every event
   * the machine takes (`handle`) and whenever asked: the machine asks `timelyProposal` in the
   * very event that starts a round, before the driver sees that event's actions, and one event
   * runs at one instant, so a round not noted yet was entered now.
   */
  private roundEnteredAt(): number {
    const { height, round } = this.machine.snapshot();
    const e = this.roundEntered;
    if (e.height !== height || e.round !== round) this.roundEntered = { height, round, at: this.clock.now() };
    return this.roundEntered.at;
  }

  /**
   * Signatures the driver already checked on arrival are not checked a second time by the machine.
   * The key is the whole (public key, message, signature) triple: a signature alone vouches for
   * nothing, since anyone can copy a validator's signature onto another vote or proposal.
   */
  private readonly cachedVerify: VerifyFn = (publicKey, message, signature) => {
    const key = toHex(sha256(publicKey, signature, message));
    if (this.verified.has(key)) return true;
    const ok = defaultVerify(publicKey, message, signature);
    if (ok) this.remember(key);
    return ok;
  };

  private remember(key: string): void {
    if (this.verified.size >= VERIFIED_CACHE) this.verified.clear();
    this.verified.add(key);
  }

  /** What the network asks of this node; pass these to `startNetwork` before `start`. */
  handlers(): NetworkHandlers {
    return {
      onGossip: (topic, data, from, direct) => this.onGossip(topic, data, from, direct),
      status: () => this.status(),
      blocks: (from, to, take) => this.syncReactor.blocksFor(from, to, take),
      txs: (blockHash, ids) => this.servedTxs(blockHash, ids),
      isRelayingPeer: (peer) => this.relayingPeers.has(peer),
    };
  }

  status(): ChainStatus {
    return {
      chainId: this.chain.genesis.chainId,
      genesisHash: this.chain.genesisHash,
      height: this.chain.height,
      headHash: this.chain.head.hash,
    };
  }

  /** Each committed block with the round that decided it (tests and metrics). */
  onCommit(listener: (c: CommittedBlock, round: number) => void): () => void {
    this.commitListeners.add(listener);
    return () => this.commitListeners.delete(listener);
  }

  /** The machine's position, for status pages and tests. */
  get position(): { height: bigint; round: number; step: string; syncing: boolean } {
    const s = this.machine.snapshot();
    return { height: s.height, round: s.round, step: s.step, syncing: this.syncing };
  }

  async start(network: Network | null): Promise<void> {
    this.network = network;
    if (network) this.mempoolReactor.startReannouncing();
    // Before the first catch-up: a synced block's write that hangs is caught too.
    this.writeWatchdog = every(
      this.clock,
      Math.max(50, Math.min(1_000, Math.floor(this.blockWriteTimeoutMs / 4))),
      () => this.checkWrite(),
    );
    this.proposalBudget.budgetMs = budgetForRound(
      this.blockTimeMs,
      this.timeouts.proposeMs,
      network === null,
    );
    if (network) {
      // Messages sent before a peer is connected are lost to it: a peer that (re)connects gets
      // this height's messages again, it alone (never a re-broadcast to every peer: a healing
      // split of n nodes would make each send everything n times over, to everyone).
      this.unsubscribe = network.onPeerConnected((peer) => this.peerConnected(peer));
      // A peer whose process stops closes its connection: if a validator signed it as its node,
      // that validator's next turn waits only the short propose timeout (proposer-liveness.ts).
      this.unsubscribeDisconnect =
        network.onPeerDisconnected?.((peer) => this.peerDisconnected(peer)) ?? null;
      // Peers connected before these subscriptions are connected too: a validator bound to one of
      // them and to another peer must not count as down when only the other's connection closes.
      for (const { id } of network.peers()) this.liveness.peerConnected(id);
      if (this.validator) {
        this.ownBinding = encode(
          peerBindingCodec,
          signPeerBinding(
            this.chain.genesis.chainId,
            this.validator.publicKey,
            this.validator.seed,
            network.peerId,
          ),
        );
        // Peers that connected before this subscription got no binding from `peerConnected`.
        for (const { id } of network.peers()) this.sendBinding(id);
      }
      // A node that restarts or joins late catches up with its peers before voting; give the
      // bootstrap dials a moment to connect so that "no peer is ahead" means something.
      const t0 = this.clock.now();
      while (network.peers().length === 0 && this.clock.now() - t0 < 3_000 && !this.stopped)
        await sleep(this.clock, 50);
      await this.enqueue(() => this.catchUp());
      if (this.stopped) return;
    }
    // A held fresh signer: released before the first height when no peer is ahead (or there is no
    // network at all); otherwise the watchdog asks again until it is (`probeSignerRelease`).
    if (this.signerHeld) {
      const caughtUp = network ? await this.caughtUpToSign(network).catch(() => false) : true;
      if (caughtUp) await this.enqueue(() => this.releaseSigner());
      if (this.stopped) return;
    }
    this.watchdog = every(this.clock, Math.max(250, Math.min(1_000, this.blockTimeMs)), () =>
      this.checkStall(),
    );
    this.scheduleHeight();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    this.unsubscribeDisconnect?.();
    this.watchdog?.();
    // The write watchdog runs on until the write in flight settles (below): a stop waits for that
    // write, and one that never finishes would otherwise hold the stop, and the process, for good.
    this.startTimer?.();
    this.mempoolReactor.stop();
    for (const cancel of this.timers) cancel();
    this.timers.clear();
    await this.queue;
    // A block being written finishes (or fails, already reported) before the store may close.
    await this.chain.untilDurable().catch(() => {});
    this.writeWatchdog?.();
  }

  /** Announces a transaction this node admitted (from RPC) to its peers, batched. */
  announceTx(env: TxEnvelope): void {
    this.mempoolReactor.announceTx(env);
  }

  // -------------------------------------------------------------------------------------------
  // The queue

  private enqueue<T>(task: () => Promise<T> | T): Promise<T> {
    const run = this.queue.then(() => task());
    this.queue = run.then(
      () => undefined,
      (err) => {
        if (!this.stopped)
          this.logger.error('consensus task failed', { error: (err as Error).stack ?? String(err) });
      },
    );
    return run;
  }

  /**
   * Starts the next height a block interval after the earlier of the head's block time and this
   * node's clock now (called as the head changes: a commit, a sync, the start). The block time is
   * the proposer's choice, anywhere up to the receivers' clocks + `maxClockDriftMs`: counted from
   * it alone, a proposer stamping its blocks at the drift edge held every node idle that long after
   * each of them (one validator of four, 4.9 s ahead, took the simulated chain from 1.00 to 0.60
   * blocks/s). Now a head stamped ahead of this clock starts the next height one interval after it
   * was taken, and one stamped behind it (the usual case: stamped at its round's start) as before.
   */
  private scheduleHeight(): void {
    if (this.stopped) return;
    const next = this.chain.tipHeight + 1n;
    const now = this.clock.now();
    this.heightDueAt = Math.min(Number(this.chain.tip.header.time), now) + this.blockTimeMs;
    const delay = Math.max(0, this.heightDueAt - now);
    this.startTimer?.();
    this.startTimer = this.clock.schedule(delay, () => {
      this.startTimer = null;
      void this.enqueue(() => this.startHeight(next));
    });
  }

  /**
   * Who signed the last heights' commits, for proposer liveness (`ProposerLiveness.recallCommits`):
   * once, at the first height this driver starts, so after the start-up catch-up (the heights
   * synced then are the ones recalled, not the stale ones the node stopped at). Advisory: a block
   * that cannot be read leaves liveness blank, as before.
   */
  private async recallRecentCommits(): Promise<void> {
    this.recalled = true;
    try {
      const tip = this.chain.tipHeight;
      const commits: { height: bigint; signers: Uint8Array[] }[] = [];
      for (let h = tip; h >= 1n && tip - h < BigInt(this.liveness.heightsToRecall); h--) {
        const block = h === tip ? this.chain.tip.block : await this.chain.blockAt(h);
        if (block) commits.push({ height: h, signers: block.commit.signatures.map((s) => s.validator) });
      }
      this.liveness.recallCommits(commits);
    } catch (err) {
      this.logger.warn('recent commits unreadable; proposer liveness starts blank', {
        error: (err as Error).message,
      });
    }
  }

  private async startHeight(height: bigint): Promise<void> {
    if (!this.recalled && !this.stopped) await this.recallRecentCommits();
    if (this.stopped || height !== this.chain.tipHeight + 1n || height <= this.height) return;
    this.height = height;
    this.abandonFetches();
    this.pending = new Map();
    this.proposeTimedOut = new Set();
    this.proposeCutShort = new Set();
    this.proposalArrived = new Map();
    this.preverifiedRounds = new Set();
    this.signedIds = new Map();
    this.invalidContent = new Set();
    this.executedRounds = new Map();
    this.overCap = new Map();
    if (this.validator) this.liveness.saw(this.validator.publicKey, height);
    this.lastProgress = this.clock.now();
    this.trace = new HeightTrace(height, this.lastProgress);
    // How far past its block-time slot this height started (the previous one ran long).
    this.trace.mark('start', this.lastProgress, {
      late: this.lastProgress - this.heightDueAt,
    });
    await this.handle({
      type: 'start',
      height,
      validators: this.nextValidators(),
      beacon: this.chain.tip.header.beacon,
    });
    // A proposal this validator signed before a restart, whose block only it may have.
    const own = this.lastProposal;
    if (own && own.proposal.height === height && this.validator)
      await this.onProposalMessage(
        {
          ...own,
          idsSignature: signProposalIds(
            this.chain.genesis.chainId,
            own.proposal,
            own.block,
            this.validator.seed,
          ),
          sentAt: 0n,
        },
        null,
      );
    await this.replayBuffered(height);
  }

  /**
   * Hands the machine what was kept for `height` (it arrived early, or during a sync), keeping
   * what is for later heights.
   */
  private async replayBuffered(height: bigint): Promise<void> {
    // Proposals first: their blocks execute while the previous block may still be being written,
    // and a vote handed to the machine first would make them wait for that write (`handle`).
    const buffered: Buffered[] = [...this.futureProposals, ...this.futureVotes];
    this.futureProposals = [];
    this.futureVotes = [];
    this.futureVoteCounts.clear();
    for (const b of buffered) {
      if (b.kind === 'vote') {
        if (b.vote.height === height) await this.handle({ type: 'vote', vote: b.vote });
        else if (b.vote.height > height) this.keepVote(b);
      } else if (b.kind === 'compact') {
        // Not awaited: this runs on the work queue, and a compact proposal's way to the machine
        // (a fetch of what is missing, then the queue) must not wait on the queue it holds.
        if (b.msg.proposal.height === height)
          void this.onCompactProposal(b.msg, () => encode(compactProposalCodec, b.msg), b.from, {
            first: false,
          }).catch((err) =>
            this.logger.debug('kept compact proposal failed', { error: (err as Error).message }),
          );
        else if (b.msg.proposal.height > height) this.futureProposals.push(b);
      } else if (b.msg.proposal.height === height) {
        // Kept from before this height began (a sync, a later height's gossip): one for a round
        // far ahead waits for its round like one that arrives now.
        if (
          this.holdIfFarAhead('proposal', () => encode(proposalMessageCodec, b.msg), b.from, b.msg.proposal)
        )
          continue;
        await this.onProposalMessage(b.msg, b.from);
      } else if (b.msg.proposal.height > height) this.futureProposals.push(b);
    }
  }

  // -------------------------------------------------------------------------------------------
  // The machine

  private async handle(event: ConsensusEvent): Promise<void> {
    if (this.stopped) return;
    if (this.chain.writing && this.maySign(event)) {
      // The write-ahead rule (docs/consensus.md, "Durability before signing"): the previous
      // block's batch is still being written, and nothing for the height after it is signed
      // (proposal, prevote or precommit) before it is on disk. The work before the signature
      // (building or executing the block) has already run on the tip's state; only this waits.
      try {
        await this.chain.untilDurable();
      } catch (err) {
        this.fatal(err);
        return;
      }
      if (this.stopped) return;
    }
    const actions = this.machine.handle(event);
    this.roundEnteredAt();
    try {
      this.persistSigner(actions);
    } catch (err) {
      // Nothing the machine just signed may leave (it is not on disk), and its other actions go
      // with it: the timeouts it scheduled, a decision's commit. Going on, the node logged one
      // error per event and stayed up signing nothing, its machine possibly stalled for good on
      // a dropped timeout or commit, and nothing restarted it. Like a block that cannot be
      // written, this is fatal: the node exits (70) and restarts from its last saved state, which
      // names every signature that left.
      this.fatal(
        new Error(
          `the signer state could not be saved (${this.privvalStorage?.where}): ${err instanceof Error ? err.message : String(err)}`,
        ),
        'the signer state is not on disk',
      );
      return;
    }
    for (const action of actions) await this.perform(action);
    // After any event, not only a precommit received: this node's own nil precommit (cast on a
    // nil polka, a prevote event, or on its prevote timeout) can be the one completing the quorum.
    this.shortenPrecommitWait();
    this.releaseRounds();
    this.releaseNeeded();
  }

  /**
   * The precommit wait of a round is scheduled once 2/3+ of the power precommitted anything, and
   * its length is chosen then: short if those precommits are a nil quorum, the machine's whole
   * wait otherwise. A Byzantine validator that precommits first (for a block, say) made every
   * failed round wait the whole 1 s + 0.5 s per round, though the honest validators' nil
   * precommits completed a nil quorum a moment later (simulator seed 74339: a height of 35 s).
   * When the nil quorum completes, the round now ends after the short wait; the later timeout
   * still fires and is ignored by the machine (its round is over). Only for the round the machine
   * is in: one it has left (a round skip) needs no timeout, and one fired there is ignored anyway.
   */
  private shortenPrecommitWait(): void {
    const due = this.precommitDue;
    if (!due || due.short || due.height !== this.height || due.height !== this.chain.tipHeight + 1n) return;
    const s = this.machine.snapshot();
    if (s.height !== due.height || s.round !== due.round || s.step === 'decided') return;
    if (!this.machine.hasNilPrecommitQuorum(due.round)) return;
    const { height, round } = due;
    const wait = this.nilQuorumWait(height, round, due.machineMs);
    due.short = true;
    if (this.clock.now() + wait >= due.at) return;
    this.logger.debug('precommit wait shortened', { height, round, delayMs: wait });
    this.setTimer(wait, () => void this.enqueue(() => this.onTimeout(height, round, 'precommit')));
  }

  /**
   * After the machine moved to another round or height: a fetch of a round now over lets go of
   * its request and slots (unless the machine may still need its block: locked, valid, or with
   * a quorum of votes), and proposals held for rounds now near are handled as if just arrived.
   */
  private releaseRounds(): void {
    const { height, round } = this.machine.snapshot();
    if (height === this.releasedAt.height && round === this.releasedAt.round) return;
    this.releasedAt = { height, round };
    for (const fetch of this.roundFetches)
      if (fetch.round < round && !this.machine.mayStillNeed(fetch.blockHash))
        fetch.abort.abort(new Error(`round ${fetch.round} is over`));
    const near: { topic: 'proposal' | 'compact-proposal'; data: Uint8Array; from: string }[] = [];
    for (const [key, held] of this.farRounds) {
      if (held.height !== this.chain.tipHeight + 1n) {
        this.farRounds.delete(key);
        if (held.height < this.chain.tipHeight + 1n) this.farRoundStats.dropped++;
        continue;
      }
      if (held.round > this.roundAt(held.height) + 1) continue;
      this.farRounds.delete(key);
      this.farRoundStats.released++;
      near.push(held);
    }
    // Outside this task: handling a proposal queues work behind the one running now.
    for (const held of near)
      void Promise.resolve(this.onGossip(held.topic, held.data, held.from))
        .then((verdict) => {
          if (verdict === 'accept') this.relayReleased(held);
        })
        .catch((err) => this.logger.debug('held proposal failed', { error: (err as Error).message }));
  }

  /**
   * A held proposal handled and accepted once its round came near is sent on, once, to every peer
   * but the one it came from. Held, it got `ignore`, which gossip does not forward, and its id is
   * now in this node's gossip seen-cache, so publishing it would be dropped here as a duplicate:
   * a peer that hears the network through this node (a node lagging rounds is exactly the one
   * whose peers may lag with it) got the round's votes from it and skipped to that round, but
   * never its proposal, and prevoted nil until a stall re-sent it. Sent compact (the ids; this
   * node holds the block now and serves its transactions): a few KiB per peer, at most once per
   * round held, not a block each.
   */
  private relayReleased(held: {
    topic: 'proposal' | 'compact-proposal';
    data: Uint8Array;
    from: string;
  }): void {
    const network = this.network;
    if (!network || this.stopped || this.syncing) return;
    const data =
      held.topic === 'compact-proposal'
        ? held.data
        : encode(compactProposalCodec, compactOf(decode(proposalMessageCodec, held.data)));
    this.farRoundStats.relayed++;
    for (const { id } of network.peers())
      if (id !== held.from)
        network.sendDirect(id, [{ topic: 'compact-proposal', data }]).catch((err) => {
          this.logger.debug('relay of a held proposal failed', { peer: id, error: (err as Error).message });
        });
  }

  /**
   * A proposal (signature checked) of the height after the head for a round more than one past
   * this node's: held, neither checked, fetched nor relayed now (verdict `ignore`), and handled
   * once its round comes near (`releaseRounds`). Only the round's own proposer's is kept, one per
   * round, `MAX_FAR_ROUND_PROPOSALS_PER_PROPOSER` per proposer and `MAX_FAR_ROUND_PROPOSALS` in
   * all, the nearest rounds first. Returns whether it was
   * far ahead (and so is not to be handled now).
   */
  private holdIfFarAhead(
    topic: 'proposal' | 'compact-proposal',
    data: Uint8Array | (() => Uint8Array),
    from: string,
    proposal: Proposal,
  ): boolean {
    if (proposal.round <= this.roundAt(proposal.height) + 1) return false;
    if (proposal.height !== this.chain.tipHeight + 1n) return true;
    if (!equalBytes(proposal.proposer, this.proposerAt(proposal.height, proposal.round))) return true;
    // Those of a height now decided are of no use (they would only take the places).
    for (const [k, held] of this.farRounds)
      if (held.height !== proposal.height) {
        this.farRounds.delete(k);
        this.farRoundStats.dropped++;
      }
    const key = `${proposal.height}:${proposal.round}`;
    if (this.farRounds.has(key)) return true;
    const proposer = toHex(proposal.proposer);
    let ownHeld = 0;
    for (const held of this.farRounds.values()) if (held.proposer === proposer) ownHeld++;
    // A proposer at its own bound competes only with its own held turns; otherwise with all.
    const full =
      ownHeld >= MAX_FAR_ROUND_PROPOSALS_PER_PROPOSER || this.farRounds.size >= MAX_FAR_ROUND_PROPOSALS;
    if (full) {
      const own = ownHeld >= MAX_FAR_ROUND_PROPOSALS_PER_PROPOSER;
      let farthest: [string, number] | null = null;
      for (const [k, held] of this.farRounds)
        if (
          held.height === proposal.height &&
          (!own || held.proposer === proposer) &&
          (!farthest || held.round > farthest[1])
        )
          farthest = [k, held.round];
      if (!farthest || farthest[1] <= proposal.round) {
        this.farRoundStats.dropped++;
        return true;
      }
      this.farRounds.delete(farthest[0]);
      this.farRoundStats.dropped++;
    }
    this.farRounds.set(key, {
      topic,
      data: typeof data === 'function' ? data() : data,
      from,
      height: proposal.height,
      round: proposal.round,
      proposer,
    });
    this.farRoundStats.held++;
    return true;
  }

  /** Proposals kept for a later height, in arrival order (tests). */
  get bufferedProposals(): { height: bigint; round: number; kind: 'proposal' | 'compact' }[] {
    const held: { height: bigint; round: number; kind: 'proposal' | 'compact' }[] = [];
    for (const b of this.futureProposals)
      held.push({ height: b.msg.proposal.height, round: b.msg.proposal.round, kind: b.kind });
    return held;
  }

  /** Later heights' votes kept, per validator (tests). */
  get bufferedVotesByValidator(): Map<string, number> {
    return new Map(this.futureVoteCounts);
  }

  /** Far-ahead proposals held now (tests). */
  get heldFarRoundProposals(): number {
    return this.farRounds.size;
  }

  /** Proposals held over their round's execution cap now (tests). */
  get heldOverCapProposals(): number {
    return this.overCap.size;
  }

  /**
   * Whether handing `event` to the machine may make it sign for the height after the tip. Every
   * event of that height may, but its start: it only requests a value (signed later, in `value`)
   * unless this validator already signed at that height before a restart (its lock is proposed
   * again at once).
   */
  private maySign(event: ConsensusEvent): boolean {
    // A follower signs nothing (a block it decides is committed in order: beginCommit waits).
    if (!this.signer) return false;
    // Still on the height being written (decided): the machine signs nothing more there, and a
    // late vote or timeout of it must not hold the queue (the next height's start waits behind).
    if (event.type !== 'start' && this.height <= this.chain.tipHeight) return false;
    if (event.type !== 'start') return true;
    return this.signer.lastRoundAt(event.height) >= 0 || this.signer.votesAt(event.height).length > 0;
  }

  /**
   * A decided block could not be written, or the signer's state could not be saved: stop signing
   * and committing, loudly, for good.
   */
  private fatal(err: unknown, why = 'a decided block is not on disk'): void {
    const error = err instanceof Error ? err : new Error(String(err));
    if (this.stopped) return;
    this.logger.error(`FATAL: consensus stops: ${why}`, { error: error.message });
    this.stopped = true;
    this.unsubscribe?.();
    this.unsubscribeDisconnect?.();
    this.watchdog?.();
    this.writeWatchdog?.();
    this.startTimer?.();
    this.mempoolReactor.stop();
    for (const cancel of this.timers) cancel();
    this.timers.clear();
    this.host.onFatal?.(error);
  }

  /**
   * A block write pending past `blockWriteTimeoutMs` is a failed write. Without this a write that
   * never returns (a hung disk) left the node up but useless for good: it signed nothing (right:
   * nothing may be signed on state not on disk), kept serving a stale head, and nothing restarted
   * it. Polled on the clock (one write is in flight at a time: each waits for the one before).
   */
  private checkWrite(): void {
    if (this.writeGivenUp) return;
    if (!this.chain.writing) {
      this.watchedWrite = null;
      return;
    }
    const height = this.chain.tipHeight;
    const now = this.clock.now();
    if (this.watchedWrite?.height !== height) {
      this.watchedWrite = { height, since: now };
      return;
    }
    if (now - this.watchedWrite.since < this.blockWriteTimeoutMs) return;
    this.writeGivenUp = true;
    this.writeWatchdog?.();
    const error = this.chain.abandonWrite(`the write was not done after ${now - this.watchedWrite.since} ms`);
    if (!this.stopped) {
      this.fatal(error);
      return;
    }
    // Stopping (`stop` waits for this write): the wait ends now, and the host hears of the failure
    // (the node exits with 70), since closing a store whose write hangs may hang too.
    this.logger.error('FATAL: a decided block is not on disk; stopping without it', { error: error.message });
    this.host.onFatal?.(error);
  }

  /**
   * Writes the signer's state if signing changed it, before the caller sends anything: from here
   * on, a crash cannot make this validator forget a signature that may be on the wire.
   */
  private persistSigner(actions: ConsensusAction[]): void {
    // A held fresh signer signed nothing, and its state is not written: a restart must find it fresh.
    const signer = this.signer;
    if (!signer || !this.privvalStorage || !this.validator) return;
    for (const a of actions) {
      if (a.type !== 'broadcast-proposal') continue;
      const known = this.pending.get(toHex(a.proposal.blockHash));
      const block = known?.pending.block;
      const lastCommit = known?.pending.lastCommit;
      if (block && lastCommit) this.lastProposal = { proposal: a.proposal, block, lastCommit };
    }
    // Every signature changes the last signature (or the slot); nothing else needs a write.
    const state = signer.state;
    const mark = `${state.height}/${state.round}/${state.step}/${state.signature ? toHex(state.signature) : ''}/${
      this.lastProposal ? toHex(this.lastProposal.proposal.signature) : ''
    }`;
    if (mark === this.lastSavedPrivval) return;
    storePrivval(
      this.privvalStorage,
      { publicKey: toHex(this.validator.publicKey), state, lastProposal: this.lastProposal },
      // The state is durable by then: signing goes on, and the next save tries again.
      (err) =>
        this.logger.warn('signer state saved; an old proposal record was not deleted', {
          error: err.message,
        }),
    );
    this.lastSavedPrivval = mark;
  }

  private async perform(action: ConsensusAction): Promise<void> {
    switch (action.type) {
      case 'broadcast-vote':
        if (action.vote.height === this.height)
          this.mark(action.vote.blockHash ? action.vote.type : `${action.vote.type}Nil`, action.vote.round);
        if (!this.canPublish()) return;
        this.publish('vote', encode(voteMessageCodec, { vote: action.vote, sentAt: this.sentAt() }));
        return;
      case 'broadcast-proposal': {
        // A validator alone has nobody to tell: encoding its block's compact form (a hash per
        // transaction) for nobody cost a few µs of every transfer.
        if (!this.canPublish()) return;
        const msg = this.proposalMessage(action.proposal);
        // Compact: peers hold nearly all of the block's transactions already (compact-block.ts).
        // An empty block goes whole (it is as small), and so does every re-sent proposal
        // (`regossip`): the peers it is for missed things, transactions likely among them.
        if (msg && this.validator && this.compactProposals && msg.block.txs.length > 0)
          this.publish(
            'compact-proposal',
            encodeCompactWithin(compactOf(msg, this.carriedOf.get(msg.block) ?? [])),
          );
        else if (msg) this.publish('proposal', encode(proposalMessageCodec, msg));
        else this.logger.warn('proposed a block this node does not hold', { height: action.proposal.height });
        if (msg && action.proposal.polRound >= 0) this.sendPolka(action.proposal);
        return;
      }
      case 'schedule-timeout': {
        const { height, round, step } = action;
        const delayMs = this.timeoutDelay(action);
        this.logger.debug('timeout scheduled', { height, round, step, delayMs });
        if (
          step === 'propose' &&
          height === this.height &&
          delayMs < this.liveness.missedTurnWait(action.delayMs, round)
        )
          this.proposeCutShort.add(round);
        if (step === 'precommit')
          this.precommitDue = {
            height,
            round,
            at: this.clock.now() + delayMs,
            machineMs: action.delayMs,
            short: delayMs < action.delayMs,
          };
        this.setTimer(delayMs, () => void this.enqueue(() => this.onTimeout(height, round, step)));
        return;
      }
      case 'request-value':
        await this.buildValue(action.height, action.round);
        return;
      case 'commit':
        await this.commit(action);
        return;
      case 'evidence':
        this.evidencePool.reportEvidence(action.evidence, 'observed');
        return;
    }
  }

  /**
   * How long this node waits, from the machine's timeout. Two waits are cut short, neither of
   * which can change what is decided (Tendermint is safe under any timing):
   * - the propose wait for a proposer taken to be down (proposer-liveness.ts);
   * - the precommit wait (line 47) after 2/3+ precommitted nil: no block can be decided in that
   *   round, and waiting a second for precommits that cannot change it only delays the next
   *   proposer. With a proposer down this wait, not the propose timeout, was most of each
   *   failed round (1 s of 1.5 s, growing 0.5 s per round). Cut to a short wait that doubles
   *   with each round, not to nothing (`nilQuorumPrecommitWait`): Tendermint stays live because
   *   every wait eventually outgrows the network's delay. With a proposer down at rounds 0 and 1
   *   (the first height after a validator stopped) round 1's wait was 1.5 s; it is 200 ms.
   */
  private timeoutDelay(action: Extract<ConsensusAction, { type: 'schedule-timeout' }>): number {
    const { height, round, step, delayMs } = action;
    if (height !== this.chain.tipHeight + 1n) return delayMs;
    if (step === 'propose')
      return this.liveness.proposeTimeout(
        this.proposerAt(height, round),
        height,
        delayMs,
        round,
        this.quorumNotCutOff(),
      );
    if (step === 'precommit' && this.machine.hasNilPrecommitQuorum(round))
      return this.nilQuorumWait(height, round, delayMs);
    return delayMs;
  }

  /** The precommit wait of a round with a nil quorum, given the machine's (`nilQuorumPrecommitWait`). */
  private nilQuorumWait(height: bigint, round: number, machineMs: number): number {
    const proposer = this.proposerAt(height, round);
    const writtenOff =
      (this.liveness.isCutOff(proposer) && this.quorumNotCutOff()) || this.liveness.hasEquivocated(proposer);
    return nilQuorumPrecommitWait(machineMs, round, writtenOff);
  }

  /**
   * Whether the validators not cut off (their node's connection closed, proposer-liveness.ts)
   * hold 2/3+ of the power: only then can a round succeed without them, and only then is a short
   * wait for a cut-off proposer worth the extra round it may cost.
   */
  private quorumNotCutOff(): boolean {
    const set = this.nextValidators();
    let cut = 0n;
    for (const v of set.validators) if (this.liveness.isCutOff(v.publicKey)) cut += v.power;
    return cut === 0n || set.hasQuorum(set.totalPower - cut);
  }

  /** The proposer of a round of the height after the head. */
  private proposerAt(height: bigint, round: number): Uint8Array {
    return selectProposer(this.nextValidators(), this.chain.tip.header.beacon, height, round).publicKey;
  }

  private async onTimeout(height: bigint, round: number, step: TimeoutStep): Promise<void> {
    if (height !== this.height) return;
    this.mark(`timeout.${step}`, round);
    if (step === 'propose') {
      const s = this.machine.snapshot();
      this.proposeTimedOut.add(round);
      // Still waiting in this very round, and nothing signed by its proposer arrived: it sent
      // nothing in time. A proposal that arrived but is still being checked (a big block on a
      // busy node) is not the proposer's fault: holding it to the short wait would make every
      // busy proposer miss its turns. A re-proposal checked (valid or not) whose polka never reached
      // this node is: its proposer holds the polka's prevotes and sends them with it (`sendPolka`),
      // and one that does not can make every round it is drawn for wait out the whole timeout.
      if (
        s.round === round &&
        s.step === 'propose' &&
        height === this.chain.tipHeight + 1n &&
        (!this.proposalArrived.has(round) || this.machine.lacksPolkaOfReProposal(round))
      ) {
        const proposer = this.proposerAt(height, round);
        // A wait cut below a missed turn's (the proposer taken to be absent, cut off or an
        // equivocator) proves nothing when it runs out: a live proposer wrongly taken to be
        // absent (missing from the commits a restarted node recalled) would be marked, and a
        // proposal that takes longer than 500 ms to arrive would keep it marked.
        if (
          !this.proposeCutShort.has(round) &&
          (!this.validator || !equalBytes(proposer, this.validator.publicKey))
        )
          this.liveness.missedTurn(proposer);
      }
    }
    await this.handle({ type: 'timeout', height, round, step });
  }

  /**
   * A proposal as it is sent (broadcast or re-sent): the block this node holds under its hash,
   * with its proposer's signature over those very transaction bytes. That is the signature that
   * came with the proposal, or this validator's own for its proposals. A proposal whose held
   * bytes are not the ones its proposer signed (another copy of the block, with other valid
   * signatures, came first) is not sent: peers would drop it as altered.
   */
  private proposalMessage(proposal: Proposal): ProposalMessage | null {
    const known = this.pending.get(toHex(proposal.blockHash));
    if (!known) return null;
    const { block, lastCommit } = known.pending;
    const signed = this.signedIds.get(toHex(proposal.signature));
    let idsSignature: Uint8Array | null = null;
    if (signed && signed.idsHash === wireIdsOfBlock(block).idsHash) idsSignature = signed.idsSignature;
    else if (this.validator && equalBytes(proposal.proposer, this.validator.publicKey))
      idsSignature = signProposalIds(this.chain.genesis.chainId, proposal, block, this.validator.seed);
    if (!idsSignature) return null;
    return { proposal, block, lastCommit, idsSignature, sentAt: this.sentAt() };
  }

  /** This validator proposes: a block from the mempool, with its VRF beacon. */
  private async buildValue(height: bigint, round: number): Promise<void> {
    if (!this.validator || height !== this.chain.tipHeight + 1n) return;
    // No block at the trusted checkpoint's height but the checkpoint is accepted, this validator's
    // own included (others' are refused in Chain.checkBeforeExecution): one it built cannot be it
    // (the checkpoint must be a block the network already decided), so it proposes nothing there.
    const cp = this.chain.trustedCheckpoint;
    if (cp && cp.height === height) {
      this.logger.warn(
        "not proposing at the trusted checkpoint's height: only that block may be decided there",
        {
          height,
          round,
        },
      );
      return;
    }
    const time = this.chain.nextBlockTime(BigInt(this.clock.now()));
    // Drawn lazily (the builder keeps drawing past candidates that fail): each signature check is
    // skipped only for the very envelope drawn from the mempool under that hash.
    const drawn = new Map<string, TxEnvelope>();
    // Measured on the clock (the simulator's does not move while code runs: its budget stays wide).
    const started = this.clock.now();
    // With peers, the transactions they very probably lack yet travel with the compact proposal
    // (compact-block.ts, `carrying`): a peer fetching them from this node, now busy, could miss
    // the round.
    const carried: TxEnvelope[] = [];
    const candidates = this.network
      ? carrying(
          this.host.proposalCandidates(),
          (env) => mayBeMissingAtPeers(this.mempoolReactor.admittedAt(env.hash), started, this.blockTimeMs),
          MAX_CARRIED_BYTES,
          carried,
        )
      : this.host.proposalCandidates();
    const { pending, rejected } = this.chain.buildProposal(
      recording(candidates, drawn, this.proposalBudget.maxTxs()),
      time,
      this.validator,
      (hash) => {
        const env = drawn.get(keyId(hash));
        return env !== undefined && this.host.isTxVerified(env);
      },
    );
    const built = this.clock.now();
    if (carried.length > 0)
      this.carriedOf.set(
        pending.block,
        carried.map((env) => env.bytes),
      );
    this.proposalBudget.observe(pending.envelopes.length, built - started);
    this.mark('built', round, built, {
      txs: pending.envelopes.length,
      carried: carried.length,
      ms: built - started,
      max: this.proposalBudget.maxTxs(),
    });
    if (rejected.length > 0) this.host.onRejected(rejected);
    this.rememberPending(toHex(pending.hash), { pending, message: null });
    await this.handle({ type: 'value', height, round, blockHash: pending.hash });
  }

  /**
   * Execution may skip the signatures this node checked at admission, but only for the very bytes
   * it checked: a transaction's hash leaves the signature out, and a proposer could pair a body
   * our mempool holds with a signature that does not verify, which would make the block's
   * validity depend on what each validator's mempool happens to hold.
   */
  private verifiedAmong(envelopes: readonly TxEnvelope[]): (hash: Uint8Array) => boolean {
    const verified = new Set<string>();
    const unverified = new Set<string>();
    for (const env of envelopes)
      (this.host.isTxVerified(env) || this.preverifier.isTxVerified(env) ? verified : unverified).add(
        keyId(env.hash),
      );
    return (hash) => {
      const id = keyId(hash);
      return verified.has(id) && !unverified.has(id);
    };
  }

  private rememberPending(
    key: string,
    entry: { pending: PendingBlock; message: ProposalMessage | null },
  ): void {
    if (!this.pending.has(key) && this.pending.size >= MAX_PENDING_BLOCKS) {
      const oldest = this.pending.keys().next().value as string;
      this.pending.delete(oldest);
    }
    this.pending.set(key, entry);
  }

  private async commit(action: Extract<ConsensusAction, { type: 'commit' }>): Promise<void> {
    const known = this.pending.get(toHex(action.blockHash));
    if (!known) {
      // The machine only decides blocks the driver reported valid, so this is a bug, not input.
      this.logger.error('decided a block this node does not hold; catching up from peers', {
        height: action.height,
      });
      this.lastProgress = 0;
      return;
    }
    const trace = this.trace?.height === action.height ? this.trace : null;
    const decided = this.clock.now();
    trace?.mark('decided', decided, { round: action.round, txs: known.pending.envelopes.length });
    // Returns once the batch is handed to the database: the next height starts on the block's
    // state while it is written (its signatures wait for the write, in `handle`).
    const { committed, durable } = await this.chain.beginCommit(known.pending, action.certificate);
    if (!this.overlapCommit) {
      try {
        await durable;
      } catch (err) {
        this.fatal(err);
        return;
      }
    }
    this.lastProgress = this.clock.now();
    // The next proposal's size follows how long this height took here, start to commit (only with
    // peers: a validator alone waits for nobody, and its budget is already the whole interval).
    if (trace && this.network && this.paceHeights)
      this.proposalBudget.pace = this.heightPace.observeHeight(
        this.lastProgress - trace.startedAt,
        action.round,
        known.pending.envelopes.length,
        this.proposalBudget.maxTxs(),
        this.validator !== null && equalBytes(known.pending.block.header.proposer, this.validator.publicKey),
      );
    trace?.mark('committed', this.lastProgress, {
      ms: this.lastProgress - decided,
      pace: Math.round(this.proposalBudget.pace * 100) / 100,
    });
    this.behindView.noteHead(committed.block.header.height);
    // The mempool drops the block's transactions now, before the next proposal is built from it.
    this.committedToMempool(committed);
    this.liveness.prune(committed.block.header.height);
    this.scheduleHeight();
    durable.then(
      () => {
        if (trace) {
          trace.mark('durable', this.clock.now());
          this.logger.debug('height stages', trace.fields());
        }
        this.afterDurable(committed, action.round);
      },
      (err) => this.fatal(err),
    );
  }

  /** Ends every transaction fetch in flight: the height they were for is over. */
  private abandonFetches(): void {
    this.fetchesOfHeight.abort();
    this.fetchesOfHeight = new AbortController();
  }

  /**
   * A block committed, by consensus or by sync: the host's mempool drops its transactions, and the
   * mempool reactor records its size (the backlog measured in blocks). Both paths make both calls.
   */
  private committedToMempool(committed: CommittedBlock): void {
    this.host.onCommitted(committed);
    this.mempoolReactor.blockCommitted(committed.envelopes.length);
  }

  /** The block is on disk: only now is it reported committed (listeners, evidence built on it). */
  private afterDurable(committed: CommittedBlock, round: number): void {
    if (round > 0) {
      this.logger.info('block decided after failed rounds', {
        height: committed.block.header.height,
        round,
        txs: committed.envelopes.length,
      });
    }
    this.evidencePool.flushEvidence();
    for (const l of this.commitListeners) {
      try {
        l(committed, round);
      } catch (err) {
        this.logger.error('commit listener failed', { error: (err as Error).message });
      }
    }
  }

  /** Marks a stage of the current height's trace (`@rN` after the name for rounds past 0). */
  private mark(stage: string, round: number, now = this.clock.now(), fields?: Record<string, unknown>): void {
    this.trace?.mark(round === 0 ? stage : `${stage}@r${round}`, now, fields);
  }

  /** The sender's clock on a message: only makes a re-sent copy differ from the first (wire.ts). */
  private sentAt(): bigint {
    return BigInt(this.clock.now());
  }

  private setTimer(ms: number, fn: () => void): void {
    if (this.stopped) return;
    const cancel = this.clock.schedule(ms, () => {
      this.timers.delete(cancel);
      fn();
    });
    this.timers.add(cancel);
  }

  // -------------------------------------------------------------------------------------------
  // Gossip in

  private async onGossip(
    topic: GossipTopic,
    data: Uint8Array,
    from: string,
    direct = false,
  ): Promise<Verdict> {
    if (this.stopped) return 'ignore';
    switch (topic) {
      case 'vote': {
        const heard = { first: false };
        return this.relayed(from, await this.onVoteGossip(data, heard), heard.first);
      }
      case 'proposal': {
        const heard = { first: false };
        return this.relayed(from, await this.onProposalGossip(data, from, heard), heard.first);
      }
      case 'compact-proposal': {
        const heard: { first: boolean; idsSignature?: Uint8Array } = { first: false };
        const verdict = this.relayed(
          from,
          await this.onCompactProposalGossip(data, from, heard),
          heard.first,
        );
        return verdict === 'accept' && !this.firstCompactForm(heard.idsSignature, data) ? 'ignore' : verdict;
      }
      case 'tx':
        return this.mempoolReactor.onTxGossip(data, from, direct);
      case 'evidence':
        return this.evidencePool.onEvidenceGossip(data);
      case 'validator-peer':
        return this.onPeerBinding(data, from);
      default:
        return 'ignore';
    }
  }

  /**
   * A validator's signed binding to a peer id (peer-binding.ts). Never relayed ('ignore' when
   * taken): it travels only directly, to each peer a validator connects to. Whoever delivers it,
   * it binds only the peer its validator signed for. Taken only from the peer it names (a node
   * sends its own binding, never another's), checked only for a validator of the set, and once per
   * validator and peer: without the first rule any peer could replay every validator's bindings,
   * and a validator's node could hand out bindings signed for endless made-up peer ids, each one
   * signature check at every node it reaches (nothing penalises an 'ignore').
   */
  private onPeerBinding(data: Uint8Array, from: string): Verdict {
    let binding: PeerBinding;
    try {
      binding = decode(peerBindingCodec, data);
    } catch {
      return 'reject';
    }
    if (binding.peerId !== from) return 'ignore';
    if (!this.nextValidators().has(binding.validator)) return 'ignore';
    const key = `${toHex(binding.validator)}/${binding.peerId}`;
    if (this.knownBindings.has(key)) return 'ignore';
    if (!peerBindingSigned(this.chain.genesis.chainId, binding)) return 'reject';
    if (this.knownBindings.size >= VERIFIED_CACHE) this.knownBindings.clear();
    this.knownBindings.add(key);
    this.liveness.bindPeer(binding.validator, binding.peerId);
    this.livenessStats.bindings++;
    return 'ignore';
  }

  /** The last connection to `peer` closed: a validator whose node it was counts as down (`liveness`). */
  private peerDisconnected(peer: string): void {
    if (this.stopped) return;
    const cut = this.liveness.peerDisconnected(peer, this.chain.tipHeight + 1n);
    if (cut === 0) return;
    this.livenessStats.cutOff += cut;
    this.logger.debug('a validator’s node disconnected: its turns wait the short propose timeout', { peer });
  }

  /** Sends this validator's binding alone to one peer (when no catch-up carries it). */
  private sendBinding(peer: string): void {
    const network = this.network;
    if (!network || !this.ownBinding || this.stopped) return;
    network.sendDirect(peer, [{ topic: 'validator-peer', data: this.ownBinding }]).catch((err) => {
      this.logger.debug('binding send failed', { peer, error: (err as Error).message });
    });
  }

  /**
   * Remembers a peer whose consensus message was accepted and new to this node (catch-up
   * priority, `peerConnected`). Only a first delivery counts: direct messages (catch-ups) bypass
   * gossip's seen-cache, so any peer could send back a vote it was just sent, have it accepted
   * again, and buy each of its fresh ids the catch-ups kept for the peers that carry the traffic.
   */
  private relayed(from: string, verdict: Verdict, first: boolean): Verdict {
    if (verdict !== 'accept' || !first) return verdict;
    this.relayingPeers.delete(from);
    this.relayingPeers.set(from, true);
    if (this.relayingPeers.size > MAX_RELAYING_PEERS) {
      const oldest = this.relayingPeers.keys().next().value;
      if (oldest !== undefined) this.relayingPeers.delete(oldest);
    }
    return verdict;
  }

  /** Whether an accepted compact proposal is in the first form accepted here (`compactForms`). */
  private firstCompactForm(idsSignature: Uint8Array | undefined, data: Uint8Array): boolean {
    if (!idsSignature) return false;
    const key = toHex(idsSignature);
    const form = toHex(sha256(data.subarray(0, data.byteLength - 8)));
    const first = this.compactForms.get(key);
    if (first !== undefined) return first === form;
    if (this.compactForms.size >= VERIFIED_CACHE) this.compactForms.clear();
    this.compactForms.set(key, form);
    return true;
  }

  /**
   * Whether a signed consensus message (by its signature, checked) is heard here for the first
   * time. Bounded; cleared when full (only genuine signatures of validators enter it).
   */
  private firstHeard(signature: Uint8Array): boolean {
    const key = toHex(signature);
    if (this.heardSignatures.has(key)) return false;
    if (this.heardSignatures.size >= VERIFIED_CACHE) this.heardSignatures.clear();
    this.heardSignatures.add(key);
    return true;
  }

  /**
   * A held fresh signer notes a message of its own key above the head (signature checked again
   * under that key): on every way in (gossip, a peer's re-send or catch-up, a message held for its
   * round or height comes through here first), before anything may drop it.
   */
  private noteOwnWhileHeld(message: Vote | Proposal): void {
    const own = this.ownSignatures;
    if (!this.signerHeld || !own) return;
    const head = this.chain.tipHeight;
    const noted = 'proposer' in message ? own.noteProposal(message, head) : own.noteVote(message, head);
    if (noted)
      this.logger.debug('fresh signer held: saw a message its own key signed above the head', {
        height: message.height,
        round: message.round,
        kind: 'proposer' in message ? 'proposal' : message.type,
      });
  }

  private onVoteGossip(data: Uint8Array, heard: { first: boolean }): Promise<Verdict> | Verdict {
    const checked = checkVoteGossip(data, this.gossipView());
    // A vote for the head's height that arrived after this node committed it still shows its
    // validator is up (a far validator's votes often come after the quorum of the near ones).
    if ('late' in checked) {
      this.liveness.saw(checked.late.validator, checked.late.height);
      // Not kept (the head's height), but a trace of this key's earlier life (`launchExempt`).
      this.noteOwnWhileHeld(checked.late);
    }
    if ('buffer' in checked) this.noteOwnWhileHeld(checked.buffer);
    else if ('deliver' in checked) this.noteOwnWhileHeld(checked.deliver);
    if ('buffer' in checked) {
      this.liveness.saw(checked.buffer.validator, this.seenHeight(checked.buffer.height));
      // Signed by a member of the set, for a height past the next: evidence that this node is
      // behind, once validators with over a third of the power show the same.
      this.behindView.sawVote(checked.buffer.validator, checked.buffer.height, this.clock.now());
      this.buffer({ kind: 'vote', vote: checked.buffer });
    }
    if (!('deliver' in checked)) return checked.verdict;
    const vote = checked.deliver;
    heard.first = this.firstHeard(vote.signature);
    this.liveness.saw(vote.validator, vote.height);
    if (this.syncing || vote.height !== this.height) {
      this.buffer({ kind: 'vote', vote });
      return 'accept';
    }
    return this.enqueue(async () => {
      if (vote.height !== this.height) {
        if (vote.height > this.height) this.buffer({ kind: 'vote', vote });
        return 'ignore' as Verdict;
      }
      await this.handle({ type: 'vote', vote });
      return 'accept' as Verdict;
    });
  }

  private onProposalGossip(
    data: Uint8Array,
    from: string,
    heard: { first: boolean },
  ): Promise<Verdict> | Verdict {
    const checked = checkProposalGossip(data, this.gossipView());
    if ('buffer' in checked) this.noteOwnWhileHeld(checked.buffer.proposal);
    else if ('deliver' in checked) this.noteOwnWhileHeld(checked.deliver.proposal);
    if ('buffer' in checked) {
      this.liveness.saw(checked.buffer.proposal.proposer, this.seenHeight(checked.buffer.proposal.height));
      this.buffer({ kind: 'proposal', msg: checked.buffer, from });
    }
    if (!('deliver' in checked)) return checked.verdict;
    if (this.holdIfFarAhead('proposal', data, from, checked.deliver.proposal)) return 'ignore';
    heard.first = this.firstHeard(checked.deliver.proposal.signature);
    this.liveness.saw(checked.deliver.proposal.proposer, checked.deliver.proposal.height);
    this.proposalArrives(checked.deliver.proposal);
    return this.routeProposal(checked.deliver, from);
  }

  /**
   * A compact proposal: the block rebuilt from the transactions this node holds and those it
   * fetches, then handled exactly like a full proposal (same checks of the header's commitments).
   * A later height's is kept (signature checked) and rebuilt when that height begins.
   */
  private async onCompactProposalGossip(
    data: Uint8Array,
    from: string,
    /** `idsSignature`: the delivered message's, for `firstCompactForm` (no second decode). */
    heard: { first: boolean; idsSignature?: Uint8Array },
  ): Promise<Verdict> {
    const checked = checkCompactProposalGossip(data, this.gossipView());
    if ('buffer' in checked) this.noteOwnWhileHeld(checked.buffer.proposal);
    else if ('deliver' in checked) this.noteOwnWhileHeld(checked.deliver.proposal);
    if ('buffer' in checked) {
      this.liveness.saw(checked.buffer.proposal.proposer, this.seenHeight(checked.buffer.proposal.height));
      // Kept for its height like a full one: under load the proposer of the next height sends
      // its proposal while a slower validator is still executing this one, and a compact
      // proposal dropped here was not sent again until the height stalled (4 s), by which time
      // the others had decided it and moved on: that validator then synced, and its own turns
      // as proposer cost the others a whole propose timeout (traced in bench:consensus).
      this.buffer({ kind: 'compact', msg: checked.buffer, from });
    }
    if (!('deliver' in checked)) return checked.verdict;
    heard.idsSignature = checked.deliver.idsSignature;
    return this.onCompactProposal(checked.deliver, data, from, heard);
  }

  /** A checked compact proposal for the height after the head (arrived now, or kept for it). */
  private async onCompactProposal(
    msg: CompactProposalMessage,
    data: Uint8Array | (() => Uint8Array),
    from: string,
    heard: { first: boolean },
    /**
     * A block held over the cap and released (`releaseNeeded`): its other senders, asked first
     * after `from`. 2/3+ voted for it, and at most one block per round gets such a quorum, so its
     * fetch is not held to the per-peer and per-round slots, which anyone can keep busy.
     */
    released?: readonly string[],
  ): Promise<Verdict> {
    const { proposal } = msg;
    if (this.holdIfFarAhead('compact-proposal', data, from, proposal)) return 'ignore';
    heard.first = this.firstHeard(proposal.signature);
    this.liveness.saw(proposal.proposer, proposal.height);
    // On arrival, before its transactions are fetched: a slow fetch is not the proposer's fault.
    this.proposalArrives(proposal);
    if (proposal.height === this.height) this.mark('arrived', proposal.round);
    const key = toHex(proposal.blockHash);
    const known = this.pending.get(key);
    // A block held under this hash is used only if its bytes are the ones signed here: another
    // copy (other valid signatures, same hashes) would pair this proposal with bytes its proposer
    // never signed, and a re-send of it would be dropped as altered.
    const block = known?.pending.block;
    if (block && wireIdsOfBlock(block).idsHash === idListHash(msg.txIds))
      return this.routeProposal(
        { proposal, block, lastCommit: msg.lastCommit, idsSignature: msg.idsSignature, sentAt: msg.sentAt },
        from,
      );
    const rebuild = new Rebuild(msg, (id) => this.mempoolReactor.lookup(id));
    // What this copy found (its carried bodies, what arrived here meanwhile) fills a rebuild of the
    // same signed proposal under way: a relay that raced a copy with the bodies stripped would
    // otherwise have every copy carrying them dropped here as a copy of a proposal being fetched,
    // and this node fetch them (first from that relay) past the propose timeout. The copy that
    // completes the block hands it on; the fetch under way stops (`completedByCopy`).
    const underWay = this.fetching.get(toHex(msg.idsSignature));
    if (underWay?.fillFrom(rebuild.found())) return this.routeProposal(underWay.full(), from);
    const missing = rebuild.missing().length;
    this.logger.debug('compact proposal', {
      height: proposal.height,
      round: proposal.round,
      txs: msg.txIds.length,
      missing,
    });
    if (proposal.height === this.height)
      this.mark('rebuilt', proposal.round, this.clock.now(), { txs: msg.txIds.length, missing });
    if (!rebuild.complete) {
      // Only a proposal the machine could use is worth a fetch: its round's own proposer's, for the
      // round being decided or the next. A fetch slot is held until the peers asked give up (a
      // request timeout each), so otherwise any validator could sign "proposals" out of turn or
      // for its turns far ahead, with ids nobody serves, and keep every slot busy from a few peer
      // ids: an honest proposal that needs a fetch would then be dropped at every node (a
      // proposal for a later round is sent again, whole, once the round comes).
      if (!this.worthFetching(proposal)) return 'ignore';
      // The header commits to the last commit by hash, and nothing else checks the copy's own
      // before the block is rebuilt: anyone may relay one with another. Held first over the cap,
      // such a copy was what a release rebuilt (the genuine copies after it only added senders),
      // and the rebuilt block was refused as altered, so the block 2/3+ voted for never executed.
      if (!equalBytes(commitHash(msg.lastCommit), msg.header.lastCommitHash)) {
        this.network?.penalize(from, `proposal at ${proposal.height} altered in transit`);
        return 'reject';
      }
      const held = `${key}:${idListHash(msg.txIds)}`;
      // A block over its round's execution cap is not worth its fetch either (`holdOverCap`).
      if (this.holdOverCap({ kind: 'compact', msg, from }, held)) return 'ignore';
      // Nor, waiting for its height or syncing, a content other than the first of its round: once
      // rebuilt it would be neither relayed nor checked (`forwardUnchecked`), so a proposer signing
      // block after block for its next turn had every waiting node fetch each one's transactions.
      // Kept compact like the rest of the height (the execution cap decides once it starts).
      if ((this.syncing || proposal.height !== this.height) && this.otherThanFirstUnchecked(proposal, held)) {
        if (!this.proposerBufferFull(proposal.proposer)) this.buffer({ kind: 'compact', msg, from });
        return 'ignore';
      }
      // One fetch per compact message and per sending peer, a few at once: a copy of a message
      // being fetched adds nothing, and one peer cannot take every slot with altered copies.
      // Slots are counted per round (the rounds before the current one share one): the proposer
      // of the next round, signing many proposals for its own turn, cannot take the current
      // round's slots, nor can anyone replaying earlier rounds' proposals.
      // Keyed on what the proposer signed (its signature over the ids), not on the bytes: `sentAt`
      // is not signed, and re-wrapped copies of one proposal must not take a slot each.
      const content = toHex(msg.idsSignature);
      const current = this.roundAt(proposal.height);
      const slot = `${proposal.height}:${proposal.round < current ? 'past' : proposal.round}`;
      const inSlot = this.fetchingRounds.get(slot) ?? 0;
      const underWay = this.fetching.get(content);
      if (underWay) {
        // Another peer sent it too: it announced these ids, so it is asked before peers that did not.
        const known = this.announcers.get(content);
        if (known && !known.includes(from) && known.length < MAX_ANNOUNCERS) known.push(from);
        return 'ignore';
      }
      if (
        !this.network ||
        (released === undefined &&
          (this.fetchingFrom.has(from) ||
            inSlot >= (proposal.round < current ? 1 : MAX_FETCHES) ||
            this.fetching.size >= MAX_FETCHES_IN_ALL))
      )
        return 'ignore';
      this.fetching.set(content, rebuild);
      // A released block's fetch may share its peer with another one: only the first frees it.
      const takesFrom = !this.fetchingFrom.has(from);
      if (takesFrom) this.fetchingFrom.add(from);
      this.fetchingRounds.set(slot, inSlot + 1);
      this.announcers.set(content, (released ?? []).filter((p) => p !== from).slice(0, MAX_ANNOUNCERS));
      // Ended with its height (`fetchesOfHeight`), or with its round (`releaseRounds`).
      const abort = new AbortController();
      const height = this.fetchesOfHeight.signal;
      const onHeight = () => abort.abort(height.reason);
      if (height.aborted) abort.abort(height.reason);
      else height.addEventListener('abort', onHeight, { once: true });
      const fetch = { round: proposal.round, blockHash: proposal.blockHash, abort };
      this.roundFetches.add(fetch);
      try {
        const fetched = await this.fetchMissing(rebuild, from, this.network, content, abort.signal);
        // Completed by another copy's carried bodies: that copy handed the block on.
        if (rebuild.completedByCopy.aborted || !fetched) return 'ignore';
        this.mark('fetched', proposal.round);
      } finally {
        height.removeEventListener('abort', onHeight);
        this.roundFetches.delete(fetch);
        this.announcers.delete(content);
        this.fetching.delete(content);
        if (takesFrom) this.fetchingFrom.delete(from);
        const left = (this.fetchingRounds.get(slot) ?? 1) - 1;
        if (left > 0) this.fetchingRounds.set(slot, left);
        else this.fetchingRounds.delete(slot);
      }
    }
    return this.routeProposal(rebuild.full(), from);
  }

  /**
   * The round this node is in at `height`: the machine's, or 0 for the next height while the
   * machine still holds the one just committed (the block-time wait before a height starts).
   */
  private roundAt(height: bigint): number {
    return height === this.height ? this.machine.snapshot().round : 0;
  }

  /** Whether a compact proposal of the height being decided could be used by the machine now. */
  private worthFetching(proposal: Proposal): boolean {
    if (proposal.height !== this.chain.tipHeight + 1n) return false;
    if (proposal.round > this.roundAt(proposal.height) + 1) return false;
    return equalBytes(proposal.proposer, this.proposerAt(proposal.height, proposal.round));
  }

  /**
   * Asks the peer that sent the proposal, then others, for the transactions still missing. Each
   * answer is checked against the ids asked for; a wrong one is the answering peer's fault. A
   * short answer (the peer lacks some) moves on to the next peer at once: first those that sent
   * the same proposal (they announced its ids), then relaying peers (those that relayed accepted
   * consensus messages: validators and the peers that carry their traffic), most recent first,
   * then any other. Before, the others came in the network's order, so fresh ids that never
   * answer could take every turn, each held to its deadline.
   */
  private async fetchMissing(
    rebuild: Rebuild,
    from: string,
    network: Network,
    content: string,
    signal: AbortSignal,
  ): Promise<boolean> {
    const { height, blockHash } = rebuild.msg.proposal;
    const asked = new Set<string>();
    const nextPeers = (): string[] => {
      const connected = new Set(network.peers().map((p) => p.id));
      const order = [
        ...(asked.size === 0 ? [from] : []),
        ...(this.announcers.get(content) ?? []),
        ...[...this.relayingPeers.keys()].reverse(),
        ...connected,
      ];
      return [...new Set(order)].filter((p) => (p === from || connected.has(p)) && !asked.has(p));
    };
    for (let turn = 0; turn < MAX_FETCH_PEERS; turn++) {
      const candidates = nextPeers();
      const peer = candidates[0];
      if (peer === undefined) break;
      asked.add(peer);
      // Every peer but the last gets a share of the propose timeout, not the request's 10 s: the
      // peer asked first is the one whose copy arrived first, and gossip drops the later copies
      // as seen. A relay that forwards a genuine compact proposal first and then never answers
      // would otherwise hold this node's rebuild past its round's timeout (a nil prevote), so
      // that one relay could make every proposal needing a fetch fail.
      const last = turn === MAX_FETCH_PEERS - 1 || candidates.length === 1;
      const deadline = this.peerDeadline(signal, last, rebuild.completedByCopy);
      const peerSignal = deadline.signal;
      try {
        for (let missing = rebuild.missing(); missing.length > 0; missing = rebuild.missing()) {
          if (this.stopped || height !== this.chain.tipHeight + 1n) return false;
          const ask = missing.slice(0, MAX_TXS_PER_REQUEST);
          const answer = await network.requestTxs(peer, blockHash, ask, peerSignal);
          if (!rebuild.fill(answer)) {
            network.penalize(peer, `answered a transaction request for ${height} with other transactions`);
            break;
          }
          if (answer.length < ask.length) break; // it holds no more of them: the next peer
        }
      } catch (err) {
        if (rebuild.complete) return true;
        if (signal.aborted) return false;
        this.logger.debug('transaction fetch failed', { peer, error: (err as Error).message });
      } finally {
        deadline.cancel();
      }
      if (rebuild.complete) return true;
    }
    this.logger.warn('could not fetch the transactions of a compact proposal', {
      height,
      missing: rebuild.missing().length,
    });
    return false;
  }

  /**
   * An abort signal for one peer's turn in a fetch: the height's (`parent`), another copy of the
   * proposal completing the block (`completed`), or (but for the `last` peer asked) a share of
   * the propose timeout on this node's clock, whichever comes first.
   */
  private peerDeadline(
    parent: AbortSignal,
    last: boolean,
    completed: AbortSignal,
  ): { signal: AbortSignal; cancel: () => void } {
    const controller = new AbortController();
    const parents = [parent, completed];
    const onParent = (event: Event) => controller.abort((event.target as AbortSignal).reason);
    for (const p of parents) {
      if (p.aborted) controller.abort(p.reason);
      else p.addEventListener('abort', onParent, { once: true });
    }
    // The last peer asked has the request's own timeout.
    const cancelTimer = last
      ? () => {}
      : this.clock.schedule(FETCH_PEER_SHARE_OF_PROPOSE * this.timeouts.proposeMs, () =>
          controller.abort(new Error('the peer did not answer in its share of the round')),
        );
    return {
      signal: controller.signal,
      cancel: () => {
        cancelTimer();
        for (const p of parents) p.removeEventListener('abort', onParent);
      },
    };
  }

  /**
   * Transactions a peer asks for to rebuild a compact proposal: only of a block this node holds
   * for the height being decided, only those named (compact-block.ts: no mempool scraping).
   */
  private servedTxs(blockHash: Uint8Array, ids: readonly Uint8Array[]): Uint8Array[] {
    if (ids.length > MAX_TXS_PER_REQUEST) return [];
    const block = this.pending.get(toHex(blockHash))?.pending.block;
    return block ? txsOfBlock(block, ids) : [];
  }

  /** A full proposal for the height after the head: checked now, or kept for its height. */
  private routeProposal(msg: ProposalMessage, from: string): Promise<Verdict> | Verdict {
    const { proposal } = msg;
    if (this.syncing || proposal.height !== this.height) {
      // Forwarded before its block is checked (while syncing, or between the commit of the head
      // and the start of the next height), so it vouches only for what the bytes prove: its
      // signatures (gossip-checks.ts) and that its body is the one its header commits to. The
      // rest (block rules, the clock) is never held against a relay (`onProposalMessage`).
      const envelopes = this.preverifier.decode(msg.block);
      if (!envelopes || !signedContentMatches(msg, envelopes)) {
        this.network?.penalize(from, `proposal at ${proposal.height} altered in transit`);
        return 'reject';
      }
      // Only the round's own proposer's is of any use (the machine drops the others:
      // `onProposalMessage`), and the next height's proposers are known already. Any validator
      // may sign a proposal for any round, so relaying (and keeping) an out-of-turn one let every
      // validator have one full block per near round relayed by every node waiting or syncing,
      // and take the places of the round's proposer's in the bounded buffer.
      if (
        proposal.height !== this.chain.tipHeight + 1n ||
        !equalBytes(proposal.proposer, this.proposerAt(proposal.height, proposal.round))
      )
        return 'ignore';
      const first = this.forwardUnchecked(msg);
      // A further content of the round is kept only in a free place of its proposer's: in the
      // buffer its own oldest goes first, so two more pushed out the one this node relayed (its
      // peers likely hold and follow that one) and it had to wait for a re-send of it.
      if (first || !this.proposerBufferFull(proposal.proposer)) this.buffer({ kind: 'proposal', msg, from });
      return first ? 'accept' : 'ignore';
    }
    return this.preverifyThenHandle(msg, from);
  }

  /**
   * Whether a proposal forwarded unchecked (`routeProposal`) is the first content of its round's
   * proposer seen here for that round: only that one is relayed, any other is kept for the height
   * (it may be the one the network follows; once the height starts, the execution cap decides) but
   * answered 'ignore', neither relayed nor blamed. Its signature and body are checked before this,
   * so only the proposer could have made a second content: it equivocated, and the relay cannot
   * tell which of its blocks the others take, the first as good as any. The content is the one the
   * execution cap counts (block hash and signed ids), so copies of one proposal (re-sent,
   * re-wrapped, compact then whole) all pass. Without
   * this a Byzantine proposer signing many blocks for its next turn had every honest node, waiting
   * for that height or syncing, relay each one to all its peers (up to a full block's bytes each),
   * and each peer decode and hash it.
   */
  private forwardUnchecked(msg: ProposalMessage): boolean {
    const { proposal } = msg;
    const content = `${toHex(proposal.blockHash)}:${wireIdsOfBlock(msg.block).idsHash}`;
    if (this.otherThanFirstUnchecked(proposal, content)) return false;
    const { firsts } = this.forwardedUnchecked;
    // Bounded already (a few rounds, its own proposer each); cleared if ever full all the same.
    if (firsts.size >= VERIFIED_CACHE) firsts.clear();
    firsts.set(firstContentKey(proposal), content);
    return true;
  }

  /**
   * Whether the round of `proposal` (the height after the head, not being decided yet) has a first
   * content forwarded unchecked other than `content` (`forwardUnchecked`).
   */
  private otherThanFirstUnchecked(proposal: Proposal, content: string): boolean {
    if (this.forwardedUnchecked.height !== proposal.height)
      this.forwardedUnchecked = { height: proposal.height, firsts: new Map() };
    const first = this.forwardedUnchecked.firsts.get(firstContentKey(proposal));
    return first !== undefined && first !== content;
  }

  /**
   * The block's signatures go to the pool's workers at once (gathered on the head, as they arrive),
   * and the block executes on the queue meanwhile, taking on trust only the checks in flight; it
   * is accepted (prevote, relay, kept for commit) only once every check it relied on came back
   * valid (`Chain.validateProposalOptimistically`), this thread helping with the checks left.
   */
  private preverifyThenHandle(msg: ProposalMessage, from: string): Promise<Verdict> {
    let checks: InFlightChecks | null = null;
    if (!this.pending.has(toHex(msg.proposal.blockHash))) {
      const envelopes = this.preverifier.decode(msg.block);
      // Only a body that is the one the proposer signed (its header commits to the transactions):
      // any relay can attach other transactions to a genuine signed proposal.
      if (envelopes && signedContentMatches(msg, envelopes) && this.mayPreverify(msg.proposal))
        checks = this.preverifier.launch(
          envelopes,
          this.chain.tipState,
          this.chain.genesis.chainId,
          this.headForPreverify(),
          (env) => this.host.isTxVerified(env),
        );
      if (msg.proposal.height === this.height) this.mark('prechecked', msg.proposal.round);
    }
    return this.enqueue(() => this.onProposalMessage(msg, from, checks));
  }

  /**
   * The pre-check is work on a block before anyone knows it is valid, so it is kept to what an
   * honest proposer causes: only the round's own proposer's block, for a round no further ahead
   * than the next, and one block per round. Any validator may sign proposals, and a proposer may
   * sign many blocks for its round (the machine keeps the first and reports the rest as evidence);
   * without this, each of them made every validator's workers check a block's worth of signatures.
   * A block not pre-checked is still checked in full by execution, which stops at its first
   * invalid transaction: the verdict is the same, only the cores differ.
   */
  private mayPreverify(proposal: Proposal): boolean {
    if (proposal.height !== this.height) return false;
    if (proposal.round > this.machine.snapshot().round + 1) return false;
    if (!equalBytes(proposal.proposer, this.proposerAt(proposal.height, proposal.round))) return false;
    if (this.preverifiedRounds.has(proposal.round)) return false;
    this.preverifiedRounds.add(proposal.round);
    return true;
  }

  /**
   * Checks the block a proposal names and hands the machine the proposal with that verdict.
   * `msg` is a copy whose transaction bytes its proposer signed (`idsSignature`, checked on
   * arrival: gossip-checks.ts, or rebuilt from the signed ids), or this validator's own (`from`
   * null). So a block found invalid here is its proposer's doing, and the verdict is kept under
   * the block hash and those bytes (`invalidContent`): never under the hash alone, which leaves
   * the signatures out, so no altered copy can make a genuine one be taken for invalid.
   */
  private async onProposalMessage(
    msg: ProposalMessage,
    from: string | null,
    /** The block's checks in flight (`preverifyThenHandle`), for optimistic execution. */
    checks: InFlightChecks | null = null,
  ): Promise<Verdict> {
    const { proposal } = msg;
    this.logger.debug('proposal', { height: proposal.height, round: proposal.round, at: this.height, from });
    if (proposal.height !== this.height || proposal.height !== this.chain.tipHeight + 1n) return 'ignore';
    // Only the round's own proposer's proposal is of any use (the machine drops the others), and
    // checking a block costs its execution: any validator could sign any number of proposals out
    // of turn, each a new signature (so relayed once each) and each checked here, at every node.
    if (!equalBytes(proposal.proposer, this.proposerAt(proposal.height, proposal.round))) return 'ignore';
    if (from !== null) this.proposalArrives(proposal);
    // A fresh proposal carrying a block another validator built is refused for what its proposer
    // signed, not for the block: judged before the block's cached verdicts, and never cached under
    // the block's content (`invalidContent`). Cached, another round's proposer re-signing an honest
    // block so and racing it here had the genuine proposal taken for invalid: prevoted nil, never
    // decided. Not executed, and not held against `from` (its proposer's doing).
    if (proposal.polRound === -1 && !equalBytes(msg.block.header.proposer, proposal.proposer)) {
      await this.handle({ type: 'proposal', proposal, valid: false });
      return 'ignore';
    }
    const key = toHex(proposal.blockHash);
    const { idsHash } = wireIdsOfBlock(msg.block);
    const content = `${key}:${idsHash}`;
    let known = this.pending.get(key);
    // A copy of a block held here is relayed on the strength of the held copy's checks, so only
    // with the held copy's body: its proposer's ids (the same bytes) and a last commit its header
    // commits to. Another body (a last commit altered on the way, ids its proposer signed that the
    // header does not commit to) forwarded as valid had every peer not holding the block (clock
    // behind, buffering, syncing) blame this honest node for it, "altered in transit".
    if (
      known &&
      !(
        wireIdsOfBlock(known.pending.block).idsHash === idsHash &&
        equalBytes(commitHash(msg.lastCommit), msg.block.header.lastCommitHash)
      )
    ) {
      const envelopes = this.preverifier.decode(msg.block);
      if (!envelopes || !signedContentMatches(msg, envelopes)) {
        if (from) this.network?.penalize(from, `proposal at ${proposal.height} altered in transit`);
        return 'reject';
      }
    }
    let valid = known !== undefined;
    if (!known && !this.invalidContent.has(content)) {
      const envelopes = this.preverifier.decode(msg.block);
      if (!envelopes || !signedContentMatches(msg, envelopes)) {
        // The header commits to the transactions and the last commit by hash; a copy whose
        // last commit does not match was altered on the way (its proposer signed none of it).
        if (from) this.network?.penalize(from, `proposal at ${proposal.height} altered in transit`);
        return 'reject';
      }
      // Past the bytes' checks (an altered copy takes no place), before the execution the cap is for.
      if (from !== null && this.holdOverCap({ kind: 'proposal', msg, from }, content)) return 'ignore';
      this.noteExecuted(proposal, content);
      let pending: PendingBlock | null = null;
      const head = this.chain.tip.hash;
      try {
        pending = await this.checkProposedBlock(msg, envelopes, checks);
      } catch (err) {
        if (!(err instanceof ValidationError)) throw err;
        this.logger.warn('invalid proposed block', {
          height: proposal.height,
          round: proposal.round,
          proposer: toHex(proposal.proposer).slice(0, 16),
          reason: err.message,
        });
      }
      // Optimistic execution waited for the block's checks: a head that moved meanwhile (it cannot
      // while this runs on the queue, but nothing may be kept on a state that is no longer the head)
      // makes the result moot, not the block invalid.
      if (!equalBytes(head, this.chain.tip.hash) || proposal.height !== this.height) return 'ignore';
      if (pending) {
        known = { pending, message: msg };
        this.rememberPending(key, known);
        valid = true;
      } else {
        if (this.invalidContent.size >= MAX_PENDING_BLOCKS * 16) this.invalidContent.clear();
        this.invalidContent.add(content);
      }
    }
    await this.handle({ type: 'proposal', proposal, valid });
    if (valid) {
      // Relayed once per signed proposal: a later copy (re-wrapped, or full after compact) adds
      // nothing the network has not been sent, and relaying it would let anyone re-broadcast a
      // block at will. Remembered with the ids its proposer signed, for re-sending it.
      const signed = toHex(proposal.signature);
      if (this.signedIds.has(signed)) return from === null ? 'accept' : 'ignore';
      if (this.signedIds.size >= MAX_PENDING_BLOCKS * 16) this.signedIds.clear();
      this.signedIds.set(signed, { idsSignature: msg.idsSignature, idsHash });
      return 'accept';
    }
    // Not forwarded, and not held against `from`: the body is the one its proposer signed (checked
    // above), so the fault is the proposer's, and an honest relay may have passed it on: a block
    // time past our clock's drift is valid on a node whose clock reads a little later, and a
    // proposal is forwarded unchecked while buffered (`routeProposal`). Penalised, a proposer
    // timing its blocks at the drift edge had honest nodes ban each other along clock skew.
    // The proposer answers for it through the votes (nil) and evidence when it equivocates.
    return 'ignore';
  }

  /**
   * Whether a proposal's block is over its round's execution cap (`MAX_EXECUTED_BLOCKS_PER_ROUND`
   * contents executed already) and so held here unexecuted (`holdUnexecuted`), to be executed only
   * once the machine may still need it (`releaseNeeded`). A block the machine may still need now
   * (2/3+ prevoted or precommitted it: the network decides on it, and this node must know it
   * valid to follow, line 49) is executed whatever the cap: at most one block of a round gets such
   * a quorum while at most a third of the power is Byzantine. The first other proposal a round's
   * proposer is seen signing is reported as evidence (the machine reports it only for a proposal
   * it is given, and it is given none it was not told the verdict of).
   */
  private holdOverCap(entry: Exclude<Buffered, { kind: 'vote' }>, content: string): boolean {
    const { proposal } = entry.msg;
    if (proposal.height !== this.height) return false;
    const round = this.executedRounds.get(proposal.round);
    if (!round || round.contents.has(content) || round.contents.size < MAX_EXECUTED_BLOCKS_PER_ROUND)
      return false;
    if (this.machine.mayStillNeed(proposal.blockHash)) return false;
    const { first } = round;
    // The same proposal with other transaction bytes under its block hash (other signatures the
    // hash leaves out) is no proposal equivocation; the content cap holds it all the same.
    if (
      !round.reported &&
      (first.polRound !== proposal.polRound || !equalBytes(first.blockHash, proposal.blockHash))
    ) {
      round.reported = true;
      this.evidencePool.reportEvidence(
        duplicateProposalEvidence(this.chain.genesis.chainId, first, proposal),
        'observed',
      );
    }
    this.holdUnexecuted(entry, content);
    return true;
  }

  /** Counts a content of the current height as executed in its round (`holdOverCap`). */
  private noteExecuted(proposal: Proposal, content: string): void {
    if (proposal.height !== this.height) return;
    const round = this.executedRounds.get(proposal.round);
    if (round) round.contents.add(content);
    else
      this.executedRounds.set(proposal.round, {
        first: proposal,
        contents: new Set([content]),
        reported: false,
      });
  }

  /**
   * Keeps a proposal over its round's cap, compact (`HeldProposal`), within `MAX_HELD_OVER_CAP`
   * places and `MAX_HELD_OVER_CAP_BYTES`. A sender has one place per round: its newer proposal
   * competes with its own older one only, so the proposer's node sending block after block cannot
   * push out the one an honest relay forwarded. The sender is the peer, or the validator that bound
   * the peer to itself by signature (peer-binding.ts) for all its bound peers together: a Byzantine
   * validator binding its own sybils gets one place, not one per sybil. A block is held once with
   * every peer that sent it, and a sender moving on to another block gives up only its own share:
   * the held block goes only once no sender of it is left. An honest relay forwards a proposal of
   * the next height unchecked (between heights, syncing: `routeProposal`), so it may pass on one
   * of the proposer's blocks; were the held block its place alone, its next forward pushed out the
   * block the others (and other relays) forwarded too.
   *
   * Past the bounds, the place given up is the least supported: fewest prevotes for its block in
   * its round (signed, one per validator: Byzantine validators can back at most as many blocks as
   * they are), then not sent by a peer bound to a validator (only a signature binds one; a
   * validator known to have equivocated, the proposer flooding its turn among them, counts for
   * nothing), then not sent by a relaying peer (a fresh id relayed nothing), then the oldest. A
   * newcomer must rank at least as high to take it, or it is refused. So unbound peers, however
   * many relay, cannot push out a block a validator's node forwarded, and with the compact form
   * the sybils that relay need four times the connections they did to push out one no validator's
   * node did. A block pushed out anyway is not lost to the network: a copy that arrives once 2/3+
   * voted for it (a stalled height's re-send, a catch-up) is executed on arrival, and a node left
   * behind syncs the block once the others commit it.
   */
  private holdUnexecuted(entry: Exclude<Buffered, { kind: 'vote' }>, content: string): void {
    const owners = new Map<string, string>();
    const ownerOf = (peer: string): string => {
      let owner = owners.get(peer);
      if (owner === undefined) {
        const validator = this.liveness.boundValidator(peer);
        owner = validator === undefined ? `peer:${peer}` : `validator:${validator}`;
        owners.set(peer, owner);
      }
      return owner;
    };
    const rank = (proposal: Proposal, senders: Iterable<string>): number => {
      let bound = 0;
      let relaying = 0;
      for (const s of senders) {
        if (this.relayingPeers.has(s)) relaying = 1;
        if (ownerOf(s).startsWith('validator:')) bound = 1;
      }
      return 4 * this.machine.prevotesFor(proposal.round, proposal.blockHash).length + 2 * bound + relaying;
    };
    const { from } = entry;
    const { proposal } = entry.msg;
    const owner = ownerOf(from);
    const held = this.overCap.get(content);
    if (held?.senders.has(from)) return;
    // The sender's own older blocks of the round: shared ones lose its share, its own alone make way.
    const own: string[] = [];
    for (const [k, h] of this.overCap) {
      if (k === content || h.msg.proposal.round !== proposal.round) continue;
      const mine = [...h.senders].filter((s) => ownerOf(s) === owner);
      if (mine.length === 0) continue;
      if (mine.length < h.senders.size) for (const s of mine) h.senders.delete(s);
      else own.push(k);
    }
    if (held) {
      // This one is held already: the sender's older blocks, sent by no one else, make way.
      for (const k of own) this.dropHeld(k);
      held.senders.add(from);
      return;
    }
    const newRank = rank(proposal, [from]);
    const victims: string[] = [];
    for (const k of own) {
      const h = this.overCap.get(k)!;
      if (rank(h.msg.proposal, h.senders) > newRank) {
        this.overCapStats.refused++;
        return;
      }
      victims.push(k);
    }
    const compact = entry.kind === 'proposal' ? compactOf(entry.msg) : entry.msg;
    const ids = new Uint8Array(32 * compact.txIds.length);
    compact.txIds.forEach((id, i) => ids.set(id, 32 * i));
    // Header and proposal take under a kilobyte; a commit about 100 bytes per signature.
    const bytes =
      ids.byteLength +
      1024 +
      100 * (compact.lastCommit.signatures.length + compact.blockCommit.signatures.length);
    let count = this.overCap.size + 1;
    // Summed afresh (16 places at most): no running total to drift when the height resets the map.
    let total = bytes;
    for (const h of this.overCap.values()) total += h.bytes;
    for (const k of victims) {
      count--;
      total -= this.overCap.get(k)!.bytes;
    }
    if (count > MAX_HELD_OVER_CAP || total > MAX_HELD_OVER_CAP_BYTES) {
      // Least supported first; insertion order (the oldest first) on a tie.
      const candidates = [...this.overCap]
        .filter(([k]) => !victims.includes(k))
        .map(([k, h], i) => ({ k, i, bytes: h.bytes, rank: rank(h.msg.proposal, h.senders) }))
        .sort((a, b) => a.rank - b.rank || a.i - b.i);
      for (const c of candidates) {
        if (count <= MAX_HELD_OVER_CAP && total <= MAX_HELD_OVER_CAP_BYTES) break;
        if (c.rank > newRank) {
          this.overCapStats.refused++;
          return;
        }
        victims.push(c.k);
        count--;
        total -= c.bytes;
      }
    }
    for (const k of victims) this.dropHeld(k);
    // Bodies and ids left out: the ids are in `ids`, the bodies are rebuilt on release.
    this.overCap.set(content, {
      msg: { ...compact, txIds: [], carried: [] },
      ids,
      bytes,
      senders: new Set([from]),
    });
    this.overCapStats.held++;
  }

  /** Gives up a held block (`holdUnexecuted`). */
  private dropHeld(content: string): void {
    const h = this.overCap.get(content);
    if (!h) return;
    this.overCap.delete(content);
    this.overCapStats.dropped++;
  }

  /**
   * After the machine took an event: a block held over its round's cap that 2/3+ now prevoted or
   * precommitted (`Tendermint.mayStillNeed`) is handled as if it had just arrived compact: rebuilt
   * from the mempool, what is missing fetched from its senders first, and executed.
   * Outside this task: handling a proposal queues work behind the one running now.
   */
  private releaseNeeded(): void {
    if (this.overCap.size === 0) return;
    const needed: HeldProposal[] = [];
    for (const [k, h] of this.overCap) {
      const { height, blockHash } = h.msg.proposal;
      if (height !== this.height || !this.machine.mayStillNeed(blockHash)) continue;
      this.overCap.delete(k);
      this.overCapStats.released++;
      needed.push(h);
    }
    for (const h of needed) {
      const txIds: Uint8Array[] = [];
      for (let i = 0; i < h.ids.byteLength; i += 32) txIds.push(h.ids.subarray(i, i + 32));
      const msg = { ...h.msg, txIds };
      // Validators' nodes first, then relaying peers, then the rest, in the order they sent it on a
      // tie: the first copies may be ones fresh ids raced in, and the three peers a fetch asks
      // would then all be theirs, each held to its share of the round (`fetchMissing`). Each
      // sender's standing is computed once: boundValidator walks every validator's bound peers.
      const [from, ...others] = [...h.senders]
        .map((p) => ({
          p,
          standing:
            (this.liveness.boundValidator(p) === undefined ? 0 : 2) + (this.relayingPeers.has(p) ? 1 : 0),
        }))
        .sort((a, b) => b.standing - a.standing)
        .map(({ p }) => p);
      void Promise.resolve(
        this.onCompactProposal(msg, () => encode(compactProposalCodec, msg), from!, { first: false }, others),
      ).catch((err) => this.logger.debug('held proposal failed', { error: (err as Error).message }));
    }
  }

  /**
   * With `checks` (the block's signatures in flight on the pool), executed optimistically: valid
   * only once every check execution relied on passed; without, in order as always.
   */
  private async checkProposedBlock(
    msg: ProposalMessage,
    envelopes: readonly TxEnvelope[],
    checks: InFlightChecks | null,
  ): Promise<PendingBlock> {
    const { proposal, block } = msg;
    // A stale fresh proposal is valid: the machine asks whether to prevote it (`timelyProposal`).
    const problem = proposalEnvelopeProblem(proposal, msg, this.clock.now(), this.maxClockDriftMs);
    if (problem?.kind === 'invalid')
      throw new ValidationError('BAD_PROPOSAL', `block ${block.header.height}: ${problem.reason}`);
    const started = this.clock.now();
    const pending =
      checks && checks.size > 0
        ? await this.chain.validateProposalOptimistically(
            block,
            msg.lastCommit,
            this.verifiedAmong(envelopes),
            envelopes,
            this.preverifier.hasPassed,
            checks,
          )
        : this.chain.validateProposal(
            block,
            msg.lastCommit,
            this.verifiedAmong(envelopes),
            false,
            envelopes,
            this.preverifier.isEd25519Verified,
          );
    // Its last commit (checked, as the block's) may hold this key's precommit where the commit
    // stored here does not: a trace of a lost life for a held fresh signer (`launchExempt`).
    if (this.signerHeld) this.ownSignatures?.noteCommit(pending.lastCommit, this.chain.tipHeight);
    const checked = this.clock.now();
    this.proposalBudget.observe(envelopes.length, checked - started);
    this.mark('checked', proposal.round, checked, { txs: envelopes.length, ms: checked - started });
    return pending;
  }

  /** What a heartbeat's chip answers are checked against: the head the block builds on. */
  private headForPreverify() {
    const { header } = this.chain.tip;
    return { height: header.height, hash: this.chain.tip.hash, beacon: header.beacon };
  }

  /**
   * A synced block whose commit verified: its signatures first spread over the verifier
   * (consensus lane), then the block is checked in full, skipping only checks that passed there
   * or at admission.
   */
  private preverifySynced(
    block: Block,
    parent?: Block,
    abandoned?: () => boolean,
    awaited?: () => boolean,
  ): Promise<SyncPreverified | null> {
    return preverifySyncedBlock(
      this.preverifier,
      this.chain,
      block,
      parent,
      abandoned,
      (env) => this.host.isTxVerified(env),
      awaited,
    );
  }

  /**
   * A proposal (signature checked) for the height being decided arrived. In time if before this
   * node gave up on its round; only the round's own proposer counts (anyone else's signed
   * proposal says nothing about whether the proposer proposes).
   */
  private proposalArrives(proposal: Proposal): void {
    if (proposal.height !== this.height || proposal.height !== this.chain.tipHeight + 1n) return;
    // Rounds far ahead have no timeout running here yet (and would let a proposer fill the set).
    if (proposal.round > this.machine.snapshot().round + 1) return;
    if (!equalBytes(proposal.proposer, this.proposerAt(proposal.height, proposal.round))) return;
    if (!this.proposalArrived.has(proposal.round)) this.proposalArrived.set(proposal.round, this.clock.now());
    if (!this.proposeTimedOut.has(proposal.round)) this.liveness.proposedInTime(proposal.proposer);
  }

  /**
   * A message signed for a far height shows its signer is up now, not then: counting it at that
   * height would let a validator sign far ahead once and be waited for in full ever after.
   */
  private seenHeight(height: bigint): bigint {
    const next = this.chain.tipHeight + 1n;
    return height > next ? next : height;
  }

  /** Whether the proposer has its `MAX_BUFFERED_PROPOSALS_PER_PROPOSER` places taken (`buffer`). */
  private proposerBufferFull(proposer: Uint8Array): boolean {
    let own = 0;
    for (const f of this.futureProposals) if (equalBytes(f.msg.proposal.proposer, proposer)) own++;
    return own >= MAX_BUFFERED_PROPOSALS_PER_PROPOSER;
  }

  private buffer(b: Buffered): void {
    // One whose height was committed meanwhile (a fetch that ended as the height moved on) is of
    // no use, and would hold a place until the next replay.
    if ((b.kind === 'vote' ? b.vote.height : b.msg.proposal.height) <= this.chain.tipHeight) return;
    if (b.kind === 'vote') {
      // Votes have their own bound: any validator may sign one for every round of every height
      // ahead, and in one list with the proposals such a flood pushed out every proposal kept.
      this.keepVote(b);
      return;
    }
    // Copies of one signed proposal (a relay may re-wrap it: `sentAt` is not signed) take one
    // place, or each would push out another of its proposer's. A whole block replaces a compact
    // copy of it (nothing left to fetch); otherwise the first copy stays.
    const same = this.futureProposals.findIndex((f) =>
      equalBytes(f.msg.proposal.signature, b.msg.proposal.signature),
    );
    if (same >= 0) {
      if (b.kind === 'proposal' && this.futureProposals[same]!.kind === 'compact')
        this.futureProposals[same] = b;
      return;
    }
    // Proposals are whole blocks (or a megabyte of carried bodies): a validator signing one for
    // every later height and round must not fill the node's memory, nor push out what the
    // others sent. Its own oldest goes first; past the total, the oldest of anyone's.
    const held = this.futureProposals;
    const own = held.filter((f) => equalBytes(f.msg.proposal.proposer, b.msg.proposal.proposer));
    if (own.length >= MAX_BUFFERED_PROPOSALS_PER_PROPOSER) held.splice(held.indexOf(own[0]!), 1);
    else if (held.length >= MAX_BUFFERED_PROPOSALS) held.shift();
    held.push(b);
  }

  /**
   * A later height's vote, kept. Each validator keeps at most MAX_BUFFERED_VOTES_PER_VALIDATOR
   * (its oldest goes first): one validator signing a vote for every round of every height ahead
   * otherwise pushed the others' votes out of the shared bound, those of the next height
   * included, which a node one height behind needs to decide it without waiting for a re-send.
   */
  private keepVote(b: Extract<Buffered, { kind: 'vote' }>): void {
    const id = keyId(b.vote.validator);
    const count = this.futureVoteCounts.get(id) ?? 0;
    if (count >= MAX_BUFFERED_VOTES_PER_VALIDATOR)
      this.dropVoteAt(this.futureVotes.findIndex((f) => equalBytes(f.vote.validator, b.vote.validator)));
    else if (this.futureVotes.length >= MAX_BUFFERED_FUTURE) this.dropVoteAt(0);
    this.futureVotes.push(b);
    this.futureVoteCounts.set(id, (this.futureVoteCounts.get(id) ?? 0) + 1);
  }

  private dropVoteAt(index: number): void {
    const [dropped] = this.futureVotes.splice(index, 1);
    if (!dropped) return;
    const id = keyId(dropped.vote.validator);
    const left = (this.futureVoteCounts.get(id) ?? 1) - 1;
    if (left > 0) this.futureVoteCounts.set(id, left);
    else this.futureVoteCounts.delete(id);
  }

  /** Whether a message published now would go anywhere (checked before encoding one). */
  private canPublish(): boolean {
    return this.network !== null && !this.stopped;
  }

  private publish(topic: GossipTopic, data: Uint8Array): void {
    if (!this.network || this.stopped) return;
    this.network.publish(topic, data).catch((err) => {
      this.logger.debug('publish failed', { topic, error: (err as Error).message });
    });
  }

  // -------------------------------------------------------------------------------------------
  // Stalls and catching up

  private checkStall(): void {
    this.probeSignerRelease();
    if (this.stopped || this.syncing || !this.network) return;
    const now = this.clock.now();
    const idle = now - this.lastProgress;
    // A height that takes longer than a block interval and a propose timeout lost messages: send
    // this height's messages again, once per block interval for as long as it stays stuck.
    if (idle >= this.blockTimeMs + this.timeouts.proposeMs) this.maybeRegossip(now);
    // Probing has its own clock. It used to reset the progress clock instead, so with the default
    // timings (1 s blocks, 3 s propose timeout, 4 s stall) `idle` never got past the re-gossip
    // threshold but by timer jitter, and a height whose messages were lost could wait forever
    // (found by the simulator, whose clock has no jitter: test/sim/sim.test.ts).
    if (idle < this.stallMs || this.probingPeers || now - this.lastProbe < this.stallMs) return;
    this.lastProbe = now;
    // Ask the peers first, outside the work queue: a slow height on a busy network is not a reason
    // to stop voting, and syncing (which holds the queue) only helps when some peer is ahead.
    const network = this.network;
    this.probingPeers = true;
    const probedAt = this.chain.tipHeight;
    // Signed votes and verified certificates (behind-view.ts) prove it behind; a bare status
    // claim counts only from a peer no recent sync caught claiming what it did not serve
    // (sync-reactor.ts `peerAhead`), or one such peer would start a sync at every stall.
    const decided = this.behindView.decided(this.nextValidators(), now);
    const proven = decided !== null && decided > probedAt;
    (proven ? Promise.resolve(true) : this.syncReactor.peerAhead(network))
      .then((behind) => {
        if (!behind || this.stopped) return;
        return this.enqueue(async () => {
          // A height committed since the probe asked answers it: the peer that was ahead is no
          // longer, and a sync now would only hold the queue (a round trip to every peer) while
          // this height's proposal waits.
          if (this.chain.tipHeight > probedAt) return;
          const before = this.chain.tipHeight;
          await this.catchUp();
          if (this.chain.tipHeight > before) this.scheduleHeight();
          // Still at this height: what arrived during the sync was kept for it (found by the
          // simulator: a proposal kept so was otherwise lost until re-sent, 5 s later).
          else if (this.height === this.chain.tipHeight + 1n) await this.replayBuffered(this.height);
        });
      })
      .catch((err) => this.logger.debug('stall check failed', { error: (err as Error).message }))
      .finally(() => {
        this.probingPeers = false;
      });
  }

  /**
   * A peer connected: it gets this height's proposals and votes, sent to it alone, at most once
   * per `peerCatchUpIntervalMs` however often it reconnects, and no more than
   * MAX_CATCH_UPS_PER_INTERVAL peers in all per interval, of which peers that never relayed a
   * usable consensus message take at most half (MAX_UNPROVEN_CATCH_UPS_PER_INTERVAL). What it misses beyond that (a link
   * that flaps inside the interval) the stall re-gossip and sync recover.
   */
  private peerConnected(peer: string): void {
    if (this.stopped) return;
    this.liveness.peerConnected(peer);
    // Its share of the pending transactions, on the mempool reactor's own limits: gossip it missed
    // while away (or before it ever connected) is not sent again otherwise.
    this.mempoolReactor.peerConnected(peer);
    const now = this.clock.now();
    const last = this.caughtUpAt.get(peer);
    if (now - this.catchUpWindow.start >= this.peerCatchUpIntervalMs)
      this.catchUpWindow = { start: now, count: 0, unproven: 0 };
    const proven = this.relayingPeers.has(peer);
    if (
      (last !== undefined && now - last < this.peerCatchUpIntervalMs) ||
      this.catchUpWindow.count >= MAX_CATCH_UPS_PER_INTERVAL ||
      (!proven && this.catchUpWindow.unproven >= MAX_UNPROVEN_CATCH_UPS_PER_INTERVAL)
    ) {
      this.catchUpStats.refused++;
      // No binding either: reconnecting must buy a peer nothing. One that reconnects within the
      // interval got it with the last catch-up; a node restarted that fast, or one past the cap,
      // learns that a validator is down from its silence instead.
      return;
    }
    this.catchUpWindow.count++;
    if (!proven) this.catchUpWindow.unproven++;
    this.caughtUpAt.delete(peer);
    this.caughtUpAt.set(peer, now);
    if (this.caughtUpAt.size > MAX_CATCH_UP_PEERS) {
      const oldest = this.caughtUpAt.keys().next().value;
      if (oldest !== undefined) this.caughtUpAt.delete(oldest);
    }
    void this.enqueue(() => this.sendCatchUp(peer));
    // A connection is also news that the network changed (a split healing, a link back): what the
    // peers that stayed connected lost meanwhile is repaired by the re-send to every peer, the one
    // a stall sends, on the same budget (at most one per block interval from both together).
    // Only while this height is already overdue (no progress for two block intervals): on a
    // healthy chain a connection gets its own catch-up and nothing else, or anyone able to open
    // connections would make every node re-send its height to all its peers once per interval.
    // Without it a 4-validator seed with a validator voting for unknown blocks (sim seed 217) took
    // 22.8 s to recover instead of 2.8: there the height had stalled for seconds.
    if (now - this.lastProgress >= CONNECT_REGOSSIP_IDLE_INTERVALS * this.blockTimeMs)
      this.maybeRegossip(now, true);
  }

  /** The re-broadcast of the height to every peer, at most once per block interval. */
  private maybeRegossip(now: number, onConnect = false): void {
    if (now - this.lastRegossip < this.blockTimeMs) return;
    this.lastRegossip = now;
    if (onConnect) this.regossipStats.onConnect++;
    void this.enqueue(() => this.regossip());
  }

  /**
   * This height's proposals (first: a bounded send keeps them) and votes, each encoded once and
   * shared by every send (`catchUpEncoded`). Nobody reads `sentAt` (wire.ts) and direct messages
   * are not de-duplicated by gossip: a send may carry the encoding an earlier one made.
   */
  private heightMessages(): DirectMessage[] {
    const { proposals, votes } = this.machine.gossip();
    const messages: DirectMessage[] = [];
    for (const p of proposals) {
      let data = this.catchUpEncoded.get(p);
      if (!data) {
        const msg = this.proposalMessage(p);
        if (!msg) continue;
        data = encode(proposalMessageCodec, msg);
        this.catchUpEncoded.set(p, data);
      }
      messages.push({ topic: 'proposal', data });
    }
    const sentAt = this.sentAt();
    for (const vote of votes) messages.push({ topic: 'vote', data: this.encodedVote(vote, sentAt) });
    return messages;
  }

  /** A vote's direct-send encoding, made once and shared (`catchUpEncoded`). */
  private encodedVote(vote: Vote, sentAt: bigint): Uint8Array {
    let data = this.catchUpEncoded.get(vote);
    if (!data) {
      data = encode(voteMessageCodec, { vote, sentAt });
      this.catchUpEncoded.set(vote, data);
    }
    return data;
  }

  /**
   * The height's messages to a newly connected peer, this validator's binding last
   * (peer-binding.ts). One stream: the direct protocol takes two at a time per connection (one
   * for a mempool share), so a binding sent on a stream of its own could push the catch-up out
   * while a share is sent. Last: a node of an earlier
   * version, which knows no such topic, drops the rest of the stream at it (and scores us down a
   * little), so it still takes the height's messages.
   */
  private sendCatchUp(peer: string): void {
    const network = this.network;
    if (!network || this.stopped) return;
    const messages = this.syncing ? [] : this.heightMessages();
    if (messages.length === 0) {
      this.sendBinding(peer);
      return;
    }
    const bounded = messages.slice(0, this.ownBinding ? MAX_DIRECT_MESSAGES - 1 : MAX_DIRECT_MESSAGES);
    if (this.ownBinding) bounded.push({ topic: 'validator-peer', data: this.ownBinding });
    this.catchUpStats.sent++;
    this.catchUpStats.messages += bounded.length;
    network.sendDirect(peer, bounded).catch((err) => {
      this.logger.debug('catch-up send failed', { peer, error: (err as Error).message });
    });
  }

  /**
   * Sends the current height's proposals and votes again to every peer, for peers that missed
   * them, when the height stalls (at most once per block interval, `maybeRegossip`). Sent to each
   * connected peer directly, not published: gossip de-duplicates by signed content
   * (p2p/message-id.ts), so a re-published vote would be dropped as seen, and a re-sent copy is
   * for the peer it is sent to, not to be relayed across the network again.
   */
  private regossip(): void {
    const network = this.network;
    if (!network || this.stopped || this.syncing) return;
    const messages = this.heightMessages();
    if (messages.length === 0) return;
    // At most REGOSSIP_FANOUT peers a round, the next ones in this node's own order
    // (regossip-targets.ts): every node of a stalled height re-sends, so each peer still hears the
    // height from about that many nodes a round; sent to every peer by every node it was n² copies
    // of the height (a failed round of 100 validators in the simulator, seed 580: 7.8 million
    // messages for one height).
    const { targets, cursor } = regossipTargets(
      network.peerId,
      network.peers().map((p) => p.id),
      this.regossipCursor,
    );
    this.regossipCursor = cursor;
    this.regossipStats.rounds++;
    for (const peer of targets) void this.sendInChunks(network, peer, messages);
  }

  /** One peer's re-send, `MAX_DIRECT_MESSAGES` per direct send, one send at a time. */
  private async sendInChunks(
    network: Network,
    peer: string,
    messages: readonly DirectMessage[],
    regossip = true,
  ): Promise<void> {
    for (let i = 0; i < messages.length && !this.stopped; i += MAX_DIRECT_MESSAGES) {
      const chunk = messages.slice(i, i + MAX_DIRECT_MESSAGES);
      if (regossip) this.regossipStats.messages += chunk.length;
      try {
        await network.sendDirect(peer, chunk);
      } catch (err) {
        this.logger.debug('re-send failed', { peer, error: (err as Error).message });
        return;
      }
    }
  }

  /**
   * A re-proposal's polka, its proof of lock: the prevotes for its block in its polRound, sent
   * straight to every peer with it. A validator that missed some of them (a split; a Byzantine
   * voter whose prevote reached this node alone) holds the proposal but may not prevote for it
   * until they come (line 28), and counts the round against this proposer (`onTimeout`).
   * Direct, not gossiped: gossip drops what it has seen, and this node saw every one of them.
   * Once per re-proposal, which only a failed round with a polka makes: at most 2/3 of the set's
   * votes to each peer.
   */
  private sendPolka(proposal: Proposal): void {
    const network = this.network;
    if (!network || this.stopped) return;
    const sentAt = this.sentAt();
    const messages: DirectMessage[] = this.machine
      .prevotesFor(proposal.polRound, proposal.blockHash)
      .map((vote) => ({ topic: 'vote', data: this.encodedVote(vote, sentAt) }));
    if (messages.length === 0) return;
    this.polkaStats.sent++;
    for (const peer of network.peers()) void this.sendInChunks(network, peer.id, messages, false);
  }

  /**
   * A held fresh signer: asks the peers (outside the work queue) whether any is ahead, and once
   * none is, and no signed vote or certificate shows the network past the head either, tries to
   * release it (`releaseSigner`). From the watchdog, one probe at a time.
   */
  private probeSignerRelease(): void {
    const network = this.network;
    if (!this.signerHeld || this.signerProbing || this.stopped || this.syncing || !network) return;
    this.signerProbing = true;
    const probedAt = this.chain.tipHeight;
    this.caughtUpToSign(network)
      .then((caughtUp) => {
        if (!caughtUp || !this.signerHeld || this.stopped) return;
        return this.enqueue(async () => {
          if (this.syncing || this.chain.tipHeight < probedAt) return;
          await this.releaseSigner();
        });
      })
      .catch((err) => this.logger.debug('signer release probe failed', { error: (err as Error).message }))
      .finally(() => {
        this.signerProbing = false;
      });
  }

  /**
   * Whether a held fresh signer's node has caught up: no signed vote or certificate shows the
   * network past the head (behind-view.ts), and a peer answered and none is ahead
   * (`SyncReactor.caughtUp`). Without any peer connected, only a validator holding a quorum of the
   * power alone (it decides without peers: a one-validator chain) counts as caught up; any other
   * waits for a peer, since an empty chain store with no peer to compare it with proves nothing.
   */
  private async caughtUpToSign(network: Network): Promise<boolean> {
    const set = this.nextValidators();
    const head = this.chain.tipHeight;
    // Sync stopped on conflicting histories: the node will never catch up without the operator, and
    // "syncing" or "peers claim heights above the head" would hide why; nor is the usual way out
    // (--allow-fresh-signer) one here: it would sign on a history the network may not follow.
    const conflict = this.syncReactor.conflict;
    if (conflict) {
      this.warnSignerHeld(
        head,
        `block sync stopped: CONFLICTING CHAIN at height ${conflict.height} (ours ${conflict.head}, theirs ${conflict.theirs}${conflict.peer ? ` from ${conflict.peer}` : ''})`,
        [],
        `${conflict.nextStep}; not --allow-fresh-signer: it would sign on this node's history`,
      );
      return false;
    }
    if (this.behindView.behind(head, set, this.clock.now())) {
      this.warnSignerHeld(head, 'signed votes or a certificate show the network past the head (syncing)');
      return false;
    }
    if (network.peers().length === 0) {
      const alone = this.validator !== null && set.hasQuorum(set.powerOf(this.validator.publicKey));
      if (!alone) this.warnSignerHeld(head, 'no peer connected');
      return alone;
    }
    const { caughtUp, answered, ahead } = await this.syncReactor.caughtUp(network);
    if (!caughtUp)
      this.warnSignerHeld(
        head,
        answered === 0 ? 'no peer answered a status request' : 'peers claim heights above the head',
        ahead,
      );
    return caughtUp;
  }

  /**
   * A held fresh signer that is not released says why, at warn level, once it has been held for
   * FRESH_SIGNER_WARN_MS and then every FRESH_SIGNER_WARN_EVERY_MS: a peer that claims a height
   * it does not serve keeps it a follower (the trade-off `SyncReactor.caughtUp` makes), and the
   * operator must see that, with the peers that claim to be ahead, and the way out.
   */
  private warnSignerHeld(head: bigint, why: string, ahead: readonly string[] = [], wayOut?: string): void {
    const now = this.clock.now();
    this.signerHeldSince ??= now;
    if (now - this.signerHeldSince < FRESH_SIGNER_WARN_MS) return;
    if (this.signerWarnedAt !== null && now - this.signerWarnedAt < FRESH_SIGNER_WARN_EVERY_MS) return;
    this.signerWarnedAt = now;
    this.logger.warn(
      'fresh signer held: this validator signs nothing until it has caught up with its peers',
      {
        why,
        head,
        heldForMs: now - this.signerHeldSince,
        ...(ahead.length > 0
          ? { ahead: ahead.slice(0, 8).join(', ') + (ahead.length > 8 ? ', …' : '') }
          : {}),
        wayOut:
          wayOut ??
          'if these peers do not serve the heights they claim, disconnect them; once sure this key cannot ' +
            'have signed at the heights ahead, restart with --allow-fresh-signer',
      },
    );
  }

  /**
   * On the work queue, once caught up and no longer waiting out the height its lost life may have
   * signed at (`lateSignerFloor`): the start guard's search (signer-guard.ts) on the commits
   * of the last SIGNER_GUARD_HEIGHTS blocks now held, less the height waited out
   * (`signedBeforeItWaited`). This key's precommit among them: it signed
   * there with a signer state now lost, and could sign a second, conflicting vote at the height it
   * stopped at; fatal (SIGNER_STATE_MISSING, the node exits 70). None: the signer is released and
   * signs from the height after the head, above every height searched. Messages of its own key
   * seen at head + 1 while held (`ownSignatures`) show it signed at the undecided height: the
   * signer gets the state they prove, as if restored, so it signs nothing at or before the latest
   * of them but the very same message, and starts that height locked as its precommits left it. A
   * height under way is started again with the signer (the machine knew no signer; what it had
   * heard comes again from the peers' re-sends, as after a restart).
   */
  private async releaseSigner(): Promise<void> {
    if (!this.signerHeld || this.stopped || !this.validator || !this.privvalStorage) return;
    const head = this.chain.tipHeight;
    const floor = this.lateSignerFloor(head);
    if (floor === null) return;
    const found = await this.signedBeforeItWaited(head);
    if (this.stopped || !this.signerHeld || this.chain.tipHeight !== head) return;
    if (found.length > 0) {
      this.fatal(
        new SignerStateMissing(this.privvalStorage.where, found, this.validator.publicKey, head),
        'a fresh signer found its own precommits in the commits it synced (SIGNER_STATE_MISSING)',
      );
      return;
    }
    const own = this.ownSignatures?.stateAbove(head) ?? null;
    const seen = withRoundFloor(own, head + 1n, floor);
    if (seen) this.privval = new PrivValidator(this.validator.seed, this.chain.genesis.chainId, seen);
    if (floor > 0)
      this.logger.warn(
        'fresh signer: the height under way was not decided without this key (its vote may be needed); it signs there only from the round the others are in',
        { height: head + 1n, fromRound: floor },
      );
    if (own) {
      this.logger.warn(
        'fresh signer: this key signed above the head before its signer state was lost; it signs nothing at or before that slot but the same message',
        { height: own.height, round: own.round, step: own.step },
      );
    }
    this.ownSignatures = null;
    this.signerHeld = false;
    this.machine = this.newMachine();
    // On disk now, not when the machine first runs with it: released before the next height
    // starts (a block interval after the head's), a restart meanwhile found no signer state and
    // was held again, or refused where its lost life's precommit is in the height it waited out.
    try {
      this.persistSigner([]);
    } catch (err) {
      this.fatal(
        new Error(
          `the signer state could not be saved (${this.privvalStorage.where}): ${err instanceof Error ? err.message : String(err)}`,
        ),
        'the signer state is not on disk',
      );
      return;
    }
    this.logger.info('fresh signer cleared: no precommit of this key in the last commits; signing', {
      from: head + 1n,
      ...(seen ? { after: `${seen.height}/${seen.round}/${seen.step}` } : {}),
    });
    if (this.height === head + 1n) {
      this.height = head;
      await this.startHeight(head + 1n);
    }
  }

  /**
   * The commit search for `releaseSigner`: the last SIGNER_GUARD_HEIGHTS heights up to the head it
   * first caught up at, as before the wait, and every height decided since, but for the one it
   * waited out (that head + 1). Its lost life stopped at that height: its precommit there is
   * expected after an honest crash (it voted, then crashed, and the others decided with its vote)
   * and says nothing about the next one, since the network, and so the lost life, was at no later
   * height when this node caught up. A precommit of this key at a height decided after that one
   * shows a signer alive meanwhile (a second process with this key, or a catch-up on a stale view):
   * fatal, as in the heights before.
   */
  private async signedBeforeItWaited(head: bigint): Promise<bigint[]> {
    const key = this.validator?.publicKey;
    if (!key) return [];
    const waitedAt = this.signerCaughtUp?.head ?? head;
    const since = head - waitedAt;
    // Bounded: a head far past the one it caught up at (a long sync since) reads twice the usual.
    const span = SIGNER_GUARD_HEIGHTS + (since < SIGNER_GUARD_HEIGHTS ? since : SIGNER_GUARD_HEIGHTS);
    const found = await recentlySignedHeights(this.chain, key, span);
    return since > 0n ? found.filter((h) => h !== waitedAt + 1n) : found;
  }

  /**
   * Whether a caught-up held fresh signer may be released at `head` now, and from which round of
   * head + 1 (null: not yet). Its lost life may have signed at the height under way when it first
   * caught up (the network was at no later one: a validator signs at a height only after
   * committing the one before), and its messages there may reach this node only after a release
   * on catching up: a peer's catch-up, a re-send, a round later. So it stays held until that
   * height is decided without it, and signs from the next one (0). Where it is not decided within
   * FRESH_SIGNER_STUCK_WAIT block intervals and propose timeouts (its vote may be needed for the
   * quorum: waiting on would stall the chain), it is released there, from the round the held
   * machine follows the others in, never an earlier one; its lost messages in that round, which the
   * stuck peers re-sent meanwhile, bind it (`ownSignatures`). A validator alone with a quorum and
   * no peer decides nothing without this key and hears no re-send: released at once, as before.
   * So is one at genesis: every validator of a new chain starts fresh, so all would wait (none
   * decides the first height without the others: the simulator's launches took 12 s more); a
   * lost life there is one of a chain that never decided a block, whose stuck peers re-send its
   * votes on connecting (`sendCatchUp`). So, on conditions, is one first caught up at the chain's
   * first block (`launchExempt`).
   */
  private lateSignerFloor(head: bigint): number | null {
    const network = this.network;
    if (!network || !this.validator || head === 0n) return 0;
    if (this.signerCaughtUp === null && this.launchExempt(head)) {
      this.logger.info(
        "fresh signer caught up at a new chain's first block, with no trace of this key: not held for the height under way",
        { height: head + 1n },
      );
      return 0;
    }
    if (network.peers().length === 0) {
      const set = this.nextValidators();
      if (set.hasQuorum(set.powerOf(this.validator.publicKey))) return 0;
    }
    const now = this.clock.now();
    const first = this.signerCaughtUp;
    if (!first) {
      this.signerCaughtUp = { head, at: now };
      this.logger.info(
        'fresh signer caught up: held until the height under way is decided, where its lost signer may have signed',
        { height: head + 1n },
      );
      return null;
    }
    if (head > first.head) return 0;
    if (now - first.at < FRESH_SIGNER_STUCK_WAIT * (this.blockTimeMs + this.timeouts.proposeMs)) return null;
    const { height, round } = this.machine.snapshot();
    return height === head + 1n ? round : 0;
  }

  /**
   * A block synced while a held fresh signer waits out the height after the head it first caught
   * up at: fetched, not followed live, so the peers that answered then may have been behind the
   * network (one height behind, or a liar, the only one connected yet), the lost life may have
   * signed at a height above the one waited out, and a release now (the head passed the one it
   * caught up at) would sign there. The wait starts again at the next probe, from the head synced
   * to (`lateSignerFloor`), timer included: it ends once a height is decided live without it, or
   * after the bounded wait. A height followed live (proposal and votes seen) moves nothing.
   */
  private signerSyncedPast(height: bigint): void {
    const first = this.signerCaughtUp;
    if (!this.signerHeld || !first || height <= first.head) return;
    this.signerCaughtUp = null;
    this.logger.info(
      'fresh signer held: synced a block while waiting out a height; it waits again from its new head',
      {
        waitedOut: first.head + 1n,
        synced: height,
      },
    );
  }

  /**
   * Whether a held fresh signer first caught up at `head` is released at once, as at genesis, and
   * not held for head + 1: a new chain's launch, where every validator starts fresh and one that
   * caught up only after the first block (a partition at launch, a late start) would otherwise
   * each sit out the second (the simulator's peer-catch-up run sent 4.2 times the calm messages).
   * All of: `head` is at most FRESH_SIGNER_LAUNCH_HEAD (the chain's first block); this node's chain
   * store was empty when it started (blocks there would be an earlier life's: it decided them on
   * this data directory); no message of this key, at any height, was seen while held
   * (`OwnSignaturesAbove.sawAny`); and the release's commit search finds no precommit of it in any
   * commit of the chain (heights 1…head are all within SIGNER_GUARD_HEIGHTS: fatal, as always).
   * Not a proof: nothing a node holds tells a validator that never signed from one whose whole
   * folder was lost. What it leaves (docs/consensus.md): a lost life that signed at head + 1 = 2
   * of a new chain, left no precommit in commit 1 and no message this node saw while held, and was
   * replaced by a node caught up before height 2 was decided, within the launch's first seconds.
   */
  private launchExempt(head: bigint): boolean {
    return head <= FRESH_SIGNER_LAUNCH_HEAD && this.storeWasEmpty && !(this.ownSignatures?.sawAny ?? false);
  }

  /** Fetches and checks the blocks peers have beyond our head, until no peer is ahead. */
  private async catchUp(): Promise<void> {
    const network = this.network;
    if (!network || this.stopped) return;
    try {
      await this.syncReactor.catchUp(network);
    } catch (err) {
      // A synced block could not be written: the same final failure as a decided one's (a node
      // that only follows signs nothing, so no signing path would ever stop it otherwise).
      if (err instanceof BlockWriteError) {
        this.fatal(err);
        return;
      }
      throw err;
    } finally {
      this.lastProgress = this.clock.now();
    }
  }
}

/**
 * Passes a lazy candidate source through, remembering each envelope drawn by its hash, until
 * `maxIncluded` went into the block (the proposal budget).
 */
function* recording(
  source: Iterable<TxEnvelope>,
  drawn: Map<string, TxEnvelope>,
  maxIncluded: number,
): Generator<TxEnvelope, void, boolean | undefined> {
  const it = source[Symbol.iterator]() as Iterator<TxEnvelope, unknown, boolean | undefined>;
  let included = 0;
  try {
    for (let next = it.next(); !next.done && included < maxIncluded; ) {
      drawn.set(keyId(next.value.hash), next.value);
      const taken = yield next.value;
      if (taken !== false) included++;
      next = it.next(taken);
    }
  } finally {
    it.return?.();
  }
}

/** The key of a round's first content forwarded unchecked: its round and its proposer. */
function firstContentKey(proposal: Proposal): string {
  return `${proposal.round}:${toHex(proposal.proposer)}`;
}
