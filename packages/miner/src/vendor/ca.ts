/**
 * A chip vendor's certificate authority for test and development networks: a root (the trust
 * anchor the chain's vendor registry holds) and an intermediate that issues AK certificates, the
 * same two-level shape real TPM and GPU vendors use.
 */
import { createPrivateKey, generateKeyPairSync, type KeyObject, randomBytes } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseCertificate } from '@unc/core';
import { readPrivateKeyFile, removeWholeLeftovers, writeFileWhole } from '@unc/node';
import { bytesToBigint } from '../asn1/der.js';
import { fromPem, toPem } from './pem.js';
import {
  type DistinguishedName,
  encodeName,
  issueCertificate,
  keyIdentifier,
  OID,
  tcgDirectoryName,
} from './x509.js';

export type VendorCurve = 'P-256' | 'P-384';

export interface CaKey {
  readonly certificate: Uint8Array;
  readonly privateKey: KeyObject;
  /** SubjectKeyIdentifier of the certificate: what children's AuthorityKeyIdentifier names. */
  readonly keyId: Uint8Array;
  /** The subject Name DER, which children copy as their issuer. */
  readonly subject: Uint8Array;
}

export interface VendorCa {
  readonly vendorId: string;
  readonly organization: string;
  readonly root: CaKey;
  readonly intermediate: CaKey;
}

export interface VendorCaOptions {
  /** The vendor id the chain's registry knows this vendor by. */
  readonly vendorId: string;
  /** O= of the CA names; defaults to the vendor id. */
  readonly organization?: string;
  /** C= of the CA names (two letters), if any. */
  readonly country?: string;
  /** Curve of both CA keys; P-384 suits a long-lived root, P-256 is the default. */
  readonly curve?: VendorCurve;
  /** Validity of the root. Explicit, because nothing here may depend on the wall clock. */
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Validity of the intermediate; defaults to the root's. */
  readonly intermediateNotBefore?: Date;
  readonly intermediateNotAfter?: Date;
}

const NAMED_CURVES: Readonly<Record<VendorCurve, string>> = { 'P-256': 'prime256v1', 'P-384': 'secp384r1' };

/** A random positive serial of 16 octets (RFC 5280 allows 20; CAs use ≥ 64 bits of entropy). */
export function randomSerial(): bigint {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return bytesToBigint(new Uint8Array(bytes));
}

function newKey(curve: VendorCurve): { privateKey: KeyObject; spki: Uint8Array } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: NAMED_CURVES[curve] });
  return { privateKey, spki: new Uint8Array(publicKey.export({ type: 'spki', format: 'der' })) };
}

function caKey(certificate: Uint8Array, privateKey: KeyObject): CaKey {
  // Read back with core's strict parser: a CA file that the chain would not accept fails here.
  const cert = parseCertificate(certificate);
  return { certificate, privateKey, keyId: keyIdentifier(cert.publicKey.der), subject: cert.subject.der };
}

export function createVendorCa(opts: VendorCaOptions): VendorCa {
  const curve = opts.curve ?? 'P-256';
  const org = opts.organization ?? opts.vendorId;
  const base: DistinguishedName =
    opts.country !== undefined ? { country: opts.country, organization: org } : { organization: org };

  const rootKey = newKey(curve);
  const rootKeyId = keyIdentifier(rootKey.spki);
  const rootName: DistinguishedName = { ...base, commonName: `${org} Root CA` };
  const rootCert = issueCertificate(
    {
      serial: randomSerial(),
      issuer: encodeName(rootName),
      subject: rootName,
      notBefore: opts.notBefore,
      notAfter: opts.notAfter,
      subjectPublicKeyInfo: rootKey.spki,
      authorityKeyId: rootKeyId,
      ca: { pathLength: 1 },
      keyUsage: ['keyCertSign', 'cRLSign'],
    },
    rootKey.privateKey,
  );
  const root = caKey(rootCert, rootKey.privateKey);

  const interKey = newKey(curve);
  const interName: DistinguishedName = { ...base, commonName: `${org} AK Issuing CA` };
  const interCert = issueCertificate(
    {
      serial: randomSerial(),
      issuer: root.subject,
      subject: interName,
      notBefore: opts.intermediateNotBefore ?? opts.notBefore,
      notAfter: opts.intermediateNotAfter ?? opts.notAfter,
      subjectPublicKeyInfo: interKey.spki,
      authorityKeyId: root.keyId,
      ca: { pathLength: 0 },
      keyUsage: ['keyCertSign', 'cRLSign'],
    },
    root.privateKey,
  );
  return {
    vendorId: opts.vendorId,
    organization: org,
    root,
    intermediate: caKey(interCert, interKey.privateKey),
  };
}

export interface AkCertificateOptions {
  /** Defaults to a random 16-octet serial; the serial is what a revocation names. */
  readonly serial?: bigint;
  /** The chip model id (§4.1), carried as tcg-at-tpmModel in the SAN directoryName. */
  readonly model: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly commonName?: string;
  /** TCG "id:XXXXXXXX" strings for the TPM; unknown values are written as "id:00000000". */
  readonly tpmManufacturer?: string;
  readonly tpmVersion?: string;
}

/** Issues the AK certificate for a chip's attestation key, signed by the intermediate. */
export function issueAkCertificate(
  ca: VendorCa,
  akSpki: Uint8Array,
  opts: AkCertificateOptions,
): { certificate: Uint8Array; serial: bigint } {
  const serial = opts.serial ?? randomSerial();
  const certificate = issueCertificate(
    {
      serial,
      issuer: ca.intermediate.subject,
      subject: {
        organization: ca.organization,
        commonName: opts.commonName ?? `${opts.model} AK ${serial.toString(16)}`,
      },
      notBefore: opts.notBefore,
      notAfter: opts.notAfter,
      subjectPublicKeyInfo: akSpki,
      authorityKeyId: ca.intermediate.keyId,
      keyUsage: ['digitalSignature'],
      extendedKeyUsage: [OID.tcgKpAikCertificate],
      subjectAltName: [
        tcgDirectoryName({
          manufacturer: opts.tpmManufacturer ?? 'id:00000000',
          model: opts.model,
          version: opts.tpmVersion ?? 'id:00000000',
        }),
      ],
    },
    ca.intermediate.privateKey,
  );
  return { certificate, serial };
}

/** The files a vendor CA is kept in. Private keys are written readable by the owner only. */
export const VENDOR_CA_FILES = {
  rootCert: 'root.cert.pem',
  rootKey: 'root.key.pem',
  intermediateCert: 'intermediate.cert.pem',
  intermediateKey: 'intermediate.key.pem',
  chain: 'chain.pem',
  vendor: 'vendor.json',
} as const;

export async function writeVendorCa(ca: VendorCa, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  // A creation killed part-way (and never loaded since, vendor.json being the last written) left them.
  for (const file of Object.values(VENDOR_CA_FILES)) removeWholeLeftovers(join(dir, file));
  const cert = (der: Uint8Array) => toPem('CERTIFICATE', der);
  const key = (k: KeyObject) => k.export({ type: 'pkcs8', format: 'pem' }).toString();
  // Every file replaced whole (writeFileWhole: a fresh name created exclusively, fsynced, renamed
  // into place, the directory fsynced), the keys owner-only from their first byte. Written at its
  // own path, a link planted there (the CA_EXISTS check follows links, and looks at the root key
  // only) sent a private key into whatever file it named, one its planter could read; and a key
  // not yet on disk when a power loss came was a CA whose certificates were already handed out.
  writeFileWhole(join(dir, VENDOR_CA_FILES.rootCert), cert(ca.root.certificate), 0o644);
  writeFileWhole(join(dir, VENDOR_CA_FILES.intermediateCert), cert(ca.intermediate.certificate), 0o644);
  writeFileWhole(
    join(dir, VENDOR_CA_FILES.chain),
    cert(ca.intermediate.certificate) + cert(ca.root.certificate),
    0o644,
  );
  writeFileWhole(join(dir, VENDOR_CA_FILES.rootKey), key(ca.root.privateKey), 0o600);
  writeFileWhole(join(dir, VENDOR_CA_FILES.intermediateKey), key(ca.intermediate.privateKey), 0o600);
  writeFileWhole(
    join(dir, VENDOR_CA_FILES.vendor),
    `${JSON.stringify({ vendorId: ca.vendorId, organization: ca.organization }, null, 2)}\n`,
    0o644,
  );
}

export async function loadVendorCa(dir: string): Promise<VendorCa> {
  // The CA's keys among them: a copy of a private key left at a temporary name by a killed write.
  for (const file of Object.values(VENDOR_CA_FILES)) removeWholeLeftovers(join(dir, file));
  const read = (file: string) => readFile(join(dir, file), 'utf8');
  // Whoever else can read them issues certificates for chips that do not exist, under a root the
  // chain trusts: each read through the descriptor whose mode and owner were checked.
  const rootKey = readPrivateKeyFile(join(dir, VENDOR_CA_FILES.rootKey));
  const intermediateKey = readPrivateKeyFile(join(dir, VENDOR_CA_FILES.intermediateKey));
  const meta = JSON.parse(await read(VENDOR_CA_FILES.vendor)) as {
    vendorId?: unknown;
    organization?: unknown;
  };
  if (typeof meta.vendorId !== 'string')
    throw new Error(`${join(dir, VENDOR_CA_FILES.vendor)} has no vendorId`);
  const organization = typeof meta.organization === 'string' ? meta.organization : meta.vendorId;
  const root = caKey(fromPem(await read(VENDOR_CA_FILES.rootCert), 'CERTIFICATE'), createPrivateKey(rootKey));
  const intermediate = caKey(
    fromPem(await read(VENDOR_CA_FILES.intermediateCert), 'CERTIFICATE'),
    createPrivateKey(intermediateKey),
  );
  return { vendorId: meta.vendorId, organization, root, intermediate };
}
