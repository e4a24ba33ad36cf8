/**
 * sim:liveness — chips with random on/off schedules over many epochs on a chain running the real
 * core rules; earnings against the fraction of the time each chip was online (docs/poci.md).
 *
 *   npm run sim:liveness -- [--seed 1] [--chips 10 (per online fraction)] [--epochs 40]
 *     [--epoch-blocks 200] [--window 5] [--min-session 50] [--max-sessions 6] [--grace 1]
 *
 * Goals (PROTOCOL.md §4.3): online 2% → at most 5% of an always-online chip; 50% → at most 60%;
 * 100% → exactly its full share. Exits 1 if a goal is missed.
 */
import { DEFAULT_SIM, type LivenessSimOptions, simulateLiveness } from './liveness-sim.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const base: LivenessSimOptions = {
  ...DEFAULT_SIM,
  seed: arg('seed', DEFAULT_SIM.seed),
  chipsPerFraction: arg('chips', DEFAULT_SIM.chipsPerFraction),
  epochs: arg('epochs', DEFAULT_SIM.epochs),
  epochBlocks: BigInt(arg('epoch-blocks', Number(DEFAULT_SIM.epochBlocks))),
  answerWindowBlocks: BigInt(arg('window', Number(DEFAULT_SIM.answerWindowBlocks))),
  minSessionBlocks: arg('min-session', DEFAULT_SIM.minSessionBlocks),
  maxSessions: arg('max-sessions', DEFAULT_SIM.maxSessions),
};
const graces = process.argv.includes('--grace') ? [arg('grace', 1)] : [1, 0];

let ok = true;
const pct = (x: number) => `${(x * 100).toFixed(1)}%`.padStart(7);
console.log(
  `sim:liveness seed ${base.seed}, ${base.chipsPerFraction} chips per online fraction, ${base.epochs} epochs of ${base.epochBlocks} blocks, ` +
    `S ${base.slotsPerEpoch}, W ${base.answerWindowBlocks}, on-sessions ≥ ${base.minSessionBlocks} blocks (1…${base.maxSessions} per chip)`,
);
for (const grace of graces) {
  const t0 = performance.now();
  const r = simulateLiveness({ ...base, graceSlotsPerEpoch: grace });
  console.log(
    `\ngrace G = ${grace}: ${r.blocks} blocks, ${r.answers} answers, ${((performance.now() - t0) / 1000).toFixed(1)} s; minted ${r.minted} = Σ final budgets ${r.budgets}: ${r.minted === r.budgets ? 'exact' : 'MISMATCH'}`,
  );
  console.log('  online   uptime measured   earned vs always-online (mean, min…max)   goal');
  for (const g of r.groups) {
    const goal = g.fraction === 1 ? 1 : g.fraction <= 0.02 ? 0.05 : g.fraction === 0.5 ? 0.6 : null;
    const always = r.chips.filter((c) => c.fraction === 1);
    const met =
      goal === null
        ? true
        : g.fraction === 1
          ? always.every((c) => c.fullWeightEpochs === c.paidEpochs && c.answered === c.challenged)
          : g.earnedRatio <= goal;
    if (!met) ok = false;
    console.log(
      `  ${pct(g.online)}  ${pct(g.uptime)}          ${pct(g.earnedRatio)}  (${pct(g.minRatio)} … ${pct(g.maxRatio)})        ${
        goal === null
          ? ''
          : g.fraction === 1
            ? `full weight in every epoch it was challenged: ${met ? 'met' : 'MISSED'}`
            : `≤ ${pct(goal).trim()}: ${met ? 'met' : 'MISSED'}`
      }`,
    );
  }
  if (r.minted !== r.budgets) ok = false;
}
process.exitCode = ok ? 0 : 1;
