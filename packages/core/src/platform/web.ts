/**
 * The platform layer of core in a browser: the same functions as node.ts, on the audited portable
 * implementations (@noble/hashes, @noble/curves, @noble/ciphers) and without Buffer. Bundlers pick
 * this file through the `browser` field of core's package.json; Node never loads it, except in
 * test/platform.test.ts, which checks that both layers give the same bytes.
 *
 * Not here: X.509/TPM signature verification with RSA and ECDSA keys from certificates
 * (attestation/), which only nodes run; verifyWithSpki throws UNSUPPORTED_PLATFORM.
 */
import { gcm } from '@noble/ciphers/aes.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha1 } from '@noble/hashes/legacy.js';
import { pbkdf2 } from '@noble/hashes/pbkdf2.js';
import { scrypt as nobleScrypt } from '@noble/hashes/scrypt.js';
import { sha256 as nobleSha256, sha512 as nobleSha512, sha384 } from '@noble/hashes/sha2.js';
import { base64 } from '@scure/base';
import { UncError } from '../errors.js';

export const PLATFORM = 'web' as const;

export type DigestName = 'sha1' | 'sha256' | 'sha384' | 'sha512';

export function sha256(parts: Uint8Array[]): Uint8Array {
  const h = nobleSha256.create();
  for (const p of parts) h.update(p);
  return h.digest();
}

export function sha512(parts: Uint8Array[]): Uint8Array {
  const h = nobleSha512.create();
  for (const p of parts) h.update(p);
  return h.digest();
}

const DIGESTS = { sha1, sha256: nobleSha256, sha384, sha512: nobleSha512 } as const;

export function digest(name: DigestName, data: Uint8Array): Uint8Array {
  return DIGESTS[name](data);
}

export function hmacSha512(key: Uint8Array, data: Uint8Array): Uint8Array {
  return hmac(nobleSha512, key, data);
}

export function pbkdf2Sha512(
  password: Uint8Array,
  salt: Uint8Array,
  iterations: number,
  length: number,
): Uint8Array {
  return pbkdf2(nobleSha512, password, salt, { c: iterations, dkLen: length });
}

export function scrypt(
  password: string,
  salt: Uint8Array,
  length: number,
  { n, r, p }: { n: number; r: number; p: number },
): Uint8Array {
  return nobleScrypt(new TextEncoder().encode(password), salt, {
    N: n,
    r,
    p,
    dkLen: length,
    maxmem: 128 * n * r + 128 * r * p + 2 ** 20,
  });
}

export function aes256GcmEncrypt(
  key: Uint8Array,
  iv: Uint8Array,
  plaintext: Uint8Array,
  tagLength: number,
): { ciphertext: Uint8Array; tag: Uint8Array } {
  if (tagLength !== 16) throw new UncError('UNSUPPORTED_PLATFORM', 'AES-GCM here uses 16-byte tags only');
  const sealed = gcm(key, iv).encrypt(plaintext);
  return { ciphertext: sealed.subarray(0, sealed.length - 16), tag: sealed.subarray(sealed.length - 16) };
}

export function aes256GcmDecrypt(
  key: Uint8Array,
  iv: Uint8Array,
  ciphertext: Uint8Array,
  tag: Uint8Array,
): Uint8Array {
  const sealed = new Uint8Array(ciphertext.length + tag.length);
  sealed.set(ciphertext);
  sealed.set(tag, ciphertext.length);
  return gcm(key, iv).decrypt(sealed);
}

export function randomBytes(length: number): Uint8Array {
  const out = new Uint8Array(length);
  // getRandomValues fills at most 65536 bytes per call.
  for (let i = 0; i < length; i += 65536)
    globalThis.crypto.getRandomValues(out.subarray(i, Math.min(length, i + 65536)));
  return out;
}

export function ed25519PublicKeyOf(seed: Uint8Array): Uint8Array {
  return ed25519.getPublicKey(seed);
}

export function ed25519SignRaw(seed: Uint8Array, message: Uint8Array): Uint8Array {
  return ed25519.sign(message, seed);
}

/**
 * RFC 8032 verification with strict encodings (ed25519.ts has already applied the protocol's
 * encoding rules). noble checks the cofactored equation where OpenSSL checks the cofactorless one;
 * they differ only on signatures crafted with small-order components, which no honest signer makes,
 * and a browser only verifies, it never decides consensus.
 */
export function ed25519VerifyRaw(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  return ed25519.verify(signature, message, publicKey, { zip215: false });
}

export type SpkiVerification =
  | { kind: 'ecdsa'; hash: DigestName; rawSignature: Uint8Array }
  | { kind: 'rsa-pkcs1'; hash: DigestName; signature: Uint8Array }
  | { kind: 'rsa-pss'; hash: DigestName; signature: Uint8Array; saltLength?: number };

export function verifyWithSpki(
  _spkiDer: Uint8Array,
  _data: Uint8Array,
  _how: SpkiVerification,
): boolean | null {
  throw new UncError('UNSUPPORTED_PLATFORM', 'certificate signature verification runs on Node only');
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

export function bytesToHex(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i++) out += HEX[bytes[i]!];
  return out;
}

/** `hex` already checked: even length, hex digits only. */
export function hexToBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

const HEX_RE = /^(?:[0-9a-fA-F]{2})*$/;

/** The bytes of `hex`, or null unless it is an even number of hex digits (as node.ts). */
export function hexToBytesChecked(hex: string): Uint8Array | null {
  return HEX_RE.test(hex) ? hexToBytes(hex) : null;
}

export function base64ToBytes(text: string): Uint8Array {
  return base64.decode(text);
}

export function bytesToLatin1(bytes: Uint8Array, from = 0, to = bytes.length): string {
  let out = '';
  for (let i = from; i < to; i++) out += String.fromCharCode(bytes[i]!);
  return out;
}

export function scratch(length: number): Uint8Array {
  return new Uint8Array(length);
}

export function writeLatin1(buf: Uint8Array, at: number, text: string, length: number): void {
  for (let i = 0; i < length; i++) buf[at + i] = text.charCodeAt(i) & 0xff;
}

export function sha256Latin1(buf: Uint8Array): string {
  return bytesToLatin1(nobleSha256(buf));
}
