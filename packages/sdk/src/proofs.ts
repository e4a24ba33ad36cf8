/**
 * Offline verification of what a node says: an account's balance and nonce are checked against a
 * header's state root with the Merkle proof, and the header against its hash.
 */
import {
  accountCodec,
  accountKey,
  blockHash,
  blockHeaderCodec,
  decode,
  decodeAddress,
  equalBytes,
  merkleProofCodec,
  verifyStateProof,
} from '@unc/core';
import { decodeField, hexField, ProofError } from './proof-fields.js';
import type { AccountJson, HeaderJson } from './views.js';

export type { ProofErrorCode } from './proof-fields.js';
export { ProofError };

/**
 * Checks that `header` is what its encoding says, hashes to `header.hash`, and that the account
 * read at that header is proven by the account's Merkle proof. Returns the verified balance and
 * nonce; throws ProofError otherwise. The caller decides whether it trusts the header's hash
 * (e.g. from a commit it verified, or a hash it already knows).
 */
export function verifyAccountProof(
  account: AccountJson,
  header: HeaderJson,
): { balance: bigint; nonce: bigint } {
  // Both come from a node that is not trusted: every field is checked before it is used.
  if (typeof account !== 'object' || account === null) throw new ProofError('the account is not an object');
  if (typeof header !== 'object' || header === null) throw new ProofError('the header is not an object');
  const decoded = decodeField(
    (b) => decode(blockHeaderCodec, b),
    hexField(header.encoded, 'header.encoded'),
    'header.encoded',
  );
  if (!equalBytes(blockHash(decoded), hexField(header.hash, 'header.hash', 32))) {
    throw new ProofError('the header does not hash to its claimed hash');
  }
  if (!Number.isSafeInteger(account.height)) throw new ProofError('account.height is not an integer');
  if (Number(decoded.height) !== account.height) {
    throw new ProofError(`the account was read at height ${account.height}, the header is ${decoded.height}`);
  }
  if (account.proof === undefined || account.value === undefined)
    throw new ProofError('the account has no proof');
  const proof = decodeField(
    (b) => decode(merkleProofCodec, b),
    hexField(account.proof, 'account.proof'),
    'account.proof',
  );
  const value = account.value === null ? null : hexField(account.value, 'account.value');
  let address: Uint8Array;
  try {
    address = decodeAddress(account.address);
  } catch (err) {
    throw new ProofError(`account.address: ${(err as Error).message}`);
  }
  if (!verifyStateProof(decoded.stateRoot, accountKey(address), value, proof)) {
    throw new ProofError('the Merkle proof does not match the header state root', 'BAD_PROOF');
  }
  const proven = value
    ? decodeField((b) => decode(accountCodec, b), value, 'account.value')
    : { balance: 0n, nonce: 0n };
  if (proven.balance.toString() !== account.balance || Number(proven.nonce) !== account.nonce) {
    throw new ProofError('the reported balance or nonce differs from the proven value', 'MISMATCH');
  }
  return proven;
}
