/**
 * Process and Node.js runtime series for /metrics, under the names Prometheus' client libraries
 * use (prom-client's defaults: `process_*`, `nodejs_*`) so that existing dashboards and alerts
 * work unchanged. Values are read at scrape time, except garbage collections (observed as they
 * happen) and event-loop delay (sampled by Node's own histogram).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { constants, monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics, getHeapStatistics } from 'node:v8';
import type { Registry } from './metrics.js';

const GC_KINDS: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
};

/** Open file descriptors (Linux /proc; elsewhere not reported). */
function openFds(): number | null {
  try {
    return readdirSync('/proc/self/fd').length - 1; // the directory handle readdir itself opened
  } catch {
    return null;
  }
}

function maxFds(): number | null {
  try {
    const m = /Max open files\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Registers the series on `r`; the result stops the samplers (the GC observer, the loop monitor). */
export function registerRuntimeMetrics(r: Registry): () => void {
  const cpuUser = r.counter('process_cpu_user_seconds_total', 'User CPU time spent, in seconds');
  const cpuSystem = r.counter('process_cpu_system_seconds_total', 'System CPU time spent, in seconds');
  const cpuTotal = r.counter('process_cpu_seconds_total', 'User and system CPU time spent, in seconds');
  const rss = r.gauge('process_resident_memory_bytes', 'Resident memory size, in bytes');
  const heapBytes = r.gauge('process_heap_bytes', 'Process heap size, in bytes');
  const startTime = r.gauge(
    'process_start_time_seconds',
    'Start time of the process since the Unix epoch, in seconds',
  );
  const fds = r.gauge('process_open_fds', 'Open file descriptors');
  const fdsMax = r.gauge('process_max_fds', 'Maximum number of open file descriptors');
  const heapTotal = r.gauge('nodejs_heap_size_total_bytes', 'V8 heap size, in bytes');
  const heapUsed = r.gauge('nodejs_heap_size_used_bytes', 'V8 heap used, in bytes');
  const external = r.gauge(
    'nodejs_external_memory_bytes',
    'Memory of C++ objects bound to JavaScript objects, in bytes',
  );
  const arrayBuffers = r.gauge(
    'nodejs_array_buffers_bytes',
    'Memory of ArrayBuffers and SharedArrayBuffers, in bytes',
  );
  const heapLimit = r.gauge('nodejs_heap_size_limit_bytes', 'V8 heap size limit, in bytes');
  const spaceUsed = r.gauge('nodejs_heap_space_size_used_bytes', 'V8 heap space used, by space, in bytes');
  const spaceTotal = r.gauge('nodejs_heap_space_size_total_bytes', 'V8 heap space size, by space, in bytes');
  const resources = r.gauge(
    'nodejs_active_resources',
    'Active resources keeping the event loop alive, by type',
  );
  const lagMean = r.gauge(
    'nodejs_eventloop_lag_mean_seconds',
    'Mean event-loop delay since the last scrape, in seconds',
  );
  const lagMax = r.gauge(
    'nodejs_eventloop_lag_max_seconds',
    'Largest event-loop delay since the last scrape, in seconds',
  );
  const lagP99 = r.gauge(
    'nodejs_eventloop_lag_p99_seconds',
    '99th percentile event-loop delay since the last scrape, in seconds',
  );
  const gc = r.histogram(
    'nodejs_gc_duration_seconds',
    'Garbage collection pauses, by kind, in seconds',
    [0.001, 0.01, 0.1, 1, 2, 5],
  );
  const loopActive = r.counter(
    'nodejs_eventloop_active_seconds_total',
    "Time the main thread's event loop spent running callbacks rather than waiting, in seconds (its utilisation over a span is this counter's increase divided by the span)",
  );
  const version = r.gauge('nodejs_version_info', 'Node.js version');

  const [major, minor, patch] = process.versions.node.split('.').map(Number);
  version.set(1, { version: process.version, major: major ?? 0, minor: minor ?? 0, patch: patch ?? 0 });
  startTime.set(Math.round(Date.now() / 1000 - process.uptime()));
  const limit = maxFds();
  if (limit !== null) fdsMax.set(limit);

  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  const gcObserver = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = (entry as unknown as { detail?: { kind?: number } }).detail?.kind;
      gc.observe(entry.duration / 1000, { kind: GC_KINDS[kind ?? -1] ?? 'other' });
    }
  });
  gcObserver.observe({ entryTypes: ['gc'] });

  let lastCpu = process.cpuUsage();
  let lastLoop = performance.eventLoopUtilization();
  r.onCollect(() => {
    const nowLoop = performance.eventLoopUtilization();
    loopActive.inc(Math.max(0, nowLoop.active - lastLoop.active) / 1000);
    lastLoop = nowLoop;
    const cpu = process.cpuUsage();
    const user = Math.max(0, cpu.user - lastCpu.user) / 1e6;
    const system = Math.max(0, cpu.system - lastCpu.system) / 1e6;
    lastCpu = cpu;
    cpuUser.inc(user);
    cpuSystem.inc(system);
    cpuTotal.inc(user + system);
    const mem = process.memoryUsage();
    rss.set(mem.rss);
    heapBytes.set(mem.heapTotal);
    heapTotal.set(mem.heapTotal);
    heapUsed.set(mem.heapUsed);
    external.set(mem.external);
    arrayBuffers.set(mem.arrayBuffers);
    heapLimit.set(getHeapStatistics().heap_size_limit);
    for (const s of getHeapSpaceStatistics()) {
      spaceUsed.set(s.space_used_size, { space: s.space_name });
      spaceTotal.set(s.space_size, { space: s.space_name });
    }
    const open = openFds();
    if (open !== null) fds.set(open);
    const counts = new Map<string, number>();
    for (const type of process.getActiveResourcesInfo()) counts.set(type, (counts.get(type) ?? 0) + 1);
    resources.reset();
    for (const [type, n] of counts) resources.set(n, { type });
    // The delay histogram is in nanoseconds; an idle loop has no samples yet (NaN), shown as 0.
    const ns = (v: number) => (Number.isFinite(v) ? v / 1e9 : 0);
    lagMean.set(ns(loop.mean));
    lagMax.set(ns(loop.max));
    lagP99.set(ns(loop.percentile(99)));
    loop.reset();
  });

  return () => {
    loop.disable();
    gcObserver.disconnect();
  };
}
