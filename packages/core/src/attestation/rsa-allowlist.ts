/**
 * The `rsa2048-allowlist` profile: the original UtilityNet flow. Chips carry burned-in RSA-2048
 * keys that the foundation registers, with their model, on the vendor's on-chain allow-list; the
 * chip proves itself with an RSASSA-PKCS1-v1_5 / SHA-256 signature over the 32-byte message (the
 * message is the signed data, hashed by the scheme as usual).
 */
import { toHex } from '../bytes.js';
import { taggedHash } from '../crypto/hash.js';
import { AttestationError, malformed } from './errors.js';
import { ATTESTED_MESSAGE_LENGTH, type AttestedStatement } from './types.js';
import {
  parseSubjectPublicKeyInfo,
  publicKeyIdentity,
  type SubjectPublicKeyInfo,
  verifySignature,
} from './x509.js';

export const RSA_ALLOWLIST_KEY_BITS = 2048;

function rsa2048Key(spkiDer: Uint8Array): SubjectPublicKeyInfo {
  const spki = parseSubjectPublicKeyInfo(spkiDer);
  if (spki.key.kind !== 'rsa' || spki.key.bits !== RSA_ALLOWLIST_KEY_BITS) {
    throw malformed(`the chip key must be RSA-${RSA_ALLOWLIST_KEY_BITS}`);
  }
  return spki;
}

/**
 * The chip id of an allow-listed key (DER SubjectPublicKeyInfo). Registries key their allow-lists
 * by it; it hashes the key's canonical bytes, so two encodings of one key are one chip.
 */
export function rsaAllowListChipId(publicKey: Uint8Array): Uint8Array {
  return taggedHash('UNC/chip-id/rsa2048-allowlist', publicKeyIdentity(rsa2048Key(publicKey).key));
}

export interface RsaAllowListInput {
  /** DER SubjectPublicKeyInfo of the chip's RSA-2048 key. */
  readonly publicKey: Uint8Array;
  /** 256-byte PKCS#1 v1.5 signature. */
  readonly signature: Uint8Array;
  /** Lowercase hex chip id (rsaAllowListChipId) → model id. */
  readonly allowList: Readonly<Record<string, string>>;
  readonly expectedMessage: Uint8Array;
  readonly vendorId?: string;
}

/** Verifies that an allow-listed chip key signed the expected message. */
export function verifyRsaAllowList(input: RsaAllowListInput): AttestedStatement {
  if (input.expectedMessage.length !== ATTESTED_MESSAGE_LENGTH)
    throw malformed('expected message must be 32 bytes');
  const spki = rsa2048Key(input.publicKey);
  const chipId = taggedHash('UNC/chip-id/rsa2048-allowlist', publicKeyIdentity(spki.key));
  const chipHex = toHex(chipId);
  // Object.hasOwn: a registry filled from chain state must not answer through Object.prototype.
  if (!Object.hasOwn(input.allowList, chipHex)) {
    throw new AttestationError(
      'ATTEST_NOT_ALLOWLISTED',
      `chip key ${chipHex} is not on the vendor's allow-list`,
    );
  }
  const modelId = input.allowList[chipHex]!;
  if (!verifySignature(spki, { kind: 'rsa-pkcs1', hash: 'sha256' }, input.expectedMessage, input.signature)) {
    throw new AttestationError(
      'ATTEST_BAD_SIGNATURE',
      'the RSA signature does not verify for the expected message',
    );
  }
  return {
    profile: 'rsa2048-allowlist',
    chipId,
    vendorId: input.vendorId ?? '',
    modelId,
    message: new Uint8Array(input.expectedMessage),
    details: { keyBits: RSA_ALLOWLIST_KEY_BITS },
  };
}
