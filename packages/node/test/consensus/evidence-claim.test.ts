/**
 * A report of evidence holds its offender's one place in the mempool (one pending report per
 * offender, ALREADY_PENDING for every other, from any sender at any fee), so it must land in the
 * next block: otherwise whoever holds the place, the offender through an account of its own,
 * keeps every honest report out until the offence is too old to punish.
 *
 * Regressions, on a real Chain, a real Mempool and the real EvidencePool of an honest validator
 * (each failed on the code before the fix, found by an audit):
 * - a paying report parked at a nonce gap (nonce 1 of an account whose nonce 0 is never used) was
 *   admitted ("checked alone, at any nonce"), never includable, never tried by a proposer, never
 *   paid for, and held the place until its expiry (86,400 blocks by default): refused NONCE_GAP;
 * - a minimum-fee report at the next nonce waited behind higher fees while blocks were full: drawn
 *   through the fee-free reserve, first;
 * - a report replaced by another transaction of its nonce (10% more fee, never paid if it failed)
 *   freed the place only until the next commit: refused EVIDENCE_PENDING;
 * - a report beside other actions could hold the place and fail on them: EVIDENCE_NOT_ALONE;
 * - a report the state moved under (its evidence too old after a boundary) held the place until a
 *   node built a block with it: dropped after the commit (`recheckEvidence`), the honest report in;
 * - (review) the evidence pool's own report refused MEMPOOL_FULL (a pool full of fee-free
 *   transactions, which a fee-free report cannot evict) was forgotten for good: kept for the next
 *   commit. And (no regression, a check of the real pool path) the validator's own account with
 *   transactions queued at its next nonces: the report waits for them and lands after (NONCE_GAP
 *   never meets it: the pool takes the account's next nonce).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type Action,
  addressFromPublicKey,
  type ConsensusEvidence,
  certificateFromVotes,
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
const Y_DEV = devValidatorKey(2);
/** A second offender (only where a test names it in `open`). */
const Y: ValidatorKey = { seed: Y_DEV.seed, publicKey: Y_DEV.publicKey };
/** The offender's throwaway account: a funded dev account (any account that can pay a min fee). */
const M = devKey(1);
/** The least epoch length a 20-block answer window allows: evidence of epoch 0 lands by height 66. */
const EPOCH_BLOCKS = 22;

interface Net {
  /** The validators of the genesis; each signs every commit. */
  all: ValidatorKey[];
  chain: Chain;
  mempool: Mempool;
  pool: EvidencePool;
  /** The codes the mempool refused the honest validator's reports with. */
  refusals: string[];
  /** Reports of evidence included, by height. */
  landed: Map<bigint, TxEnvelope[]>;
}

function nextContext(chain: Chain) {
  const head = chain.tip.header;
  return {
    chainId: chain.genesis.chainId,
    height: head.height + 1n,
    time: head.time + 1n,
    proposer: head.proposer,
    prevHash: chain.tip.hash,
    prevBeacon: head.beacon,
    beacon: new Uint8Array(32),
  };
}

function addOnTip(mempool: Mempool, chain: Chain, env: TxEnvelope): void {
  mempool.add(env, chain.tipState, chain.params, nextContext(chain));
}

async function open(
  opts: { offenders?: ValidatorKey[]; mempool?: ConstructorParameters<typeof Mempool>[0] } = {},
): Promise<Net> {
  const all = [HONEST, ...(opts.offenders ?? [X])];
  const genesis = devGenesisJson({
    time: new Date(GENESIS_TIME),
    epochBlocks: EPOCH_BLOCKS,
    validators: all.map((v, i) => ({ publicKey: v.publicKey, name: `v${i}` })),
  });
  const chain = await Chain.open(ChainDb.over(new MemoryKv()), genesis, silentLogger);
  const mempool = new Mempool(opts.mempool);
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
  return { all, chain, mempool, pool, refusals, landed: new Map() };
}

/**
 * One height as a node runs it (node-core.ts, driver.ts): the honest validator proposes from its
 * mempool (`maxTxs` a block at most), the block is committed by the set, the mempool drops what
 * it took and what it found failing, reports that can no longer land leave, and the evidence pool
 * flushes.
 */
async function height(net: Net, maxTxs = Number.POSITIVE_INFINITY, candidates?: TxEnvelope[]) {
  const { chain, mempool } = net;
  const at = BigInt(GENESIS_TIME) + (chain.tipHeight + 1n) * 1000n;
  const picked = candidates ?? mempool.select(chain.tipState, maxTxs, chain.params.maxBlockBytes);
  const { pending, rejected } = chain.buildProposal(picked, chain.nextBlockTime(at), HONEST, () => false);
  mempool.prune([], rejected, chain.tipState, chain.tipHeight + 1n);
  const h = pending.block.header.height;
  const signers = net.all.filter((v) => chain.validatorsForHeight(h).has(v.publicKey));
  const votes = signers.map((v) =>
    signVote(
      chain.genesis.chainId,
      { type: 'precommit', height: h, round: 0, blockHash: pending.hash, validator: v.publicKey },
      v.seed,
    ),
  );
  const committed = await chain.commitDecided(pending, certificateFromVotes(votes));
  const reports = committed.envelopes.filter((e) => e.stx.tx.actions.some((a) => a.type === 'evidence'));
  if (reports.length > 0) net.landed.set(h, reports);
  mempool.prune(committed.envelopes, [], chain.tipState, h + 1n);
  mempool.recheckEvidence(chain.tipState, nextContext(chain));
  net.pool.flushEvidence();
  return committed;
}

function doubleVote(chainId: string, h: bigint, round: number, by: ValidatorKey = X): ConsensusEvidence {
  const vote = (name: string) =>
    signVote(
      chainId,
      { type: 'precommit', height: h, round, blockHash: sha256(utf8(name)), validator: by.publicKey },
      by.seed,
    );
  return duplicateVoteEvidence(chainId, vote('block A'), vote('block B'));
}

function signed(from: typeof M, nonce: bigint, actions: Action[], feeTimes = 1n, expiresAt = 10_000n) {
  const base = { chainId: 'x', signer: from.publicKey, nonce, expiresAt, actions, fee: 0n };
  return (chain: Chain): TxEnvelope => {
    const tx = { ...base, chainId: chain.genesis.chainId };
    const size = encode(signedTransactionCodec, { tx, signature: new Uint8Array(64) }).length;
    const fee = feeTimes * minimumFee(chain.params, size, actions.length);
    return envelopeFromSigned(signTransaction({ ...tx, fee }, from.seed));
  };
}

const evidenceOf = (e: ConsensusEvidence): Action => ({ type: 'evidence', evidence: e });
const transfer = (amount: bigint, to = devKey(8).address): Action => ({
  type: 'transfer',
  to,
  amount,
  memo: new Uint8Array(0),
});

function codeOf(fn: () => unknown): string | null {
  try {
    fn();
    return null;
  } catch (e) {
    if (e instanceof ValidationError) return e.code;
    throw e;
  }
}

test('control: the honest report lands in the block after the offence and X is tombstoned', async () => {
  const net = await open();
  await height(net);
  await height(net);
  net.pool.reportEvidence(doubleVote(net.chain.genesis.chainId, 2n, 0), 'machine');
  await height(net);
  assert.deepEqual(net.refusals, []);
  assert.deepEqual([...net.landed.keys()], [3n]);
  assert.equal(isTombstoned(net.chain.tipState, X.publicKey), true);
});

test('attack: a paying report parked at a nonce gap is refused, and the honest report lands', async () => {
  const net = await open();
  const { chain, mempool } = net;
  await height(net);
  await height(net);
  const chainId = chain.genesis.chainId;
  // X's private pair at height 1 (round 9, never broadcast), sent by M at nonce 1 while M's next
  // nonce is 0 (and stays so): it would hold X's place, never includable, never paid for.
  assert.equal(getAccount(chain.tipState, M.address).nonce, 0n);
  const parked = signed(M, 1n, [evidenceOf(doubleVote(chainId, 1n, 9))])(chain);
  assert.equal(
    codeOf(() => addOnTip(mempool, chain, parked)),
    'NONCE_GAP',
  );
  net.pool.reportEvidence(doubleVote(chainId, 2n, 0), 'machine');
  while (chain.tipHeight < 6n) await height(net);
  assert.deepEqual(net.refusals, []);
  assert.deepEqual([...net.landed.keys()], [3n], 'the honest report landed in the next block');
  assert.equal(isTombstoned(chain.tipState, X.publicKey), true);
});

test('attack: a minimum-fee report at the next nonce holding the place lands in the next block, full of higher fees', async () => {
  const net = await open();
  const { chain, mempool } = net;
  await height(net);
  await height(net);
  const chainId = chain.genesis.chainId;
  const claim = signed(M, 0n, [evidenceOf(doubleVote(chainId, 1n, 9))])(chain);
  addOnTip(mempool, chain, claim);
  // Thirty transfers paying five times the minimum, three times what a block of 10 takes.
  for (let i = 0; i < 30; i++)
    addOnTip(
      mempool,
      chain,
      signed(devKey(2 + (i % 6)), BigInt(Math.floor(i / 6)), [transfer(1n)], 5n)(chain),
    );
  net.pool.reportEvidence(doubleVote(chainId, 2n, 0), 'machine');
  assert.deepEqual(net.refusals, ['ALREADY_PENDING'], 'the honest report waits: the place is taken');
  await height(net, 10);
  assert.deepEqual(net.landed.get(3n), [claim], 'the claim landed in the next block, full as it was');
  assert.equal(isTombstoned(chain.tipState, X.publicKey), true);
});

test('attack: a pending report is not replaced by a transaction that does not report its offender', async () => {
  const net = await open();
  const { chain, mempool } = net;
  await height(net);
  await height(net);
  const chainId = chain.genesis.chainId;
  const claim = signed(M, 0n, [evidenceOf(doubleVote(chainId, 1n, 9))])(chain);
  addOnTip(mempool, chain, claim);
  net.pool.reportEvidence(doubleVote(chainId, 2n, 0), 'machine');
  // Just before the block, the claim swapped for a transfer of its nonce: the place would be free
  // only until the next commit, the honest reports refused until then, at every height.
  const swap = signed(M, 0n, [transfer(1n)], 3n)(chain);
  assert.equal(
    codeOf(() => addOnTip(mempool, chain, swap)),
    'EVIDENCE_PENDING',
  );
  // Another piece against the same offender may replace it (it lands all the same).
  const other = signed(M, 0n, [evidenceOf(doubleVote(chainId, 1n, 8))], 3n)(chain);
  addOnTip(mempool, chain, other);
  assert.equal(mempool.dropped(claim.hash)?.code, 'REPLACED');
  await height(net);
  assert.deepEqual(net.landed.get(3n), [other]);
  assert.equal(isTombstoned(chain.tipState, X.publicKey), true);
});

test('attack: a report beside another action is refused (it could hold the place and fail on that action)', async () => {
  const net = await open();
  const { chain, mempool } = net;
  await height(net);
  await height(net);
  const chainId = chain.genesis.chainId;
  const beside = signed(M, 0n, [evidenceOf(doubleVote(chainId, 1n, 9)), transfer(1n)])(chain);
  assert.equal(
    mempool.cheapRefusal(beside, chain.tipState, chain.params, nextContext(chain))?.code,
    'EVIDENCE_NOT_ALONE',
  );
  assert.equal(
    codeOf(() => addOnTip(mempool, chain, beside)),
    'EVIDENCE_NOT_ALONE',
  );
  net.pool.reportEvidence(doubleVote(chainId, 2n, 0), 'machine');
  await height(net);
  assert.deepEqual([...net.landed.keys()], [3n]);
});

test('a report the state moved under leaves after the commit, and the honest report lands in the block after', async () => {
  const net = await open();
  const { chain, mempool } = net;
  const chainId = chain.genesis.chainId;
  while (chain.tipHeight < 64n) await height(net);
  // Evidence of height 1 (epoch 0) can land up to height 66 (epoch 2), no later. M's report of a
  // private pair there holds X's place; X's public offence at height 64 is refused ALREADY_PENDING.
  const stale = signed(M, 0n, [evidenceOf(doubleVote(chainId, 1n, 9))])(chain);
  addOnTip(mempool, chain, stale);
  net.pool.reportEvidence(doubleVote(chainId, 64n, 0), 'machine');
  assert.deepEqual(net.refusals, ['ALREADY_PENDING']);
  // Block 65 and 66 by proposers that did not have M's report (gossip is not instant).
  await height(net, Number.POSITIVE_INFINITY, []);
  assert.ok(mempool.has(stale.hash), 'still able to land at 66');
  await height(net, Number.POSITIVE_INFINITY, []);
  // At 67 it cannot: it left with the commit of 66, and the honest report took the place.
  assert.equal(mempool.has(stale.hash), false);
  assert.equal(mempool.dropped(stale.hash)?.code, 'EVIDENCE_TOO_OLD');
  await height(net);
  assert.equal(net.landed.get(67n)?.length, 1, 'the honest report landed at 67');
  assert.equal(isTombstoned(chain.tipState, X.publicKey), true);
});

test("the validator's own account with transactions queued: its report waits for them (REPLACEMENT_UNDERPRICED, kept) and lands after", async () => {
  const net = await open();
  const { chain, mempool } = net;
  const own = devKey(0);
  const honestAccount = {
    ...own,
    seed: HONEST.seed,
    publicKey: HONEST.publicKey,
    address: addressFromPublicKey(HONEST.publicKey),
  };
  // Block 1 funds the validator's key account; its operator queues three transfers from it.
  addOnTip(mempool, chain, signed(devKey(3), 0n, [transfer(10n ** 18n, honestAccount.address)])(chain));
  await height(net);
  await height(net);
  for (let n = 0n; n < 3n; n++) addOnTip(mempool, chain, signed(honestAccount, n, [transfer(1n)])(chain));
  net.pool.reportEvidence(doubleVote(chain.genesis.chainId, 2n, 0), 'machine');
  assert.deepEqual(net.refusals, ['REPLACEMENT_UNDERPRICED'], 'its nonce is taken by the operator: kept');
  // One transaction a block: the operator's three go first, then the report, at the next nonce.
  while (chain.tipHeight < 8n) await height(net, 1);
  assert.equal(getAccount(chain.tipState, honestAccount.address).nonce, 4n);
  assert.deepEqual([...net.landed.keys()], [6n]);
  assert.equal(isTombstoned(chain.tipState, X.publicKey), true);
});

test('a full mempool does not make the evidence pool forget its report: kept (MEMPOOL_FULL), it lands once there is room', async () => {
  // A pool full of fee-free transactions (heartbeats on a large network; here one report), which a
  // fee-free report cannot evict.
  const net = await open({ offenders: [X, Y], mempool: { maxTxs: 1 } });
  const { chain, mempool } = net;
  await height(net);
  await height(net);
  const chainId = chain.genesis.chainId;
  addOnTip(mempool, chain, signed(M, 0n, [evidenceOf(doubleVote(chainId, 1n, 9, Y))], 0n)(chain));
  net.pool.reportEvidence(doubleVote(chainId, 2n, 0), 'machine');
  assert.deepEqual(net.refusals, ['MEMPOOL_FULL']);
  while (chain.tipHeight < 6n) await height(net);
  assert.equal(isTombstoned(chain.tipState, Y.publicKey), true);
  assert.equal(isTombstoned(chain.tipState, X.publicKey), true, "X's report was kept and landed");
  assert.deepEqual([...net.landed.keys()], [3n, 4n]);
});
