/**
 * The authenticated state trie that every block header commits to: a compressed sparse Merkle
 * trie over 256-bit keys.
 *
 * What is hashed (consensus-critical). Think of the full binary tree of depth 256 in which key k
 * sits at the leaf reached by reading k's bits most-significant first (bit 0 = top bit of byte 0
 * picks the first branch; 0 goes left). The hash H(S, d) of the subtree at depth d holding the
 * entries S is
 *   - 32 zero bytes                                          if S is empty,
 *   - taggedHash('UNC/smt-leaf', key, valueHash)             if S holds exactly one entry,
 *   - taggedHash('UNC/smt-node', H(S0, d+1), H(S1, d+1))     otherwise (S0/S1: bit d = 0/1),
 * and the root is H(all, 0). So a lone leaf is lifted to the highest level where it is alone (a
 * one-entry trie's root is its leaf hash), and the node hash exists at every level where a subtree
 * holds two or more entries, even where all of them lie on one side: there the other input is the
 * zero hash, and a proof passing by shows a zero sibling.
 *
 * Why those "pass-by" levels are hashed rather than skipped: the node hash does not say at which
 * bit it branches. If levels with one empty side were skipped (a Patricia hash), a prover could
 * claim a different branch bit and steer a key's path into the wrong subtree, ending at some other
 * leaf and "proving" a present key absent. Hashing every level pins the path to the key's own bits,
 * so the depth of a proof is fixed by the data, not chosen by the prover. (Putting the branch bit
 * into the node hash would also fix this, but it is not the node hash defined above.) For hashed
 * keys pass-by levels are few, about 0.44 per entry and nearly all just above the last two or three
 * leaves of a path, so a full build computes about 2.44 hashes per entry instead of 2.
 *
 * In memory only branch points are stored (radix compression): a Branch is where both sides are
 * non-empty, at bit `bit`. Its cached hash is its subtree's hash at the level where it hangs from
 * its parent (parent.bit + 1, or 0 at the root), i.e. including the pass-by levels above it, so a
 * parent never rehashes an unchanged child's pass-by levels. A node is never re-hung at another
 * level; a structural change that moves it makes a new object. Keys, values and hashes are held
 * as binary strings rather than Uint8Arrays to keep a million-entry trie small (see hashing.ts).
 *
 * Proofs. `siblings[j]` is the hash of the side not taken at depth j, from the root down; the
 * path ends at depth d = siblings.length, either in a leaf (the key's own, or for non-membership
 * whichever other key's leaf holds that subtree alone) or in an empty subtree. The verifier folds
 * the end hash up along the key's bits and compares with the root, and also checks:
 *   - d ≤ 256, and an empty end lies above depth 256 (nothing can be alone below bit 255);
 *   - a leaf end's key agrees with the queried key on the first d bits (it really is on the path);
 *   - membership needs the leaf end with the same key and value hash; non-membership needs an empty
 *     end or a leaf end holding a different key;
 *   - the deepest sibling is not the zero hash: an empty or single-leaf subtree beside an empty one
 *     would have been lifted, so such a proof can only describe a non-canonical tree.
 * With the leaf and node tags separating the two hash roles, a proof that folds to an honest root
 * must retrace that trie's real path for the key: ending higher would need a node hash equal to a
 * leaf or zero hash, ending lower would need a leaf hash equal to a node hash. Hence, short of a
 * SHA-256 collision, for each honest root and key exactly one proof verifies, and it cannot claim
 * an empty end where a leaf sits, or another key's leaf where the key's own leaf sits.
 *
 * Updates are batched: changes are sorted by key, deduplicated (the last change for a key wins),
 * and merged into the trie in one recursive descent that copies only the touched paths and hashes
 * each new node once. Unchanged subtrees, including those a no-op change reaches, keep their
 * objects and cached hashes, so the old trie stays valid and shares everything else.
 */
import { bytesN, type Codec, list, option, struct } from '../encoding/codec.js';
import { EMPTY_BIN, fromBin, leafHashBin, nodeHashBin, packEntry, toBin } from './hashing.js';

export const TRIE_KEY_BYTES = 32;
/** Bits in a key, hence the deepest a leaf can sit and the most siblings a proof can have. */
export const TRIE_MAX_DEPTH = 256;

/** One change in a batch: set `key` to `valueHash`, or delete it when `valueHash` is null. */
export interface TrieChange {
  readonly key: Uint8Array;
  readonly valueHash: Uint8Array | null;
}

export interface TrieEntry {
  readonly key: Uint8Array;
  readonly valueHash: Uint8Array;
}

export interface MerkleProof {
  /** Hashes of the sides not taken, from the root down; zero hashes where the path passes an empty side. */
  readonly siblings: Uint8Array[];
  /** The leaf where the path ends (for non-membership possibly another key's), or null for an empty end. */
  readonly leaf: TrieEntry | null;
}

const hash32 = bytesN(32, 'hash');

export const merkleProofCodec: Codec<MerkleProof> = struct<MerkleProof>('MerkleProof', {
  siblings: list(hash32, TRIE_MAX_DEPTH, 'MerkleProof.siblings'),
  leaf: option(
    struct<TrieEntry>('MerkleProof.leaf', { key: bytesN(32, 'key'), valueHash: bytesN(32, 'valueHash') }),
  ),
});

// Nodes hold binary strings (see hashing.ts): a leaf's `kv` is key ‖ valueHash in one 64-char
// string, which is also exactly its hash input, and every `hash` is a 32-char string.
class Leaf {
  constructor(
    readonly kv: string,
    readonly hash: string,
  ) {}
}

class Branch {
  constructor(
    /** Depth at which both sides are non-empty; keys with bit `bit` = 0 are on the left. */
    readonly bit: number,
    readonly left: TrieNode,
    readonly right: TrieNode,
    /** The subtree's hash at the level where this node hangs (see the header comment). */
    readonly hash: string,
  ) {}
}

type TrieNode = Leaf | Branch;

function bitOf(key: string, i: number): number {
  return (key.charCodeAt(i >>> 3) >>> (7 - (i & 7))) & 1;
}

function bitOfBytes(key: Uint8Array, i: number): number {
  return (key[i >>> 3]! >>> (7 - (i & 7))) & 1;
}

/** The first bit at which the keys at the start of `a` and `b` differ; 256 when equal. */
function firstDiffBit(a: string, b: string): number {
  for (let i = 0; i < 32; i++) {
    const x = a.charCodeAt(i) ^ b.charCodeAt(i);
    if (x !== 0) return i * 8 + Math.clz32(x) - 24;
  }
  return 256;
}

function firstDiffBitBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < 32; i++) {
    const x = a[i]! ^ b[i]!;
    if (x !== 0) return i * 8 + Math.clz32(x) - 24;
  }
  return 256;
}

/** Compares the keys at the start of two packed entries. */
function compareKeys(a: string, b: string): number {
  for (let i = 0; i < 32; i++) {
    const d = a.charCodeAt(i) - b.charCodeAt(i);
    if (d !== 0) return d;
  }
  return 0;
}

function sameValue(a: string, b: string): boolean {
  for (let i = 32; i < 64; i++) if (a.charCodeAt(i) !== b.charCodeAt(i)) return false;
  return true;
}

function keyMatches(kv: string, key: Uint8Array): boolean {
  for (let i = 0; i < 32; i++) if (kv.charCodeAt(i) !== key[i]) return false;
  return true;
}

function isHash(x: unknown): x is Uint8Array {
  return x instanceof Uint8Array && x.length === 32;
}

function isZero(h: Uint8Array): boolean {
  for (let i = 0; i < h.length; i++) if (h[i] !== 0) return false;
  return true;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < 32; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Any key under `node`: all of them agree above the node's branch bit, which is what callers read. */
function someKey(node: TrieNode): string {
  while (node instanceof Branch) node = node.left;
  return node.kv;
}

/** Lifts `h`, the hash at depth `from` of a subtree holding `key`, to depth `to` ≤ `from`. */
function liftHash(h: string, key: string, from: number, to: number): string {
  for (let j = from - 1; j >= to; j--) {
    h = bitOf(key, j) === 0 ? nodeHashBin(h, EMPTY_BIN) : nodeHashBin(EMPTY_BIN, h);
  }
  return h;
}

/** A branch at `bit` over `left`/`right` (both hanging at bit + 1), hanging at depth `top`. */
function makeBranch(bit: number, left: TrieNode, right: TrieNode, top: number): Branch {
  const own = nodeHashBin(left.hash, right.hash);
  return new Branch(bit, left, right, bit > top ? liftHash(own, someKey(left), bit, top) : own);
}

/** `node`, which hangs at depth `from`, re-hung at depth `to`. */
function rehang(node: TrieNode, from: number, to: number): TrieNode {
  if (from === to || node instanceof Leaf) return node;
  if (to < from) {
    return new Branch(node.bit, node.left, node.right, liftHash(node.hash, someKey(node), from, to));
  }
  return makeBranch(node.bit, node.left, node.right, to);
}

/** Builds the subtree, hanging at `top`, of sorted distinct leaves[lo, hi) that agree on bits [0, top). */
function build(leaves: Leaf[], lo: number, hi: number, top: number): TrieNode | null {
  if (hi - lo <= 1) return hi > lo ? leaves[lo]! : null;
  const bit = firstDiffBit(leaves[lo]!.kv, leaves[hi - 1]!.kv);
  let a = lo + 1;
  let b = hi - 1;
  while (a < b) {
    const m = (a + b) >>> 1;
    if (bitOf(leaves[m]!.kv, bit) === 0) a = m + 1;
    else b = m;
  }
  return makeBranch(bit, build(leaves, lo, a, bit + 1)!, build(leaves, a, hi, bit + 1)!, top);
}

/** One batch of sorted, distinct-key changes being merged into a trie. */
class Batch {
  /** Net change in the number of entries. */
  delta = 0;

  constructor(
    /** key ‖ valueHash per change (the value half is zeros for deletes); becomes the new leaf's `kv`. */
    private readonly kvs: string[],
    private readonly deletes: Uint8Array,
  ) {}

  /** First index in [lo, hi) whose key has bit `bit` set; the range agrees on all bits above it. */
  private split(lo: number, hi: number, bit: number): number {
    while (lo < hi) {
      const m = (lo + hi) >>> 1;
      if (bitOf(this.kvs[m]!, bit) === 0) lo = m + 1;
      else hi = m;
    }
    return lo;
  }

  private hasInsert(lo: number, hi: number): boolean {
    for (let i = lo; i < hi; i++) if (this.deletes[i] === 0) return true;
    return false;
  }

  private insertedLeaves(lo: number, hi: number): Leaf[] {
    const leaves: Leaf[] = [];
    for (let i = lo; i < hi; i++) if (this.deletes[i] === 0) leaves.push(this.newLeaf(i));
    return leaves;
  }

  private newLeaf(i: number): Leaf {
    const kv = this.kvs[i]!;
    this.delta++;
    return new Leaf(kv, leafHashBin(kv));
  }

  /**
   * Applies changes [lo, hi) to `node`, which hangs at depth `nodeTop`; the result hangs at `top`
   * (deeper than `nodeTop` when new entries branch off above the node). The changes and the node's
   * keys agree on bits [0, top).
   */
  apply(node: TrieNode | null, nodeTop: number, top: number, lo: number, hi: number): TrieNode | null {
    if (lo === hi) return node === null ? null : rehang(node, nodeTop, top);
    if (node === null) {
      const leaves = this.insertedLeaves(lo, hi);
      return build(leaves, 0, leaves.length, top);
    }
    if (node instanceof Leaf) return this.applyToLeaf(node, top, lo, hi);
    return this.applyToBranch(node, nodeTop, top, lo, hi);
  }

  private applyToLeaf(leaf: Leaf, top: number, lo: number, hi: number): TrieNode | null {
    const merged: Leaf[] = [];
    let placed = false;
    let changed = false;
    for (let i = lo; i < hi; i++) {
      const kv = this.kvs[i]!;
      const c = placed ? 1 : compareKeys(kv, leaf.kv);
      if (c > 0 && !placed) {
        merged.push(leaf);
        placed = true;
      }
      if (c === 0) {
        placed = true;
        if (this.deletes[i] === 1) {
          this.delta--;
          changed = true;
        } else if (sameValue(kv, leaf.kv)) {
          merged.push(leaf);
        } else {
          merged.push(new Leaf(kv, leafHashBin(kv)));
          changed = true;
        }
      } else if (this.deletes[i] === 0) {
        merged.push(this.newLeaf(i));
        changed = true;
      }
    }
    if (!changed) return leaf;
    if (!placed) merged.push(leaf);
    return build(merged, 0, merged.length, top);
  }

  private applyToBranch(node: Branch, nodeTop: number, top: number, lo: number, hi: number): TrieNode | null {
    const bit = node.bit;
    if (bit > top) {
      // Pass-by levels: changes that leave the node's prefix are either deletes of absent keys
      // (ignored) or inserts that force a new branch at the level where they leave.
      const prefix = someKey(node);
      for (let j = top; j < bit && lo < hi; j++) {
        const mid = this.split(lo, hi, j);
        const side = bitOf(prefix, j);
        if (side === 0 ? this.hasInsert(mid, hi) : this.hasInsert(lo, mid)) {
          const leaves = side === 0 ? this.insertedLeaves(mid, hi) : this.insertedLeaves(lo, mid);
          const other = build(leaves, 0, leaves.length, j + 1)!;
          const same =
            side === 0
              ? this.apply(node, nodeTop, j + 1, lo, mid)
              : this.apply(node, nodeTop, j + 1, mid, hi);
          if (same === null) return rehang(other, j + 1, top);
          return side === 0 ? makeBranch(j, same, other, top) : makeBranch(j, other, same, top);
        }
        if (side === 0) hi = mid;
        else lo = mid;
      }
      if (lo === hi) return rehang(node, nodeTop, top);
    }
    const mid = this.split(lo, hi, bit);
    const left = lo < mid ? this.apply(node.left, bit + 1, bit + 1, lo, mid) : node.left;
    const right = mid < hi ? this.apply(node.right, bit + 1, bit + 1, mid, hi) : node.right;
    if (left === node.left && right === node.right) return rehang(node, nodeTop, top);
    if (left !== null && right !== null) return makeBranch(bit, left, right, top);
    const only = left ?? right;
    return only === null ? null : rehang(only, bit + 1, top);
  }
}

interface PendingChange {
  kv: string;
  del: boolean;
  /** The key's first four bytes, so most comparisons in the sort need no char loop. */
  head: number;
  seq: number;
}

function byKeyThenSeq(a: PendingChange, b: PendingChange): number {
  return a.head - b.head || compareKeys(a.kv, b.kv) || a.seq - b.seq;
}

function entryOf(kv: string): TrieEntry {
  return { key: fromBin(kv, 0, 32), valueHash: fromBin(kv, 32, 64) };
}

/** An immutable compressed sparse Merkle trie; `update` returns a new trie sharing unchanged nodes. */
export class MerkleTrie {
  private static readonly EMPTY = new MerkleTrie(null, 0);

  private constructor(
    private readonly top: TrieNode | null,
    private readonly count: number,
  ) {}

  static empty(): MerkleTrie {
    return MerkleTrie.EMPTY;
  }

  get root(): Uint8Array {
    return this.top === null ? new Uint8Array(32) : fromBin(this.top.hash);
  }

  get size(): number {
    return this.count;
  }

  getValueHash(key: Uint8Array): Uint8Array | null {
    checkKey(key);
    let node = this.top;
    while (node instanceof Branch) node = bitOfBytes(key, node.bit) === 0 ? node.left : node.right;
    return node !== null && keyMatches(node.kv, key) ? fromBin(node.kv, 32, 64) : null;
  }

  /**
   * Applies a batch of changes: a null valueHash deletes the key (a no-op when absent), and the last
   * change for a key wins. Returns this trie itself when nothing changes.
   */
  update(changes: Iterable<TrieChange>): MerkleTrie {
    const pending: PendingChange[] = [];
    let seq = 0;
    for (const change of changes) {
      const { key, valueHash } = change;
      checkKey(key);
      if (valueHash !== null && !isHash(valueHash)) throw new RangeError('trie value hash must be 32 bytes');
      // Packing copies at once: an iterable may hand out one buffer and overwrite it between changes.
      const head = ((key[0]! << 24) | (key[1]! << 16) | (key[2]! << 8) | key[3]!) >>> 0;
      pending.push({ kv: packEntry(key, valueHash), del: valueHash === null, head, seq: seq++ });
    }
    if (pending.length === 0) return this;
    pending.sort(byKeyThenSeq);
    const kvs: string[] = [];
    const deletes = new Uint8Array(pending.length);
    for (let i = 0; i < pending.length; i++) {
      const p = pending[i]!;
      const next = pending[i + 1];
      if (next !== undefined && next.head === p.head && compareKeys(next.kv, p.kv) === 0) continue;
      if (p.del) deletes[kvs.length] = 1;
      kvs.push(p.kv);
    }
    const batch = new Batch(kvs, deletes);
    const top = batch.apply(this.top, 0, 0, 0, kvs.length);
    if (top === this.top) return this;
    return top === null ? MerkleTrie.EMPTY : new MerkleTrie(top, this.count + batch.delta);
  }

  /** A proof of `key`'s value hash, or of its absence; check it with `verifyProof`. */
  prove(key: Uint8Array): MerkleProof {
    checkKey(key);
    const k = toBin(key);
    const siblings: Uint8Array[] = [];
    let node = this.top;
    while (node instanceof Branch) {
      const bit = node.bit;
      if (bit > siblings.length) {
        const diverge = firstDiffBit(k, someKey(node));
        const end = Math.min(diverge, bit);
        while (siblings.length < end) siblings.push(new Uint8Array(32));
        if (diverge < bit) {
          // The key leaves the node's prefix in a pass-by level: its path ends in the empty side,
          // beside the node as seen one level below that.
          const own = nodeHashBin(node.left.hash, node.right.hash);
          siblings.push(fromBin(liftHash(own, someKey(node), bit, diverge + 1)));
          return { siblings, leaf: null };
        }
      }
      const goRight = bitOf(k, bit) === 1;
      siblings.push(fromBin((goRight ? node.left : node.right).hash));
      node = goRight ? node.right : node.left;
    }
    return { siblings, leaf: node === null ? null : entryOf(node.kv) };
  }

  /** Every entry in ascending key order. */
  *entries(): Generator<TrieEntry, void, undefined> {
    const stack: TrieNode[] = [];
    if (this.top !== null) stack.push(this.top);
    while (stack.length > 0) {
      const node = stack.pop()!;
      if (node instanceof Branch) stack.push(node.right, node.left);
      else yield entryOf(node.kv);
    }
  }
}

function checkKey(key: Uint8Array): void {
  if (!isHash(key)) throw new RangeError('trie key must be 32 bytes');
}

/**
 * Checks `proof` against `root`: with a valueHash, that `key` maps to it; with null, that `key` is
 * absent. Pure and total: malformed input yields false, never an exception.
 */
export function verifyProof(
  root: Uint8Array,
  key: Uint8Array,
  valueHash: Uint8Array | null,
  proof: MerkleProof,
): boolean {
  if (!isHash(root) || !isHash(key) || (valueHash !== null && !isHash(valueHash))) return false;
  if (typeof proof !== 'object' || proof === null) return false;
  const { siblings, leaf } = proof;
  if (!Array.isArray(siblings) || siblings.length > TRIE_MAX_DEPTH) return false;
  for (const s of siblings) if (!isHash(s)) return false;
  const depth = siblings.length;
  let h: string;
  if (leaf === null) {
    if (valueHash !== null || depth >= TRIE_MAX_DEPTH) return false;
    h = EMPTY_BIN;
  } else {
    if (typeof leaf !== 'object' || !isHash(leaf.key) || !isHash(leaf.valueHash)) return false;
    const diverge = firstDiffBitBytes(leaf.key, key);
    if (diverge < depth) return false;
    const sameKey = diverge === 256;
    if (valueHash === null ? sameKey : !sameKey || !sameBytes(leaf.valueHash, valueHash)) return false;
    h = leafHashBin(packEntry(leaf.key, leaf.valueHash));
  }
  if (depth > 0 && isZero(siblings[depth - 1]!)) return false;
  for (let j = depth - 1; j >= 0; j--) {
    const s = siblings[j]!;
    h = bitOfBytes(key, j) === 0 ? nodeHashBin(h, s) : nodeHashBin(s, h);
  }
  return h === toBin(root);
}
