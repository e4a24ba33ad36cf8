/**
 * The explorer's node watcher where the node refuses its WebSocket (HTTP 429, as a node past
 * maxWsConnectionsPerIp answers): the page says it is polling and why, and tries the WebSocket
 * again with a doubling wait, not every few seconds. The watcher is loaded from src through Vite's
 * SSR loader; the node is a small HTTP server that refuses every upgrade, closed at the end.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { ViteDevServer } from 'vite';

const EXPLORER_DIR = fileURLToPath(new URL('../../', import.meta.url));

interface Snapshot {
  live: string;
  liveWhy?: string | null;
}
interface Watcher {
  getSnapshot: () => Snapshot;
  stop: () => void;
  now: () => number;
}
interface WatcherModule {
  NodeWatcher: new (url: string) => Watcher;
}

describe('the node watcher when the WebSocket is refused', () => {
  let vite: ViteDevServer;
  let mod: WatcherModule;
  let node: Server;
  let url = '';
  let upgrades = 0;

  before(async () => {
    const { createServer: createVite } = await import('vite');
    vite = await createVite({
      root: EXPLORER_DIR,
      configFile: `${EXPLORER_DIR}vite.config.ts`,
      logLevel: 'warn',
      appType: 'custom',
      server: { middlewareMode: true, hmr: false },
      optimizeDeps: { noDiscovery: true, include: [] },
    });
    mod = (await vite.ssrLoadModule('/src/node/watcher.ts')) as WatcherModule;
    node = createServer((_req, res) => res.writeHead(503).end());
    node.on('upgrade', (_req, socket) => {
      upgrades++;
      socket.end(
        'HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n',
      );
    });
    await new Promise<void>((r) => node.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(node.address() as AddressInfo).port}`;
  });

  after(async () => {
    await vite?.close();
    if (node) await new Promise<void>((r) => node.close(() => r()));
  });

  test('says it polls and why, and tries the WebSocket again after 4 s, 8 s, 16 s… (to 60 s), not every 4 s', async () => {
    const watcher = new mod.NodeWatcher(url);
    // The probe is not started: the node's health is not what this is about. Its time is ours.
    let clock = 0;
    watcher.now = () => clock;
    const internals = watcher as unknown as {
      snap: Snapshot & { conn: string };
      stopped: boolean;
      sub: unknown;
      trySubscribe: () => Promise<void>;
    };
    internals.stopped = false;
    internals.snap = { ...internals.snap, conn: 'ok' };
    try {
      upgrades = 0;
      await internals.trySubscribe();
      assert.equal(internals.sub, null, 'a refused WebSocket gave a subscription');
      assert.equal(watcher.getSnapshot().live, 'poll', 'the page says "live" while it polls');
      assert.match(watcher.getSnapshot().liveWhy ?? '', /refused the WebSocket/);
      assert.match(watcher.getSnapshot().liveWhy ?? '', /next try in 4 s/);
      // Ten minutes of probes a second apart.
      for (clock = 1_000; clock <= 600_000; clock += 1_000) await internals.trySubscribe();
      // 0, 4, 12, 28, 60, 120 s, then every 60 s: 15 tries; every 4 s would be 150.
      assert.ok(upgrades <= 16, `${upgrades} WebSocket tries in ten minutes`);
      assert.ok(upgrades >= 10, `${upgrades}: the WebSocket is no longer tried`);
    } finally {
      watcher.stop();
    }
  });

  test('tabs refused together do not come back together: each adds its own share of the wait', async () => {
    let clock = 0;
    const tries: number[][] = [];
    for (const jitter of [0, 0.45]) {
      const watcher = new mod.NodeWatcher(url);
      watcher.now = () => clock;
      const internals = watcher as unknown as {
        snap: Snapshot & { conn: string };
        stopped: boolean;
        subscribeJitter: number;
        trySubscribe: () => Promise<void>;
      };
      internals.stopped = false;
      internals.subscribeJitter = jitter;
      internals.snap = { ...internals.snap, conn: 'ok' };
      const at: number[] = [];
      try {
        for (clock = 0; clock <= 20_000; clock += 200) {
          const before = upgrades;
          await internals.trySubscribe();
          if (upgrades > before) at.push(clock);
        }
        // Whatever the share, never sooner than the doubling wait says ("next try in 4 s").
        assert.match(watcher.getSnapshot().liveWhy ?? '', /next try in \d+ s or later/);
      } finally {
        watcher.stop();
      }
      tries.push(at);
    }
    assert.deepEqual(tries[0], [0, 4_000, 12_000]);
    assert.deepEqual(tries[1], [0, 5_800, 17_400]);
  });
});
