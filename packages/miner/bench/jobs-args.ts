/**
 * bench:jobs's command line, checked before anything starts: a misspelt option (say
 * `--provider-concurency 4`) was ignored, and the bench measured its default while its header and
 * the reader took it for what was asked. Pure, so the checks are tested (bench-jobs-args.test.ts).
 */

/** Options that take a value, and those that stand alone (without the leading `--`). */
export const JOBS_BENCH_OPTIONS = {
  valued: ['jobs', 'parallel', 'batch', 'only', 'rows', 'ort-spin', 'ort-threads', 'provider-concurrency'],
  flags: ['paired', 'stages'],
} as const;

/** The most job processes the bench's provider may run, as `unc miner start --job-concurrency`. */
export const MAX_PROVIDER_CONCURRENCY = 64;

/** Why `args` (process.argv without node and the script) cannot run, or null. */
export function jobsBenchArgsError(args: readonly string[]): string | null {
  const valued: readonly string[] = JOBS_BENCH_OPTIONS.valued;
  const flags: readonly string[] = JOBS_BENCH_OPTIONS.flags;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('--')) return `unexpected argument ${JSON.stringify(a)}`;
    const name = a.slice(2);
    if (flags.includes(name)) continue;
    if (!valued.includes(name)) return `unknown option ${a}`;
    const v = args[i + 1];
    if (v === undefined || v.startsWith('--')) return `${a} needs a value`;
    i++;
  }
  return null;
}

/**
 * Jobs the bench's provider runs at once (`--provider-concurrency N`, 1…64): by default one per
 * request in flight (`parallel`), at most the cores. Throws with a clear message on bad input.
 */
export function providerConcurrencyOf(args: readonly string[], parallel: number, cores: number): number {
  const at = args.indexOf('--provider-concurrency');
  if (at < 0) return Math.max(1, Math.min(parallel, cores));
  const v = Number(args[at + 1]);
  if (!Number.isInteger(v) || v < 1 || v > MAX_PROVIDER_CONCURRENCY)
    throw new Error(`--provider-concurrency must be an integer 1…${MAX_PROVIDER_CONCURRENCY}`);
  return v;
}
