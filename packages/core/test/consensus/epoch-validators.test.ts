import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  type Action,
  actionCodec,
  applyBond,
  applySetConsensusKey,
  BlockExecutor,
  CONSENSUS_PARAMS_KEY,
  type ConsensusParams,
  chipsOfOwner,
  compareBytes,
  compareValidatorRank,
  computeValidatorSet,
  consensusKeyOf,
  consensusParamsCodec,
  DEFAULT_CONSENSUS_PARAMS,
  decode,
  devSoftChipId,
  ed25519Sign,
  encode,
  genesisToJson,
  getAccount,
  getBond,
  getChip,
  getConsensusParams,
  getEpochRecord,
  getPociParams,
  getRecentHash,
  getValidatorKey,
  latestValidatorSetEpoch,
  noteValidatorBond,
  onlinePowerOf,
  ownerRatedPower,
  parseGenesis,
  putAccount,
  putChip,
  putEpochRecord,
  type RankedValidator,
  StateOverlay,
  type StateReader,
  sha256,
  type TxEnvelope,
  taggedHash,
  toHex,
  transferMessage,
  txEventCodec,
  utf8,
  type ValidatorSet,
  validatorCandidateCount,
  validatorCandidates,
  validatorSetAt,
  validatorSetForEpoch,
  validatorSetForHeight,
  validatorTieBreak,
} from '../../src/index.js';
import {
  answer,
  CHAIN,
  consensusKey,
  genesis,
  type Key,
  key,
  miner,
  other,
  POCI,
  registerAction,
  setConsensusKeyAction,
  slotsOf,
  TestChain,
} from '../harness.js';

const H100 = 989_000n;
const A100 = 312_000n;
/** 10,000 UNC: backs 10^7 units of power at the default 10^15 base units per unit (no cap here). */
const BOND = 10n ** 22n;
const G = genesis();

/** The tie-break of docs/consensus.md, written out: taggedHash('UNC/validator-tie', seed ‖ key). */
const tie = (seed: Uint8Array, publicKey: Uint8Array) => taggedHash('UNC/validator-tie', seed, publicKey);

function powers(set: ValidatorSet): Record<string, bigint> {
  return Object.fromEntries(set.validators.map((v) => [toHex(v.publicKey), v.power]));
}

function setConsensusParams(chain: TestChain, p: Partial<ConsensusParams>): void {
  chain.state.apply([
    { key: CONSENSUS_PARAMS_KEY, value: encode(consensusParamsCodec, { ...DEFAULT_CONSENSUS_PARAMS, ...p }) },
  ]);
}

function setMaxValidators(chain: TestChain, maxValidators: number): void {
  setConsensusParams(chain, { maxValidators });
}

/** Funds `keys` from the miner in one block. */
function fund(chain: TestChain, keys: Key[]): void {
  chain.block([
    chain.tx(
      miner,
      keys.map((k) => ({
        type: 'transfer' as const,
        to: k.address,
        amount: 10n ** 24n,
        memo: new Uint8Array(),
      })),
    ),
  ]);
}

/** One block in which `owner` registers `chips` (model per chip) and, if asked, bonds. */
function enlist(chain: TestChain, owner: Key, chips: [Key, string][], bond: boolean): void {
  const actions: Action[] = chips.map(([c, model]) =>
    registerAction(chain, c, owner.address, chain.height, model),
  );
  if (bond) actions.push(setConsensusKeyAction(owner), { type: 'bond', amount: BOND });
  chain.block([chain.tx(owner, actions)]);
}

/**
 * Chips registered in epoch 0 are first challenged in epoch 1, and a chip counts for its owner only
 * once it has answered: the first set they can be in is epoch 2's, computed by block 40. Runs the
 * chain to block 40 with `chips` answering every challenge.
 */
function proveThroughEpoch1(chain: TestChain, chips: Key[]): void {
  runAnswering(chain, chips, 40n, (c, e) => slotsOf(chain, c, e));
}

/** Produces blocks up to `until`, answering every open slot of `chips` in the block after it. */
function runAnswering(
  chain: TestChain,
  chips: Key[],
  until: bigint,
  slotsOf: (c: Key, e: bigint) => bigint[],
) {
  while (chain.height < until) chain.block(chain.heartbeats(dueAnswers(chain, chips, slotsOf)));
}

/** The answers of `chips` to the challenges of the head block: what the next block carries. */
function dueAnswers(chain: TestChain, chips: Key[], slotsOf: (c: Key, e: bigint) => bigint[]) {
  const due: ReturnType<typeof answer>[] = [];
  const epoch = (chain.height - 1n) / 20n;
  for (const c of chips) {
    for (const e of [epoch - 1n, epoch]) {
      if (e < 1n) continue;
      slotsOf(c, e).forEach((h, slot) => {
        if (h === chain.height) due.push(answer(chain, c, e, slot));
      });
    }
  }
  return due;
}

/**
 * Produces blocks up to `until`; in the block after each challenge of a chip in `chips` it answers
 * it if `answers(chip, height)` says so, and notes the answered height in `answered` (per chip name).
 */
function runSome(
  chain: TestChain,
  chips: Key[],
  until: bigint,
  answers: (c: Key, slotHeight: bigint) => boolean,
  answered: Map<Key, Set<bigint>>,
): void {
  while (chain.height < until) {
    const due: ReturnType<typeof answer>[] = [];
    const heights: [Key, bigint][] = [];
    const epoch = (chain.height - 1n) / 20n;
    for (const c of chips) {
      const chip = getChip(chain.state, devSoftChipId(c.publicKey));
      for (const e of [epoch - 1n, epoch]) {
        if (!chip || e < chip.firstEpoch) continue;
        slotsOf(chain, c, e).forEach((h, slot) => {
          if (h === chain.height && answers(c, h)) {
            due.push(answer(chain, c, e, slot));
            heights.push([c, h]);
          }
        });
      }
    }
    chain.block(chain.heartbeats(due));
    for (const [c, h] of heights) {
      if (!answered.has(c)) answered.set(c, new Set());
      answered.get(c)!.add(h);
    }
  }
}

/**
 * The model of a chip at the state after the head, from what the test answered (`answered`: the
 * challenge heights answered since the chip's current registration at `registeredAt`), read with
 * the challenges the chain drew (slotsOf), never with the code under test:
 * - online: answered at least once, and fewer than K of its challenges whose windows closed went
 *   unanswered since its newest answer (docs/poci.md, Liveness);
 * - seat: what it lends the set computed now, when the head is the last block of an epoch
 *   (docs/consensus.md): a challenge counts at the first boundary after its answer window closed,
 *   so the boundary at `next` = start(b) counts those with start(b−1) ≤ h + W < start(b) (window b,
 *   answered or not); the seat is power × credited ÷ counted over the newest window, b or an
 *   earlier one of the chip's current registration, that counted any (credited: its answers, or all
 *   of them under the rewards' grace), floored; nothing when no window counted any, or not online.
 */
function chipModel(
  chain: TestChain,
  c: Key,
  power: bigint,
  registeredAt: bigint,
  answered: ReadonlySet<bigint>,
): { online: bigint; seat: bigint; window: number } {
  const p = getPociParams(chain.state);
  const B = p.epochBlocks;
  const W = p.answerWindowBlocks;
  const next = chain.height + 1n;
  const closed = (h: bigint) => h + W < next;
  const ending = (chain.height - 1n) / B;
  const all: bigint[] = [];
  // First challenged in the epoch after the one of its registration (epoch e covers e·B+1 … (e+1)·B).
  const firstEpoch = (registeredAt - 1n) / B + 1n;
  for (let e = firstEpoch; e <= ending; e++) all.push(...slotsOf(chain, c, e));
  const newest = [...answered].reduce((m, h) => (h > m ? h : m), 0n);
  const misses = all.filter((h) => h > registeredAt && h > newest && closed(h) && !answered.has(h)).length;
  const start = (e: bigint) => e * B + 1n;
  const windowOf = (b: bigint) => all.filter((h) => h + W >= start(b - 1n) && h + W < start(b));
  const boundary = (next - 1n) / B;
  const window = windowOf(boundary).length;
  if (answered.size === 0 || misses >= p.offlineAfterMisses) return { online: 0n, seat: 0n, window };
  for (let b = boundary; b > firstEpoch; b--) {
    const counted = windowOf(b);
    if (counted.length === 0) continue;
    const hits = counted.filter((h) => answered.has(h)).length;
    // The grace of rewards: at least S answered and at most G missed is a restart, not downtime.
    const graced = hits >= p.slotsPerEpoch && counted.length - hits <= p.graceSlotsPerEpoch;
    const seat = graced ? power : (power * BigInt(hits)) / BigInt(counted.length);
    return { online: power, seat, window };
  }
  return { online: power, seat: 0n, window };
}

describe('epoch validator sets', () => {
  test('the genesis validators serve until a set is computed, and an empty computed set keeps them', () => {
    const chain = new TestChain(G);
    assert.deepEqual(powers(validatorSetAt(chain.state, G)), { [toHex(G.validators[0]!.publicKey)]: 1n });
    assert.equal(latestValidatorSetEpoch(chain.state), null);
    // Chips without a bond, and a bond without chips: neither makes a validator.
    enlist(chain, miner, [[key('chip-a'), 'sim-h100']], false);
    chain.block([chain.tx(other, [{ type: 'bond', amount: BOND }])]);
    chain.blocksUntil(20n);
    assert.equal(latestValidatorSetEpoch(chain.state), 1n, 'the last block of epoch 0 stores epoch 1');
    assert.deepEqual(powers(validatorSetAt(chain.state, G)), { [toHex(G.validators[0]!.publicKey)]: 1n });
    assert.deepEqual(
      powers(validatorSetForEpoch(chain.state, null, 0n)!),
      powers(validatorSetAt(chain.state, G)),
      'the genesis set is in the state',
    );
  });

  test('bonded owners of online chips become validators, weighted by power, from the next epoch on', () => {
    const chain = new TestChain(G);
    enlist(
      chain,
      miner,
      [
        [key('m1'), 'sim-h100'],
        [key('m2'), 'sim-h100'],
      ],
      true,
    );
    enlist(chain, other, [[key('o1'), 'sim-a100']], true);
    assert.equal(ownerRatedPower(chain.state, miner.address), 2n * H100);
    const chips = [key('m1'), key('m2'), key('o1')];
    chain.blocksUntil(20n);
    assert.equal(validatorSetAt(chain.state, G).size, 1, 'no chip has answered yet: the genesis set goes on');
    runAnswering(chain, chips, 39n, (c, e) => slotsOf(chain, c, e));
    assert.equal(validatorSetAt(chain.state, G).size, 1, 'still the genesis set inside epoch 1');
    runAnswering(chain, chips, 40n, (c, e) => slotsOf(chain, c, e));
    const set = validatorSetAt(chain.state, G);
    assert.deepEqual(powers(set), {
      [toHex(consensusKey(miner).publicKey)]: 2n * H100,
      [toHex(consensusKey(other).publicKey)]: A100,
    });
    assert.deepEqual(powers(validatorSetForHeight(chain.state, G, 41n)!), powers(set));
    assert.equal(validatorSetForHeight(chain.state, G, 61n), null, 'epoch 3 is not computed yet');
    // The set stays for the whole epoch, whatever happens in it.
    chain.block([chain.tx(other, [{ type: 'unbond', amount: BOND }])]);
    assert.deepEqual(powers(validatorSetAt(chain.state, G)), powers(set));
    assert.equal(validatorCandidates(chain.state).length, 1, 'fully unbonded: no longer a candidate');
    runAnswering(chain, [key('m1'), key('m2')], 60n, (c, e) => slotsOf(chain, c, e));
    assert.deepEqual(powers(validatorSetAt(chain.state, G)), {
      [toHex(consensusKey(miner).publicKey)]: 2n * H100,
    });
  });

  test('attack: a chip that has never answered a challenge lends its owner no voting weight', () => {
    // Registered and bonded at once: to the liveness rule the chip is online until it has missed K
    // challenges (about K / S of an epoch), answer or not. It must not make its owner a validator.
    const chain = new TestChain(G);
    const chip = key('never-answers');
    enlist(chain, miner, [[chip, 'sim-h100']], true);
    chain.blocksUntil(20n);
    assert.deepEqual(
      powers(validatorSetAt(chain.state, G)),
      { [toHex(G.validators[0]!.publicKey)]: 1n },
      'a registration alone proves nothing: the genesis set goes on',
    );
    // Once it answers, it counts from the next set on.
    proveThroughEpoch1(chain, [chip]);
    assert.deepEqual(powers(validatorSetAt(chain.state, G)), {
      [toHex(consensusKey(miner).publicKey)]: H100,
    });
    // A record as registration writes it (lastAnsweredAt 0, also after a re-registration) counts
    // nothing, however recent.
    const chipId = devSoftChipId(chip.publicKey);
    assert.equal(onlinePowerOf(chain.state, miner.address, chain.height), H100);
    const fresh = new StateOverlay(chain.state);
    putChip(fresh, {
      ...getChip(chain.state, chipId)!,
      lastAnsweredAt: 0n,
      lastAnsweredSlot: 0n,
      registeredAt: chain.height,
    });
    assert.equal(onlinePowerOf(fresh, miner.address, chain.height), 0n);
  });

  test('the top N by power make the cut; equal power is ranked by the boundary block’s tie-break', () => {
    const chain = new TestChain(G);
    setMaxValidators(chain, 2);
    const owners = [key('owner-1'), key('owner-2'), key('owner-3')];
    fund(chain, owners);
    enlist(chain, owners[0]!, [[key('c1'), 'sim-a100']], true);
    enlist(chain, owners[1]!, [[key('c2'), 'sim-a100']], true);
    enlist(chain, owners[2]!, [[key('c3'), 'sim-h100']], true);
    proveThroughEpoch1(chain, [key('c1'), key('c2'), key('c3')]);
    // The set of epoch 2 is computed by block 40 and breaks ties with that block's own beacon.
    const seed = chain.beaconOf(40n);
    const [low, high] = [owners[0]!, owners[1]!].sort((a, b) =>
      compareBytes(tie(seed, consensusKey(a).publicKey), tie(seed, consensusKey(b).publicKey)),
    );
    assert.deepEqual(powers(validatorSetAt(chain.state, G)), {
      [toHex(consensusKey(owners[2]!).publicKey)]: H100,
      [toHex(consensusKey(low!).publicKey)]: A100,
    });
    assert.ok(!validatorSetAt(chain.state, G).has(consensusKey(high!).publicKey));
  });

  test('attack: the winner of a tie for the last seat is unknown until the boundary block exists', () => {
    // Seat power is capped by chip power, so two owners of the same fully answering chip tie
    // exactly, whatever they bond. Ranked by key, a key ground to start with a zero byte (a few
    // hundred tries) took the last seat at every boundary. Ranked by a hash of the seed recorded
    // for the ending epoch (known a whole epoch ahead), a candidate could move its chips, before
    // the boundary, to a spare bonded account whose key wins that seed. The tie-break is drawn
    // from the beacon of the boundary block itself: the same state before that block gives either
    // winner, depending only on the beacon its proposer reveals with it.
    const honest = key('tie-honest');
    const grinder = key('tie-grinder');
    let ground = key('ground-0');
    for (
      let i = 1;
      ground.publicKey[0] !== 0 || compareBytes(ground.publicKey, consensusKey(honest).publicKey) >= 0;
      i++
    ) {
      ground = key(`ground-${i}`);
    }
    const chips = [key('tie-chip-h'), key('tie-chip-g')];
    const chain = new TestChain(G);
    setMaxValidators(chain, 1);
    fund(chain, [honest, grinder]);
    enlist(chain, honest, [[chips[0]!, 'sim-a100']], true);
    chain.block([
      chain.tx(grinder, [
        registerAction(chain, chips[1]!, grinder.address, chain.height, 'sim-a100'),
        setConsensusKeyAction(grinder, ground),
        { type: 'bond', amount: BOND },
      ]),
    ]);
    runAnswering(chain, chips, 39n, (c, e) => slotsOf(chain, c, e));
    // Block 40 (the last of epoch 1) computes the set of epoch 2, run 64 times on the same state,
    // each time as if its proposer's VRF had given another beacon.
    const due = chain.heartbeats(dueAnswers(chain, chips, (c, e) => slotsOf(chain, c, e)));
    const ctx = chain.executor().ctx;
    assert.equal(ctx.height, 40n);
    const boundary = (beacon: Uint8Array): StateReader => {
      const ex = new BlockExecutor(chain.state, { ...ctx, beacon });
      for (const t of due) ex.apply(t);
      return ex.finish().overlay;
    };
    const wins = new Map<string, number>();
    for (let i = 0; i < 64; i++) {
      const beacon = sha256(utf8(`tie-beacon-${i}`));
      const after = boundary(beacon);
      const stored = validatorSetForEpoch(after, G, 2n)!;
      assert.equal(stored.size, 1);
      assert.equal(stored.validators[0]!.power, A100);
      const winner = toHex(stored.validators[0]!.publicKey);
      // The same as the computation with that beacon as its seed, on the state after the block.
      assert.deepEqual(
        computeValidatorSet(after, 41n, beacon).map((v) => toHex(v.publicKey)),
        [winner],
      );
      // The seed recorded for the ending epoch (known since block 20) decides nothing.
      if (i < 4) {
        const record = getEpochRecord(after, 1n)!;
        const other = new StateOverlay(after);
        putEpochRecord(other, { ...record, seed: sha256(utf8(`other-seed-${i}`)) });
        assert.deepEqual(
          computeValidatorSet(other, 41n, beacon).map((v) => toHex(v.publicKey)),
          [winner],
        );
      }
      wins.set(winner, (wins.get(winner) ?? 0) + 1);
    }
    const groundWins = wins.get(toHex(ground.publicKey)) ?? 0;
    const honestWins = wins.get(toHex(consensusKey(honest).publicKey)) ?? 0;
    assert.equal(groundWins + honestWins, 64);
    assert.ok(honestWins >= 16 && groundWins >= 16, `ground key won ${groundWins} of 64 ties`);
  });

  test('a chip that goes offline lowers its owner’s weight in the next set', () => {
    const chain = new TestChain(G);
    const live = key('live-chip');
    const silent = key('silent-chip');
    enlist(
      chain,
      miner,
      [
        [live, 'sim-h100'],
        [silent, 'sim-h100'],
      ],
      true,
    );
    const slots = (c: Key, e: bigint) => slotsOf(chain, c, e);
    // Both answer in epoch 1, then the silent one goes quiet.
    runAnswering(chain, [live, silent], 40n, slots);
    assert.equal(validatorSetAt(chain.state, G).powerOf(consensusKey(miner).publicKey), 2n * H100);
    runAnswering(chain, [live], 80n, slots);
    assert.equal(
      validatorSetAt(chain.state, G).powerOf(consensusKey(miner).publicKey),
      H100,
      'the silent chip missed its K slots',
    );
  });

  test('attack: a chip online only in the last part of each epoch gets a seat in proportion to its answers', () => {
    // The K-miss rule reads the chip as online at every boundary (its newest challenges are
    // answered), so it held a full seat; rewards already paid it for its uptime alone. Its seat
    // must follow the same share: power × answered ÷ counted over the boundary's window.
    const chain = new TestChain(G);
    const partTime = key('part-time-chip');
    const fullTime = key('full-time-chip');
    enlist(chain, miner, [[partTime, 'sim-h100']], true);
    enlist(chain, other, [[fullTime, 'sim-h100']], true);
    const registeredAt = chain.height;
    const p = getPociParams(chain.state);
    // Up for the last half of each epoch (heights 11…20 of its 20), and answering everything then.
    const up = (c: Key, h: bigint) => c === fullTime || (h - 1n) % p.epochBlocks >= p.epochBlocks / 2n;
    const answered = new Map<Key, Set<bigint>>();
    let seats = 0n;
    let boundaries = 0n;
    for (let end = 40n; end <= 200n; end += 20n) {
      runSome(chain, [partTime, fullTime], end, up, answered);
      const set = validatorSetAt(chain.state, G);
      const model = chipModel(chain, partTime, H100, registeredAt, answered.get(partTime) ?? new Set());
      assert.equal(model.online, H100, `at ${end} the miss rule reads the part-time chip as online`);
      assert.equal(set.powerOf(consensusKey(other).publicKey), H100, `full-time seat at ${end}`);
      assert.equal(set.powerOf(consensusKey(miner).publicKey), model.seat, `part-time seat at ${end}`);
      seats += model.seat;
      boundaries++;
    }
    // Over nine epochs it answered about half of its challenges, and held about half a seat.
    assert.ok(seats < (boundaries * H100 * 3n) / 4n, `part-time seats ${seats} of ${boundaries} × ${H100}`);
    assert.ok(seats > (boundaries * H100) / 4n, `part-time seats ${seats} of ${boundaries} × ${H100}`);
  });

  test('a chip that misses one challenge of an epoch it otherwise answered keeps its full seat (the grace rewards give it)', () => {
    // An honest restart costs one answer. Rewards forgive it when the chip still answered at least
    // S (its class drew more than S) and missed at most G (creditedChallenges); a seat that did not
    // would drop such a chip by 1/counted of its power, a fifth or less at S = 4, for the next epoch.
    const chain = new TestChain(G);
    const p = getPociParams(chain.state);
    const mine = [0, 1, 2].map((i) => key(`graced-chip-${i}`));
    const theirs = [0, 1, 2].map((i) => key(`graced-chip-other-${i}`));
    enlist(
      chain,
      miner,
      mine.map((c) => [c, 'sim-h100']),
      true,
    );
    enlist(
      chain,
      other,
      theirs.map((c) => [c, 'sim-h100']),
      true,
    );
    const registeredAt = chain.height;
    // Each chip misses the first challenge of its class in every epoch and answers all the others.
    const answers = (c: Key, h: bigint) => slotsOf(chain, c, (h - 1n) / p.epochBlocks)[0] !== h;
    const answered = new Map<Key, Set<bigint>>();
    let graced = 0;
    for (let end = 40n; end <= 240n; end += 20n) {
      runSome(chain, [...mine, ...theirs], end, answers, answered);
      const set = validatorSetAt(chain.state, G);
      const b = end / p.epochBlocks;
      const W = p.answerWindowBlocks;
      for (const [owner, chips] of [
        [miner, mine],
        [other, theirs],
      ] as const) {
        let seat = 0n;
        for (const c of chips) {
          const hits = answered.get(c) ?? new Set<bigint>();
          const m = chipModel(chain, c, H100, registeredAt, hits);
          seat += m.seat;
          // What the boundary counts: the challenges whose answer window closed since the last one.
          const counted = [b - 2n, b - 1n]
            .flatMap((e) => (e < 1n ? [] : slotsOf(chain, c, e)))
            .filter((h) => h + W >= b * p.epochBlocks - p.epochBlocks + 1n && h + W <= end);
          const missed = counted.filter((h) => !hits.has(h)).length;
          if (missed === 1 && counted.length - missed >= p.slotsPerEpoch) {
            assert.equal(m.seat, H100, `a restart costs no seat at ${end}`);
            graced++;
          }
        }
        assert.equal(set.powerOf(consensusKey(owner).publicKey), seat, `seat at ${end}`);
      }
    }
    assert.ok(graced > 0, 'some chip answered S of its challenges and missed one');
  });

  test('attack: a part-time chip whose class drew no challenge that counts at a boundary holds its last measured share there, not a full seat', () => {
    // Whether a class draws a challenge in a boundary's window is random: (1 − 1/M)^B of windows
    // draw none, whatever the number of chips in the class (e^−S ≈ 2% at the defaults; here S = 1
    // and M = 20, so about a third). Such a chip was not measured, and counted in full by the
    // proven-online rule alone: a part-time chip held a free full seat at those boundaries. It now
    // holds the share of the newest window that measured it; an always-online chip keeps its full
    // seat through them.
    const g = genesis({ ...POCI, slotsPerEpoch: 1 });
    const chain = new TestChain(g);
    const p = getPociParams(chain.state);
    const partTime = key('unmeasured-part-time');
    const fullTime = key('unmeasured-full-time');
    enlist(chain, miner, [[partTime, 'sim-h100']], true);
    enlist(chain, other, [[fullTime, 'sim-h100']], true);
    const registeredAt = chain.height;
    // Up for the second half of each epoch, and answering everything then.
    const up = (c: Key, h: bigint) => c === fullTime || (h - 1n) % p.epochBlocks >= p.epochBlocks / 2n;
    const answered = new Map<Key, Set<bigint>>();
    let free = 0;
    let kept = 0;
    for (let end = 40n; end <= 600n; end += 20n) {
      runSome(chain, [partTime, fullTime], end, up, answered);
      const set = validatorSetAt(chain.state, g);
      const part = chipModel(chain, partTime, H100, registeredAt, answered.get(partTime) ?? new Set());
      const full = chipModel(chain, fullTime, H100, registeredAt, answered.get(fullTime) ?? new Set());
      if (full.window === 0) {
        assert.equal(set.powerOf(consensusKey(other).publicKey), H100, `full-time seat at ${end}`);
        kept++;
      }
      if (part.window === 0 && part.online > 0n && part.seat < H100) {
        assert.equal(
          set.powerOf(consensusKey(miner).publicKey),
          part.seat,
          `unmeasured part-time chip at ${end}: its last measured share, not a free full seat`,
        );
        free++;
      }
    }
    assert.ok(kept > 0, 'the always-online chip went unmeasured at some boundary');
    assert.ok(free > 0, 'the part-time chip went unmeasured at some boundary');
  });

  test('a boundary that measured nothing weighs a chip by its newest measured window, also once its answers moved past it (the remembered share)', () => {
    // A chip that answered a challenge of the ending epoch's last W blocks before the boundary has
    // its masks on that epoch: the window before is no longer in them, and its share was remembered
    // when they moved. An always-online chip keeps its full seat there, a part-time one its share.
    const g = genesis({ ...POCI, slotsPerEpoch: 1 });
    const chain = new TestChain(g);
    const p = getPociParams(chain.state);
    const owners = [miner, other, key('remembered-owner-2'), key('remembered-owner-3')];
    fund(chain, owners.slice(2));
    const chips = owners.map((_, i) => key(`remembered-chip-${i}`));
    owners.forEach((o, i) => enlist(chain, o, [[chips[i]!, 'sim-h100']], true));
    const registeredAt = chain.height;
    // Chips 0 and 1 always up, 2 and 3 for the second half of each epoch.
    const up = (c: Key, h: bigint) => chips.indexOf(c) < 2 || (h - 1n) % p.epochBlocks >= p.epochBlocks / 2n;
    const answered = new Map<Key, Set<bigint>>();
    const remembered = [0, 0, 0, 0];
    for (let end = 40n; end <= 600n; end += 20n) {
      runSome(chain, chips, end, up, answered);
      const set = validatorSetAt(chain.state, g);
      owners.forEach((o, i) => {
        const hits = answered.get(chips[i]!) ?? new Set<bigint>();
        const m = chipModel(chain, chips[i]!, H100, registeredAt, hits);
        assert.equal(set.powerOf(consensusKey(o).publicKey), m.seat, `chip ${i}'s seat at ${end}`);
        const movedOn = [...hits].some((h) => h > end - p.answerWindowBlocks);
        if (m.window === 0 && m.online > 0n && movedOn) {
          if (i < 2) assert.equal(m.seat, H100, `always-online chip ${i} at ${end}`);
          remembered[i]!++;
        }
      });
    }
    assert.ok(
      remembered[0]! + remembered[1]! > 0,
      `an always-online chip needed its remembered share (${remembered})`,
    );
    assert.ok(
      remembered[2]! + remembered[3]! > 0,
      `a part-time chip needed its remembered share (${remembered})`,
    );
  });

  test('attack: challenges still open at a boundary count at the next one, answered or not (a chip down for the last W blocks of every epoch)', () => {
    // The set is computed at an epoch's last block, when the challenges of its last W blocks are
    // still open: they counted toward no seat, so a chip could be down for those blocks of every
    // epoch at no cost to its seat. Each challenge now counts at the first boundary after its
    // answer window closed: once, answered or not.
    const chain = new TestChain(G);
    const p = getPociParams(chain.state);
    const owners = [miner, other, key('tail-owner-2'), key('tail-owner-3')];
    fund(chain, owners.slice(2));
    const chips = owners.map((_, i) => key(`down-at-the-tail-${i}`));
    owners.forEach((o, i) => enlist(chain, o, [[chips[i]!, 'sim-h100']], true));
    const registeredAt = chain.height;
    const down = (_: Key, h: bigint) => (h - 1n) % p.epochBlocks < p.epochBlocks - p.answerWindowBlocks;
    const answered = new Map<Key, Set<bigint>>();
    let seats = 0n;
    let measured = 0n;
    for (let end = 40n; end <= 240n; end += 20n) {
      runSome(chain, chips, end, down, answered);
      const set = validatorSetAt(chain.state, G);
      owners.forEach((o, i) => {
        const m = chipModel(chain, chips[i]!, H100, registeredAt, answered.get(chips[i]!) ?? new Set());
        assert.equal(m.online, H100, `chip ${i} is online at ${end}`);
        assert.equal(set.powerOf(consensusKey(o).publicKey), m.seat, `chip ${i}'s seat at ${end}`);
        seats += m.seat;
        measured += H100;
      });
    }
    assert.ok(seats < measured, `seats ${seats} of ${measured}: the missed challenges count`);
  });

  test('a transferred chip moves its power; a deregistered one takes it away', () => {
    const chain = new TestChain(G);
    const moving = key('moving-chip');
    const leaving = key('leaving-chip');
    enlist(
      chain,
      miner,
      [
        [moving, 'sim-h100'],
        [leaving, 'sim-a100'],
      ],
      true,
    );
    chain.block([chain.tx(other, [setConsensusKeyAction(other), { type: 'bond', amount: BOND }])]);
    const anchor = chain.height;
    const anchorHash = getRecentHash(chain.state, anchor) ?? chain.hashOf(anchor);
    const chipId = devSoftChipId(moving.publicKey);
    const consent = ed25519Sign(moving.seed, transferMessage(CHAIN, chipId, other.address, anchorHash));
    chain.block([
      chain.tx(miner, [
        {
          type: 'transferChip',
          chipId,
          newOwner: other.address,
          anchorHeight: anchor,
          consent: { type: 'dev-soft', signature: consent },
        },
        { type: 'deregisterChip', chipId: devSoftChipId(leaving.publicKey) },
      ]),
    ]);
    assert.equal(ownerRatedPower(chain.state, miner.address), 0n);
    assert.equal(chipsOfOwner(chain.state, miner.address).length, 0);
    assert.deepEqual(chipsOfOwner(chain.state, other.address), [chipId]);
    proveThroughEpoch1(chain, [moving]);
    assert.deepEqual(powers(validatorSetAt(chain.state, G)), {
      [toHex(consensusKey(other).publicKey)]: H100,
    });
  });

  test('property: through registrations, transfers, deregistrations and re-registrations in any order, with chips answering any pattern of their challenges, a chip lends power only to its current owner, once it answered since its current registration, and its seat follows its answered share of the newest window that counted a challenge (with S = 1 as well, where a third of the windows count none)', () => {
    const owners = [miner, other, key('lifecycle-third')];
    const chipKeys = [0, 1, 2].map((i) => key(`lifecycle-chip-${i}`));
    const models = ['sim-h100', 'sim-a100', 'sim-h100'];
    const modelPower = [H100, A100, H100];
    type Op = { gap: number; chip: number; kind: 'register' | 'deregister' | 'transfer'; to: number };
    const opArb: fc.Arbitrary<Op> = fc.record({
      gap: fc.integer({ min: 1, max: 12 }),
      chip: fc.integer({ min: 0, max: 2 }),
      kind: fc.constantFrom('register' as const, 'deregister' as const, 'transfer' as const),
      to: fc.integer({ min: 0, max: 2 }),
    });
    fc.assert(
      fc.property(
        // Per chip, which challenges it answers: the one at height h iff pattern[h mod length]
        // (all true: always up; all false: never; mixed: part-time, in any rhythm).
        fc.array(fc.array(fc.boolean(), { minLength: 1, maxLength: 7 }), { minLength: 3, maxLength: 3 }),
        fc.array(opArb, { minLength: 4, maxLength: 14 }),
        // Sparse: S = 1 (M = 20 classes), so that many windows count no challenge of a chip.
        fc.boolean(),
        (patterns, ops, sparse) => {
          const g = sparse ? genesis({ ...POCI, slotsPerEpoch: 1 }) : G;
          const chain = new TestChain(g);
          fund(chain, [owners[2]!]);
          for (const o of owners)
            chain.block([chain.tx(o, [setConsensusKeyAction(o), { type: 'bond', amount: BOND }])]);
          const ids = chipKeys.map((c) => devSoftChipId(c.publicKey));
          // The model: who owns each chip, when it was (last) registered, and the challenges it
          // answered since then (chipModel reads online power and seat from them).
          const owner: (number | null)[] = [null, null, null];
          const registeredAt = [0n, 0n, 0n];
          const answered = new Map<Key, Set<bigint>>();
          const sum = (o: number, part: 'online' | 'seat') =>
            owner.reduce<bigint>((s, w, c) => {
              if (w !== o) return s;
              const m = chipModel(
                chain,
                chipKeys[c]!,
                modelPower[c]!,
                registeredAt[c]!,
                answered.get(chipKeys[c]!) ?? new Set(),
              );
              return s + m[part];
            }, 0n);
          const check = () => {
            for (let o = 0; o < owners.length; o++) {
              assert.equal(
                onlinePowerOf(chain.state, owners[o]!.address, chain.height + 1n),
                sum(o, 'online'),
                `owner ${o} at height ${chain.height} (owners ${owner})`,
              );
            }
            // A boundary whose computed set is empty keeps the set before (a chain must go on): a
            // documented fallback, not a chip lending power, so only a non-empty set is checked.
            const seats = owners.map((_, o) => sum(o, 'seat'));
            if (chain.height % 20n === 0n && seats.some((s) => s > 0n)) {
              const set = validatorSetAt(chain.state, g);
              for (let o = 0; o < owners.length; o++) {
                const weight = set.powerOf(consensusKey(owners[o]!).publicKey);
                assert.equal(weight, seats[o], `owner ${o}'s seat from height ${chain.height + 1n}`);
              }
            }
          };
          const answers = (c: Key, h: bigint) => {
            const pattern = patterns[chipKeys.indexOf(c)]!;
            return pattern[Number(h % BigInt(pattern.length))]!;
          };
          /** One block: each registered chip answers the challenge of its class the block before drew, if its pattern says so. */
          const step = () => {
            runSome(
              chain,
              chipKeys.filter((_, i) => owner[i] !== null),
              chain.height + 1n,
              answers,
              answered,
            );
            check();
          };
          for (const op of ops) {
            for (let i = 0; i < op.gap; i++) step();
            const c = op.chip;
            const chipId = ids[c]!;
            let tx: TxEnvelope;
            if (op.kind === 'register') {
              tx = chain.tx(owners[op.to]!, [
                registerAction(chain, chipKeys[c]!, owners[op.to]!.address, chain.height, models[c]),
              ]);
            } else if (owner[c] === null) {
              continue;
            } else if (op.kind === 'deregister') {
              tx = chain.tx(owners[owner[c]!]!, [{ type: 'deregisterChip', chipId }]);
            } else {
              const anchorHash = getRecentHash(chain.state, chain.height) ?? chain.hashOf(chain.height);
              const signature = ed25519Sign(
                chipKeys[c]!.seed,
                transferMessage(CHAIN, chipId, owners[op.to]!.address, anchorHash),
              );
              tx = chain.tx(owners[owner[c]!]!, [
                {
                  type: 'transferChip',
                  chipId,
                  newOwner: owners[op.to]!.address,
                  anchorHeight: chain.height,
                  consent: { type: 'dev-soft', signature },
                },
              ]);
            }
            // Refusals (a chip still registered, rewards pending, too many changes of hands) are
            // part of the rules under test: the operation is simply not made.
            if (chain.attempt(tx) !== null) continue;
            chain.block([tx]);
            if (op.kind === 'register') {
              owner[c] = op.to;
              registeredAt[c] = chain.height;
              answered.delete(chipKeys[c]!);
            } else if (op.kind === 'deregister') owner[c] = null;
            else owner[c] = op.to;
            check();
          }
          for (let i = 0; i < 100; i++) step();
        },
      ),
      { numRuns: 24 },
    );
  });

  test('the computation reads only the chips of candidates that can still make the cut', () => {
    const chain = new TestChain(G);
    setMaxValidators(chain, 1);
    const big = key('big-owner');
    const small = key('small-owner');
    fund(chain, [big, small]);
    enlist(chain, big, [[key('big-chip'), 'sim-h100']], true);
    const smallChips: [Key, string][] = [0, 1].map((i) => [key(`small-chip-${i}`), 'sim-a100']);
    enlist(chain, small, smallChips, true);
    proveThroughEpoch1(chain, [key('big-chip'), ...smallChips.map(([c]) => c)]);
    const reads: string[] = [];
    const probe = {
      get(k: Uint8Array) {
        if (k[0] === 0x04) reads.push(toHex(k.subarray(1)));
        return chain.state.get(k);
      },
    };
    const set = computeValidatorSet(probe, 41n, chain.beaconOf(40n));
    assert.deepEqual(
      set.map((v) => toHex(v.publicKey)),
      [toHex(consensusKey(big).publicKey)],
    );
    assert.deepEqual(reads, [toHex(devSoftChipId(key('big-chip').publicKey))]);
  });

  test('property: the computed set does not depend on the order of bonds and registrations', () => {
    const owners = [0, 1, 2, 3].map((i) => key(`prop-owner-${i}`));
    const models = ['sim-h100', 'sim-a100'];
    type Op = { owner: number; chip: number | null; model: number };
    const scenario = fc
      .array(
        fc.record({
          chips: fc.array(fc.integer({ min: 0, max: 1 }), { maxLength: 3 }),
          bond: fc.boolean(),
        }),
        { minLength: 4, maxLength: 4 },
      )
      .chain((accounts) => {
        const ops: Op[] = [];
        accounts.forEach((a, owner) => {
          a.chips.forEach((model, chip) => {
            ops.push({ owner, chip, model });
          });
          if (a.bond) ops.push({ owner, chip: null, model: 0 });
        });
        return fc.tuple(
          fc.constant(accounts),
          fc.shuffledSubarray(ops, { minLength: ops.length }),
          fc.integer({ min: 1, max: 4 }),
        );
      });
    fc.assert(
      fc.property(scenario, ([accounts, ops, n]) => {
        const run = (order: Op[]) => {
          const chain = new TestChain(G);
          setMaxValidators(chain, n);
          fund(chain, owners);
          for (const op of order) {
            const owner = owners[op.owner]!;
            const actions: Action[] =
              op.chip === null
                ? [setConsensusKeyAction(owner), { type: 'bond', amount: BOND }]
                : [
                    registerAction(
                      chain,
                      key(`prop-chip-${op.owner}-${op.chip}`),
                      owner.address,
                      chain.height,
                      models[op.model],
                    ),
                  ];
            chain.block([chain.tx(owner, actions)]);
          }
          proveThroughEpoch1(
            chain,
            order.flatMap((op) => (op.chip === null ? [] : [key(`prop-chip-${op.owner}-${op.chip}`)])),
          );
          boundaryBeacon = chain.beaconOf(40n);
          return validatorSetAt(chain.state, G);
        };
        let boundaryBeacon: Uint8Array | undefined;
        const forward = run(ops);
        const backward = run([...ops].reverse());
        assert.equal(toHex(forward.hash()), toHex(backward.hash()));
        // The model: bonded owners with chips, by power then by the tie-break drawn from the
        // beacon of block 40 (the last of epoch 1, which computes the set), the first n.
        const seed = boundaryBeacon!;
        const expected = accounts
          .map((a, i) => ({
            publicKey: consensusKey(owners[i]!).publicKey,
            power: a.chips.reduce((s, m) => s + (m === 0 ? H100 : A100), 0n),
            bond: a.bond,
          }))
          .filter((c) => c.bond && c.power > 0n)
          .sort((a, b) =>
            a.power !== b.power
              ? a.power > b.power
                ? -1
                : 1
              : compareBytes(tie(seed, a.publicKey), tie(seed, b.publicKey)),
          )
          .slice(0, n);
        if (expected.length === 0) assert.equal(forward.validators[0]!.power, 1n, 'genesis set kept');
        else
          assert.deepEqual(
            powers(forward),
            Object.fromEntries(expected.map((e) => [toHex(e.publicKey), e.power])),
          );
      }),
      { numRuns: 12 },
    );
  });

  test('property: the rank is a total order, so any input order sorts to the same list', () => {
    const bytes32 = fc.uint8Array({ minLength: 32, maxLength: 32 });
    // Ties by power are common; a few keys start with zero bytes; some tie-breaks are forced equal
    // (impossible with the hash, but the comparator must stay total on any input).
    const candidate = fc.record({
      publicKey: fc.oneof(
        bytes32,
        bytes32.map((k) => Uint8Array.of(0, 0, ...k.subarray(2))),
      ),
      power: fc.constantFrom(1n, 2n, 3n),
      forcedTie: fc.option(fc.constantFrom(0, 255), { freq: 3 }),
    });
    const scenario = fc
      .tuple(
        bytes32,
        fc.uniqueArray(candidate, { selector: (c) => toHex(c.publicKey), minLength: 1, maxLength: 8 }),
      )
      .chain(([seed, cs]) =>
        fc.tuple(fc.constant(seed), fc.constant(cs), fc.shuffledSubarray(cs, { minLength: cs.length })),
      );
    fc.assert(
      fc.property(scenario, ([seed, cs, shuffled]) => {
        const ranked = (c: (typeof cs)[number]): RankedValidator => ({
          publicKey: c.publicKey,
          power: c.power,
          tie:
            c.forcedTie === null
              ? validatorTieBreak(seed, c.publicKey)
              : new Uint8Array(32).fill(c.forcedTie),
        });
        const xs = cs.map(ranked);
        const keys = (list: RankedValidator[]) =>
          [...list].sort(compareValidatorRank).map((v) => toHex(v.publicKey));
        assert.deepEqual(keys(xs), keys(shuffled.map(ranked)));
        assert.deepEqual(keys(xs), keys([...xs].reverse()));
        for (const a of xs) {
          for (const b of xs) {
            const ab = Math.sign(compareValidatorRank(a, b)) || 0;
            assert.equal(ab, 0 - Math.sign(compareValidatorRank(b, a)) || 0, 'antisymmetric');
            assert.equal(ab === 0, a === b, 'only a candidate ranks equal to itself');
            for (const c of xs) {
              if (ab < 0 && compareValidatorRank(b, c) < 0)
                assert.ok(compareValidatorRank(a, c) < 0, 'transitive');
            }
          }
        }
        // Only power and the tie-break decide, the key last: more power always ranks first.
        for (const a of xs)
          for (const b of xs) if (a.power > b.power) assert.ok(compareValidatorRank(a, b) < 0);
        for (const c of cs) assert.deepEqual(validatorTieBreak(seed, c.publicKey), tie(seed, c.publicKey));
      }),
      { numRuns: 200 },
    );
  });

  test('an overlay that is thrown away leaves no index behind (bad input changes nothing)', () => {
    const chain = new TestChain(G);
    const overlay = new StateOverlay(chain.state);
    assert.equal(validatorCandidates(overlay).length, 0);
    const refused = chain.attempt(chain.tx(other, [{ type: 'bond', amount: 10n ** 30n }]));
    assert.equal(refused?.code, 'INSUFFICIENT_FUNDS');
    assert.equal(validatorCandidates(chain.state).length, 0);
  });

  test('the number of candidates is one state read, whatever their number (unc_getValidators shows it)', () => {
    const chain = new TestChain(G);
    const overlay = new StateOverlay(chain.state);
    const MIN = DEFAULT_CONSENSUS_PARAMS.minValidatorBond;
    // Any account that bonds the minimum and names a consensus key is a candidate.
    for (let i = 0; i < 300; i++) {
      const account = key(`candidate ${i}`);
      putAccount(overlay, account.address, { balance: MIN, nonce: 0n });
      applyBond(overlay, account.address, MIN, 1n);
      const { publicKey, signature } = setConsensusKeyAction(account);
      applySetConsensusKey(overlay, CHAIN, account.address, publicKey, signature);
      noteValidatorBond(overlay, account.address);
    }
    assert.equal(validatorCandidates(overlay).length, 300);
    let reads = 0;
    const counting = { get: (k: Uint8Array) => (reads++, overlay.get(k)) };
    assert.equal(validatorCandidateCount(counting), 300);
    assert.equal(reads, 1);
  });
});

describe('validators with skin in the game (PROTOCOL §6)', () => {
  const MIN = DEFAULT_CONSENSUS_PARAMS.minValidatorBond;
  const PER_UNIT = DEFAULT_CONSENSUS_PARAMS.uncPerPowerUnit;

  test('attack: a validator with a 1-unit bond (or anything under the minimum) is not in the set', () => {
    const chain = new TestChain(G);
    const owners = [key('one-unit'), key('just-under')];
    fund(chain, owners);
    for (const [owner, amount] of [
      [owners[0]!, 1n],
      [owners[1]!, MIN - 1n],
    ] as const) {
      chain.block([
        chain.tx(owner, [
          registerAction(chain, key(`chip-of-${toHex(owner.publicKey)}`), owner.address),
          setConsensusKeyAction(owner),
          { type: 'bond', amount },
        ]),
      ]);
    }
    assert.equal(validatorCandidates(chain.state).length, 0, 'under the minimum: no candidate');
    chain.blocksUntil(20n);
    assert.deepEqual(
      powers(validatorSetAt(chain.state, G)),
      { [toHex(G.validators[0]!.publicKey)]: 1n },
      'nobody qualified: the genesis set goes on',
    );
    // One more base unit makes the minimum (it backs MIN / PER_UNIT units, more than one H100).
    chain.block([chain.tx(owners[1]!, [{ type: 'bond', amount: 1n }])]);
    assert.equal(validatorCandidates(chain.state).length, 1, 'the minimum makes a candidate');
    proveThroughEpoch1(chain, [key(`chip-of-${toHex(owners[1]!.publicKey)}`)]);
    assert.deepEqual(powers(validatorSetAt(chain.state, G)), {
      [toHex(consensusKey(owners[1]!).publicKey)]: H100,
    });
    assert.ok(MIN / PER_UNIT > H100);
  });

  test('attack: sub-minimum bonds cannot grow the candidate list every epoch boundary reads', () => {
    const chain = new TestChain(G);
    // Each sybil pays a fee and bonds one base unit, in either order with its key: before, each was
    // a candidate and cost every node three state reads at every epoch boundary, for ever.
    const sybils = Array.from({ length: 12 }, (_, i) => key(`sybil ${i}`));
    fund(chain, sybils);
    chain.block(
      sybils.map((s, i) =>
        chain.tx(
          s,
          i % 2 === 0
            ? [setConsensusKeyAction(s), { type: 'bond', amount: 1n }]
            : [{ type: 'bond', amount: 1n }, setConsensusKeyAction(s)],
        ),
      ),
    );
    assert.equal(validatorCandidates(chain.state).length, 0);
    let reads = 0;
    const counting = {
      get(k: Uint8Array) {
        reads++;
        return chain.state.get(k);
      },
    };
    assert.deepEqual(computeValidatorSet(counting, 21n, chain.beaconOf(20n)), []);
    assert.ok(reads < 10, `the boundary read ${reads} keys for ${sybils.length} sub-minimum bonds`);

    // Reaching the minimum makes a candidate; unbonding under it takes the place away again, and
    // its unbonding stays slashable (the bond record, not the index, is what a slash reads).
    const [first] = sybils;
    chain.block([chain.tx(first!, [{ type: 'bond', amount: MIN - 1n }])]);
    assert.equal(validatorCandidates(chain.state).length, 1);
    chain.block([chain.tx(first!, [{ type: 'unbond', amount: 1n }])]);
    assert.equal(validatorCandidates(chain.state).length, 0, 'under the minimum again');
    chain.block([chain.tx(first!, [{ type: 'bond', amount: 1n }])]);
    assert.equal(validatorCandidates(chain.state).length, 1, 'back at the minimum');
  });

  test('property: the candidate index is exactly the accounts with a key, no tombstone and the minimum bonded', () => {
    // Bonds, unbonds, keys (in either order within a transaction) and releases of a few accounts
    // sharing amounts around the minimum: after every block, no candidate without the minimum
    // bonded (its bond left, or never came) and none missing that has it.
    const accounts = [0, 1, 2].map((i) => key(`candidate-property ${i}`));
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            who: fc.integer({ min: 0, max: accounts.length - 1 }),
            op: fc.constantFrom('bond', 'unbond', 'key', 'bond+key', 'key+bond', 'release'),
            amount: fc.constantFrom(1n, MIN - 1n, MIN, MIN + 1n, 2n * MIN),
          }),
          { maxLength: 16 },
        ),
        (ops) => {
          const chain = new TestChain(G);
          fund(chain, accounts);
          for (const { who, op, amount } of ops) {
            const account = accounts[who]!;
            if (op === 'release') {
              chain.blocksUntil(chain.height + 3n * getPociParams(chain.state).epochBlocks + 1n);
            } else {
              const bond: Action = { type: 'bond', amount };
              const actions: Action[] =
                op === 'bond'
                  ? [bond]
                  : op === 'unbond'
                    ? [{ type: 'unbond', amount }]
                    : op === 'key'
                      ? [setConsensusKeyAction(account)]
                      : op === 'bond+key'
                        ? [bond, setConsensusKeyAction(account)]
                        : [setConsensusKeyAction(account), bond];
              const tx = chain.tx(account, actions);
              if (chain.attempt(tx) === null) chain.block([tx]);
            }
            const members = validatorCandidates(chain.state).map(toHex);
            assert.equal(new Set(members).size, members.length);
            assert.equal(validatorCandidateCount(chain.state), members.length);
            for (const a of accounts) {
              const record = getValidatorKey(chain.state, a.address);
              const want =
                record !== null &&
                record.tombstonedAt === 0n &&
                toHex(record.publicKey) !== toHex(a.publicKey) &&
                getBond(chain.state, a.address).bonded >= MIN;
              assert.equal(members.includes(toHex(a.address)), want, `${op} ${who} ${amount}`);
            }
          }
        },
      ),
      { numRuns: 30 },
    );
  });

  test('attack: power beyond what the bond backs is capped at bonded ÷ uncPerPowerUnit', () => {
    const chain = new TestChain(G);
    const big = key('big-thin-bond');
    fund(chain, [big]);
    // Two H100s (1,978,000 units) on the minimum bond (backs 1,000,000 units at the defaults).
    chain.block([
      chain.tx(big, [
        registerAction(chain, key('thin-1'), big.address),
        registerAction(chain, key('thin-2'), big.address),
        setConsensusKeyAction(big),
        { type: 'bond', amount: MIN },
      ]),
    ]);
    enlist(chain, other, [[key('thick-1'), 'sim-a100']], true);
    const chips = [key('thin-1'), key('thin-2'), key('thick-1')];
    proveThroughEpoch1(chain, chips);
    assert.equal(MIN / PER_UNIT, 1_000_000n);
    assert.deepEqual(powers(validatorSetAt(chain.state, G)), {
      [toHex(consensusKey(big).publicKey)]: 1_000_000n,
      [toHex(consensusKey(other).publicKey)]: A100,
    });
    // More bond backs more power, up to the online power.
    chain.block([chain.tx(big, [{ type: 'bond', amount: MIN }])]);
    runAnswering(chain, chips, 60n, (c, e) => slotsOf(chain, c, e));
    assert.equal(validatorSetAt(chain.state, G).powerOf(consensusKey(big).publicKey), 2n * H100);
  });

  test('attack: a bond alone gives the account key no seat; the registered consensus key is the validator', () => {
    const chain = new TestChain(G);
    // The old way: chips and a bond, no consensus key. The account is no candidate.
    enlist(chain, miner, [[key('keyless-chip'), 'sim-h100']], false);
    chain.block([chain.tx(miner, [{ type: 'bond', amount: BOND }])]);
    assert.equal(validatorCandidates(chain.state).length, 0);
    chain.blocksUntil(20n);
    assert.ok(!validatorSetAt(chain.state, G).has(miner.publicKey));
    // Naming a consensus key makes it one, from the next epoch, under that key only.
    chain.block([chain.tx(miner, [setConsensusKeyAction(miner)])]);
    assert.equal(toHex(consensusKeyOf(chain.state, miner.address)!), toHex(consensusKey(miner).publicKey));
    runAnswering(chain, [key('keyless-chip')], 40n, (c, e) => slotsOf(chain, c, e));
    const set = validatorSetAt(chain.state, G);
    assert.equal(set.powerOf(consensusKey(miner).publicKey), H100);
    assert.ok(!set.has(miner.publicKey), 'the account key is not a validator key');
  });

  test('setConsensusKey: not the account key, proof of possession, one key per account, no key twice', () => {
    const chain = new TestChain(G);
    const cases: [Key, Action, string][] = [
      [miner, setConsensusKeyAction(miner, miner), 'CONSENSUS_KEY_IS_ACCOUNT_KEY'],
      [
        miner,
        { ...setConsensusKeyAction(miner), signature: ed25519Sign(key('thief').seed, new Uint8Array(32)) },
        'BAD_SIGNATURE',
      ],
      // other's key, signed for other: miner cannot replay it for itself.
      [miner, { ...setConsensusKeyAction(other), publicKey: consensusKey(other).publicKey }, 'BAD_SIGNATURE'],
    ];
    for (const [from, action, code] of cases)
      assert.equal(chain.attempt(chain.tx(from, [action]))?.code, code);
    chain.block([chain.tx(miner, [setConsensusKeyAction(miner)])]);
    assert.equal(
      chain.attempt(chain.tx(miner, [setConsensusKeyAction(miner, key('second-key'))]))?.code,
      'CONSENSUS_KEY_SET',
    );
    assert.equal(
      chain.attempt(chain.tx(other, [setConsensusKeyAction(other, consensusKey(miner))]))?.code,
      'CONSENSUS_KEY_TAKEN',
    );
  });

  test('the proposer half of the fees goes to the account behind the consensus key, not to the key', () => {
    const chain = new TestChain(G);
    chain.block([chain.tx(miner, [setConsensusKeyAction(miner)])]);
    chain.proposer = consensusKey(miner).publicKey;
    const before = getAccount(chain.state, miner.address).balance;
    const events = chain.block([
      chain.tx(other, [{ type: 'transfer', to: key('payee').address, amount: 1n, memo: new Uint8Array() }]),
    ]);
    const fee = events.find((e) => e.type === 'fee');
    assert.ok(fee?.type === 'fee' && fee.toProposer > 0n);
    assert.equal(getAccount(chain.state, miner.address).balance, before + fee.toProposer);
    assert.equal(getAccount(chain.state, consensusKey(miner).address).balance, 0n);
  });

  test('genesis: an optional consensus section sets the bond rules (absent: the defaults, not written)', () => {
    const plain = parseGenesis(genesisToJson(G));
    assert.equal(plain.consensus, undefined);
    assert.ok(!new TestChain(plain).state.get(CONSENSUS_PARAMS_KEY), 'defaults are not written');
    assert.deepEqual(getConsensusParams(new TestChain(plain).state), DEFAULT_CONSENSUS_PARAMS);
    const custom: ConsensusParams = {
      ...DEFAULT_CONSENSUS_PARAMS,
      minValidatorBond: 5n * 10n ** 21n,
      uncPerPowerUnit: 10n ** 16n,
      tombstoneEpochs: 3n,
    };
    const json = genesisToJson({ ...G, consensus: custom });
    assert.deepEqual(json.consensus, {
      maxValidators: 100,
      equivocationSlashBps: 500,
      minValidatorBond: '5000000000000000000000',
      uncPerPowerUnit: '10000000000000000',
      tombstoneEpochs: 3,
    });
    const parsed = parseGenesis(json);
    assert.deepEqual(parsed.consensus, custom);
    assert.deepEqual(getConsensusParams(new TestChain(parsed).state), custom);
    // Fields left out take their defaults; impossible ones are refused with the field's name.
    assert.deepEqual(parseGenesis({ ...json, consensus: { tombstoneEpochs: 9 } }).consensus, {
      ...DEFAULT_CONSENSUS_PARAMS,
      tombstoneEpochs: 9n,
    });
    for (const [field, value] of [
      ['uncPerPowerUnit', '0'],
      ['minValidatorBond', '0'],
      ['minValidatorBond', 'lots'],
      ['maxValidators', 0],
      ['equivocationSlashBps', 10_001],
    ] as const) {
      assert.throws(
        () => parseGenesis({ ...json, consensus: { [field]: value } }),
        (err: Error) => /consensus/.test(err.message),
        `${field}: ${value}`,
      );
    }
  });

  test('setConsensusKey has action tag 21 and its event tag 41; both round-trip', () => {
    const action = setConsensusKeyAction(miner);
    const bytes = encode(actionCodec, action);
    assert.equal(bytes[0], 21);
    assert.equal(bytes.length, 1 + 32 + 64);
    assert.deepEqual(decode(actionCodec, bytes), action);
    const chain = new TestChain(G);
    const events = chain.block([chain.tx(miner, [action])]);
    const set = events.find((e) => e.type === 'consensusKeySet');
    assert.deepEqual(set, { type: 'consensusKeySet', account: miner.address, publicKey: action.publicKey });
    const encoded = encode(txEventCodec, set!);
    assert.equal(encoded[0], 41);
    assert.deepEqual(decode(txEventCodec, encoded), set);
  });
});
