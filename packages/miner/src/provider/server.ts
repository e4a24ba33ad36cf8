/**
 * The provider API of the miner agent (PROTOCOL.md §8): renters of a lease on one of this agent's
 * chips upload ONNX models and run jobs; every job's result comes with a receipt signed by the
 * leased chip through its attestation profile.
 *
 *   GET  /v1/health            no auth: chain, chips, OCR model hash, queue, limits
 *   POST /v1/models            ONNX bytes → { modelHash, size, stored }
 *   POST /v1/jobs              { model: <hash hex> | "ocr", inputs | image, wait? } → job view
 *   GET  /v1/jobs/<job id>     job view (only to the lease that ran it)
 *
 * Every other request is signed by the lease's renter key (see @unc/sdk jobs.ts); the lease must
 * be active on chain, be for one of this agent's chips, and name the signing key as its renter.
 * Errors are JSON { error: { code, message } } with the HTTP status that says who must act.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import {
  contentHash,
  fromHex,
  type JobReceipt,
  jobIdOf,
  receiptDigest,
  type SignedReceipt,
  toHex,
} from '@unc/core';
import { createLogger, type Logger } from '@unc/node';
import {
  encodeSignedReceipt,
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
import type { LeaseSource, ProviderLease } from './lease.js';
import { ModelStore } from './models.js';
import { DEFAULT_OCR_MODELS, OcrEngine } from './ocr.js';
import { type ExecutionProviderName, OnnxRunner } from './onnx.js';
import { JobQueue, QueueFullError } from './queue.js';
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
  /** 127.0.0.1 unless told otherwise. */
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  executionProvider?: ExecutionProviderName;
  concurrency?: number;
  maxQueued?: number;
  /** Largest job request body (JSON with tensors or a base64 image). */
  maxBodyBytes?: number;
  maxModelBytes?: number;
  /** Accepted distance of a request's timestamp from this clock. */
  authWindowMs?: number;
  /** How long a lease read from the chain is trusted before it is read again. */
  leaseCacheMs?: number;
  /** Finished jobs kept for GET /v1/jobs/<id>; the oldest are forgotten first. */
  maxJobsKept?: number;
  /**
   * Serve https (TLS 1.3) with the certificate kept in this directory (created on first start);
   * without it the API is plain http, for dev chains and for a reverse proxy that terminates TLS.
   */
  tls?: ProviderTlsOptions;
  logger?: Logger;
}

interface Job {
  view: JobView;
  done: Promise<void>;
}

interface Chip {
  signer: ChipSigner;
  /** Receipts of one chip are signed one at a time (a TPM quote is several commands). */
  lock: Promise<unknown>;
}

export class ProviderServer {
  readonly chainId: string;
  private readonly logger: Logger;
  private readonly auth: RequestAuthenticator;
  private readonly store: ModelStore;
  private readonly onnx: OnnxRunner;
  private readonly queue: JobQueue;
  private readonly chips = new Map<string, Chip>();
  private readonly leaseCache = new Map<string, { lease: ProviderLease | null; at: number }>();
  private readonly jobs = new Map<string, Job>();
  private readonly maxBodyBytes: number;
  private readonly maxModelBytes: number;
  private readonly leaseCacheMs: number;
  private readonly maxJobsKept: number;
  private ocr: OcrEngine | null = null;
  private server: Server | HttpsServer | null = null;
  private stopWatching: (() => void) | null = null;
  url: string | null = null;
  /** SHA-256 (hex) of the certificate served now (null for plain http). */
  tlsFingerprint: string | null = null;

  constructor(private readonly opts: ProviderOptions) {
    this.chainId = opts.chainId;
    this.logger = opts.logger ?? createLogger('provider');
    this.auth = new RequestAuthenticator(opts.chainId, opts.authWindowMs ?? 60_000);
    this.store = new ModelStore(opts.modelDir);
    this.onnx = new OnnxRunner(opts.executionProvider ?? 'cpu', this.logger);
    this.queue = new JobQueue(opts.concurrency ?? 2, opts.maxQueued ?? 64);
    this.maxBodyBytes = opts.maxBodyBytes ?? 16 * 1024 * 1024;
    this.maxModelBytes = opts.maxModelBytes ?? 256 * 1024 * 1024;
    this.leaseCacheMs = opts.leaseCacheMs ?? 2_000;
    this.maxJobsKept = opts.maxJobsKept ?? 1_000;
  }

  get ocrModelHash(): string {
    if (!this.ocr) throw new Error('the provider is not started');
    return this.ocr.modelHashHex;
  }

  async start(): Promise<string> {
    for (const signer of this.opts.signers)
      this.chips.set(toHex(await signer.chipId()), { signer, lock: Promise.resolve() });
    await this.store.init();
    // Building the OCR pipeline tells whether the requested execution provider works.
    if (this.onnx.executionProvider !== 'cpu')
      await (await this.onnx.createSession(DEFAULT_OCR_MODELS.detectionPath)).release();
    this.ocr = await OcrEngine.create({ onnxOptions: this.onnx.sessionOptions() as Record<string, unknown> });
    const listener = (req: IncomingMessage, res: ServerResponse) => {
      const refused = this.opts.tls ? clientCertificateRefusal(req) : null;
      if (refused) {
        req.resume();
        return this.send(res, 403, { error: { code: 'CLIENT_CERT_MISMATCH', message: refused } });
      }
      this.handle(req, res).catch((err) => {
        this.logger.error('provider request failed', { error: (err as Error).message });
        if (!res.headersSent) this.send(res, 500, { error: { code: 'INTERNAL', message: 'internal error' } });
      });
    };
    let server: Server | HttpsServer;
    const tls = this.opts.tls;
    if (tls) {
      const pair = ensureProviderCertificate(tls.dir);
      this.tlsFingerprint = pair.fingerprint;
      const https = createHttpsServer(serverTlsOptions(pair), listener);
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
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port ?? 0, this.opts.host ?? '127.0.0.1', () => resolve());
    });
    const a = server.address() as AddressInfo;
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    this.url = `${tls ? 'https' : 'http'}://${host}:${a.port}`;
    this.logger.info('provider API listening', {
      url: this.url,
      tlsFingerprint: this.tlsFingerprint,
      chips: this.chips.size,
      executionProvider: this.onnx.executionProvider,
      ocrModelHash: this.ocr.modelHashHex,
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
    await Promise.allSettled([...this.jobs.values()].map((j) => j.done));
    await this.onnx.close();
  }

  health(): ProviderHealth {
    return {
      ok: true,
      chainId: this.chainId,
      chips: [...this.chips.keys()],
      ocrModelHash: this.ocrModelHash,
      executionProvider: this.onnx.executionProvider,
      queue: {
        running: this.queue.running,
        queued: this.queue.queued,
        concurrency: this.queue.concurrency,
        maxQueued: this.queue.maxQueued,
      },
      limits: { maxBodyBytes: this.maxBodyBytes, maxModelBytes: this.maxModelBytes },
    };
  }

  // -------------------------------------------------------------------------------------------

  private send(res: ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
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
            : /^\/v1\/jobs\/[0-9a-f]{64}$/.test(path)
              ? 'job'
              : null;
      if (!route) throw new HttpError(404, 'NOT_FOUND', `no such endpoint: ${method} ${path}`);
      const expected = route === 'job' ? 'GET' : 'POST';
      if (method !== expected) throw new HttpError(405, 'METHOD_NOT_ALLOWED', `use ${expected} ${path}`);
      const limit = route === 'models' ? this.maxModelBytes : route === 'jobs' ? this.maxBodyBytes : 0;
      const body = await this.readBody(req, limit);
      const auth = this.auth.verify(method, path, req.headers, contentHash(body));
      const lease = await this.checkLease(auth);
      this.auth.consume(auth);
      if (route === 'models') return this.send(res, 200, await this.uploadModel(body));
      if (route === 'jobs') {
        const { status, view } = await this.submitJob(auth, lease, body);
        return this.send(res, status, view);
      }
      const job = this.jobs.get(path.slice('/v1/jobs/'.length));
      if (!job || job.view.leaseId !== auth.leaseIdHex)
        throw new HttpError(404, 'JOB_NOT_FOUND', 'no such job for this lease');
      return this.send(res, 200, job.view);
    } catch (err) {
      if (err instanceof HttpError) {
        if (err.status === 413) res.setHeader('connection', 'close');
        return this.send(res, err.status, { error: { code: err.code, message: err.message } });
      }
      throw err;
    }
  }

  /** Reads at most `limit` bytes; a bigger body (declared or streamed) is a 413 without reading on. */
  private readBody(req: IncomingMessage, limit: number): Promise<Uint8Array> {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limit) {
      req.resume();
      return Promise.reject(
        new HttpError(413, 'BODY_TOO_LARGE', `the body is ${declared} bytes; the limit here is ${limit}`),
      );
    }
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (c: Buffer) => {
        size += c.length;
        if (size > limit) {
          req.removeAllListeners('data');
          req.resume();
          reject(new HttpError(413, 'BODY_TOO_LARGE', `the body exceeds the limit of ${limit} bytes`));
          return;
        }
        chunks.push(c);
      });
      req.on('end', () => {
        const b = Buffer.concat(chunks);
        resolve(new Uint8Array(b.buffer, b.byteOffset, b.length));
      });
      req.on('error', reject);
    });
  }

  private async lease(idHex: string, fresh = false): Promise<ProviderLease | null> {
    const cached = this.leaseCache.get(idHex);
    const now = Date.now();
    if (!fresh && cached && now - cached.at < this.leaseCacheMs) return cached.lease;
    let lease: ProviderLease | null;
    try {
      lease = await this.opts.leases.getLease(idHex);
    } catch (err) {
      throw new HttpError(
        503,
        'CHAIN_UNAVAILABLE',
        `cannot read the lease from the chain: ${(err as Error).message}`,
      );
    }
    this.leaseCache.set(idHex, { lease, at: now });
    if (this.leaseCache.size > 10_000) this.leaseCache.delete(this.leaseCache.keys().next().value as string);
    return lease;
  }

  private async checkLease(auth: AuthenticatedRequest): Promise<ProviderLease> {
    const lease = await this.lease(auth.leaseIdHex);
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

  private async uploadModel(body: Uint8Array): Promise<{ modelHash: string; size: number; stored: boolean }> {
    if (body.length === 0) throw new HttpError(400, 'BAD_MODEL', 'the body must be the ONNX model bytes');
    const hash = toHex(contentHash(body));
    if (!(await this.store.has(hash))) {
      // Only a model ONNX Runtime can load is stored; the session is kept for the first job.
      try {
        const session = await this.onnx.session(hash, async () => body);
        void session;
      } catch (err) {
        throw new HttpError(
          400,
          'BAD_MODEL',
          `ONNX Runtime cannot load the model: ${(err as Error).message.split('\n')[0]}`,
        );
      }
    }
    const { stored } = await this.store.put(body);
    return { modelHash: hash, size: body.length, stored };
  }

  private async submitJob(
    auth: AuthenticatedRequest,
    lease: ProviderLease,
    body: Uint8Array,
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
    let modelHash: Uint8Array;
    let inputHash: Uint8Array;
    let work: () => Promise<{ outputs?: RawTensor[]; ocr?: OcrLine[]; outputHash: Uint8Array }>;
    if (req.model === OCR_MODEL) {
      if (
        typeof req.image !== 'string' ||
        !/^[A-Za-z0-9+/]*={0,2}$/.test(req.image) ||
        req.image.length === 0
      )
        throw new HttpError(400, 'BAD_INPUT', 'an OCR job needs "image": a PNG or JPEG in base64');
      const image = new Uint8Array(Buffer.from(req.image, 'base64'));
      try {
        await OcrEngine.checkImage(image);
      } catch (err) {
        throw new HttpError(400, 'BAD_INPUT', (err as Error).message);
      }
      const ocr = this.ocr!;
      modelHash = ocr.modelHash;
      inputHash = imageHash(image);
      work = async () => {
        const lines = await ocr.recognise(image);
        return { ocr: lines, outputHash: ocrLinesHash(lines) };
      };
    } else if (typeof req.model === 'string' && /^[0-9a-f]{64}$/.test(req.model)) {
      const hash = req.model;
      if (!(await this.store.has(hash)))
        throw new HttpError(
          404,
          'MODEL_NOT_FOUND',
          `no model ${hash} here; upload it first (POST /v1/models)`,
        );
      let inputs: RawTensor[];
      try {
        inputs = tensorsFromJson(req.inputs);
      } catch (err) {
        throw new HttpError(400, 'BAD_INPUT', (err as Error).message);
      }
      modelHash = fromHex(hash, 32);
      inputHash = tensorsHash(inputs);
      work = async () => {
        const session = await this.onnx.session(hash, () => this.store.get(hash));
        const outputs = await this.onnx.run(session, inputs);
        return { outputs, outputHash: tensorsHash(outputs) };
      };
    } else {
      throw new HttpError(400, 'BAD_REQUEST', `"model" must be a model hash (64 hex) or "${OCR_MODEL}"`);
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
        const now = await this.lease(auth.leaseIdHex, true).catch(() => null);
        if (now?.status !== 'active' && now?.status !== 'closing')
          throw new Error(`lease ${auth.leaseIdHex} is no longer active`);
        const startMs = Date.now();
        const result = await work();
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
        if (result.outputs) view.outputs = tensorsToJson(result.outputs);
        if (result.ocr) view.ocr = { lines: result.ocr, text: result.ocr.map((l) => l.text).join('\n') };
        view.receipt = { hex: encodeSignedReceipt(signed), json: receiptToJson(signed) };
        view.status = 'done';
      });
    } catch (err) {
      if (err instanceof QueueFullError) throw new HttpError(429, 'QUEUE_FULL', err.message);
      throw err;
    }
    const settled = done.catch((err: Error) => {
      view.status = 'failed';
      view.error = err.message.split('\n')[0];
      this.logger.warn('job failed', { job: jobIdHex, lease: auth.leaseIdHex, error: view.error });
    });
    this.remember(jobIdHex, { view, done: settled });
    if (!wait) return { status: 202, view };
    await settled;
    if (view.status === 'failed') throw new HttpError(422, 'JOB_FAILED', view.error ?? 'the job failed');
    return { status: 200, view };
  }

  private remember(id: string, job: Job): void {
    this.jobs.set(id, job);
    while (this.jobs.size > this.maxJobsKept) {
      const [oldest, j] = this.jobs.entries().next().value as [string, Job];
      if (j.view.status === 'queued' || j.view.status === 'running') break;
      this.jobs.delete(oldest);
    }
  }

  private async sign(chipIdHex: string, receipt: JobReceipt): Promise<SignedReceipt> {
    const chip = this.chips.get(chipIdHex);
    if (!chip) throw new Error(`chip ${chipIdHex} is not served here`);
    const result = chip.lock.then(() => chip.signer.answer(receiptDigest(receipt)));
    chip.lock = result.catch(() => undefined);
    return { receipt, evidence: await result };
  }
}
