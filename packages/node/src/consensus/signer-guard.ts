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
 *
 * Commits cover only decided heights. The lost node may also have signed at the undecided height
 * above the head (a prevote or precommit of a round that decided nothing yet), and its peers keep
 * re-sending those messages: while held, the driver notes every one signed by its own key
 * (`OwnSignaturesAbove`), and releases the signer with the state those messages prove, as if it
 * had been restored, so the signer's own slot rule refuses any conflicting signature there.
 */
import {
  type CommitCertificate,
  certificateVotes,
  equalBytes,
  KEPT_VOTES,
  type PrivValidatorState,
  type Proposal,
  proposalSignBytes,
  SIGN_STEP,
  toHex,
  type VerifyFn,
  type Vote,
  voteSignBytes,
} from '@unc/core';
import type { Chain } from '../chain.js';
import type { PrivvalStorage } from './privval-store.js';

/** The last heights whose commits are searched for this validator's precommits. */
export const SIGNER_GUARD_HEIGHTS = 8n;

/**
 * The heights among the chain's last `heights` (tip down) whose commit holds a precommit of
 * `publicKey`, or whose block `publicKey` proposed (the header names its proposer, which signed the
 * proposal and the VRF proof: it was signing at that height even where its precommit is left out
 * of the commit, which holds only those the next proposer gathered), highest first. From the tip,
 * the decided block whose write may be in flight: a held signer's release may run while it is
 * written, and searched from the head it missed that block.
 */
export async function recentlySignedHeights(
  chain: Chain,
  publicKey: Uint8Array,
  heights: bigint = SIGNER_GUARD_HEIGHTS,
): Promise<bigint[]> {
  const found: bigint[] = [];
  const tip = chain.tip;
  const top = tip.header.height;
  for (let h = top; h >= 1n && h > top - heights; h--) {
    const block = h === top ? tip.block : await chain.blockAt(h);
    if (!block) continue;
    if (
      equalBytes(block.header.proposer, publicKey) ||
      block.commit.signatures.some((s) => equalBytes(s.validator, publicKey))
    )
      found.push(h);
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
      `${where} (the signer state) is missing, but the chain store holds precommits or blocks of this validator ` +
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

/** A slot signed (height, round, step), with what was signed there. */
interface SignedSlot {
  height: bigint;
  round: number;
  step: number;
  signBytes: Uint8Array;
  signature: Uint8Array;
}

/** What one height's own messages prove: the latest slot, the lock and the latest votes. */
interface HeightSeen {
  top: SignedSlot;
  lock: Vote | null;
  votes: Vote[];
}

/**
 * How many heights above the head are kept at once. The one that matters is the lowest: once
 * caught up, the lost node can have signed at no height above head + 1 (a validator signs at a
 * height only after committing the one before); higher ones are from a node still syncing (the
 * lower ones then drop out as the head passes them) or from another chain with this chain id.
 */
const HEIGHTS_KEPT = Number(SIGNER_GUARD_HEIGHTS);

/**
 * What a held fresh signer saw of its own key's signatures above its head: per height, the latest
 * slot (height, round, step), the lock (last non-nil precommit) and the latest votes, which is
 * exactly what a signer state keeps (privval.ts). Only a message whose signature verifies under
 * this key counts, so a forgery changes nothing; one at or below the head is not kept, since the
 * commit search covers decided heights and the signer begins above the head anyway (so replays of
 * old genuine messages change nothing). At release only head + 1 counts (`stateAbove`): a genuine
 * message further up comes from another chain with this chain id (a relaunch, a test chain), and
 * taking it would make the signer refuse every height below it, for good. Heights are kept
 * separately so that one far up hides no nearer one. Bounded: HEIGHTS_KEPT heights (the nearest),
 * each one slot, one lock, KEPT_VOTES votes.
 */
export class OwnSignaturesAbove {
  private readonly heights = new Map<bigint, HeightSeen>();
  private sawOwn = false;

  constructor(
    private readonly chainId: string,
    private readonly publicKey: Uint8Array,
    private readonly verify: VerifyFn,
  ) {}

  /** Heights noted now (tests: the bound). */
  get heightsKept(): number {
    return this.heights.size;
  }

  /**
   * Whether any message this key signed (checked), at any height, was seen: a trace of a life
   * that signed before this one, which takes away a new chain's launch exemption (driver.ts
   * `launchExempt`). Never cleared.
   */
  get sawAny(): boolean {
    return this.sawOwn;
  }

  /** Notes `vote` if this key signed it (checked) above `head`; says whether it was noted. */
  noteVote(vote: Vote, head: bigint): boolean {
    if (!equalBytes(vote.validator, this.publicKey)) return false;
    const signBytes = voteSignBytes(this.chainId, vote);
    if (!this.verify(this.publicKey, signBytes, vote.signature)) return false;
    this.sawOwn = true;
    if (vote.height <= head) return false;
    const slot = { height: vote.height, round: vote.round, step: SIGN_STEP[vote.type] };
    const seen = this.noteSlot({ ...slot, signBytes, signature: vote.signature }, head);
    if (!seen) return false;
    if (!seen.votes.some((v) => equalBytes(v.signature, vote.signature))) {
      seen.votes = [...seen.votes, vote]
        .sort((a, b) => a.round - b.round || SIGN_STEP[a.type] - SIGN_STEP[b.type])
        .slice(-KEPT_VOTES);
    }
    if (vote.type === 'precommit' && vote.blockHash !== null && (!seen.lock || vote.round > seen.lock.round))
      seen.lock = vote;
    return true;
  }

  /**
   * Notes this key's precommit in `commit` (a proposal's last commit, another node's certificate of
   * the head), signature checked, as a trace (`sawAny`): never kept as a slot, the commit's height
   * being at or below the head. A proposal for head + 1 carries the commit of the head its proposer
   * gathered, which may hold this key's precommit where the commit this node stored does not.
   */
  noteCommit(commit: CommitCertificate, head: bigint): void {
    for (const vote of certificateVotes(commit))
      if (equalBytes(vote.validator, this.publicKey)) this.noteVote(vote, head);
  }

  /** Notes `proposal` if this key signed it (checked) above `head`; says whether it was noted. */
  noteProposal(proposal: Proposal, head: bigint): boolean {
    if (!equalBytes(proposal.proposer, this.publicKey)) return false;
    const signBytes = proposalSignBytes(this.chainId, proposal);
    if (!this.verify(this.publicKey, signBytes, proposal.signature)) return false;
    this.sawOwn = true;
    if (proposal.height <= head) return false;
    const slot = { height: proposal.height, round: proposal.round, step: SIGN_STEP.proposal };
    return this.noteSlot({ ...slot, signBytes, signature: proposal.signature }, head) !== null;
  }

  /**
   * The signer state the signatures seen at `head` + 1 prove (null when none): a signer built
   * from it signs nothing at or before the latest slot seen there but the very same message, and
   * starts that height locked as its precommits left it.
   */
  stateAbove(head: bigint): PrivValidatorState | null {
    const seen = this.heights.get(head + 1n);
    if (!seen) return null;
    const { top } = seen;
    return {
      height: top.height,
      round: top.round,
      step: top.step,
      signBytes: top.signBytes,
      signature: top.signature,
      lock: seen.lock,
      votes: [...seen.votes],
    };
  }

  /** The height's record with `slot` noted (the later slot wins), or null when not kept. */
  private noteSlot(slot: SignedSlot, head: bigint): HeightSeen | null {
    for (const h of this.heights.keys()) if (h <= head) this.heights.delete(h);
    const seen = this.heights.get(slot.height);
    if (!seen) {
      if (this.heights.size >= HEIGHTS_KEPT) {
        const highest = [...this.heights.keys()].reduce((a, b) => (a > b ? a : b));
        if (slot.height > highest) return null;
        this.heights.delete(highest);
      }
      const fresh = { top: slot, lock: null, votes: [] };
      this.heights.set(slot.height, fresh);
      return fresh;
    }
    // The later slot wins. Two messages of one slot (the lost node equivocated already) keep the
    // first: a signer refuses the other either way.
    const { top } = seen;
    if (slot.round > top.round || (slot.round === top.round && slot.step > top.step)) seen.top = slot;
    return seen;
  }
}
