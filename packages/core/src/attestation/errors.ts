import { UncError } from '../errors.js';

/**
 * Every way evidence can be refused. The codes are part of the protocol surface: a rejected
 * registration or heartbeat records one of them, so a miner can see why a chip was turned away.
 */
export type AttestationErrorCode =
  /** Bytes that do not parse (DER, TPM structures, SPDM messages) or values out of range. */
  | 'ATTEST_MALFORMED'
  /** A signature (certificate or evidence) that does not verify. */
  | 'ATTEST_BAD_SIGNATURE'
  /** The certificate chain does not end at one of the vendor's roots. */
  | 'ATTEST_UNTRUSTED_ROOT'
  /** Two neighbouring certificates are not linked: key identifiers or names differ. */
  | 'ATTEST_CHAIN_BROKEN'
  /** An issuer that is not allowed to issue certificates (basicConstraints, keyUsage, pathLen). */
  | 'ATTEST_NOT_CA'
  /** A certificate whose key may not sign evidence (keyUsage without digitalSignature). */
  | 'ATTEST_KEY_USAGE'
  /** The vendor requires the certificate to name the device (a HardwareModuleName), and it does not. */
  | 'ATTEST_IDENTITY_REQUIRED'
  /** A critical extension this verifier does not process (RFC 5280 §4.2 demands rejection). */
  | 'ATTEST_UNKNOWN_CRITICAL_EXTENSION'
  /** Block time outside a certificate's validity window (either side). */
  | 'ATTEST_CERT_EXPIRED'
  /** A certificate serial on the vendor's revocation list. */
  | 'ATTEST_CERT_REVOKED'
  /** A chip id on the vendor's revocation list. */
  | 'ATTEST_CHIP_REVOKED'
  /** The evidence binds another message (TPM extraData, SPDM requester nonce, signed message). */
  | 'ATTEST_WRONG_NONCE'
  /** Evidence of one profile presented for a vendor (or in a slot) of another. */
  | 'ATTEST_WRONG_PROFILE'
  /** The vendor id is not in the trust registry. */
  | 'ATTEST_UNKNOWN_VENDOR'
  /** The model cannot be read from the evidence, or the vendor does not list it. */
  | 'ATTEST_UNKNOWN_MODEL'
  /** The firmware identity in the report differs from the one the device certificate vouches for. */
  | 'ATTEST_FWID_MISMATCH'
  /** A chip key that is not on the vendor's allow-list. */
  | 'ATTEST_NOT_ALLOWLISTED'
  /** The dev-soft profile on a chain whose genesis does not enable it. */
  | 'ATTEST_PROFILE_DISABLED'
  /** TPM clock, resetCount or restartCount went backwards. */
  | 'ATTEST_CLOCK_REGRESSED';

export class AttestationError extends UncError {
  declare readonly code: AttestationErrorCode;

  constructor(code: AttestationErrorCode, message: string) {
    super(code, message);
    this.name = 'AttestationError';
  }
}

export function malformed(message: string): AttestationError {
  return new AttestationError('ATTEST_MALFORMED', message);
}
