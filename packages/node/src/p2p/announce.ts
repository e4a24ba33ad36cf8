/**
 * Which addresses a node tells peers it is at (identify), and which of the addresses peers tell it
 * it keeps. Listening on a wildcard (`--p2p-host 0.0.0.0`) had libp2p announce every interface's
 * address to every peer: the loopback, the operator's LAN (10/8, 192.168/16), a cloud host's
 * link-local range (169.254/16: the metadata service). A peer dialling them dials into the
 * operator's network; a list of them maps it for anyone who connects.
 */
import { isPublicIp } from '../ip-groups.js';
import { exactAddressOf } from './connection-limits.js';

/** The unspecified addresses: listening on one listens on every interface. */
const WILDCARDS = new Set(['0.0.0.0', '::']);

/**
 * The addresses the operator named in `listen` (never a wildcard): announced even when not public,
 * since listening on exactly `127.0.0.1` or `10.0.0.5` says that is where the node is reached (a
 * local testnet, a chain on one LAN). Only a wildcard's expansion is filtered.
 */
export function namedListenAddresses(listen: readonly string[]): ReadonlySet<string> {
  const named = new Set<string>();
  for (const addr of listen) {
    const ip = exactAddressOf(addr);
    if (ip !== null && !WILDCARDS.has(ip)) named.add(ip);
  }
  return named;
}

/**
 * Whether a multiaddr of this node's may be announced: its IP is public (ip-groups.ts
 * `isPublicIp`), or one the operator named (`namedListenAddresses`); a name (`/dns4/…`) is the
 * operator's too; a zoned address (`/ip6zone/…`, link-local) never. NetworkOptions.announce, when
 * given, is announced as it is, unfiltered. (libp2p itself holds back a public one until AutoNAT
 * verifies it, which is not run.)
 */
export function announceable(multiaddr: string, named: ReadonlySet<string>): boolean {
  const ip = exactAddressOf(multiaddr);
  return ip === null ? !/^\/ip(4|6|6zone)\//.test(multiaddr) : isPublicIp(ip) || named.has(ip);
}

/**
 * Whether an address a peer announced may be kept (libp2p's peer store, what a dial by peer id
 * would use): only a public IP address. Nothing here dials by peer id (libp2p.ts `openStream`),
 * and the store is not kept past a peer's connection (`forgetLater`); this keeps a peer from
 * placing the operator's LAN, the loopback or the metadata service in it at all.
 */
export function storablePeerAddress(multiaddr: string): boolean {
  const ip = exactAddressOf(multiaddr);
  return ip !== null && isPublicIp(ip);
}
