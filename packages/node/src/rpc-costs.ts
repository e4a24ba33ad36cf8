/**
 * Work units of the RPC methods that do more than one unit of work (docs/rpc.md, "Limits"). A unit
 * is roughly one block read or one listed item's worth of state reads; every other method costs 1.
 * The server checks a request's cost, and a batch's total, against `maxWork` before anything runs,
 * and charges it to the caller's rate limit. Params are untrusted here: anything malformed costs 1
 * and the method itself rejects it.
 */
import {
  costlyActionCount,
  decode,
  decodeAddress,
  fromHex,
  getOffer,
  leasesByProvider,
  listCount,
  offersByProvider,
  openOffers,
  ownerChipCount,
  type StateReader,
  signedTransactionCodec,
} from '@unc/core';
import { openRpcDocument } from '@unc/sdk/openrpc';
import { indexCosts } from './index-api.js';
import type { RpcCost } from './rpc/server.js';

/** market-api.ts lists (and unc_getProviderRecord reads) at most this many offers, or leases. */
const MAX_LISTED_OFFERS = 1000;

/** A parameter by position or name, in each of the spellings the schema's parser accepts. */
function arg(params: unknown, index: number, name: string): unknown {
  if (Array.isArray(params)) {
    // One object in an array is the named form (@unc/sdk/schema parseParams): it must cost the same.
    const only = params.length === 1 ? params[0] : undefined;
    if (only !== null && typeof only === 'object' && !Array.isArray(only))
      return (only as Record<string, unknown>)[name];
    return params[index];
  }
  if (params && typeof params === 'object') return (params as Record<string, unknown>)[name];
  return undefined;
}

function count(value: unknown, absent: number): number {
  if (value === undefined || value === null) return absent;
  return typeof value === 'number' && Number.isFinite(value) ? value : 1;
}

export const RPC_COSTS: Record<string, RpcCost> = {
  ...indexCosts((p, index) => arg(p, index, 'limit')),
  /** One unit per block summary (count defaults to 20, at most 100). */
  unc_getBlocks: (p) => count(arg(p, 1, 'count'), 20),
  /**
   * Admission verifies a signature per transaction (~5,500/s on one core): one unit per 10, so the
   * 10,000 the method takes fill maxWork, and the default rate lets one address submit ~5,000/s.
   * Transactions larger than a plain one (chip evidence) cost more: `evidenceUnits`.
   */
  unc_sendTransactions: (p) => {
    const txs = arg(p, 0, 'txs');
    return Array.isArray(txs)
      ? txs.length / 10 + txs.reduce((units: number, t) => units + evidenceUnits(t), 0)
      : 1;
  },
  unc_sendTransaction: (p) => 1 + evidenceUnits(arg(p, 0, 'tx')),
  /** One unit per 10 log entries (limit defaults to 100). */
  unc_getChipEvents: (p) => count(arg(p, 1, 'limit'), 100) / 10,
  /** Lists of up to 1,000 items, each with its own state reads (a chip's slots, an offer's uptime). */
  unc_getChips: () => 100,
  unc_getOffers: () => 100,
  unc_getOffer: () => 1,
  /**
   * With `proof`: a trie walk per proven key, the record's and what its answer reads (a chip's
   * status: the PoCI parameters, an allow-list entry, up to 8 revoked-serial keys; a lease's
   * offer), each ~1 KB of proof: about a one-unit answer's weight per two keys.
   */
  // With proof: its status's records, and its liveness's (the challenge lists of up to
  // CHALLENGE_HISTORY_EPOCHS epochs for a chip long silent), each a Merkle path.
  unc_getChip: (p) => (arg(p, 1, 'proof') === true ? 10 : 1),
  unc_getLease: (p) => (arg(p, 1, 'proof') === true ? 2 : 1),
  unc_getLeases: () => 100,
  /**
   * Up to 1,000 log entries read per chip, as unc_getChipEvents with limit 1,000. `rpcCosts`
   * charges an owner's form per chip (read from the owner's index).
   */
  unc_getRewards: () => 100,
  /**
   * The OpenRPC document is built once, but every answer walks and serialises all of it (~50 KB):
   * about 3 ms of CPU where the other one-unit calls take 0.05 to 0.3 ms, so at one unit a client
   * within its rate limit could keep a core busy. One unit per 2 KiB of the document, about what a
   * one-unit answer (an account, a block summary) weighs.
   */
  'rpc.discover': () => discoverCost(),
};

/** Bytes of a transaction that its signature check alone pays for (a transfer is ~190). */
const PLAIN_TX_BYTES = 512;
/** Bytes past those per extra unit. */
const EVIDENCE_BYTES_PER_UNIT = 2048;

/** Bytes below which a transaction is not decoded for its costly checks (a plain transfer is ~190). */
const UNDECODED_TX_BYTES = 256;

/**
 * Admission checks chip evidence too (mempool.ts: a registration's certificate chain and quote,
 * 1.5-4 ms of CPU where a signature is ~0.2 ms), and a submission refused for its evidence pays
 * no fee: so the bytes past a plain transaction's, where that evidence is, cost a unit per 2 KiB
 * (a TPM registration, ~3 KiB, about one unit: ten signatures' worth), and each costly chip check
 * (a registration, a transfer's consent: core's costlyActionCount) a unit at least. The check costs
 * what a chain and a quote cost (two signature checks at least), not what its bytes weigh: priced
 * by bytes alone, 64 made-up registrations of ~600 bytes in one transaction cost ~20 units for 64
 * checks, every one made on the verify workers (audit audchip C5). Transfers cost what they did:
 * a transaction smaller than UNDECODED_TX_BYTES, or one that does not decode, is priced by its
 * length alone (the method refuses what does not decode).
 */
function evidenceUnits(tx: unknown): number {
  if (typeof tx !== 'string') return 0;
  const bytes = Math.floor(tx.length / 2);
  const byBytes = Math.max(0, bytes - PLAIN_TX_BYTES) / EVIDENCE_BYTES_PER_UNIT;
  return Math.max(byBytes, bytes < UNDECODED_TX_BYTES ? 0 : costlyChecks(tx));
}

/** The costly chip checks of a hex-encoded signed transaction; 0 when it does not decode. */
function costlyChecks(hex: string): number {
  try {
    return costlyActionCount(decode(signedTransactionCodec, fromHex(hex)).tx);
  } catch {
    return 0;
  }
}

let discoverUnits: number | null = null;
function discoverCost(): number {
  discoverUnits ??= Math.ceil(JSON.stringify(openRpcDocument('0.0.0')).length / 2048);
  return discoverUnits;
}

/** The chip count of the owner an address parameter names; null when it names none. */
function chipsOfNamedOwner(state: StateReader, address: unknown): number | null {
  if (typeof address !== 'string' || /^(0x)?[0-9a-fA-F]{64}$/.test(address)) return null;
  let owner: Uint8Array;
  try {
    owner = decodeAddress(address);
  } catch {
    return null;
  }
  // The index's head: one read, before the request is admitted (reading every member here would be
  // the very work the price is meant to bound, done for requests that are then refused).
  return ownerChipCount(state, owner);
}

/** How many chips the offer an id parameter names holds; null when it names none. */
function chipsOfOffer(state: StateReader, id: unknown): number | null {
  if (typeof id !== 'string') return null;
  let offerId: Uint8Array;
  try {
    offerId = fromHex(id, 32);
  } catch {
    return null;
  }
  return getOffer(state, offerId)?.chipIds.length ?? null;
}

/**
 * RPC_COSTS, with the measures that depend on the chain: an owner's rewards are 100 units a chip,
 * and an owner's page of unc_listChips reads (and sorts) every chip id the owner has, so it costs
 * at least one unit per 100 of them, as unc_getChips is priced.
 */
export function rpcCosts(state: () => StateReader): Record<string, RpcCost> {
  return {
    ...RPC_COSTS,
    unc_getRewards: (p) => {
      const target = arg(p, 0, 'target');
      if (typeof target !== 'string' || /^(0x)?[0-9a-fA-F]{64}$/.test(target)) return 100;
      const chips = chipsOfNamedOwner(state(), target);
      return chips === null ? 1 : 100 * Math.max(1, chips);
    },
    // An owner's chips are read from its index (one read a chip) and sorted: as unc_listChips.
    unc_getChips: (p) => {
      const chips = chipsOfNamedOwner(state(), arg(p, 0, 'owner'));
      return chips === null ? 100 : Math.max(100, chips / 100);
    },
    /**
     * Each chip of an offer reads its 24 h of events (market-api.ts, `slotOutcomes`: ~100 on a 1 s
     * chain the first time, then only new blocks'): one unit a chip, so a 32-chip offer costs 32,
     * not 1. The offer is one state read; an id that names none costs 1 (the method says so).
     */
    unc_getOffer: (p) => Math.max(1, chipsOfOffer(state(), arg(p, 0, 'id')) ?? 1),
    /**
     * One unit per listed offer (its head holds the count: one read), at least the list price: up to
     * 32 chips' uptimes an offer, each read whole only the first time (then a block's worth).
     */
    unc_getOffers: (p) => {
      const provider = arg(p, 0, 'provider');
      let list = openOffers;
      if (provider !== undefined && provider !== null) {
        // Anything the schema then refuses costs the list price, as before.
        if (typeof provider !== 'string') return 100;
        try {
          list = offersByProvider(decodeAddress(provider));
        } catch {
          return 100;
        }
      }
      return Math.max(100, Math.min(Number(listCount(state(), list)), MAX_LISTED_OFFERS));
    },
    /**
     * Reads (and decodes) up to 1,000 of the provider's offers and 1,000 of its leases: one unit per
     * 20 of them (as unc_getLeases, 100 for 1,000 rendered), so a provider of a few costs 1.
     */
    unc_getProviderRecord: (p) => {
      const address = arg(p, 0, 'address');
      if (typeof address !== 'string') return 1;
      let provider: Uint8Array;
      try {
        provider = decodeAddress(address);
      } catch {
        return 1;
      }
      const listed = (n: bigint) => Math.min(Number(n), MAX_LISTED_OFFERS);
      const read =
        listed(listCount(state(), offersByProvider(provider))) +
        listed(listCount(state(), leasesByProvider(provider)));
      return Math.max(1, Math.ceil(read / 20));
    },
    unc_listChips: (p) => {
      const page = RPC_COSTS.unc_listChips!(p);
      const chips = chipsOfNamedOwner(state(), arg(p, 0, 'owner'));
      return chips === null ? page : Math.max(page, chips / 100);
    },
  };
}
