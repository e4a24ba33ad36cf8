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
  /**
   * 'ended': past the moment its escrow ran out or its end time passed (escrowUntil); the chain
   * pays nothing from then on, so no job is served, even before the chain settles it.
   */
  status: 'active' | 'closing' | 'ended' | 'closed';
  /** Block time (ms) at which the lease ends, computed by the chain from its escrow and end time. */
  escrowUntil?: number;
}

/**
 * The lease as the provider must treat it at wall-clock time `nowMs`: a lease the chain still
 * shows running is 'ended' from escrowUntil on (the chain's view lags by up to a block).
 */
export function leaseAt(lease: ProviderLease, nowMs: number): ProviderLease {
  if ((lease.status === 'active' || lease.status === 'closing') && lease.escrowUntil !== undefined) {
    if (nowMs >= lease.escrowUntil) return { ...lease, status: 'ended' };
  }
  return lease;
}

export interface LeaseSource {
  /** The lease as the chain has it now, or null when the chain knows no such lease. */
  getLease(idHex: string): Promise<ProviderLease | null>;
}

/** Reads leases through the node's `unc_getLease` RPC; a lease past its escrowUntil reads 'ended'. */
export class RpcLeaseSource implements LeaseSource {
  constructor(
    private readonly client: UncClient,
    private readonly now: () => number = Date.now,
  ) {}

  async getLease(idHex: string): Promise<ProviderLease | null> {
    try {
      return leaseAt(await this.client.call<ProviderLease>('unc_getLease', [idHex]), this.now());
    } catch (err) {
      if (err instanceof RpcClientError && err.reason === 'NOT_FOUND') return null;
      throw err;
    }
  }
}
