export { trieLeafHash, trieNodeHash } from './hashing.js';
export {
  type MerkleProof,
  MerkleTrie,
  merkleProofCodec,
  TRIE_KEY_BYTES,
  TRIE_MAX_DEPTH,
  type TrieChange,
  type TrieEntry,
  verifyProof,
} from './trie.js';
