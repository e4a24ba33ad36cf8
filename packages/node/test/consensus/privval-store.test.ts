import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type Block, type Commit, initialPrivValidatorState, type Proposal } from '@unc/core';
import {
  parsePrivval,
  type SignedProposalRecord,
  serializePrivval,
} from '../../src/consensus/privval-store.js';

function record(height: bigint, txs: number): SignedProposalRecord {
  const hash = (b: number) => new Uint8Array(32).fill(b);
  const lastCommit: Commit = { height: height - 1n, round: 0, blockHash: hash(1), signatures: [] };
  const block: Block = {
    header: {
      chainId: 'unc-test',
      height,
      time: 1_000n + height,
      prevHash: hash(1),
      stateRoot: hash(2),
      txRoot: hash(3),
      proposer: hash(4),
      beacon: hash(5),
      vrfProof: new Uint8Array(80).fill(6),
      lastCommitHash: hash(7),
    },
    txs: Array.from({ length: txs }, (_, i) => new Uint8Array(100).fill(i % 256)),
    commit: { height, round: 0, blockHash: hash(8), signatures: [] },
  };
  const proposal: Proposal = {
    height,
    round: 0,
    polRound: -1,
    blockHash: hash(8),
    proposer: hash(4),
    signature: new Uint8Array(64).fill(9),
  };
  return { proposal, block, lastCommit };
}

test('the signer file holds each record as written, whether its encoding was kept or not', () => {
  const first = record(5n, 3);
  const second = record(6n, 4);
  const state = { ...initialPrivValidatorState(), height: 5n, step: 1 };
  const a = parsePrivval(serializePrivval({ publicKey: 'ab', state, lastProposal: first }));
  // The same record again, with the state a vote later: the kept encoding, the new state.
  const b = parsePrivval(
    serializePrivval({ publicKey: 'ab', state: { ...state, step: 2 }, lastProposal: first }),
  );
  // Another record: its own block, never the one encoded before.
  const c = parsePrivval(
    serializePrivval({ publicKey: 'ab', state: { ...state, height: 6n }, lastProposal: second }),
  );
  assert.deepEqual(a.lastProposal, first);
  assert.deepEqual(b.lastProposal, first);
  assert.equal(b.state.step, 2);
  assert.deepEqual(c.lastProposal, second);
  assert.equal(c.lastProposal!.block.txs.length, 4);
  assert.equal(c.state.height, 6n);
});
