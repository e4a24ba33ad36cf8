// Block sync against fresh peer ids that claim a far height and answer late or never (attack review
// of the sync fix: each such sybil held the pipeline's head for a full serve wait, 6 s, before its
// range was asked again; ten of them cost a syncing node a minute). Hedged requests: a range with
// no block after HEDGE_AFTER_MS is asked of another peer too. Time is a virtual clock (time moves
// only from one timer to the next), the chain an in-memory counter: counts of simulated
// milliseconds, no wall-clock timing.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Chain } from '../src/chain.js';
import { BLOCK_SERVE_MAX_WAIT_MS } from '../src/p2p/serve-budget.js';
import { VirtualClock } from '../src/sim/virtual-clock.js';
import { HEDGE_AFTER_MS, type SyncChain, type SyncOptions, type SyncResult, syncChain } from '../src/sync.js';
import { type FakePeer, fakeNetwork, type Log, newLog, tempChains } from './sync-fakes.js';

const HEIGHT = 200n;
const MiB = 1024 * 1024;
const chains = tempChains('unc-sync-hedge-');
after(() => chains.close());

/** A chain that takes any block: what is measured is who was asked and when, not the blocks. */
function counterChain(): SyncChain & { blocks: number } {
  const c = {
    blocks: 0,
    height: () => BigInt(c.blocks),
    applyBlock: async () => {
      c.blocks++;
    },
  };
  return c;
}

const blocksOf = (from: bigint, to: bigint) =>
  Array.from({ length: Number(to - from + 1n) }, () => new Uint8Array(100));

/** Requests of each range start in flight, and the most there ever were (per range and in all). */
function inFlight() {
  const now = new Map<bigint, number>();
  let all = 0;
  const most = { perRange: 0, all: 0 };
  return {
    most,
    /** Counts the request until `answer` settles or `signal` cancels it, whichever is first. */
    track<T>(from: bigint, signal: AbortSignal | undefined, answer: Promise<T>): Promise<T> {
      now.set(from, (now.get(from) ?? 0) + 1);
      all++;
      most.perRange = Math.max(most.perRange, now.get(from)!);
      most.all = Math.max(most.all, all);
      let open = true;
      const done = () => {
        if (!open) return;
        open = false;
        now.set(from, now.get(from)! - 1);
        all--;
      };
      signal?.addEventListener('abort', done, { once: true });
      return answer.finally(done);
    },
  };
}

/**
 * Runs a sync (16 heights a request, and `options`) on the virtual clock until it ends; `ms`: the
 * simulated time it took.
 */
async function run(
  source: Chain,
  peers: Record<string, FakePeer>,
  clock: VirtualClock,
  options: Partial<SyncOptions> = {},
): Promise<{ result: SyncResult; ms: number; log: Log; chain: ReturnType<typeof counterChain> }> {
  const log = newLog();
  const chain = counterChain();
  const start = clock.now();
  let end: number | null = null;
  const sync = syncChain({
    network: fakeNetwork(source, peers, log),
    chain,
    clock,
    batchSize: 16,
    ...options,
  }).finally(() => {
    end = clock.now();
  });
  await clock.run(start + 10 * 60_000, () => end !== null);
  const result = await sync;
  return { result, ms: end! - start, log, chain };
}

/** `first` answers 16 blocks as `answer` says; `other` serves at once, counting its asks. */
async function twoPeers(source: Chain, first: FakePeer['blocks'], clock: VirtualClock) {
  let others = 0;
  const peers: Record<string, FakePeer> = {
    first: { claim: () => 16n, blocks: first },
    other: {
      claim: () => 16n,
      blocks: async (from, to) => {
        others++;
        return blocksOf(from, to);
      },
    },
  };
  const { result, ms } = await run(source, peers, clock, { parallel: 1 });
  return { result, others, ms };
}

describe('hedged block requests', () => {
  let source: Chain;
  before(async () => {
    source = await chains.open();
  });

  test('ten silent sybil ids cost a sync about a hedge delay each, not a serve wait each', async () => {
    const clock = new VirtualClock(0);
    const flight = inFlight();
    const cancelled: string[] = [];
    const peers: Record<string, FakePeer> = {
      honest: {
        claim: () => HEIGHT,
        blocks: async (from, to, o) => flight.track(from, o?.signal, Promise.resolve(blocksOf(from, to))),
      },
    };
    for (let i = 0; i < 10; i++) {
      const id = `sybil${i}`;
      // Claims far more than anyone has; answers one block just past the longest serve wait (a
      // short answer then may be an honest busy server's, so it is not blamed: sync.ts).
      peers[id] = {
        claim: () => HEIGHT + 1_000_000n,
        blocks: (from, _to, o) => {
          o?.signal?.addEventListener('abort', () => cancelled.push(id), { once: true });
          return flight.track(
            from,
            o?.signal,
            new Promise((resolve) =>
              clock.schedule(BLOCK_SERVE_MAX_WAIT_MS + 10, () => resolve(blocksOf(from, from))),
            ),
          );
        },
      };
    }
    const { result, ms, log, chain } = await run(source, peers, clock);
    assert.equal(chain.blocks, Number(HEIGHT));
    assert.equal(result.height, HEIGHT);
    // Before: each sybil at the pipeline’s head held it a serve wait (24 s here, four at a time).
    assert.ok(ms <= 10 * HEDGE_AFTER_MS, `sync took ${ms} ms of simulated time`);
    // No one is blamed: a peer slower than another may be an honest, busy server.
    assert.deepEqual(log.penalized, []);
    assert.deepEqual(result.disproved, []);
    assert.equal(result.excluded.includes('honest'), false);
    // Bounded: two requests at most per range, and one hedge over the pipeline's four.
    assert.ok(flight.most.perRange <= 2, `${flight.most.perRange} requests for one range`);
    assert.ok(flight.most.all <= 5, `${flight.most.all} requests in flight`);
    assert.ok(cancelled.length > 0, 'the hedged-out requests were cancelled');
  });

  test('a slow but honest peer beaten by a hedge is neither penalised nor disproved, and the faster answer is taken', async () => {
    const clock = new VirtualClock(0);
    const asked: string[] = [];
    // Sorted first (it claims more) so it gets the first range; answers each range in full, 3 s late.
    const slow: FakePeer = {
      claim: () => HEIGHT + 10n,
      blocks: (from, to) => {
        asked.push(`slow ${from}`);
        return new Promise((resolve) =>
          clock.schedule(3 * HEDGE_AFTER_MS, () =>
            resolve(blocksOf(from, to < HEIGHT + 10n ? to : HEIGHT + 10n)),
          ),
        );
      },
    };
    const fast: FakePeer = { claim: () => HEIGHT, blocks: async (from, to) => blocksOf(from, to) };
    const { result, ms, log } = await run(source, { slow, fast }, clock);
    assert.ok(result.height >= HEIGHT);
    assert.deepEqual(log.penalized, []);
    assert.deepEqual(result.disproved, []);
    assert.equal(asked[0], 'slow 1');
    // Before: the whole sync waited on the slow peer's 3 s for every range it had.
    assert.ok(ms < 3 * HEDGE_AFTER_MS, `sync took ${ms} ms`);
  });

  test('honest peers beaten by a faster node claiming one height more are reported slower, not excluded', async () => {
    // Attack review: a fast node claiming height + 1 is sorted first and wins every hedge race;
    // the honest peers it beat were reported in `excluded`, and sync-reactor.ts then ignored
    // their claims and asked them last for ten minutes, leaving the attacker the only server.
    const clock = new VirtualClock(0);
    // Each sends its first MiB at once (an honest rate), then stalls (its budget spent) till 2 s.
    const late: FakePeer['blocks'] = (from, to, o) =>
      new Promise<Uint8Array[]>((resolve) => {
        o?.onBytes?.(MiB);
        clock.schedule(2 * HEDGE_AFTER_MS, () => resolve(blocksOf(from, to < HEIGHT ? to : HEIGHT)));
      });
    const peers: Record<string, FakePeer> = {
      attacker: { claim: () => HEIGHT + 1n, blocks: async (from, to) => blocksOf(from, to) },
      honest1: { claim: () => HEIGHT, blocks: late },
      honest2: { claim: () => HEIGHT, blocks: late },
    };
    const { result, log } = await run(source, peers, clock);
    assert.ok(result.height >= HEIGHT);
    assert.deepEqual(log.penalized, []);
    assert.deepEqual(result.disproved, []);
    assert.deepEqual(result.excluded, [], 'nothing held against them past this sync');
    assert.deepEqual(result.slower.sort(), ['honest1', 'honest2'], 'dropped from this sync only');
  });

  test('a peer that loses the race late or silent is excluded, not slower: only a fair answer hedged early is slower', async () => {
    // Attack review: every peer beaten by a hedge was reported `slower`, never excluded. A sybil
    // sending junk at 129 KiB/s (just above the hedge floor) for 8.9 s then going silent was
    // hedged at 9.9 s and so held the pipeline's head ~9.9 s in every sync; a silent one ~1 s.
    const trickleThenSilent: FakePeer['blocks'] = (from, to, o) =>
      new Promise((resolve) => {
        for (let t = 100; t <= 8_900; t += 100) clock.schedule(t, () => o?.onBytes?.((129 * 1024) / 10));
        clock.schedule(60_000, () => resolve(blocksOf(from, to)));
      });
    const silent: FakePeer['blocks'] = (from, to) =>
      new Promise((resolve) => clock.schedule(3 * HEDGE_AFTER_MS, () => resolve(blocksOf(from, to))));
    // An honest server: a MiB at once, then its budget spent till 3 s.
    const fair: FakePeer['blocks'] = (from, to, o) =>
      new Promise((resolve) => {
        o?.onBytes?.(MiB);
        clock.schedule(3 * HEDGE_AFTER_MS, () => resolve(blocksOf(from, to)));
      });
    let clock: VirtualClock;
    for (const [name, first, slower] of [
      ['trickle then silent', trickleThenSilent, false],
      ['silent', silent, false],
      ['fair', fair, true],
    ] as const) {
      clock = new VirtualClock(0);
      const { result, others, ms } = await twoPeers(source, first, clock);
      assert.equal(result.height, 16n, name);
      assert.equal(others, 1, `${name}: hedged`);
      // Before: 'first' reported slower (not held against it past the sync) in all three.
      assert.deepEqual(result.slower, slower ? ['first'] : [], `${name}: ${ms} ms`);
      assert.deepEqual(result.excluded, slower ? [] : ['first'], name);
      assert.deepEqual(result.disproved, [], name);
    }
  });

  test('an answer whose blocks keep coming is not hedged (a large honest answer on a slow link)', async () => {
    const clock = new VirtualClock(0);
    // A 1 MiB block every half hedge delay: 8 hedge delays for the whole range.
    const { result, others } = await twoPeers(
      source,
      (from, to, o) =>
        new Promise((resolve) => {
          for (let i = 1; i <= 16; i++)
            clock.schedule((i * HEDGE_AFTER_MS) / 2, () => {
              o?.onBytes?.(MiB);
              o?.onBlock?.();
            });
          clock.schedule(8 * HEDGE_AFTER_MS, () => resolve(blocksOf(from, to)));
        }),
      clock,
    );
    assert.equal(result.height, 16n);
    assert.equal(others, 0);
    assert.deepEqual(result.excluded, []);
  });

  test('an answer that sends one block and stalls is hedged all the same', async () => {
    const clock = new VirtualClock(0);
    const { result, others, ms } = await twoPeers(
      source,
      (from, to, o) =>
        new Promise((resolve) => {
          o?.onBytes?.(MiB);
          o?.onBlock?.();
          clock.schedule(9 * HEDGE_AFTER_MS, () => resolve(blocksOf(from, to)));
        }),
      clock,
    );
    assert.equal(result.height, 16n);
    assert.equal(others, 1);
    assert.ok(ms <= 2 * HEDGE_AFTER_MS, `sync took ${ms} ms`);
    assert.deepEqual(result.disproved, []);
  });
});

describe('hedged block requests, progress in bytes', () => {
  let source: Chain;
  before(async () => {
    source = await chains.open();
  });

  test('a peer sending 9 MiB blocks on a modest link (1.5 s a block) is not hedged while its bytes keep coming', async () => {
    // Attack review: progress was counted in whole blocks against a fixed hedge delay, so a peer
    // whose blocks each took longer than it to arrive was hedged on every range (and, beaten by the
    // hedge, dropped from the sync), though it was sending all the while.
    const clock = new VirtualClock(0);
    // 6 MiB a second, in 1 MiB chunks; a block every 9 of them.
    const { result, others } = await twoPeers(
      source,
      (from, to, o) =>
        new Promise((resolve) => {
          for (let i = 1; i <= 16 * 9; i++)
            clock.schedule((i * HEDGE_AFTER_MS) / 6, () => {
              o?.onBytes?.(MiB);
              if (i % 9 === 0) o?.onBlock?.();
            });
          clock.schedule(24 * HEDGE_AFTER_MS, () => resolve(blocksOf(from, to)));
        }),
      clock,
    );
    assert.equal(result.height, 16n);
    assert.equal(others, 0, 'not hedged');
    assert.deepEqual(result.excluded, []);
    assert.deepEqual(result.slower, []);
  });

  test('a peer trickling a tiny block every 0.9 s is hedged, not waited for to the request deadline', async () => {
    // Attack review: never silent for a hedge delay, a peer sending a 100-byte block every 0.9 s
    // held the pipeline's head until its request failed, a few hundred bytes for ten seconds.
    const clock = new VirtualClock(0);
    const { result, others, ms } = await twoPeers(
      source,
      (from, to, o) =>
        new Promise((resolve) => {
          for (let i = 1; i <= 16; i++)
            clock.schedule(i * 0.9 * HEDGE_AFTER_MS, () => {
              o?.onBytes?.(100);
              o?.onBlock?.();
            });
          clock.schedule(16 * 0.9 * HEDGE_AFTER_MS, () => resolve(blocksOf(from, to)));
        }),
      clock,
    );
    assert.equal(result.height, 16n);
    assert.equal(others, 1, 'hedged');
    assert.ok(ms <= 2 * HEDGE_AFTER_MS, `sync took ${ms} ms`);
    assert.deepEqual(result.disproved, []);
  });
});

describe('hedged block requests to busy servers', () => {
  let source: Chain;
  before(async () => {
    source = await chains.open();
  });

  test('a peer that served a range in full is not dropped from the sync for being silent a hedge delay as a hedge', async () => {
    // Review of the hedging: a silent hedge was dropped from the sync (and then, in sync-reactor.ts,
    // its claims ignored for ten minutes). An honest server whose budget is spent waits up to a
    // serve wait before its first block, so a node whose servers were all busy dropped every peer
    // it hedged to, one a second, though each would have served the range in full.
    const clock = new VirtualClock(0);
    const late = (ms: number, from: bigint, to: bigint) =>
      new Promise<Uint8Array[]>((resolve) => clock.schedule(ms, () => resolve(blocksOf(from, to))));
    let calls = 0;
    const peers: Record<string, FakePeer> = {
      // Serves its first range at once, then is busy: 2.5 s before each answer (all in full).
      busy: {
        claim: () => 48n,
        blocks: (from, to) => late(calls++ === 0 ? 0 : 2.5 * HEDGE_AFTER_MS, from, to),
      },
      slow1: { claim: () => 48n, blocks: (from, to) => late(3 * HEDGE_AFTER_MS, from, to) },
      slow2: { claim: () => 48n, blocks: (from, to) => late(3 * HEDGE_AFTER_MS, from, to) },
    };
    const { result, log } = await run(source, peers, clock, { parallel: 1 });
    assert.equal(result.height, 48n);
    assert.ok(calls > 1, 'the busy peer was asked again (as a hedge)');
    assert.equal(result.excluded.includes('busy'), false, `excluded: ${result.excluded}`);
    assert.deepEqual(log.penalized, []);
  });
});

describe('hedged block requests, the answer not taken', () => {
  let source: Chain;
  before(async () => {
    source = await chains.open();
  });

  test('the request beaten by a hedge is cancelled (its stream and the server it holds are released)', async () => {
    // Review: dropping the cancel of the slower request left every test green, though its stream
    // (and the server's budget wait behind it) was then held to the request deadline.
    const clock = new VirtualClock(0);
    const open = new Set<bigint>();
    let cancelled = 0;
    const peers: Record<string, FakePeer> = {
      slow: {
        claim: () => 17n,
        blocks: (from, to, o) => {
          open.add(from);
          o?.signal?.addEventListener('abort', () => {
            cancelled++;
            open.delete(from);
          });
          return new Promise((resolve) =>
            clock.schedule(9 * HEDGE_AFTER_MS, () => resolve(blocksOf(from, to))),
          );
        },
      },
      fast: { claim: () => 16n, blocks: async (from, to) => blocksOf(from, to) },
    };
    const { result } = await run(source, peers, clock, { parallel: 1 });
    assert.equal(result.height, 16n);
    assert.ok(cancelled >= 1, 'the slower request was cancelled');
    assert.deepEqual([...open], [], 'no request left open');
  });
});

describe('block sync, requests left in flight', () => {
  let source: Chain;
  before(async () => {
    source = await chains.open();
  });

  for (const ending of ['aborted', 'moved'] as const)
    test(`the ranges still in flight are cancelled when the pass ends (${ending})`, async () => {
      // Review: a pass that ended (the sync aborted, or something else committed) left its other
      // requests running, each holding a stream of its server to the request deadline.
      const clock = new VirtualClock(0);
      const open = new Set<bigint>();
      const asked: bigint[] = [];
      const peers: Record<string, FakePeer> = {
        p: {
          claim: () => 64n,
          blocks: (from, to, o) => {
            // Served: the first range (so that three more are asked: the peer is proven), and
            // (moved) the second, then the next pass's ranges, from 26.
            const served =
              from === 1n ||
              (ending === 'moved' && (from === 17n || (from >= 26n && (from - 26n) % 16n === 0n)));
            if (served) return Promise.resolve(blocksOf(from, to));
            open.add(from);
            asked.push(from);
            o?.signal?.addEventListener('abort', () => open.delete(from), { once: true });
            // Answered past the test's end: only a cancel closes it.
            return new Promise(() => {});
          },
        },
      };
      const stop = new AbortController();
      const chain = counterChain();
      const apply = chain.applyBlock;
      chain.applyBlock = async (b) => {
        await apply(b);
        if (chain.blocks === (ending === 'aborted' ? 8 : 24)) {
          if (ending === 'aborted') stop.abort(new Error('node stopping'));
          // Consensus committed a block meanwhile (block 25 of the answer no longer follows):
          // the next pass asks from 26, and is served.
          else chain.blocks++;
        }
      };
      let end: number | null = null;
      const sync = syncChain({
        network: fakeNetwork(source, peers, newLog()),
        chain,
        clock,
        batchSize: 16,
        signal: stop.signal,
      })
        .catch(() => undefined)
        .finally(() => {
          end = clock.now();
        });
      await clock.run(60_000, () => end !== null);
      await sync;
      if (ending === 'moved') assert.equal(chain.blocks, 64);
      // In flight when the sync was aborted, or when the pass ended (moved).
      assert.deepEqual(asked, ending === 'aborted' ? [17n, 33n, 49n] : [33n, 49n]);
      assert.deepEqual([...open], [], 'no request left open');
    });
});
