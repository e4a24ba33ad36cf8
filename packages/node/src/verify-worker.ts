/**
 * A verify-pool worker thread: checks batches of Ed25519 signatures with core's own
 * `ed25519Verify` (the protocol's rule set, docs/signatures.md), so a result here is exactly the
 * result the main thread would get. A batch arrives packed (see verify-pool.ts `packBatch`) and is
 * checked straight from its one buffer, without an object per check; the answer goes back as one
 * byte per check. The pool sends each key's checks to the same worker, so core's bounded cache of
 * imported keys (one per thread) hits for every answer of a chip after its first.
 */
import { parentPort } from 'node:worker_threads';
import { type PackedBatch, verifyPacked } from './verify-pool.js';

parentPort!.on('message', (batch: PackedBatch) => {
  const ok = verifyPacked(batch);
  parentPort!.postMessage({ id: batch.id, ok }, [ok.buffer as ArrayBuffer]);
});
