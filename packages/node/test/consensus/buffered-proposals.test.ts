/**
 * What bounds the proposals a node keeps for a later height (consensus/driver.ts, `buffer`):
 * other messages must not push them out. A later height's votes are kept too (up to
 * MAX_BUFFERED_FUTURE), and any one validator may sign as many of them as it likes (one per
 * round, for every height ahead); proposals and votes shared one list, whose oldest entry went
 * when it was full, so one validator's vote flood pushed out every proposal kept, the honest
 * proposer's next-height compact proposal included. And copies of one signed proposal (a relay
 * re-wrapping it with another unsigned `sentAt`) took a place each, pushing out that proposer's
 * other kept proposals.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { blockHash, encode, envelopeFromBytes, keyId, signProposal, signVote } from '@unc/core';
import { until as waitUntil } from '@unc/test-utils';
import { compactOf } from '../../src/consensus/compact-block.js';
import { compactProposalCodec, voteMessageCodec } from '../../src/consensus/wire.js';
import { MemoryNetworkHub } from './memory-network.js';
import { withIds } from './signed-ids.js';
import { fourValidatorGenesis, TestNodes, unseenTransfer, validators } from './test-nodes.js';

const nodes = new TestNodes();
after(() => nodes.stopAll());
const genesis = fourValidatorGenesis(150);

/** v0 alone at height 1 (no quorum: it stays there), and signed compact proposals of later heights. */
async function startAt1() {
  const node = await nodes.start(new MemoryNetworkHub(), genesis, 'unc-buffered-test-');
  await waitUntil('the driver to run height 1', () => node.driver.position.height === 1n, {
    timeoutMs: 60_000,
    intervalMs: 25,
  });
  /** `by`'s compact proposal of a one-transaction block at `height` (a later one: only its header's height differs). */
  const compactAt = (height: bigint, round: number, by: (typeof validators)[number]) => {
    const { pending } = node.chain.buildProposal(
      [envelopeFromBytes(unseenTransfer(`0.0${round + 1}`))],
      node.chain.nextBlockTime(BigInt(Date.now())),
      { seed: by.seed, publicKey: by.publicKey },
      () => false,
    );
    const block = { ...pending.block, header: { ...pending.block.header, height } };
    const proposal = signProposal(
      'unc-dev-1',
      { height, round, polRound: -1, blockHash: blockHash(block.header), proposer: by.publicKey },
      by.seed,
    );
    const message = withIds({ proposal, block, lastCommit: pending.lastCommit, sentAt: 1n }, by.seed);
    return compactOf(message);
  };
  const wire = (msg: ReturnType<typeof compactAt>, sentAt = 1n) =>
    encode(compactProposalCodec, { ...msg, sentAt });
  return { node, compactAt, wire, gossip: node.driver.handlers().onGossip };
}

test("one validator's votes for later heights do not push out the next height's proposal kept", async () => {
  const { node, compactAt, wire, gossip } = await startAt1();
  assert.equal(
    await gossip('compact-proposal', wire(compactAt(2n, 0, validators[1]!)), 'relay', false),
    'ignore',
  );
  assert.deepEqual(node.driver.bufferedProposals, [{ height: 2n, round: 0, kind: 'compact' }]);
  // v2 signs a nil prevote for every round of height 3, more than the node keeps.
  const v2 = validators[2]!;
  for (let round = 0; round < 2_100; round++) {
    const vote = signVote(
      'unc-dev-1',
      { type: 'prevote', height: 3n, round, blockHash: null, validator: v2.publicKey },
      v2.seed,
    );
    await gossip('vote', encode(voteMessageCodec, { vote, sentAt: 1n }), 'relay', false);
  }
  assert.deepEqual(node.driver.bufferedProposals, [{ height: 2n, round: 0, kind: 'compact' }]);
});

test("copies of one signed proposal take one place, not the proposer's other proposals'", async () => {
  const { node, compactAt, wire, gossip } = await startAt1();
  const v1 = validators[1]!;
  const first = compactAt(2n, 0, v1);
  await gossip('compact-proposal', wire(first), 'p1', false);
  await gossip('compact-proposal', wire(compactAt(3n, 0, v1)), 'p1', false);
  // A relay sends the first again, re-wrapped (`sentAt` is not signed): new bytes, same proposal.
  await gossip('compact-proposal', wire(first, 2n), 'relay', false);
  await gossip('compact-proposal', wire(first, 3n), 'relay', false);
  assert.deepEqual(node.driver.bufferedProposals, [
    { height: 2n, round: 0, kind: 'compact' },
    { height: 3n, round: 0, kind: 'compact' },
  ]);
});

test("one validator's vote flood does not push out the other validators' votes for the next height", async () => {
  // A node one height behind decides that height from the votes it kept, without waiting for a
  // re-send; one validator signing a vote for every round ahead used to push them all out of the
  // shared bound (2,000, oldest first).
  const { node, gossip } = await startAt1();
  const vote = (v: (typeof validators)[number], height: bigint, round: number) =>
    encode(voteMessageCodec, {
      vote: signVote(
        'unc-dev-1',
        { type: 'prevote', height, round, blockHash: null, validator: v.publicKey },
        v.seed,
      ),
      sentAt: 1n,
    });
  const [v1, v2] = [validators[1]!, validators[2]!];
  await gossip('vote', vote(v1, 2n, 0), 'p1', false);
  for (let round = 0; round < 2_100; round++) await gossip('vote', vote(v2, 3n, round), 'relay', false);
  const kept = node.driver.bufferedVotesByValidator;
  assert.equal(kept.get(keyId(v1.publicKey)), 1, "v1's vote is still kept");
  assert.equal(kept.get(keyId(v2.publicKey)), 64, 'v2 keeps its latest 64');
});
