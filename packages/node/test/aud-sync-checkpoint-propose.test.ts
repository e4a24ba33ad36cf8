// The trusted checkpoint is a rule of this node's consensus too (review of audsync): no block at its
// height but the checkpoint is accepted. Others' proposals were checked (Chain.checkBeforeExecution)
// but this validator's own were not: a validator whose checkpoint was wrong or above the network's
// head proposed, voted for and committed a block there, and its next start was then refused
// (Chain.trustCheckpoint: "this chain store followed another history").
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { devGenesisJson, devValidator } from '../src/dev.js';
import { type LogFields, type Logger, silentLogger } from '../src/log.js';
import { UncNode } from '../src/node.js';

test("a validator does not propose at its trusted checkpoint's height (its own block is not the checkpoint)", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-aud-cp-propose-'));
  const CHECKPOINT = 3n;
  let refused = false;
  const logger: Logger = {
    ...silentLogger,
    warn: (msg: string, _f?: LogFields) => {
      if (msg.includes('trusted checkpoint')) refused = true;
    },
    child: () => logger,
  };
  const node = await UncNode.start({
    dataDir: dir,
    genesis: devGenesisJson(),
    validatorSeed: devValidator().seed,
    rpcPort: 0,
    blockTimeMs: 20,
    logger,
    // A hash no block of this chain has: the sole validator's own block at 3 cannot be it.
    trustedCheckpoint: { height: CHECKPOINT, hash: new Uint8Array(32).fill(0xee) },
  });
  try {
    // Either it commits a block at the checkpoint's height (the bug) or says it will not propose.
    while (node.chain.height < CHECKPOINT && !refused) await new Promise((r) => setTimeout(r, 20));
    assert.ok(
      node.chain.height < CHECKPOINT,
      `committed its own block ${node.chain.height} past the checkpoint`,
    );
  } finally {
    await node.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
