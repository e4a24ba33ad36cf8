/**
 * A verify-pool worker thread: checks batches of Ed25519 signatures with core's own
 * `ed25519Verify` (the protocol's rule set, docs/signatures.md), so a result here is exactly the
 * result the main thread would get. A batch arrives packed (see verify-pool.ts `packBatch`).
 */
import { readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { ed25519Verify } from '@unc/core';
import { type PackedBatch, unpackBatch } from './verify-pool.js';

lowerThreadPriority((workerData as { niceIncrement?: number } | null)?.niceIncrement ?? 0);

/**
 * Makes this thread yield the CPU to the node's main thread (consensus, execution) when both want
 * it: on a machine with no idle core, an OS scheduler that shares a core equally would let a flood
 * of admission checks slow a round as much as a blocked event loop would. On an idle core the
 * checks run at full speed all the same. Linux only (a thread's id from /proc/thread-self, whose
 * nice value setpriority sets alone); elsewhere, or if refused, the thread keeps its priority.
 */
function lowerThreadPriority(increment: number): void {
  if (!(increment > 0)) return;
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (!Number.isInteger(tid) || tid <= 0) return;
    setPriority(tid, Math.min(19, getPriority(tid) + increment));
  } catch {
    // Not Linux, or not allowed: the checks run at the node's priority.
  }
}

parentPort!.on('message', (batch: PackedBatch) => {
  const checks = unpackBatch(batch);
  const ok = new Uint8Array(checks.length);
  for (let i = 0; i < checks.length; i++) {
    const c = checks[i]!;
    ok[i] = ed25519Verify(c.publicKey, c.message, c.signature) ? 1 : 0;
  }
  parentPort!.postMessage({ id: batch.id, ok }, [ok.buffer as ArrayBuffer]);
});
