/**
 * One entry point for every attestation profile: evidence (as it travels in transactions) plus the
 * trust the chain holds (vendor roots, revocations, allow-lists, the dev-soft switch) plus block
 * time and the expected message, in; one AttestedStatement or one AttestationError, out.
 */
import { toHex } from '../bytes.js';
import { bytes, bytesN, type Codec, list, string, struct, taggedUnion } from '../encoding/codec.js';
import { verifyDevSoft } from './dev-soft.js';
import { AttestationError, type AttestationErrorCode, malformed } from './errors.js';
import { verifyNvidiaSpdm } from './nvidia-spdm.js';
import { verifyRsaAllowList } from './rsa-allowlist.js';
import { verifyTpm2 } from './tpm2.js';
import { ATTESTED_MESSAGE_LENGTH, type AttestationProfile, type AttestedStatement } from './types.js';
import { MAX_CHAIN_LENGTH } from './x509.js';

/** The strict DER reader, as one namespace (its short names would crowd the package's). */
export * as der from './der.js';
export * from './dev-soft.js';
export { AttestationError, type AttestationErrorCode } from './errors.js';
export * from './nvidia-spdm.js';
export * from './rsa-allowlist.js';
export * from './tpm2.js';
export * from './types.js';
export * from './x509.js';

export const MAX_VENDOR_ID_BYTES = 64;
export const MAX_CERTIFICATE_BYTES = 8192;
export const MAX_TPM_ATTEST_BYTES = 2048;
export const MAX_TPM_SIGNATURE_BYTES = 1024;
export const MAX_SPDM_REQUEST_BYTES = 1024;
export const MAX_SPDM_RESPONSE_BYTES = 16384;

export interface Tpm2Evidence {
  readonly type: 'tpm2';
  readonly vendorId: string;
  readonly attest: Uint8Array;
  readonly signature: Uint8Array;
  readonly akCertificate: Uint8Array;
  /** Issuer of the AK certificate first; the root may be left out. */
  readonly chain: readonly Uint8Array[];
}

export interface NvidiaSpdmEvidence {
  readonly type: 'nvidia-spdm';
  readonly vendorId: string;
  readonly request: Uint8Array;
  readonly response: Uint8Array;
  /** Leaf (GSP FMC) first. */
  readonly chain: readonly Uint8Array[];
}

export interface RsaAllowListEvidence {
  readonly type: 'rsa2048-allowlist';
  readonly vendorId: string;
  /** DER SubjectPublicKeyInfo. */
  readonly publicKey: Uint8Array;
  readonly signature: Uint8Array;
}

export interface DevSoftEvidence {
  readonly type: 'dev-soft';
  readonly vendorId: string;
  readonly modelId: string;
  readonly publicKey: Uint8Array;
  readonly signature: Uint8Array;
}

/** Evidence of any profile; `type` is the profile name. */
export type Evidence = Tpm2Evidence | NvidiaSpdmEvidence | RsaAllowListEvidence | DevSoftEvidence;

const vendorId = string(MAX_VENDOR_ID_BYTES, 'vendorId');
const certificate = bytes(MAX_CERTIFICATE_BYTES, 'certificate');
const chain = list(certificate, MAX_CHAIN_LENGTH, 'chain');

/** Canonical encoding of Evidence. Tags are stable forever; a new profile takes a new tag. */
export const evidenceCodec: Codec<Evidence> = taggedUnion<Evidence>('Evidence', {
  tpm2: [
    1,
    struct('Tpm2Evidence', {
      vendorId,
      attest: bytes(MAX_TPM_ATTEST_BYTES, 'attest'),
      signature: bytes(MAX_TPM_SIGNATURE_BYTES, 'signature'),
      akCertificate: certificate,
      chain,
    }),
  ],
  'nvidia-spdm': [
    2,
    struct('NvidiaSpdmEvidence', {
      vendorId,
      request: bytes(MAX_SPDM_REQUEST_BYTES, 'request'),
      response: bytes(MAX_SPDM_RESPONSE_BYTES, 'response'),
      chain,
    }),
  ],
  'rsa2048-allowlist': [
    3,
    struct('RsaAllowListEvidence', {
      vendorId,
      publicKey: bytes(1024, 'publicKey'),
      signature: bytes(512, 'signature'),
    }),
  ],
  'dev-soft': [
    4,
    struct('DevSoftEvidence', {
      vendorId,
      modelId: string(64, 'modelId'),
      publicKey: bytesN(32, 'publicKey'),
      signature: bytesN(64, 'signature'),
    }),
  ],
});

/**
 * What the chain trusts about one vendor, as the state machine reads it from the vendor registry
 * (§4.1) at block time. Plain data, so it can be built from state and cached by the caller.
 */
export interface VendorTrust {
  readonly vendorId: string;
  readonly profile: AttestationProfile;
  /** DER root certificates (tpm2, nvidia-spdm). */
  readonly roots: readonly Uint8Array[];
  /** Revoked certificate serials, hex (any case, leading zeros ignored). */
  readonly revokedSerials: readonly string[];
  /** Revoked chip ids, hex. */
  readonly revokedChipIds: readonly string[];
  /** rsa2048-allowlist: lowercase hex chip id (rsaAllowListChipId) → model id. */
  readonly allowList?: Readonly<Record<string, string>>;
  /** When present, the only model ids this vendor's evidence may name. */
  readonly models?: readonly string[];
  /** tpm2: AK certificates must carry extendedKeyUsage tcg-kp-AIKCertificate. */
  readonly requireAkEku?: boolean;
  /** tpm2: AK certificates must name the device (HardwareModuleName). */
  readonly requireHardwareModuleName?: boolean;
}

export interface TrustContext {
  readonly vendors: readonly VendorTrust[];
  /** From genesis: whether software (dev-soft) chips are accepted at all. */
  readonly devSoftEnabled: boolean;
}

function findVendor(trust: TrustContext, id: string): VendorTrust {
  const matches = trust.vendors.filter((v) => v.vendorId === id);
  if (matches.length === 0)
    throw new AttestationError('ATTEST_UNKNOWN_VENDOR', `vendor "${id}" is not registered`);
  if (matches.length > 1) throw malformed(`vendor "${id}" appears twice in the trust context`);
  return matches[0]!;
}

function dispatch(
  evidence: Evidence,
  vendor: VendorTrust,
  trust: TrustContext,
  atMs: bigint,
  message: Uint8Array,
): AttestedStatement {
  const revokedSerials = new Set(vendor.revokedSerials);
  switch (evidence.type) {
    case 'tpm2':
      return verifyTpm2({
        attest: evidence.attest,
        signature: evidence.signature,
        akCertificate: evidence.akCertificate,
        chain: evidence.chain,
        roots: vendor.roots,
        revokedSerials,
        atMs,
        expectedMessage: message,
        vendorId: vendor.vendorId,
        requireAkEku: vendor.requireAkEku === true,
        requireHardwareModuleName: vendor.requireHardwareModuleName === true,
      });
    case 'nvidia-spdm':
      return verifyNvidiaSpdm({
        request: evidence.request,
        response: evidence.response,
        chain: evidence.chain,
        roots: vendor.roots,
        revokedSerials,
        atMs,
        expectedMessage: message,
        vendorId: vendor.vendorId,
      });
    case 'rsa2048-allowlist':
      return verifyRsaAllowList({
        publicKey: evidence.publicKey,
        signature: evidence.signature,
        allowList: vendor.allowList ?? {},
        expectedMessage: message,
        vendorId: vendor.vendorId,
      });
    case 'dev-soft':
      return verifyDevSoft({
        publicKey: evidence.publicKey,
        signature: evidence.signature,
        modelId: evidence.modelId,
        devSoftEnabled: trust.devSoftEnabled,
        expectedMessage: message,
        vendorId: vendor.vendorId,
      });
    default: {
      const unknown: { type?: unknown } = evidence;
      throw new AttestationError('ATTEST_WRONG_PROFILE', `unknown evidence type ${String(unknown.type)}`);
    }
  }
}

/**
 * Verifies `evidence` against the vendor it names, at block time `atMs` (ms), for the 32-byte
 * `expectedMessage`. Returns the statement or throws an AttestationError; any other failure inside
 * a verifier is reported as ATTEST_MALFORMED, so hostile input never escapes as a crash.
 */
export function verifyEvidence(
  evidence: Evidence,
  trust: TrustContext,
  atMs: bigint,
  expectedMessage: Uint8Array,
): AttestedStatement {
  try {
    if (!(expectedMessage instanceof Uint8Array) || expectedMessage.length !== ATTESTED_MESSAGE_LENGTH) {
      throw malformed('expected message must be 32 bytes');
    }
    if (typeof atMs !== 'bigint' || atMs < 0n) throw malformed('block time must be a non-negative bigint');
    const vendor = findVendor(trust, evidence.vendorId);
    if (vendor.profile !== evidence.type) {
      throw new AttestationError(
        'ATTEST_WRONG_PROFILE',
        `${evidence.type} evidence for vendor "${vendor.vendorId}", whose profile is ${vendor.profile}`,
      );
    }
    const statement = dispatch(evidence, vendor, trust, atMs, expectedMessage);
    const chipHex = toHex(statement.chipId);
    if (vendor.revokedChipIds.some((c) => c.toLowerCase() === chipHex)) {
      throw new AttestationError(
        'ATTEST_CHIP_REVOKED',
        `chip ${chipHex} is revoked by vendor "${vendor.vendorId}"`,
      );
    }
    if (vendor.models && !vendor.models.includes(statement.modelId)) {
      throw new AttestationError(
        'ATTEST_UNKNOWN_MODEL',
        `model "${statement.modelId}" is not registered for vendor "${vendor.vendorId}"`,
      );
    }
    return statement;
  } catch (err) {
    if (err instanceof AttestationError) throw err;
    throw malformed(`evidence could not be verified: ${(err as Error).message}`);
  }
}

/**
 * One evidence check as plain data (structured-cloneable: bytes, strings, bigints), everything
 * `verifyEvidence` reads: so it can run on another thread and give exactly the answer it gives here.
 */
export interface EvidenceCheck {
  readonly evidence: Evidence;
  readonly trust: TrustContext;
  readonly atMs: bigint;
  readonly message: Uint8Array;
}

/** `verifyEvidence`'s answer as plain data: its statement, or its AttestationError's code and message. */
export type EvidenceVerdict =
  | { readonly ok: true; readonly statement: AttestedStatement }
  | { readonly ok: false; readonly code: AttestationErrorCode; readonly message: string };

/** Runs `verifyEvidence` on `check`; never throws (its AttestationError becomes a failed verdict). */
export function runEvidenceCheck(check: EvidenceCheck): EvidenceVerdict {
  try {
    return { ok: true, statement: verifyEvidence(check.evidence, check.trust, check.atMs, check.message) };
  } catch (err) {
    if (err instanceof AttestationError) return { ok: false, code: err.code, message: err.message };
    // verifyEvidence throws nothing else; a bug here is said as one, never as a verdict.
    throw err;
  }
}

/** The statement of a verdict, or its error thrown again, as `verifyEvidence` would. */
export function verdictStatement(verdict: EvidenceVerdict): AttestedStatement {
  if (verdict.ok) return verdict.statement;
  throw new AttestationError(verdict.code, verdict.message);
}

function hexOrSelf(v: unknown): unknown {
  if (v instanceof Uint8Array) return `0x${toHex(v)}`;
  if (typeof v === 'bigint') return `${v}n`;
  if (Array.isArray(v)) return v.map(hexOrSelf);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) out[k] = hexOrSelf((v as Record<string, unknown>)[k]);
    return out;
  }
  return v;
}

/**
 * Every input of `check` as one string (keys sorted, bytes in hex): two checks with the same key
 * get the same verdict, so a verdict computed elsewhere (a worker thread) is used only for the very
 * inputs it was computed on.
 */
export function evidenceCheckKey(check: EvidenceCheck): string {
  return JSON.stringify(hexOrSelf(check));
}
