/**
 * The provider API end to end over real HTTP, with real ONNX Runtime and the real PP-OCRv4 OCR
 * pipeline, receipts signed by a dev-soft chip. Leases come from an in-memory lease table (the
 * chain's unc_getLease stands behind the same interface in the agent).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import {
  contentHash,
  DEV_SOFT_VENDOR,
  decode,
  ed25519PublicKey,
  encode,
  signedReceiptCodec,
  toHex,
  utf8,
} from '@unc/core';
import { createLogger, silentLogger } from '@unc/node';
import {
  decodeSignedReceipt,
  encodeSignedReceipt,
  OCR_MODEL,
  ProviderClient,
  type ProviderError,
  signJobRequest,
  type TensorJson,
  type UncClient,
  verifyReceiptOffline,
} from '@unc/sdk';
import { DevSoftSigner, type JobTiming, ProviderServer, RpcLeaseSource } from '../src/index.js';
import { AFFINE_B, AFFINE_W, affineModel } from './fixtures/make-fixtures.js';
import { BWRAP_WORKS, tempDir } from './helpers.js';
import { chipJsonOf, chipRecord, fixture, InMemoryLeaseSource, OCR_SAMPLE_TEXT } from './provider-helpers.js';

const CHAIN = 'unc-test-provider';

function f32(values: number[]): string {
  const b = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => b.writeFloatLE(v, i * 4));
  return b.toString('base64');
}
function readF32(base64: string): number[] {
  const b = Buffer.from(base64, 'base64');
  return Array.from({ length: b.length / 4 }, (_, i) => b.readFloatLE(i * 4));
}

describe('provider API with an in-memory lease source and a dev-soft chip', () => {
  const chipSeed = new Uint8Array(randomBytes(32));
  const signer = new DevSoftSigner(chipSeed, 'dev-h100', 'dev-chip-0');
  const renterSeed = new Uint8Array(randomBytes(32));
  const strangerSeed = new Uint8Array(randomBytes(32));
  const leaseId = toHex(randomBytes(32));
  const closedLeaseId = toHex(randomBytes(32));
  const otherChipLeaseId = toHex(randomBytes(32));
  const leases = new InMemoryLeaseSource();
  let chipIdHex: string;
  let dir: { path: string; remove(): Promise<void> };
  let provider: ProviderServer;
  let url: string;
  let client: ProviderClient;
  const timings: JobTiming[] = [];

  before(async () => {
    chipIdHex = toHex(await signer.chipId());
    const renter = toHex(ed25519PublicKey(renterSeed));
    leases.leases.set(leaseId, { id: leaseId, chipId: chipIdHex, renterPublicKey: renter, status: 'active' });
    leases.leases.set(closedLeaseId, {
      id: closedLeaseId,
      chipId: chipIdHex,
      renterPublicKey: renter,
      status: 'closed',
    });
    leases.leases.set(otherChipLeaseId, {
      id: otherChipLeaseId,
      chipId: toHex(randomBytes(32)),
      renterPublicKey: renter,
      status: 'active',
    });
    dir = await tempDir('unc-provider-');
    provider = new ProviderServer({
      chainId: CHAIN,
      signers: [signer],
      leases,
      modelDir: dir.path,
      leaseCacheMs: 0,
      maxBodyBytes: 1024 * 1024,
      maxModelBytes: 64 * 1024,
      authWindowMs: 30_000,
      logger: silentLogger,
      onJobStages: (t) => timings.push(t),
    });
    url = await provider.start();
    client = new ProviderClient({ endpoint: url, chainId: CHAIN, leaseId, renterSeed, allowHttp: true });
  });

  after(async () => {
    await provider?.stop();
    await dir?.remove();
  });

  /** A signed raw request, so tests can alter what the client would never send. */
  async function raw(
    method: string,
    path: string,
    body: Uint8Array | undefined,
    opts: { seed?: Uint8Array; lease?: string; timestampMs?: bigint; nonce?: bigint; chainId?: string } = {},
  ): Promise<{ status: number; json: Record<string, unknown>; headers: Record<string, string> }> {
    const headers = signJobRequest(
      opts.seed ?? renterSeed,
      {
        chainId: opts.chainId ?? CHAIN,
        leaseId: Buffer.from(opts.lease ?? leaseId, 'hex'),
        method,
        path,
        body: body ?? new Uint8Array(0),
      },
      {
        ...(opts.timestampMs !== undefined ? { timestampMs: opts.timestampMs } : {}),
        ...(opts.nonce !== undefined ? { nonce: opts.nonce } : {}),
      },
    );
    const res = await fetch(`${url}${path}`, { method, headers, ...(body ? { body } : {}) });
    return { status: res.status, json: (await res.json()) as Record<string, unknown>, headers };
  }

  const errorCode = (json: Record<string, unknown>) => (json.error as { code: string }).code;

  test('health says which chain, chips and OCR model it serves', async () => {
    const h = await client.health();
    assert.equal(h.chainId, CHAIN);
    assert.deepEqual(h.chips, [chipIdHex]);
    assert.match(h.ocrModelHash, /^[0-9a-f]{64}$/);
    assert.equal(h.executionProvider, 'cpu');
    // The default, auto: bubblewrap where it is installed (CI installs it), else none.
    assert.equal(h.jobIsolation, BWRAP_WORKS ? 'bwrap' : 'none');
  });

  test('the OCR job reads the sample image exactly and the dev-soft chip signs its receipt', async () => {
    const image = fixture('ocr-sample.png');
    const { job, receipt } = await client.runOcr(image);
    assert.equal(job.status, 'done');
    assert.equal(job.ocr?.text, OCR_SAMPLE_TEXT);
    assert.ok(job.ocr!.lines[0]!.confidencePpm > 900_000);
    assert.equal(toHex(receipt.receipt.inputHash), toHex(contentHash(image)));
    assert.equal(toHex(receipt.receipt.modelHash), provider.ocrModelHash);
    assert.equal(job.receipt?.json.chipId, chipIdHex);
    assert.equal(job.receipt?.json.profile, 'dev-soft');

    const record = chipRecord({
      chipId: await signer.chipId(),
      profile: 'dev-soft',
      keyMaterial: ed25519PublicKey(chipSeed),
      vendorId: DEV_SOFT_VENDOR,
      modelId: 'dev-h100',
    });
    // Against the decoded record and against the node's JSON of it.
    verifyReceiptOffline(job.receipt!.hex, record, CHAIN);
    verifyReceiptOffline(job.receipt!.hex, chipJsonOf(record), CHAIN);
    assert.throws(
      () => verifyReceiptOffline(job.receipt!.hex, record, 'another-chain'),
      /RECEIPT_WRONG_CHAIN|another-chain/,
    );
    const otherChip = chipRecord({ ...record, keyMaterial: ed25519PublicKey(strangerSeed) });
    assert.throws(() => verifyReceiptOffline(job.receipt!.hex, otherChip, CHAIN), /not signed by the chip/);
  });

  // What bench:jobs --stages prints: every stage of a job's way, in order, the transfers to the
  // job process and back measured from its own stamps (on the clock the processes share).
  test('a job waited for is cut into its stages, with the job process’s stamps and CPU time', async () => {
    timings.length = 0;
    await client.runOcr(fixture('ocr-sample.png'));
    assert.equal(timings.length, 1);
    const [t] = timings;
    assert.deepEqual(
      t!.stages.map(([name]) => name),
      [
        'headers, signature, lease',
        'body read and hashed',
        'JSON, input decoded, checked, hashed',
        'queue, lease, job process',
        'to job process',
        'OCR run',
        'from job process',
        'output hash',
        'receipt signed',
        'answer built',
        'answer written',
      ],
    );
    for (const [name, ms] of t!.stages) assert.ok(Number.isFinite(ms) && ms >= 0, `${name}: ${ms} ms`);
    assert.ok(t!.jobCpuMs !== null && t!.jobCpuMs > 0, 'the job process says what CPU its run took');
  });

  test('a tampered receipt does not verify', async () => {
    const { job } = await client.runOcr(fixture('ocr-sample.png'));
    const record = chipRecord({
      chipId: await signer.chipId(),
      profile: 'dev-soft',
      keyMaterial: ed25519PublicKey(chipSeed),
      vendorId: DEV_SOFT_VENDOR,
      modelId: 'dev-h100',
    });
    const signed = decodeSignedReceipt(job.receipt!.hex);
    const forged = {
      ...signed,
      receipt: { ...signed.receipt, durationMs: signed.receipt.durationMs + 1000n },
    };
    assert.throws(
      () => verifyReceiptOffline(encodeSignedReceipt(forged), record, CHAIN),
      /not signed by the chip/,
    );
    const otherOutput = new Uint8Array(signed.receipt.outputHash);
    otherOutput[0]! ^= 1;
    assert.throws(
      () =>
        verifyReceiptOffline(
          { ...signed, receipt: { ...signed.receipt, outputHash: otherOutput } },
          record,
          CHAIN,
        ),
      /not signed by the chip/,
    );
    // A flipped bit anywhere in the signature also fails.
    const bytes = encode(signedReceiptCodec, signed);
    bytes[bytes.length - 1]! ^= 1;
    assert.throws(() => verifyReceiptOffline(decode(signedReceiptCodec, bytes), record, CHAIN), /not signed/);
  });

  test('a generic ONNX model is uploaded by content hash and computes y = x·W + b', async () => {
    const model = affineModel();
    const up = await client.uploadModel(model);
    assert.equal(up.modelHash, toHex(contentHash(model)));
    assert.equal(up.stored, true);
    assert.equal((await client.uploadModel(model)).stored, false);
    const x = [
      [1, 0, 0, 0],
      [0.5, -2, 3, 0.25],
    ];
    const inputs: Record<string, TensorJson> = { x: { type: 'float32', dims: [2, 4], data: f32(x.flat()) } };
    const { job, receipt } = await client.runJob(up.modelHash, inputs);
    const y = job.outputs!.y!;
    assert.deepEqual(y.dims, [2, 2]);
    const expected = x.flatMap((row) =>
      [0, 1].map((j) => row.reduce((s, v, i) => s + v * AFFINE_W[i]![j]!, 0) + AFFINE_B[j]!),
    );
    const got = readF32(y.data);
    for (let i = 0; i < expected.length; i++)
      assert.ok(Math.abs(got[i]! - expected[i]!) < 1e-5, `${got} vs ${expected}`);
    assert.equal(toHex(receipt.receipt.modelHash), up.modelHash);

    // The result can be fetched again by the lease that ran it.
    const again = await client.getJob(job.jobId);
    assert.equal(again.receipt?.hex, job.receipt?.hex);
  });

  test('bad models and bad inputs get 400/404 and change nothing', async () => {
    const junk = utf8('this is not an ONNX model');
    await assert.rejects(
      client.uploadModel(junk),
      (e: ProviderError) => e.status === 400 && e.code === 'BAD_MODEL',
    );
    const h = toHex(contentHash(junk));
    await assert.rejects(
      client.runJob(h, { x: { type: 'float32', dims: [1, 4], data: f32([1, 2, 3, 4]) } }),
      (e: ProviderError) => e.status === 404 && e.code === 'MODEL_NOT_FOUND',
    );
    const { modelHash } = await client.uploadModel(affineModel());
    // The client checks tensors before sending; the provider checks them again.
    await assert.rejects(
      client.runJob(modelHash, { x: { type: 'float32', dims: [1, 4], data: f32([1, 2, 3]) } }),
      /need 16/,
    );
    const short = await raw(
      'POST',
      '/v1/jobs',
      utf8(
        JSON.stringify({
          model: modelHash,
          inputs: { x: { type: 'float32', dims: [1, 4], data: f32([1, 2, 3]) } },
        }),
      ),
    );
    assert.equal(short.status, 400);
    assert.match((short.json.error as { message: string }).message, /need 16/);
    await assert.rejects(
      client.runJob(modelHash, { z: { type: 'float32', dims: [1, 4], data: f32([1, 2, 3, 4]) } }),
      (e: ProviderError) => e.status === 422 && /no input "z"/.test(e.message),
    );
    await assert.rejects(
      client.runOcr(utf8('not an image')),
      (e: ProviderError) => e.status === 400 && /cannot be read/.test(e.message),
    );
  });

  test('a request signed by another key than the lease renter is refused (403)', async () => {
    const r = await raw('GET', `/v1/jobs/${'0'.repeat(64)}`, undefined, { seed: strangerSeed });
    assert.equal(r.status, 403);
    assert.equal(errorCode(r.json), 'NOT_RENTER');
  });

  test('a bad signature, a wrong chain id or missing headers are refused (401)', async () => {
    const body = utf8(JSON.stringify({ model: OCR_MODEL, image: 'AAAA' }));
    const headers = signJobRequest(renterSeed, {
      chainId: CHAIN,
      leaseId: Buffer.from(leaseId, 'hex'),
      method: 'POST',
      path: '/v1/jobs',
      body,
    });
    // Same headers, another body: the body hash is signed, and the body must hash to it.
    const res = await fetch(`${url}/v1/jobs`, {
      method: 'POST',
      headers,
      body: utf8('{"model":"ocr","image":"BBBB"}'),
    });
    assert.equal(res.status, 401);
    assert.equal(errorCode((await res.json()) as Record<string, unknown>), 'AUTH_BODY_MISMATCH');
    // Another declared body hash than the one signed: the signature fails.
    const forged = await fetch(`${url}/v1/jobs`, {
      method: 'POST',
      headers: { ...headers, 'x-unc-body-hash': toHex(contentHash(utf8('{"model":"ocr","image":"BBBB"}'))) },
      body: utf8('{"model":"ocr","image":"BBBB"}'),
    });
    assert.equal(forged.status, 401);
    assert.equal(errorCode((await forged.json()) as Record<string, unknown>), 'AUTH_BAD_SIGNATURE');
    const other = await raw('POST', '/v1/jobs', body, { chainId: 'other-chain' });
    assert.equal(other.status, 401);
    const none = await fetch(`${url}/v1/jobs`, { method: 'POST', body });
    assert.equal(none.status, 401);
    assert.equal(errorCode((await none.json()) as Record<string, unknown>), 'AUTH_MISSING');
  });

  test('a replayed request (same nonce) is refused (409)', async () => {
    const path = `/v1/jobs/${'0'.repeat(64)}`;
    const nonce = 123456789n;
    const first = await raw('GET', path, undefined, { nonce });
    assert.equal(first.status, 404); // authenticated; no such job
    const res = await fetch(`${url}${path}`, { method: 'GET', headers: first.headers });
    assert.equal(res.status, 409);
    assert.equal(errorCode((await res.json()) as Record<string, unknown>), 'AUTH_REPLAY');
    // The same nonce with a fresh timestamp is still a replay.
    const again = await raw('GET', path, undefined, { nonce, timestampMs: BigInt(Date.now() + 1) });
    assert.equal(again.status, 409);
  });

  test('a stale or future timestamp is refused (401)', async () => {
    const path = `/v1/jobs/${'0'.repeat(64)}`;
    const stale = await raw('GET', path, undefined, { timestampMs: BigInt(Date.now() - 120_000) });
    assert.equal(stale.status, 401);
    assert.equal(errorCode(stale.json), 'AUTH_STALE');
    const future = await raw('GET', path, undefined, { timestampMs: BigInt(Date.now() + 120_000) });
    assert.equal(future.status, 401);
  });

  test('oversized bodies are refused (413) before anything is stored', async () => {
    const big = new Uint8Array(64 * 1024 + 1);
    const r = await raw('POST', '/v1/models', big);
    assert.equal(r.status, 413);
    assert.equal(errorCode(r.json), 'BODY_TOO_LARGE');
    const job = utf8(
      JSON.stringify({ model: OCR_MODEL, image: Buffer.alloc(800 * 1024).toString('base64') }),
    );
    assert.equal((await raw('POST', '/v1/jobs', job)).status, 413);
  });

  test('a closed lease gets no job (403), an unknown one 404, another chip’s lease 403', async () => {
    const body = utf8(
      JSON.stringify({ model: OCR_MODEL, image: Buffer.from(fixture('ocr-sample.png')).toString('base64') }),
    );
    const closed = await raw('POST', '/v1/jobs', body, { lease: closedLeaseId });
    assert.equal(closed.status, 403);
    assert.equal(errorCode(closed.json), 'LEASE_NOT_ACTIVE');
    const unknown = await raw('POST', '/v1/jobs', body, { lease: toHex(randomBytes(32)) });
    assert.equal(unknown.status, 404);
    const elsewhere = await raw('POST', '/v1/jobs', body, { lease: otherChipLeaseId });
    assert.equal(elsewhere.status, 403);
    assert.equal(errorCode(elsewhere.json), 'LEASE_NOT_HERE');

    // A lease that closes on chain is refused from the next request on.
    const id = toHex(randomBytes(32));
    leases.leases.set(id, { ...leases.leases.get(leaseId)!, id });
    assert.equal((await raw('POST', '/v1/jobs', body, { lease: id })).status, 200);
    // Closing (notice period): still served.
    leases.leases.get(id)!.status = 'closing';
    assert.equal((await raw('POST', '/v1/jobs', body, { lease: id })).status, 200);
    leases.leases.get(id)!.status = 'closed';
    assert.equal((await raw('POST', '/v1/jobs', body, { lease: id })).status, 403);
  });

  test('attack: a lease whose escrow ran out gets no job from that moment, before the chain settles it', async () => {
    const body = utf8(
      JSON.stringify({ model: OCR_MODEL, image: Buffer.from(fixture('ocr-sample.png')).toString('base64') }),
    );
    const id = toHex(randomBytes(32));
    // The chain still lists it as active (settled only at the next epoch start), but its
    // escrowUntil has passed: nothing pays for a job now.
    leases.leases.set(id, { ...leases.leases.get(leaseId)!, id, escrowUntil: Date.now() - 1 });
    const refused = await raw('POST', '/v1/jobs', body, { lease: id });
    assert.equal(refused.status, 403);
    assert.equal(errorCode(refused.json), 'LEASE_NOT_ACTIVE');
    leases.leases.get(id)!.escrowUntil = Date.now() + 60_000;
    assert.equal((await raw('POST', '/v1/jobs', body, { lease: id })).status, 200);
    // The RPC's own 'ended' status is refused too.
    leases.leases.get(id)!.status = 'ended';
    assert.equal((await raw('POST', '/v1/jobs', body, { lease: id })).status, 403);
  });

  test("the RPC lease source reads a lease past its escrowUntil as 'ended'", async () => {
    let now = 1_000;
    const view = {
      id: leaseId,
      chipId: chipIdHex,
      renterPublicKey: '00',
      status: 'active',
      escrowUntil: 2_000,
    };
    const rpc = { call: async () => ({ ...view }) } as unknown as UncClient;
    const source = new RpcLeaseSource(rpc, () => now);
    assert.equal((await source.getLease(leaseId))?.status, 'active');
    now = 2_000;
    assert.equal((await source.getLease(leaseId))?.status, 'ended');
  });
});

describe('provider job queue limits', () => {
  test('beyond concurrency + maxQueued, jobs get 429 and the rest still finish', async () => {
    const seed = new Uint8Array(randomBytes(32));
    const signer = new DevSoftSigner(seed, 'dev-h100', 'dev-chip-q');
    const renterSeed = new Uint8Array(randomBytes(32));
    const leaseId = toHex(randomBytes(32));
    const leases = new InMemoryLeaseSource();
    leases.leases.set(leaseId, {
      id: leaseId,
      chipId: toHex(await signer.chipId()),
      renterPublicKey: toHex(ed25519PublicKey(renterSeed)),
      status: 'active',
    });
    const dir = await tempDir('unc-provider-q-');
    const provider = new ProviderServer({
      chainId: CHAIN,
      signers: [signer],
      leases,
      modelDir: dir.path,
      concurrency: 1,
      maxQueued: 1,
      logger: silentLogger,
    });
    try {
      const url = await provider.start();
      const client = new ProviderClient({
        endpoint: url,
        chainId: CHAIN,
        leaseId,
        renterSeed,
        allowHttp: true,
      });
      const image = fixture('ocr-sample.png');
      const results = await Promise.allSettled(
        [1, 2, 3, 4].map(() => client.runOcr(image, provider.ocrModelHash)),
      );
      const ok = results.filter((r) => r.status === 'fulfilled').length;
      const full = results.filter(
        (r) => r.status === 'rejected' && (r.reason as ProviderError).status === 429,
      ).length;
      assert.equal(ok, 2);
      assert.equal(full, 2);
    } finally {
      await provider.stop();
      await dir.remove();
    }
  });
});

describe('provider execution provider choice', () => {
  test('cuda is used when this onnxruntime build has it, else jobs run on the CPU after one log line', async () => {
    const signer = new DevSoftSigner(new Uint8Array(randomBytes(32)), 'dev-h100', 'dev-chip-ep');
    const renterSeed = new Uint8Array(randomBytes(32));
    const leaseId = toHex(randomBytes(32));
    const leases = new InMemoryLeaseSource();
    leases.leases.set(leaseId, {
      id: leaseId,
      chipId: toHex(await signer.chipId()),
      renterPublicKey: toHex(ed25519PublicKey(renterSeed)),
      status: 'active',
    });
    let log = '';
    const stream = new Writable({
      write(chunk, _enc, done) {
        log += chunk.toString();
        done();
      },
    });
    const dir = await tempDir('unc-provider-ep-');
    const provider = new ProviderServer({
      chainId: CHAIN,
      signers: [signer],
      leases,
      modelDir: dir.path,
      executionProvider: 'cuda',
      logger: createLogger('provider', { stream, level: 'warn' }),
    });
    try {
      const url = await provider.start();
      const ep = provider.health().executionProvider;
      if (ep === 'cpu')
        assert.match(log, /CUDA execution provider unavailable; running ONNX jobs on the CPU/);
      else assert.equal(ep, 'cuda');
      const client = new ProviderClient({
        endpoint: url,
        chainId: CHAIN,
        leaseId,
        renterSeed,
        allowHttp: true,
      });
      const { modelHash } = await client.uploadModel(affineModel());
      const { job } = await client.runJob(modelHash, {
        x: { type: 'float32', dims: [1, 4], data: f32([1, 1, 1, 1]) },
      });
      assert.deepEqual(readF32(job.outputs!.y!.data), [16.5, 19]);
      assert.equal((await client.runOcr(fixture('ocr-sample.png'))).job.ocr?.text, OCR_SAMPLE_TEXT);
    } finally {
      await provider.stop();
      await dir.remove();
    }
  });
});
