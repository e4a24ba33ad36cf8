/**
 * How many of its round's proposer's distinct blocks a node executes (consensus/driver.ts
 * `holdOverCap`): `MAX_EXECUTED_BLOCKS_PER_ROUND`, but for a block 2/3+ of the power prevoted or
 * precommitted, which is executed whatever the cap.
 *
 * The attack this closes: only the round's proposer may sign its proposals, but it may sign as many
 * distinct blocks for its round as it likes, each a new signature and block hash, so relayed once
 * and executed once at every node; a block found invalid blames no relay (clock skew), so one
 * Byzantine validator made every node execute an unbounded number of invalid blocks per turn.
 *
 * Seen from validator 0 alone at height 1, the other three signed by the test.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { type ConsensusEvidence, consensusEvidenceCodec, decode, equalBytes, toHex } from '@unc/core';
import { until as waitUntil } from '@unc/test-utils';
import { MAX_EXECUTED_BLOCKS_PER_ROUND, MAX_HELD_OVER_CAP } from '../../src/consensus/driver.js';
import type { UncNode } from '../../src/node.js';
import type { NetworkHandlers } from '../../src/p2p/types.js';
import { MemoryNetworkHub } from './memory-network.js';
import { fourValidatorGenesis, nextHeight, TestNodes, validators } from './test-nodes.js';

const nodes = new TestNodes();
after(() => nodes.stopAll());
const genesis = fourValidatorGenesis(150);

const until = (what: string, cond: () => boolean) =>
  waitUntil(what, cond, { timeoutMs: 60_000, intervalMs: 5 });

/** A fee of its own for the `i`th block: each a different transaction, so a different block. */
const fee = (i: number) => (0.01 + i / 1000).toFixed(3);

/** How many blocks `node` executed: in order (validateProposal) or optimistically. */
function countChecks(node: UncNode): () => number {
  let checks = 0;
  const validate = node.chain.validateProposal.bind(node.chain);
  node.chain.validateProposal = (...args) => {
    checks++;
    return validate(...args);
  };
  const validateOptimistically = node.chain.validateProposalOptimistically.bind(node.chain);
  node.chain.validateProposalOptimistically = (...args) => {
    checks++;
    return validateOptimistically(...args);
  };
  return () => checks;
}

/** v0 at height 1; peers join its hub with `peer`. Round 0's proposer `x` is another validator. */
async function v0AtHeight1() {
  const hub = new MemoryNetworkHub();
  const node = await nodes.start(hub, genesis, 'unc-exec-cap-');
  await until('the driver to run height 1', () => node.driver.position.height === 1n);
  const peer = (id: string, extra: Partial<NetworkHandlers> = {}) =>
    hub.join(id, {
      onGossip: () => 'ignore',
      status: () => node.driver.status(),
      blocks: async () => [],
      ...extra,
    });
  const h = nextHeight(node);
  const x = h.proposerOf(0);
  assert.ok(x !== validators[0], 'round 0 is another validator’s turn');
  return { node, hub, peer, x, checks: countChecks(node), ...h };
}

test('a proposer signing 20 distinct invalid blocks for its round: one is executed, none relayed or fetched for, and the equivocation is reported', async () => {
  const { node, peer, x, checks, proposalFor, gossip } = await v0AtHeight1();
  const evidence: ConsensusEvidence[] = [];
  peer('relay', {
    onGossip: (topic, data) => {
      if (topic === 'evidence') evidence.push(decode(consensusEvidenceCodec, data));
      return 'ignore';
    },
  });
  let fetches = 0;
  peer('relay-2', {
    txs: () => {
      fetches++;
      return [];
    },
  });
  const verdicts: string[] = [];
  for (let i = 0; i < 20; i++)
    verdicts.push(await gossip('proposal', proposalFor(0, fee(i), x, -1, true).full, 'relay'));
  // Compact ones, whose transactions nobody holds: no fetch is started for a block over the cap.
  for (let i = 20; i < 25; i++)
    verdicts.push(await gossip('compact-proposal', proposalFor(0, fee(i), x, -1, true).compact, 'relay-2'));
  assert.equal(checks(), MAX_EXECUTED_BLOCKS_PER_ROUND, 'blocks executed for one round of one proposer');
  assert.equal(fetches, 0, 'transactions fetched for a block over the cap');
  assert.deepEqual(
    verdicts.filter((v) => v !== 'ignore'),
    [],
    'an invalid block, executed or not, is neither relayed nor blamed on its relay',
  );
  // One place per sending peer and round: each peer's newer block took the place of its older one.
  assert.equal(node.driver.heldOverCapProposals, 2);
  await until('the equivocation to be reported', () => evidence.length > 0);
  const [piece] = evidence;
  assert.equal(piece!.type, 'duplicate-proposal');
  assert.ok(
    equalBytes(
      (piece as Extract<ConsensusEvidence, { type: 'duplicate-proposal' }>).first.proposer,
      x.publicKey,
    ),
  );
});

test('the block the others decide, held over the cap behind junk from the proposer, is executed once 2/3+ prevote it, and decided', async () => {
  const { node, peer, x, checks, proposalFor, vote, gossip } = await v0AtHeight1();
  peer('evil');
  peer('honest');
  // x sends v0 an invalid block first (v0 executes it and prevotes nil), and the others a valid one,
  // which an honest relay forwards to v0; x then sends v0 block after block.
  assert.equal(await gossip('proposal', proposalFor(0, fee(0), x, -1, true).full, 'evil'), 'ignore');
  const b = proposalFor(0, fee(1), x);
  assert.equal(await gossip('proposal', b.full, 'honest'), 'ignore');
  for (let i = 2; i < 22; i++)
    assert.equal(await gossip('proposal', proposalFor(0, fee(i), x, -1, true).full, 'evil'), 'ignore');
  assert.equal(
    checks(),
    MAX_EXECUTED_BLOCKS_PER_ROUND,
    'the valid block is held, not executed, until voted for',
  );
  assert.ok(node.driver.heldOverCapProposals <= MAX_HELD_OVER_CAP);
  assert.equal(node.driver.heldOverCapProposals, 2, "the proposer's flood took only its own place");
  // The other three prevote it (x with them): 2/3+ of the power, so the machine may need it.
  const others = validators.filter((v) => v !== validators[0]);
  for (const v of others) await gossip('vote', vote(v, 'prevote', 0, b.blockHash), 'honest');
  await until('the held block to be executed', () => checks() === MAX_EXECUTED_BLOCKS_PER_ROUND + 1);
  assert.equal(node.driver.overCapStats.released, 1);
  for (const v of others) await gossip('vote', vote(v, 'precommit', 0, b.blockHash), 'honest');
  await until('v0 to commit the block', () => node.chain.tipHeight === 1n);
  assert.equal(toHex(node.chain.tip.hash), b.hash);
});

test('a block over the cap that arrives once 2/3+ prevoted it is executed on arrival and relayed', async () => {
  const { node, peer, x, checks, proposalFor, vote, gossip } = await v0AtHeight1();
  peer('evil');
  peer('honest');
  assert.equal(await gossip('proposal', proposalFor(0, fee(0), x, -1, true).full, 'evil'), 'ignore');
  const b = proposalFor(0, fee(1), x);
  const others = validators.filter((v) => v !== validators[0]);
  for (const v of others) await gossip('vote', vote(v, 'prevote', 0, b.blockHash), 'honest');
  // A stalled height's re-send or a catch-up: the block comes after its votes.
  assert.equal(await gossip('proposal', b.full, 'honest'), 'accept');
  assert.equal(checks(), MAX_EXECUTED_BLOCKS_PER_ROUND + 1);
  for (const v of others) await gossip('vote', vote(v, 'precommit', 0, b.blockHash), 'honest');
  await until('v0 to commit the block', () => node.chain.tipHeight === 1n);
  assert.equal(toHex(node.chain.tip.hash), b.hash);
});

test('a relay that forwards the proposer’s next block does not push out the held block another peer sent too', async () => {
  // An honest relay forwards a proposal of the next height unchecked (between heights, syncing), so
  // it may pass on each of the proposer's blocks in turn. The held block was the first sender's
  // place alone: its next forward pushed that block out, though another peer had sent it as well,
  // and the block 2/3+ then prevoted was not there to execute.
  const { node, peer, x, checks, proposalFor, vote, gossip } = await v0AtHeight1();
  for (const id of ['evil', 'relay', 'relay-2']) peer(id);
  assert.equal(await gossip('proposal', proposalFor(0, fee(0), x, -1, true).full, 'evil'), 'ignore');
  const b = proposalFor(0, fee(1), x);
  assert.equal(await gossip('proposal', b.full, 'relay'), 'ignore');
  assert.equal(await gossip('proposal', b.full, 'relay-2'), 'ignore');
  assert.equal(
    await gossip('compact-proposal', proposalFor(0, fee(2), x, -1, true).compact, 'relay'),
    'ignore',
  );
  assert.equal(node.driver.heldOverCapProposals, 2, 'both blocks held');
  const others = validators.filter((v) => v !== validators[0]);
  for (const v of others) await gossip('vote', vote(v, 'prevote', 0, b.blockHash), 'relay-2');
  await until('the held block to be executed', () => checks() === MAX_EXECUTED_BLOCKS_PER_ROUND + 1);
  for (const v of others) await gossip('vote', vote(v, 'precommit', 0, b.blockHash), 'relay-2');
  await until('v0 to commit the block', () => node.chain.tipHeight === 1n);
  assert.equal(toHex(node.chain.tip.hash), b.hash);
});

test('past the bound, the held block with a prevote stays and fresh peers’ blocks go', async () => {
  // The place given up is the least supported: a signed prevote outranks any number of peer ids.
  const { node, peer, x, checks, proposalFor, vote, gossip } = await v0AtHeight1();
  // The prevotes come from 'voter': 'honest' relayed nothing accepted, so only the prevote ranks b.
  for (const id of ['evil', 'honest', 'voter', 's1', 's2', 's3', 's4', 's5']) peer(id);
  assert.equal(await gossip('proposal', proposalFor(0, fee(0), x, -1, true).full, 'evil'), 'ignore');
  const b = proposalFor(0, fee(1), x);
  assert.equal(await gossip('proposal', b.full, 'honest'), 'ignore');
  const [v1, v2, v3] = validators.filter((v) => v !== validators[0]);
  await gossip('vote', vote(v1!, 'prevote', 0, b.blockHash), 'voter');
  for (let i = 1; i <= 5; i++)
    assert.equal(
      await gossip('compact-proposal', proposalFor(0, fee(10 + i), x, -1, true).compact, `s${i}`),
      'ignore',
    );
  assert.equal(node.driver.heldOverCapProposals, MAX_HELD_OVER_CAP);
  for (const v of [v2!, v3!]) await gossip('vote', vote(v, 'prevote', 0, b.blockHash), 'voter');
  await until('the held block to be executed', () => checks() === MAX_EXECUTED_BLOCKS_PER_ROUND + 1);
});
