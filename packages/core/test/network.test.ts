import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  type Chip,
  ChipStatus,
  DEFAULT_POCI_PARAMS,
  encode,
  isOnline,
  isProvenOnline,
  modelKey,
  networkAggregates,
  type StateReader,
  storedModelCodec,
  toHex,
} from '../src/index.js';

/**
 * A state holding one model per chip at the chip's power (a chip is read at its model's power, and
 * a chip whose model is gone counts as revoked): each chip gets a model of its own.
 */
function withModels(chips: Chip[]): { state: StateReader; chips: Chip[] } {
  const models = new Map<string, Uint8Array>();
  const out = chips.map((c, i) => {
    const chip = { ...c, modelId: `m${i}` };
    const key = modelKey(chip.vendorId, chip.modelId);
    models.set(
      toHex(key),
      encode(storedModelCodec, {
        vendorId: chip.vendorId,
        modelId: chip.modelId,
        name: chip.modelId,
        power: c.power,
        prevPower: c.power,
        powerFrom: 0n,
      }),
    );
    return chip;
  });
  return { state: { get: (k) => models.get(toHex(k)) }, chips: out };
}
const p = { ...DEFAULT_POCI_PARAMS, epochBlocks: 24n, slotsPerEpoch: 4 };
/** Every class is challenged at heights 5, 9, 13, … of every epoch. */
const challengesOf = (epoch: bigint) => [5n, 9n, 13n, 17n].map((h) => epoch * p.epochBlocks + h);

const chipArb = fc
  .record({
    id: fc.uint8Array({ minLength: 32, maxLength: 32 }),
    power: fc.bigInt({ min: 0n, max: 2n ** 100n }),
    status: fc.constantFrom(
      ChipStatus.active,
      ChipStatus.active,
      ChipStatus.revoked,
      ChipStatus.deregistered,
    ),
    registeredAt: fc.bigInt({ min: 1n, max: 200n }),
    lastAnsweredSlot: fc.bigInt({ min: 0n, max: 240n }),
  })
  .map(
    (r): Chip => ({
      chipId: r.id,
      owner: new Uint8Array(20),
      vendorId: 'v',
      modelId: 'm',
      // Not dev-soft: on this bare state (no POCI parameters, so dev-soft off) a software chip
      // would count as revoked whatever its record says.
      profile: 'tpm2',
      power: r.power,
      keyMaterial: new Uint8Array(32),
      certSerials: [],
      registeredAt: r.registeredAt,
      firstEpoch: 0n,
      status: r.status,
      statusReason: '',
      tpmClock: null,
      creditClock: null,
      creditClockTime: 0n,
      priorCredit: null,
      epoch: 0n,
      answered: 0,
      prevAnswered: 0,
      uncredited: 0,
      prevUncredited: 0,
      lastAnsweredSlot: r.lastAnsweredSlot,
      lastAnsweredAt: r.lastAnsweredSlot,
      settledThrough: 0n,
      slotsAnswered: 0n,
      slotsMissed: 0n,
      rewardsEarned: 0n,
      rewardedThrough: 0n,
      prevPower: r.power,
      certsNotAfter: null,
      releasedAt: 0n,
    }),
  );

test('network aggregates: exact bigint sums over every chip, whatever their order; proven online ⊆ active ⊆ all', () => {
  fc.assert(
    fc.property(
      fc.array(chipArb, { maxLength: 60 }),
      fc.bigInt({ min: 1n, max: 260n }),
      (generated, height) => {
        const { state, chips } = withModels(generated);
        const a = networkAggregates(state, chips, height, p, challengesOf);
        const b = networkAggregates(state, [...chips].reverse(), height, p, challengesOf);
        assert.deepEqual(a, b);
        const active = chips.filter((c) => c.status === ChipStatus.active);
        const online = active.filter((c) => isProvenOnline(c, height, p, challengesOf));
        const sum = (list: Chip[]) => list.reduce((s, c) => s + c.power, 0n);
        assert.equal(a.chips, chips.length);
        assert.equal(a.activeChips, active.length);
        assert.equal(a.onlineChips, online.length);
        assert.equal(a.ratedPower, sum(chips));
        assert.equal(a.activePower, sum(active));
        assert.equal(a.onlinePower, sum(online));
        assert.ok(a.onlinePower <= a.activePower && a.activePower <= a.ratedPower);
        assert.equal(a.height, height);
      },
    ),
    { numRuns: 200 },
  );
});

test('a chip silent through K challenges drops out of the online figures; one that answered stays', () => {
  const base = chipArb.filter(() => true);
  const [silent, answering] = fc.sample(base, { numRuns: 2, seed: 7 }).map((c) => ({
    ...c,
    status: ChipStatus.active,
    registeredAt: 1n,
    power: 10n ** 30n,
  }));
  const height = 5n * p.epochBlocks;
  const answered = { ...answering!, lastAnsweredSlot: challengesOf(4n)[1]!, lastAnsweredAt: height - 1n };
  const { state, chips } = withModels([silent!, answered]);
  const a = networkAggregates(state, chips, height, p, challengesOf);
  assert.equal(a.activeChips, 2);
  assert.equal(a.onlineChips, 1);
  assert.equal(a.onlinePower, 10n ** 30n);
});

test('attack: chips registered again and again without ever answering add nothing to the online figures', () => {
  // A fresh registration has missed fewer than K challenges, so the miss rule alone reads it as
  // online; deregistering and registering again restarts that count. Only an answer proves it.
  const [fresh, answering] = fc.sample(chipArb, { numRuns: 2, seed: 11 }).map((c) => ({
    ...c,
    status: ChipStatus.active,
    power: 10n ** 6n,
  }));
  const height = 5n * p.epochBlocks;
  const registered = { ...fresh!, registeredAt: height - 1n, lastAnsweredSlot: 0n, lastAnsweredAt: 0n };
  const answered = {
    ...answering!,
    registeredAt: 1n,
    lastAnsweredSlot: challengesOf(4n)[3]!,
    lastAnsweredAt: challengesOf(4n)[3]! + 1n,
  };
  assert.ok(isOnline(registered, height, p, challengesOf), 'online to the miss rule alone');
  const { state, chips } = withModels([registered, answered]);
  const a = networkAggregates(state, chips, height, p, challengesOf);
  assert.equal(a.activeChips, 2);
  assert.equal(a.activePower, 2n * 10n ** 6n);
  assert.equal(a.onlineChips, 1);
  assert.equal(a.onlinePower, 10n ** 6n);
});
