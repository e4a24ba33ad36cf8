/**
 * The TPM structures the miner reads and writes: TPMT_PUBLIC (key templates and the keys the TPM
 * returns), TPMS_ATTEST (what a quote or a time attestation says) and TPMT_SIGNATURE, plus the
 * conversions to what the rest of the world understands (SubjectPublicKeyInfo, DER signatures).
 */
import { constants, createHash, createPublicKey, verify as cryptoVerify, KeyObject } from 'node:crypto';
import { DecodeError, equalBytes, type Reader, type Writer } from '@unc/core';
import { ecdsaSignatureDer } from '../asn1/der.js';
import { HASH_NAMES, TPM_ALG, TPM_ECC, TPM_GENERATED_VALUE, TPM_ST, TPMA_OBJECT } from './constants.js';
import {
  marshal,
  type PcrSelection,
  readPcrSelections,
  readTpm2b,
  unmarshal,
  writeTpm2b,
} from './marshal.js';

/** A scheme with an optional hash: TPMT_SIG_SCHEME, TPMT_ECC_SCHEME, TPMT_RSA_SCHEME, TPMT_KDF_SCHEME. */
export interface Scheme {
  readonly scheme: number;
  /** Absent exactly when `scheme` is TPM_ALG_NULL (or a scheme without details, like RSAES). */
  readonly hashAlg?: number;
}

/** TPMT_SYM_DEF_OBJECT: NULL for signing keys, e.g. AES-128-CFB for storage parents. */
export interface SymmetricDef {
  readonly algorithm: number;
  readonly keyBits?: number;
  readonly mode?: number;
}

interface PublicCommon {
  readonly nameAlg: number;
  readonly objectAttributes: number;
  readonly authPolicy: Uint8Array;
  readonly symmetric: SymmetricDef;
  readonly scheme: Scheme;
}

export interface EccPublic extends PublicCommon {
  readonly type: 'ecc';
  readonly curve: number;
  readonly kdf: Scheme;
  readonly x: Uint8Array;
  readonly y: Uint8Array;
}

export interface RsaPublic extends PublicCommon {
  readonly type: 'rsa';
  readonly keyBits: number;
  /** 0 means the default exponent 65537. */
  readonly exponent: number;
  readonly modulus: Uint8Array;
}

/** TPMT_PUBLIC for the two asymmetric key types the miner uses. */
export type TpmtPublic = EccPublic | RsaPublic;

const NULL_SCHEME: Scheme = { scheme: TPM_ALG.NULL };
const NULL_SYM: SymmetricDef = { algorithm: TPM_ALG.NULL };

// TPM_ALG_RSAES has no details; TPM_ALG_ECDAA carries a count as well as a hash.
const RSAES = 0x0015;
const ECDAA = 0x001a;

function writeScheme(w: Writer, s: Scheme): void {
  w.u16(s.scheme);
  if (s.scheme === TPM_ALG.NULL || s.scheme === RSAES) return;
  if (s.hashAlg === undefined)
    throw new RangeError(`scheme 0x${s.scheme.toString(16)} needs a hash algorithm`);
  w.u16(s.hashAlg);
}

function readScheme(r: Reader, what: string): Scheme {
  const scheme = r.u16(what);
  if (scheme === TPM_ALG.NULL || scheme === RSAES) return { scheme };
  if (scheme === ECDAA) throw new DecodeError('ECDAA schemes are not supported');
  return { scheme, hashAlg: r.u16(`${what} hash`) };
}

function writeSymmetric(w: Writer, s: SymmetricDef): void {
  w.u16(s.algorithm);
  if (s.algorithm === TPM_ALG.NULL) return;
  if (s.keyBits === undefined || s.mode === undefined)
    throw new RangeError('symmetric definition needs keyBits and mode');
  w.u16(s.keyBits);
  w.u16(s.mode);
}

function readSymmetric(r: Reader): SymmetricDef {
  const algorithm = r.u16('symmetric algorithm');
  if (algorithm === TPM_ALG.NULL) return { algorithm };
  return { algorithm, keyBits: r.u16('symmetric keyBits'), mode: r.u16('symmetric mode') };
}

export function writePublic(w: Writer, p: TpmtPublic): void {
  w.u16(p.type === 'ecc' ? TPM_ALG.ECC : TPM_ALG.RSA);
  w.u16(p.nameAlg);
  w.u32(p.objectAttributes);
  writeTpm2b(w, p.authPolicy);
  writeSymmetric(w, p.symmetric);
  writeScheme(w, p.scheme);
  if (p.type === 'ecc') {
    w.u16(p.curve);
    writeScheme(w, p.kdf);
    writeTpm2b(w, p.x);
    writeTpm2b(w, p.y);
  } else {
    w.u16(p.keyBits);
    w.u32(p.exponent);
    writeTpm2b(w, p.modulus);
  }
}

export function readPublic(r: Reader): TpmtPublic {
  const type = r.u16('TPMT_PUBLIC type');
  if (type !== TPM_ALG.ECC && type !== TPM_ALG.RSA) {
    throw new DecodeError(`unsupported TPMT_PUBLIC type 0x${type.toString(16)} (only RSA and ECC keys)`);
  }
  const nameAlg = r.u16('nameAlg');
  const objectAttributes = r.u32('objectAttributes');
  const authPolicy = readTpm2b(r, 'authPolicy', 64);
  const symmetric = readSymmetric(r);
  const scheme = readScheme(r, 'scheme');
  if (type === TPM_ALG.ECC) {
    const curve = r.u16('curveID');
    const kdf = readScheme(r, 'kdf');
    const x = readTpm2b(r, 'ECC x', 128);
    const y = readTpm2b(r, 'ECC y', 128);
    return { type: 'ecc', nameAlg, objectAttributes, authPolicy, symmetric, scheme, curve, kdf, x, y };
  }
  const keyBits = r.u16('keyBits');
  const exponent = r.u32('exponent');
  const modulus = readTpm2b(r, 'RSA modulus', 512);
  return {
    type: 'rsa',
    nameAlg,
    objectAttributes,
    authPolicy,
    symmetric,
    scheme,
    keyBits,
    exponent,
    modulus,
  };
}

/** Marshalled TPMT_PUBLIC. */
export function marshalPublic(p: TpmtPublic): Uint8Array {
  return marshal((w) => writePublic(w, p));
}

export function unmarshalPublic(tpmtPublic: Uint8Array): TpmtPublic {
  return unmarshal(tpmtPublic, 'TPMT_PUBLIC', readPublic);
}

/** The public area inside a TPM2B_PUBLIC (the u16 size prefix removed). */
export function unwrapTpm2bPublic(tpm2bPublic: Uint8Array): Uint8Array {
  return unmarshal(tpm2bPublic, 'TPM2B_PUBLIC', (r) => readTpm2b(r, 'TPM2B_PUBLIC'));
}

/**
 * TPM 2.0 Part 1 §16: an object's Name is nameAlg ‖ H_nameAlg(TPMT_PUBLIC). Quotes name their
 * signer by it, so a verifier can tie an attestation to a public key without trusting the TPM.
 */
export function objectName(tpmtPublic: Uint8Array): Uint8Array {
  const nameAlg = unmarshalPublic(tpmtPublic).nameAlg;
  const hash = HASH_NAMES.get(nameAlg);
  if (!hash) throw new RangeError(`unsupported nameAlg 0x${nameAlg.toString(16)}`);
  const digest = createHash(hash).update(tpmtPublic).digest();
  const out = new Uint8Array(2 + digest.length);
  out[0] = nameAlg >> 8;
  out[1] = nameAlg & 0xff;
  out.set(digest, 2);
  return out;
}

const CURVES: ReadonlyMap<number, { jwk: string; size: number }> = new Map([
  [TPM_ECC.NIST_P256, { jwk: 'P-256', size: 32 }],
  [TPM_ECC.NIST_P384, { jwk: 'P-384', size: 48 }],
]);

function leftPad(bytes: Uint8Array, size: number): Uint8Array {
  if (bytes.length > size)
    throw new DecodeError(`coordinate of ${bytes.length} bytes is too long for the curve`);
  const out = new Uint8Array(size);
  out.set(bytes, size - bytes.length);
  return out;
}

function b64url(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64url');
}

export function publicKeyObject(p: TpmtPublic): KeyObject {
  if (p.type === 'ecc') {
    const curve = CURVES.get(p.curve);
    if (!curve) throw new RangeError(`unsupported ECC curve 0x${p.curve.toString(16)}`);
    return createPublicKey({
      key: {
        kty: 'EC',
        crv: curve.jwk,
        x: b64url(leftPad(p.x, curve.size)),
        y: b64url(leftPad(p.y, curve.size)),
      },
      format: 'jwk',
    });
  }
  const e = p.exponent === 0 ? 65537 : p.exponent;
  let eBytes = Uint8Array.of(e >>> 24, (e >>> 16) & 0xff, (e >>> 8) & 0xff, e & 0xff);
  while (eBytes.length > 1 && eBytes[0] === 0) eBytes = eBytes.subarray(1);
  return createPublicKey({ key: { kty: 'RSA', n: b64url(p.modulus), e: b64url(eBytes) }, format: 'jwk' });
}

/** The key as an X.509 SubjectPublicKeyInfo (DER), the form certificates carry. */
export function publicKeyToSpki(p: TpmtPublic): Uint8Array {
  return new Uint8Array(publicKeyObject(p).export({ type: 'spki', format: 'der' }));
}

// ---- key templates --------------------------------------------------------------------------

export type AkAlgorithm = 'ecc-p256' | 'ecc-p384' | 'rsa-2048';

/**
 * The attributes of an attestation key: it never leaves this TPM (fixedTPM, fixedParent), it was
 * generated inside it (sensitiveDataOrigin), and it is restricted, so it signs only digests the
 * TPM computed itself and cannot be made to sign a forged TPMS_ATTEST.
 */
export const AK_ATTRIBUTES =
  TPMA_OBJECT.fixedTPM |
  TPMA_OBJECT.fixedParent |
  TPMA_OBJECT.sensitiveDataOrigin |
  TPMA_OBJECT.userWithAuth |
  TPMA_OBJECT.restricted |
  TPMA_OBJECT.sign;

/**
 * The AK template. It is the template `tpm2_createprimary -G ecc256:ecdsa-sha256:null -a
 * 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign'` produces, so that the
 * same TPM yields the same primary key through either tool.
 */
export function akTemplate(algorithm: AkAlgorithm = 'ecc-p256'): TpmtPublic {
  const common = { objectAttributes: AK_ATTRIBUTES, authPolicy: new Uint8Array(0), symmetric: NULL_SYM };
  switch (algorithm) {
    case 'ecc-p256':
      return {
        type: 'ecc',
        nameAlg: TPM_ALG.SHA256,
        ...common,
        scheme: { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA256 },
        curve: TPM_ECC.NIST_P256,
        kdf: NULL_SCHEME,
        x: new Uint8Array(0),
        y: new Uint8Array(0),
      };
    case 'ecc-p384':
      return {
        type: 'ecc',
        nameAlg: TPM_ALG.SHA256,
        ...common,
        scheme: { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA384 },
        curve: TPM_ECC.NIST_P384,
        kdf: NULL_SCHEME,
        x: new Uint8Array(0),
        y: new Uint8Array(0),
      };
    case 'rsa-2048':
      return {
        type: 'rsa',
        nameAlg: TPM_ALG.SHA256,
        ...common,
        scheme: { scheme: TPM_ALG.RSASSA, hashAlg: TPM_ALG.SHA256 },
        keyBits: 2048,
        exponent: 0,
        modulus: new Uint8Array(0),
      };
  }
}

/** An ECC P-256 storage parent (like tpm2_createprimary's default), for TPM2_Create children. */
export function storageKeyTemplate(): TpmtPublic {
  return {
    type: 'ecc',
    nameAlg: TPM_ALG.SHA256,
    objectAttributes:
      TPMA_OBJECT.fixedTPM |
      TPMA_OBJECT.fixedParent |
      TPMA_OBJECT.sensitiveDataOrigin |
      TPMA_OBJECT.userWithAuth |
      TPMA_OBJECT.noDA |
      TPMA_OBJECT.restricted |
      TPMA_OBJECT.decrypt,
    authPolicy: new Uint8Array(0),
    symmetric: { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB },
    scheme: NULL_SCHEME,
    curve: TPM_ECC.NIST_P256,
    kdf: NULL_SCHEME,
    x: new Uint8Array(0),
    y: new Uint8Array(0),
  };
}

/** True when the key has every attribute an attestation key must have. */
export function isAttestationKey(p: TpmtPublic): boolean {
  return (
    (p.objectAttributes & AK_ATTRIBUTES) === AK_ATTRIBUTES && (p.objectAttributes & TPMA_OBJECT.decrypt) === 0
  );
}

// ---- TPMS_ATTEST -----------------------------------------------------------------------------

/** TPMS_CLOCK_INFO: resetCount and restartCount reveal every reboot and resume of the TPM. */
export interface ClockInfo {
  readonly clock: bigint;
  readonly resetCount: number;
  readonly restartCount: number;
  readonly safe: boolean;
}

export type Attested =
  | { readonly type: 'quote'; readonly pcrSelect: PcrSelection[]; readonly pcrDigest: Uint8Array }
  | {
      readonly type: 'time';
      readonly time: bigint;
      readonly clockInfo: ClockInfo;
      readonly firmwareVersion: bigint;
    }
  | { readonly type: 'certify'; readonly name: Uint8Array; readonly qualifiedName: Uint8Array }
  | { readonly type: 'other'; readonly tag: number; readonly body: Uint8Array };

export interface TpmsAttest {
  readonly magic: number;
  /** TPM_ST_ATTEST_*. */
  readonly type: number;
  /** The Name of the signing key. */
  readonly qualifiedSigner: Uint8Array;
  /** The caller's qualifyingData: the message the attestation is bound to. */
  readonly extraData: Uint8Array;
  readonly clockInfo: ClockInfo;
  readonly firmwareVersion: bigint;
  readonly attested: Attested;
}

function readClockInfo(r: Reader): ClockInfo {
  const clock = r.u64('clock');
  const resetCount = r.u32('resetCount');
  const restartCount = r.u32('restartCount');
  const safe = r.u8('safe');
  if (safe > 1) throw new DecodeError(`TPMI_YES_NO must be 0 or 1, got ${safe}`);
  return { clock, resetCount, restartCount, safe: safe === 1 };
}

/** Parses a marshalled TPMS_ATTEST (what `tpm2_quote -m` writes); rejects a wrong magic. */
export function parseAttest(bytes: Uint8Array): TpmsAttest {
  return unmarshal(bytes, 'TPMS_ATTEST', (r) => {
    const magic = r.u32('magic');
    if (magic !== TPM_GENERATED_VALUE)
      throw new DecodeError(`TPMS_ATTEST magic 0x${magic.toString(16)} is not TPM_GENERATED_VALUE`);
    const type = r.u16('TPMS_ATTEST type');
    const qualifiedSigner = readTpm2b(r, 'qualifiedSigner', 70);
    const extraData = readTpm2b(r, 'extraData', 66);
    const clockInfo = readClockInfo(r);
    const firmwareVersion = r.u64('firmwareVersion');
    let attested: Attested;
    if (type === TPM_ST.ATTEST_QUOTE) {
      const pcrSelect = readPcrSelections(r);
      attested = { type: 'quote', pcrSelect, pcrDigest: readTpm2b(r, 'pcrDigest', 64) };
    } else if (type === TPM_ST.ATTEST_TIME) {
      const time = r.u64('time');
      const inner = readClockInfo(r);
      attested = { type: 'time', time, clockInfo: inner, firmwareVersion: r.u64('firmwareVersion') };
    } else if (type === TPM_ST.ATTEST_CERTIFY) {
      const name = readTpm2b(r, 'name', 70);
      attested = { type: 'certify', name, qualifiedName: readTpm2b(r, 'qualifiedName', 70) };
    } else {
      attested = { type: 'other', tag: type, body: r.raw(r.remaining, 'attested') };
    }
    return { magic, type, qualifiedSigner, extraData, clockInfo, firmwareVersion, attested };
  });
}

// ---- TPMT_SIGNATURE --------------------------------------------------------------------------

export type TpmtSignature =
  | { readonly sigAlg: 'ecdsa'; readonly hashAlg: number; readonly r: Uint8Array; readonly s: Uint8Array }
  | { readonly sigAlg: 'rsassa' | 'rsapss'; readonly hashAlg: number; readonly sig: Uint8Array };

/** Parses a marshalled TPMT_SIGNATURE (what `tpm2_quote -s` writes in its default format). */
export function parseSignature(bytes: Uint8Array): TpmtSignature {
  return unmarshal(bytes, 'TPMT_SIGNATURE', (r) => {
    const alg = r.u16('sigAlg');
    const hashAlg = r.u16('signature hash');
    if (alg === TPM_ALG.ECDSA) {
      const sr = readTpm2b(r, 'ECDSA r', 128);
      return { sigAlg: 'ecdsa', hashAlg, r: sr, s: readTpm2b(r, 'ECDSA s', 128) };
    }
    if (alg === TPM_ALG.RSASSA || alg === TPM_ALG.RSAPSS) {
      return {
        sigAlg: alg === TPM_ALG.RSASSA ? 'rsassa' : 'rsapss',
        hashAlg,
        sig: readTpm2b(r, 'RSA signature', 512),
      };
    }
    throw new DecodeError(`unsupported signature algorithm 0x${alg.toString(16)}`);
  });
}

export function marshalSignature(sig: TpmtSignature): Uint8Array {
  return marshal((w) => {
    if (sig.sigAlg === 'ecdsa') {
      w.u16(TPM_ALG.ECDSA);
      w.u16(sig.hashAlg);
      writeTpm2b(w, sig.r);
      writeTpm2b(w, sig.s);
    } else {
      w.u16(sig.sigAlg === 'rsassa' ? TPM_ALG.RSASSA : TPM_ALG.RSAPSS);
      w.u16(sig.hashAlg);
      writeTpm2b(w, sig.sig);
    }
  });
}

/** An ECDSA signature in X.509 / OpenSSL form (DER ECDSA-Sig-Value). */
export function signatureToDer(sig: TpmtSignature): Uint8Array {
  if (sig.sigAlg !== 'ecdsa') throw new RangeError('only ECDSA signatures have a DER form');
  return ecdsaSignatureDer(sig.r, sig.s);
}

/**
 * Checks a TPMT_SIGNATURE over a TPMS_ATTEST with the signer's public key, the way any verifier
 * without a TPM would: the signature covers H_sigHash(attest). High-S ECDSA values (which TPMs do
 * produce) are accepted, as OpenSSL accepts them.
 */
export function verifyAttestSignature(
  key: TpmtPublic | KeyObject,
  attest: Uint8Array,
  signature: Uint8Array,
): boolean {
  const sig = parseSignature(signature);
  const hash = HASH_NAMES.get(sig.hashAlg);
  if (!hash) return false;
  const keyObject = key instanceof KeyObject ? key : publicKeyObject(key);
  if (sig.sigAlg === 'ecdsa') {
    if (keyObject.asymmetricKeyType !== 'ec') return false;
    return cryptoVerify(hash, attest, keyObject, signatureToDer(sig));
  }
  if (keyObject.asymmetricKeyType !== 'rsa') return false;
  if (sig.sigAlg === 'rsassa') return cryptoVerify(hash, attest, keyObject, sig.sig);
  // TPMs use a salt as long as the digest (or the maximum, on older firmware); AUTO takes both.
  const pss = {
    key: keyObject,
    padding: constants.RSA_PKCS1_PSS_PADDING,
    saltLength: constants.RSA_PSS_SALTLEN_AUTO,
  };
  return cryptoVerify(hash, attest, pss, sig.sig);
}

/**
 * Part 1 §16: the Qualified Name of an object is nameAlg ‖ H(parent's QN ‖ Name), and a
 * hierarchy's QN is its handle. TPMS_ATTEST.qualifiedSigner holds this value for the signing key,
 * so a verifier that knows the AK is a primary key of `hierarchy` can tie the quote to the key.
 */
export function primaryQualifiedName(hierarchy: number, tpmtPublic: Uint8Array): Uint8Array {
  const name = objectName(tpmtPublic);
  const nameAlg = (name[0]! << 8) | name[1]!;
  const handle = Uint8Array.of(
    hierarchy >>> 24,
    (hierarchy >>> 16) & 0xff,
    (hierarchy >>> 8) & 0xff,
    hierarchy & 0xff,
  );
  const digest = createHash(HASH_NAMES.get(nameAlg)!).update(handle).update(name).digest();
  const out = new Uint8Array(2 + digest.length);
  out.set(name.subarray(0, 2));
  out.set(digest, 2);
  return out;
}

/** True when `attest` was signed by the primary key `tpmtPublic` of `hierarchy`. */
export function attestSignedByPrimary(
  attest: TpmsAttest,
  hierarchy: number,
  tpmtPublic: Uint8Array,
): boolean {
  return equalBytes(attest.qualifiedSigner, primaryQualifiedName(hierarchy, tpmtPublic));
}
