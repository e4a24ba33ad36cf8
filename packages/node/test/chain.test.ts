import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ed25519PublicKey, toHex, type ValidationError, verifyBeacon } from '@unc/core';
import { Chain } from '../src/chain.js';
import { devGenesisJson, devValidator } from '../src/dev.js';
import { silentLogger } from '../src/log.js';
import { ChainDb } from '../src/storage/db.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function open(genesis: unknown): Promise<{ chain: Chain; db: ChainDb }> {
  const dir = mkdtempSync(join(tmpdir(), 'unc-chain-test-'));
  dirs.push(dir);
  const db = await ChainDb.open(dir);
  return { chain: await Chain.open(db, genesis, silentLogger), db };
}

test('a second node verifies and commits the proposer’s blocks (VRF beacon, commit, state root); forgeries are refused', async () => {
  const genesis = devGenesisJson({ time: new Date('2026-06-01T00:00:00Z') });
  const a = await open(genesis);
  const b = await open(genesis);
  const v = devValidator();
  const key = { seed: v.seed, publicKey: ed25519PublicKey(v.seed) };
  try {
    for (let i = 1; i <= 5; i++) {
      const { committed } = await a.chain.proposeAndCommit(
        [],
        a.chain.nextBlockTime(BigInt(Date.parse('2026-06-01T00:00:00Z') + i * 1000)),
        key,
        () => false,
      );
      const h = committed.block.header;
      // The beacon is the proposer's VRF output over the previous beacon and the height.
      const prev = (await a.chain.blockAt(h.height - 1n))!.header.beacon;
      assert.equal(toHex(verifyBeacon(prev, h.height, h.proposer, h.vrfProof)!), toHex(h.beacon));

      const forged = { ...committed.block, header: { ...h, beacon: new Uint8Array(32).fill(7) } };
      await assert.rejects(b.chain.verifyAndCommit(forged), (e: ValidationError) => e.code === 'BAD_BLOCK');
      const again = await b.chain.verifyAndCommit(committed.block);
      assert.equal(toHex(again.hash), toHex(committed.hash));
      assert.equal(toHex(b.chain.state.trie.root), toHex(a.chain.state.trie.root));
    }
  } finally {
    await a.db.close();
    await b.db.close();
  }
});

test('the chain parameters are shared by every reader and frozen: one reader cannot change them for the others', async () => {
  const genesis = devGenesisJson({ time: new Date('2026-06-01T00:00:00Z') });
  const a = await open(genesis);
  const v = devValidator();
  const key = { seed: v.seed, publicKey: ed25519PublicKey(v.seed) };
  try {
    const before = { ...a.chain.params };
    assert.ok(Object.isFrozen(a.chain.params));
    assert.throws(() => {
      (a.chain.params as { maxBlockTxs: number }).maxBlockTxs = 1;
    }, TypeError);
    assert.throws(() => {
      (a.chain.params as { minFeePerByte: bigint }).minFeePerByte = 0n;
    }, TypeError);
    await a.chain.proposeAndCommit(
      [],
      a.chain.nextBlockTime(BigInt(Date.parse('2026-06-01T00:00:01Z'))),
      key,
      () => false,
    );
    // Decoded again for the new head, from the state: the same values.
    assert.deepEqual({ ...a.chain.params }, before);
  } finally {
    await a.db.close();
  }
});
