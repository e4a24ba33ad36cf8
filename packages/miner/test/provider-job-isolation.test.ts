/**
 * The job processes' OS sandbox (job-isolation.ts): under bwrap a job process, which runs the
 * renter's model, sees none of the provider's files but what it needs and has no network, while
 * models, OCR and the time and memory limits work as without it. Each case that shows something
 * out of reach also shows it within reach of the same job process without isolation, so the
 * sandbox, not the case, is what keeps it out.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { silentLogger } from '@unc/node';
import { DEFAULT_OCR_MODELS, JobSandbox } from '../src/index.js';
import { processLives } from '../src/process-identity.js';
import {
  bwrapArgs,
  findBwrap,
  JobIsolationError,
  type JobIsolationMode,
  probeBwrap,
  probeBwrapAt,
  resolveJobIsolation,
} from '../src/provider/job-isolation.js';
import { expandModel, loopModel } from './fixtures/attack-models.js';
import { affineModel } from './fixtures/make-fixtures.js';
import { NEED_BWRAP, tempDir } from './helpers.js';
import { fixture, OCR_SAMPLE_TEXT } from './provider-helpers.js';

const f32 = (xs: number[]) => new Uint8Array(new Float32Array(xs).buffer);

function sandboxOf(
  isolation: JobIsolationMode,
  extra: Partial<ConstructorParameters<typeof JobSandbox>[0]> = {},
): JobSandbox {
  return new JobSandbox({
    workers: 1,
    executionProvider: 'cpu',
    ocr: DEFAULT_OCR_MODELS,
    timeoutMs: 20_000,
    memoryBytes: 4 * 1024 ** 3,
    heapMb: 512,
    maxSessions: 4,
    maxOutputBytes: 1024 * 1024,
    logger: silentLogger,
    isolation,
    ...extra,
  });
}

type Inner = { pid: number; started: string | undefined }[];
const innerOf = (sandbox: JobSandbox): Inner =>
  (sandbox as unknown as { workers: { inner: Inner }[] }).workers[0]!.inner;

describe('job isolation: what a job process reaches', { skip: NEED_BWRAP }, () => {
  let dir: { path: string; remove(): Promise<void> };
  /** The provider's "home": a keyring file and a model outside the model store. */
  let secret: string;
  let strayModel: string;
  let models: string;
  let server: Server;
  let port: number;
  let connections = 0;

  before(async () => {
    dir = await tempDir('unc-jobiso-');
    mkdirSync(join(dir.path, 'home', '.unc', 'keyring'), { recursive: true });
    secret = join(dir.path, 'home', '.unc', 'keyring', 'owner.json');
    writeFileSync(secret, '{"seed":"the provider\'s key"}\n');
    strayModel = join(dir.path, 'home', '.unc', 'stray.onnx');
    writeFileSync(strayModel, affineModel());
    models = join(dir.path, 'models');
    mkdirSync(models);
    writeFileSync(join(models, 'affine.onnx'), affineModel());
    server = createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
  });
  after(async () => {
    await new Promise((r) => server.close(r));
    await dir.remove();
  });

  /**
   * A job process (test-only, not the runner) that on its job reads the provider's key file,
   * lists /etc and connects to a port of this machine, and answers what it got.
   */
  function probingRunner(): string {
    const file = join(dir.path, 'probe-runner.mjs');
    writeFileSync(
      file,
      `import { spawnSync } from 'node:child_process';
       import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
       import { connect } from 'node:net';
       const tryIt = (f) => { try { return { ok: true, value: f() }; } catch (e) { return { ok: false, code: e.code }; } };
       process.on('message', async (req) => {
         if (req.op === 'init') return process.send({ id: req.id, ok: true, result: { executionProvider: 'cpu' } });
         const key = tryIt(() => readFileSync(${JSON.stringify(secret)}, 'utf8'));
         const etc = tryIt(() => readdirSync('/etc'));
         const net = await new Promise((resolve) => {
           const s = connect(${port}, '127.0.0.1');
           s.on('connect', () => { s.destroy(); resolve({ ok: true }); });
           s.on('error', (e) => resolve({ ok: false, code: e.code }));
         });
         const userns = spawnSync('/usr/bin/unshare', ['-U', 'true']).status;
         // Writes are tried only where /etc shows the sandbox's view: outside it they would leave
         // files in this machine's /, /tmp and /dev/shm.
         const sandboxed = etc.ok && etc.value.length === 1 && etc.value[0] === 'ld.so.cache';
         const writes = sandboxed ? Object.fromEntries(['/tmp-file', '/dev/shm/file', '/tmp/file', 'own-file'].map((f) => [f, tryIt(() => (writeFileSync(f, 'x'.repeat(1024)), 'written'))])) : {};
         process.send({ id: req.id, ok: true, result: { key, etc, net, env: Object.keys(process.env), writes, userns } });
       });
       process.on('disconnect', () => process.exit(0));`,
    );
    return file;
  }

  type Probe = {
    key: { ok: boolean; value?: string; code?: string };
    etc: { ok: boolean; value?: string[] };
    net: { ok: boolean; code?: string };
    env: string[];
    writes: Record<string, { ok: boolean; value?: string; code?: string }>;
    /** The exit status of `unshare -U true` (null: no such program). */
    userns: number | null;
  };

  async function probe(isolation: JobIsolationMode): Promise<Probe> {
    const sandbox = sandboxOf(isolation, { runner: probingRunner() });
    await sandbox.start();
    try {
      return (await sandbox.ocr('r', new Uint8Array(1))) as unknown as Probe;
    } finally {
      await sandbox.stop();
    }
  }

  test("under bwrap a job process reads none of the provider's files and connects nowhere", {
    timeout: 60_000,
  }, async () => {
    const before = connections;
    const inside = await probe('bwrap');
    assert.deepEqual(inside.key, { ok: false, code: 'ENOENT' });
    // /etc holds the loader's cache only: no passwd, no hosts, no TLS keys.
    assert.deepEqual(inside.etc, { ok: true, value: ['ld.so.cache'] });
    assert.equal(inside.net.ok, false, 'a connection from inside the sandbox');
    assert.equal(connections, before, 'the port of this machine was reached from inside');
    // Its sandbox's root and /dev are tmpfs: written there, memory its resident set does not show
    // (outside its memory limit). Only its job folder (its working directory) takes files.
    assert.deepEqual(inside.writes, {
      '/tmp-file': { ok: false, code: 'EROFS' },
      '/dev/shm/file': { ok: false, code: 'EROFS' },
      '/tmp/file': { ok: false, code: 'EROFS' },
      'own-file': { ok: true, value: 'written' },
    });
    // No user namespace of its own (the capabilities in one open most of the kernel), where this
    // bwrap can keep them out (0.8 on); before, `unshare -U` worked inside.
    const strict = await probeBwrap();
    if ('disableUserns' in strict && strict.disableUserns && existsSync('/usr/bin/unshare'))
      assert.notEqual(inside.userns, 0, 'a user namespace was made inside the sandbox');
    // The same job process without isolation reaches both: the sandbox is what keeps them out.
    const outside = await probe('none');
    assert.deepEqual(outside.writes, {}, 'the probe wrote outside a sandbox');
    assert.equal(outside.key.ok, true);
    assert.equal(outside.net.ok, true);
    assert.equal(connections, before + 1);
  });

  test('the real job process runs a model the provider sends, from a folder not in its view', {
    timeout: 90_000,
  }, async () => {
    // No model folder shown: the provider reads the model and sends its bytes.
    const sandbox = sandboxOf('bwrap');
    await sandbox.start();
    try {
      assert.equal(sandbox.isolation, 'bwrap');
      // A model in the provider's home: the provider reads it (it chooses the path), the job
      // process gets the bytes.
      await sandbox.check('r', 'a'.repeat(64), strayModel);
      const out = await sandbox.run('r', 'b'.repeat(64), join(models, 'affine.onnx'), [
        { name: 'x', type: 'float32', dims: [1n, 4n], data: f32([1, 2, 3, 4]) },
      ]);
      assert.equal(out.length, 1);
      assert.deepEqual(out[0]!.dims, [1n, 2n]);
      // OCR runs inside too (its model files are shown read-only).
      const lines = await sandbox.ocr('r', fixture('ocr-sample.png'));
      assert.ok(
        lines.some((l) => l.text.includes(OCR_SAMPLE_TEXT)),
        JSON.stringify(lines),
      );
    } finally {
      await sandbox.stop();
    }
  });

  test('a job past its time limit is killed, and its whole sandbox with it', {
    timeout: 90_000,
  }, async () => {
    const loop = join(models, 'loop.onnx');
    writeFileSync(loop, loopModel());
    const sandbox = sandboxOf('bwrap', { readOnlyPaths: [models], timeoutMs: 2_000 });
    await sandbox.start();
    try {
      const inner = innerOf(sandbox);
      assert.ok(inner.length > 0, 'the job process inside the sandbox was found');
      const x = [{ name: 'x', type: 'float32' as const, dims: [1n], data: new Uint8Array(4) }];
      await assert.rejects(sandbox.run('r', 'c'.repeat(64), loop, x), (e: Error & { code?: string }) => {
        return e.code === 'JOB_TIMEOUT';
      });
      const deadline = Date.now() + 10_000;
      const alive = () =>
        inner.filter((p) => processLives({ pid: p.pid, ...(p.started ? { started: p.started } : {}) }));
      while (alive().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(alive(), [], 'a process of the killed sandbox lives on');
    } finally {
      await sandbox.stop();
    }
  });

  test('a pool stopped while its sandboxes start leaves no process behind', { timeout: 90_000 }, async () => {
    // Its own model store: the sandboxes' command lines name it, whatever they are at.
    const marker = join(dir.path, 'models-stop');
    mkdirSync(marker);
    const left = () =>
      readdirSync('/proc').filter((n) => {
        if (!/^\d+$/.test(n)) return false;
        try {
          return readFileSync(`/proc/${n}/cmdline`, 'latin1').includes(marker);
        } catch {
          return false;
        }
      });
    for (let round = 0; round < 3; round++) {
      const sandbox = sandboxOf('bwrap', { readOnlyPaths: [marker], workers: 4 });
      await sandbox.start();
      // The other three are starting now: bwrap killed before its sandbox is set up left its first
      // process waiting for it for good.
      await sandbox.stop();
    }
    const deadline = Date.now() + 10_000;
    while (left().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(left(), [], 'processes of a stopped pool still run');
  });

  /**
   * A provider (a test-only program: a pool of the real job process) started with a descriptor it
   * inherited without close-on-exec, fd 200 on the provider's key file, as a shell or service
   * manager may hand one on; it prints its job process's pid (and the sandbox's processes).
   */
  async function startProvider(isolation: JobIsolationMode): Promise<{
    provider: ChildProcess;
    shown: { bwrap: number; inner: { pid: number; started: string | undefined }[] };
  }> {
    const src = new URL('../src/index.js', import.meta.url).href;
    const script = join(dir.path, 'provider.mjs');
    writeFileSync(
      script,
      `import { DEFAULT_OCR_MODELS, JobSandbox } from ${JSON.stringify(src)};
       const sandbox = new JobSandbox({ workers: 1, executionProvider: 'cpu', ocr: DEFAULT_OCR_MODELS,
         timeoutMs: 20_000, memoryBytes: 4 * 1024 ** 3, heapMb: 512, maxSessions: 4, maxOutputBytes: 1024,
         isolation: process.argv[2], logger: { debug() {}, info() {}, warn() {}, error() {} } });
       await sandbox.start();
       const w = sandbox.workers[0];
       console.log(JSON.stringify({ bwrap: w.child.pid, inner: w.inner }));
       setInterval(() => undefined, 1_000);`,
    );
    // fd 200: Node marks the first descriptors it inherits close-on-exec (libuv's
    // uv_disable_stdio_inheritance: 0-15, and on to the first gap), not one above a gap.
    const provider = spawn(
      'bash',
      ['-c', 'exec 200<"$0"; exec "$1" "$2" "$3"', secret, process.execPath, script, isolation],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      provider.stdout!.on('data', (c: Buffer) => {
        out += c.toString('utf8');
        if (out.includes('\n')) resolve(out.split('\n')[0]!);
      });
      provider.on('exit', (code) =>
        reject(new Error(`the provider ended (${code}) before its pool started`)),
      );
    });
    return { provider, shown: JSON.parse(line) };
  }

  const fdTargets = (pid: number): string[] => {
    try {
      return readdirSync(`/proc/${pid}/fd`).map((fd) => {
        try {
          return readlinkSync(`/proc/${pid}/fd/${fd}`);
        } catch {
          return '';
        }
      });
    } catch {
      return [];
    }
  };

  for (const isolation of ['none', 'bwrap'] as const)
    test(`a descriptor the provider inherited never reaches a job process (isolation ${isolation}); a provider killed with SIGKILL leaves none running`, {
      timeout: 90_000,
    }, async () => {
      const { provider, shown } = await startProvider(isolation);
      try {
        assert.ok(fdTargets(provider.pid!).includes(secret), "the provider holds the key file's descriptor");
        const jobs = isolation === 'none' ? [{ pid: shown.bwrap, started: undefined }] : shown.inner;
        assert.ok(jobs.length > 0);
        // Before: fd 200 was the job process's too, bwrap or not (bwrap closes none it passes on).
        for (const p of jobs)
          assert.ok(!fdTargets(p.pid).includes(secret), `process ${p.pid} holds the key file`);
      } finally {
        provider.kill('SIGKILL');
      }
      // Killed without a word, the provider leaves no job process nor sandbox process running.
      const all = [{ pid: shown.bwrap, started: undefined as string | undefined }, ...shown.inner];
      const alive = () =>
        all.filter((p) => processLives({ pid: p.pid, ...(p.started ? { started: p.started } : {}) }));
      const deadline = Date.now() + 15_000;
      while (alive().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(alive(), [], "a process of the killed provider's pool lives on");
    });

  test('a process a job process forks inside its sandbox counts against its memory limit', {
    timeout: 90_000,
  }, async () => {
    // A job process taken over by a renter's model: on its job it starts a process of its own,
    // inside the sandbox, that takes 700 MiB, and stays small itself.
    const runner = join(dir.path, 'forker.mjs');
    writeFileSync(
      runner,
      `import { spawn } from 'node:child_process';
       process.on('message', (req) => {
         if (req.op === 'init') return process.send({ id: req.id, ok: true, result: { executionProvider: 'cpu' } });
         spawn(process.execPath, ['-e', 'globalThis.b = Buffer.alloc(700 * 2 ** 20, 1); setInterval(() => {}, 1e9)'], { stdio: 'ignore' });
       });`,
    );
    const sandbox = sandboxOf('bwrap', { runner, memoryBytes: 512 * 1024 ** 2, timeoutMs: 30_000 });
    await sandbox.start();
    try {
      // Before: only the processes found at its start were counted; it ran to its time limit.
      await assert.rejects(sandbox.ocr('r', new Uint8Array(1)), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'JOB_MEMORY');
        return true;
      });
    } finally {
      await sandbox.stop();
    }
  });

  test('a job process that forks without end inside its sandbox is killed with the whole sandbox', {
    timeout: 90_000,
  }, async () => {
    const runner = join(dir.path, 'bomb.mjs');
    writeFileSync(
      runner,
      `import { spawn } from 'node:child_process';
       process.on('message', (req) => {
         if (req.op === 'init') return process.send({ id: req.id, ok: true, result: { executionProvider: 'cpu' } });
         for (let i = 0; i < 200; i++) spawn('/usr/bin/sleep', ['1000'], { stdio: 'ignore' });
       });`,
    );
    const sandbox = sandboxOf('bwrap', { runner, timeoutMs: 30_000 });
    await sandbox.start();
    try {
      // Before: 200 processes inside, each small, the limit never reached; it ran to its time limit.
      await assert.rejects(sandbox.ocr('r', new Uint8Array(1)), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'JOB_MEMORY');
        return true;
      });
    } finally {
      await sandbox.stop();
    }
  });

  test('a bwrap that cannot size a tmpfs (no --size) fails the probe, not every job process start', {
    timeout: 60_000,
  }, async () => {
    const real = findBwrap();
    assert.ok(real);
    // Older bwrap (0.4 of Debian 11 and Ubuntu 20.04) lacks --size, which sizes a job folder.
    const old = join(dir.path, 'old-bwrap');
    writeFileSync(
      old,
      `#!/bin/sh\nfor a in "$@"; do [ "$a" = --size ] && { echo "bwrap: Unknown option --size" >&2; exit 1; }; done\nexec ${real} "$@"\n`,
      { mode: 0o755 },
    );
    // Before: its probe passed (it used no --size), auto chose it, and no job process started.
    const probe = await probeBwrapAt(old);
    assert.ok('error' in probe, 'a bwrap without --size passed the probe');
    assert.match(probe.error, /Unknown option --size/);
    assert.ok(!('error' in (await probeBwrapAt(real))), 'the real bwrap fails the probe');
  });

  test("a job past the memory limit is killed: the sandboxed process's memory is what counts", {
    timeout: 90_000,
  }, async () => {
    const big = join(models, 'expand.onnx');
    // 256 Mi floats: 1 GiB for the output alone.
    writeFileSync(big, expandModel(256 * 1024 * 1024));
    const sandbox = sandboxOf('bwrap', { readOnlyPaths: [models], memoryBytes: 768 * 1024 ** 2 });
    await sandbox.start();
    try {
      await assert.rejects(
        sandbox.run('r', 'd'.repeat(64), big, [{ name: 'x', type: 'float32', dims: [1n], data: f32([1]) }]),
        (e: Error & { code?: string }) => e.code === 'JOB_MEMORY',
      );
    } finally {
      await sandbox.stop();
    }
  });
});

describe('job isolation: settling the mode', () => {
  const works = async () => ({ bwrap: '/usr/bin/bwrap', disableUserns: true });
  const missing = async () => ({ error: 'bwrap is not installed' });

  test('none is none, with a warning; bwrap and auto take the sandbox where it works', async () => {
    const warnings: string[] = [];
    const warn = (m: string) => warnings.push(m);
    assert.deepEqual(await resolveJobIsolation('none', warn, missing), { isolation: 'none' });
    // `none` asked for still says what it gives up (forks escape the memory limit, no disk quota).
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /WITHOUT OS isolation.*memory limit.*disk quota/);
    warnings.length = 0;
    assert.deepEqual(await resolveJobIsolation('bwrap', warn, works), {
      isolation: 'bwrap',
      bwrap: '/usr/bin/bwrap',
      disableUserns: true,
    });
    assert.deepEqual(await resolveJobIsolation('auto', warn, works), {
      isolation: 'bwrap',
      bwrap: '/usr/bin/bwrap',
      disableUserns: true,
    });
    assert.deepEqual(warnings, []);
  });

  test('without a working bwrap: auto warns and runs without, bwrap refuses (JOB_ISOLATION_UNAVAILABLE)', async () => {
    const warnings: { msg: string; fields?: Record<string, unknown> }[] = [];
    const warn = (msg: string, fields?: Record<string, unknown>) =>
      warnings.push({ msg, ...(fields ? { fields } : {}) });
    assert.deepEqual(await resolveJobIsolation('auto', warn, missing), { isolation: 'none' });
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!.msg, /WITHOUT OS isolation/);
    assert.deepEqual(warnings[0]!.fields, { reason: 'bwrap is not installed' });
    await assert.rejects(
      resolveJobIsolation('bwrap', warn, missing),
      (e: Error) =>
        e instanceof JobIsolationError &&
        e.code === 'JOB_ISOLATION_UNAVAILABLE' &&
        /bwrap is not installed/.test(e.message),
    );
    await assert.rejects(
      resolveJobIsolation('sometimes' as JobIsolationMode, warn, works),
      (e: Error) => e instanceof JobIsolationError,
    );
  });

  test('bwrap is looked for on PATH only', () => {
    assert.equal(findBwrap(''), null);
    assert.equal(findBwrap('/nonexistent-dir'), null);
  });

  test("the sandbox's command: no network, no namespace shared, cleared environment, job folder the only writable bind", () => {
    const args = bwrapArgs({
      readOnly: [{ src: '/srv/models', dest: '/srv/models' }],
      writable: ['/tmp/unc-jobs-1-x/job-y'],
      cwd: '/tmp/unc-jobs-1-x/job-y',
      env: { A: 'b' },
      gpu: false,
      command: ['/usr/bin/node', 'runner.js'],
    });
    for (const flag of ['--unshare-all', '--die-with-parent', '--new-session', '--clearenv'])
      assert.ok(args.includes(flag), flag);
    assert.ok(!args.includes('--share-net'));
    const writable = args.flatMap((a, i) => (a === '--bind' || a === '--dev-bind' ? [args[i + 1]] : []));
    assert.deepEqual(writable, ['/tmp/unc-jobs-1-x/job-y']);
    const shown = args.flatMap((a, i) => (a === '--ro-bind' || a === '--bind' ? [args[i + 2]] : []));
    for (const d of shown) assert.ok(!/^\/(root|home|etc)(\/|$)/.test(d!), `${d} is shown`);
    assert.deepEqual(args.slice(args.indexOf('--')), ['--', '/usr/bin/node', 'runner.js']);
  });
});
