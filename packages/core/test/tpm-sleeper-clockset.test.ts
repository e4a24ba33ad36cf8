/**
 * A tpm2 sleeper whose owner moves the TPM clock forward (TPM2_ClockSet) at every wake-up
 * (docs/poci.md, "Asleep between challenges", "TPM2_ClockSet forward").
 *
 * The attacker: a machine suspended (or powered off) between challenges, awake a small share of the
 * blocks, that answers every challenge it can see while up and sets the TPM clock as far forward
 * as it likes before signing, so that no answer ever looks `asleep`. Every TPM2_Startup after a
 * suspend or power-off moves restartCount or resetCount, which ClockSet cannot touch, so the first
 * answer accepted in each wake-up is `rebooted` whatever the clock says: only the answers after it
 * in the same wake-up (challenges drawn while it was up, or within W blocks before) can be
 * credited, which is what the same uptime earns without ClockSet. Checked with the answers sent
 * together, as separate heartbeats of one transaction, or one block at a time (the cross-heartbeat
 * rule, "Answers sent apart", measures from the reference before the previous answer, whose counts
 * are the previous wake-up's).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { epochOf, getChip, getPociParams, type HeartbeatAnswer, type TxEvent } from '../src/index.js';
import { issueCa } from './attestation/helpers.js';
import { challengesOfChip, genesis, miner, POCI, TestChain } from './harness.js';
import { type Clock, FixtureTpm, withTpmVendor } from './tpm-chip.js';

const ROOT = issueCa('TPM Vendor Root (clockset sleeper)');
const W = POCI.answerWindowBlocks;

type Send = 'together' | 'actions' | 'blocks';

interface Wake {
  /** Blocks asleep before this wake-up. */
  asleep: number;
  /** Blocks up. */
  up: number;
  /** How far the owner moves the clock forward as it wakes (ms). */
  clockSet: bigint;
  /** A power-off (resetCount) rather than a suspend (restartCount). */
  powerOff: boolean;
}

function run(wakes: readonly Wake[], send: Send) {
  const chain = new TestChain(withTpmVendor(genesis(POCI), ROOT));
  chain.blocksUntil(2n);
  const tpm = new FixtureTpm(ROOT, Uint8Array.of(0x5c));
  const c: Clock = { clock: 5_000_000n, resetCount: 3, restartCount: 0 };
  const registered = chain.block([chain.tx(miner, [tpm.register(chain, miner.address, c)])]);
  const chipId = registered.flatMap((e) => (e.type === 'chipRegistered' ? [e.chipId] : []))[0]!;
  tpm.chipId = chipId;
  const p = getPociParams(chain.state);
  // Challenged from the epoch after registration.
  chain.blocksUntil(p.epochBlocks * (epochOf(chain.height, p) + 1n));
  const signed = new Set<bigint>();
  /** Per wake-up, the slot heights of the answers it sent, in the order they were sent. */
  const sentBy: bigint[][] = [];
  const events: TxEvent[] = [];
  for (const wake of wakes) {
    chain.blocksUntil(chain.height + BigInt(wake.asleep));
    // TPM2_Startup after the sleep: a count moves; ClockSet then moves the clock forward at will.
    if (wake.powerOff) {
      c.resetCount += 1;
      c.restartCount = 0;
    } else c.restartCount += 1;
    c.clock += wake.clockSet;
    const mine: bigint[] = [];
    sentBy.push(mine);
    let at = chain.time;
    for (let i = 0; i < wake.up; i++) {
      c.clock += chain.time - at; // running while up
      at = chain.time;
      const head = chain.height;
      const e = epochOf(head + 1n, p);
      const due: HeartbeatAnswer[] = [];
      for (const epoch of [e - 1n, e]) {
        if (epoch < getChip(chain.state, chipId)!.firstEpoch) continue;
        challengesOfChip(chain, chipId, epoch).forEach((h, slot) => {
          if (signed.has(h) || h > head || head + 1n > h + W) return;
          signed.add(h);
          mine.push(h);
          due.push(tpm.answer(chain, epoch, slot, { ...c }));
        });
      }
      if (due.length === 0) {
        chain.blocksUntil(chain.height + 1n);
        continue;
      }
      if (send === 'blocks') {
        for (const a of due) events.push(...chain.block(chain.heartbeats([a])));
      } else events.push(...chain.block(chain.heartbeats(due, 0n, send === 'actions')));
    }
  }
  const credited = new Set(events.flatMap((x) => (x.type === 'slotAnswered' ? [x.slotHeight] : [])));
  const rebooted = new Set(
    events.flatMap((x) => (x.type === 'answerUncredited' && x.reason === 'rebooted' ? [x.slotHeight] : [])),
  );
  return { sentBy, credited, rebooted };
}

const wake = fc.record({
  // Short sleeps as often as long ones: a wake-up whose first answer's window overlaps the previous
  // wake-up's last answer is the one the prior reference ("Answers sent apart") reaches across.
  asleep: fc.oneof(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 5, max: 40 })),
  up: fc.integer({ min: 1, max: 8 }),
  clockSet: fc.bigInt({ min: 0n, max: 10n ** 10n }),
  powerOff: fc.boolean(),
});

describe('tpm2 sleeper that moves its TPM clock forward (TPM2_ClockSet) at every wake-up', () => {
  test('property: the first answer of every wake-up is uncredited (rebooted), and only answers after it in the same wake-up can be credited', () => {
    // The property must not hold for want of answers: over the runs, some are sent and credited.
    let sentTotal = 0;
    let creditedTotal = 0;
    fc.assert(
      fc.property(
        fc.array(wake, { minLength: 1, maxLength: 6 }),
        fc.constantFrom<Send>('together', 'actions', 'blocks'),
        (wakes, send) => {
          const { sentBy, credited, rebooted } = run(wakes, send);
          let sent = 0;
          for (const mine of sentBy) {
            if (mine.length === 0) continue;
            sent += mine.length;
            assert.ok(
              rebooted.has(mine[0]!),
              `the first answer of a wake-up (${mine[0]}) was not refused credit`,
            );
            assert.ok(!credited.has(mine[0]!));
          }
          const wakesAnswering = sentBy.filter((m) => m.length > 0).length;
          sentTotal += sent;
          creditedTotal += credited.size;
          // Credit ≤ what the same wake-ups earn without ClockSet: at most all but one answer each.
          assert.ok(credited.size <= sent - wakesAnswering, `${credited.size} credited of ${sent} sent`);
        },
      ),
      { numRuns: 12, seed: 7 },
    );
    assert.ok(
      sentTotal > 0 && creditedTotal > 0,
      `precondition: ${sentTotal} sent, ${creditedTotal} credited`,
    );
  });

  test("a wake-up one block after the last: its first answer's window overlaps the previous wake-up's last answer, and it is still rebooted however far the clock was set", () => {
    // The prior reference then belongs to the previous wake-up: measured from it, a count left
    // unchecked would credit the 10^10 ms ClockSet (a mutation that measured it on any uncredited
    // answer, counts ignored, went unnoticed by the property above at 12 runs).
    const wakes: Wake[] = [
      { asleep: 6, up: 7, clockSet: 0n, powerOff: false },
      { asleep: 1, up: 1, clockSet: 10n ** 10n, powerOff: false },
      { asleep: 1, up: 1, clockSet: 10n ** 10n, powerOff: true },
    ];
    for (const send of ['together', 'actions', 'blocks'] as const) {
      const { sentBy, credited, rebooted } = run(wakes, send);
      let overlapping = 0;
      for (let i = 1; i < sentBy.length; i++) {
        const first = sentBy[i]![0];
        const before = sentBy.slice(0, i).flat().at(-1);
        if (first === undefined || before === undefined) continue;
        if ((first > before ? first - before : before - first) < W) overlapping++;
        assert.ok(
          rebooted.has(first),
          `${send}: the first answer of wake-up ${i} (${first}) was not rebooted`,
        );
        assert.ok(!credited.has(first));
      }
      assert.ok(
        overlapping > 0,
        `precondition (${send}): a wake-up's first answer overlaps the previous answer`,
      );
    }
  });

  test('a wake-up long enough for two challenges: the second is credited, the first is not, however far the clock was set', () => {
    // 60 blocks up (challenges every 5 blocks on average in this chain), after a sleep and a 10^9 ms ClockSet.
    const { sentBy, credited, rebooted } = run(
      [{ asleep: 30, up: 60, clockSet: 10n ** 9n, powerOff: false }],
      'together',
    );
    const mine = sentBy[0]!;
    assert.ok(mine.length >= 2, `precondition: ${mine.length} answers`);
    assert.ok(rebooted.has(mine[0]!));
    assert.equal(credited.size, mine.length - 1);
  });
});
