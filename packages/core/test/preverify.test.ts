import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  BlockExecutor,
  devSoftChipId,
  ed25519CheckKey,
  ed25519PublicKey,
  ed25519Sign,
  ed25519Verify,
  envelopeFromSigned,
  envelopeSignatureCheck,
  type HeartbeatAnswer,
  heartbeatChallenge,
  sha256,
  signTransaction,
  utf8,
  ValidationError,
  VerifiedSignatures,
} from '../src/index.js';
import { CHAIN, key, miner, registerAction, TestChain, untilChallenged, validator } from './harness.js';

test('a remembered pass vouches only for its own (key, message, signature), not for another split of the same bytes', () => {
  const seed = new Uint8Array(32).fill(7);
  const publicKey = ed25519PublicKey(seed);
  const message = new TextEncoder().encode('a heartbeat challenge');
  const signature = ed25519Sign(seed, message);
  const verified = new VerifiedSignatures();
  verified.add({ publicKey, message, signature });
  assert.ok(verified.isVerified(publicKey, message, signature));
  fc.assert(
    fc.property(fc.integer({ min: -31, max: 63 }), (shift) => {
      fc.pre(shift !== 0);
      // The same concatenated bytes, cut elsewhere between key and signature.
      const all = new Uint8Array([...publicKey, ...signature]);
      const cut = 32 + shift;
      assert.equal(verified.isVerified(all.subarray(0, cut), message, all.subarray(cut)), false);
    }),
  );
  // Bytes moved between the signature and the message.
  const moved = new Uint8Array([...signature.subarray(63), ...message]);
  assert.equal(verified.isVerified(publicKey, moved, signature.subarray(0, 63)), false);
});

test('a pass for a longer check is keyed by a hash, and never matches a short check of other bytes', () => {
  const seed = new Uint8Array(32).fill(9);
  const publicKey = ed25519PublicKey(seed);
  const long = new Uint8Array(2000).fill(1);
  const signature = ed25519Sign(seed, long);
  const verified = new VerifiedSignatures();
  verified.add({ publicKey, message: long, signature });
  assert.ok(verified.isVerified(publicKey, long, signature));
  assert.ok(ed25519CheckKey(publicKey, long, signature).startsWith('#'));
  assert.ok(ed25519CheckKey(publicKey, long.subarray(0, 32), signature).startsWith('='));
  assert.equal(verified.isVerified(publicKey, long.subarray(0, 1999), signature), false);
});

test('property: a short check is keyed by its lengths and its exact bytes, one character per byte (as before, without a buffer)', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 0, maxLength: 40 }),
      fc.uint8Array({ minLength: 0, maxLength: 40 }),
      fc.uint8Array({ minLength: 0, maxLength: 48 }),
      (publicKey, message, signature) => {
        const all = Buffer.concat([publicKey, signature, message]);
        const expected = `=${String.fromCharCode(publicKey.length, signature.length, message.length)}${all.toString('latin1')}`;
        assert.equal(ed25519CheckKey(publicKey, message, signature), expected);
      },
    ),
    { numRuns: 500 },
  );
});

test('no remembered pass takes more memory than an answer: a check longer than an answer is keyed by a hash', () => {
  const publicKey = new Uint8Array(32).fill(5);
  const signature = new Uint8Array(64).fill(6);
  // An answer's check: key, signature and challenge exactly (4 characters of framing).
  const answerKey = ed25519CheckKey(publicKey, new Uint8Array(32), signature);
  assert.ok(answerKey.startsWith('='));
  fc.assert(
    fc.property(fc.nat({ max: 3000 }), (messageLength) => {
      const k = ed25519CheckKey(publicKey, new Uint8Array(messageLength), signature);
      assert.ok(
        k.length <= answerKey.length,
        `a ${messageLength}-byte message gives a ${k.length}-character key`,
      );
    }),
    { numRuns: 300 },
  );
  // A transaction's check signs its whole body (here a small transfer): hashed.
  const seed = new Uint8Array(32).fill(8);
  const tx = envelopeFromSigned(
    signTransaction(
      {
        chainId: CHAIN,
        signer: ed25519PublicKey(seed),
        nonce: 0n,
        expiresAt: 10n,
        actions: [{ type: 'transfer', to: miner.address, amount: 1n, memo: new Uint8Array(40) }],
        fee: 0n,
      },
      seed,
    ),
  );
  const c = envelopeSignatureCheck(tx);
  assert.ok(c.message.length > 32);
  assert.ok(ed25519CheckKey(c.publicKey, c.message, c.signature).startsWith('#'));
});

test('the set of passes stays within its capacity however many are added (old ones are forgotten whole)', () => {
  const seed = new Uint8Array(32).fill(3);
  const publicKey = ed25519PublicKey(seed);
  const verified = new VerifiedSignatures(10);
  const checks = Array.from({ length: 25 }, (_, i) => {
    const message = Uint8Array.of(i);
    return { publicKey, message, signature: ed25519Sign(seed, message) };
  });
  for (const c of checks) {
    verified.add(c);
    assert.ok(verified.size <= 10);
    assert.ok(verified.isVerified(c.publicKey, c.message, c.signature), 'the newest pass is held');
  }
  assert.equal(verified.isVerified(checks[0]!.publicKey, checks[0]!.message, checks[0]!.signature), false);
  assert.throws(() => new VerifiedSignatures(1), RangeError);
});

describe('execution with remembered passes (the pre-verified set a node hands the executor)', () => {
  /** A chain with one registered dev chip challenged in the last block, and its answer's message. */
  function challengedChip() {
    const chain = new TestChain();
    const chip = key('preverify chip');
    chain.block();
    chain.block([chain.tx(miner, [registerAction(chain, chip, miner.address)])]);
    // Registered in epoch 0: challenged from epoch 1 on (heights 21…40).
    chain.blocksUntil(20n);
    const { epoch, slot, height } = untilChallenged(chain, chip);
    const chipId = devSoftChipId(chip.publicKey);
    const message = heartbeatChallenge(CHAIN, chipId, chain.hashOf(height));
    return { chain, chip, chipId, epoch, slot, message };
  }

  function executeWith(chain: TestChain, verified: VerifiedSignatures, answer: HeartbeatAnswer) {
    const height = chain.height + 1n;
    const ex = new BlockExecutor(
      chain.state,
      {
        chainId: CHAIN,
        height,
        time: chain.time + 1000n,
        proposer: validator.publicKey,
        prevHash: chain.hashOf(chain.height),
        prevBeacon: chain.beaconOf(chain.height),
        beacon: chain.beaconOf(chain.height + 1n),
      },
      { isEd25519Verified: verified.isVerified },
    );
    return ex.tryApply(chain.tx(miner, [{ type: 'heartbeat', answers: [answer] }]));
  }

  test('a pass over another message cannot vouch for the same signature on this challenge', () => {
    const { chain, chip, chipId, epoch, slot } = challengedChip();
    // The chip's valid signature over some other message, remembered as a pass: the same key and
    // signature bytes, another message. Offered as the answer to the real challenge, it must fail.
    // 32 bytes like the challenge: only the message's bytes tell the two checks apart.
    const other = heartbeatChallenge(CHAIN, chipId, sha256(utf8('not the slot block')));
    const signature = ed25519Sign(chip.seed, other);
    const verified = new VerifiedSignatures();
    verified.add({ publicKey: chip.publicKey, message: other, signature });
    const r = executeWith(chain, verified, {
      chipId,
      epoch,
      slot,
      evidence: { type: 'dev-soft', signature },
    });
    assert.ok(r instanceof ValidationError);
    assert.equal(r.code, 'ATTEST_BAD_SIGNATURE');
  });

  test('a bad signature is refused although a good one for the same key and challenge is remembered (and its key cached)', () => {
    const { chain, chip, chipId, epoch, slot, message } = challengedChip();
    const good = ed25519Sign(chip.seed, message);
    const verified = new VerifiedSignatures();
    verified.add({ publicKey: chip.publicKey, message, signature: good });
    // The chip's KeyObject is in core's cache after this check.
    assert.ok(ed25519Verify(chip.publicKey, message, good));
    const bad = new Uint8Array(good);
    bad[10]! ^= 1;
    const r = executeWith(chain, verified, {
      chipId,
      epoch,
      slot,
      evidence: { type: 'dev-soft', signature: bad },
    });
    assert.ok(r instanceof ValidationError);
    assert.equal(r.code, 'ATTEST_BAD_SIGNATURE');
    // The good one goes through the remembered pass, and it is accepted.
    const ok = executeWith(chain, verified, {
      chipId,
      epoch,
      slot,
      evidence: { type: 'dev-soft', signature: good },
    });
    assert.ok(!(ok instanceof ValidationError), String(ok));
  });
});
