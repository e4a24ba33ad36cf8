/**
 * The market's part of the state transition: offers, leases, receipts and disputes, the eager
 * settlement of every active lease at each epoch start, and the close of each lease in the first
 * block at or after its end. Each apply function either applies
 * fully or throws a ValidationError (the caller discards its overlay then).
 */

import { equalBytes, toHex } from '../bytes.js';
import type { Action } from '../chain/transaction.js';
import { ed25519Verify } from '../crypto/ed25519.js';
import { taggedHash } from '../crypto/hash.js';
import { ValidationError } from '../errors.js';
import { chipModelPower, effectiveStatus, getChip } from '../poci/chips.js';
import {
  type ChallengeLookup,
  challengeLookup,
  epochOf,
  epochStart,
  hasProvenOnline,
  isOnline,
} from '../poci/liveness.js';
import { getPociParams, type PociParams } from '../poci/params.js';
import { getAccount, putAccount } from '../state/accounts.js';
import type { StateOverlay, StateReader } from '../state/store.js';
import { formatUnc } from '../units.js';
import {
  type CloseLeaseAction,
  type CloseOfferAction,
  type CreateOfferAction,
  type DisputeAction,
  MAX_OFFER_CHIPS,
  MAX_TLS_FINGERPRINTS,
  type OpenLeaseAction,
  type PostReceiptAction,
  type TopUpLeaseAction,
  type UpdateOfferTlsAction,
  type WithdrawOfferChipAction,
} from './actions.js';
import { getMarketParams, type MarketParams } from './params.js';
import { verifyReceipt } from './receipt.js';
import { jobRequestDigest } from './request.js';
import {
  costThrough,
  decideHeldChallenge,
  escrowUntil,
  HOUR_MS,
  leaseEndsAt,
  leaseOver,
  type MarketContext,
  type MarketEvent,
  settleAndMaybeClose,
} from './settle.js';
import {
  activeLeases,
  deleteOffer,
  disputeId,
  getChipMarket,
  getLease,
  getOffer,
  getProviderRecord,
  type Lease,
  LeaseStatus,
  leasesByProvider,
  leasesByRenter,
  listInsert,
  listItems,
  listRemove,
  markOnce,
  nextId,
  nextLeaseEnd,
  type Offer,
  OfferStatus,
  offersByProvider,
  openOffers,
  popLeaseEnd,
  pruneMarks,
  putChipMarket,
  putLease,
  putOffer,
  putProviderRecord,
  queueLeaseEnd,
  takeHeldChallenges,
} from './state.js';
import { type LeaseTerms, leaseTermsDigest } from './terms.js';

/** Bounds that keep every product below u128 and every lease humanly sized. */
export const MAX_LEASE_HOURS = 87_600;
export const MAX_NOTICE_MS = 30n * 24n * HOUR_MS;
const MAX_PRICE_PER_HOUR = (1n << 96n) - 1n;

const short = (id: Uint8Array) => `${toHex(id).slice(0, 16)}…`;

function checkEndpoint(url: string): void {
  if (!/^https?:\/\/[!-~]+$/.test(url)) {
    throw new ValidationError(
      'BAD_ENDPOINT',
      'the endpoint must be an http:// or https:// URL of printable ASCII without spaces',
    );
  }
}

/**
 * An https endpoint names 1–2 distinct certificate fingerprints (renters pin them); an http one
 * names none (renters use it on dev chains only, and nothing would check a fingerprint there).
 */
function checkTlsFingerprints(endpoint: string, fingerprints: Uint8Array[]): void {
  const https = endpoint.startsWith('https://');
  if (!https && fingerprints.length > 0)
    throw new ValidationError('BAD_TLS', 'an http:// endpoint has no TLS certificate fingerprints');
  if (https && (fingerprints.length === 0 || fingerprints.length > MAX_TLS_FINGERPRINTS))
    throw new ValidationError(
      'BAD_TLS',
      `an https:// endpoint names 1…${MAX_TLS_FINGERPRINTS} TLS certificate fingerprints (SHA-256 of the DER certificate)`,
    );
  if (new Set(fingerprints.map(toHex)).size !== fingerprints.length)
    throw new ValidationError('BAD_TLS', 'a TLS fingerprint is listed twice');
}

function checkOfferShape(a: CreateOfferAction): void {
  if (a.chipIds.length === 0 || a.chipIds.length > MAX_OFFER_CHIPS) {
    throw new ValidationError('BAD_OFFER', `an offer names 1…${MAX_OFFER_CHIPS} chips`);
  }
  const seen = new Set(a.chipIds.map(toHex));
  if (seen.size !== a.chipIds.length) throw new ValidationError('BAD_OFFER', 'an offer names a chip twice');
  if (a.pricePerHour <= 0n || a.pricePerHour > MAX_PRICE_PER_HOUR) {
    throw new ValidationError('BAD_PRICE', 'the price per hour must be positive and below 2^96 base units');
  }
  // A minimum of 0 hours makes a pay-as-you-go offer: the renter deposits what it likes and tops
  // up; the lease ends when the escrow runs out (or at its end time).
  if (a.maxHours < 1 || a.maxHours < a.minHours || a.maxHours > MAX_LEASE_HOURS) {
    throw new ValidationError(
      'BAD_DURATION',
      `durations must satisfy 0 ≤ min ≤ max, 1 ≤ max ≤ ${MAX_LEASE_HOURS} hours (got ${a.minHours}…${a.maxHours})`,
    );
  }
  if (a.noticeMs > MAX_NOTICE_MS) {
    throw new ValidationError('BAD_NOTICE', `the notice period is at most ${MAX_NOTICE_MS} ms (30 days)`);
  }
  checkEndpoint(a.endpoint);
  checkTlsFingerprints(a.endpoint, a.tlsFingerprints);
  if (!/^[a-z0-9-]{0,32}$/.test(a.attributes.region)) {
    throw new ValidationError('BAD_ATTRIBUTES', 'a region is lowercase letters, digits and dashes');
  }
  for (const r of a.attributes.runtimes) {
    if (!/^[A-Za-z0-9._+-]{1,32}$/.test(r)) {
      throw new ValidationError('BAD_ATTRIBUTES', `runtime "${r}" is not a plain name`);
    }
  }
}

export function applyCreateOffer(
  state: StateOverlay,
  ctx: MarketContext,
  provider: Uint8Array,
  action: CreateOfferAction,
): MarketEvent[] {
  checkOfferShape(action);
  const id = nextId(state, ctx.chainId, 'offer');
  for (const chipId of action.chipIds) {
    const chip = getChip(state, chipId);
    if (!chip) throw new ValidationError('UNKNOWN_CHIP', `chip ${short(chipId)} is not registered`);
    if (!equalBytes(chip.owner, provider)) {
      throw new ValidationError('NOT_OWNER', `chip ${short(chipId)} is not yours`);
    }
    const { status } = effectiveStatus(state, chip, ctx.time);
    if (status !== 'active') throw new ValidationError('CHIP_INACTIVE', `chip ${short(chipId)} is ${status}`);
    const m = getChipMarket(state, chipId);
    // An offer of a former owner (the chip was transferred or registered anew) binds nobody now.
    if (m.offerId && equalBytes(getOffer(state, m.offerId)?.provider ?? provider, provider)) {
      throw new ValidationError(
        'CHIP_ALREADY_OFFERED',
        `chip ${short(chipId)} is already in open offer ${short(m.offerId)}`,
      );
    }
    putChipMarket(state, chipId, { ...m, offerId: id });
  }
  const offer: Offer = {
    id,
    provider,
    chipIds: action.chipIds,
    pricePerHour: action.pricePerHour,
    minHours: action.minHours,
    maxHours: action.maxHours,
    noticeMs: action.noticeMs,
    endpoint: action.endpoint,
    attributes: action.attributes,
    createdHeight: ctx.height,
    createdTime: ctx.time,
    status: OfferStatus.open,
    closedTime: 0n,
    closesAt: 0n,
    leasesOpened: 0n,
    tlsFingerprints: action.tlsFingerprints,
  };
  putOffer(state, offer);
  listInsert(state, openOffers, id);
  listInsert(state, offersByProvider(provider), id);
  const rec = getProviderRecord(state, provider);
  rec.offers += 1n;
  putProviderRecord(state, provider, rec);
  return [
    {
      type: 'offerCreated',
      offerId: id,
      provider,
      pricePerHour: action.pricePerHour,
      chips: action.chipIds.length,
    },
  ];
}

function existingOffer(state: StateOverlay, id: Uint8Array): Offer {
  const o = getOffer(state, id);
  if (!o) throw new ValidationError('UNKNOWN_OFFER', `offer ${short(id)} does not exist`);
  return o;
}

/** The offer, refused to anyone but its provider: the check every provider-only action makes. */
function providersOffer(state: StateOverlay, id: Uint8Array, sender: Uint8Array): Offer {
  const offer = existingOffer(state, id);
  if (!equalBytes(offer.provider, sender)) {
    throw new ValidationError('NOT_PROVIDER', `offer ${short(offer.id)} is not yours`);
  }
  return offer;
}

/** providersOffer, and still open (closeOffer, withdrawOfferChip). */
function providersOpenOffer(state: StateOverlay, id: Uint8Array, sender: Uint8Array): Offer {
  const offer = providersOffer(state, id, sender);
  if (offer.status !== OfferStatus.open) {
    throw new ValidationError('OFFER_CLOSED', `offer ${short(offer.id)} is already closed`);
  }
  return offer;
}

function existingLease(state: StateOverlay, id: Uint8Array): Lease {
  const l = getLease(state, id);
  if (!l) throw new ValidationError('UNKNOWN_LEASE', `lease ${short(id)} does not exist`);
  return l;
}

/**
 * Moves a running lease to closing at `endTime` (never later than it already ends). A lease whose
 * end this brings forward is queued at its new end; one that ends at once (an offer without notice)
 * is settled and closed here, so that no challenge drawn from this block on judges it.
 */
function shortenLease(
  state: StateOverlay,
  ctx: MarketContext,
  lease: Lease,
  endTime: bigint,
  reason: string,
): MarketEvent[] | null {
  if (lease.status === LeaseStatus.closed) return null;
  if (lease.status === LeaseStatus.closing && lease.endTime <= endTime) return null;
  const before = leaseEndsAt(lease);
  if (endTime < lease.endTime) lease.endTime = endTime;
  lease.status = LeaseStatus.closing;
  lease.closingReason = reason;
  putLease(state, lease);
  const events: MarketEvent[] = [
    { type: 'leaseClosing', leaseId: lease.id, chipId: lease.chipId, endTime: lease.endTime, reason },
  ];
  const after = leaseEndsAt(lease);
  if (after <= ctx.time)
    events.push(...settleAndMaybeClose(state, lease, ctx, getPociParams(state), challengeLookup(state)));
  else if (after < before) queueLeaseEnd(state, lease.id, after);
  return events;
}

export function applyCloseOffer(
  state: StateOverlay,
  ctx: MarketContext,
  sender: Uint8Array,
  action: CloseOfferAction,
): MarketEvent[] {
  const offer = providersOpenOffer(state, action.offerId, sender);
  offer.status = OfferStatus.closed;
  offer.closedTime = ctx.time;
  offer.closesAt = ctx.time + offer.noticeMs;
  putOffer(state, offer);
  listRemove(state, openOffers, offer.id);
  const events: MarketEvent[] = [
    { type: 'offerClosed', offerId: offer.id, provider: sender, closesAt: offer.closesAt },
  ];
  // At most one running lease per chip, so this is bounded by the offer's chip count.
  for (const chipId of offer.chipIds) {
    const m = getChipMarket(state, chipId);
    if (m.leaseId) {
      const lease = getLease(state, m.leaseId);
      if (lease && equalBytes(lease.offerId, offer.id)) {
        const e = shortenLease(state, ctx, lease, offer.closesAt, 'offerClosed');
        if (e) events.push(...e);
      }
    }
    if (m.offerId && equalBytes(m.offerId, offer.id)) putChipMarket(state, chipId, { ...m, offerId: null });
  }
  // An offer nobody leased is referred to by nothing now (no lease; its chips' marks cleared just
  // above), so it goes: a provider that closes and recreates offers (the agent does at each change
  // of terms) would otherwise leave a record of up to ~1.7 kB, which every node holds in memory
  // for good, per two actions' fee. Its events keep its history; ids are never reused (nextId).
  if (offer.leasesOpened === 0n) {
    deleteOffer(state, offer.id);
    listRemove(state, offersByProvider(offer.provider), offer.id);
  }
  return events;
}

/**
 * CONSENSUS CHANGE (docs/jobs.md "Offers"): the provider takes one chip out of its open offer, with
 * the notice semantics of closeOffer for that chip alone. The chip leaves the offer's chips at once
 * (so no lease opens on it again, and renters' signed terms name the chips left: a lease signed on
 * the old terms is refused, OFFER_CHANGED) and may be offered anew; a running lease of it under this
 * offer gets the offer's notice (shortenLease, reason `chipWithdrawn`; at once without notice). The
 * last chip is not withdrawn: that is closeOffer. O(offer chips ≤ 32).
 */
export function applyWithdrawOfferChip(
  state: StateOverlay,
  ctx: MarketContext,
  sender: Uint8Array,
  action: WithdrawOfferChipAction,
): MarketEvent[] {
  const offer = providersOpenOffer(state, action.offerId, sender);
  const rest = offer.chipIds.filter((c) => !equalBytes(c, action.chipId));
  if (rest.length === offer.chipIds.length) {
    throw new ValidationError(
      'CHIP_NOT_OFFERED',
      `chip ${short(action.chipId)} is not in offer ${short(offer.id)}`,
    );
  }
  if (rest.length === 0) {
    throw new ValidationError(
      'LAST_OFFER_CHIP',
      `chip ${short(action.chipId)} is the last chip of offer ${short(offer.id)}: close the offer (closeOffer)`,
    );
  }
  offer.chipIds = rest;
  putOffer(state, offer);
  // Always one event: a free chip's withdrawal otherwise left no trace in the results.
  const events: MarketEvent[] = [
    { type: 'offerChipWithdrawn', offerId: offer.id, chipId: action.chipId, provider: sender },
  ];
  const m = getChipMarket(state, action.chipId);
  if (m.leaseId) {
    const lease = getLease(state, m.leaseId);
    if (lease && equalBytes(lease.offerId, offer.id)) {
      const e = shortenLease(state, ctx, lease, ctx.time + offer.noticeMs, 'chipWithdrawn');
      if (e) events.push(...e);
    }
  }
  const after = getChipMarket(state, action.chipId);
  if (after.offerId && equalBytes(after.offerId, offer.id))
    putChipMarket(state, action.chipId, { ...after, offerId: null });
  return events;
}

/**
 * The provider replaces its offer's TLS fingerprints (certificate rotation: old and new, then the
 * new one alone). Allowed while the offer or its notice period still serves leases.
 */
export function applyUpdateOfferTls(
  state: StateOverlay,
  ctx: MarketContext,
  sender: Uint8Array,
  action: UpdateOfferTlsAction,
): MarketEvent[] {
  const offer = providersOffer(state, action.offerId, sender);
  if (offer.status !== OfferStatus.open && ctx.time >= offer.closesAt) {
    throw new ValidationError('OFFER_CLOSED', `offer ${short(offer.id)} is closed`);
  }
  checkTlsFingerprints(offer.endpoint, action.fingerprints);
  offer.tlsFingerprints = action.fingerprints;
  putOffer(state, offer);
  return [];
}

/**
 * The terms of an offer a renter signs (terms.ts), from state: its chips' hardware as registered,
 * '' and 0 for a chip no longer registered (as the node's offer view shows it). O(offer chips ≤ 32).
 */
export function leaseTermsOf(state: StateReader, offer: Offer): LeaseTerms {
  return {
    offerId: offer.id,
    provider: offer.provider,
    chips: offer.chipIds.map((chipId) => {
      const chip = getChip(state, chipId);
      return {
        chipId,
        vendorId: chip?.vendorId ?? '',
        modelId: chip?.modelId ?? '',
        power: chip ? chipModelPower(state, chip) : 0n,
      };
    }),
    minHours: offer.minHours,
    maxHours: offer.maxHours,
    noticeMs: offer.noticeMs,
    endpoint: offer.endpoint,
    attributes: offer.attributes,
  };
}

export function applyOpenLease(
  state: StateOverlay,
  ctx: MarketContext,
  renter: Uint8Array,
  renterPublicKey: Uint8Array,
  action: OpenLeaseAction,
): MarketEvent[] {
  const offer = existingOffer(state, action.offerId);
  if (offer.status !== OfferStatus.open) {
    throw new ValidationError('OFFER_CLOSED', `offer ${short(offer.id)} is closed`);
  }
  if (equalBytes(offer.provider, renter)) {
    throw new ValidationError('SELF_LEASE', 'a provider cannot rent its own offer');
  }
  // The renter signs the price it was shown (as its ceiling): a lease at a price it never saw would
  // let a hostile node show a cheap offer and have the confirmed deposit drained at the real price.
  if (offer.pricePerHour > action.maxPricePerHour) {
    throw new ValidationError(
      'PRICE_ABOVE_MAX',
      `offer ${short(offer.id)} costs ${formatUnc(offer.pricePerHour)} UNC per hour, above the ${formatUnc(action.maxPricePerHour)} UNC the renter signed for`,
    );
  }
  // Its other terms likewise, as a digest: the renter read the offer from a node it may not trust,
  // and a lease on a notice period, endpoint or hardware it was not shown is not the one it agreed to.
  if (!equalBytes(leaseTermsDigest(leaseTermsOf(state, offer)), action.termsDigest)) {
    throw new ValidationError(
      'OFFER_CHANGED',
      `the terms of offer ${short(offer.id)} (notice, endpoint, chips and their hardware, durations, attributes) are not those the renter signed for: read the offer again`,
    );
  }
  const shortest = Math.max(1, offer.minHours);
  if (!Number.isInteger(action.hours) || action.hours < shortest || action.hours > offer.maxHours) {
    throw new ValidationError(
      'BAD_DURATION',
      `this offer rents for ${shortest}…${offer.maxHours} hours, not ${action.hours}`,
    );
  }
  const p = getPociParams(state);
  const challengesOf = challengeLookup(state);
  const freed: MarketEvent[] = [];
  const usable = (chipId: Uint8Array): string | null => {
    const chip = getChip(state, chipId);
    if (!chip || !equalBytes(chip.owner, offer.provider)) return 'no longer belongs to the provider';
    const { status } = effectiveStatus(state, chip, ctx.time);
    if (status !== 'active') return `is ${status}`;
    const current = getChipMarket(state, chipId).leaseId;
    if (current) {
      // A lease that has ended (escrow exhausted or end time passed) holds the chip no longer. The
      // chain closes it in the first block at or after its end (beginBlockMarket), or at once for a
      // notice of 0: one still open here is settled and closed (a safeguard).
      const old = getLease(state, current);
      if (!old || !leaseOver(old, ctx.time)) return 'is already leased';
      if (old.status !== LeaseStatus.closed)
        freed.push(...settleAndMaybeClose(state, old, ctx, p, challengesOf));
    }
    // Only a chip that is proven online (isProvenOnline, the rule voting power and lease payment use)
    // is rented. A renter who opens a lease expects a chip that has shown it exists: one that has
    // never answered a challenge since its registration may be nothing beyond its evidence, and its
    // escrow would sit locked (refunded period by period) on a chip that may never serve.
    if (!hasProvenOnline(chip)) {
      return 'has not answered a challenge since its registration yet (it can be rented once it has)';
    }
    if (!isOnline(chip, ctx.height, p, challengesOf)) return 'is offline';
    return null;
  };
  let chipId: Uint8Array;
  if (action.chipId) {
    if (!offer.chipIds.some((c) => equalBytes(c, action.chipId!))) {
      throw new ValidationError('CHIP_NOT_OFFERED', `chip ${short(action.chipId)} is not in this offer`);
    }
    const why = usable(action.chipId);
    if (why) throw new ValidationError('CHIP_UNAVAILABLE', `chip ${short(action.chipId)} ${why}`);
    chipId = action.chipId;
  } else {
    const free = offer.chipIds.find((c) => usable(c) === null);
    if (!free) {
      throw new ValidationError(
        'CHIP_UNAVAILABLE',
        'no chip of this offer is free and proven online (answered a challenge since its registration, not offline)',
      );
    }
    chipId = free;
  }
  const full = offer.pricePerHour * BigInt(action.hours);
  const minimum = offer.pricePerHour * BigInt(offer.minHours);
  const deposit = action.deposit === 0n ? full : action.deposit;
  if (deposit < minimum) {
    throw new ValidationError(
      'DEPOSIT_TOO_LOW',
      `the deposit ${formatUnc(deposit)} UNC is below price × minimum duration = ${formatUnc(minimum)} UNC`,
    );
  }
  const account = getAccount(state, renter);
  if (account.balance < deposit) {
    throw new ValidationError(
      'INSUFFICIENT_FUNDS',
      `balance ${formatUnc(account.balance)} UNC cannot cover the deposit ${formatUnc(deposit)} UNC (after the fee)`,
    );
  }
  account.balance -= deposit;
  putAccount(state, renter, account);

  const id = nextId(state, ctx.chainId, 'lease');
  const lease: Lease = {
    id,
    offerId: offer.id,
    chipId,
    provider: offer.provider,
    renter,
    renterPublicKey,
    pricePerHour: offer.pricePerHour,
    hours: action.hours,
    startHeight: ctx.height,
    startTime: ctx.time,
    endTime: ctx.time + BigInt(action.hours) * HOUR_MS,
    deposited: deposit,
    accrued: 0n,
    paid: 0n,
    refunded: 0n,
    remaining: deposit,
    settledTime: ctx.time,
    // Only slots from this block on are the renter's business.
    slotCursor: ctx.height - 1n,
    slotsAnswered: 0n,
    slotsMissed: 0n,
    status: LeaseStatus.active,
    closingReason: '',
    closedHeight: 0n,
    closedTime: 0n,
    closedReason: '',
    disputes: 0,
  };
  putLease(state, lease);
  queueLeaseEnd(state, id, leaseEndsAt(lease));
  putChipMarket(state, chipId, { ...getChipMarket(state, chipId), leaseId: id });
  listInsert(state, activeLeases, id);
  listInsert(state, leasesByRenter(renter), id);
  listInsert(state, leasesByProvider(offer.provider), id);
  offer.leasesOpened += 1n;
  putOffer(state, offer);
  const rec = getProviderRecord(state, offer.provider);
  rec.leases += 1n;
  putProviderRecord(state, offer.provider, rec);
  return [
    ...freed,
    {
      type: 'leaseOpened',
      leaseId: id,
      offerId: offer.id,
      chipId,
      provider: offer.provider,
      renter,
      deposit,
      endTime: lease.endTime,
    },
  ];
}

function endReason(lease: Lease): string {
  return escrowUntil(lease) < lease.endTime ? 'its escrow is exhausted' : 'its end time passed';
}

function runningLease(state: StateOverlay, ctx: MarketContext, id: Uint8Array): Lease {
  const lease = existingLease(state, id);
  if (lease.status === LeaseStatus.closed) {
    throw new ValidationError('LEASE_CLOSED', `lease ${short(id)} is closed (${lease.closedReason})`);
  }
  if (ctx.time >= leaseEndsAt(lease)) {
    throw new ValidationError('LEASE_ENDED', `lease ${short(id)} has ended (${endReason(lease)})`);
  }
  return lease;
}

export function applyTopUpLease(
  state: StateOverlay,
  ctx: MarketContext,
  sender: Uint8Array,
  action: TopUpLeaseAction,
): MarketEvent[] {
  if (action.amount <= 0n) throw new ValidationError('BAD_AMOUNT', 'a top-up must be positive');
  const lease = runningLease(state, ctx, action.leaseId);
  if (!equalBytes(lease.renter, sender)) {
    throw new ValidationError('NOT_RENTER', `only the renter tops up lease ${short(lease.id)}`);
  }
  const account = getAccount(state, sender);
  if (account.balance < action.amount) {
    throw new ValidationError(
      'INSUFFICIENT_FUNDS',
      `balance ${formatUnc(account.balance)} UNC is less than the top-up ${formatUnc(action.amount)} UNC (after the fee)`,
    );
  }
  account.balance -= action.amount;
  putAccount(state, sender, account);
  lease.deposited += action.amount;
  lease.remaining += action.amount;
  putLease(state, lease);
  // A top-up moves the end (when the escrow ran out before the booked end): its entry moves with it.
  queueLeaseEnd(state, lease.id, leaseEndsAt(lease));
  return [
    {
      type: 'leaseToppedUp',
      leaseId: lease.id,
      renter: sender,
      amount: action.amount,
      remaining: lease.remaining,
    },
  ];
}

export function applyCloseLease(
  state: StateOverlay,
  ctx: MarketContext,
  sender: Uint8Array,
  action: CloseLeaseAction,
): MarketEvent[] {
  const lease = existingLease(state, action.leaseId);
  if (lease.status === LeaseStatus.closed) {
    throw new ValidationError('LEASE_CLOSED', `lease ${short(lease.id)} is already closed`);
  }
  if (equalBytes(lease.renter, sender)) {
    const p = getPociParams(state);
    return settleAndMaybeClose(state, lease, ctx, p, challengeLookup(state), 'renterClosed');
  }
  if (equalBytes(lease.provider, sender)) {
    if (ctx.time >= leaseEndsAt(lease)) {
      throw new ValidationError('LEASE_ENDED', `lease ${short(lease.id)} has ended already`);
    }
    const offer = existingOffer(state, lease.offerId);
    const e = shortenLease(state, ctx, lease, ctx.time + offer.noticeMs, 'providerClosed');
    if (!e) {
      throw new ValidationError(
        'ALREADY_CLOSING',
        `lease ${short(lease.id)} already ends at ${new Date(Number(lease.endTime)).toISOString()}, before the notice would`,
      );
    }
    return e;
  }
  throw new ValidationError('NOT_PARTY', `lease ${short(lease.id)} is neither yours to rent nor to provide`);
}

/** The lease fields that say how long its renter kept (and paid for) it, and how long it ran. */
export type KeptLease = Pick<
  Lease,
  'startTime' | 'hours' | 'pricePerHour' | 'deposited' | 'endTime' | 'status' | 'closedReason' | 'closedTime'
>;

/**
 * Until when the lease ran: its end (escrow or end time, whichever first) or, once closed, the
 * close if that came sooner.
 */
function ranUntil(lease: KeptLease): bigint {
  const end = leaseEndsAt(lease);
  return lease.status === LeaseStatus.closed && lease.closedTime < end ? lease.closedTime : end;
}

/**
 * Until when the renter kept the lease: the end its deposit and hours paid for, or its own close if
 * sooner. The provider's notice and its chip leaving cut a lease short, but not this: a provider
 * cannot escape a dispute by closing the lease during the response wait.
 */
export function renterKeptUntil(lease: KeptLease): bigint {
  const booked = lease.startTime + BigInt(lease.hours) * HOUR_MS;
  const escrow = escrowUntil(lease);
  let until = escrow < booked ? escrow : booked;
  if (
    lease.status === LeaseStatus.closed &&
    lease.closedReason === 'renterClosed' &&
    lease.closedTime < until
  )
    until = lease.closedTime;
  return until;
}

/**
 * The block time from which a lease's dispute allowance grows no more: the renter's kept end
 * (renterKeptUntil), but no later than one wait past the lease's actual end. A provider that cuts
 * the lease short (notice, closing its offer, its chip leaving) still answers for the requests made
 * before the end, each disputable once its wait has passed, which is within that one wait. Past
 * it, no rent is paid: counting on to the kept end would let a renter whose deposit covered a long
 * booking gain one dispute per wait through the whole posting window (receiptWindowMs, a day by
 * default: 288) for nothing, the unused deposit refunded, and a provider that closed the lease of
 * a renter burying it in disputes would only hand it more.
 */
export function disputeAllowanceUntil(lease: KeptLease, disputeWaitMs: bigint): bigint {
  const kept = renterKeptUntil(lease);
  const last = ranUntil(lease) + disputeWaitMs;
  return last < kept ? last : kept;
}

/**
 * The most disputes a lease may have recorded in all by block time `time` (PROTOCOL.md §8,
 * docs/jobs.md): one per `disputeWaitMs` of lease time its renter has kept (and paid for) so far,
 * and at least one (a lease booked shorter than the wait and kept to its end). Each dispute costs a
 * wait of rent, so a stranger cannot rent a low-priced rival's chip for a few minutes and bury its
 * record in disputes for a few minutes' rent; an honest renter of a failing provider gains one per
 * wait it keeps the lease, however long. Bounded by its hours: at most 87 600 h / 1 s ≈ 3.2·10^8,
 * within `disputes`' u32.
 */
export function disputeAllowance(lease: KeptLease, time: bigint, disputeWaitMs: bigint): bigint {
  const kept = disputeAllowanceUntil(lease, disputeWaitMs);
  const until = time < kept ? time : kept;
  const keptMs = until > lease.startTime ? until - lease.startTime : 0n;
  const n = keptMs / disputeWaitMs;
  return n > 1n ? n : 1n;
}

/** Past the window after its end in which a lease's receipts and disputes may still be posted. */
function checkPostingWindow(lease: Lease, ctx: MarketContext, p: MarketParams, what: string): void {
  const end = ranUntil(lease);
  if (ctx.time > end + p.receiptWindowMs) {
    throw new ValidationError(
      'LEASE_CLOSED',
      `lease ${short(lease.id)} ended more than ${p.receiptWindowMs / 60_000n} min ago; its ${what} can no longer be posted`,
    );
  }
}

/**
 * When a dispute counts (PROTOCOL.md §8): the request was made while the lease ran, the provider's
 * response wait has passed by block time, and the renter kept (and paid for) the lease through that
 * wait. So disputes cost at least disputeWaitMs of lease time, paid to the provider (and each one
 * more: checkDisputeAllowance): a stranger cannot open a lease on a rival's idle chip, dispute
 * requests "made" in that same block and close the lease with its deposit back whole, burying the
 * rival's record for a fee.
 */
function checkDisputeTiming(lease: Lease, ctx: MarketContext, p: MarketParams, requestMs: bigint): void {
  if (requestMs < lease.startTime || requestMs >= ranUntil(lease)) {
    throw new ValidationError('REQUEST_OUTSIDE_LEASE', 'the request was not made while the lease ran');
  }
  const due = requestMs + p.disputeWaitMs;
  if (ctx.time < due) {
    throw new ValidationError(
      'DISPUTE_TOO_EARLY',
      `the provider has until ${new Date(Number(due)).toISOString()} (block time) to answer; dispute after it`,
    );
  }
  // Kept through the wait, or through all of its booked hours (paid for them all: a request in a
  // lease's last disputeWaitMs has no wait left inside it, and is still the provider's to answer).
  const kept = renterKeptUntil(lease);
  if (kept < due && kept < lease.startTime + BigInt(lease.hours) * HOUR_MS) {
    throw new ValidationError(
      'LEASE_TOO_SHORT',
      `lease ${short(lease.id)} was not kept running for ${p.disputeWaitMs / 1000n} s after the request: nothing to dispute`,
    );
  }
  checkPostingWindow(lease, ctx, p, 'disputes');
}

/** Refuses a dispute past the lease's allowance (disputeAllowance), saying when the next one comes. */
function checkDisputeAllowance(lease: Lease, ctx: MarketContext, p: MarketParams): void {
  const allowed = disputeAllowance(lease, ctx.time, p.disputeWaitMs);
  if (BigInt(lease.disputes) < allowed) return;
  const next = lease.startTime + (allowed + 1n) * p.disputeWaitMs;
  const later =
    next <= disputeAllowanceUntil(lease, p.disputeWaitMs)
      ? `; one more from block time ${new Date(Number(next)).toISOString()} if the lease is kept until then`
      : '; the lease was not kept long enough for more';
  throw new ValidationError(
    'TOO_MANY_DISPUTES',
    `lease ${short(lease.id)} has ${lease.disputes} disputes, all that its rent allows so far (one per ${p.disputeWaitMs / 1000n} s of lease time kept and paid)${later}`,
  );
}

/** How far a chip's clock (a receipt's start) may stray from block time. */
export const RECEIPT_CLOCK_SLACK_MS = 60_000n;

/**
 * When a receipt counts (PROTOCOL.md §8): the job ran inside the time the lease ran (the chip's
 * clock trusted within RECEIPT_CLOCK_SLACK_MS), the lease ran past its opening block, and the
 * receipt is posted within receiptWindowMs of its end. So a provider's second account cannot open
 * and close a lease on its chip at no cost and post receipts its chip signed for made-up jobs, any
 * number and any time after, inflating its record for fees.
 */
function checkReceiptInLease(
  lease: Lease,
  ctx: MarketContext,
  p: MarketParams,
  startMs: bigint,
  durationMs: bigint,
): void {
  const end = ranUntil(lease);
  const ranTo = end < ctx.time ? end : ctx.time;
  if (ranTo <= lease.startTime) {
    throw new ValidationError(
      'RECEIPT_OUTSIDE_LEASE',
      `lease ${short(lease.id)} has not run long enough for a job`,
    );
  }
  if (
    startMs + RECEIPT_CLOCK_SLACK_MS < lease.startTime ||
    startMs + durationMs > ranTo + RECEIPT_CLOCK_SLACK_MS
  ) {
    throw new ValidationError(
      'RECEIPT_OUTSIDE_LEASE',
      `the job did not run while lease ${short(lease.id)} ran`,
    );
  }
  checkPostingWindow(lease, ctx, p, 'receipts');
}

export function applyPostReceipt(
  state: StateOverlay,
  ctx: MarketContext,
  sender: Uint8Array,
  action: PostReceiptAction,
): MarketEvent[] {
  if (!Number.isInteger(action.rating) || action.rating < 1 || action.rating > 5) {
    throw new ValidationError('BAD_RATING', 'a rating is 1…5');
  }
  const { receipt } = action.signed;
  const lease = existingLease(state, receipt.leaseId);
  if (!equalBytes(lease.renter, sender)) {
    throw new ValidationError('NOT_RENTER', `only the renter of lease ${short(lease.id)} rates its jobs`);
  }
  if (!equalBytes(receipt.chipId, lease.chipId)) {
    throw new ValidationError(
      'RECEIPT_WRONG_CHIP',
      'the receipt is signed by another chip than the leased one',
    );
  }
  const chip = getChip(state, lease.chipId);
  if (!chip) throw new ValidationError('UNKNOWN_CHIP', `chip ${short(lease.chipId)} is not registered`);
  verifyReceipt(action.signed, chip, ctx.chainId);
  checkReceiptInLease(lease, ctx, getMarketParams(state), receipt.startMs, receipt.durationMs);
  // Once per job: a chip that signed two receipts for one job does not earn two ratings.
  if (!markOnce(state, 'receipt', lease.id, taggedHash('UNC/receipt-once', receipt.leaseId, receipt.jobId))) {
    throw new ValidationError('RECEIPT_REPLAYED', `job ${short(receipt.jobId)} was already receipted`);
  }
  const rec = getProviderRecord(state, lease.provider);
  rec.jobsReceipted += 1n;
  rec.ratingsCount += 1n;
  rec.ratingsSum += BigInt(action.rating);
  putProviderRecord(state, lease.provider, rec);
  return [
    {
      type: 'receiptPosted',
      leaseId: lease.id,
      chipId: lease.chipId,
      provider: lease.provider,
      jobId: receipt.jobId,
      rating: action.rating,
    },
  ];
}

export function applyDispute(
  state: StateOverlay,
  ctx: MarketContext,
  sender: Uint8Array,
  action: DisputeAction,
): MarketEvent[] {
  const { request, signature } = action.signed;
  if (request.chainId !== ctx.chainId) {
    throw new ValidationError('WRONG_CHAIN', `the request is for chain "${request.chainId}"`);
  }
  const lease = existingLease(state, request.leaseId);
  if (!equalBytes(lease.renter, sender)) {
    throw new ValidationError(
      'NOT_RENTER',
      `only the renter of lease ${short(lease.id)} can dispute its jobs`,
    );
  }
  if (action.reason.trim().length === 0) throw new ValidationError('BAD_REASON', 'say why the job failed');
  const requestHash = jobRequestDigest(request);
  if (!ed25519Verify(lease.renterPublicKey, requestHash, signature)) {
    throw new ValidationError(
      'BAD_REQUEST_SIGNATURE',
      `the request is not signed by the renter key of lease ${short(lease.id)}`,
    );
  }
  const p = getMarketParams(state);
  checkDisputeTiming(lease, ctx, p, request.timestampMs);
  if (!markOnce(state, 'dispute', lease.id, disputeId(lease.id, requestHash))) {
    throw new ValidationError('DISPUTE_REPLAYED', 'this request is already disputed');
  }
  // After the replay check, so a replay is named as one; its mark goes with the refused transaction.
  checkDisputeAllowance(lease, ctx, p);
  lease.disputes += 1;
  putLease(state, lease);
  const rec = getProviderRecord(state, lease.provider);
  rec.disputes += 1n;
  putProviderRecord(state, lease.provider, rec);
  return [
    {
      type: 'disputeRecorded',
      leaseId: lease.id,
      chipId: lease.chipId,
      provider: lease.provider,
      requestHash,
      reason: action.reason,
    },
  ];
}

/**
 * The lease that binds `owner`'s chip `chipId` at block time `time`, or null: one not closed, of
 * `owner` as its provider, that has not ended (leaseEndsAt: its end time, brought forward by a
 * notice, or its escrow's exhaustion, is still ahead). A `closing` lease binds until its notice
 * has run. A lease of another provider binds nobody here (none can run: the chip's owner never
 * changes while its lease runs, and a lease opens only on its provider's chip).
 */
export function bindingLeaseOf(
  state: StateReader,
  chipId: Uint8Array,
  owner: Uint8Array,
  time: bigint,
): Lease | null {
  const { leaseId } = getChipMarket(state, chipId);
  if (!leaseId) return null;
  const lease = getLease(state, leaseId);
  if (!lease || !equalBytes(lease.provider, owner) || leaseOver(lease, time)) return null;
  return lease;
}

/**
 * CONSENSUS RULE (docs/jobs.md "Leases and the chip's owner"): a chip whose lease still binds its
 * provider (bindingLeaseOf) is neither transferred nor deregistered, `CHIP_LEASED`. Either ended the
 * lease at once (endLeaseOfChip), so a provider skipped the notice its renter signed for by
 * moving the chip to another account or to itself. The provider gives notice (its `closeLease`, or
 * `closeOffer`), and once the lease has ended (the notice run, or the escrow or the booked hours out)
 * the chip moves. Null when no lease binds the chip. A lookup or three.
 */
export function chipLeasedRefusal(
  state: StateReader,
  chipId: Uint8Array,
  owner: Uint8Array,
  time: bigint,
  what: 'transferred' | 'deregistered',
): ValidationError | null {
  const lease = bindingLeaseOf(state, chipId, owner, time);
  if (!lease) return null;
  const endsAt = new Date(Number(leaseEndsAt(lease))).toISOString();
  const notice = getOffer(state, lease.offerId)?.noticeMs ?? 0n;
  const how =
    lease.status === LeaseStatus.closing
      ? `its notice runs until ${endsAt} (block time); ${what === 'transferred' ? 'transfer' : 'deregister'} it from then on`
      : `it runs until ${endsAt} (block time); give notice first (closeLease, withdrawOfferChip or closeOffer: the lease then ends within ${notice / 1000n} s) and ${what === 'transferred' ? 'transfer' : 'deregister'} the chip once it has ended`;
  return new ValidationError(
    'CHIP_LEASED',
    `chip ${short(chipId)} is leased (lease ${short(lease.id)}) and is not ${what} while the lease runs: ${how}`,
  );
}

/**
 * Whether admission may refuse `chipLeasedRefusal` on the state before the transaction. A lease whose
 * offer gives notice binds whatever the sender's own transactions do first. One whose offer gives
 * none ends at once by the provider's `closeLease` of it or `closeOffer` of its offer, earlier in
 * the same transaction or pending before it: `earlier` lists the sender's actions that run first
 * (undefined when they are not known: such a lease is then not refused). Without one of them the
 * transfer or deregistration fails in the block, paying nothing, so it is refused here too.
 */
export function chipLeasedRefusalAtAdmission(
  state: StateReader,
  chipId: Uint8Array,
  owner: Uint8Array,
  time: bigint,
  what: 'transferred' | 'deregistered',
  earlier?: readonly Action[],
): ValidationError | null {
  const lease = bindingLeaseOf(state, chipId, owner, time);
  if (!lease) return null;
  const offer = getOffer(state, lease.offerId);
  if ((offer?.noticeMs ?? 0n) === 0n) {
    if (earlier === undefined) return null;
    // A withdrawal of the offer's last chip fails (LAST_OFFER_CHIP), and the whole transaction
    // with it, for free: it ends nothing. No action adds a chip to an offer, so this state's count
    // bounds what the block sees.
    const withdrawable = offer !== null && offer.status === OfferStatus.open && offer.chipIds.length > 1;
    const ends = earlier.some(
      (a) =>
        (a.type === 'closeLease' && equalBytes(a.leaseId, lease.id)) ||
        (a.type === 'closeOffer' && equalBytes(a.offerId, lease.offerId)) ||
        (withdrawable &&
          a.type === 'withdrawOfferChip' &&
          equalBytes(a.offerId, lease.offerId) &&
          equalBytes(a.chipId, chipId)),
    );
    if (ends) return null;
  }
  return chipLeasedRefusal(state, chipId, owner, time, what);
}

/**
 * The chip of a lease left its provider (transferChip) or stopped being a chip (deregisterChip): the
 * lease is settled and closed in that same transaction. Left to the next epoch start, the
 * settlement would pay the provider for challenges answered by a chip it had sold (the buyer's),
 * and a chip deregistered and registered again within the epoch kept its lease on a fresh record
 * whose earlier misses no longer count. Both are refused while the lease binds the chip
 * (chipLeasedRefusal), so a lease of the provider has ended here, and the chain closed it in the
 * first block at or after its end (beginBlockMarket) with its own reason; what is left to close
 * here is a lease of another provider ('chipUnavailable'). O(1).
 */
export function endLeaseOfChip(state: StateOverlay, ctx: MarketContext, chipId: Uint8Array): MarketEvent[] {
  const { leaseId } = getChipMarket(state, chipId);
  if (!leaseId) return [];
  const lease = getLease(state, leaseId);
  if (!lease || lease.status === LeaseStatus.closed) return [];
  const p = getPociParams(state);
  return settleAndMaybeClose(state, lease, ctx, p, challengeLookup(state), 'chipUnavailable');
}

/**
 * CONSENSUS (docs/jobs.md, "How a lease is paid"): settles and closes every lease whose end (core's
 * leaseEndsAt) this block's time has reached, in end order, so that each is closed in the first block
 * at or after its end and judged by exactly the challenges drawn before it (settleLease). Each open
 * lease has one entry, at its current end (an opening inserts it, a notice or a top-up moves it, a
 * close removes it: market/state.ts), so the entries due are those of open leases that ended, at
 * most the open leases, however many leases were opened and closed before (each closed one took its
 * entry with it). The epoch start settles every open lease in one block anyway, so this adds no
 * larger bound. (The checks below keep a due entry of a closed or longer lease harmless; neither
 * is ever queued.) O(log n) per entry due, n the open leases; two reads when none is due.
 */
function closeEndedLeases(
  state: StateOverlay,
  ctx: MarketContext,
  p: PociParams,
  challengesOf: ChallengeLookup,
): MarketEvent[] {
  const events: MarketEvent[] = [];
  for (let next = nextLeaseEnd(state); next && next.time <= ctx.time; next = nextLeaseEnd(state)) {
    popLeaseEnd(state);
    const lease = getLease(state, next.leaseId);
    if (!lease) throw new Error(`queued lease ${toHex(next.leaseId)} has no record`);
    if (lease.status === LeaseStatus.closed) continue;
    const end = leaseEndsAt(lease);
    if (end > ctx.time) {
      queueLeaseEnd(state, lease.id, end);
      continue;
    }
    events.push(...settleAndMaybeClose(state, lease, ctx, p, challengesOf));
  }
  return events;
}

/**
 * Block-start bookkeeping: decide the held challenges whose window closed (decideHeldChallenge), close the
 * leases that ended by this block's time (closeEndedLeases); at
 * the first block of each epoch, settle every active lease (and close those that are over).
 * O(active leases) once per epoch; on other blocks, only the leases that end.
 */
export function beginBlockMarket(state: StateOverlay, ctx: MarketContext): MarketEvent[] {
  const p = getPociParams(state);
  const challengesOf = challengeLookup(state);
  const events: MarketEvent[] = [];
  // CONSENSUS CHANGE: the replay marks of leases whose posting window has passed.
  pruneMarks(state, ctx.time);
  // The open challenges of closed leases whose window closed in the block before.
  for (const c of takeHeldChallenges(state, ctx.height)) {
    const lease = getLease(state, c.leaseId);
    if (!lease) throw new Error(`held lease ${toHex(c.leaseId)} has no record`);
    const e = decideHeldChallenge(state, lease, c.epoch, c.slot);
    if (e) events.push(e);
  }
  events.push(...closeEndedLeases(state, ctx, p, challengesOf));
  const epoch = epochOf(ctx.height, p);
  if (epoch === 0n || ctx.height !== epochStart(epoch, p)) return events;
  for (const id of listItems(state, activeLeases)) {
    const lease = getLease(state, id);
    if (!lease) throw new Error(`active lease ${toHex(id)} has no record`);
    events.push(...settleAndMaybeClose(state, lease, ctx, p, challengesOf));
  }
  return events;
}

/** Cost so far of a lease, for views: what settling now would have drawn in total. */
export function leaseCostThrough(lease: Lease, time: bigint): bigint {
  const end = leaseEndsAt(lease);
  const t = time < end ? time : end;
  return costThrough(lease.pricePerHour, lease.startTime, t);
}
