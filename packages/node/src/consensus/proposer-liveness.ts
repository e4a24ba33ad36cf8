/**
 * Which validators are up, as far as consensus can tell: a validator none of whose votes or
 * proposals arrived for the last few heights is taken to be down, and a round it proposes waits
 * only a short propose timeout for its proposal. With one of four validators stopped, every
 * round it would propose otherwise costs the whole propose timeout (3 s) and the chain crawls.
 *
 * Timeouts decide only how soon a round gives up, never what is decided (Tendermint is safe
 * under any timing), so this local guess can cost a round if it is wrong, nothing more: a
 * validator back from a restart or a partition is trusted again with its first vote.
 */

export interface ProposerLivenessOptions {
  /** Heights without a message from a validator after which it counts as down. */
  absentAfterHeights: number;
  /** The propose timeout for a round whose proposer is down. */
  shortProposeMs: number;
}

export const DEFAULT_PROPOSER_LIVENESS: ProposerLivenessOptions = {
  absentAfterHeights: 3,
  shortProposeMs: 500,
};

export class ProposerLiveness {
  private readonly opts: ProposerLivenessOptions;
  private readonly lastSeen = new Map<string, bigint>();
  /** The first height this node watched: before K heights of watching, nobody counts as down. */
  private since: bigint | null = null;

  constructor(opts: Partial<ProposerLivenessOptions> = {}) {
    this.opts = { ...DEFAULT_PROPOSER_LIVENESS, ...opts };
  }

  /** A verified vote or proposal of `validator` at `height` arrived. */
  saw(validator: Uint8Array, height: bigint): void {
    const id = Buffer.from(validator).toString('hex');
    const prev = this.lastSeen.get(id);
    if (prev === undefined || height > prev) this.lastSeen.set(id, height);
  }

  /** Whether `validator` sent nothing for the last `absentAfterHeights` heights before `height`. */
  isDown(validator: Uint8Array, height: bigint): boolean {
    this.since ??= height;
    const k = BigInt(this.opts.absentAfterHeights);
    if (height - this.since < k) return false;
    const seen = this.lastSeen.get(Buffer.from(validator).toString('hex'));
    return seen === undefined || height - seen > k;
  }

  /** The propose timeout to use for a round of `proposer` at `height`, given the machine's. */
  proposeTimeout(proposer: Uint8Array, height: bigint, delayMs: number): number {
    return this.isDown(proposer, height) ? Math.min(delayMs, this.opts.shortProposeMs) : delayMs;
  }

  /** Forgets validators not seen for long (the set changes at epoch boundaries). */
  prune(height: bigint, keepHeights = 1_000n): void {
    for (const [id, h] of this.lastSeen) if (height - h > keepHeights) this.lastSeen.delete(id);
  }
}
