/**
 * The private validator: the only holder of a validator's consensus key, and the last line of
 * defence against double signing. It signs a message only if its (height, round, step) is later
 * than everything signed before, or is the very same message again. Its state is what a node
 * must persist before a signature leaves the process (the simulator keeps it across crashes):
 * with it, a restarted node cannot sign a second, different vote for a slot it already voted in,
 * and it recovers its lock from its own last non-nil precommit.
 */
import { equalBytes } from '../bytes.js';
import { ed25519PublicKey, ed25519Sign } from '../crypto/ed25519.js';
import {
  type Proposal,
  proposalSignBytes,
  type UnsignedProposal,
  type UnsignedVote,
  type Vote,
  voteSignBytes,
} from './messages.js';

/** Order of signing steps inside one round (exported for a signer state rebuilt from signed messages). */
export const SIGN_STEP = { proposal: 1, prevote: 2, precommit: 3 } as const;
const STEP = SIGN_STEP;

/**
 * The last signing step of a round (a precommit): a kept state's `step` is 0 (nothing signed yet)
 * to this. Exported so that a node reading a kept state back checks it against this table, not a
 * copy of it.
 */
export const MAX_SIGN_STEP = STEP.precommit;

/** How many of the latest votes of the current height are kept for re-broadcast after a restart. */
export const KEPT_VOTES = 4;

export interface PrivValidatorState {
  height: bigint;
  round: number;
  /** 0 before anything was signed; then 1 proposal, 2 prevote, 3 precommit. */
  step: number;
  signBytes: Uint8Array | null;
  signature: Uint8Array | null;
  /** The last non-nil precommit of `height`: exactly the Tendermint lock (lockedRound, lockedValue). */
  lock: Vote | null;
  /** The latest votes signed at `height`, oldest first. */
  votes: Vote[];
}

export function initialPrivValidatorState(): PrivValidatorState {
  return { height: 0n, round: 0, step: 0, signBytes: null, signature: null, lock: null, votes: [] };
}

export class PrivValidator {
  readonly publicKey: Uint8Array;
  private s: PrivValidatorState;

  constructor(
    private readonly seed: Uint8Array,
    readonly chainId: string,
    state: PrivValidatorState = initialPrivValidatorState(),
  ) {
    this.publicKey = ed25519PublicKey(seed);
    this.s = cloneState(state);
  }

  /** A copy of what must be persisted (before the signature is released, in a real node). */
  get state(): PrivValidatorState {
    return cloneState(this.s);
  }

  /** The signed vote, or null when signing it could be a double sign. */
  signVote(vote: UnsignedVote): Vote | null {
    if (!equalBytes(vote.validator, this.publicKey)) return null;
    const bytes = voteSignBytes(this.chainId, vote);
    const signature = this.sign(vote.height, vote.round, STEP[vote.type], bytes);
    if (!signature) return null;
    const signed: Vote = { ...vote, signature };
    if (!this.s.votes.some((v) => equalBytes(v.signature, signature))) {
      this.s.votes = [...this.s.votes, signed].slice(-KEPT_VOTES);
    }
    if (vote.type === 'precommit' && vote.blockHash !== null) this.s.lock = signed;
    return signed;
  }

  signProposal(proposal: UnsignedProposal): Proposal | null {
    if (!equalBytes(proposal.proposer, this.publicKey)) return null;
    const bytes = proposalSignBytes(this.chainId, proposal);
    const signature = this.sign(proposal.height, proposal.round, STEP.proposal, bytes);
    return signature ? { ...proposal, signature } : null;
  }

  /** The lock this validator holds at `height`, recovered from its own signatures. */
  lockAt(height: bigint): Vote | null {
    return this.s.height === height ? this.s.lock : null;
  }

  votesAt(height: bigint): Vote[] {
    return this.s.height === height ? [...this.s.votes] : [];
  }

  /** The last round signed in at `height`, or -1. */
  lastRoundAt(height: bigint): number {
    return this.s.height === height && this.s.step > 0 ? this.s.round : -1;
  }

  private sign(height: bigint, round: number, step: number, bytes: Uint8Array): Uint8Array | null {
    const s = this.s;
    const order =
      height < s.height ? -1 : height > s.height ? 1 : round !== s.round ? round - s.round : step - s.step;
    if (order < 0) return null;
    if (order === 0) {
      // Re-signing identical bytes is harmless and lets a restarted node re-send its last vote.
      return s.signBytes && s.signature && equalBytes(s.signBytes, bytes) ? s.signature : null;
    }
    const signature = ed25519Sign(this.seed, bytes);
    if (height !== s.height) {
      s.lock = null;
      s.votes = [];
    }
    s.height = height;
    s.round = round;
    s.step = step;
    s.signBytes = bytes;
    s.signature = signature;
    return signature;
  }
}

function cloneState(s: PrivValidatorState): PrivValidatorState {
  return { ...s, votes: [...s.votes] };
}
