/**
 * tpm2 chips for chain tests, from fixtures made here: an AK (node:crypto P-256 key) certified by a
 * test vendor root, and TPMS_ATTEST structures as a TPM makes them, with the clock, resetCount and
 * restartCount a test chooses, signed by the AK. The chain checks them exactly as it checks a real
 * TPM's (the same verifier checks swtpm's quotes in attestation/tpm2.test.ts).
 */
import { generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import {
  type Genesis,
  getRecentHash,
  type HeartbeatAnswer,
  heartbeatChallenge,
  type RegisterChipAction,
  registrationMessage,
  TPM_ALG,
  TPM_GENERATED_VALUE,
} from '../src/index.js';
import { der, ext, type Issued, issue, name } from './attestation/helpers.js';
import { CHAIN, challengesOfChip, type TestChain } from './harness.js';

export const TPM_VENDOR = 'tpmv';
export const TPM_MODEL = 'tpu-1';
export const TPM_POWER = 100_000n;

/** `g` with the TPM vendor (root `root`) and its model. */
export function withTpmVendor(g: Genesis, root: Issued): Genesis {
  return {
    ...g,
    vendors: [...g.vendors, { id: TPM_VENDOR, name: 'TPM vendor', profile: 'tpm2', roots: [root.der] }],
    models: [...g.models, { vendorId: TPM_VENDOR, modelId: TPM_MODEL, name: 'tpu', power: TPM_POWER }],
  };
}

export type Clock = { clock: bigint; resetCount: number; restartCount: number };

/** A TPMS_ATTEST of type TPM_ST_ATTEST_TIME over `extraData`, as a TPM makes. */
export function timeAttest(extraData: Uint8Array, c: Clock): Uint8Array {
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
export function tpmSign(ak: KeyObject, data: Uint8Array): Uint8Array {
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

/** An AK certificate for `ak` issued by the vendor root, naming the device (HardwareModuleName) or not. */
export function akCertificate(
  root: Issued,
  ak: { publicKey: KeyObject; privateKey: KeyObject },
  device: Uint8Array | null,
): Uint8Array {
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
    subject: name('AK', [['2.23.133.2.2', TPM_MODEL]]),
    issuer: root,
    keyPair: ak,
    extensions: ({ ski }) => [
      ext.ski(ski),
      ext.aki(root.ski),
      ...(device ? [ext.raw('2.5.29.17', false, hmn(device))] : []),
    ],
  }).der;
}

/** The registerChip action of a TPM whose AK is `ak` (certificate `cert`), its evidence reading `clock`. */
export function tpmRegisterAction(
  chain: TestChain,
  owner: Uint8Array,
  ak: { publicKey: KeyObject; privateKey: KeyObject },
  cert: Uint8Array,
  clock: Clock,
): RegisterChipAction {
  const anchor = chain.height;
  const message = registrationMessage(
    CHAIN,
    owner,
    getRecentHash(chain.state, anchor) ?? chain.hashOf(anchor),
  );
  const attest = timeAttest(message, clock);
  return {
    type: 'registerChip',
    anchorHeight: anchor,
    evidence: {
      type: 'tpm2',
      vendorId: TPM_VENDOR,
      attest,
      signature: tpmSign(ak.privateKey, attest),
      akCertificate: cert,
      chain: [],
    },
  };
}

/** One TPM: its AK, certified with a device name of its own. */
export class FixtureTpm {
  readonly ak = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  readonly cert: Uint8Array;
  chipId: Uint8Array | null = null;
  constructor(root: Issued, device: Uint8Array) {
    this.cert = akCertificate(root, this.ak, device);
  }
  register(chain: TestChain, owner: Uint8Array, clock: Clock): RegisterChipAction {
    return tpmRegisterAction(chain, owner, this.ak, this.cert, clock);
  }
  /** The answer to challenge `slot` of `epoch`, the quote reading `clock`. */
  answer(chain: TestChain, epoch: bigint, slot: number, clock: Clock): HeartbeatAnswer {
    const chipId = this.chipId;
    if (!chipId) throw new Error('FixtureTpm: not registered yet');
    const slotHeight = challengesOfChip(chain, chipId, epoch)[slot];
    if (slotHeight === undefined) throw new Error(`FixtureTpm: no challenge ${slot} in epoch ${epoch}`);
    const attest = timeAttest(heartbeatChallenge(CHAIN, chipId, chain.hashOf(slotHeight)), clock);
    return {
      chipId,
      epoch,
      slot,
      evidence: { type: 'tpm2', attest, signature: tpmSign(this.ak.privateKey, attest) },
    };
  }
}
