/**
 * `unc market dispute` sends no dispute past the lease's allowance (one per disputeWaitMs of lease
 * time its renter kept and paid for): it waits for the next one while the running lease still earns
 * it, and refuses with TOO_MANY_DISPUTES, before signing anything, when the lease can earn no more.
 * Before, it sent the dispute and the chain refused it (or, under the old rule, recorded 16).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { UncError } from '@unc/core';
import type { LeaseJson, UncClient } from '@unc/sdk';
import { untilDisputable } from '../src/commands/market.js';
import type { Context } from '../src/context.js';

const HOUR = 3_600_000;
const WAIT = 10_000;
const T0 = 1_700_000_000_000;
const UNC = 10n ** 18n;

function lease(over: Partial<LeaseJson>): LeaseJson {
  return {
    id: 'aa'.repeat(32),
    pricePerHour: UNC.toString(),
    hours: 1,
    deposit: UNC.toString(),
    status: 'active',
    startTime: T0,
    endTime: T0 + 3_600_000,
    disputes: 0,
    closedTime: null,
    closedReason: null,
    ...over,
  } as LeaseJson;
}

/** A node whose block time is each of `times` in turn (the last one from then on). */
function ctxOf(l: LeaseJson, times: number[]): { ctx: Context; reads: () => number } {
  let reads = 0;
  const client = {
    getParams: async () => ({ disputeWaitMs: WAIT }),
    status: async () => ({ timeMs: times[Math.min(reads++, times.length - 1)] }),
    getLease: async () => l,
  };
  return { ctx: { client: () => client as unknown as UncClient } as unknown as Context, reads: () => reads };
}

describe('unc market dispute and the lease’s dispute allowance', () => {
  test('a lease its renter closed after three waits takes three disputes, then nothing is sent', async () => {
    const closed = lease({
      status: 'closed',
      closedTime: T0 + 3 * WAIT + 500,
      closedReason: 'renterClosed',
      disputes: 3,
    });
    const { ctx } = ctxOf(closed, [T0 + HOUR]);
    await assert.rejects(
      untilDisputable(ctx, closed.id, BigInt(T0)),
      (err: unknown) =>
        err instanceof UncError && err.code === 'TOO_MANY_DISPUTES' && /nothing was sent/.test(err.message),
    );
    // With one fewer recorded, it goes at once.
    await untilDisputable(ctxOf({ ...closed, disputes: 2 }, [T0 + HOUR]).ctx, closed.id, BigInt(T0));
  });

  test('a running lease whose allowance is used waits for the next wait of lease time, not more', async () => {
    // Just short of three waits: two allowed, two recorded; the third from T0 + 3 waits (block time).
    const running = lease({ disputes: 2 });
    const { ctx, reads } = ctxOf(running, [T0 + 3 * WAIT - 100, T0 + 3 * WAIT]);
    await untilDisputable(ctx, running.id, BigInt(T0));
    assert.equal(reads(), 2, 'it read the chain again once the next dispute was due');
  });
});
