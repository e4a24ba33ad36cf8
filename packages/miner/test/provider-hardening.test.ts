/**
 * The provider API against the attacks found by running it as a hostile renter (the "hardening"
 * issue). Each test here failed on the provider before it was hardened:
 * - a model whose weights are "external data" read a file of the provider's working directory;
 * - a Loop with a 2^62 trip count froze the process (API, heartbeats, in `unc dev` the node);
 * - a job that allocates without end took the memory of the process;
 * - bodies were read (and hashed) before the signature was checked, without a cap on the bytes
 *   being uploaded at once;
 * - used nonces were forgotten on restart, so a captured request ran again;
 * - one renter could fill the shared nonce cache and lock every other renter out;
 * - model errors carried ONNX Runtime's source paths and local paths;
 * - every request for an unknown lease id cost a read from the chain.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { contentHash, ed25519PublicKey, toHex, utf8 } from '@unc/core';
import { silentLogger } from '@unc/node';
import { ProviderClient, type ProviderError, signJobRequest, type TensorJson } from '@unc/sdk';
import { DevSoftSigner, ProviderServer } from '../src/index.js';
import { lookupKey } from '../src/provider/server.js';
import { expandModel, externalDataModel, loopModel, reshapeModel } from './fixtures/attack-models.js';
import { affineModel } from './fixtures/make-fixtures.js';
import { tempDir } from './helpers.js';
import { InMemoryLeaseSource } from './provider-helpers.js';

const CHAIN = 'unc-test-hardening';

function f32(values: number[]): string {
  const b = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => b.writeFloatLE(v, i * 4));
  return b.toString('base64');
}

interface Renter {
  seed: Uint8Array;
  leaseId: string;
  client: ProviderClient;
}

/** Sends the headers and `sent` bytes of a body declared `length` long, and waits for the answer. */
function partialRequest(
  url: string,
  path: string,
  headers: Record<string, string>,
  length: number,
  sent: Uint8Array,
): { response: Promise<{ status: number; json: Record<string, unknown> }>; finish(rest: Uint8Array): void } {
  const u = new URL(url);
  let finish: (rest: Uint8Array) => void = () => undefined;
  const response = new Promise<{ status: number; json: Record<string, unknown> }>((resolve, reject) => {
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        path,
        method: 'POST',
        headers: { ...headers, 'content-length': length },
      },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => {
          text += c.toString('utf8');
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) }));
        res.on('error', reject);
      },
    );
    req.on('error', (err: NodeJS.ErrnoException) => {
      // The server may close the connection while the rest of the body is still being written.
      if (err.code !== 'EPIPE' && err.code !== 'ECONNRESET') reject(err);
    });
    req.write(sent);
    finish = (rest) => req.end(rest);
  });
  return { response, finish };
}

describe('provider hardening', () => {
  const chipSeed = new Uint8Array(randomBytes(32));
  const signer = new DevSoftSigner(chipSeed, 'dev-h100', 'dev-chip-h');
  const leases = new InMemoryLeaseSource();
  let dir: { path: string; remove(): Promise<void> };
  let provider: ProviderServer;
  let url: string;
  let chipIdHex: string;
  const renters: Renter[] = [];

  async function renter(): Promise<Renter> {
    const seed = new Uint8Array(randomBytes(32));
    const leaseId = toHex(randomBytes(32));
    leases.leases.set(leaseId, {
      id: leaseId,
      chipId: chipIdHex,
      renterPublicKey: toHex(ed25519PublicKey(seed)),
      status: 'active',
    });
    const r = {
      seed,
      leaseId,
      client: new ProviderClient({
        endpoint: url,
        chainId: CHAIN,
        leaseId,
        renterSeed: seed,
        allowHttp: true,
      }),
    };
    renters.push(r);
    return r;
  }

  function sign(r: Renter, method: string, path: string, body: Uint8Array, lease = r.leaseId) {
    return signJobRequest(r.seed, { chainId: CHAIN, leaseId: Buffer.from(lease, 'hex'), method, path, body });
  }

  before(async () => {
    chipIdHex = toHex(await signer.chipId());
    dir = await tempDir('unc-provider-h-');
    provider = new ProviderServer({
      chainId: CHAIN,
      signers: [signer],
      leases,
      modelDir: join(dir.path, 'models'),
      stateDir: join(dir.path, 'state'),
      concurrency: 2,
      maxJobsPerRenter: 1,
      jobTimeoutMs: 4_000,
      maxBodyBytes: 200 * 1024,
      maxModelBytes: 200 * 1024,
      maxUploadBytesInFlight: 256 * 1024,
      maxNoncesPerRenter: 30,
      leaseCacheMs: 60_000,
      unknownLeaseCacheMs: 60_000,
      leaseLookupBurst: 5,
      leaseLookupsPerSecond: 0.01,
      logger: silentLogger,
    });
    url = await provider.start();
  });

  after(async () => {
    await provider?.stop();
    await dir?.remove();
  });

  test('a model reading a file of the working directory as external data is refused', async () => {
    const r = await renter();
    // The file the attack reads: in the working directory of the process that loads models.
    const name = `unc-test-keyring-${toHex(randomBytes(4))}.json`;
    const secret = 'SECRET-SEED-0123';
    writeFileSync(join(process.cwd(), name), secret);
    try {
      for (const place of ['loop-body', 'sparse', 'initializer'] as const) {
        const model = externalDataModel(name, 4, place);
        await assert.rejects(
          r.client.uploadModel(model),
          (e: ProviderError) =>
            e.status === 400 && e.code === 'BAD_MODEL' && /external files/.test(e.message),
        );
      }
      // A model put in the store some other way (from before the check) is checked when it loads.
      // Only a renter holding a model runs it: the record naming this renter is put there too
      // (without it the job is refused MODEL_NOT_FOUND before any load, provider-model-holders).
      const model = externalDataModel(name, 4, 'loop-body');
      const hash = toHex(contentHash(model));
      await writeFile(join(dir.path, 'models', `${hash}.onnx`), model);
      await writeFile(join(dir.path, 'models', `${hash}.holders`), `${toHex(ed25519PublicKey(r.seed))}\n`);
      const err = await r.client
        .runJob(hash, { x: { type: 'float32', dims: [4], data: f32([0, 0, 0, 0]) } })
        .then(
          () => null,
          (e: ProviderError) => e,
        );
      assert.ok(err, 'the job must fail');
      assert.equal(err.code, 'BAD_MODEL');
      assert.doesNotMatch(err.message, /SECRET/);
      // A missing external file is refused the same way; the error names no local path.
      await assert.rejects(
        r.client.uploadModel(externalDataModel('no-such-file.bin', 4, 'loop-body')),
        (e: Error) => {
          assert.doesNotMatch(e.message, new RegExp(process.cwd().replace(/[/\\]/g, '.')));
          return true;
        },
      );
    } finally {
      rmSync(join(process.cwd(), name), { force: true });
    }
  });

  test('a job that never ends is killed at the time limit while the provider keeps answering', {
    timeout: 90_000,
  }, async () => {
    const looper = await renter();
    const other = await renter();
    const { modelHash: loop } = await looper.client.uploadModel(loopModel());
    const { modelHash: affine } = await other.client.uploadModel(affineModel());
    // Each runs only a model it uploaded itself: the looper sends the affine model's bytes too.
    await looper.client.uploadModel(affineModel());
    const spawnedBefore = provider.jobProcesses.spawned;
    const started = Date.now();
    const running = looper.client.runJob(loop, { x: { type: 'float32', dims: [1], data: f32([1]) } }).then(
      () => null,
      (e: ProviderError) => e,
    );
    // While it runs: health answers, the same renter gets no second job, another renter's job runs.
    let health = await other.client.health();
    while (health.queue.running === 0) {
      await new Promise((r) => setTimeout(r, 20));
      health = await other.client.health();
    }
    assert.equal(health.queue.running, 1);
    await assert.rejects(
      looper.client.runJob(affine, { x: { type: 'float32', dims: [1, 4], data: f32([1, 1, 1, 1]) } }),
      (e: ProviderError) => e.status === 429 && e.code === 'RENTER_BUSY',
    );
    const { job } = await other.client.runJob(affine, {
      x: { type: 'float32', dims: [1, 4], data: f32([1, 1, 1, 1]) },
    });
    assert.equal(job.status, 'done');
    const err = await running;
    assert.ok(err, 'the Loop job must fail');
    assert.equal(err.status, 422);
    assert.equal(err.code, 'JOB_TIMEOUT');
    assert.match(err.message, /time limit of 4 s/);
    assert.ok(Date.now() - started >= 4_000);
    // Its process was replaced; the renter's next job runs.
    assert.ok(provider.jobProcesses.spawned > spawnedBefore);
    const again = await looper.client.runJob(affine, {
      x: { type: 'float32', dims: [1, 4], data: f32([1, 1, 1, 1]) },
    });
    assert.equal(again.job.status, 'done');
  });

  test('a job whose outputs are larger than the limit fails in its process, not in the provider', {
    timeout: 60_000,
  }, async () => {
    // Expand to 1 Mi floats: 4 MiB of output (5.3 MiB of base64 in the job view) from a model of a
    // few bytes and a 4-byte input. Unbounded, outputs like it (up to the job memory limit) were
    // sent whole over IPC, deserialised, hashed, base64-encoded and kept in the provider process.
    const r = await renter();
    const { modelHash } = await r.client.uploadModel(expandModel(1024 * 1024));
    await assert.rejects(
      r.client.runJob(modelHash, { x: { type: 'float32', dims: [1], data: f32([1]) } }),
      (e: ProviderError) => e.status === 422 && e.code === 'OUTPUT_TOO_LARGE' && /limit/.test(e.message),
    );
    // Within the limit (the body limit by default, 200 KiB here) it runs.
    const { modelHash: small } = await r.client.uploadModel(expandModel(1024));
    const { job } = await r.client.runJob(small, { x: { type: 'float32', dims: [1], data: f32([2]) } });
    assert.equal(job.status, 'done');
    assert.equal(Buffer.from(job.outputs!.y!.data, 'base64').length, 4096);
  });

  test("model checks waiting for a job process count as the renter's jobs: few wait on disk", {
    timeout: 60_000,
  }, async () => {
    // Both job processes are busy (two Loop jobs until the 4 s limit): a model check waits.
    const a = await renter();
    const b = await renter();
    const c = await renter();
    const { modelHash: loop } = await a.client.uploadModel(loopModel());
    // Each runs only a model it uploaded (and in a job process of its own).
    await b.client.uploadModel(loopModel());
    const x = { x: { type: 'float32' as const, dims: [1], data: f32([1]) } };
    const loops = [a, b].map((r) => r.client.runJob(loop, x).catch((e: ProviderError) => e));
    while (provider.jobProcesses.busy < 2) await new Promise((r) => setTimeout(r, 20));
    // Three different uploads at once. Each used to be received, give its upload bytes back, and
    // wait for a job process as a temporary file, outside the renter's job cap (1 here) and the
    // upload caps: any number of them, each as large as a model may be, piled up on disk.
    const uploads = [1, 2, 3].map((i) =>
      c.client.uploadModel(new Uint8Array(2048).fill(i)).then(
        () => null,
        (e: ProviderError) => e,
      ),
    );
    await new Promise((r) => setTimeout(r, 500));
    const temps = readdirSync(join(dir.path, 'models')).filter((n) => n.endsWith('.tmp'));
    const results = await Promise.all(uploads);
    await Promise.all(loops);
    assert.ok(temps.length <= 1, `${temps.length} uploads wait on disk`);
    const codes = results.map((e) => e?.code).sort();
    assert.deepEqual(codes, ['BAD_MODEL', 'RENTER_BUSY', 'RENTER_BUSY']);
  });

  test('finished jobs are forgotten, oldest first, when their kept outputs pass the budget', {
    timeout: 60_000,
  }, async () => {
    // Each job returns 192 KiB (256 KiB of base64). Kept for GET /v1/jobs/<id> up to maxJobsKept
    // (1,000) whatever their size, outputs of cheap jobs filled the provider's memory.
    const opts = {
      chainId: CHAIN,
      signers: [signer],
      leases,
      modelDir: join(dir.path, 'models-kept'),
      concurrency: 1,
      maxBodyBytes: 200 * 1024,
      maxKeptOutputBytes: 1024 * 1024,
      logger: silentLogger,
    };
    const kept = new ProviderServer(opts);
    try {
      const endpoint = await kept.start();
      const r = await renter();
      const client = new ProviderClient({
        endpoint,
        chainId: CHAIN,
        leaseId: r.leaseId,
        renterSeed: r.seed,
        allowHttp: true,
      });
      const { modelHash } = await client.uploadModel(expandModel(48 * 1024));
      const ids: string[] = [];
      for (let i = 0; i < 8; i++) {
        const { job } = await client.runJob(modelHash, { x: { type: 'float32', dims: [1], data: f32([i]) } });
        ids.push(job.jobId);
      }
      await assert.rejects(client.getJob(ids[0]!), (e: ProviderError) => e.code === 'JOB_NOT_FOUND');
      assert.equal((await client.getJob(ids[7]!)).status, 'done');
    } finally {
      await kept.stop();
    }
  });

  test("renters take turns in the job queue: one renter's backlog does not hold up another's job", {
    timeout: 60_000,
  }, async () => {
    // One job process; renter A queues three jobs that each run to the time limit. First come,
    // first served, B's job waited behind all of A's (up to maxJobsPerRenter × jobTimeoutMs, 16 min
    // with the defaults); now the queue serves the renters with waiting jobs in turn.
    const opts = {
      chainId: CHAIN,
      signers: [signer],
      leases,
      modelDir: join(dir.path, 'models-fair'),
      concurrency: 1,
      maxJobsPerRenter: 4,
      jobTimeoutMs: 1_500,
      logger: silentLogger,
    };
    const fair = new ProviderServer(opts);
    try {
      const endpoint = await fair.start();
      const client = (r: Renter) =>
        new ProviderClient({
          endpoint,
          chainId: CHAIN,
          leaseId: r.leaseId,
          renterSeed: r.seed,
          allowHttp: true,
        });
      const a = client(await renter());
      const b = client(await renter());
      const { modelHash: loop } = await a.uploadModel(loopModel());
      const { modelHash: affine } = await b.uploadModel(affineModel());
      const settled: string[] = [];
      const x = { x: { type: 'float32' as const, dims: [1], data: f32([1]) } };
      const jobsA = [1, 2, 3].map((i) =>
        a.runJob(loop, x).then(
          () => settled.push(`A${i}`),
          () => settled.push(`A${i}`),
        ),
      );
      let health = await a.health();
      while (health.queue.running + health.queue.queued < 3) {
        await new Promise((r) => setTimeout(r, 20));
        health = await a.health();
      }
      const { job } = await b.runJob(affine, {
        x: { type: 'float32', dims: [1, 4], data: f32([1, 1, 1, 1]) },
      });
      settled.push('B');
      assert.equal(job.status, 'done');
      await Promise.all(jobsA);
      assert.ok(settled.indexOf('B') < 2, `${settled}`);
    } finally {
      await fair.stop();
    }
  });

  test('runtime errors reach the renter without source paths', async () => {
    const r = await renter();
    const { modelHash } = await r.client.uploadModel(reshapeModel());
    await assert.rejects(
      r.client.runJob(modelHash, { x: { type: 'float32', dims: [4], data: f32([1, 2, 3, 4]) } }),
      (e: ProviderError) => {
        assert.equal(e.status, 422);
        assert.doesNotMatch(e.message, /onnxruntime_src|\.cc:|\.h:|\/[a-z_]+\//);
        return true;
      },
    );
  });

  test('an error message as long as the model is cut short in the job process', async () => {
    // ONNX Runtime's run-time error names the failing node; a node name of 150 KiB (up to
    // maxModelBytes in general) travelled whole to the provider as the error's log detail.
    const sandbox = provider.jobProcesses as unknown as {
      workers: { child: { on(e: 'message', f: (m: unknown) => void): void } }[];
    };
    let longest = 0;
    const r = await renter();
    const { modelHash } = await r.client.uploadModel(reshapeModel('n'.repeat(150 * 1024)));
    // Listened to once the renter's job process is there (its check ran in it; its job runs there).
    for (const w of sandbox.workers)
      w.child.on('message', (m) => {
        longest = Math.max(longest, JSON.stringify(m).length);
      });
    await assert.rejects(
      r.client.runJob(modelHash, { x: { type: 'float32', dims: [4], data: f32([1, 2, 3, 4]) } }),
      (e: ProviderError) => e.status === 422 && e.message.length <= 400,
    );
    assert.ok(longest > 0, 'the job process answered');
    assert.ok(longest <= 4096, `a message of ${longest} characters came from the job process`);
  });

  test('the signature is checked before the body is read, and bodies are hashed as they stream', {
    timeout: 30_000,
  }, async () => {
    const r = await renter();
    const body = new Uint8Array(150 * 1024);
    // A bad signature over a declared large body: 401 at once, with the body still unsent.
    const headers = sign(r, 'POST', '/v1/models', body);
    const bad = partialRequest(
      url,
      '/v1/models',
      { ...headers, 'x-unc-signature': '00'.repeat(64) },
      body.length,
      body.subarray(0, 1024),
    );
    const answer = await bad.response;
    assert.equal(answer.status, 401);
    assert.equal((answer.json.error as { code: string }).code, 'AUTH_BAD_SIGNATURE');
    bad.finish(new Uint8Array(0));
    // A body of another content than the signed hash: refused when it has been read.
    const other = new Uint8Array(body.length).fill(1);
    const res = await fetch(`${url}/v1/models`, { method: 'POST', headers, body: other });
    assert.equal(res.status, 401);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'AUTH_BODY_MISMATCH');
    // Chunked bodies (no declared length) are refused before they are read.
    const chunked = await new Promise<number>((resolve, reject) => {
      const u = new URL(url);
      const req = request(
        {
          host: u.hostname,
          port: u.port,
          path: '/v1/jobs',
          method: 'POST',
          headers: sign(r, 'POST', '/v1/jobs', utf8('{}')),
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.write('{');
      req.end('}');
    });
    assert.equal(chunked, 411);
  });

  test('bytes being uploaded are capped in total: more waits with 503 until they are received', {
    timeout: 30_000,
  }, async () => {
    const a = await renter();
    const b = await renter();
    const model = affineModel();
    // A large upload, signed, all but its last KiB sent, holds 149 KiB of the 200 KiB model
    // uploads may have in flight (256 KiB less the 56 KiB kept for job bodies).
    const big = new Uint8Array(150 * 1024);
    big.set(model);
    const sent = big.length - 1024;
    const slow = partialRequest(
      url,
      '/v1/models',
      sign(a, 'POST', '/v1/models', big),
      big.length,
      big.subarray(0, sent),
    );
    // The provider books the upload's bytes as they arrive: wait for them, by the provider's
    // own count, rather than assume it within a fixed 200 ms (a loaded machine took longer).
    const booked = Date.now() + 15_000;
    while ((provider as unknown as { uploading: number }).uploading < sent) {
      assert.ok(Date.now() < booked, 'the half-sent upload was never booked');
      await new Promise((r) => setTimeout(r, 10));
    }
    const second = new Uint8Array(120 * 1024).fill(3);
    await assert.rejects(
      b.client.uploadModel(second),
      (e: ProviderError) => e.status === 503 && e.code === 'UPLOADS_BUSY',
    );
    slow.finish(big.subarray(sent));
    // ONNX Runtime rejects the padded bytes; what matters is that the upload was received.
    const done = await slow.response;
    assert.equal(done.status, 400);
    assert.equal((done.json.error as { code: string }).code, 'BAD_MODEL');
    // Now there is room again.
    assert.equal((await b.client.uploadModel(model)).size, model.length);
  });

  test("a job's body cut short gives its upload bytes back", { timeout: 30_000 }, async () => {
    // A job's body is read into memory on the stream's events (server.ts, receiveBody): a
    // connection that closes mid-body must end the read, or the bytes stay booked for good.
    const r = await renter();
    const uploading = () => (provider as unknown as { uploading: number }).uploading;
    const base = uploading();
    const body = utf8(JSON.stringify({ model: 'ocr', image: 'A'.repeat(100 * 1024) }));
    const u = new URL(url);
    const req = request({
      host: u.hostname,
      port: u.port,
      path: '/v1/jobs',
      method: 'POST',
      headers: { ...sign(r, 'POST', '/v1/jobs', body), 'content-length': body.length },
    });
    req.on('error', () => undefined);
    req.write(body.subarray(0, 1024));
    const booked = Date.now() + 15_000;
    while (uploading() < base + 1024) {
      assert.ok(Date.now() < booked, 'the half-sent body was never booked');
      await new Promise((res) => setTimeout(res, 10));
    }
    req.destroy();
    const freed = Date.now() + 15_000;
    while (uploading() > base) {
      assert.ok(Date.now() < freed, 'the cut-short body kept its upload bytes booked');
      await new Promise((res) => setTimeout(res, 10));
    }
  });

  test('one renter cannot use up the nonce cache of the others', async () => {
    const greedy = await renter();
    const polite = await renter();
    const path = `/v1/jobs/${'0'.repeat(64)}`;
    let refused = 0;
    for (let i = 0; i < 32; i++) {
      const res = await fetch(`${url}${path}`, { headers: sign(greedy, 'GET', path, new Uint8Array(0)) });
      await res.body?.cancel();
      if (res.status === 429) refused++;
      else assert.equal(res.status, 404);
    }
    assert.equal(refused, 2);
    const res = await fetch(`${url}${path}`, { headers: sign(polite, 'GET', path, new Uint8Array(0)) });
    assert.equal(res.status, 404); // served: authenticated, no such job
  });

  test('a lease read from the cache is refused the moment its escrow runs out', async () => {
    const r = await renter();
    const path = `/v1/jobs/${'0'.repeat(64)}`;
    // The first request must be served before the escrow ends: 5 s leaves a loaded machine room
    // (400 ms did not always).
    const escrowUntil = Date.now() + 5_000;
    leases.leases.set(r.leaseId, { ...leases.leases.get(r.leaseId)!, escrowUntil });
    const before = await fetch(`${url}${path}`, { headers: sign(r, 'GET', path, new Uint8Array(0)) });
    await before.body?.cancel();
    assert.equal(before.status, 404); // served: the lease is read (and cached for 60 s) as active
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, escrowUntil - Date.now()) + 50));
    const calls = leases.calls;
    const after = await fetch(`${url}${path}`, { headers: sign(r, 'GET', path, new Uint8Array(0)) });
    assert.equal(after.status, 403);
    assert.equal(((await after.json()) as { error: { code: string } }).error.code, 'LEASE_NOT_ACTIVE');
    assert.equal(leases.calls, calls, 'judged from the cached lease, without asking the chain again');
  });

  test('a job past the memory limit is killed', { timeout: 90_000 }, async (t) => {
    // As the limit counts it: under bwrap (the default where it works) the sandbox's processes.
    const base = provider.jobProcesses.residentSets()[0] ?? null;
    if (base === null) return t.skip('no /proc to read the resident set from');
    const limited = new ProviderServer({
      chainId: CHAIN,
      signers: [signer],
      leases,
      modelDir: join(dir.path, 'models-mem'),
      concurrency: 1,
      jobMemoryBytes: 2 * base + 64 * 1024 * 1024,
      logger: silentLogger,
    });
    try {
      const endpoint = await limited.start();
      const r = await renter();
      const client = new ProviderClient({
        endpoint,
        chainId: CHAIN,
        leaseId: r.leaseId,
        renterSeed: r.seed,
        allowHttp: true,
      });
      // 256 Mi floats: 1 GiB for the output alone.
      const { modelHash } = await client.uploadModel(expandModel(256 * 1024 * 1024));
      await assert.rejects(
        client.runJob(modelHash, { x: { type: 'float32', dims: [1], data: f32([1]) } }),
        (e: ProviderError) => e.status === 422 && e.code === 'JOB_MEMORY',
      );
      // A limit that leaves a job process no room is refused at start, not by killing every job.
      const tooSmall = new ProviderServer({
        chainId: CHAIN,
        signers: [signer],
        leases,
        modelDir: join(dir.path, 'models-mem'),
        concurrency: 1,
        jobMemoryBytes: base,
        logger: silentLogger,
      });
      await assert.rejects(tooSmall.start(), /leaves no room/);
      const { modelHash: affine } = await client.uploadModel(affineModel());
      const { job } = await client.runJob(affine, {
        x: { type: 'float32', dims: [1, 4], data: f32([1, 1, 1, 1]) },
      });
      assert.equal(job.status, 'done');
    } finally {
      await limited.stop();
    }
  });

  test('the lease-lookup budget is kept per IPv6 /64, not per address', () => {
    // One host holds a whole /64: a budget per address gave it 2^64 budgets of chain reads.
    const take = (ip: string) => (provider as unknown as { takeLookup(ip: string): boolean }).takeLookup(ip);
    const granted = Array.from({ length: 8 }, (_, i) => take(`2001:db8:aa:bb::${(i + 1).toString(16)}`));
    assert.deepEqual(granted, [true, true, true, true, true, false, false, false]);
    assert.equal(take('2001:db8:aa:bc::1'), true, 'another /64 has its own budget');
    assert.equal(lookupKey('2001:db8:aa:bb:1:2:3:4'), '2001:db8:aa:bb::/64');
    assert.equal(lookupKey('::ffff:10.1.2.3'), '10.1.2.3');
    assert.equal(lookupKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
  });

  // Last: it empties this address's lease-lookup budget.
  test('unknown lease ids are cached and rate-limited per address', async () => {
    const r = await renter();
    const path = `/v1/jobs/${'0'.repeat(64)}`;
    const before = leases.calls;
    const unknown = toHex(randomBytes(32));
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${url}${path}`, { headers: sign(r, 'GET', path, new Uint8Array(0), unknown) });
      assert.equal(res.status, 404);
      await res.body?.cancel();
    }
    assert.equal(leases.calls - before, 1, 'an unknown lease is read from the chain once');
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) {
      const res = await fetch(`${url}${path}`, {
        headers: sign(r, 'GET', path, new Uint8Array(0), toHex(randomBytes(32))),
      });
      statuses.push(res.status);
      await res.body?.cancel();
    }
    assert.ok(statuses.includes(429), `${statuses}`);
    assert.ok(leases.calls - before <= 5, 'at most the burst is read from the chain');
    // A renter whose lease exists is still served from this address, cached or not.
    (provider as unknown as { leaseCache: Map<string, unknown> }).leaseCache.clear();
    const path2 = `/v1/jobs/${'1'.repeat(64)}`;
    const ok = await fetch(`${url}${path2}`, { headers: sign(renters[0]!, 'GET', path2, new Uint8Array(0)) });
    assert.equal(ok.status, 404);
  });
});

describe('provider replay protection across a restart', () => {
  test('a request captured before a restart is still a replay after it (409)', async () => {
    const signer = new DevSoftSigner(new Uint8Array(randomBytes(32)), 'dev-h100', 'dev-chip-r');
    const seed = new Uint8Array(randomBytes(32));
    const leaseId = toHex(randomBytes(32));
    const leases = new InMemoryLeaseSource();
    leases.leases.set(leaseId, {
      id: leaseId,
      chipId: toHex(await signer.chipId()),
      renterPublicKey: toHex(ed25519PublicKey(seed)),
      status: 'active',
    });
    const dir = await tempDir('unc-provider-r-');
    const make = () =>
      new ProviderServer({
        chainId: CHAIN,
        signers: [signer],
        leases,
        modelDir: join(dir.path, 'models'),
        stateDir: join(dir.path, 'state'),
        concurrency: 1,
        logger: silentLogger,
      });
    let provider = make();
    try {
      let url = await provider.start();
      const client = new ProviderClient({
        endpoint: url,
        chainId: CHAIN,
        leaseId,
        renterSeed: seed,
        allowHttp: true,
      });
      const model = affineModel();
      const { modelHash } = await client.uploadModel(model);
      const inputs: Record<string, TensorJson> = {
        x: { type: 'float32', dims: [1, 4], data: f32([1, 1, 1, 1]) },
      };
      const body = utf8(JSON.stringify({ model: modelHash, inputs }));
      const headers = signJobRequest(seed, {
        chainId: CHAIN,
        leaseId: Buffer.from(leaseId, 'hex'),
        method: 'POST',
        path: '/v1/jobs',
        body,
      });
      const first = await fetch(`${url}/v1/jobs`, { method: 'POST', headers, body });
      assert.equal(first.status, 200);
      await first.body?.cancel();
      await provider.stop();

      provider = make();
      url = await provider.start();
      const replay = await fetch(`${url}/v1/jobs`, { method: 'POST', headers, body });
      assert.equal(replay.status, 409);
      assert.equal(((await replay.json()) as { error: { code: string } }).error.code, 'AUTH_REPLAY');
    } finally {
      await provider.stop();
      await dir.remove();
    }
  });
});
