/**
 * The node's database. Keys carry a one-byte bucket prefix; every bucket is listed here. A block
 * and everything it changes (state, indexes, the head pointer) are written in one atomic batch,
 * so a crash at any point leaves either the whole block or none of it.
 *
 * The buckets sit on a `KvStore`: LevelDB on disk for a real node (`ChainDb.open`), or an ordered
 * map in memory (`MemoryKv`) for the simulator, which keeps the store of a "crashed" node and
 * reopens the chain from it exactly as a restarted process reopens its LevelDB.
 */
import { ClassicLevel } from 'classic-level';

export type BatchOp = { type: 'put'; key: Uint8Array; value: Uint8Array } | { type: 'del'; key: Uint8Array };

/** An ordered key-value store with atomic batches: what the chain database needs underneath. */
export interface KvStore {
  get(key: Uint8Array): Promise<Uint8Array | undefined>;
  /** Applies every op or none; `durable` asks for it to be on stable storage before resolving. */
  batch(ops: BatchOp[], durable: boolean): Promise<void>;
  /** Entries with gte <= key < lt in key order (reversed on request), at most `limit`. */
  entries(range: {
    gte: Uint8Array;
    lt: Uint8Array;
    reverse?: boolean;
    limit?: number;
  }): AsyncIterable<[Uint8Array, Uint8Array]>;
  close(): Promise<void>;
}

/** The KvStore of a real node: a LevelDB database (ChainDb.open makes one; tests, over their own). */
export class LevelKv implements KvStore {
  constructor(private readonly db: ClassicLevel<Uint8Array, Uint8Array>) {}
  async get(key: Uint8Array): Promise<Uint8Array | undefined> {
    return (await this.db.get(key)) ?? undefined;
  }
  async batch(ops: BatchOp[], durable: boolean): Promise<void> {
    // A chained batch, not `db.batch(array)`: abstract-level copies and re-validates every op of
    // an array batch on the main thread (a block's commit of ~25,000 ops took 0.5–1 s there under
    // bench:tps); put by put into the native batch it costs a tenth. Same atomic write either way.
    const batch = this.db.batch();
    try {
      for (const op of ops) {
        if (op.type === 'put') batch.put(op.key, op.value);
        else batch.del(op.key);
      }
    } catch (err) {
      // An op LevelDB refuses (a missing key or value) leaves nothing written, since write() was
      // never reached; but the batch, holding every op added so far in native memory, stays
      // attached to the database until it closes unless it is closed here.
      await batch.close();
      throw err;
    }
    // write() closes the batch whether it succeeds or fails.
    await batch.write({ sync: durable });
  }
  entries(range: { gte: Uint8Array; lt: Uint8Array; reverse?: boolean; limit?: number }) {
    return this.db.iterator({
      gte: range.gte,
      lt: range.lt,
      reverse: range.reverse ?? false,
      limit: range.limit ?? -1,
    });
  }
  close(): Promise<void> {
    return this.db.close();
  }
}

/**
 * An in-memory ordered store (hex keys in a Map, sorted when iterated; iteration is only used at
 * start-up and for a chip's log). A batch is applied at once, so, like LevelDB, a crash between
 * two batches leaves the first whole and the second absent. Values are copied in and out.
 */
export class MemoryKv implements KvStore {
  private readonly map = new Map<string, Uint8Array>();
  /** Batches written (tests and the simulator count them). */
  writes = 0;

  async get(key: Uint8Array): Promise<Uint8Array | undefined> {
    const v = this.map.get(Buffer.from(key).toString('hex'));
    return v ? v.slice() : undefined;
  }

  async batch(ops: BatchOp[], _durable = true): Promise<void> {
    for (const op of ops) {
      const k = Buffer.from(op.key).toString('hex');
      if (op.type === 'put') this.map.set(k, op.value.slice());
      else this.map.delete(k);
    }
    this.writes++;
  }

  async *entries(range: { gte: Uint8Array; lt: Uint8Array; reverse?: boolean; limit?: number }) {
    const gte = Buffer.from(range.gte).toString('hex');
    const lt = Buffer.from(range.lt).toString('hex');
    // Hex of equal-prefix keys sorts like the bytes (two digits per byte, lower-case).
    const keys = [...this.map.keys()].filter((k) => k >= gte && k < lt).sort();
    if (range.reverse) keys.reverse();
    const limit = range.limit ?? -1;
    let n = 0;
    for (const k of keys) {
      if (limit >= 0 && n++ >= limit) return;
      const v = this.map.get(k);
      if (v) yield [Uint8Array.from(Buffer.from(k, 'hex')), v.slice()] as [Uint8Array, Uint8Array];
    }
  }

  async close(): Promise<void> {}
}

export enum Bucket {
  meta = 0x01,
  blockByHeight = 0x02,
  heightByHash = 0x03,
  txLocation = 0x04,
  state = 0x05,
  blockResults = 0x06,
  /** chipId ‖ height ‖ tx index ‖ event index → encoded event: a chip's slot and life log. */
  chipEvents = 0x07,
  /** height → the block's own events (begin-block work such as epoch-end lease settlement). */
  blockEvents = 0x08,
  /**
   * address ‖ view ‖ height ‖ tx index → tx hash: the transactions that touch an account (docs/rpc.md,
   * unc_getAccountTransactions). View 0 lists every one, view 1 those that are not pure heartbeats
   * (a miner's account sends one per slot, which would bury everything else).
   */
  accountTxs = 0x09,
  /** epoch → the network figures (NetworkAggregates, JSON) as of the epoch's first block. */
  epochStats = 0x0a,
  /**
   * leaseId ‖ height ‖ tx index ‖ event index → encoded event: a lease's log (opened, topped up,
   * settlements, receipts of its jobs, disputes, closing). Block events use tx index 0xffffffff.
   */
  leaseEvents = 0x0b,
  /**
   * height of an epoch's last block → the Merkle proofs (JSON) of the next epoch's validator set
   * against that block's state root (docs/rpc.md, unc_getValidatorSetProof): the trie of a past
   * block is not kept, so they are taken when the block is written.
   */
  validatorSetProofs = 0x0c,
}

/** The version of the derived indexes (accountTxs, epochStats); older data dirs are migrated at open. */
export const INDEX_VERSION = 1;

export enum AccountTxView {
  all = 0,
  withoutHeartbeats = 1,
}

export interface AccountTxEntry {
  height: bigint;
  index: number;
  hash: Uint8Array;
}

export const ADDRESS_BYTES = 20;

const HEAD_KEY = metaKey('head');
const GENESIS_KEY = metaKey('genesis');
const INDEX_VERSION_KEY = metaKey('indexVersion');

function metaKey(name: string): Uint8Array {
  return bucketKey(Bucket.meta, new TextEncoder().encode(name));
}

export function bucketKey(bucket: Bucket, key: Uint8Array): Uint8Array {
  const out = new Uint8Array(1 + key.length);
  out[0] = bucket;
  out.set(key, 1);
  return out;
}

function heightKey(height: bigint): Uint8Array {
  const k = new Uint8Array(8);
  new DataView(k.buffer).setBigUint64(0, height);
  return k;
}

export interface HeadPointer {
  height: bigint;
  hash: Uint8Array;
}

export interface BlockWrite {
  height: bigint;
  hash: Uint8Array;
  /** The encoded block (header, transactions, commit). */
  block: Uint8Array;
  txHashes: Uint8Array[];
  /** The encoded transaction results. */
  results: Uint8Array;
  stateChanges: { key: Uint8Array; value: Uint8Array | null }[];
  /** The encoded events of the block itself (not of a transaction). */
  blockEvents?: Uint8Array;
  /** Events that concern a chip, indexed for its log. */
  chipEvents?: { chipId: Uint8Array; txIndex: number; eventIndex: number; event: Uint8Array }[];
  /**
   * The previous block again, re-encoded with the commit certificate this block names (the
   * proposer's may hold other precommits than ours), written in the same batch.
   */
  parentBlock?: Uint8Array;
  /** Index entries of the accounts each transaction touches (accountTxIndexEntries). */
  accountTxs?: AccountTxWrite[];
  /** Events that concern a lease, indexed for its log. */
  leaseEvents?: LeaseEventWrite[];
  /** The network figures recorded for an epoch (written at its first block). */
  epochStats?: { epoch: bigint; json: string };
  /** At an epoch's last block: the next set's proofs against its state root (JSON). */
  validatorSetProof?: string;
}

export interface AccountTxWrite {
  address: Uint8Array;
  view: AccountTxView;
  txIndex: number;
  hash: Uint8Array;
}

export interface LeaseEventWrite {
  leaseId: Uint8Array;
  txIndex: number;
  eventIndex: number;
  event: Uint8Array;
}

function leaseEventKey(leaseId: Uint8Array, height: bigint, txIndex: number, eventIndex: number): Uint8Array {
  const key = new Uint8Array(1 + 32 + 8 + 4 + 2);
  key[0] = Bucket.leaseEvents;
  key.set(leaseId, 1);
  const dv = new DataView(key.buffer);
  dv.setBigUint64(33, height);
  dv.setUint32(41, txIndex);
  dv.setUint16(45, eventIndex);
  return key;
}

function leaseEventOps(height: bigint, entries: readonly LeaseEventWrite[]): BatchOp[] {
  return entries.map((e) => ({
    type: 'put' as const,
    key: leaseEventKey(e.leaseId, height, e.txIndex, e.eventIndex),
    value: e.event,
  }));
}

function accountTxKey(address: Uint8Array, view: AccountTxView, height: bigint, txIndex: number): Uint8Array {
  return accountTxKeyAt(address, view, heightKey(height), txIndex);
}

/**
 * `accountTxKey` with the height already encoded (heightKey): a block writes two or more of these
 * per transaction, all at one height, and a DataView and a bigint write for each were a visible
 * share of a large block's commit.
 */
function accountTxKeyAt(
  address: Uint8Array,
  view: AccountTxView,
  height: Uint8Array,
  txIndex: number,
): Uint8Array {
  const key = new Uint8Array(1 + ADDRESS_BYTES + 1 + 8 + 4);
  key[0] = Bucket.accountTxs;
  key.set(address, 1);
  key[1 + ADDRESS_BYTES] = view;
  key.set(height, 2 + ADDRESS_BYTES);
  // u32, big-endian.
  key[10 + ADDRESS_BYTES] = txIndex >>> 24;
  key[11 + ADDRESS_BYTES] = (txIndex >>> 16) & 0xff;
  key[12 + ADDRESS_BYTES] = (txIndex >>> 8) & 0xff;
  key[13 + ADDRESS_BYTES] = txIndex & 0xff;
  return key;
}

function accountTxOps(height: bigint, entries: readonly AccountTxWrite[]): BatchOp[] {
  const at = heightKey(height);
  return entries.map((e) => ({
    type: 'put' as const,
    key: accountTxKeyAt(e.address, e.view, at, e.txIndex),
    value: e.hash,
  }));
}

function epochStatsOp(e: { epoch: bigint; json: string }): BatchOp {
  return {
    type: 'put',
    key: bucketKey(Bucket.epochStats, heightKey(e.epoch)),
    value: new TextEncoder().encode(e.json),
  };
}

function indexVersionOp(version: number): BatchOp {
  const value = new Uint8Array(4);
  new DataView(value.buffer).setUint32(0, version);
  return { type: 'put', key: INDEX_VERSION_KEY, value };
}

export class ChainDb {
  private constructor(private readonly db: KvStore) {}

  /** The LevelDB database at `path` (created if missing). */
  static async open(path: string): Promise<ChainDb> {
    const db = new ClassicLevel<Uint8Array, Uint8Array>(path, { keyEncoding: 'view', valueEncoding: 'view' });
    await db.open();
    return new ChainDb(new LevelKv(db));
  }

  /** The chain database on another store (the simulator's `MemoryKv`). */
  static over(store: KvStore): ChainDb {
    return new ChainDb(store);
  }

  async close(): Promise<void> {
    await this.db.close();
  }

  private get(key: Uint8Array): Promise<Uint8Array | undefined> {
    return this.db.get(key);
  }

  async getHead(): Promise<HeadPointer | null> {
    const raw = await this.get(HEAD_KEY);
    if (!raw) return null;
    return { height: new DataView(raw.buffer, raw.byteOffset).getBigUint64(0), hash: raw.slice(8, 40) };
  }

  async getGenesisJson(): Promise<string | null> {
    const raw = await this.get(GENESIS_KEY);
    return raw ? new TextDecoder().decode(raw) : null;
  }

  async getBlockBytes(height: bigint): Promise<Uint8Array | undefined> {
    return this.get(bucketKey(Bucket.blockByHeight, heightKey(height)));
  }

  async getBlockEventsBytes(height: bigint): Promise<Uint8Array | undefined> {
    return this.get(bucketKey(Bucket.blockEvents, heightKey(height)));
  }

  async getResultsBytes(height: bigint): Promise<Uint8Array | undefined> {
    return this.get(bucketKey(Bucket.blockResults, heightKey(height)));
  }

  async getHeightByHash(hash: Uint8Array): Promise<bigint | null> {
    const raw = await this.get(bucketKey(Bucket.heightByHash, hash));
    return raw ? new DataView(raw.buffer, raw.byteOffset).getBigUint64(0) : null;
  }

  async getTxLocation(hash: Uint8Array): Promise<{ height: bigint; index: number } | null> {
    const raw = await this.get(bucketKey(Bucket.txLocation, hash));
    if (!raw) return null;
    const view = new DataView(raw.buffer, raw.byteOffset);
    return { height: view.getBigUint64(0), index: view.getUint32(8) };
  }

  /**
   * A chip's events, newest first: [height, encoded event]; only those recorded at heights
   * `from`..`to` (inclusive) when given. The keys are chip id then height, so a height range is a
   * key range: a caller that wants the last day reads the last day, not the chip's whole log.
   */
  async chipEvents(
    chipId: Uint8Array,
    limit: number,
    heights: { from?: bigint; to?: bigint } = {},
  ): Promise<{ height: bigint; event: Uint8Array }[]> {
    const prefix = bucketKey(Bucket.chipEvents, chipId);
    const bound = (height: bigint, fill: number) => {
      const key = new Uint8Array(prefix.length + 14).fill(fill);
      key.set(prefix);
      new DataView(key.buffer).setBigUint64(prefix.length, height);
      return key;
    };
    const gte = heights.from === undefined || heights.from <= 0n ? prefix : bound(heights.from, 0);
    const lt = heights.to === undefined ? bound(0xffff_ffff_ffff_ffffn, 0xff) : bound(heights.to + 1n, 0);
    if (heights.to !== undefined && heights.from !== undefined && heights.from > heights.to) return [];
    const out: { height: bigint; event: Uint8Array }[] = [];
    for await (const [key, value] of this.db.entries({ gte, lt, reverse: true, limit })) {
      out.push({ height: new DataView(key.buffer, key.byteOffset).getBigUint64(33), event: value });
    }
    return out;
  }

  /**
   * The transactions that touched `address`, newest first: at most `limit`, strictly before
   * `before` (height, tx index) when given. One bounded range read.
   */
  async accountTxs(
    address: Uint8Array,
    view: AccountTxView,
    limit: number,
    before: { height: bigint; index: number } | null,
  ): Promise<AccountTxEntry[]> {
    const gte = accountTxKey(address, view, 0n, 0);
    const lt = before
      ? accountTxKey(address, view, before.height, before.index)
      : accountTxKey(address, view, 0xffff_ffff_ffff_ffffn, 0xffff_ffff);
    const out: AccountTxEntry[] = [];
    for await (const [key, value] of this.db.entries({ gte, lt, reverse: true, limit })) {
      const dv = new DataView(key.buffer, key.byteOffset);
      out.push({
        height: dv.getBigUint64(2 + ADDRESS_BYTES),
        index: dv.getUint32(10 + ADDRESS_BYTES),
        hash: value,
      });
    }
    return out;
  }

  /** A lease's events, newest first, strictly before `before` when given: [height, position, event]. */
  async leaseEvents(
    leaseId: Uint8Array,
    limit: number,
    before: { height: bigint; txIndex: number; eventIndex: number } | null,
  ): Promise<{ height: bigint; txIndex: number; eventIndex: number; event: Uint8Array }[]> {
    const gte = leaseEventKey(leaseId, 0n, 0, 0);
    const lt = before
      ? leaseEventKey(leaseId, before.height, before.txIndex, before.eventIndex)
      : leaseEventKey(leaseId, 0xffff_ffff_ffff_ffffn, 0xffff_ffff, 0xffff);
    const out: { height: bigint; txIndex: number; eventIndex: number; event: Uint8Array }[] = [];
    for await (const [key, value] of this.db.entries({ gte, lt, reverse: true, limit })) {
      const dv = new DataView(key.buffer, key.byteOffset);
      out.push({
        height: dv.getBigUint64(33),
        txIndex: dv.getUint32(41),
        eventIndex: dv.getUint16(45),
        event: value,
      });
    }
    return out;
  }

  /**
   * The proofs (JSON) of the next epoch's validator set kept at block `height`, or null: not an
   * epoch's last block, or one this node did not write (synced from a snapshot, or before it kept them).
   */
  async getValidatorSetProof(height: bigint): Promise<string | null> {
    const raw = await this.get(bucketKey(Bucket.validatorSetProofs, heightKey(height)));
    return raw ? new TextDecoder().decode(raw) : null;
  }

  /** The network figures recorded for `epoch`, or null if none were (before the node indexed them). */
  async getEpochStats(epoch: bigint): Promise<string | null> {
    const raw = await this.get(bucketKey(Bucket.epochStats, heightKey(epoch)));
    return raw ? new TextDecoder().decode(raw) : null;
  }

  /** Recorded epochs, newest first: at most `limit`, strictly before `before` when given. */
  async epochStatsRange(limit: number, before: bigint | null): Promise<{ epoch: bigint; json: string }[]> {
    const gte = bucketKey(Bucket.epochStats, heightKey(0n));
    const lt = bucketKey(Bucket.epochStats, heightKey(before ?? 0xffff_ffff_ffff_ffffn));
    const out: { epoch: bigint; json: string }[] = [];
    for await (const [key, value] of this.db.entries({ gte, lt, reverse: true, limit })) {
      out.push({
        epoch: new DataView(key.buffer, key.byteOffset).getBigUint64(1),
        json: new TextDecoder().decode(value),
      });
    }
    return out;
  }

  /** The version of the derived indexes this data dir holds (0: written before they existed). */
  async getIndexVersion(): Promise<number> {
    const raw = await this.get(INDEX_VERSION_KEY);
    return raw ? new DataView(raw.buffer, raw.byteOffset).getUint32(0) : 0;
  }

  /**
   * Migration of an older data dir: writes the index entries of already committed blocks (the
   * writes are idempotent, so a crash half-way just repeats them), and with `version` marks the
   * indexes complete.
   */
  async writeIndexes(
    blocks: {
      height: bigint;
      accountTxs: readonly AccountTxWrite[];
      leaseEvents: readonly LeaseEventWrite[];
    }[],
    extra: { epochStats?: { epoch: bigint; json: string }; version?: number } = {},
  ): Promise<void> {
    const ops: BatchOp[] = [];
    for (const b of blocks)
      ops.push(...accountTxOps(b.height, b.accountTxs), ...leaseEventOps(b.height, b.leaseEvents));
    if (extra.epochStats) ops.push(epochStatsOp(extra.epochStats));
    if (extra.version !== undefined) ops.push(indexVersionOp(extra.version));
    if (ops.length > 0) await this.db.batch(ops, true);
  }

  /** Every state entry, for rebuilding the in-memory state and its trie at start-up. */
  async *stateEntries(): AsyncGenerator<[Uint8Array, Uint8Array]> {
    const gte = new Uint8Array([Bucket.state]);
    const lt = new Uint8Array([Bucket.state + 1]);
    for await (const [key, value] of this.db.entries({ gte, lt })) yield [key.slice(1), value];
  }

  /** Writes a block and all it changes atomically, and moves the head to it. */
  async commitBlock(w: BlockWrite, genesisJson?: string): Promise<void> {
    const ops: BatchOp[] = [];
    const hk = heightKey(w.height);
    ops.push({ type: 'put', key: bucketKey(Bucket.blockByHeight, hk), value: w.block });
    ops.push({ type: 'put', key: bucketKey(Bucket.heightByHash, w.hash), value: hk });
    ops.push({ type: 'put', key: bucketKey(Bucket.blockResults, hk), value: w.results });
    if (w.parentBlock && w.height > 0n) {
      ops.push({
        type: 'put',
        key: bucketKey(Bucket.blockByHeight, heightKey(w.height - 1n)),
        value: w.parentBlock,
      });
    }
    w.txHashes.forEach((h, index) => {
      const loc = new Uint8Array(12);
      const view = new DataView(loc.buffer);
      view.setBigUint64(0, w.height);
      view.setUint32(8, index);
      ops.push({ type: 'put', key: bucketKey(Bucket.txLocation, h), value: loc });
    });
    if (w.blockEvents) {
      ops.push({
        type: 'put',
        key: bucketKey(Bucket.blockEvents, heightKey(w.height)),
        value: w.blockEvents,
      });
    }
    for (const e of w.chipEvents ?? []) {
      const key = new Uint8Array(1 + 32 + 8 + 4 + 2);
      key[0] = Bucket.chipEvents;
      key.set(e.chipId, 1);
      const view = new DataView(key.buffer);
      view.setBigUint64(33, w.height);
      view.setUint32(41, e.txIndex);
      view.setUint16(45, e.eventIndex);
      ops.push({ type: 'put', key, value: e.event });
    }
    for (const c of w.stateChanges) {
      const key = bucketKey(Bucket.state, c.key);
      if (c.value === null) ops.push({ type: 'del', key });
      else ops.push({ type: 'put', key, value: c.value });
    }
    ops.push(...accountTxOps(w.height, w.accountTxs ?? []));
    ops.push(...leaseEventOps(w.height, w.leaseEvents ?? []));
    if (w.epochStats) ops.push(epochStatsOp(w.epochStats));
    if (w.validatorSetProof !== undefined) {
      ops.push({
        type: 'put',
        key: bucketKey(Bucket.validatorSetProofs, hk),
        value: new TextEncoder().encode(w.validatorSetProof),
      });
    }
    // A new data dir starts with complete indexes (its genesis batch says so).
    if (genesisJson !== undefined) ops.push(indexVersionOp(INDEX_VERSION));
    const head = new Uint8Array(40);
    new DataView(head.buffer).setBigUint64(0, w.height);
    head.set(w.hash, 8);
    ops.push({ type: 'put', key: HEAD_KEY, value: head });
    if (genesisJson !== undefined) {
      ops.push({ type: 'put', key: GENESIS_KEY, value: new TextEncoder().encode(genesisJson) });
    }
    // One fsync per block: blocks are reported committed only after this returns, so a power
    // loss must not take back what clients were told.
    await this.db.batch(ops, true);
  }
}
