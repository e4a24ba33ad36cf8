import { type Codec, decode, encode, struct, u64, u128 } from '../encoding/codec.js';
import type { StateOverlay, StateReader } from './store.js';

/** One-byte namespaces of state keys; the trie key is SHA-256 of the full state key. */
export const StateSpace = {
  system: 0x00,
  account: 0x01,
  vendor: 0x02,
  model: 0x03,
  chip: 0x04,
  epoch: 0x05,
  allowlist: 0x06,
  revokedSerial: 0x07,
  bond: 0x08,
  /** Compute rental (market/): offers, leases, provider records, the market's indexes. */
  offer: 0x09,
  lease: 0x0a,
  provider: 0x0b,
  marketIndex: 0x0c,
  /** Liveness v2 (poci/liveness.ts): per (epoch, class) the heights that challenged the class. */
  challengeClass: 0x0d,
  /** tpm2 chips by AK key (poci/chips.ts): one TPM key, one chip, whatever its certificate names. */
  tpmAk: 0x0e,
  /** Heartbeat operators (poci/operator.ts): the one address an owner lets answer for its chips. */
  heartbeatOperator: 0x0f,
  /** Consensus (consensus/epoch-validators.ts, consensus/evidence-action.ts): bonded candidates
   *  and their keys, chips by owner, the validator sets of recent epochs, evidence seen. */
  validatorCandidate: 0x10,
  ownerChips: 0x11,
  validatorSets: 0x12,
  consensusEvidence: 0x13,
} as const;

export interface Account {
  balance: bigint;
  /** Number of transactions this account has sent; the next one must carry exactly this nonce. */
  nonce: bigint;
}

export const accountCodec: Codec<Account> = struct<Account>('Account', { balance: u128, nonce: u64 });

export const EMPTY_ACCOUNT: Readonly<Account> = Object.freeze({ balance: 0n, nonce: 0n });

export function accountKey(address: Uint8Array): Uint8Array {
  const key = new Uint8Array(21);
  key[0] = StateSpace.account;
  key.set(address, 1);
  return key;
}

export function getAccount(state: StateReader, address: Uint8Array): Account {
  const raw = state.get(accountKey(address));
  return raw ? decode(accountCodec, raw) : { ...EMPTY_ACCOUNT };
}

export function putAccount(state: StateOverlay, address: Uint8Array, account: Account): void {
  // An account with nothing in it is removed, so dust never bloats the state forever.
  if (account.balance === 0n && account.nonce === 0n) state.set(accountKey(address), null);
  else state.set(accountKey(address), encode(accountCodec, account));
}
