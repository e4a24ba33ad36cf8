/**
 * The upload pace (408 UPLOAD_TOO_SLOW) on the job endpoints, whose bodies are read into memory
 * (receiveBody), not only on model uploads: a declared job body that never comes frees its booking.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { partialRequest } from './provider-helpers.js';
import { uploadProvider } from './provider-upload-fixture.js';

const CHAIN = 'unc-test-upload-pace-jobs';
const MiB = 1024 * 1024;

describe('provider upload pace on the job endpoints', () => {
  const f = uploadProvider(CHAIN, 'pace-jobs', {
    maxBodyBytes: 2 * MiB,
    maxUploadBytesInFlight: 2 * MiB,
    uploadPace: { graceMs: 1_000, idleMs: 1_000 },
  });
  const renter = f.renter;
  const uploading = () => (f.provider as unknown as { uploading: number }).uploading;

  for (const path of ['/v1/jobs', '/v1/jobs/batch'])
    test(`a ${path} body that never comes is refused (408) and its booking freed`, {
      timeout: 30_000,
    }, async () => {
      const a = await renter(0);
      // The whole in-flight cap, declared and never sent: before the pace it was held until the
      // request timeout and every other renter got 503.
      const r = partialRequest(f.url, path, a.sign('POST', path, new Uint8Array(32)), 2 * MiB);
      try {
        assert.deepEqual(await r.answer, { status: 408, code: 'UPLOAD_TOO_SLOW' });
        assert.equal(uploading(), 0);
      } finally {
        r.req.destroy();
      }
    });
});
