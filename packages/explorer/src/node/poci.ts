/** Data hooks of the POCI pages: chips with the epoch they were read in, and the registries. */
import type { ChipJson, EpochJson, ModelJson, NetworkStats, VendorJson } from '../sdk';
import { type RpcState, useRpc } from './context';

/** How often chip views are re-read while a page shows them (slots change every few blocks). */
export const CHIPS_REFRESH_MS = 2000;

export interface ChipsSnapshot {
  chips: ChipJson[];
  epoch: EpochJson;
  /** The head height the chips were read at (about). */
  head: number;
}

/** Every chip (or an owner's), the current epoch and the head, re-read every CHIPS_REFRESH_MS. */
export function useChips(owner?: string): RpcState<ChipsSnapshot> {
  return useRpc<ChipsSnapshot>(
    `chips:${owner ?? ''}`,
    async (c) => {
      const [chips, epoch, status] = await Promise.all([
        c.call<ChipJson[]>('unc_getChips', owner ? [owner] : []),
        c.call<EpochJson>('unc_getEpoch', []),
        c.status(),
      ]);
      return { chips, epoch, head: status.height };
    },
    { refreshMs: CHIPS_REFRESH_MS },
  );
}

export interface Registries {
  vendors: VendorJson[];
  models: ModelJson[];
}

const EMPTY: Registries = { vendors: [], models: [] };

/** Vendors and chip models (they change only by governance); empty until loaded. */
export function useRegistries(): Registries {
  const r = useRpc<Registries>('registries', async (c) => {
    const [vendors, models] = await Promise.all([
      c.call<VendorJson[]>('unc_getVendors', []),
      c.call<ModelJson[]>('unc_getModels', []),
    ]);
    return { vendors, models };
  });
  return r.data ?? EMPTY;
}

/** The node's figures over every chip (a chip list stops at 1,000), re-read with the chips. */
export function useNetworkStats(): RpcState<NetworkStats> {
  return useRpc<NetworkStats>('network-stats', (c) => c.getNetworkStats(), {
    refreshMs: CHIPS_REFRESH_MS,
  });
}
