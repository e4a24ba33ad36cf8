/**
 * OS isolation of job processes (sandbox.ts). A job process runs the renter's model in ONNX
 * Runtime: the model check (onnx-check.ts: no external data, no custom ops) keeps a well-formed
 * model from reading files, but a bug in the runtime's parser (memory corruption) would run the
 * renter's code as the provider's user, with the provider's key files (keyring, node and chip keys,
 * TLS key) and the network in reach. With isolation `bwrap` each job process runs inside
 * bubblewrap: new user, mount, pid, ipc, uts and network namespaces (no network at all), no
 * capabilities, a fresh session, a cleared environment, and a filesystem view of only what the
 * runner needs, read-only (the system's /usr and libraries, Node, the runner's package and the
 * node_modules it loads, the OCR model files) plus its own job folder read-write, a tmpfs of a
 * fixed size (`scratch`) counted against its memory limit. The model store is not there: the
 * provider reads the model a job runs and sends its bytes (sandbox.ts), so a job process never
 * sees another renter's model. The provider's home, data folders and /etc are not there.
 * `--die-with-parent`: the sandbox dies with the provider, and with the bwrap process the provider
 * holds (SIGKILL of it kills all).
 */
import { spawn } from 'node:child_process';
import {
  accessSync,
  constants,
  existsSync,
  lstatSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
} from 'node:fs';
import { delimiter, dirname, isAbsolute, join, resolve } from 'node:path';

/** `auto`: bwrap where it works (else a warning and none); `bwrap`: bwrap or no start; `none`. */
export type JobIsolationMode = 'auto' | 'bwrap' | 'none';
/** What job processes run under, once `auto` is settled. */
export type JobIsolation = 'bwrap' | 'none';
export const JOB_ISOLATION_MODES: readonly JobIsolationMode[] = ['auto', 'bwrap', 'none'];

export function isJobIsolationMode(v: unknown): v is JobIsolationMode {
  return typeof v === 'string' && (JOB_ISOLATION_MODES as readonly string[]).includes(v);
}

/** Isolation `bwrap` was asked for and cannot be had here: the provider does not start. */
export class JobIsolationError extends Error {
  readonly code = 'JOB_ISOLATION_UNAVAILABLE';
  constructor(message: string) {
    super(message);
    this.name = 'JobIsolationError';
  }
}

/** The system's program and library folders, bound read-only (or, where links, linked alike). */
const SYSTEM_DIRS = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];

/** A folder or file seen in the sandbox: `src` on the host shown at `dest`, read-only. */
export interface SandboxBind {
  src: string;
  dest: string;
}

export interface SandboxCommandOptions {
  /** What the job process may read (besides the system's folders and Node). */
  readOnly: SandboxBind[];
  /** What it may write, bound from the host (the provider's own tests and probes; jobs use `scratch`). */
  writable: string[];
  /**
   * Its job folder: a tmpfs of at most `bytes` mounted at `path` (bwrap's --size). Writes past it
   * fail inside (ENOSPC), never the provider's disk; what it holds is memory, which the provider
   * counts against the job's memory limit (sandbox.ts).
   */
  scratch?: { path: string; bytes: number };
  cwd: string;
  /** Its whole environment (bwrap clears the one it is given). */
  env: Record<string, string>;
  /** A GPU execution provider: the NVIDIA device files and /sys are shown too. */
  gpu: boolean;
  /**
   * No user namespace made inside (bwrap's --disable-userns, 0.8 on; with --unshare-user): one
   * gives its maker every capability in it, the way to most of the kernel a job process never
   * needs (the mounts and netfilter tables many kernel exploits start from).
   */
  disableUserns?: boolean;
  command: string[];
}

/** Whether `path` is `dir` or inside it. */
function within(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir === '/' ? '/' : `${dir}/`);
}

/** The real path of the Node binary this process runs, and the folder it was installed in. */
export function nodeBinary(): { path: string; prefix: string } {
  const path = realpathSync(process.execPath);
  return { path, prefix: dirname(dirname(path)) };
}

function systemArgs(): { args: string[]; covered: string[] } {
  const args: string[] = [];
  const covered: string[] = [];
  for (const d of SYSTEM_DIRS) {
    let st: ReturnType<typeof lstatSync>;
    try {
      st = lstatSync(d);
    } catch {
      continue;
    }
    if (st.isSymbolicLink()) args.push('--symlink', readlinkSync(d), d);
    else if (st.isDirectory()) {
      args.push('--ro-bind', d, d);
      covered.push(d);
    }
  }
  // The dynamic loader's cache (no secret in it); nothing else of /etc.
  args.push('--ro-bind-try', '/etc/ld.so.cache', '/etc/ld.so.cache');
  // ONNX Runtime sizes its thread pools from the CPU topology.
  args.push('--ro-bind-try', '/sys/devices/system/cpu', '/sys/devices/system/cpu');
  args.push('--proc', '/proc', '--dev', '/dev');
  return { args, covered };
}

/**
 * The bwrap arguments that run `command` isolated (see the top of this file). Binds are made in
 * order of their destination, a folder before what lies in it; one already shown by a folder
 * bound to itself is left out.
 */
export function bwrapArgs(opts: SandboxCommandOptions): string[] {
  const args = ['--unshare-all', '--die-with-parent', '--new-session', '--cap-drop', 'ALL', '--clearenv'];
  if (opts.disableUserns) args.push('--unshare-user', '--disable-userns');
  const system = systemArgs();
  args.push(...system.args);
  const node = nodeBinary();
  const binds: SandboxBind[] = [
    ...(system.covered.some((d) => within(node.path, d)) ? [] : [{ src: node.prefix, dest: node.prefix }]),
    ...opts.readOnly,
  ].sort((a, b) => (a.dest < b.dest ? -1 : a.dest > b.dest ? 1 : 0));
  const self = [...system.covered];
  for (const b of binds) {
    if (b.src === b.dest && self.some((d) => within(b.dest, d))) continue;
    args.push('--ro-bind', b.src, b.dest);
    if (b.src === b.dest) self.push(b.dest);
  }
  if (opts.gpu) {
    // CUDA: the driver's device files and what it reads of /sys (untried without such a GPU here).
    try {
      for (const name of readdirSync('/dev'))
        if (name.startsWith('nvidia')) args.push('--dev-bind-try', `/dev/${name}`, `/dev/${name}`);
    } catch {
      // no /dev to list: the runtime says the GPU is missing and the CPU is used
    }
    args.push('--ro-bind-try', '/sys', '/sys');
  }
  for (const w of opts.writable) args.push('--bind', w, w);
  if (opts.scratch)
    args.push('--size', String(Math.max(4096, Math.floor(opts.scratch.bytes))), '--tmpfs', opts.scratch.path);
  // The sandbox's own root and /dev are tmpfs, writable as bwrap makes them: files written there
  // (/tmp, /dev/shm, anywhere) are memory the job process's resident set does not count, outside
  // its memory limit. Read-only once everything is mounted; the job folder is the place to write.
  // (/dev stays writable for a GPU: CUDA may keep its files in /dev/shm; untried without one.)
  if (!opts.gpu) args.push('--remount-ro', '/dev');
  args.push('--remount-ro', '/');
  args.push('--chdir', opts.cwd);
  for (const [k, v] of Object.entries(opts.env)) args.push('--setenv', k, v);
  args.push('--', ...opts.command);
  return args;
}

/** Folders of the library path (and CUDA's home): a GPU's runtime may be installed there. */
export function libraryBinds(env: Record<string, string>): SandboxBind[] {
  const dirs = [
    ...(env.LD_LIBRARY_PATH ?? '').split(delimiter),
    ...(env.CUDA_HOME !== undefined ? [env.CUDA_HOME] : []),
  ];
  return realBinds(dirs.filter((d) => d !== '' && isAbsolute(d)));
}

/** Each existing path bound at its real path (links resolved), missing ones left out. */
export function realBinds(paths: string[]): SandboxBind[] {
  const out: SandboxBind[] = [];
  for (const p of paths) {
    try {
      const real = realpathSync(p);
      out.push({ src: real, dest: real });
    } catch {
      // missing: nothing to show
    }
  }
  return out;
}

/** Paths the provider names (model store, OCR files) shown where it names them, read-only. */
export function namedBinds(paths: string[]): SandboxBind[] {
  const out: SandboxBind[] = [];
  for (const p of paths) {
    try {
      out.push({ src: realpathSync(p), dest: resolve(p) });
    } catch {
      // missing: the job that names it fails as it would outside
    }
  }
  return out;
}

/**
 * What the runner at `runner` loads: the file; the package it belongs to (the nearest folder
 * above with a package.json); each node_modules folder from there up (Node's module resolution);
 * and the packages those link to outside them (npm workspaces: node_modules/@unc/core → packages/core).
 * All at their real paths, as Node resolves modules from a module's real path.
 */
export function runnerBinds(runner: string): SandboxBind[] {
  const real = realpathSync(runner);
  const paths = [real];
  let root: string | undefined;
  for (let d = dirname(real); ; d = dirname(d)) {
    if (existsSync(join(d, 'package.json'))) {
      root = d;
      break;
    }
    if (dirname(d) === d) break;
  }
  if (root !== undefined) {
    paths.push(root);
    for (let d = root; ; d = dirname(d)) {
      const modules = join(d, 'node_modules');
      if (existsSync(modules)) paths.push(modules, ...linkedPackages(realpathSync(modules)));
      if (dirname(d) === d) break;
    }
  }
  return realBinds(paths);
}

/** The real paths of the packages a node_modules folder links to outside itself. */
function linkedPackages(modules: string): string[] {
  const out: string[] = [];
  const look = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, e.name);
      if (e.name.startsWith('@') && e.isDirectory()) look(path);
      else if (e.isSymbolicLink()) {
        try {
          const target = realpathSync(path);
          if (!within(target, modules)) out.push(target);
        } catch {
          // a dangling link: nothing to show
        }
      }
    }
  };
  try {
    look(modules);
  } catch {
    // unreadable: what it holds is bound with it
  }
  return out;
}

/** The bwrap program on PATH, or null. */
export function findBwrap(path = process.env.PATH ?? ''): string | null {
  for (const dir of path.split(delimiter)) {
    if (dir === '') continue;
    const file = join(dir, 'bwrap');
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return null;
}

/** bwrap's path and whether it can keep user namespaces out (disableUserns), or why not. */
export type BwrapProbe = { bwrap: string; disableUserns: boolean } | { error: string };

let probed: Promise<BwrapProbe> | undefined;

/**
 * Whether bwrap works here: it runs Node in a sandbox of the kind the job processes get (once per
 * process; the answer is kept). The path of bwrap, or why not. Not synchronous: in `unc dev` the
 * node shares this process, and a bwrap that hangs must not stop its blocks (30 s at most).
 */
export function probeBwrap(): Promise<BwrapProbe> {
  probed ??= runProbe();
  return probed;
}

async function runProbe(): Promise<BwrapProbe> {
  const bwrap = findBwrap();
  if (bwrap === null) return { error: 'bwrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)' };
  return probeBwrapAt(bwrap);
}

/** Whether the bwrap at `bwrap` makes the sandbox the job processes get (probeBwrap; tests). */
export async function probeBwrapAt(bwrap: string): Promise<BwrapProbe> {
  // With user namespaces kept out where this bwrap can (0.8 on, and its own made: a setuid bwrap
  // on a kernel without unprivileged ones cannot); else as before.
  const strict = await probeOnce(bwrap, true);
  if (!('error' in strict)) return strict;
  return probeOnce(bwrap, false);
}

function probeOnce(bwrap: string, disableUserns: boolean): Promise<BwrapProbe> {
  const node = nodeBinary();
  return new Promise((resolve) => {
    let said = '';
    const child = spawn(
      bwrap,
      bwrapArgs({
        readOnly: [],
        writable: [],
        // A job folder as the job processes get it: a bwrap without --size (older ones: 0.4 of
        // Debian 11 and Ubuntu 20.04) passed a probe without it, then failed every job process start.
        scratch: { path: '/job', bytes: 4096 },
        cwd: '/job',
        env: {},
        gpu: false,
        disableUserns,
        command: [node.path, '-e', 'process.exit(0)'],
      }),
      { stdio: ['ignore', 'ignore', 'pipe'], env: {} },
    );
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.stderr?.on('data', (c: Buffer) => {
      said = (said + c.toString('utf8')).slice(-500);
    });
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ error: `bwrap cannot be run: ${err.message}` });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolve({ bwrap, disableUserns });
      const why = said.trim();
      resolve({
        error: `bwrap cannot make a sandbox here (exit ${code ?? signal}${why ? `: ${why}` : ''}); unprivileged user namespaces may be off (sysctl kernel.unprivileged_userns_clone, or Ubuntu's kernel.apparmor_restrict_unprivileged_userns)`,
      });
    });
  });
}

/**
 * What a provider without the sandbox gives up, said when it starts that way (`none`, or `auto`
 * without a working bwrap). The memory limit is read from the job process's own resident set:
 * processes it forks (a runtime taken over by a renter's model can fork) are not counted, nor is
 * anything it writes, to its job folder on this machine's disk (no quota), /tmp or /dev/shm.
 */
export const NO_ISOLATION_WARNING =
  "job processes run WITHOUT OS isolation: a renter's model that breaks ONNX Runtime could read this user's files (other renters' models included) and use the network, processes it forks escape the job memory limit, and its job folder has no disk quota";

/**
 * Settles a mode: `none` as is, with a warning (`warn`) of what it gives up; `bwrap` the sandbox or
 * JobIsolationError; `auto` the sandbox where it works, else `none` with that warning and why.
 */
export async function resolveJobIsolation(
  mode: JobIsolationMode,
  warn: (msg: string, fields?: Record<string, unknown>) => void,
  probe: () => Promise<BwrapProbe> = probeBwrap,
): Promise<{ isolation: 'none' } | { isolation: 'bwrap'; bwrap: string; disableUserns: boolean }> {
  if (!isJobIsolationMode(mode))
    throw new JobIsolationError(
      `job isolation must be ${JOB_ISOLATION_MODES.join(', ')}, not ${String(mode)}`,
    );
  if (mode === 'none') {
    // Asked for, yet said at every start: what `none` gives up is not obvious from its name.
    warn(NO_ISOLATION_WARNING, { jobIsolation: 'none' });
    return { isolation: 'none' };
  }
  const p = await probe();
  if ('bwrap' in p) return { isolation: 'bwrap', bwrap: p.bwrap, disableUserns: p.disableUserns };
  if (mode === 'bwrap') throw new JobIsolationError(`job isolation bwrap is unavailable: ${p.error}`);
  warn(`${NO_ISOLATION_WARNING} (--job-isolation bwrap to require the sandbox)`, { reason: p.error });
  return { isolation: 'none' };
}

/**
 * The processes below `pid` (its children, theirs, …), found by the parent each names in /proc:
 * the job process inside a sandbox is a grandchild of the bwrap process the provider started.
 */
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return [];
  }
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'latin1');
    } catch {
      continue;
    }
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const list = children.get(ppid);
    if (list) list.push(Number(name));
    else children.set(ppid, [Number(name)]);
  }
  const out: number[] = [];
  const queue = [pid];
  for (let p = queue.shift(); p !== undefined; p = queue.shift())
    for (const c of children.get(p) ?? []) {
      out.push(c);
      queue.push(c);
    }
  return out;
}
