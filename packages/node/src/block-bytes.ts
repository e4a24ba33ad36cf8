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
import {
  type Block,
  blockHeaderCodec,
  blockTxsCodec,
  commitCodec,
  concatBytes,
  encode,
  MAX_BLOCK_TXS,
  MAX_TX_BYTES,
} from '@unc/core';

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
  const bytes = txListEncoding(txs);
  encodedTxLists.set(txs, { elements: txs.slice(), bytes });
  return bytes;
}

/**
 * `encode(blockTxsCodec, txs)` written into one array of the exact size: the codec's writer
 * starts at 256 bytes and doubles, so a megabyte list took a dozen fresh buffers and copies (fresh
 * memory the size of a block, each page touched for the first time). A list the codec would
 * refuse goes to the codec, for its error.
 */
function txListEncoding(txs: Uint8Array[]): Uint8Array {
  if (!Array.isArray(txs) || txs.length > MAX_BLOCK_TXS) return encode(blockTxsCodec, txs);
  let size = 4;
  for (const tx of txs) {
    if (!(tx instanceof Uint8Array) || tx.length > MAX_TX_BYTES) return encode(blockTxsCodec, txs);
    size += 4 + tx.length;
  }
  const out = new Uint8Array(size);
  let at = writeU32(out, 0, txs.length);
  for (const tx of txs) {
    at = writeU32(out, at, tx.length);
    out.set(tx, at);
    at += tx.length;
  }
  return out;
}

/** Big-endian u32 at `at` (the codec's length prefix); the offset after it. */
export function writeU32(out: Uint8Array, at: number, v: number): number {
  out[at] = v >>> 24;
  out[at + 1] = (v >>> 16) & 0xff;
  out[at + 2] = (v >>> 8) & 0xff;
  out[at + 3] = v & 0xff;
  return at + 4;
}

/** The three encodings whose concatenation is `encode(blockCodec, block)`: header, transactions, commit. */
export function blockParts(block: Block): [Uint8Array, Uint8Array, Uint8Array] {
  return [encode(blockHeaderCodec, block.header), txListBytes(block.txs), encode(commitCodec, block.commit)];
}

/** `encode(blockCodec, block)`, reusing the transaction list's encoding when it was made before. */
export function encodeBlock(block: Block): Uint8Array {
  return concatBytes(...blockParts(block));
}
