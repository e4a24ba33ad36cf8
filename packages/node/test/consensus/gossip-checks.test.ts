import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  blockHash,
  consensusEvidenceCodec,
  defaultVerify,
  duplicateVoteEvidence,
  encode,
  signProposal,
  signVote,
  ValidatorSet,
  type Vote,
} from '@unc/core';
import { compactIdsSigned, compactOf, wireTxId } from '../../src/consensus/compact-block.js';
import {
  checkCompactProposalGossip,
  checkEvidenceGossip,
  checkProposalGossip,
  checkVoteGossip,
  decodeTxBatch,
  type GossipView,
  proposalEnvelopeProblem,
} from '../../src/consensus/gossip-checks.js';
import {
  compactProposalCodec,
  proposalMessageCodec,
  txBatchCodec,
  voteMessageCodec,
} from '../../src/consensus/wire.js';
import { devKey, devValidatorKey } from '../../src/dev.js';
import { withIds } from './signed-ids.js';

const CHAIN = 'unc-dev-1';
const members = [0, 1, 2, 3].map((i) => devValidatorKey(i));
const outsider = devKey(5);
const view: GossipView = {
  chainId: CHAIN,
  headHeight: 4n,
  validators: new ValidatorSet(members.map((m) => ({ publicKey: m.publicKey, power: 1n }))),
  verify: defaultVerify,
};

function vote(
  key: { seed: Uint8Array; publicKey: Uint8Array },
  height: bigint,
  blockHash: Uint8Array | null = null,
): Vote {
  return signVote(
    CHAIN,
    { type: 'prevote', height, round: 0, blockHash, validator: key.publicKey },
    key.seed,
  );
}
const wire = (v: Vote) => encode(voteMessageCodec, { vote: v, sentAt: 1n });

test('votes: malformed, outsider or forged are rejected; stale ignored; the next height delivered; later ones kept', () => {
  assert.deepEqual(checkVoteGossip(new Uint8Array([1, 2, 3]), view), { verdict: 'reject' });
  assert.deepEqual(checkVoteGossip(wire(vote(outsider, 5n)), view), { verdict: 'reject' });
  const forged = { ...vote(members[1]!, 5n), validator: members[2]!.publicKey };
  assert.deepEqual(checkVoteGossip(wire(forged), view), { verdict: 'reject' });
  // Late for the head: ignored, but a genuine one is reported (its validator is up); a forged one
  // cost a signature check and is rejected; an outsider's is not looked at, nor older heights.
  const late = checkVoteGossip(wire(vote(members[1]!, 4n)), view);
  assert.equal(late.verdict, 'ignore');
  assert.ok('late' in late && late.late.height === 4n);
  const forgedLate = { ...vote(members[1]!, 4n), validator: members[2]!.publicKey };
  assert.deepEqual(checkVoteGossip(wire(forgedLate), view), { verdict: 'reject' });
  assert.deepEqual(checkVoteGossip(wire(vote(outsider, 4n)), view), { verdict: 'ignore' });
  assert.deepEqual(checkVoteGossip(wire(vote(members[1]!, 3n)), view), { verdict: 'ignore' });
  const next = checkVoteGossip(wire(vote(members[1]!, 5n)), view);
  assert.equal(next.verdict, 'accept');
  assert.ok('deliver' in next && next.deliver.height === 5n);
  // A later height: kept for after a sync, but not forwarded (its validator set is not known yet).
  const later = checkVoteGossip(wire(vote(members[1]!, 9n)), view);
  assert.equal(later.verdict, 'ignore');
  assert.ok('buffer' in later);
  // ... unless it cannot be from a validator at all: then it is not even kept.
  assert.deepEqual(checkVoteGossip(wire(vote(outsider, 9n)), view), { verdict: 'ignore' });
});

test('proposals: a block that is not the one signed, or from an outsider, is rejected', () => {
  const header = {
    chainId: CHAIN,
    height: 5n,
    time: 1n,
    prevHash: new Uint8Array(32),
    stateRoot: new Uint8Array(32),
    txRoot: new Uint8Array(32),
    proposer: members[0]!.publicKey,
    beacon: new Uint8Array(32),
    vrfProof: new Uint8Array(0),
    lastCommitHash: new Uint8Array(32),
  };
  const block = {
    header,
    txs: [],
    commit: { height: 4n, round: 0, blockHash: new Uint8Array(32), signatures: [] },
  };
  const lastCommit = block.commit;
  const proposal = (key: { seed: Uint8Array; publicKey: Uint8Array }, hash: Uint8Array) =>
    signProposal(
      CHAIN,
      { height: 5n, round: 0, polRound: -1, blockHash: hash, proposer: key.publicKey },
      key.seed,
    );
  const msg = (p: ReturnType<typeof proposal>, seed = members[0]!.seed) =>
    encode(proposalMessageCodec, withIds({ proposal: p, block, lastCommit, sentAt: 1n }, seed, CHAIN));
  const good = checkProposalGossip(msg(proposal(members[0]!, blockHash(header))), view);
  assert.equal(good.verdict, 'accept');
  assert.deepEqual(checkProposalGossip(msg(proposal(members[0]!, new Uint8Array(32).fill(9))), view), {
    verdict: 'reject',
  });
  assert.deepEqual(checkProposalGossip(msg(proposal(outsider, blockHash(header)), outsider.seed), view), {
    verdict: 'reject',
  });
  assert.deepEqual(checkProposalGossip(new Uint8Array(40), view), { verdict: 'reject' });
  // The block a fresh proposal carries is its proposer's own, and not from the future.
  const p = proposal(members[1]!, blockHash(header));
  const m = withIds({ proposal: p, block, lastCommit, sentAt: 1n }, members[1]!.seed, CHAIN);
  assert.deepEqual(proposalEnvelopeProblem(p, m, 0, 5_000), {
    kind: 'invalid',
    reason: 'a fresh proposal must carry a block built by its proposer',
  });
  const own = proposal(members[0]!, blockHash(header));
  assert.equal(proposalEnvelopeProblem(own, m, 0, 5_000), null);
  const at = (time: bigint) => ({ block: { ...block, header: { ...header, time } } });
  assert.deepEqual(proposalEnvelopeProblem(own, at(10_000n), 0, 5_000), {
    kind: 'invalid',
    reason: 'block time is in the future',
  });
  // Up to the drift either side of the clock is timely; further behind, a fresh proposal is stale
  // (valid, only not prevoted), a re-proposal never is.
  assert.equal(proposalEnvelopeProblem(own, at(5_001n), 1, 5_000), null);
  assert.equal(proposalEnvelopeProblem(own, at(5_000n), 10_000, 5_000), null);
  assert.deepEqual(proposalEnvelopeProblem(own, at(4_999n), 10_000, 5_000), {
    kind: 'stale',
    reason: "a fresh proposal's block time is 5001 ms behind this node's clock",
  });
  const again = signProposal(
    CHAIN,
    { height: 5n, round: 1, polRound: 0, blockHash: blockHash(header), proposer: members[1]!.publicKey },
    members[1]!.seed,
  );
  assert.equal(proposalEnvelopeProblem(again, at(1n), 3_600_000, 5_000), null);
});

test('compact proposals: the id list is the proposer’s, signed; a copy of a genuine proposal with other ids is rejected before any fetch', () => {
  const header = {
    chainId: CHAIN,
    height: 5n,
    time: 1n,
    prevHash: new Uint8Array(32),
    stateRoot: new Uint8Array(32),
    txRoot: new Uint8Array(32),
    proposer: members[0]!.publicKey,
    beacon: new Uint8Array(32),
    vrfProof: new Uint8Array(0),
    lastCommitHash: new Uint8Array(32),
  };
  const tx = new Uint8Array(100).fill(7);
  const block = {
    header,
    txs: [tx],
    commit: { height: 4n, round: 0, blockHash: new Uint8Array(32), signatures: [] },
  };
  const proposal = signProposal(
    CHAIN,
    { height: 5n, round: 0, polRound: -1, blockHash: blockHash(header), proposer: members[0]!.publicKey },
    members[0]!.seed,
  );
  const message = { proposal, block, lastCommit: block.commit, sentAt: 1n };
  const genuine = compactOf(withIds(message, members[0]!.seed, CHAIN));
  const wireOf = (m: typeof genuine) => encode(compactProposalCodec, m);
  const good = checkCompactProposalGossip(wireOf(genuine), view);
  assert.equal(good.verdict, 'accept');
  // Re-wrapped (another sentAt): the same signed content, still good.
  assert.equal(checkCompactProposalGossip(wireOf({ ...genuine, sentAt: 99n }), view).verdict, 'accept');
  // The same signed proposal with other ids: rejected (the old check accepted it, and fetched).
  const otherIds = [wireTxId(new Uint8Array(100).fill(8))];
  assert.deepEqual(checkCompactProposalGossip(wireOf({ ...genuine, txIds: otherIds }), view), {
    verdict: 'reject',
  });
  assert.deepEqual(checkCompactProposalGossip(wireOf({ ...genuine, txIds: [] }), view), {
    verdict: 'reject',
  });
  // Ids signed by someone else than the proposal's proposer (another validator, say): rejected.
  const byOther = compactOf(withIds(message, members[1]!.seed, CHAIN));
  assert.deepEqual(checkCompactProposalGossip(wireOf(byOther), view), { verdict: 'reject' });
  // The signature binds the very proposal: moved onto another round's proposal of the same block,
  // it no longer verifies.
  const round1 = signProposal(CHAIN, { ...proposal, round: 1 }, members[0]!.seed);
  assert.deepEqual(checkCompactProposalGossip(wireOf({ ...genuine, proposal: round1 }), view), {
    verdict: 'reject',
  });
  assert.ok(compactIdsSigned(CHAIN, genuine));
  assert.ok(!compactIdsSigned('other-chain', genuine), 'the chain id is signed too');
});

test('tx batches: one malformed entry rejects the whole message before anything is admitted', () => {
  assert.equal(decodeTxBatch(new Uint8Array([9])), null);
  assert.equal(decodeTxBatch(encode(txBatchCodec, [new Uint8Array([1, 2, 3])])), null);
  assert.deepEqual(decodeTxBatch(encode(txBatchCodec, [])), []);
});

test('evidence: malformed is rejected; evidence the current set cannot confirm is ignored; real evidence delivered', () => {
  assert.deepEqual(checkEvidenceGossip(new Uint8Array([7, 7]), view), { verdict: 'reject' });
  const a = vote(members[2]!, 5n, null);
  const b = vote(members[2]!, 5n, new Uint8Array(32).fill(1));
  const evidence = duplicateVoteEvidence(CHAIN, a, b);
  const checked = checkEvidenceGossip(encode(consensusEvidenceCodec, evidence), view);
  assert.equal(checked.verdict, 'accept');
  const other = { ...view, validators: new ValidatorSet([{ publicKey: outsider.publicKey, power: 1n }]) };
  assert.deepEqual(checkEvidenceGossip(encode(consensusEvidenceCodec, evidence), other), {
    verdict: 'ignore',
  });
});

/** Signed by an outsider, naming a member as signer: well-formed, and forged. */
function forgedVote(height: bigint, round = 0): Vote {
  const v = signVote(
    CHAIN,
    { type: 'prevote', height, round, blockHash: null, validator: outsider.publicKey },
    outsider.seed,
  );
  return { ...v, validator: members[1]!.publicKey };
}

test('a later height: a signature that fails under the key the message names is rejected (it cost a check), an outsider is ignored unchecked', () => {
  let checks = 0;
  const counting: GossipView = {
    ...view,
    verify: (k, m, s) => {
      checks++;
      return defaultVerify(k, m, s);
    },
  };
  // Votes: the forgery of a far height is as much the sender's as the next height's (no honest
  // relay forwards either), so each costs the sender a penalty rather than costing us for free.
  assert.deepEqual(checkVoteGossip(wire(forgedVote(9n)), counting), { verdict: 'reject' });
  assert.deepEqual(checkVoteGossip(wire(forgedVote(5n)), counting), { verdict: 'reject' });
  assert.equal(checks, 2);
  // A key outside this set may be in the set of that height: no check, no blame.
  assert.deepEqual(checkVoteGossip(wire(vote(outsider, 9n)), counting), { verdict: 'ignore' });
  assert.equal(checks, 2);

  // Proposals of a far height: a forged proposal signature, or ids not signed by its proposer.
  const header = {
    chainId: CHAIN,
    height: 9n,
    time: 1n,
    prevHash: new Uint8Array(32),
    stateRoot: new Uint8Array(32),
    txRoot: new Uint8Array(32),
    proposer: members[0]!.publicKey,
    beacon: new Uint8Array(32),
    vrfProof: new Uint8Array(0),
    lastCommitHash: new Uint8Array(32),
  };
  const block = {
    header,
    txs: [],
    commit: { height: 8n, round: 0, blockHash: new Uint8Array(32), signatures: [] },
  };
  const fields = { height: 9n, round: 0, polRound: -1, blockHash: blockHash(header) };
  const genuine = signProposal(CHAIN, { ...fields, proposer: members[0]!.publicKey }, members[0]!.seed);
  const forged = {
    ...signProposal(CHAIN, { ...fields, proposer: outsider.publicKey }, outsider.seed),
    proposer: members[0]!.publicKey,
  };
  const full = (p: typeof genuine, idsSeed: Uint8Array) =>
    withIds({ proposal: p, block, lastCommit: block.commit, sentAt: 1n }, idsSeed, CHAIN);
  const good = checkProposalGossip(encode(proposalMessageCodec, full(genuine, members[0]!.seed)), view);
  assert.ok('buffer' in good && good.verdict === 'ignore');
  assert.deepEqual(checkProposalGossip(encode(proposalMessageCodec, full(forged, members[0]!.seed)), view), {
    verdict: 'reject',
  });
  assert.deepEqual(checkProposalGossip(encode(proposalMessageCodec, full(genuine, outsider.seed)), view), {
    verdict: 'reject',
  });
  const compact = (p: typeof genuine, idsSeed: Uint8Array) =>
    encode(compactProposalCodec, compactOf(full(p, idsSeed)));
  assert.ok('buffer' in checkCompactProposalGossip(compact(genuine, members[0]!.seed), view));
  assert.deepEqual(checkCompactProposalGossip(compact(forged, members[0]!.seed), view), {
    verdict: 'reject',
  });
  assert.deepEqual(checkCompactProposalGossip(compact(genuine, outsider.seed), view), {
    verdict: 'reject',
  });
});

test('evidence: a signature that fails under the offender’s key is rejected; an offender outside the set is ignored unchecked', () => {
  const a = vote(members[1]!, 5n, new Uint8Array(32).fill(1));
  // A conflicting vote signed by the outsider, naming the member: a forgery.
  const forgedB = {
    ...vote(outsider, 5n, new Uint8Array(32).fill(2)),
    validator: members[1]!.publicKey,
  };
  const forged = encode(consensusEvidenceCodec, duplicateVoteEvidence(CHAIN, a, forgedB));
  assert.deepEqual(checkEvidenceGossip(forged, { ...view, canLand: () => true }), { verdict: 'reject' });
  const other = { ...view, validators: new ValidatorSet([{ publicKey: outsider.publicKey, power: 1n }]) };
  assert.deepEqual(checkEvidenceGossip(forged, { ...other, canLand: () => true }), { verdict: 'ignore' });
});
