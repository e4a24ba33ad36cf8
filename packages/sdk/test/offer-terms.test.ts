/**
 * The renter signs the offer terms it was shown (offerTermsDigest): the digest is computed from the
 * node's report with core's leaseTermsDigest, so it equals the chain's exactly when every term the
 * node reported is the chain's; a report that cannot be a chain offer gets nothing signed.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  addressFromPublicKey,
  ed25519PublicKey,
  encodeAddress,
  fromHex,
  leaseTermsDigest,
  sha256,
  toHex,
  utf8,
} from '@unc/core';
import fc from 'fast-check';
import { describeOfferTerms, offerTermsDigest } from '../src/index.js';
import type { OfferJson } from '../src/views.js';

const providerKey = sha256(utf8('offer-terms provider'));
const provider = addressFromPublicKey(ed25519PublicKey(providerKey));

const offer = (over: Partial<OfferJson> = {}): OfferJson =>
  ({
    id: 'ab'.repeat(32),
    provider: encodeAddress(provider),
    price: '1000',
    minHours: 1,
    maxHours: 10,
    noticeMs: 600_000,
    endpoint: 'https://provider.example',
    tlsFingerprints: ['11'.repeat(32)],
    attributes: { memoryMiB: 1024, region: 'eu', runtimes: ['onnx'] },
    status: 'open',
    createdHeight: 1,
    createdTime: 0,
    closesAt: null,
    leasesOpened: 0,
    chips: [{ chipId: 'cd'.repeat(32), vendorId: 'nvidia', modelId: 'h100', power: '989000' }],
    power: '989000',
    available: 1,
    ...over,
  }) as OfferJson;

test('offerTermsDigest is core’s digest of the terms shown; price, TLS and status are not among them', () => {
  const o = offer();
  const expected = leaseTermsDigest({
    offerId: fromHex(o.id, 32),
    provider,
    chips: [{ chipId: fromHex('cd'.repeat(32), 32), vendorId: 'nvidia', modelId: 'h100', power: 989_000n }],
    minHours: 1,
    maxHours: 10,
    noticeMs: 600_000n,
    endpoint: 'https://provider.example',
    attributes: { memoryMiB: 1024, region: 'eu', runtimes: ['onnx'] },
  });
  assert.deepEqual(offerTermsDigest(o), expected);
  // Signed apart (maxPricePerHour), rotated during leases, checked on their own (OFFER_CLOSED).
  assert.deepEqual(offerTermsDigest(offer({ price: '5', tlsFingerprints: [], leasesOpened: 9 })), expected);
  assert.notDeepEqual(offerTermsDigest(offer({ noticeMs: 0 })), expected);
  assert.notDeepEqual(offerTermsDigest(offer({ endpoint: 'https://other.example' })), expected);
});

test('a report that cannot be a chain offer is BAD_OFFER: nothing is signed on it', () => {
  for (const bad of [
    offer({ provider: 'unc1provider' }),
    offer({ id: 'zz' }),
    offer({ chips: [{ chipId: 'cd' } as OfferJson['chips'][number]] }),
  ]) {
    assert.throws(
      () => offerTermsDigest(bad),
      (err: unknown) => (err as { code?: string }).code === 'BAD_OFFER',
    );
  }
});

test('a number the node wrote other than plainly is BAD_OFFER: the confirmation prints it as written', () => {
  const chip = offer().chips[0]!;
  // '\r' and spaces: printed as is, they blanked the chip id and its vendor/model on the chip's
  // line (and the label on the notice's), while BigInt() read the chain's value and the digest matched.
  for (const bad of [
    offer({ chips: [{ ...chip, power: `\r${' '.repeat(120)}989000` }] }),
    offer({ chips: [{ ...chip, power: '0xf1748' }] }),
    offer({ chips: [{ ...chip, power: ' 989000' }] }),
    offer({ noticeMs: `\r${' '.repeat(40)}600000` as unknown as number }),
    offer({ noticeMs: '600000\n' as unknown as number }),
    offer({ noticeMs: 600_000.5 }),
  ]) {
    assert.throws(
      () => offerTermsDigest(bad),
      (err: unknown) => (err as { code?: string }).code === 'BAD_OFFER',
      JSON.stringify(bad.chips[0]!.power) + JSON.stringify(bad.noticeMs),
    );
    assert.throws(() => describeOfferTerms(bad), JSON.stringify(bad.chips[0]!.power));
  }
  // As an honest node writes them (and power as a number, which JSON may carry): the same digest.
  const plain = offerTermsDigest(offer());
  assert.deepEqual(offerTermsDigest(offer({ noticeMs: '600000' as unknown as number })), plain);
  assert.deepEqual(
    offerTermsDigest(offer({ chips: [{ ...chip, power: 989_000 as unknown as string }] })),
    plain,
  );
});

test('describeOfferTerms shows every signed term and the digest signed', () => {
  const o = offer();
  const text = describeOfferTerms(o).join('\n');
  for (const part of [
    o.provider,
    '600000 ms',
    'https://provider.example',
    '1…10',
    '1024 MiB',
    'region eu',
    'onnx',
    'nvidia/h100',
    '989000',
    toHex(offerTermsDigest(o)),
  ])
    assert.ok(text.includes(part), `${part} missing from:\n${text}`);
  // A caller that computed the digest to sign passes it: the same lines.
  assert.deepEqual(describeOfferTerms(o, offerTermsDigest(o)), describeOfferTerms(o));
});

test('property: the digest of an offer as the node shows it is the chain’s digest of its terms', () => {
  const text = (max: number) => fc.string({ maxLength: max }).filter((s) => utf8(s).length <= max);
  const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
  const termsArb = fc.record({
    offerId: bytes(32),
    provider: bytes(20),
    chips: fc.array(
      fc.record({
        chipId: bytes(32),
        vendorId: text(16),
        modelId: text(16),
        power: fc.bigInt({ min: 0n, max: 2n ** 100n }),
      }),
      { maxLength: 4 },
    ),
    minHours: fc.nat(87_600),
    maxHours: fc.nat(87_600),
    noticeMs: fc.bigInt({ min: 0n, max: 30n * 86_400_000n }),
    endpoint: text(40).map((s) => `https://${s}`),
    attributes: fc.record({
      memoryMiB: fc.nat(2 ** 31),
      region: text(32),
      runtimes: fc.array(text(32), { maxLength: 8 }),
    }),
  });
  fc.assert(
    fc.property(termsArb, (t) => {
      const shown = offer({
        id: toHex(t.offerId),
        provider: encodeAddress(t.provider),
        chips: t.chips.map((c) => ({
          chipId: toHex(c.chipId),
          vendorId: c.vendorId,
          modelId: c.modelId,
          power: c.power.toString(),
        })) as OfferJson['chips'],
        minHours: t.minHours,
        maxHours: t.maxHours,
        noticeMs: Number(t.noticeMs),
        endpoint: t.endpoint,
        attributes: { ...t.attributes },
      });
      assert.deepEqual(offerTermsDigest(shown), leaseTermsDigest(t));
    }),
    { numRuns: 200 },
  );
});
