/**
 * Block time on the simulator of real nodes (docs/consensus.md, "Block time"): clocks a little
 * apart cost honest validators nothing, and a proposer that stamps its blocks at the previous
 * block's time + 1 ms (the earliest core allows) cannot put a stall's time after its block.
 *
 * Before, a node started the next height a block interval after the head's block time by its own
 * clock, so a head stamped by a clock ahead of it held it back that much: with one validator's
 * clock 1.5 s ahead and another's 1.5 s behind the chain ran at 0.75 blocks/s, with one 4.5 s
 * ahead at 0.57 (now 1.00, as with every clock right).
 *
 * Before, a fresh proposal was bounded from below only by the previous block's time: a 30 s
 * partition that halted the chain ended with a block stamped 1 ms after the one before the stall
 * (validator 3 proposing first after it), and every lease it opened started, and was charged,
 * 30 s before it was opened. Now the others prevote nil on such a block and the next round's
 * proposer stamps the time it proposes.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { blockCodec, decode } from '@unc/core';
import { calmScenario, runSimulation, type Scenario } from '../../src/sim/simulator.js';
import { Bucket, bucketKey } from '../../src/storage/db.js';

const VIRTUAL_MS = 40_000;

async function rate(clockAheadMs: NonNullable<Scenario['faults']['clockAheadMs']>): Promise<number> {
  const s = calmScenario('lan', 4, VIRTUAL_MS, 1);
  s.faults = { ...s.faults, clockAheadMs };
  const r = await runSimulation(s);
  assert.deepEqual(r.violations, [], JSON.stringify(clockAheadMs));
  return r.heightAtGst / (VIRTUAL_MS / 1_000);
}

describe('sim: block time', () => {
  test('validators whose clocks are off by up to 4.5 s keep the pace of clocks that agree', async () => {
    // Each start a height a block interval after the head's block time by its own clock: before,
    // a head stamped by a clock ahead of theirs held them back that much (0.75 and 0.57 blocks/s).
    const agreed = await rate([]);
    for (const skew of [
      [
        { node: 0, ms: 1_500 },
        { node: 1, ms: -1_500 },
      ],
      [{ node: 2, ms: 4_500 }],
    ]) {
      const skewed = await rate(skew);
      assert.ok(
        skewed >= agreed,
        `${JSON.stringify(skew)}: ${skewed.toFixed(2)} blocks/s, ${agreed.toFixed(2)} with every clock right`,
      );
    }
  });

  test('a proposer stamping previous + 1 ms cannot put a 30 s stall after its block, whichever validator it is', async () => {
    const healAt = 40_000;
    for (const backdater of [0, 1, 2, 3]) {
      const s = calmScenario('lan', 4, healAt, 1);
      s.faults = {
        ...s.faults,
        // Two against two from 10 s: no quorum, the chain halts until the partition heals.
        partitions: [
          {
            at: 10_000,
            forMs: healAt - 10_000,
            groups: [
              [0, 1],
              [2, 3],
            ],
          },
        ],
        backdateBlocks: [backdater],
      };
      s.livenessHeights = 5;
      const r = await runSimulation(s, { keepStores: true });
      assert.deepEqual(r.violations, [], `validator ${backdater} backdating`);
      const store = r.stores![(backdater + 1) % 4]!;
      const timeOf = async (height: number) => {
        const key = bucketKey(
          Bucket.blockByHeight,
          new Uint8Array(new BigUint64Array([BigInt(height)]).buffer).reverse(),
        );
        const bytes = await store.get(key);
        assert.ok(bytes, `block ${height} of an honest node`);
        return decode(blockCodec, bytes).header.time;
      };
      // The last block before the stall was proposed before it began (10 s), the first after it
      // once it healed (40 s): stamped at least 30 s apart, less the drift a fresh proposal may lie
      // behind the clock (5 s).
      const before = await timeOf(r.heightAtGst);
      const after = await timeOf(r.heightAtGst + 1);
      assert.ok(
        after - before >= BigInt(healAt - 10_000 - 5_000),
        `validator ${backdater} backdating: the first block after the stall is stamped ${after - before} ms after the last before it`,
      );
    }
  });
});
