/** The per-peer and overall budget of `/txs/1` (p2p/serve-budget.ts) and the connection limits' parsing. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  connectionLimits,
  connectionManagerSettings,
  DEFAULT_CONNECTION_LIMITS,
  parseConnectionLimits,
} from '../src/p2p/connection-limits.js';
import { ServeBudget } from '../src/p2p/serve-budget.js';

test('what one peer is served per interval never exceeds its budget, and a new interval starts afresh', () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          peer: fc.constantFrom('a', 'b'),
          bytes: fc.integer({ min: 1, max: 500 }),
          dt: fc.nat(40),
        }),
      ),
      (sends) => {
        const budget = new ServeBudget({ intervalMs: 100, maxBytesPerPeer: 1_000, maxBytesInAll: 1_500 });
        let now = 0;
        const served: { peer: string; bytes: number; at: number }[] = [];
        for (const s of sends) {
          now += s.dt;
          if (budget.takeBytes(s.peer, s.bytes, now)) served.push({ peer: s.peer, bytes: s.bytes, at: now });
        }
        // Within any one peer's window, and over all peers in any 100 ms, the sums stay bounded.
        for (const x of served) {
          const sum = (p?: string) =>
            served
              .filter((y) => (p === undefined || y.peer === p) && y.at >= x.at && y.at < x.at + 100)
              .reduce((n, y) => n + y.bytes, 0);
          assert.ok(sum(x.peer) <= 2_000, 'a window straddled at most two budgets');
          assert.ok(sum() <= 3_000);
        }
      },
    ),
    { numRuns: 200 },
  );
  const budget = new ServeBudget({ intervalMs: 100, maxBytesPerPeer: 1_000, maxIdsPerPeer: 10 });
  assert.ok(budget.takeBytes('a', 1_000, 0));
  assert.ok(!budget.takeBytes('a', 1, 50));
  assert.ok(budget.takeBytes('b', 1_000, 50), 'another peer has its own budget');
  assert.ok(budget.takeBytes('a', 1_000, 100), 'the next interval');
  assert.ok(budget.takeIds('a', 10, 100));
  assert.ok(!budget.takeIds('a', 1, 150));
});

test('fresh peer ids cannot multiply the overall budget', () => {
  const budget = new ServeBudget({ intervalMs: 1_000, maxBytesPerPeer: 1_000, maxBytesInAll: 5_000 });
  let served = 0;
  for (let i = 0; i < 1_000; i++) if (budget.takeBytes(`fresh-${i}`, 1_000, 0)) served += 1_000;
  assert.equal(served, 5_000);
  assert.throws(() => new ServeBudget({ maxBytesPerPeer: 0 }), /positive integer/);
});

test('connection limits: explicit defaults, overrides checked, each passed to the connection manager', () => {
  assert.deepEqual(connectionLimits(), DEFAULT_CONNECTION_LIMITS);
  assert.deepEqual(connectionManagerSettings(connectionLimits({ maxConnections: 7 })), {
    maxConnections: 7,
    maxIncomingPendingConnections: DEFAULT_CONNECTION_LIMITS.maxIncomingPendingConnections,
    inboundConnectionThreshold: DEFAULT_CONNECTION_LIMITS.inboundConnectionsPerAddressPerSecond,
    inboundUpgradeTimeout: DEFAULT_CONNECTION_LIMITS.inboundUpgradeTimeoutMs,
    allow: [],
  });
  // Bootstrap peers' literal addresses are allowed past every limit (each once); names are not.
  assert.deepEqual(
    connectionManagerSettings(connectionLimits(), [
      '/ip4/10.0.0.2/tcp/26656/p2p/12D3KooWA',
      '/ip4/10.0.0.2/tcp/26657/p2p/12D3KooWB',
      '/ip6/fd00::1/tcp/26656/p2p/12D3KooWC',
      '/dns4/seed.example/tcp/26656/p2p/12D3KooWD',
    ]).allow,
    ['/ip4/10.0.0.2', '/ip6/fd00::1'],
  );
  assert.deepEqual(parseConnectionLimits(undefined), {});
  assert.deepEqual(parseConnectionLimits({ maxConnections: 50 }), { maxConnections: 50 });
  assert.throws(() => parseConnectionLimits([]), /p2p must be an object/);
  assert.throws(
    () => parseConnectionLimits({ maxConnections: -1 }),
    /p2p.maxConnections must be a positive integer/,
  );
  assert.throws(() => parseConnectionLimits({ maxConnectionz: 5 }), /not a connection limit/);
});
