/**
 * Consensus simulator sweep: runs the scenario of each seed in a range (scenarioForSeed, the same
 * one the tests run), prints every failing seed with the command that replays it, and ends with
 * one summary line. Exit status 1 if any seed failed.
 *
 *   node packages/core/dist/bench/sim.js --seeds 1000 [--start 0] [--beacon vrf|hash] [--verbose]
 *
 * --verbose prints each run's report line and, for failing seeds, the run's trace.
 */
import { parseArgs } from 'node:util';
import { runSimulation, type SimReport, scenarioForSeed } from '../src/consensus/sim.js';

const { values } = parseArgs({
  options: {
    seeds: { type: 'string', default: '100' },
    start: { type: 'string', default: '0' },
    beacon: { type: 'string', default: 'vrf' },
    verbose: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});

if (values.help) {
  console.log(
    'usage: node packages/core/dist/bench/sim.js --seeds N [--start S] [--beacon vrf|hash] [--verbose]',
  );
  process.exit(0);
}

const seeds = Number(values.seeds);
const start = Number(values.start);
const beacon = values.beacon;
if (
  !Number.isInteger(seeds) ||
  seeds < 1 ||
  !Number.isInteger(start) ||
  start < 0 ||
  start + seeds > 2 ** 32
) {
  console.error('--seeds must be a positive integer and --start a non-negative one (seeds are u32)');
  process.exit(2);
}
if (beacon !== 'vrf' && beacon !== 'hash') {
  console.error('--beacon must be vrf or hash');
  process.exit(2);
}

function replayCommand(seed: number): string {
  const hash = beacon === 'hash' ? ' --beacon hash' : '';
  return `node packages/core/dist/bench/sim.js --start ${seed} --seeds 1${hash} --verbose`;
}

function describe(r: SimReport): string {
  const byz = r.byzantine.length > 0 ? r.byzantine.join(',') : 'none';
  return (
    `seed ${r.seed}: ${r.nodes} validators, byzantine ${byz}; committed ${r.committed.join('/')} of ` +
    `target ${r.target} (GST height ${r.heightAtGst}); max round ${r.maxCommitRound}; evidence ${r.evidence}; ` +
    `messages ${r.messages.sent} sent, ${r.messages.dropped} dropped, ${r.messages.duplicated} duplicated; ` +
    `${r.endTimeMs} ms simulated`
  );
}

const began = performance.now();
let failed = 0;
let heights = 0;
let evidence = 0;
let maxRound = 0;
let messages = 0;
let dropped = 0;
let simulatedMs = 0;
const byzantineKinds = new Map<string, number>();
let partitions = 0;
let crashes = 0;

for (let seed = start; seed < start + seeds; seed++) {
  const scenario = scenarioForSeed(seed);
  const report = runSimulation({ ...scenario, beacon, trace: values.verbose });
  heights += Math.max(...report.committed);
  evidence += report.evidence;
  maxRound = Math.max(maxRound, report.maxCommitRound);
  messages += report.messages.sent;
  dropped += report.messages.dropped;
  simulatedMs += report.endTimeMs;
  partitions += scenario.faults.partitions.length;
  crashes += scenario.faults.crashes.length;
  for (const b of scenario.byzantine) byzantineKinds.set(b.kind, (byzantineKinds.get(b.kind) ?? 0) + 1);
  if (values.verbose) console.log(describe(report));
  if (!report.ok) {
    failed++;
    console.log(`FAIL seed ${seed}`);
    for (const v of report.violations) console.log(`  ${v}`);
    console.log(`  replay: ${replayCommand(seed)}`);
    if (values.verbose) for (const line of report.trace) console.log(`    ${line}`);
  }
}

const seconds = (performance.now() - began) / 1000;
const kinds = [...byzantineKinds].map(([k, n]) => `${k} ${n}`).join(', ') || 'none';
console.log(
  `sim: ${seeds} seeds [${start}, ${start + seeds}), ${seeds - failed} passed, ${failed} failed; ` +
    `${heights} heights committed, max commit round ${maxRound}, ${evidence} evidence reports; ` +
    `faults: ${partitions} partitions, ${crashes} crashes, byzantine ${kinds}; ` +
    `${messages} messages (${dropped} dropped); ${(simulatedMs / 1000).toFixed(0)} s simulated in ` +
    `${seconds.toFixed(1)} s (${(seeds / seconds).toFixed(1)} seeds/s, beacon ${beacon})`,
);
process.exit(failed > 0 ? 1 : 0);
