/**
 * The miner agents `unc dev` and `unc start --dev-chips` run keep their urgent-fee record in the
 * home, as `unc miner start` does (it was in memory only: each restart gave every chip its whole
 * budget again), and one agent per home: `unc miner start` on the home a running `unc dev` agent
 * uses is refused. Real processes, each stopped by its pid; the homes are removed after.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fromHex } from '@unc/core';
import { lockUrgentFeeFile } from '@unc/miner';
import { DEV_CHAIN_ID, devGenesisJson } from '@unc/node';
import { runUnc, startDev, tempHome, UNC } from './helpers.js';

const homes: { cleanup: () => void }[] = [];
const procs: ChildProcess[] = [];
after(async () => {
  for (const p of procs)
    if (p.exitCode === null && p.signalCode === null) {
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGKILL');
      await exited;
    }
  for (const h of homes) h.cleanup();
});

/** The record at `file` once the agent has rewritten the unreadable one put there (polled, by content). */
async function rewritten(file: string, out: () => string): Promise<{ chainId: string; allSpentAt: number }> {
  const deadline = Date.now() + 90_000;
  for (;;) {
    try {
      const saved = JSON.parse(readFileSync(file, 'utf8'));
      if (saved.version === 2) return saved;
    } catch {
      // Still the unreadable one the test wrote.
    }
    if (Date.now() > deadline) throw new Error(`${file} never rewritten:\n${out()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('unc dev keeps its agent’s urgent-fee record in the home, and a second agent on that home is refused', async () => {
  const home = tempHome();
  homes.push(home);
  const file = join(home.dir, 'urgent-fees.json');
  // Unreadable: an agent that reads the file counts every chip's budget spent and saves that at once.
  writeFileSync(file, 'not json');
  const dev = await startDev(home.dir, ['--block-time', '250', '--chips', '1', '--no-offer'], {
    firstBlock: false,
  });
  procs.push(dev.proc);
  const saved = await rewritten(file, dev.output);
  assert.ok(Number.isSafeInteger(saved.allSpentAt));
  assert.ok(
    readdirSync(home.dir).some((n) => n.startsWith('urgent-fees.json.corrupt-')),
    'the unreadable one kept aside',
  );
  assert.equal(JSON.parse(readFileSync(`${file}.lock`, 'utf8')).pid, dev.proc.pid, 'held by unc dev');

  const second = spawn(
    process.execPath,
    [UNC, 'miner', 'start', '--home', home.dir, '--from', 'dev9', '--dev-chips', '1'],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, UNC_LOG_LEVEL: 'warn' } },
  );
  procs.push(second);
  let err = '';
  second.stderr!.on('data', (d) => (err += d));
  const code = await new Promise((r) => second.once('exit', r));
  assert.equal(code, 1);
  assert.match(err, new RegExp(`another miner agent \\(pid ${dev.proc.pid}\\).*MINER_RUNNING`));

  assert.equal(await dev.stop(), 0);
  assert.ok(!existsSync(`${file}.lock`), 'released when unc dev stops');
});

test('unc start --dev-chips keeps its agent’s urgent-fee record in the home', async () => {
  const home = tempHome();
  homes.push(home);
  const nodeHome = join(home.dir, 'node');
  mkdirSync(nodeHome, { recursive: true });
  const init = await runUnc(['init', '--home', nodeHome, '--output', 'json']);
  assert.equal(init.code, 0, init.stderr);
  const validator = JSON.parse(init.stdout).validatorPublicKey as string;
  const genesis = devGenesisJson({
    blockTimeMs: 250,
    validators: [{ publicKey: fromHex(validator, 32), name: 'v' }],
  });
  const genesisFile = join(home.dir, 'genesis.json');
  writeFileSync(genesisFile, JSON.stringify(genesis));
  const file = join(nodeHome, 'urgent-fees.json');
  writeFileSync(file, 'not json');
  const node = spawn(
    process.execPath,
    [UNC, 'start', '--home', nodeHome, '--genesis', genesisFile, '--validator'].concat([
      '--rpc-port',
      '0',
      '--p2p-port',
      '0',
      '--dev-chips',
      '1',
    ]),
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, UNC_LOG_LEVEL: 'warn' } },
  );
  procs.push(node);
  let out = '';
  node.stdout!.on('data', (d) => (out += d));
  node.stderr!.on('data', (d) => (out += d));
  const saved = await rewritten(file, () => out);
  assert.equal(saved.chainId, genesis.chainId);
  assert.ok(Number.isSafeInteger(saved.allSpentAt));
  const exited = new Promise((r) => node.once('exit', r));
  node.kill('SIGTERM');
  assert.equal(await exited, 0, out);
  assert.ok(!existsSync(`${file}.lock`), 'released when unc start stops');
});

// `unc dev --reset` starts a new chain, but kept the old one's urgent-fee record: a record that
// counted every chip spent (an unreadable one) held the fresh chain's chips to no urgent fee for
// the hour. And an agent killed with -9 leaves its lock: the next start must take it over.
test('unc dev after kill -9 takes over its lock, and --reset drops the old chain’s urgent-fee record, lease records and gateway database', async () => {
  const home = tempHome();
  homes.push(home);
  const file = join(home.dir, 'urgent-fees.json');
  const args = ['--block-time', '250', '--chips', '1', '--no-offer'];
  const first = await startDev(home.dir, args, { firstBlock: false });
  procs.push(first.proc);
  assert.equal(JSON.parse(readFileSync(`${file}.lock`, 'utf8')).pid, first.proc.pid);
  const killed = new Promise((r) => first.proc.once('exit', r));
  first.proc.kill('SIGKILL');
  await killed;
  // The old chain had the same id as the new one (every dev chain's): its record counting every
  // chip spent would hold the new chain's chips to no urgent fee for the hour.
  const old = { version: 2, chainId: DEV_CHAIN_ID, spent: {}, allSpentAt: Date.now() };
  writeFileSync(file, JSON.stringify(old));
  // A lease record of the old chain: the new chain repeats its lease ids.
  mkdirSync(join(home.dir, 'leases'), { mode: 0o700 });
  writeFileSync(join(home.dir, 'leases', `${'ef'.repeat(32)}.json`), '{}');
  // The default gateway database of the old chain: its lease rows refuse the new chain's repeated
  // ids (LEASE_ID_TAKEN, the lease opened and left unrecorded) and its fees count against the budget.
  mkdirSync(join(home.dir, 'gateway'), { mode: 0o700 });
  writeFileSync(join(home.dir, 'gateway', 'gateway.db'), 'old chain');
  const again = await startDev(home.dir, [...args, '--reset'], { firstBlock: false });
  procs.push(again.proc);
  assert.equal(
    JSON.parse(readFileSync(`${file}.lock`, 'utf8')).pid,
    again.proc.pid,
    'the stale lock taken over',
  );
  assert.ok(
    !existsSync(file) || JSON.parse(readFileSync(file, 'utf8')).allSpentAt === undefined,
    'the old record dropped: the new chain’s chips not all spent',
  );
  assert.ok(!existsSync(join(home.dir, 'leases')), 'the old chain’s lease records dropped');
  assert.ok(!existsSync(join(home.dir, 'gateway')), 'the old chain’s gateway database dropped');
  assert.equal(await again.stop(), 0);
});

// `--reset` removed the urgent-fee record before anything looked at its lock: an agent still running
// on the home lost the record it was counting in, then wrote its old chain's back over the new one.
test('unc dev --reset on a home whose urgent-fee record is held is refused (MINER_RUNNING), nothing removed', async () => {
  const home = tempHome();
  homes.push(home);
  const file = join(home.dir, 'urgent-fees.json');
  const record = JSON.stringify({ version: 2, chainId: 'unc-running-chain', spent: {} });
  writeFileSync(file, record);
  writeFileSync(join(home.dir, 'genesis.json'), '{}');
  // This test process stands for the running agent: a live pid other than the command's.
  const release = lockUrgentFeeFile(file);
  try {
    const out = await runUnc(['dev', '--home', home.dir, '--reset', '--rpc-port', '0', '--chips', '1']);
    assert.equal(out.code, 1, out.stdout + out.stderr);
    assert.match(out.stderr, new RegExp(`another miner agent \\(pid ${process.pid}\\).*MINER_RUNNING`));
    assert.equal(readFileSync(file, 'utf8'), record, 'the record left as it was');
    assert.ok(existsSync(join(home.dir, 'genesis.json')), 'the chain left as it was');
  } finally {
    release();
  }
});
