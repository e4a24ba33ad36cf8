/**
 * The `tx` subscription looks the transaction up in the database after it starts watching. That
 * look-up must not emit once the client has unsubscribed, nor leave a rejected promise when the
 * node closes its database meanwhile (found by `npm run fuzz`: the test runner fails on the latter).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { envelopeFromSigned, signTransaction, toHex } from '@unc/core';
import { transferAction } from '@unc/sdk';
import { createApi } from '../src/api.js';
import { devGenesisJson, devKey, devValidator } from '../src/dev.js';
import { silentLogger } from '../src/log.js';
import { UncNode } from '../src/node.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('tx subscription', () => {
  test('no event after unsubscribe, and no unhandled rejection when the node stops', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'unc-txsub-'));
    dirs.push(dir);
    const node = await UncNode.start({
      dataDir: dir,
      genesis: devGenesisJson(),
      validatorSeed: devValidator().seed,
      rpcPort: 0,
      rpcHost: '127.0.0.1',
      blockTimeMs: 20,
      logger: silentLogger,
    });
    let stopped = false;
    try {
      const k = devKey(1);
      const env = envelopeFromSigned(
        signTransaction(
          {
            chainId: node.chain.genesis.chainId,
            signer: k.publicKey,
            nonce: 0n,
            fee: 10n ** 16n,
            expiresAt: 1000n,
            actions: [transferAction('unc1vystcnlgdeut2u2v57a0lacv4url68zepr0t34', 1n)],
          },
          k.seed,
        ),
      );
      node.submit(env);
      // Generous, and it fails here with its reason rather than later on a missing status.
      const deadline = Date.now() + 60_000;
      while (!(await node.chain.db.getTxLocation(env.hash))) {
        if (Date.now() > deadline) throw new Error(`not included in 60 s (height ${node.chain.height})`);
        await new Promise((r) => setTimeout(r, 20));
      }
      const subscribe = createApi(node).subscriptions!.tx!;
      const params = [toHex(env.hash)];

      const seen: unknown[] = [];
      subscribe(params, (e) => seen.push(e))();
      const kept: unknown[] = [];
      subscribe(params, (e) => kept.push(e));
      // The kept subscription's first event (a database read) is waited for, not assumed after a
      // fixed pause; the cancelled one had the same time to (wrongly) emit.
      const until = Date.now() + 15_000;
      while (kept.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(seen.length, 0, 'emitted after unsubscribe');
      assert.equal((kept[0] as { status?: string } | undefined)?.status, 'included');

      // The look-up still in flight when the database closes.
      subscribe(params, () => {});
      await node.stop();
      stopped = true;
      await new Promise((r) => setTimeout(r, 100));
    } finally {
      if (!stopped) await node.stop();
    }
  });
});
