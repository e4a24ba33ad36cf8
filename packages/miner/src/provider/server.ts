/**
 * The provider API of the miner agent (PROTOCOL.md §8): renters of a lease on one of this agent's
 * chips upload ONNX models and run jobs; every job's result comes with a receipt signed by the
 * leased chip through its attestation profile.
 *
 *   GET  /v1/health            no auth: chain, chips, OCR model hash, queue, limits
 *   POST /v1/models            ONNX bytes → { modelHash, size, stored }; the uploader holds the model
 *                              (a job runs only a model its renter key uploaded)
 *   POST /v1/jobs              { model: <hash hex> | "ocr", inputs | image, wait? } → job view
 *                              (202 with its id only when waited for and past the renter's
 *                              unread-answers share: GET it)
 *   POST /v1/jobs/batch        { model, jobs: [{ inputs | image }] } → every job's result and
 *                              proof, one receipt signed over their Merkle root (202 with its
 *                              batch id only past the share, as for a job: GET it)
 *   GET  /v1/jobs/<job id>     job view, or a batch's whole answer kept for it (only to the
 *                              lease that ran it)
 *
 * Every other request is signed by the lease's renter key (see @unc/sdk jobs.ts); the lease must
 * be active on chain, be for one of this agent's chips, and name the signing key as its renter.
 * All of that is checked from the headers (the signed body hash is one of them) before a byte of
 * the body is read; the body is then hashed as it streams in (models straight to a file) and must
 * match. Bytes being uploaded are capped in total and per renter, used nonces survive a restart,
 * every renter has its own share of the nonce cache and of the job queue, and lookups of leases
 * the chain does not know are cached and rate-limited per client address.
 *
 * Jobs (model loads included) run in separate processes (sandbox.ts) with a time and a memory
 * limit, so nothing a renter sends can stall this process, the agent's heartbeats or a node that
 * shares it. Errors are JSON { error: { code, message } } with the HTTP status that says who must
 * act; messages never carry local paths or runtime internals (those go to the log).
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import {
  BATCH_JOB_DONE,
  BATCH_JOB_FAILED,
  type BatchJobLeaf,
  type BatchReceipt,
  batchJobIdOf,
  batchLeafHash,
  batchReceiptDigest,
  batchTree,
  equalBytes,
  fromHex,
  type HeartbeatEvidence,
  type JobReceipt,
  jobIdOf,
  MAX_BATCH_JOBS,
  receiptDigest,
  type SignedBatchReceipt,
  type SignedReceipt,
  toHex,
  utf8,
} from '@unc/core';
import { createLogger, type Logger } from '@unc/node';
import {
  type BatchJobView,
  type BatchView,
  batchReceiptToJson,
  encodeSignedBatchReceipt,
  encodeSignedReceipt,
  failedJobOutputHash,
  imageHash,
  type JobView,
  OCR_MODEL,
  type OcrLine,
  ocrLinesHash,
  type ProviderHealth,
  type RawTensor,
  receiptToJson,
  tensorsFromJson,
  tensorsHash,
  tensorsToJson,
} from '@unc/sdk';
import type { ChipSigner } from '../agent/signers.js';
import { type AuthenticatedRequest, RequestAuthenticator } from './auth.js';
import { HttpError } from './errors.js';
import { checkUploadPace, DEFAULT_UPLOAD_PACE, listenOn, type UploadPace, watchUploadPace } from './http.js';
import type { JobIsolationMode } from './job-isolation.js';
import { ResultKeeps } from './keeps.js';
import { type LeaseSource, leaseAt, type ProviderLease } from './lease.js';
import { ModelStore, StoreFullError } from './models.js';
import { DEFAULT_OCR_MODELS, OcrEngine, ocrModelHash } from './ocr.js';
import type { ExecutionProviderName, OrtThreadOptions } from './onnx.js';
import { JobQueue, QueueFullError } from './queue.js';
import { JobSandbox, SandboxError } from './sandbox.js';
import { redact } from './sandbox-protocol.js';
import { type JobTiming, type SandboxTiming, StageClock } from './stages.js';
import {
  clientCertificateRefusal,
  ensureProviderCertificate,
  type ProviderTlsOptions,
  serverTlsOptions,
  watchProviderCertificate,
} from './tls.js';

export interface ProviderOptions {
  chainId: string;
  /** The chips whose leases this provider serves; each signs the receipts of its jobs. */
  signers: ChipSigner[];
  leases: LeaseSource;
  /** Directory of the content-addressed model store. */
  modelDir: string;
  /**
   * Bytes of models kept, all renters together (default 16 GiB); past it models not in use by a
   * queued or running job are deleted whole (they can be uploaded again): models held by nobody
   * first, then the one whose lightest holder holds the most (each model counted whole against
   * every renter that uploaded it), so the least recently used of the renter holding the most.
   */
  maxStoreBytes?: number;
  /** Bytes of models one renter key holds, each counted whole (default min(4 GiB, maxStoreBytes)); its own go first. */
  maxStoreBytesPerRenter?: number;
  /** Directory of the provider's own state (the used-nonce log); the model directory by default. */
  stateDir?: string;
  /** 127.0.0.1 unless told otherwise. */
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  executionProvider?: ExecutionProviderName;
  /** ONNX Runtime's threads in each job process (default: no spinning; see OrtThreadOptions). */
  onnxThreads?: OrtThreadOptions;
  /** Jobs run at once, each in its own job process (also the number of processes kept warm). */
  concurrency?: number;
  maxQueued?: number;
  /** Jobs one renter key may have queued or running at once. */
  maxJobsPerRenter?: number;
  /** Jobs one POST /v1/jobs/batch may hold (never more than maxJobsPerRenter). */
  maxBatchJobs?: number;
  /** Wall-clock limit of one job (or model load); its process is killed past it. */
  jobTimeoutMs?: number;
  /**
   * How long a group of a batch's jobs runs before, with other jobs waiting, it gives its runner
   * up for their turn (default jobTimeoutMs): no job waits behind a whole group of slow jobs.
   */
  maxGroupMs?: number;
  /** Resident memory limit of a job process, bytes; its process is killed past it. */
  jobMemoryBytes?: number;
  /**
   * OS isolation of the job processes (job-isolation.ts; default `auto`: bubblewrap where it
   * works, else none with a warning; `bwrap`: the start fails, JOB_ISOLATION_UNAVAILABLE, without it).
   */
  jobIsolation?: JobIsolationMode;
  /** Largest job request body (JSON with tensors or a base64 image). */
  maxBodyBytes?: number;
  /** Output bytes (raw tensor data) one job may return; maxBodyBytes by default. */
  maxOutputBytes?: number;
  maxModelBytes?: number;
  /**
   * Body bytes being received at once, all requests together (more: 503). Bytes are booked as
   * they arrive, not at the declared length: a request whose body does not come books nothing.
   */
  maxUploadBytesInFlight?: number;
  /** Body bytes being received at once for one renter key (more: 429). */
  maxUploadBytesPerRenter?: number;
  /**
   * Of maxUploadBytesInFlight, bytes only job bodies (/v1/jobs, /v1/jobs/batch) may use, each
   * renter key up to jobReserveBytesPerRenter: model uploads (and job bodies past their renter's
   * share) together stay under the rest, so uploads never starve jobs (default: 4 job bodies, as
   * much as leaves room for one largest model).
   */
  jobUploadReserveBytes?: number;
  /**
   * Of the job reserve, the job body bytes one renter key may hold: its job bodies past this
   * share go in the rest of the cap (shared with model uploads), and wait (429) while that is
   * taken. Default max(maxBodyBytes, jobUploadReserveBytes / 4): the reserve holds at least four
   * renters' job bodies whatever one or two renters send.
   */
  jobReserveBytesPerRenter?: number;
  /**
   * Models one renter key may have being received or waiting for their check at once (more:
   * 429): a received model waits for its check on disk, no longer booked in flight (default 2).
   * All renters' waiting models together are kept under this many times the models' share of
   * the in-flight cap (one renter alone cannot fill more); past it a received model keeps its
   * in-flight booking until its check ends.
   */
  maxModelChecksPerRenter?: number;
  /**
   * How slowly a body may arrive before it is refused (408) and its bytes are no longer booked
   * against the two caps above (default DEFAULT_UPLOAD_PACE: 1 MiB/s after 10 s, no gap over 10 s).
   */
  uploadPace?: Partial<UploadPace>;
  /** Accepted distance of a request's timestamp from this clock. */
  authWindowMs?: number;
  /** Nonces remembered at once for one renter key (requests per 2 × authWindowMs). */
  maxNoncesPerRenter?: number;
  /** How long a lease read from the chain is trusted before it is read again. */
  leaseCacheMs?: number;
  /** How long "the chain knows no such lease" is trusted. */
  unknownLeaseCacheMs?: number;
  /** Lease reads from the chain one client address may cause: a burst, then this many a second. */
  leaseLookupBurst?: number;
  leaseLookupsPerSecond?: number;
  /** Finished jobs kept for GET /v1/jobs/<id>; the oldest are forgotten first. */
  maxJobsKept?: number;
  /** Output bytes (base64 and OCR text) of finished jobs kept, all together; the oldest go first. */
  maxKeptOutputBytes?: number;
  /**
   * Bytes of a renter key's answers written and not yet taken by its connections: at or past it,
   * its next requests get 429 `ANSWERS_UNREAD` until it reads them (default 4 × maxOutputBytes);
   * a waited job whose answer would pass it is answered 202 with its id only (GET it).
   */
  maxUnreadAnswerBytesPerRenter?: number;
  /** How long an answer may take to be taken by its connection; past it the connection is closed. */
  answerTimeoutMs?: number;
  /**
   * Serve https (TLS 1.3) with the certificate kept in this directory (created on first start);
   * without it the API is plain http, for dev chains and for a reverse proxy that terminates TLS.
   */
  tls?: ProviderTlsOptions;
  logger?: Logger;
  /**
   * Called with the stages of every job sent alone (POST /v1/jobs, waited for) once its answer is
   * written: where its time went, from the request's headers to the answer (stages.ts), and the
   * CPU ms its job process spent on the run. For measurements (bench:jobs --stages); without it
   * nothing is timed.
   */
  onJobStages?: (timing: JobTiming) => void;
}

/**
 * A job of the store of finished jobs (GET /v1/jobs/<id>), or a batch answered 202 with its id
 * only (GET /v1/jobs/<batch id> gives its whole answer).
 */
interface Job {
  view: JobView | BatchView;
  done: Promise<void>;
  /** What its view keeps of outputs (base64 and text), counted once it finished. */
  bytes: number;
}

/** What a job's run gives: its outputs (a model) or lines (OCR), and their content hash. */
interface JobOutcome {
  outputs?: RawTensor[];
  ocr?: OcrLine[];
  outputHash: Uint8Array;
}

/** A checked job: its input hash, its input, and the work that runs it alone. */
interface ParsedJob {
  inputHash: Uint8Array;
  input: { image: Uint8Array } | { tensors: RawTensor[] };
  work: (clock?: StageClock) => Promise<JobOutcome>;
}

/** Jobs of a batch one job process runs in one go: the lease is read again before each group. */
const MAX_GROUP_JOBS = 8;

interface JobModel {
  hash: Uint8Array;
  ocr: boolean;
}

interface Chip {
  signer: ChipSigner;
  /** Receipts of one chip are signed one at a time (a TPM quote is several commands). */
  lock: Promise<unknown>;
}

/** The longest delay Node's timers keep: past it a timer fires after 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Checks an option used as a timer's delay (unset: its default is used). */
function timerMs(name: string, value: number | undefined): void {
  if (value === undefined) return;
  if (!(typeof value === 'number' && value > 0 && value <= MAX_TIMER_MS))
    throw new Error(`${name} must be a positive number of ms up to ${MAX_TIMER_MS}, not ${value}`);
}

/** Bodies of requests refused before they were read: up to this size Node reads and drops them. */
const DRAIN_LIMIT = 64 * 1024;
const CONTENT_TAG = utf8('UNC/content');

/** contentHash (core, market/receipt.ts) computed over a body as it streams in. */
function contentHasher() {
  const h = createHash('sha256');
  h.update(Uint8Array.of(CONTENT_TAG.length));
  h.update(CONTENT_TAG);
  return h;
}

/** The content hash of an empty body, the only body a GET may have. */
const EMPTY_BODY_HASH = new Uint8Array(contentHasher().digest());

/**
 * The lookup budget's key for a client address: an IPv4 address, or the /64 of an IPv6 one (one
 * host holds a whole /64 and could otherwise take a fresh budget per address).
 */
export function lookupKey(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (!address.includes(':')) return address;
  const [head = '', tail] = address.toLowerCase().split('%')[0]!.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups =
    tail === undefined
      ? left
      : [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right];
  return `${groups
    .slice(0, 4)
    .map((g) => (Number.parseInt(g, 16) || 0).toString(16))
    .join(':')}::/64`;
}

/**
 * Bytes a finished job's view keeps of its outputs (base64 tensor data, OCR text); a batch's,
 * those of its jobs and their proofs.
 */
function keptBytesOf(view: JobView | BatchView | BatchJobView): number {
  if ('jobs' in view) return view.jobs.reduce((n, j) => n + keptBytesOf(j), 0);
  let n = 0;
  for (const t of Object.values(view.outputs ?? {})) n += t.data.length;
  if (view.ocr) n += 2 * view.ocr.text.length + 64 * view.ocr.lines.length;
  if ('proof' in view) n += 66 * (view.proof.length + 1);
  return n;
}

/** Whether a stored job has finished (a batch is stored only once it has). */
function finished(job: Job): boolean {
  return !('status' in job.view) || (job.view.status !== 'queued' && job.view.status !== 'running');
}

/** The job process's V8 heap and ONNX session cache, fixed for every provider (bench:ocr-run builds the same). */
export const PROVIDER_JOB_PROCESS_LIMITS = { heapMb: 1024, maxSessions: 16 } as const;

export class ProviderServer {
  readonly chainId: string;
  private readonly logger: Logger;
  private readonly auth: RequestAuthenticator;
  private readonly store: ModelStore;
  private readonly sandbox: JobSandbox;
  private readonly queue: JobQueue;
  private readonly chips = new Map<string, Chip>();
  private readonly leaseCache = new Map<string, { lease: ProviderLease | null; until: number }>();
  private readonly lookupBuckets = new Map<string, { tokens: number; at: number }>();
  /** Lease ids the chain has shown to exist: reading them again is not rate-limited. */
  private readonly knownLeases = new Set<string>();
  private readonly jobs = new Map<string, Job>();
  private readonly jobsByRenter = new Map<string, number>();
  private readonly uploadsByRenter = new Map<string, number>();
  /** Of uploadsByRenter, the bytes of job bodies. */
  private readonly jobUploadsByRenter = new Map<string, number>();
  /**
   * Job body bytes past their renter's share of the reserve, all renters together: with model
   * uploads, kept under maxUploadBytesInFlight − the job reserve (`maxModelUploadBytes`).
   */
  private jobBytesPastShare = 0;
  private uploading = 0;
  /**
   * Of `uploading`, the bytes of model uploads: with `jobBytesPastShare`, capped at
   * maxUploadBytesInFlight − the job reserve.
   */
  private modelUploading = 0;
  /** Bytes of received models waiting for (or in) their check: on disk, out of the in-flight caps. */
  private modelsAwaitingCheck = 0;
  /** Models of a renter being received or waiting for their check (temporary files). */
  private readonly modelChecksByRenter = new Map<string, number>();
  private readonly maxModelUploadBytes: number;
  private readonly maxModelBytesAwaitingCheck: number;
  private readonly maxModelChecksPerRenter: number;
  private readonly maxBodyBytes: number;
  private readonly maxModelBytes: number;
  private readonly maxUploadBytesInFlight: number;
  private readonly maxUploadBytesPerRenter: number;
  private readonly jobReserveBytesPerRenter: number;
  private readonly uploadPace: UploadPace;
  private readonly maxJobsPerRenter: number;
  private readonly maxBatchJobs: number;
  private readonly leaseCacheMs: number;
  private readonly unknownLeaseCacheMs: number;
  private readonly leaseLookupBurst: number;
  private readonly leaseLookupsPerSecond: number;
  private readonly maxJobsKept: number;
  private readonly maxKeptOutputBytes: number;
  private keptBytes = 0;
  /**
   * Bytes of each renter key's answers handed to their connections and not yet taken by them (a
   * client that does not read leaves them in this process's memory).
   */
  private readonly unreadAnswers = new Map<string, number>();
  /**
   * The counted answers of each connection, released together when it closes: an answer that
   * waits behind others pipelined on a connection has no socket of its own, and when the
   * connection closed neither its 'finish' nor its 'close' came, so its bytes stayed counted.
   */
  private readonly countedOn = new WeakMap<Socket, Set<() => void>>();
  private readonly maxUnreadAnswerBytesPerRenter: number;
  private readonly answerTimeoutMs: number;
  /**
   * Results answered 202 (or sent with "wait": false) and not yet fetched by GET: trimJobs passes
   * them over, within bounds (keeps.ts), so they never pin the store. Before, they sat in the store
   * of finished jobs like any other, oldest dropped first: ~12 jobs of ~21 MiB outputs from any
   * renter pushed out every result still waiting, and its renter got JOB_NOT_FOUND for a job it
   * paid for.
   */
  private readonly keeps: ResultKeeps;
  private readonly jobTimeoutMs: number;
  private readonly maxGroupMs: number;
  private readonly maxOutputBytes: number;
  private readonly jobMemoryBytes: number;
  private ocrHash: Uint8Array | null = null;
  private server: Server | HttpsServer | null = null;
  private stopWatching: (() => void) | null = null;
  url: string | null = null;
  /** SHA-256 (hex) of the certificate served now (null for plain http). */
  tlsFingerprint: string | null = null;

  constructor(private readonly opts: ProviderOptions) {
    // Checked before anything is built: Node runs a timer of more than 2^31 - 1 ms after 1 ms, so
    // an answerTimeoutMs of a month closed every connection and dropped every kept result at once.
    timerMs('answerTimeoutMs', opts.answerTimeoutMs);
    timerMs('jobTimeoutMs', opts.jobTimeoutMs);
    timerMs('tls.handshakeTimeoutMs', opts.tls?.handshakeTimeoutMs);
    this.chainId = opts.chainId;
    this.logger = opts.logger ?? createLogger('provider');
    this.auth = new RequestAuthenticator(opts.chainId, {
      windowMs: opts.authWindowMs ?? 60_000,
      maxNoncesPerRenter: opts.maxNoncesPerRenter ?? 10_000,
      file: join(opts.stateDir ?? opts.modelDir, 'used-nonces.log'),
    });
    this.store = new ModelStore(opts.modelDir, {
      ...(opts.maxStoreBytes !== undefined ? { maxBytes: opts.maxStoreBytes } : {}),
      ...(opts.maxStoreBytesPerRenter !== undefined
        ? { maxBytesPerRenter: opts.maxStoreBytesPerRenter }
        : {}),
    });
    const concurrency = opts.concurrency ?? 2;
    this.queue = new JobQueue(concurrency, opts.maxQueued ?? 64);
    this.maxJobsPerRenter = opts.maxJobsPerRenter ?? 16;
    this.maxBatchJobs = Math.min(opts.maxBatchJobs ?? 64, MAX_BATCH_JOBS);
    this.jobTimeoutMs = opts.jobTimeoutMs ?? 60_000;
    this.maxGroupMs = opts.maxGroupMs ?? this.jobTimeoutMs;
    this.maxOutputBytes = opts.maxOutputBytes ?? opts.maxBodyBytes ?? 16 * 1024 * 1024;
    this.jobMemoryBytes = opts.jobMemoryBytes ?? 4 * 1024 ** 3;
    this.sandbox = new JobSandbox({
      workers: concurrency,
      // One per chip at most: a chip takes one lease (one renter) at a time, so every active
      // renter keeps a warm process of its own (a process serves one renter only), and renters
      // cannot make the provider hold more (a renter needs a lease on one of these chips).
      maxProcesses: Math.max(concurrency, opts.signers.length),
      executionProvider: opts.executionProvider ?? 'cpu',
      ocr: DEFAULT_OCR_MODELS,
      timeoutMs: this.jobTimeoutMs,
      memoryBytes: this.jobMemoryBytes,
      ...PROVIDER_JOB_PROCESS_LIMITS,
      ...(opts.onnxThreads ? { threads: opts.onnxThreads } : {}),
      maxOutputBytes: this.maxOutputBytes,
      isolation: opts.jobIsolation ?? 'auto',
      // Not the model store: a job process there read every renter's model. The sandbox reads
      // the model a job runs (its path chosen here, from its hash) and sends its bytes.
      logger: this.logger,
    });
    this.maxBodyBytes = opts.maxBodyBytes ?? 16 * 1024 * 1024;
    this.maxModelBytes = opts.maxModelBytes ?? 256 * 1024 * 1024;
    const largest = Math.max(this.maxBodyBytes, this.maxModelBytes);
    this.maxUploadBytesInFlight =
      opts.maxUploadBytesInFlight ??
      Math.max(largest, this.maxModelBytes + 4 * this.maxBodyBytes, 320 * 1024 * 1024);
    this.maxUploadBytesPerRenter = opts.maxUploadBytesPerRenter ?? largest;
    const reserve =
      opts.jobUploadReserveBytes ??
      Math.max(0, Math.min(4 * this.maxBodyBytes, this.maxUploadBytesInFlight - this.maxModelBytes));
    if (!(Number.isSafeInteger(reserve) && reserve >= 0 && reserve <= this.maxUploadBytesInFlight))
      throw new Error(`jobUploadReserveBytes must be 0 to maxUploadBytesInFlight, not ${reserve}`);
    this.maxModelUploadBytes = this.maxUploadBytesInFlight - reserve;
    // Each renter key holds at most a quarter of the reserve (one largest body at least); its job
    // bytes past that go in the rest of the cap with model uploads (bookUpload). Job bodies
    // capped only per renter (a largest model's size) let two renters sending just above the
    // upload pace hold the whole cap, every other renter's jobs refused 503 while they kept
    // sending; this way the reserve always holds four renters' bodies, and a renter sending
    // several bodies at once still gets them all in while the provider has room.
    // What stays open: four leases (four renter keys, as a lease names one and a chip takes one
    // lease at a time) sending above the pace all along can hold the whole cap: 16 + 240 MiB,
    // 16 + 16 MiB, 16, 16 by default. A share per lease weighted by what it pays does not close
    // it: the deposit is refunded when the lease closes, so weighting by it costs an attacker
    // nothing but capital for a while; the price is the provider's own and the same for every
    // chip of an offer, so it does not tell an attacker's lease from an honest one; and rent paid
    // so far favours whoever leased first, an attacker included, over the honest renter who comes
    // next. The attack's cost is the rent of four of this provider's chips for their minimum
    // hours, chips that are then denied to honest renters anyway (renting every chip of a
    // provider denies it whole, caps or not); an operator who expects it raises
    // maxUploadBytesInFlight / jobUploadReserveBytes.
    this.jobReserveBytesPerRenter =
      opts.jobReserveBytesPerRenter ?? Math.max(this.maxBodyBytes, Math.floor(reserve / 4));
    if (!(Number.isSafeInteger(this.jobReserveBytesPerRenter) && this.jobReserveBytesPerRenter > 0))
      throw new Error(
        `jobReserveBytesPerRenter must be a positive integer, not ${this.jobReserveBytesPerRenter}`,
      );
    this.maxModelChecksPerRenter = opts.maxModelChecksPerRenter ?? 2;
    if (!(Number.isSafeInteger(this.maxModelChecksPerRenter) && this.maxModelChecksPerRenter > 0))
      throw new Error(
        `maxModelChecksPerRenter must be a positive integer, not ${this.maxModelChecksPerRenter}`,
      );
    this.maxModelBytesAwaitingCheck = this.maxModelChecksPerRenter * this.maxModelUploadBytes;
    this.uploadPace = checkUploadPace({ ...DEFAULT_UPLOAD_PACE, ...opts.uploadPace });
    this.leaseCacheMs = opts.leaseCacheMs ?? 2_000;
    this.unknownLeaseCacheMs = opts.unknownLeaseCacheMs ?? 10_000;
    this.leaseLookupBurst = opts.leaseLookupBurst ?? 20;
    this.leaseLookupsPerSecond = opts.leaseLookupsPerSecond ?? 2;
    this.maxJobsKept = opts.maxJobsKept ?? 1_000;
    this.maxKeptOutputBytes = opts.maxKeptOutputBytes ?? 256 * 1024 * 1024;
    this.maxUnreadAnswerBytesPerRenter = opts.maxUnreadAnswerBytesPerRenter ?? 4 * this.maxOutputBytes;
    this.answerTimeoutMs = opts.answerTimeoutMs ?? 300_000;
    // Per renter key its share and its jobs; in all half of the store's bounds, so trimJobs can
    // always bring the store within them by dropping others.
    this.keeps = new ResultKeeps({
      bytesPerRenter: this.maxUnreadAnswerBytesPerRenter,
      resultsPerRenter: this.maxJobsPerRenter,
      bytes: Math.floor(this.maxKeptOutputBytes / 2),
      results: Math.floor(this.maxJobsKept / 2),
      timeoutMs: this.answerTimeoutMs,
    });
  }

  get ocrModelHash(): string {
    if (!this.ocrHash) throw new Error('the provider is not started');
    return toHex(this.ocrHash);
  }

  /** The job processes (tests look at how many were started). */
  get jobProcesses(): JobSandbox {
    return this.sandbox;
  }

  async start(): Promise<string> {
    for (const signer of this.opts.signers)
      this.chips.set(toHex(await signer.chipId()), { signer, lock: Promise.resolve() });
    await this.store.init();
    this.ocrHash = await ocrModelHash(DEFAULT_OCR_MODELS);
    // Starting the job processes tells whether the requested execution provider works.
    try {
      await this.sandbox.start();
    } catch (err) {
      this.auth.close();
      throw err;
    }
    // More CPU-bound job processes than cores buy no throughput and cost CPU: four OCR at a time
    // on two cores cost ×1.33–×1.51 the CPU of direct with four job processes, ×1.13–×1.26 with
    // two (bench:jobs --provider-concurrency; docs/jobs.md). Said once, at start; the operator
    // decides. Asked of the job processes as started: a CUDA request that fell back runs on the CPU.
    if (this.sandbox.executionProvider === 'cpu' && this.queue.concurrency > availableParallelism())
      this.logger.warn('more jobs run at once than this machine has cores; each costs more CPU', {
        concurrency: this.queue.concurrency,
        cores: availableParallelism(),
      });
    const listener = (req: IncomingMessage, res: ServerResponse) => {
      const refused = this.opts.tls ? clientCertificateRefusal(req) : null;
      if (refused) {
        // Refused before anything else is checked: its body is not read, the connection ends.
        res.setHeader('connection', 'close');
        return this.send(res, 403, { error: { code: 'CLIENT_CERT_MISMATCH', message: refused } });
      }
      this.handle(req, res).catch((err: Error) => {
        this.logger.error('provider request failed', { error: err.message, stack: err.stack });
        if (!res.headersSent) this.send(res, 500, { error: { code: 'INTERNAL', message: 'internal error' } });
      });
    };
    let server: Server | HttpsServer;
    const tls = this.opts.tls;
    if (tls) {
      const pair = ensureProviderCertificate(tls.dir);
      this.tlsFingerprint = pair.fingerprint;
      const https = createHttpsServer(
        { ...serverTlsOptions(pair), handshakeTimeout: tls.handshakeTimeoutMs ?? 10_000 },
        listener,
      );
      // A rotated certificate is served to new connections; open ones keep theirs.
      this.stopWatching = watchProviderCertificate(
        tls.dir,
        (next) => {
          try {
            https.setSecureContext(serverTlsOptions(next));
            this.tlsFingerprint = next.fingerprint;
            this.logger.info('provider TLS certificate reloaded', { fingerprint: next.fingerprint });
          } catch (err) {
            this.logger.warn('provider TLS certificate not reloaded', { error: (err as Error).message });
          }
        },
        tls.watchIntervalMs,
        (err) => this.logger.warn('provider TLS certificate not reloaded', { error: err.message }),
      );
      server = https;
    } else {
      server = createServer(listener);
    }
    this.server = server;
    const host = this.opts.host ?? '127.0.0.1';
    this.url = await listenOn(server, { host, port: this.opts.port ?? 0 }, tls ? 'https' : 'http');
    this.logger.info('provider API listening', {
      url: this.url,
      tlsFingerprint: this.tlsFingerprint,
      chips: this.chips.size,
      executionProvider: this.sandbox.executionProvider,
      ocrModelHash: this.ocrModelHash,
    });
    return this.url;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    this.stopWatching?.();
    this.stopWatching = null;
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    // Running jobs get a moment to finish; then their processes are stopped.
    const settled = Promise.allSettled([...this.jobs.values()].map((j) => j.done));
    await Promise.race([settled, new Promise((r) => setTimeout(r, 5_000).unref())]);
    await this.sandbox.stop();
    await settled;
    // A keep's timer holds its result (up to ~21 MiB) for answerTimeoutMs: a stopped provider
    // was kept in memory that long by them, with up to half of maxKeptOutputBytes.
    this.keeps.endAll();
    this.auth.close();
  }

  health(): ProviderHealth {
    return {
      ok: true,
      chainId: this.chainId,
      chips: [...this.chips.keys()],
      ocrModelHash: this.ocrModelHash,
      executionProvider: this.sandbox.executionProvider,
      jobIsolation: this.sandbox.isolation,
      queue: {
        running: this.queue.running,
        queued: this.queue.queued,
        concurrency: this.queue.concurrency,
        maxQueued: this.queue.maxQueued,
      },
      limits: {
        maxBodyBytes: this.maxBodyBytes,
        maxModelBytes: this.maxModelBytes,
        jobTimeoutMs: this.jobTimeoutMs,
        jobMemoryBytes: this.jobMemoryBytes,
        maxJobsPerRenter: this.maxJobsPerRenter,
        maxBatchJobs: Math.min(this.maxBatchJobs, this.maxJobsPerRenter),
      },
    };
  }

  // -------------------------------------------------------------------------------------------

  /**
   * Writes a JSON answer. With `renter` (an answer to that renter key's signed request) its bytes
   * count as the renter's unread answers until its connection has taken them all, and a connection
   * that has not taken them within answerTimeoutMs is closed: Node keeps what the socket has not
   * taken in this process for as long as the connection stays open (no timeout applies to an
   * answer), so a renter that sent GET /v1/jobs/<id> of a 16 MiB job on many connections and read
   * none held ~21 MiB of this process's memory per request of a few hundred bytes, for good.
   */
  private send(res: ServerResponse, status: number, body: unknown, renter?: string): void {
    this.write(res, status, JSON.stringify(body), renter);
  }

  private write(res: ServerResponse, status: number, text: string, renter?: string): void {
    const bytes = Buffer.byteLength(text);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': bytes });
    if (renter !== undefined) this.countUnread(res, renter, bytes);
    res.end(text);
  }

  /**
   * Answers a job waited for (POST /v1/jobs) or a batch (POST /v1/jobs/batch): whole while the
   * renter's unread answers and this one stay within its share (or none of its answers is
   * unread), else 202 with `idOnly` (its id), its result kept for GET /v1/jobs/<id>. Its share is
   * checked when the request is sent, and up to maxJobsPerRenter jobs (or batches) of a renter
   * that reads nothing each added an answer of up to ~21 MiB past it when they ended. A result
   * answered 202 is kept for its GET (keeps.ts); the store is trimmed only then (submitJob leaves
   * it to this), so the job is still there to be kept. A batch is put in the store only here, when
   * answered by its id (`store`). A result the store no longer holds after that is answered whole.
   * Returns whether the answer was whole.
   */
  private answerKept(
    res: ServerResponse,
    id: string,
    view: JobView | BatchView,
    renter: string,
    idOnly: Record<string, string>,
    store = false,
  ): boolean {
    const text = JSON.stringify(view);
    const unread = this.unreadAnswers.get(renter) ?? 0;
    if (unread === 0 || unread + Buffer.byteLength(text) <= this.maxUnreadAnswerBytesPerRenter) {
      this.write(res, 200, text, renter);
      this.trimJobs();
      return true;
    }
    if (store && !this.jobs.has(id)) {
      const bytes = keptBytesOf(view);
      this.jobs.set(id, { view, done: Promise.resolve(), bytes });
      this.keptBytes += bytes;
    }
    const job = this.jobs.get(id);
    if (job?.view === view) this.keeps.keep(id, renter, job.bytes);
    this.trimJobs();
    // The id alone answers only while its GET can still find the result: one already out of the
    // store (its keep lost at once to others' kept results, then trimmed) would be JOB_NOT_FOUND
    // for a job its renter paid for, so it is answered whole, past the share, as it ends.
    if (this.jobs.get(id)?.view !== view) {
      this.write(res, 200, text, renter);
      return true;
    }
    this.send(res, 202, idOnly, renter);
    return false;
  }

  /** Bytes of a renter key's results answered 202 and kept for their GET (tests read it). */
  unfetchedResultBytes(renter: string): number {
    return this.keeps.bytesOf(renter.toLowerCase());
  }

  /** Counts an answer's bytes against its renter until its connection took them (or closed). */
  private countUnread(res: ServerResponse, renter: string, bytes: number): void {
    // The connection it goes to (res.socket is unset while it waits behind pipelined answers).
    const socket = res.req.socket;
    // Written to a connection already closed (a renter whose client gave up while its job ran),
    // an answer is dropped and neither 'finish' nor 'close' follows: counted, it stayed for good.
    if (socket.destroyed || res.destroyed) return;
    this.unreadAnswers.set(renter, (this.unreadAnswers.get(renter) ?? 0) + bytes);
    // The connection, not the answer, is closed: destroying an answer that waits behind others
    // on its connection only closes it once those are taken.
    const timer = setTimeout(() => socket.destroy(), this.answerTimeoutMs);
    timer.unref();
    let counted = this.countedOn.get(socket);
    if (!counted) {
      const answers = new Set<() => void>();
      counted = answers;
      this.countedOn.set(socket, answers);
      // One listener per connection, not one per answer (a keep-alive connection has many).
      socket.once('close', () => {
        for (const release of [...answers]) release();
      });
    }
    const mine = counted;
    let done = false;
    const taken = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      mine.delete(taken);
      const left = (this.unreadAnswers.get(renter) ?? bytes) - bytes;
      if (left <= 0) this.unreadAnswers.delete(renter);
      else this.unreadAnswers.set(renter, left);
    };
    mine.add(taken);
    res.once('finish', taken);
    res.once('close', taken);
  }

  /** Bytes of a renter key's answers not yet taken by its connections (tests read it). */
  unreadAnswerBytes(renter: string): number {
    return this.unreadAnswers.get(renter.toLowerCase()) ?? 0;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let read = false;
    const clock = this.opts.onJobStages ? new StageClock() : null;
    try {
      const path = req.url ?? '/';
      const method = req.method ?? 'GET';
      if (path === '/v1/health') {
        if (method !== 'GET') throw new HttpError(405, 'METHOD_NOT_ALLOWED', 'use GET /v1/health');
        return this.send(res, 200, this.health());
      }
      const route =
        path === '/v1/models'
          ? 'models'
          : path === '/v1/jobs'
            ? 'jobs'
            : path === '/v1/jobs/batch'
              ? 'batch'
              : /^\/v1\/jobs\/[0-9a-f]{64}$/.test(path)
                ? 'job'
                : null;
      if (!route) throw new HttpError(404, 'NOT_FOUND', 'no such endpoint');
      const expected = route === 'job' ? 'GET' : 'POST';
      if (method !== expected) throw new HttpError(405, 'METHOD_NOT_ALLOWED', `use ${expected} ${path}`);
      // The size is known before the body is read, or the request is refused.
      const limit =
        route === 'models'
          ? this.maxModelBytes
          : route === 'jobs' || route === 'batch'
            ? this.maxBodyBytes
            : 0;
      const length = this.declaredLength(req, limit);
      // Headers, time, signature over the declared body hash, lease: nothing of the body yet.
      const auth = this.auth.verify(method, path, req.headers);
      const lease = await this.checkLease(auth, req.socket.remoteAddress ?? '?');
      clock?.mark('headers, signature, lease');
      // Refused before its nonce is used: the same signed request may be sent again once read.
      if ((this.unreadAnswers.get(auth.renterKeyHex) ?? 0) >= this.maxUnreadAnswerBytesPerRenter)
        throw new HttpError(
          429,
          'ANSWERS_UNREAD',
          "this renter's earlier answers are still waiting to be read; read them first",
        );
      if (route === 'job') {
        // Answered with no await after the check above: GETs pipelined on one connection are all
        // parsed at once, and with one between (the read of the empty body) ten of them passed
        // the check together and held ten answers of 5.6 MB against a share of 1 MiB. Each now
        // sees the answers written before it; the nonce is used only by a request answered.
        checkBodyHash(EMPTY_BODY_HASH, auth.bodyHash);
        this.auth.consume(auth);
        read = true;
        const id = path.slice('/v1/jobs/'.length);
        const job = this.jobs.get(id);
        if (!job || job.view.leaseId !== auth.leaseIdHex)
          throw new HttpError(404, 'JOB_NOT_FOUND', 'no such job for this lease');
        this.send(res, 200, job.view, auth.renterKeyHex);
        // Kept until the renter has it: an answer cut off on its way leaves it kept for another GET.
        if (this.keeps.has(id)) res.once('finish', () => this.keeps.end(id));
        return;
      }
      this.checkUploadFits(route, length);
      // Nothing is booked until bytes arrive: two renters that sent only headers declaring
      // 256 + 64 MiB, re-sent after each 408, otherwise held the whole cap and every other
      // renter's uploads and jobs got 503.
      const booking = this.bookUpload(auth.renterKeyHex, route === 'models');
      const release = booking.release;
      let endCheck = () => {};
      let endModel = () => {};
      try {
        if (route === 'models') {
          // A model check runs in a job process like a job: it counts against the renter's jobs.
          endCheck = this.takeJobSlot(auth.renterKeyHex);
          endModel = this.takeModelCheck(auth.renterKeyHex);
        }
        this.auth.consume(auth);
        read = true;
        // On the disk before the request acts: a power loss must not make it new again (a GET
        // needs no wait: the jobs it reads are in memory only, gone after any restart).
        await this.auth.durable().catch((err: Error) => {
          throw new HttpError(
            503,
            'NONCE_LOG_UNAVAILABLE',
            `the used-nonce log could not be saved: ${err.message}`,
          );
        });
        if (route === 'models') {
          const tmp = this.store.tempPath();
          let uploaded: Awaited<ReturnType<ProviderServer['uploadModel']>>;
          let endWait = () => {};
          try {
            await this.receive(req, length, auth.bodyHash, tmp, booking.add);
            // On disk now: its bytes are no longer in flight. Booked until its check, a renter
            // with long jobs queued held up to 256 MiB of the cap for minutes; the temporary
            // files that wait are bounded by maxModelChecksPerRenter instead.
            endWait = this.awaitCheck(length, release);
            uploaded = await this.uploadModel(tmp, toHex(auth.bodyHash), length, auth.renterKeyHex);
          } finally {
            // The wait ends whatever the removal does: ended after it, a removal that threw (a
            // file the disk would not let go) left the model's bytes counted as waiting for good,
            // and enough of them filled the room for waiting models. A file left behind is logged
            // (the store removes it at its next start); the renter gets its model's own answer.
            try {
              await rm(tmp, { force: true });
            } catch (err) {
              this.logger.warn('temporary model file not removed', { error: (err as Error).message });
            } finally {
              endWait();
            }
          }
          // Given back before the answer: the renter's next request may follow it at once.
          endModel();
          endCheck();
          return this.send(res, 200, uploaded, auth.renterKeyHex);
        }
        const body = await this.receiveBody(req, length, auth.bodyHash, booking.add);
        clock?.mark('body read and hashed');
        release();
        if (route === 'jobs') {
          const { status, view } = await this.submitJob(auth, lease, body, clock);
          let whole = false;
          if (status === 200) {
            const { jobId, leaseId, model, status } = view;
            whole = this.answerKept(res, jobId, view, auth.renterKeyHex, { jobId, leaseId, model, status });
          } else this.send(res, status, view, auth.renterKeyHex);
          if (clock && whole) {
            clock.mark('answer written');
            this.opts.onJobStages?.({ began: clock.began, stages: clock.stages, jobCpuMs: clock.jobCpuMs });
          }
          return;
        }
        if (route === 'batch') {
          const view = await this.submitBatch(auth, lease, body);
          const { batchId, leaseId, model } = view;
          this.answerKept(
            res,
            batchId,
            view,
            auth.renterKeyHex,
            { batchId, leaseId, model, status: 'done' },
            true,
          );
          return;
        }
      } finally {
        release();
        endModel();
        endCheck();
      }
    } catch (err) {
      if (err instanceof HttpError) {
        // An unread body that is large is not read to the end: the connection is closed instead.
        const length = Number(req.headers['content-length'] ?? 0);
        if (err.status === 413 || err.status === 411 || (!read && !(length <= DRAIN_LIMIT)) || !req.complete)
          res.setHeader('connection', 'close');
        if (err.status === 503) res.setHeader('retry-after', '1');
        return this.send(res, err.status, { error: { code: err.code, message: err.message } });
      }
      throw err;
    }
  }

  /** The body size from content-length, which is required for a body; throws 411/413/400. */
  private declaredLength(req: IncomingMessage, limit: number): number {
    const te = req.headers['transfer-encoding'];
    const cl = req.headers['content-length'];
    if (te !== undefined) {
      if (limit === 0) throw new HttpError(400, 'BAD_REQUEST', 'this request has no body');
      throw new HttpError(411, 'LENGTH_REQUIRED', 'send the body with a content-length, not chunked');
    }
    if (cl === undefined) {
      if (limit === 0) return 0;
      throw new HttpError(411, 'LENGTH_REQUIRED', 'a content-length header is required');
    }
    if (!/^\d{1,15}$/.test(cl)) throw new HttpError(400, 'BAD_REQUEST', 'content-length must be a number');
    const n = Number(cl);
    if (limit === 0 && n > 0) throw new HttpError(400, 'BAD_REQUEST', 'this request has no body');
    if (n > limit)
      throw new HttpError(413, 'BODY_TOO_LARGE', `the body is ${n} bytes; the limit here is ${limit}`);
    return n;
  }

  private renterBusy(n: number, more = 1): HttpError {
    return new HttpError(
      429,
      'RENTER_BUSY',
      more === 1
        ? `this renter has ${n} jobs queued or running, the most it may; wait for them`
        : `this renter has ${n} jobs queued or running; ${more} more would pass the ${this.maxJobsPerRenter} it may have`,
    );
  }

  /** Counts one job (a model check) of a renter until the returned function is called. */
  private takeJobSlot(renter: string): () => void {
    const mine = this.jobsByRenter.get(renter) ?? 0;
    if (mine >= this.maxJobsPerRenter) throw this.renterBusy(mine);
    this.jobsByRenter.set(renter, mine + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const left = (this.jobsByRenter.get(renter) ?? 1) - 1;
      if (left <= 0) this.jobsByRenter.delete(renter);
      else this.jobsByRenter.set(renter, left);
    };
  }

  /**
   * Refuses at once (413) a body that could never be booked whole: longer than a renter may have
   * in flight, or (a model) than model uploads together may.
   */
  private checkUploadFits(route: string, length: number): void {
    const cap = Math.min(
      this.maxUploadBytesPerRenter,
      route === 'models' ? this.maxModelUploadBytes : this.maxUploadBytesInFlight,
    );
    if (length > cap)
      throw new HttpError(
        413,
        'BODY_TOO_LARGE',
        `the body is ${length} bytes; at most ${cap} can be received at once here`,
      );
  }

  /**
   * Moves a received model's bytes out of the in-flight caps to the models waiting for their
   * check, where those have room (maxModelChecksPerRenter times the models' share of the
   * in-flight cap, all renters together: one renter's own waiting models fill it at most);
   * otherwise it keeps its in-flight booking until its check ends, as before. Either way the
   * temporary files on disk stay bounded however many renters upload; returns what ends the wait.
   */
  private awaitCheck(length: number, releaseInFlight: () => void): () => void {
    if (this.modelsAwaitingCheck + length > this.maxModelBytesAwaitingCheck) return releaseInFlight;
    releaseInFlight();
    this.modelsAwaitingCheck += length;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.modelsAwaitingCheck -= length;
    };
  }

  /** Counts one model of a renter being received or checked, until the returned function is called. */
  private takeModelCheck(renter: string): () => void {
    const mine = this.modelChecksByRenter.get(renter) ?? 0;
    if (mine >= this.maxModelChecksPerRenter)
      throw new HttpError(
        429,
        'MODELS_BUSY',
        `this renter has ${mine} models being received or checked, the most it may; wait for them`,
      );
    this.modelChecksByRenter.set(renter, mine + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const left = (this.modelChecksByRenter.get(renter) ?? 1) - 1;
      if (left <= 0) this.modelChecksByRenter.delete(renter);
      else this.modelChecksByRenter.set(renter, left);
    };
  }

  /**
   * A body's booking of upload bytes, which grows as its chunks arrive: `add` books a chunk's
   * bytes for the renter and in total and throws 429 (this renter) or 503 (all busy) when a cap
   * would be passed; `release` gives back all that was booked (once). Model uploads, and job
   * bodies past their renter's share of the reserve (jobReserveBytesPerRenter), stay together
   * under the cap less the job reserve, so the reserve holds only renters' shares. `renter` is the lease's renter key
   * as the signature and the chain's lease proved it (checkLease), never a connection: one
   * renter opening more connections gets no more room.
   */
  private bookUpload(renter: string, model: boolean): { add: (n: number) => void; release: () => void } {
    let booked = 0;
    let released = false;
    const add = (n: number) => {
      if (released) return;
      const mine = this.uploadsByRenter.get(renter) ?? 0;
      const mineJobs = model ? 0 : (this.jobUploadsByRenter.get(renter) ?? 0);
      // Bytes this chunk puts outside the reserve: all of a model's, a job body's past the share.
      const outside = model ? n : this.pastShare(mineJobs + n) - this.pastShare(mineJobs);
      const outsideFull = this.modelUploading + this.jobBytesPastShare + outside > this.maxModelUploadBytes;
      if (mine + n > this.maxUploadBytesPerRenter || (!model && outside > 0 && outsideFull))
        throw new HttpError(
          429,
          'UPLOADS_BUSY',
          'this renter is already uploading as much as it may at once; wait for those uploads',
        );
      if (this.uploading + n > this.maxUploadBytesInFlight || (model && outsideFull))
        throw new HttpError(
          503,
          'UPLOADS_BUSY',
          'the provider is receiving as much as it can; retry shortly',
        );
      booked += n;
      this.uploading += n;
      if (model) this.modelUploading += n;
      this.uploadsByRenter.set(renter, mine + n);
      if (!model) {
        this.jobUploadsByRenter.set(renter, mineJobs + n);
        this.jobBytesPastShare += outside;
      }
    };
    const release = () => {
      if (released) return;
      released = true;
      if (booked === 0) return;
      this.uploading -= booked;
      if (model) this.modelUploading -= booked;
      const left = (this.uploadsByRenter.get(renter) ?? booked) - booked;
      if (left <= 0) this.uploadsByRenter.delete(renter);
      else this.uploadsByRenter.set(renter, left);
      if (model) return;
      const jobs = this.jobUploadsByRenter.get(renter) ?? booked;
      const jobsLeft = jobs - booked;
      this.jobBytesPastShare -= this.pastShare(jobs) - this.pastShare(jobsLeft);
      if (jobsLeft <= 0) this.jobUploadsByRenter.delete(renter);
      else this.jobUploadsByRenter.set(renter, jobsLeft);
    };
    return { add, release };
  }

  /** Of a renter's job body bytes in flight, those past its share of the job reserve. */
  private pastShare(jobBytes: number): number {
    return Math.max(0, jobBytes - this.jobReserveBytesPerRenter);
  }

  /**
   * A job's body (up to maxBodyBytes) read into memory, hashed as it comes (`readBody`); one that
   * does not hash to the signed hash is refused (401).
   */
  private async receiveBody(
    req: IncomingMessage,
    length: number,
    signedHash: Uint8Array,
    book: (n: number) => void,
  ): Promise<Uint8Array> {
    const chunks: Buffer[] = [];
    const digest = await this.readBody(req, length, book, {
      write: (chunk) => {
        chunks.push(chunk);
        return true;
      },
      close: (done) => done(),
      destroy: () => {},
    });
    checkBodyHash(digest, signedHash);
    const b = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    return new Uint8Array(b.buffer, b.byteOffset, b.length);
  }

  /**
   * Reads exactly `length` bytes (a model) into the file `to`, hashing them as they come
   * (`readBody`); one that does not hash to the signed hash is refused (401), and the caller
   * removes the file. A failed write (a full disk) is the provider's error, not the renter's (500,
   * logged).
   */
  private async receive(
    req: IncomingMessage,
    length: number,
    signedHash: Uint8Array,
    to: string,
    book: (n: number) => void,
  ): Promise<void> {
    const file = createWriteStream(to, { flags: 'wx' });
    const digest = await this.readBody(req, length, book, {
      write: (chunk) => file.write(chunk),
      onceDrained: (resume) => file.once('drain', resume),
      onError: (fail) => file.on('error', fail),
      close: (done) => file.end(done),
      destroy: () => file.destroy(),
    });
    checkBodyHash(digest, signedHash);
  }

  /**
   * Reads exactly `length` bytes of `req` into `sink` and returns their content hash. On the
   * stream's own events rather than its async iterator: the iterator (its promise per chunk,
   * end-of-stream watchers and their removal) cost ~0.1–0.3 ms of a job sent alone, run cold after
   * the provider slept through the previous job (BENCHMARKS.md, branch ocrfast), and a body that
   * falls behind the upload pace must be refused (408) while no chunk comes, with the connection
   * still able to carry the answer. No more than the declared length is taken (the request is
   * destroyed at the first byte past it, 413), a body that ends early is refused (400), and each
   * chunk is booked (`book`, which throws the refusal of a cap) before it is kept.
   */
  private readBody(
    req: IncomingMessage,
    length: number,
    book: (n: number) => void,
    sink: BodySink,
  ): Promise<Uint8Array> {
    const hash = contentHasher();
    return new Promise((resolve, reject) => {
      let size = 0;
      let settled = false;
      const finish = (err: Error | null) => {
        if (settled) return;
        settled = true;
        pace.stop();
        req.off('data', onData);
        req.off('end', onEnd);
        req.off('error', onBroken);
        req.off('close', onBroken);
        if (err) {
          sink.destroy();
          return reject(err);
        }
        sink.close((e) => (e ? reject(e) : resolve(new Uint8Array(hash.digest()))));
      };
      const incomplete = () =>
        new HttpError(400, 'BODY_INCOMPLETE', 'the body ended before its content-length');
      const onData = (chunk: Buffer) => {
        size += chunk.length;
        if (size > length) {
          req.destroy();
          return finish(new HttpError(413, 'BODY_TOO_LARGE', 'the body is longer than its content-length'));
        }
        try {
          book(chunk.length);
        } catch (err) {
          return finish(err as HttpError);
        }
        pace.received(size);
        hash.update(chunk);
        if (!sink.write(chunk)) {
          req.pause();
          sink.onceDrained?.(() => req.resume());
        }
      };
      const onEnd = () => finish(size === length ? null : incomplete());
      // An error, or the connection closing before the end: the body is incomplete.
      const onBroken = () => finish(incomplete());
      const pace = watchUploadPace(this.uploadPace, () => finish(this.tooSlow()));
      sink.onError?.((err) => finish(err));
      req.on('data', onData);
      req.on('end', onEnd);
      req.on('error', onBroken);
      req.on('close', onBroken);
    });
  }

  /** The refusal of a body that falls behind the upload pace. */
  private tooSlow(): HttpError {
    const p = this.uploadPace;
    return new HttpError(
      408,
      'UPLOAD_TOO_SLOW',
      `the body came too slowly: it must keep ${p.minBytesPerSecond} bytes/s after ${p.graceMs / 1000} s, with no gap over ${p.idleMs / 1000} s`,
    );
  }

  /** Takes one lease lookup from a client address's bucket; false when it has none left. */
  private takeLookup(address: string): boolean {
    const ip = lookupKey(address);
    const now = Date.now();
    let b = this.lookupBuckets.get(ip);
    if (b) this.lookupBuckets.delete(ip);
    else b = { tokens: this.leaseLookupBurst, at: now };
    b.tokens = Math.min(this.leaseLookupBurst, b.tokens + ((now - b.at) / 1000) * this.leaseLookupsPerSecond);
    b.at = now;
    // Most recently used last, so the map forgets the quietest address first.
    this.lookupBuckets.set(ip, b);
    if (this.lookupBuckets.size > 10_000)
      this.lookupBuckets.delete(this.lookupBuckets.keys().next().value as string);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  private async lease(
    idHex: string,
    opts: { fresh?: boolean; ip?: string } = {},
  ): Promise<ProviderLease | null> {
    const cached = this.leaseCache.get(idHex);
    const now = Date.now();
    // A cached lease is judged at this moment: it ends when its escrow runs out, not 2 s later.
    if (!opts.fresh && cached && now < cached.until) return cached.lease && leaseAt(cached.lease, now);
    // Only lookups of ids never seen on chain use up the address's budget: a renter whose lease
    // exists is not refused because others at its address sent junk.
    if (opts.ip !== undefined && !this.knownLeases.has(idHex) && !this.takeLookup(opts.ip))
      throw new HttpError(
        429,
        'TOO_MANY_LOOKUPS',
        'too many requests for leases this provider does not know; slow down',
      );
    let lease: ProviderLease | null;
    try {
      lease = await this.opts.leases.getLease(idHex);
    } catch (err) {
      this.logger.warn('cannot read a lease from the chain', { lease: idHex, error: (err as Error).message });
      throw new HttpError(503, 'CHAIN_UNAVAILABLE', 'cannot read the lease from the chain; retry later');
    }
    // The first read of a lease that exists is given back to its address's budget too.
    if (lease && opts.ip !== undefined && !this.knownLeases.has(idHex)) {
      const b = this.lookupBuckets.get(lookupKey(opts.ip));
      if (b) b.tokens = Math.min(this.leaseLookupBurst, b.tokens + 1);
    }
    if (lease && !this.knownLeases.has(idHex)) {
      this.knownLeases.add(idHex);
      if (this.knownLeases.size > 100_000)
        this.knownLeases.delete(this.knownLeases.values().next().value as string);
    }
    this.leaseCache.delete(idHex);
    this.leaseCache.set(idHex, {
      lease,
      until: now + (lease ? this.leaseCacheMs : this.unknownLeaseCacheMs),
    });
    if (this.leaseCache.size > 10_000) this.leaseCache.delete(this.leaseCache.keys().next().value as string);
    return lease;
  }

  private async checkLease(auth: AuthenticatedRequest, ip: string): Promise<ProviderLease> {
    const lease = await this.lease(auth.leaseIdHex, { ip });
    if (!lease) throw new HttpError(404, 'LEASE_NOT_FOUND', `the chain knows no lease ${auth.leaseIdHex}`);
    if (!this.chips.has(lease.chipId.toLowerCase()))
      throw new HttpError(
        403,
        'LEASE_NOT_HERE',
        `lease ${auth.leaseIdHex} is for chip ${lease.chipId}, not served here`,
      );
    if (lease.renterPublicKey.toLowerCase() !== auth.renterKeyHex)
      throw new HttpError(403, 'NOT_RENTER', 'the request is not signed by the renter key of this lease');
    // A closing lease is still served: the provider owes the renter its notice period.
    if (lease.status !== 'active' && lease.status !== 'closing')
      throw new HttpError(403, 'LEASE_NOT_ACTIVE', `lease ${auth.leaseIdHex} is ${lease.status}`);
    return lease;
  }

  /** Checks a received model in a job process (external data, loadable) and stores it. */
  private async uploadModel(
    tmp: string,
    hash: string,
    size: number,
    renter: string,
  ): Promise<{ modelHash: string; size: number; stored: boolean }> {
    if (size === 0) throw new HttpError(400, 'BAD_MODEL', 'the body must be the ONNX model bytes');
    if (!(await this.store.onDisk(hash))) {
      try {
        // Only a model ONNX Runtime can load is stored; the session is kept for the first job.
        // Through the job queue, in the renter's turn, like a job.
        await this.queue.admit(() => this.sandbox.check(renter, hash, tmp), renter);
      } catch (err) {
        if (err instanceof QueueFullError) throw new HttpError(429, 'QUEUE_FULL', err.message);
        if (err instanceof SandboxError)
          throw new HttpError(err.code === 'BAD_MODEL' ? 400 : 422, err.code, err.message);
        throw err;
      }
    }
    try {
      const { stored } = await this.store.commit(tmp, hash, renter);
      return { modelHash: hash, size, stored };
    } catch (err) {
      if (err instanceof StoreFullError) throw new HttpError(507, 'STORE_FULL', err.message);
      throw err;
    }
  }

  private modelNotFound(model: string): HttpError {
    return new HttpError(404, 'MODEL_NOT_FOUND', `no model ${model} here; upload it first (POST /v1/models)`);
  }

  /**
   * Keeps a job's model in the store (not evicted) until the returned function is called: from
   * its check to the end of its jobs. 404 when it was evicted (or its renter's hold on it was)
   * since it was looked up.
   */
  private pinModel(model: JobModel, renter: string): () => void {
    if (model.ocr) return () => undefined;
    const hex = toHex(model.hash);
    const unpin = this.store.pin(hex);
    if (!this.store.holds(hex, renter)) {
      unpin();
      throw this.modelNotFound(hex);
    }
    return unpin;
  }

  /**
   * The hash of the model a job of `renter` names ("ocr" or the hash of a model this renter
   * uploaded); 400/404 otherwise. A model another renter uploaded answers 404 MODEL_NOT_FOUND like
   * one absent: model hashes are public once a receipt is posted, and any renter with a lease here
   * ran another's model by its hash (free use, extraction by queries, its input names in errors),
   * and a different answer would tell it the model is here.
   */
  private async modelOf(model: unknown, renter: string): Promise<JobModel> {
    if (model === OCR_MODEL) return { hash: this.ocrHash!, ocr: true };
    if (typeof model === 'string' && /^[0-9a-f]{64}$/.test(model)) {
      if (!(await this.store.has(model)) || !this.store.holds(model, renter)) throw this.modelNotFound(model);
      this.store.touch(model, renter);
      return { hash: fromHex(model, 32), ocr: false };
    }
    throw new HttpError(400, 'BAD_REQUEST', `"model" must be a model hash (64 hex) or "${OCR_MODEL}"`);
  }

  /**
   * Checks one job's input (an image for OCR, tensors for a model) and returns its hash and the
   * work that runs it in a job process of `renter` (its processes run no other renter's job);
   * `where` names the job in errors ("job 3: ").
   */
  private async parseJob(
    renter: string,
    model: JobModel,
    req: { inputs?: unknown; image?: unknown },
    where: string,
  ): Promise<ParsedJob> {
    if (model.ocr) {
      if (
        typeof req.image !== 'string' ||
        !/^[A-Za-z0-9+/]*={0,2}$/.test(req.image) ||
        req.image.length === 0
      )
        throw new HttpError(400, 'BAD_INPUT', `${where}an OCR job needs "image": a PNG or JPEG in base64`);
      // The decoded bytes as they are (a Buffer is a Uint8Array): copied once more into a plain
      // array they cost a copy of every image per job.
      const image: Uint8Array = Buffer.from(req.image, 'base64');
      try {
        await OcrEngine.checkImage(image);
      } catch (err) {
        throw new HttpError(400, 'BAD_INPUT', `${where}${redact((err as Error).message)}`);
      }
      return {
        inputHash: imageHash(image),
        input: { image },
        work: async (clock) => {
          const timing: SandboxTiming | undefined = clock ? {} : undefined;
          const lines = await this.sandbox.ocr(renter, image, timing);
          if (clock && timing) clock.markSandbox(timing, 'queue, lease, job process', 'OCR run');
          const outputHash = ocrLinesHash(lines);
          clock?.mark('output hash');
          return { ocr: lines, outputHash };
        },
      };
    }
    const hash = toHex(model.hash);
    let inputs: RawTensor[];
    try {
      inputs = tensorsFromJson(req.inputs);
    } catch (err) {
      throw new HttpError(400, 'BAD_INPUT', `${where}${(err as Error).message}`);
    }
    return {
      inputHash: tensorsHash(inputs),
      input: { tensors: inputs },
      work: async (clock) => {
        const timing: SandboxTiming | undefined = clock ? {} : undefined;
        const outputs = await this.sandbox.run(renter, hash, this.store.pathOf(hash), inputs, timing);
        if (clock && timing) clock.markSandbox(timing, 'queue, lease, job process', 'model run');
        const outputHash = tensorsHash(outputs);
        clock?.mark('output hash');
        return { outputs, outputHash };
      },
    };
  }

  private async submitJob(
    auth: AuthenticatedRequest,
    lease: ProviderLease,
    body: Uint8Array,
    timed: StageClock | null = null,
  ): Promise<{ status: number; view: JobView }> {
    let req: { model?: unknown; inputs?: unknown; image?: unknown; wait?: unknown };
    try {
      req = JSON.parse(Buffer.from(body).toString('utf8'));
    } catch {
      throw new HttpError(400, 'BAD_REQUEST', 'the body must be JSON { model, inputs | image }');
    }
    if (typeof req !== 'object' || req === null)
      throw new HttpError(400, 'BAD_REQUEST', 'the body must be a JSON object');
    const wait = req.wait !== false;
    const model = await this.modelOf(req.model, auth.renterKeyHex);
    const modelHash = model.hash;
    // Unpinned when the job is over, or at once if it is refused before it is queued.
    const unpin = this.pinModel(model, auth.renterKeyHex);
    const { inputHash, work } = await this.parseJob(auth.renterKeyHex, model, req, '').catch((err) => {
      unpin();
      throw err;
    });
    // Only a job waited for is timed to its answer.
    const clock = wait ? timed : null;
    clock?.mark('JSON, input decoded, checked, hashed');

    const renter = auth.renterKeyHex;
    const mine = this.jobsByRenter.get(renter) ?? 0;
    if (mine >= this.maxJobsPerRenter) {
      unpin();
      throw this.renterBusy(mine);
    }

    const jobId = jobIdOf(auth.leaseId, auth.digest, auth.nonce);
    const jobIdHex = toHex(jobId);
    const view: JobView = {
      jobId: jobIdHex,
      leaseId: auth.leaseIdHex,
      model: String(req.model),
      status: 'queued',
    };
    let done: Promise<void>;
    try {
      done = this.queue.admit(async () => {
        view.status = 'running';
        // The lease may have closed while the job waited: a closed lease gets no more work.
        const now = await this.lease(auth.leaseIdHex, { fresh: true }).catch(() => null);
        if (now?.status !== 'active' && now?.status !== 'closing')
          throw new SandboxError('LEASE_NOT_ACTIVE', `lease ${auth.leaseIdHex} is no longer active`);
        const startMs = Date.now();
        const result = await work(clock ?? undefined);
        const durationMs = Date.now() - startMs;
        const receipt: JobReceipt = {
          chainId: this.chainId,
          leaseId: auth.leaseId,
          chipId: fromHex(lease.chipId, 32),
          jobId,
          modelHash,
          inputHash,
          outputHash: result.outputHash,
          startMs: BigInt(startMs),
          durationMs: BigInt(durationMs),
        };
        const signed = await this.sign(lease.chipId.toLowerCase(), receipt);
        clock?.mark('receipt signed');
        if (result.outputs) view.outputs = tensorsToJson(result.outputs);
        if (result.ocr) view.ocr = { lines: result.ocr, text: result.ocr.map((l) => l.text).join('\n') };
        view.receipt = { hex: encodeSignedReceipt(signed), json: receiptToJson(signed) };
        view.status = 'done';
        clock?.mark('answer built');
      }, renter);
    } catch (err) {
      unpin();
      if (err instanceof QueueFullError) throw new HttpError(429, 'QUEUE_FULL', err.message);
      throw err;
    }
    this.jobsByRenter.set(renter, mine + 1);
    let code = 'JOB_FAILED';
    const settled = done
      .catch((err: Error) => {
        view.status = 'failed';
        // Only the sandbox's own messages reach the renter; anything else is logged here.
        if (err instanceof SandboxError) {
          code = err.code;
          view.error = err.message;
        } else view.error = 'the job failed';
        this.logger.warn('job failed', { job: jobIdHex, lease: auth.leaseIdHex, error: err.message });
      })
      .finally(() => {
        unpin();
        const left = (this.jobsByRenter.get(renter) ?? 1) - 1;
        if (left <= 0) this.jobsByRenter.delete(renter);
        else this.jobsByRenter.set(renter, left);
        // Outputs kept for GET are counted, and old jobs forgotten to stay inside the budget. A
        // waited job's result is trimmed once its answer is decided (answerKept): a 202 keeps it.
        // A job sent with "wait": false is only ever read by GET: unkept, another renter's jobs
        // of large outputs pushed it out of the store before that GET came (JOB_NOT_FOUND for a
        // job its renter paid for). Its result is kept for its sender like a 202's, within the
        // same bounds; kept from when it exists (a job queued or running is never dropped, and
        // a GET that saw it running must not end the keep), so its answerTimeoutMs counts from
        // then as a 202's does.
        if (this.jobs.get(jobIdHex) === job) {
          job.bytes = keptBytesOf(view);
          this.keptBytes += job.bytes;
          if (!wait) {
            this.keeps.keep(jobIdHex, renter, job.bytes);
            this.trimJobs();
          }
        }
      });
    const job: Job = { view, done: settled, bytes: 0 };
    this.jobs.set(jobIdHex, job);
    this.trimJobs();
    if (!wait) return { status: 202, view };
    await settled;
    if (view.status === 'failed') {
      this.trimJobs();
      throw new HttpError(422, code, view.error ?? 'the job failed');
    }
    return { status: 200, view };
  }

  /**
   * Runs the jobs of one signed request (POST /v1/jobs/batch, docs/jobs.md) and answers with one
   * receipt the chip signs over a Merkle root of the jobs' results. Every input is checked before
   * anything runs; then the batch counts as its number of jobs against the renter's share and the
   * queue, all of it admitted at once or none (429), and each job is queued, re-checks the lease
   * and runs in a job process with its own time limit exactly like a job sent alone.
   */
  private async submitBatch(
    auth: AuthenticatedRequest,
    lease: ProviderLease,
    body: Uint8Array,
  ): Promise<BatchView> {
    // A batch's jobs are all over when it answers: its model is pinned for that long.
    const pins: (() => void)[] = [];
    try {
      return await this.runBatch(auth, lease, body, pins);
    } finally {
      for (const unpin of pins) unpin();
    }
  }

  private async runBatch(
    auth: AuthenticatedRequest,
    lease: ProviderLease,
    body: Uint8Array,
    pins: (() => void)[],
  ): Promise<BatchView> {
    let req: { model?: unknown; jobs?: unknown };
    try {
      req = JSON.parse(Buffer.from(body).toString('utf8'));
    } catch {
      throw new HttpError(400, 'BAD_REQUEST', 'the body must be JSON { model, jobs: [{ inputs | image }] }');
    }
    if (typeof req !== 'object' || req === null || !Array.isArray(req.jobs))
      throw new HttpError(400, 'BAD_REQUEST', 'the body must be JSON { model, jobs: [{ inputs | image }] }');
    const count = req.jobs.length;
    const most = Math.min(this.maxBatchJobs, this.maxJobsPerRenter);
    if (count < 1 || count > most)
      throw new HttpError(400, 'BAD_BATCH', `a batch holds 1 to ${most} jobs here, not ${count}`);
    const model = await this.modelOf(req.model, auth.renterKeyHex);
    pins.push(this.pinModel(model, auth.renterKeyHex));
    const parsed: ParsedJob[] = [];
    for (const [i, entry] of (req.jobs as unknown[]).entries()) {
      if (typeof entry !== 'object' || entry === null)
        throw new HttpError(400, 'BAD_INPUT', `job ${i}: expected { inputs } or { image }`);
      parsed.push(
        await this.parseJob(
          auth.renterKeyHex,
          model,
          entry as { inputs?: unknown; image?: unknown },
          `job ${i}: `,
        ),
      );
    }

    const renter = auth.renterKeyHex;
    const mine = this.jobsByRenter.get(renter) ?? 0;
    if (mine + count > this.maxJobsPerRenter) throw this.renterBusy(mine, count);
    const batchId = jobIdOf(auth.leaseId, auth.digest, auth.nonce);
    const results: {
      outcome?: JobOutcome;
      code?: string;
      error?: string;
      startMs: number;
      durationMs: number;
    }[] = parsed.map(() => ({ startMs: 0, durationMs: 0 }));
    // Consecutive jobs go to a job process in groups, one message each (spread over the job
    // processes, at most MAX_GROUP_JOBS to a group); a group holds the queue places of its jobs.
    // No more groups run at once than there are cores: each job process's ONNX Runtime takes
    // every core, and more of them side by side cost a third more CPU per OCR job (bench:jobs).
    const spread = Math.min(count, this.queue.concurrency, availableParallelism());
    const groupCount = Math.max(spread, Math.ceil(count / MAX_GROUP_JOBS));
    const groups: number[][] = Array.from({ length: groupCount }, () => []);
    for (let i = 0; i < count; i++) groups[Math.floor((i * groupCount) / count)]!.push(i);
    const runGroup = async (group: number[]) => {
      let indices = group;
      for (;;) {
        // As for a job sent alone: a lease that closed while the jobs waited gets no more work.
        const now = await this.lease(auth.leaseIdHex, { fresh: true }).catch(() => null);
        if (now?.status !== 'active' && now?.status !== 'closing') {
          for (const i of indices) {
            results[i]!.code = 'LEASE_NOT_ACTIVE';
            results[i]!.error = `lease ${auth.leaseIdHex} is no longer active`;
          }
          return;
        }
        const ran = await runPart(indices);
        indices = indices.slice(ran);
        if (indices.length === 0) return;
        // Past its budget the group lets waiting jobs (other renters') run before its next ones.
        await this.queue.turn(renter);
      }
    };
    /** Runs jobs of a group in one job process until its budget; returns how many ran. */
    const runPart = async (indices: number[]): Promise<number> => {
      const startMs = Date.now();
      const inputs = indices.map((i) => parsed[i]!.input);
      const settled = model.ocr
        ? await this.sandbox.ocrMany(
            renter,
            inputs.map((x) => (x as { image: Uint8Array }).image),
            this.maxGroupMs,
          )
        : await this.sandbox.runMany(
            renter,
            toHex(model.hash),
            this.store.pathOf(toHex(model.hash)),
            inputs.map((x) => (x as { tensors: RawTensor[] }).tensors),
            this.maxGroupMs,
          );
      let at = startMs;
      for (const [k, s] of settled.entries()) {
        const result = results[indices[k]!]!;
        result.startMs = at;
        result.durationMs = s.durationMs;
        at += s.durationMs;
        if (s.ok) {
          const v = s.value as RawTensor[] | OcrLine[];
          result.outcome = model.ocr
            ? { ocr: v as OcrLine[], outputHash: ocrLinesHash(v as OcrLine[]) }
            : { outputs: v as RawTensor[], outputHash: tensorsHash(v as RawTensor[]) };
        } else {
          result.code = s.error.code;
          result.error = s.error.message;
        }
      }
      return settled.length;
    };
    let done: Promise<void>[];
    try {
      if (this.queue.queued + this.queue.running + count > this.queue.concurrency + this.queue.maxQueued)
        throw new QueueFullError(this.queue.maxQueued);
      done = groups.map((g) => this.queue.admit(() => runGroup(g), renter, g.length));
    } catch (err) {
      if (err instanceof QueueFullError) throw new HttpError(429, 'QUEUE_FULL', err.message);
      throw err;
    }
    this.jobsByRenter.set(renter, mine + count);
    const batchIdHex = toHex(batchId);
    await Promise.all(
      done.map((d, g) =>
        d
          .catch((err: Error) => {
            // Only the sandbox's own messages reach the renter; anything else is logged here.
            for (const i of groups[g]!) {
              const result = results[i]!;
              if (result.outcome || result.code) continue;
              result.code = err instanceof SandboxError ? err.code : 'JOB_FAILED';
              result.error = err instanceof SandboxError ? err.message : 'the job failed';
            }
            this.logger.warn('batch jobs failed', { batch: batchIdHex, jobs: groups[g], error: err.message });
          })
          .finally(() => {
            const left = (this.jobsByRenter.get(renter) ?? groups[g]!.length) - groups[g]!.length;
            if (left <= 0) this.jobsByRenter.delete(renter);
            else this.jobsByRenter.set(renter, left);
          }),
      ),
    );
    // One answer holds no more outputs than a job alone may return: a batch of jobs each near the
    // limit would otherwise answer with that many times it (held in memory here, and past what
    // the renter's client reads: an answer paid for and thrown away). The jobs past it fail, in
    // their order, so the receipt is the same whatever order the groups ended in.
    let outputBytes = 0;
    for (const r of results) {
      if (!r.outcome) continue;
      const n = r.outcome.outputs
        ? r.outcome.outputs.reduce((sum, t) => sum + t.data.length, 0)
        : Buffer.byteLength(JSON.stringify(r.outcome.ocr ?? []));
      if (outputBytes + n <= this.maxOutputBytes) {
        outputBytes += n;
        continue;
      }
      delete r.outcome;
      r.code = 'OUTPUT_TOO_LARGE';
      r.error = "the batch's outputs together pass what one answer may hold here; send fewer jobs at once";
    }
    for (const [i, r] of results.entries())
      if (!r.outcome && r.code !== 'LEASE_NOT_ACTIVE')
        this.logger.debug('batch job failed', { batch: batchIdHex, index: i, code: r.code });

    const leaves: BatchJobLeaf[] = results.map((r, i) => ({
      index: i,
      jobId: batchJobIdOf(batchId, i),
      inputHash: parsed[i]!.inputHash,
      status: r.outcome ? BATCH_JOB_DONE : BATCH_JOB_FAILED,
      outputHash: r.outcome ? r.outcome.outputHash : failedJobOutputHash(r.code ?? 'JOB_FAILED'),
      durationMs: BigInt(r.durationMs),
    }));
    const tree = batchTree(leaves.map(batchLeafHash));
    const started = results.filter((r) => r.startMs > 0);
    const startMs = started.length > 0 ? Math.min(...started.map((r) => r.startMs)) : Date.now();
    const endMs = Math.max(startMs, ...started.map((r) => r.startMs + r.durationMs));
    const receipt: BatchReceipt = {
      chainId: this.chainId,
      leaseId: auth.leaseId,
      chipId: fromHex(lease.chipId, 32),
      batchId,
      modelHash: model.hash,
      jobCount: count,
      resultsRoot: tree.root,
      startMs: BigInt(startMs),
      durationMs: BigInt(endMs - startMs),
    };
    const evidence = await this.signDigest(lease.chipId.toLowerCase(), batchReceiptDigest(receipt));
    const signed: SignedBatchReceipt = { receipt, evidence };
    return {
      batchId: batchIdHex,
      leaseId: auth.leaseIdHex,
      model: String(req.model),
      jobs: results.map((r, i) => {
        const job: BatchJobView = {
          index: i,
          jobId: toHex(leaves[i]!.jobId),
          status: r.outcome ? 'done' : 'failed',
          durationMs: r.durationMs,
          proof: tree.proofs[i]!.map(toHex),
        };
        if (r.outcome?.outputs) job.outputs = tensorsToJson(r.outcome.outputs);
        if (r.outcome?.ocr)
          job.ocr = { lines: r.outcome.ocr, text: r.outcome.ocr.map((l) => l.text).join('\n') };
        if (!r.outcome) {
          job.code = r.code ?? 'JOB_FAILED';
          job.error = r.error ?? 'the job failed';
        }
        return job;
      }),
      receipt: { hex: encodeSignedBatchReceipt(signed), json: batchReceiptToJson(signed) },
    };
  }

  /**
   * Forgets finished jobs, oldest first, while more than maxJobsKept are kept or their outputs
   * pass maxKeptOutputBytes. Unfinished jobs are passed over, not waited for: one long job at the
   * head no longer stops every later job from being forgotten. Results kept for their GET (at most
   * half of either bound, keeps.ts) are passed over too.
   */
  private trimJobs(): void {
    for (const [id, j] of this.jobs) {
      if (this.jobs.size <= this.maxJobsKept && this.keptBytes <= this.maxKeptOutputBytes) return;
      if (!finished(j) || this.keeps.has(id)) continue;
      this.jobs.delete(id);
      this.keptBytes -= j.bytes;
    }
  }

  private async sign(chipIdHex: string, receipt: JobReceipt): Promise<SignedReceipt> {
    return { receipt, evidence: await this.signDigest(chipIdHex, receiptDigest(receipt)) };
  }

  /** Has a chip sign a (receipt) digest, one signature at a time per chip. */
  private async signDigest(chipIdHex: string, digest: Uint8Array): Promise<HeartbeatEvidence> {
    const chip = this.chips.get(chipIdHex);
    if (!chip) throw new Error(`chip ${chipIdHex} is not served here`);
    const result = chip.lock.then(() => chip.signer.answer(digest));
    chip.lock = result.catch(() => undefined);
    return await result;
  }
}

/** Where `readBody` puts a body's bytes as they come: memory (job bodies) or a file (models). */
interface BodySink {
  /** False when the sink wants no more until it has drained (`onceDrained`). */
  write(chunk: Buffer): boolean;
  onceDrained?(resume: () => void): void;
  /** A failure of the sink's own (a disk write): the body fails with it. */
  onError?(fail: (err: Error) => void): void;
  close(done: (err?: Error | null) => void): void;
  destroy(): void;
}

/** A body whose bytes do not hash to the hash the renter signed is refused (401). */
function checkBodyHash(digest: Uint8Array, signedHash: Uint8Array): void {
  if (!equalBytes(digest, signedHash))
    throw new HttpError(401, 'AUTH_BODY_MISMATCH', 'the body does not match the body hash that was signed');
}
