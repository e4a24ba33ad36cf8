/**
 * Bodies that do not come. The provider books a body's declared length against its upload caps
 * before the first byte; two leases that declared 256 + 64 MiB and sent nothing held the whole
 * in-flight cap until the 300 s request timeout, and every other renter got 503 UPLOADS_BUSY.
 * A body that falls behind the upload pace is now refused (408) and its booking freed.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { checkUploadPace, type UploadPace, uploadDeadline } from '../src/provider/http.js';
import { affineModel } from './fixtures/make-fixtures.js';
import { partialRequest } from './provider-helpers.js';
import { uploadProvider } from './provider-upload-fixture.js';

const CHAIN = 'unc-test-upload-pace';
const MiB = 1024 * 1024;

describe('upload pace (the deadline alone, on a virtual clock)', () => {
  const pace: UploadPace = { graceMs: 10_000, minBytesPerSecond: MiB, idleMs: 10_000 };

  test('a body of which nothing comes is due at the end of its grace', () => {
    assert.equal(uploadDeadline(pace, 0, 0, 0), 10_000);
  });

  test('a body that trickles falls behind the rate though no gap is longer than idleMs', () => {
    // One byte every 9 s: never idle for 10 s, but far behind 1 MiB/s.
    let received = 0;
    let t = 0;
    for (;;) {
      const next = t + 9_000;
      if (next >= uploadDeadline(pace, 0, received, t)) break;
      t = next;
      received += 1;
    }
    assert.ok(t < 20_000, `the trickle lasted ${t} ms`);
  });

  test('a body that keeps the rate is never due; one that then stops is due idleMs later', () => {
    // 64 KiB every 50 ms (1.25 MiB/s) for 200 MiB.
    let received = 0;
    let t = 0;
    while (received < 200 * MiB) {
      t += 50;
      assert.ok(t < uploadDeadline(pace, 0, received, t - 50), `due at ${t} ms, ${received} bytes in`);
      received += 64 * 1024;
    }
    assert.equal(uploadDeadline(pace, 0, received, t), t + pace.idleMs);
  });

  test('values that are not positive numbers are refused', () => {
    assert.throws(() => checkUploadPace({ ...pace, minBytesPerSecond: 0 }), /minBytesPerSecond/);
    assert.throws(() => checkUploadPace({ ...pace, idleMs: Number.NaN }), /idleMs/);
    assert.throws(() => checkUploadPace({ ...pace, graceMs: Number.POSITIVE_INFINITY }), /graceMs/);
  });
});

describe('provider upload pace', () => {
  // The default upload caps (models up to 256 MiB, 256 MiB a renter, 320 MiB in flight), with
  // a short grace so that the test does not wait 10 s; nothing here depends on how long it is.
  const f = uploadProvider(CHAIN, 'pace', { uploadPace: { graceMs: 1_000, idleMs: 1_000 } });
  const renter = f.renter;

  test('uploads whose bodies never come are refused and free the upload cap for others', {
    timeout: 60_000,
  }, async () => {
    const a = await renter(0);
    const b = await renter(1);
    const victim = await renter(2);
    const uploading = () => (f.provider as unknown as { uploading: number }).uploading;
    // Two renters sign model uploads whose bodies they never send: together they book the whole
    // in-flight cap (320 MiB) and send 0 bytes.
    const fake = new Uint8Array(32);
    const ra = partialRequest(f.url, '/v1/models', a.sign('POST', '/v1/models', fake), 256 * MiB);
    const rb = partialRequest(f.url, '/v1/models', b.sign('POST', '/v1/models', fake), 64 * MiB);
    try {
      // Before the fix neither was answered before the 300 s request timeout (the test's own
      // timeout fails it); now both are refused once they fall behind the pace.
      assert.deepEqual(await ra.answer, { status: 408, code: 'UPLOAD_TOO_SLOW' });
      assert.deepEqual(await rb.answer, { status: 408, code: 'UPLOAD_TOO_SLOW' });
      assert.equal(uploading(), 0);
      // Everybody else can upload and run jobs again.
      const { modelHash } = await victim.client.uploadModel(affineModel());
      const x = { x: { type: 'float32' as const, dims: [1, 4], data: Buffer.alloc(16).toString('base64') } };
      const { job } = await victim.client.runJob(modelHash, x);
      assert.equal(job.status, 'done');
    } finally {
      ra.req.destroy();
      rb.req.destroy();
    }
  });
});
