/**
 * Password-encrypted keystore for one 32-byte secret: scrypt stretches the password into an
 * AES-256-GCM key, whose tag doubles as the password check. The file is plain JSON with hex
 * fields so that it survives copy-paste and other tools can read it.
 */

import { toHex } from '../bytes.js';
import { UncError } from '../errors.js';
import { aes256GcmDecrypt, aes256GcmEncrypt, hexToBytes, scrypt } from '../platform/node.js';

export interface ScryptParams {
  n: number;
  r: number;
  p: number;
}

export interface KeystoreRandom {
  /** 32 fresh random bytes per file. */
  salt: Uint8Array;
  /** 12 fresh random bytes per encryption; never reuse one with the same key. */
  iv: Uint8Array;
}

export interface KeystoreFile {
  version: 1;
  crypto: {
    cipher: 'aes-256-gcm';
    cipherparams: { iv: string };
    ciphertext: string;
    tag: string;
    kdf: 'scrypt';
    kdfparams: { n: number; r: number; p: number; dklen: 32; salt: string };
  };
}

export const DEFAULT_SCRYPT_PARAMS: Readonly<ScryptParams> = Object.freeze({ n: 2 ** 15, r: 8, p: 1 });

const SECRET_LENGTH = 32;
const SALT_LENGTH = 32;
const IV_LENGTH = 12;
const TAG_LENGTH = 16;
const KEY_LENGTH = 32;

// A keystore can come from anywhere, and its parameters decide how much memory and time we spend
// before the password is even checked; these bounds keep a hostile file from exhausting either.
const MIN_N = 2 ** 10;
const MAX_N = 2 ** 20;
const MAX_R = 32;
const MAX_P = 16;
const MAX_MEMORY = 2 ** 30;
const MAX_WORK = 2 ** 25;

function bad(reason: string): never {
  throw new UncError('BAD_KEYSTORE', `invalid keystore: ${reason}`);
}

function checkParams(params: ScryptParams): void {
  const { n, r, p } = params;
  if (!Number.isSafeInteger(n) || n < MIN_N || n > MAX_N || (n & (n - 1)) !== 0) {
    bad(`scrypt n must be a power of two from 2^10 to 2^20, got ${n}`);
  }
  if (!Number.isSafeInteger(r) || r < 1 || r > MAX_R) bad(`scrypt r must be an integer from 1 to ${MAX_R}`);
  if (!Number.isSafeInteger(p) || p < 1 || p > MAX_P) bad(`scrypt p must be an integer from 1 to ${MAX_P}`);
  if (128 * n * r > MAX_MEMORY) bad('scrypt n * r needs more than 1 GiB of memory');
  if (n * r * p > MAX_WORK) bad('scrypt n * r * p is too slow to be sane');
}

function deriveKey(password: string, salt: Uint8Array, params: ScryptParams): Uint8Array {
  // NFKC so that one password typed on different keyboards or OSes yields the same bytes.
  return scrypt(password.normalize('NFKC'), salt, KEY_LENGTH, params);
}

function requireBytes(value: unknown, length: number, name: string): Uint8Array {
  if (!(value instanceof Uint8Array) || value.length !== length) {
    throw new UncError('BAD_KEYSTORE', `${name} must be ${length} bytes`);
  }
  return value;
}

export function encryptKeystore(
  secret: Uint8Array,
  password: string,
  random: KeystoreRandom,
  params: ScryptParams = DEFAULT_SCRYPT_PARAMS,
): KeystoreFile {
  requireBytes(secret, SECRET_LENGTH, 'secret');
  if (typeof password !== 'string') throw new UncError('BAD_KEYSTORE', 'password must be a string');
  const salt = requireBytes(random?.salt, SALT_LENGTH, 'salt');
  const iv = requireBytes(random?.iv, IV_LENGTH, 'iv');
  checkParams(params);
  const key = deriveKey(password, salt, params);
  try {
    const { ciphertext, tag } = aes256GcmEncrypt(key, iv, secret, TAG_LENGTH);
    return {
      version: 1,
      crypto: {
        cipher: 'aes-256-gcm',
        cipherparams: { iv: toHex(iv) },
        ciphertext: toHex(ciphertext),
        tag: toHex(tag),
        kdf: 'scrypt',
        kdfparams: { n: params.n, r: params.r, p: params.p, dklen: KEY_LENGTH, salt: toHex(salt) },
      },
    };
  } finally {
    key.fill(0);
  }
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Objects that carry cryptographic meaning must hold exactly the expected keys, no more. */
function object(value: unknown, name: string, keys: readonly string[]): Json {
  if (!isObject(value)) bad(`${name} must be an object`);
  for (const key of keys) if (!Object.hasOwn(value, key)) bad(`${name}.${key} is missing`);
  for (const key of Object.keys(value)) if (!keys.includes(key)) bad(`${name}.${key} is not expected`);
  return value;
}

// Lower-case only, as we write it: one spelling per file keeps tampering checks meaningful.
const HEX_RE = /^(?:[0-9a-f]{2})+$/;

function hexField(value: unknown, length: number, name: string): Uint8Array {
  if (typeof value !== 'string' || !HEX_RE.test(value)) bad(`${name} must be lower-case hex`);
  if (value.length !== length * 2) bad(`${name} must be ${length} bytes, got ${value.length / 2}`);
  return hexToBytes(value);
}

function integerField(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) bad(`${name} must be an integer`);
  return value;
}

/**
 * The secret, if `password` is right. Shape problems are BAD_KEYSTORE; a wrong password and a
 * tampered file are indistinguishable by design (GCM cannot tell them apart) and are WRONG_PASSWORD.
 * Unknown top-level fields are allowed so wallets can store metadata (an address, a label) beside
 * the encrypted part; everything under `crypto` is checked exactly.
 */
export function decryptKeystore(file: unknown, password: string): Uint8Array {
  if (typeof password !== 'string') throw new UncError('BAD_KEYSTORE', 'password must be a string');
  if (!isObject(file)) bad('not an object');
  if (file.version !== 1) bad(`unsupported version ${JSON.stringify(file.version)}`);
  const c = object(file.crypto, 'crypto', [
    'cipher',
    'cipherparams',
    'ciphertext',
    'tag',
    'kdf',
    'kdfparams',
  ]);
  if (c.cipher !== 'aes-256-gcm') bad(`unsupported cipher ${JSON.stringify(c.cipher)}`);
  if (c.kdf !== 'scrypt') bad(`unsupported kdf ${JSON.stringify(c.kdf)}`);
  const cipherparams = object(c.cipherparams, 'crypto.cipherparams', ['iv']);
  const kdfparams = object(c.kdfparams, 'crypto.kdfparams', ['n', 'r', 'p', 'dklen', 'salt']);
  const iv = hexField(cipherparams.iv, IV_LENGTH, 'crypto.cipherparams.iv');
  const ciphertext = hexField(c.ciphertext, SECRET_LENGTH, 'crypto.ciphertext');
  const tag = hexField(c.tag, TAG_LENGTH, 'crypto.tag');
  const salt = hexField(kdfparams.salt, SALT_LENGTH, 'crypto.kdfparams.salt');
  if (kdfparams.dklen !== KEY_LENGTH) bad(`crypto.kdfparams.dklen must be ${KEY_LENGTH}`);
  const params: ScryptParams = {
    n: integerField(kdfparams.n, 'crypto.kdfparams.n'),
    r: integerField(kdfparams.r, 'crypto.kdfparams.r'),
    p: integerField(kdfparams.p, 'crypto.kdfparams.p'),
  };
  checkParams(params);
  const key = deriveKey(password, salt, params);
  try {
    const secret = aes256GcmDecrypt(key, iv, ciphertext, tag);
    const out = secret.slice();
    secret.fill(0);
    return out;
  } catch {
    throw new UncError('WRONG_PASSWORD', 'wrong password or corrupted keystore');
  } finally {
    key.fill(0);
  }
}
