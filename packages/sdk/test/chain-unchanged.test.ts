/** The one CHAIN_CHANGED check every signer of the edge uses (prepareTransaction, miner agent, gateway). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UncError } from '@unc/core';
import { assertChainUnchanged } from '../src/transactions.js';

test('a status naming another chain than the pinned one is refused (CHAIN_CHANGED); nothing pinned, nothing checked', () => {
  assert.doesNotThrow(() => assertChainUnchanged('unc-testnet-1', 'unc-testnet-1'));
  assert.doesNotThrow(() => assertChainUnchanged('unc-mainnet-1', undefined));
  assert.throws(
    () => assertChainUnchanged('unc-mainnet-1', 'unc-testnet-1'),
    (err: unknown) =>
      err instanceof UncError &&
      err.code === 'CHAIN_CHANGED' &&
      /"unc-testnet-1".*"unc-mainnet-1".*nothing was signed/.test(err.message),
  );
});
