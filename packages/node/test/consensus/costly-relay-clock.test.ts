/**
 * The costly-check budget runs on the driver's clock, a real node's wall clock: a step of it back
 * (NTP, an operator, a VM restore) must not keep every relay's bucket spent for as long as the
 * step, nor a step forward give more than a full bucket.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CostlyRelayBudget } from '../../src/consensus/costly-relay-budget.js';

const HOUR = 3_600_000;

test('a step of the clock back does not freeze a spent bucket for the length of the step', () => {
  const budget = new CostlyRelayBudget(
    { perPeer: 2, perPeerRefillMs: 1_000, total: 1_000, totalRefillMs: 1 },
    HOUR,
  );
  assert.equal(budget.tryTake('p', 2, HOUR), true);
  assert.equal(budget.tryTake('p', 1, HOUR), false, 'spent');
  // The clock steps back an hour; one refill interval of elapsed time later the bucket holds one.
  assert.equal(budget.tryTake('p', 1, 0), false, 'the step itself refills nothing');
  assert.equal(budget.tryTake('p', 1, 1_000), true, 'a step back froze the bucket');
  assert.equal(budget.tryTake('p', 1, 1_000), false);
});

test('a step of the clock forward refills at most a full bucket', () => {
  const budget = new CostlyRelayBudget(
    { perPeer: 2, perPeerRefillMs: 1_000, total: 1_000, totalRefillMs: 1 },
    0,
  );
  assert.equal(budget.tryTake('p', 2, 0), true);
  assert.equal(budget.tryTake('p', 2, HOUR), true);
  assert.equal(budget.tryTake('p', 1, HOUR), false);
});
