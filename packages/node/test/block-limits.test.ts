/**
 * maxBlockTxs and maxBlockBytes are rules every validator checks, not only what an honest proposer
 * selects: a proposal over either limit is refused before its transactions are executed, and the
 * node's own builder never makes one.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  DEFAULT_PARAMS,
  ed25519PublicKey,
  encode,
  envelopeFromSigned,
  minimumFee,
  signedTransactionCodec,
  signTransaction,
  type TxEnvelope,
  ValidationError,
} from '@unc/core';
import { Chain } from '../src/chain.js';
import { DEV_CHAIN_ID, devGenesisJson, devKey, devValidator } from '../src/dev.js';
import { silentLogger } from '../src/log.js';
import { ChainDb } from '../src/storage/db.js';

const dirs: string[] = [];
const dbs: ChainDb[] = [];
after(async () => {
  for (const db of dbs) await db.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const LIMITS = { maxBlockTxs: 2, maxTxBytes: 512, maxBlockBytes: 700 };

async function open(): Promise<Chain> {
  const genesis = devGenesisJson({ time: new Date('2026-06-01T00:00:00Z') });
  genesis.params = { ...(genesis.params as Record<string, unknown>), ...LIMITS };
  const dir = mkdtempSync(join(tmpdir(), 'unc-limits-test-'));
  dirs.push(dir);
  const db = await ChainDb.open(dir);
  dbs.push(db);
  return Chain.open(db, genesis, silentLogger);
}

function transfer(from: number, memoBytes: number): TxEnvelope {
  const k = devKey(from);
  const base = {
    chainId: DEV_CHAIN_ID,
    signer: k.publicKey,
    nonce: 0n,
    expiresAt: 100n,
    actions: [
      { type: 'transfer' as const, to: devKey(9).address, amount: 1n, memo: new Uint8Array(memoBytes) },
    ],
    fee: 0n,
  };
  const size = encode(signedTransactionCodec, { tx: base, signature: new Uint8Array(64) }).length;
  return envelopeFromSigned(signTransaction({ ...base, fee: minimumFee(DEFAULT_PARAMS, size, 1) }, k.seed));
}

const v = devValidator();
const key = { seed: v.seed, publicKey: ed25519PublicKey(v.seed) };
const time = BigInt(Date.parse('2026-06-01T00:00:01Z'));

function refusedFor(pattern: RegExp) {
  return (e: unknown) => e instanceof ValidationError && e.code === 'BAD_BLOCK' && pattern.test(e.message);
}

test('a proposal with more than maxBlockTxs transactions is refused; the builder stops at the limit', async () => {
  const a = await open();
  const b = await open();
  const txs = [transfer(0, 0), transfer(1, 0), transfer(2, 0)];
  const { pending, rejected } = a.buildProposal(txs, a.nextBlockTime(time), key, () => false);
  assert.equal(pending.block.txs.length, 2);
  assert.equal(rejected.length, 0, 'the third is left for later, not rejected');
  // Within the limits: valid everywhere.
  b.validateProposal(pending.block);
  const oversized = { ...pending.block, txs: [...pending.block.txs, txs[2]!.bytes] };
  assert.throws(() => b.validateProposal(oversized), refusedFor(/3 transactions, more than the limit of 2/));
});

test('a proposal whose transactions add up to more than maxBlockBytes is refused', async () => {
  const a = await open();
  const b = await open();
  const big = [transfer(0, 256), transfer(1, 256)];
  assert.ok(big[0]!.bytes.length + big[1]!.bytes.length > LIMITS.maxBlockBytes);
  assert.ok(big[0]!.bytes.length <= LIMITS.maxTxBytes);
  const { pending } = a.buildProposal(big, a.nextBlockTime(time), key, () => false);
  assert.equal(pending.block.txs.length, 1, 'the builder leaves out what does not fit');
  b.validateProposal(pending.block);
  const oversized = { ...pending.block, txs: [...pending.block.txs, big[1]!.bytes] };
  assert.throws(
    () => b.validateProposal(oversized),
    refusedFor(/bytes of transactions, more than the limit of 700/),
  );
});
