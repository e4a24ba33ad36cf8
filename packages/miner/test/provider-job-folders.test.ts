/**
 * The job folders a provider leaves in the temporary directory when it is killed together with its
 * job processes (sandbox.ts, docs/jobs.md): a job process removes its folder only when its provider
 * goes while it lives, so `kill -9` of the whole process group left one folder per job process, for
 * good. Now each provider's job folders live in one `unc-jobs-<pid>-…` folder with an owner file,
 * and the next provider to start removes those of providers that no longer run, and nothing else.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statfsSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import fc from 'fast-check';
import { processIdentity } from '../src/process-identity.js';

/** sandbox.ts's JOBS_OWNER_FILE, spelled out: the kill -9 test runs against a sandbox.ts without it too. */
const JOBS_OWNER_FILE = 'owner.json';

/** Whether this process sees every process (the kernel's initial pid namespace). */
const inInitPidNamespace =
  process.platform === 'linux' && readlinkSync('/proc/self/ns/pid') === 'pid:[4026531836]';

/**
 * Whether this process can read the working directory of each of its user's processes: where it
 * cannot (root without every capability of a process it runs beside), one of them might work in
 * an old folder, and none is removed (provider-old-job-folders.test.ts).
 */
function everyProcessOfMineSeen(): boolean {
  const uid = String(process.getuid?.());
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      readlinkSync(`/proc/${name}/cwd`);
    } catch {
      try {
        const uids = /^Uid:\s+(.*)$/m.exec(readFileSync(`/proc/${name}/status`, 'utf8'))?.[1]?.split(/\s+/);
        if (uids?.includes(uid)) return false;
      } catch {
        // gone meanwhile
      }
    }
  }
  return true;
}
/** Whether the temporary directory is on a filesystem sandbox.ts's LOCAL_FILESYSTEMS names. */
const tmpIsLocal = [
  0xef53, 0x58465342, 0x9123683e, 0x01021994, 0x794c7630, 0x2fc12fc1, 0xf2f52010, 0xca451a4e,
].includes(Number(statfsSync(tmpdir()).type));
/** Whether old job folders (`unc-job-XXXXXX`) can be told here at all. */
const oldFoldersTold = inInitPidNamespace && tmpIsLocal && everyProcessOfMineSeen();

const dirs: string[] = [];
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

/** A provider's job pool (the real JobSandbox and job processes) in a process of its own. */
function providerScript(dir: string): string {
  const file = join(dir, 'provider.mjs');
  const index = new URL('../src/index.js', import.meta.url).href;
  writeFileSync(
    file,
    `import { DEFAULT_OCR_MODELS, JobSandbox } from ${JSON.stringify(index)};
const quiet = { debug() {}, info() {}, warn() {}, error() {}, child() { return quiet; } };
const sandbox = new JobSandbox({
  workers: 2, executionProvider: 'cpu', ocr: DEFAULT_OCR_MODELS, timeoutMs: 60_000,
  memoryBytes: 4 * 1024 ** 3, heapMb: 512, maxSessions: 2, maxOutputBytes: 1 << 20, logger: quiet,
});
await sandbox.start();
process.on('SIGTERM', () => sandbox.stop().then(() => process.exit(0)));
setInterval(() => {}, 1_000);
console.log('ready');
`,
  );
  return file;
}

/** Starts the provider script in its own process group, with TMPDIR set; resolves once ready. */
async function startProvider(script: string, tmp: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [script], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, TMPDIR: tmp },
    detached: true,
  });
  children.push(child);
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the provider did not start in 60 s:\n${out}`)), 60_000);
    child.stderr!.on('data', (d) => (out += d));
    child.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`the provider exited (${signal ?? code}):\n${out}`));
    });
  });
  return child;
}

/** The processes whose parent is `pid` (its job processes). */
function childrenOf(pid: number): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) found.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

const alive = (pid: number) => existsSync(`/proc/${pid}`) && !/\) Z /.test(statOf(pid));
function statOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return '';
  }
}

async function waitDead(pids: number[]): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (pids.some(alive)) {
    if (Date.now() > deadline) throw new Error(`still alive: ${pids.filter(alive).join(', ')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("a killed provider's job folders", () => {
  test('kill -9 of a provider and its job processes: the next provider removes their folders, and nothing else', {
    skip:
      (process.platform !== 'linux' && 'reads /proc') ||
      (!tmpIsLocal && 'the temporary directory is on a filesystem not known to be local'),
    timeout: 180_000,
  }, async () => {
    const work = tempDir('unc-jobfolders-');
    const tmp = join(work, 'tmp');
    mkdirSync(tmp);
    const script = providerScript(work);

    const first = await startProvider(script, tmp);
    const jobs = childrenOf(first.pid!);
    assert.ok(jobs.length >= 1, 'the provider runs job processes');
    // The provider, its job processes and their watchdog threads die at once: none cleans up.
    process.kill(-first.pid!, 'SIGKILL');
    await waitDead([first.pid!, ...jobs]);
    const leftovers = readdirSync(tmp).filter((n) => n.startsWith('unc-job'));
    assert.ok(leftovers.length > 0, 'the killed provider left its job folders');

    // What the next start must leave alone.
    const me = processIdentity(process.pid);
    const owner = (pid: number, started?: string) =>
      `${JSON.stringify({ kind: 'unc provider job folders', pid, boot: me.boot, started })}\n`;
    const dead = first.pid!;
    const live = join(tmp, `unc-jobs-${process.pid}-live`);
    mkdirSync(live);
    writeFileSync(join(live, JOBS_OWNER_FILE), owner(process.pid, me.started));
    const target = join(work, 'target');
    mkdirSync(target);
    writeFileSync(join(target, JOBS_OWNER_FILE), owner(dead));
    writeFileSync(join(target, 'keep'), 'not a job folder');
    symlinkSync(target, join(tmp, `unc-jobs-${dead}-link`));
    const noOwner = join(tmp, `unc-jobs-${dead}-noowner`);
    mkdirSync(noOwner);
    const linkedOwner = join(tmp, `unc-jobs-${dead}-linkedowner`);
    mkdirSync(linkedOwner);
    symlinkSync(join(target, JOBS_OWNER_FILE), join(linkedOwner, JOBS_OWNER_FILE));
    const otherName = join(tmp, 'unc-jobs-1-othername');
    mkdirSync(otherName);
    writeFileSync(join(otherName, JOBS_OWNER_FILE), owner(dead));
    const planted = [live, join(tmp, `unc-jobs-${dead}-link`), noOwner, linkedOwner, otherName];

    const second = await startProvider(script, tmp);
    const left = leftovers.filter((n) => existsSync(join(tmp, n)));
    assert.deepEqual(left, [], 'the killed provider’s job folders are still there');
    for (const p of planted) assert.ok(existsSync(p), `${p} was removed`);
    assert.ok(existsSync(join(target, 'keep')), 'a link was followed');
    assert.ok(
      readdirSync(tmp).some((n) => n.startsWith(`unc-jobs-${second.pid}-`)),
      'the new provider has its folder',
    );

    // A provider that stops removes its own.
    const exited = new Promise((r) => second.once('exit', r));
    second.kill('SIGTERM');
    await exited;
    assert.deepEqual(
      readdirSync(tmp).filter((n) => n.startsWith(`unc-jobs-${second.pid}-`)),
      [],
    );

    // A provider killed alone: its job processes see it gone and remove their folders, and the
    // last one the provider's folder (only its owner file is left in it).
    const third = await startProvider(script, tmp);
    const thirdJobs = childrenOf(third.pid!);
    assert.ok(thirdJobs.length >= 1);
    process.kill(third.pid!, 'SIGKILL');
    await waitDead([third.pid!, ...thirdJobs]);
    assert.deepEqual(
      readdirSync(tmp).filter((n) => n.startsWith(`unc-jobs-${third.pid}-`)),
      [],
      'a provider killed alone left its folder',
    );
  });

  test('property: removeStaleJobFolders removes exactly the real folders, of this user, whose owner file names a process gone', {
    skip:
      (process.platform !== 'linux' && 'reads /proc') ||
      (!tmpIsLocal && 'the temporary directory is on a filesystem not known to be local'),
  }, async () => {
    const { removeStaleJobFolders } = await import('../src/provider/sandbox.js');
    assert.equal((await import('../src/provider/sandbox.js')).JOBS_OWNER_FILE, JOBS_OWNER_FILE);
    const me = { ...processIdentity(process.pid), pidns: readlinkSync('/proc/self/ns/pid') };
    // This very pid with another start time: a process that had this pid before (gone).
    const gone = { pid: process.pid, boot: me.boot, started: '1', pidns: me.pidns };
    // The same, written by a provider in another pid namespace (a container sharing /tmp): its pid
    // means nothing here, its folder is left alone.
    const otherNs = { ...gone, pidns: 'pid:[1]' };
    const root = process.getuid?.() === 0;
    const kinds = [
      'stale',
      'live',
      'link',
      'noOwner',
      'badJson',
      'otherKind',
      'otherName',
      'file',
      'otherNs',
      'noNs',
      'oldStale',
      'oldFresh',
      'oldOpen',
      'oldLink',
      'oldName',
      ...(root ? (['otherUser', 'oldOtherUser'] as const) : []),
    ] as const;
    // Old folders (`unc-job-XXXXXX`, no owner file) are told only where /proc shows every process.
    const initNs = oldFoldersTold;
    const anHourAgo = new Date(Date.now() - 3_600_000);
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...kinds), { maxLength: 10 }), (plan) => {
        const tmp = tempDir('unc-jobfolders-prop-');
        const outside = tempDir('unc-jobfolders-out-');
        const owner = (id: object, kind = 'unc provider job folders') =>
          `${JSON.stringify({ kind, ...id })}\n`;
        const expected: string[] = [];
        plan.forEach((kind, i) => {
          if (kind.startsWith('old')) {
            // An old version's job folder: mkdtemp's six characters, 0700, no owner file.
            const old = join(
              tmp,
              kind === 'oldName' ? `unc-job-${i}` : `unc-job-old${String(i).padStart(3, '0')}`,
            );
            if (kind === 'oldLink') {
              const t = join(outside, `t${i}`);
              mkdirSync(t);
              writeFileSync(join(t, 'job-leftover'), 'x');
              symlinkSync(t, old);
              return;
            }
            mkdirSync(old, { mode: 0o700 });
            writeFileSync(join(old, 'model.onnx'), 'x');
            if (kind === 'oldOpen') chmodSync(old, 0o755);
            if (kind === 'oldOtherUser') chownSync(old, 65534, 65534);
            if (kind !== 'oldFresh') utimesSync(old, anHourAgo, anHourAgo);
            if (kind === 'oldStale' && initNs) expected.push(old);
            return;
          }
          const name = `unc-jobs-${process.pid}-${i}`;
          const path = join(tmp, name);
          if (kind === 'link') {
            const t = join(outside, `t${i}`);
            mkdirSync(t);
            writeFileSync(join(t, JOBS_OWNER_FILE), owner(gone));
            symlinkSync(t, path);
            return;
          }
          if (kind === 'file') {
            writeFileSync(path, owner(gone));
            return;
          }
          const folder = kind === 'otherName' ? join(tmp, `unc-jobs-1-${i}`) : path;
          mkdirSync(folder);
          writeFileSync(join(folder, 'job-leftover'), 'x');
          if (kind === 'stale') {
            writeFileSync(join(folder, JOBS_OWNER_FILE), owner(gone));
            expected.push(folder);
          } else if (kind === 'live') writeFileSync(join(folder, JOBS_OWNER_FILE), owner(me));
          else if (kind === 'badJson') writeFileSync(join(folder, JOBS_OWNER_FILE), '{');
          else if (kind === 'otherKind') writeFileSync(join(folder, JOBS_OWNER_FILE), owner(gone, 'other'));
          else if (kind === 'otherName') writeFileSync(join(folder, JOBS_OWNER_FILE), owner(gone));
          else if (kind === 'otherNs') writeFileSync(join(folder, JOBS_OWNER_FILE), owner(otherNs));
          else if (kind === 'noNs')
            writeFileSync(join(folder, JOBS_OWNER_FILE), owner({ ...gone, pidns: undefined }));
          else if (kind === 'otherUser') {
            // Root's provider: a folder another user made, owner file and all, is theirs.
            writeFileSync(join(folder, JOBS_OWNER_FILE), owner(gone));
            chownSync(folder, 65534, 65534);
          }
        });
        const before = readdirSync(tmp).sort();
        const removed = removeStaleJobFolders(tmp).sort();
        assert.deepEqual(removed, expected.sort());
        assert.deepEqual(
          readdirSync(tmp).sort(),
          before.filter((n) => !expected.includes(join(tmp, n))),
        );
        // Nothing outside was touched through a link.
        for (const t of readdirSync(outside))
          assert.ok(
            existsSync(join(outside, t, JOBS_OWNER_FILE)) || existsSync(join(outside, t, 'job-leftover')),
          );
      }),
      { numRuns: 40 },
    );
  });
  test('a temporary directory others could rename entries in: nothing is removed (the removal could be sent through a link)', {
    skip: process.platform !== 'linux' && 'reads /proc',
  }, async () => {
    const { removeStaleJobFolders } = await import('../src/provider/sandbox.js');
    const me = processIdentity(process.pid);
    const gone = {
      kind: 'unc provider job folders',
      pid: process.pid,
      boot: me.boot,
      started: '1',
      pidns: readlinkSync('/proc/self/ns/pid'),
    };
    const stale = (parent: string) => {
      const folder = join(parent, `unc-jobs-${process.pid}-x`);
      mkdirSync(folder);
      writeFileSync(join(folder, JOBS_OWNER_FILE), `${JSON.stringify(gone)}\n`);
      return folder;
    };
    const warnings: string[] = [];
    const warn = (msg: string, fields?: Record<string, unknown>) =>
      warnings.push(`${msg}: ${String(fields?.why)}`);

    // Sanity: in a folder only this user can write, it is removed.
    const safe = tempDir('unc-jobfolders-safe-');
    const inSafe = stale(safe);
    assert.deepEqual(removeStaleJobFolders(safe, warn), [inSafe]);
    assert.deepEqual(warnings, []);

    // Writable by everyone, not sticky: anyone can rename the folder away after its check and put
    // a link to any folder in its place, which the recursive removal would then empty.
    const open = tempDir('unc-jobfolders-open-');
    chmodSync(open, 0o777);
    const inOpen = stale(open);
    assert.deepEqual(removeStaleJobFolders(open, warn), []);
    assert.ok(existsSync(join(inOpen, JOBS_OWNER_FILE)));
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /writable by others \(mode 777\) and not sticky/);

    // A folder of this user's inside such a folder: the folder above can be renamed just the same.
    const below = join(open, 'below');
    mkdirSync(below, { mode: 0o700 });
    const inBelow = stale(below);
    assert.deepEqual(removeStaleJobFolders(below, warn), []);
    assert.ok(existsSync(join(inBelow, JOBS_OWNER_FILE)));

    // Sticky and this user's (or root's): only an entry's owner renames it, the folder is fine.
    const sticky = tempDir('unc-jobfolders-sticky-');
    chmodSync(sticky, 0o1777);
    const inSticky = stale(sticky);
    assert.deepEqual(removeStaleJobFolders(sticky, warn), [inSticky]);

    if (process.getuid?.() === 0) {
      // Root's provider, a folder another user owns: they can rename what is in it.
      const theirs = tempDir('unc-jobfolders-theirs-');
      const inTheirs = stale(theirs);
      chownSync(theirs, 65534, 65534);
      assert.deepEqual(removeStaleJobFolders(theirs, warn), []);
      assert.ok(existsSync(join(inTheirs, JOBS_OWNER_FILE)));
    }
  });
  test('an old job folder (`unc-job-XXXXXX`) is removed once no process works in it', {
    skip:
      !oldFoldersTold &&
      'old folders are told only in the initial pid namespace, every process of this user seen',
  }, async () => {
    const { removeStaleJobFolders } = await import('../src/provider/sandbox.js');
    const tmp = tempDir('unc-jobfolders-old-');
    const anHourAgo = new Date(Date.now() - 3_600_000);
    const folders = ['unc-job-aB3xYz', 'unc-job-Qw9Er7'].map((n) => join(tmp, n));
    for (const f of folders) {
      mkdirSync(join(f, 'models'), { recursive: true, mode: 0o700 });
      utimesSync(f, anHourAgo, anHourAgo);
    }
    // An old version's job process at work: its working directory is its folder (or, here, one
    // inside the second).
    const workers = [folders[0]!, join(folders[1]!, 'models')].map((cwd) =>
      spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000); console.log("up")'], {
        cwd,
        stdio: ['ignore', 'pipe', 'ignore'],
      }),
    );
    children.push(...workers);
    await Promise.all(workers.map((w) => new Promise((resolve) => w.stdout!.once('data', resolve))));
    assert.deepEqual(removeStaleJobFolders(tmp), [], 'a folder a process works in is left');
    for (const f of folders) assert.ok(existsSync(f));

    for (const w of workers) {
      const exited = new Promise((resolve) => w.once('exit', resolve));
      process.kill(w.pid!, 'SIGKILL');
      await exited;
    }
    assert.deepEqual(removeStaleJobFolders(tmp).sort(), folders.sort());
    assert.deepEqual(readdirSync(tmp), []);
  });

  test('in another pid namespace (a container) an old job folder is left: a process using it may be unseen', {
    skip:
      (process.platform !== 'linux' ||
        spawnSync('unshare', ['--pid', '--fork', '--mount-proc', 'true']).status !== 0) &&
      'cannot make a pid namespace here (unshare needs root)',
  }, async () => {
    const tmp = tempDir('unc-jobfolders-ns-');
    const old = join(tmp, 'unc-job-aB3xYz');
    mkdirSync(old, { mode: 0o700 });
    const anHourAgo = new Date(Date.now() - 3_600_000);
    utimesSync(old, anHourAgo, anHourAgo);
    const sandbox = new URL('../src/provider/sandbox.js', import.meta.url).href;
    const run = spawnSync(
      'unshare',
      [
        '--pid',
        '--fork',
        '--mount-proc',
        process.execPath,
        '--input-type=module',
        '-e',
        `const { removeStaleJobFolders } = await import(${JSON.stringify(sandbox)});
console.log(JSON.stringify(removeStaleJobFolders(${JSON.stringify(tmp)})));`,
      ],
      { encoding: 'utf8' },
    );
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout), []);
    assert.ok(existsSync(old));
    // The same folder, seen from here (every process visible): removed.
    const { removeStaleJobFolders } = await import('../src/provider/sandbox.js');
    if (oldFoldersTold) assert.deepEqual(removeStaleJobFolders(tmp), [old]);
  });

  test("a folder on a filesystem not known to be local is left: its owner may be another machine's live provider", {
    skip:
      !(
        process.getuid?.() === 0 &&
        inInitPidNamespace &&
        spawnSync('unshare', ['--mount', 'true']).status === 0
      ) && 'needs root and unshare --mount',
  }, () => {
    // On NFS, CIFS or a cluster's filesystem, another machine's provider writes its boot id, which
    // reads as a reboot here: its live folder looked gone. ramfs stands for such a filesystem (as in
    // provider-old-job-folders.test.ts): local or not, it is none of those known to be local.
    const code = `import { mkdirSync, readlinkSync, writeFileSync } from 'node:fs';
const { removeStaleJobFolders } = await import(${JSON.stringify(new URL('../src/provider/sandbox.js', import.meta.url).href)});
const { processIdentity } = await import(${JSON.stringify(new URL('../src/process-identity.js', import.meta.url).href)});
const parent = process.argv[1];
const folder = parent + '/unc-jobs-' + process.pid + '-aB3xYz';
mkdirSync(folder, { mode: 0o700 });
// This very pid with another start time: by this machine's /proc, a provider gone.
const me = processIdentity(process.pid);
const owner = { kind: 'unc provider job folders', pid: process.pid, boot: me.boot, started: '1', pidns: readlinkSync('/proc/self/ns/pid') };
writeFileSync(folder + '/${JOBS_OWNER_FILE}', JSON.stringify(owner));
console.log(JSON.stringify({ folder, removed: removeStaleJobFolders(parent) }));`;
    const remove = (parent: string, setup: string) => {
      const run = spawnSync(
        'unshare',
        [
          '--mount',
          'sh',
          '-c',
          `${setup} exec "$0" --input-type=module -e "$1" "$2"`,
          process.execPath,
          code,
          parent,
        ],
        { encoding: 'utf8' },
      );
      assert.equal(run.status, 0, run.stderr);
      return JSON.parse(run.stdout) as { folder: string; removed: string[] };
    };
    const shared = tempDir('unc-jobfolders-remote-');
    assert.deepEqual(
      remove(shared, `mount -t ramfs ramfs '${shared}' && chmod 700 '${shared}' &&`).removed,
      [],
    );
    // The same on the temporary directory's own filesystem (known local): removed.
    if (tmpIsLocal) {
      const local = tempDir('unc-jobfolders-local-');
      const { folder, removed } = remove(local, '');
      assert.deepEqual(removed, [folder]);
    }
  });
});
