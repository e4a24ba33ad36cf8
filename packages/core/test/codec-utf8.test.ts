/**
 * Strings have exactly one encoding: the decoder is fatal on invalid UTF-8 and keeps a leading
 * byte order mark (a decoder that strips it reads "\uFEFFunc-1" as "unc-1", so one transaction
 * had two encodings, the second with another id and another signature).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  DecodeError,
  decode,
  encode,
  signedTransactionCodec,
  string,
  type Transaction,
  toHex,
  transactionCodec,
  transactionHash,
} from '../src/index.js';

const tx = (chainId: string): Transaction => ({
  chainId,
  signer: new Uint8Array(32).fill(3),
  nonce: 1n,
  fee: 10n,
  expiresAt: 100n,
  actions: [],
});

describe('UTF-8 strings: one value, one encoding', () => {
  test('a BOM-prefixed chain id decodes to itself, not to the chain id without it', () => {
    const plain = encode(transactionCodec, tx('unc-test-1'));
    const bom = encode(transactionCodec, tx('\uFEFFunc-test-1'));
    assert.notDeepEqual(bom, plain);
    assert.equal(decode(transactionCodec, bom).chainId, '\uFEFFunc-test-1');
    assert.equal(decode(transactionCodec, plain).chainId, 'unc-test-1');
    // So the two are two transactions with two ids, each with one encoding.
    assert.deepEqual(encode(transactionCodec, decode(transactionCodec, bom)), bom);
    assert.notEqual(
      toHex(transactionHash(decode(transactionCodec, bom))),
      toHex(transactionHash(tx('unc-test-1'))),
    );
  });

  test('BOMs anywhere, and two of them, survive the round trip', () => {
    const codec = string(64);
    for (const s of ['\uFEFF', '\uFEFF\uFEFF', 'a\uFEFF', '\uFEFFa\uFEFFb']) {
      assert.equal(decode(codec, encode(codec, s)), s);
    }
  });

  test('decode(encode(s)) = s for every well-formed string, BOM-prefixed or not', () => {
    const codec = string(1024);
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 40 }), fc.boolean(), (s, withBom) => {
        const value = withBom ? `\uFEFF${s}` : s;
        assert.equal(decode(codec, encode(codec, value)), value);
      }),
      { numRuns: 500 },
    );
  });

  test('any bytes either fail to decode or are the one encoding of what they decode to', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), fc.boolean(), (body, withBom) => {
        const content = withBom ? Uint8Array.from([0xef, 0xbb, 0xbf, ...body]) : body;
        const raw = new Uint8Array(4 + content.length);
        new DataView(raw.buffer).setUint32(0, content.length);
        raw.set(content, 4);
        let value: string;
        try {
          value = decode(string(64), raw);
        } catch (err) {
          assert.ok(err instanceof DecodeError);
          return;
        }
        assert.deepEqual(encode(string(64), value), raw);
      }),
      { numRuns: 2000 },
    );
  });

  test('a signed transaction re-encodes to the same bytes it was decoded from', () => {
    const raw = encode(signedTransactionCodec, { tx: tx('\uFEFFunc-test-1'), signature: new Uint8Array(64) });
    assert.deepEqual(encode(signedTransactionCodec, decode(signedTransactionCodec, raw)), raw);
  });

  test('invalid UTF-8 is a DecodeError: overlong, encoded surrogates, truncated, stray continuation', () => {
    for (const content of [
      [0xc0, 0x80],
      [0xed, 0xa0, 0x80],
      [0xe2, 0x82],
      [0x80],
      [0xf8, 0x88, 0x80, 0x80, 0x80],
    ]) {
      const raw = Uint8Array.from([0, 0, 0, content.length, ...content]);
      assert.throws(() => decode(string(16), raw), DecodeError, toHex(Uint8Array.from(content)));
    }
  });

  test('a lone surrogate has no UTF-8 encoding and is refused, not written as U+FFFD', () => {
    for (const s of ['\uD800', 'a\uDC00', '\uDBFFx']) {
      assert.throws(() => encode(string(16), s), TypeError);
    }
    // A surrogate pair is one code point and is fine.
    assert.equal(decode(string(16), encode(string(16), '\uD83D\uDE00')), '\uD83D\uDE00');
  });
});
