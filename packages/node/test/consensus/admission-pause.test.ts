/**
 * With `pauseDuringHeights` on, a node with peers holds admission back while a height runs here
 * (node-core.ts): from the height's start until its block is committed, or one block interval at
 * most. A validator alone never pauses (its own block building is all the chain waits for). Off
 * by default.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Chain } from '../../src/chain.js';
import { devGenesisJson, devValidatorKey } from '../../src/dev.js';
import { silentLogger } from '../../src/log.js';
import { Mempool } from '../../src/mempool.js';
import { NodeCore } from '../../src/node-core.js';
import { VirtualClock } from '../../src/sim/virtual-clock.js';
import { ChainDb, MemoryKv } from '../../src/storage/db.js';
import { chainServer } from '../../src/sync.js';
import { MemoryNetworkHub } from './memory-network.js';

const T0 = Date.parse('2026-06-01T00:00:00Z');

async function validatorOf(validators: number, clock: VirtualClock, pauseDuringHeights = true) {
  const keys = Array.from({ length: validators }, (_, i) => devValidatorKey(i));
  const genesis = devGenesisJson({
    time: new Date(T0),
    blockTimeMs: 1000,
    validators: keys.map((k) => ({ publicKey: k.publicKey, name: k.name })),
  });
  const chain = await Chain.open(ChainDb.over(new MemoryKv()), genesis, silentLogger);
  const core = new NodeCore({
    chain,
    mempool: new Mempool(),
    validator: { seed: keys[0]!.seed, publicKey: keys[0]!.publicKey },
    privvalPath: null,
    privvalStorage: {
      where: 'memory',
      read: () => null,
      write: () => {},
      recordWhere: (name) => `memory/${name}`,
      readRecord: () => null,
      writeRecord: () => {},
      pruneRecords: () => {},
    },
    blockTimeMs: 1000,
    logger: silentLogger,
    clock,
    admission: { pauseDuringHeights },
  });
  // Whether admission was paused each time this validator built a block.
  const pausedAtBuild: boolean[] = [];
  const build = chain.buildProposal.bind(chain);
  chain.buildProposal = (...args) => {
    pausedAtBuild.push(core.admission.isPaused);
    return build(...args);
  };
  return { chain, core, genesis, pausedAtBuild };
}

test('with a peer, admission is paused from the height start, and for one block interval at most', async () => {
  const clock = new VirtualClock(T0 + 1);
  // Validator 0 of two, with a peer that never votes: no height can be decided.
  const { core, genesis, pausedAtBuild } = await validatorOf(2, clock);
  const silent = await Chain.open(ChainDb.over(new MemoryKv()), genesis, silentLogger);
  const hub = new MemoryNetworkHub();
  hub.join('silent', { onGossip: () => 'ignore', ...chainServer(silent) });
  const network = hub.join('v0', core.driver.handlers());
  try {
    const started = core.driver.start(network);
    await clock.run(clock.now() + 5_000, () => core.admission.isPaused);
    await started;
    assert.equal(core.admission.isPaused, true, 'height 1 started with a peer: admission waits');
    const pausedAt = clock.now();
    await clock.run(pausedAt + 999);
    assert.equal(core.admission.isPaused, true);
    await clock.run(pausedAt + 1001);
    assert.equal(core.admission.isPaused, false, 'a height that outlives the interval lets admission go on');
    assert.ok(pausedAtBuild.every((p) => p));
  } finally {
    await core.stop();
  }
});

test('off (the default), a node with a peer does not pause admission', async () => {
  const clock = new VirtualClock(T0 + 1);
  const { core, genesis } = await validatorOf(2, clock, false);
  const silent = await Chain.open(ChainDb.over(new MemoryKv()), genesis, silentLogger);
  const hub = new MemoryNetworkHub();
  hub.join('silent', { onGossip: () => 'ignore', ...chainServer(silent) });
  const network = hub.join('v0', core.driver.handlers());
  try {
    const started = core.driver.start(network);
    let everPaused = false;
    await clock.run(clock.now() + 3_000, () => {
      everPaused ||= core.admission.isPaused;
      return false;
    });
    await started;
    assert.equal(everPaused, false);
  } finally {
    await core.stop();
  }
});

test('a validator alone never pauses admission, and its heights go on', async () => {
  const clock = new VirtualClock(T0 + 1);
  const { chain, core, pausedAtBuild } = await validatorOf(1, clock);
  try {
    await core.driver.start(null);
    await clock.run(clock.now() + 3_500, () => chain.height >= 3n);
    assert.ok(chain.height >= 3n, `height ${chain.height}`);
    assert.ok(pausedAtBuild.length >= 3);
    assert.deepEqual(
      pausedAtBuild.filter((p) => p),
      [],
    );
    assert.equal(core.admission.isPaused, false);
  } finally {
    await core.stop();
  }
});
