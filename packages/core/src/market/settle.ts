/**
 * Lease accounting (PROTOCOL.md §8). Cost accrues by block time; the renter pays only the share of
 * it that matches the chip's answered challenge slots (and nothing for a period without a decided
 * slot unless the chip is proven online), and gets the rest back. Every movement is
 * exact integer arithmetic, and for every lease deposited = paid + refunded + remaining.
 */
import { equalBytes } from '../bytes.js';
import { type Chip, effectiveStatus, getChip } from '../poci/chips.js';
import {
  answeredIn,
  type ChallengeLookup,
  chipClass,
  epochOf,
  isProvenOnline,
  uncreditedIn,
} from '../poci/liveness.js';
import type { PociParams } from '../poci/params.js';
import { getAccount, putAccount } from '../state/accounts.js';
import type { StateOverlay } from '../state/store.js';
import { getMarketParams } from './params.js';
import {
  activeLeases,
  dropLeaseEnd,
  getChipMarket,
  getHeldTally,
  getProviderRecord,
  type Lease,
  LeaseStatus,
  listRemove,
  putChipMarket,
  putHeldTally,
  putLease,
  putProviderRecord,
  queueHeldChallenge,
  scheduleMarkPrune,
} from './state.js';

export const HOUR_MS = 3_600_000n;

export interface MarketContext {
  chainId: string;
  height: bigint;
  time: bigint;
}

export type MarketEvent =
  | { type: 'offerCreated'; offerId: Uint8Array; provider: Uint8Array; pricePerHour: bigint; chips: number }
  | { type: 'offerClosed'; offerId: Uint8Array; provider: Uint8Array; closesAt: bigint }
  | { type: 'offerChipWithdrawn'; offerId: Uint8Array; chipId: Uint8Array; provider: Uint8Array }
  | {
      type: 'leaseOpened';
      leaseId: Uint8Array;
      offerId: Uint8Array;
      chipId: Uint8Array;
      provider: Uint8Array;
      renter: Uint8Array;
      deposit: bigint;
      endTime: bigint;
    }
  | { type: 'leaseToppedUp'; leaseId: Uint8Array; renter: Uint8Array; amount: bigint; remaining: bigint }
  | { type: 'leaseClosing'; leaseId: Uint8Array; chipId: Uint8Array; endTime: bigint; reason: string }
  | {
      type: 'leaseSettled';
      leaseId: Uint8Array;
      chipId: Uint8Array;
      fromTime: bigint;
      toTime: bigint;
      cost: bigint;
      paid: bigint;
      refunded: bigint;
      answered: number;
      missed: number;
      remaining: bigint;
    }
  | {
      type: 'leaseClosed';
      leaseId: Uint8Array;
      chipId: Uint8Array;
      reason: string;
      /** The unused escrow returned at close. */
      returned: bigint;
      paid: bigint;
      refunded: bigint;
    }
  | {
      type: 'receiptPosted';
      leaseId: Uint8Array;
      chipId: Uint8Array;
      provider: Uint8Array;
      jobId: Uint8Array;
      rating: number;
    }
  | {
      type: 'disputeRecorded';
      leaseId: Uint8Array;
      chipId: Uint8Array;
      provider: Uint8Array;
      requestHash: Uint8Array;
      reason: string;
    };

/**
 * Cost of a lease from its start to `t`, floored once: each settlement charges the difference of
 * two of these, so the sum over any sequence of settlements equals the cost of the whole span.
 */
export function costThrough(pricePerHour: bigint, startTime: bigint, t: bigint): bigint {
  return t <= startTime ? 0n : (pricePerHour * (t - startTime)) / HOUR_MS;
}

/**
 * The block time at which the lease's escrow is exhausted: the first t at which the cost since the
 * start reaches everything deposited, price × (t − start) / HOUR ≥ deposited. A pure function of
 * the lease record, so every reader (the RPC, the provider, the settlement) computes the same
 * moment. Top-ups move it later. (While a lease is open, deposited = accrued + remaining.)
 */
export function escrowUntil(lease: Pick<Lease, 'startTime' | 'pricePerHour' | 'deposited'>): bigint {
  return lease.startTime + (lease.deposited * HOUR_MS + lease.pricePerHour - 1n) / lease.pricePerHour;
}

/** The moment a lease ends: its end time or the exhaustion of its escrow, whichever comes first. */
export function leaseEndsAt(
  lease: Pick<Lease, 'startTime' | 'pricePerHour' | 'deposited' | 'endTime'>,
): bigint {
  const e = escrowUntil(lease);
  return e < lease.endTime ? e : lease.endTime;
}

/** Whether the lease is over at block time `time` (closed, or past its end): no job is served. */
export function leaseOver(lease: Lease, time: bigint): boolean {
  return lease.status === LeaseStatus.closed || time >= leaseEndsAt(lease);
}

/**
 * Splits the cost of a period by the chip's slot outcomes in it: paid = cost × answered/(answered +
 * missed), floored; the renter gets the rest. A period without a decided slot is paid in full when
 * the chip is proven online (poci/liveness.ts isProvenOnline: answered a challenge since its
 * registration and not offline by the miss rule) and refunded in full when it is not.
 */
export function slaSplit(
  cost: bigint,
  answered: number,
  missed: number,
  provenOnline: boolean,
): { paid: bigint; refunded: bigint } {
  const total = answered + missed;
  const paid = total === 0 ? (provenOnline ? cost : 0n) : (cost * BigInt(answered)) / BigInt(total);
  return { paid, refunded: cost - paid };
}

/**
 * How one challenge of the chip (challenge `slot` of `epoch`, drawn at `slotHeight`) judges a lease
 * settled in block `height`: `answered` as soon as a credited answer to it is included (before
 * `height`), `missed` as soon as an uncredited one is (a tpm2 chip whose TPM slept or rebooted since
 * its previous answer, poci/execute.ts: it cannot be answered again, so its outcome is known), or
 * once its answer window has closed without one (slotHeight + W < height), null while its window is
 * still open and unanswered (its outcome is not known yet). The one rule every lease settlement
 * counts a challenge by (slotOutcomesIn).
 */
export function challengeOutcome(
  chip: Chip,
  epoch: bigint,
  slot: number,
  slotHeight: bigint,
  height: bigint,
  p: PociParams,
): 'answered' | 'missed' | null {
  if (answeredIn(chip, epoch, slot)) return 'answered';
  if (uncreditedIn(chip, epoch, slot)) return 'missed';
  return slotHeight + p.answerWindowBlocks < height ? 'missed' : null;
}

/**
 * Answered and missed challenges of the chip with heights in (after, through], as block `height`
 * judges them (challengeOutcome); those whose outcome is not known yet are counted as `open`.
 */
export function slotOutcomesIn(
  chip: Chip,
  after: bigint,
  through: bigint,
  height: bigint,
  p: PociParams,
  challengesOf: ChallengeLookup,
  openOut?: { epoch: bigint; slot: number; height: bigint }[],
): { answered: number; missed: number; open: number } {
  let answered = 0;
  let missed = 0;
  let open = 0;
  if (through <= after) return { answered, missed, open };
  let from = epochOf(after + 1n, p);
  if (from < chip.firstEpoch) from = chip.firstEpoch;
  const cls = chipClass(chip.chipId, p);
  for (let e = from; e <= epochOf(through, p); e++) {
    challengesOf(e, cls).forEach((h, slot) => {
      if (h <= after || h > through) return;
      const outcome = challengeOutcome(chip, e, slot, h, height, p);
      if (outcome === 'answered') answered++;
      else if (outcome === 'missed') missed++;
      else {
        open++;
        openOut?.push({ epoch: e, slot, height: h });
      }
    });
  }
  return { answered, missed, open };
}

export function credit(state: StateOverlay, who: Uint8Array, amount: bigint): void {
  if (amount === 0n) return;
  const a = getAccount(state, who);
  a.balance += amount;
  putAccount(state, who, a);
}

/** Whether the provider can still serve the lease with this chip (it still owns it, and it is active). */
export function chipServes(
  state: StateOverlay,
  lease: Lease,
  time: bigint,
): { ok: boolean; chip: Chip | null } {
  const chip = getChip(state, lease.chipId);
  if (!chip || !equalBytes(chip.owner, lease.provider)) return { ok: false, chip };
  return { ok: effectiveStatus(state, chip, time).status === 'active', chip };
}

/**
 * Settles the lease's cost through min(now, its end) against its escrow, pays the provider, refunds
 * the renter the missed share. Returns the event (null when nothing moved) and whether the escrow
 * ran out before the lease's end. Writes the lease.
 *
 * CONSENSUS (docs/jobs.md, "How a lease is paid"): the cost is split by the chip's challenges drawn
 * while the lease ran, judged by challengeOutcome. A settlement of a running lease judges those up
 * to `height − W − 1` (every one of them decided; the rest wait for the next settlement). The
 * `final` one (the lease closes in this block) judges every challenge left through `height − 1`;
 * CONSENSUS CHANGE: when one of them is still open (drawn in the last W blocks, unanswered), the
 * period's cost is not split now but `held` (returned): the lease closes keeping it as its
 * `remaining`, the decided ones are tallied and each open one is queued for the block after its
 * window closes (decideHeldChallenge), the last of which splits the cost by all of the period's
 * challenges. Each is decided while the chip's record still holds its epoch's masks (W + 1 blocks
 * after it is drawn, less than an epoch). They counted for nobody before. A lease is closed in the first block
 * whose time reaches its end (the end queue, market/execute.ts beginBlockMarket), or in the block
 * its renter closes it or its chip leaves, so `height − 1` is always the last block drawn while it
 * ran (its time is before the end), and no challenge drawn after the end judges it.
 */
export function settleLease(
  state: StateOverlay,
  lease: Lease,
  ctx: MarketContext,
  p: PociParams,
  challengesOf: ChallengeLookup,
  final = false,
  served: { ok: boolean; chip: Chip | null } = chipServes(state, lease, ctx.time),
): { event: MarketEvent | null; exhausted: boolean; chipOk: boolean; held: bigint } {
  // The escrow pays up to exactly the moment the lease ends, never past it.
  const until = escrowUntil(lease);
  const endsAt = until < lease.endTime ? until : lease.endTime;
  const to = ctx.time < endsAt ? ctx.time : endsAt;
  const exhausted = until < lease.endTime && ctx.time >= until;
  let cost = costThrough(lease.pricePerHour, lease.startTime, to) - lease.accrued;
  if (cost < 0n) cost = 0n;
  // At `until` the cost reaches the deposit: what is left is drawn to the last base unit.
  if (cost > lease.remaining || exhausted) cost = lease.remaining;

  // A running lease's challenges are judged once their answer window has closed before this block;
  // at its close, every challenge drawn before this block whose outcome is known.
  const through = final ? ctx.height - 1n : ctx.height - p.answerWindowBlocks - 1n;
  const { ok, chip } = served;
  let answered = 0;
  let missed = 0;
  if (chip && through > lease.slotCursor) {
    const openOut: { epoch: bigint; slot: number; height: bigint }[] = [];
    ({ answered, missed } = slotOutcomesIn(
      chip,
      lease.slotCursor,
      through,
      ctx.height,
      p,
      challengesOf,
      openOut,
    ));
    lease.slotCursor = through;
    if (final && openOut.length > 0) {
      // The cost is split once every open one is decided, each in the block after its window.
      putHeldTally(state, lease.id, { answered, missed, pending: openOut.length });
      for (const o of openOut)
        queueHeldChallenge(state, o.height + p.answerWindowBlocks + 1n, {
          leaseId: lease.id,
          epoch: o.epoch,
          slot: o.slot,
        });
      putLease(state, lease);
      return { event: null, exhausted, chipOk: ok, held: cost };
    }
  }
  // Liveness of the chip matters only for a period without a judged challenge (it costs hashing).
  // Such a period is paid only while the chip is proven online, the rule voting power uses: by the
  // miss rule alone a chip that has never answered (a fresh registration) would be paid for up to K
  // challenges' worth of time it never showed it was there. Judged in this block: for a lease that
  // ended, the first block at or after its end.
  const provenOnline =
    answered + missed === 0 && ok && chip !== null && isProvenOnline(chip, ctx.height, p, challengesOf);
  const { paid, refunded } = slaSplit(cost, answered, missed, provenOnline);

  const settled = bookPeriod(state, lease, { cost, paid, refunded, answered, missed, to });
  const event = cost === 0n && answered === 0 && missed === 0 ? null : settled;
  return { event, exhausted, chipOk: ok, held: 0n };
}

/**
 * Books one settled period on its lease, pays it out, and returns its `leaseSettled` event (from
 * the lease's last settlement to `to`, its `remaining` after the period). One place for a period
 * settled at once (settleLease) and a held last period decided after its lease closed
 * (decideHeldChallenge), so both move the escrow, the slot counts and the provider's earnings
 * alike, and report them in the same event.
 */
function bookPeriod(
  state: StateOverlay,
  lease: Lease,
  period: { cost: bigint; paid: bigint; refunded: bigint; answered: number; missed: number; to: bigint },
): Extract<MarketEvent, { type: 'leaseSettled' }> {
  const { cost, paid, refunded, answered, missed, to } = period;
  const fromTime = lease.settledTime;
  lease.accrued += cost;
  lease.remaining -= cost;
  lease.paid += paid;
  lease.refunded += refunded;
  lease.slotsAnswered += BigInt(answered);
  lease.slotsMissed += BigInt(missed);
  if (to > lease.settledTime) lease.settledTime = to;
  putLease(state, lease);
  credit(state, lease.provider, paid);
  credit(state, lease.renter, refunded);
  if (paid > 0n) {
    const rec = getProviderRecord(state, lease.provider);
    rec.earnings += paid;
    putProviderRecord(state, lease.provider, rec);
  }
  return {
    type: 'leaseSettled',
    leaseId: lease.id,
    chipId: lease.chipId,
    fromTime,
    toTime: to,
    cost,
    paid,
    refunded,
    answered,
    missed,
    remaining: lease.remaining,
  };
}

/**
 * CONSENSUS (settleLease): decides one open challenge of a closed lease's held last period, in the
 * block after its window closed: answered if the chip's record holds a credited answer to it, else
 * missed (a record registered again since, fresh masks, answers none of them). The last one of the
 * lease splits the held cost (its `remaining`) by the period's tally, as a settlement splits a
 * period's cost, and pays it out. O(1).
 */
export function decideHeldChallenge(
  state: StateOverlay,
  lease: Lease,
  epoch: bigint,
  slot: number,
): MarketEvent | null {
  const tally = getHeldTally(state, lease.id);
  if (!tally) throw new Error('a held lease has no tally');
  const chip = getChip(state, lease.chipId);
  if (chip && epoch >= chip.firstEpoch && answeredIn(chip, epoch, slot) && !uncreditedIn(chip, epoch, slot))
    tally.answered++;
  else tally.missed++;
  tally.pending--;
  if (tally.pending > 0) {
    putHeldTally(state, lease.id, tally);
    return null;
  }
  putHeldTally(state, lease.id, null);
  const cost = lease.remaining;
  const { answered, missed } = tally;
  const { paid, refunded } = slaSplit(cost, answered, missed, false);
  const ends = leaseEndsAt(lease);
  const to = lease.closedTime < ends ? lease.closedTime : ends;
  // `cost` is the whole held `remaining`, so booking it leaves 0 (the event's `remaining`).
  return bookPeriod(state, lease, { cost, paid, refunded, answered, missed, to });
}

/**
 * Returns the unused escrow to the renter, frees the chip and takes the lease out of the end queue.
 * The lease must be settled first. `held`: the cost of its last period its final settlement held
 * (settleLease), kept as its `remaining` until its open challenges are decided (decideHeldChallenge).
 */
export function closeLease(
  state: StateOverlay,
  lease: Lease,
  ctx: MarketContext,
  reason: string,
  held = 0n,
): MarketEvent {
  const returned = lease.remaining - held;
  credit(state, lease.renter, returned);
  lease.refunded += returned;
  lease.remaining = held;
  lease.status = LeaseStatus.closed;
  lease.closedHeight = ctx.height;
  lease.closedTime = ctx.time;
  lease.closedReason = reason;
  putLease(state, lease);
  listRemove(state, activeLeases, lease.id);
  dropLeaseEnd(state, lease.id);
  // Its receipts and disputes may be posted until receiptWindowMs past its end, no later than now;
  // after that their replay marks guard nothing (state.ts, "The mark prune queue").
  scheduleMarkPrune(state, lease.id, ctx.time + getMarketParams(state).receiptWindowMs);
  const m = getChipMarket(state, lease.chipId);
  if (m.leaseId && equalBytes(m.leaseId, lease.id))
    putChipMarket(state, lease.chipId, { ...m, leaseId: null });
  return {
    type: 'leaseClosed',
    leaseId: lease.id,
    chipId: lease.chipId,
    reason,
    returned,
    paid: lease.paid,
    refunded: lease.refunded,
  };
}

/**
 * Why the lease closes at block time `time` by itself, or null: its escrow ran out, its end time
 * passed (its notice's reason, or `ended`), or its chip can no longer serve it.
 */
function closeReasonAt(lease: Lease, time: bigint, chipOk: boolean): string | null {
  if (escrowUntil(lease) < lease.endTime && time >= escrowUntil(lease)) return 'escrowExhausted';
  if (time >= lease.endTime) return lease.closingReason || 'ended';
  if (!chipOk) return 'chipUnavailable';
  return null;
}

/**
 * Settles a lease and closes it if it is over: its end time passed, its escrow ran out, or its chip
 * can no longer serve it; or else, with `otherwise`, closes it for that reason (the renter's close,
 * its chip leaving). Used at every epoch start, at every lease's end, and whenever an action touches
 * the lease. The settlement of a lease that closes is final (settleLease).
 */
export function settleAndMaybeClose(
  state: StateOverlay,
  lease: Lease,
  ctx: MarketContext,
  p: PociParams,
  challengesOf: ChallengeLookup,
  otherwise: string | null = null,
): MarketEvent[] {
  const served = chipServes(state, lease, ctx.time);
  const reason = closeReasonAt(lease, ctx.time, served.ok) ?? otherwise;
  const events: MarketEvent[] = [];
  const { event, held } = settleLease(state, lease, ctx, p, challengesOf, reason !== null, served);
  if (event) events.push(event);
  if (reason) events.push(closeLease(state, lease, ctx, reason, held));
  return events;
}
