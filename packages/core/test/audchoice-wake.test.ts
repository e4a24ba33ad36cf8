/**
 * AUDIT (branch audchoice): a chip woken on demand was paid and seated as an always-online chip.
 *
 * PROTOCOL.md §4.3 wants a chip that is online a fraction f of the time to earn about f of an
 * always-online chip, and retired v1 because a chip "only needed to be reachable during its S × W
 * answer windows (≈ 2% of the time)". v2 draws the challenged class from each block's beacon, so no
 * chip knows in advance; but the challenge of block h may be answered in any of the W blocks after
 * h. Every chip's class is public (H(chipId) mod M), so a watcher (any light client) sees block h
 * draw the class and wakes the chip (resume, Wake-on-LAN), which signs and goes back to sleep: up
 * about one block per challenge, S / B of the time (4 / 200 = 2% here), and it was weighted exactly
 * like a chip that never slept, for rewards and for validator seat power.
 *
 * Closed for chips whose answers carry a TPM clock (tpm2; docs/poci.md, "Asleep between
 * challenges"): an answer is credited only if the TPM neither reset nor restarted since the chip's
 * previous accepted answer and its clock advanced by 4/5 of the block time between the two
 * challenges, less W × the target block interval + 2D (tpmCreditSlackMs, D the 5 s block-time
 * drift). A suspended machine resumes with a new
 * restartCount (a powered-off one with a new resetCount), and a TPM that did not run has a clock that
 * did not advance. The chips here are TPMs made from fixtures (tpm-chip.ts): an AK certified by a
 * vendor root signs TPMS_ATTEST structures with the clock each scenario's TPM would read, checked by
 * the same verifier that checks swtpm's quotes. dev-soft chips carry no clock and are unchanged (the
 * auditor's original test used them; for them only a smaller W narrows the gap).
 *
 * Run: npx tsc -b && node scripts/run-tests.mjs packages/core/dist/test/audchoice-wake.test.js
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  challengeLookup,
  chipSeatPower,
  epochOf,
  getChip,
  getPociParams,
  type HeartbeatAnswer,
  MAX_BLOCK_TIME_DRIFT_MS,
  type PociParams,
  type TxEvent,
  tpmCreditSlackMs,
  UPTIME_SCALE,
} from '../src/index.js';
import { issueCa } from './attestation/helpers.js';
import { challengesOfChip, genesis, miner, POCI, TestChain } from './harness.js';
import { type Clock, FixtureTpm, TPM_POWER, withTpmVendor } from './tpm-chip.js';

const P: PociParams = { ...POCI, epochBlocks: 200n, answerWindowBlocks: 5n, slotsPerEpoch: 4 };
const EPOCHS = 8n;
const BLOCK_MS = 1000n;

type Behaviour =
  /** Up all the time; its TPM clock runs at 85% of block time (a slow TPM oscillator: the slowest
   *  TPM 2.0 Library Part 1, clause 33.3.6, allows, 15% off UTC). */
  | 'always'
  /** Suspended between challenges: woken for the block after each of its class's challenges; each
   *  resume is a TPM restart (restartCount + 1) and the clock runs only while it is up. */
  | 'sleeper'
  /** As the sleeper, but its TPM keeps its counts (the clock alone shows the sleep). */
  | 'napper'
  /** Up all the time, but its TPM resets once (power lost and back) in epoch REBOOT_EPOCH. */
  | 'rebooter';

const BEHAVIOURS: Behaviour[] = ['always', 'sleeper', 'napper', 'rebooter'];
const REBOOT_EPOCH = 4n;

interface ChipRun {
  chipId: Uint8Array;
  awake: number;
  measured: number;
  rewarded: Extract<TxEvent, { type: 'chipRewarded' }>[];
  uncredited: Extract<TxEvent, { type: 'answerUncredited' }>[];
  /** Every accepted answer, in order: its challenge height and whether it was credited. */
  answers: { slotHeight: bigint; credited: boolean }[];
  seats: { epoch: bigint; seat: bigint; power: bigint }[];
  earned: bigint;
  slotsMissed: bigint;
}

let cached: Map<Behaviour, ChipRun> | null = null;

function run(): Map<Behaviour, ChipRun> {
  if (cached) return cached;
  const root = issueCa('TPM Vendor Root');
  const chain = new TestChain(withTpmVendor(genesis(P), root));
  chain.step = () => BLOCK_MS;
  chain.blocksUntil(2n);
  const tpms = new Map(BEHAVIOURS.map((b, i) => [b, new FixtureTpm(root, Uint8Array.of(0x40 + i))]));
  // Each TPM's state: what its clock reads now, its counts, and when it was last read.
  const clocks = new Map<Behaviour, Clock & { at: bigint }>(
    BEHAVIOURS.map((b) => [b, { clock: 5_000_000n, resetCount: 3, restartCount: 7, at: chain.time }]),
  );
  const registered = chain.block([
    chain.tx(
      miner,
      BEHAVIOURS.map((b) => tpms.get(b)!.register(chain, miner.address, clocks.get(b)!)),
    ),
  ]);
  const ids = registered.filter((e) => e.type === 'chipRegistered').map((e) => e.chipId);
  BEHAVIOURS.forEach((b, i) => {
    tpms.get(b)!.chipId = ids[i]!;
  });
  const out = new Map<Behaviour, ChipRun>(
    BEHAVIOURS.map((b) => [
      b,
      {
        chipId: ids[BEHAVIOURS.indexOf(b)]!,
        awake: 0,
        measured: 0,
        rewarded: [],
        uncredited: [],
        answers: [],
        seats: [],
        earned: 0n,
        slotsMissed: 0n,
      },
    ]),
  );
  const answered = new Set<string>();
  const events: TxEvent[] = [];
  const last = (EPOCHS + 1n) * P.epochBlocks;
  let rebooted = false;
  while (chain.height < last + P.answerWindowBlocks + 2n) {
    const head = chain.height;
    const next = head + 1n;
    const e = epochOf(next, P);
    const batch: HeartbeatAnswer[] = [];
    for (const b of BEHAVIOURS) {
      const tpm = tpms.get(b)!;
      const r = out.get(b)!;
      // The watcher's view: committed blocks only. A sleeper is woken only when the head block drew
      // its class (a challenge at height `head`), and answers that challenge alone.
      const open: { epoch: bigint; slot: number; h: bigint }[] = [];
      for (const epoch of [e - 1n, e]) {
        if (epoch < 1n) continue;
        challengesOfChip(chain, r.chipId, epoch).forEach((h, slot) => {
          if (h < next && next <= h + P.answerWindowBlocks) open.push({ epoch, slot, h });
        });
      }
      const sleeps = b === 'sleeper' || b === 'napper';
      const wakes = open.some((o) => o.h === head);
      if (sleeps && head > P.epochBlocks && head <= last) {
        r.measured++;
        if (wakes) r.awake++;
      }
      // The TPM's clock as the chip signs (at the head's time): an always-on TPM ran all along; a
      // sleeping one ran only for the block it was up, and resumed with a new restartCount.
      const c = clocks.get(b)!;
      const since = chain.time - c.at;
      if (b === 'always') c.clock += (since * 85n) / 100n;
      else if (b === 'rebooter') {
        c.clock += since;
        if (!rebooted && epochOf(head, P) === REBOOT_EPOCH && open.length > 0) {
          // Power lost and back: a reset, and a clock that restarts from its last NV save.
          rebooted = true;
          c.resetCount += 1;
          c.restartCount = 0;
          c.clock -= 60_000n;
        }
      } else if (wakes) {
        c.clock += BLOCK_MS;
        if (b === 'sleeper') c.restartCount += 1;
      }
      c.at = chain.time;
      if (sleeps && !wakes) continue;
      for (const o of open) {
        const id = `${b}:${o.epoch}:${o.slot}`;
        if (answered.has(id)) continue;
        answered.add(id);
        batch.push(tpm.answer(chain, o.epoch, o.slot, c));
      }
    }
    events.push(...chain.block(chain.heartbeats(batch)));
    // The set of the next epoch is computed at the end of an epoch's last block.
    if (chain.height % P.epochBlocks === 0n && chain.height > P.epochBlocks && chain.height <= last) {
      const p = getPociParams(chain.state);
      for (const r of out.values()) {
        const c = getChip(chain.state, r.chipId)!;
        r.seats.push({
          epoch: epochOf(chain.height, P),
          seat: chipSeatPower(chain.state, c, chain.height + 1n, p, challengeLookup(chain.state)),
          power: c.power,
        });
      }
    }
  }
  events.push(...chain.block([chain.tx(miner, [{ type: 'claimRewards', chipIds: ids }])]));
  for (const r of out.values()) {
    const mine = (x: TxEvent) => 'chipId' in x && Buffer.from(x.chipId).equals(Buffer.from(r.chipId));
    r.rewarded = events.filter((x): x is ChipRun['rewarded'][number] => x.type === 'chipRewarded' && mine(x));
    r.uncredited = events.filter(
      (x): x is ChipRun['uncredited'][number] => x.type === 'answerUncredited' && mine(x),
    );
    r.answers = events.flatMap((x) =>
      (x.type === 'slotAnswered' || x.type === 'answerUncredited') && mine(x)
        ? [{ slotHeight: x.slotHeight, credited: x.type === 'slotAnswered' }]
        : [],
    );
    const chip = getChip(chain.state, r.chipId)!;
    r.earned = chip.rewardsEarned;
    r.slotsMissed = chip.slotsMissed;
  }
  for (const [b, r] of out) {
    console.log(
      `${b}: ${r.measured ? `awake ${r.awake}/${r.measured} blocks, ` : ''}paid epochs ${r.rewarded.length} ` +
        `(full weight ${r.rewarded.filter((x) => x.weight === x.power * UPTIME_SCALE).length}), earned ${r.earned}, ` +
        `uncredited ${r.uncredited.map((u) => u.reason).join(',') || 'none'}, missed ${r.slotsMissed}; ` +
        `seat ${r.seats.map((s) => `${s.seat}/${s.power}`).join(' ')}`,
    );
  }
  cached = out;
  return out;
}

describe('AUDIT: on-demand wake-up defeats "paid for the time online" (tpm2: closed by the TPM clock)', () => {
  test('rewards and seat: a TPM chip suspended between challenges, woken for each of its class, earns at most its online share', () => {
    const runs = run();
    const always = runs.get('always')!;
    const r = runs.get('sleeper')!;
    assert.ok(always.earned > 0n, 'precondition: the always-on chip was paid');
    assert.ok(r.measured > 0 && r.awake > 0, 'precondition: the sleeper was measured and woke');
    const f = r.awake / r.measured;
    assert.ok(f < 0.05, `precondition: the sleeper is awake under 5% of the blocks (${f})`);
    // PROTOCOL.md §4.3: online a fraction f → paid about f (at most 5% at f = 2%).
    assert.ok(
      r.earned * 100n <= always.earned * 5n,
      `the sleeper, awake ${(f * 100).toFixed(1)}% of the time, earned ${r.earned} against ${always.earned}`,
    );
    assert.ok(
      r.rewarded.every((x) => x.weight < x.power * UPTIME_SCALE),
      'full weight in an epoch',
    );
    assert.ok(r.seats.length > 0, 'precondition: seats were computed');
    assert.ok(
      r.seats.every((s) => s.seat * 100n <= s.power * 5n),
      `the sleeper lent ${r.seats.map((s) => `${s.seat}/${s.power}`).join(' ')}`,
    );
    // Every answer was accepted, and said why it was not credited: each resume is a TPM restart.
    assert.ok(r.answers.length >= r.awake && r.answers.every((a) => !a.credited), 'an answer was credited');
    assert.ok(r.uncredited.every((u) => u.reason === 'rebooted'));
  });

  test('a TPM whose clock stood still between challenges (same counts) is credited only within the slack', () => {
    // Not how a real TPM sleeps (an unpowered TPM comes back with a new restartCount or resetCount;
    // a powered one keeps its clock running), but the clock alone must be enough. An answer proves
    // the chip was up somewhere in the W blocks after its challenge, so two challenges of its class
    // that come within about W blocks of each other are credited from one wake-up to the next: the
    // slack (W × the target interval + 2D, tpmCreditSlackMs) is the rule's resolution, as W is v2's.
    const runs = run();
    const always = runs.get('always')!;
    const r = runs.get('napper')!;
    const f = r.awake / r.measured;
    assert.ok(f < 0.05, `precondition: the napper is awake under 5% of the blocks (${f})`);
    assert.ok(r.uncredited.length > 0 && r.uncredited.every((u) => u.reason === 'asleep'));
    // Each answer, credited or not, exactly as the rule says: its clock advanced BLOCK_MS (the block
    // it was up), against 4/5 of the block time since the previous answer's challenge, less the
    // slack: W blocks and twice the drift (5 s + 10 s here).
    const slack = tpmCreditSlackMs(P.answerWindowBlocks, Number(BLOCK_MS));
    assert.equal(slack, P.answerWindowBlocks * BLOCK_MS + 2n * BigInt(MAX_BLOCK_TIME_DRIFT_MS));
    let prev: bigint | null = null;
    for (const a of r.answers) {
      if (prev !== null) {
        const elapsed: bigint = (a.slotHeight - prev) * BLOCK_MS;
        const required: bigint = (4n * elapsed + 4n) / 5n - slack;
        assert.equal(a.credited, BLOCK_MS >= required, `answer to ${a.slotHeight}, previous ${prev}`);
      }
      prev = a.slotHeight;
    }
    // Its class drew challenges close together now and then: about 1 − e^(−1.25 × slack × S / (B ×
    // interval)) of the always-on chip's pay and seat. Here the drift term triples the slack (W × 1 s
    // = 5 s, + 10 s): 1.25 × 15 blocks of 50-block gaps, 31% (12% before tpm2skew); at the defaults
    // (W = 20 at 1 s, 3,600-block epochs: 30 s) 4.1% (2.7% before). This run (deterministic: the
    // chips' ids come from their device names) gives 19% and 21% (9% and 11% before): held to a
    // quarter, so that a slack wider still (which the answer-by-answer check above would follow,
    // being computed with tpmCreditSlackMs too) shows here.
    assert.ok(r.earned * 4n <= always.earned, `the napper earned ${r.earned} against ${always.earned}`);
    const lent = r.seats.reduce((x, s) => x + s.seat, 0n);
    const power = r.seats.reduce((x, s) => x + s.power, 0n);
    assert.ok(lent * 4n <= power, `the napper lent ${lent} of ${power}`);
  });

  test('an always-on TPM chip (its clock 15% slow) is credited every answer: full weight and full seat', () => {
    const r = run().get('always')!;
    assert.deepEqual(r.uncredited, []);
    assert.equal(r.slotsMissed, 0n);
    assert.ok(r.rewarded.length >= Number(EPOCHS) - 2, `paid in ${r.rewarded.length} epochs`);
    assert.ok(r.rewarded.every((x) => x.weight === TPM_POWER * UPTIME_SCALE));
    assert.ok(r.seats.every((s) => s.seat === s.power));
  });

  test('a TPM that reset once loses that one answer and no other', () => {
    const r = run().get('rebooter')!;
    assert.equal(r.uncredited.length, 1);
    assert.equal(r.uncredited[0]!.reason, 'rebooted');
    assert.equal(r.uncredited[0]!.epoch, REBOOT_EPOCH);
    assert.equal(r.slotsMissed, 1n, 'the uncredited answer is counted as a miss, once');
    for (const x of r.rewarded) {
      if (x.epoch === REBOOT_EPOCH) assert.ok(x.credited >= x.challenged - 1, `epoch ${x.epoch}`);
      else assert.equal(x.weight, TPM_POWER * UPTIME_SCALE, `epoch ${x.epoch}`);
    }
  });
});
