/**
 * `leaseDisputeAllowance` reads the chain's dispute allowance (one dispute per disputeWaitMs of
 * lease time its renter kept and paid for, at least one) off a lease as the node shows it, so the
 * CLI and the gateway send no dispute the chain would refuse (TOO_MANY_DISPUTES).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
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

  test("the renter's own close and an escrow that runs out stop it; the provider's close does not", () => {
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
    assert.equal(leaseDisputeAllowance(providerClosed, T0 + HOUR, WAIT).allowed, 12);
    // Half an hour of escrow (pay-as-you-go): six waits.
    const short = leaseJson({ deposit: (UNC / 2n).toString() });
    assert.equal(leaseDisputeAllowance(short, T0 + HOUR, WAIT).allowed, 6);
  });
});
