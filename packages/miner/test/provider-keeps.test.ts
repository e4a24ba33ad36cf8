/**
 * Results kept for their GET (provider/keeps.ts): several renters (leases) that together fill the
 * total cannot starve another. A keep ends for the total only when its renter holds at least as
 * much as every other renter, and more than the total's equal part among the renters keeping; so
 * a renter (a newcomer too) whose keeps stay within that part never loses one to the others.
 * Checked on random sequences of keeps and fetches against the provider's own bookkeeping.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { type KeepLimits, ResultKeeps } from '../src/provider/keeps.js';

/** Never fires within a test: keeps end by fetch or by a bound only. */
const NEVER = 2 ** 31 - 1;

type Op = { kind: 'keep'; renter: number; bytes: number } | { kind: 'fetch'; pick: number };

interface Held {
  ids: string[];
  bytes: number;
}

/** Per renter, what the keeps hold now, read from the real bookkeeping. */
function holdings(
  keeps: ResultKeeps,
  kept: Map<string, { renter: string; bytes: number }>,
): Map<string, Held> {
  const out = new Map<string, Held>();
  for (const r of keeps.renters()) out.set(r, { ids: [], bytes: 0 });
  for (const [id, k] of kept) {
    const h = out.get(k.renter);
    assert.ok(h, `renter ${k.renter} holds ${id} but is not listed as keeping`);
    h.ids.push(id);
    h.bytes += k.bytes;
  }
  for (const [r, h] of out) {
    assert.equal(keeps.bytesOf(r), h.bytes, `bytes of ${r}`);
    assert.equal(keeps.resultsOf(r), h.ids.length, `results of ${r}`);
  }
  return out;
}

const sum = (held: Map<string, Held>, w: (h: Held) => number) =>
  [...held.values()].reduce((n, h) => n + w(h), 0);

/**
 * Runs `ops` against a ResultKeeps and checks, at every keep that ended for a bound, why it may
 * end, and after every step that the bounds hold and the bookkeeping adds up.
 */
function run(limits: KeepLimits, renters: number, ops: Op[]): void {
  const keeps = new ResultKeeps(limits);
  /** Results kept now, in the order they were kept. */
  const kept = new Map<string, { renter: string; bytes: number }>();
  let next = 0;
  try {
    for (const op of ops) {
      if (op.kind === 'fetch') {
        const ids = [...kept.keys()];
        if (ids.length === 0) continue;
        const id = ids[op.pick % ids.length]!;
        keeps.end(id);
        kept.delete(id);
        assert.equal(keeps.has(id), false);
        holdings(keeps, kept);
        continue;
      }
      const renter = `r${op.renter % renters}`;
      const id = `job${next++}`;
      const before = holdings(keeps, kept);
      const mine = before.get(renter) ?? { ids: [], bytes: 0 };
      const ended = keeps.keep(id, renter, op.bytes);
      // Replayed on what was held, with the new result: each ending must be allowed just then.
      const held = new Map([...before].map(([r, h]) => [r, { ids: [...h.ids], bytes: h.bytes }]));
      held.set(renter, { ids: [...mine.ids, id], bytes: mine.bytes + op.bytes });
      kept.set(id, { renter, bytes: op.bytes });
      for (const e of ended) {
        const h = held.get(e.renter);
        assert.ok(h && h.ids.length > 0, `${e.id} ended for a renter that holds nothing`);
        assert.equal(e.id, h.ids[0], 'the oldest keep of its renter ends first');
        const count = held.size;
        if (e.bound === 'renter') {
          assert.equal(e.renter, renter, 'only the renter keeping a new result loses keeps to its own bound');
          assert.ok(h.bytes > limits.bytesPerRenter || h.ids.length > limits.resultsPerRenter);
        } else {
          const w = e.bound === 'bytes' ? (x: Held) => x.bytes : (x: Held) => x.ids.length;
          const limit = e.bound === 'bytes' ? limits.bytes : limits.results;
          assert.ok(sum(held, w) > limit, `a keep ended for the total ${e.bound} while within it`);
          // The renter that loses holds at least as much as every other one...
          for (const [r, other] of held)
            assert.ok(w(h) >= w(other), `${e.renter} (${w(h)}) lost a keep while ${r} holds ${w(other)}`);
          // ...and more than its equal part: none within its fair share loses to the others.
          assert.ok(
            w(h) * count > limit,
            `${e.renter} lost a keep holding ${w(h)}, within ${limit} / ${count}`,
          );
        }
        const [gone] = h.ids.splice(0, 1);
        h.bytes -= kept.get(gone!)!.bytes;
        kept.delete(gone!);
        if (h.ids.length === 0) held.delete(e.renter);
      }
      // Within every bound, and the real bookkeeping holds exactly what remains.
      const now = holdings(keeps, kept);
      assert.deepEqual(
        new Map([...now].map(([r, h]) => [r, h.ids])),
        new Map([...held].map(([r, h]) => [r, h.ids])),
      );
      assert.ok(keeps.bytes <= limits.bytes && keeps.bytes === sum(now, (h) => h.bytes));
      assert.ok(keeps.results <= limits.results && keeps.results === kept.size);
      for (const h of now.values())
        assert.ok(h.bytes <= limits.bytesPerRenter && h.ids.length <= limits.resultsPerRenter);
      // A renter whose keeps, the new one included, stay within its bounds and its equal part of
      // the totals (among the renters keeping then) keeps them all, a newcomer included.
      const renting = before.has(renter) ? before.size : before.size + 1;
      const mineBytes = mine.bytes + op.bytes;
      const mineResults = mine.ids.length + 1;
      if (
        mineBytes <= limits.bytesPerRenter &&
        mineResults <= limits.resultsPerRenter &&
        mineBytes * renting <= limits.bytes &&
        mineResults * renting <= limits.results
      ) {
        assert.ok(keeps.has(id), `${renter}'s result within its fair share lost its keep`);
        assert.equal(keeps.resultsOf(renter), mineResults);
      }
    }
  } finally {
    keeps.endAll();
  }
  assert.equal(keeps.bytes, 0);
  assert.equal(keeps.results, 0);
}

const opArb = (maxBytes: number) =>
  fc.oneof(
    {
      weight: 4,
      arbitrary: fc.record({
        kind: fc.constant('keep' as const),
        renter: fc.nat(15),
        bytes: fc.nat(maxBytes),
      }),
    },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('fetch' as const), pick: fc.nat() }) },
  );

describe('results kept for their GET', () => {
  test('a keep ends for the total only when its renter holds the most and more than its fair share', () => {
    fc.assert(
      fc.property(
        fc.record({
          bytesPerRenter: fc.integer({ min: 1, max: 400 }),
          resultsPerRenter: fc.integer({ min: 1, max: 16 }),
          bytes: fc.integer({ min: 1, max: 1000 }),
          results: fc.integer({ min: 1, max: 40 }),
        }),
        fc.integer({ min: 1, max: 12 }),
        fc.array(opArb(300), { maxLength: 200 }),
        (l, renters, ops) => run({ ...l, timeoutMs: NEVER }, renters, ops),
      ),
      { numRuns: 300 },
    );
  });

  test('leases that fill the total cannot starve a newcomer of its fair share', () => {
    // Any number of renters keep results of any size, as fast as they like; a newcomer whose
    // results, all together, are within the total's equal part among all of them keeps every one.
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }),
        fc.array(fc.record({ renter: fc.nat(7), bytes: fc.integer({ min: 1, max: 64 }) }), {
          minLength: 1,
          maxLength: 300,
        }),
        fc.array(fc.integer({ min: 0, max: 300 }), { minLength: 1, maxLength: 4 }),
        (others, flood, at) => {
          const limits = {
            bytesPerRenter: 64,
            resultsPerRenter: 16,
            bytes: 256,
            results: 500,
            timeoutMs: NEVER,
          };
          const keeps = new ResultKeeps(limits);
          try {
            const part = Math.min(limits.bytesPerRenter, Math.floor(limits.bytes / (others + 1)));
            // The newcomer's results, one at each of its moments, within its part all together.
            const sizes = at.map((_, i) => Math.max(0, Math.floor(part / at.length) - (i % 2)));
            const mine: string[] = [];
            flood.forEach((f, i) => {
              at.forEach((when, j) => {
                if (when === i) {
                  const id = `new${j}`;
                  keeps.keep(id, 'newcomer', sizes[j]!);
                  mine.push(id);
                }
              });
              keeps.keep(`flood${i}`, `lease${f.renter % others}`, f.bytes);
              for (const id of mine) assert.ok(keeps.has(id), `the newcomer lost ${id} after flood ${i}`);
            });
            assert.ok(keeps.bytes <= limits.bytes);
          } finally {
            keeps.endAll();
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  test('two leases holding the whole total make room for a third when it keeps a result', () => {
    const keeps = new ResultKeeps({
      bytesPerRenter: 64,
      resultsPerRenter: 16,
      bytes: 128,
      results: 500,
      timeoutMs: NEVER,
    });
    for (let i = 0; i < 8; i++) keeps.keep(`a${i}`, 'a', 8);
    for (let i = 0; i < 8; i++) keeps.keep(`b${i}`, 'b', 8);
    assert.equal(keeps.bytes, 128);
    // c's result of 24 bytes (within 128 / 3): 24 bytes of the heaviest holders' oldest go.
    const ended = keeps.keep('c0', 'c', 24);
    assert.ok(keeps.has('c0'));
    assert.deepEqual(
      ended.map((e) => e.id),
      ['b0', 'a0', 'b1'],
    );
    assert.equal(keeps.bytes, 128);
    // They keep sending: c keeps its result, each of them loses its own oldest instead.
    for (let i = 8; i < 40; i++) keeps.keep(`a${i}`, 'a', 8);
    assert.ok(keeps.has('c0'));
    assert.equal(keeps.bytesOf('c'), 24);
    keeps.endAll();
  });
});
