/**
 * AUDIT (audslash, LOW): consensus evidence whose vote signature does not verify costs every node
 * that receives it two Ed25519 checks on the admission path, each time its bytes arrive, and blames
 * nobody.
 *
 * A fee-free transaction from a fresh key (its own signature valid) carrying a duplicate-vote pair
 * against a real validator with one signature bit flipped passes `cheapRefusal` (it spends
 * nothing), has its transaction signature checked, then `checkWouldExecute` runs core's
 * applyEvidence: two vote signature checks. The refusal is BAD_EVIDENCE, which is not in
 * PROVABLY_BAD_EVIDENCE: it is not remembered by hash (the same bytes are checked again when they
 * come back in another batch), not `relayAtFault` (the relaying peer is not scored down), and
 * consensus evidence is not under the costly-relay budget. Chip evidence (ATTEST_BAD_SIGNATURE) is
 * treated as the relay's fault; a vote signature that fails is just as much a fact of the bytes.
 *
 * Expected on sound code: a refusal the bytes prove is remembered and blames the relay. FAILS now.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  duplicateVoteEvidence,
  ed25519PublicKey,
  envelopeFromSigned,
  sha256,
  signTransaction,
  signVote,
  utf8,
  ValidationError,
} from '@unc/core';
import { Chain, type ValidatorKey } from '../../src/chain.js';
import { devGenesisJson, devValidator } from '../../src/dev.js';
import { silentLogger } from '../../src/log.js';
import { Mempool, provablyBadEvidence } from '../../src/mempool.js';
import { ChainDb, MemoryKv } from '../../src/storage/db.js';

const GENESIS_TIME = Date.parse('2026-06-01T00:00:00Z');
const dev = devValidator();
const KEY: ValidatorKey = { seed: dev.seed, publicKey: ed25519PublicKey(dev.seed) };

test('AUDIT LOW: junk consensus evidence (a vote signature that fails) is neither remembered nor blamed on its relay', async () => {
  const chain = await Chain.open(
    ChainDb.over(new MemoryKv()),
    devGenesisJson({ time: new Date(GENESIS_TIME) }),
    silentLogger,
  );
  for (let i = 0; i < 2; i++) {
    const at = BigInt(GENESIS_TIME) + (chain.tipHeight + 1n) * 1000n;
    await chain.proposeAndCommit([], chain.nextBlockTime(at), KEY, () => false);
  }
  const chainId = chain.genesis.chainId;
  const vote = (name: string) =>
    signVote(
      chainId,
      { type: 'precommit', height: 1n, round: 0, blockHash: sha256(utf8(name)), validator: KEY.publicKey },
      KEY.seed,
    );
  const evidence = duplicateVoteEvidence(chainId, vote('A'), vote('B'));
  const forged = evidence.second.signature.slice();
  forged[0]! ^= 1;
  (evidence.second as { signature: Uint8Array }).signature = forged;

  const sender = sha256(utf8('a fresh key with nothing'));
  const env = envelopeFromSigned(
    signTransaction(
      {
        chainId,
        signer: ed25519PublicKey(sender),
        nonce: 0n,
        expiresAt: chain.tipHeight + 10n,
        fee: 0n,
        actions: [{ type: 'evidence', evidence }],
      },
      sender,
    ),
  );
  const head = chain.tip.header;
  const next = {
    chainId,
    height: head.height + 1n,
    time: head.time + 1n,
    proposer: head.proposer,
    prevHash: chain.tip.hash,
    prevBeacon: head.beacon,
  };
  const mempool = new Mempool();
  let refusal: ValidationError | null = null;
  try {
    mempool.add(env, chain.tipState, chain.params, next);
  } catch (err) {
    refusal = err as ValidationError;
  }
  assert.ok(refusal instanceof ValidationError);
  assert.equal(refusal.code, 'BAD_EVIDENCE');
  assert.match(refusal.message, /bad signature/);
  // The same bytes again pass the cheap screen: their evidence is checked in full once more.
  const again = mempool.cheapRefusal(env, chain.tipState, chain.params, next);
  // Sound: a refusal the bytes alone prove is remembered (refused for a lookup) and blames the relay.
  assert.notEqual(again, null, 'a resent copy must be refused before its evidence is checked again');
  assert.equal(provablyBadEvidence(refusal), true, 'a failing vote signature is the relay’s fault');
});
