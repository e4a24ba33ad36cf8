/**
 * The simulator's verification memo: the same answers as without it for every input (forgeries
 * included, and remembered as refusals), the real check run once per distinct input, and off again
 * once every holder has released it.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { ed25519PublicKey, ed25519Sign, ed25519Verify } from '../../src/crypto/ed25519.js';
import { holdVerificationMemo } from '../../src/crypto/verification-memo.js';
import { vrfProve, vrfPublicKey, vrfVerify } from '../../src/crypto/vrf.js';

const seed = new Uint8Array(32).fill(9);
const publicKey = ed25519PublicKey(seed);

describe('verification memo', () => {
  test('a forged signature is refused with the memo held, and the refusal is remembered', () => {
    const message = new TextEncoder().encode('vote');
    const good = ed25519Sign(seed, message);
    const forged = good.slice();
    forged[5]! ^= 1;
    const memo = holdVerificationMemo();
    try {
      assert.equal(ed25519Verify(publicKey, message, good), true);
      assert.equal(ed25519Verify(publicKey, message, forged), false);
      assert.deepEqual(memo.stats, { hits: 0, misses: 2 });
      // Asked again (as every other simulated node would be): the same answers, from the memo.
      assert.equal(ed25519Verify(publicKey, message, forged), false);
      assert.equal(ed25519Verify(publicKey, message, good), true);
      assert.deepEqual(memo.stats, { hits: 2, misses: 2 });
      // The good signature on another message is another input, checked for itself.
      assert.equal(ed25519Verify(publicKey, new TextEncoder().encode('votf'), good), false);
      assert.equal(memo.stats.misses, 3);
    } finally {
      memo.release();
    }
  });

  test('VRF: proofs and verdicts are the same with and without the memo; altered proofs fail', () => {
    const pk = vrfPublicKey(seed);
    const alpha = Uint8Array.of(1, 2, 3);
    const plainProof = vrfProve(seed, alpha);
    const plainBeta = vrfVerify(pk, plainProof, alpha);
    const altered = plainProof.slice();
    altered[40]! ^= 0x10;
    const memo = holdVerificationMemo();
    try {
      for (let i = 0; i < 2; i++) {
        const proof = vrfProve(seed, alpha);
        assert.deepEqual(proof, plainProof);
        assert.deepEqual(vrfVerify(pk, proof, alpha), plainBeta);
        assert.equal(vrfVerify(pk, altered, alpha), null);
        // A caller that scribbles on what it got back does not change the memo's answer.
        proof.fill(0);
      }
      assert.deepEqual(memo.stats, { hits: 3, misses: 3 });
    } finally {
      memo.release();
    }
  });

  test('held twice, it stays on until both release it, then checks run every time', () => {
    const message = Uint8Array.of(7);
    const sig = ed25519Sign(seed, message);
    const a = holdVerificationMemo();
    const b = holdVerificationMemo();
    ed25519Verify(publicKey, message, sig);
    a.release();
    a.release();
    ed25519Verify(publicKey, message, sig);
    assert.deepEqual(b.stats, { hits: 1, misses: 1 });
    b.release();
    ed25519Verify(publicKey, message, sig);
    assert.deepEqual(b.stats, { hits: 1, misses: 1 });
  });

  test('property: with the memo held, any tampering with key, message or signature gives the plain answer', () => {
    const message = new TextEncoder().encode('proposal');
    const sig = ed25519Sign(seed, message);
    fc.assert(
      fc.property(
        fc.nat(127),
        fc.integer({ min: 1, max: 255 }),
        fc.constantFrom(0, 1, 2),
        (at, flip, which) => {
          const inputs = [publicKey.slice(), message.slice(), sig.slice()];
          const target = inputs[which]!;
          target[at % target.length]! ^= flip;
          const [pk, m, s] = inputs as [Uint8Array, Uint8Array, Uint8Array];
          const memo = holdVerificationMemo();
          let memoised: boolean[];
          try {
            // The genuine signature first (as a simulation would), then the tampered one twice.
            memoised = [
              ed25519Verify(publicKey, message, sig),
              ed25519Verify(pk, m, s),
              ed25519Verify(pk, m, s),
            ];
          } finally {
            memo.release();
          }
          const plain = ed25519Verify(pk, m, s);
          return plain === false && memoised[0] === true && memoised[1] === plain && memoised[2] === plain;
        },
      ),
      { numRuns: 60 },
    );
  });
});
