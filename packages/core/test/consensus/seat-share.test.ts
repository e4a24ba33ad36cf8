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
  challengeLookup,
  chipSeatShare,
  devSoftChipId,
  epochStart,
  getChip,
  getPociParams,
  MemoryState,
  type PociParams,
  rememberedSeatShare,
  rememberSeatShare,
  SEAT_LOOKBACK_WINDOWS,
  StateOverlay,
  seatShareKey,
  windowShare,
} from '../../src/index.js';
import { answer, genesis, key, miner, POCI, registerAction, slotsOf, TestChain } from '../harness.js';
import { assertSeatShareAsModel } from './seat-share-model.js';

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

  test('a window that reaches into an epoch the masks no longer hold is read from the remembered share, not from the masks (as missed)', () => {
    const p: PociParams = {
      epochBlocks: 20n,
      answerWindowBlocks: 5n,
      slotsPerEpoch: 1,
      graceSlotsPerEpoch: 0,
      offlineAfterMisses: 3,
      registrationMaxAgeBlocks: 10n,
      devSoftEnabled: true,
    };
    // Epoch e covers 20e+1 … 20e+20. Window 3 holds 40 (epoch 1's tail) and 42 (epoch 2), both
    // answered; window 4 none; 76 (epoch 3, answered at 77) counts in window 5. The chip's masks
    // are on epochs 3 and 2: window 3 reaches into epoch 1, which they no longer hold, so its
    // share was remembered (2 of 2) when they moved on.
    const lists = new Map<bigint, bigint[]>([
      [1n, [40n]],
      [2n, [42n]],
      [3n, [76n]],
    ]);
    const lookup = (e: bigint) => lists.get(e) ?? [];
    const chip = chipAt(1n, 5n, 3n, 0b1, 0b1);
    const state = new StateOverlay(new MemoryState());
    state.set(seatShareKey(chip.chipId), Uint8Array.of(2, 2));
    assert.deepEqual(windowShare(chip, 4n, p, lookup, 0n), { credited: 0, counted: 0 });
    assert.deepEqual(chipSeatShare(state, chip, 4n, p, lookup, 0n), { credited: 2, counted: 2 });
  });

  test('a deregistration forgets the remembered share, and so does a registration again: it measured the old record', () => {
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
    // A deregistered chip lends no seat and answers nothing: its record would only be state kept
    // for nothing until a registration again (if ever).
    assert.equal(rememberedSeatShare(chain.state, chipId), null, 'forgotten at the deregistration');
    assert.equal(chain.state.get(seatShareKey(chipId)), undefined);
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

describe('seat shares under any answer timing', () => {
  test('property: with each challenge answered at any point of its window, or never, the share at every boundary is that of the newest window that counted a challenge, read from the chip’s whole history', () => {
    // The chips' answers reach the chain up to W blocks after their challenge, so an answer of an
    // epoch's last W blocks may land after one of the next epoch has moved the masks on (the
    // remembered share must be taken before that, and still be exact); the boundary reads what
    // the masks still hold, then the remembered share. The model knows every answered height.
    const chips = [0, 1, 2].map((i) => key(`timing-chip-${i}`));
    const ids = chips.map((c) => devSoftChipId(c.publicKey));
    fc.assert(
      fc.property(
        // Per chip, the delay of the answer to the challenge at height h: delays[h mod length]
        // blocks (1 … W), 0 for never.
        fc.array(fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 1, maxLength: 9 }), {
          minLength: 3,
          maxLength: 3,
        }),
        fc.boolean(),
        (delays, sparse) => {
          const chain = new TestChain(genesis(sparse ? { ...POCI, slotsPerEpoch: 1 } : POCI));
          const p = getPociParams(chain.state);
          const B = p.epochBlocks;
          chain.block([
            chain.tx(
              miner,
              chips.map((c) => registerAction(chain, c, miner.address, chain.height)),
            ),
          ]);
          const answered = chips.map(() => new Set<bigint>());
          const delay = (i: number, h: bigint) => BigInt(delays[i]![Number(h % BigInt(delays[i]!.length))]!);
          let checked = 0;
          while (chain.height < 16n * B) {
            const next = chain.height + 1n;
            const epoch = (chain.height - 1n) / B;
            const due: ReturnType<typeof answer>[] = [];
            chips.forEach((c, i) => {
              const chip = getChip(chain.state, ids[i]!)!;
              for (const e of [epoch - 1n, epoch]) {
                if (e < chip.firstEpoch) continue;
                slotsOf(chain, c, e).forEach((h, slot) => {
                  const d = delay(i, h);
                  if (d > 0n && h + d === next) {
                    due.push(answer(chain, c, e, slot));
                    answered[i]!.add(h);
                  }
                });
              }
            });
            chain.block(chain.heartbeats(due));
            if (chain.height % B !== 0n) continue;
            // The last block of epoch b − 1 (height b·B): the set of epoch b is computed on this state.
            const b = chain.height / B;
            const lookup = challengeLookup(chain.state);
            chips.forEach((_, i) => {
              assertSeatShareAsModel(chain.state, lookup, ids[i]!, b, p, answered[i]!, i);
              checked++;
            });
          }
          assert.ok(checked > 0);
        },
      ),
      { numRuns: 12 },
    );
  });
});
