/**
 * Each renter's share of the job bodies being received. Job bodies may use the whole in-flight
 * cap, the job reserve included, and were capped per renter only at the largest body (a model's
 * size): two renters sending job bodies just above the upload pace held all of it, and every
 * other renter's jobs got 503 for as long as they kept sending. Now one renter key's job bodies
 * together stay under a quarter of the reserve (maxJobUploadBytesPerRenter), so the reserve always
 * holds four renters' bodies.
 *
 * Small caps: models up to 64 KiB, job bodies 8 KiB, 96 KiB in flight, a job reserve of 32 KiB,
 * so 8 KiB of job bodies per renter. Waits are on the provider's own counts, not on time.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { silentLogger } from '@unc/node';
import { DevSoftSigner, ProviderServer } from '../src/index.js';
import { affineModel } from './fixtures/make-fixtures.js';
import { tempDir } from './helpers.js';
import { InMemoryLeaseSource, leaseRenter, partialRequest } from './provider-helpers.js';

const CHAIN = 'unc-test-upload-job-share';
const KiB = 1024;

/** Waits until `ok()` holds (a count of the provider's), polling; fails after 20 s. */
async function until(ok: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 20_000;
  while (!ok()) {
    assert.ok(Date.now() < end, `never: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("a renter's share of the job bodies in flight", () => {
  const leases = new InMemoryLeaseSource();
  const chips = [0, 1, 2].map(
    (i) => new DevSoftSigner(new Uint8Array(randomBytes(32)), 'dev-h100', `job-share-${i}`),
  );
  let dir: { path: string; remove(): Promise<void> };
  let provider: ProviderServer;
  let url: string;
  const uploading = () => (provider as unknown as { uploading: number }).uploading;
  const renter = (chip: number) => leaseRenter(leases, chips[chip]!, url, CHAIN);

  before(async () => {
    dir = await tempDir('unc-provider-job-share-');
    provider = new ProviderServer({
      chainId: CHAIN,
      signers: chips,
      leases,
      modelDir: join(dir.path, 'models'),
      stateDir: join(dir.path, 'state'),
      concurrency: 1,
      maxModelBytes: 64 * KiB,
      maxBodyBytes: 8 * KiB,
      maxUploadBytesInFlight: 96 * KiB,
      // A pace no request here falls behind: a stalled body stays in flight for the whole test,
      // as one sent just above the pace does.
      uploadPace: { graceMs: 600_000, idleMs: 600_000 },
      logger: silentLogger,
    });
    url = await provider.start();
  });

  after(async () => {
    await provider?.stop();
    await dir?.remove();
  });

  test("two renters' job bodies cannot hold the whole cap: others' jobs still run", {
    timeout: 60_000,
  }, async () => {
    const a = await renter(0);
    const b = await renter(1);
    const victim = await renter(2);
    const { modelHash } = await victim.client.uploadModel(affineModel());
    // Twelve job bodies of 8 KiB declared, all but their last byte sent, six per renter: the
    // whole 96 KiB cap less 12 bytes, reserve included, when each renter may hold 64 KiB.
    const sent = new Uint8Array(8 * KiB - 1).fill(1);
    const requests = [a, b].flatMap((r) =>
      Array.from({ length: 6 }, () =>
        partialRequest(url, '/v1/jobs', r.sign('POST', '/v1/jobs', new Uint8Array(32)), 8 * KiB, sent),
      ),
    );
    const answers: { status: number; code: string }[] = [];
    for (const r of requests) void r.answer.then((x) => answers.push(x));
    try {
      // Every body either refused (its booking given back before the answer) or all booked.
      await until(
        () => answers.length + uploading() / sent.length === requests.length,
        'every stalled body booked or refused',
      );
      const x = { x: { type: 'float32' as const, dims: [1, 4], data: Buffer.alloc(16).toString('base64') } };
      const { job } = await victim.client.runJob(modelHash, x);
      assert.equal(job.status, 'done');
      // One body each stays; the others passed their renter's share of job bodies.
      assert.equal(uploading(), 2 * sent.length);
      assert.equal(answers.length, 10);
      for (const answer of answers) assert.deepEqual(answer, { status: 429, code: 'UPLOADS_BUSY' });
    } finally {
      for (const r of requests) r.req.destroy();
      await until(() => uploading() === 0, 'the stalled bodies freed');
    }
  });
});
