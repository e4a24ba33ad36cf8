/**
 * `unc testnet` end to end: four validator processes agree, survive a kill -9, stall without a
 * quorum and never fork, resume, and a new follower node syncs from genesis and follows the head.
 * Every process is started here or by the testnet this test starts, and killed by PID at the end.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { UncClient } from '@unc/sdk';
import { until as waitUntil } from '@unc/test-utils';
import { runUnc, tempHome, UNC } from './helpers.js';

interface RecordedNode {
  moniker: string;
  p2p: string;
  rpc: string;
  args: string[];
  pid: number | null;
}

const home = tempHome();
const pids = new Set<number>();
const children: ChildProcess[] = [];

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function killPid(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone.
  }
}

async function waitDead(pid: number): Promise<void> {
  const t0 = Date.now();
  while (alive(pid) && Date.now() - t0 < 10_000) await sleep(50);
}

after(async () => {
  for (const c of children)
    if (c.pid && c.exitCode === null && c.signalCode === null) killPid(c.pid, 'SIGTERM');
  await sleep(1_000);
  for (const pid of pids) killPid(pid);
  for (const pid of pids) await waitDead(pid);
  home.cleanup();
});

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Spawns `unc <args>` and resolves once it printed `pattern` on stdout. */
function spawnUnc(
  args: string[],
  pattern: RegExp,
  timeoutMs = 120_000,
): Promise<{ proc: ChildProcess; out: () => string }> {
  const proc = spawn(process.execPath, [UNC, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, UNC_LOG_LEVEL: 'warn' },
  });
  children.push(proc);
  if (proc.pid) pids.add(proc.pid);
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`unc ${args[0]} did not start:\n${out}`)), timeoutMs);
    proc.stdout!.on('data', () => {
      if (pattern.test(out)) {
        clearTimeout(timer);
        resolve({ proc, out: () => out });
      }
    });
    proc.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`unc ${args[0]} exited (${signal ?? code}):\n${out}`));
    });
  });
}

async function height(url: string): Promise<number> {
  try {
    return (await new UncClient(url).status()).height;
  } catch {
    return -1;
  }
}

/** The nodes' heights once none has moved for `stillMs`; fails if they never settle in 60 s. */
async function settledHeights(urls: string[], stillMs = 3_000): Promise<number[]> {
  const deadline = Date.now() + 60_000;
  let last = await heights(urls);
  let since = Date.now();
  for (;;) {
    await sleep(250);
    const now = await heights(urls);
    if (now.some((h, i) => h !== last[i])) {
      last = now;
      since = Date.now();
    } else if (Date.now() - since >= stillMs) return now;
    if (Date.now() > deadline) throw new Error(`heights never settled: still moving at ${now.join(', ')}`);
  }
}

// Generous: four validators and a follower share the cores with whatever else the machine runs.
const until = (what: string, cond: () => Promise<boolean>, ms = 120_000) =>
  waitUntil(what, cond, { timeoutMs: ms, intervalMs: 200 });

async function heights(urls: string[]): Promise<number[]> {
  return Promise.all(urls.map(height));
}

/** All nodes hold the same block (hash) at every height from 1 to the lowest head among them. */
async function assertSameChain(urls: string[], from = 1): Promise<number> {
  const top = Math.min(...(await heights(urls)));
  assert.ok(top >= from, `nodes are at ${top}, below ${from}`);
  for (let h = Math.max(1, top - 20); h <= top; h++) {
    const hashes = new Set(
      await Promise.all(urls.map(async (u) => (await new UncClient(u).getBlock(h)).hash)),
    );
    assert.equal(hashes.size, 1, `nodes hold different blocks at height ${h}`);
  }
  return top;
}

test('a 4-validator testnet finalizes, survives kill -9, stalls without quorum, resumes; a follower syncs', async () => {
  // Below Linux's ephemeral range (32768-60999 by default): a port in it can be taken by any outgoing
  // connection on the machine before a node listens on it (CI once saw EADDRINUSE on 34354). Up to +51.
  const basePort = 20_000 + Math.floor(Math.random() * 1_200) * 10;
  const dir = join(home.dir, 'tn');
  const testnet = await spawnUnc(
    [
      'testnet',
      '--validators',
      '4',
      '--dir',
      dir,
      '--base-port',
      String(basePort),
      '--chips-per-validator',
      '1',
      '--home',
      home.dir,
    ],
    /Nodes are recorded in/,
    180_000,
  );
  const record = JSON.parse(readFileSync(join(dir, 'testnet.json'), 'utf8')) as {
    genesis: string;
    nodes: RecordedNode[];
  };
  for (const n of record.nodes) if (n.pid) pids.add(n.pid);
  const urls = record.nodes.map((n) => n.rpc);
  assert.equal(urls.length, 4);
  for (const n of record.nodes) assert.match(testnet.out(), new RegExp(`RPC ${n.rpc.replace(/\./g, '\\.')}`));

  // 1. Agreement: all four finalize the same blocks.
  await until('4 validators at height 3', async () => Math.min(...(await heights(urls))) >= 3);
  await assertSameChain(urls, 3);
  const status = await runUnc(['status', '--node', urls[0]!]);
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /height\s+\d+ \(finalized/);

  // 2. kill -9 one validator: three of four go on.
  const victim = record.nodes[3]!;
  killPid(victim.pid!);
  await waitDead(victim.pid!);
  const h1 = Math.max(...(await heights(urls.slice(0, 3))));
  await until(
    '3 validators to finalize 3 more blocks',
    async () => Math.min(...(await heights(urls.slice(0, 3)))) >= h1 + 3,
  );
  await assertSameChain(urls.slice(0, 3));

  // 3. It restarts on its data directory, syncs what it missed and rejoins.
  await spawnUnc(victim.args, /RPC\s+http/);
  const h2 = Math.max(...(await heights(urls.slice(0, 3))));
  await until(
    'the restarted validator to reach the others',
    async () => (await height(victim.rpc)) >= h2 + 2,
  );
  await assertSameChain(urls);

  // 4. Two of four killed: no quorum, no new finalized block, no fork.
  const second = record.nodes[2]!;
  killPid(second.pid!);
  const restarted = children[children.length - 1]!;
  killPid(restarted.pid!);
  await waitDead(second.pid!);
  await waitDead(restarted.pid!);
  // A block the four finalized just before the kill can still reach the slower survivor (by its
  // votes or by sync), later on a loaded machine than any fixed pause: take the stalled heights once
  // they have held still for 3 s, then check that nothing more is finalized.
  const stalled = await settledHeights(urls.slice(0, 2));
  await sleep(4_000);
  assert.deepEqual(await heights(urls.slice(0, 2)), stalled, 'a block was finalized by half the validators');
  await assertSameChain(urls.slice(0, 2));

  // 5. One comes back: three of four, finalization resumes.
  await spawnUnc(second.args, /RPC\s+http/);
  await until(
    'finalization to resume',
    async () => Math.min(...(await heights(urls.slice(0, 3)))) >= Math.max(...stalled) + 2,
  );
  await assertSameChain(urls.slice(0, 3));

  // 6. A new node without a validator key syncs from genesis and follows the head.
  const followerHome = join(home.dir, 'follower');
  const init = await runUnc(['init', '--home', followerHome, '--moniker', 'follower']);
  assert.equal(init.code, 0, init.stderr);
  const followerRpc = `http://127.0.0.1:${basePort + 51}`;
  const follower = await spawnUnc(
    [
      'start',
      '--home',
      followerHome,
      '--genesis',
      record.genesis,
      '--peers',
      record.nodes
        .slice(0, 2)
        .map((n) => n.p2p)
        .join(','),
      '--p2p-port',
      String(basePort + 50),
      '--rpc-port',
      String(basePort + 51),
    ],
    /RPC\s+http/,
  );
  assert.match(follower.out(), /follower \(no validator key\)/);
  const target = Math.max(...(await heights(urls.slice(0, 3))));
  await until('the follower to sync', async () => (await height(followerRpc)) >= target);
  await until('the follower to follow new blocks', async () => (await height(followerRpc)) >= target + 2);
  await assertSameChain([...urls.slice(0, 3), followerRpc]);

  // The testnet stops its remaining children on SIGTERM.
  testnet.proc.kill('SIGTERM');
  await waitDead(testnet.proc.pid!);
  for (const n of record.nodes.slice(0, 2)) await waitDead(n.pid!);
  assert.ok(!alive(record.nodes[0]!.pid!), 'the testnet left a node running');
});
