import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  type Action,
  consecutiveMisses,
  decode,
  devSoftChipId,
  ed25519Sign,
  effectiveStatus,
  encode,
  epochOf,
  type GovProposal,
  getChip,
  getGovernance,
  governanceSigningBytes,
  type HeartbeatAnswer,
  heartbeatChallenge,
  isOnline,
  registrationMessage,
  rsaAllowListChipId,
  seedLookup,
  sha256,
  slotHeights,
  type TxEnvelope,
  transferMessage,
  utf8,
  vendorCodec,
} from '../src/index.js';
import {
  answer,
  CHAIN,
  genesis,
  gov,
  key,
  miner,
  other,
  POCI,
  registerAction,
  slotsOf,
  TestChain,
} from './harness.js';

function govAction(chain: TestChain, proposal: GovProposal): Action {
  const g = getGovernance(chain.state);
  return {
    type: 'governance',
    proposal,
    approvals: [
      {
        publicKey: gov.publicKey,
        signature: ed25519Sign(gov.seed, governanceSigningBytes(CHAIN, g.nonce, proposal)),
      },
    ],
  };
}

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
    expectReject(chain, chain.tx(other, [consent(chip, other.address)]), 'NOT_OWNER');
    const events = chain.block([chain.tx(miner, [consent(chip, other.address)])]);
    assert.ok(events.some((e) => e.type === 'chipTransferred'));
    assert.deepEqual(getChip(chain.state, chipId)!.owner, other.address);
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
    // Registered in epoch 0: its first slots are in epoch 1 (heights 21…40).
    chain.blocksUntil(21n);
    const slots = slotsOf(chain, chip, 1n);
    assert.equal(slots.length, 4);
    assert.equal(new Set(slots.map(String)).size, 4);
    const order = slots.map((h, j) => ({ h, j })).sort((a, b) => (a.h < b.h ? -1 : 1));
    const first = order[0]!;
    if (chain.height < first.h) {
      // Not yet committed: refused as not open.
      expectReject(
        chain,
        chain.tx(miner, [{ type: 'heartbeat', answers: [answer(chain, chip, 1n, first.j)] }], 0n),
        'SLOT_NOT_OPEN',
      );
    }
    chain.blocksUntil(first.h);
    const hb = chain.tx(miner, [{ type: 'heartbeat', answers: [answer(chain, chip, 1n, first.j)] }], 0n);
    assert.equal(hb.stx.tx.fee, 0n, 'heartbeats are fee-free');
    const events = chain.block([hb]);
    assert.ok(events.some((e) => e.type === 'slotAnswered'));
    assert.equal(getChip(chain.state, chipId)!.slotsAnswered, 1n);
    // The same answer again (new nonce): replay.
    expectReject(
      chain,
      chain.tx(miner, [{ type: 'heartbeat', answers: [answer(chain, chip, 1n, first.j)] }], 0n),
      'ANSWER_REPLAYED',
    );
    // Forged: signed by another key.
    const second = order[1]!;
    chain.blocksUntil(second.h);
    const forged = answer(chain, key('not-the-chip'), 1n, second.j);
    forged.chipId = chipId;
    expectReject(
      chain,
      chain.tx(miner, [{ type: 'heartbeat', answers: [forged] }], 0n),
      'ATTEST_BAD_SIGNATURE',
    );
    // Evidence of another profile for this dev-soft chip.
    const third = order[2]!;
    chain.blocksUntil(third.h);
    const wrongProfile: HeartbeatAnswer = {
      ...answer(chain, chip, 1n, third.j),
      evidence: { type: 'tpm2', attest: new Uint8Array(64), signature: new Uint8Array(64) },
    };
    expectReject(
      chain,
      chain.tx(miner, [{ type: 'heartbeat', answers: [wrongProfile] }], 0n),
      'ATTEST_WRONG_PROFILE',
    );
    // Too late: after the window of W blocks.
    chain.blocksUntil(second.h + POCI.answerWindowBlocks);
    expectReject(
      chain,
      chain.tx(miner, [{ type: 'heartbeat', answers: [answer(chain, chip, 1n, second.j)] }], 0n),
      'ANSWER_TOO_LATE',
    );
  });

  test('after K missed slots the chip is offline; its next answer brings it back and records the misses', () => {
    const { chain, chip, chipId } = registered();
    const p = POCI;
    // Miss every slot of epochs 1 and 2.
    chain.blocksUntil(61n);
    const rec = getChip(chain.state, chipId)!;
    assert.ok(consecutiveMisses(rec, chain.height, p, seedLookup(chain.state)) >= p.offlineAfterMisses);
    assert.equal(isOnline(rec, chain.height, p, seedLookup(chain.state)), false);
    // Answer the first slot of epoch 3.
    const slots = slotsOf(chain, chip, 3n);
    const j = slots.indexOf(slots.reduce((a, b) => (a < b ? a : b)));
    chain.blocksUntil(slots[j]!);
    const events = chain.block([
      chain.tx(miner, [{ type: 'heartbeat', answers: [answer(chain, chip, 3n, j)] }], 0n),
    ]);
    const missed = events.filter((e) => e.type === 'slotMissed');
    assert.equal(missed.length, 8, 'the 8 slots of epochs 1 and 2 are recorded as missed, with a reason');
    assert.match((missed[0] as { reason: string }).reason, /no answer included by height/);
    const after = getChip(chain.state, chipId)!;
    assert.equal(after.slotsMissed, 8n);
    assert.equal(isOnline(after, chain.height, p, seedLookup(chain.state)), true);
  });

  test('deregistered and revoked chips cannot answer', () => {
    const { chain, chip, chipId } = registered();
    chain.block([chain.tx(miner, [govAction(chain, { type: 'revokeChip', chipId, reason: 'key leaked' })])]);
    chain.blocksUntil(40n);
    const slots = slotsOf(chain, chip, 1n);
    const open = slots.findIndex((h) => h < chain.height && chain.height <= h + POCI.answerWindowBlocks);
    const j = Math.max(open, 0);
    expectReject(
      chain,
      chain.tx(miner, [{ type: 'heartbeat', answers: [answer(chain, chip, 1n, j)] }], 0n),
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
    assert.equal(effectiveStatus(chain.state, chip()).status, 'active');
    // Walk to an open answer window of epoch 1 and answer it: accepted while listed.
    chain.blocksUntil(POCI.epochBlocks + 1n);
    const heights = slotHeights(seedLookup(chain.state)(1n)!, chipId, 1n, POCI);
    const rsaAnswer = (slot: number) => ({
      chipId,
      epoch: 1n,
      slot,
      evidence: {
        type: 'rsa2048-allowlist' as const,
        signature: rsaSign(heartbeatChallenge(CHAIN, chipId, chain.hashOf(heights[slot]!))),
      },
    });
    const [first, second] = heights.map((h, slot) => ({ h, slot })).sort((a, b) => (a.h < b.h ? -1 : 1));
    chain.blocksUntil(first!.h);
    chain.block([chain.tx(miner, [{ type: 'heartbeat', answers: [rsaAnswer(first!.slot)] }], 0n)]);
    assert.equal(chip().slotsAnswered, 1n);
    // The foundation de-lists the key: the very next answer is refused, the chip is revoked.
    chain.block([
      chain.tx(miner, [govAction(chain, { type: 'setAllowlist', entry: { ...entry, allowed: false } })]),
    ]);
    assert.equal(effectiveStatus(chain.state, chip()).status, 'revoked');
    if (second && second.h > chain.height) chain.blocksUntil(second.h);
    const late = second ?? first!;
    expectReject(
      chain,
      chain.tx(miner, [{ type: 'heartbeat', answers: [rsaAnswer(late.slot)] }], 0n),
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
    const first = govAction(chain, { type: 'revokeSerial', vendorId: 'dev', serial: 'ab', revoked: true });
    chain.block([chain.tx(other, [first])]);
    expectReject(chain, chain.tx(other, [first]), 'GOV_BAD_APPROVAL');
    chain.block([chain.tx(miner, [{ type: 'deregisterChip', chipId }])]);
    assert.equal(getChip(chain.state, chipId)!.status, 1);
  });
});

describe('POCI: slot schedule properties', () => {
  test('deterministic, distinct, inside the epoch, and different under another seed', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.bigInt({ min: 0n, max: 1_000_000n }),
        (seed, chipId, epoch) => {
          const p = { epochBlocks: 3600n, slotsPerEpoch: 4 };
          const a = slotHeights(seed, chipId, epoch, p);
          assert.deepEqual(slotHeights(seed, chipId, epoch, p), a);
          assert.equal(new Set(a.map(String)).size, 4);
          for (const h of a) assert.equal(epochOf(h, p), epoch);
        },
      ),
    );
  });

  test('evenly spread: slot offsets over many chips fill the epoch uniformly (chi-square)', () => {
    const p = { epochBlocks: 100n, slotsPerEpoch: 4 };
    const buckets = new Array(10).fill(0);
    const seed = sha256(utf8('seed'));
    const n = 5000;
    for (let i = 0; i < n; i++) {
      for (const h of slotHeights(seed, sha256(utf8(`chip ${i}`)), 0n, p)) buckets[Number((h - 1n) / 10n)]++;
    }
    const expected = (n * 4) / 10;
    const chi2 = buckets.reduce((s, o) => s + (o - expected) ** 2 / expected, 0);
    assert.ok(chi2 < 27.9, `chi-square ${chi2.toFixed(1)} over 9 degrees of freedom (p < 0.001 cut-off)`);
  });

  test('unknowable before its seed: one bit of seed changes the schedule', () => {
    const p = { epochBlocks: 3600n, slotsPerEpoch: 4 };
    let same = 0;
    for (let i = 0; i < 200; i++) {
      const seed = sha256(utf8(`s${i}`));
      const flipped = seed.slice();
      flipped[i % 32]! ^= 1;
      const chip = sha256(utf8(`c${i}`));
      if (slotHeights(seed, chip, 5n, p).join() === slotHeights(flipped, chip, 5n, p).join()) same++;
    }
    assert.equal(same, 0);
  });

  test('property: no answer is ever counted twice, whatever the order of attempts', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 10 }), (attempts) => {
        const chain = new TestChain();
        chain.blocksUntil(2n);
        const chip = key('chip-prop');
        chain.block([chain.tx(miner, [registerAction(chain, chip, miner.address)])]);
        chain.blocksUntil(21n);
        let accepted = 0;
        for (const j of attempts) {
          const h = slotsOf(chain, chip, 1n)[j]!;
          if (chain.height < h) chain.blocksUntil(h);
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
