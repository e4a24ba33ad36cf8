/**
 * The simulator of real nodes (src/sim/): a sweep of seeds in CI (UNC_SIM_SEEDS, default 200; the
 * bar of 10,000 is `npm run sim -- --seeds 10000`), regressions it found, and the checkers' own
 * tests: each checker fed a history that violates its property must report it.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { blockCodec, decode, encode } from '@unc/core';
import {
  calmScenario,
  checkAgreement,
  checkDurability,
  checkValidity,
  genesisFor,
  type History,
  runSimulation,
  type SimReport,
  scenarioForSeed,
} from '../../src/sim/simulator.js';
import { Bucket, bucketKey } from '../../src/storage/db.js';

const SEEDS = Number(process.env.UNC_SIM_SEEDS ?? 200);

function failures(reports: SimReport[]): string {
  return reports
    .filter((r) => !r.ok)
    .map(
      (r) =>
        `seed ${r.seed}: ${r.violations.join('; ')}\n  replay: UNC_SIM_LOG=info npm run sim -- --start ${r.seed} --seeds 1 --no-profiles --verbose`,
    )
    .join('\n');
}

describe('sim: seed sweep of real nodes', () => {
  test(`${SEEDS} seeded scenarios: agreement, validity, durability across crashes, liveness after healing`, async () => {
    const reports: SimReport[] = [];
    for (let seed = 0; seed < SEEDS; seed++) reports.push(await runSimulation(scenarioForSeed(seed)));
    assert.equal(failures(reports), '');
    if (SEEDS >= 100) {
      // The faults were there, many times over.
      const count = (f: (r: SimReport) => boolean) => reports.filter(f).length;
      assert.ok(count((r) => r.crashes > 0) >= SEEDS / 5, 'crashes');
      assert.ok(count((r) => r.partitions > 0) >= SEEDS / 5, 'partitions');
      assert.ok(count((r) => r.messages.dropped > r.messages.sent / 10) >= SEEDS / 10, 'loss');
      assert.ok(count((r) => r.evidenceOnChain > 0) >= SEEDS / 20, 'equivocation punished');
      assert.ok(count((r) => r.finalityMs.length > 0) >= SEEDS / 2, 'transfers finalised');
    }
  });

  test('four validators that lose their first votes (40% loss) still commit once the loss stops', async () => {
    // Seeds 13, 22 and 92 stalled at height 0 forever: the driver's re-gossip never fired on a
    // clock without jitter (the probe for peers ahead reset its progress clock).
    const reports = await Promise.all([13, 22, 92].map((seed) => runSimulation(scenarioForSeed(seed))));
    assert.equal(failures(reports), '');
    for (const r of reports) assert.ok(Math.min(...r.heights) >= r.heightAtGst + 2);
  });

  test('a seed replays exactly', async () => {
    const a = await runSimulation(scenarioForSeed(5));
    const b = await runSimulation(scenarioForSeed(5));
    assert.deepEqual(a, b);
    const c = await runSimulation(scenarioForSeed(6));
    assert.notDeepEqual(c.messages, a.messages);
  });

  test('an equivocating validator is caught and its evidence committed; the honest ones agree', async () => {
    const r = await runSimulation({
      ...calmScenario('lan', 4, 8_000),
      byzantine: [{ node: 1, behaviour: 'equivocate-votes' }],
    });
    assert.equal(r.violations.join('; '), '');
    assert.ok(r.evidenceOnChain >= 1, 'no evidence transaction was committed');
  });
});

describe('sim: the checkers can fail', () => {
  test('agreement: two honest nodes with different blocks at one height', () => {
    const history: History = {
      commits: [
        new Map([
          ['1', 'aa'],
          ['2', 'bb'],
        ]),
        new Map([
          ['1', 'aa'],
          ['2', 'cc'],
        ]),
        new Map([['2', 'dd']]),
      ],
      honest: [true, true, false],
      afterRestart: [],
    };
    const v = checkAgreement(history);
    assert.equal(v.length, 1);
    assert.match(v[0]!, /^agreement: at height 2/);
    // A Byzantine node's different block is not a violation of honest agreement.
    history.commits[1]!.set('2', 'bb');
    assert.deepEqual(checkAgreement(history), []);
  });

  test('durability: a block reported before a crash and missing or different after the restart', () => {
    const reportedBefore = new Map([
      ['1', 'aa'],
      ['2', 'bb'],
    ]);
    const lost = checkDurability({
      commits: [],
      honest: [],
      afterRestart: [{ node: 0, reportedBefore, held: new Map([['1', 'aa']]) }],
    });
    assert.match(lost.join(), /node 0 reported block 2 .* lost it/);
    const changed = checkDurability({
      commits: [],
      honest: [],
      afterRestart: [
        {
          node: 0,
          reportedBefore,
          held: new Map([
            ['1', 'aa'],
            ['2', 'zz'],
          ]),
        },
      ],
    });
    assert.match(changed.join(), /holds another/);
  });

  test('validity: a stored block whose commit lost its quorum does not replay from genesis', async () => {
    const r = await runSimulation(calmScenario('lan', 4, 5_000), { keepStores: true });
    assert.equal(r.violations.join('; '), '');
    const stores = r.stores!;
    assert.deepEqual(await checkValidity(stores, genesisFor(4)), []);
    const key = bucketKey(Bucket.blockByHeight, new Uint8Array([0, 0, 0, 0, 0, 0, 0, 2]));
    for (const store of stores) {
      const block = decode(blockCodec, (await store.get(key))!);
      const tampered = {
        ...block,
        commit: { ...block.commit, signatures: block.commit.signatures.slice(0, 1) },
      };
      await store.batch([{ type: 'put', key, value: encode(blockCodec, tampered) }], true);
    }
    const v = await checkValidity(stores, genesisFor(4));
    assert.match(v.join(), /^validity: block 2 of node \d does not verify/);
  });

  test('liveness: two of four validators never up, the other two cannot commit, and the run says so', async () => {
    const s = calmScenario('lan', 4, 3_000);
    const r = await runSimulation({
      ...s,
      faults: { ...s.faults, neverUp: [2, 3] },
      livenessWindowMs: 10_000,
    });
    assert.equal(r.ok, false);
    assert.match(r.violations.join(), /^liveness: 10000 ms after the faults stopped, heights 0\/0/);
  });
});
