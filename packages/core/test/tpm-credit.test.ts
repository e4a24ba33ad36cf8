/**
 * The credit rule for answers carrying a TPM clock (poci/liveness.ts tpmAnswerCredit, docs/poci.md
 * "Asleep between challenges"), as a pure function: exact integers, and the two promises it makes.
 * An honest always-on chip is always credited, however late in its window it signed the previous
 * answer; a chip whose TPM did not run for more than a fifth of the time (plus the slack) never is.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { type TpmClock, tpmAnswerCredit, tpmBatchAnswerCredit, tpmClockRequiredMs } from '../src/index.js';

const ms = (max: bigint) => fc.bigInt({ min: 0n, max });
const DAY = 86_400_000n;
const counts = fc.record({ resetCount: fc.nat(1000), restartCount: fc.nat(1000) });

describe('TPM clock credit (pure)', () => {
  test('property: credited exactly when 5 × advance ≥ 4 × elapsed − 5 × slack (no rounding either way)', () => {
    fc.assert(
      fc.property(
        ms(1n << 40n),
        fc.bigInt({ min: -DAY, max: 30n * DAY }),
        ms(30n * DAY),
        ms(600_000n),
        counts,
        (prevClock, elapsed, advance, slack, c) => {
          const prev: TpmClock = { clock: prevClock, ...c };
          const next: TpmClock = { clock: prevClock + advance, ...c };
          const t0 = 1_795_000_000_000n;
          const credited = tpmAnswerCredit(prev, t0, next, t0 + elapsed, slack) === 'credited';
          assert.equal(credited, 5n * advance >= 4n * elapsed - 5n * slack);
          assert.equal(credited, advance >= tpmClockRequiredMs(elapsed, slack));
        },
      ),
      { numRuns: 2000 },
    );
  });

  test('property: an always-on chip is credited, whatever its signing delays within the window', () => {
    // Challenges at block times 0 and E ≥ 0. The previous answer was signed d ≤ slack after its
    // challenge (the slack is W × the target interval: an answer signed later missed its window),
    // the new one L ≥ 0 after its challenge or after the previous signature, whichever is later.
    // The TPM clock runs at 85% to 115% of real time between the two: TPM 2.0 Library Part 1,
    // clause 33.3.6, asks only that Clock's nominal rate be within 15% of UTC's (a TPM's oscillator
    // is not a reference clock). Slack of at least 20 ms: a block interval is never shorter.
    fc.assert(
      fc.property(
        ms(30n * DAY),
        fc.bigInt({ min: 20n, max: 600_000n }),
        fc.bigInt({ min: 0n, max: 1000n }),
        ms(600_000n),
        fc.integer({ min: 850, max: 1150 }),
        counts,
        (elapsed, slack, delayShare, laterDelay, ratePerMille, c) => {
          const signedPrev = (slack * delayShare) / 1000n; // 0 … slack after block time 0
          const signedNext = (elapsed > signedPrev ? elapsed : signedPrev) + laterDelay;
          const advance = ((signedNext - signedPrev) * BigInt(ratePerMille)) / 1000n;
          const prev: TpmClock = { clock: 10_000n, ...c };
          const next: TpmClock = { clock: 10_000n + advance, ...c };
          assert.equal(tpmAnswerCredit(prev, 0n, next, elapsed, slack), 'credited');
        },
      ),
      { numRuns: 3000 },
    );
  });

  test('a TPM at the slow end of the specification (85% of real time) is credited across a long gap', () => {
    const c = { resetCount: 1, restartCount: 0 };
    // 15 minutes and a day between two challenges, signed at once each time: 85% of it on the clock.
    for (const elapsed of [900_000n, 86_400_000n]) {
      const advance = (elapsed * 85n) / 100n;
      assert.equal(
        tpmAnswerCredit({ clock: 0n, ...c }, 0n, { clock: advance, ...c }, elapsed, 20_000n),
        'credited',
        `${elapsed} ms`,
      );
    }
  });

  test('property: a TPM that did not run for over a fifth of the time, plus the slack, is never credited', () => {
    fc.assert(
      fc.property(ms(30n * DAY), ms(30n * DAY), ms(600_000n), counts, (up, down, slack, c) => {
        // Up `up` ms (its clock runs), down `down` ms (it does not), between the two challenges.
        const elapsed = up + down;
        fc.pre(5n * down > elapsed + 5n * slack);
        const prev: TpmClock = { clock: 1n, ...c };
        const next: TpmClock = { clock: 1n + up, ...c };
        assert.equal(tpmAnswerCredit(prev, 5n, next, 5n + elapsed, slack), 'asleep');
      }),
      { numRuns: 2000 },
    );
  });

  test('property: a reset or a restart is never credited, whatever the clock says', () => {
    fc.assert(
      fc.property(
        counts,
        fc.oneof(fc.constant('reset'), fc.constant('restart')),
        ms(1n << 40n),
        ms(1n << 40n),
        fc.bigInt({ min: -DAY, max: DAY }),
        (c, what, a, b, elapsed) => {
          const prev: TpmClock = { clock: a, ...c };
          const next: TpmClock =
            what === 'reset'
              ? { clock: b, resetCount: c.resetCount + 1, restartCount: 0 }
              : { clock: b, resetCount: c.resetCount, restartCount: c.restartCount + 1 };
          assert.equal(tpmAnswerCredit(prev, 0n, next, elapsed, 20_000n), 'rebooted');
        },
      ),
      { numRuns: 1000 },
    );
  });

  test('the figures at the defaults: 15 minutes between challenges, W = 20 one-second blocks', () => {
    const c = { resetCount: 1, restartCount: 0 };
    const at = (clock: bigint): TpmClock => ({ clock, ...c });
    // 900 s of block time: 720 s of clock required, less the 20 s slack.
    assert.equal(tpmClockRequiredMs(900_000n, 20_000n), 700_000n);
    assert.equal(tpmAnswerCredit(at(0n), 0n, at(700_000n), 900_000n, 20_000n), 'credited');
    assert.equal(tpmAnswerCredit(at(0n), 0n, at(699_999n), 900_000n, 20_000n), 'asleep');
    // Within the slack anything is credited; an older challenge answered after a newer one too.
    assert.equal(tpmAnswerCredit(at(0n), 0n, at(0n), 25_000n, 20_000n), 'credited');
    assert.equal(tpmAnswerCredit(at(0n), 0n, at(0n), 25_001n, 20_000n), 'asleep');
    assert.equal(tpmAnswerCredit(at(5n), 10_000n, at(5n), 0n, 0n), 'credited');
    // Rounding up: 4/5 of 1 ms is 1 ms.
    assert.equal(tpmClockRequiredMs(1n, 0n), 1n);
    assert.equal(tpmClockRequiredMs(-1n, 0n), 0n);
    assert.equal(tpmClockRequiredMs(-11n, 0n), -8n);
  });
});

describe('TPM clock credit of answers signed together (tpmBatchAnswerCredit, pure)', () => {
  const max = (a: bigint, b: bigint) => (a > b ? a : b);

  test('property: an always-on chip that signs two answers together, late in their windows, at any block pace, is credited both', () => {
    // The reference answer signed d0 ≤ slack after its challenge (block time 0); challenges A at
    // T1 and B at T2 (T2 − T1 up to W blocks of any length: slow blocks); both signed together at
    // T2 + late. The TPM runs at 85% to 115% of real time.
    fc.assert(
      fc.property(
        fc.bigInt({ min: 20n, max: 600_000n }),
        fc.bigInt({ min: 0n, max: 1000n }),
        ms(DAY),
        ms(10n * 600_000n),
        ms(600_000n),
        fc.integer({ min: 850, max: 1150 }),
        counts,
        (slack, d0Share, t1, gap, late, ratePerMille, c) => {
          const d0 = (slack * d0Share) / 1000n;
          const t2 = t1 + gap;
          const signed = max(t2, d0) + late;
          const start: TpmClock = { clock: 10_000n, ...c };
          const both: TpmClock = { clock: 10_000n + ((signed - d0) * BigInt(ratePerMille)) / 1000n, ...c };
          assert.equal(tpmAnswerCredit(start, 0n, both, t1, slack), 'credited', 'A');
          assert.equal(tpmBatchAnswerCredit(start, 0n, both, max(0n, t1), both, t2, slack), 'credited', 'B');
        },
      ),
      { numRuns: 3000 },
    );
  });

  test('property: it credits nothing the order of the answers did not already allow (a sleeper gains nothing)', () => {
    // Whatever the clocks (A signed at or before B, same counts or not), the outcome of A then B
    // under the batch measure is matched by the single-answer rule alone: for the same quotes in
    // the same order, or for A signed again with B (its window is open: they share a heartbeat)
    // and sent after it, where A, older than the reference's challenge, is always credited.
    fc.assert(
      fc.property(
        ms(1n << 40n),
        ms(DAY),
        ms(DAY),
        ms(DAY),
        ms(DAY),
        ms(DAY),
        ms(600_000n),
        counts,
        fc.boolean(),
        (c0, t0, t1, t2, dA, dB, slack, c, restart) => {
          // A's own credit is the single-answer rule's in both (measured against `start`).
          const start: TpmClock = { clock: c0, ...c };
          const a: TpmClock = { clock: c0 + dA, ...c };
          const b: TpmClock = {
            clock: c0 + dA + dB,
            resetCount: c.resetCount,
            restartCount: c.restartCount + (restart ? 1 : 0),
          };
          const newB = tpmBatchAnswerCredit(start, t0, a, max(t0, t1), b, t2, slack);
          const oldB = tpmAnswerCredit(a, max(t0, t1), b, t2, slack);
          const firstB = tpmAnswerCredit(start, t0, b, t2, slack);
          const thenA = tpmAnswerCredit(b, max(t0, t2), b, t1, slack);
          if (newB === 'credited' && oldB !== 'credited') {
            assert.equal(firstB, 'credited', 'B sent first is credited the same');
            assert.equal(thenA, 'credited', 'and A after it too');
          } else {
            assert.equal(newB, oldB, 'otherwise the single-answer rule itself');
          }
        },
      ),
      { numRuns: 3000 },
    );
  });

  test('property: for up to three answers in a heartbeat, in any order, it credits no more than the single-answer rule allows for some order of quotes from the same signing moments', () => {
    // What a chip could have sent under the single-answer rule alone, from the same wake-ups: each
    // challenge answered by a quote signed at its own moment or a later one of the heartbeat (the
    // challenge is open until the heartbeat lands, and the chip was up then: it signed), in any
    // order whose clocks do not go back. The batch measure never credits more answers than the
    // best of these: what a chip woken only when challenged gets from it, it could already get.
    const clock = (c: bigint): TpmClock => ({ clock: c, resetCount: 1, restartCount: 1 });
    type Ans = { t: bigint; c: bigint };
    const credited = (answers: readonly Ans[], t0: bigint, slack: bigint, batch: boolean): number => {
      let ref = { c: 0n, t: t0 };
      let n = 0;
      for (const a of answers) {
        if (a.c < ref.c) return -1; // refused: the clock went back
        const r = batch
          ? tpmBatchAnswerCredit(clock(0n), t0, clock(ref.c), ref.t, clock(a.c), a.t, slack)
          : tpmAnswerCredit(clock(ref.c), ref.t, clock(a.c), a.t, slack);
        if (r === 'credited') n++;
        ref = { c: a.c, t: max(a.t, ref.t) };
      }
      return n;
    };
    const orders = <T>(xs: readonly T[]): T[][] =>
      xs.length <= 1
        ? [[...xs]]
        : xs.flatMap((x, i) => orders(xs.filter((_, j) => j !== i)).map((o) => [x, ...o]));
    fc.assert(
      fc.property(
        ms(20n),
        ms(10n),
        fc.array(fc.record({ dt: fc.bigInt({ min: 1n, max: 40n }), dc: ms(25n) }), {
          minLength: 2,
          maxLength: 3,
        }),
        (t0, slack, draws) => {
          let c = 0n;
          const sent: Ans[] = draws.map((d) => ({ t: t0 + d.dt, c: (c += d.dc) }));
          const moments = sent.map((a) => a.c);
          let best = -1;
          const choose = (i: number, acc: Ans[]): void => {
            if (i === sent.length) {
              for (const o of orders(acc)) best = Math.max(best, credited(o, t0, slack, false));
              return;
            }
            for (const m of moments) if (m >= sent[i]!.c) choose(i + 1, [...acc, { t: sent[i]!.t, c: m }]);
          };
          choose(0, []);
          assert.ok(credited(sent, t0, slack, true) <= best);
        },
      ),
      { numRuns: 500 },
    );
  });

  test('property: with a suspend between wake-ups (restartCount moving) and up to four answers, every answer the batch credits is credited together in one order the single-answer rule allows', () => {
    // The test above compares counts only, with counts that never move. Here each signing moment
    // may follow a resume (restartCount + 1), and the claim is on the answers themselves: some
    // re-signing (each challenge at its own moment or a later one of the heartbeat) and order, under
    // the single-answer rule alone, credits every answer the batch measure credits. A batch measure
    // that let a later answer reach back to the reference across a resume fails it.
    type Ans = { id: number; t: bigint; c: bigint; r: number };
    const clock = (c: bigint, r: number): TpmClock => ({ clock: c, resetCount: 1, restartCount: r });
    const credited = (
      answers: readonly Ans[],
      t0: bigint,
      slack: bigint,
      batch: boolean,
    ): Set<number> | null => {
      let ref = { c: 0n, t: t0, r: 0 };
      const got = new Set<number>();
      for (const a of answers) {
        if (a.r < ref.r || (a.r === ref.r && a.c < ref.c)) return null; // refused: the clock went back
        const r = batch
          ? tpmBatchAnswerCredit(clock(0n, 0), t0, clock(ref.c, ref.r), ref.t, clock(a.c, a.r), a.t, slack)
          : tpmAnswerCredit(clock(ref.c, ref.r), ref.t, clock(a.c, a.r), a.t, slack);
        if (r === 'credited') got.add(a.id);
        ref = { c: a.c, t: max(a.t, ref.t), r: a.r };
      }
      return got;
    };
    const orders = <T>(xs: readonly T[]): T[][] =>
      xs.length <= 1
        ? [[...xs]]
        : xs.flatMap((x, i) => orders(xs.filter((_, j) => j !== i)).map((o) => [x, ...o]));
    fc.assert(
      fc.property(
        ms(20n),
        ms(10n),
        fc.array(fc.record({ dt: fc.bigInt({ min: 1n, max: 40n }), dc: ms(25n), resumed: fc.boolean() }), {
          minLength: 2,
          maxLength: 4,
        }),
        (t0, slack, draws) => {
          let c = 0n;
          let r = 0;
          const sent: Ans[] = draws.map((d, id) => ({
            id,
            t: t0 + d.dt,
            c: (c += d.dc),
            r: (r += d.resumed ? 1 : 0),
          }));
          const batch = credited(sent, t0, slack, true)!;
          let matched = false;
          const choose = (i: number, acc: Ans[]): void => {
            if (matched) return;
            if (i === sent.length) {
              for (const o of orders(acc)) {
                const got = credited(o, t0, slack, false);
                if (got && [...batch].every((id) => got.has(id))) matched = true;
              }
              return;
            }
            for (let j = i; j < sent.length; j++)
              choose(i + 1, [...acc, { ...sent[i]!, c: sent[j]!.c, r: sent[j]!.r }]);
          };
          choose(0, []);
          assert.ok(
            matched,
            `credited ${[...batch]} of ${JSON.stringify(sent, (_, v) => (typeof v === 'bigint' ? `${v}` : v))}`,
          );
        },
      ),
      { numRuns: 300 },
    );
  });
});
