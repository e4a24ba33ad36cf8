/**
 * A vendor's revocation list: the serials of AK certificates the vendor no longer vouches for,
 * signed by the vendor root key (the key the chain's vendor registry trusts, so no certificate
 * chain is needed to check it).
 *
 * Canonical format (core's codec, docs/encoding.md):
 *   RevocationList = { version u8 (=1), vendorId string≤64, issuerKeyId bytes≤64 (the root's
 *                      SubjectKeyIdentifier), sequence u64 (strictly increases with each list
 *                      the vendor publishes), issuedAt u64 (unix seconds),
 *                      serials list<bytes≤20> (unsigned big-endian, no leading zero octet,
 *                      strictly ascending numerically, so each set of serials has one encoding) }
 *   SignedRevocationList = { list RevocationList, signature bytes≤160 }
 * The signature is ECDSA (DER) by the root key over u8 len(tag) ‖ tag ‖ encode(list), with
 * tag = "UNC/vendor-revocations" and SHA-256 for a P-256 root (so the signed digest is exactly
 * core's taggedHash(tag, encode(list))) or SHA-384 for a P-384 root.
 */
import { createPublicKey, type KeyObject, sign, verify } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import {
  bytes,
  type Codec,
  compareBytes,
  concatBytes,
  DecodeError,
  decode,
  encode,
  equalBytes,
  list,
  parseCertificate,
  string,
  struct,
  u8,
  u64,
  utf8,
} from '@unc/core';
import { removeWholeLeftovers, writeFileWhole } from '@unc/node';
import { bigintToBytes, bytesToBigint } from '../asn1/der.js';
import { takeLockFile } from '../lock-file.js';
import type { VendorCa } from './ca.js';
import { fromPem, toPem } from './pem.js';
import { keyIdentifier } from './x509.js';

export const REVOCATION_TAG = 'UNC/vendor-revocations';
export const REVOCATION_PEM_LABEL = 'UNC VENDOR REVOCATION LIST';
const MAX_SERIALS = 100_000;

export interface RevocationList {
  readonly version: number;
  readonly vendorId: string;
  readonly issuerKeyId: Uint8Array;
  readonly sequence: bigint;
  readonly issuedAt: bigint;
  /** Serials in canonical form; see serialToBytes. */
  readonly serials: Uint8Array[];
}

export interface SignedRevocationList {
  readonly list: RevocationList;
  readonly signature: Uint8Array;
}

export const revocationListCodec: Codec<RevocationList> = struct<RevocationList>('RevocationList', {
  version: u8,
  vendorId: string(64, 'vendorId'),
  issuerKeyId: bytes(64, 'issuerKeyId'),
  sequence: u64,
  issuedAt: u64,
  serials: list(bytes(20, 'serial'), MAX_SERIALS, 'serials'),
});

export const signedRevocationListCodec: Codec<SignedRevocationList> = struct<SignedRevocationList>(
  'SignedRevocationList',
  { list: revocationListCodec, signature: bytes(160, 'signature') },
);

export function serialToBytes(serial: bigint): Uint8Array {
  if (serial <= 0n) throw new RangeError('certificate serials are positive');
  const b = bigintToBytes(serial);
  if (b.length > 20) throw new RangeError('certificate serial longer than 20 octets');
  return b;
}

/** Numeric order of canonical serials: a shorter one is smaller. */
function compareSerials(a: Uint8Array, b: Uint8Array): number {
  return a.length !== b.length ? a.length - b.length : compareBytes(a, b);
}

function checkCanonical(l: RevocationList): void {
  if (l.version !== 1) throw new DecodeError(`unknown revocation list version ${l.version}`);
  for (let i = 0; i < l.serials.length; i++) {
    const s = l.serials[i]!;
    if (s.length === 0 || s[0] === 0) throw new DecodeError('revoked serial is not in minimal form');
    if (i > 0 && compareSerials(l.serials[i - 1]!, s) >= 0) {
      throw new DecodeError('revoked serials are not strictly ascending');
    }
  }
}

function signedMessage(body: Uint8Array): Uint8Array {
  const tag = utf8(REVOCATION_TAG);
  return concatBytes(Uint8Array.of(tag.length), tag, body);
}

function hashFor(key: KeyObject): 'sha256' | 'sha384' {
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (curve === 'prime256v1') return 'sha256';
  if (curve === 'secp384r1') return 'sha384';
  throw new RangeError(`unsupported revocation signing key curve ${curve ?? '?'}`);
}

export interface RevocationListInput {
  readonly sequence: bigint;
  /** When the list was issued (explicit, so tests and genesis files are reproducible). */
  readonly issuedAt: Date | bigint;
  readonly serials: Iterable<bigint>;
}

/** Signs a revocation list with the vendor root key; serials are deduplicated and sorted. */
export function createRevocationList(ca: VendorCa, input: RevocationListInput): Uint8Array {
  const unique = [...new Set([...input.serials].map((s) => BigInt(s)))].sort((a, b) =>
    a < b ? -1 : a > b ? 1 : 0,
  );
  const issuedAt =
    input.issuedAt instanceof Date ? BigInt(Math.floor(input.issuedAt.getTime() / 1000)) : input.issuedAt;
  const l: RevocationList = {
    version: 1,
    vendorId: ca.vendorId,
    issuerKeyId: ca.root.keyId,
    sequence: input.sequence,
    issuedAt,
    serials: unique.map(serialToBytes),
  };
  const body = encode(revocationListCodec, l);
  const signature = new Uint8Array(
    sign(hashFor(ca.root.privateKey), signedMessage(body), ca.root.privateKey),
  );
  return encode(signedRevocationListCodec, { list: l, signature });
}

/**
 * Decodes and checks a signed revocation list against the vendor root (its certificate DER, or
 * its public key). Throws DecodeError when the bytes are malformed or not canonical, and Error
 * when the signature or issuer does not match.
 */
export function verifyRevocationList(
  encoded: Uint8Array,
  root: { certificate: Uint8Array } | { publicKey: KeyObject },
): RevocationList & { serialNumbers: bigint[] } {
  const signed = decode(signedRevocationListCodec, encoded);
  checkCanonical(signed.list);
  const spki =
    'certificate' in root
      ? parseCertificate(root.certificate).publicKey.der
      : new Uint8Array(root.publicKey.export({ type: 'spki', format: 'der' }));
  const key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  if (!equalBytes(signed.list.issuerKeyId, keyIdentifier(spki))) {
    throw new Error('revocation list was issued under a different root key');
  }
  const body = encode(revocationListCodec, signed.list);
  if (!verify(hashFor(key), signedMessage(body), key, signed.signature)) {
    throw new Error('revocation list signature does not verify against the vendor root');
  }
  return { ...signed.list, serialNumbers: signed.list.serials.map(bytesToBigint) };
}

export function revocationListToPem(encoded: Uint8Array): string {
  return toPem(REVOCATION_PEM_LABEL, encoded);
}

export function revocationListFromPem(pem: string): Uint8Array {
  return fromPem(pem, REVOCATION_PEM_LABEL);
}

/** How long a revoke waits for another one writing the same list (which takes milliseconds). */
const REVOKE_LOCK_WAIT_MS = 10_000;

/**
 * `unc vendor revoke`: adds serials to the list stored at `path` (creating it), with the next
 * sequence number, re-signs it and writes it back. Returns the new encoded list. Under
 * `<path>.lock` (a dead holder's taken over, a live one waited for): two revokes at once each read
 * the same list and the last write dropped the other's serials, though its caller was told they
 * were revoked.
 */
export async function revokeSerials(
  ca: VendorCa,
  path: string,
  serials: Iterable<bigint>,
  issuedAt: Date | bigint,
): Promise<Uint8Array> {
  const lock = `${path}.lock`;
  let busy: Error | null = null;
  const held = (pid: number) => {
    busy = new Error(`another revoke (pid ${pid}) is writing ${path} (${lock}); try again`);
    return busy;
  };
  const errors = { held, takingOver: held, changing: () => new Error(`${lock} kept changing`) };
  for (let waited = 0; ; waited += 20) {
    let release: () => void;
    try {
      release = takeLockFile(lock, errors);
    } catch (err) {
      if (err !== busy || waited >= REVOKE_LOCK_WAIT_MS) throw err;
      await new Promise((r) => setTimeout(r, 20));
      continue;
    }
    try {
      return await revokeLocked(ca, path, serials, issuedAt);
    } finally {
      release();
    }
  }
}

async function revokeLocked(
  ca: VendorCa,
  path: string,
  serials: Iterable<bigint>,
  issuedAt: Date | bigint,
): Promise<Uint8Array> {
  // The cut copies earlier revokes' kills left (public data, but a file per kill).
  removeWholeLeftovers(path);
  let previous: (RevocationList & { serialNumbers: bigint[] }) | null = null;
  try {
    previous = verifyRevocationList(revocationListFromPem(await readFile(path, 'utf8')), ca.root);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const encoded = createRevocationList(ca, {
    sequence: previous ? previous.sequence + 1n : 1n,
    issuedAt,
    serials: [...(previous?.serialNumbers ?? []), ...serials],
  });
  // Replaced whole (writeFileWhole): rewritten in place, a kill or a full disk mid-write left a cut
  // file, every serial revoked so far unreadable and each later revoke refused on it.
  writeFileWhole(path, revocationListToPem(encoded), 0o644);
  return encoded;
}
