/**
 * Account addresses: 20 bytes derived from the Ed25519 public key, written as BIP-173 bech32
 * with the human-readable part "unc" (bytes 00 01 … 13 are unc1qqqsyqcyq5rqwzqfpg9scrgwpugpzysnumgta8).
 * Plain bech32, not bech32m: the payload length is fixed, so bech32's known weakness (inserting or
 * deleting 'q' before a final 'p') cannot produce another valid address.
 */
import { bech32 } from '@scure/base';
import { UncError } from '../errors.js';
import { bytesToLatin1 } from '../platform/node.js';
import { BoundedCache } from './bounded-cache.js';
import { sha256 } from './hash.js';

export const ADDRESS_LENGTH = 20;
export const ADDRESS_PREFIX = 'unc';

const CHARSET = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';
const CHECKSUM_LENGTH = 6;
// BIP-173 caps a whole string at 90 characters; ours are always 42, so anything longer is junk.
const MAX_LENGTH = 90;

/**
 * Addresses of recently seen keys: every transaction's sender is derived from its key when it is
 * decoded (RPC, gossip, each block), and a busy account sends thousands. A pure function's
 * results, so a hit changes nothing but the time; bounded (bounded-cache.ts), and each caller
 * gets its own copy.
 */
const recentAddresses = new BoundedCache<Uint8Array>(8192);

/** First 20 bytes of SHA-256 of the 32-byte Ed25519 public key. */
export function addressFromPublicKey(publicKey: Uint8Array): Uint8Array {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) {
    throw new UncError('BAD_KEY', 'an address is derived from a 32-byte Ed25519 public key');
  }
  const id = bytesToLatin1(publicKey);
  let address = recentAddresses.get(id);
  if (address === undefined) {
    address = sha256(publicKey).slice(0, ADDRESS_LENGTH);
    recentAddresses.set(id, address);
  }
  return address.slice();
}

export function encodeAddress(address: Uint8Array): string {
  if (!(address instanceof Uint8Array) || address.length !== ADDRESS_LENGTH) {
    throw new UncError('BAD_ADDRESS', `an address is ${ADDRESS_LENGTH} bytes`);
  }
  return bech32.encode(ADDRESS_PREFIX, bech32.toWords(address));
}

function fail(text: string, reason: string): never {
  // Addresses arrive from users and the network: keep the echo short and printable.
  const shown = text.length > MAX_LENGTH ? `${text.slice(0, MAX_LENGTH)}…` : text;
  throw new UncError('BAD_ADDRESS', `invalid address ${JSON.stringify(shown)}: ${reason}`);
}

/**
 * Strict decoding: the "unc" prefix, a valid bech32 (not bech32m) checksum, one case throughout
 * (all-uppercase is accepted, as BIP-173 requires for QR codes), and exactly 20 bytes of payload.
 */
export function decodeAddress(text: string): Uint8Array {
  if (typeof text !== 'string') throw new UncError('BAD_ADDRESS', 'invalid address: not a string');
  if (text.length === 0) fail(text, 'empty');
  if (text.length > MAX_LENGTH) fail(text, `too long (${text.length} characters)`);
  const lower = text.toLowerCase();
  if (text !== lower && text !== text.toUpperCase()) fail(text, 'mixed case');
  const separator = lower.lastIndexOf('1');
  if (separator < 0) fail(text, 'no "1" separator');
  const prefix = lower.slice(0, separator);
  if (prefix !== ADDRESS_PREFIX) fail(text, `wrong prefix "${prefix}", expected "${ADDRESS_PREFIX}"`);
  const data = lower.slice(separator + 1);
  for (const ch of data) {
    if (!CHARSET.includes(ch)) fail(text, `invalid character ${JSON.stringify(ch)}`);
  }
  if (data.length < CHECKSUM_LENGTH) fail(text, 'too short for a checksum');
  let words: number[];
  try {
    words = bech32.decode(lower as `${string}1${string}`, MAX_LENGTH).words;
  } catch {
    fail(text, 'bad checksum');
  }
  // 20 bytes are exactly 32 five-bit words, so no padding can hide in a valid address.
  if (words.length !== 32) fail(text, `payload is ${Math.floor((words.length * 5) / 8)} bytes, expected 20`);
  return bech32.fromWords(words);
}

export function isAddress(text: unknown): boolean {
  if (typeof text !== 'string') return false;
  try {
    decodeAddress(text);
    return true;
  } catch {
    return false;
  }
}
