/**
 * CONSENSUS CHANGE (branch modelpower): the model registry is the one source of a chip's rated
 * power. A governance change of a model's power reaches chips registered before it from the next
 * epoch (rewards, the owner's seat bound, network figures); a removed model's chips stop counting.
 * docs/poci.md, "A model's power".
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  type Action,
  type Chip,
  chipWeight,
  devSoftChipId,
  effectiveStatus,
  epochOf,
  type GovProposal,
  getChip,
  getEpochRecord,
  getGovernance,
  getModel,
  type HeartbeatAnswer,
  networkAggregates,
  ownerRatedPower,
  seatPowerOf,
  type TxEvent,
  UPTIME_SCALE,
  ValidationError,
} from '../src/index.js';
import { answer, govAction, key, miner, POCI, registerAction, slotsOf, TestChain } from './harness.js';

const setPower = (modelId: string, power: bigint): GovProposal => ({
  type: 'setModel',
  model: { vendorId: 'dev', modelId, name: 'sim', power },
});

/**
 * Runs `blocks` blocks; in each, the active chips answer (if `answers` says so) the slots whose
 * block was the previous one, then `extra(h)` actions run in the same transaction.
 */
function drive(
  chain: TestChain,
  chips: ReturnType<typeof key>[],
  answers: (chip: number, epoch: bigint, slot: number) => boolean,
  blocks: bigint,
  extra: (height: bigint) => Action[] = () => [],
): void {
  const end = chain.height + blocks;
  while (chain.height < end) {
    const h = chain.height + 1n;
    const batch: HeartbeatAnswer[] = [];
    const epoch = epochOf(h - 1n, POCI);
    for (const [i, chip] of chips.entries()) {
      const record = getChip(chain.state, devSoftChipId(chip.publicKey));
      if (
        !record ||
        effectiveStatus(chain.state, record, chain.time).status !== 'active' ||
        epoch < record.firstEpoch
      )
        continue;
      slotsOf(chain, chip, epoch).forEach((slotHeight, slot) => {
        if (slotHeight === h - 1n && answers(i, epoch, slot)) batch.push(answer(chain, chip, epoch, slot));
      });
    }
    const actions: Action[] = batch.length > 0 ? [{ type: 'heartbeat', answers: batch }] : [];
    actions.push(...extra(h));
    const onlyHeartbeats = actions.every((a) => a.type === 'heartbeat');
    chain.block(actions.length > 0 ? [chain.tx(miner, actions, onlyHeartbeats ? 0n : undefined)] : []);
  }
}

function register(chain: TestChain, chips: ReturnType<typeof key>[], modelOf: (i: number) => string): void {
  chain.block([
    chain.tx(
      miner,
      chips.map((c, i) => registerAction(chain, c, miner.address, chain.height, modelOf(i))),
    ),
  ]);
}

function claimAll(chain: TestChain, chips: ReturnType<typeof key>[]): void {
  chain.block([
    chain.tx(miner, [{ type: 'claimRewards', chipIds: chips.map((c) => devSoftChipId(c.publicKey)) }]),
  ]);
}

type Rewarded = Extract<TxEvent, { type: 'chipRewarded' }>;
const rewarded = (chain: TestChain): Rewarded[] =>
  chain.events.filter((e): e is Rewarded => e.type === 'chipRewarded');

const chipsOf = (chain: TestChain, chips: ReturnType<typeof key>[]): Chip[] =>
  chips.map((c) => getChip(chain.state, devSoftChipId(c.publicKey))!);

describe('a model power change reaches chips registered before it', () => {
  test('power lowered: chips registered before are weighed at the new power from the next epoch', () => {
    const chain = new TestChain();
    const chips = [key('mp-a'), key('mp-b'), key('mp-c')];
    register(chain, chips, () => 'sim-h100');
    const changeAt = 2n * POCI.epochBlocks + 10n; // in epoch 2
    const lowered = 500_000n;
    drive(
      chain,
      chips,
      () => true,
      6n * POCI.epochBlocks - chain.height,
      (h) => (h === changeAt ? [govAction(chain, setPower('sim-h100', lowered))] : []),
    );
    claimAll(chain, chips);
    const events = rewarded(chain);
    for (const epoch of [1n, 2n, 3n, 4n]) {
      const paid = events.filter((e) => e.epoch === epoch);
      const power = epoch >= 3n ? lowered : 989_000n;
      for (const e of paid) {
        assert.equal(e.power, power, `epoch ${epoch}: power`);
        assert.equal(e.weight, chipWeight(power, e.answered, e.challenged, POCI), `epoch ${epoch}: weight`);
      }
      const r = getEpochRecord(chain.state, epoch)!;
      assert.equal(
        r.totalWeight,
        paid.reduce((s, e) => s + e.weight, 0n),
        `epoch ${epoch}: total weight = Σ weights`,
      );
      assert.equal(r.remainingWeight, 0n);
    }
    // At least one chip answered every challenge of epoch 3 and so weighs exactly the new power.
    assert.ok(events.some((e) => e.epoch === 3n && e.weight === lowered * UPTIME_SCALE));
    // The owner's seat bound and the network figures follow.
    assert.equal(ownerRatedPower(chain.state, miner.address), 3n * lowered);
    const figures = networkAggregates(chain.state, chipsOf(chain, chips), chain.height);
    assert.equal(figures.ratedPower, 3n * lowered);
    // Seat power at the next boundary: the same chain without the change seats more.
    const unchanged = new TestChain();
    register(unchanged, chips, () => 'sim-h100');
    drive(unchanged, chips, () => true, 6n * POCI.epochBlocks - unchanged.height);
    claimAll(unchanged, chips);
    const boundary = 6n * POCI.epochBlocks + 1n; // both chains' head: the first block of epoch 6
    assert.equal(chain.height, boundary);
    assert.equal(unchanged.height, boundary);
    const seat = seatPowerOf(chain.state, miner.address, boundary);
    const seatBefore = seatPowerOf(unchanged.state, miner.address, boundary);
    assert.ok(seat > 0n && seat <= 3n * lowered, `seat ${seat}`);
    assert.ok(seatBefore > 3n * lowered, `seat without the change ${seatBefore}`);
  });

  test('the epoch under way keeps the old power; the network figures switch at the next epoch', () => {
    const chain = new TestChain();
    const chips = [key('mp-d')];
    register(chain, chips, () => 'sim-h100');
    drive(chain, chips, () => true, POCI.epochBlocks + 5n - chain.height);
    chain.block([chain.tx(miner, [govAction(chain, setPower('sim-h100', 1_000n))])]);
    const now = networkAggregates(chain.state, chipsOf(chain, chips), chain.height);
    assert.equal(now.ratedPower, 989_000n);
    const next = networkAggregates(chain.state, chipsOf(chain, chips), 2n * POCI.epochBlocks + 1n);
    assert.equal(next.ratedPower, 1_000n);
    assert.equal(getModel(chain.state, 'dev', 'sim-h100')?.powerFrom, 2n);
  });

  test('model removed: its chips stop earning and cannot answer (revoked, with the reason)', () => {
    const chain = new TestChain();
    const chips = [key('mp-e'), key('mp-f')];
    register(chain, chips, (i) => (i === 0 ? 'sim-h100' : 'sim-a100'));
    const removeAt = 2n * POCI.epochBlocks + 10n;
    drive(
      chain,
      chips,
      () => true,
      6n * POCI.epochBlocks - chain.height,
      (h) =>
        h === removeAt
          ? [govAction(chain, { type: 'removeModel', vendorId: 'dev', modelId: 'sim-h100' })]
          : [],
    );
    const removed = getChip(chain.state, devSoftChipId(chips[0]!.publicKey))!;
    const status = effectiveStatus(chain.state, removed, chain.time);
    assert.equal(status.status, 'revoked');
    assert.match(status.reason, /model dev\/sim-h100 removed by governance/);
    claimAll(chain, chips);
    const removedId = devSoftChipId(chips[0]!.publicKey);
    const paid = rewarded(chain).filter((e) => Buffer.from(e.chipId).equals(Buffer.from(removedId)));
    assert.ok(paid.length > 0, 'what it earned before the removal is still paid');
    assert.ok(
      paid.every((e) => e.epoch <= 2n),
      'nothing after the epoch of the removal',
    );
    // The other model's chip keeps earning.
    assert.ok(rewarded(chain).some((e) => e.epoch === 4n));
    // Its answers are refused from the removal on.
    const refused = chain.attempt(
      chain.tx(miner, [{ type: 'heartbeat', answers: [answer(chain, chips[0]!, 5n, 0)] }], 0n),
    );
    assert.ok(refused instanceof ValidationError);
    // Removing a model that is not there is refused, nothing changed.
    const nonce = getGovernance(chain.state).nonce;
    const again = chain.attempt(
      chain.tx(miner, [govAction(chain, { type: 'removeModel', vendorId: 'dev', modelId: 'sim-h100' })]),
    );
    assert.equal(again?.code, 'UNKNOWN_MODEL');
    assert.equal(getGovernance(chain.state).nonce, nonce);
  });

  test('a second change while the epoch before the first is still answerable is refused MODEL_POWER_PENDING', () => {
    const chain = new TestChain();
    chain.blocksUntil(POCI.epochBlocks + 3n); // epoch 1
    chain.block([chain.tx(miner, [govAction(chain, setPower('sim-h100', 700_000n))])]); // from epoch 2
    // Again in the same epoch: replaces the pending change.
    chain.block([chain.tx(miner, [govAction(chain, setPower('sim-h100', 600_000n))])]);
    assert.deepEqual(
      { ...getModel(chain.state, 'dev', 'sim-h100') },
      {
        vendorId: 'dev',
        modelId: 'sim-h100',
        name: 'sim',
        power: 600_000n,
        prevPower: 989_000n,
        powerFrom: 2n,
      },
    );
    chain.blocksUntil(2n * POCI.epochBlocks + 1n); // epoch 2, epoch 1 not final
    const refused = chain.attempt(chain.tx(miner, [govAction(chain, setPower('sim-h100', 500_000n))]));
    assert.equal(refused?.code, 'MODEL_POWER_PENDING');
    chain.blocksUntil(2n * POCI.epochBlocks + POCI.answerWindowBlocks + 2n); // epoch 1 final
    chain.block([chain.tx(miner, [govAction(chain, setPower('sim-h100', 500_000n))])]);
    const m = getModel(chain.state, 'dev', 'sim-h100')!;
    assert.deepEqual([m.power, m.prevPower, m.powerFrom], [500_000n, 600_000n, 3n]);
  });

  test('property: after random power changes, each final epoch weighs exactly Σ of its chips weights, each at the power in force', () => {
    const models = ['sim-h100', 'sim-a100'];
    const change = fc.record({
      height: fc.bigInt({ min: 2n, max: 7n * POCI.epochBlocks }),
      model: fc.integer({ min: 0, max: 1 }),
      power: fc.bigInt({ min: 1n, max: 2_000_000n }),
    });
    fc.assert(
      fc.property(
        fc.array(change, { maxLength: 8 }),
        fc.array(fc.boolean(), { minLength: 64, maxLength: 64 }),
        (changes, table) => {
          const chain = new TestChain();
          const chips = [key('pp-0'), key('pp-1'), key('pp-2'), key('pp-3')];
          register(chain, chips, (i) => models[i % 2]!);
          // What the test expects: each model's power by the epoch it takes effect from.
          const schedule = new Map<string, { from: bigint; power: bigint }[]>(
            models.map((m) => [m, [{ from: 0n, power: getModel(chain.state, 'dev', m)!.power }]]),
          );
          const powerAt = (m: string, epoch: bigint) =>
            schedule
              .get(m)!
              .filter((s) => s.from <= epoch)
              .at(-1)!.power;
          drive(
            chain,
            chips,
            (i, epoch, slot) => table[(i * 17 + Number(epoch) * 5 + slot) % 64]!,
            8n * POCI.epochBlocks - chain.height,
            (h) => {
              const actions: Action[] = [];
              for (const c of changes.filter((x) => x.height === h)) {
                const proposal = setPower(models[c.model]!, c.power);
                const action = govAction(chain, proposal);
                // A change refused (MODEL_POWER_PENDING) is left out, as governance would retry later.
                if (chain.attempt(chain.tx(miner, [action]))) continue;
                // Only one proposal per block here (each uses the governance nonce).
                if (actions.length > 0) continue;
                actions.push(action);
                const list = schedule.get(models[c.model]!)!;
                const from = epochOf(h, POCI) + 1n;
                while (list.length > 1 && list.at(-1)!.from >= from) list.pop();
                list.push({ from, power: c.power });
              }
              return actions;
            },
          );
          claimAll(chain, chips);
          const events = rewarded(chain);
          for (let epoch = 1n; epoch < 7n; epoch++) {
            const r = getEpochRecord(chain.state, epoch);
            if (!r) continue; // pruned once nothing was left to pay
            assert.ok(r.final);
            const paid = events.filter((e) => e.epoch === epoch);
            for (const e of paid) {
              const i = chips.findIndex((c) =>
                Buffer.from(devSoftChipId(c.publicKey)).equals(Buffer.from(e.chipId)),
              );
              assert.equal(e.power, powerAt(models[i % 2]!, epoch), `chip ${i} epoch ${epoch}`);
              assert.equal(e.weight, chipWeight(e.power, e.answered, e.challenged, POCI));
            }
            assert.equal(
              r.totalWeight,
              paid.reduce((s, e) => s + e.weight, 0n),
              `epoch ${epoch}`,
            );
            assert.equal(r.remainingWeight, 0n);
          }
          // The owner's index weight is Σ of its chips' powers.
          const sum = chipsOf(chain, chips).reduce((s, c) => s + c.power, 0n);
          assert.equal(ownerRatedPower(chain.state, miner.address), sum);
        },
      ),
      { numRuns: 6 },
    );
  });
});
