import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ed25519PublicKey, ed25519Sign, VerifiedSignatures } from '../src/index.js';

test('a remembered pass vouches only for its own (key, message, signature), not for another split of the same bytes', () => {
  const seed = new Uint8Array(32).fill(7);
  const publicKey = ed25519PublicKey(seed);
  const message = new TextEncoder().encode('a heartbeat challenge');
  const signature = ed25519Sign(seed, message);
  const verified = new VerifiedSignatures();
  verified.add({ publicKey, message, signature });
  assert.ok(verified.isVerified(publicKey, message, signature));
  fc.assert(
    fc.property(fc.integer({ min: -31, max: 63 }), (shift) => {
      fc.pre(shift !== 0);
      // The same concatenated bytes, cut elsewhere between key and signature.
      const all = new Uint8Array([...publicKey, ...signature]);
      const cut = 32 + shift;
      assert.equal(verified.isVerified(all.subarray(0, cut), message, all.subarray(cut)), false);
    }),
  );
  // Bytes moved between the signature and the message.
  const moved = new Uint8Array([...signature.subarray(63), ...message]);
  assert.equal(verified.isVerified(publicKey, moved, signature.subarray(0, 63)), false);
});
