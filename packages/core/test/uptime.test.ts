import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { DEFAULT_SIM, randomSchedule, simulateLiveness } from '../bench/liveness-sim.js';

describe('pay for uptime, not for timing', () => {
  test('schedules: online exactly the fraction asked, in sessions of at least the minimum', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(0.02, 0.1, 0.5, 0.9, 1),
        fc.integer({ min: 1, max: 2 ** 31 }),
        (f, seed) => {
          let s = seed;
          const rand = () => {
            s = (Math.imul(s ^ (s >>> 15), 2246822507) + 0x9e3779b9) >>> 0;
            return s / 2 ** 32;
          };
          const { on, sessions } = randomSchedule(f, 3000, 40, 4, rand);
          assert.equal(
            on.reduce((x, b) => x + b, 0),
            Math.round(f * 3000),
          );
          let runs = 0;
          for (let t = 0; t < on.length; t++) if (on[t] && (t === 0 || !on[t - 1])) runs++;
          assert.ok(runs <= sessions, `${runs} runs, ${sessions} sessions`);
        },
      ),
    );
  });

  test('property: online 2% earns ≤ 5% of an always-online chip, 50% ≤ 60%, 100% its full weight; minted = budgets exactly', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 31 }), fc.integer({ min: 0, max: 2 }), (seed, grace) => {
        const r = simulateLiveness({
          ...DEFAULT_SIM,
          seed,
          graceSlotsPerEpoch: grace,
          chipsPerFraction: 10,
          epochs: 30,
          fractions: [0.02, 0.5, 1],
          epochBlocks: 100n,
          answerWindowBlocks: 4n,
          minSessionBlocks: 40,
          maxSessions: 4,
        });
        const group = (f: number) => r.groups.find((g) => g.fraction === f)!;
        assert.ok(group(0.02).earnedRatio <= 0.05, `2% online earned ${group(0.02).earnedRatio}`);
        assert.ok(group(0.5).earnedRatio <= 0.6, `50% online earned ${group(0.5).earnedRatio}`);
        for (const c of r.chips.filter((x) => x.fraction === 1)) {
          assert.equal(c.answered, c.challenged, 'always online: every challenge answered');
          assert.ok(c.paidEpochs > 0);
          assert.equal(c.fullWeightEpochs, c.paidEpochs, 'always online: full weight in every paid epoch');
        }
        assert.equal(r.minted, r.budgets, 'every final budget paid out, to the base unit');
        assert.equal(
          r.chips.reduce((x, c) => x + c.earned, 0n),
          r.minted,
        );
      }),
      { numRuns: 3 },
    );
  });
});
