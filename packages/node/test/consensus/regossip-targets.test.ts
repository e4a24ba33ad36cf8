import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { REGOSSIP_FANOUT, regossipTargets } from '../../src/consensus/regossip-targets.js';

const ids = (n: number, prefix = 'p') => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

test('a peer connected throughout is re-sent the height within ⌈peers / 16⌉ rounds, whoever comes and goes', () => {
  // The walk is over keys, not list positions: the list's order and the peers coming and going
  // around the watched one cannot push it past the end of a cycle.
  fc.assert(
    fc.property(
      fc.array(fc.subarray(ids(60, 'churn')), { minLength: 1, maxLength: 12 }),
      fc.nat(59),
      (rounds, watchedIndex) => {
        const watched = `churn${watchedIndex}`;
        let cursor: string | null = null;
        const seen = new Set<string>();
        for (const present of rounds) {
          // The watched peer stays connected; the others come and go, in any list order.
          const peers = present.includes(watched) ? present : [watched, ...present];
          for (const p of peers) seen.add(p);
          const r = regossipTargets('self', peers, cursor);
          cursor = r.cursor;
          assert.equal(new Set(r.targets).size, r.targets.length, 'a peer twice in one round');
          assert.equal(r.targets.length, Math.min(peers.length, REGOSSIP_FANOUT));
          if (r.targets.includes(watched)) return true;
        }
        // Not reached yet: only allowed while the rounds so far could not have covered every
        // peer that was there.
        return rounds.length < Math.ceil(seen.size / REGOSSIP_FANOUT);
      },
    ),
    { numRuns: 500 },
  );
});

test('stalled nodes re-send to different peers: a message one node holds reaches 100 nodes in a few rounds', () => {
  // One shared order (the connection list, the same on every simulated node) made every node
  // re-send to the same 16 peers in the same round: those got 99 copies each, the rest none, and
  // a message held by one node spread 16 peers a round however many held it.
  const nodes = ids(100, 'node');
  const peersOf = (self: string) => nodes.filter((n) => n !== self);
  const cursors = new Map<string, string | null>();
  const copies = new Map<string, number>();
  for (const self of nodes) {
    const r = regossipTargets(self, peersOf(self), null);
    cursors.set(self, r.cursor);
    for (const p of r.targets) copies.set(p, (copies.get(p) ?? 0) + 1);
  }
  assert.ok(copies.size >= 95, `one round reached only ${copies.size} of 100 nodes`);
  assert.ok(Math.max(...copies.values()) <= 40, `a node got ${Math.max(...copies.values())} copies`);

  // After a split heals, only node0 holds a vote; every node re-sends what it holds each round.
  const holders = new Set(['node0']);
  const walk = new Map<string, string | null>();
  let rounds = 0;
  while (holders.size < nodes.length && rounds < 20) {
    rounds++;
    const reached: string[] = [];
    for (const self of nodes) {
      const r = regossipTargets(self, peersOf(self), walk.get(self) ?? null);
      walk.set(self, r.cursor);
      if (holders.has(self)) reached.push(...r.targets);
    }
    for (const p of reached) holders.add(p);
  }
  // ⌈99 / 16⌉ = 7 rounds when the holders' windows coincide; spreading as gossip, about log₁₆ 100.
  assert.ok(rounds <= 4, `${rounds} rounds until every node held the vote`);
});

test('no more than 16 peers: every peer each round, the cursor unchanged', () => {
  const peers = ids(16);
  assert.deepEqual(regossipTargets('self', peers, null), { targets: peers, cursor: null });
  assert.deepEqual(regossipTargets('self', [], 'ab'), { targets: [], cursor: 'ab' });
});
