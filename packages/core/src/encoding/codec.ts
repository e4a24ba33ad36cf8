/**
 * The one canonical binary encoding. Everything that is hashed or signed goes through it.
 *
 * Rules (also in docs/encoding.md):
 * - integers are fixed-width big-endian (u8, u16, u32, u64, u128); amounts are u128;
 * - byte strings and lists carry a u32 big-endian length prefix and a per-field maximum;
 * - fixed-size byte strings (hashes, addresses, keys) carry no prefix;
 * - booleans are 0x00 / 0x01; options are 0x00 (none) or 0x01 followed by the value;
 * - tagged unions are a u8 tag followed by the variant's fields;
 * - struct fields are written in declaration order; there are no optional trailing fields.
 * Decoding is strict: any other byte string (a bad tag, a boolean 0x02, a length over its
 * maximum, trailing bytes, a string that is not valid UTF-8) is a DecodeError, so each value has
 * exactly one encoding and decode(encode(x)) = x.
 */
import { DecodeError } from '../errors.js';

export class Writer {
  private buf: Uint8Array;
  private view: DataView;
  private pos = 0;

  constructor(initialSize = 256) {
    this.buf = new Uint8Array(initialSize);
    this.view = new DataView(this.buf.buffer);
  }

  private reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(v: number): void {
    this.reserve(1);
    this.view.setUint8(this.pos, v);
    this.pos += 1;
  }
  u16(v: number): void {
    this.reserve(2);
    this.view.setUint16(this.pos, v);
    this.pos += 2;
  }
  u32(v: number): void {
    this.reserve(4);
    this.view.setUint32(this.pos, v);
    this.pos += 4;
  }
  u64(v: bigint): void {
    this.reserve(8);
    this.view.setBigUint64(this.pos, v);
    this.pos += 8;
  }
  u128(v: bigint): void {
    this.reserve(16);
    this.view.setBigUint64(this.pos, v >> 64n);
    this.view.setBigUint64(this.pos + 8, v & 0xffff_ffff_ffff_ffffn);
    this.pos += 16;
  }
  raw(bytes: Uint8Array): void {
    this.reserve(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }
  finish(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }

  /** Empties the writer for reuse (its buffer stays). */
  reset(): void {
    this.pos = 0;
  }

  get capacity(): number {
    return this.buf.length;
  }
}

/**
 * Reads the fields of an encoding. It reads the bytes by index rather than through a DataView: a
 * DataView needs the array's `buffer`, and a small array (a state value, a key: the values the
 * node decodes most, thousands per block) lives inside the JavaScript heap until something asks
 * for its buffer, which then moves it out to memory of its own (an allocation the garbage
 * collector must later free). That was a fifth of a loaded node's decoding time
 * (BENCHMARKS.md, branch `mainthread`). Same results as DataView's big-endian getters
 * (test/codec-reader.test.ts compares them over random bytes at any offset).
 */
export class Reader {
  private pos = 0;
  private readonly buf: Uint8Array;

  constructor(buf: Uint8Array) {
    // Indexing reads a byte only from a Uint8Array: a plain array or a string would "decode" to
    // numbers that are no bytes (the DataView this replaced refused anything but a view of an
    // ArrayBuffer), an Int8Array to negative ones.
    this.buf = buf instanceof Uint8Array ? buf : bytesOfView(buf);
  }

  private need(n: number, what: string): void {
    if (this.pos + n > this.buf.length) {
      throw new DecodeError(`unexpected end of input reading ${what} at byte ${this.pos}`);
    }
  }
  /** The big-endian u32 at `p` (bounds already checked), as a non-negative number. */
  private u32At(p: number): number {
    const b = this.buf;
    return b[p]! * 0x100_0000 + ((b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!);
  }
  /** The big-endian u64 at `p` (bounds already checked). */
  private u64At(p: number): bigint {
    const hi = this.u32At(p);
    const lo = this.u32At(p + 4);
    // Below 2^53 the value is an exact number: one BigInt instead of three (the common case:
    // nonces, heights, most amounts' halves).
    if (hi < 0x20_0000) return BigInt(hi * 0x1_0000_0000 + lo);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }
  u8(what = 'u8'): number {
    this.need(1, what);
    return this.buf[this.pos++]!;
  }
  u16(what = 'u16'): number {
    this.need(2, what);
    const b = this.buf;
    const v = (b[this.pos]! << 8) | b[this.pos + 1]!;
    this.pos += 2;
    return v;
  }
  u32(what = 'u32'): number {
    this.need(4, what);
    const v = this.u32At(this.pos);
    this.pos += 4;
    return v;
  }
  u64(what = 'u64'): bigint {
    this.need(8, what);
    const v = this.u64At(this.pos);
    this.pos += 8;
    return v;
  }
  u128(what = 'u128'): bigint {
    this.need(16, what);
    const hi = this.u64At(this.pos);
    const lo = this.u64At(this.pos + 8);
    this.pos += 16;
    return hi === 0n ? lo : (hi << 64n) | lo;
  }
  raw(n: number, what = 'bytes'): Uint8Array {
    // A negative length would move the cursor back (slice gives nothing, pos shrinks) and a
    // fractional or NaN one would leave it between bytes, so every later read returned garbage
    // instead of failing: a length that is no byte count is refused like a read past the end.
    if (!Number.isSafeInteger(n) || n < 0) {
      throw new DecodeError(`invalid length ${n} reading ${what} at byte ${this.pos}`);
    }
    this.need(n, what);
    const out = this.buf.slice(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  get remaining(): number {
    return this.buf.length - this.pos;
  }
  end(what: string): void {
    if (this.pos !== this.buf.length) {
      throw new DecodeError(`${this.buf.length - this.pos} trailing bytes after ${what}`);
    }
  }
}

/**
 * The bytes of a view that is not a Uint8Array of this realm, as the DataView the Reader used to
 * take read them: a Uint8Array of another realm (a vm context, an iframe) as it is, an Int8Array
 * or Uint8ClampedArray as unsigned bytes; anything else is not bytes.
 */
function bytesOfView(buf: unknown): Uint8Array {
  if (ArrayBuffer.isView(buf) && (buf as { BYTES_PER_ELEMENT?: unknown }).BYTES_PER_ELEMENT === 1) {
    const v = buf as Int8Array;
    return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  }
  throw new TypeError('Reader needs a Uint8Array');
}

/** A canonical encoder/decoder pair for values of type T. */
export interface Codec<T> {
  readonly name: string;
  write(w: Writer, value: T): void;
  read(r: Reader): T;
}

/**
 * One writer reused by `encode`: a fresh one allocated a 256-byte buffer (memory outside the
 * JavaScript heap, which also hurries the garbage collector) for every value encoded. `finish`
 * copies the bytes out, so the buffer is free again once `encode` returns; a nested `encode` (from
 * inside a codec) finds it taken and uses a writer of its own. A buffer grown past
 * SCRATCH_MAX_BYTES by a large value is not kept.
 */
let scratch: Writer | null = null;
const SCRATCH_MAX_BYTES = 1 << 16;

export function encode<T>(codec: Codec<T>, value: T): Uint8Array {
  const w = scratch ?? new Writer();
  scratch = null;
  w.reset();
  try {
    codec.write(w, value);
    return w.finish();
  } finally {
    if (w.capacity <= SCRATCH_MAX_BYTES) scratch = w;
  }
}

/** Decodes exactly one value; trailing bytes are an error. Never throws anything but DecodeError. */
export function decode<T>(codec: Codec<T>, bytes: Uint8Array): T {
  try {
    const r = new Reader(bytes);
    const value = codec.read(r);
    r.end(codec.name);
    return value;
  } catch (err) {
    if (err instanceof DecodeError) throw err;
    throw new DecodeError(`malformed ${codec.name}: ${(err as Error).message}`);
  }
}

function intCodec(name: string, bits: 8 | 16 | 32): Codec<number> {
  const max = 2 ** bits - 1;
  return {
    name,
    write(w, v) {
      if (!Number.isInteger(v) || v < 0 || v > max) throw new RangeError(`${name} out of range: ${v}`);
      if (bits === 8) w.u8(v);
      else if (bits === 16) w.u16(v);
      else w.u32(v);
    },
    read: (r) => (bits === 8 ? r.u8(name) : bits === 16 ? r.u16(name) : r.u32(name)),
  };
}

export const u8 = intCodec('u8', 8);
export const u16 = intCodec('u16', 16);
export const u32 = intCodec('u32', 32);

const U64_MAX = (1n << 64n) - 1n;
const U128_MAX = (1n << 128n) - 1n;

export const u64: Codec<bigint> = {
  name: 'u64',
  write(w, v) {
    if (typeof v !== 'bigint' || v < 0n || v > U64_MAX) throw new RangeError(`u64 out of range: ${v}`);
    w.u64(v);
  },
  read: (r) => r.u64('u64'),
};

/** Amounts of UNC base units (1 UNC = 10^18) and other large non-negative integers. */
export const u128: Codec<bigint> = {
  name: 'u128',
  write(w, v) {
    if (typeof v !== 'bigint' || v < 0n || v > U128_MAX) throw new RangeError(`u128 out of range: ${v}`);
    w.u128(v);
  },
  read: (r) => r.u128('u128'),
};

export const bool: Codec<boolean> = {
  name: 'bool',
  write: (w, v) => w.u8(v ? 1 : 0),
  read(r) {
    const b = r.u8('bool');
    if (b > 1) throw new DecodeError(`bool must be 0 or 1, got ${b}`);
    return b === 1;
  },
};

/** Fixed-size bytes (no length prefix). */
export function bytesN(n: number, name = `bytes${n}`): Codec<Uint8Array> {
  return {
    name,
    write(w, v) {
      if (!(v instanceof Uint8Array) || v.length !== n) throw new RangeError(`${name} must be ${n} bytes`);
      w.raw(v);
    },
    read: (r) => r.raw(n, name),
  };
}

/** Variable-size bytes with a u32 length prefix and a maximum. */
export function bytes(max: number, name = 'bytes'): Codec<Uint8Array> {
  return {
    name,
    write(w, v) {
      if (!(v instanceof Uint8Array)) throw new TypeError(`${name} must be bytes`);
      if (v.length > max) throw new RangeError(`${name} longer than ${max} bytes`);
      w.u32(v.length);
      w.raw(v);
    },
    read(r) {
      const n = r.u32(`${name} length`);
      if (n > max) throw new DecodeError(`${name} length ${n} exceeds maximum ${max}`);
      return r.raw(n, name);
    },
  };
}

/**
 * Strings decode one way only: invalid UTF-8 is an error (`fatal`), and a leading byte order mark
 * is kept as the character U+FEFF (`ignoreBOM: true` means "do not strip it"). A decoder that
 * strips it reads "\uFEFFunc-1" as "unc-1", and one transaction would have two encodings.
 */
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();
/** With the u flag a surrogate pair is one code point, so this matches lone surrogates only. */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

export function string(maxBytes: number, name = 'string'): Codec<string> {
  const inner = bytes(maxBytes, name);
  return {
    name,
    write(w, v) {
      if (typeof v !== 'string') throw new TypeError(`${name} must be a string`);
      // UTF-8 has no encoding for a lone surrogate; TextEncoder would silently write U+FFFD.
      if (LONE_SURROGATE.test(v)) throw new TypeError(`${name} is not well-formed Unicode`);
      inner.write(w, utf8Encoder.encode(v));
    },
    read(r) {
      const raw = inner.read(r);
      try {
        return strictUtf8.decode(raw);
      } catch {
        throw new DecodeError(`${name} is not valid UTF-8`);
      }
    },
  };
}

export function list<T>(item: Codec<T>, max: number, name = `list<${item.name}>`): Codec<T[]> {
  return {
    name,
    write(w, v) {
      if (!Array.isArray(v)) throw new TypeError(`${name} must be an array`);
      if (v.length > max) throw new RangeError(`${name} has more than ${max} items`);
      w.u32(v.length);
      for (const x of v) item.write(w, x);
    },
    read(r) {
      const n = r.u32(`${name} length`);
      if (n > max) throw new DecodeError(`${name} length ${n} exceeds maximum ${max}`);
      // Every item takes at least one byte, so a length beyond what is left is malformed; checking
      // it here stops a 4-byte prefix from making us allocate a huge array.
      if (n > r.remaining) throw new DecodeError(`${name} length ${n} exceeds the remaining input`);
      const out: T[] = new Array(n);
      for (let i = 0; i < n; i++) out[i] = item.read(r);
      return out;
    },
  };
}

export function option<T>(inner: Codec<T>): Codec<T | null> {
  return {
    name: `option<${inner.name}>`,
    write(w, v) {
      if (v === null || v === undefined) w.u8(0);
      else {
        w.u8(1);
        inner.write(w, v);
      }
    },
    read(r) {
      const tag = r.u8('option tag');
      if (tag === 0) return null;
      if (tag === 1) return inner.read(r);
      throw new DecodeError(`option tag must be 0 or 1, got ${tag}`);
    },
  };
}

type Fields<T> = { [K in keyof T]: Codec<T[K]> };

/** A record whose fields are encoded in the order they are listed. */
export function struct<T extends object>(name: string, fields: Fields<T>): Codec<T> {
  const entries = Object.entries(fields) as [keyof T & string, Codec<unknown>][];
  return {
    name,
    write(w, v) {
      for (const [key, codec] of entries) {
        try {
          codec.write(w, (v as Record<string, unknown>)[key]);
        } catch (err) {
          throw new RangeError(`${name}.${key}: ${(err as Error).message}`);
        }
      }
    },
    read(r) {
      const out = {} as Record<string, unknown>;
      for (const [key, codec] of entries) out[key] = codec.read(r);
      return out as T;
    },
  };
}

/**
 * A tagged union over objects with a string `type` discriminant. `variants` maps each type name
 * to its u8 tag and the codec of the rest of its fields.
 */
export function taggedUnion<T extends { type: string }>(
  name: string,
  variants: { [K in T['type']]: [tag: number, codec: Codec<Omit<Extract<T, { type: K }>, 'type'>>] },
): Codec<T> {
  const byTag = new Map<number, [string, Codec<object>]>();
  for (const [type, [tag, codec]] of Object.entries(variants) as [string, [number, Codec<object>]][]) {
    if (byTag.has(tag)) throw new Error(`duplicate tag ${tag} in ${name}`);
    byTag.set(tag, [type, codec]);
  }
  return {
    name,
    write(w, v) {
      const variant = (variants as Record<string, [number, Codec<object>]>)[v.type];
      if (!variant) throw new RangeError(`unknown ${name} type ${String(v.type)}`);
      w.u8(variant[0]);
      variant[1].write(w, v);
    },
    read(r) {
      const tag = r.u8(`${name} tag`);
      const variant = byTag.get(tag);
      if (!variant) throw new DecodeError(`unknown ${name} tag ${tag}`);
      return { type: variant[0], ...variant[1].read(r) } as T;
    },
  };
}
