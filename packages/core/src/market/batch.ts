/**
 * Batch receipts (PROTOCOL.md §8, docs/jobs.md): one chip signature for several jobs of one lease
 * sent in one signed request. The chip signs a `BatchReceipt` whose `resultsRoot` is the root of a
 * binary Merkle tree over one leaf per job (its index, id, input hash, outcome and output hash), so
 * each job's result can later be proven on its own against the one signature, without the other
 * jobs' results.
 *
 * Domain separation: leaves, inner nodes and the receipt each have their own tag, none shared with
 * single-job receipts ('UNC/receipt') or challenges, so a batch signature can never be presented as
 * a single job's receipt nor a leaf as an inner node. The tree promotes an unpaired last node to the
 * next level unchanged (it is never duplicated), and the receipt carries the job count, so a root
 * stands for exactly one list of leaves: no leaf can be proven at two positions, and no list with
 * a repeated tail shares a root with a shorter one.
 */
import { equalBytes } from '../bytes.js';
import { taggedHash } from '../crypto/hash.js';
import { type Codec, encode, struct, u8, u32, u64 } from '../encoding/codec.js';
import { chainIdCodec, hash32 } from '../encoding/primitives.js';
import { ValidationError } from '../errors.js';
import { verifyHeartbeat } from '../poci/attest.js';
import type { Chip } from '../poci/chips.js';
import { type HeartbeatEvidence, heartbeatEvidenceCodec } from '../poci/evidence.js';

/** Jobs one batch may hold; the provider's own limit is usually lower. */
export const MAX_BATCH_JOBS = 4096;

/** The outcome of one job of a batch. */
export const BATCH_JOB_DONE = 0;
export const BATCH_JOB_FAILED = 1;

export interface BatchJobLeaf {
  /** Position of the job in the request (0-based). */
  index: number;
  jobId: Uint8Array;
  inputHash: Uint8Array;
  /** BATCH_JOB_DONE or BATCH_JOB_FAILED. */
  status: number;
  /** Done: the content hash of the outputs. Failed: `contentHash(utf8(error code))`. */
  outputHash: Uint8Array;
  durationMs: bigint;
}

export const batchJobLeafCodec: Codec<BatchJobLeaf> = struct<BatchJobLeaf>('BatchJobLeaf', {
  index: u32,
  jobId: hash32,
  inputHash: hash32,
  status: u8,
  outputHash: hash32,
  durationMs: u64,
});

export interface BatchReceipt {
  chainId: string;
  leaseId: Uint8Array;
  chipId: Uint8Array;
  /** `jobIdOf(lease, digest of the renter's signed request, its nonce)`: binds the request. */
  batchId: Uint8Array;
  /** Every job of a batch runs this model. */
  modelHash: Uint8Array;
  jobCount: number;
  /** Merkle root over the jobs' leaves (batchResultsRoot). */
  resultsRoot: Uint8Array;
  /** Wall-clock start of the first job on the provider, ms since the Unix epoch (a claim). */
  startMs: bigint;
  durationMs: bigint;
}

export const batchReceiptCodec: Codec<BatchReceipt> = struct<BatchReceipt>('BatchReceipt', {
  chainId: chainIdCodec,
  leaseId: hash32,
  chipId: hash32,
  batchId: hash32,
  modelHash: hash32,
  jobCount: u32,
  resultsRoot: hash32,
  startMs: u64,
  durationMs: u64,
});

export interface SignedBatchReceipt {
  receipt: BatchReceipt;
  /** The chip's signature over `batchReceiptDigest(receipt)`, in its attestation profile. */
  evidence: HeartbeatEvidence;
}

export const signedBatchReceiptCodec: Codec<SignedBatchReceipt> = struct<SignedBatchReceipt>(
  'SignedBatchReceipt',
  { receipt: batchReceiptCodec, evidence: heartbeatEvidenceCodec },
);

/** The message a chip signs for a batch. */
export function batchReceiptDigest(receipt: BatchReceipt): Uint8Array {
  return taggedHash('UNC/batch-receipt', encode(batchReceiptCodec, receipt));
}

/** Id of the job at `index` of a batch. */
export function batchJobIdOf(batchId: Uint8Array, index: number): Uint8Array {
  const i = new Uint8Array(4);
  new DataView(i.buffer).setUint32(0, index);
  return taggedHash('UNC/batch-job', batchId, i);
}

export function batchLeafHash(leaf: BatchJobLeaf): Uint8Array {
  return taggedHash('UNC/batch-leaf', encode(batchJobLeafCodec, leaf));
}

function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  return taggedHash('UNC/batch-node', left, right);
}

function checkCount(count: number): void {
  if (!Number.isInteger(count) || count < 1 || count > MAX_BATCH_JOBS)
    throw new ValidationError('BAD_BATCH', `a batch holds 1…${MAX_BATCH_JOBS} jobs, not ${count}`);
}

/** Every level of the tree, leaves first, root last. */
function levelsOf(leafHashes: Uint8Array[]): Uint8Array[][] {
  checkCount(leafHashes.length);
  const levels = [leafHashes];
  let level = leafHashes;
  while (level.length > 1) {
    const next: Uint8Array[] = [];
    for (let i = 0; i < level.length; i += 2)
      next.push(i + 1 < level.length ? nodeHash(level[i]!, level[i + 1]!) : level[i]!);
    levels.push(next);
    level = next;
  }
  return levels;
}

/** The Merkle root over leaf hashes, in order. */
export function batchResultsRoot(leafHashes: Uint8Array[]): Uint8Array {
  const levels = levelsOf(leafHashes);
  return levels[levels.length - 1]![0]!;
}

/**
 * The root and every leaf's proof: the sibling hashes, bottom up (a level where the node has no
 * sibling, being promoted, adds none). The tree is built once for all the proofs.
 */
export function batchTree(leafHashes: Uint8Array[]): { root: Uint8Array; proofs: Uint8Array[][] } {
  const levels = levelsOf(leafHashes);
  const proofs = leafHashes.map((_, index) => {
    const proof: Uint8Array[] = [];
    let i = index;
    for (const level of levels.slice(0, -1)) {
      const sibling = i % 2 === 0 ? i + 1 : i - 1;
      if (sibling < level.length) proof.push(level[sibling]!);
      i = Math.floor(i / 2);
    }
    return proof;
  });
  return { root: levels[levels.length - 1]![0]!, proofs };
}

/**
 * The root a proof leads to from a leaf hash at `index` in a batch of `count` jobs; throws when the
 * proof has the wrong number of hashes for that position (so no proof fits two positions).
 */
export function batchRootFromProof(
  leafHash: Uint8Array,
  index: number,
  count: number,
  proof: readonly Uint8Array[],
): Uint8Array {
  checkCount(count);
  if (!Number.isInteger(index) || index < 0 || index >= count)
    throw new ValidationError('BAD_BATCH_PROOF', `index ${index} is outside a batch of ${count}`);
  let hash = leafHash;
  let i = index;
  let width = count;
  let used = 0;
  while (width > 1) {
    const sibling = i % 2 === 0 ? i + 1 : i - 1;
    if (sibling < width) {
      const s = proof[used++];
      if (s?.length !== 32)
        throw new ValidationError('BAD_BATCH_PROOF', 'the proof is too short for this position');
      hash = i % 2 === 0 ? nodeHash(hash, s) : nodeHash(s, hash);
    }
    i = Math.floor(i / 2);
    width = Math.ceil(width / 2);
  }
  if (used !== proof.length)
    throw new ValidationError('BAD_BATCH_PROOF', 'the proof is too long for this position');
  return hash;
}

/**
 * Checks that `leaf` is the job at its index of the batch `receipt` names (the receipt's own
 * signature is checked by verifyBatchReceipt). Throws a ValidationError saying what is wrong.
 */
export function verifyBatchLeaf(
  receipt: BatchReceipt,
  leaf: BatchJobLeaf,
  proof: readonly Uint8Array[],
): void {
  if (!equalBytes(leaf.jobId, batchJobIdOf(receipt.batchId, leaf.index)))
    throw new ValidationError('BAD_BATCH_PROOF', `job ${leaf.index} has another id than this batch gives it`);
  const root = batchRootFromProof(batchLeafHash(leaf), leaf.index, receipt.jobCount, proof);
  if (!equalBytes(root, receipt.resultsRoot))
    throw new ValidationError('BAD_BATCH_PROOF', `job ${leaf.index}'s result is not the one the chip signed`);
}

/**
 * Checks a signed batch receipt against the chip's on-chain record: same chain, same chip, and the
 * chip's registered key signed exactly this receipt.
 */
export function verifyBatchReceipt(signed: SignedBatchReceipt, chip: Chip, chainId: string): void {
  const { receipt } = signed;
  if (receipt.chainId !== chainId)
    throw new ValidationError(
      'RECEIPT_WRONG_CHAIN',
      `receipt is for chain "${receipt.chainId}", this is "${chainId}"`,
    );
  if (!equalBytes(receipt.chipId, chip.chipId))
    throw new ValidationError('RECEIPT_WRONG_CHIP', 'receipt names another chip than the one given');
  checkCount(receipt.jobCount);
  verifyHeartbeat(chip, signed.evidence, batchReceiptDigest(receipt));
}
