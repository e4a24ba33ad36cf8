/**
 * The OCR run alone: in this process (OcrEngine.recognise, as bench:jobs's direct path) against the
 * provider's job process (JobSandbox.ocr, set up as ProviderServer sets it up), one of each per
 * round in alternating order, nothing else around them (no HTTP, no signatures, no receipt). The
 * job process's run is read from its own stamps (arrival to end of work on the machine's
 * monotonic clock, and its process's CPU in between), the direct run from this process's clock and
 * CPU, so the figures compare the run itself, not the way to it. CPU per run is the load-insensitive
 * figure; each per-round ratio is printed with its median's 95 % interval.
 *
 *   node packages/miner/dist/bench/ocr-run.js [--rounds 60] [--ort-threads N] [--ort-spin on|off]
 *
 * The ONNX Runtime settings are the same on both sides (default: the provider's, threads sized by
 * the runtime, no spinning).
 */
import { loadavg } from 'node:os';
import { silentLogger } from '@unc/node';
import {
  DEFAULT_OCR_MODELS,
  JobSandbox,
  OcrEngine,
  type OrtThreadOptions,
  ortSessionOptions,
  PROVIDER_JOB_PROCESS_LIMITS,
  type SandboxTiming,
} from '../src/index.js';
import { fixture } from '../test/provider-helpers.js';
import { medianInterval, williamsOrder } from './paired-stats.js';

function option(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const rounds = Number(option('rounds') ?? 60);
if (!Number.isInteger(rounds) || rounds < 6) throw new Error('--rounds must be an integer ≥ 6');
const spin = option('ort-spin') ?? 'off';
if (spin !== 'on' && spin !== 'off') throw new Error('--ort-spin must be on or off');
const threadsArg = option('ort-threads');
const threads: OrtThreadOptions = {
  spinning: spin === 'on',
  ...(threadsArg === undefined ? {} : { intraOpThreads: Number(threadsArg) }),
};
if (
  threads.intraOpThreads !== undefined &&
  !(Number.isInteger(threads.intraOpThreads) && threads.intraOpThreads >= 1)
)
  throw new Error('--ort-threads must be a positive integer');

const SETTLE_MS = 5;
const load = () =>
  loadavg()
    .map((l) => l.toFixed(1))
    .join(' ');
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const sorted = (v: number[]) => [...v].sort((a, b) => a - b);
const at = (v: number[], p: number) => sorted(v)[Math.min(v.length - 1, Math.floor(p * v.length))]!;

const image = fixture('ocr-sample.png');
const engine = await OcrEngine.create({
  onnxOptions: ortSessionOptions('cpu', threads) as Record<string, unknown>,
});
// As ProviderServer builds its sandbox (server.ts), one job process.
const sandbox = new JobSandbox({
  workers: 1,
  executionProvider: 'cpu',
  ocr: DEFAULT_OCR_MODELS,
  timeoutMs: 60_000,
  memoryBytes: 4 * 1024 ** 3,
  ...PROVIDER_JOB_PROCESS_LIMITS,
  threads,
  maxOutputBytes: 16 * 1024 * 1024,
  logger: silentLogger,
});
await sandbox.start();
try {
  const runs: Record<'direct' | 'job', { wall: number[]; cpu: number[] }> = {
    direct: { wall: [], cpu: [] },
    job: { wall: [], cpu: [] },
  };
  const run = async (path: 0 | 1): Promise<[number, number]> => {
    if (path === 0) {
      const c = cpuMs();
      const t = performance.now();
      await engine.recognise(image);
      return [performance.now() - t, cpuMs() - c];
    }
    const timing: SandboxTiming = {};
    await sandbox.ocr('bench', image, timing);
    const j = timing.job;
    if (!j) throw new Error('the job process sent no stamps');
    return [j.done - j.received, j.cpuMs];
  };
  for (let i = 0; i < 3; i++) for (const p of [0, 1] as const) await run(p);
  const before = load();
  for (let r = 0; r < rounds; r++)
    for (const p of williamsOrder(2, r) as (0 | 1)[]) {
      const [wall, cpu] = await run(p);
      const into = runs[p === 0 ? 'direct' : 'job'];
      into.wall.push(wall);
      into.cpu.push(cpu);
      await new Promise((res) => setTimeout(res, SETTLE_MS));
    }
  console.log(
    `OCR run alone, ${rounds} rounds (direct and job process alternating); ONNX Runtime ${threads.intraOpThreads ?? 'default'} intra-op threads, spinning ${spin}; load average ${before} → ${load()}`,
  );
  for (const k of ['direct', 'job'] as const)
    console.log(
      `  ${k.padEnd(7)} wall median ${at(runs[k].wall, 0.5).toFixed(1)} ms   CPU median ${at(runs[k].cpu, 0.5).toFixed(1)} ms`,
    );
  for (const what of ['wall', 'cpu'] as const) {
    const ratios = runs.job[what].map((v, i) => v / runs.direct[what][i]!);
    const ci = medianInterval(ratios);
    console.log(
      `  job process ÷ direct, ${what === 'cpu' ? 'CPU ' : 'wall'}, per round: ×${at(ratios, 0.5).toFixed(3)} median${ci ? ` (95 % ×${ci[0].toFixed(3)}–×${ci[1].toFixed(3)})` : ''}, ×${at(ratios, 0.25).toFixed(3)}–×${at(ratios, 0.75).toFixed(3)} quartiles`,
    );
  }
} finally {
  await sandbox.stop();
}
