/**
 * Where the provider learns who may use a lease: the chain. The HTTP layer only needs these few
 * fields of the node's LeaseJson, so it is written against this interface and any source that
 * gives them (the node's RPC in production).
 */
import { RpcClientError, type UncClient } from '@unc/sdk';

export interface ProviderLease {
  /** Lease id, hex. */
  id: string;
  /** The leased chip, hex. */
  chipId: string;
  /** The renter's Ed25519 public key, hex: the only key whose requests are served. */
  renterPublicKey: string;
  status: 'active' | 'closing' | 'closed';
}

export interface LeaseSource {
  /** The lease as the chain has it now, or null when the chain knows no such lease. */
  getLease(idHex: string): Promise<ProviderLease | null>;
}

/** Reads leases through the node's `unc_getLease` RPC. */
export class RpcLeaseSource implements LeaseSource {
  constructor(private readonly client: UncClient) {}

  async getLease(idHex: string): Promise<ProviderLease | null> {
    try {
      return await this.client.call<ProviderLease>('unc_getLease', [idHex]);
    } catch (err) {
      if (err instanceof RpcClientError && err.reason === 'NOT_FOUND') return null;
      throw err;
    }
  }
}
