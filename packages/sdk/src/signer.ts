/**
 * Who signs: the sdk never needs a raw key, only a `Signer`. A seed signer and a keystore signer
 * are here; a hardware wallet or a remote signer implements the same two members (it receives the
 * whole transaction, so it can show what it signs before signing).
 */
import {
  addressFromPublicKey,
  decryptKeystore,
  deriveEd25519,
  ed25519PublicKey,
  encodeAddress,
  mnemonicFromEntropy,
  mnemonicToSeed,
  type SignedTransaction,
  sha256,
  signTransaction,
  type Transaction,
  uncDerivationPath,
  utf8,
} from '@unc/core';

export interface Signer {
  /** The Ed25519 public key transactions are signed with (the account is derived from it). */
  readonly publicKey: Uint8Array;
  /** Signs the transaction's canonical encoding under the `UNC/tx` domain. */
  signTransaction(tx: Transaction): Promise<SignedTransaction>;
}

/** The account address (bech32) a signer signs for. */
export function signerAddress(signer: Signer): string {
  return encodeAddress(addressFromPublicKey(signer.publicKey));
}

/** Signs with a 32-byte Ed25519 seed held in memory (tests, dev keys, a keyring that unlocked it). */
export function seedSigner(seed: Uint8Array): Signer {
  if (!(seed instanceof Uint8Array) || seed.length !== 32) throw new TypeError('a seed is 32 bytes');
  const secret = seed.slice();
  return {
    publicKey: ed25519PublicKey(secret),
    signTransaction: async (tx) => signTransaction(tx, secret),
  };
}

/**
 * Unlocks a keystore file (core's scrypt + AES format, as `unc keys export` writes it) with its
 * password; a wrong password or a damaged file throws (WRONG_PASSWORD, BAD_KEYSTORE).
 */
export function keystoreSigner(file: unknown, password: string): Signer {
  return seedSigner(decryptKeystore(file, password));
}

/**
 * Dev account `index` of a dev chain (`unc dev`): derived from the public dev mnemonic, as
 * packages/node/src/dev.ts funds them. Anyone can sign with these keys: a dev chain only.
 */
export function devSigner(index: number): Signer {
  if (!Number.isSafeInteger(index) || index < 0 || index >= 2 ** 31) throw new TypeError('a dev key index');
  const mnemonic = mnemonicFromEntropy(sha256(utf8('UtilityNet dev accounts')).slice(0, 16));
  return seedSigner(deriveEd25519(mnemonicToSeed(mnemonic), uncDerivationPath(index)).key);
}

export function isSigner(x: unknown): x is Signer {
  return (
    typeof x === 'object' &&
    x !== null &&
    (x as Signer).publicKey instanceof Uint8Array &&
    typeof (x as Signer).signTransaction === 'function'
  );
}
