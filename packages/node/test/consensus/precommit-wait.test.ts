import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DEFAULT_TIMEOUTS, timeoutFor } from '@unc/core';
import { nilQuorumPrecommitWait } from '../../src/consensus/driver.js';

const machine = (round: number) => timeoutFor(DEFAULT_TIMEOUTS, 'precommit', round);

describe('the precommit wait after a nil quorum', () => {
  test('is short in the first rounds: round 1 waits 200 ms, not 1.5 s', () => {
    assert.equal(nilQuorumPrecommitWait(machine(0), 0), 100);
    assert.equal(nilQuorumPrecommitWait(machine(1), 1), 200);
    assert.equal(nilQuorumPrecommitWait(machine(2), 2), 400);
  });

  test("grows without bound and is never longer than the machine's, which it soon is", () => {
    // Tendermint is live only if every round's waits eventually outgrow the network's delay.
    for (let round = 0; round < 500; round++) {
      const wait = nilQuorumPrecommitWait(machine(round), round);
      const next = nilQuorumPrecommitWait(machine(round + 1), round + 1);
      assert.ok(wait <= machine(round));
      assert.ok(next > wait, `round ${round + 1}: ${next} ms after ${wait} ms`);
      if (round >= 6) assert.equal(wait, machine(round), `round ${round}: the machine's own wait`);
    }
    assert.equal(nilQuorumPrecommitWait(50, 0), 50, 'a machine wait under 100 ms is kept');
  });

  test('stays short in every round whose proposer is cut off (its connection closed, silent since)', () => {
    for (const round of [0, 1, 5, 6, 40])
      assert.equal(nilQuorumPrecommitWait(machine(round), round, true), 100);
    assert.equal(nilQuorumPrecommitWait(50, 3, true), 50);
  });
});
