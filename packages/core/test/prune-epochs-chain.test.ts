/**
 * CONSENSUS CHANGE (docs/poci.md "Old epochs are pruned"), on a running chain: 135 epochs with a
 * chip answering throughout, one that earned early and went quiet (its unpaid epoch is kept), one
 * that never answered. The same blocks run on a chain whose pruned epoch and class records are put
 * back after each block: every event, refusal and every other key must agree.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  challengeClassCodec,
  challengeClassKey,
  chipClass,
  decode,
  devSoftChipId,
  EPOCH_KEEP_EPOCHS,
  effectiveStatus,
  epochKey,
  epochOf,
  epochPruned,
  getChip,
  getPociParams,
  type HeartbeatAnswer,
  type StateWrite,
  type TxEvent,
  toHex,
} from '../src/index.js';
import { answer, key, miner, registerAction, slotsOf, TestChain } from './harness.js';

const steady = key('prune-epochs-steady');
const quiet = key('prune-epochs-quiet');
const never = key('prune-epochs-never');
const chips = [steady, quiet, never];
const ids = chips.map((c) => devSoftChipId(c.publicKey));
const epochSpace = (k: Uint8Array) => k[0] === 0x05 || k[0] === 0x0d;

/** The due answers of the chips that answer at `next` (`quiet` only up to epoch 4). */
function dueAnswers(c: TestChain, answered: Set<string>): HeartbeatAnswer[] {
  const p = getPociParams(c.state);
  const next = c.height + 1n;
  const due: HeartbeatAnswer[] = [];
  for (const chip of [steady, quiet]) {
    const rec = getChip(c.state, devSoftChipId(chip.publicKey));
    if (!rec || effectiveStatus(c.state, rec, null).status !== 'active') continue;
    const now = epochOf(next, p);
    if (chip === quiet && now > 4n) continue;
    for (const e of [now - 1n, now]) {
      if (e < rec.firstEpoch) continue;
      slotsOf(c, chip, e).forEach((h, slot) => {
        const id = `${toHex(chip.publicKey)}:${e}:${slot}`;
        if (h >= next || next > h + p.answerWindowBlocks || answered.has(id)) return;
        answered.add(id);
        due.push(answer(c, chip, e, slot));
      });
    }
  }
  return due;
}

describe('pruning old epochs on a running chain', () => {
  test('pruned and unpruned chains agree on every event and every other key; the quiet chip is paid its old epoch', () => {
    const pruned = new TestChain();
    const kept = new TestChain();
    const answered = [new Set<string>(), new Set<string>()];
    /** What pruning removed from `kept`, put back after each block. */
    const restore = (before: Map<string, StateWrite>) => {
      for (const [id, w] of before)
        if (epochSpace(w.key) && !kept.state.map.has(id)) kept.state.map.set(id, w);
    };
    const both = (txs: (c: TestChain) => ReturnType<TestChain['tx']>[]) => {
      const out = [pruned, kept].map((c, i) => {
        const before = new Map(c.state.map);
        const events: TxEvent[] = c.block(txs(c));
        const due = dueAnswers(c, answered[i]!);
        if (due.length > 0) events.push(...c.block(c.heartbeats(due)));
        if (c === kept) restore(before);
        return events;
      });
      assert.deepEqual(out[0], out[1], `at height ${pruned.height}`);
    };
    pruned.blocksUntil(2n);
    kept.blocksUntil(2n);
    both((c) => [
      c.tx(
        miner,
        chips.map((k) => registerAction(c, k, miner.address)),
      ),
    ]);
    const p = getPociParams(pruned.state);
    const last = EPOCH_KEEP_EPOCHS + 8n;
    while (epochOf(pruned.height + 1n, p) < last) both(() => []);
    // Of epoch 4, owing the quiet chip until the claim, the pruning kept its record and only the
    // class still owed (the quiet chip's): the steady chip's was paid, the rest weightless.
    const classesOf = (c: TestChain, e: number) =>
      [...c.state.map.values()].filter((w) => w.key[0] === 0x0d && w.key[8] === e && w.key[7] === 0);
    const quietClass = chipClass(ids[1]!, p);
    assert.deepEqual(
      classesOf(pruned, 4).map((w) => toHex(w.key)),
      [toHex(challengeClassKey(4n, quietClass))],
      `of ${classesOf(kept, 4).length} classes, the owed one is kept`,
    );
    assert.ok(decode(challengeClassCodec, classesOf(pruned, 4)[0]!.value!).weight > 0n);
    assert.ok(pruned.state.get(epochKey(4n)), 'the epoch owing the quiet chip is kept until paid');
    const claim = (c: TestChain) => [c.tx(miner, [{ type: 'claimRewards', chipIds: ids }])];
    const beforeClaim = new Map(kept.state.map);
    const claimed = [pruned, kept].map((c) => c.block(claim(c)));
    restore(beforeClaim);
    assert.deepEqual(claimed[0], claimed[1], 'the claim pays the same');
    const paid = claimed[0]!.filter(
      (e) => e.type === 'chipRewarded' && toHex(e.chipId) === toHex(ids[1]!),
    ) as Extract<TxEvent, { type: 'chipRewarded' }>[];
    assert.ok(paid.length > 0 && paid.every((e) => e.amount > 0n), 'the quiet chip is paid its last epoch');
    assert.ok(
      paid.some((e) => e.epoch === 4n),
      'epoch 4 is paid',
    );
    const rest = (c: TestChain) =>
      [...c.state.map.values()]
        .filter((w) => !epochSpace(w.key))
        .map((w) => `${toHex(w.key)}=${toHex(w.value!)}`)
        .sort();
    assert.deepEqual(rest(pruned), rest(kept), 'only epoch and class records differ');
    // Epochs 0…8 are 128 behind by the end: all pruned, 4 (passed by while it owed) once the claim
    // paid the last weight in it.
    const left = (c: TestChain) =>
      [...c.state.map.values()].filter((w) => w.key[0] === 0x05 && w.key[8]! < 9).map((w) => w.key[8]);
    assert.deepEqual(left(pruned), []);
    assert.deepEqual(left(kept).sort(), [0, 1, 2, 3, 4, 5, 6, 7, 8], 'kept: every epoch');
    assert.deepEqual(classesOf(pruned, 4), [], 'its last class went with the payout');
    assert.ok(epochPruned(pruned.state, 4n), 'and it reads as pruned');
    // A second claim reads the pruned epoch as paid out: nothing more.
    const again = [pruned, kept].map((c) => c.block(claim(c)));
    assert.deepEqual(again[0], again[1], 'a second claim agrees');
  });
});
