/**
 * `npm run bench:gateway`: one burst of OCR jobs through `unc gateway` against a single fixed lease
 * (--max-leases 1) and against the autoscaling gateway (up to 4 providers), in one run on one
 * `unc dev` chain with four provider processes (each a miner agent with one dev chip, job
 * concurrency 1, its own price). Prints throughput and p50/p99 latency of each and their ratios,
 * leases opened and UNC spent per 1,000 jobs (price × the time each lease was held during the
 * burst, plus the fees of the transactions the gateway sent), and, as the machine's own limit,
 * OCR run directly in this process at the machine's parallelism.
 *
 *   npm run bench:gateway [-- --jobs 40]
 */

import { readFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { GatewayJobView } from '@unc/gateway';
import { OcrEngine } from '@unc/miner';
import { UncClient } from '@unc/sdk';
import { type ProviderProcess, startGateway, startProvider, stopProcess } from '../test/gateway-helpers.js';
import { runUnc, startDev, tempHome } from '../test/helpers.js';

const SAMPLE = fileURLToPath(new URL('../../../miner/test/fixtures/ocr-sample.png', import.meta.url));

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a positive integer`);
  return v;
}

/** UNC with 4 decimals (rounded down): enough to compare runs. */
function unc4(baseUnits: bigint): string {
  const tenThousandths = baseUnits / 10n ** 14n;
  return `${tenThousandths / 10_000n}.${(tenThousandths % 10_000n).toString().padStart(4, '0')}`;
}

function pct(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

interface RunFigures {
  jobsPerSec: number;
  p50: number;
  p99: number;
  leasesOpened: number;
  spentPer1000: bigint;
  failed: number;
}

const jobs = arg('jobs', 40);
const image = readFileSync(SAMPLE);

// The machine's own limit for this work: OCR directly, as many at once as there are cores.
const engine = await OcrEngine.create();
await engine.recognise(image);
const parallel = availableParallelism();
const directN = Math.max(parallel * 5, 10);
let next = 0;
const d0 = performance.now();
await Promise.all(
  Array.from({ length: parallel }, async () => {
    while (next < directN) {
      next++;
      await engine.recognise(image);
    }
  }),
);
const directPerSec = directN / ((performance.now() - d0) / 1000);

const home = tempHome();
const dev = await startDev(home.dir, ['--block-time', '250', '--epoch-blocks', '24', '--chips', '0']);
const client = new UncClient(dev.url);
const providers: ProviderProcess[] = [];
try {
  const specs = [
    { owner: 5, chip: 0, price: '1' },
    { owner: 6, chip: 2, price: '1.2' },
    { owner: 7, chip: 4, price: '1.4' },
    { owner: 8, chip: 6, price: '1.6' },
  ];
  providers.push(...(await Promise.all(specs.map((s, i) => startProvider(`p${i}`, dev.url, home.dir, s)))));

  const body = JSON.stringify({ model: 'ocr', image: image.toString('base64') });
  const run = async (name: string, renter: string, maxLeases: number): Promise<RunFigures> => {
    const gw = await startGateway(
      ['--home', home.dir, '--from', renter, '--budget', '10', '--models', 'ocr'].concat([
        '--db',
        join(home.dir, `${name}.db`),
        '--max-leases',
        String(maxLeases),
        '--target-wait',
        '1',
        '--cooldown',
        '1',
        '--idle-close',
        '600',
      ]),
    );
    const get = async <T>(path: string): Promise<T> => (await (await fetch(`${gw.url}${path}`)).json()) as T;
    type Status = { pool: unknown[]; spent: string; leases: unknown[] };
    // The first lease, warmed with one job, before the clock starts.
    await fetch(`${gw.url}/v1/jobs?wait=1`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json' },
    });
    const before = await get<Status>('/v1/status');
    const ids = await Promise.all(
      Array.from({ length: jobs }, async () => {
        const res = await fetch(`${gw.url}/v1/jobs`, {
          method: 'POST',
          body,
          headers: { 'content-type': 'application/json' },
        });
        return ((await res.json()) as GatewayJobView).jobId;
      }),
    );
    let views: GatewayJobView[] = [];
    for (;;) {
      views = await Promise.all(ids.map((id) => get<GatewayJobView>(`/v1/jobs/${id}`)));
      if (views.every((v) => v.status === 'done' || v.status === 'failed')) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    const after = await get<Status>('/v1/status');
    await stopProcess(gw.proc);
    // The chips go back to the market for the next run.
    const renterAddress = (await runUnc(['keys', 'show', renter, '--home', home.dir, '--output', 'json']))
      .stdout;
    const address = (JSON.parse(renterAddress) as { address: string }).address;
    for (const l of await client.getLeases({ renter: address }))
      if (l.status === 'active' || l.status === 'closing')
        await runUnc(['market', 'lease', 'close', l.id, '--from', renter, '--home', home.dir]);
    const start = Math.min(...views.map((v) => v.createdMs));
    const end = Math.max(...views.map((v) => v.finishedMs ?? v.createdMs));
    const latencies = views.map((v) => v.latencyMs ?? 0);
    const spent = BigInt(after.spent) - BigInt(before.spent);
    return {
      jobsPerSec: jobs / ((end - start) / 1000),
      p50: pct(latencies, 50),
      p99: pct(latencies, 99),
      leasesOpened: after.leases.length,
      spentPer1000: (spent * 1000n) / BigInt(jobs),
      failed: views.filter((v) => v.status !== 'done').length,
    };
  };

  const fixed = await run('fixed', 'dev1', 1);
  const elastic = await run('elastic', 'dev2', 4);
  const line = (name: string, f: RunFigures) =>
    `  ${name.padEnd(22)} ${f.jobsPerSec.toFixed(2).padStart(6)} jobs/s   p50 ${String(f.p50).padStart(6)} ms   p99 ${String(f.p99).padStart(6)} ms   leases ${f.leasesOpened}   ${unc4(f.spentPer1000)} UNC / 1,000 jobs${f.failed ? `   FAILED ${f.failed}` : ''}`;
  console.log(
    `gateway burst: ${jobs} OCR jobs at once; ${cpus()[0]?.model.trim() ?? 'cpu'} × ${parallel}; providers with 1 job at a time; prices 1, 1.2, 1.4, 1.6 UNC/h`,
  );
  console.log(`  direct OCR (machine limit, ${parallel} at a time) ${directPerSec.toFixed(2)} jobs/s`);
  console.log(line('one fixed lease', fixed));
  console.log(line('autoscaling (≤ 4 leases)', elastic));
  console.log(
    `  ratios autoscaling / fixed: throughput ×${(elastic.jobsPerSec / fixed.jobsPerSec).toFixed(2)}, p50 ×${(elastic.p50 / fixed.p50).toFixed(2)}, p99 ×${(elastic.p99 / fixed.p99).toFixed(2)}`,
  );
  console.log(
    `  against the machine limit: fixed ×${(fixed.jobsPerSec / directPerSec).toFixed(2)}, autoscaling ×${(elastic.jobsPerSec / directPerSec).toFixed(2)}`,
  );
} finally {
  await Promise.all(providers.map((p) => stopProcess(p.proc)));
  await dev.stop();
  home.cleanup();
}
