/**
 * The benches' command lines are checked before anything starts: a bench that ignored what it did
 * not know ran its whole testnet for `--help` or a misspelt option, and measured something other
 * than what was asked.
 */

export interface BenchArgsSpec {
  /** Options that take a value (without the leading `--`). */
  valued: readonly string[];
  /** Options that stand alone. */
  flags: readonly string[];
}

export type BenchArgsCheck = { kind: 'run' } | { kind: 'help' } | { kind: 'error'; message: string };

/** What to do with `args` (process.argv without node and the script). Pure. */
export function checkBenchArgs(args: readonly string[], spec: BenchArgsSpec): BenchArgsCheck {
  if (args.includes('--help') || args.includes('-h')) return { kind: 'help' };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('--')) return { kind: 'error', message: `unexpected argument ${JSON.stringify(a)}` };
    const name = a.slice(2);
    if (spec.flags.includes(name)) continue;
    if (!spec.valued.includes(name)) return { kind: 'error', message: `unknown option ${a}` };
    const v = args[i + 1];
    if (v === undefined || v.startsWith('--')) return { kind: 'error', message: `${a} needs a value` };
    i++;
  }
  return { kind: 'run' };
}

/** Checks this process's command line: prints the usage and exits on `--help` or a bad option. */
export function exitOnBadBenchArgs(usage: string, spec: BenchArgsSpec): void {
  const check = checkBenchArgs(process.argv.slice(2), spec);
  if (check.kind === 'run') return;
  if (check.kind === 'help') {
    console.log(usage);
    process.exit(0);
  }
  console.error(`${check.message}\n${usage}`);
  process.exit(2);
}
