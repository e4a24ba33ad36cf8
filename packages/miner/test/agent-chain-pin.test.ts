// `unc miner start` checks the home's chain pin against one status read; the agent then reads the
// status again and signs every transaction and answer for that second answer. A node that named the
// pinned chain for the unlock and another chain here would have the owner's key sign for it.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { MinerAgent } from '../src/agent/agent.js';

test('the miner agent refuses to start on a node that names another chain than its key was unlocked for', async () => {
  let txs = 0;
  const node = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      const call = JSON.parse(body) as { id: number; method: string };
      if (call.method !== 'unc_status') txs++;
      const result =
        call.method === 'unc_status'
          ? { chainId: 'unc-mainnet', height: 5, timeMs: 1_000_000, time: '' }
          : null;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ jsonrpc: '2.0', id: call.id, result }));
    });
  });
  await new Promise<void>((r) => node.listen(0, '127.0.0.1', r));
  const agent = new MinerAgent({
    nodeUrl: `http://127.0.0.1:${(node.address() as AddressInfo).port}`,
    ownerSeed: new Uint8Array(32).fill(3),
    chainId: 'unc-testnet',
    chips: [],
  });
  try {
    await assert.rejects(
      agent.start(),
      (err: unknown) => (err as { code?: string }).code === 'CHAIN_CHANGED',
    );
    assert.equal(txs, 0, 'nothing asked of the node past its status');
  } finally {
    await agent.stop().catch(() => {});
    await new Promise<void>((r) => node.close(() => r()));
  }
});
