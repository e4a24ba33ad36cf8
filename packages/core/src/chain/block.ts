/**
 * Blocks: a header that commits to everything (previous block, state after the block, the
 * transactions, the proposer and the consensus fields), the transactions themselves, and the
 * commit: the validators' signatures over the header hash that made the block final.
 */

import { concatBytes } from '../bytes.js';
import { ed25519Sign, ed25519Verify } from '../crypto/ed25519.js';
import { taggedHash } from '../crypto/hash.js';
import { bytes, type Codec, encode, list, struct, u32, u64 } from '../encoding/codec.js';
import { chainIdCodec, hash32, publicKey, signature64, type TxEnvelope } from './transaction.js';

export const MAX_BLOCK_TXS = 100_000;
/** Largest transaction the block codec reads. */
export const MAX_TX_BYTES = 1 << 20;
/**
 * Largest maxBlockBytes a genesis may set: the p2p layer's proposal and block frames (9 MiB) are
 * sized for this many bytes of transactions plus their length prefixes, header and commits.
 */
export const MAX_BLOCK_BYTES = 8 * 1024 * 1024;
export const MAX_VRF_PROOF_BYTES = 128;
export const MAX_COMMIT_SIGNATURES = 1_000;

export interface BlockHeader {
  chainId: string;
  height: bigint;
  /** Block time in milliseconds since the Unix epoch; strictly increasing. */
  time: bigint;
  prevHash: Uint8Array;
  /** Root of the state trie after this block's transactions. */
  stateRoot: Uint8Array;
  /** Merkle root of the transaction ids, in block order. */
  txRoot: Uint8Array;
  proposer: Uint8Array;
  /** Consensus randomness after this block (the VRF output chain); set by the consensus layer. */
  beacon: Uint8Array;
  vrfProof: Uint8Array;
  /** Hash of the commit certificate that finalized the previous block. */
  lastCommitHash: Uint8Array;
}

export const blockHeaderCodec: Codec<BlockHeader> = struct<BlockHeader>('BlockHeader', {
  chainId: chainIdCodec,
  height: u64,
  time: u64,
  prevHash: hash32,
  stateRoot: hash32,
  txRoot: hash32,
  proposer: publicKey,
  beacon: hash32,
  vrfProof: bytes(MAX_VRF_PROOF_BYTES, 'vrfProof'),
  lastCommitHash: hash32,
});

/**
 * Why a block's transactions break the chain's size limits, or null: at most `maxBlockTxs`
 * transactions, whose encodings add up to at most `maxBlockBytes` bytes (header and commit not
 * counted; the same measure the proposer selects by). The limits are the parameters in the state
 * the block is applied to. Checked before anything in the block is decoded or executed.
 */
export function blockLimitViolation(
  limits: { readonly maxBlockTxs: number; readonly maxBlockBytes: number },
  txs: readonly Uint8Array[],
): string | null {
  if (txs.length > limits.maxBlockTxs)
    return `${txs.length} transactions, more than the limit of ${limits.maxBlockTxs}`;
  let bytes = 0;
  for (const tx of txs) bytes += tx.length;
  if (bytes > limits.maxBlockBytes)
    return `${bytes} bytes of transactions, more than the limit of ${limits.maxBlockBytes}`;
  return null;
}

export interface CommitSignature {
  validator: Uint8Array;
  signature: Uint8Array;
}

/**
 * The precommits that made a block final. Same fields and encoding as consensus/messages.ts
 * `CommitCertificate`: every signature is a precommit vote for (height, round, blockHash), and the
 * round is signed, so without it no signature could be checked.
 */
export interface Commit {
  height: bigint;
  round: number;
  blockHash: Uint8Array;
  signatures: CommitSignature[];
}

export const commitCodec: Codec<Commit> = struct<Commit>('Commit', {
  height: u64,
  round: u32,
  blockHash: hash32,
  signatures: list(
    struct<CommitSignature>('CommitSignature', { validator: publicKey, signature: signature64 }),
    MAX_COMMIT_SIGNATURES,
    'signatures',
  ),
});

/** A block as stored and served: header, transactions (as encoded bytes), and its commit. */
export interface Block {
  header: BlockHeader;
  txs: Uint8Array[];
  commit: Commit;
}

/** A block's transactions as encoded inside it (`blockCodec`'s middle field). */
export const blockTxsCodec: Codec<Uint8Array[]> = list(bytes(MAX_TX_BYTES, 'tx'), MAX_BLOCK_TXS, 'txs');

/**
 * Header, transactions, commit, each in its own codec's encoding one after the other (a struct's
 * encoding is its fields' in order), so a block's bytes are those three encodings joined.
 */
export const blockCodec: Codec<Block> = struct<Block>('Block', {
  header: blockHeaderCodec,
  txs: blockTxsCodec,
  commit: commitCodec,
});

export function blockHash(header: BlockHeader): Uint8Array {
  return taggedHash('UNC/header', encode(blockHeaderCodec, header));
}

export function commitHash(commit: Commit): Uint8Array {
  return taggedHash('UNC/commit', encode(commitCodec, commit));
}

export const ZERO_HASH = new Uint8Array(32);

/**
 * Merkle root of transaction ids: a plain binary tree where an odd node is promoted unchanged
 * (never duplicated, which would let two different lists share a root).
 */
export function transactionsRoot(txHashes: Uint8Array[]): Uint8Array {
  if (txHashes.length === 0) return ZERO_HASH;
  let level = txHashes.map((h) => taggedHash('UNC/txleaf', h));
  while (level.length > 1) {
    const next: Uint8Array[] = [];
    for (let i = 0; i < level.length; i += 2) {
      next.push(i + 1 < level.length ? taggedHash('UNC/txnode', level[i]!, level[i + 1]!) : level[i]!);
    }
    level = next;
  }
  return level[0]!;
}

export function txRootOf(txs: readonly TxEnvelope[]): Uint8Array {
  return transactionsRoot(txs.map((t) => t.hash));
}

/**
 * The single-validator commit signature of the first node releases. Deprecated: a block's commit
 * is verified with consensus/commit.ts `verifyBlockCommit` (precommit votes, `voteSignBytes`);
 * these stay until the node signs precommits.
 */
export function commitVoteBytes(chainId: string, height: bigint, hash: Uint8Array): Uint8Array {
  const h = new Uint8Array(8);
  new DataView(h.buffer).setBigUint64(0, height);
  return concatBytes(new TextEncoder().encode(`UNC/precommit\0${chainId}\0`), h, hash);
}

export function signCommitVote(
  chainId: string,
  height: bigint,
  hash: Uint8Array,
  seed: Uint8Array,
): Uint8Array {
  return ed25519Sign(seed, commitVoteBytes(chainId, height, hash));
}

export function verifyCommitVote(
  chainId: string,
  height: bigint,
  hash: Uint8Array,
  validator: Uint8Array,
  signature: Uint8Array,
): boolean {
  return ed25519Verify(validator, commitVoteBytes(chainId, height, hash), signature);
}
