/**
 * The old job folders (`unc-job-XXXXXX`) removeStaleJobFolders removes only when no process works
 * in them: a process it fails to see, or sees under another name for the same folder, must keep
 * the folder, since a live job process's folder removed under it fails every job it runs.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readlinkSync,
  rmSync,
  utimesSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { removeStaleJobFolders } from '../src/provider/sandbox.js';

const inInitPidNamespace =
  process.platform === 'linux' && readlinkSync('/proc/self/ns/pid') === 'pid:[4026531836]';
const root = process.getuid?.() === 0;
const works = (cmd: string, args: string[]) => spawnSync(cmd, args).status === 0;
const canUnshareMount = root && inInitPidNamespace && works('unshare', ['--mount', 'true']);
const canSetpriv =
  root &&
  inInitPidNamespace &&
  works('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'true']);
const NOBODY = 65534;
const SANDBOX = new URL('../src/provider/sandbox.js', import.meta.url).href;

const dirs: string[] = [];
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) process.kill(c.pid!, 'SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

/** An old version's job folder in `parent`: 0700, an hour old (past every age rule). */
function oldFolder(parent: string, owner?: number): string {
  const folder = join(parent, 'unc-job-aB3xYz');
  mkdirSync(folder, { mode: 0o700 });
  mkdirSync(join(folder, 'sub'));
  if (owner !== undefined) chownSync(folder, owner, owner);
  const anHourAgo = new Date(Date.now() - 3_600_000);
  utimesSync(folder, anHourAgo, anHourAgo);
  return folder;
}

/** Resolves once `check` holds (polled; the test's own timeout bounds it). */
async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((r) => setTimeout(r, 20));
}

function cwdOf(pid: number): string {
  try {
    return readlinkSync(`/proc/${pid}/cwd`);
  } catch {
    return '';
  }
}

function exeOf(pid: number): string {
  try {
    return readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return '';
  }
}

/**
 * A job process of user nobody at work in `folder` that nobody cannot inspect: it runs a program
 * nobody may execute but not read, so the kernel makes it non-dumpable (as a setuid or
 * file-capability program, or prctl(PR_SET_DUMPABLE, 0), would), and its /proc/<pid>/cwd is
 * unreadable by its own user.
 */
async function hiddenWorker(folder: string): Promise<ChildProcess> {
  const bin = tempDir('unc-oldjob-bin-');
  chmodSync(bin, 0o755);
  const sleeper = join(bin, 'job-sleep');
  copyFileSync('/bin/sleep', sleeper);
  chmodSync(sleeper, 0o111);
  const worker = spawn(sleeper, ['1000'], { cwd: folder, uid: NOBODY, gid: NOBODY, stdio: 'ignore' });
  children.push(worker);
  await until(() => exeOf(worker.pid!) === sleeper);
  return worker;
}

/** Stops `child` by its PID and waits until it is reaped. */
async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  process.kill(child.pid!, 'SIGKILL');
  await exited;
}

/** removeStaleJobFolders(`parent`) run as user nobody, after `setup` (a shell line run first, as root). */
function removeAsNobody(parent: string, setup = ''): string[] {
  const code = `const { removeStaleJobFolders } = await import(${JSON.stringify(SANDBOX)});
console.log(JSON.stringify(removeStaleJobFolders(${JSON.stringify(parent)})));`;
  const run = spawnSync(
    'unshare',
    [
      '--mount',
      'sh',
      '-c',
      `${setup} exec setpriv --reuid=${NOBODY} --regid=${NOBODY} --clear-groups "$0" --input-type=module -e "$1"`,
      process.execPath,
      code,
    ],
    { encoding: 'utf8' },
  );
  assert.equal(run.status, 0, run.stderr);
  return JSON.parse(run.stdout) as string[];
}

describe('old job folders: a process at work in one keeps it', () => {
  test('a job process in another mount namespace, where the folder has another path, keeps it', {
    skip: !canUnshareMount && 'needs root and unshare in the initial pid namespace',
  }, async () => {
    const tmp = tempDir('unc-oldjob-ns-');
    const folder = oldFolder(tmp);
    // A container's view: the same directory mounted elsewhere, the job process at work in it there.
    const elsewhere = tempDir('unc-oldjob-mnt-');
    const worker = spawn(
      'unshare',
      [
        '--mount',
        'sh',
        '-c',
        'mount --bind "$0" "$1" && cd "$1/unc-job-aB3xYz" && exec sleep 1000',
        tmp,
        elsewhere,
      ],
      { stdio: 'ignore' },
    );
    children.push(worker);
    await until(() => cwdOf(worker.pid!) === join(elsewhere, 'unc-job-aB3xYz'));
    assert.deepEqual(removeStaleJobFolders(tmp), [], 'the folder a process works in was removed');
    assert.ok(existsSync(folder));
    await stop(worker);
  });

  test('a process of this user whose working directory it cannot read keeps every old folder', {
    skip: !canSetpriv && 'needs root and setpriv in the initial pid namespace',
  }, async () => {
    const parent = tempDir('unc-oldjob-hidden-');
    chownSync(parent, NOBODY, NOBODY);
    chmodSync(parent, 0o700);
    const folder = oldFolder(parent, NOBODY);
    const worker = await hiddenWorker(folder);
    try {
      assert.deepEqual(removeAsNobody(parent), [], 'a folder an unseen process may work in was removed');
      assert.ok(existsSync(folder));
    } finally {
      await stop(worker);
    }
  });

  test('a /proc that hides processes (hidepid) keeps every old folder', {
    skip: !canSetpriv && 'needs root and setpriv in the initial pid namespace',
  }, async () => {
    const parent = tempDir('unc-oldjob-hidepid-');
    chownSync(parent, NOBODY, NOBODY);
    chmodSync(parent, 0o700);
    const folder = oldFolder(parent, NOBODY);
    const worker = await hiddenWorker(folder);
    try {
      // hidepid=2: a process one may not inspect is not even listed.
      assert.deepEqual(
        removeAsNobody(parent, 'mount -t proc -o hidepid=2 proc /proc &&'),
        [],
        'a folder a hidden process may work in was removed',
      );
      assert.ok(existsSync(folder));
    } finally {
      await stop(worker);
    }
  });

  test('a job process of this user at work in a folder inside it keeps it', {
    skip: !canSetpriv && 'needs root and setpriv in the initial pid namespace',
  }, async () => {
    const parent = tempDir('unc-oldjob-sub-');
    chownSync(parent, NOBODY, NOBODY);
    chmodSync(parent, 0o700);
    const folder = oldFolder(parent, NOBODY);
    const worker = spawn('sleep', ['1000'], {
      cwd: join(folder, 'sub'),
      uid: NOBODY,
      gid: NOBODY,
      stdio: 'ignore',
    });
    children.push(worker);
    await until(() => cwdOf(worker.pid!) === join(folder, 'sub'));
    assert.deepEqual(removeAsNobody(parent), []);
    assert.ok(existsSync(folder));
    await stop(worker);
  });

  test('an old folder on a filesystem not known to be local (another machine may work in it) is left', {
    skip: !canSetpriv && 'needs root and setpriv in the initial pid namespace',
  }, () => {
    // ramfs stands for one shared between machines (NFS, CIFS, a cluster's): local or not, it is
    // none of those known to be local, and a job process of another machine would be unseen here.
    const parent = tempDir('unc-oldjob-remote-');
    const folder = join(parent, 'unc-job-aB3xYz');
    const setup = [
      `mount -t ramfs ramfs '${parent}'`,
      `chown ${NOBODY}:${NOBODY} '${parent}'`,
      `chmod 700 '${parent}'`,
      `mkdir -m 700 '${folder}'`,
      `chown ${NOBODY}:${NOBODY} '${folder}'`,
      `touch -d '1 hour ago' '${folder}'`,
      '',
    ].join(' && ');
    assert.deepEqual(removeAsNobody(parent, setup), [], 'an old folder on a shared filesystem was removed');
  });

  test('the same folders, no process in them, are removed', {
    skip: !canSetpriv && 'needs root and setpriv in the initial pid namespace',
  }, () => {
    // (Another of user nobody's processes this one may not inspect, from elsewhere, keeps it too.)
    const parent = tempDir('unc-oldjob-free-');
    chownSync(parent, NOBODY, NOBODY);
    chmodSync(parent, 0o700);
    const folder = oldFolder(parent, NOBODY);
    assert.deepEqual(removeAsNobody(parent), [folder]);
    assert.ok(!existsSync(folder));
  });
});
