/**
 * The libp2p stack takes most of a second to load; commands that never open a network (`unc
 * status`, `unc query`, …) should not pay for it. These entry points load it on first use.
 */
import type { Libp2pNetwork, NetworkOptions } from './libp2p.js';

export async function startNetwork(options: NetworkOptions): Promise<Libp2pNetwork> {
  return (await import('./libp2p.js')).startNetwork(options);
}

/** The peer id a 32-byte node key gives, without starting anything. */
export async function peerIdFromNodeKey(seed: Uint8Array): Promise<string> {
  return (await import('./libp2p.js')).peerIdFromNodeKey(seed);
}
