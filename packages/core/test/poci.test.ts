import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  type Action,
  blockChallengeClass,
  challengeClasses,
  challengeLookup,
  chipClass,
  consecutiveMisses,
  decode,
  devSoftChipId,
  ed25519Sign,
  effectiveStatus,
  encode,
  epochOf,
  genesisToJson,
  getAllowlistEntry,
  getChip,
  getEpochRecord,
  getGovernance,
  getPociParams,
  getVendor,
  type HeartbeatAnswer,
  heartbeatChallenge,
  isOnline,
  isSerialRevoked,
  MAX_MODEL_POWER,
  parseCertificate,
  parseGenesis,
  putChip,
  registrationMessage,
  revocationId,
  rsaAllowListChipId,
  StateOverlay,
  sha256,
  TPM_ALG,
  TPM_GENERATED_VALUE,
  type TxEnvelope,
  type TxEvent,
  taggedHash,
  toHex,
  transferMessage,
  UPTIME_SCALE,
  utf8,
  type ValidationError,
  vendorCodec,
} from '../src/index.js';
import { der, issue, issueCa, name } from './attestation/helpers.js';
import {
  answer,
  CHAIN,
  genesis,
  govAction,
  type Key,
  key,
  miner,
  other,
  POCI,
  registerAction,
  slotsOf,
  TestChain,
  untilChallenged,
  untilChipChallenged,
} from './harness.js';

function expectReject(chain: TestChain, t: TxEnvelope, code: string): void {
  const err = chain.attempt(t);
  assert.ok(err, `expected ${code}, but it applied`);
  assert.equal(err.code, code, err.message);
}

describe('POCI: registration', () => {
  test('a chip registers once; the same chip from another account is refused', () => {
    const chain = new TestChain();
    chain.blocksUntil(3n);
    const chip = key('chip-1');
    const events = chain.block([chain.tx(miner, [registerAction(chain, chip, miner.address)])]);
    assert.ok(events.some((e) => e.type === 'chipRegistered'));
    const record = getChip(chain.state, devSoftChipId(chip.publicKey))!;
    assert.equal(record.power, 989_000n);
    assert.equal(Buffer.from(record.owner).toString('hex'), Buffer.from(miner.address).toString('hex'));
    expectReject(
      chain,
      chain.tx(other, [registerAction(chain, chip, other.address)]),
      'CHIP_ALREADY_REGISTERED',
    );
    expectReject(
      chain,
      chain.tx(miner, [registerAction(chain, chip, miner.address)]),
      'CHIP_ALREADY_REGISTERED',
    );
  });

  test('evidence bound to another owner, a stale anchor or another chain is refused', () => {
    const chain = new TestChain();
    chain.blocksUntil(3n);
    const chip = key('chip-2');
    // Signed for `other` but sent by `miner`: the message differs.
    const stolen = registerAction(chain, chip, other.address);
    expectReject(chain, chain.tx(miner, [stolen]), 'ATTEST_BAD_SIGNATURE');
    chain.blocksUntil(120n);
    expectReject(chain, chain.tx(miner, [registerAction(chain, chip, miner.address, 10n)]), 'STALE_ANCHOR');
    const wrongChain = registerAction(chain, chip, miner.address);
    const msg = registrationMessage('another-chain', miner.address, chain.hashOf(chain.height));
    wrongChain.evidence.signature = ed25519Sign(chip.seed, msg);
    expectReject(chain, chain.tx(miner, [wrongChain]), 'ATTEST_BAD_SIGNATURE');
  });

  test('dev-soft chips are refused where genesis does not enable them', () => {
    const chain = new TestChain(genesis({ ...POCI, devSoftEnabled: false }));
    chain.blocksUntil(2n);
    expectReject(
      chain,
      chain.tx(miner, [registerAction(chain, key('c'), miner.address)]),
      'ATTEST_PROFILE_DISABLED',
    );
  });

  test('an unknown model or vendor is refused', () => {
    const chain = new TestChain();
    chain.blocksUntil(2n);
    const a = registerAction(chain, key('c'), miner.address);
    a.evidence.modelId = 'no-such-model';
    expectReject(chain, chain.tx(miner, [a]), 'ATTEST_UNKNOWN_MODEL');
    const b = registerAction(chain, key('c'), miner.address);
    b.evidence.vendorId = 'no-such-vendor';
    expectReject(chain, chain.tx(miner, [b]), 'ATTEST_UNKNOWN_VENDOR');
  });

  test('a chip moves to a new owner only with its own signed consent', () => {
    const chain = new TestChain();
    chain.blocksUntil(3n);
    const chip = key('chip-transfer');
    const chipId = devSoftChipId(chip.publicKey);
    chain.block([chain.tx(miner, [registerAction(chain, chip, miner.address)])]);
    const anchor = chain.height;
    const consent = (signer: ReturnType<typeof key>, to: Uint8Array) => ({
      type: 'transferChip' as const,
      chipId,
      newOwner: to,
      anchorHeight: anchor,
      consent: {
        type: 'dev-soft' as const,
        signature: ed25519Sign(signer.seed, transferMessage(CHAIN, chipId, to, chain.hashOf(anchor))),
      },
    });
    // Signed by someone else than the chip, or for another recipient: refused.
    expectReject(
      chain,
      chain.tx(miner, [consent(key('not-the-chip'), other.address)]),
      'ATTEST_BAD_SIGNATURE',
    );
    const forOther = consent(chip, other.address);
    forOther.newOwner = key('third').address;
    expectReject(chain, chain.tx(miner, [forOther]), 'ATTEST_BAD_SIGNATURE');
    // Only the owner can ask.
    expectReject(chain, chain.tx(other, [consent(chip, key('third').address)]), 'NOT_OWNER');
    // And only for another account: a transfer to the owner itself moves nothing.
    expectReject(chain, chain.tx(miner, [consent(chip, miner.address)]), 'SAME_OWNER');
    const events = chain.block([chain.tx(miner, [consent(chip, other.address)])]);
    assert.ok(events.some((e) => e.type === 'chipTransferred'));
    assert.deepEqual(getChip(chain.state, chipId)!.owner, other.address);
  });
});

describe('POCI: TPM clock', () => {
  /** A TPMS_ATTEST of type TPM_ST_ATTEST_TIME over `extraData` with the given clock (as a TPM makes). */
  function timeAttest(
    extraData: Uint8Array,
    clock: bigint,
    resetCount: number,
    restartCount = 0,
  ): Uint8Array {
    const b = Buffer.alloc(4 + 2 + 2 + 2 + extraData.length + 17 + 8 + 8 + 17 + 8);
    let o = b.writeUInt32BE(TPM_GENERATED_VALUE, 0);
    o = b.writeUInt16BE(0x8019, o);
    o = b.writeUInt16BE(0, o); // empty qualifiedSigner
    o = b.writeUInt16BE(extraData.length, o);
    b.set(extraData, o);
    o += extraData.length;
    for (let k = 0; k < 2; k++) {
      if (k === 1) o = b.writeBigUInt64BE(123456n, o); // TPMS_TIME_INFO.time
      o = b.writeBigUInt64BE(clock, o);
      o = b.writeUInt32BE(resetCount, o);
      o = b.writeUInt32BE(restartCount, o);
      o = b.writeUInt8(1, o);
      o = b.writeBigUInt64BE(0x2019102300163636n, o);
    }
    return new Uint8Array(b);
  }

  test('a transfer consent whose TPM clock went back is refused: it cannot reset the clock heartbeats are held to', () => {
    const ak = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const tpmSign = (data: Uint8Array) => {
      const raw = new Uint8Array(sign('sha256', data, { key: ak.privateKey, dsaEncoding: 'ieee-p1363' }));
      const b = Buffer.alloc(4 + 2 + 32 + 2 + 32);
      let o = b.writeUInt16BE(TPM_ALG.ECDSA, 0);
      o = b.writeUInt16BE(TPM_ALG.SHA256, o);
      o = b.writeUInt16BE(32, o);
      b.set(raw.subarray(0, 32), o);
      o = b.writeUInt16BE(32, o + 32);
      b.set(raw.subarray(32), o);
      return new Uint8Array(b);
    };
    const chain = new TestChain();
    chain.blocksUntil(3n);
    const chip = key('chip-tpm-transfer');
    const chipId = devSoftChipId(chip.publicKey);
    chain.block([chain.tx(miner, [registerAction(chain, chip, miner.address)])]);
    // The same record as a TPM chip whose last heartbeat read clock 1000 in its second reset.
    const overlay = new StateOverlay(chain.state);
    putChip(overlay, {
      ...getChip(chain.state, chipId)!,
      profile: 'tpm2',
      keyMaterial: new Uint8Array(ak.publicKey.export({ type: 'spki', format: 'der' })),
      tpmClock: { clock: 1000n, resetCount: 2, restartCount: 0 },
    });
    chain.state.apply(overlay.changes());
    const transfer = (from: Key, to: Key, clock: bigint, resetCount: number) => {
      const anchor = chain.height;
      const message = transferMessage(CHAIN, chipId, to.address, chain.hashOf(anchor));
      const attest = timeAttest(message, clock, resetCount);
      return chain.tx(from, [
        {
          type: 'transferChip',
          chipId,
          newOwner: to.address,
          anchorHeight: anchor,
          consent: { type: 'tpm2', attest, signature: tpmSign(attest) },
        },
      ]);
    };
    expectReject(chain, transfer(miner, other, 999n, 2), 'TPM_CLOCK_BACKWARDS');
    expectReject(chain, transfer(miner, other, 5000n, 1), 'TPM_CLOCK_BACKWARDS');
    assert.deepEqual(getChip(chain.state, chipId)!.tpmClock, {
      clock: 1000n,
      resetCount: 2,
      restartCount: 0,
    });
    chain.block([transfer(miner, other, 1500n, 2)]);
    assert.deepEqual(getChip(chain.state, chipId)!.tpmClock, {
      clock: 1500n,
      resetCount: 2,
      restartCount: 0,
    });
    // A reset may restart the clock lower, as for a heartbeat, and shows as a reboot.
    const events = chain.block([transfer(other, miner, 10n, 3)]);
    assert.ok(events.some((e) => e.type === 'chipRebooted' && e.resetCount === 3));
    assert.deepEqual(getChip(chain.state, chipId)!.tpmClock, { clock: 10n, resetCount: 3, restartCount: 0 });
    assert.deepEqual(getChip(chain.state, chipId)!.owner, miner.address);
  });
});

describe('POCI: liveness', () => {
  function registered() {
    const chain = new TestChain();
    chain.blocksUntil(2n);
    const chip = key('chip-live');
    chain.block([chain.tx(miner, [registerAction(chain, chip, miner.address)])]);
    return { chain, chip, chipId: devSoftChipId(chip.publicKey) };
  }

  test('answers inside the window count once; late, early, replayed and forged answers are refused', () => {
    const { chain, chip, chipId } = registered();
    // Registered in epoch 0: it is challenged from epoch 1 on (heights 21…40).
    chain.blocksUntil(20n);
    // Before any block of epoch 1 challenged its class, there is nothing to answer.
    const early: HeartbeatAnswer = {
      chipId,
      epoch: 1n,
      slot: 0,
      evidence: { type: 'dev-soft', signature: ed25519Sign(chip.seed, new Uint8Array(32)) },
    };
    expectReject(chain, chain.tx(miner, [{ type: 'heartbeat', answers: [early] }], 0n), 'SLOT_NOT_OPEN');
    const first = untilChallenged(chain, chip);
    assert.equal(first.epoch, 1n);
    const hb = chain.tx(miner, [{ type: 'heartbeat', answers: [answer(chain, chip, 1n, first.slot)] }], 0n);
    assert.equal(hb.stx.tx.fee, 0n, 'heartbeats are fee-free');
    const events = chain.block([hb]);
    assert.ok(events.some((e) => e.type === 'slotAnswered'));
    assert.equal(getChip(chain.state, chipId)!.slotsAnswered, 1n);
    // The same answer again (new nonce): replay.
    const replay = chain.tx(
      miner,
      [{ type: 'heartbeat', answers: [answer(chain, chip, 1n, first.slot)] }],
      0n,
    );
    expectReject(chain, replay, 'ANSWER_REPLAYED');
    // The refusal names its answer structured, for the miner that rebuilds its batch (not by words).
    assert.deepEqual((chain.attempt(replay) as ValidationError).answer, {
      chipId: toHex(chipId),
      epoch: 1,
      slot: first.slot,
    });
    // Forged: signed by another key.
    const second = untilChallenged(chain, chip);
    const forged = answer(chain, key('not-the-chip'), second.epoch, second.slot);
    forged.chipId = chipId;
    forged.slot = second.slot;
    forged.evidence = {
      type: 'dev-soft',
      signature: ed25519Sign(
        key('not-the-chip').seed,
        heartbeatChallenge(CHAIN, chipId, chain.hashOf(second.height)),
      ),
    };
    expectReject(
      chain,
      chain.tx(miner, [{ type: 'heartbeat', answers: [forged] }], 0n),
      'ATTEST_BAD_SIGNATURE',
    );
    // Evidence of another profile for this dev-soft chip.
    const wrongProfile: HeartbeatAnswer = {
      ...answer(chain, chip, second.epoch, second.slot),
      evidence: { type: 'tpm2', attest: new Uint8Array(64), signature: new Uint8Array(64) },
    };
    expectReject(
      chain,
      chain.tx(miner, [{ type: 'heartbeat', answers: [wrongProfile] }], 0n),
      'ATTEST_WRONG_PROFILE',
    );
    // Too late: after the window of W blocks.
    const late = answer(chain, chip, second.epoch, second.slot);
    chain.blocksUntil(second.height + POCI.answerWindowBlocks);
    expectReject(chain, chain.tx(miner, [{ type: 'heartbeat', answers: [late] }], 0n), 'ANSWER_TOO_LATE');
  });

  test('after K missed challenges the chip is offline; its next answer brings it back and records the misses', () => {
    const { chain, chip, chipId } = registered();
    const p = POCI;
    // Miss every challenge of epochs 1 and 2.
    chain.blocksUntil(61n);
    const rec = getChip(chain.state, chipId)!;
    const missedSoFar = slotsOf(chain, chip, 1n).length + slotsOf(chain, chip, 2n).length;
    assert.ok(missedSoFar >= p.offlineAfterMisses, 'the class drew enough challenges for this test');
    assert.ok(consecutiveMisses(rec, chain.height, p, challengeLookup(chain.state)) >= p.offlineAfterMisses);
    assert.equal(isOnline(rec, chain.height, p, challengeLookup(chain.state)), false);
    // Answer its first challenge of epoch 3.
    const next = untilChallenged(chain, chip);
    assert.equal(next.epoch, 3n);
    const closed = [1n, 2n, 3n]
      .flatMap((e) => slotsOf(chain, chip, e))
      .filter((h) => h + p.answerWindowBlocks < chain.height + 1n).length;
    const events = chain.block([
      chain.tx(miner, [{ type: 'heartbeat', answers: [answer(chain, chip, 3n, next.slot)] }], 0n),
    ]);
    const missed = events.filter((e) => e.type === 'slotMissed');
    assert.equal(missed.length, closed, 'every challenge whose window closed is recorded as missed');
    assert.match((missed[0] as { reason: string }).reason, /no answer included by height/);
    const after = getChip(chain.state, chipId)!;
    assert.equal(after.slotsMissed, BigInt(closed));
    assert.equal(isOnline(after, chain.height, p, challengeLookup(chain.state)), true);
  });

  test('deregistered and revoked chips cannot answer', () => {
    const { chain, chip, chipId } = registered();
    chain.block([chain.tx(miner, [govAction(chain, { type: 'revokeChip', chipId, reason: 'key leaked' })])]);
    const c = untilChallenged(chain, chip);
    expectReject(
      chain,
      chain.tx(miner, [{ type: 'heartbeat', answers: [answer(chain, chip, c.epoch, c.slot)] }], 0n),
      'CHIP_INACTIVE',
    );
    expectReject(chain, chain.tx(miner, [{ type: 'deregisterChip', chipId }]), 'CHIP_INACTIVE');
  });

  test('attack: a key removed from the RSA allow-list deactivates its chip at once', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const spki = new Uint8Array(rsa.publicKey.export({ type: 'spki', format: 'der' }));
    const rsaSign = (m: Uint8Array) => new Uint8Array(sign('sha256', m, rsa.privateKey));
    const base = genesis();
    const chain = new TestChain(
      genesis(POCI, {
        vendors: [
          ...base.vendors,
          { id: 'unc-foundation', name: 'f', profile: 'rsa2048-allowlist', roots: [] },
        ],
        models: [
          ...base.models,
          { vendorId: 'unc-foundation', modelId: 'unc-a', name: 'a', power: 100_000n },
        ],
      }),
    );
    chain.blocksUntil(2n);
    const entry = { vendorId: 'unc-foundation', publicKey: spki, modelId: 'unc-a', allowed: true };
    chain.block([chain.tx(miner, [govAction(chain, { type: 'setAllowlist', entry })])]);
    const anchor = chain.height;
    const message = registrationMessage(CHAIN, miner.address, chain.hashOf(anchor));
    chain.block([
      chain.tx(miner, [
        {
          type: 'registerChip',
          anchorHeight: anchor,
          evidence: {
            type: 'rsa2048-allowlist',
            vendorId: 'unc-foundation',
            publicKey: spki,
            signature: rsaSign(message),
          },
        },
      ]),
    ]);
    const chipId = rsaAllowListChipId(spki);
    const chip = () => getChip(chain.state, chipId)!;
    assert.equal(effectiveStatus(chain.state, chip(), null).status, 'active');
    // Answer a challenge: accepted while listed.
    const rsaAnswer = (c: { epoch: bigint; slot: number; height: bigint }) => ({
      chipId,
      epoch: c.epoch,
      slot: c.slot,
      evidence: {
        type: 'rsa2048-allowlist' as const,
        signature: rsaSign(heartbeatChallenge(CHAIN, chipId, chain.hashOf(c.height))),
      },
    });
    chain.blocksUntil(POCI.epochBlocks); // the chip is challenged from the epoch after it registered
    const first = untilChipChallenged(chain, chipId);
    chain.block([chain.tx(miner, [{ type: 'heartbeat', answers: [rsaAnswer(first)] }], 0n)]);
    assert.equal(chip().slotsAnswered, 1n);
    // The foundation de-lists the key: the very next answer is refused, the chip is revoked.
    chain.block([
      chain.tx(miner, [govAction(chain, { type: 'setAllowlist', entry: { ...entry, allowed: false } })]),
    ]);
    assert.equal(effectiveStatus(chain.state, chip(), null).status, 'revoked');
    const next = untilChipChallenged(chain, chipId);
    expectReject(
      chain,
      chain.tx(miner, [{ type: 'heartbeat', answers: [rsaAnswer(next)] }], 0n),
      'CHIP_INACTIVE',
    );
  });

  test('vendor requirements: encoded as one byte, refused on a non-tpm2 vendor', () => {
    const v = { id: 'tpm-v', name: 'v', profile: 'tpm2' as const, roots: [] };
    for (const flags of [
      {},
      { requireAkEku: true },
      { requireHardwareModuleName: true },
      { requireAkEku: true, requireHardwareModuleName: true },
    ]) {
      const bytes = encode(vendorCodec, { ...v, ...flags });
      assert.deepEqual(decode(vendorCodec, bytes), { ...v, ...flags });
    }
    const bytes = encode(vendorCodec, v);
    bytes[bytes.length - 1] = 4;
    assert.throws(() => decode(vendorCodec, bytes), /requirement/);
    const chain = new TestChain();
    chain.blocksUntil(2n);
    const onRsa = { ...v, profile: 'rsa2048-allowlist' as const, requireHardwareModuleName: true };
    expectReject(
      chain,
      chain.tx(miner, [govAction(chain, { type: 'setVendor', vendor: onRsa })]),
      'BAD_PROPOSAL',
    );
    chain.block([
      chain.tx(miner, [govAction(chain, { type: 'setVendor', vendor: { ...v, requireAkEku: true } })]),
    ]);
  });

  test('attack: governance cannot store a vendor root or an allow-listed key that registration cannot parse', () => {
    const chain = new TestChain();
    chain.blocksUntil(2n);
    const good = issueCa('Good Root');
    const root = good.der;
    // An RSA-8192 key is outside the x509 parser's bounds (RSA up to 4096 bits).
    const rsaSpki = (bits: number) => {
      const n = new Uint8Array(bits / 8);
      n[0] = 0x80;
      n[n.length - 1] = 1;
      return der.seq(
        der.seq(der.oid('1.2.840.113549.1.1.1'), der.nul()),
        der.bit(der.seq(der.uint(n), der.int(65537n))),
      );
    };
    const rsa8192Spki = rsaSpki(8192);
    // A well-formed certificate (signed by a real key) around that key: only its key is refused.
    const fakePublic = { export: () => Buffer.from(rsa8192Spki) } as unknown as KeyObject;
    const rsa8192Root = issue({
      subject: name('Big Root'),
      issuer: good,
      keyPair: { publicKey: fakePublic, privateKey: good.key },
    }).der;
    const badRoots = [new Uint8Array([0x30, 0x03, 1, 2, 3]), root.subarray(0, root.length - 1), rsa8192Root];
    const vendor = { id: 'v-roots', name: 'v', profile: 'tpm2' as const, roots: [root] };
    for (const bad of badRoots) {
      const nonce = getGovernance(chain.state).nonce;
      expectReject(
        chain,
        chain.tx(miner, [govAction(chain, { type: 'setVendor', vendor: { ...vendor, roots: [root, bad] } })]),
        'BAD_VENDOR_ROOT',
      );
      assert.equal(getVendor(chain.state, 'v-roots'), null);
      assert.equal(getGovernance(chain.state).nonce, nonce);
    }
    chain.block([chain.tx(miner, [govAction(chain, { type: 'setVendor', vendor })])]);
    assert.equal(getVendor(chain.state, 'v-roots')?.roots.length, 1);
    chain.block([
      chain.tx(miner, [
        govAction(chain, {
          type: 'setModel',
          model: { vendorId: 'v-roots', modelId: 'm', name: 'm', power: 1n },
        }),
      ]),
    ]);
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const spki = new Uint8Array(rsa.publicKey.export({ type: 'spki', format: 'der' }));
    const ec = new Uint8Array(
      generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' }),
    );
    const entry = { vendorId: 'v-roots', publicKey: spki, modelId: 'm', allowed: true };
    // Registration takes RSA-2048 keys only: an EC or an RSA-4096 key lists a chip that never registers.
    for (const bad of [new Uint8Array([1, 2, 3]), ec, rsaSpki(4096)]) {
      expectReject(
        chain,
        chain.tx(miner, [govAction(chain, { type: 'setAllowlist', entry: { ...entry, publicKey: bad } })]),
        'BAD_ALLOWLIST_KEY',
      );
      assert.equal(getAllowlistEntry(chain.state, 'v-roots', bad), null);
      // Removing an entry is never refused for its key: one stored before the check stays removable.
      chain.block([
        chain.tx(miner, [
          govAction(chain, { type: 'setAllowlist', entry: { ...entry, publicKey: bad, allowed: false } }),
        ]),
      ]);
    }
    chain.block([chain.tx(miner, [govAction(chain, { type: 'setAllowlist', entry })])]);
    assert.equal(getAllowlistEntry(chain.state, 'v-roots', spki)?.allowed, true);
  });

  test('attack: a model power that overflows the epoch total is refused (governance and genesis)', () => {
    const chain = new TestChain();
    // Near u128 / UPTIME_SCALE (e.g. a power entered with 18 decimals), one chip of the model that
    // answered every challenge filled the epoch's u128 total: every other chip's answer overflowed
    // it and was refused, so that chip took the whole emission and every other chip went offline.
    const overflowing = ((1n << 128n) - 1n) / UPTIME_SCALE;
    for (const power of [overflowing, MAX_MODEL_POWER + 1n]) {
      const nonce = getGovernance(chain.state).nonce;
      const model = { vendorId: 'dev', modelId: 'huge', name: 'huge', power };
      expectReject(chain, chain.tx(miner, [govAction(chain, { type: 'setModel', model })]), 'BAD_POWER');
      assert.equal(getGovernance(chain.state).nonce, nonce);
      const g = genesis(POCI, { models: [model] });
      assert.throws(() => parseGenesis(genesisToJson(g)), /models\[0\]\.power/);
    }
    // At the bound, the total holds about 2·10^12 such chips, each at full weight.
    assert.ok(MAX_MODEL_POWER * UPTIME_SCALE * 10n ** 12n < 1n << 128n);

    // And a chip at the bound that answers every challenge leaves room for everyone else's answers.
    const model = { vendorId: 'dev', modelId: 'huge', name: 'huge', power: MAX_MODEL_POWER };
    chain.block([chain.tx(miner, [govAction(chain, { type: 'setModel', model })])]);
    const huge = key('max-power-chip');
    const honest = key('honest-chip');
    // Two owners: each answers for its own chip (only the owner may), both in one block.
    chain.block([
      chain.tx(miner, [registerAction(chain, huge, miner.address, chain.height, 'huge')]),
      chain.tx(other, [registerAction(chain, honest, other.address)]),
    ]);
    const p = getPociParams(chain.state);
    const answered = new Set<string>();
    let honestAnswers = 0;
    while (chain.height < 3n * p.epochBlocks) {
      const epoch = epochOf(chain.height, p);
      const txs: TxEnvelope[] = [];
      if (epoch >= 1n) {
        slotsOf(chain, huge, epoch).forEach((h, slot) => {
          if (answered.has(`${epoch}/${slot}`) || h + p.answerWindowBlocks <= chain.height) return;
          answered.add(`${epoch}/${slot}`);
          txs.push(chain.tx(miner, [{ type: 'heartbeat', answers: [answer(chain, huge, epoch, slot)] }], 0n));
        });
        const mine = slotsOf(chain, honest, epoch);
        if (mine[mine.length - 1] === chain.height) {
          txs.push(
            chain.tx(
              other,
              [{ type: 'heartbeat', answers: [answer(chain, honest, epoch, mine.length - 1)] }],
              0n,
            ),
          );
          honestAnswers++;
        }
      }
      chain.block(txs);
    }
    assert.ok(honestAnswers > 0 && answered.size > 0, 'both chips were challenged');
  });

  test("attack: a certificate is revoked by issuer and serial; a bare serial (any CA's) is refused BAD_SERIAL", () => {
    const { chain } = registered();
    const nonce = getGovernance(chain.state).nonce;
    for (const serial of ['ab', '77', `${'00'.repeat(16)}`, `${'00'.repeat(16)}:`, `${'zz'.repeat(16)}:ab`]) {
      expectReject(
        chain,
        chain.tx(miner, [govAction(chain, { type: 'revokeSerial', vendorId: 'dev', serial, revoked: true })]),
        'BAD_SERIAL',
      );
    }
    assert.equal(getGovernance(chain.state).nonce, nonce);
    const ca = issueCa('Revoking CA');
    const id = revocationId(parseCertificate(ca.der).subject.der, '00ab');
    chain.block([
      chain.tx(miner, [
        govAction(chain, { type: 'revokeSerial', vendorId: 'dev', serial: id.toUpperCase(), revoked: true }),
      ]),
    ]);
    // Stored in canonical form, under its issuer: the same serial of another CA is not revoked.
    assert.ok(id.endsWith(':ab'));
    assert.equal(isSerialRevoked(chain.state, 'dev', id), true);
    const other = revocationId(parseCertificate(issueCa('Another CA').der).subject.der, 'ab');
    assert.equal(isSerialRevoked(chain.state, 'dev', other), false);
  });

  test('only the owner deregisters; a governance proposal needs a valid approval', () => {
    const { chain, chipId } = registered();
    expectReject(chain, chain.tx(other, [{ type: 'deregisterChip', chipId }]), 'NOT_OWNER');
    const bad: Action = {
      type: 'governance',
      proposal: { type: 'revokeChip', chipId, reason: 'x' },
      approvals: [{ publicKey: other.publicKey, signature: new Uint8Array(64) }],
    };
    expectReject(chain, chain.tx(other, [bad]), 'GOV_NOT_AUTHORITY');
    // An approval for nonce 0 cannot be replayed once nonce 0 was used.
    const first = govAction(chain, {
      type: 'revokeSerial',
      vendorId: 'dev',
      serial: `${'00'.repeat(16)}:ab`,
      revoked: true,
    });
    chain.block([chain.tx(other, [first])]);
    expectReject(chain, chain.tx(other, [first]), 'GOV_BAD_APPROVAL');
    chain.block([chain.tx(miner, [{ type: 'deregisterChip', chipId }])]);
    assert.equal(getChip(chain.state, chipId)!.status, 1);
  });
});

/** The v1 rule (retired): slot j = start + H("UNC/slot" ‖ seed ‖ chipId ‖ j ‖ draw) mod B, known at
 *  the epoch start. Kept here only to play the attack it allowed. */
function v1SlotHeights(seed: Uint8Array, chipId: Uint8Array, epoch: bigint, b: bigint, s: number): bigint[] {
  const start = epoch * b + 1n;
  const out: bigint[] = [];
  for (let j = 0; j < s; j++) {
    for (let draw = 0; ; draw++) {
      const h = taggedHash('UNC/slot', seed, chipId, Uint8Array.of(j, draw & 0xff));
      const slot = start + (new DataView(h.buffer, h.byteOffset).getBigUint64(0) % b);
      if (!out.includes(slot)) {
        out.push(slot);
        break;
      }
    }
  }
  return out;
}

describe('POCI: challenges nobody can schedule around', () => {
  test('classes: deterministic, in range, uniform over blocks (chi-square), S per epoch in expectation', () => {
    const p = { epochBlocks: 3600n, slotsPerEpoch: 4 };
    assert.equal(challengeClasses(p), 900n);
    assert.equal(challengeClasses({ epochBlocks: 60n, slotsPerEpoch: 4 }), 15n);
    assert.equal(challengeClasses({ epochBlocks: 7n, slotsPerEpoch: 8 }), 1n);
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (id) => {
        const k = chipClass(id, p);
        assert.equal(chipClass(id, p), k);
        assert.ok(k >= 0n && k < 900n);
        const r = blockChallengeClass(id, p);
        assert.ok(r >= 0n && r < 900n);
      }),
    );
    const q = { epochBlocks: 100n, slotsPerEpoch: 10 }; // M = 10
    const buckets = new Array(10).fill(0);
    const n = 20_000;
    for (let i = 0; i < n; i++) buckets[Number(blockChallengeClass(sha256(utf8(`beacon ${i}`)), q))]++;
    const expected = n / 10;
    const chi2 = buckets.reduce((x, o) => x + (o - expected) ** 2 / expected, 0);
    assert.ok(chi2 < 27.9, `chi-square ${chi2.toFixed(1)} over 9 degrees of freedom (p < 0.001 cut-off)`);
  });

  test('a chip is challenged by a block only once that block exists: nothing in state or RPC names a later height', () => {
    const { chain, chip } = (() => {
      const chain = new TestChain();
      chain.blocksUntil(2n);
      const chip = key('chip-future');
      chain.block([chain.tx(miner, [registerAction(chain, chip, miner.address)])]);
      return { chain, chip };
    })();
    for (let i = 0; i < 60; i++) {
      chain.block();
      const epoch = epochOf(chain.height, POCI);
      for (const e of [epoch, epoch + 1n, epoch + 2n]) {
        for (const h of slotsOf(chain, chip, e))
          assert.ok(h <= chain.height, `challenge ${h} above ${chain.height}`);
      }
    }
    // What a block challenges depends on its beacon alone: change one bit and the class moves.
    const p = POCI;
    let moved = 0;
    for (let i = 0; i < 200; i++) {
      const beacon = sha256(utf8(`b${i}`));
      const flipped = beacon.slice();
      flipped[i % 32]! ^= 1;
      if (blockChallengeClass(beacon, p) !== blockChallengeClass(flipped, p)) moved++;
    }
    assert.ok(moved > 120, `${moved} of 200 one-bit changes moved the class`);
  });

  test('attack: a chip up only during its v1 (formerly predictable) answer windows is no longer paid as if always up', (t) => {
    // Long epochs so that the v1 windows cover a small part of the time: S × (W + 1) / B = 12%.
    const p = { ...POCI, epochBlocks: 200n, answerWindowBlocks: 5n };
    const chain = new TestChain(genesis(p));
    const honest = key('honest');
    const sly = key('sly');
    chain.blocksUntil(2n);
    chain.block([
      chain.tx(miner, [
        registerAction(chain, honest, miner.address),
        registerAction(chain, sly, miner.address),
      ]),
    ]);
    const slyId = devSoftChipId(sly.publicKey);
    const epochs = 8n;
    const v1Windows = new Map<bigint, bigint[]>();
    let v1Covered = 0;
    const answered = new Set<string>();
    while (chain.height < (epochs + 1n) * p.epochBlocks) {
      const h = chain.height + 1n;
      const e = epochOf(h, p);
      if (!v1Windows.has(e)) {
        // The v1 schedule of the epoch, known to the sly chip at its start from the epoch seed.
        const seed = getEpochRecord(chain.state, e)?.seed ?? chain.beaconOf(h - 1n);
        v1Windows.set(e, v1SlotHeights(seed, slyId, e, p.epochBlocks, p.slotsPerEpoch));
      }
      // Under v1 the sly chip would have answered every slot: it is up in each window.
      const up = (x: bigint) =>
        [...(v1Windows.get(epochOf(x, p)) ?? [])].some((s) => x > s && x <= s + p.answerWindowBlocks);
      const answers: HeartbeatAnswer[] = [];
      const prev = chain.height;
      const pe = epochOf(prev, p);
      for (const [c, isUp] of [
        [honest, true],
        [sly, up(h)],
      ] as const) {
        if (!isUp || pe < 1n) continue;
        for (const e of [pe - 1n, pe]) {
          slotsOf(chain, c, e).forEach((sh, j) => {
            const id = `${toHex(devSoftChipId(c.publicKey))}:${e}:${j}`;
            if (sh < h && h <= sh + p.answerWindowBlocks && !answered.has(id)) {
              answered.add(id);
              answers.push(answer(chain, c, e, j));
            }
          });
        }
      }
      chain.block(chain.heartbeats(answers));
      if (epochOf(h, p) >= 1n && up(h)) v1Covered++;
    }
    chain.blocksUntil(chain.height + p.answerWindowBlocks + 2n);
    chain.block([
      chain.tx(miner, [{ type: 'claimRewards', chipIds: [devSoftChipId(honest.publicKey), slyId] }]),
    ]);
    const paid = (c: ReturnType<typeof key>) =>
      chain.events
        .filter((e): e is Extract<TxEvent, { type: 'chipRewarded' }> => e.type === 'chipRewarded')
        .filter((e) => Buffer.compare(e.chipId, devSoftChipId(c.publicKey)) === 0)
        .reduce((x, e) => x + e.amount, 0n);
    const up = Number(v1Covered) / Number(epochs * p.epochBlocks);
    const ratio = Number((paid(sly) * 10_000n) / paid(honest)) / 10_000;
    t.diagnostic(
      `sly chip up ${(up * 100).toFixed(1)}% of the time, paid ${(ratio * 100).toFixed(1)}% of the honest chip`,
    );
    assert.ok(up < 0.2, `the sly chip was up ${up}`);
    // Under v1 it answered every slot and was paid 100% of the honest chip. Now it earns about its
    // uptime: far below what it would have been paid.
    assert.ok(ratio < 0.35, `sly/honest earnings ${ratio} (uptime ${up.toFixed(3)})`);
  });

  test('property: no answer is ever counted twice, whatever the order of attempts', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 10 }), (attempts) => {
        const chain = new TestChain();
        chain.blocksUntil(2n);
        const chip = key('chip-prop');
        chain.block([chain.tx(miner, [registerAction(chain, chip, miner.address)])]);
        chain.blocksUntil(20n);
        let accepted = 0;
        for (const j of attempts) {
          while (slotsOf(chain, chip, 1n).length <= j && chain.height < 40n) chain.block();
          if (slotsOf(chain, chip, 1n).length <= j) continue;
          const t = chain.tx(miner, [{ type: 'heartbeat', answers: [answer(chain, chip, 1n, j)] }], 0n);
          if (!chain.attempt(t)) {
            chain.block([t]);
            accepted++;
          }
        }
        const rec = getChip(chain.state, devSoftChipId(chip.publicKey))!;
        assert.equal(rec.slotsAnswered, BigInt(accepted));
        assert.ok(accepted <= new Set(attempts).size);
      }),
      { numRuns: 30 },
    );
  });
});

describe('POCI: governance of the parameters', () => {
  test('attack: a setPociParams that moves the epochs, the classes or the answer window of open epochs is refused', () => {
    // Epoch numbers, challenge classes (M = floor(B/S)), answer windows and grace are baked into the
    // records of open and unpaid epochs (class lists, answer masks, class weights, the finalisation
    // height): changing them live re-files heights into epochs that are already final or paid. With
    // epochBlocks doubled here, the next blocks' bookkeeping drove a paid epoch's remainingWeight
    // below 0 and threw (u128 out of range) in every block: the chain stopped.
    const chain = new TestChain();
    chain.blocksUntil(3n);
    const chip = key('gov-params-chip');
    chain.block([chain.tx(miner, [registerAction(chain, chip, miner.address)])]);
    const chipId = devSoftChipId(chip.publicKey);
    chain.blocksUntil(POCI.epochBlocks);
    // Answer every challenge for a few epochs, and claim, so final epochs are partly paid.
    while (chain.height < 5n * POCI.epochBlocks) {
      const c = untilChallenged(chain, chip);
      chain.block([
        chain.tx(miner, [{ type: 'heartbeat', answers: [answer(chain, chip, c.epoch, c.slot)] }]),
      ]);
    }
    chain.block([chain.tx(other, [{ type: 'claimRewards', chipIds: [chipId] }])]);
    const p = getPociParams(chain.state);
    for (const changed of [
      { ...p, epochBlocks: p.epochBlocks * 2n },
      { ...p, slotsPerEpoch: p.slotsPerEpoch - 1 },
      { ...p, answerWindowBlocks: p.answerWindowBlocks + 1n },
      { ...p, graceSlotsPerEpoch: 0 },
    ]) {
      expectReject(
        chain,
        chain.tx(miner, [govAction(chain, { type: 'setPociParams', params: changed })]),
        'BAD_PROPOSAL',
      );
    }
    // What is not baked into epochs may change, and the chain goes on.
    chain.block([
      chain.tx(miner, [govAction(chain, { type: 'setPociParams', params: { ...p, offlineAfterMisses: 5 } })]),
    ]);
    assert.equal(getPociParams(chain.state).offlineAfterMisses, 5);
    chain.blocksUntil(chain.height + 4n * POCI.epochBlocks);
  });

  test('attack: a software chip registered while dev-soft was on stops counting once governance turns it off', () => {
    // dev-soft was checked only at registration: chips registered while it was on kept answering,
    // earning and lending validator power after the chain stopped accepting software chips, so a
    // chain leaving a test phase kept every free software chip (at any model's power) for good.
    const chain = new TestChain();
    chain.blocksUntil(3n);
    const chip = key('soft-chip-before-switch');
    chain.block([chain.tx(miner, [registerAction(chain, chip, miner.address)])]);
    const chipId = devSoftChipId(chip.publicKey);
    const p = getPociParams(chain.state);
    const setDevSoft = (on: boolean) =>
      chain.block([
        chain.tx(miner, [govAction(chain, { type: 'setPociParams', params: { ...p, devSoftEnabled: on } })]),
      ]);
    chain.blocksUntil(POCI.epochBlocks);
    setDevSoft(false);
    const off = effectiveStatus(chain.state, getChip(chain.state, chipId)!, null);
    assert.equal(off.status, 'revoked');
    assert.match(off.reason, /dev-soft/);
    // Its next challenge finds it inactive: no answer, no reward weight, no validator power.
    const c = untilChallenged(chain, chip);
    expectReject(
      chain,
      chain.tx(miner, [{ type: 'heartbeat', answers: [answer(chain, chip, c.epoch, c.slot)] }]),
      'CHIP_INACTIVE',
    );
    // Turned on again, the same record counts again (a status, not a change to the record).
    setDevSoft(true);
    assert.equal(effectiveStatus(chain.state, getChip(chain.state, chipId)!, null).status, 'active');
    const again = untilChallenged(chain, chip);
    chain.block([
      chain.tx(miner, [{ type: 'heartbeat', answers: [answer(chain, chip, again.epoch, again.slot)] }]),
    ]);
    assert.equal(getChip(chain.state, chipId)!.slotsAnswered, 1n);
  });
});
