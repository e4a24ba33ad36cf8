/**
 * The trie's two hash functions, byte-for-byte equal to taggedHash('UNC/smt-leaf', key, valueHash)
 * and taggedHash('UNC/smt-node', left, right) (a test checks this).
 *
 * Inside the trie, keys, values and hashes are "binary strings": one char per byte, codes 0-255.
 * A 32-byte hash held that way is a single flat V8 string of about 48 bytes that the GC never has
 * to trace into, whereas a Uint8Array(32) is several heap objects and about four times the memory;
 * with a million keys that decides whether the GC barely notices the trie or spends most of its
 * time walking it. It also makes hashing cheaper: crypto.hash can return its digest directly as
 * such a string, while returning a Buffer allocates a backing store that costs more than the
 * SHA-256 itself, and taggedHash adds a Hash object per call on top. The scratch buffers are safe
 * to share because crypto.hash is synchronous.
 */
import { utf8 } from '../bytes.js';
import { bytesToLatin1, scratch, sha256Latin1, writeLatin1 } from '../platform/node.js';

function scratchFor(tag: string): Uint8Array {
  const t = utf8(tag);
  const buf = scratch(1 + t.length + 64);
  buf[0] = t.length;
  buf.set(t, 1);
  return buf;
}

const LEAF_SCRATCH = scratchFor('UNC/smt-leaf');
const NODE_SCRATCH = scratchFor('UNC/smt-node');
const LEAF_BODY = LEAF_SCRATCH.length - 64;
const NODE_BODY = NODE_SCRATCH.length - 64;
const PACK_SCRATCH = scratch(64);

let hashes = 0;

/** The hash of an empty subtree, as a binary string. */
export const EMPTY_BIN = '\0'.repeat(32);

/** Bytes to a binary string. */
export function toBin(bytes: Uint8Array): string {
  PACK_SCRATCH.set(bytes);
  return bytesToLatin1(PACK_SCRATCH, 0, bytes.length);
}

/** key ‖ valueHash (or 32 zero bytes when valueHash is null) as one 64-char binary string. */
export function packEntry(key: Uint8Array, valueHash: Uint8Array | null): string {
  PACK_SCRATCH.set(key);
  if (valueHash === null) PACK_SCRATCH.fill(0, 32);
  else PACK_SCRATCH.set(valueHash, 32);
  return bytesToLatin1(PACK_SCRATCH, 0, 64);
}

/** Chars [from, to) of a binary string as bytes. */
export function fromBin(bin: string, from = 0, to = bin.length): Uint8Array {
  const out = new Uint8Array(to - from);
  for (let i = from; i < to; i++) out[i - from] = bin.charCodeAt(i);
  return out;
}

function put(buf: Uint8Array, at: number, part: string | Uint8Array): void {
  if (typeof part === 'string') writeLatin1(buf, at, part, 32);
  else buf.set(part, at);
}

/** Leaf hash of `kv` = key ‖ valueHash, the packed form trie leaves store. */
export function leafHashBin(kv: string): string {
  hashes++;
  writeLatin1(LEAF_SCRATCH, LEAF_BODY, kv, 64);
  return sha256Latin1(LEAF_SCRATCH);
}

export function nodeHashBin(left: string | Uint8Array, right: string | Uint8Array): string {
  hashes++;
  put(NODE_SCRATCH, NODE_BODY, left);
  put(NODE_SCRATCH, NODE_BODY + 32, right);
  return sha256Latin1(NODE_SCRATCH);
}

export function trieLeafHash(key: Uint8Array, valueHash: Uint8Array): Uint8Array {
  hashes++;
  LEAF_SCRATCH.set(key, LEAF_BODY);
  LEAF_SCRATCH.set(valueHash, LEAF_BODY + 32);
  return fromBin(sha256Latin1(LEAF_SCRATCH));
}

export function trieNodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  return fromBin(nodeHashBin(left, right));
}

/** How many trie hashes this process has computed; the benchmark reads it to count work per update. */
export function trieHashCount(): number {
  return hashes;
}
