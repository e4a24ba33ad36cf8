/**
 * Building and signing transactions for a node: fills in the chain id, nonce, expiry and the
 * minimum fee from what the node reports, then signs with the caller's key.
 */
import {
  type Action,
  addressFromPublicKey,
  decodeAddress,
  ed25519PublicKey,
  encode,
  encodeAddress,
  minimumFee,
  type SignedTransaction,
  signedTransactionCodec,
  signTransaction,
  type Transaction,
  toHex,
  transactionHash,
} from '@unc/core';
import type { UncClient } from './client.js';

export interface BuildOptions {
  /** Defaults to the sender's next nonce as the node reports it. */
  nonce?: bigint;
  /** Defaults to the chain's minimum fee for this transaction's size. */
  fee?: bigint;
  /** Blocks from the current height until the transaction expires (default 100). */
  ttlBlocks?: bigint;
}

/** The exact minimum fee of a transaction: the fee field is fixed-width, so the size is known. */
export function feeFor(
  tx: Omit<Transaction, 'fee'>,
  params: { minFeePerByte: bigint; minFeePerAction: bigint },
): bigint {
  const size = encode(signedTransactionCodec, {
    tx: { ...tx, fee: 0n },
    signature: new Uint8Array(64),
  }).length;
  return minimumFee(params, size, tx.actions.length);
}

export async function buildTransaction(
  client: UncClient,
  seed: Uint8Array,
  actions: Action[],
  opts: BuildOptions = {},
): Promise<SignedTransaction> {
  const signer = ed25519PublicKey(seed);
  const [status, params] = await Promise.all([client.status(), client.getParams()]);
  const nonce =
    opts.nonce ?? BigInt((await client.getAccount(encodeAddress(addressFromPublicKey(signer)))).nonce);
  const base = {
    chainId: status.chainId,
    signer,
    nonce,
    expiresAt: BigInt(status.height) + (opts.ttlBlocks ?? 100n),
    actions,
  };
  const fee =
    opts.fee ??
    feeFor(base, {
      minFeePerByte: BigInt(params.minFeePerByte),
      minFeePerAction: BigInt(params.minFeePerAction),
    });
  return signTransaction({ ...base, fee }, seed);
}

export function transferAction(to: string, amount: bigint, memo = ''): Action {
  return { type: 'transfer', to: decodeAddress(to), amount, memo: new TextEncoder().encode(memo) };
}

export function encodeSigned(stx: SignedTransaction): string {
  return toHex(encode(signedTransactionCodec, stx));
}

export function signedHash(stx: SignedTransaction): string {
  return toHex(transactionHash(stx.tx));
}

/** Signs, submits and returns the hash; does not wait for inclusion. */
export async function sendTransaction(client: UncClient, stx: SignedTransaction): Promise<string> {
  const { hash } = await client.sendRawTransaction(encodeSigned(stx));
  return hash;
}
