/**
 * The gateway signs for the chain it started on. Every transaction reads the node's status again
 * to build it; a node that reports another chain id later (where the same renter key may hold
 * funds) gets nothing signed. The gateway is real; its node is the tests' small JSON-RPC server.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Gateway, type GatewayOptions } from '../src/gateway.js';
import { gatewayOptions, listening, mempoolOnlyNode } from './fake-node.js';

const UNC = 10n ** 18n;

describe('a node that reports another chain id after the gateway started', () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-chain-'));
  const sent: string[] = [];
  const state: { txStatus: string; chainId?: string } = { txStatus: 'pending' };
  const node = mempoolOnlyNode(sent, state);
  let gw: Gateway;
  before(async () => {
    gw = new Gateway(
      gatewayOptions(await listening(node), dir, {
        budgetPerHour: 10n * UNC,
      }),
    );
    await gw.start();
    const inside = gw as unknown as { ticking: boolean };
    const deadline = Date.now() + 60_000;
    while (inside.ticking) {
      if (Date.now() > deadline) throw new Error("the gateway's first tick did not end in 60 s");
      await new Promise((r) => setTimeout(r, 20));
    }
  });
  after(async () => {
    await gw.stop();
    await new Promise<void>((r) => node.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  test('gets no lease opening signed; the chain it started on does', async () => {
    state.chainId = 'unc-mainnet';
    await gw.openLease('after the switch');
    assert.equal(sent.length, 0, 'nothing signed for a chain the gateway did not start on');
    delete state.chainId;
    await gw.openLease('same chain');
    assert.equal(sent.length, 1);
  });
});

test('a gateway given the chain its key was unlocked for refuses to start on a node that now names another', async () => {
  // `unc gateway start` checks the home's chain pin against one status read; the gateway then reads
  // the status again and signs every lease for that answer. A node that named the pinned chain for
  // the unlock and mainnet here would have the renter's deposits signed for mainnet.
  const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-chain-start-'));
  const sent: string[] = [];
  const node = mempoolOnlyNode(sent, { txStatus: 'pending', chainId: 'unc-mainnet' });
  const options: Omit<GatewayOptions, 'dbPath'> = {
    nodeUrl: await listening(node),
    renterSeed: new Uint8Array(32).fill(7),
    budgetPerHour: 10n * UNC,
    models: [{ name: 'ocr' }],
    allowHttp: true,
    port: 0,
    tickMs: 3_600_000,
    targets: { minLeases: 0 },
  };
  try {
    const gw = new Gateway({ ...options, dbPath: join(dir, 'a.db'), chainId: 'unc-testnet' });
    try {
      await assert.rejects(gw.start(), (err: unknown) => (err as { code?: string }).code === 'CHAIN_CHANGED');
    } finally {
      await gw.stop().catch(() => {});
    }
    assert.equal(sent.length, 0);
    // The chain it was unlocked for: it starts.
    const same = new Gateway({ ...options, dbPath: join(dir, 'b.db'), chainId: 'unc-mainnet' });
    await same.start();
    await same.stop();
  } finally {
    await new Promise<void>((r) => node.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  }
});
