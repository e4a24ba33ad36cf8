/**
 * The compute-rental RPC methods (docs/rpc.md, "Market"): offers, leases and provider records as
 * the latest committed state has them. Lists come from the market's on-chain linked lists, so no
 * method scans the state.
 */
import {
  challengeLookup,
  chipModelPower,
  consecutiveMisses,
  decode,
  effectiveStatus,
  encodeAddress,
  equalBytes,
  escrowUntil,
  getChip,
  getChipMarket,
  getLease,
  getMarketParams,
  getOffer,
  getPociParams,
  getProviderRecord,
  hasProvenOnline,
  LEASE_STATUS_NAMES,
  type Lease,
  LeaseStatus,
  leaseCostThrough,
  leaseEndsAt,
  leaseKey,
  leasesByProvider,
  leasesByRenter,
  listItems,
  MAX_OFFER_CHIPS,
  type Offer,
  OfferStatus,
  offersByProvider,
  openOffers,
  toHex,
  txEventCodec,
  UncError,
  unansweredSlots,
} from '@unc/core';
import type { LeaseJson, OfferChipJson, OfferJson, ProviderRecordJson, UptimeJson } from '@unc/sdk';
import type { RpcContext } from './rpc/context.js';
import type { RpcImplementation } from './rpc/typed.js';
import { notFoundProven, proveRecord } from './state-proofs.js';

const notFound = (what: string) => new UncError('NOT_FOUND', `${what} not found`);

export const UPTIME_WINDOW_MS = 24n * 3_600_000n;
const MAX_LISTED = 1000;
/** At most this many slot outcomes of a chip's window are counted (the newest). */
const UPTIME_EVENTS = 2000;
/**
 * Chips whose window is kept (least recently used dropped first): every chip of a full
 * unc_getOffers listing (1,000 offers of up to 32 chips) twice over, ~1 KB each on a 1 s chain.
 */
export const UPTIME_CACHED_CHIPS = 2 * MAX_LISTED * MAX_OFFER_CHIPS;

function ratio(num: bigint, den: bigint, places: number): string {
  const scale = 10n ** BigInt(places);
  const v = (num * scale + den / 2n) / den;
  return `${v / scale}.${(v % scale).toString().padStart(places, '0')}`;
}

type MarketMethodName =
  | 'unc_getOffers'
  | 'unc_getOffer'
  | 'unc_getLease'
  | 'unc_getLeases'
  | 'unc_getProviderRecord';

export function marketMethods(node: Pick<RpcContext, 'chain'>): Pick<RpcImplementation, MarketMethodName> {
  const { chain } = node;
  const now = () => chain.head.header.time;

  /**
   * The answer for the head it was computed at: `time` is derived from the head's time, so it is
   * the same for every call until the next block, and the search reads whole blocks (up to
   * maxBlockBytes each, ~log2(height) of them) for requests of 1 work unit.
   */
  let lastSearch: { head: bigint; time: bigint; height: bigint } | null = null;

  /** The lowest height whose block time is at or after `time` (binary search over stored blocks). */
  async function heightAtTime(time: bigint): Promise<bigint> {
    const head = chain.height;
    if (lastSearch && lastSearch.head === head && lastSearch.time === time) return lastSearch.height;
    let lo = 0n;
    let hi = head;
    while (lo < hi) {
      const mid = (lo + hi) / 2n;
      const block = await chain.blockAt(mid);
      if (block && block.header.time >= time) hi = mid;
      else lo = mid + 1n;
    }
    lastSearch = { head, time, height: lo };
    return lo;
  }

  /**
   * Per chip, the slot outcomes of its event log read so far (a positive slot height answered, a
   * negative one missed), the newest UPTIME_EVENTS of the window, and the height read through.
   * Reading a chip's whole log (up to 2,000 events) per chip of an offer, per request, let one
   * 1-unit unc_getOffer of a 32-chip offer cost 64,000 reads and decodes; now a chip's events of
   * the window are read once, and after that only those of the blocks since. Concurrent requests
   * wait for the read in progress rather than each reading the window again.
   */
  type Outcomes = { through: bigint; since: bigint; slots: number[]; reading: Promise<void> | null };
  const outcomes = new Map<string, Outcomes>();

  async function readOutcomes(chipId: Uint8Array, entry: Outcomes, head: bigint): Promise<void> {
    // An outcome of a slot at or above `since` is recorded at or above it (answers and misses come
    // after their slot), so the window's events lie at heights since..head.
    const from = entry.through + 1n > entry.since ? entry.through + 1n : entry.since;
    const rows = await chain.db.chipEvents(chipId, UPTIME_EVENTS, { from, to: head });
    for (let i = rows.length - 1; i >= 0; i--) {
      const e = decode(txEventCodec, rows[i]!.event);
      if (e.type === 'slotAnswered') entry.slots.push(Number(e.slotHeight));
      else if (e.type === 'slotMissed') entry.slots.push(-Number(e.slotHeight));
    }
    entry.through = head;
  }

  async function slotOutcomes(chipId: Uint8Array, since: bigint): Promise<number[]> {
    const key = toHex(chipId);
    const head = chain.height;
    const entry = outcomes.get(key) ?? { through: since - 1n, since, slots: [], reading: null };
    // The window only moves forward (a request that computed its window before the head moved
    // gets the newer one's counts).
    if (since > entry.since) entry.since = since;
    outcomes.delete(key); // re-inserted last: the map's order is least recently used first
    outcomes.set(key, entry);
    if (outcomes.size > UPTIME_CACHED_CHIPS) outcomes.delete(outcomes.keys().next().value!);
    while (entry.through < head) {
      entry.reading ??= readOutcomes(chipId, entry, head).finally(() => {
        entry.reading = null;
      });
      await entry.reading;
    }
    const floor = Number(entry.since);
    entry.slots = entry.slots.filter((h) => Math.abs(h) >= floor).slice(-UPTIME_EVENTS);
    return entry.slots;
  }

  async function uptime(chipId: Uint8Array, since: bigint): Promise<UptimeJson> {
    const chip = getChip(chain.state, chipId);
    let answered = 0;
    let missed = 0;
    if (chip) {
      for (const h of await slotOutcomes(chipId, since)) {
        if (h > 0) answered++;
        else missed++;
      }
      // Misses are recorded lazily (at the chip's next answer): count the ones not yet recorded.
      const p = getPociParams(chain.state);
      const pending = unansweredSlots(
        chip,
        chip.settledThrough,
        chain.height,
        p,
        challengeLookup(chain.state),
        1024,
      );
      missed += pending.filter((s) => s.slotHeight >= since).length;
    }
    const total = answered + missed;
    return {
      answered,
      missed,
      ratio: total === 0 ? null : ratio(BigInt(answered), BigInt(total), 4),
      windowMs: Number(UPTIME_WINDOW_MS),
    };
  }

  function offerStatus(o: Offer): OfferJson['status'] {
    if (o.status === OfferStatus.open) return 'open';
    return now() < o.closesAt ? 'closing' : 'closed';
  }

  async function offerJson(o: Offer, since: bigint): Promise<OfferJson> {
    const p = getPociParams(chain.state);
    const challengesOf = challengeLookup(chain.state);
    const chips: OfferChipJson[] = [];
    for (const chipId of o.chipIds) {
      const chip = getChip(chain.state, chipId);
      const leaseId = getChipMarket(chain.state, chipId).leaseId;
      const active = chip
        ? effectiveStatus(chain.state, chip, chain.head.header.time).status === 'active'
        : false;
      const online =
        chip !== null &&
        active &&
        consecutiveMisses(chip, chain.height, p, challengesOf) < p.offlineAfterMisses;
      const owned = chip !== null && equalBytes(chip.owner, o.provider);
      chips.push({
        chipId: toHex(chipId),
        vendorId: chip?.vendorId ?? '',
        modelId: chip?.modelId ?? '',
        power: (chip ? chipModelPower(chain.state, chip) : 0n).toString(),
        online,
        // Rentable: applyOpenLease refuses a chip that has not answered a challenge since its
        // registration (it is 'online' by the miss rule, but not proven online).
        available:
          o.status === OfferStatus.open &&
          owned &&
          online &&
          chip !== null &&
          hasProvenOnline(chip) &&
          leaseId === null,
        leaseId: leaseId ? toHex(leaseId) : null,
        uptime: await uptime(chipId, since),
      });
    }
    return {
      id: toHex(o.id),
      provider: encodeAddress(o.provider),
      price: o.pricePerHour.toString(),
      minHours: o.minHours,
      maxHours: o.maxHours,
      noticeMs: Number(o.noticeMs),
      endpoint: o.endpoint,
      tlsFingerprints: o.tlsFingerprints.map(toHex),
      attributes: { ...o.attributes, runtimes: [...o.attributes.runtimes] },
      status: offerStatus(o),
      createdHeight: Number(o.createdHeight),
      createdTime: Number(o.createdTime),
      closesAt: o.status === OfferStatus.open ? null : Number(o.closesAt),
      leasesOpened: Number(o.leasesOpened),
      chips,
      power: chips.reduce((s, c) => s + BigInt(c.power), 0n).toString(),
      available: chips.filter((c) => c.available).length,
    };
  }

  function leaseJson(l: Lease): LeaseJson {
    const t = now();
    const offer = getOffer(chain.state, l.offerId);
    const closed = l.status === LeaseStatus.closed;
    // The moment the lease ends (escrow exhausted or end time), computed from the chain alone.
    const endsAt = leaseEndsAt(l);
    let unsettled = closed ? 0n : leaseCostThrough(l, t) - l.accrued;
    if (unsettled > l.remaining) unsettled = l.remaining;
    if (unsettled < 0n) unsettled = 0n;
    const ended = !closed && t >= endsAt;
    const status: LeaseJson['status'] = closed
      ? 'closed'
      : ended
        ? 'ended'
        : (LEASE_STATUS_NAMES[l.status] ?? 'active');
    const endedReason = escrowUntil(l) < l.endTime ? 'escrowExhausted' : l.closingReason || 'ended';
    return {
      id: toHex(l.id),
      offerId: toHex(l.offerId),
      chipId: toHex(l.chipId),
      provider: encodeAddress(l.provider),
      renter: encodeAddress(l.renter),
      renterPublicKey: toHex(l.renterPublicKey),
      endpoint: offer?.endpoint ?? '',
      tlsFingerprints: offer?.tlsFingerprints.map(toHex) ?? [],
      pricePerHour: l.pricePerHour.toString(),
      hours: l.hours,
      deposit: l.deposited.toString(),
      paid: l.paid.toString(),
      refunded: l.refunded.toString(),
      remaining: l.remaining.toString(),
      unsettled: unsettled.toString(),
      // Closed: paid through its close (or its end). Not settledTime: a lease closed with a
      // challenge still open keeps its last period held and unsettled for W blocks (core settleLease).
      escrowUntil: Number(closed ? (l.closedTime < endsAt ? l.closedTime : endsAt) : endsAt),
      status,
      startHeight: Number(l.startHeight),
      startTime: Number(l.startTime),
      endTime: Number(l.endTime),
      settledTime: Number(l.settledTime),
      slotsAnswered: Number(l.slotsAnswered),
      slotsMissed: Number(l.slotsMissed),
      closingReason: ended ? endedReason : l.closingReason || null,
      disputes: l.disputes,
      closedHeight: closed ? Number(l.closedHeight) : null,
      closedTime: closed ? Number(l.closedTime) : null,
      closedReason: closed ? l.closedReason : null,
    };
  }

  return {
    unc_getOffers: async ({ provider, all: allFlag }): Promise<OfferJson[]> => {
      const all = allFlag === true;
      const since = await heightAtTime(now() - UPTIME_WINDOW_MS);
      const ids =
        provider == null
          ? listItems(chain.state, openOffers, MAX_LISTED)
          : listItems(chain.state, offersByProvider(provider), MAX_LISTED);
      const out: OfferJson[] = [];
      for (const id of ids) {
        const o = getOffer(chain.state, id);
        if (!o || (!all && offerStatus(o) === 'closed')) continue;
        out.push(await offerJson(o, since));
      }
      return out;
    },

    unc_getOffer: async ({ id }): Promise<OfferJson> => {
      const o = getOffer(chain.state, id);
      if (!o) throw notFound(`offer ${toHex(id)}`);
      return offerJson(o, await heightAtTime(now() - UPTIME_WINDOW_MS));
    },

    /** With `proof`: the lease record and its offer's (endpoint, TLS fingerprints), proven. */
    unc_getLease: ({ id, proof }): LeaseJson => {
      const l = getLease(chain.state, id);
      if (proof !== true) {
        if (!l) throw notFound(`lease ${toHex(id)}`);
        return leaseJson(l);
      }
      // What a light client derives (sdk checkLease): the offer, and the market parameters by
      // which a renter times its disputes (disputeWaitMs).
      const proven = proveRecord(chain.state, chain.head.header, leaseKey(id), (reader) => {
        if (!l) return;
        getOffer(reader, l.offerId);
        getMarketParams(reader);
      });
      if (!l) throw notFoundProven(`lease ${toHex(id)}`, proven);
      return { ...leaseJson(l), ...proven };
    },

    // The schema admits exactly one of the two.
    unc_getLeases: ({ renter, provider }): LeaseJson[] => {
      const list = renter ? leasesByRenter(renter) : leasesByProvider(provider!);
      return listItems(chain.state, list, MAX_LISTED).map((id) => leaseJson(getLease(chain.state, id)!));
    },

    unc_getProviderRecord: ({ address: addr }): ProviderRecordJson => {
      const r = getProviderRecord(chain.state, addr);
      const offers = listItems(chain.state, offersByProvider(addr), MAX_LISTED)
        .map((id) => getOffer(chain.state, id)!)
        .filter((o) => o.status === OfferStatus.open);
      const active = listItems(chain.state, leasesByProvider(addr), MAX_LISTED).filter(
        (id) => getLease(chain.state, id)?.status !== LeaseStatus.closed,
      ).length;
      return {
        address: encodeAddress(addr),
        offers: Number(r.offers),
        leases: Number(r.leases),
        jobsReceipted: Number(r.jobsReceipted),
        ratingsCount: Number(r.ratingsCount),
        ratingsSum: Number(r.ratingsSum),
        rating: r.ratingsCount === 0n ? null : ratio(r.ratingsSum, r.ratingsCount, 2),
        disputes: Number(r.disputes),
        earnings: r.earnings.toString(),
        openOffers: offers.map((o) => toHex(o.id)),
        activeLeases: active,
      };
    },
  };
}
