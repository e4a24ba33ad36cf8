/**
 * A job request as the renter signs it for the provider's HTTP API (docs/jobs.md). It lives in
 * core because a dispute on chain carries one: the chain checks that the lease's renter key signed
 * it and that it names the disputed lease, so a dispute is always bound to a request that was made.
 */
import { taggedHash } from '../crypto/hash.js';
import { type Codec, encode, string, struct, u64 } from '../encoding/codec.js';
import { chainIdCodec, hash32, signature64 } from '../encoding/primitives.js';

export interface JobRequestAuth {
  chainId: string;
  leaseId: Uint8Array;
  method: string;
  /** Path with its query string, exactly as sent. */
  path: string;
  bodyHash: Uint8Array;
  timestampMs: bigint;
  nonce: bigint;
}

export const jobRequestAuthCodec: Codec<JobRequestAuth> = struct<JobRequestAuth>('JobRequestAuth', {
  chainId: chainIdCodec,
  leaseId: hash32,
  method: string(16, 'method'),
  path: string(1024, 'path'),
  bodyHash: hash32,
  timestampMs: u64,
  nonce: u64,
});

/** What the renter key signs for one request; also the request hash a job id is derived from. */
export function jobRequestDigest(auth: JobRequestAuth): Uint8Array {
  return taggedHash('UNC/job-request', encode(jobRequestAuthCodec, auth));
}

/** A request with the renter's Ed25519 signature over its digest (what a dispute carries). */
export interface SignedJobRequest {
  request: JobRequestAuth;
  signature: Uint8Array;
}

export const signedJobRequestCodec: Codec<SignedJobRequest> = struct<SignedJobRequest>('SignedJobRequest', {
  request: jobRequestAuthCodec,
  signature: signature64,
});
