/**
 * The gateway's pure decisions on a virtual clock: offer ranking, the budget (property-tested with
 * bigint over random sequences of lease openings and closings), scaling up and down, routing and
 * retries.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  AVOID_FOREVER,
  type BudgetLease,
  canAfford,
  canAffordRate,
  canSpend,
  chargesIn,
  classifyProviderError,
  committedRate,
  committedRateOnChain,
  decideRetry,
  decideScale,
  effectiveCost,
  escrowCovers,
  type FeePaid,
  failureStreak,
  feesIn,
  hourPeak,
  jobCost,
  LEASE_FAILURE_STREAK_LIMIT,
  MS_PER_HOUR,
  type OfferCandidate,
  type PoolLease,
  pickLease,
  quantile,
  rankOffers,
  recordPpm,
  type ScaleTargets,
  spendLeases,
  spentBy,
  stillCosts,
  topUpAmount,
  totalSpent,
} from '../src/policy.js';

const UNC = 10n ** 18n;

function offer(patch: Partial<OfferCandidate> = {}): OfferCandidate {
  return {
    offerId: 'o1',
    chipId: 'c1',
    provider: 'p1',
    pricePerHour: 2n * UNC,
    power: 1000n,
    uptimePpm: 1_000_000n,
    minHours: 1,
    noticeMs: 60_000,
    jobsReceipted: 0n,
    disputes: 0n,
    ...patch,
  };
}

describe('offer ranking', () => {
  const none = { rateLeft: 1000n * UNC, avoidedProviders: new Set<string>(), heldChips: new Set<string>() };

  test('an offer listed at price 0 is never leased: its deposit would be signed as 0 (the chain price × hours)', () => {
    const free = offer({ offerId: 'a', pricePerHour: 0n });
    const paid = offer({ offerId: 'b' });
    assert.deepEqual(
      rankOffers([free, paid], none).map((o) => o.offerId),
      ['b'],
    );
    assert.equal(effectiveCost(free), null);
  });

  test('cheaper power wins: price per unit of attested power, not price alone', () => {
    const cheapWeak = offer({ offerId: 'a', pricePerHour: 1n * UNC, power: 100n });
    const dearStrong = offer({ offerId: 'b', pricePerHour: 2n * UNC, power: 1000n });
    assert.deepEqual(
      rankOffers([cheapWeak, dearStrong], none).map((o) => o.offerId),
      ['b', 'a'],
    );
  });

  test('lower uptime and disputes on record cost more; an unknown uptime counts as one half', () => {
    const solid = offer({ offerId: 'a' });
    const flaky = offer({ offerId: 'b', uptimePpm: 600_000n });
    const disputed = offer({ offerId: 'c', jobsReceipted: 4n, disputes: 2n });
    const newcomer = offer({ offerId: 'd', uptimePpm: null });
    assert.deepEqual(
      rankOffers([newcomer, disputed, flaky, solid], none).map((o) => o.offerId),
      ['a', 'b', 'd', 'c'],
    );
    assert.equal(recordPpm(0n, 0n), 1_000_000n);
    assert.equal(recordPpm(3n, 1n), 500_000n);
  });

  test('over the budget left, avoided providers, held chips and powerless chips are left out', () => {
    const list = [
      offer({ offerId: 'dear', pricePerHour: 5n * UNC }),
      offer({ offerId: 'avoided', provider: 'bad' }),
      offer({ offerId: 'held', chipId: 'mine' }),
      offer({ offerId: 'zero', power: 0n }),
      offer({ offerId: 'ok' }),
    ];
    const ranked = rankOffers(list, {
      rateLeft: 4n * UNC,
      avoidedProviders: new Set(['bad']),
      heldChips: new Set(['mine']),
    });
    assert.deepEqual(
      ranked.map((o) => o.offerId),
      ['ok'],
    );
    assert.equal(effectiveCost(offer({ uptimePpm: 0n })), null);
  });

  test('the order does not depend on the order the node listed the offers', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            price: fc.bigInt({ min: 1n, max: 10n ** 20n }),
            power: fc.bigInt({ min: 0n, max: 10_000n }),
            uptime: fc.option(fc.bigInt({ min: 0n, max: 1_000_000n })),
          }),
          { maxLength: 12 },
        ),
        (specs) => {
          const list = specs.map((s, i) =>
            offer({
              offerId: `o${i}`,
              chipId: `c${i}`,
              pricePerHour: s.price,
              power: s.power,
              uptimePpm: s.uptime,
            }),
          );
          const forward = rankOffers(list, none).map((o) => o.offerId);
          const backward = rankOffers([...list].reverse(), none).map((o) => o.offerId);
          assert.deepEqual(forward, backward);
        },
      ),
    );
  });
});

describe('budget', () => {
  test('property: whatever is asked, the leases never cost more per hour, nor in total, than the budget', () => {
    const step = fc.oneof(
      fc.record({ kind: fc.constant('open' as const), price: fc.bigInt({ min: 0n, max: 5n * UNC }) }),
      fc.record({ kind: fc.constant('close' as const), index: fc.nat(20) }),
      fc.record({ kind: fc.constant('pending' as const), price: fc.bigInt({ min: 0n, max: 3n * UNC }) }),
      fc.record({ kind: fc.constant('wait' as const), ms: fc.integer({ min: 0, max: 3_600_000 }) }),
    );
    fc.assert(
      fc.property(
        fc.bigInt({ min: 1n, max: 10n * UNC }),
        fc.array(step, { maxLength: 60 }),
        (budget, steps) => {
          const leases: BudgetLease[] = [];
          const pending: bigint[] = [];
          let now = 0;
          for (const s of steps) {
            if (s.kind === 'wait') now += s.ms;
            else if (s.kind === 'close') {
              const open = leases.filter((l) => l.endedAtMs === null);
              const l = open[s.index % Math.max(1, open.length)];
              if (l) l.endedAtMs = now;
            } else if (s.kind === 'pending') {
              // A decision taken while another opening is in flight: both must fit.
              if (canAfford(leases, pending, s.price, budget)) pending.push(s.price);
            } else {
              if (pending.length > 0) {
                // The in-flight opening lands first.
                leases.push({ pricePerHour: pending.shift()!, openedAtMs: now, endedAtMs: null });
              }
              if (canAfford(leases, pending, s.price, budget))
                leases.push({ pricePerHour: s.price, openedAtMs: now, endedAtMs: null });
            }
            const rate = committedRate(leases) + pending.reduce((a, b) => a + b, 0n);
            assert.ok(rate <= budget, `committed ${rate} > budget ${budget}`);
            // Spent so far ≤ budget × elapsed hours (rounded up).
            assert.ok(
              spentBy(leases, now) * MS_PER_HOUR <=
                budget * BigInt(now) + MS_PER_HOUR * BigInt(leases.length),
            );
          }
        },
      ),
    );
  });

  test('a negative price is never affordable; spend counts only the time each lease ran', () => {
    assert.equal(canAfford([], [], -1n, 10n), false);
    const leases: BudgetLease[] = [
      { pricePerHour: 3600n, openedAtMs: 0, endedAtMs: 1000 },
      { pricePerHour: 7200n, openedAtMs: 500, endedAtMs: null },
    ];
    assert.equal(spentBy(leases, 1500), 1n + 2n);
    assert.equal(committedRate(leases), 7200n);
    assert.equal(jobCost(3_600_000n, 150n), 150n);
    assert.equal(jobCost(3_600_000n, -5n), 0n);
  });
});

describe('scaling on a virtual clock', () => {
  const t: ScaleTargets = {
    queueWaitMs: 1000,
    latencyP99Ms: 4000,
    idleCloseMs: 10_000,
    minLeases: 1,
    maxLeases: 3,
    scaleUpCooldownMs: 2000,
  };
  const lease = (id: string, patch: Partial<PoolLease> = {}): PoolLease => ({
    leaseId: id,
    inFlight: 1,
    slots: 1,
    openedAtMs: 0,
    lastActiveMs: 0,
    noticeMs: 0,
    ...patch,
  });
  const view = (patch: Partial<Parameters<typeof decideScale>[0]> = {}) => ({
    leases: [lease('a')],
    opening: 0,
    queued: 0,
    oldestWaitMs: 0,
    recentP99Ms: null,
    lastOpenedMs: null,
    ...patch,
  });

  test('opens the minimum, then one more when the queue waits past the target, once per cooldown', () => {
    assert.equal(decideScale(view({ leases: [] }), t, 0).open, 1);
    assert.equal(decideScale(view({ queued: 5, oldestWaitMs: 500 }), t, 10_000).open, 0);
    assert.equal(decideScale(view({ queued: 5, oldestWaitMs: 1500 }), t, 10_000).open, 1);
    assert.equal(decideScale(view({ queued: 5, oldestWaitMs: 1500, lastOpenedMs: 9000 }), t, 10_000).open, 0);
    assert.equal(decideScale(view({ queued: 5, oldestWaitMs: 1500, opening: 1 }), t, 10_000).open, 0);
    assert.equal(decideScale(view({ queued: 5, recentP99Ms: 5000 }), t, 10_000).open, 1);
    // A free slot takes the job: no new lease for it.
    assert.equal(
      decideScale(view({ leases: [lease('a', { inFlight: 0 })], queued: 1, oldestWaitMs: 5000 }), t, 10_000)
        .open,
      0,
    );
  });

  test('never past maxLeases', () => {
    const full = view({ leases: [lease('a'), lease('b'), lease('c')], queued: 50, oldestWaitMs: 60_000 });
    assert.equal(decideScale(full, t, 100_000).open, 0);
  });

  test('closes leases idle for the idle period and their notice, longest idle first, down to the minimum', () => {
    const leases = [
      lease('a', { inFlight: 0, lastActiveMs: 5_000 }),
      lease('b', { inFlight: 0, lastActiveMs: 1_000 }),
      lease('c', { inFlight: 0, lastActiveMs: 2_000, noticeMs: 60_000 }),
    ];
    assert.deepEqual(decideScale(view({ leases }), t, 12_000).close, ['b']);
    assert.deepEqual(decideScale(view({ leases }), t, 20_000).close, ['b', 'a']);
    // c's notice period is longer: it stays until it has passed.
    assert.deepEqual(decideScale(view({ leases: [leases[2]!, lease('d')] }), t, 20_000).close, []);
    assert.deepEqual(decideScale(view({ leases: [leases[2]!, lease('d')] }), t, 62_000).close, ['c']);
    // Never while jobs wait.
    assert.deepEqual(decideScale(view({ leases, queued: 1 }), t, 100_000).close, []);
  });

  test('property: a decision never holds more than maxLeases nor closes below minLeases or a busy lease', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ inFlight: fc.nat(2), idle: fc.nat(100_000) }), { maxLength: 5 }),
        fc.nat(3),
        fc.nat(50),
        fc.nat(20_000),
        (specs, opening, queued, wait) => {
          const now = 200_000;
          const leases = specs.map((s, i) =>
            lease(`l${i}`, { inFlight: s.inFlight, slots: 2, lastActiveMs: now - s.idle }),
          );
          const d = decideScale(view({ leases, opening, queued, oldestWaitMs: wait }), t, now);
          if (leases.length + opening < t.minLeases) return;
          assert.ok(leases.length + opening + d.open <= Math.max(t.maxLeases, leases.length + opening));
          assert.ok(leases.length - d.close.length >= Math.min(t.minLeases, leases.length));
          for (const id of d.close) assert.equal(leases.find((l) => l.leaseId === id)!.inFlight, 0);
        },
      ),
    );
  });
});

describe('routing and retries', () => {
  const leases = [
    { leaseId: 'a', provider: 'p1', inFlight: 1, slots: 2 },
    { leaseId: 'b', provider: 'p2', inFlight: 0, slots: 2 },
    { leaseId: 'c', provider: 'p3', inFlight: 2, slots: 2 },
  ];
  const policy = { maxAttempts: 3, avoidMs: 1000 };

  test('the least loaded free lease; not a tried one while another is free; never an avoided provider', () => {
    const none = new Set<string>();
    assert.equal(pickLease(leases, { avoidedProviders: none, triedLeases: none })?.leaseId, 'b');
    assert.equal(pickLease(leases, { avoidedProviders: none, triedLeases: new Set(['b']) })?.leaseId, 'a');
    assert.equal(pickLease(leases, { avoidedProviders: new Set(['p1', 'p2']), triedLeases: none }), null);
    assert.equal(pickLease([leases[2]!], { avoidedProviders: none, triedLeases: none }), null);
  });

  test('no answer: retried elsewhere, disputed, provider avoided for a while', () => {
    assert.deepEqual(decideRetry('timeout', 1, policy, 100), {
      retry: true,
      avoidUntilMs: 1100,
      dispute: true,
    });
    assert.deepEqual(decideRetry('unreachable', 3, policy, 100), {
      retry: false,
      avoidUntilMs: 1100,
      dispute: true,
    });
  });

  test('a receipt that does not verify: retried, provider avoided for good, nothing disputed', () => {
    assert.deepEqual(decideRetry('bad-receipt', 1, policy, 0), {
      retry: true,
      avoidUntilMs: AVOID_FOREVER,
      dispute: false,
    });
  });

  test('a bad input fails once two providers refused it; busy is retried without blame, a refused lease avoided a while', () => {
    // One provider calling an input bad is not enough: a dishonest one could fail every job sent
    // to it, with no dispute and no avoidance. The job goes to a second provider first.
    assert.deepEqual(decideRetry('rejected-input', 1, policy, 0), {
      retry: true,
      avoidUntilMs: null,
      dispute: false,
    });
    assert.equal(decideRetry('rejected-input', 2, policy, 0, 2).retry, false);
    assert.equal(decideRetry('rejected-input', 3, policy, 0, 1).retry, false, 'attempts are still bounded');
    assert.deepEqual(decideRetry('busy', 1, policy, 0), { retry: true, avoidUntilMs: null, dispute: false });
    // A refused lease is dropped, and its provider avoided a while: else it is leased again at once.
    assert.deepEqual(decideRetry('lease-refused', 1, policy, 0), {
      retry: true,
      avoidUntilMs: 1000,
      dispute: false,
    });
  });

  test("the gateway's own failure (its node, its database) is retried and held against no provider", () => {
    assert.deepEqual(decideRetry('gateway-error', 1, policy, 0), {
      retry: true,
      avoidUntilMs: null,
      dispute: false,
    });
  });

  test('a lease that only ever answers "busy" (or refuses) is given up after a streak', () => {
    // Before: busy and refused leases were retried without blame for ever, so a provider answering
    // 429 at once kept a paid lease that took every job's first attempt.
    let streak = 0;
    for (let i = 0; i < LEASE_FAILURE_STREAK_LIMIT; i++)
      streak = failureStreak(streak, i % 2 ? 'busy' : 'lease-refused');
    assert.equal(streak >= LEASE_FAILURE_STREAK_LIMIT, true);
    assert.equal(failureStreak(streak, null), 0, 'an answer resets it');
    assert.equal(failureStreak(2, 'rejected-input'), 2, 'a bad input is not the provider');
    assert.equal(failureStreak(2, 'gateway-error'), 2, "the gateway's own failure is not the provider");
  });

  test('provider error codes', () => {
    assert.equal(classifyProviderError(429, 'QUEUE_FULL'), 'busy');
    assert.equal(classifyProviderError(503, 'CHAIN_UNAVAILABLE'), 'busy');
    // Our upload came too slowly for the provider's pace: not the provider's fault.
    assert.equal(classifyProviderError(408, 'UPLOAD_TOO_SLOW'), 'busy');
    assert.equal(classifyProviderError(403, 'LEASE_NOT_ACTIVE'), 'lease-refused');
    assert.equal(classifyProviderError(400, 'BAD_INPUT'), 'rejected-input');
    assert.equal(classifyProviderError(500, 'INTERNAL'), 'provider-error');
    assert.equal(classifyProviderError(409, 'AUTH_REPLAY'), 'provider-error');
  });

  test('quantile by nearest rank', () => {
    assert.equal(quantile([], 0.99), null);
    assert.equal(quantile([5, 1, 3], 0.5), 3);
    assert.equal(
      quantile(
        Array.from({ length: 100 }, (_, i) => i + 1),
        0.99,
      ),
      99,
    );
  });
});

describe('the budget against the chain', () => {
  const rec = (leaseId: string, price: bigint, endedAtMs: number | null = null) => ({
    leaseId,
    pricePerHour: price,
    endedAtMs,
  });
  const chain = (leaseId: string, price: bigint, status: 'active' | 'closing' | 'ended' | 'closed') => ({
    leaseId,
    pricePerHour: price,
    status,
  });

  test('a lease opened on chain but never recorded (a crash between the two) counts', () => {
    // The records alone say nothing is spent; the chain says a 4 UNC/h lease runs.
    assert.equal(committedRateOnChain([], [chain('orphan', 4n * UNC, 'active')]), 4n * UNC);
    assert.equal(
      canAffordRate(committedRateOnChain([], [chain('orphan', 4n * UNC, 'active')]), [], 4n * UNC, 5n * UNC),
      false,
    );
  });

  test('a lease whose provider gave notice still costs until it is closed', () => {
    assert.equal(stillCosts('closing'), true);
    assert.equal(
      committedRateOnChain([rec('a', 3n * UNC, 1000)], [chain('a', 3n * UNC, 'closing')]),
      3n * UNC,
      'recorded as over, but the chain still charges it',
    );
  });

  test('ended and closed leases cost nothing; a lease only the records know costs until they end it', () => {
    assert.equal(stillCosts('ended'), false);
    assert.equal(stillCosts('closed'), false);
    assert.equal(
      committedRateOnChain(
        [rec('a', 1n), rec('b', 2n), rec('c', 4n, 5), rec('d', 8n)],
        [chain('a', 1n, 'ended'), chain('b', 2n, 'closed'), chain('b', 2n, 'closed')],
      ),
      8n,
    );
  });

  test('never less than what the chain charges, whatever the records say (property)', () => {
    const status = fc.constantFrom('active', 'closing', 'ended', 'closed') as fc.Arbitrary<
      'active' | 'closing' | 'ended' | 'closed'
    >;
    fc.assert(
      fc.property(
        fc.uniqueArray(
          fc.record({
            id: fc.integer({ min: 0, max: 20 }),
            price: fc.bigInt({ min: 0n, max: 10n ** 20n }),
            status,
          }),
          {
            selector: (l) => l.id,
          },
        ),
        fc.array(fc.record({ id: fc.integer({ min: 0, max: 40 }), closed: fc.boolean() })),
        (onChain, records) => {
          const charged = onChain.filter((l) => stillCosts(l.status)).reduce((a, l) => a + l.price, 0n);
          const got = committedRateOnChain(
            records.map((r) => rec(String(r.id), 1n, r.closed ? 1 : null)),
            onChain.map((l) => chain(String(l.id), l.price, l.status)),
          );
          return got >= charged;
        },
      ),
    );
  });
});

describe('spending: lease charges and transaction fees within the budget in every hour', () => {
  const HOUR = Number(MS_PER_HOUR);

  /** Exactly what was spent in [s, s + 1 h), times 1 h: no rounding either way. */
  function windowSpendTimesHour(
    leases: readonly BudgetLease[],
    fees: readonly FeePaid[],
    s: number,
    endOfTime: number,
  ): bigint {
    let sum = 0n;
    for (const l of leases) {
      const a = Math.max(l.openedAtMs, s);
      const b = Math.min(l.endedAtMs ?? endOfTime, s + HOUR);
      if (b > a) sum += l.pricePerHour * BigInt(b - a);
    }
    for (const f of fees)
      if (f.includedAtMs !== null && f.includedAtMs >= s && f.includedAtMs < s + HOUR)
        sum += f.fee * MS_PER_HOUR;
    return sum;
  }

  type Step =
    | { kind: 'open'; price: bigint; fee: bigint }
    /** The dearest lease the rule lets open now: the budget's edge, where a missed fee shows. */
    | { kind: 'open-fill'; fee: bigint }
    | { kind: 'close'; index: number }
    | { kind: 'ran-out'; index: number }
    | { kind: 'dispute'; fee: bigint }
    | { kind: 'wait'; ms: number };

  /**
   * A gateway's spending on a virtual clock: it opens a lease, disputes or tops up only when
   * `allowed` says so, and closes whatever it likes (a closing is never refused: it saves money).
   * Returns the leases and every fee paid, with the time the leases that still run stop being looked at.
   */
  function simulate(
    closeFee: bigint,
    steps: readonly Step[],
    allowed: (
      leases: BudgetLease[],
      fees: FeePaid[],
      newRate: bigint,
      newFees: bigint,
      now: number,
    ) => boolean,
  ) {
    const leases: BudgetLease[] = [];
    const fees: FeePaid[] = [];
    let now = 0;
    for (const s of steps) {
      const running = leases.filter((l) => l.endedAtMs === null);
      if (s.kind === 'wait') now += s.ms;
      else if (s.kind === 'open') {
        if (allowed(leases, fees, s.price, s.fee + closeFee, now)) {
          fees.push({ includedAtMs: now, fee: s.fee });
          leases.push({ pricePerHour: s.price, openedAtMs: now, endedAtMs: null });
        }
      } else if (s.kind === 'open-fill') {
        let lo = 0n;
        let hi = 100n * UNC;
        if (!allowed(leases, fees, lo, s.fee + closeFee, now)) continue;
        while (lo < hi) {
          const mid = (lo + hi + 1n) / 2n;
          if (allowed(leases, fees, mid, s.fee + closeFee, now)) lo = mid;
          else hi = mid - 1n;
        }
        fees.push({ includedAtMs: now, fee: s.fee });
        leases.push({ pricePerHour: lo, openedAtMs: now, endedAtMs: null });
      } else if (s.kind === 'dispute') {
        if (allowed(leases, fees, 0n, s.fee, now)) fees.push({ includedAtMs: now, fee: s.fee });
      } else {
        const l = running[s.index % Math.max(1, running.length)];
        if (!l) continue;
        l.endedAtMs = now;
        // A lease closed by the renter pays the closing fee; one whose escrow ran out pays none.
        if (s.kind === 'close') fees.push({ includedAtMs: now, fee: closeFee });
      }
    }
    return { leases, fees, end: now + 2 * HOUR };
  }

  const gatewayRule =
    (budget: bigint, closeFee: bigint) =>
    (leases: BudgetLease[], fees: FeePaid[], newRate: bigint, newFees: bigint, now: number) => {
      const running = leases.filter((l) => l.endedAtMs === null);
      return canSpend(
        { leases, fees },
        {
          committedRate: committedRate(leases),
          reservedFees: closeFee * BigInt(running.length),
          newRate,
          newFees,
        },
        budget,
        now,
      );
    };

  /** The most spent in any hour-long window (× 1 h), over every window that starts or ends at an event. */
  function worstHour(leases: BudgetLease[], fees: FeePaid[], end: number): bigint {
    const times = new Set<number>([0]);
    for (const l of leases) {
      times.add(l.openedAtMs);
      if (l.endedAtMs !== null) times.add(l.endedAtMs);
    }
    for (const f of fees) if (f.includedAtMs !== null) times.add(f.includedAtMs);
    let worst = 0n;
    for (const t of times)
      for (const s of [t, t - HOUR, t - HOUR + 1]) {
        const v = windowSpendTimesHour(leases, fees, s, end);
        if (v > worst) worst = v;
      }
    return worst;
  }

  const steps = (maxPrice: bigint, maxFee: bigint) =>
    fc.array(
      fc.oneof(
        fc.record({
          kind: fc.constant('open' as const),
          price: fc.bigInt({ min: 0n, max: maxPrice }),
          fee: fc.bigInt({ min: 0n, max: maxFee }),
        }),
        fc.record({ kind: fc.constant('open-fill' as const), fee: fc.bigInt({ min: 0n, max: maxFee }) }),
        fc.record({ kind: fc.constant('close' as const), index: fc.nat(20) }),
        fc.record({ kind: fc.constant('ran-out' as const), index: fc.nat(20) }),
        fc.record({ kind: fc.constant('dispute' as const), fee: fc.bigInt({ min: 0n, max: maxFee }) }),
        fc.record({ kind: fc.constant('wait' as const), ms: fc.integer({ min: 0, max: 2 * 3_600_000 }) }),
      ),
      { maxLength: 40 },
    );

  test('property: in no hour does the key spend more than the budget, fees included', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 1n, max: 10n * UNC }),
        fc.bigInt({ min: 0n, max: UNC / 10n }),
        steps(5n * UNC, UNC / 4n),
        (budget, closeFee, list) => {
          const { leases, fees, end } = simulate(closeFee, list, gatewayRule(budget, closeFee));
          const worst = worstHour(leases, fees, end);
          assert.ok(worst <= budget * MS_PER_HOUR, `spent ${worst / MS_PER_HOUR} in an hour > ${budget}`);
        },
      ),
      { numRuns: 300 },
    );
  });

  test("the old rule (the leases' rate alone) let the fees pass the budget", () => {
    // A lease at exactly the budget's rate: its rate fits, its opening and closing fees do not.
    const budget = 2n * UNC;
    const closeFee = 10n ** 13n;
    const list: Step[] = [
      { kind: 'open', price: budget, fee: 10n ** 13n },
      { kind: 'wait', ms: 30 * 60_000 },
      { kind: 'close', index: 0 },
      { kind: 'open', price: budget, fee: 10n ** 13n },
      { kind: 'dispute', fee: 10n ** 13n },
    ];
    const oldRule = (leases: BudgetLease[], _f: FeePaid[], newRate: bigint) =>
      canAffordRate(committedRate(leases), [], newRate, budget);
    const old = simulate(closeFee, list, oldRule);
    assert.ok(worstHour(old.leases, old.fees, old.end) > budget * MS_PER_HOUR, 'the old rule overspends');
    const now = simulate(closeFee, list, gatewayRule(budget, closeFee));
    assert.ok(worstHour(now.leases, now.fees, now.end) <= budget * MS_PER_HOUR);
    assert.equal(now.leases.length, 0, "a lease at exactly the budget's rate leaves no room for its fees");
  });

  test('a dispute flood cannot drain the budget: disputes stop when their fees would pass it', () => {
    const budget = 10n ** 15n;
    const rule = gatewayRule(budget, 0n);
    const list: Step[] = Array.from({ length: 200 }, () => ({ kind: 'dispute', fee: 10n ** 13n }) as const);
    const { fees } = simulate(0n, list, rule);
    assert.equal(fees.length, 100);
    assert.equal(feesIn(fees, 0, 0), budget);
    // An hour later the window has moved on: disputes may be paid again.
    const later = simulate(0n, [...list, { kind: 'wait', ms: 3_600_001 }, ...list], rule);
    assert.equal(later.fees.length, 200);
  });

  test('charges round up, fees count where paid, and the peak looks back one hour and ahead one', () => {
    const leases: BudgetLease[] = [{ pricePerHour: 3600n, openedAtMs: 0, endedAtMs: 1001 }];
    assert.equal(chargesIn(leases, 0, 1000), 1n);
    assert.equal(chargesIn(leases, 0, 1500), 2n, '1.001 rounds up');
    const fees: FeePaid[] = [{ includedAtMs: 10, fee: 5n }];
    assert.equal(totalSpent(leases, fees, 2000), 2n + 5n);
    // Nothing running from now: the peak is the past hour's spend plus what is set aside.
    assert.equal(hourPeak(leases, fees, 0n, 3n, 2000), 2n + 5n + 3n);
    // A lease at 3,600/h from now: its whole hour, and the past hour's spend before it.
    assert.equal(hourPeak([], [], 3600n, 0n, 5000), 3600n);
    assert.equal(hourPeak(leases, fees, 3600n, 0n, 2000), 2n + 5n + 3600n - 2n);
  });

  test("the history takes the chain's times for the leases it lists", () => {
    const got = spendLeases(
      [
        { leaseId: 'a', pricePerHour: 1n, openedAtMs: 50, endedAtMs: null },
        { leaseId: 'r', pricePerHour: 2n, openedAtMs: 60, endedAtMs: 70 },
      ],
      [
        { leaseId: 'a', pricePerHour: 1n, status: 'closed', startTime: 40, escrowUntil: 90, closedTime: 80 },
        { leaseId: 'e', pricePerHour: 4n, status: 'ended', startTime: 10, escrowUntil: 20, closedTime: null },
        {
          leaseId: 'x',
          pricePerHour: 8n,
          status: 'active',
          startTime: 30,
          escrowUntil: 99,
          closedTime: null,
        },
      ],
    );
    assert.deepEqual(got, [
      { pricePerHour: 1n, openedAtMs: 40, endedAtMs: 80 },
      { pricePerHour: 4n, openedAtMs: 10, endedAtMs: 20 },
      { pricePerHour: 8n, openedAtMs: 30, endedAtMs: null },
      { pricePerHour: 2n, openedAtMs: 60, endedAtMs: 70 },
    ]);
  });
});

describe('escrow', () => {
  test('no job goes to a lease whose escrow could run out before its answer (block time)', () => {
    // Escrow paid until block time 100,000; a job may take 30 s.
    assert.equal(escrowCovers(100_000, 60_000, 30_000), true);
    assert.equal(escrowCovers(100_000, 70_000, 30_000), false);
    assert.equal(escrowCovers(100_000, 100_000, 0), false);
    assert.equal(escrowCovers(100_000, 200_000, 30_000), false);
  });

  test('a busy lease near the end of its escrow is topped up by an hour, within its end time', () => {
    const lease = {
      pricePerHour: 3n * UNC,
      escrowUntilMs: 3_600_000,
      endTimeMs: 24 * 3_600_000,
      inUse: true,
    };
    assert.equal(topUpAmount(lease, 0, 600_000, 1), 0n, 'an hour left: not yet');
    assert.equal(topUpAmount(lease, 3_100_000, 600_000, 1), 3n * UNC);
    assert.equal(topUpAmount({ ...lease, inUse: false }, 3_100_000, 600_000, 1), 0n, 'idle: let it end');
    assert.equal(
      topUpAmount({ ...lease, endTimeMs: 3_600_000 + 1_800_000 }, 3_100_000, 600_000, 1),
      (3n * UNC) / 2n,
      'no more than its end time allows',
    );
    assert.equal(topUpAmount({ ...lease, endTimeMs: 3_600_000 }, 3_100_000, 600_000, 1), 0n);
  });
});
