/**
 * A block's canonical encoding (`blockCodec`), with the encoding of its transaction list kept per
 * list. A block proposed and committed here is encoded twice with the same transactions and two
 * different commits (the empty one of the proposal the signer file keeps, the decided one the
 * database stores), and the transactions are nearly all of the bytes: a megabyte and ~20 ms of the
 * main thread per encoding for a block of 5,000 transfers.
 *
 * The bytes are the same as `encode(blockCodec, block)` (a struct is its fields' encodings in
 * order; test/block-bytes.test.ts checks it). Kept by the list object itself, as the signer file's
 * encodings are (consensus/privval-store.ts): a block's transaction list is never changed in
 * place once made, and a list of another length than the one encoded is encoded afresh.
 */
import { type Block, blockHeaderCodec, blockTxsCodec, commitCodec, concatBytes, encode } from '@unc/core';

const encodedTxLists = new WeakMap<readonly Uint8Array[], { count: number; bytes: Uint8Array }>();

/** The encoding of a block's transaction list, computed once per list. */
function txListBytes(txs: Uint8Array[]): Uint8Array {
  const kept = encodedTxLists.get(txs);
  if (kept && kept.count === txs.length) return kept.bytes;
  const bytes = encode(blockTxsCodec, txs);
  encodedTxLists.set(txs, { count: txs.length, bytes });
  return bytes;
}

/** `encode(blockCodec, block)`, reusing the transaction list's encoding when it was made before. */
export function encodeBlock(block: Block): Uint8Array {
  return concatBytes(
    encode(blockHeaderCodec, block.header),
    txListBytes(block.txs),
    encode(commitCodec, block.commit),
  );
}
