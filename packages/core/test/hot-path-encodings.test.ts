/**
 * The heartbeat path builds its hashes and state keys by hand for speed (platform/node.ts: short
 * SHA-256 inputs copied into one buffer and hashed in one call; poci/liveness.ts: u64 key fields
 * written without a DataView). Both are consensus bytes: these pin them to the plain way of
 * computing the same thing, on both sides of the one-shot size limit and at the u64 edges.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { challengeClassKey, epochKey, StateSpace } from '../src/index.js';
import * as nodeP from '../src/platform/node.js';
import * as webP from '../src/platform/web.js';

/** A part, sometimes a view into a larger buffer (as a signature inside a transaction is). */
const part = fc
  .tuple(fc.uint8Array({ maxLength: 700 }), fc.nat({ max: 16 }), fc.nat({ max: 16 }))
  .map(([b, before, after]) => {
    const big = new Uint8Array(before + b.length + after).fill(0xa5);
    big.set(b, before);
    return big.subarray(before, before + b.length);
  });

test('SHA-256 of several parts is the hash of their concatenation, below and above the one-shot limit', () => {
  fc.assert(
    fc.property(fc.array(part, { maxLength: 6 }), (parts) => {
      const plain = createHash('sha256');
      for (const p of parts) plain.update(p);
      const expected = new Uint8Array(plain.digest());
      assert.deepEqual(nodeP.sha256(parts), expected);
      assert.deepEqual(webP.sha256(parts), expected);
    }),
    { numRuns: 300 },
  );
  // Exactly at the limit and one byte either side.
  for (const n of [0, 1, 1023, 1024, 1025, 4096]) {
    const a = new Uint8Array(n).map((_, i) => i * 7);
    const expected = new Uint8Array(createHash('sha256').update(a).digest());
    assert.deepEqual(nodeP.sha256([a]), expected);
    assert.deepEqual(nodeP.sha256([a.subarray(0, n >> 1), a.subarray(n >> 1)]), expected);
  }
});

function u64(v: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, v);
  return b;
}

test('epoch and class keys: the space byte and each u64 big-endian, as a DataView writes them', () => {
  const edges = [0n, 1n, 255n, 256n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 63n, 2n ** 64n - 1n];
  const anyU64 = fc.oneof(fc.constantFrom(...edges), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }));
  fc.assert(
    fc.property(anyU64, anyU64, (epoch, cls) => {
      assert.deepEqual(epochKey(epoch), Uint8Array.of(StateSpace.epoch, ...u64(epoch)));
      assert.deepEqual(
        challengeClassKey(epoch, cls),
        Uint8Array.of(StateSpace.challengeClass, ...u64(epoch), ...u64(cls)),
      );
    }),
    { numRuns: 300 },
  );
  // Out of range is an error, never a silently wrapped key.
  assert.throws(() => epochKey(-1n), RangeError);
  assert.throws(() => epochKey(2n ** 64n), RangeError);
  assert.throws(() => challengeClassKey(0n, -1n), RangeError);
});
