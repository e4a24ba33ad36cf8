/**
 * The node's index methods (docs/rpc.md, "Indexes"): an account's transactions, chips by cursor,
 * and network figures over every chip, now and at each epoch start. Every list is one bounded
 * page with a cursor to the next, so no request reads more than its page.
 */
import {
  type Block,
  type Chip,
  chipsOfOwner,
  decode,
  decodeAddress,
  encodeAddress,
  envelopeFromBytes,
  fromHex,
  getChip,
  StateSpace,
  toHex,
  txEventCodec,
} from '@unc/core';
import {
  type AccountTransactionsPage,
  type AccountTxJson,
  type ChipJson,
  type ChipsPage,
  eventToJson,
  type LeaseEventsPage,
  type NetworkHistoryPage,
  type NetworkStatsJson,
  txToJson,
} from '@unc/sdk';
import { networkStatsAt, stateAfter } from './indexes.js';
import type { RpcContext } from './rpc/context.js';
import { type RpcCost, RpcError, type RpcServerModules } from './rpc/server.js';
import { AccountTxView } from './storage/db.js';

export const ACCOUNT_TXS_PAGE = { default: 25, max: 100 };
export const CHIPS_PAGE = { default: 100, max: 200 };
export const HISTORY_PAGE = { default: 100, max: 1000 };
export const LEASE_EVENTS_PAGE = { default: 50, max: 500 };

/** Parameters by name, given as an object, as positional values, or as one object in an array. */
function named(params: unknown, names: string[]): Record<string, unknown> {
  const isObject = (v: unknown): v is Record<string, unknown> =>
    v !== null && typeof v === 'object' && !Array.isArray(v);
  if (Array.isArray(params)) {
    if (params.length === 1 && isObject(params[0])) return params[0];
    return Object.fromEntries(names.map((n, i) => [n, params[i]]));
  }
  return isObject(params) ? params : {};
}

function limitParam(v: unknown, page: { default: number; max: number }): number {
  if (v === undefined || v === null) return page.default;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > page.max)
    throw new RpcError(-32602, `parameter "limit" must be an integer 1…${page.max}`);
  return v;
}

function addressParam(v: unknown, name: string): Uint8Array {
  if (typeof v !== 'string') throw new RpcError(-32602, `parameter "${name}" must be an address string`);
  try {
    return decodeAddress(v);
  } catch (err) {
    throw new RpcError(-32602, `parameter "${name}": ${(err as Error).message}`);
  }
}

/** An account cursor is "height:index" of the last transaction of the previous page. */
function txCursorParam(v: unknown): { height: bigint; index: number } | null {
  if (v === undefined || v === null) return null;
  const m = typeof v === 'string' ? /^(\d{1,19}):(\d{1,10})$/.exec(v) : null;
  const height = m ? BigInt(m[1]!) : -1n;
  const index = m ? Number(m[2]) : -1;
  if (!m || height >= 2n ** 64n || index > 0xffff_ffff)
    throw new RpcError(
      -32602,
      'parameter "cursor" must be the nextCursor of a previous page ("height:index")',
    );
  return { height, index };
}

/** A lease-log cursor is "height:txIndex:eventIndex" of the last event of the previous page. */
function leaseCursorParam(v: unknown): { height: bigint; txIndex: number; eventIndex: number } | null {
  if (v === undefined || v === null) return null;
  const m = typeof v === 'string' ? /^(\d{1,19}):(\d{1,10}):(\d{1,5})$/.exec(v) : null;
  if (!m || BigInt(m[1]!) >= 2n ** 64n || Number(m[2]) > 0xffff_ffff || Number(m[3]) > 0xffff)
    throw new RpcError(-32602, 'parameter "cursor" must be the nextCursor of a previous page');
  return { height: BigInt(m[1]!), txIndex: Number(m[2]), eventIndex: Number(m[3]) };
}

/** A chip cursor is the id (64 hex digits) of the last chip of the previous page. */
function chipCursorParam(v: unknown): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string' || !/^[0-9a-f]{64}$/.test(v))
    throw new RpcError(-32602, 'parameter "cursor" must be the nextCursor of a previous page (a chip id)');
  return v;
}

function epochCursorParam(v: unknown): bigint | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string' || !/^\d{1,19}$/.test(v) || BigInt(v) >= 2n ** 64n)
    throw new RpcError(-32602, 'parameter "cursor" must be the nextCursor of a previous page (an epoch)');
  return BigInt(v);
}

/** The first index in sorted `ids` greater than `after` (binary search). */
function firstAfter(ids: readonly string[], after: string): number {
  let lo = 0;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (ids[mid]! <= after) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * `chipJson`: api.ts's rendering of a chip (its slots and liveness as of the head), shared so that a
 * chip reads the same from unc_getChip and from a page.
 */
export function indexMethods(
  node: Pick<RpcContext, 'chain'>,
  chipJson: (chip: Chip) => ChipJson,
): RpcServerModules['methods'] {
  const { chain } = node;

  /** The head's figures, computed once per block: one pass over every chip. */
  let current: { hash: string; stats: NetworkStatsJson } | null = null;
  function currentStats(): NetworkStatsJson {
    const hash = toHex(chain.head.hash);
    if (current?.hash !== hash)
      current = { hash, stats: networkStatsAt(stateAfter(chain.state, []), chain.height) };
    return current.stats;
  }

  /** Sorted chip ids (hex), recomputed when the head moves. */
  let sortedChips: { hash: string; ids: string[] } | null = null;
  function allChipIds(): string[] {
    const hash = toHex(chain.head.hash);
    if (sortedChips?.hash !== hash) {
      // keysIn is in key order, and every chip key is the chip-space byte then the id.
      const ids = chain.state.keysIn(StateSpace.chip).map((k) => toHex(k.subarray(1)));
      sortedChips = { hash, ids };
    }
    return sortedChips.ids;
  }

  return {
    /** The transactions that touched an account (sent, received, or named in its events), newest first. */
    unc_getAccountTransactions: async (params): Promise<AccountTransactionsPage> => {
      const p = named(params, ['address', 'cursor', 'limit', 'heartbeats']);
      const address = addressParam(p.address, 'address');
      const before = txCursorParam(p.cursor);
      const limit = limitParam(p.limit, ACCOUNT_TXS_PAGE);
      if (p.heartbeats !== undefined && p.heartbeats !== null && typeof p.heartbeats !== 'boolean')
        throw new RpcError(-32602, 'parameter "heartbeats" must be a boolean');
      const view = p.heartbeats === false ? AccountTxView.withoutHeartbeats : AccountTxView.all;
      // One more than asked says whether there is a next page without a second read.
      const rows = await chain.db.accountTxs(address, view, limit + 1, before);
      const page = rows.slice(0, limit);
      const blocks = new Map<bigint, Block | null>();
      const transactions: AccountTxJson[] = [];
      for (const row of page) {
        if (!blocks.has(row.height)) blocks.set(row.height, await chain.blockAt(row.height));
        const block = blocks.get(row.height);
        const raw = block?.txs[row.index];
        if (!block || !raw)
          throw new Error(`account index names tx ${row.index} of block ${row.height}, which is missing`);
        const env = envelopeFromBytes(raw);
        transactions.push({
          hash: toHex(row.hash),
          height: Number(row.height),
          index: row.index,
          time: new Date(Number(block.header.time)).toISOString(),
          timeMs: Number(block.header.time),
          tx: txToJson(env),
        });
      }
      const last = page[page.length - 1];
      return {
        address: encodeAddress(address),
        transactions,
        nextCursor: rows.length > limit && last ? `${last.height}:${last.index}` : null,
      };
    },

    /** Every chip (or an owner's), by id, one page at a time: unc_getChips stops at 1,000. */
    unc_listChips: (params): ChipsPage => {
      const p = named(params, ['owner', 'cursor', 'limit']);
      const owner = p.owner === undefined || p.owner === null ? null : addressParam(p.owner, 'owner');
      const after = chipCursorParam(p.cursor);
      const limit = limitParam(p.limit, CHIPS_PAGE);
      const ids = owner ? chipsOfOwner(chain.state, owner).map(toHex).sort() : allChipIds();
      const start = after === null ? 0 : firstAfter(ids, after);
      const chips: ChipJson[] = [];
      for (const id of ids.slice(start, start + limit)) {
        const chip = getChip(chain.state, fromHex(id, 32));
        if (chip) chips.push(chipJson(chip));
      }
      const more = start + limit < ids.length;
      return { chips, total: ids.length, nextCursor: more ? ids[start + limit - 1]! : null };
    },

    /** A lease's log, newest first: the receipts of its jobs, its settlements, disputes, closing. */
    unc_getLeaseEvents: async (params): Promise<LeaseEventsPage> => {
      const p = named(params, ['leaseId', 'cursor', 'limit']);
      if (typeof p.leaseId !== 'string' || !/^[0-9a-f]{64}$/.test(p.leaseId))
        throw new RpcError(-32602, 'parameter "leaseId" must be a lease id (64 lower-case hex digits)');
      const leaseId = fromHex(p.leaseId, 32);
      const before = leaseCursorParam(p.cursor);
      const limit = limitParam(p.limit, LEASE_EVENTS_PAGE);
      const rows = await chain.db.leaseEvents(leaseId, limit + 1, before);
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return {
        leaseId: p.leaseId,
        events: page.map((r) => ({
          height: Number(r.height),
          txIndex: r.txIndex === 0xffff_ffff ? null : r.txIndex,
          event: eventToJson(decode(txEventCodec, r.event)),
        })),
        nextCursor: rows.length > limit && last ? `${last.height}:${last.txIndex}:${last.eventIndex}` : null,
      };
    },

    /** The network figures as of the head, over every chip. */
    unc_getNetworkStats: (): NetworkStatsJson => currentStats(),

    /** The network figures recorded at each epoch's first block, newest first. */
    unc_getNetworkHistory: async (params): Promise<NetworkHistoryPage> => {
      const p = named(params, ['cursor', 'limit']);
      const before = epochCursorParam(p.cursor);
      const limit = limitParam(p.limit, HISTORY_PAGE);
      const rows = await chain.db.epochStatsRange(limit + 1, before);
      const epochs = rows.slice(0, limit).map((r) => JSON.parse(r.json) as NetworkStatsJson);
      const last = rows[limit - 1];
      return { epochs, nextCursor: rows.length > limit && last ? last.epoch.toString() : null };
    },
  };
}

/** Work units (rpc-costs.ts): a page of transactions reads up to one block per entry. */
export const INDEX_COSTS: Record<string, RpcCost> = {
  unc_getAccountTransactions: (params) =>
    pageCost(named(params, ['address', 'cursor', 'limit']).limit, ACCOUNT_TXS_PAGE, 5),
  unc_listChips: (params) => pageCost(named(params, ['owner', 'cursor', 'limit']).limit, CHIPS_PAGE, 2),
  /** A pass over every chip, once per block (cached): priced as the list it replaces. */
  unc_getNetworkStats: () => 100,
  unc_getLeaseEvents: (params) =>
    pageCost(named(params, ['leaseId', 'cursor', 'limit']).limit, LEASE_EVENTS_PAGE, 10),
  unc_getNetworkHistory: (params) => pageCost(named(params, ['cursor', 'limit']).limit, HISTORY_PAGE, 100),
};

function pageCost(limit: unknown, page: { default: number; max: number }, perUnit: number): number {
  const n =
    typeof limit === 'number' && Number.isFinite(limit)
      ? Math.min(Math.max(limit, 1), page.max)
      : page.default;
  return Math.max(1, n / perUnit);
}
