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
 * A call's checks are packed into one buffer per batch when the call is made.
 *
 * The pool only ever says what core's `ed25519Verify` says (the workers run that very function);
 * callers use a `true` to skip a check that would pass, never to decide differently.
 */
import { randomBytes } from 'node:crypto';
import { availableParallelism, cpus } from 'node:os';
import { type EventLoopUtilization, performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { ed25519Verify } from '@unc/core';

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

export interface VerifyPoolOptions {
  /** Worker threads; 0 checks on the calling thread (default: the machine's cores but one). */
  threads: number;
  /** Checks sent to a worker at once. */
  batchSize: number;
  /** Checks one lane may hold queued or in flight; more are refused with VerifyPoolBusy. */
  maxQueued: Record<VerifyLane, number>;
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
   * each) is megabytes, a copy of which each worker holds. The default never binds for ordinary
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
}

export const DEFAULT_VERIFY_POOL_OPTIONS: VerifyPoolOptions = {
  // The main thread (execution, consensus, RPC) keeps one core; the workers take the others.
  threads: Math.max(1, availableParallelism() - 1),
  batchSize: 128,
  maxQueued: { consensus: 200_000, admission: 50_000 },
  depth: 2,
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
  ) {
    super(`signature verification is saturated (${limit} checks queued for ${lane}); retry shortly`);
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
 * A batch as it crosses to a worker: one buffer for all the bytes (a view's whole underlying
 * buffer would otherwise be copied with it, and a transaction's signature is a view into the
 * message it arrived in).
 */
export interface PackedBatch {
  id: number;
  bytes: Uint8Array;
  /** For check i: [message start, message end) in `bytes`; key and signature precede the message. */
  offsets: Uint32Array;
}

export function packBatch(id: number, checks: readonly SignatureCheck[]): PackedBatch {
  let total = 0;
  for (const c of checks) total += c.publicKey.length + c.signature.length + c.message.length + 8;
  const bytes = new Uint8Array(total);
  const offsets = new Uint32Array(checks.length * 4);
  let at = 0;
  checks.forEach((c, i) => {
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
  });
  return { id, bytes, offsets };
}

export function unpackBatch(batch: PackedBatch): SignatureCheck[] {
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

interface Chunk {
  /** Packed now, when the call is made: what runs is the bytes as they were at the call. */
  batch: PackedBatch;
  lane: VerifyLane;
  done: (ok: Uint8Array) => void;
  /** The pool closed before this chunk's answer came: its call rejects with VerifyPoolClosed. */
  fail: () => void;
  /** Handed back to the queue once already, its worker having died with it (see `spawn`). */
  resent?: boolean;
}

interface Slot {
  worker: Worker;
  /** Batches handed to the worker, oldest first; it answers its consensus batches first (by id). */
  inFlight: { id: number; chunk: Chunk }[];
  /** This worker's own queue of consensus checks: those under the keys sharded to it. */
  waiting: Chunk[];
}

const WORKER_URL = new URL('./verify-worker.js', import.meta.url);

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
  private readonly salt = randomBytes(4).readUInt32LE(0);
  private nextBatchId = 1;
  private closed = false;
  /** The admission batch the calling thread is checking, a share per turn (callerShare). */
  private callerChunk: { chunk: Chunk; ok: Uint8Array; next: number } | null = null;
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
  /** Checks of batches whose worker died, made on the calling thread instead (see `spawn`). */
  checkedForLostWorker = 0;

  constructor(opts: Partial<VerifyPoolOptions> = {}) {
    // An option given as undefined takes its default (a spread would copy the undefined in, and a
    // depth of undefined dispatches nothing: every call would wait forever).
    const given = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined));
    this.opts = { ...DEFAULT_VERIFY_POOL_OPTIONS, ...given };
    for (const [name, value, least] of [
      ['threads', this.opts.threads, 0],
      ['batchSize', this.opts.batchSize, 1],
      ['depth', this.opts.depth, 1],
      ['admissionDepth', this.opts.admissionDepth, 1],
      ['admissionBytes', this.opts.admissionBytes, 1],
      ['callerShare', this.opts.callerShare, 0],
    ] as const) {
      if (!Number.isSafeInteger(value) || value < least)
        throw new RangeError(`verify pool: ${name} must be an integer of at least ${least}, not ${value}`);
    }
    if (!(this.opts.callerIdleCores >= 0))
      throw new RangeError(
        `verify pool: callerIdleCores must be 0 or more, not ${this.opts.callerIdleCores}`,
      );
    if (!(this.opts.callerBusyUnder >= 0 && this.opts.callerBusyUnder <= 1))
      throw new RangeError(
        `verify pool: callerBusyUnder must be between 0 and 1, not ${this.opts.callerBusyUnder}`,
      );
    for (let i = 0; i < this.opts.threads; i++) this.slots.push(this.spawn(null));
  }

  get threads(): number {
    return this.slots.length;
  }

  /** Checks queued or in flight in a lane. */
  queued(lane: VerifyLane): number {
    return this.held[lane];
  }

  /**
   * Whether each signature verifies, in order. Throws VerifyPoolBusy at once (nothing queued)
   * when the lane cannot take all of them, and VerifyPoolClosed once the pool is closed (then, or
   * later if `close` comes first: nothing is checked on this thread at close). The bytes are
   * copied before this returns.
   */
  verify(checks: readonly SignatureCheck[], lane: VerifyLane = 'admission'): Promise<boolean[]> {
    if (this.closed) return Promise.reject(new VerifyPoolClosed());
    if (checks.length === 0) return Promise.resolve([]);
    const limit = this.opts.maxQueued[lane];
    if (this.held[lane] + checks.length > limit) return Promise.reject(new VerifyPoolBusy(lane, limit));
    if (this.slots.length === 0) {
      return Promise.resolve(checks.map((c) => ed25519Verify(c.publicKey, c.message, c.signature)));
    }
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
    return new Promise((resolve, reject) => {
      for (const { queue, at } of queues) {
        queue.push({
          batch: packBatch(
            0,
            at.map((i) => checks[i]!),
          ),
          lane,
          done: (ok) => {
            for (let k = 0; k < at.length; k++) result[at[k]!] = ok[k] === 1;
            this.held[lane] -= at.length;
            if (--left === 0 && !failed) resolve(result);
          },
          fail: () => {
            this.held[lane] -= at.length;
            // One part not checked leaves the call without an answer: all of it is unknown.
            if (!failed) reject(new VerifyPoolClosed());
            failed = true;
          },
        });
      }
      this.dispatch();
      this.scheduleCallerTurn();
    });
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
      this.callerChunk = { chunk, ok: new Uint8Array(chunk.batch.offsets.length / 4), next: 0 };
    }
    const held = this.callerChunk;
    const end = Math.min(held.ok.length, held.next + this.opts.callerShare);
    verifyPackedRange(held.chunk.batch, held.ok, held.next, end);
    this.checkedOnCaller += end - held.next;
    held.next = end;
    this.callerLoad.ownMs += performance.now() - started;
    if (held.next === held.ok.length) {
      this.callerChunk = null;
      held.chunk.done(held.ok);
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
      for (const { chunk } of s.inFlight.splice(0)) chunk.fail();
      for (const queued of s.waiting.splice(0)) queued.fail();
    }
    for (const queued of this.admission.splice(0)) queued.fail();
    // The calling thread's batch in progress fails too: its unchecked rest is not checked here.
    const held = this.callerChunk;
    this.callerChunk = null;
    held?.chunk.fail();
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  private spawn(queue: Chunk[] | null): Slot {
    const slot: Slot = {
      worker: new Worker(WORKER_URL),
      inFlight: [],
      waiting: queue ?? [],
    };
    slot.worker.on('message', (m: { id: number; ok: Uint8Array }) => {
      // Not always the oldest: the worker serves the consensus batches it holds first.
      const at = slot.inFlight.findIndex((b) => b.id === m.id);
      if (at < 0) return;
      const [answered] = slot.inFlight.splice(at, 1);
      answered!.chunk.done(m.ok);
      this.dispatch();
      if (slot.inFlight.length === 0) slot.worker.unref();
    });
    // A worker that dies takes no answer with it: a new one starts in its place, with its queue
    // (the same keys keep going to the same place). Its block checks (at most `depth` batches) are
    // checked here at once, as they always were: a round waits on them. Its admission batches (up
    // to `admissionDepth`: 2,000 checks, ~150 ms of this thread) go back to the head of the queue
    // for the workers, once: a batch lost with a second worker is checked here, so a batch that
    // kills every worker it meets costs two workers, not all of them forever.
    const replace = () => {
      const i = this.slots.indexOf(slot);
      if (i < 0 || this.closed) return;
      const lost = slot.inFlight.splice(0);
      this.slots[i] = this.spawn(slot.waiting);
      const again: Chunk[] = [];
      for (const { chunk } of lost) {
        if (chunk.lane === 'admission' && !chunk.resent) {
          chunk.resent = true;
          again.push(chunk);
          continue;
        }
        this.checkedForLostWorker += chunk.batch.offsets.length / 4;
        chunk.done(verifyPacked(chunk.batch));
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
    // The chunk keeps its batch (a worker that dies mid-batch leaves it to be checked here), so
    // the worker gets a copy: two small buffers per message, never an object per check.
    const { bytes, offsets } = chunk.batch;
    const message: WorkerBatch = { id, bytes, offsets, consensus: chunk.lane === 'consensus' };
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

/** Bytes of the batches a worker holds (its copies of them). */
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
export class WorkerBacklog {
  // Plain queues taken with shift: they hold at most `depth` and `admissionDepth` batches (a few
  // dozen), and a batch leaves its queue when it is taken. (A read index that reset only once a
  // queue was read to its end kept every checked batch, bytes and all, for as long as the worker
  // never ran dry: under a steady flood that is forever.)
  private readonly consensus: WorkerBatch[] = [];
  private readonly admission: WorkerBatch[] = [];

  push(batch: WorkerBatch): void {
    (batch.consensus ? this.consensus : this.admission).push(batch);
  }

  /** The next batch to check, or undefined when nothing is held. */
  next(): WorkerBatch | undefined {
    return this.consensus.shift() ?? this.admission.shift();
  }

  get size(): number {
    return this.consensus.length + this.admission.length;
  }
}

/** Each check of a packed batch, checked on this thread: 1 where it verifies. */
export function verifyPacked(batch: PackedBatch): Uint8Array {
  const ok = new Uint8Array(batch.offsets.length / 4);
  verifyPackedRange(batch, ok, 0, ok.length);
  return ok;
}

/** Checks `from` to `end` (exclusive) of a packed batch into `ok`: 1 where it verifies. */
function verifyPackedRange(batch: PackedBatch, ok: Uint8Array, from: number, end: number): void {
  const { bytes, offsets } = batch;
  for (let j = from, i = 4 * from; j < end; i += 4, j++) {
    const key = bytes.subarray(offsets[i]!, offsets[i + 1]!);
    const signature = bytes.subarray(offsets[i + 1]!, offsets[i + 2]!);
    const message = bytes.subarray(offsets[i + 2]!, offsets[i + 3]!);
    ok[j] = ed25519Verify(key, message, signature) ? 1 : 0;
  }
}
