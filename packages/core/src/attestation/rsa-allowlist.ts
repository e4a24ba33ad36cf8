/**
 * The `rsa2048-allowlist` profile: the original UtilityNet flow. Chips carry burned-in RSA-2048
 * keys that the foundation registers, with their model, on the vendor's on-chain allow-list; the
 * chip proves itself with an RSASSA-PKCS1-v1_5 / SHA-256 signature over the 32-byte message (the
 * message is the signed data, hashed by the scheme as usual).
 */
import { concatBytes, equalBytes, fromHex, toHex } from '../bytes.js';
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

/** A DER TLV; `content` shorter than 64 KiB (an RSA SubjectPublicKeyInfo is ~300 bytes). */
function tlv(tag: number, ...content: Uint8Array[]): Uint8Array {
  const body = concatBytes(...content);
  const n = body.length;
  const length = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff];
  return concatBytes(Uint8Array.of(tag, ...length), body);
}

/** A non-negative INTEGER from its big-endian magnitude (minimal, a sign byte where needed). */
const derUnsigned = (magnitude: Uint8Array): Uint8Array =>
  tlv(0x02, magnitude[0]! >= 0x80 ? Uint8Array.of(0) : new Uint8Array(0), magnitude);

/** AlgorithmIdentifier { rsaEncryption, NULL }: RFC 3279 §2.3.1 says the parameters are NULL. */
const RSA_ALGORITHM = fromHex('300d06092a864886f70d0101010500');

/** The one DER encoding of an RSA SubjectPublicKeyInfo, the NULL parameters present. */
function canonicalRsaSpki(modulus: Uint8Array, exponent: Uint8Array): Uint8Array {
  const rsaPublicKey = tlv(0x30, derUnsigned(modulus), derUnsigned(exponent));
  return tlv(0x30, RSA_ALGORITHM, tlv(0x03, Uint8Array.of(0), rsaPublicKey));
}

/**
 * An allow-listed chip key: an RSA-2048 SubjectPublicKeyInfo in its one encoding. The parser takes
 * the rsaEncryption parameters NULL or absent; the allow-list is keyed by the key's bytes
 * (registry allowlistKey), so two encodings of one key were two entries, and a removal in the
 * encoding not listed removed nothing while the chip stayed active (audit audchip C4). Refused here,
 * a key is listed, registered and heartbeat-checked in the encoding node:crypto and `unc vendor`
 * write (CONSENSUS CHANGE).
 */
function rsa2048Key(spkiDer: Uint8Array): SubjectPublicKeyInfo {
  const spki = parseSubjectPublicKeyInfo(spkiDer);
  if (spki.key.kind !== 'rsa' || spki.key.bits !== RSA_ALLOWLIST_KEY_BITS) {
    throw malformed(`the chip key must be RSA-${RSA_ALLOWLIST_KEY_BITS}`);
  }
  if (!equalBytes(canonicalRsaSpki(spki.key.modulus, spki.key.exponent), spkiDer)) {
    throw malformed('the chip key must be DER in its one encoding: rsaEncryption with NULL parameters');
  }
  return spki;
}

/**
 * The canonical encoding (rsaEncryption with NULL parameters) of an RSA SubjectPublicKeyInfo, for a
 * removal from the allow-list that names the listed key in another encoding; null when the bytes
 * are no RSA key the parser takes.
 */
export function canonicalAllowlistKey(publicKey: Uint8Array): Uint8Array | null {
  try {
    const spki = parseSubjectPublicKeyInfo(publicKey);
    return spki.key.kind === 'rsa' ? canonicalRsaSpki(spki.key.modulus, spki.key.exponent) : null;
  } catch {
    return null;
  }
}

/**
 * The chip id of an allow-listed key (DER SubjectPublicKeyInfo in its one encoding, rsa2048Key):
 * it hashes the key itself (publicKeyIdentity).
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
