/**
 * The seat windows and the remembered seat share (poci/seat-share.ts, docs/consensus.md "Weight").
 * The set's weights are checked against an independent model in epoch-validators.test.ts; these
 * tests pin down the window rule itself (every challenge counts at exactly one boundary) and the
 * bounds of the remembered share.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  type Chip,
  chipSeatShare,
  devSoftChipId,
  epochStart,
  getChip,
  MemoryState,
  type PociParams,
  rememberedSeatShare,
  rememberSeatShare,
  SEAT_LOOKBACK_WINDOWS,
  StateOverlay,
  seatShareKey,
  windowShare,
} from '../../src/index.js';
import { answer, key, miner, registerAction, slotsOf, TestChain } from '../harness.js';

/** A chip record as registration writes it, with the fields the windows read. */
function chipAt(firstEpoch: bigint, registeredAt: bigint, epoch = 0n, answered = 0, prevAnswered = 0): Chip {
  return { chipId: new Uint8Array(32), firstEpoch, registeredAt, epoch, answered, prevAnswered } as Chip;
}

describe('seat windows', () => {
  test('property: the windows partition the challenges: each counts at exactly one boundary, the first after its answer window closed', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 4, max: 40 }).chain((B) =>
          fc.record({
            B: fc.constant(B),
            W: fc.integer({ min: 1, max: B - 2 }),
            firstEpoch: fc.integer({ min: 1, max: 3 }),
            // Offsets in their epoch of the class's challenges, per epoch (epochs 0 … 7).
            offsets: fc.array(fc.uniqueArray(fc.integer({ min: 0, max: B - 1 }), { maxLength: 8 }), {
              minLength: 8,
              maxLength: 8,
            }),
            registeredOffset: fc.integer({ min: 0, max: B - 1 }),
          }),
        ),
        ({ B, W, firstEpoch, offsets, registeredOffset }) => {
          const p: PociParams = {
            epochBlocks: BigInt(B),
            answerWindowBlocks: BigInt(W),
            slotsPerEpoch: 1,
            graceSlotsPerEpoch: 0,
            offlineAfterMisses: 3,
            registrationMaxAgeBlocks: 10n,
            devSoftEnabled: true,
          };
          const lists = offsets.map((o, e) =>
            o.map((x) => epochStart(BigInt(e), p) + BigInt(x)).sort((a, b) => (a < b ? -1 : 1)),
          );
          const lookup = (e: bigint) => (e >= 0n && e < 8n ? lists[Number(e)]! : []);
          const f = BigInt(firstEpoch);
          const registeredAt = epochStart(f - 1n, p) + BigInt(registeredOffset);
          const chip = chipAt(f, registeredAt);
          const start = (e: bigint) => epochStart(e, p);
          let total = 0;
          for (let b = f + 1n; b <= 10n; b++) {
            const { counted } = windowShare(chip, b, p, lookup, 0n);
            // The model: the chip's challenges (epochs from its first) whose answer window closed
            // at or after the boundary before b and before b's.
            const expected = [b - 2n, b - 1n]
              .filter((e) => e >= f)
              .flatMap(lookup)
              .filter(
                (s) => s + p.answerWindowBlocks >= start(b - 1n) && s + p.answerWindowBlocks < start(b),
              );
            assert.equal(counted, expected.length, `window ${b}`);
            total += counted;
          }
          // Every challenge of epochs f … 7 counts once (window 9 holds the last W blocks of epoch 7).
          const all = [...Array(8).keys()].filter((e) => BigInt(e) >= f).flatMap((e) => lookup(BigInt(e)));
          assert.equal(total, all.length);
        },
      ),
      { numRuns: 200 },
    );
  });

  test('a search goes back at most SEAT_LOOKBACK_WINDOWS windows: beyond them the chip counts as never measured', () => {
    const p: PociParams = {
      epochBlocks: 20n,
      answerWindowBlocks: 5n,
      slotsPerEpoch: 4,
      graceSlotsPerEpoch: 1,
      offlineAfterMisses: 3,
      registrationMaxAgeBlocks: 10n,
      devSoftEnabled: true,
    };
    const none = () => [];
    // Answered in epoch 1, then its class drew nothing: windows 2 … b can be read from its masks.
    const chip = chipAt(1n, 5n, 1n, 1, 0);
    const state = new StateOverlay(new MemoryState());
    state.set(seatShareKey(chip.chipId), Uint8Array.of(2, 3));
    const within = 2n + SEAT_LOOKBACK_WINDOWS - 1n;
    assert.deepEqual(chipSeatShare(state, chip, within, p, none, 0n), { credited: 2, counted: 3 });
    assert.equal(chipSeatShare(state, chip, within + 1n, p, none, 0n), null);
    // An answer that moves the masks past more than that many windows forgets the remembered share.
    rememberSeatShare(state, chip, within, p, none, 0n);
    assert.deepEqual(rememberedSeatShare(state, chip.chipId), { credited: 2, counted: 3 });
    rememberSeatShare(state, chip, within + 1n, p, none, 0n);
    assert.equal(rememberedSeatShare(state, chip.chipId), null);
  });

  test('a registration again forgets the remembered share: it measured the old record', () => {
    const chain = new TestChain();
    const chip = key('forgotten-share-chip');
    const chipId = devSoftChipId(chip.publicKey);
    chain.block([chain.tx(miner, [registerAction(chain, chip, miner.address, chain.height)])]);
    // Answers every challenge until its masks have moved past a window that counted one.
    while (rememberedSeatShare(chain.state, chipId) === null) {
      assert.ok(chain.height < 200n, 'no share remembered');
      const epoch = (chain.height - 1n) / 20n;
      const due = [epoch - 1n, epoch].flatMap((e) =>
        e < 1n
          ? []
          : slotsOf(chain, chip, e).flatMap((h, slot) =>
              h === chain.height ? [answer(chain, chip, e, slot)] : [],
            ),
      );
      chain.block(chain.heartbeats(due));
    }
    const share = rememberedSeatShare(chain.state, chipId)!;
    assert.ok(share.counted > 0 && share.credited === share.counted, 'it answered them all');
    chain.block([chain.tx(miner, [{ type: 'deregisterChip', chipId }])]);
    for (;;) {
      const again = chain.tx(miner, [registerAction(chain, chip, miner.address, chain.height)]);
      if (chain.attempt(again) === null) {
        chain.block([again]);
        break;
      }
      chain.block();
    }
    assert.equal(getChip(chain.state, chipId)?.registeredAt, chain.height);
    assert.equal(rememberedSeatShare(chain.state, chipId), null);
  });
});
