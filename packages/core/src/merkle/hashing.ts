/**
 * The trie's two hash functions, byte-for-byte equal to taggedHash('UNC/smt-leaf', key, valueHash)
 * and taggedHash('UNC/smt-node', left, right) (a test checks this).
 *
 * They exist separately because hashing dominates the trie's cost: taggedHash builds a Hash object
 * per call, while the one-shot crypto.hash over a preallocated buffer that already holds the tag
 * prefix is about a third faster on 77-byte inputs. The scratch buffers are safe to share because
 * crypto.hash is synchronous.
 */
import { hash } from 'node:crypto';
import { utf8 } from '../bytes.js';

function scratchFor(tag: string): Uint8Array {
  const t = utf8(tag);
  const buf = new Uint8Array(1 + t.length + 64);
  buf[0] = t.length;
  buf.set(t, 1);
  return buf;
}

const LEAF_SCRATCH = scratchFor('UNC/smt-leaf');
const NODE_SCRATCH = scratchFor('UNC/smt-node');
const LEAF_BODY = LEAF_SCRATCH.length - 64;
const NODE_BODY = NODE_SCRATCH.length - 64;

let hashes = 0;

function digest(input: Uint8Array): Uint8Array {
  hashes++;
  // Copying into a fresh 32-byte array keeps it on the V8 heap; the Buffer crypto.hash returns owns
  // an off-heap backing store, which costs far more memory and GC work per cached node hash.
  return new Uint8Array(hash('sha256', input, 'buffer'));
}

/** The hash of an empty subtree. Never handed out, so nothing can mutate it. */
export const EMPTY_HASH: Uint8Array = new Uint8Array(32);

export function trieLeafHash(key: Uint8Array, valueHash: Uint8Array): Uint8Array {
  LEAF_SCRATCH.set(key, LEAF_BODY);
  LEAF_SCRATCH.set(valueHash, LEAF_BODY + 32);
  return digest(LEAF_SCRATCH);
}

/** Leaf hash of `kv` = key ‖ valueHash, the packed form trie leaves store. */
export function packedLeafHash(kv: Uint8Array): Uint8Array {
  LEAF_SCRATCH.set(kv, LEAF_BODY);
  return digest(LEAF_SCRATCH);
}

export function trieNodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  NODE_SCRATCH.set(left, NODE_BODY);
  NODE_SCRATCH.set(right, NODE_BODY + 32);
  return digest(NODE_SCRATCH);
}

/** How many trie hashes this process has computed; the benchmark reads it to count work per update. */
export function trieHashCount(): number {
  return hashes;
}
