// Block sync against peers that claim heights they do not serve (attack review: a peer claiming a
// height far ahead, answering each range with one genuine block just before the deadline, held a
// node in block sync, out of consensus, for as long as it liked). Counts, not timings: how often
// the liar is asked, who is excluded, what is applied.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Chain } from '../src/chain.js';
import type { Clock } from '../src/clock.js';
import { SyncReactor } from '../src/consensus/sync-reactor.js';
import { silentLogger } from '../src/log.js';
import { chainServer, chainSyncTarget, type SyncChain, syncChain } from '../src/sync.js';
import { type FakePeer, fakeNetwork, grow, newLog, tempChains } from './sync-fakes.js';

const HEIGHT = 30n;
const chains = tempChains('unc-sync-liar-');
after(() => chains.close());
const openChain = () => chains.open();

describe('block sync against peers that claim what they do not serve', () => {
  let source: Chain;
  let honest: FakePeer;
  /** Claims a million blocks more than the chain has; answers every range with its first block. */
  let liar: FakePeer;

  before(async () => {
    source = await openChain();
    await grow(source, HEIGHT);
    const server = chainServer(source);
    honest = { claim: () => source.height, blocks: (from, to) => server.blocks(from, to) };
    liar = {
      claim: () => source.height + 1_000_000n,
      blocks: async (from) => (await server.blocks(from, from)).slice(0, 1),
    };
  });

  test('a peer answering a range it claims with one block is asked once, penalised, and sync completes from the others', async () => {
    const fresh = await openChain();
    const log = newLog();
    const result = await syncChain({
      network: fakeNetwork(source, { liar, honest }, log),
      chain: chainSyncTarget(fresh),
    });
    assert.equal(result.height, HEIGHT);
    assert.equal(result.target, HEIGHT, 'the liar no longer sets the target');
    // Before the fix it was asked first in every pass and got one block applied each time: 30 asks.
    assert.equal(log.asked.get('liar'), 1);
    assert.deepEqual(result.excluded, ['liar']);
    assert.deepEqual(result.disproved, ['liar']);
    assert.deepEqual(log.penalized, ['liar']);
  });

  test('many liars cost a few short answers each, not one per block, whatever order they sort in', async () => {
    const fresh = await openChain();
    const log = newLog();
    const server = chainServer(source);
    const shortAnswers = new Map<string, number>();
    const peers: Record<string, FakePeer> = { honest };
    for (let i = 0; i < 6; i++) {
      const id = `liar${i}`;
      peers[id] = {
        claim: liar.claim,
        blocks: async (from, to) => {
          if (to > from) shortAnswers.set(id, (shortAnswers.get(id) ?? 0) + 1);
          return (await server.blocks(from, from)).slice(0, 1);
        },
      };
    }
    const result = await syncChain({
      network: fakeNetwork(source, peers, log),
      chain: chainSyncTarget(fresh),
      batchSize: 4,
    });
    assert.equal(result.height, HEIGHT);
    // Each answers short at most the ranges it had in flight when its first short answer was
    // read (at most `parallel`, and one until it served a range in full); before the fix, one
    // short answer per block applied, however many liars.
    const total = [...shortAnswers.values()].reduce((a, b) => a + b, 0);
    for (const [id, n] of shortAnswers) assert.ok(n <= 4, `${id} answered short ${n} times`);
    assert.ok(total <= 8, `${total} short answers in all`);
    assert.equal(log.penalized.includes('honest'), false);
  });

  test('honest peers a few blocks apart (each serving exactly what it claims) are never excluded', async () => {
    const fresh = await openChain();
    const log = newLog();
    const server = chainServer(source);
    // Claims 3 blocks fewer than it has (the chain moved since it answered): it serves more than asked for.
    const lagging: FakePeer = { claim: () => HEIGHT - 3n, blocks: (f, t) => server.blocks(f, t) };
    const result = await syncChain({
      network: fakeNetwork(source, { lagging, honest }, log),
      chain: chainSyncTarget(fresh),
      batchSize: 4,
    });
    assert.equal(result.height, HEIGHT);
    assert.deepEqual(result.excluded, []);
    assert.deepEqual(log.penalized, []);
    assert.ok(
      (log.asked.get('lagging') ?? 0) > 1 && (log.asked.get('honest') ?? 0) > 1,
      'both served ranges',
    );
  });

  test('a short answer that stopped at the response cap is honest: the peer keeps serving', async () => {
    // A chain of 1,000-byte blocks behind a 2,500-byte cap: each answer holds 2 of its 4 blocks.
    let height = 0n;
    const applied: number[] = [];
    const chain: SyncChain = {
      height: () => height,
      applyBlock: async (b) => {
        applied.push(b.byteLength);
        height++;
      },
    };
    const capped: FakePeer = {
      claim: () => 20n,
      blocks: async (from, to) => {
        const n = Math.min(Number(to - from + 1n), 2);
        return Array.from({ length: n }, () => new Uint8Array(1_000));
      },
    };
    const log = newLog();
    const result = await syncChain({
      network: fakeNetwork(source, { capped }, log),
      chain,
      batchSize: 4,
      responseCapBytes: 2_500,
      maxBlockBytes: 1_000,
    });
    assert.equal(result.height, 20n);
    assert.deepEqual(result.excluded, []);
    assert.deepEqual(log.penalized, []);
    assert.equal(log.asked.get('capped'), 10);
  });

  test('a distrusted peer is not asked when a believed peer is ahead, and is asked when none is', async () => {
    const server = chainServer(source);
    const partial: FakePeer = {
      claim: () => HEIGHT - 10n,
      blocks: (f, t) => server.blocks(f, t > HEIGHT - 10n ? HEIGHT - 10n : t),
    };
    const distrusted = (peer: string) => peer === 'honest';
    const log = newLog();
    const result = await syncChain({
      network: fakeNetwork(source, { honest, partial }, log),
      chain: chainSyncTarget(await openChain()),
      batchSize: 4,
      distrusted,
    });
    assert.equal(result.height, HEIGHT - 10n);
    assert.equal(log.asked.get('partial'), 5);
    assert.equal(log.asked.get('honest'), undefined);
    // Alone, it is all there is (it may have been honest and short of its serve budget).
    const alone = await syncChain({
      network: fakeNetwork(source, { honest }, newLog()),
      chain: chainSyncTarget(await openChain()),
      distrusted,
    });
    assert.equal(alone.height, HEIGHT);
  });

  test('the sync reactor stops believing the claims of a peer its sync disproved (the stall probe asks it no more)', async () => {
    const fresh = await openChain();
    let now = 0;
    const clock: Clock = { now: () => now, schedule: () => () => {} };
    const reactor = new SyncReactor({ clock, chain: fresh, logger: silentLogger, onSynced: () => {} });
    const log = newLog();
    const network = fakeNetwork(source, { liar, honest }, log);
    assert.equal(await reactor.peerAhead(network), true);
    await reactor.catchUp(network);
    assert.equal(fresh.height, HEIGHT);
    assert.equal(log.asked.get('liar'), 1);
    // Before the fix the liar's claim made every probe report a peer ahead, and each stall a sync.
    assert.equal(await reactor.peerAhead(network), false);
    // A sync started anyway (say on signed votes) asks the liar nothing while the honest peer is ahead.
    await grow(source, HEIGHT + 5n);
    await reactor.catchUp(network);
    assert.equal(fresh.height, HEIGHT + 5n);
    assert.equal(log.asked.get('liar'), 1);
    // Forgiven after a while: a peer that was honest but short of its serve budget counts again.
    now += 11 * 60_000;
    assert.equal(await reactor.peerAhead(network), true);
  });
  test("a disproved peer's mark is on the clock's monotonic reading: a step of the wall clock neither lifts nor extends it", async () => {
    const fresh = await openChain();
    // The wall clock (`now`) steps; the monotonic reading (`elapsed`) only runs.
    let wall = 1_700_000_000_000;
    let elapsed = 0;
    const clock: Clock = { now: () => wall, monotonic: () => elapsed, schedule: () => () => {} };
    const reactor = new SyncReactor({ clock, chain: fresh, logger: silentLogger, onSynced: () => {} });
    const network = fakeNetwork(source, { liar, honest }, newLog());
    await reactor.catchUp(network);
    assert.equal(await reactor.peerAhead(network), false);
    // A step forward of an hour (NTP, an operator) lifted every mark at once before.
    wall += 60 * 60_000;
    assert.equal(await reactor.peerAhead(network), false, 'a wall-clock step forward lifted the mark');
    // A step back of a day held the marks a day longer.
    wall -= 24 * 60 * 60_000;
    elapsed += 11 * 60_000;
    assert.equal(await reactor.peerAhead(network), true, 'a wall-clock step back extended the mark');
  });
  test('the stall probe stops believing a peer claiming far whose answers came late or failed (each stall started a sync held for its deadline)', async () => {
    for (const mode of ['late', 'timeout'] as const) {
      const fresh = await openChain();
      let now = 0;
      const clock: Clock = { now: () => now, schedule: () => () => {} };
      const reactor = new SyncReactor({ clock, chain: fresh, logger: silentLogger, onSynced: () => {} });
      const log = newLog();
      const lateLiar: FakePeer = {
        claim: () => source.height + 1_000_000n,
        blocks: async (from) => {
          now += 6_010;
          if (mode === 'timeout') throw new Error('deadline');
          return (await chainServer(source).blocks(from, from)).slice(0, 1);
        },
      };
      const network = fakeNetwork(source, { liar: lateLiar, honest }, log);
      await reactor.catchUp(network);
      assert.ok(fresh.height >= HEIGHT, mode);
      // Only the liar claims more now: every stall probe (idle >= stallMs) starts a sync that holds
      // the consensus queue for the liar's 6-10 s, then probes again at once.
      assert.equal(await reactor.peerAhead(network), false, `${mode}: stall probe still believes the liar`);
    }
  });
  test('peers a sync dropped for late answers are not asked by the next sync while an honest peer is ahead', async () => {
    const fresh = await openChain();
    let now = 0;
    const clock: Clock = { now: () => now, schedule: () => () => {} };
    const reactor = new SyncReactor({ clock, chain: fresh, logger: silentLogger, onSynced: () => {} });
    const log = newLog();
    const peers: Record<string, FakePeer> = { honest };
    for (let i = 0; i < 10; i++)
      peers[`late${i}`] = {
        claim: () => source.height + 1_000_000n,
        blocks: async (from) => {
          now += 6_010;
          return (await chainServer(source).blocks(from, from)).slice(0, 1);
        },
      };
    const network = fakeNetwork(source, peers, log);
    await reactor.catchUp(network);
    assert.equal(fresh.height, source.height);
    const lateAsks = () => [...log.asked].filter(([p]) => p !== 'honest').reduce((n, [, c]) => n + c, 0);
    const first = lateAsks();
    assert.ok(first >= 10);
    // Each late answer held the pipeline's head a serve wait; before, every sync paid them again.
    await grow(source, source.height + 5n);
    await reactor.catchUp(network);
    assert.equal(fresh.height, source.height);
    assert.equal(lateAsks(), first);
  });
});
