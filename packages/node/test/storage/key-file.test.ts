/** readPrivateKeyFile: the owner-only rule, checked on the file the bytes are read from. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { UncError } from '@unc/core';
import { readPrivateKeyFile } from '../../src/storage/key-file.js';

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
