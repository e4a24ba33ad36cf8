/**
 * The Tendermint consensus state machine of one node, as Algorithm 1 of "The latest gossip on BFT
 * consensus" (Buchman, Kwon, Milosevic, 2018), with voting power in place of counting processes.
 * Line numbers below refer to that algorithm.
 *
 * It is pure and single-threaded: the driver feeds it events (start a height, a proposal with the
 * driver's verdict on the block, a vote, a timeout that fired, a block to propose) and performs the
 * actions it returns (broadcast, schedule a timeout, ask for a block, commit, report evidence). It
 * has no clock and no network; it checks every signature and every signer's membership itself, so
 * a driver cannot make it count an invalid vote, and it signs only through a PrivValidator, so it
 * cannot double-sign even across restarts.
 *
 * Two deliberate differences from the paper's pseudo-code, both standard in implementations:
 * - After deciding, it emits `commit` and waits for the driver's `start` of the next height (the
 *   driver must apply the block to learn the next beacon and validator set), instead of calling
 *   StartRound(0) itself.
 * - Line 49 decides on 2/3+ precommits for v in a round r once v is known valid from a proposal of
 *   any round of this height, not only from round r's proposal: validity is a property of the
 *   block at this height, and a node that missed round r's proposal but got v earlier need not
 *   wait for a copy.
 */
import { equalBytes, toHex } from '../bytes.js';
import {
  type CommitCertificate,
  type ConsensusEvidence,
  certificateFromVotes,
  defaultVerify,
  duplicateProposalEvidence,
  duplicateVoteEvidence,
  type Proposal,
  sameBlockHash,
  type VerifyFn,
  type Vote,
  type VoteType,
  verifyProposalSignature,
} from './messages.js';
import type { PrivValidator } from './privval.js';
import { selectProposer, type ValidatorSet } from './validators.js';
import { VoteSet } from './vote-set.js';

export type TimeoutStep = 'propose' | 'prevote' | 'precommit';
export type Step = TimeoutStep | 'decided';

/**
 * Round timeouts grow linearly: timeout(step, round) = base + delta × round, so that after the
 * network becomes synchronous some round lasts long enough for honest nodes to finish it.
 */
export interface TimeoutParams {
  proposeMs: number;
  proposeDeltaMs: number;
  prevoteMs: number;
  prevoteDeltaMs: number;
  precommitMs: number;
  precommitDeltaMs: number;
}

export const DEFAULT_TIMEOUTS: TimeoutParams = Object.freeze({
  proposeMs: 3000,
  proposeDeltaMs: 500,
  prevoteMs: 1000,
  prevoteDeltaMs: 500,
  precommitMs: 1000,
  precommitDeltaMs: 500,
});

export function timeoutFor(params: TimeoutParams, step: TimeoutStep, round: number): number {
  switch (step) {
    case 'propose':
      return params.proposeMs + params.proposeDeltaMs * round;
    case 'prevote':
      return params.prevoteMs + params.prevoteDeltaMs * round;
    case 'precommit':
      return params.precommitMs + params.precommitDeltaMs * round;
  }
}

export type ConsensusEvent =
  /** Begin `height`, whose proposers are drawn from `validators` with the previous block's beacon. */
  | { type: 'start'; height: bigint; validators: ValidatorSet; beacon: Uint8Array }
  /** The block this node proposes, answering a `request-value` action. */
  | { type: 'value'; height: bigint; round: number; blockHash: Uint8Array }
  /** A proposal from the network; `valid` is the driver's verdict on the block it names. */
  | { type: 'proposal'; proposal: Proposal; valid: boolean }
  | { type: 'vote'; vote: Vote }
  | { type: 'timeout'; height: bigint; round: number; step: TimeoutStep };

export type ConsensusAction =
  | { type: 'broadcast-proposal'; proposal: Proposal }
  | { type: 'broadcast-vote'; vote: Vote }
  | { type: 'schedule-timeout'; height: bigint; round: number; step: TimeoutStep; delayMs: number }
  /** This node proposes at (height, round) and holds no valid block yet: build one, send `value`. */
  | { type: 'request-value'; height: bigint; round: number }
  /**
   * `blockHash` is final at `height`. `certificate` holds the 2/3+ precommits; `proposal` is the
   * signed proposal through which this node learned the block.
   */
  | {
      type: 'commit';
      height: bigint;
      round: number;
      blockHash: Uint8Array;
      certificate: CommitCertificate;
      proposal: Proposal;
    }
  | { type: 'evidence'; evidence: ConsensusEvidence };

export interface TendermintOptions {
  chainId: string;
  timeouts?: TimeoutParams;
  /** The signer; null for a node that follows consensus without voting. */
  privval?: PrivValidator | null;
  verify?: VerifyFn;
  /**
   * Messages for rounds further ahead than this are ignored, which bounds the memory a Byzantine
   * validator can make us spend on far-future rounds. Honest nodes drift apart by a few rounds.
   */
  maxRoundsAhead?: number;
  /**
   * Whether this node prevotes for a fresh proposal (polRound -1) it holds valid and is free to
   * vote for (line 22): asked at that moment, in the proposal's round, so the driver judges it on
   * its own clock then (the block time against when the proposal arrived and when its round
   * began: proposer-based timestamps). `false` gets a nil prevote, nothing else: the block stays
   * valid, so it is still locked on at a polka (line 36) and decided on 2/3+ precommits (line 49),
   * and a re-proposal (line 28) is never asked about, so a block 2/3+ prevoted is never refused
   * for its time. A node policy, not a rule of validity. Default: every fresh proposal is timely.
   */
  timely?: (proposal: Proposal) => boolean;
}

export interface ConsensusSnapshot {
  height: bigint;
  round: number;
  step: Step;
  lockedRound: number;
  lockedValue: Uint8Array | null;
  validRound: number;
  validValue: Uint8Array | null;
}

interface RoundState {
  prevotes: VoteSet;
  precommits: VoteSet;
  proposal: { proposal: Proposal; valid: boolean } | null;
  /** Validators heard from in this round (any vote or the proposal), for the round skip (line 55). */
  participants: Set<number>;
  participantPower: bigint;
  prevoteTimeoutScheduled: boolean;
  precommitTimeoutScheduled: boolean;
  /** Line 36 runs once per round. */
  polkaHandled: boolean;
  valueRequested: boolean;
}

const MAX_ROUND = 0xffff_ffff;

export class Tendermint {
  private readonly chainId: string;
  private readonly timeouts: TimeoutParams;
  private readonly privval: PrivValidator | null;
  private readonly verify: VerifyFn;
  private readonly maxRoundsAhead: number;
  private readonly timely: (proposal: Proposal) => boolean;

  private started = false;
  private height = 0n;
  private round = 0;
  private step: Step = 'propose';
  private validators: ValidatorSet | null = null;
  private beacon: Uint8Array = new Uint8Array(32);
  private lockedRound = -1;
  private lockedValue: Uint8Array | null = null;
  private validRound = -1;
  private validValue: Uint8Array | null = null;
  private rounds = new Map<number, RoundState>();
  private proposers = new Map<number, Uint8Array>();
  /** Blocks of this height that a proposal made known, with the driver's verdict. */
  private blocks = new Map<string, { valid: boolean; proposal: Proposal }>();
  private evidenceSeen = new Set<string>();
  private out: ConsensusAction[] = [];

  constructor(options: TendermintOptions) {
    this.chainId = options.chainId;
    this.timeouts = options.timeouts ?? DEFAULT_TIMEOUTS;
    this.privval = options.privval ?? null;
    this.verify = options.verify ?? defaultVerify;
    this.maxRoundsAhead = options.maxRoundsAhead ?? 1_000;
    this.timely = options.timely ?? (() => true);
  }

  /** Applies one event; returns what the driver must do, in order. */
  handle(event: ConsensusEvent): ConsensusAction[] {
    this.out = [];
    switch (event.type) {
      case 'start':
        this.onStart(event.height, event.validators, event.beacon);
        break;
      case 'value':
        this.onValue(event.height, event.round, event.blockHash);
        break;
      case 'proposal':
        this.onProposal(event.proposal, event.valid);
        break;
      case 'vote':
        this.onVote(event.vote);
        break;
      case 'timeout':
        this.onTimeout(event.height, event.round, event.step);
        break;
    }
    this.progress();
    const out = this.out;
    this.out = [];
    return out;
  }

  snapshot(): ConsensusSnapshot {
    return {
      height: this.height,
      round: this.round,
      step: this.step,
      lockedRound: this.lockedRound,
      lockedValue: this.lockedValue,
      validRound: this.validRound,
      validValue: this.validValue,
    };
  }

  /**
   * Whether 2/3+ of the power precommitted nil in `round` of the current height. No block can be
   * decided in such a round (a quorum for a block would need a validator honest in both quorums
   * to precommit twice), so a driver may end the precommit wait of line 47 at once: timeouts
   * only decide how soon a round gives up, never what is decided.
   */
  hasNilPrecommitQuorum(round: number): boolean {
    return this.rounds.get(round)?.precommits.hasQuorumFor(null) ?? false;
  }

  /**
   * Whether `round` of the current height holds a re-proposal (polRound ≥ 0) whose polka this
   * machine has not seen: 2/3+ of the power prevoting its block in its polRound. Line 28 is then
   * held back, and the round ends at its propose timeout with the proposal in hand. A driver
   * counts that as a turn its proposer missed: any proposer can sign a polRound over a block of
   * its own, and one that never lets its polka be seen costs each of its rounds the whole propose
   * timeout otherwise, where a silent one is held to the short wait. Valid block or not: line 28
   * waits for the polka either way (an invalid block's gets a nil prevote), so a polRound over a
   * block nobody accepts is the cheaper form of the same stall.
   */
  lacksPolkaOfReProposal(round: number): boolean {
    const p = this.rounds.get(round)?.proposal;
    if (!p || p.proposal.polRound < 0) return false;
    return !this.rounds.get(p.proposal.polRound)?.prevotes.hasQuorumFor(p.proposal.blockHash);
  }

  /**
   * The prevotes this machine counted for `blockHash` in `round` of the current height: a
   * re-proposal's proof of lock when they hold 2/3+ of the power.
   */
  prevotesFor(round: number, blockHash: Uint8Array): Vote[] {
    return this.rounds.get(round)?.prevotes.votesFor(blockHash) ?? [];
  }

  /**
   * Whether the machine may still lock on or decide `blockHash` at the current height for want of
   * only its block: it is the locked or the valid value, or 2/3+ of the power prevoted or
   * precommitted it in some round. A driver keeps fetching such a block after its round is over.
   */
  mayStillNeed(blockHash: Uint8Array): boolean {
    if (this.lockedValue && equalBytes(this.lockedValue, blockHash)) return true;
    if (this.validValue && equalBytes(this.validValue, blockHash)) return true;
    for (const rs of this.rounds.values())
      if (rs.prevotes.hasQuorumFor(blockHash) || rs.precommits.hasQuorumFor(blockHash)) return true;
    return false;
  }

  /**
   * The messages of the current height worth sending again to peers that may have missed them:
   * the proposals and votes of the current and previous round and of the rounds the lock and the
   * valid value come from. Gossip over lossy links needs this; the paper assumes it.
   */
  gossip(): { proposals: Proposal[]; votes: Vote[] } {
    if (!this.started) return { proposals: [], votes: [] };
    const wanted = new Set([this.round, this.round - 1, this.validRound, this.lockedRound]);
    const current = this.rounds.get(this.round)?.proposal?.proposal;
    if (current) wanted.add(current.polRound);
    const proposals: Proposal[] = [];
    const votes: Vote[] = [];
    for (const [r, rs] of this.rounds) {
      const decisive = rs.precommits.quorumValue() !== undefined;
      if (!wanted.has(r) && !decisive) continue;
      if (rs.proposal) proposals.push(rs.proposal.proposal);
      votes.push(...rs.prevotes.votes(), ...rs.precommits.votes());
    }
    return { proposals, votes };
  }

  // -------------------------------------------------------------------------------------------
  // Events

  private onStart(height: bigint, validators: ValidatorSet, beacon: Uint8Array): void {
    if (this.started && height <= this.height) return;
    this.started = true;
    this.height = height;
    this.validators = validators;
    this.beacon = beacon.slice();
    this.round = 0;
    this.step = 'propose';
    this.lockedRound = -1;
    this.lockedValue = null;
    this.validRound = -1;
    this.validValue = null;
    this.rounds = new Map();
    this.proposers = new Map();
    this.blocks = new Map();
    this.evidenceSeen = new Set();
    let firstRound = 0;
    if (this.privval) {
      // After a restart: the last non-nil precommit is the lock (it is the only way a lock is
      // taken, line 40), and the last votes are sent again in case they never left the process.
      const lock = this.privval.lockAt(height);
      if (lock?.blockHash) {
        this.lockedRound = this.validRound = lock.round;
        this.lockedValue = this.validValue = lock.blockHash;
      }
      for (const vote of this.privval.votesAt(height)) {
        this.addVote(vote, true);
        this.out.push({ type: 'broadcast-vote', vote });
      }
      firstRound = Math.max(0, this.privval.lastRoundAt(height));
    }
    this.startRound(firstRound);
  }

  private onValue(height: bigint, round: number, blockHash: Uint8Array): void {
    if (!this.started || height !== this.height || round !== this.round || this.step !== 'propose') return;
    if (!(blockHash instanceof Uint8Array) || blockHash.length !== 32) return;
    if (!this.isProposer(round) || this.roundState(round).proposal) return;
    if (this.validValue) this.propose(this.validValue, this.validRound);
    else this.propose(blockHash, -1);
  }

  private onProposal(p: Proposal, valid: boolean): void {
    if (!this.started || this.step === 'decided' || !wellFormedProposal(p) || p.height !== this.height)
      return;
    if (p.round > this.round + this.maxRoundsAhead) return;
    if (!equalBytes(p.proposer, this.proposerOf(p.round))) return;
    const rs = this.roundState(p.round);
    const existing = rs.proposal?.proposal;
    if (existing && sameProposal(existing, p)) return;
    if (!verifyProposalSignature(this.chainId, p, this.verify)) return;
    if (existing) {
      this.reportEvidence(`proposal:${p.round}`, duplicateProposalEvidence(this.chainId, existing, p));
      // The round keeps its first proposal, but the block is still one its proposer signed: if
      // the rest of the network commits it, we must be able to recognise it (line 49).
      this.noteBlock(p, valid === true);
      return;
    }
    this.acceptProposal(p, valid === true);
  }

  private onVote(vote: Vote): void {
    if (!this.started || this.step === 'decided' || !wellFormedVote(vote) || vote.height !== this.height)
      return;
    if (vote.round > this.round + this.maxRoundsAhead) return;
    this.addVote(vote, false);
  }

  private onTimeout(height: bigint, round: number, step: TimeoutStep): void {
    if (!this.started || this.step === 'decided' || height !== this.height || round !== this.round) return;
    if (step === 'propose' && this.step === 'propose')
      this.prevote(null); // OnTimeoutPropose
    else if (step === 'prevote' && this.step === 'prevote')
      this.precommit(null); // OnTimeoutPrevote
    else if (step === 'precommit' && round < MAX_ROUND) this.startRound(round + 1); // OnTimeoutPrecommit
  }

  // -------------------------------------------------------------------------------------------
  // The upon-rules. Each call applies at most one rule and says whether it did; the loop runs
  // them until none applies, which is how "upon" conditions are evaluated after every event.

  private progress(): void {
    if (!this.started) return;
    while (this.applyRule()) {}
  }

  private applyRule(): boolean {
    if (this.step === 'decided') return false;
    const validators = this.validators!;

    // Line 49: 2/3+ precommits for a known valid block, in any round.
    for (const [r, rs] of this.rounds) {
      const q = rs.precommits.quorumValue();
      if (!q || q.blockHash === null) continue;
      const block = this.blocks.get(toHex(q.blockHash));
      if (block?.valid) {
        this.decide(r, q.blockHash, block.proposal);
        return true;
      }
    }

    // Line 55: f+1 of the power is already in a later round; join the latest such round.
    let skipTo = -1;
    for (const [r, rs] of this.rounds) {
      if (r > this.round && r > skipTo && validators.hasOneHonest(rs.participantPower)) skipTo = r;
    }
    if (skipTo > this.round) {
      this.startRound(skipTo);
      return true;
    }

    const rs = this.roundState(this.round);
    const proposal = rs.proposal;

    if (this.step === 'propose' && proposal) {
      const v = proposal.proposal.blockHash;
      const polRound = proposal.proposal.polRound;
      if (polRound === -1) {
        // Line 22: a fresh proposal; vote for it unless locked on something else, or the driver
        // finds it untimely (`timely`: asked last, only of a proposal it could be given a vote).
        const ok =
          proposal.valid &&
          (this.lockedRound === -1 || sameBlockHash(this.lockedValue, v)) &&
          this.timely(proposal.proposal);
        this.prevote(ok ? v : null);
        return true;
      }
      const pol = this.rounds.get(polRound);
      if (pol?.prevotes.hasQuorumFor(v)) {
        // Line 28: a re-proposal backed by a polka in round polRound < round; that polka may
        // release a lock taken no later than polRound.
        const ok = proposal.valid && (this.lockedRound <= polRound || sameBlockHash(this.lockedValue, v));
        this.prevote(ok ? v : null);
        return true;
      }
    }

    // Line 34.
    if (this.step === 'prevote' && !rs.prevoteTimeoutScheduled && rs.prevotes.hasQuorumAny()) {
      rs.prevoteTimeoutScheduled = true;
      this.scheduleTimeout('prevote');
      return true;
    }

    // Line 36: a polka for a valid block this round's proposer proposed: lock and precommit (if
    // still prevoting), and remember it as the valid value either way.
    const polka =
      (this.step === 'prevote' || this.step === 'precommit') && !rs.polkaHandled && this.validPolka(rs);
    if (polka) {
      rs.polkaHandled = true;
      const v = polka;
      if (this.step === 'prevote') {
        this.lockedValue = v;
        this.lockedRound = this.round;
        this.precommit(v);
      }
      this.validValue = v;
      this.validRound = this.round;
      return true;
    }

    // A polka seen late, for an earlier round's valid proposal (the paper's line 36 only looks at
    // the current round): it becomes the valid value, never the lock. Without it a validator that
    // locked on a polka the others saw only after leaving its round prevotes nil for every fresh
    // proposal, and the others keep proposing fresh blocks: with one validator locked and one
    // Byzantine, no fresh block gets 2/3+ until the locked one's own turn to propose comes,
    // which proposer selection by weight may put off for many rounds (simulator seeds 1638 and
    // 2640: 60 s). Proposing the valid value with its polka round is what line 28 accepts, and
    // which value a proposer proposes never matters to safety; each voter checks the polka itself.
    for (const [r, rs] of this.rounds) {
      if (r <= this.validRound || r >= this.round) continue;
      const v = this.validPolka(rs);
      if (!v) continue;
      this.validValue = v;
      this.validRound = r;
      return true;
    }

    // Line 44: a polka for nil.
    if (this.step === 'prevote' && rs.prevotes.hasQuorumFor(null)) {
      this.precommit(null);
      return true;
    }

    // Line 47.
    if (!rs.precommitTimeoutScheduled && rs.precommits.hasQuorumAny()) {
      rs.precommitTimeoutScheduled = true;
      this.scheduleTimeout('precommit');
      return true;
    }
    return false;
  }

  // -------------------------------------------------------------------------------------------
  // Steps

  /** StartRound (line 11). */
  private startRound(round: number): void {
    this.round = round;
    this.step = 'propose';
    const rs = this.roundState(round);
    this.scheduleTimeout('propose');
    if (!this.isProposer(round)) return;
    if (this.validValue) this.propose(this.validValue, this.validRound);
    else if (!rs.valueRequested) {
      rs.valueRequested = true;
      this.out.push({ type: 'request-value', height: this.height, round });
    }
  }

  private propose(blockHash: Uint8Array, polRound: number): void {
    const proposal = this.privval!.signProposal({
      height: this.height,
      round: this.round,
      polRound,
      blockHash,
      proposer: this.privval!.publicKey,
    });
    if (!proposal) return;
    this.out.push({ type: 'broadcast-proposal', proposal });
    // Our own block: valid because we built it, or because we saw a polka for it (validValue).
    if (!this.roundState(this.round).proposal) this.acceptProposal(proposal, true);
  }

  private prevote(blockHash: Uint8Array | null): void {
    this.step = 'prevote';
    this.castVote('prevote', blockHash);
  }

  private precommit(blockHash: Uint8Array | null): void {
    this.step = 'precommit';
    this.castVote('precommit', blockHash);
  }

  private castVote(type: VoteType, blockHash: Uint8Array | null): void {
    if (!this.privval || !this.validators!.has(this.privval.publicKey)) return;
    const vote = this.privval.signVote({
      type,
      height: this.height,
      round: this.round,
      blockHash,
      validator: this.privval.publicKey,
    });
    // A refusal means this slot was already signed (before a restart): stay silent in it.
    if (!vote) return;
    this.out.push({ type: 'broadcast-vote', vote });
    this.addVote(vote, true);
  }

  private decide(round: number, blockHash: Uint8Array, proposal: Proposal): void {
    this.step = 'decided';
    const votes = this.rounds.get(round)!.precommits.votesFor(blockHash);
    this.out.push({
      type: 'commit',
      height: this.height,
      round,
      blockHash,
      certificate: certificateFromVotes(votes),
      proposal,
    });
  }

  private scheduleTimeout(step: TimeoutStep): void {
    this.out.push({
      type: 'schedule-timeout',
      height: this.height,
      round: this.round,
      step,
      delayMs: timeoutFor(this.timeouts, step, this.round),
    });
  }

  // -------------------------------------------------------------------------------------------
  // Bookkeeping

  private acceptProposal(proposal: Proposal, valid: boolean): void {
    const rs = this.roundState(proposal.round);
    rs.proposal = { proposal, valid };
    this.noteBlock(proposal, valid);
    this.addParticipant(rs, proposal.proposer);
  }

  /**
   * The block 2/3+ of the power prevoted in `rs`, where this machine knows it valid: the round's
   * proposal's, or another block a proposer signed (a second proposal of the round is kept by
   * `noteBlock` only). The paper's line 36 asks for a proposal of `v` from the round's proposer,
   * not for the first one: an equivocating proposer shows this node block A and the others B,
   * and the polka is B's whatever this node was shown first. Keeping to the round's first
   * proposal, the node that executed A and then B (its driver holds B over the execution cap until
   * 2/3+ vote for it) saw B's polka and precommitted nil all the same, and never took B as its
   * valid value: one honest precommit missing from B's round, and its own next turn proposed
   * another block the locked validators prevote nil. Safe: a lock rests on its polka alone (one
   * per round below a third Byzantine), and the block is one this node found valid.
   */
  private validPolka(rs: RoundState): Uint8Array | null {
    const q = rs.prevotes.quorumValue();
    if (!q || q.blockHash === null) return null;
    const v = q.blockHash;
    if (rs.proposal?.valid && sameBlockHash(rs.proposal.proposal.blockHash, v)) return v;
    return this.blocks.get(toHex(v))?.valid ? v : null;
  }

  /**
   * A block found valid under any proposal is valid: its execution passed. A `false` may be the
   * proposal's alone (the driver refuses a fresh proposal carrying a block another validator
   * built), so it never stands against a later `true`: kept first, another round's proposer
   * re-signing an honest block so and racing it here left it never locked on nor decided.
   */
  private noteBlock(proposal: Proposal, valid: boolean): void {
    const key = toHex(proposal.blockHash);
    const known = this.blocks.get(key);
    if (!known || (valid && !known.valid)) this.blocks.set(key, { valid, proposal });
  }

  private addVote(vote: Vote, trusted: boolean): void {
    const rs = this.roundState(vote.round);
    const set = vote.type === 'prevote' ? rs.prevotes : rs.precommits;
    const result = set.add(vote, trusted);
    if (result.kind === 'added') this.addParticipant(rs, vote.validator);
    else if (result.kind === 'conflict') {
      this.reportEvidence(
        `vote:${vote.type}:${vote.round}:${toHex(vote.validator)}`,
        duplicateVoteEvidence(this.chainId, result.existing, vote),
      );
    }
  }

  private reportEvidence(key: string, evidence: ConsensusEvidence): void {
    if (this.evidenceSeen.has(key)) return;
    this.evidenceSeen.add(key);
    this.out.push({ type: 'evidence', evidence });
  }

  private addParticipant(rs: RoundState, validator: Uint8Array): void {
    const index = this.validators!.indexOf(validator);
    if (index < 0 || rs.participants.has(index)) return;
    rs.participants.add(index);
    rs.participantPower += this.validators!.validators[index]!.power;
  }

  private roundState(round: number): RoundState {
    let rs = this.rounds.get(round);
    if (!rs) {
      const validators = this.validators!;
      rs = {
        prevotes: new VoteSet(this.chainId, validators, this.height, round, 'prevote', this.verify),
        precommits: new VoteSet(this.chainId, validators, this.height, round, 'precommit', this.verify),
        proposal: null,
        participants: new Set(),
        participantPower: 0n,
        prevoteTimeoutScheduled: false,
        precommitTimeoutScheduled: false,
        polkaHandled: false,
        valueRequested: false,
      };
      this.rounds.set(round, rs);
    }
    return rs;
  }

  private proposerOf(round: number): Uint8Array {
    let p = this.proposers.get(round);
    if (!p) {
      p = selectProposer(this.validators!, this.beacon, this.height, round).publicKey;
      this.proposers.set(round, p);
    }
    return p;
  }

  private isProposer(round: number): boolean {
    return this.privval !== null && equalBytes(this.proposerOf(round), this.privval.publicKey);
  }
}

function isRound(r: unknown): r is number {
  return typeof r === 'number' && Number.isInteger(r) && r >= 0 && r <= MAX_ROUND;
}

function isBytes(b: unknown, length: number): b is Uint8Array {
  return b instanceof Uint8Array && b.length === length;
}

/** Shape checks before anything is hashed or counted: malformed input is dropped, never thrown on. */
function wellFormedVote(v: Vote): boolean {
  return (
    (v.type === 'prevote' || v.type === 'precommit') &&
    typeof v.height === 'bigint' &&
    isRound(v.round) &&
    (v.blockHash === null || isBytes(v.blockHash, 32)) &&
    isBytes(v.validator, 32) &&
    isBytes(v.signature, 64)
  );
}

function wellFormedProposal(p: Proposal): boolean {
  return (
    typeof p.height === 'bigint' &&
    isRound(p.round) &&
    (p.polRound === -1 || (isRound(p.polRound) && p.polRound < p.round)) &&
    isBytes(p.blockHash, 32) &&
    isBytes(p.proposer, 32) &&
    isBytes(p.signature, 64)
  );
}

function sameProposal(a: Proposal, b: Proposal): boolean {
  return a.polRound === b.polRound && equalBytes(a.blockHash, b.blockHash);
}
