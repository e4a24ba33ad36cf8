/**
 * The bytes of the request/response protocols (`/unc/<chainId>/status/1`, `/unc/<chainId>/blocks/1`)
 * as pure codecs, apart from the libp2p stack: what a peer sends us here is decoded by these
 * functions alone, so they can be tested (and fuzzed) without a network.
 */
import { chainIdCodec, DecodeError, decode, hash32, list, struct, u64 } from '@unc/core';
import { type ChainStatus, MAX_BLOCKS_PER_REQUEST, MAX_TXS_PER_REQUEST } from './types.js';

export const statusCodec = struct<ChainStatus>('ChainStatus', {
  chainId: chainIdCodec,
  genesisHash: hash32,
  height: u64,
  headHash: hash32,
});

export interface BlockRange {
  from: bigint;
  to: bigint;
}

export const blockRangeCodec = struct<BlockRange>('BlockRange', { from: u64, to: u64 });

/** A request never needs more than a range (16 bytes); anything larger is abuse. */
export const MAX_REQUEST_BYTES = 64;
export const MAX_STATUS_BYTES = 256;

/** A peer's status answer; DecodeError when it is not one. */
export function decodeStatusFrame(frame: Uint8Array): ChainStatus {
  return decode(statusCodec, frame);
}

/** A peer's block-range request: 1…MAX_BLOCKS_PER_REQUEST ascending heights, or a DecodeError. */
export function decodeBlockRangeRequest(frame: Uint8Array): BlockRange {
  const range = decode(blockRangeCodec, frame);
  const { from, to } = range;
  if (to < from || to - from + 1n > BigInt(MAX_BLOCKS_PER_REQUEST)) {
    throw new DecodeError(`range ${from}…${to} is not 1…${MAX_BLOCKS_PER_REQUEST} heights`);
  }
  return range;
}

/** A transaction request (`/unc/<chainId>/txs/1`): wire ids of one proposed block's transactions. */
export interface TxRequest {
  blockHash: Uint8Array;
  ids: Uint8Array[];
}

export const txRequestCodec = struct<TxRequest>('TxRequest', {
  blockHash: hash32,
  ids: list(hash32, MAX_TXS_PER_REQUEST, 'ids'),
});

/** The largest transaction request: the block hash, a length and MAX_TXS_PER_REQUEST ids. */
export const MAX_TX_REQUEST_BYTES = 32 + 8 + 32 * MAX_TXS_PER_REQUEST;

/** A peer's transaction request, or a DecodeError. */
export function decodeTxRequest(frame: Uint8Array): TxRequest {
  return decode(txRequestCodec, frame);
}
