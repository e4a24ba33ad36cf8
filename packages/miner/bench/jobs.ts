/**
 * Rental jobs through the provider API against the same work done directly, in one run:
 *
 *   - OCR (PP-OCRv4 on the fixture image): OcrEngine.recognise directly, then `unc`'s renter client
 *     → HTTP → signature, lease and replay checks → queue → OCR → receipt signed by a dev-soft
 *     chip → the client's receipt checks; the same over TLS 1.3 with the provider's self-signed
 *     certificate pinned by fingerprint (kept-alive connections, so the handshake is amortised);
 *   - a tiny generic ONNX model (y = x·W + b), where nearly all of the API path is overhead.
 *
 * Jobs are sent one at a time (latency) and then `--parallel` at a time (throughput), each alone
 * in its request and then `--batch` to a request (POST /v1/jobs/batch: one renter signature, one
 * chip signature over the Merkle root of the results, every job's proof checked by the client).
 * A batch's latency is counted per job (the request's time over its jobs), so its rows compare
 * with the others job for job. With `--paired`, one at a time is also run in paired rounds (one
 * job of each path per round, in a Williams design's orders, a pause after each), and each path's
 * ratio to the direct run is given per round: its median (with the median's 95 % interval) and
 * quartiles, so a shared machine's changing load
 * shows as spread, not as a bias. Only for jobs long next to that pause (OCR): a tiny model's
 * direct run, alone after a pause, pays a cold start it does not pay back to back. Leases are read from an in-memory table (what the chain would
 * answer; the provider caches it anyway).
 *
 * Beside wall-clock figures every row gives the CPU time per job of this process and its job
 * processes together (from /proc): on a machine shared with other work the wall clock measures
 * the neighbours too, the CPU time much less so.
 *
 *   npm run bench:jobs -- [--jobs 100] [--parallel 4] [--batch 16] [--only ocr|tiny] [--rows single|batch] [--paired]
 *                         [--ort-spin on|off] [--ort-threads N] [--provider-concurrency N]
 *
 * `--provider-concurrency N` (1…64): the jobs the provider runs at once, each in its own job process
 * (default: `--parallel`, at most the machine's cores, as a CPU provider should be set up); more
 * requests than that wait in its queue. The direct rows run `--parallel` at once in one process.
 *
 * The comparison is fair by construction: the direct runs use the very ONNX Runtime session
 * options the provider's job processes use (`--ort-spin`: whether idle pool threads spin, default
 * off as in a provider; `--ort-threads`: intra-op threads per session, default the runtime's).
 *
 * (`--only` and `--rows` narrow the run, e.g. for a CPU profile of one path: node --cpu-prof …)
 *
 * `--stages` (implies `--paired`): where a job's time goes through the provider, per paired round.
 * The provider cuts each job sent alone into stages (headers and signature, body, decode and input
 * hash, queue, transfer to the job process, the run there, transfer back, output hash, receipt,
 * answer; ProviderOptions.onJobStages), and the median of each is printed with what is left of the
 * renter's whole call (its signing, encoding, the sockets, its receipt checks), and the run in the
 * job process against the direct run of the same round.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@unc/node';
import { ProviderClient, type TensorJson } from '@unc/sdk';
import * as ort from 'onnxruntime-node';
import {
  type JobTiming,
  monotonicMs,
  OcrEngine,
  type OrtThreadOptions,
  ortSessionOptions,
  ProviderServer,
} from '../src/index.js';
import { affineModel } from '../test/fixtures/make-fixtures.js';
import { benchLease, fixture } from '../test/provider-helpers.js';
import { jobsBenchArgsError, providerConcurrencyOf } from './jobs-args.js';
import { medianInterval, williamsOrder } from './paired-stats.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a positive integer`);
  return v;
}

interface Figures {
  jobsPerSec: number;
  p50: number;
  p99: number;
  latencies: number[];
  seconds: number;
  /** CPU ms of this process and its children, per job. */
  cpuPerJob: number;
}

function merge(parts: Figures[]): Figures {
  const lat = parts.flatMap((p) => p.latencies).sort((a, b) => a - b);
  const seconds = parts.reduce((s, p) => s + p.seconds, 0);
  const jobs = parts.reduce((s, p) => s + p.jobsPerSec * p.seconds, 0);
  const cpu = parts.reduce((s, p) => s + p.cpuPerJob * p.jobsPerSec * p.seconds, 0);
  return {
    jobsPerSec: jobs / seconds,
    p50: pct(lat, 50),
    p99: pct(lat, 99),
    latencies: lat,
    seconds,
    cpuPerJob: cpu / jobs,
  };
}

const TICK_MS = 10; // USER_HZ is 100 on Linux
/** The pause after each job of a paired round (see `paired`). */
const SETTLE_MS = 5;

/** This process's child processes (the job processes), found in /proc; refreshed per measurement. */
let childPids: string[] = [];

function findChildren(): void {
  childPids = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'latin1');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === process.pid) childPids.push(name);
    } catch {
      // gone meanwhile
    }
  }
}

/**
 * CPU ms used so far by this process (µs precision) and its child processes (from /proc, those
 * `findChildren` found: reading every process of a shared machine's /proc cost milliseconds per
 * reading, inside the figures).
 */
function cpuMs(): number {
  return ownCpuMs() + childrenCpuMs();
}

function ownCpuMs(): number {
  const own = process.cpuUsage();
  return (own.user + own.system) / 1000;
}

function childrenCpuMs(): number {
  let children = 0;
  for (const pid of childPids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) !== process.pid) continue;
      children += (Number(fields[11]) + Number(fields[12])) * TICK_MS;
    } catch {
      // gone meanwhile
    }
  }
  return children;
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/**
 * Runs `n` calls `parallel` at a time, each doing `perCall` jobs; latency per job (a call's time
 * over its jobs), throughput over the whole run.
 */
async function measure(
  n: number,
  parallel: number,
  fn: () => Promise<unknown>,
  perCall = 1,
): Promise<Figures> {
  const lat: number[] = [];
  let next = 0;
  findChildren();
  const cpu0 = cpuMs();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < n) {
        next++;
        const t = performance.now();
        await fn();
        lat.push((performance.now() - t) / perCall);
      }
    }),
  );
  const total = (performance.now() - t0) / 1000;
  const jobs = n * perCall;
  const cpuPerJob = (cpuMs() - cpu0) / jobs;
  lat.sort((a, b) => a - b);
  return {
    jobsPerSec: jobs / total,
    p50: pct(lat, 50),
    p99: pct(lat, 99),
    latencies: lat,
    seconds: total,
    cpuPerJob,
  };
}

/**
 * One job of each path per round, so whatever the machine's load does at a moment hits every path
 * alike; the ratio of each path to the direct run is taken within each round, and its median (with
 * its 95 % interval) and quartiles over the rounds are reported. On a shared machine the slices of
 * `measure` still saw the load change between them. The rounds' orders are a Williams design
 * (paired-stats.ts): every path runs just after every other path equally often, so what one path
 * leaves behind (its process's garbage collection, freed memory, the caches it filled) does not
 * fall on one of the others more than on the rest.
 */
async function paired(
  rounds: number,
  paths: [() => Promise<unknown>, number][],
  /**
   * Called after each path's job of a round with its path, round, latency and the CPU ms this
   * process spent in it (--stages).
   */
  after?: (path: number, round: number, call: { ms: number; cpu: number; from: number; to: number }) => void,
): Promise<{ figures: Figures[]; ratios: number[][] }> {
  const lat: number[][] = paths.map(() => []);
  const cpu: number[] = paths.map(() => 0);
  const seconds: number[] = paths.map(() => 0);
  for (let r = 0; r < rounds; r++) {
    findChildren();
    const order = williamsOrder(paths.length, r);
    for (let k = 0; k < paths.length; k++) {
      const i = order[k]!;
      const [fn, per] = paths[i]!;
      // The children are read outside this process's own window: reading /proc costs this
      // process CPU, as much as a tiny model's job, and would count in every path's figure.
      const children0 = childrenCpuMs();
      const own0 = ownCpuMs();
      const from = monotonicMs();
      const t = performance.now();
      await fn();
      const ms = performance.now() - t;
      if (after) after(i, r, { ms, cpu: ownCpuMs() - own0, from, to: monotonicMs() });
      // A job process still finishing its part (its answer sent, its memory freed) after the
      // answer arrived would run into the next path's timing and CPU: it gets this pause, and
      // its CPU counts for the path that caused it.
      await new Promise((r) => setTimeout(r, SETTLE_MS));
      const own1 = ownCpuMs();
      cpu[i]! += own1 - own0 + childrenCpuMs() - children0;
      seconds[i]! += ms / 1000;
      lat[i]!.push(ms / per);
    }
  }
  const figures = paths.map(([, per], i) => {
    const sorted = [...lat[i]!].sort((a, b) => a - b);
    const jobs = rounds * per;
    return {
      jobsPerSec: jobs / seconds[i]!,
      p50: pct(sorted, 50),
      p99: pct(sorted, 99),
      latencies: sorted,
      seconds: seconds[i]!,
      cpuPerJob: cpu[i]! / jobs,
    };
  });
  const ratios = lat.slice(1).map((l) => l.map((v, r) => v / lat[0]![r]!).sort((a, b) => a - b));
  return { figures, ratios };
}

const median = (v: number[]) =>
  v.length === 0
    ? Number.NaN
    : pct(
        [...v].sort((a, b) => a - b),
        50,
      );

/**
 * One job of a paired round: its latency and CPU ms in this process, when it began and ended
 * (monotonicMs), and the provider's account of it.
 */
interface Call {
  ms: number;
  cpu: number;
  from: number;
  to: number;
  timing: JobTiming | null;
}

/** A per-round median's 95 % interval, as printed beside it. */
function interval(v: number[]): string {
  const i = medianInterval(v);
  return i ? ` (95 % ×${i[0].toFixed(3)}–×${i[1].toFixed(3)})` : '';
}

const row = (name: string, ms: number, note = '') =>
  console.log(`    ${name.padEnd(44)}${ms.toFixed(3).padStart(9)}${note}`);

/**
 * The median of each stage of a path's jobs over the paired rounds, the renter's side before and
 * after the provider's handler (its signing and encoding, its receipt checks, the sockets between),
 * and the run in the job process against the same round's direct run, in wall-clock and CPU time.
 */
function printStages(label: string, direct: Call[], calls: Call[]): void {
  const timed = calls
    .map((c, r) => ({ ...c, direct: direct[r]!, t: c.timing! }))
    .filter((c) => c.timing !== null);
  console.log(`\n  stages of ${label}: medians over ${timed.length} paired rounds (ms)`);
  if (timed.length === 0) return;
  row('renter: sign, encode, send; headers read', median(timed.map((c) => c.t.began - c.from)));
  const names = [...new Set(timed.flatMap((c) => c.t.stages.map(([n]) => n)))];
  for (const name of names)
    row(name, median(timed.map((c) => c.t.stages.find(([n]) => n === name)?.[1] ?? 0)));
  const span = (c: (typeof timed)[number]) => c.t.stages.reduce((s, [, ms]) => s + ms, 0);
  row('renter: answer read, receipt checked', median(timed.map((c) => c.to - c.t.began - span(c))));
  row('whole call', median(timed.map((c) => c.ms)));
  const run = (c: (typeof timed)[number]) => c.t.stages.find(([n]) => n.endsWith(' run'))?.[1];
  const runs = timed.filter((c) => run(c) !== undefined);
  if (runs.length === 0) return;
  row('whole call − run in the job process', median(runs.map((c) => c.ms - run(c)!)));
  const runRatios = runs.map((c) => run(c)! / c.direct.ms);
  row(
    'run in the job process − direct run',
    median(runs.map((c) => run(c)! - c.direct.ms)),
    ` (×${median(runRatios).toFixed(3)}${interval(runRatios)}; the same round)`,
  );
  const cpu = runs.filter((c) => c.t.jobCpuMs !== null);
  if (cpu.length === 0) return;
  row('CPU: direct run', median(cpu.map((c) => c.direct.cpu)));
  const runCpuRatios = cpu.map((c) => c.t.jobCpuMs! / c.direct.cpu);
  row(
    'CPU: run in the job process',
    median(cpu.map((c) => c.t.jobCpuMs!)),
    ` (×${median(runCpuRatios).toFixed(3)}${interval(runCpuRatios)} of the same round's direct run)`,
  );
  row('CPU: renter and provider in this process', median(cpu.map((c) => c.cpu)));
  // Per round: this process's CPU for the call and the job process's for the run, over the direct
  // run's (the job process's own clock, µs: /proc's 10 ms ticks blur one round's figure).
  const ratios = cpu.map((c) => (c.cpu + c.t.jobCpuMs!) / c.direct.cpu).sort((a, b) => a - b);
  console.log(
    `    CPU ratio to the direct run, per round: ×${pct(ratios, 50).toFixed(3)} median${interval(ratios)}, ×${pct(ratios, 25).toFixed(3)}–×${pct(ratios, 75).toFixed(3)} quartiles, ${ratios.length} rounds`,
  );
}

const fmt = (f: Figures) =>
  `${f.jobsPerSec.toFixed(1).padStart(8)} jobs/s   p50 ${f.p50.toFixed(2).padStart(8)} ms   p99 ${f.p99.toFixed(2).padStart(8)} ms   CPU ${f.cpuPerJob.toFixed(2).padStart(7)} ms/job`;

async function main(): Promise<void> {
  const bad = jobsBenchArgsError(process.argv.slice(2));
  if (bad !== null) {
    console.error(
      `${bad}\nnpm run bench:jobs -- [--jobs N] [--parallel N] [--batch N] [--only ocr|tiny] [--rows single|batch] [--paired] [--stages] [--ort-spin on|off] [--ort-threads N] [--provider-concurrency 1…64]`,
    );
    process.exit(2);
  }
  const jobs = arg('jobs', 100);
  const parallel = arg('parallel', 4);
  const batch = arg('batch', 16);
  // Jobs the provider runs at once (each in its own job process): by default one per request in
  // flight, up to the cores. More CPU-bound job processes than cores buy no throughput and cost
  // CPU: four OCR at a time on two cores cost ×1.33–×1.51 the CPU of direct with four job
  // processes, ×1.13–×1.26 with two (BENCHMARKS.md, docs/jobs.md). The rest wait in its queue.
  const providerConcurrency = providerConcurrencyOf(process.argv.slice(2), parallel, availableParallelism());
  const onlyAt = process.argv.indexOf('--only');
  const only = onlyAt >= 0 ? process.argv[onlyAt + 1] : null;
  if (only !== null && only !== 'ocr' && only !== 'tiny') throw new Error('--only must be ocr or tiny');
  const stagesWanted = process.argv.includes('--stages');
  const pairedRounds = stagesWanted || process.argv.includes('--paired');
  const rowsAt = process.argv.indexOf('--rows');
  const rowKind = rowsAt >= 0 ? process.argv[rowsAt + 1] : null;
  if (rowKind !== null && rowKind !== 'single' && rowKind !== 'batch')
    throw new Error('--rows must be single or batch');
  const spinAt = process.argv.indexOf('--ort-spin');
  const spin = spinAt >= 0 ? process.argv[spinAt + 1] : 'off';
  if (spin !== 'on' && spin !== 'off') throw new Error('--ort-spin must be on or off');
  const threadsAt = process.argv.indexOf('--ort-threads');
  const threads: OrtThreadOptions = {
    spinning: spin === 'on',
    ...(threadsAt >= 0 ? { intraOpThreads: arg('ort-threads', 0) } : {}),
  };
  const sessionOptions = ortSessionOptions('cpu', threads);
  const chainId = 'unc-bench-jobs';
  let lastTiming: JobTiming | null = null;
  const { signer, renterSeed, leaseId, leases } = await benchLease('bench-chip');
  const dir = await mkdtemp(join(tmpdir(), 'unc-bench-jobs-'));
  const options = {
    chainId,
    signers: [signer],
    leases,
    modelDir: dir,
    concurrency: providerConcurrency,
    maxQueued: 4 * parallel * batch,
    maxJobsPerRenter: 4 * parallel * batch,
    maxBatchJobs: batch,
    onnxThreads: threads,
    logger: silentLogger,
    // The stages of the job just answered (one job at a time in paired rounds).
    ...(stagesWanted ? { onJobStages: (timing: JobTiming) => (lastTiming = timing) } : {}),
  };
  const provider = new ProviderServer(options);
  const tlsProvider = new ProviderServer({ ...options, tls: { dir: join(dir, 'tls') } });
  try {
    const url = await provider.start();
    const client = new ProviderClient({ endpoint: url, chainId, leaseId, renterSeed, allowHttp: true });
    const tlsUrl = await tlsProvider.start();
    const tlsClient = new ProviderClient({
      endpoint: tlsUrl,
      chainId,
      leaseId,
      renterSeed,
      tlsFingerprints: [tlsProvider.tlsFingerprint!],
    });
    const image = fixture('ocr-sample.png');
    const engine = await OcrEngine.create({ onnxOptions: sessionOptions as Record<string, unknown> });
    const model = affineModel();
    const { modelHash } = await client.uploadModel(model);
    await tlsClient.uploadModel(model);
    const session = await ort.InferenceSession.create(model, sessionOptions);
    const x = Buffer.alloc(16);
    [1, 2, 3, 4].forEach((v, i) => x.writeFloatLE(v, i * 4));
    const inputs: Record<string, TensorJson> = {
      x: { type: 'float32', dims: [1, 4], data: x.toString('base64') },
    };
    const xTensor = new ort.Tensor('float32', new Float32Array(x.buffer, x.byteOffset, 4), [1, 4]);

    const images = Array.from({ length: batch }, () => image);
    const inputBatch = Array.from({ length: batch }, () => inputs);
    type Case = {
      name: string;
      direct: () => Promise<unknown>;
      rows: [string, () => Promise<unknown>, number][];
    };
    const all: Case[] = [
      {
        name: 'OCR (PP-OCRv4)',
        direct: () => engine.recognise(image),
        rows: [
          ['provider API http', () => client.runOcr(image, provider.ocrModelHash), 1],
          ['provider API TLS', () => tlsClient.runOcr(image, tlsProvider.ocrModelHash), 1],
          [`http batch of ${batch}`, () => client.runOcrBatch(images, provider.ocrModelHash), batch],
          [`TLS batch of ${batch}`, () => tlsClient.runOcrBatch(images, tlsProvider.ocrModelHash), batch],
        ],
      },
      {
        name: 'ONNX affine 1×4',
        direct: () => session.run({ x: xTensor }),
        rows: [
          ['provider API http', () => client.runJob(modelHash, inputs), 1],
          ['provider API TLS', () => tlsClient.runJob(modelHash, inputs), 1],
          [`http batch of ${batch}`, () => client.runBatch(modelHash, inputBatch), batch],
          [`TLS batch of ${batch}`, () => tlsClient.runBatch(modelHash, inputBatch), batch],
        ],
      },
    ];
    const cases = all
      .filter((c) => only === null || (only === 'ocr') === c.name.startsWith('OCR'))
      .map((c) => ({
        ...c,
        rows: c.rows.filter(([, , per]) => rowKind === null || (rowKind === 'batch') === per > 1),
      }));
    console.log(
      `rental jobs, ${jobs} jobs per row; ${cpus()[0]?.model ?? 'cpu'} × ${availableParallelism()}; ONNX Runtime CPU, ${threads.intraOpThreads ?? 'default'} intra-op threads, spinning ${spin} (direct and job processes alike); receipts signed by a dev-soft chip; provider runs ${providerConcurrency} at once; load average ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}`,
    );
    for (const { name, direct, rows } of cases) {
      // Warm-up: sessions, JIT, sockets (and their TLS handshakes).
      for (let i = 0; i < 3; i++) {
        await direct();
        for (const [, fn] of rows) await fn();
      }
      if (pairedRounds) {
        // One at a time in paired rounds (see `paired`), before the slices.
        // Per path (0: direct), per round: the call's ms and CPU here, the provider's stages of it.
        const calls: Call[][] = [direct, ...rows].map(() => []);
        const { figures, ratios } = await paired(
          jobs,
          [[direct, 1], ...rows.map(([, fn, per]) => [fn, per] as [() => Promise<unknown>, number])],
          stagesWanted
            ? (path, round, call) => {
                calls[path]![round] = { ...call, timing: path === 0 ? null : lastTiming };
                lastTiming = null;
              }
            : undefined,
        );
        const d = figures[0]!;
        console.log(
          `\n${name}, 1 at a time, ${jobs} paired rounds (load average at their end ${loadavg()
            .map((l) => l.toFixed(1))
            .join(' ')})`,
        );
        console.log(`  ${'direct'.padEnd(20)}${fmt(d)}`);
        for (const [i, [label]] of rows.entries())
          console.log(`  ${label.padEnd(20)}${fmt(figures[i + 1]!)}`);
        for (const [i, [label]] of rows.entries()) {
          const x = figures[i + 1]!;
          const r = ratios[i]!;
          console.log(
            `  overhead ${label.padEnd(20)} p50 +${(x.p50 - d.p50).toFixed(2)} ms (×${(x.p50 / d.p50).toFixed(2)}); per round ×${pct(r, 50).toFixed(3)} median${interval(r)}, ×${pct(r, 25).toFixed(3)}–×${pct(r, 75).toFixed(3)} quartiles; CPU +${(x.cpuPerJob - d.cpuPerJob).toFixed(2)} ms/job (×${(x.cpuPerJob / d.cpuPerJob).toFixed(2)})`,
          );
        }
        if (stagesWanted)
          for (const [i, [label, , per]] of rows.entries())
            if (per === 1) printStages(label, calls[0]!, calls[i + 1]!);
      }
      for (const p of [1, parallel]) {
        // Interleaved in slices, so a change in the machine's load hits every row alike.
        const slices = 4;
        const ds: Figures[] = [];
        const rs: Figures[][] = rows.map(() => []);
        for (let s = 0; s < slices; s++) {
          ds.push(await measure(Math.ceil(jobs / slices), p, direct));
          for (const [i, [, fn, per]] of rows.entries())
            rs[i]!.push(await measure(Math.max(1, Math.ceil(jobs / slices / per)), p, fn, per));
        }
        const d = merge(ds);
        console.log(`\n${name}, ${p} at a time`);
        console.log(`  ${'direct'.padEnd(20)}${fmt(d)}`);
        const merged = rs.map(merge);
        for (const [i, [label]] of rows.entries()) console.log(`  ${label.padEnd(20)}${fmt(merged[i]!)}`);
        for (const [i, [label]] of rows.entries()) {
          const x = merged[i]!;
          console.log(
            `  overhead ${label.padEnd(20)} p50 +${(x.p50 - d.p50).toFixed(2)} ms (×${(x.p50 / d.p50).toFixed(2)}), throughput ×${(x.jobsPerSec / d.jobsPerSec).toFixed(2)}, CPU +${(x.cpuPerJob - d.cpuPerJob).toFixed(2)} ms/job (×${(x.cpuPerJob / d.cpuPerJob).toFixed(2)})`,
          );
        }
      }
    }
    await session.release();
    client.close();
    tlsClient.close();
  } finally {
    await provider.stop();
    await tlsProvider.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
