/**
 * Authentication of renter requests: the signature of the header key over the request digest
 * (whose body hash is declared in a header, so all of this is checked before the body is read),
 * the timestamp inside a window around the provider's clock, and a nonce not seen before inside
 * that window (the cache only needs to remember nonces as long as their timestamps stay valid).
 *
 * Used nonces are also appended to a file and read back at start, so a request captured before a
 * restart (or a kill -9) is still a replay after it; a request that acts (a POST) waits until its
 * nonce is on the disk (durable), so a power loss does not forget it either. Each renter key has its own share of the
 * cache, so one renter sending fast cannot lock the others out.
 */
import { closeSync, fdatasync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { ed25519Verify, fromHex } from '@unc/core';
import { removeWholeLeftovers, writeFileWhole } from '@unc/node';
import { JOB_HEADERS, type JobRequestAuth, jobRequestDigest } from '@unc/sdk';
import { HttpError } from './errors.js';

export interface AuthenticatedRequest {
  leaseId: Uint8Array;
  leaseIdHex: string;
  renterKeyHex: string;
  nonce: bigint;
  /** The digest the renter signed: the request hash its job id is derived from. */
  digest: Uint8Array;
  /** The body's content hash as declared (and signed); the body must hash to it. */
  bodyHash: Uint8Array;
}

export interface AuthOptions {
  /** Requests whose timestamp is further than this from the provider's clock are refused. */
  windowMs?: number;
  /** Nonces remembered at once, all renters together. */
  maxNonces?: number;
  /** Nonces remembered at once for one renter key (its requests per 2 × window). */
  maxNoncesPerRenter?: number;
  /** Where used nonces are kept across restarts; null keeps them in memory only. */
  file?: string | null;
  now?: () => number;
}

type Headers = Record<string, string | string[] | undefined>;

function header(headers: Headers, name: string): string {
  const v = headers[name];
  if (typeof v !== 'string' || v.length === 0)
    throw new HttpError(
      401,
      'AUTH_MISSING',
      `missing header ${name}: requests must be signed by the renter key`,
    );
  return v;
}

function hexHeader(headers: Headers, name: string, bytes: number): Uint8Array {
  const v = header(headers, name).toLowerCase();
  if (!new RegExp(`^[0-9a-f]{${bytes * 2}}$`).test(v))
    throw new HttpError(401, 'AUTH_MALFORMED', `header ${name} must be ${bytes} bytes of hex`);
  return fromHex(v, bytes);
}

function u64Header(headers: Headers, name: string): bigint {
  const v = header(headers, name);
  if (!/^\d{1,20}$/.test(v) || BigInt(v) > 0xffffffffffffffffn)
    throw new HttpError(401, 'AUTH_MALFORMED', `header ${name} must be a decimal u64`);
  return BigInt(v);
}

export class RequestAuthenticator {
  /** renter:nonce → expiry; insertion order is expiry order (expiry = now + a constant). */
  private readonly seen = new Map<string, number>();
  private readonly perRenter = new Map<string, number>();
  readonly windowMs: number;
  readonly maxNonces: number;
  readonly maxNoncesPerRenter: number;
  private readonly now: () => number;
  private readonly file: string | null;
  private fd: number | null = null;
  private appended = 0;
  /** Lines appended to the file so far, and how many of them are known to be on the disk. */
  private written = 0;
  private synced = 0;
  private syncing: Promise<void> | null = null;

  constructor(
    private readonly chainId: string,
    opts: AuthOptions = {},
  ) {
    this.windowMs = opts.windowMs ?? 60_000;
    this.maxNonces = opts.maxNonces ?? 200_000;
    this.maxNoncesPerRenter = opts.maxNoncesPerRenter ?? 10_000;
    this.now = opts.now ?? Date.now;
    this.file = opts.file ?? null;
    if (this.file) this.load(this.file);
  }

  /** Reads the nonces still inside their window from the file, and rewrites it with only those. */
  private load(file: string): void {
    mkdirSync(dirname(file), { recursive: true });
    removeWholeLeftovers(file);
    let text = '';
    try {
      text = readFileSync(file, 'latin1');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const now = this.now();
    const live: [string, number][] = [];
    for (const line of text.split('\n')) {
      const m = /^([0-9a-f]{64}:\d{1,20}) (\d{1,16})$/.exec(line);
      if (!m) continue; // a torn last line after a crash, or garbage: ignored
      const expiry = Number(m[2]);
      if (expiry > now) live.push([m[1]!, expiry]);
    }
    live.sort((a, b) => a[1] - b[1]);
    for (const [k, e] of live) this.remember(k, e);
    this.compact();
  }

  private compact(): void {
    if (!this.file) return;
    if (this.fd !== null) closeSync(this.fd);
    // Whole and durable before the appends resume (writeFileWhole): renamed in unsynced, a power
    // loss could leave an empty file in its place and every nonce of the window usable again; and
    // the fixed `.tmp` name it was written at was followed if a link stood there.
    writeFileWhole(this.file, [...this.seen].map(([k, e]) => `${k} ${e}\n`).join(''));
    // Every nonce remembered is in that file, fsynced.
    this.synced = this.written;
    this.fd = openSync(this.file, 'a');
    this.appended = 0;
  }

  /**
   * Resolves once every nonce consumed so far is on the disk, not only in the page cache; rejects
   * when the log cannot be synced. A request that acts (runs a job, stores a model) waits for it:
   * a request's timestamp stays valid for up to 2 × window after it was used (2 min by default),
   * longer than a machine takes to come back from a power loss, and a nonce lost with the page
   * cache made the captured request new again. Concurrent callers share one fdatasync (on the
   * thread pool: the event loop does not wait on the disk).
   */
  async durable(): Promise<void> {
    const target = this.written;
    while (this.synced < target) {
      this.syncing ??= this.syncOnce().finally(() => {
        this.syncing = null;
      });
      await this.syncing;
    }
  }

  private async syncOnce(): Promise<void> {
    const upTo = this.written;
    const fd = this.fd;
    if (fd === null) throw new Error('the used-nonce log is closed');
    try {
      await new Promise<void>((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));
    } catch (err) {
      // A compaction meanwhile (which closed this descriptor) wrote the lines durably itself.
      if (this.synced < upTo) throw err;
    }
    this.synced = Math.max(this.synced, upTo);
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  private remember(key: string, expiry: number): void {
    const prev = this.seen.get(key);
    if (prev !== undefined) {
      this.seen.delete(key);
      this.drop(key);
    }
    this.seen.set(key, expiry);
    const renter = key.slice(0, 64);
    this.perRenter.set(renter, (this.perRenter.get(renter) ?? 0) + 1);
  }

  private drop(key: string): void {
    const renter = key.slice(0, 64);
    const n = (this.perRenter.get(renter) ?? 1) - 1;
    if (n <= 0) this.perRenter.delete(renter);
    else this.perRenter.set(renter, n);
  }

  /** Forgets the nonces whose window has passed (the oldest come first). */
  private expire(now: number): void {
    for (const [k, e] of this.seen) {
      if (e > now) break;
      this.seen.delete(k);
      this.drop(k);
    }
  }

  /** Nonces remembered for one renter key now (for tests and metrics). */
  noncesOf(renterKeyHex: string): number {
    return this.perRenter.get(renterKeyHex) ?? 0;
  }

  /**
   * Checks headers, time and the signature over the declared body hash; throws HttpError(401)
   * otherwise. Records nothing, and needs nothing of the body.
   */
  verify(method: string, path: string, headers: Headers): AuthenticatedRequest {
    const leaseId = hexHeader(headers, JOB_HEADERS.lease, 32);
    const renterKey = hexHeader(headers, JOB_HEADERS.renter, 32);
    const timestampMs = u64Header(headers, JOB_HEADERS.timestamp);
    const nonce = u64Header(headers, JOB_HEADERS.nonce);
    const signature = hexHeader(headers, JOB_HEADERS.signature, 64);
    const bodyHash = hexHeader(headers, JOB_HEADERS.bodyHash, 32);
    const skew = Number(timestampMs) - this.now();
    if (Math.abs(skew) > this.windowMs)
      throw new HttpError(
        401,
        'AUTH_STALE',
        `request timestamp is ${Math.round(skew / 1000)} s from the provider's clock; the window is ±${this.windowMs / 1000} s`,
      );
    if (path.length > 1024) throw new HttpError(414, 'PATH_TOO_LONG', 'the request path is too long');
    const auth: JobRequestAuth = {
      chainId: this.chainId,
      leaseId,
      method,
      path,
      bodyHash,
      timestampMs,
      nonce,
    };
    const digest = jobRequestDigest(auth);
    if (!ed25519Verify(renterKey, digest, signature))
      throw new HttpError(
        401,
        'AUTH_BAD_SIGNATURE',
        `the signature does not verify for this request on chain "${this.chainId}"`,
      );
    return {
      leaseId,
      leaseIdHex: headers[JOB_HEADERS.lease]!.toString().toLowerCase(),
      renterKeyHex: headers[JOB_HEADERS.renter]!.toString().toLowerCase(),
      nonce,
      digest,
      bodyHash,
    };
  }

  /**
   * Marks the request's nonce used (in memory and in the file, before the request is served; on
   * the disk once durable() resolves);
   * throws HttpError(409) for a replay and 429 when the renter, or everybody together, has used up
   * the cache. Called only after the lease check, so requests refused anyway take no space.
   */
  consume(req: AuthenticatedRequest): void {
    const key = `${req.renterKeyHex}:${req.nonce}`;
    const now = this.now();
    this.expire(now);
    const expiry = this.seen.get(key);
    if (expiry !== undefined && expiry > now)
      throw new HttpError(409, 'AUTH_REPLAY', 'this nonce was already used: the request is a replay');
    if ((this.perRenter.get(req.renterKeyHex) ?? 0) >= this.maxNoncesPerRenter)
      throw new HttpError(
        429,
        'TOO_MANY_REQUESTS',
        'this renter sent too many requests inside the replay window; slow down',
      );
    if (this.seen.size >= this.maxNonces)
      throw new HttpError(429, 'TOO_MANY_REQUESTS', 'too many requests inside the replay window; slow down');
    // A nonce outlives its timestamp's window on both sides of the clock. The window is closed
    // (|skew| = windowMs is accepted) and the nonce is forgotten once now >= until, so until is one
    // ms past the last instant its timestamp can still be valid: with now + 2 × window exactly, a
    // request stamped a window ahead was accepted again (a replay) at that very millisecond.
    const until = now + 2 * this.windowMs + 1;
    this.remember(key, until);
    if (this.fd !== null) {
      // Written (to the page cache) before the request is served: a kill -9 right after keeps it.
      writeSync(this.fd, `${key} ${until}\n`);
      this.written++;
      if (++this.appended > Math.max(10_000, 2 * this.seen.size)) this.compact();
    }
  }
}
