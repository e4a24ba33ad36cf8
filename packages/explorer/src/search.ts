/**
 * What a search box entry is, decided by its shape alone (64 hex digits: a block, a transaction, a
 * chip, a lease or an offer — the search page asks the node which).
 */
export type SearchTarget =
  | { kind: 'height'; height: number }
  | { kind: 'hash'; hash: string }
  | { kind: 'address'; address: string }
  | { kind: 'invalid'; reason: string };

export function classify(input: string): SearchTarget {
  const q = input.trim();
  if (q === '')
    return {
      kind: 'invalid',
      reason: 'Type a block height, a hash, a chip, lease or offer id, or an address.',
    };
  const height = q.replace(/^#/, '').replace(/[,_\s]/g, '');
  if (/^\d+$/.test(height)) {
    const n = Number(height);
    if (Number.isSafeInteger(n)) return { kind: 'height', height: n };
  }
  const hex = q.replace(/^0x/i, '');
  if (/^[0-9a-fA-F]{64}$/.test(hex)) return { kind: 'hash', hash: hex.toLowerCase() };
  if (/^unc1[0-9a-z]{6,}$/i.test(q)) return { kind: 'address', address: q.toLowerCase() };
  if (/^[0-9a-fA-F]+$/.test(hex))
    return { kind: 'invalid', reason: `A hash has 64 hex digits; this has ${hex.length}.` };
  return {
    kind: 'invalid',
    reason:
      'Not a block height, a block or transaction hash, a chip, lease or offer id (64 hex digits) or an address (unc1…).',
  };
}
