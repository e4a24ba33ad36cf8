/**
 * What the consensus driver gossips. Each message ends with the sender's clock at sending
 * (`sentAt`, 8 bytes, always the last field), which nobody trusts or checks and nobody signs:
 * anyone can re-wrap a genuine message with another one. Gossip therefore tells messages apart by
 * what comes before it (`gossipMessageId`, p2p/message-id.ts), so a re-wrapped copy is a duplicate
 * and is not relayed again; re-sending to peers that missed a message (a stalled height, a peer
 * that connects) goes to each peer directly, where no seen-cache applies.
 */
import {
  type Block,
  type BlockHeader,
  blockCodec,
  blockHeaderCodec,
  bytes,
  bytesN,
  type Codec,
  type Commit,
  commitCodec,
  list,
  MAX_BLOCK_TXS,
  type Proposal,
  proposalCodec,
  struct,
  u64,
  type Vote,
  voteCodec,
} from '@unc/core';

export interface VoteMessage {
  vote: Vote;
  sentAt: bigint;
}

/**
 * A proposal travels with its block and with the certificate of the previous block that the
 * block's header names (`lastCommitHash`): validators may hold different quorums of precommits
 * for the previous block, and need the proposer's to check the header.
 */
export interface ProposalMessage {
  proposal: Proposal;
  block: Block;
  lastCommit: Commit;
  /**
   * The proposer's signature over the wire ids of `block.txs` (`compactIdsSignBytes`,
   * compact-block.ts), as on a compact proposal. The block hash covers transaction hashes, which
   * leave signatures out: without it a relay could alter one transaction's signature bytes, the
   * copy would still match the header and the proposal's signature, and the block would be found
   * invalid (an honest validator voting nil on a genuine proposal). With it, a copy whose
   * transaction bytes are not the proposer's is dropped as altered in transit.
   */
  idsSignature: Uint8Array;
  sentAt: bigint;
}

export const voteMessageCodec: Codec<VoteMessage> = struct<VoteMessage>('VoteMessage', {
  vote: voteCodec,
  sentAt: u64,
});

export const proposalMessageCodec: Codec<ProposalMessage> = struct<ProposalMessage>('ProposalMessage', {
  proposal: proposalCodec,
  block: blockCodec,
  lastCommit: commitCodec,
  idsSignature: bytesN(64, 'idsSignature'),
  sentAt: u64,
});

/**
 * Transactions are gossiped in batches, one message per admission burst rather than one per
 * transaction; a batch stays under the network's 128 KiB limit for the tx topic.
 */
export const MAX_TX_BATCH_BYTES = 100 * 1024;
export const MAX_TXS_PER_MESSAGE = 1024;
export const txBatchCodec: Codec<Uint8Array[]> = list(bytes(64 * 1024, 'tx'), MAX_TXS_PER_MESSAGE, 'txs');

/**
 * A compact proposal (consensus/compact-block.ts): the proposal with its block's header and
 * commit, and each transaction by its wire id (`sha256` of its bytes, the signature included)
 * instead of its bytes. Peers rebuild the block from the transactions they hold and fetch the
 * others; the block and its hash are the same as in the full message.
 */
export interface CompactProposalMessage {
  proposal: Proposal;
  header: BlockHeader;
  blockCommit: Commit;
  txIds: Uint8Array[];
  lastCommit: Commit;
  /**
   * The proposer's signature over the id list (`compactIdsSignBytes`, compact-block.ts): the
   * proposal's own signature covers the block hash only, and the header commits to transaction
   * hashes that leave signatures out, so without it anyone could race altered copies (same signed
   * proposal, other ids) into a round's fetch slots.
   */
  idsSignature: Uint8Array;
  /**
   * Bodies of some of the block's transactions, those its proposer has reason to think its peers
   * do not hold yet (compact-block.ts, `mayBeMissingAtPeers`), in block order; each must hash to one of
   * `txIds`. Not signed: a relay can only strip some (its receivers then fetch them, as before) or
   * add bodies that do not match an id (the message is rejected).
   */
  carried: Uint8Array[];
  sentAt: bigint;
}

/**
 * The most bytes a compact proposal's message may have: the gossip topic's ceiling
 * (p2p/libp2p.ts). A full block's ids take up to 3.2 MB of it; carried bodies are cut to fit
 * (compact-block.ts, `encodeCompactWithin`).
 */
export const MAX_COMPACT_PROPOSAL_BYTES = 4 * 1024 * 1024;

/** A compact proposal's id list, as it travels and as its proposer signs it (compact-block.ts). */
export const txIdsCodec: Codec<Uint8Array[]> = list(bytesN(32, 'wtxid'), MAX_BLOCK_TXS, 'txIds');

export const compactProposalCodec: Codec<CompactProposalMessage> = struct<CompactProposalMessage>(
  'CompactProposalMessage',
  {
    proposal: proposalCodec,
    header: blockHeaderCodec,
    blockCommit: commitCodec,
    txIds: txIdsCodec,
    lastCommit: commitCodec,
    idsSignature: bytesN(64, 'idsSignature'),
    carried: list(bytes(64 * 1024, 'tx'), MAX_BLOCK_TXS, 'carried'),
    sentAt: u64,
  },
);
