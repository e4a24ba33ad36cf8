/**
 * Marketplace facts from the node's offer, lease and provider views (PROTOCOL.md §8): escrow split,
 * lease time, ratings, an offer's uptime. Pure functions of the RPC's JSON, no React.
 */
import { big, formatDuration, formatPercent, fraction, visibleText } from './format';
import type { LeaseJson, OfferChipJson, OfferJson, ProviderRecordJson, UptimeJson } from './sdk';

export type { LeaseJson, OfferChipJson, OfferJson, ProviderRecordJson, UptimeJson };

/** Escrow = paid + refunded + remaining (the chain keeps it exact); the bar's three parts. */
export interface EscrowSplit {
  total: bigint;
  paid: bigint;
  refunded: bigint;
  remaining: bigint;
}

export function escrowSplit(lease: Pick<LeaseJson, 'paid' | 'refunded' | 'remaining'>): EscrowSplit {
  const paid = big(lease.paid);
  const refunded = big(lease.refunded);
  const remaining = big(lease.remaining);
  return { total: paid + refunded + remaining, paid, refunded, remaining };
}

export const ESCROW_COLORS = {
  paid: 'var(--violet)',
  refunded: 'var(--sky)',
  remaining: 'var(--accent)',
} as const;

export function escrowFractions(s: EscrowSplit): { paid: number; refunded: number; remaining: number } {
  return {
    paid: fraction(s.paid, s.total),
    refunded: fraction(s.refunded, s.total),
    remaining: fraction(s.remaining, s.total),
  };
}

export type Tone = 'ok' | 'warn' | 'neutral';

export function statusTone(status: LeaseJson['status'] | OfferJson['status']): Tone {
  return status === 'active' || status === 'open' ? 'ok' : status === 'closing' ? 'warn' : 'neutral';
}

/** "3 h", "45 min", "2 d": a notice period or a span of time in ms. */
export function formatSpan(ms: number): string {
  if (!Number.isFinite(ms) || ms <= 0) return 'none';
  if (ms % 86_400_000 === 0) return `${ms / 86_400_000} d`;
  return formatDuration(ms);
}

/** "4.4 ★ (5)" or "no ratings". */
export function ratingText(r: Pick<ProviderRecordJson, 'ratingsCount' | 'ratingsSum' | 'rating'>): string {
  const n = Number(r.ratingsCount);
  if (!n) return 'no ratings';
  const mean = r.rating ?? (Number(r.ratingsSum) / n).toFixed(2);
  return `${Number(mean).toFixed(1)} ★ (${n})`;
}

/** The uptime of several chips over the same window, added up. */
export function combinedUptime(chips: Pick<OfferChipJson, 'uptime'>[]): UptimeJson | null {
  if (chips.length === 0) return null;
  const answered = chips.reduce((s, c) => s + c.uptime.answered, 0);
  const missed = chips.reduce((s, c) => s + c.uptime.missed, 0);
  const decided = answered + missed;
  return {
    answered,
    missed,
    ratio: decided > 0 ? (answered / decided).toFixed(4) : null,
    windowMs: chips[0]!.uptime.windowMs,
  };
}

/** "99.2%" and a title saying what it counts; "—" before any slot was decided. */
export function uptimeText(u: UptimeJson | null): { text: string; title: string } {
  if (!u || u.ratio === null) return { text: '—', title: 'No slot decided in the window yet' };
  const hours = Math.round(u.windowMs / 3_600_000);
  return {
    text: formatPercent(Number(u.ratio), 1),
    title: `${u.answered} of ${u.answered + u.missed} slots answered in the last ${hours} h`,
  };
}

/** Price per hour × hours: exact base units. */
export function costFor(pricePerHour: string, hours: number): bigint {
  return big(pricePerHour) * BigInt(Math.max(0, Math.floor(hours)));
}

/** A reason code as words: "renterClosed" → "renter closed", "escrow_empty" → "escrow empty". */
export function reasonText(reason: string | null | undefined): string {
  // A tooltip: only a string fits. On the page, ReasonText (its hidden characters as elements).
  return visibleText(reasonWords(reason));
}

/** reasonText's words, raw: reasons are the chain's codes, but a node can answer anything. */
export function reasonWords(reason: string | null | undefined): string {
  if (!reason) return '';
  return reason
    .replace(/[_-]+/g, ' ')
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .toLowerCase()
    .trim();
}

/** 1 UNC in base units. */
const UNC = 10n ** 18n;

/**
 * Base units per TFLOPS-hour of renting `chip` from an offer priced `pricePerHour` (per chip):
 * price × 1000 / power (power is TFLOPS × 1000), floored; null for a chip of no rated power.
 */
export function pricePerTflopsHour(pricePerHour: string, chip: Pick<OfferChipJson, 'power'>): bigint | null {
  const power = BigInt(chip.power);
  return power > 0n ? (BigInt(pricePerHour) * 1000n) / power : null;
}

/** The offer's cheapest chip per TFLOPS-hour (what a renter looking for compute compares). */
export function bestPricePerTflopsHour(offer: Pick<OfferJson, 'price' | 'chips'>): bigint | null {
  let best: bigint | null = null;
  for (const c of offer.chips) {
    const p = pricePerTflopsHour(offer.price, c);
    if (p !== null && (best === null || p < best)) best = p;
  }
  return best;
}

/** "1.25" UNC → base units; null if it is not a plain non-negative decimal with ≤ 18 decimals. */
export function parseUncInput(text: string): bigint | null {
  const m = /^\s*(\d{1,12})(?:\.(\d{1,18}))?\s*$/.exec(text);
  if (!m) return null;
  return BigInt(m[1]!) * UNC + BigInt((m[2] ?? '').padEnd(18, '0'));
}

export interface OfferFilter {
  /** A chip model id: offers with at least one chip of it. */
  model: string;
  /** Base units per TFLOPS-hour at most (the offer's cheapest chip), or null for any. */
  maxPricePerTflopsHour: bigint | null;
  /** free: a chip can be rented now; leased: a chip is under a running lease. */
  availability: 'all' | 'free' | 'leased';
}

export function filterOffers(offers: OfferJson[], f: OfferFilter): OfferJson[] {
  return offers.filter((o) => {
    if (f.model && !o.chips.some((c) => c.modelId === f.model)) return false;
    if (f.availability === 'free' && o.available === 0) return false;
    if (f.availability === 'leased' && !o.chips.some((c) => c.leaseId !== null)) return false;
    if (f.maxPricePerTflopsHour !== null) {
      const best = bestPricePerTflopsHour(o);
      if (best === null || best > f.maxPricePerTflopsHour) return false;
    }
    return true;
  });
}
