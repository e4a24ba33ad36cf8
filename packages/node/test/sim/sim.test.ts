/**
 * The simulator of real nodes (src/sim/): a sweep of seeds in CI (UNC_SIM_SEEDS, default 200; the
 * bar of 10,000 is `npm run sim -- --seeds 10000`), regressions it found, and the checkers' own
 * tests: each checker fed a history that violates its property must report it.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { blockCodec, decode, encode } from '@unc/core';
import { BYZANTINE_BEHAVIOURS, type ByzantineBehaviour } from '../../src/sim/byzantine.js';
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
      assert.ok(count((r) => r.byzantine.length > 1) >= 1, 'more than one Byzantine validator');
      assert.ok(count((r) => r.validators === 16) >= 1, '16 validators');
      for (const behaviour of BYZANTINE_BEHAVIOURS)
        assert.ok(count((r) => r.byzantine.some((b) => b.behaviour === behaviour)) >= 1, behaviour);
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

  test('a validator voting for unknown blocks cannot stall the others (4 and 5 validators, faults healed)', async () => {
    // Seeds 1767 and 4486 stalled for 60 s and more once the precommit wait after a nil quorum
    // was cut in every round (validators raced through rounds ahead of each other's messages);
    // found by the 10,000-seed sweep, fixed by cutting round 0's wait only.
    // Seeds 1638 and 2640 stalled for 60 s with one honest validator locked on a polka the other
    // honest ones received only after leaving its round: they never proposed that block again
    // (line 36 only looks at the current round) and the locked one prevoted nil on their fresh
    // ones; fixed by taking a late polka as the valid value (core's tendermint.ts).
    const seeds = [1767, 4486, 1638, 2640];
    const reports = await Promise.all(seeds.map((seed) => runSimulation(scenarioForSeed(seed))));
    assert.equal(failures(reports), '');
  });

  test('a seed replays exactly', async () => {
    const a = await runSimulation(scenarioForSeed(5));
    const b = await runSimulation(scenarioForSeed(5));
    assert.deepEqual(a, b);
    const c = await runSimulation(scenarioForSeed(6));
    assert.notDeepEqual(c.messages, a.messages);
  });

  test('seeds named in the tests and BENCHMARKS.md keep their scenarios (a behaviour added later has a draw of its own)', () => {
    // sha256 of JSON.stringify(scenarioForSeed(seed)), its first 16 hex digits, on main at
    // 9202a7f, before repropose-without-polka: the regression seeds above, the replay test's, and
    // those BENCHMARKS.md names (found failing, slow, or the worst recovery of a sweep).
    const before: Record<number, string> = {
      5: '7363399d5f1a47c9',
      6: '21bf22386506aa55',
      13: '24417c705e37cf8d',
      22: '32ca47dc2e5ad51d',
      26: 'df383ad8c68072f8',
      49: '7be642b671db74a3',
      92: 'd1cc101877ccd044',
      180: 'b3954895f3b29bae',
      217: '7dfe4dd5769c01cd',
      538: 'd4382149452fb79b',
      580: 'aa3eb88ab8bcc78d',
      1239: 'fa34e94712997005',
      1638: '489f67982c2bb29d',
      1767: '147d9a514bfdf9e2',
      2594: '908e775bbd6184b6',
      2640: '06f185830851addc',
      4486: '180a725c7cf8559b',
      70416: 'c0892c8615bc5d2a',
      70613: '6a4e5e253c41c603',
      71082: '485a738c3698e6e1',
      71368: '3044386efcaf5a45',
      71398: '7a77927c30a88184',
      74339: '913a779fbc0e9125',
      77988: 'a30ddbb0b6674ea3',
      80236: '8c365a43ab68ef17',
    };
    for (const [seed, hash] of Object.entries(before)) {
      const scenario = JSON.stringify(scenarioForSeed(Number(seed)));
      assert.equal(
        createHash('sha256').update(scenario).digest('hex').slice(0, 16),
        hash,
        `seed ${seed}: ${scenario}`,
      );
    }
    // The stream of its own does give the new behaviour to some seeds (6% of them).
    const given = [...Array(1_000).keys()].filter((seed) =>
      scenarioForSeed(seed).byzantine.some((b) => b.behaviour === 'repropose-without-polka'),
    );
    assert.ok(given.length >= 30 && given.length <= 90, `${given.length} of 1,000 seeds`);
  });

  test('a Byzantine proposer re-proposes without a polka (seed 156: partitions and a crash): sent whole and compact, the honest ones agree and stay live', async () => {
    const scenario = scenarioForSeed(156);
    assert.deepEqual(scenario.byzantine, [{ node: 2, behaviour: 'repropose-without-polka' }]);
    const r = await runSimulation(scenario);
    assert.equal(failures([r]), '');
    for (const form of ['whole', 'compact'])
      assert.ok(
        (r.byzantineMessages[`repropose-without-polka: re-proposal without its polka (${form})`] ?? 0) > 0,
        `no ${form} re-proposal was sent: ${JSON.stringify(r.byzantineMessages)}`,
      );
    assert.ok(Math.min(...r.heights) >= r.heightAtGst + 2, `heights ${r.heights.join('/')}`);
    // Valid proposals, only short of their polka: nothing is refused and nobody is punished (the
    // node does not take its own made-up proposals back and report itself).
    assert.equal(r.refusedFromByzantine, 0);
    assert.equal(r.evidenceOnChain, 0);
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

describe('sim: Byzantine validators reach the honest nodes, which stay safe and live', () => {
  /**
   * What each behaviour must have made up, and whether honest nodes' checks must have refused
   * some; `node` and `ms`, where the default (node 1, 8 s) would not exercise it.
   */
  const expected: Record<ByzantineBehaviour, { made: string; refused: boolean; node?: number; ms?: number }> =
    {
      'equivocate-votes': { made: 'conflicting vote', refused: false },
      'equivocate-proposals': { made: 'conflicting proposal', refused: false },
      'forge-votes': { made: 'vote with a broken signature', refused: true },
      'unknown-block-votes': { made: 'vote for an unknown block', refused: false },
      garbage: { made: 'random bytes', refused: true },
      silent: { made: 'withheld vote', refused: false },
      replay: { made: 'replayed vote', refused: false },
      'precommit-without-prevote': { made: 'precommit without a prevote', refused: false },
      // Only a proposer of a round ≥ 1 can claim a polka: a calm run needs 20 s, and a node drawn
      // as proposer of a round 1 (node 1 never is here).
      'repropose-without-polka': {
        made: 're-proposal without its polka (compact)',
        refused: false,
        node: 2,
        ms: 20_000,
      },
    };
  for (const behaviour of BYZANTINE_BEHAVIOURS) {
    test(`${behaviour}: exercised, and the three honest validators agree, replay and stay live`, async () => {
      const r = await runSimulation({
        ...calmScenario('lan', 4, expected[behaviour].ms ?? 8_000, 3),
        byzantine: [{ node: expected[behaviour].node ?? 1, behaviour }],
      });
      assert.equal(r.violations.join('; '), '');
      const made = r.byzantineMessages[`${behaviour}: ${expected[behaviour].made}`] ?? 0;
      assert.ok(
        made > 0,
        `no "${expected[behaviour].made}" was sent: ${JSON.stringify(r.byzantineMessages)}`,
      );
      if (expected[behaviour].refused)
        assert.ok((r.refusedByBehaviour[behaviour] ?? 0) > 0, 'nothing was refused');
      assert.ok(Math.min(...r.heights) >= 4, `heights ${r.heights.join('/')}`);
    });
  }

  test('a forged vote reaches the honest nodes, whose gossip checks reject it (and nothing honest)', async () => {
    const r = await runSimulation({
      ...calmScenario('lan', 4, 6_000, 4),
      byzantine: [{ node: 2, behaviour: 'forge-votes' }],
    });
    assert.equal(r.violations.join('; '), '');
    const forged =
      r.byzantineMessages['forge-votes: vote with a broken signature']! +
      r.byzantineMessages['forge-votes: vote impersonating another validator']!;
    // Each forgery goes to three honest peers: most of them arrive and are refused (a few are
    // for a height a peer has already left, which is ignored rather than refused).
    assert.ok(r.refusedFromByzantine >= forged, `${r.refusedFromByzantine} refusals of ${forged} forgeries`);
    assert.equal(r.refusedByBehaviour['forge-votes'], r.refusedFromByzantine);
  });

  test('a proposer that sends two blocks for one round to the two halves of its peers: the chain agrees, the evidence is committed', async () => {
    const r = await runSimulation({
      ...calmScenario('wan50', 7, 10_000, 5),
      byzantine: [
        { node: 0, behaviour: 'equivocate-proposals' },
        { node: 3, behaviour: 'equivocate-proposals' },
      ],
    });
    assert.equal(r.violations.join('; '), '');
    assert.ok((r.byzantineMessages['equivocate-proposals: conflicting proposal'] ?? 0) >= 2);
    assert.ok(r.evidenceOnChain >= 1, 'no duplicate-proposal evidence was committed');
  });

  test('f = 5 of 16 validators Byzantine, each with another behaviour, partitions and a crash', async () => {
    const base = calmScenario('wan50', 16, 6_000, 7);
    const behaviours: ByzantineBehaviour[] = [
      'equivocate-votes',
      'forge-votes',
      'garbage',
      'silent',
      'precommit-without-prevote',
    ];
    const r = await runSimulation({
      ...base,
      byzantine: behaviours.map((behaviour, i) => ({ node: 3 * i + 1, behaviour })),
      faults: {
        loss: 0.05,
        partitions: [
          {
            at: 1_000,
            forMs: 2_000,
            groups: [
              [0, 2, 4, 6, 8, 10, 12, 14],
              [1, 3, 5, 7, 9, 11, 13, 15],
            ],
          },
        ],
        crashes: [{ node: 5, at: 2_500, downMs: 2_000 }],
      },
      livenessHeights: 2,
    });
    assert.equal(r.violations.join('; '), '');
    assert.ok(r.evidenceOnChain >= 1, 'the equivocator was not punished');
    for (const b of ['forge-votes', 'garbage'] as const) assert.ok((r.refusedByBehaviour[b] ?? 0) > 0, b);
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
