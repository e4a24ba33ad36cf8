/**
 * CONSENSUS CHANGE (docs/poci.md "Old epochs are pruned"): an old epoch's record and class records
 * leave the state once nothing of it is left to pay, a bounded amount of work per block, in order.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  type Chip,
  challengeClasses,
  challengeClassKey,
  chipClass,
  chipWeight,
  classWeight,
  DEFAULT_POCI_PARAMS,
  EPOCH_KEEP_EPOCHS,
  EPOCH_PRUNE_KEY,
  type EpochRecord,
  epochKey,
  epochPruned,
  epochStart,
  getEpochPruneCursor,
  getPociParams,
  MemoryState,
  type PociParams,
  pruneEpochs,
  putChallengeClass,
  putEpochPruneCursor,
  putEpochRecord,
  StateOverlay,
  settleChipRewards,
} from '../src/index.js';
import { TestChain } from './harness.js';

const p: PociParams = { ...DEFAULT_POCI_PARAMS, epochBlocks: 20n, slotsPerEpoch: 4, answerWindowBlocks: 5n };
const M = challengeClasses(p); // 5

function record(epoch: bigint, final: boolean, remainingWeight: bigint): EpochRecord {
  return {
    epoch,
    seed: new Uint8Array(32),
    startHeight: epochStart(epoch, p),
    startTime: 0n,
    totalWeight: remainingWeight,
    final,
    budget: 0n,
    remainingBudget: remainingWeight,
    remainingWeight,
  };
}

/**
 * Epochs 0…3: 0 and 3 paid out, 1 still owes a chip of class 0 its reward (the only class any chip
 * answered in), 2 (never final) too.
 */
function fixture(): StateOverlay {
  const s = new StateOverlay(new MemoryState());
  const owed = [0n, 7n, 0n, 0n];
  for (let e = 0n; e < 4n; e++) {
    putEpochRecord(s, record(e, e !== 2n, owed[Number(e)]!));
    for (let c = 0n; c < M; c++)
      putChallengeClass(s, e, c, {
        heights: [e * 20n + c + 1n],
        powerByAnswered: c === 0n ? [1n] : [],
        weight: c === 0n ? 7n : 0n,
      });
  }
  return s;
}

const has = (s: StateOverlay, k: Uint8Array) => s.get(k) !== undefined;
const heightOf = (epoch: bigint) => epochStart(epoch, p);

describe('pruning old epochs', () => {
  test('nothing is pruned before an epoch is EPOCH_KEEP_EPOCHS behind the current one', () => {
    const s = fixture();
    assert.equal(pruneEpochs(s, heightOf(EPOCH_KEEP_EPOCHS - 1n), p), 0);
    assert.equal(s.get(EPOCH_PRUNE_KEY), undefined, 'the cursor did not move');
    assert.ok(has(s, epochKey(0n)));
  });

  test('a paid-out epoch loses its record and classes; one still owing a reward keeps its record and weighed classes', () => {
    const s = fixture();
    const removed = pruneEpochs(s, heightOf(3n + EPOCH_KEEP_EPOCHS), p);
    assert.equal(removed, 2 * (Number(M) + 1) + (Number(M) - 1));
    for (const e of [0n, 3n]) {
      assert.equal(has(s, epochKey(e)), false);
      for (let c = 0n; c < M; c++) assert.equal(has(s, challengeClassKey(e, c)), false);
      assert.ok(epochPruned(s, e));
    }
    for (const e of [1n, 2n]) {
      assert.ok(has(s, epochKey(e)), `epoch ${e} kept`);
      assert.equal(epochPruned(s, e), false);
    }
    // Epoch 2 is not final: all kept. Epoch 1 owes: the class a chip answered in (its weight) is
    // kept for the reward read; the weightless ones no reward read opens are not.
    for (let c = 0n; c < M; c++) assert.ok(has(s, challengeClassKey(2n, c)));
    assert.ok(has(s, challengeClassKey(1n, 0n)), 'the owing class is kept');
    for (let c = 1n; c < M; c++)
      assert.equal(has(s, challengeClassKey(1n, c)), false, `weightless class ${c} of an owing epoch`);
    assert.deepEqual(getEpochPruneCursor(s), { epoch: 4n, cls: 0n });
    assert.equal(epochPruned(s, 4n), false, 'an epoch the pruning has not reached is not pruned');
  });

  test('bounded per block: a small budget takes several blocks and ends in the same state', () => {
    const whole = fixture();
    pruneEpochs(whole, heightOf(3n + EPOCH_KEEP_EPOCHS), p);
    const steps = fixture();
    let blocks = 0;
    for (; blocks < 100; blocks++) {
      const before = getEpochPruneCursor(steps);
      pruneEpochs(steps, heightOf(3n + EPOCH_KEEP_EPOCHS), p, 3);
      const after = getEpochPruneCursor(steps);
      if (before.epoch === after.epoch && before.cls === after.cls) break;
    }
    assert.ok(blocks > 3, `took ${blocks} blocks`);
    assert.deepEqual(
      steps
        .changes()
        .map((w) => [Buffer.from(w.key).toString('hex'), w.value && Buffer.from(w.value).toString('hex')]),
      whole
        .changes()
        .map((w) => [Buffer.from(w.key).toString('hex'), w.value && Buffer.from(w.value).toString('hex')]),
    );
  });

  test('a reward read of a pruned epoch pays nothing and goes on to the chip’s later epoch', () => {
    const base = new TestChain();
    const s = new StateOverlay(base.state);
    const q = getPociParams(s);
    const chipId = new Uint8Array(32).fill(9);
    const cls = chipClass(chipId, q);
    // Epoch 4 was pruned (the cursor is past it); epoch 5 is final and owes this chip its weight.
    putEpochPruneCursor(s, { epoch: 5n, cls: 0n });
    putChallengeClass(s, 5n, cls, {
      heights: [101n, 102n, 103n, 104n],
      powerByAnswered: [0n, 0n, 0n, 10n],
      weight: chipWeight(10n, 4, 4, q),
    });
    // Its only chip: what the epoch owes is exactly the chip's weight.
    putEpochRecord(s, {
      ...record(5n, true, chipWeight(10n, 4, 4, q)),
      budget: 1_000n,
      remainingBudget: 1_000n,
    });
    const chip = {
      chipId,
      owner: new Uint8Array(20).fill(1),
      power: 10n,
      firstEpoch: 0n,
      epoch: 5n,
      prevAnswered: 0b1,
      answered: 0b1111,
      uncredited: 0,
      prevUncredited: 0,
      rewardedThrough: 0n,
      rewardsEarned: 0n,
    } as unknown as Chip;
    assert.ok(epochPruned(s, 4n));
    const paid = settleChipRewards(s, chip, q, cls);
    assert.deepEqual(
      paid.map((r) => r.epoch),
      [5n],
      'epoch 4 skipped, epoch 5 paid',
    );
    assert.equal(paid[0]!.amount, 1_000n);
    assert.equal(chip.rewardedThrough, 6n);
  });

  test('an epoch passed by while it owed loses each class once paid out, then its record', () => {
    const base = new TestChain();
    const q = getPociParams(base.state);
    const ids = [new Uint8Array(32).fill(9), new Uint8Array(32).fill(10)];
    const classes = ids.map((id) => chipClass(id, q));
    assert.notEqual(classes[0], classes[1], 'two classes');
    const w = [chipWeight(10n, 4, 4, q), chipWeight(30n, 3, 4, q)];
    const run = (cursor: bigint) => {
      const s = new StateOverlay(base.state);
      putEpochPruneCursor(s, { epoch: cursor, cls: 0n });
      ids.forEach((_, i) =>
        putChallengeClass(s, 5n, classes[i]!, {
          heights: [101n, 102n, 103n, 104n],
          powerByAnswered: i === 0 ? [0n, 0n, 0n, 10n] : [0n, 0n, 30n],
          weight: w[i]!,
        }),
      );
      putEpochRecord(s, { ...record(5n, true, w[0]! + w[1]!), budget: 1_000n, remainingBudget: 1_000n });
      const chips = ids.map(
        (chipId, i) =>
          ({
            chipId,
            owner: new Uint8Array(20).fill(1),
            power: i === 0 ? 10n : 30n,
            firstEpoch: 0n,
            epoch: 5n,
            prevAnswered: 0,
            answered: i === 0 ? 0b1111 : 0b111,
            uncredited: 0,
            prevUncredited: 0,
            rewardedThrough: 5n,
            rewardsEarned: 0n,
          }) as unknown as Chip,
      );
      return { s, chips };
    };
    // Passed by (cursor 6): the first payout takes its class, the last the other and the record.
    const { s, chips } = run(6n);
    const first = settleChipRewards(s, chips[0]!, q, classes[0]!);
    assert.equal(has(s, challengeClassKey(5n, classes[0]!)), false, 'its class is paid out');
    assert.ok(has(s, challengeClassKey(5n, classes[1]!)), 'the other chip is still owed');
    assert.ok(has(s, epochKey(5n)) && !epochPruned(s, 5n));
    const second = settleChipRewards(s, chips[1]!, q, classes[1]!);
    assert.equal(has(s, challengeClassKey(5n, classes[1]!)), false);
    assert.equal(has(s, epochKey(5n)), false, 'nothing owed: the record goes');
    assert.ok(epochPruned(s, 5n));
    // The same payouts as where the pruning has not come yet (cursor 0: both records stay).
    const fresh = run(0n);
    const amounts = fresh.chips.map((c, i) => settleChipRewards(fresh.s, c, q, classes[i]!)[0]!.amount);
    assert.deepEqual([first[0]!.amount, second[0]!.amount], amounts);
    assert.equal(amounts[0]! + amounts[1]!, 1_000n, 'the whole budget paid');
    assert.ok(has(fresh.s, epochKey(5n)), 'not passed by: pruneEpochs takes it in order');
    for (const cls of classes) assert.ok(has(fresh.s, challengeClassKey(5n, cls)));
    // The pruning part way through epoch 5 (past both classes, kept as owed): each payout takes its
    // class, and the pruning, resumed, takes the record once nothing is owed; no class is left.
    const high = classes[0]! > classes[1]! ? classes[0]! : classes[1]!;
    const midway = run(5n);
    putEpochPruneCursor(midway.s, { epoch: 5n, cls: high + 1n });
    midway.chips.forEach((c, i) => settleChipRewards(midway.s, c, q, classes[i]!));
    for (const cls of classes) assert.equal(has(midway.s, challengeClassKey(5n, cls)), false);
    assert.ok(has(midway.s, epochKey(5n)), 'the record is the pruning’s to take');
    pruneEpochs(midway.s, epochStart(5n + EPOCH_KEEP_EPOCHS, q), q, 1_000_000);
    assert.equal(has(midway.s, epochKey(5n)), false);
    assert.ok(epochPruned(midway.s, 5n));
  });

  test('property: payouts and pruning in any order pay what an unpruned epoch pays, and leave nothing once all is paid', () => {
    const base = new TestChain();
    const q = getPociParams(base.state);
    const chipArb = fc.record({
      cls: fc.integer({ min: 0, max: 3 }),
      power: fc.bigInt({ min: 1n, max: 50n }),
      answered: fc.integer({ min: 1, max: 4 }),
    });
    fc.assert(
      fc.property(
        fc.array(chipArb, { minLength: 1, maxLength: 6 }),
        fc.bigInt({ min: 0n, max: 10n ** 9n }),
        fc.array(fc.oneof(fc.constant(-1), fc.nat(5)), { maxLength: 20 }),
        fc.integer({ min: 2, max: 5 }),
        (specs, budget, steps, pruneBudget) => {
          const setup = () => {
            const s = new StateOverlay(base.state);
            putEpochPruneCursor(s, { epoch: 5n, cls: 0n });
            let total = 0n;
            for (let cls = 0n; cls < 4n; cls++) {
              const powerByAnswered = [0n, 0n, 0n, 0n];
              for (const c of specs) if (BigInt(c.cls) === cls) powerByAnswered[c.answered - 1]! += c.power;
              const r = { heights: [101n, 102n, 103n, 104n], powerByAnswered, weight: 0n };
              r.weight = classWeight(r, q);
              total += r.weight;
              putChallengeClass(s, 5n, cls, r);
            }
            putEpochRecord(s, { ...record(5n, true, total), budget, remainingBudget: budget });
            const chips = specs.map(
              (c, i) =>
                ({
                  chipId: new Uint8Array(32).fill(i + 1),
                  owner: new Uint8Array(20).fill(i + 1),
                  power: c.power,
                  firstEpoch: 0n,
                  epoch: 5n,
                  prevAnswered: 0,
                  answered: 2 ** c.answered - 1,
                  uncredited: 0,
                  prevUncredited: 0,
                  rewardedThrough: 5n,
                  rewardsEarned: 0n,
                }) as unknown as Chip,
            );
            return { s, chips };
          };
          const pay = (s: StateOverlay, chip: Chip, i: number) =>
            settleChipRewards(s, chip, q, BigInt(specs[i]!.cls)).reduce((a, r) => a + r.amount, 0n);
          // Unpruned: the chips paid in order, the pruning never run.
          const plain = setup();
          const expected = plain.chips.map((c, i) => pay(plain.s, c, i));
          // Pruned: pruning steps (-1) and payouts (a chip index) interleaved, then every chip paid
          // in the same order, then the pruning run out.
          const pruned = setup();
          const height = epochStart(5n + EPOCH_KEEP_EPOCHS, q);
          const got = pruned.chips.map(() => 0n);
          const paidIdx = new Set<number>();
          const order: number[] = [];
          for (const st of steps) {
            if (st === -1) pruneEpochs(pruned.s, height, q, pruneBudget);
            else if (st < specs.length && !paidIdx.has(st)) {
              paidIdx.add(st);
              order.push(st);
            }
          }
          for (let i = 0; i < specs.length; i++) if (!paidIdx.has(i)) order.push(i);
          // The same order for the unpruned run (amounts depend on it: the last payer takes the dust).
          const plain2 = setup();
          const expected2 = plain2.chips.map(() => 0n);
          for (const i of order) expected2[i] = pay(plain2.s, plain2.chips[i]!, i);
          for (const i of order) got[i] = pay(pruned.s, pruned.chips[i]!, i);
          assert.deepEqual(got, expected2);
          assert.equal(
            expected.reduce((a, b) => a + b, 0n),
            expected2.reduce((a, b) => a + b, 0n),
          );
          for (let k = 0; k < 10_000 && getEpochPruneCursor(pruned.s).epoch <= 5n; k++)
            pruneEpochs(pruned.s, height, q, pruneBudget);
          for (let cls = 0n; cls < challengeClasses(q); cls++)
            assert.equal(has(pruned.s, challengeClassKey(5n, cls)), false, `class ${cls} left`);
          assert.equal(has(pruned.s, epochKey(5n)), false);
          assert.ok(epochPruned(pruned.s, 5n));
        },
      ),
      { numRuns: 150 },
    );
  });
});
