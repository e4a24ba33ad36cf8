/**
 * `--prove` trusts a genesis file, and the commands then use the node's chain id beside the light
 * client (`unc job verify --prove` checks the receipt's chain id against the node's status, the
 * gateway pins the chain its status names): a node naming another chain than the trusted genesis's
 * had a receipt for that chain pass against a chip key proven on this one. Refused at once.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { UncError } from '@unc/core';
import { devGenesisJson } from '@unc/node';
import { trustAnchorOf } from '../src/commands/query.js';

const dir = mkdtempSync(join(tmpdir(), 'unc-prove-chain-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const genesis = join(dir, 'genesis.json');
writeFileSync(genesis, JSON.stringify(devGenesisJson({ chainId: 'unc-trusted-1' })));

test("a node on another chain than the trusted genesis's is refused; the same chain is taken", async () => {
  await assert.rejects(
    trustAnchorOf(dir, { genesis }, async () => 'unc-other-1'),
    (err: Error) =>
      err instanceof UncError && err.code === 'CHAIN_MISMATCH' && /"unc-other-1"/.test(err.message),
  );
  const anchor = await trustAnchorOf(dir, { genesis }, async () => 'unc-trusted-1');
  assert.equal(anchor.kind, 'genesis');
  assert.equal(anchor.chainId, 'unc-trusted-1');
});
