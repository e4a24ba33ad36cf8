/**
 * What each gossip topic checks before a message reaches the consensus machine, the mempool or
 * the evidence pool: plain functions of the message bytes and a view of the chain (no queue, no
 * clock, no network), so each rule is unit-tested on its own and the reactors only route.
 *
 * Each check answers with the verdict the network should give the sender (`accept` forwards,
 * `ignore` drops quietly, `reject` drops and scores the sender down) and, where the message is
 * usable, what to do with it: deliver it now, or keep it for a later height.
 */
import {
  type BlockHeader,
  blockHash,
  type ConsensusEvidence,
  commitHash,
  consensusEvidenceCodec,
  decode,
  envelopeFromBytes,
  equalBytes,
  evidenceOffender,
  type Proposal,
  type TxEnvelope,
  txRootOf,
  type ValidatorSet,
  type VerifyFn,
  type Vote,
  verifyConsensusEvidence,
  verifyProposalSignature,
  verifyVoteSignature,
} from '@unc/core';
import type { Verdict } from '../p2p/types.js';
import { carriedMatchesIds, compactIdsSigned, fullIdsSigned } from './compact-block.js';
import {
  type CompactProposalMessage,
  compactProposalCodec,
  type ProposalMessage,
  proposalMessageCodec,
  txBatchCodec,
  voteMessageCodec,
} from './wire.js';

/** What the checks need to know about the node: the head and the set voting after it. */
export interface GossipView {
  chainId: string;
  /** Height of the latest committed block. */
  headHeight: bigint;
  /** The validator set of height `headHeight + 1`. */
  validators: ValidatorSet;
  verify: VerifyFn;
}

/**
 * `deliver`: for the height after the head, signed by a member of its set (the caller still
 * routes it to the machine or buffers it while syncing). `buffer`: for a later height, whose set
 * is not known yet; kept for after a sync but not vouched for by forwarding (verdict `ignore`).
 */
export type GossipCheck<T> =
  | { verdict: 'reject' | 'ignore' }
  | { verdict: 'accept'; deliver: T }
  | { verdict: 'ignore'; buffer: T };

/** A vote check may also say that a vote for the head's height is genuine, but too late to use. */
export type VoteGossipCheck = GossipCheck<Vote> | { verdict: 'ignore'; late: Vote };

export function checkVoteGossip(data: Uint8Array, view: GossipView): VoteGossipCheck {
  let vote: Vote;
  try {
    vote = decode(voteMessageCodec, data).vote;
  } catch {
    return { verdict: 'reject' };
  }
  const head = view.headHeight;
  const member = view.validators.has(vote.validator);
  if (vote.height === head && head > 0n) {
    // Late for the head: unused, but a genuine one shows its validator is up (proposer liveness).
    // Checked against the next set, which is the one whose liveness matters.
    // A forged one cost a signature check and is never forwarded (late votes are not), so it
    // comes from the peer that sent it: rejected, or it would be free work.
    if (!member) return { verdict: 'ignore' };
    if (!verifyVoteSignature(view.chainId, vote, view.verify)) return { verdict: 'reject' };
    return { verdict: 'ignore', late: vote };
  }
  if (vote.height <= head) return { verdict: 'ignore' };
  if (vote.height > head + 1n) {
    // A later height's set is not known yet (it may differ at an epoch boundary): keep what
    // plausibly comes from a validator, for after a sync, but do not vouch for it by forwarding.
    // A non-member is not checked (the set may change, so it is no fault), but a signature that
    // fails under the key the vote names is a forgery whatever the height: no honest node
    // forwards one (a relay checks the signature before it forwards, and never forwards a far
    // height's), so it is rejected. Answered `ignore` it cost a signature check each, for free.
    if (!member) return { verdict: 'ignore' };
    if (!verifyVoteSignature(view.chainId, vote, view.verify)) return { verdict: 'reject' };
    return { verdict: 'ignore', buffer: vote };
  }
  if (!member) return { verdict: 'reject' };
  if (!verifyVoteSignature(view.chainId, vote, view.verify)) return { verdict: 'reject' };
  return { verdict: 'accept', deliver: vote };
}

export function checkProposalGossip(data: Uint8Array, view: GossipView): GossipCheck<ProposalMessage> {
  let msg: ProposalMessage;
  try {
    msg = decode(proposalMessageCodec, data);
  } catch {
    return { verdict: 'reject' };
  }
  // The proposer signed the wire ids of the transactions it sent (`idsSignature`): a copy with
  // other transaction bytes under the same hashes (a signature altered on the way) is the
  // sender's fault, dropped here, and never reaches the check that would find the block invalid.
  // Whatever the height: a signature that fails under the proposer's key is the sender's doing.
  const checked = checkSignedProposal(msg, msg.block.header, view);
  if (('deliver' in checked || 'buffer' in checked) && !fullIdsSigned(view.chainId, msg, view.verify))
    return { verdict: 'reject' };
  return checked;
}

/**
 * A compact proposal (compact-block.ts): the same checks on the proposal and the header it
 * carries, and the proposer's signature over the id list (an altered copy of a genuine proposal
 * is rejected before it can take a fetch slot), and that its carried bodies are transactions of
 * that list; the transactions are checked once the block is rebuilt, like a full one's.
 */
export function checkCompactProposalGossip(
  data: Uint8Array,
  view: GossipView,
): GossipCheck<CompactProposalMessage> {
  let msg: CompactProposalMessage;
  try {
    msg = decode(compactProposalCodec, data);
  } catch {
    return { verdict: 'reject' };
  }
  const checked = checkSignedProposal(msg, msg.header, view);
  if (('deliver' in checked || 'buffer' in checked) && !compactIdsSigned(view.chainId, msg, view.verify))
    return { verdict: 'reject' };
  // Carried bodies that are not the signed ids' transactions, in order, were made up by the
  // sender (checked once the ids are known to be the proposer's: hashing them is the costly part).
  if (('deliver' in checked || 'buffer' in checked) && !carriedMatchesIds(msg)) return { verdict: 'reject' };
  return checked;
}

function checkSignedProposal<T extends { proposal: Proposal }>(
  msg: T,
  header: BlockHeader,
  view: GossipView,
): GossipCheck<T> {
  const { proposal } = msg;
  if (proposal.height <= view.headHeight) return { verdict: 'ignore' };
  if (header.height !== proposal.height || !equalBytes(blockHash(header), proposal.blockHash))
    return { verdict: 'reject' };
  const member = view.validators.has(proposal.proposer);
  if (proposal.height > view.headHeight + 1n) {
    // As for votes (checkVoteGossip): a non-member is no fault while the set of that height is
    // unknown, a signature that fails under the key the proposal names always is.
    if (!member) return { verdict: 'ignore' };
    if (!verifyProposalSignature(view.chainId, proposal, view.verify)) return { verdict: 'reject' };
    return { verdict: 'ignore', buffer: msg };
  }
  if (!member) return { verdict: 'reject' };
  if (!verifyProposalSignature(view.chainId, proposal, view.verify)) return { verdict: 'reject' };
  return { verdict: 'accept', deliver: msg };
}

/**
 * The proposer signed the header, which commits to the transactions and the last commit by hash;
 * a message whose copies do not match was altered on the way.
 */
export function signedContentMatches(msg: ProposalMessage, envelopes: readonly TxEnvelope[]): boolean {
  const { header } = msg.block;
  if (!equalBytes(commitHash(msg.lastCommit), header.lastCommitHash)) return false;
  return equalBytes(txRootOf(envelopes), header.txRoot);
}

/**
 * What this node holds against a proposal beyond the chain's rules, on its clock (`nowMs`), or
 * null. `invalid`: the block is not taken (not prevoted, relayed or decided here): a fresh
 * proposal (polRound -1) must carry a block its proposer built, and no block time may lie further
 * ahead of the clock than the drift allowed. `stale`: a fresh proposal whose block time lies more
 * than the drift behind the clock; the block stays valid, and this node only prevotes nil for it
 * (the driver asks when it would prevote, `nowMs` then being the later of the proposal's arrival
 * and its round's start: Tendermint's `timely`). A re-proposal (polRound ≥ 0) carries a block
 * an earlier round proposed, however long ago, and is never stale: 2/3+ may have prevoted it.
 * Without the stale rule a proposer could stamp its block at the previous block's time + 1 ms,
 * however long ago: after a stall, the first block's proposer chose on which side of the stall
 * its block's effects fell (a lease's start, an epoch's emission, expiries, posting windows).
 */
export interface ProposalProblem {
  kind: 'invalid' | 'stale';
  reason: string;
}

export function proposalEnvelopeProblem(
  proposal: Proposal,
  msg: { block: { header: BlockHeader } },
  nowMs: number,
  maxClockDriftMs: number,
): ProposalProblem | null {
  const { header } = msg.block;
  // A fresh block is the proposer's own; a re-proposal (polRound ≥ 0) carries an earlier round's.
  if (proposal.polRound === -1 && !equalBytes(header.proposer, proposal.proposer)) {
    return { kind: 'invalid', reason: 'a fresh proposal must carry a block built by its proposer' };
  }
  if (header.time > BigInt(nowMs + maxClockDriftMs))
    return { kind: 'invalid', reason: 'block time is in the future' };
  if (proposal.polRound === -1 && header.time < BigInt(nowMs - maxClockDriftMs))
    return {
      kind: 'stale',
      reason: `a fresh proposal's block time is ${BigInt(nowMs) - header.time} ms behind this node's clock`,
    };
  return null;
}

/** A gossiped batch of transactions, decoded; null (reject the sender) if any part is malformed. */
export function decodeTxBatch(data: Uint8Array): TxEnvelope[] | null {
  let raws: Uint8Array[];
  try {
    raws = decode(txBatchCodec, data);
  } catch {
    return null;
  }
  return decodeTxs(raws);
}

/** The block's transactions decoded once, for the content check and for execution; null if one is malformed. */
export function decodeTxs(txs: readonly Uint8Array[]): TxEnvelope[] | null {
  try {
    return txs.map((raw) => envelopeFromBytes(raw));
  } catch {
    return null;
  }
}

export function checkEvidenceGossip(
  data: Uint8Array,
  view: Pick<GossipView, 'chainId' | 'validators'> & {
    /** Whether the node holds enough evidence against this offender already (evidence-pool.ts). */
    hasEnoughAgainst?(offender: Uint8Array): boolean;
    /** Whether the evidence could land on this node's tip, signatures aside (evidence-pool.ts). */
    canLand?(evidence: ConsensusEvidence): boolean;
  },
): GossipCheck<ConsensusEvidence> {
  let evidence: ConsensusEvidence;
  try {
    evidence = decode(consensusEvidenceCodec, data);
  } catch {
    return { verdict: 'reject' };
  }
  // Before its signatures are checked: an offender can sign any number of conflicting pairs, and
  // one more proves nothing new. Not held against the peer (it may not have had enough yet).
  if (view.hasEnoughAgainst?.(evidenceOffender(evidence))) return { verdict: 'ignore' };
  // Nor one that cannot land (too old, of a height far ahead, of an epoch whose set lacks the
  // key): the offender can sign any number of those, and relayed they would cost every node two
  // signature checks each without holding one of its places.
  if (view.canLand && !view.canLand(evidence)) return { verdict: 'ignore' };
  // Checked against the current set only: evidence from an earlier epoch may be genuine, so an
  // offender outside this set is not held against the peer.
  if (!view.validators.has(evidenceOffender(evidence))) return { verdict: 'ignore' };
  // Every other rule (two conflicting messages of one slot, in order, each signed under the key
  // it names) is a fact of the bytes that no relay forwards unchecked: a failure is the sender's,
  // rejected. Answered `ignore`, forged evidence cost two signature checks each, for free.
  const why = verifyConsensusEvidence(view.chainId, view.validators, evidence);
  if (why) return { verdict: 'reject' };
  return { verdict: 'accept', deliver: evidence };
}

export type { Verdict };
