/**
 * The share of its challenges a chip answered, as the validator set weighs it (docs/consensus.md,
 * "Weight"): measured per seat window, and remembered through windows that measured nothing.
 *
 * Seat windows. The set of epoch b is computed at the end of epoch b−1, as of height start(b).
 * Its window b holds the challenges of the chip's class whose answer window closed since the
 * boundary before: heights s with start(b−1) ≤ s + W < start(b). The windows partition the
 * heights, so every challenge counts at exactly one boundary, the first after its deadline, and
 * whether it was answered or missed: those of an epoch's last W blocks, still open at its
 * boundary, count at the next one. Window b lies in epoch b−2 (its last W blocks, W < B) and
 * epoch b−1 (all but its last W), so the chip's answered masks (of epochs c−1 and c, c its newest
 * answered epoch; none answered after c) hold all of it for every b ≥ c + 1.
 *
 * Remembered share. A class may draw no challenge in a window (the draw is random, one class per
 * block from its beacon: (1 − 1/M)^B of windows, e^−S ≈ 2% at the defaults, whatever the number of
 * chips in the class). The chip is then weighed by the newest earlier window of its current
 * registration that counted a challenge, and by nothing if none did. Windows b ≥ c + 1 are read
 * from the masks; older ones are lost when an answer moves the masks to a newer epoch, so just
 * before that (rememberSeatShare, from applyHeartbeat) the newest of the windows about to be lost
 * that counted a challenge is kept, one record per chip (`0x10 0x07 ‖ chip id` → {credited,
 * counted}), dropped when the chip is deregistered or registered again.
 */
import { type Codec, decode, encode, struct, u8 } from '../encoding/codec.js';
import { creditedChallenges } from '../rewards/emission.js';
import { StateSpace } from '../state/accounts.js';
import type { StateOverlay, StateReader } from '../state/store.js';
import type { Chip } from './chips.js';
import {
  answeredMask,
  CHALLENGE_HISTORY_EPOCHS,
  type ChallengeLookup,
  epochStart,
  MAX_CHALLENGES_PER_EPOCH,
} from './liveness.js';
import type { PociParams } from './params.js';

/** A chip's answers in one seat window, after the rewards' grace: `credited` of `counted`. */
export interface SeatShare {
  credited: number;
  counted: number;
}

const seatShareCodec: Codec<SeatShare> = struct<SeatShare>('SeatShare', { credited: u8, counted: u8 });

/**
 * One search (a boundary's, or rememberSeatShare's) looks at most this many windows: a bound on
 * its work. Beyond it the chip counts as never measured (nothing), which needs that many windows
 * in a row without a challenge of its class (probability e^(−S·64)).
 */
export const SEAT_LOOKBACK_WINDOWS = CHALLENGE_HISTORY_EPOCHS;

type SeatParams = Pick<
  PociParams,
  'epochBlocks' | 'answerWindowBlocks' | 'slotsPerEpoch' | 'graceSlotsPerEpoch'
>;

/** `0x10 0x07 ‖ chip id`: beside the chip's other consensus records (0x05 tombstone, 0x06 past owners). */
export function seatShareKey(chipId: Uint8Array): Uint8Array {
  const k = new Uint8Array(2 + chipId.length);
  k[0] = StateSpace.validatorCandidate;
  k[1] = 0x07;
  k.set(chipId, 2);
  return k;
}

/** The remembered share of the chip's newest lost window that counted a challenge, or null. */
export function rememberedSeatShare(state: StateReader, chipId: Uint8Array): SeatShare | null {
  const raw = state.get(seatShareKey(chipId));
  return raw ? decode(seatShareCodec, raw) : null;
}

/** Forgets the chip's remembered share: at a deregistration, and a registration (a new record) starts with none. */
export function forgetSeatShare(state: StateOverlay, chipId: Uint8Array): void {
  state.set(seatShareKey(chipId), null);
}

/**
 * The chip's answers in seat window `b`, as its masks hold them (exact for b ≥ chip.epoch + 1,
 * see the module comment). Only challenges of its current registration count: none of an epoch
 * before its first.
 */
export function windowShare(
  chip: Chip,
  b: bigint,
  p: SeatParams,
  challengesOf: ChallengeLookup,
  cls: bigint,
): SeatShare {
  const from = epochStart(b - 1n, p) - p.answerWindowBlocks;
  const to = epochStart(b, p) - p.answerWindowBlocks;
  let answered = 0;
  let counted = 0;
  for (let e = b - 2n; e <= b - 1n; e++) {
    if (e < 0n || e < chip.firstEpoch) continue;
    const heights = challengesOf(e, cls);
    const mask = answeredMask(chip, e);
    // The codec caps a class's list at MAX_CHALLENGES_PER_EPOCH (the masks' width) already.
    const n = Math.min(heights.length, MAX_CHALLENGES_PER_EPOCH);
    for (let slot = 0; slot < n; slot++) {
      const s = heights[slot]!;
      if (s < from || s >= to || s <= chip.registeredAt) continue;
      counted++;
      if ((mask & (2 ** slot)) !== 0) answered++;
    }
  }
  return { credited: creditedChallenges(answered, counted, p), counted };
}

/**
 * The newest of windows `high` down to `low` that counted a challenge: its share; 'none' when none
 * did; 'unknown' when SEAT_LOOKBACK_WINDOWS were looked at without reaching `low`.
 */
function newestCounted(
  chip: Chip,
  high: bigint,
  low: bigint,
  p: SeatParams,
  challengesOf: ChallengeLookup,
  cls: bigint,
): SeatShare | 'none' | 'unknown' {
  for (let b = high; b >= low; b--) {
    if (high - b >= SEAT_LOOKBACK_WINDOWS) return 'unknown';
    const share = windowShare(chip, b, p, challengesOf, cls);
    if (share.counted > 0) return share;
  }
  return 'none';
}

/**
 * What the chip's seat is weighed by at boundary `b` (the set of epoch b, as of height start(b)):
 * its share of window b, or, if that counted no challenge, of the newest earlier window of its
 * current registration that did (read from the masks, or remembered); null when none did.
 * Windows of the registration are b ≥ firstEpoch + 1 (window firstEpoch + 1 is the first to hold
 * a challenge of epoch firstEpoch). Work: two class lists per window looked at, usually one window.
 */
export function chipSeatShare(
  state: StateReader,
  chip: Chip,
  b: bigint,
  p: SeatParams,
  challengesOf: ChallengeLookup,
  cls: bigint,
): SeatShare | null {
  const readable = chip.epoch + 1n > chip.firstEpoch + 1n ? chip.epoch + 1n : chip.firstEpoch + 1n;
  const found = newestCounted(chip, b, readable, p, challengesOf, cls);
  if (found === 'unknown') return null;
  if (found !== 'none') return found;
  return rememberedSeatShare(state, chip.chipId);
}

/**
 * Called by an answer of epoch `next` > chip.epoch, credited or not (markAnswered and markUncredited
 * both move the masks), before it moves the chip's masks there: windows
 * chip.epoch + 1 … next (all closed by now: next's began at start(next)) can no longer be read from
 * the masks afterwards. The newest of them that counted a challenge becomes the remembered share
 * (written only when its ratio changes, so an always-online chip writes it once); if none did, the
 * remembered one (older) stays; if the search bound was reached, it is forgotten.
 */
export function rememberSeatShare(
  state: StateOverlay,
  chip: Chip,
  next: bigint,
  p: SeatParams,
  challengesOf: ChallengeLookup,
  cls: bigint,
): void {
  const low = chip.epoch + 1n > chip.firstEpoch + 1n ? chip.epoch + 1n : chip.firstEpoch + 1n;
  if (next < low) return;
  const found = newestCounted(chip, next, low, p, challengesOf, cls);
  if (found === 'none') return;
  if (found === 'unknown') {
    forgetSeatShare(state, chip.chipId);
    return;
  }
  const old = rememberedSeatShare(state, chip.chipId);
  if (old && old.credited * found.counted === found.credited * old.counted) return;
  state.set(seatShareKey(chip.chipId), encode(seatShareCodec, found));
}
