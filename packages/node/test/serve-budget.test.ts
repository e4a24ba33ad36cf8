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
import {
  BLOCK_SERVE_MAX_WAIT_MS,
  BlockAnswerBudget,
  type BlockAnswerOptions,
  BlockReadSlots,
  DEFAULT_BLOCK_READ_SLOTS,
  DEFAULT_BLOCK_READ_SLOTS_PER_PEER,
  DEFAULT_BLOCK_SERVE_LIMITS,
  DEFAULT_BLOCK_WRITE_MIN_DRAIN_PER_SECOND,
  DEFAULT_BLOCK_WRITE_STALL_MS,
  DEFAULT_TX_SERVE_LIMITS,
  ServeBudget,
} from '../src/p2p/serve-budget.js';

const MiB = 1024 * 1024;

/** A clock the test moves: `sleep` advances it, and counts the time slept. */
function steppedClock() {
  const c = {
    now: 0,
    slept: 0,
    sleep: async (ms: number) => {
      c.now += ms;
      c.slept += ms;
    },
  };
  return c;
}

/** One block answer of peer 'p' on `clock`: 10 heights, a 1,000-byte cap, blocks of 40 bytes at most. */
function answerOn(
  budget: ServeBudget,
  clock: ReturnType<typeof steppedClock>,
  over: Partial<BlockAnswerOptions> = {},
): BlockAnswerBudget {
  return new BlockAnswerBudget(budget, {
    peer: 'p',
    asked: 10,
    capBytes: 1_000,
    maxBlockBytes: 40,
    relaying: false,
    now: () => clock.now,
    sleep: clock.sleep,
    ...over,
  });
}

/**
 * A full-size block answer (64 heights, 64 MiB, 9 MiB blocks) of `peer` at the default limits,
 * on a clock that never moves: no window renews, no wait ends.
 */
function stillAnswer(
  budget: ServeBudget,
  slots: BlockReadSlots,
  peer: string,
  over: Partial<BlockAnswerOptions> = {},
): BlockAnswerBudget {
  return new BlockAnswerBudget(budget, {
    peer,
    asked: 64,
    capBytes: 64 * MiB,
    maxBlockBytes: 9 * MiB,
    relaying: false,
    now: () => 0,
    sleep: () => new Promise<void>(() => {}),
    slots,
    ...over,
  });
}

/** A block server's budget and read slots (the defaults), and its `stillAnswer`s by peer. */
function stillServer() {
  const budget = new ServeBudget({}, DEFAULT_BLOCK_SERVE_LIMITS, 'blockServe');
  const slots = new BlockReadSlots();
  return { budget, slots, answer: (peer: string) => stillAnswer(budget, slots, peer) };
}

test('what one peer is served per interval never exceeds its budget, and a new interval starts afresh', () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          peer: fc.constantFrom('a', 'b', 'v'),
          bytes: fc.integer({ min: 1, max: 500 }),
          dt: fc.nat(40),
        }),
      ),
      (sends) => {
        const budget = new ServeBudget({
          intervalMs: 100,
          maxBytesPerPeer: 1_000,
          maxBytesInAll: 1_500,
          reservedBytesForRelaying: 500,
        });
        let now = 0;
        const served: { peer: string; bytes: number; at: number }[] = [];
        for (const s of sends) {
          now += s.dt;
          // 'v' relayed consensus messages here; 'a' and 'b' never did.
          if (budget.takeBytes(s.peer, s.bytes, now, s.peer === 'v'))
            served.push({ peer: s.peer, bytes: s.bytes, at: now });
        }
        // Within any one peer's window, and over all peers in any 100 ms, the sums stay bounded.
        for (const x of served) {
          const sum = (p?: string) =>
            served
              .filter((y) => (p === undefined || y.peer === p) && y.at >= x.at && y.at < x.at + 100)
              .reduce((n, y) => n + y.bytes, 0);
          assert.ok(sum(x.peer) <= 2_000, 'a window straddled at most two budgets');
          assert.ok(sum() <= 3_000);
          const others = served
            .filter((y) => y.peer !== 'v' && y.at >= x.at && y.at < x.at + 100)
            .reduce((n, y) => n + y.bytes, 0);
          assert.ok(others <= 2_000, "the non-relaying peers took more than their share's two windows");
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
  const budget = new ServeBudget({
    intervalMs: 1_000,
    maxBytesPerPeer: 1_000,
    maxBytesInAll: 5_000,
    reservedBytesForRelaying: 2_000,
  });
  let served = 0;
  for (let i = 0; i < 1_000; i++) if (budget.takeBytes(`fresh-${i}`, 1_000, 0)) served += 1_000;
  assert.equal(served, 3_000, 'fresh ids share what is not kept for relaying peers');
  assert.throws(() => new ServeBudget({ maxBytesPerPeer: 0 }), /positive integer/);
  assert.throws(
    () => new ServeBudget({ maxBytesInAll: 1_000, reservedBytesForRelaying: 1_000 }),
    /less than txServe.maxBytesInAll/,
  );
});

test("fresh ids downloading at the per-peer cap cannot starve a validator's fetch (the defaults)", () => {
  // Before: four fresh ids at 16 MiB/s used the whole 64 MiB/s, and every validator rebuilding a
  // proposal got short answers. Transactions of 64 KiB, the largest there are.
  const budget = new ServeBudget();
  const tx = 64 * 1024;
  const fullRate = DEFAULT_TX_SERVE_LIMITS.maxBytesPerPeer / tx;
  for (const now of [0, 1_000, 2_000]) {
    let freshServed = 0;
    for (let i = 0; i < 16; i++)
      for (let n = 0; n < fullRate; n++)
        if (budget.takeBytes(`fresh-${now}-${i}`, tx, now)) freshServed += tx;
    assert.equal(
      freshServed,
      DEFAULT_TX_SERVE_LIMITS.maxBytesInAll - DEFAULT_TX_SERVE_LIMITS.reservedBytesForRelaying,
    );
    // Each of three validators fetches a block's worth of missing transactions (8 MiB): in full.
    for (const v of ['v1', 'v2', 'v3']) {
      let served = 0;
      for (let n = 0; n < 128; n++) if (budget.takeBytes(v, tx, now + 10, true)) served++;
      assert.equal(served, 128, `${v}'s fetch got a short answer while fresh ids downloaded`);
    }
  }
  // What the fresh ids leave unused is open to relaying peers too (up to their per-peer cap).
  const idle = new ServeBudget();
  let served = 0;
  while (idle.takeBytes('v1', tx, 0, true)) served += tx;
  assert.equal(served, DEFAULT_TX_SERVE_LIMITS.maxBytesPerPeer);
});

test('connection limits: explicit defaults, overrides checked, each passed to the connection manager', () => {
  assert.deepEqual(connectionLimits(), DEFAULT_CONNECTION_LIMITS);
  assert.deepEqual(connectionManagerSettings(connectionLimits({ maxConnections: 7 })), {
    maxConnections: 7,
    maxIncomingPendingConnections: DEFAULT_CONNECTION_LIMITS.maxIncomingPendingConnections,
    inboundConnectionThreshold: DEFAULT_CONNECTION_LIMITS.inboundConnectionsPerAddressPerSecond,
    inboundUpgradeTimeout: DEFAULT_CONNECTION_LIMITS.inboundUpgradeTimeoutMs,
    inboundStreamProtocolNegotiationTimeout: DEFAULT_CONNECTION_LIMITS.streamNegotiationTimeoutMs,
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

test('block sync budget: heights asked count per peer and over all peers, fresh ids do not multiply it', () => {
  const budget = new ServeBudget(
    { intervalMs: 1_000, maxIdsPerPeer: 128, maxIdsInAll: 256 },
    DEFAULT_BLOCK_SERVE_LIMITS,
    'blockServe',
  );
  assert.equal(budget.takeIds('a', 64, 0), true);
  assert.equal(budget.takeIds('a', 64, 10), true);
  assert.equal(budget.takeIds('a', 1, 20), false, 'past its own budget');
  assert.equal(budget.takeIds('b', 64, 30), true);
  assert.equal(budget.takeIds('c', 64, 40), true);
  assert.equal(budget.takeIds('d', 1, 50), false, 'past the overall budget, whoever asks');
  assert.equal(budget.takeIds('d', 64, 1_050), true, 'a new interval starts afresh');
  assert.throws(
    () => new ServeBudget({ maxIdsInAll: 0 }, DEFAULT_BLOCK_SERVE_LIMITS, 'blockServe'),
    /blockServe\.maxIdsInAll/,
  );
  // The /txs/1 defaults keep no overall bound on ids, as before.
  assert.equal(DEFAULT_TX_SERVE_LIMITS.maxIdsInAll, Number.MAX_SAFE_INTEGER);
});

test('the overall window: room is looked at when a block is taken, charged when it is sent', () => {
  const b = new ServeBudget(
    { maxBytesPerPeer: 100, maxBytesInAll: 150, reservedBytesForRelaying: 50 },
    DEFAULT_BLOCK_SERVE_LIMITS,
  );
  assert.ok(b.allHasRoom(100, 0));
  assert.ok(b.allHasRoom(100, 0), 'looking charges nothing');
  b.chargeAll(100, 0);
  assert.equal(b.allHasRoom(1, 10), false, 'the non-relaying share (100) is spent');
  assert.ok(b.allHasRoom(50, 10, true), 'the relaying peers’ share is left');
  assert.equal(b.takeBytes('other', 1, 20), false, 'takeBytes keeps the same overall rule');
  assert.ok(b.allHasRoom(100, 1_000), 'a new window');
});

test('a peer that never reads its block answers holds only its own window: an honest answer is served while the clock stands still', async () => {
  // Attack review: the overall window was charged as each block was read, not as it was sent. A
  // peer that never read its answers (each held by its server up to the request deadline) had
  // three ids, at their per-peer cap of 64 MiB a second, fill the 192 MiB non-relaying share
  // without downloading a byte: every honest syncer's answer then waited for the next window.
  const { budget, slots, answer } = stillServer();
  const now = 0; // the clock never moves: no window renews, no wait ends
  let unread = 0;
  const nonReader = async (peer: string) => {
    // Blocks of 8 MiB taken until the peer's own window is spent; their frames are never drained,
    // so `sent` is never called for them.
    for (const a = answer(peer); (await a.room()) && (await a.take(8 * MiB)); ) unread += 8 * MiB;
  };
  for (let p = 0; p < 3; p++) void nonReader(`nonreader-${p}`);
  await settle();
  assert.equal(unread, 3 * 64 * MiB, 'each non-reader took its whole window, in blocks never sent');
  const honest = answer('honest');
  let served = 0;
  void (async () => {
    for (let i = 0; i < 8; i++) {
      if (!((await honest.room()) && (await honest.take(8 * MiB)))) return;
      honest.sent(8 * MiB);
      served++;
    }
  })();
  await settle();
  // Before: the honest answer's first block waited for a window that never renewed.
  assert.equal(served, 8, 'the honest answer was served in full');
  // What the honest peer downloaded is charged: 64 of the 192 MiB share.
  assert.ok(budget.allHasRoom(128 * MiB, now));
  assert.equal(budget.allHasRoom(128 * MiB + 1, now), false);
  assert.equal(slots.held(), 0, 'the non-readers hold no read slot while their frames wait');
});

test('a block keeps its read slot until its frame is written: blocks that peers never read are bounded by the slots', async () => {
  // Attack review: the slot was given back when the block was taken, before its send. A send that
  // never ended (its peer does not read) then held the block, up to 9 MiB, under no slot nor
  // window: 4 streams x 200 connections x 9 MiB (about 7 GiB) of blocks read and never written,
  // renewed at each request deadline.
  const { budget, slots, answer } = stillServer();
  const a = answer('p');
  assert.ok(await a.room());
  assert.ok(await a.take(9 * MiB));
  // Before: 0, the block still unwritten.
  assert.equal(slots.held('p'), 1, 'the slot is held while the block is being written');
  a.sent(9 * MiB);
  assert.equal(slots.held('p'), 0, 'written, the slot goes back');
  // An answer ending (its stream reset) with a block taken and not written gives its slot back.
  assert.ok(await a.room());
  assert.ok(await a.take(MiB));
  assert.equal(slots.held('p'), 1);
  a.end();
  assert.equal(slots.held(), 0);

  // Sybil ids whose sends never end (a take that sends, as libp2p.ts's, stuck in its write):
  // each id holds at most its share, and together no more than the slots of the peers that never
  // relayed; a relaying peer's answer is still served in full.
  let stuck = 0;
  const neverWritten = async (peer: string) => {
    const s = answer(peer);
    if ((await s.room()) && (await s.take(9 * MiB))) {
      stuck++;
      await new Promise<void>(() => {}); // the write that never ends
    }
  };
  for (let p = 0; p < 6; p++) for (let stream = 0; stream < 4; stream++) void neverWritten(`sybil-${p}`);
  await settle();
  assert.equal(
    stuck,
    DEFAULT_BLOCK_READ_SLOTS - 2,
    'blocks left unwritten: the slots not kept for relaying peers',
  );
  assert.equal(slots.held(), DEFAULT_BLOCK_READ_SLOTS - 2);
  for (let p = 0; p < 6; p++) assert.ok(slots.held(`sybil-${p}`) <= DEFAULT_BLOCK_READ_SLOTS_PER_PEER);
  const validator = stillAnswer(budget, slots, 'validator', { asked: 8, relaying: true });
  let served = 0;
  void (async () => {
    while ((await validator.room()) && (await validator.take(MiB))) {
      validator.sent(MiB);
      served++;
    }
  })();
  await settle();
  assert.equal(served, 8, "the relaying peer's answer was served in full");
});

test('block answers wait for the budget to renew, and end short only after the longest wait in all', async () => {
  const clock = steppedClock();
  const budget = new ServeBudget({ maxBytesPerPeer: 10 }, DEFAULT_BLOCK_SERVE_LIMITS);
  const a = answerOn(budget, clock, { asked: 100, maxBlockBytes: 10 });
  assert.ok(await a.ids());
  for (let i = 0; i < 3; i++) assert.ok(await a.take(10), `block ${i}, a window each`);
  assert.equal(clock.slept, 2_000, 'waited for two renewals');
  assert.equal(a.count, 3);
  // A window longer than the longest wait: the answer ends short exactly at that wait.
  const slow = new ServeBudget({ maxBytesPerPeer: 10, intervalMs: 3_600_000 }, DEFAULT_BLOCK_SERVE_LIMITS);
  clock.slept = 0;
  const b = answerOn(slow, clock, { asked: 2, maxBlockBytes: 10 });
  assert.ok(await b.take(10));
  assert.equal(await b.take(10), false);
  assert.equal(clock.slept, BLOCK_SERVE_MAX_WAIT_MS);
  // The cap and the blocks asked end an answer at once, without waiting.
  clock.slept = 0;
  assert.equal(await b.take(11), false);
  assert.equal(clock.slept, 0);
});

test('block answers hold room for the largest block before it is read, and charge only what was read', async () => {
  const clock = steppedClock();
  const budget = new ServeBudget({ maxBytesPerPeer: 100, intervalMs: 3_600_000 }, DEFAULT_BLOCK_SERVE_LIMITS);
  const a = answerOn(budget, clock);
  // Room for a 40-byte block, then a 10-byte one read: 30 bytes given back to the peer's window.
  for (let i = 0; i < 7; i++) {
    assert.ok(await a.room(), `room ${i}`);
    assert.ok(await a.take(10));
  }
  assert.equal(clock.slept, 0);
  // 70 taken: no room for another 40-byte block. It waits, unread, and ends after the longest wait.
  assert.equal(await a.room(), false);
  assert.equal(clock.slept, BLOCK_SERVE_MAX_WAIT_MS);
  a.end();
  // Only what was read is charged (room held and not used went back): the last 30 bytes are left.
  const b = answerOn(budget, clock, { asked: 1 });
  assert.ok(await b.take(30));
  assert.equal(clock.slept, BLOCK_SERVE_MAX_WAIT_MS, 'taken without a wait');
});

/** Lets every promise chain that can move on do so (no clock involved). */
async function settle(rounds = 50): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
}

test('sybil reads of tiny blocks in flight take none of the overall window: an honest answer is served while the clock stands still', async () => {
  // Attack review: room for the largest block (9 MiB) was held in the overall window before each
  // read, so 21 reads in flight (6 sybil ids x 4 streams asking for tiny blocks, receiving almost
  // nothing) filled the 192 MiB non-relaying share: every other syncer's answer waited for the
  // window to renew, and honest answers ended short at the longest wait.
  const { budget, slots, answer } = stillServer();
  const now = 0; // the clock never moves: no window renews, no wait ends
  // Reads in flight (room held, block not yet taken), over all and per peer.
  let reading = 0;
  let mostReading = 0;
  const readingBy = new Map<string, number>();
  let mostByPeer = 0;
  let sybilBlocks = 0;
  const sybilStream = async (peer: string) => {
    const a = answer(peer);
    for (let i = 0; i < 64; i++) {
      if (!(await a.room())) return;
      reading++;
      readingBy.set(peer, (readingBy.get(peer) ?? 0) + 1);
      mostReading = Math.max(mostReading, reading);
      mostByPeer = Math.max(mostByPeer, readingBy.get(peer) ?? 0);
      await new Promise((r) => setImmediate(r)); // the disk read
      reading--;
      readingBy.set(peer, (readingBy.get(peer) ?? 0) - 1);
      if (!(await a.take(100))) return;
      a.sent(100);
      sybilBlocks++;
    }
  };
  const streams: Promise<void>[] = [];
  for (let p = 0; p < 6; p++) for (let s = 0; s < 4; s++) streams.push(sybilStream(`sybil-${p}`));
  await new Promise((r) => setImmediate(r));
  // While the sybils read, the overall window is charged only what they were sent.
  assert.ok(budget.allHasRoom(64 * MiB, now), 'the non-relaying share is still there');
  const honest = answer('honest');
  let served: boolean | undefined;
  void (async () => {
    served = (await honest.room()) && (await honest.take(MiB));
    if (served) honest.sent(MiB); // its slot is held until then
  })();
  await settle();
  assert.equal(served, true, 'the honest answer got room and its block as the sybil reads finished');
  await Promise.all(streams);
  assert.equal(sybilBlocks, 24 * 64, 'the sybils were served too');
  // The memory pinned by reads is bounded by the slots, whatever the number of sybil streams.
  assert.ok(mostReading <= DEFAULT_BLOCK_READ_SLOTS, `${mostReading} reads in flight`);
  assert.ok(mostByPeer <= DEFAULT_BLOCK_READ_SLOTS_PER_PEER, `${mostByPeer} reads in flight for one peer`);
  assert.equal(slots.held(), 0, 'every slot given back');
});

test('block read slots: first come, first served among peers under their share, woken as a read ends', async () => {
  const slots = new BlockReadSlots(2, 1, 0);
  const never = () => new Promise<void>(() => {});
  const got: string[] = [];
  const ask = (peer: string, timeout = never) =>
    slots.acquire(peer, timeout).then((ok) => {
      if (ok) got.push(peer);
      return ok;
    });
  void ask('a');
  void ask('a'); // over a's share: waits, without keeping 'b' and 'c' out
  void ask('b');
  void ask('c');
  await settle(2);
  assert.deepEqual(got, ['a', 'b']);
  slots.release('a');
  await settle(2);
  assert.deepEqual(got, ['a', 'b', 'a'], "a's second read, asked first, once a's first ended");
  slots.release('b');
  await settle(2);
  assert.deepEqual(got, ['a', 'b', 'a', 'c']);
  // A wait that times out holds nothing, and is no longer served.
  let fire = () => {};
  const late = ask('d', () => new Promise<void>((r) => (fire = r)));
  fire();
  assert.equal(await late, false);
  slots.release('a');
  slots.release('c');
  assert.equal(slots.held(), 0);
  assert.equal(slots.held('d'), 0);
  assert.throws(() => new BlockReadSlots(0), /positive/);
  assert.throws(() => new BlockReadSlots(2, 1, 2), /fewer/);
  // Slots kept for relaying peers: non-relaying peers holding the rest do not keep them out.
  const kept = new BlockReadSlots(3, 1, 1);
  const order: string[] = [];
  const take = (peer: string, relaying: boolean) =>
    kept.acquire(peer, never, relaying).then(() => order.push(peer));
  void take('x', false);
  void take('y', false);
  void take('z', false); // waits: the last slot is a relaying peer's
  void take('v', true);
  await settle(2);
  assert.deepEqual(order, ['x', 'y', 'v']);
  kept.release('x');
  await settle(2);
  assert.deepEqual(order, ['x', 'y', 'v', 'z']);
  kept.release('v', true);
  assert.equal(kept.held(), 2);
});

test('a block read past the overall window waits for it holding its slot; refused, the slot and the peer room go back', async () => {
  let now = 0;
  const budget = new ServeBudget(
    { maxBytesPerPeer: 100, maxBytesInAll: 60, reservedBytesForRelaying: 10, intervalMs: 3_600_000 },
    DEFAULT_BLOCK_SERVE_LIMITS,
  );
  const slots = new BlockReadSlots(1, 1, 0);
  const a = new BlockAnswerBudget(budget, {
    peer: 'p',
    asked: 10,
    capBytes: 1_000,
    maxBlockBytes: 40,
    relaying: false,
    now: () => now,
    sleep: async (ms) => {
      assert.equal(slots.held('p'), 1, 'the slot is kept during the window wait');
      now += ms;
    },
    slots,
  });
  assert.ok(await a.room());
  assert.ok(await a.take(30));
  a.sent(30);
  assert.equal(slots.held(), 0);
  assert.ok(await a.room());
  // 30 + 30 > the non-relaying share (50): refused after the longest wait.
  assert.equal(await a.take(30), false);
  assert.equal(now, BLOCK_SERVE_MAX_WAIT_MS);
  assert.equal(slots.held(), 0);
  a.end();
  // The peer's window kept 30 + 30 (both read), the room held beyond them went back.
  assert.ok(budget.takePeerBytes('p', 40, now));
  assert.equal(budget.takePeerBytes('p', 1, now), false);
});

test('a block answer whose stream is gone (its syncer cancelled it) reads and waits no more, and holds no slot', async () => {
  // Review: a request cancelled by its syncer (sync.ts cancels those a pass leaves in flight) kept
  // its server reading the whole range and waiting up to the longest wait, holding read slots,
  // for an answer no one would read: the server noticed only when it sent the first block.
  let now = 0;
  let gone = false;
  let sleeps = 0;
  const budget = new ServeBudget(
    { maxBytesPerPeer: 100, maxBytesInAll: 60, reservedBytesForRelaying: 10, intervalMs: 1_000 },
    DEFAULT_BLOCK_SERVE_LIMITS,
  );
  const slots = new BlockReadSlots(1, 1, 0);
  const answer = (peer: string) =>
    new BlockAnswerBudget(budget, {
      peer,
      asked: 10,
      capBytes: 1_000,
      maxBlockBytes: 40,
      relaying: false,
      now: () => now,
      sleep: async (ms) => {
        sleeps++;
        if (peer === 'q') return new Promise<void>(() => {});
        gone = true; // the stream is reset while the answer waits for the window
        now += ms;
      },
      slots,
      gone: () => gone,
    });
  const a = answer('p');
  assert.ok(await a.room());
  assert.ok(await a.take(30));
  a.sent(30);
  assert.ok(await a.room());
  // Refused by the non-relaying share (30 + 30 > 50): one wait, then the stream is seen gone.
  assert.equal(await a.take(30), false);
  assert.equal(sleeps, 1, 'no further wait once the stream is gone');
  assert.equal(slots.held(), 0);
  assert.equal(await a.room(), false, 'no further read');
  assert.equal(slots.held(), 0);
  a.end();
  // Gone while waiting for a slot: the slot granted is given back at once.
  gone = false;
  const holder = answer('h');
  assert.ok(await holder.room());
  const waiting = answer('q');
  const got = waiting.room();
  await settle();
  gone = true;
  holder.end(); // hands its slot on to the waiting answer, whose stream is gone
  assert.equal(await got, false);
  assert.equal(slots.held(), 0, 'the slot went back');
});

/** A clock the test moves (`advance`): each `sleep` ends when the clock reaches its end. */
function timerClock() {
  const timers: { at: number; fire: () => void }[] = [];
  const c = {
    now: 0,
    sleep: (ms: number) => new Promise<void>((fire) => timers.push({ at: c.now + ms, fire })),
    /** Moves the clock `ms` on, ending the sleeps due on the way, in order. */
    async advance(ms: number): Promise<void> {
      const end = c.now + ms;
      for (;;) {
        await settle();
        timers.sort((a, b) => a.at - b.at);
        const due = timers[0];
        if (!due || due.at > end) break;
        timers.shift();
        c.now = due.at;
        due.fire();
      }
      c.now = end;
      await settle();
    },
  };
  return c;
}

/**
 * One stream's block answer, as libp2p.ts serves it, on `clock`: each block taken is written by
 * `write` (the stream's drained bytes are `drained()`); aborted, the stream's write fails and the
 * answer ends. Counts the blocks written and whether the stream was aborted.
 */
function streamAnswer(
  budget: ServeBudget,
  slots: BlockReadSlots,
  clock: ReturnType<typeof timerClock>,
  peer: string,
  drained: () => number,
  write: () => Promise<void>,
  over: Partial<BlockAnswerOptions> = {},
) {
  const s = { written: 0, aborted: false, ended: false };
  let failWrite: (err: Error) => void = () => {};
  const aborted = new Promise<never>((_, reject) => {
    failWrite = reject;
  });
  aborted.catch(() => {});
  const answer = new BlockAnswerBudget(budget, {
    peer,
    asked: 4,
    capBytes: 64 * MiB,
    maxBlockBytes: 9 * MiB,
    relaying: false,
    now: () => clock.now,
    sleep: clock.sleep,
    slots,
    gone: () => s.aborted,
    drained,
    abort: () => {
      s.aborted = true;
      failWrite(new Error('block write stalled'));
    },
    ...over,
  });
  void (async () => {
    try {
      while ((await answer.room()) && (await answer.take(MiB))) {
        await Promise.race([write(), aborted]);
        answer.sent(MiB);
        s.written++;
      }
    } catch {
      // The stream was aborted: a failed answer, as any other.
    } finally {
      answer.end();
      s.ended = true;
    }
  })();
  return s;
}

/**
 * A block server's budget and read slots (the defaults) on a timerClock, and its stream answers
 * (`streamAnswer`) by peer: `reading`, one whose writes drain at once (a syncer, a waiter);
 * `sixWriting`, 3 ids x 2 streams (`${label}-${id}`) whose writes never complete, `drained()`
 * being how far each drained.
 */
function blockServer() {
  const budget = new ServeBudget({}, DEFAULT_BLOCK_SERVE_LIMITS, 'blockServe');
  const slots = new BlockReadSlots();
  const clock = timerClock();
  const answer = (
    peer: string,
    drained: () => number,
    write: () => Promise<void>,
    over: Partial<BlockAnswerOptions> = {},
  ) => streamAnswer(budget, slots, clock, peer, drained, write, over);
  const reading = (peer: string, over: Partial<BlockAnswerOptions> = {}) =>
    answer(
      peer,
      () => 0,
      async () => {},
      over,
    );
  const sixWriting = (label: string, drained: () => number) => {
    const out: ReturnType<typeof streamAnswer>[] = [];
    for (let id = 0; id < 3; id++)
      for (let stream = 0; stream < 2; stream++)
        out.push(answer(`${label}-${id}`, drained, () => new Promise<void>(() => {})));
    return out;
  };
  return { slots, clock, answer, reading, sixWriting };
}

test('writes that drain nothing give their slots to a waiting syncer: sybils that never read cannot starve it', async () => {
  // Attack review: 3 sybil ids x 2 streams that never read held the 6 slots open to peers that
  // never relayed, each until its request deadline, renewably; a fresh node catching up (not a
  // relaying peer) waited the longest wait and got a short (empty) answer.
  const { slots, clock, answer, reading } = blockServer();
  const never = () => new Promise<void>(() => {});
  const sybils: ReturnType<typeof streamAnswer>[] = [];
  let attacking = true;
  // Each sybil stream aborted opens another at once (the attack renewed).
  const sybilStream = (id: string) => {
    const s = answer(id, () => 256 * 1024, never);
    sybils.push(s);
    void (async () => {
      while (!s.ended && attacking) await settle(1);
      if (attacking) sybilStream(id);
    })();
  };
  for (let id = 0; id < 3; id++) for (let stream = 0; stream < 2; stream++) sybilStream(`sybil-${id}`);
  await settle();
  assert.equal(slots.held(), DEFAULT_BLOCK_READ_SLOTS - 2, 'the sybils hold every slot open to them');
  const syncer = reading('syncer');
  for (let t = 0; t < BLOCK_SERVE_MAX_WAIT_MS && !syncer.ended; t += 100) await clock.advance(100);
  attacking = false;
  // Before: 0 blocks, after the longest wait.
  assert.equal(syncer.written, 4, "the syncer's answer was served in full");
  assert.ok(clock.now < BLOCK_SERVE_MAX_WAIT_MS, 'before the longest wait');
  assert.ok(
    sybils.some((s) => s.aborted),
    'stalled sybil writes were aborted',
  );
  assert.ok(slots.held() <= DEFAULT_BLOCK_READ_SLOTS - 2);
});

test('a slow reader whose writes keep draining is never aborted, whoever waits for its slot', async () => {
  const { slots, clock, reading, sixWriting } = blockServer();
  // Six slow readers (3 ids x 2 streams) each drain 64 KiB every 900 ms (71 KiB/s, small frames).
  const slow = sixWriting('slow', () => Math.floor(clock.now / 900) * 64 * 1024);
  await settle();
  assert.equal(slots.held(), DEFAULT_BLOCK_READ_SLOTS - 2);
  // Waiters (an attacker's fresh ids, or a syncer) wait for those slots the longest wait through.
  const waiters = [0, 1, 2].map((i) => reading(`waiter-${i}`));
  for (let t = 0; t <= BLOCK_SERVE_MAX_WAIT_MS; t += 100) await clock.advance(100);
  assert.ok(
    slow.every((s) => !s.aborted),
    'no slow reader was aborted',
  );
  for (const w of waiters) {
    assert.equal(w.written, 0, 'no slot was taken from a progressing write');
    assert.ok(w.ended);
  }
});

test('a reader on a slow link, whose muxer grants 256 KiB of window every 2 s, keeps its slot whoever waits', async () => {
  // Review of the stalled-write takeover: yamux grants window back only once a whole data frame
  // (as large as the window, 256 KiB at first) arrived, so on a link at 128 KiB/s the server sees
  // its write drain 256 KiB every 2 s. Judged on the last second, any waiter (an attacker's fresh
  // id included) aborted it, and its syncer dropped this server for the failed request.
  const { slots, clock, reading, sixWriting } = blockServer();
  const slow = sixWriting('slow', () => Math.floor(clock.now / 2_000) * 256 * 1024);
  await settle();
  assert.equal(slots.held(), DEFAULT_BLOCK_READ_SLOTS - 2);
  // Waiters for those slots all along, each renewed as it ends at the longest wait.
  const waiters: ReturnType<typeof streamAnswer>[] = [];
  const waiting = [0, 1, 2].map((i) => waiters.push(reading(`waiter-${i}`)) - 1);
  for (let t = 0; t < 5 * BLOCK_SERVE_MAX_WAIT_MS; t += 100) {
    await clock.advance(100);
    for (const [i, at] of waiting.entries())
      if ((waiters[at] as ReturnType<typeof streamAnswer>).ended)
        waiting[i] = waiters.push(reading(`waiter-${i}`)) - 1;
  }
  assert.ok(waiters.length >= 3 * 5, 'waiters were renewed all along');
  // Before: each slow write aborted a second after the first step it waited on.
  assert.equal(slow.filter((s) => s.aborted).length, 0, 'no slow reader was aborted');
  assert.ok(
    waiters.every((w) => w.written === 0),
    'no slot was taken from a draining write',
  );
});

test('stalled is judged over the last stall window: a write that stops draining loses its slot once it drained too little in it', async () => {
  const { clock, reading, sixWriting } = blockServer();
  // Six readers drain 128 KiB a second until t = 6 s, then stop: from t = 9 s, the last 4 s saw
  // 128 KiB, under the 256 KiB (64 KiB a second) a write must drain in them.
  const step = (DEFAULT_BLOCK_WRITE_MIN_DRAIN_PER_SECOND * 2 * DEFAULT_BLOCK_WRITE_STALL_MS) / 4_000;
  const readers = sixWriting('reader', () => Math.floor(Math.min(clock.now, 6_000) / 1_000) * step);
  await settle();
  while (clock.now < 5_000) await clock.advance(100);
  const syncer = reading('syncer', { asked: 1 });
  while (clock.now < 8_900) await clock.advance(100);
  assert.equal(syncer.written, 0, 'not while the last stall window drained enough');
  assert.ok(readers.every((r) => !r.aborted));
  while (clock.now < 9_600) await clock.advance(100);
  assert.equal(syncer.written, 1, 'served once the write stalled');
  assert.equal(readers.filter((r) => r.aborted).length, 1, 'one stalled write aborted per slot needed');
});

test("a peer's waiting read never takes over its own stalled write: a syncer on a slow link does not abort its own answers", async () => {
  // Review of the stalled-write takeover: a syncer's second stream, waiting while the others'
  // slots are full, took over the slot of its own first stream, whose write had stalled only
  // because the syncer's link was busy (with that very answer): the server aborted the syncer's
  // answer for another of the same syncer, and the syncer dropped the server (a failed request).
  const { slots, clock, answer, reading } = blockServer();
  const never = () => new Promise<void>(() => {});
  // The syncer's first stream: its write drains nothing (its link is busy).
  const first = answer('syncer', () => 0, never);
  // Five other readers whose writes keep draining hold the rest of the slots open to them.
  const others = [0, 1, 2, 3, 4].map((i) => answer(`reader-${i}`, () => clock.now * 1024, never));
  await settle();
  assert.equal(slots.held(), DEFAULT_BLOCK_READ_SLOTS - 2);
  const second = reading('syncer');
  for (let t = 0; t <= BLOCK_SERVE_MAX_WAIT_MS; t += 100) await clock.advance(100);
  // Before: the first stream aborted after a stall time, its slot handed to the second.
  assert.equal(first.aborted, false, "the syncer's stalled answer was not aborted for its own");
  assert.ok(others.every((r) => !r.aborted));
  assert.equal(second.written, 0);
  assert.ok(second.ended, 'the second answer ended at the longest wait, short');
});

test('writes that drain only a few bytes a stall time (a muxer granting its window a few bytes at a time) lose their slots to a waiting syncer', async () => {
  // Review of the stalled-write takeover: a write that drained any byte kept its slot, so 3 sybil
  // ids x 2 streams granting 64 bytes of window every 300 ms (some 200 bytes a second each) held
  // the 6 slots open to peers that never relayed to the deadline, as before the takeover, and a
  // fresh node catching up got an empty answer after the longest wait.
  const { slots, clock, reading, sixWriting } = blockServer();
  // 3 ids x 2 streams, each write granted 64 bytes every 300 ms.
  const tricklers = sixWriting('trickler', () => Math.floor(clock.now / 300) * 64);
  await settle();
  assert.equal(slots.held(), DEFAULT_BLOCK_READ_SLOTS - 2);
  const syncer = reading('syncer');
  for (let t = 0; t < BLOCK_SERVE_MAX_WAIT_MS && !syncer.ended; t += 100) await clock.advance(100);
  // Before: 0 blocks, after the longest wait.
  assert.equal(syncer.written, 4, "the syncer's answer was served in full");
  assert.ok(
    tricklers.some((s) => s.aborted),
    'trickling writes were taken over',
  );
});

test('property: a write draining 256 KiB steps at most 4 s apart keeps its slot; once it stops, a waiter takes it 4 s after its last step, within a sampling step or two', async () => {
  const never = () => new Promise<void>(() => {});
  const window = DEFAULT_BLOCK_WRITE_STALL_MS;
  const needed = (DEFAULT_BLOCK_WRITE_MIN_DRAIN_PER_SECOND * window) / 1_000;
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.integer({ min: 1, max: window }), { minLength: 1, maxLength: 10 }),
      fc.integer({ min: 0, max: 3 * window }),
      async (gaps, arrives) => {
        const slots = new BlockReadSlots(1, 1, 0);
        const clock = timerClock();
        // The write's drain: a step of 256 KiB after each gap (the first from the write's start).
        const steps: number[] = [];
        for (const g of gaps) steps.push((steps[steps.length - 1] ?? 0) + g);
        const last = steps[steps.length - 1] as number;
        const drained = () => steps.filter((s) => s <= clock.now).length * needed;
        assert.ok(await slots.acquire('reader', never));
        let takenAt = -1;
        slots.writing('reader', false, drained, 0, () => {
          takenAt = clock.now;
        });
        await clock.advance(arrives);
        const got = slots.acquire('waiter', never, false, { now: () => clock.now, sleep: clock.sleep });
        await clock.advance(Math.max(last, arrives) + 2 * window - clock.now);
        assert.equal(await got, true, 'the stalled write was taken over');
        assert.ok(takenAt >= last + window, `taken at ${takenAt}, under 4 s after its last step at ${last}`);
        // Sampled every 500 ms while the waiter waits: a sample after the last step within 1 s.
        assert.ok(takenAt <= Math.max(last, arrives) + window + 1_500, `taken late, at ${takenAt}`);
        assert.equal(slots.held('reader'), 0);
        assert.equal(slots.held('waiter'), 1);
      },
    ),
    { numRuns: 60 },
  );
});
