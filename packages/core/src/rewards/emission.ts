/**
 * Emission and rewards (PROTOCOL.md §5).
 *
 * Emission is defined by chain time: period k (of `halvingPeriodMs`, 2 years by default) may mint
 * floor(reserve / 2^(k+1)), spread linearly over the period, so the cumulative allowance E(t) is a
 * pure integer function of the time since genesis and never reaches the 97% reserve. An epoch's
 * budget is its own span of the schedule, E(its end) − E(its start) (its start: its first block's
 * time), so slow or fast blocks change nothing per hour. Emission of time no epoch with weight
 * spans is never minted: the time before block 1 (a genesis dated before the launch), and an epoch
 * nobody earned in (its budget is not carried into the next: docs/security-audit-time.md T2).
 *
 * A chip's weight in an epoch is power × credited / challenged (scaled to an integer): its uptime as
 * measured by the challenges its class drew, after the grace budget. The epoch's total is kept per
 * class (power of its chips by number of answers), so it follows both each answer and each new
 * challenge in O(1). Once the epoch is final, each chip is paid when
 * it is next touched (its next answer, or a claim): remainingBudget × w / remainingWeight, and both
 * shrink, so the last chip takes exactly what is left. Payment is auto-credited to the owner.
 */
import { type Codec, decode, encode, struct, u64, u128 } from '../encoding/codec.js';
import type { Chip } from '../poci/chips.js';
import {
  blockChallengeClass,
  type ChallengeClassRecord,
  challengeClassCodec,
  challengeClasses,
  challengeClassKey,
  chipClass,
  EPOCH_KEEP_EPOCHS,
  type EpochRecord,
  epochKey,
  epochOf,
  epochPruned,
  getChallengeClass,
  getEpochPruneCursor,
  getEpochRecord,
  MAX_CHALLENGES_PER_EPOCH,
  putChallengeClass,
  putEpochPruneCursor,
  putEpochRecord,
} from '../poci/liveness.js';
import type { PociParams } from '../poci/params.js';
import { getAccount, putAccount, StateSpace } from '../state/accounts.js';
import type { StateOverlay, StateReader } from '../state/store.js';
import { getSupply, putSupply } from '../state/supply.js';

/** Two years of 365.25 days, in milliseconds. */
export const DEFAULT_HALVING_PERIOD_MS = 63_115_200_000n;

export interface EmissionState {
  genesisTime: bigint;
  halvingPeriodMs: bigint;
  /** Sum of the budgets of final epochs that had weight (what the schedule has handed out so far;
   *  at most E(start of the newest final epoch's successor), less when an epoch had no weight). */
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

/**
 * What the schedule emits between chain times `from` and `to` (ms; `to` ≥ `from`): E(to − genesis)
 * − E(from − genesis). An epoch's budget is its own span of it (`finalizeEpochIfDue`).
 */
export function scheduledEmission(
  reserve: bigint,
  e: Pick<EmissionState, 'genesisTime' | 'halvingPeriodMs'>,
  from: bigint,
  to: bigint,
): bigint {
  const at = (t: bigint) => cumulativeEmission(reserve, e.halvingPeriodMs, t - e.genesisTime);
  return at(to) - at(from);
}

/** lcm(1, …, 32): SCALE / n is an integer for every count n of challenges a class can draw. */
export const UPTIME_SCALE: bigint = (() => {
  const gcd = (x: bigint, y: bigint): bigint => (y === 0n ? x : gcd(y, x % y));
  let l = 1n;
  for (let n = 2n; n <= BigInt(MAX_CHALLENGES_PER_EPOCH); n++) l = (l * n) / gcd(l, n);
  return l;
})();

/**
 * Challenges a chip is credited with in an epoch, after the grace budget: its answers, or all n
 * challenges when it answered at least S of them and missed at most G = `graceSlotsPerEpoch`. The
 * grace thus only ever forgives a short gap of a chip that was otherwise up (a restart), never lifts
 * a chip that was mostly off: it needs S answers first (docs/poci.md has its effect on pay).
 */
export function creditedChallenges(
  answered: number,
  challenged: number,
  p: Pick<PociParams, 'slotsPerEpoch' | 'graceSlotsPerEpoch'>,
): number {
  if (answered <= 0 || challenged <= 0) return 0;
  if (answered >= p.slotsPerEpoch && challenged - answered <= p.graceSlotsPerEpoch) return challenged;
  return answered;
}

export function popcount(mask: number): number {
  let n = 0;
  for (let m = mask >>> 0; m; m = (m & (m - 1)) >>> 0) n++;
  return n;
}

/**
 * A chip's weight in an epoch: power × credited / challenged, scaled to an integer. A chip that
 * answered every challenge weighs exactly power × UPTIME_SCALE however many challenges its class
 * drew; a chip whose class drew none in the epoch was not measured and weighs nothing (the epoch's
 * budget goes to the chips that were measured).
 */
export function chipWeight(
  power: bigint,
  answered: number,
  challenged: number,
  p: Pick<PociParams, 'slotsPerEpoch' | 'graceSlotsPerEpoch'>,
): bigint {
  if (challenged <= 0) return 0n;
  return power * BigInt(creditedChallenges(answered, challenged, p)) * (UPTIME_SCALE / BigInt(challenged));
}

/** The class's part of the epoch total: exactly the sum of its chips' chipWeight. */
export function classWeight(
  r: ChallengeClassRecord,
  p: Pick<PociParams, 'slotsPerEpoch' | 'graceSlotsPerEpoch'>,
): bigint {
  let w = 0n;
  r.powerByAnswered.forEach((power, i) => {
    if (power > 0n) w += chipWeight(power, i + 1, r.heights.length, p);
  });
  return w;
}

/**
 * Writes the class record and moves the epoch total by the change of the class's weight. O(1).
 * With `held`, both records stay in it and are written when it is flushed.
 */
function reweighClass(
  state: StateOverlay,
  epoch: bigint,
  cls: bigint,
  r: ChallengeClassRecord,
  p: PociParams,
  epochs?: EpochRecordsRead,
  held?: HeldRecords,
): void {
  const weight = classWeight(r, p);
  const delta = weight - r.weight;
  r.weight = weight;
  if (held) held.classChanged(epoch, cls, r);
  else putChallengeClass(state, epoch, cls, r);
  if (delta === 0n) return;
  let e = epochs?.get(epoch);
  if (!e) {
    e = getEpochRecord(state, epoch) ?? undefined;
    if (e && held) held.epochs.set(epoch, e);
  }
  if (!e) throw new Error(`epoch ${epoch} has no record`);
  e.totalWeight += delta;
  e.remainingWeight += delta;
  if (held) held.epochChanged(e);
  else putEpochRecord(state, e);
}

/**
 * The (epoch, class) and epoch records one heartbeat action's answers read and change, decoded
 * once and written once when the action ends (`flush`) instead of decoded and re-encoded at every
 * answer: the answers of an action are usually a whole class answering one challenge, and each
 * rewrote the same two records. Whoever reads those records during the action must read them
 * here (`classRecord`, and `epochs` for the epoch records: the settlement and the reweighing do);
 * the values written at the end are those the answer-by-answer writes ended with. An action that
 * throws is discarded with its transaction's overlay, so nothing is lost by not flushing then.
 */
export class HeldRecords {
  /** Epoch records as read in this action, changes included. */
  readonly epochs: EpochRecordsRead = new Map();
  private readonly classes = new Map<string, { epoch: bigint; cls: bigint; r: ChallengeClassRecord }>();
  private readonly changedClasses = new Set<string>();
  private readonly changedEpochs = new Set<bigint>();

  /** The (epoch, class) record as it stands, this action's changes included. */
  classRecord(state: StateReader, epoch: bigint, cls: bigint): ChallengeClassRecord {
    const id = `${epoch}/${cls}`;
    let held = this.classes.get(id);
    if (!held) {
      held = { epoch, cls, r: getChallengeClass(state, epoch, cls) };
      this.classes.set(id, held);
    }
    return held.r;
  }

  classChanged(epoch: bigint, cls: bigint, r: ChallengeClassRecord): void {
    const id = `${epoch}/${cls}`;
    const held = this.classes.get(id);
    if (held && held.r !== r) throw new Error(`class record ${id} changed through another copy`);
    if (!held) this.classes.set(id, { epoch, cls, r });
    this.changedClasses.add(id);
  }

  epochChanged(e: EpochRecord): void {
    if (this.epochs.get(e.epoch) !== e)
      throw new Error(`epoch record ${e.epoch} changed outside the action's copy`);
    this.changedEpochs.add(e.epoch);
  }

  /** Writes every changed record (the order does not matter: an overlay's changes are sorted). */
  flush(state: StateOverlay): void {
    for (const id of this.changedClasses) {
      const { epoch, cls, r } = this.classes.get(id)!;
      putChallengeClass(state, epoch, cls, r);
    }
    for (const epoch of this.changedEpochs) putEpochRecord(state, this.epochs.get(epoch)!);
    this.changedClasses.clear();
    this.changedEpochs.clear();
  }
}

/**
 * O(1) per block: block h (its beacon known from the next block on) challenges one class; its height
 * joins the class's list for h's epoch, and the class's weight follows the new count.
 */
export function recordBlockChallenge(
  state: StateOverlay,
  height: bigint,
  beacon: Uint8Array,
  p: PociParams,
): { epoch: bigint; cls: bigint } | null {
  const epoch = epochOf(height, p);
  const cls = blockChallengeClass(beacon, p);
  const r = getChallengeClass(state, epoch, cls);
  if (r.heights.length >= MAX_CHALLENGES_PER_EPOCH) return null;
  r.heights.push(height);
  reweighClass(state, epoch, cls, r, p);
  return { epoch, cls };
}

/**
 * Epoch records as one answer's settlement read them (and wrote back whatever it changed), for the
 * reweighing that follows in the same answer: the record was decoded twice per answer before. Only
 * valid while nothing else writes those records, i.e. within one answer (poci/execute.ts).
 */
export type EpochRecordsRead = Map<bigint, EpochRecord>;

/**
 * O(1) per answer: the chip's answers in the epoch went from `answeredBefore` to one more. `record`:
 * the (epoch, class) record as it is in `state` now, when the caller has just read it (it is updated
 * and written back).
 */
export function addAnswerWeight(
  state: StateOverlay,
  epoch: bigint,
  cls: bigint,
  power: bigint,
  answeredBefore: number,
  p: PociParams,
  record: ChallengeClassRecord = getChallengeClass(state, epoch, cls),
  epochs?: EpochRecordsRead,
  held?: HeldRecords,
): void {
  const r = record;
  while (r.powerByAnswered.length <= answeredBefore) r.powerByAnswered.push(0n);
  if (answeredBefore > 0) r.powerByAnswered[answeredBefore - 1]! -= power;
  r.powerByAnswered[answeredBefore]! += power;
  reweighClass(state, epoch, cls, r, p, held ? held.epochs : epochs, held);
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
  const reserve = getSupply(state).miningReserve;
  r.final = true;
  if (r.totalWeight > 0n) {
    // CONSENSUS CHANGE (docs/security-audit-time.md T2): the epoch's own span of the schedule,
    // E(its end) − E(its start), and nothing from before it. Block times strictly increase, so the
    // budget is ≥ 0; the spans of consecutive epochs telescope, so a chain with weight in every
    // epoch is allotted exactly E(start of e+1) − E(block 1's time), to the base unit.
    r.budget = scheduledEmission(reserve, e, r.startTime, nextRecord.startTime);
    r.remainingBudget = r.budget;
    putEmission(state, { ...e, allocated: e.allocated + r.budget });
  }
  putEpochRecord(state, r);
  return r;
}

export interface RewardPaid {
  epoch: bigint;
  answered: number;
  /** Challenges the chip's class drew in the epoch. */
  challenged: number;
  credited: number;
  /** The chip's rated power in the epoch (what its answers there weighed). */
  power: bigint;
  weight: bigint;
  budget: bigint;
  totalWeight: bigint;
  amount: bigint;
}

/**
 * Pays the chip for its final, unpaid epochs among the two whose masks it holds, oldest first.
 * O(1). Returns what was paid, for events.
 */
export function settleChipRewards(
  state: StateOverlay,
  chip: Chip,
  p: PociParams,
  cls: bigint = chipClass(chip.chipId, p),
  epochsRead?: EpochRecordsRead,
): RewardPaid[] {
  const paid: RewardPaid[] = [];
  for (const [epoch, mask] of [
    [chip.epoch - 1n, chip.prevAnswered],
    [chip.epoch, chip.answered],
  ] as [bigint, number][]) {
    if (epoch < 0n || epoch < chip.firstEpoch || epoch < chip.rewardedThrough) continue;
    // A record already read for this answer (or, with HeldRecords, this action) is the current one.
    const r = epochsRead?.get(epoch) ?? getEpochRecord(state, epoch);
    // The object is the record as it is in `state` from here on: changes below are written back.
    if (r) epochsRead?.set(epoch, r);
    if (!r && epochPruned(state, epoch)) {
      // Pruned once every weight in it was paid (pruneEpochs): the chip's weight in it was 0, as
      // its record would have said; nothing to pay, and its later epoch is paid as before.
      chip.rewardedThrough = epoch + 1n;
      continue;
    }
    if (!r?.final) break;
    const answered = popcount(mask);
    const classRecord = answered > 0 ? getChallengeClass(state, epoch, cls) : null;
    const challenged = classRecord ? classRecord.heights.length : 0;
    // The power its answers in that epoch were weighed at (Chip.power / prevPower), as its class's
    // buckets hold it: a model change since reaches only later epochs.
    const power = epoch === chip.epoch ? chip.power : chip.prevPower;
    const weight = chipWeight(power, answered, challenged, p);
    let amount = 0n;
    if (classRecord && weight > 0n && r.remainingWeight > 0n) {
      amount =
        weight >= r.remainingWeight ? r.remainingBudget : (r.remainingBudget * weight) / r.remainingWeight;
      r.remainingBudget -= amount;
      r.remainingWeight -= weight;
      // CONSENSUS CHANGE (docs/poci.md "Old epochs are pruned"): once final, a class's `weight` is
      // what its chips have left to be paid (no answer reweighs it any more), as `remainingWeight`
      // is the epoch's. An epoch the pruning passed by while it still owed (pruneEpochs) loses the
      // class once nothing in it is owed and its record once nothing in it is: no reward read
      // opens either after that (a class only for a chip of weight in it; a pruned epoch skipped).
      // (Never below 0: the class's chips' weights add up to it, so it reaches 0 exactly.)
      classRecord.weight = classRecord.weight > weight ? classRecord.weight - weight : 0n;
      // A class the pruning already looked at (its epoch part way too: the rest of that epoch,
      // record included, is the pruning's to take once nothing in it is owed).
      const cursor = getEpochPruneCursor(state);
      const classPassed = epoch < cursor.epoch || (epoch === cursor.epoch && cls < cursor.cls);
      if (classPassed && classRecord.weight <= 0n) state.set(challengeClassKey(epoch, cls), null);
      else putChallengeClass(state, epoch, cls, classRecord);
      if (epoch < cursor.epoch && r.remainingWeight <= 0n) {
        state.set(epochKey(epoch), null);
        epochsRead?.delete(epoch);
      } else putEpochRecord(state, r);
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
      paid.push({
        epoch,
        answered,
        challenged,
        credited: creditedChallenges(answered, challenged, p),
        power,
        weight,
        budget: r.budget,
        totalWeight: r.totalWeight,
        amount,
      });
    }
  }
  return paid;
}

/**
 * The most units of pruning work one block does (one per class record looked at, one per epoch
 * record): an epoch's classes (epochBlocks / slotsPerEpoch, 900 at defaults) are gone within 4
 * blocks, well within the epoch's own blocks, so the pruning keeps up with the chain.
 */
export const EPOCH_PRUNE_PER_BLOCK = 256;

/**
 * CONSENSUS CHANGE (docs/poci.md "Old epochs are pruned"): removes the record of an old epoch, and
 * its class records, once no reader needs them. Epochs are taken in order, at most
 * `EPOCH_KEEP_EPOCHS` behind the current one: an epoch whose record is final and has no weight left
 * to pay (`remainingWeight` 0: every chip with a weight in it was paid, or it had none) loses its
 * class records, class by class in ascending order, then its record. One still owing a chip its
 * reward (a chip that earned and was not touched since) keeps its record and the classes that
 * still carry weight (a final class's `weight` is its chips' unpaid weight, settleChipRewards), and
 * loses the weightless ones (nothing in them owed, so no reward read opens them: settleChipRewards
 * reads a class only for an unpaid chip that answered, whose weight is in it); the pruning then
 * moves past it, and that epoch's later payouts remove each class, then the record, once nothing in
 * it is owed. Without that, one chip that earned and went silent for good (a dead machine) pinned
 * all of its epoch's ~900 class records for ever. Readers: liveness, seat
 * shares and leases read classes of the last 66 epochs only; rewards read an epoch's record and,
 * for a chip that answered in it, its class, and a pruned epoch is one where every such chip's
 * weight is 0 either way (settleChipRewards); the RPC answers `pruned`.
 */
export function pruneEpochs(
  state: StateOverlay,
  height: bigint,
  p: PociParams,
  budget = EPOCH_PRUNE_PER_BLOCK,
): number {
  const current = epochOf(height, p);
  if (current < EPOCH_KEEP_EPOCHS) return 0;
  const c = getEpochPruneCursor(state);
  const classes = challengeClasses(p);
  const start = { ...c };
  let left = budget;
  let removed = 0;
  while (left > 0 && c.epoch + EPOCH_KEEP_EPOCHS <= current) {
    // Read again when a block resumes an epoch part way (its record is not changed by then).
    const r = getEpochRecord(state, c.epoch);
    if (c.cls === 0n) {
      left--;
      if (r && !r.final) {
        c.epoch++;
        continue;
      }
    }
    const owing = r !== null && r.remainingWeight !== 0n;
    while (left > 0 && c.cls < classes) {
      const key = challengeClassKey(c.epoch, c.cls);
      const raw = state.get(key);
      if (raw !== undefined && (!owing || decode(challengeClassCodec, raw).weight === 0n)) {
        state.set(key, null);
        removed++;
      }
      c.cls++;
      left--;
    }
    if (c.cls < classes) break;
    if (!owing && state.get(epochKey(c.epoch)) !== undefined) {
      state.set(epochKey(c.epoch), null);
      removed++;
    }
    c.epoch++;
    c.cls = 0n;
  }
  if (c.epoch !== start.epoch || c.cls !== start.cls) putEpochPruneCursor(state, c);
  return removed;
}
