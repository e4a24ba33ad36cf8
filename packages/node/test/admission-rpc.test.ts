/**
 * A node whose admission queue is full answers "busy, retry" (-32005 BUSY with retryAfterMs) for
 * the whole call and admits nothing of it; once the queue drains, the same call goes through.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { envelopeFromSigned, signTransaction, toHex } from '@unc/core';
import { transferAction } from '@unc/sdk';
import { devGenesisJson, devKey, devValidator } from '../src/dev.js';
import { silentLogger } from '../src/log.js';
import { UncNode } from '../src/node.js';

const dir = mkdtempSync(join(tmpdir(), 'unc-admission-rpc-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('unc_sendTransactions beyond the admission queue: -32005 BUSY, nothing admitted; later it fits', async () => {
  const node = await UncNode.start({
    dataDir: dir,
    genesis: devGenesisJson(),
    validatorSeed: devValidator().seed,
    rpcPort: 0,
    logger: silentLogger,
    admission: { maxQueued: 3 },
  });
  try {
    const txs = [1, 2, 3, 4].map((i) => {
      const k = devKey(i);
      const tx = {
        chainId: node.chain.genesis.chainId,
        signer: k.publicKey,
        nonce: 0n,
        fee: 10n ** 16n,
        expiresAt: 1000n,
        actions: [transferAction('unc1vystcnlgdeut2u2v57a0lacv4url68zepr0t34', 1n)],
      };
      return toHex(envelopeFromSigned(signTransaction(tx, k.seed)).bytes);
    });
    const call = async (params: unknown) => {
      const res = await fetch(node.rpcUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'unc_sendTransactions', params }),
      });
      return (await res.json()) as {
        result?: unknown[];
        error?: { code: number; data?: Record<string, unknown> };
      };
    };
    const busy = await call([txs]);
    assert.equal(busy.error?.code, -32005);
    assert.equal(busy.error?.data?.reason, 'BUSY');
    assert.equal(busy.error?.data?.limit, 3);
    assert.ok(Number(busy.error?.data?.retryAfterMs) > 0);
    assert.equal(node.mempool.size, 0);
    const ok = await call([txs.slice(0, 3)]);
    assert.equal(ok.result?.length, 3);
    for (const r of ok.result as { hash?: string }[]) assert.ok(r.hash);
    assert.equal(node.admission.queued, 0);
  } finally {
    await node.stop();
  }
});
