/**
 * ECVRF-EDWARDS25519-SHA512-TAI (RFC 9381 §5, suite_string 0x03): a verifiable random function on
 * the Ed25519 curve. The holder of a 32-byte Ed25519 seed computes, for any input alpha, an 80-byte
 * proof pi; anyone holding the public key checks pi and derives the same 64-byte output beta. The
 * consensus beacon is built on it (PROTOCOL.md §6), so every step below follows the RFC exactly and
 * is pinned by the RFC's own example vectors (test/crypto/vrf.test.ts).
 *
 * Curve arithmetic comes from @noble/curves; hashing from node:crypto (crypto/hash.ts).
 */
import type { EdwardsPoint } from '@noble/curves/abstract/edwards.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import { bytesToNumberLE, numberToBytesLE } from '@noble/curves/utils.js';
import { concatBytes, equalBytes } from '../bytes.js';
import { UncError } from '../errors.js';
import { sha512 } from './hash.js';
import { memoVrfProve, memoVrfVerify } from './verification-memo.js';

type Point = EdwardsPoint;

const Point = ed25519.Point;
/** Order of the prime subgroup (q in the RFC, L in RFC 8032). */
const L = Point.Fn.ORDER;

const SUITE = Uint8Array.of(0x03);
const ZERO_BYTE = Uint8Array.of(0x00);
const ENCODE_FRONT = Uint8Array.of(0x01);
const CHALLENGE_FRONT = Uint8Array.of(0x02);
const PROOF_TO_HASH_FRONT = Uint8Array.of(0x03);

/** cLen: the challenge is truncated to 16 bytes (RFC 9381 §5.5). */
const C_LEN = 16;
const PT_LEN = 32;
const Q_LEN = 32;

export const VRF_SEED_LENGTH = 32;
export const VRF_PUBLIC_KEY_LENGTH = 32;
export const VRF_PROOF_LENGTH = PT_LEN + C_LEN + Q_LEN;
export const VRF_OUTPUT_LENGTH = 64;

interface ExpandedKey {
  /** RFC 8032 §5.1.5 secret scalar, clamped but not reduced (the RFC's "x"). */
  scalarBytes: Uint8Array;
  /** The same scalar reduced mod L, the form point multiplication accepts. */
  x: bigint;
  /** Second half of SHA-512(seed): the nonce key of RFC 8032, reused by §5.4.2.2. */
  prefix: Uint8Array;
  publicKey: Uint8Array;
}

/**
 * The last seed expanded and its key: a validator proves with one seed, once per block it proposes,
 * and redid the expansion (a base-point multiplication and a point encoding) for every proof. A
 * copy of the seed is kept and compared by content, so a caller reusing its array for another seed
 * gets that seed's key; what leaves this module is a copy, so no caller can alter the cached key.
 * One entry only: a process proving with several seeds in turn (the simulator, many validators in
 * one process) misses every time and pays the expansion as before. The copy of the secret seed
 * (and its expanded scalar) stays in memory for the life of the process, after the caller has
 * wiped its own array.
 */
let lastExpanded: { seed: Uint8Array; key: ExpandedKey } | null = null;

function expandSeed(seed: Uint8Array): ExpandedKey {
  if (!(seed instanceof Uint8Array) || seed.length !== VRF_SEED_LENGTH) {
    throw new UncError('BAD_KEY', `VRF secret seed must be ${VRF_SEED_LENGTH} bytes`);
  }
  if (lastExpanded && equalBytes(lastExpanded.seed, seed)) return lastExpanded.key;
  const key = expandSeedUncached(seed);
  lastExpanded = { seed: seed.slice(), key };
  return key;
}

function expandSeedUncached(seed: Uint8Array): ExpandedKey {
  const h = sha512(seed);
  const scalarBytes = h.slice(0, 32);
  scalarBytes[0]! &= 248;
  scalarBytes[31]! &= 127;
  scalarBytes[31]! |= 64;
  // Bit 254 is set and L is odd, so the reduction is never 0 and multiply() accepts it.
  const x = bytesToNumberLE(scalarBytes) % L;
  return { scalarBytes, x, prefix: h.slice(32, 64), publicKey: Point.BASE.multiply(x).toBytes() };
}

/**
 * RFC 8032 point decoding with every check it asks for: y < p, a square root exists, and no
 * "negative zero" x. noble's strict mode (zip215 = false) is exactly that; ZIP-215's laxer rules
 * would give one point several encodings, and a VRF must have one proof per (key, alpha).
 */
function decodePoint(bytes: Uint8Array): Point | null {
  try {
    return Point.fromBytes(bytes, false);
  } catch {
    return null;
  }
}

/**
 * ECVRF_encode_to_curve_try_and_increment (RFC 9381 §5.4.1.1), salted with the public key so that
 * one key's hash points say nothing about another's.
 */
function encodeToCurve(publicKey: Uint8Array, alpha: Uint8Array): { H: Point; ctr: number } {
  // A hash lands on the curve with probability about 1/2, so running out of the one-byte counter
  // would take 256 consecutive misses: it does not happen, but it must not loop forever either.
  for (let ctr = 0; ctr < 256; ctr++) {
    const hash = sha512(SUITE, ENCODE_FRONT, publicKey, alpha, Uint8Array.of(ctr), ZERO_BYTE);
    const point = decodePoint(hash.subarray(0, PT_LEN));
    if (point) return { H: point.clearCofactor(), ctr };
  }
  throw new UncError('VRF_ENCODE', 'encode_to_curve found no point in 256 tries');
}

/** ECVRF_challenge_generation (RFC 9381 §5.4.3), on the points' encodings. */
function challenge(encoded: Uint8Array[]): bigint {
  const digest = sha512(SUITE, CHALLENGE_FRONT, ...encoded, ZERO_BYTE);
  return bytesToNumberLE(digest.subarray(0, C_LEN));
}

interface DecodedProof {
  gamma: Point;
  c: bigint;
  s: bigint;
}

/** ECVRF_decode_proof (RFC 9381 §5.4.4): Gamma must decode and s must be a reduced scalar. */
function decodeProof(pi: Uint8Array): DecodedProof | null {
  if (!(pi instanceof Uint8Array) || pi.length !== VRF_PROOF_LENGTH) return null;
  const gamma = decodePoint(pi.subarray(0, PT_LEN));
  if (!gamma) return null;
  const c = bytesToNumberLE(pi.subarray(PT_LEN, PT_LEN + C_LEN));
  const s = bytesToNumberLE(pi.subarray(PT_LEN + C_LEN));
  if (s >= L) return null;
  return { gamma, c, s };
}

/** ECVRF_proof_to_hash's final step (RFC 9381 §5.2), on an already decoded Gamma. */
function gammaToHash(gamma: Point): Uint8Array {
  return sha512(SUITE, PROOF_TO_HASH_FRONT, gamma.clearCofactor().toBytes(), ZERO_BYTE);
}

/** Every intermediate value of one proof, named as in RFC 9381 Appendix B.3, for tests and audits. */
export interface VrfProofTrace {
  publicKey: Uint8Array;
  /** The secret scalar x as the RFC prints it: 32 bytes little-endian, clamped, unreduced. */
  x: Uint8Array;
  /** The counter value at which try-and-increment found a point. */
  ctr: number;
  /** h_string = point_to_string(H). */
  h: Uint8Array;
  /** k_string, the 64-byte nonce hash before reduction mod q. */
  k: Uint8Array;
  /** point_to_string(k*B) and point_to_string(k*H). */
  u: Uint8Array;
  v: Uint8Array;
  pi: Uint8Array;
  beta: Uint8Array;
}

/**
 * ECVRF_prove (RFC 9381 §5.1): the proof and the values the trace reports, each point encoded once
 * (an encoding costs a field inversion); beta is left to the trace, as a proof does not need it.
 */
function prove(secretSeed: Uint8Array, alpha: Uint8Array) {
  const key = expandSeed(secretSeed);
  const { H, ctr } = encodeToCurve(key.publicKey, alpha);
  const hString = H.toBytes();
  const gamma = H.multiply(key.x);
  // ECVRF_nonce_generation_RFC8032 (§5.4.2.2): the Ed25519 nonce derivation with h_string as the
  // message. k is secret, so both multiplications by it use the constant-time ladder.
  const kString = sha512(key.prefix, hString);
  const k = bytesToNumberLE(kString) % L;
  const u = Point.BASE.multiply(k).toBytes();
  const v = H.multiply(k).toBytes();
  const gammaString = gamma.toBytes();
  const c = challenge([key.publicKey, hString, gammaString, u, v]);
  const s = (k + c * key.x) % L;
  const pi = concatBytes(gammaString, numberToBytesLE(c, C_LEN), numberToBytesLE(s, Q_LEN));
  return { key, ctr, hString, kString, u, v, gamma, pi };
}

/** ECVRF_prove (RFC 9381 §5.1) with all of its intermediate values. */
export function vrfProveTrace(secretSeed: Uint8Array, alpha: Uint8Array): VrfProofTrace {
  const p = prove(secretSeed, alpha);
  return {
    publicKey: p.key.publicKey.slice(),
    x: p.key.scalarBytes.slice(),
    ctr: p.ctr,
    h: p.hString,
    k: p.kString,
    u: p.u,
    v: p.v,
    pi: p.pi,
    beta: gammaToHash(p.gamma),
  };
}

/** The 80-byte proof pi = Gamma ‖ c ‖ s for input `alpha` under the key with seed `secretSeed`. */
export function vrfProve(secretSeed: Uint8Array, alpha: Uint8Array): Uint8Array {
  return memoVrfProve(secretSeed, alpha, () => prove(secretSeed, alpha).pi);
}

/** The VRF public key of a seed; byte-for-byte the Ed25519 public key of the same seed. */
export function vrfPublicKey(secretSeed: Uint8Array): Uint8Array {
  return expandSeed(secretSeed).publicKey.slice();
}

/**
 * ECVRF_validate_key (RFC 9381 §5.4.5) plus canonical decoding: the key must decode strictly and
 * must not be one of the eight small-order points, for which a proof would bind nothing (any
 * Gamma of small order verifies for every alpha).
 */
export function vrfIsValidPublicKey(publicKey: Uint8Array): boolean {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== VRF_PUBLIC_KEY_LENGTH) return false;
  const Y = decodePoint(publicKey);
  return Y !== null && !Y.isSmallOrder();
}

/**
 * ECVRF_proof_to_hash (RFC 9381 §5.2): beta from pi, without checking pi against a key. Only
 * meaningful for a proof that vrfVerify accepted (or one this node made); null for bytes that are
 * not a well-formed proof.
 */
export function vrfProofToHash(pi: Uint8Array): Uint8Array | null {
  const proof = decodeProof(pi);
  return proof ? gammaToHash(proof.gamma) : null;
}

/**
 * ECVRF_verify (RFC 9381 §5.3) with validate_key = TRUE: the 64-byte beta if `pi` is a valid
 * proof for `alpha` under `publicKey`, null otherwise. Never throws on malformed input: proofs
 * arrive from the network.
 */
export function vrfVerify(publicKey: Uint8Array, pi: Uint8Array, alpha: Uint8Array): Uint8Array | null {
  if (!(alpha instanceof Uint8Array) || !(pi instanceof Uint8Array)) return null;
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== VRF_PUBLIC_KEY_LENGTH) return null;
  return memoVrfVerify(publicKey, pi, alpha, () => vrfVerifyUncached(publicKey, pi, alpha));
}

function vrfVerifyUncached(publicKey: Uint8Array, pi: Uint8Array, alpha: Uint8Array): Uint8Array | null {
  const Y = decodePoint(publicKey);
  if (!Y || Y.isSmallOrder()) return null;
  const proof = decodeProof(pi);
  if (!proof) return null;
  const { gamma, c, s } = proof;
  const { H } = encodeToCurve(publicKey, alpha);
  // Everything here is public, so the faster variable-time multiplication is fine; it also
  // accepts a zero scalar, which s and c may legitimately be.
  const U = Point.BASE.multiplyUnsafe(s).subtract(Y.multiplyUnsafe(c));
  const V = H.multiplyUnsafe(s).subtract(gamma.multiplyUnsafe(c));
  const expected = challenge([Y, H, gamma, U, V].map((p) => p.toBytes()));
  return expected === c ? gammaToHash(gamma) : null;
}
