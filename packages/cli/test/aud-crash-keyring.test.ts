/**
 * Crash audit: `unc keys rename` writes the new name into the key file, then renames the file, and
 * `unc keys delete` removes one. Neither synced the folder after: a power loss could bring back the
 * old name (the user told the key is `b` finds only `a`) or a key the user deleted. node:fs is
 * wrapped here (the ESM bindings synced) to see that the folder is fsynced after the change.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Keyring } from '../src/keyring.js';
import { tempHome } from './helpers.js';

const home = tempHome();
after(() => home.cleanup());

/** Runs `fn`, returning what it did to the folder `dir`, in order: 'change' or 'fsync'. */
function folderEvents(dir: string, fn: () => void): string[] {
  const real = {
    openSync: fs.openSync,
    fsyncSync: fs.fsyncSync,
    renameSync: fs.renameSync,
    rmSync: fs.rmSync,
  };
  const events: string[] = [];
  const dirFds = new Set<number>();
  const f = fs as unknown as Record<string, unknown>;
  f.openSync = (path: fs.PathLike, ...rest: unknown[]) => {
    const fd = (real.openSync as (...a: unknown[]) => number)(path, ...rest);
    if (String(path) === dir) dirFds.add(fd);
    return fd;
  };
  f.fsyncSync = (fd: number) => {
    if (dirFds.has(fd)) events.push('fsync');
    real.fsyncSync(fd);
  };
  f.renameSync = (from: fs.PathLike, to: fs.PathLike) => {
    real.renameSync(from, to);
    if (String(to).endsWith('.json')) events.push('change');
  };
  f.rmSync = (path: fs.PathLike, opts?: fs.RmOptions) => {
    real.rmSync(path, opts);
    if (String(path).endsWith('.json')) events.push('change');
  };
  syncBuiltinESMExports();
  try {
    fn();
  } finally {
    Object.assign(f, real);
    syncBuiltinESMExports();
  }
  return events;
}

test('aud-crash: keys rename and delete sync the keyring folder after the change', () => {
  const keyring = new Keyring(home.dir);
  keyring.addTest('alpha', new Uint8Array(randomBytes(32)), 'unc-test');
  const dir = join(home.dir, 'keyring');
  const renamed = folderEvents(dir, () => keyring.rename('alpha', 'beta'));
  assert.equal(renamed.at(-1), 'fsync', `rename: ${renamed.join(' ')}`);
  assert.deepEqual(
    keyring.list().map((k) => k.name),
    ['beta'],
  );
  const deleted = folderEvents(dir, () => keyring.delete('beta'));
  assert.equal(deleted.at(-1), 'fsync', `delete: ${deleted.join(' ')}`);
  assert.deepEqual(keyring.list(), []);
});
