/**
 * Emission and rewards (PROTOCOL.md §5).
 *
 * Emission is defined by chain time: period k (of `halvingPeriodMs`, 2 years by default) may mint
 * floor(reserve / 2^(k+1)), spread linearly over the period, so the cumulative allowance E(t) is a
 * pure integer function of the time since genesis and never reaches the 97% reserve. An epoch's
 * budget is E(its end) − what earlier epochs were allotted, so slow or fast blocks change nothing
 * per hour, and an epoch nobody earned in carries its budget into the next.
 *
 * A chip's weight in an epoch is power × credited slots, credited = min(S, answered + grace) when it
 * answered at least one slot (a chip that was off all epoch gets no grace). Weights are added to the
 * epoch's total as answers arrive (O(1) per answer). Once the epoch is final, each chip is paid when
 * it is next touched (its next answer, or a claim): remainingBudget × w / remainingWeight, and both
 * shrink, so the last chip takes exactly what is left. Payment is auto-credited to the owner.
 */
import { type Codec, decode, encode, struct, u64, u128 } from '../encoding/codec.js';
import type { Chip } from '../poci/chips.js';
import { type EpochRecord, getEpochRecord, putEpochRecord } from '../poci/liveness.js';
import type { PociParams } from '../poci/params.js';
import { getAccount, putAccount, StateSpace } from '../state/accounts.js';
import type { StateOverlay, StateReader } from '../state/store.js';
import { getSupply, putSupply } from '../state/supply.js';

/** Two years of 365.25 days, in milliseconds. */
export const DEFAULT_HALVING_PERIOD_MS = 63_115_200_000n;

export interface EmissionState {
  genesisTime: bigint;
  halvingPeriodMs: bigint;
  /** Sum of the budgets of final epochs that had weight (what E(t) has handed out so far). */
  allocated: bigint;
}

export const emissionStateCodec: Codec<EmissionState> = struct<EmissionState>('EmissionState', {
  genesisTime: u64,
  halvingPeriodMs: u64,
  allocated: u128,
});

export const EMISSION_KEY = new Uint8Array([StateSpace.system, 0x05]);

export function getEmission(state: StateReader): EmissionState {
  const raw = state.get(EMISSION_KEY);
  if (!raw) throw new Error('state has no emission record (not initialised from a genesis)');
  return decode(emissionStateCodec, raw);
}

export function putEmission(state: StateOverlay, e: EmissionState): void {
  state.set(EMISSION_KEY, encode(emissionStateCodec, e));
}

/** E(t): how much mining may have minted in total after `elapsedMs` of chain time. */
export function cumulativeEmission(reserve: bigint, halvingPeriodMs: bigint, elapsedMs: bigint): bigint {
  if (elapsedMs <= 0n) return 0n;
  const periods = elapsedMs / halvingPeriodMs;
  let total = 0n;
  let k = 0n;
  for (; k < periods; k++) {
    const part = reserve >> (k + 1n);
    if (part === 0n) return total;
    total += part;
  }
  const part = reserve >> (k + 1n);
  return total + (part * (elapsedMs % halvingPeriodMs)) / halvingPeriodMs;
}

/** Slots a chip is credited with in an epoch, after the grace budget. */
export function creditedSlots(
  answered: number,
  p: Pick<PociParams, 'slotsPerEpoch' | 'graceSlotsPerEpoch'>,
): number {
  if (answered <= 0) return 0;
  return Math.min(p.slotsPerEpoch, answered + p.graceSlotsPerEpoch);
}

export function popcount(mask: number): number {
  let n = 0;
  for (let m = mask; m; m &= m - 1) n++;
  return n;
}

/** The weight a chip's answered-slot mask is worth in an epoch. */
export function chipWeight(power: bigint, mask: number, p: PociParams): bigint {
  return power * BigInt(creditedSlots(popcount(mask), p));
}

/** O(1): an answer that raised a chip's credited slots adds the difference to the epoch total. */
export function addAnswerWeight(
  state: StateOverlay,
  epoch: bigint,
  power: bigint,
  maskBefore: number,
  maskAfter: number,
  p: PociParams,
): void {
  const delta = chipWeight(power, maskAfter, p) - chipWeight(power, maskBefore, p);
  if (delta === 0n) return;
  const r = getEpochRecord(state, epoch);
  if (!r) throw new Error(`epoch ${epoch} has no record`);
  r.totalWeight += delta;
  r.remainingWeight += delta;
  putEpochRecord(state, r);
}

/**
 * O(1) per block: at the first height after epoch e's last answer window closed, fix its budget
 * from chain time. Called from the block's opening bookkeeping.
 */
export function finalizeEpochIfDue(state: StateOverlay, height: bigint, p: PociParams): EpochRecord | null {
  // Epoch e is final from height start(e+1) + W + 1 on (answers for e's last slots are all in).
  if (height <= p.epochBlocks) return null;
  const offset = (height - 1n) % p.epochBlocks;
  if (offset !== p.answerWindowBlocks + 1n) return null;
  const next = (height - 1n) / p.epochBlocks;
  const epoch = next - 1n;
  const r = getEpochRecord(state, epoch);
  const nextRecord = getEpochRecord(state, next);
  if (!r || !nextRecord || r.final) return null;
  const e = getEmission(state);
  const supply = getSupply(state);
  const allowance = cumulativeEmission(
    supply.miningReserve,
    e.halvingPeriodMs,
    nextRecord.startTime - e.genesisTime,
  );
  r.final = true;
  if (r.totalWeight > 0n) {
    r.budget = allowance - e.allocated;
    r.remainingBudget = r.budget;
    putEmission(state, { ...e, allocated: allowance });
  }
  putEpochRecord(state, r);
  return r;
}

export interface RewardPaid {
  epoch: bigint;
  answered: number;
  credited: number;
  weight: bigint;
  budget: bigint;
  totalWeight: bigint;
  amount: bigint;
}

/**
 * Pays the chip for its final, unpaid epochs among the two whose masks it holds, oldest first.
 * O(1). Returns what was paid, for events.
 */
export function settleChipRewards(state: StateOverlay, chip: Chip, p: PociParams): RewardPaid[] {
  const paid: RewardPaid[] = [];
  for (const [epoch, mask] of [
    [chip.epoch - 1n, chip.prevAnswered],
    [chip.epoch, chip.answered],
  ] as [bigint, number][]) {
    if (epoch < 0n || epoch < chip.firstEpoch || epoch < chip.rewardedThrough) continue;
    const r = getEpochRecord(state, epoch);
    if (!r?.final) break;
    const weight = chipWeight(chip.power, mask, p);
    let amount = 0n;
    if (weight > 0n && r.remainingWeight > 0n) {
      amount =
        weight >= r.remainingWeight ? r.remainingBudget : (r.remainingBudget * weight) / r.remainingWeight;
      r.remainingBudget -= amount;
      r.remainingWeight -= weight;
      putEpochRecord(state, r);
      const owner = getAccount(state, chip.owner);
      owner.balance += amount;
      putAccount(state, chip.owner, owner);
      const supply = getSupply(state);
      supply.minted += amount;
      putSupply(state, supply);
      chip.rewardsEarned += amount;
    }
    chip.rewardedThrough = epoch + 1n;
    if (weight > 0n) {
      const answered = popcount(mask);
      paid.push({
        epoch,
        answered,
        credited: creditedSlots(answered, p),
        weight,
        budget: r.budget,
        totalWeight: r.totalWeight,
        amount,
      });
    }
  }
  return paid;
}
