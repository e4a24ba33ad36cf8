/**
 * A provider's model store has a quota and evicts least recently used models past it, the
 * gateway's included; a job for an evicted model is answered 404 MODEL_NOT_FOUND. The gateway
 * took that answer for a provider error: the honest provider was avoided for 5 minutes and the
 * lease closed (and the model never uploaded again). Now the gateway uploads the model again,
 * once, and sends the job again on the same lease, holding nothing against the provider.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Gateway, modelHashOf } from '../src/gateway.js';
import { REUPLOAD_EVERY_MS } from '../src/policy.js';
import { gatewayOptions, listening, mempoolOnlyNode, oneLeaseNode } from './fake-node.js';

const UNC = 10n ** 18n;
const T0 = 1_000_000;

/** Waits until `ok()` holds (a count of the test's or the gateway's), polling; fails after 20 s. */
async function until(ok: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 20_000;
  while (!ok()) {
    assert.ok(Date.now() < end, `never: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

interface Inside {
  leases: Map<string, { closing: boolean; failureStreak: number }>;
  avoided: Map<string, number>;
  counters: { disputes: number; retries: number };
}

/**
 * A gateway with one lease on a provider whose store evicted the model after the lease was
 * adopted: the first job is answered MODEL_NOT_FOUND. The model's upload after that (`hold: 'upload'`)
 * or the job sent again (`hold: 'job'`) is held, never answered, which leaves the gateway's state
 * to look at in `check` once it got there.
 */
async function evicted(
  opts: {
    hold: 'upload' | 'job' | 'refuse';
    attemptTimeoutMs: number;
    /** How the provider answers its n-th job request (1-based); overrides `hold` for jobs. */
    answer?: (n: number) => 'model-not-found' | 'bad-input' | 'held' | 'model-not-found-late';
    /** Jobs submitted at once, and the provider's slots (the lease takes them all at once). */
    jobs?: number;
    /** The gateway's clock (ms), moved by the test; T0 when absent. */
    clock?: { ms: number };
    /** Submit an OCR job (the provider's built-in model, never uploaded) instead. */
    ocr?: boolean;
    /** Called when the model's upload again arrives, before it is answered (e.g. to move `clock`). */
    onUpload?: () => void;
  },
  check: (seen: { uploads: number; jobs: number }, inside: Inside, leaseId: string) => Promise<void>,
): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'unc-gw-evicted-'));
  const model = new Uint8Array(64).fill(3);
  const seen = { uploads: 0, jobs: 0 };
  const held: ServerResponse[] = [];
  const late: ServerResponse[] = [];
  const provider = createServer((req, res) => {
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.url === '/v1/health')
      return json(200, {
        ok: true,
        chainId: 'x',
        chips: [],
        ocrModelHash: 'cc'.repeat(32),
        executionProvider: 'cpu',
        queue: { running: 0, queued: 0, concurrency: opts.jobs ?? 1, maxQueued: 8 },
        limits: { maxBodyBytes: 1 << 24, maxModelBytes: 1 << 24, maxJobsPerRenter: 4 },
      });
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = new Uint8Array(Buffer.concat(chunks));
      if (req.url === '/v1/models') {
        seen.uploads++;
        if (seen.uploads > 1) opts.onUpload?.();
        if (seen.uploads > 1 && opts.hold === 'upload') return void held.push(res);
        if (seen.uploads > 1 && opts.hold === 'refuse')
          return json(400, { error: { code: 'BAD_MODEL', message: 'not a model' } });
        return json(200, { modelHash: modelHashOf(body), size: body.length, stored: true });
      }
      seen.jobs++;
      // An answer held for later goes out when the next job request comes.
      for (const r of late.splice(0))
        r.writeHead(404, { 'content-type': 'application/json' }).end(
          JSON.stringify({ error: { code: 'MODEL_NOT_FOUND', message: 'no model here' } }),
        );
      const answer = opts.answer?.(seen.jobs);
      if (answer === 'model-not-found-late') return void late.push(res);
      if (answer === 'bad-input')
        return json(400, { error: { code: 'BAD_INPUT', message: 'inputs do not fit the model' } });
      if (answer === 'model-not-found' || (!answer && (seen.jobs === 1 || opts.hold === 'refuse')))
        return json(404, {
          error: { code: 'MODEL_NOT_FOUND', message: 'no model here; upload it first (POST /v1/models)' },
        });
      held.push(res);
    });
  });
  const endpoint = await listening(provider);
  const { leaseId, state } = oneLeaseNode(T0, endpoint);
  const node = mempoolOnlyNode([], state);
  const gw = new Gateway(
    gatewayOptions(await listening(node), dir, {
      renterSeed: new Uint8Array(32).fill(9),
      budgetPerHour: 100n * UNC,
      models: [{ name: 'tiny', onnx: model }, { name: 'ocr' }],
      attemptTimeoutMs: opts.attemptTimeoutMs,
      now: () => opts.clock?.ms ?? T0,
    }),
  );
  const inside = gw as unknown as Inside & { adopt(row: unknown, lease: unknown): Promise<void> };
  try {
    await gw.start();
    await inside.adopt(
      {
        leaseId,
        offerId: 'aa'.repeat(32),
        chipId: 'bb'.repeat(32),
        provider: 'unc1provider',
        endpoint,
        pricePerHour: UNC.toString(),
        noticeMs: 60_000,
        openedMs: T0 - 60_000,
        closedMs: null,
        closeReason: null,
      },
      state.lease[leaseId],
    );
    assert.equal(seen.uploads, 1);
    for (let i = 0; i < (opts.jobs ?? 1); i++)
      gw.submit(
        opts.ocr
          ? { model: 'ocr', image: Buffer.alloc(8).toString('base64') }
          : {
              model: 'tiny',
              inputs: { x: { type: 'float32', dims: [1, 4], data: Buffer.alloc(16).toString('base64') } },
            },
        null,
      );
    await check(seen, inside, leaseId);
  } finally {
    for (const r of [...held, ...late]) r.destroy();
    await gw.stop();
    await new Promise<void>((r) => node.close(() => r()));
    await new Promise<void>((r) => provider.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  }
}

test('a job whose model the provider evicted uploads it again and runs on the same lease', {
  timeout: 60_000,
}, async () => {
  await evicted({ hold: 'job', attemptTimeoutMs: 30_000 }, async (seen, inside, leaseId) => {
    await until(
      () => seen.jobs === 2 || inside.avoided.size > 0,
      'the job sent again, or its provider avoided',
    );
    assert.equal(inside.avoided.size, 0, 'the provider is not avoided');
    assert.equal(seen.uploads, 2, 'the model was uploaded again');
    assert.equal(seen.jobs, 2, 'the job was sent again');
    const lease = inside.leases.get(leaseId);
    assert.ok(lease && !lease.closing, 'the lease is kept');
    assert.equal(lease.failureStreak, 0);
    assert.equal(inside.counters.disputes, 0);
    assert.equal(inside.counters.retries, 0, 'one attempt: the job went on within it');
  });
});

test('the job request answered MODEL_NOT_FOUND is not disputed when the upload after it gets no answer', {
  timeout: 60_000,
}, async () => {
  // The upload times out (the gateway's own short attempt limit): a provider that does not answer
  // is avoided, but the job request it did answer (404) is no proof of an unanswered request.
  await evicted({ hold: 'upload', attemptTimeoutMs: 500 }, async (seen, inside) => {
    await until(() => inside.avoided.size > 0, 'the provider that did not answer the upload avoided');
    assert.equal(seen.uploads, 2);
    assert.equal(seen.jobs, 1);
    assert.equal(inside.counters.disputes, 0);
  });
});

test('a provider refusing the model it took for the lease, when asked to store it again, is avoided', {
  timeout: 60_000,
}, async () => {
  // It took these very bytes when the lease was adopted (a refusal there avoids it and closes the
  // lease). Refused again after a MODEL_NOT_FOUND, the refusal was taken for the job's input being
  // bad: nothing against the provider, its failure streak unchanged, and every job it was sent
  // answered MODEL_NOT_FOUND and cost the renter an upload of the whole model, for good.
  await evicted({ hold: 'refuse', attemptTimeoutMs: 30_000 }, async (seen, inside, leaseId) => {
    await until(
      () => inside.avoided.size > 0 || seen.uploads >= 4,
      'the provider avoided, or the model uploaded again and again',
    );
    assert.equal(inside.avoided.size, 1, 'the provider is avoided');
    assert.equal(seen.uploads, 2, 'the model was uploaded again once');
    assert.ok(inside.leases.get(leaseId)?.closing ?? true, 'its lease is closed');
    assert.equal(inside.counters.disputes, 0);
  });
});

test('a provider losing the model again within 10 minutes of its upload again is avoided, not sent it a third time', {
  timeout: 60_000,
}, async () => {
  // A partly serving hostile provider: MODEL_NOT_FOUND to one request, the next answered (here
  // with its input refused, which holds nothing against it either, as a served job resets the
  // streak). Each MODEL_NOT_FOUND cost the renter a whole model upload, and the provider kept
  // its lease; now the second within REUPLOAD_EVERY_MS is its error: avoided, the lease closed.
  await evicted(
    {
      hold: 'job',
      attemptTimeoutMs: 30_000,
      answer: (n) => (n % 2 === 1 ? 'model-not-found' : 'bad-input'),
    },
    async (seen, inside, leaseId) => {
      await until(
        () => inside.avoided.size > 0 || seen.uploads >= 4,
        'the provider avoided, or the model uploaded again and again',
      );
      assert.equal(inside.avoided.size, 1, 'the provider is avoided');
      assert.equal(seen.uploads, 2, 'the model was uploaded again once');
      assert.equal(seen.jobs, 3, 'the job was sent again once after the upload, then once more');
      assert.ok(inside.leases.get(leaseId)?.closing ?? true, 'its lease is closed');
      assert.equal(inside.counters.disputes, 0, 'it answered: nothing to dispute');
    },
  );
});

test('a model lost again 10 minutes after its upload again is uploaded again', {
  timeout: 60_000,
}, async () => {
  // An honest provider's store evicting our model now and then: each time past the limit is a
  // new upload, nothing held against the provider.
  const clock = { ms: T0 };
  await evicted(
    {
      hold: 'job',
      attemptTimeoutMs: 30_000,
      clock,
      answer: (n) => {
        if (n === 2) clock.ms += REUPLOAD_EVERY_MS;
        return n === 1 || n === 3 ? 'model-not-found' : n === 2 ? 'bad-input' : 'held';
      },
    },
    async (seen, inside, leaseId) => {
      await until(() => seen.jobs === 4 || inside.avoided.size > 0, 'the job sent a 4th time, or avoided');
      assert.equal(inside.avoided.size, 0, 'the provider is not avoided');
      assert.equal(seen.uploads, 3, 'the model was uploaded again twice');
      assert.ok(inside.leases.get(leaseId) && !inside.leases.get(leaseId)!.closing, 'the lease is kept');
      assert.equal(inside.counters.disputes, 0);
    },
  );
});

test("MODEL_NOT_FOUND for the provider's own OCR model is its error at once", {
  timeout: 60_000,
}, async () => {
  // The renter never uploads the OCR model: the provider serves its own. "Not found" is no
  // eviction; taken as busy, the provider kept its lease through 4 such answers in 5.
  await evicted(
    { hold: 'job', attemptTimeoutMs: 30_000, ocr: true, answer: () => 'model-not-found' },
    async (seen, inside, leaseId) => {
      await until(() => inside.avoided.size > 0 || seen.jobs >= 5, 'the provider avoided, or sent 5 jobs');
      assert.equal(inside.avoided.size, 1, 'the provider is avoided');
      assert.equal(seen.jobs, 1, 'after one answer');
      assert.equal(seen.uploads, 1, 'no model uploaded for it');
      assert.ok(inside.leases.get(leaseId)?.closing ?? true, 'its lease is closed');
      assert.equal(inside.counters.disputes, 0);
    },
  );
});

test('a job sent before the upload again, that finds the model missing after it, is only sent again', {
  timeout: 60_000,
}, async () => {
  // Two jobs on the lease at once, both sent while the model was evicted: the first one's
  // MODEL_NOT_FOUND starts the upload, the second one's comes after the upload is done. That is
  // no loss of the model just stored (the limit), and no cause for another upload: the job is
  // sent again only, nothing held against the honest provider.
  await evicted(
    {
      hold: 'job',
      attemptTimeoutMs: 30_000,
      jobs: 2,
      answer: (n) => (n === 1 ? 'model-not-found' : n === 2 ? 'model-not-found-late' : 'held'),
    },
    async (seen, inside, leaseId) => {
      await until(() => seen.jobs === 4 || inside.avoided.size > 0, 'both jobs sent again, or avoided');
      assert.equal(inside.avoided.size, 0, 'the provider is not avoided');
      assert.equal(seen.uploads, 2, 'the model was uploaded again once');
      assert.ok(inside.leases.get(leaseId) && !inside.leases.get(leaseId)!.closing, 'the lease is kept');
    },
  );
});

// Each step of an attempt (the job, the model's upload again, the job again) had its own
// attemptTimeoutMs: a provider answering MODEL_NOT_FOUND, then taking the whole limit to store the
// model, was sent the job again with a full limit of its own, holding the job and a slot of its
// lease for up to three times the limit. The attempt now has one deadline for all its steps.
test('an attempt whose upload again took its whole time does not send the job again: one deadline for every step', {
  timeout: 60_000,
}, async () => {
  const clock = { ms: T0 };
  await evicted(
    {
      hold: 'job',
      attemptTimeoutMs: 30_000,
      clock,
      // The upload again took the attempt's whole time (the gateway's clock says so).
      onUpload: () => {
        clock.ms += 30_000;
      },
    },
    async (seen, inside) => {
      await until(
        () => seen.jobs === 2 || inside.avoided.size > 0,
        'the job sent again, or the attempt ended at its deadline',
      );
      assert.equal(seen.uploads, 2, 'the model was uploaded again');
      assert.equal(seen.jobs, 1, 'the job was not sent again past the deadline');
      // The request it answered (MODEL_NOT_FOUND) is no request without an answer.
      assert.equal(inside.counters.disputes, 0);
    },
  );
});
