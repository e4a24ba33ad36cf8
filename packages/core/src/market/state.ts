/**
 * Market records in state: offers (0x09), leases (0x0A), provider records (0x0B) and the market's
 * indexes (0x0C: id counters, per-chip locks, replay markers and linked lists).
 *
 * Lists are doubly linked through separate link records, so adding or removing an item is O(1)
 * whatever the list's length: the epoch-end settlement walks only the active leases, and the RPC
 * can list a renter's or a provider's leases without a prefix scan of the state.
 */

import { taggedHash } from '../crypto/hash.js';
import {
  type Codec,
  decode,
  encode,
  list,
  option,
  string,
  struct,
  u8,
  u32,
  u64,
  u128,
} from '../encoding/codec.js';
import { address, chainIdCodec, hash32, publicKey } from '../encoding/primitives.js';
import { StateSpace } from '../state/accounts.js';
import type { StateOverlay, StateReader } from '../state/store.js';
import {
  MAX_ENDPOINT_BYTES,
  MAX_OFFER_CHIPS,
  MAX_TLS_FINGERPRINTS,
  type OfferAttributes,
  offerAttributesCodec,
} from './actions.js';

export const OfferStatus = { open: 0, closed: 1 } as const;
export const LeaseStatus = { active: 0, closing: 1, closed: 2 } as const;
export type LeaseStatusName = 'active' | 'closing' | 'closed';
export const LEASE_STATUS_NAMES: readonly LeaseStatusName[] = ['active', 'closing', 'closed'];

export interface Offer {
  id: Uint8Array;
  provider: Uint8Array;
  chipIds: Uint8Array[];
  pricePerHour: bigint;
  minHours: number;
  maxHours: number;
  noticeMs: bigint;
  endpoint: string;
  attributes: OfferAttributes;
  createdHeight: bigint;
  createdTime: bigint;
  status: number;
  /** Block time at which the provider closed it, and at which its notice ends (0 while open). */
  closedTime: bigint;
  closesAt: bigint;
  leasesOpened: bigint;
  /** SHA-256 of the DER certificates the https endpoint may present (none for http). */
  tlsFingerprints: Uint8Array[];
}

export const offerCodec: Codec<Offer> = struct<Offer>('Offer', {
  id: hash32,
  provider: address,
  chipIds: list(hash32, MAX_OFFER_CHIPS, 'chipIds'),
  pricePerHour: u128,
  minHours: u32,
  maxHours: u32,
  noticeMs: u64,
  endpoint: string(MAX_ENDPOINT_BYTES, 'endpoint'),
  attributes: offerAttributesCodec,
  createdHeight: u64,
  createdTime: u64,
  status: u8,
  closedTime: u64,
  closesAt: u64,
  leasesOpened: u64,
  tlsFingerprints: list(hash32, MAX_TLS_FINGERPRINTS, 'tlsFingerprints'),
});

export interface Lease {
  id: Uint8Array;
  offerId: Uint8Array;
  chipId: Uint8Array;
  provider: Uint8Array;
  renter: Uint8Array;
  /** The key that signed the opening transaction; the provider's API authenticates the renter by it. */
  renterPublicKey: Uint8Array;
  pricePerHour: bigint;
  hours: number;
  startHeight: bigint;
  startTime: bigint;
  /** When the lease ends (shortened by a provider's or an offer's notice). */
  endTime: bigint;
  /** Deposit plus top-ups. Invariant: deposited = paid + refunded + remaining. */
  deposited: bigint;
  /** Cost drawn from escrow so far (paid + refunds of missed time): price × elapsed, floored once. */
  accrued: bigint;
  paid: bigint;
  refunded: bigint;
  remaining: bigint;
  /** Block time the cost is settled through. */
  settledTime: bigint;
  /** Slots at or below this height are already counted in slotsAnswered/slotsMissed. */
  slotCursor: bigint;
  slotsAnswered: bigint;
  slotsMissed: bigint;
  status: number;
  /** Why a closing lease will close at endTime (empty while active). */
  closingReason: string;
  closedHeight: bigint;
  closedTime: bigint;
  closedReason: string;
  /** Disputes recorded on this lease (at most disputeAllowance: one per dispute wait of lease time kept). */
  disputes: number;
}

export const leaseCodec: Codec<Lease> = struct<Lease>('Lease', {
  id: hash32,
  offerId: hash32,
  chipId: hash32,
  provider: address,
  renter: address,
  renterPublicKey: publicKey,
  pricePerHour: u128,
  hours: u32,
  startHeight: u64,
  startTime: u64,
  endTime: u64,
  deposited: u128,
  accrued: u128,
  paid: u128,
  refunded: u128,
  remaining: u128,
  settledTime: u64,
  slotCursor: u64,
  slotsAnswered: u64,
  slotsMissed: u64,
  status: u8,
  closingReason: string(64, 'closingReason'),
  closedHeight: u64,
  closedTime: u64,
  closedReason: string(64, 'closedReason'),
  disputes: u32,
});

export interface ProviderRecord {
  offers: bigint;
  leases: bigint;
  jobsReceipted: bigint;
  ratingsCount: bigint;
  ratingsSum: bigint;
  disputes: bigint;
  /** Paid to the provider by its leases, base units. */
  earnings: bigint;
}

export const providerRecordCodec: Codec<ProviderRecord> = struct<ProviderRecord>('ProviderRecord', {
  offers: u64,
  leases: u64,
  jobsReceipted: u64,
  ratingsCount: u64,
  ratingsSum: u64,
  disputes: u64,
  earnings: u128,
});

export const EMPTY_PROVIDER_RECORD: Readonly<ProviderRecord> = Object.freeze({
  offers: 0n,
  leases: 0n,
  jobsReceipted: 0n,
  ratingsCount: 0n,
  ratingsSum: 0n,
  disputes: 0n,
  earnings: 0n,
});

function prefixed(space: number, ...parts: Uint8Array[]): Uint8Array {
  const n = parts.reduce((s, p) => s + p.length, 1);
  const k = new Uint8Array(n);
  k[0] = space;
  let o = 1;
  for (const p of parts) {
    k.set(p, o);
    o += p.length;
  }
  return k;
}

export const offerKey = (id: Uint8Array): Uint8Array => prefixed(StateSpace.offer, id);
export const leaseKey = (id: Uint8Array): Uint8Array => prefixed(StateSpace.lease, id);
export const providerKey = (addr: Uint8Array): Uint8Array => prefixed(StateSpace.provider, addr);

export function getOffer(state: StateReader, id: Uint8Array): Offer | null {
  const raw = state.get(offerKey(id));
  return raw ? decode(offerCodec, raw) : null;
}
export function putOffer(state: StateOverlay, o: Offer): void {
  state.set(offerKey(o.id), encode(offerCodec, o));
}
/** Removes an offer record (only one no lease refers to: market/execute.ts applyCloseOffer). */
export function deleteOffer(state: StateOverlay, id: Uint8Array): void {
  state.set(offerKey(id), null);
}
export function getLease(state: StateReader, id: Uint8Array): Lease | null {
  const raw = state.get(leaseKey(id));
  return raw ? decode(leaseCodec, raw) : null;
}
export function putLease(state: StateOverlay, l: Lease): void {
  state.set(leaseKey(l.id), encode(leaseCodec, l));
}
export function getProviderRecord(state: StateReader, provider: Uint8Array): ProviderRecord {
  const raw = state.get(providerKey(provider));
  return raw ? decode(providerRecordCodec, raw) : { ...EMPTY_PROVIDER_RECORD };
}
export function putProviderRecord(state: StateOverlay, provider: Uint8Array, r: ProviderRecord): void {
  state.set(providerKey(provider), encode(providerRecordCodec, r));
}

// ---- Index (0x0C) ----

const IDX = {
  counters: 0x00,
  chip: 0x01,
  receipt: 0x02,
  dispute: 0x03,
  endQueueSize: 0x04,
  endQueue: 0x05,
  endQueuePos: 0x06,
  heldCount: 0x07,
  held: 0x08,
  heldTally: 0x09,
  markEntry: 0x0a,
  markCount: 0x0b,
  pruneQueue: 0x0c,
  pruneEntry: 0x0d,
  list: 0x10,
} as const;

interface Counters {
  offers: bigint;
  leases: bigint;
}
const countersCodec = struct<Counters>('MarketCounters', { offers: u64, leases: u64 });
const COUNTERS_KEY = Uint8Array.of(StateSpace.marketIndex, IDX.counters);

/** Ids come from a chain-wide counter: unique, and known to nobody before the block runs. */
export function nextId(state: StateOverlay, chainId: string, kind: 'offer' | 'lease'): Uint8Array {
  const raw = state.get(COUNTERS_KEY);
  const c = raw ? decode(countersCodec, raw) : { offers: 0n, leases: 0n };
  const seq = kind === 'offer' ? c.offers : c.leases;
  if (kind === 'offer') c.offers += 1n;
  else c.leases += 1n;
  state.set(COUNTERS_KEY, encode(countersCodec, c));
  return taggedHash(`UNC/${kind}`, encode(chainIdCodec, chainId), encode(u64, seq));
}

/** What a chip is committed to: at most one open offer and one running lease at a time. */
export interface ChipMarket {
  offerId: Uint8Array | null;
  leaseId: Uint8Array | null;
}
const chipMarketCodec = struct<ChipMarket>('ChipMarket', {
  offerId: option(hash32),
  leaseId: option(hash32),
});
const chipMarketKey = (chipId: Uint8Array) => Uint8Array.of(StateSpace.marketIndex, IDX.chip, ...chipId);

export function getChipMarket(state: StateReader, chipId: Uint8Array): ChipMarket {
  const raw = state.get(chipMarketKey(chipId));
  return raw ? decode(chipMarketCodec, raw) : { offerId: null, leaseId: null };
}
export function putChipMarket(state: StateOverlay, chipId: Uint8Array, m: ChipMarket): void {
  state.set(chipMarketKey(chipId), m.offerId || m.leaseId ? encode(chipMarketCodec, m) : null);
}

/**
 * Marks a key of lease `leaseId` as used; returns false when it already was (a replayed receipt or
 * dispute). The mark is also listed under its lease (`0x0C 0x0A ‖ lease id ‖ u32 i` → the mark's
 * key, `0x0C 0x0B ‖ lease id` → their count), so that pruneMarks can remove a closed lease's marks
 * once no receipt or dispute of it can be posted any more.
 */
export function markOnce(
  state: StateOverlay,
  kind: 'receipt' | 'dispute',
  leaseId: Uint8Array,
  id: Uint8Array,
): boolean {
  const key = markKey(kind, id);
  if (state.get(key)) return false;
  state.set(key, Uint8Array.of(1));
  const n = markCount(state, leaseId);
  state.set(markEntryKey(leaseId, n), key);
  state.set(markCountKey(leaseId), u32Bytes(n + 1));
  return true;
}

/** Whether the receipt or dispute mark `id` is in the state (tests, views). */
export function hasMark(state: StateReader, kind: 'receipt' | 'dispute', id: Uint8Array): boolean {
  return state.get(markKey(kind, id)) !== undefined;
}

const markKey = (kind: 'receipt' | 'dispute', id: Uint8Array): Uint8Array =>
  Uint8Array.of(StateSpace.marketIndex, IDX[kind], ...id);

function markCountKey(leaseId: Uint8Array): Uint8Array {
  return Uint8Array.of(StateSpace.marketIndex, IDX.markCount, ...leaseId);
}

function markEntryKey(leaseId: Uint8Array, i: number): Uint8Array {
  const k = new Uint8Array(2 + leaseId.length + 4);
  k[0] = StateSpace.marketIndex;
  k[1] = IDX.markEntry;
  k.set(leaseId, 2);
  new DataView(k.buffer).setUint32(2 + leaseId.length, i);
  return k;
}

/** How many marks are listed under the lease (0 once pruned). */
export function markCount(state: StateReader, leaseId: Uint8Array): number {
  const raw = state.get(markCountKey(leaseId));
  return raw ? readU32(raw) : 0;
}

// ---- The mark prune queue (CONSENSUS CHANGE, docs/jobs.md "Replay marks are pruned") ----
//
// `0x0C 0x0C` → { head: u64, tail: u64 }, `0x0C 0x0D ‖ u64 i` → entry i: u64 after ‖ lease id (40
// bytes), a FIFO with one entry per closed lease, pushed by closeLease with `after` = the closing
// block's time + receiptWindowMs. A closed lease ran until no later than its close (ranUntil), so
// from the first block whose time is past `after` every receipt and dispute of it is refused by the
// posting window (LEASE_CLOSED) before its mark is read: its marks guard nothing and are removed.
// Block times never go back, so entries are pushed in the order of their `after`.

interface PruneQueue {
  head: bigint;
  tail: bigint;
}
const pruneQueueCodec = struct<PruneQueue>('MarkPruneQueue', { head: u64, tail: u64 });
const PRUNE_QUEUE_KEY = Uint8Array.of(StateSpace.marketIndex, IDX.pruneQueue);

function pruneEntryKey(i: bigint): Uint8Array {
  const k = new Uint8Array(10);
  k[0] = StateSpace.marketIndex;
  k[1] = IDX.pruneEntry;
  new DataView(k.buffer).setBigUint64(2, i);
  return k;
}

function getPruneQueue(state: StateReader): PruneQueue {
  const raw = state.get(PRUNE_QUEUE_KEY);
  return raw ? decode(pruneQueueCodec, raw) : { head: 0n, tail: 0n };
}

/** Queues the marks of lease `leaseId`, closed now, for removal after block time `after`. */
export function scheduleMarkPrune(state: StateOverlay, leaseId: Uint8Array, after: bigint): void {
  const q = getPruneQueue(state);
  const v = new Uint8Array(8 + leaseId.length);
  new DataView(v.buffer).setBigUint64(0, after);
  v.set(leaseId, 8);
  state.set(pruneEntryKey(q.tail), v);
  state.set(PRUNE_QUEUE_KEY, encode(pruneQueueCodec, { head: q.head, tail: q.tail + 1n }));
}

/**
 * The most units of pruning work one block does: one per mark removed and one per queue entry
 * finished. A backlog (a burst of marks on leases that close together) drains over later blocks,
 * in queue order and, within a lease, from its last mark down, so every node removes the same keys.
 */
export const MARK_PRUNE_PER_BLOCK = 256;

/** Removes the marks of closed leases whose posting window has passed by block time `time`. */
export function pruneMarks(state: StateOverlay, time: bigint, budget = MARK_PRUNE_PER_BLOCK): number {
  const q = getPruneQueue(state);
  let left = budget;
  let removed = 0;
  const head0 = q.head;
  while (q.head < q.tail && left > 0) {
    const raw = state.get(pruneEntryKey(q.head));
    if (raw?.length !== 40) throw new Error(`mark prune queue: entry ${q.head} missing`);
    const after = new DataView(raw.buffer, raw.byteOffset, 8).getBigUint64(0);
    if (time <= after) break;
    const leaseId = raw.slice(8);
    let n = markCount(state, leaseId);
    while (n > 0 && left > 0) {
      n--;
      const entry = markEntryKey(leaseId, n);
      const key = state.get(entry);
      if (!key) throw new Error(`mark list: entry ${n} of a queued lease missing`);
      state.set(key, null);
      state.set(entry, null);
      left--;
      removed++;
    }
    if (n > 0) {
      state.set(markCountKey(leaseId), u32Bytes(n));
      break;
    }
    if (left === 0) {
      // Finishing the entry is next block's first unit; its count key goes then.
      state.set(markCountKey(leaseId), u32Bytes(0));
      break;
    }
    left--;
    state.set(markCountKey(leaseId), null);
    state.set(pruneEntryKey(q.head), null);
    q.head++;
  }
  if (q.head !== head0) {
    state.set(
      PRUNE_QUEUE_KEY,
      q.head === q.tail ? null : encode(pruneQueueCodec, { head: q.head, tail: q.tail }),
    );
  }
  return removed;
}

export function disputeId(leaseId: Uint8Array, requestHash: Uint8Array): Uint8Array {
  return taggedHash('UNC/dispute', leaseId, requestHash);
}

// ---- The lease end queue: a binary min-heap of (end time, lease id), one entry per open lease ----
//
// `0x0C 0x04` → the number of entries (u32), `0x0C 0x05 ‖ u32 i` → entry i: u64 end time ‖ lease id
// (40 bytes, compared as bytes: by time, then by id, so the order is total and every node pops the
// same entry), `0x0C 0x06 ‖ lease id` → the entry's index (u32). Each block's opening bookkeeping
// pops the entries due at its time (market/execute.ts beginBlockMarket), so a lease is settled and
// closed in the first block whose time reaches its end. A lease has exactly one entry while it is
// open, at its current end (moved when a notice or a top-up moves the end), and none once it is
// closed (closeLease removes it): the queue never holds more entries than there are open leases,
// so what one block pops is bounded by the open leases, whatever was opened and closed before.
// O(log n) reads and writes per insert, move, removal or pop; a block with nothing due reads two keys.

const END_QUEUE_SIZE_KEY = Uint8Array.of(StateSpace.marketIndex, IDX.endQueueSize);

function endQueueKey(i: number): Uint8Array {
  const k = new Uint8Array(6);
  k[0] = StateSpace.marketIndex;
  k[1] = IDX.endQueue;
  new DataView(k.buffer).setUint32(2, i);
  return k;
}

function endQueuePosKey(leaseId: Uint8Array): Uint8Array {
  const k = new Uint8Array(2 + leaseId.length);
  k[0] = StateSpace.marketIndex;
  k[1] = IDX.endQueuePos;
  k.set(leaseId, 2);
  return k;
}

function u32Bytes(n: number): Uint8Array {
  const v = new Uint8Array(4);
  new DataView(v.buffer).setUint32(0, n);
  return v;
}

function readU32(raw: Uint8Array): number {
  return new DataView(raw.buffer, raw.byteOffset, raw.byteLength).getUint32(0);
}

function endQueueSize(state: StateReader): number {
  const raw = state.get(END_QUEUE_SIZE_KEY);
  return raw ? readU32(raw) : 0;
}

function putEndQueueSize(state: StateOverlay, n: number): void {
  state.set(END_QUEUE_SIZE_KEY, n === 0 ? null : u32Bytes(n));
}

function endQueueAt(state: StateReader, i: number): Uint8Array {
  const raw = state.get(endQueueKey(i));
  if (raw?.length !== 40) throw new Error(`lease end queue: entry ${i} missing`);
  return raw;
}

/** The index of the lease's entry, or null when it has none. */
function endQueuePos(state: StateReader, leaseId: Uint8Array): number | null {
  const raw = state.get(endQueuePosKey(leaseId));
  return raw ? readU32(raw) : null;
}

/** Writes `entry` at index i and records i as its lease's position. */
function placeEndEntry(state: StateOverlay, i: number, entry: Uint8Array): void {
  state.set(endQueueKey(i), entry);
  state.set(endQueuePosKey(entry.subarray(8, 40)), u32Bytes(i));
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length && i < b.length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

export interface LeaseEndEntry {
  time: bigint;
  leaseId: Uint8Array;
}

function decodeEndEntry(raw: Uint8Array): LeaseEndEntry {
  return {
    time: new DataView(raw.buffer, raw.byteOffset, 8).getBigUint64(0),
    leaseId: raw.slice(8, 40),
  };
}

/** Places `entry` at hole i, moving it up past larger parents. */
function siftUp(state: StateOverlay, i: number, entry: Uint8Array): number {
  while (i > 0) {
    const parent = (i - 1) >> 1;
    const above = endQueueAt(state, parent);
    if (compareBytes(above, entry) <= 0) break;
    placeEndEntry(state, i, above);
    i = parent;
  }
  placeEndEntry(state, i, entry);
  return i;
}

/** Places `entry` at hole i of a heap of `size` entries, moving it down past smaller children. */
function siftDown(state: StateOverlay, i: number, entry: Uint8Array, size: number): void {
  for (;;) {
    const l = 2 * i + 1;
    if (l >= size) break;
    let child = l;
    let below = endQueueAt(state, l);
    if (l + 1 < size) {
      const right = endQueueAt(state, l + 1);
      if (compareBytes(right, below) < 0) {
        child = l + 1;
        below = right;
      }
    }
    if (compareBytes(entry, below) <= 0) break;
    placeEndEntry(state, i, below);
    i = child;
  }
  placeEndEntry(state, i, entry);
}

/** Removes the entry at index i (its position record too); returns it. */
function removeEndAt(state: StateOverlay, i: number): Uint8Array {
  const n = endQueueSize(state);
  const removed = endQueueAt(state, i);
  state.set(endQueuePosKey(removed.subarray(8, 40)), null);
  const size = n - 1;
  putEndQueueSize(state, size);
  if (i === size) {
    state.set(endQueueKey(size), null);
    return removed;
  }
  const last = endQueueAt(state, size);
  state.set(endQueueKey(size), null);
  // The last entry fills the hole: up if it is below the hole's parent, else down.
  if (siftUp(state, i, last) === i) siftDown(state, i, last, size);
  return removed;
}

/**
 * Sets the lease's end in the queue to `time`: inserts its entry, or moves the one it has (a lease
 * has at most one). It is looked at in the first block whose time is at or past `time`. O(log n).
 */
export function queueLeaseEnd(state: StateOverlay, leaseId: Uint8Array, time: bigint): void {
  if (leaseId.length !== 32) throw new Error('lease end queue: a lease id is 32 bytes');
  const entry = new Uint8Array(40);
  new DataView(entry.buffer).setBigUint64(0, time);
  entry.set(leaseId, 8);
  const at = endQueuePos(state, leaseId);
  if (at !== null) removeEndAt(state, at);
  const i = endQueueSize(state);
  putEndQueueSize(state, i + 1);
  siftUp(state, i, entry);
}

/** Removes the lease's entry, if it has one (its lease closed). O(log n). */
export function dropLeaseEnd(state: StateOverlay, leaseId: Uint8Array): void {
  const at = endQueuePos(state, leaseId);
  if (at !== null) removeEndAt(state, at);
}

/** The earliest queued entry, or null when the queue is empty. O(1). */
export function nextLeaseEnd(state: StateReader): LeaseEndEntry | null {
  return endQueueSize(state) === 0 ? null : decodeEndEntry(endQueueAt(state, 0));
}

/** Removes and returns the earliest queued entry (null when empty). O(log n). */
export function popLeaseEnd(state: StateOverlay): LeaseEndEntry | null {
  return endQueueSize(state) === 0 ? null : decodeEndEntry(removeEndAt(state, 0));
}

/** The queued entries in heap order (for readers and tests). O(n). */
export function leaseEndQueue(state: StateReader): LeaseEndEntry[] {
  const out: LeaseEndEntry[] = [];
  const n = endQueueSize(state);
  for (let i = 0; i < n; i++) out.push(decodeEndEntry(endQueueAt(state, i)));
  return out;
}

// ---- Closed leases whose last period waits for its open challenges ----
//
// `0x0C 0x07 ‖ u64 height` → the number (u32) of held challenges decided in the block of that
// height, `0x0C 0x08 ‖ u64 height ‖ u32 i` → challenge i: lease id ‖ u64 epoch ‖ u8 slot (41 bytes);
// `0x0C 0x09 ‖ lease id` → the lease's tally of its last period, `HeldTally { answered: u32, missed:
// u32, pending: u32 }`. A lease closed with challenges still open queues each once, for the block
// after its window closes (market/settle.ts), whose opening bookkeeping decides it and deletes its
// keys; the last one decided splits the held cost. A close writes two keys per open challenge (those
// drawn in its last W blocks). Block X decides those drawn at X − W − 1, one class of chips, queued
// by the closes of the W blocks before it: at most one per chip of that class leased at that height
// (consecutive leases of a chip share no challenge), so at most the leases active then.

export interface HeldTally {
  answered: number;
  missed: number;
  pending: number;
}
const heldTallyCodec = struct<HeldTally>('HeldTally', { answered: u32, missed: u32, pending: u32 });

function heldTallyKey(leaseId: Uint8Array): Uint8Array {
  return Uint8Array.of(StateSpace.marketIndex, IDX.heldTally, ...leaseId);
}

export function getHeldTally(state: StateReader, leaseId: Uint8Array): HeldTally | null {
  const raw = state.get(heldTallyKey(leaseId));
  return raw ? decode(heldTallyCodec, raw) : null;
}

export function putHeldTally(state: StateOverlay, leaseId: Uint8Array, t: HeldTally | null): void {
  state.set(heldTallyKey(leaseId), t ? encode(heldTallyCodec, t) : null);
}

export interface HeldChallenge {
  leaseId: Uint8Array;
  epoch: bigint;
  slot: number;
}

function heldCountKey(height: bigint): Uint8Array {
  const k = new Uint8Array(10);
  k[0] = StateSpace.marketIndex;
  k[1] = IDX.heldCount;
  new DataView(k.buffer).setBigUint64(2, height);
  return k;
}

function heldKey(height: bigint, i: number): Uint8Array {
  const k = new Uint8Array(14);
  k[0] = StateSpace.marketIndex;
  k[1] = IDX.held;
  const v = new DataView(k.buffer);
  v.setBigUint64(2, height);
  v.setUint32(10, i);
  return k;
}

function heldCount(state: StateReader, height: bigint): number {
  const raw = state.get(heldCountKey(height));
  return raw ? decode(u32, raw) : 0;
}

/** Queues a closed lease's open challenge for the block at `height`. O(1). */
export function queueHeldChallenge(state: StateOverlay, height: bigint, c: HeldChallenge): void {
  if (c.leaseId.length !== 32) throw new Error('held challenge: a lease id is 32 bytes');
  const n = heldCount(state, height);
  const v = new Uint8Array(41);
  v.set(c.leaseId, 0);
  new DataView(v.buffer).setBigUint64(32, c.epoch);
  v[40] = c.slot;
  state.set(heldKey(height, n), v);
  state.set(heldCountKey(height), encode(u32, n + 1));
}

/** The challenges queued for the block at `height`, in queueing order (for readers and tests). */
export function heldChallengesAt(state: StateReader, height: bigint): HeldChallenge[] {
  const out: HeldChallenge[] = [];
  const n = heldCount(state, height);
  for (let i = 0; i < n; i++) {
    const v = state.get(heldKey(height, i));
    if (v?.length !== 41) throw new Error(`held challenge ${i} of height ${height} is missing`);
    out.push({
      leaseId: v.slice(0, 32),
      epoch: new DataView(v.buffer, v.byteOffset).getBigUint64(32),
      slot: v[40]!,
    });
  }
  return out;
}

/** Takes the challenges queued for the block at `height` out of the queue and returns them. */
export function takeHeldChallenges(state: StateOverlay, height: bigint): HeldChallenge[] {
  const out = heldChallengesAt(state, height);
  for (let i = 0; i < out.length; i++) state.set(heldKey(height, i), null);
  if (out.length > 0) state.set(heldCountKey(height), null);
  return out;
}

// ---- Linked lists ----

export const ListTag = {
  activeLeases: 1,
  openOffers: 2,
  leasesByRenter: 3,
  leasesByProvider: 4,
  offersByProvider: 5,
} as const;

export interface ListRef {
  tag: number;
  /** An address for per-account lists; empty for chain-wide ones. */
  scope: Uint8Array;
}

interface ListHead {
  first: Uint8Array | null;
  count: bigint;
}
interface ListLink {
  prev: Uint8Array | null;
  next: Uint8Array | null;
}
const listHeadCodec = struct<ListHead>('ListHead', { first: option(hash32), count: u64 });
const listLinkCodec = struct<ListLink>('ListLink', { prev: option(hash32), next: option(hash32) });

function listHeadKey(l: ListRef): Uint8Array {
  return Uint8Array.of(StateSpace.marketIndex, IDX.list, l.tag, ...l.scope, 0x00);
}
function listLinkKey(l: ListRef, id: Uint8Array): Uint8Array {
  return Uint8Array.of(StateSpace.marketIndex, IDX.list, l.tag, ...l.scope, 0x01, ...id);
}
function getHead(state: StateReader, l: ListRef): ListHead {
  const raw = state.get(listHeadKey(l));
  return raw ? decode(listHeadCodec, raw) : { first: null, count: 0n };
}
function getLink(state: StateReader, l: ListRef, id: Uint8Array): ListLink | null {
  const raw = state.get(listLinkKey(l, id));
  return raw ? decode(listLinkCodec, raw) : null;
}
function putHead(state: StateOverlay, l: ListRef, h: ListHead): void {
  state.set(listHeadKey(l), h.count === 0n ? null : encode(listHeadCodec, h));
}
function putLink(state: StateOverlay, l: ListRef, id: Uint8Array, link: ListLink | null): void {
  state.set(listLinkKey(l, id), link ? encode(listLinkCodec, link) : null);
}

/** O(1): puts `id` first (lists read newest first). */
export function listInsert(state: StateOverlay, l: ListRef, id: Uint8Array): void {
  if (getLink(state, l, id)) throw new Error('list item already present');
  const head = getHead(state, l);
  if (head.first) {
    const old = getLink(state, l, head.first)!;
    putLink(state, l, head.first, { ...old, prev: id });
  }
  putLink(state, l, id, { prev: null, next: head.first });
  putHead(state, l, { first: id, count: head.count + 1n });
}

/** O(1). */
export function listRemove(state: StateOverlay, l: ListRef, id: Uint8Array): void {
  const link = getLink(state, l, id);
  if (!link) throw new Error('list item not present');
  const head = getHead(state, l);
  if (link.prev) {
    const p = getLink(state, l, link.prev)!;
    putLink(state, l, link.prev, { ...p, next: link.next });
  } else head.first = link.next;
  if (link.next) {
    const n = getLink(state, l, link.next)!;
    putLink(state, l, link.next, { ...n, prev: link.prev });
  }
  putLink(state, l, id, null);
  putHead(state, l, { first: head.first, count: head.count - 1n });
}

export function listCount(state: StateReader, l: ListRef): bigint {
  return getHead(state, l).count;
}

/** The ids of a list, first to last, at most `limit`. */
export function listItems(state: StateReader, l: ListRef, limit = Number.MAX_SAFE_INTEGER): Uint8Array[] {
  const out: Uint8Array[] = [];
  let cur = getHead(state, l).first;
  while (cur && out.length < limit) {
    out.push(cur);
    cur = getLink(state, l, cur)?.next ?? null;
  }
  return out;
}

export const activeLeases: ListRef = { tag: ListTag.activeLeases, scope: new Uint8Array(0) };
export const openOffers: ListRef = { tag: ListTag.openOffers, scope: new Uint8Array(0) };
export const leasesByRenter = (a: Uint8Array): ListRef => ({ tag: ListTag.leasesByRenter, scope: a });
export const leasesByProvider = (a: Uint8Array): ListRef => ({ tag: ListTag.leasesByProvider, scope: a });
export const offersByProvider = (a: Uint8Array): ListRef => ({ tag: ListTag.offersByProvider, scope: a });
