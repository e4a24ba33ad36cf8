import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { peerIdFromString } from '@libp2p/peer-id';
import * as lp from 'it-length-prefixed';
import { createLogger, silentLogger } from '../src/log.js';
import {
  blocksProtocol,
  directProtocol,
  type Libp2pNetwork,
  type NetworkOptions,
  PeerRequestError,
  peerIdFromNodeKey,
  startNetwork,
  txsProtocol,
} from '../src/p2p/libp2p.js';
import type { ChainStatus, GossipTopic, NetworkHandlers, Verdict } from '../src/p2p/types.js';

const CHAIN = 'unc-p2p-test-1';
const GENESIS = new Uint8Array(32).fill(0x11);

interface Received {
  topic: GossipTopic;
  data: Uint8Array;
  from: string;
  /** Whether it came by `sendDirect` (the mempool reactor gossips on what it admits from one). */
  direct: boolean;
}

interface TestNode {
  net: Libp2pNetwork;
  received: Received[];
}

const running: Libp2pNetwork[] = [];
after(async () => {
  await Promise.all(running.map((n) => n.stop()));
});

function seed(n: number): Uint8Array {
  return new Uint8Array(32).fill(n);
}

function status(height = 0n, chainId = CHAIN, genesisHash = GENESIS): ChainStatus {
  return { chainId, genesisHash, height, headHash: new Uint8Array(32).fill(Number(height % 256n)) };
}

/** A block stand-in: sync and the network treat blocks as opaque bytes. */
function fakeBlock(height: bigint): Uint8Array {
  return new TextEncoder().encode(`block-${height}`);
}

/** Messages whose first byte is 0xff are what every test validator rejects. */
async function node(
  n: number,
  opts: Partial<Omit<NetworkOptions, 'handlers'>> & { handlers?: Partial<NetworkHandlers> } = {},
): Promise<TestNode> {
  const received: Received[] = [];
  const { handlers, ...rest } = opts;
  const net = await startNetwork({
    listen: ['/ip4/127.0.0.1/tcp/0'],
    nodeKey: seed(n),
    chainId: CHAIN,
    genesisHash: GENESIS,
    requestTimeoutMs: 3000,
    maintenanceIntervalMs: 200,
    // No recovery, so scores can be compared exactly however slow the machine is.
    scoring: { recoveryPerSecond: 0 },
    logger: process.env.UNC_TEST_P2P_LOG ? createLogger(`n${n}`, { level: 'debug' }) : silentLogger,
    ...rest,
    handlers: {
      onGossip: (topic, data, from, direct) => {
        received.push({ topic, data, from, direct: direct === true });
        return data[0] === 0xff ? 'reject' : 'accept';
      },
      status: () => status(),
      blocks: async () => [],
      ...handlers,
    },
  });
  running.push(net);
  return { net, received };
}

// Generous by default: libp2p dialing, the handshake and gossip meshes on two busy cores can take
// well over 10 s; a deadline only decides how long a genuine failure takes to report.
async function waitFor(cond: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function handshaken(a: Libp2pNetwork, b: Libp2pNetwork): boolean {
  return a.peers().some((p) => p.id === b.peerId && p.status !== null);
}

function scoreOf(a: Libp2pNetwork, peer: string): number | undefined {
  return a.peers().find((p) => p.id === peer)?.score;
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a).equals(Buffer.from(b));
}

test('the node key gives a stable peer id across restarts; a bad key is refused', async () => {
  const expected = await peerIdFromNodeKey(seed(1));
  const first = await startNetwork({
    listen: ['/ip4/127.0.0.1/tcp/0'],
    nodeKey: seed(1),
    chainId: CHAIN,
    genesisHash: GENESIS,
    handlers: { onGossip: () => 'accept', status: () => status(), blocks: async () => [] },
  });
  assert.equal(first.peerId, expected);
  assert.ok(
    first.listenAddrs.some((a) => a.startsWith('/ip4/127.0.0.1/tcp/') && a.endsWith(`/p2p/${expected}`)),
  );
  await first.stop();
  const again = await node(1);
  assert.equal(again.net.peerId, expected);
  assert.notEqual(await peerIdFromNodeKey(seed(2)), expected);
  await assert.rejects(peerIdFromNodeKey(new Uint8Array(31)), /32-byte Ed25519 seed/);
  await assert.rejects(node(3, { bootstrap: ['not-a-multiaddr'] }), /invalid bootstrap multiaddr/);
  const taken = again.net.listenAddrs[0]!.replace(/\/p2p\/.*$/, '');
  await assert.rejects(node(4, { listen: [taken] }), /could not start p2p on/);
  await again.net.stop();
});

describe('gossip over a line A–B–C', () => {
  let a: TestNode;
  let b: TestNode;
  let c: TestNode;

  test('B connects to both ends, exchanges status, and gossip from A reaches C through B', async () => {
    a = await node(11);
    c = await node(13);
    const connected: string[] = [];
    b = await node(12, { bootstrap: [a.net.listenAddrs[0]!, c.net.listenAddrs[0]!] });
    b.net.onPeerConnected((p) => connected.push(p));
    await waitFor(() => handshaken(b.net, a.net) && handshaken(b.net, c.net), 'B to handshake with A and C');
    await waitFor(() => connected.length === 2, 'onPeerConnected for both');
    assert.ok(!a.net.peers().some((p) => p.id === c.net.peerId), 'A and C must not be directly connected');
    await waitFor(
      () =>
        b.net.meshPeers('tx').length === 2 &&
        a.net.meshPeers('tx').length === 1 &&
        c.net.meshPeers('tx').length === 1,
      'the tx mesh',
    );

    await a.net.publish('tx', new Uint8Array([1, 2, 3]));
    await waitFor(() => c.received.length === 1, 'C to receive the message');
    assert.deepEqual([...c.received[0]!.data], [1, 2, 3]);
    assert.equal(c.received[0]!.topic, 'tx');
    assert.equal(c.received[0]!.from, b.net.peerId, 'C hears it from B, which forwarded it');
    assert.equal(b.received[0]!.from, a.net.peerId);
    assert.equal(a.received.length, 0, 'a node does not validate its own messages');
  });

  test('a rejected message is not forwarded and its sender is scored down', async () => {
    const before = scoreOf(b.net, a.net.peerId)!;
    await a.net.publish('vote', new Uint8Array([0xff, 1]));
    await a.net.publish('vote', new Uint8Array([7, 1]));
    await waitFor(() => c.received.some((r) => r.data[0] === 7), 'the accepted vote to reach C');
    // B's verdict on the invalid vote and its score change are waited for, not assumed after a pause.
    await waitFor(() => b.received.some((r) => r.data[0] === 0xff), 'B to see the invalid vote');
    await waitFor(() => (scoreOf(b.net, a.net.peerId) ?? 0) <= before - 10, 'B to score A down');
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(!c.received.some((r) => r.data[0] === 0xff), 'C must not get the rejected vote');
    assert.equal(scoreOf(b.net, a.net.peerId), before - 10);
  });

  test('repeated invalid messages get the sender disconnected and refused', async () => {
    for (let i = 2; i < 10; i++) await a.net.publish('tx', new Uint8Array([0xff, i]));
    await waitFor(() => b.net.isBanned(a.net.peerId), 'B to ban A');
    await waitFor(() => !b.net.peers().some((p) => p.id === a.net.peerId), 'B to disconnect A');
    assert.ok(!c.received.some((r) => r.data[0] === 0xff));
    // The gater refuses the banned peer in both directions.
    await assert.rejects(b.net.dial(a.net.listenAddrs[0]!));
    await a.net.dial(b.net.listenAddrs[0]!).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(!b.net.peers().some((p) => p.id === a.net.peerId), 'A must not get back in');
    // B still works with its honest neighbour.
    await b.net.publish('tx', new Uint8Array([9, 9]));
    await waitFor(() => c.received.some((r) => r.data[0] === 9), 'C to hear from B');
  });
});

test('an oversized message is dropped and scores its sender down; publish refuses it locally', async () => {
  const big = await node(21, { maxMessageBytes: { tx: 4096 } });
  const small = await node(22, { maxMessageBytes: { tx: 1024 }, bootstrap: [] });
  await small.net.dial(big.net.listenAddrs[0]!);
  await waitFor(() => handshaken(small.net, big.net) && handshaken(big.net, small.net), 'handshake');
  await waitFor(
    () => small.net.meshPeers('tx').length === 1 && big.net.meshPeers('tx').length === 1,
    'the tx mesh',
  );
  await assert.rejects(small.net.publish('tx', new Uint8Array(2000)), RangeError);
  const before = scoreOf(small.net, big.net.peerId)!;

  await big.net.publish('tx', new Uint8Array(2000).fill(1));
  await big.net.publish('tx', new Uint8Array([5]));
  await waitFor(() => small.received.some((r) => r.data.length === 1), 'the small message');
  await new Promise((r) => setTimeout(r, 200));
  assert.ok(
    !small.received.some((r) => r.data.length === 2000),
    'the validator never sees the oversized one',
  );
  assert.equal(scoreOf(small.net, big.net.peerId), before - 20);
  await Promise.all([big.net.stop(), small.net.stop()]);
});

test('a direct send reaches that peer alone, checked like gossip and never relayed; a malformed frame costs the sender', async () => {
  const a = await node(71);
  const b = await node(72);
  const c = await node(73);
  await b.net.dial(a.net.listenAddrs[0]!);
  await b.net.dial(c.net.listenAddrs[0]!);
  await waitFor(() => handshaken(a.net, b.net) && handshaken(b.net, c.net), 'handshakes');
  const before = scoreOf(b.net, a.net.peerId)!;
  await a.net.sendDirect(b.net.peerId, [
    { topic: 'vote', data: new Uint8Array([1, 2]) },
    { topic: 'proposal', data: new Uint8Array([3]) },
    { topic: 'vote', data: new Uint8Array([0xff]) },
  ]);
  await waitFor(() => b.received.length === 3, 'the three direct messages');
  assert.deepEqual(
    b.received.map((r) => [r.topic, [...r.data], r.from]),
    [
      ['vote', [1, 2], a.net.peerId],
      ['proposal', [3], a.net.peerId],
      ['vote', [0xff], a.net.peerId],
    ],
  );
  assert.ok(
    b.received.every((r) => r.direct),
    'the receiver is told they came direct (nothing forwards them)',
  );
  await waitFor(() => scoreOf(b.net, a.net.peerId) === before - 10, 'the rejected one to cost its sender');
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(c.received.length, 0, 'a direct message is not relayed');
  // A frame with an unknown topic index: dropped, with the rest of the stream, and scored.
  const stream = await a.net.libp2p.dialProtocol(peerIdFromString(b.net.peerId), directProtocol(CHAIN));
  stream.send(lp.encode.single(new Uint8Array([200, 1])));
  stream.send(lp.encode.single(new Uint8Array([4, 9])));
  await stream.close().catch(() => undefined);
  await waitFor(() => (scoreOf(b.net, a.net.peerId) ?? 0) < before - 10, 'the malformed frame to cost');
  assert.equal(b.received.length, 3);
  await Promise.all([a.net.stop(), b.net.stop(), c.net.stop()]);
});

test("a mempool share's direct stream still being read does not refuse a consensus message sent directly meanwhile", async () => {
  // The share's batches (mempool-reactor.ts) and consensus messages (catch-ups, re-sends, relays
  // of held proposals, bindings) both go direct: while the receiver admits a batch (signature
  // checks: it reads the next frame only after), a consensus send to it must still get through.
  let release: () => void = () => undefined;
  const admitting = new Promise<void>((r) => {
    release = r;
  });
  const got: GossipTopic[] = [];
  const b = await node(75, {
    handlers: {
      onGossip: async (topic): Promise<Verdict> => {
        got.push(topic);
        if (topic === 'tx') await admitting;
        return 'accept';
      },
    },
  });
  const a = await node(76);
  await a.net.dial(b.net.listenAddrs[0]!);
  await waitFor(() => handshaken(a.net, b.net) && handshaken(b.net, a.net), 'handshakes');
  await a.net.sendDirect(b.net.peerId, [
    { topic: 'tx', data: new Uint8Array([1]) },
    { topic: 'tx', data: new Uint8Array([2]) },
  ]);
  await waitFor(() => got.length === 1, 'the first batch being admitted');
  await a.net.sendDirect(b.net.peerId, [{ topic: 'vote', data: new Uint8Array([3]) }]);
  await waitFor(() => got.includes('vote'), 'the vote, while the batch before it is still admitted');
  release();
  await waitFor(() => got.length === 3, 'the rest of the share');
  await Promise.all([a.net.stop(), b.net.stop()]);
});

test("a peer whose process stops is reported disconnected at once; a validator's binding travels on the direct protocol", async () => {
  const a = await node(121);
  const b = await node(122);
  const gone: string[] = [];
  a.net.onPeerDisconnected((peer) => gone.push(peer));
  await b.net.dial(a.net.listenAddrs[0]!);
  await waitFor(() => handshaken(a.net, b.net), 'the handshake');
  await b.net.sendDirect(a.net.peerId, [{ topic: 'validator-peer', data: new Uint8Array([7]) }]);
  await waitFor(() => a.received.length === 1, 'the binding');
  assert.deepEqual([a.received[0]!.topic, a.received[0]!.from], ['validator-peer', b.net.peerId]);
  const stoppedAt = Date.now();
  await b.net.stop();
  // Its sockets closed: no keep-alive or request timeout needed to tell. Both of those are 10 s or
  // more (libp2p's ping every 10 s, our 10 s request deadline); 8 s still tells them apart and leaves
  // a loaded machine's scheduling delays room (2 s did not).
  await waitFor(() => gone.includes(b.net.peerId), 'the disconnection', 8_000);
  assert.ok(Date.now() - stoppedAt < 8_000);
  await a.net.stop();
});

test("a direct proposal over 4 MiB (the length-prefix library's default bound) reaches the peer", async () => {
  const a = await node(74);
  const b = await node(75);
  await b.net.dial(a.net.listenAddrs[0]!);
  await waitFor(() => handshaken(a.net, b.net), 'handshake');
  // A full block is up to 8 MiB: the catch-up sent it as a frame the sender's own encoder refused.
  const big = new Uint8Array(5 * 1024 * 1024).fill(7);
  await a.net.sendDirect(b.net.peerId, [
    { topic: 'proposal', data: big },
    { topic: 'vote', data: new Uint8Array([1]) },
  ]);
  await waitFor(() => b.received.length === 2, 'the large proposal and the vote after it');
  assert.equal(b.received[0]!.data.byteLength, big.byteLength);
  await Promise.all([a.net.stop(), b.net.stop()]);
});

test('a direct frame whose length is over every gossip limit is refused from its length prefix and costs its sender', async () => {
  const a = await node(76);
  const b = await node(77);
  await b.net.dial(a.net.listenAddrs[0]!);
  await waitFor(() => handshaken(a.net, b.net), 'handshake');
  const before = scoreOf(b.net, a.net.peerId) ?? 0;
  const stream = await a.net.libp2p.dialProtocol(peerIdFromString(b.net.peerId), directProtocol(CHAIN));
  // The varint of 64 MiB, and no data: the receiver must not wait for (or buffer) the frame.
  const length = 64 * 1024 * 1024;
  const prefix: number[] = [];
  for (let n = length; ; n = Math.floor(n / 128)) {
    if (n < 128) {
      prefix.push(n);
      break;
    }
    prefix.push((n % 128) | 0x80);
  }
  stream.send(new Uint8Array(prefix));
  await waitFor(() => (scoreOf(b.net, a.net.peerId) ?? 0) < before - 15, 'the oversized frame to cost');
  assert.equal(b.received.length, 0);
  stream.abort(new Error('done'));
  // Within the largest limit but over its own topic's (a 5 KiB vote): priced the same.
  const after = scoreOf(b.net, a.net.peerId) ?? 0;
  const votes = await a.net.libp2p.dialProtocol(peerIdFromString(b.net.peerId), directProtocol(CHAIN));
  const vote = new Uint8Array(1 + 5 * 1024);
  vote[0] = 3; // 'vote' in GOSSIP_TOPICS
  votes.send(lp.encode.single(vote));
  await votes.close().catch(() => undefined);
  await waitFor(
    () => (scoreOf(b.net, a.net.peerId) ?? 0) < after - 15,
    'the oversized vote to cost (20, not 10)',
  );
  assert.equal(b.received.length, 0);
  await Promise.all([a.net.stop(), b.net.stop()]);
});

test('a direct send writes each message by reference, not a copy per peer', async () => {
  const a = await node(78);
  const peer = (await node(79)).net;
  const written: unknown[] = [];
  const stream = {
    send: (chunk: unknown) => written.push(chunk) > 0,
    onDrain: async () => undefined,
    close: async () => undefined,
    abort: () => undefined,
  };
  // A direct send opens its stream on a connection already open (never a dial): that connection's.
  const allConnections = a.net.libp2p.getConnections.bind(a.net.libp2p);
  a.net.libp2p.getConnections = ((id?: unknown) =>
    id === undefined
      ? allConnections()
      : [{ status: 'open', newStream: async () => stream }]) as unknown as typeof a.net.libp2p.getConnections;
  const data = new Uint8Array(300_000).fill(5);
  await a.net.sendDirect(peer.peerId, [{ topic: 'proposal', data }]);
  const holds = (chunk: unknown) =>
    chunk === data || ((chunk as { bufs?: unknown[] }).bufs?.includes(data) ?? false);
  assert.ok(written.some(holds), 'the message itself is what goes to the stream');
  await Promise.all([a.net.stop(), peer.stop()]);
});

test("a block over 4 MiB (the length-prefix library's default bound) is served to a syncing peer", async () => {
  const big = new Uint8Array(5 * 1024 * 1024).fill(9);
  const server = await node(80, { handlers: { blocks: async () => [big] } });
  const client = await node(81);
  await client.net.dial(server.net.listenAddrs[0]!);
  await waitFor(() => handshaken(client.net, server.net), 'handshake');
  const blocks = await client.net.requestBlocks(server.net.peerId, 1n, 1n);
  assert.equal(blocks.length, 1);
  assert.ok(same(blocks[0]!, big));
  await Promise.all([server.net.stop(), client.net.stop()]);
});

test('gossip ids leave the unsigned sentAt out: a vote re-wrapped with another one is a duplicate, transactions are not', async () => {
  const a = await node(90);
  const b = await node(91);
  await b.net.dial(a.net.listenAddrs[0]!);
  await waitFor(() => handshaken(a.net, b.net) && handshaken(b.net, a.net), 'handshake');
  await waitFor(() => a.net.meshPeers('vote').includes(b.net.peerId), 'the vote mesh', 15_000);
  // A vote message: signed content, then the 8-byte sentAt (consensus/wire.ts).
  const signed = new Uint8Array(60).fill(0x21);
  const wrapped = (sentAt: number) => {
    const out = new Uint8Array(68);
    out.set(signed);
    new DataView(out.buffer).setBigUint64(60, BigInt(sentAt));
    return out;
  };
  await a.net.publish('vote', wrapped(1));
  await a.net.publish('vote', wrapped(2));
  await a.net.publish('vote', wrapped(3));
  // Transactions carry no sentAt: two batches that differ in their last byte are two messages.
  const tx = new Uint8Array(60).fill(0x22);
  await a.net.publish('tx', tx);
  await a.net.publish(
    'tx',
    Uint8Array.from(tx, (x, i) => (i === 59 ? 0x23 : x)),
  );
  await waitFor(() => b.received.filter((r) => r.topic === 'tx').length === 2, 'both transaction batches');
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(
    b.received.filter((r) => r.topic === 'vote').length,
    1,
    're-wrapped copies were delivered again',
  );
  await Promise.all([a.net.stop(), b.net.stop()]);
});

test('connection limits are explicit and enforced: past maxConnections an inbound connection is refused', async () => {
  const server = await node(92, { connections: { maxConnections: 1 } });
  assert.equal(server.net.connectionLimits.maxConnections, 1);
  assert.equal(server.net.connectionLimits.maxIncomingPendingConnections, 16);
  const first = await node(93);
  const second = await node(94);
  await first.net.dial(server.net.listenAddrs[0]!);
  await waitFor(() => handshaken(first.net, server.net), 'the first handshake');
  await second.net.dial(server.net.listenAddrs[0]!).catch(() => undefined);
  await new Promise((r) => setTimeout(r, 500));
  assert.ok(!handshaken(server.net, second.net), 'a connection past the limit was accepted');
  assert.equal(server.net.peers().length, 1);
  await Promise.all([server.net.stop(), first.net.stop(), second.net.stop()]);
  await assert.rejects(
    node(95, { connections: { maxConnections: 0 } }),
    /p2p.maxConnections must be a positive integer/,
  );
});

test('one address holds at most maxInboundConnectionsPerAddress inbound connections; bootstrap addresses are never locked out', async () => {
  // The per-address limit was a rate only (5 a second): one host filled all the slots in 40 s, and
  // past maxConnections every inbound connection was refused, the other validators' included.
  const server = await node(100, { connections: { maxInboundConnectionsPerAddress: 1 } });
  const first = await node(101);
  const second = await node(102);
  await first.net.dial(server.net.listenAddrs[0]!);
  await waitFor(() => handshaken(first.net, server.net), 'the first handshake');
  await second.net.dial(server.net.listenAddrs[0]!).catch(() => undefined);
  await new Promise((r) => setTimeout(r, 500));
  assert.ok(!handshaken(server.net, second.net), 'a second connection from the same address was accepted');
  await Promise.all([server.net.stop(), first.net.stop(), second.net.stop()]);

  // A validator full of connections still takes its bootstrap peers' (here: every node is on
  // 127.0.0.1, so the address of its bootstrap peer lets the others in too).
  const peer = await node(103);
  const full = await node(104, {
    connections: { maxConnections: 1, maxInboundConnectionsPerAddress: 1 },
    bootstrap: [peer.net.listenAddrs[0]!],
  });
  await waitFor(() => handshaken(full.net, peer.net), 'the bootstrap connection');
  const validator = await node(105);
  await validator.net.dial(full.net.listenAddrs[0]!).catch(() => undefined);
  await waitFor(
    () => handshaken(full.net, validator.net),
    'a bootstrap address connecting to a full node',
    5_000,
  );
  await Promise.all([full.net.stop(), peer.net.stop(), validator.net.stop()]);
});

test('a peer asking for transactions again and again is served its budget per interval, then short answers', async () => {
  const tx = new Uint8Array(1000).fill(5);
  const server = await node(96, {
    txServe: { intervalMs: 60_000, maxBytesPerPeer: 3_000, maxIdsPerPeer: 10 },
    handlers: { txs: (_hash, ids) => ids.map(() => tx) },
  });
  const client = await node(97);
  await client.net.dial(server.net.listenAddrs[0]!);
  await waitFor(() => handshaken(client.net, server.net), 'handshake');
  const block = new Uint8Array(32).fill(7);
  const ids = (n: number) => Array.from({ length: n }, (_, i) => new Uint8Array(32).fill(i + 1));
  assert.equal((await client.net.requestTxs(server.net.peerId, block, ids(2))).length, 2);
  // 3,000 bytes per interval: the third transaction is the last.
  assert.equal((await client.net.requestTxs(server.net.peerId, block, ids(2))).length, 1);
  assert.equal((await client.net.requestTxs(server.net.peerId, block, ids(2))).length, 0);
  // Ids are counted too (10 per interval): asking costs the server a lookup even when nothing is sent.
  assert.equal((await client.net.requestTxs(server.net.peerId, block, ids(5))).length, 0);
  // A short answer is not misbehaviour: nobody was scored down.
  assert.equal(scoreOf(client.net, server.net.peerId), 0);
  assert.equal(scoreOf(server.net, client.net.peerId), 0);
  await Promise.all([server.net.stop(), client.net.stop()]);
});

test("fresh peers downloading at their cap leave the share kept for relaying peers: a validator's fetch is served in full", async () => {
  const tx = new Uint8Array(1000).fill(5);
  const validator = await node(110);
  const server = await node(111, {
    txServe: {
      intervalMs: 60_000,
      maxBytesPerPeer: 3_000,
      maxBytesInAll: 5_000,
      reservedBytesForRelaying: 2_000,
    },
    handlers: {
      txs: (_hash, ids) => ids.map(() => tx),
      isRelayingPeer: (peer) => peer === validator.net.peerId,
    },
  });
  const fresh = [await node(112), await node(113)];
  for (const c of [...fresh, validator]) {
    await c.net.dial(server.net.listenAddrs[0]!);
    await waitFor(() => handshaken(c.net, server.net), 'handshake');
  }
  const block = new Uint8Array(32).fill(7);
  const ids = (n: number) => Array.from({ length: n }, (_, i) => new Uint8Array(32).fill(i + 1));
  assert.equal((await fresh[0]!.net.requestTxs(server.net.peerId, block, ids(3))).length, 3);
  // The second fresh id finds the others' share used up (3,000 of 5,000)...
  assert.equal((await fresh[1]!.net.requestTxs(server.net.peerId, block, ids(3))).length, 0);
  // ...and the validator's fetch is still answered in full from the share kept for it.
  assert.equal((await validator.net.requestTxs(server.net.peerId, block, ids(2))).length, 2);
  await Promise.all([server.net.stop(), validator.net.stop(), ...fresh.map((c) => c.net.stop())]);
});

test('a peer on another chain id or another genesis is disconnected and refused', async () => {
  const home = await node(31);
  const otherChain = await node(32, {
    chainId: 'unc-other-1',
    handlers: { status: () => status(0n, 'unc-other-1') },
  });
  const otherGenesis = await node(33, {
    genesisHash: new Uint8Array(32).fill(0x22),
    handlers: { status: () => status(0n, CHAIN, new Uint8Array(32).fill(0x22)) },
  });
  const connected: string[] = [];
  home.net.onPeerConnected((p) => connected.push(p));
  await home.net.dial(otherChain.net.listenAddrs[0]!);
  await home.net.dial(otherGenesis.net.listenAddrs[0]!).catch(() => undefined);
  // Whichever side notices first bans the other and hangs up, so either may hold the ban.
  const refused = (x: Libp2pNetwork, y: Libp2pNetwork) => x.isBanned(y.peerId) || y.isBanned(x.peerId);
  await waitFor(
    () => refused(home.net, otherChain.net) && refused(home.net, otherGenesis.net),
    'both pairs to refuse each other',
  );
  await waitFor(() => home.net.peers().length === 0, 'both to be disconnected');
  assert.deepEqual(connected, [], 'the node never hears of them');
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(home.net.peers().length, 0, 'they stay out');
  const [banner, banned] = home.net.isBanned(otherGenesis.net.peerId)
    ? [home.net, otherGenesis.net]
    : [otherGenesis.net, home.net];
  await assert.rejects(banner.dial(banned.listenAddrs[0]!));
  await Promise.all([home.net.stop(), otherChain.net.stop(), otherGenesis.net.stop()]);
});

describe('requests, scores, bootstrap and metrics', () => {
  test('answers status and ranges; a short answer is fine; limits are enforced on both sides', async () => {
    const served: [bigint, bigint][] = [];
    const server = await node(41, {
      handlers: {
        status: () => status(100n),
        blocks: async (from, to) => {
          served.push([from, to]);
          const out: Uint8Array[] = [];
          for (let h = from; h <= to && h <= 100n; h++) out.push(fakeBlock(h));
          return out;
        },
      },
    });
    const client = await node(42);
    await client.net.dial(server.net.listenAddrs[0]!);
    await waitFor(() => handshaken(client.net, server.net), 'handshake');

    const s = await client.net.requestStatus(server.net.peerId);
    assert.equal(s.height, 100n);
    assert.equal(s.chainId, CHAIN);
    assert.ok(same(s.genesisHash, GENESIS));
    assert.equal(client.net.peers().find((p) => p.id === server.net.peerId)!.status!.height, 100n);

    const blocks = await client.net.requestBlocks(server.net.peerId, 1n, 64n);
    assert.equal(blocks.length, 64);
    blocks.forEach((b, i) => assert.ok(same(b, fakeBlock(BigInt(i + 1)))));
    const tail = await client.net.requestBlocks(server.net.peerId, 95n, 110n);
    assert.deepEqual(
      tail.map((b) => new TextDecoder().decode(b)),
      [95, 96, 97, 98, 99, 100].map((h) => `block-${h}`),
    );
    await assert.rejects(client.net.requestBlocks(server.net.peerId, 1n, 65n), RangeError);
    await assert.rejects(client.net.requestBlocks(server.net.peerId, 5n, 4n), RangeError);
    assert.equal(served.length, 2, 'invalid ranges never leave the client');

    // A hand-made request that breaks the rules is refused and costs the sender.
    const stream = await client.net.libp2p.dialProtocol(
      peerIdFromString(server.net.peerId),
      blocksProtocol(CHAIN),
    );
    stream.send(lp.encode.single(new Uint8Array([1, 2, 3, 4, 5])));
    await stream.close().catch(() => undefined);
    await waitFor(
      () => (scoreOf(server.net, client.net.peerId) ?? 0) < 0,
      'the server to score the client down',
    );
    assert.equal(served.length, 2);
    await Promise.all([server.net.stop(), client.net.stop()]);
  });

  test('transactions of a proposal by wire id: answered in order, bounded, a malformed request costs the sender', async () => {
    const asked: number[] = [];
    const tx = (i: number) => new TextEncoder().encode(`tx-${i}`);
    const id = (i: number) => new Uint8Array(32).fill(i);
    const server = await node(45, {
      handlers: {
        txs: (blockHash, ids) => {
          asked.push(ids.length);
          // Holds the block whose hash is all 7s, with the transactions 1 and 3.
          if (!same(blockHash, new Uint8Array(32).fill(7))) return [];
          return ids.flatMap((x) => (x[0] === 1 || x[0] === 3 ? [tx(x[0])] : []));
        },
      },
    });
    const client = await node(46);
    await client.net.dial(server.net.listenAddrs[0]!);
    await waitFor(() => handshaken(client.net, server.net), 'handshake');
    const block = new Uint8Array(32).fill(7);
    const got = await client.net.requestTxs(server.net.peerId, block, [id(3), id(2), id(1)]);
    assert.deepEqual(
      got.map((b) => new TextDecoder().decode(b)),
      ['tx-3', 'tx-1'],
    );
    assert.deepEqual(await client.net.requestTxs(server.net.peerId, new Uint8Array(32), [id(1)]), []);
    await assert.rejects(client.net.requestTxs(server.net.peerId, block, []), RangeError);
    await assert.rejects(
      client.net.requestTxs(
        server.net.peerId,
        block,
        Array.from({ length: 4_097 }, () => id(1)),
      ),
      RangeError,
    );
    assert.deepEqual(asked, [3, 1], 'invalid requests never leave the client');
    const stream = await client.net.libp2p.dialProtocol(
      peerIdFromString(server.net.peerId),
      txsProtocol(CHAIN),
    );
    stream.send(lp.encode.single(new Uint8Array([1, 2, 3])));
    await stream.close().catch(() => undefined);
    await waitFor(
      () => (scoreOf(server.net, client.net.peerId) ?? 0) < 0,
      'the server to score the client down',
    );
    assert.deepEqual(asked, [3, 1]);
    await Promise.all([server.net.stop(), client.net.stop()]);
  });

  test('an oversized answer and a silent peer fail with clear errors and cost the peer', async () => {
    const bad = await node(51, {
      handlers: {
        status: () => status(10n),
        blocks: async (from) => (from === 1n ? [new Uint8Array(5000)] : new Promise<Uint8Array[]>(() => {})),
      },
    });
    const client = await node(52, { maxBlockFrameBytes: 1000, requestTimeoutMs: 1500 });
    await client.net.dial(bad.net.listenAddrs[0]!);
    await waitFor(() => handshaken(client.net, bad.net), 'handshake');
    const failure = (p: Promise<unknown>) =>
      p.then(
        () => assert.fail('the request should have failed'),
        (e: unknown) => {
          assert.ok(e instanceof PeerRequestError, String(e));
          return e;
        },
      );

    const start = scoreOf(client.net, bad.net.peerId)!;
    const oversized = await failure(client.net.requestBlocks(bad.net.peerId, 1n, 1n));
    assert.equal(oversized.kind, 'bad-response', oversized.message);
    assert.match(oversized.message, /over 1000 bytes/);
    assert.equal(scoreOf(client.net, bad.net.peerId), start - 25);
    const t0 = Date.now();
    const silent = await failure(client.net.requestBlocks(bad.net.peerId, 2n, 2n));
    assert.equal(silent.kind, 'timeout', silent.message);
    // The request's own 1.5 s deadline ended it (its message says which), well before the 10 s
    // default: checked by the message, with a time bound that a loaded machine cannot break.
    assert.match(silent.message, /within 1500 ms/);
    assert.ok(Date.now() - t0 < 9_000, 'the deadline holds');
    assert.equal(scoreOf(client.net, bad.net.peerId), start - 30);

    // -30 - 20 reaches the threshold of -50.
    client.net.penalize(bad.net.peerId, 'served a block that does not apply');
    assert.equal(client.net.isBanned(bad.net.peerId), true);
    await waitFor(() => client.net.peers().length === 0, 'the disconnect');
    await Promise.all([bad.net.stop(), client.net.stop()]);
  });

  test('scores recover over time, so rare faults are forgiven', async () => {
    const forgiving = await node(61, { scoring: { recoveryPerSecond: 50 } });
    const other = await node(62);
    await other.net.dial(forgiving.net.listenAddrs[0]!);
    await waitFor(() => handshaken(forgiving.net, other.net), 'handshake');
    forgiving.net.penalize(other.net.peerId, 'test');
    forgiving.net.penalize(other.net.peerId, 'test');
    const score = scoreOf(forgiving.net, other.net.peerId)!;
    assert.ok(score < -30, `score ${score}`);
    await waitFor(() => scoreOf(forgiving.net, other.net.peerId) === 0, 'the score to recover to 0');
    assert.equal(forgiving.net.isBanned(other.net.peerId), false);
    await Promise.all([forgiving.net.stop(), other.net.stop()]);
  });

  test('bootstrap peers are redialled while under the target peer count', async () => {
    const first = await node(71);
    const addr = first.net.listenAddrs[0]!;
    const dialler = await node(72, { bootstrap: [addr], targetPeers: 4 });
    await waitFor(() => handshaken(dialler.net, first.net), 'the first connection');
    await first.net.stop();
    await waitFor(() => dialler.net.peers().length === 0, 'the peer to go away');
    // The same key on the same port: the maintenance pass finds it again without being told.
    const back = await node(71, { listen: [addr.replace(/\/p2p\/.*$/, '')] });
    assert.equal(back.net.peerId, first.net.peerId);
    await waitFor(() => handshaken(dialler.net, back.net), 'the redial');
    await Promise.all([back.net.stop(), dialler.net.stop()]);
  });

  test('metrics hooks see gossip verdicts, penalties, bans and requests', async () => {
    const seen: string[] = [];
    const watched = await node(81, {
      metrics: {
        gossip: (topic, verdict) => seen.push(`gossip:${topic}:${verdict}`),
        penalty: () => seen.push('penalty'),
        ban: () => seen.push('ban'),
        request: (protocol, outcome) => seen.push(`request:${protocol}:${outcome}`),
        peerCount: (n) => seen.push(`peers:${n}`),
      },
    });
    const other = await node(82);
    await other.net.dial(watched.net.listenAddrs[0]!);
    await waitFor(
      () => handshaken(watched.net, other.net) && handshaken(other.net, watched.net),
      'handshake',
    );
    await waitFor(
      () => watched.net.meshPeers('evidence').length === 1 && other.net.meshPeers('evidence').length === 1,
      'the evidence mesh',
    );
    await other.net.publish('evidence', new Uint8Array([1]));
    await other.net.publish('evidence', new Uint8Array([0xff]));
    await waitFor(() => seen.includes('gossip:evidence:reject'), 'the reject');
    for (let i = 0; i < 5; i++) watched.net.penalize(other.net.peerId, 'test');
    await waitFor(() => seen.includes('peers:0'), 'the disconnect');
    for (const e of ['peers:1', 'request:status:ok', 'gossip:evidence:accept', 'penalty', 'ban']) {
      assert.ok(seen.includes(e), `${e} in ${seen.join(' ')}`);
    }
    await Promise.all([watched.net.stop(), other.net.stop()]);
  });
});
