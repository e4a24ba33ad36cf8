/**
 * A top-up is decided on the pool's view of a lease, refreshed every few seconds; between a
 * provider's notice and the next refresh, a top-up sent on that view put money into a lease that
 * is ending (the chain takes a top-up into a closing lease). The lease is now read again from the
 * chain inside the transaction queue, right before the top-up goes; a lease found closing is
 * dropped at once. The gateway is real; its node is the small one of `fake-node.ts`.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { Gateway } from '../src/gateway.js';
import { gatewayOptions, listening, mempoolOnlyNode } from './fake-node.js';

const UNC = 10n ** 18n;
const T0 = 1_000_000;

async function waitFor(what: string, probe: () => boolean): Promise<void> {
  const deadline = Date.now() + 30_000; // generous: only a real failure should reach it
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function withPooledLease(
  /** 'notice-during-check': active until the top-up's spend check reads the renter's leases, closing from then. */
  status: 'active' | 'closing' | 'notice-during-check',
  check: (r: { topUps: number; lease: { closing: boolean } }) => void,
): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-topup-'));
  const leaseId = 'dd'.repeat(32);
  const sent: string[] = [];
  let armed = false;
  const state = {
    txStatus: 'pending',
    timeMs: T0,
    get leases() {
      const l = state.lease[leaseId] as { status: string };
      if (armed && status === 'notice-during-check') l.status = 'closing';
      return [];
    },
    lease: {
      [leaseId]: {
        id: leaseId,
        status: status === 'closing' ? 'closing' : 'active',
        pricePerHour: UNC.toString(),
        startTime: T0 - 60_000,
        // The pool saw it active, its escrow running out within the top-up horizon.
        escrowUntil: T0 + 60_000,
        endTime: status === 'closing' ? T0 + 120_000 : T0 + 3 * 3_600_000,
        closedTime: null,
      },
    } as Record<string, unknown>,
  };
  const node = mempoolOnlyNode(sent, state);
  const gw = new Gateway(
    gatewayOptions(await listening(node), dir, {
      renterSeed: new Uint8Array(32).fill(9),
      budgetPerHour: 100n * UNC,
      now: () => T0,
    }),
  );
  try {
    await gw.start();
    const inside = gw as unknown as {
      leases: Map<string, unknown>;
      ticking: boolean;
      topUpLeases(): void;
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
      inFlight: 1,
      lastActiveMs: T0,
      idleClients: [],
      allClients: [],
      ocrModelHash: '',
      modelHashes: new Map(),
      latencies: [],
      answered: 0,
      failed: 0,
      failureStreak: 0,
      // As the last refresh saw it: active.
      closing: false,
      view: {
        ...(state.lease[leaseId] as object),
        status: 'active',
        escrowUntil: T0 + 60_000,
        endTime: T0 + 3 * 3_600_000,
      },
      toppingUp: false,
      topUpRetryAtMs: 0,
    };
    inside.leases.set(leaseId, lease);
    armed = true;
    inside.topUpLeases();
    assert.equal(lease.toppingUp, true, 'a top-up is decided on the pool view');
    await waitFor('the top-up to settle', () => !lease.toppingUp);
    check({ topUps: gw.store.fees().filter((f) => f.kind === 'topUpLease').length, lease });
    lease.inFlight = 0;
  } finally {
    await gw.stop();
    await new Promise<void>((r) => node.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('a top-up decided before the provider gave notice', () => {
  test('is not sent once the chain shows the lease closing; the lease leaves the pool at once', async () => {
    await withPooledLease('closing', ({ topUps, lease }) => {
      // Before: the top-up went out into the closing lease.
      assert.equal(topUps, 0, 'no top-up into a closing lease');
      assert.equal(lease.closing, true, 'the lease is dropped from the pool at once');
    });
  });

  test('is not sent when the notice lands while the top-up’s spend check reads the chain', async () => {
    await withPooledLease('notice-during-check', ({ topUps, lease }) => {
      // Before: the lease was read before the spend check, which reads the chain for a while
      // (the leases, every pending fee's status); a notice in that time went unseen.
      assert.equal(topUps, 0, 'no top-up into a lease that went closing during the check');
      assert.equal(lease.closing, true);
    });
  });

  test('is sent while the chain shows the lease active', async () => {
    await withPooledLease('active', ({ topUps, lease }) => {
      assert.equal(topUps, 1);
      assert.equal(lease.closing, false);
    });
  });
});
