/** A four-validator network, signed messages and a harness around one Tendermint instance. */
import { equalBytes } from '../../src/bytes.js';
import {
  type Proposal,
  signProposal,
  signVote,
  type Vote,
  type VoteType,
} from '../../src/consensus/messages.js';
import { PrivValidator } from '../../src/consensus/privval.js';
import {
  type ConsensusAction,
  type ConsensusEvent,
  Tendermint,
  type TimeoutParams,
} from '../../src/consensus/tendermint.js';
import { selectProposer, ValidatorSet } from '../../src/consensus/validators.js';
import { ed25519PublicKey } from '../../src/crypto/ed25519.js';
import { sha256 } from '../../src/crypto/hash.js';

export const CHAIN = 'unc-test';
export const SEEDS = [0, 1, 2, 3].map((i) => sha256(Uint8Array.of(0xc0, i)));
export const KEYS = SEEDS.map((s) => ed25519PublicKey(s));
export const SET = new ValidatorSet(KEYS.map((publicKey) => ({ publicKey, power: 1n })));
export const TIMEOUTS: TimeoutParams = {
  proposeMs: 1000,
  proposeDeltaMs: 100,
  prevoteMs: 500,
  prevoteDeltaMs: 50,
  precommitMs: 600,
  precommitDeltaMs: 60,
};

export const A = sha256(Uint8Array.of(0xaa));
export const B = sha256(Uint8Array.of(0xbb));

export function indexOfKey(key: Uint8Array): number {
  return KEYS.findIndex((k) => equalBytes(k, key));
}

export function proposerIndex(beacon: Uint8Array, height: bigint, round: number): number {
  return indexOfKey(selectProposer(SET, beacon, height, round).publicKey);
}

/** A beacon under which the proposers of rounds 0, 1, … satisfy `want(round, proposerIndex)`. */
export function findBeacon(rounds: number, want: (round: number, proposer: number) => boolean): Uint8Array {
  for (let i = 0; i < 100_000; i++) {
    const beacon = sha256(Uint8Array.of(0xbe, i & 0xff, i >> 8));
    let ok = true;
    for (let r = 0; r < rounds && ok; r++) ok = want(r, proposerIndex(beacon, 1n, r));
    if (ok) return beacon;
  }
  throw new Error('no such beacon');
}

export function vote(
  i: number,
  type: VoteType,
  round: number,
  blockHash: Uint8Array | null,
  height = 1n,
): Vote {
  return signVote(CHAIN, { type, height, round, blockHash, validator: KEYS[i]! }, SEEDS[i]!);
}

export function proposal(
  beacon: Uint8Array,
  round: number,
  blockHash: Uint8Array,
  polRound = -1,
  height = 1n,
): Proposal {
  const p = proposerIndex(beacon, height, round);
  return signProposal(CHAIN, { height, round, polRound, blockHash, proposer: KEYS[p]! }, SEEDS[p]!);
}

/** One node under test, validator `me`, with everything it did recorded. */
export class Harness {
  readonly machine: Tendermint;
  readonly privval: PrivValidator;
  readonly log: ConsensusAction[] = [];

  constructor(
    readonly me: number,
    readonly beacon: Uint8Array,
    privval?: PrivValidator,
    /** The driver's policy on fresh proposals (`TendermintOptions.timely`); default: all timely. */
    timely?: (proposal: Proposal) => boolean,
  ) {
    this.privval = privval ?? new PrivValidator(SEEDS[me]!, CHAIN);
    this.machine = new Tendermint({
      chainId: CHAIN,
      privval: this.privval,
      timeouts: TIMEOUTS,
      ...(timely ? { timely } : {}),
    });
  }

  send(event: ConsensusEvent): ConsensusAction[] {
    const actions = this.machine.handle(event);
    this.log.push(...actions);
    return actions;
  }

  start(height = 1n): ConsensusAction[] {
    return this.send({ type: 'start', height, validators: SET, beacon: this.beacon });
  }

  propose(round: number, blockHash: Uint8Array, polRound = -1, valid = true): ConsensusAction[] {
    return this.send({
      type: 'proposal',
      proposal: proposal(this.beacon, round, blockHash, polRound),
      valid,
    });
  }

  votes(from: number[], type: VoteType, round: number, blockHash: Uint8Array | null): ConsensusAction[] {
    const out: ConsensusAction[] = [];
    for (const i of from) out.push(...this.send({ type: 'vote', vote: vote(i, type, round, blockHash) }));
    return out;
  }

  timeout(step: 'propose' | 'prevote' | 'precommit', round: number): ConsensusAction[] {
    return this.send({ type: 'timeout', height: 1n, round, step });
  }

  /** The validators other than me, in index order. */
  get others(): number[] {
    return [0, 1, 2, 3].filter((i) => i !== this.me);
  }
}

export function broadcastVotes(actions: ConsensusAction[]): Vote[] {
  return actions.flatMap((a) => (a.type === 'broadcast-vote' ? [a.vote] : []));
}

export function broadcastProposals(actions: ConsensusAction[]): Proposal[] {
  return actions.flatMap((a) => (a.type === 'broadcast-proposal' ? [a.proposal] : []));
}

export function describeVote(v: Vote): string {
  const value =
    v.blockHash === null ? 'nil' : equalBytes(v.blockHash, A) ? 'A' : equalBytes(v.blockHash, B) ? 'B' : '?';
  return `${v.type}@${v.round}:${value}`;
}
