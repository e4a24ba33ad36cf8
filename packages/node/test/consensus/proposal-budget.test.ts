import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { budgetForRound, ProposalBudget } from '../../src/consensus/proposal-budget.js';

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
