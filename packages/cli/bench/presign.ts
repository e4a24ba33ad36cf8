/** What the throughput benchmarks share: transfers signed ahead of time, and progress on stderr. */

import { readdirSync, readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import {
  ed25519PublicKey,
  ed25519Sign,
  ed25519Verify,
  encodeAddress,
  sha256,
  signTransaction,
  type Transaction,
  utf8,
} from '@unc/core';
import { devKey } from '@unc/node';
import {
  encodeSigned,
  errorFromRpc,
  feeFor,
  NodeUnreachableError,
  RpcClientError,
  transferAction,
  type UncClient,
} from '@unc/sdk';
import { progressBar } from '../src/progress.js';

export interface Sender {
  seed: Uint8Array;
  publicKey: Uint8Array;
}

/**
 * `perSender` transfers of 1 base unit from every sender to dev0, nonces 0…perSender−1, encoded;
 * in nonce-major order (all senders' nonce 0, then nonce 1, …), so any prefix is submittable.
 */
export function presignTransfers(
  senders: readonly Sender[],
  perSender: number,
  chainId: string,
  height: number,
  fees: { minFeePerByte: bigint; minFeePerAction: bigint },
): string[] {
  const total = perSender * senders.length;
  const bar = progressBar('pre-signing transfers');
  const to = encodeAddress(devKey(0).address);
  const signed: string[] = [];
  const started = Date.now();
  for (let k = 0; k < perSender; k++) {
    for (const s of senders) {
      const base: Omit<Transaction, 'fee'> = {
        chainId,
        signer: s.publicKey,
        nonce: BigInt(k),
        expiresAt: BigInt(height) + 10_000n,
        actions: [transferAction(to, 1n)],
      };
      signed.push(encodeSigned(signTransaction({ ...base, fee: feeFor(base, fees) }, s.seed)));
    }
    if (k % 50 === 0) {
      const rate = signed.length / Math.max(0.001, (Date.now() - started) / 1000);
      bar.update(signed.length, total, (total - signed.length) / rate);
    }
  }
  bar.done();
  return signed;
}

/** A bar over a timed phase; call the returned function when the phase ends. */
export function phaseProgress(label: string, durationMs: number, detail: () => string): () => void {
  const bar = progressBar(label);
  const start = Date.now();
  const timer = setInterval(() => {
    const elapsed = Math.min(durationMs, Date.now() - start);
    bar.update(
      Math.round(elapsed / 1000),
      Math.round(durationMs / 1000),
      (durationMs - elapsed) / 1000,
      detail(),
    );
  }, 250);
  return () => {
    clearInterval(timer);
    bar.done();
  };
}

/**
 * Mempool limits for a bench node: every sender queues thousands of transfers at once, which the
 * per-sender defaults (64 pending, 1 MiB, 64 nonces ahead) refuse on a public node.
 */
export const BENCH_MEMPOOL_ARGS = [
  '--mempool-sender-txs',
  '1000000',
  '--mempool-sender-bytes',
  '1000000000',
  '--mempool-nonce-gap',
  '1000000',
];

/**
 * CPU time a process has used so far, in ms: its main thread (the thread whose id is the pid) and
 * all its other threads (verify workers, the garbage collector's helpers, libuv's pool where
 * LevelDB writes and fsyncs), those that have exited included. From /proc, so Linux only; null
 * elsewhere or once the process is gone. Unlike wall time on a shared machine, this says what each
 * transfer costs the node whatever else runs beside it.
 *
 * `niced` is the part of `other` used by the live threads that run at a higher nice value than the
 * main thread: the verify pool's workers, which lower their own priority (workerNice); every
 * thread is named "node", so the nice value is what tells them from V8's and libuv's helpers.
 */
export function processCpuMs(pid: number): { main: number; other: number; niced: number } | null {
  try {
    // The process's own stat sums all its threads, those that exited too; summing the threads
    // listed under task/ would lose the CPU of a thread that exited within the window (and fail
    // on one exiting between the listing and the read).
    const total = statFields(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    const main = statFields(readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8'));
    let niced = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      if (tid === String(pid)) continue;
      try {
        const t = statFields(readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8'));
        if (t.nice > main.nice) niced += t.cpuMs;
      } catch {
        // The thread exited between the listing and the read: its CPU stays in `other`.
      }
    }
    return { main: main.cpuMs, other: Math.max(0, total.cpuMs - main.cpuMs), niced };
  } catch {
    return null;
  }
}

/**
 * What a process used between two `processCpuMs` readings, split as bench:tps prints it: the main
 * thread, the other threads, and of those the live niced threads (the verify workers) and the
 * rest. `other` counts threads that exited within the window; `niced` only those alive at each
 * reading, so a verify worker replaced within the window takes its CPU so far out of `niced`
 * (that difference can even be negative) while `other` keeps it: both parts are clamped at 0, and
 * the niced part is a lower bound on the verify workers' share, not their exact one.
 */
export function cpuSplit(
  start: { main: number; other: number; niced: number },
  end: { main: number; other: number; niced: number },
): { main: number; other: number; liveNiced: number; rest: number } {
  const main = end.main - start.main;
  const other = end.other - start.other;
  const liveNiced = Math.min(other, Math.max(0, end.niced - start.niced));
  return { main, other, liveNiced, rest: Math.max(0, other - liveNiced) };
}

/** utime + stime of a /proc stat line, in ms, and the thread's nice value. */
function statFields(stat: string): { cpuMs: number; nice: number } {
  // Fields after the command name (which may hold spaces, closed by the last ')').
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of stat (clock ticks of 10 ms on Linux), nice field 19.
  return { cpuMs: (Number(fields[11]) + Number(fields[12])) * 10, nice: Number(fields[16]) };
}

/**
 * This machine's raw single-core Ed25519 verifications per second (node:crypto through core's
 * `ed25519Verify`, distinct messages over a few keys), over `ms` milliseconds: the limit the
 * throughput benchmarks compare against.
 */
export function rawVerifyRate(ms = 3_000): number {
  const keys = Array.from({ length: 16 }, (_, i) => sha256(utf8(`bench key ${i}`)));
  const items = Array.from({ length: 2000 }, (_, i) => {
    const seed = keys[i % keys.length]!;
    const msg = sha256(utf8(`message ${i}`));
    return { pub: ed25519PublicKey(seed), msg, sig: ed25519Sign(seed, msg) };
  });
  let n = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(ms) * 1_000_000n;
  while (process.hrtime.bigint() < end) {
    for (const it of items) if (ed25519Verify(it.pub, it.msg, it.sig)) n++;
  }
  return n / (Number(process.hrtime.bigint() - start) / 1e9);
}

type SendResults = (
  | { hash: string; replaced: boolean }
  | { error: { reason: string; message: string; retryAfterMs?: number } }
)[];

/**
 * Adds a batch's per-transfer refusals to `counts`, by reason. A bench phase that kept only the
 * admitted hashes could not tell a transfer left unfinal by the chain from one left waiting on an
 * earlier nonce of its sender that a node refused: the phases send one sender's consecutive
 * nonces to different nodes, and a refused nonce leaves every later one pending for good.
 */
export function countRefusals(results: SendResults, counts: Map<string, number>): void {
  for (const r of results)
    if ('error' in r) counts.set(r.error.reason, (counts.get(r.error.reason) ?? 0) + 1);
}

/** "INSUFFICIENT_FUNDS×3, NONCE_GAP×1", in a stable order; "none" when empty. */
export function formatCounts(counts: ReadonlyMap<string, number>): string {
  if (counts.size === 0) return 'none';
  return [...counts]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, n]) => `${k}×${n}`)
    .join(', ');
}

/**
 * Sends a batch, waiting and retrying while the node answers "busy, retry" (-32005 BUSY, or the
 * per-IP limits) or drops the connection; other errors are thrown.
 */
export function sendRetrying(client: UncClient, batch: string[]): Promise<SendResults> {
  return retryingBusyItems(batch, (subset) => retryingBusy(() => client.sendRawTransactions(subset)));
}

/**
 * Sends `batch` and resends, after the wait they name, the transactions answered "busy, retry"
 * one by one (reason BUSY: a node catching up with its peers that could not judge them yet),
 * until each has a final answer; the results in the batch's order.
 */
async function retryingBusyItems(
  batch: readonly string[],
  send: (subset: string[]) => Promise<SendResults>,
): Promise<SendResults> {
  const results = await send([...batch]);
  for (let attempt = 0; attempt < 100; attempt++) {
    const busy = results.flatMap((r, i) => ('error' in r && r.error.reason === 'BUSY' ? [i] : []));
    if (busy.length === 0) break;
    const wait = Math.max(
      ...busy.map((i) => (results[i] as { error: { retryAfterMs?: number } }).error.retryAfterMs ?? 100),
    );
    busyRetries++;
    await new Promise((r) => setTimeout(r, Math.min(wait, 5_000)));
    const again = await send(busy.map((i) => batch[i]!));
    busy.forEach((i, k) => {
      results[i] = again[k]!;
    });
  }
  return results;
}

/**
 * The `unc_sendTransactions` request body of a batch, encoded before the measured window: the
 * bench client runs on the machine it measures, so the less it does per transfer in the window,
 * the less CPU it takes from the node.
 */
export function encodeSendBody(batch: readonly string[], id: number): Buffer {
  return Buffer.from(JSON.stringify({ jsonrpc: '2.0', id, method: 'unc_sendTransactions', params: [batch] }));
}

/**
 * Posts pre-encoded JSON-RPC bodies over kept-alive connections (node:http): the sdk's client
 * (fetch) built each request anew, about 30 µs of the bench client's CPU per transfer, on the
 * cores the node is measured on. The answers are read as the sdk reads them (errorFromRpc).
 */
export class BodyPoster {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 16 });
  private readonly url: URL;

  /**
   * `timeoutMs`: how long a request may go unanswered before it fails as NodeUnreachableError (as
   * the sdk client's timeout does): a node that hangs ends the bench instead of holding it forever.
   */
  constructor(
    url: string,
    private readonly timeoutMs = 120_000,
  ) {
    this.url = new URL(url);
  }

  post(body: Buffer): Promise<SendResults> {
    return new Promise((resolve, reject) => {
      const req = request(
        this.url,
        {
          method: 'POST',
          agent: this.agent,
          headers: { 'content-type': 'application/json', 'content-length': body.length },
        },
        (res) => {
          const parts: Buffer[] = [];
          res.on('data', (d: Buffer) => parts.push(d));
          res.on('error', (err) => reject(new NodeUnreachableError(this.url.href, err.message)));
          res.on('end', () => {
            let answer: { result?: SendResults; error?: { code: number; message: string; data?: unknown } };
            try {
              answer = JSON.parse(Buffer.concat(parts).toString('utf8'));
            } catch {
              reject(new RpcClientError(0, `HTTP ${res.statusCode} with no JSON-RPC body`));
              return;
            }
            if (answer.error) reject(errorFromRpc(answer.error));
            else resolve(answer.result!);
          });
        },
      );
      req.on('error', (err) => reject(new NodeUnreachableError(this.url.href, err.message)));
      req.setTimeout(this.timeoutMs, () => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)));
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

/** `BodyPoster.post`, retried as `sendRetrying` retries. */
export function postRetrying(poster: BodyPoster, body: Buffer): Promise<SendResults> {
  let first = true;
  // The pre-encoded body goes first; only a resend of the transactions answered BUSY is encoded
  // again (rare: a node catching up).
  const batch = (): string[] => (JSON.parse(body.toString('utf8')) as { params: [string[]] }).params[0];
  return retryingBusy(() => poster.post(body)).then((results) =>
    results.some((r) => 'error' in r && r.error.reason === 'BUSY')
      ? retryingBusyItems(batch(), (subset) => {
          if (first) {
            first = false;
            return Promise.resolve(results);
          }
          return retryingBusy(() => poster.post(encodeSendBody(subset, 0)));
        })
      : results,
  );
}

/**
 * The node's mempool size, polled every `ms` in the background: the clients' backpressure reads it
 * without a round trip before each batch (which also cost the node a request per batch).
 */
export function watchMempool(client: UncClient, ms = 100): { size: () => number; stop: () => void } {
  let size = 0;
  let stopped = false;
  void (async () => {
    while (!stopped) {
      try {
        size = (await client.call<{ size: number }>('unc_mempool')).size;
      } catch {
        // A poll that fails leaves the last size; the sends themselves report a node that is gone.
      }
      await new Promise((r) => setTimeout(r, ms));
    }
  })();
  return {
    size: () => size,
    stop: () => {
      stopped = true;
    },
  };
}

async function retryingBusy(send: () => Promise<SendResults>): Promise<SendResults> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await send();
    } catch (err) {
      const busy =
        err instanceof RpcClientError &&
        (err.reason === 'BUSY' || err.reason === 'RATE_LIMITED' || err.reason === 'CONCURRENCY_LIMIT');
      if (!busy && !(err instanceof NodeUnreachableError && attempt < 5)) throw err;
      busyRetries++;
      await new Promise((r) => setTimeout(r, busy ? 100 : 500));
    }
  }
}

/** How many times `sendRetrying` waited on a busy or unreachable node. */
export let busyRetries = 0;
