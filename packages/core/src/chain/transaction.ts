/**
 * Transactions: who (the signer's Ed25519 public key), which chain, which nonce, what fee, until
 * which height, and a list of typed actions. The signature covers the canonical encoding of all of
 * it under the "UNC/tx" domain, so a transaction signed for one chain or role is useless anywhere
 * else.
 */
import { equalBytes } from '../bytes.js';
import { addressFromPublicKey } from '../crypto/address.js';
import { ed25519Sign, ed25519Verify } from '../crypto/ed25519.js';
import { taggedHash } from '../crypto/hash.js';
import {
  bytes,
  bytesN,
  type Codec,
  decode,
  encode,
  list,
  string,
  struct,
  taggedUnion,
  u64,
  u128,
} from '../encoding/codec.js';

export const MAX_CHAIN_ID_BYTES = 64;
export const MAX_ACTIONS_PER_TX = 64;
export const MAX_MEMO_BYTES = 256;

export const address = bytesN(20, 'address');
export const hash32 = bytesN(32, 'hash');
export const publicKey = bytesN(32, 'publicKey');
export const signature64 = bytesN(64, 'signature');
export const chainIdCodec = string(MAX_CHAIN_ID_BYTES, 'chainId');

export interface TransferAction {
  type: 'transfer';
  to: Uint8Array;
  amount: bigint;
  memo: Uint8Array;
}

/** Every action the state machine knows. Tags are stable forever; new actions take new tags. */
export type Action = TransferAction;

export const actionCodec: Codec<Action> = taggedUnion<Action>('Action', {
  transfer: [1, struct('Transfer', { to: address, amount: u128, memo: bytes(MAX_MEMO_BYTES, 'memo') })],
});

export interface Transaction {
  chainId: string;
  signer: Uint8Array;
  nonce: bigint;
  fee: bigint;
  /** Last height at which the transaction may be included. */
  expiresAt: bigint;
  actions: Action[];
}

export const transactionCodec: Codec<Transaction> = struct<Transaction>('Transaction', {
  chainId: chainIdCodec,
  signer: publicKey,
  nonce: u64,
  fee: u128,
  expiresAt: u64,
  actions: list(actionCodec, MAX_ACTIONS_PER_TX, 'actions'),
});

export interface SignedTransaction {
  tx: Transaction;
  signature: Uint8Array;
}

export const signedTransactionCodec: Codec<SignedTransaction> = struct<SignedTransaction>(
  'SignedTransaction',
  {
    tx: transactionCodec,
    signature: signature64,
  },
);

const SIGN_DOMAIN = new TextEncoder().encode('UNC/tx\0');

function signingBytes(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(SIGN_DOMAIN.length + body.length);
  out.set(SIGN_DOMAIN);
  out.set(body, SIGN_DOMAIN.length);
  return out;
}

/** The transaction id: a hash of the signed body (not the signature, so ids are not malleable). */
export function transactionHash(tx: Transaction): Uint8Array {
  return taggedHash('UNC/tx', encode(transactionCodec, tx));
}

export function signTransaction(tx: Transaction, secretSeed: Uint8Array): SignedTransaction {
  return { tx, signature: ed25519Sign(secretSeed, signingBytes(encode(transactionCodec, tx))) };
}

export function verifyTransactionSignature(stx: SignedTransaction): boolean {
  return ed25519Verify(stx.tx.signer, signingBytes(encode(transactionCodec, stx.tx)), stx.signature);
}

export function senderAddress(tx: Transaction): Uint8Array {
  return addressFromPublicKey(tx.signer);
}

/**
 * A transaction as it travels: decoded once, with its encoding, id and size kept together so the
 * mempool, the block builder and storage never re-encode or re-hash it.
 */
export interface TxEnvelope {
  readonly stx: SignedTransaction;
  readonly bytes: Uint8Array;
  readonly hash: Uint8Array;
  readonly sender: Uint8Array;
}

export function envelopeFromBytes(raw: Uint8Array): TxEnvelope {
  const stx = decode(signedTransactionCodec, raw);
  const bodyLength = raw.length - 64;
  return {
    stx,
    bytes: raw,
    hash: taggedHash('UNC/tx', raw.subarray(0, bodyLength)),
    sender: addressFromPublicKey(stx.tx.signer),
  };
}

export function envelopeFromSigned(stx: SignedTransaction): TxEnvelope {
  return envelopeFromBytes(encode(signedTransactionCodec, stx));
}

/** Signature check that reuses the envelope's bytes (the body is the encoding minus the signature). */
export function verifyEnvelopeSignature(env: TxEnvelope): boolean {
  const body = env.bytes.subarray(0, env.bytes.length - 64);
  return ed25519Verify(env.stx.tx.signer, signingBytes(body), env.stx.signature);
}

export function sameTransaction(a: TxEnvelope, b: TxEnvelope): boolean {
  return equalBytes(a.hash, b.hash);
}
