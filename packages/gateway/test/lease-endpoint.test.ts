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

// An opening sent by a previous run and seen included only now (settleOpens) was recorded at the
// endpoint the node reported for its lease; if its close did not land before a restart, the next
// run adopted it there and sent it jobs.
describe('a lease opening seen late is never recorded at the node’s endpoint', () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-late-endpoint-'));
  let attackerHits = 0;
  const attacker = createServer((_req, res) => {
    attackerHits++;
    res.writeHead(500).end();
  });
  const t0 = 1_000_000_000;
  const servers: { close(cb: () => void): void }[] = [];
  after(async () => {
    for (const s of [attacker, ...servers]) await new Promise<void>((r) => s.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  test('recorded without an endpoint, refused and closed at the restart, nothing sent there', async () => {
    const attackerUrl = await listening(attacker);
    const { leaseId, state } = oneLeaseNode(t0, attackerUrl, 'ee'.repeat(32));
    Object.assign(state.lease[leaseId] as object, {
      offerId: 'aa'.repeat(32),
      chipId: 'bb'.repeat(32),
      provider: 'unc1provider',
    });
    const nodeState = {
      ...state,
      txStatus: 'included',
      txEvents: [{ type: 'leaseOpened', leaseId, offerId: 'aa'.repeat(32), chipId: 'bb'.repeat(32) }],
    };
    const node = mempoolOnlyNode([], nodeState);
    servers.push(node);
    const nodeUrl = await listening(node);
    const first = new Gateway(gatewayOptions(nodeUrl, dir, { now: () => t0 }));
    first.store.addPendingOpen({
      txHash: '01'.repeat(32),
      pricePerHour: UNC.toString(),
      expiresAt: '100',
      noticeMs: 60_000,
    });
    try {
      await first.start();
      await (first as unknown as { settleOpens(h: number | null): Promise<void> }).settleOpens(5);
      const row = first.store.leases().find((r) => r.leaseId === leaseId);
      assert.ok(row, 'the late lease is recorded');
      assert.notEqual(row.endpoint, attackerUrl, 'recorded at the endpoint the node reported');
    } finally {
      await first.stop();
    }
    // Its close never landed (the node never reports one included): the next run finds it open.
    const again = new Gateway(gatewayOptions(nodeUrl, dir, { now: () => t0 }));
    try {
      await again.start();
      assert.equal(attackerHits, 0, 'the restart sent to the endpoint the node reported');
      const pool = (again as unknown as { leases: Map<string, unknown> }).leases;
      assert.equal(pool.has(leaseId), false, 'the lease is not in the pool');
    } finally {
      await again.stop();
    }
  });
});

// The lease id of a new opening is the node's word: one naming a lease the gateway recorded
// already had that row replaced, its endpoint moved to the new offer's (a closed one reopened).
describe('a new lease the node names by a recorded lease’s id', () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-lease-id-taken-'));
  const t0 = 1_000_000_000;
  let node: ReturnType<typeof mempoolOnlyNode> | undefined;
  after(async () => {
    await new Promise<void>((r) => node?.close(() => r()) ?? r());
    rmSync(dir, { recursive: true, force: true });
  });

  test('leaves the recorded lease as it was', async () => {
    const { leaseId, state } = oneLeaseNode(t0, 'http://127.0.0.1:1');
    Object.assign(state.lease[leaseId] as object, {
      offerId: 'aa'.repeat(32),
      chipId: 'bb'.repeat(32),
      provider: 'unc1provider',
    });
    node = mempoolOnlyNode([], state);
    const gw = new Gateway(gatewayOptions(await listening(node), dir, { now: () => t0 }));
    const recorded = {
      leaseId,
      offerId: 'cc'.repeat(32),
      chipId: 'ee'.repeat(32),
      provider: 'unc1other',
      endpoint: 'https://other-provider.invalid',
      pricePerHour: UNC.toString(),
      noticeMs: 60_000,
      openedMs: t0 - 3_600_000,
      closedMs: t0 - 60_000,
      closeReason: 'closed by the renter',
    };
    gw.store.putLease(recorded);
    try {
      await gw.start();
      // The node reports the opening included, with a lease id of the one recorded.
      (gw as unknown as { sendTx: unknown }).sendTx = async (
        _actions: unknown,
        _kind: string,
        opts: { onAllowed?: () => void; onSending?: (hash: string, expiresAt: bigint) => void },
      ) => {
        opts.onAllowed?.();
        opts.onSending?.('02'.repeat(32), 100n);
        return {
          events: [{ type: 'leaseOpened', leaseId, offerId: 'aa'.repeat(32), chipId: 'bb'.repeat(32) }],
        };
      };
      await gw.openLease('test');
      const row = gw.store.leases().find((r) => r.leaseId === leaseId);
      assert.deepEqual(row, recorded, 'the recorded lease was replaced');
    } finally {
      await gw.stop();
    }
  });
});

// The chip of a new lease is the one the opening named (the chain leases exactly that chip), not
// the node's report of the lease: receipts are checked against the recorded chip (with `--prove`,
// its key proven), so a node naming another chip had receipts of a chip the renter never leased
// (the provider's cheaper one) pass as the leased chip's.
describe('a new lease the node reports on another chip, offer or provider than the opening signed', () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-lease-chip-'));
  const t0 = 1_000_000_000;
  let node: ReturnType<typeof mempoolOnlyNode> | undefined;
  after(async () => {
    await new Promise<void>((r) => node?.close(() => r()) ?? r());
    rmSync(dir, { recursive: true, force: true });
  });

  test('is recorded as signed: its chip, offer and provider', async () => {
    const leaseId = '9a'.repeat(32);
    const { state } = oneLeaseNode(t0, 'http://127.0.0.1:1', leaseId);
    // The offer's chip (the one the opening names) is bb…; the node says the lease is on ff…, of
    // another offer and provider (an honest one, banned for the liar's bad receipts).
    Object.assign(state.lease[leaseId] as object, {
      offerId: 'cc'.repeat(32),
      chipId: 'ff'.repeat(32),
      provider: 'unc1honestcompetitor',
    });
    node = mempoolOnlyNode([], state);
    const gw = new Gateway(gatewayOptions(await listening(node), dir, { now: () => t0 }));
    try {
      await gw.start();
      const named: string[] = [];
      (gw as unknown as { sendTx: unknown }).sendTx = async (
        actions: { type: string; chipId?: Uint8Array | null }[],
        kind: string,
        opts: { onAllowed?: () => void; onSending?: (hash: string, expiresAt: bigint) => void },
      ) => {
        if (kind !== 'openLease') return { events: [] };
        for (const a of actions) if (a.chipId) named.push(Buffer.from(a.chipId).toString('hex'));
        opts.onAllowed?.();
        opts.onSending?.('03'.repeat(32), 100n);
        return {
          events: [{ type: 'leaseOpened', leaseId, offerId: 'aa'.repeat(32), chipId: 'ff'.repeat(32) }],
        };
      };
      await gw.openLease('test');
      assert.deepEqual(named, ['bb'.repeat(32)], 'the opening names the offer’s chip');
      const row = gw.store.leases().find((r) => r.leaseId === leaseId);
      assert.ok(row, 'the lease is recorded');
      assert.equal(row.chipId, 'bb'.repeat(32), 'recorded on the chip the node reported');
      assert.equal(row.provider, 'unc1qurswpc8qurswpc8qurswpc8qurswpc8v77tvl', 'the provider the node named');
      assert.equal(row.offerId, 'aa'.repeat(32), 'the offer the node named');
    } finally {
      await gw.stop();
    }
  });
});
