/**
 * How body bytes are booked against the provider's in-flight caps. They were booked at the
 * declared content-length before any byte came: two renters sending only headers (256 + 64 MiB
 * declared), re-sent after each 408 of the upload pace, held the whole cap but one round trip
 * every 10 s, and every other renter's model uploads and job requests got 503. A model received
 * whole kept its booking while its check waited behind the renter's queued jobs. Now bytes are
 * booked as they arrive, model uploads leave a reserve to job bodies, and a received model gives
 * its booking back before its check waits (its temporary file counted per renter instead).
 *
 * Small caps: models up to 64 KiB, job bodies 16 KiB, 96 KiB in flight, of which model uploads
 * may have 64 KiB (a job reserve of 32 KiB). Waits are on the provider's own counts, not on time.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { ProviderError } from '@unc/sdk';
import { affineModel } from './fixtures/make-fixtures.js';
import { partialRequest } from './provider-helpers.js';
import { until, uploadProvider } from './provider-upload-fixture.js';

const CHAIN = 'unc-test-upload-booking';
const KiB = 1024;

interface Internals {
  uploading: number;
  modelsAwaitingCheck: number;
  jobsByRenter: Map<string, number>;
  queue: { queued: number; admit<T>(task: () => Promise<T>, key?: string): Promise<T> };
}

describe('provider upload booking', () => {
  const f = uploadProvider(CHAIN, 'booking', {
    maxModelBytes: 64 * KiB,
    maxBodyBytes: 16 * KiB,
    maxUploadBytesInFlight: 96 * KiB,
    // A pace no request here falls behind: a stalled body stays in flight for the whole test,
    // as a header-only request re-sent after each 408 in effect does.
    uploadPace: { graceMs: 600_000, idleMs: 600_000 },
  });
  const inner = () => f.provider as unknown as Internals;
  const temps = () => readdirSync(join(f.dir, 'models')).filter((n) => n.endsWith('.tmp'));
  const x = { x: { type: 'float32' as const, dims: [1, 4], data: Buffer.alloc(16).toString('base64') } };
  const renter = f.renter;

  test('requests whose bodies do not come book nothing: others upload models and run jobs', {
    timeout: 60_000,
  }, async () => {
    const a = await renter(0);
    const b = await renter(1);
    const victim = await renter(2);
    const fake = new Uint8Array(32);
    // The whole in-flight cap declared, by two renters, and nothing sent.
    const ra = partialRequest(
      f.url,
      '/v1/models',
      a.sign('POST', '/v1/models', fake),
      64 * KiB,
      new Uint8Array(0),
    );
    const rb = partialRequest(
      f.url,
      '/v1/models',
      b.sign('POST', '/v1/models', fake),
      32 * KiB,
      new Uint8Array(0),
    );
    try {
      // Both are past their checks and waiting for their bodies (each holds its job slot).
      await until(() => inner().jobsByRenter.size === 2, 'both header-only requests admitted');
      const { modelHash } = await victim.client.uploadModel(affineModel());
      const { job } = await victim.client.runJob(modelHash, x);
      assert.equal(job.status, 'done');
      assert.equal(inner().uploading, 0);
    } finally {
      ra.req.destroy();
      rb.req.destroy();
      await until(() => inner().jobsByRenter.size === 0, 'the header-only requests ended');
    }
  });

  test('bytes are booked as they arrive, and given back with the temporary file when cut short', {
    timeout: 60_000,
  }, async () => {
    const a = await renter(0);
    const body = new Uint8Array(64 * KiB).fill(7);
    const r = partialRequest(
      f.url,
      '/v1/models',
      a.sign('POST', '/v1/models', body),
      body.length,
      body.subarray(0, KiB),
    );
    try {
      // The chunk is booked when it arrives; its temporary file is opened asynchronously, so a loaded
      // machine may show the booking first (the fresh-clone CI did).
      await until(
        () => inner().uploading >= KiB && temps().length === 1,
        'the first KiB booked, its file open',
      );
      assert.equal(inner().uploading, KiB);
    } finally {
      r.req.destroy();
    }
    await until(() => inner().uploading === 0 && temps().length === 0, 'the booking and the file freed');
  });

  test('model uploads cannot take the job reserve: one that would pass it mid-body is refused', {
    timeout: 60_000,
  }, async () => {
    const a = await renter(0);
    const b = await renter(1);
    const victim = await renter(2);
    const { modelHash } = await victim.client.uploadModel(affineModel());
    // 60 KiB of model bytes really sent (and then stalled): 4 KiB left to model uploads.
    const big = new Uint8Array(64 * KiB).fill(1);
    const ra = partialRequest(
      f.url,
      '/v1/models',
      a.sign('POST', '/v1/models', big),
      big.length,
      big.subarray(0, 60 * KiB),
    );
    try {
      await until(() => inner().uploading === 60 * KiB, "the first upload's 60 KiB booked");
      // A second upload fits the declared limits, but its bytes would pass the models' share
      // of the cap as they come: refused then, its booking and temporary file gone.
      const second = new Uint8Array(30 * KiB).fill(2);
      const rb = partialRequest(
        f.url,
        '/v1/models',
        b.sign('POST', '/v1/models', second),
        second.length,
        second,
      );
      assert.deepEqual(await rb.answer, { status: 503, code: 'UPLOADS_BUSY' });
      // Its temporary file is removed asynchronously, after its bytes are given back.
      await until(
        () => inner().uploading === 60 * KiB && temps().length === 1,
        "the refused upload's bytes given back, its file removed",
      );
      // Job bodies still have their reserve.
      const { job } = await victim.client.runJob(modelHash, x);
      assert.equal(job.status, 'done');
    } finally {
      ra.req.destroy();
      await until(() => inner().uploading === 0 && temps().length === 0, 'the stalled upload freed');
    }
  });

  test('a received model waiting for its check holds no booking; few wait per renter', {
    timeout: 60_000,
  }, async () => {
    const r = await renter(0);
    // The only job process busy (as with the renter's long jobs queued): checks wait.
    let unblock = () => {};
    const blocker = inner().queue.admit(() => new Promise<void>((res) => (unblock = res)), 'other');
    try {
      const uploads: Promise<ProviderError | null>[] = [];
      for (const i of [1, 2]) {
        uploads.push(
          r.client.uploadModel(new Uint8Array(16 * KiB).fill(10 + i)).then(
            () => null,
            (e: ProviderError) => e,
          ),
        );
        await until(() => inner().queue.queued === i, `check ${i} waiting in the job queue`);
        // Received whole and waiting: on disk, nothing in flight.
        assert.equal(inner().uploading, 0);
      }
      // A third would be one more temporary file waiting: refused before its body.
      await assert.rejects(
        r.client.uploadModel(new Uint8Array(16 * KiB).fill(13)),
        (e: ProviderError) => e.status === 429 && e.code === 'MODELS_BUSY',
      );
      // Waiting models of all renters stay under twice the models' share (128 KiB; one renter's
      // own waiting models fill it at most): past it, a received model keeps its in-flight
      // booking until its check, so temporary files stay bounded however many renters upload.
      const other = await renter(1);
      for (const i of [1, 2]) {
        uploads.push(
          other.client.uploadModel(new Uint8Array(48 * KiB).fill(20 + i)).then(
            () => null,
            (e: ProviderError) => e,
          ),
        );
        await until(() => inner().queue.queued === 2 + i, `check ${2 + i} waiting in the job queue`);
        assert.equal(inner().uploading, 0);
      }
      const third = await renter(2);
      uploads.push(
        third.client.uploadModel(new Uint8Array(16 * KiB).fill(30)).then(
          () => null,
          (e: ProviderError) => e,
        ),
      );
      await until(() => inner().queue.queued === 5, 'check 5 waiting in the job queue');
      assert.equal(inner().uploading, 16 * KiB);
      unblock();
      // The zero-filled bytes are no ONNX model: refused by the check once it runs.
      for (const e of await Promise.all(uploads)) assert.equal(e?.code, 'BAD_MODEL');
      // The answers may leave before the temporary files are removed.
      await until(() => inner().uploading === 0 && temps().length === 0, 'every booking and file freed');
      // Room again for the renter's next model.
      const next = await r.client
        .uploadModel(new Uint8Array(16 * KiB).fill(14))
        .catch((e: ProviderError) => e);
      assert.equal((next as ProviderError).code, 'BAD_MODEL');
    } finally {
      unblock();
      await blocker;
    }
  });

  test('a temporary file that cannot be removed still ends its wait for the check', {
    timeout: 60_000,
  }, async () => {
    // Its removal ran before the wait's end in one `finally`: a removal that threw left the
    // model's bytes counted as waiting for good, and enough of them filled the room for waiting
    // models. A directory where the temporary file was makes the removal throw (as a disk that
    // will not let the file go does), whoever runs the test.
    const r = await renter(0);
    let unblock = () => {};
    const blocker = inner().queue.admit(() => new Promise<void>((res) => (unblock = res)), 'other');
    let stuck = '';
    try {
      const upload = r.client.uploadModel(new Uint8Array(16 * KiB).fill(40)).then(
        () => null,
        (e: ProviderError) => e,
      );
      await until(() => inner().queue.queued === 1, 'the check waiting in the job queue');
      assert.equal(inner().modelsAwaitingCheck, 16 * KiB);
      const [name] = temps();
      stuck = join(f.dir, 'models', name!);
      rmSync(stuck);
      mkdirSync(stuck);
      unblock();
      const e = await upload;
      assert.equal(inner().modelsAwaitingCheck, 0);
      // The renter gets its model's own answer (no model there to load), not the removal's error.
      assert.equal(e?.status, 400);
    } finally {
      unblock();
      await blocker;
      if (stuck) rmSync(stuck, { recursive: true, force: true });
    }
  });
});
