/**
 * The block limits in a genesis are validity rules (validateProposal), so a block that reaches
 * them must still fit what every node decodes and accepts from the network: the block codec caps
 * a block at MAX_BLOCK_TXS transactions of at most 1 MiB each, and gossip and sync frames are
 * sized for 8 MiB of transactions plus header and commits. Past those, an honest proposer under a
 * full mempool (which anyone can fill by paying fees) builds blocks no peer takes, and the chain
 * stops.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { MAX_BLOCK_BYTES, MAX_BLOCK_TXS, MAX_TX_BYTES, parseGenesis, toHex } from '@unc/core';
import { devGenesisJson } from '../src/dev.js';

function withParams(params: Record<string, unknown>) {
  const g = devGenesisJson();
  g.params = { ...(g.params as Record<string, unknown>), ...params };
  return g;
}

test('genesis block limits must fit the block codec and the network frames', () => {
  assert.doesNotThrow(() =>
    parseGenesis(
      withParams({ maxBlockTxs: MAX_BLOCK_TXS, maxBlockBytes: MAX_BLOCK_BYTES, maxTxBytes: MAX_TX_BYTES }),
    ),
  );
  assert.throws(() => parseGenesis(withParams({ maxBlockBytes: MAX_BLOCK_BYTES + 1 })), /maxBlockBytes/);
  assert.throws(() => parseGenesis(withParams({ maxBlockTxs: MAX_BLOCK_TXS + 1 })), /maxBlockTxs/);
  assert.throws(
    () => parseGenesis(withParams({ maxTxBytes: MAX_TX_BYTES + 1, maxBlockBytes: MAX_BLOCK_BYTES })),
    /maxTxBytes/,
  );
});

test('attack: a genesis vendor root that does not parse is refused at load, as governance refuses it', () => {
  const root = new Uint8Array(
    readFileSync(new URL('../../../core/test/attestation/fixtures/tpm/root.der', import.meta.url)),
  );
  /** The dev genesis with a tpm2 vendor whose roots (hex) are `roots`. */
  const withRoots = (roots: string[]) => {
    const g = devGenesisJson({
      vendors: [{ id: 'test-tpm', name: 'A TPM vendor', profile: 'tpm2', roots: [] }],
    }) as Record<string, unknown> & { vendors: { id: string; roots: string[] }[] };
    for (const v of g.vendors) if (v.id === 'test-tpm') v.roots = roots;
    return g;
  };
  assert.doesNotThrow(() => parseGenesis(withRoots([toHex(root)])));
  // Hex, but no certificate: every registration under the vendor would fail, for no stated reason.
  const junk = withRoots([toHex(root), 'deadbeef']);
  assert.throws(
    () => parseGenesis(junk),
    (err: Error & { code?: string }) =>
      err.code === 'BAD_GENESIS' && /vendors\[\d+\]\.roots\[1\]: is not a certificate/.test(err.message),
  );
});
