/**
 * ONNX Runtime for renters' models. Sessions are cached per model hash (creating one parses and
 * optimises the graph, which costs far more than a small run). The CUDA execution provider is used
 * only when asked for; where this onnxruntime-node build has no CUDA, the runtime says so once in
 * the log and every session runs on the CPU instead of failing jobs.
 */
import type { Logger } from '@unc/node';
import { type RawTensor, TENSOR_TYPES, type TensorType } from '@unc/sdk';
import type * as Ort from 'onnxruntime-node';

let ortModule: typeof Ort | null = null;

/** ONNX Runtime, loaded on first use: it is large, and most commands never run a model. */
export async function loadOrt(): Promise<typeof Ort> {
  ortModule ??= await import('onnxruntime-node');
  return ortModule;
}

function ort(): typeof Ort {
  if (!ortModule) throw new Error('ONNX Runtime is not loaded yet (call loadOrt first)');
  return ortModule;
}

export type ExecutionProviderName = 'cpu' | 'cuda';

/**
 * How ONNX Runtime uses threads in a job process. The provider keeps several job processes (one
 * per job it runs at once), each with its own thread pool; by default ONNX Runtime sizes each pool
 * to the machine and lets its threads spin after every parallel step, waiting for more work. A
 * spinning pool in a job process burns the cores the provider needs for the answer (its receipt,
 * the HTTP reply) and, with several jobs at once, the cores of the other job processes: so job
 * processes do not spin unless told to. `bench:jobs` gives its direct runs the same settings.
 */
export interface OrtThreadOptions {
  /** Threads of one session's intra-op pool; 0 or absent: ONNX Runtime's default (the cores). */
  intraOpThreads?: number;
  /** Whether idle pool threads spin waiting for work (ONNX Runtime's default: yes). */
  spinning?: boolean;
}

/** Session options for an execution provider and thread settings (also the OCR pipeline's). */
export function ortSessionOptions(
  executionProvider: ExecutionProviderName,
  threads: OrtThreadOptions = {},
): Ort.InferenceSession.SessionOptions {
  const spin = threads.spinning === undefined ? undefined : threads.spinning ? '1' : '0';
  return {
    executionProviders: [executionProvider],
    ...(threads.intraOpThreads ? { intraOpNumThreads: threads.intraOpThreads } : {}),
    ...(spin === undefined
      ? {}
      : { extra: { session: { intra_op: { allow_spinning: spin }, inter_op: { allow_spinning: spin } } } }),
  };
}

type TypedArrayCtor = {
  new (buffer: ArrayBuffer, byteOffset?: number, length?: number): ArrayBufferView & { length: number };
};

const ARRAYS: Record<TensorType, TypedArrayCtor> = {
  float32: Float32Array,
  float64: Float64Array,
  int8: Int8Array,
  uint8: Uint8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
  int64: BigInt64Array as unknown as TypedArrayCtor,
  uint64: BigUint64Array as unknown as TypedArrayCtor,
  bool: Uint8Array,
};

export function toOrtTensor(t: RawTensor): Ort.Tensor {
  // A copy: the typed array needs an aligned buffer of its own, and the request body is not.
  const buffer = new ArrayBuffer(t.data.length);
  new Uint8Array(buffer).set(t.data);
  const data = new ARRAYS[t.type](buffer, 0, t.data.length / TENSOR_TYPES[t.type]);
  return new (ort().Tensor)(t.type, data as never, t.dims.map(Number));
}

export function fromOrtTensor(name: string, t: Ort.Tensor): RawTensor {
  if (!(t.type in TENSOR_TYPES))
    throw new Error(`output "${name}" has type ${t.type}, which jobs cannot return`);
  const view = t.data as ArrayBufferView;
  return {
    name,
    type: t.type as TensorType,
    dims: t.dims.map((d) => BigInt(d)),
    data: new Uint8Array(view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength)),
  };
}

export class OnnxRunner {
  private readonly sessions = new Map<string, Promise<Ort.InferenceSession>>();
  private effective: ExecutionProviderName;

  constructor(
    requested: ExecutionProviderName,
    private readonly logger: Logger,
    private readonly maxSessions = 16,
    private readonly threads: OrtThreadOptions = {},
  ) {
    this.effective = requested;
  }

  /** The execution provider sessions actually use ('cuda' falls back to 'cpu' when unavailable). */
  get executionProvider(): ExecutionProviderName {
    return this.effective;
  }

  /** Session options for the execution provider in use; also what the OCR pipeline is given. */
  sessionOptions(): Ort.InferenceSession.SessionOptions {
    return ortSessionOptions(this.effective, this.threads);
  }

  /** Creates a session, falling back from CUDA to the CPU once, with a log line saying why. */
  async createSession(model: Uint8Array | string): Promise<Ort.InferenceSession> {
    const ortLib = await loadOrt();
    const create = () =>
      typeof model === 'string'
        ? ortLib.InferenceSession.create(model, this.sessionOptions())
        : ortLib.InferenceSession.create(model, this.sessionOptions());
    if (this.effective === 'cuda') {
      try {
        return await create();
      } catch (err) {
        const why = (err as Error).message.split('\n')[0];
        // A model that is broken fails on the CPU as well, so only a CUDA-specific failure switches.
        this.effective = 'cpu';
        try {
          const session = await create();
          this.logger.warn('CUDA execution provider unavailable; running ONNX jobs on the CPU', {
            error: why,
          });
          return session;
        } catch (cpuErr) {
          this.effective = 'cuda';
          throw cpuErr;
        }
      }
    }
    return create();
  }

  /** A cached session for a stored model; `load` reads its bytes on the first use. */
  session(hash: string, load: () => Promise<Uint8Array>): Promise<Ort.InferenceSession> {
    let s = this.sessions.get(hash);
    if (!s) {
      if (this.sessions.size >= this.maxSessions) {
        const oldest = this.sessions.keys().next().value as string;
        const evicted = this.sessions.get(oldest)!;
        this.sessions.delete(oldest);
        void evicted.then((x) => x.release()).catch(() => undefined);
      }
      s = load().then((bytes) => this.createSession(bytes));
      // A model that failed to load is not cached as failed forever: the next job retries.
      s.catch(() => this.sessions.delete(hash));
      this.sessions.set(hash, s);
    }
    return s;
  }

  /** Runs a session on checked inputs; every declared input must be given, nothing else. */
  async run(session: Ort.InferenceSession, inputs: RawTensor[]): Promise<RawTensor[]> {
    const names = new Set(session.inputNames);
    for (const t of inputs)
      if (!names.has(t.name))
        throw new Error(
          `the model has no input "${t.name}"; its inputs are ${session.inputNames.join(', ')}`,
        );
    for (const n of session.inputNames)
      if (!inputs.some((t) => t.name === n)) throw new Error(`input "${n}" is missing`);
    const feeds: Record<string, Ort.Tensor> = {};
    for (const t of inputs) feeds[t.name] = toOrtTensor(t);
    const out = await session.run(feeds);
    return session.outputNames.map((n) => fromOrtTensor(n, out[n]!));
  }

  async close(): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    for (const s of all) await s.then((x) => x.release()).catch(() => undefined);
  }
}
