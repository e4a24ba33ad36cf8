#!/usr/bin/env node
/**
 * How many bytes of state pruning old epochs saves per hour on a dev chain (`unc dev` defaults:
 * 1 s blocks, 60-block epochs, 4 dev chips answering every challenge), measured by running the
 * node's own block executor in-process (core's test harness) twice: once as is, once with every
 * pruned epoch and class record put back after each block. Usage, after `npx tsc -b`:
 *   node scripts/measure-state-pruning.mjs [hours=4]
 * Prints the bytes (keys + values) of the epoch (0x05) and class (0x0D) records after each hour.
 */
import {
  devSoftChipId,
  effectiveStatus,
  epochOf,
  getChip,
  getPociParams,
} from '../packages/core/dist/src/index.js';
import {
  answer,
  genesis,
  key,
  miner,
  POCI,
  registerAction,
  slotsOf,
  TestChain,
} from '../packages/core/dist/test/harness.js';

const hours = Number(process.argv[2] ?? 4);
const g = genesis({ ...POCI, epochBlocks: 60n });
const chips = [0, 1, 2, 3].map((i) => key(`measure-dev-chip-${i}`));
const epochSpace = (k) => k[0] === 0x05 || k[0] === 0x0d;
const bytes = (c) => {
  let n = 0;
  for (const w of c.state.map.values()) if (epochSpace(w.key)) n += w.key.length + w.value.length;
  return n;
};

function due(c, answered) {
  const p = getPociParams(c.state);
  const next = c.height + 1n;
  const out = [];
  for (const chip of chips) {
    const rec = getChip(c.state, devSoftChipId(chip.publicKey));
    if (!rec || effectiveStatus(c.state, rec, null).status !== 'active') continue;
    const now = epochOf(next, p);
    for (const e of [now - 1n, now]) {
      if (e < rec.firstEpoch) continue;
      slotsOf(c, chip, e).forEach((h, slot) => {
        const id = `${chip.address}:${e}:${slot}`;
        if (h >= next || next > h + p.answerWindowBlocks || answered.has(id)) return;
        answered.add(id);
        out.push(answer(c, chip, e, slot));
      });
    }
  }
  return out;
}

const pruned = new TestChain(g);
const kept = new TestChain(g);
for (const c of [pruned, kept]) {
  c.step = () => 1_000n;
  c.blocksUntil(2n);
  c.block([
    c.tx(
      miner,
      chips.map((k) => registerAction(c, k, miner.address)),
    ),
  ]);
}
const answered = [new Set(), new Set()];
const blocksPerHour = 3_600n;
let last = [0, 0];
for (let h = 1; h <= hours; h++) {
  while (pruned.height < BigInt(h) * blocksPerHour) {
    [pruned, kept].forEach((c, i) => {
      const before = c === kept ? new Map(c.state.map) : null;
      const answers = due(c, answered[i]);
      c.block(answers.length > 0 ? c.heartbeats(answers) : []);
      if (before)
        for (const [id, w] of before) if (epochSpace(w.key) && !c.state.map.has(id)) c.state.map.set(id, w);
    });
  }
  const now = [bytes(pruned), bytes(kept)];
  console.log(
    `hour ${h} (epoch ${epochOf(pruned.height, getPociParams(pruned.state))}): pruned ${now[0]} B (+${now[0] - last[0]}), unpruned ${now[1]} B (+${now[1] - last[1]})`,
  );
  last = now;
}
