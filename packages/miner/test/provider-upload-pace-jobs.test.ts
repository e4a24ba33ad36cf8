/**
 * The upload pace (408 UPLOAD_TOO_SLOW) on the job endpoints, whose bodies are read into memory
 * (receiveBody), not only on model uploads: a declared job body that never comes frees its booking.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { silentLogger } from '@unc/node';
import { DevSoftSigner, ProviderServer } from '../src/index.js';
import { tempDir } from './helpers.js';
import { InMemoryLeaseSource, leaseRenter, partialRequest } from './provider-helpers.js';

const CHAIN = 'unc-test-upload-pace-jobs';
const MiB = 1024 * 1024;

describe('provider upload pace on the job endpoints', () => {
  const leases = new InMemoryLeaseSource();
  const chips = [0, 1, 2].map(
    (i) => new DevSoftSigner(new Uint8Array(randomBytes(32)), 'dev-h100', `pace-jobs-${i}`),
  );
  let dir: { path: string; remove(): Promise<void> };
  let provider: ProviderServer;
  let url: string;
  const renter = (chip: number) => leaseRenter(leases, chips[chip]!, url, CHAIN);
  before(async () => {
    dir = await tempDir('unc-provider-pace-jobs-');
    provider = new ProviderServer({
      chainId: CHAIN,
      signers: chips,
      leases,
      modelDir: join(dir.path, 'models'),
      stateDir: join(dir.path, 'state'),
      concurrency: 1,
      maxBodyBytes: 2 * MiB,
      maxUploadBytesInFlight: 2 * MiB,
      uploadPace: { graceMs: 1_000, idleMs: 1_000 },
      logger: silentLogger,
    });
    url = await provider.start();
  });
  after(async () => {
    await provider?.stop();
    await dir?.remove();
  });
  const uploading = () => (provider as unknown as { uploading: number }).uploading;

  for (const path of ['/v1/jobs', '/v1/jobs/batch'])
    test(`a ${path} body that never comes is refused (408) and its booking freed`, {
      timeout: 30_000,
    }, async () => {
      const a = await renter(0);
      // The whole in-flight cap, declared and never sent: before the pace it was held until the
      // request timeout and every other renter got 503.
      const r = partialRequest(url, path, a.sign('POST', path, new Uint8Array(32)), 2 * MiB);
      try {
        assert.deepEqual(await r.answer, { status: 408, code: 'UPLOAD_TOO_SLOW' });
        assert.equal(uploading(), 0);
      } finally {
        r.req.destroy();
      }
    });
});
