/**
 * A proposal's block executes while its signatures are still being checked on the verify pool
 * (consensus/block-preverify.ts `launch`, Chain.validateProposalOptimistically). These tests play
 * the proposer who signs a block with one forged transaction signature, its state root computed as
 * if the signature were valid, so that only the check execution took on trust can catch it: the
 * validator must not prevote for it and must keep nothing of it. The peer that passed it on is not
 * blamed: the proposer signed those bytes, and an honest relay may forward a proposal before
 * checking its block (driver.ts `routeProposal`).
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import {
  decode,
  encode,
  envelopeFromSigned,
  equalBytes,
  parseUnc,
  selectProposer,
  signProposal,
  signTransaction,
  type TxEnvelope,
  toHex,
  type Vote,
} from '@unc/core';
import { transferAction } from '@unc/sdk';
import { until as waitUntil } from '@unc/test-utils';
import { proposalMessageCodec, voteMessageCodec } from '../../src/consensus/wire.js';
import { devKey } from '../../src/dev.js';
import type { NetworkHandlers } from '../../src/p2p/types.js';
import { MemoryNetworkHub } from './memory-network.js';
import { withIds } from './signed-ids.js';
import { fourValidatorGenesis, TestNodes, validators } from './test-nodes.js';

const nodes = new TestNodes();
after(() => nodes.stopAll());
const genesis = fourValidatorGenesis(150);

function transfer(nonce: bigint, forged: boolean): TxEnvelope {
  const payer = devKey(1);
  const body = {
    chainId: 'unc-dev-1',
    signer: payer.publicKey,
    nonce,
    expiresAt: 1_000n,
    actions: [transferAction('unc1vystcnlgdeut2u2v57a0lacv4url68zepr0t34', parseUnc('1'))],
    fee: parseUnc('1'),
  };
  const stx = signTransaction(body, payer.seed);
  if (!forged) return envelopeFromSigned(stx);
  const signature = stx.signature.slice();
  signature[7]! ^= 0x20;
  return envelopeFromSigned({ ...stx, signature });
}

for (const [where, at] of [
  ['last', 11],
  ['first', 0],
] as const) {
  test(`a proposal whose ${where} transaction's signature is forged (state root as if valid) executes optimistically, gets a nil prevote, leaves nothing, and is not held against the relay`, async () => {
    const hub = new MemoryNetworkHub();
    const node = await nodes.start(hub, genesis, 'unc-optimistic-test-');
    const prevotes: Vote[] = [];
    const watcher: NetworkHandlers = {
      onGossip: (topic, data) => {
        if (topic !== 'vote') return 'ignore';
        const { vote } = decode(voteMessageCodec, data);
        if (vote.type === 'prevote' && equalBytes(vote.validator, validators[0]!.publicKey))
          prevotes.push(vote);
        return 'ignore';
      },
      status: () => node.driver.status(),
      blocks: async () => [],
    };
    hub.join('proposer', watcher);
    const penalties: { peer: string; reason: string }[] = [];
    hub.member('v0')!.penalize = (peer, reason) => penalties.push({ peer, reason });
    // The optimistic path, observed: what it decided, and that it ran.
    const outcomes: string[] = [];
    const chain = node.chain;
    const optimistic = chain.validateProposalOptimistically.bind(chain);
    chain.validateProposalOptimistically = async (...args) => {
      try {
        const r = await optimistic(...args);
        outcomes.push('valid');
        return r;
      } catch (err) {
        outcomes.push((err as { code?: string }).code ?? 'error');
        throw err;
      }
    };
    await waitUntil('the driver to run height 1', () => node.driver.position.height === 1n, {
      timeoutMs: 60_000,
      intervalMs: 25,
    });
    const proposer = validators.find((v) =>
      equalBytes(
        v.publicKey,
        selectProposer(chain.validatorSet(), chain.head.header.beacon, 1n, 0).publicKey,
      ),
    )!;
    assert.notEqual(proposer, validators[0], 'v0 votes on another’s block');
    const stateRoot = toHex(chain.head.header.stateRoot);
    const txs = Array.from({ length: 12 }, (_, i) => transfer(BigInt(i), i === at));
    // The proposer builds its block taking every signature as valid: the forged transaction is in,
    // and the state root is the one it would have if its signature verified.
    const { pending } = chain.buildProposal(
      txs,
      chain.nextBlockTime(BigInt(Date.now())),
      { seed: proposer.seed, publicKey: proposer.publicKey },
      () => true,
    );
    assert.equal(pending.block.txs.length, 12, 'the forged transaction is in the block');
    const proposal = signProposal(
      'unc-dev-1',
      { height: 1n, round: 0, polRound: -1, blockHash: pending.hash, proposer: proposer.publicKey },
      proposer.seed,
    );
    const message = withIds(
      { proposal, block: pending.block, lastCommit: pending.lastCommit, sentAt: 1n },
      proposer.seed,
    );
    assert.equal(
      await node.driver.handlers().onGossip('proposal', encode(proposalMessageCodec, message), 'proposer'),
      'ignore',
    );
    assert.deepEqual(outcomes, ['BAD_SIGNATURE'], 'executed optimistically, refused once the checks were in');
    assert.deepEqual(penalties, [], 'the proposer signed the forged bytes: the relay is not blamed');
    await waitUntil(
      'v0 to prevote in round 0',
      () => prevotes.some((v) => v.height === 1n && v.round === 0),
      {
        timeoutMs: 60_000,
        intervalMs: 10,
      },
    );
    const prevote = prevotes.find((v) => v.height === 1n && v.round === 0)!;
    assert.equal(prevote.blockHash, null, 'v0 prevoted nil, not the forged block');
    assert.ok(
      prevotes.every((v) => v.blockHash === null || !equalBytes(v.blockHash, pending.hash)),
      'no prevote for the forged block in any round',
    );
    // Nothing of it is kept: the head and its state are as before.
    assert.equal(chain.height, 0n);
    assert.equal(toHex(chain.head.header.stateRoot), stateRoot);
  });
}

test('a valid proposal executed optimistically is accepted and prevoted', async () => {
  const hub = new MemoryNetworkHub();
  const node = await nodes.start(hub, genesis, 'unc-optimistic-test-');
  const prevotes: Vote[] = [];
  hub.join('proposer', {
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
  const chain = node.chain;
  let optimisticRuns = 0;
  const optimistic = chain.validateProposalOptimistically.bind(chain);
  chain.validateProposalOptimistically = (...args) => {
    optimisticRuns++;
    return optimistic(...args);
  };
  await waitUntil('the driver to run height 1', () => node.driver.position.height === 1n, {
    timeoutMs: 60_000,
    intervalMs: 25,
  });
  const proposer = validators.find((v) =>
    equalBytes(v.publicKey, selectProposer(chain.validatorSet(), chain.head.header.beacon, 1n, 0).publicKey),
  )!;
  const txs = Array.from({ length: 12 }, (_, i) => transfer(BigInt(i), false));
  const { pending } = chain.buildProposal(
    txs,
    chain.nextBlockTime(BigInt(Date.now())),
    { seed: proposer.seed, publicKey: proposer.publicKey },
    () => false,
  );
  const proposal = signProposal(
    'unc-dev-1',
    { height: 1n, round: 0, polRound: -1, blockHash: pending.hash, proposer: proposer.publicKey },
    proposer.seed,
  );
  const message = withIds(
    { proposal, block: pending.block, lastCommit: pending.lastCommit, sentAt: 1n },
    proposer.seed,
  );
  assert.equal(
    await node.driver.handlers().onGossip('proposal', encode(proposalMessageCodec, message), 'proposer'),
    'accept',
  );
  assert.equal(optimisticRuns, 1);
  await waitUntil('v0 to prevote in round 0', () => prevotes.some((v) => v.height === 1n && v.round === 0), {
    timeoutMs: 60_000,
    intervalMs: 10,
  });
  const prevote = prevotes.find((v) => v.height === 1n && v.round === 0)!;
  assert.ok(
    prevote.blockHash !== null && equalBytes(prevote.blockHash, pending.hash),
    'v0 prevoted the valid block',
  );
});
