import assert from 'node:assert/strict';
import { test } from 'node:test';
import { announceList, p2pListenAddresses } from '../src/commands/start.js';

test('--p2p-announce takes comma-separated /ip4|/ip6|/dns multiaddrs with a TCP port, and refuses anything else with BAD_ANNOUNCE', () => {
  assert.deepEqual(announceList(undefined), []);
  assert.deepEqual(announceList(' /ip4/203.0.113.5/tcp/26656 , /dns4/node.example.com/tcp/26656,'), [
    '/ip4/203.0.113.5/tcp/26656',
    '/dns4/node.example.com/tcp/26656',
  ]);
  assert.deepEqual(announceList('/ip6/2001:db8::5/tcp/1'), ['/ip6/2001:db8::5/tcp/1']);
  for (const bad of [
    '203.0.113.5:26656',
    '/ip4/203.0.113.5',
    '/ip4/203.0.113.5/tcp/26656/p2p/12D3KooW',
    // Passed the check, then stopped the start with libp2p's bare TypeError.
    '/ip4/999.1.1.1/tcp/26656',
    '/ip4/2001:db8::5/tcp/26656',
    '/ip6/203.0.113.5/tcp/26656',
    '/ip4/203.0.113.5/tcp/65536',
    '/ip4/203.0.113.5/tcp/0',
  ])
    assert.throws(
      () => announceList(bad),
      (err: Error & { code?: string }) => err.code === 'BAD_ANNOUNCE',
      bad,
    );
});

test('--p2p-host takes IPv4 and IPv6 addresses, each as its own family, once each (dual stack: given twice)', () => {
  assert.deepEqual(p2pListenAddresses(undefined, 26656), ['/ip4/127.0.0.1/tcp/26656']);
  assert.deepEqual(p2pListenAddresses([], 0), ['/ip4/127.0.0.1/tcp/0']);
  // Written /ip4/::/tcp/… before: libp2p refused it and the node could not start.
  assert.deepEqual(p2pListenAddresses(['::'], 26656), ['/ip6/::/tcp/26656']);
  assert.deepEqual(p2pListenAddresses(['[::1]'], 0), ['/ip6/::1/tcp/0']);
  assert.deepEqual(p2pListenAddresses(['0.0.0.0', '::'], 26656), [
    '/ip4/0.0.0.0/tcp/26656',
    '/ip6/::/tcp/26656',
  ]);
  assert.deepEqual(p2pListenAddresses(['2001:db8::5'], 1), ['/ip6/2001:db8::5/tcp/1']);
  for (const bad of [['node.example.com'], ['999.1.1.1'], ['fe80::1%eth0'], [''], ['::', '[::]']])
    assert.throws(
      () => p2pListenAddresses(bad, 1),
      (err: Error & { code?: string }) => err.code === 'BAD_ARGUMENT',
      bad.join(' '),
    );
});

test('--p2p-host: an IPv4-mapped IPv6 address, and the same address spelled twice, are refused before libp2p binds', () => {
  const badArgument = (err: Error & { code?: string }) => err.code === 'BAD_ARGUMENT';
  // libp2p listens on /ip6/ IPv6-only, where a mapped address cannot be bound (EINVAL at start).
  for (const mapped of ['::ffff:1.2.3.4', '[::ffff:0.0.0.0]', '::FFFF:102:304', '0:0:0:0:0:ffff:7f00:1'])
    assert.throws(
      () => p2pListenAddresses([mapped], 1),
      (err: Error & { code?: string }) => badArgument(err) && /IPv4/.test(err.message),
      mapped,
    );
  // One address in two spellings bound the port twice (EADDRINUSE at start).
  for (const twice of [
    ['::', '0::0'],
    ['::1', '0:0:0:0:0:0:0:1'],
    ['2001:DB8::5', '2001:db8::5'],
  ])
    assert.throws(() => p2pListenAddresses(twice, 1), badArgument, twice.join(' '));
  assert.deepEqual(
    p2pListenAddresses(['2001:DB8:0::5'], 1),
    ['/ip6/2001:db8::5/tcp/1'],
    'written canonically',
  );
});
