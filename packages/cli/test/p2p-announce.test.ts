import assert from 'node:assert/strict';
import { test } from 'node:test';
import { announceList } from '../src/commands/start.js';

test('--p2p-announce takes comma-separated /ip4|/ip6|/dns multiaddrs with a TCP port, and refuses anything else with BAD_ANNOUNCE', () => {
  assert.deepEqual(announceList(undefined), []);
  assert.deepEqual(announceList(' /ip4/203.0.113.5/tcp/26656 , /dns4/node.example.com/tcp/26656,'), [
    '/ip4/203.0.113.5/tcp/26656',
    '/dns4/node.example.com/tcp/26656',
  ]);
  for (const bad of ['203.0.113.5:26656', '/ip4/203.0.113.5', '/ip4/203.0.113.5/tcp/26656/p2p/12D3KooW'])
    assert.throws(
      () => announceList(bad),
      (err: Error & { code?: string }) => err.code === 'BAD_ANNOUNCE',
      bad,
    );
});
