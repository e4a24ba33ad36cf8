import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { budgetForRound, HeightPace, ProposalBudget } from '../../src/consensus/proposal-budget.js';

describe('ProposalBudget', () => {
  test('a quarter of the shorter of the block interval and the propose timeout', () => {
    assert.equal(budgetForRound(1000, 3000), 250);
    assert.equal(budgetForRound(5000, 3000), 750);
    assert.equal(budgetForRound(10, 10), 50);
    assert.equal(budgetForRound(1000, 3000, true), 1000);
  });

  test('follows the measured cost: slower execution, smaller proposals', () => {
    const b = new ProposalBudget({ budgetMs: 250, initialMsPerTx: 0.05, smoothing: 1 });
    assert.equal(b.maxTxs(), 5000);
    b.observe(1000, 500); // 0.5 ms per transaction
    assert.equal(b.maxTxs(), 500);
    b.observe(10, 1000); // too small a block to say anything per transaction
    assert.equal(b.maxTxs(), 500);
  });

  test('property: never below the floor, never from a bad sample', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(20_000), fc.double({ noNaN: false })), { maxLength: 30 }),
        (samples) => {
          const b = new ProposalBudget({ budgetMs: 250, minTxs: 100 });
          for (const [txs, ms] of samples) b.observe(txs, ms);
          const n = b.maxTxs();
          assert.ok(Number.isInteger(n) && n >= 100, `maxTxs ${n}`);
          assert.ok(b.costPerTx > 0 || b.maxTxs() >= 100);
        },
      ),
    );
  });
});

describe('HeightPace', () => {
  const interval = 1000;

  test('heights running past the interval shrink the proposals, smoothly', () => {
    const pace = new HeightPace({ intervalMs: interval });
    const scales = [1400, 1400, 1400, 1400, 1400].map((ms) => pace.observeHeight(ms, 0, 1000, 1000));
    // Two heights are no trend yet; then at most a quarter smaller per height, and smaller each
    // time while heights stay long.
    assert.deepEqual(scales.slice(0, 2), [1, 1]);
    assert.ok(scales[2]! >= 0.75 && scales[2]! < 1, `first step ${scales[2]}`);
    for (let i = 3; i < scales.length; i++) assert.ok(scales[i]! < scales[i - 1]!);
    const budget = new ProposalBudget({ budgetMs: 250, initialMsPerTx: 0.25, minTxs: 100 });
    assert.equal(budget.maxTxs(), 1000);
    budget.pace = pace.scale;
    assert.equal(budget.maxTxs(), Math.floor(1000 * pace.scale));
  });

  test('short heights of full blocks grow them back, short heights of small blocks do not', () => {
    const pace = new HeightPace({ intervalMs: interval });
    for (let i = 0; i < 8; i++) pace.observeHeight(2000, 0, 1000, 1000);
    const shrunk = pace.scale;
    // Small blocks, short heights (a calm chain): nothing is learnt about a bigger block.
    for (let i = 0; i < 10; i++) pace.observeHeight(300, 0, 10, 1000);
    assert.equal(pace.scale, shrunk);
    // Full blocks that end well within the interval: grows back, at most a tenth a height.
    let before = pace.scale;
    for (let i = 0; i < 5; i++) {
      const now = pace.observeHeight(300, 0, 1000, 1000);
      assert.ok(now >= before && now <= before * 1.1 + 1e-9, `${before} → ${now}`);
      before = now;
    }
    assert.ok(pace.scale > shrunk);
  });

  test('long heights of small blocks (latency, not size) shrink nothing', () => {
    // Many validators far apart: every height runs long whatever the block holds. A smaller block
    // cannot shorten that, so only heights whose blocks were full are counted.
    const pace = new HeightPace({ intervalMs: interval });
    for (let i = 0; i < 20; i++) pace.observeHeight(1800, 0, 20, 1000);
    assert.equal(pace.scale, 1);
    // The same heights with full blocks: size may be the cause, and the proposals shrink.
    for (let i = 0; i < 5; i++) pace.observeHeight(1800, 0, 1000, 1000);
    assert.ok(pace.scale < 1);
  });

  test('a Byzantine proposer filling its own blocks and proposing late cannot shrink a calm network', () => {
    // Light load: the honest blocks are small and their heights short, so none is counted; one
    // proposer in four fills its blocks with its own transactions and proposes late. Its heights
    // were every sample the loop had, and they held the honest proposers at half.
    const pace = new HeightPace({ intervalMs: interval });
    for (let i = 0; i < 40; i++)
      pace.observeHeight(i % 4 === 0 ? 2000 : 300, 0, i % 4 === 0 ? 1000 : 10, 1000);
    assert.equal(pace.scale, 1);
    // Real load (every block full, every height long) still shrinks them.
    for (let i = 0; i < 5; i++) pace.observeHeight(2000, 0, 1000, 1000);
    assert.ok(pace.scale < 1);
  });

  test('a proposer faster than the others still shrinks its own blocks when they are the long heights', () => {
    // This node's limit is twice the others' (it executes twice as fast), so their full blocks
    // look small here and their heights are short; its own blocks make the long heights. The
    // others' short heights drop only their own samples, never this node's.
    const pace = new HeightPace({ intervalMs: interval });
    for (let i = 0; i < 20; i++) {
      const mine = i % 4 === 0;
      pace.observeHeight(mine ? 2000 : 500, 0, mine ? 2000 : 900, 2000, mine);
    }
    assert.ok(pace.scale < 1);
  });

  test('heights near the interval hold the scale (no hunting)', () => {
    const pace = new HeightPace({ intervalMs: interval });
    for (let i = 0; i < 20; i++) pace.observeHeight(i % 2 ? 650 : 800, 0, 1000, 1000);
    assert.equal(pace.scale, 1);
  });

  test('a height decided after a timed-out round is not counted (it fails on counting it)', () => {
    const pace = new HeightPace({ intervalMs: interval });
    for (let i = 0; i < 10; i++) pace.observeHeight(6000, 1 + (i % 3), 1000, 1000);
    assert.equal(pace.scale, 1);
    assert.ok(Number.isNaN(pace.recentHeightMs));
  });

  test('one slow height among normal ones moves nothing (median)', () => {
    const pace = new HeightPace({ intervalMs: interval });
    for (let i = 0; i < 20; i++) pace.observeHeight(i % 5 === 0 ? 3900 : 700, 0, 1000, 1000);
    assert.equal(pace.scale, 1);
  });

  test('validators delaying every vote shrink honest proposals to the floor, never below', () => {
    const pace = new HeightPace({ intervalMs: interval, minScale: 0.25 });
    for (let i = 0; i < 100; i++) pace.observeHeight(2900, 0, 1000, 1000);
    assert.equal(pace.scale, 0.25);
    const budget = new ProposalBudget({ budgetMs: 250, initialMsPerTx: 0.25, minTxs: 100 });
    budget.pace = pace.scale;
    assert.equal(budget.maxTxs(), 250);
    // And once heights are short again with full blocks, the proposals grow back to the budget.
    for (let i = 0; i < 40; i++) pace.observeHeight(400, 0, 1000, 1000);
    assert.equal(pace.scale, 1);
  });

  test('by default the floor is half the execution budget', () => {
    const pace = new HeightPace({ intervalMs: interval });
    for (let i = 0; i < 100; i++) pace.observeHeight(3500, 0, 1000, 1000);
    assert.equal(pace.scale, 0.5);
  });

  test('short heights of full blocks never grow proposals past the execution budget', () => {
    // Above it, a load arriving at a high scale makes blocks that miss round 0, and heights decided
    // in a later round are not counted: nothing would shrink them again (it fails with a ceiling of 2).
    const pace = new HeightPace({ intervalMs: interval });
    for (let i = 0; i < 50; i++) pace.observeHeight(200, 0, 5000, 1000);
    assert.equal(pace.scale, 1);
    for (let i = 0; i < 50; i++) pace.observeHeight(6000, 1, 5000, 1000);
    assert.equal(pace.scale, 1);
    const budget = new ProposalBudget({ budgetMs: 250, initialMsPerTx: 0.25, minTxs: 100 });
    budget.pace = pace.scale;
    assert.equal(budget.maxTxs(), 1000);
  });

  test('property: whatever heights an attacker causes, a proposal keeps at least half the budget', () => {
    // Delayed votes, slow blocks, clock jumps (NaN, ±Infinity, negative): the default loop never
    // takes more than half of the execution budget's transactions, nor gives more than all of them.
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            ms: fc.oneof(fc.double(), fc.integer({ min: 0, max: 100_000 })),
            round: fc.oneof(fc.constant(0), fc.nat(3)),
            txs: fc.nat(5000),
          }),
          { maxLength: 200 },
        ),
        fc.double({ min: 0.01, max: 5, noNaN: true }),
        (heights, msPerTx) => {
          const pace = new HeightPace({ intervalMs: 1000 });
          const paced = new ProposalBudget({ budgetMs: 250, initialMsPerTx: msPerTx, minTxs: 100 });
          const unpaced = new ProposalBudget({ budgetMs: 250, initialMsPerTx: msPerTx, minTxs: 100 });
          for (const h of heights) {
            paced.pace = pace.observeHeight(h.ms, h.round, h.txs, paced.maxTxs());
            const n = paced.maxTxs();
            const full = unpaced.maxTxs();
            assert.ok(n <= full, `${n} > ${full}`);
            assert.ok(n >= Math.max(100, Math.floor(full / 2)), `${n} < half of ${full}`);
          }
        },
      ),
    );
  });

  test('bad options and bad paces are refused', () => {
    assert.throws(() => new HeightPace({ intervalMs: 0 }));
    assert.throws(() => new HeightPace({ intervalMs: 1000, minScale: 0 }));
    assert.throws(() => new HeightPace({ intervalMs: 1000, maxScale: 0.5 }));
    assert.throws(() => new HeightPace({ intervalMs: 1000, window: 0 }));
    const budget = new ProposalBudget({ budgetMs: 250 });
    assert.throws(() => {
      budget.pace = 0;
    });
    assert.throws(() => {
      budget.pace = Number.POSITIVE_INFINITY;
    });
  });

  test('property: the scale stays within its bounds, moves boundedly per height, and so does maxTxs', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            ms: fc.oneof(fc.double({ noNaN: false }), fc.integer({ min: 0, max: 10_000 })),
            round: fc.oneof(fc.constant(0), fc.nat(5)),
            txs: fc.nat(5000),
          }),
          { maxLength: 60 },
        ),
        fc.double({ min: 0.05, max: 1, noNaN: true }),
        fc.double({ min: 1, max: 4, noNaN: true }),
        (heights, minScale, maxScale) => {
          const pace = new HeightPace({ intervalMs: 1000, minScale, maxScale });
          const budget = new ProposalBudget({ budgetMs: 250, minTxs: 100 });
          for (const h of heights) {
            const before = pace.scale;
            budget.pace = pace.observeHeight(h.ms, h.round, h.txs, budget.maxTxs());
            const now = pace.scale;
            assert.ok(now >= minScale - 1e-12 && now <= maxScale + 1e-12, `scale ${now}`);
            assert.ok(now >= before * 0.75 - 1e-12 && now <= before * 1.1 + 1e-12, `${before} → ${now}`);
            if (h.round !== 0) assert.equal(now, before);
            const n = budget.maxTxs();
            assert.ok(Number.isInteger(n) && n >= 100, `maxTxs ${n}`);
          }
        },
      ),
    );
  });
});
