// A `/blocks/1` answer's block is charged to the overall serve window (and the next block read) once
// its frame was written, not at the first 'drain' event of the stream: a peer whose muxer grants
// its window a few bytes at a time made its server queue block after block in the stream's write
// buffer (unbounded in yamux), each charged as sent, while it received a few bytes of each.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { peerIdFromString } from '@libp2p/peer-id';
import { encode } from '@unc/core';
import * as lp from 'it-length-prefixed';
import { blockRangeCodec } from '../src/p2p/frames.js';
import { blocksProtocol, type NetworkOptions } from '../src/p2p/libp2p.js';
import type { NetworkHandlers } from '../src/p2p/types.js';
import { serveNetworks } from './serve-networks.js';

const MiB = 1024 * 1024;
const networks = serveNetworks({ dirPrefix: 'unc-blocks-drain-', firstSeed: 90 });
after(() => networks.close());

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The yamux stream's own fields this test drives (a misbehaving peer's muxer). */
interface YamuxInternals {
  streamId: number;
  recvWindowCapacity: number;
  sendFrame(header: { type: number; flag: number; streamID: number; length: number }): boolean;
}

/** A server of 1 MiB blocks (read and offered as readBlockRange does), `sent()`: blocks it sent. */
async function setUp(extra: Partial<NetworkOptions> = {}) {
  const chain = await networks.chain();
  let sent = 0;
  const blocks: NetworkHandlers['blocks'] = async (from, to, take) => {
    const out: Uint8Array[] = [];
    for (let h = from; h <= to; h++) {
      if (take?.room && !(await take.room())) break;
      const raw = new Uint8Array(MiB).fill(Number(h % 251n));
      if (take && !(await take(raw.byteLength, raw))) break;
      sent++;
      // Sent by `take` (BlockTake.sends): not returned, or it would be sent again.
      if (!take?.sends) out.push(raw);
    }
    return out;
  };
  const net = (options: Partial<NetworkOptions> = {}) => networks.net(chain, blocks, options);
  const server = await net(extra);
  /** A stream of a fresh peer asking `server` for `from`…`to` that reads nothing (its muxer paused). */
  const unread = async (from: bigint, to: bigint) => {
    const client = await net();
    await client.dial(server.listenAddrs[0]!);
    const stream = await client.libp2p.dialProtocol(
      peerIdFromString(server.peerId),
      blocksProtocol(chain.genesis.chainId),
    );
    stream.pause();
    stream.send(lp.encode.single(encode(blockRangeCodec, { from, to })));
    return stream;
  };
  return { server, net, unread, sent: () => sent };
}

test('a peer granting its stream window a few bytes at a time gets no further block queued or charged', async () => {
  const { unread, sent } = await setUp();
  const stream = await unread(1n, 40n);
  await wait(300);
  const before = sent();
  // Then grants 64 bytes of window, twenty times.
  const y = stream as unknown as YamuxInternals;
  for (let i = 0; i < 20; i++) {
    y.recvWindowCapacity += 64;
    y.sendFrame({ type: 1, flag: 0, streamID: y.streamId, length: 64 });
    await wait(40);
  }
  const received = stream.readBufferLength;
  assert.ok(received < 2 * MiB, `${received} bytes received`);
  // Before: a block queued (and charged to the overall window) per window update, 20 MiB.
  assert.ok(sent() - before <= 1, `${sent() - before} more blocks sent for ${received} bytes received`);
  assert.ok(sent() <= 2, `${sent()} blocks sent in all`);
  stream.abort(new Error('done'));
});

test('blocks whose frames wait unwritten (their peers do not read) are not charged to the overall window: an honest syncer is served', async () => {
  // The overall window charged before the frame was written (as at the read, before this branch)
  // let peers that never read fill the non-relaying share (2 MiB here, a window that never renews
  // within the test) without downloading a byte: the honest request then waited the longest serve
  // wait and got nothing.
  const { server, net, unread } = await setUp({
    blockServe: { intervalMs: 3_600_000, maxBytesInAll: 3 * MiB, reservedBytesForRelaying: MiB },
  });
  const streams = [await unread(1n, 8n), await unread(1n, 8n), await unread(1n, 8n)];
  await wait(300);
  const honest = await net();
  await honest.dial(server.listenAddrs[0]!);
  const started = Date.now();
  const answer = await honest.requestBlocks(server.peerId, 1n, 1n);
  assert.equal(answer.length, 1, `served ${answer.length} blocks in ${Date.now() - started} ms`);
  for (const s of streams) s.abort(new Error('done'));
});
