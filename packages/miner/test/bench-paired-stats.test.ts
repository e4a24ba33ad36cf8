/**
 * bench:jobs's paired rounds: the rounds once turned the paths (round r began with path r mod n),
 * so with three paths direct ran just before http twice as often as just before TLS, and the
 * per-round median was printed with no word of how far it could move. The rounds' order is now a
 * Williams design and the median comes with its distribution-free interval.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { medianInterval, williamsOrder } from '../bench/paired-stats.js';

/** How often each ordered pair of paths is adjacent (a just before b) over `rounds` rounds. */
function adjacency(n: number, rounds: number): Map<string, number> {
  const seen = new Map<string, number>();
  for (let r = 0; r < rounds; r++) {
    const row = williamsOrder(n, r);
    for (let i = 1; i < row.length; i++) {
      const key = `${row[i - 1]}>${row[i]}`;
      seen.set(key, (seen.get(key) ?? 0) + 1);
    }
  }
  return seen;
}

describe('bench:jobs paired rounds: order', () => {
  test('three paths: each comes just after each other path equally often (turning did not)', () => {
    const seen = adjacency(3, 6);
    assert.equal(seen.size, 6);
    assert.deepEqual(new Set(seen.values()), new Set([2]));
    // Direct (0) just before http (1) and just before TLS (2) alike.
    assert.equal(seen.get('0>1'), seen.get('0>2'));
  });

  test('every row is a permutation; over a whole cycle, pairs and positions are balanced', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 9 }), fc.nat(100), (n, round) => {
        const row = williamsOrder(n, round);
        assert.deepEqual(
          [...row].sort((a, b) => a - b),
          Array.from({ length: n }, (_, i) => i),
        );
        const cycle = n % 2 === 0 ? n : 2 * n;
        const seen = adjacency(n, cycle);
        if (n > 1) {
          assert.equal(seen.size, n * (n - 1));
          assert.equal(new Set(seen.values()).size, 1);
        }
        for (let pos = 0; pos < n; pos++) {
          const at = new Map<number, number>();
          for (let r = 0; r < cycle; r++) {
            const p = williamsOrder(n, r)[pos]!;
            at.set(p, (at.get(p) ?? 0) + 1);
          }
          assert.equal(at.size, n);
          assert.equal(new Set(at.values()).size, 1);
        }
      }),
    );
  });

  test('bad input is refused with the reason', () => {
    assert.throws(() => williamsOrder(0, 0), /paths/);
    assert.throws(() => williamsOrder(3, -1), /round/);
  });
});

describe('bench:jobs paired rounds: the median and its interval', () => {
  test('the order statistics of the binomial interval', () => {
    const v = Array.from({ length: 60 }, (_, i) => 60 - i);
    // n = 60 at 95 %: the 22nd smallest and 22nd largest (P(Bin(60, ½) ≤ 21) ≈ 0.0136, ≤ 22 ≈ 0.0259).
    assert.deepEqual(medianInterval(v), [22, 39]);
    assert.deepEqual(medianInterval([1, 2, 3, 4, 5, 6]), [1, 6]);
    assert.equal(medianInterval([1, 2, 3, 4, 5]), null);
    assert.equal(medianInterval([]), null);
    assert.throws(() => medianInterval([1], 1), /level/);
  });

  test('it holds the median and widens with the level', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0.5, max: 2, noNaN: true }), { minLength: 6, maxLength: 300 }),
        (v) => {
          const sorted = [...v].sort((a, b) => a - b);
          const med = sorted[Math.floor((v.length - 1) / 2)]!;
          const i95 = medianInterval(v)!;
          assert.ok(i95[0] <= med && med <= i95[1]);
          const i99 = medianInterval(v, 0.99);
          if (i99) assert.ok(i99[0] <= i95[0] && i95[1] <= i99[1]);
        },
      ),
    );
  });
});
