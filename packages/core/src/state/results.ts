import { address, hash32, MAX_MEMO_BYTES } from '../chain/transaction.js';
import { bytes, type Codec, list, struct, taggedUnion, u128 } from '../encoding/codec.js';
import type { TxEvent, TxResult } from './execute.js';

/** Stored with each block so `getTransaction` can say what a transaction did. */
export const txEventCodec: Codec<TxEvent> = taggedUnion<TxEvent>('TxEvent', {
  transfer: [
    1,
    struct('TransferEvent', { from: address, to: address, amount: u128, memo: bytes(MAX_MEMO_BYTES) }),
  ],
  fee: [2, struct('FeeEvent', { payer: address, amount: u128, burned: u128, toProposer: u128 })],
});

export const txResultCodec: Codec<TxResult> = struct<TxResult>('TxResult', {
  hash: hash32,
  events: list(txEventCodec, 1024, 'events'),
});

export const blockResultsCodec: Codec<TxResult[]> = list(txResultCodec, 100_000, 'results');
