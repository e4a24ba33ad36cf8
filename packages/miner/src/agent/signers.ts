/**
 * A chip signer is what the agent asks for evidence: it holds (or reaches) the chip's attestation
 * key. The software signer is for dev chains; hardware signers live beside their drivers.
 */
import {
  DEV_SOFT_VENDOR,
  devSoftChipId,
  ed25519PublicKey,
  ed25519Sign,
  type HeartbeatEvidence,
  type Profile,
  type RegistrationEvidence,
} from '@unc/core';

export interface ChipSigner {
  readonly profile: Profile;
  /** A short name for logs and status ("dev-chip-0", "tpm 127.0.0.1:2321"). */
  readonly label: string;
  /** The chip id the chain derives from this chip's evidence. */
  chipId(): Promise<Uint8Array>;
  registrationEvidence(message: Uint8Array): Promise<RegistrationEvidence>;
  answer(message: Uint8Array): Promise<HeartbeatEvidence>;
  close?(): Promise<void>;
}

/** A software chip: an Ed25519 key standing in for a security engine (dev chains only). */
export class DevSoftSigner implements ChipSigner {
  readonly profile = 'dev-soft' as const;
  readonly vendorId = DEV_SOFT_VENDOR;
  private readonly publicKey: Uint8Array;

  constructor(
    private readonly seed: Uint8Array,
    readonly modelId: string,
    readonly label: string,
  ) {
    this.publicKey = ed25519PublicKey(seed);
  }

  async chipId(): Promise<Uint8Array> {
    return devSoftChipId(this.publicKey);
  }

  async registrationEvidence(message: Uint8Array): Promise<RegistrationEvidence> {
    return {
      type: 'dev-soft',
      vendorId: this.vendorId,
      publicKey: this.publicKey,
      modelId: this.modelId,
      signature: ed25519Sign(this.seed, message),
    };
  }

  async answer(message: Uint8Array): Promise<HeartbeatEvidence> {
    return { type: 'dev-soft', signature: ed25519Sign(this.seed, message) };
  }
}
