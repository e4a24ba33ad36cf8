/**
 * A verify-pool worker thread: checks batches of Ed25519 signatures with core's own
 * `ed25519Verify` (the protocol's rule set, docs/signatures.md), so a result here is exactly the
 * result the main thread would get. A batch arrives packed in one SharedArrayBuffer (see
 * verify-pool.ts `packBatch`): nothing is copied on the way, each check is taken (Atomics) by this
 * worker or by the calling thread (`VerifyPool.assist`), never both, and its answer is written
 * into the same buffer; the worker then answers with the batch's id alone. The pool sends each
 * key's checks to the same worker, so core's bounded cache of imported keys (one per thread) hits
 * for every answer of a chip after its first. The pool may hand a worker many admission batches
 * at once (so it never idles while the main thread is busy); it checks the consensus batches it
 * holds first (WorkerBacklog).
 */
import { parentPort, receiveMessageOnPort } from 'node:worker_threads';
import { verifyClaimed, WorkerBacklog, type WorkerBatch } from './verify-pool.js';

const port = parentPort!;
const backlog = new WorkerBacklog();

/**
 * Checks everything held, one batch at a time; before each, every message already sent is read
 * (synchronously), so a block's checks sent behind a backlog of admission batches go next.
 */
function work(): void {
  for (;;) {
    for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port))
      backlog.push(m.message as WorkerBatch);
    const batch = backlog.next();
    if (!batch) return;
    verifyClaimed(batch);
    port.postMessage(batch.id);
  }
}

port.on('message', (batch: WorkerBatch) => {
  backlog.push(batch);
  work();
});
