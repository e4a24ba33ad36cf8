/**
 * Connection churn on the simulator of real nodes: a newly connected peer gets the height's
 * proposals and votes sent to it alone, at most once per block interval, and connections bring
 * the height's re-broadcast to every peer forward at most once per block interval in all. Before, each connection made a node send everything it held to all its peers: a
 * split of 16 validators that heals 16 times sent 504,466 messages where the calm run of the same
 * seed sent 7,110 (71 times as many), and a healing 100-validator split (sweep seed 1239: about
 * 50 connections per node, each re-sending to 99 peers) ran the simulator out of memory.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { calmScenario, runSimulation, type Scenario } from '../../src/sim/simulator.js';

const VALIDATORS = 16;
const VIRTUAL_MS = 12_000;

function flapping(): Scenario {
  const s = calmScenario('lan', VALIDATORS, VIRTUAL_MS, 7);
  const all = [...Array(VALIDATORS).keys()];
  const groups = [all.slice(0, VALIDATORS / 2), all.slice(VALIDATORS / 2)];
  // Split in halves for 250 ms every 500 ms: each heal connects 64 pairs at once, and each peer
  // reconnects twice per block interval (the second catch-up within the interval is refused).
  s.faults = {
    loss: 0,
    crashes: [],
    partitions: Array.from({ length: 16 }, (_, i) => ({ at: 1_000 + i * 500, forMs: 250, groups })),
  };
  s.faultsEndMs = 9_500;
  return s;
}

test('a split that heals again and again costs the messages of its catch-ups, not a re-broadcast per connection', async () => {
  const calm = await runSimulation(calmScenario('lan', VALIDATORS, VIRTUAL_MS, 7));
  const churn = await runSimulation(flapping());
  assert.deepEqual(calm.violations, []);
  assert.deepEqual(churn.violations, [], 'the flapping network stays safe and live');
  assert.ok(Math.min(...churn.heights) >= 5, `heights ${churn.heights.join('/')}`);
  // Now 18,514 (×2.6): the catch-ups (16 heals × 64 pairs × 2 directions × one height's
  // messages, fewer with the per-peer interval) and at most one re-broadcast per node and block
  // interval. The broadcast per connection sent 504,466 (×71).
  const ratio = churn.messages.sent / calm.messages.sent;
  assert.ok(
    ratio < 3,
    `${churn.messages.sent} messages with churn vs ${calm.messages.sent} calm (×${ratio.toFixed(1)})`,
  );
});
