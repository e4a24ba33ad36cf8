/**
 * The p2p limits (bans, score recovery, the `/txs/1` serve budget) are timed by a monotonic clock,
 * never the wall clock: a step of `Date.now` (NTP, an operator, a VM restore) must neither lift a
 * ban, forgive or age a score, nor freeze or refill a budget. Each test steps `Date.now` by an
 * hour, back or forward, as such a correction would.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { silentLogger } from '../src/log.js';
import {
  type Libp2pNetwork,
  type NetworkOptions,
  peerIdFromNodeKey,
  startNetwork,
} from '../src/p2p/libp2p.js';
import type { ChainStatus, NetworkHandlers } from '../src/p2p/types.js';

const CHAIN = 'unc-p2p-clock-test-1';
const GENESIS = new Uint8Array(32).fill(0x33);
const HOUR = 3_600_000;

const running: Libp2pNetwork[] = [];
const realNow = Date.now;
after(async () => {
  Date.now = realNow;
  await Promise.all(running.map((n) => n.stop()));
});

/** Runs `fn` with the wall clock stepped by `ms` (as an NTP correction would), then restores it. */
async function stepped<T>(ms: number, fn: () => T | Promise<T>): Promise<T> {
  Date.now = () => realNow() + ms;
  try {
    return await fn();
  } finally {
    Date.now = realNow;
  }
}

function status(): ChainStatus {
  return { chainId: CHAIN, genesisHash: GENESIS, height: 0n, headHash: new Uint8Array(32) };
}

async function network(
  n: number,
  opts: Partial<Omit<NetworkOptions, 'handlers'>> & { handlers?: Partial<NetworkHandlers> } = {},
): Promise<Libp2pNetwork> {
  const { handlers, ...rest } = opts;
  const net = await startNetwork({
    listen: ['/ip4/127.0.0.1/tcp/0'],
    nodeKey: new Uint8Array(32).fill(n),
    chainId: CHAIN,
    genesisHash: GENESIS,
    requestTimeoutMs: 3000,
    logger: silentLogger,
    ...rest,
    handlers: { onGossip: () => 'accept', status, blocks: async () => [], ...handlers },
  });
  running.push(net);
  return net;
}

async function waitFor(cond: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

test('a ban holds for its whole length whichever way the wall clock steps', async () => {
  const net = await network(201);
  const peer = await peerIdFromNodeKey(new Uint8Array(32).fill(202));
  // Three reports (20 each) reach the threshold of -50.
  for (let i = 0; i < 3; i++) net.penalize(peer, 'test');
  assert.equal(net.isBanned(peer), true);
  assert.equal(await stepped(2 * HOUR, () => net.isBanned(peer)), true, 'a step forward lifts no ban');
  assert.equal(await stepped(-2 * HOUR, () => net.isBanned(peer)), true, 'nor does a step back');
  assert.equal(net.isBanned(peer), true);
  await net.stop();
});

test('scores recover by elapsed time, not by a step of the wall clock', async () => {
  const net = await network(203, { scoring: { recoveryPerSecond: 0.1 } });
  const forward = await peerIdFromNodeKey(new Uint8Array(32).fill(204));
  const back = await peerIdFromNodeKey(new Uint8Array(32).fill(205));
  // Forward: -40, then an hour's step would have forgiven it all, and -20 more banned no one.
  net.penalize(forward, 'test');
  net.penalize(forward, 'test');
  await stepped(HOUR, () => net.penalize(forward, 'test'));
  assert.equal(net.isBanned(forward), true, 'the step forgave nothing');
  // Back: -20, then an hour's step back would have aged it by 360 points, banning at the next -20.
  net.penalize(back, 'test');
  await stepped(-HOUR, () => net.penalize(back, 'test'));
  assert.equal(net.isBanned(back), false, 'the step back charged nothing');
  await net.stop();
});

const tx = new Uint8Array(1000).fill(5);
const block = new Uint8Array(32).fill(7);
const ids = (n: number) => Array.from({ length: n }, (_, i) => new Uint8Array(32).fill(i + 1));
const txHandlers = { txs: (_hash: Uint8Array, asked: Uint8Array[]) => asked.map(() => tx) };

/** A server serving 2,000 bytes of transactions per `intervalMs`, and a client connected to it. */
async function servedPair(seed: number, intervalMs: number): Promise<[Libp2pNetwork, Libp2pNetwork]> {
  const server = await network(seed, {
    txServe: { intervalMs, maxBytesPerPeer: 2_000 },
    handlers: txHandlers,
  });
  const client = await network(seed + 1);
  await client.dial(server.listenAddrs[0]!);
  await waitFor(() => client.peers().some((p) => p.id === server.peerId && p.status !== null), 'handshake');
  return [server, client];
}

test('the /txs/1 budget is not refilled by a step of the wall clock forward', async () => {
  const [server, client] = await servedPair(206, HOUR / 2);
  assert.equal((await client.requestTxs(server.peerId, block, ids(2))).length, 2);
  assert.equal((await client.requestTxs(server.peerId, block, ids(2))).length, 0, 'spent');
  const refilled = await stepped(2 * HOUR, () => client.requestTxs(server.peerId, block, ids(2)));
  assert.equal(refilled.length, 0, 'a step forward refilled the budget');
  await Promise.all([server.stop(), client.stop()]);
});

test('the /txs/1 budget is not frozen by a step of the wall clock back', async () => {
  // A window of 2 s: the 'spent' request must land inside it, which a loaded CI machine did not
  // always manage in 300 ms.
  const [server, client] = await servedPair(208, 2_000);
  assert.equal((await client.requestTxs(server.peerId, block, ids(2))).length, 2);
  assert.equal((await client.requestTxs(server.peerId, block, ids(2))).length, 0, 'spent');
  // The window renews after its 2 s of elapsed time, with the wall clock an hour behind.
  const served = await stepped(-HOUR, async () => {
    await new Promise((r) => setTimeout(r, 2_100));
    return client.requestTxs(server.peerId, block, ids(2));
  });
  assert.equal(served.length, 2, 'a step back froze the budget');
  await Promise.all([server.stop(), client.stop()]);
});
