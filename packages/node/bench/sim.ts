/**
 * The simulator of real nodes (src/sim/): a sweep of seeded fault scenarios, then the simulated
 * finality of calm runs per latency profile and validator count.
 *
 *   npm run sim -- --seeds 1000 [--start 0] [--workers 2] [--no-profiles] [--verbose]
 *   npm run sim -- --seeds 0                  # the finality table only
 *   npm run sim -- --seeds 0 --one-down       # one validator down, compact proposals' bytes
 *
 * Every failing seed is printed with the command that replays it; the exit status is 1 if any
 * seed failed. UNC_SIM_LOG=debug prints the nodes' logs (in virtual time) while replaying one.
 */
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { BYZANTINE_BEHAVIOURS } from '../src/sim/byzantine.js';
import {
  calmScenario,
  type ProfileName,
  runSimulation,
  type SimReport,
  scenarioForSeed,
} from '../src/sim/simulator.js';

/** UNC_SIM_LOG=debug|info|warn|error: the nodes' logs in virtual time (worker threads inherit it). */
const simOptions = process.env.UNC_SIM_LOG ? { logLevel: process.env.UNC_SIM_LOG } : {};

interface Job {
  seeds: number[];
}

if (!isMainThread) {
  const { seeds } = workerData as Job;
  for (const seed of seeds) {
    const report = await runSimulation(scenarioForSeed(seed), simOptions);
    parentPort!.postMessage(report);
  }
} else {
  await main();
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seeds: { type: 'string', default: '100' },
      start: { type: 'string', default: '0' },
      workers: { type: 'string', default: '1' },
      'no-profiles': { type: 'boolean', default: false },
      'one-down': { type: 'boolean', default: false },
      verbose: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(
      'usage: npm run sim -- --seeds N [--start S] [--workers W] [--no-profiles | --one-down] [--verbose]',
    );
    process.exit(0);
  }
  const seeds = Number(values.seeds);
  const start = Number(values.start);
  const workers = Number(values.workers);
  if (
    !Number.isInteger(seeds) ||
    seeds < 0 ||
    !Number.isInteger(start) ||
    start < 0 ||
    start + seeds > 2 ** 32
  ) {
    console.error('--seeds must be a non-negative integer and --start a non-negative one (seeds are u32)');
    process.exit(2);
  }
  if (!Number.isInteger(workers) || workers < 1 || workers > availableParallelism() * 2) {
    console.error(`--workers must be between 1 and ${availableParallelism() * 2}`);
    process.exit(2);
  }
  let failed = 0;
  if (seeds > 0) failed = await sweep(start, seeds, workers, values.verbose);
  if (values['one-down']) await oneDownAndCompact();
  else if (!values['no-profiles']) {
    await profiles();
    await oneDownAndCompact();
  }
  process.exit(failed > 0 ? 1 : 0);
}

async function sweep(start: number, count: number, workers: number, verbose: boolean): Promise<number> {
  const began = performance.now();
  const cpuBefore = process.cpuUsage();
  const reports: SimReport[] = [];
  const onReport = (r: SimReport) => {
    reports.push(r);
    if (verbose) console.log(describe(r));
    if (!r.ok) {
      console.log(
        `FAIL seed ${r.seed}: ${r.validators} validators, ${r.profile}, byzantine ${r.byzantine.map((b) => `${b.node}:${b.behaviour}`).join(',') || 'none'}`,
      );
      for (const v of r.violations) console.log(`  ${v}`);
      console.log(
        `  replay: UNC_SIM_LOG=info npm run sim -- --start ${r.seed} --seeds 1 --no-profiles --verbose`,
      );
    }
    if (!verbose && reports.length % 100 === 0) {
      const s = (performance.now() - began) / 1000;
      console.error(`  ${reports.length}/${count} seeds, ${(reports.length / s).toFixed(2)} seeds/s`);
    }
  };
  const all = [...Array(count).keys()].map((i) => start + i);
  // Stopped early (SIGINT/SIGTERM: a sweep that will not fit the time it has), the sweep still
  // prints what the seeds run so far showed, says which they were, and exits 3.
  let interrupted = false;
  const stop = () => {
    if (interrupted) return;
    interrupted = true;
    summarize(reports, start, count, workers, began, cpuBefore, true);
    process.exit(reports.some((r) => !r.ok) ? 1 : 3);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  if (workers === 1) {
    for (const seed of all) {
      onReport(await runSimulation(scenarioForSeed(seed), simOptions));
      await new Promise((resolve) => setImmediate(resolve));
    }
  } else {
    await Promise.all(
      [...Array(workers).keys()].map(
        (w) =>
          new Promise<void>((resolve, reject) => {
            const worker = new Worker(new URL(import.meta.url), {
              workerData: { seeds: all.filter((_, i) => i % workers === w) } satisfies Job,
            });
            worker.on('message', onReport);
            worker.on('error', reject);
            worker.on('exit', () => resolve());
          }),
      ),
    );
  }
  return summarize(reports, start, count, workers, began, cpuBefore, false);
}

function summarize(
  reports: SimReport[],
  start: number,
  count: number,
  workers: number,
  began: number,
  cpuBefore: NodeJS.CpuUsage,
  interrupted: boolean,
): number {
  const seconds = (performance.now() - began) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  const failed = reports.filter((r) => !r.ok).length;
  const sum = (f: (r: SimReport) => number) => reports.reduce((a, r) => a + f(r), 0);
  const finality = reports.flatMap((r) => r.finalityMs);
  const recovery = reports.flatMap((r) => (r.recoveryMs === null ? [] : [r.recoveryMs]));
  // The seed behind the worst recovery, so that it can be replayed (--start SEED --seeds 1 --verbose).
  let slowest: SimReport | null = null;
  for (const r of reports)
    if (r.recoveryMs !== null && (slowest === null || r.recoveryMs > slowest.recoveryMs!)) slowest = r;
  if (interrupted) {
    const done = new Set(reports.map((r) => r.seed));
    let upTo = start;
    while (done.has(upTo)) upTo++;
    console.log(
      `INTERRUPTED after ${reports.length} of ${count} seeds: every seed of [${start}, ${upTo}) ran, and ` +
        `${reports.length - (upTo - start)} more beyond ${upTo}; the rest did not run`,
    );
  }
  const ran = reports.length;
  console.log(
    `sim: ${ran} seeds ${interrupted ? 'of ' : ''}[${start}, ${start + count}), ${ran - failed} passed, ${failed} failed; ` +
      `faults: ${sum((r) => r.partitions)} partitions, ${sum((r) => r.crashes)} crashes, ` +
      `${reports.filter((r) => r.byzantine.length > 0).length} runs with Byzantine validators ` +
      `(evidence committed in ${reports.filter((r) => r.evidenceOnChain > 0).length}); ` +
      `${sum((r) => Math.max(0, ...r.heights))} heights; ${sum((r) => r.messages.sent)} messages ` +
      `(${sum((r) => r.messages.dropped)} dropped); finality p50 ${pct(finality, 0.5)} ms p99 ${pct(finality, 0.99)} ms ` +
      `over ${finality.length} transfers; recovery after faults p50 ${pct(recovery, 0.5)} ms max ${pct(recovery, 1)} ms` +
      `${slowest ? ` (seed ${slowest.seed})` : ''}; ` +
      `${(sum((r) => r.simulatedMs) / 1000).toFixed(0)} s simulated in ${seconds.toFixed(1)} s wall, ` +
      `${cpuSeconds.toFixed(0)} s CPU (${(cpuSeconds / Math.max(1, ran)).toFixed(3)} s CPU/seed; ` +
      `${(ran / seconds).toFixed(2)} seeds/s, ${workers} worker${workers > 1 ? 's' : ''}); ` +
      `signature/VRF checks: ${sum((r) => r.verifications.computed)} computed, ` +
      `${sum((r) => r.verifications.memoised)} answered from the shared memo`,
  );
  // Per size: seeds, failures, and the sweep's (faulty) finality per latency profile.
  console.log(
    '  by validator count     seeds  failed  byzantine  finality p50/p99 ms: LAN | 50 ms | 200 ms across continents',
  );
  for (const size of [...new Set(reports.map((r) => r.validators))].sort((a, b) => a - b)) {
    const of = reports.filter((r) => r.validators === size);
    const per = (name: string) => {
      const xs = of.filter((r) => r.profile === name).flatMap((r) => r.finalityMs);
      return `${pct(xs, 0.5)}/${pct(xs, 0.99)}`;
    };
    console.log(
      `  ${String(size).padStart(3)} validators ${String(of.length).padStart(11)} ${String(of.filter((r) => !r.ok).length).padStart(7)} ` +
        `${String(of.filter((r) => r.byzantine.length > 0).length).padStart(10)}  ${per('LAN')} | ${per('50 ms')} | ${per('200 ms across continents')}`,
    );
  }
  // Each Byzantine behaviour: how many validators ran it, what they made up, what honest nodes refused.
  console.log('  byzantine behaviour            validators  runs  refused by honest nodes  made up');
  for (const behaviour of BYZANTINE_BEHAVIOURS) {
    const runs = reports.filter((r) => r.byzantine.some((b) => b.behaviour === behaviour));
    const made = new Map<string, number>();
    for (const r of reports)
      for (const [kind, n] of Object.entries(r.byzantineMessages))
        if (kind.startsWith(`${behaviour}: `))
          made.set(kind.slice(behaviour.length + 2), (made.get(kind.slice(behaviour.length + 2)) ?? 0) + n);
    console.log(
      `  ${behaviour.padEnd(30)} ${String(sum((r) => r.byzantine.filter((b) => b.behaviour === behaviour).length)).padStart(10)} ` +
        `${String(runs.length).padStart(5)}  ${String(sum((r) => r.refusedByBehaviour[behaviour] ?? 0)).padStart(23)}  ` +
        `${[...made].map(([k, n]) => `${n} ${k}`).join(', ') || '-'}`,
    );
  }
  console.log(
    `  messages from Byzantine validators refused by honest nodes: ${sum((r) => r.refusedFromByzantine)}; ` +
      `evidence transactions committed: ${sum((r) => r.evidenceOnChain)}`,
  );
  return failed;
}

/** Calm runs (no faults) per latency profile and validator count: simulated submission → finality. */
async function profiles(): Promise<void> {
  const sizes: [number, number][] = [
    [4, 20_000],
    [16, 8_000],
    [100, 3_000],
  ];
  console.log('simulated finality (calm, no faults; transfers submitted at 4/s to a random validator):');
  console.log('  profile                     validators  blocks/s  finality p50   p99     wall s');
  for (const profile of ['lan', 'wan50', 'continents'] as ProfileName[]) {
    for (const [validators, durationMs] of sizes) {
      const t0 = performance.now();
      const r = await runSimulation(calmScenario(profile, validators, durationMs), simOptions);
      const blocksPerSecond = Math.max(...r.heights) / (r.simulatedMs / 1000);
      console.log(
        `  ${r.profile.padEnd(27)} ${String(validators).padStart(10)}  ${blocksPerSecond.toFixed(2).padStart(8)}  ` +
          `${String(pct(r.finalityMs, 0.5)).padStart(9)} ms ${String(pct(r.finalityMs, 0.99)).padStart(6)} ms ` +
          `${((performance.now() - t0) / 1000).toFixed(1).padStart(8)}${r.ok ? '' : `  FAILED: ${r.violations.join('; ')}`}`,
      );
    }
  }
}

/**
 * One of four validators never up, per profile: blocks per second of virtual time (issue 13's
 * bar is 0.8). Then the bytes proposals cost, compact (ids, missing transactions fetched) against
 * whole, on the same LAN run: every link's bytes summed, per committed height.
 */
async function oneDownAndCompact(): Promise<void> {
  const durationMs = 30_000;
  console.log('one of 4 validators never up (30 s simulated):');
  for (const profile of ['lan', 'wan50', 'continents'] as ProfileName[]) {
    const s = calmScenario(profile, 4, durationMs);
    s.faults.neverUp = [3];
    s.livenessHeights = 0;
    const r = await runSimulation(s, simOptions);
    console.log(
      `  ${r.profile.padEnd(27)} ${(r.heightAtGst / (durationMs / 1000)).toFixed(2)} blocks/s, finality p50 ` +
        `${pct(r.finalityMs, 0.5)} ms p99 ${pct(r.finalityMs, 0.99)} ms`,
    );
  }
  console.log('proposal bytes per height (LAN, 4 validators, 8 transfers/s, 30 s simulated, all links):');
  for (const full of [true, false]) {
    const s = calmScenario('lan', 4, durationMs);
    s.txPerSecond = 8;
    s.fullProposals = full;
    s.livenessHeights = 0;
    const r = await runSimulation(s, simOptions);
    const b = (k: string) => r.bytes[k] ?? 0;
    const proposalBytes = b('proposal') + b('compact-proposal') + b('txs-request') + b('txs-answer');
    const heights = Math.max(1, r.heightAtGst);
    console.log(
      `  ${full ? 'whole blocks  ' : 'compact blocks'} ${Math.round(proposalBytes / heights)} B/height ` +
        `(whole ${b('proposal')}, compact ${b('compact-proposal')}, fetched ${b('txs-request')} + ${b('txs-answer')} B; ` +
        `${r.finalityMs.length} transfers over ${heights} heights; tx gossip ${b('tx')} B)`,
    );
  }
}

function pct(xs: number[], p: number): number | string {
  if (xs.length === 0) return '-';
  const s = [...xs].sort((a, b) => a - b);
  return Math.round(s[Math.min(s.length - 1, Math.floor(p * s.length))]!);
}

function describe(r: SimReport): string {
  return (
    `seed ${r.seed}: ${r.ok ? 'ok' : 'FAIL'} ${r.validators} validators, ${r.profile}, byzantine ` +
    `${r.byzantine.map((b) => `${b.node}:${b.behaviour}`).join(',') || 'none'} (refused ${r.refusedFromByzantine}); ${r.crashes} crashes, ${r.partitions} partitions; heights ` +
    `${r.heights.join('/')} (GST at ${r.heightAtGst}); recovery ${r.recoveryMs ?? '-'} ms; ` +
    `${r.finalityMs.length}/${r.submitted} transfers final; evidence txs ${r.evidenceOnChain}; ` +
    `${r.messages.sent} messages, ${r.messages.dropped} dropped; ${r.simulatedMs} ms simulated`
  );
}
