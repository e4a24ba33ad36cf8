/**
 * A block's commit is the consensus layer's CommitCertificate carried in the block: the same
 * fields, the same encoding. These are the two directions between them and the check a node runs
 * on a block it did not see decided.
 */
import { equalBytes, toHex } from '../bytes.js';
import type { Commit } from '../chain/block.js';
import { ValidationError } from '../errors.js';
import { type CommitCertificate, defaultVerify, type VerifyFn, verifyCommitCertificate } from './messages.js';
import type { ValidatorSet } from './validators.js';

/** The commit a block carries for a decided certificate (copies, so neither aliases the other). */
export function commitFromCertificate(cert: CommitCertificate): Commit {
  return {
    height: cert.height,
    round: cert.round,
    blockHash: cert.blockHash.slice(),
    signatures: cert.signatures.map((s) => ({
      validator: s.validator.slice(),
      signature: s.signature.slice(),
    })),
  };
}

export function certificateFromCommit(commit: Commit): CommitCertificate {
  return commitFromCertificate(commit);
}

/**
 * Checks that `commit` finalizes the block `blockHash` at `height`: each signature is a precommit
 * (consensus/messages.ts `voteSignBytes`) for exactly (chainId, height, commit.round, blockHash) by
 * a distinct member of `set`, and the signers hold more than 2/3 of its power. Returns the power
 * that signed; throws ValidationError('BAD_COMMIT', why) otherwise.
 */
export function verifyBlockCommit(
  set: ValidatorSet,
  chainId: string,
  commit: Commit,
  blockHash: Uint8Array,
  height: bigint,
  verify: VerifyFn = defaultVerify,
): bigint {
  if (commit.height !== height) {
    throw new ValidationError('BAD_COMMIT', `commit is for height ${commit.height}, not ${height}`);
  }
  if (!equalBytes(commit.blockHash, blockHash)) {
    throw new ValidationError(
      'BAD_COMMIT',
      `commit is for block ${toHex(commit.blockHash)}, not ${toHex(blockHash)}`,
    );
  }
  const check = verifyCommitCertificate(chainId, set, commit, verify);
  if (!check.ok) throw new ValidationError('BAD_COMMIT', `commit of block ${height}: ${check.reason}`);
  return check.power;
}
