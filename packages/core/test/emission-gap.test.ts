/**
 * docs/security-audit-time.md T2: an epoch is allotted its own span of the emission schedule,
 * E(its end) − E(its start), never emission from before it. Before, it was allotted E(its end) −
 * everything allotted so far, so the first epoch with weight took all emission since genesisTime (a
 * network launched a week after its genesisTime minted a week's emission to its first epoch's chips)
 * and every stretch of epochs nobody earned in was paid in one lump to the next epoch with weight.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  cumulativeEmission,
  DEFAULT_HALVING_PERIOD_MS,
  devSoftChipId,
  type EpochRecord,
  epochOf,
  getChip,
  getEmission,
  getEpochRecord,
  getSupply,
  type HeartbeatAnswer,
  scheduledEmission,
} from '../src/index.js';
import { answer, GENESIS_TIME, key, miner, POCI, registerAction, slotsOf, TestChain } from './harness.js';

const P = DEFAULT_HALVING_PERIOD_MS;
const DAY = 86_400_000n;
const WEEK = 7n * DAY;

type Chip = ReturnType<typeof key>;

/** One block: every chip answers the challenge of the block before if `up` says so. */
function step(chain: TestChain, chips: Chip[], up: (i: number, epoch: bigint, h: bigint) => boolean): void {
  const h = chain.height + 1n;
  const epoch = epochOf(h - 1n, POCI);
  const batch: HeartbeatAnswer[] = [];
  for (const [i, chip] of chips.entries()) {
    const record = getChip(chain.state, devSoftChipId(chip.publicKey));
    if (record?.status !== 0 || epoch < record.firstEpoch) continue;
    slotsOf(chain, chip, epoch).forEach((slotHeight, slot) => {
      if (slotHeight === h - 1n && up(i, epoch, h)) batch.push(answer(chain, chip, epoch, slot));
    });
  }
  chain.block(batch.length > 0 ? [chain.tx(miner, [{ type: 'heartbeat', answers: batch }], 0n)] : []);
}

function claim(chain: TestChain, chips: Chip[]): void {
  chain.block([
    chain.tx(miner, [{ type: 'claimRewards', chipIds: chips.map((c) => devSoftChipId(c.publicKey)) }]),
  ]);
}

function register(chain: TestChain, chips: Chip[]): void {
  chain.blocksUntil(2n);
  chain.block([
    chain.tx(
      miner,
      chips.map((c) => registerAction(chain, c, miner.address)),
    ),
  ]);
}

const E = (chain: TestChain) => {
  const reserve = getSupply(chain.state).miningReserve;
  return (t: bigint) => cumulativeEmission(reserve, P, t - GENESIS_TIME);
};

/** The records of every epoch that has one, oldest first, with its successor's start (its end). */
function epochs(chain: TestChain): { r: EpochRecord; end: bigint | null }[] {
  const out: { r: EpochRecord; end: bigint | null }[] = [];
  for (let e = 0n; ; e++) {
    const r = getEpochRecord(chain.state, e);
    if (!r) return out;
    out.push({ r, end: getEpochRecord(chain.state, e + 1n)?.startTime ?? null });
  }
}

/**
 * The schedule's promises after every block: each final epoch is allotted its own span (0 if it had
 * no weight; at most its span however the blocks were timed: the carry is 0), the emission record's
 * `allocated` is the sum of the final budgets, and what was minted is what final epochs paid out.
 */
function checkBudgets(chain: TestChain): void {
  const at = E(chain);
  let budgets = 0n;
  let paid = 0n;
  for (const { r, end } of epochs(chain)) {
    if (!r.final) {
      assert.equal(r.budget, 0n);
      continue;
    }
    assert.ok(end !== null, 'a final epoch has a successor');
    const own = at(end) - at(r.startTime);
    assert.ok(r.budget <= own, `epoch ${r.epoch} allotted ${r.budget}, more than its own span ${own}`);
    assert.equal(r.budget, r.totalWeight > 0n ? own : 0n, `epoch ${r.epoch}: its own span iff it had weight`);
    budgets += r.budget;
    paid += r.budget - r.remainingBudget;
  }
  assert.equal(getEmission(chain.state).allocated, budgets, 'allocated = Σ final budgets');
  assert.equal(getSupply(chain.state).minted, paid, 'minted = Σ paid out of final budgets');
}

describe('emission: an epoch is allotted its own span of the schedule (T2)', () => {
  test('a chain whose block 1 comes a week after genesisTime pays its first epoch only about one epoch', () => {
    const chain = new TestChain();
    chain.step = (h) => (h === 1n ? WEEK : 1000n);
    const chips = [key('emission-gap-chip')];
    register(chain, chips);
    assert.equal(chain.time - GENESIS_TIME, WEEK + 2_000n);
    while (chain.height < 3n * POCI.epochBlocks) {
      step(chain, chips, () => true);
      checkBudgets(chain);
    }
    claim(chain, chips);
    checkBudgets(chain);
    const at = E(chain);
    const e0 = getEpochRecord(chain.state, 0n)!;
    const e1 = getEpochRecord(chain.state, 1n)!;
    const e2 = getEpochRecord(chain.state, 2n)!;
    // Epoch 0 (the chip registered in it, measured from epoch 1 on) had no weight: nothing allotted.
    assert.ok(e0.final && e0.totalWeight === 0n && e0.budget === 0n);
    assert.ok(e1.final && e1.totalWeight > 0n);
    const epochSpan = e2.startTime - e1.startTime; // 20 blocks of 1 s
    assert.equal(epochSpan, POCI.epochBlocks * 1000n);
    assert.equal(e1.budget, at(e2.startTime) - at(e1.startTime));
    // About one epoch's share (the rate is flat within a halving period, to rounding) ...
    const perEpoch = at(GENESIS_TIME + epochSpan);
    assert.ok(e1.budget <= perEpoch + 1n && e1.budget + 1n >= perEpoch, `${e1.budget} vs ${perEpoch}`);
    // ... not the week before block 1 (≈ 30,000 epochs of 20 s): the old rule allotted E(its end).
    assert.ok(e1.budget * 1000n < at(GENESIS_TIME + WEEK), 'the week before block 1 is not paid to epoch 1');
    // The lone chip was paid exactly that.
    const chip = getChip(chain.state, devSoftChipId(chips[0]!.publicKey))!;
    assert.equal(chip.rewardsEarned, e1.budget);
    assert.equal(getSupply(chain.state).minted, e1.budget);
  });

  test('epochs with no weight (every chip offline) are carried into no later epoch', () => {
    const chain = new TestChain();
    const chips = [key('emission-gap-off-0'), key('emission-gap-off-1')];
    register(chain, chips);
    // Every chip offline in epochs 2 and 3, whose blocks come 1 h apart (each epoch spans 20 h):
    // 40 hours nobody was measured in. Back in epoch 4 (blocks of 1 s again).
    const off = (epoch: bigint) => epoch === 2n || epoch === 3n;
    chain.step = (h) => (off(epochOf(h - 1n, POCI)) ? 3_600_000n : 1000n);
    while (chain.height < 7n * POCI.epochBlocks) {
      step(chain, chips, (_, epoch) => !off(epoch));
      checkBudgets(chain);
    }
    claim(chain, chips);
    checkBudgets(chain);
    const at = E(chain);
    const r = (e: bigint) => getEpochRecord(chain.state, e)!;
    const span = (e: bigint) => at(r(e + 1n).startTime) - at(r(e).startTime);
    for (const e of [2n, 3n]) assert.ok(r(e).final && r(e).totalWeight === 0n && r(e).budget === 0n);
    // The first epoch with weight after them (4, or 5 if the chips' class drew no challenge in 4) is
    // allotted its own 20 s, not the 40 hours before it.
    const back = [4n, 5n].find((e) => r(e).totalWeight > 0n)!;
    assert.ok(r(back).final);
    assert.equal(r(back).budget, span(back));
    assert.ok(r(back + 1n).startTime - r(back).startTime < 30_000n);
    assert.ok(r(back).budget * 1000n < at(r(4n).startTime) - at(r(2n).startTime));
    // What the chips were paid: the spans of the final epochs with weight; the dead hours unminted.
    const weighted = [0n, 1n, 2n, 3n, 4n, 5n].filter((e) => r(e).final && r(e).totalWeight > 0n);
    assert.ok(weighted.includes(1n) && weighted.includes(back));
    const minted = getSupply(chain.state).minted;
    assert.equal(
      minted,
      weighted.reduce((sum, e) => sum + span(e), 0n),
    );
  });

  test('property: any block times (a genesis gap up to 30 days, halts up to 3 days), chips up or down, whole epochs offline: every epoch is allotted at most its own span, minted = Σ paid budgets', () => {
    const gap = fc.oneof(
      { weight: 6, arbitrary: fc.bigInt({ min: 1n, max: 3_000n }) },
      { weight: 1, arbitrary: fc.bigInt({ min: 3_000n, max: 3n * DAY }) },
    );
    const scenario = fc.record({
      launch: fc.oneof(fc.bigInt({ min: 1n, max: 3_000n }), fc.bigInt({ min: 3_000n, max: 30n * DAY })),
      gaps: fc.array(gap, { minLength: 16, maxLength: 16 }),
      reliability: fc.array(fc.integer({ min: 0, max: 100 }), { minLength: 1, maxLength: 3 }),
      offEpochs: fc.array(fc.boolean(), { minLength: 6, maxLength: 6 }),
      blocks: fc.integer({ min: 3 * Number(POCI.epochBlocks), max: 6 * Number(POCI.epochBlocks) }),
    });
    let paidRuns = 0;
    let skippedRuns = 0;
    fc.assert(
      fc.property(scenario, (s) => {
        const chain = new TestChain();
        chain.step = (h) => (h === 1n ? s.launch : s.gaps[Number(h % 16n)]!);
        const chips = s.reliability.map((_, i) => key(`emission-gap-prop-${i}`));
        register(chain, chips);
        const seed = (i: number, h: bigint) => Number((h * 7919n + BigInt(i) * 104729n) % 100n);
        while (chain.height < BigInt(s.blocks)) {
          step(chain, chips, (i, epoch, h) => !s.offEpochs[Number(epoch)] && seed(i, h) < s.reliability[i]!);
          checkBudgets(chain);
        }
        claim(chain, chips);
        checkBudgets(chain);
        // The spans tile chain time from block 1 on, judged by the block times themselves (not by
        // the records checkBudgets reads): epoch e starts at the time of its first block, e·B + 1;
        // so the weighted spans are disjoint and add up to at most E(head) − E(block 1's time).
        const timeOf = (h: bigint) => {
          let t = GENESIS_TIME;
          for (let i = 1n; i <= h; i++) t += chain.step(i);
          return t;
        };
        assert.equal(timeOf(chain.height), chain.time);
        const at = E(chain);
        for (const { r } of epochs(chain)) {
          assert.equal(
            r.startTime,
            timeOf(r.epoch * POCI.epochBlocks + 1n),
            `epoch ${r.epoch} starts at its first block`,
          );
        }
        const allocated = getEmission(chain.state).allocated;
        assert.ok(allocated <= at(chain.time) - at(timeOf(1n)), 'Σ spans ≤ E(head) − E(block 1)');
        // Every chip claimed every final epoch: what was minted is exactly the sum of final budgets.
        const finals = epochs(chain).filter(({ r }) => r.final);
        const budgets = finals.reduce((sum, { r }) => sum + r.budget, 0n);
        assert.equal(getSupply(chain.state).minted, budgets, 'minted = Σ final budgets');
        if (budgets > 0n) paidRuns++;
        if (finals.some(({ r }) => r.totalWeight === 0n && r.epoch > 0n)) skippedRuns++;
      }),
      { numRuns: 15 },
    );
    assert.ok(paidRuns > 0, 'some runs paid chips (the bound is not met by paying nothing)');
    assert.ok(skippedRuns > 0, 'some runs had an epoch past the first with no weight');
  });
});

describe('scheduledEmission: spans of a monotone, capped schedule', () => {
  test('property: any u64 times (before genesisTime, across halvings, at the u64 limit): spans ≥ 0, additive, within the reserve', () => {
    const U64 = 0xffff_ffff_ffff_ffffn;
    const time = fc.bigInt({ min: 0n, max: U64 });
    fc.assert(
      fc.property(
        fc.bigInt({ min: 1n, max: 2n ** 128n - 1n }),
        fc.oneof(
          fc.bigInt({ min: 1000n, max: 100_000n }),
          fc.constant(DEFAULT_HALVING_PERIOD_MS),
          fc.constant(U64),
        ),
        time,
        fc.array(time, { minLength: 3, maxLength: 3 }),
        (reserve, halvingPeriodMs, genesisTime, ts) => {
          const [a, b, c] = ts.sort((x, y) => (x < y ? -1 : x > y ? 1 : 0)) as [bigint, bigint, bigint];
          const e = { genesisTime, halvingPeriodMs };
          const ab = scheduledEmission(reserve, e, a, b);
          const bc = scheduledEmission(reserve, e, b, c);
          assert.ok(ab >= 0n && bc >= 0n, 'a later time never has less emitted');
          assert.equal(
            ab + bc,
            scheduledEmission(reserve, e, a, c),
            'consecutive spans tile: no gap, no overlap',
          );
          assert.ok(scheduledEmission(reserve, e, 0n, c) < reserve, 'never the whole reserve');
          if (b <= genesisTime) assert.equal(ab, 0n, 'nothing before genesisTime');
        },
      ),
      { numRuns: 500 },
    );
  });
});
