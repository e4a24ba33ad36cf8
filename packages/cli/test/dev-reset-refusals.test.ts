/**
 * `unc dev --reset` deletes the chain: every option and config.json setting it is given is checked
 * first, so that a typo is refused with the chain still there (as --verify-threads already was).
 * The RPC limits of config.json (rpc.subnetShare, rpc.unlimitedAddresses, …) and the mempool flags
 * were read only once the chain was gone.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { runUnc, tempHome } from './helpers.js';

const homes: { cleanup: () => void }[] = [];
after(() => {
  for (const h of homes) h.cleanup();
});

/** A home whose data folder holds a marker file: gone if --reset ran. */
function homeWithChain(config?: unknown): { dir: string; marker: string } {
  const home = tempHome();
  homes.push(home);
  const marker = join(home.dir, 'data', 'kept');
  mkdirSync(join(home.dir, 'data'), { recursive: true });
  writeFileSync(marker, 'the chain');
  if (config !== undefined) writeFileSync(join(home.dir, 'config.json'), JSON.stringify(config));
  return { dir: home.dir, marker };
}

describe('unc dev --reset refuses bad settings before it deletes the chain', () => {
  test('a bad rpc setting in config.json (BAD_CONFIG)', async () => {
    const { dir, marker } = homeWithChain({ rpc: { subnetShare: -1 } });
    const run = await runUnc(['dev', '--home', dir, '--reset', '--rpc-port', '0']);
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /rpc\.subnetShare must be a non-negative integer \[BAD_CONFIG\]/);
    assert.ok(existsSync(marker), '--reset ran before the refusal');
  });

  test('an rpc.unlimitedAddresses entry that is a name', async () => {
    const { dir, marker } = homeWithChain({ rpc: { unlimitedAddresses: ['localhost'] } });
    const run = await runUnc(['dev', '--home', dir, '--reset', '--rpc-port', '0']);
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /BAD_CONFIG/);
    assert.ok(existsSync(marker), '--reset ran before the refusal');
  });

  test('a bad mempool flag', async () => {
    const { dir, marker } = homeWithChain();
    const run = await runUnc(['dev', '--home', dir, '--reset', '--rpc-port', '0', '--mempool-txs', '0']);
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /mempool-txs/);
    assert.ok(existsSync(marker), '--reset ran before the refusal');
  });
});
