/**
 * A validator refuses to start with a fresh signer when its signer state file is missing and the
 * chain store's last commits hold its precommits (consensus/signer-guard.ts): before, the driver
 * started a signer that remembered nothing, so a node that crashed during a height and lost
 * privval.json could sign a second, conflicting vote at it.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ed25519PublicKey } from '@unc/core';
import { until } from '@unc/test-utils';
import { Chain, type ValidatorKey } from '../../src/chain.js';
import type { PrivvalStorage } from '../../src/consensus/privval-store.js';
import {
  recentlySignedHeights,
  refuseFreshSignerAfterSigning,
  SIGNER_GUARD_HEIGHTS,
  SignerStateMissing,
} from '../../src/consensus/signer-guard.js';
import { devGenesisJson, devValidator, devValidatorKey } from '../../src/dev.js';
import { silentLogger } from '../../src/log.js';
import { UncNode } from '../../src/node.js';
import { ChainDb, MemoryKv } from '../../src/storage/db.js';

const GENESIS_TIME = Date.parse('2026-06-01T00:00:00Z');
const dev = devValidator();
const KEY: ValidatorKey = { seed: dev.seed, publicKey: ed25519PublicKey(dev.seed) };

/** A signer state store holding `text` (null: nothing was ever written). */
function storage(text: string | null): PrivvalStorage {
  return {
    where: 'memory:privval.json',
    read: () => text,
    write: () => {},
    recordWhere: (name) => `memory:privval.json.proposal-${name}`,
    readRecord: () => null,
    writeRecord: () => {},
    pruneRecords: () => {},
  };
}

async function chainOf(blocks: number): Promise<Chain> {
  const chain = await Chain.open(
    ChainDb.over(new MemoryKv()),
    devGenesisJson({ time: new Date(GENESIS_TIME) }),
    silentLogger,
  );
  for (let i = 0; i < blocks; i++) {
    const at = BigInt(GENESIS_TIME) + (chain.tipHeight + 1n) * 1000n;
    await chain.proposeAndCommit([], chain.nextBlockTime(at), KEY, () => false);
  }
  return chain;
}

describe('the signer guard', () => {
  test('refuses a missing signer state once this key signed one of the last commits', async () => {
    const chain = await chainOf(12);
    assert.deepEqual(
      await recentlySignedHeights(chain, KEY.publicKey),
      Array.from({ length: Number(SIGNER_GUARD_HEIGHTS) }, (_, i) => 12n - BigInt(i)),
    );
    await assert.rejects(
      refuseFreshSignerAfterSigning(storage(null), chain, KEY.publicKey),
      (err: unknown) => {
        assert.ok(err instanceof SignerStateMissing);
        assert.match(err.message, /memory:privval\.json \(the signer state\) is missing/);
        assert.match(err.message, /height\(s\) 12, 11, /);
        assert.match(err.message, /--allow-fresh-signer/);
        assert.match(err.message, /synced past height 13/);
        return true;
      },
    );
    // The operator said so, or the state is there (loadPrivvalFrom judges it): no refusal.
    await refuseFreshSignerAfterSigning(storage(null), chain, KEY.publicKey, true);
    await refuseFreshSignerAfterSigning(storage('{}'), chain, KEY.publicKey);
  });

  test('lets a validator that never signed here start afresh', async () => {
    // A fresh chain, and one whose commits are another validator's.
    await refuseFreshSignerAfterSigning(storage(null), await chainOf(0), KEY.publicKey);
    const stranger = devValidatorKey(3).publicKey;
    await refuseFreshSignerAfterSigning(storage(null), await chainOf(5), stranger);
  });
});

describe('a validator node', () => {
  const dirs: string[] = [];
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  test('does not start without privval.json after signing with its chain store, unless told to', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'unc-signer-guard-'));
    dirs.push(dataDir);
    const genesis = devGenesisJson();
    const options = {
      dataDir,
      genesis,
      validatorSeed: dev.seed,
      rpcPort: 0,
      blockTimeMs: 50,
      logger: silentLogger,
    };
    const node = await UncNode.start(options);
    try {
      await until('a few blocks', () => node.chain.height >= 3n);
    } finally {
      await node.stop();
    }
    const privval = join(dataDir, 'privval.json');
    assert.ok(existsSync(privval));
    rmSync(privval);

    await assert.rejects(UncNode.start(options), (err: unknown) => {
      assert.ok(err instanceof SignerStateMissing, String(err));
      assert.match(err.message, /privval\.json \(the signer state\) is missing/);
      return true;
    });
    // The refusal closed the store: the operator's explicit start opens it again.
    const allowed = await UncNode.start({ ...options, allowFreshSigner: true });
    await allowed.stop();
  });
});
