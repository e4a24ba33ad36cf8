/**
 * A strict DER reader (ITU-T X.690 §10) for the certificates and extensions the attestation
 * profiles read. Strict because the bytes come from miners: one value must have exactly one
 * encoding, so definite minimal lengths only, minimal INTEGERs and OID arcs, BOOLEAN as 00/FF and
 * BIT STRINGs whose unused bits are zero. Anything else is ATTEST_MALFORMED.
 */
import { malformed } from './errors.js';

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  NUMERIC_STRING: 0x12,
  PRINTABLE_STRING: 0x13,
  TELETEX_STRING: 0x14,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  VISIBLE_STRING: 0x1a,
  UNIVERSAL_STRING: 0x1c,
  BMP_STRING: 0x1e,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** Context-specific tag [n], constructed (EXPLICIT or constructed IMPLICIT) or primitive. */
export function contextTag(n: number, constructed: boolean): number {
  return 0x80 | (constructed ? 0x20 : 0) | n;
}

/** One TLV. `der` is the whole encoding, `content` the value bytes; both are views, not copies. */
export interface DerNode {
  readonly tag: number;
  readonly constructed: boolean;
  readonly der: Uint8Array;
  readonly content: Uint8Array;
}

function readNode(buf: Uint8Array, offset: number): DerNode {
  if (offset + 2 > buf.length) throw malformed('DER: truncated header');
  const tag = buf[offset]!;
  // High tag numbers (low five bits all set) never occur in X.509; refusing them keeps tags one byte.
  if ((tag & 0x1f) === 0x1f) throw malformed('DER: multi-byte tags are not supported');
  const first = buf[offset + 1]!;
  let length: number;
  let headerLength: number;
  if (first < 0x80) {
    length = first;
    headerLength = 2;
  } else {
    const n = first & 0x7f;
    if (n === 0) throw malformed('DER: indefinite length');
    if (n > 4) throw malformed('DER: length too long');
    if (offset + 2 + n > buf.length) throw malformed('DER: truncated length');
    if (buf[offset + 2] === 0) throw malformed('DER: length has leading zero');
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + buf[offset + 2 + i]!;
    if (length < 0x80) throw malformed('DER: long form for a short length');
    headerLength = 2 + n;
  }
  const end = offset + headerLength + length;
  if (end > buf.length) throw malformed('DER: value runs past the end of its container');
  return {
    tag,
    constructed: (tag & 0x20) !== 0,
    der: buf.subarray(offset, end),
    content: buf.subarray(offset + headerLength, end),
  };
}

/** Exactly one TLV that spans all of `bytes`. */
export function parseDer(bytes: Uint8Array): DerNode {
  if (!(bytes instanceof Uint8Array)) throw malformed('DER: input is not bytes');
  const node = readNode(bytes, 0);
  if (node.der.length !== bytes.length)
    throw malformed(`DER: ${bytes.length - node.der.length} trailing bytes`);
  return node;
}

/** The TLVs inside a constructed node, which must fill it exactly. */
export function children(node: DerNode): DerNode[] {
  if (!node.constructed) throw malformed(`DER: tag 0x${node.tag.toString(16)} is not constructed`);
  const out: DerNode[] = [];
  let offset = 0;
  while (offset < node.content.length) {
    const child = readNode(node.content, offset);
    out.push(child);
    offset += child.der.length;
  }
  return out;
}

export function expectTag(node: DerNode | undefined, tag: number, what: string): DerNode {
  if (!node) throw malformed(`DER: ${what} is missing`);
  if (node.tag !== tag) {
    throw malformed(`DER: ${what} has tag 0x${node.tag.toString(16)}, expected 0x${tag.toString(16)}`);
  }
  return node;
}

/** Children of a SEQUENCE (or another constructed tag), checking count bounds. */
export function sequence(
  node: DerNode | undefined,
  what: string,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
  tag: number = TAG.SEQUENCE,
): DerNode[] {
  const items = children(expectTag(node, tag, what));
  if (items.length < min || items.length > max) {
    throw malformed(
      `DER: ${what} has ${items.length} elements, expected ${min}..${max === Number.MAX_SAFE_INTEGER ? 'n' : max}`,
    );
  }
  return items;
}

export function readBoolean(node: DerNode | undefined, what: string): boolean {
  const n = expectTag(node, TAG.BOOLEAN, what);
  if (n.content.length !== 1) throw malformed(`DER: ${what} BOOLEAN must be one byte`);
  if (n.content[0] === 0x00) return false;
  if (n.content[0] === 0xff) return true;
  throw malformed(`DER: ${what} BOOLEAN must be 00 or FF`);
}

function checkMinimalInteger(content: Uint8Array, what: string): void {
  if (content.length === 0) throw malformed(`DER: ${what} INTEGER is empty`);
  if (content.length > 1) {
    const a = content[0]!;
    const b = content[1]!;
    if ((a === 0x00 && b < 0x80) || (a === 0xff && b >= 0x80)) {
      throw malformed(`DER: ${what} INTEGER is not minimally encoded`);
    }
  }
}

/** A non-negative INTEGER as its big-endian magnitude (the DER sign byte removed). */
export function readUnsignedIntegerBytes(node: DerNode | undefined, what: string): Uint8Array {
  const n = expectTag(node, TAG.INTEGER, what);
  checkMinimalInteger(n.content, what);
  if (n.content[0]! >= 0x80) throw malformed(`DER: ${what} INTEGER is negative`);
  return n.content[0] === 0x00 && n.content.length > 1 ? n.content.subarray(1) : n.content;
}

export function readSmallInteger(node: DerNode | undefined, what: string): number {
  const bytes = readUnsignedIntegerBytes(node, what);
  if (bytes.length > 4) throw malformed(`DER: ${what} INTEGER too large`);
  let v = 0;
  for (const b of bytes) v = v * 256 + b;
  return v;
}

export function bytesToBigInt(bytes: Uint8Array): bigint {
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return v;
}

export function readNull(node: DerNode | undefined, what: string): void {
  const n = expectTag(node, TAG.NULL, what);
  if (n.content.length !== 0) throw malformed(`DER: ${what} NULL has content`);
}

/** Dotted-decimal OBJECT IDENTIFIER. */
export function readOid(node: DerNode | undefined, what: string): string {
  const c = expectTag(node, TAG.OID, what).content;
  if (c.length === 0) throw malformed(`DER: ${what} OID is empty`);
  const arcs: string[] = [];
  let value = 0n;
  let start = true;
  for (let i = 0; i < c.length; i++) {
    const b = c[i]!;
    if (start && b === 0x80) throw malformed(`DER: ${what} OID arc has a leading zero`);
    start = false;
    value = (value << 7n) | BigInt(b & 0x7f);
    if ((b & 0x80) === 0) {
      if (arcs.length === 0) {
        // The first subidentifier packs the first two arcs: 40 * X + Y, X in 0..2.
        if (value < 40n) arcs.push('0', value.toString());
        else if (value < 80n) arcs.push('1', (value - 40n).toString());
        else arcs.push('2', (value - 80n).toString());
      } else {
        arcs.push(value.toString());
      }
      value = 0n;
      start = true;
    }
  }
  if (!start) throw malformed(`DER: ${what} OID ends inside an arc`);
  return arcs.join('.');
}

/** A BIT STRING that holds whole bytes (keys, signatures, key usage aside). */
export function readBitStringBytes(node: DerNode | undefined, what: string): Uint8Array {
  const { unusedBits, bytes } = readBitString(node, what);
  if (unusedBits !== 0) throw malformed(`DER: ${what} BIT STRING has unused bits`);
  return bytes;
}

export function readBitString(
  node: DerNode | undefined,
  what: string,
): { unusedBits: number; bytes: Uint8Array } {
  const c = expectTag(node, TAG.BIT_STRING, what).content;
  if (c.length === 0) throw malformed(`DER: ${what} BIT STRING is empty`);
  const unusedBits = c[0]!;
  if (unusedBits > 7 || (c.length === 1 && unusedBits !== 0)) {
    throw malformed(`DER: ${what} BIT STRING has a bad unused-bits count`);
  }
  const bytes = c.subarray(1);
  if (unusedBits > 0 && (bytes[bytes.length - 1]! & ((1 << unusedBits) - 1)) !== 0) {
    throw malformed(`DER: ${what} BIT STRING unused bits are not zero`);
  }
  return { unusedBits, bytes };
}

export function readOctetString(node: DerNode | undefined, what: string): Uint8Array {
  return expectTag(node, TAG.OCTET_STRING, what).content;
}

/** Fatal on invalid UTF-8, and a leading byte order mark is kept, not stripped (codec.ts). */
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function ascii(bytes: Uint8Array, what: string, allowed: (c: number) => boolean): string {
  let s = '';
  for (const b of bytes) {
    if (!allowed(b)) throw malformed(`DER: ${what} has a character not allowed in its string type`);
    s += String.fromCharCode(b);
  }
  return s;
}

const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]$/;

/** Any of the ASN.1 character string types that appear in names and SANs, as a JS string. */
export function readString(node: DerNode | undefined, what: string): string {
  if (!node) throw malformed(`DER: ${what} is missing`);
  const c = node.content;
  switch (node.tag) {
    case TAG.UTF8_STRING:
      try {
        return strictUtf8.decode(c);
      } catch {
        throw malformed(`DER: ${what} is not valid UTF-8`);
      }
    case TAG.PRINTABLE_STRING:
      return ascii(c, what, (b) => PRINTABLE.test(String.fromCharCode(b)));
    case TAG.NUMERIC_STRING:
      return ascii(c, what, (b) => b === 0x20 || (b >= 0x30 && b <= 0x39));
    case TAG.IA5_STRING:
    case TAG.VISIBLE_STRING:
      return ascii(c, what, (b) => b < 0x80);
    case TAG.TELETEX_STRING:
      // T.61 is in practice Latin-1 in certificates; every byte maps to one code point.
      return ascii(c, what, () => true);
    case TAG.BMP_STRING: {
      if (c.length % 2 !== 0) throw malformed(`DER: ${what} BMPString has odd length`);
      let s = '';
      for (let i = 0; i < c.length; i += 2) s += String.fromCharCode((c[i]! << 8) | c[i + 1]!);
      return s;
    }
    case TAG.UNIVERSAL_STRING: {
      if (c.length % 4 !== 0) throw malformed(`DER: ${what} UniversalString length not a multiple of 4`);
      let s = '';
      for (let i = 0; i < c.length; i += 4) {
        const cp = ((c[i]! << 24) | (c[i + 1]! << 16) | (c[i + 2]! << 8) | c[i + 3]!) >>> 0;
        if (cp > 0x10ffff) throw malformed(`DER: ${what} UniversalString code point out of range`);
        s += String.fromCodePoint(cp);
      }
      return s;
    }
    default:
      throw malformed(`DER: ${what} has tag 0x${node.tag.toString(16)}, not a string type`);
  }
}

function digits(s: string, from: number, n: number): number {
  let v = 0;
  for (let i = from; i < from + n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return Number.NaN;
    v = v * 10 + (c - 0x30);
  }
  return v;
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function isLeap(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}

/**
 * UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ) as seconds since the Unix epoch.
 * RFC 5280 §4.1.2.5 fixes both forms: seconds present, no fractions, always Zulu.
 */
export function readTime(node: DerNode | undefined, what: string): bigint {
  if (!node) throw malformed(`DER: ${what} is missing`);
  let s: string;
  let year: number;
  let rest: number;
  if (node.tag === TAG.UTC_TIME) {
    s = ascii(node.content, what, (b) => b < 0x80);
    if (s.length !== 13) throw malformed(`DER: ${what} UTCTime must be YYMMDDHHMMSSZ`);
    const yy = digits(s, 0, 2);
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
    rest = 2;
  } else if (node.tag === TAG.GENERALIZED_TIME) {
    s = ascii(node.content, what, (b) => b < 0x80);
    if (s.length !== 15) throw malformed(`DER: ${what} GeneralizedTime must be YYYYMMDDHHMMSSZ`);
    year = digits(s, 0, 4);
    rest = 4;
  } else {
    throw malformed(`DER: ${what} is not a time`);
  }
  if (s[s.length - 1] !== 'Z') throw malformed(`DER: ${what} must be in UTC (Z)`);
  const month = digits(s, rest, 2);
  const day = digits(s, rest + 2, 2);
  const hour = digits(s, rest + 4, 2);
  const minute = digits(s, rest + 6, 2);
  const second = digits(s, rest + 8, 2);
  if ([year, month, day, hour, minute, second].some(Number.isNaN))
    throw malformed(`DER: ${what} has non-digits`);
  const monthDays = month === 2 && isLeap(year) ? 29 : DAYS_IN_MONTH[month - 1];
  if (month < 1 || month > 12 || monthDays === undefined || day < 1 || day > monthDays) {
    throw malformed(`DER: ${what} has an impossible date`);
  }
  if (hour > 23 || minute > 59 || second > 59) throw malformed(`DER: ${what} has an impossible time of day`);
  const days = daysFromCivil(year, month, day);
  return BigInt(days) * 86400n + BigInt(hour * 3600 + minute * 60 + second);
}

/**
 * Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). Written out
 * rather than Date.UTC, which silently maps years 0..99 to 1900..1999.
 */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const mp = (month + 9) % 12;
  const doy = Math.floor((153 * mp + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}
