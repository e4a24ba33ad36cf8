/**
 * The primitives of the result shapes. No import of @unc/core: the client parses answers with
 * these, and a client must stay light.
 */
import * as v from 'valibot';

export const HexString = v.pipe(v.string(), v.regex(/^[0-9a-f]*$/), v.description('lowercase hex'));
export const Hash = v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/), v.description('32 bytes, lowercase hex'));
export const AddressText = v.pipe(v.string(), v.regex(/^unc1[0-9a-z]+$/), v.description('bech32 address'));
/** Base units on the wire as a decimal string; a bigint once parsed (the sdk's domain objects). */
export const Amount = v.pipe(
  v.string(),
  v.regex(/^\d+$/),
  v.description('base units (1 UNC = 10^18) as a decimal string'),
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
