/**
 * Who is blamed for a proposal found invalid. Its body is the one its proposer signed (checked on
 * arrival), so the fault is the proposer's, and an honest relay may have passed it on: a block
 * time past this node's clock plus the drift is valid on a node whose clock reads a little later,
 * and a proposal is forwarded before its block is checked while the relay buffers it. The node
 * still refuses to vote for the block (nil prevote); it only stops penalising the relay.
 *
 * The attack this closes: a proposer timing its blocks at the drift edge had every node whose
 * clock ran a little behind score down (-30 a block), then ban, the honest neighbours that relayed
 * them, cutting honest links along clock skew at no cost to the proposer.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { decode, encode, envelopeFromBytes, equalBytes, signProposal, type Vote } from '@unc/core';
import { until as waitUntil } from '@unc/test-utils';
import { proposalMessageCodec, voteMessageCodec } from '../../src/consensus/wire.js';
import type { UncNode } from '../../src/node.js';
import { MemoryNetworkHub } from './memory-network.js';
import { withIds } from './signed-ids.js';
import { fourValidatorGenesis, nextHeight, TestNodes, unseenTransfer, validators } from './test-nodes.js';

const nodes = new TestNodes();
after(() => nodes.stopAll());
const genesis = fourValidatorGenesis(150);

/** v0 at height 1 with a peer `relay` that records v0's prevotes, and the penalties v0 gives. */
async function v0WithRelay() {
  const hub = new MemoryNetworkHub();
  const node = await nodes.start(hub, genesis, 'unc-relay-blame-');
  const prevotes: Vote[] = [];
  hub.join('relay', {
    onGossip: (topic, data) => {
      if (topic !== 'vote') return 'ignore';
      const { vote } = decode(voteMessageCodec, data);
      if (vote.type === 'prevote' && equalBytes(vote.validator, validators[0]!.publicKey))
        prevotes.push(vote);
      return 'ignore';
    },
    status: () => node.driver.status(),
    blocks: async () => [],
  });
  await waitUntil('the driver to run height 1', () => node.driver.position.height === 1n, {
    timeoutMs: 60_000,
    intervalMs: 25,
  });
  const prevoteOfRound0 = async () => {
    await waitUntil(
      'v0 to prevote in round 0',
      () => prevotes.some((v) => v.height === 1n && v.round === 0),
      {
        timeoutMs: 60_000,
        intervalMs: 10,
      },
    );
    return prevotes.find((v) => v.height === 1n && v.round === 0)!;
  };
  return { node, penalties: hub.member('v0')!.penalties, prevoteOfRound0 };
}

/** A proposal for height 1, round 0 by its proposer, of a block with time `timeMs`. */
function proposalAt(node: UncNode, timeMs: bigint) {
  const by = nextHeight(node).proposerOf(0);
  assert.notEqual(by, validators[0], 'v0 votes on another’s block');
  const { pending } = node.chain.buildProposal(
    [envelopeFromBytes(unseenTransfer('0.01'))],
    node.chain.nextBlockTime(timeMs),
    { seed: by.seed, publicKey: by.publicKey },
    () => false,
  );
  const proposal = signProposal(
    'unc-dev-1',
    { height: 1n, round: 0, polRound: -1, blockHash: pending.hash, proposer: by.publicKey },
    by.seed,
  );
  return {
    hash: pending.hash,
    wire: encode(
      proposalMessageCodec,
      withIds({ proposal, block: pending.block, lastCommit: pending.lastCommit, sentAt: 1n }, by.seed),
    ),
  };
}

test('a block time past this node’s clock plus the drift: prevoted nil, ignored, and the relay is not penalised', async () => {
  const { node, penalties, prevoteOfRound0 } = await v0WithRelay();
  // A minute ahead (the drift allowed is 5 s): in the future on any reading of this clock, as the
  // drift edge is on a node whose clock reads a little earlier than the relay's.
  const future = proposalAt(node, BigInt(Date.now() + 60_000));
  assert.equal(await node.driver.handlers().onGossip('proposal', future.wire, 'relay'), 'ignore');
  assert.deepEqual(penalties, [], 'the relay is not blamed for a verdict of this node’s clock');
  const prevote = await prevoteOfRound0();
  assert.equal(prevote.blockHash, null, 'validity is unchanged: no vote for a block from the future');
});

test('a block that breaks a rule of the chain: prevoted nil, ignored, and the relay is not penalised', async () => {
  const { node, penalties, prevoteOfRound0 } = await v0WithRelay();
  // A state root its transactions do not lead to; signatures and content hashes all check.
  const bad = nextHeight(node).proposalFor(0, '0.02', undefined, -1, true);
  assert.equal(await node.driver.handlers().onGossip('proposal', bad.full, 'relay'), 'ignore');
  // A second copy (another relay) is answered from the verdict kept: still not forwarded.
  assert.equal(await node.driver.handlers().onGossip('proposal', bad.full, 'relay-2'), 'ignore');
  assert.deepEqual(penalties, []);
  const prevote = await prevoteOfRound0();
  assert.equal(prevote.blockHash, null);
});

test('a node that buffers a proposal forwards it before checking its block, but only with the body its header commits to', async () => {
  const { node, penalties } = await v0WithRelay();
  // While syncing (the same path runs between committing the head and starting the next height),
  // a proposal for the height after the head is kept for later and forwarded at once.
  const reactor = (node.driver as unknown as { syncReactor: object }).syncReactor;
  Object.defineProperty(reactor, 'syncing', { get: () => true, configurable: true });
  const gossip = node.driver.handlers().onGossip;
  const { proposalFor } = nextHeight(node);
  // Its block is not checked yet: an invalid one is forwarded too. This is why a node that checks
  // it later must not blame the relay for it (the tests above).
  assert.equal(await gossip('proposal', proposalFor(0, '0.03', undefined, -1, true).full, 'relay'), 'accept');
  // What the bytes alone prove is checked before forwarding: a copy whose last commit is not the
  // one its header commits to (altered on the way, or so signed) is refused, its sender blamed, so
  // that no honest relay ever forwards one and that blame stays sound.
  const genuine = decode(proposalMessageCodec, proposalFor(1, '0.04').full);
  const altered = { ...genuine, lastCommit: { ...genuine.lastCommit, round: 7 } };
  assert.equal(await gossip('proposal', encode(proposalMessageCodec, altered), 'evil'), 'reject');
  assert.deepEqual(
    penalties.map((p) => p.peer),
    ['evil'],
  );
  assert.equal(await gossip('proposal', encode(proposalMessageCodec, genuine), 'relay'), 'accept');
});

test('a copy of a proposal for a block this node holds is forwarded only with the body its header commits to', async () => {
  const { node, penalties } = await v0WithRelay();
  const gossip = node.driver.handlers().onGossip;
  const h = nextHeight(node);
  const r0 = h.proposalFor(0, '0.05');
  assert.equal(await gossip('proposal', r0.full, 'relay'), 'accept');
  // Round 1's proposer re-proposes the block (polRound 0), a new signature; a peer alters its last
  // commit on the way (no signature covers it but the header's hash).
  const by = h.proposerOf(1);
  const held = decode(proposalMessageCodec, r0.full);
  const proposal = signProposal(
    'unc-dev-1',
    { height: 1n, round: 1, polRound: 0, blockHash: r0.blockHash, proposer: by.publicKey },
    by.seed,
  );
  const genuine = withIds({ proposal, block: held.block, lastCommit: held.lastCommit, sentAt: 1n }, by.seed);
  const altered = encode(proposalMessageCodec, {
    ...genuine,
    lastCommit: { ...genuine.lastCommit, round: 7 },
  });
  // Accepted on the strength of the block held, it was forwarded, and every peer not holding the
  // block (its clock behind, buffering, syncing) blamed this node for it: two copies, a ban.
  const other = await v0WithRelay();
  assert.equal(await other.node.driver.handlers().onGossip('proposal', altered, 'v0'), 'reject');
  assert.deepEqual(
    other.penalties.map((p) => p.peer),
    ['v0'],
  );
  assert.equal(await gossip('proposal', altered, 'evil'), 'reject');
  assert.deepEqual(
    penalties.map((p) => p.peer),
    ['evil'],
  );
  // The genuine copy is still taken and relayed.
  assert.equal(await gossip('proposal', encode(proposalMessageCodec, genuine), 'relay'), 'accept');
});
