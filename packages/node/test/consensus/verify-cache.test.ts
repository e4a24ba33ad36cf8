import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { encode, equalBytes, selectProposer, signProposal, signVote } from '@unc/core';
import { proposalMessageCodec, voteMessageCodec } from '../../src/consensus/wire.js';
import { devGenesisJson, devValidatorKey } from '../../src/dev.js';
import { silentLogger } from '../../src/log.js';
import { UncNode } from '../../src/node.js';
import { MemoryNetworkHub } from './memory-network.js';
import { withIds } from './signed-ids.js';

// The driver remembers signatures it has checked so that the state machine does not check them
// again. A signature is only valid for one (key, message) pair: the cache must not let a copied
// signature vouch for another vote or proposal. Otherwise any peer, with no key at all, could
// replay a validator's signature on a vote for another value, type or round (a forged quorum for
// nil in every round halts the chain), or on a proposal for a block of its choosing.

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const validators = [0, 1, 2, 3].map((i) => devValidatorKey(i));
const genesis = devGenesisJson({
  blockTimeMs: 150,
  validators: validators.map((v, i) => ({ publicKey: v.publicKey, name: `v${i}` })),
});

test('a signature checked once does not vouch for another vote or proposal', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'unc-verify-cache-'));
  dirs.push(dataDir);
  const hub = new MemoryNetworkHub();
  // One of four validators: no quorum, so the node stays at height 1 while the test runs.
  const node = await UncNode.start({
    dataDir,
    genesis,
    validatorSeed: validators[0]!.seed,
    rpcPort: 0,
    timeouts: {
      proposeMs: 60_000,
      proposeDeltaMs: 100,
      prevoteMs: 60_000,
      prevoteDeltaMs: 100,
      precommitMs: 60_000,
      precommitDeltaMs: 100,
    },
    logger: silentLogger,
    network: async (handlers) => hub.join('v0', handlers),
  });
  try {
    const gossip = node.driver.handlers().onGossip;
    const v1 = validators[1]!;
    const v2 = validators[2]!;
    const wrap = (vote: ReturnType<typeof signVote>) => encode(voteMessageCodec, { vote, sentAt: 1n });
    const genuine = signVote(
      'unc-dev-1',
      { type: 'prevote', height: 1n, round: 5, blockHash: null, validator: v1.publicKey },
      v1.seed,
    );
    assert.equal(await gossip('vote', wrap(genuine), 'peer'), 'accept');

    // The same signature on other votes: another type, round or value, or another validator.
    const variants = [
      { ...genuine, type: 'precommit' as const },
      { ...genuine, round: 6 },
      { ...genuine, blockHash: new Uint8Array(32).fill(0xab) },
      { ...genuine, validator: v2.publicKey },
    ];
    for (const forged of variants) assert.equal(await gossip('vote', wrap(forged), 'attacker'), 'reject');

    // Proposals: the proposer's signature copied onto a proposal for another round. The genuine
    // one is for a round the node handles now (round 0 or 1: one further ahead is only held).
    const set = node.chain.validatorSet();
    const proposerOf = (r: number) =>
      validators.find((v) =>
        equalBytes(v.publicKey, selectProposer(set, node.chain.head.header.beacon, 1n, r).publicKey),
      )!;
    const round = [0, 1].find((r) => proposerOf(r) !== validators[0])!;
    const proposer = proposerOf(round);
    const { pending } = node.chain.buildProposal(
      [],
      node.chain.nextBlockTime(BigInt(Date.now())),
      { seed: proposer.seed, publicKey: proposer.publicKey },
      () => false,
    );
    const proposal = signProposal(
      'unc-dev-1',
      { height: 1n, round, polRound: -1, blockHash: pending.hash, proposer: proposer.publicKey },
      proposer.seed,
    );
    const wrapProposal = (p: typeof proposal) =>
      encode(
        proposalMessageCodec,
        withIds(
          { proposal: p, block: pending.block, lastCommit: pending.lastCommit, sentAt: 1n },
          proposer.seed,
        ),
      );
    assert.equal(await gossip('proposal', wrapProposal(proposal), 'peer'), 'accept');
    assert.equal(
      await gossip('proposal', wrapProposal({ ...proposal, round: round + 1 }), 'attacker'),
      'reject',
    );
    assert.equal(await gossip('proposal', wrapProposal({ ...proposal, polRound: 2 }), 'attacker'), 'reject');
  } finally {
    await node.stop();
  }
});
