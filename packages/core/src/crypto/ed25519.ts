/**
 * Ed25519 (RFC 8032, pure variant) on top of node:crypto. OpenSSL signs and verifies several times
 * faster than a JavaScript implementation, which matters when a node checks every signature of
 * every block; the price is that keys must go through KeyObjects, so those are cached.
 */
import { createPrivateKey, createPublicKey, type KeyObject, sign, verify } from 'node:crypto';
import { toHex } from '../bytes.js';
import { UncError } from '../errors.js';

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
 * (validators, busy accounts) recur constantly. Insertion-ordered Map eviction is FIFO, not LRU:
 * refreshing on every hit would cost a delete and a set on the hot path for little gain.
 */
const PRIVATE_CACHE_LIMIT = 10_000;
/** Large enough for every active chip of a big network: each answer is checked with its chip's key. */
const PUBLIC_CACHE_LIMIT = 200_000;
const privateKeys = new Map<string, KeyObject>();
const publicKeys = new Map<string, KeyObject>();

function remember(cache: Map<string, KeyObject>, id: string, key: KeyObject, limit: number): KeyObject {
  if (cache.size >= limit) {
    const oldest = cache.keys().next();
    if (!oldest.done) cache.delete(oldest.value);
  }
  cache.set(id, key);
  return key;
}

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
  return remember(privateKeys, id, key, PRIVATE_CACHE_LIMIT);
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
  return remember(publicKeys, id, key, PUBLIC_CACHE_LIMIT);
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

/**
 * True only for a valid signature. Everything else, including keys and signatures of the wrong
 * length, non-Uint8Array values and keys OpenSSL will not import, yields false: verification
 * runs on untrusted network input, where an exception would be a crash waiting to happen.
 */
export function ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== ED25519_PUBLIC_KEY_LENGTH) return false;
  if (!(signature instanceof Uint8Array) || signature.length !== ED25519_SIGNATURE_LENGTH) return false;
  if (!(message instanceof Uint8Array)) return false;
  try {
    return verify(null, message, publicKeyObject(publicKey), signature);
  } catch {
    return false;
  }
}
