/**
 * Authentication of renter requests: the signature of the header key over the request digest,
 * the timestamp inside a window around the provider's clock, and a nonce not seen before inside
 * that window (the cache only needs to remember nonces as long as their timestamps stay valid).
 */
import { ed25519Verify, fromHex } from '@unc/core';
import { JOB_HEADERS, type JobRequestAuth, jobRequestDigest } from '@unc/sdk';
import { HttpError } from './errors.js';

export interface AuthenticatedRequest {
  leaseId: Uint8Array;
  leaseIdHex: string;
  renterKeyHex: string;
  nonce: bigint;
  /** The digest the renter signed: the request hash its job id is derived from. */
  digest: Uint8Array;
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
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly chainId: string,
    /** Requests whose timestamp is further than this from the provider's clock are refused. */
    readonly windowMs = 60_000,
    private readonly maxNonces = 200_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Checks headers, time and signature; throws HttpError(401) otherwise. Records nothing. */
  verify(method: string, path: string, headers: Headers, bodyHash: Uint8Array): AuthenticatedRequest {
    const leaseId = hexHeader(headers, JOB_HEADERS.lease, 32);
    const renterKey = hexHeader(headers, JOB_HEADERS.renter, 32);
    const timestampMs = u64Header(headers, JOB_HEADERS.timestamp);
    const nonce = u64Header(headers, JOB_HEADERS.nonce);
    const signature = hexHeader(headers, JOB_HEADERS.signature, 64);
    const skew = Number(timestampMs) - this.now();
    if (Math.abs(skew) > this.windowMs)
      throw new HttpError(
        401,
        'AUTH_STALE',
        `request timestamp is ${Math.round(skew / 1000)} s from the provider's clock; the window is ±${this.windowMs / 1000} s`,
      );
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
    };
  }

  /**
   * Marks the request's nonce used; throws HttpError(409) for a replay. Called only after the
   * lease check, so requests that are refused anyway do not fill the cache.
   */
  consume(req: AuthenticatedRequest): void {
    const key = `${req.renterKeyHex}:${req.nonce}`;
    const now = this.now();
    const expiry = this.seen.get(key);
    if (expiry !== undefined && expiry > now)
      throw new HttpError(409, 'AUTH_REPLAY', 'this nonce was already used: the request is a replay');
    if (this.seen.size >= this.maxNonces) {
      for (const [k, e] of this.seen) if (e <= now) this.seen.delete(k);
      if (this.seen.size >= this.maxNonces)
        throw new HttpError(
          429,
          'TOO_MANY_REQUESTS',
          'too many requests inside the replay window; slow down',
        );
    }
    // A nonce outlives its timestamp's window on both sides of the clock.
    this.seen.set(key, now + 2 * this.windowMs);
  }
}
