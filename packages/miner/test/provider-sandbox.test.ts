/**
 * The job processes' pool (sandbox.ts) when the system, not the renter, fails: a replacement that
 * cannot be started must not end the provider.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { silentLogger } from '@unc/node';
import fc from 'fast-check';
import { DEFAULT_OCR_MODELS, JobSandbox, StageClock } from '../src/index.js';
import { countChannelReads, DEFAULT_MESSAGE_LIMITS } from '../src/provider/sandbox.js';
import { clippedLog, clipUtf8, LogGate, logSize } from '../src/provider/sandbox-protocol.js';
import { inputLoopModel, loopModel } from './fixtures/attack-models.js';
import { affineModel } from './fixtures/make-fixtures.js';
import { NEED_BWRAP, tempDir } from './helpers.js';

/**
 * The pool's kill, time-limit, replacement, flood and close paths run once forked (isolation
 * none, the pool's own default) and once inside bubblewrap (the provider's default where it
 * works; job-isolation.ts), where they kill a sandbox of processes, not one. CI installs bwrap.
 */
const MODES: ('none' | 'bwrap')[] = NEED_BWRAP === false ? ['none', 'bwrap'] : ['none'];

/** Waits (at most 15 s) until the sandbox has spawned `count` job processes in all. */
async function respawned(sandbox: { spawned: number }, count: number): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (sandbox.spawned < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

for (const isolation of MODES)
  describe(`job sandbox (isolation ${isolation})`, () => {
    const dirs: { remove(): Promise<void> }[] = [];
    after(async () => {
      for (const d of dirs) await d.remove();
    });

    test('a replacement that cannot be started (no temporary directory) is retried, not thrown', {
      timeout: 60_000,
    }, async () => {
      const dir = await tempDir('unc-sandbox-');
      dirs.push(dir);
      const sandbox = new JobSandbox({
        workers: 1,
        executionProvider: 'cpu',
        ocr: DEFAULT_OCR_MODELS,
        timeoutMs: 1_000,
        memoryBytes: 4 * 1024 ** 3,
        heapMb: 512,
        maxSessions: 4,
        maxOutputBytes: 1024 * 1024,
        logger: silentLogger,
        isolation,
        readOnlyPaths: [dir.path],
      });
      await sandbox.start();
      const loop = join(dir.path, 'loop.onnx');
      const affine = join(dir.path, 'affine.onnx');
      writeFileSync(loop, loopModel());
      writeFileSync(affine, affineModel());
      const saved = process.env.TMPDIR;
      // The pool's retry timer does not hold the process open (a provider's server does).
      const keepAlive = setInterval(() => undefined, 1_000);
      try {
        // The job is killed at its time limit; its replacement's mkdtemp fails (ENOENT). That threw
        // out of the timer and ended the process.
        process.env.TMPDIR = join(dir.path, 'no-such-dir');
        const x = [{ name: 'x', type: 'float32' as const, dims: [1n], data: new Uint8Array(4) }];
        await assert.rejects(sandbox.run('r', 'a'.repeat(64), loop, x), (e: Error & { code?: string }) => {
          return e.code === 'JOB_TIMEOUT';
        });
        await new Promise((r) => setTimeout(r, 300));
        // The temporary directory is back: the pool recovers and runs jobs again.
        if (saved === undefined) delete process.env.TMPDIR;
        else process.env.TMPDIR = saved;
        const out = await Promise.race([
          sandbox.run('r', 'b'.repeat(64), affine, [
            { name: 'x', type: 'float32', dims: [1n, 4n], data: new Uint8Array(16) },
          ]),
          new Promise<never>((_, reject) =>
            setTimeout(() => reject(new Error('no job process came back in 45 s')), 45_000).unref(),
          ),
        ]);
        assert.equal(out.length, 1);
      } finally {
        clearInterval(keepAlive);
        if (saved === undefined) delete process.env.TMPDIR;
        else process.env.TMPDIR = saved;
        await sandbox.stop();
      }
    });
  });

/** The pool's job processes, for tests that stand in for a process gone wrong. */
const children = (sandbox: JobSandbox) =>
  (sandbox as unknown as { workers: { child: ChildProcess }[] }).workers.map((w) => w.child);

const oneWorker = (timeoutMs: number, isolation: 'none' | 'bwrap', dir: { path: string }) =>
  new JobSandbox({
    workers: 1,
    executionProvider: 'cpu',
    ocr: DEFAULT_OCR_MODELS,
    timeoutMs,
    memoryBytes: 4 * 1024 ** 3,
    heapMb: 512,
    maxSessions: 4,
    maxOutputBytes: 1024 * 1024,
    logger: silentLogger,
    isolation,
    readOnlyPaths: [dir.path],
  });

for (const isolation of MODES)
  describe(`job sandbox against a job process gone wrong (it runs the renter’s model) (isolation ${isolation})`, () => {
    test('a malformed message kills that process and nothing else; the pool runs on', {
      timeout: 60_000,
    }, async () => {
      const dir = await tempDir('unc-sandbox-malformed-');
      const sandbox = oneWorker(5_000, isolation, dir);
      try {
        await sandbox.start();
        const affine = join(dir.path, 'affine.onnx');
        writeFileSync(affine, affineModel());
        const [child] = children(sandbox);
        // As the channel would deliver them. Before, `'op' in 5` and `logger.nope(...)` threw out of
        // the message handler: an uncaught exception that ended the provider.
        for (const m of [
          5,
          null,
          'x',
          { op: 'log', level: 'nope', msg: 'x' },
          { op: 'parts', id: 1, parts: [] },
        ])
          assert.doesNotThrow(() => child!.emit('message', m));
        const x = [{ name: 'x', type: 'float32' as const, dims: [1n, 4n], data: new Uint8Array(16) }];
        const out = await sandbox.run('r', 'b'.repeat(64), affine, x);
        assert.equal(out.length, 1);
        assert.equal(sandbox.spawned, 2, 'the process that sent it was replaced');
      } finally {
        await sandbox.stop();
        await dir.remove();
      }
    });

    test('a killed process whose channel stays open past the drain limit is cut off', {
      timeout: 60_000,
    }, async () => {
      const dir = await tempDir('unc-sandbox-undead-');
      const sandbox = oneWorker(1_000, isolation, dir);
      let undead: ChildProcess | undefined;
      try {
        await sandbox.start();
        const loop = join(dir.path, 'loop.onnx');
        writeFileSync(loop, loopModel());
        undead = children(sandbox)[0]!;
        // It outlives the kill (a process stuck in the kernel, or one that left a child holding its
        // end of the channel): the channel never ends by itself.
        undead.kill = () => true;
        const one = [{ name: 'x', type: 'float32' as const, dims: [1n], data: new Uint8Array(4) }];
        await assert.rejects(sandbox.run('r', 'a'.repeat(64), loop, one), (e: Error & { code?: string }) => {
          return e.code === 'JOB_TIMEOUT';
        });
        // Failed after the drain limit, and nothing more is read from it (before: still connected,
        // every message it wrote parsed and logged for as long as it lived).
        assert.equal(undead.connected, false);
      } finally {
        if (undead?.pid !== undefined) {
          try {
            process.kill(undead.pid, 'SIGKILL');
          } catch {
            // gone
          }
        }
        await sandbox.stop();
        await dir.remove();
      }
    });

    test('a job process that never answers its init is killed at the start limit: the start fails, it does not hang', {
      timeout: 30_000,
    }, async () => {
      const dir = await tempDir('unc-sandbox-mute-');
      const runner = join(dir.path, 'mute.mjs');
      writeFileSync(runner, 'setInterval(() => undefined, 1_000);');
      const sandbox = new JobSandbox({
        workers: 1,
        executionProvider: 'cpu',
        ocr: DEFAULT_OCR_MODELS,
        timeoutMs: 5_000,
        memoryBytes: 4 * 1024 ** 3,
        heapMb: 512,
        maxSessions: 4,
        maxOutputBytes: 1024,
        runner,
        startTimeoutMs: 1_000,
        logger: silentLogger,
        isolation,
      });
      try {
        // Before: no limit on the start; a sandbox stuck as it was set up held start() (and, once
        // every process of the pool was such a one, every job) for good.
        await assert.rejects(sandbox.start(), (e: Error & { code?: string }) => {
          assert.equal(e.code, 'JOB_CRASHED');
          assert.match(e.message, /did not start within 1 s/);
          return true;
        });
      } finally {
        await sandbox.stop();
        await dir.remove();
      }
    });

    test('a process the job process left holding its stderr does not keep the pipe open once it is killed', {
      timeout: 60_000,
    }, async () => {
      const dir = await tempDir('unc-sandbox-leftover-');
      const pidFile = join(dir.path, 'left.pid');
      // On its init it starts a process that shares its stderr and outlives it (outside a sandbox a
      // SIGKILL of the job process does not reach it); its first job runs past the time limit.
      const runner = join(dir.path, 'leaver.mjs');
      writeFileSync(
        runner,
        `import { spawn } from 'node:child_process';
       process.on('message', (req) => {
         if (req.op === 'init') {
           spawn(process.execPath, ['-e', 'require("fs").writeFileSync(process.argv[1], String(process.pid)); setInterval(() => {}, 1e9)', ${JSON.stringify(pidFile)}], { stdio: ['ignore', 'ignore', 'inherit'] });
           return process.send({ id: req.id, ok: true, result: { executionProvider: 'cpu' } });
         }
         for (;;);
       });`,
      );
      const sandbox = new JobSandbox({
        workers: 1,
        executionProvider: 'cpu',
        ocr: DEFAULT_OCR_MODELS,
        timeoutMs: 1_000,
        memoryBytes: 4 * 1024 ** 3,
        heapMb: 512,
        maxSessions: 4,
        maxOutputBytes: 1024,
        runner,
        logger: silentLogger,
        isolation,
        readOnlyPaths: [dir.path],
      });
      try {
        await sandbox.start();
        const [child] = children(sandbox);
        await assert.rejects(sandbox.ocr('r', new Uint8Array(8)), (e: Error & { code?: string }) => {
          return e.code === 'JOB_TIMEOUT';
        });
        // Before: the pipe stayed open for as long as the leftover lived, and held this process
        // (a test file never ended; a provider's loop never emptied).
        assert.equal(child!.stderr!.destroyed, true, "the killed process's stderr is still read");
      } finally {
        await sandbox.stop();
        // Outside a sandbox its pid is this machine's (inside, it died with its sandbox's pid namespace).
        if (isolation === 'none') {
          try {
            process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGKILL');
          } catch {
            // not started, or gone
          }
        }
        await dir.remove();
      }
    });
  });

for (const isolation of MODES)
  describe(`job sandbox groups (the jobs of a batch in one job process) (isolation ${isolation})`, () => {
    test('each job of a group is answered; a job killed at its time limit fails, the ones after it did not run', {
      timeout: 90_000,
    }, async () => {
      const dir = await tempDir('unc-sandbox-group-');
      const sandbox = new JobSandbox({
        workers: 1,
        executionProvider: 'cpu',
        ocr: DEFAULT_OCR_MODELS,
        timeoutMs: 1_500,
        memoryBytes: 4 * 1024 ** 3,
        heapMb: 512,
        maxSessions: 4,
        maxOutputBytes: 1024 * 1024,
        logger: silentLogger,
        isolation,
        readOnlyPaths: [dir.path],
      });
      try {
        await sandbox.start();
        const loop = join(dir.path, 'loop.onnx');
        const affine = join(dir.path, 'affine.onnx');
        writeFileSync(loop, loopModel());
        writeFileSync(affine, affineModel());
        const x = [{ name: 'x', type: 'float32' as const, dims: [1n, 4n], data: new Uint8Array(16) }];
        const wrong = [{ name: 'z', type: 'float32' as const, dims: [1n, 4n], data: new Uint8Array(16) }];
        const mixed = await sandbox.runMany('r', 'b'.repeat(64), affine, [x, wrong, x]);
        assert.deepEqual(
          mixed.map((s) => s.ok),
          [true, false, true],
        );
        assert.equal(!mixed[1]!.ok && mixed[1]!.error.code, 'JOB_FAILED');
        const one = [{ name: 'x', type: 'float32' as const, dims: [1n], data: new Uint8Array(4) }];
        const looping = await sandbox.runMany('r', 'a'.repeat(64), loop, [one, one, one]);
        assert.deepEqual(
          looping.map((s) => (s.ok ? 'ok' : s.error.code)),
          ['JOB_TIMEOUT', 'JOB_ABORTED', 'JOB_ABORTED'],
        );
        // A fresh process took the killed one's place.
        const again = await sandbox.runMany('r', 'b'.repeat(64), affine, [x]);
        assert.ok(again[0]!.ok);
        // Past its budget a group starts no more jobs (the first always runs): the answer holds
        // the jobs that ran, the caller queues the rest.
        const budgeted = await sandbox.runMany('r', 'b'.repeat(64), affine, [x, x, x], 0);
        assert.deepEqual(
          budgeted.map((s) => s.ok),
          [true],
        );
        const roomy = await sandbox.runMany('r', 'b'.repeat(64), affine, [x, x, x], 60_000);
        assert.equal(roomy.length, 3);
      } finally {
        await sandbox.stop();
        await dir.remove();
      }
    });

    /**
     * A job's answer, once it ran, reaches the caller even when its process is killed during a
     * later job of the same group. Before, answers that ended within 2 ms of the last message were
     * held in the job process to go out together, and died with it when the next job of the group
     * ran past its time limit; and the pool failed a killed process's requests at once, dropping
     * answers the process had already written that the provider had not read yet.
     */
    const trip = (n: bigint) => {
      const data = new Uint8Array(8);
      new DataView(data.buffer).setBigInt64(0, n, true);
      return [
        { name: 'M', type: 'int64' as const, dims: [], data },
        { name: 'x', type: 'float32' as const, dims: [1n], data: new Uint8Array(4) },
      ];
    };
    const groupSandbox = (timeoutMs: number, dir: { path: string }) =>
      new JobSandbox({
        workers: 1,
        executionProvider: 'cpu',
        ocr: DEFAULT_OCR_MODELS,
        timeoutMs,
        memoryBytes: 4 * 1024 ** 3,
        heapMb: 512,
        maxSessions: 4,
        maxOutputBytes: 1024 * 1024,
        logger: silentLogger,
        isolation,
        readOnlyPaths: [dir.path],
      });

    test('a quick job before one killed at its time limit keeps its answer', {
      timeout: 90_000,
    }, async () => {
      const dir = await tempDir('unc-sandbox-held-');
      const sandbox = groupSandbox(1_500, dir);
      try {
        await sandbox.start();
        const model = join(dir.path, 'input-loop.onnx');
        writeFileSync(model, inputLoopModel());
        await sandbox.check('r', 'c'.repeat(64), model);
        const settled = await sandbox.runMany('r', 'c'.repeat(64), model, [
          trip(1n),
          trip(1n),
          trip(1n << 62n),
        ]);
        // Before: ['JOB_TIMEOUT', 'JOB_ABORTED', 'JOB_ABORTED']: the two answers were held back.
        assert.deepEqual(
          settled.map((s) => (s.ok ? 'ok' : s.error.code)),
          ['ok', 'ok', 'JOB_TIMEOUT'],
        );
      } finally {
        await sandbox.stop();
        await dir.remove();
      }
    });

    test('an answer the job process wrote before it was killed is read, not dropped', {
      timeout: 90_000,
    }, async () => {
      const dir = await tempDir('unc-sandbox-drain-');
      const timeoutMs = 1_500;
      const sandbox = groupSandbox(timeoutMs, dir);
      try {
        await sandbox.start();
        const model = join(dir.path, 'input-loop.onnx');
        writeFileSync(model, inputLoopModel());
        await sandbox.check('r', 'c'.repeat(64), model);
        const running = sandbox.runMany('r', 'c'.repeat(64), model, [trip(1n), trip(1n << 62n)]);
        // The provider's thread is busy past the time limit: meanwhile the job process answers the
        // first job and runs into the second. When the provider's loop turns again, the expired
        // timer kills the process before the answer waiting on the channel is read.
        await new Promise<void>((resolve) =>
          setImmediate(() => {
            const until = performance.now() + timeoutMs + 2_000;
            while (performance.now() < until);
            resolve();
          }),
        );
        const settled = await running;
        assert.deepEqual(
          settled.map((s) => (s.ok ? 'ok' : s.error.code)),
          ['ok', 'JOB_TIMEOUT'],
        );
      } finally {
        await sandbox.stop();
        await dir.remove();
      }
    });
  });

/**
 * A job process that answers its init like the real one, then, on its first job, sends what
 * `attack` writes (a script's body, with `req` the job's request) before answering it as done.
 */
function hostileRunner(dir: string, name: string, attack: string): string {
  const file = join(dir, `${name}.mjs`);
  writeFileSync(
    file,
    `process.on('message', async (req) => {
       if (req.op === 'init') return process.send({ id: req.id, ok: true, result: { executionProvider: 'cpu' } });
       ${attack}
       process.send({ id: req.id, ok: true, result: [] });
     });
     process.on('disconnect', () => process.exit(0));`,
  );
  return file;
}

for (const isolation of MODES)
  describe(`job sandbox against a job process that floods the provider (isolation ${isolation})`, () => {
    const cases: [string, string, RegExp][] = [
      [
        'one message over the size limit (refused while it arrives)',
        `process.send({ op: 'log', level: 'info', msg: 'x'.repeat(4 * 1024 * 1024) });`,
        /a message over 1048576 bytes/,
      ],
      [
        'an answer over the size limit',
        `process.send({ id: req.id, ok: true, result: new Uint8Array(8 * 1024 * 1024) });`,
        /a message over 1048576 bytes/,
      ],
      [
        'one log message over the log size limit',
        `process.send({ op: 'log', level: 'warn', msg: 'x'.repeat(64 * 1024) });`,
        /a log message of 65536 bytes/,
      ],
      [
        // 6,000 UTF-16 code units, 12,000 bytes: counted in characters it passed the 8 KiB limit.
        'one log message over the log size limit in bytes, not in characters (emoji)',
        `process.send({ op: 'log', level: 'warn', msg: '😀'.repeat(3000) });`,
        /a log message of 12000 bytes/,
      ],
      [
        'log bytes in one job over the limit in bytes, not in characters (CJK)',
        `for (let i = 0; i < 10; i++) process.send({ op: 'log', level: 'info', msg: '中'.repeat(2500) });`,
        /bytes of log messages in one job/,
      ],
      [
        'more log bytes in one job than allowed',
        `for (let i = 0; i < 20; i++) process.send({ op: 'log', level: 'info', msg: 'y'.repeat(7000) });`,
        /bytes of log messages in one job/,
      ],
      [
        'log messages faster than the rate',
        `for (let i = 0; i < 2000; i++) process.send({ op: 'log', level: 'debug', msg: 'z' });`,
        /messages faster than 20 a second/,
      ],
      [
        // A few, within the log rate: taken from it, such answers (each up to the size limit) were
        // decoded 20 a second for as long as the process lived.
        'answers nobody asked for',
        `for (let i = 0; i < 3; i++) process.send({ id: 1e9 + i, ok: true, result: null });`,
        /an answer to no request/,
      ],
      [
        'log fields that are not plain values',
        `process.send({ op: 'log', level: 'info', msg: 'm', fields: { deep: { a: [1, 2, 3] } } }); return;`,
        /malformed/,
      ],
    ];
    for (const [what, attack, reason] of cases)
      test(`${what}: its process is killed and replaced, its job fails with the reason`, {
        timeout: 60_000,
      }, async () => {
        const dir = await tempDir('unc-sandbox-flood-');
        let logged = 0;
        const sandbox = new JobSandbox({
          workers: 1,
          executionProvider: 'cpu',
          ocr: DEFAULT_OCR_MODELS,
          timeoutMs: 20_000,
          memoryBytes: 4 * 1024 ** 3,
          heapMb: 512,
          maxSessions: 4,
          maxOutputBytes: 0,
          runner: hostileRunner(dir.path, 'flood', attack),
          logger: { ...silentLogger, info: () => logged++, debug: () => logged++, warn: () => undefined },
          isolation,
        });
        try {
          await sandbox.start();
          // Before, every one of these was read, decoded and logged, and the job answered as done.
          await assert.rejects(sandbox.ocr('r', new Uint8Array(8)), (e: Error & { code?: string }) => {
            assert.equal(e.code, e.message.includes('malformed') ? 'JOB_CRASHED' : 'JOB_FLOOD');
            assert.match(e.message, reason);
            return true;
          });
          // At most the burst (50), and what the rate refills while the flood arrives on a busy machine.
          assert.ok(logged <= 100, `${logged} of its log messages reached the provider's log`);
          // The replacement's spawn is waited for, not assumed within a fixed 200 ms.
          await respawned(sandbox, 2);
          assert.equal(sandbox.spawned, 2, 'the process that sent it was replaced');
        } finally {
          await sandbox.stop();
          await dir.remove();
        }
      });

    test('a process within the limits (a few short logs, answers in size) is not touched', {
      timeout: 60_000,
    }, async () => {
      const dir = await tempDir('unc-sandbox-calm-');
      const sandbox = new JobSandbox({
        workers: 1,
        executionProvider: 'cpu',
        ocr: DEFAULT_OCR_MODELS,
        timeoutMs: 20_000,
        memoryBytes: 4 * 1024 ** 3,
        heapMb: 512,
        maxSessions: 4,
        maxOutputBytes: 1024 * 1024,
        runner: hostileRunner(
          dir.path,
          'calm',
          `for (let i = 0; i < 10; i++) process.send({ op: 'log', level: 'info', msg: 'fine', fields: { i, ok: true, n: null } });
         process.send({ id: req.id, ok: true, result: new Uint8Array(512 * 1024) }); return;`,
        ),
        logger: silentLogger,
        isolation,
        readOnlyPaths: [dir.path],
      });
      try {
        await sandbox.start();
        for (let i = 0; i < 3; i++) {
          const out = (await sandbox.ocr('r', new Uint8Array(8))) as unknown as Uint8Array;
          assert.equal(out.length, 512 * 1024);
        }
        assert.equal(sandbox.spawned, 1);
      } finally {
        await sandbox.stop();
        await dir.remove();
      }
    });
  });

for (const isolation of MODES)
  describe(`job sandbox against a job process that sends a group the wrong parts (isolation ${isolation})`, () => {
    const part = (index: string) =>
      `process.send({ op: 'part', id: req.id, index: ${index}, durationMs: 0, ok: true, result: [] });`;
    const cases: [string, string, number][] = [
      // Before, the repeats were dropped unread of any limit, and the group answered as if whole.
      ['the same part again and again', `for (let i = 0; i < 500; i++) ${part('0')}`, 1],
      // Before, every one was kept (settled grew past the group) and restarted the group's timer.
      ['parts past the group', `for (let i = 0; i < 500; i++) ${part('i')}`, 2],
    ];
    for (const [what, attack, answered] of cases)
      test(`${what}: its process is killed and replaced, the jobs answered before stand`, {
        timeout: 60_000,
      }, async () => {
        const dir = await tempDir('unc-sandbox-parts-');
        const sandbox = new JobSandbox({
          workers: 1,
          executionProvider: 'cpu',
          ocr: DEFAULT_OCR_MODELS,
          timeoutMs: 20_000,
          memoryBytes: 4 * 1024 ** 3,
          heapMb: 512,
          maxSessions: 4,
          maxOutputBytes: 1024,
          runner: hostileRunner(dir.path, 'parts', attack),
          isolation,
          logger: silentLogger,
        });
        try {
          await sandbox.start();
          const settled = await sandbox.ocrMany('r', [new Uint8Array(8), new Uint8Array(8)]);
          assert.equal(settled.length, 2, 'one answer per job of the group, no more');
          assert.deepEqual(
            settled.map((s) => s.ok),
            [true, answered === 2],
          );
          if (answered === 1) {
            const failed = settled[1] as { ok: false; error: Error & { code?: string } };
            assert.equal(failed.error.code, 'JOB_FLOOD');
            assert.match(failed.error.message, /a part numbered 0 where 1 of 2 was due/);
          }
          // The replacement's spawn is waited for, not assumed within a fixed 200 ms.
          await respawned(sandbox, 2);
          assert.equal(sandbox.spawned, 2, 'the process that sent them was replaced');
        } finally {
          await sandbox.stop();
          await dir.remove();
        }
      });
  });

describe("counting a job process's channel reads (Node's inside, kChannelHandle)", () => {
  const kChannelHandle = Symbol('kChannelHandle');
  const counted: number[] = [];
  const count = (bytes: number) => {
    counted.push(bytes);
    return bytes < 100;
  };

  test('a handle kept where Node 20 keeps it: each read counted, a refused one not passed on', () => {
    const passed: number[] = [];
    const handle = { onread: (ab: ArrayBuffer) => passed.push(ab.byteLength) };
    assert.equal(countChannelReads({ [kChannelHandle]: handle }, count), true);
    handle.onread(new ArrayBuffer(10));
    handle.onread(new ArrayBuffer(200));
    assert.deepEqual(passed, [10]);
  });

  // Before, a read-only onread threw from spawn (strict code): no job process could start.
  for (const [what, child] of [
    ['no such symbol', { channel: {} }],
    ['no handle under it', { [kChannelHandle]: null }],
    ['a handle without onread', { [kChannelHandle]: {} }],
    [
      'an onread that cannot be written',
      { [kChannelHandle]: Object.defineProperty({}, 'onread', { value: () => 0, writable: false }) },
    ],
    [
      'an onread with a getter only',
      {
        [kChannelHandle]: {
          get onread() {
            return () => 0;
          },
        },
      },
    ],
    [
      'a setter that ignores it',
      {
        [kChannelHandle]: {
          get onread() {
            return () => 0;
          },
          set onread(_f: unknown) {},
        },
      },
    ],
    [
      'a getter that throws',
      {
        [kChannelHandle]: {
          get onread(): unknown {
            throw new Error('moved');
          },
        },
      },
    ],
  ] as [string, object][])
    test(`${what}: nothing hooked, nothing thrown`, () => {
      assert.equal(countChannelReads(child, count), false);
    });
});

// Cut at 1,000 characters each, a log message with 16 long fields (1,000 + 16 × 2,000) passed the
// provider's 8 KiB: an honest job process logging it was killed (JOB_FLOOD).
test('whatever a job process logs, as it sends it, is within what the provider takes', () => {
  const value = fc.oneof(
    fc.string({ maxLength: 3000 }),
    fc.integer(),
    fc.boolean(),
    fc.constant(null),
    fc.constant({ deep: [1, 2] }),
  );
  fc.assert(
    fc.property(
      fc.string({ maxLength: 3000 }),
      fc.option(fc.dictionary(fc.string({ maxLength: 2000 }), value, { maxKeys: 40 }), { nil: undefined }),
      (msg, fields) => {
        const m = clippedLog('info', msg, fields);
        assert.ok(logSize(m) <= DEFAULT_MESSAGE_LIMITS.maxLogBytes, `${logSize(m)} bytes`);
        assert.ok(Object.keys(m.fields ?? {}).length <= 16);
        for (const v of Object.values(m.fields ?? {}))
          assert.ok(v === null || ['string', 'number', 'boolean'].includes(typeof v));
      },
    ),
    { numRuns: 300 },
  );
  const wide = Object.fromEntries(
    Array.from({ length: 16 }, (_, i) => [`${i}`.repeat(2000), 'v'.repeat(2000)]),
  );
  assert.ok(logSize(clippedLog('warn', 'm'.repeat(2000), wide)) <= DEFAULT_MESSAGE_LIMITS.maxLogBytes);
});

/** A log message's size in UTF-8 bytes, counted here (not with logSize, which is what is tested). */
function utf8Size(m: { msg: string; fields?: Record<string, unknown> }): number {
  let n = Buffer.from(m.msg, 'utf8').length;
  for (const [k, v] of Object.entries(m.fields ?? {}))
    n += Buffer.from(k, 'utf8').length + (typeof v === 'string' ? Buffer.from(v, 'utf8').length : 8);
  return n;
}

/** Text of 1-, 2-, 3- and 4-byte characters. */
const mixedText = (maxLength: number) =>
  fc.string({ unit: fc.constantFrom('a', 'é', '中', '😀'), maxLength });

// Counted in UTF-16 code units, a message of emoji or CJK text went out at two or three times the
// provider's limit in bytes; cut inside a character, a cut left a replacement character.
test('log messages are measured and cut in UTF-8 bytes, on character boundaries, within any limit', () => {
  fc.assert(
    fc.property(
      mixedText(3000),
      fc.option(fc.dictionary(mixedText(60), fc.oneof(mixedText(1000), fc.integer()), { maxKeys: 20 }), {
        nil: undefined,
      }),
      fc.integer({ min: 0, max: 2 * DEFAULT_MESSAGE_LIMITS.maxLogBytes }),
      (msg, fields, limit) => {
        assert.equal(
          logSize({ msg, ...(fields ? { fields } : {}) }),
          utf8Size({ msg, ...(fields ? { fields } : {}) }),
        );
        const m = clippedLog('warn', msg, fields);
        assert.ok(utf8Size(m) <= DEFAULT_MESSAGE_LIMITS.maxLogBytes, `${utf8Size(m)} bytes`);
        const low = clippedLog('warn', msg, fields, limit);
        assert.ok(utf8Size(low) <= limit, `${utf8Size(low)} bytes over a limit of ${limit}`);
        for (const text of [m.msg, low.msg]) {
          assert.ok(!text.includes('\uFFFD'), 'no character cut in half');
          const kept = text.endsWith('…') && !msg.startsWith(text) ? text.slice(0, -1) : text;
          assert.ok(msg.startsWith(kept), 'the text is a prefix of what was logged');
        }
      },
    ),
    { numRuns: 300 },
  );
  assert.equal(clipUtf8('😀😀', 8), '😀😀');
  assert.equal(clipUtf8('😀😀', 7), '😀…');
  assert.equal(clipUtf8('😀😀', 6), '…');
  assert.equal(Buffer.byteLength(clipUtf8('中'.repeat(1000), 1000)), 999);
});

// An honest job process (its log messages through the LogGate the real one uses) that logs as
// much as it can, in multi-byte text, is never killed: what it sends is counted as the provider counts.
test('a job process that logs without end through its log gate is not killed', {
  timeout: 60_000,
}, async () => {
  const dir = await tempDir('unc-sandbox-gate-');
  const protocol = pathToFileURL(
    join(dirname(fileURLToPath(import.meta.url)), '../src/provider/sandbox-protocol.js'),
  ).href;
  const file = join(dir.path, 'gated.mjs');
  writeFileSync(
    file,
    `import { LogGate } from ${JSON.stringify(protocol)};
     const gate = new LogGate();
     const wide = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [i + '名'.repeat(40), '😀'.repeat(500)]));
     process.on('message', (req) => {
       gate.newRequest();
       if (req.op === 'init') {
         gate.setLimits(req.logLimits);
         return process.send({ id: req.id, ok: true, result: { executionProvider: 'cpu' } });
       }
       let sent = 0;
       for (let i = 0; i < 500; i++) {
         const m = gate.admit('warn', '中'.repeat(5000), i % 2 ? wide : { i });
         if (m) { process.send(m); sent++; }
       }
       process.send({ id: req.id, ok: true, result: [sent] });
     });
     process.on('disconnect', () => process.exit(0));`,
  );
  let logged = 0;
  const sandbox = new JobSandbox({
    workers: 1,
    executionProvider: 'cpu',
    ocr: DEFAULT_OCR_MODELS,
    timeoutMs: 20_000,
    memoryBytes: 4 * 1024 ** 3,
    heapMb: 512,
    maxSessions: 4,
    maxOutputBytes: 1024,
    runner: file,
    logger: { ...silentLogger, warn: () => logged++ },
  });
  try {
    await sandbox.start();
    for (let i = 0; i < 3; i++) {
      const [sent] = (await sandbox.ocr('r', new Uint8Array(8))) as unknown as number[];
      assert.ok(sent! > 0, 'some of its messages went out');
      await new Promise((r) => setTimeout(r, 300));
    }
    assert.equal(sandbox.spawned, 1, 'the process was never killed');
    assert.ok(logged > 0);
  } finally {
    await sandbox.stop();
    await dir.remove();
  }
});

// The job process runs the renter's model: its stamps are its word. A CPU time below zero or past
// what every core gives in the run's time was taken as sent and moved bench:jobs' CPU ratios.
test('a job process’s CPU time is taken only within what the machine could spend in the run', () => {
  const cpuOf = (cpuMs: number) => {
    const clock = new StageClock(0);
    clock.markSandbox({ sent: 1, job: { received: 2, done: 12, cpuMs }, answered: 13 }, 'wait', 'run');
    return clock.jobCpuMs;
  };
  assert.equal(cpuOf(7.5), 7.5);
  assert.equal(cpuOf(0), 0);
  assert.equal(cpuOf(-5), null);
  assert.equal(cpuOf(1e12), null);
  assert.equal(cpuOf(10 * availableParallelism() + 2), null);
});

// The provider counts a request's log bytes from when it sends the request; a job process's gate
// from when it receives it. What is logged between an answer and the next request may reach the
// provider after it sent the next one: counted there by the provider, and not by the gate, the
// next request could log its whole budget on top, and the provider killed an honest job process.
test('what a job process logs between requests counts against the next request’s budget too', () => {
  const gate = new LogGate(() => 0);
  gate.setLimits({ maxLogBytes: 400, maxLogBytesPerJob: 1000, maxLogsPerSecond: 1000, maxLogBurst: 2000 });
  const line = 'a'.repeat(300);
  /** Bytes let out by logging `line` until the gate refuses. */
  const drain = () => {
    let n = 0;
    while (gate.admit('info', line)) n += 300;
    return n;
  };
  gate.newRequest();
  assert.equal(drain(), 900);
  gate.answered();
  // After the answer: nothing more fits in the answered request's budget either.
  assert.equal(gate.admit('info', line), null);
  gate.newRequest();
  assert.ok(gate.admit('info', line));
  gate.answered();
  const idle = gate.admit('info', line) ? 300 : 0;
  assert.equal(idle, 300);
  gate.newRequest();
  // However the provider splits them, no request counts more than its budget.
  assert.ok(idle + drain() <= 1000);
  // Before the first request (loading, init): counted in it.
  const fresh = new LogGate(() => 0);
  fresh.setLimits({ maxLogBytes: 400, maxLogBytesPerJob: 1000, maxLogsPerSecond: 1000, maxLogBurst: 2000 });
  assert.ok(fresh.admit('info', line));
  fresh.newRequest();
  let after = 0;
  while (fresh.admit('info', line)) after += 300;
  assert.ok(300 + after <= 1000, `${300 + after} bytes in the first request`);
});
