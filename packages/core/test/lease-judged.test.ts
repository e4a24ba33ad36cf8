/**
 * Which challenges judge a lease (market/settle.ts settleLease, docs/jobs.md "How a lease is paid"):
 * exactly the chip's challenges drawn while the lease ran (from its opening block to the last block
 * before its end or its close) — an answered challenge as soon as its answer is included, a missed
 * one once its answer window has closed, and one still open at the close W blocks after it (the
 * last period's cost held till its window closes). A lease is closed
 * in the first block at or after its end, so nothing drawn after the end judges it; a renter's close
 * counts a fresh answer at once, so a close (or a close and a new lease in one transaction) loses no
 * answer to either lease; and no challenge judges two leases.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  type Action,
  BlockExecutor,
  challengeOutcome,
  chipClass,
  devSoftChipId,
  dropLeaseEnd,
  effectiveStatus,
  epochOf,
  equalBytes,
  getChallengeClass,
  getChip,
  getChipMarket,
  getLease,
  getOffer,
  getPociParams,
  type HeartbeatAnswer,
  hasProvenOnline,
  type Lease,
  LeaseStatus,
  leaseEndQueue,
  leaseEndsAt,
  leaseTermsDigest,
  leaseTermsOf,
  MemoryState,
  nextLeaseEnd,
  popLeaseEnd,
  queueLeaseEnd,
  StateOverlay,
  sha256,
  type TxEnvelope,
  type TxEvent,
  toHex,
  utf8,
} from '../src/index.js';
import {
  answer,
  CHAIN,
  genesis,
  key,
  miner,
  other,
  registerAction,
  slotsOf,
  TestChain,
  validator,
} from './harness.js';

const UNC = 10n ** 18n;
const PRICE = UNC;
const MINUTE = 60_000n;
const provider = miner;
const renter = other;
const chip = key('lease-judged-chip');
const chipId = devSoftChipId(chip.publicKey);

/**
 * A chain whose chip answers challenge h in block h + delay(h) (1 ≤ delay ≤ W), or never (null),
 * the answers after the block's other transactions. Remembers each block's time, each challenge's
 * answer height, and the block-start events.
 */
class JudgeChain extends TestChain {
  delay: (h: bigint) => number | null = () => 1;
  readonly times = new Map<bigint, bigint>();
  readonly answeredAt = new Map<bigint, bigint>();
  blockEvents: TxEvent[] = [];

  override block(txs: TxEnvelope[] = []): TxEvent[] {
    const next = this.height + 1n;
    const p = getPociParams(this.state);
    const ex = new BlockExecutor(this.state, {
      chainId: CHAIN,
      height: next,
      time: this.time + this.step(next),
      proposer: validator.publicKey,
      prevHash: this.hashOf(this.height),
      prevBeacon: this.beaconOf(this.height),
      beacon: this.beaconOf(next),
    });
    const events: TxEvent[] = [];
    for (const t of txs) events.push(...ex.apply(t).events);
    const answers: HeartbeatAnswer[] = [];
    const rec = getChip(ex.overlay, chipId);
    if (rec && effectiveStatus(ex.overlay, rec, null).status === 'active') {
      const e = epochOf(next, p);
      for (const epoch of [e - 1n, e]) {
        if (epoch < rec.firstEpoch) continue;
        slotsOf(this, chip, epoch).forEach((h, slot) => {
          const d = this.delay(h);
          if (d === null || h + BigInt(d) !== next || this.answeredAt.has(h)) return;
          answers.push(answer(this, chip, epoch, slot));
          this.answeredAt.set(h, next);
        });
      }
    }
    const all = [...txs];
    for (const t of this.heartbeats(answers, 0n, false, ex.overlay)) {
      all.push(t);
      events.push(...ex.apply(t).events);
    }
    this.blockEvents.push(...ex.blockEvents);
    this.state.apply(ex.finish().overlay.changes());
    this.height = next;
    this.time = ex.ctx.time;
    this.times.set(next, this.time);
    for (const t of all) this.nonces.set(Buffer.from(t.sender).toString('hex'), t.stx.tx.nonce + 1n);
    this.events.push(...events);
    return [...ex.blockEvents, ...events];
  }

  /** A copy to run on (the state, the clock, the nonces and what it remembers). */
  fork(): JudgeChain {
    const c = new JudgeChain(genesis());
    c.state.map.clear();
    for (const [k, v] of this.state.map) c.state.map.set(k, v);
    c.height = this.height;
    c.time = this.time;
    c.step = this.step;
    for (const [k, v] of this.nonces) c.nonces.set(k, v);
    for (const [k, v] of this.times) c.times.set(k, v);
    for (const [k, v] of this.answeredAt) c.answeredAt.set(k, v);
    return c;
  }

  /** The chip's challenge heights in epochs from…to (committed blocks). */
  challenges(fromEpoch: bigint, toEpoch: bigint): bigint[] {
    const p = getPociParams(this.state);
    const cls = chipClass(chipId, p);
    const out: bigint[] = [];
    for (let e = fromEpoch; e <= toEpoch; e++) out.push(...getChallengeClass(this.state, e, cls).heights);
    return out;
  }
}

/** A chain with the chip registered to the provider, proven online, and its offer (returned). */
function setup(noticeMs = 10n * MINUTE): { chain: JudgeChain; offerId: Uint8Array } {
  const chain = new JudgeChain(genesis());
  chain.step = () => MINUTE;
  chain.blocksUntil(2n);
  chain.block([chain.tx(provider, [registerAction(chain, chip, provider.address)])]);
  for (let i = 0; i < 400 && !hasProvenOnline(getChip(chain.state, chipId)!); i++) chain.block();
  assert.ok(hasProvenOnline(getChip(chain.state, chipId)!));
  const offer: Action = {
    type: 'createOffer',
    chipIds: [chipId],
    pricePerHour: PRICE,
    minHours: 0,
    maxHours: 4,
    noticeMs,
    endpoint: 'https://provider.example/api',
    attributes: { memoryMiB: 81_920, region: 'eu-west', runtimes: ['onnx'] },
    tlsFingerprints: [sha256(utf8('tls'))],
  } as Action;
  const created = chain.block([chain.tx(provider, [offer])]);
  const offerId = (created.find((x) => x.type === 'offerCreated') as { offerId: Uint8Array }).offerId;
  return { chain, offerId };
}

function openAction(chain: JudgeChain, offerId: Uint8Array, hours = 2, deposit = 0n): Action {
  const offer = getOffer(chain.state, offerId)!;
  return {
    type: 'openLease',
    offerId,
    chipId,
    hours,
    deposit,
    maxPricePerHour: PRICE,
    termsDigest: leaseTermsDigest(leaseTermsOf(chain.state, offer)),
  };
}

function openedId(events: TxEvent[]): Uint8Array {
  const e = events.find((x) => x.type === 'leaseOpened') as { leaseId: Uint8Array } | undefined;
  assert.ok(e, 'leaseOpened');
  return e.leaseId;
}

/** Blocks until the chip is challenged; returns the challenge's height (the head). */
function untilChallenged(chain: JudgeChain): bigint {
  const p = getPociParams(chain.state);
  for (let i = 0; i < 200; i++) {
    chain.block();
    const hs = slotsOf(chain, chip, epochOf(chain.height, p));
    if (hs.at(-1) === chain.height) return chain.height;
  }
  throw new Error('never challenged');
}

/**
 * What the rule says a closed lease was judged by: its chip's challenges drawn from its opening block
 * on whose block time is before the moment it stopped running (its end, or its close if sooner),
 * answered if the answer was included before the block that closed it, missed if unanswered with the
 * window closed by then, left out otherwise.
 */
function expected(chain: JudgeChain, l: Lease): { answered: bigint; missed: bigint; judged: bigint[] } {
  const p = getPociParams(chain.state);
  assert.equal(l.status, LeaseStatus.closed);
  const end = leaseEndsAt(l);
  const ran = l.closedTime < end ? l.closedTime : end;
  let answered = 0n;
  let missed = 0n;
  const judged: bigint[] = [];
  for (const h of chain.challenges(epochOf(l.startHeight, p), epochOf(l.closedHeight, p))) {
    if (h < l.startHeight || chain.times.get(h)! >= ran) continue;
    // One still open at the close is judged after its window (its last period held till then),
    // so every challenge of the run is, answered if an answer came within its window.
    const at = chain.answeredAt.get(h);
    if (at !== undefined && at <= h + p.answerWindowBlocks) answered++;
    else missed++;
    judged.push(h);
  }
  return { answered, missed, judged };
}

describe('lease judgement: only the challenges of its run, each once, outcome known', () => {
  test('a lease is closed in the first block at or after its end, before that block’s transactions', () => {
    const { chain, offerId } = setup();
    // Ten minutes of escrow on a two-hour lease: it ends mid-epoch, long before the next epoch start.
    const id = openedId(chain.block([chain.tx(renter, [openAction(chain, offerId, 2, PRICE / 6n)])]));
    const end = leaseEndsAt(getLease(chain.state, id)!);
    while (chain.time < end) chain.block();
    const l = getLease(chain.state, id)!;
    assert.equal(l.status, LeaseStatus.closed);
    assert.equal(l.closedReason, 'escrowExhausted');
    assert.equal(l.closedHeight, chain.height);
    assert.ok(chain.times.get(chain.height - 1n)! < end, 'the block before was still in the lease');
    const e = expected(chain, l);
    assert.equal(l.slotsAnswered, e.answered);
    assert.equal(l.slotsMissed, e.missed);
    assert.ok(e.judged.length > 0, 'the lease drew challenges');
  });

  test('a renter’s close counts an answer included in its last W + 1 blocks', () => {
    const { chain, offerId } = setup();
    const id = openedId(chain.block([chain.tx(renter, [openAction(chain, offerId)])]));
    const p = getPociParams(chain.state);
    // A first challenge, then wait past it so the lease has a decided one too; then a fresh one.
    untilChallenged(chain);
    chain.blocksUntil(chain.height + p.answerWindowBlocks + 1n);
    const h = untilChallenged(chain);
    chain.block(); // the chip answers h here
    assert.equal(chain.answeredAt.get(h), chain.height);
    // The renter closes in the next block: h's window (h + W) is still open.
    assert.ok(chain.height + 1n <= h + p.answerWindowBlocks);
    const events = chain.block([chain.tx(renter, [{ type: 'closeLease', leaseId: id }])]);
    const settled = events.find((x) => x.type === 'leaseSettled') as { answered: number } | undefined;
    assert.ok(settled);
    const l = getLease(chain.state, id)!;
    const e = expected(chain, l);
    assert.ok(e.judged.includes(h));
    assert.equal(l.slotsAnswered, e.answered, 'the fresh answer counts for the lease it was given in');
    assert.equal(l.slotsMissed, 0n);
    assert.equal(l.refunded, l.deposited - l.paid);
    assert.equal(l.paid, l.accrued, 'every judged challenge answered: the time it ran is paid in full');
  });

  test('a held last period, once decided, is reported in one leaseSettled of all it held, leaving 0', () => {
    // The event of a held period (decideHeldChallenge) and of a period settled at once
    // (settleLease) come from one place, bookPeriod: this pins the held one's fields.
    const { chain, offerId } = setup();
    chain.delay = () => 2;
    const id = openedId(chain.block([chain.tx(renter, [openAction(chain, offerId)])]));
    const p = getPociParams(chain.state);
    const h = untilChallenged(chain);
    // Closed before h is answered (h + 2): its last period is held until h is decided.
    chain.block([chain.tx(renter, [{ type: 'closeLease', leaseId: id }])]);
    const closed = getLease(chain.state, id)!;
    assert.ok(closed.remaining > 0n, 'the last period is held');
    const held = { remaining: closed.remaining, from: closed.settledTime, to: closed.closedTime };
    type Settled = Extract<TxEvent, { type: 'leaseSettled' }>;
    let settled: Settled | undefined;
    for (let i = 0n; i <= p.answerWindowBlocks + 2n && !settled; i++) {
      const events = [...chain.block(), ...chain.blockEvents];
      settled = events.find((x): x is Settled => x.type === 'leaseSettled' && equalBytes(x.leaseId, id));
    }
    assert.ok(settled, 'the held period was decided');
    assert.ok(chain.answeredAt.has(h));
    assert.equal(settled.cost, held.remaining);
    assert.equal(settled.paid + settled.refunded, held.remaining);
    assert.equal(settled.remaining, 0n);
    assert.equal(settled.fromTime, held.from);
    assert.equal(settled.toTime, held.to);
    assert.deepEqual(settled.chipId, chipId);
    assert.equal(getLease(chain.state, id)!.remaining, 0n);
  });

  test('a close and a new lease in one transaction: the fresh answer counts for the old lease, once', () => {
    const { chain, offerId } = setup();
    const first = openedId(chain.block([chain.tx(renter, [openAction(chain, offerId)])]));
    const p = getPociParams(chain.state);
    untilChallenged(chain);
    chain.blocksUntil(chain.height + p.answerWindowBlocks + 1n);
    const h = untilChallenged(chain);
    chain.block();
    assert.equal(chain.answeredAt.get(h), chain.height);
    const swap = chain.block([
      chain.tx(renter, [{ type: 'closeLease', leaseId: first }, openAction(chain, offerId)]),
    ]);
    const second = openedId(swap);
    // Run the second lease past an epoch start (its periodic settlement) and close it.
    const next = (epochOf(chain.height, p) + 1n) * p.epochBlocks + p.answerWindowBlocks + 2n;
    chain.blocksUntil(next);
    chain.block([chain.tx(renter, [{ type: 'closeLease', leaseId: second }])]);
    const a = getLease(chain.state, first)!;
    const b = getLease(chain.state, second)!;
    const ea = expected(chain, a);
    const eb = expected(chain, b);
    assert.ok(ea.judged.includes(h), 'the old lease judged the fresh answer');
    assert.ok(!eb.judged.includes(h));
    assert.equal(a.slotsAnswered, ea.answered);
    assert.equal(b.slotsAnswered, eb.answered);
    assert.equal(a.slotsMissed + b.slotsMissed, 0n);
  });

  test('an offer without notice: the provider’s close ends the lease in its transaction', () => {
    const { chain, offerId } = setup(0n);
    const id = openedId(chain.block([chain.tx(renter, [openAction(chain, offerId)])]));
    chain.blocksUntil(chain.height + 13n);
    const events = chain.block([chain.tx(provider, [{ type: 'closeLease', leaseId: id }])]);
    assert.deepEqual(
      events.filter((x) => x.type.startsWith('lease')).map((x) => x.type),
      ['leaseClosing', 'leaseSettled', 'leaseClosed'],
    );
    const l = getLease(chain.state, id)!;
    assert.equal(l.status, LeaseStatus.closed);
    assert.equal(l.closedReason, 'providerClosed');
    assert.equal(l.closedHeight, chain.height);
    assert.equal(l.settledTime, chain.time);
    const e = expected(chain, l);
    assert.equal(l.slotsAnswered, e.answered);
    assert.equal(l.slotsMissed, e.missed);
    assert.equal(getChipMarket(chain.state, chipId).leaseId, null, 'the chip is free at once');
  });

  test('property: a lease is judged by exactly the challenges of its run whose outcome is known; none twice', () => {
    const { chain: base, offerId } = setup(5n * MINUTE);
    const W = Number(getPociParams(base.state).answerWindowBlocks);
    type Op =
      | { op: 'wait'; blocks: number }
      | { op: 'open'; hours: number; share: number }
      | { op: 'renterClose' }
      | { op: 'swap'; share: number }
      | { op: 'providerClose' }
      | { op: 'topUp'; share: number };
    // Per mille of price × hours: below 1000 the escrow runs out before the booked end.
    const openArb: fc.Arbitrary<Op> = fc.record({
      op: fc.constant('open' as const),
      hours: fc.integer({ min: 1, max: 2 }),
      share: fc.integer({ min: 30, max: 1000 }),
    });
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      {
        arbitrary: fc.record({ op: fc.constant('wait' as const), blocks: fc.integer({ min: 1, max: 30 }) }),
        weight: 4,
      },
      openArb,
      fc.constant({ op: 'renterClose' as const }),
      fc.record({ op: fc.constant('swap' as const), share: fc.integer({ min: 30, max: 1000 }) }),
      fc.constant({ op: 'providerClose' as const }),
      fc.record({ op: fc.constant('topUp' as const), share: fc.integer({ min: 10, max: 300 }) }),
    );
    fc.assert(
      fc.property(
        fc.tuple(openArb, fc.array(opArb, { maxLength: 10 })).map(([first, rest]) => [first, ...rest]),
        // Per challenge (by its height), the answer's delay in blocks, or never (0).
        fc.func(fc.integer({ min: 0, max: W })),
        // Uneven block times: 20…100 s, by height.
        fc.func(fc.integer({ min: 20, max: 100 })),
        (ops, delayOf, secondsOf) => {
          const chain = base.fork();
          chain.delay = (h) => {
            const d = delayOf(Number(h));
            return d === 0 ? null : d;
          };
          chain.step = (h) => BigInt(secondsOf(Number(h))) * 1000n;
          const ids: Uint8Array[] = [];
          const current = (): Lease | null => {
            const id = getChipMarket(chain.state, chipId).leaseId;
            const l = id ? getLease(chain.state, id) : null;
            return l && l.status !== LeaseStatus.closed ? l : null;
          };
          const send = (actions: Action[]): TxEvent[] => {
            const tx = chain.tx(renter, actions);
            if (chain.attempt(tx)) return chain.block();
            return chain.block([tx]);
          };
          const remember = (events: TxEvent[]) => {
            for (const e of events) if (e.type === 'leaseOpened') ids.push(e.leaseId);
          };
          /** The queue holds one entry per open lease, at its end, and nothing else. */
          const queued = () => {
            const l = current();
            const q = leaseEndQueue(chain.state);
            if (!l) {
              assert.equal(q.length, 0, 'no open lease: the queue is empty');
              return;
            }
            assert.equal(q.length, 1, 'one entry, that of the open lease');
            assert.ok(equalBytes(q[0]!.leaseId, l.id));
            assert.equal(q[0]!.time, leaseEndsAt(l), 'at its end');
          };
          for (const o of ops) {
            queued();
            const l = current();
            switch (o.op) {
              case 'wait':
                for (let i = 0; i < o.blocks; i++) chain.block();
                break;
              case 'open':
                remember(
                  send([
                    openAction(chain, offerId, o.hours, (PRICE * BigInt(o.hours) * BigInt(o.share)) / 1000n),
                  ]),
                );
                break;
              case 'renterClose':
                if (l) send([{ type: 'closeLease', leaseId: l.id }]);
                break;
              case 'swap':
                if (l)
                  remember(
                    send([
                      { type: 'closeLease', leaseId: l.id },
                      openAction(chain, offerId, 1, (PRICE * BigInt(o.share)) / 1000n),
                    ]),
                  );
                break;
              case 'providerClose':
                if (l) {
                  const tx = chain.tx(provider, [{ type: 'closeLease', leaseId: l.id }]);
                  chain.block(chain.attempt(tx) ? [] : [tx]);
                }
                break;
              case 'topUp':
                if (l)
                  send([{ type: 'topUpLease', leaseId: l.id, amount: (PRICE * BigInt(o.share)) / 1000n }]);
                break;
            }
          }
          // Let the last lease run out (at most two hours of blocks of at most 100 s).
          for (let i = 0; i < 400 && current(); i++) chain.block();
          assert.equal(current(), null, 'every lease closed');
          queued();
          // ...and its last period, if held for a challenge still open at its close, decided.
          for (let i = 0; i <= W; i++) chain.block();
          let runs: Array<[bigint, bigint]> = [];
          const seen = new Set<bigint>();
          let total = 0n;
          for (const id of ids) {
            const l = getLease(chain.state, id)!;
            const e = expected(chain, l);
            assert.equal(l.slotsAnswered, e.answered, 'answered: those of its run answered before its close');
            assert.equal(l.slotsMissed, e.missed, 'missed: those of its run whose window closed unanswered');
            for (const h of e.judged) {
              assert.ok(!seen.has(h), `challenge ${h} judged two leases`);
              seen.add(h);
            }
            total += l.slotsAnswered + l.slotsMissed;
            if (l.closedReason !== 'renterClosed') {
              // Closed by its end: in the first block whose time reached it.
              const end = leaseEndsAt(l);
              assert.ok(chain.times.get(l.closedHeight)! >= end, 'closed at or after its end');
              assert.ok(chain.times.get(l.closedHeight - 1n)! < end, 'in the first block at or after it');
            }
            assert.equal(l.deposited, l.paid + l.refunded + l.remaining);
            runs.push([l.startHeight, l.closedHeight]);
          }
          assert.equal(total, BigInt(seen.size), 'no challenge counted twice');
          runs = runs.sort((x, y) => (x[0] < y[0] ? -1 : 1));
          for (let i = 1; i < runs.length; i++) assert.ok(runs[i - 1]![1] <= runs[i]![0], 'runs overlap');
        },
      ),
      { numRuns: 25 },
    );
  });
});

describe('challenge outcome', () => {
  test('an uncredited answer (tpm2 asleep or rebooted) is a miss at once, as a credited one is an answer at once', () => {
    const { chain } = setup();
    const p = getPociParams(chain.state);
    const rec = getChip(chain.state, chipId)!;
    const epoch = rec.epoch;
    const slot = 3;
    const h = 100n;
    // Inside the window (h + W ≥ height): unknown while unanswered, known once answered either way.
    const inWindow = h + p.answerWindowBlocks;
    const blank = { ...rec, answered: 0, prevAnswered: 0, uncredited: 0, prevUncredited: 0 };
    assert.equal(challengeOutcome(blank, epoch, slot, h, inWindow, p), null);
    assert.equal(
      challengeOutcome({ ...blank, answered: 1 << slot }, epoch, slot, h, inWindow, p),
      'answered',
    );
    assert.equal(
      challengeOutcome({ ...blank, uncredited: 1 << slot }, epoch, slot, h, inWindow, p),
      'missed',
    );
    assert.equal(
      challengeOutcome({ ...blank, prevUncredited: 1 << slot }, epoch - 1n, slot, h, inWindow, p),
      'missed',
    );
    // After the window: a miss either way.
    assert.equal(challengeOutcome(blank, epoch, slot, h, inWindow + 1n, p), 'missed');
    assert.equal(
      challengeOutcome({ ...blank, uncredited: 1 << slot }, epoch, slot, h, inWindow + 1n, p),
      'missed',
    );
  });
});

describe('lease end queue', () => {
  test('property: one entry per lease, out by (end time, lease id), whatever the order of sets, drops and pops', () => {
    type Op = { set: bigint; id: number } | { drop: number } | { pop: true };
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      {
        arbitrary: fc.record({ set: fc.bigInt({ min: 0n, max: 50n }), id: fc.integer({ min: 0, max: 20 }) }),
        weight: 3,
      },
      fc.record({ drop: fc.integer({ min: 0, max: 20 }) }),
      fc.constant({ pop: true as const }),
    );
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 150 }), (ops) => {
        const state = new StateOverlay(new MemoryState());
        // The model: each lease's end, at most one.
        const model = new Map<string, bigint>();
        const entry = (time: bigint, id: string) => `${time.toString().padStart(4, '0')}:${id}`;
        const sorted = () => [...model].map(([id, t]) => entry(t, id)).sort();
        const idOf = (n: number) => sha256(utf8(`lease ${n}`));
        for (const o of ops) {
          if ('set' in o) {
            queueLeaseEnd(state, idOf(o.id), o.set);
            model.set(toHex(idOf(o.id)), o.set);
          } else if ('drop' in o) {
            dropLeaseEnd(state, idOf(o.drop));
            model.delete(toHex(idOf(o.drop)));
          } else {
            const got = popLeaseEnd(state);
            const want = sorted()[0];
            assert.equal(got ? entry(got.time, toHex(got.leaseId)) : undefined, want);
            if (got) model.delete(toHex(got.leaseId));
          }
          const next = nextLeaseEnd(state);
          assert.equal(next ? entry(next.time, toHex(next.leaseId)) : undefined, sorted()[0]);
          assert.deepEqual(
            leaseEndQueue(state)
              .map((x) => entry(x.time, toHex(x.leaseId)))
              .sort(),
            sorted(),
          );
        }
        for (const want of sorted()) {
          const got = popLeaseEnd(state)!;
          assert.equal(entry(got.time, toHex(got.leaseId)), want);
        }
        assert.equal(popLeaseEnd(state), null);
        assert.equal(
          state.changes().filter((w) => w.value !== null).length,
          0,
          'an emptied queue leaves nothing in the state',
        );
      }),
      { numRuns: 200 },
    );
  });

  test('leases opened and closed early leave nothing queued: what one block pops is bounded by the open leases', () => {
    // The attack: open a lease and close it in the same transaction, over and over, each with a
    // deposit that makes its escrow run out at one chosen moment T. Nothing is paid (no time ran),
    // the renter gets its deposits back, and if each closed lease left its entry behind, the block
    // at T would pop them all, however many blocks they were opened over.
    const { chain, offerId } = setup();
    const T = chain.time + 60n * MINUTE;
    for (let i = 0; i < 10; i++) {
      const start = chain.time + MINUTE; // the next block's time (the step is a minute)
      const deposit = ((T - start) * PRICE) / (60n * MINUTE); // escrow until T (the price is per hour)
      const id = openedId(chain.block([chain.tx(renter, [openAction(chain, offerId, 2, deposit)])]));
      assert.equal(leaseEndsAt(getLease(chain.state, id)!), T);
      chain.block([chain.tx(renter, [{ type: 'closeLease', leaseId: id }])]);
      assert.equal(getLease(chain.state, id)!.status, LeaseStatus.closed);
      assert.equal(leaseEndQueue(chain.state).length, 0, 'a closed lease leaves no entry');
    }
    while (chain.time < T) chain.block();
    assert.equal(chain.time, T);
    assert.equal(leaseEndQueue(chain.state).length, 0);
  });
});
