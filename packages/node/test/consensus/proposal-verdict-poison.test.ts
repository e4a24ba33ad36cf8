/**
 * A block's verdict is kept under its content (consensus/driver.ts `invalidContent`, and the
 * machine's per-block verdict), but part of what the driver holds against a proposal is the
 * proposal's, not the block's: a fresh proposal (polRound -1) must carry a block its own proposer
 * built (gossip-checks.ts `proposalEnvelopeProblem`). Another round's proposer re-signing an honest
 * block as its own fresh proposal, and racing it to a node ahead of the genuine one, had the node
 * take the genuine block for invalid: prevote nil for it, never lock on it nor decide it.
 *
 * Seen from validator 0 alone at height 1, the other three signed by the test.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { decode, encode, equalBytes, signProposal, toHex } from '@unc/core';
import { until as waitUntil } from '@unc/test-utils';
import { proposalMessageCodec, voteMessageCodec } from '../../src/consensus/wire.js';
import { MemoryNetworkHub } from './memory-network.js';
import { withIds } from './signed-ids.js';
import { fourValidatorGenesis, nextHeight, TestNodes, validators } from './test-nodes.js';

const nodes = new TestNodes();
after(() => nodes.stopAll());
const genesis = fourValidatorGenesis(150);

const until = (what: string, cond: () => boolean) =>
  waitUntil(what, cond, { timeoutMs: 60_000, intervalMs: 5 });

test('an honest block re-signed as a fresh proposal by another round’s proposer, seen first, is not taken for invalid when its own proposer’s proposal comes', async () => {
  const hub = new MemoryNetworkHub();
  const node = await nodes.start(hub, genesis, 'unc-verdict-poison-');
  await until('the driver to run height 1', () => node.driver.position.height === 1n);
  const prevoted: (string | null)[] = [];
  hub.join('evil', { onGossip: () => 'ignore', status: () => node.driver.status(), blocks: async () => [] });
  hub.join('honest', {
    onGossip: (topic, data) => {
      if (topic !== 'vote') return 'ignore';
      const { vote: v } = decode(voteMessageCodec, data);
      if (v.type === 'prevote' && v.round === 0 && equalBytes(v.validator, validators[0]!.publicKey))
        prevoted.push(v.blockHash ? toHex(v.blockHash) : null);
      return 'ignore';
    },
    status: () => node.driver.status(),
    blocks: async () => [],
  });
  const { proposerOf, proposalFor, gossip } = nextHeight(node);
  const x = proposerOf(0);
  assert.ok(x !== validators[0], 'round 0 is another validator’s turn');
  let r = 1;
  while (proposerOf(r) === x || proposerOf(r) === validators[0]) r++;
  const y = proposerOf(r);
  const b = proposalFor(0, '0.010', x);
  // y, proposer of a later round, passes x's block off as its own fresh one (polRound -1).
  const genuine = decode(proposalMessageCodec, b.full);
  const forged = withIds(
    {
      ...genuine,
      proposal: signProposal(
        'unc-dev-1',
        {
          height: genuine.proposal.height,
          round: r,
          polRound: -1,
          blockHash: b.blockHash,
          proposer: y.publicKey,
        },
        y.seed,
      ),
    },
    y.seed,
  );
  assert.equal(await gossip('proposal', encode(proposalMessageCodec, forged), 'evil'), 'ignore');
  assert.equal(await gossip('proposal', b.full, 'honest'), 'accept', 'the genuine block is valid, relayed');
  await until('v0 to prevote in round 0', () => prevoted.length > 0);
  assert.deepEqual(prevoted, [b.hash], 'v0 prevotes the genuine block');
});
