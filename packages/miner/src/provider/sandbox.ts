/**
 * Renters' jobs run outside the provider's process: ONNX Runtime runs model loading and inference
 * synchronously on the thread that calls it, so a model that loops (a Loop with a 2^62 trip count)
 * or allocates without end would freeze, or kill, whatever shares that thread: the provider API,
 * the agent's heartbeats, in `unc dev` the node itself.
 *
 * So every model load, model run and OCR job goes to a job process (sandbox-runner.ts), forked
 * with an empty temporary directory as its working directory, a small environment and a V8 heap
 * limit. A pool of them is kept warm (sessions and the OCR pipeline stay loaded between jobs); each
 * runs one request at a time, and serves one renter (`owner`) only: a process that ran a renter's
 * job never runs another renter's, so nothing one job left in it (memory, files, a runtime taken
 * over through a parser bug) reaches another renter. The pool holds at most `maxProcesses`: a job
 * whose renter has no process and finds none fresh has one started, or another renter's idle one
 * replaced by a fresh one (see recycle). Models reach a job process as bytes, never as a path to open.
 * A request that runs past its wall-clock limit, or whose process grows past the memory limit
 * (its resident set, read from /proc: ONNX Runtime's memory is outside the V8 heap), has its
 * process killed with SIGKILL and gets a clear error; a fresh process takes its place. Where
 * bubblewrap works (job-isolation.ts, `isolation`) each job process runs inside a sandbox of its
 * own: no network, and of the filesystem only what it needs.
 */
import { type ChildProcess, fork, spawn } from 'node:child_process';
import {
  type BigIntStats,
  existsSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
  type Stats,
  statfsSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '@unc/node';
import type { OcrLine, RawTensor } from '@unc/sdk';
import { identityOf, processIdentity, processLives } from '../process-identity.js';
import {
  bwrapArgs,
  descendants,
  type JobIsolation,
  type JobIsolationMode,
  libraryBinds,
  namedBinds,
  nodeBinary,
  resolveJobIsolation,
  runnerBinds,
  type SandboxBind,
} from './job-isolation.js';
import type { OcrModelFiles } from './ocr.js';
import type { ExecutionProviderName, OrtThreadOptions } from './onnx.js';
import {
  DEFAULT_LOG_LIMITS,
  type LogLimits,
  logSize,
  MAX_LOG_FIELDS,
  type SandboxCall,
  type SandboxPart,
  type SandboxReply,
  type SandboxRequest,
} from './sandbox-protocol.js';
import { type JobProcessStamps, monotonicMs, type SandboxTiming } from './stages.js';

const RUNNER = join(dirname(fileURLToPath(import.meta.url)), 'sandbox-runner.js');

/** The bwrap processes this process started that have not exited: killed by `killSandboxesNow`. */
const liveSandboxes = new Set<number>();

/**
 * At a forced exit (a further signal, no waiting): SIGKILLs every live sandbox's processes, below
 * bwrap first. bwrap's cloned child waits for bwrap's go-ahead before it arranges to die with its
 * parent, so one forced out while it started would otherwise wait for good.
 */
export function killSandboxesNow(): void {
  for (const pid of liveSandboxes) {
    for (const inner of descendants(pid).reverse()) {
      try {
        process.kill(inner, 'SIGKILL');
      } catch {}
    }
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
  liveSandboxes.clear();
}

/** A job that failed in the sandbox; `message` is safe to show the renter. */
export class SandboxError extends Error {
  constructor(
    /**
     * BAD_MODEL, JOB_FAILED, JOB_TIMEOUT, JOB_MEMORY, JOB_DISK (filled its job folder), JOB_CRASHED,
     * JOB_FLOOD (sent more than its limits).
     */
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'SandboxError';
  }
}

export interface SandboxOptions {
  /** Job processes started at once and kept warm; at most this many requests run at once. */
  workers: number;
  /**
   * Job processes held at most (default `workers`): past `workers`, one is started for a renter
   * that has none while the others are held by other renters, so each active renter keeps its own
   * warm process instead of having another renter's replaced (recycle). More requests than
   * `workers` may then run at once: the caller bounds them (the provider's job queue). The
   * provider holds one per chip (a chip takes one lease, so one renter, at a time).
   */
  maxProcesses?: number;
  executionProvider: ExecutionProviderName;
  ocr: OcrModelFiles;
  /** Wall-clock limit of one request (a model load, a run, an OCR job). */
  timeoutMs: number;
  /** Resident set limit of one job process, in bytes. */
  memoryBytes: number;
  /** V8 heap limit of a job process, in MiB. */
  heapMb: number;
  /** Sessions kept per job process. */
  maxSessions: number;
  /** ONNX Runtime's threads in each job process (default: no spinning, pools sized by the runtime). */
  threads?: OrtThreadOptions;
  /** Output bytes one run may return (the job process refuses more before sending any). */
  maxOutputBytes: number;
  /**
   * What a job process may send (it runs the renter's model, so it may be hostile): over any of
   * these its process is killed and replaced, and its job fails (JOB_FLOOD). Defaults in
   * DEFAULT_MESSAGE_LIMITS; `maxMessageBytes` defaults to maxOutputBytes plus 1 MiB.
   */
  messageLimits?: Partial<MessageLimits>;
  /** The job process's entry point (tests stand in a process gone wrong); default sandbox-runner.js. */
  runner?: string;
  /**
   * OS isolation of the job processes (job-isolation.ts): settled at start; default `none` here
   * (the provider's default is `auto`).
   */
  isolation?: JobIsolationMode;
  /**
   * What a job process must read besides the runner and the OCR files, under bwrap. Not the model
   * store: models are read here and sent (a job process would read every renter's model there).
   */
  readOnlyPaths?: string[];
  /**
   * Under bwrap, the size of a job process's writable job folder (a tmpfs; default the smaller of
   * 64 MiB and a quarter of memoryBytes). What it holds counts against memoryBytes; a job that
   * fills it fails with JOB_DISK and its process is replaced. (Without isolation the folder is on
   * this machine's disk, unbounded: see job-isolation.ts NO_ISOLATION_WARNING.)
   */
  diskBytes?: number;
  /**
   * How long a renter's process may stay idle before any other renter's job may replace it
   * (default 60 s; see recycle): a renter whose lease ended leaves one, which the renter holding
   * the chip next would otherwise never get back while it holds a process of its own.
   */
  coldAfterMs?: number;
  /**
   * How long a job process may take from its start to its answer to init (default 120 s); past
   * it, it is killed and another started. Without it a sandbox stuck as it was set up held its
   * place in the pool for good: the provider's start, or every job once all were stuck, waited forever.
   */
  startTimeoutMs?: number;
  logger: Logger;
}

/** Log limits (UTF-8 bytes, LogLimits), stray messages counted with logs against the rate. */
export interface MessageLimits extends LogLimits {
  /** Bytes of one message on the channel (an answer holds at most maxOutputBytes of outputs). */
  maxMessageBytes: number;
}

export const DEFAULT_MESSAGE_LIMITS: Omit<MessageLimits, 'maxMessageBytes'> = DEFAULT_LOG_LIMITS;

/** A model a job runs: its hash and the file the provider reads it from (never the job process). */
interface ModelRef {
  hash: string;
  path: string;
}

/** A job waiting for a process: one of `owner`'s or a fresh one (`fresh`: one with no leftovers). */
interface Waiter {
  owner: string;
  fresh: boolean;
  resolve(w: Worker): void;
}

type Pending = {
  resolve(v: unknown): void;
  reject(e: Error): void;
  /** A runMany/ocrMany request: called with each job's outcome as it ends. */
  part?(p: SandboxPart): void;
  /** Filled in with the request's times (bench:jobs --stages). */
  timing?: SandboxTiming;
};

/** The outcome of one job of a batch run in one job process. */
export type JobSettled<T> =
  | { ok: true; value: T; durationMs: number }
  | { ok: false; error: SandboxError; durationMs: number };

interface Worker {
  child: ChildProcess;
  dir: string;
  ready: Promise<void>;
  busy: boolean;
  dead: boolean;
  /** It answered its init: a process that cannot even start is not restarted in a tight loop. */
  everReady: boolean;
  /** Model hashes whose sessions this process holds (a job goes where its session is warm). */
  models: Set<string>;
  /** The renter whose jobs it runs, from its first job on (undefined: fresh, it ran none). */
  owner?: string;
  /** When it last took a job (a counter): the least recently used idle process is replaced first. */
  lastUsed: number;
  /** When it last became idle (monotonicMs): idle past coldAfterMs, any renter's job may replace it. */
  idleSince: number;
  /** Why it was killed: a job that was between two messages to it gets that reason. */
  killedWith?: Error;
  pending: Map<number, Pending>;
  stderr: string;
  /** Log (and stray) messages it may still send now: a bucket refilled at maxLogsPerSecond. */
  logTokens: number;
  logTokensAt: number;
  /** Bytes of log messages since its current request began. */
  logBytes: number;
  /** Bytes read from its channel since its last whole message (the one being received). */
  unreadBytes: number;
  /** Its resident set when it became ready, before any job (null: /proc cannot tell). */
  baseRss: number | null;
  /**
   * Under bwrap, the processes inside its sandbox (the job process is a grandchild of `child`),
   * found when it answered its init; each with its start time, so a pid given to another process
   * since is never signalled. Empty outside a sandbox.
   */
  inner: { pid: number; started: string | undefined }[];
  /** Once killed: resolves when every process of it has been sent SIGKILL (killSandbox). */
  killed?: Promise<void>;
}

/**
 * Files (and folders) a job folder may hold. bwrap sizes its tmpfs in bytes only, and an empty
 * file takes no block but an inode and a dentry of kernel memory (about a KiB, counted so in rss):
 * a job making millions of them would hold memory no limit counted. Past this, JOB_DISK.
 */
export const MAX_JOB_FOLDER_FILES = 10_000;
/** The kernel memory counted for each file of a job folder (its inode and dentry). */
const FILE_BYTES = 1024;

/** SandboxOptions.coldAfterMs by default. */
const DEFAULT_COLD_AFTER_MS = 60_000;
/** How long a killed job process's channel may take to deliver what it wrote before it died. */
const DRAIN_MS = 2_000;
/** How long a job process may take to answer its init (SandboxOptions.startTimeoutMs). */
const DEFAULT_START_TIMEOUT_MS = 120_000;

const LOG_LEVELS = new Set(['debug', 'info', 'warn', 'error']);

/** Whether a message from a job process has the shape of a reply (sandbox-protocol.ts). */
function isReply(m: unknown): m is SandboxReply {
  if (typeof m !== 'object' || m === null) return false;
  const r = m as Record<string, unknown>;
  if (!('op' in r)) return typeof r.id === 'number' && typeof r.ok === 'boolean';
  if (r.op === 'part') return typeof r.id === 'number' && typeof r.index === 'number';
  return (
    r.op === 'log' &&
    typeof r.level === 'string' &&
    LOG_LEVELS.has(r.level) &&
    typeof r.msg === 'string' &&
    (r.fields === undefined || isLogFields(r.fields))
  );
}

/** A job process's stamps, if they are three finite numbers (it runs the renter's model: checked). */
function isStamps(at: unknown): at is JobProcessStamps {
  if (typeof at !== 'object' || at === null) return false;
  const { received, done, cpuMs } = at as Record<string, unknown>;
  return [received, done, cpuMs].every((v) => typeof v === 'number' && Number.isFinite(v));
}

function isLogFields(f: unknown): f is Record<string, unknown> {
  if (typeof f !== 'object' || f === null || Array.isArray(f)) return false;
  const entries = Object.entries(f);
  return (
    entries.length <= MAX_LOG_FIELDS &&
    entries.every(([, v]) => v === null || ['string', 'number', 'boolean'].includes(typeof v))
  );
}

/**
 * Counts the reads from a child's IPC channel as they arrive, before Node buffers and decodes
 * them: `onRead` gets each read's bytes and returns false to have the read dropped (its process is
 * being killed). The channel's pipe handle is where Node keeps it, under a symbol of its own
 * (kChannelHandle, as in Node 20, the one run here), and its `onread` is wrapped. That is Node's
 * inside, so every step is checked and nothing throws: if this Node keeps the handle elsewhere, or
 * its `onread` cannot be replaced, nothing is hooked (false), and only what is decoded is checked.
 * Thrown from here it would stop every job process from starting.
 */
export function countChannelReads(child: object, onRead: (bytes: number) => boolean): boolean {
  try {
    const sym = Object.getOwnPropertySymbols(child).find((s) => s.description === 'kChannelHandle');
    const handle = sym ? (child as Record<symbol, unknown>)[sym] : undefined;
    if (typeof handle !== 'object' || handle === null) return false;
    const h = handle as { onread?: unknown };
    const read = h.onread;
    if (typeof read !== 'function') return false;
    const counted = (...a: unknown[]) => {
      const chunk = a[0] as { byteLength?: unknown } | undefined;
      const bytes = typeof chunk?.byteLength === 'number' ? chunk.byteLength : 0;
      if (!onRead(bytes)) return;
      return read.apply(handle, a);
    };
    h.onread = counted;
    // A setter that ignored it (a read-only property throws here, in strict code).
    return h.onread === counted;
  } catch {
    return false;
  }
}

const mib = (bytes: number) => Math.round(bytes / 2 ** 20);

/** Whether process `pid` is stopped (or gone, or a zombie), as /proc says. */
function stoppedOrGone(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return true;
  }
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state === 'T' || state === 't' || state === 'Z' || state === 'X';
}

/**
 * How long a killed sandbox's bwrap may take to stop before its processes are looked for anyway.
 * A stopped process reaches the stopped state as soon as it is scheduled: only a machine starved
 * for CPU, or one stuck in the kernel, takes long.
 */
const STOP_WAIT_MS = 10_000;

/** Resident set size of a process in bytes (Linux), or null where /proc cannot tell. */
export function residentBytes(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** Processes a sandbox may hold (its first process, the job process and a few more) before it is killed. */
export const MAX_SANDBOX_PROCESSES = 32;

/**
 * The resident set of every process of a sandbox, as its own /proc lists them (read through the
 * root of `init`, its pid namespace's first process): a process forked inside after the job
 * process was found counts too. Null where that cannot be read, or `init`'s pid no longer names it
 * (a pid reused by a process outside would show this machine's /proc, every process of it).
 */
function sandboxResidentBytes(init: { pid: number; started: string | undefined }): number | null {
  if (init.started === undefined || processIdentity(init.pid).started !== init.started) return null;
  const proc = `/proc/${init.pid}/root/proc`;
  let names: string[];
  try {
    names = readdirSync(proc).filter((n) => /^\d+$/.test(n));
  } catch {
    return null;
  }
  // The job process forks nothing (ONNX Runtime's workers are threads): past a few dozen
  // processes it is a fork bomb, which would take this machine's pids (a pid namespace bounds no
  // count) and make each check read thousands of files. Counted as over any limit: killed.
  if (names.length > MAX_SANDBOX_PROCESSES) return Number.MAX_SAFE_INTEGER;
  let sum = 0;
  for (const n of names) {
    try {
      const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`${proc}/${n}/status`, 'latin1'));
      if (m) sum += Number(m[1]) * 1024;
    } catch {
      // gone meanwhile
    }
  }
  return processIdentity(init.pid).started === init.started ? sum : null;
}

/**
 * The folder a provider's job processes work in, one subfolder each (`job-XXXXXX`):
 * `unc-jobs-<pid>-XXXXXX` in the temporary directory, holding JOBS_OWNER_FILE, which names the
 * provider process that made it (pid, boot id, start time). A job process removes its own
 * subfolder when its provider goes (sandbox-runner.ts) and the provider removes the whole folder
 * when it stops; a provider killed together with its job processes (kill -9 of the process group,
 * the OOM killer) left them behind, one per job process it had started. The next provider to
 * start removes such folders (removeStaleJobFolders).
 */
export const JOBS_FOLDER_PREFIX = 'unc-jobs-';
export const JOBS_OWNER_FILE = 'owner.json';
const JOBS_OWNER_KIND = 'unc provider job folders';

/**
 * The job-folder homes of this process's pools that are not stopped: removed when the process
 * exits without stopping them (process.exit: `unc dev` forced out by a third signal, an error).
 */
const liveHomes = new Set<string>();
let exitHookInstalled = false;

function removeLiveHomes(): void {
  for (const home of liveHomes) {
    try {
      rmSync(home, { recursive: true, force: true });
    } catch {
      // exiting anyway: the next provider's start removes it
    }
  }
}

/** Makes a fresh job-folder home in `parent` for this process, with its owner file. */
function makeJobsHome(parent: string): string {
  if (!exitHookInstalled) {
    process.on('exit', removeLiveHomes);
    exitHookInstalled = true;
  }
  const home = mkdtempSync(join(parent, `${JOBS_FOLDER_PREFIX}${process.pid}-`));
  liveHomes.add(home);
  const { boot, started } = processIdentity(process.pid);
  const pidns = pidNamespace();
  // `wx`: a new file, never through a link (the folder was just made, 0700, by this process).
  try {
    writeFileSync(
      join(home, JOBS_OWNER_FILE),
      `${JSON.stringify({ kind: JOBS_OWNER_KIND, pid: process.pid, boot, started, pidns })}\n`,
      { flag: 'wx', mode: 0o600 },
    );
  } catch (err) {
    rmSync(home, { recursive: true, force: true });
    liveHomes.delete(home);
    throw err;
  }
  return home;
}

/**
 * This process's pid namespace (`pid:[4026531836]`), which gives the pids in an owner file their
 * meaning: a provider in a container sharing the temporary directory writes pids of its own
 * namespace, which name other processes, or none, here. Undefined where unread (not Linux).
 */
function pidNamespace(): string | undefined {
  try {
    return readlinkSync('/proc/self/ns/pid');
  } catch {
    return undefined;
  }
}

/**
 * The job folders of versions before JOBS_FOLDER_PREFIX: `unc-job-XXXXXX` (mkdtemp's six
 * characters), one per job process, that process's working directory for its whole life, with no
 * owner file. The job process ends when its provider goes, so one that no process works in any
 * more is a dead provider's leftover (oldJobFolderUnused).
 */
const OLD_JOB_FOLDER = /^unc-job-[A-Za-z0-9]{6}$/;
/** The initial pid namespace's inode (the kernel's PROC_PID_INIT_INO): its /proc lists every process. */
const INIT_PID_NAMESPACE = 'pid:[4026531836]';
/** An old folder younger than this is left: its provider made it and forks into it in one step. */
const OLD_JOB_FOLDER_MIN_AGE_MS = 60_000;

/** A file's identity, whatever path names it (another mount namespace's, a bind mount's). */
function fileIdentity(st: BigIntStats): string {
  return `${st.dev}:${st.ino}`;
}

/** Whether `err` says the process asked about has ended meanwhile. */
function processGone(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ESRCH';
}

/**
 * The folders (fileIdentity) the processes work in, or null where one of this user's processes
 * could work in a folder unseen: one whose working directory this process may not read (a
 * non-dumpable one: a setuid or file-capability program, a program it may run but not read).
 * Working directories are compared by identity, not by the path /proc shows: a process in another
 * mount namespace (a container sharing the directory) shows the path of its own view. Another
 * user's unreadable process is no matter: it cannot enter a folder private to this user.
 */
function foldersInUse(uid: number): Set<string> | null {
  if (procHidesProcesses()) return null;
  const inUse = new Set<string>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      inUse.add(fileIdentity(statSync(`/proc/${name}/cwd`, { bigint: true })));
    } catch (err) {
      if (processGone(err)) continue;
      let status: string;
      try {
        status = readFileSync(`/proc/${name}/status`, 'utf8');
      } catch (err2) {
        if (processGone(err2)) continue;
        return null;
      }
      // Real, effective, saved and file-system uids: any of them this user's, it may be in one.
      const uids = /^Uid:\s+(.*)$/m.exec(status)?.[1]?.trim().split(/\s+/).map(Number);
      if (uids === undefined || uids.includes(uid)) return null;
    }
  }
  return inUse;
}

/**
 * Whether /proc is mounted so that it lists only some processes (hidepid=invisible or 2, which
 * leaves out even this user's processes it may not inspect; subset=pid), or cannot be told.
 */
function procHidesProcesses(): boolean {
  let options: string | undefined;
  try {
    // The last mount on /proc is the one seen there; its options follow the " - " separator.
    for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
      const [mount, fs] = line.split(' - ');
      if (mount?.split(' ')[4] === '/proc' && fs !== undefined) options = fs.split(' ')[2];
    }
  } catch {
    return true;
  }
  if (options === undefined) return true;
  return options
    .split(',')
    .some(
      (o) =>
        (o.startsWith('hidepid=') && !['hidepid=0', 'hidepid=off'].includes(o)) || o.startsWith('subset='),
    );
}

/** The identities of `folder` and of every folder in it (links not followed), or null past `max`. */
function folderTree(folder: string, max = 10_000): Set<string> | null {
  const found = new Set<string>([fileIdentity(lstatSync(folder, { bigint: true }))]);
  const queue = [folder];
  for (let dir = queue.pop(); dir !== undefined; dir = queue.pop()) {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      const path = join(dir, entry.name);
      found.add(fileIdentity(lstatSync(path, { bigint: true })));
      if (found.size > max) return null;
      queue.push(path);
    }
  }
  return found;
}

/**
 * The filesystems (statfs magic numbers) known to be of this machine alone: ext2/3/4, xfs, btrfs,
 * tmpfs, overlayfs, zfs, f2fs, bcachefs. On any other (NFS, CIFS, a cluster's, FUSE) a directory
 * may be shared with other machines, whose processes no /proc here shows.
 */
const LOCAL_FILESYSTEMS = new Set([
  0xef53, 0x58465342, 0x9123683e, 0x01021994, 0x794c7630, 0x2fc12fc1, 0xf2f52010, 0xca451a4e,
]);

function onLocalFilesystem(dir: string): boolean {
  try {
    return LOCAL_FILESYSTEMS.has(Number(statfsSync(dir).type));
  } catch {
    return false;
  }
}

/**
 * Whether the old job folder at `path` (lstat `folder`) is a leftover no one uses: only in the
 * initial pid namespace, where /proc shows every process that could work in it (in a container a
 * process of the host or of another container sharing the directory is unseen), on a filesystem
 * of this machine alone (onLocalFilesystem: another machine's process is unseen); only a folder
 * private to this user (0700, as mkdtemp made it: no other user's process can be in it), older than
 * a minute, that is no process's working directory (`inUse`, null: not all seen) or inside one.
 */
function oldJobFolderUnused(
  path: string,
  folder: Stats,
  pidns: string | undefined,
  inUse: () => Set<string> | null,
): boolean {
  if (pidns !== INIT_PID_NAMESPACE || (folder.mode & 0o077) !== 0) return false;
  if (!onLocalFilesystem(path)) return false;
  if (Date.now() - folder.mtimeMs < OLD_JOB_FOLDER_MIN_AGE_MS) return false;
  const used = inUse();
  const tree = used === null ? null : folderTree(path);
  if (used === null || tree === null) return false;
  for (const id of tree) if (used.has(id)) return false;
  return true;
}

/**
 * Why the folders in `dir` cannot be removed safely, or null. A recursive removal checks that a
 * name is a folder, then lists it by its name: whoever can rename entries in the folder it lies in
 * (or in any folder above) can put a link in its place in between, and the removal empties the
 * folder the link leads to, as this user (root, perhaps). So each folder from `dir` (its links
 * resolved) up to the root must belong to this user or root and be writable by no one else, or be
 * sticky (/tmp: only an entry's owner renames it). Null on systems without uids (Windows).
 */
export function unsafeJobsParent(dir: string): string | null {
  const uid = typeof process.getuid === 'function' ? process.getuid() : null;
  if (uid === null) return null;
  for (let d = realpathSync(dir); ; d = dirname(d)) {
    // A real path: no links on the way.
    const st = lstatSync(d);
    if (st.uid !== uid && st.uid !== 0)
      return `${d} belongs to uid ${st.uid}, not to this user (uid ${uid}) or root`;
    if ((st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0)
      return `${d} is writable by others (mode ${(st.mode & 0o7777).toString(8)}) and not sticky`;
    if (dirname(d) === d) return null;
  }
}

/**
 * Removes from `parent` (default: the temporary directory) the job folders of providers that no
 * longer run, and returns their paths. Only a folder this user owns, that is a folder and not a
 * link, named JOBS_FOLDER_PREFIX + the pid its owner file names, whose owner file is a plain file
 * naming a provider process of this pid namespace that is gone (processLives: pid, boot id, start
 * time): anything else is left alone, a live provider's folders, a provider's in another pid
 * namespace (a container sharing the directory: its pid means another process here), one on a
filesystem not known to be of this machine alone (onLocalFilesystem: another machine's), a file or
 * link of that name, a folder without a readable owner file. The removal follows no link inside
 * (rmSync removes links, not their targets), and nothing is removed where `parent` or a folder
 * above it lets others rename what is in it (unsafeJobsParent; `warn` is told). Folders of older
 * versions (`unc-job-XXXXXX`, no owner file) are removed, under the same checks, when no process
 * works in them any more (oldJobFolderUnused).
 */
export function removeStaleJobFolders(
  parent: string = tmpdir(),
  warn?: (msg: string, fields?: Record<string, unknown>) => void,
): string[] {
  const removed: string[] = [];
  let real: string;
  let names: string[];
  try {
    const unsafe = unsafeJobsParent(parent);
    if (unsafe !== null) {
      warn?.(
        'the job folders of providers no longer running are not removed: others can rename what is in this folder',
        {
          folder: parent,
          why: unsafe,
        },
      );
      return removed;
    }
    real = realpathSync(parent);
    names = readdirSync(real);
  } catch {
    return removed;
  }
  const uid = typeof process.getuid === 'function' ? process.getuid() : null;
  const pidns = pidNamespace();
  let inUse: Set<string> | null | undefined;
  for (const name of names) {
    const old = OLD_JOB_FOLDER.test(name);
    if (!old && !name.startsWith(JOBS_FOLDER_PREFIX)) continue;
    const path = join(real, name);
    try {
      const folder = lstatSync(path);
      if (!folder.isDirectory() || (uid !== null && folder.uid !== uid)) continue;
      if (old) {
        if (uid === null) continue;
        const seen = () => (inUse === undefined ? (inUse = foldersInUse(uid)) : inUse);
        if (!oldJobFolderUnused(path, folder, pidns, seen)) continue;
        rmSync(path, { recursive: true, force: true });
        removed.push(path);
        continue;
      }
      const ownerPath = join(path, JOBS_OWNER_FILE);
      const ownerFile = lstatSync(ownerPath);
      if (!ownerFile.isFile() || ownerFile.size > 4096) continue;
      const record = JSON.parse(readFileSync(ownerPath, 'utf8')) as { kind?: unknown; pidns?: unknown };
      const owner = identityOf(record);
      if (record.kind !== JOBS_OWNER_KIND || owner === null) continue;
      if (!name.startsWith(`${JOBS_FOLDER_PREFIX}${owner.pid}-`)) continue;
      // Another namespace's pid, or one whose namespace is not known: it cannot be told.
      if (record.pidns !== pidns) continue;
      // On a filesystem shared with other machines (NFS, CIFS, a cluster's), the owner may be another
      // machine's provider: its boot id reads as a reboot here, so processLives calls it gone.
      if (!onLocalFilesystem(path)) continue;
      if (processLives(owner)) continue;
      rmSync(path, { recursive: true, force: true });
      removed.push(path);
    } catch {
      // Gone meanwhile, unreadable, not JSON: left alone.
    }
  }
  return removed;
}

export class JobSandbox {
  private readonly workers: Worker[] = [];
  /** Jobs waiting for a process, in order of arrival (second runs, `fresh`, are served first). */
  private readonly waiting: Waiter[] = [];
  private uses = 0;
  private nextId = 1;
  private effective: ExecutionProviderName;
  private stopped = false;
  private started = false;
  private monitor: NodeJS.Timeout | null = null;
  /** Processes started (the first ones and every replacement); tests read it. */
  spawned = 0;
  /** Jobs (or a group's rest) run a second time, fresh, after JOB_MEMORY amid leftovers; tests read it. */
  retried = 0;
  /** Idle processes replaced so that another renter's job had a fresh one (recycle); tests read it. */
  recycled = 0;
  private memoryChecks = 0;
  /** The job-folder homes this pool made (makeJobsHome); the last one is in use. */
  private readonly homes: string[] = [];
  /** What the job processes run under, settled at start (job-isolation.ts). */
  private isolated: JobIsolation = 'none';
  /** Under bwrap: its path, and what a job process is shown besides its job folder. */
  private bwrap: { path: string; binds: SandboxBind[]; disableUserns: boolean } | null = null;
  /** Kills under way (killSandbox): stop() waits for them. */
  private readonly killing = new Set<Promise<void>>();

  private readonly limits: MessageLimits;
  private readonly diskBytes: number;
  private readonly maxProcesses: number;

  constructor(private readonly opts: SandboxOptions) {
    if (!Number.isInteger(opts.workers) || opts.workers < 1)
      throw new Error('workers must be an integer ≥ 1');
    this.maxProcesses = Math.max(opts.workers, opts.maxProcesses ?? opts.workers);
    if (!Number.isInteger(this.maxProcesses)) throw new Error('maxProcesses must be an integer');
    this.effective = opts.executionProvider;
    this.diskBytes = opts.diskBytes ?? Math.min(64 * 2 ** 20, Math.floor(opts.memoryBytes / 4));
    if (!(Number.isSafeInteger(this.diskBytes) && this.diskBytes > 0))
      throw new Error(`diskBytes must be a positive integer, not ${this.diskBytes}`);
    this.limits = {
      maxMessageBytes: opts.maxOutputBytes + 1024 * 1024,
      ...DEFAULT_MESSAGE_LIMITS,
      ...opts.messageLimits,
    };
  }

  /** The OS isolation the job processes run under (`none` before start). */
  get isolation(): JobIsolation {
    return this.isolated;
  }

  /** The execution provider the job processes use ('cuda' falls back to 'cpu' when unavailable). */
  get executionProvider(): ExecutionProviderName {
    return this.effective;
  }

  /**
   * Starts the job processes. Only the first is waited for (it settles which execution provider
   * works, and how much a job process takes); the others warm up meanwhile, and jobs wait for them.
   */
  async start(): Promise<void> {
    // What a provider killed with its job processes left in the temporary directory.
    const stale = removeStaleJobFolders(tmpdir(), (msg, fields) => this.opts.logger.warn(msg, fields));
    if (stale.length > 0)
      this.opts.logger.info('removed the job folders of providers no longer running', { folders: stale });
    try {
      // Settled before any job process starts: `bwrap` asked for and unavailable ends the start.
      const settled = await resolveJobIsolation(this.opts.isolation ?? 'none', (msg, fields) =>
        this.opts.logger.warn(msg, fields),
      );
      this.isolated = settled.isolation;
      if (settled.isolation === 'bwrap') {
        const { detectionPath, recognitionPath, dictionaryPath } = this.opts.ocr;
        this.bwrap = {
          path: settled.bwrap,
          disableUserns: settled.disableUserns,
          binds: [
            ...runnerBinds(this.opts.runner ?? RUNNER),
            ...namedBinds([
              detectionPath,
              recognitionPath,
              dictionaryPath,
              ...(this.opts.readOnlyPaths ?? []),
            ]),
            ...libraryBinds(process.env as Record<string, string>),
          ],
        };
      }
      this.opts.logger.info('job processes start', {
        isolation: this.isolated,
        ...(this.bwrap ? { userNamespacesInside: !this.bwrap.disableUserns } : {}),
      });
      const first = this.spawn();
      await first.ready;
      // A limit below what a job process takes before any job would kill every job.
      const base = this.workers[0] ? this.rss(this.workers[0]) : null;
      if (base !== null && base > this.opts.memoryBytes / 2)
        throw new Error(
          `the job memory limit (${mib(this.opts.memoryBytes)} MiB) leaves no room: a job process takes ${mib(base)} MiB before its first job`,
        );
    } catch (err) {
      await this.stop();
      throw err;
    }
    this.started = true;
    for (let i = 1; i < this.opts.workers; i++)
      this.spawn().ready.catch((err: Error) =>
        this.opts.logger.error('cannot start a job process', { error: err.message }),
      );
    this.monitor = setInterval(() => this.checkMemory(), 100);
    this.monitor.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.monitor) clearInterval(this.monitor);
    for (const w of this.workers.splice(0))
      this.kill(w, new SandboxError('JOB_FAILED', 'the provider is stopping'));
    // Every sandbox's processes found and killed before the provider goes on (and may exit).
    await Promise.all([...this.killing]);
    for (const home of this.homes.splice(0)) {
      rmSync(home, { recursive: true, force: true });
      liveHomes.delete(home);
    }
  }

  /**
   * Loads a model (refusing external data) and keeps its session for the jobs that follow, in a
   * process of `owner` (the renter: its processes run no other renter's job). `path` is read here,
   * by the provider, and the bytes sent: the job process opens no model file.
   */
  async check(owner: string, hash: string, path: string): Promise<void> {
    await this.request(owner, { op: 'check', hash }, { hash, path });
  }

  async run(
    owner: string,
    hash: string,
    path: string,
    inputs: RawTensor[],
    timing?: SandboxTiming,
  ): Promise<RawTensor[]> {
    const outputs = (await this.request(
      owner,
      { op: 'run', hash, inputs },
      { hash, path },
      timing,
    )) as RawTensor[];
    if (outputs.reduce((n, t) => n + t.data.length, 0) > this.opts.maxOutputBytes)
      throw new SandboxError('OUTPUT_TOO_LARGE', 'the job returned more output than the limit here');
    return outputs;
  }

  /** OCR of one image; `timing` (if given) receives the request's times (stages.ts). */
  async ocr(owner: string, image: Uint8Array, timing?: SandboxTiming): Promise<OcrLine[]> {
    return (await this.request(owner, { op: 'ocr', image }, undefined, timing)) as OcrLine[];
  }

  /**
   * Runs several inputs of one model in one job process, one after the other, sent in one message
   * (a message to a job process and its wake-up cost more than a tiny model's run). Each job keeps
   * the time limit of a job alone: the clock restarts as each one ends. When a job's process is
   * killed (time, memory, crash) that job gets the reason and the ones after it JOB_ABORTED.
   * With `budgetMs`, no job after the first starts once that long has passed: the answer then
   * holds only the jobs that ran, in order (at least one), and the caller queues the rest again.
   */
  async runMany(
    owner: string,
    hash: string,
    path: string,
    inputs: RawTensor[][],
    budgetMs?: number,
  ): Promise<JobSettled<RawTensor[]>[]> {
    const settled = await this.requestMany(
      owner,
      { op: 'runMany', hash, inputs, ...(budgetMs === undefined ? {} : { budgetMs }) },
      inputs.length,
      { hash, path },
    );
    return settled.map((s) => {
      if (s.ok && (s.value as RawTensor[]).reduce((n, t) => n + t.data.length, 0) > this.opts.maxOutputBytes)
        return {
          ok: false,
          error: new SandboxError('OUTPUT_TOO_LARGE', 'the job returned more output than the limit here'),
          durationMs: s.durationMs,
        };
      return s as JobSettled<RawTensor[]>;
    });
  }

  /** OCR of several images in one job process (see runMany). */
  async ocrMany(owner: string, images: Uint8Array[], budgetMs?: number): Promise<JobSettled<OcrLine[]>[]> {
    return (await this.requestMany(
      owner,
      { op: 'ocrMany', images, ...(budgetMs === undefined ? {} : { budgetMs }) },
      images.length,
    )) as JobSettled<OcrLine[]>[];
  }

  /**
   * The resident set of each live job process as the memory limit counts it (under bwrap, every
   * process of its sandbox), null where /proc cannot tell.
   */
  residentSets(): (number | null)[] {
    return this.workers.filter((w) => !w.dead).map((w) => this.rss(w));
  }

  get busy(): number {
    return this.workers.filter((w) => w.busy).length;
  }

  // -------------------------------------------------------------------------------------------

  /**
   * The home in which the next job process gets its folder: made at the first spawn, and again
   * where it is gone (a temporary-file cleaner removed it) or the temporary directory changed.
   */
  private jobsHome(): string {
    const home = this.homes.at(-1);
    if (home !== undefined && dirname(home) === tmpdir() && existsSync(join(home, JOBS_OWNER_FILE)))
      return home;
    const made = makeJobsHome(tmpdir());
    this.homes.push(made);
    return made;
  }

  private spawn(): Worker {
    const dir = mkdtempSync(join(this.jobsHome(), 'job-'));
    const env: Record<string, string> = {};
    for (const k of ['PATH', 'LD_LIBRARY_PATH', 'CUDA_VISIBLE_DEVICES', 'CUDA_HOME'])
      if (process.env[k] !== undefined) env[k] = process.env[k]!;
    // --expose-gc: asked to drop its sessions (shrinkOrReplace), it collects its heap too.
    const execArgv = [`--max-old-space-size=${this.opts.heapMb}`, '--expose-gc'];
    const runner = this.opts.runner ?? RUNNER;
    let child: ChildProcess;
    if (this.bwrap) {
      // Inside bwrap (job-isolation.ts), its channel is the inherited fd 3, which bwrap keeps;
      // the environment that names it is set again inside, as bwrap clears the one it is given.
      // Its arguments say so: its parent is the sandbox, which dies with this process.
      const node = nodeBinary().path;
      child = spawn(
        this.bwrap.path,
        bwrapArgs({
          readOnly: this.bwrap.binds,
          // Its job folder is a tmpfs of diskBytes at the folder's path (the folder made here
          // stays empty): a job cannot fill this machine's disk, and what it writes is memory,
          // counted against its limit (rss).
          writable: [],
          scratch: { path: dir, bytes: this.diskBytes },
          cwd: dir,
          env: {
            ...env,
            HOME: dir,
            TMPDIR: dir,
            NODE_CHANNEL_FD: '3',
            NODE_CHANNEL_SERIALIZATION_MODE: 'advanced',
          },
          gpu: this.effective !== 'cpu',
          disableUserns: this.bwrap.disableUserns,
          command: [node, ...execArgv, runner, String(process.pid), 'sandboxed'],
        }),
        { cwd: dir, env: {}, serialization: 'advanced', stdio: ['ignore', 'ignore', 'pipe', 'ipc'] },
      );
    } else {
      // Its argument: this process's pid, its provider, which it may find gone before it has loaded.
      child = fork(runner, [String(process.pid)], {
        cwd: dir,
        env,
        execArgv,
        serialization: 'advanced',
        stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      });
    }
    this.spawned++;
    const sandboxPid = this.bwrap && child.pid !== undefined ? child.pid : undefined;
    if (sandboxPid !== undefined) {
      liveSandboxes.add(sandboxPid);
      child.once('exit', () => liveSandboxes.delete(sandboxPid));
    }
    const w: Worker = {
      child,
      dir,
      ready: Promise.resolve(),
      busy: true,
      dead: false,
      everReady: false,
      models: new Set(),
      lastUsed: 0,
      idleSince: 0,
      pending: new Map(),
      stderr: '',
      logTokens: this.limits.maxLogBurst,
      logTokensAt: performance.now(),
      logBytes: 0,
      unreadBytes: 0,
      baseRss: null,
      inner: [],
    };
    child.stderr?.on('data', (c: Buffer) => {
      w.stderr = (w.stderr + c.toString('utf8')).slice(-4096);
    });
    // Every read from the channel is counted until a whole message is delivered: a message over
    // the size limit has its process killed while it arrives (the provider would otherwise
    // buffer and decode all of it, up to the job process's memory limit, and again for the next).
    countChannelReads(child, (bytes) => {
      w.unreadBytes += bytes;
      if (w.unreadBytes <= this.limits.maxMessageBytes) return true;
      // Nothing more of it is parsed: the channel is closed now, the process killed.
      if (!w.dead) this.flood(w, `a message over ${this.limits.maxMessageBytes} bytes`);
      return false;
    });
    child.on('message', (m: unknown) => {
      w.unreadBytes = 0;
      // The process runs the renter's model: what it sends is checked before it is used (a
      // number, or a log level that names no logger method, threw out of this handler and
      // ended the provider, every renter's jobs with it).
      if (!isReply(m)) {
        this.kill(w, new SandboxError('JOB_CRASHED', 'the job process sent a malformed message'));
        return;
      }
      if ('op' in m) {
        if (m.op === 'part') {
          const p = w.pending.get(m.id);
          if (p?.part) p.part(m);
          else this.stray(w, 'a part of no group it runs');
        } else if (this.admitLog(w, m)) this.opts.logger[m.level](m.msg, m.fields);
        return;
      }
      const p = w.pending.get(m.id);
      if (!p) {
        this.stray(w, 'an answer to no request');
        return;
      }
      w.pending.delete(m.id);
      if (p.timing) {
        p.timing.answered = monotonicMs();
        if (m.ok && isStamps(m.at)) p.timing.job = m.at;
      }
      if (m.ok) p.resolve(m.result);
      else {
        if (m.detail !== m.error) this.opts.logger.debug('job error', { code: m.code, detail: m.detail });
        p.reject(new SandboxError(m.code, m.error));
      }
    });
    child.on('error', (err) => this.opts.logger.warn('job process error', { error: err.message }));
    child.on('exit', (code, signal) => {
      if (!w.dead && !this.stopped)
        this.opts.logger.warn('job process exited', { code, signal, stderr: w.stderr.slice(-500) });
      this.kill(w, new SandboxError('JOB_CRASHED', 'the job process ended unexpectedly'));
    });
    this.workers.push(w);
    w.ready = this.send(w, {
      op: 'init',
      executionProvider: this.effective,
      ocr: this.opts.ocr,
      maxSessions: this.opts.maxSessions,
      threads: this.opts.threads ?? { spinning: false },
      maxOutputBytes: this.opts.maxOutputBytes,
      logLimits: {
        maxLogBytes: this.limits.maxLogBytes,
        maxLogBytesPerJob: this.limits.maxLogBytesPerJob,
        maxLogsPerSecond: this.limits.maxLogsPerSecond,
        maxLogBurst: this.limits.maxLogBurst,
      },
    }).then(
      (r) => {
        const ep = (r as { executionProvider: ExecutionProviderName }).executionProvider;
        if (this.bwrap && child.pid !== undefined) {
          // It answered: the job process runs inside. Without it found, its memory goes unmeasured.
          w.inner = descendants(child.pid).map((pid) => ({ pid, started: processIdentity(pid).started }));
          if (w.inner.length === 0) {
            const err = new SandboxError('JOB_CRASHED', 'the job process cannot be found in its sandbox');
            this.kill(w, err);
            throw err;
          }
        }
        this.effective = ep;
        w.everReady = true;
        w.baseRss = this.rss(w);
        this.release(w);
      },
      (err: Error) => {
        this.kill(w, err);
        throw err;
      },
    );
    // Its start has a time limit as its jobs have (see startTimeoutMs).
    const startMs = this.opts.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    const startTimer = setTimeout(() => {
      this.opts.logger.warn('job process did not start in time; killing it', { startTimeoutMs: startMs });
      this.kill(
        w,
        new SandboxError('JOB_CRASHED', `the job process did not start within ${startMs / 1000} s`),
      );
    }, startMs);
    startTimer.unref();
    w.ready.then(
      () => clearTimeout(startTimer),
      () => clearTimeout(startTimer),
    );
    w.ready.catch(() => undefined);
    return w;
  }

  private send(
    w: Worker,
    req: SandboxCall,
    part?: (p: SandboxPart) => void,
    timing?: SandboxTiming,
  ): Promise<unknown> {
    const id = this.nextId++;
    w.logBytes = 0;
    return new Promise((resolve, reject) => {
      w.pending.set(id, { resolve, reject, ...(part ? { part } : {}), ...(timing ? { timing } : {}) });
      if (timing) timing.sent = monotonicMs();
      w.child.send({ ...req, id } as SandboxRequest, (err) => {
        if (err) {
          w.pending.delete(id);
          reject(new SandboxError('JOB_CRASHED', 'the job process cannot be reached'));
        }
      });
    });
  }

  /**
   * Kills a process (if alive), fails what it was doing and starts a replacement. What it was
   * doing fails only once its channel is drained: answers it wrote before it died (jobs of a group
   * that ended before the one it was killed in) may still wait there unread, and they are the
   * renter's results, not failures.
   */
  private kill(w: Worker, why: Error): void {
    if (w.dead) return;
    w.dead = true;
    w.busy = true;
    w.killedWith = why;
    this.killing.add((w.killed = this.killSandbox(w)));
    void w.killed.then(() => this.killing.delete(w.killed!));
    // Nothing more of its stderr is wanted (what it said is logged before a kill), and a process
    // it left (one that outlived the kill) must not keep the pipe, and with it this process, open.
    w.child.stderr?.destroy();
    const fail = () => {
      for (const p of w.pending.values()) p.reject(why);
      w.pending.clear();
    };
    if (!w.child.connected) fail();
    else {
      // The channel ends (EOF) after every message written to it is delivered. A process that
      // does not die within the drain limit has its requests failed anyway.
      // Past it, the channel is closed from this side: a process that outlives SIGKILL (stuck in
      // the kernel) or left a child holding its end would otherwise be read, its messages parsed
      // and logged, for as long as it writes.
      const drained = setTimeout(() => {
        try {
          w.child.disconnect();
        } catch {
          // already closed
        }
        fail();
      }, DRAIN_MS);
      drained.unref();
      w.child.once('disconnect', () => {
        clearTimeout(drained);
        fail();
      });
    }
    rmSync(w.dir, { recursive: true, force: true });
    const i = this.workers.indexOf(w);
    if (i >= 0) this.workers.splice(i, 1);
    if (!this.stopped && this.started) {
      const replace = () => {
        if (this.stopped) return;
        let next: Worker;
        try {
          next = this.spawn();
        } catch (err) {
          // mkdtemp or fork failing at once (a full or missing temporary directory): thrown from
          // a timer or an exit handler it would end the provider; it is retried instead.
          this.opts.logger.error('cannot start a job process', { error: (err as Error).message });
          setTimeout(replace, 2_000).unref();
          return;
        }
        next.ready.catch((err: Error) =>
          this.opts.logger.error('cannot start a job process', { error: err.message }),
        );
      };
      if (w.everReady) replace();
      else setTimeout(replace, 2_000).unref();
    }
  }

  /**
   * SIGKILL for a job process, and under bwrap for every process of its sandbox. bwrap's
   * --die-with-parent does not cover all of it: a sandbox killed while it starts (the provider
   * stopping as its pool warms up) left its first process, still waiting for the killed bwrap to
   * let it go on (an eventfd read that never ends), running for good, holding the provider's
   * stderr pipe. So the processes known to be in the sandbox die at once, the bwrap process is
   * stopped (it starts nothing more), and once it is stopped (SIGSTOP is taken when it next leaves
   * the kernel: a clone under way ends first) the processes below it are found and all killed,
   * each only while its pid still names the process found (its start time). The wait for the
   * stop is not blocking and not cut short: a scan after a fixed 200 ms missed a process cloned by
   * a bwrap not yet scheduled on a loaded machine (the tests hung on its pipe). Resolves when done.
   */
  private killSandbox(w: Worker): Promise<void> {
    const killAll = (ps: { pid: number; started: string | undefined }[]) => {
      for (const p of ps) {
        if (p.started === undefined || processIdentity(p.pid).started !== p.started) continue;
        try {
          process.kill(p.pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
    };
    const killChild = () => {
      try {
        w.child.kill('SIGKILL');
      } catch {
        // already gone
      }
    };
    killAll(w.inner);
    const pid = w.child.pid;
    // Its pid is bwrap's only while Node has not reaped it (exitCode/signalCode set as it is).
    const reaped = () => w.child.exitCode !== null || w.child.signalCode !== null;
    if (!this.bwrap || pid === undefined || reaped()) {
      killChild();
      return Promise.resolve();
    }
    try {
      process.kill(pid, 'SIGSTOP');
    } catch {
      // gone already: its sandbox went with it, or is among w.inner
      killChild();
      return Promise.resolve();
    }
    const until = performance.now() + STOP_WAIT_MS;
    return new Promise((resolve) => {
      const poll = () => {
        // In one turn of the loop: checked unreaped, scanned, then killed (no reuse of its pid).
        if (!reaped() && !stoppedOrGone(pid) && performance.now() < until) {
          setTimeout(poll, 2);
          return;
        }
        const below = reaped()
          ? []
          : descendants(pid).map((p) => ({ pid: p, started: processIdentity(p).started }));
        killChild();
        killAll(below);
        resolve();
      };
      poll();
    });
  }

  /**
   * Kills a process that sent more than it may (JOB_FLOOD): its job fails with the reason, and
   * its channel is closed at once, so nothing it wrote is read (an answer queued behind a flood
   * is not worth reading the flood for).
   */
  private flood(w: Worker, what: string): void {
    if (w.dead) {
      // Already killed for another reason, and flooding while its channel drains: stop reading;
      // its requests fail with that first reason.
      try {
        w.child.disconnect();
      } catch {
        // already closed
      }
      return;
    }
    this.opts.logger.warn('job process sent more than its limits allow; killing it', { what });
    const why = new SandboxError('JOB_FLOOD', `the job process sent ${what} and was stopped`);
    this.kill(w, why);
    try {
      w.child.disconnect();
    } catch {
      // already closed
    }
    for (const p of w.pending.values()) p.reject(why);
    w.pending.clear();
  }

  /** Takes one message from a process's rate bucket; false (and the process killed) when empty. */
  private takeToken(w: Worker): boolean {
    const now = performance.now();
    const { maxLogsPerSecond, maxLogBurst } = this.limits;
    w.logTokens = Math.min(maxLogBurst, w.logTokens + ((now - w.logTokensAt) / 1000) * maxLogsPerSecond);
    w.logTokensAt = now;
    if (w.logTokens < 1) {
      this.flood(w, `messages faster than ${maxLogsPerSecond} a second`);
      return false;
    }
    w.logTokens -= 1;
    return true;
  }

  /** Whether a log message is within the limits; a process over them is killed. */
  private admitLog(w: Worker, m: { msg: string; fields?: Record<string, unknown> }): boolean {
    const bytes = logSize(m);
    if (bytes > this.limits.maxLogBytes) {
      this.flood(w, `a log message of ${bytes} bytes (at most ${this.limits.maxLogBytes})`);
      return false;
    }
    w.logBytes += bytes;
    if (w.logBytes > this.limits.maxLogBytesPerJob) {
      this.flood(w, `more than ${this.limits.maxLogBytesPerJob} bytes of log messages in one job`);
      return false;
    }
    return this.takeToken(w);
  }

  /**
   * A reply or part nobody waits for (a made-up id, a finished request's). The real job process
   * never sends one to a live process's provider (a request is forgotten only when it is answered
   * or its process killed), so it is a flood at once: taken from the log rate, answers of up to
   * maxMessageBytes each were decoded 20 times a second for as long as the process lived, idle too.
   * From a killed process draining its channel it only stops the reading (flood).
   */
  private stray(w: Worker, what: string): void {
    this.flood(w, what);
  }

  /**
   * Replaces a process that a request left holding more than half the memory limit, before any
   * other job runs in it. ONNX Runtime's arena keeps what a run allocated (and the job's outputs
   * wait for a garbage collection): a renter's job that allocated just under the limit and ended
   * (even refused, OUTPUT_TOO_LARGE, for a model of a few bytes) left its process near the limit,
   * and the next renter's job there, one that fits a fresh process, was killed with JOB_MEMORY.
   * Half, as at start: the limit must leave a fresh process room for a job its own size.
   * A process holding sessions is first asked to drop them and collect its heap (the arenas are
   * the sessions'): an honest provider whose cached models add up to over half the limit would
   * otherwise start a process, and load every model again, after every job. It is replaced only
   * if it is still over half.
   */
  private async shrinkOrReplace(w: Worker): Promise<void> {
    // A job folder left full would fail the renter's next job there.
    if (!w.dead && this.scratchFull(w)) {
      this.kill(w, this.diskError());
      return;
    }
    if (!this.overHalf(w)) return;
    // Asked whatever `models` says: a job that failed keeps its session there too.
    const timer = this.jobTimer(w, 'drop');
    try {
      await this.send(w, { op: 'drop' });
      w.models.clear();
    } catch {
      // Killed (its timer) or unreachable: replaced already, or below.
    } finally {
      clearTimeout(timer);
    }
    if (!this.overHalf(w)) return;
    const rss = this.rss(w);
    this.opts.logger.info('job process left holding memory; replacing it', {
      rss,
      limit: this.opts.memoryBytes,
    });
    this.kill(w, new SandboxError('JOB_FAILED', 'the job process was replaced'));
  }

  /**
   * Gives a process back to the pool once its clean-up (shrinkOrReplace) is over; the job's answer
   * does not wait for it. A renter's answer waited for the drop of sessions and the collection,
   * time the renter's job did not need; the process stays busy meanwhile, so no job starts there
   * before the memory the last one left is given back (or the process replaced).
   */
  private cleanUpThenRelease(w: Worker): void {
    this.shrinkOrReplace(w).then(
      () => this.release(w),
      (err: Error) => {
        // Not cleaned up: it may still hold what the last job left, so it takes no other job.
        this.opts.logger.error('cannot clean up a job process; replacing it', { error: err.message });
        this.kill(w, new SandboxError('JOB_FAILED', 'the job process was replaced'));
      },
    );
  }

  /** A live process holding more than half the memory limit. */
  private overHalf(w: Worker): boolean {
    if (w.dead) return false;
    const rss = this.rss(w);
    return rss !== null && rss > this.opts.memoryBytes / 2;
  }

  /**
   * Whether a process held "well above" what it took fresh (its baseline plus a tenth of the
   * limit) when a job started there. Kept under half the limit (shrinkOrReplace), such a process
   * still leaves a job about half the limit where a fresh one leaves the limit less its baseline:
   * a job between the two, killed there with JOB_MEMORY, would be blamed for another job's
   * leftovers. Such a job runs once more in a fresh process (request, requestMany; fits).
   */
  private heldLeftovers(w: Worker, startRss: number | null): boolean {
    return startRss !== null && w.baseRss !== null && startRss > w.baseRss + this.opts.memoryBytes / 10;
  }

  private startRss(w: Worker): number | null {
    return this.rss(w);
  }

  /**
   * The resident set of a job process: the forked process's, or under bwrap that of every process
   * of its sandbox (bwrap's own are small; the job process is one of them), as the sandbox's /proc
   * lists them: before, only the processes found at its start were counted, and a process forked
   * inside later (by a job process a renter's model took over) grew outside the limit. Where that
   * /proc cannot be read, the processes found at its start. Plus what its job folder holds (a
   * tmpfs: memory no resident set shows).
   */
  private rss(w: Worker): number | null {
    if (w.child.pid === undefined) return null;
    const own = residentBytes(w.child.pid);
    if (own === null) return null;
    const scratch = this.scratchUse(w)?.used ?? 0;
    // The first found below bwrap is the sandbox's first process, its pid namespace's init.
    const inside = this.bwrap && w.inner[0] ? sandboxResidentBytes(w.inner[0]) : null;
    if (inside !== null) return own + inside + scratch;
    let sum = own + scratch;
    for (const p of w.inner) sum += residentBytes(p.pid) ?? 0;
    return sum;
  }

  /**
   * Whether `w` may take a job of `owner`: one of its own processes or a fresh one, never another
   * renter's; for a second run (`fresh`) one holding no more than a tenth of the limit over its
   * baseline (heldLeftovers), so the job is not blamed again for what an earlier one left.
   */
  private fits(w: Worker, owner: string, fresh: boolean): boolean {
    if (w.owner !== undefined && w.owner !== owner) return false;
    return !fresh || !this.heldLeftovers(w, this.startRss(w));
  }

  private take(w: Worker, owner: string): Worker {
    w.busy = true;
    w.owner ??= owner;
    w.lastUsed = ++this.uses;
    return w;
  }

  /**
   * A process for a job of `owner`: an idle one of its own (where the model `hash` is warm, if
   * any), else an idle fresh one, else it waits; and where no process being started will serve it,
   * one is started while the pool has room, else an idle process of another renter may be replaced
   * by a fresh one (recycle). The pool never grows past maxProcesses: many renters cost processes
   * started, never processes held.
   */
  private acquire(owner: string, hash?: string, fresh = false): Promise<Worker> {
    const idle = this.workers.filter((w) => !w.busy && !w.dead && this.fits(w, owner, fresh));
    const mine = idle.filter((w) => w.owner === owner);
    const w = (hash ? mine.find((x) => x.models.has(hash)) : undefined) ?? mine[0] ?? idle[0];
    if (w) return Promise.resolve(this.take(w, owner));
    const waiting = new Promise<Worker>((resolve) => this.waiting.push({ owner, fresh, resolve }));
    this.recycle();
    return waiting;
  }

  private release(w: Worker): void {
    if (w.dead) return;
    // Second runs first (they waited once already), then in order of arrival; a fresh process
    // first to a job whose renter holds none (it may have been started for it, recycle: a renter
    // that holds processes waits for one of its own).
    const held = this.held();
    const order = w.owner === undefined ? [(e: Waiter) => !held.has(e.owner), () => true] : [() => true];
    let i = -1;
    for (const first of order) {
      i = this.waiting.findIndex((e) => first(e) && e.fresh && this.fits(w, e.owner, true));
      if (i < 0) i = this.waiting.findIndex((e) => first(e) && !e.fresh && this.fits(w, e.owner, false));
      if (i >= 0) break;
    }
    if (i >= 0) {
      const [e] = this.waiting.splice(i, 1);
      e!.resolve(this.take(w, e!.owner));
      return;
    }
    w.busy = false;
    w.idleSince = monotonicMs();
    this.recycle();
  }

  /** Live processes each renter holds (busy or idle). */
  private held(): Map<string, number> {
    const n = new Map<string, number>();
    for (const w of this.workers)
      if (!w.dead && w.owner !== undefined) n.set(w.owner, (n.get(w.owner) ?? 0) + 1);
    return n;
  }

  /**
   * Starts or replaces processes for the jobs waiting that the processes being started will not
   * serve (a starting process is fresh: any renter's job may take it). Where the pool holds fewer
   * than maxProcesses, a process is started. Else an idle process is replaced by a fresh one, but
   * only for a job whose renter holds no process, or one of a renter holding at least two more
   * than the job's renter, or one idle for coldAfterMs (a renter gone; a second run may replace
   * its renter's own one holding leftovers): of
   * those, one of the renter holding the most first, then the least recently used. So a renter
   * running jobs side by side (a batch's groups) waits for its own processes rather than replace
   * another renter's only warm one: before, with two renters on a full pool, each job of one
   * replaced the other's idle process, and every job of both paid a process start (2-3 s of CPU).
   * Jobs waiting are bounded by the job queue, so this replaces (or starts) at most that many.
   */
  private recycle(): void {
    if (this.stopped || !this.started) return;
    const live = this.workers.filter((w) => !w.dead);
    const starting = live.filter((w) => !w.everReady).length;
    let need = this.waiting.length - starting;
    if (need <= 0) return;
    // Room in the pool (maxProcesses): a fresh process more, no renter's warm one replaced.
    let started = 0;
    for (let n = live.length; need > 0 && n < this.maxProcesses; n++, need--) {
      try {
        this.spawn().ready.catch((err: Error) =>
          this.opts.logger.error('cannot start a job process', { error: err.message }),
        );
        started++;
      } catch (err) {
        // A full or missing temporary directory: the job waits for a process freed or replaced.
        this.opts.logger.error('cannot start a job process', { error: (err as Error).message });
        break;
      }
    }
    if (need <= 0) return;
    const held = this.held();
    const idle = this.workers.filter((w) => !w.busy && !w.dead && w.owner !== undefined);
    const coldBefore = monotonicMs() - (this.opts.coldAfterMs ?? DEFAULT_COLD_AFTER_MS);
    // The waiting jobs in the order fresh processes serve them (release: second runs first, a
    // renter holding none first); the first ones get the processes starting, and count as their
    // renters' (else a renter whose process died, a job of its own crashing it, held none while
    // its replacement started, and its next job side by side replaced another renter's).
    const byKind = [...this.waiting.filter((e) => e.fresh), ...this.waiting.filter((e) => !e.fresh)];
    const served = [...byKind.filter((e) => !held.has(e.owner)), ...byKind.filter((e) => held.has(e.owner))];
    for (const e of served.slice(0, starting + started)) held.set(e.owner, (held.get(e.owner) ?? 0) + 1);
    for (const e of served.slice(starting + started)) {
      const mine = held.get(e.owner) ?? 0;
      let victim: Worker | undefined;
      for (const w of idle) {
        const theirs = held.get(w.owner!) ?? 0;
        const may =
          w.owner === e.owner ? e.fresh : mine === 0 || theirs >= mine + 2 || w.idleSince <= coldBefore;
        if (!may) continue;
        const best = victim ? (held.get(victim.owner!) ?? 0) : -1;
        if (!victim || theirs > best || (theirs === best && w.lastUsed < victim.lastUsed)) victim = w;
      }
      if (!victim) continue;
      idle.splice(idle.indexOf(victim), 1);
      if (victim.owner !== e.owner) {
        held.set(victim.owner!, (held.get(victim.owner!) ?? 1) - 1);
        held.set(e.owner, mine + 1);
      }
      this.recycled++;
      this.kill(victim, new SandboxError('JOB_FAILED', 'the job process was replaced'));
    }
  }

  /**
   * Notes that `w` holds the session of `hash`. Kept to maxSessions, the oldest first forgotten,
   * as the job process drops them (onnx.ts); one it dropped otherwise answers MODEL_NEEDED.
   */
  private remember(w: Worker, hash: string): void {
    if (w.models.has(hash)) return;
    w.models.add(hash);
    if (w.models.size > this.opts.maxSessions) w.models.delete(w.models.values().next().value as string);
  }

  /** The job-folder error (JOB_DISK). */
  private diskError(): SandboxError {
    return new SandboxError(
      'JOB_DISK',
      `the job wrote more than the limit of ${mib(this.diskBytes)} MiB (or ${MAX_JOB_FOLDER_FILES} files) to its job folder and was stopped`,
    );
  }

  /**
   * Bytes in a sandboxed process's job folder (its tmpfs, read through its sandbox's root) and the
   * folder's size; null outside a sandbox, or where it cannot be read (its first process gone, or
   * its pid now another process's).
   */
  private scratchUse(w: Worker): { used: number; free: number; files: number } | null {
    const init = w.inner[0];
    if (!this.bwrap || !init || init.started === undefined) return null;
    if (processIdentity(init.pid).started !== init.started) return null;
    try {
      const st = statfsSync(`/proc/${init.pid}/root${w.dir}`);
      // Its root folder is an inode too: files made by the job are the others.
      const files = Math.max(0, st.files - st.ffree - 1);
      const used = (st.blocks - st.bfree) * st.bsize + files * FILE_BYTES;
      return processIdentity(init.pid).started === init.started
        ? { used, free: st.bfree * st.bsize, files }
        : null;
    } catch {
      return null;
    }
  }

  private scratchFull(w: Worker): boolean {
    const use = this.scratchUse(w);
    return use !== null && (use.free === 0 || use.files > MAX_JOB_FOLDER_FILES);
  }

  /**
   * A job that failed on a process whose job folder is full: it failed for filling it (JOB_DISK),
   * and the process is replaced (a later job of its renter there would fail too). Else `err`.
   */
  private diskFailure(w: Worker, err: unknown): unknown {
    if (w.dead || !this.scratchFull(w)) return err;
    const e = this.diskError();
    this.kill(w, e);
    return e;
  }

  /**
   * Sends a job's request with its model's bytes, read here from `model.path` (a path the provider
   * chose), where `w` may not hold the model's session; where it holds it, without, and once more
   * with them if it answers MODEL_NEEDED (it keeps maxSessions sessions: an old one may be gone).
   */
  private async sendJob(
    w: Worker,
    req: SandboxCall,
    model: ModelRef | undefined,
    part?: (p: SandboxPart) => void,
    timing?: SandboxTiming,
  ): Promise<unknown> {
    if (model === undefined) return this.send(w, req, part, timing);
    let parts = 0;
    const counted = part
      ? (p: SandboxPart) => {
          parts++;
          part(p);
        }
      : undefined;
    if (w.models.has(model.hash)) {
      try {
        return await this.send(w, req, counted, timing);
      } catch (err) {
        if (!(err instanceof SandboxError && err.code === 'MODEL_NEEDED') || w.dead || parts > 0) throw err;
        w.models.delete(model.hash);
      }
    }
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await readFile(model.path));
    } catch {
      throw new SandboxError('BAD_MODEL', 'the model cannot be read here');
    }
    // Killed meanwhile (its time limit): the reason it was killed.
    if (w.dead) throw w.killedWith ?? new SandboxError('JOB_CRASHED', 'the job process ended unexpectedly');
    return this.send(w, { ...req, model: bytes } as SandboxCall, counted, timing);
  }

  /** The time limit of one job on `w`: past it, the job's process is killed. */
  private jobTimer(w: Worker, op: SandboxCall['op']): NodeJS.Timeout {
    return setTimeout(() => {
      this.opts.logger.warn('job ran past its time limit; killing its process', {
        op,
        timeoutMs: this.opts.timeoutMs,
      });
      this.kill(
        w,
        new SandboxError(
          'JOB_TIMEOUT',
          `the job ran past the time limit of ${this.opts.timeoutMs / 1000} s and was stopped`,
        ),
      );
    }, this.opts.timeoutMs);
  }

  /**
   * Runs one request. A job killed with JOB_MEMORY in a process that held another job's leftovers
   * when it started (heldLeftovers) runs once more, in a fresh process, before it is answered; one
   * that failed in a fresh process is never run again, so a model that is too big for the limit
   * costs the provider at most one extra run. The second run has a time limit of its own, as each
   * job of a group has (the renter is not at fault for the first).
   */
  private async request(
    owner: string,
    req: SandboxCall,
    model?: ModelRef,
    timing?: SandboxTiming,
  ): Promise<unknown> {
    if (this.stopped) throw new SandboxError('JOB_FAILED', 'the provider is stopping');
    const first = await this.attempt(owner, req, model, timing, false);
    if (first.ok) return first.value;
    if (!first.retry || this.stopped) throw first.error;
    this.opts.logger.info("job ran out of memory where another job's leftovers were; once more, fresh", {
      op: req.op,
    });
    this.retried++;
    const again = await this.attempt(owner, req, model, timing, true);
    if (again.ok) return again.value;
    throw again.error;
  }

  private async attempt(
    owner: string,
    req: SandboxCall,
    model: ModelRef | undefined,
    timing: SandboxTiming | undefined,
    fresh: boolean,
  ): Promise<{ ok: true; value: unknown } | { ok: false; error: unknown; retry: boolean }> {
    const w = await this.acquire(owner, model?.hash, fresh);
    const startRss = this.startRss(w);
    const timer = this.jobTimer(w, req.op);
    try {
      const value = await this.sendJob(w, req, model, undefined, timing);
      if (model) this.remember(w, model.hash);
      // Answered, yet past its job folder's limits (files the monitor had not seen yet): failed.
      if (!w.dead && this.scratchFull(w)) {
        const error = this.diskError();
        this.kill(w, error);
        return { ok: false, error, retry: false };
      }
      return { ok: true, value };
    } catch (thrown) {
      const error = this.diskFailure(w, thrown);
      const retry =
        !fresh &&
        error instanceof SandboxError &&
        error.code === 'JOB_MEMORY' &&
        this.heldLeftovers(w, startRss);
      return { ok: false, error, retry };
    } finally {
      clearTimeout(timer);
      this.cleanUpThenRelease(w);
    }
  }

  /** A group's request for its jobs from `from` on (a second run after JOB_MEMORY, request). */
  private static tail(req: SandboxCall, from: number): SandboxCall {
    if (req.op === 'runMany') return { ...req, inputs: req.inputs.slice(from) };
    if (req.op === 'ocrMany') return { ...req, images: req.images.slice(from) };
    return req;
  }

  private async requestMany(
    owner: string,
    req: SandboxCall,
    count: number,
    model?: ModelRef,
  ): Promise<JobSettled<unknown>[]> {
    if (this.stopped) throw new SandboxError('JOB_FAILED', 'the provider is stopping');
    let { settled, retryFrom } = await this.attemptMany(owner, req, count, model, false);
    // The job killed with JOB_MEMORY where another job's leftovers were, and the ones after it
    // (aborted), run once more in a fresh process (see request).
    if (retryFrom !== undefined && !this.stopped) {
      this.opts.logger.info("job ran out of memory where another job's leftovers were; once more, fresh", {
        op: req.op,
      });
      this.retried++;
      const again = await this.attemptMany(
        owner,
        JobSandbox.tail(req, retryFrom),
        count - retryFrom,
        model,
        true,
      );
      settled = [...settled.slice(0, retryFrom), ...again.settled];
    }
    // A group stopped by its budget answers the jobs it ran; the others are the caller's to queue.
    if ('budgetMs' in req && req.budgetMs !== undefined && settled.length > 0) return settled;
    while (settled.length < count)
      settled.push({ ok: false, error: new SandboxError('JOB_FAILED', 'the job failed'), durationMs: 0 });
    return settled;
  }

  private async attemptMany(
    owner: string,
    req: SandboxCall,
    count: number,
    model: ModelRef | undefined,
    fresh: boolean,
  ): Promise<{ settled: JobSettled<unknown>[]; retryFrom?: number }> {
    const w = await this.acquire(owner, model?.hash, fresh);
    const startRss = this.startRss(w);
    const settled: JobSettled<unknown>[] = [];
    let retryFrom: number | undefined;
    // One timer for the group, restarted on each answer (refresh: no new timer per job).
    const timer = this.jobTimer(w, req.op);
    const arm = () => timer.refresh();
    try {
      await this.sendJob(w, req, model, (p) => {
        // The real job process answers a group's jobs in order, each once: any other part (one
        // repeated, out of order, past the group's count) was silently dropped, or, numbered next,
        // kept and the group's timer restarted, so a process could hold its runner and grow the
        // provider's memory without end.
        if (p.index !== settled.length || p.index >= count) {
          this.flood(w, `a part numbered ${p.index} where ${settled.length} of ${count} was due`);
          return;
        }
        // An answer read while a killed process's channel drains: no job runs on, none to time.
        if (!w.dead) arm();
        settled.push(
          p.ok
            ? { ok: true, value: p.result, durationMs: p.durationMs }
            : { ok: false, error: new SandboxError(p.code, p.error), durationMs: p.durationMs },
        );
        if (!p.ok && p.detail !== p.error)
          this.opts.logger.debug('job error', { code: p.code, detail: p.detail });
      });
      if (model) this.remember(w, model.hash);
      // Answered, yet past its job folder's limits (files the monitor had not seen yet): the last
      // job answered fails, as a job sent alone would (before, it was done), and the process goes.
      if (!w.dead && this.scratchFull(w)) {
        const error = this.diskError();
        this.kill(w, error);
        const last = settled.at(-1);
        if (last) settled[settled.length - 1] = { ok: false, error, durationMs: last.durationMs };
      }
    } catch (thrown) {
      // The whole request failed (the model cannot load) or its process was killed: the job that
      // was running gets the reason, the ones after it did not run.
      const err = this.diskFailure(w, thrown);
      const why = err instanceof SandboxError ? err : new SandboxError('JOB_FAILED', 'the job failed');
      if (!fresh && why.code === 'JOB_MEMORY' && settled.length < count && this.heldLeftovers(w, startRss))
        retryFrom = settled.length;
      if (settled.length < count) settled.push({ ok: false, error: why, durationMs: 0 });
      const aborted =
        why.code === 'BAD_MODEL'
          ? why
          : new SandboxError(
              'JOB_ABORTED',
              'an earlier job of this batch was stopped, so this one did not run',
            );
      while (settled.length < count) settled.push({ ok: false, error: aborted, durationMs: 0 });
    } finally {
      clearTimeout(timer);
      this.cleanUpThenRelease(w);
    }
    return retryFrom === undefined ? { settled } : { settled, retryFrom };
  }

  /**
   * Kills a process past the memory limit: a busy one fails its job (JOB_MEMORY); an idle one
   * (grown by the sessions it keeps) is only replaced, so the next job does not pay for them.
   * A busy process is read every check (100 ms); an idle one, which runs nothing that could grow
   * it, every tenth: reading /proc for every idle process ten times a second cost the provider
   * about a millisecond of CPU per OCR job (bench:jobs).
   */
  private checkMemory(): void {
    this.memoryChecks++;
    for (const w of [...this.workers]) {
      if (w.dead || w.child.pid === undefined) continue;
      if (!w.busy && this.memoryChecks % 10 !== 0) continue;
      if (this.scratchFull(w)) {
        this.opts.logger.warn('job filled its job folder; killing its process', { limit: this.diskBytes });
        this.kill(w, this.diskError());
        continue;
      }
      const rss = this.rss(w);
      if (rss !== null && rss > this.opts.memoryBytes) {
        this.opts.logger.warn('job grew past its memory limit; killing its process', {
          rss,
          limit: this.opts.memoryBytes,
        });
        this.kill(
          w,
          new SandboxError(
            'JOB_MEMORY',
            `the job used more than the memory limit of ${mib(this.opts.memoryBytes)} MiB and was stopped`,
          ),
        );
      }
    }
  }
}
