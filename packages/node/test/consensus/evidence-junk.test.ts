/**
 * Consensus evidence the bytes prove bad (core's consensusEvidenceFault: BAD_EVIDENCE_SIGNATURE, a
 * vote or proposal signature that does not verify; BAD_EVIDENCE_PROOF, two messages that prove no
 * offence) is remembered by transaction hash and blamed on the relay, as chip evidence the bytes
 * prove bad is (PROVABLY_BAD_EVIDENCE). Evidence refused for a state reason (BAD_EVIDENCE: a signer
 * outside the epoch's set) blames nobody and is checked again.
 *
 * Regression (found by an audit): a fee-free transaction from a fresh key carrying a duplicate-vote
 * pair of a real validator with one signature bit flipped was refused BAD_EVIDENCE, which was not
 * remembered (every copy relayed cost two vote signature checks again) and did not blame the relay.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type ConsensusEvidence,
  duplicateVoteEvidence,
  ed25519PublicKey,
  envelopeFromSigned,
  sha256,
  signTransaction,
  signVote,
  type TxEnvelope,
  utf8,
  ValidationError,
} from '@unc/core';
import fc from 'fast-check';
import { Chain, type ValidatorKey } from '../../src/chain.js';
import { devGenesisJson, devValidator } from '../../src/dev.js';
import { silentLogger } from '../../src/log.js';
import { Mempool, provablyBadEvidence } from '../../src/mempool.js';
import { ChainDb, MemoryKv } from '../../src/storage/db.js';
import { batchOf, gossipNode } from '../admission-fixtures.js';

const GENESIS_TIME = Date.parse('2026-06-01T00:00:00Z');
const dev = devValidator();
const KEY: ValidatorKey = { seed: dev.seed, publicKey: ed25519PublicKey(dev.seed) };

async function twoBlocks() {
  const chain = await Chain.open(
    ChainDb.over(new MemoryKv()),
    devGenesisJson({ time: new Date(GENESIS_TIME) }),
    silentLogger,
  );
  for (let i = 0; i < 2; i++) {
    const at = BigInt(GENESIS_TIME) + (chain.tipHeight + 1n) * 1000n;
    await chain.proposeAndCommit([], chain.nextBlockTime(at), KEY, () => false);
  }
  const head = chain.tip.header;
  const next = {
    chainId: chain.genesis.chainId,
    height: head.height + 1n,
    time: head.time + 1n,
    proposer: head.proposer,
    prevHash: chain.tip.hash,
    prevBeacon: head.beacon,
    beacon: new Uint8Array(32),
  };
  return { chain, next };
}

function pair(chainId: string, signer: ValidatorKey = KEY): ConsensusEvidence {
  const vote = (name: string) =>
    signVote(
      chainId,
      { type: 'precommit', height: 1n, round: 0, blockHash: sha256(utf8(name)), validator: signer.publicKey },
      signer.seed,
    );
  return duplicateVoteEvidence(chainId, vote('A'), vote('B'));
}

/** A fee-free report of `evidence` from a fresh key with nothing (its own signature valid). */
function report(chainId: string, evidence: ConsensusEvidence, name = 'a fresh key with nothing'): TxEnvelope {
  const sender = sha256(utf8(name));
  return envelopeFromSigned(
    signTransaction(
      {
        chainId,
        signer: ed25519PublicKey(sender),
        nonce: 0n,
        expiresAt: 12n,
        fee: 0n,
        actions: [{ type: 'evidence', evidence }],
      },
      sender,
    ),
  );
}

function refusalOf(fn: () => unknown): ValidationError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ValidationError) return err;
    throw err;
  }
  assert.fail('admitted');
}

test('junk consensus evidence (a vote signature that fails) is remembered and blamed on its relay', async () => {
  const { chain, next } = await twoBlocks();
  const chainId = chain.genesis.chainId;
  const evidence = pair(chainId);
  if (evidence.type !== 'duplicate-vote') throw new Error('unreachable');
  const forged = evidence.second.signature.slice();
  forged[0]! ^= 1;
  const junk = report(chainId, { ...evidence, second: { ...evidence.second, signature: forged } });

  const mempool = new Mempool();
  const refusal = refusalOf(() => mempool.add(junk, chain.tipState, chain.params, next));
  assert.equal(refusal.code, 'BAD_EVIDENCE_SIGNATURE');
  assert.match(refusal.message, /bad signature/);
  assert.equal(provablyBadEvidence(refusal), true, 'a failing vote signature is the relay’s fault');
  // A copy is refused by the screen, before its signature is queued or its evidence checked.
  assert.equal(
    mempool.cheapRefusal(junk, chain.tipState, chain.params, next)?.code,
    'BAD_EVIDENCE_SIGNATURE',
  );

  // Relayed: the batch is rejected (the peer scored down), not forwarded.
  const node = gossipNode(chain.tipState, chain.params, next);
  assert.equal(await node.reactor.onTxGossip(batchOf(junk), 'relay'), 'reject');
  assert.deepEqual(node.published, []);
});

test('evidence refused for a state reason (a signer outside the set) is neither remembered nor blamed', async () => {
  const { chain, next } = await twoBlocks();
  const chainId = chain.genesis.chainId;
  const stranger: ValidatorKey = {
    seed: sha256(utf8('stranger')),
    publicKey: ed25519PublicKey(sha256(utf8('stranger'))),
  };
  const notInSet = report(chainId, pair(chainId, stranger));
  const mempool = new Mempool();
  const refusal = refusalOf(() => mempool.add(notInSet, chain.tipState, chain.params, next));
  assert.equal(refusal.code, 'BAD_EVIDENCE');
  assert.equal(provablyBadEvidence(refusal), false);
  assert.equal(mempool.cheapRefusal(notInSet, chain.tipState, chain.params, next), null);
  const node = gossipNode(chain.tipState, chain.params, next);
  assert.notEqual(await node.reactor.onTxGossip(batchOf(notInSet), 'relay'), 'reject');
});

test('property: any change to a genuine pair is refused with a code the bytes prove, and remembered', async () => {
  const { chain, next } = await twoBlocks();
  const chainId = chain.genesis.chainId;
  const genuine = pair(chainId);
  if (genuine.type !== 'duplicate-vote') throw new Error('unreachable');
  fc.assert(
    fc.property(
      fc.constantFrom('first', 'second'),
      fc.constantFrom('signature', 'blockHash', 'round', 'swap'),
      fc.nat(63),
      fc.integer({ min: 1, max: 255 }),
      (which, field, at, mask) => {
        const vote = { ...genuine[which] };
        let evidence: ConsensusEvidence;
        if (field === 'swap') evidence = { ...genuine, first: genuine.second, second: genuine.first };
        else {
          if (field === 'signature') {
            const s = vote.signature.slice();
            s[at]! ^= mask;
            vote.signature = s;
          } else if (field === 'blockHash') {
            // The other vote's hash: the pair no longer conflicts.
            vote.blockHash = genuine[which === 'first' ? 'second' : 'first'].blockHash;
          } else vote.round = vote.round + 1;
          evidence = { ...genuine, [which]: vote };
        }
        const mempool = new Mempool();
        const env = report(chainId, evidence);
        const refusal = refusalOf(() => mempool.add(env, chain.tipState, chain.params, next));
        assert.ok(provablyBadEvidence(refusal), `${refusal.code}: ${refusal.message}`);
        assert.equal(mempool.cheapRefusal(env, chain.tipState, chain.params, next)?.code, refusal.code);
      },
    ),
    { numRuns: 60 },
  );
});
