/**
 * A model of a chip's seat share written apart from the code (the deadline windows, the look-back
 * to the newest window that counted a challenge, the grace), checked against `chipSeatShare` at a
 * boundary. Shared by the seat-share and TPM-credit properties, which differ only in which of the
 * chip's challenges count as answered.
 */
import assert from 'node:assert/strict';
import {
  type challengeLookup,
  chipClass,
  chipSeatShare,
  creditedChallenges,
  epochStart,
  getChip,
  type PociParams,
} from '../../src/index.js';

export function assertSeatShareAsModel(
  state: Parameters<typeof getChip>[0],
  lookup: ReturnType<typeof challengeLookup>,
  chipId: Uint8Array,
  b: bigint,
  p: PociParams,
  answered: ReadonlySet<bigint>,
  i: number,
): void {
  const W = p.answerWindowBlocks;
  const chip = getChip(state, chipId)!;
  const cls = chipClass(chip.chipId, p);
  let model: { credited: number; counted: number } | null = null;
  for (let w = b; w > chip.firstEpoch && model === null; w--) {
    const counted = [w - 2n, w - 1n]
      .filter((e) => e >= chip.firstEpoch)
      .flatMap((e) => lookup(e, cls))
      .filter((s) => s + W >= epochStart(w - 1n, p) && s + W < epochStart(w, p));
    if (counted.length === 0) continue;
    const hits = counted.filter((s) => answered.has(s)).length;
    model = { credited: creditedChallenges(hits, counted.length, p), counted: counted.length };
  }
  const got = chipSeatShare(state, chip, b, p, lookup, cls);
  if (model === null) assert.equal(got, null, `chip ${i} at boundary ${b}`);
  else {
    assert.ok(got, `chip ${i} at boundary ${b}: measured`);
    assert.equal(
      got.credited * model.counted,
      model.credited * got.counted,
      `chip ${i} at boundary ${b}: ${got.credited}/${got.counted}, model ${model.credited}/${model.counted}`,
    );
  }
}
