/**
 * X.509 v3 certificates (RFC 5280) built with our own DER encoder, signed with ECDSA P-256 or
 * P-384. Only what a vendor CA and its AK certificates need: names, validity, key identifiers,
 * basic constraints, key usage, extended key usage and the TCG subject-alternative-name
 * attributes. Chains are linked by key identifiers, as the chain's verifiers require (§4.1).
 *
 * This module only writes certificates. Whatever the miner reads back (its CA on disk, a root for
 * a revocation list) goes through core's strict parser (`parseCertificate`,
 * `parseSubjectPublicKeyInfo`), the one the chain verifies evidence with.
 */
import { createHash, type KeyObject, sign } from 'node:crypto';
import { der, parseSubjectPublicKeyInfo } from '@unc/core';
import {
  bitString,
  boolean,
  contextTag,
  explicit,
  integer,
  namedBits,
  octetString,
  oid,
  printableString,
  sequence,
  setOf,
  time,
  utf8String,
} from '../asn1/der.js';

export const OID = {
  ecPublicKey: '1.2.840.10045.2.1',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  ecdsaWithSha384: '1.2.840.10045.4.3.3',
  ed25519: '1.3.101.112',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  countryName: '2.5.4.6',
  organizationName: '2.5.4.10',
  organizationalUnitName: '2.5.4.11',
  commonName: '2.5.4.3',
  serialNumber: '2.5.4.5',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  /** TCG EK Credential Profile: attributes of a SAN directoryName naming the TPM. */
  tcgTpmManufacturer: '2.23.133.2.1',
  tcgTpmModel: '2.23.133.2.2',
  tcgTpmVersion: '2.23.133.2.3',
  /** tcg-kp-AIKCertificate: the extended key usage of an attestation key certificate. */
  tcgKpAikCertificate: '2.23.133.8.3',
} as const;

/** RDNs in the order they are encoded. */
export interface DistinguishedName {
  readonly country?: string;
  readonly organization?: string;
  readonly organizationalUnit?: string;
  readonly commonName?: string;
  readonly serialNumber?: string;
}

function attribute(type: string, value: Uint8Array): Uint8Array {
  return setOf(sequence(oid(type), value));
}

/** Name ::= SEQUENCE OF RelativeDistinguishedName, one attribute per RDN. */
export function encodeName(name: DistinguishedName): Uint8Array {
  const rdns: Uint8Array[] = [];
  if (name.country !== undefined) rdns.push(attribute(OID.countryName, printableString(name.country)));
  if (name.organization !== undefined)
    rdns.push(attribute(OID.organizationName, utf8String(name.organization)));
  if (name.organizationalUnit !== undefined) {
    rdns.push(attribute(OID.organizationalUnitName, utf8String(name.organizationalUnit)));
  }
  if (name.commonName !== undefined) rdns.push(attribute(OID.commonName, utf8String(name.commonName)));
  if (name.serialNumber !== undefined)
    rdns.push(attribute(OID.serialNumber, printableString(name.serialNumber)));
  return sequence(...rdns);
}

export type KeyUsage = 'digitalSignature' | 'keyCertSign' | 'cRLSign';
const KEY_USAGE_BITS: Readonly<Record<KeyUsage, number>> = {
  digitalSignature: 0,
  keyCertSign: 5,
  cRLSign: 6,
};

export interface Extension {
  readonly oid: string;
  readonly critical: boolean;
  /** The DER of the extension's value (what goes inside the OCTET STRING). */
  readonly value: Uint8Array;
}

function encodeExtension(ext: Extension): Uint8Array {
  return ext.critical
    ? sequence(oid(ext.oid), boolean(true), octetString(ext.value))
    : sequence(oid(ext.oid), octetString(ext.value));
}

/**
 * RFC 5280 §4.2.1.2 method 1: the key identifier is the SHA-1 of the subjectPublicKey BIT STRING
 * contents (without tag, length and unused-bits octet). The SPKI is read by core's strict parser;
 * the BIT STRING contents are its key in canonical form (the EC point, or RSAPublicKey's DER).
 */
export function keyIdentifier(spki: Uint8Array): Uint8Array {
  // RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey bits. EC and RSA keys go through
  // core's strict parser first; an Ed25519 key (a renter's TLS client certificate) is 32 raw bytes.
  const [algorithm, keyBits] = der.sequence(der.parseDer(spki), 'SubjectPublicKeyInfo', 2, 2);
  const algorithmOid = der.readOid(der.sequence(algorithm, 'algorithm', 1, 2)[0], 'public key algorithm');
  const bits = der.readBitStringBytes(keyBits, 'subjectPublicKey');
  if (algorithmOid === OID.ed25519) {
    if (bits.length !== 32) throw new RangeError('an Ed25519 public key is 32 bytes');
  } else {
    const { key } = parseSubjectPublicKeyInfo(spki);
    const expected = key.kind === 'ec' ? key.point : sequence(integer(key.modulus), integer(key.exponent));
    if (Buffer.compare(expected, bits) !== 0)
      throw new RangeError('the public key is not canonically encoded');
  }
  return new Uint8Array(createHash('sha1').update(bits).digest());
}

export interface CertificateSpec {
  /** Positive, at most 20 octets (RFC 5280 §4.1.2.2). */
  readonly serial: bigint;
  /** The issuer's subject Name, byte for byte as in the issuer's certificate. */
  readonly issuer: Uint8Array;
  readonly subject: DistinguishedName;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly subjectPublicKeyInfo: Uint8Array;
  /** The issuer's key identifier; for a self-signed certificate, the subject's own. */
  readonly authorityKeyId: Uint8Array;
  /** Present for a CA certificate; pathLength limits the CAs below it. */
  readonly ca?: { readonly pathLength?: number };
  readonly keyUsage: readonly KeyUsage[];
  readonly extendedKeyUsage?: readonly string[];
  /** SAN GeneralNames, already DER encoded. */
  readonly subjectAltName?: readonly Uint8Array[];
}

function signatureAlgorithm(key: KeyObject): { oid: string; hash: 'sha256' | 'sha384' | null } {
  // Ed25519 (RFC 8410) signs the message itself: no hash, no parameters.
  if (key.asymmetricKeyType === 'ed25519') return { oid: OID.ed25519, hash: null };
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (curve === 'prime256v1') return { oid: OID.ecdsaWithSha256, hash: 'sha256' };
  if (curve === 'secp384r1') return { oid: OID.ecdsaWithSha384, hash: 'sha384' };
  throw new RangeError(
    `unsupported signing key (${key.asymmetricKeyType} ${curve ?? ''}); use ECDSA P-256, P-384 or Ed25519`,
  );
}

function checkSerial(serial: bigint): void {
  if (serial <= 0n || serial >= 1n << 159n)
    throw new RangeError('certificate serial must be positive and fit 20 octets');
}

/** Builds the TBSCertificate and signs it with `signingKey` (the issuer's private key). */
export function issueCertificate(spec: CertificateSpec, signingKey: KeyObject): Uint8Array {
  checkSerial(spec.serial);
  if (spec.notAfter.getTime() <= spec.notBefore.getTime())
    throw new RangeError('notAfter must be after notBefore');
  const alg = signatureAlgorithm(signingKey);
  // ECDSA and Ed25519 AlgorithmIdentifiers have no parameters at all (RFC 5758 §3.2, RFC 8410 §3).
  const algorithmIdentifier = sequence(oid(alg.oid));

  const extensions: Extension[] = [];
  const basic = spec.ca
    ? sequence(boolean(true), ...(spec.ca.pathLength !== undefined ? [integer(spec.ca.pathLength)] : []))
    : sequence();
  extensions.push({ oid: OID.basicConstraints, critical: true, value: basic });
  extensions.push({
    oid: OID.keyUsage,
    critical: true,
    value: namedBits(spec.keyUsage.map((u) => KEY_USAGE_BITS[u])),
  });
  if (spec.extendedKeyUsage?.length) {
    extensions.push({
      oid: OID.extKeyUsage,
      critical: false,
      value: sequence(...spec.extendedKeyUsage.map((o) => oid(o))),
    });
  }
  extensions.push({
    oid: OID.subjectKeyIdentifier,
    critical: false,
    value: octetString(keyIdentifier(spec.subjectPublicKeyInfo)),
  });
  extensions.push({
    oid: OID.authorityKeyIdentifier,
    critical: false,
    value: sequence(contextTag(0, spec.authorityKeyId, false)),
  });
  if (spec.subjectAltName?.length) {
    extensions.push({ oid: OID.subjectAltName, critical: false, value: sequence(...spec.subjectAltName) });
  }

  const tbs = sequence(
    explicit(0, integer(2)), // v3
    integer(spec.serial),
    algorithmIdentifier,
    spec.issuer,
    sequence(time(spec.notBefore), time(spec.notAfter)),
    encodeName(spec.subject),
    spec.subjectPublicKeyInfo,
    explicit(3, sequence(...extensions.map(encodeExtension))),
  );
  const signature = new Uint8Array(sign(alg.hash, tbs, signingKey));
  return sequence(tbs, algorithmIdentifier, bitString(signature));
}

/**
 * A SAN directoryName with the TCG TPM attributes (EK Credential Profile §3.2.9): the form in
 * which TPM certificates name the device. The AK certificates use tcg-at-tpmModel for the chip
 * model id the chain looks up (§4.1).
 */
export function tcgDirectoryName(attrs: {
  manufacturer: string;
  model: string;
  version: string;
}): Uint8Array {
  const name = sequence(
    attribute(OID.tcgTpmManufacturer, utf8String(attrs.manufacturer)),
    attribute(OID.tcgTpmModel, utf8String(attrs.model)),
    attribute(OID.tcgTpmVersion, utf8String(attrs.version)),
  );
  // GeneralName directoryName is [4], explicitly tagged because Name is a CHOICE.
  return explicit(4, name);
}
