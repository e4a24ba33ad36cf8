/**
 * bench:jobs's paired rounds: the order of the paths in each round, and how sure a per-round median
 * is. Pure, so both are tested (bench-paired-stats.test.ts).
 *
 * Order. A path's run is slowed by what ran just before it: the process before it may still free
 * memory, collect garbage or have the caches. The rounds once turned the paths (round r began
 * with path r mod n), which with three paths (direct, http, TLS) put direct just before http in two
 * rounds of three and just before TLS in one: whatever the direct run leaves behind fell on one
 * provider path more than the other. A Williams design orders the rounds so that every path comes
 * just after every other path equally often.
 *
 * Sureness. The per-round ratio's median over 24–60 rounds was read against a 5 % line while its
 * quartiles spanned ±15 %: the median itself then moves by several percent from run to run. The
 * interval printed beside it is the distribution-free one (order statistics, binomial), which
 * needs no assumption about the shape of the ratios' spread.
 */

/**
 * The order of `n` paths in round `round`: the rows of a Williams design (n rows for an even n,
 * 2n for an odd n, the second half the first reversed), taken in turn. Over each whole cycle of
 * rows, every ordered pair of different paths is adjacent (a just before b) equally often, and
 * every path stands in every position equally often.
 */
export function williamsOrder(n: number, round: number): number[] {
  if (!Number.isInteger(n) || n < 1) throw new Error('the number of paths must be an integer ≥ 1');
  if (!Number.isInteger(round) || round < 0) throw new Error('the round must be an integer ≥ 0');
  // First row 0, 1, n−1, 2, n−2, …; row i adds i to each (mod n).
  const first: number[] = [0];
  for (let lo = 1, hi = n - 1; first.length < n; ) {
    first.push(lo++);
    if (first.length < n) first.push(hi--);
  }
  const rows = n % 2 === 0 ? n : 2 * n;
  const r = round % rows;
  const row = first.map((v) => (v + (r % n)) % n);
  return r < n ? row : row.reverse();
}

/**
 * A distribution-free confidence interval for the median of `values` (at least `level`, e.g.
 * 0.95): the k-th smallest and k-th largest value, k the largest for which a Binomial(n, ½) falls
 * below k with probability at most (1 − level) / 2. Null when there are too few values for any
 * interval at that level (for 95 %: under 6).
 */
export function medianInterval(values: readonly number[], level = 0.95): [number, number] | null {
  if (!(level > 0 && level < 1)) throw new Error('the level must lie between 0 and 1');
  const n = values.length;
  if (n === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const tail = (1 - level) / 2;
  // P(X ≤ j) for X ~ Binomial(n, ½), summed in log space (½^n underflows past n ≈ 1,074).
  let logC = 0; // log C(n, j)
  let cdf = 0;
  let k = 0;
  for (let j = 0; j < n; j++) {
    if (j > 0) logC += Math.log((n - j + 1) / j);
    cdf += Math.exp(logC - n * Math.LN2);
    // The interval [x_(j+1), x_(n−j)] misses the median with probability 2·P(X ≤ j).
    if (cdf > tail) break;
    k = j + 1;
  }
  if (k === 0) return null;
  return [sorted[k - 1]!, sorted[n - k]!];
}
