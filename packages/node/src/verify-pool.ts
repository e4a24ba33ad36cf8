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
 * The pool only ever says what core's `ed25519Verify` says (the workers run that very function);
 * callers use a `true` to skip a check that would pass, never to decide differently.
 */
import { availableParallelism } from 'node:os';
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
  /** Whether each signature verifies, in order; may reject with VerifyPoolBusy, having done nothing. */
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
  /**
   * Batches a worker holds at once: the one it checks and the next ones already in its message
   * queue. With 1 a worker idles from its answer until the main thread has read it and sent the
   * next batch, which waits behind whatever the main thread is doing (building or executing a
   * block: 100-250 ms under load), so the second core sat idle a third of the time. With 2 it
   * starts the next batch at once. The cost: a consensus batch queued behind admission waits for
   * at most depth - 1 admission batches already handed to that worker (2 x 128 checks: ~10 ms).
   */
  depth: number;
  /** Checks one lane may hold queued or in flight; more are refused with VerifyPoolBusy. */
  maxQueued: Record<VerifyLane, number>;
}

export const DEFAULT_VERIFY_POOL_OPTIONS: VerifyPoolOptions = {
  // The main thread (execution, consensus, RPC) keeps one core; the workers take the others.
  threads: Math.max(1, availableParallelism() - 1),
  batchSize: 128,
  depth: 2,
  maxQueued: { consensus: 200_000, admission: 50_000 },
};

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
  checks: readonly SignatureCheck[];
  lane: VerifyLane;
  done: (ok: Uint8Array) => void;
}

interface Slot {
  worker: Worker;
  /** Batches handed to the worker, oldest first; it answers them in this order. */
  inFlight: { id: number; chunk: Chunk }[];
}

const WORKER_URL = new URL('./verify-worker.js', import.meta.url);

export class VerifyPool implements SignatureVerifier {
  private readonly opts: VerifyPoolOptions;
  private readonly slots: Slot[] = [];
  private readonly waiting: Record<VerifyLane, Chunk[]> = { consensus: [], admission: [] };
  private readonly held: Record<VerifyLane, number> = { consensus: 0, admission: 0 };
  private nextBatchId = 1;
  private closed = false;

  constructor(opts: Partial<VerifyPoolOptions> = {}) {
    // An option given as undefined takes its default (a spread would copy the undefined in, and a
    // depth of undefined dispatches nothing: every call would wait forever).
    const given = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined));
    this.opts = { ...DEFAULT_VERIFY_POOL_OPTIONS, ...given };
    for (const [name, value, least] of [
      ['threads', this.opts.threads, 0],
      ['batchSize', this.opts.batchSize, 1],
      ['depth', this.opts.depth, 1],
    ] as const) {
      if (!Number.isSafeInteger(value) || value < least)
        throw new RangeError(`verify pool: ${name} must be an integer of at least ${least}, not ${value}`);
    }
    for (let i = 0; i < this.opts.threads; i++) this.slots.push(this.spawn());
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
   * when the lane cannot take all of them.
   */
  verify(checks: readonly SignatureCheck[], lane: VerifyLane = 'admission'): Promise<boolean[]> {
    if (checks.length === 0) return Promise.resolve([]);
    const limit = this.opts.maxQueued[lane];
    if (this.held[lane] + checks.length > limit) return Promise.reject(new VerifyPoolBusy(lane, limit));
    if (this.slots.length === 0 || this.closed) {
      return Promise.resolve(checks.map((c) => ed25519Verify(c.publicKey, c.message, c.signature)));
    }
    this.held[lane] += checks.length;
    const result = new Array<boolean>(checks.length);
    let left = 0;
    return new Promise((resolve) => {
      // A call is split over every worker: a block of 40 answers in one batch of up to batchSize
      // would go to one worker and leave the other cores idle while the block waits for it.
      const size = Math.max(1, Math.min(this.opts.batchSize, Math.ceil(checks.length / this.slots.length)));
      for (let start = 0; start < checks.length; start += size) {
        const part = checks.slice(start, start + size);
        left++;
        this.waiting[lane].push({
          checks: part,
          lane,
          done: (ok) => {
            for (let i = 0; i < part.length; i++) result[start + i] = ok[i] === 1;
            this.held[lane] -= part.length;
            if (--left === 0) resolve(result);
          },
        });
      }
      this.dispatch();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    // Whatever is still queued is checked here, so no caller waits forever.
    for (const lane of ['consensus', 'admission'] as const) {
      for (const chunk of this.waiting[lane].splice(0)) chunk.done(verifyHere(chunk.checks));
    }
    const slots = this.slots.splice(0);
    for (const s of slots) {
      for (const { chunk } of s.inFlight.splice(0)) chunk.done(verifyHere(chunk.checks));
    }
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  private spawn(): Slot {
    const slot: Slot = { worker: new Worker(WORKER_URL), inFlight: [] };
    slot.worker.on('message', (m: { id: number; ok: Uint8Array }) => {
      const head = slot.inFlight[0];
      if (!head || m.id !== head.id) return;
      slot.inFlight.shift();
      head.chunk.done(m.ok);
      this.dispatch();
      if (slot.inFlight.length === 0) slot.worker.unref();
    });
    // A worker that dies takes no answer with it: its batch is checked here and a new one starts.
    const replace = () => {
      const i = this.slots.indexOf(slot);
      if (i < 0 || this.closed) return;
      const lost = slot.inFlight.splice(0);
      this.slots[i] = this.spawn();
      for (const { chunk } of lost) chunk.done(verifyHere(chunk.checks));
      this.dispatch();
    };
    slot.worker.on('error', replace);
    slot.worker.on('exit', replace);
    // An idle worker does not keep the process alive; one with a batch does (dispatch), so that
    // nobody waits on an answer the process exits before. After the listeners: adding one refs.
    slot.worker.unref();
    return slot;
  }

  /**
   * Hands waiting batches to the workers, consensus first, filling every worker to one batch
   * before any gets a second (a call split over the workers runs on all of them at once).
   */
  private dispatch(): void {
    for (let held = 0; held < this.opts.depth; held++) {
      for (const slot of this.slots) {
        if (slot.inFlight.length > held) continue;
        const chunk = this.waiting.consensus.shift() ?? this.waiting.admission.shift();
        if (!chunk) return;
        this.send(slot, chunk);
      }
    }
  }

  private send(slot: Slot, chunk: Chunk): void {
    const id = this.nextBatchId++;
    slot.inFlight.push({ id, chunk });
    slot.worker.ref();
    const batch = packBatch(id, chunk.checks);
    slot.worker.postMessage(batch, [batch.bytes.buffer as ArrayBuffer, batch.offsets.buffer as ArrayBuffer]);
  }
}

function verifyHere(checks: readonly SignatureCheck[]): Uint8Array {
  return Uint8Array.from(checks, (c) => (ed25519Verify(c.publicKey, c.message, c.signature) ? 1 : 0));
}
