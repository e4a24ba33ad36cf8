/**
 * The node's view of the chain: the committed head, the live state (in memory, mirrored in
 * LevelDB) with its Merkle trie, and the one place where blocks are executed and committed.
 */
import {
  applyToTrie,
  type Block,
  type BlockContext,
  type BlockExecution,
  BlockExecutor,
  type BlockHeader,
  blockCodec,
  blockEventsCodec,
  blockHash,
  blockLimitViolation,
  blockResultsCodec,
  type ChainParams,
  type Commit,
  type CommitCertificate,
  certificateFromVotes,
  commitFromCertificate,
  commitHash,
  costlyActionCount,
  decode,
  decode as decodeValue,
  type Ed25519Verified,
  emptyTrie,
  encode,
  envelopeFromBytes,
  equalBytes,
  executeBlock,
  executeBlockAssuming,
  feeActions,
  type Genesis,
  genesisStateWrites,
  genesisToJson,
  getParams,
  handoverPending,
  keyId,
  LATEST_VALIDATOR_SET_KEY,
  type MerkleTrie,
  merkleProofCodec,
  nextBeacon as nextVrfBeacon,
  parseGenesis,
  type StateReader,
  StateSpace,
  type StateWrite,
  settleAssumed,
  signVote,
  type TxEnvelope,
  type TxEvent,
  type TxResult,
  taggedHash,
  toHex,
  trieKey,
  txEventCodec,
  txRootOf,
  u64 as u64Codec,
  ValidationError,
  type ValidatorSet,
  type VerifyFn,
  validatorSetAt,
  validatorSetForHeight,
  validatorSetProofKeys,
  verifyBeacon,
  verifyBlockCommit,
  ZERO_HASH,
} from '@unc/core';
import { encodeBlock } from './block-bytes.js';
import {
  accountTxEntries,
  epochStartingAt,
  leaseEventEntries,
  migrateIndexes,
  networkStatsAt,
  stateAfter,
} from './indexes.js';
import type { Logger } from './log.js';
import type { ChainDb } from './storage/db.js';

/** Where a block's own events (not a transaction's) sit in the per-chip event index. */
export const BLOCK_EVENTS_TX_INDEX = 0xffff_ffff;

/** A proposer tries at most this many failing candidates per place in a block (maxBlockTxs). */
export const MAX_REJECTED_PER_BLOCK_TXS = 4;

/**
 * A proposer runs at most this many costly checks (a chip registration's chain and quote, a
 * transfer's consent, milliseconds each; counted as execution starts them, core's
 * ExecuteOptions.onCostlyCheck) in candidates that fail, per block; past it, candidates with costly
 * actions (core's `costlyActionCount`) are passed over until the next block. A candidate that
 * fails before any such check (a chip that does not exist, a nonce) weighs nothing here.
 * The count bound above is sized for transfers (microseconds each): 4 × 20,000 failing
 * registrations are minutes of CPU. Admission refuses evidence that fails on the state it sees
 * (mempool.ts), so what fails here is what the state changed under since (a vendor revoked, a
 * certificate expired at block time, an anchor grown stale): 64 such are at most ~0.25 s.
 */
export const MAX_REJECTED_COSTLY_PER_BLOCK = 64;

/**
 * A proposer runs at most about this many units of per-action work (core's `feeActions` units,
 * counted as execution starts them, ExecuteOptions.onActionWork: each action, each chip a claim
 * settles; ~10–40 µs each) in candidates that fail, per block, beyond the first unit of each; past
 * it, candidates of more than one unit are passed over until the next block. A failure pays
 * nothing, whatever it ran first: 63 transfers and an unbond of no bond, or a claim of ~2,000
 * chips whose last is not registered, were tens of milliseconds each, and the count bound above
 * (sized for one action each) let a pool of them cost every proposer seconds per block for free
 * (docs/security-audit-money.md, review R-1). A failure in its first unit weighs nothing, as a
 * single action's does: those are bounded by their count, and must not keep an honest batch or
 * claim out of the block. ~8,192 units are ~0.1–0.3 s.
 */
export const MAX_REJECTED_ACTIONS_PER_BLOCK = 8192;

/** The full state in memory, keyed by state key, plus the trie that commits to it. */
export class LiveState implements StateReader {
  private readonly map = new Map<string, Uint8Array>();
  /** Keys of the namespaces that RPC lists (vendors, models, chips), by their first byte. */
  private readonly listed = new Map<number, Set<string>>(
    [StateSpace.vendor, StateSpace.model, StateSpace.chip].map((space) => [space, new Set<string>()]),
  );
  /**
   * keysIn's answers, until a key of the namespace comes or goes: sorting every chip key per call
   * (200,000 of them: ~0.3 s) was done per RPC request and per committed block (network stats).
   * A chip's keys change only when one registers or deregisters, not when one answers.
   */
  private readonly sorted = new Map<number, readonly Uint8Array[]>();
  trie: MerkleTrie = emptyTrie();

  private index(id: string, present: boolean): void {
    const space = id.charCodeAt(0);
    const set = this.listed.get(space);
    if (!set || set.has(id) === present) return;
    if (present) set.add(id);
    else set.delete(id);
    this.sorted.delete(space);
  }

  /**
   * Every key in a listed namespace (StateSpace.vendor, .model or .chip), in key order. The array
   * is shared between calls until the namespace changes: read it, never write to it.
   */
  keysIn(space: number): readonly Uint8Array[] {
    const set = this.listed.get(space);
    if (!set) throw new Error(`namespace ${space} is not indexed`);
    let keys = this.sorted.get(space);
    if (!keys) {
      keys = Object.freeze([...set].sort().map((id) => new Uint8Array(Buffer.from(id, 'latin1'))));
      this.sorted.set(space, keys);
    }
    return keys;
  }

  get(key: Uint8Array): Uint8Array | undefined {
    return this.map.get(keyId(key));
  }

  /** `get` by keyId(key): what a block's overlay reads through (StateReader.getById). */
  getById(id: string): Uint8Array | undefined {
    return this.map.get(id);
  }

  get size(): number {
    return this.map.size;
  }

  /** Loads entries without touching the trie (start-up); call `rebuildTrie` after. */
  load(key: Uint8Array, value: Uint8Array): void {
    const id = keyId(key);
    this.map.set(id, value);
    this.index(id, true);
  }

  rebuildTrie(): void {
    const writes: StateWrite[] = [];
    for (const [id, value] of this.map)
      writes.push({ key: new Uint8Array(Buffer.from(id, 'latin1')), value });
    this.trie = applyToTrie(emptyTrie(), writes);
  }

  /** Applies a block's writes together with the trie computed for them. */
  apply(changes: readonly StateWrite[], trie: MerkleTrie): void {
    for (const c of changes) {
      const id = keyId(c.key);
      if (c.value === null) this.map.delete(id);
      else this.map.set(id, c.value);
      this.index(id, c.value !== null);
    }
    this.trie = trie;
  }
}

export interface CommittedBlock {
  block: Block;
  hash: Uint8Array;
  envelopes: TxEnvelope[];
  results: TxResult[];
  /** What the block did before its transactions (e.g. the market's epoch-end settlement). */
  blockEvents: TxEvent[];
}

export interface Rejected {
  env: TxEnvelope;
  error: ValidationError;
}

/**
 * A block that executed cleanly on the head state but is not final yet: what consensus votes on.
 * It keeps its execution so that committing it does not run the transactions again.
 */
export interface PendingBlock {
  block: Block;
  hash: Uint8Array;
  envelopes: TxEnvelope[];
  results: TxResult[];
  blockEvents: TxEvent[];
  changes: StateWrite[];
  trie: MerkleTrie;
  /** The head it extends. */
  prevHash: Uint8Array;
  /** The head's commit certificate that the block's header names. */
  lastCommit: Commit;
}

function emptyCommit(height: bigint, blockHash: Uint8Array): Commit {
  return { height, round: 0, blockHash, signatures: [] };
}

export interface ValidatorKey {
  seed: Uint8Array;
  publicKey: Uint8Array;
}

type CommitListener = (committed: CommittedBlock) => void;

/**
 * A decided block could not be written to this node's disk: the fault is local (never the peer's
 * that served the block), and final for this chain (`untilDurable` rejects with it ever after).
 */
export class BlockWriteError extends Error {
  override readonly name = 'BlockWriteError';
}

/**
 * A decided block whose batch is being written: the next height executes on the state after it
 * (`view`, an overlay of its writes on the durable state) while the write and its fsync run off
 * the main thread. Readers of the durable head (RPC) do not see it until `written` resolves.
 */
interface InFlightCommit {
  committed: CommittedBlock;
  changes: StateWrite[];
  trie: MerkleTrie;
  view: StateReader;
  written: Promise<void>;
  /** Makes `written` reject now (`abandonWrite`): whoever waits on the write stops waiting. */
  giveUp: (error: BlockWriteError) => void;
  /** The block's transaction ids, made on the first look-up (RPC status while the write runs). */
  txIds?: Set<string>;
}

/** A block height and hash the operator trusts (weak subjectivity). */
export interface TrustedCheckpoint {
  height: bigint;
  hash: Uint8Array;
}

/** `HEIGHT:HASH` (hash as 64 hex digits) as a checkpoint; throws a RangeError saying what is wrong. */
export function parseTrustedCheckpoint(text: string): TrustedCheckpoint {
  const m = /^([0-9]{1,19}):(?:0x)?([0-9a-fA-F]{64})$/.exec(text.trim());
  if (!m) throw new RangeError(`trusted checkpoint "${text}" is not HEIGHT:HASH (64 hex digits)`);
  const height = BigInt(m[1]!);
  if (height < 1n) throw new RangeError('trusted checkpoint height must be at least 1');
  return { height, hash: Uint8Array.from(Buffer.from(m[2]!, 'hex')) };
}

export class Chain {
  private listeners: CommitListener[] = [];
  private inFlight: InFlightCommit | null = null;
  /** Why a block's write failed: nothing is committed after it (the node must stop). */
  private writeFailure: BlockWriteError | null = null;
  /**
   * The operator's weak-subjectivity checkpoint (`unc start --trusted-checkpoint`): no block at
   * its height but the one it names is accepted, by sync or by consensus. Keys of validators whose
   * bonds were released long ago still sign valid commits at old heights; a history they build
   * from there is told from the real one only by what the operator trusts (docs/operators.md).
   */
  trustedCheckpoint: TrustedCheckpoint | null = null;
  private constructor(
    readonly db: ChainDb,
    readonly genesis: Genesis,
    readonly genesisHash: Uint8Array,
    readonly state: LiveState,
    private headBlock: Block,
    private headHash: Uint8Array,
    private readonly logger: Logger,
  ) {}

  /**
   * Sets the trusted checkpoint, first checking the stored chain against it: a store holding
   * another block at its height followed a history the operator does not trust, and is refused
   * with CHECKPOINT_CONFLICT, nothing changed (the chain folder `chainDir` must be removed and the
   * chain synced again from trusted peers; never the whole data folder, whose signer state keeps
   * a validator from signing twice).
   */
  async trustCheckpoint(cp: TrustedCheckpoint, chainDir = 'the chain folder (data/chain)'): Promise<void> {
    if (cp.height <= this.height) {
      const raw = await this.db.getBlockBytes(cp.height);
      const stored = raw ? blockHash(decode(blockCodec, raw).header) : null;
      if (!stored || !equalBytes(stored, cp.hash))
        throw new ValidationError(
          'CHECKPOINT_CONFLICT',
          `the stored block ${cp.height} is ${stored ? Buffer.from(stored).toString('hex') : 'missing'}, not the trusted checkpoint ${Buffer.from(cp.hash).toString('hex')}: this chain store followed another history (or the checkpoint is wrong: check it first). Stop the node, remove ${chainDir} only (not the keys or the signer state beside it) and start again to sync from peers`,
        );
    }
    this.trustedCheckpoint = cp;
  }

  /** Opens the chain in `db`, initialising it from `genesis` if empty. */
  static async open(db: ChainDb, genesisJson: unknown, logger: Logger): Promise<Chain> {
    const genesis = parseGenesis(genesisJson);
    const head = await db.getHead();
    const state = new LiveState();
    if (!head) {
      const writes = genesisStateWrites(genesis);
      const trie = applyToTrie(emptyTrie(), writes);
      const header: BlockHeader = {
        chainId: genesis.chainId,
        height: 0n,
        time: genesis.genesisTime,
        prevHash: ZERO_HASH,
        stateRoot: trie.root,
        txRoot: ZERO_HASH,
        proposer: genesis.validators[0]!.publicKey,
        beacon: taggedHash('UNC/genesis-beacon', new TextEncoder().encode(genesis.chainId)),
        vrfProof: new Uint8Array(0),
        lastCommitHash: ZERO_HASH,
      };
      const hash = blockHash(header);
      const block: Block = { header, txs: [], commit: emptyCommit(0n, hash) };
      await db.commitBlock(
        {
          height: 0n,
          hash,
          block: encode(blockCodec, block),
          txHashes: [],
          results: encode(blockResultsCodec, []),
          stateChanges: writes,
        },
        JSON.stringify(genesisToJson(genesis)),
      );
      state.apply(writes, trie);
      logger.info('initialised chain from genesis', { chainId: genesis.chainId, genesisHash: toHex(hash) });
      return new Chain(db, genesis, hash, state, block, hash, logger);
    }

    const storedGenesis = await db.getGenesisJson();
    if (storedGenesis === null) throw new Error('database has blocks but no genesis: it is corrupt');
    const stored = parseGenesis(JSON.parse(storedGenesis));
    if (JSON.stringify(genesisToJson(stored)) !== JSON.stringify(genesisToJson(genesis))) {
      throw new Error('the genesis file differs from the one this data directory was created with');
    }
    const genesisBlock = decode(blockCodec, (await db.getBlockBytes(0n))!);
    const headBlock = decode(blockCodec, (await db.getBlockBytes(head.height))!);
    for await (const [key, value] of db.stateEntries()) state.load(key, value);
    state.rebuildTrie();
    if (!equalBytes(state.trie.root, headBlock.header.stateRoot)) {
      throw new Error(
        `state root ${toHex(state.trie.root)} does not match block ${head.height}'s ${toHex(headBlock.header.stateRoot)}`,
      );
    }
    await migrateIndexes(db, head.height, stateAfter(state, []), logger);
    logger.info('resumed chain', { height: head.height, hash: toHex(head.hash), stateEntries: state.size });
    return new Chain(db, genesis, blockHash(genesisBlock.header), state, headBlock, head.hash, logger);
  }

  get head(): { header: BlockHeader; hash: Uint8Array; block: Block } {
    return { header: this.headBlock.header, hash: this.headHash, block: this.headBlock };
  }

  get height(): bigint {
    return this.headBlock.header.height;
  }

  /**
   * The block the next height builds on: the head, or the decided block whose write is in flight.
   * Consensus executes and proposes on the tip; what RPC reports as committed is `head`, which
   * becomes the tip only once its batch is on disk.
   */
  get tip(): { header: BlockHeader; hash: Uint8Array; block: Block } {
    const f = this.inFlight;
    if (!f) return this.head;
    return { header: f.committed.block.header, hash: f.committed.hash, block: f.committed.block };
  }

  get tipHeight(): bigint {
    return (this.inFlight?.committed.block ?? this.headBlock).header.height;
  }

  /** The state after the tip: the live state, with the in-flight block's writes over it. */
  get tipState(): StateReader {
    return this.inFlight?.view ?? this.state;
  }

  private get tipTrie(): MerkleTrie {
    return this.inFlight?.trie ?? this.state.trie;
  }

  /** Whether a decided block's batch is being written (the tip is ahead of the head). */
  get writing(): boolean {
    return this.inFlight !== null;
  }

  /**
   * Whether a transaction is in the decided block being written: it has left the mempool and is
   * not in the database yet, and RPC reports it pending (neither unknown nor included) meanwhile.
   */
  isBeingWritten(txHash: Uint8Array): boolean {
    const f = this.inFlight;
    if (!f || this.writeFailure) return false;
    f.txIds ??= new Set(f.committed.envelopes.map((e) => keyId(e.hash)));
    return f.txIds.has(keyId(txHash));
  }

  /**
   * Resolves once every decided block is on disk (at once when none is in flight); rejects,
   * now and forever after, if a block's write failed.
   */
  untilDurable(): Promise<void> {
    if (this.writeFailure) return Promise.reject(this.writeFailure);
    return this.inFlight?.written ?? Promise.resolve();
  }

  /**
   * Gives up on the write in flight (it never finished: a hung disk or mount): from now on it
   * counts as failed, exactly like a write that reported an error, and `untilDurable` rejects
   * with the returned error. What the write may still do later changes nothing here: the node
   * stops, and a restart reopens from whatever is on disk. The caller decides when (the driver's
   * watchdog, on its injected clock): the chain keeps no clock of its own.
   */
  abandonWrite(reason: string): BlockWriteError {
    if (this.writeFailure) return this.writeFailure;
    const height = this.inFlight?.committed.block.header.height ?? this.tipHeight;
    this.writeFailure = new BlockWriteError(
      `block ${height} could not be written; this node stops: ${reason}`,
    );
    this.logger.error('FATAL: a decided block could not be written to disk', { height, error: reason });
    this.inFlight?.giveUp(this.writeFailure);
    return this.writeFailure;
  }

  /**
   * The tip state's parameters (those of the next block), decoded once per tip: admission reads
   * them for every transaction, and they change only with the state, which changes only with the tip.
   * Frozen, since every reader shares the one object.
   */
  get params(): ChainParams {
    const tipHash = this.inFlight?.committed.hash ?? this.headHash;
    if (this.paramsHead !== tipHash || this.paramsState !== this.tipState) {
      this.paramsCache = Object.freeze(getParams(this.tipState));
      this.paramsHead = tipHash;
      this.paramsState = this.tipState;
    }
    return this.paramsCache!;
  }
  private paramsCache: ChainParams | null = null;
  private paramsHead: Uint8Array | null = null;
  private paramsState: unknown = null;

  onCommit(listener: CommitListener): () => void {
    this.listeners.push(listener);
    return () => {
      this.listeners = this.listeners.filter((l) => l !== listener);
    };
  }

  /** Block time for the next block: now, but always strictly after the previous block. */
  nextBlockTime(nowMs: bigint): bigint {
    const prev = this.tip.header.time;
    return nowMs > prev ? nowMs : prev + 1n;
  }

  /** The validators that vote on the next block (the epoch's set: bonded online power, §6). */
  validatorSet(): ValidatorSet {
    return validatorSetAt(this.tipState, this.genesis);
  }

  /** The set that signed (or signs) the block at `height`, while the state still remembers it. */
  validatorsForHeight(height: bigint): ValidatorSet {
    const set = validatorSetForHeight(this.tipState, this.genesis, height);
    if (!set)
      throw new ValidationError('BAD_COMMIT', `the validator set of height ${height} is no longer known`);
    return set;
  }

  /**
   * Builds the next block as `validator` proposes it: applies the candidates that still apply, in
   * order, and reports the ones left out with their reasons. Nothing is written: the block becomes
   * final only through `commitDecided` with a commit certificate.
   */
  buildProposal(
    candidates: Iterable<TxEnvelope>,
    time: bigint,
    validator: ValidatorKey,
    isSignatureVerified: (hash: Uint8Array) => boolean,
  ): { pending: PendingBlock; rejected: Rejected[] } {
    const tip = this.tip;
    const prev = tip.header;
    const height = prev.height + 1n;
    let costlyChecks = 0;
    let actionWork = 0;
    // The VRF beacon (PROTOCOL §6): the proposer cannot choose it, nobody can predict it earlier.
    // The block's execution reads it at its end (an epoch's last block breaks the next set's ties
    // with it), exactly as a validator's does with the header's (checkBeforeExecution).
    const { beacon, proof: vrfProof } = nextVrfBeacon(prev.beacon, height, validator.seed);
    const executor = new BlockExecutor(
      this.tipState,
      {
        chainId: this.genesis.chainId,
        height,
        time,
        proposer: validator.publicKey,
        prevHash: tip.hash,
        prevBeacon: prev.beacon,
        beacon,
      },
      // Counts the costly checks execution starts, so that a failure is weighed by what it cost.
      {
        isSignatureVerified,
        onCostlyCheck: () => costlyChecks++,
        onActionWork: () => actionWork++,
      },
    );
    const included: TxEnvelope[] = [];
    const rejected: Rejected[] = [];
    // The limits every validator checks (validateProposal): candidates past them are left for a
    // later block, neither included nor rejected.
    const { maxBlockTxs, maxBlockBytes } = this.params;
    // Candidates are drawn until the block is full: one that fails takes no place in it (a failed
    // transaction pays nothing, so failures must not be a free way to empty blocks). The builder
    // tells a lazy source (Mempool.ordered) whether each one went in; the work spent on failures
    // is bounded by MAX_REJECTED_PER_BLOCK_TXS × maxBlockTxs.
    const maxRejected = maxBlockTxs * MAX_REJECTED_PER_BLOCK_TXS;
    // Failures are weighed too, not only counted: a failing registration costs a certificate chain.
    // By the checks they ran, not the actions they carry: a transfer of a chip that does not exist
    // fails at a lookup, free to send (a failure pays nothing), and 64 of those must not pass over
    // every honest registration in the block.
    let rejectedCostly = 0;
    // And by the per-action work they ran beyond their first unit (MAX_REJECTED_ACTIONS_PER_BLOCK).
    let rejectedWork = 0;
    let bytes = 0;
    const source = candidates[Symbol.iterator]() as Iterator<TxEnvelope, unknown, boolean | undefined>;
    for (let next = source.next(); !next.done; ) {
      if (included.length >= maxBlockTxs || rejected.length >= maxRejected) break;
      const env = next.value;
      let taken = false;
      // Passed over, neither included nor rejected: it stays pending for a later block. Its actions
      // are counted only once the block is over the cap, not for every candidate.
      const overCostly = rejectedCostly >= MAX_REJECTED_COSTLY_PER_BLOCK && costlyActionCount(env.stx.tx) > 0;
      const overWork = rejectedWork >= MAX_REJECTED_ACTIONS_PER_BLOCK && feeActions(env.stx.tx.actions) > 1;
      if (!overCostly && !overWork && bytes + env.bytes.length <= maxBlockBytes) {
        const checksBefore = costlyChecks;
        const workBefore = actionWork;
        const outcome = executor.tryApply(env);
        if (outcome instanceof ValidationError) {
          rejected.push({ env, error: outcome });
          rejectedCostly += costlyChecks - checksBefore;
          rejectedWork += Math.max(0, actionWork - workBefore - 1);
        } else {
          included.push(env);
          bytes += env.bytes.length;
          taken = true;
        }
      }
      next = source.next(taken);
    }
    source.return?.();
    const execution = executor.finish();
    const changes = execution.overlay.changes();
    const trie = applyToTrie(this.tipTrie, changes);
    const header: BlockHeader = {
      chainId: this.genesis.chainId,
      height,
      time,
      prevHash: tip.hash,
      stateRoot: trie.root,
      txRoot: txRootOf(included),
      proposer: validator.publicKey,
      beacon,
      vrfProof,
      lastCommitHash: commitHash(tip.block.commit),
    };
    const hash = blockHash(header);
    const block: Block = { header, txs: included.map((e) => e.bytes), commit: emptyCommit(height, hash) };
    return {
      pending: {
        block,
        hash,
        envelopes: included,
        results: execution.results,
        blockEvents: execution.blockEvents,
        changes,
        trie,
        prevHash: tip.hash,
        lastCommit: tip.block.commit,
      },
      rejected,
    };
  }

  /**
   * Checks a block made elsewhere against every rule except its own commit, by executing it on
   * the head state; nothing is written. `lastCommit` is the certificate of the head block that the
   * block's proposer saw (its hash is in the header): any quorum of precommits for the head
   * block is as good as ours, and it replaces ours on commit so that every node stores the same.
   * `lastCommitVouched`: the block comes with its own verified commit, whose signers checked the
   * header's lastCommitHash, so it need not match our certificate for the head.
   * `envelopes`: `block.txs` already decoded by the caller, in order, so that a large block is not
   * decoded and hashed twice.
   */
  validateProposal(
    block: Block,
    lastCommit: Commit | null = null,
    isSignatureVerified: (hash: Uint8Array) => boolean = () => false,
    lastCommitVouched = false,
    envelopes: readonly TxEnvelope[] | null = null,
    /** Chip signatures found valid before the block runs (consensus/block-preverify.ts). */
    isEd25519Verified?: Ed25519Verified,
  ): PendingBlock {
    const checked = this.checkBeforeExecution(block, lastCommit, lastCommitVouched, envelopes);
    const execution = executeBlock(this.tipState, checked.txs, checked.ctx, {
      isSignatureVerified,
      ...(isEd25519Verified ? { isEd25519Verified } : {}),
    });
    const changes = execution.overlay.changes();
    return this.pendingOf(block, checked, execution, changes, applyToTrie(this.tipTrie, changes));
  }

  /**
   * `validateProposal` with the block executed while its signature checks are still in flight
   * (consensus/block-preverify.ts `launch`): execution takes on trust only the checks `checks`
   * names as in flight, records each it relied on, and once it has run (state root computed) waits
   * for those results: if any did not pass, the block is invalid with the error in-order execution
   * gives (`settleAssumed`), and its overlay and trie are dropped, nothing written. Checks in flight
   * that execution never consulted have no say. The caller must hold the head still meanwhile (the
   * driver runs it on its queue) and finds the head unchanged afterwards, or drops the result.
   */
  async validateProposalOptimistically(
    block: Block,
    lastCommit: Commit | null,
    isSignatureVerified: (hash: Uint8Array) => boolean,
    envelopes: readonly TxEnvelope[] | null,
    /** Checks that passed before (by `ed25519CheckKey`): block-preverify.ts `hasPassed`. */
    passed: (key: string) => boolean,
    checks: { inFlight(key: string): boolean; results(keys: readonly string[]): Promise<boolean[]> },
  ): Promise<PendingBlock> {
    const checked = this.checkBeforeExecution(block, lastCommit, false, envelopes);
    const run = executeBlockAssuming(
      this.tipState,
      checked.txs,
      checked.ctx,
      { isSignatureVerified },
      checks.inFlight,
      passed,
    );
    // The trie is built while the workers may still be checking (it is this block's work either
    // way); its root is compared only once the checks are in, so that a forged signature gets its
    // own error, the one in-order execution gives.
    const changes = run.execution?.overlay.changes() ?? [];
    const trie = run.execution ? applyToTrie(this.tipTrie, changes) : null;
    const results = await checks.results(run.assumed.map((a) => a.key));
    const execution = settleAssumed(run, results);
    return this.pendingOf(block, checked, execution, changes, trie!);
  }

  /** Every rule of a block made elsewhere that comes before executing it (see `validateProposal`). */
  private checkBeforeExecution(
    block: Block,
    lastCommit: Commit | null,
    lastCommitVouched: boolean,
    envelopes: readonly TxEnvelope[] | null,
  ): { hash: Uint8Array; txs: TxEnvelope[]; ctx: BlockContext; parentCommit: Commit; prevHash: Uint8Array } {
    const tip = this.tip;
    const prev = tip.header;
    const { header } = block;
    const fail = (why: string): never => {
      throw new ValidationError('BAD_BLOCK', `block ${header.height}: ${why}`);
    };
    if (header.chainId !== this.genesis.chainId) fail('wrong chain id');
    if (header.height !== prev.height + 1n) fail(`expected height ${prev.height + 1n}`);
    const cp = this.trustedCheckpoint;
    if (cp && header.height === cp.height && !equalBytes(blockHash(header), cp.hash))
      fail('conflicts with the trusted checkpoint');
    if (!equalBytes(header.prevHash, tip.hash)) fail('previous hash does not match the head');
    if (header.time <= prev.time) fail('block time does not increase');
    const tooBig = blockLimitViolation(this.params, block.txs);
    if (tooBig) fail(tooBig);
    let parentCommit = tip.block.commit;
    if (lastCommit && !equalBytes(commitHash(lastCommit), commitHash(parentCommit))) {
      if (lastCommit.height !== prev.height || !equalBytes(lastCommit.blockHash, tip.hash)) {
        fail('the last commit is for another block');
      }
      if (prev.height === 0n) fail('the genesis block has no commit signatures');
      const why = this.checkCommit(lastCommit, tip.hash, prev.height);
      if (why) fail(`last commit: ${why}`);
      parentCommit = lastCommit;
    }
    if (!equalBytes(header.lastCommitHash, commitHash(parentCommit)) && !lastCommitVouched)
      fail('wrong last commit hash');
    if (!this.validatorSet().has(header.proposer)) fail('proposer is not a validator');
    const beacon = verifyBeacon(prev.beacon, header.height, header.proposer, header.vrfProof);
    if (!beacon || !equalBytes(beacon, header.beacon)) fail("the beacon is not the proposer's VRF output");
    const hash = blockHash(header);
    const txs = envelopes ? [...envelopes] : block.txs.map((raw) => envelopeFromBytes(raw));
    if (!equalBytes(txRootOf(txs), header.txRoot)) fail('transactions root does not match');
    const ctx: BlockContext = {
      chainId: header.chainId,
      height: header.height,
      time: header.time,
      proposer: header.proposer,
      prevHash: tip.hash,
      prevBeacon: prev.beacon,
      // Verified above: the proposer's VRF output, the one its own execution used.
      beacon: header.beacon,
    };
    return { hash, txs, ctx, parentCommit, prevHash: tip.hash };
  }

  /** The executed block, once its state root is the header's. */
  private pendingOf(
    block: Block,
    checked: { hash: Uint8Array; txs: TxEnvelope[]; parentCommit: Commit; prevHash: Uint8Array },
    execution: BlockExecution,
    changes: StateWrite[],
    trie: MerkleTrie,
  ): PendingBlock {
    const { header } = block;
    if (!equalBytes(trie.root, header.stateRoot))
      throw new ValidationError(
        'BAD_BLOCK',
        `block ${header.height}: state root does not match the executed state`,
      );
    return {
      block: { ...block, commit: emptyCommit(header.height, checked.hash) },
      hash: checked.hash,
      envelopes: checked.txs,
      results: execution.results,
      blockEvents: execution.blockEvents,
      changes,
      trie,
      prevHash: checked.prevHash,
      lastCommit: checked.parentCommit,
    };
  }

  /**
   * Why `commit` does not finalize `hash` at `height` with the current validators, or null.
   * `verify`: how each precommit's signature is checked (a caller that already checked some may
   * answer those from what it remembers).
   */
  checkCommit(commit: Commit, hash: Uint8Array, height: bigint, verify?: VerifyFn): string | null {
    try {
      verifyBlockCommit(this.validatorsForHeight(height), this.genesis.chainId, commit, hash, height, verify);
      return null;
    } catch (err) {
      if (err instanceof ValidationError) return err.message;
      throw err;
    }
  }

  /** Makes a decided block final: stores it with the certificate of the precommits that decided it. */
  async commitDecided(pending: PendingBlock, certificate: CommitCertificate): Promise<CommittedBlock> {
    const { committed, durable } = await this.beginCommit(pending, certificate);
    await durable;
    return committed;
  }

  /**
   * Starts making a decided block final and returns as soon as its batch is handed to the
   * database: from then on the tip is the block, so the next height can execute on its state
   * while the batch is written and fsynced off the main thread. `durable` resolves once it is on
   * disk (then the block becomes the head and the commit listeners run) and rejects if the write
   * failed, after which every later commit is refused: nothing may build on state that is not on
   * disk. Whoever signs for the next height must wait for `durable` (consensus/driver.ts).
   */
  async beginCommit(
    pending: PendingBlock,
    certificate: CommitCertificate,
  ): Promise<{ committed: CommittedBlock; durable: Promise<void> }> {
    // Blocks are written in order: the one before must be on disk (or have failed) first.
    await this.untilDurable();
    if (!equalBytes(pending.prevHash, this.headHash)) {
      throw new ValidationError(
        'BAD_BLOCK',
        `block ${pending.block.header.height} no longer extends the head`,
      );
    }
    const commit = commitFromCertificate(certificate);
    const why = this.checkCommit(commit, pending.hash, pending.block.header.height);
    if (why) throw new ValidationError('BAD_COMMIT', `block ${pending.block.header.height}: ${why}`);
    const committed = {
      block: { ...pending.block, commit },
      hash: pending.hash,
      envelopes: pending.envelopes,
      results: pending.results,
      blockEvents: pending.blockEvents,
    };
    const durable = this.startWrite(committed, pending.changes, pending.trie, pending.lastCommit);
    return { committed, durable };
  }

  /**
   * Single-validator path: builds the block and commits it with this validator's own precommit,
   * which is a quorum only when it is the sole validator.
   */
  async proposeAndCommit(
    candidates: readonly TxEnvelope[],
    time: bigint,
    validator: ValidatorKey,
    isSignatureVerified: (hash: Uint8Array) => boolean,
  ): Promise<{ committed: CommittedBlock; rejected: Rejected[] }> {
    const { pending, rejected } = this.buildProposal(candidates, time, validator, isSignatureVerified);
    const height = pending.block.header.height;
    const vote = signVote(
      this.genesis.chainId,
      { type: 'precommit', height, round: 0, blockHash: pending.hash, validator: validator.publicKey },
      validator.seed,
    );
    const committed = await this.commitDecided(pending, certificateFromVotes([vote]));
    return { committed, rejected };
  }

  /**
   * A block made and finalized elsewhere (sync): every rule, its commit included, is checked
   * before anything is written. `lastCommit` as for `validateProposal`.
   */
  async verifyAndCommit(
    block: Block,
    lastCommit: Commit | null = null,
    /** Signatures checked before the block runs (block-preverify.ts); passes only. */
    preverified: {
      isSignatureVerified: (hash: Uint8Array) => boolean;
      isEd25519Verified: Ed25519Verified;
      envelopes: readonly TxEnvelope[];
    } | null = null,
    /** How the commit's signatures are checked (sync: skipping those its look-ahead checked). */
    commitVerify?: VerifyFn,
  ): Promise<CommittedBlock> {
    await this.untilDurable();
    const hash = blockHash(block.header);
    const why = this.checkCommit(block.commit, hash, block.header.height, commitVerify);
    if (why) throw new ValidationError('BAD_BLOCK', `block ${block.header.height}: ${why}`);
    // The quorum that signed this header checked its lastCommitHash against the certificate the
    // proposer sent; our own quorum for the head may be another one, which proves nothing wrong.
    const pending = preverified
      ? this.validateProposal(
          block,
          lastCommit,
          preverified.isSignatureVerified,
          true,
          preverified.envelopes,
          preverified.isEd25519Verified,
        )
      : this.validateProposal(block, lastCommit, () => false, true);
    const committed = {
      block,
      hash: pending.hash,
      envelopes: pending.envelopes,
      results: pending.results,
      blockEvents: pending.blockEvents,
    };
    await this.startWrite(committed, pending.changes, pending.trie, pending.lastCommit);
    return committed;
  }

  /**
   * Hands the block's batch to the database (the ops are built here, on the main thread) and
   * makes it the tip; the returned promise resolves once the batch is on disk and the block is
   * the head. Called only with nothing in flight (`untilDurable` first).
   */
  private startWrite(
    committed: CommittedBlock,
    changes: StateWrite[],
    trie: MerkleTrie,
    parentCommit: Commit,
  ): Promise<void> {
    const { block, hash, envelopes, results, blockEvents } = committed;
    const chipEvents: { chipId: Uint8Array; txIndex: number; eventIndex: number; event: Uint8Array }[] = [];
    results.forEach((r, txIndex) => {
      r.events.forEach((event, eventIndex) => {
        if ('chipId' in event)
          chipEvents.push({ chipId: event.chipId, txIndex, eventIndex, event: encode(txEventCodec, event) });
      });
    });
    blockEvents.forEach((event, eventIndex) => {
      if ('chipId' in event)
        chipEvents.push({
          chipId: event.chipId,
          txIndex: BLOCK_EVENTS_TX_INDEX,
          eventIndex,
          event: encode(txEventCodec, event),
        });
    });
    // The network figures of each epoch as of its first block, over every chip, kept so that
    // readers need not rebuild them (one pass over the chips per epoch).
    const after = stateAfter(this.state, changes);
    const startedEpoch = epochStartingAt(after, block.header.height);
    const epochStats =
      startedEpoch === null
        ? undefined
        : { epoch: startedEpoch, json: JSON.stringify(networkStatsAt(after, block.header.height)) };
    // At an epoch's last block: why bonded candidates did not replace the set serving (the handover
    // bar, audit G1; after the handover too), so that operators see what is missing. Once per epoch.
    const next = block.header.height + 1n;
    const nextEpoch = epochStartingAt(after, next);
    if (nextEpoch !== null) {
      const pending = handoverPending(after, next);
      if (pending) {
        const kept = pending.handedOver ? 'previous validators' : 'genesis validators';
        this.logger.info(`${kept} kept: the computed set is short of the handover bar`, {
          epoch: nextEpoch.toString(),
          validators: pending.validators,
          weight: pending.weight.toString(),
          handoverMinValidators: pending.params.minValidators,
          handoverMinWeight: pending.params.minWeight.toString(),
          shortfall: pending.shortfall,
        });
      }
    }
    const parent = equalBytes(commitHash(parentCommit), commitHash(this.headBlock.commit))
      ? null
      : { ...this.headBlock, commit: parentCommit };
    const write = this.db.commitBlock({
      height: block.header.height,
      hash,
      block: encodeBlock(block),
      txHashes: envelopes.map((e) => e.hash),
      results: encode(blockResultsCodec, results),
      blockEvents: encode(blockEventsCodec, blockEvents),
      stateChanges: changes,
      chipEvents,
      accountTxs: accountTxEntries(envelopes, results),
      leaseEvents: leaseEventEntries(results, blockEvents),
      ...(epochStats ? { epochStats } : {}),
      ...validatorSetProofOf(changes, after, trie, block.header.height),
      ...(parent ? { parentBlock: encodeBlock(parent) } : {}),
    });
    const done = write.then(
      () => {
        // Given up on before it landed (`abandonWrite`): the node has stopped, and its head stays
        // what it reported; a restart reads whatever the disk holds.
        if (this.writeFailure) return;
        // Only once the batch is on disk does the block become the head that RPC reports.
        this.state.apply(changes, trie);
        this.headBlock = block;
        this.headHash = hash;
        this.inFlight = null;
        for (const l of this.listeners) {
          try {
            l(committed);
          } catch (err) {
            this.logger.error('commit listener failed', { error: (err as Error).message });
          }
        }
      },
      (err: unknown) => {
        const error = err instanceof Error ? err : new Error(String(err));
        // Already given up on (`abandonWrite`): that is the failure this chain reports.
        if (this.writeFailure) throw this.writeFailure;
        this.writeFailure = new BlockWriteError(
          `block ${block.header.height} could not be written; this node stops: ${error.message}`,
          { cause: error },
        );
        this.logger.error('FATAL: a decided block could not be written to disk', {
          height: block.header.height,
          error: error.message,
        });
        throw this.writeFailure;
      },
    );
    // A write given up on (`abandonWrite`) fails for whoever waits, whatever the disk does later.
    let giveUp: (error: BlockWriteError) => void = () => {};
    const abandoned = new Promise<never>((_, reject) => {
      giveUp = reject;
    });
    const written = Promise.race([done, abandoned]);
    // Whoever needs the outcome awaits `written` (or untilDurable); a failure is also recorded in
    // `writeFailure`, so these copies must not count as unhandled rejections.
    for (const p of [done, abandoned, written]) p.catch(() => {});
    this.inFlight = { committed, changes, trie, view: after, written, giveUp };
    return written;
  }

  async blockAt(height: bigint): Promise<Block | null> {
    if (height === this.height) return this.headBlock;
    const raw = await this.db.getBlockBytes(height);
    return raw ? decode(blockCodec, raw) : null;
  }

  /** The events of the block itself (before its transactions), e.g. leases settled at an epoch end. */
  async blockEventsAt(height: bigint): Promise<TxEvent[] | null> {
    const raw = await this.db.getBlockEventsBytes(height);
    return raw ? decode(blockEventsCodec, raw) : null;
  }

  async resultsAt(height: bigint): Promise<TxResult[] | null> {
    const raw = await this.db.getResultsBytes(height);
    return raw ? decode(blockResultsCodec, raw) : null;
  }
}

/**
 * At an epoch's last block (the one whose writes name a new latest set), the proofs a light client
 * needs to learn the next set from that block's state root (docs/rpc.md, unc_getValidatorSetProof).
 */
function validatorSetProofOf(
  changes: readonly StateWrite[],
  after: StateReader,
  trie: MerkleTrie,
  height: bigint,
): { validatorSetProof?: string } {
  const latest = changes.find((c) => equalBytes(c.key, LATEST_VALIDATOR_SET_KEY));
  if (!latest || latest.value === null) return {};
  const epoch = decodeValue(u64Codec, latest.value);
  const keys = validatorSetProofKeys(epoch);
  const entry = (key: Uint8Array) => {
    const value = after.get(key);
    return {
      value: value ? toHex(value) : null,
      proof: toHex(encode(merkleProofCodec, trie.prove(trieKey(key)))),
    };
  };
  return {
    validatorSetProof: JSON.stringify({
      height: Number(height),
      epoch: Number(epoch),
      set: entry(keys.set),
      genesis: entry(keys.genesis),
      params: entry(keys.params),
    }),
  };
}
