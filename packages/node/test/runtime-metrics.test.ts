import assert from 'node:assert/strict';
import { test } from 'node:test';
import { outcomeOf } from '../src/rpc-metrics.js';
import { useDevNode } from './dev-node.js';

const dev = useDevNode('runtime-metrics');

/** The value of the one series of `name` whose labels include every `labels` pair, or null. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | null {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries(
      [...(m[3] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]),
    );
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[4]);
  }
  return null;
}

async function scrape(): Promise<string> {
  const res = await fetch(`${dev.node.rpcUrl}/metrics`);
  assert.equal(res.status, 200);
  return res.text();
}

test('/metrics has the process and Node.js runtime series under their usual names', async () => {
  // Some CPU to measure, and a second scrape so the counters have moved.
  await scrape();
  let x = 0;
  for (let i = 0; i < 2e6; i++) x += i % 7;
  assert.ok(x > 0);
  const text = await scrape();
  for (const name of [
    'process_cpu_seconds_total',
    'process_cpu_user_seconds_total',
    'process_resident_memory_bytes',
    'process_start_time_seconds',
    'process_open_fds',
    'process_max_fds',
    'nodejs_heap_size_used_bytes',
    'nodejs_heap_size_total_bytes',
    'nodejs_external_memory_bytes',
    // The busy loop above ran on the event loop that serves /metrics.
    'nodejs_eventloop_active_seconds_total',
  ]) {
    const v = sample(text, name);
    assert.ok(v !== null && v > 0, `${name} = ${v}`);
  }
  assert.equal(sample(text, 'nodejs_version_info', { version: process.version }), 1);
  assert.ok((sample(text, 'nodejs_heap_space_size_used_bytes', { space: 'old_space' }) ?? 0) > 0);
  assert.ok(sample(text, 'nodejs_eventloop_lag_p99_seconds') !== null);
  assert.match(text, /# TYPE nodejs_gc_duration_seconds histogram/);
  // Start time is the process's, in seconds since the epoch.
  const started = sample(text, 'process_start_time_seconds')!;
  assert.ok(Math.abs(started - (Date.now() / 1000 - process.uptime())) < 5);
});

test('/metrics counts and times RPC calls by method and outcome', async () => {
  const before = await scrape();
  const count = (text: string, method: string, outcome: string) =>
    sample(text, 'unc_rpc_requests_total', { method, outcome }) ?? 0;
  await dev.client.status();
  await dev.client.status();
  await assert.rejects(dev.client.call('unc_getTransaction', ['00'.repeat(32)]), /not found/);
  await assert.rejects(dev.client.call('unc_getBlocks', [0, 1000]), /count/);
  await assert.rejects(dev.client.call('unc_noSuchMethod', []), /not found/i);
  const text = await scrape();
  assert.equal(count(text, 'unc_status', 'ok') - count(before, 'unc_status', 'ok'), 2);
  assert.equal(
    count(text, 'unc_getTransaction', 'NOT_FOUND') - count(before, 'unc_getTransaction', 'NOT_FOUND'),
    1,
  );
  assert.equal(
    count(text, 'unc_getBlocks', 'invalid_params') - count(before, 'unc_getBlocks', 'invalid_params'),
    1,
  );
  // A name that is no method never becomes a label (labels stay bounded whatever clients send).
  assert.doesNotMatch(text, /unc_noSuchMethod/);
  const timed = sample(text, 'unc_rpc_request_duration_seconds_count', {
    method: 'unc_status',
    outcome: 'ok',
  });
  assert.ok(timed !== null && timed >= 2);
  assert.ok(
    (sample(text, 'unc_rpc_request_duration_seconds_bucket', {
      method: 'unc_status',
      outcome: 'ok',
      le: '+Inf',
    }) ?? 0) >= 2,
  );
});

test('an outcome is a short fixed word: never free text from an error message', () => {
  assert.equal(outcomeOf(new Error('anything at all')), 'internal');
});
