/**
 * What a node forwards of the next height's proposals before it can check them (consensus/driver.ts
 * `forwardUnchecked`): while it waits for that height's block time, or syncs, it relays a proposal
 * on the strength of its signatures alone, so only the first content (block hash and signed ids) of
 * each round's proposer; further distinct ones are kept for the height but neither relayed nor
 * blamed on their sender.
 *
 * The attack this closes: the execution cap (execution-cap.test.ts) holds only at the height being
 * decided. A Byzantine proposer signing many distinct blocks for its turn at the next height had
 * every honest node waiting for that height relay each one (up to a full block's bytes apiece) to
 * all its peers, each of which decoded and hashed it.
 *
 * Validator 0 commits height 1 (signed by the test for the other three) and then waits the block
 * interval, ten minutes here, before it starts height 2: no timing in the assertions.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { decode, encode, signProposal } from '@unc/core';
import { until as waitUntil } from '@unc/test-utils';
import { compactOf } from '../../src/consensus/compact-block.js';
import { compactProposalCodec, proposalMessageCodec } from '../../src/consensus/wire.js';
import { devGenesisJson } from '../../src/dev.js';
import { MemoryNetworkHub } from './memory-network.js';
import { withIds } from './signed-ids.js';
import { nextHeight, TestNodes, validators } from './test-nodes.js';

const nodes = new TestNodes();
after(() => nodes.stopAll());

const BLOCK_TIME_MS = 600_000;
// Genesis one interval ago: height 1 starts at once, height 2 only ten minutes after block 1.
const genesis = devGenesisJson({
  blockTimeMs: BLOCK_TIME_MS,
  time: new Date(Date.now() - BLOCK_TIME_MS),
  validators: validators.map((v, i) => ({ publicKey: v.publicKey, name: `v${i}` })),
});

const until = (what: string, cond: () => boolean) =>
  waitUntil(what, cond, { timeoutMs: 60_000, intervalMs: 5 });

/** A fee of its own for the `i`th block: each a different transaction, so a different block. */
const fee = (i: number) => (0.01 + i / 1000).toFixed(3);

/** v0 with height 1 committed (an empty block), waiting for height 2's block time. */
async function v0WaitingForHeight2() {
  const hub = new MemoryNetworkHub();
  const node = await nodes.start(hub, genesis, 'unc-next-fwd-');
  await until('the driver to run height 1', () => node.driver.position.height === 1n);
  const fetches = { count: 0 };
  hub.join('relay', {
    onGossip: () => 'ignore',
    status: () => node.driver.status(),
    blocks: async () => [],
    txs: () => {
      fetches.count++;
      return [];
    },
  });
  const h1 = nextHeight(node);
  const x = h1.proposerOf(0);
  const { pending } = node.chain.buildProposal(
    [],
    node.chain.nextBlockTime(BigInt(Date.now())),
    { seed: x.seed, publicKey: x.publicKey },
    () => false,
  );
  const proposal = signProposal(
    'unc-dev-1',
    { height: 1n, round: 0, polRound: -1, blockHash: pending.hash, proposer: x.publicKey },
    x.seed,
  );
  const wire = encode(
    proposalMessageCodec,
    withIds({ proposal, block: pending.block, lastCommit: pending.lastCommit, sentAt: 1n }, x.seed),
  );
  await h1.gossip('proposal', wire, 'relay');
  const others = validators.filter((v) => v !== validators[0]);
  for (const type of ['prevote', 'precommit'] as const)
    for (const v of others) await h1.gossip('vote', h1.vote(v, type, 0, pending.hash), 'relay');
  await until('v0 to commit height 1', () => node.chain.tipHeight === 1n);
  assert.equal(node.driver.position.height, 1n, 'height 2 has not started: its block time is ten minutes on');
  const h2 = nextHeight(node);
  return { node, fetches, penalties: hub.member('v0')!.penalties, ...h2 };
}

test('waiting for the next height, a node relays one of the 10 distinct blocks its round-0 proposer signed', async () => {
  const { node, penalties, proposalFor, proposerOf, gossip } = await v0WaitingForHeight2();
  const x = proposerOf(0);
  const blocks = Array.from({ length: 10 }, (_, i) => proposalFor(0, fee(i), x));
  const verdicts: string[] = [];
  for (const b of blocks) verdicts.push(await gossip('proposal', b.full, 'relay'));
  assert.deepEqual(verdicts, ['accept', ...Array(9).fill('ignore')], 'only the first content is relayed');
  // The first one again (a re-send, another relay): the same content, relayed as before.
  assert.equal(await gossip('proposal', blocks[0]!.full, 'relay-2'), 'accept');
  assert.deepEqual(penalties, [], 'an equivocation is the proposer’s doing, not its relay’s');
  assert.equal(node.chain.tipHeight, 1n);
});

test('waiting for the next height, an honest proposal is relayed in its compact form and then whole', async () => {
  const { penalties, proposalFor, proposerOf, gossip } = await v0WaitingForHeight2();
  const x = proposerOf(0);
  const b = proposalFor(0, fee(0), x);
  // Compact with its transaction's body alongside (nobody holds it: nothing to fetch).
  const compact = encode(compactProposalCodec, compactOf(decode(proposalMessageCodec, b.full), [b.tx]));
  assert.equal(await gossip('compact-proposal', compact, 'relay'), 'accept');
  assert.equal(await gossip('proposal', b.full, 'relay'), 'accept', 'the whole form is the same content');
  // The proposer's second block for the round, compact or whole, is not relayed.
  const other = proposalFor(0, fee(1), x);
  const otherCompact = encode(
    compactProposalCodec,
    compactOf(decode(proposalMessageCodec, other.full), [other.tx]),
  );
  assert.equal(await gossip('compact-proposal', otherCompact, 'relay'), 'ignore');
  assert.equal(await gossip('proposal', other.full, 'relay'), 'ignore');
  // Another round is another turn: its proposer's first block is relayed.
  assert.equal(await gossip('proposal', proposalFor(1, fee(2)).full, 'relay'), 'accept');
  assert.deepEqual(penalties, []);
});

test('waiting for the next height, a node fetches nothing for its round-0 proposer’s second compact block', async () => {
  // It would be ignored once rebuilt (neither relayed nor checked): the fetch was work for nothing,
  // and a proposer signing block after block for its next turn made every waiting node do it.
  const { fetches, penalties, proposalFor, proposerOf, gossip } = await v0WaitingForHeight2();
  const x = proposerOf(0);
  const b = proposalFor(0, fee(0), x);
  const compact = encode(compactProposalCodec, compactOf(decode(proposalMessageCodec, b.full), [b.tx]));
  assert.equal(await gossip('compact-proposal', compact, 'relay'), 'accept');
  // Its transaction's body left out: only a fetch could rebuild it.
  for (let i = 1; i <= 3; i++)
    assert.equal(await gossip('compact-proposal', proposalFor(0, fee(i), x).compact, 'relay'), 'ignore');
  assert.equal(fetches.count, 0, 'transactions fetched for a block that is not relayed');
  // Another round's first block still is fetched (nobody else sent its transaction).
  await gossip('compact-proposal', proposalFor(1, fee(9)).compact, 'relay');
  assert.equal(fetches.count, 1);
  assert.deepEqual(penalties, []);
});

test('a syncing node relays only the first distinct block of the next height’s round-0 proposer', async () => {
  // The same unchecked path as between heights (`routeProposal`).
  const hub = new MemoryNetworkHub();
  const node = await nodes.start(hub, genesis, 'unc-next-fwd-sync-');
  await until('the driver to run height 1', () => node.driver.position.height === 1n);
  const reactor = (node.driver as unknown as { syncReactor: object }).syncReactor;
  Object.defineProperty(reactor, 'syncing', { get: () => true, configurable: true });
  const { proposalFor, proposerOf, gossip } = nextHeight(node);
  const x = proposerOf(0);
  assert.equal(await gossip('proposal', proposalFor(0, fee(0), x).full, 'relay'), 'accept');
  assert.equal(await gossip('proposal', proposalFor(0, fee(1), x).full, 'relay'), 'ignore');
});

test('waiting for the next height, a node relays no proposal signed out of turn', async () => {
  // Any validator may sign a proposal for any round; only the round's proposer's is used (the
  // machine drops the others), so relaying those had each validator's block for every near round
  // relayed unchecked by every waiting node.
  const { penalties, proposalFor, proposerOf, gossip } = await v0WaitingForHeight2();
  const turns = [proposerOf(0), proposerOf(1)];
  const outOfTurn = validators.find((v) => v !== validators[0] && !turns.includes(v))!;
  for (const [round, i] of [
    [0, 0],
    [1, 1],
  ] as const)
    assert.equal(await gossip('proposal', proposalFor(round, fee(i), outOfTurn).full, 'relay'), 'ignore');
  assert.deepEqual(penalties, [], 'signed by a member: not the relay’s fault');
  // The round's own proposer's block is still relayed.
  assert.equal(await gossip('proposal', proposalFor(0, fee(2)).full, 'relay'), 'accept');
});

test('waiting for the next height, the block a node relayed stays kept however many others its proposer signs', async () => {
  // The buffer gives up a proposer's oldest first: its later blocks for the round, ignored, pushed
  // out the one relayed, which this node's peers got from it and likely follow.
  const { node, proposalFor, proposerOf, gossip } = await v0WaitingForHeight2();
  const x = proposerOf(0);
  const blocks = Array.from({ length: 5 }, (_, i) => proposalFor(0, fee(i), x));
  for (const b of blocks) await gossip('proposal', b.full, 'relay');
  const kept = (
    node.driver as unknown as { futureProposals: { msg: { proposal: { blockHash: Uint8Array } } }[] }
  ).futureProposals;
  const hashes = kept.map((f) => Buffer.from(f.msg.proposal.blockHash).toString('hex'));
  assert.ok(hashes.includes(blocks[0]!.hash), 'the relayed block is kept for the height');
});
