/**
 * Pending transactions reach peers that were not there when they were gossiped
 * (mempool-reactor.ts, `peerConnected`): a transfer admitted by a node with no peers reaches a
 * node that connects later, bounded per peer and per interval however often a peer reconnects,
 * and what a node admits from such a direct share it gossips on itself.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decode, encode, envelopeFromSigned, equalBytes, signTransaction, type TxEnvelope } from '@unc/core';
import { transferAction } from '@unc/sdk';
import { clockSlices } from '../../src/admission.js';
import { Chain } from '../../src/chain.js';
import type { Clock } from '../../src/clock.js';
import {
  MAX_BACKLOG_INTERVALS,
  MAX_REANNOUNCE_BYTES,
  MAX_REANNOUNCE_PEERS,
  MAX_REANNOUNCE_SCAN,
  MAX_REANNOUNCE_TXS,
  MAX_SHARED_BYTES_PER_INTERVAL,
  MAX_SHARED_BYTES_PER_PEER,
  MempoolReactor,
  type MempoolReactorOptions,
} from '../../src/consensus/mempool-reactor.js';
import type { PrivvalStorage } from '../../src/consensus/privval-store.js';
import { txBatchCodec } from '../../src/consensus/wire.js';
import { devGenesisJson, devKey, devValidator } from '../../src/dev.js';
import { silentLogger } from '../../src/log.js';
import { Mempool } from '../../src/mempool.js';
import { NodeCore } from '../../src/node-core.js';
import type { DirectMessage, Network } from '../../src/p2p/types.js';
import { VirtualClock } from '../../src/sim/virtual-clock.js';
import { ChainDb, MemoryKv } from '../../src/storage/db.js';
import { MemoryNetworkHub } from './memory-network.js';

const GENESIS = devGenesisJson({ time: new Date('2026-01-01T00:00:00Z') });
const START = Date.parse('2026-01-01T00:00:01Z');

/** A node on an in-memory store; the dev chain's only validator when `validator`. */
async function fullNode(clock: VirtualClock, validator = false): Promise<NodeCore> {
  const chain = await Chain.open(ChainDb.over(new MemoryKv()), GENESIS, silentLogger);
  const key = devValidator();
  const slot = { text: null as string | null, records: new Map<string, Uint8Array>() };
  const privvalStorage: PrivvalStorage = {
    where: 'memory:privval',
    read: () => slot.text,
    write: (t) => void (slot.text = t),
    recordWhere: (name) => `memory:privval.proposal-${name}`,
    readRecord: (name) => slot.records.get(name) ?? null,
    writeRecord: (name, bytes) => void slot.records.set(name, bytes),
    pruneRecords: (keep) => {
      for (const name of slot.records.keys()) if (name !== keep) slot.records.delete(name);
    },
  };
  return new NodeCore({
    chain,
    mempool: new Mempool(),
    validator: validator ? { seed: key.seed, publicKey: key.publicKey } : null,
    privvalPath: null,
    ...(validator ? { privvalStorage } : {}),
    blockTimeMs: 1000,
    logger: silentLogger,
    clock,
    slices: clockSlices(clock),
  });
}

/** Starts `node` on `net` and runs the virtual clock until its start (first sync) is done. */
async function startOn(clock: VirtualClock, node: NodeCore, net: Network): Promise<void> {
  const started = node.driver.start(net);
  await clock.run(clock.now() + 4_000);
  await started;
}

function transfer(chainId: string, key: number, nonce = 0n): TxEnvelope {
  const k = devKey(key);
  const tx = {
    chainId,
    signer: k.publicKey,
    nonce,
    fee: 10n ** 16n,
    expiresAt: 1000n,
    actions: [transferAction('unc1vystcnlgdeut2u2v57a0lacv4url68zepr0t34', 1n)],
  };
  return envelopeFromSigned(signTransaction(tx, k.seed));
}

test('a transfer admitted while a node had no peers reaches a peer that connects later', async () => {
  const clock = new VirtualClock(START);
  const hub = new MemoryNetworkHub();
  const a = await fullNode(clock);
  const b = await fullNode(clock);
  try {
    const netA = hub.join('A', a.driver.handlers());
    await startOn(clock, a, netA);
    const env = transfer(a.chain.genesis.chainId, 1);
    a.submit(env);
    assert.ok(a.mempool.has(env.hash));
    // Published to nobody: no peer yet.
    await clock.run(clock.now() + 100);

    const netB = hub.join('B', b.driver.handlers());
    await startOn(clock, b, netB);
    assert.ok(b.mempool.has(env.hash), 'the pending transfer reached the peer that connected later');
    assert.equal(a.driver.mempoolShareStats.sent, 1);
    assert.equal(a.driver.mempoolShareStats.txs, 1);
  } finally {
    await a.stop();
    await b.stop();
  }
});

test('a transfer a full node admitted with no peers is committed by the validator that connects later', async () => {
  const clock = new VirtualClock(START);
  const hub = new MemoryNetworkHub();
  const full = await fullNode(clock);
  const validator = await fullNode(clock, true);
  try {
    const netFull = hub.join('full', full.driver.handlers());
    await startOn(clock, full, netFull);
    const env = transfer(full.chain.genesis.chainId, 3);
    full.submit(env);
    await clock.run(clock.now() + 100);

    let committedAt: bigint | null = null;
    validator.driver.onCommit((c) => {
      if (c.envelopes.some((e) => equalBytes(e.hash, env.hash))) committedAt = c.block.header.height;
    });
    const netValidator = hub.join('validator', validator.driver.handlers());
    const startedValidator = validator.driver.start(netValidator);
    await clock.run(clock.now() + 10_000, () => committedAt !== null);
    await startedValidator;
    assert.notEqual(committedAt, null, "the validator put the full node's pending transfer in a block");
  } finally {
    await full.stop();
    await validator.stop();
  }
});

/** A reactor over a mempool of `count` transfers, recording what it sends and publishes. */
function reactorWith(
  clock: Clock,
  envs: TxEnvelope[],
  proven = (_peer: string) => false,
  pendingBytes?: () => number,
) {
  const sent: { peer: string; messages: readonly DirectMessage[] }[] = [];
  const published: Uint8Array[] = [];
  const reactor = new MempoolReactor({
    clock,
    admitTx: () => {},
    publishBatch: (data) => published.push(data),
    connected: () => true,
    pending: () => envs,
    sendDirect: async (peer, messages) => {
      sent.push({ peer, messages });
    },
    provenPeer: proven,
    ...(pendingBytes ? { pendingBytes } : {}),
    shareIntervalMs: 10_000,
    shareDelayMs: 1_000,
  });
  return { reactor, sent, published };
}

/**
 * A re-announcing reactor with one peer, `p1`, recording the batches it sends; `more` adds or
 * overrides options (the backlog, the candidates).
 */
function reannouncer(
  clock: VirtualClock,
  pending: () => TxEnvelope[],
  more: Partial<MempoolReactorOptions> = {},
) {
  const sent: Uint8Array[] = [];
  const reactor = new MempoolReactor({
    clock,
    admitTx: () => {},
    publishBatch: () => {},
    connected: () => true,
    pending,
    peers: () => ['p1'],
    sendDirect: async (_peer, messages) => {
      for (const m of messages) sent.push(m.data);
    },
    reannounceAfterMs: 4_000,
    ...more,
  });
  return { reactor, sent };
}

test('a peer that reconnects within the interval gets no second share', async () => {
  const clock = new VirtualClock(START);
  const envs = [1, 2, 3].map((i) => transfer('unc-devnet', i));
  const { reactor, sent } = reactorWith(clock, envs);
  for (let i = 0; i < 20; i++) reactor.peerConnected('P');
  await clock.run(clock.now() + 2_000);
  assert.equal(sent.length, 1, 'one share however often it reconnects');
  assert.equal(reactor.shareStats.refused, 19);
  const shared = sent[0]!.messages;
  assert.equal(shared.length, 1);
  assert.equal(shared[0]!.topic, 'tx');
  assert.deepEqual(
    shared[0]!.data,
    encode(
      txBatchCodec,
      envs.map((e) => e.bytes),
    ),
  );
  // After the interval it may have missed more: a new share.
  await clock.run(clock.now() + 10_000);
  reactor.peerConnected('P');
  await clock.run(clock.now() + 2_000);
  assert.equal(sent.length, 2);
  reactor.stop();
});

test("the share interval is on the clock's monotonic reading: a step back of the wall clock holds no peer's share", async () => {
  const virtual = new VirtualClock(START);
  // The wall clock steps (NTP, an operator, a VM restore); the monotonic reading only runs.
  let step = 0;
  const clock: Clock = {
    now: () => virtual.now() + step,
    monotonic: () => virtual.now(),
    schedule: (ms, fn) => virtual.schedule(ms, fn),
  };
  const { reactor, sent } = reactorWith(clock, [transfer('unc-devnet', 1)]);
  reactor.peerConnected('P');
  await virtual.run(virtual.now() + 2_000);
  assert.equal(sent.length, 1);
  // An hour back: on the wall clock the peer's last share (and the interval's budget) stayed
  // "within the interval" for an hour, and nobody reconnecting got the pending transactions.
  step = -60 * 60_000;
  await virtual.run(virtual.now() + 10_000);
  reactor.peerConnected('P');
  await virtual.run(virtual.now() + 2_000);
  assert.equal(sent.length, 2, 'a wall-clock step back held the share for its length');
  reactor.stop();
});

test('a share is bounded per peer in bytes, and per interval over all peers', async () => {
  const clock = new VirtualClock(START);
  // More than one peer's byte bound of transfers (the reactor sends what the mempool lists; one
  // signed copy listed many times saves signing thousands).
  const one = transfer('unc-devnet', 1);
  const count = Math.ceil((2 * MAX_SHARED_BYTES_PER_PEER) / one.bytes.length);
  const envs = Array.from({ length: count }, () => one);
  const { reactor, sent } = reactorWith(clock, envs);
  // Fresh identities: at most half the interval's budget between them.
  for (let i = 0; i < 50; i++) reactor.peerConnected(`fresh-${i}`);
  await clock.run(clock.now() + 2_000);
  const bytesTo = new Map<string, number>();
  for (const { peer, messages } of sent)
    for (const m of messages) bytesTo.set(peer, (bytesTo.get(peer) ?? 0) + m.data.byteLength);
  for (const bytes of bytesTo.values()) assert.ok(bytes <= MAX_SHARED_BYTES_PER_PEER + 64 * 1024);
  const total = reactor.shareStats.bytes;
  assert.ok(total <= MAX_SHARED_BYTES_PER_INTERVAL / 2, `unproven peers took ${total} bytes`);
  assert.ok(reactor.shareStats.refused > 0);
  // A peer that relays consensus messages still gets its share: half the budget is kept for such.
  const before = sent.length;
  const { reactor: r2, sent: sent2 } = reactorWith(clock, envs, (peer) => peer === 'relay');
  for (let i = 0; i < 50; i++) r2.peerConnected(`fresh-${i}`);
  r2.peerConnected('relay');
  await clock.run(clock.now() + 2_000);
  assert.ok(
    sent2.some((s) => s.peer === 'relay'),
    'the relaying peer got a share',
  );
  assert.ok(before > 0);
  r2.stop();
  reactor.stop();
});

test('a share reserves only what is pending: a small mempool reaches every connecting peer, an empty one costs nothing', async () => {
  const clock = new VirtualClock(START);
  const envs = [1, 2, 3].map((i) => transfer('unc-devnet', i));
  const bytes = envs.reduce((n, e) => n + e.bytes.length, 0);
  const { reactor, sent } = reactorWith(clock, envs, undefined, () => bytes);
  for (let i = 0; i < 200; i++) reactor.peerConnected(`fresh-${i}`);
  await clock.run(clock.now() + 2_000);
  assert.equal(new Set(sent.map((s) => s.peer)).size, 200, 'each peer got the three pending transfers');
  assert.equal(reactor.shareStats.refused, 0);
  reactor.stop();

  const empty = reactorWith(clock, [], undefined, () => 0);
  empty.reactor.peerConnected('P');
  await clock.run(clock.now() + 2_000);
  assert.equal(empty.sent.length, 0);
  assert.equal(empty.reactor.shareStats.refused, 0, 'nothing to send is no share: none is counted');
  empty.reactor.stop();
});

test('transactions admitted from a direct share are gossiped on; gossiped ones are not re-published', async () => {
  const clock = new VirtualClock(START);
  const { reactor, published } = reactorWith(clock, []);
  const env = transfer('unc-devnet', 2);
  const batch = encode(txBatchCodec, [env.bytes]);
  assert.equal(reactor.onTxGossip(batch, 'relay'), 'accept');
  await clock.run(clock.now() + 100);
  assert.equal(published.length, 0, 'gossip is forwarded by gossip itself');
  assert.equal(reactor.onTxGossip(batch, 'relay', true), 'accept');
  await clock.run(clock.now() + 100);
  assert.equal(published.length, 1, 'a direct share is relayed by the node that admitted it');
  reactor.stop();
});

test('a peer whose share is still being sent gets no second one: a share takes at most one of its direct streams', async () => {
  const clock = new VirtualClock(START);
  const envs = [1, 2, 3].map((i) => transfer('unc-devnet', i));
  const sends: string[] = [];
  // A peer that does not read: the send never completes (until the network's deadline).
  const reactor = new MempoolReactor({
    clock,
    admitTx: () => {},
    publishBatch: () => {},
    connected: () => true,
    pending: () => envs,
    sendDirect: (peer) => {
      sends.push(peer);
      return new Promise<void>(() => {});
    },
    shareIntervalMs: 10_000,
    shareDelayMs: 1_000,
  });
  reactor.peerConnected('P');
  await clock.run(clock.now() + 2_000);
  assert.equal(sends.length, 1);
  // Past the interval it reconnects while the first share's send is still open: a second share
  // would hold a second direct stream, the one consensus messages to it need.
  await clock.run(clock.now() + 10_000);
  reactor.peerConnected('P');
  await clock.run(clock.now() + 2_000);
  assert.equal(sends.length, 1, 'no second share while the first is in flight');
  assert.equal(reactor.shareStats.refused, 1);
  reactor.stop();
});

test('a peer gone before its share is sent is not sent it (a send to it would dial it back)', async () => {
  const clock = new VirtualClock(START);
  const hub = new MemoryNetworkHub();
  const a = await fullNode(clock);
  try {
    const netA = hub.join('A', a.driver.handlers());
    const sentTo: string[] = [];
    const send = netA.sendDirect.bind(netA);
    netA.sendDirect = (peer, messages) => {
      if (messages.some((m) => m.topic === 'tx')) sentTo.push(peer);
      return send(peer, messages);
    };
    await startOn(clock, a, netA);
    a.submit(transfer(a.chain.genesis.chainId, 1));
    await clock.run(clock.now() + 100);
    // A peer that connects and leaves at once: libp2p's send to a peer not connected dials it,
    // at whatever address it announced.
    const b = await fullNode(clock);
    hub.join('B', b.driver.handlers());
    hub.cut('B');
    await clock.run(clock.now() + 2_000);
    assert.ok(!sentTo.includes('B'), 'no share sent to the peer that left');
    assert.equal(a.driver.mempoolShareStats.sent, 0, 'nor counted, its reserved bytes given back');
    await b.stop();
  } finally {
    await a.stop();
  }
});

test('a node that admits a transfer from a peer’s share publishes it as gossip (through the driver)', async () => {
  const clock = new VirtualClock(START);
  const hub = new MemoryNetworkHub();
  const a = await fullNode(clock);
  const b = await fullNode(clock);
  try {
    const netA = hub.join('A', a.driver.handlers());
    await startOn(clock, a, netA);
    const env = transfer(a.chain.genesis.chainId, 1);
    a.submit(env);
    await clock.run(clock.now() + 100);
    const netB = hub.join('B', b.driver.handlers());
    const published: Uint8Array[] = [];
    const publish = netB.publish.bind(netB);
    netB.publish = (topic, data) => {
      if (topic === 'tx') published.push(data);
      return publish(topic, data);
    };
    await startOn(clock, b, netB);
    assert.ok(b.mempool.has(env.hash));
    assert.ok(
      published.some((d) => equalBytes(d, encode(txBatchCodec, [env.bytes]))),
      'B gossips on what it admitted from the direct share',
    );
  } finally {
    await a.stop();
    await b.stop();
  }
});

test('a transfer gossiped while a split dropped messages but kept the connection open reaches the peer once the split heals, without a reconnect', async () => {
  // Before: the share goes only to a peer that connects; a peer that stayed connected through the
  // split never got the transfer, and a full node's pending transfer reached no validator.
  const clock = new VirtualClock(START);
  const hub = new MemoryNetworkHub();
  const a = await fullNode(clock);
  const b = await fullNode(clock);
  let split = false;
  try {
    const netA = hub.join('A', a.driver.handlers());
    const handlersB = b.driver.handlers();
    const netB = hub.join('B', {
      ...handlersB,
      // The split: what A sends B is lost, the connection stays open (no disconnect, no share).
      onGossip: (topic, data, from, direct) =>
        split && from === 'A' ? 'ignore' : handlersB.onGossip(topic, data, from, direct),
    });
    const started = [a.driver.start(netA), b.driver.start(netB)];
    await clock.run(clock.now() + 4_000);
    await Promise.all(started);
    split = true;
    const env = transfer(a.chain.genesis.chainId, 4);
    a.submit(env);
    await clock.run(clock.now() + 2_000);
    assert.ok(!b.mempool.has(env.hash), 'the split dropped the gossip');
    split = false;
    // Four block intervals after its admission, then on the next round: well within 10 s.
    await clock.run(clock.now() + 10_000, () => b.mempool.has(env.hash));
    assert.ok(b.mempool.has(env.hash), 'the pending transfer was re-announced to the peer');
    assert.ok(a.driver.mempoolReannounceStats.txs >= 1);
  } finally {
    await a.stop();
    await b.stop();
  }
});

test('a re-announcement is bounded in transactions, bytes and peers, prefers relaying peers, and backs off per transaction', async () => {
  const clock = new VirtualClock(START);
  // Many pending transfers, all old enough (no admission time known here).
  // More than a re-announcement's count (256) of distinct transfers.
  const envs = Array.from({ length: 600 }, (_, n) => transfer('unc-devnet', 1, BigInt(n)));
  const distinct = [2, 3, 4].map((i) => transfer('unc-devnet', i));
  const peers = Array.from({ length: 40 }, (_, i) => `p${i}`);
  const proven = new Set(['p3', 'p7']);
  const sent: { peer: string; data: Uint8Array }[] = [];
  let pending: TxEnvelope[] = envs;
  const reactor = new MempoolReactor({
    clock,
    admitTx: () => {},
    publishBatch: () => {},
    connected: () => true,
    pending: () => pending,
    peers: () => peers,
    provenPeer: (p) => proven.has(p),
    sendDirect: async (peer, messages) => {
      for (const m of messages) sent.push({ peer, data: m.data });
    },
    reannounceAfterMs: 4_000,
  });
  reactor.reannounce();
  await clock.run(clock.now());
  const bytes = (d: Uint8Array) => decode(txBatchCodec, d).reduce((n, t) => n + t.length, 0);
  assert.ok(sent.length > 0 && sent.length <= MAX_REANNOUNCE_PEERS);
  for (const s of sent) {
    const txs = decode(txBatchCodec, s.data);
    assert.ok(txs.length > 0 && txs.length <= MAX_REANNOUNCE_TXS);
    assert.ok(bytes(s.data) <= MAX_REANNOUNCE_BYTES);
    assert.ok(
      txs.length === MAX_REANNOUNCE_TXS || bytes(s.data) > MAX_REANNOUNCE_BYTES - 1_000,
      'a bound, not the pool, ended it',
    );
  }
  const targets = sent.map((s) => s.peer);
  for (const p of proven) assert.ok(targets.includes(p), `relaying peer ${p} is sent to`);
  assert.ok(targets.filter((p) => !proven.has(p)).length <= MAX_REANNOUNCE_PEERS / 2);

  // Back-off: a transaction just re-announced is not sent in the next interval, nor the one after
  // (8 s), but once twice that passed.
  sent.length = 0;
  pending = distinct;
  reactor.reannounce();
  await clock.run(clock.now());
  assert.equal(decode(txBatchCodec, sent[0]!.data).length, 3);
  const rounds: number[] = [];
  for (let k = 1; k <= 4; k++) {
    sent.length = 0;
    await clock.run(clock.now() + 4_000);
    reactor.reannounce();
    await clock.run(clock.now());
    rounds.push(sent.length === 0 ? 0 : decode(txBatchCodec, sent[0]!.data).length);
  }
  // Sent at 0; due again at +4 s, then +8 s later (+12 s), then +16 s later (+28 s).
  assert.deepEqual(rounds, [3, 0, 3, 0]);
  reactor.stop();
});

test('a share due while a re-announcement to its peer is still being sent waits for it: the two never hold both direct streams', async () => {
  const clock = new VirtualClock(START);
  const envs = [1, 2, 3].map((i) => transfer('unc-devnet', i));
  const sends: string[] = [];
  let release: () => void = () => {};
  let inFlight = 0;
  let most = 0;
  const reactor = new MempoolReactor({
    clock,
    admitTx: () => {},
    publishBatch: () => {},
    connected: () => true,
    pending: () => envs,
    peers: () => ['p1'],
    sendDirect: async (peer) => {
      sends.push(peer);
      inFlight++;
      most = Math.max(most, inFlight);
      // The first send (the re-announcement) is held until released: a peer that reads slowly.
      if (sends.length === 1) await new Promise<void>((r) => (release = r));
      inFlight--;
    },
    reannounceAfterMs: 4_000,
    shareDelayMs: 1_000,
  });
  reactor.reannounce();
  await clock.run(clock.now());
  assert.equal(sends.length, 1);
  reactor.peerConnected('p1');
  await clock.run(clock.now() + 2_500);
  assert.equal(sends.length, 1, 'the share waited for the re-announcement');
  release();
  await clock.run(clock.now() + 1_000);
  assert.equal(sends.length, 2, 'then it was sent');
  assert.equal(most, 1);
  reactor.stop();
});

test('a re-announcement looks at the longest-pending senders it is given, never the whole pool in block order', async () => {
  // Before: it took the first of `pending` (the block order), whose heap over every sender is
  // built before the first transaction comes out: half a second at 100,000 senders, every round.
  const clock = new VirtualClock(START);
  const envs = [1, 2, 3].map((i) => transfer('unc-devnet', i));
  let blockOrderWalks = 0;
  const asked: number[] = [];
  const { reactor, sent } = reannouncer(
    clock,
    () => {
      blockOrderWalks++;
      return envs;
    },
    {
      reannounceCandidates: (maxSenders) => {
        asked.push(maxSenders);
        return envs.slice(0, 2);
      },
    },
  );
  reactor.reannounce();
  await clock.run(clock.now());
  assert.equal(blockOrderWalks, 0);
  assert.deepEqual(asked, [MAX_REANNOUNCE_SCAN]);
  assert.equal(decode(txBatchCodec, sent[0]!).length, 2);
  reactor.stop();
});

test('behind a deep backlog a pending transaction is re-announced only once the full blocks it had ahead committed; behind a shallow one, as before', async () => {
  // Before: a transaction pending four block intervals was re-announced whatever the depth of the
  // pool, so at saturation (pending because blocks were full) every node re-sent its pool.
  const clock = new VirtualClock(START);
  let envs = [1, 2, 3].map((i) => transfer('unc-devnet', i));
  let backlog = 20_000;
  const { reactor, sent } = reannouncer(clock, () => envs, { blockTimeMs: 1_000, backlog: () => backlog });
  const round = async (ms: number) => {
    await clock.run(clock.now() + ms);
    sent.length = 0;
    reactor.reannounce();
    await clock.run(clock.now());
    return sent.length === 0 ? 0 : decode(txBatchCodec, sent[0]!).length;
  };
  // Blocks of 2,000: 20,000 waiting is ten full blocks ahead.
  for (let h = 0; h < 3; h++) reactor.blockCommitted(2_000);
  assert.equal(reactor.blocksAhead(), 10);
  for (const env of envs) reactor.announceTx(env);
  assert.equal(await round(5_000), 0, 'pending behind full blocks: its peers hold it');
  for (let h = 0; h < 9; h++) reactor.blockCommitted(2_000);
  assert.equal(await round(1_000), 0, 'nine of the ten blocks ahead');
  reactor.blockCommitted(2_000);
  assert.equal(await round(1_000), 3, 'still pending once the blocks ahead committed: re-announced');

  // However slow the blocks, a truly lost transaction waits a block interval per block ahead at most.
  envs = [4].map((i) => transfer('unc-devnet', i));
  for (const env of envs) reactor.announceTx(env);
  assert.equal(await round(4_000 + 9_000), 0);
  assert.equal(await round(1_000), 1, 'four intervals, then one per block ahead (ten)');

  // A shallow backlog (a few lost transactions, blocks nearly empty): after four intervals, as before.
  backlog = 3;
  for (let h = 0; h < 8; h++) reactor.blockCommitted(0);
  envs = [5].map((i) => transfer('unc-devnet', i));
  for (const env of envs) reactor.announceTx(env);
  assert.equal(await round(4_000), 1);
  // However deep, the backlog counts MAX_BACKLOG_INTERVALS blocks at most.
  for (let h = 0; h < 8; h++) reactor.blockCommitted(2_000);
  backlog = 10_000_000;
  assert.equal(reactor.blocksAhead(), MAX_BACKLOG_INTERVALS);
  reactor.stop();
});

test('a deep pool behind nearly empty blocks (its proposers lack it: lost gossip, or transactions that cannot be taken) does not put re-announcement off', async () => {
  // Before: the backlog counted in blocks whatever the recent blocks carried, so a node whose many
  // pending transactions never reached the proposers (the case re-announcement exists for), or
  // an attacker's pool of gapped, never-includable (so never paid for) transactions, put every
  // re-announcement off by up to MAX_BACKLOG_INTERVALS block intervals.
  const clock = new VirtualClock(START);
  const envs = [1, 2].map((i) => transfer('unc-devnet', i));
  const { reactor, sent } = reannouncer(clock, () => envs, { blockTimeMs: 1_000, backlog: () => 50_000 });
  // Blocks keep coming, nearly empty: one had a few transactions.
  for (let h = 0; h < 8; h++) reactor.blockCommitted(h === 3 ? 5 : 0);
  assert.equal(reactor.blocksAhead(), 0);
  for (const env of envs) reactor.announceTx(env);
  await clock.run(clock.now() + 4_000);
  reactor.reannounce();
  await clock.run(clock.now());
  assert.equal(sent.length, 1, 'due after four intervals, as before the backlog rule');
  assert.equal(decode(txBatchCodec, sent[0]!).length, 2);
  // One small block among full ones: the blocks are not all full, the backlog does not count.
  for (let h = 0; h < 7; h++) reactor.blockCommitted(2_000);
  assert.equal(reactor.blocksAhead(), 0);
  reactor.blockCommitted(2_000);
  assert.equal(reactor.blocksAhead(), 25, 'every recent block full: 50,000 waiting is 25 blocks ahead');
  reactor.stop();
});
