import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ProposerLiveness } from '../../src/consensus/proposer-liveness.js';

const a = new Uint8Array(32).fill(1);
const b = new Uint8Array(32).fill(2);

describe('ProposerLiveness', () => {
  test('nobody counts as down before the node watched a few heights', () => {
    const l = new ProposerLiveness({ absentAfterHeights: 3, shortProposeMs: 500 });
    assert.equal(l.proposeTimeout(a, 10n, 3000), 3000);
    assert.equal(l.proposeTimeout(a, 12n, 3000), 3000);
  });

  test('a validator silent for K heights gets the short propose timeout; its next vote restores it', () => {
    const l = new ProposerLiveness({ absentAfterHeights: 3, shortProposeMs: 500 });
    l.isDown(a, 10n); // starts watching at 10
    for (let h = 10n; h < 20n; h++) l.saw(b, h);
    l.saw(a, 12n);
    assert.equal(l.proposeTimeout(a, 15n, 3000), 3000);
    assert.equal(l.proposeTimeout(a, 16n, 3000), 500);
    assert.equal(l.proposeTimeout(b, 20n, 3000), 3000);
    // Never longer than the machine's own timeout.
    assert.equal(l.proposeTimeout(a, 16n, 200), 200);
    l.saw(a, 16n);
    assert.equal(l.proposeTimeout(a, 16n, 3000), 3000);
  });

  test('prune forgets long-gone validators', () => {
    const l = new ProposerLiveness();
    l.saw(a, 1n);
    l.prune(2_000n);
    l.isDown(b, 0n);
    assert.equal(l.isDown(a, 2_000n), true);
  });
});
