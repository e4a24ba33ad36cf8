import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ED25519_TORSION_SUBGROUP, ed25519 } from '@noble/curves/ed25519.js';
import { bytesToNumberLE, numberToBytesLE } from '@noble/curves/utils.js';
import fc from 'fast-check';
import { concatBytes, fromHex, toHex } from '../../src/bytes.js';
import { ed25519PublicKey } from '../../src/crypto/ed25519.js';
import { sha512 } from '../../src/crypto/hash.js';
import {
  VRF_PROOF_LENGTH,
  vrfIsValidPublicKey,
  vrfProofToHash,
  vrfProve,
  vrfProveTrace,
  vrfPublicKey,
  vrfVerify,
} from '../../src/crypto/vrf.js';

// RFC 9381 Appendix B.3, "ECVRF-EDWARDS25519-SHA512-TAI", Examples 16, 17 and 18, with every
// intermediate value the RFC prints (x, the try-and-increment counter, H, k, U, V).
const RFC9381_TAI = [
  {
    name: 'Example 16 (empty alpha)',
    sk: '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
    pk: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
    alpha: '',
    x: '307c83864f2833cb427a2ef1c00a013cfdff2768d980c0a3a520f006904de94f',
    ctr: 0,
    H: '91bbed02a99461df1ad4c6564a5f5d829d0b90cfc7903e7a5797bd658abf3318',
    k:
      '7100f3d9eadb6dc4743b029736ff283f5be494128df128df2817106f345b8594' +
      'b6d6da2d6fb0b4c0257eb337675d96eab49cf39e66cc2c9547c2bf8b2a6afae4',
    U: 'aef27c725be964c6a9bf4c45ca8e35df258c1878b838f37d9975523f09034071',
    V: '5016572f71466c646c119443455d6cb9b952f07d060ec8286d678615d55f954f',
    pi:
      '8657106690b5526245a92b003bb079ccd1a92130477671f6fc01ad16f26f723f' +
      '26f8a57ccaed74ee1b190bed1f479d97' +
      '27d2d0f9b005a6e456a35d4fb0daab1268a1b0db10836d9826a528ca76567805',
    beta:
      '90cf1df3b703cce59e2a35b925d411164068269d7b2d29f3301c03dd757876ff' +
      '66b71dda49d2de59d03450451af026798e8f81cd2e333de5cdf4f3e140fdd8ae',
  },
  {
    name: 'Example 17 (alpha = 0x72)',
    sk: '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
    pk: '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
    alpha: '72',
    x: '68bd9ed75882d52815a97585caf4790a7f6c6b3b7f821c5e259a24b02e502e51',
    ctr: 1,
    H: '5b659fc3d4e9263fd9a4ed1d022d75eaacc20df5e09f9ea937502396598dc551',
    k:
      '42589bbf0c485c3c91c1621bb4bfe04aed7be76ee48f9b00793b2342acb9c167' +
      'cab856f9f9d4febc311330c20b0a8afd3743d05433e8be8d32522ecdc16cc5ce',
    U: '1dcb0a4821a2c48bf53548228b7f170962988f6d12f5439f31987ef41f034ab3',
    V: 'fd03c0bf498c752161bae4719105a074630a2aa5f200ff7b3995f7bfb1513423',
    pi:
      'f3141cd382dc42909d19ec5110469e4feae18300e94f304590abdced48aed593' +
      '3bf0864a62558b3ed7f2fea45c92a465' +
      '301b3bbf5e3e54ddf2d935be3b67926da3ef39226bbc355bdc9850112c8f4b02',
    beta:
      'eb4440665d3891d668e7e0fcaf587f1b4bd7fbfe99d0eb2211ccec90496310eb' +
      '5e33821bc613efb94db5e5b54c70a848a0bef4553a41befc57663b56373a5031',
  },
  {
    name: 'Example 18 (alpha = 0xaf82)',
    sk: 'c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7',
    pk: 'fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025',
    alpha: 'af82',
    x: '909a8b755ed902849023a55b15c23d11ba4d7f4ec5c2f51b1325a181991ea95c',
    ctr: 0,
    H: 'bf4339376f5542811de615e3313d2b36f6f53c0acfebb482159711201192576a',
    k:
      '38b868c335ccda94a088428cbf3ec8bc7955bfaffe1f3bd2aa2c59fc31a0febc' +
      '59d0e1af3715773ce11b3bbdd7aba8e3505d4b9de6f7e4a96e67e0d6bb6d6c3a',
    U: '2bae73e15a64042fcebf062abe7e432b2eca6744f3e8265bc38e009cd577ecd5',
    V: '88cba1cb0d4f9b649d9a86026b69de076724a93a65c349c988954f0961c5d506',
    pi:
      '9bc0f79119cc5604bf02d23b4caede71393cedfbb191434dd016d30177ccbf80' +
      '96bb474e53895c362d8628ee9f9ea3c0' +
      'e52c7a5c691b6c18c9979866568add7a2d41b00b05081ed0f58ee5e31b3a970e',
    beta:
      '645427e5d00c62a23fb703732fa5d892940935942101e456ecca7bb217c61c45' +
      '2118fec1219202a0edcf038bb6373241578be7217ba85a2687f7a0310b2df19f',
  },
];

const L = ed25519.Point.Fn.ORDER;

function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const out = bytes.slice();
  out[bit >> 3]! ^= 1 << (bit & 7);
  return out;
}

describe('vrf: RFC 9381 Appendix B.3 (ECVRF-EDWARDS25519-SHA512-TAI)', () => {
  for (const v of RFC9381_TAI) {
    test(`${v.name}: every intermediate value, pi and beta`, () => {
      const seed = fromHex(v.sk, 32);
      const alpha = fromHex(v.alpha);
      const trace = vrfProveTrace(seed, alpha);
      assert.equal(toHex(trace.publicKey), v.pk, 'PK');
      assert.equal(toHex(trace.x), v.x, 'x');
      assert.equal(trace.ctr, v.ctr, 'try_and_increment counter');
      assert.equal(toHex(trace.h), v.H, 'H');
      assert.equal(toHex(trace.k), v.k, 'k');
      assert.equal(toHex(trace.u), v.U, 'U = k*B');
      assert.equal(toHex(trace.v), v.V, 'V = k*H');
      assert.equal(toHex(trace.pi), v.pi, 'pi');
      assert.equal(toHex(trace.beta), v.beta, 'beta');
      assert.equal(toHex(vrfProve(seed, alpha)), v.pi);
      assert.equal(toHex(vrfPublicKey(seed)), v.pk);
    });

    test(`${v.name}: verify accepts the RFC's pi and returns its beta`, () => {
      const beta = vrfVerify(fromHex(v.pk), fromHex(v.pi), fromHex(v.alpha));
      assert.ok(beta);
      assert.equal(toHex(beta), v.beta);
      assert.equal(toHex(vrfProofToHash(fromHex(v.pi))!), v.beta);
    });
  }

  test('the RFC values are the lengths the suite defines', () => {
    for (const v of RFC9381_TAI) {
      assert.equal(fromHex(v.pi).length, VRF_PROOF_LENGTH);
      assert.equal(fromHex(v.beta).length, 64);
      assert.equal(fromHex(v.k).length, 64);
    }
  });

  test('the VRF key of a seed is its Ed25519 key (one validator key for both)', () => {
    for (const v of RFC9381_TAI) assert.equal(toHex(ed25519PublicKey(fromHex(v.sk))), v.pk);
  });
});

describe('vrf: rejection', () => {
  const v = RFC9381_TAI[2]!;
  const pk = fromHex(v.pk);
  const pi = fromHex(v.pi);
  const alpha = fromHex(v.alpha);

  test('flipping any one of the 640 bits of pi makes it invalid', () => {
    for (let bit = 0; bit < VRF_PROOF_LENGTH * 8; bit++) {
      assert.equal(vrfVerify(pk, flipBit(pi, bit), alpha), null, `bit ${bit}`);
    }
  });

  test('another key or another alpha does not verify', () => {
    for (const other of RFC9381_TAI.slice(0, 2)) {
      assert.equal(vrfVerify(fromHex(other.pk), pi, alpha), null);
      assert.equal(vrfVerify(pk, pi, fromHex(other.alpha)), null);
    }
    assert.equal(vrfVerify(pk, pi, concatBytes(alpha, Uint8Array.of(0))), null);
  });

  test('s + L (same residue, not reduced) is rejected, by verify and by proof_to_hash', () => {
    const s = bytesToNumberLE(pi.subarray(48));
    const unreduced = concatBytes(pi.subarray(0, 48), numberToBytesLE(s + L, 32));
    assert.equal(vrfVerify(pk, unreduced, alpha), null);
    assert.equal(vrfProofToHash(unreduced), null);
  });

  test('a Gamma that does not decode is rejected', () => {
    // y = 2^255 - 1 is above p: not a canonical field element.
    const badGamma = concatBytes(fromHex('ff'.repeat(31) + '7f'), pi.subarray(32));
    assert.equal(vrfVerify(pk, badGamma, alpha), null);
    assert.equal(vrfProofToHash(badGamma), null);
  });

  test('wrong lengths and non-bytes are rejected without throwing', () => {
    assert.equal(vrfVerify(pk, pi.subarray(0, 79), alpha), null);
    assert.equal(vrfVerify(pk, concatBytes(pi, Uint8Array.of(0)), alpha), null);
    assert.equal(vrfVerify(pk.subarray(0, 31), pi, alpha), null);
    assert.equal(vrfVerify(pk, pi, 'af82' as unknown as Uint8Array), null);
    assert.equal(vrfProofToHash(new Uint8Array(0)), null);
    assert.throws(() => vrfProve(new Uint8Array(31), alpha), /32 bytes/);
  });

  // The eight points of order dividing 8, plus non-canonical encodings of some of them.
  const smallOrder = [
    ...ED25519_TORSION_SUBGROUP,
    // y = 1 with the sign bit set: "x = 0, x_0 = 1", forbidden by RFC 8032 §5.1.3.
    '0100000000000000000000000000000000000000000000000000000000000080',
    // y = p + 1 ≡ 1 and y = p ≡ 0: field elements written unreduced.
    'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
    'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  ];

  test('small-order and non-canonical public keys are rejected', () => {
    for (const hex of smallOrder) {
      assert.equal(vrfIsValidPublicKey(fromHex(hex)), false, hex);
      assert.equal(vrfVerify(fromHex(hex), pi, alpha), null, hex);
    }
    for (const t of RFC9381_TAI) assert.equal(vrfIsValidPublicKey(fromHex(t.pk)), true);
  });

  test('the proof that key validation exists to stop is refused: identity key, identity Gamma', () => {
    // With Y = Gamma = identity, U = s*B and V = s*H for any s, so anyone can compute c and the
    // verification equation holds for every alpha. Only ECVRF_validate_key rejects it.
    const identity = fromHex(ED25519_TORSION_SUBGROUP[0]!);
    const Point = ed25519.Point;
    const H = testEncodeToCurve(identity, alpha);
    const s = 1n;
    const U = Point.BASE.multiply(s);
    const V = H.multiply(s);
    const digest = sha512(
      Uint8Array.of(3, 2),
      identity,
      H.toBytes(),
      identity,
      U.toBytes(),
      V.toBytes(),
      Uint8Array.of(0),
    );
    const forged = concatBytes(identity, digest.subarray(0, 16), numberToBytesLE(s, 32));
    assert.equal(vrfVerify(identity, forged, alpha), null);
  });
});

/** RFC 9381 §5.4.1.1 written out independently, for building forgeries in tests. */
function testEncodeToCurve(publicKey: Uint8Array, alpha: Uint8Array) {
  for (let ctr = 0; ctr < 256; ctr++) {
    const hash = sha512(Uint8Array.of(3, 1), publicKey, alpha, Uint8Array.of(ctr, 0));
    try {
      return ed25519.Point.fromBytes(hash.subarray(0, 32)).multiplyUnsafe(8n);
    } catch {}
  }
  throw new Error('unreachable');
}

describe('vrf: properties', () => {
  test('a seed array refilled with another seed proves with that seed; returned keys are copies', () => {
    const a = sha512(Uint8Array.of(1)).slice(0, 32);
    const b = sha512(Uint8Array.of(2)).slice(0, 32);
    const alpha = Uint8Array.of(7);
    const expectedA = vrfProve(a.slice(), alpha);
    const expectedB = vrfProve(b.slice(), alpha);
    const seed = a.slice();
    assert.deepEqual(vrfProve(seed, alpha), expectedA);
    seed.set(b);
    assert.deepEqual(vrfProve(seed, alpha), expectedB);
    assert.deepEqual(vrfPublicKey(seed), ed25519PublicKey(b));
    // Scribbling over what was handed out leaves the next proof and key as they were.
    vrfPublicKey(seed).fill(0);
    const trace = vrfProveTrace(seed, alpha);
    trace.publicKey.fill(0);
    trace.x.fill(0);
    assert.deepEqual(vrfProve(seed, Uint8Array.of(7)), expectedB);
    assert.deepEqual(vrfPublicKey(seed), ed25519PublicKey(b));
    assert.notEqual(vrfVerify(ed25519PublicKey(b), expectedB, alpha), null);
  });

  const seedArb = fc.uint8Array({ minLength: 32, maxLength: 32 });
  const alphaArb = fc.uint8Array({ minLength: 0, maxLength: 100 });

  test('prove then verify round-trips; beta = proof_to_hash(pi); another alpha fails', () => {
    fc.assert(
      fc.property(seedArb, alphaArb, alphaArb, (seed, alpha, other) => {
        const pi = vrfProve(seed, alpha);
        const pk = vrfPublicKey(seed);
        assert.equal(pi.length, VRF_PROOF_LENGTH);
        const beta = vrfVerify(pk, pi, alpha);
        assert.ok(beta);
        assert.deepEqual(beta, vrfProofToHash(pi));
        assert.deepEqual(pk, ed25519PublicKey(seed));
        if (toHex(other) !== toHex(alpha)) assert.equal(vrfVerify(pk, pi, other), null);
      }),
      { numRuns: 40 },
    );
  });

  test('proofs are deterministic and the output is a function of (key, alpha) only', () => {
    fc.assert(
      fc.property(seedArb, alphaArb, (seed, alpha) => {
        assert.deepEqual(vrfProve(seed, alpha), vrfProve(seed, alpha));
      }),
      { numRuns: 10 },
    );
  });
});

/**
 * RFC 9381 §5.1 written out without any cache, each point encoded where the RFC encodes it (the
 * form vrf.ts had before it cached the expanded key): the reference the cached prover must match.
 */
function referenceProve(seed: Uint8Array, alpha: Uint8Array): Uint8Array {
  const Point = ed25519.Point;
  const L = Point.Fn.ORDER;
  const h = sha512(seed);
  const scalar = h.slice(0, 32);
  scalar[0]! &= 248;
  scalar[31]! &= 127;
  scalar[31]! |= 64;
  const x = bytesToNumberLE(scalar) % L;
  const Y = Point.BASE.multiply(x);
  const H = testEncodeToCurve(Y.toBytes(), alpha);
  const gamma = H.multiply(x);
  const k = bytesToNumberLE(sha512(h.subarray(32), H.toBytes())) % L;
  const points = [Y, H, gamma, Point.BASE.multiply(k), H.multiply(k)].map((p) => p.toBytes());
  const c = bytesToNumberLE(sha512(Uint8Array.of(3, 2), ...points, Uint8Array.of(0)).subarray(0, 16));
  return concatBytes(gamma.toBytes(), numberToBytesLE(c, 16), numberToBytesLE((k + c * x) % L, 32));
}

describe('vrf: the last-seed key cache', () => {
  test('property: one array refilled, scribbled on and reused across seeds always proves with its current content', () => {
    const step = fc.record({
      seed: fc.nat(2),
      alpha: fc.uint8Array({ maxLength: 40 }),
      // What the caller does to its array after the call: nothing, flips a byte, or zeroes it.
      after: fc.constantFrom('keep', 'flip', 'zero'),
      // Scribbles over the key and scalar a trace handed out.
      trace: fc.boolean(),
    });
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ minLength: 32, maxLength: 32 }), { minLength: 3, maxLength: 3 }),
        fc.array(step, { minLength: 1, maxLength: 8 }),
        (seeds, steps) => {
          const shared = new Uint8Array(32);
          for (const s of steps) {
            shared.set(seeds[s.seed]!);
            const expected = referenceProve(seeds[s.seed]!, s.alpha);
            assert.deepEqual(vrfProve(shared, s.alpha), expected);
            assert.deepEqual(vrfPublicKey(shared), ed25519PublicKey(seeds[s.seed]!));
            if (s.trace) {
              const t = vrfProveTrace(shared, s.alpha);
              assert.deepEqual(t.pi, expected);
              assert.deepEqual(t.beta, vrfProofToHash(expected));
              t.publicKey.fill(0);
              t.x.fill(0);
            }
            if (s.after === 'flip') shared[0]! ^= 1;
            else if (s.after === 'zero') shared.fill(0);
            if (s.after !== 'keep') {
              // The array's new content is another seed, and proves as that seed.
              const now = shared.slice();
              assert.deepEqual(vrfProve(shared, s.alpha), referenceProve(now, s.alpha));
            }
          }
        },
      ),
      { numRuns: 15 },
    );
  });
});
