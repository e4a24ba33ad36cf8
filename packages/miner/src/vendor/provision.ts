/**
 * `unc vendor provision`: what a vendor's production line does for each chip. It has the chip's
 * TPM derive its attestation key, checks that the key really is a restricted, TPM-bound signing
 * key that can sign a fresh quote, and certifies it under the vendor's intermediate CA.
 */
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { equalBytes, toHex } from '@unc/core';
import { writeFileWhole } from '@unc/node';
import { TPM_PT } from '../tpm/constants.js';
import {
  type AkAlgorithm,
  akTemplate,
  isAttestationKey,
  marshalPublic,
  parseAttest,
  verifyAttestSignature,
} from '../tpm/structures.js';
import { HIERARCHY_HANDLES, type Tpm } from '../tpm/tpm.js';
import { type AkCertificateOptions, issueAkCertificate, type VendorCa } from './ca.js';
import { toPem } from './pem.js';

/**
 * How the miner gets its AK back later. The AK is a primary key, re-derived from the hierarchy
 * seed and the template on every use, so nothing has to be stored in the TPM; `name` lets the
 * miner check that it re-derived the key that was certified.
 */
export interface AkHandleInfo {
  readonly kind: 'primary';
  readonly hierarchy: 'endorsement' | 'owner';
  readonly algorithm: AkAlgorithm;
  /** Marshalled TPMT_PUBLIC template, hex. */
  readonly template: string;
  /** The AK's Name (nameAlg ‖ H(TPMT_PUBLIC)), hex. */
  readonly name: string;
  /** The AK's Qualified Name, which every TPMS_ATTEST it signs carries as qualifiedSigner, hex. */
  readonly qualifiedName: string;
}

export interface ProvisionOptions extends Omit<AkCertificateOptions, 'tpmManufacturer' | 'tpmVersion'> {
  readonly algorithm?: AkAlgorithm;
  /**
   * Endorsement by default: only for keys of the endorsement (or platform) hierarchy does a TPM
   * report true resetCount/restartCount in attestations; others get obfuscated counters.
   */
  readonly hierarchy?: 'endorsement' | 'owner';
  /** Write ak.pub (TPM2B_PUBLIC), ak.spki.pem, ak.cert.pem, chain.pem and ak.json here. */
  readonly outDir?: string;
}

export interface ProvisionedChip {
  /** Marshalled TPM2B_PUBLIC of the AK. */
  readonly akPublic: Uint8Array;
  /** The AK as SubjectPublicKeyInfo DER. */
  readonly akSpki: Uint8Array;
  readonly akCertDer: Uint8Array;
  readonly serial: bigint;
  readonly akHandleInfo: AkHandleInfo;
}

function tcgId(value: number | undefined): string {
  return `id:${(value ?? 0).toString(16).toUpperCase().padStart(8, '0')}`;
}

export async function provisionChip(
  tpm: Tpm,
  ca: VendorCa,
  opts: ProvisionOptions,
): Promise<ProvisionedChip> {
  const algorithm = opts.algorithm ?? 'ecc-p256';
  const hierarchy = opts.hierarchy ?? 'endorsement';
  const props = await tpm.getProperties(
    TPM_PT.MANUFACTURER,
    TPM_PT.FIRMWARE_VERSION_1 - TPM_PT.MANUFACTURER + 1,
  );

  const ak = await tpm.withAk({ algorithm, hierarchy }, async (key) => {
    const pub = await tpm.readPublic(key.handle);
    if (!isAttestationKey(pub.public))
      throw new Error('the TPM returned an AK without the attestation key attributes');
    // Proof of possession: a quote over a fresh nonce, signed by this key, naming this key.
    const nonce = new Uint8Array(randomBytes(32));
    const q = await tpm.quote(key.handle, nonce);
    const attest = parseAttest(q.attest);
    if (!equalBytes(attest.extraData, nonce) || !equalBytes(attest.qualifiedSigner, pub.qualifiedName)) {
      throw new Error('the AK quote does not carry the challenge or does not name the AK');
    }
    if (!verifyAttestSignature(pub.public, q.attest, q.signature))
      throw new Error('the AK quote signature does not verify');
    return pub;
  });

  const akSpki = ak.spki;
  const { certificate, serial } = issueAkCertificate(ca, akSpki, {
    ...opts,
    tpmManufacturer: tcgId(props.get(TPM_PT.MANUFACTURER)),
    tpmVersion: tcgId(props.get(TPM_PT.FIRMWARE_VERSION_1)),
  });
  const result: ProvisionedChip = {
    akPublic: ak.tpm2bPublic,
    akSpki,
    akCertDer: certificate,
    serial,
    akHandleInfo: {
      kind: 'primary',
      hierarchy,
      algorithm,
      template: toHex(marshalPublic(akTemplate(algorithm))),
      name: toHex(ak.name),
      qualifiedName: toHex(ak.qualifiedName),
    },
  };
  if (opts.outDir) await writeProvisioned(result, ca, opts.outDir);
  return result;
}

/** The hierarchy handle an AkHandleInfo refers to. */
export function akHierarchyHandle(info: AkHandleInfo): number {
  return HIERARCHY_HANDLES[info.hierarchy];
}

/**
 * Each file whole (writeFileWhole), ak.cert.pem last: `unc dev` provisions a chip only while
 * ak.cert.pem is missing and reads the others at every start, so written in place a kill or a full
 * disk left a cut file, or a certificate without its ak.json, and each later start failed on it.
 */
async function writeProvisioned(chip: ProvisionedChip, ca: VendorCa, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  writeFileWhole(join(dir, 'ak.pub'), chip.akPublic, 0o644);
  writeFileWhole(join(dir, 'ak.spki.pem'), toPem('PUBLIC KEY', chip.akSpki), 0o644);
  writeFileWhole(
    join(dir, 'chain.pem'),
    toPem('CERTIFICATE', chip.akCertDer) +
      toPem('CERTIFICATE', ca.intermediate.certificate) +
      toPem('CERTIFICATE', ca.root.certificate),
    0o644,
  );
  writeFileWhole(
    join(dir, 'ak.json'),
    `${JSON.stringify({ vendorId: ca.vendorId, serial: chip.serial.toString(16), ...chip.akHandleInfo }, null, 2)}\n`,
    0o644,
  );
  writeFileWhole(join(dir, 'ak.cert.pem'), toPem('CERTIFICATE', chip.akCertDer), 0o644);
}
