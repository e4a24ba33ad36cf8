/**
 * tpm2 chips on a chain: registered and answered with real TPM evidence (an AK certificate from a
 * vendor root, TPMS_ATTEST signed by the AK), for the rules that live in the chain's state rather
 * than in the verifier: one TPM is one chip, and the TPM clock never goes back.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { describe, test } from 'node:test';
import {
  getChip,
  getRecentHash,
  heartbeatChallenge,
  parseSubjectPublicKeyInfo,
  registrationMessage,
  TPM_ALG,
  TPM_GENERATED_VALUE,
  type TxEnvelope,
  tpm2AkKeyId,
} from '../src/index.js';
import { der, ext, type Issued, issue, issueCa, name } from './attestation/helpers.js';
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

const VENDOR = 'tpmv';
const MODEL = 'tpu-1';

function tpmChain(root: Issued): TestChain {
  const g = genesis(POCI);
  g.vendors = [...g.vendors, { id: VENDOR, name: 'TPM vendor', profile: 'tpm2', roots: [root.der] }];
  g.models = [...g.models, { vendorId: VENDOR, modelId: MODEL, name: 'tpu', power: 100_000n }];
  const chain = new TestChain(g);
  chain.blocksUntil(3n);
  return chain;
}

/** An AK certificate for `ak` issued by the vendor root, naming the device (HardwareModuleName) or not. */
function akCertificate(
  root: Issued,
  ak: { publicKey: KeyObject; privateKey: KeyObject },
  device: Uint8Array | null,
) {
  // SubjectAltName otherName id-on-hardwareModuleName (RFC 4108) { hwType, hwSerialNum }.
  const hmn = (serial: Uint8Array) =>
    der.seq(
      der.ctx(
        0,
        true,
        new Uint8Array([
          ...der.oid('1.3.6.1.5.5.7.8.4'),
          ...der.ctx(0, true, der.seq(der.oid('1.3.6.1.4.1.99999.1.1'), der.octet(serial))),
        ]),
      ),
    );
  return issue({
    subject: name('AK', [['2.23.133.2.2', MODEL]]),
    issuer: root,
    keyPair: ak,
    extensions: ({ ski }) => [
      ext.ski(ski),
      ext.aki(root.ski),
      ...(device ? [ext.raw('2.5.29.17', false, hmn(device))] : []),
    ],
  }).der;
}

type Clock = { clock: bigint; resetCount: number; restartCount: number };

/** A TPMS_ATTEST of type TPM_ST_ATTEST_TIME over `extraData`, as a TPM makes. */
function timeAttest(extraData: Uint8Array, c: Clock): Uint8Array {
  const b = Buffer.alloc(4 + 2 + 2 + 2 + extraData.length + 17 + 8 + 8 + 17 + 8);
  let o = b.writeUInt32BE(TPM_GENERATED_VALUE, 0);
  o = b.writeUInt16BE(0x8019, o);
  o = b.writeUInt16BE(0, o); // empty qualifiedSigner
  o = b.writeUInt16BE(extraData.length, o);
  b.set(extraData, o);
  o += extraData.length;
  for (let k = 0; k < 2; k++) {
    if (k === 1) o = b.writeBigUInt64BE(123456n, o); // TPMS_TIME_INFO.time
    o = b.writeBigUInt64BE(c.clock, o);
    o = b.writeUInt32BE(c.resetCount, o);
    o = b.writeUInt32BE(c.restartCount, o);
    o = b.writeUInt8(1, o);
    o = b.writeBigUInt64BE(0x2019102300163636n, o);
  }
  return new Uint8Array(b);
}

/** TPMT_SIGNATURE (ECDSA P-256, SHA-256) over `data` by the AK. */
function tpmSign(ak: KeyObject, data: Uint8Array): Uint8Array {
  const raw = new Uint8Array(sign('sha256', data, { key: ak, dsaEncoding: 'ieee-p1363' }));
  const b = Buffer.alloc(4 + 2 + 32 + 2 + 32);
  let o = b.writeUInt16BE(TPM_ALG.ECDSA, 0);
  o = b.writeUInt16BE(TPM_ALG.SHA256, o);
  o = b.writeUInt16BE(32, o);
  b.set(raw.subarray(0, 32), o);
  o = b.writeUInt16BE(32, o + 32);
  b.set(raw.subarray(32), o);
  return new Uint8Array(b);
}

function register(
  chain: TestChain,
  owner: Key,
  ak: { publicKey: KeyObject; privateKey: KeyObject },
  cert: Uint8Array,
  clock: Clock = { clock: 1000n, resetCount: 1, restartCount: 0 },
): TxEnvelope {
  const anchor = chain.height;
  const message = registrationMessage(
    CHAIN,
    owner.address,
    getRecentHash(chain.state, anchor) ?? chain.hashOf(anchor),
  );
  const attest = timeAttest(message, clock);
  return chain.tx(owner, [
    {
      type: 'registerChip',
      anchorHeight: anchor,
      evidence: {
        type: 'tpm2',
        vendorId: VENDOR,
        attest,
        signature: tpmSign(ak.privateKey, attest),
        akCertificate: cert,
        chain: [],
      },
    },
  ]);
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
      heartbeat({ clock: 2000n, resetCount: 2, restartCount: 4 }),
      'TPM_CLOCK_BACKWARDS',
      /restartCount/,
    );
    assert.deepEqual(getChip(chain.state, chipId)!.tpmClock, {
      clock: 1000n,
      resetCount: 2,
      restartCount: 5,
    });
    // The same restartCount, or a reset (which starts restartCount again), is fine.
    chain.block([heartbeat({ clock: 2000n, resetCount: 2, restartCount: 5 })]);
    assert.equal(getChip(chain.state, chipId)!.slotsAnswered, 1n);
  });
});
