/**
 * Chip, offer and lease ids as users type them: all 64 hex digits, or a unique prefix of at least
 * MIN_PREFIX digits (the text output shows 16, followed by "…", and that is accepted as it is).
 * A prefix is resolved against what the node lists; two matches are an error naming both.
 */
import { UncError } from '@unc/core';
import type { UncClient } from '@unc/sdk';
import type { Context } from './context.js';
import { pinnedLeaseIds } from './lease-pins.js';

export type IdKind = 'chip' | 'offer' | 'lease';

export const MIN_PREFIX = 6;

/** How many keyring keys' offers and leases a prefix is looked up among. */
const MAX_KEYS = 32;

/** How many candidates an ambiguity error lists. */
const SHOWN = 8;

/** A whole id (lower case, no 0x) or a prefix to resolve; anything else is an error. */
export function parseId(text: string, kind: IdKind): { id: string } | { prefix: string } {
  const hex = text
    .trim()
    .replace(/^0x/i, '')
    .replace(/(…|\.\.\.)$/, '')
    .toLowerCase();
  if (/^[0-9a-f]{64}$/.test(hex)) return { id: hex };
  if (/^[0-9a-f]+$/.test(hex) && hex.length >= MIN_PREFIX && hex.length < 64) return { prefix: hex };
  throw new UncError(
    'BAD_ID',
    `invalid ${kind} id "${text}": expected 64 hex digits or a unique prefix of at least ${MIN_PREFIX}`,
  );
}

/** The one candidate that starts with `prefix`, or an error that lists what matched. */
export function pickByPrefix(
  prefix: string,
  candidates: Iterable<string>,
  kind: IdKind,
  searched: string,
): string {
  const matches = [...new Set([...candidates].filter((c) => c.startsWith(prefix)))].sort();
  if (matches.length === 1) return matches[0]!;
  if (matches.length === 0) {
    throw new UncError(
      'NOT_FOUND',
      `no ${kind} id starts with ${prefix} among ${searched}; give all 64 hex digits`,
    );
  }
  const shown = matches.slice(0, SHOWN).map((m) => `  ${m}`);
  throw new UncError(
    'AMBIGUOUS_ID',
    [
      `${prefix} is the start of ${matches.length} ${kind} ids; give more digits:`,
      ...shown,
      ...(matches.length > SHOWN ? [`  … and ${matches.length - SHOWN} more`] : []),
    ].join('\n'),
  );
}

/**
 * The ids a prefix is resolved against, from list methods the node already serves: every chip on
 * chain (one page of unc_listChips from just below the prefix), the open offers with their leases, and the offers and leases of the keys in this
 * keyring (as provider or renter). A lease of somebody else on a closed offer needs its full id.
 */
async function candidates(
  client: UncClient,
  kind: IdKind,
  prefix: string,
  addresses: string[],
): Promise<Set<string>> {
  const ids = new Set<string>();
  if (kind === 'chip') {
    // Chips are listed in id order from a cursor: the page that starts just below the prefix holds
    // every chip the prefix names first, so one request searches all chips, however many there are.
    const page = await client.listChips({ cursor: chipCursorBefore(prefix), limit: SHOWN + 1 });
    for (const c of page.chips) if (c.chipId.startsWith(prefix)) ids.add(c.chipId);
    return ids;
  }
  const open = await client.getOffers();
  if (kind === 'offer') {
    for (const o of open) ids.add(o.id);
    for (const provider of addresses)
      for (const o of await client.getOffers({ provider, all: true })) ids.add(o.id);
    return ids;
  }
  for (const o of open) for (const c of o.chips) if (c.leaseId) ids.add(c.leaseId);
  for (const who of addresses) {
    for (const l of await client.getLeases({ renter: who })) ids.add(l.id);
    for (const l of await client.getLeases({ provider: who })) ids.add(l.id);
  }
  return ids;
}

/**
 * The cursor of unc_listChips after which the ids starting with `prefix` come: the prefix padded
 * with zeros, less one (null, the start of the list, for a prefix of zeros).
 */
export function chipCursorBefore(prefix: string): string | null {
  const first = BigInt(`0x${prefix.padEnd(64, '0')}`);
  return first === 0n ? null : (first - 1n).toString(16).padStart(64, '0');
}

const SEARCHED: Record<IdKind, string> = {
  chip: 'every chip on chain',
  offer: `the open offers and those of the first ${MAX_KEYS} keys in the keyring`,
  lease: `the open offers' leases, the leases of the first ${MAX_KEYS} keys in the keyring and those this home opened`,
};

/** A whole id as given, or the one id its prefix names (asks the node). */
export async function resolveId(ctx: Context, kind: IdKind, text: string): Promise<string> {
  const parsed = parseId(text, kind);
  if ('id' in parsed) return parsed.id;
  // Two requests per key: a keyring of hundreds of keys would flood the node, so the search stops
  // at MAX_KEYS (a full id always works).
  const keys = kind === 'chip' ? [] : ctx.keyring().list().slice(0, MAX_KEYS);
  const addresses = keys.map((k) => k.address);
  const found = await candidates(ctx.client(), kind, parsed.prefix, addresses);
  // The leases this home opened are known here, whatever the node lists (lease-pins.ts).
  if (kind === 'lease') for (const id of pinnedLeaseIds(ctx.home)) found.add(id);
  return pickByPrefix(parsed.prefix, found, kind, SEARCHED[kind]);
}
