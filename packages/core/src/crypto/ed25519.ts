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
import { fromHex } from '../bytes.js';
import { UncError } from '../errors.js';
import { ed25519PublicKeyOf, ed25519SignRaw, ed25519VerifyRaw } from '../platform/node.js';
import { memoEd25519 } from './verification-memo.js';

export const ED25519_SEED_LENGTH = 32;
export const ED25519_PUBLIC_KEY_LENGTH = 32;
export const ED25519_SIGNATURE_LENGTH = 64;

function checkSeed(seed: Uint8Array): void {
  if (!(seed instanceof Uint8Array) || seed.length !== ED25519_SEED_LENGTH) {
    throw new UncError('BAD_KEY', `ed25519 seed must be ${ED25519_SEED_LENGTH} bytes`);
  }
}

/** The 32-byte public key of a 32-byte secret seed. */
export function ed25519PublicKey(seed: Uint8Array): Uint8Array {
  checkSeed(seed);
  return ed25519PublicKeyOf(seed);
}

/** Deterministic 64-byte signature of `message` by the key with secret `seed`. */
export function ed25519Sign(seed: Uint8Array, message: Uint8Array): Uint8Array {
  checkSeed(seed);
  return ed25519SignRaw(seed, message);
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
  return memoEd25519(publicKey, message, signature, () => {
    try {
      return ed25519VerifyRaw(publicKey, message, signature);
    } catch {
      return false;
    }
  });
}
