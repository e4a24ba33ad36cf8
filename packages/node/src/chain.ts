/**
 * The node's view of the chain: the committed head, the live state (in memory, mirrored in
 * LevelDB) with its Merkle trie, and the one place where blocks are executed and committed.
 */
import {
  applyToTrie,
  type Block,
  BlockExecutor,
  type BlockHeader,
  blockCodec,
  blockHash,
  blockResultsCodec,
  type ChainParams,
  commitHash,
  decode,
  emptyTrie,
  encode,
  envelopeFromBytes,
  equalBytes,
  executeBlock,
  type Genesis,
  genesisStateWrites,
  genesisToJson,
  getParams,
  keyId,
  type MerkleTrie,
  nextBeacon as nextVrfBeacon,
  parseGenesis,
  type StateReader,
  StateSpace,
  type StateWrite,
  signCommitVote,
  type TxEnvelope,
  type TxResult,
  taggedHash,
  toHex,
  txEventCodec,
  txRootOf,
  ValidationError,
  verifyBeacon,
  verifyCommitVote,
  ZERO_HASH,
} from '@unc/core';
import type { Logger } from './log.js';
import type { ChainDb } from './storage/db.js';

/** The full state in memory, keyed by state key, plus the trie that commits to it. */
export class LiveState implements StateReader {
  private readonly map = new Map<string, Uint8Array>();
  /** Keys of the namespaces that RPC lists (vendors, models, chips), by their first byte. */
  private readonly listed = new Map<number, Set<string>>(
    [StateSpace.vendor, StateSpace.model, StateSpace.chip].map((space) => [space, new Set<string>()]),
  );
  trie: MerkleTrie = emptyTrie();

  private index(id: string, present: boolean): void {
    const set = this.listed.get(id.charCodeAt(0));
    if (!set) return;
    if (present) set.add(id);
    else set.delete(id);
  }

  /** Every key in a listed namespace (StateSpace.vendor, .model or .chip), in key order. */
  keysIn(space: number): Uint8Array[] {
    const set = this.listed.get(space);
    if (!set) throw new Error(`namespace ${space} is not indexed`);
    return [...set].sort().map((id) => new Uint8Array(Buffer.from(id, 'latin1')));
  }

  get(key: Uint8Array): Uint8Array | undefined {
    return this.map.get(keyId(key));
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
}

export interface Rejected {
  env: TxEnvelope;
  error: ValidationError;
}

export interface ValidatorKey {
  seed: Uint8Array;
  publicKey: Uint8Array;
}

type CommitListener = (committed: CommittedBlock) => void;

export class Chain {
  private listeners: CommitListener[] = [];
  private constructor(
    readonly db: ChainDb,
    readonly genesis: Genesis,
    readonly genesisHash: Uint8Array,
    readonly state: LiveState,
    private headBlock: Block,
    private headHash: Uint8Array,
    private readonly logger: Logger,
  ) {}

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
      const block: Block = { header, txs: [], commit: { height: 0n, blockHash: hash, signatures: [] } };
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
    logger.info('resumed chain', { height: head.height, hash: toHex(head.hash), stateEntries: state.size });
    return new Chain(db, genesis, blockHash(genesisBlock.header), state, headBlock, head.hash, logger);
  }

  get head(): { header: BlockHeader; hash: Uint8Array; block: Block } {
    return { header: this.headBlock.header, hash: this.headHash, block: this.headBlock };
  }

  get height(): bigint {
    return this.headBlock.header.height;
  }

  get params(): ChainParams {
    return getParams(this.state);
  }

  onCommit(listener: CommitListener): () => void {
    this.listeners.push(listener);
    return () => {
      this.listeners = this.listeners.filter((l) => l !== listener);
    };
  }

  /** Block time for the next block: now, but always strictly after the previous block. */
  nextBlockTime(nowMs: bigint): bigint {
    const prev = this.headBlock.header.time;
    return nowMs > prev ? nowMs : prev + 1n;
  }

  /**
   * Proposer path (single-validator mode): applies the candidates that still apply, in order,
   * commits the block signed by `validator`, and reports the ones left out with their reasons.
   */
  async proposeAndCommit(
    candidates: readonly TxEnvelope[],
    time: bigint,
    validator: ValidatorKey,
    isSignatureVerified: (hash: Uint8Array) => boolean,
  ): Promise<{ committed: CommittedBlock; rejected: Rejected[] }> {
    const prev = this.headBlock.header;
    const height = prev.height + 1n;
    const executor = new BlockExecutor(
      this.state,
      {
        chainId: this.genesis.chainId,
        height,
        time,
        proposer: validator.publicKey,
        prevHash: this.headHash,
        prevBeacon: prev.beacon,
      },
      { isSignatureVerified },
    );
    // The VRF beacon (PROTOCOL §6): the proposer cannot choose it, nobody can predict it earlier.
    const { beacon, proof: vrfProof } = nextVrfBeacon(prev.beacon, height, validator.seed);
    const included: TxEnvelope[] = [];
    const rejected: Rejected[] = [];
    for (const env of candidates) {
      const outcome = executor.tryApply(env);
      if (outcome instanceof ValidationError) rejected.push({ env, error: outcome });
      else included.push(env);
    }
    const execution = executor.finish();
    const changes = execution.overlay.changes();
    const trie = applyToTrie(this.state.trie, changes);
    const header: BlockHeader = {
      chainId: this.genesis.chainId,
      height,
      time,
      prevHash: this.headHash,
      stateRoot: trie.root,
      txRoot: txRootOf(included),
      proposer: validator.publicKey,
      beacon,
      vrfProof,
      lastCommitHash: commitHash(this.headBlock.commit),
    };
    const hash = blockHash(header);
    const block: Block = {
      header,
      txs: included.map((e) => e.bytes),
      commit: {
        height,
        blockHash: hash,
        signatures: [
          {
            validator: validator.publicKey,
            signature: signCommitVote(this.genesis.chainId, height, hash, validator.seed),
          },
        ],
      },
    };
    const committed = { block, hash, envelopes: included, results: execution.results };
    await this.persist(committed, changes, trie);
    return { committed, rejected };
  }

  /**
   * Validator path for a block made elsewhere (sync, other proposers): every rule is checked
   * before anything is written.
   */
  async verifyAndCommit(block: Block): Promise<CommittedBlock> {
    const prev = this.headBlock.header;
    const { header } = block;
    const fail = (why: string): never => {
      throw new ValidationError('BAD_BLOCK', `block ${header.height}: ${why}`);
    };
    if (header.chainId !== this.genesis.chainId) fail('wrong chain id');
    if (header.height !== prev.height + 1n) fail(`expected height ${prev.height + 1n}`);
    if (!equalBytes(header.prevHash, this.headHash)) fail('previous hash does not match the head');
    if (header.time <= prev.time) fail('block time does not increase');
    if (!equalBytes(header.lastCommitHash, commitHash(this.headBlock.commit))) fail('wrong last commit hash');
    if (!this.genesis.validators.some((v) => equalBytes(v.publicKey, header.proposer)))
      fail('proposer is not a validator');
    const beacon = verifyBeacon(prev.beacon, header.height, header.proposer, header.vrfProof);
    if (!beacon || !equalBytes(beacon, header.beacon)) fail("the beacon is not the proposer's VRF output");
    const hash = blockHash(header);
    if (!equalBytes(block.commit.blockHash, hash) || block.commit.height !== header.height) {
      fail('commit is for another block');
    }
    const validators = this.genesis.validators.map((v) => v.publicKey);
    const signers = new Set<string>();
    for (const s of block.commit.signatures) {
      if (!validators.some((v) => equalBytes(v, s.validator))) fail('commit signed by a non-validator');
      if (!verifyCommitVote(header.chainId, header.height, hash, s.validator, s.signature)) {
        fail('invalid commit signature');
      }
      signers.add(toHex(s.validator));
    }
    if (signers.size * 3 <= validators.length * 2) fail('commit lacks more than 2/3 of the validators');
    const envelopes = block.txs.map((raw) => envelopeFromBytes(raw));
    if (!equalBytes(txRootOf(envelopes), header.txRoot)) fail('transactions root does not match');
    const execution = executeBlock(this.state, envelopes, {
      chainId: header.chainId,
      height: header.height,
      time: header.time,
      proposer: header.proposer,
      prevHash: this.headHash,
      prevBeacon: prev.beacon,
    });
    const changes = execution.overlay.changes();
    const trie = applyToTrie(this.state.trie, changes);
    if (!equalBytes(trie.root, header.stateRoot)) fail('state root does not match the executed state');
    const committed = { block, hash, envelopes, results: execution.results };
    await this.persist(committed, changes, trie);
    return committed;
  }

  private async persist(committed: CommittedBlock, changes: StateWrite[], trie: MerkleTrie): Promise<void> {
    const { block, hash, envelopes, results } = committed;
    const chipEvents: { chipId: Uint8Array; txIndex: number; eventIndex: number; event: Uint8Array }[] = [];
    results.forEach((r, txIndex) => {
      r.events.forEach((event, eventIndex) => {
        if ('chipId' in event)
          chipEvents.push({ chipId: event.chipId, txIndex, eventIndex, event: encode(txEventCodec, event) });
      });
    });
    await this.db.commitBlock({
      height: block.header.height,
      hash,
      block: encode(blockCodec, block),
      txHashes: envelopes.map((e) => e.hash),
      results: encode(blockResultsCodec, results),
      stateChanges: changes,
      chipEvents,
    });
    // Only once the batch is on disk does the block become the head that RPC reports.
    this.state.apply(changes, trie);
    this.headBlock = block;
    this.headHash = hash;
    for (const l of this.listeners) {
      try {
        l(committed);
      } catch (err) {
        this.logger.error('commit listener failed', { error: (err as Error).message });
      }
    }
  }

  async blockAt(height: bigint): Promise<Block | null> {
    if (height === this.height) return this.headBlock;
    const raw = await this.db.getBlockBytes(height);
    return raw ? decode(blockCodec, raw) : null;
  }

  async resultsAt(height: bigint): Promise<TxResult[] | null> {
    const raw = await this.db.getResultsBytes(height);
    return raw ? decode(blockResultsCodec, raw) : null;
  }
}
