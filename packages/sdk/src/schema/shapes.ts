/**
 * The primitives of the result shapes. No import of @unc/core: the client parses answers with
 * these, and a client must stay light.
 */
import * as v from 'valibot';

export const HexString = v.pipe(v.string(), v.regex(/^[0-9a-f]*$/), v.description('lowercase hex'));
export const Hash = v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/), v.description('32 bytes, lowercase hex'));
export const AddressText = v.pipe(v.string(), v.regex(/^unc1[0-9a-z]+$/), v.description('bech32 address'));
/** The largest value of a u128, the width of every amount and power in the protocol's encoding. */
export const U128_MAX = (1n << 128n) - 1n;
/**
 * Base units on the wire as a decimal string; a bigint once parsed (the sdk's domain objects).
 * Bounded to u128 here: a node answering a larger value (a price, a balance) would otherwise make
 * the client throw a RangeError later, encoding a transaction that carries it (an offer's price as
 * a lease's maximum), instead of refusing the answer with a schema error.
 */
export const Amount = v.pipe(
  v.string(),
  v.regex(/^\d+$/),
  // 39 digits hold every u128; checked first so that a huge string is not converted to a bigint.
  v.maxLength(39, 'must be at most a u128 (39 digits)'),
  v.description('base units (1 UNC = 10^18) as a decimal string'),
  v.transform((s) => BigInt(s)),
  v.check((n) => n <= U128_MAX, 'must be at most a u128 (2^128 - 1)'),
);
/**
 * A sum of u128 values (a validator set's total and quorum power: up to 1,000 validators of u128
 * power each), unbounded: it is never encoded.
 */
export const PowerSum = v.pipe(
  v.string(),
  v.regex(/^\d+$/),
  v.description('a sum of u128 values as a decimal string'),
  v.transform((s) => BigInt(s)),
);
export const Int = v.pipe(v.number(), v.integer());
export const IsoTime = v.pipe(v.string(), v.isoTimestamp(), v.description('ISO 8601 time'));
/** Actions and events are tagged unions documented in docs/rpc.md; here only their tag is fixed. */
export const Tagged = v.looseObject({ type: v.string() });
/** Compute power on the wire as a decimal string (dense FP16 TFLOPS × 1000); a bigint once parsed. */
export const Power = v.pipe(
  v.string(),
  v.regex(/^\d+$/),
  v.description('dense FP16 TFLOPS × 1000 as a decimal string'),
  v.transform((s) => BigInt(s)),
);
