/**
 * A transaction that fails in a block pays nothing, whatever it executed before failing: 63
 * transfers and then an unbond of a bond it does not have, or a claim of ~2,000 chips whose last is
 * not registered (~20–60 ms of settlements, then UNKNOWN_CHIP). The proposer's bound on failures
 * counted transactions (4 × maxBlockTxs, sized for transfers of one action each), so a pool of such
 * transactions cost every proposer seconds per block for free. Failures are weighed now by the
 * per-action work they ran (core ExecuteOptions.onActionWork, the units of `feeActions`), and past
 * MAX_REJECTED_ACTIONS_PER_BLOCK, candidates of more than one unit wait for the next block
 * (docs/security-audit-money.md, review R-1).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  type Action,
  type BlockContext,
  BlockExecutor,
  devSoftChipId,
  ed25519PublicKey,
  ed25519Sign,
  encode,
  envelopeFromSigned,
  feeActions,
  genesisStateWrites,
  MemoryState,
  minimumFee,
  parseGenesis,
  registrationMessage,
  sha256,
  signedTransactionCodec,
  signTransaction,
  type TxEnvelope,
  utf8,
  ValidationError,
} from '@unc/core';
import { Chain, MAX_REJECTED_ACTIONS_PER_BLOCK } from '../src/chain.js';
import { devGenesis, devGenesisJson, devKey, devValidator } from '../src/dev.js';
import { silentLogger } from '../src/log.js';
import { Mempool } from '../src/mempool.js';
import { ChainDb } from '../src/storage/db.js';
import { devSoftRegistration, type Key, namedKey } from './fixtures.js';

const time = new Date('2026-01-01T00:00:00Z');
const genesis = devGenesis({ time });
const params = genesis.params;
const attacker = devKey(1);

function tx(from: Key, nonce: bigint, actions: Action[]): TxEnvelope {
  const base = { chainId: genesis.chainId, signer: from.publicKey, nonce, expiresAt: 50n, actions, fee: 0n };
  const size = encode(signedTransactionCodec, { tx: base, signature: new Uint8Array(64) }).length;
  // Ten times the minimum: declared, and never paid by a transaction that fails.
  const fee = 10n * minimumFee(params, size, feeActions(actions));
  return envelopeFromSigned(signTransaction({ ...base, fee }, from.seed));
}

const transfer = (to: Key, amount = 1n): Action => ({
  type: 'transfer',
  to: to.address,
  amount,
  memo: new Uint8Array(0),
});

/** 63 transfers of one base unit, then an unbond of a bond the sender does not have (BAD_AMOUNT). */
function heavyJunk(i: number): TxEnvelope {
  return tx(attacker, 0n, [
    ...Array.from({ length: 63 }, () => transfer(devKey(2 + (i % 3)))),
    { type: 'unbond', amount: 1n },
  ]);
}

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function openChain(): Promise<{
  chain: Chain;
  key: { seed: Uint8Array; publicKey: Uint8Array };
  db: ChainDb;
}> {
  const dir = mkdtempSync(join(tmpdir(), 'unc-revmoney-test-'));
  dirs.push(dir);
  const db = await ChainDb.open(dir);
  const chain = await Chain.open(db, devGenesisJson({ time }), silentLogger);
  const v = devValidator();
  return { chain, key: { seed: v.seed, publicKey: ed25519PublicKey(v.seed) }, db };
}

describe('revmoney R-1: the proposer weighs failing transactions by the work they ran', () => {
  test('a heavy failing transaction is admitted: nothing before the block refuses it', () => {
    const state = new MemoryState();
    state.apply(genesisStateWrites(parseGenesis(devGenesisJson({ time }))));
    const one: BlockContext = {
      chainId: genesis.chainId,
      height: 1n,
      time: genesis.genesisTime + 1000n,
      proposer: devValidator().publicKey,
      prevHash: sha256(utf8('block 0')),
      prevBeacon: sha256(utf8('beacon 0')),
      beacon: sha256(utf8('beacon 1')),
    };
    const pool = new Mempool();
    pool.add(heavyJunk(0), state, params, one);
    assert.equal(pool.size, 1);
    const outcome = new BlockExecutor(state, one).tryApply(heavyJunk(0));
    assert.ok(outcome instanceof ValidationError && outcome.code === 'BAD_AMOUNT');
  });

  test('failing multi-action candidates run until MAX_REJECTED_ACTIONS_PER_BLOCK, then wait; single actions still go in', async () => {
    const { chain, key, db } = await openChain();
    try {
      const t0 = BigInt(time.getTime());
      await chain.proposeAndCommit([], chain.nextBlockTime(t0 + 1000n), key, () => false);
      const perJunk = 63; // each ran 63 transfers before its unbond failed (the first unit weighs nothing)
      const needed = Math.ceil(MAX_REJECTED_ACTIONS_PER_BLOCK / perJunk);
      // Three distinct ones, each offered again and again (signing 64 actions is slow; a proposer
      // tries every candidate it is handed, the same bytes too).
      const kinds = [heavyJunk(0), heavyJunk(1), heavyJunk(2)];
      const junk = Array.from({ length: 3 * needed }, (_, i) => kinds[i % 3]!);
      const honestSingle = tx(devKey(5), 0n, [transfer(devKey(6))]);
      const { pending, rejected } = chain.buildProposal(
        [...junk, honestSingle],
        chain.nextBlockTime(t0 + 2000n),
        key,
        () => false,
      );
      assert.ok(rejected.every((r) => r.error.code === 'BAD_AMOUNT'));
      assert.equal(rejected.length, needed, 'the rest of the junk waits for the next block');
      assert.deepEqual(
        pending.envelopes.map((e) => e.hash),
        [honestSingle.hash],
      );
    } finally {
      await db.close();
    }
  });

  test('single-action failures weigh nothing: they cannot keep an honest multi-action transaction out', async () => {
    const { chain, key, db } = await openChain();
    try {
      const t0 = BigInt(time.getTime());
      await chain.proposeAndCommit([], chain.nextBlockTime(t0 + 1000n), key, () => false);
      // Bounded by their count (MAX_REJECTED_PER_BLOCK_TXS × maxBlockTxs) as before.
      const cheap = Array.from({ length: MAX_REJECTED_ACTIONS_PER_BLOCK + 10 }, (_, i) =>
        tx(attacker, 0n, [{ type: 'unbond', amount: BigInt(i + 1) }]),
      );
      const honestBatch = tx(devKey(5), 0n, [transfer(devKey(6)), transfer(devKey(7))]);
      const { pending, rejected } = chain.buildProposal(
        [...cheap, honestBatch],
        chain.nextBlockTime(t0 + 2000n),
        key,
        () => false,
      );
      assert.equal(rejected.length, cheap.length);
      assert.deepEqual(
        pending.envelopes.map((e) => e.hash),
        [honestBatch.hash],
      );
    } finally {
      await db.close();
    }
  });

  test('a claim weighs the chips it settled before it failed', async () => {
    const { chain, key, db } = await openChain();
    try {
      const t0 = BigInt(time.getTime());
      await chain.proposeAndCommit([], chain.nextBlockTime(t0 + 1000n), key, () => false);
      const owner = devKey(4);
      const chip = namedKey('revmoney chip');
      const reg = devSoftRegistration(
        chip.publicKey,
        ed25519Sign(chip.seed, registrationMessage(genesis.chainId, owner.address, chain.tip.hash)),
      );
      await chain.proposeAndCommit([tx(owner, 0n, [reg])], chain.nextBlockTime(t0 + 2000n), key, () => false);
      const id = devSoftChipId(chip.publicKey);
      const unknown = sha256(utf8('no such chip'));
      // 1,000 settlements of a registered chip, then one that is not registered: UNKNOWN_CHIP.
      const settled = 1000;
      const junk = Array.from({ length: 3 * Math.ceil(MAX_REJECTED_ACTIONS_PER_BLOCK / settled) }, () =>
        tx(attacker, 0n, [{ type: 'claimRewards', chipIds: [...Array(settled).fill(id), unknown] }]),
      );
      // Failing at its first chip, a claim ran nothing: it weighs nothing.
      const early = Array.from({ length: 20 }, (_, i) =>
        tx(attacker, 0n, [
          { type: 'claimRewards', chipIds: [sha256(utf8(`none ${i}`)), ...Array(settled).fill(id)] },
        ]),
      );
      const honestClaim = tx(devKey(5), 0n, [{ type: 'claimRewards', chipIds: [id, id] }]);
      const first = chain.buildProposal(
        [...early, honestClaim],
        chain.nextBlockTime(t0 + 3000n),
        key,
        () => false,
      );
      assert.equal(first.rejected.length, early.length);
      assert.deepEqual(
        first.pending.envelopes.map((e) => e.hash),
        [honestClaim.hash],
      );
      const second = chain.buildProposal(
        [...junk, honestClaim],
        chain.nextBlockTime(t0 + 3000n),
        key,
        () => false,
      );
      assert.ok(second.rejected.every((r) => r.error.code === 'UNKNOWN_CHIP'));
      // Each weighs its 1,000 settlements (its first unit weighs nothing, its failing lookup a unit).
      assert.equal(second.rejected.length, Math.ceil(MAX_REJECTED_ACTIONS_PER_BLOCK / settled));
      assert.deepEqual(second.pending.envelopes, []);
    } finally {
      await db.close();
    }
  });
});
