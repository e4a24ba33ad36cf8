/**
 * A chain store on another history below the operator's trusted checkpoint (review): the node
 * refuses to start with a coded error naming the one folder to remove (the chain folder, never the
 * data folder, whose signer state keeps a validator from signing twice), and changes nothing.
 * Before, the refusal was a generic BAD_BLOCK telling the operator to "remove its data folder".
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { blockCodec, blockHash, decode, UncError } from '@unc/core';
import { Chain } from '../src/chain.js';
import { silentLogger } from '../src/log.js';
import { UncNode } from '../src/node.js';
import { ChainDb } from '../src/storage/db.js';
import { GENESIS, grow } from './sync-fakes.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

test('a chain store holding another block at the trusted checkpoint refuses the start with CHECKPOINT_CONFLICT naming the chain folder, nothing changed', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-cp-start-'));
  dirs.push(dir);
  const db = await ChainDb.open(join(dir, 'chain'));
  const chain = await Chain.open(db, GENESIS, silentLogger);
  await grow(chain, 3n);
  const stored = blockHash(decode(blockCodec, (await db.getBlockBytes(2n))!).header);
  await db.close();

  const other = { height: 2n, hash: new Uint8Array(32).fill(0xee) };
  await assert.rejects(
    UncNode.start({
      dataDir: dir,
      genesis: GENESIS,
      rpcPort: 0,
      logger: silentLogger,
      trustedCheckpoint: other,
    }).then((n) => n.stop()),
    (err: unknown) => {
      assert.ok(err instanceof UncError, String(err));
      assert.equal(err.code, 'CHECKPOINT_CONFLICT');
      assert.ok(
        err.message.includes(join(dir, 'chain')),
        `the folder to remove is not named: ${err.message}`,
      );
      assert.doesNotMatch(err.message, /data folder/);
      return true;
    },
  );
  // Nothing changed: the store opens again, its blocks as they were.
  const again = await ChainDb.open(join(dir, 'chain'));
  try {
    const reopened = await Chain.open(again, GENESIS, silentLogger);
    assert.equal(reopened.height, 3n);
    assert.deepEqual(blockHash(decode(blockCodec, (await again.getBlockBytes(2n))!).header), stored);
    // The checkpoint it holds is accepted.
    await reopened.trustCheckpoint({ height: 2n, hash: stored });
    assert.equal(reopened.trustedCheckpoint?.height, 2n);
  } finally {
    await again.close();
  }
});
