/**
 * `unc gateway` end to end, every part a real process: `unc dev`, four providers (each a miner agent
 * of its own with its own owner, dev chip, offer and price; one of them dishonest: it rewrites its
 * receipts), and the gateway itself (`unc gateway start`). The dishonest provider is the cheapest,
 * so the gateway leases it first: its receipt is rejected and it is avoided. A burst of OCR jobs
 * makes the gateway lease more chips within its budget until the p99 latency is back under its
 * target; a provider killed mid-burst loses no job (retried elsewhere, the unanswered request
 * disputed on chain); idle leases are closed; an ONNX model (not OCR) is uploaded to the leases
 * and its job answered with a receipt verified on chain; a restart of the gateway keeps its jobs and
 * receipts; and the chain's own accounts show the renter key spent no more than the budget, fees
 * included.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseUnc } from '@unc/core';
import type { GatewayJobView } from '@unc/gateway';
import { type ChipJson, type LeaseJson, UncClient, verifyReceiptOffline } from '@unc/sdk';
import {
  type ProviderProcess,
  startGateway as spawnGateway,
  startProvider,
  stopProcess,
} from './gateway-helpers.js';
import { type DevNode, runUnc, startDev, tempHome } from './helpers.js';

const SAMPLE = fileURLToPath(new URL('../../../miner/test/fixtures/ocr-sample.png', import.meta.url));
/** y = x·W + b with W = [[1,2],[3,4],[5,6],[7,8]], b = [0.5, −1] (miner/test/fixtures/make-fixtures.ts). */
const AFFINE = fileURLToPath(new URL('../../../miner/test/fixtures/affine.onnx', import.meta.url));
const IMAGE = readFileSync(SAMPLE).toString('base64');
const RENTER = 'unc1vystcnlgdeut2u2v57a0lacv4url68zepr0t34'; // dev1
const BUDGET = '3.2';
const TARGET_P99_S = 12;

async function until<T>(
  what: string,
  ms: number,
  probe: () => Promise<T | null | undefined | false>,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe().catch(() => null);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('unc gateway against unc dev and four providers', { timeout: 600_000 }, () => {
  const home = tempHome();
  let dev: DevNode;
  let client: UncClient;
  let gateway: ChildProcess | null = null;
  let gatewayUrl = '';
  const providers: ProviderProcess[] = [];
  let honest: ProviderProcess[] = [];
  let dishonest: ProviderProcess;
  const db = join(home.dir, 'gateway.db');
  let firstJobId = '';
  /** The renter's balance before the gateway's first transaction, and when. */
  let balanceBefore = 0n;
  let startedMs = 0;

  async function startGateway(): Promise<void> {
    const started = await spawnGateway(
      [
        '--home',
        home.dir,
        '--from',
        'dev1',
        '--budget',
        BUDGET,
        '--models',
        `ocr,${AFFINE}`,
        '--db',
        db,
      ].concat([
        '--target-wait',
        '1',
        '--target-p99',
        String(TARGET_P99_S),
        '--idle-close',
        '8',
        '--cooldown',
        '1',
        '--attempt-timeout',
        '60',
        // Receipts checked against chip keys the light client proved (not the node's word).
        '--prove',
      ]),
    );
    gateway = started.proc;
    gatewayUrl = started.url;
  }

  async function api<T>(
    path: string,
    init: { body?: unknown; key?: string } = {},
  ): Promise<{ status: number; json: T }> {
    const res = await fetch(`${gatewayUrl}${path}`, {
      method: init.body === undefined ? 'GET' : 'POST',
      headers: {
        'content-type': 'application/json',
        ...(init.key ? { 'idempotency-key': init.key } : {}),
      },
      ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
      signal: AbortSignal.timeout(300_000),
    });
    return { status: res.status, json: (await res.json()) as T };
  }

  type Status = {
    pool: { leaseId: string; provider: string; inFlight: number; answered: number }[];
    leases: { leaseId: string; provider: string; closedMs: number | null }[];
    avoided: { provider: string; untilMs: number | null }[];
    counters: { retries: number; disputes: number; rejectedReceipts: number };
    recentP99Ms: number | null;
  };
  const status = async () => (await api<Status>('/v1/status')).json;

  const submitBurst = async (prefix: string, n: number): Promise<string[]> => {
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const r = await api<GatewayJobView>('/v1/jobs', {
        body: { model: 'ocr', image: IMAGE },
        key: `${prefix}-${i}`,
      });
      assert.equal(r.status, 202, JSON.stringify(r.json));
      ids.push(r.json.jobId);
    }
    return ids;
  };
  const allDone = (ids: string[], ms: number) =>
    until(`${ids.length} jobs to finish`, ms, async () => {
      const views = await Promise.all(
        ids.map(async (id) => (await api<GatewayJobView>(`/v1/jobs/${id}`)).json),
      );
      return views.every((v) => v.status === 'done' || v.status === 'failed') ? views : null;
    });

  /** Verifies a job's receipt against the chain from the test's side too. */
  const verifyOnChain = async (job: GatewayJobView) => {
    assert.equal(job.status, 'done', job.error ?? '');
    assert.equal(
      job.result && (job.result as { ocr: { text: string } }).ocr.text,
      'UtilityNet 2026 rental receipt',
    );
    const chip = await client.call<ChipJson>('unc_getChip', [job.chipId]);
    const receipt = verifyReceiptOffline(job.receipt!.hex, chip, 'unc-dev-1');
    assert.equal(Buffer.from(receipt.leaseId).toString('hex'), job.leaseId);
  };

  before(async () => {
    dev = await startDev(home.dir, ['--block-time', '250', '--epoch-blocks', '24', '--chips', '0']);
    client = new UncClient(dev.url);
    // Same chip model (even dev chips are simulated H100s), so the price decides the order.
    const specs: [string, Parameters<typeof startProvider>[3]][] = [
      ['a', { owner: 5, chip: 0, price: '1' }],
      ['b', { owner: 6, chip: 2, price: '1.2' }],
      ['c', { owner: 7, chip: 4, price: '1.4' }],
      ['tamper', { owner: 8, chip: 6, price: '0.5', tamper: true }],
    ];
    for (const p of await Promise.all(
      specs.map(([name, spec]) => startProvider(name, dev.url, home.dir, spec)),
    ))
      providers.push(p);
    honest = providers.filter((p) => p.name !== 'tamper');
    dishonest = providers.find((p) => p.name === 'tamper')!;
    balanceBefore = await client.balance(RENTER);
    startedMs = Date.now();
    await startGateway();
  });

  after(async () => {
    if (gateway) await stopProcess(gateway);
    await Promise.all(providers.map((p) => stopProcess(p.proc)));
    await dev?.stop();
    home.cleanup();
  });

  test('a tampered receipt is rejected: the job is answered by another provider, the dishonest one avoided', async () => {
    const r = await api<GatewayJobView>('/v1/jobs?wait=1', {
      body: { model: 'ocr', image: IMAGE },
      key: 'first',
    });
    assert.equal(r.status, 200);
    await verifyOnChain(r.json);
    assert.notEqual(r.json.provider, dishonest.address);
    assert.ok(r.json.attempts >= 2, 'the first attempt went to the cheapest, dishonest provider');
    firstJobId = r.json.jobId;
    const s = await status();
    assert.ok(s.counters.rejectedReceipts >= 1);
    assert.deepEqual(
      s.avoided.filter((a) => a.provider === dishonest.address),
      [{ provider: dishonest.address, untilMs: null }],
    );
    // Its lease is closed on chain, and no lease is opened with it again.
    const theirs = s.leases.filter((l) => l.provider === dishonest.address);
    assert.equal(theirs.length, 1);
    await until(
      'the dishonest lease to close',
      30_000,
      async () => (await client.getLease(theirs[0]!.leaseId)).status === 'closed',
    );
  });

  test('a burst leases more chips within the budget, and the p99 latency falls back under its target', async () => {
    const burst = await submitBurst('burst', 24);
    const views = await allDone(burst, 300_000);
    for (const v of views) await verifyOnChain(v);
    const s = await status();
    const served = new Set(views.map((v) => v.provider));
    assert.ok(served.size >= 2, `the burst was served by ${served.size} provider(s)`);
    const burstMax = Math.max(...views.map((v) => v.latencyMs!));
    const honestLeases = s.leases.filter((l) => l.provider !== dishonest.address);
    assert.ok(honestLeases.length >= 2, 'the pool grew');
    // The scaled pool now answers jobs well within the target.
    const calm = await submitBurst('calm', 2);
    const calmViews = await allDone(calm, 120_000);
    const calmP99 = Math.max(...calmViews.map((v) => v.latencyMs!));
    assert.ok(
      calmP99 < TARGET_P99_S * 1000,
      `p99 after scaling ${calmP99} ms (the burst's slowest: ${burstMax} ms)`,
    );
    // The third honest provider (1.4 UNC/h) never ran beside the two cheaper ones: 1 + 1.2 + 1.4 > 3.2.
    await assertBudgetKept();
  });

  /** From the chain: at no moment did the renter's open leases cost more per hour than the budget. */
  async function assertBudgetKept(): Promise<void> {
    const leases = await client.getLeases({ renter: RENTER });
    const edges: [number, bigint][] = [];
    for (const l of leases as LeaseJson[]) {
      edges.push([l.startTime, BigInt(l.pricePerHour)]);
      if (l.closedTime !== null) edges.push([l.closedTime, -BigInt(l.pricePerHour)]);
    }
    // Closings before openings at the same block time.
    edges.sort((x, y) => x[0] - y[0] || (x[1] < y[1] ? -1 : 1));
    let rate = 0n;
    let peak = 0n;
    for (const [, d] of edges) {
      rate += d;
      if (rate > peak) peak = rate;
    }
    assert.ok(peak <= parseUnc(BUDGET), `peak ${peak} > budget`);
  }

  test('a provider killed mid-burst loses no job: retried elsewhere, the unanswered request disputed', async () => {
    const before = await status();
    const ids = await submitBurst('kill', 12);
    const victim = await until('a provider to be running a job', 60_000, async () => {
      const s = await status();
      const busy = s.pool.find((l) => l.inFlight > 0 && honest.some((p) => p.address === l.provider));
      return busy
        ? { lease: busy.leaseId, provider: honest.find((p) => p.address === busy.provider)! }
        : null;
    });
    await stopProcess(victim.provider.proc, 'SIGKILL');
    const views = await allDone(ids, 300_000);
    for (const v of views) await verifyOnChain(v);
    const after = await status();
    assert.ok(after.counters.retries > before.counters.retries, 'a job was retried');
    assert.ok(after.avoided.some((a) => a.provider === victim.provider.address));
    const lease = await until('the dispute on chain', 60_000, async () => {
      const l = await client.getLease(victim.lease);
      return l.disputes >= 1 ? l : null;
    });
    assert.ok(lease.disputes >= 1);
    assert.ok((await client.getProviderRecord(victim.provider.address)).disputes >= 1);
    await assertBudgetKept();
  });

  test('idle leases are closed after the idle period, down to one', async () => {
    await until('the pool to shrink to one lease', 60_000, async () => (await status()).pool.length === 1);
    const active = await until('the chain to show one active lease', 30_000, async () => {
      const open = (await client.getLeases({ renter: RENTER })).filter((l) => l.status === 'active');
      return open.length === 1 ? open : null;
    });
    assert.equal(active.length, 1);
    await assertBudgetKept();
  });

  test("an ONNX model's job end to end: uploaded to the lease, run, its receipt verified on chain", async () => {
    const x = Buffer.alloc(16);
    [1, 2, 3, 4].forEach((v, i) => x.writeFloatLE(v, i * 4));
    const r = await api<GatewayJobView>('/v1/jobs?wait=1', {
      body: { model: 'affine', inputs: { x: { type: 'float32', dims: [1, 4], data: x.toString('base64') } } },
      key: 'affine-1',
    });
    assert.equal(r.status, 200);
    assert.equal(r.json.status, 'done', r.json.error ?? '');
    const y = (r.json.result as { outputs: Record<string, { type: string; dims: number[]; data: string }> })
      .outputs.y!;
    assert.deepEqual(y.dims, [1, 2]);
    const out = Buffer.from(y.data, 'base64');
    assert.deepEqual([out.readFloatLE(0), out.readFloatLE(4)], [50.5, 59]);
    const chip = await client.call<ChipJson>('unc_getChip', [r.json.chipId]);
    const receipt = verifyReceiptOffline(r.json.receipt!.hex, chip, 'unc-dev-1');
    assert.equal(Buffer.from(receipt.leaseId).toString('hex'), r.json.leaseId);
  });

  test('a restart keeps every job and receipt; an idempotency key is answered once', async () => {
    const listed = async () => (await api<{ jobs: GatewayJobView[] }>('/v1/jobs?limit=1000')).json.jobs;
    const beforeJobs = await listed();
    const done = beforeJobs.filter((j) => j.status === 'done');
    assert.ok(done.length >= 35, `${done.length} jobs answered so far`);
    // A job submitted just before the stop is run after the start.
    const pending = await submitBurst('restart', 1);
    await stopProcess(gateway!);
    gateway = null;
    await startGateway();
    const afterJobs = await listed();
    for (const j of beforeJobs) {
      const again = afterJobs.find((x) => x.jobId === j.jobId);
      assert.ok(again, `job ${j.jobId} survived the restart`);
      assert.equal(again.receipt?.hex, j.receipt?.hex);
      assert.equal(again.cost, j.cost);
    }
    const [resumed] = await allDone(pending, 120_000);
    await verifyOnChain(resumed!);
    // The same key again: the same job, not run again.
    const replay = await api<GatewayJobView>('/v1/jobs', {
      body: { model: 'ocr', image: IMAGE },
      key: 'first',
    });
    assert.equal(replay.status, 200);
    assert.equal(replay.json.jobId, firstJobId);
    assert.equal(replay.json.status, 'done');
    const reused = await api<{ error: { code: string } }>('/v1/jobs', {
      body: { model: 'ocr', image: 'AAAA' },
      key: 'first',
    });
    assert.equal(reused.status, 409);
    assert.equal(reused.json.error.code, 'IDEMPOTENCY_KEY_REUSED');

    // The CLI reads the same database: every answered job with its receipt.
    const final = await listed();
    const jobs = await runUnc(['gateway', 'jobs', '--db', db, '--limit', '1000', '--output', 'json']);
    assert.equal(jobs.code, 0, jobs.stderr);
    assert.equal((JSON.parse(jobs.stdout) as unknown[]).length, final.length);
    const file = join(home.dir, 'receipts.jsonl');
    const exported = await runUnc(['gateway', 'receipts', '--db', db, '--export', file, '--output', 'json']);
    assert.equal(exported.code, 0, exported.stderr);
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    assert.equal(lines.length, JSON.parse(exported.stdout).receipts);
    assert.equal(lines.length, final.filter((j) => j.status === 'done').length);
    const one = JSON.parse(lines[0]!) as { receipt: string };
    const verified = await runUnc(['job', 'verify', one.receipt, '--home', home.dir, '--node', dev.url]);
    assert.equal(verified.code, 0, verified.stderr);
  });

  test("the key spent no more than the budget, fees included, by the chain's own accounts", async (t) => {
    // The whole run is well under an hour, so the budget per hour bounds all of it. The chain's
    // spend: what left the renter's balance, less the escrow its open leases would still return.
    assert.ok(Date.now() - startedMs < 3_600_000);
    const leases = await client.getLeases({ renter: RENTER });
    let held = 0n;
    for (const l of leases) if (l.status !== 'closed') held += BigInt(l.remaining) - BigInt(l.unsettled);
    const spent = balanceBefore - (await client.balance(RENTER)) - held;
    assert.ok(spent > 0n);
    assert.ok(spent <= parseUnc(BUDGET), `the chain says ${spent} spent, over the budget ${BUDGET} UNC`);
    // Every fee the renter's key paid is in the gateway's spend: each transaction it signed.
    let chainFees = 0n;
    let sent = 0;
    for (let cursor: string | null | undefined; ; ) {
      const page = await client.getAccountTransactions(RENTER, { limit: 100, cursor });
      for (const t of page.transactions)
        if (t.tx.from === RENTER) {
          chainFees += BigInt(t.tx.fee);
          sent++;
        }
      cursor = page.nextCursor;
      if (!cursor) break;
    }
    const shown = (await api<{ spent: string; fees: string; spentLastHour: string }>('/v1/status')).json;
    assert.ok(sent >= 4, `${sent} transactions`);
    assert.ok(
      BigInt(shown.fees) >= chainFees,
      `the gateway counts ${shown.fees} of fees, the chain charged ${chainFees}`,
    );
    // The shown spend holds the fees and the leases' charges (rounded up, by the gateway's clock),
    // and what its openings burned for their records: never less than what left the balance.
    assert.ok(BigInt(shown.spent) >= chainFees);
    assert.ok(
      BigInt(shown.spent) >= spent,
      `the gateway shows ${shown.spent} spent, the chain took ${spent}`,
    );
    assert.ok(BigInt(shown.spentLastHour) <= parseUnc(BUDGET));
    t.diagnostic(
      `chain: spent ${spent} base units over ${sent} transactions (fees ${chainFees}); gateway shows spent ${shown.spent}, fees ${shown.fees}; budget ${parseUnc(BUDGET)} per hour`,
    );
  });

  test('bad input gets a clear error and changes nothing', async () => {
    const cases: [unknown, number, string][] = [
      [{ model: 'gpt', image: IMAGE }, 400, 'UNKNOWN_MODEL'],
      [{ model: 'ocr' }, 400, 'BAD_IMAGE'],
      [[1, 2], 400, 'BAD_JOB'],
    ];
    const count = (await api<{ jobs: unknown[] }>('/v1/jobs?limit=1000')).json.jobs.length;
    for (const [body, code, reason] of cases) {
      const r = await api<{ error: { code: string } }>('/v1/jobs', { body });
      assert.equal(r.status, code);
      assert.equal(r.json.error.code, reason);
    }
    const badKey = await api<{ error: { code: string } }>('/v1/jobs', {
      body: { model: 'ocr', image: IMAGE },
      key: 'a b',
    });
    assert.equal(badKey.json.error.code, 'BAD_IDEMPOTENCY_KEY');
    assert.equal((await api<{ jobs: unknown[] }>('/v1/jobs?limit=1000')).json.jobs.length, count);
    const metrics = await (await fetch(`${gatewayUrl}/metrics`)).text();
    assert.match(metrics, /unc_gateway_jobs\{status="done"\} \d+/);
    const page = await (await fetch(`${gatewayUrl}/`)).text();
    assert.match(page, /UtilityNet inference gateway/);
    const cli = await runUnc([
      'gateway',
      'start',
      '--from',
      'dev1',
      '--budget',
      'lots',
      '--models',
      'ocr',
      '--home',
      home.dir,
    ]);
    assert.equal(cli.code, 1);
    assert.match(cli.stderr, /invalid --budget/);
  });
});
