/** Data hooks of the marketplace pages: offers, leases, provider records, re-read while shown. */
import type { LeaseJson, OfferJson, ProviderRecordJson } from '../sdk';
import { type RpcState, useRpc } from './context';

/** Leases settle at epoch ends and close at any block: re-read this often while a page shows them. */
export const MARKET_REFRESH_MS = 3000;

export interface ProviderRow {
  provider: string;
  record: ProviderRecordJson | null;
  offers: OfferJson[];
}

export interface MarketSnapshot {
  /** Open and closing offers (a closing offer's leases still run). */
  offers: OfferJson[];
  /** Every lease of every provider with an offer, newest first. */
  leases: LeaseJson[];
  providers: ProviderRow[];
}

/**
 * The whole market as the node lists it: its offers, then each provider's leases and record (the
 * node lists leases per renter or per provider, so the providers of the offers are the way in).
 */
export function useMarket(): RpcState<MarketSnapshot> {
  return useRpc<MarketSnapshot>(
    'market',
    async (c) => {
      const offers = (await c.getOffers({ all: true })).filter((o) => o.status !== 'closed');
      const providers = [...new Set(offers.map((o) => o.provider))];
      const rows = await Promise.all(
        providers.map(async (provider) => {
          const [leases, record] = await Promise.all([
            c.getLeases({ provider }),
            c.getProviderRecord(provider).catch(() => null),
          ]);
          return { provider, leases, record };
        }),
      );
      const seen = new Set<string>();
      const leases: LeaseJson[] = [];
      for (const r of rows)
        for (const l of r.leases)
          if (!seen.has(l.id)) {
            seen.add(l.id);
            leases.push(l);
          }
      leases.sort((a, b) => b.startTime - a.startTime);
      return {
        offers,
        leases,
        providers: rows.map((r) => ({
          provider: r.provider,
          record: r.record,
          offers: offers.filter((o) => o.provider === r.provider),
        })),
      };
    },
    { refreshMs: MARKET_REFRESH_MS },
  );
}

export interface AccountMarket {
  asRenter: LeaseJson[];
  asProvider: LeaseJson[];
  record: ProviderRecordJson | null;
}

/** An account's leases as renter and as provider, and its provider record. */
export function useAccountMarket(address: string): RpcState<AccountMarket> {
  return useRpc<AccountMarket>(
    `account-market:${address}`,
    async (c) => {
      const [asRenter, asProvider, record] = await Promise.all([
        c.getLeases({ renter: address }),
        c.getLeases({ provider: address }),
        c.getProviderRecord(address).catch(() => null),
      ]);
      return { asRenter, asProvider, record };
    },
    { refreshMs: MARKET_REFRESH_MS },
  );
}

/** The leases of one chip (its owner is the provider that can lease it out), newest first. */
export function useChipLeases(chipId: string, owner: string | undefined): RpcState<LeaseJson[]> {
  return useRpc<LeaseJson[]>(
    `chip-leases:${chipId}:${owner ?? ''}`,
    async (c) => {
      if (!owner) return [];
      const leases = await c.getLeases({ provider: owner });
      return leases.filter((l) => l.chipId === chipId).sort((a, b) => b.startTime - a.startTime);
    },
    { refreshMs: MARKET_REFRESH_MS },
  );
}
