/**
 * Every `unc testnet` genesis gets a chain id of its own: votes sign the chain id, not the genesis
 * hash, so two testnets sharing `unc-dev-1` accepted each other's votes (docs/consensus.md).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseGenesis } from '@unc/core';
import { DEV_CHAIN_ID, devGenesisJson } from '@unc/node';
import { testnetChainId } from '../src/commands/testnet.js';

test('a testnet genesis has a fresh, valid chain id, never the dev chain id', () => {
  const ids = new Set<string>();
  for (let i = 0; i < 50; i++) {
    const id = testnetChainId();
    assert.match(id, /^unc-testnet-[0-9a-f]{8}$/);
    assert.notEqual(id, DEV_CHAIN_ID);
    ids.add(id);
  }
  assert.ok(ids.size >= 49, 'random, so two testnets do not share one');
  const genesis = parseGenesis(devGenesisJson({ chainId: testnetChainId() }));
  assert.match(genesis.chainId, /^unc-testnet-/);
});
