/**
 * Which proposers are worth waiting for, as far as this node can tell. A round whose proposer is
 * taken to be down waits only a short propose timeout for its proposal; with one of four
 * validators stopped, every round it would propose otherwise costs the whole propose timeout
 * (3 s) and the chain crawls.
 *
 * A proposer counts as down (a wait of `absentProposeMs`, or `shortProposeMs`) when either:
 * - nothing signed by it (a vote or a proposal, signature checked) arrived for the last
 *   `absentAfterHeights` heights: a crashed or cut-off validator;
 * - its last turn as proposer ended in this node's propose timeout with no proposal from it, and
 *   no proposal of it arrived in time since: a validator that votes but does not propose (or
 *   proposes too late to be used) is held to the short timeout until it proposes in time again.
 *
 * Only this node's own observations count: its own timeouts, and messages whose signature it
 * checked. Nobody can make an honest proposer look silent without stopping its messages from
 * reaching this node for a whole height (the network, not a message), and a Byzantine proposer
 * that withholds its proposal, or sends it after the timeout, pays a short timeout at its next
 * turn instead of the long one.
 *
 * Timeouts decide only how soon a round gives up, never what is decided (Tendermint is safe
 * under any timing), so a wrong guess costs a round, nothing more.
 */

export interface ProposerLivenessOptions {
  /** Heights without a message from a validator after which it counts as down. */
  absentAfterHeights: number;
  /** The propose timeout for a round of a proposer that missed its last turn but is heard from. */
  shortProposeMs: number;
  /**
   * The propose timeout for a round of a proposer heard from not at all for the last heights: a
   * crashed validator, which a wait cannot bring back. Not zero: a validator just back from a
   * restart proposes at once, and a few network hops let its proposal count.
   */
  absentProposeMs: number;
}

export const DEFAULT_PROPOSER_LIVENESS: ProposerLivenessOptions = {
  // One whole height without a vote: every live validator votes at every height, and a vote that
  // arrives after this node committed still counts (the driver passes late votes for the head).
  absentAfterHeights: 1,
  shortProposeMs: 500,
  absentProposeMs: 100,
};

/** How many validators' marks are kept at most (a set's size is bounded by the chain's params). */
const MAX_TRACKED = 10_000;

export class ProposerLiveness {
  private readonly opts: ProposerLivenessOptions;
  private readonly lastSeen = new Map<string, bigint>();
  /** Proposers whose last turn this node timed out on, with no timely proposal since. */
  private readonly missed = new Set<string>();
  /** The first height this node watched: before K heights of watching, nobody counts as absent. */
  private since: bigint | null = null;

  constructor(opts: Partial<ProposerLivenessOptions> = {}) {
    this.opts = { ...DEFAULT_PROPOSER_LIVENESS, ...opts };
  }

  get shortProposeMs(): number {
    return this.opts.shortProposeMs;
  }

  /** A vote or proposal of `validator` at `height`, its signature checked, arrived. */
  saw(validator: Uint8Array, height: bigint): void {
    const id = idOf(validator);
    const prev = this.lastSeen.get(id);
    if (prev === undefined && this.lastSeen.size >= MAX_TRACKED) return;
    if (prev === undefined || height > prev) this.lastSeen.set(id, height);
  }

  /** This node's propose timeout fired in a round of `proposer` with no proposal from it. */
  missedTurn(proposer: Uint8Array): void {
    if (this.missed.size < MAX_TRACKED) this.missed.add(idOf(proposer));
  }

  /** A proposal of `proposer` arrived before this node's propose timeout for its round fired. */
  proposedInTime(proposer: Uint8Array): void {
    this.missed.delete(idOf(proposer));
  }

  /** Whether nothing signed by `validator` arrived for the last `absentAfterHeights` heights. */
  isAbsent(validator: Uint8Array, height: bigint): boolean {
    this.since ??= height;
    const k = BigInt(this.opts.absentAfterHeights);
    if (height - this.since <= k) return false;
    const seen = this.lastSeen.get(idOf(validator));
    return seen === undefined || height - seen > k;
  }

  /** Whether to wait only a short propose timeout for `validator` proposing at `height`. */
  isDown(validator: Uint8Array, height: bigint): boolean {
    return this.isAbsent(validator, height) || this.missed.has(idOf(validator));
  }

  /**
   * The propose timeout to use for `round` of `proposer` at `height`, given the machine's.
   *
   * The short waits double with each round, so they still grow without bound like the machine's:
   * Tendermint is live only because, once messages arrive within some unknown delay, a round's
   * timeouts eventually exceed it. A wait fixed at 500 ms would hold a proposer whose proposal
   * needs longer (a far region, a big block on a loaded network) to the short wait for good (it
   * never proposes "in time" again), and once every proposer is so marked, after a partition
   * that timed everyone out, no round could ever succeed. At round 0 the wait is the short one.
   */
  proposeTimeout(proposer: Uint8Array, height: bigint, delayMs: number, round: number): number {
    const grown = (ms: number) => Math.min(delayMs, ms * 2 ** Math.max(0, round));
    if (this.isAbsent(proposer, height)) return grown(this.opts.absentProposeMs);
    if (this.missed.has(idOf(proposer))) return grown(this.opts.shortProposeMs);
    return delayMs;
  }

  /** Forgets validators not seen for long (the set changes at epoch boundaries). */
  prune(height: bigint, keepHeights = 1_000n): void {
    for (const [id, h] of this.lastSeen)
      if (height - h > keepHeights) {
        this.lastSeen.delete(id);
        this.missed.delete(id);
      }
  }
}

function idOf(validator: Uint8Array): string {
  return Buffer.from(validator).toString('hex');
}
