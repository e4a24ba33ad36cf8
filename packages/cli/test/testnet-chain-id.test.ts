/**
 * Every fresh `unc testnet` genesis keeps the dev chain id, so the keyring's dev keys send there, and
 * is safe with it only because each gets fresh validator keys: no validator key sits in two
 * testnets' sets, so no honest vote of one is evidence on another (docs/consensus.md).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseGenesis } from '@unc/core';
import { DEV_CHAIN_ID, devGenesisJson } from '@unc/node';
import { initHome } from '../src/commands/init.js';

test('two fresh testnet homes share no validator key, and a testnet genesis uses the dev chain id', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-testnet-keys-'));
  try {
    const keys = new Set<string>();
    for (const net of ['a', 'b'])
      for (let i = 0; i < 4; i++)
        keys.add((await initHome(join(dir, net, `node${i}`), `node${i}`)).validatorPublicKey);
    assert.equal(keys.size, 8, 'every testnet home has a validator key of its own');
    assert.equal(parseGenesis(devGenesisJson({})).chainId, DEV_CHAIN_ID);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
