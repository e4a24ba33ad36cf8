/**
 * Challenge slots and liveness (PROTOCOL.md §4.3), computed lazily: nothing runs per chip per
 * block. A chip's slot heights in an epoch are a pure function of the epoch seed and its id, so
 * answers are checked when they arrive and misses are derived (and recorded) when needed.
 */
import { utf8 } from '../bytes.js';
import { taggedHash } from '../crypto/hash.js';
import { bool, type Codec, decode, encode, struct, u64, u128 } from '../encoding/codec.js';
import { hash32 } from '../encoding/primitives.js';
import { StateSpace } from '../state/accounts.js';
import type { StateOverlay, StateReader } from '../state/store.js';
import type { Chip } from './chips.js';
import type { PociParams } from './params.js';

/** Epochs are numbered from 0; epoch e covers heights e·B+1 … (e+1)·B. */
export function epochOf(height: bigint, p: Pick<PociParams, 'epochBlocks'>): bigint {
  return height === 0n ? 0n : (height - 1n) / p.epochBlocks;
}

export function epochStart(epoch: bigint, p: Pick<PociParams, 'epochBlocks'>): bigint {
  return epoch * p.epochBlocks + 1n;
}

function u64Bytes(v: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, v);
  return b;
}

/**
 * The S slot heights of a chip in an epoch, in slot order, all distinct: slot j is
 * start + H(seed ‖ chipId ‖ j ‖ draw) mod B, drawing again on a collision so that two slots
 * never share a block (and so a challenge).
 */
export function slotHeights(
  seed: Uint8Array,
  chipId: Uint8Array,
  epoch: bigint,
  p: Pick<PociParams, 'epochBlocks' | 'slotsPerEpoch'>,
): bigint[] {
  const start = epochStart(epoch, p);
  const out: bigint[] = [];
  for (let j = 0; j < p.slotsPerEpoch; j++) {
    for (let draw = 0; ; draw++) {
      const h = taggedHash('UNC/slot', seed, chipId, Uint8Array.of(j, draw & 0xff));
      const offset = new DataView(h.buffer, h.byteOffset).getBigUint64(0) % p.epochBlocks;
      const slot = start + offset;
      if (!out.includes(slot)) {
        out.push(slot);
        break;
      }
    }
  }
  return out;
}

/** The challenge a chip must sign for a slot: bound to the chain, the chip and the slot block. */
export function heartbeatChallenge(
  chainId: string,
  chipId: Uint8Array,
  slotBlockHash: Uint8Array,
): Uint8Array {
  return taggedHash('UNC/heartbeat', utf8(chainId), chipId, slotBlockHash);
}

/** The registration message: binds the evidence to this chain, the owner and a recent block. */
export function registrationMessage(chainId: string, owner: Uint8Array, anchorHash: Uint8Array): Uint8Array {
  return taggedHash('UNC/register', utf8(chainId), owner, anchorHash);
}

/** A chip's consent to move to a new owner. */
export function transferMessage(
  chainId: string,
  chipId: Uint8Array,
  newOwner: Uint8Array,
  anchorHash: Uint8Array,
): Uint8Array {
  return taggedHash('UNC/transfer', utf8(chainId), chipId, newOwner, anchorHash);
}

// ---- Per-epoch records and recent block hashes (written O(1) per block / per epoch) ----

export interface EpochRecord {
  epoch: bigint;
  seed: Uint8Array;
  startHeight: bigint;
  startTime: bigint;
  /** Sum over chips of power × credited slots (rewards/emission.ts); grows with each answer. */
  totalWeight: bigint;
  /** Set once the epoch is final (its last answer window closed): what it pays out. */
  final: boolean;
  budget: bigint;
  /** Not yet paid out of `budget`, and the weight of the chips not yet paid: the last chip to be
   *  paid gets exactly what is left, so rounding loses nothing. */
  remainingBudget: bigint;
  remainingWeight: bigint;
}

export const epochRecordCodec: Codec<EpochRecord> = struct<EpochRecord>('EpochRecord', {
  epoch: u64,
  seed: hash32,
  startHeight: u64,
  startTime: u64,
  totalWeight: u128,
  final: bool,
  budget: u128,
  remainingBudget: u128,
  remainingWeight: u128,
});

export function epochKey(epoch: bigint): Uint8Array {
  const k = new Uint8Array(9);
  k[0] = StateSpace.epoch;
  k.set(u64Bytes(epoch), 1);
  return k;
}

export function getEpochRecord(state: StateReader, epoch: bigint): EpochRecord | null {
  const raw = state.get(epochKey(epoch));
  return raw ? decode(epochRecordCodec, raw) : null;
}

export function putEpochRecord(state: StateOverlay, r: EpochRecord): void {
  state.set(epochKey(r.epoch), encode(epochRecordCodec, r));
}

/** Recent block hashes are kept in a ring of this many entries (≥ registration age and W). */
export const BLOCK_HASH_RING = 256n;

const recentHashCodec = struct<{ height: bigint; hash: Uint8Array }>('RecentHash', {
  height: u64,
  hash: hash32,
});

function ringKey(height: bigint): Uint8Array {
  return Uint8Array.of(StateSpace.system, 0x10, Number(height % BLOCK_HASH_RING));
}

export function putRecentHash(state: StateOverlay, height: bigint, hash: Uint8Array): void {
  state.set(ringKey(height), encode(recentHashCodec, { height, hash }));
}

/** The hash of a recent committed block, or null if it is not (or no longer) in the ring. */
export function getRecentHash(state: StateReader, height: bigint): Uint8Array | null {
  const raw = state.get(ringKey(height));
  if (!raw) return null;
  const r = decode(recentHashCodec, raw);
  return r.height === height ? r.hash : null;
}

// ---- Lazy liveness ----

export interface SlotOutcome {
  epoch: bigint;
  slot: number;
  slotHeight: bigint;
  /** Height at which the answer was included, or null for a miss. */
  answeredAt: bigint | null;
}

export type SeedLookup = (epoch: bigint) => Uint8Array | null;

/**
 * The chip's slots above height `after` whose answer window has closed by `height` without an
 * answer, oldest first, at most `limit` of them. With `after` = the settled height it gives the
 * misses still to record; with `after` = the newest answered slot, the consecutive misses.
 */
export function unansweredSlots(
  chip: Chip,
  after: bigint,
  height: bigint,
  p: PociParams,
  seedOf: SeedLookup,
  limit: number,
): SlotOutcome[] {
  const out: SlotOutcome[] = [];
  const current = epochOf(height, p);
  let from = epochOf(after + 1n, p);
  if (from < chip.firstEpoch) from = chip.firstEpoch;
  // A chip silent for a very long time: only the most recent epochs are enumerated.
  const maxEpochs = BigInt(Math.ceil(limit / p.slotsPerEpoch) + 1);
  if (current > from + maxEpochs) from = current - maxEpochs;
  for (let e = from; e <= current && out.length < limit; e++) {
    const seed = seedOf(e);
    if (!seed) continue;
    const slots = slotHeights(seed, chip.chipId, e, p)
      .map((slotHeight, slot) => ({ slotHeight, slot }))
      .sort((a, b) => (a.slotHeight < b.slotHeight ? -1 : 1));
    for (const { slotHeight, slot } of slots) {
      if (slotHeight <= after) continue;
      if (slotHeight + p.answerWindowBlocks >= height) continue; // window still open
      if (answeredIn(chip, e, slot)) continue;
      out.push({ epoch: e, slot, slotHeight, answeredAt: null });
      if (out.length >= limit) break;
    }
  }
  return out;
}

export function answeredIn(chip: Chip, epoch: bigint, slot: number): boolean {
  const bit = 1 << slot;
  if (epoch === chip.epoch) return (chip.answered & bit) !== 0;
  if (epoch === chip.epoch - 1n) return (chip.prevAnswered & bit) !== 0;
  return false;
}

/** Marks a slot answered, shifting the two-epoch window of masks forward as needed. */
export function markAnswered(chip: Chip, epoch: bigint, slot: number): void {
  if (epoch > chip.epoch) {
    chip.prevAnswered = epoch === chip.epoch + 1n ? chip.answered : 0;
    chip.answered = 0;
    chip.epoch = epoch;
  }
  if (epoch === chip.epoch) chip.answered |= 1 << slot;
  else if (epoch === chip.epoch - 1n) chip.prevAnswered |= 1 << slot;
}

/** Online unless its last K slots (whose windows closed) all went unanswered. */
export function isOnline(chip: Chip, height: bigint, p: PociParams, seedOf: SeedLookup): boolean {
  return consecutiveMisses(chip, height, p, seedOf) < p.offlineAfterMisses;
}

/** Missed slots since the newest answered one (or since registration), capped at K. */
export function consecutiveMisses(chip: Chip, height: bigint, p: PociParams, seedOf: SeedLookup): number {
  const after = chip.lastAnsweredSlot > 0n ? chip.lastAnsweredSlot : chip.registeredAt;
  return unansweredSlots(chip, after, height, p, seedOf, p.offlineAfterMisses).length;
}

export function seedLookup(state: StateReader): SeedLookup {
  return (epoch) => getEpochRecord(state, epoch)?.seed ?? null;
}
