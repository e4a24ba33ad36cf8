import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { equalBytes } from '../../src/bytes.js';
import {
  certificateFromVotes,
  commitCertificateCodec,
  duplicateVoteEvidence,
  proposalCodec,
  proposalSignBytes,
  verifyCommitCertificate,
  verifyConsensusEvidence,
  voteCodec,
  voteSignBytes,
} from '../../src/consensus/messages.js';
import { ValidatorSet } from '../../src/consensus/validators.js';
import { VoteSet, voteSetCodec } from '../../src/consensus/vote-set.js';
import { decode, encode } from '../../src/encoding/codec.js';
import { DecodeError } from '../../src/errors.js';
import { A, B, CHAIN, KEYS, proposal, SET, vote } from './fixtures.js';

describe('consensus/messages: encodings', () => {
  test('votes and proposals round-trip through their codecs', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 3 }),
        fc.constantFrom('prevote' as const, 'precommit' as const),
        fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
        fc.integer({ min: 0, max: 0xffff_ffff }),
        fc.option(fc.uint8Array({ minLength: 32, maxLength: 32 })),
        (i, type, height, round, blockHash) => {
          const v = vote(i, type, round, blockHash, height);
          assert.deepEqual(decode(voteCodec, encode(voteCodec, v)), v);
        },
      ),
      { numRuns: 50 },
    );
    const p = proposal(A, 3, B, 1);
    assert.deepEqual(decode(proposalCodec, encode(proposalCodec, p)), p);
    const fresh = proposal(A, 0, B);
    assert.deepEqual(decode(proposalCodec, encode(proposalCodec, fresh)), fresh);
  });

  test('decoding is strict: bad tags and trailing bytes are errors', () => {
    const bytes = encode(voteCodec, vote(1, 'prevote', 0, A));
    const badType = bytes.slice();
    badType[0] = 3;
    assert.throws(() => decode(voteCodec, badType), DecodeError);
    assert.throws(() => decode(voteCodec, new Uint8Array([...bytes, 0])), DecodeError);
    const p = encode(proposalCodec, proposal(A, 2, B));
    const badPol = p.slice();
    badPol[12] = 2;
    assert.throws(() => decode(proposalCodec, badPol), DecodeError);
  });

  test('what is signed names the purpose, the chain and every field', () => {
    const v = { type: 'prevote' as const, height: 1n, round: 0, blockHash: A, validator: KEYS[0]! };
    const base = voteSignBytes(CHAIN, v);
    const variants = [
      voteSignBytes('other-chain', v),
      voteSignBytes(CHAIN, { ...v, type: 'precommit' }),
      voteSignBytes(CHAIN, { ...v, height: 2n }),
      voteSignBytes(CHAIN, { ...v, round: 1 }),
      voteSignBytes(CHAIN, { ...v, blockHash: null }),
      voteSignBytes(CHAIN, { ...v, blockHash: B }),
      proposalSignBytes(CHAIN, { height: 1n, round: 0, polRound: -1, blockHash: A, proposer: KEYS[0]! }),
    ];
    for (const other of variants) assert.ok(!equalBytes(base, other));
    assert.ok(new TextDecoder().decode(base).includes('UNC/vote'));
    // The validator key is not part of the message: the signature itself binds it.
    assert.ok(equalBytes(base, voteSignBytes(CHAIN, { ...v, validator: KEYS[1]! })));
  });
});

describe('consensus/messages: commit certificates', () => {
  const votes = [1, 2, 3].map((i) => vote(i, 'precommit', 4, A, 9n));

  test('a certificate of 3 of 4 precommits verifies and round-trips', () => {
    const cert = certificateFromVotes(votes);
    assert.deepEqual(verifyCommitCertificate(CHAIN, SET, cert), { ok: true, power: 3n });
    assert.deepEqual(decode(commitCertificateCodec, encode(commitCertificateCodec, cert)), cert);
    assert.deepEqual(certificateFromVotes([...votes].reverse()), cert, 'canonical order');
  });

  test('too little power, a repeated signer, a stranger or a bad signature is refused', () => {
    const two = certificateFromVotes(votes.slice(0, 2));
    assert.match(
      String((verifyCommitCertificate(CHAIN, SET, two) as { reason: string }).reason),
      /no quorum/,
    );
    const cert = certificateFromVotes(votes);
    const repeated = { ...cert, signatures: [cert.signatures[0]!, ...cert.signatures] };
    assert.equal(verifyCommitCertificate(CHAIN, SET, repeated).ok, false);
    const otherSet = new ValidatorSet(KEYS.slice(0, 3).map((publicKey) => ({ publicKey, power: 1n })));
    assert.equal(verifyCommitCertificate(CHAIN, otherSet, cert).ok, false);
    const bad = {
      ...cert,
      signatures: cert.signatures.map((s, i) =>
        i === 0 ? { ...s, signature: s.signature.map((b) => b ^ 1) } : s,
      ),
    };
    assert.equal(verifyCommitCertificate(CHAIN, SET, bad).ok, false);
    assert.equal(verifyCommitCertificate('other-chain', SET, cert).ok, false);
    assert.equal(verifyCommitCertificate(CHAIN, SET, { ...cert, round: 5 }).ok, false, 'the round is signed');
  });

  test('a certificate needs precommits of one block, height and round', () => {
    assert.throws(() => certificateFromVotes([vote(1, 'prevote', 4, A, 9n)]));
    assert.throws(() => certificateFromVotes([votes[0]!, vote(2, 'precommit', 4, B, 9n)]));
    assert.throws(() => certificateFromVotes([vote(1, 'precommit', 4, null, 9n)]));
  });
});

describe('consensus/messages: evidence and vote sets', () => {
  test('evidence is checked: conflict, same slot, member, order and signatures', () => {
    const a = vote(1, 'prevote', 2, A);
    const b = vote(1, 'prevote', 2, B);
    const ev = duplicateVoteEvidence(CHAIN, a, b);
    if (ev.type !== 'duplicate-vote') throw new Error('expected duplicate-vote evidence');
    assert.deepEqual(duplicateVoteEvidence(CHAIN, b, a), ev, 'canonical order');
    assert.equal(verifyConsensusEvidence(CHAIN, SET, ev), null);
    assert.ok(verifyConsensusEvidence(CHAIN, SET, { ...ev, first: ev.second, second: ev.first }));
    assert.ok(verifyConsensusEvidence(CHAIN, SET, duplicateVoteEvidence(CHAIN, a, vote(1, 'prevote', 3, B))));
    assert.ok(verifyConsensusEvidence(CHAIN, SET, duplicateVoteEvidence(CHAIN, a, vote(2, 'prevote', 2, B))));
    assert.ok(verifyConsensusEvidence(CHAIN, SET, duplicateVoteEvidence(CHAIN, a, a)));
    const forged = { ...b, signature: b.signature.map((x) => x ^ 1) };
    assert.ok(verifyConsensusEvidence(CHAIN, SET, duplicateVoteEvidence(CHAIN, a, forged)));
  });

  test('a vote set counts each validator once in total and once per value, and round-trips', () => {
    const set = new VoteSet(CHAIN, SET, 1n, 0, 'prevote');
    assert.equal(set.add(vote(1, 'prevote', 0, A)).kind, 'added');
    assert.equal(set.add(vote(1, 'prevote', 0, A)).kind, 'duplicate');
    assert.equal(set.add(vote(2, 'prevote', 0, A)).kind, 'added');
    const conflict = set.add(vote(2, 'prevote', 0, B));
    assert.equal(conflict.kind, 'conflict');
    assert.equal(set.add(vote(2, 'prevote', 0, B)).kind, 'duplicate');
    assert.equal(set.add(vote(3, 'precommit', 0, A)).kind, 'rejected');
    assert.equal(set.add(vote(3, 'prevote', 1, A)).kind, 'rejected');
    assert.equal(set.power, 2n);
    assert.equal(set.powerFor(A), 2n);
    assert.equal(set.powerFor(B), 1n);
    assert.equal(set.hasQuorumAny(), false);
    assert.equal(set.add(vote(0, 'prevote', 0, A)).kind, 'added');
    assert.deepEqual(set.quorumValue(), { blockHash: A });
    const again = VoteSet.fromData(CHAIN, SET, decode(voteSetCodec, encode(voteSetCodec, set.toData())));
    assert.equal(again.powerFor(A), 3n);
    assert.equal(again.power, 3n);
  });
});
