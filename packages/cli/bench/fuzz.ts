/**
 * npm run fuzz -- [--inputs N] [--seed S] [--target NAME[,NAME…]] [--hang-ms MS] [--artifacts DIR]
 *                 [--replay FILE --target NAME] [--list]
 *
 * Feeds structure-aware and random inputs to every decoder and parser an outsider can reach (see
 * fuzz-targets.ts) and reports, per target, how many inputs were accepted, rejected with one of
 * the project's errors, or found a bug: any other exception, a call over the hang budget, or an
 * unhandled rejection. Each finding's input is saved as hex; the exit code is 1 when there is one.
 */
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runFuzz, runOne } from './fuzz-lib.js';
import { createTargets } from './fuzz-targets.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<number> {
  const inputs = Number(arg('inputs') ?? 100_000);
  if (!Number.isSafeInteger(inputs) || inputs < 0) throw new Error('--inputs must be a non-negative integer');
  const seed = arg('seed') ?? String(Date.now());
  const only = arg('target')?.split(',');
  const hangMs = Number(arg('hang-ms') ?? 1000);
  const artifactsDir = arg('artifacts') ?? join(tmpdir(), 'unc-fuzz-artifacts');
  const replay = arg('replay');

  const setup = await createTargets({ providerHttp: !only || only.includes('provider-http') });
  try {
    if (process.argv.includes('--list')) {
      for (const t of setup.targets) console.log(`${t.name.padEnd(14)} ${t.description}`);
      return 0;
    }
    const targets = only ? setup.targets.filter((t) => only.includes(t.name)) : setup.targets;
    if (only && targets.length !== only.length) {
      throw new Error(
        `unknown target in ${only.join(',')}; known: ${setup.targets.map((t) => t.name).join(', ')}`,
      );
    }
    if (replay) {
      if (targets.length !== 1) throw new Error('--replay needs exactly one --target');
      const input = new Uint8Array(Buffer.from(readFileSync(replay, 'utf8').trim(), 'hex'));
      const r = await runOne(targets[0]!, input);
      console.log(`${targets[0]!.name}: ${r.outcome} in ${r.ms.toFixed(1)} ms`);
      if (r.err) console.log(r.err instanceof Error ? r.err.stack : String(r.err));
      return r.outcome === 'crash' ? 1 : 0;
    }
    console.log(
      `fuzz: ${inputs} inputs over ${targets.length} targets, seed ${seed} (replay with --seed ${seed})`,
    );
    const report = await runFuzz(targets, {
      inputs,
      seed,
      hangMs,
      artifactsDir,
      onProgress: (line) => console.log(line),
    });
    for (const f of report.findings) {
      console.log(`\n${f.kind.toUpperCase()} in ${f.target} (${f.count}×): ${f.error}`);
      console.log(`  input: ${f.file ?? f.inputHex.slice(0, 200)}`);
      console.log(`  replay: npm run fuzz -- --target ${f.target} --replay ${f.file ?? 'FILE'}`);
      if (f.stack)
        console.log(
          f.stack
            .split('\n')
            .slice(0, 8)
            .map((l) => `  ${l}`)
            .join('\n'),
        );
    }
    const crashes = report.findings.filter((f) => f.kind === 'crash').reduce((a, f) => a + f.count, 0);
    const hangs = report.findings.filter((f) => f.kind === 'hang').reduce((a, f) => a + f.count, 0);
    const unhandled = report.findings.filter((f) => f.kind === 'unhandled').reduce((a, f) => a + f.count, 0);
    const accepted = report.targets.reduce((a, t) => a + t.accepted, 0);
    const rejected = report.targets.reduce((a, t) => a + t.rejected, 0);
    const seconds = report.elapsedMs / 1000;
    console.log(
      `\nfuzz: ${report.inputs} inputs (${accepted} accepted, ${rejected} rejected) in ${seconds.toFixed(1)} s, ${Math.round(report.inputs / seconds)}/s; ${crashes} crashes, ${hangs} hangs, ${unhandled} unhandled; seed ${seed}`,
    );
    return report.findings.length > 0 ? 1 : 0;
  } finally {
    await setup.close();
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err instanceof Error ? err.stack : err);
    process.exit(2);
  },
);
