/**
 * Ed25519 signature checks on worker threads, so that a node under load uses every core: the
 * mempool's admission checks and the pre-check of a proposed block's signatures run here, while
 * the main thread keeps handling consensus messages and executing blocks.
 *
 * Two lanes: `consensus` (a proposed block's signatures, on the critical path of a round) is
 * always served before `admission` (transactions from clients and peers). Both lanes are bounded:
 * a call that would queue more checks than its lane may hold is refused at once with
 * VerifyPoolBusy, before any work, so a flood of transactions turns into "busy, retry" answers
 * instead of an unbounded queue.
 *
 * A block's checks go to the worker their key is sharded to, so that a chip's key is imported once
 * (each worker keeps core's bounded cache of imported keys), but no worker gets more than its even
 * share of a call, and an idle worker takes another's queued block checks: one key's many checks
 * still use every core. Admission checks wait in one queue that every idle worker takes from.
 * A call's checks are packed into shared memory per batch when the call is made (a consensus batch
 * into a region of a slab shared with other batches, SharedSlabs; an admission batch into its own
 * SharedArrayBuffer); each check is taken by exactly one thread (an atomic counter), so the thread waiting on a block's
 * checks can take those no worker has started (`assist`). A worker holds up to `depth` block
 * batches and `admissionDepth` admission batches, checks the block batches it holds first and
 * answers each batch by its id, so answers may come out of order.
 *
 * The pool only ever says what core's `ed25519Verify` says (the workers run that very function);
 * callers use a `true` to skip a check that would pass, never to decide differently.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus, getPriority } from 'node:os';
import { type EventLoopUtilization, performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import {
  type CostlyCheck,
  type CostlyVerdict,
  ed25519Verify,
  isConsentCheck,
  runCostlyCheck,
} from '@unc/core';

export interface SignatureCheck {
  publicKey: Uint8Array;
  message: Uint8Array;
  signature: Uint8Array;
}

export type VerifyLane = 'consensus' | 'admission';

/**
 * Who checks Ed25519 signatures for admission and a block's pre-check: the worker-thread
 * `VerifyPool` in a real node, an `InThreadVerifier` where determinism matters more than cores
 * (the simulator). Both say only what core's `ed25519Verify` says.
 */
export interface SignatureVerifier {
  /** Worker threads behind it; 0 means checks run on the calling thread (no pre-check pays off). */
  readonly threads: number;
  /**
   * Whether each signature verifies, in order; may reject with VerifyPoolBusy, having done nothing,
   * or with VerifyPoolClosed once closed (the checks not made).
   */
  verify(checks: readonly SignatureCheck[], lane?: VerifyLane): Promise<boolean[]>;
  /**
   * Optional: the calling thread checks now the consensus checks of earlier calls that no worker
   * has started (their answers then come sooner); stops after a failure when `stopAtFailure`.
   * `of`: only the checks of these calls (promises `verify` returned), so that a caller waiting
   * on its own block neither stops at another call's failure nor does another call's work.
   */
  assist?(
    stopAtFailure: boolean,
    limit?: number,
    of?: readonly Promise<boolean[]>[],
  ): { checked: number; failed: boolean };
  /**
   * Optional: chip evidence checks (core's `runCostlyCheck`: a registration's certificate chains
   * and quote, a transfer's consent, milliseconds each) off the calling thread, in the admission
   * lane; each answer is exactly what the calling thread would get, or null where it must check
   * that one itself. Absent (or no threads): admission checks evidence on the calling thread, in
   * its slices (the simulator, for determinism).
   */
  checkEvidence?(checks: readonly CostlyCheck[]): Promise<(CostlyVerdict | null)[]>;
  /**
   * Optional: the checks at `positions` of an admission call (a promise `verify` returned) are no
   * longer wanted (a block took their transactions meanwhile): those no thread has started are
   * not made, and their answer is false, which the caller must not read as a failed signature.
   * Returns how many will not be made. Consensus calls are never cancelled.
   */
  cancel?(call: Promise<boolean[]>, positions: readonly number[]): number;
  close(): Promise<void>;
}

/**
 * Checks on the calling thread, at once: the answers are ready before the returned promise is
 * awaited, so a run on a virtual clock does not depend on thread scheduling. `check` is injectable
 * (tests count calls); it defaults to core's ed25519Verify.
 */
export class InThreadVerifier implements SignatureVerifier {
  readonly threads = 0;
  constructor(
    private readonly check: (
      publicKey: Uint8Array,
      message: Uint8Array,
      signature: Uint8Array,
    ) => boolean = ed25519Verify,
  ) {}

  verify(checks: readonly SignatureCheck[]): Promise<boolean[]> {
    return Promise.resolve(checks.map((c) => this.check(c.publicKey, c.message, c.signature)));
  }

  async close(): Promise<void> {}
}

/** What a worker is started with (verify-worker.ts). */
export interface VerifyWorkerData {
  /** How far it lowers its own thread's priority (`VerifyPoolOptions.workerNice`). */
  nice: number;
}

export interface VerifyPoolOptions {
  /** Worker threads; 0 checks on the calling thread (default: `defaultVerifyThreads`). */
  threads: number;
  /** Checks sent to a worker at once. */
  batchSize: number;
  /** Checks one lane may hold queued or in flight; more are refused with VerifyPoolBusy. */
  maxQueued: Record<VerifyLane, number>;
  /**
   * Bytes (keys, signatures, messages) one lane may hold queued or in flight, copied into the
   * pool's buffers; a call past it is refused with VerifyPoolBusy, like one past `maxQueued`.
   */
  maxQueuedBytes: Record<VerifyLane, number>;
  /**
   * Batches a worker holds at once: the one it checks and the next ones already in its message
   * queue. With 1 a worker idles from its answer until the main thread has read it and sent the
   * next batch, which waits behind whatever the main thread is doing (building or executing a
   * block: 100-250 ms under load), so the second core sat idle a third of the time. With 2 it
   * starts the next batch at once. The cost: a consensus batch queued behind admission waits for
   * at most depth - 1 admission batches already handed to that worker (2 x 128 checks: ~10 ms).
   * Since the worker serves consensus first among what it holds (verify-worker.ts), this now
   * bounds the consensus batches a worker holds; admission has its own `admissionDepth`.
   */
  depth: number;
  /**
   * Admission batches a worker holds at once (at least `depth`). The main thread hands out the next
   * batch only when it reads an answer, and it reads none while it builds, executes or commits a
   * block (100-250 ms under load): with 2 batches (~20 ms of checks) the one worker of a 2-core
   * node sat idle about a third of the time while clients' transactions waited in the queue.
   * Holding more costs consensus nothing: the worker reads every message it holds before it picks
   * its next batch and takes consensus batches first, so a block's checks wait only for the one
   * batch in progress. What it costs: a worker that dies leaves this many batches to be checked
   * again (handed back to the queue, not checked on the main thread: `spawn`), and an idle second
   * worker cannot take batches already handed to the first (the handing-out is even, a batch at a
   * time, so both hold about as much).
   */
  admissionDepth: number;
  /**
   * Bytes of admission batches a worker holds at once, beyond its first `depth` batches (which it
   * always gets): `admissionDepth` counts batches, and a batch of large transactions (up to 64 KiB
   * each) is megabytes, all of them committed to that one worker (the batch's shared buffer is
   * not copied, but an idle second worker cannot take it). The default never binds for ordinary
   * transfers (16 batches of 128 are ~0.6 MiB) and keeps a flood of large ones to a few MiB per
   * worker.
   */
  admissionBytes: number;
  /**
   * Checks the calling (main) thread takes per event-loop turn from admission batches that wait
   * because every worker already holds `depth` batches; 0 never. On 2 cores the one worker was the
   * only thread checking admission signatures, and the main thread sat idle while the next client
   * batches waited for it. A turn is short (32 checks: ~3 ms) and the thread yields between turns,
   * so a proposal or vote arriving meanwhile waits at most one turn; consensus checks stay with the
   * workers (and the block pre-check's own share).
   *
   * Off by default (0): measured, it gave no shown gain, and before its load gates it took CPU from
   * consensus (bench:consensus saturated blocks/s fell); its idle-core gate reads the whole host
   * (os.cpus), which in a container with a CPU quota shows cores the node cannot use. Turn it on
   * with `verifyPool: { callerShare: 32 }` (UncNode options) where the node has a core to spare.
   */
  callerShare: number;
  /**
   * The calling thread takes its share only while its other work (RPC, admission, blocks,
   * consensus) kept its event loop busy less than this part of the last ~100 ms: a share taken
   * from a thread that is itself the bottleneck would slow the node, not speed it.
   */
  callerBusyUnder: number;
  /**
   * ...and only while the machine had at least this many cores idle over the last window (the
   * share's own time counted as idle): on a machine whose cores are all taken (several nodes on
   * one host, other programs) a further thread checking signatures only takes CPU from the main
   * thread's consensus work and from the other processes, and checks nothing sooner.
   */
  callerIdleCores: number;
  /**
   * How far below the main thread the worker threads put themselves, in nice steps (0-19, added to
   * the nice value they start with, the main thread's, up to 19; Linux only, where it is a
   * per-thread setting; elsewhere it would lower the whole process, main thread included, and is
   * not set).
   * A block's path through a height (build, check, execute, commit, the votes) runs on the main
   * thread, while the workers check admission signatures for as long as clients send: under
   * saturation, with the CPU shared evenly by every runnable thread, the main threads got a
   * small share of it, a slow validator fell a height behind, and its turns as proposer cost the
   * others a propose timeout. A worker below the main threads' priority takes the CPU they leave.
   * Measured (bench:consensus, 4 validators on 2 cores, BENCHMARKS.md, branch nextheight): 0.90
   * saturated blocks/s in every run with it, 0.50-0.90 on the commit before (2a9fa9d). Raising
   * one's own nice value needs no privilege, and a thread cannot lower it again, so 0 leaves the
   * workers as they start.
   */
  workerNice: number;
}

/**
 * Worker threads when none are given: one per core where the workers sit below the main thread's
 * priority (Linux, `workerNice` > 0, the main thread not already at nice 19), the cores but one
 * elsewhere; at most MAX_DEFAULT_VERIFY_THREADS either way.
 *
 * With the cores but one, a 2-core node had a single worker, and it was the bottleneck: under
 * saturation that worker was busy all the time while the main thread (execution, consensus, RPC)
 * was idle a third of it, so the node used 1.5 of its 2 cores. A second worker takes that idle
 * third, and the main thread loses nothing it needs: a nice-0 thread outweighs a nice-10 one about
 * nine to one in Linux's scheduler, so whenever the main thread has work it gets its core back at
 * once. Measured with `npm run bench:tps -- --seconds 10` (BENCHMARKS.md, 2026-12-07): 1.53 → 1.86
 * cores busy, single node ÷ raw verify 0.63–0.81 → 0.93–1.12. Without the lower priority (other
 * platforms, or `workerNice` 0) a worker per core would take the main thread's core as an equal,
 * and a height's path would wait behind signature checks, so there the main thread keeps its core.
 */
export function defaultVerifyThreads(
  cores: number = availableParallelism(),
  workersBelowMain: boolean = workersCanSitBelowMain(WORKER_NICE),
): number {
  return Math.min(MAX_DEFAULT_VERIFY_THREADS, Math.max(1, workersBelowMain ? cores : cores - 1));
}

/**
 * The most worker threads the default gives (`defaultVerifyThreads`), however many cores: each
 * worker costs about 10 MiB and a thread, and a 64-core machine got 64 of them, far more than one
 * node's signature checks keep busy. An operator sets more, up to MAX_VERIFY_THREADS, with
 * `threads` (`unc start --verify-threads`, UNC_VERIFY_THREADS, config.json `verify.threads`).
 */
export const MAX_DEFAULT_VERIFY_THREADS = 16;

/** The most worker threads a pool takes when they are given. */
export const MAX_VERIFY_THREADS = 256;

/**
 * A worker-thread count as an operator gives it (config.json `verify.threads`, UNC_VERIFY_THREADS,
 * `--verify-threads`): a whole number from 1 to MAX_VERIFY_THREADS; throws a RangeError naming
 * `source` otherwise.
 */
export function verifyThreadsSetting(value: unknown, source: string): number {
  const n = typeof value === 'string' && /^[0-9]+$/.test(value.trim()) ? Number(value.trim()) : value;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1 || n > MAX_VERIFY_THREADS)
    throw new RangeError(
      `${source} must be a whole number of signature-check threads from 1 to ${MAX_VERIFY_THREADS}, not ${JSON.stringify(value)}`,
    );
  return n;
}

/**
 * The settings of a config file's `"verify"` object (`{"threads": 8}`; absent: the defaults): only
 * keys this node knows, each of its type; throws saying why not.
 */
export function parseVerifyConfig(value: unknown): { threads?: number } {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new TypeError('verify must be an object, like {"threads": 8}');
  const config: { threads?: number } = {};
  for (const [key, v] of Object.entries(value)) {
    if (key === 'threads') {
      if (typeof v !== 'number')
        throw new TypeError(`verify.threads must be a number, not ${JSON.stringify(v)}`);
      config.threads = verifyThreadsSetting(v, 'verify.threads');
    } else throw new TypeError(`unknown setting "verify.${key}": not a verify setting (known: threads)`);
  }
  return config;
}

/** The default `workerNice`. */
const WORKER_NICE = 10;

/**
 * Whether workers started now sit a whole `workerNice` below the calling (main) thread, so that it
 * gets its core back whenever it has work: Linux, where a thread sets its own nice value; the main
 * thread at most 19 − `workerNice` (19 is the lowest, and verify-worker.ts caps there: a node run at
 * nice 15 had its workers only 4 steps below, about 2.4 to 1 on a shared core instead of 9 to 1);
 * and no CPU quota on the process's cgroup. Nice orders threads waiting for one core; a quota
 * (docker --cpus, a Kubernetes CPU limit) is one budget of time for the whole container, and once
 * a worker per core has spent it every thread waits for the next period, the main thread too,
 * whatever its nice value.
 */
export function workersCanSitBelowMain(workerNice: number): boolean {
  if (process.platform !== 'linux' || !(workerNice > 0)) return false;
  try {
    return getPriority(0) + workerNice <= 19 && !cpuQuotaSet();
  } catch {
    return false;
  }
}

/** Whether this process's cgroup caps its CPU time (cgroup v2 cpu.max, or v1 cfs_quota_us). */
function cpuQuotaSet(): boolean {
  const read = (path: string) => {
    try {
      return readFileSync(path, 'utf8').trim();
    } catch {
      return undefined;
    }
  };
  const v2 = read('/sys/fs/cgroup/cpu.max');
  if (v2 !== undefined) return !v2.startsWith('max');
  const v1 =
    read('/sys/fs/cgroup/cpu/cpu.cfs_quota_us') ?? read('/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us');
  return v1 !== undefined && Number(v1) > 0;
}

export const DEFAULT_VERIFY_POOL_OPTIONS: VerifyPoolOptions = {
  threads: defaultVerifyThreads(),
  batchSize: 128,
  maxQueued: { consensus: 200_000, admission: 50_000 },
  // Consensus: a few blocks' worth of transactions; admission: about the mempool's own bound.
  maxQueuedBytes: { consensus: 128 * 1024 * 1024, admission: 64 * 1024 * 1024 },
  depth: 2,
  workerNice: WORKER_NICE,
  admissionDepth: 16,
  admissionBytes: 4 * 1024 * 1024,
  callerShare: 0,
  callerBusyUnder: 0.8,
  callerIdleCores: 0.5,
};

/** Milliseconds all the machine's cores have spent idle since boot (os.cpus: per core, in ms). */
function machineIdleMs(): number {
  let idle = 0;
  for (const core of cpus()) idle += core.times.idle;
  return idle;
}

/** How often the calling thread's own load is measured for its share (callerBusyUnder). */
const CALLER_LOAD_WINDOW_MS = 100;
/** How long a turn refused for load waits before it looks again (a timer, not a busy loop). */
const CALLER_RETRY_MS = 10;

/** The pool's lane is full: the caller should answer "busy, retry" rather than wait. */
export class VerifyPoolBusy extends Error {
  constructor(
    readonly lane: VerifyLane,
    readonly limit: number,
    readonly unit: 'checks' | 'bytes' = 'checks',
  ) {
    super(`signature verification is saturated (${limit} ${unit} queued for ${lane}); retry shortly`);
    this.name = 'VerifyPoolBusy';
  }
}

/**
 * The pool was closed before these checks ran: nothing about them is known. Callers treat the
 * checks as not verified (execution checks a block's signatures itself; admission answers
 * "busy, retry"), never as valid.
 */
export class VerifyPoolClosed extends Error {
  constructor() {
    super('signature verification stopped: the node is shutting down, these signatures were not checked');
    this.name = 'VerifyPoolClosed';
  }
}

/**
 * A batch as it crosses to a worker: everything in one SharedArrayBuffer, so that posting it copies
 * nothing and the calling thread can take the checks a worker has not started (`VerifyPool.assist`).
 * Layout: `claimed` (Int32, the next check to take), the offsets, one answer byte per check, then
 * the bytes (key, signature, message of each check in turn).
 */
export interface PackedBatch {
  id: number;
  bytes: Uint8Array;
  /** For check i: [message start, message end) in `bytes`; key and signature precede the message. */
  offsets: Uint32Array;
  /**
   * [0]: the index of the next check no thread has taken yet (Atomics.add to take one); a value at
   * or past the number of checks means every check is taken.
   */
  claimed: Int32Array;
  /**
   * Check i's answer, written with Atomics.store by whoever took it: 1 verifies, 2 does not, 0 not
   * answered yet (so that the checks a worker that died had taken but not answered are told apart
   * from its answers, and only those are checked again).
   */
  ok: Uint8Array;
}

/** Bytes the checks of a batch carry (key, signature, message), as `packBatch` stores them. */
export function checkBytes(c: SignatureCheck): number {
  return c.publicKey.length + c.signature.length + c.message.length;
}

/**
 * Shared memory for batches, carved from slabs: a batch takes a region of the current slab, never
 * given to another batch, and a slab is freed (by the garbage collector) once no batch in it is
 * referenced. A `new SharedArrayBuffer` per batch cost ~150 µs in a node's process (profiled: all
 * but 1% of `packBatch`, about 7 µs per check of a 20-answer block, more than the rest of the
 * block's gathering); a slab costs that once for many batches. A batch larger than a quarter of a
 * slab gets a buffer of its own. What a slab can keep alive past its batches' answers: up to
 * `slabBytes` per batch still held, so the pool uses it for consensus batches only (a block's
 * checks, answered first and within the block's time), not for admission batches, which may wait.
 */
export class SharedSlabs {
  private slab: SharedArrayBuffer | null = null;
  private used = 0;

  constructor(readonly slabBytes = 256 * 1024) {}

  /**
   * A region of `bytes` bytes no other caller gets, at an offset aligned to 8 (the batch's Int32
   * counter sits at its start). Regions are only ever handed out fresh, never recycled: a batch's
   * answer bytes and claim counter must start at 0 (0 means "not answered", which is how a dead
   * worker's unanswered checks are found), and a worker may still hold its views of a batch the
   * pool has already answered.
   */
  take(bytes: number): { buffer: SharedArrayBuffer; offset: number } {
    if (bytes > this.slabBytes / 4) return { buffer: new SharedArrayBuffer(bytes), offset: 0 };
    const need = (bytes + 7) & ~7;
    if (!this.slab || this.used + need > this.slabBytes) {
      this.slab = new SharedArrayBuffer(this.slabBytes);
      this.used = 0;
    }
    const offset = this.used;
    this.used += need;
    return { buffer: this.slab, offset };
  }
}

/** The checks in shared memory: a buffer of their own, or a region of `slabs` when given. */
export function packBatch(id: number, checks: readonly SignatureCheck[], slabs?: SharedSlabs): PackedBatch {
  const n = checks.length;
  let total = 0;
  for (const c of checks) total += checkBytes(c);
  // claimed (4 bytes), offsets (16 per check, 4-aligned after claimed), answers (n), bytes.
  const offsetsAt = 4;
  const okAt = offsetsAt + 16 * n;
  const bytesAt = okAt + n;
  const size = bytesAt + total;
  const { buffer: shared, offset: base } = slabs
    ? slabs.take(size)
    : { buffer: new SharedArrayBuffer(size), offset: 0 };
  const claimed = new Int32Array(shared, base, 1);
  const offsets = new Uint32Array(shared, base + offsetsAt, 4 * n);
  const ok = new Uint8Array(shared, base + okAt, n);
  const bytes = new Uint8Array(shared, base + bytesAt, total);
  let at = 0;
  for (let i = 0; i < n; i++) {
    const c = checks[i]!;
    offsets[4 * i] = at;
    bytes.set(c.publicKey, at);
    at += c.publicKey.length;
    offsets[4 * i + 1] = at;
    bytes.set(c.signature, at);
    at += c.signature.length;
    offsets[4 * i + 2] = at;
    bytes.set(c.message, at);
    at += c.message.length;
    offsets[4 * i + 3] = at;
  }
  return { id, bytes, offsets, claimed, ok };
}

/** The checks of a batch (views into its buffer). */
export function unpackBatch(batch: Pick<PackedBatch, 'bytes' | 'offsets'>): SignatureCheck[] {
  const { bytes, offsets } = batch;
  const out: SignatureCheck[] = [];
  for (let i = 0; i < offsets.length; i += 4) {
    out.push({
      publicKey: bytes.subarray(offsets[i]!, offsets[i + 1]!),
      signature: bytes.subarray(offsets[i + 1]!, offsets[i + 2]!),
      message: bytes.subarray(offsets[i + 2]!, offsets[i + 3]!),
    });
  }
  return out;
}

/**
 * Takes the batch's checks no other thread has taken, one at a time, and writes their answers;
 * stops early after a failure when `stopAtFailure`. Returns how many this thread checked and
 * whether one of them failed; at most `limit` checks. Each check is taken by exactly one thread (Atomics.add), so a batch
 * shared by a worker and the calling thread is checked once in all.
 */
export function verifyClaimed(
  batch: Pick<PackedBatch, 'bytes' | 'offsets' | 'claimed' | 'ok'>,
  stopAtFailure = false,
  limit = Number.POSITIVE_INFINITY,
): { checked: number; failed: boolean } {
  const n = batch.ok.length;
  let checked = 0;
  let failed = false;
  while (checked < limit) {
    if (Atomics.load(batch.claimed, 0) >= n) break;
    const j = Atomics.add(batch.claimed, 0, 1);
    if (j >= n) break;
    // Cancelled before anyone took it (VerifyPool.cancel): not made, its answer stays "cancelled".
    if (Atomics.load(batch.ok, j) === ANSWER_CANCELLED) continue;
    const pass = verifyOne(batch, j);
    // Not over a cancel that came while it ran: whoever cancelled reads it as not made.
    Atomics.compareExchange(batch.ok, j, ANSWER_NONE, pass ? ANSWER_VERIFIES : ANSWER_FAILS);
    checked++;
    if (!pass) {
      failed = true;
      if (stopAtFailure) break;
    }
  }
  return { checked, failed };
}

/** What `PackedBatch.ok` holds for a check once answered (0: not answered). */
const ANSWER_NONE = 0;
const ANSWER_VERIFIES = 1;
const ANSWER_FAILS = 2;
/** Not to be made (`VerifyPool.cancel`): read as false, never as a verdict. */
export const ANSWER_CANCELLED = 3;

/**
 * A batch whose worker died, finished on this thread: each check it had taken and not answered
 * (the one in progress when it died) and each check nobody took, each checked once; the answers
 * already written (by the worker, or by `assist`) stand. Returns how many were checked here.
 */
export function finishAbandoned(batch: Pick<PackedBatch, 'bytes' | 'offsets' | 'claimed' | 'ok'>): number {
  return finishTaken(batch) + verifyClaimed(batch).checked;
}

/**
 * The checks of a batch that a thread took and did not answer (its worker died meanwhile),
 * checked on this thread; the checks nobody took are left to take. Returns how many.
 */
export function finishTaken(batch: Pick<PackedBatch, 'bytes' | 'offsets' | 'claimed' | 'ok'>): number {
  const taken = Math.min(batch.ok.length, Atomics.load(batch.claimed, 0));
  let checked = 0;
  for (let j = 0; j < taken; j++) {
    if (Atomics.load(batch.ok, j) !== 0) continue;
    Atomics.store(batch.ok, j, verifyOne(batch, j) ? ANSWER_VERIFIES : ANSWER_FAILS);
    checked++;
  }
  return checked;
}

function verifyOne(batch: Pick<PackedBatch, 'bytes' | 'offsets'>, j: number): boolean {
  const { bytes, offsets } = batch;
  const i = 4 * j;
  return ed25519Verify(
    bytes.subarray(offsets[i]!, offsets[i + 1]!),
    bytes.subarray(offsets[i + 2]!, offsets[i + 3]!),
    bytes.subarray(offsets[i + 1]!, offsets[i + 2]!),
  );
}

interface Chunk {
  /** Packed now, when the call is made: what runs is the bytes as they were at the call. */
  batch: PackedBatch;
  lane: VerifyLane;
  /** The `verify` call it is part of (`assist` takes only the given calls' chunks). */
  call: PoolCall;
  /** The call's positions of the batch's checks, in order (`cancel`). */
  at: readonly number[];
  done: (ok: Uint8Array) => void;
  /** The pool closed before this chunk's answer came: its call rejects with VerifyPoolClosed. */
  fail: () => void;
  /** Handed back to the queue once already, its worker having died with it (see `spawn`). */
  resent?: boolean;
}

/** A `verify` call, as its chunks know it. */
interface PoolCall {
  lane: VerifyLane;
  chunks: Chunk[];
}

interface Slot {
  worker: Worker;
  /** Batches handed to the worker, oldest first; it answers its consensus batches first (by id). */
  inFlight: { id: number; chunk: Chunk }[];
  /** Evidence calls handed to the worker, by id, not yet answered (`checkEvidence`). */
  evidence: Map<number, EvidenceCall>;
  /** This worker's own queue of consensus checks: those under the keys sharded to it. */
  waiting: Chunk[];
}

const WORKER_URL = new URL('./verify-worker.js', import.meta.url);

/** Evidence checks per message to a worker (`checkEvidence`). */
const EVIDENCE_CHECKS_PER_MESSAGE = 4;

interface EvidenceCall {
  count: number;
  resolve: (verdicts: (CostlyVerdict | null)[]) => void;
  reject: (err: Error) => void;
}

/** A worker's answer to an evidence call (a batch of signatures is answered by its id alone). */
export interface EvidenceAnswer {
  id: number;
  /** In the call's order; null where the worker's check threw (a bug): the caller checks it. */
  verdicts: (CostlyVerdict | null)[];
}

/** Evidence checks as they go to a worker: after every consensus batch it holds (WorkerBacklog). */
export interface EvidenceBatch {
  id: number;
  consensus: false;
  evidence: readonly CostlyCheck[];
}

/** Bytes of an evidence check as it is copied to a worker: its byte fields, with a little for the rest. */
function evidenceCheckBytes(check: CostlyCheck): number {
  let n = 256 + check.message.length;
  const add = (v: unknown) => {
    if (v instanceof Uint8Array) n += v.length;
    else if (Array.isArray(v)) for (const x of v) add(x);
  };
  if (isConsentCheck(check)) {
    for (const v of Object.values(check.consent)) add(v);
    return n + check.keyMaterial.length;
  }
  for (const v of Object.values(check.evidence)) add(v);
  for (const vendor of check.trust.vendors) {
    add(vendor.roots);
    n += 64 * (vendor.revokedSerials.length + vendor.revokedChipIds.length);
  }
  return n;
}

/**
 * `v` (plain data: arrays, plain objects, bytes, scalars) with every byte array in a buffer of its
 * own: structured clone copies a view together with its whole underlying buffer.
 */
function ownBuffers<T>(v: T): T {
  if (v instanceof Uint8Array)
    return (v.byteOffset === 0 && v.byteLength === v.buffer.byteLength ? v : new Uint8Array(v)) as T;
  if (Array.isArray(v)) return v.map(ownBuffers) as T;
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = ownBuffers(x);
    return out as T;
  }
  return v;
}

/** Checks an evidence batch on this thread (a worker's, or the calling thread without workers). */
export function answerEvidence(checks: readonly CostlyCheck[]): (CostlyVerdict | null)[] {
  return checks.map((c) => {
    try {
      return runCostlyCheck(c);
    } catch {
      return null;
    }
  });
}

/**
 * Which worker checks signatures under `publicKey`: always the same one for a key, so that the
 * key is imported once (each worker keeps its own bounded cache of imported keys, core's
 * `publicKeyObject`) and every later answer of that chip finds it there. Salted per pool, so that
 * nobody can pick keys that all land on one worker.
 */
export function shardOfKey(publicKey: Uint8Array, salt: number, shards: number): number {
  if (shards <= 1) return 0;
  let h = salt | 0;
  const n = publicKey.length;
  for (let i = 0; i < n; i += 4) {
    const word =
      (publicKey[i] ?? 0) |
      ((publicKey[i + 1] ?? 0) << 8) |
      ((publicKey[i + 2] ?? 0) << 16) |
      ((publicKey[i + 3] ?? 0) << 24);
    h = Math.imul(h ^ word, 0x9e3779b1);
    h ^= h >>> 15;
  }
  h = Math.imul(h ^ n, 0x85ebca6b);
  h ^= h >>> 13;
  return (h >>> 0) % shards;
}

export class VerifyPool implements SignatureVerifier {
  private readonly opts: VerifyPoolOptions;
  private readonly slots: Slot[] = [];
  /** Admission checks, taken by whichever worker is idle (after every consensus check). */
  private readonly admission: Chunk[] = [];
  private readonly held: Record<VerifyLane, number> = { consensus: 0, admission: 0 };
  /** Bytes (keys, signatures, messages) of the checks queued or in flight, per lane. */
  private readonly heldBytes: Record<VerifyLane, number> = { consensus: 0, admission: 0 };
  private readonly salt = randomBytes(4).readUInt32LE(0);
  /** Where consensus batches are packed (SharedSlabs: one buffer for many blocks' batches). */
  private readonly slabs = new SharedSlabs();
  private nextBatchId = 1;
  private closed = false;
  /** The admission batch the calling thread is checking, a share per turn (callerShare). */
  private callerChunk: Chunk | null = null;
  private callerTurnScheduled = false;
  /** The calling thread's load since `since`: its event loop's, and how much of it was its share. */
  private callerLoad: {
    since: number;
    elu: EventLoopUtilization;
    idleMs: number;
    ownMs: number;
    share: boolean;
  } = {
    since: performance.now(),
    elu: performance.eventLoopUtilization(),
    idleMs: machineIdleMs(),
    ownMs: 0,
    share: true,
  };
  /** Admission checks made on the calling thread (callerShare), for metrics and tests. */
  checkedOnCaller = 0;
  /** Consensus checks made on the calling thread by `assist`, for metrics and tests. */
  assistedOnCaller = 0;
  /**
   * Checks of the batches a dead worker left that were answered on the calling thread (its block
   * batches at once, admission batches lost a second time), for metrics and tests. Of those, only
   * the checks no thread had answered were verified here (`recheckedOnCaller`).
   */
  checkedForLostWorker = 0;
  /** Signatures verified on the calling thread for dead workers' batches (each unanswered one, once). */
  recheckedOnCaller = 0;
  /** Each pending call's promise, to the token its chunks carry (`assist` scoped to calls). */
  private readonly calls = new WeakMap<Promise<boolean[]>, PoolCall>();
  /** Admission checks cancelled before any thread made them (`cancel`), for metrics and tests. */
  checksCancelled = 0;

  constructor(opts: Partial<VerifyPoolOptions> = {}) {
    // An option given as undefined takes its default (a spread would copy the undefined in, and a
    // depth of undefined dispatches nothing: every call would wait forever).
    const given = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined));
    this.opts = { ...DEFAULT_VERIFY_POOL_OPTIONS, ...given };
    // A worker per core only while the workers really sit below the main thread.
    if (given.threads === undefined && !workersCanSitBelowMain(this.opts.workerNice)) {
      this.opts.threads = defaultVerifyThreads(availableParallelism(), false);
    }
    // A lane bound that is not a number (a lane left out of the object) compared false against
    // every total: that lane would have had no bound at all.
    for (const [name, value, least] of [
      ['threads', this.opts.threads, 0],
      ['batchSize', this.opts.batchSize, 1],
      ['depth', this.opts.depth, 1],
      ['admissionDepth', this.opts.admissionDepth, 1],
      ['admissionBytes', this.opts.admissionBytes, 1],
      ['callerShare', this.opts.callerShare, 0],
      ['maxQueued.consensus', this.opts.maxQueued.consensus, 1],
      ['maxQueued.admission', this.opts.maxQueued.admission, 1],
      ['maxQueuedBytes.consensus', this.opts.maxQueuedBytes.consensus, 1],
      ['maxQueuedBytes.admission', this.opts.maxQueuedBytes.admission, 1],
    ] as const) {
      if (!Number.isSafeInteger(value) || value < least)
        throw new RangeError(`verify pool: ${name} must be an integer of at least ${least}, not ${value}`);
    }
    if (this.opts.threads > MAX_VERIFY_THREADS)
      throw new RangeError(
        `verify pool: threads must be at most ${MAX_VERIFY_THREADS}, not ${this.opts.threads}`,
      );
    if (!(Number.isInteger(this.opts.workerNice) && this.opts.workerNice >= 0 && this.opts.workerNice <= 19))
      throw new RangeError(
        `verify pool: workerNice must be a whole number from 0 to 19, not ${this.opts.workerNice}`,
      );
    if (!(this.opts.callerIdleCores >= 0))
      throw new RangeError(
        `verify pool: callerIdleCores must be 0 or more, not ${this.opts.callerIdleCores}`,
      );
    if (!(this.opts.callerBusyUnder >= 0 && this.opts.callerBusyUnder <= 1))
      throw new RangeError(
        `verify pool: callerBusyUnder must be between 0 and 1, not ${this.opts.callerBusyUnder}`,
      );
    // Node exposes SharedArrayBuffer unless started with --no-harmony-sharedarraybuffer (or
    // --enable-sharedarraybuffer-per-context); without it every call would throw while packing,
    // after its checks were counted in the lane. Said once, here, where the operator sees it.
    if (this.opts.threads > 0 && typeof SharedArrayBuffer !== 'function')
      throw new Error(
        'verify pool: worker threads share each batch through a SharedArrayBuffer, which this process does not have (started with --no-harmony-sharedarraybuffer?); start node without that flag, or use threads: 0',
      );
    for (let i = 0; i < this.opts.threads; i++) this.slots.push(this.spawn(null));
  }

  /**
   * Chip evidence checks on a worker, as one message (structured clone: a registration's evidence
   * and the vendor trust it needs are a few KiB of plain data). Counted in the admission lane, as
   * that many checks: a call past the lane's bound is refused with VerifyPoolBusy, having done
   * nothing. The worker takes it after every consensus batch it holds, so a block's signatures
   * never wait behind certificate chains; it goes to the worker holding the fewest calls.
   * Rejects with VerifyPoolClosed when the pool closes or the worker dies first (nothing known:
   * the caller checks on its own thread).
   */
  checkEvidence(checks: readonly CostlyCheck[]): Promise<(CostlyVerdict | null)[]> {
    if (this.closed) return Promise.reject(new VerifyPoolClosed());
    if (checks.length === 0) return Promise.resolve([]);
    if (this.slots.length === 0) return Promise.resolve(answerEvidence(checks));
    const limit = this.opts.maxQueued.admission;
    if (this.held.admission + checks.length > limit)
      return Promise.reject(new VerifyPoolBusy('admission', limit));
    // Copied into the worker's message queue (structured clone): counted against the lane's bytes.
    // A view (bytes decoded from a gossip frame, a Buffer's slice) would be copied with its whole
    // buffer, the frame: each goes in a buffer of its own, so what is copied is what is counted.
    const own = checks.map(ownBuffers);
    let bytes = 0;
    for (const c of own) bytes += evidenceCheckBytes(c);
    const byteLimit = this.opts.maxQueuedBytes.admission;
    if (this.heldBytes.admission + bytes > byteLimit)
      return Promise.reject(new VerifyPoolBusy('admission', byteLimit, 'bytes'));
    this.held.admission += checks.length;
    this.heldBytes.admission += bytes;
    let settled = false;
    const release = () => {
      if (settled) return;
      settled = true;
      this.held.admission -= checks.length;
      this.heldBytes.admission -= bytes;
    };
    // In messages of a few checks: a worker reads what was sent to it between messages and takes
    // consensus batches first, so a block's signatures wait behind at most one such message
    // (~4 TPM chains, ~16 ms), not behind a whole batch of registrations.
    const parts: Promise<(CostlyVerdict | null)[]>[] = [];
    for (let start = 0; start < own.length; start += EVIDENCE_CHECKS_PER_MESSAGE)
      parts.push(this.sendEvidence(own.slice(start, start + EVIDENCE_CHECKS_PER_MESSAGE)));
    return Promise.all(parts).then(
      (answers) => {
        release();
        return answers.flat();
      },
      (err) => {
        release();
        throw err;
      },
    );
  }

  /** One evidence message to the worker holding the fewest batches and calls. */
  private sendEvidence(checks: readonly CostlyCheck[]): Promise<(CostlyVerdict | null)[]> {
    let slot = this.slots[0]!;
    for (const s of this.slots)
      if (s.inFlight.length + s.evidence.size < slot.inFlight.length + slot.evidence.size) slot = s;
    const id = this.nextBatchId++;
    return new Promise((resolve, reject) => {
      slot.evidence.set(id, { count: checks.length, resolve, reject });
      slot.worker.ref();
      const message: EvidenceBatch = { id, consensus: false, evidence: checks };
      slot.worker.postMessage(message);
    });
  }

  get threads(): number {
    return this.slots.length;
  }

  /** Checks queued or in flight in a lane. */
  queued(lane: VerifyLane): number {
    return this.held[lane];
  }

  /** Bytes of the checks queued or in flight in a lane (bounded by maxQueuedBytes). */
  queuedBytes(lane: VerifyLane): number {
    return this.heldBytes[lane];
  }

  /**
   * The calling thread checks, now, the consensus checks that no worker has started: those of the
   * batches the workers hold (each check is taken by one thread only, `verifyClaimed`) and of the
   * batches still waiting for a worker. A thread that would otherwise wait for a block's checks
   * thus shares them with the workers, whatever their speed, instead of checking a fixed share.
   * With `stopAtFailure` it stops after its first failing check: the block fails there (or
   * execution finds out where), and more checks on this thread would be free work for whoever
   * forged it. At most `limit` checks per call (the caller's thread is busy meanwhile). Admission
   * checks are left to the workers (and to `callerShare`).
   */
  assist(
    stopAtFailure = true,
    limit = Number.POSITIVE_INFINITY,
    of?: readonly Promise<boolean[]>[],
  ): { checked: number; failed: boolean } {
    let checked = 0;
    let failed = false;
    // Scoped to the given calls: unscoped, a forged signature in another block's checks (the next
    // round's proposal, a sync look-ahead) stopped this block's pre-check at once, and this thread
    // did other calls' checks while its own waited.
    let calls: Set<PoolCall> | null = null;
    if (of) {
      calls = new Set();
      for (const p of of) {
        const call = this.calls.get(p);
        if (call) calls.add(call);
      }
    }
    const take = (chunk: Chunk): boolean => {
      if (chunk.lane !== 'consensus' || (calls && !calls.has(chunk.call))) return true;
      if (checked >= limit) return false;
      const r = verifyClaimed(chunk.batch, stopAtFailure, limit - checked);
      checked += r.checked;
      if (r.failed) failed = true;
      return !(r.failed && stopAtFailure);
    };
    let going = true;
    for (const slot of this.slots) {
      for (const { chunk } of slot.inFlight) if (going) going = take(chunk);
    }
    for (const slot of this.slots) {
      for (let k = 0; going && k < slot.waiting.length; ) {
        const chunk = slot.waiting[k]!;
        going = take(chunk);
        // A batch no worker was sent and whose checks are all taken is answered here.
        if (Atomics.load(chunk.batch.claimed, 0) >= chunk.batch.ok.length) {
          slot.waiting.splice(k, 1);
          chunk.done(chunk.batch.ok);
        } else k++;
      }
    }
    this.assistedOnCaller += checked;
    return { checked, failed };
  }

  /**
   * Whether each signature verifies, in order. Throws VerifyPoolBusy at once (nothing queued)
   * when the lane cannot take all of them, and VerifyPoolClosed once the pool is closed (then, or
   * later if `close` comes first: nothing is checked on this thread at close). The bytes are
   * copied before this returns (so a caller may reuse or change its buffers at once), and a lane
   * holds at most `maxQueuedBytes` of such copies.
   */
  verify(checks: readonly SignatureCheck[], lane: VerifyLane = 'admission'): Promise<boolean[]> {
    if (this.closed) return Promise.reject(new VerifyPoolClosed());
    if (checks.length === 0) return Promise.resolve([]);
    const limit = this.opts.maxQueued[lane];
    if (this.held[lane] + checks.length > limit) return Promise.reject(new VerifyPoolBusy(lane, limit));
    if (this.slots.length === 0) {
      return Promise.resolve(checks.map((c) => ed25519Verify(c.publicKey, c.message, c.signature)));
    }
    // The bytes are copied into the pool's own buffers (packBatch) and held until answered: a lane
    // that counted only checks let 50,000 admission checks of 64 KiB messages hold 3 GiB.
    let callBytes = 0;
    for (const c of checks) callBytes += checkBytes(c);
    const byteLimit = this.opts.maxQueuedBytes[lane];
    if (this.heldBytes[lane] + callBytes > byteLimit)
      return Promise.reject(new VerifyPoolBusy(lane, byteLimit, 'bytes'));
    this.heldBytes[lane] += callBytes;
    this.held[lane] += checks.length;
    const result = new Array<boolean>(checks.length);
    // The call's positions of each queue's checks, in order; each queue's go in chunks of at most
    // batchSize per message. Consensus checks (a block's chip answers: many keys, most seen once
    // an epoch or so) go to their key's worker, so that worker's key cache hits, and a block
    // spreads over every worker by its many keys. But one key can hold any number of a block's
    // checks (one account's many transactions, all signed with its key), so no worker takes more
    // than its even share of a call: the rest goes to the workers with room. Admission checks go to
    // the shared queue in even parts (an account's key is hot and cheap to hold in every worker's
    // cache), so that a call of one check goes to whichever worker is idle, not always the first.
    const shards = this.slots.length;
    const queues: { queue: Chunk[]; at: number[] }[] = [];
    if (lane === 'consensus') {
      const share = Math.ceil(checks.length / shards);
      const positions: number[][] = Array.from({ length: shards }, () => []);
      const over: number[] = [];
      for (let i = 0; i < checks.length; i++) {
        const mine = positions[shardOfKey(checks[i]!.publicKey, this.salt, shards)]!;
        if (mine.length < share) mine.push(i);
        else over.push(i);
      }
      let w = 0;
      for (const i of over) {
        while (positions[w]!.length >= share) w++;
        positions[w]!.push(i);
      }
      positions.forEach((at, w) => {
        for (let start = 0; start < at.length; start += this.opts.batchSize)
          queues.push({ queue: this.slots[w]!.waiting, at: at.slice(start, start + this.opts.batchSize) });
      });
    } else {
      const size = Math.max(1, Math.min(this.opts.batchSize, Math.ceil(checks.length / shards)));
      for (let start = 0; start < checks.length; start += size) {
        const at: number[] = [];
        for (let i = start; i < Math.min(start + size, checks.length); i++) at.push(i);
        queues.push({ queue: this.admission, at });
      }
    }
    let left = queues.length;
    let failed = false;
    const call: PoolCall = { lane, chunks: [] };
    const answer = new Promise<boolean[]>((resolve, reject) => {
      for (const { queue, at } of queues) {
        const batch = packBatch(
          0,
          at.map((i) => checks[i]!),
          lane === 'consensus' ? this.slabs : undefined,
        );
        const bytes = batch.bytes.length;
        const chunk: Chunk = {
          batch,
          lane,
          call,
          at,
          done: (ok) => {
            for (let k = 0; k < at.length; k++) result[at[k]!] = Atomics.load(ok, k) === 1;
            this.held[lane] -= at.length;
            this.heldBytes[lane] -= bytes;
            if (--left === 0 && !failed) {
              // Answered: nothing left to cancel, and the batches' buffers are not held on.
              call.chunks.length = 0;
              resolve(result);
            }
          },
          fail: () => {
            this.held[lane] -= at.length;
            this.heldBytes[lane] -= bytes;
            // One part not checked leaves the call without an answer: all of it is unknown.
            if (!failed) reject(new VerifyPoolClosed());
            failed = true;
          },
        };
        call.chunks.push(chunk);
        queue.push(chunk);
      }
      this.dispatch();
      this.scheduleCallerTurn();
    });
    this.calls.set(answer, call);
    return answer;
  }

  /**
   * The admission checks at `positions` of `answer`'s call are not to be made (a block took their
   * transactions while they waited): each not yet answered is marked cancelled in its batch's
   * buffer, so the worker (or the calling thread's share) that takes it skips it (one a worker is
   * already making is made all the same, and counted cancelled), and a batch still
   * queued here whose checks are all answered or cancelled is answered now, without a worker.
   * Their answers are false; the caller knows which it cancelled. Returns how many were marked.
   */
  cancel(answer: Promise<boolean[]>, positions: readonly number[]): number {
    const call = this.calls.get(answer);
    if (call?.lane !== 'admission' || positions.length === 0) return 0;
    const wanted = new Set(positions);
    let marked = 0;
    for (const chunk of call.chunks) {
      const { ok } = chunk.batch;
      let touched = false;
      chunk.at.forEach((position, k) => {
        if (!wanted.has(position)) return;
        touched = true;
        if (Atomics.compareExchange(ok, k, ANSWER_NONE, ANSWER_CANCELLED) === ANSWER_NONE) marked++;
      });
      if (!touched) continue;
      const queued = this.admission.indexOf(chunk);
      if (queued < 0 || ok.some((v) => v === ANSWER_NONE)) continue;
      // Every check of it cancelled (or answered): nothing for a worker to do. Claimed whole, so
      // that nothing else takes from it.
      Atomics.store(chunk.batch.claimed, 0, ok.length);
      this.admission.splice(queued, 1);
      chunk.done(ok);
    }
    this.checksCancelled += marked;
    return marked;
  }

  /**
   * Whether the calling thread's other work left it room in the last window (callerBusyUnder)
   * and the machine a core to run it on (callerIdleCores); measured again once a window has passed. A batch already begun is finished regardless.
   */
  private callerMayShare(): boolean {
    if (this.callerChunk) return true;
    const load = this.callerLoad;
    const now = performance.now();
    if (now - load.since >= CALLER_LOAD_WINDOW_MS) {
      const window = now - load.since;
      const elu = performance.eventLoopUtilization(load.elu);
      const idleMs = machineIdleMs();
      const idleCores = (idleMs - load.idleMs + load.ownMs) / window;
      // A window much longer than asked (nothing to share for a while: nobody measured) is mostly
      // the quiet past and says nothing of the last ~100 ms: a burst after a pause would be shared
      // whatever the main thread is doing now. No share until a fresh window is measured.
      load.share =
        window <= 2 * CALLER_LOAD_WINDOW_MS &&
        (elu.active - load.ownMs) / window < this.opts.callerBusyUnder &&
        idleCores >= this.opts.callerIdleCores;
      load.since = now;
      load.elu = performance.eventLoopUtilization();
      load.idleMs = idleMs;
      load.ownMs = 0;
    }
    return load.share;
  }

  /** A turn of the calling thread on the admission batches no worker has room for, if any wait. */
  private scheduleCallerTurn(): void {
    if (this.callerTurnScheduled || this.opts.callerShare === 0 || this.slots.length === 0) return;
    if (!this.callerChunk && this.admission.length === 0) return;
    this.callerTurnScheduled = true;
    setImmediate(() => this.callerTurn());
  }

  /**
   * Checks up to `callerShare` signatures of the oldest admission batch still waiting for a
   * worker, then yields. The batch leaves the shared queue when the turn takes it, so no worker
   * checks it twice; its answer goes out when its last check is made. Batches can thus finish out
   * of order: admission (admission.ts) decides in the order the calls were made.
   */
  private callerTurn(): void {
    this.callerTurnScheduled = false;
    // Nothing left to share (the workers took it, or close checked it): no retry either.
    if (!this.callerChunk && this.admission.length === 0) return;
    if (!this.callerMayShare()) {
      this.callerTurnScheduled = true;
      setTimeout(() => this.callerTurn(), CALLER_RETRY_MS);
      return;
    }
    const started = performance.now();
    if (!this.callerChunk) {
      const chunk = this.admission.shift();
      if (!chunk) return;
      this.callerChunk = chunk;
    }
    // Taken by claim, like a worker's: a batch handed back by a worker that died keeps the
    // answers that worker wrote, and only its checks nobody took are made here.
    const held = this.callerChunk;
    this.checkedOnCaller += verifyClaimed(held.batch, false, this.opts.callerShare).checked;
    this.callerLoad.ownMs += performance.now() - started;
    if (Atomics.load(held.batch.claimed, 0) >= held.batch.ok.length) {
      this.callerChunk = null;
      held.done(held.batch.ok);
    }
    this.scheduleCallerTurn();
  }

  /**
   * Stops the workers. Whatever is still queued or in flight is rejected (VerifyPoolClosed), so
   * no caller waits forever and none takes an unchecked signature for a checked one. Nothing is
   * checked on this thread: the lanes hold up to 250,000 checks, which would hold a shutdown for
   * seconds. A batch a worker is checking is dropped with its worker (terminated).
   */
  async close(): Promise<void> {
    this.closed = true;
    const slots = this.slots.splice(0);
    for (const s of slots) {
      for (const call of s.evidence.values()) call.reject(new VerifyPoolClosed());
      s.evidence.clear();
      for (const { chunk } of s.inFlight.splice(0)) chunk.fail();
      for (const queued of s.waiting.splice(0)) queued.fail();
    }
    for (const queued of this.admission.splice(0)) queued.fail();
    // The calling thread's batch in progress fails too: its unchecked rest is not checked here.
    const held = this.callerChunk;
    this.callerChunk = null;
    held?.fail();
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  private spawn(queue: Chunk[] | null): Slot {
    const slot: Slot = {
      worker: new Worker(WORKER_URL, {
        workerData: { nice: this.opts.workerNice } satisfies VerifyWorkerData,
      }),
      inFlight: [],
      evidence: new Map(),
      waiting: queue ?? [],
    };
    // The worker answers with a batch's id once it has no check of it left to take: the answers
    // are in the batch's shared buffer, written by the worker and (assist) by this thread. Not
    // always the oldest batch: the worker serves the consensus batches it holds first.
    slot.worker.on('message', (message: number | EvidenceAnswer) => {
      if (typeof message !== 'number') {
        const call = slot.evidence.get(message.id);
        if (!call) return;
        slot.evidence.delete(message.id);
        call.resolve(message.verdicts);
        if (slot.inFlight.length === 0 && slot.evidence.size === 0) slot.worker.unref();
        return;
      }
      const at = slot.inFlight.findIndex((b) => b.id === message);
      if (at < 0) return;
      const [answered] = slot.inFlight.splice(at, 1);
      answered!.chunk.done(answered!.chunk.batch.ok);
      this.dispatch();
      if (slot.inFlight.length === 0 && slot.evidence.size === 0) slot.worker.unref();
    });
    // A worker that dies takes no answer with it: a new one starts in its place, with its queue
    // (the same keys keep going to the same place). What it answered stands (in each batch's
    // buffer), and each check it had taken but not answered (the one in progress) is checked here:
    // no check is lost or made twice, and a check that kills workers kills one. Its block batches'
    // unanswered checks (at most `depth` batches) are checked here at once, as they always were: a
    // round waits on them. Its admission batches (up to `admissionDepth`: 2,000 checks, ~150 ms of
    // this thread) go back to the head of the queue for the workers, once: a batch lost with a
    // second worker is finished here, so a worker that dies at once cannot hold calls forever.
    const replace = () => {
      const i = this.slots.indexOf(slot);
      if (i < 0 || this.closed) return;
      const lost = slot.inFlight.splice(0);
      this.slots[i] = this.spawn(slot.waiting);
      // Its evidence calls are not sent again: evidence that kills a worker would kill the next.
      // Their callers check them on their own thread, as without workers.
      for (const call of slot.evidence.values()) call.reject(new VerifyPoolClosed());
      slot.evidence.clear();
      const again: Chunk[] = [];
      for (const { chunk } of lost) {
        const { batch } = chunk;
        if (chunk.lane === 'admission' && !chunk.resent) {
          // The check it had taken and not answered (the one in progress) is checked here, at
          // most one a batch; what it answered stands, and the rest is left to take.
          this.recheckedOnCaller += finishTaken(batch);
          if (Atomics.load(batch.claimed, 0) < batch.ok.length) {
            chunk.resent = true;
            again.push(chunk);
            continue;
          }
        } else {
          this.checkedForLostWorker += batch.ok.length;
          this.recheckedOnCaller += finishAbandoned(batch);
        }
        chunk.done(batch.ok);
      }
      this.admission.unshift(...again);
      this.dispatch();
      this.scheduleCallerTurn();
    };
    slot.worker.on('error', replace);
    slot.worker.on('exit', replace);
    // An idle worker does not keep the process alive; one with a batch does (dispatch), so that
    // nobody waits on an answer the process exits before. After the listeners: adding one refs.
    slot.worker.unref();
    return slot;
  }

  /**
   * Hands waiting batches to the workers: block checks first (each worker's own, then another's
   * backlog) up to `depth` per worker, then admission up to `admissionDepth` batches in all per
   * worker; each round fills every worker to one more batch before any gets the next (a call split
   * over the workers runs on all of them at once).
   */
  private dispatch(): void {
    for (let held = 0; held < this.opts.depth; held++) {
      for (const slot of this.slots) {
        if (consensusHeld(slot) > held) continue;
        const chunk = slot.waiting.shift() ?? this.takeConsensus();
        if (!chunk) continue;
        this.send(slot, chunk);
      }
    }
    const admissionDepth = Math.max(this.opts.depth, this.opts.admissionDepth);
    for (let held = 0; held < admissionDepth && this.admission.length > 0; held++) {
      for (const slot of this.slots) {
        if (slot.inFlight.length > held) continue;
        if (slot.inFlight.length >= this.opts.depth && bytesHeld(slot) >= this.opts.admissionBytes) continue;
        const chunk = this.admission.shift();
        if (!chunk) break;
        this.send(slot, chunk);
      }
    }
  }

  private send(slot: Slot, chunk: Chunk): void {
    const id = this.nextBatchId++;
    chunk.batch.id = id;
    slot.inFlight.push({ id, chunk });
    slot.worker.ref();
    // The batch's views share one SharedArrayBuffer: nothing is copied, and the chunk keeps the
    // same batch (a worker that dies mid-batch leaves what it answered there).
    const { bytes, offsets, claimed, ok } = chunk.batch;
    const message: WorkerBatch = { id, bytes, offsets, claimed, ok, consensus: chunk.lane === 'consensus' };
    slot.worker.postMessage(message);
  }

  /**
   * For a worker whose own queue is empty: the last consensus chunk of the longest queue, so that
   * block checks come before any admission check on every worker and none idles while another
   * has a backlog (its key cache misses once, which is cheaper than the wait).
   */
  private takeConsensus(): Chunk | undefined {
    let longest: Slot | undefined;
    for (const s of this.slots) if (s.waiting.length > (longest?.waiting.length ?? 0)) longest = s;
    return longest?.waiting.pop();
  }
}

/**
 * Bytes of the batches handed to a worker and not yet answered: shared, not copied, but committed to
 * that worker (an idle second worker cannot take them), hence bounded by `admissionBytes`.
 */
function bytesHeld(slot: Slot): number {
  let n = 0;
  for (const b of slot.inFlight) n += b.chunk.batch.bytes.byteLength + b.chunk.batch.offsets.byteLength;
  return n;
}

/** Consensus batches a worker holds (handed to it, not yet answered). */
function consensusHeld(slot: Slot): number {
  let n = 0;
  for (const b of slot.inFlight) if (b.chunk.lane === 'consensus') n++;
  return n;
}

/** A batch as it goes to a worker: its lane decides which the worker checks first. */
export interface WorkerBatch extends PackedBatch {
  consensus: boolean;
}

/**
 * What a worker holds, in the order it checks it: every consensus batch before any admission
 * batch, each lane in the order it was sent. The worker reads every message already sent before
 * it picks (verify-worker.ts), so a block's checks sent after a backlog of admission batches wait
 * only for the batch in progress.
 */
export class WorkerBacklog<B extends { consensus: boolean } = WorkerBatch | EvidenceBatch> {
  // Plain queues taken with shift: they hold at most `depth` and `admissionDepth` batches (a few
  // dozen), and a batch leaves its queue when it is taken. (A read index that reset only once a
  // queue was read to its end kept every checked batch, bytes and all, for as long as the worker
  // never ran dry: under a steady flood that is forever.)
  private readonly consensus: B[] = [];
  private readonly admission: B[] = [];

  push(batch: B): void {
    if (batch.consensus) this.consensus.push(batch);
    else this.admission.push(batch);
  }

  /** The next batch to check, or undefined when nothing is held. */
  next(): B | undefined {
    return this.consensus.shift() ?? this.admission.shift();
  }

  get size(): number {
    return this.consensus.length + this.admission.length;
  }
}
