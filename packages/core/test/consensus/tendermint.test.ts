import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { equalBytes, toHex } from '../../src/bytes.js';
import {
  consensusEvidenceCodec,
  verifyCommitCertificate,
  verifyConsensusEvidence,
} from '../../src/consensus/messages.js';
import { PrivValidator } from '../../src/consensus/privval.js';
import { Tendermint } from '../../src/consensus/tendermint.js';
import { sha256 } from '../../src/crypto/hash.js';
import { decode, encode } from '../../src/encoding/codec.js';
import {
  A,
  B,
  broadcastProposals,
  broadcastVotes,
  CHAIN,
  describeVote,
  findBeacon,
  Harness,
  KEYS,
  proposal,
  proposerIndex,
  SEEDS,
  SET,
  TIMEOUTS,
  vote,
} from './fixtures.js';

/** Validator 0 is the node under test and proposes in none of the first six rounds. */
const NOT_ME = findBeacon(6, (_, p) => p !== 0);

function votesOf(actions: ReturnType<Harness['send']>): string[] {
  return broadcastVotes(actions).map(describeVote);
}

describe('tendermint: one height, no faults', () => {
  test('proposal, polka, lock, precommits, commit with a 2/3+ certificate', () => {
    const h = new Harness(0, NOT_ME);
    const started = h.start();
    assert.deepEqual(
      started.map((a) => a.type),
      ['schedule-timeout'],
    );
    assert.deepEqual(votesOf(h.propose(0, A)), ['prevote@0:A']);
    assert.deepEqual(votesOf(h.votes([1], 'prevote', 0, A)), []);
    assert.deepEqual(votesOf(h.votes([2], 'prevote', 0, A)), ['precommit@0:A'], '3 of 4 prevotes: a polka');
    const snap = h.machine.snapshot();
    assert.equal(snap.lockedRound, 0);
    assert.ok(equalBytes(snap.lockedValue!, A));
    assert.equal(snap.validRound, 0);

    assert.deepEqual(
      h.votes([1], 'precommit', 0, A).filter((a) => a.type === 'commit'),
      [],
    );
    const commit = h.votes([3], 'precommit', 0, A).find((a) => a.type === 'commit');
    assert.ok(commit && commit.type === 'commit');
    assert.equal(commit.height, 1n);
    assert.ok(equalBytes(commit.blockHash, A));
    assert.equal(commit.certificate.signatures.length, 3);
    const check = verifyCommitCertificate(CHAIN, SET, commit.certificate);
    assert.deepEqual(check, { ok: true, power: 3n });
    assert.equal(h.machine.snapshot().step, 'decided');
    // Nothing more happens at a decided height.
    assert.deepEqual(h.votes([2], 'precommit', 0, A), []);
  });

  test('an invalid block gets a nil prevote', () => {
    const h = new Harness(0, NOT_ME);
    h.start();
    assert.deepEqual(votesOf(h.propose(0, A, -1, false)), ['prevote@0:nil']);
  });

  test('a polka for an invalid block is neither locked on nor committed', () => {
    const h = new Harness(0, NOT_ME);
    h.start();
    h.propose(0, A, -1, false);
    assert.deepEqual(votesOf(h.votes([1, 2, 3], 'prevote', 0, A)), []);
    assert.equal(h.machine.snapshot().lockedRound, -1);
    assert.deepEqual(
      h.votes([1, 2, 3], 'precommit', 0, A).filter((a) => a.type === 'commit'),
      [],
    );
  });

  test('round timeouts are base + delta × round for every step', () => {
    const h = new Harness(0, NOT_ME);
    const delays = (actions: ReturnType<Harness['send']>) =>
      actions.flatMap((a) => (a.type === 'schedule-timeout' ? [`${a.step}@${a.round}:${a.delayMs}`] : []));
    assert.deepEqual(delays(h.start()), ['propose@0:1000']);
    for (let round = 0; round < 3; round++) {
      assert.deepEqual(votesOf(h.timeout('propose', round)), [`prevote@${round}:nil`]);
      const afterPrevotes = h.votes([1, 2], 'prevote', round, null);
      assert.deepEqual(delays(afterPrevotes), [`prevote@${round}:${500 + 50 * round}`]);
      assert.deepEqual(votesOf(afterPrevotes), [`precommit@${round}:nil`], 'a polka for nil');
      const afterPrecommits = h.votes([1, 2], 'precommit', round, null);
      assert.deepEqual(delays(afterPrecommits), [`precommit@${round}:${600 + 60 * round}`]);
      assert.deepEqual(delays(h.timeout('precommit', round)), [
        `propose@${round + 1}:${1000 + 100 * (round + 1)}`,
      ]);
      assert.equal(h.machine.snapshot().round, round + 1);
    }
  });

  test('stale timeouts and messages for other heights change nothing', () => {
    const h = new Harness(0, NOT_ME);
    h.start();
    assert.deepEqual(h.timeout('propose', 3), []);
    assert.deepEqual(h.send({ type: 'timeout', height: 2n, round: 0, step: 'propose' }), []);
    assert.deepEqual(h.send({ type: 'vote', vote: vote(1, 'prevote', 0, A, 2n) }), []);
    assert.equal(h.machine.snapshot().step, 'propose');
  });
});

describe('tendermint: locking (the paper, lines 22-43)', () => {
  test('a validator locked on A prevotes nil for a fresh proposal of B', () => {
    const h = new Harness(0, NOT_ME);
    h.start();
    h.propose(0, A);
    assert.deepEqual(votesOf(h.votes([1, 2], 'prevote', 0, A)), ['precommit@0:A']);
    h.votes([1, 2], 'precommit', 0, null);
    h.timeout('precommit', 0);
    assert.deepEqual(votesOf(h.propose(1, B)), ['prevote@1:nil']);
    assert.equal(h.machine.snapshot().lockedRound, 0);
  });

  test('the locked value itself is prevoted again in a later round', () => {
    const h = new Harness(0, NOT_ME);
    h.start();
    h.propose(0, A);
    h.votes([1, 2], 'prevote', 0, A);
    h.timeout('precommit', 0);
    assert.deepEqual(votesOf(h.propose(1, A)), ['prevote@1:A']);
  });

  test('a polka older than the lock does not release it', () => {
    const h = new Harness(0, NOT_ME);
    h.start();
    // Round 0: B gathers a polka, but this node never saw B's proposal, so it does not lock.
    h.timeout('propose', 0);
    h.votes([1, 2, 3], 'prevote', 0, B);
    h.timeout('prevote', 0);
    h.timeout('precommit', 0);
    // Round 1: lock on A.
    h.propose(1, A);
    assert.deepEqual(votesOf(h.votes([1, 2], 'prevote', 1, A)), ['precommit@1:A']);
    h.timeout('precommit', 1);
    // Round 2: B re-proposed with its round-0 polka: 0 < lockedRound 1, so still nil.
    assert.deepEqual(votesOf(h.propose(2, B, 0)), ['prevote@2:nil']);
    const snap = h.machine.snapshot();
    assert.equal(snap.lockedRound, 1);
    assert.ok(equalBytes(snap.lockedValue!, A));
  });

  test('a polka newer than the lock releases it (line 28), and the node re-locks on the new value', () => {
    const h = new Harness(0, NOT_ME);
    h.start();
    h.propose(0, A);
    assert.deepEqual(votesOf(h.votes([1, 2], 'prevote', 0, A)), ['precommit@0:A']);
    h.timeout('precommit', 0);
    // Round 1: the others form a polka for B that this node only hears about.
    h.timeout('propose', 1);
    h.votes([1, 2, 3], 'prevote', 1, B);
    h.timeout('prevote', 1);
    h.timeout('precommit', 1);
    // Round 2: B re-proposed with polRound 1 ≥ lockedRound 0.
    assert.deepEqual(votesOf(h.propose(2, B, 1)), ['prevote@2:B']);
    assert.deepEqual(votesOf(h.votes([1, 2], 'prevote', 2, B)), ['precommit@2:B']);
    const snap = h.machine.snapshot();
    assert.equal(snap.lockedRound, 2);
    assert.ok(equalBytes(snap.lockedValue!, B));
  });

  test('a re-proposal whose polka this node has not seen waits for it, then votes', () => {
    const h = new Harness(0, NOT_ME);
    h.start();
    h.timeout('propose', 0);
    h.timeout('prevote', 0);
    h.timeout('precommit', 0);
    assert.deepEqual(votesOf(h.propose(1, A, 0)), [], 'no polka for A in round 0 yet');
    assert.deepEqual(votesOf(h.votes([1, 2, 3], 'prevote', 0, A)), ['prevote@1:A']);
  });

  test('lacksPolkaOfReProposal: only a re-proposal held back for want of its polka, locked or not, valid or not', () => {
    // Each case ends in round 2's propose step; the machine has prevoted there exactly when the
    // answer is false, so a driver counting it as a missed turn never counts a round line 28 took.
    const lockedOnA = () => {
      const h = new Harness(0, NOT_ME);
      h.start();
      h.propose(0, A);
      h.votes([1, 2], 'prevote', 0, A);
      h.timeout('precommit', 0);
      h.timeout('propose', 1);
      h.timeout('prevote', 1);
      h.timeout('precommit', 1);
      return h;
    };
    const cases: [string, (h: Harness) => unknown, boolean][] = [
      ['no proposal', () => {}, false],
      ['a fresh proposal of B (nil prevote at once)', (h) => h.propose(2, B), false],
      ['B re-proposed over a round-1 polka not seen', (h) => h.propose(2, B, 1), true],
      ['an invalid B re-proposed over a round-1 polka not seen', (h) => h.propose(2, B, 1, false), true],
      ['the locked A re-proposed over a round-1 polka not seen', (h) => h.propose(2, A, 1), true],
      [
        'B re-proposed, its round-1 polka seen (the lock released)',
        (h) => {
          h.votes([1, 2, 3], 'prevote', 1, B);
          return h.propose(2, B, 1);
        },
        false,
      ],
      [
        'an invalid B re-proposed, its polka seen (nil prevote)',
        (h) => {
          h.votes([1, 2, 3], 'prevote', 1, B);
          return h.propose(2, B, 1, false);
        },
        false,
      ],
    ];
    for (const [what, act, lacks] of cases) {
      const h = lockedOnA();
      act(h);
      assert.equal(h.machine.lacksPolkaOfReProposal(2), lacks, what);
      assert.equal(h.machine.snapshot().step === 'propose', lacks || what === 'no proposal', what);
      assert.equal(h.machine.lacksPolkaOfReProposal(3), false, `${what}: a round with no proposal`);
    }
  });

  test('a polka seen after precommitting nil updates validValue but not the lock (line 36)', () => {
    const h = new Harness(0, NOT_ME);
    h.start();
    assert.deepEqual(votesOf(h.timeout('propose', 0)), ['prevote@0:nil']);
    assert.deepEqual(votesOf(h.propose(0, A)), [], 'too late: already prevoted');
    assert.deepEqual(votesOf(h.timeout('prevote', 0)), ['precommit@0:nil']);
    assert.deepEqual(votesOf(h.votes([1, 2, 3], 'prevote', 0, A)), [], 'already precommitted nil');
    const snap = h.machine.snapshot();
    assert.equal(snap.step, 'precommit');
    assert.equal(snap.lockedRound, -1);
    assert.equal(snap.validRound, 0);
    assert.ok(equalBytes(snap.validValue!, A));
  });
});

describe('tendermint: proposing', () => {
  test('a proposer without a valid value asks the driver for a block, then proposes and prevotes it', () => {
    const mine = findBeacon(1, (_, p) => p === 0);
    const h = new Harness(0, mine);
    const actions = h.start();
    assert.ok(actions.some((a) => a.type === 'request-value' && a.round === 0));
    const after = h.send({ type: 'value', height: 1n, round: 0, blockHash: A });
    const [p] = broadcastProposals(after);
    assert.ok(p);
    assert.equal(p.polRound, -1);
    assert.ok(equalBytes(p.blockHash, A));
    assert.deepEqual(votesOf(after), ['prevote@0:A']);
  });

  test('a proposer holding a valid value re-proposes it with its polka round (line 15)', () => {
    const beacon = findBeacon(2, (r, p) => (r === 0 ? p !== 0 : p === 0));
    const h = new Harness(0, beacon);
    h.start();
    h.propose(0, A);
    h.votes([1, 2], 'prevote', 0, A);
    const next = h.timeout('precommit', 0);
    assert.ok(!next.some((a) => a.type === 'request-value'));
    const [p] = broadcastProposals(next);
    assert.ok(p);
    assert.equal(p.round, 1);
    assert.equal(p.polRound, 0);
    assert.ok(equalBytes(p.blockHash, A));
    assert.deepEqual(votesOf(next), ['prevote@1:A']);
  });

  test('a polka for an earlier round, seen after leaving it, is re-proposed with its round, not locked', () => {
    // Simulator seeds 1638 and 2640: one honest validator locked on a polka whose last prevote
    // reached the others only after they had left its round; they kept proposing fresh blocks,
    // which the locked one prevotes nil on, and one Byzantine validator left no quorum without it.
    const beacon = findBeacon(3, (r, p) => (r < 2 ? p !== 0 : p === 0));
    const h = new Harness(0, beacon);
    h.start();
    assert.deepEqual(votesOf(h.propose(0, A)), ['prevote@0:A']);
    h.votes([1], 'prevote', 0, A);
    h.votes([3], 'prevote', 0, null);
    assert.deepEqual(votesOf(h.timeout('prevote', 0)), ['precommit@0:nil']);
    h.votes([1, 2, 3], 'precommit', 0, null);
    h.timeout('precommit', 0);
    // In round 1, the round-0 prevote that makes the polka arrives late.
    h.votes([2], 'prevote', 0, A);
    let snap = h.machine.snapshot();
    assert.equal(snap.round, 1);
    assert.equal(snap.lockedRound, -1, 'a late polka never locks');
    assert.equal(snap.validRound, 0);
    assert.ok(equalBytes(snap.validValue!, A));
    h.timeout('propose', 1);
    h.timeout('prevote', 1);
    const next = h.timeout('precommit', 1);
    assert.ok(!next.some((a) => a.type === 'request-value'));
    const [p] = broadcastProposals(next);
    assert.ok(p);
    assert.equal(p.round, 2);
    assert.equal(p.polRound, 0);
    assert.ok(equalBytes(p.blockHash, A));
    snap = h.machine.snapshot();
    assert.equal(snap.lockedRound, -1);
  });

  test('proposals from anyone but the round proposer, or with polRound ≥ round, are ignored', () => {
    const h = new Harness(0, NOT_ME);
    h.start();
    const wrong = (proposerIndex(NOT_ME, 1n, 0) + 1) % 4 || 1;
    const forged = {
      ...proposal(NOT_ME, 0, A),
      proposer: KEYS[wrong]!,
    };
    assert.deepEqual(h.send({ type: 'proposal', proposal: forged, valid: true }), []);
    assert.deepEqual(h.send({ type: 'proposal', proposal: proposal(NOT_ME, 0, A, 0), valid: true }), []);
    const badSignature = proposal(NOT_ME, 0, A);
    badSignature.signature = badSignature.signature.slice();
    badSignature.signature[0]! ^= 1;
    assert.deepEqual(h.send({ type: 'proposal', proposal: badSignature, valid: true }), []);
    assert.deepEqual(votesOf(h.propose(0, A)), ['prevote@0:A']);
  });
});

describe('tendermint: a fresh proposal the driver finds untimely (TendermintOptions.timely)', () => {
  /** A harness whose driver finds every fresh proposal of `A` untimely, recording when it was asked. */
  function untimelyA() {
    const asked: { round: number; proposalRound: number; polRound: number }[] = [];
    const h: Harness = new Harness(0, NOT_ME, undefined, (p) => {
      asked.push({ round: h.machine.snapshot().round, proposalRound: p.round, polRound: p.polRound });
      return !equalBytes(p.blockHash, A);
    });
    h.start();
    return { h, asked };
  }

  test('gets a nil prevote, but the block stays valid: locked on at a polka and decided', () => {
    const { h, asked } = untimelyA();
    assert.deepEqual(votesOf(h.propose(0, A)), ['prevote@0:nil']);
    assert.deepEqual(asked, [{ round: 0, proposalRound: 0, polRound: -1 }]);
    // The others prevoted it (their clocks read otherwise): this node locks on it and precommits.
    assert.deepEqual(votesOf(h.votes([1, 2], 'prevote', 0, A)), []);
    assert.deepEqual(votesOf(h.votes([3], 'prevote', 0, A)), ['precommit@0:A']);
    assert.equal(h.machine.snapshot().lockedRound, 0);
    const commit = h.votes([1, 2], 'precommit', 0, A).find((a) => a.type === 'commit');
    assert.ok(commit && commit.type === 'commit' && equalBytes(commit.blockHash, A));
  });

  test('only a fresh proposal is asked about: a re-proposal of the block is prevoted (line 28)', () => {
    const { h, asked } = untimelyA();
    h.timeout('propose', 0);
    h.votes([1, 2, 3], 'prevote', 0, A);
    h.timeout('prevote', 0);
    h.timeout('precommit', 0);
    assert.deepEqual(votesOf(h.propose(1, A, 0)), ['prevote@1:A']);
    assert.deepEqual(asked, []);
  });

  test('asked in the proposal’s round, once it is entered, and only of a block it could vote for', () => {
    const { h, asked } = untimelyA();
    // Round 1's proposal arrives during round 0: nothing asked until round 1 begins.
    h.propose(1, B);
    assert.deepEqual(asked, []);
    h.timeout('propose', 0);
    h.timeout('prevote', 0);
    assert.deepEqual(votesOf(h.timeout('precommit', 0)), ['prevote@1:B']);
    assert.deepEqual(asked, [{ round: 1, proposalRound: 1, polRound: -1 }]);
    // An invalid block gets its nil prevote without the question.
    const { h: h2, asked: asked2 } = untimelyA();
    assert.deepEqual(votesOf(h2.propose(0, B, -1, false)), ['prevote@0:nil']);
    assert.deepEqual(asked2, []);
  });
});

describe('tendermint: rounds and decisions', () => {
  test('f+1 of the power in a later round pulls the node into it (line 55)', () => {
    const h = new Harness(0, NOT_ME);
    h.start();
    assert.equal(h.votes([1], 'prevote', 3, null).length, 0, '1 of 4 could be faulty');
    const jumped = h.votes([2], 'precommit', 3, null);
    assert.equal(h.machine.snapshot().round, 3);
    assert.ok(jumped.some((a) => a.type === 'schedule-timeout' && a.round === 3 && a.delayMs === 1300));
  });

  test('2/3+ precommits from an earlier round decide, whatever round the node is in (line 49)', () => {
    const h = new Harness(0, NOT_ME);
    h.start();
    for (let r = 0; r < 3; r++) {
      h.timeout('propose', r);
      h.timeout('prevote', r);
      h.timeout('precommit', r);
    }
    h.propose(0, A);
    const commit = h.votes([1, 2, 3], 'precommit', 0, A).find((a) => a.type === 'commit');
    assert.ok(commit && commit.type === 'commit');
    assert.equal(commit.round, 0);
  });

  test('a node that follows without a key (no privval) still decides', () => {
    const machine = new Tendermint({ chainId: CHAIN, timeouts: TIMEOUTS });
    machine.handle({ type: 'start', height: 1n, validators: SET, beacon: NOT_ME });
    machine.handle({ type: 'proposal', proposal: proposal(NOT_ME, 0, A), valid: true });
    const actions = [1, 2, 3].flatMap((i) =>
      machine.handle({ type: 'vote', vote: vote(i, 'precommit', 0, A) }),
    );
    assert.ok(actions.some((a) => a.type === 'commit'));
    assert.ok(!actions.some((a) => a.type === 'broadcast-vote'));
  });
});

describe('tendermint: vote counting cannot be gamed', () => {
  test('one validator repeating a vote counts once', () => {
    const h = new Harness(0, NOT_ME);
    h.start();
    h.propose(0, A);
    for (let i = 0; i < 10; i++) assert.deepEqual(votesOf(h.votes([1], 'prevote', 0, A)), []);
    assert.equal(h.machine.snapshot().lockedRound, -1);
  });

  test('bad signatures, strangers and votes signed for another slot are not counted', () => {
    const h = new Harness(0, NOT_ME);
    h.start();
    h.propose(0, A);
    const forged = vote(1, 'prevote', 0, A);
    forged.signature = forged.signature.slice();
    forged.signature[10]! ^= 4;
    const replayed = { ...vote(2, 'prevote', 1, A), round: 0 };
    const strangerSeed = SEEDS[0]!.map((b) => b ^ 0xff);
    const stranger = {
      ...vote(3, 'prevote', 0, A),
      validator: new PrivValidator(strangerSeed, CHAIN).publicKey,
    };
    const malformed = { ...vote(3, 'prevote', 0, A), blockHash: new Uint8Array(5) };
    for (const v of [forged, replayed, stranger, malformed]) {
      assert.deepEqual(h.send({ type: 'vote', vote: v }), []);
    }
    assert.equal(h.machine.snapshot().lockedRound, -1);
    assert.deepEqual(votesOf(h.votes([1, 2], 'prevote', 0, A)), ['precommit@0:A']);
  });

  test('two different signed votes by one validator yield evidence, once, that anyone can check', () => {
    const h = new Harness(0, NOT_ME);
    h.start();
    h.votes([1], 'prevote', 0, A);
    const actions = h.votes([1], 'prevote', 0, B);
    const evidence = actions.filter((a) => a.type === 'evidence');
    assert.equal(evidence.length, 1);
    const ev = evidence[0]!;
    assert.ok(ev.type === 'evidence' && ev.evidence.type === 'duplicate-vote');
    assert.equal(verifyConsensusEvidence(CHAIN, SET, ev.evidence), null);
    assert.deepEqual(
      decode(consensusEvidenceCodec, encode(consensusEvidenceCodec, ev.evidence)),
      ev.evidence,
    );
    assert.equal(
      h.votes([1], 'prevote', 0, null).filter((a) => a.type === 'evidence').length,
      0,
      'reported once',
    );
    // The equivocator's power counted once in the total: 1 + (self 0) is no quorum of anything.
    assert.equal(h.machine.snapshot().step, 'propose');
  });

  test('an equivocating proposer yields duplicate-proposal evidence', () => {
    const h = new Harness(0, NOT_ME);
    h.start();
    h.propose(0, A);
    const ev = h.propose(0, B).find((a) => a.type === 'evidence');
    assert.ok(ev && ev.type === 'evidence' && ev.evidence.type === 'duplicate-proposal');
    assert.equal(verifyConsensusEvidence(CHAIN, SET, ev.evidence), null);
  });

  test('an equivocating proposer’s second block, valid, with the polka: locked on and precommitted (line 36)', () => {
    // The proposer showed this node A first and the others B; B came here second (a driver
    // executes it once 2/3+ vote for it). The paper's line 36 asks for a proposal of B from the
    // round's proposer, not for the first one: the round kept A, and the node precommitted nil.
    const h = new Harness(0, NOT_ME);
    h.start();
    assert.deepEqual(votesOf(h.propose(0, A)), ['prevote@0:A']);
    assert.deepEqual(votesOf(h.votes([1, 2, 3], 'prevote', 0, B)), [], 'B not known yet: nothing to lock on');
    assert.deepEqual(votesOf(h.propose(0, B)), ['precommit@0:B']);
    const snap = h.machine.snapshot();
    assert.equal(snap.lockedRound, 0);
    assert.ok(equalBytes(snap.lockedValue!, B));
    assert.ok(equalBytes(snap.validValue!, B));
  });

  test('an equivocating proposer’s second block found invalid is not locked on, whatever its polka', () => {
    const h = new Harness(0, NOT_ME);
    h.start();
    h.propose(0, A);
    h.propose(0, B, -1, false);
    assert.deepEqual(votesOf(h.votes([1, 2, 3], 'prevote', 0, B)), []);
    assert.equal(h.machine.snapshot().lockedRound, -1);
    assert.equal(h.machine.snapshot().validValue, null);
  });

  test('a block first seen in a proposal found invalid, then valid from its own proposer: decided and locked on', () => {
    // A verdict can be the proposal's, not the block's: the driver refuses a fresh proposal
    // carrying a block another validator built. Another round's proposer re-signing block A so,
    // seen first, left A noted invalid here for the height: never locked on nor decided (line 49).
    const h = new Harness(0, NOT_ME);
    h.start();
    h.propose(1, A, -1, false);
    assert.deepEqual(votesOf(h.propose(0, A)), ['prevote@0:A']);
    assert.deepEqual(votesOf(h.votes([1, 2], 'prevote', 0, A)), ['precommit@0:A']);
    assert.ok(equalBytes(h.machine.snapshot().lockedValue!, A));
    const commit = h.votes([1, 2], 'precommit', 0, A).find((a) => a.type === 'commit');
    assert.ok(commit && commit.type === 'commit' && equalBytes(commit.blockHash, A), 'A decided');
  });

  test('a polka for a round’s second block, seen after leaving the round, makes it the valid value, not the lock', () => {
    const h = new Harness(0, NOT_ME);
    h.start();
    h.propose(0, A);
    h.propose(0, B);
    h.timeout('prevote', 0);
    h.timeout('precommit', 0);
    assert.equal(h.machine.snapshot().round, 1);
    h.votes([1, 2, 3], 'prevote', 0, B);
    const snap = h.machine.snapshot();
    assert.equal(snap.validRound, 0);
    assert.ok(equalBytes(snap.validValue!, B));
    assert.equal(snap.lockedRound, -1);
  });

  test('an equivocator’s vote still counts for the value it names, so a certified block is recognised', () => {
    // Validator 3 told us nil but told the others A; the network decided A with 3's precommit.
    const h = new Harness(0, NOT_ME);
    h.start();
    h.propose(0, A);
    h.timeout('prevote', 0);
    h.votes([3], 'precommit', 0, null);
    const actions = h.votes([1, 2, 3], 'precommit', 0, A);
    assert.ok(actions.some((a) => a.type === 'evidence'));
    assert.ok(actions.some((a) => a.type === 'commit'));
  });
});

describe('tendermint: restart with the private validator state', () => {
  test('the lock is recovered, the last votes are re-sent, and no conflicting vote is signed', () => {
    const privval = new PrivValidator(SEEDS[0]!, CHAIN);
    const before = new Harness(0, NOT_ME, privval);
    before.start();
    before.propose(0, A);
    assert.deepEqual(votesOf(before.votes([1, 2], 'prevote', 0, A)), ['precommit@0:A']);

    // Crash: the state machine is gone, the private validator's state is on disk.
    const restarted = new Harness(0, NOT_ME, new PrivValidator(SEEDS[0]!, CHAIN, privval.state));
    const resent = restarted.start();
    assert.deepEqual(votesOf(resent), ['prevote@0:A', 'precommit@0:A']);
    const snap = restarted.machine.snapshot();
    assert.equal(snap.lockedRound, 0);
    assert.ok(equalBytes(snap.lockedValue!, A));
    // An equivocating proposer now shows it B in round 0: it must not prevote again in round 0.
    assert.deepEqual(votesOf(restarted.propose(0, B)), []);
    restarted.timeout('precommit', 0);
    assert.deepEqual(votesOf(restarted.propose(1, B)), ['prevote@1:nil'], 'still locked on A');
  });

  test('restored locked on A (a released fresh signer: node signer-guard OwnSignaturesAbove), a later polka for a block known valid moves the lock; one for a block it never found valid does not', () => {
    // The state a held fresh signer is released with: its own precommit of A in round 0, seen
    // while held, rebuilt as if restored. heldvote's line 36 (validPolka) must still move it as
    // the paper does, including to a block known valid from another round's proposal.
    const lost = new PrivValidator(SEEDS[0]!, CHAIN);
    const before = new Harness(0, NOT_ME, lost);
    before.start();
    before.propose(0, A);
    before.votes([1, 2], 'prevote', 0, A);
    const h = new Harness(0, NOT_ME, new PrivValidator(SEEDS[0]!, CHAIN, lost.state));
    h.start();
    h.timeout('precommit', 0);
    assert.deepEqual(votesOf(h.propose(1, B)), ['prevote@1:nil'], 'locked on A');
    assert.deepEqual(
      votesOf(h.votes([1, 2, 3], 'prevote', 1, B)),
      ['precommit@1:B'],
      "B's polka moves the lock",
    );
    assert.equal(h.machine.snapshot().lockedRound, 1);
    h.votes([1, 2], 'precommit', 1, null);
    h.timeout('precommit', 1);
    // Round 2 proposes C; 2/3+ prevote B again. B is known valid (round 1's proposal): the lock
    // moves to round 2 on B though it is not round 2's proposal.
    const C = sha256(Uint8Array.of(0xcc));
    assert.deepEqual(votesOf(h.propose(2, C)), ['prevote@2:nil']);
    assert.deepEqual(votesOf(h.votes([1, 2, 3], 'prevote', 2, B)), ['precommit@2:B']);
    assert.equal(h.machine.snapshot().lockedRound, 2);
    h.votes([1, 2], 'precommit', 2, null);
    h.timeout('precommit', 2);
    // Round 3: a polka for a block never proposed to it (D): no lock, a nil precommit on timeout.
    const D = sha256(Uint8Array.of(0xdd));
    h.timeout('propose', 3);
    assert.deepEqual(votesOf(h.votes([1, 2, 3], 'prevote', 3, D)), []);
    assert.deepEqual(votesOf(h.timeout('prevote', 3)), ['precommit@3:nil']);
    const snap = h.machine.snapshot();
    assert.equal(snap.lockedRound, 2);
    assert.ok(equalBytes(snap.lockedValue!, B));
  });

  test('the private validator refuses every double sign and re-signs identical messages', () => {
    const pv = new PrivValidator(SEEDS[1]!, CHAIN);
    const base = { type: 'prevote' as const, height: 5n, round: 2, validator: KEYS[1]! };
    const first = pv.signVote({ ...base, blockHash: A });
    assert.ok(first);
    assert.deepEqual(pv.signVote({ ...base, blockHash: A })?.signature, first.signature);
    assert.equal(pv.signVote({ ...base, blockHash: B }), null, 'same slot, other block');
    assert.equal(pv.signVote({ ...base, blockHash: null }), null, 'same slot, nil');
    assert.equal(pv.signVote({ ...base, round: 1, blockHash: A }), null, 'earlier round');
    assert.equal(pv.signVote({ ...base, height: 4n, round: 9, blockHash: A }), null, 'earlier height');
    assert.ok(pv.signVote({ ...base, type: 'precommit', blockHash: A }), 'later step');
    assert.equal(pv.signVote({ ...base, blockHash: A }), null, 'back to an earlier step');
    assert.equal(pv.signVote({ ...base, validator: KEYS[2]!, round: 3, blockHash: A }), null, 'not my key');
    const reloaded = new PrivValidator(SEEDS[1]!, CHAIN, pv.state);
    assert.equal(reloaded.signVote({ ...base, type: 'precommit', blockHash: B }), null);
    assert.ok(reloaded.lockAt(5n));
    assert.equal(
      reloaded.signProposal({ height: 5n, round: 2, polRound: -1, blockHash: B, proposer: KEYS[1]! }),
      null,
    );
    assert.ok(
      reloaded.signProposal({ height: 5n, round: 3, polRound: -1, blockHash: B, proposer: KEYS[1]! }),
    );
  });
});

test('mayStillNeed: a block with a quorum of votes in some round, or locked, is still needed after its round; others are not', () => {
  // The driver lets go of a fetch when its round is over unless this says the block may still be
  // locked on or decided for want of only its bytes.
  const h = new Harness(0, NOT_ME);
  h.start();
  assert.equal(h.machine.mayStillNeed(A), false);
  // 2/3+ prevote A in round 0 while this node does not hold A (no proposal): a polka it cannot use yet.
  h.votes([1, 2, 3], 'prevote', 0, A);
  assert.equal(h.machine.mayStillNeed(A), true);
  assert.equal(h.machine.mayStillNeed(B), false);
  // The round moves on (f+1 of round 2): A's polka of round 0 still makes it needed, B is not.
  h.votes([1, 2], 'prevote', 2, null);
  assert.equal(h.machine.snapshot().round, 2);
  assert.equal(h.machine.mayStillNeed(A), true);
  assert.equal(h.machine.mayStillNeed(B), false);
  // Precommits alone count too (a block decided elsewhere, its proposal missed here).
  const other = new Harness(0, NOT_ME);
  other.start();
  other.votes([1, 2, 3], 'precommit', 1, B);
  assert.equal(other.machine.mayStillNeed(B), true);
  // Its own lock counts without any quorum seen since (the lock is kept across rounds).
  const locked = new Harness(0, NOT_ME);
  locked.start();
  locked.propose(0, A);
  locked.votes([1, 2], 'prevote', 0, A);
  assert.ok(equalBytes(locked.machine.snapshot().lockedValue!, A));
  assert.equal(locked.machine.mayStillNeed(A), true);
});

test('whatever order proposals (two blocks a round, valid or not), votes and timeouts come in: a lock, the valid value and every block precommit rest on a polka for a block known valid', () => {
  // Line 36 takes any block known valid with its round's polka (`validPolka`), and a block's verdict
  // is the best any proposal gave it: neither may let a lock, the valid value or a precommit rest
  // on anything else, nor a lock go back to an earlier round.
  const value = fc.constantFrom<Uint8Array | null>(A, B, null);
  const round = fc.integer({ min: 0, max: 2 });
  const event = fc.oneof(
    fc.record({ k: fc.constant('prop' as const), round, v: fc.constantFrom(A, B), valid: fc.boolean() }),
    fc.record({
      k: fc.constant('vote' as const),
      from: fc.integer({ min: 1, max: 3 }),
      type: fc.constantFrom<'prevote' | 'precommit'>('prevote', 'precommit'),
      round,
      v: value,
    }),
    // Each of the others naming one value at once: the polkas and quorums single votes rarely make.
    fc.record({
      k: fc.constant('quorum' as const),
      type: fc.constantFrom<'prevote' | 'precommit'>('prevote', 'precommit'),
      round,
      v: value,
    }),
    fc.record({
      k: fc.constant('timeout' as const),
      step: fc.constantFrom<'propose' | 'prevote' | 'precommit'>('propose', 'prevote', 'precommit'),
      round,
    }),
  );
  fc.assert(
    fc.property(fc.array(event, { maxLength: 60 }), (events) => {
      const h = new Harness(0, NOT_ME);
      const named = new Map<string, Set<number>>();
      const valid = new Set<string>();
      const key = (r: number, v: Uint8Array | null) => `${r}:${v ? toHex(v) : 'nil'}`;
      const polka = (r: number, v: Uint8Array) => (named.get(key(r, v))?.size ?? 0) >= 3;
      const note = (actions: ReturnType<Harness['send']>) => {
        for (const vote of broadcastVotes(actions)) {
          if (vote.type === 'prevote') {
            const k = key(vote.round, vote.blockHash);
            named.set(k, (named.get(k) ?? new Set()).add(0));
          } else if (vote.blockHash) {
            assert.ok(polka(vote.round, vote.blockHash), `precommit ${describeVote(vote)} without its polka`);
            assert.ok(
              valid.has(toHex(vote.blockHash)),
              `precommit ${describeVote(vote)} for a block not known valid`,
            );
          }
        }
      };
      note(h.start());
      let lockedRound = -1;
      for (const e of events) {
        if (e.k === 'prop') {
          if (e.valid) valid.add(toHex(e.v));
          note(h.propose(e.round, e.v, -1, e.valid));
        } else if (e.k === 'vote') {
          if (e.type === 'prevote') {
            const k = key(e.round, e.v);
            named.set(k, (named.get(k) ?? new Set()).add(e.from));
          }
          note(h.votes([e.from], e.type, e.round, e.v));
        } else if (e.k === 'quorum') {
          if (e.type === 'prevote') {
            const k = key(e.round, e.v);
            named.set(k, new Set([...(named.get(k) ?? []), 1, 2, 3]));
          }
          note(h.votes([1, 2, 3], e.type, e.round, e.v));
        } else note(h.timeout(e.step, e.round));
        const s = h.machine.snapshot();
        assert.ok(s.lockedRound >= lockedRound, 'a lock never goes back to an earlier round');
        lockedRound = s.lockedRound;
        assert.ok(s.validRound >= s.lockedRound);
        if (s.lockedRound >= 0) {
          assert.ok(polka(s.lockedRound, s.lockedValue!) && valid.has(toHex(s.lockedValue!)));
        }
        if (s.validRound >= 0) {
          assert.ok(polka(s.validRound, s.validValue!) && valid.has(toHex(s.validValue!)));
        }
      }
    }),
    { numRuns: 400 },
  );
});
