// Block sync against an honest server's own serve budget (attack review of the sync fix): a
// server whose per-peer byte budget is one full answer a second answered the other ranges of an
// honest syncer short, at once, and the syncer took it for a liar (dropped, penalised,
// distrusted). Also: a failed request does not distrust its peer, and distrusted peers are asked
// when the trusted ones were dropped short of their claims. Counts and outcomes, no timings: the
// server's waits run on a stepping clock (time moves only when something sleeps).
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { Chain } from '../src/chain.js';
import { type Clock, sleep } from '../src/clock.js';
import {
  BLOCK_SERVE_MAX_WAIT_MS,
  BlockAnswerBudget,
  DEFAULT_BLOCK_SERVE_LIMITS,
  ServeBudget,
} from '../src/p2p/serve-budget.js';
import type { BlockTake } from '../src/p2p/types.js';
import { chainServer, chainSyncTarget, syncChain } from '../src/sync.js';
import { type FakePeer, fakeNetwork, grow, newLog, tempChains } from './sync-fakes.js';

const chains = tempChains('unc-sync-budget-');
after(() => chains.close());
const openChain = () => chains.open();

/** Time that moves only when a timer is due: each timer, fired on the next turn, moves it to its time. */
class SteppingClock implements Clock {
  private t = 0;
  now(): number {
    return this.t;
  }
  schedule(delayMs: number, fn: () => void) {
    const at = this.t + Math.max(0, delayMs);
    setImmediate(() => {
      if (this.t < at) this.t = at;
      fn();
    });
    return () => {};
  }
}

/**
 * `/blocks/1` as libp2p.ts serves it (BlockAnswerBudget over the chain server, every block sent),
 * with the default limits scaled so that the response cap and the per-peer byte budget are both
 * `cap` (their ratio in the defaults: 64 MiB each).
 */
function budgetedServer(source: Chain, cap: number, maxBlock: number, clock: Clock) {
  const server = chainServer(source);
  const scale = cap / DEFAULT_BLOCK_SERVE_LIMITS.maxBytesPerPeer;
  const budget = new ServeBudget(
    {
      maxBytesPerPeer: cap,
      maxBytesInAll: Math.ceil(DEFAULT_BLOCK_SERVE_LIMITS.maxBytesInAll * scale),
      reservedBytesForRelaying: Math.ceil(DEFAULT_BLOCK_SERVE_LIMITS.reservedBytesForRelaying * scale),
    },
    DEFAULT_BLOCK_SERVE_LIMITS,
    'blockServe',
  );
  const answered: number[] = [];
  const peer: FakePeer = {
    claim: () => source.height,
    blocks: async (from, to) => {
      const answer = new BlockAnswerBudget(budget, {
        peer: 'me',
        asked: Number(to - from + 1n),
        capBytes: cap,
        maxBlockBytes: maxBlock,
        relaying: false,
        now: () => clock.now(),
        sleep: (ms) => sleep(clock, ms),
      });
      // As the network does: each block taken is sent, and so charged to the overall window.
      const take: BlockTake = async (b) => {
        const ok = await answer.take(b);
        if (ok) answer.sent(b);
        return ok;
      };
      take.room = () => answer.room();
      const out = (await answer.ids()) ? await server.blocks(from, to, take) : [];
      answer.end();
      answered.push(out.length);
      return out;
    },
  };
  return { peer, answered };
}

describe('block sync and the server’s serve budget', () => {
  for (const [name, opts] of [
    ['one range re-asked at once (the default batch)', {}],
    ['four ranges in flight', { parallel: 4, batchSize: 8 }],
  ] as const)
    test(`an honest server at its per-peer budget is neither penalised nor distrusted: ${name}`, async () => {
      const source = await openChain();
      await grow(source, 40n);
      const sizes: number[] = [];
      for (let h = 1n; h <= 40n; h++) sizes.push((await source.db.getBlockBytes(h))!.byteLength);
      const largest = Math.max(...sizes);
      // The defaults: cap 64 MiB, per-peer budget 64 MiB a second, largest block 9 MiB (cap / 7).
      const cap = largest * 7;
      const clock = new SteppingClock();
      const { peer, answered } = budgetedServer(source, cap, largest, clock);
      const fresh = await openChain();
      const log = newLog();
      const result = await syncChain({
        network: fakeNetwork(source, { honest: peer }, log),
        chain: chainSyncTarget(fresh),
        responseCapBytes: cap,
        maxBlockBytes: largest,
        clock,
        ...opts,
      });
      assert.equal(result.height, 40n, `sync completes from the one honest peer (answers ${answered})`);
      assert.deepEqual(log.penalized, []);
      assert.deepEqual(result.disproved, []);
      assert.deepEqual(result.excluded, []);
    });

  test('a short answer that came after the longest budget wait drops its peer from the sync only', async () => {
    const source = await openChain();
    await grow(source, 20n);
    const server = chainServer(source);
    const clock = new SteppingClock();
    const peers: Record<string, FakePeer> = {
      // A busy honest server (or a liar at the pace of a timeout): one block, after the wait.
      busy: {
        claim: () => source.height,
        blocks: async (f, t) => {
          await sleep(clock, BLOCK_SERVE_MAX_WAIT_MS);
          return (await server.blocks(f, t)).slice(0, 1);
        },
      },
      other: { claim: () => source.height, blocks: (f, t) => server.blocks(f, t) },
    };
    const fresh = await openChain();
    const log = newLog();
    const result = await syncChain({
      network: fakeNetwork(source, peers, log),
      chain: chainSyncTarget(fresh),
      batchSize: 4,
      clock,
    });
    assert.equal(result.height, 20n);
    assert.deepEqual(result.excluded, ['busy']);
    assert.deepEqual(result.disproved, []);
    assert.deepEqual(log.penalized, []);
  });

  test('a peer whose request failed (a timeout) is dropped from the sync but not distrusted', async () => {
    const source = await openChain();
    await grow(source, 20n);
    const server = chainServer(source);
    let failures = 0;
    const peers: Record<string, FakePeer> = {
      slow: {
        claim: () => source.height,
        blocks: async () => {
          failures++;
          throw new Error('timeout: no complete answer within 10000 ms');
        },
      },
      other: { claim: () => source.height, blocks: (f, t) => server.blocks(f, t) },
    };
    const fresh = await openChain();
    const log = newLog();
    const result = await syncChain({
      network: fakeNetwork(source, peers, log),
      chain: chainSyncTarget(fresh),
      batchSize: 4,
    });
    assert.equal(result.height, 20n);
    assert.ok(failures >= 1, 'the slow peer was asked');
    assert.deepEqual(result.excluded, ['slow']);
    assert.deepEqual(result.disproved, [], 'a failed request proves nothing about the claim');
    assert.deepEqual(log.penalized, []);
  });

  test('distrusted peers are asked once the trusted peers ahead were dropped short of their claims', async () => {
    const source = await openChain();
    await grow(source, 20n);
    const server = chainServer(source);
    const peers: Record<string, FakePeer> = {
      // Trusted, claims the chain, serves nothing.
      empty: { claim: () => source.height, blocks: async () => [] },
      // Distrusted (an earlier sync caught it short), honest now.
      once: { claim: () => source.height, blocks: (f, t) => server.blocks(f, t) },
    };
    const fresh = await openChain();
    const log = newLog();
    const result = await syncChain({
      network: fakeNetwork(source, peers, log),
      chain: chainSyncTarget(fresh),
      distrusted: (peer) => peer === 'once',
    });
    assert.equal(result.height, 20n, 'the distrusted peer served the chain');
    assert.deepEqual(result.disproved, ['empty']);
  });

  test('distrusted peers are not asked once the trusted peers’ heights are reached', async () => {
    const source = await openChain();
    await grow(source, 20n);
    const server = chainServer(source);
    const peers: Record<string, FakePeer> = {
      honest: { claim: () => source.height, blocks: (f, t) => server.blocks(f, t) },
      liar: {
        claim: () => source.height + 1_000n,
        blocks: async (f, t) => (await server.blocks(f, t)).slice(0, 1),
      },
    };
    const fresh = await openChain();
    const log = newLog();
    const result = await syncChain({
      network: fakeNetwork(source, peers, log),
      chain: chainSyncTarget(fresh),
      distrusted: (peer) => peer === 'liar',
    });
    assert.equal(result.height, 20n);
    assert.equal(log.asked.get('liar') ?? 0, 0);
  });
});
