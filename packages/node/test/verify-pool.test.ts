import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ed25519PublicKey, ed25519Sign, ed25519Verify, sha256, utf8 } from '@unc/core';
import fc from 'fast-check';
import {
  DEFAULT_VERIFY_POOL_OPTIONS,
  defaultVerifyThreads,
  MAX_DEFAULT_VERIFY_THREADS,
  MAX_VERIFY_THREADS,
  type PackedBatch,
  packBatch,
  parseVerifyConfig,
  SharedSlabs,
  type SignatureCheck,
  shardOfKey,
  unpackBatch,
  VerifyPool,
  VerifyPoolBusy,
  VerifyPoolClosed,
  type VerifyPoolOptions,
  verifyClaimed,
  verifyThreadsSetting,
  WorkerBacklog,
  type WorkerBatch,
  workersCanSitBelowMain,
} from '../src/verify-pool.js';

/** The default's count on `cores` cores, capped (defaultVerifyThreads). */
const capped = (n: number) => Math.min(MAX_DEFAULT_VERIFY_THREADS, Math.max(1, n));

const seed = sha256(utf8('verify pool test key'));
const publicKey = ed25519PublicKey(seed);

function check(i: number, valid: boolean): SignatureCheck {
  const message = utf8(`message ${i}`);
  const signature = ed25519Sign(seed, message);
  if (!valid) signature[i % 64] ^= 1;
  return { publicKey, message, signature };
}

/** Chips' keys: a block's answers are under many keys, which the pool spreads over its workers. */
/** One worker holding one batch of 16 at a time: the set-up of the calling thread's share tests. */
function oneWorkerPool(opts: Partial<VerifyPoolOptions>): VerifyPool {
  return new VerifyPool({ threads: 1, batchSize: 16, depth: 1, admissionDepth: 1, ...opts });
}

const chipSeeds = Array.from({ length: 24 }, (_, k) => sha256(utf8(`verify pool chip ${k}`)));
const chipKeys = chipSeeds.map((s) => ed25519PublicKey(s));

/** Check i under chip k's key: valid, its signature altered, or signed by another chip. */
function chipCheck(k: number, i: number, how: 'valid' | 'forged' | 'other key'): SignatureCheck {
  const message = utf8(`answer ${i}`);
  const signer = how === 'other key' ? chipSeeds[(k + 1) % chipSeeds.length]! : chipSeeds[k]!;
  const signature = ed25519Sign(signer, message);
  if (how === 'forged') signature[i % 64] ^= 1 << (i % 8);
  return { publicKey: chipKeys[k]!, message, signature };
}

type Internals = { slots: { inFlight: { chunk: { batch: PackedBatch } }[] }[]; salt: number };

describe('VerifyPool', () => {
  const pool = new VerifyPool({ threads: 2, batchSize: 16 });
  after(() => pool.close());

  test('answers exactly what ed25519Verify answers, in order, across batches and threads', async () => {
    const checks = Array.from({ length: 100 }, (_, i) => check(i, i % 7 !== 3));
    const got = await pool.verify(checks);
    assert.deepEqual(
      got,
      checks.map((c) => ed25519Verify(c.publicKey, c.message, c.signature)),
    );
    assert.equal(got.filter((x) => !x).length, 14);
    assert.equal(pool.queued('admission'), 0);
  });

  test("a call smaller than a batch is still split over every worker (a block's answers use every core)", async () => {
    const wide = new VerifyPool({ threads: 2, batchSize: 128 });
    try {
      const checks = Array.from({ length: 40 }, (_, i) => chipCheck(i % chipKeys.length, i, 'valid'));
      const answer = wide.verify(checks, 'consensus');
      // Dispatch is synchronous: both workers hold their even share of the call before it
      // returns, each the checks under the keys sharded to it as far as its share goes.
      const { slots, salt } = wide as unknown as Internals;
      assert.deepEqual(
        slots.map((s) => (s.inFlight[0]?.chunk.batch.offsets.length ?? 0) / 4),
        [20, 20],
      );
      const sharded = [0, 1].map((w) => checks.filter((c) => shardOfKey(c.publicKey, salt, 2) === w).length);
      const atTheirShard = slots
        .map((s, w) =>
          unpackBatch(s.inFlight[0]!.chunk.batch as PackedBatch).filter(
            (c) => shardOfKey(c.publicKey, salt, 2) === w,
          ),
        )
        .reduce((n, mine) => n + mine.length, 0);
      assert.equal(atTheirShard, Math.min(sharded[0]!, 20) + Math.min(sharded[1]!, 20));
      assert.deepEqual(await answer, Array(40).fill(true));
    } finally {
      await wide.close();
    }
  });

  test("a block's checks all under one key (one account's many transactions) still use every worker", async () => {
    // A proposer can fill a block with its own transactions, all signed with one key: sharded by
    // key alone they all went to one worker, and the block's pre-check ran on one core.
    const wide = new VerifyPool({ threads: 3, batchSize: 128 });
    try {
      const checks = Array.from({ length: 60 }, (_, i) => check(i, i !== 41));
      const answer = wide.verify(checks, 'consensus');
      const { slots } = wide as unknown as Internals;
      assert.deepEqual(
        slots.map((s) => (s.inFlight[0]?.chunk.batch.offsets.length ?? 0) / 4),
        [20, 20, 20],
      );
      assert.deepEqual(
        await answer,
        checks.map((_, i) => i !== 41),
      );
    } finally {
      await wide.close();
    }
  });

  test('a worker with nothing of its own takes block checks queued on another before it idles', async () => {
    const wide = new VerifyPool({ threads: 2, batchSize: 128 });
    try {
      // Two calls of one check under the same key: both are sharded to the same worker.
      const first = wide.verify([check(1, true)], 'consensus');
      const second = wide.verify([check(2, false)], 'consensus');
      const { slots } = wide as unknown as Internals;
      assert.deepEqual(
        slots.map((s) => (s.inFlight[0]?.chunk.batch.offsets.length ?? 0) / 4),
        [1, 1],
      );
      assert.deepEqual([await first, await second], [[true], [false]]);
    } finally {
      await wide.close();
    }
  });

  test('admission calls of one transaction each go to whichever worker is idle, not all to the first', async () => {
    // An RPC client sends one transaction per call: each used to go to worker 0's queue while the
    // others idled.
    const wide = new VerifyPool({ threads: 3, batchSize: 128 });
    try {
      const answers = [0, 1, 2].map((i) => wide.verify([check(i, i !== 1)], 'admission'));
      const { slots } = wide as unknown as Internals;
      assert.deepEqual(
        slots.map((s) => (s.inFlight[0]?.chunk.batch.offsets.length ?? 0) / 4),
        [1, 1, 1],
      );
      assert.deepEqual(await Promise.all(answers), [[true], [false], [true]]);
      assert.equal(wide.queued('admission'), 0);
    } finally {
      await wide.close();
    }
  });

  test('a worker that dies with batches queued behind the one it checks: every caller gets every verdict once', async () => {
    const two = new VerifyPool({ threads: 2, batchSize: 4 });
    try {
      const checks = Array.from({ length: 40 }, (_, i) =>
        chipCheck(i % 5, i, i % 9 === 2 ? 'forged' : 'valid'),
      );
      const admission = Array.from({ length: 10 }, (_, i) => check(i, i % 4 !== 1));
      const pending = [two.verify(checks, 'consensus'), two.verify(admission, 'admission')];
      await (
        two as unknown as { slots: { worker: { terminate(): Promise<number> } }[] }
      ).slots[0]!.worker.terminate();
      const [gotConsensus, gotAdmission] = await Promise.all(pending);
      assert.deepEqual(
        gotConsensus,
        checks.map((c) => ed25519Verify(c.publicKey, c.message, c.signature)),
      );
      assert.deepEqual(
        gotAdmission,
        admission.map((_, i) => i % 4 !== 1),
      );
      assert.equal(two.queued('consensus'), 0);
      assert.equal(two.queued('admission'), 0);
    } finally {
      await two.close();
    }
  });

  test("admission checks are split evenly over the workers: one account's many transactions (one key) use every core", async () => {
    const wide = new VerifyPool({ threads: 2, batchSize: 128 });
    try {
      const checks = Array.from({ length: 40 }, (_, i) => check(i, true));
      const answer = wide.verify(checks, 'admission');
      const { slots } = wide as unknown as Internals;
      assert.deepEqual(
        slots.map((s) => (s.inFlight[0]?.chunk.batch.offsets.length ?? 0) / 4),
        [20, 20],
      );
      assert.deepEqual(await answer, Array(40).fill(true));
    } finally {
      await wide.close();
    }
  });

  test("a key's checks always go to the same worker (its key cache hits); keys spread over all of them", () => {
    for (const salt of [0, 1, 0x9e3779b9, 0xffffffff]) {
      for (const shards of [2, 3, 15]) {
        const counts = new Array<number>(shards).fill(0);
        for (let k = 0; k < 3000; k++) {
          const key = sha256(utf8(`shard ${k}`));
          const w = shardOfKey(key, salt, shards);
          assert.equal(shardOfKey(Uint8Array.from(key), salt, shards), w);
          assert.ok(w >= 0 && w < shards && Number.isInteger(w));
          counts[w]!++;
        }
        // Random keys spread evenly (each worker within a third of its fair share).
        for (const n of counts) assert.ok(Math.abs(n - 3000 / shards) < 1000 / shards, `${counts}`);
      }
    }
    // Another salt sends the same keys elsewhere: nobody outside the pool can pick keys that all
    // land on one worker.
    const keys = Array.from({ length: 64 }, (_, k) => sha256(utf8(`salted ${k}`)));
    assert.notDeepEqual(
      keys.map((k) => shardOfKey(k, 1, 2)),
      keys.map((k) => shardOfKey(k, 2, 2)),
    );
    assert.equal(shardOfKey(keys[0]!, 7, 1), 0);
  });

  test('property: sharded over workers, every verdict is what the main thread says (valid, forged, wrong key, malformed)', async () => {
    const three = new VerifyPool({ threads: 3, batchSize: 5 });
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.array(
            fc.record({
              k: fc.nat(chipKeys.length - 1),
              i: fc.nat(1000),
              how: fc.constantFrom(
                'valid',
                'forged',
                'other key',
                'short key',
                'non-canonical S',
              ) as fc.Arbitrary<'valid' | 'forged' | 'other key' | 'short key' | 'non-canonical S'>,
            }),
            { minLength: 1, maxLength: 60 },
          ),
          async (specs) => {
            const checks = specs.map(({ k, i, how }) => {
              if (how === 'short key') {
                const c = chipCheck(k, i, 'valid');
                return { ...c, publicKey: c.publicKey.subarray(0, 31) };
              }
              if (how === 'non-canonical S') {
                // S + L: the same point equation, refused by the encoding rules.
                const c = chipCheck(k, i, 'valid');
                const signature = Uint8Array.from(c.signature);
                signature[63] = (signature[63]! + 0x10) & 0xff;
                return { ...c, signature };
              }
              return chipCheck(k, i, how);
            });
            const got = await three.verify(checks, 'consensus');
            assert.deepEqual(
              got,
              checks.map((c) => ed25519Verify(c.publicKey, c.message, c.signature)),
            );
            assert.equal(three.queued('consensus'), 0);
          },
        ),
        { numRuns: 40 },
      );
    } finally {
      await three.close();
    }
  });

  test('property: many consensus calls in flight at once, packed side by side in shared slabs, the calling thread taking some of their checks (assist): each call gets exactly its own verdicts', async () => {
    const two = new VerifyPool({ threads: 2, batchSize: 3 });
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.array(
            fc.array(
              fc.record({
                k: fc.nat(chipKeys.length - 1),
                i: fc.nat(1000),
                how: fc.constantFrom('valid', 'forged', 'other key') as fc.Arbitrary<
                  'valid' | 'forged' | 'other key'
                >,
              }),
              { minLength: 1, maxLength: 7 },
            ),
            { minLength: 1, maxLength: 12 },
          ),
          fc.array(fc.boolean(), { minLength: 12, maxLength: 12 }),
          async (calls, assistAfter) => {
            const checks = calls.map((specs) => specs.map(({ k, i, how }) => chipCheck(k, i, how)));
            const pending: Promise<boolean[]>[] = [];
            checks.forEach((call, n) => {
              pending.push(two.verify(call, 'consensus'));
              // This thread takes what no worker has started yet, of every call so far.
              if (assistAfter[n]) two.assist(false, 4);
            });
            const got = await Promise.all(pending);
            assert.deepEqual(
              got,
              checks.map((call) => call.map((c) => ed25519Verify(c.publicKey, c.message, c.signature))),
            );
            assert.equal(two.queued('consensus'), 0);
            assert.equal(two.queuedBytes('consensus'), 0);
          },
        ),
        { numRuns: 40 },
      );
    } finally {
      await two.close();
    }
  });

  test('the bytes are taken when the call is made: a buffer changed afterwards does not change the verdict', async () => {
    const one = new VerifyPool({ threads: 1, batchSize: 4 });
    try {
      const checks = Array.from({ length: 12 }, (_, i) => chipCheck(i % 3, i, 'valid'));
      const expected = checks.map(() => true);
      // The first batch is in flight, the others queued: all were packed at the call.
      const pending = one.verify(checks, 'consensus');
      for (const c of checks) c.signature[0]! ^= 1;
      assert.deepEqual(await pending, expected);
    } finally {
      await one.close();
    }
  });

  test('a worker is handed its next batch before it answers the first (it never waits on the main thread)', async () => {
    const one = new VerifyPool({ threads: 1, batchSize: 4, depth: 2, admissionDepth: 2 });
    try {
      const checks = Array.from({ length: 12 }, (_, i) => check(i, i !== 5));
      const answer = one.verify(checks);
      const slot = (one as unknown as { slots: { inFlight: { chunk: { batch: PackedBatch } }[] }[] })
        .slots[0]!;
      assert.deepEqual(
        slot.inFlight.map((b) => b.chunk.batch.offsets.length / 4),
        [4, 4],
      );
      assert.deepEqual(
        await answer,
        checks.map((_, i) => i !== 5),
      );
      assert.equal(slot.inFlight.length, 0);
    } finally {
      await one.close();
    }
  });

  test('a worker that dies holding several batches loses none of them, and order is kept', async () => {
    const one = new VerifyPool({ threads: 1, batchSize: 5, depth: 3 });
    try {
      const checks = Array.from({ length: 30 }, (_, i) => check(i, i % 4 !== 1));
      const pending = one.verify(checks);
      await (
        one as unknown as { slots: { worker: { terminate(): Promise<number> } }[] }
      ).slots[0]!.worker.terminate();
      assert.deepEqual(
        await pending,
        checks.map((c) => ed25519Verify(c.publicKey, c.message, c.signature)),
      );
      assert.equal(one.queued('admission'), 0);
    } finally {
      await one.close();
    }
  });

  test('a depth or batch size that could never dispatch anything is refused when the pool is made, not left to hang every call', () => {
    assert.throws(() => new VerifyPool({ threads: 0, callerShare: -1 }), /callerShare must be an integer/);
    assert.throws(
      () => new VerifyPool({ threads: 0, callerBusyUnder: 1.5 }),
      /callerBusyUnder must be between 0 and 1/,
    );
    assert.throws(
      () => new VerifyPool({ threads: 0, callerIdleCores: -1 }),
      /callerIdleCores must be 0 or more/,
    );
    for (const bad of [
      { depth: 0 },
      { depth: 1.5 },
      { admissionDepth: 0 },
      { admissionBytes: 0 },
      { batchSize: 0 },
      { threads: -1 },
      // A lane left out of a bound (a partial config) would have had no bound at all.
      { maxQueuedBytes: { admission: 1 << 20 } as VerifyPoolOptions['maxQueuedBytes'] },
      { maxQueued: { consensus: 100 } as VerifyPoolOptions['maxQueued'] },
      { maxQueuedBytes: { consensus: Number.NaN, admission: 1 } },
    ]) {
      assert.throws(() => new VerifyPool({ threads: 1, ...bad }), /verify pool/, JSON.stringify(bad));
    }
  });

  test('a process without SharedArrayBuffer (--no-harmony-sharedarraybuffer) is told so when the pool is made, not on every call', () => {
    const module = new URL('../src/verify-pool.js', import.meta.url).href;
    const script = `
      const { VerifyPool } = await import(${JSON.stringify(module)});
      const inThread = new VerifyPool({ threads: 0 });
      await inThread.close();
      try {
        const pool = new VerifyPool({ threads: 1 });
        await pool.close();
        console.log('made');
      } catch (err) {
        console.log(String(err.message));
      }`;
    const run = spawnSync(
      process.execPath,
      ['--no-harmony-sharedarraybuffer', '--input-type=module', '-e', script],
      {
        encoding: 'utf8',
        timeout: 60_000,
      },
    );
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /SharedArrayBuffer/);
  });

  test('an option given as undefined (a config that leaves it out) takes its default', {
    timeout: 20_000,
  }, async () => {
    const one = new VerifyPool({ threads: 1, depth: undefined, batchSize: undefined });
    try {
      const checks = Array.from({ length: 6 }, (_, i) => check(i, i !== 2));
      assert.deepEqual(
        await one.verify(checks),
        checks.map((_, i) => i !== 2),
      );
    } finally {
      await one.close();
    }
  });

  test('the workers run below the main thread: each lowers its own priority to workerNice, the main thread keeps its own (Linux)', {
    skip: process.platform !== 'linux',
    timeout: 20_000,
  }, async () => {
    // Consensus runs on the main thread, admission's signature checks on the workers: under
    // saturation, sharing the CPU evenly left the main threads a small part of it (BENCHMARKS.md).
    const niceOf = (tid: string) => {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
    };
    const threadsAt = (nice: number) => readdirSync('/proc/self/task').filter((t) => niceOf(t) === nice);
    const mainNice = niceOf(String(process.pid));
    const pool = new VerifyPool({ threads: 2, workerNice: 7 });
    try {
      // Split over both workers: each has started and run its first batch.
      const checks = Array.from({ length: 8 }, (_, i) => check(i, i !== 5));
      assert.deepEqual(
        await pool.verify(checks, 'consensus'),
        checks.map((_, i) => i !== 5),
      );
      assert.equal(threadsAt(7).length, 2, 'both workers at nice 7');
      assert.equal(niceOf(String(process.pid)), mainNice, 'the main thread is left as it was');
    } finally {
      await pool.close();
    }
    const flat = new VerifyPool({ threads: 1, workerNice: 0 });
    try {
      await flat.verify([check(0, true)]);
      assert.equal(threadsAt(7).length, 0, 'workerNice 0 leaves the workers at the main thread’s priority');
    } finally {
      await flat.close();
    }
    for (const bad of [-1, 20, 2.5, Number.NaN])
      assert.throws(
        () => new VerifyPool({ threads: 0, workerNice: bad }),
        /workerNice must be a whole number from 0 to 19/,
      );
  });

  test('in a process already niced, the workers go workerNice below its main thread, never above it (Linux)', {
    skip: process.platform !== 'linux',
    timeout: 60_000,
  }, () => {
    // A node run at nice 12 (a service manager's Nice=, or started under nice): setting the
    // workers' nice to 7 outright raised them above the main thread where the process may (root,
    // CAP_SYS_NICE), and left them level with it where it may not.
    const module = new URL('../src/verify-pool.js', import.meta.url).href;
    const script = `
      import { readdirSync, readFileSync } from 'node:fs';
      const { VerifyPool } = await import(${JSON.stringify(module)});
      const niceOf = (tid) => {
        const stat = readFileSync('/proc/self/task/' + tid + '/stat', 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
      };
      const before = new Set(readdirSync('/proc/self/task'));
      const pool = new VerifyPool({ threads: 2, workerNice: 5, depth: 1 });
      const key = new Uint8Array(32), sig = new Uint8Array(64), msg = new Uint8Array(1);
      await pool.verify(Array.from({ length: 8 }, () => ({ publicKey: key, message: msg, signature: sig })), 'consensus');
      const niced = readdirSync('/proc/self/task').filter((t) => !before.has(t)).map(niceOf).filter((n) => n !== niceOf(process.pid));
      console.log(JSON.stringify({ main: niceOf(process.pid), workers: niced }));
      await pool.close();`;
    // Run from a file, as a node is: under -e this check saw no worker thread niced (cause not found).
    const dir = mkdtempSync(join(tmpdir(), 'unc-nice-'));
    const file = join(dir, 'niced.mjs');
    writeFileSync(file, script);
    const run = spawnSync('nice', ['-n', '12', process.execPath, file], {
      encoding: 'utf8',
      timeout: 50_000,
    });
    rmSync(dir, { recursive: true, force: true });
    assert.equal(run.status, 0, run.stderr);
    const { main, workers } = JSON.parse(run.stdout) as { main: number; workers: number[] };
    assert.equal(main, 12);
    assert.deepEqual(workers, [17, 17], 'each worker 5 below the main thread');
  });

  test('a key, message or signature that is a view into a larger buffer crosses intact', async () => {
    const c = check(1, true);
    const big = new Uint8Array(1000);
    big.set(c.signature, 500);
    const [ok] = await pool.verify([{ ...c, signature: big.subarray(500, 564) }]);
    assert.equal(ok, true);
  });

  test('property: the pool never disagrees with the main thread (malformed input included)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            i: fc.nat(1000),
            valid: fc.boolean(),
            short: fc.boolean(),
          }),
          { minLength: 1, maxLength: 40 },
        ),
        async (specs) => {
          const checks = specs.map(({ i, valid, short }) => {
            const c = check(i, valid);
            return short ? { ...c, signature: c.signature.subarray(0, 63) } : c;
          });
          const got = await pool.verify(checks, 'consensus');
          assert.deepEqual(
            got,
            checks.map((c) => ed25519Verify(c.publicKey, c.message, c.signature)),
          );
        },
      ),
      { numRuns: 30 },
    );
  });

  test('a lane that cannot take a whole call refuses it at once, queueing nothing', async () => {
    const small = new VerifyPool({ threads: 1, batchSize: 8, maxQueued: { consensus: 100, admission: 10 } });
    try {
      const first = small.verify(Array.from({ length: 8 }, (_, i) => check(i, true)));
      await assert.rejects(
        small.verify(Array.from({ length: 3 }, (_, i) => check(i, true))),
        (err: unknown) => err instanceof VerifyPoolBusy && err.lane === 'admission' && err.limit === 10,
      );
      assert.equal(small.queued('admission'), 8);
      // The consensus lane has its own bound: admission traffic cannot starve it.
      assert.deepEqual(await small.verify([check(1, true)], 'consensus'), [true]);
      assert.equal((await first).length, 8);
      assert.equal(small.queued('admission'), 0);
    } finally {
      await small.close();
    }
  });

  test('admission batches no worker has room for are checked on the calling thread too, a share per turn', async () => {
    // Whatever else runs on the machine (the load gates are tested below). The 200 signatures are
    // made before the pool: made after, they filled its first load window with this thread's own
    // work, which on a loaded machine took over the 100 ms window and (rightly) read as a thread
    // with no room for a share.
    const checks = Array.from({ length: 200 }, (_, i) => check(i, i % 9 !== 4));
    const one = oneWorkerPool({
      callerShare: 4,
      callerBusyUnder: 1,
      callerIdleCores: 0,
    });
    try {
      const pending = one.verify(checks, 'admission');
      // The pool's turn was scheduled first: when this runs, it has taken exactly one share.
      await new Promise((r) => setImmediate(r));
      assert.equal(one.checkedOnCaller, 4);
      assert.deepEqual(
        await pending,
        checks.map((c) => ed25519Verify(c.publicKey, c.message, c.signature)),
      );
      assert.ok(one.checkedOnCaller >= 4 && one.checkedOnCaller <= 200 - 16, `${one.checkedOnCaller}`);
      assert.equal(one.queued('admission'), 0);
      // Consensus checks stay with the workers (the block pre-check shares them its own way).
      const before = one.checkedOnCaller;
      const block = Array.from({ length: 100 }, (_, i) => check(i, i !== 7));
      assert.deepEqual(
        await one.verify(block, 'consensus'),
        block.map((_, i) => i !== 7),
      );
      assert.equal(one.checkedOnCaller, before);
    } finally {
      await one.close();
    }
    const none = new VerifyPool({ threads: 1, batchSize: 16, depth: 1, admissionDepth: 1, callerShare: 0 });
    try {
      const checks = Array.from({ length: 100 }, (_, i) => check(i, true));
      assert.ok((await none.verify(checks, 'admission')).every(Boolean));
      assert.equal(none.checkedOnCaller, 0);
    } finally {
      await none.close();
    }
  });

  test('a worker per core where the workers sit below the main thread, the cores but one elsewhere', async () => {
    // On 2 cores the one worker of "cores but one" was the bottleneck while the main thread idled a
    // third of the time; niced workers take that third and give the core back whenever the main
    // thread wants it. Un-niced ones would compete with it as equals.
    assert.equal(defaultVerifyThreads(2, true), 2);
    assert.equal(defaultVerifyThreads(16, true), 16);
    assert.equal(defaultVerifyThreads(2, false), 1);
    assert.equal(defaultVerifyThreads(1, false), 1);
    assert.equal(defaultVerifyThreads(1, true), 1);
    const cores = availableParallelism();
    // A worker per core here only where they sit a whole workerNice below this thread (Linux, not
    // already niced past 9, no CPU quota: workersCanSitBelowMain).
    assert.equal(DEFAULT_VERIFY_POOL_OPTIONS.threads, capped(workersCanSitBelowMain(10) ? cores : cores - 1));
    assert.equal(workersCanSitBelowMain(0), false, 'workers left level with the main thread');
    // Workers left at the main thread's priority: the main thread keeps its core, whatever the platform.
    const level = new VerifyPool({ workerNice: 0 });
    try {
      assert.equal(level.threads, capped(cores - 1));
    } finally {
      await level.close();
    }
  });

  test('the default is capped at MAX_DEFAULT_VERIFY_THREADS however many cores (a 64-core box got 64 workers)', () => {
    assert.equal(MAX_DEFAULT_VERIFY_THREADS, 16);
    assert.equal(defaultVerifyThreads(64, true), 16);
    assert.equal(defaultVerifyThreads(64, false), 16);
    assert.equal(defaultVerifyThreads(17, false), 16);
    assert.equal(defaultVerifyThreads(17, true), 16);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4096 }), fc.boolean(), (cores, below) => {
        const n = defaultVerifyThreads(cores, below);
        assert.ok(n >= 1 && n <= MAX_DEFAULT_VERIFY_THREADS);
        assert.equal(n, capped(below ? cores : cores - 1));
      }),
    );
  });

  test('a thread count given: 1 to MAX_VERIFY_THREADS, anything else refused saying why, before any worker starts', () => {
    assert.equal(verifyThreadsSetting('8', '--verify-threads'), 8);
    assert.equal(verifyThreadsSetting(' 32 ', 'UNC_VERIFY_THREADS'), 32);
    assert.equal(verifyThreadsSetting(MAX_VERIFY_THREADS, 'verify.threads'), MAX_VERIFY_THREADS);
    for (const bad of [
      '0',
      '',
      '-1',
      '1.5',
      '8x',
      '0x10',
      '1e2',
      String(MAX_VERIFY_THREADS + 1),
      0,
      2.5,
      null,
      true,
    ])
      assert.throws(
        () => verifyThreadsSetting(bad, '--verify-threads'),
        (e: Error) =>
          e instanceof RangeError &&
          /--verify-threads must be a whole number .* from 1 to 256/.test(e.message),
        String(bad),
      );
    fc.assert(
      fc.property(fc.integer({ min: -1000, max: 1000 }), (n) => {
        const ok = n >= 1 && n <= MAX_VERIFY_THREADS;
        if (ok) assert.equal(verifyThreadsSetting(String(n), 'x'), n);
        else assert.throws(() => verifyThreadsSetting(String(n), 'x'), RangeError);
      }),
    );
    assert.deepEqual(parseVerifyConfig(undefined), {});
    assert.deepEqual(parseVerifyConfig({}), {});
    assert.deepEqual(parseVerifyConfig({ threads: 4 }), { threads: 4 });
    assert.throws(() => parseVerifyConfig({ threads: '4' }), /verify\.threads must be a number, not "4"/);
    assert.throws(() => parseVerifyConfig({ threads: 0 }), /verify\.threads must be a whole number/);
    assert.throws(() => parseVerifyConfig({ thread: 4 }), /unknown setting "verify\.thread"/);
    assert.throws(() => parseVerifyConfig(8), /verify must be an object/);
    assert.throws(() => parseVerifyConfig([]), /verify must be an object/);
    // The pool itself refuses more than it takes given, before starting a worker.
    assert.throws(() => new VerifyPool({ threads: MAX_VERIFY_THREADS + 1 }), /threads must be at most 256/);
  });

  test('a process already niced keeps a core for its main thread when its workers cannot go a whole workerNice lower (Linux)', {
    skip: process.platform !== 'linux',
    timeout: 30_000,
  }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'unc-niced-'));
    const file = join(dir, 'niced.mjs');
    const pool = new URL('../src/verify-pool.js', import.meta.url).href;
    writeFileSync(
      file,
      `import { availableParallelism } from 'node:os';
import { VerifyPool, workersCanSitBelowMain } from ${JSON.stringify(pool)};
const p = new VerifyPool({ threads: undefined });
const q = new VerifyPool({ threads: undefined, workerNice: 4 });
console.log(JSON.stringify({ below: workersCanSitBelowMain(10), threads: p.threads, four: q.threads, cores: availableParallelism() }));
await p.close();
await q.close();
`,
    );
    try {
      // At nice 15 the default workers (10 below) would sit only 4 steps lower, at 19, about 2.4 to
      // 1 on a shared core; workers 4 below sit a whole workerNice lower and may take every core
      // (unless the cgroup caps the CPU).
      const run = spawnSync('nice', ['-n', '15', process.execPath, file], {
        encoding: 'utf8',
        timeout: 25_000,
      });
      assert.equal(run.status, 0, run.stderr);
      const { below, threads, four, cores } = JSON.parse(run.stdout) as {
        below: boolean;
        threads: number;
        four: number;
        cores: number;
      };
      assert.equal(below, false);
      assert.equal(threads, capped(cores - 1));
      assert.ok(four === capped(cores) || four === capped(cores - 1));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the calling thread takes no share unless asked to (callerShare defaults to 0)', async () => {
    // Off by default: it showed no gain, and on a machine whose cores are taken it took CPU from
    // consensus. Gates wide open, every worker saturated: still nothing checked on this thread.
    assert.equal(DEFAULT_VERIFY_POOL_OPTIONS.callerShare, 0);
    const one = oneWorkerPool({
      callerBusyUnder: 1,
      callerIdleCores: 0,
    });
    try {
      const checks = Array.from({ length: 200 }, (_, i) => check(i, i !== 11));
      assert.deepEqual(
        await one.verify(checks, 'admission'),
        checks.map((_, i) => i !== 11),
      );
      assert.equal(one.checkedOnCaller, 0);
    } finally {
      await one.close();
    }
  });

  test('the calling thread takes no share while its own other work keeps it busy', async () => {
    const one = oneWorkerPool({
      callerShare: 4,
      callerBusyUnder: 0.5,
      callerIdleCores: 0,
    });
    try {
      const checks = Array.from({ length: 160 }, (_, i) => check(i, i !== 3));
      const pending = one.verify(checks, 'admission');
      // The main thread busy with something else (a block, RPC) for a whole load window.
      const until = performance.now() + 150;
      while (performance.now() < until) {}
      await new Promise((r) => setImmediate(r));
      assert.equal(one.checkedOnCaller, 0);
      assert.deepEqual(
        await pending,
        checks.map((_, i) => i !== 3),
      );
    } finally {
      await one.close();
    }
  });

  test('after a quiet pause, the first burst is not shared on the strength of the quiet past', async () => {
    const one = oneWorkerPool({
      callerShare: 4,
      callerBusyUnder: 0.5,
      callerIdleCores: 0,
    });
    try {
      // Nothing to share for 400 ms (no window measured), then the main thread busy for 150 ms:
      // averaged since the last measure it looks under half busy, but it is busy now.
      await new Promise((r) => setTimeout(r, 400));
      const checks = Array.from({ length: 160 }, (_, i) => check(i, i !== 5));
      const pending = one.verify(checks, 'admission');
      const until = performance.now() + 150;
      while (performance.now() < until) {}
      await new Promise((r) => setImmediate(r));
      assert.equal(one.checkedOnCaller, 0);
      assert.deepEqual(
        await pending,
        checks.map((_, i) => i !== 5),
      );
    } finally {
      await one.close();
    }
  });

  test('the calling thread takes no share while the machine has no idle core for it', async () => {
    // More idle cores asked for than any machine has: the first measured window turns the share off.
    const one = oneWorkerPool({
      callerShare: 4,
      callerIdleCores: 1_000,
    });
    try {
      await new Promise((r) => setTimeout(r, 120));
      const checks = Array.from({ length: 160 }, (_, i) => check(i, i !== 9));
      assert.deepEqual(
        await one.verify(checks, 'admission'),
        checks.map((_, i) => i !== 9),
      );
      assert.equal(one.checkedOnCaller, 0);
    } finally {
      await one.close();
    }
  });

  test('a batch the calling thread is part-way through is rejected by close, not lost or finished here', async () => {
    const one = oneWorkerPool({
      callerShare: 2,
      callerBusyUnder: 1,
      callerIdleCores: 0,
    });
    const checks = Array.from({ length: 64 }, (_, i) => check(i, i !== 40));
    const pending = one.verify(checks, 'admission').then(
      () => 'answered',
      (err: unknown) => err,
    );
    await new Promise((r) => setImmediate(r));
    assert.equal(one.checkedOnCaller, 2);
    await one.close();
    // Close checks nothing on this thread: the rest of the batch in hand stays unchecked.
    assert.equal(one.checkedOnCaller, 2);
    assert.ok((await pending) instanceof VerifyPoolClosed);
  });

  test('consensus checks are served before admission checks already waiting', async () => {
    // The worker's order; without the calling thread's share, which finishes admission sooner.
    const one = new VerifyPool({ threads: 1, batchSize: 4, callerShare: 0 });
    try {
      const order: string[] = [];
      const admission = one
        .verify(
          Array.from({ length: 40 }, (_, i) => check(i, true)),
          'admission',
        )
        .then(() => order.push('admission'));
      const consensus = one.verify([check(99, true)], 'consensus').then(() => order.push('consensus'));
      await Promise.all([admission, consensus]);
      assert.deepEqual(order, ['consensus', 'admission']);
    } finally {
      await one.close();
    }
  });

  test('a worker holds admissionDepth admission batches: it keeps checking while the main thread is busy', async () => {
    const one = new VerifyPool({ threads: 1, batchSize: 4, depth: 2, admissionDepth: 8 });
    try {
      const checks = Array.from({ length: 48 }, (_, i) => check(i, i % 7 !== 3));
      const answer = one.verify(checks, 'admission');
      const slot = (one as unknown as { slots: { inFlight: unknown[] }[] }).slots[0]!;
      // Eight handed to the worker at once (two before: the worker idled once it had answered them
      // until the main thread, busy with a block, read the answers and sent more).
      assert.equal(slot.inFlight.length, 8);
      assert.deepEqual(
        await answer,
        checks.map((_, i) => i % 7 !== 3),
      );
    } finally {
      await one.close();
    }
  });

  test('admission batches handed to a worker ahead are bounded in bytes too: large transactions do not fill a worker with megabytes', async () => {
    const one = new VerifyPool({
      threads: 1,
      batchSize: 4,
      depth: 2,
      admissionDepth: 16,
      admissionBytes: 10_000,
    });
    try {
      // Checks over 1,000-byte messages: a batch of 4 is about 4.4 kB.
      const big = (i: number): SignatureCheck => {
        const message = new Uint8Array(1_000).fill(i);
        return { publicKey, message, signature: ed25519Sign(seed, message) };
      };
      const checks = Array.from({ length: 64 }, (_, i) => big(i));
      const answer = one.verify(checks, 'admission');
      const slot = (one as unknown as { slots: { inFlight: unknown[] }[] }).slots[0]!;
      // Two always (depth), a third while under 10,000 bytes, then no more until answers come.
      assert.equal(slot.inFlight.length, 3);
      assert.ok((await answer).every(Boolean));
      assert.equal(one.queued('admission'), 0);
    } finally {
      await one.close();
    }
  });

  test("a block's checks sent behind a worker's backlog of admission batches are answered before that backlog", async () => {
    const one = new VerifyPool({ threads: 1, batchSize: 4, depth: 2, admissionDepth: 16 });
    try {
      const order: string[] = [];
      // Sixteen admission calls of one batch each, all handed to the worker at once.
      const admission = Array.from({ length: 16 }, (_, k) =>
        one
          .verify(
            Array.from({ length: 4 }, (_, i) => check(4 * k + i, true)),
            'admission',
          )
          .then(() => order.push(`admission ${k}`)),
      );
      const slot = (one as unknown as { slots: { inFlight: unknown[] }[] }).slots[0]!;
      assert.equal(slot.inFlight.length, 16);
      const consensus = one.verify([check(99, true), check(100, false)], 'consensus').then((ok) => {
        assert.deepEqual(ok, [true, false]);
        order.push('consensus');
      });
      await Promise.all([...admission, consensus]);
      // The worker reads every message before it picks its next batch, so only the admission
      // batches it had picked before the block's checks reached it go first: usually none or one,
      // but on a loaded machine this thread can be descheduled between its posts while the worker
      // starts and checks a few. A worker answering in arrival order answers the block 17th.
      assert.ok(order.indexOf('consensus') < 8, order.join(', '));
    } finally {
      await one.close();
    }
  });

  test('property: a worker backlog yields every batch once, consensus before admission, each lane in order', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.boolean(), fc.constant(null)), { maxLength: 60 }), (ops) => {
        const backlog = new WorkerBacklog<WorkerBatch>();
        const pushed: WorkerBatch[] = [];
        const got: WorkerBatch[] = [];
        let id = 0;
        let consensusHeld = 0;
        const pick = (b: WorkerBatch | undefined) => {
          if (!b) return false;
          // No admission batch is picked while a consensus batch is held.
          assert.ok(b.consensus || consensusHeld === 0);
          if (b.consensus) consensusHeld--;
          got.push(b);
          return true;
        };
        for (const op of ops) {
          if (op === null) {
            pick(backlog.next());
            continue;
          }
          const batch = {
            id: id++,
            bytes: new Uint8Array(0),
            offsets: new Uint32Array(0),
            claimed: new Int32Array(1),
            ok: new Uint8Array(0),
            consensus: op,
          };
          pushed.push(batch);
          backlog.push(batch);
          if (op) consensusHeld++;
        }
        while (pick(backlog.next()));
        assert.equal(backlog.size, 0);
        assert.deepEqual(
          got.map((b) => b.id).sort((a, b) => a - b),
          pushed.map((b) => b.id),
        );
        for (const lane of [true, false]) {
          const ids = got.filter((b) => b.consensus === lane).map((b) => b.id);
          assert.deepEqual(
            ids,
            [...ids].sort((a, b) => a - b),
          );
        }
      }),
    );
    // What is held when a batch is picked: consensus first.
    const backlog = new WorkerBacklog();
    const batch = (id: number, consensus: boolean) => ({
      id,
      bytes: new Uint8Array(0),
      offsets: new Uint32Array(0),
      claimed: new Int32Array(1),
      ok: new Uint8Array(0),
      consensus,
    });
    backlog.push(batch(1, false));
    backlog.push(batch(2, false));
    backlog.push(batch(3, true));
    assert.deepEqual(
      [backlog.next()?.id, backlog.next()?.id, backlog.next()?.id, backlog.next()],
      [3, 1, 2, undefined],
    );
  });

  test('a worker that dies holding a backlog of admission batches: they go to its successor, not to the main thread, and each is answered once', async () => {
    const one = new VerifyPool({ threads: 1, batchSize: 4, depth: 2, admissionDepth: 16 });
    const kill = () =>
      (
        one as unknown as { slots: { worker: { terminate(): Promise<number> } }[] }
      ).slots[0]!.worker.terminate();
    try {
      const checks = Array.from({ length: 64 }, (_, i) => check(i, i % 5 !== 2));
      const pending = one.verify(checks, 'admission');
      const block = [chipCheck(1, 1, 'valid'), chipCheck(2, 2, 'forged')];
      const blockPending = one.verify(block, 'consensus');
      await kill();
      // The 16 admission batches (64 checks) were re-sent to the new worker; the block's checks,
      // which a round waits on, were checked here at once.
      assert.equal(one.checkedForLostWorker, 2);
      assert.deepEqual(await blockPending, [true, false]);
      assert.deepEqual(
        await pending,
        checks.map((_, i) => i % 5 !== 2),
      );
      assert.equal(one.queued('admission'), 0);
      assert.equal(one.queued('consensus'), 0);
      // Lost with a second worker, a batch is checked here: no batch kills workers forever.
      const again = one.verify(checks, 'admission');
      await kill();
      await kill();
      assert.equal(one.checkedForLostWorker, 2 + 64);
      assert.deepEqual(
        await again,
        checks.map((_, i) => i % 5 !== 2),
      );
      assert.equal(one.queued('admission'), 0);
      assert.deepEqual(await one.verify([check(3, true)]), [true]);
    } finally {
      await one.close();
    }
  });

  test('a worker backlog that never runs dry keeps no batch it has handed out (its memory stays bounded under a steady flood)', () => {
    const backlog = new WorkerBacklog();
    const inside = backlog as unknown as { consensus: WorkerBatch[]; admission: WorkerBatch[] };
    const batch = (id: number, consensus: boolean): WorkerBatch => ({
      id,
      bytes: new Uint8Array(1024),
      offsets: new Uint32Array(0),
      claimed: new Int32Array(1),
      ok: new Uint8Array(0),
      consensus,
    });
    let id = 0;
    for (let i = 0; i < 16; i++) backlog.push(batch(id++, false));
    // The pool hands the worker a batch for every answer: 16 held, always.
    for (let round = 0; round < 5_000; round++) {
      if (round % 100 === 0) backlog.push(batch(id++, true));
      backlog.next();
      if (round % 100 !== 0) backlog.push(batch(id++, false));
      assert.equal(backlog.size, 16);
      assert.ok(inside.consensus.length + inside.admission.length <= 16, `round ${round}`);
    }
  });

  test('a worker that dies does not lose its batch', async () => {
    const one = new VerifyPool({ threads: 1, batchSize: 50 });
    try {
      const pending = one.verify(Array.from({ length: 50 }, (_, i) => check(i, i !== 7)));
      // Kill the only worker while its batch is in flight.
      await (
        one as unknown as { slots: { worker: { terminate(): Promise<number> } }[] }
      ).slots[0]!.worker.terminate();
      const got = await pending;
      assert.equal(got.length, 50);
      assert.equal(got.filter((x) => !x).length, 1);
      assert.equal(got[7], false);
      assert.equal(one.threads, 1);
      assert.deepEqual(await one.verify([check(3, true)]), [true]);
    } finally {
      await one.close();
    }
  });

  test('a call split over two workers keeps its order when one of them dies mid-call', async () => {
    const two = new VerifyPool({ threads: 2, batchSize: 128 });
    try {
      const checks = Array.from({ length: 60 }, (_, i) =>
        chipCheck(i % chipKeys.length, i, i % 11 !== 4 ? 'valid' : 'forged'),
      );
      const pending = two.verify(checks, 'consensus');
      // The second worker's share dies with it, and is checked on this thread.
      await (
        two as unknown as { slots: { worker: { terminate(): Promise<number> } }[] }
      ).slots[1]!.worker.terminate();
      assert.deepEqual(
        await pending,
        checks.map((c) => ed25519Verify(c.publicKey, c.message, c.signature)),
      );
      assert.equal(two.queued('consensus'), 0);
    } finally {
      await two.close();
    }
  });

  test('close rejects every check it has not answered, queued or in flight, and checks none of them on this thread', async () => {
    const one = new VerifyPool({ threads: 1, batchSize: 128 });
    // Valid signatures: a call that resolved after close could only say "valid", and with the
    // workers terminated, only by checking on this thread (what close used to do, up to the lanes'
    // 250,000 checks, holding a shutdown for seconds). So none may resolve.
    const calls = [
      ...Array.from({ length: 20 }, (_, c) =>
        one.verify(
          Array.from({ length: 1_000 }, (_, i) => check(c * 1_000 + i, true)),
          'admission',
        ),
      ),
      one.verify(
        Array.from({ length: 5_000 }, (_, i) => chipCheck(i % chipKeys.length, i, 'valid')),
        'consensus',
      ),
    ];
    const outcomes = Promise.allSettled(calls);
    await one.close();
    const settled = await outcomes;
    const resolved = settled.filter((r) => r.status === 'fulfilled').length;
    assert.equal(resolved, 0, `${resolved} calls answered "valid" after close`);
    for (const r of settled)
      assert.ok(r.status === 'rejected' && r.reason instanceof VerifyPoolClosed, String(r.status));
    assert.equal(one.queued('admission'), 0);
    assert.equal(one.queued('consensus'), 0);
    // And after close, a call is refused at once: nothing is checked here either.
    await assert.rejects(one.verify([check(1, true)]), VerifyPoolClosed);
  });

  test('without threads it checks on the calling thread', async () => {
    const inline = new VerifyPool({ threads: 0 });
    assert.deepEqual(await inline.verify([check(1, true), check(2, false)]), [true, false]);
    await inline.close();
  });

  test('pack and unpack are inverse', () => {
    const checks = [
      check(1, true),
      check(2, false),
      { publicKey, message: new Uint8Array(0), signature: new Uint8Array(64) },
    ];
    const back = unpackBatch(packBatch(5, checks));
    assert.deepEqual(
      back.map((c) => [Buffer.from(c.publicKey), Buffer.from(c.message), Buffer.from(c.signature)]),
      checks.map((c) => [Buffer.from(c.publicKey), Buffer.from(c.message), Buffer.from(c.signature)]),
    );
  });
  test('property: batches packed into shared slabs each unpack to their own checks, in regions no other batch shares (answers written to one leave the others as they were); a large batch gets a buffer of its own', () => {
    const part = fc.uint8Array({ maxLength: 80 });
    const anyCheck = fc.record({ publicKey: part, message: part, signature: part });
    fc.assert(
      fc.property(
        fc.array(fc.array(anyCheck, { maxLength: 6 }), { minLength: 1, maxLength: 12 }),
        (calls) => {
          const slabs = new SharedSlabs(1024);
          const batches = calls.map((checks, i) => packBatch(i, checks, slabs));
          batches.forEach((b, i) => {
            const size = b.bytes.byteOffset + b.bytes.byteLength - b.claimed.byteOffset;
            if (size > 256) assert.equal(b.bytes.buffer.byteLength, size, 'a large batch has its own buffer');
            else assert.equal(b.bytes.buffer.byteLength, 1024, 'a small batch is in a slab');
            assert.equal(b.claimed.byteOffset % 8, 0);
            b.ok.fill(1);
            Atomics.store(b.claimed, 0, 1_000 + i);
          });
          batches.forEach((b, i) => {
            assert.deepEqual(
              unpackBatch(b).map((c) => [
                Buffer.from(c.publicKey),
                Buffer.from(c.message),
                Buffer.from(c.signature),
              ]),
              calls[i]!.map((c) => [
                Buffer.from(c.publicKey),
                Buffer.from(c.message),
                Buffer.from(c.signature),
              ]),
            );
            assert.equal(Atomics.load(b.claimed, 0), 1_000 + i);
            assert.ok(b.ok.every((x) => x === 1));
          });
        },
      ),
      { numRuns: 100 },
    );
  });

  test('property: a packed batch unpacks to its checks, in one shared buffer, and its checks taken by two threads in turn are each checked once, as ed25519Verify says', () => {
    const part = fc.uint8Array({ maxLength: 80 });
    const anyCheck = fc.oneof(
      fc.record({ i: fc.nat(1000), valid: fc.boolean() }).map(({ i, valid }) => check(i, valid)),
      fc.record({ publicKey: part, message: part, signature: part }),
    );
    fc.assert(
      fc.property(fc.array(anyCheck, { maxLength: 20 }), fc.nat(20), (checks, firstTakes) => {
        const batch = packBatch(7, checks);
        assert.ok(batch.bytes.buffer instanceof SharedArrayBuffer);
        assert.equal(batch.bytes.buffer, batch.offsets.buffer);
        assert.equal(batch.bytes.buffer, batch.ok.buffer);
        const back = unpackBatch(batch);
        assert.deepEqual(
          back.map((c) => [Buffer.from(c.publicKey), Buffer.from(c.message), Buffer.from(c.signature)]),
          checks.map((c) => [Buffer.from(c.publicKey), Buffer.from(c.message), Buffer.from(c.signature)]),
        );
        // One "thread" has taken the first checks already; the other takes what is left.
        const taken = Math.min(firstTakes, checks.length);
        for (let j = 0; j < taken; j++) {
          const c = checks[Atomics.add(batch.claimed, 0, 1)]!;
          batch.ok[j] = ed25519Verify(c.publicKey, c.message, c.signature) ? 1 : 0;
        }
        const rest = verifyClaimed(batch);
        assert.equal(rest.checked, checks.length - taken);
        assert.equal(verifyClaimed(batch).checked, 0, 'nothing is left to take twice');
        assert.deepEqual(
          Array.from(batch.ok, (b) => b === 1),
          checks.map((c) => ed25519Verify(c.publicKey, c.message, c.signature)),
        );
      }),
      { numRuns: 60 },
    );
  });

  test('the calling thread takes the block checks no worker has started (assist), stops at its first failure, and every verdict stays at its index', async () => {
    // One worker holding one batch of 4: the other nine batches of this call wait for it, and
    // only this thread can take them while it runs (nothing is dispatched during assist).
    const one = new VerifyPool({ threads: 1, batchSize: 4, depth: 1 });
    try {
      const checks = Array.from({ length: 40 }, (_, i) => check(i, i !== 21));
      const pending = one.verify(checks, 'consensus');
      const internals = one as unknown as { slots: { waiting: { batch: PackedBatch }[] }[] };
      const sixth = internals.slots[0]!.waiting[4]!.batch; // checks 20..23
      const r = one.assist(true);
      assert.equal(r.failed, true);
      // Batches 1..4 (checks 4..19), then 20 and the forged 21: none past it on this thread.
      assert.ok(r.checked >= 18 && r.checked <= 22, `${r.checked} checks on the calling thread`);
      assert.equal(Atomics.load(sixth.claimed, 0), 2, 'this thread went past the failure');
      assert.equal(one.assistedOnCaller, r.checked);
      const got = await pending;
      assert.deepEqual(
        got,
        checks.map((_, i) => i !== 21),
      );
      assert.equal(one.queued('consensus'), 0);
      assert.equal(one.queuedBytes('consensus'), 0);
    } finally {
      await one.close();
    }
  });

  test('assist without a failure answers a call the workers were never sent, and leaves admission alone', async () => {
    const one = new VerifyPool({ threads: 1, batchSize: 8, depth: 1 });
    try {
      const blocker = one.verify(
        Array.from({ length: 8 }, (_, i) => check(i, true)),
        'consensus',
      );
      const admission = one.verify(
        Array.from({ length: 8 }, (_, i) => check(100 + i, i !== 3)),
        'admission',
      );
      const block = one.verify(
        Array.from({ length: 16 }, (_, i) => check(200 + i, i % 5 !== 2)),
        'consensus',
      );
      const r = one.assist(false);
      assert.ok(r.checked >= 16, `${r.checked}`);
      assert.equal(r.failed, true);
      assert.deepEqual(
        await block,
        Array.from({ length: 16 }, (_, i) => i % 5 !== 2),
      );
      assert.deepEqual(
        await admission,
        Array.from({ length: 8 }, (_, i) => i !== 3),
      );
      assert.ok((await blocker).every(Boolean));
    } finally {
      await one.close();
    }
  });

  test("assist scoped to a caller's own calls neither stops at another call's forged check nor takes that call's checks", async () => {
    const one = new VerifyPool({ threads: 1, batchSize: 4, depth: 1 });
    try {
      // The worker is busy with the first call; another block's checks (forged at its first) wait
      // ahead of this caller's own.
      const blocker = one.verify(
        Array.from({ length: 4 }, (_, i) => check(400 + i, true)),
        'consensus',
      );
      const other = one.verify(
        Array.from({ length: 8 }, (_, i) => check(500 + i, i !== 0)),
        'consensus',
      );
      const mine = Array.from({ length: 12 }, (_, i) => check(600 + i, true));
      const own = one.verify(mine, 'consensus');
      const r = one.assist(true, Number.POSITIVE_INFINITY, [own]);
      assert.deepEqual(r, { checked: 12, failed: false }, 'only its own checks, none failed');
      const internals = one as unknown as { slots: { waiting: { batch: PackedBatch }[] }[] };
      for (const chunk of internals.slots[0]!.waiting)
        assert.equal(
          Atomics.load(chunk.batch.claimed, 0),
          0,
          "the other call's checks are left to the worker",
        );
      assert.deepEqual(
        await own,
        mine.map(() => true),
      );
      assert.deepEqual(
        await other,
        Array.from({ length: 8 }, (_, i) => i !== 0),
      );
      assert.ok((await blocker).every(Boolean));
    } finally {
      await one.close();
    }
  });

  test('a worker that dies mid-batch: what it (or assist) answered stands, each check it left unanswered is checked once on this thread, and the call is answered once', async () => {
    // All of this runs in the tick the pool is made in: the worker has not loaded yet, so it takes
    // nothing; this thread takes the first 3 checks of the batch handed to it (assist).
    const one = new VerifyPool({ threads: 1, batchSize: 8, depth: 1 });
    try {
      const checks = Array.from({ length: 8 }, (_, i) => check(700 + i, i !== 6));
      let answers = 0;
      const pending = one.verify(checks, 'consensus').then((ok) => {
        answers++;
        return ok;
      });
      const internals = one as unknown as {
        slots: { worker: { terminate(): Promise<number> }; inFlight: { chunk: { batch: PackedBatch } }[] }[];
      };
      const batch = internals.slots[0]!.inFlight[0]!.chunk.batch;
      assert.deepEqual(one.assist(false, 3), { checked: 3, failed: false });
      // The answers written so far are the batch's: were they checked again, the bytes changed
      // since (here, by hand) would say otherwise.
      const firstMessage = batch.offsets[2]!;
      batch.bytes[firstMessage]! ^= 1;
      await internals.slots[0]!.worker.terminate();
      assert.deepEqual(
        await pending,
        checks.map((_, i) => i !== 6),
      );
      assert.equal(one.recheckedOnCaller, 5, 'the 5 checks nobody had answered, each once');
      assert.equal(answers, 1);
      assert.equal(one.queued('consensus'), 0);
      assert.equal(one.queuedBytes('consensus'), 0);
      // The replacement works.
      assert.deepEqual(await one.verify([check(800, true), check(801, false)], 'consensus'), [true, false]);
    } finally {
      await one.close();
    }
  });

  test("an admission batch handed back after its worker died keeps that worker's answers; the check it was making is made once here, the rest by the next worker", async () => {
    // In the tick the pool is made in, the worker has not loaded: this thread plays its part,
    // having taken checks 0-2 and answered 0 and 1 when it dies.
    const one = new VerifyPool({ threads: 1, batchSize: 8, depth: 1, admissionDepth: 4 });
    try {
      const checks = Array.from({ length: 8 }, (_, i) => check(900 + i, i !== 1 && i !== 5));
      const pending = one.verify(checks, 'admission');
      const internals = one as unknown as {
        slots: { worker: { terminate(): Promise<number> }; inFlight: { chunk: { batch: PackedBatch } }[] }[];
      };
      const batch = internals.slots[0]!.inFlight[0]!.chunk.batch;
      Atomics.store(batch.claimed, 0, 3);
      Atomics.store(batch.ok, 0, 1);
      Atomics.store(batch.ok, 1, 2);
      // Answers already written stand: were checks 0 and 1 made again, these bytes would say otherwise.
      batch.bytes[batch.offsets[2]!]! ^= 1;
      batch.bytes[batch.offsets[6]!]! ^= 1;
      await internals.slots[0]!.worker.terminate();
      assert.deepEqual(
        await pending,
        checks.map((_, i) => i !== 1 && i !== 5),
      );
      assert.equal(one.recheckedOnCaller, 1, 'only the check it was making, here');
      assert.equal(one.checkedForLostWorker, 0, 'the batch went back to the workers');
      assert.equal(one.queued('admission'), 0);
      assert.equal(one.queuedBytes('admission'), 0);
    } finally {
      await one.close();
    }
  });

  test('assist takes at most its limit per call: the calling thread is held for a bounded turn', async () => {
    const one = new VerifyPool({ threads: 1, batchSize: 4, depth: 1 });
    try {
      const checks = Array.from({ length: 40 }, (_, i) => check(300 + i, i !== 37));
      const pending = one.verify(checks, 'consensus');
      const first = one.assist(true, 6);
      assert.ok(first.checked <= 6, `${first.checked}`);
      const second = one.assist(true, 6);
      assert.ok(second.checked <= 6 && second.checked > 0, `${second.checked}`);
      assert.deepEqual(
        await pending,
        checks.map((_, i) => i !== 37),
      );
    } finally {
      await one.close();
    }
  });

  test('a lane is bounded in bytes as well as in checks: a call that would hold more is refused at once, queueing nothing', async () => {
    // 50,000 admission checks of 64 KiB messages each held 3 GiB of copies before.
    const small = new VerifyPool({
      threads: 1,
      maxQueuedBytes: { consensus: 1 << 20, admission: 64 * 1024 },
    });
    try {
      const big = (i: number): SignatureCheck => {
        const message = new Uint8Array(20_000).fill(i);
        return { publicKey, message, signature: ed25519Sign(seed, message) };
      };
      const three = [big(1), big(2), big(3)];
      const first = small.verify(three, 'admission');
      assert.ok(small.queuedBytes('admission') > 60_000);
      await assert.rejects(
        small.verify([big(4)], 'admission'),
        (err: unknown) => err instanceof VerifyPoolBusy && err.unit === 'bytes',
      );
      assert.deepEqual(await first, [true, true, true]);
      assert.equal(small.queuedBytes('admission'), 0);
      assert.deepEqual(await small.verify([big(4)], 'admission'), [true]);
      // The consensus lane has its own bound.
      assert.deepEqual(await small.verify([big(5), big(6)], 'consensus'), [true, true]);
    } finally {
      await small.close();
    }
  });
});
