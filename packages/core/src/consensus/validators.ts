/**
 * The validator set of an epoch and the two questions consensus asks of it: does this much voting
 * power make a quorum, and who proposes at (height, round)? PROTOCOL.md §6: voting weight is
 * attested online power; a block is final with precommits of more than 2/3 of it; the proposer is
 * a weighted sample seeded from the beacon.
 */
import { compareBytes, toHex } from '../bytes.js';
import { taggedHash } from '../crypto/hash.js';
import { type Codec, encode, list, struct, u128 } from '../encoding/codec.js';
import { publicKey as publicKeyCodec } from '../encoding/primitives.js';
import { UncError } from '../errors.js';
import { u32be, u64be } from './bytes.js';

export interface Validator {
  publicKey: Uint8Array;
  /** Voting weight; any positive integer (attested power in the protocol's base unit). */
  power: bigint;
}

/**
 * A quorum is voting power strictly above `numerator/denominator` of the total. Protocol sets
 * always use 2/3; the fraction is a parameter only so that tests can build a deliberately unsafe
 * set and watch the safety checker catch it.
 */
export interface QuorumRule {
  numerator: bigint;
  denominator: bigint;
}

export const BFT_QUORUM: QuorumRule = Object.freeze({ numerator: 2n, denominator: 3n });

export const MAX_VALIDATORS = 1_000;
/** Powers are u128 on the wire; the total must stay far below 2^256 for proposer sampling. */
const MAX_POWER = (1n << 128n) - 1n;

export const validatorCodec: Codec<Validator> = struct<Validator>('Validator', {
  publicKey: publicKeyCodec,
  power: u128,
});

export const validatorListCodec: Codec<Validator[]> = list(validatorCodec, MAX_VALIDATORS, 'validators');

export class ValidatorSet {
  /** Sorted by public key, so every node walks the same order whatever order it was given. */
  readonly validators: readonly Validator[];
  readonly totalPower: bigint;
  readonly quorum: QuorumRule;
  private readonly index: Map<string, number>;

  constructor(validators: readonly Validator[], quorum: QuorumRule = BFT_QUORUM) {
    if (validators.length === 0) throw new UncError('BAD_VALIDATOR_SET', 'validator set is empty');
    if (validators.length > MAX_VALIDATORS) {
      throw new UncError('BAD_VALIDATOR_SET', `more than ${MAX_VALIDATORS} validators`);
    }
    if (quorum.denominator <= 0n || quorum.numerator < 0n || quorum.numerator >= quorum.denominator) {
      throw new UncError('BAD_VALIDATOR_SET', 'quorum fraction must be in [0, 1)');
    }
    const sorted = validators
      .map((v) => ({ publicKey: v.publicKey.slice(), power: v.power }))
      .sort((a, b) => compareBytes(a.publicKey, b.publicKey));
    const index = new Map<string, number>();
    let total = 0n;
    sorted.forEach((v, i) => {
      if (!(v.publicKey instanceof Uint8Array) || v.publicKey.length !== 32) {
        throw new UncError('BAD_VALIDATOR_SET', 'validator public keys are 32 bytes');
      }
      if (typeof v.power !== 'bigint' || v.power <= 0n || v.power > MAX_POWER) {
        throw new UncError('BAD_VALIDATOR_SET', 'validator power must be a positive u128');
      }
      const id = toHex(v.publicKey);
      if (index.has(id)) throw new UncError('BAD_VALIDATOR_SET', `validator ${id} listed twice`);
      index.set(id, i);
      total += v.power;
    });
    this.validators = Object.freeze(sorted.map((v) => Object.freeze(v)));
    this.totalPower = total;
    this.quorum = { ...quorum };
    this.index = index;
  }

  get size(): number {
    return this.validators.length;
  }

  /** Position in canonical order, or -1 for a key that is not in the set. */
  indexOf(publicKey: Uint8Array): number {
    return this.index.get(toHex(publicKey)) ?? -1;
  }

  has(publicKey: Uint8Array): boolean {
    return this.indexOf(publicKey) >= 0;
  }

  powerOf(publicKey: Uint8Array): bigint {
    const i = this.indexOf(publicKey);
    return i < 0 ? 0n : this.validators[i]!.power;
  }

  /** More than 2/3 of the total (the "2f+1" of the paper, by weight); exact integer arithmetic. */
  hasQuorum(power: bigint): boolean {
    return power * this.quorum.denominator > this.totalPower * this.quorum.numerator;
  }

  /** The least power that `hasQuorum`: what a commit must carry. */
  get quorumPower(): bigint {
    return (this.totalPower * this.quorum.numerator) / this.quorum.denominator + 1n;
  }

  /**
   * More than the complement of a quorum (1/3 by default): so much power that at least one honest
   * validator is among it (the paper's "f+1").
   */
  hasOneHonest(power: bigint): boolean {
    return (
      power * this.quorum.denominator > this.totalPower * (this.quorum.denominator - this.quorum.numerator)
    );
  }

  /** Hash committing to the members and their powers (not to the quorum rule, always 2/3 on chain). */
  hash(): Uint8Array {
    return taggedHash('UNC/validators', encode(validatorListCodec, [...this.validators]));
  }
}

/**
 * The proposer of (height, round): a power-weighted sample, seeded by
 * taggedHash('UNC/proposer', beacon ‖ height u64 ‖ round u32). A 256-bit draw d is accepted only
 * below the largest multiple of the total power (rejection sampling), so `d mod total` is exactly
 * uniform; a rejected draw is re-hashed. A draw is rejected with probability below
 * total / 2^256, so the loop is one iteration in practice.
 */
export function selectProposer(
  set: ValidatorSet,
  beacon: Uint8Array,
  height: bigint,
  round: number,
): Validator {
  const total = set.totalPower;
  const space = 1n << 256n;
  const limit = space - (space % total);
  let draw = taggedHash('UNC/proposer', beacon, u64be(height), u32be(round));
  let d = bytesToBigInt(draw);
  while (d >= limit) {
    draw = taggedHash('UNC/proposer-retry', draw);
    d = bytesToBigInt(draw);
  }
  let target = d % total;
  for (const v of set.validators) {
    if (target < v.power) return v;
    target -= v.power;
  }
  throw new Error('unreachable: target is below the total power');
}

function bytesToBigInt(bytes: Uint8Array): bigint {
  return BigInt(`0x${toHex(bytes)}`);
}
