/**
 * The JSON shapes of the node's paginated index methods (docs/rpc.md, "Indexes"). Every list is
 * newest first (chips: by id) and comes with `nextCursor`: pass it back for the next page; null
 * means there is none.
 */
import type { ChipJson, TxEventJson, TxJson } from './views.js';

/** The network figures at one height, summed over every chip on chain. Power: TFLOPS × 1000. */
export interface NetworkStatsJson {
  epoch: number;
  /** The block the figures are for (an epoch's first block, or the head). */
  height: number;
  chips: number;
  activeChips: number;
  activePower: string;
  onlineChips: number;
  onlinePower: string;
  ratedPower: string;
}

export interface AccountTxJson {
  hash: string;
  height: number;
  index: number;
  time: string;
  timeMs: number;
  tx: TxJson;
}

export interface AccountTransactionsPage {
  address: string;
  transactions: AccountTxJson[];
  nextCursor: string | null;
}

export interface ChipsPage {
  chips: ChipJson[];
  /** Chips matching the filter, over all pages. */
  total: number;
  nextCursor: string | null;
}

export interface NetworkHistoryPage {
  epochs: NetworkStatsJson[];
  nextCursor: string | null;
}

export interface LeaseEventJson {
  height: number;
  /** The transaction's place in its block, or null for the block's own events (lease settlements at an epoch start or a lease's end). */
  txIndex: number | null;
  event: TxEventJson;
}

/** A lease's log: opened, topped up, settlements, the receipts of its jobs, disputes, closing. */
export interface LeaseEventsPage {
  leaseId: string;
  events: LeaseEventJson[];
  nextCursor: string | null;
}
