/**
 * Renting compute off chain (PROTOCOL.md §8): the renter's side of the provider agent's HTTP API.
 *
 * Every request is signed by the lease's renter key over a tagged hash of what it asks for (chain,
 * lease, method, path, body hash, time, nonce), so a provider serves only the renter the chain
 * names and nobody can replay a request. Inputs and outputs are hashed with the canonical codec,
 * the same way the provider hashes them into the receipt its chip signs; the renter recomputes
 * both hashes from what it sent and what it got, and checks the chip's signature against the
 * chip's on-chain record, all offline.
 */
import { randomBytes } from 'node:crypto';
import {
  BATCH_JOB_DONE,
  BATCH_JOB_FAILED,
  type BatchJobLeaf,
  type BatchReceipt,
  batchJobIdOf,
  bytes,
  type Chip,
  type Codec,
  contentHash,
  decode,
  decodeAddress,
  ed25519PublicKey,
  ed25519Sign,
  encode,
  equalBytes,
  fromHex,
  type JobReceipt,
  type JobRequestAuth,
  jobIdOf,
  jobRequestDigest,
  list,
  type SignedBatchReceipt,
  type SignedJobRequest,
  type SignedReceipt,
  signedBatchReceiptCodec,
  signedJobRequestCodec,
  signedReceiptCodec,
  string,
  struct,
  toHex,
  u32,
  u64,
  utf8,
  verifyBatchLeaf,
  verifyBatchReceipt,
  verifyReceipt,
} from '@unc/core';
import {
  type ClientCertificate,
  InsecureEndpointError,
  type PinnedHttpsAgent,
  pinnedHttpsAgent,
  plainHttpAgent,
  RequestTimeoutError,
  ResponseTooLargeError,
  sendRequest,
  TlsFingerprintError,
} from './tls.js';

/**
 * The largest answer a provider may send (64 MiB): more than any job's outputs with their receipt
 * need, and a bound on what a dishonest provider can make the renter hold in memory.
 */
export const DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

import type { ChipJson } from './views.js';

/** The model name of the provider's built-in OCR job (PP-OCRv4 detection + recognition). */
export const OCR_MODEL = 'ocr';

/** Request headers of the provider API. */
export const JOB_HEADERS = {
  lease: 'x-unc-lease',
  renter: 'x-unc-renter',
  timestamp: 'x-unc-timestamp',
  nonce: 'x-unc-nonce',
  signature: 'x-unc-signature',
  /**
   * The content hash of the body (hex), which the signature covers: the provider checks the
   * signature before it reads the body, then hashes the body as it streams in and compares.
   */
  bodyHash: 'x-unc-body-hash',
} as const;

// The request codec lives in core (a dispute on chain carries a signed request); re-exported here.
export {
  type JobRequestAuth,
  jobRequestAuthCodec,
  jobRequestDigest,
  type SignedJobRequest,
  signedJobRequestCodec,
} from '@unc/core';

/** Signs one request: the renter's signature over its digest, kept so it can back a dispute. */
export function signJobRequestAuth(
  renterSeed: Uint8Array,
  req: { chainId: string; leaseId: Uint8Array; method: string; path: string; body: Uint8Array },
  opts: { timestampMs?: bigint; nonce?: bigint } = {},
): SignedJobRequest {
  const request: JobRequestAuth = {
    chainId: req.chainId,
    leaseId: req.leaseId,
    method: req.method.toUpperCase(),
    path: req.path,
    bodyHash: contentHash(req.body),
    timestampMs: opts.timestampMs ?? BigInt(Date.now()),
    nonce: opts.nonce ?? randomBytes(8).readBigUInt64BE(0),
  };
  return { request, signature: ed25519Sign(renterSeed, jobRequestDigest(request)) };
}

/** The headers that carry a signed request. */
export function jobRequestHeaders(
  signed: SignedJobRequest,
  renterPublicKey: Uint8Array,
): Record<string, string> {
  return {
    [JOB_HEADERS.lease]: toHex(signed.request.leaseId),
    [JOB_HEADERS.renter]: toHex(renterPublicKey),
    [JOB_HEADERS.timestamp]: signed.request.timestampMs.toString(),
    [JOB_HEADERS.nonce]: signed.request.nonce.toString(),
    [JOB_HEADERS.signature]: toHex(signed.signature),
    [JOB_HEADERS.bodyHash]: toHex(signed.request.bodyHash),
  };
}

/** A signed request as hex (the file `unc market dispute` reads). */
export function encodeSignedJobRequest(signed: SignedJobRequest): string {
  return toHex(encode(signedJobRequestCodec, signed));
}

export function decodeSignedJobRequest(hex: string): SignedJobRequest {
  return decode(signedJobRequestCodec, fromHex(hex.trim()));
}

/** Signs one request; returns the headers that carry the signature. */
export function signJobRequest(
  renterSeed: Uint8Array,
  req: { chainId: string; leaseId: Uint8Array; method: string; path: string; body: Uint8Array },
  opts: { timestampMs?: bigint; nonce?: bigint } = {},
): Record<string, string> {
  return jobRequestHeaders(signJobRequestAuth(renterSeed, req, opts), ed25519PublicKey(renterSeed));
}

// ---------------------------------------------------------------------------------------------
// Tensors and OCR results: their JSON form and the canonical bytes their hashes are taken over.

export const TENSOR_TYPES = {
  float32: 4,
  float64: 8,
  int8: 1,
  uint8: 1,
  int16: 2,
  uint16: 2,
  int32: 4,
  uint32: 4,
  int64: 8,
  uint64: 8,
  bool: 1,
} as const;
export type TensorType = keyof typeof TENSOR_TYPES;

/** A tensor as JSON: element type, shape and the raw little-endian elements in base64. */
export interface TensorJson {
  type: TensorType;
  dims: number[];
  data: string;
}

export interface RawTensor {
  name: string;
  type: TensorType;
  dims: bigint[];
  data: Uint8Array;
}

/** Model inputs and outputs can be large; the body limit of the provider bounds them first. */
const MAX_TENSOR_BYTES = 1 << 30;

const rawTensorCodec: Codec<RawTensor> = struct<RawTensor>('Tensor', {
  name: string(256, 'tensorName'),
  type: string(16, 'tensorType') as Codec<TensorType>,
  dims: list(u64, 16, 'dims'),
  data: bytes(MAX_TENSOR_BYTES, 'tensorData'),
});
const tensorsCodec = list(rawTensorCodec, 256, 'tensors');

/** Checks one tensor's JSON (type, shape, data length) and returns its raw form. */
export function tensorFromJson(name: string, t: unknown): RawTensor {
  const fail = (why: string): never => {
    throw new Error(`tensor "${name}": ${why}`);
  };
  if (typeof t !== 'object' || t === null) fail('expected {type, dims, data}');
  const { type, dims, data } = t as Record<string, unknown>;
  if (typeof type !== 'string' || !(type in TENSOR_TYPES))
    fail(`unsupported type ${JSON.stringify(type)}; one of ${Object.keys(TENSOR_TYPES).join(', ')}`);
  if (!Array.isArray(dims) || dims.length > 16 || dims.some((d) => !Number.isSafeInteger(d) || d < 0))
    fail('dims must be a list of at most 16 non-negative integers');
  if (typeof data !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(data)) fail('data must be base64');
  const bytesOf = Buffer.from(data as string, 'base64');
  const count = (dims as number[]).reduce((a, b) => a * b, 1);
  const expected = count * TENSOR_TYPES[type as TensorType];
  if (bytesOf.length !== expected)
    fail(
      `data has ${bytesOf.length} bytes; dims [${(dims as number[]).join(',')}] of ${type} need ${expected}`,
    );
  return {
    name,
    type: type as TensorType,
    dims: (dims as number[]).map(BigInt),
    data: new Uint8Array(bytesOf.buffer, bytesOf.byteOffset, bytesOf.length),
  };
}

export function tensorToJson(t: RawTensor): TensorJson {
  return { type: t.type, dims: t.dims.map(Number), data: Buffer.from(t.data).toString('base64') };
}

/** Parses a {name: tensor} map; names sorted so the same tensors always hash the same. */
export function tensorsFromJson(map: unknown): RawTensor[] {
  if (typeof map !== 'object' || map === null || Array.isArray(map))
    throw new Error('inputs must be an object {name: {type, dims, data}}');
  const names = Object.keys(map).sort();
  if (names.length === 0) throw new Error('inputs must name at least one tensor');
  return names.map((n) => tensorFromJson(n, (map as Record<string, unknown>)[n]));
}

export function tensorsToJson(tensors: RawTensor[]): Record<string, TensorJson> {
  const out: Record<string, TensorJson> = {};
  for (const t of tensors) out[t.name] = tensorToJson(t);
  return out;
}

/** Content hash of a tensor set (inputs or outputs of a generic job). */
export function tensorsHash(tensors: RawTensor[]): Uint8Array {
  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return contentHash(encode(tensorsCodec, sorted));
}

/** One recognised line of text; confidence in parts per million and integer pixel corners. */
export interface OcrLine {
  text: string;
  confidencePpm: number;
  box: [number, number][];
}

const ocrLinesCodec = list(
  struct<{ text: string; confidencePpm: number; box: { x: number; y: number }[] }>('OcrLine', {
    text: string(4096, 'text'),
    confidencePpm: u32,
    box: list(struct<{ x: number; y: number }>('Point', { x: u32, y: u32 }), 8, 'box'),
  }),
  4096,
  'ocrLines',
);

/** Content hash of an OCR result (the output hash of an OCR job). */
export function ocrLinesHash(lines: OcrLine[]): Uint8Array {
  return contentHash(
    encode(
      ocrLinesCodec,
      lines.map((l) => ({
        text: l.text,
        confidencePpm: l.confidencePpm,
        box: l.box.map(([x, y]) => ({ x, y })),
      })),
    ),
  );
}

/**
 * An OCR result as the renter is shown it: the signed lines and their text joined by newlines, as
 * the provider builds it. The `text` a provider sends beside its lines is not what the receipt
 * signs (only the lines hash into it), so it is never taken from the answer.
 */
export function ocrResult(lines: OcrLine[]): { lines: OcrLine[]; text: string } {
  return { lines, text: lines.map((l) => l.text).join('\n') };
}

/** Content hash of an OCR job's input: the image bytes as sent. */
export function imageHash(image: Uint8Array): Uint8Array {
  return contentHash(image);
}

// ---------------------------------------------------------------------------------------------
// Receipts.

export interface ReceiptJson {
  chainId: string;
  leaseId: string;
  chipId: string;
  jobId: string;
  modelHash: string;
  inputHash: string;
  outputHash: string;
  startMs: number;
  durationMs: number;
  profile: string;
}

/**
 * A checked job's view with every field the renter is shown that the receipt decides taken from
 * the receipt (`jobId`, `leaseId`, `receipt.json`, an OCR result's `text` from its signed lines),
 * never from the provider's rendering of it: `unc job run|ocr` prints them as verified.
 */
export function boundJobView(job: JobView, signed: SignedReceipt): JobView {
  const r = signed.receipt;
  return {
    ...job,
    jobId: toHex(r.jobId),
    leaseId: toHex(r.leaseId),
    ...(job.ocr ? { ocr: ocrResult(job.ocr.lines) } : {}),
    receipt: { hex: job.receipt!.hex, json: receiptToJson(signed) },
  };
}

export function receiptToJson(signed: SignedReceipt): ReceiptJson {
  const r = signed.receipt;
  return {
    chainId: r.chainId,
    leaseId: toHex(r.leaseId),
    chipId: toHex(r.chipId),
    jobId: toHex(r.jobId),
    modelHash: toHex(r.modelHash),
    inputHash: toHex(r.inputHash),
    outputHash: toHex(r.outputHash),
    startMs: Number(r.startMs),
    durationMs: Number(r.durationMs),
    profile: signed.evidence.type,
  };
}

export function decodeSignedReceipt(hex: string): SignedReceipt {
  const text = hex.trim().replace(/^0x/, '');
  if (!/^([0-9a-fA-F]{2})+$/.test(text)) throw new Error('a signed receipt must be hex');
  return decode(signedReceiptCodec, fromHex(text));
}

export function encodeSignedReceipt(signed: SignedReceipt): string {
  return toHex(encode(signedReceiptCodec, signed));
}

/** What `verifyReceiptOffline` needs of the chip: its record from the chain. */
export type ChipRecord = Chip | ChipJson;

function chipFromJson(c: ChipJson): Chip {
  if (typeof c.keyMaterial !== 'string')
    throw new Error('the chip record has no keyMaterial: the node is too old to verify receipts against');
  return {
    chipId: fromHex(c.chipId, 32),
    owner: decodeAddress(c.owner),
    vendorId: c.vendorId,
    modelId: c.modelId,
    profile: c.profile as Chip['profile'],
    power: BigInt(c.power),
    keyMaterial: fromHex(c.keyMaterial),
    certSerials: c.certSerials,
    registeredAt: BigInt(c.registeredAt),
    firstEpoch: BigInt(c.firstEpoch),
    status: 0,
    statusReason: c.statusReason,
    tpmClock: null,
    creditClock: null,
    creditClockTime: 0n,
    priorCredit: null,
    epoch: 0n,
    answered: 0,
    prevAnswered: 0,
    uncredited: 0,
    prevUncredited: 0,
    lastAnsweredSlot: 0n,
    lastAnsweredAt: BigInt(c.lastAnsweredAt),
    settledThrough: 0n,
    slotsAnswered: BigInt(c.slotsAnswered),
    slotsMissed: BigInt(c.slotsMissed),
    rewardsEarned: BigInt(c.rewardsEarned),
    rewardedThrough: 0n,
    prevPower: BigInt(c.power),
    certsNotAfter: null,
    releasedAt: 0n,
  };
}

/**
 * Checks a signed receipt (hex of its canonical encoding, or decoded) against the chip's record:
 * same chain, same chip, and the chip's registered attestation key signed exactly this receipt.
 * Returns the receipt; throws with the reason otherwise.
 */
export function verifyReceiptOffline(
  signed: string | SignedReceipt,
  chip: ChipRecord,
  chainId: string,
): JobReceipt {
  const s = typeof signed === 'string' ? decodeSignedReceipt(signed) : signed;
  const record = typeof chip.chipId === 'string' ? chipFromJson(chip as ChipJson) : (chip as Chip);
  verifyReceipt(s, record, chainId);
  return s.receipt;
}

// ---------------------------------------------------------------------------------------------
// Batch receipts: one chip signature over a Merkle root of the results of several jobs.

export interface BatchReceiptJson {
  chainId: string;
  leaseId: string;
  chipId: string;
  batchId: string;
  modelHash: string;
  jobCount: number;
  resultsRoot: string;
  startMs: number;
  durationMs: number;
  profile: string;
}

export function batchReceiptToJson(signed: SignedBatchReceipt): BatchReceiptJson {
  const r = signed.receipt;
  return {
    chainId: r.chainId,
    leaseId: toHex(r.leaseId),
    chipId: toHex(r.chipId),
    batchId: toHex(r.batchId),
    modelHash: toHex(r.modelHash),
    jobCount: r.jobCount,
    resultsRoot: toHex(r.resultsRoot),
    startMs: Number(r.startMs),
    durationMs: Number(r.durationMs),
    profile: signed.evidence.type,
  };
}

export function encodeSignedBatchReceipt(signed: SignedBatchReceipt): string {
  return toHex(encode(signedBatchReceiptCodec, signed));
}

export function decodeSignedBatchReceipt(hex: string): SignedBatchReceipt {
  const text = hex.trim().replace(/^0x/, '');
  if (!/^([0-9a-fA-F]{2})+$/.test(text)) throw new Error('a signed batch receipt must be hex');
  return decode(signedBatchReceiptCodec, fromHex(text));
}

/** Like verifyReceiptOffline, for a batch receipt: the chip's registered key signed exactly it. */
export function verifyBatchReceiptOffline(
  signed: string | SignedBatchReceipt,
  chip: ChipRecord,
  chainId: string,
): BatchReceipt {
  const s = typeof signed === 'string' ? decodeSignedBatchReceipt(signed) : signed;
  const record = typeof chip.chipId === 'string' ? chipFromJson(chip as ChipJson) : (chip as Chip);
  verifyBatchReceipt(s, record, chainId);
  return s.receipt;
}

/** The output hash a failed job of a batch is given in its leaf: the hash of its error code. */
export function failedJobOutputHash(code: string): Uint8Array {
  return contentHash(utf8(code));
}

/**
 * The leaf of one job of a batch, rebuilt from what the renter sent (its input hash) and what it got
 * back (the job's view: outcome, outputs or error code, duration), to be checked against the
 * receipt's root with the job's proof.
 */
export function batchLeafOf(receipt: BatchReceipt, job: BatchJobView, inputHash: Uint8Array): BatchJobLeaf {
  let status: number;
  let outputHash: Uint8Array;
  if (job.status === 'done') {
    status = BATCH_JOB_DONE;
    if (job.ocr) outputHash = ocrLinesHash(job.ocr.lines);
    else if (job.outputs) outputHash = tensorsHash(tensorsFromJson(job.outputs));
    else throw new Error(`job ${job.index} of the batch is done but has no outputs`);
  } else if (job.status === 'failed') {
    status = BATCH_JOB_FAILED;
    if (typeof job.code !== 'string') throw new Error(`job ${job.index} of the batch failed without a code`);
    outputHash = failedJobOutputHash(job.code);
  } else throw new Error(`job ${job.index} of the batch is ${String(job.status)}`);
  if (!Number.isSafeInteger(job.durationMs) || job.durationMs < 0)
    throw new Error(`job ${job.index} of the batch has no valid durationMs`);
  return {
    index: job.index,
    jobId: batchJobIdOf(receipt.batchId, job.index),
    inputHash,
    status,
    outputHash,
    durationMs: BigInt(job.durationMs),
  };
}

/**
 * Checks one job of a batch on its own (an auditor holding only that job, its input hash, its proof
 * and the signed receipt): the job's result is the one the chip signed at its index. The receipt's
 * signature is checked separately (verifyBatchReceiptOffline).
 */
export function verifyBatchJob(
  receipt: BatchReceipt,
  job: BatchJobView,
  inputHash: Uint8Array,
): BatchJobLeaf {
  if (!Array.isArray(job.proof) || job.proof.some((h) => typeof h !== 'string' || !/^[0-9a-f]{64}$/.test(h)))
    throw new Error(`job ${job.index} of the batch has no valid proof`);
  const leaf = batchLeafOf(receipt, job, inputHash);
  if (job.jobId !== toHex(leaf.jobId)) throw new Error(`job ${job.index} of the batch has another id`);
  verifyBatchLeaf(
    receipt,
    leaf,
    job.proof.map((h) => fromHex(h, 32)),
  );
  return leaf;
}

// ---------------------------------------------------------------------------------------------
// The client.

export class ProviderError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ProviderError';
  }
}

export interface JobView {
  jobId: string;
  leaseId: string;
  model: string;
  status: 'queued' | 'running' | 'done' | 'failed';
  error?: string;
  outputs?: Record<string, TensorJson>;
  ocr?: { lines: OcrLine[]; text: string };
  receipt?: { hex: string; json: ReceiptJson };
}

export interface ProviderHealth {
  ok: boolean;
  chainId: string;
  chips: string[];
  ocrModelHash: string;
  executionProvider: string;
  /** The OS isolation its job processes run under: `bwrap` (a sandbox without network) or `none`. */
  jobIsolation?: string;
  queue: { running: number; queued: number; concurrency: number; maxQueued: number };
  limits: {
    maxBodyBytes: number;
    maxModelBytes: number;
    /** Wall-clock limit of one job; past it the job is stopped (JOB_TIMEOUT). */
    jobTimeoutMs?: number;
    /** Memory limit of one job's process, bytes; past it the job is stopped (JOB_MEMORY). */
    jobMemoryBytes?: number;
    /** Jobs one renter key may have queued or running at once. */
    maxJobsPerRenter?: number;
    /** Jobs one POST /v1/jobs/batch may hold. */
    maxBatchJobs?: number;
  };
}

/** One job of a batch as the provider answers it. */
export interface BatchJobView {
  index: number;
  jobId: string;
  status: 'done' | 'failed';
  /** Failed: the error's code (its hash is the leaf's output hash) and message. */
  code?: string;
  error?: string;
  outputs?: Record<string, TensorJson>;
  ocr?: { lines: OcrLine[]; text: string };
  durationMs: number;
  /** Sibling hashes (hex), bottom up, proving this job's leaf against the receipt's resultsRoot. */
  proof: string[];
}

/** The answer to POST /v1/jobs/batch. */
export interface BatchView {
  batchId: string;
  leaseId: string;
  model: string;
  jobs: BatchJobView[];
  receipt: { hex: string; json: BatchReceiptJson };
}

export interface BatchResult {
  batch: BatchView;
  receipt: SignedBatchReceipt;
  /** The jobs in the order sent, each checked against the receipt; failed ones included. */
  jobs: BatchJobView[];
}

export interface JobResult {
  job: JobView;
  receipt: SignedReceipt;
}

export interface ProviderClientOptions {
  endpoint: string;
  chainId: string;
  leaseId: string | Uint8Array;
  renterSeed: Uint8Array;
  timeoutMs?: number;
  /** The largest answer read from the provider (default `DEFAULT_MAX_RESPONSE_BYTES`). */
  maxResponseBytes?: number;
  /**
   * SHA-256 fingerprints (hex) of the TLS certificates the offer lists on chain: an https://
   * endpoint must present one of them, whatever a certificate authority says.
   */
  tlsFingerprints?: readonly string[];
  /**
   * Reads the offer's fingerprints from the chain again. Called once when the endpoint presents
   * an unlisted certificate (the provider may have rotated it): the request is then retried.
   */
  refreshTlsFingerprints?: () => Promise<readonly string[]>;
  /**
   * With `refreshTlsFingerprints`: fingerprints older than this are read from the chain again
   * before the next request (default 60 s), so a certificate the provider retired (a leaked key)
   * stops being accepted by a long-lived client, whose cached list would otherwise keep it. A
   * request whose re-read fails, fails.
   */
  tlsFingerprintsMaxAgeMs?: number;
  /** Plain http:// is refused unless this is set, which only a dev chain justifies. */
  allowHttp?: boolean;
  /** Present a client certificate (mutual TLS); the request signature stays the authority. */
  clientCertificate?: ClientCertificate;
}

/**
 * The renter's client of one lease's provider. Every result it returns has been checked against
 * what was sent: the receipt names this lease, the model and the input hash that were sent, and
 * the output hash of the outputs received. The chip signature is checked by `verifyReceiptOffline`
 * against the chip's on-chain record (the client does not know it).
 */
export class ProviderClient {
  readonly endpoint: string;
  private readonly leaseId: Uint8Array;
  /** The renter's public key, derived once: deriving it costs more than signing (a key export). */
  private readonly renterPublicKey: Uint8Array;
  private readonly timeoutMs: number;
  private readonly agent: ReturnType<typeof plainHttpAgent> | PinnedHttpsAgent;
  private fingerprints: string[] = [];
  private fingerprintsReadAt = Date.now();
  private rereading: Promise<readonly string[]> | null = null;
  /**
   * The last job request sent (POST /v1/jobs) with the renter's signature: if the provider never
   * answers it, it is what `unc market dispute` records on chain (encodeSignedJobRequest).
   */
  lastJobRequest: SignedJobRequest | null = null;

  constructor(private readonly opts: ProviderClientOptions) {
    let url: URL;
    try {
      url = new URL(opts.endpoint);
    } catch {
      throw new Error(`invalid provider endpoint "${opts.endpoint}": expected e.g. http://127.0.0.1:7070`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw new Error(`invalid provider endpoint "${opts.endpoint}": must start with http:// or https://`);
    this.endpoint = url.toString().replace(/\/$/, '');
    this.leaseId = typeof opts.leaseId === 'string' ? fromHex(opts.leaseId, 32) : opts.leaseId;
    this.timeoutMs = opts.timeoutMs ?? 120_000;
    this.renterPublicKey = ed25519PublicKey(opts.renterSeed);
    if (url.protocol === 'http:') {
      if (!opts.allowHttp) throw new InsecureEndpointError(this.endpoint);
      this.agent = plainHttpAgent();
    } else {
      this.fingerprints = (opts.tlsFingerprints ?? []).map((f) => f.toLowerCase());
      if (this.fingerprints.length === 0 && !opts.refreshTlsFingerprints)
        throw new Error(`no TLS certificate fingerprint to pin for ${this.endpoint}: the offer lists none`);
      this.agent = pinnedHttpsAgent({
        endpoint: this.endpoint,
        fingerprints: () => this.fingerprints,
        ...(opts.clientCertificate ? { clientCertificate: opts.clientCertificate } : {}),
      });
    }
  }

  /** The fingerprints connections are pinned to now. */
  get tlsFingerprints(): readonly string[] {
    return this.fingerprints;
  }

  /** Takes the chain's current fingerprints; idle connections to a certificate now unlisted close. */
  private setFingerprints(fresh: string[]): void {
    this.fingerprints = fresh;
    this.fingerprintsReadAt = Date.now();
    if ('dropUnlisted' in this.agent) this.agent.dropUnlisted();
  }

  /** Closes the kept-alive connections. */
  close(): void {
    this.agent.destroy();
  }

  async health(): Promise<ProviderHealth> {
    return (await this.request('GET', '/v1/health', undefined, false)) as ProviderHealth;
  }

  /** Uploads ONNX bytes; returns the model hash (hex) to run jobs with. */
  async uploadModel(model: Uint8Array): Promise<{ modelHash: string; size: number; stored: boolean }> {
    const res = (await this.request('POST', '/v1/models', model)) as {
      modelHash: string;
      size: number;
      stored: boolean;
    };
    if (res.modelHash !== toHex(contentHash(model)))
      throw new Error('the provider stored the model under another hash than its content hash');
    return res;
  }

  /** Runs a model (hash hex) on tensors and waits for the outputs and the receipt. */
  async runJob(modelHash: string, inputs: Record<string, TensorJson>): Promise<JobResult> {
    const raw = tensorsFromJson(inputs);
    const body = utf8(JSON.stringify({ model: modelHash, inputs }));
    const sent: { signed?: SignedJobRequest } = {};
    const job = (await this.request('POST', '/v1/jobs', body, true, false, sent)) as JobView;
    return this.check(
      await this.whole(job, sent.signed!),
      fromHex(modelHash, 32),
      tensorsHash(raw),
      sent.signed!,
    );
  }

  /** Runs the provider's OCR job on a PNG or JPEG image. */
  async runOcr(image: Uint8Array, ocrModelHash?: string): Promise<JobResult> {
    const body = utf8(JSON.stringify({ model: OCR_MODEL, image: Buffer.from(image).toString('base64') }));
    const sent: { signed?: SignedJobRequest } = {};
    const job = await this.whole(
      (await this.request('POST', '/v1/jobs', body, true, false, sent)) as JobView,
      sent.signed!,
    );
    const expected = ocrModelHash ?? (await this.health()).ocrModelHash;
    return this.check(job, fromHex(expected, 32), imageHash(image), sent.signed!);
  }

  /**
   * Runs several jobs of one model in one signed request (POST /v1/jobs/batch) and checks the one
   * batch receipt: it names this lease, this request, the model and as many jobs as were sent, and
   * every job's result (or failure) is proven against the root the chip signed. The provider
   * counts each job against its queue and the renter's share like a job sent alone.
   */
  async runBatch(modelHash: string, inputs: Record<string, TensorJson>[]): Promise<BatchResult> {
    const hashes = inputs.map((i) => tensorsHash(tensorsFromJson(i)));
    const body = utf8(JSON.stringify({ model: modelHash, jobs: inputs.map((i) => ({ inputs: i })) }));
    return this.batch(body, fromHex(modelHash, 32), hashes);
  }

  /** Runs the provider's OCR job on several images in one request (see runBatch). */
  async runOcrBatch(images: Uint8Array[], ocrModelHash?: string): Promise<BatchResult> {
    const body = utf8(
      JSON.stringify({
        model: OCR_MODEL,
        jobs: images.map((image) => ({ image: Buffer.from(image).toString('base64') })),
      }),
    );
    const expected = ocrModelHash ?? (await this.health()).ocrModelHash;
    return this.batch(body, fromHex(expected, 32), images.map(imageHash));
  }

  private async batch(
    body: Uint8Array,
    modelHash: Uint8Array,
    inputHashes: Uint8Array[],
  ): Promise<BatchResult> {
    if (inputHashes.length === 0) throw new Error('a batch needs at least one job');
    const sent: { signed?: SignedJobRequest } = {};
    let batch = (await this.request('POST', '/v1/jobs/batch', body, true, false, sent)) as BatchView;
    const request = sent.signed!.request;
    const batchId = jobIdOf(this.leaseId, jobRequestDigest(request), request.nonce);
    // Answered with its id only (202: the renter's earlier answers are not read yet, past its
    // share): the whole answer is read by GET, asked by the request's own id, and checked below
    // as if it had come at once, every job against the one receipt.
    if (!batch.receipt) batch = await this.readKept(toHex(batchId), (id, ms) => this.getBatch(id, ms));
    if (!batch.receipt) throw new Error('the provider answered the batch without its receipt');
    const signed = decodeSignedBatchReceipt(String(batch.receipt.hex ?? ''));
    const r = signed.receipt;
    if (r.chainId !== this.opts.chainId) throw new Error(`the batch receipt is for chain "${r.chainId}"`);
    if (!equalBytes(r.leaseId, this.leaseId)) throw new Error('the batch receipt names another lease');
    if (!equalBytes(r.batchId, batchId))
      throw new Error('the batch receipt is for another request than the one sent');
    if (!equalBytes(r.modelHash, modelHash))
      throw new Error('the batch receipt names another model than requested');
    if (r.jobCount !== inputHashes.length)
      throw new Error(`the batch receipt covers ${r.jobCount} jobs; ${inputHashes.length} were sent`);
    if (!Array.isArray(batch.jobs) || batch.jobs.length !== inputHashes.length)
      throw new Error('the provider did not answer every job of the batch');
    batch.jobs.forEach((job, i) => {
      if (job.index !== i) throw new Error(`the batch's answers are out of order at ${i}`);
      verifyBatchJob(r, job, inputHashes[i]!);
    });
    // What the chip signed, not the provider's renderings of it (boundJobView).
    const jobs = batch.jobs.map((job) => (job.ocr ? { ...job, ocr: ocrResult(job.ocr.lines) } : job));
    const bound = {
      ...batch,
      jobs,
      receipt: { hex: batch.receipt.hex, json: batchReceiptToJson(signed) },
    };
    return { batch: bound, receipt: signed, jobs };
  }

  /** A job's view (GET /v1/jobs/<job id>); `timeoutMs`: the most this read may take (the client's by default). */
  async getJob(jobId: string, timeoutMs?: number): Promise<JobView> {
    return (await this.request(
      'GET',
      `/v1/jobs/${jobId}`,
      undefined,
      true,
      false,
      undefined,
      timeoutMs,
    )) as JobView;
  }

  /**
   * The whole answer of a batch the provider answered with its id only (202), as kept for its GET
   * (GET /v1/jobs/<batch id>). Unchecked: runBatch and runOcrBatch check it against what was sent.
   * `timeoutMs`: the most this read may take (the client's by default).
   */
  async getBatch(batchId: string, timeoutMs?: number): Promise<BatchView> {
    return (await this.request(
      'GET',
      `/v1/jobs/${batchId}`,
      undefined,
      true,
      false,
      undefined,
      timeoutMs,
    )) as BatchView;
  }

  /**
   * The whole answer of a job waited for. A provider whose earlier answers to this renter key are
   * not read yet, past its share, answers a job that ended with its id only (202, docs/jobs.md):
   * its result is then read by GET, tried again with a growing pause while that is refused
   * ANSWERS_UNREAD (429: those earlier answers are still being taken), until the client's time
   * limit. A GET that says the job is still queued or running contradicts the provider's "done":
   * refused at once.
   */
  private async whole(job: JobView, sent: SignedJobRequest): Promise<JobView> {
    if (job.status !== 'done' || job.receipt) return job;
    // Asked by the request's own id, not the one the answer names.
    const id = toHex(jobIdOf(this.leaseId, jobRequestDigest(sent.request), sent.request.nonce));
    const got = await this.readKept(id, (i, ms) => this.getJob(i, ms));
    if (got.status === 'done' || got.status === 'failed') return got;
    // It said the job had ended: waiting for the GET to agree would only wait on its word.
    throw new Error(`provider answered job ${id} done, but its GET says ${got.status}`);
  }

  /**
   * Reads a result the provider answered with its id only (a job or a batch) by `get`, tried
   * again with a growing pause while that is refused ANSWERS_UNREAD, until the client's time limit.
   * The limit holds for the whole read: each GET and pause has only what is left of it. Before, the
   * GET sent just before the limit had a whole limit of its own, so a provider that refused until
   * then and held that GET kept its renter waiting twice as long.
   */
  private async readKept<T>(id: string, get: (id: string, timeoutMs: number) => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.timeoutMs;
    for (let pause = 20; ; pause = Math.min(2 * pause, 1_000)) {
      try {
        return await get(id, Math.max(1, deadline - Date.now()));
      } catch (err) {
        // The last GET has only what was left of the time, so it can end with it: that request
        // timeout is this limit running out, not a provider out of reach. Any other failure (a
        // certificate not on chain, a definitive answer) is passed on as it is.
        if (Date.now() >= deadline && (err as Error).cause instanceof RequestTimeoutError)
          throw new Error(`job ${id} ended, but its result could not be read in time`, { cause: err });
        if (!(err instanceof ProviderError && err.code === 'ANSWERS_UNREAD') || Date.now() >= deadline)
          throw err;
      }
      await new Promise((r) => setTimeout(r, Math.min(pause, deadline - Date.now())));
      if (Date.now() >= deadline)
        throw new Error(`job ${id} ended, but its result could not be read in time`);
    }
  }

  private check(
    job: JobView,
    modelHash: Uint8Array,
    inputHash: Uint8Array,
    sent: SignedJobRequest,
  ): JobResult {
    if (job.status === 'failed') throw new ProviderError(422, 'JOB_FAILED', job.error ?? 'the job failed');
    if (job.status !== 'done') throw new Error(`the job is ${job.status}, not done`);
    if (!job.receipt) throw new Error('the provider answered the job done without its receipt');
    const signed = decodeSignedReceipt(job.receipt.hex);
    const r = signed.receipt;
    if (r.chainId !== this.opts.chainId) throw new Error(`the receipt is for chain "${r.chainId}"`);
    if (!equalBytes(r.leaseId, this.leaseId)) throw new Error('the receipt names another lease');
    // The job id is the request's own (lease, signed digest, nonce): a receipt of an earlier job
    // with the same model and inputs, replayed instead of running this one, names another.
    if (!equalBytes(r.jobId, jobIdOf(this.leaseId, jobRequestDigest(sent.request), sent.request.nonce)))
      throw new Error('the receipt is for another request than the one sent');
    if (!equalBytes(r.modelHash, modelHash))
      throw new Error('the receipt names another model than requested');
    if (!equalBytes(r.inputHash, inputHash)) throw new Error('the receipt names other inputs than were sent');
    const outputHash = job.ocr
      ? ocrLinesHash(job.ocr.lines)
      : job.outputs
        ? tensorsHash(tensorsFromJson(job.outputs))
        : null;
    if (!outputHash || !equalBytes(r.outputHash, outputHash))
      throw new Error('the receipt does not match the outputs returned');
    return { job: boundJobView(job, signed), receipt: signed };
  }

  private async request(
    method: string,
    path: string,
    body: Uint8Array | undefined,
    sign = true,
    retried = false,
    /** Receives the signed request actually sent (the last one, after a retry). */
    sent?: { signed?: SignedJobRequest },
    /** The most this request may take, ms (the client's time limit by default). */
    timeoutMs: number = this.timeoutMs,
  ): Promise<unknown> {
    const payload = body ?? new Uint8Array(0);
    let headers: Record<string, string> = {};
    if (sign) {
      const signed = signJobRequestAuth(this.opts.renterSeed, {
        chainId: this.opts.chainId,
        leaseId: this.leaseId,
        method,
        path,
        body: payload,
      });
      if (method === 'POST' && path.startsWith('/v1/jobs')) this.lastJobRequest = signed;
      if (sent) sent.signed = signed;
      headers = jobRequestHeaders(signed, this.renterPublicKey);
    }
    if (body)
      headers['content-type'] = path === '/v1/models' ? 'application/octet-stream' : 'application/json';
    const refresh = this.opts.refreshTlsFingerprints;
    const maxAge = this.opts.tlsFingerprintsMaxAgeMs ?? 60_000;
    if (refresh && 'dropUnlisted' in this.agent && Date.now() - this.fingerprintsReadAt > maxAge) {
      // An old list may still name a certificate the provider has retired since: read it again
      // (once for all the requests that find it old). If the chain cannot be read, the request
      // fails rather than trust the old list: whoever blocks the renter's node could keep it.
      this.rereading ??= refresh().finally(() => {
        this.rereading = null;
      });
      const fresh = (await this.rereading).map((f) => f.toLowerCase());
      if (fresh.length > 0) this.setFingerprints(fresh);
    }
    let res: { status: number; body: Buffer };
    try {
      res = await sendRequest(new URL(`${this.endpoint}${path}`), {
        method,
        headers,
        ...(body ? { body: payload } : {}),
        agent: this.agent,
        timeoutMs,
        maxResponseBytes: this.opts.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES,
      });
    } catch (err) {
      if (err instanceof ResponseTooLargeError)
        // It answered, too much: a provider's fault, not a request left without an answer.
        throw new ProviderError(
          502,
          'RESPONSE_TOO_LARGE',
          `the provider's answer is over ${err.limit} bytes`,
        );
      if (err instanceof TlsFingerprintError) {
        // Nothing was sent. The provider may have rotated its certificate since the fingerprints
        // were read: read them from the chain once more, and retry only if they changed.
        if (!retried && this.opts.refreshTlsFingerprints) {
          const fresh = (await this.opts.refreshTlsFingerprints()).map((f) => f.toLowerCase());
          if (fresh.length > 0) this.setFingerprints(fresh);
          if (fresh.includes(err.presented))
            return this.request(method, path, body, sign, true, sent, timeoutMs);
          throw new TlsFingerprintError(err.endpoint, fresh, err.presented);
        }
        throw err;
      }
      const e = err as Error & { code?: string; cause?: { code?: string; message?: string } };
      throw new Error(
        `cannot reach the provider at ${this.endpoint}: ${e.code ?? e.cause?.code ?? e.cause?.message ?? e.message}`,
        { cause: err },
      );
    }
    let json: unknown;
    try {
      json = JSON.parse(res.body.toString('utf8'));
    } catch {
      throw new ProviderError(
        res.status,
        'BAD_RESPONSE',
        `the provider answered HTTP ${res.status} without JSON`,
      );
    }
    if (res.status < 200 || res.status > 299) {
      const e = (json as { error?: { code?: string; message?: string } }).error;
      throw new ProviderError(res.status, e?.code ?? 'ERROR', e?.message ?? `HTTP ${res.status}`);
    }
    return json;
  }
}
