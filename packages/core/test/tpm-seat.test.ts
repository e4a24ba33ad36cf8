/**
 * An answer accepted without credit (tpm2, docs/poci.md "Asleep between challenges") is a miss for
 * the seat windows and the remembered seat share (poci/seat-share.ts) and for the misses a
 * deregistration records, exactly as no answer would be. The chips are TPMs made from fixtures
 * (tpm-chip.ts), always on (their clock runs with block time), whose TPM restarts before some of
 * their answers: such an answer is accepted but not credited (`rebooted`), and the ones after it,
 * measured from it, are credited again.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { challengeLookup, chipClass, getChip, getPociParams, type HeartbeatAnswer } from '../src/index.js';
import { issueCa } from './attestation/helpers.js';
import { assertSeatShareAsModel } from './consensus/seat-share-model.js';
import { challengesOfChip, genesis, miner, POCI, TestChain } from './harness.js';
import { type Clock, FixtureTpm, withTpmVendor } from './tpm-chip.js';

const ROOT = issueCa('TPM Vendor Root (seat shares)');
const TPMS = [0, 1, 2].map((i) => new FixtureTpm(ROOT, Uint8Array.of(0x70 + i)));

describe('uncredited answers in the seat shares and the recorded misses', () => {
  test('property: with answers at any point of their window, or never, some after a TPM restart, the share at every boundary is that of the newest window that counted a challenge, uncredited answers counted as misses; a deregistration then records every challenge not credited as missed', () => {
    fc.assert(
      fc.property(
        // Per chip, the delay of the answer to the challenge at height h: delays[h mod length]
        // blocks (1 … W), 0 for never; and whether the TPM restarted just before signing it.
        fc.array(fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 1, maxLength: 9 }), {
          minLength: 3,
          maxLength: 3,
        }),
        fc.array(fc.array(fc.boolean(), { minLength: 1, maxLength: 7 }), { minLength: 3, maxLength: 3 }),
        fc.boolean(),
        (delays, restarts, sparse) => {
          const chain = new TestChain(
            withTpmVendor(genesis(sparse ? { ...POCI, slotsPerEpoch: 1 } : POCI), ROOT),
          );
          const p = getPociParams(chain.state);
          const B = p.epochBlocks;
          chain.blocksUntil(1n);
          const t0 = chain.time;
          // Each TPM runs all along: its clock reads the block time of the head it signs at.
          const clocks: Clock[] = TPMS.map(() => ({ clock: 7_000_000n, resetCount: 2, restartCount: 5 }));
          const now = (i: number): Clock => ({ ...clocks[i]!, clock: 7_000_000n + (chain.time - t0) });
          const registered = chain.block([
            chain.tx(
              miner,
              TPMS.map((t, i) => t.register(chain, miner.address, now(i))),
            ),
          ]);
          const ids = registered.flatMap((e) => (e.type === 'chipRegistered' ? [e.chipId] : []));
          assert.equal(ids.length, TPMS.length);
          TPMS.forEach((t, i) => {
            t.chipId = ids[i]!;
          });
          const credited = TPMS.map(() => new Set<bigint>());
          const delay = (i: number, h: bigint) => BigInt(delays[i]![Number(h % BigInt(delays[i]!.length))]!);
          const restarted = (i: number, h: bigint) => restarts[i]![Number(h % BigInt(restarts[i]!.length))]!;
          let uncredited = 0;
          let checked = 0;
          while (chain.height < 16n * B) {
            const next = chain.height + 1n;
            const epoch = (chain.height - 1n) / B;
            const due: HeartbeatAnswer[] = [];
            TPMS.forEach((t, i) => {
              const chip = getChip(chain.state, ids[i]!)!;
              for (const e of [epoch - 1n, epoch]) {
                if (e < chip.firstEpoch) continue;
                challengesOfChip(chain, ids[i]!, e).forEach((h, slot) => {
                  const d = delay(i, h);
                  if (d === 0n || h + d !== next) return;
                  if (restarted(i, h)) clocks[i]!.restartCount++;
                  else credited[i]!.add(h);
                  due.push(t.answer(chain, e, slot, now(i)));
                });
              }
            });
            const events = chain.block(chain.heartbeats(due));
            uncredited += events.filter((x) => x.type === 'answerUncredited').length;
            if (chain.height % B !== 0n) continue;
            // The last block of epoch b − 1 (height b·B): the set of epoch b is computed on this state.
            const b = chain.height / B;
            const lookup = challengeLookup(chain.state);
            TPMS.forEach((_, i) => {
              assertSeatShareAsModel(chain.state, lookup, ids[i]!, b, p, credited[i]!, i);
              checked++;
            });
          }
          assert.ok(checked > 0);
          // Every answer after a restart, and only those, went uncredited.
          const restartedAnswers = chain.events.filter((x) => x.type === 'chipRebooted').length;
          assert.equal(uncredited, restartedAnswers);
          // The deregistration records the misses not yet recorded: every challenge the record drew
          // and that was not credited, those answered without credit included.
          const last = chain.height;
          chain.block([
            chain.tx(
              miner,
              ids.map((chipId) => ({ type: 'deregisterChip' as const, chipId })),
            ),
          ]);
          TPMS.forEach((_, i) => {
            const chip = getChip(chain.state, ids[i]!)!;
            const drawn = [...Array(Number(last / B) + 1).keys()]
              .map(BigInt)
              .filter((e) => e >= chip.firstEpoch)
              .flatMap((e) => challengeLookup(chain.state)(e, chipClass(chip.chipId, p)))
              .filter((s) => s <= last);
            assert.equal(chip.slotsAnswered, BigInt(credited[i]!.size), `chip ${i}: credited`);
            assert.equal(chip.slotsMissed, BigInt(drawn.length - credited[i]!.size), `chip ${i}: missed`);
          });
        },
      ),
      {
        numRuns: 20,
        // An uncredited answer moves the chip's masks on as a credited one does, and the windows
        // they no longer hold must be remembered first (their uncredited answers as misses), or a
        // boundary whose window drew none of the chip's class reads an older share: none at all
        // (chip 0 restarted before every answer), or a better one (every other answer: 2/2 where
        // the newest measured window was 2/4).
        examples: [
          [[[1], [0], [0]], [[true], [false], [false]], true],
          [[[1], [0], [0]], [[true, false], [false], [false]], true],
        ],
      },
    );
  });
});
