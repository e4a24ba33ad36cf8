/**
 * The OCR job on ONNX Runtime's CUDA execution provider next to the CPU, run by
 * scripts/gpu-check.sh on a machine with an NVIDIA GPU (the script checks the driver first).
 *
 * Two provider APIs are started, one asked for 'cuda' and one on the CPU, and the same OCR job is
 * sent to each through the sdk's client (receipts checked), then run directly on each execution
 * provider. When the provider asked for CUDA falls back to the CPU (this onnxruntime-node build
 * has no CUDA provider, or CUDA cannot start), it says why and exits 3: nothing is measured, so
 * a CPU figure is never shown as a GPU one.
 *
 *   node packages/miner/dist/bench/gpu-check.js [--jobs 20]
 */
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger, silentLogger } from '@unc/node';
import { ProviderClient } from '@unc/sdk';
import { OcrEngine, ProviderServer } from '../src/index.js';
import { benchLease, fixture } from '../test/provider-helpers.js';

/** Exit codes (scripts/gpu-check.sh documents them). */
const NO_CUDA_IN_RUNTIME = 3;
const CUDA_FAILED = 4;

function jobsArg(): number {
  const i = process.argv.indexOf('--jobs');
  const v = i >= 0 ? Number(process.argv[i + 1]) : 20;
  if (!Number.isInteger(v) || v < 1) throw new Error('--jobs must be a positive integer');
  return v;
}

/** Where this onnxruntime-node keeps its native libraries, and whether the CUDA provider is there. */
function runtimeCudaLibrary(): { dir: string | null; present: boolean } {
  try {
    const pkg = dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json'));
    const bin = join(pkg, 'bin');
    for (const napi of readdirSync(bin)) {
      const dir = join(bin, napi, process.platform, process.arch);
      if (existsSync(dir))
        return { dir, present: readdirSync(dir).some((f) => f.startsWith('libonnxruntime_providers_cuda')) };
    }
  } catch {
    // not found: reported below
  }
  return { dir: null, present: false };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

async function timeEach(n: number, fn: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn();
    out.push(performance.now() - t);
  }
  return out;
}

async function main(): Promise<number> {
  const jobs = jobsArg();
  const lib = runtimeCudaLibrary();
  console.log(
    `onnxruntime-node native libraries: ${lib.dir ?? 'not found'}; CUDA provider library ${lib.present ? 'present' : 'ABSENT'}`,
  );

  const chainId = 'unc-gpu-check';
  const { signer, renterSeed, leaseId, leases } = await benchLease('gpu-check-chip');
  const dir = await mkdtemp(join(tmpdir(), 'unc-gpu-check-'));
  let log = '';
  const logStream = new Writable({
    write(chunk, _enc, done) {
      log += chunk.toString();
      done();
    },
  });
  const base = { chainId, signers: [signer], leases, concurrency: 1 };
  const gpu = new ProviderServer({
    ...base,
    modelDir: join(dir, 'gpu'),
    executionProvider: 'cuda',
    logger: createLogger('provider', { stream: logStream, level: 'warn' }),
  });
  const cpu = new ProviderServer({ ...base, modelDir: join(dir, 'cpu'), logger: silentLogger });
  try {
    const gpuUrl = await gpu.start();
    const ep = gpu.health().executionProvider;
    if (ep !== 'cuda') {
      const why = /CUDA execution provider unavailable[^\n]*/.exec(log)?.[0] ?? log.trim();
      console.log(`CUDA NOT AVAILABLE: the provider asked for 'cuda' runs on '${ep}'.`);
      console.log(`  its log: ${why || '(nothing)'}`);
      if (!lib.present)
        console.log(
          '  this onnxruntime-node build has no CUDA provider (installed with ONNXRUNTIME_NODE_INSTALL_CUDA=skip);\n' +
            '  on the GPU host: ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install\n' +
            '  (downloads the CUDA 12 provider from the NuGet feed; needs the CUDA 12 and cuDNN 9 runtime libraries on LD_LIBRARY_PATH)',
        );
      return lib.present ? CUDA_FAILED : NO_CUDA_IN_RUNTIME;
    }
    const cpuUrl = await cpu.start();
    const image = fixture('ocr-sample.png');
    const client = (endpoint: string) =>
      new ProviderClient({ endpoint, chainId, leaseId, renterSeed, allowHttp: true });
    const onGpu = client(gpuUrl);
    const onCpu = client(cpuUrl);
    const gpuText = (await onGpu.runOcr(image, gpu.ocrModelHash)).job.ocr?.text;
    const cpuText = (await onCpu.runOcr(image, cpu.ocrModelHash)).job.ocr?.text;
    console.log(`OCR text on CUDA: ${JSON.stringify(gpuText)}; on the CPU: ${JSON.stringify(cpuText)}`);
    const direct = {
      cuda: await OcrEngine.create({ onnxOptions: { executionProviders: ['cuda'] } }),
      cpu: await OcrEngine.create({ onnxOptions: { executionProviders: ['cpu'] } }),
    };
    for (const e of Object.values(direct)) await e.recognise(image);
    const rows: [string, number[], number[]][] = [
      [
        'provider API (sdk client, receipt checked)',
        await timeEach(jobs, () => onCpu.runOcr(image, cpu.ocrModelHash)),
        await timeEach(jobs, () => onGpu.runOcr(image, gpu.ocrModelHash)),
      ],
      [
        'OcrEngine directly',
        await timeEach(jobs, () => direct.cpu.recognise(image)),
        await timeEach(jobs, () => direct.cuda.recognise(image)),
      ],
    ];
    console.log(`\nOCR (PP-OCRv4), ${jobs} jobs one at a time, p50`);
    for (const [name, c, g] of rows)
      console.log(
        `  ${name.padEnd(44)} CPU ${median(c).toFixed(1).padStart(8)} ms   CUDA ${median(g).toFixed(1).padStart(8)} ms   CUDA speed-up ×${(median(c) / median(g)).toFixed(2)}`,
      );
    onGpu.close();
    onCpu.close();
    return gpuText === cpuText ? 0 : CUDA_FAILED;
  } finally {
    await gpu.stop();
    await cpu.stop().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}

process.exitCode = await main();
