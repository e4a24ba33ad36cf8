/**
 * Audit of chain time (docs/security-audit-time.md): the one rule of block validity on time is that
 * a block's time is later than its parent's (`Chain.checkBeforeExecution`). A block stamped at its
 * parent's time, or before it, is refused by every node, whoever proposed it; an honest builder
 * never stamps one (`Chain.nextBlockTime`: its clock, or the parent's time + 1 ms).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ed25519PublicKey, ValidationError } from '@unc/core';
import { Chain } from '../src/chain.js';
import { devGenesisJson, devValidator } from '../src/dev.js';
import { silentLogger } from '../src/log.js';
import { ChainDb } from '../src/storage/db.js';

const dirs: string[] = [];
const dbs: ChainDb[] = [];
after(async () => {
  for (const db of dbs) await db.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const GENESIS = new Date('2026-06-01T00:00:00Z');
const GENESIS_MS = BigInt(GENESIS.getTime());

async function open(): Promise<Chain> {
  const dir = mkdtempSync(join(tmpdir(), 'unc-audtime-test-'));
  dirs.push(dir);
  const db = await ChainDb.open(dir);
  dbs.push(db);
  return Chain.open(db, devGenesisJson({ time: GENESIS }), silentLogger);
}

const v = devValidator();
const key = { seed: v.seed, publicKey: ed25519PublicKey(v.seed) };

test('the builder stamps strictly after the parent whatever its clock reads (behind, equal, far behind)', async () => {
  const a = await open();
  assert.equal(a.tip.header.time, GENESIS_MS);
  assert.equal(a.nextBlockTime(GENESIS_MS + 1_500n), GENESIS_MS + 1_500n, 'its clock, when later');
  assert.equal(a.nextBlockTime(GENESIS_MS), GENESIS_MS + 1n, 'equal: the parent + 1 ms');
  assert.equal(a.nextBlockTime(0n), GENESIS_MS + 1n, 'a clock stepped back to 1970: the parent + 1 ms');
});

test('a block stamped at its parent’s time, or before it, is refused by every node', async () => {
  const a = await open();
  const b = await open();
  // A block built honestly validates elsewhere: the builder is not what the rule relies on.
  const ok = a.buildProposal([], a.nextBlockTime(GENESIS_MS + 1_000n), key, () => false).pending.block;
  b.validateProposal(ok);
  for (const time of [GENESIS_MS, GENESIS_MS - 1n, 0n]) {
    // The proposer may sign any header it likes: build one with the time it chose.
    const { block } = a.buildProposal([], time, key, () => false).pending;
    assert.equal(block.header.time, time);
    assert.throws(
      () => b.validateProposal(block),
      (e: unknown) =>
        e instanceof ValidationError &&
        e.code === 'BAD_BLOCK' &&
        /block time does not increase/.test(e.message),
      `time ${time}`,
    );
  }
  // Nothing was taken: the head is still genesis and the honest block still validates.
  assert.equal(b.tipHeight, 0n);
  b.validateProposal(ok);
});
