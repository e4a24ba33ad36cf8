/**
 * The one writer of small files replaced whole (writeFileWhole), which the CLI's keyring and
 * config, the signer's state and proposal records, the miner's urgent-fee record, the vendor CA,
 * the provider's TLS files and its nonce file share: the file ends up whole with exactly the mode
 * asked for, a link at its path is replaced, a link at any temporary name
 * is never followed, and a write that fails leaves no temporary file behind.
 */
import assert from 'node:assert/strict';
import {
  existsSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import {
  fsyncDirectory,
  removeWholeLeftovers,
  removeWholeLeftoversIn,
  writeFileWhole,
} from '../../src/storage/write-whole.js';

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
  assert.equal(lstatSync(path).mode & 0o777, 0o644);
  assert.deepEqual(readdirSync(dir), ['a.json']);
  fsyncDirectory(dir);
});

test('the mode asked for is the mode the file gets, under a umask that would narrow it', (t) => {
  if (process.platform === 'win32') return t.skip('no POSIX modes');
  const dir = tempDir();
  const cert = join(dir, 'root.pem');
  const before = process.umask(0o077);
  try {
    // A certificate others must read: under umask 077 it came out 0o600.
    writeFileWhole(cert, 'certificate\n', 0o644);
    assert.equal(lstatSync(cert).mode & 0o777, 0o644);
    writeFileWhole(cert, 'certificate\n', 0o640);
    assert.equal(lstatSync(cert).mode & 0o777, 0o640);
  } finally {
    process.umask(before);
  }
  // And never wider than asked under a lax umask.
  const lax = process.umask(0);
  try {
    writeFileWhole(join(dir, 'key.pem'), 'key\n');
    assert.equal(lstatSync(join(dir, 'key.pem')).mode & 0o777, 0o600);
  } finally {
    process.umask(lax);
  }
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

test("a killed write's temporary files are removed at load: only those, and a link's target never", () => {
  const dir = tempDir();
  const outside = tempDir();
  const path = join(dir, 'config.json');
  writeFileSync(path, '{"node":"kept"}\n');
  const old = new Date(Date.now() - 10 * 60_000);
  const leftover = (name: string) => {
    writeFileSync(join(dir, name), 'a whole copy\n');
    utimesSync(join(dir, name), old, old);
  };
  leftover('config.json.0123456789ab.tmp');
  leftover('config.json.ba9876543210.tmp');
  // Not of the pattern: another file's, upper-case hex, 11 or 13 digits, the old fixed name, a prefix.
  for (const other of [
    'other.json.0123456789ab.tmp',
    'config.json.0123456789AB.tmp',
    'config.json.0123456789a.tmp',
    'config.json.0123456789abc.tmp',
    'config.json.tmp',
    'xconfig.json.0123456789ab.tmp',
    'config.json.0123456789ab.tmp.bak',
  ])
    leftover(other);
  // A link named like a leftover, pointing at a file elsewhere: the link goes, its target stays.
  const target = join(outside, 'precious');
  writeFileSync(target, 'not ours\n');
  symlinkSync(target, join(dir, 'config.json.cccccccccccc.tmp'));
  lutimesSync(join(dir, 'config.json.cccccccccccc.tmp'), old, old);
  // A directory named like one is not a file this writer made.
  mkdirSync(join(dir, 'config.json.dddddddddddd.tmp'));
  utimesSync(join(dir, 'config.json.dddddddddddd.tmp'), old, old);
  // A fresh one may be another process's write in progress.
  writeFileSync(join(dir, 'config.json.eeeeeeeeeeee.tmp'), 'being written\n');

  assert.deepEqual(removeWholeLeftovers(path).sort(), [
    'config.json.0123456789ab.tmp',
    'config.json.ba9876543210.tmp',
    'config.json.cccccccccccc.tmp',
  ]);
  assert.equal(readFileSync(target, 'utf8'), 'not ours\n');
  assert.equal(readFileSync(path, 'utf8'), '{"node":"kept"}\n');
  assert.equal(existsSync(join(dir, 'config.json.cccccccccccc.tmp')), false);
  assert.deepEqual(readdirSync(dir).sort(), [
    'config.json',
    'config.json.0123456789AB.tmp',
    'config.json.0123456789a.tmp',
    'config.json.0123456789ab.tmp.bak',
    'config.json.0123456789abc.tmp',
    'config.json.dddddddddddd.tmp',
    'config.json.eeeeeeeeeeee.tmp',
    'config.json.tmp',
    'other.json.0123456789ab.tmp',
    'xconfig.json.0123456789ab.tmp',
  ]);
  // A directory that is not there: nothing to do, no error.
  assert.deepEqual(removeWholeLeftovers(join(dir, 'missing', 'a.json')), []);
});

// For a folder of files of many names (the keyring's `<key>.json`), one sweep of the folder: it
// must take exactly what removeWholeLeftovers takes for each name it accepts, and nothing else.
test('property: removeWholeLeftoversIn removes exactly the old `<accepted name>.<12 hex>.tmp` files', () => {
  const piece = fc.constantFrom('a', 'key', '.json', '.', 'tmp', '.tmp', '0123456789ab', 'ABCDEF', 'f', '-');
  const base = fc.oneof(
    fc.constantFrom('key.json', 'a.json', '.json', 'key', 'A.json'),
    fc.array(piece, { minLength: 1, maxLength: 4 }).map((p) => p.join('')),
  );
  // Names of the pattern (a base, 12 hex, `.tmp`) or near it (11 or 13 digits, upper case, another
  // end), and names of no pattern at all.
  const near = fc
    .tuple(
      base,
      fc.oneof(fc.stringMatching(/^[0-9a-f]{12}$/), fc.stringMatching(/^[0-9a-fA-F]{11,13}$/)),
      fc.constantFrom('.tmp', '.tmp', '.tmp.bak', 'tmp', '.TMP', ''),
    )
    .map(([b, h, end]) => `${b}.${h}${end}`);
  const name = fc.oneof(near, base).filter((n) => n !== '.' && n !== '..' && n.length < 200);
  fc.assert(
    fc.property(fc.uniqueArray(name, { minLength: 1, maxLength: 12 }), (names) => {
      const dir = tempDir();
      const old = new Date(Date.now() - 10 * 60_000);
      for (const n of names) {
        writeFileSync(join(dir, n), 'x');
        utimesSync(join(dir, n), old, old);
      }
      const accepts = (base: string) => base.endsWith('.json') && /^[a-z]/.test(base);
      const leftover = (n: string) => {
        const m = /^(.+)\.[0-9a-f]{12}\.tmp$/s.exec(n);
        return m !== null && accepts(m[1]!);
      };
      const removed = removeWholeLeftoversIn(dir, accepts).sort();
      assert.deepEqual(removed, names.filter(leftover).sort());
      assert.deepEqual(readdirSync(dir).sort(), names.filter((n) => !leftover(n)).sort());
      rmSync(dir, { recursive: true, force: true });
    }),
    { numRuns: 200 },
  );
});

test('removeWholeLeftoversIn takes a leftover whose file was never put in place, and keeps a fresh one', () => {
  const dir = tempDir();
  const old = new Date(Date.now() - 10 * 60_000);
  writeFileSync(join(dir, 'bob.json.0123456789ab.tmp'), 'the only copy of a key being added\n');
  utimesSync(join(dir, 'bob.json.0123456789ab.tmp'), old, old);
  writeFileSync(join(dir, 'carol.json.0123456789ab.tmp'), 'being written\n');
  assert.deepEqual(
    removeWholeLeftoversIn(dir, (base) => base.endsWith('.json')),
    ['bob.json.0123456789ab.tmp'],
  );
  assert.deepEqual(readdirSync(dir), ['carol.json.0123456789ab.tmp']);
  assert.deepEqual(
    removeWholeLeftoversIn(join(dir, 'missing'), () => true),
    [],
  );
});
