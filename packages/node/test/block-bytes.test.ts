import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type Block,
  blockCodec,
  blockTxsCodec,
  type Commit,
  decode,
  encode,
  MAX_BLOCK_TXS,
  MAX_TX_BYTES,
} from '@unc/core';
import fc from 'fast-check';
import { encodeBlock } from '../src/block-bytes.js';

const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });

const commitArb: fc.Arbitrary<Commit> = fc.record({
  height: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  round: fc.integer({ min: 0, max: 1000 }),
  blockHash: bytes(32),
  signatures: fc.array(fc.record({ validator: bytes(32), signature: bytes(64) }), { maxLength: 4 }),
});

const blockArb: fc.Arbitrary<Block> = fc.record({
  header: fc.record({
    chainId: fc.string({ maxLength: 20 }),
    height: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
    time: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
    prevHash: bytes(32),
    stateRoot: bytes(32),
    txRoot: bytes(32),
    proposer: bytes(32),
    beacon: bytes(32),
    vrfProof: fc.uint8Array({ maxLength: 80 }),
    lastCommitHash: bytes(32),
  }),
  txs: fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 40 }),
  commit: commitArb,
});

test('encodeBlock gives the bytes of blockCodec, for any block and any commit on the same transactions', () => {
  fc.assert(
    fc.property(blockArb, commitArb, (block, otherCommit) => {
      assert.deepEqual(encodeBlock(block), encode(blockCodec, block));
      // The same transaction list under another commit (a proposal, then the decided block):
      // the kept encoding of the list must not carry the first commit along.
      const decided = { ...block, commit: otherCommit };
      assert.deepEqual(encodeBlock(decided), encode(blockCodec, decided));
      // And they decode (the bytes are a block, whatever the arbitrary's object prototypes).
      assert.deepEqual(encode(blockCodec, decode(blockCodec, encodeBlock(decided))), encodeBlock(decided));
    }),
    { numRuns: 200 },
  );
});

test('a transaction list that grew after it was encoded is encoded afresh', () => {
  const block = fc.sample(blockArb, { numRuns: 1, seed: 7 })[0]!;
  encodeBlock(block);
  block.txs.push(new Uint8Array([1, 2, 3]));
  assert.deepEqual(encodeBlock(block), encode(blockCodec, block));
});

test('a transaction list with an element replaced in place (same length) is encoded afresh', () => {
  fc.assert(
    fc.property(
      blockArb.filter((b) => b.txs.length > 0),
      fc.nat(),
      fc.uint8Array({ maxLength: 300 }),
      (block, at, replacement) => {
        encodeBlock(block);
        block.txs[at % block.txs.length] = replacement;
        // The stored bytes must be the block as it is now, never the list as it was encoded.
        assert.deepEqual(encodeBlock(block), encode(blockCodec, block));
      },
    ),
    { numRuns: 100 },
  );
});

test('the list written in place: views at an offset, shared memory, empty and largest transactions; past a limit the codec error', () => {
  // The list is written into one array of its exact size (block-bytes.ts): what the codec's writer
  // made of views into a larger (or shared) buffer, of empty transactions and of one of the
  // largest size, with no byte short or left over.
  const block = fc.sample(blockArb, { numRuns: 1, seed: 11 })[0]!;
  const whole = new Uint8Array(MAX_TX_BYTES + 9).map((_, i) => (i * 31 + 7) & 0xff);
  const shared = new Uint8Array(new SharedArrayBuffer(40)).map((_, i) => 200 - i);
  const lists: Uint8Array[][] = [
    [],
    [new Uint8Array(0)],
    [whole.subarray(3, 3), whole.subarray(5, 77), shared.subarray(1, 30), Buffer.from([1, 2])],
    [whole.subarray(9, 9 + MAX_TX_BYTES), new Uint8Array(0), whole.subarray(0, 1)],
  ];
  for (const txs of lists) {
    const b = { ...block, txs };
    const bytes = encodeBlock(b);
    assert.deepEqual(bytes, encode(blockCodec, b));
    assert.deepEqual(
      decode(blockCodec, bytes).txs,
      txs.map((t) => Uint8Array.from(t)),
    );
  }
  // Refused as the codec refuses them (its error, for the list alone as before).
  const refused: unknown[] = [
    [whole.subarray(0, MAX_TX_BYTES + 1)],
    [new Uint8Array(1), [1, 2] as unknown],
    // biome-ignore lint/suspicious/noSparseArray: a hole is not a transaction
    [new Uint8Array(1), , new Uint8Array(1)],
    new Uint8Array(3),
    { length: 1, 0: new Uint8Array(1) },
  ];
  const tooMany = new Array<Uint8Array>(MAX_BLOCK_TXS + 1).fill(new Uint8Array(0));
  refused.push(tooMany);
  for (const txs of refused) {
    const b = { ...block, txs: txs as Uint8Array[] };
    let want: unknown;
    try {
      encode(blockTxsCodec, txs as Uint8Array[]);
    } catch (err) {
      want = err;
    }
    assert.ok(want instanceof Error);
    assert.throws(
      () => encodeBlock(b),
      (err: Error) =>
        err.constructor === (want as Error).constructor && err.message === (want as Error).message,
    );
  }
});
