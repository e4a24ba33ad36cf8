/**
 * The platform layer of core on Node: every primitive core needs from its host, on node:crypto
 * (OpenSSL) and Buffer, which are several times faster than the portable versions. Bundlers for the
 * browser swap this file for web.ts (the `browser` field of core's package.json); both export the
 * same functions, and test/platform.test.ts checks that they agree.
 */
import {
  constants,
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  hash,
  type KeyObject,
  pbkdf2Sync,
  randomFillSync,
  scryptSync,
  sign,
  verify,
} from 'node:crypto';
import { BoundedCache } from '../crypto/bounded-cache.js';

export const PLATFORM = 'node' as const;

export type DigestName = 'sha1' | 'sha256' | 'sha384' | 'sha512';

/** Inputs up to this size are copied into one buffer and hashed in one call (see sha256). */
const ONE_SHOT_MAX_BYTES = 4096;
const joinScratch = new Uint8Array(ONE_SHOT_MAX_BYTES);

/**
 * A digest returned as a latin1 string (`'binary'`: one character per byte) into a fresh array. Asked for
 * as a Buffer, every digest was a new buffer outside the JavaScript heap (an allocation the
 * garbage collector tracks and frees) copied into the array returned: 1.4 µs per SHA-256 of a
 * transaction against 0.7 µs this way, and a node hashes each transfer about ten times (its id,
 * its sender, its leaf in the block's tree, the state trie's nodes).
 */
function fromLatin1Digest(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

export function sha256(parts: Uint8Array[]): Uint8Array {
  // One-shot `hash` costs about half of a Hash object per call (a transaction is hashed several
  // times on its way into a block, a heartbeat answer several tagged hashes of a few ids); short
  // inputs in several parts are joined first.
  if (parts.length === 1) return fromLatin1Digest(hash('sha256', parts[0]!, 'binary'));
  let length = 0;
  for (const p of parts) length += p.length;
  if (length <= ONE_SHOT_MAX_BYTES) {
    // Joined in one buffer kept for it: a fresh one per call (a tagged hash of a transaction, a
    // leaf or node of a block's transaction tree: several per transaction) was garbage at once.
    // `hash` is synchronous and reads the bytes before it returns, so no call sees another's.
    let at = 0;
    for (const p of parts) {
      joinScratch.set(p, at);
      at += p.length;
    }
    return fromLatin1Digest(hash('sha256', joinScratch.subarray(0, length), 'binary'));
  }
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return fromLatin1Digest(h.digest('binary'));
}

export function sha512(parts: Uint8Array[]): Uint8Array {
  const h = createHash('sha512');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

export function digest(name: DigestName, data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash(name).update(data).digest());
}

export function hmacSha512(key: Uint8Array, data: Uint8Array): Uint8Array {
  return new Uint8Array(createHmac('sha512', key).update(data).digest());
}

export function pbkdf2Sha512(
  password: Uint8Array,
  salt: Uint8Array,
  iterations: number,
  length: number,
): Uint8Array {
  return new Uint8Array(pbkdf2Sync(password, salt, iterations, length, 'sha512'));
}

export function scrypt(
  password: string,
  salt: Uint8Array,
  length: number,
  { n, r, p }: { n: number; r: number; p: number },
): Uint8Array {
  return new Uint8Array(
    scryptSync(password, salt, length, {
      N: n,
      r,
      p,
      // Node's 32 MiB default is below what n = 2^15, r = 8 needs (128 * n * r plus overhead).
      maxmem: 128 * n * r + 128 * r * p + 2 ** 20,
    }),
  );
}

export function aes256GcmEncrypt(
  key: Uint8Array,
  iv: Uint8Array,
  plaintext: Uint8Array,
  tagLength: number,
): { ciphertext: Uint8Array; tag: Uint8Array } {
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: tagLength });
  const ciphertext = new Uint8Array(Buffer.concat([cipher.update(plaintext), cipher.final()]));
  return { ciphertext, tag: new Uint8Array(cipher.getAuthTag()) };
}

/** Throws when the tag does not authenticate (wrong key or altered data). */
export function aes256GcmDecrypt(
  key: Uint8Array,
  iv: Uint8Array,
  ciphertext: Uint8Array,
  tag: Uint8Array,
): Uint8Array {
  const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: tag.length });
  decipher.setAuthTag(tag);
  return new Uint8Array(Buffer.concat([decipher.update(ciphertext), decipher.final()]));
}

export function randomBytes(length: number): Uint8Array {
  return randomFillSync(new Uint8Array(length));
}

// ─── Ed25519 ───
// node:crypto only imports raw Ed25519 keys wrapped in DER. For this one algorithm the wrapping is
// a constant prefix (RFC 8410 §7 and §10.1), so we splice bytes instead of encoding ASN.1.
const PKCS8_PREFIX = Uint8Array.from([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
]);
const SPKI_PREFIX_LENGTH = 12;

/**
 * Building a KeyObject costs more than the signature operation itself, and the same few keys
 * (validators, busy accounts) recur constantly. Two-generation caches (bounded-cache.ts): a FIFO
 * Map looks cheaper but makes every insert into a full cache slow in V8.
 */
const privateKeys = new BoundedCache<KeyObject>(10_000);
/** Large enough for every active chip of a big network: each answer is checked with its chip's key. */
const publicKeys = new BoundedCache<KeyObject>(200_000);

function privateKeyObject(seed: Uint8Array): KeyObject {
  const id = bytesToHex(seed);
  const cached = privateKeys.get(id);
  if (cached) return cached;
  const der = Buffer.allocUnsafe(PKCS8_PREFIX.length + seed.length);
  der.set(PKCS8_PREFIX, 0);
  der.set(seed, PKCS8_PREFIX.length);
  const key = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  privateKeys.set(id, key);
  return key;
}

function publicKeyObject(publicKey: Uint8Array): KeyObject {
  const id = bytesToHex(publicKey);
  const cached = publicKeys.get(id);
  if (cached) return cached;
  // Importing from JWK is about fifteen times cheaper than from SPKI DER on Node 20, and OpenSSL
  // applies the same point checks either way.
  const x = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString('base64url');
  const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' });
  publicKeys.set(id, key);
  return key;
}

export function ed25519PublicKeyOf(seed: Uint8Array): Uint8Array {
  const spki = createPublicKey(privateKeyObject(seed)).export({ format: 'der', type: 'spki' });
  return new Uint8Array(spki.subarray(SPKI_PREFIX_LENGTH));
}

export function ed25519SignRaw(seed: Uint8Array, message: Uint8Array): Uint8Array {
  return new Uint8Array(sign(null, message, privateKeyObject(seed)));
}

/** The verification equation (cofactorless, as OpenSSL); may throw for keys it will not import. */
export function ed25519VerifyRaw(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  return verify(null, message, publicKeyObject(publicKey), signature);
}

// ─── X.509 signatures (ECDSA P-256/P-384, RSA PKCS#1 v1.5 and PSS) ───
const spkiKeys = new BoundedCache<KeyObject>(4096);

export type SpkiVerification =
  | { kind: 'ecdsa'; hash: DigestName; rawSignature: Uint8Array }
  | { kind: 'rsa-pkcs1'; hash: DigestName; signature: Uint8Array }
  | { kind: 'rsa-pss'; hash: DigestName; signature: Uint8Array; saltLength?: number };

/** Whether `spkiDer` verifies; null when the key cannot be imported (e.g. a point off the curve). */
export function verifyWithSpki(spkiDer: Uint8Array, data: Uint8Array, how: SpkiVerification): boolean | null {
  const id = bytesToHex(spkiDer);
  let key = spkiKeys.get(id);
  if (!key) {
    try {
      key = createPublicKey({
        key: Buffer.from(spkiDer.buffer, spkiDer.byteOffset, spkiDer.byteLength),
        format: 'der',
        type: 'spki',
      });
    } catch {
      return null;
    }
    spkiKeys.set(id, key);
  }
  if (how.kind === 'ecdsa')
    return verify(how.hash, data, { key, dsaEncoding: 'ieee-p1363' }, how.rawSignature);
  if (how.kind === 'rsa-pkcs1')
    return verify(how.hash, data, { key, padding: constants.RSA_PKCS1_PADDING }, how.signature);
  return verify(
    how.hash,
    data,
    {
      key,
      padding: constants.RSA_PKCS1_PSS_PADDING,
      saltLength: how.saltLength ?? constants.RSA_PSS_SALTLEN_AUTO,
    },
    how.signature,
  );
}

// ─── encodings ───
/**
 * Buffer's own hex encoder called on the view itself, as `bytesToLatin1` does with latin1: asking
 * a small array (a 32-byte hash, kept inside the JavaScript heap) for its `buffer` moved its bytes
 * out of the heap for good, an allocation per id hexed (every transaction id an RPC answers with).
 * 0.9 µs → 0.13–0.25 µs per 32-byte hash. Taken only if present and it encodes a probe right.
 */
const hexSlice = ((): ((this: Uint8Array, start: number, end: number) => string) | null => {
  const slice = (Buffer.prototype as unknown as { hexSlice?: unknown }).hexSlice;
  if (typeof slice !== 'function') return null;
  try {
    const probe = Uint8Array.of(0, 1, 0xab, 0xff, 2).subarray(1, 4);
    const got = (slice as (this: Uint8Array, start: number, end: number) => string).call(probe, 0, 3);
    return got === '01abff' ? (slice as (this: Uint8Array, start: number, end: number) => string) : null;
  } catch {
    return null;
  }
})();

export function bytesToHex(bytes: Uint8Array): string {
  // An empty view (a detached one is empty too) takes the documented path, as in bytesToLatin1.
  if (hexSlice !== null && bytes.byteLength !== 0) return hexSlice.call(bytes, 0, bytes.byteLength);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

/** `hex` already checked: even length, hex digits only. */
export function hexToBytes(hex: string): Uint8Array {
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

/**
 * The bytes of `hex`, or null unless it is an even number of hex digits (either case). Buffer's
 * hex decoder stops at the first pair that is not two hex digits, so a result of exactly half
 * the length is the whole string decoded: that check replaces a regular expression over the
 * string, and the bytes are written once into the array returned (a transaction's hex in an RPC
 * body was tested, decoded into a Buffer and copied; bytes.ts fromHex).
 */
export function hexToBytesChecked(hex: string): Uint8Array | null {
  // Buffer's decoder reads only the low byte of a character beyond ASCII ('\u0130' as '0'):
  // such a string is refused here, by its UTF-8 length (a scan in C++, no copy).
  if (hex.length % 2 !== 0 || Buffer.byteLength(hex, 'utf8') !== hex.length) return null;
  const n = hex.length / 2;
  // Up to 64 bytes a Uint8Array lives in the JS heap, where asking for its buffer would move it
  // out: those go through Buffer's own pool and are copied, as `hexToBytes` does.
  if (n <= 64) {
    const buf = Buffer.from(hex, 'hex');
    return buf.length === n ? new Uint8Array(buf) : null;
  }
  const out = new Uint8Array(n);
  const written = Buffer.from(out.buffer, out.byteOffset, n).write(hex, 'hex');
  return written === n ? out : null;
}

export function base64ToBytes(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text, 'base64'));
}

/**
 * Buffer's own latin1 decoder, called on the view itself: `Buffer.from(view).toString` made a
 * Buffer object for every call, and this runs for every state key, transaction hash and sender a
 * node looks up (state/store.ts keyId: 8 % of a loaded node's main thread in bench:tps, 2-4×
 * slower than this). Undocumented on Buffer.prototype, so taken only if it is there and decodes a
 * probe (a view into a larger buffer) as the documented path does; otherwise that path.
 */
const latin1Slice = ((): ((this: Uint8Array, start: number, end: number) => string) | null => {
  const slice = (Buffer.prototype as unknown as { latin1Slice?: unknown }).latin1Slice;
  if (typeof slice !== 'function') return null;
  try {
    const probe = Uint8Array.of(0, 1, 0x7f, 0x80, 0xff, 2).subarray(1, 5);
    const got = (slice as (this: Uint8Array, start: number, end: number) => string).call(probe, 1, 4);
    return got === '\x7f\x80\xff'
      ? (slice as (this: Uint8Array, start: number, end: number) => string)
      : null;
  } catch {
    return null;
  }
})();

export function bytesToLatin1(bytes: Uint8Array, from = 0, to = bytes.length): string {
  // Out-of-range ends are clamped, as Buffer#toString clamps them.
  const end = Math.min(Math.max(to, 0), bytes.length);
  const start = Math.min(Math.max(from, 0), end);
  // An empty view takes the documented path: a view whose buffer was detached (transferred) is
  // empty too, and there `Buffer.from` throws, as it always did, rather than giving every such
  // key the same id ''.
  if (latin1Slice !== null && bytes.byteLength !== 0) return latin1Slice.call(bytes, start, end);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1', start, end);
}

// ─── the trie's binary-string hashing (merkle/hashing.ts explains why) ───
export function scratch(length: number): Uint8Array {
  return Buffer.alloc(length);
}

/** Writes `length` chars of a binary string into a scratch buffer made by scratch(). */
export function writeLatin1(buf: Uint8Array, at: number, text: string, length: number): void {
  (buf as Buffer).write(text, at, length, 'latin1');
}

/** SHA-256 of a scratch buffer, as a binary string. */
export function sha256Latin1(buf: Uint8Array): string {
  return hash('sha256', buf, 'binary');
}
