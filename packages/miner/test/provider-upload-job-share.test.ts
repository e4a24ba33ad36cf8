/**
 * Each renter's share of the job reserve. Job bodies may use the whole in-flight cap, the job
 * reserve included, and were capped per renter only at the largest body (a model's size): two
 * renters sending job bodies just above the upload pace held all of it, and every other renter's
 * jobs got 503 for as long as they kept sending. Now one renter key holds at most a quarter of
 * the reserve (jobReserveBytesPerRenter); its job bytes past that share go in the rest of the cap,
 * with model uploads, so the reserve always holds four renters' bodies.
 *
 * Small caps: models up to 64 KiB, job bodies 8 KiB, 96 KiB in flight, a job reserve of 32 KiB,
 * so a share of 8 KiB per renter. Waits are on the provider's own counts, not on time.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { affineModel } from './fixtures/make-fixtures.js';
import { partialRequest } from './provider-helpers.js';
import { until, uploadProvider } from './provider-upload-fixture.js';

const CHAIN = 'unc-test-upload-job-share';
const KiB = 1024;

describe("a renter's share of the job reserve", () => {
  const f = uploadProvider(CHAIN, 'job-share', {
    maxModelBytes: 64 * KiB,
    maxBodyBytes: 8 * KiB,
    maxUploadBytesInFlight: 96 * KiB,
    // A pace no request here falls behind: a stalled body stays in flight for the whole test,
    // as one sent just above the pace does.
    uploadPace: { graceMs: 600_000, idleMs: 600_000 },
  });
  const uploading = () => (f.provider as unknown as { uploading: number }).uploading;
  const renter = f.renter;

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
        partialRequest(f.url, '/v1/jobs', r.sign('POST', '/v1/jobs', new Uint8Array(32)), 8 * KiB, sent),
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
      // Of the reserve the two hold their shares at most: the rest of the cap (64 KiB) and 8 KiB
      // each; the bodies past that were refused.
      assert.ok(uploading() <= 80 * KiB, `${uploading()} bytes in flight`);
      assert.ok(answers.length >= 2);
      for (const answer of answers) assert.deepEqual(answer, { status: 429, code: 'UPLOADS_BUSY' });
    } finally {
      for (const r of requests) r.req.destroy();
      await until(() => uploading() === 0, 'the stalled bodies freed');
    }
  });

  test('one renter sending several bodies at once gets them all in while the cap has room', {
    timeout: 60_000,
  }, async () => {
    // Past its share of the reserve a renter's bodies go in the rest of the cap: a renter that
    // sends three at once (three times its share) is not refused while nothing else is in flight.
    const a = await renter(0);
    const sent = new Uint8Array(8 * KiB - 1).fill(2);
    const requests = Array.from({ length: 3 }, () =>
      partialRequest(f.url, '/v1/jobs', a.sign('POST', '/v1/jobs', new Uint8Array(32)), 8 * KiB, sent),
    );
    const answers: { status: number; code: string }[] = [];
    for (const r of requests) void r.answer.then((x) => answers.push(x));
    try {
      await until(
        () => answers.length > 0 || uploading() === 3 * sent.length,
        'all three bodies booked, or one refused',
      );
      assert.deepEqual(answers, []);
    } finally {
      for (const r of requests) r.req.destroy();
      await until(() => uploading() === 0, 'the stalled bodies freed');
    }
  });

  test('job bodies past their share and model uploads together leave the reserve alone', {
    timeout: 60_000,
  }, async () => {
    // One renter's job bodies past its share, another's model: both go in the rest of the cap,
    // so together they cannot take the reserve that job bodies past a share stay out of.
    const a = await renter(0);
    const b = await renter(1);
    const sent = new Uint8Array(8 * KiB - 1).fill(3);
    const jobs = Array.from({ length: 4 }, () =>
      partialRequest(f.url, '/v1/jobs', a.sign('POST', '/v1/jobs', new Uint8Array(32)), 8 * KiB, sent),
    );
    const model = new Uint8Array(64 * KiB).fill(4);
    try {
      await until(() => uploading() === 4 * sent.length, 'the four job bodies booked');
      const m = partialRequest(
        f.url,
        '/v1/models',
        b.sign('POST', '/v1/models', model),
        model.length,
        model.subarray(0, 60 * KiB),
      );
      try {
        assert.deepEqual(await m.answer, { status: 503, code: 'UPLOADS_BUSY' });
      } finally {
        m.req.destroy();
      }
      await until(() => uploading() === 4 * sent.length, "the refused model's bytes given back");
    } finally {
      for (const r of jobs) r.req.destroy();
      await until(() => uploading() === 0, 'the stalled bodies freed');
    }
  });

  test("whatever is booked and given back, the reserve holds only renters' shares", () => {
    // The bookings themselves, without sockets: chunks of model uploads and job bodies of a few
    // renters, booked (or refused) and given back in any order.
    interface Booking {
      add(n: number): void;
      release(): void;
    }
    const inner = () =>
      f.provider as unknown as {
        uploading: number;
        modelUploading: number;
        jobBytesPastShare: number;
        jobUploadsByRenter: Map<string, number>;
        uploadsByRenter: Map<string, number>;
        bookUpload(renter: string, model: boolean): Booking;
      };
    const share = 8 * KiB;
    const op = fc.oneof(
      fc.record({ open: fc.integer({ min: 0, max: 3 }), model: fc.boolean() }),
      fc.record({ add: fc.nat(), n: fc.integer({ min: 1, max: 32 * KiB }) }),
      fc.record({ add: fc.nat(), n: fc.integer({ min: 1, max: 32 * KiB }) }),
      fc.record({ release: fc.nat() }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 80 }), (ops) => {
        const open: Booking[] = [];
        for (const o of ops) {
          if ('open' in o) open.push(inner().bookUpload(`renter-${o.open}`, o.model));
          else if ('add' in o && open.length > 0) {
            try {
              open[o.add % open.length]!.add(o.n);
            } catch {
              // Refused: nothing booked.
            }
          } else if ('release' in o && open.length > 0) open.splice(o.release % open.length, 1)[0]!.release();
          const p = inner();
          let shares = 0;
          for (const jobs of p.jobUploadsByRenter.values()) shares += Math.min(jobs, share);
          assert.ok(p.uploading <= 96 * KiB);
          assert.ok(p.modelUploading + p.jobBytesPastShare <= 64 * KiB);
          assert.equal(p.uploading - p.modelUploading - p.jobBytesPastShare, shares);
        }
        for (const b of open) b.release();
        const p = inner();
        assert.deepEqual([p.uploading, p.modelUploading, p.jobBytesPastShare], [0, 0, 0]);
        assert.equal(p.jobUploadsByRenter.size + p.uploadsByRenter.size, 0);
      }),
      { numRuns: 300 },
    );
  });
});
