/**
 * The field readers every proof check shares (proofs.ts, light-client.ts): a node's hex and
 * encodings turned into bytes and values, any failure a ProofError naming the field. One copy, so
 * a check added here (a length, a bound) holds for every proof a client verifies.
 */
import { decode, fromHex, merkleProofCodec, verifyStateProof } from '@unc/core';
import type { ProvenEntryJson } from './views.js';

/**
 * Why a proof was refused: MALFORMED (a field is not what it must be), BAD_PROOF (a Merkle proof
 * does not match the verified state root), MISMATCH (what the node reported differs from the
 * proven record), WRONG_RECORD (the node answered for another id than asked), MISSING_PROOF (no
 * proof of a record the answer depends on), NOT_PROVEN (nothing to prove it with: an absence
 * without a proof of absence), STALE (proven, but read at a block older than the caller accepts: a
 * node may serve a true but old state), HEAD_WENT_BACK (proven, but at a block below one the caller
 * verified before it asked: the node went back to an older state; the gateway's check), INVALID_PROOF
 * (anything else: headers, commits, validator sets).
 */
export type ProofErrorCode =
  | 'MALFORMED'
  | 'BAD_PROOF'
  | 'MISMATCH'
  | 'WRONG_RECORD'
  | 'MISSING_PROOF'
  | 'NOT_PROVEN'
  | 'STALE'
  | 'HEAD_WENT_BACK'
  | 'INVALID_PROOF';

export class ProofError extends Error {
  constructor(
    message: string,
    readonly code: ProofErrorCode = 'INVALID_PROOF',
  ) {
    super(message);
    this.name = 'ProofError';
  }
}

export function hexField(value: unknown, what: string, length?: number): Uint8Array {
  if (typeof value !== 'string') throw new ProofError(`${what} is not a hex string`, 'MALFORMED');
  try {
    return fromHex(value, length);
  } catch (err) {
    throw new ProofError(`${what}: ${(err as Error).message}`, 'MALFORMED');
  }
}

export function decodeField<T>(decodeBytes: (bytes: Uint8Array) => T, bytes: Uint8Array, what: string): T {
  try {
    return decodeBytes(bytes);
  } catch (err) {
    throw new ProofError(`${what}: ${(err as Error).message}`, 'MALFORMED');
  }
}

/** The value `entry` proves under `key` (the caller's key, never the node's) in `root`; null: proven absent. */
export function provenValue(
  root: Uint8Array,
  key: Uint8Array,
  entry: ProvenEntryJson,
  what: string,
): Uint8Array | null {
  if (typeof entry !== 'object' || entry === null) throw new ProofError(`${what}: no proof`, 'MISSING_PROOF');
  const value = entry.value === null ? null : hexField(entry.value, `${what}: value`);
  const proof = decodeField(
    (b) => decode(merkleProofCodec, b),
    hexField(entry.proof, `${what}: proof`),
    `${what}: proof`,
  );
  if (!verifyStateProof(root, key, value, proof)) {
    throw new ProofError(`${what}: the Merkle proof does not match the verified state root`, 'BAD_PROOF');
  }
  return value;
}
