/**
 * BAD_HOME for the folders above a home (and for a node home's config folder): whoever can write a
 * folder above the home can rename the home away and put their own in its place, with their config
 * and keys, however well the home itself is kept. The rule is OpenSSH's StrictModes: each folder
 * above belongs to this user or root, and no one else can write it, unless it is a sticky folder
 * of root's (/tmp). The tests run as root in CI: another user's folder is made with chown.
 */
import assert from 'node:assert/strict';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { UncError } from '@unc/core';
import { initHome, loadHome } from '../src/commands/init.js';
import { Context } from '../src/context.js';
import { checkHome, makeHome } from '../src/home.js';
import { Keyring } from '../src/keyring.js';
import { runUnc } from './helpers.js';

const ROOT = process.getuid?.() === 0;
const OTHER_UID = 12345;
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
/** A fresh folder of this user's, 0700, in the system's temporary folder. */
function base(): string {
  const dir = mkdtempSync(join(tmpdir(), 'unc-home-parents-'));
  dirs.push(dir);
  return dir;
}
function folder(path: string, mode: number, uid?: number): string {
  mkdirSync(path, { recursive: true });
  chmodSync(path, mode);
  if (uid !== undefined) chownSync(path, uid, uid);
  return path;
}

/** checkHome refuses `home` naming `culprit` as the folder above it, and `why`. */
function refusedAbove(home: string, culprit: string, why: RegExp, what = 'home'): void {
  assert.throws(
    () => checkHome(home, what),
    (err: unknown) => {
      assert.ok(err instanceof UncError, String(err));
      assert.equal(err.code, 'BAD_HOME');
      assert.ok(
        err.message.startsWith(`the folder ${culprit}, above the ${what} `),
        `${err.message} does not name ${culprit}`,
      );
      assert.match(err.message, why);
      return true;
    },
  );
}

test('a home under a sticky folder of root (/tmp) is accepted, made or not yet', {
  skip: process.platform === 'win32',
}, () => {
  const tmp = statSync(tmpdir());
  if (tmp.uid === 0 && (tmp.mode & 0o1000) !== 0 && (tmp.mode & 0o002) !== 0) {
    // The system's own: the folder every test's home lies in.
    const home = base();
    checkHome(home);
    checkHome(join(home, 'later', 'home'));
    makeHome(join(home, 'later', 'home'));
    assert.equal(new Context({ home }).home, home);
  }
  if (ROOT) {
    // One made here, root's and sticky, writable by everyone.
    const sticky = folder(join(base(), 'sticky'), 0o1777, 0);
    checkHome(join(sticky, 'home'));
    makeHome(join(sticky, 'home'));
    new Keyring(join(sticky, 'home')).addTest('alice', new Uint8Array(32).fill(1), 'unc-test');
    // The sticky bit is what makes it safe: without it, refused.
    chmodSync(sticky, 0o777);
    refusedAbove(join(sticky, 'home'), sticky, /writable by its group and everyone \(mode 777\)/);
    // Sticky but another user's: they can rename whatever they like in it.
    chmodSync(sticky, 0o1777);
    chownSync(sticky, OTHER_UID, OTHER_UID);
    refusedAbove(join(sticky, 'home'), sticky, /belongs to uid 12345/);
  }
});

test('attack: a folder above the home that its group or everyone can write, not sticky, is refused', {
  skip: process.platform === 'win32',
}, async () => {
  const b = base();
  const open = folder(join(b, 'open'), 0o777);
  const home = join(open, 'home');
  // Not made yet, and made (0700, this user's: the home itself is fine).
  refusedAbove(home, open, /writable by its group and everyone \(mode 777\).*chmod go-w /);
  assert.equal(existsSync(home), false);
  folder(home, 0o700);
  refusedAbove(home, open, /rename the home away and put their own/);
  // Two levels down, still the folder that anyone can write is named.
  refusedAbove(join(home, 'deeper', 'home'), open, /everyone/);
  // Group-writable only, everyone-writable only.
  chmodSync(open, 0o770);
  refusedAbove(home, open, /writable by its group \(mode 770\)/);
  chmodSync(open, 0o703);
  refusedAbove(home, open, /writable by everyone \(mode 703\)/);
  // Every way in refuses it, and nothing is written: the context of every command, the keyring,
  // making a home, `unc init`.
  chmodSync(open, 0o777);
  const bad = (err: unknown) => err instanceof UncError && err.code === 'BAD_HOME';
  assert.throws(() => new Context({ home }), bad);
  assert.throws(() => new Keyring(home), bad);
  assert.throws(() => makeHome(join(open, 'fresh')), bad);
  await assert.rejects(initHome(home, 'alice'), bad);
  assert.deepEqual(readdirSync(open), ['home']);
  assert.deepEqual(readdirSync(home), []);
  // The real program: a clear error, naming the folder and the fix, and no config written.
  const run = await runUnc(['config', 'set', 'output', 'json', '--home', home]);
  assert.notEqual(run.code, 0);
  assert.match(run.stderr, new RegExp(`the folder ${open}, above the home ${home}, is writable`));
  assert.match(run.stderr, new RegExp(`chmod go-w ${open}`));
  assert.deepEqual(readdirSync(home), []);
  // Fixed as the message says, it is accepted.
  chmodSync(open, 0o755);
  checkHome(home);
  assert.equal(new Context({ home }).home, home);
  await initHome(home, 'alice');
  assert.equal(loadHome(home).moniker, 'alice');
});

test('attack: a folder above the home that another user owns is refused', {
  skip: !ROOT && 'needs root, to chown a folder to another user',
}, () => {
  const b = base();
  const theirs = folder(join(b, 'theirs'), 0o755, OTHER_UID);
  const home = folder(join(theirs, 'mine', 'home'), 0o700, 0);
  chownSync(join(theirs, 'mine'), 0, 0);
  // The folder right above the home is fine; the one above that is theirs: refused all the same.
  refusedAbove(
    home,
    theirs,
    /belongs to uid 12345, not to this user \(uid 0\) or root.*only you or root own/,
  );
  refusedAbove(join(home, 'keyring'), theirs, /uid 12345/, 'keyring folder');
  assert.throws(() => new Context({ home }), { code: 'BAD_HOME' });
  // Handed back, it is accepted.
  chownSync(theirs, 0, 0);
  checkHome(home);
  new Context({ home });
});

test('attack: a home reached through a link is checked along both ways: where the link lies, and where it leads', {
  skip: process.platform === 'win32',
}, () => {
  const b = base();
  const mine = folder(join(b, 'mine'), 0o700);
  const open = folder(join(b, 'open'), 0o777);
  // A link in a folder anyone can write, to a folder of the user's: they can replace the link.
  symlinkSync(mine, join(open, 'link'));
  refusedAbove(join(open, 'link', 'home'), open, /everyone/);
  folder(join(mine, 'home'), 0o700);
  refusedAbove(join(open, 'link', 'home'), open, /everyone/);
  // A link in the user's folder that leads into one anyone can write: the home really lies there.
  folder(join(open, 'real'), 0o700);
  symlinkSync(join(open, 'real'), join(mine, 'there'));
  refusedAbove(join(mine, 'there', 'home'), open, /everyone/);
  folder(join(open, 'real', 'home'), 0o700);
  refusedAbove(join(mine, 'there', 'home'), open, /everyone/);
  // The home itself a link, from the user's folder, to a home in a folder anyone can write.
  symlinkSync(join(open, 'real', 'home'), join(mine, 'homelink'));
  refusedAbove(join(mine, 'homelink'), open, /everyone/);
  // Links only among folders of the user's: fine.
  chmodSync(open, 0o755);
  checkHome(join(open, 'link', 'home'));
  checkHome(join(mine, 'there', 'home'));
  checkHome(join(mine, 'homelink'));
});

// `unc init` made its config folder with mkdirSync (recursive), which takes a folder it finds as
// it is: one already there, writable by others or theirs, got the keys, and `unc start` read them.
test("attack: a node home's config folder that others can write, or another user owns, is refused: no key written or read", {
  skip: process.platform === 'win32',
}, async () => {
  const home = folder(join(base(), 'node'), 0o700);
  const config = folder(join(home, 'config'), 0o777);
  const bad = (what: RegExp) => (err: unknown) =>
    err instanceof UncError &&
    err.code === 'BAD_HOME' &&
    /config folder/.test(err.message) &&
    what.test(err.message);
  await assert.rejects(initHome(home, 'alice'), bad(/writable by its group and everyone/));
  assert.deepEqual(readdirSync(config), []);
  chmodSync(config, 0o700);
  await initHome(home, 'alice');
  // Made writable later: the keys there are no longer read.
  chmodSync(config, 0o757);
  assert.throws(() => loadHome(home), bad(/writable by everyone.*chmod go-w/));
  chmodSync(config, 0o700);
  assert.equal(loadHome(home).moniker, 'alice');
  if (ROOT) {
    chownSync(config, OTHER_UID, OTHER_UID);
    assert.throws(() => loadHome(home), bad(/belongs to uid 12345/));
    const other = folder(join(base(), 'node'), 0o700);
    folder(join(other, 'config'), 0o700, OTHER_UID);
    await assert.rejects(initHome(other, 'bob'), bad(/belongs to uid 12345/));
    assert.deepEqual(readdirSync(join(other, 'config')), []);
  }
  // A file where the config folder goes is refused as no folder, nothing written.
  const filed = folder(join(base(), 'node'), 0o700);
  writeFileSync(join(filed, 'config'), 'not a folder\n');
  await assert.rejects(initHome(filed, 'carol'), { code: 'BAD_HOME' });
});
