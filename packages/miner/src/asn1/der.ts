/**
 * A minimal DER (X.690) encoder: just the types X.509 certificates and ECDSA signatures need.
 * Encoding is deterministic by construction (definite minimal lengths, minimal integers, sorted
 * SET OF), which is what makes a certificate's signature reproducible. There is no reader here:
 * the miner reads certificates with core's strict parser, the one the chain verifies with.
 */
import { compareBytes, concatBytes, utf8 } from '@unc/core';

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

function encodeLength(n: number): Uint8Array {
  if (n < 0x80) return Uint8Array.of(n);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Uint8Array.of(0x80 | bytes.length, ...bytes);
}

export function tlv(tag: number, content: Uint8Array): Uint8Array {
  return concatBytes(Uint8Array.of(tag), encodeLength(content.length), content);
}

export function sequence(...items: Uint8Array[]): Uint8Array {
  return tlv(TAG.SEQUENCE, concatBytes(...items));
}

/** DER requires the elements of a SET OF in ascending order of their encodings. */
export function setOf(...items: Uint8Array[]): Uint8Array {
  return tlv(TAG.SET, concatBytes(...[...items].sort(compareBytes)));
}

export function boolean(value: boolean): Uint8Array {
  return tlv(TAG.BOOLEAN, Uint8Array.of(value ? 0xff : 0x00));
}

export function nullValue(): Uint8Array {
  return tlv(TAG.NULL, new Uint8Array(0));
}

/** Non-negative INTEGER from a bigint or from unsigned big-endian magnitude bytes. */
export function integer(value: bigint | number | Uint8Array): Uint8Array {
  return tlv(TAG.INTEGER, integerContent(value));
}

function integerContent(value: bigint | number | Uint8Array): Uint8Array {
  let magnitude: Uint8Array;
  if (value instanceof Uint8Array) magnitude = value;
  else {
    const v = BigInt(value);
    if (v < 0n) throw new RangeError('negative INTEGERs are not supported');
    magnitude = bigintToBytes(v);
  }
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start++;
  const trimmed = magnitude.length === 0 ? Uint8Array.of(0) : magnitude.subarray(start);
  // A set top bit would read as a negative number, so such magnitudes get a 0x00 in front.
  return trimmed[0]! & 0x80 ? concatBytes(Uint8Array.of(0), trimmed) : trimmed;
}

export function bigintToBytes(v: bigint): Uint8Array {
  if (v < 0n) throw new RangeError('negative value');
  let hex = v.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

export function bytesToBigint(bytes: Uint8Array): bigint {
  return bytes.length === 0 ? 0n : BigInt(`0x${Buffer.from(bytes).toString('hex')}`);
}

export function octetString(bytes: Uint8Array): Uint8Array {
  return tlv(TAG.OCTET_STRING, bytes);
}

export function bitString(bytes: Uint8Array, unusedBits = 0): Uint8Array {
  return tlv(TAG.BIT_STRING, concatBytes(Uint8Array.of(unusedBits), bytes));
}

/**
 * A named-bit BIT STRING such as KeyUsage: bit 0 is the most significant bit of the first octet,
 * and DER drops trailing zero bits.
 */
export function namedBits(bits: readonly number[]): Uint8Array {
  if (bits.length === 0) return bitString(new Uint8Array(0));
  const highest = Math.max(...bits);
  const out = new Uint8Array((highest >> 3) + 1);
  for (const b of bits) out[b >> 3]! |= 0x80 >> (b & 7);
  return bitString(out, 7 - (highest & 7));
}

export function oid(dotted: string): Uint8Array {
  const arcs = dotted.split('.').map((a) => {
    if (!/^\d+$/.test(a)) throw new RangeError(`bad OID ${dotted}`);
    return BigInt(a);
  });
  if (arcs.length < 2 || arcs[0]! > 2n) throw new RangeError(`bad OID ${dotted}`);
  const out: number[] = [];
  const push = (arc: bigint) => {
    const chunk: number[] = [Number(arc & 0x7fn)];
    for (let v = arc >> 7n; v > 0n; v >>= 7n) chunk.unshift(Number(v & 0x7fn) | 0x80);
    out.push(...chunk);
  };
  push(arcs[0]! * 40n + arcs[1]!);
  for (const arc of arcs.slice(2)) push(arc);
  return tlv(TAG.OID, Uint8Array.from(out));
}

export function utf8String(text: string): Uint8Array {
  return tlv(TAG.UTF8_STRING, utf8(text));
}

const PRINTABLE_RE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

export function printableString(text: string): Uint8Array {
  if (!PRINTABLE_RE.test(text)) throw new RangeError(`not a PrintableString: ${JSON.stringify(text)}`);
  return tlv(TAG.PRINTABLE_STRING, utf8(text));
}

/**
 * RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; both in UTC with seconds
 * and no fraction.
 */
export function time(date: Date): Uint8Array {
  const ms = date.getTime();
  if (!Number.isFinite(ms)) throw new RangeError('invalid date');
  if (ms % 1000 !== 0) throw new RangeError('certificate times must be whole seconds');
  const iso = date.toISOString(); // YYYY-MM-DDTHH:MM:SS.000Z
  const digits = iso.slice(0, 19).replace(/[-:T]/g, '');
  const year = date.getUTCFullYear();
  if (year < 1950 || year > 9999) throw new RangeError(`year ${year} cannot be encoded`);
  if (year < 2050) return tlv(TAG.UTC_TIME, utf8(`${digits.slice(2)}Z`));
  return tlv(TAG.GENERALIZED_TIME, utf8(`${digits}Z`));
}

/** [n] context-specific tag; `constructed` for EXPLICIT tagging or a constructed IMPLICIT type. */
export function contextTag(n: number, content: Uint8Array, constructed: boolean): Uint8Array {
  if (n > 30) throw new RangeError('high tag numbers are not supported');
  return tlv(0x80 | (constructed ? 0x20 : 0) | n, content);
}

export function explicit(n: number, inner: Uint8Array): Uint8Array {
  return contextTag(n, inner, true);
}

/** ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }, from unsigned big-endian r and s. */
export function ecdsaSignatureDer(r: Uint8Array, s: Uint8Array): Uint8Array {
  return sequence(integer(r), integer(s));
}
