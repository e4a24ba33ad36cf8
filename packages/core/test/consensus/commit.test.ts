import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  certificateFromCommit,
  certificateFromVotes,
  commitCertificateCodec,
  commitCodec,
  commitFromCertificate,
  decode,
  encode,
  toHex,
  ValidatorSet,
  verifyBlockCommit,
} from '../../src/index.js';
import { A, B, CHAIN, KEYS, SET, vote } from './fixtures.js';

const precommits = (round: number, signers: number[], height = 9n, hash = A) =>
  signers.map((i) => vote(i, 'precommit', round, hash, height));

describe('block commits', () => {
  test('a decided certificate becomes the block commit, with the same encoding, and verifies', () => {
    const cert = certificateFromVotes(precommits(2, [0, 1, 2]));
    const commit = commitFromCertificate(cert);
    assert.equal(commit.round, 2);
    assert.equal(toHex(encode(commitCodec, commit)), toHex(encode(commitCertificateCodec, cert)));
    assert.deepEqual(certificateFromCommit(commit), cert);
    assert.equal(verifyBlockCommit(SET, CHAIN, commit, A, 9n), 3n);
  });

  test('wrong round, height, block, chain, a short quorum or a stranger are refused', () => {
    const commit = commitFromCertificate(certificateFromVotes(precommits(2, [0, 1, 2])));
    const refuse = (fn: () => unknown) => assert.throws(fn, { code: 'BAD_COMMIT' });
    refuse(() => verifyBlockCommit(SET, CHAIN, { ...commit, round: 1 }, A, 9n));
    refuse(() => verifyBlockCommit(SET, CHAIN, commit, A, 10n));
    refuse(() => verifyBlockCommit(SET, CHAIN, commit, B, 9n));
    refuse(() => verifyBlockCommit(SET, 'another-chain', commit, A, 9n));
    refuse(() =>
      verifyBlockCommit(
        SET,
        CHAIN,
        commitFromCertificate(certificateFromVotes(precommits(2, [0, 1]))),
        A,
        9n,
      ),
    );
    const weighted = new ValidatorSet(KEYS.map((publicKey, i) => ({ publicKey, power: i === 3 ? 10n : 1n })));
    refuse(() => verifyBlockCommit(weighted, CHAIN, commit, A, 9n));
    const small = new ValidatorSet(KEYS.slice(0, 2).map((publicKey) => ({ publicKey, power: 1n })));
    refuse(() => verifyBlockCommit(small, CHAIN, commit, A, 9n));
  });

  test('property: a commit round-trips through its codec, for any round', () => {
    fc.assert(
      fc.property(
        fc.nat({ max: 0xffffffff }),
        fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
        (round, height) => {
          const commit = {
            height,
            round,
            blockHash: A,
            signatures: [{ validator: KEYS[0]!, signature: new Uint8Array(64).fill(7) }],
          };
          assert.deepEqual(decode(commitCodec, encode(commitCodec, commit)), commit);
        },
      ),
    );
  });
});
