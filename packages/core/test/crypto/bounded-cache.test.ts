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
test('bounded cache: inserting into a full cache never walks or deletes Map entries', () => {
  // No timing here (a unit test must not assert on speed): the cost that matters comes from
  // per-insert eviction that iterates or deletes in a Map, so count those calls instead. A FIFO
  // cache that evicts with keys().next() and delete() makes 2 per insert; this one makes none.
  const limit = 1_000;
  const cache = new BoundedCache<number>(limit);
  for (let i = 0; i < limit; i++) cache.set(`k${i}`, i);
  const proto = Map.prototype as unknown as Record<string | symbol, (...a: unknown[]) => unknown>;
  const watched: (string | symbol)[] = ['keys', 'values', 'entries', 'delete', 'forEach', Symbol.iterator];
  const saved = watched.map((name) => proto[name]!);
  let walks = 0;
  watched.forEach((name, i) => {
    const original = saved[i]!;
    proto[name] = function (this: unknown, ...args: unknown[]) {
      walks++;
      return original.apply(this, args);
    };
  });
  try {
    for (let i = limit; i < limit + 10 * limit; i++) cache.set(`k${i}`, i);
  } finally {
    watched.forEach((name, i) => {
      proto[name] = saved[i]!;
    });
  }
  assert.equal(
    walks,
    0,
    `${10 * limit} inserts into a full cache iterated or deleted Map entries ${walks} times`,
  );
  assert.ok(cache.size <= limit);
  assert.equal(cache.get(`k${11 * limit - 1}`), 11 * limit - 1);
});
