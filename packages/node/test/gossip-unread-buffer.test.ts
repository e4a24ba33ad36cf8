// End to end, over real TCP connections between real libp2p nodes: a peer in the gossip mesh that
// stops reading its TCP socket. Gossipsub writes each message to a peer's outbound stream with no
// backpressure and no bound, so its server kept every message gossiped after that for it, in that
// stream's write buffer, without end (review of p2pbound: the block-answer gate bounds only block
// answers; 40 MiB of proposals published here, all but what the kernel took still held). A
// connection holding more than `maxConnectionWriteBytes` for its peer is now closed, what it held
// with it; a peer that reads stays connected. No assertion on how long anything took.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { Connection } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import type { Libp2pNetwork } from '../src/p2p/libp2p.js';
import { connectionWriteBytes } from '../src/p2p/write-gate.js';
import { serveNetworks } from './serve-networks.js';

const MiB = 1024 * 1024;
const LIMIT = 6 * MiB;
const TOTAL = 8 * MiB;
const networks = serveNetworks({ dirPrefix: 'unc-gossip-unread-', firstSeed: 230 });
after(() => networks.close());

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`never: ${what}`);
    await pause(25);
  }
}

function connectionTo(from: Libp2pNetwork, to: Libp2pNetwork): Connection | undefined {
  return from.libp2p.getConnections(peerIdFromString(to.peerId))[0];
}

test('a mesh peer that stops reading its socket has its connection closed past the bound, not every gossiped message kept for it', async () => {
  const chain = await networks.chain();
  const none = async () => [];
  let closed = 0;
  const server = await networks.net(chain, none, {
    maxConnectionWriteBytes: LIMIT,
    writeWatchIntervalMs: 100,
    metrics: {
      unreadConnectionClosed: (bound) => {
        assert.equal(bound, 'connection');
        closed++;
      },
    },
  });
  const reader = await networks.net(chain, none);
  const sleeper = await networks.net(chain, none);
  for (const n of [reader, sleeper]) await n.dial(server.listenAddrs[0]!);
  await waitFor(
    () => [reader, sleeper].every((n) => server.meshPeers('proposal').includes(n.peerId)),
    'both peers in the server proposal mesh',
  );
  const toServer = connectionTo(sleeper, server);
  assert.ok(toServer, 'connected');
  // The sleeper's TCP socket stops reading (a process stopped, or one that means it).
  (toServer as unknown as { maConn: { socket: { pause(): void } } }).maConn.socket.pause();
  const toSleeper = connectionTo(server, sleeper)!;
  const toReader = connectionTo(server, reader)!;
  let published = 0;
  let peak = 0;
  // Distinct 1 MiB proposals (no validity checked: the peers judge them 'ignore'), one at a time,
  // until the server gave up on the sleeper's connection or 40 MiB went out.
  while (connectionTo(server, sleeper) && published < 40) {
    const data = new Uint8Array(MiB).fill(published + 1);
    await server.publish('proposal', data);
    published++;
    peak = Math.max(peak, connectionWriteBytes(toSleeper));
    // The reader keeps up: the next one once it has taken most of this one (however slow the machine).
    await waitFor(() => connectionWriteBytes(toReader) < MiB / 2, 'the reader reading');
    await pause(20);
  }
  assert.ok(
    connectionTo(server, sleeper) === undefined,
    `the sleeper's connection still open after ${published} MiB published, ${(connectionWriteBytes(toSleeper) / MiB).toFixed(1)} MiB held for it (peak ${(peak / MiB).toFixed(1)} MiB)`,
  );
  assert.equal(toSleeper.status === 'open', false, 'closed');
  assert.equal(connectionWriteBytes(toSleeper), 0, 'nothing held for it once closed');
  assert.equal(closed, 1, 'counted once (unc_p2p_unread_connections_closed_total)');
  // The reader kept up: connected, not closed with it.
  assert.ok(connectionTo(server, reader)?.status === 'open', 'the reader stays connected');
});

test('peers each under their own bound, past the bound on all connections together: the one holding the most is closed, not the newest nor a reader', async () => {
  // Each connection stays under its own bound (here well over what the test sends), so before the
  // total bound a node with its 200 connections could be made to hold 200 × 32 MiB.
  const chain = await networks.chain();
  const none = async () => [];
  const closed: string[] = [];
  const server = await networks.net(chain, none, {
    maxConnectionWriteBytes: 1024 * MiB,
    maxTotalWriteBytes: TOTAL,
    writeWatchIntervalMs: 100,
    metrics: { unreadConnectionClosed: (bound) => closed.push(bound) },
  });
  const reader = await networks.net(chain, none);
  const first = await networks.net(chain, none);
  const newest = await networks.net(chain, none);
  for (const n of [reader, first, newest]) await n.dial(server.listenAddrs[0]!);
  await waitFor(
    () => [reader, first, newest].every((n) => server.meshPeers('proposal').includes(n.peerId)),
    'all three peers in the server proposal mesh',
  );
  const pauseSocket = (n: Libp2pNetwork) =>
    (connectionTo(n, server) as unknown as { maConn: { socket: { pause(): void } } }).maConn.socket.pause();
  const toReader = connectionTo(server, reader)!;
  const toFirst = connectionTo(server, first)!;
  const toNewest = connectionTo(server, newest)!;
  // The first stops reading at once, the newest connection only after 3 MiB: the first holds the most.
  pauseSocket(first);
  let published = 0;
  while (closed.length === 0 && published < 40) {
    if (published === 3) pauseSocket(newest);
    await server.publish('proposal', new Uint8Array(MiB).fill(published + 1));
    published++;
    await waitFor(() => connectionWriteBytes(toReader) < MiB / 2, 'the reader reading');
    await pause(20);
    // A watch or two to look at what is held now, before the next one adds to it.
    if (connectionWriteBytes(toFirst) + connectionWriteBytes(toNewest) > TOTAL) await pause(250);
  }
  assert.deepEqual(
    closed,
    ['total'],
    `one connection closed for the total bound after ${published} MiB published (the first held ${(connectionWriteBytes(toFirst) / MiB).toFixed(1)} MiB, the newest ${(connectionWriteBytes(toNewest) / MiB).toFixed(1)} MiB)`,
  );
  assert.equal(connectionTo(server, first), undefined, 'the connection holding the most is closed');
  assert.equal(toFirst.status === 'open', false);
  assert.equal(connectionWriteBytes(toFirst), 0, 'nothing held for it once closed');
  assert.equal(toNewest.status, 'open', 'the newest, holding less, stays');
  assert.equal(toReader.status, 'open', 'the reader stays');
});
