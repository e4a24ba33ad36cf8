/**
 * Evidence from a sync conflict: two commit certificates for one height, each on a different
 * block, are precommits of the same validators for two blocks. Where both are of the same round,
 * every validator that signed both signed two conflicting precommits of one slot, which is the
 * duplicate-vote evidence the evidence pool already gossips and puts on chain (core
 * `ConsensusEvidence`). Two certificates of one height each hold over two thirds of the power, so
 * their signers overlap by over a third: a certified fork proves that much double signing.
 * Certificates of different rounds prove only a lock violation, which this evidence format cannot
 * carry; the caller says so in the log.
 */
import {
  type Commit,
  type ConsensusEvidence,
  certificateVotes,
  duplicateVoteEvidence,
  equalBytes,
  toHex,
  verifyVoteSignature,
} from '@unc/core';

/** What two certificates of one height prove: the pairs to report, or why there are none. */
export type CommitConflict =
  /** `rejected`: entries of validators in both whose signature or `accept` failed. */
  | { kind: 'evidence'; evidence: ConsensusEvidence[]; rejected: number }
  | { kind: 'rounds'; ours: number; theirs: number; both: number; rejected: number }
  | { kind: 'none'; why: string };

/**
 * The duplicate-vote evidence that two commits of one height on different blocks carry, one piece
 * per validator that signed both, in `theirs`' order, at most `limit` pieces. `accept` is the
 * caller's check of a piece (signatures and the set: core `checkEvidence`); a validator counts as
 * reported only once a piece of it passed, so that an entry of it with a bad signature placed
 * first in `theirs` (whose signatures nothing checked: a peer serves it) does not hide a genuine
 * one after it. Each entry's signature is checked before `accept` runs (which reads and decodes a
 * set); entries tried are bounded by twice the lesser of `limit` and the signers of `ours`.
 */
export function commitConflictEvidence(
  chainId: string,
  ours: Commit,
  theirs: Commit,
  limit: number,
  accept: (evidence: ConsensusEvidence) => boolean = () => true,
): CommitConflict {
  if (ours.height !== theirs.height) return { kind: 'none', why: 'the commits are of different heights' };
  if (equalBytes(ours.blockHash, theirs.blockHash)) return { kind: 'none', why: 'the commits agree' };
  const mine = new Map(certificateVotes(ours).map((v) => [toHex(v.validator), v]));
  if (ours.round !== theirs.round) {
    // Counted on checked signatures only (as many tries as for pieces): the round of a peer's
    // commit is its word until then, and a forged one must not pass for a lock violation (and
    // end the probe) unchecked.
    let both = 0;
    let rejected = 0;
    let tries = 2 * Math.min(mine.size, limit);
    const counted = new Set<string>();
    for (const vote of certificateVotes(theirs)) {
      const id = toHex(vote.validator);
      if (!mine.has(id) || counted.has(id)) continue;
      if (tries-- <= 0) break;
      if (!verifyVoteSignature(chainId, vote)) {
        rejected++;
        continue;
      }
      counted.add(id);
      both++;
    }
    return { kind: 'rounds', ours: ours.round, theirs: theirs.round, both, rejected };
  }
  const evidence: ConsensusEvidence[] = [];
  const seen = new Set<string>();
  let tries = 2 * Math.min(mine.size, limit);
  let rejected = 0;
  for (const vote of certificateVotes(theirs)) {
    if (evidence.length >= limit || tries <= 0) break;
    const id = toHex(vote.validator);
    const other = mine.get(id);
    if (!other || seen.has(id)) continue;
    tries--;
    // Its signature first, one check: `accept` may cost far more (a set read and decoded).
    const piece = verifyVoteSignature(chainId, vote) ? duplicateVoteEvidence(chainId, other, vote) : null;
    if (!piece || !accept(piece)) {
      rejected++;
      continue;
    }
    seen.add(id);
    evidence.push(piece);
  }
  return { kind: 'evidence', evidence, rejected };
}
