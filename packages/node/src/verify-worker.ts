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
 * holds first (WorkerBacklog). It also checks chip evidence for admission (core's
 * `runCostlyCheck`: registrations' evidence, transfers' consents, sent as plain data, answered with
 * the verdicts), in the admission lane.
 */
import { getPriority, setPriority } from 'node:os';
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import {
  answerEvidence,
  type EvidenceAnswer,
  type EvidenceBatch,
  type VerifyWorkerData,
  verifyClaimed,
  WorkerBacklog,
  type WorkerBatch,
} from './verify-pool.js';

// Below the main thread, which runs consensus (VerifyPoolOptions.workerNice). setpriority with
// pid 0 acts on the calling thread on Linux only; elsewhere it would lower the whole process.
// Counted from the nice value this thread started with (its creator's, the main thread's): set
// outright, in a process already niced past it (a service manager's Nice=) it raised the workers
// above the main thread where that is allowed (root) and left them level where it is not.
const { nice } = (workerData ?? { nice: 0 }) as VerifyWorkerData;
if (process.platform === 'linux' && nice > 0) {
  try {
    setPriority(0, Math.min(19, getPriority(0) + nice));
  } catch {
    // A sandbox that forbids it leaves the worker at the main thread's priority, as before.
  }
}

const port = parentPort!;
const backlog = new WorkerBacklog<WorkerBatch | EvidenceBatch>();

/**
 * Checks everything held, one batch at a time; before each, every message already sent is read
 * (synchronously), so a block's checks sent behind a backlog of admission batches go next.
 */
function work(): void {
  for (;;) {
    for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port))
      backlog.push(m.message as WorkerBatch | EvidenceBatch);
    const batch = backlog.next();
    if (!batch) return;
    if ('evidence' in batch) {
      // Chip evidence (admission's registrations and transfer consents): core's own check, its verdicts sent back whole.
      const answer: EvidenceAnswer = { id: batch.id, verdicts: answerEvidence(batch.evidence) };
      port.postMessage(answer);
      continue;
    }
    verifyClaimed(batch);
    port.postMessage(batch.id);
  }
}

port.on('message', (batch: WorkerBatch | EvidenceBatch) => {
  backlog.push(batch);
  work();
});
