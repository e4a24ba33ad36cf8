/**
 * The Reader reads integers by index (no DataView, see encoding/codec.ts): every value it returns
 * must be what DataView's big-endian getters return for the same bytes, for arrays that are views
 * at any offset into a larger buffer and for small arrays kept inside the JavaScript heap.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import vm from 'node:vm';
import fc from 'fast-check';
import { bool, type Codec, DecodeError, decode, Reader, u8, u32 } from '../src/index.js';

type Width = 'u8' | 'u16' | 'u32' | 'u64' | 'u128';
const WIDTHS: Record<Width, number> = { u8: 1, u16: 2, u32: 4, u64: 8, u128: 16 };

function viaDataView(view: DataView, at: number, w: Width): number | bigint {
  switch (w) {
    case 'u8':
      return view.getUint8(at);
    case 'u16':
      return view.getUint16(at);
    case 'u32':
      return view.getUint32(at);
    case 'u64':
      return view.getBigUint64(at);
    case 'u128':
      return (view.getBigUint64(at) << 64n) | view.getBigUint64(at + 8);
  }
}

/** Bytes biased towards the edges (0x00, 0xff, 0x80, 0x7f, 0x1f/0x20 at the 2^53 boundary). */
const edgyByte = fc.oneof(
  fc.integer({ min: 0, max: 255 }),
  fc.constantFrom(0, 0xff, 0x80, 0x7f, 0x1f, 0x20, 0x01),
);

describe('codec Reader', () => {
  test('reads every width as the DataView getters do, at any offset of a view', () => {
    fc.assert(
      fc.property(
        fc.array(edgyByte, { minLength: 0, maxLength: 8 }),
        fc.array(fc.constantFrom<Width>('u8', 'u16', 'u32', 'u64', 'u128'), { minLength: 1, maxLength: 12 }),
        fc.array(edgyByte, { minLength: 64, maxLength: 200 }),
        (prefix, widths, body) => {
          const whole = Uint8Array.from([...prefix, ...body]);
          const view = whole.subarray(prefix.length);
          const dv = new DataView(view.buffer, view.byteOffset, view.byteLength);
          const r = new Reader(view);
          let at = 0;
          for (const w of widths) {
            if (at + WIDTHS[w] > view.length) {
              assert.throws(() => r[w](), DecodeError);
              return;
            }
            assert.equal(r[w](), viaDataView(dv, at, w), `${w} at ${at}`);
            at += WIDTHS[w];
          }
          assert.equal(r.remaining, view.length - at);
        },
      ),
      { numRuns: 2000 },
    );
  });

  test('u64 and u128 on both sides of 2^53 and at the extremes', () => {
    const cases = [
      0n,
      1n,
      2n ** 32n - 1n,
      2n ** 32n,
      2n ** 53n - 1n,
      2n ** 53n,
      2n ** 53n + 1n,
      2n ** 64n - 1n,
    ];
    for (const v of cases) {
      const b = new Uint8Array(8);
      new DataView(b.buffer).setBigUint64(0, v);
      assert.equal(new Reader(b).u64(), v);
    }
    const wide = [...cases, 2n ** 64n, 2n ** 64n + 5n, 2n ** 117n + 3n, 2n ** 128n - 1n];
    for (const v of wide) {
      const b = new Uint8Array(16);
      const dv = new DataView(b.buffer);
      dv.setBigUint64(0, v >> 64n);
      dv.setBigUint64(8, v & (2n ** 64n - 1n));
      assert.equal(new Reader(b).u128(), v);
    }
  });

  test('a short input is a DecodeError naming what was read', () => {
    const r = new Reader(new Uint8Array(3));
    assert.throws(() => r.u32('nonce'), /unexpected end of input reading nonce at byte 0/);
    assert.equal(r.u16(), 0);
    assert.throws(() => r.u16('x'), /reading x at byte 2/);
  });

  test('input that is not bytes is refused as before (a DataView needed an ArrayBuffer), other byte views read as bytes', () => {
    // Indexing a plain array or a string "reads" numbers that are no bytes (decode(u32, [0, 0, 0, 1])
    // would be 1, a string NaN); the DataView the Reader had refused them, so must the Reader.
    for (const input of [
      [0, 0, 0, 1],
      '\0\0\0\x01',
      new Uint8Array(4).buffer,
      { length: 4 },
      null,
      undefined,
    ]) {
      for (const codec of [u32, u8, bool] as Codec<unknown>[])
        assert.throws(
          () => decode(codec, input as unknown as Uint8Array),
          DecodeError,
          JSON.stringify(input),
        );
    }
    assert.throws(() => new Reader([1] as unknown as Uint8Array), TypeError);
    // A view of one byte per element was read through the DataView as unsigned bytes: an Int8Array's
    // -1 is 0xff (not a bool 0 or 1), as before.
    assert.throws(
      () => decode(bool, Int8Array.of(-1) as unknown as Uint8Array),
      /bool must be 0 or 1, got 255/,
    );
    assert.equal(decode(u8, Int8Array.of(-1) as unknown as Uint8Array), 255);
    assert.equal(decode(u32, new Int8Array([0, 0, 1, -128]) as unknown as Uint8Array), 0x180);
    assert.equal(decode(u8, Uint8ClampedArray.of(7) as unknown as Uint8Array), 7);
    assert.equal(decode(u32, Buffer.from([0, 0, 0, 9])), 9);
    // A Uint8Array of another realm (a vm context, an iframe) is bytes too.
    const foreign = vm.runInNewContext('new Uint8Array([0, 0, 2, 1])') as Uint8Array;
    assert.ok(!(foreign instanceof Uint8Array));
    assert.equal(decode(u32, foreign), 0x201);
  });
  test('raw refuses a length that is no byte count (negative, fractional, NaN, infinite) with a DecodeError, the cursor unmoved', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 16 }),
        fc.nat({ max: 16 }),
        fc.oneof(
          fc.integer({ min: Number.MIN_SAFE_INTEGER, max: -1 }),
          fc.double({ noInteger: true }),
          fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0.5, 0.5, 2 ** 53),
        ),
        (bytes, skip, n) => {
          const r = new Reader(bytes);
          const at = Math.min(skip, bytes.length);
          r.raw(at);
          assert.throws(
            () => r.raw(n, 'blob'),
            (e: unknown) => e instanceof DecodeError && /invalid length .* reading blob/.test(e.message),
          );
          // Nothing read: the rest of the input is still there, from the same byte.
          assert.equal(r.remaining, bytes.length - at);
          assert.deepEqual(r.raw(r.remaining), bytes.slice(at));
        },
      ),
    );
  });
});
