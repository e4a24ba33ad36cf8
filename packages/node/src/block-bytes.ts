/**
 * A block's canonical encoding (`blockCodec`), with the encoding of its transaction list kept per
 * list. A block proposed and committed here is encoded twice with the same transactions and two
 * different commits (the empty one of the proposal the signer file keeps, the decided one the
 * database stores), and the transactions are nearly all of the bytes: a megabyte and ~20 ms of the
 * main thread per encoding for a block of 5,000 transfers.
 *
 * The bytes are the same as `encode(blockCodec, block)` (a struct is its fields' encodings in
 * order; test/block-bytes.test.ts checks it). Kept by the list object itself, as the signer file's
 * encodings are (consensus/privval-store.ts). A block's transaction list is not changed in place
 * once made, but the kept encoding does not rely on it: it is used only while the list still holds
 * the very same byte arrays in the same order (a comparison of references, microseconds for a
 * large block), so a list grown, shrunk or with an element replaced is encoded afresh rather than
 * stored under bytes that no longer match its header.
 */
import { type Block, blockHeaderCodec, blockTxsCodec, commitCodec, concatBytes, encode } from '@unc/core';

interface EncodedTxList {
  /** The list's elements when it was encoded (a shallow copy: references, not bytes). */
  elements: readonly Uint8Array[];
  bytes: Uint8Array;
}

const encodedTxLists = new WeakMap<readonly Uint8Array[], EncodedTxList>();

function sameElements(a: readonly Uint8Array[], b: readonly Uint8Array[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The encoding of a block's transaction list, computed once per list while it is unchanged. */
function txListBytes(txs: Uint8Array[]): Uint8Array {
  const kept = encodedTxLists.get(txs);
  if (kept && sameElements(kept.elements, txs)) return kept.bytes;
  const bytes = encode(blockTxsCodec, txs);
  encodedTxLists.set(txs, { elements: txs.slice(), bytes });
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
