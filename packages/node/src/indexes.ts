/**
 * The node's derived indexes, written with each block in its batch (storage/db.ts): which accounts
 * a transaction touches, and the network figures at every epoch start. Derived from the block and
 * the state only, so a data dir written before they existed is migrated by replaying its blocks
 * (`migrateIndexes`).
 */
import {
  blockCodec,
  blockEventsCodec,
  blockResultsCodec,
  type Chip,
  chipCodec,
  decode,
  encode,
  envelopeFromBytes,
  epochOf,
  epochStart,
  equalBytes,
  getPociParams,
  keyId,
  type NetworkAggregates,
  networkAggregates,
  type StateReader,
  StateSpace,
  type StateWrite,
  type TxEnvelope,
  type TxEvent,
  type TxResult,
  txEventCodec,
} from '@unc/core';
import type { NetworkStatsJson } from '@unc/sdk';
import type { Logger } from './log.js';
import {
  AccountTxView,
  type AccountTxWrite,
  ADDRESS_BYTES,
  type ChainDb,
  INDEX_VERSION,
  type LeaseEventWrite,
} from './storage/db.js';

/** Event fields that name an account (every other byte field is a chip, lease, offer or hash). */
const ACCOUNT_FIELDS = ['from', 'to', 'payer', 'account', 'owner', 'provider', 'renter'] as const;

const SCAN_MAX = 16;

/**
 * The accounts a transaction touches: its sender, the recipients its actions name, and every
 * account its events name (a transfer's recipient, a chip's owner, a lease's provider…), each
 * once, in the order first named.
 */
export function accountsTouched(env: TxEnvelope, result: TxResult | undefined): Uint8Array[] {
  // A handful of addresses per transaction (a transfer: sender and recipient): a linear scan
  // compares them faster than a Map of latin1 keys, which built a string per address and a Map
  // per transaction of every block's commit (BENCHMARKS.md, branch `mainthread`).
  // Past SCAN_MAX addresses (a transaction of many actions) the keys make it linear again.
  const seen: Uint8Array[] = [];
  let keys: Set<string> | null = null;
  const add = (a: unknown) => {
    if (!(a instanceof Uint8Array) || a.length !== ADDRESS_BYTES) return;
    if (keys) {
      const k = keyId(a);
      if (keys.has(k)) return;
      keys.add(k);
    } else {
      for (const s of seen) if (equalBytes(s, a)) return;
      if (seen.length === SCAN_MAX) keys = new Set([...seen, a].map((x) => keyId(x)));
    }
    seen.push(a);
  };
  add(env.sender);
  for (const action of env.stx.tx.actions) {
    if (action.type === 'transfer') add(action.to);
    else if (action.type === 'transferChip') add(action.newOwner);
  }
  for (const event of result?.events ?? []) {
    const fields = event as unknown as Record<string, unknown>;
    for (const name of ACCOUNT_FIELDS) add(fields[name]);
  }
  return seen;
}

/** A transaction made only of heartbeats (a miner sends one per challenge slot). */
export function isHeartbeatOnly(env: TxEnvelope): boolean {
  const { actions } = env.stx.tx;
  return actions.length > 0 && actions.every((a) => a.type === 'heartbeat');
}

/** The account index entries of a block's transactions. */
export function accountTxEntries(
  envelopes: readonly TxEnvelope[],
  results: readonly TxResult[],
): AccountTxWrite[] {
  const out: AccountTxWrite[] = [];
  envelopes.forEach((env, txIndex) => {
    const heartbeat = isHeartbeatOnly(env);
    for (const address of accountsTouched(env, results[txIndex])) {
      out.push({ address, view: AccountTxView.all, txIndex, hash: env.hash });
      if (!heartbeat) out.push({ address, view: AccountTxView.withoutHeartbeats, txIndex, hash: env.hash });
    }
  });
  return out;
}

/** Where a block's own events (not a transaction's) sit in the lease index (as in the chip index). */
const BLOCK_EVENTS_TX_INDEX = 0xffff_ffff;

/** The lease index entries of a block: every event, of a transaction or of the block, that names a lease. */
export function leaseEventEntries(
  results: readonly TxResult[],
  blockEvents: readonly TxEvent[],
): LeaseEventWrite[] {
  const out: LeaseEventWrite[] = [];
  const add = (event: TxEvent, txIndex: number, eventIndex: number) => {
    if ('leaseId' in event && event.leaseId instanceof Uint8Array)
      out.push({ leaseId: event.leaseId, txIndex, eventIndex, event: encode(txEventCodec, event) });
  };
  results.forEach((r, txIndex) => {
    r.events.forEach((e, i) => add(e, txIndex, i));
  });
  blockEvents.forEach((e, i) => add(e, BLOCK_EVENTS_TX_INDEX, i));
  return out;
}

/** The state after a block's writes, read through them without applying them. */
export function stateAfter(
  base: StateReader & { keysIn(space: number): readonly Uint8Array[] },
  changes: readonly StateWrite[],
): StateReader & { chips(): Chip[] } {
  const written = new Map<string, StateWrite>();
  for (const c of changes) written.set(keyId(c.key), c);
  const get = (key: Uint8Array) => {
    const w = written.get(keyId(key));
    return w ? (w.value ?? undefined) : base.get(key);
  };
  return {
    get,
    chips() {
      const keys = new Map<string, Uint8Array>();
      for (const k of base.keysIn(StateSpace.chip)) keys.set(keyId(k), k);
      for (const c of changes) if (c.key[0] === StateSpace.chip) keys.set(keyId(c.key), c.key);
      const out: Chip[] = [];
      for (const key of keys.values()) {
        const raw = get(key);
        if (raw) out.push(decode(chipCodec, raw));
      }
      return out;
    },
  };
}

export function networkStatsJson(epoch: bigint, a: NetworkAggregates): NetworkStatsJson {
  return {
    epoch: Number(epoch),
    height: Number(a.height),
    chips: a.chips,
    activeChips: a.activeChips,
    activePower: a.activePower.toString(),
    onlineChips: a.onlineChips,
    onlinePower: a.onlinePower.toString(),
    ratedPower: a.ratedPower.toString(),
  };
}

/** The network figures of `state` as of `height`, over every chip it holds. */
export function networkStatsAt(state: StateReader & { chips(): Chip[] }, height: bigint): NetworkStatsJson {
  const p = getPociParams(state);
  return networkStatsJson(epochOf(height, p), networkAggregates(state, state.chips(), height, p));
}

/** The epoch whose first block is `height`, if it is one (the genesis block starts none). */
export function epochStartingAt(state: StateReader, height: bigint): bigint | null {
  if (height === 0n) return null;
  const p = getPociParams(state);
  const epoch = epochOf(height, p);
  return epochStart(epoch, p) === height ? epoch : null;
}

/**
 * Index entries (one write each) per batch while migrating. Counted by blocks (500 a batch), a
 * stretch of full blocks put millions of writes in one LevelDB batch, all of them held in memory
 * until it was written.
 */
export const MIGRATION_OPS_PER_BATCH = 50_000;

/**
 * Brings an older data dir's indexes up to INDEX_VERSION: the account index from its blocks and
 * their stored results; the epoch figures cannot be rebuilt for past epochs (the state of then is
 * gone), so the current epoch's are recorded as of the head and later epochs as they start.
 *
 * Written in batches of at most `opsPerBatch` entries, a block's entries split over two batches
 * where it does not fit: each batch is atomic, every entry's key is derived from the block alone
 * (writing it again writes the same bytes), and the version is written last, so a migration cut
 * anywhere simply runs again from block 1 at the next start. Nothing reads the indexes meanwhile:
 * this runs in Chain.open, before the chain serves anything.
 */
export async function migrateIndexes(
  db: ChainDb,
  head: bigint,
  state: StateReader & { chips(): Chip[] },
  logger: Logger,
  opsPerBatch = MIGRATION_OPS_PER_BATCH,
): Promise<void> {
  if (!Number.isSafeInteger(opsPerBatch) || opsPerBatch < 1)
    throw new Error(`opsPerBatch must be a whole number from 1, not ${opsPerBatch}`);
  const version = await db.getIndexVersion();
  if (version >= INDEX_VERSION) return;
  logger.info('building the account and lease indexes of an older data dir', { from: version, blocks: head });
  let batch: { height: bigint; accountTxs: AccountTxWrite[]; leaseEvents: LeaseEventWrite[] }[] = [];
  let ops = 0;
  for (let h = 1n; h <= head; h++) {
    const blockRaw = await db.getBlockBytes(h);
    const resultsRaw = await db.getResultsBytes(h);
    if (!blockRaw || !resultsRaw)
      throw new Error(`block ${h} or its results are missing: the data dir is corrupt`);
    const { txs } = decode(blockCodec, blockRaw);
    const results = decode(blockResultsCodec, resultsRaw);
    const blockEventsRaw = await db.getBlockEventsBytes(h);
    const blockEvents = blockEventsRaw ? decode(blockEventsCodec, blockEventsRaw) : [];
    let accountTxs = accountTxEntries(
      txs.map((raw) => envelopeFromBytes(raw)),
      results,
    );
    let leaseEvents = leaseEventEntries(results, blockEvents);
    while (accountTxs.length + leaseEvents.length > 0) {
      const room = opsPerBatch - ops;
      const a = accountTxs.slice(0, room);
      const l = leaseEvents.slice(0, room - a.length);
      batch.push({ height: h, accountTxs: a, leaseEvents: l });
      ops += a.length + l.length;
      accountTxs = accountTxs.slice(a.length);
      leaseEvents = leaseEvents.slice(l.length);
      if (ops >= opsPerBatch) {
        await db.writeIndexes(batch);
        batch = [];
        ops = 0;
      }
    }
  }
  if (batch.length > 0) await db.writeIndexes(batch);
  const stats = networkStatsAt(state, head);
  const epoch = BigInt(stats.epoch);
  const known = await db.getEpochStats(epoch);
  await db.writeIndexes([], {
    ...(known ? {} : { epochStats: { epoch, json: JSON.stringify(stats) } }),
    version: INDEX_VERSION,
  });
  logger.info('account index built', { blocks: head });
}
