/** Runs the real `unc` program as child processes, the way a user would. */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const UNC = new URL('../../bin/unc.js', import.meta.url).pathname;

export function tempHome(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'unc-test-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface DevNode {
  proc: ChildProcess;
  url: string;
  output: () => string;
  /** Sends a signal and waits for the process to exit. */
  stop: (signal?: NodeJS.Signals) => Promise<number | null>;
}

/**
 * Starts `unc dev` and returns once its RPC answers and (unless `firstBlock` is false) the chain has
 * committed block 1: the RPC line comes before the first commit, and on a loaded machine a test that
 * asked for a block or a fresh height at once found none.
 */
export async function startDev(
  home: string,
  extra: string[] = [],
  { firstBlock = true }: { firstBlock?: boolean } = {},
): Promise<DevNode> {
  const proc = spawn(process.execPath, [UNC, 'dev', '--home', home, '--rpc-port', '0', ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, UNC_LOG_LEVEL: 'warn' },
  });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    // On a loaded machine start-up can be slow; one that never comes up is killed, not left behind.
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`unc dev did not start in 90 s:\n${out}`));
    }, 90_000);
    const check = () => {
      const m = /RPC\s+(http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    };
    proc.stdout!.on('data', check);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`unc dev exited with ${code}:\n${out}`));
    });
  });
  const node: DevNode = {
    proc,
    url,
    output: () => out,
    stop: async (signal = 'SIGTERM') => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
  if (firstBlock) {
    try {
      await waitForHeight(url, 1, () => out);
    } catch (err) {
      await node.stop('SIGKILL');
      throw err;
    }
  }
  return node;
}

/**
 * Polls `unc_status` until the node at `url` has committed block `height`, by the chain's height and
 * never by a fixed sleep; the error carries the node's output (`log`) to say why it did not.
 */
export async function waitForHeight(
  url: string,
  height: number,
  log: () => string = () => '',
  timeoutMs = 120_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let seen = -1;
  for (;;) {
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'unc_status', params: [] }),
      });
      const body = (await res.json()) as { result?: { height?: number } };
      seen = body.result?.height ?? seen;
      if (seen >= height) return;
    } catch {
      // Not answering yet (or for a moment under load): the deadline decides.
    }
    if (Date.now() > deadline)
      throw new Error(`no block ${height} in ${timeoutMs / 1000} s (height ${seen}):\n${log()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runUnc(args: string[], opts: { input?: string } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [UNC, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d) => (stdout += d));
    proc.stderr.on('data', (d) => (stderr += d));
    proc.stdin.end(opts.input ?? '');
    proc.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * Waits until every chip named has answered a challenge since its registration (its owner's miner
 * agent answers the first one, in the epoch after the registration, within an answer window): only
 * a chip proven online is rented (docs/poci.md), so a test that leases a fresh chip waits here first.
 */
export async function waitForProvenChips(
  nodeUrl: string,
  chipIds: string[],
  timeoutMs = 120_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const lastAnsweredAt = async (id: string): Promise<number> => {
    const res = await fetch(nodeUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'unc_getChip', params: [id] }),
    });
    const body = (await res.json()) as { result?: { lastAnsweredAt: number } };
    return body.result?.lastAnsweredAt ?? 0; // not registered yet: not proven either
  };
  for (;;) {
    const heights = await Promise.all(chipIds.map(lastAnsweredAt));
    if (heights.every((h) => h > 0)) return;
    if (Date.now() > deadline) {
      const waiting = chipIds.filter((_, i) => heights[i] === 0).map((id) => id.slice(0, 16));
      throw new Error(`chips ${waiting.join(', ')} answered no challenge in ${timeoutMs / 1000} s`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * A stand-in node's unc_sendTransaction that keeps the hex of each transaction sent in `sent` and
 * answers that it failed: what a hostile node does with the signature is its business, and the
 * command must tell its user the transaction may still land.
 */
export function keepSent(sent: string[]): (params: unknown[]) => never {
  return (params) => {
    sent.push(params[0] as string);
    throw new Error('kept');
  };
}
