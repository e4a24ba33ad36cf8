/**
 * A heartbeat operator end to end (docs/operators.md): on a `unc dev` chain the owner (dev9)
 * registers a chip with its own agent and stops it, names dev8 its heartbeat operator
 * (`unc chip set-operator`), and `unc miner start --from dev8 --operator-for <dev9>` answers for the
 * chip with the operator key only: the chip keeps answering, the owner's key sends nothing more, the
 * operator earns nothing and pays nothing. Real processes, each stopped by its pid; the home is
 * removed after.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { after, test } from 'node:test';
import { addressFromPublicKey, devSoftChipId, encodeAddress, toHex } from '@unc/core';
import { devChipKey, devKey } from '@unc/node';
import { UncClient } from '@unc/sdk';
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

function minerAgent(home: string, url: string, extra: string[]): { proc: ChildProcess; out: () => string } {
  const proc = spawn(
    process.execPath,
    [UNC, 'miner', 'start', '--home', home, '--node', url, '--dev-chips', '1', ...extra],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, UNC_LOG_LEVEL: 'warn' } },
  );
  procs.push(proc);
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  return { proc, out: () => out };
}

async function until<T>(what: string, probe: () => Promise<T | null>, out: () => string): Promise<T> {
  const deadline = Date.now() + 150_000;
  for (;;) {
    const got = await probe().catch(() => null);
    if (got !== null) return got;
    if (Date.now() > deadline) throw new Error(`${what} never happened:\n${out()}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function stop(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  await exited;
}

test('unc miner start --operator-for answers for the owner’s chip with the operator key only; the chip earns for its owner', async () => {
  const home = tempHome();
  homes.push(home);
  const dev = await startDev(home.dir, ['--block-time', '250', '--chips', '0', '--no-offer']);
  procs.push(dev.proc);
  const client = new UncClient(dev.url);
  const owner = encodeAddress(addressFromPublicKey(devKey(9).publicKey));
  const operator = encodeAddress(addressFromPublicKey(devKey(8).publicKey));
  const chipId = toHex(devSoftChipId(devChipKey(0).publicKey));

  // The owner registers its chip with its own agent, then takes its key off the host.
  const ownerAgent = minerAgent(home.dir, dev.url, ['--from', 'dev9']);
  await until('the chip registered', () => client.getChip(chipId), ownerAgent.out);
  await stop(ownerAgent.proc);

  const named = await runUnc([
    'chip',
    'set-operator',
    operator,
    '--from',
    'dev9',
    '-y',
    '--home',
    home.dir,
    '--node',
    dev.url,
  ]);
  assert.equal(named.code, 0, named.stderr);
  await until(
    'the operator in force',
    async () => ((await client.getChip(chipId)).heartbeatOperator === operator ? true : null),
    dev.output,
  );
  const ownerBefore = await client.getAccount(owner);
  const operatorBefore = await client.getAccount(operator);
  const chipBefore = await client.getChip(chipId);

  const hot = minerAgent(home.dir, dev.url, ['--from', 'dev8', '--operator-for', owner]);
  // Two answers landed from the operator's key (its nonce), credited to the owner's chip, and its
  // rewards settled (at an epoch's end) for the owner.
  const chipAfter = await until(
    'the operator’s answers and the chip’s rewards',
    async () => {
      const [chip, acc] = await Promise.all([client.getChip(chipId), client.getAccount(operator)]);
      return acc.nonce >= operatorBefore.nonce + 2 &&
        chip.slotsAnswered >= chipBefore.slotsAnswered + 2 &&
        BigInt(chip.rewardsEarned) > BigInt(chipBefore.rewardsEarned)
        ? chip
        : null;
    },
    hot.out,
  );
  await stop(hot.proc);
  const ownerAfter = await client.getAccount(owner);
  const operatorAfter = await client.getAccount(operator);
  assert.equal(chipAfter.owner, owner, 'still the owner’s chip');
  assert.equal(ownerAfter.nonce, ownerBefore.nonce, 'the owner’s key sent nothing');
  assert.ok(BigInt(ownerAfter.balance) >= BigInt(ownerBefore.balance), 'the owner lost nothing');
  assert.equal(operatorAfter.balance, operatorBefore.balance, 'the operator earned and paid nothing');
  assert.equal(await dev.stop(), 0);
});
