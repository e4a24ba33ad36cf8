/**
 * Job receipts (PROTOCOL.md §8): what a provider's chip signs for every job it runs for a lease.
 *
 * The chip signs through its attestation profile exactly as it answers a challenge: the message is
 * the receipt's digest, so a TPM chip signs it with a TPM2_Quote over the digest, a software chip
 * with its Ed25519 key. Anybody holding the chain's record of the chip can check a receipt
 * offline; the chain itself checks receipts posted as ratings or disputes.
 */
import { equalBytes } from '../bytes.js';
import { taggedHash } from '../crypto/hash.js';
import { type Codec, encode, struct, u64 } from '../encoding/codec.js';
import { chainIdCodec, hash32 } from '../encoding/primitives.js';
import { ValidationError } from '../errors.js';
import { verifyHeartbeat } from '../poci/attest.js';
import type { Chip } from '../poci/chips.js';
import { type HeartbeatEvidence, heartbeatEvidenceCodec } from '../poci/evidence.js';

export interface JobReceipt {
  chainId: string;
  leaseId: Uint8Array;
  /** The chip that ran the job (and signs the receipt). */
  chipId: Uint8Array;
  jobId: Uint8Array;
  modelHash: Uint8Array;
  inputHash: Uint8Array;
  outputHash: Uint8Array;
  /** Wall-clock start on the provider, ms since the Unix epoch (a claim of the chip, not block time). */
  startMs: bigint;
  durationMs: bigint;
}

export const jobReceiptCodec: Codec<JobReceipt> = struct<JobReceipt>('JobReceipt', {
  chainId: chainIdCodec,
  leaseId: hash32,
  chipId: hash32,
  jobId: hash32,
  modelHash: hash32,
  inputHash: hash32,
  outputHash: hash32,
  startMs: u64,
  durationMs: u64,
});

export interface SignedReceipt {
  receipt: JobReceipt;
  /** The chip's signature over `receiptDigest(receipt)`, in its attestation profile. */
  evidence: HeartbeatEvidence;
}

export const signedReceiptCodec: Codec<SignedReceipt> = struct<SignedReceipt>('SignedReceipt', {
  receipt: jobReceiptCodec,
  evidence: heartbeatEvidenceCodec,
});

/** The message a chip signs for a receipt; domain-separated from challenges and registrations. */
export function receiptDigest(receipt: JobReceipt): Uint8Array {
  return taggedHash('UNC/receipt', encode(jobReceiptCodec, receipt));
}

/** Content address of a model, an input or an output: the same hash everywhere. */
export function contentHash(data: Uint8Array): Uint8Array {
  return taggedHash('UNC/content', data);
}

/** Id of a job: binds the lease, the renter's request and its nonce. */
export function jobIdOf(leaseId: Uint8Array, requestHash: Uint8Array, nonce: bigint): Uint8Array {
  const n = new Uint8Array(8);
  new DataView(n.buffer).setBigUint64(0, nonce);
  return taggedHash('UNC/job', leaseId, requestHash, n);
}

/**
 * Checks a signed receipt against the chip's on-chain record: same chain, same chip, and the
 * chip's registered key signed this exact receipt. Throws a ValidationError saying what is wrong.
 */
export function verifyReceipt(signed: SignedReceipt, chip: Chip, chainId: string): void {
  const { receipt } = signed;
  if (receipt.chainId !== chainId) {
    throw new ValidationError(
      'RECEIPT_WRONG_CHAIN',
      `receipt is for chain "${receipt.chainId}", this is "${chainId}"`,
    );
  }
  if (!equalBytes(receipt.chipId, chip.chipId)) {
    throw new ValidationError('RECEIPT_WRONG_CHIP', 'receipt names another chip than the one given');
  }
  verifyHeartbeat(chip, signed.evidence, receiptDigest(receipt));
}
