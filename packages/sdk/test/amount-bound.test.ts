/**
 * Amounts are u128 on chain. A node answering a larger one (a price, a balance) must meet a clear
 * refusal in the client, not a RangeError thrown later while a transaction carrying it is encoded.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as v from 'valibot';
import { checkLeaseTerms, openLeaseAction } from '../src/index.js';
import { OfferResult } from '../src/schema/results.js';
import { Amount, U128_MAX } from '../src/schema/shapes.js';
import type { OfferJson } from '../src/views.js';

const offer = (price: string): OfferJson =>
  ({
    id: 'ab'.repeat(32),
    provider: 'unc1provider',
    price,
    minHours: 1,
    maxHours: 10,
    noticeMs: 0,
    endpoint: 'https://provider.example',
    tlsFingerprints: [],
    attributes: { memoryMiB: 1024, region: 'eu', runtimes: [] },
    status: 'open',
    createdHeight: 1,
    createdTime: 0,
    closesAt: null,
    leasesOpened: 0,
    chips: [],
    power: '1000',
    available: 1,
  }) as OfferJson;

test('Amount: every u128 parses, one above it is a schema error that says so', () => {
  assert.equal(v.parse(Amount, '0'), 0n);
  assert.equal(v.parse(Amount, U128_MAX.toString()), U128_MAX);
  for (const above of [(U128_MAX + 1n).toString(), '9'.repeat(39), '1'.repeat(40), '9'.repeat(100_000)]) {
    const r = v.safeParse(Amount, above);
    assert.ok(!r.success, `${above.slice(0, 50)} was accepted`);
    assert.match(r.issues[0].message, /u128/);
  }
  // In an answer: the offer's price is refused as malformed, naming the field.
  const answer = offer((U128_MAX + 1n).toString());
  assert.ok(v.safeParse(OfferResult, offer(U128_MAX.toString())).success);
  const r = v.safeParse(OfferResult, answer);
  assert.ok(!r.success);
  assert.equal(v.getDotPath(r.issues[0]), 'price');
});

test('the lease pre-flight refuses a price or an escrow above u128 clearly, before anything is encoded', () => {
  const code = (fn: () => unknown) => {
    try {
      fn();
      return null;
    } catch (e) {
      return (e as { code?: string }).code ?? String(e);
    }
  };
  assert.equal(
    code(() => checkLeaseTerms(offer((U128_MAX + 1n).toString()), 1, undefined, undefined)),
    'BAD_OFFER',
  );
  // A u128 price is accepted, but not for so many hours that price × hours leaves u128.
  assert.equal(
    code(() => checkLeaseTerms(offer(U128_MAX.toString()), 2, undefined, undefined)),
    'BAD_DEPOSIT',
  );
  const escrow = checkLeaseTerms(offer(U128_MAX.toString()), 1, undefined, undefined);
  assert.equal(escrow, U128_MAX);
  assert.equal(
    openLeaseAction('ab'.repeat(32), 1, {
      deposit: escrow,
      maxPricePerHour: U128_MAX,
      termsDigest: new Uint8Array(32),
    }).type,
    'openLease',
  );
});
