/**
 * Ed25519 (RFC 8032, pure variant) on top of node:crypto. OpenSSL signs and verifies several times
 * faster than a JavaScript implementation, which matters when a node checks every signature of
 * every block; the price is that keys must go through KeyObjects, so those are cached.
 *
 * Which signatures are valid is a consensus rule, so it is not left to whatever OpenSSL build a
 * node links: `ed25519Verify` first applies the protocol's rule set (docs/signatures.md) itself, and
 * only a signature that passes it reaches the library.
 *
 * 1. A and R (the public key and the first half of the signature) are canonical encodings: the
 *    255-bit y is below p = 2^255 - 19.
 * 2. Neither A nor R is a point of small order (order 1, 2, 4 or 8), in any of its 14 encodings.
 * 3. S (the second half, little-endian) is below the group order L.
 * 4. The cofactorless equation [S]B = R + [k]A, k = SHA-512(R ‖ A ‖ M) mod L, holds (what OpenSSL
 *    checks: it recomputes R and compares encodings, which rule 1 makes the same as comparing
 *    points).
 *
 * Mixed-order keys (a full-order point plus a nonzero torsion component) are not detected: that
 * would take a scalar multiplication. They are harmless under rule 4, which is exact: a signature
 * under such a key verifies only if R carries the matching torsion component, and every correct
 * implementation of the cofactorless equation gives the same answer (pinned by the speccheck
 * vectors 3 to 5 in the tests).
 */
import { createPrivateKey, createPublicKey, type KeyObject, sign, verify } from 'node:crypto';
import { fromHex, toHex } from '../bytes.js';
import { UncError } from '../errors.js';
import { BoundedCache } from './bounded-cache.js';

export const ED25519_SEED_LENGTH = 32;
export const ED25519_PUBLIC_KEY_LENGTH = 32;
export const ED25519_SIGNATURE_LENGTH = 64;

// node:crypto only imports raw Ed25519 keys wrapped in DER. For this one algorithm the wrapping is
// a constant prefix (RFC 8410 §7 and §10.1), so we splice bytes instead of encoding ASN.1.
const PKCS8_PREFIX = Uint8Array.from([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
]);
const SPKI_PREFIX = Uint8Array.from([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00]);

/**
 * Building a KeyObject costs more than the signature operation itself, and the same few keys
 * (validators, busy accounts) recur constantly. Two-generation caches (bounded-cache.ts): a FIFO
 * Map looks cheaper but makes every insert into a full cache slow in V8.
 */
const PRIVATE_CACHE_LIMIT = 10_000;
/** Large enough for every active chip of a big network: each answer is checked with its chip's key. */
const PUBLIC_CACHE_LIMIT = 200_000;
const privateKeys = new BoundedCache<KeyObject>(PRIVATE_CACHE_LIMIT);
const publicKeys = new BoundedCache<KeyObject>(PUBLIC_CACHE_LIMIT);

function withPrefix(prefix: Uint8Array, raw: Uint8Array): Buffer {
  const der = Buffer.allocUnsafe(prefix.length + raw.length);
  der.set(prefix, 0);
  der.set(raw, prefix.length);
  return der;
}

function privateKeyObject(seed: Uint8Array): KeyObject {
  if (!(seed instanceof Uint8Array) || seed.length !== ED25519_SEED_LENGTH) {
    throw new UncError('BAD_KEY', `ed25519 seed must be ${ED25519_SEED_LENGTH} bytes`);
  }
  const id = toHex(seed);
  const cached = privateKeys.get(id);
  if (cached) return cached;
  const key = createPrivateKey({ key: withPrefix(PKCS8_PREFIX, seed), format: 'der', type: 'pkcs8' });
  privateKeys.set(id, key);
  return key;
}

/** Throws for anything OpenSSL refuses to import; callers decide whether that is an error. */
function publicKeyObject(publicKey: Uint8Array): KeyObject {
  const id = toHex(publicKey);
  const cached = publicKeys.get(id);
  if (cached) return cached;
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== ED25519_PUBLIC_KEY_LENGTH) {
    throw new UncError('BAD_KEY', `ed25519 public key must be ${ED25519_PUBLIC_KEY_LENGTH} bytes`);
  }
  // Importing from JWK is about fifteen times cheaper than from SPKI DER on Node 20, and OpenSSL
  // applies the same point checks either way.
  const x = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString('base64url');
  const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' });
  publicKeys.set(id, key);
  return key;
}

/** The 32-byte public key of a 32-byte secret seed. */
export function ed25519PublicKey(seed: Uint8Array): Uint8Array {
  const spki = createPublicKey(privateKeyObject(seed)).export({ format: 'der', type: 'spki' });
  return new Uint8Array(spki.subarray(SPKI_PREFIX.length));
}

/** Deterministic 64-byte signature of `message` by the key with secret `seed`. */
export function ed25519Sign(seed: Uint8Array, message: Uint8Array): Uint8Array {
  return new Uint8Array(sign(null, message, privateKeyObject(seed)));
}

/** p = 2^255 - 19, little-endian: ed ff … ff 7f. */
function isCanonicalPoint(bytes: Uint8Array, offset: number): boolean {
  if ((bytes[offset + 31]! & 0x7f) !== 0x7f) return true;
  for (let i = 30; i >= 1; i--) if (bytes[offset + i] !== 0xff) return true;
  return bytes[offset]! < 0xed;
}

/**
 * Every 32-byte string that decodes, leniently, to a point of small order: the 8 points of the
 * torsion subgroup, the sign-bit variants of the two with x = 0 (y = 1 and y = -1, which RFC 8032
 * forbids but lenient decoders accept), and y + p for the two y below 19 (0 and 1), with either
 * sign bit. The non-canonical ones are already refused by `isCanonicalPoint`; they are listed so
 * that this check stands on its own. The test derives the set independently and compares.
 */
export const ED25519_SMALL_ORDER_ENCODINGS: readonly string[] = [
  // identity (0, 1), order 1
  '0100000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000080',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff',
  // (0, -1), order 2
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff',
  // (±sqrt(-1), 0), order 4
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0000000000000000000000000000000000000000000000000000000000000080',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff',
  // order 8
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa',
];
const SMALL_ORDER = ED25519_SMALL_ORDER_ENCODINGS.map((hex) => fromHex(hex, 32));
/** First bytes of the table, so that almost every honest key is let through after one lookup. */
const SMALL_ORDER_FIRST = new Uint8Array(256);
for (const e of SMALL_ORDER) SMALL_ORDER_FIRST[e[0]!] = 1;

function isSmallOrderEncoding(bytes: Uint8Array, offset: number): boolean {
  if (SMALL_ORDER_FIRST[bytes[offset]!] === 0) return false;
  next: for (const e of SMALL_ORDER) {
    for (let i = 0; i < 32; i++) if (bytes[offset + i] !== e[i]) continue next;
    return true;
  }
  return false;
}

/** L = 2^252 + 27742317777372353535851937790883648493, little-endian. */
const GROUP_ORDER = fromHex('edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010', 32);

/** S = signature[32..64) as a little-endian integer, compared with L from the top byte down. */
function isScalarBelowOrder(signature: Uint8Array): boolean {
  for (let i = 31; i >= 0; i--) {
    const s = signature[32 + i]!;
    const l = GROUP_ORDER[i]!;
    if (s !== l) return s < l;
  }
  return false;
}

/**
 * The protocol's rules 1 to 3 (see the top of this file): true when A and the signature's R are
 * canonical and not of small order and S < L. Byte comparisons only, so that a node pays next
 * to nothing for them.
 */
export function ed25519PassesEncodingRules(publicKey: Uint8Array, signature: Uint8Array): boolean {
  return (
    isScalarBelowOrder(signature) &&
    isCanonicalPoint(publicKey, 0) &&
    isCanonicalPoint(signature, 0) &&
    !isSmallOrderEncoding(publicKey, 0) &&
    !isSmallOrderEncoding(signature, 0)
  );
}

/**
 * True only for a valid signature under the protocol's rule set (top of this file,
 * docs/signatures.md). Everything else, including keys and signatures of the wrong
 * length, non-Uint8Array values and keys OpenSSL will not import, yields false: verification
 * runs on untrusted network input, where an exception would be a crash waiting to happen.
 */
export function ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== ED25519_PUBLIC_KEY_LENGTH) return false;
  if (!(signature instanceof Uint8Array) || signature.length !== ED25519_SIGNATURE_LENGTH) return false;
  if (!(message instanceof Uint8Array)) return false;
  if (!ed25519PassesEncodingRules(publicKey, signature)) return false;
  try {
    return verify(null, message, publicKeyObject(publicKey), signature);
  } catch {
    return false;
  }
}
