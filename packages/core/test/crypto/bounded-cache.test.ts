import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BoundedCache } from '../../src/crypto/bounded-cache.js';

test('bounded cache: bounded, and hot keys survive a flood of fresh ones', () => {
  const cache = new BoundedCache<number>(100);
  cache.set('hot', 1);
  for (let i = 0; i < 10_000; i++) {
    cache.set(`fresh-${i}`, i);
    assert.ok(cache.size <= 100);
    if (i % 25 === 0) assert.equal(cache.get('hot'), 1, `hot key lost after ${i} inserts`);
  }
  assert.equal(cache.get('fresh-9999'), 9999);
  assert.equal(cache.get('fresh-0'), undefined);
});

// The public-key caches hold up to 200 000 keys, and anyone who can make a node or a provider
// check a signature under a key of their choosing adds one. Once the cache is full, each insert
// must still cost about what an insert into a plain Map costs: a cache whose eviction walks
// over deleted entries (FIFO on a V8 Map) makes every fresh key cost more than the signature check
// it was meant to save.
test('bounded cache: inserting into a full cache costs about what a plain Map insert costs', () => {
  const limit = 200_000;
  const n = 100_000;
  const rounds = 5;
  const keys = Array.from({ length: limit + rounds * n }, (_, i) => `k${i}`);
  const time = (run: () => void) => {
    const t0 = performance.now();
    run();
    return performance.now() - t0;
  };
  const cache = new BoundedCache<number>(limit);
  for (let i = 0; i < limit; i++) cache.set(keys[i]!, i);
  // Best of five against a fresh Map each, so that a busy machine does not decide the outcome (on
  // two loaded cores one round in three can be descheduled; a walking eviction is slower in all).
  let full = Number.POSITIVE_INFINITY;
  let plain = Number.POSITIVE_INFINITY;
  for (let round = 0; round < rounds; round++) {
    const from = limit + round * n;
    full = Math.min(
      full,
      time(() => {
        for (let i = from; i < from + n; i++) cache.set(keys[i]!, i);
      }),
    );
    const map = new Map<string, number>();
    plain = Math.min(
      plain,
      time(() => {
        for (let i = from; i < from + n; i++) map.set(keys[i]!, i);
      }),
    );
  }
  assert.ok(
    full < 10 * plain + 50,
    `${n} inserts into a full cache took ${full.toFixed(0)} ms, into a Map ${plain.toFixed(0)} ms`,
  );
});
