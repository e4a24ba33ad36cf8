import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DEFAULT_TIMEOUTS, timeoutFor } from '@unc/core';
import { MAX_PEERS_PER_VALIDATOR, ProposerLiveness } from '../../src/consensus/proposer-liveness.js';

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

  test('the default: two whole heights without a message, not one', () => {
    const l = new ProposerLiveness();
    l.isDown(a, 10n);
    for (let h = 10n; h < 15n; h++) l.saw(b, h);
    l.saw(a, 11n);
    assert.equal(l.isDown(a, 12n), false, 'heard from at the previous height');
    // Its votes for 12 not checked here yet when 13 began (a loaded validator, slower than the
    // three that decided 12): not absent, its proposal gets the whole wait.
    assert.equal(l.isDown(a, 13n), false, 'heard from two heights ago');
    assert.equal(l.proposeTimeout(a, 13n, 3000, 0), 3000);
    assert.equal(l.isDown(a, 14n), true, 'nothing at 12 or 13');
    assert.equal(l.isDown(b, 14n), false);
  });

  test('the default, a validator partitioned away with its connection open: one whole wait at most, then short', () => {
    // The cost of two heights over one: a turn two heights after its last vote still gets the
    // whole wait; the turn that then ends in the timeout marks it, and every turn after is short.
    const l = new ProposerLiveness();
    l.isDown(a, 10n);
    for (let h = 10n; h < 30n; h++) l.saw(b, h);
    l.saw(a, 11n); // silent from 12 on, no disconnect seen (isCutOff stays false)
    assert.equal(l.isCutOff(a), false);
    assert.equal(l.proposeTimeout(a, 13n, 3000, 0), 3000, 'its turn at 13: the whole wait');
    l.missedTurn(a);
    for (const h of [14n, 17n, 21n, 25n])
      assert.ok(l.proposeTimeout(a, h, 3000, 0) <= 500, `its turn at ${h}: a short wait`);
    assert.equal(l.proposeTimeout(a, 14n, 3000, 0), 100, 'absent from 14 even without the missed turn');
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
  test('prune forgets the marks of validators never seen too (they stayed for good and, piled up, refused new bindings)', () => {
    const l = new ProposerLiveness(opts);
    const c = new Uint8Array(32).fill(3);
    // b binds its peer, misses a turn and is cut off without ever being seen; c is seen throughout.
    l.bindPeer(b, 'pb');
    l.peerConnected('pb');
    l.missedTurn(b);
    l.peerDisconnected('pb', 5n);
    l.bindPeer(c, 'pc');
    l.equivocated(b);
    for (let h = 10n; h <= 2_200n; h += 10n) {
      l.saw(c, h);
      l.prune(h);
    }
    assert.equal(l.isCutOff(b), false, 'the cut-off mark of a validator never seen stayed');
    assert.equal(l.boundValidator('pb'), undefined, 'the binding of a validator never seen stayed');
    assert.equal(l.boundValidator('pc'), Buffer.from(c).toString('hex'), 'a seen validator lost its binding');
    assert.equal(l.hasEquivocated(b), true, 'a proof was lifted');
    // Kept while younger than keepHeights: a fresh mark survives the next sweeps.
    const d = new Uint8Array(32).fill(4);
    l.bindPeer(d, 'pd');
    l.prune(2_300n);
    l.prune(2_400n);
    assert.equal(l.boundValidator('pd'), Buffer.from(d).toString('hex'));
  });

  test('bindings of validators never seen, MAX_TRACKED of them, no longer lock out a new validator once pruned', () => {
    const l = new ProposerLiveness(opts);
    const key = (i: number) => {
      const k = new Uint8Array(32);
      new DataView(k.buffer).setUint32(0, i + 16);
      return k;
    };
    for (let i = 0; i < 10_000; i++) l.bindPeer(key(i), `old${i}`);
    const fresh = new Uint8Array(32).fill(9);
    l.bindPeer(fresh, 'new');
    assert.equal(l.boundValidator('new'), undefined, 'the table was not full');
    l.prune(100n);
    l.prune(1_200n);
    l.bindPeer(fresh, 'new');
    assert.equal(l.boundValidator('new'), Buffer.from(fresh).toString('hex'));
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

  describe('a closed connection to the peer a validator signed as its node', () => {
    const peerA = 'peer-of-a';
    const stranger = 'peer-of-nobody';
    /** A node that watched heights 10-19 and heard both validators at each. */
    function watched(): ProposerLiveness {
      const l = new ProposerLiveness(opts);
      l.isDown(a, 10n);
      for (let h = 10n; h < 20n; h++) {
        l.saw(a, h);
        l.saw(b, h);
      }
      l.bindPeer(a, peerA);
      l.peerConnected(peerA);
      l.peerConnected(stranger);
      return l;
    }

    test('gives the absent timeout at the very next round, not a height later', () => {
      const l = watched();
      assert.equal(l.proposeTimeout(a, 20n, 3000, 0), 3000);
      l.peerDisconnected(peerA, 20n);
      assert.equal(l.proposeTimeout(a, 20n, 3000, 0), 100, 'round 0 of the height being decided');
      // Not doubled with the round: its silence is seen, not guessed (a stopped validator drawn
      // six rounds running held the others 12.8 s at one height).
      for (const round of [1, 3, 6, 30])
        assert.equal(
          l.proposeTimeout(a, 20n, timeoutFor(DEFAULT_TIMEOUTS, 'propose', round), round),
          100,
          `round ${round}`,
        );
      // Absent only by silence (no closed connection seen), the wait still grows.
      const c = new Uint8Array(32).fill(3);
      assert.equal(l.proposeTimeout(c, 20n, timeoutFor(DEFAULT_TIMEOUTS, 'propose', 3), 3), 800);
      assert.equal(l.proposeTimeout(b, 20n, 3000, 0), 3000, 'only the validator bound to it');
    });

    test('even before the node watched a whole height (a node just started)', () => {
      const l = new ProposerLiveness(opts);
      l.bindPeer(a, peerA);
      l.peerConnected(peerA);
      assert.equal(l.proposeTimeout(a, 5n, 3000, 0), 3000);
      l.peerDisconnected(peerA, 5n);
      assert.equal(l.proposeTimeout(a, 5n, 3000, 0), 100);
    });

    test('counts only when the caller says the rest still make a quorum', () => {
      const l = watched();
      l.peerDisconnected(peerA, 20n);
      assert.equal(l.proposeTimeout(a, 20n, 3000, 0, false), 3000, 'a split: no short wait');
      assert.equal(l.proposeTimeout(a, 20n, 3000, 0, true), 100);
    });

    test('a reconnect restores the normal timeout', () => {
      const l = watched();
      l.peerDisconnected(peerA, 20n);
      l.peerConnected(peerA);
      assert.equal(l.proposeTimeout(a, 20n, 3000, 0), 3000);
    });

    test('a signed message of the current height restores it; one of an earlier height does not', () => {
      const l = watched();
      l.peerDisconnected(peerA, 20n);
      // Its precommit for the last block, relayed late by a peer, was signed before it stopped.
      l.saw(a, 19n);
      assert.equal(l.proposeTimeout(a, 20n, 3000, 0), 100);
      // A vote of the height being decided: it is up, reached through the others.
      l.saw(a, 20n);
      assert.equal(l.proposeTimeout(a, 20n, 3000, 0), 3000);
    });

    test('a peer no validator signed for cannot cause a short timeout', () => {
      const l = watched();
      l.peerDisconnected(stranger, 20n);
      assert.equal(l.proposeTimeout(a, 20n, 3000, 0), 3000);
      assert.equal(l.proposeTimeout(b, 20n, 3000, 0), 3000);
      assert.equal(l.isCutOff(a), false);
      assert.equal(l.isCutOff(b), false);
    });

    test('a validator with another bound peer still connected is not cut off', () => {
      const l = watched();
      l.bindPeer(a, 'sentry-of-a');
      l.peerConnected('sentry-of-a');
      l.peerDisconnected(peerA, 20n);
      assert.equal(l.proposeTimeout(a, 20n, 3000, 0), 3000);
      l.peerDisconnected('sentry-of-a', 20n);
      assert.equal(l.proposeTimeout(a, 20n, 3000, 0), 100, 'the last one closed');
    });

    test('a validator keeps at most a few bound peers, the latest', () => {
      const l = watched();
      for (let i = 0; i < MAX_PEERS_PER_VALIDATOR; i++) l.bindPeer(a, `other-${i}`);
      // peerA was the oldest: forgotten, its closing says nothing any more.
      l.peerDisconnected(peerA, 20n);
      assert.equal(l.isCutOff(a), false);
      l.peerDisconnected(`other-${MAX_PEERS_PER_VALIDATOR - 1}`, 20n);
      assert.equal(l.isCutOff(a), true);
    });
  });

  describe('a proven equivocator', () => {
    test('gets the absent timeout, doubled with the round, whatever it signs or sends in time', () => {
      const l = new ProposerLiveness(opts);
      for (let h = 10n; h < 20n; h++) {
        l.saw(a, h);
        l.saw(b, h);
      }
      assert.equal(l.proposeTimeout(a, 20n, 3000, 0), 3000);
      l.equivocated(a);
      assert.equal(l.hasEquivocated(a), true);
      for (const [round, wait] of [
        [0, 100],
        [1, 200],
        [3, 800],
        [5, 3200],
        [6, timeoutFor(DEFAULT_TIMEOUTS, 'propose', 6)],
      ] as const)
        assert.equal(
          l.proposeTimeout(a, 20n, timeoutFor(DEFAULT_TIMEOUTS, 'propose', round), round),
          wait,
          `round ${round}`,
        );
      // Votes, a timely proposal, a new height, the caller's quorum judgement: none lifts a proof.
      l.saw(a, 21n);
      l.proposedInTime(a);
      l.prune(5_000n);
      assert.equal(l.proposeTimeout(a, 21n, 3000, 0, false), 100);
      assert.equal(l.proposeTimeout(b, 21n, 3000, 0), 3000, 'the mark is its own');
      assert.equal(l.hasEquivocated(b), false);
    });

    test('a machine wait under the short one is kept', () => {
      const l = new ProposerLiveness(opts);
      l.equivocated(a);
      assert.equal(l.proposeTimeout(a, 20n, 50, 0), 50);
    });
  });

  describe('recalled commits (a node that restarted, or synced the heights)', () => {
    test("a validator missing from the last heights' certificates is absent at once; a signer is not", () => {
      const l = new ProposerLiveness(opts);
      assert.equal(l.heightsToRecall, 4, 'absentAfterHeights (3) and one');
      l.recallCommits([
        { height: 20n, signers: [b] },
        { height: 19n, signers: [b] },
        { height: 18n, signers: [b] },
        { height: 17n, signers: [a, b] },
      ]);
      // a signed nothing for the last three heights (18–20): absent at height 21 already.
      assert.equal(l.proposeTimeout(a, 21n, 3000, 0), 100);
      assert.equal(l.proposeTimeout(b, 21n, 3000, 0), 3000);
      // Its first message lifts it.
      l.saw(a, 21n);
      assert.equal(l.proposeTimeout(a, 21n, 3000, 0), 3000);
    });

    test('fewer heights than K recalled (a young chain) still mark nobody absent', () => {
      const l = new ProposerLiveness(opts);
      l.recallCommits([{ height: 1n, signers: [b] }]);
      assert.equal(l.proposeTimeout(a, 2n, 3000, 0), 3000);
    });
  });
});
