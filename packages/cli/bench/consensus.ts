/**
 * bench:consensus — a 4-validator `unc testnet` on this machine (separate processes, libp2p over
 * 127.0.0.1): finalized blocks per second, submission→finality latency (p50/p99) at a moderate
 * offered load, and finalized transfers per second under saturation; next to the single-node
 * figure of bench:tps (packages/cli/bench/tps.ts), run in the same invocation.
 *
 *   npm run bench:consensus -- [--seconds 20] [--validators 4] [--rate 200] [--clients 4]
 *                              [--senders 200] [--batch 250] [--block-time 1000] [--skip-single]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
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
import { BENCH_MEMPOOL_ARGS, phaseProgress, presignTransfers } from './presign.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} must be a positive number`);
  return v;
}

const SECONDS = arg('seconds', 20);
const VALIDATORS = arg('validators', 4);
const RATE = arg('rate', 200);
const CLIENTS = arg('clients', 4);
const SENDERS = arg('senders', 200);
const BATCH = arg('batch', 250);
const BLOCK_TIME = arg('block-time', 1000);
const SKIP_SINGLE = process.argv.includes('--skip-single');
const UNC = new URL('../../bin/unc.js', import.meta.url).pathname;
const TPS = new URL('./tps.js', import.meta.url).pathname;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** bench:tps in a child process; returns its finalized transfers per second. */
async function singleNodeTps(): Promise<number | null> {
  const proc = spawn(
    process.execPath,
    [TPS, '--seconds', String(SECONDS), '--block-time', String(BLOCK_TIME)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  let out = '';
  proc.stdout!.on('data', (d) => {
    out += d;
    process.stdout.write(`  [tps] ${String(d).trimEnd().split('\n').join('\n  [tps] ')}\n`);
  });
  await new Promise((r) => proc.on('exit', r));
  const m = /finalized transfers: \d+ in \d+ s = (\d+) \/s/.exec(out);
  return m ? Number(m[1]) : null;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function main(): Promise<void> {
  console.log(
    `bench:consensus  ${VALIDATORS} validators, ${SECONDS}s per phase, latency at ${RATE} tx/s, block time ${BLOCK_TIME} ms`,
  );
  let single: number | null = null;
  if (!SKIP_SINGLE) {
    console.log('single node (bench:tps, same parameters):');
    single = await singleNodeTps();
  }

  const home = mkdtempSync(join(tmpdir(), 'unc-bench-consensus-'));
  const dir = join(home, 'tn');
  const basePort = 40_000 + Math.floor(Math.random() * 1_000) * 10;
  const testnet: ChildProcess = spawn(
    process.execPath,
    [
      UNC,
      'testnet',
      '--validators',
      String(VALIDATORS),
      '--dir',
      dir,
      '--base-port',
      String(basePort),
      '--chips-per-validator',
      '0',
      '--block-time',
      String(BLOCK_TIME),
      '--home',
      home,
      ...BENCH_MEMPOOL_ARGS,
    ],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, UNC_LOG_LEVEL: process.env.UNC_LOG_LEVEL ?? 'warn' },
    },
  );
  const exited = new Promise((r) => testnet.on('exit', r));
  // Only a crash of the bench lands here; a normal end stops the nodes before removing their files.
  process.on('exit', () => testnet.kill('SIGTERM'));
  const cleanup = async () => {
    testnet.kill('SIGTERM');
    await exited;
    rmSync(home, { recursive: true, force: true });
  };
  await new Promise<void>((resolve, reject) => {
    let out = '';
    testnet.stdout!.on('data', (d) => {
      out += d;
      if (/Nodes are recorded in/.test(out)) resolve();
    });
    testnet.on('exit', (c) => reject(new Error(`unc testnet exited (${c}):\n${out}`)));
  });
  const nodes = (JSON.parse(readFileSync(join(dir, 'testnet.json'), 'utf8')) as { nodes: { rpc: string }[] })
    .nodes;
  const clients = nodes.map((n) => new UncClient(n.rpc, { timeoutMs: 120_000 }));
  const first = clients[0]!;
  const status = await first.status();
  const p = await first.getParams();
  const fees = { minFeePerByte: BigInt(p.minFeePerByte), minFeePerAction: BigInt(p.minFeePerAction) };

  // Fund the senders from the dev accounts and wait until every funding transfer is final.
  const senders = Array.from({ length: SENDERS }, (_, i) => {
    const seed = sha256(utf8(`bench sender ${i}`));
    const publicKey = ed25519PublicKey(seed);
    return { seed, publicKey, address: encodeAddress(addressFromPublicKey(publicKey)) };
  });
  const funders = Array.from({ length: 10 }, (_, i) => devKey(i));
  const funding = senders.map((s, i) => {
    const f = funders[i % funders.length]!;
    const base: Omit<Transaction, 'fee'> = {
      chainId: status.chainId,
      signer: f.publicKey,
      nonce: BigInt(Math.floor(i / funders.length)),
      expiresAt: BigInt(status.height) + 1000n,
      actions: [transferAction(s.address, parseUnc('1000'))],
    };
    return encodeSigned(signTransaction({ ...base, fee: feeFor(base, fees) }, f.seed));
  });
  await first.sendRawTransactions(funding);
  while (BigInt((await first.getAccount(senders.at(-1)!.address)).balance) === 0n) await sleep(200);

  // Pre-sign: the latency phase at RATE, then the saturation phase at up to ~6,000/s.
  const latencyCount = Math.ceil(RATE * SECONDS);
  const perSender = Math.ceil((latencyCount + SECONDS * 6_000) / SENDERS);
  console.log(`pre-signing ${perSender * SENDERS} transfers…`);
  const now = await first.status();
  const signed = presignTransfers(senders, perSender, status.chainId, now.height, fees);

  // Finality as node 0 sees it: a block arrives over its WebSocket once it is committed.
  const submittedAt = new Map<string, number>();
  const latencies: number[] = [];
  const blocks: { at: number; txCount: number }[] = [];
  const sub = await first.subscribe<BlockJson>('newBlocks', [], (b) => {
    const at = Date.now();
    blocks.push({ at, txCount: b.txCount });
    for (const h of b.txs as string[]) {
      const t = submittedAt.get(h);
      if (t !== undefined) {
        latencies.push(at - t);
        submittedAt.delete(h);
      }
    }
  });

  // Phase 1: latency at a moderate rate, spread over all validators' RPC.
  let offset = 0;
  const p1Start = Date.now();
  const p1End = p1Start + SECONDS * 1000;
  let round = 0;
  const p1Done = phaseProgress(`phase 1: ${RATE} tx/s`, SECONDS * 1000, () => `${latencies.length} final`);
  while (Date.now() < p1End && offset < latencyCount) {
    const due = Math.min(latencyCount, Math.floor(((Date.now() - p1Start) / 1000) * RATE));
    if (due > offset) {
      const batch = signed.slice(offset, due);
      offset = due;
      const sentAt = Date.now();
      const results = await clients[round++ % clients.length]!.sendRawTransactions(batch);
      for (const r of results) if ('hash' in r) submittedAt.set(r.hash, sentAt);
    }
    await sleep(20);
  }
  p1Done();
  const p1Deadline = Date.now() + 30_000;
  while (submittedAt.size > 0 && Date.now() < p1Deadline) await sleep(100);
  const lost = submittedAt.size;
  submittedAt.clear();
  const p1Blocks = blocks.filter((b) => b.at > p1Start && b.at <= p1End);
  const sorted = [...latencies].sort((a, b) => a - b);

  // Phase 2: saturation, every client pushing batches to its validator as fast as it takes them.
  const p2Start = Date.now();
  const p2End = p2Start + SECONDS * 1000;
  let accepted = 0;
  const rest = signed.slice(offset);
  const queues: string[][] = Array.from({ length: CLIENTS }, () => []);
  rest.forEach((tx, i) => queues[i % CLIENTS]!.push(tx));
  const p2Done = phaseProgress('phase 2: saturated', SECONDS * 1000, () => `${accepted} accepted`);
  await Promise.all(
    queues.map(async (queue, c) => {
      const client = clients[c % clients.length]!;
      let at = 0;
      while (Date.now() < p2End && at < queue.length) {
        const pool = await client.call<{ size: number }>('unc_mempool');
        if (pool.size > 20_000) {
          await sleep(50);
          continue;
        }
        const batch = queue.slice(at, at + BATCH);
        at += batch.length;
        for (const r of await client.sendRawTransactions(batch)) if ('hash' in r) accepted++;
      }
    }),
  );
  p2Done();
  await sleep(BLOCK_TIME + 500);
  sub.close();
  const p2Blocks = blocks.filter((b) => b.at > p2Start && b.at <= p2End);
  const p2Txs = p2Blocks.reduce((s, b) => s + b.txCount, 0);

  console.log('');
  console.log(`${VALIDATORS} validators (separate processes, libp2p on 127.0.0.1):`);
  console.log(`  finalized blocks/s (at ${RATE} tx/s)     ${(p1Blocks.length / SECONDS).toFixed(2)}`);
  console.log(
    `  submission→finality p50 / p99          ${percentile(sorted, 50)} ms / ${percentile(sorted, 99)} ms  (${sorted.length} transfers${lost ? `, ${lost} not final within 30 s` : ''})`,
  );
  console.log(`  finalized blocks/s (saturated)         ${(p2Blocks.length / SECONDS).toFixed(2)}`);
  console.log(
    `  finalized transfers/s (saturated)      ${(p2Txs / SECONDS).toFixed(0)}  (${accepted} accepted in ${SECONDS} s)`,
  );
  console.log(`single node (bench:tps):`);
  console.log(`  finalized transfers/s                  ${single === null ? 'not measured' : single}`);
  await cleanup();
  process.exit(0);
}

await main();
