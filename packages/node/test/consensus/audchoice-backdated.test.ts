/**
 * AUDIT (branch audchoice): no node refuses a proposal whose block time lies far behind its clock.
 *
 * Core only asks that block time increase (chain.ts checkBeforeExecution); the node only refuses a
 * time past its clock + maxClockDriftMs (gossip-checks.ts proposalEnvelopeProblem). So a proposer may
 * stamp its block at the previous block's time + 1 ms however long ago that was. In normal running
 * that is one block interval; after a stall (a halted network, a run of failed rounds) it is the
 * whole stall: the proposer of the first block after it picks whether that time is before or after
 * everything its block does (a lease opened in it starts, and is charged from, the stamped time:
 * the renter pays for the stall; an epoch starting in it moves the stall's emission to the epoch
 * before or after; a registration with a certificate that expired during the stall, a dispute or
 * receipt past its posting window, a top-up of a lease that ended meanwhile are all taken).
 *
 * The test states a lower bound the node could keep (not older than its clock minus a bound); it
 * failed until such a fresh proposal was found `stale`: valid, but prevoted nil (driver.ts
 * timelyProposal; docs/consensus.md, "Block time"; block-time.test.ts runs it on a node).
 * Run: npx tsc -b && node scripts/run-tests.mjs packages/node/dist/test/consensus/audchoice-backdated.test.js
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { blockHash, signProposal } from '@unc/core';
import { proposalEnvelopeProblem } from '../../src/consensus/gossip-checks.js';
import { devValidatorKey } from '../../src/dev.js';
import { withIds } from './signed-ids.js';

const CHAIN = 'unc-dev-1';
const HOUR = 3_600_000;

test('AUDIT: a fresh proposal stamped an hour behind this node’s clock is refused', () => {
  const v = devValidatorKey(0);
  const header = {
    chainId: CHAIN,
    height: 5n,
    time: 1_000n,
    prevHash: new Uint8Array(32),
    stateRoot: new Uint8Array(32),
    txRoot: new Uint8Array(32),
    proposer: v.publicKey,
    beacon: new Uint8Array(32),
    vrfProof: new Uint8Array(0),
    lastCommitHash: new Uint8Array(32),
  };
  const block = {
    header,
    txs: [],
    commit: { height: 4n, round: 0, blockHash: new Uint8Array(32), signatures: [] },
  };
  const proposal = signProposal(
    CHAIN,
    { height: 5n, round: 0, polRound: -1, blockHash: blockHash(header), proposer: v.publicKey },
    v.seed,
  );
  const msg = withIds({ proposal, block, lastCommit: block.commit, sentAt: 1n }, v.seed, CHAIN);
  // The node's clock reads an hour after the block's stamp (the previous block was an hour ago).
  const problem = proposalEnvelopeProblem(proposal, msg, 1_000 + HOUR, 5_000);
  assert.notEqual(problem, null, 'a block stamped an hour in the past is taken as a fresh proposal');
});
