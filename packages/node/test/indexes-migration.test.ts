/**
 * Migrating a data dir from before the indexes (indexes.ts migrateIndexes) writes its entries in
 * batches of at most `opsPerBatch` writes, a block's entries split where they do not fit, and ends
 * with the very index the blocks' own commits wrote.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ed25519PublicKey, encodeAddress, envelopeFromSigned, getAccount, signTransaction } from '@unc/core';
import { feeFor, transferAction } from '@unc/sdk';
import { Chain } from '../src/chain.js';
import { devGenesisJson, devKey, devValidator } from '../src/dev.js';
import { migrateIndexes, stateAfter } from '../src/indexes.js';
import { silentLogger } from '../src/log.js';
import { type BatchOp, Bucket, ChainDb, INDEX_VERSION, type KvStore, MemoryKv } from '../src/storage/db.js';

const T0 = Date.parse('2026-06-01T00:00:00Z');

/** A MemoryKv that records how many writes each batch held. */
class CountingKv implements KvStore {
  readonly inner = new MemoryKv();
  readonly batches: number[] = [];
  get(key: Uint8Array) {
    return this.inner.get(key);
  }
  async batch(ops: BatchOp[], durable: boolean): Promise<void> {
    this.batches.push(ops.length);
    await this.inner.batch(ops, durable);
  }
  entries(range: Parameters<KvStore['entries']>[0]) {
    return this.inner.entries(range);
  }
  close() {
    return this.inner.close();
  }
}

/** Every entry of the account index, as hex key → hex value. */
async function accountIndex(store: KvStore): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const range = { gte: new Uint8Array([Bucket.accountTxs]), lt: new Uint8Array([Bucket.accountTxs + 1]) };
  for await (const [k, v] of store.entries(range))
    out.set(Buffer.from(k).toString('hex'), Buffer.from(v).toString('hex'));
  return out;
}

test('an older data dir is migrated in batches of at most opsPerBatch writes, to the index its commits wrote', async () => {
  const store = new CountingKv();
  const db = ChainDb.over(store);
  const chain = await Chain.open(db, devGenesisJson({ time: new Date(T0), blockTimeMs: 1000 }), silentLogger);
  const v = devValidator();
  const key = { seed: v.seed, publicKey: ed25519PublicKey(v.seed) };
  // Blocks of 5 transfers (two account entries each: sender and recipient) and an empty one.
  for (let b = 1; b <= 4; b++) {
    const txs = [];
    for (let i = 0; i < (b === 3 ? 0 : 5); i++) {
      const sender = devKey(i + 1);
      const body = {
        chainId: chain.genesis.chainId,
        signer: sender.publicKey,
        nonce: getAccount(chain.state, sender.address).nonce,
        fee: 0n,
        expiresAt: 1000n,
        actions: [transferAction(encodeAddress(devKey(9).address), 5n)],
      };
      body.fee = feeFor(body, chain.params);
      txs.push(envelopeFromSigned(signTransaction(body, sender.seed)));
    }
    const { rejected } = await chain.proposeAndCommit(
      txs,
      chain.nextBlockTime(BigInt(T0 + b * 1000)),
      key,
      () => false,
    );
    assert.deepEqual(rejected, []);
  }
  const written = await accountIndex(store);
  assert.ok(written.size >= 30, `${written.size} account entries`);

  // A data dir from before the indexes: no account entries and no version.
  await store.batch(
    [
      ...[...written.keys()].map((k) => ({ type: 'del' as const, key: Buffer.from(k, 'hex') })),
      {
        type: 'del' as const,
        key: new Uint8Array([Bucket.meta, ...new TextEncoder().encode('indexVersion')]),
      },
    ],
    true,
  );
  assert.equal((await accountIndex(store)).size, 0);
  assert.equal(await db.getIndexVersion(), 0);

  for (const cap of [7, 1]) {
    if (cap === 1)
      await store.batch(
        [{ type: 'del', key: new Uint8Array([Bucket.meta, ...new TextEncoder().encode('indexVersion')]) }],
        true,
      );
    store.batches.length = 0;
    await migrateIndexes(db, chain.height, stateAfter(chain.state, []), silentLogger, cap);
    assert.deepEqual(await accountIndex(store), written, `cap ${cap}: the same index`);
    assert.equal(await db.getIndexVersion(), INDEX_VERSION);
    // The last batch writes the epoch figures and the version; every one before it the entries.
    const entries = store.batches.slice(0, -1);
    assert.ok(
      entries.every((n) => n <= cap),
      `cap ${cap}: batches of ${entries.join(', ')}`,
    );
    assert.equal(
      entries.reduce((a, n) => a + n, 0),
      written.size,
      `cap ${cap}: every entry written once`,
    );
  }
  await assert.rejects(
    migrateIndexes(db, chain.height, stateAfter(chain.state, []), silentLogger, 0),
    /opsPerBatch/,
  );
});
