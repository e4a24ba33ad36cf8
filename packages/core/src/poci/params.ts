import { bool, type Codec, decode, encode, struct, u8, u32, u64 } from '../encoding/codec.js';
import { StateSpace } from '../state/accounts.js';
import type { StateOverlay, StateReader } from '../state/store.js';

/** POCI parameters (PROTOCOL.md §4.3); from genesis, kept in state. */
export interface PociParams {
  /** Blocks per epoch (3,600 at 1 s blocks = one hour; dev chains 60). */
  epochBlocks: bigint;
  /** Challenge slots per chip per epoch (S). */
  slotsPerEpoch: number;
  /** An answer must be included within this many blocks after its slot block (W). */
  answerWindowBlocks: bigint;
  /** Consecutive missed slots after which a chip counts as offline (K). */
  offlineAfterMisses: number;
  /** Missed slots per epoch forgiven for rewards. */
  graceSlotsPerEpoch: number;
  /** How old the block a registration message names may be. */
  registrationMaxAgeBlocks: bigint;
  /** Whether software (dev-soft) chips are accepted: dev chains only. */
  devSoftEnabled: boolean;
}

export const pociParamsCodec: Codec<PociParams> = struct<PociParams>('PociParams', {
  epochBlocks: u64,
  slotsPerEpoch: u8,
  answerWindowBlocks: u64,
  offlineAfterMisses: u32,
  graceSlotsPerEpoch: u8,
  registrationMaxAgeBlocks: u64,
  devSoftEnabled: bool,
});

export const DEFAULT_POCI_PARAMS: Readonly<PociParams> = Object.freeze({
  epochBlocks: 3600n,
  slotsPerEpoch: 4,
  answerWindowBlocks: 20n,
  offlineAfterMisses: 3,
  graceSlotsPerEpoch: 1,
  registrationMaxAgeBlocks: 100n,
  devSoftEnabled: false,
});

export const POCI_PARAMS_KEY = new Uint8Array([StateSpace.system, 0x03]);

export function getPociParams(state: StateReader): PociParams {
  const raw = state.get(POCI_PARAMS_KEY);
  return raw ? decode(pociParamsCodec, raw) : { ...DEFAULT_POCI_PARAMS };
}

export function putPociParams(state: StateOverlay, params: PociParams): void {
  state.set(POCI_PARAMS_KEY, encode(pociParamsCodec, params));
}
