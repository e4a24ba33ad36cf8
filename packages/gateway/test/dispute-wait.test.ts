/**
 * The chain takes a dispute only once its block time has passed the request's timestamp + the
 * dispute wait (the provider's time to answer), and only on a lease its renter kept running
 * through that wait: a lease opened, disputed and closed in one block no longer buries a provider.
 * The gateway, which disputes a request that got no answer and then drops the lease, must hold
 * the dispute until the chain's time has passed the wait and close the lease only after it, or its
 * disputes are refused. The gateway is real; its node is the small one of `fake-node.ts`.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { decode, fromHex, signedTransactionCodec } from '@unc/core';
import { encodeSignedJobRequest } from '@unc/sdk';
import { Gateway } from '../src/gateway.js';
import { mempoolOnlyNode } from './fake-node.js';

const UNC = 10n ** 18n;
const T0 = 1_000_000;
const WAIT = 120_000;

async function waitFor(what: string, probe: () => boolean): Promise<void> {
  const deadline = Date.now() + 30_000; // generous: only a real failure should reach it
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('a dispute of a request that got no answer', () => {
  test('is sent once the chain’s time has passed the wait, and the lease is closed only after it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-dispute-'));
    const leaseId = 'dd'.repeat(32);
    const sent: string[] = [];
    const state = { txStatus: 'pending', timeMs: T0, params: { disputeWaitMs: WAIT } };
    const node = mempoolOnlyNode(sent, state);
    await new Promise<void>((r) => node.listen(0, '127.0.0.1', r));
    const gw = new Gateway({
      nodeUrl: `http://127.0.0.1:${(node.address() as AddressInfo).port}`,
      renterSeed: new Uint8Array(32).fill(9),
      budgetPerHour: 100n * UNC,
      models: [{ name: 'ocr' }],
      dbPath: join(dir, 'g.db'),
      allowHttp: true,
      inclusionWaitMs: 300,
      port: 0,
      tickMs: 3_600_000,
      targets: { minLeases: 0 },
      now: () => T0,
    });
    try {
      await gw.start();
      const inside = gw as unknown as {
        leases: Map<string, unknown>;
        ticking: boolean;
        chainTime: { blockMs: number; readMs: number };
        dispute(lease: unknown, jobId: string, requestHex: string, reason: string): void;
        dropLease(lease: unknown, reason: string): void;
        sendDueDisputes(): void;
      };
      await waitFor('the first tick', () => !inside.ticking);
      const lease = {
        row: {
          leaseId,
          offerId: 'aa'.repeat(32),
          chipId: 'bb'.repeat(32),
          provider: 'unc1provider',
          endpoint: 'http://127.0.0.1:1',
          pricePerHour: UNC.toString(),
          noticeMs: 60_000,
          openedMs: T0 - 60_000,
          closedMs: null,
          closeReason: null,
        },
        price: UNC,
        slots: 1,
        inFlight: 0,
        lastActiveMs: T0,
        idleClients: [],
        allClients: [],
        ocrModelHash: '',
        modelHashes: new Map(),
        latencies: [],
        answered: 0,
        failed: 0,
        failureStreak: 0,
        closing: false,
        escrowUntilMs: T0 + 3 * 3_600_000,
        endTimeMs: T0 + 3 * 3_600_000,
        toppingUp: false,
        topUpRetryAtMs: 0,
      };
      inside.leases.set(leaseId, lease);
      const requestHex = encodeSignedJobRequest({
        request: {
          chainId: 'unc-inclusion-test',
          leaseId: fromHex(leaseId, 32),
          method: 'POST',
          path: '/v1/jobs',
          bodyHash: new Uint8Array(32).fill(1),
          timestampMs: BigInt(T0 - 1_000),
          nonce: 1n,
        },
        signature: new Uint8Array(64),
      });
      // What an attempt that got no answer does: dispute, then avoid the provider (drop its lease).
      inside.dispute(lease, 'job-1', requestHex, 'no answer: timeout');
      inside.dropLease(lease, 'provider avoided');
      // The actions the node was handed, in the order it got them.
      const kinds = () =>
        sent.flatMap((hex) => decode(signedTransactionCodec, fromHex(hex)).tx.actions.map((a) => a.type));
      // Before: the dispute went at once (the chain now refuses it, DISPUTE_TOO_EARLY) and the lease
      // was closed right after (and a closed-too-soon lease takes no dispute at all).
      await new Promise((r) => setTimeout(r, 500));
      assert.deepEqual(kinds(), [], 'nothing sent before the wait has passed');
      assert.ok(inside.leases.has(leaseId), 'the lease is kept open for its dispute');
      // One block time short of the wait: still nothing.
      inside.chainTime = { blockMs: T0 - 1_000 + WAIT - 1, readMs: T0 };
      inside.sendDueDisputes();
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(kinds(), []);
      // The chain's time has passed it: the dispute goes, then the lease is closed.
      inside.chainTime = { blockMs: T0 - 1_000 + WAIT, readMs: T0 };
      inside.sendDueDisputes();
      await waitFor('the dispute and the close', () => kinds().length === 2);
      assert.deepEqual(kinds(), ['dispute', 'closeLease']);
      assert.equal(gw.store.disputes()[0]?.leaseId, leaseId, 'recorded (this node never includes it)');
      assert.ok(!inside.leases.has(leaseId));
    } finally {
      await gw.stop();
      await new Promise<void>((r) => node.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
