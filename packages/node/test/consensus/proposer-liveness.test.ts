import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DEFAULT_TIMEOUTS, timeoutFor } from '@unc/core';
import { ProposerLiveness } from '../../src/consensus/proposer-liveness.js';

const a = new Uint8Array(32).fill(1);
const b = new Uint8Array(32).fill(2);
const opts = { absentAfterHeights: 3, shortProposeMs: 500, absentProposeMs: 100 };

describe('ProposerLiveness', () => {
  test('nobody counts as absent before the node watched a few heights', () => {
    const l = new ProposerLiveness(opts);
    assert.equal(l.proposeTimeout(a, 10n, 3000, 0), 3000);
    assert.equal(l.proposeTimeout(a, 13n, 3000, 0), 3000);
  });

  test('a validator silent for K heights gets the absent timeout; its next vote restores it', () => {
    const l = new ProposerLiveness(opts);
    l.isDown(a, 10n); // starts watching at 10
    for (let h = 10n; h < 20n; h++) l.saw(b, h);
    l.saw(a, 12n);
    assert.equal(l.proposeTimeout(a, 15n, 3000, 0), 3000);
    assert.equal(l.proposeTimeout(a, 16n, 3000, 0), 100);
    assert.equal(l.proposeTimeout(b, 20n, 3000, 0), 3000);
    // Never longer than the machine's own timeout.
    assert.equal(l.proposeTimeout(a, 16n, 50, 0), 50);
    l.saw(a, 16n);
    assert.equal(l.proposeTimeout(a, 16n, 3000, 0), 3000);
  });

  test('the default: one whole height without a message is enough', () => {
    const l = new ProposerLiveness();
    l.isDown(a, 10n);
    for (let h = 10n; h < 14n; h++) l.saw(b, h);
    l.saw(a, 11n);
    assert.equal(l.isDown(a, 12n), false, 'heard from at the previous height');
    assert.equal(l.isDown(a, 13n), true, 'nothing at 12');
    assert.equal(l.isDown(b, 13n), false);
  });

  test('a proposer that votes but missed its turn is held to the short timeout until it proposes in time', () => {
    const l = new ProposerLiveness(opts);
    l.isDown(a, 10n);
    for (let h = 10n; h < 30n; h++) {
      l.saw(a, h);
      l.saw(b, h);
    }
    assert.equal(l.proposeTimeout(a, 20n, 3000, 0), 3000);
    l.missedTurn(a);
    // Its votes keep coming: that alone does not restore the long wait (a validator that votes
    // but never proposes would otherwise cost a full propose timeout at every turn).
    l.saw(a, 21n);
    assert.equal(l.proposeTimeout(a, 21n, 3000, 0), 500);
    assert.equal(l.proposeTimeout(b, 21n, 3000, 0), 3000, 'the mark is its own');
    l.proposedInTime(a);
    assert.equal(l.proposeTimeout(a, 22n, 3000, 0), 3000);
  });

  test('marks are bounded and prune forgets long-gone validators', () => {
    const l = new ProposerLiveness(opts);
    l.saw(a, 1n);
    l.missedTurn(a);
    l.prune(2_000n);
    l.isDown(b, 0n);
    assert.equal(l.isDown(a, 2_000n), true);
    assert.equal(l.proposeTimeout(a, 2_000n, 3000, 0), 100, 'absent, not merely missed');
  });
  test("the short waits still grow with the round, without bound, like the machine's", () => {
    // Tendermint is live only if a round's timeouts eventually exceed the network's delay. A wait
    // fixed at 500 ms held a marked proposer to it at every round: one whose proposal takes longer
    // to arrive never proposed "in time" again, and with every proposer marked (a partition that
    // timed everyone out) no round could ever succeed once proposals take over 500 ms to arrive.
    const l = new ProposerLiveness(opts);
    l.isDown(a, 10n);
    for (let h = 10n; h < 30n; h++) l.saw(b, h);
    l.saw(a, 29n);
    l.missedTurn(a);
    const machine = (round: number) => timeoutFor(DEFAULT_TIMEOUTS, 'propose', round);
    assert.equal(l.proposeTimeout(a, 30n, machine(0), 0), 500, 'round 0: the short wait');
    assert.equal(l.proposeTimeout(a, 30n, machine(1), 1), 1000);
    for (let round = 0; round < 200; round++) {
      const wait = l.proposeTimeout(a, 30n, machine(round), round);
      const next = l.proposeTimeout(a, 30n, machine(round + 1), round + 1);
      assert.ok(
        next > wait || next === machine(round + 1),
        `round ${round + 1}: ${next} ms after ${wait} ms`,
      );
    }
    assert.equal(l.proposeTimeout(a, 30n, machine(5), 5), machine(5), "soon the machine's own wait");
    // The absent wait too (c: nothing heard from it at all).
    const c = new Uint8Array(32).fill(3);
    assert.equal(l.proposeTimeout(c, 30n, machine(0), 0), 100);
    assert.ok(l.proposeTimeout(c, 30n, machine(3), 3) > 100);
    assert.equal(l.proposeTimeout(c, 30n, machine(6), 6), machine(6));
  });
});
