import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { encodeAddress, envelopeFromSigned, parseUnc, signTransaction, toHex } from '@unc/core';
import { feeFor, RpcClientError, transferAction, UncClient } from '@unc/sdk';
import fc from 'fast-check';
import { devGenesisJson, devKey, devValidator } from '../src/dev.js';
import { silentLogger } from '../src/log.js';
import { UncNode } from '../src/node.js';
import { DEFAULT_RPC_LIMITS } from '../src/rpc/server.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'unc-node-test-'));
  dirs.push(d);
  return d;
}

async function start(dataDir: string, genesis: unknown): Promise<UncNode> {
  return UncNode.start({
    dataDir,
    genesis,
    validatorSeed: devValidator().seed,
    rpcPort: 0,
    blockTimeMs: 50,
    logger: silentLogger,
  });
}

describe('node', () => {
  test('restart on the same data directory resumes with the same head and state root', async () => {
    const dir = tempDir();
    const genesis = devGenesisJson();
    const node = await start(dir, genesis);
    const client = new UncClient(node.rpcUrl);
    const status = await client.status();
    const k = devKey(1);
    const base = {
      chainId: status.chainId,
      signer: k.publicKey,
      nonce: 0n,
      expiresAt: 1000n,
      actions: [transferAction('unc1vystcnlgdeut2u2v57a0lacv4url68zepr0t34', parseUnc('2'))],
    };
    const params = await client.getParams();
    const stx = signTransaction(
      {
        ...base,
        fee: feeFor(base, {
          minFeePerByte: BigInt(params.minFeePerByte),
          minFeePerAction: BigInt(params.minFeePerAction),
        }),
      },
      k.seed,
    );
    const env = envelopeFromSigned(stx);
    node.submit(env);
    const included = await client.waitForTransaction(toHex(env.hash), 10_000);
    assert.equal(included.status, 'included');
    await node.stop();
    const head = node.chain.head;

    const again = await start(dir, genesis);
    try {
      // The producer may already have added a block; the old head must be unchanged.
      const block = await again.chain.blockAt(head.header.height);
      assert.ok(block);
      assert.equal(toHex(block.header.stateRoot), toHex(head.header.stateRoot));
      assert.ok(again.chain.height >= head.header.height);
      const c2 = new UncClient(again.rpcUrl);
      assert.equal(
        (await c2.getTransaction(toHex(env.hash))).height,
        (included as { height: number }).height,
      );
    } finally {
      await again.stop();
    }
  });

  test('a different genesis for an existing data directory is refused', async () => {
    const dir = tempDir();
    const node = await start(dir, devGenesisJson({ time: new Date('2026-01-01T00:00:00Z') }));
    await node.stop();
    await assert.rejects(
      start(dir, devGenesisJson({ time: new Date('2026-02-01T00:00:00Z') })),
      /genesis file differs/,
    );
  });

  test('unc_getOffers finds the 24 h uptime window once per head, not once per request', async () => {
    const node = await UncNode.start({
      dataDir: tempDir(),
      genesis: devGenesisJson(),
      validatorSeed: devValidator().seed,
      rpcPort: 0,
      blockTimeMs: 20,
      logger: silentLogger,
      rpc: { rateLimitPerSecond: 0 },
    });
    try {
      while (node.chain.height < 40n) await new Promise((r) => setTimeout(r, 20));
      await node.driver.stop(); // the head stays where it is
      const chain = node.chain;
      const blockAt = chain.blockAt.bind(chain);
      let reads = 0;
      chain.blockAt = (h: bigint) => {
        reads++;
        return blockAt(h);
      };
      const client = new UncClient(node.rpcUrl);
      await client.getOffers();
      const first = reads;
      assert.ok(first > 0);
      // Each read is a whole block (up to maxBlockBytes) decoded, for a request of 1 work unit.
      for (let i = 0; i < 5; i++) await client.getOffers();
      assert.equal(reads, first);
    } finally {
      await node.stop();
    }
  });

  test('RPC limits: a big unc_getBlocks batch is cut at the work limit, configurable per node', async () => {
    const node = await UncNode.start({
      dataDir: tempDir(),
      genesis: devGenesisJson(),
      validatorSeed: devValidator().seed,
      rpcPort: 0,
      blockTimeMs: 50,
      logger: silentLogger,
      rpc: { maxWork: 300, rateLimitPerSecond: 0 },
    });
    try {
      while (node.chain.height < 3n) await new Promise((r) => setTimeout(r, 20));
      // The attack: the largest batch of the largest unc_getBlocks requests.
      const batch = Array.from({ length: DEFAULT_RPC_LIMITS.maxBatchSize }, (_, i) => ({
        jsonrpc: '2.0',
        id: i,
        method: 'unc_getBlocks',
        params: [Number(node.chain.height), 100],
      }));
      const res = await fetch(node.rpcUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(batch),
      });
      const text = await res.text();
      const replies = JSON.parse(text) as Array<{
        result?: unknown[];
        error?: { code: number; data: unknown };
      }>;
      assert.equal(replies.length, batch.length);
      assert.equal(replies.filter((r) => Array.isArray(r.result)).length, 3);
      for (const r of replies.slice(3)) assert.deepEqual(r.error?.data, { reason: 'WORK_LIMIT', limit: 300 });
      assert.ok(text.length < DEFAULT_RPC_LIMITS.maxBatchResponseBytes);
      // Every method has its measure: unc_sendTransactions is a unit per 10 transactions.
      const client = new UncClient(node.rpcUrl);
      await assert.rejects(client.call('unc_sendTransactions', [Array(3_010).fill('00')]), /work units/);
      assert.equal(
        (await client.call<unknown[]>('unc_sendTransactions', [Array(3_000).fill('00')])).length,
        3_000,
      );
      assert.ok((await client.call<unknown[]>('unc_getBlocks', [1, 2])).length > 0);
      // unc_getRewards reads up to 1,000 log entries per chip (and an owner's form decodes every
      // chip on chain to find its chips): like unc_getChipEvents with limit 1,000, 100 units a chip.
      const owner = encodeAddress(devKey(1).address);
      const rewards = await fetch(node.rpcUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(
          Array.from({ length: 4 }, (_, i) => ({
            jsonrpc: '2.0',
            id: i,
            method: 'unc_getRewards',
            params: i % 2 ? [owner] : ['ab'.repeat(32)],
          })),
        ),
      });
      const rewardReplies = (await rewards.json()) as Array<{ result?: unknown; error?: { data: unknown } }>;
      assert.equal(rewardReplies.filter((r) => Array.isArray(r.result)).length, 3);
      assert.deepEqual(rewardReplies[3]!.error?.data, { reason: 'WORK_LIMIT', limit: 300 });
    } finally {
      await node.stop();
    }
  });

  test('property: random bytes and random params to the RPC never crash the node; each gets an error', async () => {
    const node = await start(tempDir(), devGenesisJson());
    const client = new UncClient(node.rpcUrl);
    try {
      await fc.assert(
        fc.asyncProperty(fc.uint8Array({ maxLength: 400 }), async (raw) => {
          await assert.rejects(
            client.call('unc_sendTransaction', [toHex(raw)]),
            /DECODE|malformed|invalid|signature|chain|nonce|fee|expired/i,
          );
        }),
        { numRuns: 150 },
      );
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(
            'unc_getBlock',
            'unc_getTransaction',
            'unc_getAccount',
            'unc_sendTransaction',
            'unc_getBlocks',
            'unc_getHeader',
          ),
          fc.jsonValue(),
          async (method, params) => {
            try {
              await client.call(method, params as unknown[]);
            } catch (err) {
              // An RPC error of some kind (InvalidParamsError, NotFoundError, …), never a crash.
              assert.ok(err instanceof RpcClientError, `${method}: ${(err as Error).message}`);
            }
          },
        ),
        { numRuns: 300 },
      );
      const s = await client.status();
      assert.equal(s.mempool.size, 0);
    } finally {
      await node.stop();
    }
  });
});
