/**
 * The field readers every proof check shares (proofs.ts, light-client.ts): a node's hex and
 * encodings turned into bytes and values, any failure a ProofError naming the field. One copy, so
 * a check added here (a length, a bound) holds for every proof a client verifies.
 */
import { fromHex } from '@unc/core';

export class ProofError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProofError';
  }
}

export function hexField(value: unknown, what: string, length?: number): Uint8Array {
  if (typeof value !== 'string') throw new ProofError(`${what} is not a hex string`);
  try {
    return fromHex(value, length);
  } catch (err) {
    throw new ProofError(`${what}: ${(err as Error).message}`);
  }
}

export function decodeField<T>(decodeBytes: (bytes: Uint8Array) => T, bytes: Uint8Array, what: string): T {
  try {
    return decodeBytes(bytes);
  } catch (err) {
    throw new ProofError(`${what}: ${(err as Error).message}`);
  }
}
