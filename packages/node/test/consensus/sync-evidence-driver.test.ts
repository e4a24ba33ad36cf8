/**
 * The sync-conflict evidence wired through the consensus driver (review of the sync evidence):
 * the reactor-level test hands `onEvidence` to a pool of its own; here a follower's NodeCore starts
 * on a memory network, one peer serving a history certified by the same (one dev) validator that
 * does not extend the follower's head. The driver's catchUp stops sync on it, the probe asks the
 * peer for its block at the head's height, and the duplicate-vote evidence reaches the evidence
 * pool, which gossips it: the peer receives it on the `evidence` topic.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { consensusEvidenceCodec, decode, evidenceOffender, toHex } from '@unc/core';
import { clockSlices } from '../../src/admission.js';
import { Chain } from '../../src/chain.js';
import type { PrivvalStorage } from '../../src/consensus/privval-store.js';
import { devValidator } from '../../src/dev.js';
import { silentLogger } from '../../src/log.js';
import { Mempool } from '../../src/mempool.js';
import { NodeCore } from '../../src/node-core.js';
import { VirtualClock } from '../../src/sim/virtual-clock.js';
import { ChainDb, MemoryKv } from '../../src/storage/db.js';
import { chainServer } from '../../src/sync.js';
import { GENESIS, grow } from '../sync-fakes.js';
import { MemoryNetworkHub } from './memory-network.js';

const memoryChain = () => Chain.open(ChainDb.over(new MemoryKv()), GENESIS, silentLogger);

function memoryPrivval(): PrivvalStorage {
  const slot = { text: null as string | null, records: new Map<string, Uint8Array>() };
  return {
    where: 'memory:privval',
    read: () => slot.text,
    write: (t) => void (slot.text = t),
    recordWhere: (name) => `memory:privval.proposal-${name}`,
    readRecord: (name) => slot.records.get(name) ?? null,
    writeRecord: (name, bytes) => void slot.records.set(name, bytes),
    pruneRecords: () => {},
  };
}

test("the driver files a sync conflict's double signing with its evidence pool, which gossips it", async () => {
  const HEAD = 10n;
  const fork = await memoryChain();
  await grow(fork, 5n);
  await grow(fork, 20n, 500n);
  const behind = await memoryChain();
  await grow(behind, HEAD);

  const clock = new VirtualClock(Date.parse('2026-06-01T00:10:00Z'));
  const core = new NodeCore({
    chain: behind,
    mempool: new Mempool(),
    validator: null,
    privvalPath: null,
    privvalStorage: memoryPrivval(),
    blockTimeMs: 1000,
    logger: silentLogger,
    clock,
    slices: clockSlices(clock),
  });
  const hub = new MemoryNetworkHub();
  const gossiped: Uint8Array[] = [];
  const server = chainServer(fork);
  hub.join('oldKeys', {
    onGossip: (topic, data) => {
      if (topic === 'evidence') gossiped.push(data);
      return 'ignore';
    },
    status: server.status,
    blocks: (from, to) => server.blocks(from, to),
  });
  const net = hub.join('follower', core.driver.handlers());
  const started = core.driver.start(net);
  await clock.run(clock.now() + 30_000, () => gossiped.length > 0);
  await core.driver.stop();
  await started.catch(() => {});

  assert.equal(behind.height, HEAD, 'the follower left its chain');
  assert.notEqual(core.driver.syncStopped, null, 'sync did not stop on the conflict');
  assert.equal(gossiped.length, 1, 'the driver did not hand the evidence to its pool');
  const evidence = decode(consensusEvidenceCodec, gossiped[0]!);
  assert.equal(evidence.first.height, HEAD);
  assert.equal(toHex(evidenceOffender(evidence)), toHex(devValidator().publicKey));
});
