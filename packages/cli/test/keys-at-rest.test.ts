/**
 * Keys and config on disk: what `unc init`, the keyring and `unc config set` write, when the disk
 * fills under them or someone else planted a link where a key goes.
 */
import assert from 'node:assert/strict';
import fs, {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import { test } from 'node:test';
import { toHex, UncError } from '@unc/core';
import { writeSetting } from '../src/commands/config.js';
import { initHome } from '../src/commands/init.js';
import { Context } from '../src/context.js';
import { Keyring } from '../src/keyring.js';
import { runUnc, tempHome } from './helpers.js';

/**
 * Runs `fn` on a disk that is full: every writeFileSync opens (and, given a path, truncates) its
 * file as the real one does, then fails with ENOSPC before storing a byte. The keyring's named
 * import of writeFileSync follows the replacement (syncBuiltinESMExports).
 */
function onFullDisk<T>(fn: () => T): T {
  const real = fs.writeFileSync;
  fs.writeFileSync = ((file: fs.PathOrFileDescriptor, _data: unknown, options?: fs.WriteFileOptions) => {
    real(file, '', options);
    throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
  }) as typeof fs.writeFileSync;
  syncBuiltinESMExports();
  try {
    return fn();
  } finally {
    fs.writeFileSync = real;
    syncBuiltinESMExports();
  }
}

test('attack: a full disk during `unc keys rename` fails the rename and leaves the encrypted key whole', () => {
  const home = tempHome();
  try {
    const keyring = new Keyring(home.dir);
    const seed = new Uint8Array(32).fill(7);
    // The lightest scrypt the keystore accepts is still 2^15 by default: fine for one key.
    keyring.addEncrypted('alice', seed, 'pw');
    assert.throws(
      () => onFullDisk(() => keyring.rename('alice', 'bob')),
      (err: Error) => /ENOSPC/.test(err.message),
    );
    // Still under its old name, whole, and its password still opens it.
    assert.deepEqual(keyring.unlock('alice', 'unc-test', 'pw'), seed);
    assert.equal(keyring.has('bob'), false);
    assert.deepEqual(
      keyring.list().map((k) => k.name),
      ['alice'],
    );
    // Nothing left beside it (a temporary file of the failed write).
    assert.deepEqual(readdirSync(keyring.dir), ['alice.json']);
    // And once there is room again the rename goes through.
    keyring.rename('alice', 'bob');
    assert.deepEqual(keyring.unlock('bob', 'unc-test', 'pw'), seed);
  } finally {
    home.cleanup();
  }
});

test('attack: a symlink planted where `unc init` writes a key is refused, and the seed never leaves the home', async () => {
  const home = tempHome();
  try {
    const elsewhere = join(home.dir, 'elsewhere');
    mkdirSync(elsewhere);
    const config = join(home.dir, 'node', 'config');
    mkdirSync(config, { recursive: true });
    // Dangling: existsSync follows it and finds nothing, so `unc init` went on and wrote through it.
    symlinkSync(join(elsewhere, 'stolen.json'), join(config, 'validator_key.json'));
    const seed = new Uint8Array(32).fill(0x5a);
    await assert.rejects(
      initHome(join(home.dir, 'node'), 'victim', seed),
      (err: unknown) => err instanceof UncError && err.code === 'ALREADY_INITIALISED',
    );
    assert.equal(
      existsSync(join(elsewhere, 'stolen.json')),
      false,
      'the validator seed was written through the link',
    );
    for (const f of readdirSync(elsewhere))
      assert.ok(!readFileSync(join(elsewhere, f), 'utf8').includes(toHex(seed)));
  } finally {
    home.cleanup();
  }
});

test('attack: a symlink planted at config/node.json is replaced by `unc init`, never written through', async () => {
  const home = tempHome();
  try {
    // A file of the user's that the link points at: the write went through it and replaced its
    // contents with the node's JSON.
    const victim = join(home.dir, 'victim.txt');
    writeFileSync(victim, 'the user own file\n');
    const config = join(home.dir, 'node', 'config');
    mkdirSync(config, { recursive: true });
    symlinkSync(victim, join(config, 'node.json'));
    await initHome(join(home.dir, 'node'), 'victim');
    assert.equal(
      readFileSync(victim, 'utf8'),
      'the user own file\n',
      'node.json was written through the link',
    );
    assert.ok(!lstatSync(join(config, 'node.json')).isSymbolicLink());
    assert.deepEqual(JSON.parse(readFileSync(join(config, 'node.json'), 'utf8')), { moniker: 'victim' });
  } finally {
    home.cleanup();
  }
});

test('attack: a symlink planted at miner.json is replaced by `unc miner init`, never written through', async () => {
  const home = tempHome();
  try {
    new Keyring(home.dir).addTest('owner', new Uint8Array(32).fill(3), 'unc-test');
    const victim = join(home.dir, 'victim.txt');
    writeFileSync(victim, 'the user own file\n');
    symlinkSync(victim, join(home.dir, 'miner.json'));
    const run = await runUnc(['miner', 'init', '--home', home.dir, '--from', 'owner', '--output', 'json']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(
      readFileSync(victim, 'utf8'),
      'the user own file\n',
      'miner.json was written through the link',
    );
    assert.ok(!lstatSync(join(home.dir, 'miner.json')).isSymbolicLink());
    assert.equal(JSON.parse(readFileSync(join(home.dir, 'miner.json'), 'utf8')).from, 'owner');
  } finally {
    home.cleanup();
  }
});

test("a full disk while config.json is rewritten fails the write and keeps the operator's settings", () => {
  const home = tempHome();
  try {
    const path = join(home.dir, 'config.json');
    // What an operator wrote by hand (RPC limits) beside what `unc config set` manages.
    const operator = { rpc: { unlimitedAddresses: ['10.0.0.7'] }, output: 'text' };
    writeFileSync(path, `${JSON.stringify(operator)}\n`);
    assert.throws(
      () => onFullDisk(() => writeSetting(home.dir, 'output', 'json')),
      (err: Error) => /ENOSPC/.test(err.message),
    );
    assert.deepEqual(JSON.parse(readFileSync(path, 'utf8')), operator);
    assert.deepEqual(readdirSync(home.dir), ['config.json']);
    writeSetting(home.dir, 'output', 'json');
    assert.deepEqual(JSON.parse(readFileSync(path, 'utf8')), { ...operator, output: 'json' });
  } finally {
    home.cleanup();
  }
});

test('`unc init` that fails on its second key removes the first, and only what it created', async () => {
  const home = tempHome();
  try {
    const config = join(home.dir, 'node', 'config');
    mkdirSync(config, { recursive: true });
    // Something of the user's already there, and a dangling link where the validator key goes.
    writeFileSync(join(config, 'notes.txt'), 'mine\n');
    symlinkSync(join(home.dir, 'nowhere.json'), join(config, 'validator_key.json'));
    await assert.rejects(
      initHome(join(home.dir, 'node'), 'alice'),
      (err: unknown) => err instanceof UncError && err.code === 'ALREADY_INITIALISED',
    );
    // node_key.json, written first, was left: the next init refused until it was deleted by hand.
    assert.deepEqual(readdirSync(config).sort(), ['notes.txt', 'validator_key.json']);
    assert.ok(
      lstatSync(join(config, 'validator_key.json')).isSymbolicLink(),
      'the link is not ours to remove',
    );
    rmSync(join(config, 'validator_key.json'));
    const info = await initHome(join(home.dir, 'node'), 'alice');
    assert.equal(info.moniker, 'alice');
    assert.deepEqual(readdirSync(config).sort(), [
      'node.json',
      'node_key.json',
      'notes.txt',
      'validator_key.json',
    ]);
  } finally {
    home.cleanup();
  }
});

// The cleanup's rmSync threw its own error out of the catch: the original one (here: a key file
// already there) was lost, and with it why the init failed. The disk refusing the removal is
// scripted (rmSync replaced, as onFullDisk does writeFileSync): root removes any file it may write.
test('`unc init` whose cleanup fails still throws the original error, naming what was left', async () => {
  const home = tempHome();
  const real = fs.rmSync;
  try {
    const config = join(home.dir, 'node', 'config');
    mkdirSync(config, { recursive: true });
    symlinkSync(join(home.dir, 'nowhere.json'), join(config, 'validator_key.json'));
    fs.rmSync = ((path: fs.PathLike) => {
      throw Object.assign(new Error(`EBUSY: resource busy or locked, rm '${String(path)}'`), {
        code: 'EBUSY',
      });
    }) as typeof fs.rmSync;
    syncBuiltinESMExports();
    await assert.rejects(initHome(join(home.dir, 'node'), 'alice'), (err: unknown) => {
      assert.ok(err instanceof UncError, String(err));
      assert.equal(err.code, 'ALREADY_INITIALISED');
      assert.match(err.message, /validator_key\.json exists/);
      assert.match(err.message, /could not be removed .*node_key\.json \(EBUSY/);
      return true;
    });
  } finally {
    fs.rmSync = real;
    syncBuiltinESMExports();
    home.cleanup();
  }
});

test('`unc init` whose node.json cannot be put in place removes both keys and leaves no temporary file', async () => {
  const home = tempHome();
  try {
    const config = join(home.dir, 'node', 'config');
    // A folder with something in it where node.json goes: the rename over it fails after the keys
    // were written, and the temporary node.json was left beside them.
    mkdirSync(join(config, 'node.json', 'inside'), { recursive: true });
    await assert.rejects(initHome(join(home.dir, 'node'), 'alice'), /EISDIR|ENOTEMPTY|EEXIST|EPERM/);
    assert.deepEqual(readdirSync(config), ['node.json']);
    assert.deepEqual(readdirSync(join(config, 'node.json')), ['inside']);
  } finally {
    home.cleanup();
  }
});

test('attack: a home that another user owns, or that its group or everyone can write, is refused', async () => {
  const home = tempHome();
  try {
    // mkdtemp's 0700 folder of this user, and one not made yet, are fine.
    assert.equal(new Context({ home: home.dir }).home, home.dir);
    new Context({ home: join(home.dir, 'later') });
    const refused = (mode: number, why: RegExp) => {
      chmodSync(home.dir, mode);
      assert.throws(
        () => new Context({ home: home.dir }),
        (err: unknown) => err instanceof UncError && err.code === 'BAD_HOME' && why.test(err.message),
      );
    };
    refused(0o770, /writable by its group/);
    refused(0o707, /writable by everyone/);
    refused(0o1777, /writable by its group and everyone \(mode 1777\)/);
    // Every command opens its home through the context: nothing is written into such a folder.
    chmodSync(home.dir, 0o777);
    const run = await runUnc(['config', 'set', 'output', 'json', '--home', home.dir]);
    assert.notEqual(run.code, 0);
    assert.match(run.stderr, /chmod go-w/);
    assert.deepEqual(readdirSync(home.dir), []);
    chmodSync(home.dir, 0o700);
    // Another user's folder: only root can hand one over to test it.
    if (process.getuid?.() === 0) {
      chownSync(home.dir, 1, 1);
      assert.throws(
        () => new Context({ home: home.dir }),
        (err: unknown) =>
          err instanceof UncError && err.code === 'BAD_HOME' && /belongs to uid 1/.test(err.message),
      );
      chownSync(home.dir, 0, 0);
      new Context({ home: home.dir });
    }
  } finally {
    home.cleanup();
  }
});

test('attack: a home checked while absent, then made by someone else before the first write, is refused and nothing is written', async () => {
  const home = tempHome();
  try {
    const dir = join(home.dir, 'later');
    // The command's check passes: there is no folder yet.
    const ctx = new Context({ home: dir });
    // Meanwhile another user makes it, writable by everyone (mkdirSync, told recursive, took it).
    mkdirSync(dir);
    chmodSync(dir, 0o777);
    const refused = (err: unknown) => err instanceof UncError && err.code === 'BAD_HOME';
    assert.throws(() => writeSetting(ctx.home, 'output', 'json'), refused);
    assert.throws(() => ctx.keyring().addTest('alice', new Uint8Array(32).fill(1), 'unc-test'), refused);
    await assert.rejects(initHome(ctx.home, 'alice'), refused);
    assert.deepEqual(readdirSync(dir), []);
  } finally {
    home.cleanup();
  }
});

// A keyring folder others could write was read and written like any: a key file in it could be
// replaced by theirs. The home's rule holds for it too.
test('a keyring folder writable by others is refused (BAD_HOME), nothing read or written', () => {
  const home = tempHome();
  try {
    const keyring = new Keyring(home.dir);
    keyring.addEncrypted('alice', new Uint8Array(32).fill(5), 'pw');
    chmodSync(keyring.dir, 0o777);
    assert.throws(() => new Keyring(home.dir), {
      code: 'BAD_HOME',
      message: /keyring folder .* writable by/,
    });
    chmodSync(keyring.dir, 0o700);
    assert.equal(new Keyring(home.dir).has('alice'), true);
  } finally {
    home.cleanup();
  }
});
