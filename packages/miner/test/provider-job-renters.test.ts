/**
 * What one renter's job can reach of another's (sandbox.ts, job-isolation.ts): a job process runs
 * the jobs of one renter only (what a job leaves in its process never reaches another renter's
 * job), while the pool stays bounded; under bwrap a job process sees no model store (models come
 * as bytes) and its job folder is a tmpfs of a fixed size, a job that fills it failing with
 * JOB_DISK; without isolation the provider says what is given up.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Logger, silentLogger } from '@unc/node';
import { DEFAULT_OCR_MODELS, DevSoftSigner, JobSandbox, ProviderServer } from '../src/index.js';
import type { JobIsolationMode } from '../src/provider/job-isolation.js';
import { affineModel } from './fixtures/make-fixtures.js';
import { NEED_BWRAP, tempDir } from './helpers.js';
import { InMemoryLeaseSource, leaseRenter } from './provider-helpers.js';

const MiB = 1024 * 1024;

/**
 * A job process (test-only) that answers each OCR job with who it is (its pid and pid namespace:
 * under bwrap every sandbox has a namespace of its own) and every token it was ever sent; image
 * [1, n] writes n MiB to its working directory, 1 MiB at a time, answering the error of the write
 * that failed (as a runtime taken over would), or ok once written; [2, n] makes n thousand empty
 * files there; [3] ends the process (a job that crashed it, or ran it out of memory).
 */
function tellingRunner(dir: string): string {
  const file = join(dir, 'telling-runner.mjs');
  writeFileSync(
    file,
    `import { readlinkSync, writeFileSync, appendFileSync } from 'node:fs';
     const seen = [];
     process.on('message', (req) => {
       if (req.op === 'init') return process.send({ id: req.id, ok: true, result: { executionProvider: 'cpu' } });
       if (req.op === 'drop') return process.send({ id: req.id, ok: true });
       if (req.op === 'ocrMany') {
         // A group: each image as a job alone, answered as a part.
         req.images.forEach((image, index) => {
           const send = process.send.bind(process);
           process.send = (m) => (process.send = send, send(m.ok ? { op: 'part', id: req.id, index, durationMs: 0, ok: true, result: m.result } : { ...m, op: 'part', id: req.id, index, durationMs: 0 }));
           one({ id: req.id, image });
         });
         return process.send({ id: req.id, ok: true });
       }
       one(req);
     });
     function one(req) {
       const image = req.image;
       if (image[0] === 3) process.exit(1);
       if (image[0] === 2) {
         for (let i = 0; i < image[1] * 1000; i++) writeFileSync('f' + i, '');
         return process.send({ id: req.id, ok: true, result: 'made' });
       }
       if (image[0] === 1) {
         writeFileSync('fill', '');
         for (let i = 0; i < image[1]; i++) {
           try { appendFileSync('fill', Buffer.alloc(${MiB}, 7)); }
           catch (e) { return process.send({ id: req.id, ok: false, code: 'JOB_FAILED', error: String(e.code), detail: String(e.code) }); }
         }
         return process.send({ id: req.id, ok: true, result: 'written' });
       }
       seen.push(Buffer.from(image).toString('utf8'));
       process.send({ id: req.id, ok: true, result: { who: readlinkSync('/proc/self/ns/pid') + '/' + process.pid, seen: [...seen] } });
     }
     process.on('disconnect', () => process.exit(0));`,
  );
  return file;
}

function sandboxOf(
  isolation: JobIsolationMode,
  runner: string,
  extra: Partial<ConstructorParameters<typeof JobSandbox>[0]> = {},
): JobSandbox {
  return new JobSandbox({
    workers: 1,
    executionProvider: 'cpu',
    ocr: DEFAULT_OCR_MODELS,
    timeoutMs: 30_000,
    memoryBytes: 1024 * MiB,
    heapMb: 256,
    maxSessions: 4,
    maxOutputBytes: 1024 * 1024,
    logger: silentLogger,
    isolation,
    runner,
    ...extra,
  });
}

type Told = { who: string; seen: string[] };
const token = (s: string) => new Uint8Array(Buffer.from(s, 'utf8'));

for (const isolation of ['none', 'bwrap'] as const)
  describe(`a job process serves one renter only (isolation ${isolation})`, {
    skip: isolation === 'bwrap' ? NEED_BWRAP : false,
  }, () => {
    let dir: { path: string; remove(): Promise<void> };
    before(async () => {
      dir = await tempDir('unc-job-renters-');
    });
    after(async () => {
      await dir.remove();
    });

    test("a second renter's job lands in another process, which holds nothing of the first's", {
      timeout: 120_000,
    }, async () => {
      const sandbox = sandboxOf(isolation, tellingRunner(dir.path));
      await sandbox.start();
      try {
        const a1 = (await sandbox.ocr('renter-a', token('a-secret-1'))) as unknown as Told;
        const a2 = (await sandbox.ocr('renter-a', token('a-secret-2'))) as unknown as Told;
        // The same renter's jobs stay where they are warm: no process started for it.
        assert.equal(a2.who, a1.who);
        assert.deepEqual(a2.seen, ['a-secret-1', 'a-secret-2']);
        const b = (await sandbox.ocr('renter-b', token('b-1'))) as unknown as Told;
        // Before: the one process of the pool ran B's job after A's, and B's job read A's data there.
        assert.notEqual(b.who, a1.who, "renter B's job ran in renter A's process");
        assert.deepEqual(b.seen, ['b-1']);
        assert.equal(sandbox.recycled, 1);
        assert.ok(sandbox.residentSets().length <= 1, 'the pool grew past its size');
      } finally {
        await sandbox.stop();
      }
    });

    test('with room for more processes than run at once, each renter keeps its warm process', {
      timeout: 120_000,
    }, async () => {
      const sandbox = sandboxOf(isolation, tellingRunner(dir.path), { maxProcesses: 2 });
      await sandbox.start();
      try {
        const a = (await sandbox.ocr('renter-a', token('a-1'))) as unknown as Told;
        const b = (await sandbox.ocr('renter-b', token('b-1'))) as unknown as Told;
        const a2 = (await sandbox.ocr('renter-a', token('a-2'))) as unknown as Told;
        assert.notEqual(b.who, a.who);
        // A's process was kept for it: B got a process started, none replaced.
        assert.equal(a2.who, a.who);
        assert.deepEqual(a2.seen, ['a-1', 'a-2']);
        assert.equal(sandbox.recycled, 0);
        assert.equal(sandbox.spawned, 2);
        // A third renter, the pool full: the least recently used idle process (B's) makes way.
        const c = (await sandbox.ocr('renter-c', token('c-1'))) as unknown as Told;
        assert.deepEqual(c.seen, ['c-1']);
        assert.equal(sandbox.recycled, 1);
        assert.equal(((await sandbox.ocr('renter-a', token('a-3'))) as unknown as Told).who, a.who);
        assert.ok(sandbox.residentSets().length <= 2, 'the pool grew past maxProcesses');
      } finally {
        await sandbox.stop();
      }
    });

    test("a renter running jobs side by side (a batch's groups) does not replace another renter's one warm process", {
      timeout: 120_000,
    }, async () => {
      // Two chips, two renters, the provider's defaults: two processes, two jobs at once.
      const sandbox = sandboxOf(isolation, tellingRunner(dir.path), { workers: 2, maxProcesses: 2 });
      await sandbox.start();
      try {
        const two = async (i: number) =>
          (await Promise.all([
            sandbox.ocr('renter-a', token(`a-${i}-1`)),
            sandbox.ocr('renter-a', token(`a-${i}-2`)),
          ])) as unknown as Told[];
        await two(0);
        const b = (await sandbox.ocr('renter-b', token('b-1'))) as unknown as Told;
        // B had no process: a fresh one, or one of A's made way for it (as the pool's start went).
        const recycled = sandbox.recycled;
        for (let i = 1; i <= 3; i++) {
          await two(i);
          const again = (await sandbox.ocr('renter-b', token(`b-${i + 1}`))) as unknown as Told;
          // Before: A's second job replaced B's idle process each time (A held one, B one), and
          // B's next job replaced one of A's: every job of both paid a process start.
          assert.equal(again.who, b.who, `round ${i}: B's warm process was replaced`);
        }
        assert.equal(sandbox.recycled, recycled);
      } finally {
        await sandbox.stop();
      }
    });

    test("a renter's process left idle past coldAfterMs (its lease over) makes way for the next renter's jobs side by side", {
      timeout: 120_000,
    }, async () => {
      const sandbox = sandboxOf(isolation, tellingRunner(dir.path), { maxProcesses: 2, coldAfterMs: 0 });
      await sandbox.start();
      try {
        await sandbox.ocr('renter-a', token('a-1'));
        // B's first job: a process started for it (room). A's stays, idle: A is gone.
        await sandbox.ocr('renter-b', token('b-1'));
        assert.equal(sandbox.recycled, 0);
        await Promise.all([sandbox.ocr('renter-b', token('b-2')), sandbox.ocr('renter-b', token('b-3'))]);
        // B holds one process, A one: without coldAfterMs B's second job waited for B's own
        // process while A's sat idle for good (a chip's next renter ran its batches on half the
        // processes). A's is replaced (the fresh one takes B's next job side by side).
        assert.equal(sandbox.recycled, 1, "A's idle process was never replaced");
      } finally {
        await sandbox.stop();
      }
    });

    test("a renter whose own process died does not replace another renter's with the jobs its replacement will serve", {
      timeout: 120_000,
    }, async () => {
      const sandbox = sandboxOf(isolation, tellingRunner(dir.path), { maxProcesses: 3 });
      await sandbox.start();
      try {
        const who = new Map<string, string>();
        for (const r of ['renter-a', 'renter-b', 'renter-c'])
          who.set(r, ((await sandbox.ocr(r, token(`${r}-1`))) as unknown as Told).who);
        assert.equal(sandbox.recycled, 0);
        // A kills its own process (a job that crashes it, or runs past the memory limit): a
        // replacement starts at once. Then two jobs of A side by side: the replacement serves one.
        await assert.rejects(sandbox.ocr('renter-a', new Uint8Array([3])));
        await Promise.all([sandbox.ocr('renter-a', token('a-2')), sandbox.ocr('renter-a', token('a-3'))]);
        // Before: A held no process while its replacement started, so its second job replaced
        // B's or C's warm process (and could again after each crash, for the price of a job).
        assert.equal(sandbox.recycled, 0, "another renter's process was replaced");
        for (const r of ['renter-b', 'renter-c'])
          assert.equal(((await sandbox.ocr(r, token(`${r}-2`))) as unknown as Told).who, who.get(r));
      } finally {
        await sandbox.stop();
      }
    });

    test('many renters at once: every process serves one renter, and the pool stays at its size', {
      timeout: 240_000,
    }, async () => {
      const workers = 2;
      const sandbox = sandboxOf(isolation, tellingRunner(dir.path), { workers });
      await sandbox.start();
      try {
        const renters = ['a', 'b', 'c', 'd', 'e'];
        const jobs = Array.from({ length: 20 }, (_, i) => renters[(i * 7) % renters.length]!);
        let most = 0;
        const told = await Promise.all(
          jobs.map(async (r, i) => {
            const t = (await sandbox.ocr(r, token(`${r}:${i}`))) as unknown as Told;
            most = Math.max(most, sandbox.residentSets().length);
            return { r, t };
          }),
        );
        const served = new Map<string, Set<string>>();
        for (const { r, t } of told) {
          served.set(t.who, (served.get(t.who) ?? new Set()).add(r));
          for (const s of t.seen) assert.equal(s.split(':')[0], r, `${r}'s job saw ${s}`);
        }
        for (const [who, rs] of served) assert.equal(rs.size, 1, `process ${who} served ${[...rs]}`);
        assert.ok(most <= workers, `${most} processes live at once, more than the pool's ${workers}`);
        assert.ok(sandbox.spawned <= workers + sandbox.recycled, 'a process was started for no recycle');
      } finally {
        await sandbox.stop();
      }
    });
  });

describe('under bwrap a job process sees no model store and has a bounded job folder', {
  skip: NEED_BWRAP,
}, () => {
  let dir: { path: string; remove(): Promise<void> };
  before(async () => {
    dir = await tempDir('unc-job-renters-bwrap-');
  });
  after(async () => {
    await dir.remove();
  });

  test('a job that writes past its folder size fails with JOB_DISK; the next job runs', {
    timeout: 120_000,
  }, async () => {
    const sandbox = sandboxOf('bwrap', tellingRunner(dir.path), { diskBytes: 4 * MiB });
    await sandbox.start();
    try {
      // 3 MiB fit in 4, and count against the memory limit while they are there.
      assert.equal(await sandbox.ocr('r', new Uint8Array([1, 3])), 'written');
      // 8 MiB: before, the job folder was a folder of this machine's disk and took them all.
      await assert.rejects(sandbox.ocr('r', new Uint8Array([1, 8])), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'JOB_DISK');
        assert.match(e.message, /limit of 4 MiB/);
        return true;
      });
      // Its process was replaced: the renter's next job runs in an empty folder.
      assert.equal(await sandbox.ocr('r', new Uint8Array([1, 3])), 'written');
      // Empty files take no block, but kernel memory each: their count is bounded too.
      assert.equal(await sandbox.ocr('r', new Uint8Array([2, 2])), 'made');
      await assert.rejects(sandbox.ocr('r', new Uint8Array([2, 20])), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'JOB_DISK');
        return true;
      });
      assert.equal(await sandbox.ocr('r', new Uint8Array([1, 1])), 'written');
    } finally {
      await sandbox.stop();
    }
  });

  test('a job past its folder limits that answers before a memory check saw it fails JOB_DISK, alone or in a group', {
    timeout: 120_000,
  }, async () => {
    const sandbox = sandboxOf('bwrap', tellingRunner(dir.path), { diskBytes: 4 * MiB });
    await sandbox.start();
    // No memory check runs (as between two checks, 100 ms apart): the answer is all there is.
    clearInterval((sandbox as unknown as { monitor: NodeJS.Timeout }).monitor);
    const disk = (e: Error & { code?: string }) => e.code === 'JOB_DISK';
    try {
      await assert.rejects(sandbox.ocr('r', new Uint8Array([2, 11])), disk);
      const group = await sandbox.ocrMany('r', [new Uint8Array([1, 1]), new Uint8Array([2, 11])]);
      assert.equal(group.length, 2);
      assert.deepEqual(group[0], { ok: true, value: 'written', durationMs: 0 });
      // Before: answered as done (its process replaced only later, at its clean-up).
      assert.equal(group[1]!.ok, false, 'a job of a group past the file limit was answered as done');
      assert.ok(disk((group[1] as { error: Error }).error));
      assert.equal(await sandbox.ocr('r', new Uint8Array([1, 1])), 'written');
    } finally {
      await sandbox.stop();
    }
  });

  test("a provider's job processes cannot see its model store (another renter's model)", {
    timeout: 180_000,
  }, async () => {
    const CHAIN = 'unc-test-job-renters';
    const leases = new InMemoryLeaseSource();
    const chip = new DevSoftSigner(new Uint8Array(randomBytes(32)), 'dev-h100', 'renters-chip');
    const modelDir = join(dir.path, 'models');
    const provider = new ProviderServer({
      chainId: CHAIN,
      signers: [chip],
      leases,
      modelDir,
      stateDir: join(dir.path, 'state'),
      concurrency: 1,
      jobIsolation: 'bwrap',
      logger: silentLogger,
    });
    const url = await provider.start();
    try {
      // Renter B's model in the store; renter A's job runs.
      const b = (await leaseRenter(leases, chip, url, CHAIN)).client;
      const theirs = (await b.uploadModel(affineModel())).modelHash;
      const a = (await leaseRenter(leases, chip, url, CHAIN)).client;
      // The same model with a doc_string (ModelProto field 6): another hash.
      const mine = (await a.uploadModel(new Uint8Array([...affineModel(), 0x32, 2, 0x61, 0x62]))).modelHash;
      assert.notEqual(mine, theirs);
      const x = { x: { type: 'float32' as const, dims: [1, 4], data: Buffer.alloc(16).toString('base64') } };
      assert.equal((await a.runJob(mine, x)).job.status, 'done');
      const files = readdirSync(modelDir)
        .filter((n) => n.includes(theirs) || n.includes(mine))
        .map((n) => realpathSync(join(modelDir, n)));
      assert.ok(files.length >= 2, `the models are in the store: ${readdirSync(modelDir)}`);
      type W = { dead: boolean; inner: { pid: number }[] };
      const workers = (provider.jobProcesses as unknown as { workers: W[] }).workers.filter((w) => !w.dead);
      assert.ok(workers.length > 0 && workers.every((w) => w.inner.length > 0));
      for (const w of workers) {
        const root = `/proc/${w.inner[0]!.pid}/root`;
        // What it needs is there (the view is read), the store is not: before, it was bound whole.
        assert.ok(existsSync(`${root}${realpathSync(DEFAULT_OCR_MODELS.detectionPath)}`));
        for (const f of files) assert.equal(existsSync(`${root}${f}`), false, `${f} is in a job's view`);
        assert.equal(existsSync(`${root}${realpathSync(modelDir)}`), false, 'the model store is in view');
      }
    } finally {
      await provider.stop();
    }
  });
});

describe('without isolation the provider says what is given up', () => {
  test("a pool started with isolation none warns of the memory limit forks escape and the job folder's missing quota", {
    timeout: 60_000,
  }, async () => {
    const dir = await tempDir('unc-job-renters-none-');
    const warnings: string[] = [];
    const logger: Logger = {
      component: 'test',
      level: 'debug',
      debug: () => undefined,
      info: () => undefined,
      warn: (msg: string) => void warnings.push(msg),
      error: () => undefined,
      child: () => logger,
    };
    const sandbox = sandboxOf('none', tellingRunner(dir.path), { logger });
    try {
      await sandbox.start();
      // Before: `none` started silently.
      assert.ok(
        warnings.some(
          (w) => /WITHOUT OS isolation/.test(w) && /memory limit/.test(w) && /disk quota/.test(w),
        ),
        JSON.stringify(warnings),
      );
    } finally {
      await sandbox.stop();
      await dir.remove();
    }
  });
});
