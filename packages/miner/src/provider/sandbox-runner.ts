/**
 * The job process (see sandbox.ts): forked by the provider, it runs ONNX Runtime for renters'
 * models and the OCR pipeline, in an empty working directory, one request at a time, and answers
 * over the IPC channel. The provider kills it when a job runs past its time or memory limit, so
 * nothing here needs to guard against a job that never ends.
 *
 * Messages (advanced serialization, so tensors travel as typed arrays):
 *   → { id, op: 'init', executionProvider, ocr,    ← { id, ok, result: { executionProvider } }
 *       maxSessions, threads, maxOutputBytes, logLimits }
 *   → { id, op: 'check', hash, model? }             ← { id, ok } (the session is kept for jobs)
 *   → { id, op: 'run', hash, model?, inputs }       ← { id, ok, result: RawTensor[] }
 *   → { id, op: 'ocr', image }                      ← { id, ok, result: OcrLine[] }
 *   → { id, op: 'drop' }                            ← { id, ok } (model sessions released, GC run)
 *   → { id, op: 'runMany', hash, model?, inputs[] } ← { op: 'part', id, index, durationMs, ok, result }
 *   → { id, op: 'ocrMany', images }                    per job as it ends, then { id, ok }
 *   ← { op: 'log', level, msg, fields }
 * `model`: the model's bytes, sent where this process may not hold its session (it opens no model
 * file); without them and without the session a request answers MODEL_NEEDED.
 * A failed request answers { id, ok: false, code, error (safe to show a renter), detail (for the log) }.
 * A done request's answer also carries `at`: when it arrived, when its work ended (the machine's
 * monotonic clock) and the CPU ms this process spent in between (bench:jobs --stages).
 */
// First: what this process inherited beyond its stdio and channel is closed before anything else.
import './close-inherited-fds.js';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Logger } from '@unc/node';
import type { RawTensor } from '@unc/sdk';
import { OcrEngine, type OcrModelFiles } from './ocr.js';
import { OnnxRunner } from './onnx.js';
import { assertSelfContainedModel, UnsafeModelError } from './onnx-check.js';
import {
  LogGate,
  PublicJobError,
  redact,
  type SandboxPart,
  type SandboxReply,
  type SandboxRequest,
} from './sandbox-protocol.js';
import { monotonicMs, processCpuMs } from './stages.js';

function send(msg: SandboxReply): void {
  process.send?.(msg);
}

/**
 * Sends and waits until the message is written to the channel: a part bigger than the socket's
 * buffer is otherwise finished only when this thread turns its loop again, which the next job
 * (ONNX Runtime runs on this thread) may not let it do before the process is killed.
 */
function sendWritten(msg: SandboxReply): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send) resolve();
    else process.send(msg, undefined, undefined, () => resolve());
  });
}

/** Keeps this process's log messages within the provider's limits (it kills a process past them). */
const logGate = new LogGate();

function log(
  level: 'debug' | 'info' | 'warn' | 'error',
  msg: string,
  fields?: Record<string, unknown>,
): void {
  const m = logGate.admit(level, msg, fields);
  if (m) send(m);
}

const logger: Logger = {
  component: 'provider.job',
  level: 'info',
  debug: (msg, fields) => log('debug', msg, fields),
  info: (msg, fields) => log('info', msg, fields),
  warn: (msg, fields) => log('warn', msg, fields),
  error: (msg, fields) => log('error', msg, fields),
  child: () => logger,
};

let onnx: OnnxRunner | null = null;
let ocrFiles: OcrModelFiles | null = null;
let ocr: Promise<OcrEngine> | null = null;
let maxOutputBytes = Number.POSITIVE_INFINITY;

/** The provider sent no model bytes and this process holds no session of it: it sends them again. */
const MODEL_NEEDED = 'MODEL_NEEDED';

/**
 * The session of model `hash`, loaded from `model` (the bytes the provider read and sent) where
 * this process does not hold it. It never opens a model file: the model store is not in its view.
 */
async function loadModel(hash: string, model: Uint8Array | undefined) {
  return onnx!.session(hash, async () => {
    if (model === undefined) throw new PublicJobError(MODEL_NEEDED, 'the model was not sent');
    // Checked on every load, not only at upload: the store may hold models from before the check.
    assertSelfContainedModel(model);
    return model;
  });
}

async function loadChecked(hash: string, model: Uint8Array | undefined) {
  try {
    return await loadModel(hash, model);
  } catch (err) {
    if (err instanceof PublicJobError && err.code === MODEL_NEEDED) throw err;
    if (err instanceof UnsafeModelError) throw new PublicJobError('BAD_MODEL', err.message);
    throw new PublicJobError('BAD_MODEL', 'ONNX Runtime cannot load the model', { cause: err });
  }
}

async function runOnce(session: Awaited<ReturnType<typeof loadModel>>, inputs: RawTensor[]) {
  const outputs = await onnx!.run(session, inputs);
  // Refused here, not sent: the provider would receive, hash, encode and keep it all.
  const size = outputs.reduce((n, t) => n + t.data.length, 0);
  if (size > maxOutputBytes)
    throw new PublicJobError(
      'OUTPUT_TOO_LARGE',
      `the job's outputs are ${size} bytes; the limit here is ${maxOutputBytes}`,
    );
  return outputs;
}

function ocrEngine(): Promise<OcrEngine> {
  ocr ??= OcrEngine.create({
    files: ocrFiles!,
    onnxOptions: onnx!.sessionOptions() as Record<string, unknown>,
  });
  return ocr;
}

/**
 * Runs the jobs of a runMany/ocrMany request one after the other and answers each as it ends,
 * before the next one starts: the provider restarts its time limit on every part, so each job has
 * the limit of a job alone, and an answer is never held in this process while a later job runs,
 * since the provider may kill the process during any job (time, memory) and an answer held here
 * would die with it: a job that ran, reported as failed. (Parts once went out together when jobs
 * ended within 2 ms of each other, one message for several tiny jobs; the send is cheap next to
 * losing a finished job.)
 */
async function eachPart<T>(
  id: number,
  jobs: T[],
  budgetMs: number | undefined,
  run: (job: T) => Promise<unknown>,
): Promise<void> {
  const began = performance.now();
  for (const [index, job] of jobs.entries()) {
    const start = performance.now();
    // Past its budget a group stops here, so it holds this process (and the provider's runner)
    // about one job's time limit, not that limit times its jobs: other renters get their turn.
    if (index > 0 && budgetMs !== undefined && start - began >= budgetMs) return;
    let part: SandboxPart;
    try {
      const result = await run(job);
      part = { op: 'part', id, index, durationMs: Math.round(performance.now() - start), ok: true, result };
    } catch (err) {
      part = {
        op: 'part',
        id,
        index,
        durationMs: Math.round(performance.now() - start),
        ok: false,
        ...failure(err as Error),
      };
    }
    await sendWritten(part);
  }
}

/** An error's detail names parts of the renter's model too: cut short as log text is (clippedLog). */
const clip = (s: string) => (s.length > 1000 ? `${s.slice(0, 1000)}…` : s);

/** What of an error goes back: a PublicJobError's own message, anything else redacted. */
function failure(err: Error): { code: string; error: string; detail: string } {
  const detail = clip(`${err.message}${err.cause instanceof Error ? `: ${err.cause.message}` : ''}`);
  if (err instanceof PublicJobError || err.name === 'PublicJobError')
    return { code: (err as PublicJobError).code, error: err.message, detail };
  return { code: 'JOB_FAILED', error: redact(err.message) || 'the job failed', detail };
}

async function handle(req: SandboxRequest): Promise<unknown> {
  switch (req.op) {
    case 'init': {
      // First: what logs from here on is cut to the provider's limits, not the defaults.
      logGate.setLimits(req.logLimits);
      onnx = new OnnxRunner(req.executionProvider, logger, req.maxSessions, req.threads);
      ocrFiles = req.ocr;
      maxOutputBytes = req.maxOutputBytes;
      // Building a session tells whether the requested execution provider works here.
      if (req.executionProvider !== 'cpu') await (await onnx.createSession(req.ocr.detectionPath)).release();
      // The OCR pipeline is built before the process counts as ready, so no job's time limit is
      // spent on it.
      ocr = OcrEngine.create({
        files: req.ocr,
        onnxOptions: onnx.sessionOptions() as Record<string, unknown>,
      });
      await ocr;
      return { executionProvider: onnx.executionProvider };
    }
    case 'check':
      await loadChecked(req.hash, req.model);
      return undefined;
    case 'run':
      return runOnce(await loadChecked(req.hash, req.model), req.inputs);
    case 'runMany': {
      const session = await loadChecked(req.hash, req.model);
      await eachPart(req.id, req.inputs, req.budgetMs, (inputs) => runOnce(session, inputs));
      return undefined;
    }
    case 'ocrMany': {
      const engine = await ocrEngine();
      await eachPart(req.id, req.images, req.budgetMs, (image) => engine.recognise(image));
      return undefined;
    }
    case 'ocr':
      return (await ocrEngine()).recognise(req.image);
    case 'drop':
      // The provider would otherwise replace this process for what its sessions hold (their
      // arenas keep what runs allocated): released, and the heap collected (the process is
      // forked with --expose-gc), it may fall back under the provider's threshold.
      await onnx!.close();
      (globalThis as { gc?: () => void }).gc?.();
      return undefined;
  }
}

process.on('message', (req: SandboxRequest) => {
  const received = monotonicMs();
  logGate.newRequest();
  const cpu = processCpuMs();
  handle(req)
    .then(
      (result) =>
        send({
          id: req.id,
          ok: true,
          result,
          at: { received, done: monotonicMs(), cpuMs: processCpuMs() - cpu },
        }),
      (err: Error) => send({ id: req.id, ok: false, ...failure(err) }),
    )
    .finally(() => logGate.answered());
});

// The provider went away: so does this process. A job blocks this thread (ONNX Runtime runs
// synchronously), so a watchdog thread also checks the parent, and kills this process when the
// provider died without a word (kill -9): no job outlives its provider.
// Its working directory (empty, made for it by the provider) goes with it, and so does the
// provider's folder of job folders (sandbox.ts: `unc-jobs-<pid>-…`, its owner file naming the
// provider) once the provider is gone for good (this process handed to another parent) and no
// other job process's folder is left in it: a provider killed alone left it behind.
const home = process.cwd();
// Inside bwrap (job-isolation.ts: its second argument says so) its parent is the sandbox's first
// process, and the provider's pid means nothing in its pid namespace: the sandbox dies with the
// provider (--die-with-parent), and the provider's folder is not in its view (the next provider's
// start removes what is left).
const sandboxed = process.argv[3] === 'sandboxed';
// Its provider's pid, given as its argument: its parent now may already be another process (a
// provider that died while this one loaded).
const given = Number(process.argv[2]);
const parent = !sandboxed && Number.isSafeInteger(given) && given > 0 ? given : process.ppid;
const removeHome = () => {
  try {
    rmSync(home, { recursive: true, force: true });
  } catch {
    // In a sandbox its folder is a mount point: what is in it goes, the folder stays.
  }
};
const removeProviderFolder = () => {
  if (sandboxed) return;
  const folder = dirname(home);
  try {
    if (process.ppid === parent || !basename(folder).startsWith(`unc-jobs-${parent}-`)) return;
    if (readdirSync(folder).some((n) => n !== 'owner.json')) return;
    const owner = JSON.parse(readFileSync(join(folder, 'owner.json'), 'utf8')) as { pid?: unknown };
    if (owner.pid === parent) rmSync(folder, { recursive: true, force: true });
  } catch {
    // Gone already (another job process removed it), or not ours: the next provider's start decides.
  }
};
const onDisconnect = () => {
  removeHome();
  // The channel ends as the provider dies, a moment before this process is handed to another
  // parent: that is waited for (a second at most; a provider alive that closed the channel kills
  // this process meanwhile).
  const deadline = Date.now() + 1_000;
  const poll = () => {
    if (process.ppid !== parent || Date.now() > deadline) {
      removeProviderFolder();
      process.exit(0);
    }
    setTimeout(poll, 20);
  };
  poll();
};
process.on('disconnect', onDisconnect);
// The modules this one imports load asynchronously: a provider that died meanwhile closed the
// channel before anyone listened, and this process, left with nothing to do, ended without
// removing its folder.
if (!process.connected) onDisconnect();
const watchdog = new Worker(
  `const { readdirSync, readFileSync, rmSync } = require('node:fs');
   const { basename, dirname, join } = require('node:path');
   const home = ${JSON.stringify(home)};
   setInterval(() => {
     if (process.ppid === ${parent}) return;
     try { rmSync(home, { recursive: true, force: true }); } catch {}
     try {
       const folder = dirname(home);
       if (basename(folder).startsWith('unc-jobs-${parent}-') && readdirSync(folder).every((n) => n === 'owner.json')
         && JSON.parse(readFileSync(join(folder, 'owner.json'), 'utf8')).pid === ${parent})
         rmSync(folder, { recursive: true, force: true });
     } catch {}
     process.kill(process.pid, 'SIGKILL');
   }, 500);`,
  { eval: true },
);
watchdog.unref();
