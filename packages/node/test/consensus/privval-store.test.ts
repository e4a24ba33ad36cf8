import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { type Block, type Commit, initialPrivValidatorState, type Proposal, toHex } from '@unc/core';
import {
  loadPrivval,
  parsePrivval,
  type SignedProposalRecord,
  savePrivval,
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

test('a record changed in place after a write is written as it is now, never as it was first encoded', () => {
  const rec = record(7n, 3);
  const state = { ...initialPrivValidatorState(), height: 7n, step: 1 };
  const file = (s = state) => ({ publicKey: 'ab', state: s, lastProposal: rec });
  assert.deepEqual(parsePrivval(serializePrivval(file())).lastProposal, record(7n, 3));
  // The same record object now holds a re-proposal at a later round, signed anew...
  rec.proposal = { ...rec.proposal, round: 1, polRound: 0, signature: new Uint8Array(64).fill(0xaa) };
  let back = parsePrivval(serializePrivval(file({ ...state, round: 1 }))).lastProposal!;
  assert.equal(back.proposal.round, 1);
  assert.deepEqual(back.proposal.signature, new Uint8Array(64).fill(0xaa));
  // ...a field of the proposal changed on the object itself...
  rec.proposal.round = 2;
  back = parsePrivval(serializePrivval(file({ ...state, round: 2 }))).lastProposal!;
  assert.equal(back.proposal.round, 2);
  // ...and another block and last commit.
  const other = record(7n, 5);
  rec.block = other.block;
  rec.lastCommit = { ...other.lastCommit, round: 3 };
  back = parsePrivval(serializePrivval(file())).lastProposal!;
  assert.equal(back.block.txs.length, 5);
  assert.equal(back.lastCommit.round, 3);
  assert.deepEqual(back, rec);
});

test('the signer file on disk: what a restart reads back is exactly the record and state last written', () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-privval-'));
  try {
    const path = join(dir, 'privval.json');
    const key = new Uint8Array(32).fill(0xab);
    const first = record(9n, 2);
    const second = record(10n, 6);
    const state = { ...initialPrivValidatorState(), height: 9n, step: 1 };
    // Several writes, the kept encodings reused in between, as a validator votes along.
    savePrivval(path, serializePrivval({ publicKey: toHex(key), state, lastProposal: first }));
    savePrivval(
      path,
      serializePrivval({ publicKey: toHex(key), state: { ...state, step: 2 }, lastProposal: first }),
    );
    const last = { ...state, height: 10n, step: 3, signature: new Uint8Array(64).fill(3) };
    savePrivval(path, serializePrivval({ publicKey: toHex(key), state: last, lastProposal: second }));
    const back = loadPrivval(path, key)!;
    assert.deepEqual(back.lastProposal, second);
    assert.deepEqual(back.state, last);
    assert.equal(existsSync(`${path}.tmp`), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
