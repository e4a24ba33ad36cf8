/**
 * Two answers of one tpm2 chip signed together in one late heartbeat, while blocks run slower than
 * about 1.25 × their target interval (docs/poci.md, "Asleep between challenges", CONSENSUS CHANGE).
 *
 * Regression (failed before the fix): an honest, always-on chip whose agent fell behind once (its
 * node stalled at the challenge of block h1 and caught up at the next one, h2) signed both answers
 * at h2 and sent them in one heartbeat, each within its window. The second was measured against the
 * first: no clock between two signatures made at once, against 4/5 of T2 − T1 less the slack of W
 * target intervals + 2D (tpmCreditSlackMs; D the 5 s block-time drift, since tpm2skew). The chain
 * here has a 10 s target (W × 10 s = 50 s, so the slack is 60 s and the drift term small, as at the
 * defaults): at twice the target interval, h2 − h1 = 4 blocks is 80 s of block time, more than
 * 1.25 × 60 s, so the second answer was uncredited (`asleep`) and counted as a miss. An answer
 * is now also credited against the reference the chip had before the heartbeat's first answer of
 * it, over that longer span, which the chip's clock covers: it ran all along.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  blockChallengeClass,
  chipClass,
  DEFAULT_PARAMS,
  epochOf,
  getChip,
  getPociParams,
  type HeartbeatAnswer,
  type TxEvent,
} from '../src/index.js';
import { issueCa } from './attestation/helpers.js';
import { challengesOfChip, genesis, miner, POCI, TestChain } from './harness.js';
import { type Clock, FixtureTpm, withTpmVendor } from './tpm-chip.js';

const ROOT = issueCa('TPM Vendor Root (late batch)');
/**
 * The chain's target block interval: 10 s, so that the slack's drift term (2D = 10 s) is a fifth of
 * W × the target (W = 5), close to the defaults' half (W = 20 at 1 s), and the spans below exceed it.
 */
const TARGET_MS = 10_000n;
const CHAIN_GENESIS = () =>
  withTpmVendor(genesis(POCI, { params: { ...DEFAULT_PARAMS, blockTimeMs: Number(TARGET_MS) } }), ROOT);
const W = POCI.answerWindowBlocks;
/** Blocks between the two challenges answered together: W − 1, the most that one heartbeat can still carry. */
const GAP = W - 1n;

/**
 * Runs an always-on TPM chip (its clock at `ratePerMille` of block time) at `stepMs` per block
 * (the target is TARGET_MS), its agent signing each answer at the first head that shows the
 * challenge, except that it stalls at a challenge whose class's next challenge comes GAP blocks
 * later: it signs both then, in one heartbeat.
 */
function run(stepMs: bigint, ratePerMille: bigint, send: 'together' | 'actions' | 'blocks' = 'together') {
  const chain = new TestChain(CHAIN_GENESIS());
  chain.step = () => stepMs;
  chain.blocksUntil(2n);
  const tpm = new FixtureTpm(ROOT, Uint8Array.of(0x5a));
  const c: Clock & { at: bigint } = { clock: 9_000_000n, resetCount: 1, restartCount: 2, at: chain.time };
  const registered = chain.block([chain.tx(miner, [tpm.register(chain, miner.address, c)])]);
  const chipId = registered.flatMap((e) => (e.type === 'chipRegistered' ? [e.chipId] : []))[0]!;
  tpm.chipId = chipId;
  const p = getPociParams(chain.state);
  const cls = chipClass(chipId, p);
  const drawn = (h: bigint) => blockChallengeClass(chain.beaconOf(h), p) === cls;
  const answered = new Set<bigint>();
  const deferred = new Set<bigint>();
  const events: TxEvent[] = [];
  let batches = 0;
  while (chain.height < 12n * p.epochBlocks) {
    const head = chain.height;
    c.clock += ((chain.time - c.at) * ratePerMille) / 1000n;
    c.at = chain.time;
    const e = epochOf(head + 1n, p);
    const open: { epoch: bigint; slot: number; h: bigint }[] = [];
    for (const epoch of [e - 1n, e]) {
      if (epoch < getChip(chain.state, chipId)!.firstEpoch) continue;
      challengesOfChip(chain, chipId, epoch).forEach((h, slot) => {
        if (!answered.has(h) && h <= head && head + 1n <= h + W) open.push({ epoch, slot, h });
      });
    }
    const due: HeartbeatAnswer[] = [];
    for (const o of open) {
      // Stalled: signed only once the next challenge is the head.
      if (deferred.has(o.h) && head < o.h + GAP) continue;
      // The stall: the next challenge of its class is GAP blocks on, none in between, and this one
      // is not itself the second of a stalled pair.
      const next = o.h + GAP;
      const stall =
        o.h === head &&
        !deferred.has(o.h - GAP) &&
        drawn(next) &&
        epochOf(next, p) <= epochOf(o.h, p) + 1n &&
        [...Array(Number(GAP) - 1)].every((_, i) => !drawn(o.h + BigInt(i) + 1n));
      if (stall) {
        deferred.add(o.h);
        continue;
      }
      answered.add(o.h);
      due.push(tpm.answer(chain, o.epoch, o.slot, c));
    }
    if (due.length > 1) batches++;
    if (due.length > 1 && send === 'blocks') {
      // Sent apart: the older answer in one block, the rest in the next (all signed already).
      events.push(...chain.block(chain.heartbeats(due.slice(0, 1))));
      events.push(...chain.block(chain.heartbeats(due.slice(1))));
    } else events.push(...chain.block(chain.heartbeats(due, 0n, send === 'actions')));
  }
  const chip = getChip(chain.state, chipId)!;
  return {
    batches,
    answers: answered.size,
    uncredited: events.filter((x) => x.type === 'answerUncredited'),
    credited: events.filter((x) => x.type === 'slotAnswered').length,
    slotsMissed: chip.slotsMissed,
  };
}

describe('tpm2 credit: two answers signed together in one late heartbeat', () => {
  test('at twice the target block interval, an always-on chip (its TPM 15% slow) is credited both answers of every late pair', () => {
    const r = run(2n * TARGET_MS, 850n);
    assert.ok(r.batches >= 2, `precondition: late pairs were sent (${r.batches})`);
    assert.deepEqual(
      r.uncredited.map((u) => (u.type === 'answerUncredited' ? `${u.slotHeight}: ${u.reason}` : '')),
      [],
    );
    assert.equal(r.credited, r.answers);
    assert.equal(r.slotsMissed, 0n);
  });

  test('at the target interval the same agent was credited every answer (the slack alone covers it)', () => {
    const r = run(TARGET_MS, 850n);
    assert.ok(r.batches >= 2, `precondition: late pairs were sent (${r.batches})`);
    assert.deepEqual(r.uncredited, []);
    assert.equal(r.credited, r.answers);
  });
});

/**
 * CONSENSUS CHANGE (sleepmend; docs/poci.md, "Answers sent apart"). Regression (failed before the
 * fix): the same late pair, signed together, sent in two heartbeats (two actions of one
 * transaction, or two blocks) instead of one: the second was measured only against the first, so
 * at twice the target interval the always-on chip lost it, as the one-heartbeat rule had before.
 */
describe('tpm2 credit: a late pair signed together but sent in two heartbeats', () => {
  for (const send of ['actions', 'blocks'] as const) {
    test(`at twice the target block interval, sent as two ${send}, an always-on chip is credited both answers`, () => {
      const r = run(2n * TARGET_MS, 850n, send);
      assert.ok(r.batches >= 2, `precondition: late pairs were sent (${r.batches})`);
      assert.deepEqual(
        r.uncredited.map((u) => (u.type === 'answerUncredited' ? `${u.slotHeight}: ${u.reason}` : '')),
        [],
      );
      assert.equal(r.credited, r.answers);
      assert.equal(r.slotsMissed, 0n);
    });
  }
});

/**
 * Two challenges of the chip's class whose windows overlap (h2 = h1 + W − 1), after `warm`
 * answers (blocks at twice the target interval, the clock running at `ratePerMille` of block time
 * throughout: an always-on chip, or one that ran part of the time); answered with quotes reading `dA` and `dA + dB` ms past the clock the chip
 * had at h2, either in one heartbeat at h2 + 1 or apart (A at h2 + 1, B at h2 + 2). What each way
 * credited (slot heights), and whether the pair was found.
 */
function overlappingPair(warm: number, ratePerMille: bigint, dA: bigint, dB: bigint, apart: boolean) {
  const chain = new TestChain(CHAIN_GENESIS());
  chain.step = () => 2n * TARGET_MS;
  chain.blocksUntil(2n);
  const tpm = new FixtureTpm(ROOT, Uint8Array.of(0x5b));
  const c: Clock = { clock: 7_000_000n, resetCount: 1, restartCount: 0 };
  let at = chain.time;
  const registered = chain.block([chain.tx(miner, [tpm.register(chain, miner.address, c)])]);
  const chipId = registered.flatMap((e) => (e.type === 'chipRegistered' ? [e.chipId] : []))[0]!;
  tpm.chipId = chipId;
  const p = getPociParams(chain.state);
  const cls = chipClass(chipId, p);
  const drawn = (h: bigint) => blockChallengeClass(chain.beaconOf(h), p) === cls;
  const slotOf = (h: bigint) => {
    const epoch = epochOf(h, p);
    return { epoch, slot: challengesOfChip(chain, chipId, epoch).indexOf(h) };
  };
  const first = p.epochBlocks * (epochOf(chain.height, p) + 1n) + 1n;
  let warmed = 0;
  const events: TxEvent[] = [];
  for (let h1 = first; h1 < first + 10n * p.epochBlocks; h1++) {
    if (!drawn(h1)) continue;
    // The widest pair one heartbeat can carry (W − 1 blocks apart, 80 s of block time: more than the
    // slack covers); a challenge between them goes unanswered, in both ways alike.
    const h2 = drawn(h1 + W - 1n) ? h1 + W - 1n : undefined;
    if (warmed < warm || h2 === undefined || epochOf(h2, p) !== epochOf(h1, p)) {
      // An answer at once, the clock having run at `ratePerMille` (0: a paused vTPM).
      chain.blocksUntil(h1);
      c.clock += ((chain.time - at) * ratePerMille) / 1000n;
      at = chain.time;
      const { epoch, slot } = slotOf(h1);
      events.push(...chain.block(chain.heartbeats([tpm.answer(chain, epoch, slot, c)])));
      warmed++;
      continue;
    }
    chain.blocksUntil(h2);
    c.clock += ((chain.time - at) * ratePerMille) / 1000n;
    const a = slotOf(h1);
    const b = slotOf(h2);
    const qa = tpm.answer(chain, a.epoch, a.slot, { ...c, clock: c.clock + dA });
    const qb = tpm.answer(chain, b.epoch, b.slot, { ...c, clock: c.clock + dA + dB });
    if (apart) {
      events.push(...chain.block(chain.heartbeats([qa])));
      events.push(...chain.block(chain.heartbeats([qb])));
    } else events.push(...chain.block(chain.heartbeats([qa, qb])));
    const credited = (h: bigint) => events.some((x) => x.type === 'slotAnswered' && x.slotHeight === h);
    return { found: true, a: credited(h1), b: credited(h2) };
  }
  return { found: false, a: false, b: false };
}

describe('tpm2 credit: answers sent apart credit no more than the same quotes sent together', () => {
  test('property: whatever the two quotes read, apart or together the chain credits the same answers (a sleeper gains nothing by splitting or merging)', () => {
    let found = 0;
    let partial = 0;
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 3 }),
        fc.bigInt({ min: 0n, max: 1150n }),
        fc.bigInt({ min: 0n, max: 200_000n }),
        // B measured against A alone needs up to 4/5 × 80 s − 60 s = 4 s: around it.
        fc.bigInt({ min: 0n, max: 10_000n }),
        (warm, rate, dA, dB) => {
          const together = overlappingPair(warm, rate, dA, dB, false);
          const apart = overlappingPair(warm, rate, dA, dB, true);
          assert.deepEqual(apart, together);
          if (together.found) found++;
          if (together.a !== together.b) partial++;
        },
      ),
      { numRuns: 40, seed: 11 },
    );
    // Not vacuous: pairs were found, and some were credited only in part (the rule mattered).
    assert.ok(found > 0 && partial > 0, `precondition: ${found} pairs, ${partial} credited in part`);
  });
});

/**
 * Two challenges of the chip's class `gap` blocks apart (blocks at twice the target interval, the
 * clock running at block time until the first quote), the first answered late (signed at h2 − 1,
 * included at h2), the second signed `dB` ms of clock after it and included at h2 + 1. Whether the
 * second was credited.
 */
function pairApart(gap: bigint, dB: bigint) {
  const chain = new TestChain(CHAIN_GENESIS());
  chain.step = () => 2n * TARGET_MS;
  chain.blocksUntil(2n);
  const tpm = new FixtureTpm(ROOT, Uint8Array.of(0x5d));
  const c: Clock = { clock: 3_000_000n, resetCount: 2, restartCount: 1 };
  let at = chain.time;
  const registered = chain.block([chain.tx(miner, [tpm.register(chain, miner.address, c)])]);
  const chipId = registered.flatMap((e) => (e.type === 'chipRegistered' ? [e.chipId] : []))[0]!;
  tpm.chipId = chipId;
  const p = getPociParams(chain.state);
  const cls = chipClass(chipId, p);
  const drawn = (h: bigint) => blockChallengeClass(chain.beaconOf(h), p) === cls;
  const slotOf = (h: bigint) => {
    const epoch = epochOf(h, p);
    return { epoch, slot: challengesOfChip(chain, chipId, epoch).indexOf(h) };
  };
  const first = p.epochBlocks * (epochOf(chain.height, p) + 1n) + 1n;
  for (let h1 = first; h1 < first + 10n * p.epochBlocks; h1++) {
    const h2 = h1 + gap;
    if (!drawn(h1) || !drawn(h2) || epochOf(h2, p) !== epochOf(h1, p)) continue;
    if ([...Array(Number(gap) - 1)].some((_, i) => drawn(h1 + BigInt(i) + 1n))) continue;
    chain.blocksUntil(h2 - 1n);
    c.clock += chain.time - at;
    at = chain.time;
    const a = slotOf(h1);
    const events = chain.block(chain.heartbeats([tpm.answer(chain, a.epoch, a.slot, c)]));
    const b = slotOf(h2);
    events.push(
      ...chain.block(chain.heartbeats([tpm.answer(chain, b.epoch, b.slot, { ...c, clock: c.clock + dB })])),
    );
    const credited = (h: bigint) => events.some((x) => x.type === 'slotAnswered' && x.slotHeight === h);
    return { found: true, a: credited(h1), b: credited(h2) };
  }
  return { found: false, a: false, b: false };
}

describe('tpm2 credit: the prior reference reaches only an answer whose window overlapped', () => {
  // Quotes with no clock between them (a paused TPM, or two signed at once): the second is short of
  // the first by 4/5 of the span less the slack (4 s at W − 1 blocks, 20 s at W).
  test('W − 1 blocks apart (both windows open at h2): the second is measured from the reference before the first too, and credited', () => {
    const r = pairApart(W - 1n, 0n);
    assert.ok(r.found, 'precondition: such a pair was drawn');
    assert.deepEqual(r, { found: true, a: true, b: true });
  });

  test('W blocks apart (never open together, so never in one heartbeat): the second is measured from the first alone, and not credited', () => {
    const r = pairApart(W, 0n);
    assert.ok(r.found, 'precondition: such a pair was drawn');
    assert.deepEqual(r, { found: true, a: true, b: false });
  });
});
