/**
 * bench:tps — finalized transfers per second of a real `unc dev` node, fed pre-signed transfers
 * over JSON-RPC by concurrent clients, next to this machine's raw single-core Ed25519
 * verifications per second measured in the same run.
 *
 *   npm run bench:tps -- [--seconds 30] [--clients 4] [--in-flight 2] [--senders 200] [--batch 250]
 *                        [--block-time 1000] [--warmup 0]
 *
 * Each client keeps `--in-flight` batches outstanding (its next batch goes out before the answer to
 * the last comes back), so the node's queues stay fed while its main thread builds a block; the
 * request bodies are encoded before the window and sent over kept-alive connections, so the
 * client's own CPU (printed per transfer) takes as little as it can from the node it measures.
 *
 * `--warmup S` sends for S seconds before the measured window opens, so the window measures a node
 * whose hot code is already compiled: a node started for the bench spends its first seconds of load
 * compiling on V8's background threads (about half of the non-signature CPU of its other threads in
 * a 10 s window from a cold start, BENCHMARKS.md), a cost a long-running node paid once.
 *
 * UNC_BENCH_NODE_FLAGS passes flags to the node process alone (e.g. `--cpu-prof --cpu-prof-dir=DIR`).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  addressFromPublicKey,
  ed25519PublicKey,
  encodeAddress,
  parseUnc,
  sha256,
  signTransaction,
  type Transaction,
  utf8,
} from '@unc/core';
import { devKey } from '@unc/node';
import { type BlockJson, encodeSigned, feeFor, transferAction, UncClient } from '@unc/sdk';
import { exitOnBadBenchArgs } from './bench-args.js';
import {
  BENCH_MEMPOOL_ARGS,
  BodyPoster,
  cpuSplit,
  encodeSendBody,
  phaseProgress,
  postRetrying,
  presignTransfers,
  processCpuMs,
  rawVerifyRate,
  sendRetrying,
  watchMempool,
} from './presign.js';

exitOnBadBenchArgs(
  'usage: npm run bench:tps -- [--seconds 30] [--clients 4] [--in-flight 2] [--senders 200] [--batch 250] [--block-time 1000] [--warmup 0]',
  { valued: ['seconds', 'clients', 'in-flight', 'senders', 'batch', 'block-time', 'warmup'], flags: [] },
);

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const SECONDS = arg('seconds', 30);
const CLIENTS = arg('clients', 4);
const IN_FLIGHT = arg('in-flight', 2);
if (!Number.isInteger(IN_FLIGHT) || IN_FLIGHT < 1)
  throw new Error('--in-flight must be a whole number of at least 1');
const SENDERS = arg('senders', 200);
const BATCH = arg('batch', 250);
const BLOCK_TIME = arg('block-time', 1000);
const WARMUP = arg('warmup', 0);
if (!(WARMUP >= 0)) throw new Error('--warmup must be a number of seconds, 0 or more');
const UNC = new URL('../../bin/unc.js', import.meta.url).pathname;

/**
 * The node's own figures from /metrics: its event loop's busy seconds (the main thread's
 * utilisation, which CPU time alone does not give: a thread can be busy yet descheduled on a
 * loaded machine, or idle while holding CPU in system calls) and its garbage-collection pauses.
 */
async function nodeLoopFigures(
  rpcUrl: string,
): Promise<{ loopActiveS: number; gcS: number; gcCount: number } | null> {
  try {
    const text = await (await fetch(`${rpcUrl}/metrics`)).text();
    const sum = (re: RegExp) => {
      let total = 0;
      for (const m of text.matchAll(re)) total += Number(m[1]);
      return total;
    };
    return {
      loopActiveS: sum(/^nodejs_eventloop_active_seconds_total(?:\{[^}]*\})? (\S+)$/gm),
      gcS: sum(/^nodejs_gc_duration_seconds_sum(?:\{[^}]*\})? (\S+)$/gm),
      gcCount: sum(/^nodejs_gc_duration_seconds_count(?:\{[^}]*\})? (\S+)$/gm),
    };
  } catch {
    return null;
  }
}

async function main(): Promise<void> {
  const home = mkdtempSync(join(tmpdir(), 'unc-bench-'));
  console.log(
    `bench:tps  ${SECONDS}s, ${CLIENTS} clients × ${IN_FLIGHT} in flight, ${SENDERS} senders, batches of ${BATCH}, block time ${BLOCK_TIME} ms${WARMUP > 0 ? `, after ${WARMUP} s of warm-up` : ''}`,
  );
  const verifyPerSec = rawVerifyRate();
  console.log(`raw Ed25519 verify (node:crypto, one core): ${verifyPerSec.toFixed(0)} /s`);

  const proc = spawn(
    process.execPath,
    // No dev chips: the node's work is the transfers alone.
    [
      // Node flags for the measured node only, e.g. UNC_BENCH_NODE_FLAGS='--cpu-prof --cpu-prof-dir=/tmp/p'
      // (NODE_OPTIONS refuses --cpu-prof, and would profile the bench client too).
      ...(process.env.UNC_BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean),
      UNC,
      'dev',
      '--home',
      home,
      '--rpc-port',
      '0',
      '--block-time',
      String(BLOCK_TIME),
      '--chips',
      '0',
      // Each bench sender queues thousands of transfers at once; a public node would not take them.
      ...BENCH_MEMPOOL_ARGS,
    ],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, UNC_LOG_LEVEL: 'warn' },
    },
  );
  // The exit hook is for an abnormal end only; the normal end waits for the node to exit before its
  // home goes (deleting it under a running node fails that node's last signer save, logged as an error).
  const cleanup = () => {
    proc.kill('SIGTERM');
    rmSync(home, { recursive: true, force: true });
  };
  process.on('exit', cleanup);
  const stopNode = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
    }
    cleanup();
  };
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    proc.stdout!.on('data', (d) => {
      out += d;
      const m = /RPC\s+(http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    proc.on('exit', (c) => reject(new Error(`unc dev exited (${c})`)));
  });
  const client = new UncClient(url, { timeoutMs: 120_000 });
  const status = await client.status();
  const p = await client.getParams();
  const fees = { minFeePerByte: BigInt(p.minFeePerByte), minFeePerAction: BigInt(p.minFeePerAction) };

  // Setup: fund the bench senders from the dev accounts.
  const senders = Array.from({ length: SENDERS }, (_, i) => {
    const seed = sha256(utf8(`bench sender ${i}`));
    const publicKey = ed25519PublicKey(seed);
    return { seed, publicKey, address: encodeAddress(addressFromPublicKey(publicKey)) };
  });
  const funders = Array.from({ length: 10 }, (_, i) => devKey(i));
  const funding: string[] = [];
  senders.forEach((s, i) => {
    const f = funders[i % funders.length]!;
    const base: Omit<Transaction, 'fee'> = {
      chainId: status.chainId,
      signer: f.publicKey,
      nonce: BigInt(Math.floor(i / funders.length)),
      expiresAt: BigInt(status.height) + 1000n,
      actions: [transferAction(s.address, parseUnc('1000'))],
    };
    funding.push(encodeSigned(signTransaction({ ...base, fee: feeFor(base, fees) }, f.seed)));
  });
  await sendRetrying(client, funding);
  const last = funding.length;
  while ((await client.status()).mempool.size > 0) await new Promise((r) => setTimeout(r, 200));
  void last;

  // Pre-sign enough transfers for the whole run at up to ~12,000/s.
  const perSender = Math.ceil(((SECONDS + WARMUP + 5) * 12_000) / SENDERS);
  console.log(`pre-signing ${perSender * SENDERS} transfers…`);
  const now = await client.status();
  const queues: string[][] = Array.from({ length: CLIENTS }, () => []);
  presignTransfers(senders, perSender, status.chainId, now.height, fees).forEach((tx, j) => {
    queues[(j % senders.length) % CLIENTS]!.push(tx);
  });
  // Each client's batches, encoded now (outside the window).
  let bodyId = 1;
  const bodies: Buffer[][] = queues.map((queue) => {
    const out: Buffer[] = [];
    for (let at = 0; at < queue.length; at += BATCH)
      out.push(encodeSendBody(queue.slice(at, at + BATCH), bodyId++));
    return out;
  });
  const poster = new BodyPoster(url);
  const mempool = watchMempool(client);

  const blocks: BlockJson[] = [];
  const sub = await client.subscribe<BlockJson>('newBlocks', [], (b) => blocks.push(b));
  let rejected = 0;
  let accepted = 0;
  const reasons = new Map<string, number>();
  const sendStartMs = Date.now();
  const startMs = sendStartMs + WARMUP * 1000;
  const endMs = startMs + SECONDS * 1000;
  // The window's starting figures, read when it opens (after the warm-up, if any).
  type Figures = {
    loop: Awaited<ReturnType<typeof nodeLoopFigures>>;
    nodeCpu: ReturnType<typeof processCpuMs>;
    benchCpu: NodeJS.CpuUsage;
  };
  const atWindowStart = async (): Promise<Figures> => {
    const loop = await nodeLoopFigures(url);
    return { loop, nodeCpu: processCpuMs(proc.pid!), benchCpu: process.cpuUsage() };
  };
  let windowStart: Promise<Figures>;
  let sendingDone = () => {};
  if (WARMUP > 0) {
    const warmupShown = phaseProgress('warming up', WARMUP * 1000, () => `${accepted} accepted`);
    windowStart = new Promise((resolve) =>
      setTimeout(() => {
        warmupShown();
        accepted = 0;
        rejected = 0;
        reasons.clear();
        sendingDone = phaseProgress('sending', SECONDS * 1000, () => `${accepted} accepted`);
        resolve(atWindowStart());
      }, startMs - Date.now()),
    );
  } else {
    windowStart = atWindowStart();
    sendingDone = phaseProgress('sending', SECONDS * 1000, () => `${accepted} accepted`);
  }
  await Promise.all(
    bodies.flatMap((own) => {
      // IN_FLIGHT senders share this client's batches, in order (the bench node allows nonce gaps,
      // so a batch overtaking the one before it is admitted all the same).
      let next = 0;
      return Array.from({ length: IN_FLIGHT }, async () => {
        while (Date.now() < endMs && next < own.length) {
          if (mempool.size() > 40_000) {
            await new Promise((r) => setTimeout(r, 50));
            continue;
          }
          const results = await postRetrying(poster, own[next++]!);
          for (const r of results) {
            if ('error' in r) {
              rejected++;
              reasons.set(r.error.reason, (reasons.get(r.error.reason) ?? 0) + 1);
            } else accepted++;
          }
        }
      });
    }),
  );
  sendingDone();
  const { loop: loopAtStart, nodeCpu: nodeCpuAtStart, benchCpu: benchCpuAtStart } = await windowStart;
  mempool.stop();
  poster.close();
  const nodeCpuAtEnd = processCpuMs(proc.pid!);
  const loopAtEnd = await nodeLoopFigures(url);
  const benchCpu = process.cpuUsage(benchCpuAtStart);
  // Count what was finalized inside the window [start, end].
  await new Promise((r) => setTimeout(r, BLOCK_TIME + 200));
  sub.close();
  const inWindow = blocks.filter((b) => b.timeMs > startMs && b.timeMs <= endMs);
  const finalized = inWindow.reduce((s, b) => s + b.txCount, 0);
  const seconds = (Math.min(endMs, inWindow.at(-1)?.timeMs ?? endMs) - startMs) / 1000;
  const tps = finalized / SECONDS;
  console.log(
    `submitted ${accepted} accepted, ${rejected} rejected${reasons.size ? ` (${[...reasons].map(([k, v]) => `${k} ${v}`).join(', ')})` : ''}; ${inWindow.length} blocks in the window`,
  );
  console.log(
    `finalized transfers: ${finalized} in ${SECONDS} s = ${tps.toFixed(0)} /s (last block at ${seconds.toFixed(1)} s)`,
  );
  console.log(`ratio finalized transfers / raw Ed25519 verifications: ${(tps / verifyPerSec).toFixed(3)}`);
  if (nodeCpuAtStart && nodeCpuAtEnd && finalized > 0) {
    const perTx = (ms: number) => ((ms * 1000) / finalized).toFixed(0);
    const { main, other, liveNiced, rest } = cpuSplit(nodeCpuAtStart, nodeCpuAtEnd);
    console.log(
      `node CPU per finalized transfer: ${perTx(main + other)} µs (main thread ${perTx(main)} µs, other threads ${perTx(other)} µs: verify workers (live niced threads) ${perTx(liveNiced)} µs, the rest ${perTx(rest)} µs; one raw verify ${(1e6 / verifyPerSec).toFixed(0)} µs); node cores busy ${((main + other) / (SECONDS * 1000)).toFixed(2)}`,
    );
    if (loopAtStart && loopAtEnd) {
      const active = loopAtEnd.loopActiveS - loopAtStart.loopActiveS;
      const gc = loopAtEnd.gcS - loopAtStart.gcS;
      console.log(
        `node main thread: event loop busy ${((100 * active) / SECONDS).toFixed(0)} % of the window; GC pauses ${(gc * 1000).toFixed(0)} ms in ${loopAtEnd.gcCount - loopAtStart.gcCount} collections (${((gc * 1e6) / finalized).toFixed(0)} µs per finalized transfer)`,
      );
    }
    console.log(
      `bench client CPU per finalized transfer: ${perTx((benchCpu.user + benchCpu.system) / 1000)} µs (its own process)`,
    );
  }
  const largest = inWindow.reduce((m, b) => Math.max(m, b.txCount), 0);
  console.log(`largest block: ${largest} transfers`);
  await stopNode();
  process.exit(0);
}

await main();
