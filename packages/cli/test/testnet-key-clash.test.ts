/**
 * `unc testnet` in a home whose keyring holds the user's own key under a dev key's name is refused
 * before it makes anything: it used to make the validators' homes and the genesis first, and
 * refused only at the keyring, so the run after the user renamed the key found homes without a
 * testnet.json and stopped at ALREADY_INITIALISED until --reset.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { prepareTestnet } from '../src/commands/testnet.js';
import { Keyring } from '../src/keyring.js';
import { runUnc, tempHome } from './helpers.js';

test('a dev key name clash makes no testnet folder, and the run after the rename starts', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-testnet-clash-'));
  try {
    const keyring = new Keyring(join(dir, 'home'));
    keyring.addEncrypted('dev0', new Uint8Array(32).fill(9), 'correct horse battery');
    const net = join(dir, 'net');
    await assert.rejects(
      prepareTestnet({ dir: net, validators: 2, blockTimeMs: 1000, keyring }),
      (err: Error & { code?: string }) => err.code === 'KEY_EXISTS',
    );
    assert.ok(!existsSync(net), 'refused before any home or genesis was made');
    // What the error tells the user to do.
    keyring.rename('dev0', 'mine');
    const { homes } = await prepareTestnet({ dir: net, validators: 2, blockTimeMs: 1000, keyring });
    assert.equal(homes.length, 2);
    assert.equal(keyring.info('dev0').kind, 'test');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('unc testnet --reset with a dev key name clash removes nothing', async () => {
  const home = tempHome();
  try {
    new Keyring(home.dir).addEncrypted('dev3', new Uint8Array(32).fill(5), 'correct horse battery');
    const net = join(home.dir, 'net');
    mkdirSync(net, { mode: 0o700 });
    writeFileSync(join(net, 'marker'), 'the old testnet');
    const r = await runUnc(['testnet', '--home', home.dir, '--dir', net, '--reset', '--validators', '1']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /holds your own key "dev3"/);
    assert.ok(existsSync(join(net, 'marker')), 'the testnet folder is still there');
  } finally {
    home.cleanup();
  }
});
