/**
 * `unc dev --reset` in a home whose keyring holds the user's own key under a dev key's name is
 * refused before the reset: refused only at the keyring, after the chain data was removed, the
 * user lost the chain and still had to rename the key.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Keyring } from '../src/keyring.js';
import { runUnc, tempHome } from './helpers.js';

test('unc dev --reset with a key of the user named governance removes nothing', async () => {
  const home = tempHome();
  try {
    new Keyring(home.dir).addEncrypted('governance', new Uint8Array(32).fill(3), 'correct horse battery');
    mkdirSync(join(home.dir, 'data'), { mode: 0o700 });
    const marker = join(home.dir, 'data', 'marker');
    writeFileSync(marker, 'the old chain');
    const r = await runUnc(['dev', '--home', home.dir, '--reset', '--rpc-port', '0', '--chips', '0']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /KEY_EXISTS|holds your own key "governance"/);
    assert.ok(existsSync(marker), 'the chain data is still there');
    assert.ok(!existsSync(join(home.dir, 'genesis.json')), 'no genesis written');
  } finally {
    home.cleanup();
  }
});
