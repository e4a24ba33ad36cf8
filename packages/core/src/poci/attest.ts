/**
 * The bridge between on-chain state and the attestation verifiers: builds each verifier's trust
 * context from the registries (at block time) and turns its statement into what a chip record
 * needs. Every profile goes through here, so registration and heartbeats are checked the same way
 * on every node.
 */
import { ed25519Verify } from '../crypto/ed25519.js';
import { taggedHash } from '../crypto/hash.js';
import { ValidationError } from '../errors.js';
import type { StateReader } from '../state/store.js';
import type { Chip, TpmClock } from './chips.js';
import { EVIDENCE_PROFILE, type HeartbeatEvidence, type RegistrationEvidence } from './evidence.js';
import type { PociParams } from './params.js';
import { type Profile, getVendor } from './registry.js';

export interface RegisteredIdentity {
  chipId: Uint8Array;
  vendorId: string;
  modelId: string;
  profile: Profile;
  keyMaterial: Uint8Array;
  certSerials: string[];
  tpmClock: TpmClock | null;
}

/** The dev chains' software vendor: any Ed25519 key, accepted only where genesis enables it. */
export const DEV_SOFT_VENDOR = 'dev';

export function devSoftChipId(publicKey: Uint8Array): Uint8Array {
  return taggedHash('UNC/chip-id/dev-soft', publicKey);
}

export function verifyRegistration(
  state: StateReader,
  evidence: RegistrationEvidence,
  params: PociParams,
  atMs: bigint,
  message: Uint8Array,
): RegisteredIdentity {
  void atMs;
  switch (evidence.type) {
    case 'devSoft': {
      if (!params.devSoftEnabled) {
        throw new ValidationError('ATTEST_PROFILE_DISABLED', 'software (dev-soft) chips are not accepted on this chain');
      }
      const vendor = getVendor(state, DEV_SOFT_VENDOR);
      if (!vendor || vendor.profile !== 'dev-soft') {
        throw new ValidationError('ATTEST_UNKNOWN_VENDOR', `no dev-soft vendor "${DEV_SOFT_VENDOR}" is registered`);
      }
      if (!ed25519Verify(evidence.publicKey, message, evidence.signature)) {
        throw new ValidationError('ATTEST_BAD_SIGNATURE', 'the chip signature does not verify over the registration message');
      }
      return {
        chipId: devSoftChipId(evidence.publicKey),
        vendorId: DEV_SOFT_VENDOR,
        modelId: evidence.modelId,
        profile: 'dev-soft',
        keyMaterial: evidence.publicKey,
        certSerials: [],
        tpmClock: null,
      };
    }
    default:
      throw new ValidationError(
        'ATTEST_PROFILE_UNAVAILABLE',
        `the ${EVIDENCE_PROFILE[evidence.type]} profile is not enabled in this build`,
      );
  }
}

/** Checks a heartbeat answer against the chip's registered key; returns the new TPM clock if any. */
export function verifyHeartbeat(
  chip: Chip,
  evidence: HeartbeatEvidence,
  message: Uint8Array,
): { tpmClock: TpmClock | null } {
  if (EVIDENCE_PROFILE[evidence.type] !== chip.profile) {
    throw new ValidationError(
      'ATTEST_WRONG_PROFILE',
      `${EVIDENCE_PROFILE[evidence.type]} evidence for a ${chip.profile} chip`,
    );
  }
  switch (evidence.type) {
    case 'devSoft':
      if (!ed25519Verify(chip.keyMaterial, message, evidence.signature)) {
        throw new ValidationError('ATTEST_BAD_SIGNATURE', 'the answer is not signed by the chip for this challenge');
      }
      return { tpmClock: null };
    default:
      throw new ValidationError(
        'ATTEST_PROFILE_UNAVAILABLE',
        `the ${EVIDENCE_PROFILE[evidence.type]} profile is not enabled in this build`,
      );
  }
}
