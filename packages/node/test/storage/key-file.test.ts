/**
 * readPrivateKeyFile and readSecretFile: the owner-only rule, checked on the file the bytes are read
 * from.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { UncError } from '@unc/core';
import { checkSecretFileStats, readPrivateKeyFile, readSecretFile } from '../../src/storage/key-file.js';

/** The compiled module, for a child process that reads a pipe its shell made. */
const KEY_FILE_MODULE = new URL('../../src/storage/key-file.js', import.meta.url).href;

const badKeyFile = (err: unknown) => err instanceof UncError && err.code === 'BAD_KEY_FILE';

test('a key file is read only while its owner alone may use it; a link is held to the rule where it leads', {
  skip: process.platform === 'win32',
}, () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-key-file-'));
  try {
    const key = join(dir, 'key.json');
    writeFileSync(key, 'secret\n', { mode: 0o600 });
    assert.equal(readPrivateKeyFile(key), 'secret\n');
    for (const mode of [0o640, 0o604, 0o620, 0o602, 0o644]) {
      chmodSync(key, mode);
      assert.throws(
        () => readPrivateKeyFile(key),
        (err: unknown) => badKeyFile(err) && /chmod 600/.test(String(err)),
      );
    }
    // Read-only for its owner is stricter still: accepted.
    chmodSync(key, 0o400);
    assert.equal(readPrivateKeyFile(key), 'secret\n');
    // Through a link (a key kept elsewhere): the file it leads to decides.
    const link = join(dir, 'link.json');
    symlinkSync(key, link);
    assert.equal(readPrivateKeyFile(link), 'secret\n');
    chmodSync(key, 0o644);
    assert.throws(() => readPrivateKeyFile(link), badKeyFile);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a FIFO or a folder where a key file goes is refused at once, never waited on', {
  skip: process.platform === 'win32',
}, () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-key-file-'));
  try {
    const fifo = join(dir, 'fifo.json');
    // A FIFO with no writer: opened for reading without O_NONBLOCK, the open waited forever.
    execFileSync('mkfifo', ['-m', '600', fifo]);
    assert.throws(
      () => readPrivateKeyFile(fifo),
      (err: unknown) => badKeyFile(err) && /not a plain file/.test(String(err)),
    );
    assert.throws(() => readPrivateKeyFile(dir), badKeyFile);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const badSecretFile = (err: unknown) => err instanceof UncError && err.code === 'BAD_SECRET_FILE';

test('a secret file (password, mnemonic, token) others may read is refused with the chmod that fixes it', {
  skip: process.platform === 'win32',
}, () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-secret-file-'));
  try {
    const file = join(dir, 'pw');
    writeFileSync(file, 'correct horse\n', { mode: 0o600 });
    assert.equal(readSecretFile(file, 'a password'), 'correct horse\n');
    for (const mode of [0o644, 0o640, 0o604, 0o620, 0o602]) {
      chmodSync(file, mode);
      assert.throws(
        () => readSecretFile(file, 'a password'),
        (err: unknown) =>
          badSecretFile(err) &&
          String(err).includes(file) &&
          /holds a password/.test(String(err)) &&
          String(err).includes(`chmod 600 ${file}`),
      );
    }
    chmodSync(file, 0o400);
    assert.equal(readSecretFile(file, 'a password'), 'correct horse\n');
    assert.throws(() => readSecretFile(join(dir, 'missing'), 'a password'), badSecretFile);
    assert.throws(() => readSecretFile(dir, 'a password'), badSecretFile);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a secret handed over through a pipe (--password-file <(…)) is read; a pipe others may use is refused', {
  skip: process.platform === 'win32',
}, () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-secret-file-'));
  try {
    // Through the shell's anonymous pipe, as `<(printf …)` gives it: mode 600, this user's.
    const out = execFileSync('bash', [
      '-c',
      `exec ${JSON.stringify(process.execPath)} --input-type=module -e "const m = await import(process.argv[1]); process.stdout.write(m.readSecretFile(process.argv[2], 'a password'))" ${JSON.stringify(KEY_FILE_MODULE)} <(printf 'piped pw')`,
    ]).toString();
    assert.equal(out, 'piped pw');
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', ['-m', '644', fifo]);
    // Refused before anything is read: the open of a FIFO waits for a writer, so one is started.
    const writer = spawn('sh', ['-c', `printf x > ${JSON.stringify(fifo)}`]);
    try {
      assert.throws(() => readSecretFile(fifo, 'a password'), badSecretFile);
    } finally {
      writer.kill();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a secret root provided for a service user (systemd LoadCredential=: 0400 and an ACL, which stat shows as 440) is read; one others may read, or its group write, is not', {
  // Needs root to make a root-owned file and to run the reader as another user.
  skip: process.platform === 'win32' || process.getuid?.() !== 0,
}, () => {
  const NOBODY = 65534;
  const dir = mkdtempSync(join(tmpdir(), 'unc-secret-file-'));
  try {
    chmodSync(dir, 0o755);
    const file = join(dir, 'token');
    writeFileSync(file, 'sesame\n');
    // systemd writes a credential root-owned 0400 and grants the unit's user read with an ACL
    // entry; stat shows the ACL's mask in the group bits. A group of the reader's stands in here.
    chownSync(file, 0, NOBODY);
    const readAsService = (mode: number) => {
      chmodSync(file, mode);
      return spawnSync(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          "const m = await import(process.argv[1]); try { process.stdout.write(m.readSecretFile(process.argv[2], 'an API token')) } catch (e) { process.stdout.write(String(e.code)) }",
          KEY_FILE_MODULE,
          file,
        ],
        { uid: NOBODY, gid: NOBODY, encoding: 'utf8' },
      );
    };
    for (const mode of [0o440, 0o640]) {
      const r = readAsService(mode);
      assert.equal(r.stdout, 'sesame\n', `${mode.toString(8)}: ${r.stderr}`);
    }
    for (const mode of [0o444, 0o460, 0o442])
      assert.equal(readAsService(mode).stdout, 'BAD_SECRET_FILE', mode.toString(8));
    // Root's own file with group read is root's carelessness, as anyone's: refused to root.
    chmodSync(file, 0o440);
    assert.throws(() => readSecretFile(file, 'an API token'), badSecretFile);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('macOS reports every pipe 0660: a pipe handed over as a descriptor (/dev/stdin, /dev/fd/N) is read there; a named FIFO is held to its mode', () => {
  // What fstat gives on macOS (XNU pipe_stat: S_IFIFO | 0660, the caller's uid) for the pipe of
  // `--password-file <(pass show unc)` or `echo pw | unc … --password-file /dev/stdin`.
  const pipe = { isFile: () => false, isFIFO: () => true, uid: 501, mode: 0o010660 };
  const darwin = { uid: 501, platform: 'darwin' as const };
  for (const path of ['/dev/stdin', '/dev/fd/63', '/dev/fd/0'])
    assert.doesNotThrow(() => checkSecretFileStats(path, pipe, 'a password', darwin), path);
  // A named FIFO on a disk reports its own mode, which others may use.
  assert.throws(() => checkSecretFileStats('/tmp/pw.fifo', pipe, 'a password', darwin), badSecretFile);
  // Elsewhere an anonymous pipe is 0600 (Linux pipefs): 0660 there is a named FIFO's mode.
  assert.throws(
    () => checkSecretFileStats('/dev/fd/63', pipe, 'a password', { uid: 501, platform: 'linux' }),
    badSecretFile,
  );
  // Not a pipe: a file handed over as a descriptor (`3< pw`) is held to its mode everywhere.
  const file = { isFile: () => true, isFIFO: () => false, uid: 501, mode: 0o100660 };
  assert.throws(() => checkSecretFileStats('/dev/fd/3', file, 'a password', darwin), badSecretFile);
  // Another user's pipe stays refused.
  assert.throws(
    () => checkSecretFileStats('/dev/stdin', { ...pipe, uid: 502 }, 'a password', darwin),
    badSecretFile,
  );
});
