/**
 * The node's index methods (docs/rpc.md, "Indexes"): an account's transactions, chips by cursor,
 * and network figures over every chip, now and at each epoch start. Every list is one bounded
 * page with a cursor to the next, so no request reads more than its page. Their parameters are in
 * the RPC schema (@unc/sdk/schema: limits, cursors, addresses), checked before a handler runs.
 */
import {
  type Block,
  type Chip,
  chipsOfOwner,
  decode,
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
import { INDEX_PAGES } from '@unc/sdk/schema';
import { networkStatsAt, stateAfter } from './indexes.js';
import type { RpcContext } from './rpc/context.js';
import type { RpcCost } from './rpc/server.js';
import type { RpcImplementation } from './rpc/typed.js';
import { AccountTxView } from './storage/db.js';

export const ACCOUNT_TXS_PAGE = INDEX_PAGES.accountTransactions;
export const CHIPS_PAGE = INDEX_PAGES.chips;
export const HISTORY_PAGE = INDEX_PAGES.networkHistory;
export const LEASE_EVENTS_PAGE = INDEX_PAGES.leaseEvents;

export type IndexMethodName =
  | 'unc_getAccountTransactions'
  | 'unc_listChips'
  | 'unc_getLeaseEvents'
  | 'unc_getNetworkStats'
  | 'unc_getNetworkHistory';

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
): Pick<RpcImplementation, IndexMethodName> {
  const { chain } = node;

  /** The head's figures, computed once per block: one pass over every chip. */
  let current: { hash: string; stats: NetworkStatsJson } | null = null;
  function currentStats(): NetworkStatsJson {
    const hash = toHex(chain.head.hash);
    if (current?.hash !== hash)
      current = { hash, stats: networkStatsAt(stateAfter(chain.state, []), chain.height) };
    return current.stats;
  }

  /**
   * Sorted chip ids (hex), recomputed when the chip keys change: LiveState.keysIn answers the same
   * array until a chip registers or is removed, where the head moves every block (200,000 ids
   * rendered again per block for the first unc_listChips of each).
   */
  let sortedChips: { keys: readonly Uint8Array[]; ids: string[] } | null = null;
  function allChipIds(): string[] {
    const keys = chain.state.keysIn(StateSpace.chip);
    // keysIn is in key order, and every chip key is the chip-space byte then the id.
    if (sortedChips?.keys !== keys) sortedChips = { keys, ids: keys.map((k) => toHex(k.subarray(1))) };
    return sortedChips.ids;
  }

  return {
    /** The transactions that touched an account (sent, received, or named in its events), newest first. */
    unc_getAccountTransactions: async ({
      address,
      cursor,
      limit: asked,
      heartbeats,
    }): Promise<AccountTransactionsPage> => {
      const limit = asked ?? ACCOUNT_TXS_PAGE.default;
      const before = cursor ?? null;
      const view = heartbeats === false ? AccountTxView.withoutHeartbeats : AccountTxView.all;
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
    unc_listChips: ({ owner, cursor, limit: asked }): ChipsPage => {
      const limit = asked ?? CHIPS_PAGE.default;
      const after = cursor ?? null;
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
    unc_getLeaseEvents: async ({ leaseId, cursor, limit: asked }): Promise<LeaseEventsPage> => {
      const limit = asked ?? LEASE_EVENTS_PAGE.default;
      const before = cursor ?? null;
      const rows = await chain.db.leaseEvents(leaseId, limit + 1, before);
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return {
        leaseId: toHex(leaseId),
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
    unc_getNetworkHistory: async ({ cursor, limit: asked }): Promise<NetworkHistoryPage> => {
      const limit = asked ?? HISTORY_PAGE.default;
      const before = cursor ?? null;
      const rows = await chain.db.epochStatsRange(limit + 1, before);
      const epochs = rows.slice(0, limit).map((r) => JSON.parse(r.json) as NetworkStatsJson);
      const last = rows[limit - 1];
      return { epochs, nextCursor: rows.length > limit && last ? last.epoch.toString() : null };
    },
  };
}

/**
 * Work units (rpc-costs.ts): a page of transactions reads up to one block per entry. Params are
 * not yet checked when a cost is measured: `limit` is read in any of the schema's spellings, and
 * anything but a number costs the default page (the schema then refuses it).
 */
export function indexCosts(
  limitOf: (params: unknown, index: number) => unknown,
): Record<IndexMethodName, RpcCost> {
  return {
    /**
     * A page of transactions reads and decodes a whole block (up to 8 MiB) per entry when an
     * account appears in one transaction of each block (any miner's heartbeats): one unit per
     * entry, as unc_getBlocks charges one per block, not one per 5 (which let 100 block reads cost 20).
     */
    unc_getAccountTransactions: (p) => pageCost(limitOf(p, 2), ACCOUNT_TXS_PAGE, 1),
    unc_listChips: (p) => pageCost(limitOf(p, 2), CHIPS_PAGE, 2),
    /** A pass over every chip, once per block (cached): priced as the list it replaces. */
    unc_getNetworkStats: () => 100,
    unc_getLeaseEvents: (p) => pageCost(limitOf(p, 2), LEASE_EVENTS_PAGE, 10),
    unc_getNetworkHistory: (p) => pageCost(limitOf(p, 1), HISTORY_PAGE, 100),
  };
}

function pageCost(limit: unknown, page: { default: number; max: number }, perUnit: number): number {
  const n =
    typeof limit === 'number' && Number.isFinite(limit)
      ? Math.min(Math.max(limit, 1), page.max)
      : page.default;
  return Math.max(1, n / perUnit);
}
