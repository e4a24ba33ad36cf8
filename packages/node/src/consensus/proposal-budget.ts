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

/**
 * The proposer's closed loop on how long heights take. The execution budget above counts one
 * execution of the block, but a height runs the proposer's build, the gossip and rebuild, every
 * validator's check, two vote steps and the commit one after another, on machines that are busy
 * with admission too: measured under saturation on a shared 2-core machine (4 validators), the
 * critical path cost about three times the measured execution per transaction, and heights of
 * 1.2–3 s kept the chain below one block per interval with no round timing out. So the proposer
 * scales its budget by how long recent heights took here, from the height's start to its commit
 * on this node's clock: shrinking while they run past the interval, growing back while they end
 * well within it and blocks were full (short heights of small blocks say nothing about a bigger
 * one).
 *
 * Bounded against an attacker: a validator that delays its votes, or a proposer that makes slow
 * blocks, can lengthen heights and so shrink honest proposals, but never below `minScale` (half)
 * of the execution budget (nor below the budget's `minTxs`). Half is also as far as shrinking
 * pays: on a machine so busy that every stage waits for a core, heights stay long at any block
 * size, and smaller blocks then only cut throughput (4 validators on 2 cores at load average
 * 10-15: 0.4-0.5 blocks/s with blocks of 100 or of 300 transfers alike); heights decided after a round timed out
 * are not counted (a missing proposer or a partition is not the cost of a block's size); and the
 * median of the last few heights is used, so one slow height moves nothing. Only the proposer's
 * choice depends on it (and so on its clock): a block's validity never does.
 */
export interface HeightPaceOptions {
  /** The block interval the heights should keep, in ms. */
  intervalMs: number;
  /**
   * Bounds of the scale on the execution budget. The ceiling is 1 by default: the loop only
   * shrinks proposals below the execution budget and grows them back to it, never past it. Above
   * it, a load that arrives while the scale is high makes blocks too large to finish in round 0,
   * and those heights (decided in a later round) are not counted, so nothing would shrink them.
   */
  minScale: number;
  maxScale: number;
  /** How many recent heights the median is taken over. */
  window: number;
}

/** Heights longer than this share of the interval shrink the next proposals. */
const SHRINK_ABOVE = 0.85;
/** Heights shorter than this share of the interval, of full blocks, grow them back. */
const GROW_BELOW = 0.6;
/** The height time a shrink aims at, as a share of the interval. */
const AIM = 0.75;
/** The most one height may change the scale by, each way (smooth, and bounded per height). */
const MAX_SHRINK_STEP = 0.75;
const MAX_GROW_STEP = 1.1;
/** A block at least this share of the proposal limit counts as full. */
const FULL = 0.5;

export class HeightPace {
  private readonly opts: HeightPaceOptions;
  /** The heights counted lately, oldest first; `mine`: of a block this node proposed. */
  private readonly recent: { ms: number; mine: boolean }[] = [];
  private value = 1;
  private seen = 0;

  constructor(opts: Partial<HeightPaceOptions> & Pick<HeightPaceOptions, 'intervalMs'>) {
    this.opts = { minScale: 0.5, maxScale: 1, window: 5, ...opts };
    if (!(this.opts.intervalMs > 0)) throw new Error('a block interval must be positive');
    if (!(this.opts.minScale > 0 && this.opts.minScale <= 1 && this.opts.maxScale >= 1))
      throw new Error('the pace bounds must hold 1 and be positive');
    if (!(Number.isInteger(this.opts.window) && this.opts.window >= 1))
      throw new Error('the pace window must be a positive whole number of heights');
  }

  /** Heights decided in round 0 that were shown to the loop (counted or not: see `observeHeight`). */
  get heightsSeen(): number {
    return this.seen;
  }

  /** The factor on the execution budget, in [minScale, maxScale]. */
  get scale(): number {
    return this.value;
  }

  /** The median of the heights counted lately, in ms (NaN before any). */
  get recentHeightMs(): number {
    if (this.recent.length === 0) return Number.NaN;
    const sorted = this.recent.map((h) => h.ms).sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)]!;
  }

  /**
   * A height was decided: `ms` from its start to its commit here, in `round`, with `txs`
   * transactions while this proposer's limit was `limit`; `mine`: this node proposed the block.
   * Returns the new scale.
   */
  observeHeight(ms: number, round: number, txs: number, limit: number, mine = false): number {
    // A round that timed out measures the fault, not the block; a bad clock reading nothing.
    if (round !== 0 || !Number.isFinite(ms) || ms < 0) return this.value;
    this.seen++;
    // A height whose block was not full says nothing about block size: its time is the network's
    // latency and the validators' speed, which a smaller block cannot shorten. Counted, a network
    // with long heights and no load (many validators far apart) sat at the floor, and halved its
    // blocks for nothing once load came.
    if (!(txs >= FULL * limit)) {
      // But a short one shows the network keeps its pace now, so the heights of other proposers'
      // blocks counted before are stale. Kept, under light load only the heights of blocks
      // someone chose to fill would count: a Byzantine proposer that fills its own blocks and
      // proposes late (one height in four) made every sample, and held the honest proposers at
      // the floor until load came. This node's own blocks stay counted: a proposer faster than
      // the others has a limit above theirs, so their full blocks look small here, and their
      // short heights must not hide that its own blocks are the ones too large.
      if (ms <= SHRINK_ABOVE * this.opts.intervalMs) {
        const own = this.recent.filter((h) => h.mine);
        this.recent.splice(0, this.recent.length, ...own);
      }
      return this.value;
    }
    const { intervalMs, window, minScale, maxScale } = this.opts;
    // One absurd sample (a stalled process) counts as a long height, no more.
    this.recent.push({ ms: Math.min(ms, 4 * intervalMs), mine });
    if (this.recent.length > window) this.recent.shift();
    // A lone sample is no trend: the first heights after a start wait for a few more.
    if (this.recent.length < Math.min(3, window)) return this.value;
    const median = this.recentHeightMs;
    let step = 1;
    if (median > SHRINK_ABOVE * intervalMs) step = Math.max(MAX_SHRINK_STEP, (AIM * intervalMs) / median);
    else if (median < GROW_BELOW * intervalMs)
      step = Math.min(MAX_GROW_STEP, (AIM * intervalMs) / Math.max(1, median));
    this.value = Math.min(maxScale, Math.max(minScale, this.value * step));
    return this.value;
  }
}

export class ProposalBudget {
  private readonly opts: ProposalBudgetOptions;
  private msPerTx: number;
  private paceScale = 1;

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

  /** The factor on the execution budget from the observed height times (HeightPace); 1 alone. */
  get pace(): number {
    return this.paceScale;
  }

  set pace(scale: number) {
    if (!(scale > 0) || !Number.isFinite(scale)) throw new Error('a pace must be positive and finite');
    this.paceScale = scale;
  }

  /** The most transactions the next proposal should carry. */
  maxTxs(): number {
    return Math.max(this.opts.minTxs, Math.floor((this.paceScale * this.opts.budgetMs) / this.msPerTx));
  }
}
