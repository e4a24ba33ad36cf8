/**
 * BAD_HOME for links on the way to a home that someone else can replace after the check (a link of
 * theirs in a sticky folder, a link in a folder on neither way walked).
 * The tests run as root in CI: another user's folder or link is made with chown.
 */
import assert from 'node:assert/strict';
import { chmodSync, chownSync, lchownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { UncError } from '@unc/core';
import { Context } from '../src/context.js';
import { checkHome } from '../src/home.js';

const ROOT = process.getuid?.() === 0;
const OTHER_UID = 12345;
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function base(): string {
  const dir = mkdtempSync(join(tmpdir(), 'unc-home-folders-'));
  dirs.push(dir);
  return dir;
}
function folder(path: string, mode: number, uid?: number): string {
  mkdirSync(path, { recursive: true });
  chmodSync(path, mode);
  if (uid !== undefined) chownSync(path, uid, uid);
  return path;
}
test('attack: a link of another user in a sticky folder, on the way to the home, is refused: they can repoint it after the check', {
  skip: !ROOT && 'needs root, to chown a link to another user',
}, () => {
  const b = base();
  const sticky = folder(join(b, 'sticky'), 0o1777, 0);
  const mine = folder(join(b, 'mine'), 0o700);
  const home = folder(join(mine, 'home'), 0o700);
  const theirs = (target: string, path: string) => {
    symlinkSync(target, path);
    lchownSync(path, OTHER_UID, OTHER_UID);
    return path;
  };
  const refused = (path: string, link: string) =>
    assert.throws(
      () => checkHome(path),
      (err: unknown) =>
        err instanceof UncError &&
        err.code === 'BAD_HOME' &&
        err.message.startsWith(`the link ${link}, on the way to the home `) &&
        /belongs to uid 12345.*others can write: they can point it elsewhere/.test(err.message),
    );
  // A folder on the way a link of theirs, to a folder of the user's.
  const link = theirs(mine, join(sticky, 'link'));
  refused(join(link, 'home'), link);
  refused(join(link, 'later', 'home'), link);
  // The home itself a link of theirs, to the user's home; every command refuses it.
  const homeLink = theirs(home, join(sticky, 'homelink'));
  refused(homeLink, homeLink);
  assert.throws(() => new Context({ home: homeLink }), { code: 'BAD_HOME' });
  // A link of the user's that leads through one of theirs.
  symlinkSync(link, join(sticky, 'first'));
  refused(join(sticky, 'first', 'home'), link);
  // A link of theirs in a folder only the user can write: they cannot replace it; accepted.
  theirs(home, join(mine, 'alias'));
  checkHome(join(mine, 'alias'));
  // The user's own links in the sticky folder: accepted.
  lchownSync(link, 0, 0);
  lchownSync(homeLink, 0, 0);
  checkHome(join(link, 'home'));
  checkHome(homeLink);
  checkHome(join(sticky, 'first', 'home'));
});

test('attack: a link to a link that lies in a folder on neither way to the home (one anyone can write) is refused', {
  skip: process.platform === 'win32',
}, () => {
  const b = base();
  const mine = folder(join(b, 'mine'), 0o700);
  const other = folder(join(b, 'other'), 0o700);
  folder(join(other, 'home'), 0o700);
  const open = folder(join(b, 'open'), 0o777);
  // mine/via → open/hop → other: the home's path names mine, it really lies in other; the hop lies
  // in open, which anyone can write, and so replace the hop with a link to a home of theirs.
  symlinkSync(other, join(open, 'hop'));
  symlinkSync(join(open, 'hop'), join(mine, 'via'));
  assert.throws(
    () => checkHome(join(mine, 'via', 'home')),
    (err: unknown) =>
      err instanceof UncError &&
      err.code === 'BAD_HOME' &&
      err.message.startsWith(`the folder ${open}, above the home `),
  );
  // A relative hop, and the same home not yet made: refused all the same.
  rmSync(join(open, 'hop'));
  symlinkSync('../other', join(open, 'hop'));
  assert.throws(() => checkHome(join(mine, 'via', 'home')), { code: 'BAD_HOME' });
  assert.throws(() => checkHome(join(mine, 'via', 'later')), { code: 'BAD_HOME' });
  // The hop's folder no longer writable by others: accepted.
  chmodSync(open, 0o755);
  checkHome(join(mine, 'via', 'home'));
  // Links in a loop are the system's error to give (ELOOP), not a hang.
  symlinkSync(join(mine, 'loop'), join(mine, 'loop'));
  assert.throws(() => checkHome(join(mine, 'loop', 'home')), { code: 'ELOOP' });
});
