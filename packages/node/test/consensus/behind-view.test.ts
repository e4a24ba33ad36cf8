/**
 * BehindView: "behind" only from evidence a peer cannot forge (votes of over a third of the power,
 * or a verified certificate), and never for good: evidence expires, and a head that does not move
 * for `maxStuckMs` while behind ends it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ValidatorSet } from '@unc/core';
import fc from 'fast-check';
import { BehindView } from '../../src/consensus/behind-view.js';

const keys = [1, 2, 3, 4].map((i) => new Uint8Array(32).fill(i));
const set = new ValidatorSet(keys.map((publicKey) => ({ publicKey, power: 1n })));
const outsider = new Uint8Array(32).fill(9);

test('votes above the head by validators with over a third of the power make a node behind; a third or less, or outsiders, do not', () => {
  const view = new BehindView();
  view.sawVote(keys[0]!, 10n, 0);
  view.sawVote(outsider, 10n, 0);
  assert.equal(view.behind(3n, set, 0), false, 'one of four (a quarter) is not enough');
  view.sawVote(keys[1]!, 8n, 0);
  // Two of four reached 8 or more: 7 is decided.
  assert.equal(view.decided(set, 0), 7n);
  assert.equal(view.behind(3n, set, 0), true);
  assert.equal(view.behind(7n, set, 0), false, 'caught up');
});

test('a verified certificate above the head makes a node behind until its head reaches it', () => {
  const view = new BehindView();
  view.sawCertified(12n, 0);
  assert.equal(view.behind(11n, set, 0), true);
  assert.equal(view.behind(12n, set, 1), false);
});

test('evidence older than its time to live, or a head stuck behind for maxStuckMs, answers not behind', () => {
  const view = new BehindView({ evidenceTtlMs: 1_000, maxStuckMs: 5_000 });
  view.sawVote(keys[0]!, 10n, 0);
  view.sawVote(keys[1]!, 10n, 0);
  assert.equal(view.behind(3n, set, 500), true);
  assert.equal(view.behind(3n, set, 1_501), false, 'expired');
  // Fresh votes keep coming, but the head does not move: at most maxStuckMs of "retry".
  const stuck = new BehindView({ evidenceTtlMs: 1_000, maxStuckMs: 5_000 });
  for (let t = 0; t <= 6_000; t += 500) {
    stuck.sawVote(keys[0]!, 10n, t);
    stuck.sawVote(keys[1]!, 10n, t);
    assert.equal(stuck.behind(3n, set, t), t < 5_000, `at ${t} ms`);
  }
  // The head moved: catching up again, behind again.
  stuck.noteHead(4n);
  assert.equal(stuck.behind(4n, set, 6_000), true);
});

test('property: whatever votes validators under a third of the power sign, a node is never behind on them', () => {
  fc.assert(
    fc.property(
      fc.array(fc.bigInt({ min: 0n, max: 1n << 40n }), { maxLength: 50 }),
      fc.integer({ min: 0, max: 3 }),
      fc.bigInt({ min: 0n, max: 1n << 40n }),
      (votes, liar, head) => {
        const view = new BehindView();
        // One validator of four (a quarter of the power) votes anywhere; the others at the head + 1.
        for (const h of votes) view.sawVote(keys[liar]!, h, 0);
        for (const [i, k] of keys.entries()) if (i !== liar) view.sawVote(k, head + 1n, 0);
        return view.behind(head, set, 0) === false;
      },
    ),
  );
});

test('a head that stood still longer than maxStuckMs before the node fell behind (back from a long split) still gets its window of "retry", once per height', () => {
  const view = new BehindView({ evidenceTtlMs: 10_000, maxStuckMs: 5_000 });
  // Not behind for a minute at height 3 (cut off, nothing decided that it knows of).
  assert.equal(view.behind(3n, set, 0), false);
  assert.equal(view.behind(3n, set, 60_000), false);
  // The split heals: votes show height 9 decided. Behind from now, for maxStuckMs at this height.
  view.sawVote(keys[0]!, 10n, 60_000);
  view.sawVote(keys[1]!, 10n, 60_000);
  assert.equal(view.behind(3n, set, 60_000), true, 'just fell behind');
  assert.equal(view.behind(3n, set, 64_000), true);
  assert.equal(view.behind(3n, set, 65_000), false, 'stuck for maxStuckMs');
  // Evidence that lapses and comes back gives no second window at the same height.
  view.sawVote(keys[0]!, 10n, 80_000);
  view.sawVote(keys[1]!, 10n, 80_000);
  assert.equal(view.behind(3n, set, 80_000), false, 'no second window at height 3');
  view.noteHead(4n);
  assert.equal(view.behind(4n, set, 80_000), true, 'a new height, a new window');
});
