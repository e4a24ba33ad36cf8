/**
 * X.509 certificates (RFC 5280) read with our own strict DER reader, and chain verification at a
 * given block time. Signatures go through node:crypto (OpenSSL): deterministic, fast, and it
 * neither normalises nor rejects high-S ECDSA signatures, which TPMs produce.
 *
 * Chains are linked the way §4.1 of the protocol demands: by key identifiers (AKI of the child =
 * SKI of the parent) and by signature, with matching names as a third, never sufficient, check.
 */

import { concatBytes, equalBytes, toHex, utf8 } from '../bytes.js';
import { sha256 } from '../crypto/hash.js';
import { base64ToBytes, verifyWithSpki } from '../platform/node.js';
import {
  bytesToBigInt,
  children,
  contextTag,
  type DerNode,
  expectTag,
  parseDer,
  readBitString,
  readBitStringBytes,
  readBoolean,
  readNull,
  readOctetString,
  readOid,
  readSmallInteger,
  readString,
  readTime,
  readUnsignedIntegerBytes,
  sequence,
  TAG,
} from './der.js';
import { AttestationError, malformed } from './errors.js';

export type HashName = 'sha256' | 'sha384' | 'sha512';

export type SignatureAlgorithm =
  | { readonly kind: 'ecdsa'; readonly hash: HashName }
  | { readonly kind: 'rsa-pkcs1'; readonly hash: HashName }
  /** saltLength null: any salt length (TPMs choose their own; the signature still fixes it). */
  | { readonly kind: 'rsa-pss'; readonly hash: HashName; readonly saltLength: number | null };

export type EcCurve = 'P-256' | 'P-384';

export type SubjectPublicKey =
  | {
      readonly kind: 'ec';
      readonly curve: EcCurve /** uncompressed 04 ‖ X ‖ Y */;
      readonly point: Uint8Array;
    }
  | {
      readonly kind: 'rsa';
      /** big-endian magnitude, no leading zero */
      readonly modulus: Uint8Array;
      readonly exponent: Uint8Array;
      readonly bits: number;
    };

export interface SubjectPublicKeyInfo {
  /** The SubjectPublicKeyInfo exactly as encoded (what node:crypto imports). */
  readonly der: Uint8Array;
  readonly key: SubjectPublicKey;
}

export interface NameAttribute {
  readonly oid: string;
  readonly value: string;
}

export interface DistinguishedName {
  readonly der: Uint8Array;
  /** Readable form in encoding order, e.g. "CN=GH100 A01 GSP BROM, O=NVIDIA Corporation". */
  readonly text: string;
  readonly attributes: readonly NameAttribute[];
}

export interface CertificateExtension {
  readonly oid: string;
  readonly critical: boolean;
  /** The contents of extnValue (the DER of the extension's own structure). */
  readonly value: Uint8Array;
}

export interface KeyUsage {
  readonly digitalSignature: boolean;
  readonly keyCertSign: boolean;
  readonly cRLSign: boolean;
  /** All bits, bit 0 (digitalSignature) as the least significant. */
  readonly bits: number;
}

export interface BasicConstraints {
  readonly ca: boolean;
  readonly pathLen: number | null;
}

export interface Certificate {
  readonly der: Uint8Array;
  /** The signed part, exactly as encoded. */
  readonly tbs: Uint8Array;
  /** 1 or 3 (v2 is accepted and reported as 2). */
  readonly version: number;
  /** Serial number magnitude, big-endian, minimal. */
  readonly serial: Uint8Array;
  /** Lowercase hex of `serial`: the form revocation lists use. */
  readonly serialHex: string;
  readonly signatureAlgorithm: SignatureAlgorithm;
  readonly issuer: DistinguishedName;
  readonly subject: DistinguishedName;
  /** Validity window in ms since the Unix epoch, both ends inclusive at second resolution. */
  readonly notBeforeMs: bigint;
  readonly notAfterMs: bigint;
  readonly publicKey: SubjectPublicKeyInfo;
  readonly extensions: readonly CertificateExtension[];
  readonly basicConstraints: BasicConstraints | null;
  readonly keyUsage: KeyUsage | null;
  readonly subjectKeyIdentifier: Uint8Array | null;
  readonly authorityKeyIdentifier: Uint8Array | null;
  readonly signatureValue: Uint8Array;
}

export const X509_OID = {
  ecPublicKey: '1.2.840.10045.2.1',
  p256: '1.2.840.10045.3.1.7',
  p384: '1.3.132.0.34',
  rsaEncryption: '1.2.840.113549.1.1.1',
  rsassaPss: '1.2.840.113549.1.1.10',
  mgf1: '1.2.840.113549.1.1.8',
  sha256: '2.16.840.1.101.3.4.2.1',
  sha384: '2.16.840.1.101.3.4.2.2',
  sha512: '2.16.840.1.101.3.4.2.3',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
  subjectAltName: '2.5.29.17',
  extKeyUsage: '2.5.29.37',
  subjectDirectoryAttributes: '2.5.29.9',
  /** TCG DICE TcbInfo, UEID and MultiTcbInfo (DICE Attestation Architecture). */
  diceTcbInfo: '2.23.133.5.4.1',
  diceUeid: '2.23.133.5.4.4',
  diceMultiTcbInfo: '2.23.133.5.4.5',
  /** RFC 4108 HardwareModuleName, the SAN otherName TCG IDevID/IAK certificates carry. */
  hardwareModuleName: '1.3.6.1.5.5.7.8.4',
  /** tcg-kp-AIKCertificate: the extendedKeyUsage purpose of a TPM attestation key certificate. */
  tcgKpAikCertificate: '2.23.133.8.3',
} as const;

const SIGNATURE_OIDS: Record<string, SignatureAlgorithm> = {
  '1.2.840.10045.4.3.2': { kind: 'ecdsa', hash: 'sha256' },
  '1.2.840.10045.4.3.3': { kind: 'ecdsa', hash: 'sha384' },
  '1.2.840.10045.4.3.4': { kind: 'ecdsa', hash: 'sha512' },
  '1.2.840.113549.1.1.11': { kind: 'rsa-pkcs1', hash: 'sha256' },
  '1.2.840.113549.1.1.12': { kind: 'rsa-pkcs1', hash: 'sha384' },
  '1.2.840.113549.1.1.13': { kind: 'rsa-pkcs1', hash: 'sha512' },
};

const HASH_OIDS: Record<string, HashName> = {
  [X509_OID.sha256]: 'sha256',
  [X509_OID.sha384]: 'sha384',
  [X509_OID.sha512]: 'sha512',
};

/**
 * Extensions whose meaning this module (or a profile built on it) takes into account. A critical
 * extension outside this set makes a certificate unusable (RFC 5280 §4.2).
 */
export const UNDERSTOOD_EXTENSIONS: ReadonlySet<string> = new Set([
  X509_OID.basicConstraints,
  X509_OID.keyUsage,
  X509_OID.subjectKeyIdentifier,
  X509_OID.authorityKeyIdentifier,
  X509_OID.subjectAltName,
  X509_OID.extKeyUsage,
  X509_OID.subjectDirectoryAttributes,
  X509_OID.diceTcbInfo,
  X509_OID.diceUeid,
  X509_OID.diceMultiTcbInfo,
]);

const ATTRIBUTE_NAMES: Record<string, string> = {
  '2.5.4.3': 'CN',
  '2.5.4.5': 'serialNumber',
  '2.5.4.6': 'C',
  '2.5.4.7': 'L',
  '2.5.4.8': 'ST',
  '2.5.4.10': 'O',
  '2.5.4.11': 'OU',
  '2.23.133.2.1': 'tpmManufacturer',
  '2.23.133.2.2': 'tpmModel',
  '2.23.133.2.3': 'tpmVersion',
};

function readHashAlgorithm(node: DerNode | undefined, what: string): HashName {
  const items = sequence(node, what, 1, 2);
  const hash = HASH_OIDS[readOid(items[0], what)];
  if (!hash) throw malformed(`${what}: unsupported hash algorithm`);
  if (items.length === 2) readNull(items[1], `${what} parameters`);
  return hash;
}

/**
 * DER (X.690 §11.5) omits a field whose value equals its DEFAULT; encoding it anyway gives the same
 * certificate a second encoding (another hash, another identity), so it is malformed.
 */
function explicitDefault(what: string) {
  return malformed(`DER: ${what} is the DEFAULT value and must be omitted, not encoded`);
}

function readPssParams(node: DerNode | undefined): SignatureAlgorithm {
  const items = sequence(node, 'RSASSA-PSS parameters', 0, 4);
  let hash: HashName | null = null;
  let mgfHash: HashName | null = null;
  let saltLength = 20;
  let lastTag = -1;
  for (const item of items) {
    if (item.tag <= lastTag) throw malformed('RSASSA-PSS parameters out of order');
    lastTag = item.tag;
    const inner = children(item);
    if (inner.length !== 1) throw malformed('RSASSA-PSS parameter must wrap one value');
    if (item.tag === contextTag(0, true)) hash = readHashAlgorithm(inner[0], 'PSS hash');
    else if (item.tag === contextTag(1, true)) {
      const mgf = sequence(inner[0], 'PSS mask generation', 2, 2);
      if (readOid(mgf[0], 'PSS mask generation') !== X509_OID.mgf1)
        throw malformed('PSS mask generation is not MGF1');
      mgfHash = readHashAlgorithm(mgf[1], 'MGF1 hash');
    } else if (item.tag === contextTag(2, true)) {
      saltLength = readSmallInteger(inner[0], 'PSS salt length');
      if (saltLength === 20) throw explicitDefault('RSASSA-PSS saltLength 20');
    } else if (item.tag === contextTag(3, true)) {
      // The only trailer field there is, 1, is the DEFAULT: present at all, it is either that
      // explicitly encoded or a value no one defines.
      if (readSmallInteger(inner[0], 'PSS trailer field') === 1)
        throw explicitDefault('RSASSA-PSS trailerField 1');
      throw malformed('PSS trailer field must be 1');
    } else throw malformed('unknown RSASSA-PSS parameter');
  }
  // The defaults are SHA-1; we do not accept SHA-1 anywhere.
  if (hash === null || mgfHash === null) throw malformed('RSASSA-PSS with SHA-1 is not accepted');
  if (hash !== mgfHash) throw malformed('RSASSA-PSS with different hash and MGF1 hash is not supported');
  return { kind: 'rsa-pss', hash, saltLength };
}

export function readSignatureAlgorithm(node: DerNode | undefined, what: string): SignatureAlgorithm {
  const items = sequence(node, what, 1, 2);
  const oid = readOid(items[0], what);
  if (oid === X509_OID.rsassaPss) return readPssParams(items[1]);
  const alg = SIGNATURE_OIDS[oid];
  if (!alg) throw malformed(`${what}: unsupported signature algorithm ${oid}`);
  if (alg.kind === 'ecdsa') {
    if (items.length !== 1) throw malformed(`${what}: ECDSA takes no parameters`);
  } else if (items.length === 2) {
    readNull(items[1], `${what} parameters`);
  }
  return alg;
}

const EC_POINT_LENGTH: Record<EcCurve, number> = { 'P-256': 65, 'P-384': 97 };

/** RSA keys accepted anywhere in attestation (certificates, TPM keys, the allow-list). */
export const RSA_MIN_BITS = 2048;
export const RSA_MAX_BITS = 4096;
export const RSA_MAX_EXPONENT = 65537n;

export function parseSubjectPublicKeyInfo(der: Uint8Array): SubjectPublicKeyInfo {
  return readSubjectPublicKeyInfo(parseDer(der));
}

function readSubjectPublicKeyInfo(node: DerNode): SubjectPublicKeyInfo {
  const [algorithm, keyBits] = sequence(node, 'SubjectPublicKeyInfo', 2, 2);
  const alg = sequence(algorithm, 'SubjectPublicKeyInfo algorithm', 1, 2);
  const oid = readOid(alg[0], 'public key algorithm');
  const bits = readBitStringBytes(keyBits, 'subjectPublicKey');
  if (oid === X509_OID.ecPublicKey) {
    const curveOid = readOid(alg[1], 'EC named curve');
    const curve: EcCurve | null =
      curveOid === X509_OID.p256 ? 'P-256' : curveOid === X509_OID.p384 ? 'P-384' : null;
    if (!curve) throw malformed(`unsupported EC curve ${curveOid}`);
    // Compressed points are legal but no device we trust uses them; one form keeps one encoding.
    if (bits.length !== EC_POINT_LENGTH[curve] || bits[0] !== 0x04) {
      throw malformed(`${curve} public key must be an uncompressed point`);
    }
    return { der: node.der, key: { kind: 'ec', curve, point: bits } };
  }
  if (oid === X509_OID.rsaEncryption) {
    if (alg.length === 2) readNull(alg[1], 'rsaEncryption parameters');
    const [n, e] = sequence(parseDer(bits), 'RSAPublicKey', 2, 2);
    const modulus = readUnsignedIntegerBytes(n, 'RSA modulus');
    const exponent = readUnsignedIntegerBytes(e, 'RSA exponent');
    const bitLength = modulus.length * 8 - Math.clz32(modulus[0]!) + 24;
    // Bounded so that a hostile certificate cannot make every node spend long on one signature: a
    // verification costs about (exponent bits) × (modulus bits)². With 8,192-bit moduli and 32-bit
    // exponents one key cost ~35 RSA-2048 verifications, and a failing registration (free: a
    // failed transaction pays no fee) could carry several. No TPM, device CA or root we know of
    // uses more than 4,096 bits or an exponent other than 3 or 65537.
    if (bitLength < RSA_MIN_BITS || bitLength > RSA_MAX_BITS)
      throw malformed(`RSA key of ${bitLength} bits is not accepted (${RSA_MIN_BITS}..${RSA_MAX_BITS})`);
    if (
      exponent.length > 3 ||
      (exponent[exponent.length - 1]! & 1) === 0 ||
      bytesToBigInt(exponent) < 3n ||
      bytesToBigInt(exponent) > RSA_MAX_EXPONENT
    ) {
      throw malformed(`RSA exponent must be odd, at least 3 and at most ${RSA_MAX_EXPONENT}`);
    }
    return { der: node.der, key: { kind: 'rsa', modulus, exponent, bits: bitLength } };
  }
  throw malformed(`unsupported public key algorithm ${oid}`);
}

function readName(node: DerNode | undefined, what: string): DistinguishedName {
  const rdns = sequence(node, what);
  const attributes: NameAttribute[] = [];
  const parts: string[] = [];
  for (const rdn of rdns) {
    const set = sequence(rdn, `${what} RDN`, 1, Number.MAX_SAFE_INTEGER, TAG.SET);
    const rdnParts: string[] = [];
    for (const atv of set) {
      const [type, value] = sequence(atv, `${what} attribute`, 2, 2);
      const oid = readOid(type, `${what} attribute type`);
      const text = readString(value, `${what} ${oid}`);
      attributes.push({ oid, value: text });
      rdnParts.push(`${ATTRIBUTE_NAMES[oid] ?? oid}=${text}`);
    }
    parts.push(rdnParts.join('+'));
  }
  return { der: node!.der, text: parts.join(', '), attributes };
}

function readKeyUsage(value: Uint8Array): KeyUsage {
  const { bytes } = readBitString(parseDer(value), 'keyUsage');
  let bits = 0;
  // DER names bit 0 as the most significant bit of the first byte.
  for (let i = 0; i < Math.min(bytes.length, 2) * 8; i++) {
    if (bytes[i >> 3]! & (0x80 >> (i & 7))) bits |= 1 << i;
  }
  return {
    digitalSignature: (bits & 1) !== 0,
    keyCertSign: (bits & 0x20) !== 0,
    cRLSign: (bits & 0x40) !== 0,
    bits,
  };
}

function readBasicConstraints(value: Uint8Array): BasicConstraints {
  const items = sequence(parseDer(value), 'basicConstraints', 0, 2);
  let i = 0;
  let ca = false;
  if (items[i]?.tag === TAG.BOOLEAN) {
    ca = readBoolean(items[i++], 'basicConstraints cA');
    if (!ca) throw explicitDefault('basicConstraints cA FALSE');
  }
  let pathLen: number | null = null;
  if (i < items.length) pathLen = readSmallInteger(items[i++], 'pathLenConstraint');
  if (i !== items.length) throw malformed('basicConstraints has unexpected fields');
  return { ca, pathLen };
}

function readAuthorityKeyIdentifier(value: Uint8Array): Uint8Array | null {
  const items = sequence(parseDer(value), 'authorityKeyIdentifier', 0, 3);
  const keyId = items.find((n) => n.tag === contextTag(0, false));
  return keyId ? keyId.content : null;
}

/** Parses one DER certificate. Throws ATTEST_MALFORMED for anything that is not a strict one. */
export function parseCertificate(der: Uint8Array): Certificate {
  const root = parseDer(der);
  const [tbsNode, sigAlgNode, sigValueNode] = sequence(root, 'Certificate', 3, 3);
  const tbsItems = sequence(tbsNode, 'TBSCertificate', 6, 10);
  let i = 0;
  let version = 1;
  if (tbsItems[0]!.tag === contextTag(0, true)) {
    const inner = children(tbsItems[0]!);
    if (inner.length !== 1) throw malformed('version must wrap one INTEGER');
    const v = readSmallInteger(inner[0], 'version');
    // DER omits DEFAULT values, so an explicit v1 (0) is a second encoding of the same certificate.
    if (v === 0) throw explicitDefault('certificate version v1');
    if (v !== 1 && v !== 2) throw malformed(`unsupported certificate version ${v + 1}`);
    version = v + 1;
    i = 1;
  }
  const serial = readUnsignedIntegerBytes(tbsItems[i++], 'serialNumber');
  if (serial.length > 20) throw malformed('serialNumber longer than 20 octets');
  const tbsSigAlg = expectTag(tbsItems[i++], TAG.SEQUENCE, 'TBSCertificate signature');
  const issuer = readName(tbsItems[i++], 'issuer');
  const [nb, na] = sequence(tbsItems[i++], 'validity', 2, 2);
  const notBefore = readTime(nb, 'notBefore');
  const notAfter = readTime(na, 'notAfter');
  const subject = readName(tbsItems[i++], 'subject');
  const spkiNode = tbsItems[i++];
  if (!spkiNode) throw malformed('subjectPublicKeyInfo is missing');
  const publicKey = readSubjectPublicKeyInfo(spkiNode);
  // issuerUniqueID [1] and subjectUniqueID [2] are obsolete; skip them if present.
  while (
    i < tbsItems.length &&
    (tbsItems[i]!.tag === contextTag(1, false) || tbsItems[i]!.tag === contextTag(2, false))
  ) {
    if (version < 2) throw malformed('unique identifiers in a v1 certificate');
    i++;
  }
  const extensions: CertificateExtension[] = [];
  if (i < tbsItems.length) {
    if (version !== 3) throw malformed('extensions in a certificate that is not v3');
    const wrapper = expectTag(tbsItems[i++], contextTag(3, true), 'extensions');
    const inner = children(wrapper);
    if (inner.length !== 1) throw malformed('extensions must wrap one SEQUENCE');
    const seen = new Set<string>();
    for (const ext of sequence(inner[0], 'extensions', 1)) {
      const parts = sequence(ext, 'extension', 2, 3);
      const oid = readOid(parts[0], 'extnID');
      if (seen.has(oid)) throw malformed(`extension ${oid} appears twice`);
      seen.add(oid);
      const critical = parts.length === 3 ? readBoolean(parts[1], 'critical') : false;
      if (parts.length === 3 && !critical) throw explicitDefault(`extension ${oid} critical FALSE`);
      const value = readOctetString(parts[parts.length - 1], 'extnValue');
      extensions.push({ oid, critical, value });
    }
  }
  if (i !== tbsItems.length) throw malformed('unexpected fields at the end of TBSCertificate');

  if (!equalBytes(tbsSigAlg.der, sigAlgNode!.der)) {
    throw malformed('signature algorithm inside and outside the signed part differ');
  }
  const signatureAlgorithm = readSignatureAlgorithm(sigAlgNode, 'signatureAlgorithm');
  const signatureValue = readBitStringBytes(sigValueNode, 'signatureValue');

  const ext = (oid: string) => extensions.find((e) => e.oid === oid);
  const bc = ext(X509_OID.basicConstraints);
  const ku = ext(X509_OID.keyUsage);
  const ski = ext(X509_OID.subjectKeyIdentifier);
  const aki = ext(X509_OID.authorityKeyIdentifier);
  return {
    der: root.der,
    tbs: tbsNode!.der,
    version,
    serial,
    serialHex: toHex(serial),
    signatureAlgorithm,
    issuer,
    subject,
    notBeforeMs: notBefore * 1000n,
    notAfterMs: notAfter * 1000n,
    publicKey,
    extensions,
    basicConstraints: bc ? readBasicConstraints(bc.value) : null,
    keyUsage: ku ? readKeyUsage(ku.value) : null,
    subjectKeyIdentifier: ski ? readOctetString(parseDer(ski.value), 'subjectKeyIdentifier') : null,
    authorityKeyIdentifier: aki ? readAuthorityKeyIdentifier(aki.value) : null,
    signatureValue,
  };
}

export function getExtension(cert: Certificate, oid: string): CertificateExtension | undefined {
  return cert.extensions.find((e) => e.oid === oid);
}

export type GeneralName =
  | {
      readonly kind: 'otherName';
      readonly typeId: string /** the [0] EXPLICIT value */;
      readonly value: DerNode;
    }
  | { readonly kind: 'dns' | 'email' | 'uri'; readonly value: string }
  | { readonly kind: 'directoryName'; readonly name: DistinguishedName }
  | { readonly kind: 'other'; readonly tag: number; readonly der: Uint8Array };

/** The subjectAltName entries, or [] when the certificate has none. */
export function subjectAltNames(cert: Certificate): GeneralName[] {
  const ext = getExtension(cert, X509_OID.subjectAltName);
  if (!ext) return [];
  return sequence(parseDer(ext.value), 'subjectAltName', 1).map((gn): GeneralName => {
    switch (gn.tag) {
      case contextTag(0, true): {
        const [typeId, wrapped] = children(gn);
        const inner = children(expectTag(wrapped, contextTag(0, true), 'otherName value'));
        if (inner.length !== 1 || children(gn).length !== 2) throw malformed('otherName has the wrong shape');
        return { kind: 'otherName', typeId: readOid(typeId, 'otherName type-id'), value: inner[0]! };
      }
      case contextTag(1, false):
      case contextTag(2, false):
      case contextTag(6, false): {
        if (!gn.content.every((b) => b >= 0x20 && b < 0x7f))
          throw malformed('SAN IA5String has non-printable characters');
        const value = String.fromCharCode(...gn.content);
        const kind =
          gn.tag === contextTag(1, false) ? 'email' : gn.tag === contextTag(2, false) ? 'dns' : 'uri';
        return { kind, value };
      }
      case contextTag(4, true): {
        const inner = children(gn);
        if (inner.length !== 1) throw malformed('directoryName must wrap one Name');
        return { kind: 'directoryName', name: readName(inner[0], 'directoryName') };
      }
      default:
        return { kind: 'other', tag: gn.tag, der: gn.der };
    }
  });
}

/**
 * Canonical bytes of a public key, the same however its SubjectPublicKeyInfo was encoded (RSA
 * parameters may be NULL or absent): what chip ids derived from keys hash, so one key is one chip.
 */
export function publicKeyIdentity(key: SubjectPublicKey): Uint8Array {
  if (key.kind === 'ec') return concatBytes(utf8(key.curve), Uint8Array.of(0), key.point);
  const n = key.modulus.length;
  return concatBytes(utf8('RSA'), Uint8Array.of(0, n >> 8, n & 0xff), key.modulus, key.exponent);
}

/** Every CERTIFICATE block of a PEM text, in order. */
export function pemToDer(pem: string): Uint8Array[] {
  const out: Uint8Array[] = [];
  const re = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g;
  for (let m = re.exec(pem); m !== null; m = re.exec(pem)) {
    const body = m[1]!.replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body) || body.length % 4 !== 0)
      throw malformed('PEM body is not base64');
    out.push(base64ToBytes(body));
  }
  return out;
}

const EC_SIGNATURE_HALF: Record<EcCurve, number> = { 'P-256': 32, 'P-384': 48 };

/** Size of one ECDSA scalar (r or s) on the key's curve, or null for a non-EC key. */
export function ecScalarLength(key: SubjectPublicKey): number | null {
  return key.kind === 'ec' ? EC_SIGNATURE_HALF[key.curve] : null;
}

/**
 * An ECDSA-Sig-Value (RFC 3279: SEQUENCE { r INTEGER, s INTEGER }) read with our strict DER
 * reader, as raw r ‖ s of `size` bytes each; null unless it is the one DER encoding of two
 * non-negative integers that fit. So which DER signatures count does not depend on how lenient
 * the linked OpenSSL's parser is (some builds have taken BER).
 */
function ecdsaDerToRaw(signature: Uint8Array, size: number): Uint8Array | null {
  try {
    const [rNode, sNode] = sequence(parseDer(signature), 'ECDSA signature', 2, 2);
    const r = readUnsignedIntegerBytes(rNode, 'ECDSA r');
    const s = readUnsignedIntegerBytes(sNode, 'ECDSA s');
    if (r.length > size || s.length > size) return null;
    const raw = new Uint8Array(2 * size);
    raw.set(r, size - r.length);
    raw.set(s, 2 * size - s.length);
    return raw;
  } catch {
    return null;
  }
}

/**
 * True only for a valid signature of `data` by `spki` under `alg`. ECDSA signatures are DER
 * (certificates: parsed here, strictly, then handed on as raw) or raw r ‖ s of exactly twice the
 * scalar size (TPM, SPDM); OpenSSL checks 0 < r, s < n and the equation, and accepts high-S, which
 * the protocol wants (TPMs produce it). Pinned by Wycheproof (test/attestation/wycheproof.test.ts,
 * docs/signatures.md). Never throws.
 */
export function verifySignature(
  spki: SubjectPublicKeyInfo,
  alg: SignatureAlgorithm,
  data: Uint8Array,
  signature: Uint8Array,
  ecdsaEncoding: 'der' | 'raw' = 'der',
): boolean {
  try {
    let verdict: boolean | null;
    if (alg.kind === 'ecdsa') {
      if (spki.key.kind !== 'ec') return false;
      const size = EC_SIGNATURE_HALF[spki.key.curve];
      const raw = ecdsaEncoding === 'raw' ? signature : ecdsaDerToRaw(signature, size);
      if (!raw || raw.length !== 2 * size) return false;
      verdict = verifyWithSpki(spki.der, data, { kind: 'ecdsa', hash: alg.hash, rawSignature: raw });
    } else {
      if (spki.key.kind !== 'rsa') return false;
      if (signature.length !== spki.key.modulus.length) return false;
      verdict =
        alg.kind === 'rsa-pkcs1'
          ? verifyWithSpki(spki.der, data, { kind: 'rsa-pkcs1', hash: alg.hash, signature })
          : verifyWithSpki(spki.der, data, {
              kind: 'rsa-pss',
              hash: alg.hash,
              signature,
              ...(alg.saltLength === null ? {} : { saltLength: alg.saltLength }),
            });
    }
    // null: OpenSSL refuses the key (among others, EC points that are not on the curve).
    return verdict === true;
  } catch {
    return false;
  }
}

/** The canonical form of a serial for revocation lists: lowercase hex, no 0x, no leading zeros. */
export function normalizeSerialHex(serial: string): string {
  let s = serial.trim().toLowerCase();
  if (s.startsWith('0x')) s = s.slice(2);
  if (s.length % 2 === 1) s = `0${s}`;
  while (s.length > 2 && s.startsWith('00')) s = s.slice(2);
  return s;
}

/**
 * The end of a verified path's validity: the earliest notAfter (ms) of its certificates, the
 * anchor's included, as checkCertificate reads them (valid through that second's last millisecond).
 */
export function earliestNotAfterMs(path: readonly Pick<Certificate, 'notAfterMs'>[]): bigint {
  let end = path[0]!.notAfterMs;
  for (const c of path) if (c.notAfterMs < end) end = c.notAfterMs;
  return end;
}

/**
 * A certificate's revocation id: `<issuer>:<serial>`, the issuer being the first 16 bytes of
 * SHA-256 over the DER of its issuer Name (hex) and the serial `normalizeSerialHex`'s. A serial is
 * unique only per issuing CA (RFC 5280 §4.1.2.2): two CAs of one vendor may issue the same serial,
 * and a revocation by serial alone revoked both chips. Consensus-visible (docs/poci.md).
 */
export function certificateRevocationId(cert: Pick<Certificate, 'issuer' | 'serialHex'>): string {
  return revocationId(cert.issuer.der, cert.serialHex);
}

/** The revocation id of serial `serialHex` issued by the CA whose subject Name is `issuerNameDer`. */
export function revocationId(issuerNameDer: Uint8Array, serialHex: string): string {
  return `${toHex(sha256(issuerNameDer).subarray(0, 16))}:${normalizeSerialHex(serialHex)}`;
}

/** `<32 hex>:<serial hex of at most 20 octets>`, lowercase (serial leading zeros dropped). */
const REVOCATION_ID = /^([0-9a-f]{32}):([0-9a-f]{1,128})$/;

/**
 * The canonical form of a revocation id (`certificateRevocationId`), or null when `id` is not one
 * (a bare serial, as revocation lists held before issuers scoped them).
 */
export function normalizeRevocationId(id: string): string | null {
  const m = REVOCATION_ID.exec(id.trim().toLowerCase());
  if (!m) return null;
  const serial = normalizeSerialHex(m[2]!);
  // No certificate has a longer serial (parseCertificate refuses them): such an id matches nothing.
  return serial.length <= 40 ? `${m[1]}:${serial}` : null;
}

export interface VerifiedChain {
  /** Leaf first, ending with the trust anchor (one of the given roots). */
  readonly path: readonly Certificate[];
  readonly anchor: Certificate;
}

/** No device chain we know of is longer; the bound caps the work one piece of evidence can cause. */
export const MAX_CHAIN_LENGTH = 8;

function checkCertificate(
  cert: Certificate,
  atMs: bigint,
  revoked: ReadonlySet<string>,
  label: string,
): void {
  // Validity is whole seconds: a certificate is valid through the last millisecond of notAfter.
  const atSecondMs = atMs - (atMs % 1000n);
  if (atSecondMs < cert.notBeforeMs) {
    throw new AttestationError(
      'ATTEST_CERT_EXPIRED',
      `${label} (${cert.subject.text}) is not valid yet at block time`,
    );
  }
  if (atSecondMs > cert.notAfterMs) {
    throw new AttestationError(
      'ATTEST_CERT_EXPIRED',
      `${label} (${cert.subject.text}) has expired at block time`,
    );
  }
  if (revoked.has(certificateRevocationId(cert))) {
    throw new AttestationError(
      'ATTEST_CERT_REVOKED',
      `${label} (${cert.subject.text}) serial ${cert.serialHex} of issuer ${cert.issuer.text} is revoked`,
    );
  }
  for (const ext of cert.extensions) {
    if (ext.critical && !UNDERSTOOD_EXTENSIONS.has(ext.oid)) {
      throw new AttestationError(
        'ATTEST_UNKNOWN_CRITICAL_EXTENSION',
        `${label} (${cert.subject.text}) has critical extension ${ext.oid} that is not understood`,
      );
    }
  }
}

function checkLink(child: Certificate, parent: Certificate, below: number): void {
  const aki = child.authorityKeyIdentifier;
  const ski = parent.subjectKeyIdentifier;
  if (!aki || !ski) {
    throw new AttestationError(
      'ATTEST_CHAIN_BROKEN',
      `${child.subject.text} → ${parent.subject.text}: both key identifiers are required to link certificates`,
    );
  }
  if (!equalBytes(aki, ski)) {
    throw new AttestationError(
      'ATTEST_CHAIN_BROKEN',
      `${child.subject.text} names issuer key ${toHex(aki)}, but ${parent.subject.text} has key ${toHex(ski)}`,
    );
  }
  if (!equalBytes(child.issuer.der, parent.subject.der)) {
    throw new AttestationError(
      'ATTEST_CHAIN_BROKEN',
      `${child.subject.text} was not issued by ${parent.subject.text}`,
    );
  }
  if (!parent.basicConstraints?.ca) {
    throw new AttestationError('ATTEST_NOT_CA', `${parent.subject.text} is not a CA (basicConstraints)`);
  }
  if (parent.keyUsage && !parent.keyUsage.keyCertSign) {
    throw new AttestationError(
      'ATTEST_NOT_CA',
      `${parent.subject.text} may not sign certificates (keyUsage)`,
    );
  }
  const pathLen = parent.basicConstraints.pathLen;
  if (pathLen !== null && below > pathLen) {
    throw new AttestationError(
      'ATTEST_NOT_CA',
      `${parent.subject.text} allows ${pathLen} CAs below it, not ${below}`,
    );
  }
}

/**
 * Verifies that `leafFirst` is a chain from its leaf to one of `trustedRoots` valid at `atMs` (block
 * time, ms). The chain may end with the root itself or with a certificate the root issued. Every
 * link is checked by key identifiers, names and signature; every certificate (the root included)
 * by validity window, revocation (`revokedSerials`: revocation ids, `certificateRevocationId`, any
 * case; an entry that is not one matches nothing) and critical extensions;
 * every issuer by basicConstraints, keyUsage and pathLen.
 */
export function verifyChain(
  leafFirst: readonly Certificate[],
  trustedRoots: readonly Certificate[],
  atMs: bigint,
  revokedSerials: ReadonlySet<string>,
): VerifiedChain {
  if (leafFirst.length === 0) throw malformed('empty certificate chain');
  if (leafFirst.length > MAX_CHAIN_LENGTH)
    throw malformed(`certificate chain longer than ${MAX_CHAIN_LENGTH}`);
  if (atMs < 0n) throw malformed('negative block time');
  const revoked = new Set<string>();
  for (const s of revokedSerials) {
    const id = normalizeRevocationId(s);
    if (id) revoked.add(id);
  }

  const last = leafFirst[leafFirst.length - 1]!;
  let anchor = trustedRoots.find((r) => equalBytes(r.der, last.der));
  let path: Certificate[];
  if (anchor) {
    path = [...leafFirst];
  } else {
    // Roots are found by key identifier; a name match alone would let a look-alike root in.
    const aki = last.authorityKeyIdentifier;
    const candidates = aki
      ? trustedRoots.filter((r) => r.subjectKeyIdentifier !== null && equalBytes(r.subjectKeyIdentifier, aki))
      : [];
    // With one candidate the signature loop below checks it; only a tie needs a signature to break.
    anchor =
      candidates.length === 1
        ? candidates[0]
        : candidates.find((r) =>
            verifySignature(r.publicKey, last.signatureAlgorithm, last.tbs, last.signatureValue),
          );
    if (!anchor) {
      throw new AttestationError(
        'ATTEST_UNTRUSTED_ROOT',
        `${last.subject.text} was not issued by any trusted root (issuer ${last.issuer.text})`,
      );
    }
    path = [...leafFirst, anchor];
  }
  if (path.length > MAX_CHAIN_LENGTH) throw malformed(`certificate chain longer than ${MAX_CHAIN_LENGTH}`);
  for (let i = 0; i < path.length; i++) {
    for (let j = i + 1; j < path.length; j++) {
      if (equalBytes(path[i]!.der, path[j]!.der))
        throw malformed('the same certificate appears twice in the chain');
    }
  }

  // Cheap checks first, so that junk costs no signature verification.
  for (let i = 0; i < path.length; i++) {
    checkCertificate(
      path[i]!,
      atMs,
      revoked,
      i === 0 ? 'leaf' : i === path.length - 1 ? 'root' : `intermediate ${i}`,
    );
  }
  for (let i = 0; i + 1 < path.length; i++) checkLink(path[i]!, path[i + 1]!, i);
  // Signatures from the trust anchor down: each one checked is then by a key the anchor vouches
  // for, so a made-up chain (consistent names and key ids, any keys) costs one verification, the
  // one against the real root or intermediate it claims, not one per certificate. Leaf first,
  // every link but the last was the attacker's own and verified. The first link checked is thus
  // the one to a root taken from the trusted ones (not carried in the evidence) when there is one:
  // its failure is a state reason that blames no relay (below), and costs one signature.
  const rootLink = path.length > leafFirst.length ? leafFirst.length - 1 : -1;
  for (let i = path.length - 2; i >= 0; i--) {
    const child = path[i]!;
    const parent = path[i + 1]!;
    if (!verifySignature(parent.publicKey, child.signatureAlgorithm, child.tbs, child.signatureValue)) {
      // The root the chain was matched to by key identifier comes from chain state (the vendor's
      // roots), not from the evidence: the evidence may chain to another root of the same key
      // identifier. That is a state reason, not bytes that are bad whatever the state.
      if (i === rootLink) {
        throw new AttestationError(
          'ATTEST_UNTRUSTED_ROOT',
          `${child.subject.text} was not issued by the key of the trusted root ${parent.subject.text}`,
        );
      }
      throw new AttestationError(
        'ATTEST_BAD_SIGNATURE',
        `signature on ${child.subject.text} does not verify with the key of ${parent.subject.text}`,
      );
    }
  }
  return { path, anchor };
}

/** Refuses a leaf whose keyUsage, when present, does not allow signing evidence. */
export function requireDigitalSignature(cert: Certificate): void {
  if (cert.keyUsage && !cert.keyUsage.digitalSignature) {
    throw new AttestationError(
      'ATTEST_KEY_USAGE',
      `${cert.subject.text} may not sign (keyUsage lacks digitalSignature)`,
    );
  }
}

/** The extendedKeyUsage purposes (OIDs) of a certificate, or null when it has no such extension. */
export function extendedKeyUsage(cert: Certificate): string[] | null {
  const e = getExtension(cert, X509_OID.extKeyUsage);
  if (!e) return null;
  return sequence(parseDer(e.value), 'extKeyUsage', 1).map((n) => readOid(n, 'KeyPurposeId'));
}

/**
 * Refuses a certificate whose extendedKeyUsage is present but does not name `purpose` (RFC 5280
 * §4.2.1.12: the key may then be used only for the purposes listed), and, when `required`, one
 * without the extension.
 */
export function requireExtendedKeyUsage(cert: Certificate, purpose: string, required: boolean): void {
  const purposes = extendedKeyUsage(cert);
  if (purposes === null) {
    if (!required) return;
    throw new AttestationError(
      'ATTEST_KEY_USAGE',
      `${cert.subject.text} has no extendedKeyUsage, and its vendor requires purpose ${purpose}`,
    );
  }
  if (!purposes.includes(purpose)) {
    throw new AttestationError(
      'ATTEST_KEY_USAGE',
      `${cert.subject.text} is for ${purposes.join(', ')} (extendedKeyUsage), not ${purpose}`,
    );
  }
}

/**
 * Parses a vendor's roots, which come from chain state (governance), not from the evidence: one
 * that does not parse is refused as ATTEST_UNTRUSTED_ROOT, not ATTEST_MALFORMED, because
 * ATTEST_MALFORMED means the evidence's own bytes are bad whatever the state (node policy caches
 * such refusals for good and blames the relay: node mempool.ts PROVABLY_BAD_EVIDENCE).
 */
export function parseTrustedRoots(ders: readonly Uint8Array[]): Certificate[] {
  return ders.map((d, i) => {
    try {
      return parseCertificate(d);
    } catch (err) {
      if (err instanceof AttestationError)
        throw new AttestationError(
          'ATTEST_UNTRUSTED_ROOT',
          `vendor root ${i} does not parse: ${err.message}`,
        );
      throw err;
    }
  });
}

/** Parses a list of DER certificates, naming the one that fails. */
export function parseCertificates(ders: readonly Uint8Array[], what: string): Certificate[] {
  return ders.map((d, i) => {
    try {
      return parseCertificate(d);
    } catch (err) {
      if (err instanceof AttestationError) throw malformed(`${what} ${i}: ${err.message}`);
      throw err;
    }
  });
}
