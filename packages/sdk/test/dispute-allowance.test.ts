/**
 * `leaseDisputeAllowance` reads the chain's dispute allowance (one dispute per disputeWaitMs of
 * lease time its renter kept and paid for, at least one) off a lease as the node shows it, so the
 * CLI and the gateway send no dispute the chain would refuse (TOO_MANY_DISPUTES).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { disputeAllowance, type Lease, LeaseStatus } from '@unc/core';
import fc from 'fast-check';
import { type LeaseJson, leaseDisputeAllowance } from '../src/index.js';

const HOUR = 3_600_000;
const WAIT = 300_000;
const T0 = 1_700_000_000_000;
const UNC = 10n ** 18n;

function leaseJson(over: Partial<LeaseJson> = {}): LeaseJson {
  return {
    id: 'aa'.repeat(32),
    offerId: 'bb'.repeat(32),
    chipId: 'cc'.repeat(32),
    provider: 'unc1provider',
    renter: 'unc1renter',
    renterPublicKey: 'dd'.repeat(32),
    endpoint: 'http://127.0.0.1:1',
    tlsFingerprints: [],
    pricePerHour: UNC.toString(),
    hours: 2,
    deposit: (2n * UNC).toString(),
    paid: '0',
    refunded: '0',
    remaining: (2n * UNC).toString(),
    unsettled: '0',
    escrowUntil: T0 + 2 * HOUR,
    status: 'active',
    startHeight: 1,
    startTime: T0,
    endTime: T0 + 2 * HOUR,
    settledTime: T0,
    slotsAnswered: 0,
    slotsMissed: 0,
    closingReason: null,
    disputes: 0,
    closedHeight: null,
    closedTime: null,
    closedReason: null,
    ...over,
  };
}

describe('leaseDisputeAllowance', () => {
  test('one per wait kept so far, at least one, and when the next comes', () => {
    const l = leaseJson();
    assert.deepEqual(leaseDisputeAllowance(l, T0 + WAIT - 1, WAIT), {
      allowed: 1,
      keptUntilMs: T0 + 2 * HOUR,
      nextAtMs: T0 + 2 * WAIT,
    });
    assert.equal(leaseDisputeAllowance(l, T0 + HOUR + 1, WAIT).allowed, 12);
    // Past its booked end the allowance grows no more.
    const after = leaseDisputeAllowance(l, T0 + 5 * HOUR, WAIT);
    assert.equal(after.allowed, 24);
    assert.equal(after.nextAtMs, null);
  });

  test("the renter's own close and an escrow that runs out stop it; the provider's close, one wait after it", () => {
    const closedAt = T0 + 3 * WAIT + 1_000;
    const renterClosed = leaseJson({ status: 'closed', closedTime: closedAt, closedReason: 'renterClosed' });
    assert.deepEqual(leaseDisputeAllowance(renterClosed, T0 + HOUR, WAIT), {
      allowed: 3,
      keptUntilMs: closedAt,
      nextAtMs: null,
    });
    const providerClosed = leaseJson({
      status: 'closed',
      closedTime: closedAt,
      closedReason: 'providerClosed',
    });
    // Its requests' response wait still counts, the rest of the booking (refunded) does not.
    assert.deepEqual(leaseDisputeAllowance(providerClosed, T0 + HOUR, WAIT), {
      allowed: 4,
      keptUntilMs: closedAt + WAIT,
      nextAtMs: null,
    });
    const noticed = leaseJson({ status: 'closing', endTime: closedAt, closingReason: 'providerClosed' });
    assert.equal(leaseDisputeAllowance(noticed, T0 + 3 * WAIT, WAIT).nextAtMs, T0 + 4 * WAIT);
    assert.equal(leaseDisputeAllowance(noticed, T0 + HOUR, WAIT).allowed, 4);
    // Half an hour of escrow (pay-as-you-go): six waits.
    const short = leaseJson({ deposit: (UNC / 2n).toString() });
    assert.equal(leaseDisputeAllowance(short, T0 + HOUR, WAIT).allowed, 6);
  });

  test("property: over the view the node shows, it is the chain's allowance, and grows at nextAtMs", () => {
    const reasons = [
      'renterClosed',
      'providerClosed',
      'offerClosed',
      'chipUnavailable',
      'escrowExhausted',
      'ended',
    ];
    fc.assert(
      fc.property(
        fc.record({
          hours: fc.integer({ min: 1, max: 48 }),
          price: fc.bigInt({ min: 1n, max: 10n ** 20n }),
          // The deposit as a share of the full booking, in per mille (some pay-as-you-go).
          share: fc.integer({ min: 1, max: 1500 }),
          // The end time: the booked end, or cut short by a provider's notice.
          cutMs: fc.option(fc.integer({ min: 0, max: 48 * HOUR }), { nil: null }),
          closed: fc.option(
            fc.record({ atMs: fc.integer({ min: 0, max: 50 * HOUR }), reason: fc.constantFrom(...reasons) }),
            { nil: null },
          ),
          atMs: fc.integer({ min: 0, max: 60 * HOUR }),
          wait: fc.integer({ min: 1_000, max: 2 * HOUR }),
        }),
        ({ hours, price, share, cutMs, closed, atMs, wait }) => {
          const start = BigInt(T0);
          const booked = start + BigInt(hours * HOUR);
          const deposited = (price * BigInt(hours) * BigInt(share)) / 1000n + 1n;
          const endTime = cutMs !== null && start + BigInt(cutMs) < booked ? start + BigInt(cutMs) : booked;
          const lease = {
            startTime: start,
            hours,
            pricePerHour: price,
            deposited,
            endTime,
            status: closed ? LeaseStatus.closed : LeaseStatus.active,
            closedReason: closed?.reason ?? '',
            closedTime: closed ? start + BigInt(closed.atMs) : 0n,
          } satisfies Partial<Lease>;
          // As unc_getLease shows it (node market-api leaseJson): closed fields only once closed.
          const view = leaseJson({
            pricePerHour: price.toString(),
            hours,
            deposit: deposited.toString(),
            startTime: T0,
            endTime: Number(endTime),
            status: closed ? 'closed' : endTime < booked ? 'closing' : 'active',
            closedTime: closed ? T0 + closed.atMs : null,
            closedReason: closed ? closed.reason : null,
          });
          const at = BigInt(T0 + atMs);
          const a = leaseDisputeAllowance(view, T0 + atMs, wait);
          assert.equal(BigInt(a.allowed), disputeAllowance(lease, at, BigInt(wait)));
          if (a.nextAtMs !== null) {
            assert.ok(a.nextAtMs > T0 + atMs);
            assert.equal(disputeAllowance(lease, BigInt(a.nextAtMs), BigInt(wait)), BigInt(a.allowed) + 1n);
            assert.equal(disputeAllowance(lease, BigInt(a.nextAtMs - 1), BigInt(wait)), BigInt(a.allowed));
          } else {
            // It grows no more, however long one waits.
            assert.equal(disputeAllowance(lease, at + 1000n * BigInt(HOUR), BigInt(wait)), BigInt(a.allowed));
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
