// The consensus driver's start-up catch-up against a peer that claims a height far ahead and
// answers every range with one genuine block (attack review: the node stayed in block sync, out of
// consensus, a block per request deadline; UncNode.start never returned). Counts, no timings.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ed25519PublicKey } from '@unc/core';
import { Chain } from '../../src/chain.js';
import { devGenesisJson, devValidator } from '../../src/dev.js';
import { silentLogger } from '../../src/log.js';
import { UncNode } from '../../src/node.js';
import { ChainDb } from '../../src/storage/db.js';
import { chainServer } from '../../src/sync.js';
import { MemoryNetworkHub } from './memory-network.js';

const GENESIS = devGenesisJson({ time: new Date(Date.now() - 3_600_000) });
const HEIGHT = 40n;
const dirs: string[] = [];
const dbs: ChainDb[] = [];
after(async () => {
  await Promise.all(dbs.map((d) => d.close()));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

test("a peer claiming a far height and serving one block per range costs a validator's start-up catch-up one short answer", async () => {
  const sdir = mkdtempSync(join(tmpdir(), 'unc-sync-liar-src-'));
  dirs.push(sdir);
  const sdb = await ChainDb.open(sdir);
  dbs.push(sdb);
  const source = await Chain.open(sdb, GENESIS, silentLogger);
  const v = devValidator();
  const key = { seed: v.seed, publicKey: ed25519PublicKey(v.seed) };
  const t0 = BigInt(Date.now() - 3_000_000);
  for (let i = 1n; i <= HEIGHT; i++)
    await source.proposeAndCommit([], source.nextBlockTime(t0 + i * 1000n), key, () => false);
  const server = chainServer(source);

  const hub = new MemoryNetworkHub();
  let shortAnswers = 0;
  hub.join('liar', {
    onGossip: () => 'ignore',
    status: () => ({ ...server.status(), height: source.height + 1_000_000n }),
    blocks: async (from, to) => {
      if (to > from) shortAnswers++;
      return (await server.blocks(from, from)).slice(0, 1);
    },
  });
  hub.join('honest', { onGossip: () => 'ignore', ...chainServer(source) });
  const dir = mkdtempSync(join(tmpdir(), 'unc-sync-liar-v0-'));
  dirs.push(dir);
  const node = await UncNode.start({
    dataDir: dir,
    genesis: GENESIS,
    validatorSeed: v.seed,
    rpcPort: 0,
    logger: silentLogger,
    network: async (handlers) => hub.join('v0', handlers),
  });
  try {
    // Caught up from the honest peer before consensus began: before the fix, the liar was asked
    // first in every pass and each of its one-block answers started a new one (40 short answers).
    assert.ok(node.chain.height >= HEIGHT);
    assert.equal(shortAnswers, 1);
    assert.ok(hub.member('v0')!.penalties.some((p) => p.peer === 'liar'));
  } finally {
    await node.stop();
  }
});
