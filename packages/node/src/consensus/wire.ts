/**
 * What the consensus driver gossips. Each message carries the sender's clock at sending, which
 * nobody trusts or checks: it only makes a re-sent message differ from the first copy, because
 * gossip drops byte-identical messages it has seen, and re-sending is how a node that missed a
 * vote or a proposal (restart, partition) gets it again.
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
  sentAt: bigint;
}

export const compactProposalCodec: Codec<CompactProposalMessage> = struct<CompactProposalMessage>(
  'CompactProposalMessage',
  {
    proposal: proposalCodec,
    header: blockHeaderCodec,
    blockCommit: commitCodec,
    txIds: list(bytesN(32, 'wtxid'), MAX_BLOCK_TXS, 'txIds'),
    lastCommit: commitCodec,
    sentAt: u64,
  },
);
