/**
 * How the agent gets a batch of challenge answers on chain (agent.ts sends them all in one
 * heartbeat transaction).
 *
 * A heartbeat is all or nothing (core's applyHeartbeat): one answer that fails sinks the others.
 * Anyone relaying the agent's transaction could copy one answer into a transaction of its own (only
 * the chip's owner may send it now, core's NOT_CHIP_OWNER); when that landed first the agent's
 * failed ANSWER_REPLAYED, and it fails when one chip of the batch was revoked, transferred away
 * or its window closed meanwhile. Waiting for the next tick to send the rest again lost
 * blocks the other answers may not have. So on a refusal the batch is rebuilt at once from the
 * chain's view: the answers it credits already (a copy counts for the chip all the same), those
 * that can no longer land (window closed, chip no longer active) and the one the refusal names are
 * dropped, the rest sent again.
 *
 * Heartbeats are fee-free and get a reserved quarter of each block (the node's Mempool.ordered);
 * enough answers pending against it can keep one out until its window closes. A fee is allowed on a
 * heartbeat, and one paying at least the minimum fee competes with paying transactions instead. So
 * an answer due within `urgentBlocks` whose fee-free sending did not get it in goes again with the
 * minimum fee, if that is within the operator's `maxFee` (0: never) and the balance.
 */
import {
  AttestationError,
  checkTpmClockMonotonic,
  fromHex,
  type HeartbeatAnswer,
  type HeartbeatEvidence,
  type Profile,
  ValidationError,
  verifyHeartbeat,
} from '@unc/core';
import type { AnswerRefJson, ChipJson } from '@unc/sdk';

export interface AnswerItem {
  chipIdHex: string;
  epoch: number;
  slot: number;
  /** The last height the answer can land at (slot height + answer window). */
  windowEnd: number;
  answer: HeartbeatAnswer;
  /** Sent before (this pass or an earlier one) without being included. */
  triedBefore: boolean;
}

/**
 * A send's outcome. A refusal's `answer` is the answer it names, structured (the node's
 * `error.data.answer`, a drop's `answer`): the reason's words are for people and may change.
 */
export type SendOutcome =
  | { ok: true; height: number }
  | { ok: false; reason: string; answer?: AnswerRefJson };

/** What `deliverAnswers` needs of the node and the owner's account. */
export interface HeartbeatPort {
  /** The latest height seen. */
  head(): number;
  /**
   * Sends one heartbeat of `answers` paying `fee`, and waits for its inclusion, no longer than
   * until the head reaches `waitUntil` (then: not ok, the transaction possibly still pending; a
   * send at the same nonce with a fee replaces it).
   */
  send(answers: HeartbeatAnswer[], fee: bigint, waitUntil: number): Promise<SendOutcome>;
  /** The chain's view of these chips now (null: not registered). */
  chips(ids: string[]): Promise<Map<string, ChipJson | null>>;
  /** The minimum fee of a heartbeat of these answers (paying that, it is no longer fee-free). */
  minimumFee(answers: HeartbeatAnswer[]): Promise<bigint>;
  /** The owner's spendable balance. */
  balance(): Promise<bigint>;
  /**
   * The sender's address, as the chip views write an owner: a chip the chain's view gives another
   * owner (transferred away meanwhile) can no longer land from it (core's NOT_CHIP_OWNER).
   */
  owner?: string;
}

export interface FeePolicy {
  /** The most one heartbeat may pay (0: always fee-free). */
  maxFee: bigint;
  /** An answer whose window closes within this many blocks is urgent. */
  urgentBlocks: number;
  /** What each chip may still spend on urgent fees this hour (none: only `maxFee` bounds them). */
  budget?: UrgentFeeBudget;
}

/** What one chip spent on urgent fees at one time of the agent's clock (ms): a budget's saved form. */
export interface UrgentFeeRecord {
  chipId: string;
  /** When it was spent, by the agent's wall clock (ms since the Unix epoch). */
  at: number;
  spent: bigint;
}

/** What a budget saves: each chip's spending in the window, and when a lost record was counted spent. */
export interface UrgentFeeState {
  records: UrgentFeeRecord[];
  /** Every chip's whole budget counts as spent at this time (the saved record was unreadable). */
  allSpentAt?: number;
}

/** Where a budget keeps its records across restarts (fee-budget-file.ts); `save` throws when it cannot. */
export interface UrgentFeeBudgetStore {
  save(state: UrgentFeeState): void;
}

/** The budget's window: what a chip spends counts against it for an hour of the agent's clock. */
export const URGENT_FEE_WINDOW_MS = 3_600_000;
/**
 * Charges within this long of a chip's latest record are added to it (its time moved to the later
 * charge, so each counts at least as long as it would alone): a chip keeps at most some 60 records.
 */
const MERGE_MS = 60_000;

/**
 * Urgent heartbeat fees per chip per hour of the agent's own clock. `maxFee` bounds one heartbeat
 * only: a node or proposer that holds back fee-free heartbeats (another key's copy of an answer is
 * refused, NOT_CHIP_OWNER, since only a chip's owner answers for it) makes every answer go
 * unincluded fee-free, turn urgent and be sent again paying — up to `maxFee` for each of a chip's
 * 96 answers a day. Each fee is charged, in
 * full and once per transaction, to every chip with an urgent answer it is paid for; a chip whose
 * spending in the last hour leaves too little for the fee gets no fee paid for it (its answer
 * still goes fee-free, and with another chip's that can pay). Charged when the paying transaction
 * is sent (it may land), so an attack can only use a budget up, never pass it.
 *
 * The wall clock, not the chain's epochs: this is the operator's spending limit, not a rule of the
 * chain, and the epochs were the node's word. A node that showed a made-up slot at a far epoch
 * beside a chip's real urgent one had both charged, the far epoch's charge pruned the real one's,
 * and the real answer, refused with the made-up one and sent again, paid again: some 4× the budget
 * each epoch. Nothing the node says touches this record. A record in the future (the clock was
 * set back) counts as spent now, for a whole window from now: setting the clock back never gives
 * a budget back early, and a record far in the future does not block a chip for ever.
 *
 * With a `store`, what was spent is saved before each paying send (`save`): kept in memory only,
 * a restart gave every chip its whole budget again, and an agent crash-looping (or restarted by
 * whoever can make it crash) paid it again each time. While a save fails, nothing more is paid
 * (left() is 0): a fee the record does not hold could be paid again after a restart.
 */
export class UrgentFeeBudget {
  /** Per chip: what it spent in the window, oldest first. */
  private readonly spent = new Map<string, { at: number; spent: bigint }[]>();
  /** Every chip's budget counts as spent from this time (a lost record), for one window. */
  private allSpentAt: number | null;
  /** The last save failed (the agent tries again each pass). */
  private failed = false;
  private readonly store?: UrgentFeeBudgetStore;
  private readonly now: () => number;
  readonly windowMs: number;

  constructor(
    readonly perChipPerWindow: bigint,
    opts: {
      store?: UrgentFeeBudgetStore;
      saved?: UrgentFeeState;
      /** The agent's clock (ms; default Date.now). */
      now?: () => number;
      windowMs?: number;
    } = {},
  ) {
    this.store = opts.store;
    this.now = opts.now ?? Date.now;
    this.windowMs = opts.windowMs ?? URGENT_FEE_WINDOW_MS;
    this.allSpentAt = opts.saved?.allSpentAt ?? null;
    for (const r of opts.saved?.records ?? []) {
      let list = this.spent.get(r.chipId);
      if (!list) this.spent.set(r.chipId, (list = []));
      list.push({ at: r.at, spent: r.spent });
    }
    for (const list of this.spent.values()) list.sort((a, b) => a.at - b.at);
    // A saved time past the clock counts from now, the time the clock reads at this start.
    this.settle();
  }

  /**
   * Drops what is older than the window, and brings what lies in the future back to now (the
   * clock went back: still spent, for a whole window from now). The time now.
   */
  private settle(): number {
    const now = this.now();
    const counts = (at: number) => at > now - this.windowMs;
    for (const [chipId, list] of this.spent) {
      for (const r of list) if (r.at > now) r.at = now;
      const kept = list.filter((r) => counts(r.at));
      if (kept.length === 0) this.spent.delete(chipId);
      else this.spent.set(chipId, kept);
    }
    if (this.allSpentAt !== null) {
      if (this.allSpentAt > now) this.allSpentAt = now;
      if (!counts(this.allSpentAt)) this.allSpentAt = null;
    }
    return now;
  }

  /** What the chip may still spend on urgent fees now. */
  left(chipIdHex: string): bigint {
    this.settle();
    if (this.failed || this.allSpentAt !== null) return 0n;
    let spent = 0n;
    for (const r of this.spent.get(chipIdHex) ?? []) spent += r.spent;
    const left = this.perChipPerWindow - spent;
    return left > 0n ? left : 0n;
  }

  /** Charges `fee` to the chip now. */
  charge(chipIdHex: string, fee: bigint): void {
    const now = this.settle();
    let list = this.spent.get(chipIdHex);
    if (!list) this.spent.set(chipIdHex, (list = []));
    const last = list[list.length - 1];
    if (last && now - last.at < MERGE_MS) {
      last.spent += fee;
      last.at = now;
    } else list.push({ at: now, spent: fee });
  }

  /** Whether the last save failed: nothing is paid until `save` succeeds. */
  get unsaved(): boolean {
    return this.failed;
  }

  /** What is spent in the window, as saved. */
  state(): UrgentFeeState {
    this.settle();
    const records = [...this.spent].flatMap(([chipId, list]) => list.map((r) => ({ chipId, ...r })));
    return this.allSpentAt === null ? { records } : { records, allSpentAt: this.allSpentAt };
  }

  /**
   * Saves what was spent (no store: nothing to do). Called before a paying send; false when the
   * store could not save, and the send then goes fee-free.
   */
  save(): boolean {
    if (!this.store) return true;
    try {
      this.store.save(this.state());
      this.failed = false;
      return true;
    } catch {
      this.failed = true;
      return false;
    }
  }
}

export interface Settled {
  item: AnswerItem;
  included: boolean;
  /** "included at H", or why it was dropped or failed. */
  result: string;
}

/** Sends in one pass, resends included; bounds what one refusal storm can cost. */
export const MAX_SENDS_PER_PASS = 4;

/**
 * Whether a refusal names this answer: by the structured `answer` it carries (core's
 * ValidationError.answer, passed on by the node), never by the message's words. Matching the text
 * turned this path off silently whenever core's wording changed (the batch then failed whole).
 */
export function refusalNames(named: AnswerRefJson | undefined, item: AnswerItem): boolean {
  return (
    named !== undefined &&
    named.chipId.toLowerCase() === item.chipIdHex.toLowerCase() &&
    named.epoch === item.epoch &&
    named.slot === item.slot
  );
}

/**
 * Splits a refused batch by the chain's view now: `keep` can still land and goes again; `done`
 * is settled (credited already, can no longer land, or named by the refusal).
 */
export function stillOpen(
  batch: readonly AnswerItem[],
  views: ReadonlyMap<string, ChipJson | null>,
  refusal: { reason: string; answer?: AnswerRefJson },
  /** The sender's address (HeartbeatPort.owner); none: the owner is not looked at. */
  owner?: string,
): { keep: AnswerItem[]; done: Settled[] } {
  const keep: AnswerItem[] = [];
  const done: Settled[] = [];
  for (const item of batch) {
    const view = views.get(item.chipIdHex);
    const slot = view?.slots.find((s) => s.epoch === item.epoch && s.slot === item.slot);
    let why: string | null = null;
    if (!view) why = 'chip not registered';
    else if (view.status !== 'active') why = `chip is ${view.status}: ${view.statusReason}`;
    // Every chip transferred away, not only the one the refusal names: a refusal names one answer,
    // so several chips sold at once would take a send each and outlast MAX_SENDS_PER_PASS, the
    // answers of the chips still owned failing with them.
    else if (owner !== undefined && view.owner !== owner && (view.heartbeatOperator ?? null) !== owner)
      why = `chip is owned by ${view.owner}, and its heartbeat operator is ${view.heartbeatOperator ?? 'none'}`;
    else if (!slot) why = 'slot no longer current';
    // Credited: by this agent's transaction after all, or by a copy of the answer in another's.
    else if (slot.status === 'answered') {
      done.push({ item, included: true, result: 'answered (credited on chain)' });
      continue;
    } else if (slot.status !== 'open') why = `slot ${slot.status}`;
    // Refused for this very answer (a bad signature the state cannot show, a copy still pending
    // elsewhere): the next pass answers it again if its slot is still open then.
    else if (refusalNames(refusal.answer, item)) why = `refused: ${refusal.reason}`;
    if (why === null) keep.push(item);
    else done.push({ item, included: false, result: why });
  }
  return { keep, done };
}

/**
 * Sends `items` in one heartbeat; on a refusal drops what the chain settled and sends the rest at
 * once, with a fee when one is due soon (see the file comment). At most MAX_SENDS_PER_PASS sends;
 * what is left then is reported failed and the next pass tries again while its window is open.
 */
export async function deliverAnswers(
  items: readonly AnswerItem[],
  port: HeartbeatPort,
  policy: FeePolicy,
): Promise<Settled[]> {
  const settled: Settled[] = [];
  let batch = [...items];
  for (let sends = 1; batch.length > 0; sends++) {
    const head = port.head();
    // An answer whose window closed by the head cannot land in the next block, and in the batch it
    // would sink every other answer (all or nothing): the pass's signing, or the wait of a send
    // before, can take blocks, so an answer listed open may have closed since.
    for (const item of batch)
      if (item.windowEnd <= head)
        settled.push({
          item,
          included: false,
          result: `slot missed: its window closed at height ${item.windowEnd}`,
        });
    batch = batch.filter((i) => i.windowEnd > head);
    if (batch.length === 0) break;
    const answers = batch.map((i) => i.answer);
    const isUrgent = (i: AnswerItem) => i.triedBefore && i.windowEnd - head <= policy.urgentBlocks;
    let fee = 0n;
    let canPay = false;
    let min = 0n;
    // Whether a fee of `min` may be paid for this answer: within its chip's budget for the hour.
    const budgetAllows = (i: AnswerItem) => !policy.budget || policy.budget.left(i.chipIdHex) >= min;
    let payers: AnswerItem[] = [];
    if (policy.maxFee > 0n) {
      min = await port.minimumFee(answers);
      canPay = min <= policy.maxFee && batch.some(budgetAllows) && (await port.balance()) >= min;
      payers = canPay ? batch.filter((i) => isUrgent(i) && budgetAllows(i)) : [];
      if (payers.length > 0) fee = min;
    }
    // Charged when sent (a paying transaction may land even if its wait fails), and saved first:
    // a fee the saved record does not hold would be paid again after a restart. Not saved: fee-free.
    // Once per chip: one fee, however many of the chip's answers it carries.
    if (fee > 0n && policy.budget) {
      for (const id of new Set(payers.map((i) => i.chipIdHex))) policy.budget.charge(id, fee);
      if (!policy.budget.save()) fee = 0n;
    }
    // A fee-free send that could still be bumped waits only until the answers turn urgent.
    const firstEnd = Math.min(...batch.map((i) => i.windowEnd));
    const waitUntil = fee === 0n && canPay ? Math.max(head + 1, firstEnd - policy.urgentBlocks) : firstEnd;
    const result = await port.send(answers, fee, waitUntil);
    if (result.ok) {
      for (const item of batch)
        settled.push({ item, included: true, result: `included at ${result.height}` });
      return settled;
    }
    for (const item of batch) item.triedBefore = true;
    const failAll = () => {
      for (const item of batch) settled.push({ item, included: false, result: result.reason });
    };
    if (sends >= MAX_SENDS_PER_PASS) {
      failAll();
      break;
    }
    const views = await port.chips([...new Set(batch.map((i) => i.chipIdHex))]);
    const { keep, done } = stillOpen(batch, views, result, port.owner);
    settled.push(...done);
    const bumpNow =
      fee === 0n &&
      canPay &&
      keep.some((i) => i.windowEnd - port.head() <= policy.urgentBlocks && budgetAllows(i));
    // Nothing settled and no fee to add: the same transaction again would fare the same.
    if (keep.length === batch.length && !bumpNow) {
      failAll();
      break;
    }
    batch = keep;
  }
  return settled;
}

/**
 * Throws the ValidationError the chain would give `evidence` of the chip `view` describes, for
 * `challenge` (wrong key or challenge, another profile, a TPM clock behind the one on chain by
 * core's checkTpmClockMonotonic), so a chip whose signer misbehaves (a TPM reset or swapped, a key
 * not the registered one) is left out of the batch instead of sinking every other chip's answer in
 * it: core names no chip for these refusals, so the batch could not be rebuilt without it. A view
 * without the key skips the check.
 */
export function checkOwnAnswer(view: ChipJson, challenge: Uint8Array, evidence: HeartbeatEvidence): void {
  if (view.keyMaterial === undefined) return;
  const keyMaterial = fromHex(view.keyMaterial);
  const { tpmClock } = verifyHeartbeat(
    { profile: view.profile as Profile, keyMaterial },
    evidence,
    challenge,
  );
  const prev = view.tpmClock;
  if (!tpmClock || !prev) return;
  // Core's own rule, not a copy of it: a copy had left out the restartCount going back within one
  // reset, which the chain refuses too, so such an answer stayed in the batch and sank the rest.
  try {
    checkTpmClockMonotonic({ ...prev, clock: BigInt(prev.clock) }, tpmClock);
  } catch (err) {
    if (err instanceof AttestationError)
      throw new ValidationError(
        'TPM_CLOCK_BACKWARDS',
        `the TPM clock is behind the one on chain: ${err.message}`,
      );
    throw err;
  }
}
