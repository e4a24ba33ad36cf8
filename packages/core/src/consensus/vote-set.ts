/**
 * The votes of one (height, round, type). It is the only place where voting power is added up, so
 * the two properties that make quorums meaningful live here: a vote counts only after its
 * signature and its signer's membership are checked, and no validator is ever counted twice: at
 * most once towards any one value, and once towards the total of all votes.
 */
import { type Codec, list, struct, u32, u64 } from '../encoding/codec.js';
import {
  defaultVerify,
  sameBlockHash,
  type VerifyFn,
  type Vote,
  type VoteType,
  valueKey,
  verifyVoteSignature,
  voteCodec,
  voteTypeCodec,
} from './messages.js';
import { MAX_VALIDATORS, type ValidatorSet } from './validators.js';

export type AddVoteResult =
  | { kind: 'added' }
  /** The same vote again (gossip repeats itself); nothing changes. */
  | { kind: 'duplicate' }
  /**
   * A validly signed vote for a different value than this validator's first one: equivocation.
   * `counted` says whether it was added to its value's tally (see MAX_VALUES_PER_VALIDATOR).
   */
  | { kind: 'conflict'; existing: Vote; counted: boolean }
  | { kind: 'rejected'; reason: string };

/**
 * How many different values one validator's votes are counted for. The paper counts messages
 * per value from distinct senders, so an equivocator's vote for v does count towards v: without
 * that, an honest node that saw the equivocator's other vote first could never recognise a
 * quorum for v that the rest of the network did see, and would stall. Safety does not suffer
 * (the 1/3 bound already assumes Byzantine votes go everywhere); the bound only caps the memory
 * one equivocator can make us spend.
 */
export const MAX_VALUES_PER_VALIDATOR = 4;

export interface VoteSetData {
  type: VoteType;
  height: bigint;
  round: number;
  votes: Vote[];
}

export const voteSetCodec: Codec<VoteSetData> = struct<VoteSetData>('VoteSet', {
  type: voteTypeCodec,
  height: u64,
  round: u32,
  votes: list(voteCodec, MAX_VALIDATORS, 'votes'),
});

export class VoteSet {
  /** Each validator's votes, first one first, at most one per value. */
  private readonly byValidator: Vote[][];
  private readonly tally = new Map<string, { blockHash: Uint8Array | null; power: bigint }>();
  /** Power of distinct validators that voted at all: the "2f+1 of anything" of lines 34 and 47. */
  private total = 0n;

  constructor(
    readonly chainId: string,
    readonly validators: ValidatorSet,
    readonly height: bigint,
    readonly round: number,
    readonly type: VoteType,
    private readonly verify: VerifyFn = defaultVerify,
  ) {
    this.byValidator = Array.from({ length: validators.size }, () => []);
  }

  /**
   * Rebuilds a set from its encoded form, checking every vote again: encoded vote sets arrive from
   * peers and disk, and neither is trusted. Fails on the first vote that is not accepted.
   */
  static fromData(
    chainId: string,
    validators: ValidatorSet,
    data: VoteSetData,
    verify: VerifyFn = defaultVerify,
  ): VoteSet {
    const set = new VoteSet(chainId, validators, data.height, data.round, data.type, verify);
    for (const vote of data.votes) {
      const result = set.add(vote);
      const counted = result.kind === 'added' || (result.kind === 'conflict' && result.counted);
      if (!counted) throw new RangeError(`vote set holds a vote it cannot count: ${result.kind}`);
    }
    return set;
  }

  add(vote: Vote, trusted = false): AddVoteResult {
    if (vote.type !== this.type || vote.height !== this.height || vote.round !== this.round) {
      return { kind: 'rejected', reason: 'vote is for another height, round or type' };
    }
    const index = this.validators.indexOf(vote.validator);
    if (index < 0) return { kind: 'rejected', reason: 'signer is not a validator' };
    const mine = this.byValidator[index]!;
    // A validator's vote for a value it already has a counted vote for changes nothing, so gossip
    // repeats are recognised before paying for a signature check.
    if (mine.some((v) => sameBlockHash(v.blockHash, vote.blockHash))) return { kind: 'duplicate' };
    if (!trusted && !verifyVoteSignature(this.chainId, vote, this.verify)) {
      return { kind: 'rejected', reason: 'bad signature' };
    }
    const first = mine[0];
    if (first && mine.length >= MAX_VALUES_PER_VALIDATOR)
      return { kind: 'conflict', existing: first, counted: false };
    mine.push(vote);
    const power = this.validators.validators[index]!.power;
    const key = valueKey(vote.blockHash);
    const entry = this.tally.get(key);
    if (entry) entry.power += power;
    else this.tally.set(key, { blockHash: vote.blockHash, power });
    if (first) return { kind: 'conflict', existing: first, counted: true };
    this.total += power;
    return { kind: 'added' };
  }

  /** Power of the distinct validators that voted, whatever for. */
  get power(): bigint {
    return this.total;
  }

  powerFor(blockHash: Uint8Array | null): bigint {
    return this.tally.get(valueKey(blockHash))?.power ?? 0n;
  }

  hasQuorumFor(blockHash: Uint8Array | null): boolean {
    return this.validators.hasQuorum(this.powerFor(blockHash));
  }

  hasQuorumAny(): boolean {
    return this.validators.hasQuorum(this.total);
  }

  /**
   * The value (block hash or nil) that a quorum voted for, if one did. With less than 1/3
   * Byzantine power there is at most one; past that bound, the first to reach quorum.
   */
  quorumValue(): { blockHash: Uint8Array | null } | undefined {
    for (const { blockHash, power } of this.tally.values()) {
      if (this.validators.hasQuorum(power)) return { blockHash };
    }
    return undefined;
  }

  hasVoted(validator: Uint8Array): boolean {
    const index = this.validators.indexOf(validator);
    return index >= 0 && this.byValidator[index]!.length > 0;
  }

  /** Counted votes in canonical validator order (an equivocator's after each other). */
  votes(): Vote[] {
    return this.byValidator.flat();
  }

  /** The votes for one value: at most one per validator. */
  votesFor(blockHash: Uint8Array | null): Vote[] {
    return this.votes().filter((v) => sameBlockHash(v.blockHash, blockHash));
  }

  toData(): VoteSetData {
    return { type: this.type, height: this.height, round: this.round, votes: this.votes() };
  }
}
