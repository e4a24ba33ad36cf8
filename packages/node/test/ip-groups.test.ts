import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { clientKey, isPublicIp, prefixesOf, unlimitedEntry } from '../src/ip-groups.js';
import { announceable, namedListenAddresses, storablePeerAddress } from '../src/p2p/announce.js';
import { exactAddressOf, inboundKeys } from '../src/p2p/connection-limits.js';

test('an IPv4-mapped IPv6 address counts as its IPv4 address in every spelling (a multiaddr writes ::ffff:102:304)', () => {
  for (const spelling of ['::ffff:1.2.3.4', '::ffff:102:304', '0:0:0:0:0:FFFF:0102:0304', '::FFFF:1.2.3.4'])
    assert.equal(clientKey(spelling), '1.2.3.4', spelling);
  assert.deepEqual(inboundKeys('/ip6/::ffff:102:304/tcp/1'), { address: '1.2.3.4', subnet: '1.2.3.0/24' });
  assert.deepEqual(inboundKeys('/ip4/1.2.3.4/tcp/1'), inboundKeys('/ip6/::ffff:1.2.3.4/tcp/9'));
  assert.equal(exactAddressOf('/ip6/::ffff:102:304/tcp/1'), '1.2.3.4');
});

test('an IPv6 address counts under its /64, its subnet is its /48', () => {
  assert.deepEqual(inboundKeys('/ip6/2a01:4f8:1:2::1/tcp/1'), {
    address: '2a01:4f8:1:2::/64',
    subnet: '2a01:4f8:1::/48',
  });
  assert.equal(
    inboundKeys('/ip6/2a01:4f8:1:2:ffff:ffff:ffff:ffff/tcp/1')?.address,
    inboundKeys('/ip6/2a01:04F8:0001:0002::9/tcp/5')?.address,
  );
  assert.notEqual(
    inboundKeys('/ip6/2a01:4f8:1:3::1/tcp/1')?.address,
    inboundKeys('/ip6/2a01:4f8:1:2::1/tcp/1')?.address,
  );
  assert.equal(
    inboundKeys('/ip6/2a01:4f8:1:3::1/tcp/1')?.subnet,
    inboundKeys('/ip6/2a01:4f8:1:2::1/tcp/1')?.subnet,
  );
  assert.equal(inboundKeys('/dns4/example.com/tcp/1'), null);
  // Exemptions are exact: a bootstrap peer's address, never its /64.
  assert.notEqual(exactAddressOf('/ip6/2a01:4f8:1:2::1'), exactAddressOf('/ip6/2a01:4f8:1:2::2'));
});

test('the address keys agree with the RPC prefixes, for any IPv6 address in any spelling', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 }), (groups) => {
      const full = groups.map((g) => g.toString(16).padStart(4, '0').toUpperCase()).join(':');
      const canonical = unlimitedEntry(full);
      assert.equal(clientKey(full), clientKey(canonical));
      const key = clientKey(full);
      if (key.includes('.')) return; // ::ffff:a.b.c.d
      assert.equal(
        key,
        `${groups
          .slice(0, 4)
          .map((g) => g.toString(16))
          .join(':')}::/64`,
      );
      assert.deepEqual(
        prefixesOf(key)?.[0],
        `${groups
          .slice(0, 3)
          .map((g) => g.toString(16))
          .join(':')}::/48`,
      );
    }),
  );
});

test('public addresses: not loopback, private, link-local (cloud metadata), CGNAT, unspecified or reserved', () => {
  for (const ip of ['8.8.8.8', '1.1.1.1', '2a01:4f8::1', '2606:4700::1111', '::ffff:8.8.8.8'])
    assert.equal(isPublicIp(ip), true, ip);
  for (const ip of [
    '127.0.0.1',
    '10.1.2.3',
    '172.16.0.1',
    '172.31.255.255',
    '192.168.1.1',
    '169.254.169.254',
    '100.64.0.1',
    '0.0.0.0',
    '224.0.0.1',
    '255.255.255.255',
    '192.0.2.2',
    '::1',
    '::',
    'fe80::1',
    'fd00::2',
    'fc00::1',
    'ff02::1',
    '2001:db8::1',
    '::ffff:10.0.0.1',
    '::ffff:a00:1',
    'example.com',
  ])
    assert.equal(isPublicIp(ip), false, ip);
  assert.equal(isPublicIp('172.32.0.1'), true);
  assert.equal(isPublicIp('100.128.0.1'), true);
});

test('an IPv6 address that only translates an IPv4 host (NAT64 64:ff9b::/96, 6to4, Teredo) counts as that IPv4 address', () => {
  // Counted by /64, every IPv4 client behind one NAT64 shared one /64's limits (one of them locked
  // the others out), and one 6to4 host (a /48 per IPv4 address) had 65,536 /64s' worth.
  for (const [ip, v4] of [
    ['64:ff9b::1.2.3.4', '1.2.3.4'],
    ['64:ff9b::102:304', '1.2.3.4'],
    ['64:FF9B:0:0:0:0:0909:0909', '9.9.9.9'],
    ['2002:102:304::1', '1.2.3.4'],
    ['2002:102:304:ffff:1:2:3:4', '1.2.3.4'],
    // Teredo: the client's IPv4 inverted in the last 32 bits (RFC 4380's example: 192.0.2.45).
    ['2001:0:4136:e378:8000:63bf:3fff:fdd2', '192.0.2.45'],
  ] as const)
    assert.equal(clientKey(ip), v4, ip);
  assert.deepEqual(inboundKeys('/ip6/64:ff9b::102:304/tcp/1'), inboundKeys('/ip4/1.2.3.4/tcp/2'));
  assert.deepEqual(inboundKeys('/ip6/64:ff9b::102:399/tcp/1')?.subnet, '1.2.3.0/24');
  assert.notEqual(clientKey('64:ff9b::1.2.3.4'), clientKey('64:ff9b::1.2.3.5'));
  assert.notEqual(clientKey('2002:102:304::1'), clientKey('2002:102:305::1'));
  // Only those prefixes: a neighbour of NAT64's /96 is an IPv6 /64 as any other.
  assert.equal(clientKey('64:ff9b:1::1.2.3.4'), '64:ff9b:1:0::/64');
  // Exact matches (bootstrap exemptions, unlimitedAddresses) never translate.
  assert.equal(exactAddressOf('/ip6/2002:102:304::1/tcp/1'), '2002:102:304::1');
  assert.equal(unlimitedEntry('64:ff9b::1.2.3.4'), '64:ff9b::102:304');
});

test('public addresses: none of the special-purpose ranges inside IPv6 global unicast, nor a 6to4 address of a private IPv4 host', () => {
  for (const ip of [
    '3fff::1', // documentation (RFC 9637)
    '3fff:fff::1',
    '2001:2::1', // benchmarking
    '2001:10::1', // ORCHID
    '2001:2f::1', // ORCHIDv2
    '2002:a00:1::1', // 6to4 of 10.0.0.1
    '2002:7f00:1::1', // 6to4 of 127.0.0.1
    '2002:a9fe:a9fe::1', // 6to4 of 169.254.169.254
    '192.88.99.1', // 6to4 relay anycast
    '64:ff9b::808:808', // NAT64: a local translator's
  ])
    assert.equal(isPublicIp(ip), false, ip);
  for (const ip of ['3fff:1000::1', '2001:2:1::1', '2001:30::1', '2002:808:808::1', '2001:4860::8888'])
    assert.equal(isPublicIp(ip), true, ip);
});

test('a node announces none of its zoned (link-local) addresses, and a name or a named or public address as it is', () => {
  const named = namedListenAddresses(['/ip4/10.0.0.5/tcp/1', '/ip4/0.0.0.0/tcp/1']);
  // `/ip6zone/eth0/ip6/fe80::1` matched no `/ip4|/ip6` address and passed as if a name.
  assert.equal(announceable('/ip6zone/eth0/ip6/fe80::1/tcp/1', named), false);
  assert.equal(
    announceable('/ip4/10.0.0.5/tcp/1/p2p/12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK', named),
    true,
  );
  assert.equal(announceable('/ip4/10.0.0.6/tcp/1', named), false);
  assert.equal(announceable('/ip4/0.0.0.0/tcp/1', named), false);
  assert.equal(announceable('/ip4/8.8.8.8/tcp/1', named), true);
  assert.equal(announceable('/dns4/node.example.com/tcp/1', named), true);
  assert.equal(storablePeerAddress('/ip6zone/eth0/ip6/fe80::1/tcp/1'), false);
  assert.equal(storablePeerAddress('/ip6/2002:a00:1::1/tcp/1'), false, '6to4 of 10.0.0.1');
});

test('an IPv6 wildcard listen (--p2p-host ::) announces what an IPv4 one does: public addresses only; a named IPv6 address as named', () => {
  const wildcard = namedListenAddresses(['/ip4/0.0.0.0/tcp/1', '/ip6/::/tcp/1']);
  assert.equal(wildcard.size, 0, 'a wildcard names no address');
  for (const local of ['::1', 'fd00::2', 'fe80::fc:ff:fe00:1', '2001:db8::5', '::'])
    assert.equal(announceable(`/ip6/${local}/tcp/1`, wildcard), false, local);
  assert.equal(announceable('/ip6/2a01:4f8:1:2::1/tcp/1', wildcard), true);
  const named = namedListenAddresses(['/ip6/::1/tcp/0', '/ip6/fd00::2/tcp/0']);
  assert.equal(announceable('/ip6/::1/tcp/40000', named), true, 'the loopback named: a local testnet');
  assert.equal(announceable('/ip6/0:0:0:0:0:0:0:1/tcp/40000', named), true, 'in any spelling');
  assert.equal(announceable('/ip6/fd00::2/tcp/40000', named), true);
  assert.equal(announceable('/ip6/fd00::3/tcp/40000', named), false);
});
