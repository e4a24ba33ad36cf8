/**
 * IP addresses as the per-IP limits count them, shared by the RPC server (rpc/clients.ts) and the
 * p2p connection gater (p2p/libp2p.ts), so that both count an address the same way.
 *
 * Addresses are cheap in blocks: one IPv6 host usually holds a whole /64 (2^64 addresses), and a
 * /24 of IPv4 or a /48 of IPv6 is rented by the month. So a limit "per address" counts an IPv4
 * address as itself and an IPv6 address under its /64 (`clientKey`); a limit per network counts it
 * under its /24 or /48 (and /16 or /32: `prefixesOf`). An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`,
 * in any spelling: a multiaddr writes it `::ffff:102:304`) is its IPv4 address everywhere.
 */
import { isIP } from 'node:net';

/** An IP address read: IPv4 dotted, or IPv6 as its eight 16-bit groups (the zone dropped). */
type ParsedIp = { readonly v4: string } | { readonly v6: readonly number[] };

/** Reads an IP address in any spelling; null for anything that is not one. */
function parseIp(address: string): ParsedIp | null {
  const zone = address.indexOf('%');
  const bare = zone === -1 ? address : address.slice(0, zone);
  const family = isIP(bare);
  if (family === 4) return { v4: bare };
  if (family !== 6) return null;
  // The URL parser writes IPv6 canonically (lower case, an embedded IPv4 as two groups, `::`).
  const canonical = new URL(`http://[${bare}]/`).hostname.slice(1, -1);
  const [head = '', tail] = canonical.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const written = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const groups = written.map((g) => Number.parseInt(g, 16));
  if (groups.length === 8 && groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return { v4: v4Of(groups[6]!, groups[7]!) };
  }
  return { v6: groups };
}

/** The dotted IPv4 address of two 16-bit groups. */
function v4Of(hi: number, lo: number): string {
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

/**
 * The IPv4 host an IPv6 address is only a translation of, or null: NAT64's well-known prefix
 * (`64:ff9b::/96`, RFC 6052: an IPv4 client seen through a translator in front of this node), 6to4
 * (`2002:V4::/48`, RFC 3056: the /48 of one IPv4 host) and Teredo (`2001:0:S:S:F:P:~C:~C`, RFC
 * 4380: the client's public IPv4, inverted, in the last 32 bits). A TCP handshake from one needs
 * the answer to reach that IPv4 host, so it cannot name another's. Counted by /64 instead, every
 * IPv4 client behind one NAT64 shared one /64's limits (one of them locked out the others), and
 * one 6to4 host had 65,536 /64s' worth.
 */
function embeddedV4(g: readonly number[]): string | null {
  if (g[0] === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every((x) => x === 0)) return v4Of(g[6]!, g[7]!);
  if (g[0] === 0x2002) return v4Of(g[1]!, g[2]!);
  if (g[0] === 0x2001 && g[1] === 0) return v4Of(g[6]! ^ 0xffff, g[7]! ^ 0xffff);
  return null;
}

/**
 * The address a client is counted under: IPv4 as is, IPv4-mapped IPv6 as IPv4, an IPv6 address
 * that translates an IPv4 host (`embeddedV4`: NAT64, 6to4, Teredo) as that IPv4 address, other
 * IPv6 by /64 (`2001:db8:0:0::/64`); 'unknown' for none, and anything that is not an IP address
 * as itself. Exact matches (`unlimitedEntry`, bootstrap exemptions) never translate.
 */
export function clientKey(address: string | undefined): string {
  if (!address) return 'unknown';
  const ip = parseIp(address);
  if (ip === null) return address;
  if ('v4' in ip) return ip.v4;
  const v4 = embeddedV4(ip.v6);
  if (v4 !== null) return v4;
  // One client usually holds a whole /64, so per-address limits apply per /64.
  return `${ip.v6
    .slice(0, 4)
    .map((g) => g.toString(16))
    .join(':')}::/64`;
}

/** A socket's address, as unlimitedAddresses are matched: IPv4-mapped IPv6 as IPv4. */
export function normalAddress(address: string | undefined): string {
  if (!address) return 'unknown';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/**
 * An unlimitedAddresses entry as normalAddress gives a socket's address: IPv4 as is, IPv6 in the
 * canonical form sockets give (lower case, the longest run of zero groups compressed), IPv4-mapped
 * IPv6 (in any spelling) as IPv4; a TypeError for anything that is not one IP address. Entries were
 * compared as written: '2001:DB8::1', '0:0:0:0:0:0:0:1', 'localhost' or a range '10.0.0.0/8' never
 * matched a client, silently, and every client behind such a proxy shared one address's limits.
 */
export function unlimitedEntry(entry: string): string {
  const zone = entry.indexOf('%');
  const bare = zone === -1 ? entry : entry.slice(0, zone);
  const family = isIP(bare);
  if (family === 4 && zone === -1) return bare;
  if (family !== 6) throw new TypeError(`${JSON.stringify(entry)} is not an IP address`);
  const ip = parseIp(bare);
  if (ip !== null && 'v4' in ip) return ip.v4;
  const canonical = new URL(`http://[${bare}]/`).hostname.slice(1, -1);
  return zone === -1 ? canonical : canonical + entry.slice(zone);
}

/**
 * The prefixes of a client key (from clientKey), the smaller first: an IPv4 address's /24 and /16,
 * an IPv6 /64's /48 and /32; undefined for anything else ('unknown').
 */
export function prefixesOf(client: string): readonly [subnet: string, network: string] | undefined {
  if (client.endsWith('::/64')) {
    const g = client.slice(0, -'::/64'.length).split(':');
    return g.length === 4 ? [`${g[0]}:${g[1]}:${g[2]}::/48`, `${g[0]}:${g[1]}::/32`] : undefined;
  }
  const o = client.split('.');
  return o.length === 4 ? [`${o[0]}.${o[1]}.${o[2]}.0/24`, `${o[0]}.${o[1]}.0.0/16`] : undefined;
}

/** IPv4 ranges that name no host on the public internet (RFC 6890 and its successors). */
const NON_PUBLIC_V4: readonly (readonly [base: number, bits: number])[] = [
  [0x00000000, 8], // 0.0.0.0/8 "this network", the unspecified address
  [0x0a000000, 8], // 10/8 private
  [0x64400000, 10], // 100.64/10 carrier-grade NAT
  [0x7f000000, 8], // 127/8 loopback
  [0xa9fe0000, 16], // 169.254/16 link-local, cloud metadata (169.254.169.254)
  [0xac100000, 12], // 172.16/12 private
  [0xc0000000, 24], // 192.0.0/24 protocol assignments
  [0xc0000200, 24], // 192.0.2/24 documentation
  [0xc0586300, 24], // 192.88.99/24 the 6to4 relays' anycast, deprecated (RFC 7526)
  [0xc0a80000, 16], // 192.168/16 private
  [0xc6120000, 15], // 198.18/15 benchmarking
  [0xc6336400, 24], // 198.51.100/24 documentation
  [0xcb007100, 24], // 203.0.113/24 documentation
  [0xe0000000, 4], // 224/4 multicast
  [0xf0000000, 4], // 240/4 reserved, 255.255.255.255 broadcast
];

/** Whether a dotted IPv4 address is outside every NON_PUBLIC_V4 range. */
function isPublicV4(v4: string): boolean {
  const n = v4.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
  return !NON_PUBLIC_V4.some(([base, bits]) => Math.floor(n / 2 ** (32 - bits)) === base / 2 ** (32 - bits));
}

/**
 * Whether an IP address (any spelling; IPv4-mapped IPv6 as its IPv4) names a host reachable on
 * the public internet: not loopback, private, link-local (cloud metadata), carrier-grade NAT,
 * unspecified, multicast, documentation or otherwise reserved. IPv6 counts as public only in
 * global unicast (2000::/3), less documentation (2001:db8::/32, 3fff::/20), benchmarking and
 * ORCHID; a 6to4 address (2002::/16) only where the IPv4 host it embeds is (2002:a00:1:: is
 * 10.0.0.1's). NAT64's 64:ff9b::/96 is a local translator's: not public. False for anything not an IP.
 */
export function isPublicIp(address: string): boolean {
  const ip = parseIp(address);
  if (ip === null) return false;
  if ('v4' in ip) return isPublicV4(ip.v4);
  const [a = 0, b = 0] = ip.v6;
  if ((a & 0xe000) !== 0x2000) return false;
  if (a === 0x2002) return isPublicV4(v4Of(b, ip.v6[2]!));
  if (a === 0x3fff) return b >= 0x1000; // 3fff::/20 documentation (RFC 9637)
  if (a !== 0x2001) return true;
  if (b === 0x0db8) return false; // 2001:db8::/32 documentation
  if (b === 0x0002 && ip.v6[2] === 0) return false; // 2001:2::/48 benchmarking
  return (b & 0xfff0) !== 0x0010 && (b & 0xfff0) !== 0x0020; // 2001:10::/28, 2001:20::/28 ORCHID
}
