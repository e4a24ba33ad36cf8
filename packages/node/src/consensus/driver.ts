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
 */
import {
  addressFromPublicKey,
  blockCodec,
  blockHash,
  type ConsensusAction,
  type ConsensusEvent,
  type ConsensusEvidence,
  checkEvidence,
  commitHash,
  consensusEvidenceCodec,
  DEFAULT_TIMEOUTS,
  decode,
  defaultVerify,
  encode,
  envelopeFromBytes,
  envelopeFromSigned,
  equalBytes,
  evidenceOffender,
  evidenceSlot,
  getAccount,
  keyId,
  PrivValidator,
  type Proposal,
  selectProposer,
  sha256,
  signTransaction,
  Tendermint,
  type TimeoutParams,
  type TimeoutStep,
  type TxEnvelope,
  toHex,
  txRootOf,
  ValidationError,
  type ValidatorSet,
  type VerifyFn,
  type Vote,
  verifyConsensusEvidence,
  verifyProposalSignature,
  verifyVoteSignature,
} from '@unc/core';
import type { AdmissionResult } from '../admission.js';
import type { Chain, CommittedBlock, PendingBlock, Rejected, ValidatorKey } from '../chain.js';
import type { Logger } from '../log.js';
import type { ChainStatus, GossipTopic, Network, NetworkHandlers, Verdict } from '../p2p/types.js';
import { isBehind, type SyncProgress, syncChain } from '../sync.js';
import type { VerifyPool } from '../verify-pool.js';
import { BlockPreverifier } from './block-preverify.js';
import { loadPrivval, type SignedProposalRecord, savePrivval, serializePrivval } from './privval-store.js';
import { budgetForRound, ProposalBudget } from './proposal-budget.js';
import { ProposerLiveness } from './proposer-liveness.js';
import {
  MAX_TX_BATCH_BYTES,
  MAX_TXS_PER_MESSAGE,
  type ProposalMessage,
  proposalMessageCodec,
  txBatchCodec,
  voteMessageCodec,
} from './wire.js';

/** What the driver needs from the node around it (mempool, notifications). */
export interface DriverHost {
  /** Transactions for the next block, in the order they should be tried. */
  /** The mempool in block order; told (through `next`) whether each went into the block. */
  proposalCandidates(): Iterable<TxEnvelope>;
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
}

export interface DriverOptions {
  chain: Chain;
  host: DriverHost;
  /** The validator's key; null for a node that follows consensus without voting. */
  validator: ValidatorKey | null;
  /** Where the private validator's state lives (required with a validator). */
  privvalPath: string | null;
  /** Target interval between blocks: the next height starts this long after the last block's time. */
  blockTimeMs: number;
  timeouts?: TimeoutParams;
  logger: Logger;
  /** Worker threads that check a proposed or synced block's signatures before it executes. */
  verifyPool?: VerifyPool | null;
  /** Proposals whose block time is further ahead of our clock than this are invalid. */
  maxClockDriftMs?: number;
  /**
   * With no progress for this long, the driver re-sends the current height's messages and asks
   * peers whether they are ahead. Default: twice the block time plus two seconds.
   */
  stallMs?: number;
}

/**
 * Round timeouts: a proposer that is down costs a round of 3 s (plus 0.5 s per further round).
 * Shorter propose timeouts give up on full blocks that are merely slow to build, send and
 * execute on a busy machine, which costs more rounds than it saves.
 */
export const DRIVER_TIMEOUTS: TimeoutParams = DEFAULT_TIMEOUTS;

const MAX_BUFFERED_FUTURE = 2_000;
const MAX_PENDING_BLOCKS = 16;
const VERIFIED_CACHE = 20_000;

type Buffered = { kind: 'vote'; vote: Vote } | { kind: 'proposal'; msg: ProposalMessage; from: string };

export class ConsensusDriver {
  readonly chain: Chain;
  private readonly host: DriverHost;
  private readonly logger: Logger;
  private readonly validator: ValidatorKey | null;
  private readonly privvalPath: string | null;
  private readonly blockTimeMs: number;
  private readonly maxClockDriftMs: number;
  private readonly stallMs: number;
  private readonly timeouts: TimeoutParams;

  private readonly machine: Tendermint;
  private privval: PrivValidator | null = null;
  /** What identifies the signer state last written (its latest signatures), to skip rewrites. */
  private lastSavedPrivval = '';
  private lastProposal: SignedProposalRecord | null = null;
  private network: Network | null = null;
  private unsubscribe: (() => void) | null = null;
  private lastRegossip = 0;

  private queue: Promise<void> = Promise.resolve();
  private stopped = false;
  private syncing = false;
  /** The height the machine was started at; 0 until the first start. */
  private height = 0n;
  private readonly timers = new Set<NodeJS.Timeout>();
  private startTimer: NodeJS.Timeout | null = null;
  private watchdog: NodeJS.Timeout | null = null;
  private lastProgress = Date.now();
  /** Blocks of the current height that executed on the head state, by hash, with the verdict. */
  private pending = new Map<string, { pending: PendingBlock | null; message: ProposalMessage | null }>();
  private future: Buffered[] = [];
  private readonly verified = new Set<string>();
  private readonly evidenceSeen = new Set<string>();
  /** A stall check is asking the peers how far they are. */
  private probingPeers = false;
  /** Evidence this validator will put on chain once the block after its height is being built. */
  private evidenceToSubmit: ConsensusEvidence[] = [];
  private txOut: Uint8Array[] = [];
  private txOutBytes = 0;
  private txFlush: NodeJS.Timeout | null = null;
  /** The latest block-sync progress, while a sync runs. */
  syncProgress: SyncProgress | null = null;
  private readonly commitListeners = new Set<(c: CommittedBlock, round: number) => void>();
  private readonly preverifier: BlockPreverifier;
  /** How many transactions a proposal should carry to fit a round (proposal-budget.ts). */
  readonly proposalBudget: ProposalBudget;
  /** Who has been heard from lately: a round of a validator that is down waits less for it. */
  private readonly liveness = new ProposerLiveness();

  constructor(opts: DriverOptions) {
    this.chain = opts.chain;
    this.host = opts.host;
    this.logger = opts.logger;
    this.validator = opts.validator;
    this.privvalPath = opts.privvalPath;
    this.blockTimeMs = opts.blockTimeMs;
    this.maxClockDriftMs = opts.maxClockDriftMs ?? 5_000;
    this.stallMs = opts.stallMs ?? 2 * opts.blockTimeMs + 2_000;
    this.timeouts = opts.timeouts ?? DRIVER_TIMEOUTS;
    this.preverifier = new BlockPreverifier(opts.verifyPool ?? null);
    this.proposalBudget = new ProposalBudget({
      budgetMs: budgetForRound(this.blockTimeMs, this.timeouts.proposeMs),
    });
    if (this.validator) {
      if (!this.privvalPath) throw new Error('a validator needs a path for its private validator state');
      const stored = loadPrivval(this.privvalPath, this.validator.publicKey);
      this.privval = new PrivValidator(this.validator.seed, this.chain.genesis.chainId, stored?.state);
      this.lastProposal = stored?.lastProposal ?? null;
    }
    this.machine = this.newMachine();
  }

  private validatorMemo: { head: string; set: ValidatorSet } | null = null;

  /** The set that votes on the block after the head (it changes only at epoch boundaries). */
  private nextValidators(): ValidatorSet {
    const head = toHex(this.chain.head.hash);
    if (this.validatorMemo?.head !== head) this.validatorMemo = { head, set: this.chain.validatorSet() };
    return this.validatorMemo.set;
  }

  private newMachine(): Tendermint {
    return new Tendermint({
      chainId: this.chain.genesis.chainId,
      timeouts: this.timeouts,
      privval: this.privval,
      verify: this.cachedVerify,
    });
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
      onGossip: (topic, data, from) => this.onGossip(topic, data, from),
      status: () => this.status(),
      blocks: (from, to) => this.blocksFor(from, to),
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
    this.proposalBudget.budgetMs = budgetForRound(
      this.blockTimeMs,
      this.timeouts.proposeMs,
      network === null,
    );
    if (network) {
      // Messages sent before a peer is connected are lost to it: a peer that (re)connects gets
      // this height's messages again.
      this.unsubscribe = network.onPeerConnected(() => {
        void this.enqueue(() => this.regossip());
      });
      // A node that restarts or joins late catches up with its peers before voting; give the
      // bootstrap dials a moment to connect so that "no peer is ahead" means something.
      const t0 = Date.now();
      while (network.peers().length === 0 && Date.now() - t0 < 3_000 && !this.stopped)
        await new Promise((r) => setTimeout(r, 50));
      await this.enqueue(() => this.catchUp());
    }
    this.watchdog = setInterval(() => this.checkStall(), Math.max(250, Math.min(1_000, this.blockTimeMs)));
    this.scheduleHeight();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    if (this.watchdog) clearInterval(this.watchdog);
    if (this.startTimer) clearTimeout(this.startTimer);
    if (this.txFlush) clearTimeout(this.txFlush);
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await this.queue;
  }

  /** Announces a transaction this node admitted (from RPC) to its peers, batched. */
  announceTx(env: TxEnvelope): void {
    if (!this.network || this.stopped) return;
    if (this.txOutBytes + env.bytes.length > MAX_TX_BATCH_BYTES || this.txOut.length >= MAX_TXS_PER_MESSAGE)
      this.flushTxs();
    this.txOut.push(env.bytes);
    this.txOutBytes += env.bytes.length;
    this.txFlush ??= setTimeout(() => this.flushTxs(), 20);
  }

  private flushTxs(): void {
    if (this.txFlush) clearTimeout(this.txFlush);
    this.txFlush = null;
    if (this.txOut.length === 0 || !this.network) return;
    const batch = this.txOut;
    this.txOut = [];
    this.txOutBytes = 0;
    this.publish('tx', encode(txBatchCodec, batch));
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

  /** Starts the next height once the block interval since the head's block time has passed. */
  private scheduleHeight(): void {
    if (this.stopped) return;
    const next = this.chain.height + 1n;
    const delay = Math.max(0, Number(this.chain.head.header.time) + this.blockTimeMs - Date.now());
    if (this.startTimer) clearTimeout(this.startTimer);
    this.startTimer = setTimeout(() => {
      this.startTimer = null;
      void this.enqueue(() => this.startHeight(next));
    }, delay);
  }

  private async startHeight(height: bigint): Promise<void> {
    if (this.stopped || height !== this.chain.height + 1n || height <= this.height) return;
    this.height = height;
    this.pending = new Map();
    if (this.validator) this.liveness.saw(this.validator.publicKey, height);
    this.lastProgress = Date.now();
    await this.handle({
      type: 'start',
      height,
      validators: this.nextValidators(),
      beacon: this.chain.head.header.beacon,
    });
    // A proposal this validator signed before a restart, whose block only it may have.
    const own = this.lastProposal;
    if (own && own.proposal.height === height) await this.onProposalMessage({ ...own, sentAt: 0n }, null);
    const buffered = this.future;
    this.future = [];
    for (const b of buffered) {
      if (b.kind === 'vote') {
        if (b.vote.height === height) await this.handle({ type: 'vote', vote: b.vote });
        else if (b.vote.height > height) this.future.push(b);
      } else if (b.msg.proposal.height === height) await this.onProposalMessage(b.msg, b.from);
      else if (b.msg.proposal.height > height) this.future.push(b);
    }
  }

  // -------------------------------------------------------------------------------------------
  // The machine

  private async handle(event: ConsensusEvent): Promise<void> {
    if (this.stopped) return;
    const actions = this.machine.handle(event);
    this.persistSigner(actions);
    for (const action of actions) await this.perform(action);
  }

  /**
   * Writes the signer's state if signing changed it, before the caller sends anything: from here
   * on, a crash cannot make this validator forget a signature that may be on the wire.
   */
  private persistSigner(actions: ConsensusAction[]): void {
    if (!this.privval || !this.privvalPath || !this.validator) return;
    for (const a of actions) {
      if (a.type !== 'broadcast-proposal') continue;
      const known = this.pending.get(toHex(a.proposal.blockHash));
      const block = known?.pending?.block ?? known?.message?.block;
      const lastCommit = known?.pending?.lastCommit ?? known?.message?.lastCommit;
      if (block && lastCommit) this.lastProposal = { proposal: a.proposal, block, lastCommit };
    }
    // Every signature changes the last signature (or the slot); nothing else needs a write.
    const state = this.privval.state;
    const mark = `${state.height}/${state.round}/${state.step}/${state.signature ? toHex(state.signature) : ''}/${
      this.lastProposal ? toHex(this.lastProposal.proposal.signature) : ''
    }`;
    if (mark === this.lastSavedPrivval) return;
    savePrivval(
      this.privvalPath,
      serializePrivval({
        publicKey: toHex(this.validator.publicKey),
        state,
        lastProposal: this.lastProposal,
      }),
    );
    this.lastSavedPrivval = mark;
  }

  private async perform(action: ConsensusAction): Promise<void> {
    switch (action.type) {
      case 'broadcast-vote':
        this.publish('vote', encode(voteMessageCodec, { vote: action.vote, sentAt: now() }));
        return;
      case 'broadcast-proposal': {
        const msg = this.proposalMessage(action.proposal);
        if (msg) this.publish('proposal', encode(proposalMessageCodec, msg));
        else this.logger.warn('proposed a block this node does not hold', { height: action.proposal.height });
        return;
      }
      case 'schedule-timeout': {
        const { height, round, step } = action;
        const delayMs =
          step === 'propose' && height === this.chain.height + 1n
            ? this.liveness.proposeTimeout(
                selectProposer(this.nextValidators(), this.chain.head.header.beacon, height, round).publicKey,
                height,
                action.delayMs,
              )
            : action.delayMs;
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
        this.reportEvidence(action.evidence, 'observed');
        return;
    }
  }

  private async onTimeout(height: bigint, round: number, step: TimeoutStep): Promise<void> {
    if (height !== this.height) return;
    await this.handle({ type: 'timeout', height, round, step });
  }

  private proposalMessage(proposal: Proposal): ProposalMessage | null {
    const known = this.pending.get(toHex(proposal.blockHash));
    if (known?.pending) {
      return { proposal, block: known.pending.block, lastCommit: known.pending.lastCommit, sentAt: now() };
    }
    if (known?.message) return { ...known.message, proposal, sentAt: now() };
    return null;
  }

  /** This validator proposes: a block from the mempool, with its VRF beacon. */
  private async buildValue(height: bigint, round: number): Promise<void> {
    if (!this.validator || height !== this.chain.height + 1n) return;
    const time = this.chain.nextBlockTime(BigInt(Date.now()));
    // Drawn lazily (the builder keeps drawing past candidates that fail): each signature check is
    // skipped only for the very envelope drawn from the mempool under that hash.
    const drawn = new Map<string, TxEnvelope>();
    const started = performance.now();
    const { pending, rejected } = this.chain.buildProposal(
      recording(this.host.proposalCandidates(), drawn, this.proposalBudget.maxTxs()),
      time,
      this.validator,
      (hash) => {
        const env = drawn.get(keyId(hash));
        return env !== undefined && this.host.isTxVerified(env);
      },
    );
    this.proposalBudget.observe(pending.envelopes.length, performance.now() - started);
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
    entry: { pending: PendingBlock | null; message: ProposalMessage | null },
  ): void {
    if (!this.pending.has(key) && this.pending.size >= MAX_PENDING_BLOCKS) {
      const oldest = this.pending.keys().next().value as string;
      this.pending.delete(oldest);
    }
    this.pending.set(key, entry);
  }

  private async commit(action: Extract<ConsensusAction, { type: 'commit' }>): Promise<void> {
    const known = this.pending.get(toHex(action.blockHash));
    if (!known?.pending) {
      // The machine only decides blocks the driver reported valid, so this is a bug, not input.
      this.logger.error('decided a block this node does not hold; catching up from peers', {
        height: action.height,
      });
      this.lastProgress = 0;
      return;
    }
    const committed = await this.chain.commitDecided(known.pending, action.certificate);
    this.lastProgress = Date.now();
    this.afterCommit(committed, action.round);
  }

  private afterCommit(committed: CommittedBlock, round: number): void {
    if (round > 0) {
      this.logger.info('block decided after failed rounds', {
        height: committed.block.header.height,
        round,
        txs: committed.envelopes.length,
      });
    }
    this.host.onCommitted(committed);
    this.liveness.prune(committed.block.header.height);
    this.flushEvidence();
    for (const l of this.commitListeners) {
      try {
        l(committed, round);
      } catch (err) {
        this.logger.error('commit listener failed', { error: (err as Error).message });
      }
    }
    this.scheduleHeight();
  }

  private setTimer(ms: number, fn: () => void): void {
    if (this.stopped) return;
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  // -------------------------------------------------------------------------------------------
  // Gossip in

  private async onGossip(topic: GossipTopic, data: Uint8Array, from: string): Promise<Verdict> {
    if (this.stopped) return 'ignore';
    switch (topic) {
      case 'vote':
        return this.onVoteGossip(data);
      case 'proposal':
        return this.onProposalGossip(data, from);
      case 'tx':
        return this.onTxGossip(data);
      case 'evidence':
        return this.onEvidenceGossip(data);
      default:
        return 'ignore';
    }
  }

  private onVoteGossip(data: Uint8Array): Promise<Verdict> | Verdict {
    let vote: Vote;
    try {
      vote = decode(voteMessageCodec, data).vote;
    } catch {
      return 'reject';
    }
    const head = this.chain.height;
    if (vote.height <= head) return 'ignore';
    const member = this.nextValidators().has(vote.validator);
    if (vote.height > head + 1n) {
      // A later height's set is not known yet (it may differ at an epoch boundary): keep what
      // plausibly comes from a validator, for after a sync, but do not vouch for it by forwarding.
      if (member && verifyVoteSignature(this.chain.genesis.chainId, vote, this.cachedVerify))
        this.buffer({ kind: 'vote', vote });
      return 'ignore';
    }
    if (!member) return 'reject';
    if (!verifyVoteSignature(this.chain.genesis.chainId, vote, this.cachedVerify)) return 'reject';
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

  private onProposalGossip(data: Uint8Array, from: string): Promise<Verdict> | Verdict {
    let msg: ProposalMessage;
    try {
      msg = decode(proposalMessageCodec, data);
    } catch {
      return 'reject';
    }
    const { proposal, block } = msg;
    if (proposal.height <= this.chain.height) return 'ignore';
    if (block.header.height !== proposal.height || !equalBytes(blockHash(block.header), proposal.blockHash))
      return 'reject';
    const member = this.nextValidators().has(proposal.proposer);
    if (proposal.height > this.chain.height + 1n) {
      if (member && verifyProposalSignature(this.chain.genesis.chainId, proposal, this.cachedVerify))
        this.buffer({ kind: 'proposal', msg, from });
      return 'ignore';
    }
    if (!member) return 'reject';
    if (!verifyProposalSignature(this.chain.genesis.chainId, proposal, this.cachedVerify)) return 'reject';
    this.liveness.saw(proposal.proposer, proposal.height);
    if (this.syncing || proposal.height !== this.height) {
      this.buffer({ kind: 'proposal', msg, from });
      return 'accept';
    }
    return this.preverifyThenHandle(msg, from);
  }

  /**
   * The block's signatures are checked on every core while this task waits outside the queue
   * (votes and other work go on meanwhile); then it executes in order, skipping the passes.
   */
  private async preverifyThenHandle(msg: ProposalMessage, from: string): Promise<Verdict> {
    if (!this.pending.has(toHex(msg.proposal.blockHash))) {
      const envelopes = this.preverifier.decode(msg.block);
      if (envelopes)
        await this.preverifier.preverify(
          envelopes,
          this.chain.state,
          this.chain.genesis.chainId,
          this.headForPreverify(),
          (env) => this.host.isTxVerified(env),
        );
    }
    return this.enqueue(() => this.onProposalMessage(msg, from));
  }

  /** Checks the block a proposal names and hands the machine the proposal with that verdict. */
  private async onProposalMessage(msg: ProposalMessage, from: string | null): Promise<Verdict> {
    const { proposal } = msg;
    if (proposal.height !== this.height || proposal.height !== this.chain.height + 1n) return 'ignore';
    const key = toHex(proposal.blockHash);
    let known = this.pending.get(key);
    const envelopes = known ? null : this.preverifier.decode(msg.block);
    if (!known && (!envelopes || !this.signedContentMatches(msg, envelopes))) {
      // The proposer signed the header, which commits to the transactions and the last commit by
      // hash; a message whose copies do not match was altered on the way. Holding that against
      // the proposal would let any relay make honest validators vote nil.
      if (from) this.network?.penalize(from, `proposal at ${proposal.height} altered in transit`);
      return 'reject';
    }
    if (!known) {
      let pending: PendingBlock | null = null;
      try {
        pending = this.checkProposedBlock(msg, envelopes!);
      } catch (err) {
        if (!(err instanceof ValidationError)) throw err;
        this.logger.warn('invalid proposed block', {
          height: proposal.height,
          round: proposal.round,
          proposer: toHex(proposal.proposer).slice(0, 16),
          reason: err.message,
        });
      }
      known = { pending, message: msg };
      this.rememberPending(key, known);
    }
    await this.handle({ type: 'proposal', proposal, valid: known.pending !== null });
    if (known.pending) return 'accept';
    if (from) this.network?.penalize(from, `invalid block proposed at ${proposal.height}`);
    return 'reject';
  }

  private headForPreverify() {
    const { header } = this.chain.head;
    return { height: header.height, hash: this.chain.head.hash, beacon: header.beacon };
  }

  private signedContentMatches(msg: ProposalMessage, envelopes: readonly TxEnvelope[]): boolean {
    const { header } = msg.block;
    if (!equalBytes(commitHash(msg.lastCommit), header.lastCommitHash)) return false;
    return equalBytes(txRootOf(envelopes), header.txRoot);
  }

  private checkProposedBlock(msg: ProposalMessage, envelopes: readonly TxEnvelope[]): PendingBlock {
    const { proposal, block } = msg;
    const fail = (why: string): never => {
      throw new ValidationError('BAD_PROPOSAL', `block ${block.header.height}: ${why}`);
    };
    // A fresh block is the proposer's own; a re-proposal (polRound ≥ 0) carries an earlier round's.
    if (proposal.polRound === -1 && !equalBytes(block.header.proposer, proposal.proposer)) {
      fail('a fresh proposal must carry a block built by its proposer');
    }
    if (block.header.time > BigInt(Date.now() + this.maxClockDriftMs)) fail('block time is in the future');
    const started = performance.now();
    const pending = this.chain.validateProposal(
      block,
      msg.lastCommit,
      this.verifiedAmong(envelopes),
      false,
      envelopes,
      this.preverifier.isEd25519Verified,
    );
    this.proposalBudget.observe(envelopes.length, performance.now() - started);
    return pending;
  }

  private buffer(b: Buffered): void {
    if (this.future.length >= MAX_BUFFERED_FUTURE) this.future.shift();
    this.future.push(b);
  }

  private onTxGossip(data: Uint8Array): Verdict | Promise<Verdict> {
    let raws: Uint8Array[];
    try {
      raws = decode(txBatchCodec, data);
    } catch {
      return 'reject';
    }
    if (this.host.admitTxs) return this.admitGossipedBatch(raws, this.host.admitTxs);
    let admitted = 0;
    for (const raw of raws) {
      let env: TxEnvelope;
      try {
        env = envelopeFromBytes(raw);
      } catch {
        return 'reject';
      }
      try {
        this.host.admitTx(env);
        admitted++;
      } catch (err) {
        // A transaction valid at the sender may already be stale here (nonce used, duplicate).
        if (!(err instanceof ValidationError)) throw err;
        // But a signature that does not verify is the relay's fault whatever the state: ignoring
        // it would let a peer make this node check up to a batch of signatures per message, free.
        if (err.code === 'BAD_SIGNATURE') return 'reject';
      }
    }
    return admitted > 0 ? 'accept' : 'ignore';
  }

  /**
   * The batch through the admission queue. A full queue drops it unforwarded ('ignore': a busy
   * node is no fault of the peer); a signature that fails is the relay's fault.
   */
  private async admitGossipedBatch(
    raws: readonly Uint8Array[],
    admitTxs: (envs: readonly TxEnvelope[]) => Promise<AdmissionResult[]>,
  ): Promise<Verdict> {
    const envs = decodeTxs(raws);
    if (!envs) return 'reject';
    let results: AdmissionResult[];
    try {
      results = await admitTxs(envs);
    } catch (err) {
      if ((err as { code?: unknown }).code === 'BUSY') return 'ignore';
      throw err;
    }
    let admitted = 0;
    for (const r of results) {
      if (!(r instanceof ValidationError)) admitted++;
      else if (r.code === 'BAD_SIGNATURE') return 'reject';
    }
    return admitted > 0 ? 'accept' : 'ignore';
  }

  private onEvidenceGossip(data: Uint8Array): Verdict {
    let evidence: ConsensusEvidence;
    try {
      evidence = decode(consensusEvidenceCodec, data);
    } catch {
      return 'reject';
    }
    // Checked against the current set only: evidence from an earlier epoch may be genuine, so a
    // mismatch is not held against the peer.
    const why = verifyConsensusEvidence(this.chain.genesis.chainId, this.nextValidators(), evidence);
    if (why) return 'ignore';
    return this.reportEvidence(evidence, 'gossip') ? 'accept' : 'ignore';
  }

  /** Logs and gossips equivocation evidence once. */
  private reportEvidence(evidence: ConsensusEvidence, source: string): boolean {
    const bytes = encode(consensusEvidenceCodec, evidence);
    const key = toHex(bytes);
    if (this.evidenceSeen.has(key)) return false;
    if (this.evidenceSeen.size > 1_000) this.evidenceSeen.clear();
    this.evidenceSeen.add(key);
    this.logger.warn('equivocation evidence', {
      type: evidence.type,
      offender: toHex(evidenceOffender(evidence)),
      source,
    });
    if (source !== 'gossip') this.publish('evidence', bytes);
    this.submitEvidence(evidence);
    return true;
  }

  /**
   * A validator puts the evidence on chain itself, in a transaction its own key signs and pays
   * for: slashing must not depend on somebody else noticing. A block carries evidence of earlier
   * heights only, so evidence of the height being decided waits for its commit. Evidence already
   * included, too old or about a tombstoned validator is dropped by the check the block will make.
   */
  private submitEvidence(evidence: ConsensusEvidence): void {
    if (!this.validator) return;
    if (this.evidenceToSubmit.length >= 64) this.evidenceToSubmit.shift();
    this.evidenceToSubmit.push(evidence);
    this.flushEvidence();
  }

  private flushEvidence(): void {
    if (!this.validator || this.evidenceToSubmit.length === 0) return;
    const head = this.chain.head.header;
    const chainId = this.chain.genesis.chainId;
    const waiting: ConsensusEvidence[] = [];
    for (const evidence of this.evidenceToSubmit) {
      if (evidenceSlot(evidence).height > head.height) {
        waiting.push(evidence);
        continue;
      }
      try {
        checkEvidence(this.chain.state, chainId, head.height + 1n, evidence, this.chain.genesis);
        const sender = addressFromPublicKey(this.validator.publicKey);
        // Evidence-only transactions are fee-free: a validator with an empty balance can report.
        const tx = {
          chainId,
          signer: this.validator.publicKey,
          nonce: getAccount(this.chain.state, sender).nonce,
          fee: 0n,
          expiresAt: head.height + 20n,
          actions: [{ type: 'evidence' as const, evidence }],
        };
        const env = envelopeFromSigned(signTransaction(tx, this.validator.seed));
        this.host.admitTx(env);
        this.announceTx(env);
        this.logger.info('submitted equivocation evidence', {
          offender: toHex(evidenceOffender(evidence)),
          tx: toHex(env.hash),
        });
      } catch (err) {
        this.logger.warn('equivocation evidence not submitted', { error: (err as Error).message });
      }
    }
    this.evidenceToSubmit = waiting;
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
    if (this.stopped || this.syncing || !this.network) return;
    const idle = Date.now() - this.lastProgress;
    // A height that takes longer than a block interval and a propose timeout lost messages.
    if (
      idle > this.blockTimeMs + this.timeouts.proposeMs &&
      Date.now() - this.lastRegossip > this.blockTimeMs
    ) {
      this.lastRegossip = Date.now();
      void this.enqueue(() => this.regossip());
    }
    if (idle < this.stallMs || this.probingPeers) return;
    this.lastProgress = Date.now();
    // Ask the peers first, outside the work queue: a slow height on a busy network is not a reason
    // to stop voting, and syncing (which holds the queue) only helps when some peer is ahead.
    const network = this.network;
    this.probingPeers = true;
    isBehind(network, this.chain.height, 0)
      .then((behind) => {
        if (!behind || this.stopped) return;
        return this.enqueue(async () => {
          const before = this.chain.height;
          await this.catchUp();
          if (this.chain.height > before) this.scheduleHeight();
        });
      })
      .catch((err) => this.logger.debug('stall check failed', { error: (err as Error).message }))
      .finally(() => {
        this.probingPeers = false;
      });
  }

  /** Sends the current height's proposals and votes again, for peers that missed them. */
  private regossip(): void {
    if (this.stopped || this.syncing) return;
    const { proposals, votes } = this.machine.gossip();
    for (const p of proposals) {
      const msg = this.proposalMessage(p);
      if (msg) this.publish('proposal', encode(proposalMessageCodec, msg));
    }
    for (const vote of votes) this.publish('vote', encode(voteMessageCodec, { vote, sentAt: now() }));
  }

  /** Fetches and checks the blocks peers have beyond our head, until no peer is ahead. */
  private async catchUp(): Promise<void> {
    const network = this.network;
    if (!network || this.stopped) return;
    this.syncing = true;
    try {
      await this.syncFromPeers(network);
    } finally {
      this.syncing = false;
      this.syncProgress = null;
      this.lastProgress = Date.now();
    }
  }

  /** Block sync (sync.ts) from the peers that are ahead, each block checked with its commit. */
  private async syncFromPeers(network: Network): Promise<void> {
    let lastLog = 0;
    const result = await syncChain({
      network,
      chain: {
        height: () => this.chain.height,
        applyBlock: async (encoded) => {
          const block = decode(blockCodec, encoded);
          const envelopes = this.preverifier.decode(block);
          if (envelopes) {
            await this.preverifier.preverify(
              envelopes,
              this.chain.state,
              this.chain.genesis.chainId,
              this.headForPreverify(),
              () => false,
            );
          }
          const committed = await this.chain.verifyAndCommit(
            block,
            null,
            envelopes
              ? {
                  envelopes,
                  isSignatureVerified: this.verifiedAmong(envelopes),
                  isEd25519Verified: this.preverifier.isEd25519Verified,
                }
              : null,
          );
          this.host.onCommitted(committed);
          for (const l of this.commitListeners) l(committed, committed.block.commit.round);
        },
      },
      onProgress: (p) => {
        this.syncProgress = p;
        if (Date.now() - lastLog < 2_000 && p.height < p.target) return;
        lastLog = Date.now();
        this.logger.info('syncing blocks', {
          height: p.height,
          target: p.target,
          blocksPerSecond: Math.round(p.blocksPerSecond),
          eta: p.etaSeconds === null ? '?' : `${Math.ceil(p.etaSeconds)}s`,
        });
      },
      logger: this.logger,
    });
    if (result.applied > 0) this.logger.info('synced', { height: result.height, applied: result.applied });
  }

  private async blocksFor(from: bigint, to: bigint): Promise<Uint8Array[]> {
    const out: Uint8Array[] = [];
    const top = min(to, this.chain.height);
    for (let h = from; h <= top; h++) {
      const block = await this.chain.blockAt(h);
      if (!block) break;
      out.push(encode(blockCodec, block));
    }
    return out;
  }
}

/** The block's transactions decoded once, for the content check and for execution; null if one is malformed. */
function decodeTxs(txs: readonly Uint8Array[]): TxEnvelope[] | null {
  try {
    return txs.map((raw) => envelopeFromBytes(raw));
  } catch {
    return null;
  }
}

function now(): bigint {
  return BigInt(Date.now());
}

function min(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
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
