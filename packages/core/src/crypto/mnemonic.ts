/**
 * BIP-39 recovery phrases with the English wordlist. Core stays pure: callers bring the entropy
 * (a wallet draws it from a CSPRNG), and this module only converts and checks.
 */

import { entropyToMnemonic, mnemonicToEntropy } from '@scure/bip39';
import { wordlist } from '@scure/bip39/wordlists/english.js';
import { UncError } from '../errors.js';
import { pbkdf2Sha512 } from '../platform/node.js';

const ENTROPY_LENGTHS: readonly number[] = [16, 20, 24, 28, 32];
const WORD_COUNTS: readonly number[] = [12, 15, 18, 21, 24];
const WORD_INDEX = new Map(wordlist.map((word, index) => [word, index]));

/**
 * The one spelling a phrase is hashed in: NFKD (BIP-39's rule), single ASCII spaces, lower case.
 * Lower-casing goes beyond BIP-39, but every English word is lower-case ASCII, so a phrase typed
 * with capitals can only mean its lower-case form and yields the seed any other wallet would.
 */
function normalize(mnemonic: string): string {
  return mnemonic.normalize('NFKD').toLowerCase().trim().split(/\s+/).join(' ');
}

/** Why `phrase` (already normalized) is not a valid mnemonic, or null when it is. */
function problem(phrase: string): string | null {
  const words = phrase === '' ? [] : phrase.split(' ');
  if (!WORD_COUNTS.includes(words.length)) {
    return `expected 12, 15, 18, 21 or 24 words, got ${words.length}`;
  }
  // The word itself stays out of the message: it is part of a secret and messages end up in logs.
  const unknown = words.findIndex((word) => !WORD_INDEX.has(word));
  if (unknown >= 0) return `word ${unknown + 1} is not in the BIP-39 English wordlist`;
  try {
    mnemonicToEntropy(phrase, wordlist);
  } catch {
    return 'checksum mismatch (a word is wrong or out of order)';
  }
  return null;
}

/** The phrase for 16, 20, 24, 28 or 32 bytes of entropy (12 to 24 words). */
export function mnemonicFromEntropy(entropy: Uint8Array): string {
  if (!(entropy instanceof Uint8Array) || !ENTROPY_LENGTHS.includes(entropy.length)) {
    throw new UncError('BAD_ENTROPY', 'mnemonic entropy must be 16, 20, 24, 28 or 32 bytes');
  }
  return entropyToMnemonic(entropy, wordlist);
}

export function validateMnemonic(mnemonic: string): boolean {
  return typeof mnemonic === 'string' && problem(normalize(mnemonic)) === null;
}

/**
 * The 64-byte BIP-39 seed: PBKDF2-HMAC-SHA512, 2048 rounds, salt "mnemonic" ‖ passphrase (both
 * NFKD). Unlike BIP-39 itself, an invalid phrase is refused rather than hashed, because a typo
 * would otherwise silently open an empty wallet.
 */
export function mnemonicToSeed(mnemonic: string, passphrase = ''): Uint8Array {
  if (typeof mnemonic !== 'string') throw new UncError('BAD_MNEMONIC', 'invalid mnemonic: not a string');
  if (typeof passphrase !== 'string') throw new UncError('BAD_MNEMONIC', 'passphrase must be a string');
  const phrase = normalize(mnemonic);
  const reason = problem(phrase);
  if (reason !== null) throw new UncError('BAD_MNEMONIC', `invalid mnemonic: ${reason}`);
  const salt = `mnemonic${passphrase}`.normalize('NFKD');
  const encoder = new TextEncoder();
  return pbkdf2Sha512(encoder.encode(phrase), encoder.encode(salt), 2048, 64);
}
