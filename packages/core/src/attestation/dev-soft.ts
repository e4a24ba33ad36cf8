/**
 * The `dev-soft` profile: an Ed25519 software key stands in for a chip, so that development chains
 * and tests can run without hardware. It proves nothing about hardware, which is why it is refused
 * unless the chain's genesis enables it.
 */
import { toHex } from '../bytes.js';
import { ED25519_PUBLIC_KEY_LENGTH, ed25519Verify } from '../crypto/ed25519.js';
import { taggedHash } from '../crypto/hash.js';
import { AttestationError, malformed } from './errors.js';
import { ATTESTED_MESSAGE_LENGTH, type AttestedStatement } from './types.js';

export const DEV_SOFT_MAX_MODEL_LENGTH = 64;

export interface DevSoftInput {
  readonly publicKey: Uint8Array;
  readonly signature: Uint8Array;
  /** The model the software chip claims to be; only meaningful on dev chains. */
  readonly modelId: string;
  /** From genesis: whether this chain accepts software chips at all. */
  readonly devSoftEnabled: boolean;
  readonly expectedMessage: Uint8Array;
  readonly vendorId?: string;
}

export function devSoftKeyChipId(publicKey: Uint8Array): Uint8Array {
  return taggedHash('UNC/chip-id/dev-soft', publicKey);
}

export function verifyDevSoft(input: DevSoftInput): AttestedStatement {
  if (!input.devSoftEnabled) {
    throw new AttestationError('ATTEST_PROFILE_DISABLED', 'this chain does not accept dev-soft evidence');
  }
  if (input.expectedMessage.length !== ATTESTED_MESSAGE_LENGTH)
    throw malformed('expected message must be 32 bytes');
  if (input.publicKey.length !== ED25519_PUBLIC_KEY_LENGTH) throw malformed('dev-soft key must be 32 bytes');
  if (input.modelId.length === 0 || input.modelId.length > DEV_SOFT_MAX_MODEL_LENGTH) {
    throw new AttestationError('ATTEST_UNKNOWN_MODEL', 'dev-soft evidence must name a model');
  }
  if (!ed25519Verify(input.publicKey, input.expectedMessage, input.signature)) {
    throw new AttestationError(
      'ATTEST_BAD_SIGNATURE',
      'the Ed25519 signature does not verify for the expected message',
    );
  }
  return {
    profile: 'dev-soft',
    chipId: devSoftKeyChipId(input.publicKey),
    vendorId: input.vendorId ?? '',
    modelId: input.modelId,
    message: new Uint8Array(input.expectedMessage),
    details: { publicKey: toHex(input.publicKey) },
  };
}
