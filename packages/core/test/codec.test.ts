import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  type Action,
  type Block,
  blockCodec,
  blockHeaderCodec,
  bool,
  bytes,
  type Codec,
  DecodeError,
  decode,
  encode,
  list,
  option,
  signedTransactionCodec,
  string,
  type Transaction,
  transactionCodec,
  u64,
  u128,
} from '../src/index.js';

const bytesArb = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
const u64Arb = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const u128Arb = fc.bigInt({ min: 0n, max: (1n << 128n) - 1n });

const actionArb: fc.Arbitrary<Action> = fc.record({
  type: fc.constant('transfer' as const),
  to: bytesArb(20),
  amount: u128Arb,
  memo: fc.uint8Array({ maxLength: 256 }),
});

export const txArb: fc.Arbitrary<Transaction> = fc.record({
  chainId: fc.string({ maxLength: 20 }),
  signer: bytesArb(32),
  nonce: u64Arb,
  fee: u128Arb,
  expiresAt: u64Arb,
  actions: fc.array(actionArb, { maxLength: 4 }),
});

const blockArb: fc.Arbitrary<Block> = fc.record({
  header: fc.record({
    chainId: fc.string({ maxLength: 20 }),
    height: u64Arb,
    time: u64Arb,
    prevHash: bytesArb(32),
    stateRoot: bytesArb(32),
    txRoot: bytesArb(32),
    proposer: bytesArb(32),
    beacon: bytesArb(32),
    vrfProof: fc.uint8Array({ maxLength: 128 }),
    lastCommitHash: bytesArb(32),
  }),
  txs: fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 5 }),
  commit: fc.record({
    height: u64Arb,
    round: fc.nat({ max: 0xffffffff }),
    blockHash: bytesArb(32),
    signatures: fc.array(fc.record({ validator: bytesArb(32), signature: bytesArb(64) }), { maxLength: 3 }),
  }),
});

describe('canonical codec', () => {
  test('integers are fixed-width big-endian', () => {
    assert.deepEqual(encode(u64, 258n), Uint8Array.from([0, 0, 0, 0, 0, 0, 1, 2]));
    assert.equal(encode(u128, 1n).length, 16);
    assert.throws(() => encode(u64, -1n), RangeError);
    assert.throws(() => encode(u64, 1n << 64n), RangeError);
  });

  test('strict decoding: bad bool, bad option tag, trailing bytes, over-long lengths, bad UTF-8', () => {
    assert.throws(() => decode(bool, Uint8Array.from([2])), DecodeError);
    assert.throws(() => decode(option(bool), Uint8Array.from([7])), DecodeError);
    assert.throws(() => decode(bool, Uint8Array.from([1, 0])), /trailing/);
    assert.throws(() => decode(bytes(4), Uint8Array.from([0, 0, 0, 5, 1, 2, 3, 4, 5])), /exceeds maximum/);
    assert.throws(() => decode(list(bool, 10), Uint8Array.from([0, 0, 0, 9, 1])), DecodeError);
    assert.throws(() => decode(string(10), Uint8Array.from([0, 0, 0, 1, 0xff])), /UTF-8/);
  });

  test('property: decode(encode(tx)) = tx and the encoding is stable', () => {
    fc.assert(
      fc.property(txArb, (tx) => {
        const enc = encode(transactionCodec, tx);
        const back = decode(transactionCodec, enc);
        assert.deepEqual(back, structuredClone(tx));
        assert.deepEqual(encode(transactionCodec, back), enc);
      }),
    );
  });

  test('property: decode(encode(block)) = block', () => {
    fc.assert(
      fc.property(blockArb, (block) => {
        assert.deepEqual(decode(blockCodec, encode(blockCodec, block)), structuredClone(block));
      }),
      { numRuns: 200 },
    );
  });

  test('property: random and mutated bytes never crash the decoders, only DecodeError', () => {
    const codecs: Codec<unknown>[] = [transactionCodec, signedTransactionCodec, blockHeaderCodec, blockCodec];
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.integer({ min: 0, max: 3 }), (raw, which) => {
        try {
          decode(codecs[which]!, raw);
        } catch (err) {
          assert.ok(
            err instanceof DecodeError,
            `unexpected ${(err as Error).name}: ${(err as Error).message}`,
          );
        }
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(
        txArb,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
        (tx, edits) => {
          const enc = encode(signedTransactionCodec, { tx, signature: new Uint8Array(64) });
          for (const [pos, b] of edits) enc[pos % enc.length] = b;
          try {
            decode(signedTransactionCodec, enc);
          } catch (err) {
            assert.ok(err instanceof DecodeError);
          }
        },
      ),
    );
  });
});

describe('encode reuses one writer', () => {
  test('nested encodes, a throwing codec and returned buffers never share or corrupt bytes', () => {
    // encode() keeps one scratch writer; a codec that encodes inside its write, or throws half way,
    // must leave every returned array intact and every later encoding exact.
    const inner: Codec<Uint8Array> = {
      name: 'inner',
      write: (w, v) => w.raw(v),
      read: () => new Uint8Array(),
    };
    const nested: Codec<Uint8Array> = {
      name: 'nested',
      write: (w, v) => {
        w.u8(0xaa);
        const a = encode(inner, v);
        const b = encode(inner, Uint8Array.of(...v, 1));
        w.raw(a);
        w.raw(b);
        w.u8(0xbb);
      },
      read: () => new Uint8Array(),
    };
    const throwing: Codec<number> = {
      name: 'throwing',
      write: (w, v) => {
        w.raw(new Uint8Array(v).fill(0xff));
        throw new Error('half way');
      },
      read: () => 0,
    };
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 0, max: 70_000 }), (v, n) => {
        const first = encode(inner, v);
        const copy = Uint8Array.from(first);
        assert.throws(() => encode(throwing, n));
        const out = encode(nested, v);
        assert.deepEqual(out, Uint8Array.of(0xaa, ...v, ...v, 1, 0xbb));
        assert.deepEqual(encode(inner, Uint8Array.of(5)), Uint8Array.of(5));
        assert.deepEqual(first, copy, 'a returned array is never written again');
      }),
      { numRuns: 50 },
    );
  });
});
