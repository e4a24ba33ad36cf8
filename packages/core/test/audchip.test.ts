/**
 * Audit audchip (docs/security-audit-chips.md): what an attacker without a chip, or with one, gets
 * from registration and heartbeats. C2, C6 and C3's record are fixed (chipleft, CONSENSUS CHANGE),
 * C4 in review revchip: their tests say what holds now; C3's global chip ids stay (a design choice).
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { children, parseDer } from '../src/attestation/der.js';
import {
  canonicalAllowlistKey,
  certificateRevocationId,
  certificatesExpired,
  devSoftChipId,
  earliestNotAfterMs,
  ed25519Sign,
  effectiveStatus,
  getChip,
  networkAggregates,
  parseCertificate,
  REVOKED_CHIP_GRACE_EPOCHS,
  registrationMessage,
  rsaAllowListChipId,
  type TxEvent,
  transferMessage,
} from '../src/index.js';
import { der, ext, type Issued, issue, issueCa, name } from './attestation/helpers.js';
import {
  CHAIN,
  genesis,
  govAction,
  key,
  miner,
  other,
  POCI,
  registerAction,
  TestChain,
  untilChipChallenged,
} from './harness.js';
import {
  akCertificate,
  type Clock,
  FixtureTpm,
  TPM_MODEL,
  TPM_POWER,
  TPM_VENDOR,
  timeAttest,
  tpmRegisterAction,
  tpmSign,
  withTpmVendor,
} from './tpm-chip.js';

const registeredId = (events: TxEvent[]): Uint8Array => {
  const e = events.find((x) => x.type === 'chipRegistered') as { chipId: Uint8Array } | undefined;
  assert.ok(e, `registered: ${JSON.stringify(events.map((x) => x.type))}`);
  return e.chipId;
};

/** An AK certificate like tpm-chip.ts's, with the issuer, device name and validity a test picks. */
function akCert(
  issuer: Issued,
  ak: { publicKey: import('node:crypto').KeyObject; privateKey: import('node:crypto').KeyObject },
  device: Uint8Array,
  notAfter?: string,
): Uint8Array {
  const hmn = der.seq(
    der.ctx(
      0,
      true,
      new Uint8Array([
        ...der.oid('1.3.6.1.5.5.7.8.4'),
        ...der.ctx(0, true, der.seq(der.oid('1.3.6.1.4.1.99999.1.1'), der.octet(device))),
      ]),
    ),
  );
  return issue({
    subject: name('AK', [['2.23.133.2.2', TPM_MODEL]]),
    issuer,
    keyPair: ak,
    ...(notAfter ? { notAfter } : {}),
    extensions: ({ ski }) => [ext.ski(ski), ext.aki(issuer.ski), ext.raw('2.5.29.17', false, hmn)],
  }).der;
}

describe('audchip C2 (fixed, CONSENSUS CHANGE): a chip stops earning once its certificates expire', () => {
  test('a tpm2 chip whose AK certificate has expired at block time reads revoked: its answer is refused, and it registers again with a fresh certificate', () => {
    const root = issueCa('TPM Vendor Root');
    const chain = new TestChain(withTpmVendor(genesis(POCI), root));
    chain.blocksUntil(3n);
    // The AK certificate expires five seconds after the block that registers the chip.
    const notAfterMs = chain.time + 1000n + 5000n;
    const device = Uint8Array.of(0xc2);
    const tpm = new FixtureTpm(root, device);
    const cert = akCert(root, tpm.ak, device, new Date(Number(notAfterMs)).toISOString());
    Object.assign(tpm, { cert });
    const t0 = chain.time;
    const now = (): Clock => ({ clock: 1_000n + (chain.time - t0), resetCount: 1, restartCount: 0 });
    tpm.chipId = registeredId(chain.block([chain.tx(miner, [tpm.register(chain, miner.address, now())])]));
    // The record keeps the path's earliest end (the AK's; the root's is 2036).
    let chip = getChip(chain.state, tpm.chipId)!;
    assert.equal(chip.certsNotAfter, notAfterMs);
    assert.equal(effectiveStatus(chain.state, chip, notAfterMs + 999n).status, 'active');
    chain.blocksUntil(POCI.epochBlocks);
    const c = untilChipChallenged(chain, tpm.chipId);
    assert.ok(chain.time > notAfterMs + 1000n, 'the certificate has expired at block time');
    // Before the fix the answer was accepted and counted (slotsAnswered 1, status active).
    const err = chain.attempt(
      chain.tx(miner, [{ type: 'heartbeat', answers: [tpm.answer(chain, c.epoch, c.slot, now())] }], 0n),
    );
    assert.equal(err?.code, 'CHIP_INACTIVE', err?.message);
    assert.match(err!.message, /certificate of its registration expired at .*fresh certificates/);
    chip = getChip(chain.state, tpm.chipId)!;
    assert.equal(chip.slotsAnswered, 0n);
    const status = effectiveStatus(chain.state, chip, chain.time);
    assert.equal(status.status, 'revoked');
    assert.match(status.reason, new RegExp(new Date(Number(notAfterMs)).toISOString()));
    // Without a block time the record reads as it is; network sums take the block's kept time.
    assert.equal(effectiveStatus(chain.state, chip, null).status, 'active');
    assert.equal(networkAggregates(chain.state, [chip], chain.height).activeChips, 0);
    // Nor is it transferred (as a revoked chip is not).
    const sell = chain.attempt(
      chain.tx(miner, [
        {
          type: 'transferChip',
          chipId: tpm.chipId,
          newOwner: other.address,
          anchorHeight: chain.height,
          consent: { type: 'dev-soft', signature: new Uint8Array(64) },
        },
      ]),
    );
    assert.equal(sell?.code, 'CHIP_INACTIVE', sell?.message);
    // The owner deregisters it and registers it with a fresh certificate from its vendor.
    chain.block([chain.tx(miner, [{ type: 'deregisterChip', chipId: tpm.chipId }])]);
    const dereg = getChip(chain.state, tpm.chipId)!;
    assert.equal(effectiveStatus(chain.state, dereg, chain.time).status, 'deregistered');
    assert.match(dereg.statusReason, /^deregistered by its owner once revoked: a certificate/);
    Object.assign(tpm, { cert: akCert(root, tpm.ak, device) });
    chain.block([chain.tx(miner, [tpm.register(chain, miner.address, now())])]);
    chip = getChip(chain.state, tpm.chipId)!;
    assert.equal(effectiveStatus(chain.state, chip, chain.time).status, 'active');
    assert.equal(chip.certsNotAfter, BigInt(Date.parse('2036-01-01T00:00:00Z')));
    // A registration of the expired certificate is refused, as before.
    const again = new TestChain(withTpmVendor(genesis(POCI), root));
    again.blocksUntil(chain.height);
    Object.assign(tpm, { cert });
    assert.equal(
      again.attempt(again.tx(other, [tpm.register(again, other.address, now())]))?.code,
      'ATTEST_CERT_EXPIRED',
    );
  });

  test('a path ends with its earliest-ending certificate, the root included', () => {
    const ends = [5_000n, 2_000n, 9_000n].map((notAfterMs) => ({ notAfterMs }));
    assert.equal(earliestNotAfterMs(ends), 2_000n);
    const chip = { certsNotAfter: 2_000n };
    // Valid through the last millisecond of its second, as the registration's check reads it.
    assert.equal(certificatesExpired(chip, 2_999n), false);
    assert.equal(certificatesExpired(chip, 3_000n), true);
    assert.equal(certificatesExpired({ certsNotAfter: null }, 10n ** 15n), false);
  });
});

/** Chain with an honest TPM vendor and a rogue one trusting another root, at height 3. */
function twoVendorChain() {
  const rootA = issueCa('Honest TPM Vendor Root');
  const rootB = issueCa('Rogue TPM Vendor Root');
  const base = withTpmVendor(genesis(POCI), rootA);
  const chain = new TestChain({
    ...base,
    vendors: [...base.vendors, { id: 'rogue', name: 'Rogue', profile: 'tpm2', roots: [rootB.der] }],
    models: [...base.models, { vendorId: 'rogue', modelId: TPM_MODEL, name: 'tpu', power: TPM_POWER }],
  });
  chain.blocksUntil(3n);
  return { chain, rootA, rootB };
}

describe('audchip C3 (LOW, partly fixed, CONSENSUS CHANGE): device names are chip ids across every vendor', () => {
  test("another vendor's CA certifying this chip's device name takes its chip id; once its certificate is revoked, anyone deregisters the record and the real device registers", () => {
    const { chain, rootA, rootB } = twoVendorChain();
    const device = Uint8Array.of(0x0a, 0x0b, 0x0c);
    const honest = new FixtureTpm(rootA, device);
    // The rogue vendor's CA names the honest chip's device (its hwType and hwSerialNum) for a key of its own.
    const squatter = new FixtureTpm(rootB, device);
    const clock: Clock = { clock: 1_000n, resetCount: 1, restartCount: 0 };
    const squat = squatter.register(chain, other.address, clock);
    assert.equal(squat.evidence.type, 'tpm2');
    const rogueAction = { ...squat, evidence: { ...squat.evidence, vendorId: 'rogue' } };
    const squatId = registeredId(chain.block([chain.tx(other, [rogueAction])]));
    const err = chain.attempt(chain.tx(miner, [honest.register(chain, miner.address, clock)]));
    assert.equal(err?.code, 'CHIP_ALREADY_REGISTERED', err?.message);
    // Nobody but its owner deregisters an active chip.
    const early = chain.attempt(chain.tx(miner, [{ type: 'deregisterChip', chipId: squatId }]));
    assert.equal(early?.code, 'NOT_OWNER', early?.message);
    // Governance revokes the rogue certificate: the squatting record is revoked, and keeps the id.
    const id = certificateRevocationId(parseCertificate(squatter.cert));
    chain.block([
      chain.tx(miner, [
        govAction(chain, { type: 'revokeSerial', vendorId: 'rogue', serial: id, revoked: true }),
      ]),
    ]);
    assert.equal(effectiveStatus(chain.state, getChip(chain.state, squatId)!, null).status, 'revoked');
    const after = chain.attempt(chain.tx(miner, [honest.register(chain, miner.address, clock)]));
    assert.equal(after?.code, 'CHIP_ALREADY_REGISTERED', after?.message);
    // Before the fix nobody could free it (CHIP_INACTIVE, its owner included): now anyone can, once
    // it has been silent for the grace (review revchipleft: a revocation governance undoes in time
    // costs an honest owner nothing).
    const grace = chain.attempt(chain.tx(miner, [{ type: 'deregisterChip', chipId: squatId }]));
    assert.equal(grace?.code, 'NOT_OWNER', grace?.message);
    chain.blocksUntil(
      getChip(chain.state, squatId)!.registeredAt + REVOKED_CHIP_GRACE_EPOCHS * POCI.epochBlocks,
    );
    const events = chain.block([chain.tx(miner, [{ type: 'deregisterChip', chipId: squatId }])]);
    const gone = events.find((e) => e.type === 'chipDeregistered') as { owner: Uint8Array } | undefined;
    assert.deepEqual(gone?.owner, other.address, 'the event names the owner the chip left');
    const record = getChip(chain.state, squatId)!;
    assert.equal(record.status, 1);
    assert.match(record.statusReason, /once revoked: certificate .* revoked by vendor rogue/);
    assert.equal(
      registeredId(chain.block([chain.tx(miner, [honest.register(chain, miner.address, clock)])])).length,
      32,
    );
    assert.deepEqual(getChip(chain.state, squatId)!.owner, miner.address);
    // The squatter cannot take it back: its certificate stays revoked.
  });

  test('attack: a griefer does not deregister a chip whose certificate is revoked for a moment (a mistake governance undoes); anyone may once it has been silent for the grace', () => {
    // Anyone may free a chip revoked through its credentials; a revocation is undone by governance
    // (revokeSerial revoked: false, setAllowlist allowed again, dev-soft on again). Freed at once, a
    // whole vendor's chips, revoked for one block by a mistaken serial (an intermediate's, say),
    // were deregistered by a griefer for a fee each: every owner registered again, its chips' seats
    // and proven-online standing gone, their offers' chips bound by nobody.
    const { chain, rootA } = twoVendorChain();
    const tpm = new FixtureTpm(rootA, Uint8Array.of(0x3c));
    const clock: Clock = { clock: 1_000n, resetCount: 1, restartCount: 0 };
    const chipId = registeredId(chain.block([chain.tx(other, [tpm.register(chain, other.address, clock)])]));
    const serial = certificateRevocationId(parseCertificate(tpm.cert));
    const revoke = (revoked: boolean) =>
      chain.block([
        chain.tx(miner, [govAction(chain, { type: 'revokeSerial', vendorId: TPM_VENDOR, serial, revoked })]),
      ]);
    revoke(true);
    assert.equal(effectiveStatus(chain.state, getChip(chain.state, chipId)!, chain.time).status, 'revoked');
    const grief = chain.attempt(chain.tx(miner, [{ type: 'deregisterChip', chipId }]));
    assert.equal(grief?.code, 'NOT_OWNER', grief?.message);
    assert.match(grief!.message, /silent/);
    revoke(false);
    assert.equal(effectiveStatus(chain.state, getChip(chain.state, chipId)!, chain.time).status, 'active');
    // Revoked for good: once the chip has been silent for the grace, anyone frees it.
    revoke(true);
    const quietFrom = getChip(chain.state, chipId)!.registeredAt;
    chain.blocksUntil(quietFrom + REVOKED_CHIP_GRACE_EPOCHS * POCI.epochBlocks - 2n);
    const still = chain.attempt(chain.tx(miner, [{ type: 'deregisterChip', chipId }]));
    assert.equal(still?.code, 'NOT_OWNER', still?.message);
    chain.block();
    const events = chain.block([chain.tx(miner, [{ type: 'deregisterChip', chipId }])]);
    assert.ok(events.some((e) => e.type === 'chipDeregistered'));
  });

  test('a chip governance revoked by name (revokeChip) is not deregistered, by its owner or anyone: that revocation is a ban', () => {
    const { chain, rootA } = twoVendorChain();
    const tpm = new FixtureTpm(rootA, Uint8Array.of(0x33));
    const clock: Clock = { clock: 1_000n, resetCount: 1, restartCount: 0 };
    const chipId = registeredId(chain.block([chain.tx(other, [tpm.register(chain, other.address, clock)])]));
    chain.block([chain.tx(miner, [govAction(chain, { type: 'revokeChip', chipId, reason: 'banned' })])]);
    for (const [who, code] of [
      [other, 'CHIP_INACTIVE'],
      [miner, 'NOT_OWNER'],
    ] as const) {
      const err = chain.attempt(chain.tx(who, [{ type: 'deregisterChip', chipId }]));
      assert.equal(err?.code, code, err?.message);
    }
  });

  test('chipint: a chip whose model governance removed is not freed for anyone, even after the grace: re-adding the model makes it active again', () => {
    // The grace rule is for credential revocations only (review chipint): a removed model's chip
    // reads revoked (modelpower), but governance re-adding the model restores it, so a third
    // party's deregistration stays refused however long the chip has been silent.
    const { chain, rootA } = twoVendorChain();
    const tpm = new FixtureTpm(rootA, Uint8Array.of(0x3d));
    const clock: Clock = { clock: 1_000n, resetCount: 1, restartCount: 0 };
    const chipId = registeredId(chain.block([chain.tx(other, [tpm.register(chain, other.address, clock)])]));
    chain.block([
      chain.tx(miner, [govAction(chain, { type: 'removeModel', vendorId: TPM_VENDOR, modelId: TPM_MODEL })]),
    ]);
    const removed = effectiveStatus(chain.state, getChip(chain.state, chipId)!, chain.time);
    assert.equal(removed.status, 'revoked');
    assert.match(removed.reason, /removed by governance/);
    chain.blocksUntil(
      getChip(chain.state, chipId)!.registeredAt + REVOKED_CHIP_GRACE_EPOCHS * POCI.epochBlocks + 1n,
    );
    for (const [who, code] of [
      [miner, 'NOT_OWNER'],
      [other, 'CHIP_INACTIVE'],
    ] as const) {
      const err = chain.attempt(chain.tx(who, [{ type: 'deregisterChip', chipId }]));
      assert.equal(err?.code, code, err?.message);
    }
    chain.block([
      chain.tx(miner, [
        govAction(chain, {
          type: 'setModel',
          model: { vendorId: TPM_VENDOR, modelId: TPM_MODEL, name: 'tpu', power: TPM_POWER },
        }),
      ]),
    ]);
    const back = getChip(chain.state, chipId)!;
    assert.equal(back.status, 0);
    assert.equal(effectiveStatus(chain.state, back, chain.time).status, 'active');
  });
});

/** An RSA-2048 chip key as node:crypto (and `unc vendor`) encode it, and the same key without the NULL. */
function rsaChipKey() {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const spki = new Uint8Array(rsa.publicKey.export({ type: 'spki', format: 'der' }));
  // The same key with the rsaEncryption parameters left out: the one other encoding the SPKI parser
  // takes (RFC 3279 says NULL).
  const [, bits] = children(parseDer(spki));
  const bare = der.seq(der.seq(der.oid('1.2.840.113549.1.1.1')), bits!.der);
  return { rsa, spki, bare };
}

/** A chain with an rsa2048-allowlist vendor and a model of it, at height 2. */
function allowlistChain(): TestChain {
  const base = genesis();
  const chain = new TestChain(
    genesis(POCI, {
      vendors: [
        ...base.vendors,
        { id: 'unc-foundation', name: 'f', profile: 'rsa2048-allowlist', roots: [] },
      ],
      models: [...base.models, { vendorId: 'unc-foundation', modelId: 'unc-a', name: 'a', power: 100_000n }],
    }),
  );
  chain.blocksUntil(2n);
  return chain;
}

describe('audchip C4 (fixed, CONSENSUS CHANGE): the RSA allow-list takes a key in its one encoding', () => {
  test('a removal naming the listed key in its other encoding removes it: the chip is revoked', () => {
    const { rsa, spki, bare } = rsaChipKey();
    assert.notDeepEqual(bare, spki);
    const chain = allowlistChain();
    const entry = { vendorId: 'unc-foundation', publicKey: spki, modelId: 'unc-a', allowed: true };
    chain.block([chain.tx(miner, [govAction(chain, { type: 'setAllowlist', entry })])]);
    const anchor = chain.height;
    const message = registrationMessage(CHAIN, miner.address, chain.hashOf(anchor));
    const signature = new Uint8Array(sign('sha256', message, rsa.privateKey));
    chain.block([
      chain.tx(miner, [
        {
          type: 'registerChip',
          anchorHeight: anchor,
          evidence: { type: 'rsa2048-allowlist', vendorId: 'unc-foundation', publicKey: spki, signature },
        },
      ]),
    ]);
    const chipId = rsaAllowListChipId(spki);
    assert.equal(effectiveStatus(chain.state, getChip(chain.state, chipId)!, null).status, 'active');
    // Before the fix the removal was keyed by these other bytes, removed nothing, and the chip kept
    // answering and earning.
    const removal = { ...entry, publicKey: bare, allowed: false };
    chain.block([chain.tx(miner, [govAction(chain, { type: 'setAllowlist', entry: removal })])]);
    assert.equal(effectiveStatus(chain.state, getChip(chain.state, chipId)!, null).status, 'revoked');
  });

  test("the one encoding is node:crypto's, whatever the exponent; a removal's key is mapped to it", () => {
    for (const publicExponent of [3, 65537]) {
      const rsa = generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent });
      const spki = new Uint8Array(rsa.publicKey.export({ type: 'spki', format: 'der' }));
      const [, bits] = children(parseDer(spki));
      const bare = der.seq(der.seq(der.oid('1.2.840.113549.1.1.1')), bits!.der);
      assert.deepEqual(rsaAllowListChipId(spki).length, 32);
      assert.throws(() => rsaAllowListChipId(bare), /one encoding/);
      assert.deepEqual(canonicalAllowlistKey(spki), spki);
      assert.deepEqual(canonicalAllowlistKey(bare), spki);
    }
    assert.equal(canonicalAllowlistKey(new Uint8Array([0x30, 0x00])), null);
  });

  test('a listing or a registration in the other encoding is refused', () => {
    const { rsa, spki, bare } = rsaChipKey();
    const chain = allowlistChain();
    const listing = { vendorId: 'unc-foundation', publicKey: bare, modelId: 'unc-a', allowed: true };
    const refused = chain.attempt(
      chain.tx(miner, [govAction(chain, { type: 'setAllowlist', entry: listing })]),
    );
    assert.equal(refused?.code, 'BAD_ALLOWLIST_KEY', refused?.message);
    // Listed in the canonical encoding, the chip registers only with the key so encoded.
    const entry = { ...listing, publicKey: spki };
    chain.block([chain.tx(miner, [govAction(chain, { type: 'setAllowlist', entry })])]);
    const anchor = chain.height;
    const message = registrationMessage(CHAIN, miner.address, chain.hashOf(anchor));
    const signature = new Uint8Array(sign('sha256', message, rsa.privateKey));
    const register = (publicKey: Uint8Array) =>
      chain.tx(miner, [
        {
          type: 'registerChip',
          anchorHeight: anchor,
          evidence: { type: 'rsa2048-allowlist', vendorId: 'unc-foundation', publicKey, signature },
        },
      ]);
    const other = chain.attempt(register(bare));
    assert.equal(other?.code, 'ATTEST_MALFORMED', other?.message);
    assert.equal(chain.attempt(register(spki)), null);
  });
});

describe('audchip C6 (fixed, CONSENSUS CHANGE): a registration anchored before the chip last changed hands is refused', () => {
  test('the seller cannot re-register the chip with evidence signed before the sale once the buyer deregisters it', () => {
    const chain = new TestChain();
    chain.blocksUntil(3n);
    const chip = key('audchip-sold');
    const chipId = devSoftChipId(chip.publicKey);
    // The seller (miner) registers the chip, and keeps a second registration the chip signed for it.
    const kept = registerAction(chain, chip, miner.address);
    chain.block([chain.tx(miner, [registerAction(chain, chip, miner.address)])]);
    const anchor = chain.height;
    const consent = {
      type: 'transferChip' as const,
      chipId,
      newOwner: other.address,
      anchorHeight: anchor,
      consent: {
        type: 'dev-soft' as const,
        signature: ed25519Sign(
          chip.seed,
          transferMessage(CHAIN, chipId, other.address, chain.hashOf(anchor)),
        ),
      },
    };
    chain.block([chain.tx(miner, [consent])]);
    const soldAt = chain.height;
    assert.deepEqual(getChip(chain.state, chipId)!.owner, other.address);
    assert.equal(getChip(chain.state, chipId)!.releasedAt, soldAt);
    // The buyer deregisters it (to register it again, say). Before the fix the seller's kept
    // evidence registered it first, without the chip's consent, while its anchor was recent.
    chain.block([chain.tx(other, [{ type: 'deregisterChip', chipId }])]);
    assert.equal(getChip(chain.state, chipId)!.releasedAt, chain.height);
    assert.ok(chain.height - kept.anchorHeight <= 100n);
    const err = chain.attempt(chain.tx(miner, [kept]));
    assert.equal(err?.code, 'ANCHOR_BEFORE_RELEASE', err?.message);
    // The buyer registers it with evidence the chip signs now.
    const events = chain.block([chain.tx(other, [registerAction(chain, chip, other.address)])]);
    assert.ok(events.some((e) => e.type === 'chipRegistered'));
    assert.deepEqual(getChip(chain.state, chipId)!.owner, other.address);
  });

  test('evidence signed before its own deregistration does not register the chip again; evidence anchored at the deregistration block does', () => {
    const chain = new TestChain();
    chain.blocksUntil(3n);
    const chip = key('audchip-given-up');
    const chipId = devSoftChipId(chip.publicKey);
    const kept = registerAction(chain, chip, miner.address);
    chain.block([chain.tx(miner, [registerAction(chain, chip, miner.address)])]);
    chain.block([chain.tx(miner, [{ type: 'deregisterChip', chipId }])]);
    const releasedAt = chain.height;
    // The device may have gone to someone else off chain: the old evidence registers it no more.
    const err = chain.attempt(chain.tx(miner, [kept]));
    assert.equal(err?.code, 'ANCHOR_BEFORE_RELEASE', err?.message);
    const before = chain.attempt(
      chain.tx(other, [registerAction(chain, chip, other.address, releasedAt - 1n)]),
    );
    assert.equal(before?.code, 'ANCHOR_BEFORE_RELEASE', before?.message);
    // A signature over the deregistration block's hash was made after it.
    chain.block([chain.tx(other, [registerAction(chain, chip, other.address, releasedAt)])]);
    const record = getChip(chain.state, chipId)!;
    assert.deepEqual(record.owner, other.address);
    assert.equal(record.releasedAt, releasedAt, "a registration keeps the record's release height");
  });
});

describe('audchip C6 through the TPM index (review revchipleft): the release bound holds for the TPM, not only for one chip id', () => {
  test("attack: the seller's kept evidence for the TPM's other chip id (its AK certified without a device name) does not register it once the buyer deregisters it", () => {
    // One TPM answers for one chip (refuseHeldAttestationKey) but may carry two chip ids: its
    // device name's and, certified without one, its AK's. The release bound read only the record of
    // the chip id registered, so the seller's evidence for the other id, kept from before the sale,
    // registered the TPM again without it once the buyer deregistered it: the buyer was locked out
    // of its own chip (CHIP_ALREADY_REGISTERED, one TPM is one chip) until the seller let it go.
    const root = issueCa('TPM Vendor Root');
    const chain = new TestChain(withTpmVendor(genesis(POCI), root));
    chain.blocksUntil(3n);
    const ak = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const named = akCertificate(root, ak, Uint8Array.of(0xc6, 1));
    const bare = akCertificate(root, ak, null);
    const clock = (n: bigint): Clock => ({ clock: 1000n + n, resetCount: 1, restartCount: 0 });
    const kept = tpmRegisterAction(chain, miner.address, ak, bare, clock(0n));
    const chipId = registeredId(
      chain.block([chain.tx(miner, [tpmRegisterAction(chain, miner.address, ak, named, clock(1n))])]),
    );
    const anchor = chain.height;
    const attest = timeAttest(transferMessage(CHAIN, chipId, other.address, chain.hashOf(anchor)), clock(2n));
    chain.block([
      chain.tx(miner, [
        {
          type: 'transferChip',
          chipId,
          newOwner: other.address,
          anchorHeight: anchor,
          consent: { type: 'tpm2', attest, signature: tpmSign(ak.privateKey, attest) },
        },
      ]),
    ]);
    chain.block([chain.tx(other, [{ type: 'deregisterChip', chipId }])]);
    assert.ok(chain.height - kept.anchorHeight <= 100n);
    const err = chain.attempt(chain.tx(miner, [kept]));
    assert.equal(err?.code, 'ANCHOR_BEFORE_RELEASE', err?.message);
    // The buyer registers its chip again, with evidence the TPM signs now.
    chain.block([chain.tx(other, [tpmRegisterAction(chain, other.address, ak, named, clock(3n))])]);
    assert.deepEqual(getChip(chain.state, chipId)!.owner, other.address);
  });

  test("evidence for the TPM's other chip id signed after the release registers it", () => {
    const root = issueCa('TPM Vendor Root');
    const chain = new TestChain(withTpmVendor(genesis(POCI), root));
    chain.blocksUntil(3n);
    const ak = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const clock = (n: bigint): Clock => ({ clock: 1000n + n, resetCount: 1, restartCount: 0 });
    const named = akCertificate(root, ak, Uint8Array.of(0xc6, 2));
    const chipId = registeredId(
      chain.block([chain.tx(miner, [tpmRegisterAction(chain, miner.address, ak, named, clock(0n))])]),
    );
    chain.block([chain.tx(miner, [{ type: 'deregisterChip', chipId }])]);
    const bare = akCertificate(root, ak, null);
    const other = registeredId(
      chain.block([chain.tx(miner, [tpmRegisterAction(chain, miner.address, ak, bare, clock(1n))])]),
    );
    assert.notDeepEqual(other, chipId);
  });
});

describe('audchip C6 property: the release bound', () => {
  test('property: evidence anchored at height a registers a deregistered chip again iff a is at or after its last release', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 4 }),
        fc.integer({ min: 0, max: 4 }),
        fc.boolean(),
        fc.nat(),
        (before, after, sold, pick) => {
          const chain = new TestChain();
          chain.blocksUntil(3n);
          const chip = key(`audchip-release-${before}-${after}-${sold}`);
          const chipId = devSoftChipId(chip.publicKey);
          chain.block([chain.tx(miner, [registerAction(chain, chip, miner.address)])]);
          chain.blocksUntil(chain.height + BigInt(before));
          let holder = miner;
          if (sold) {
            const anchor = chain.height;
            const message = transferMessage(CHAIN, chipId, other.address, chain.hashOf(anchor));
            chain.block([
              chain.tx(miner, [
                {
                  type: 'transferChip',
                  chipId,
                  newOwner: other.address,
                  anchorHeight: anchor,
                  consent: { type: 'dev-soft', signature: ed25519Sign(chip.seed, message) },
                },
              ]),
            ]);
            holder = other;
          }
          chain.block([chain.tx(holder, [{ type: 'deregisterChip', chipId }])]);
          const releasedAt = chain.height;
          assert.equal(getChip(chain.state, chipId)!.releasedAt, releasedAt);
          chain.blocksUntil(chain.height + BigInt(after));
          // Any anchor still recent: from the registration's block to the head.
          const anchor = 3n + (BigInt(pick) % (chain.height - 2n));
          const err = chain.attempt(chain.tx(miner, [registerAction(chain, chip, miner.address, anchor)]));
          if (anchor >= releasedAt) assert.equal(err, null, err?.message);
          else assert.equal(err?.code, 'ANCHOR_BEFORE_RELEASE', err?.message);
        },
      ),
      { numRuns: 24 },
    );
  });
});
