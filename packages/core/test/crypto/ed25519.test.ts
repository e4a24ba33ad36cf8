import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ed25519 } from '@noble/curves/ed25519.js';
import fc from 'fast-check';
import { fromHex } from '../../src/bytes.js';
import { ed25519PublicKey, ed25519Sign, ed25519Verify } from '../../src/crypto/ed25519.js';
import { RFC8032 } from './rfc8032.js';

function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const out = bytes.slice();
  out[bit >> 3]! ^= 1 << (bit & 7);
  return out;
}

describe('ed25519: RFC 8032 §7.1 vectors', () => {
  for (const v of RFC8032) {
    test(v.name, () => {
      const seed = fromHex(v.secret);
      const publicKey = fromHex(v.public);
      const message = fromHex(v.message);
      const signature = fromHex(v.signature);
      assert.deepEqual(ed25519PublicKey(seed), publicKey);
      assert.deepEqual(ed25519Sign(seed, message), signature);
      assert.equal(ed25519Verify(publicKey, message, signature), true);
      assert.equal(ed25519Verify(publicKey, message, flipBit(signature, 0)), false);
    });
  }

  test('TEST 1024 message is the 1023 bytes the RFC states', () => {
    assert.equal(fromHex(RFC8032[3]!.message).length, 1023);
  });
});

describe('ed25519: agreement with @noble/curves', () => {
  const seedArb = fc.uint8Array({ minLength: 32, maxLength: 32 });
  const messageArb = fc.uint8Array({ minLength: 0, maxLength: 300 });

  test('public keys and signatures are byte-identical; each verifies the other', () => {
    fc.assert(
      fc.property(seedArb, messageArb, (seed, message) => {
        const publicKey = ed25519PublicKey(seed);
        const signature = ed25519Sign(seed, message);
        assert.deepEqual(publicKey, ed25519.getPublicKey(seed));
        assert.deepEqual(signature, ed25519.sign(message, seed));
        assert.equal(ed25519Verify(publicKey, message, signature), true);
        assert.equal(ed25519.verify(signature, message, publicKey), true);
      }),
      { numRuns: 100 },
    );
  });

  test('flipping any bit of the message or the signature breaks verification', () => {
    fc.assert(
      fc.property(seedArb, messageArb, fc.nat(), fc.boolean(), (seed, message, bitSeed, inMessage) => {
        const publicKey = ed25519PublicKey(seed);
        const signature = ed25519Sign(seed, message);
        if (inMessage && message.length > 0) {
          const tampered = flipBit(message, bitSeed % (message.length * 8));
          assert.equal(ed25519Verify(publicKey, tampered, signature), false);
          assert.equal(ed25519.verify(signature, tampered, publicKey), false);
        } else {
          const tampered = flipBit(signature, bitSeed % 512);
          assert.equal(ed25519Verify(publicKey, message, tampered), false);
          assert.equal(ed25519.verify(tampered, message, publicKey), false);
        }
      }),
      { numRuns: 200 },
    );
  });

  test('every one of the 512 signature bits matters for one fixed signature', () => {
    const seed = fromHex(RFC8032[2]!.secret);
    const message = fromHex(RFC8032[2]!.message);
    const signature = ed25519Sign(seed, message);
    const publicKey = ed25519PublicKey(seed);
    for (let bit = 0; bit < 512; bit++) {
      assert.equal(ed25519Verify(publicKey, message, flipBit(signature, bit)), false, `bit ${bit}`);
    }
  });
});

describe('ed25519: malformed input', () => {
  const v = RFC8032[1]!;
  const publicKey = fromHex(v.public);
  const message = fromHex(v.message);
  const signature = fromHex(v.signature);

  test('verify returns false, never throws, for wrong-length keys and signatures', () => {
    for (const length of [0, 1, 31, 33, 64]) {
      assert.equal(ed25519Verify(new Uint8Array(length), message, signature), false);
    }
    for (const length of [0, 1, 63, 65, 128]) {
      assert.equal(ed25519Verify(publicKey, message, new Uint8Array(length)), false);
    }
    assert.equal(ed25519Verify(publicKey, message, signature.subarray(0, 63)), false);
  });

  test('verify returns false for keys that are not curve points and for non-bytes', () => {
    // y = 2 has no x on the curve, so this key cannot decode.
    const notAPoint = new Uint8Array(32);
    notAPoint[0] = 2;
    assert.equal(ed25519Verify(notAPoint, message, signature), false);
    assert.equal(ed25519Verify(new Uint8Array(32).fill(0xff), message, signature), false);
    const junk = 'not bytes' as unknown as Uint8Array;
    assert.equal(ed25519Verify(junk, message, signature), false);
    assert.equal(ed25519Verify(publicKey, junk, signature), false);
    assert.equal(ed25519Verify(publicKey, message, junk), false);
  });

  test('verify rejects a signature under another key', () => {
    assert.equal(ed25519Verify(fromHex(RFC8032[0]!.public), message, signature), false);
  });

  test('sign and publicKey refuse seeds that are not 32 bytes', () => {
    for (const length of [0, 31, 33, 64]) {
      assert.throws(() => ed25519Sign(new Uint8Array(length), message), {
        name: 'UncError',
        code: 'BAD_KEY',
      });
      assert.throws(() => ed25519PublicKey(new Uint8Array(length)), { name: 'UncError', code: 'BAD_KEY' });
    }
  });

  test('results are plain Uint8Arrays, independent of the cache', () => {
    const seed = fromHex(v.secret);
    const a = ed25519Sign(seed, message);
    a.fill(0);
    assert.deepEqual(ed25519Sign(seed, message), signature);
    assert.equal(Object.getPrototypeOf(ed25519PublicKey(seed)), Uint8Array.prototype);
  });

  test('verification stays correct after the key cache has overflowed', () => {
    const known = fromHex(v.public);
    assert.equal(ed25519Verify(known, message, signature), true);
    // More distinct keys than the cache holds (10,000), so the known key is evicted and rebuilt.
    const other = new Uint8Array(32);
    for (let i = 0; i < 10_050; i++) {
      new DataView(other.buffer).setUint32(0, i);
      assert.equal(ed25519Verify(other, message, signature), false);
    }
    assert.equal(ed25519Verify(known, message, signature), true);
    assert.equal(ed25519Verify(known, message, flipBit(signature, 7)), false);
  });
});
