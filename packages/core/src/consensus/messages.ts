/**
 * Consensus messages: proposals, prevotes and precommits, the commit certificate that makes a block
 * final, and equivocation evidence. Each has a canonical codec (encoding/codec.ts) and each
 * signature covers a domain-separated encoding that names the chain, so that a signature made for
 * one purpose, chain, height or round is never valid for another.
 */

import { compareBytes, equalBytes, toHex } from '../bytes.js';
import { ed25519Sign, ed25519Verify } from '../crypto/ed25519.js';
import { taggedHash } from '../crypto/hash.js';
import {
  type Codec,
  list,
  option,
  string,
  struct,
  taggedUnion,
  u32,
  u64,
  Writer,
} from '../encoding/codec.js';
import { chainIdCodec, hash32, publicKey, signature64 } from '../encoding/primitives.js';
import { DecodeError } from '../errors.js';
import { MAX_VALIDATORS, type ValidatorSet } from './validators.js';

export type VoteType = 'prevote' | 'precommit';

/** A signed vote. `blockHash` null is a vote for nil ("no block this round"). */
export interface Vote {
  type: VoteType;
  height: bigint;
  round: number;
  blockHash: Uint8Array | null;
  validator: Uint8Array;
  signature: Uint8Array;
}

export type UnsignedVote = Omit<Vote, 'signature'>;

/**
 * A signed proposal of `blockHash` for (height, round). `polRound` is the round of the polka
 * (2/3+ prevotes) that justifies re-proposing a block, or -1 for a fresh block: the "validRound"
 * field of the Tendermint paper's PROPOSAL message.
 */
export interface Proposal {
  height: bigint;
  round: number;
  polRound: number;
  blockHash: Uint8Array;
  proposer: Uint8Array;
  signature: Uint8Array;
}

export type UnsignedProposal = Omit<Proposal, 'signature'>;

/** Verifies an Ed25519 signature; injectable so a driver can cache results or batch them. */
export type VerifyFn = (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array) => boolean;

export const defaultVerify: VerifyFn = ed25519Verify;

const VOTE_TAGS: Record<VoteType, number> = { prevote: 1, precommit: 2 };

export const voteTypeCodec: Codec<VoteType> = {
  name: 'VoteType',
  write(w, v) {
    const tag = VOTE_TAGS[v];
    if (tag === undefined) throw new RangeError(`unknown vote type ${String(v)}`);
    w.u8(tag);
  },
  read(r) {
    const tag = r.u8('VoteType');
    if (tag === 1) return 'prevote';
    if (tag === 2) return 'precommit';
    throw new DecodeError(`unknown vote type tag ${tag}`);
  },
};

/** -1 ("no polka") is 0x00; a round r is 0x01 followed by r as u32, like an option. */
export const polRoundCodec: Codec<number> = {
  name: 'polRound',
  write(w, v) {
    if (v === -1) w.u8(0);
    else {
      w.u8(1);
      u32.write(w, v);
    }
  },
  read(r) {
    const tag = r.u8('polRound tag');
    if (tag === 0) return -1;
    if (tag === 1) return r.u32('polRound');
    throw new DecodeError(`polRound tag must be 0 or 1, got ${tag}`);
  },
};

const optionalHash = option(hash32);

export const voteCodec: Codec<Vote> = struct<Vote>('Vote', {
  type: voteTypeCodec,
  height: u64,
  round: u32,
  blockHash: optionalHash,
  validator: publicKey,
  signature: signature64,
});

export const proposalCodec: Codec<Proposal> = struct<Proposal>('Proposal', {
  height: u64,
  round: u32,
  polRound: polRoundCodec,
  blockHash: hash32,
  proposer: publicKey,
  signature: signature64,
});

const domainCodec = string(32, 'domain');

function signBytes(build: (w: Writer) => void): Uint8Array {
  const w = new Writer(128);
  build(w);
  return w.finish();
}

/** 'UNC/vote' ‖ chainId ‖ type ‖ height ‖ round ‖ blockHash-or-nil, each in its canonical codec. */
export function voteSignBytes(chainId: string, vote: UnsignedVote): Uint8Array {
  return signBytes((w) => {
    domainCodec.write(w, 'UNC/vote');
    chainIdCodec.write(w, chainId);
    voteTypeCodec.write(w, vote.type);
    u64.write(w, vote.height);
    u32.write(w, vote.round);
    optionalHash.write(w, vote.blockHash);
  });
}

/** 'UNC/proposal' ‖ chainId ‖ height ‖ round ‖ polRound ‖ blockHash. */
export function proposalSignBytes(chainId: string, proposal: UnsignedProposal): Uint8Array {
  return signBytes((w) => {
    domainCodec.write(w, 'UNC/proposal');
    chainIdCodec.write(w, chainId);
    u64.write(w, proposal.height);
    u32.write(w, proposal.round);
    polRoundCodec.write(w, proposal.polRound);
    hash32.write(w, proposal.blockHash);
  });
}

export function signVote(chainId: string, vote: UnsignedVote, seed: Uint8Array): Vote {
  return { ...vote, signature: ed25519Sign(seed, voteSignBytes(chainId, vote)) };
}

export function signProposal(chainId: string, proposal: UnsignedProposal, seed: Uint8Array): Proposal {
  return { ...proposal, signature: ed25519Sign(seed, proposalSignBytes(chainId, proposal)) };
}

export function verifyVoteSignature(chainId: string, vote: Vote, verify: VerifyFn = defaultVerify): boolean {
  return verify(vote.validator, voteSignBytes(chainId, vote), vote.signature);
}

export function verifyProposalSignature(
  chainId: string,
  proposal: Proposal,
  verify: VerifyFn = defaultVerify,
): boolean {
  return verify(proposal.proposer, proposalSignBytes(chainId, proposal), proposal.signature);
}

export function sameBlockHash(a: Uint8Array | null, b: Uint8Array | null): boolean {
  if (a === null || b === null) return a === b;
  return equalBytes(a, b);
}

/** Map key for a vote's value: the block hash in hex, or 'nil'. */
export function valueKey(blockHash: Uint8Array | null): string {
  return blockHash === null ? 'nil' : toHex(blockHash);
}

// ---------------------------------------------------------------------------------------------
// Commit certificates

export interface CertificateSignature {
  validator: Uint8Array;
  signature: Uint8Array;
}

/**
 * Precommits of more than 2/3 of the voting power for one block in one round. All of them sign
 * the same (height, round, blockHash), so only validator and signature are stored. The round is
 * part of what was signed and so must be carried: without it a precommit could not be checked.
 */
export interface CommitCertificate {
  height: bigint;
  round: number;
  blockHash: Uint8Array;
  signatures: CertificateSignature[];
}

export const commitCertificateCodec: Codec<CommitCertificate> = struct<CommitCertificate>(
  'CommitCertificate',
  {
    height: u64,
    round: u32,
    blockHash: hash32,
    signatures: list(
      struct<CertificateSignature>('CertificateSignature', { validator: publicKey, signature: signature64 }),
      MAX_VALIDATORS,
      'signatures',
    ),
  },
);

/** Sorted by validator key, so that the same set of precommits always encodes the same way. */
export function certificateFromVotes(votes: readonly Vote[]): CommitCertificate {
  const first = votes[0];
  if (!first || first.blockHash === null) throw new RangeError('a certificate needs precommits for a block');
  for (const v of votes) {
    if (v.type !== 'precommit' || v.height !== first.height || v.round !== first.round) {
      throw new RangeError('certificate votes must be precommits of one height and round');
    }
    if (!sameBlockHash(v.blockHash, first.blockHash)) throw new RangeError('certificate votes disagree');
  }
  const signatures = votes
    .map((v) => ({ validator: v.validator, signature: v.signature }))
    .sort((a, b) => compareBytes(a.validator, b.validator));
  return { height: first.height, round: first.round, blockHash: first.blockHash, signatures };
}

export function certificateVotes(cert: CommitCertificate): Vote[] {
  return cert.signatures.map((s) => ({
    type: 'precommit',
    height: cert.height,
    round: cert.round,
    blockHash: cert.blockHash,
    validator: s.validator,
    signature: s.signature,
  }));
}

export function commitCertificateHash(cert: CommitCertificate): Uint8Array {
  const w = new Writer();
  commitCertificateCodec.write(w, cert);
  return taggedHash('UNC/commit-certificate', w.finish());
}

export type CertificateCheck = { ok: true; power: bigint } | { ok: false; reason: string };

/**
 * A certificate is valid when its signers are distinct members of `validators`, every signature
 * verifies, and their power is a quorum of `validators`. Nothing else is trusted: this is what a
 * syncing node or a light client runs on a block it got from a stranger.
 */
export function verifyCommitCertificate(
  chainId: string,
  validators: ValidatorSet,
  cert: CommitCertificate,
  verify: VerifyFn = defaultVerify,
): CertificateCheck {
  const seen = new Set<string>();
  let power = 0n;
  for (const vote of certificateVotes(cert)) {
    const id = toHex(vote.validator);
    if (seen.has(id)) return { ok: false, reason: `validator ${id} signs twice` };
    seen.add(id);
    const p = validators.powerOf(vote.validator);
    if (p === 0n) return { ok: false, reason: `signer ${id} is not a validator` };
    if (!verifyVoteSignature(chainId, vote, verify)) return { ok: false, reason: `bad signature by ${id}` };
    power += p;
  }
  if (!validators.hasQuorum(power)) {
    return { ok: false, reason: `signers hold ${power} of ${validators.totalPower} voting power: no quorum` };
  }
  return { ok: true, power };
}

// ---------------------------------------------------------------------------------------------
// Evidence

/**
 * Proof that one validator signed two different votes (or proposals) for the same height, round
 * and type. Either message alone is legitimate; the pair is not, and PROTOCOL.md §6 slashes for
 * it. The two messages are stored in a canonical order so each offence has one encoding.
 */
export type ConsensusEvidence =
  | { type: 'duplicate-vote'; first: Vote; second: Vote }
  | { type: 'duplicate-proposal'; first: Proposal; second: Proposal };

export const consensusEvidenceCodec: Codec<ConsensusEvidence> = taggedUnion<ConsensusEvidence>(
  'ConsensusEvidence',
  {
    'duplicate-vote': [1, struct('DuplicateVote', { first: voteCodec, second: voteCodec })],
    'duplicate-proposal': [2, struct('DuplicateProposal', { first: proposalCodec, second: proposalCodec })],
  },
);

export function duplicateVoteEvidence(chainId: string, a: Vote, b: Vote): ConsensusEvidence {
  const [first, second] =
    compareBytes(voteSignBytes(chainId, a), voteSignBytes(chainId, b)) <= 0 ? [a, b] : [b, a];
  return { type: 'duplicate-vote', first, second };
}

export function duplicateProposalEvidence(chainId: string, a: Proposal, b: Proposal): ConsensusEvidence {
  const [first, second] =
    compareBytes(proposalSignBytes(chainId, a), proposalSignBytes(chainId, b)) <= 0 ? [a, b] : [b, a];
  return { type: 'duplicate-proposal', first, second };
}

/** The validator an evidence accuses. */
export function evidenceOffender(evidence: ConsensusEvidence): Uint8Array {
  return evidence.type === 'duplicate-vote' ? evidence.first.validator : evidence.first.proposer;
}

/**
 * Why evidence fails, by kind: `BAD_EVIDENCE_PROOF` (the two messages do not prove an offence:
 * different signers or slots, no conflict, not in canonical order) and `BAD_EVIDENCE_SIGNATURE` (a
 * signature that does not verify over its message for `chainId`) are facts of the bytes, whatever
 * the state; `BAD_EVIDENCE` (the signer is not in `validators`) depends on the set it is checked
 * against. A node blames and remembers only the first two (node mempool.ts PROVABLY_BAD_EVIDENCE).
 */
export type EvidenceFaultCode = 'BAD_EVIDENCE' | 'BAD_EVIDENCE_PROOF' | 'BAD_EVIDENCE_SIGNATURE';

/**
 * Checks evidence from an untrusted source: one validator of `validators`, the same slot, two
 * different signed contents, both signatures valid, canonical order. Returns the fault, or null.
 * The signatures are checked last, so evidence of a signer outside the set costs no check.
 */
export function consensusEvidenceFault(
  chainId: string,
  validators: ValidatorSet,
  evidence: ConsensusEvidence,
  verify: VerifyFn = defaultVerify,
): { code: EvidenceFaultCode; reason: string } | null {
  const proof = (reason: string) => ({ code: 'BAD_EVIDENCE_PROOF' as const, reason });
  const notValidator = { code: 'BAD_EVIDENCE' as const, reason: 'signer is not a validator' };
  const badSignature = { code: 'BAD_EVIDENCE_SIGNATURE' as const, reason: 'bad signature' };
  if (evidence.type === 'duplicate-vote') {
    const { first: a, second: b } = evidence;
    if (!equalBytes(a.validator, b.validator)) return proof('votes are by different validators');
    if (a.type !== b.type || a.height !== b.height || a.round !== b.round)
      return proof('votes are for different slots');
    if (sameBlockHash(a.blockHash, b.blockHash)) return proof('votes do not conflict');
    if (!validators.has(a.validator)) return notValidator;
    if (compareBytes(voteSignBytes(chainId, a), voteSignBytes(chainId, b)) >= 0)
      return proof('not in canonical order');
    if (!verifyVoteSignature(chainId, a, verify) || !verifyVoteSignature(chainId, b, verify)) {
      return badSignature;
    }
    return null;
  }
  const { first: a, second: b } = evidence;
  if (!equalBytes(a.proposer, b.proposer)) return proof('proposals are by different validators');
  if (a.height !== b.height || a.round !== b.round) return proof('proposals are for different slots');
  if (equalBytes(a.blockHash, b.blockHash) && a.polRound === b.polRound)
    return proof('proposals do not conflict');
  if (!validators.has(a.proposer)) return notValidator;
  if (compareBytes(proposalSignBytes(chainId, a), proposalSignBytes(chainId, b)) >= 0) {
    return proof('not in canonical order');
  }
  if (!verifyProposalSignature(chainId, a, verify) || !verifyProposalSignature(chainId, b, verify)) {
    return badSignature;
  }
  return null;
}

/** `consensusEvidenceFault`'s reason alone, or null when the evidence verifies. */
export function verifyConsensusEvidence(
  chainId: string,
  validators: ValidatorSet,
  evidence: ConsensusEvidence,
  verify: VerifyFn = defaultVerify,
): string | null {
  return consensusEvidenceFault(chainId, validators, evidence, verify)?.reason ?? null;
}
