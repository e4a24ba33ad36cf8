import { type Codec, decode, encode, struct, u32, u64, u128 } from '../encoding/codec.js';
import { StateSpace } from '../state/accounts.js';
import type { StateOverlay, StateReader } from '../state/store.js';
import type { Action } from './transaction.js';

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

/**
 * CONSENSUS: the drift D (ms) the protocol allows between a block's time and the real time. A node
 * refuses a proposal stamped more than D ahead of its clock, and prevotes nil on a fresh one stamped
 * more than D behind it (node consensus/gossip-checks.ts `proposalEnvelopeProblem`, with the
 * driver's round widening of the second). So each block time of a block decided in its first
 * round may be off the real time by up to ±D, and a rule that measures a chip's own clock against
 * the elapsed block time of two blocks allows 2D for it (the tpm2 credit slack, `tpmCreditSlackMs`).
 * A protocol constant, not a genesis parameter or a node option: every node must take the same D
 * for the credit rule to cover what the proposal rule lets through.
 */
export const MAX_BLOCK_TIME_DRIFT_MS = 5_000;

export const PARAMS_KEY = new Uint8Array([StateSpace.system, 0x02]);

export function getParams(state: StateReader): ChainParams {
  const raw = state.get(PARAMS_KEY);
  if (!raw) throw new Error('state has no chain parameters (not initialised from a genesis)');
  return decode(chainParamsCodec, raw);
}

export function putParams(state: StateOverlay, params: ChainParams): void {
  state.set(PARAMS_KEY, encode(chainParamsCodec, params));
}

/**
 * CONSENSUS (docs/security-audit-money.md M-1): how many per-action fees `actions` pay. One per
 * action, except a `claimRewards`, which pays one per chip it names: each is a settlement of its
 * own (the chip's record read and written, its epochs' records read), up to 1,024 per action, and
 * priced as one action a 64 KiB claim of ~2,000 chips made every node do ~30 times the work that
 * transfers pay for at the same fee. (A heartbeat's answers are fee-free and bounded by their
 * windows; an offer's chips and a closed offer's leases by 32.)
 */
export function feeActions(actions: readonly Action[]): number {
  let n = 0;
  for (const a of actions) n += a.type === 'claimRewards' ? Math.max(1, a.chipIds.length) : 1;
  return n;
}

/** The minimum fee of a transaction of `txBytes` bytes paying `actions` per-action fees (feeActions). */
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
