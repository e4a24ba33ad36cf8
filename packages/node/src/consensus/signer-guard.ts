/**
 * A validator whose signer state file is missing starts a fresh signer: one that remembers no slot
 * it signed. That is right for a validator that never signed with this data directory, and wrong
 * for one that did: a node that crashed part-way through a height, its `privval.json` lost (a
 * restore from a backup that lacked it, a copied data directory, a hand deletion), would sign again
 * at the height it had voted at, perhaps another block: equivocation, slashed and tombstoned.
 *
 * The chain store tells them apart well enough: the commit of each stored block lists the
 * precommits that decided it. If this validator's key is among those of the last few heights, it
 * signed with this chain store lately, and the node refuses to start validating without its signer
 * state unless the operator says so explicitly (`allowFreshSigner`, `unc start --allow-fresh-signer`).
 * A guard, not a proof: a commit holds only the precommits its proposer gathered, so a validator
 * whose precommits were left out of all of them is not caught. One that lost its whole data
 * directory has no chain store to search at start: the driver holds its fresh signer until it has
 * caught up and searches the commits it then holds (driver.ts `releaseSigner`).
 */
import { equalBytes, toHex } from '@unc/core';
import type { Chain } from '../chain.js';
import type { PrivvalStorage } from './privval-store.js';

/** The last heights whose commits are searched for this validator's precommits. */
export const SIGNER_GUARD_HEIGHTS = 8n;

/**
 * The heights among the chain store's last `heights` (head down) whose stored commit holds a
 * precommit of `publicKey`, highest first.
 */
export async function recentlySignedHeights(
  chain: Chain,
  publicKey: Uint8Array,
  heights: bigint = SIGNER_GUARD_HEIGHTS,
): Promise<bigint[]> {
  const found: bigint[] = [];
  const head = chain.height;
  for (let h = head; h >= 1n && h > head - heights; h--) {
    const block = await chain.blockAt(h);
    if (block?.commit.signatures.some((s) => equalBytes(s.validator, publicKey))) found.push(h);
  }
  return found;
}

/** Why a validator refuses to start with a fresh signer (SignerStateMissing.message says what to do). */
export class SignerStateMissing extends Error {
  readonly code = 'SIGNER_STATE_MISSING';
  constructor(
    readonly where: string,
    readonly heights: readonly bigint[],
    publicKey: Uint8Array,
    head: bigint,
  ) {
    const list = heights.map(String).join(', ');
    super(
      `${where} (the signer state) is missing, but the chain store holds precommits of this validator ` +
        `(${toHex(publicKey).slice(0, 16)}…) at height(s) ${list}: it signed with this data directory ` +
        `lately, and a fresh signer remembers no vote it cast, so after a crash during height ${head + 1n} ` +
        `it could sign a second, conflicting vote there (equivocation: the bond is slashed and the ` +
        `validator removed for good). Restore ${where} (with the ${where}.proposal-* file it names) from ` +
        'where it was, and start again. If it is lost for good: start the node without --validator ' +
        `until its chain has synced past height ${head + 1n} (a fresh signer then begins after every ` +
        'height it may have voted at), then with --validator, adding --allow-fresh-signer if this ' +
        'refusal comes again.',
    );
    this.name = 'SignerStateMissing';
  }
}

/**
 * Throws SignerStateMissing when `storage` holds no signer state and the chain store's last
 * SIGNER_GUARD_HEIGHTS commits hold a precommit of `publicKey`, unless `allowFreshSigner`. A signer
 * state that is there (readable or not: loadPrivvalFrom judges it) passes.
 */
export async function refuseFreshSignerAfterSigning(
  storage: PrivvalStorage,
  chain: Chain,
  publicKey: Uint8Array,
  allowFreshSigner = false,
): Promise<void> {
  if (allowFreshSigner || storage.read() !== null) return;
  const heights = await recentlySignedHeights(chain, publicKey);
  if (heights.length > 0) throw new SignerStateMissing(storage.where, heights, publicKey, chain.height);
}
