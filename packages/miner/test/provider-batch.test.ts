/**
 * Batches of jobs (POST /v1/jobs/batch) end to end over real HTTP with real ONNX Runtime and the
 * OCR pipeline: one chip signature over a Merkle root of the results, each job provable on its
 * own; tampered answers are caught by the sdk's client and offline checks; and a batch counts
 * against the renter's share, the queue and the lease exactly like its jobs sent one by one.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DEV_SOFT_VENDOR, ed25519PublicKey, fromHex, toHex, utf8 } from '@unc/core';
import { silentLogger } from '@unc/node';
import {
  type BatchView,
  decodeSignedBatchReceipt,
  encodeSignedBatchReceipt,
  failedJobOutputHash,
  ProviderClient,
  type ProviderError,
  signJobRequest,
  type TensorJson,
  tensorsFromJson,
  tensorsHash,
  verifyBatchJob,
  verifyBatchReceiptOffline,
} from '@unc/sdk';
import { DevSoftSigner, ProviderServer } from '../src/index.js';
import { affineModel } from './fixtures/make-fixtures.js';
import { tempDir } from './helpers.js';
import { chipRecord, fixture, InMemoryLeaseSource, OCR_SAMPLE_TEXT } from './provider-helpers.js';

const CHAIN = 'unc-test-provider-batch';

function f32(values: number[]): string {
  const b = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => b.writeFloatLE(v, i * 4));
  return b.toString('base64');
}
function readF32(base64: string): number[] {
  const b = Buffer.from(base64, 'base64');
  return Array.from({ length: b.length / 4 }, (_, i) => b.readFloatLE(i * 4));
}
const x = (v: number[]): Record<string, TensorJson> => ({
  x: { type: 'float32', dims: [1, 4], data: f32(v) },
});
/** y = x·W + b of the affine fixture. */
const affine = ([a, b, c, d]: number[]) => [
  a! + 3 * b! + 5 * c! + 7 * d! + 0.5,
  2 * a! + 4 * b! + 6 * c! + 8 * d! - 1,
];

/** Forwards requests to the provider and lets a test rewrite the answer: a dishonest provider. */
async function tamperingProxy(
  target: string,
  rewrite: (view: BatchView) => void,
): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers))
      if (typeof v === 'string' && k.startsWith('x-unc-')) headers[k] = v;
    const answer = await fetch(`${target}${req.url}`, {
      method: req.method!,
      headers,
      ...(chunks.length ? { body: Buffer.concat(chunks) } : {}),
    });
    const json = (await answer.json()) as BatchView;
    if (req.url === '/v1/jobs/batch' && answer.status === 200) rewrite(json);
    const text = JSON.stringify(json);
    res.writeHead(answer.status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
    });
    res.end(text);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe('provider batches with a dev-soft chip', () => {
  const chipSeed = new Uint8Array(randomBytes(32));
  const signer = new DevSoftSigner(chipSeed, 'dev-h100', 'dev-chip-batch');
  const renterSeed = new Uint8Array(randomBytes(32));
  const strangerSeed = new Uint8Array(randomBytes(32));
  const leaseId = toHex(randomBytes(32));
  const leases = new InMemoryLeaseSource();
  let dir: { path: string; remove(): Promise<void> };
  let provider: ProviderServer;
  let url: string;
  let client: ProviderClient;
  let modelHash: string;
  let chip: ReturnType<typeof chipRecord>;

  before(async () => {
    const chipId = await signer.chipId();
    chip = chipRecord({
      chipId,
      profile: 'dev-soft',
      keyMaterial: ed25519PublicKey(chipSeed),
      vendorId: DEV_SOFT_VENDOR,
      modelId: 'dev-h100',
    });
    leases.leases.set(leaseId, {
      id: leaseId,
      chipId: toHex(chipId),
      renterPublicKey: toHex(ed25519PublicKey(renterSeed)),
      status: 'active',
    });
    dir = await tempDir('unc-provider-batch-');
    provider = new ProviderServer({
      chainId: CHAIN,
      signers: [signer],
      leases,
      modelDir: dir.path,
      leaseCacheMs: 0,
      concurrency: 2,
      maxBatchJobs: 8,
      logger: silentLogger,
    });
    url = await provider.start();
    client = new ProviderClient({ endpoint: url, chainId: CHAIN, leaseId, renterSeed, allowHttp: true });
    ({ modelHash } = await client.uploadModel(affineModel()));
  });

  after(async () => {
    client?.close();
    await provider?.stop();
    await dir?.remove();
  });

  test('a batch answers every job with its outputs, proven against one chip-signed receipt', async () => {
    const inputs = [
      [1, 1, 1, 1],
      [0, 0, 0, 0],
      [1, 2, 3, 4],
      [-1, 0.5, 2, 0],
      [3, 3, 3, 3],
    ];
    const { batch, receipt, jobs } = await client.runBatch(modelHash, inputs.map(x));
    assert.equal(jobs.length, 5);
    for (const [i, v] of inputs.entries()) {
      assert.equal(jobs[i]!.status, 'done');
      assert.deepEqual(readF32(jobs[i]!.outputs!.y!.data), affine(v));
    }
    // The receipt is the chip's, for this chain, lease, model and five jobs.
    const r = verifyBatchReceiptOffline(batch.receipt.hex, chip, CHAIN);
    assert.equal(r.jobCount, 5);
    assert.equal(toHex(r.leaseId), leaseId);
    assert.equal(toHex(r.modelHash), modelHash);
    assert.equal(batch.receipt.json.resultsRoot, toHex(receipt.receipt.resultsRoot));
    // Any one job can be checked alone, later, from its view and its input hash.
    const alone = JSON.parse(JSON.stringify(jobs[3]));
    verifyBatchJob(r, alone, tensorsHash(tensorsFromJson(x(inputs[3]!))));
    assert.throws(() => verifyBatchJob(r, alone, tensorsHash(tensorsFromJson(x(inputs[2]!)))), /not the one/);
    // One signature for the batch: the chip signed one digest, not five.
    assert.equal(batch.jobs.length, 5);
  });

  test('a batch of OCR jobs', async () => {
    const image = fixture('ocr-sample.png');
    const { jobs, batch } = await client.runOcrBatch([image, image], provider.ocrModelHash);
    for (const j of jobs) assert.equal(j.ocr?.text, OCR_SAMPLE_TEXT);
    verifyBatchReceiptOffline(batch.receipt.hex, chip, CHAIN);
  });

  test('a job that fails is answered as failed, and its failure is proven like a result', async () => {
    const bad = { z: { type: 'float32', dims: [1, 4], data: f32([1, 1, 1, 1]) } } as Record<
      string,
      TensorJson
    >;
    const { jobs, receipt } = await client.runBatch(modelHash, [x([1, 1, 1, 1]), bad, x([0, 0, 0, 0])]);
    assert.deepEqual(
      jobs.map((j) => j.status),
      ['done', 'failed', 'done'],
    );
    assert.equal(jobs[1]!.code, 'JOB_FAILED');
    assert.match(jobs[1]!.error!, /no input "z"/);
    // A provider cannot turn the failure into a result, nor change its code, without the chip.
    const forged = { ...jobs[1]!, status: 'done' as const, outputs: jobs[0]!.outputs! };
    assert.throws(
      () => verifyBatchJob(receipt.receipt, forged, tensorsHash(tensorsFromJson(bad))),
      /not the one/,
    );
    const recoded = { ...jobs[1]!, code: 'JOB_TIMEOUT' };
    assert.throws(
      () => verifyBatchJob(receipt.receipt, recoded, tensorsHash(tensorsFromJson(bad))),
      /not the one/,
    );
    assert.notDeepEqual(failedJobOutputHash('JOB_FAILED'), failedJobOutputHash('JOB_TIMEOUT'));
  });

  test("a job's receipt replayed for a later job with the same inputs is refused", async () => {
    // A provider that answers a repeated job with the first one's answer (right outputs, a real
    // chip signature, this lease, model and inputs) without running it: before, the client took
    // it, and the gateway stored one receipt for two jobs and counted its cost twice.
    let first: string | null = null;
    const replay: Server = createServer(async (req, res) => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      let text = first;
      if (req.url !== '/v1/jobs' || text === null) {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(req.headers))
          if (typeof v === 'string' && k.startsWith('x-unc-')) headers[k] = v;
        const answer = await fetch(`${url}${req.url}`, {
          method: req.method!,
          headers,
          ...(chunks.length ? { body: Buffer.concat(chunks) } : {}),
        });
        text = await answer.text();
        if (req.url === '/v1/jobs' && answer.status === 200) first = text;
      }
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    });
    await new Promise<void>((r) => replay.listen(0, '127.0.0.1', r));
    const c = new ProviderClient({
      endpoint: `http://127.0.0.1:${(replay.address() as AddressInfo).port}`,
      chainId: CHAIN,
      leaseId,
      renterSeed,
      allowHttp: true,
    });
    try {
      const one = await c.runJob(modelHash, x([1, 2, 3, 4]));
      assert.equal(one.job.status, 'done');
      await assert.rejects(c.runJob(modelHash, x([1, 2, 3, 4])), /another request than the one sent/);
    } finally {
      c.close();
      replay.closeAllConnections();
      await new Promise<void>((r) => replay.close(() => r()));
    }
  });

  test('a tampered receipt or result from the provider fails verification', async () => {
    const inputs = [x([1, 1, 1, 1]), x([1, 2, 3, 4]), x([0, 0, 0, 1])];
    const cases: [string, (v: BatchView) => void, RegExp][] = [
      [
        'an output changed',
        (v) => {
          v.jobs[1]!.outputs!.y!.data = f32([1, 2]);
        },
        /not the one the chip signed/,
      ],
      [
        'two answers swapped',
        (v) => {
          const [a, b] = [v.jobs[0]!, v.jobs[2]!];
          v.jobs[0] = { ...b, index: 0 };
          v.jobs[2] = { ...a, index: 2 };
        },
        /another id|not the one/,
      ],
      [
        'the results root replaced',
        (v) => {
          const s = decodeSignedBatchReceipt(v.receipt.hex);
          s.receipt.resultsRoot = new Uint8Array(32).fill(1);
          v.receipt.hex = encodeSignedBatchReceipt(s);
        },
        /not the one the chip signed/,
      ],
      [
        'a receipt for fewer jobs',
        (v) => {
          const s = decodeSignedBatchReceipt(v.receipt.hex);
          s.receipt.jobCount = 2;
          v.receipt.hex = encodeSignedBatchReceipt(s);
        },
        /covers 2 jobs; 3 were sent/,
      ],
      [
        'a job dropped',
        (v) => {
          v.jobs.pop();
        },
        /did not answer every job/,
      ],
    ];
    for (const [what, rewrite, error] of cases) {
      const proxy = await tamperingProxy(url, rewrite);
      const c = new ProviderClient({
        endpoint: proxy.url,
        chainId: CHAIN,
        leaseId,
        renterSeed,
        allowHttp: true,
      });
      try {
        await assert.rejects(c.runBatch(modelHash, inputs), error, what);
      } finally {
        c.close();
        await proxy.close();
      }
    }
    // A receipt whose fields the client accepts but whose signature is not the chip's.
    const { batch } = await client.runBatch(modelHash, inputs);
    const s = decodeSignedBatchReceipt(batch.receipt.hex);
    s.receipt.durationMs += 1n;
    assert.throws(
      () => verifyBatchReceiptOffline(encodeSignedBatchReceipt(s), chip, CHAIN),
      /not signed by the chip/,
    );
    assert.throws(() => verifyBatchReceiptOffline(batch.receipt.hex, chip, 'another-chain'), /chain/);
  });

  /** A signed raw batch request. */
  async function raw(body: unknown, seed = renterSeed) {
    const bytes = utf8(JSON.stringify(body));
    const headers = signJobRequest(seed, {
      chainId: CHAIN,
      leaseId: fromHex(leaseId, 32),
      method: 'POST',
      path: '/v1/jobs/batch',
      body: bytes,
    });
    const res = await fetch(`${url}/v1/jobs/batch`, { method: 'POST', headers, body: bytes });
    return { status: res.status, json: (await res.json()) as { error?: { code: string; message: string } } };
  }

  test('bad batches are refused whole, before any job runs', async () => {
    const before = provider.jobProcesses.spawned;
    const bad = await raw({ model: modelHash, jobs: [{ inputs: x([1, 1, 1, 1]) }, { inputs: { x: 1 } }] });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error?.code, 'BAD_INPUT');
    assert.match(bad.json.error!.message, /^job 1: /);
    assert.equal((await raw({ model: modelHash, jobs: [] })).json.error?.code, 'BAD_BATCH');
    const nine = Array.from({ length: 9 }, () => ({ inputs: x([1, 1, 1, 1]) }));
    const tooMany = await raw({ model: modelHash, jobs: nine });
    assert.equal(tooMany.status, 400);
    assert.match(tooMany.json.error!.message, /1 to 8 jobs/);
    assert.equal((await raw({ model: 'ocr', jobs: [{ image: '' }] })).status, 400);
    assert.equal(
      (await raw({ model: toHex(randomBytes(32)), jobs: [{ inputs: x([1, 1, 1, 1]) }] })).status,
      404,
    );
    // Only the lease's renter may send one.
    const stranger = await raw({ model: modelHash, jobs: [{ inputs: x([1, 1, 1, 1]) }] }, strangerSeed);
    assert.equal(stranger.status, 403);
    assert.equal(stranger.json.error?.code, 'NOT_RENTER');
    assert.equal(provider.health().queue.running + provider.health().queue.queued, 0);
    assert.equal(provider.jobProcesses.spawned, before);
  });
});

describe('provider batches count against the limits like their jobs', () => {
  async function setup(opts: {
    concurrency: number;
    maxQueued: number;
    maxJobsPerRenter: number;
    maxGroupMs?: number;
    maxOutputBytes?: number;
  }) {
    const signer = new DevSoftSigner(new Uint8Array(randomBytes(32)), 'dev-h100', 'dev-chip-bl');
    const renterSeed = new Uint8Array(randomBytes(32));
    const leaseId = toHex(randomBytes(32));
    const leases = new InMemoryLeaseSource();
    leases.leases.set(leaseId, {
      id: leaseId,
      chipId: toHex(await signer.chipId()),
      renterPublicKey: toHex(ed25519PublicKey(renterSeed)),
      status: 'active',
    });
    const dir = await tempDir('unc-provider-bl-');
    const provider = new ProviderServer({
      chainId: CHAIN,
      signers: [signer],
      leases,
      modelDir: dir.path,
      leaseCacheMs: 0,
      ...opts,
      logger: silentLogger,
    });
    const url = await provider.start();
    const client = new ProviderClient({
      endpoint: url,
      chainId: CHAIN,
      leaseId,
      renterSeed,
      allowHttp: true,
    });
    // A second renter with its own lease on the same chip.
    const otherSeed = new Uint8Array(randomBytes(32));
    const otherLease = toHex(randomBytes(32));
    leases.leases.set(otherLease, {
      id: otherLease,
      chipId: toHex(await signer.chipId()),
      renterPublicKey: toHex(ed25519PublicKey(otherSeed)),
      status: 'active',
    });
    const other = new ProviderClient({
      endpoint: url,
      chainId: CHAIN,
      leaseId: otherLease,
      renterSeed: otherSeed,
      allowHttp: true,
    });
    return {
      provider,
      client,
      other,
      leases,
      leaseId,
      modelDir: dir.path,
      async stop() {
        client.close();
        other.close();
        await provider.stop();
        await dir.remove();
      },
    };
  }
  const image = fixture('ocr-sample.png');
  const busy = (p: ProviderServer) => p.health().queue.running > 0;
  async function until(cond: () => boolean): Promise<void> {
    // By a deadline, not a count of 10 ms sleeps: each sleep runs long on a loaded machine.
    const deadline = Date.now() + 30_000;
    while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.ok(cond(), 'timed out waiting (30 s)');
  }

  test('a batch larger than the places left in the queue is refused whole (429), one that fits runs', async () => {
    const s = await setup({ concurrency: 1, maxQueued: 2, maxJobsPerRenter: 16 });
    try {
      // One running and two waiting places: four jobs do not fit, three do.
      await assert.rejects(
        s.client.runOcrBatch([image, image, image, image], s.provider.ocrModelHash),
        (e: ProviderError) => e.status === 429 && e.code === 'QUEUE_FULL',
      );
      assert.equal(s.provider.health().queue.running, 0);
      const three = s.client.runOcrBatch([image, image, image], s.provider.ocrModelHash);
      await until(() => busy(s.provider));
      // While the batch holds every place, a job sent alone finds the queue full.
      await assert.rejects(
        s.client.runOcr(image, s.provider.ocrModelHash),
        (e: ProviderError) => e.status === 429 && e.code === 'QUEUE_FULL',
      );
      assert.equal((await three).jobs.filter((j) => j.status === 'done').length, 3);
    } finally {
      await s.stop();
    }
  });

  test("a batch counts as its jobs in the renter's share (429 RENTER_BUSY)", async () => {
    const s = await setup({ concurrency: 1, maxQueued: 16, maxJobsPerRenter: 4 });
    try {
      const first = s.client.runOcrBatch([image, image, image], s.provider.ocrModelHash);
      await until(() => busy(s.provider));
      await assert.rejects(
        s.client.runOcrBatch([image, image], s.provider.ocrModelHash),
        (e: ProviderError) => e.status === 429 && e.code === 'RENTER_BUSY',
      );
      // The one place left is still there for a job sent alone.
      const alone = await s.client.runOcr(image, s.provider.ocrModelHash);
      assert.equal(alone.job.status, 'done');
      await first;
      // All places are given back once the batch is done.
      assert.equal(
        (await s.client.runOcrBatch([image, image, image, image], s.provider.ocrModelHash)).jobs.length,
        4,
      );
    } finally {
      await s.stop();
    }
  });

  test("a group of a batch gives its runner up past its budget: another renter's job does not wait for all of it", async () => {
    // One runner; the batch's 8 jobs are one group. Every job passes the (zero) budget, so the
    // group lets the waiting job of the other renter run before its next job. It used to hold
    // the runner for all 8 jobs (8 job time limits with slow jobs) while the other renter waited.
    const s = await setup({ concurrency: 1, maxQueued: 16, maxJobsPerRenter: 16, maxGroupMs: 0 });
    try {
      const order: string[] = [];
      const batch = s.client.runOcrBatch(Array(8).fill(image), s.provider.ocrModelHash).then((r) => {
        order.push('batch');
        return r;
      });
      await until(() => busy(s.provider));
      const alone = await s.other.runOcr(image, s.provider.ocrModelHash);
      order.push('alone');
      assert.equal(alone.job.status, 'done');
      const done = await batch;
      assert.deepEqual(order, ['alone', 'batch']);
      // Every job of the batch still ran and is proven against the one receipt.
      assert.deepEqual(
        done.jobs.map((j) => j.status),
        Array(8).fill('done'),
      );
      assert.equal(s.provider.health().queue.queued, 0);
      assert.equal(s.provider.health().queue.running, 0);
    } finally {
      await s.stop();
    }
  });

  test("a batch's outputs together stay within what one answer may hold; the jobs past it fail, proven", async () => {
    // Each affine job returns 8 bytes; 20 bytes hold two jobs' outputs, not three. A batch of
    // jobs near the limit used to answer with the limit times its jobs.
    const s = await setup({ concurrency: 2, maxQueued: 8, maxJobsPerRenter: 8, maxOutputBytes: 20 });
    try {
      const { modelHash } = await s.client.uploadModel(affineModel());
      const alone = await s.client.runJob(modelHash, x([1, 2, 3, 4]));
      assert.equal(alone.job.status, 'done');
      const { jobs } = await s.client.runBatch(modelHash, [
        x([1, 0, 0, 0]),
        x([0, 1, 0, 0]),
        x([0, 0, 1, 0]),
      ]);
      assert.deepEqual(
        jobs.map((j) => j.status),
        ['done', 'done', 'failed'],
      );
      assert.equal(jobs[2]!.code, 'OUTPUT_TOO_LARGE');
      assert.equal(jobs[2]!.outputs, undefined);
    } finally {
      await s.stop();
    }
  });

  test('a model removed from disk by hand is checked and stored again by its next upload', async () => {
    const s = await setup({ concurrency: 1, maxQueued: 4, maxJobsPerRenter: 4 });
    try {
      const { modelHash } = await s.client.uploadModel(affineModel());
      // A job makes the store remember the model is there.
      await s.client.runBatch(modelHash, [x([1, 2, 3, 4])]);
      const file = join(s.modelDir, `${modelHash}.onnx`);
      rmSync(file);
      // The upload used to be thrown away ("already stored") while the file stayed gone.
      const again = await s.client.uploadModel(affineModel());
      assert.equal(again.stored, true);
      assert.ok(existsSync(file));
    } finally {
      await s.stop();
    }
  });

  test('a lease that closes while a batch waits gets none of its jobs run', async () => {
    const s = await setup({ concurrency: 1, maxQueued: 8, maxJobsPerRenter: 8 });
    try {
      const first = s.client.runOcrBatch([image, image], s.provider.ocrModelHash);
      await until(() => busy(s.provider));
      const second = s.client.runOcrBatch([image, image, image], s.provider.ocrModelHash);
      await until(() => s.provider.health().queue.queued >= 4);
      s.leases.leases.get(s.leaseId)!.status = 'closed';
      // The first batch's jobs had started; the second's had not.
      assert.deepEqual(
        (await first).jobs.map((j) => j.status),
        ['done', 'done'],
      );
      assert.deepEqual(
        (await second).jobs.map((j) => j.code),
        ['LEASE_NOT_ACTIVE', 'LEASE_NOT_ACTIVE', 'LEASE_NOT_ACTIVE'],
      );
    } finally {
      await s.stop();
    }
  });
});
