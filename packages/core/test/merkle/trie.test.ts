import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { compareBytes, equalBytes, fromHex, toHex } from '../../src/bytes.js';
import { sha256, taggedHash } from '../../src/crypto/hash.js';
import { decode, encode } from '../../src/encoding/codec.js';
import { DecodeError } from '../../src/errors.js';
import { trieHashCount } from '../../src/merkle/hashing.js';
import {
  type MerkleProof,
  MerkleTrie,
  merkleProofCodec,
  type TrieChange,
  type TrieEntry,
  trieLeafHash,
  trieNodeHash,
  verifyProof,
} from '../../src/merkle/index.js';

const ZERO = new Uint8Array(32);

// The reference hashes are spelled out with taggedHash so that the tests do not trust the trie's
// own hashing shortcuts.
const leafH = (key: Uint8Array, valueHash: Uint8Array): Uint8Array =>
  taggedHash('UNC/smt-leaf', key, valueHash);
const nodeH = (left: Uint8Array, right: Uint8Array): Uint8Array => taggedHash('UNC/smt-node', left, right);

function bit(key: Uint8Array, i: number): number {
  return (key[Math.floor(i / 8)]! >> (7 - (i % 8))) & 1;
}

/** The root straight from the definition: H(S, d) over the whole set, level by level. */
function referenceRoot(entries: TrieEntry[]): Uint8Array {
  const h = (set: TrieEntry[], depth: number): Uint8Array => {
    if (set.length === 0) return ZERO;
    if (set.length === 1) return leafH(set[0]!.key, set[0]!.valueHash);
    return nodeH(
      h(
        set.filter((e) => bit(e.key, depth) === 0),
        depth + 1,
      ),
      h(
        set.filter((e) => bit(e.key, depth) === 1),
        depth + 1,
      ),
    );
  };
  return h(entries, 0);
}

type Model = Map<string, Uint8Array>;

function modelEntries(model: Model): TrieEntry[] {
  return [...model.entries()]
    .map(([k, valueHash]) => ({ key: fromHex(k), valueHash }))
    .sort((a, b) => compareBytes(a.key, b.key));
}

function applyToModel(model: Model, changes: TrieChange[]): void {
  for (const c of changes) {
    if (c.valueHash === null) model.delete(toHex(c.key));
    else model.set(toHex(c.key), c.valueHash);
  }
}

function keyFrom(hexByte0: number, rest = 0): Uint8Array {
  const k = new Uint8Array(32);
  k[0] = hexByte0;
  k[31] = rest;
  return k;
}

function value(n: number): Uint8Array {
  return sha256(new Uint8Array([n & 0xff, n >> 8]));
}

function withBitsFlipped(base: Uint8Array, bits: number[]): Uint8Array {
  const k = base.slice();
  for (const b of bits) k[b >> 3]! ^= 0x80 >> (b & 7);
  return k;
}

function trieOf(entries: Iterable<TrieEntry>): MerkleTrie {
  return MerkleTrie.empty().update([...entries].map((e) => ({ key: e.key, valueHash: e.valueHash })));
}

// Keys that collide on long prefixes (pass-by levels, branches down to bit 255) mixed with random
// ones: uniformly random keys alone would almost never reach the deep or sparse shapes.
const CLUSTER_BASE = sha256(new Uint8Array([42]));
const CLUSTER_BITS = [0, 1, 2, 5, 9, 17, 64, 130, 200, 254, 255];
const keyArb = fc.oneof(
  fc.uint8Array({ minLength: 32, maxLength: 32 }),
  fc.subarray(CLUSTER_BITS).map((bits) => withBitsFlipped(CLUSTER_BASE, bits)),
);
const valueArb = fc.oneof(
  fc.integer({ min: 0, max: 3 }).map(value),
  fc.uint8Array({ minLength: 32, maxLength: 32 }),
);
const changeArb: fc.Arbitrary<TrieChange> = fc
  .tuple(keyArb, fc.option(valueArb, { freq: 4, nil: null }))
  .map(([key, valueHash]) => ({ key, valueHash }));
const entrySetArb = fc
  .uniqueArray(
    fc.tuple(keyArb, valueArb).map(([key, valueHash]) => ({ key, valueHash })),
    {
      selector: (e) => toHex(e.key),
      maxLength: 40,
    },
  )
  .map((es) => es.sort((a, b) => compareBytes(a.key, b.key)));

function isTrue(trie: MerkleTrie, key: Uint8Array, claim: Uint8Array | null): boolean {
  const actual = trie.getValueHash(key);
  return claim === null ? actual === null : actual !== null && equalBytes(actual, claim);
}

function sameProof(a: MerkleProof, b: MerkleProof): boolean {
  return equalBytes(encode(merkleProofCodec, a), encode(merkleProofCodec, b));
}

/** Whatever verifies must be a true claim carried by the one canonical proof. */
function assertSound(trie: MerkleTrie, key: Uint8Array, claim: Uint8Array | null, proof: MerkleProof): void {
  if (!verifyProof(trie.root, key, claim, proof)) return;
  assert.ok(isTrue(trie, key, claim), 'a false claim verified');
  assert.ok(sameProof(proof, trie.prove(key)), 'a non-canonical proof verified');
}

describe('merkle trie: hashing', () => {
  test('the fast hash helpers equal taggedHash', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        (a, b) => {
          assert.deepEqual(trieLeafHash(a, b), leafH(a, b));
          assert.deepEqual(trieNodeHash(a, b), nodeH(a, b));
        },
      ),
    );
  });

  test('the empty trie has the zero root and proves every key absent', () => {
    const t = MerkleTrie.empty();
    assert.deepEqual(t.root, ZERO);
    assert.equal(t.size, 0);
    assert.deepEqual([...t.entries()], []);
    const k = keyFrom(7);
    assert.equal(t.getValueHash(k), null);
    const proof = t.prove(k);
    assert.deepEqual(proof, { siblings: [], leaf: null });
    assert.ok(verifyProof(t.root, k, null, proof));
    assert.ok(!verifyProof(t.root, k, value(1), proof));
  });

  test('a one-leaf trie has the leaf hash as its root', () => {
    const k = keyFrom(0xab, 1);
    const t = MerkleTrie.empty().update([{ key: k, valueHash: value(1) }]);
    assert.deepEqual(t.root, leafH(k, value(1)));
    assert.equal(t.size, 1);
    assert.deepEqual(t.getValueHash(k), value(1));
  });

  test('two leaves split at bit 0 hash as one node', () => {
    const a = keyFrom(0x12);
    const b = keyFrom(0x93);
    const t = MerkleTrie.empty().update([
      { key: b, valueHash: value(2) },
      { key: a, valueHash: value(1) },
    ]);
    assert.deepEqual(t.root, nodeH(leafH(a, value(1)), leafH(b, value(2))));
  });

  test('two leaves sharing three bits pass by three empty sides', () => {
    // 0x50 = 010 1…, 0x40 = 010 0…: equal in bits 0-2, split at bit 3.
    const a = keyFrom(0x40);
    const b = keyFrom(0x50);
    const t = MerkleTrie.empty().update([
      { key: a, valueHash: value(1) },
      { key: b, valueHash: value(2) },
    ]);
    const level3 = nodeH(leafH(a, value(1)), leafH(b, value(2)));
    const level2 = nodeH(level3, ZERO); // bit 2 = 0
    const level1 = nodeH(ZERO, level2); // bit 1 = 1
    const root = nodeH(level1, ZERO); // bit 0 = 0
    assert.deepEqual(t.root, root);
  });

  test('three leaves, with and without a pass-by level', () => {
    const a = keyFrom(0x00); // 00…
    const b = keyFrom(0x40); // 01…
    const c = keyFrom(0x80); // 1…
    const t1 = MerkleTrie.empty().update([
      { key: c, valueHash: value(3) },
      { key: a, valueHash: value(1) },
      { key: b, valueHash: value(2) },
    ]);
    assert.deepEqual(t1.root, nodeH(nodeH(leafH(a, value(1)), leafH(b, value(2))), leafH(c, value(3))));

    const b2 = keyFrom(0x20); // 001…: shares bits 0-1 with a
    const c2 = keyFrom(0xc0); // 11…
    const t2 = MerkleTrie.empty().update([
      { key: a, valueHash: value(1) },
      { key: b2, valueHash: value(2) },
      { key: c2, valueHash: value(3) },
    ]);
    const left = nodeH(nodeH(leafH(a, value(1)), leafH(b2, value(2))), ZERO);
    assert.deepEqual(t2.root, nodeH(left, leafH(c2, value(3))));
    assert.equal(t2.size, 3);
  });

  test('keys differing only in the last bit sit at depth 256', () => {
    const a = keyFrom(0x77, 0x10);
    const b = keyFrom(0x77, 0x11);
    const t = MerkleTrie.empty().update([
      { key: a, valueHash: value(1) },
      { key: b, valueHash: value(2) },
    ]);
    assert.deepEqual(
      t.root,
      referenceRoot([
        { key: a, valueHash: value(1) },
        { key: b, valueHash: value(2) },
      ]),
    );
    const proof = t.prove(b);
    assert.equal(proof.siblings.length, 256);
    assert.ok(proof.siblings.slice(0, 255).every((s) => equalBytes(s, ZERO)));
    assert.ok(verifyProof(t.root, b, value(2), proof));
    const absent = keyFrom(0x77, 0x12);
    const absentProof = t.prove(absent);
    assert.equal(absentProof.siblings.length, 255);
    assert.equal(absentProof.leaf, null);
    assert.ok(verifyProof(t.root, absent, null, absentProof));
  });

  test('roots match the definition for random sets', () => {
    fc.assert(
      fc.property(entrySetArb, (entries) => {
        const t = trieOf(entries);
        assert.deepEqual(t.root, referenceRoot(entries));
        assert.equal(t.size, entries.length);
        assert.deepEqual([...t.entries()], entries);
      }),
      { numRuns: 300 },
    );
  });
});

describe('merkle trie: batch updates', () => {
  test('the root depends only on the final set, whatever the order and batching', () => {
    fc.assert(
      fc.property(
        fc.array(changeArb, { maxLength: 60 }),
        fc.array(fc.nat(60), { maxLength: 6 }),
        (changes, cuts) => {
          const model: Model = new Map();
          applyToModel(model, changes);
          const bounds = [
            0,
            ...cuts.map((c) => Math.min(c, changes.length)).sort((x, y) => x - y),
            changes.length,
          ];
          let t = MerkleTrie.empty();
          for (let i = 0; i + 1 < bounds.length; i++) t = t.update(changes.slice(bounds[i], bounds[i + 1]));
          const expected = modelEntries(model);
          assert.deepEqual(t.root, referenceRoot(expected));
          assert.deepEqual(t.root, trieOf(expected).root);
          assert.deepEqual(t.root, trieOf([...expected].reverse()).root);
          assert.equal(t.size, expected.length);
          assert.deepEqual([...t.entries()], expected);
          for (const { key, valueHash } of changes) {
            const v = t.getValueHash(key);
            const m = model.get(toHex(key));
            assert.deepEqual(
              v,
              m ?? null,
              `value of ${toHex(key)} (last set ${valueHash ? 'value' : 'null'})`,
            );
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  test('later changes to the same key win within a batch', () => {
    const k = keyFrom(5);
    const other = keyFrom(200);
    const base = MerkleTrie.empty().update([{ key: other, valueHash: value(9) }]);
    const set = base.update([
      { key: k, valueHash: value(1) },
      { key: k, valueHash: null },
      { key: k, valueHash: value(2) },
    ]);
    assert.deepEqual(set.getValueHash(k), value(2));
    assert.equal(set.size, 2);
    const gone = set.update([
      { key: k, valueHash: value(3) },
      { key: k, valueHash: null },
    ]);
    assert.equal(gone.getValueHash(k), null);
    assert.deepEqual(gone.root, base.root);
    assert.equal(gone.size, 1);
  });

  test('changes that undo each other restore the earlier root', () => {
    fc.assert(
      fc.property(entrySetArb, fc.array(changeArb, { maxLength: 30 }), (entries, changes) => {
        const before = trieOf(entries);
        const after = before.update(changes);
        const undo: TrieChange[] = changes.map(({ key }) => ({ key, valueHash: before.getValueHash(key) }));
        const restored = after.update(undo);
        assert.deepEqual(restored.root, before.root);
        assert.equal(restored.size, before.size);
        assert.deepEqual([...restored.entries()], entries);
      }),
      { numRuns: 200 },
    );
  });

  test('an update leaves the old trie unchanged and both stay usable', () => {
    fc.assert(
      fc.property(entrySetArb, fc.array(changeArb, { minLength: 1, maxLength: 30 }), (entries, changes) => {
        const old = trieOf(entries);
        const rootBefore = old.root;
        const next = old.update(changes);
        assert.deepEqual(old.root, rootBefore);
        assert.equal(old.size, entries.length);
        assert.deepEqual([...old.entries()], entries);
        for (const { key, valueHash } of entries) {
          assert.deepEqual(old.getValueHash(key), valueHash);
          assert.ok(verifyProof(rootBefore, key, valueHash, old.prove(key)));
        }
        for (const { key } of changes) {
          const v = next.getValueHash(key);
          assert.ok(verifyProof(next.root, key, v, next.prove(key)));
        }
      }),
      { numRuns: 200 },
    );
  });

  test('a batch with no effect returns an equal trie; the caller cannot mutate it through its outputs', () => {
    const k = keyFrom(1);
    const t = MerkleTrie.empty().update([{ key: k, valueHash: value(1) }]);
    assert.equal(t.update([]), t);
    assert.equal(t.update([{ key: keyFrom(2), valueHash: null }]), t);
    assert.equal(t.update([{ key: k, valueHash: value(1) }]), t);
    const root = t.root;
    root.fill(0xff);
    t.getValueHash(k)!.fill(0xff);
    t.prove(k).leaf!.key.fill(0xff);
    for (const e of t.entries()) e.valueHash.fill(0xff);
    assert.deepEqual(t.root, leafH(k, value(1)));
    assert.deepEqual(t.getValueHash(k), value(1));
  });

  test('the trie copies keys and values, so reusing a buffer between changes is safe', () => {
    const buf = new Uint8Array(32);
    function* reuse(): Generator<TrieChange> {
      for (let i = 0; i < 5; i++) {
        buf[0] = i * 40;
        yield { key: buf, valueHash: value(i) };
      }
    }
    const t = MerkleTrie.empty().update(reuse());
    assert.equal(t.size, 5);
    for (let i = 0; i < 5; i++) assert.deepEqual(t.getValueHash(keyFrom(i * 40)), value(i));
  });

  test('malformed keys and value hashes are rejected', () => {
    const t = MerkleTrie.empty();
    assert.throws(() => t.update([{ key: new Uint8Array(31), valueHash: value(1) }]), RangeError);
    assert.throws(() => t.update([{ key: new Uint8Array(32), valueHash: new Uint8Array(33) }]), RangeError);
    assert.throws(() => t.getValueHash(new Uint8Array(33)), RangeError);
    assert.throws(() => t.prove(new Uint8Array(0)), RangeError);
  });

  test('a batch hashes each node on the union of its paths exactly once', () => {
    fc.assert(
      fc.property(entrySetArb, fc.array(fc.nat(1000), { minLength: 1, maxLength: 15 }), (entries, picks) => {
        fc.pre(entries.length > 0);
        const t = trieOf(entries);
        // Value rewrites keep the shape, so the work is known exactly: one leaf hash per rewritten
        // key plus one node hash per distinct (depth, prefix) above those leaves, pass-by levels
        // included. The new values hash a 3-byte input, so none equals an entry's value (which would
        // make the change a no-op that hashes nothing).
        const changes = picks.map((p) => ({
          key: entries[p % entries.length]!.key,
          valueHash: sha256(new Uint8Array([p & 0xff, p >> 8, 1])),
        }));
        const touched = new Set<string>();
        const keys = new Set<string>();
        for (const { key } of changes) {
          keys.add(toHex(key));
          let prefix = '';
          const depth = t.prove(key).siblings.length;
          for (let d = 0; d < depth; d++) {
            touched.add(prefix);
            prefix += bit(key, d);
          }
        }
        const before = trieHashCount();
        const next = t.update(changes);
        assert.equal(trieHashCount() - before, keys.size + touched.size);
        const model: Model = new Map(entries.map((e) => [toHex(e.key), e.valueHash]));
        applyToModel(model, changes);
        assert.deepEqual(next.root, referenceRoot(modelEntries(model)));
      }),
      { numRuns: 200 },
    );
  });

  test('many mixed batches on a few thousand keys agree with the definition', () => {
    let seed = 1;
    const rnd = (): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed;
    };
    const pool = Array.from({ length: 4000 }, (_, i) => sha256(new Uint8Array([i & 0xff, i >> 8, 7])));
    const model: Model = new Map();
    let t = MerkleTrie.empty();
    for (let round = 0; round < 12; round++) {
      const changes: TrieChange[] = [];
      const n = round === 0 ? 2500 : 300 + (rnd() % 600);
      for (let i = 0; i < n; i++) {
        const key = pool[rnd() % pool.length]!;
        changes.push({ key, valueHash: rnd() % 4 === 0 ? null : value(rnd() % 1000) });
      }
      const prev = t;
      const prevRoot = prev.root;
      t = t.update(changes);
      applyToModel(model, changes);
      const expected = modelEntries(model);
      assert.deepEqual(t.root, referenceRoot(expected));
      assert.equal(t.size, expected.length);
      assert.deepEqual(prev.root, prevRoot);
    }
  });
});

describe('merkle trie: proofs', () => {
  test('membership and non-membership proofs verify for random sets', () => {
    const ends = { member: 0, otherLeaf: 0, empty: 0 };
    fc.assert(
      fc.property(entrySetArb, fc.array(keyArb, { maxLength: 20 }), (entries, probes) => {
        const t = trieOf(entries);
        const root = t.root;
        for (const { key, valueHash } of entries) {
          const proof = t.prove(key);
          assert.ok(verifyProof(root, key, valueHash, proof));
          assert.ok(!verifyProof(root, key, null, proof));
          assert.deepEqual(decode(merkleProofCodec, encode(merkleProofCodec, proof)), proof);
          ends.member++;
        }
        for (const key of probes) {
          if (t.getValueHash(key) !== null) continue;
          const proof = t.prove(key);
          assert.ok(verifyProof(root, key, null, proof));
          assert.ok(!verifyProof(root, key, value(0), proof));
          if (proof.leaf === null) ends.empty++;
          else ends.otherLeaf++;
        }
      }),
      { numRuns: 300 },
    );
    // The generators are meant to reach every kind of path end; fail loudly if they stop doing so.
    assert.ok(ends.member > 0 && ends.otherLeaf > 0 && ends.empty > 0, JSON.stringify(ends));
  });

  test('every tampering of a proof fails, and nothing false or non-canonical ever verifies', () => {
    const entries: TrieEntry[] = [];
    for (let i = 0; i < 60; i++) entries.push({ key: sha256(new Uint8Array([i, 1])), valueHash: value(i) });
    for (const bits of [[], [255], [254], [130, 255], [9], [9, 17], [200]]) {
      entries.push({ key: withBitsFlipped(CLUSTER_BASE, bits), valueHash: value(bits.length) });
    }
    const t = trieOf(entries);
    const other = t.update([{ key: entries[0]!.key, valueHash: value(999) }]);
    const root = t.root;
    const cases: [Uint8Array, Uint8Array | null][] = [
      ...entries.slice(55).map((e): [Uint8Array, Uint8Array | null] => [e.key, e.valueHash]),
      [sha256(new Uint8Array([1, 2, 3])), null],
      [withBitsFlipped(CLUSTER_BASE, [1]), null],
      [withBitsFlipped(CLUSTER_BASE, [130]), null],
      [withBitsFlipped(CLUSTER_BASE, [64]), null],
    ];
    const seenEnds = new Set<string>();
    for (const [key, claim] of cases) {
      const proof = t.prove(key);
      seenEnds.add(proof.leaf === null ? 'empty' : claim === null ? 'other' : 'member');
      assert.ok(verifyProof(root, key, claim, proof));
      const rejects = (p: MerkleProof, k: Uint8Array = key, c: Uint8Array | null = claim, r = root): void => {
        assert.ok(!verifyProof(r, k, c, p));
        assertSound(t, k, c, p);
      };
      const { siblings, leaf } = proof;
      // Every bit of every sibling, except in the 256-deep proofs where a spread of bits per sibling
      // keeps the test fast (each of those verifications costs 256 hashes).
      const step = siblings.length > 64 ? 61 : 1;
      for (let i = 0; i < siblings.length; i++) {
        for (let b = i % step; b < 256; b += step) {
          rejects({ siblings: siblings.map((s, j) => (j === i ? withBitsFlipped(s, [b]) : s)), leaf });
        }
        rejects({ siblings: siblings.filter((_, j) => j !== i), leaf });
      }
      for (let i = 0; i <= siblings.length; i++) {
        for (const extra of [ZERO, sha256(new Uint8Array([i])), siblings[i] ?? root]) {
          rejects({ siblings: [...siblings.slice(0, i), extra, ...siblings.slice(i)], leaf });
        }
      }
      if (leaf !== null) {
        for (let b = 0; b < 256; b++) {
          rejects({ siblings, leaf: { key: withBitsFlipped(leaf.key, [b]), valueHash: leaf.valueHash } });
          rejects({ siblings, leaf: { key: leaf.key, valueHash: withBitsFlipped(leaf.valueHash, [b]) } });
        }
        // Claiming an empty end where a leaf sits.
        rejects({ siblings, leaf: null }, key, null);
      } else {
        for (const e of entries.slice(0, 5)) rejects({ siblings, leaf: e });
      }
      // The wrong claim, the wrong key, another root.
      rejects(proof, key, claim === null ? value(0) : null);
      if (claim !== null) rejects(proof, key, withBitsFlipped(claim, [3]));
      for (let b = 0; b < 256; b++) {
        const k2 = withBitsFlipped(key, [b]);
        if (claim !== null || b < siblings.length) rejects(proof, k2);
        // Past the proof's depth the same path really does prove another absent key absent.
        else assertSound(t, k2, claim, proof);
      }
      rejects(proof, key, claim, other.root);
      assert.ok(!verifyProof(other.root, entries[0]!.key, entries[0]!.valueHash, t.prove(entries[0]!.key)));
    }
    assert.deepEqual([...seenEnds].sort(), ['empty', 'member', 'other']);
  });

  test('proofs of non-canonical trees are rejected', () => {
    const k = keyFrom(0x01);
    const v = value(1);
    // A lone leaf one level down beside an empty side: the canonical root would be the leaf hash.
    const fakeRoot = nodeH(leafH(k, v), ZERO);
    assert.ok(!verifyProof(fakeRoot, k, v, { siblings: [ZERO], leaf: { key: k, valueHash: v } }));
    // An empty end beside an empty side.
    assert.ok(!verifyProof(nodeH(ZERO, ZERO), k, null, { siblings: [ZERO], leaf: null }));
    // An empty end at depth 256 cannot exist: two leaves cannot share 255 bits and one side.
    const deep = Array.from({ length: 256 }, (_, i) => (i === 255 ? leafH(k, v) : ZERO));
    let h: Uint8Array = ZERO;
    for (let j = 255; j >= 0; j--) h = bit(k, j) === 0 ? nodeH(h, deep[j]!) : nodeH(deep[j]!, h);
    assert.ok(!verifyProof(h, k, null, { siblings: deep, leaf: null }));
    // More siblings than key bits: folded the way a verifier would, but beyond the depth bound.
    const tooDeep = Array.from({ length: 257 }, (_, i) => value(i + 1));
    h = leafH(k, v);
    for (let j = 256; j >= 0; j--) {
      h = (j < 256 ? bit(k, j) : 0) === 0 ? nodeH(h, tooDeep[j]!) : nodeH(tooDeep[j]!, h);
    }
    assert.ok(!verifyProof(h, k, v, { siblings: tooDeep, leaf: { key: k, valueHash: v } }));
  });

  test('a leaf end must lie on the key path', () => {
    const a = keyFrom(0x00);
    const b = keyFrom(0x80);
    const t = MerkleTrie.empty().update([
      { key: a, valueHash: value(1) },
      { key: b, valueHash: value(2) },
    ]);
    const probe = keyFrom(0x81);
    const honest = t.prove(probe);
    assert.deepEqual(honest.leaf?.key, b);
    assert.ok(verifyProof(t.root, probe, null, honest));
    // a's leaf beside b's on the probe's side folds to the root of a malformed tree that has a in
    // the wrong half; only the path check stops it.
    const swapped: MerkleProof = { siblings: [leafH(b, value(2))], leaf: { key: a, valueHash: value(1) } };
    const malformedRoot = nodeH(leafH(b, value(2)), leafH(a, value(1)));
    assert.ok(!verifyProof(malformedRoot, probe, null, swapped));
    assert.ok(!verifyProof(t.root, probe, null, swapped));
  });

  test('malformed proofs and arguments yield false, never an exception', () => {
    const k = keyFrom(3);
    const t = MerkleTrie.empty().update([
      { key: k, valueHash: value(1) },
      { key: keyFrom(0x90), valueHash: value(2) },
    ]);
    const proof = t.prove(k);
    const bad: unknown[] = [
      null,
      {},
      { siblings: null, leaf: null },
      { siblings: [new Uint8Array(31)], leaf: proof.leaf },
      { siblings: proof.siblings, leaf: { key: k } },
      { siblings: proof.siblings, leaf: { key: new Uint8Array(3), valueHash: value(1) } },
      { siblings: Array.from({ length: 257 }, () => value(5)), leaf: proof.leaf },
      { siblings: proof.siblings, leaf: 'x' },
    ];
    for (const p of bad) assert.equal(verifyProof(t.root, k, value(1), p as MerkleProof), false);
    assert.equal(verifyProof(t.root.subarray(1), k, value(1), proof), false);
    assert.equal(verifyProof(t.root, k.subarray(1), value(1), proof), false);
    assert.equal(verifyProof(t.root, k, new Uint8Array(5), proof), false);
  });
});

describe('merkle trie: proof codec', () => {
  test('decode(encode(proof)) round-trips', () => {
    fc.assert(
      fc.property(entrySetArb, keyArb, (entries, key) => {
        const proof = trieOf(entries).prove(key);
        const bytes = encode(merkleProofCodec, proof);
        assert.deepEqual(decode(merkleProofCodec, bytes), proof);
      }),
      { numRuns: 200 },
    );
  });

  test('random bytes decode canonically or throw DecodeError', () => {
    const hashes = fc.array(fc.uint8Array({ minLength: 32, maxLength: 32 }), { maxLength: 4 });
    const nearValid = fc
      .tuple(hashes, fc.option(fc.uint8Array({ minLength: 64, maxLength: 64 }), { nil: null }))
      .map(([siblings, leaf]) =>
        encode(merkleProofCodec, {
          siblings,
          leaf: leaf === null ? null : { key: leaf.slice(0, 32), valueHash: leaf.slice(32) },
        }),
      );
    const mutated = fc
      .tuple(nearValid, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.nat(8))
      .map(([bytes, at, byte, cut]) => {
        const out = bytes.slice(0, Math.max(0, bytes.length - cut));
        if (out.length > 0) out[at % out.length] = byte;
        return out;
      });
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }), nearValid, mutated), (bytes) => {
        let proof: MerkleProof;
        try {
          proof = decode(merkleProofCodec, bytes);
        } catch (err) {
          assert.ok(err instanceof DecodeError, String(err));
          return;
        }
        assert.deepEqual(encode(merkleProofCodec, proof), bytes);
      }),
      { numRuns: 2000 },
    );
  });

  test('the codec bounds the depth and the hash sizes', () => {
    const tooDeep = new Uint8Array(4 + 257 * 32 + 1);
    new DataView(tooDeep.buffer).setUint32(0, 257);
    assert.throws(() => decode(merkleProofCodec, tooDeep), DecodeError);
    assert.throws(() => encode(merkleProofCodec, { siblings: [new Uint8Array(31)], leaf: null }), RangeError);
    assert.throws(
      () => encode(merkleProofCodec, { siblings: Array.from({ length: 257 }, () => ZERO), leaf: null }),
      RangeError,
    );
  });
});
