/** Shared by the tests that drive a real swtpm and the real tpm2-tools / openssl binaries. */
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { promisify } from 'node:util';
import { type BwrapProbe, probeBwrap } from '../src/provider/job-isolation.js';

const execFileAsync = promisify(execFile);

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? '').split(':').some((dir) => {
    try {
      accessSync(join(dir, cmd), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

export const HAVE_SWTPM = onPath('swtpm');
export const HAVE_TPM2_TOOLS = onPath('tpm2_checkquote') && onPath('tpm2_print');
export const HAVE_OPENSSL = onPath('openssl');

/** A reason to skip, or false: node:test prints the reason. */
export const NEED_SWTPM: string | false = HAVE_SWTPM ? false : 'swtpm is not installed';
export const NEED_TOOLS: string | false =
  HAVE_SWTPM && HAVE_TPM2_TOOLS ? false : 'swtpm or tpm2-tools not installed';
export const NEED_OPENSSL: string | false = HAVE_OPENSSL ? false : 'openssl is not installed';
export const HAVE_BWRAP = onPath('bwrap');
/**
 * Whether bwrap can make a job sandbox here: the provider's own probe (a kernel or container that
 * forbids user namespaces makes an installed bwrap fail, and `auto` then runs jobs without it).
 */
export const BWRAP_PROBE: BwrapProbe = await probeBwrap();
export const BWRAP_WORKS = 'bwrap' in BWRAP_PROBE;
/**
 * Tests of the job processes' OS sandbox skip where it cannot run, saying why. In CI (.ci/run
 * installs bubblewrap and sets UNC_CI) a missing bwrap is not a reason: they run, and fail, so a CI
 * machine without it is never taken for a pass. An installed bwrap the kernel refuses namespaces is
 * a fact of the machine, as a missing /dev/tpmrm0 is: skipped with the probe's reason.
 */
export const NEED_BWRAP: string | false = BWRAP_WORKS
  ? false
  : HAVE_BWRAP
    ? `bwrap cannot sandbox here: ${'error' in BWRAP_PROBE ? BWRAP_PROBE.error : ''}`
    : process.env.UNC_CI
      ? false
      : 'bwrap is not installed (apt-get install bubblewrap)';

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a binary, never throwing on a non-zero exit so tests can assert on the code. */
export async function run(
  cmd: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
): Promise<RunResult> {
  try {
    const { stdout, stderr } = await execFileAsync(cmd, [...args], { env: { ...process.env, ...env } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string; message: string };
    return {
      code: typeof e.code === 'number' ? e.code : 1,
      stdout: e.stdout ?? '',
      stderr: e.stderr ?? e.message,
    };
  }
}

export async function tempDir(prefix: string): Promise<{ path: string; remove(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/**
 * A temporary folder made before the enclosing suite's tests and removed after them (call it in a
 * describe body, for a suite with no other set-up that must end before the folder goes).
 */
export function suiteTempDir(prefix: string): { readonly path: string } {
  let dir: { path: string; remove(): Promise<void> } | undefined;
  before(async () => {
    dir = await tempDir(prefix);
  });
  after(async () => {
    await dir?.remove();
  });
  return {
    get path() {
      if (!dir) throw new Error('suiteTempDir: read before the suite started');
      return dir.path;
    },
  };
}

export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}
