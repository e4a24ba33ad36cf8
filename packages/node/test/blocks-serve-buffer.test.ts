// End to end, over a real TCP connection between two real libp2p nodes: a peer that opens
// `/blocks/1` streams, grants each a huge yamux window (a muxer may grant up to 4 GiB: nothing on
// the sending side bounds what it is granted) and then stops reading its TCP socket. Before the
// answers were written in copied pieces gated on the connection's own write buffers
// (p2p/write-gate.ts), each stream's block (up to 9 MiB) went whole into the connection's buffers
// at once (what the kernel did not take: node's socket buffer, the TCP and Noise layers' write
// buffers), and stayed there, outside any read slot, after its answer ended at the request
// deadline, as long as the connection lived: 12.3 MiB of the two 8 MiB blocks here. Pieces handed
// as views of the block (not copies) kept whole blocks alive in those buffers (16 MiB). Measured:
// the server's own (user-space) buffers for that connection, while the answers wait and after they
// end. Polling only: no assertion on how long anything took.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { Connection, Stream } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { encode } from '@unc/core';
import * as lp from 'it-length-prefixed';
import { blockRangeCodec } from '../src/p2p/frames.js';
import { blocksProtocol } from '../src/p2p/libp2p.js';
import type { NetworkHandlers } from '../src/p2p/types.js';
import { connectionBacklog } from '../src/p2p/write-gate.js';
import { serveNetworks } from './serve-networks.js';

const MiB = 1024 * 1024;
/**
 * Blocks of 8 MiB (under the 9 MiB frame bound), two streams: 16 MiB asked for, far more than the
 * kernel takes of a connection whose peer does not read (its send buffer, 4 MiB at most by
 * default on Linux, and the peer's receive buffer, which grows only as the peer reads).
 */
const BLOCK = 8 * MiB;
const networks = serveNetworks({ dirPrefix: 'unc-blocks-buffer-', firstSeed: 200 });
after(() => networks.close());

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The yamux stream's own fields a misbehaving peer's muxer drives. */
interface YamuxInternals {
  streamId: number;
  sendFrame(header: { type: number; flag: number; streamID: number; length: number }): boolean;
}

/** A libp2p message stream's write buffer: a list of views (`Uint8ArrayList`). */
interface Buffered {
  writeBuffer: { bufs: Uint8Array[] };
}

/** libp2p's connection internals: the TCP layer (with its socket), the muxer over Noise. */
interface ConnectionInternals {
  maConn: Buffered & { socket: { writableLength: number; pause(): void } };
  muxer: { maConn: Buffered; streams: Stream[] };
}

/**
 * What the server holds in user space for one connection: its socket's buffer, and the memory the
 * TCP, Noise and stream write buffers keep alive. Those hold views, and a view of a few bytes keeps
 * its whole buffer (a block, if it is a view of one) in memory: each buffer is counted whole, once.
 */
function userSpaceBytes(connection: Connection): number {
  const c = connection as unknown as ConnectionInternals;
  const held = new Set<ArrayBufferLike>();
  for (const layer of [c.maConn, c.muxer.maConn, ...(c.muxer.streams as unknown as Buffered[])])
    for (const view of layer.writeBuffer.bufs) held.add(view.buffer);
  let bytes = c.maConn.socket.writableLength;
  for (const b of held) bytes += b.byteLength;
  return bytes;
}

test('a peer granting a huge window and never reading its TCP socket makes its server buffer a bounded amount per connection', async () => {
  const chain = await networks.chain();
  let read = 0;
  const blocks: NetworkHandlers['blocks'] = async (from, to, take) => {
    for (let h = from; h <= to; h++) {
      if (take?.room && !(await take.room())) break;
      const raw = new Uint8Array(BLOCK).fill(Number(h % 251n));
      read++;
      if (take && !(await take(raw.byteLength, raw))) break;
    }
    return [];
  };
  // A short deadline, so that the answers end within the test (they wait for a drain that never comes).
  const server = await networks.net(chain, blocks, { requestTimeoutMs: 2_000 });
  const peer = await networks.net(chain, blocks);
  await peer.dial(server.listenAddrs[0]!);
  const serverPeer = peerIdFromString(server.peerId);
  // Two streams, negotiated while the peer still reads (a new stream's negotiation waits for it).
  const streams: Stream[] = [];
  for (let i = 0; i < 2; i++)
    streams.push(await peer.libp2p.dialProtocol(serverPeer, blocksProtocol(chain.genesis.chainId)));
  const [toServer] = peer.libp2p.getConnections(serverPeer);
  const [toPeer] = server.libp2p.getConnections(peerIdFromString(peer.peerId));
  assert.ok(toServer && toPeer, 'connected');
  // What the gate reads: found on a real connection (a libp2p upgrade that moves it fails here).
  assert.ok(connectionBacklog(toPeer), 'the connection write buffers are visible');
  // The peer's TCP socket stops reading; its muxer grants each stream 2 GiB of window, then asks.
  (toServer as unknown as ConnectionInternals).maConn.socket.pause();
  for (const stream of streams) {
    const y = stream as unknown as YamuxInternals;
    y.sendFrame({ type: 1, flag: 0, streamID: y.streamId, length: 2 ** 31 });
    stream.send(lp.encode.single(encode(blockRangeCodec, { from: 1n, to: 4n })));
  }
  const blockStreams = () =>
    toPeer.streams.filter((s) => s.protocol === blocksProtocol(chain.genesis.chainId));
  let peak = 0;
  const end = Date.now() + 60_000;
  // Until both answers have read a block and ended (aborted at their deadline), and a little after.
  while (read < 2 || blockStreams().length > 0) {
    if (Date.now() > end) assert.fail(`answers never ended: ${read} blocks read`);
    peak = Math.max(peak, userSpaceBytes(toPeer));
    await pause(20);
  }
  for (let i = 0; i < 10; i++) {
    peak = Math.max(peak, userSpaceBytes(toPeer));
    await pause(20);
  }
  const left = userSpaceBytes(toPeer);
  // Before: 12.3 MiB at the peak, as much after (pieces as views: 16 MiB at the peak).
  assert.ok(peak <= MiB, `${(peak / MiB).toFixed(2)} MiB buffered at the peak`);
  assert.ok(left <= MiB, `${(left / MiB).toFixed(2)} MiB still buffered after the answers ended`);
  for (const s of streams) s.abort(new Error('done'));
});
