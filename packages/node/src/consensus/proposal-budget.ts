/**
 * How many transactions a proposal may carry so that the network can build, gossip, check and
 * execute it inside one round. The byte and count limits of the chain (validity rules every node
 * checks) say what a block may hold; this says what a proposer should put in one now, from the
 * execution cost this node measures (ms per transaction, building its own blocks and checking
 * others'), so that a backlog turns into steady full blocks instead of blocks too large to finish
 * in a round, which time out, grow the timeouts and stall the chain.
 *
 * Only the proposer's choice depends on it (and so on its clock): a block's validity never does.
 */

export interface ProposalBudgetOptions {
  /** Milliseconds of execution one block may cost (a fraction of the round, see `forRound`). */
  budgetMs: number;
  /** The cost assumed before anything was measured. */
  initialMsPerTx: number;
  /** Never fewer than this many transactions (a slow sample must not starve the chain). */
  minTxs: number;
  /** Weight of a new sample in the moving average, in (0, 1]. */
  smoothing: number;
}

/**
 * A proposal is built once, executed once by each validator, and written once; with gossip and
 * two vote steps between, a quarter of the shorter of the block interval and the propose timeout
 * for executing it leaves the rest of the round to everything else. A validator alone (the dev
 * chain) waits for nobody: a block that takes the whole interval only delays the next one, and
 * admission, which shares the thread, is held back by its own bounded queue meanwhile.
 */
export function budgetForRound(blockTimeMs: number, proposeMs: number, alone = false): number {
  return Math.max(50, Math.floor(Math.min(blockTimeMs, proposeMs) / (alone ? 1 : 4)));
}

export class ProposalBudget {
  private readonly opts: ProposalBudgetOptions;
  private msPerTx: number;

  constructor(opts: Partial<ProposalBudgetOptions> & Pick<ProposalBudgetOptions, 'budgetMs'>) {
    this.opts = { initialMsPerTx: 0.25, minTxs: 100, smoothing: 0.3, ...opts };
    this.msPerTx = this.opts.initialMsPerTx;
  }

  /** The current estimate of one transaction's execution cost, in ms. */
  get costPerTx(): number {
    return this.msPerTx;
  }

  get budgetMs(): number {
    return this.opts.budgetMs;
  }

  set budgetMs(ms: number) {
    if (!(ms > 0)) throw new Error('a proposal budget must be positive');
    this.opts.budgetMs = ms;
  }

  /**
   * A block of `txs` transactions took `ms` to execute (build or check). Blocks too small to
   * tell the per-transaction cost from the per-block cost are not counted.
   */
  observe(txs: number, ms: number): void {
    if (txs < 50 || !(ms >= 0) || !Number.isFinite(ms)) return;
    const sample = ms / txs;
    const a = this.opts.smoothing;
    // A floor keeps an instant sample from promising an unbounded block.
    this.msPerTx = Math.max(0.001, a * sample + (1 - a) * this.msPerTx);
  }

  /** The most transactions the next proposal should carry. */
  maxTxs(): number {
    return Math.max(this.opts.minTxs, Math.floor(this.opts.budgetMs / this.msPerTx));
  }
}
