/**
 * verifyAccountProof checks what an untrusted node answers: whatever the node sends, the answer is
 * a verified balance or a ProofError, never a TypeError from the parsing (found by `npm run fuzz`).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { blockHash, blockHeaderCodec, encode, toHex } from '@unc/core';
import type { AccountJson, HeaderJson } from '../src/index.js';
import { ProofError, verifyAccountProof } from '../src/index.js';

const account = {
  address: 'unc1vystcnlgdeut2u2v57a0lacv4url68zepr0t34',
  balance: '0',
  nonce: 0,
  height: 0,
  stateRoot: '00'.repeat(32),
  proof: '00000000',
  value: null,
} as AccountJson;
const header = { hash: '00'.repeat(32), encoded: '00' } as unknown as HeaderJson;
const headerValue = {
  chainId: 'c',
  height: 0n,
  time: 0n,
  prevHash: new Uint8Array(32),
  stateRoot: new Uint8Array(32),
  txRoot: new Uint8Array(32),
  proposer: new Uint8Array(32),
  beacon: new Uint8Array(32),
  vrfProof: new Uint8Array(),
  lastCommitHash: new Uint8Array(32),
};
const validHeader = {
  hash: toHex(blockHash(headerValue)),
  encoded: toHex(encode(blockHeaderCodec, headerValue)),
};

describe('verifyAccountProof on hostile answers', () => {
  const cases: [string, unknown, unknown][] = [
    ['header.encoded not a string', account, { ...header, encoded: 7 }],
    ['header.encoded not hex', account, { ...header, encoded: 'zz' }],
    ['header.encoded not a header', account, header],
    ['header is null', account, null],
    ['account is null', null, header],
    // A height that cannot even be printed in the error message (fuzz seed 20261205).
    ['account.height an object', { ...account, height: { toString: null } }, validHeader],
  ];
  for (const [label, a, h] of cases) {
    test(label, () => {
      assert.throws(
        () => verifyAccountProof(a as AccountJson, h as HeaderJson),
        (err: unknown) => err instanceof ProofError,
      );
    });
  }
});
