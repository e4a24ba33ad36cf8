/**
 * processCpuMs (bench/presign.ts), the CPU the throughput benchmarks charge to a node: a thread
 * that exits within the measured window must still be counted (the process's own /proc stat, not
 * the sum of the threads still listed). Linux only: elsewhere it answers null, and so does it for
 * a process that is gone.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { cpuSplit, processCpuMs } from '../bench/presign.js';

const linux = existsSync('/proc/self/stat');

test('the CPU of a thread that exited is still counted', { skip: !linux && 'no /proc' }, async () => {
  const before = processCpuMs(process.pid);
  assert.ok(before);
  // The worker spins until the process has used 300 ms more CPU; the main thread waits idle
  // meanwhile, so nearly all of it is the worker's, and the worker is gone when read again.
  const spin = `const start = process.cpuUsage();
    for (;;) { const u = process.cpuUsage(start); if (u.user + u.system >= 300_000) break; }`;
  await new Promise((resolve, reject) =>
    new Worker(spin, { eval: true }).on('exit', resolve).on('error', reject),
  );
  const after = processCpuMs(process.pid);
  assert.ok(after);
  const used = after.main + after.other - (before.main + before.other);
  assert.ok(used >= 200, `counted ${used} ms of the 300 ms the exited worker used`);
});

test('a process that is gone, or no /proc, answers null', () => {
  // Beyond the largest pid Linux allows (2^22).
  assert.equal(processCpuMs(2 ** 22 + 1), null);
});

/** Starts a worker that lowers its own priority by `nice` steps, uses 300 ms of CPU, then idles. */
async function busyWorker(nice: number): Promise<Worker> {
  const code = `const { parentPort } = require('node:worker_threads');
    const { getPriority, setPriority } = require('node:os');
    if (${nice} > 0) setPriority(0, Math.min(19, getPriority(0) + ${nice}));
    const start = process.cpuUsage();
    for (;;) { const u = process.cpuUsage(start); if (u.user + u.system >= 300_000) break; }
    parentPort.postMessage('spun');
    setInterval(() => {}, 1000);`;
  const worker = new Worker(code, { eval: true });
  await new Promise((resolve, reject) => worker.once('message', resolve).once('error', reject));
  return worker;
}

test('a live thread niced below the main thread is counted as niced, one at its nice is not', {
  skip: !linux && 'no /proc',
}, async () => {
  const before = processCpuMs(process.pid);
  assert.ok(before);
  const niced = await busyWorker(5);
  const plain = await busyWorker(0);
  try {
    const after = processCpuMs(process.pid);
    assert.ok(after);
    const nicedUsed = after.niced - before.niced;
    const otherUsed = after.other - before.other;
    // The niced worker's 300 ms, not the plain one's (both within `other`).
    assert.ok(nicedUsed >= 200 && nicedUsed <= 450, `niced ${nicedUsed} ms`);
    assert.ok(otherUsed >= nicedUsed + 200, `other ${otherUsed} ms, niced ${nicedUsed} ms`);
  } finally {
    await niced.terminate();
    await plain.terminate();
  }
});

test('a niced worker gone within the window leaves no negative share: the split is clamped at 0', {
  skip: !linux && 'no /proc',
}, async () => {
  // A verify worker replaced mid-window: its CPU so far was in `niced` at the start and is not at
  // the end (it is no longer a live thread), while `other` keeps it. Before, bench:tps printed
  // that difference as a negative "verify workers" figure and "the rest" above "other threads".
  const worker = await busyWorker(5);
  const start = processCpuMs(process.pid);
  assert.ok(start);
  await worker.terminate();
  const end = processCpuMs(process.pid);
  assert.ok(end);
  assert.ok(end.niced < start.niced, `niced ${start.niced} -> ${end.niced} ms: the worker's CPU left it`);
  const split = cpuSplit(start, end);
  assert.equal(split.liveNiced, 0);
  assert.ok(split.rest >= 0 && split.rest <= split.other, `rest ${split.rest} of other ${split.other} ms`);
  assert.equal(split.other, end.other - start.other);
});
