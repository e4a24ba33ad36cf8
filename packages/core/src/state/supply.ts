import { type Codec, decode, encode, struct, u128 } from '../encoding/codec.js';
import { StateSpace } from './accounts.js';
import type { StateOverlay, StateReader } from './store.js';

/**
 * The supply ledger. Invariant (checked by tests after every block):
 *   sum of all balances (+ bonds and escrows, as they appear) = genesisAllocation + minted − burned − slashed
 * and minted ≤ miningReserve at all times.
 */
export interface Supply {
  maxSupply: bigint;
  genesisAllocation: bigint;
  /** The part of maxSupply that only mining may ever create (97% by default). */
  miningReserve: bigint;
  minted: bigint;
  burned: bigint;
  slashed: bigint;
}

export const supplyCodec: Codec<Supply> = struct<Supply>('Supply', {
  maxSupply: u128,
  genesisAllocation: u128,
  miningReserve: u128,
  minted: u128,
  burned: u128,
  slashed: u128,
});

export const SUPPLY_KEY = new Uint8Array([StateSpace.system, 0x01]);

export function getSupply(state: StateReader): Supply {
  const raw = state.get(SUPPLY_KEY);
  if (!raw) throw new Error('state has no supply record (not initialised from a genesis)');
  return decode(supplyCodec, raw);
}

export function putSupply(state: StateOverlay, supply: Supply): void {
  state.set(SUPPLY_KEY, encode(supplyCodec, supply));
}

export function circulatingSupply(s: Supply): bigint {
  return s.genesisAllocation + s.minted - s.burned - s.slashed;
}
