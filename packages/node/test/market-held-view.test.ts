/**
 * The node's view of a closed lease whose last period is held (core market/settle.ts: a challenge
 * was still open at its close). Its record is settled only through its previous settlement until
 * the held period is split, W blocks later; the view's `escrowUntil` of a closed lease is "paid
 * through", which the gateway's spend history (policy.ts spendLeases) counts the lease's cost to.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  costThrough,
  HOUR_MS,
  type Lease,
  LeaseStatus,
  MemoryState,
  putLease,
  StateOverlay,
} from '@unc/core';
import { marketMethods } from '../src/market-api.js';

const id = new Uint8Array(32).fill(7);
const price = 10n ** 18n;

/** A 2-hour lease closed by its renter after 1 h, its last settlement at its start (epoch start). */
function heldLease(): Lease {
  const closedTime = 1_000_000n + HOUR_MS;
  const held = costThrough(price, 1_000_000n, closedTime);
  const deposited = 2n * price;
  return {
    id,
    offerId: new Uint8Array(32).fill(1),
    chipId: new Uint8Array(32).fill(2),
    provider: new Uint8Array(20).fill(3),
    renter: new Uint8Array(20).fill(4),
    renterPublicKey: new Uint8Array(32).fill(5),
    pricePerHour: price,
    hours: 2,
    startHeight: 10n,
    startTime: 1_000_000n,
    endTime: 1_000_000n + 2n * HOUR_MS,
    deposited,
    accrued: 0n,
    paid: 0n,
    refunded: deposited - held,
    remaining: held,
    settledTime: 1_000_000n,
    slotCursor: 70n,
    slotsAnswered: 1n,
    slotsMissed: 0n,
    status: LeaseStatus.closed,
    closingReason: '',
    closedHeight: 71n,
    closedTime,
    closedReason: 'renterClosed',
    disputes: 0,
  };
}

describe('the view of a closed lease whose last period is held', () => {
  test('attack: it is paid through its close, not its previous settlement (a gateway would count an hour less spent)', async () => {
    const state = new StateOverlay(new MemoryState());
    const l = heldLease();
    putLease(state, l);
    const chain = { state, height: 80n, head: { header: { time: l.closedTime + 5_000n } } };
    const node = { chain } as unknown as Parameters<typeof marketMethods>[0];
    const view = (await marketMethods(node).unc_getLease({ id }, node as never)) as {
      escrowUntil: number;
      remaining: string;
      status: string;
    };
    assert.equal(view.status, 'closed');
    assert.equal(view.remaining, l.remaining.toString(), 'the held cost shows as remaining');
    assert.equal(view.escrowUntil, Number(l.closedTime));
  });
});
