/** The attestation profiles of §4.1; each has one verifier in this folder. */
export const ATTESTATION_PROFILES = ['tpm2', 'nvidia-spdm', 'rsa2048-allowlist', 'dev-soft'] as const;
export type AttestationProfile = (typeof ATTESTATION_PROFILES)[number];

/**
 * What a verifier concludes: chip `chipId` of model `modelId`, certified by vendor `vendorId`,
 * signed `message`. Everything else a profile learns goes into `details` (for events and for the
 * liveness rules, e.g. the TPM clock), keyed by stable names.
 */
export interface AttestedStatement {
  readonly profile: AttestationProfile;
  /** 32 bytes, derived from the attested device identity, never from anything the miner picks. */
  readonly chipId: Uint8Array;
  readonly vendorId: string;
  readonly modelId: string;
  /** The 32-byte H(m) the evidence binds. */
  readonly message: Uint8Array;
  readonly details: Readonly<Record<string, string | number | bigint>>;
}

/** Every profile binds exactly one 32-byte message hash. */
export const ATTESTED_MESSAGE_LENGTH = 32;
