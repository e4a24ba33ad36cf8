/**
 * Rental jobs through the provider API against the same work done directly, in one run:
 *
 *   - OCR (PP-OCRv4 on the fixture image): OcrEngine.recognise directly, then `unc`'s renter client
 *     → HTTP → signature, lease and replay checks → queue → OCR → receipt signed by a dev-soft
 *     chip → the client's receipt checks; the same over TLS 1.3 with the provider's self-signed
 *     certificate pinned by fingerprint (kept-alive connections, so the handshake is amortised);
 *   - a tiny generic ONNX model (y = x·W + b), where nearly all of the API path is overhead.
 *
 * Jobs are sent one at a time (latency) and then `--parallel` at a time (throughput). Leases are
 * read from an in-memory table (what the chain would answer; the provider caches it anyway).
 *
 *   npm run bench:jobs -- [--jobs 100] [--parallel 4]
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ed25519PublicKey, toHex } from '@unc/core';
import { silentLogger } from '@unc/node';
import { ProviderClient, type TensorJson } from '@unc/sdk';
import * as ort from 'onnxruntime-node';
import {
  DevSoftSigner,
  type LeaseSource,
  OcrEngine,
  type ProviderLease,
  ProviderServer,
} from '../src/index.js';
import { affineModel } from '../test/fixtures/make-fixtures.js';
import { fixture } from '../test/provider-helpers.js';

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
}

function merge(parts: Figures[]): Figures {
  const lat = parts.flatMap((p) => p.latencies).sort((a, b) => a - b);
  const seconds = parts.reduce((s, p) => s + p.seconds, 0);
  return { jobsPerSec: lat.length / seconds, p50: pct(lat, 50), p99: pct(lat, 99), latencies: lat, seconds };
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** Runs `n` calls `parallel` at a time; latency per call, throughput over the whole run. */
async function measure(n: number, parallel: number, fn: () => Promise<unknown>): Promise<Figures> {
  const lat: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < n) {
        next++;
        const t = performance.now();
        await fn();
        lat.push(performance.now() - t);
      }
    }),
  );
  const total = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  return { jobsPerSec: n / total, p50: pct(lat, 50), p99: pct(lat, 99), latencies: lat, seconds: total };
}

const fmt = (f: Figures) =>
  `${f.jobsPerSec.toFixed(1).padStart(8)} jobs/s   p50 ${f.p50.toFixed(2).padStart(8)} ms   p99 ${f.p99.toFixed(2).padStart(8)} ms`;

async function main(): Promise<void> {
  const jobs = arg('jobs', 100);
  const parallel = arg('parallel', 4);
  const chainId = 'unc-bench-jobs';
  const signer = new DevSoftSigner(new Uint8Array(randomBytes(32)), 'dev-h100', 'bench-chip');
  const renterSeed = new Uint8Array(randomBytes(32));
  const leaseId = toHex(randomBytes(32));
  const lease: ProviderLease = {
    id: leaseId,
    chipId: toHex(await signer.chipId()),
    renterPublicKey: toHex(ed25519PublicKey(renterSeed)),
    status: 'active',
  };
  const leases: LeaseSource = { getLease: async (id) => (id === leaseId ? lease : null) };
  const dir = await mkdtemp(join(tmpdir(), 'unc-bench-jobs-'));
  const options = {
    chainId,
    signers: [signer],
    leases,
    modelDir: dir,
    concurrency: parallel,
    maxQueued: 4 * parallel,
    logger: silentLogger,
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
    const engine = await OcrEngine.create();
    const model = affineModel();
    const { modelHash } = await client.uploadModel(model);
    await tlsClient.uploadModel(model);
    const session = await ort.InferenceSession.create(model, { executionProviders: ['cpu'] });
    const x = Buffer.alloc(16);
    [1, 2, 3, 4].forEach((v, i) => x.writeFloatLE(v, i * 4));
    const inputs: Record<string, TensorJson> = {
      x: { type: 'float32', dims: [1, 4], data: x.toString('base64') },
    };
    const xTensor = new ort.Tensor('float32', new Float32Array(x.buffer, x.byteOffset, 4), [1, 4]);

    const cases: [string, () => Promise<unknown>, () => Promise<unknown>, () => Promise<unknown>][] = [
      [
        'OCR (PP-OCRv4)',
        () => engine.recognise(image),
        () => client.runOcr(image, provider.ocrModelHash),
        () => tlsClient.runOcr(image, provider.ocrModelHash),
      ],
      [
        'ONNX affine 1×4',
        () => session.run({ x: xTensor }),
        () => client.runJob(modelHash, inputs),
        () => tlsClient.runJob(modelHash, inputs),
      ],
    ];
    console.log(
      `rental jobs, ${jobs} jobs per row; ${cpus()[0]?.model ?? 'cpu'} × ${availableParallelism()}; ONNX Runtime CPU; receipts signed by a dev-soft chip`,
    );
    for (const [name, direct, api, tls] of cases) {
      // Warm-up: sessions, JIT, sockets (and their TLS handshakes).
      for (let i = 0; i < 3; i++) {
        await direct();
        await api();
        await tls();
      }
      for (const p of [1, parallel]) {
        // Interleaved in slices, so a change in the machine's load hits both sides alike.
        const slices = 4;
        const ds: Figures[] = [];
        const as: Figures[] = [];
        const ts: Figures[] = [];
        for (let s = 0; s < slices; s++) {
          ds.push(await measure(Math.ceil(jobs / slices), p, direct));
          as.push(await measure(Math.ceil(jobs / slices), p, api));
          ts.push(await measure(Math.ceil(jobs / slices), p, tls));
        }
        const d = merge(ds);
        const a = merge(as);
        const t = merge(ts);
        const over = (x: Figures) =>
          `p50 +${(x.p50 - d.p50).toFixed(2)} ms (×${(x.p50 / d.p50).toFixed(2)}), throughput ×${(x.jobsPerSec / d.jobsPerSec).toFixed(2)}`;
        console.log(`\n${name}, ${p} at a time`);
        console.log(`  direct              ${fmt(d)}`);
        console.log(`  provider API http   ${fmt(a)}`);
        console.log(`  provider API TLS    ${fmt(t)}`);
        console.log(`  overhead http       ${over(a)}`);
        console.log(`  overhead TLS        ${over(t)}`);
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
