/**
 * Review of the key custody rules (aud-key-custody.test.ts): the owner-only check of node key
 * files holds for the file actually read, and a keystore encrypted again on import is never made
 * cheaper to guess than the one that came.
 */
import assert from 'node:assert/strict';
import fs, { chmodSync, chownSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import { test } from 'node:test';
import { DEFAULT_SCRYPT_PARAMS, encryptKeystore, toHex, UncError } from '@unc/core';
import fc from 'fast-check';
import { initHome, loadHome } from '../src/commands/init.js';
import { Keyring, strongerScryptParams } from '../src/keyring.js';
import { tempHome } from './helpers.js';

const badKeyFile = (err: unknown) => err instanceof UncError && err.code === 'BAD_KEY_FILE';

test('review: the validator key used is the file whose mode was checked, not one renamed over it after the check', {
  skip: process.platform === 'win32',
}, async () => {
  const home = tempHome();
  try {
    const dir = join(home.dir, 'node');
    await initHome(dir, 'n0');
    const validatorKey = join(dir, 'config', 'validator_key.json');
    const mine = loadHome(dir).validatorSeed;
    // Another seed, in a file every user of the host can read (and so sign with).
    const theirs = join(dir, 'config', 'swapped.json');
    writeFileSync(theirs, `${JSON.stringify({ seed: toHex(new Uint8Array(32).fill(7)) })}\n`);
    chmodSync(theirs, 0o644);
    const checkedIno = statSync(validatorKey).ino;
    // Renamed over the key right after its mode was looked at, by path (statSync) or by descriptor
    // (fstatSync): the rename a check-then-open leaves room for.
    const realStat = fs.statSync;
    const realFstat = fs.fstatSync;
    let swapped = false;
    const swapAfter = <T extends { ino: number | bigint } | undefined>(st: T): T => {
      if (!swapped && st !== undefined && Number(st.ino) === checkedIno) {
        swapped = true;
        renameSync(theirs, validatorKey);
      }
      return st;
    };
    // statSync is typed read-only (its `native` twin): the module object is written all the same.
    const writable = fs as unknown as { statSync: unknown; fstatSync: unknown };
    writable.statSync = (...args: Parameters<typeof realStat>) => swapAfter(realStat(...args) as fs.Stats);
    writable.fstatSync = (...args: Parameters<typeof realFstat>) => swapAfter(realFstat(...args) as fs.Stats);
    syncBuiltinESMExports();
    let seed: Uint8Array | null = null;
    let refused: unknown = null;
    try {
      seed = loadHome(dir).validatorSeed;
    } catch (err) {
      refused = err;
    } finally {
      writable.statSync = realStat;
      writable.fstatSync = realFstat;
      syncBuiltinESMExports();
    }
    assert.ok(swapped, 'the key file was looked at');
    // Either the checked file's seed, or a refusal: never the seed of the file nobody checked.
    if (refused !== null) assert.ok(badKeyFile(refused), String(refused));
    else assert.deepEqual(seed, mine);
  } finally {
    home.cleanup();
  }
});

test('review: a node key file another user owns is refused (BAD_KEY_FILE), as a home they own is', {
  skip: process.getuid?.() !== 0 && 'needs root to give the file to another user',
}, async () => {
  const home = tempHome();
  try {
    const dir = join(home.dir, 'node');
    await initHome(dir, 'n0');
    const validatorKey = join(dir, 'config', 'validator_key.json');
    // Mode 600, but its owner can read it, and open it to everyone, whenever they like.
    chownSync(validatorKey, 4242, 4242);
    assert.throws(
      () => loadHome(dir),
      (err: unknown) => badKeyFile(err) && /uid 4242/.test((err as Error).message),
    );
    chownSync(validatorKey, 0, 0);
    assert.equal(loadHome(dir).validatorSeed.length, 32);
  } finally {
    home.cleanup();
  }
});

const scryptCost = (p: { n: number; r: number; p: number }) => ({ memory: p.n * p.r, time: p.n * p.r * p.p });

test('review: a keystore encrypted again on import is never cheaper to guess than the one that came', () => {
  const home = tempHome();
  try {
    const keyring = new Keyring(home.dir);
    const seed = new Uint8Array(32).fill(9);
    // Twice our memory and time, but r = 2 < 8; and a light n·r with a heavy p (4 times our time).
    const cases = [
      { n: 2 ** 18, r: 2, p: 1 },
      { n: 2 ** 12, r: 8, p: 16 },
    ];
    for (const [i, params] of cases.entries()) {
      const came = encryptKeystore(
        seed,
        'a password',
        { salt: new Uint8Array(32).fill(1), iv: new Uint8Array(12).fill(2) },
        params,
      );
      keyring.addKeystore(`k${i}`, came, 'a password');
      const stored = keyring.exportKeystore(`k${i}`).crypto.kdfparams;
      const before = scryptCost(params);
      const after = scryptCost(stored);
      assert.ok(after.memory >= before.memory, `memory ${after.memory} < ${before.memory}`);
      assert.ok(after.time >= before.time, `time ${after.time} < ${before.time}`);
      assert.deepEqual(keyring.unlock(`k${i}`, 'unc-test', 'a password'), seed);
    }
  } finally {
    home.cleanup();
  }
});

test('property: the parameters a keystore is encrypted again under are never weaker than it, nor than ours', () => {
  const ours = scryptCost(DEFAULT_SCRYPT_PARAMS);
  fc.assert(
    fc.property(
      fc.integer({ min: 10, max: 20 }),
      fc.integer({ min: 1, max: 32 }),
      fc.integer({ min: 1, max: 16 }),
      (logN, r, p) => {
        const n = 2 ** logN;
        // The keystore format's own bounds (core's checkParams).
        fc.pre(128 * n * r <= 2 ** 30 && n * r * p <= 2 ** 25);
        const next = strongerScryptParams({ n, r, p });
        const kept = next ?? { n, r, p };
        const came = scryptCost({ n, r, p });
        const stored = scryptCost(kept);
        assert.ok(stored.memory >= came.memory && stored.time >= came.time);
        assert.ok(stored.memory >= ours.memory && stored.time >= ours.time);
        // Within the bounds the keystore format accepts.
        assert.ok(kept.p <= 16 && stored.time <= 2 ** 25 && 128 * stored.memory <= 2 ** 30);
        // Kept as it came whenever it is already at least ours.
        if (came.memory >= ours.memory) assert.equal(next, null);
      },
    ),
  );
});

test('review: an unencrypted dev key bound to a chain that is not a dev chain signs nothing there (NOT_A_DEV_CHAIN)', () => {
  const home = tempHome();
  try {
    const keyring = new Keyring(home.dir);
    // What addDevKeys wrote before it refused a genesis edited to a real network's id: the public
    // dev0 seed bound to that network.
    keyring.addTest('dev0', new Uint8Array(32).fill(5), 'unc-mainnet-1');
    assert.throws(
      () => keyring.unlock('dev0', 'unc-mainnet-1'),
      (err: unknown) => err instanceof UncError && err.code === 'NOT_A_DEV_CHAIN',
    );
    // On a dev chain, as always.
    keyring.addTest('dev1', new Uint8Array(32).fill(6), 'unc-dev-1');
    assert.deepEqual(keyring.unlock('dev1', 'unc-dev-1'), new Uint8Array(32).fill(6));
  } finally {
    home.cleanup();
  }
});
