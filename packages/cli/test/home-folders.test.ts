/**
 * BAD_HOME for what lies between a home's checks: the folders of a home that commands read as their
 * own (data/ with the chain and the signer's state, tls/, provider/, models/, gateway/, the dev
 * chain's vendor and TPM folders), and links on the way to a home that someone else can replace
 * after the check (a link of theirs in a sticky folder, a link in a folder on neither way walked).
 * The tests run as root in CI: another user's folder or link is made with chown.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  lchownSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { UncError } from '@unc/core';
import { initHome } from '../src/commands/init.js';
import { Context } from '../src/context.js';
import { checkHome } from '../src/home.js';
import { Keyring } from '../src/keyring.js';
import { runUnc, UNC } from './helpers.js';

const ROOT = process.getuid?.() === 0;
const OTHER_UID = 12345;
const ID = 'ab'.repeat(32);
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
/** A home of this user's with a test key `alice` in its keyring. */
function homeWithKey(): string {
  const home = folder(join(base(), 'home'), 0o700);
  new Keyring(home).addTest('alice', new Uint8Array(32).fill(1), 'unc-test');
  return home;
}
/** The run failed with BAD_HOME naming `what` and `why`. */
function refusedRun(run: { code: number | null; stderr: string }, what: string, why: RegExp): void {
  assert.notEqual(run.code, 0, run.stderr);
  assert.match(run.stderr, /BAD_HOME/, run.stderr);
  assert.match(run.stderr, new RegExp(`the ${what} `), run.stderr);
  assert.match(run.stderr, why, run.stderr);
}

/**
 * `unc dev` with `args`: how it exited, or `started` if its RPC came up (then stopped by its pid):
 * before the checks, a bad folder was taken and the chain ran; the test must not wait on it.
 */
function runDev(args: string[]): Promise<{ code: number | null; stderr: string; started: boolean }> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [UNC, 'dev', '--rpc-port', '0', '--chips', '0', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, UNC_LOG_LEVEL: 'warn' },
    });
    let out = '';
    let started = false;
    proc.stdout.on('data', (d) => {
      out += d;
      if (!started && /RPC\s+http:/.test(out)) {
        started = true;
        proc.kill('SIGTERM');
      }
    });
    proc.stderr.on('data', (d) => (out += d));
    proc.on('exit', (code) => resolve({ code, stderr: out, started }));
  });
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

// The home's own subfolders were taken as they were found: one that someone else owns or can
// write (made when the home was open, restored from a backup as another user, a link planted to
// one of theirs) had the node read its signer state, the miner its TLS key, models and used nonces.
test('attack: data/ that others can write or own is refused by `unc start` before the node opens it', {
  skip: process.platform === 'win32',
}, async () => {
  const home = folder(join(base(), 'node'), 0o700);
  await initHome(home, 'alice');
  const data = folder(join(home, 'data'), 0o777);
  const start = () => runUnc(['start', '--home', home, '--genesis', join(home, 'missing.json')]);
  refusedRun(await start(), 'data folder', /writable by its group and everyone.*chmod go-w/);
  assert.deepEqual(readdirSync(data), []);
  if (ROOT) {
    chmodSync(data, 0o700);
    chownSync(data, OTHER_UID, OTHER_UID);
    refusedRun(await start(), 'data folder', /belongs to uid 12345/);
    // A link planted at data/, to a folder of theirs.
    rmSync(data, { recursive: true });
    symlinkSync(folder(join(base(), 'theirs'), 0o700, OTHER_UID), data);
    refusedRun(await start(), 'data folder', /belongs to uid 12345/);
  }
  // Not there: made 0700 (then the missing genesis stops it).
  rmSync(data, { recursive: true, force: true });
  const run = await start();
  assert.match(run.stderr, /BAD_GENESIS/, run.stderr);
  assert.equal(statSync(data).mode & 0o777, 0o700);
});

test('attack: tls/ that others can write is refused by `unc miner init` (no key written) and `unc market offer rotate-tls`', {
  skip: process.platform === 'win32',
}, async () => {
  const home = homeWithKey();
  const tls = folder(join(home, 'tls'), 0o777);
  refusedRun(
    await runUnc(['miner', 'init', '--from', 'alice', '--home', home]),
    'TLS folder',
    /writable by its group and everyone/,
  );
  assert.deepEqual(readdirSync(tls), []);
  assert.equal(existsSync(join(home, 'miner.json')), false);
  refusedRun(
    await runUnc(['market', 'offer', 'rotate-tls', ID, '--from', 'alice', '--home', home, '-y']),
    'TLS folder',
    /writable by its group and everyone/,
  );
  // Fixed, `unc miner init` writes the key there.
  chmodSync(tls, 0o700);
  const run = await runUnc(['miner', 'init', '--from', 'alice', '--home', home]);
  assert.equal(run.code, 0, run.stderr);
  assert.ok(existsSync(join(tls, 'provider.key')));
});

test('attack: models/, provider/ and tls/ that others can write are refused by `unc miner start` before it starts', {
  skip: process.platform === 'win32',
}, async () => {
  const home = homeWithKey();
  // A node nobody answers at: the command must stop at the folders, before it asks the node.
  const start = (...extra: string[]) =>
    runUnc([
      'miner',
      'start',
      '--from',
      'alice',
      '--dev-chips',
      '1',
      '--provider-port',
      '0',
      '--node',
      'http://127.0.0.1:9',
      '--home',
      home,
      ...extra,
    ]);
  for (const [name, what, extra] of [
    ['models', 'models folder', []],
    ['provider', 'provider folder', []],
    ['tls', 'TLS folder', []],
  ] as const) {
    const dir = folder(join(home, name), 0o777);
    refusedRun(await start(...extra), what, /writable by its group and everyone/);
    assert.deepEqual(readdirSync(dir), []);
    chmodSync(dir, 0o700);
  }
  // Served without TLS, tls/ is not read: not checked.
  chmodSync(join(home, 'tls'), 0o777);
  const plain = await start('--no-provider-tls');
  assert.doesNotMatch(plain.stderr, /BAD_HOME/);
  assert.notEqual(plain.code, 0);
});

test('attack: the gateway folder that others can write is refused by `unc gateway jobs`', {
  skip: process.platform === 'win32',
}, async () => {
  const home = homeWithKey();
  folder(join(home, 'gateway'), 0o777);
  refusedRun(await runUnc(['gateway', 'jobs', '--home', home]), 'gateway folder', /everyone/);
});

test('attack: `unc dev` refuses a data/ or provider/models/ that others can write before its chain starts', {
  skip: process.platform === 'win32',
}, async () => {
  for (const sub of [['data'], ['provider', 'models']]) {
    const home = folder(join(base(), 'dev'), 0o700);
    const dir = folder(join(home, ...sub), 0o777);
    const run = await runDev(['--home', home]);
    assert.equal(run.started, false, `unc dev started on a ${sub.join('/')} anyone can write`);
    refusedRun(run, sub[sub.length - 1] === 'data' ? 'data folder' : 'models folder', /everyone/);
    assert.deepEqual(readdirSync(dir), []);
  }
});
