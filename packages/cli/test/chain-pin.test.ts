// A home that pins its chain signs for no other. The chain id a command signs for comes from the
// node, and with -y nobody reads the confirmation: a hostile node that names mainnet from the start
// would have a command meant for a testnet signed for mainnet, where the same key may hold funds.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { UncError } from '@unc/core';
import { SETTINGS, writeSetting } from '../src/commands/config.js';
import { Context } from '../src/context.js';

const code = (expected: string) => (err: unknown) => err instanceof UncError && err.code === expected;

test('a home pinned to a chain unlocks no key for another chain the node names; unpinned, the node decides', async () => {
  const home = mkdtempSync(join(tmpdir(), 'unc-chain-pin-'));
  try {
    const ctx = new Context({ home, node: 'http://127.0.0.1:9' }, {});
    // No key named "nobody": past the pin, the keyring's own refusal is what comes back.
    await assert.rejects(
      ctx.unlockKey('nobody', 'unc-mainnet-1', {}),
      (err: unknown) => !code('CHAIN_MISMATCH')(err),
    );
    writeSetting(home, 'chainId', SETTINGS.chainId!.check('unc-testnet-1'));
    await assert.rejects(ctx.unlockKey('nobody', 'unc-mainnet-1', {}), (err: unknown) => {
      assert.ok(code('CHAIN_MISMATCH')(err), String(err));
      assert.match((err as Error).message, /"unc-mainnet-1".*pins chain "unc-testnet-1": nothing was signed/);
      return true;
    });
    await assert.rejects(
      ctx.unlockKey('nobody', 'unc-testnet-1', {}),
      (err: unknown) => !code('CHAIN_MISMATCH')(err),
    );
    writeSetting(home, 'chainId', undefined);
    await assert.rejects(
      ctx.unlockKey('nobody', 'unc-mainnet-1', {}),
      (err: unknown) => !code('CHAIN_MISMATCH')(err),
    );
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

test('a pin written by hand as another type refuses every chain rather than pinning none', () => {
  const home = mkdtempSync(join(tmpdir(), 'unc-chain-pin-'));
  try {
    writeFileSync(join(home, 'config.json'), JSON.stringify({ chainId: 1 }));
    const ctx = new Context({ home, node: 'http://127.0.0.1:9' }, {});
    assert.throws(() => ctx.checkChainPin('unc-mainnet-1'), code('CHAIN_MISMATCH'));
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

test('a pin no chain could have is refused when set', () => {
  for (const bad of ['', 'Unc-Mainnet', 'unc mainnet', '-unc', 'x'.repeat(64)]) {
    assert.throws(() => SETTINGS.chainId!.check(bad), code('BAD_SETTING'), bad);
  }
  assert.equal(SETTINGS.chainId!.check('unc-dev-1'), 'unc-dev-1');
});
