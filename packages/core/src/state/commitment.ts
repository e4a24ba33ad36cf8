/**
 * How state is committed to: every state key/value becomes a leaf of the Merkle trie at
 * SHA-256(key) with value hash SHA-256(value). The header's stateRoot is the trie root.
 */
import { sha256 } from '../crypto/hash.js';
import { type MerkleProof, MerkleTrie, verifyProof } from '../merkle/trie.js';
import type { StateWrite } from './store.js';

export function trieKey(stateKey: Uint8Array): Uint8Array {
  return sha256(stateKey);
}

export function applyToTrie(trie: MerkleTrie, changes: Iterable<StateWrite>): MerkleTrie {
  const updates: { key: Uint8Array; valueHash: Uint8Array | null }[] = [];
  for (const c of changes) updates.push({ key: sha256(c.key), valueHash: c.value ? sha256(c.value) : null });
  return trie.update(updates);
}

export function emptyTrie(): MerkleTrie {
  return MerkleTrie.empty();
}

/**
 * Verifies that `stateKey` holds `value` (or, with null, holds nothing) in the state whose root
 * is `stateRoot`. This is what the SDK runs against a committed header.
 */
export function verifyStateProof(
  stateRoot: Uint8Array,
  stateKey: Uint8Array,
  value: Uint8Array | null,
  proof: MerkleProof,
): boolean {
  return verifyProof(stateRoot, sha256(stateKey), value ? sha256(value) : null, proof);
}
