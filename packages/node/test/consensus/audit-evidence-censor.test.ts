/**
 * AUDIT (audslash): an equivocator keeps its own evidence off chain for ever, for free.
 *
 * The mempool takes one pending transaction per offender ("evidence against validator X",
 * mempool.ts claimsOf) and refuses every other report of the same offender ALREADY_PENDING, from
 * any sender, at any fee. A paying transaction's evidence is checked "alone, at any nonce"
 * (checkFreeActionsWouldExecute), so a transaction at a nonce gap (nonce n+1 of an account whose
 * next nonce n is never used) is admitted, holds the claim, is never includable (a sender's run
 * stops at the gap), is never tried by a proposer (so never `rejected`), and is pruned only at its
 * expiry: up to maxTxLifetimeBlocks (86,400 blocks by default, 24 epochs of 3,600) later, far past
 * EVIDENCE_MAX_AGE_EPOCHS (2). Its fee is charged only on inclusion: never.
 *
 * The attack, on a real Chain, a real Mempool and the real EvidencePool of the honest validator:
 *  1. The offender X signs, in private, a conflicting pair at some past height it voted at, and
 *     from a throwaway funded account M sends a paying evidence transaction at M's nonce 1 (M's
 *     nonce 0 is never used). Every mempool admits it and gives it the claim against X.
 *  2. X now equivocates in public. The honest validator's evidence pool reports it: refused
 *     ALREADY_PENDING, kept "for the next flush", refused again after every commit.
 *  3. Two epochs later the evidence is too old; the pool drops it. X is never tombstoned, never
 *     slashed; M paid nothing. (Renewal: before M's transaction expires, M replaces it at the same
 *     nonce with 10% more fee, never paid, and a fresh pair of X's.)
 *
 * Expected on sound code: the equivocation lands on chain and X is tombstoned. This test asserts
 * that, and FAILS on the current code.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type Action,
  type ConsensusEvidence,
  certificateFromVotes,
  checkEvidence,
  duplicateVoteEvidence,
  ed25519PublicKey,
  encode,
  envelopeFromSigned,
  getAccount,
  isTombstoned,
  minimumFee,
  sha256,
  signedTransactionCodec,
  signTransaction,
  signVote,
  type TxEnvelope,
  utf8,
  ValidationError,
} from '@unc/core';
import { Chain, type ValidatorKey } from '../../src/chain.js';
import { EvidencePool } from '../../src/consensus/evidence-pool.js';
import { devGenesisJson, devKey, devValidator, devValidatorKey } from '../../src/dev.js';
import { silentLogger } from '../../src/log.js';
import { Mempool } from '../../src/mempool.js';
import { ChainDb, MemoryKv } from '../../src/storage/db.js';

const GENESIS_TIME = Date.parse('2026-06-01T00:00:00Z');
const dev = devValidator();
const HONEST: ValidatorKey = { seed: dev.seed, publicKey: ed25519PublicKey(dev.seed) };
const X_DEV = devValidatorKey(1);
const X: ValidatorKey = { seed: X_DEV.seed, publicKey: X_DEV.publicKey };
const ALL = [HONEST, X];
/** The attacker's throwaway account: a funded dev account (any account that can pay a min fee). */
const M = devKey(1);
/** The least epoch length a 20-block answer window allows: evidence of epoch 0 lands by height 66. */
const EPOCH_BLOCKS = 22;

async function commitSigned(chain: Chain, candidates: Iterable<TxEnvelope>) {
  const at = BigInt(GENESIS_TIME) + (chain.tipHeight + 1n) * 1000n;
  const { pending } = chain.buildProposal(candidates, chain.nextBlockTime(at), HONEST, () => false);
  const height = pending.block.header.height;
  const votes = ALL.map((v) =>
    signVote(
      chain.genesis.chainId,
      { type: 'precommit', height, round: 0, blockHash: pending.hash, validator: v.publicKey },
      v.seed,
    ),
  );
  return chain.commitDecided(pending, certificateFromVotes(votes));
}

function addOnTip(mempool: Mempool, chain: Chain, env: TxEnvelope): void {
  const head = chain.tip.header;
  mempool.add(env, chain.tipState, chain.params, {
    chainId: chain.genesis.chainId,
    height: head.height + 1n,
    time: head.time + 1n,
    proposer: head.proposer,
    prevHash: chain.tip.hash,
    prevBeacon: head.beacon,
  });
}

function doubleVote(chainId: string, height: bigint, round: number): ConsensusEvidence {
  const vote = (name: string) =>
    signVote(
      chainId,
      { type: 'precommit', height, round, blockHash: sha256(utf8(name)), validator: X.publicKey },
      X.seed,
    );
  return duplicateVoteEvidence(chainId, vote('block A'), vote('block B'));
}

function payingTx(chain: Chain, nonce: bigint, actions: Action[], expiresAt: bigint): TxEnvelope {
  const base = { chainId: chain.genesis.chainId, signer: M.publicKey, nonce, expiresAt, actions, fee: 0n };
  const size = encode(signedTransactionCodec, { tx: base, signature: new Uint8Array(64) }).length;
  const fee = minimumFee(chain.params, size, actions.length);
  return envelopeFromSigned(signTransaction({ ...base, fee }, M.seed));
}

async function run(park: boolean) {
  const genesis = devGenesisJson({
    time: new Date(GENESIS_TIME),
    epochBlocks: EPOCH_BLOCKS,
    validators: ALL.map((v, i) => ({ publicKey: v.publicKey, name: `v${i}` })),
  });
  const chain = await Chain.open(ChainDb.over(new MemoryKv()), genesis, silentLogger);
  const chainId = chain.genesis.chainId;
  const mempool = new Mempool();
  await commitSigned(chain, []);
  await commitSigned(chain, []);
  assert.equal(chain.tipHeight, 2n);

  // 1. The parked claim: X's private pair at height 1 (round 9, never broadcast), sent by M at
  //    nonce 1 while M's next nonce is 0. Admitted: its evidence is genuine and checked alone.
  const mBefore = getAccount(chain.tipState, M.address);
  assert.equal(mBefore.nonce, 0n);
  const parked = payingTx(chain, 1n, [{ type: 'evidence', evidence: doubleVote(chainId, 1n, 9) }], 10_000n);
  if (park) {
    addOnTip(mempool, chain, parked);
    assert.ok(mempool.has(parked.hash), 'the parked transaction is admitted');
  }

  // 2. X equivocates in public at height 2; the honest validator's pool reports it.
  const refusals: string[] = [];
  const pool = new EvidencePool({
    chain,
    validator: HONEST,
    logger: silentLogger,
    nextValidators: () => chain.validatorSet(),
    admitTx: (env) => {
      try {
        addOnTip(mempool, chain, env);
      } catch (err) {
        if (err instanceof ValidationError) refusals.push(err.code);
        throw err;
      }
    },
    announceTx: () => {},
    publishEvidence: () => {},
  });
  const publicOffence = doubleVote(chainId, 2n, 0);
  pool.reportEvidence(publicOffence, 'machine');

  // 3. The honest validator proposes every block from its mempool and flushes after each commit,
  //    as the driver does, until the offence is too old to land.
  let landed = 0;
  while (chain.tipHeight < BigInt(3 * EPOCH_BLOCKS)) {
    const committed = await commitSigned(chain, mempool.ordered(chain.tipState));
    for (const env of committed.envelopes)
      if (env.stx.tx.actions.some((a) => a.type === 'evidence')) landed++;
    mempool.prune(committed.envelopes, [], chain.tipState, committed.block.header.height + 1n);
    pool.flushEvidence();
  }

  return { chain, mempool, parked, refusals, publicOffence, landed, mBefore };
}

test('control: without the parked claim, the honest report lands and X is tombstoned', async () => {
  const { chain, landed, refusals } = await run(false);
  assert.deepEqual(refusals, []);
  assert.equal(landed, 1);
  assert.equal(isTombstoned(chain.tipState, X.publicKey), true);
});

test('AUDIT HIGH: a paying evidence transaction parked at a nonce gap holds the per-offender claim, and the equivocation is never slashed', async () => {
  const { chain, mempool, parked, refusals, publicOffence, landed, mBefore } = await run(true);
  const chainId = chain.genesis.chainId;
  // What happened on the current code (the facts of the attack):
  const mAfter = getAccount(chain.tipState, M.address);
  assert.equal(mAfter.balance, mBefore.balance, 'M paid nothing');
  assert.equal(mAfter.nonce, 0n);
  assert.ok(mempool.has(parked.hash), 'the parked claim is still pending, never tried by a proposer');
  assert.ok(refusals.length > 40, `the honest report was refused after every commit (${refusals.length})`);
  assert.ok(
    refusals.every((c) => c === 'ALREADY_PENDING'),
    refusals.join(','),
  );
  assert.throws(
    () => checkEvidence(chain.tipState, chainId, chain.tipHeight + 1n, publicOffence, chain.genesis),
    (e: unknown) => e instanceof ValidationError && e.code === 'EVIDENCE_TOO_OLD',
    'the public offence can no longer land',
  );

  // What sound code must achieve: the public equivocation on chain, X tombstoned.
  assert.ok(landed > 0, 'no evidence against X ever landed: the equivocator escaped');
  assert.equal(isTombstoned(chain.tipState, X.publicKey), true, 'X must be tombstoned');
});
