/**
 * A verify-pool worker thread: checks batches of Ed25519 signatures with core's own
 * `ed25519Verify` (the protocol's rule set, docs/signatures.md), so a result here is exactly the
 * result the main thread would get. A batch arrives packed (see verify-pool.ts `packBatch`) and is
 * checked straight from its one buffer, without an object per check; the answer goes back as one
 * byte per check. The pool sends each key's checks to the same worker, so core's bounded cache of
 * imported keys (one per thread) hits for every answer of a chip after its first. The pool may
 * hand a worker many admission batches at once (so it never idles while the main thread is busy);
 * it checks the consensus batches it holds first (WorkerBacklog).
 */
import { parentPort, receiveMessageOnPort } from 'node:worker_threads';
import { verifyPacked, WorkerBacklog, type WorkerBatch } from './verify-pool.js';

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
    const ok = verifyPacked(batch);
    port.postMessage({ id: batch.id, ok }, [ok.buffer as ArrayBuffer]);
  }
}

port.on('message', (batch: WorkerBatch) => {
  backlog.push(batch);
  work();
});
