/**
 * A verify-pool worker thread: checks batches of Ed25519 signatures with core's own
 * `ed25519Verify` (the protocol's rule set, docs/signatures.md), so a result here is exactly the
 * result the main thread would get. A batch arrives packed (see verify-pool.ts `packBatch`).
 */
import { parentPort } from 'node:worker_threads';
import { ed25519Verify } from '@unc/core';
import { type PackedBatch, unpackBatch } from './verify-pool.js';

parentPort!.on('message', (batch: PackedBatch) => {
  const checks = unpackBatch(batch);
  const ok = new Uint8Array(checks.length);
  for (let i = 0; i < checks.length; i++) {
    const c = checks[i]!;
    ok[i] = ed25519Verify(c.publicKey, c.message, c.signature) ? 1 : 0;
  }
  parentPort!.postMessage({ id: batch.id, ok }, [ok.buffer as ArrayBuffer]);
});
