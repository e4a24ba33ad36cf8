import { type Codec, decode, encode, struct, u32, u64, u128 } from '../encoding/codec.js';
import { StateSpace } from '../state/accounts.js';
import type { StateOverlay, StateReader } from '../state/store.js';

/**
 * Consensus parameters. They come from genesis and live in the state (so a header's state root
 * commits to them and governance can change them later through transactions).
 */
export interface ChainParams {
  /** Target interval between blocks, milliseconds. */
  blockTimeMs: number;
  maxBlockTxs: number;
  maxBlockBytes: number;
  maxTxBytes: number;
  /** Minimum fee, base units: per encoded transaction byte, and per action. */
  minFeePerByte: bigint;
  minFeePerAction: bigint;
  /** How far ahead of the current height a transaction's expiry may be. */
  maxTxLifetimeBlocks: bigint;
}

export const chainParamsCodec: Codec<ChainParams> = struct<ChainParams>('ChainParams', {
  blockTimeMs: u32,
  maxBlockTxs: u32,
  maxBlockBytes: u32,
  maxTxBytes: u32,
  minFeePerByte: u128,
  minFeePerAction: u128,
  maxTxLifetimeBlocks: u64,
});

export const PARAMS_KEY = new Uint8Array([StateSpace.system, 0x02]);

export function getParams(state: StateReader): ChainParams {
  const raw = state.get(PARAMS_KEY);
  if (!raw) throw new Error('state has no chain parameters (not initialised from a genesis)');
  return decode(chainParamsCodec, raw);
}

export function putParams(state: StateOverlay, params: ChainParams): void {
  state.set(PARAMS_KEY, encode(chainParamsCodec, params));
}

export function minimumFee(
  params: Pick<ChainParams, 'minFeePerByte' | 'minFeePerAction'>,
  txBytes: number,
  actions: number,
): bigint {
  return params.minFeePerByte * BigInt(txBytes) + params.minFeePerAction * BigInt(actions);
}

export const DEFAULT_PARAMS: Readonly<ChainParams> = Object.freeze({
  blockTimeMs: 1000,
  maxBlockTxs: 20_000,
  maxBlockBytes: 8 * 1024 * 1024,
  maxTxBytes: 64 * 1024,
  minFeePerByte: 1_000_000_000n, // 10^-9 UNC per byte
  minFeePerAction: 10_000_000_000_000n, // 10^-5 UNC per action
  maxTxLifetimeBlocks: 86_400n,
});
