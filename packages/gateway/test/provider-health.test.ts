/**
 * What a provider says about itself in `GET /v1/health` is its own word. Its job concurrency set
 * how many jobs the gateway sent it at once, unchecked: a provider claiming 1e9 got every queued
 * job at once (300 in flight, each a new connection), answered none, and each became a timeout and
 * a dispute. The numbers are now checked and capped on the gateway's side (policy.ts, leaseSlots).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { Gateway } from '../src/gateway.js';
import { DEFAULT_MAX_SLOTS_PER_LEASE, leaseSlots } from '../src/policy.js';
import { gatewayOptions, listening, mempoolOnlyNode, oneLeaseNode } from './fake-node.js';

const UNC = 10n ** 18n;
const T0 = 1_000_000;

describe('lease slots from a provider health answer', () => {
  test('an honest provider gets its concurrency, within its per-renter limit', () => {
    assert.equal(leaseSlots({ concurrency: 2, maxJobsPerRenter: 16 }), 2);
    assert.equal(leaseSlots({ concurrency: 8, maxJobsPerRenter: 4 }), 4);
    assert.equal(leaseSlots({ concurrency: 4 }), 4);
  });

  test('huge, fractional, negative and non-number claims give at most the cap, and at least 1', () => {
    assert.equal(leaseSlots({ concurrency: 1e9, maxJobsPerRenter: 1e9 }), DEFAULT_MAX_SLOTS_PER_LEASE);
    assert.equal(leaseSlots({ concurrency: 'many', maxJobsPerRenter: 16 }), 1);
    assert.equal(leaseSlots({ concurrency: Number.NaN, maxJobsPerRenter: Number.NaN }), 1);
    assert.equal(leaseSlots({ concurrency: 2.5 }), 1);
    assert.equal(leaseSlots({ concurrency: -3, maxJobsPerRenter: 0 }), 1);
    assert.equal(leaseSlots({}), 1);
    fc.assert(
      fc.property(fc.anything(), fc.anything(), (concurrency, maxJobsPerRenter) => {
        const n = leaseSlots({ concurrency, maxJobsPerRenter });
        return Number.isSafeInteger(n) && n >= 1 && n <= DEFAULT_MAX_SLOTS_PER_LEASE;
      }),
    );
  });

  test("the operator's slotsPerLease is used, but never past the provider's per-renter limit", () => {
    assert.equal(leaseSlots({ concurrency: 1e9, maxJobsPerRenter: 1e9 }, 32), 32);
    assert.equal(leaseSlots({ concurrency: 2, maxJobsPerRenter: 8 }, 32), 8);
    assert.equal(leaseSlots({ concurrency: 'x', maxJobsPerRenter: 'x' }, 4), 4);
  });

  test('an slotsPerLease that is not a positive safe integer is not taken', () => {
    // NaN made the slot count NaN (no job ever sent); 0 or 2.5 are no count either.
    for (const bad of [Number.NaN, 0, -2, 2.5, Number.POSITIVE_INFINITY, 2 ** 60])
      assert.equal(leaseSlots({ concurrency: 2, maxJobsPerRenter: 16 }, bad), 2, `slotsPerLease ${bad}`);
    fc.assert(
      fc.property(fc.anything(), fc.anything(), fc.double(), (concurrency, maxJobsPerRenter, slots) => {
        const n = leaseSlots({ concurrency, maxJobsPerRenter }, slots);
        return Number.isSafeInteger(n) && n >= 1;
      }),
    );
  });
});

test('a provider that claims a huge concurrency gets no more jobs at once than the cap', {
  timeout: 60_000,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-gw-health-'));
  const held: ServerResponse[] = [];
  const provider = createServer((req, res) => {
    if (req.url === '/v1/health') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          ok: true,
          chainId: 'x',
          chips: [],
          ocrModelHash: 'cc'.repeat(32),
          executionProvider: 'cpu',
          queue: { running: 0, queued: 0, concurrency: 1e9, maxQueued: 1e9 },
          limits: { maxBodyBytes: 1 << 24, maxModelBytes: 1 << 24, maxJobsPerRenter: 1e9 },
        }),
      );
      return;
    }
    req.resume();
    held.push(res); // never answered
  });
  const endpoint = await listening(provider);
  const { leaseId, state } = oneLeaseNode(T0, endpoint);
  const node = mempoolOnlyNode([], state);
  const gw = new Gateway(
    gatewayOptions(await listening(node), dir, {
      renterSeed: new Uint8Array(32).fill(9),
      budgetPerHour: 100n * UNC,
      attemptTimeoutMs: 30_000,
      now: () => T0,
    }),
  );
  try {
    await gw.start();
    const inside = gw as unknown as {
      adopt(row: unknown, lease: unknown): Promise<void>;
      leases: Map<string, { slots: number; inFlight: number }>;
    };
    await inside.adopt(
      {
        leaseId,
        offerId: 'aa'.repeat(32),
        chipId: 'bb'.repeat(32),
        provider: 'unc1provider',
        endpoint,
        pricePerHour: UNC.toString(),
        noticeMs: 60_000,
        openedMs: T0 - 60_000,
        closedMs: null,
        closeReason: null,
      },
      state.lease[leaseId],
    );
    const lease = inside.leases.get(leaseId)!;
    // Each submission routes at once (pump): with the provider's word taken, all 300 went out.
    for (let i = 0; i < 300; i++) gw.submit({ model: 'ocr', image: 'iVBORw0KGgo=' }, null);
    assert.equal(lease.inFlight, DEFAULT_MAX_SLOTS_PER_LEASE);
    assert.equal(lease.slots, DEFAULT_MAX_SLOTS_PER_LEASE);
  } finally {
    for (const r of held) r.destroy();
    await gw.stop();
    await new Promise<void>((r) => node.close(() => r()));
    await new Promise<void>((r) => provider.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  }
});
