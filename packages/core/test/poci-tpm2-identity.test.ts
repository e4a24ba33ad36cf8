/**
 * tpm2 chips on a chain: registered and answered with real TPM evidence (an AK certificate from a
 * vendor root, TPMS_ATTEST signed by the AK), for the rules that live in the chain's state rather
 * than in the verifier: one TPM is one chip, and the TPM clock never goes back.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { describe, test } from 'node:test';
import {
  challengeLookup,
  consecutiveMisses,
  getChip,
  getPociParams,
  heartbeatChallenge,
  isProvenOnline,
  parseSubjectPublicKeyInfo,
  type TxEnvelope,
  type TxEvent,
  tpm2AkKeyId,
  transferMessage,
} from '../src/index.js';
import { type Issued, issueCa } from './attestation/helpers.js';
import {
  CHAIN,
  challengesOfChip,
  genesis,
  type Key,
  miner,
  other,
  POCI,
  TestChain,
  untilChipChallenged,
} from './harness.js';
import {
  akCertificate,
  type Clock,
  FixtureTpm,
  timeAttest,
  tpmRegisterAction,
  tpmSign,
  withTpmVendor,
} from './tpm-chip.js';

function tpmChain(root: Issued): TestChain {
  const chain = new TestChain(withTpmVendor(genesis(POCI), root));
  chain.blocksUntil(3n);
  return chain;
}

function register(
  chain: TestChain,
  owner: Key,
  ak: { publicKey: KeyObject; privateKey: KeyObject },
  cert: Uint8Array,
  clock: Clock = { clock: 1000n, resetCount: 1, restartCount: 0 },
): TxEnvelope {
  return chain.tx(owner, [tpmRegisterAction(chain, owner.address, ak, cert, clock)]);
}

function expectReject(chain: TestChain, t: TxEnvelope, code: string, message?: RegExp): void {
  const err = chain.attempt(t);
  assert.ok(err, `expected ${code}, but it applied`);
  assert.equal(err.code, code, err.message);
  if (message) assert.match(err.message, message);
}

const chipIdOf = (events: { type: string }[]) => {
  const e = events.find((x) => x.type === 'chipRegistered') as { chipId: Uint8Array } | undefined;
  assert.ok(e, 'registered');
  return e.chipId;
};

describe('POCI: one TPM is one chip', () => {
  test('attack: the same AK certified with and without a device name does not register as two chips', () => {
    // The chip id is the HardwareModuleName when the AK certificate names one, else the AK key: the
    // same AK certified both ways gave two chip ids, both answered by one TPM (earning twice).
    const root = issueCa('TPM Vendor Root');
    const ak = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const named = akCertificate(root, ak, Uint8Array.of(1, 2, 3, 4));
    const bare = akCertificate(root, ak, null);
    const akId = tpm2AkKeyId(
      parseSubjectPublicKeyInfo(new Uint8Array(ak.publicKey.export({ type: 'spki', format: 'der' }))).key,
    );

    for (const [first, second] of [
      [named, bare],
      [bare, named],
    ] as const) {
      const chain = tpmChain(root);
      const firstId = chipIdOf(chain.block([register(chain, miner, ak, first)]));
      // Without a device name the chip id is the AK's key id, the key the index holds.
      if (first === bare) assert.deepEqual(firstId, akId);
      // The same TPM, its other certificate, from another account or the same one.
      expectReject(
        chain,
        register(chain, other, ak, second),
        'CHIP_ALREADY_REGISTERED',
        /one TPM is one chip/,
      );
      expectReject(
        chain,
        register(chain, miner, ak, second),
        'CHIP_ALREADY_REGISTERED',
        /one TPM is one chip/,
      );
      // Deregistered, the AK is free again: the other certificate registers (a new chip id).
      chain.block([chain.tx(miner, [{ type: 'deregisterChip', chipId: firstId }])]);
      const secondId = chipIdOf(chain.block([register(chain, other, ak, second)]));
      assert.notDeepEqual(secondId, firstId);
      assert.equal(getChip(chain.state, secondId)!.owner.toString(), other.address.toString());
      // And now the first certificate is the one refused.
      expectReject(chain, register(chain, miner, ak, first), 'CHIP_ALREADY_REGISTERED');
    }
  });

  test('two TPMs (two AKs) with device names register as two chips', () => {
    const root = issueCa('TPM Vendor Root');
    const chain = tpmChain(root);
    const a = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const b = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    chain.block([register(chain, miner, a, akCertificate(root, a, Uint8Array.of(1)))]);
    chain.block([register(chain, miner, b, akCertificate(root, b, Uint8Array.of(2)))]);
    // The same device name under another AK is the same chip (its id is the name).
    const c = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    expectReject(
      chain,
      register(chain, other, c, akCertificate(root, c, Uint8Array.of(1))),
      'CHIP_ALREADY_REGISTERED',
    );
  });
});

describe('POCI: the TPM clock of a registered tpm2 chip', () => {
  test('attack: a heartbeat whose restartCount went back within one reset is refused', () => {
    // A TPM's restartCount only grows until the next reset: a lower one in the same reset is an old
    // TPM state restored. The heartbeat rule checked resetCount and the clock, not restartCount.
    const root = issueCa('TPM Vendor Root');
    const chain = tpmChain(root);
    const ak = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    // The TPM's clock runs with block time from its evidence on (as an always-on chip's does: a
    // clock that stood still while the chain moved would be credited nothing, docs/poci.md).
    const signedAt = chain.time;
    const running = (c: Omit<Clock, 'clock'>): Clock => ({ clock: 1000n + chain.time - signedAt, ...c });
    const chipId = chipIdOf(
      chain.block([
        register(chain, miner, ak, akCertificate(root, ak, Uint8Array.of(9)), {
          clock: 1000n,
          resetCount: 2,
          restartCount: 5,
        }),
      ]),
    );
    // Challenged from the epoch after its registration.
    chain.blocksUntil(POCI.epochBlocks);
    const c = untilChipChallenged(chain, chipId);
    const heartbeat = (clock: Clock) => {
      const slotHeight = challengesOfChip(chain, chipId, c.epoch)[c.slot]!;
      const attest = timeAttest(heartbeatChallenge(CHAIN, chipId, chain.hashOf(slotHeight)), clock);
      return chain.tx(miner, [
        {
          type: 'heartbeat',
          answers: [
            {
              chipId,
              epoch: c.epoch,
              slot: c.slot,
              evidence: { type: 'tpm2', attest, signature: tpmSign(ak.privateKey, attest) },
            },
          ],
        },
      ]);
    };
    expectReject(
      chain,
      heartbeat(running({ resetCount: 2, restartCount: 4 })),
      'TPM_CLOCK_BACKWARDS',
      /restartCount/,
    );
    assert.deepEqual(getChip(chain.state, chipId)!.tpmClock, {
      clock: 1000n,
      resetCount: 2,
      restartCount: 5,
    });
    // The same restartCount, or a reset (which starts restartCount again), is fine.
    chain.block([heartbeat(running({ resetCount: 2, restartCount: 5 }))]);
    assert.equal(getChip(chain.state, chipId)!.slotsAnswered, 1n);
  });
});

describe('POCI: an answer is credited only if the TPM ran since the previous one (docs/poci.md)', () => {
  /** A registered fixture TPM whose clock runs with block time from its evidence on. */
  function setUp() {
    const root = issueCa('TPM Vendor Root');
    const chain = tpmChain(root);
    const tpm = new FixtureTpm(root, Uint8Array.of(0x77));
    const clock: Clock = { clock: 50_000n, resetCount: 4, restartCount: 2 };
    const signedAt = chain.time;
    const events = chain.block([chain.tx(miner, [tpm.register(chain, miner.address, clock)])]);
    const chipId = chipIdOf(events);
    tpm.chipId = chipId;
    /** The clock the TPM reads now had it run all along, less `lost` ms it did not run. */
    const running = (lost = 0n, counts: Partial<Clock> = {}): Clock => ({
      ...clock,
      ...counts,
      clock: clock.clock + chain.time - signedAt - lost,
    });
    const send = (from: Key, c: { epoch: bigint; slot: number }, at: Clock) =>
      chain.tx(from, [{ type: 'heartbeat', answers: [tpm.answer(chain, c.epoch, c.slot, at)] }]);
    chain.blocksUntil(POCI.epochBlocks);
    return { chain, tpm, chipId, running, send };
  }
  const uncredited = (events: TxEvent[]) =>
    events.filter((e): e is Extract<TxEvent, { type: 'answerUncredited' }> => e.type === 'answerUncredited');

  test('attack: an answer accepted without credit cannot be sent again with a clock that then passes', () => {
    // The uncredited answer moves the reference on: answered again at once, the same challenge
    // would see no block time elapsed and be credited.
    const { chain, chipId, running, send } = setUp();
    const c = untilChipChallenged(chain, chipId);
    // Up for one second since its registration, some twenty blocks ago.
    const asleep = chain.block([send(miner, c, { ...running(), clock: 51_000n })]);
    assert.equal(uncredited(asleep)[0]?.reason, 'asleep');
    assert.equal(getChip(chain.state, chipId)!.slotsAnswered, 0n);
    expectReject(chain, send(miner, c, { ...running(), clock: 52_000n }), 'ANSWER_REPLAYED');
  });

  test('attack: a reboot shown by a transfer consent still costs the next answer its credit', () => {
    // A consent moves the clock the monotonic rule holds answers to, not the one credit is measured
    // from: otherwise a sleeper could have a consent (to another account of its owner) absorb each
    // resume's new restartCount before its answer.
    const { chain, tpm, chipId, running, send } = setUp();
    const first = untilChipChallenged(chain, chipId);
    chain.block([send(miner, first, running())]);
    assert.equal(getChip(chain.state, chipId)!.slotsAnswered, 1n);
    const anchor = chain.height;
    const attest = timeAttest(
      transferMessage(CHAIN, chipId, other.address, chain.hashOf(anchor)),
      running(0n, { restartCount: 3 }),
    );
    const consent = chain.block([
      chain.tx(miner, [
        {
          type: 'transferChip',
          chipId,
          newOwner: other.address,
          anchorHeight: anchor,
          consent: { type: 'tpm2', attest, signature: tpmSign(tpm.ak.privateKey, attest) },
        },
      ]),
    ]);
    assert.ok(consent.some((e) => e.type === 'chipRebooted'));
    const next = untilChipChallenged(chain, chipId);
    const events = chain.block([send(other, next, running(0n, { restartCount: 3 }))]);
    assert.equal(uncredited(events)[0]?.reason, 'rebooted');
    assert.equal(getChip(chain.state, chipId)!.slotsAnswered, 1n);
    // The reference moved on with that answer: the chip, up since, is credited again.
    const again = untilChipChallenged(chain, chipId);
    chain.block([send(other, again, running(0n, { restartCount: 3 }))]);
    assert.equal(getChip(chain.state, chipId)!.slotsAnswered, 2n);
  });

  test('uncredited answers are misses for the offline streak: K of them take the chip offline', () => {
    const { chain, chipId, running, send } = setUp();
    const p = getPociParams(chain.state);
    const first = untilChipChallenged(chain, chipId);
    chain.block([send(miner, first, running())]);
    assert.ok(isProvenOnline(getChip(chain.state, chipId)!, chain.height, p, challengeLookup(chain.state)));
    // From here on the TPM sleeps between challenges: each answer a new restartCount.
    let restarts = 2;
    for (let k = 0; k < Number(p.offlineAfterMisses); k++) {
      const c = untilChipChallenged(chain, chipId);
      restarts++;
      const events = chain.block([send(miner, c, running(0n, { restartCount: restarts }))]);
      assert.equal(uncredited(events)[0]?.reason, 'rebooted');
    }
    chain.blocksUntil(chain.height + p.answerWindowBlocks + 1n);
    const chip = getChip(chain.state, chipId)!;
    assert.equal(chip.slotsAnswered, 1n);
    assert.equal(
      consecutiveMisses(chip, chain.height, p, challengeLookup(chain.state)),
      Number(p.offlineAfterMisses),
    );
    assert.equal(isProvenOnline(chip, chain.height, p, challengeLookup(chain.state)), false);
  });
});
