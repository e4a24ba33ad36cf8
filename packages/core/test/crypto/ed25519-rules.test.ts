/**
 * The protocol's Ed25519 rule set (docs/signatures.md) pinned by public vectors: RFC 8032 §7.1,
 * Wycheproof's ed25519_test.json, the "Taming the many EdDSAs" speccheck cases and the ZIP-215
 * small-order edge cases. Every vector is also checked by a second, independent implementation of
 * the same rules written on @noble/curves' point arithmetic, and against noble's own strict verifier,
 * whose disagreements with the protocol are listed, with their reason, below.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { ED25519_TORSION_SUBGROUP, ed25519 } from '@noble/curves/ed25519.js';
import { bytesToNumberLE, numberToBytesLE } from '@noble/curves/utils.js';
import { sha512 } from '@noble/hashes/sha2.js';
import { concatBytes, fromHex, toHex } from '../../src/bytes.js';
import {
  ED25519_SMALL_ORDER_ENCODINGS,
  ed25519PassesEncodingRules,
  ed25519Verify,
} from '../../src/crypto/ed25519.js';
import { RFC8032 } from './rfc8032.js';

const VECTORS = new URL('../../../test/vectors/', import.meta.url);
const Point = ed25519.Point;
const L = Point.Fn.ORDER;
const P = Point.Fp.ORDER;

interface Vector {
  set: string;
  id: string;
  publicKey: Uint8Array;
  message: Uint8Array;
  signature: Uint8Array;
  /** The protocol's verdict, where the source pins one (or we do). */
  expected: boolean;
}

/**
 * The rule set again, from the definitions and not from the code under test: decode A and R
 * strictly (y < p, no x = 0 with the sign bit), refuse small order by multiplying by the cofactor,
 * S < L as an integer, then the cofactorless equation [S]B = R + [k]A compared as points.
 */
function referenceVerify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  const rBytes = signature.subarray(0, 32);
  const s = bytesToNumberLE(signature.subarray(32));
  if (s >= L) return false;
  let a: InstanceType<typeof Point>;
  let r: InstanceType<typeof Point>;
  try {
    a = Point.fromBytes(publicKey, false);
    r = Point.fromBytes(rBytes, false);
  } catch {
    return false;
  }
  if (a.isSmallOrder() || r.isSmallOrder()) return false;
  const k = bytesToNumberLE(sha512(concatBytes(rBytes, publicKey, message))) % L;
  return Point.BASE.multiplyUnsafe(s).equals(r.add(a.multiplyUnsafe(k)));
}

function nobleStrict(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  try {
    return ed25519.verify(signature, message, publicKey, { zip215: false });
  } catch {
    return false;
  }
}

function nobleZip215(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  try {
    return ed25519.verify(signature, message, publicKey, { zip215: true });
  } catch {
    return false;
  }
}

function rfc8032Vectors(): Vector[] {
  return RFC8032.map((v) => ({
    set: 'rfc8032',
    id: v.name,
    publicKey: fromHex(v.public),
    message: fromHex(v.message),
    signature: fromHex(v.signature),
    expected: true,
  }));
}

interface WycheproofFile {
  testGroups: {
    publicKey: { pk: string };
    tests: { tcId: number; msg: string; sig: string; result: 'valid' | 'invalid' | 'acceptable' }[];
  }[];
}

function wycheproofVectors(): Vector[] {
  const file = JSON.parse(
    readFileSync(new URL('wycheproof/ed25519_test.json', VECTORS), 'utf8'),
  ) as WycheproofFile;
  const out: Vector[] = [];
  for (const group of file.testGroups) {
    for (const t of group.tests) {
      // The file has no "acceptable" Ed25519 results; if a new copy brings some, they must be pinned.
      assert.notEqual(t.result, 'acceptable', `tcId ${t.tcId}: pin the protocol's answer`);
      out.push({
        set: 'wycheproof',
        id: String(t.tcId),
        publicKey: fromHex(group.publicKey.pk),
        message: fromHex(t.msg),
        signature: fromHex(t.sig),
        expected: t.result === 'valid',
      });
    }
  }
  return out;
}

/**
 * The protocol's answer for each row of the speccheck table (test/vectors/ed25519-speccheck/README.md):
 * only 3 (mixed-order A and R, the exact equation holds) is valid. 0 to 2 have a small-order A or R,
 * 4 and 5 hold only after multiplying by the cofactor, 6 and 7 have S ≥ L, 8 to 11 a non-canonical
 * small-order A or R. (The linked OpenSSL 3.0 alone accepts 0, 1, 2 and 11.)
 */
const SPECCHECK_VALID = new Set([3]);

function speccheckVectors(): Vector[] {
  const cases = JSON.parse(readFileSync(new URL('ed25519-speccheck/cases.json', VECTORS), 'utf8')) as {
    message: string;
    pub_key: string;
    signature: string;
  }[];
  assert.equal(cases.length, 12);
  return cases.map((c, i) => ({
    set: 'speccheck',
    id: String(i),
    publicKey: fromHex(c.pub_key),
    message: fromHex(c.message),
    signature: fromHex(c.signature),
    expected: SPECCHECK_VALID.has(i),
  }));
}

/**
 * Every encoding that a lenient (ZIP-215) decoder maps to a small-order point, derived from the
 * torsion subgroup: a lenient decoder reads y modulo p and the sign bit, so the encodings of a
 * point are its canonical one, the same with the sign bit flipped when x = 0 (the flip would select
 * -x = x), and y + p when that still fits in 255 bits (y < 19).
 */
function smallOrderEncodings(): string[] {
  const out = new Set<string>();
  for (const hex of ED25519_TORSION_SUBGROUP) {
    const point = Point.fromHex(hex);
    assert.ok(point.isSmallOrder());
    const canonical = point.toBytes();
    const y = bytesToNumberLE(canonical) & ((1n << 255n) - 1n);
    const sign = canonical[31]! & 0x80;
    const ys = [y, ...(y + P < 1n << 255n ? [y + P] : [])];
    const signs = point.x === 0n ? [0, 0x80] : [sign];
    for (const yy of ys) {
      for (const bit of signs) {
        const bytes = numberToBytesLE(yy, 32);
        bytes[31]! |= bit;
        // The lenient decoder agrees that this is the same small-order point.
        assert.ok(Point.fromBytes(bytes, true).equals(point), toHex(bytes));
        out.add(toHex(bytes));
      }
    }
  }
  return [...out].sort();
}

/**
 * ZIP-215's edge cases: each small-order encoding as A, each as R, S = 0. Under ZIP-215 every one
 * of the 196 is valid; under the protocol's rules every one is refused.
 */
function zip215Vectors(): Vector[] {
  const message = new TextEncoder().encode('Zcash');
  const encodings = smallOrderEncodings();
  const out: Vector[] = [];
  for (const a of encodings) {
    for (const r of encodings) {
      out.push({
        set: 'zip215',
        id: `A=${a.slice(0, 8)}… R=${r.slice(0, 8)}…`,
        publicKey: fromHex(a),
        message,
        signature: concatBytes(fromHex(r), new Uint8Array(32)),
        expected: false,
      });
    }
  }
  return out;
}

/**
 * Where noble's strict verifier (`zip215: false`) and the protocol differ, by design: noble checks
 * the cofactored equation and does not refuse a small-order R. Any other disagreement fails the test.
 */
const NOBLE_STRICT_EXCEPTIONS: Record<string, string> = {
  'speccheck/2': 'R of small order: noble strict accepts, the protocol refuses small-order R',
  'speccheck/4':
    'holds only cofactored: noble checks [8]([S]B - R - [k]A) = 0, the protocol the exact equation',
  'speccheck/5': 'holds only cofactored (mixed-order A, R of order L), as speccheck/4',
};

const ALL = [...rfc8032Vectors(), ...wycheproofVectors(), ...speccheckVectors(), ...zip215Vectors()];

describe('ed25519 rule set: public vectors', () => {
  test('vector counts: RFC 8032 (5), Wycheproof (151), speccheck (12), ZIP-215 small order (14 × 14)', () => {
    const count = (set: string) => ALL.filter((v) => v.set === set).length;
    assert.equal(count('rfc8032'), 5);
    assert.equal(count('wycheproof'), 151);
    assert.equal(count('speccheck'), 12);
    assert.equal(count('zip215'), 196);
  });

  for (const set of ['rfc8032', 'wycheproof', 'speccheck', 'zip215']) {
    test(`${set}: ed25519Verify gives the pinned verdict for every vector`, () => {
      for (const v of ALL.filter((x) => x.set === set)) {
        assert.equal(ed25519Verify(v.publicKey, v.message, v.signature), v.expected, `${v.set}/${v.id}`);
      }
    });
  }

  test('a second implementation of the same rules (noble point arithmetic) agrees on every vector', () => {
    for (const v of ALL) {
      assert.equal(referenceVerify(v.publicKey, v.message, v.signature), v.expected, `${v.set}/${v.id}`);
    }
  });

  test('noble strict mode agrees on every vector except the documented exceptions', () => {
    const differences: string[] = [];
    for (const v of ALL) {
      if (nobleStrict(v.publicKey, v.message, v.signature) !== v.expected)
        differences.push(`${v.set}/${v.id}`);
    }
    assert.deepEqual(differences.sort(), Object.keys(NOBLE_STRICT_EXCEPTIONS).sort());
  });

  test('the ZIP-215 vectors are what ZIP-215 says: all 196 valid under its rules', () => {
    for (const v of ALL.filter((x) => x.set === 'zip215')) {
      assert.equal(nobleZip215(v.publicKey, v.message, v.signature), true, v.id);
    }
  });
});

describe('ed25519 rule set: the checks before the library', () => {
  test('the small-order table is exactly the 14 encodings derived from the torsion subgroup', () => {
    const derived = smallOrderEncodings();
    assert.equal(derived.length, 14);
    assert.deepEqual([...ED25519_SMALL_ORDER_ENCODINGS].sort(), derived);
  });

  test('the identity key with R = identity, S = 0 verifies nothing (any message)', () => {
    const identity = fromHex('0100000000000000000000000000000000000000000000000000000000000000');
    const signature = concatBytes(identity, new Uint8Array(32));
    for (const message of ['', 'hello', 'transfer everything']) {
      assert.equal(ed25519Verify(identity, new TextEncoder().encode(message), signature), false);
    }
    // The lenient reading that let it through before: the equation itself holds.
    assert.equal(nobleZip215(identity, new Uint8Array(0), signature), true);
  });

  test('S = L and S = L + 1 are refused, S = L - 1 passes the encoding rules', () => {
    const { publicKey, signature } = ALL.find((v) => v.set === 'rfc8032')!;
    const withS = (s: bigint) => concatBytes(signature.subarray(0, 32), numberToBytesLE(s, 32));
    assert.equal(ed25519PassesEncodingRules(publicKey, withS(L)), false);
    assert.equal(ed25519PassesEncodingRules(publicKey, withS(L + 1n)), false);
    assert.equal(ed25519PassesEncodingRules(publicKey, withS((1n << 256n) - 1n)), false);
    assert.equal(ed25519PassesEncodingRules(publicKey, withS(L - 1n)), true);
    assert.equal(ed25519PassesEncodingRules(publicKey, withS(0n)), true);
  });

  test('a valid signature with S + L (the malleated twin) is refused', () => {
    for (const v of rfc8032Vectors()) {
      const s = bytesToNumberLE(v.signature.subarray(32));
      const twin = concatBytes(v.signature.subarray(0, 32), numberToBytesLE(s + L, 32));
      assert.equal(ed25519Verify(v.publicKey, v.message, twin), false, v.id);
    }
  });

  test('non-canonical A or R (y ≥ p, every one of the 19 values, either sign bit) are refused', () => {
    const { publicKey, signature } = ALL.find((v) => v.set === 'rfc8032')!;
    for (let k = 0n; k < 19n; k++) {
      for (const bit of [0, 0x80]) {
        const bytes = numberToBytesLE(P + k, 32);
        bytes[31]! |= bit;
        assert.equal(ed25519PassesEncodingRules(bytes, signature), false, `A: y = p + ${k}`);
        const r = concatBytes(bytes, signature.subarray(32));
        assert.equal(ed25519PassesEncodingRules(publicKey, r), false, `R: y = p + ${k}`);
      }
    }
    // y = p - 1 is canonical (it is (0, -1), refused as small order; with another y it would pass).
    const below = numberToBytesLE(P - 2n, 32);
    assert.equal(ed25519PassesEncodingRules(below, signature), true);
  });

  test('every small-order encoding is refused as A and as R, with a valid-looking rest', () => {
    const { publicKey, signature } = ALL.find((v) => v.set === 'rfc8032')!;
    for (const hex of ED25519_SMALL_ORDER_ENCODINGS) {
      const bytes = fromHex(hex);
      assert.equal(ed25519PassesEncodingRules(bytes, signature), false, `A ${hex}`);
      assert.equal(
        ed25519PassesEncodingRules(publicKey, concatBytes(bytes, signature.subarray(32))),
        false,
        `R ${hex}`,
      );
    }
  });

  test('mixed-order keys: accepted as keys; a signature verifies only by the exact equation', () => {
    // speccheck 3 to 5 use a mixed-order A (full-order point plus torsion); pinned above. Here:
    // a mixed-order key built from an RFC key passes the encoding rules, and a signature of the
    // full-order key does not verify under the mixed-order one.
    const v = rfc8032Vectors()[0]!;
    const torsion = Point.fromHex(ED25519_TORSION_SUBGROUP[1]!);
    const mixed = Point.fromBytes(v.publicKey).add(torsion).toBytes();
    assert.equal(ed25519PassesEncodingRules(mixed, v.signature), true);
    assert.equal(ed25519Verify(mixed, v.message, v.signature), false);
    assert.equal(referenceVerify(mixed, v.message, v.signature), false);
  });
});
