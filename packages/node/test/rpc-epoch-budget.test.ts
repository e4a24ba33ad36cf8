/**
 * `unc_getEpoch`'s budget so far follows the consensus rule (docs/security-audit-time.md T2): an
 * epoch's own span of the schedule, E(min(head, its end)) − E(its start), never emission from before
 * it (the time before block 1, or an earlier epoch nobody earned in).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  cumulativeEmission,
  type EpochRecord,
  genesisStateWrites,
  getEmission,
  getSupply,
  MemoryState,
  putEpochRecord,
  StateOverlay,
} from '@unc/core';
import { createApi } from '../src/api.js';
import { devGenesis } from '../src/dev.js';
import { silentLogger } from '../src/log.js';

const WEEK = 7n * 86_400_000n;

function record(epoch: bigint, startTime: bigint, totalWeight: bigint, final: boolean): EpochRecord {
  return {
    epoch,
    seed: new Uint8Array(32),
    startHeight: epoch * 20n + 1n,
    startTime,
    totalWeight,
    final,
    budget: 0n,
    remainingBudget: 0n,
    remainingWeight: 0n,
  };
}

describe('unc_getEpoch budget so far', () => {
  test("a chain launched a week after its genesisTime: the current epoch's budget so far is its own span", async () => {
    const g = devGenesis({ epochBlocks: 20, time: new Date('2026-01-01T00:00:00Z') });
    const state = new MemoryState();
    state.apply(genesisStateWrites(g));
    const t0 = g.genesisTime + WEEK; // block 1
    const t1 = t0 + 20_000n; // epoch 1's first block
    const head = { height: 30n, time: t1 + 10_000n };
    const overlay = new StateOverlay(state);
    // Epoch 0 final without weight (nothing allotted), epoch 1 under way with weight.
    putEpochRecord(overlay, record(0n, t0, 0n, true));
    putEpochRecord(overlay, record(1n, t1, 5n, false));
    state.apply(overlay.changes());
    const chain = { state, height: head.height, head: { header: { time: head.time } } };
    const api = createApi({
      chain,
      mempool: { size: 0, bytes: 0, has: () => false, dropped: () => null },
      validator: null,
      network: null,
      driver: undefined,
      metrics: { render: () => '' },
      logger: silentLogger,
      submit: () => ({ replaced: false }),
      submitMany: async () => [],
      recentRejection: () => null,
      watchTx: () => () => {},
      watchBlocks: () => () => {},
    } as never);
    const e = getEmission(state);
    const E = (t: bigint) =>
      cumulativeEmission(getSupply(state).miningReserve, e.halvingPeriodMs, t - e.genesisTime);
    const got = (await api.methods.unc_getEpoch!([1], { transport: 'http' })) as { budget: string };
    assert.equal(BigInt(got.budget), E(head.time) - E(t1), '10 s of emission, not the week before block 1');
    assert.ok(BigInt(got.budget) * 1000n < E(t0));
  });
});
