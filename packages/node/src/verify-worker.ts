/**
 * A verify-pool worker thread: checks batches of Ed25519 signatures with core's own
 * `ed25519Verify` (the protocol's rule set, docs/signatures.md), so a result here is exactly the
 * result the main thread would get. A batch arrives packed in one SharedArrayBuffer (see
 * verify-pool.ts `packBatch`): nothing is copied on the way, each check is taken (Atomics) by this
 * worker or by the calling thread (`VerifyPool.assist`), never both, and its answer is written
 * into the same buffer; the worker then answers with the batch's id alone. The pool sends each
 * key's checks to the same worker, so core's bounded cache of imported keys (one per thread) hits
 * for every answer of a chip after its first.
 */
import { parentPort } from 'node:worker_threads';
import { type PackedBatch, verifyClaimed } from './verify-pool.js';

parentPort!.on('message', (batch: PackedBatch) => {
  verifyClaimed(batch);
  parentPort!.postMessage(batch.id);
});
