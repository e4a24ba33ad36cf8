/**
 * bench:spam — a real `unc dev` node (4 dev chips, miner, provider API) under a bounded flood,
 * next to the same chain quiet, in one run. Both phases carry the same honest load: dev accounts
 * sending transfers at a steady rate, and the dev miner answering its chips' challenges.
 *
 * The flood (every loop bounded in count and time, all on loopback, sent from 127.0.0.2 so that
 * per-address limits can tell it from the honest clients on 127.0.0.1):
 *   - fee-free junk: heartbeat transactions from unfunded keys, answering chips that do not exist,
 *     with nonces far ahead of the sender's next one (nonce 0 is never sent);
 *   - future nonces from a funded key (paying the minimum fee, never executable);
 *   - batch amplification: JSON-RPC batches of `unc_getBlocks` over the whole chain;
 *   - idle WebSocket clients that subscribe many times and never read;
 *   - bogus uploads to the provider API: large bodies under a signature that does not verify.
 *
 * Reported per phase, and flood / quiet: p50 and p99 inclusion time of the honest transfers,
 * honest transfers refused, chips online and challenges missed, block interval, node RSS.
 *
 *   npm run bench:spam -- [--seconds 60] [--honest-rate 8]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type Action,
  addressFromPublicKey,
  ed25519PublicKey,
  encodeAddress,
  parseUnc,
  sha256,
  signTransaction,
  type Transaction,
  toHex,
  utf8,
} from '@unc/core';
import { devKey } from '@unc/node';
import { type BlockJson, type ChipJson, encodeSigned, feeFor, transferAction, UncClient } from '@unc/sdk';
import WebSocket from 'ws';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const SECONDS = arg('seconds', 60);
/** Honest transfers per second, spread over four dev accounts. */
const HONEST_RATE = arg('honest-rate', 8);
const ALL_ATTACKS = ['junk', 'nonces', 'batches', 'idle', 'uploads'] as const;
/** `--attacks junk,uploads` runs only those (default: all), to see what each one costs alone. */
const ATTACKS = (() => {
  const i = process.argv.indexOf('--attacks');
  const names = i >= 0 ? (process.argv[i + 1] ?? '').split(',') : [...ALL_ATTACKS];
  for (const n of names)
    if (!(ALL_ATTACKS as readonly string[]).includes(n))
      throw new Error(`unknown attack ${n}: ${ALL_ATTACKS.join(', ')}`);
  return new Set(names);
})();
const UNC = new URL('../../bin/unc.js', import.meta.url).pathname;
/** Attack traffic leaves from another loopback address than the honest clients. */
const ATTACKER_ADDRESS = '127.0.0.2';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface DevNode {
  proc: ChildProcess;
  home: string;
  rpcUrl: string;
  providerUrl: string | null;
  stop(): Promise<void>;
}

async function startDev(): Promise<DevNode> {
  const home = mkdtempSync(join(tmpdir(), 'unc-bench-spam-'));
  // UNC_BENCH_PROFILE=DIR: the node writes a CPU profile there when it stops (where its time went).
  const profile = process.env.UNC_BENCH_PROFILE;
  const nodeArgs = profile ? ['--cpu-prof', `--cpu-prof-dir=${profile}`] : [];
  const proc = spawn(
    process.execPath,
    [...nodeArgs, UNC, 'dev', '--home', home, '--rpc-port', '0', '--chips', '4'],
    {
      stdio: ['ignore', 'pipe', 'ignore'],
      env: { ...process.env, UNC_LOG_LEVEL: 'error' },
    },
  );
  let stopped = false;
  const kill = () => {
    if (stopped) return;
    stopped = true;
    proc.kill('SIGKILL');
    rmSync(home, { recursive: true, force: true });
  };
  process.on('exit', kill);
  // A clean stop first (its data written, a --cpu-prof profile saved), then the hard one.
  const stop = async () => {
    if (stopped) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill('SIGTERM');
    await Promise.race([exited, sleep(10_000)]);
    kill();
  };
  const { rpcUrl, providerUrl } = await new Promise<{ rpcUrl: string; providerUrl: string | null }>(
    (resolve, reject) => {
      let out = '';
      proc.stdout!.on('data', (d) => {
        out += d;
        const rpc = /RPC\s+(http:\/\/127\.0\.0\.1:\d+)/.exec(out);
        const provider = /Provider\s+(\S+)/.exec(out);
        if (rpc && provider)
          resolve({ rpcUrl: rpc[1]!, providerUrl: provider[1]!.startsWith('http') ? provider[1]! : null });
      });
      proc.on('exit', (c) => reject(new Error(`unc dev exited (${c})`)));
    },
  );
  return { proc, home, rpcUrl, providerUrl, stop };
}

function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

interface PhaseResult {
  name: string;
  sent: number;
  included: number;
  refused: number;
  refusedReasons: Map<string, number>;
  p50: number;
  p99: number;
  blocks: number;
  meanIntervalMs: number;
  maxIntervalMs: number;
  chips: number;
  chipsOnlineMin: number;
  slotsMissed: number;
  rssMaxBytes: number;
  attack: Map<string, string>;
}

async function chipsSnapshot(client: UncClient): Promise<{ online: number; total: number; missed: number }> {
  const chips = await client.call<ChipJson[]>('unc_getChips');
  return {
    online: chips.filter((c) => c.online).length,
    total: chips.length,
    missed: chips.reduce((s, c) => s + c.slotsMissed, 0),
  };
}

// ---------------------------------------------------------------------------------------------
// The attacks. Each returns a summary line once its loop has ended (at `endMs` at the latest).

/** POSTs JSON from the attacker's address; keeps at most `keep` bytes of the reply. */
function postJson(
  url: string,
  body: string,
  keep = 0,
  timeoutMs = 30_000,
): Promise<{ status: number; bytes: number; text: string }> {
  return new Promise((resolve) => {
    const req = request(
      url,
      {
        method: 'POST',
        localAddress: ATTACKER_ADDRESS,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        timeout: timeoutMs,
      },
      (res) => {
        let bytes = 0;
        const kept: Buffer[] = [];
        res.on('data', (d: Buffer) => {
          if (bytes < keep) kept.push(d);
          bytes += d.length;
        });
        const text = () => Buffer.concat(kept).toString('utf8');
        res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, text: text() }));
        res.on('error', () => resolve({ status: 0, bytes, text: '' }));
      },
    );
    req.on('error', () => resolve({ status: 0, bytes: 0, text: '' }));
    req.on('timeout', () => req.destroy());
    req.end(body);
  });
}

/** Counts the admitted and refused transactions of one unc_sendTransactions reply. */
function tally(
  res: { status: number; text: string },
  count: number,
  reasons: Map<string, number>,
  admitted: () => void,
): void {
  const add = (reason: string, n = 1) => reasons.set(reason, (reasons.get(reason) ?? 0) + n);
  let reply: { result?: Array<{ hash?: string; error?: { reason: string } }>; error?: { message: string } };
  try {
    reply = JSON.parse(res.text);
  } catch {
    add(res.status === 0 ? 'no answer' : `HTTP ${res.status}`, count);
    return;
  }
  if (!reply.result) {
    add(reply.error?.message.slice(0, 40) ?? 'error', count);
    return;
  }
  for (const r of reply.result) {
    if (r.error) add(r.error.reason);
    else admitted();
  }
}

function describe(reasons: Map<string, number>): string {
  return reasons.size ? ` (refused: ${[...reasons].map(([k, v]) => `${k} ${v}`).join(', ')})` : '';
}

/** Fee-free heartbeats from unfunded keys, for chips that do not exist, with nonces 1, 2, 3… */
async function junkHeartbeats(url: string, chainId: string, height: number, endMs: number): Promise<string> {
  let sent = 0;
  let accepted = 0;
  const reasons = new Map<string, number>();
  let round = 0;
  while (Date.now() < endMs && round < 600) {
    const txs: string[] = [];
    for (let k = 0; k < 40; k++) {
      const seed = sha256(utf8(`spam junk ${round} ${k}`));
      const answers = Array.from({ length: 450 }, () => ({
        chipId: new Uint8Array(randomBytes(32)),
        epoch: 0n,
        slot: 0,
        evidence: { type: 'dev-soft' as const, signature: new Uint8Array(randomBytes(64)) },
      }));
      const tx: Transaction = {
        chainId,
        signer: ed25519PublicKey(seed),
        // Half at the next nonce (the stateful check must refuse them), half far ahead of it.
        nonce: k % 2 === 0 ? 0n : BigInt(1 + (round % 50)),
        fee: 0n,
        expiresAt: BigInt(height) + 1000n,
        actions: [{ type: 'heartbeat', answers } as Action],
      };
      txs.push(encodeSigned(signTransaction(tx, seed)));
    }
    round++;
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'unc_sendTransactions', params: [txs] });
    const t0 = Date.now();
    const res = await postJson(url, body, 1 << 20);
    sent += txs.length;
    tally(res, txs.length, reasons, () => accepted++);
    await sleep(Math.max(0, 500 - (Date.now() - t0)));
  }
  return `fee-free junk: ${sent} heartbeat transactions (~50 KB each) from unfunded keys, ${accepted} admitted${describe(reasons)}`;
}

/** A funded key queues transfers far past its next nonce: never executable, paying the minimum. */
async function futureNonces(
  url: string,
  chainId: string,
  height: number,
  fees: { minFeePerByte: bigint; minFeePerAction: bigint },
  endMs: number,
): Promise<string> {
  const key = devKey(8);
  let sent = 0;
  let accepted = 0;
  const reasons = new Map<string, number>();
  for (let start = 10; start < 5010 && Date.now() < endMs; start += 250) {
    const txs: string[] = [];
    for (let n = start; n < start + 250; n++) {
      const base: Omit<Transaction, 'fee'> = {
        chainId,
        signer: key.publicKey,
        nonce: BigInt(n),
        expiresAt: BigInt(height) + 1000n,
        actions: [transferAction(encodeAddress(addressFromPublicKey(key.publicKey)), 1n)],
      };
      txs.push(encodeSigned(signTransaction({ ...base, fee: feeFor(base, fees) }, key.seed)));
    }
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'unc_sendTransactions', params: [txs] });
    tally(await postJson(url, body, 1 << 20), txs.length, reasons, () => accepted++);
    sent += txs.length;
    await sleep(1000);
  }
  return `future nonces: ${sent} transfers from dev8 with nonces 10…${10 + sent}, ${accepted} admitted${describe(reasons)}`;
}

/** Batches of unc_getBlocks, each asking for as many blocks as a request may. */
async function batchAmplification(url: string, endMs: number): Promise<string> {
  let requests = 0;
  let replyBytes = 0;
  let errors = 0;
  const loops = Array.from({ length: 2 }, async () => {
    while (Date.now() < endMs && requests < 100_000) {
      const batch = Array.from({ length: 200 }, (_, i) => ({
        jsonrpc: '2.0',
        id: i,
        method: 'unc_getBlocks',
        params: ['latest', 100],
      }));
      const res = await postJson(url, JSON.stringify(batch));
      requests++;
      replyBytes += res.bytes;
      if (res.status !== 200) errors++;
      if (res.status === 0 || res.status === 429) await sleep(200);
    }
  });
  await Promise.all(loops);
  return `batch amplification: ${requests} batches of 200 × unc_getBlocks(latest, 100), ${(replyBytes / 1e6).toFixed(1)} MB of replies, ${errors} refused`;
}

/** WebSocket clients that subscribe to every block many times over and never read a byte. */
async function idleSubscribers(url: string, endMs: number): Promise<{ summary: Promise<string> }> {
  const sockets: WebSocket[] = [];
  let subscribed = 0;
  let refusedConnections = 0;
  const wsUrl = url.replace(/^http/, 'ws');
  for (let c = 0; c < 16; c++) {
    const ws = new WebSocket(wsUrl, { localAddress: ATTACKER_ADDRESS });
    const opened = await new Promise<boolean>((resolve) => {
      ws.once('open', () => resolve(true));
      ws.once('error', () => resolve(false));
      ws.once('unexpected-response', () => resolve(false));
    });
    if (!opened) {
      refusedConnections++;
      continue;
    }
    sockets.push(ws);
    for (let i = 0; i < 500; i++) {
      ws.send(JSON.stringify({ jsonrpc: '2.0', id: i, method: 'unc_subscribe', params: ['newBlocks', []] }));
      subscribed++;
    }
  }
  // Read nothing from now on: the node's send buffers are all that grows.
  await sleep(500);
  for (const ws of sockets) (ws as unknown as { _socket?: { pause(): void } })._socket?.pause();
  const summary = (async () => {
    await sleep(Math.max(0, endMs - Date.now()));
    const alive = sockets.filter((s) => s.readyState === WebSocket.OPEN).length;
    for (const ws of sockets) ws.terminate();
    return `idle subscribers: ${sockets.length} connections opened (${refusedConnections} refused), ${subscribed} subscriptions asked, ${alive} still open at the end`;
  })();
  return { summary };
}

/** Large uploads to the provider API whose signature does not verify. */
async function bogusUploads(providerUrl: string, endMs: number): Promise<string> {
  let uploads = 0;
  let bytesSent = 0;
  const chunk = Buffer.alloc(1024 * 1024, 0x5a);
  const declared = 200 * 1024 * 1024;
  const one = () =>
    new Promise<void>((resolve) => {
      const req = request(`${providerUrl}/v1/models`, {
        method: 'POST',
        localAddress: ATTACKER_ADDRESS,
        headers: {
          'content-type': 'application/octet-stream',
          'content-length': declared,
          'x-unc-lease': toHex(randomBytes(32)),
          'x-unc-renter': toHex(randomBytes(32)),
          'x-unc-timestamp': String(Date.now()),
          'x-unc-nonce': String(randomBytes(6).readUIntBE(0, 6)),
          'x-unc-signature': toHex(randomBytes(64)),
          'x-unc-body-hash': toHex(randomBytes(32)),
        },
      });
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        req.destroy();
        resolve();
      };
      req.on('response', (res) => {
        res.resume();
        finish();
      });
      req.on('error', finish);
      req.on('close', finish);
      let written = 0;
      const pump = () => {
        while (!done && written < declared && Date.now() < endMs) {
          written += chunk.length;
          bytesSent += chunk.length;
          if (!req.write(chunk)) {
            req.once('drain', pump);
            return;
          }
        }
        if (written >= declared || Date.now() >= endMs) finish();
      };
      pump();
    });
  const loops = Array.from({ length: 8 }, async () => {
    while (Date.now() < endMs && uploads < 10_000) {
      uploads++;
      await one();
    }
  });
  await Promise.all(loops);
  return `bogus uploads: ${uploads} uploads declaring 200 MiB under a forged signature, ${(bytesSent / 2 ** 20).toFixed(0)} MiB pushed`;
}

// ---------------------------------------------------------------------------------------------

async function runPhase(name: 'quiet' | 'flood'): Promise<PhaseResult> {
  process.stderr.write(`bench:spam ${name}: starting unc dev…\n`);
  const dev = await startDev();
  try {
    const client = new UncClient(dev.rpcUrl, { timeoutMs: 60_000 });
    const status = await client.status();
    const p = await client.getParams();
    const fees = { minFeePerByte: BigInt(p.minFeePerByte), minFeePerAction: BigInt(p.minFeePerAction) };
    // Let the miner register its chips and answer a first challenge.
    for (let i = 0; i < 60; i++) {
      const snap = await chipsSnapshot(client);
      if (snap.total >= 4 && snap.online >= 4) break;
      await sleep(500);
    }

    // Honest senders: four dev accounts, their transfers pre-signed in nonce order.
    const senders = [0, 1, 2, 3].map((i) => devKey(i));
    const perSender = Math.ceil((HONEST_RATE * SECONDS) / senders.length) + 2;
    const height = (await client.status()).height;
    const queues = await Promise.all(
      senders.map(async (s) => {
        const nonce = BigInt(
          (await client.getAccount(encodeAddress(addressFromPublicKey(s.publicKey)))).nonce,
        );
        return Array.from({ length: perSender }, (_, j) => {
          const base: Omit<Transaction, 'fee'> = {
            chainId: status.chainId,
            signer: s.publicKey,
            nonce: nonce + BigInt(j),
            expiresAt: BigInt(height) + 10_000n,
            actions: [
              transferAction(encodeAddress(addressFromPublicKey(devKey(9).publicKey)), parseUnc('0.001')),
            ],
          };
          const stx = signTransaction({ ...base, fee: feeFor(base, fees) }, s.seed);
          return encodeSigned(stx);
        });
      }),
    );

    const sentAt = new Map<string, number>();
    const latencies: number[] = [];
    const blockTimes: number[] = [];
    const sub = await client.subscribe<BlockJson>('newBlocks', [], (b) => {
      const now = Date.now();
      blockTimes.push(b.timeMs);
      for (const h of b.txs as string[]) {
        const t = sentAt.get(h);
        if (t !== undefined) {
          latencies.push(now - t);
          sentAt.delete(h);
        }
      }
    });

    const before = await chipsSnapshot(client);
    let chipsOnlineMin = before.online;
    let rssMax = rssBytes(dev.proc.pid!);
    const startMs = Date.now();
    const endMs = startMs + SECONDS * 1000;
    const sampler = setInterval(() => {
      rssMax = Math.max(rssMax, rssBytes(dev.proc.pid!));
    }, 250);
    const chipWatch = (async () => {
      while (Date.now() < endMs) {
        try {
          chipsOnlineMin = Math.min(chipsOnlineMin, (await chipsSnapshot(client)).online);
        } catch {
          /* a refused read is not a chip going offline */
        }
        await sleep(2000);
      }
    })();

    // The attackers run in a process of their own: making the flood (signing, hex, JSON) must not
    // slow the honest clients measured here, only the node can be what slows them.
    const attack =
      name === 'flood'
        ? runAttacker({
            rpcUrl: dev.rpcUrl,
            providerUrl: dev.providerUrl,
            chainId: status.chainId,
            height: (await client.status()).height,
            minFeePerByte: fees.minFeePerByte.toString(),
            minFeePerAction: fees.minFeePerAction.toString(),
            endMs,
            attacks: [...ATTACKS],
          })
        : Promise.resolve(new Map<string, string>());

    let sent = 0;
    let refused = 0;
    const refusedReasons = new Map<string, number>();
    const intervalMs = (1000 * senders.length) / HONEST_RATE;
    await Promise.all(
      queues.map(async (queue, i) => {
        await sleep((i * intervalMs) / senders.length);
        for (const raw of queue) {
          if (Date.now() >= endMs) break;
          const t0 = Date.now();
          try {
            const { hash } = await client.sendRawTransaction(raw);
            sentAt.set(hash, t0);
            sent++;
          } catch (err) {
            refused++;
            const reason = (err as { reason?: string }).reason ?? (err as Error).message.slice(0, 40);
            refusedReasons.set(reason, (refusedReasons.get(reason) ?? 0) + 1);
          }
          await sleep(Math.max(0, intervalMs - (Date.now() - t0)));
        }
      }),
    );
    const attackSummaries = await attack;
    await chipWatch;
    // Give the last honest transfers time to be included; those still out count at their age.
    for (let i = 0; i < 20 && sentAt.size > 0; i++) await sleep(500);
    clearInterval(sampler);
    sub.close();
    const pendingAt = Date.now();
    for (const t of sentAt.values()) latencies.push(pendingAt - t);
    const included = sent - sentAt.size;
    latencies.sort((a, b) => a - b);
    const after = await chipsSnapshot(client);
    const window = blockTimes.filter((t) => t >= startMs && t <= endMs);
    const intervals = window.slice(1).map((t, i) => t - window[i]!);
    return {
      name,
      sent,
      included,
      refused,
      refusedReasons,
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      blocks: window.length,
      meanIntervalMs: intervals.length ? intervals.reduce((a, b) => a + b, 0) / intervals.length : Number.NaN,
      maxIntervalMs: intervals.length ? Math.max(...intervals) : Number.NaN,
      chips: after.total,
      chipsOnlineMin: Math.min(chipsOnlineMin, after.online),
      slotsMissed: after.missed - before.missed,
      rssMaxBytes: rssMax,
      attack: attackSummaries,
    };
  } finally {
    await dev.stop();
  }
}

function show(r: PhaseResult): void {
  const reasons = [...r.refusedReasons].map(([k, v]) => `${k} ${v}`).join(', ');
  console.log(`${r.name}:`);
  console.log(
    `  honest transfers: ${r.sent} sent, ${r.included} included, ${r.refused} refused${reasons ? ` (${reasons})` : ''}`,
  );
  console.log(`  inclusion time: p50 ${r.p50.toFixed(0)} ms, p99 ${r.p99.toFixed(0)} ms`);
  console.log(
    `  blocks: ${r.blocks}, interval mean ${r.meanIntervalMs.toFixed(0)} ms, max ${r.maxIntervalMs.toFixed(0)} ms`,
  );
  console.log(
    `  chips: ${r.chipsOnlineMin} of ${r.chips} online at the lowest, ${r.slotsMissed} challenges missed`,
  );
  console.log(`  node RSS: max ${(r.rssMaxBytes / 2 ** 20).toFixed(0)} MiB`);
  for (const line of r.attack.values()) console.log(`  ${line}`);
}

interface AttackerPlan {
  rpcUrl: string;
  providerUrl: string | null;
  chainId: string;
  height: number;
  minFeePerByte: string;
  minFeePerAction: string;
  endMs: number;
  attacks: string[];
}

/** Runs the flood in a child process (this script with --attacker); resolves to its summaries. */
function runAttacker(plan: AttackerPlan): Promise<Map<string, string>> {
  const child = spawn(
    process.execPath,
    [new URL(import.meta.url).pathname, '--attacker', JSON.stringify(plan)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  return new Promise((resolve) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
    });
    child.on('exit', () => {
      try {
        resolve(new Map(Object.entries(JSON.parse(out) as Record<string, string>)));
      } catch {
        resolve(
          new Map([['attacker', `the attacker process ended without a summary: ${out.slice(0, 200)}`]]),
        );
      }
    });
  });
}

async function attacker(plan: AttackerPlan): Promise<void> {
  const fees = { minFeePerByte: BigInt(plan.minFeePerByte), minFeePerAction: BigInt(plan.minFeePerAction) };
  const { endMs } = plan;
  const want = new Set(plan.attacks);
  const attacks: Array<Promise<[string, string]>> = [];
  if (want.has('junk'))
    attacks.push(junkHeartbeats(plan.rpcUrl, plan.chainId, plan.height, endMs).then((s) => ['junk', s]));
  if (want.has('nonces'))
    attacks.push(
      futureNonces(plan.rpcUrl, plan.chainId, plan.height, fees, endMs).then((s) => ['nonces', s]),
    );
  if (want.has('batches')) attacks.push(batchAmplification(plan.rpcUrl, endMs).then((s) => ['batches', s]));
  if (want.has('idle')) {
    const idle = await idleSubscribers(plan.rpcUrl, endMs);
    attacks.push(idle.summary.then((s) => ['idle', s]));
  }
  if (want.has('uploads') && plan.providerUrl)
    attacks.push(bogusUploads(plan.providerUrl, endMs).then((s) => ['uploads', s]));
  process.stdout.write(JSON.stringify(Object.fromEntries(await Promise.all(attacks))));
  process.exit(0);
}

async function main(): Promise<void> {
  console.log(
    `bench:spam  ${SECONDS} s per phase, ${HONEST_RATE} honest transfers/s, unc dev with 4 chips; flood: ${[...ATTACKS].join(', ')}`,
  );
  const quiet = await runPhase('quiet');
  show(quiet);
  const flood = await runPhase('flood');
  show(flood);
  const ratio = (a: number, b: number) => (b > 0 ? (a / b).toFixed(2) : 'n/a');
  console.log('flood / quiet:');
  console.log(`  honest p99 inclusion: ${ratio(flood.p99, quiet.p99)} (goal ≤ 2)`);
  console.log(`  honest transfers sent: ${ratio(flood.sent, quiet.sent)} (a slowed node slows its clients)`);
  console.log(`  honest refused: ${flood.refused} (quiet ${quiet.refused})`);
  console.log(
    `  chips offline at the lowest: ${flood.chips - flood.chipsOnlineMin} (goal 0); challenges missed: ${flood.slotsMissed} (quiet ${quiet.slotsMissed})`,
  );
  console.log(
    `  block interval mean: ${ratio(flood.meanIntervalMs, quiet.meanIntervalMs)}, max: ${ratio(flood.maxIntervalMs, quiet.maxIntervalMs)}`,
  );
  console.log(`  node RSS max: ${ratio(flood.rssMaxBytes, quiet.rssMaxBytes)}`);
  const ok =
    flood.p99 <= 2 * quiet.p99 &&
    flood.chipsOnlineMin === flood.chips &&
    flood.refused === 0 &&
    flood.included === flood.sent;
  console.log(`verdict: ${ok ? 'the flood did not hurt honest users' : 'the flood hurt honest users'}`);
  process.exit(0);
}

const attackerAt = process.argv.indexOf('--attacker');
if (attackerAt >= 0) await attacker(JSON.parse(process.argv[attackerAt + 1]!) as AttackerPlan);
else await main();
