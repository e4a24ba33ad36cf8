/**
 * The `tpm2` profile: a TPM 2.0 attestation (TPM2_Quote or TPM2_GetTime, TPMS_ATTEST) signed by an
 * attestation key (AK) whose certificate chains to the vendor's root.
 *
 * Inputs are the bytes tpm2-tools writes: `tpm2_quote -m attest -s sig` and
 * `tpm2_gettime --attestation attest -o sig`, whose default ("tss") signature format is the
 * marshalled TPMT_SIGNATURE. Structures follow TPM 2.0 Library Part 2; all integers big-endian.
 *
 * Chip identity: the TCG HardwareModuleName (RFC 4108) in the AK certificate's subjectAltName when
 * the vendor puts one there (TCG "TPM 2.0 Keys for Device Identity and Attestation": IAK/IDevID
 * certificates carry the device's hwType and hwSerialNum), otherwise the AK public key itself. A
 * vendor's CA is expected to certify one AK per device, or to name the device in every certificate;
 * a vendor's registry entry can require the latter (requireHardwareModuleName). An AK certificate
 * with an extendedKeyUsage must name tcg-kp-AIKCertificate (2.23.133.8.3); a vendor can require
 * the extension (requireAkEku).
 */

import { equalBytes, toHex } from '../bytes.js';
import { taggedHash } from '../crypto/hash.js';
import { digest as platformDigest } from '../platform/node.js';
import { readOctetString, readOid, sequence } from './der.js';
import { AttestationError, malformed } from './errors.js';
import { ATTESTED_MESSAGE_LENGTH, type AttestedStatement } from './types.js';
import {
  type Certificate,
  certificateRevocationId,
  earliestNotAfterMs,
  ecScalarLength,
  type HashName,
  parseCertificate,
  parseCertificates,
  parseTrustedRoots,
  publicKeyIdentity,
  requireDigitalSignature,
  requireExtendedKeyUsage,
  type SignatureAlgorithm,
  type SubjectPublicKey,
  type SubjectPublicKeyInfo,
  subjectAltNames,
  verifyChain,
  verifySignature,
  X509_OID,
} from './x509.js';

export const TPM_GENERATED_VALUE = 0xff544347;
export const TPM_ST_ATTEST_QUOTE = 0x8018;
export const TPM_ST_ATTEST_TIME = 0x8019;

export const TPM_ALG = {
  RSA: 0x0001,
  SHA1: 0x0004,
  SHA256: 0x000b,
  SHA384: 0x000c,
  SHA512: 0x000d,
  NULL: 0x0010,
  RSASSA: 0x0014,
  RSAPSS: 0x0016,
  ECDSA: 0x0018,
  ECDAA: 0x001a,
  ECC: 0x0023,
} as const;

export const TPM_ECC_CURVE = { NIST_P256: 0x0003, NIST_P384: 0x0004 } as const;

/** TPMA_OBJECT bits (Part 2 §8.3). */
export const TPMA_OBJECT = {
  fixedTPM: 1 << 1,
  fixedParent: 1 << 4,
  sensitiveDataOrigin: 1 << 5,
  userWithAuth: 1 << 6,
  restricted: 1 << 16,
  decrypt: 1 << 17,
  sign: 1 << 18,
} as const;

const HASHES: Record<number, { name: HashName; size: number }> = {
  [TPM_ALG.SHA256]: { name: 'sha256', size: 32 },
  [TPM_ALG.SHA384]: { name: 'sha384', size: 48 },
  [TPM_ALG.SHA512]: { name: 'sha512', size: 64 },
};

/** Big-endian reader over TPM marshalled structures; every failure is ATTEST_MALFORMED. */
class TpmReader {
  private pos = 0;
  constructor(
    private readonly buf: Uint8Array,
    private readonly what: string,
  ) {}
  private take(n: number, field: string): Uint8Array {
    if (this.pos + n > this.buf.length) throw malformed(`${this.what}: truncated at ${field}`);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  u8(field: string): number {
    return this.take(1, field)[0]!;
  }
  u16(field: string): number {
    const b = this.take(2, field);
    return (b[0]! << 8) | b[1]!;
  }
  u32(field: string): number {
    const b = this.take(4, field);
    return ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
  }
  u64(field: string): bigint {
    return (BigInt(this.u32(field)) << 32n) | BigInt(this.u32(field));
  }
  /** A TPM2B: u16 size then that many bytes, at most `max`. */
  sized(field: string, max: number): Uint8Array {
    const n = this.u16(`${field} size`);
    if (n > max) throw malformed(`${this.what}: ${field} is ${n} bytes, at most ${max} allowed`);
    return this.take(n, field);
  }
  end(): void {
    if (this.pos !== this.buf.length)
      throw malformed(`${this.what}: ${this.buf.length - this.pos} trailing bytes`);
  }
}

export interface TpmClockInfo {
  readonly clock: bigint;
  readonly resetCount: number;
  readonly restartCount: number;
  readonly safe: boolean;
}

export type TpmAttested =
  | {
      readonly type: 'quote';
      readonly pcrSelect: readonly { readonly hash: number; readonly select: Uint8Array }[];
      readonly pcrDigest: Uint8Array;
    }
  | {
      readonly type: 'time';
      readonly time: bigint;
      readonly clockInfo: TpmClockInfo;
      readonly firmwareVersion: bigint;
    };

export interface TpmsAttest {
  readonly type: number;
  /** TPM2B_NAME contents: the qualified name of the signing key. */
  readonly qualifiedSigner: Uint8Array;
  /** TPM2B_DATA contents: the caller's qualifying data, here H(m). */
  readonly extraData: Uint8Array;
  readonly clockInfo: TpmClockInfo;
  readonly firmwareVersion: bigint;
  readonly attested: TpmAttested;
}

function readClockInfo(r: TpmReader): TpmClockInfo {
  const clock = r.u64('clock');
  const resetCount = r.u32('resetCount');
  const restartCount = r.u32('restartCount');
  const safe = r.u8('safe');
  if (safe > 1) throw malformed(`TPMS_ATTEST: safe must be 0 or 1, got ${safe}`);
  return { clock, resetCount, restartCount, safe: safe === 1 };
}

/** TPMS_ATTEST of a quote or a time attestation (Part 2 §10.12.12). */
export function parseTpmsAttest(bytes: Uint8Array): TpmsAttest {
  const r = new TpmReader(bytes, 'TPMS_ATTEST');
  const magic = r.u32('magic');
  // The magic is what stops a restricted key from being made to sign a forged TPMS_ATTEST.
  if (magic !== TPM_GENERATED_VALUE)
    throw malformed(`TPMS_ATTEST: magic 0x${magic.toString(16)} is not TPM_GENERATED`);
  const type = r.u16('type');
  const qualifiedSigner = r.sized('qualifiedSigner', 2 + 64);
  const extraData = r.sized('extraData', 64);
  const clockInfo = readClockInfo(r);
  const firmwareVersion = r.u64('firmwareVersion');
  let attested: TpmAttested;
  if (type === TPM_ST_ATTEST_QUOTE) {
    const count = r.u32('pcrSelect count');
    if (count > 16) throw malformed(`TPMS_ATTEST: ${count} PCR banks`);
    const pcrSelect: { hash: number; select: Uint8Array }[] = [];
    for (let i = 0; i < count; i++) {
      const hash = r.u16('pcrSelect hash');
      const size = r.u8('sizeofSelect');
      if (size > 8) throw malformed(`TPMS_ATTEST: sizeofSelect ${size}`);
      const select = new Uint8Array(size);
      for (let j = 0; j < size; j++) select[j] = r.u8('pcrSelect');
      pcrSelect.push({ hash, select });
    }
    attested = { type: 'quote', pcrSelect, pcrDigest: r.sized('pcrDigest', 64) };
  } else if (type === TPM_ST_ATTEST_TIME) {
    const time = r.u64('time');
    const inner = readClockInfo(r);
    attested = { type: 'time', time, clockInfo: inner, firmwareVersion: r.u64('firmwareVersion') };
  } else {
    throw malformed(
      `TPMS_ATTEST: type 0x${type.toString(16)} is neither a quote (0x8018) nor a time attestation (0x8019)`,
    );
  }
  r.end();
  return { type, qualifiedSigner, extraData, clockInfo, firmwareVersion, attested };
}

export type TpmtSignature =
  | { readonly sigAlg: 'ecdsa'; readonly hash: HashName; readonly r: Uint8Array; readonly s: Uint8Array }
  | { readonly sigAlg: 'rsassa' | 'rsapss'; readonly hash: HashName; readonly signature: Uint8Array };

function readHashAlg(r: TpmReader, field: string): HashName {
  const alg = r.u16(field);
  const h = HASHES[alg];
  if (!h) throw malformed(`TPM: hash algorithm 0x${alg.toString(16)} is not accepted (SHA-256/384/512 only)`);
  return h.name;
}

/** TPMT_SIGNATURE with ECDSA, RSASSA or RSAPSS (Part 2 §11.3.4). */
export function parseTpmtSignature(bytes: Uint8Array): TpmtSignature {
  const r = new TpmReader(bytes, 'TPMT_SIGNATURE');
  const alg = r.u16('sigAlg');
  let out: TpmtSignature;
  if (alg === TPM_ALG.ECDSA) {
    const hash = readHashAlg(r, 'hash');
    const sr = r.sized('signatureR', 66);
    const ss = r.sized('signatureS', 66);
    out = { sigAlg: 'ecdsa', hash, r: sr, s: ss };
  } else if (alg === TPM_ALG.RSASSA || alg === TPM_ALG.RSAPSS) {
    const hash = readHashAlg(r, 'hash');
    out = { sigAlg: alg === TPM_ALG.RSASSA ? 'rsassa' : 'rsapss', hash, signature: r.sized('sig', 1024) };
  } else {
    throw malformed(`TPMT_SIGNATURE: signature algorithm 0x${alg.toString(16)} is not supported`);
  }
  r.end();
  return out;
}

export type TpmtPublic =
  | {
      readonly type: 'ecc';
      readonly nameAlg: number;
      readonly objectAttributes: number;
      readonly authPolicy: Uint8Array;
      readonly scheme: { readonly alg: number; readonly hash: number | null };
      readonly curve: 'P-256' | 'P-384';
      readonly x: Uint8Array;
      readonly y: Uint8Array;
      /** nameAlg ‖ H_nameAlg(TPMT_PUBLIC): the object's TPM name. */
      readonly name: Uint8Array;
    }
  | {
      readonly type: 'rsa';
      readonly nameAlg: number;
      readonly objectAttributes: number;
      readonly authPolicy: Uint8Array;
      readonly scheme: { readonly alg: number; readonly hash: number | null };
      readonly keyBits: number;
      /** The public exponent; 0 in the structure means the default 65537. */
      readonly exponent: number;
      readonly modulus: Uint8Array;
      readonly name: Uint8Array;
    };

function readSymmetric(r: TpmReader): void {
  const alg = r.u16('symmetric algorithm');
  if (alg !== TPM_ALG.NULL) {
    r.u16('symmetric keyBits');
    r.u16('symmetric mode');
  }
}

function readScheme(r: TpmReader): { alg: number; hash: number | null } {
  const alg = r.u16('scheme');
  if (alg === TPM_ALG.NULL) return { alg, hash: null };
  const hash = r.u16('scheme hash');
  if (alg === TPM_ALG.ECDAA) r.u16('ECDAA count');
  return { alg, hash };
}

/** TPM2B_PUBLIC (as `tpm2_readpublic -o` writes it) of an ECC or RSA key. */
export function parseTpm2bPublic(bytes: Uint8Array): TpmtPublic {
  const outer = new TpmReader(bytes, 'TPM2B_PUBLIC');
  const body = outer.sized('publicArea', 1024);
  outer.end();
  const r = new TpmReader(body, 'TPMT_PUBLIC');
  const type = r.u16('type');
  const nameAlg = r.u16('nameAlg');
  const nameHash = HASHES[nameAlg];
  if (!nameHash) throw malformed(`TPMT_PUBLIC: nameAlg 0x${nameAlg.toString(16)} is not supported`);
  const objectAttributes = r.u32('objectAttributes');
  const authPolicy = r.sized('authPolicy', 64);
  const digest = platformDigest(nameHash.name, body);
  const name = new Uint8Array(2 + digest.length);
  name[0] = nameAlg >> 8;
  name[1] = nameAlg & 0xff;
  name.set(digest, 2);
  let out: TpmtPublic;
  if (type === TPM_ALG.ECC) {
    readSymmetric(r);
    const scheme = readScheme(r);
    const curveId = r.u16('curveID');
    const kdf = r.u16('kdf');
    if (kdf !== TPM_ALG.NULL) r.u16('kdf hash');
    const curve =
      curveId === TPM_ECC_CURVE.NIST_P256 ? 'P-256' : curveId === TPM_ECC_CURVE.NIST_P384 ? 'P-384' : null;
    if (!curve) throw malformed(`TPMT_PUBLIC: ECC curve 0x${curveId.toString(16)} is not supported`);
    const x = r.sized('x', 48);
    const y = r.sized('y', 48);
    out = { type: 'ecc', nameAlg, objectAttributes, authPolicy, scheme, curve, x, y, name };
  } else if (type === TPM_ALG.RSA) {
    readSymmetric(r);
    const scheme = readScheme(r);
    const keyBits = r.u16('keyBits');
    const exponent = r.u32('exponent');
    const modulus = r.sized('unique', 512);
    out = { type: 'rsa', nameAlg, objectAttributes, authPolicy, scheme, keyBits, exponent, modulus, name };
  } else {
    throw malformed(`TPMT_PUBLIC: key type 0x${type.toString(16)} is not supported`);
  }
  r.end();
  return out;
}

function stripZeros(b: Uint8Array): Uint8Array {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.subarray(i);
}

/** True when a TPM public area holds the same key as a certificate's SubjectPublicKeyInfo. */
export function tpmPublicMatchesKey(pub: TpmtPublic, key: SubjectPublicKey): boolean {
  if (pub.type === 'ecc') {
    if (key.kind !== 'ec' || key.curve !== pub.curve) return false;
    const size = ecScalarLength(key)!;
    const x = leftPad(pub.x, size);
    const y = leftPad(pub.y, size);
    if (!x || !y) return false;
    return equalBytes(key.point.subarray(1, 1 + size), x) && equalBytes(key.point.subarray(1 + size), y);
  }
  if (key.kind !== 'rsa') return false;
  const e = pub.exponent === 0 ? 65537 : pub.exponent;
  let ke = 0;
  for (const b of key.exponent) ke = ke * 256 + b;
  return ke === e && equalBytes(stripZeros(pub.modulus), key.modulus);
}

/** Left-pads a big-endian scalar to `size` bytes; null if it does not fit. */
function leftPad(b: Uint8Array, size: number): Uint8Array | null {
  const v = stripZeros(b);
  if (v.length > size) return null;
  const out = new Uint8Array(size);
  out.set(v, size - v.length);
  return out;
}

/** Verifies a TPMT_SIGNATURE over `attest` with the AK certificate's key. */
export function verifyTpmSignature(
  spki: SubjectPublicKeyInfo,
  attest: Uint8Array,
  sig: TpmtSignature,
): boolean {
  if (sig.sigAlg === 'ecdsa') {
    const size = ecScalarLength(spki.key);
    if (size === null) return false;
    // TPMs may drop leading zero bytes of r and s; the raw encoding wants both at full width.
    const r = leftPad(sig.r, size);
    const s = leftPad(sig.s, size);
    if (!r || !s) return false;
    const raw = new Uint8Array(2 * size);
    raw.set(r, 0);
    raw.set(s, size);
    return verifySignature(spki, { kind: 'ecdsa', hash: sig.hash }, attest, raw, 'raw');
  }
  const alg: SignatureAlgorithm =
    sig.sigAlg === 'rsassa'
      ? { kind: 'rsa-pkcs1', hash: sig.hash }
      : // TPMs pick the PSS salt length themselves (the maximum, or the digest size in FIPS mode).
        { kind: 'rsa-pss', hash: sig.hash, saltLength: null };
  return verifySignature(spki, alg, attest, sig.signature);
}

const HMN_TYPE = X509_OID.hardwareModuleName;

/** The HardwareModuleName (RFC 4108) of a certificate's SAN, as its DER, or null. */
export function hardwareModuleName(
  cert: Certificate,
): { der: Uint8Array; hwType: string; hwSerialNum: Uint8Array } | null {
  const hmn = subjectAltNames(cert).filter((n) => n.kind === 'otherName' && n.typeId === HMN_TYPE);
  if (hmn.length === 0) return null;
  if (hmn.length > 1) throw malformed('AK certificate names more than one hardware module');
  const entry = hmn[0]!;
  if (entry.kind !== 'otherName') return null;
  const [type, serial] = sequence(entry.value, 'HardwareModuleName', 2, 2);
  return {
    der: entry.value.der,
    hwType: readOid(type, 'hwType'),
    hwSerialNum: readOctetString(serial, 'hwSerialNum'),
  };
}

const TPM_MODEL_OID = '2.23.133.2.2';

/** The TCG tpmModel attribute, from the subject or from a directoryName in the SAN. */
export function tpmModel(cert: Certificate): string | null {
  const fromSubject = cert.subject.attributes.find((a) => a.oid === TPM_MODEL_OID);
  if (fromSubject) return fromSubject.value;
  for (const n of subjectAltNames(cert)) {
    if (n.kind !== 'directoryName') continue;
    const a = n.name.attributes.find((x) => x.oid === TPM_MODEL_OID);
    if (a) return a.value;
  }
  return null;
}

/**
 * The chip id an AK has when its certificate names no HardwareModuleName: a hash of the key itself.
 * Also what the chain indexes every tpm2 chip's AK by, whatever its chip id: the same AK certified
 * once with a device name and once without would otherwise be two chips of one TPM.
 */
export function tpm2AkKeyId(akKey: SubjectPublicKey): Uint8Array {
  return taggedHash('UNC/chip-id/tpm2', Uint8Array.of(2), publicKeyIdentity(akKey));
}

export function tpm2ChipId(ak: Certificate): { chipId: Uint8Array; identity: string } {
  const hmn = hardwareModuleName(ak);
  if (hmn) {
    return {
      chipId: taggedHash('UNC/chip-id/tpm2', Uint8Array.of(1), hmn.der),
      identity: 'hardwareModuleName',
    };
  }
  return { chipId: tpm2AkKeyId(ak.publicKey.key), identity: 'akPublicKey' };
}

export interface Tpm2Input {
  /** TPMS_ATTEST bytes (tpm2_quote -m / tpm2_gettime --attestation). */
  readonly attest: Uint8Array;
  /** TPMT_SIGNATURE bytes (tpm2_quote -s / tpm2_gettime -o, default format). */
  readonly signature: Uint8Array;
  /** DER AK certificate. */
  readonly akCertificate: Uint8Array;
  /** DER certificates from the AK certificate's issuer upwards; the root may be included. */
  readonly chain: readonly Uint8Array[];
  /** DER root certificates of the vendor. */
  readonly roots: readonly Uint8Array[];
  readonly revokedSerials: ReadonlySet<string>;
  /** Block time, ms. */
  readonly atMs: bigint;
  readonly expectedMessage: Uint8Array;
  readonly vendorId?: string;
  /** The vendor requires the AK certificate's extendedKeyUsage, naming tcg-kp-AIKCertificate. */
  readonly requireAkEku?: boolean;
  /** The vendor requires a HardwareModuleName (so one TPM cannot appear as several chips). */
  readonly requireHardwareModuleName?: boolean;
}

/**
 * Checks a TPM attestation against a known AK (SubjectPublicKeyInfo) and the expected message: the
 * part of verifyTpm2 that needs no certificates, for callers that already trust the key
 * (heartbeats of a registered chip). Returns the parsed attestation for its clock.
 */
export function verifyTpm2Attestation(
  attestBytes: Uint8Array,
  signatureBytes: Uint8Array,
  akKey: SubjectPublicKeyInfo,
  expectedMessage: Uint8Array,
): TpmsAttest {
  if (expectedMessage.length !== ATTESTED_MESSAGE_LENGTH)
    throw malformed('expected message must be 32 bytes');
  const attest = parseTpmsAttest(attestBytes);
  const sig = parseTpmtSignature(signatureBytes);
  const keyKind = akKey.key.kind;
  if ((sig.sigAlg === 'ecdsa') !== (keyKind === 'ec')) {
    throw new AttestationError(
      'ATTEST_BAD_SIGNATURE',
      `a ${sig.sigAlg} signature cannot come from a ${keyKind} AK`,
    );
  }
  if (!verifyTpmSignature(akKey, attestBytes, sig)) {
    throw new AttestationError('ATTEST_BAD_SIGNATURE', 'the TPM signature does not verify with the AK');
  }
  if (!equalBytes(attest.extraData, expectedMessage)) {
    throw new AttestationError(
      'ATTEST_WRONG_NONCE',
      `TPM extraData ${toHex(attest.extraData)} is not the expected message ${toHex(expectedMessage)}`,
    );
  }
  return attest;
}

/**
 * Verifies tpm2 evidence: the attestation parses and is TPM-generated, its signature verifies with
 * the AK certificate's key, the AK certificate chains to a root at block time, and extraData is
 * the expected message. The clock, resetCount and restartCount are reported in details for the
 * caller's monotonicity check (checkTpmClockMonotonic) against the chip's previous attestation.
 *
 * A TPM obfuscates resetCount, restartCount and firmwareVersion when the AK is outside the
 * endorsement and platform hierarchies; AKs must be created under the EK for these to be real.
 */
export function verifyTpm2(input: Tpm2Input): AttestedStatement {
  const ak = parseCertificate(input.akCertificate);
  requireDigitalSignature(ak);
  // An AK certificate that lists purposes must list the TCG attestation-key purpose.
  requireExtendedKeyUsage(ak, X509_OID.tcgKpAikCertificate, input.requireAkEku === true);
  // The evidence signature first: it is one verification, and junk should not cost a whole chain.
  const attest = verifyTpm2Attestation(input.attest, input.signature, ak.publicKey, input.expectedMessage);
  const chain = parseCertificates(input.chain, 'chain certificate');
  const roots = parseTrustedRoots(input.roots);
  const verified = verifyChain([ak, ...chain], roots, input.atMs, input.revokedSerials);
  const modelId = tpmModel(ak);
  if (modelId === null)
    throw new AttestationError('ATTEST_UNKNOWN_MODEL', 'the AK certificate names no tpmModel');
  const { chipId, identity } = tpm2ChipId(ak);
  if (input.requireHardwareModuleName && identity !== 'hardwareModuleName') {
    // Without it the chip id is the AK key, and a TPM can make many AKs: many chips of one TPM.
    throw new AttestationError(
      'ATTEST_IDENTITY_REQUIRED',
      `${ak.subject.text} names no HardwareModuleName, which vendor ${input.vendorId ?? ''} requires`,
    );
  }
  const details: Record<string, string | number | bigint> = {
    attestType: attest.attested.type,
    clock: attest.clockInfo.clock,
    resetCount: attest.clockInfo.resetCount,
    restartCount: attest.clockInfo.restartCount,
    safe: attest.clockInfo.safe ? 1 : 0,
    firmwareVersion: attest.firmwareVersion.toString(16).padStart(16, '0'),
    qualifiedSigner: toHex(attest.qualifiedSigner),
    identity,
    akSerial: ak.serialHex,
    // Revocation ids (issuer-scoped serials, certificateRevocationId), under the stable old name.
    certSerials: verified.path.map(certificateRevocationId).join(','),
    // The end of the path's validity (the earliest notAfter): the chip record keeps it (audchip C2).
    certsNotAfterMs: earliestNotAfterMs(verified.path),
    signingKey: toHex(ak.publicKey.der),
    rootSubject: verified.anchor.subject.text,
  };
  if (attest.attested.type === 'quote') details.pcrDigest = toHex(attest.attested.pcrDigest);
  const hmn = hardwareModuleName(ak);
  if (hmn) {
    details.hwType = hmn.hwType;
    details.hwSerialNum = toHex(hmn.hwSerialNum);
  }
  return {
    profile: 'tpm2',
    chipId,
    vendorId: input.vendorId ?? '',
    modelId,
    message: new Uint8Array(input.expectedMessage),
    details,
  };
}

export interface TpmClockState {
  readonly clock: bigint;
  readonly resetCount: number;
  readonly restartCount: number;
}

/**
 * What happened to a chip's TPM between two attestations: the first one seen, the clock running on,
 * a TPM restart (resume: restartCount up) or a reboot (reset: resetCount up, which the liveness
 * rules show as a visible event).
 */
export type TpmClockEvent = 'first' | 'continued' | 'restart' | 'reboot';

/**
 * Pure monotonicity rule for the TPM clock: within one resetCount neither the clock nor the
 * restartCount may go back, and resetCount never goes back. A reset may restart the clock lower (an
 * unorderly shutdown loses the last NV save), so the clock is only compared within one reset.
 */
export function checkTpmClockMonotonic(prev: TpmClockState | null, next: TpmClockState): TpmClockEvent {
  if (prev === null) return 'first';
  if (next.resetCount < prev.resetCount) {
    throw new AttestationError(
      'ATTEST_CLOCK_REGRESSED',
      `TPM resetCount went back from ${prev.resetCount} to ${next.resetCount}`,
    );
  }
  if (next.resetCount > prev.resetCount) return 'reboot';
  if (next.restartCount < prev.restartCount) {
    throw new AttestationError(
      'ATTEST_CLOCK_REGRESSED',
      `TPM restartCount went back from ${prev.restartCount} to ${next.restartCount} without a reset`,
    );
  }
  if (next.clock < prev.clock) {
    throw new AttestationError(
      'ATTEST_CLOCK_REGRESSED',
      `TPM clock went back from ${prev.clock} to ${next.clock}`,
    );
  }
  return next.restartCount > prev.restartCount ? 'restart' : 'continued';
}

/** The same rule applied to statements from verifyTpm2 (reads their details). */
export function tpmClockFromStatement(s: AttestedStatement): TpmClockState {
  const { clock, resetCount, restartCount } = s.details;
  if (
    s.profile !== 'tpm2' ||
    typeof clock !== 'bigint' ||
    typeof resetCount !== 'number' ||
    typeof restartCount !== 'number'
  ) {
    throw new AttestationError('ATTEST_WRONG_PROFILE', 'not a tpm2 statement');
  }
  return { clock, resetCount, restartCount };
}
