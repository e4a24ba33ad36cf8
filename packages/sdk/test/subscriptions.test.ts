/**
 * The client's subscriptions against a real dev node, through a TCP proxy this test controls: all
 * subscriptions share one WebSocket, a dropped socket is reopened and block events continue with
 * no height skipped or repeated, and where WebSocket upgrades are refused the client polls.
 */
import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { buildTransaction, encodeSigned, signedHash, transferAction, UncClient } from '../src/index.js';
import type { BlockJson } from '../src/views.js';
import { type DevChain, devAccount, startDevChain } from './dev-chain.js';

/** Forwards TCP to the node; counts WebSocket upgrades; can cut every socket or refuse upgrades. */
class TcpProxy {
  server: Server;
  sockets = new Set<Socket>();
  upgrades = 0;
  refuseUpgrades = false;
  url = '';
  constructor(target: URL) {
    this.server = createServer((client) => {
      const upstream = connect(Number(target.port), target.hostname);
      this.sockets.add(client);
      this.sockets.add(upstream);
      let first = true;
      client.on('data', (chunk) => {
        if (first) {
          first = false;
          if (/^upgrade:\s*websocket/im.test(chunk.toString('latin1'))) {
            if (this.refuseUpgrades) {
              client.destroy();
              upstream.destroy();
              return;
            }
            this.upgrades++;
          }
        }
        upstream.write(chunk);
      });
      upstream.on('data', (chunk) => client.write(chunk));
      const end = () => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      client.on('close', end);
      upstream.on('close', end);
      client.on('error', end);
      upstream.on('error', end);
    });
  }
  async start(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    const { port } = this.server.address() as { port: number };
    this.url = `http://127.0.0.1:${port}`;
    return this.url;
  }
  cutAll(): void {
    for (const s of this.sockets) s.destroy();
  }
  stop(): Promise<void> {
    this.cutAll();
    return new Promise((r) => this.server.close(() => r()));
  }
}

let chain: DevChain;
before(async () => {
  chain = await startDevChain(150);
});
after(async () => {
  await chain?.stop();
});

const until = async (cond: () => boolean, ms: number, what: string) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
};

function assertConsecutive(heights: number[]): void {
  for (let i = 1; i < heights.length; i++)
    assert.equal(
      heights[i],
      heights[i - 1]! + 1,
      `heights ${heights.slice(Math.max(0, i - 3), i + 2).join(',')}`,
    );
}

test('every subscription shares one WebSocket; a transfer is seen on it', async () => {
  const proxy = new TcpProxy(new URL(chain.url));
  const client = new UncClient(await proxy.start());
  try {
    const a: number[] = [];
    const b: number[] = [];
    await client.subscribe<BlockJson>('newBlocks', [], (blk) => a.push(blk.height));
    await client.subscribe<BlockJson>('newBlocks', [], (blk) => b.push(blk.height));
    const from = devAccount(7);
    const stx = await buildTransaction(client, from.seed, [transferAction(devAccount(8).address, 1n)]);
    await client.sendRawTransaction(encodeSigned(stx));
    assert.equal((await client.waitForTransaction(signedHash(stx), 15_000)).status, 'included');
    await until(() => a.length >= 3 && b.length >= 3, 60_000, 'blocks');
    assert.equal(proxy.upgrades, 1, 'three subscriptions, one socket');
    assert.equal(client.subscriptions.socketsOpened, 1);
  } finally {
    client.close();
    await proxy.stop();
  }
});

test('a dropped socket is reopened; block events continue with no height skipped or repeated', async () => {
  const proxy = new TcpProxy(new URL(chain.url));
  const client = new UncClient(await proxy.start());
  try {
    const heights: number[] = [];
    await client.subscribe<BlockJson>('newBlocks', [], (blk) => heights.push(blk.height));
    await until(() => heights.length >= 3, 60_000, 'first blocks');
    proxy.cutAll();
    const cutAt = heights.at(-1)!;
    // Blocks come every 150 ms: several are committed while the socket is down.
    await until(() => heights.at(-1)! >= cutAt + 8, 60_000, 'blocks after the reconnect');
    assert.ok(proxy.upgrades >= 2, 'a second WebSocket was opened');
    assertConsecutive(heights);
  } finally {
    client.close();
    await proxy.stop();
  }
});

test('where WebSocket upgrades are refused, subscriptions are polled over HTTP', async () => {
  const proxy = new TcpProxy(new URL(chain.url));
  proxy.refuseUpgrades = true;
  const client = new UncClient(await proxy.start(), {
    subscriptions: { maxSocketFailures: 2, pollIntervalMs: 100 },
  });
  try {
    const heights: number[] = [];
    await client.subscribe<BlockJson>('newBlocks', [], (blk) => heights.push(blk.height));
    assert.equal(client.subscriptions.isPolling, true);
    const from = devAccount(7);
    const stx = await buildTransaction(client, from.seed, [transferAction(devAccount(8).address, 2n)]);
    await client.sendRawTransaction(encodeSigned(stx));
    const inclusion = await client.waitForTransaction(signedHash(stx), 15_000);
    assert.equal(inclusion.status, 'included');
    await until(() => heights.length >= 5, 60_000, 'polled blocks');
    assertConsecutive(heights);
    assert.equal(proxy.upgrades, 0);
  } finally {
    client.close();
    await proxy.stop();
  }
});
