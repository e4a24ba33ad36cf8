// End to end, over real libp2p connections: peers that open `/blocks/1` streams, send a request
// and never read the answer (their stream paused, so their muxer grants no window past the first)
// hold every read slot open to peers that never relayed; an honest syncer (a fresh node, not a
// relaying peer) asking meanwhile is still served, by taking over the slots of the stalled writes
// (serve-budget.ts BlockReadSlots.reclaimStalled, counted by its `takenOver`), and the slots all
// go back once they are gone. Counts and polling only: no assertion on how long anything took.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { Stream } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { encode } from '@unc/core';
import * as lp from 'it-length-prefixed';
import { Registry } from '../src/metrics.js';
import { blockRangeCodec } from '../src/p2p/frames.js';
import { blocksProtocol, type Libp2pNetwork, type NetworkOptions } from '../src/p2p/libp2p.js';
import { networkMetrics } from '../src/p2p/network-metrics.js';
import {
  type BlockReadSlots,
  DEFAULT_BLOCK_READ_SLOTS,
  DEFAULT_BLOCK_READ_SLOTS_FOR_RELAYING,
} from '../src/p2p/serve-budget.js';
import type { NetworkHandlers } from '../src/p2p/types.js';
import { serveNetworks } from './serve-networks.js';

const MiB = 1024 * 1024;
/**
 * The test's blocks: 1.5 MiB, more than a stream's first window (256 KiB), so a write to a peer
 * that grants no more window never ends. Not 1 MiB: yamux auto-tunes a stream's window while the
 * protocol is negotiated (before the sybil pauses it), doubling it per frame read, and a 1 MiB
 * window took all but the 3-byte length prefix of a 1 MiB block's frame; a trickling sybil's first
 * 64 bytes then ended that write and gave its slot back (it was no longer stalled), and on a quick
 * machine, where the syncer was already waiting, those freed slots served it in full with no
 * takeover at all (fresh-clone CI, 2026-12-07). Each window yamux grants (256 KiB doubled, up to
 * 16 MiB) ends at least 512 KiB short of a frame's end here: more than a sybil trickles in minutes.
 */
const BLOCK = (3 * MiB) / 2;
/** One per run of `sybilsThenSyncer`, each with node keys of its own (closed in `after`). */
const fixtures: ReturnType<typeof serveNetworks>[] = [];
/** Every sybil stream, aborted at the end whatever happened (a trickling one keeps a timer). */
const streams: Stream[] = [];
after(async () => {
  for (const s of streams) s.abort(new Error('done'));
  for (const f of fixtures) await f.close();
});

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Polls `cond` until it holds; fails past a deadline far above any honest run (not a timing). */
async function until(cond: () => boolean, what: string, deadlineMs = 60_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`never: ${what}`);
    await pause(20);
  }
}

/** The yamux stream's own fields a trickling sybil drives (a misbehaving peer's muxer). */
interface YamuxInternals {
  streamId: number;
  recvWindowCapacity: number;
  sendFrame(header: { type: number; flag: number; streamID: number; length: number }): boolean;
}

/**
 * Sybil streams hold every slot open to peers that never relayed: a real libp2p node dials the
 * block protocol, sends a request, and never reads (paused: its muxer stops granting window), 3
 * ids x 2 streams (each id's share of slots); or, `trickle`, 6 ids x 1 stream that each grant
 * their window 64 bytes every 300 ms. Then an honest syncer asks for 4 blocks: it is served only
 * by taking over a stalled write's slot, whatever the machine's speed (see BLOCK). Every node is
 * started and connected first, so that the streams open, and the syncer asks, close together on
 * any machine.
 */
async function sybilsThenSyncer(trickle: boolean) {
  const fixture = serveNetworks({ dirPrefix: 'unc-blocks-stall-', firstSeed: trickle ? 160 : 140 });
  fixtures.push(fixture);
  const chain = await fixture.chain();
  // Blocks of BLOCK bytes, read and offered as readBlockRange does.
  const blocks: NetworkHandlers['blocks'] = async (from, to, take) => {
    for (let h = from; h <= to; h++) {
      if (take?.room && !(await take.room())) break;
      const raw = new Uint8Array(BLOCK).fill(Number(h % 251n));
      if (take && !(await take(raw.byteLength, raw))) break;
    }
    return [];
  };
  const net = (extra: Partial<NetworkOptions> = {}) =>
    fixture.net(chain, blocks, {
      ...extra,
      // Far past the test: a sybil stream's answer ends only when taken over, not at its deadline
      // (the slow start of many nodes on a loaded machine let deadlines free slots before).
      requestTimeoutMs: 600_000,
      // Every peer here dials from 127.0.0.1: the trickling run's 6 sybils and the syncer, dialled
      // one after another, passed the 5 inbound connections a second one address may open, and the
      // last were reset whenever the machine was quick enough (CI). The slots are under test here.
      connections: { inboundConnectionsPerAddressPerSecond: 100 },
    });
  // The server's Prometheus series, as a node registers them: its operator sees the takeover.
  const registry = new Registry();
  const server = await net({ metrics: networkMetrics(registry) });
  const takeoverSeries = () => /^unc_p2p_block_slots_taken_over_total (\d+)$/m.exec(registry.render())?.[1];
  // The server's read slots, observed (not driven) to check that every one goes back.
  const slots = (server as unknown as { blockReadSlots: BlockReadSlots }).blockReadSlots;
  const open = DEFAULT_BLOCK_READ_SLOTS - DEFAULT_BLOCK_READ_SLOTS_FOR_RELAYING;

  const perId = trickle ? 1 : 2;
  const ids: Libp2pNetwork[] = [];
  for (let id = 0; id < open / perId; id++) ids.push(await net());
  const honest = await net();
  for (const n of [...ids, honest]) await n.dial(server.listenAddrs[0]!);

  const sybils: Stream[] = [];
  for (const sybil of ids) {
    for (let s = 0; s < perId; s++) {
      const stream = await sybil.libp2p.dialProtocol(
        peerIdFromString(server.peerId),
        blocksProtocol(chain.genesis.chainId),
      );
      stream.pause();
      stream.send(lp.encode.single(encode(blockRangeCodec, { from: 1n, to: 64n })));
      sybils.push(stream);
      streams.push(stream);
      if (!trickle) continue;
      const y = stream as unknown as YamuxInternals;
      const timer = setInterval(() => {
        if (stream.status !== 'open') return clearInterval(timer);
        y.recvWindowCapacity += 64;
        y.sendFrame({ type: 1, flag: 0, streamID: y.streamId, length: 64 });
      }, 300);
      // Ends with the stream: aborted by its server, or by the test at its end (`after`).
      stream.addEventListener('close', () => clearInterval(timer));
    }
  }
  // Each sybil stream holds one slot, stuck writing a block (not always its first: a muxer may
  // have grown its window, yamux's auto-tuning, before the stream was paused; never its last).
  await until(() => slots.held() === open, 'the sybils hold every slot open to them');
  assert.equal(slots.takenOver, 0, 'no slot taken over before the syncer asks');
  assert.equal(takeoverSeries(), '0');

  const answer = await honest.requestBlocks(server.peerId, 1n, 4n);
  // Before the takeover of stalled writes (trickling: before it asked for more than any byte
  // drained): 0 blocks, after the longest serve wait (6 s).
  assert.equal(answer.length, 4, 'the honest syncer was served in full');
  assert.ok(
    answer.every((b, i) => b.byteLength === BLOCK && b[0] === i + 1),
    'the blocks asked for',
  );
  // Served by a takeover, not by a slot a sybil's write gave back, and only as many taken over as
  // the syncer needed: once it held a slot, its next reads found it.
  assert.equal(slots.takenOver, 1, 'one stalled sybil write taken over by the syncer');
  assert.equal(takeoverSeries(), '1', 'the takeover counted in /metrics');
  await until(
    () => sybils.some((s) => s.status === 'reset'),
    'the sybil stream taken over reset by its server',
  );
  assert.equal(sybils.filter((s) => s.status === 'reset').length, 1, 'one sybil stream aborted');

  // Every slot goes back once the sybils are gone: a takeover leaves no slot counted twice.
  for (const s of sybils) s.abort(new Error('done'));
  await until(() => slots.held() === 0, 'every slot given back');
}

test('peers whose block streams never read hold every slot open to them: an honest syncer is still served', () =>
  sybilsThenSyncer(false));

// Fails with the trickling rule undone (a write that drains any byte keeps its slot): the syncer
// gets 0 blocks. Once skipped: in fresh-clone CI its 1 MiB blocks let the sybils' trickles end
// their writes and free their slots, and the syncer was served with no takeover (see BLOCK).
test('peers granting their block streams a few bytes of window at a time hold every slot open to them: an honest syncer is still served', () =>
  sybilsThenSyncer(true));
