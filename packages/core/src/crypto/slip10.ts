/**
 * SLIP-0010 key derivation for Ed25519. Only hardened children exist on this curve: public
 * derivation would need point addition on keys that Ed25519 hashes before use.
 */

import { UncError } from '../errors.js';
import { hmacSha512 as platformHmac } from '../platform/node.js';

export interface Slip10Node {
  /** The 32-byte Ed25519 secret seed (what ed25519Sign takes). */
  key: Uint8Array;
  chainCode: Uint8Array;
}

const HARDENED = 0x8000_0000;
const MASTER_SECRET = new TextEncoder().encode('ed25519 seed');
// Decimal index without leading zeros, hardened by ', h or H (BIP-32's two spellings).
const SEGMENT_RE = /^(0|[1-9][0-9]*)['hH]$/;

/** m/44'/7777'/0'/0'/index': BIP-44 shape, coin type 7777, every level hardened as SLIP-0010 needs. */
export function uncDerivationPath(index: number): string {
  if (!Number.isSafeInteger(index) || index < 0 || index >= HARDENED) {
    throw new UncError('BAD_PATH', `account index must be an integer in [0, 2^31), got ${index}`);
  }
  return `m/44'/7777'/0'/0'/${index}'`;
}

function hmacSha512(key: Uint8Array, data: Uint8Array): Uint8Array {
  return platformHmac(key, data);
}

function badPath(path: string, reason: string): never {
  throw new UncError('BAD_PATH', `invalid derivation path ${JSON.stringify(path)}: ${reason}`);
}

function parsePath(path: string): number[] {
  const fail = (reason: string): never => badPath(path, reason);
  if (typeof path !== 'string') fail('not a string');
  const segments = path.split('/');
  if (segments[0] !== 'm') fail('must start with "m"');
  return segments.slice(1).map((segment, i) => {
    if (/^[0-9]+$/.test(segment))
      fail(`level ${i + 1} (${segment}) is not hardened; ed25519 allows only hardened`);
    if (!SEGMENT_RE.test(segment)) fail(`level ${i + 1} ${JSON.stringify(segment)} is malformed`);
    const index = Number(segment.slice(0, -1));
    if (index >= HARDENED) fail(`level ${i + 1} index ${index} is not below 2^31`);
    return index + HARDENED;
  });
}

/** Master key from `seed` (16 to 64 bytes, e.g. a BIP-39 seed), then each hardened child in `path`. */
export function deriveEd25519(seed: Uint8Array, path: string): Slip10Node {
  if (!(seed instanceof Uint8Array) || seed.length < 16 || seed.length > 64) {
    throw new UncError('BAD_SEED', 'SLIP-0010 seed must be 16 to 64 bytes');
  }
  const indices = parsePath(path);
  let i = hmacSha512(MASTER_SECRET, seed);
  for (const index of indices) {
    const data = new Uint8Array(37);
    data.set(i.subarray(0, 32), 1);
    new DataView(data.buffer).setUint32(33, index, false);
    i = hmacSha512(i.subarray(32), data);
  }
  return { key: i.slice(0, 32), chainCode: i.slice(32) };
}
