/**
 * How many connections the p2p layer accepts, set explicitly rather than left to the library's
 * defaults (which change between libp2p releases and were chosen for browsers and DHT nodes, not
 * for a validator's public port). Each inbound connection costs a Noise handshake, a Yamux session,
 * a status exchange and, once connected, a catch-up: an attacker opening connections as fast as
 * the library allows would spend this node's CPU and every peer slot.
 *
 * Set in a home's config.json under `"p2p"` (docs/consensus.md, "Connection limits").
 *
 * "Address" here is what the RPC's per-IP limits count too (ip-groups.ts): an IPv4 address, or an
 * IPv6 /64 (one host usually holds a whole /64: counted per IPv6 address, a host had 2^64 times
 * every per-address limit); an IPv4-mapped IPv6 address is its IPv4 address. "Subnet" is the
 * address's IPv4 /24 or IPv6 /48, rented as a block: its addresses share one larger limit (a
 * non-public address, a LAN's or a VPC's, is its own subnet: `inboundKeys`).
 */
import { clientKey, isPublicIp, prefixesOf, unlimitedEntry } from '../ip-groups.js';

export interface ConnectionLimits {
  /** Connections at once, both ways; inbound ones past it are refused. Default 200 (100 validators and their followers). */
  maxConnections: number;
  /** Inbound connections still in their handshake (Noise, Yamux) at once. Default 16. */
  maxIncomingPendingConnections: number;
  /**
   * Inbound connections per second from one address (an IPv4 address, an IPv6 /64); past it they
   * are refused. Default 5. libp2p counts it per exact address too.
   */
  inboundConnectionsPerAddressPerSecond: number;
  /**
   * Inbound connections per second from one public subnet (IPv4 /24, IPv6 /48), counting those
   * their address's rate let through. Default 20, four addresses' worth: per address alone, a
   * /24 had 256 times the rate, a /48 65,536 times, a Noise handshake on this node's side each.
   */
  inboundConnectionsPerSubnetPerSecond: number;
  /** An inbound connection's handshake must finish within this, ms. Default 5000. */
  inboundUpgradeTimeoutMs: number;
  /**
   * Inbound connections open at once from one address (IP). Default 8. The rate alone bounds
   * nothing over time: one host opening 5 a second filled all 200 slots in 40 s, and past
   * `maxConnections` every inbound connection is refused, a validator's included.
   */
  maxInboundConnectionsPerAddress: number;
  /**
   * Streams a peer may have open to us on one connection at once. Default 64. Yamux's own default
   * is 1,000, and each stream waits up to `streamNegotiationTimeoutMs` for the peer to name its
   * protocol: one connection held 1,000 silent streams (27 MB of heap in the test, both ends together),
   * gigabytes over 200 connections. An honest peer needs at most 16 (status 4, blocks 4, txs 2, direct 2, identify,
   * gossipsub and a replacement of each).
   */
  maxInboundStreamsPerConnection: number;
  /** An inbound stream must name its protocol (multistream-select) within this, ms. Default 5000 (libp2p: 10,000). */
  streamNegotiationTimeoutMs: number;
  /**
   * Inbound connections from one address (IP) still in their handshake at once. Default 4. The
   * library counts `maxIncomingPendingConnections` for everyone together and refuses past it: one
   * host opening 5 sockets a second that never handshake held all 16 for good (each for
   * `inboundUpgradeTimeoutMs`), and every other inbound connection was refused.
   */
  maxIncomingPendingConnectionsPerAddress: number;
  /**
   * Inbound connections from one subnet (IPv4 /24, IPv6 /48) still in their handshake at once.
   * Default 8, half of `maxIncomingPendingConnections`: per address alone, four addresses of one
   * /24 (or four /64s of one /48) held all 16 shared slots, and every other inbound connection was
   * refused. One address behind a NAT keeps its whole `maxIncomingPendingConnectionsPerAddress`.
   */
  maxIncomingPendingConnectionsPerSubnet: number;
  /**
   * Inbound connections open at once from one subnet (IPv4 /24, IPv6 /48). Default 32, four
   * addresses' worth: per address alone, a rented /24 (256 addresses × 8) filled all
   * `maxConnections`.
   */
  maxInboundConnectionsPerSubnet: number;
}

export const DEFAULT_CONNECTION_LIMITS: Readonly<ConnectionLimits> = {
  maxConnections: 200,
  maxIncomingPendingConnections: 16,
  inboundConnectionsPerAddressPerSecond: 5,
  inboundUpgradeTimeoutMs: 5_000,
  maxInboundConnectionsPerAddress: 8,
  maxInboundStreamsPerConnection: 64,
  streamNegotiationTimeoutMs: 5_000,
  maxIncomingPendingConnectionsPerAddress: 4,
  maxIncomingPendingConnectionsPerSubnet: 8,
  inboundConnectionsPerSubnetPerSecond: 20,
  maxInboundConnectionsPerSubnet: 32,
};

/** The limits with `overrides` applied; a clear error for anything that is not a positive integer. */
export function connectionLimits(overrides: Partial<ConnectionLimits> = {}): ConnectionLimits {
  const limits = { ...DEFAULT_CONNECTION_LIMITS, ...overrides };
  for (const [key, v] of Object.entries(limits)) {
    if (!Object.hasOwn(DEFAULT_CONNECTION_LIMITS, key))
      throw new TypeError(
        `p2p.${key} is not a connection limit (known: ${Object.keys(DEFAULT_CONNECTION_LIMITS).join(', ')})`,
      );
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0)
      throw new TypeError(`p2p.${key} must be a positive integer`);
  }
  return limits;
}

/** The connection limits of a config file's `"p2p"` object (absent: the defaults). */
export function parseConnectionLimits(value: unknown): Partial<ConnectionLimits> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new TypeError('p2p must be an object');
  connectionLimits(value as Partial<ConnectionLimits>);
  return { ...(value as Partial<ConnectionLimits>) };
}

/**
 * The libp2p connection-manager settings for `limits`: every one that bounds inbound work,
 * explicit. `allow`: the addresses of the bootstrap peers (the operator's own list, normally the
 * other validators), which no limit refuses and pruning never drops, so a host filling the slots
 * cannot lock validators out of each other.
 */
export function connectionManagerSettings(limits: ConnectionLimits, bootstrap: readonly string[] = []) {
  return {
    maxConnections: limits.maxConnections,
    maxIncomingPendingConnections: limits.maxIncomingPendingConnections,
    inboundConnectionThreshold: limits.inboundConnectionsPerAddressPerSecond,
    inboundUpgradeTimeout: limits.inboundUpgradeTimeoutMs,
    inboundStreamProtocolNegotiationTimeout: limits.streamNegotiationTimeoutMs,
    allow: [...new Set(bootstrap.map(addressOf).filter((a): a is string => a !== null))],
  };
}

/**
 * The IP part of a multiaddr (`/ip4/1.2.3.4` of `/ip4/1.2.3.4/tcp/26656/p2p/…`), or null for a
 * name (`/dns4/…`): only a literal address can be allowed, a name could point anywhere later.
 */
export function addressOf(multiaddr: string): string | null {
  const m = /^\/(ip4|ip6)\/([^/]+)/.exec(multiaddr);
  return m ? `/${m[1]}/${m[2]}` : null;
}

/** Where an inbound connection is counted: its address (IPv4, IPv6 /64) and its subnet (/24, /48). */
export interface InboundKeys {
  readonly address: string;
  readonly subnet: string;
}

/**
 * The keys an inbound connection from `multiaddr` is counted under (connection-limits.ts, top),
 * or null for a name (`/dns4/…`), which no socket's remote address is. A non-public address
 * (ip-groups.ts `isPublicIp`: the LAN, a VPC, the loopback, carrier-grade NAT) is its own subnet:
 * nobody on the internet can connect from one, and the nodes of one LAN or VPC /24 are the
 * operator's (a seed there refused its 33rd neighbour, and the 9th of them starting at once).
 */
export function inboundKeys(multiaddr: string): InboundKeys | null {
  const m = /^\/(ip4|ip6)\/([^/]+)/.exec(multiaddr);
  if (!m?.[2]) return null;
  const address = clientKey(m[2]);
  const isPublic = isPublicIp(address.includes('.') ? address : m[2]);
  return { address, subnet: (isPublic ? prefixesOf(address)?.[0] : undefined) ?? address };
}

/**
 * The one IP address of a multiaddr, as exemptions match it: IPv6 canonical, IPv4-mapped IPv6 as
 * IPv4 (an IPv4 bootstrap peer reaching a dual-stack listener shows as `::ffff:…`); null for a name.
 * Exact, never a prefix: exempting a bootstrap peer exempts its address, not its /64 or /24.
 */
export function exactAddressOf(multiaddr: string): string | null {
  const m = /^\/(ip4|ip6)\/([^/]+)/.exec(multiaddr);
  if (!m?.[2]) return null;
  try {
    return unlimitedEntry(m[2]);
  } catch {
    return null;
  }
}

/** The Yamux settings for `limits`: the streams a peer may open to us, not the library's 1,000. */
export function streamMuxerSettings(limits: ConnectionLimits) {
  return { maxInboundStreams: limits.maxInboundStreamsPerConnection };
}
