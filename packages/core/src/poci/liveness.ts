/**
 * Challenges and liveness (PROTOCOL.md §4.3), computed lazily: nothing runs per chip per block.
 * Each block challenges one class of chips, drawn from its VRF beacon, and the chain appends its
 * height to that class's list for the epoch; answers are checked against the list when they arrive
 * and misses are derived (and recorded) from it when needed.
 */
import { utf8 } from '../bytes.js';
import { MAX_BLOCK_TIME_DRIFT_MS } from '../chain/params.js';
import { taggedHash } from '../crypto/hash.js';
import { bool, type Codec, decode, encode, list, struct, u64, u128 } from '../encoding/codec.js';
import { hash32 } from '../encoding/primitives.js';
import { StateSpace } from '../state/accounts.js';
import type { StateOverlay, StateReader } from '../state/store.js';
import type { Chip, TpmClock } from './chips.js';
import type { PociParams } from './params.js';

/** Epochs are numbered from 0; epoch e covers heights e·B+1 … (e+1)·B. */
export function epochOf(height: bigint, p: Pick<PociParams, 'epochBlocks'>): bigint {
  return height === 0n ? 0n : (height - 1n) / p.epochBlocks;
}

export function epochStart(epoch: bigint, p: Pick<PociParams, 'epochBlocks'>): bigint {
  return epoch * p.epochBlocks + 1n;
}

/** Writes `v` (a u64) big-endian at `k[at…at+8)`: state keys are built for every answer, and a
 *  DataView per key was a measurable part of that. */
function setU64(k: Uint8Array, at: number, v: bigint): void {
  if (v < 0n || v > 0xffff_ffff_ffff_ffffn) throw new RangeError(`not a u64: ${v}`);
  let hi = Number(v >> 32n);
  let lo = Number(v & 0xffff_ffffn);
  for (let i = 3; i >= 0; i--) {
    k[at + 4 + i] = lo & 0xff;
    lo >>>= 8;
    k[at + i] = hi & 0xff;
    hi >>>= 8;
  }
}

/**
 * Challenge classes (PROTOCOL.md §4.3, v2). Every chip has a class k = H("UNC/challenge-class" ‖
 * chipId) mod M and block h challenges the class r_h = H("UNC/challenge" ‖ beacon_h) mod M, with
 * M = max(1, floor(B / S)). So nobody knows that block h challenges a chip before block h (its VRF
 * beacon) is committed, and a chip is challenged B / M ≥ S times per epoch in expectation (exactly S
 * when S divides B). The chain keeps, per (epoch, class), the heights that challenged the class.
 */
export function challengeClasses(p: Pick<PociParams, 'epochBlocks' | 'slotsPerEpoch'>): bigint {
  const m = p.epochBlocks / BigInt(p.slotsPerEpoch);
  return m < 1n ? 1n : m;
}

function hashMod(h: Uint8Array, m: bigint): bigint {
  return new DataView(h.buffer, h.byteOffset).getBigUint64(0) % m;
}

/** The class of a chip: fixed by its id (which the hardware attests, so nobody picks it). */
export function chipClass(chipId: Uint8Array, p: Pick<PociParams, 'epochBlocks' | 'slotsPerEpoch'>): bigint {
  return hashMod(taggedHash('UNC/challenge-class', chipId), challengeClasses(p));
}

/** The class block h challenges, from its beacon: unknown before block h exists. */
export function blockChallengeClass(
  beacon: Uint8Array,
  p: Pick<PociParams, 'epochBlocks' | 'slotsPerEpoch'>,
): bigint {
  return hashMod(taggedHash('UNC/challenge', beacon), challengeClasses(p));
}

/**
 * At most this many challenges per class per epoch (the answered masks are 32 bits): a block whose
 * class already has them challenges no one. At defaults the count is Binomial(B, 1/M) with mean S
 * = 4, so the cap is never reached in practice (P < 1e-17).
 */
export const MAX_CHALLENGES_PER_EPOCH = 32;

/** Misses are derived within this many recent epochs (a bound on the work of one lookup). */
export const CHALLENGE_HISTORY_EPOCHS = 64n;

/** The UTF-8 of the last chain id seen: a node has one chain id and encodes it for every answer. */
let lastChainId = '';
let lastChainIdBytes: Uint8Array = new Uint8Array(0);
function chainIdBytes(chainId: string): Uint8Array {
  if (chainId !== lastChainId) {
    lastChainIdBytes = utf8(chainId);
    lastChainId = chainId;
  }
  return lastChainIdBytes;
}

/** The challenge of block h to a chip: bound to the chain, the chip and the hash of block h. */
export function heartbeatChallenge(
  chainId: string,
  chipId: Uint8Array,
  slotBlockHash: Uint8Array,
): Uint8Array {
  return taggedHash('UNC/heartbeat', chainIdBytes(chainId), chipId, slotBlockHash);
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
  setU64(k, 1, epoch);
  return k;
}

export function getEpochRecord(state: StateReader, epoch: bigint): EpochRecord | null {
  const raw = state.get(epochKey(epoch));
  return raw ? decode(epochRecordCodec, raw) : null;
}

export function putEpochRecord(state: StateOverlay, r: EpochRecord): void {
  state.set(epochKey(r.epoch), encode(epochRecordCodec, r));
}

// ---- Pruning old epochs (CONSENSUS CHANGE, docs/poci.md "Old epochs are pruned") ----

/**
 * An epoch's record and its class records are kept at least this many epochs: every lookup of a
 * class by liveness (CHALLENGE_HISTORY_EPOCHS), seat shares (SEAT_LOOKBACK_WINDOWS windows of two
 * epochs each) and lease settlement reads within 66 epochs of the current one; twice the history
 * leaves a margin. Only rewards read older ones (a chip paid when next touched), and an epoch is
 * pruned only once nothing of it is left to pay (rewards/emission.ts pruneEpochs).
 */
export const EPOCH_KEEP_EPOCHS = 2n * CHALLENGE_HISTORY_EPOCHS;

/** Where the epoch pruning stands: the epoch it looks at next, and that epoch's next class. */
export interface EpochPruneCursor {
  epoch: bigint;
  cls: bigint;
}
const epochPruneCursorCodec = struct<EpochPruneCursor>('EpochPruneCursor', { epoch: u64, cls: u64 });
/** `0x00 0x07`: the epoch prune cursor (absent: epoch 0, class 0). */
export const EPOCH_PRUNE_KEY = new Uint8Array([StateSpace.system, 0x07]);

export function getEpochPruneCursor(state: StateReader): EpochPruneCursor {
  const raw = state.get(EPOCH_PRUNE_KEY);
  return raw ? decode(epochPruneCursorCodec, raw) : { epoch: 0n, cls: 0n };
}

export function putEpochPruneCursor(state: StateOverlay, c: EpochPruneCursor): void {
  state.set(EPOCH_PRUNE_KEY, encode(epochPruneCursorCodec, c));
}

/**
 * Whether epoch `epoch`'s record was pruned: it is gone and the pruning has passed it. A record
 * is written at every epoch's first block, so before the cursor its absence means pruned (an
 * epoch the pruning passed without pruning kept its record).
 */
export function epochPruned(state: StateReader, epoch: bigint): boolean {
  return epoch < getEpochPruneCursor(state).epoch && state.get(epochKey(epoch)) === undefined;
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

const recentTimeCodec = struct<{ height: bigint; time: bigint }>('RecentTime', { height: u64, time: u64 });

function timeRingKey(height: bigint): Uint8Array {
  return Uint8Array.of(StateSpace.system, 0x11, Number(height % BLOCK_HASH_RING));
}

/** Records the block time of block `height` (written by the block itself, as it begins). */
export function putRecentTime(state: StateOverlay, height: bigint, time: bigint): void {
  state.set(timeRingKey(height), encode(recentTimeCodec, { height, time }));
}

/** The block time (ms) of a recent block, or null if it is not (or no longer) in the ring. */
export function getRecentTime(state: StateReader, height: bigint): bigint | null {
  const raw = state.get(timeRingKey(height));
  if (!raw) return null;
  const r = decode(recentTimeCodec, raw);
  return r.height === height ? r.time : null;
}

// ---- Challenge classes per epoch (one append per block, one prune per block) ----

export interface ChallengeClassRecord {
  /** Heights that challenged the class in the epoch, ascending: challenge j of the epoch is
   *  heights[j] (an answer names j as its `slot`). */
  heights: bigint[];
  /** Rated power of the class's chips by answers in the epoch: entry a−1 sums the power of the chips
   *  that answered a challenges (rewards/emission.ts weighs them once the count of challenges moves). */
  powerByAnswered: bigint[];
  /** What the class adds to the epoch's total weight now. */
  weight: bigint;
}

export const challengeClassCodec: Codec<ChallengeClassRecord> = struct<ChallengeClassRecord>(
  'ChallengeClass',
  {
    heights: list(u64, MAX_CHALLENGES_PER_EPOCH, 'heights'),
    powerByAnswered: list(u128, MAX_CHALLENGES_PER_EPOCH, 'powerByAnswered'),
    weight: u128,
  },
);

export function challengeClassKey(epoch: bigint, cls: bigint): Uint8Array {
  const k = new Uint8Array(17);
  k[0] = StateSpace.challengeClass;
  setU64(k, 1, epoch);
  setU64(k, 9, cls);
  return k;
}

export function getChallengeClass(state: StateReader, epoch: bigint, cls: bigint): ChallengeClassRecord {
  const raw = state.get(challengeClassKey(epoch, cls));
  return raw ? decode(challengeClassCodec, raw) : { heights: [], powerByAnswered: [], weight: 0n };
}

export function putChallengeClass(
  state: StateOverlay,
  epoch: bigint,
  cls: bigint,
  r: ChallengeClassRecord,
): void {
  state.set(challengeClassKey(epoch, cls), encode(challengeClassCodec, r));
}

/** The heights that challenged class `cls` in `epoch` (empty when none did, or pruned). */
export type ChallengeLookup = (epoch: bigint, cls: bigint) => readonly bigint[];

export function challengeLookup(state: StateReader): ChallengeLookup {
  return (epoch, cls) => getChallengeClass(state, epoch, cls).heights;
}

// ---- Lazy liveness ----

export interface SlotOutcome {
  epoch: bigint;
  /** Index of the challenge among those of the chip's class in the epoch. */
  slot: number;
  slotHeight: bigint;
  /** Height at which the answer was included, or null for a miss. */
  answeredAt: bigint | null;
}

/**
 * The chip's challenges above height `after` whose answer window has closed by `height` without an
 * answer, oldest first: the newest `limit` of them. With `after` = the settled height it gives the
 * misses still to record; with `after` = the newest answered challenge, the consecutive misses.
 * Walks the class's lists backwards from the current epoch (at most CHALLENGE_HISTORY_EPOCHS), so
 * the work is bounded by `limit` plus the epochs with fewer challenges than that. With
 * `openWindows`, every challenge below `height` counts, its window closed or not (a deregistration's:
 * its chip answers nothing more), over the same epochs.
 */
export function unansweredSlots(
  chip: Chip,
  after: bigint,
  height: bigint,
  p: PociParams,
  challengesOf: ChallengeLookup,
  limit: number,
  cls: bigint = chipClass(chip.chipId, p),
  openWindows = false,
): SlotOutcome[] {
  const out: SlotOutcome[] = [];
  if (limit <= 0) return out;
  const current = epochOf(height, p);
  let from = epochOf(after + 1n, p);
  if (from < chip.firstEpoch) from = chip.firstEpoch;
  if (current - from >= CHALLENGE_HISTORY_EPOCHS) from = current - CHALLENGE_HISTORY_EPOCHS + 1n;
  for (let e = current; e >= from && out.length < limit; e--) {
    const heights = challengesOf(e, cls);
    for (let slot = heights.length - 1; slot >= 0; slot--) {
      const slotHeight = heights[slot]!;
      if (slotHeight <= after) break;
      // Window still open (or, with `openWindows`, the challenge not drawn before `height`).
      if ((openWindows ? slotHeight : slotHeight + p.answerWindowBlocks) >= height) continue;
      if (answeredIn(chip, e, slot)) continue;
      out.push({ epoch: e, slot, slotHeight, answeredAt: null });
      if (out.length >= limit) break;
    }
  }
  return out.reverse();
}

/** Whether the chip's answer to the challenge was credited (an uncredited answer is a miss). */
export function answeredIn(chip: Chip, epoch: bigint, slot: number): boolean {
  return (answeredMask(chip, epoch) & (2 ** slot)) !== 0;
}

/** Whether the chip's answer to the challenge was accepted without credit (asleep or rebooted). */
export function uncreditedIn(chip: Chip, epoch: bigint, slot: number): boolean {
  const mask = epoch === chip.epoch ? chip.uncredited : epoch === chip.epoch - 1n ? chip.prevUncredited : 0;
  return (mask & (2 ** slot)) !== 0;
}

/** The chip's credited-answer mask of `epoch` (0 outside the two epochs it keeps). */
export function answeredMask(chip: Chip, epoch: bigint): number {
  return epoch === chip.epoch ? chip.answered : epoch === chip.epoch - 1n ? chip.prevAnswered : 0;
}

/** Moves the two-epoch window of masks forward to `epoch` if it is newer. */
function shiftMasks(chip: Chip, epoch: bigint): void {
  if (epoch <= chip.epoch) return;
  const adjacent = epoch === chip.epoch + 1n;
  chip.prevAnswered = adjacent ? chip.answered : 0;
  chip.prevUncredited = adjacent ? chip.uncredited : 0;
  chip.answered = 0;
  chip.uncredited = 0;
  chip.epoch = epoch;
}

/** Marks a challenge answered (credited), shifting the two-epoch window of masks forward as needed. */
export function markAnswered(chip: Chip, epoch: bigint, slot: number): void {
  shiftMasks(chip, epoch);
  const bit = 2 ** slot;
  if (epoch === chip.epoch) chip.answered = (chip.answered | bit) >>> 0;
  else if (epoch === chip.epoch - 1n) chip.prevAnswered = (chip.prevAnswered | bit) >>> 0;
}

/** Marks a challenge answered without credit (so it cannot be answered again), as markAnswered. */
export function markUncredited(chip: Chip, epoch: bigint, slot: number): void {
  shiftMasks(chip, epoch);
  const bit = 2 ** slot;
  if (epoch === chip.epoch) chip.uncredited = (chip.uncredited | bit) >>> 0;
  else if (epoch === chip.epoch - 1n) chip.prevUncredited = (chip.prevUncredited | bit) >>> 0;
}

// ---- Credit for answers carrying a TPM clock (tpm2): asleep or rebooted between challenges ----

/** The share of the elapsed block time a TPM's clock must show (tpmClockRequiredMs): 4/5. */
export const TPM_CLOCK_CREDIT_NUM = 4n;
export const TPM_CLOCK_CREDIT_DEN = 5n;

/**
 * CONSENSUS CHANGE (tpm2skew; docs/security-audit-time.md T1): the slack of the tpm2 credit rule,
 * W × the target block interval + 2D (D = MAX_BLOCK_TIME_DRIFT_MS). W intervals: the previous answer
 * may have been signed up to W blocks after its challenge. 2D: the two block times measured are
 * proposers' clocks, each of which consensus lets be up to D off the real time (the newer ahead,
 * the older behind: 2D more block time than real time). Without it one block stamped D ahead cost a
 * prompt always-on chip its answer wherever W × the interval is under 2D (200 ms blocks at W = 20).
 */
export function tpmCreditSlackMs(answerWindowBlocks: bigint, blockTimeMs: number): bigint {
  return answerWindowBlocks * BigInt(blockTimeMs) + 2n * BigInt(MAX_BLOCK_TIME_DRIFT_MS);
}

/**
 * The least TPM clock advance (ms) that credits an answer whose challenge block is `elapsedMs` of
 * block time after the reference (the previous accepted answer's challenge block, or the
 * registration's block): 4/5 of the elapsed block time, rounded up, minus `slackMs`
 * (tpmCreditSlackMs: W target block intervals for the previous answer's signing delay, and 2D for
 * the proposers' skew on the two block times).
 * 4/5: TPM 2.0 Library Part 1, clause 33.3.6, asks only that Clock's nominal rate be within 15% of
 * UTC's, so a conforming TPM may run at 85% of real time (9/10 failed such a chip's every answer
 * more than about 7 minutes after the one before, W = 20). 0 or less: any advance will do. Exact integers.
 */
export function tpmClockRequiredMs(elapsedMs: bigint, slackMs: bigint): bigint {
  const n = TPM_CLOCK_CREDIT_NUM * elapsedMs;
  // ceil(4E / 5) for any sign of E (BigInt division truncates towards zero).
  const ceil = n > 0n ? (n + TPM_CLOCK_CREDIT_DEN - 1n) / TPM_CLOCK_CREDIT_DEN : n / TPM_CLOCK_CREDIT_DEN;
  return ceil - slackMs;
}

export type TpmAnswerCredit = 'credited' | 'asleep' | 'rebooted';

/**
 * CONSENSUS: whether an answer carrying the TPM clock `next`, to a challenge of block time
 * `nextTime`, is credited, given the chip's reference clock `prev` at block time `prevTime`
 * (docs/poci.md, "Asleep between challenges"). `rebooted`: the TPM reset or restarted in between
 * (resetCount or restartCount changed: power lost, or a suspend and resume); `asleep`: same counts,
 * but the clock advanced less than tpmClockRequiredMs (the TPM did not run for most of the time).
 * A clock that went back is refused before this (checkTpmClockMonotonic); here it is only short.
 */
export function tpmAnswerCredit(
  prev: TpmClock,
  prevTime: bigint,
  next: TpmClock,
  nextTime: bigint,
  slackMs: bigint,
): TpmAnswerCredit {
  if (next.resetCount !== prev.resetCount || next.restartCount !== prev.restartCount) return 'rebooted';
  return next.clock - prev.clock >= tpmClockRequiredMs(nextTime - prevTime, slackMs) ? 'credited' : 'asleep';
}

/**
 * CONSENSUS (docs/poci.md, "Answers signed together"): tpmAnswerCredit for an answer that is not
 * the first of its chip in a heartbeat: measured against the chip's reference (`prev`, moved on by
 * the heartbeat's earlier answers), and if that finds it `asleep`, against `start`, the reference
 * the chip had before the heartbeat's first answer of it, over the longer span from `startTime`.
 * Answers signed together late in their windows show no clock between them, while their challenges
 * may be W blocks apart: more than the slack covers once blocks are slower than 1.25 × the target.
 * The second measure is exactly what the first gives the same quotes sent newest first (the older
 * answer, measured against the newer challenge's time, is then always credited), so it credits
 * nothing the order of a heartbeat's answers did not already allow.
 */
export function tpmBatchAnswerCredit(
  start: TpmClock,
  startTime: bigint,
  prev: TpmClock,
  prevTime: bigint,
  next: TpmClock,
  nextTime: bigint,
  slackMs: bigint,
): TpmAnswerCredit {
  const reason = tpmAnswerCredit(prev, prevTime, next, nextTime, slackMs);
  if (reason !== 'asleep') return reason;
  return tpmAnswerCredit(start, startTime, next, nextTime, slackMs) === 'credited' ? 'credited' : reason;
}

/**
 * Whether the chip has answered a challenge since it was (last) registered: registration resets
 * lastAnsweredAt to 0, and an accepted answer sets it to its block height (≥ 1).
 */
export function hasProvenOnline(chip: Chip): boolean {
  return chip.lastAnsweredAt > 0n;
}

/**
 * Proven online (docs/poci.md): the chip has answered a challenge of its current registration and
 * is online by the miss rule below. The one test that lets a chip count, for voting power and for
 * lease payment alike: by the miss rule alone a fresh registration is "online" until it has missed
 * K challenges (about K / S of an epoch) without ever showing that it exists beyond its evidence.
 */
export function isProvenOnline(
  chip: Chip,
  height: bigint,
  p: PociParams,
  challengesOf: ChallengeLookup,
  cls?: bigint,
): boolean {
  return hasProvenOnline(chip) && isOnline(chip, height, p, challengesOf, cls);
}

/** Online unless its last K challenges (whose windows closed) all went unanswered. */
export function isOnline(
  chip: Chip,
  height: bigint,
  p: PociParams,
  challengesOf: ChallengeLookup,
  cls?: bigint,
): boolean {
  return consecutiveMisses(chip, height, p, challengesOf, cls) < p.offlineAfterMisses;
}

/** Missed challenges since the newest answered one (or since registration), capped at K. */
export function consecutiveMisses(
  chip: Chip,
  height: bigint,
  p: PociParams,
  challengesOf: ChallengeLookup,
  cls: bigint = chipClass(chip.chipId, p),
): number {
  const after = chip.lastAnsweredSlot > 0n ? chip.lastAnsweredSlot : chip.registeredAt;
  return unansweredSlots(chip, after, height, p, challengesOf, p.offlineAfterMisses, cls).length;
}

/**
 * The heights that challenged class `cls` in `epoch`, as of the committed block `head`: the recorded
 * ones plus the head's own (it is recorded when the next block begins, and answerable in that block).
 * For readers (RPC, agents) that want to answer as early as possible.
 */
export function challengesAsOf(
  state: StateReader,
  epoch: bigint,
  cls: bigint,
  head: { height: bigint; beacon: Uint8Array },
  p: PociParams,
): bigint[] {
  const heights = [...getChallengeClass(state, epoch, cls).heights];
  const last = heights[heights.length - 1] ?? 0n;
  if (
    head.height > last &&
    head.height >= 1n &&
    epochOf(head.height, p) === epoch &&
    heights.length < MAX_CHALLENGES_PER_EPOCH &&
    blockChallengeClass(head.beacon, p) === cls
  ) {
    heights.push(head.height);
  }
  return heights;
}
