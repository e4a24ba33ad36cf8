/**
 * The one writer of small files replaced whole (writeFileWhole), which the CLI's keys and config,
 * the miner's urgent-fee record, the vendor CA and the provider's nonce file share: the file ends
 * up whole with the mode asked for, a link at its path is replaced, a link at any temporary name
 * is never followed, and a write that fails leaves no temporary file behind.
 */
import assert from 'node:assert/strict';
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fsyncDirectory, writeFileWhole } from '../../src/storage/write-whole.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'unc-write-whole-'));
  dirs.push(dir);
  return dir;
}

test('writes the whole file with the mode asked for, and replaces an older one', () => {
  const dir = tempDir();
  const path = join(dir, 'a.json');
  writeFileWhole(path, 'first\n');
  assert.equal(lstatSync(path).mode & 0o777, 0o600, 'owner-only by default');
  writeFileWhole(path, new TextEncoder().encode('second\n'), 0o644);
  assert.equal(readFileSync(path, 'utf8'), 'second\n');
  assert.equal(lstatSync(path).mode & 0o777, 0o644 & ~process.umask());
  assert.deepEqual(readdirSync(dir), ['a.json']);
  fsyncDirectory(dir);
});

test('attack: a link at the path is replaced, never written through', () => {
  const dir = tempDir();
  const victim = join(dir, 'victim.txt');
  writeFileSync(victim, 'the user own file\n');
  const path = join(dir, 'key.json');
  symlinkSync(victim, path);
  writeFileWhole(path, 'secret\n');
  assert.equal(readFileSync(victim, 'utf8'), 'the user own file\n');
  assert.ok(lstatSync(path).isFile());
  assert.equal(readFileSync(path, 'utf8'), 'secret\n');
});

test('a rename that fails leaves the old entry and no temporary file', () => {
  const dir = tempDir();
  // A directory with something in it cannot be renamed over: the rename throws after the
  // temporary file was written and fsynced.
  const path = join(dir, 'config.json');
  mkdirSync(path);
  writeFileSync(join(path, 'inside'), 'x');
  assert.throws(() => writeFileWhole(path, '{}\n'), /EISDIR|ENOTEMPTY|EEXIST|EPERM/);
  assert.deepEqual(readdirSync(dir), ['config.json']);
  assert.deepEqual(readdirSync(path), ['inside']);
});

test('a directory that is not there: thrown before anything is created', () => {
  const dir = tempDir();
  assert.throws(() => writeFileWhole(join(dir, 'missing', 'a.json'), 'x'), /ENOENT/);
  assert.deepEqual(readdirSync(dir), []);
});
