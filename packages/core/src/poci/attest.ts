/**
 * The bridge between on-chain state and the attestation verifiers: builds each verifier's trust
 * context from the registries (at block time) and turns its statement into what a chip record
 * needs. Registration and heartbeats of every profile go through here, so every node checks them
 * the same way. Verifier errors become ValidationErrors (the transaction is refused, nothing else).
 */
import {
  AttestationError,
  type AttestedStatement,
  certificateRevocationId,
  devSoftKeyChipId,
  type EvidenceCheck,
  type EvidenceVerdict,
  evidenceCheckKey,
  normalizeRevocationId,
  parseCertificate,
  parseSubjectPublicKeyInfo,
  rsaAllowListChipId,
  runEvidenceCheck,
  tpm2AkKeyId,
  type VendorTrust,
  verdictStatement,
  verifyEvidence,
  verifySignature,
  verifySpdmMeasurements,
  verifyTpm2Attestation,
} from '../attestation/index.js';
import { fromHex, toHex } from '../bytes.js';
import { ed25519Verify } from '../crypto/ed25519.js';
import { UncError, ValidationError } from '../errors.js';
import type { StateReader } from '../state/store.js';
import type { Chip, TpmClock } from './chips.js';
import type { HeartbeatEvidence, RegistrationEvidence } from './evidence.js';
import type { PociParams } from './params.js';
import { getAllowlistEntry, getVendor, isSerialRevoked, type Profile } from './registry.js';

export interface RegisteredIdentity {
  chipId: Uint8Array;
  vendorId: string;
  modelId: string;
  profile: Profile;
  keyMaterial: Uint8Array;
  certSerials: string[];
  /** The earliest notAfter (ms) of the certificate path (Chip.certsNotAfter); null: no certificates. */
  certsNotAfter: bigint | null;
  tpmClock: TpmClock | null;
  /** tpm2: the AK's key id (tpm2AkKeyId), whatever the chip id; null for other profiles. */
  akKeyId: Uint8Array | null;
}

/** The dev chains' software vendor: any Ed25519 key, accepted only where genesis enables it. */
export const DEV_SOFT_VENDOR = 'dev';

export function devSoftChipId(publicKey: Uint8Array): Uint8Array {
  return devSoftKeyChipId(publicKey);
}

function asValidation(err: unknown): never {
  if (err instanceof ValidationError) throw err;
  if (err instanceof UncError) throw new ValidationError(err.code, err.message);
  throw err;
}

/** Revocation ids (issuer-scoped serials) of the certificates a piece of evidence carries, for the revocation lookup. */
function evidenceSerials(evidence: RegistrationEvidence): string[] {
  const ders =
    evidence.type === 'tpm2'
      ? [evidence.akCertificate, ...evidence.chain]
      : evidence.type === 'nvidia-spdm'
        ? [...evidence.chain]
        : [];
  const out: string[] = [];
  for (const der of ders) {
    try {
      out.push(certificateRevocationId(parseCertificate(der)));
    } catch {
      // A certificate that does not parse fails in the verifier with its own precise error.
    }
  }
  return out;
}

/** The vendor's trust as the verifier wants it, read from state with O(1) lookups. */
function vendorTrust(state: StateReader, evidence: RegistrationEvidence): VendorTrust {
  const vendor = getVendor(state, evidence.vendorId);
  if (!vendor)
    throw new ValidationError('ATTEST_UNKNOWN_VENDOR', `vendor "${evidence.vendorId}" is not registered`);
  let allowList: Record<string, string> | undefined;
  if (evidence.type === 'rsa2048-allowlist') {
    const entry = getAllowlistEntry(state, vendor.id, evidence.publicKey);
    allowList = {};
    if (entry?.allowed) {
      try {
        allowList[toHex(rsaAllowListChipId(evidence.publicKey))] = entry.modelId;
      } catch (err) {
        asValidation(err);
      }
    }
  }
  return {
    vendorId: vendor.id,
    profile: vendor.profile,
    roots: vendor.roots,
    revokedSerials: evidenceSerials(evidence).filter((s) => isSerialRevoked(state, vendor.id, s)),
    revokedChipIds: [],
    ...(allowList ? { allowList } : {}),
    ...(vendor.requireAkEku ? { requireAkEku: true } : {}),
    ...(vendor.requireHardwareModuleName ? { requireHardwareModuleName: true } : {}),
  };
}

function keyMaterialOf(evidence: RegistrationEvidence, statement: AttestedStatement): Uint8Array {
  switch (evidence.type) {
    case 'tpm2':
      return fromHex(String(statement.details.signingKey));
    case 'nvidia-spdm':
      return parseCertificate(evidence.chain[0]!).publicKey.der;
    case 'rsa2048-allowlist':
    case 'dev-soft':
      return evidence.publicKey;
  }
}

/**
 * A registration's evidence check as plain data: the evidence with the vendor trust `state` holds
 * for it (roots, the revocations of the certificates it carries, its allow-list entry), block time
 * and the message. Cheap (state lookups, certificate serials); the check itself is
 * `runEvidenceCheck`, which may run on another thread (the node's verify workers) with the same
 * answer. Throws the ValidationError of a vendor that is not registered.
 */
export function registrationCheck(
  state: StateReader,
  evidence: RegistrationEvidence,
  params: PociParams,
  atMs: bigint,
  message: Uint8Array,
): EvidenceCheck {
  try {
    const trust = { vendors: [vendorTrust(state, evidence)], devSoftEnabled: params.devSoftEnabled };
    return { evidence, trust, atMs, message };
  } catch (err) {
    asValidation(err);
  }
}

/**
 * Where a verdict computed earlier for the very same check may be found (`evidenceCheckKey`
 * equal); undefined: check it here.
 */
export type EvidenceVerdicts = (check: EvidenceCheck) => EvidenceVerdict | undefined;

export function verifyRegistration(
  state: StateReader,
  evidence: RegistrationEvidence,
  params: PociParams,
  atMs: bigint,
  message: Uint8Array,
  verdicts?: EvidenceVerdicts,
): RegisteredIdentity {
  const check = registrationCheck(state, evidence, params, atMs, message);
  try {
    const known = verdicts?.(check);
    const statement = known
      ? verdictStatement(known)
      : verifyEvidence(check.evidence, check.trust, check.atMs, check.message);
    const d = statement.details;
    const keyMaterial = keyMaterialOf(evidence, statement);
    return {
      chipId: statement.chipId,
      vendorId: evidence.vendorId,
      modelId: statement.modelId,
      profile: statement.profile,
      keyMaterial,
      certSerials:
        typeof d.certSerials === 'string' && d.certSerials
          ? d.certSerials.split(',').map((id) => normalizeRevocationId(id) ?? id)
          : [],
      certsNotAfter: typeof d.certsNotAfterMs === 'bigint' ? d.certsNotAfterMs : null,
      tpmClock:
        evidence.type === 'tpm2'
          ? {
              clock: BigInt(d.clock!),
              resetCount: Number(d.resetCount),
              restartCount: Number(d.restartCount),
            }
          : null,
      akKeyId: evidence.type === 'tpm2' ? tpm2AkKeyId(parseSubjectPublicKeyInfo(keyMaterial).key) : null,
    };
  } catch (err) {
    asValidation(err);
  }
}

/** Whether an Ed25519 signature is already known to verify (a cache of passes, never of failures). */
export type Ed25519Verified = (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array) => boolean;

/**
 * Checks a heartbeat answer against the chip's registered key; returns the new TPM clock if any.
 * `isVerified` may vouch for a dev-soft (Ed25519) answer checked earlier, e.g. on a worker thread.
 */
export function verifyHeartbeat(
  /** Only the profile and the key are read: a miner checks its own answers with its chip's view. */
  chip: Pick<Chip, 'profile' | 'keyMaterial'>,
  evidence: HeartbeatEvidence,
  message: Uint8Array,
  isVerified?: Ed25519Verified,
): { tpmClock: TpmClock | null } {
  if (evidence.type !== chip.profile) {
    throw new ValidationError('ATTEST_WRONG_PROFILE', `${evidence.type} evidence for a ${chip.profile} chip`);
  }
  try {
    switch (evidence.type) {
      case 'dev-soft':
        if (
          !isVerified?.(chip.keyMaterial, message, evidence.signature) &&
          !ed25519Verify(chip.keyMaterial, message, evidence.signature)
        ) {
          throw new ValidationError(
            'ATTEST_BAD_SIGNATURE',
            'the answer is not signed by the chip for this challenge',
          );
        }
        return { tpmClock: null };
      case 'tpm2': {
        const attest = verifyTpm2Attestation(
          evidence.attest,
          evidence.signature,
          parseSubjectPublicKeyInfo(chip.keyMaterial),
          message,
        );
        const c = attest.clockInfo;
        return { tpmClock: { clock: c.clock, resetCount: c.resetCount, restartCount: c.restartCount } };
      }
      case 'nvidia-spdm':
        verifySpdmMeasurements(
          evidence.request,
          evidence.response,
          parseSubjectPublicKeyInfo(chip.keyMaterial),
          message,
        );
        return { tpmClock: null };
      case 'rsa2048-allowlist': {
        const spki = parseSubjectPublicKeyInfo(chip.keyMaterial);
        if (!verifySignature(spki, { kind: 'rsa-pkcs1', hash: 'sha256' }, message, evidence.signature)) {
          throw new ValidationError(
            'ATTEST_BAD_SIGNATURE',
            'the RSA signature does not verify for this challenge',
          );
        }
        return { tpmClock: null };
      }
    }
  } catch (err) {
    if (err instanceof AttestationError || err instanceof UncError) asValidation(err);
    throw new ValidationError(
      'ATTEST_MALFORMED',
      `malformed ${evidence.type} answer: ${(err as Error).message}`,
    );
  }
}

/**
 * A transfer's consent check as plain data: the answer, the chip's profile and key as the state
 * holds them, and the message (chain, chip, new owner, anchor hash). Everything `verifyHeartbeat`
 * reads, so it can run on another thread (the node's verify workers) with the same answer.
 */
export interface ConsentCheck {
  readonly consent: HeartbeatEvidence;
  readonly profile: Profile;
  readonly keyMaterial: Uint8Array;
  readonly message: Uint8Array;
}

/** `verifyHeartbeat`'s answer to a ConsentCheck as plain data: its TPM clock, or its refusal. */
export type ConsentVerdict =
  | { readonly ok: true; readonly tpmClock: TpmClock | null }
  | { readonly ok: false; readonly code: string; readonly message: string };

/** Runs `verifyHeartbeat` on `check`; never throws a refusal (its ValidationError becomes a failed verdict). */
export function runConsentCheck(check: ConsentCheck): ConsentVerdict {
  try {
    return {
      ok: true,
      tpmClock: verifyHeartbeat(
        { profile: check.profile, keyMaterial: check.keyMaterial },
        check.consent,
        check.message,
      ).tpmClock,
    };
  } catch (err) {
    if (err instanceof ValidationError) return { ok: false, code: err.code, message: err.message };
    // verifyHeartbeat throws nothing else; a bug here is said as one, never as a verdict.
    throw err;
  }
}

/** Where a verdict computed earlier for the very same consent check may be found; undefined: check it here. */
export type ConsentVerdicts = (check: ConsentCheck) => ConsentVerdict | undefined;

/** The costly checks a node may make off its event loop: a registration's evidence, a transfer's consent. */
export type CostlyCheck = EvidenceCheck | ConsentCheck;
export type CostlyVerdict = EvidenceVerdict | ConsentVerdict;

export function isConsentCheck(check: CostlyCheck): check is ConsentCheck {
  return 'consent' in check;
}

/** `runEvidenceCheck` or `runConsentCheck`, as `check` is. */
export function runCostlyCheck(check: CostlyCheck): CostlyVerdict {
  return isConsentCheck(check) ? runConsentCheck(check) : runEvidenceCheck(check);
}

/**
 * Every input of `check` as one string (`evidenceCheckKey`'s encoding: keys sorted, bytes in hex).
 * A consent check has a `consent` field and an evidence check an `evidence` one, so the two kinds
 * never share a key: a verdict is used only for the very inputs, and the kind, it was made for.
 */
export function costlyCheckKey(check: CostlyCheck): string {
  // The encoding reads any plain data; the cast only names the parameter type it was written for.
  return evidenceCheckKey(check as EvidenceCheck);
}

/**
 * `verifyHeartbeat` of a transfer's consent, or the verdict `verdicts` holds for the very same
 * check (made elsewhere: a node's verify workers).
 */
export function verifyConsent(
  check: ConsentCheck,
  verdicts?: ConsentVerdicts,
): { tpmClock: TpmClock | null } {
  const known = verdicts?.(check);
  if (!known)
    return verifyHeartbeat(
      { profile: check.profile, keyMaterial: check.keyMaterial },
      check.consent,
      check.message,
    );
  if (known.ok) return { tpmClock: known.tpmClock };
  throw new ValidationError(known.code, known.message);
}
