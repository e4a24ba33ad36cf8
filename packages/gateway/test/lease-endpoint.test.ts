/**
 * The gateway sends a lease's jobs to the endpoint it recorded for the lease (the one in the offer
 * terms it signed), never to another its node reports later. A hostile node naming its own server
 * for a lease would get every input, and could answer with receipts of a chip key it reports too.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Gateway } from '../src/gateway.js';
import { gatewayOptions, listening, mempoolOnlyNode, oneLeaseNode } from './fake-node.js';

const UNC = 10n ** 18n;

describe('a lease’s endpoint is the one recorded, not the node’s later word', () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-lease-endpoint-'));
  let attackerHits = 0;
  const attacker = createServer((_req, res) => {
    attackerHits++;
    res.writeHead(500).end();
  });
  const t0 = 1_000_000_000;
  let gw: Gateway | undefined;
  const sent: string[] = [];
  let nodeServer: ReturnType<typeof mempoolOnlyNode> | undefined;
  before(async () => {
    const attackerUrl = await listening(attacker);
    const { leaseId, state } = oneLeaseNode(t0, attackerUrl);
    nodeServer = mempoolOnlyNode(sent, state);
    gw = new Gateway(gatewayOptions(await listening(nodeServer), dir, { now: () => t0 }));
    // Recorded by an earlier run, at the endpoint of the terms it signed.
    gw.store.putLease({
      leaseId,
      offerId: 'aa'.repeat(32),
      chipId: 'bb'.repeat(32),
      provider: 'unc1provider',
      endpoint: 'http://127.0.0.1:1',
      pricePerHour: UNC.toString(),
      noticeMs: 60_000,
      openedMs: t0 - 60_000,
      closedMs: null,
      closeReason: null,
    });
  });
  after(async () => {
    await gw?.stop();
    await new Promise<void>((r) => attacker.close(() => r()));
    await new Promise<void>((r) => nodeServer?.close(() => r()) ?? r());
    rmSync(dir, { recursive: true, force: true });
  });

  test('a node reporting the lease at another endpoint gets nothing sent there', async () => {
    await gw!.start();
    assert.equal(attackerHits, 0, 'the endpoint the node reported was contacted');
    const pool = (gw as unknown as { leases: Map<string, unknown> }).leases;
    assert.equal(pool.size, 0, 'the lease is not in the pool');
  });
});
