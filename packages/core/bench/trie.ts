/**
 * State-trie benchmark: build time, the cost of a block-sized batch update, and proof throughput,
 * for tries of 10k, 100k and 1M random keys. Run: node packages/core/dist/bench/trie.js
 *
 * Timings alone do not travel between machines, so the run also measures this machine's raw
 * SHA-256 rate on 64-byte inputs and expresses each update as "hash-equivalents" (its time divided
 * by the time of one raw hash), next to the number of trie hashes it actually computed: the gap
 * between the two is the trie's own overhead. Rates and ratios use the process's CPU time, which a
 * busy shared machine distorts far less than wall time; wall times are printed alongside.
 */
import { hash, randomBytes } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { sha256 } from '../src/crypto/hash.js';
import { trieHashCount } from '../src/merkle/hashing.js';
import { MerkleTrie, type TrieChange, verifyProof } from '../src/merkle/index.js';

const SIZES = [10_000, 100_000, 1_000_000];
const BATCH = 6_000;
const UPDATE_RUNS = 7;
const PROOFS = 20_000;

interface Timed<T> {
  value: T;
  wall: number;
  cpu: number;
}

function timed<T>(f: () => T): Timed<T> {
  const cpu0 = process.cpuUsage();
  const wall0 = process.hrtime.bigint();
  const value = f();
  const wall = Number(process.hrtime.bigint() - wall0) / 1e9;
  const { user, system } = process.cpuUsage(cpu0);
  return { value, wall, cpu: (user + system) / 1e6 };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

function fmt(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

function randomKeys(n: number): Uint8Array[] {
  const raw = randomBytes(n * 32);
  const out: Uint8Array[] = new Array(n);
  for (let i = 0; i < n; i++) out[i] = raw.subarray(i * 32, i * 32 + 32);
  return out;
}

/** Raw SHA-256 over 64 bytes, hashes per second, through the same primitive the trie uses. */
function rawHashRate(hashFn: (input: Uint8Array) => unknown): number {
  const input = randomBytes(64);
  for (let i = 0; i < 50_000; i++) hashFn(input);
  let n = 0;
  let cpu = 0;
  while (cpu < 1) {
    cpu += timed(() => {
      for (let i = 0; i < 20_000; i++) hashFn(input);
    }).cpu;
    n += 20_000;
  }
  return n / cpu;
}

// A full collection before reading the heap makes the per-key figure mean live memory, not
// whatever garbage the build left behind.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function heapMiB(): number {
  gc();
  return process.memoryUsage().heapUsed / 2 ** 20;
}

// The trie's primitive: crypto.hash returning a binary string (see src/merkle/hashing.ts).
const rateRaw = rawHashRate((x) => hash('sha256', x, 'binary'));
const rateBuffer = rawHashRate((x) => hash('sha256', x, 'buffer'));
const rateHelper = rawHashRate((x) => sha256(x));
console.log(
  `node ${process.version}, ${process.platform}/${process.arch}, ${cpus().length}x ${cpus()[0]?.model ?? '?'}, ` +
    `load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
);
console.log(
  `raw SHA-256, 64-byte input: ${fmt(rateRaw)} hashes/s (crypto.hash to a string, the trie's primitive); ` +
    `${fmt(rateBuffer)}/s (crypto.hash to a Buffer); ${fmt(rateHelper)}/s (crypto/hash.ts sha256)`,
);

for (const size of SIZES) {
  const keys = randomKeys(size);
  const value = randomBytes(32);
  const heapBefore = heapMiB();
  let h0 = trieHashCount();
  const build = timed(() => MerkleTrie.empty().update(keys.map((key) => ({ key, valueHash: value }))));
  const trie = build.value;
  const buildHashes = trieHashCount() - h0;
  const heapAfter = heapMiB();
  console.log(
    `${fmt(size)} keys: build ${fmt(build.cpu * 1000)} ms CPU (${fmt(build.wall * 1000)} ms wall), ` +
      `${fmt(size / build.cpu)} keys/s, ${fmt(buildHashes)} hashes (${fmt(buildHashes / size, 2)}/key); ` +
      `live heap +${fmt(heapAfter - heapBefore)} MiB (${fmt(((heapAfter - heapBefore) * 2 ** 20) / size)} B/key)`,
  );

  const root = trie.root;
  // A block-like batch: mostly rewrites of existing keys, some new keys, some deletions.
  const runs: Timed<MerkleTrie>[] = [];
  const hashCounts: number[] = [];
  for (let run = 0; run < UPDATE_RUNS; run++) {
    const changes: TrieChange[] = [];
    const fresh = randomKeys(500);
    const newValues = randomKeys(BATCH);
    for (let i = 0; i < 5_000; i++) {
      changes.push({ key: keys[(Math.random() * size) | 0]!, valueHash: newValues[i]! });
    }
    for (let i = 0; i < 500; i++) changes.push({ key: fresh[i]!, valueHash: newValues[5_000 + i]! });
    for (let i = 0; i < 500; i++) changes.push({ key: keys[(Math.random() * size) | 0]!, valueHash: null });
    h0 = trieHashCount();
    const r = timed(() => trie.update(changes));
    hashCounts.push(trieHashCount() - h0);
    if (r.value.root.every((b, i) => b === root[i])) throw new Error('update had no effect');
    runs.push(r);
  }
  const cpuS = median(runs.map((r) => r.cpu));
  const wallS = median(runs.map((r) => r.wall));
  const updHashes = median(hashCounts);
  const equivalents = cpuS * rateRaw;
  console.log(
    `${fmt(size)} keys: update of ${fmt(BATCH)} keys (5,000 rewrites, 500 inserts, 500 deletes), ` +
      `median of ${UPDATE_RUNS}: ${fmt(cpuS * 1000, 1)} ms CPU (${fmt(wallS * 1000, 1)} ms wall); ` +
      `${fmt(updHashes)} hashes computed (${fmt(updHashes / BATCH, 2)}/key); ` +
      `CPU time = ${fmt(equivalents)} raw hashes (${fmt(equivalents / BATCH, 2)}/key, ` +
      `${fmt(equivalents / updHashes, 2)}x the hashes computed)`,
  );

  const probes: Uint8Array[] = [];
  for (let i = 0; i < PROOFS; i++) {
    probes.push(i % 2 === 0 ? keys[(Math.random() * size) | 0]! : randomBytes(32));
  }
  const proving = timed(() => probes.map((k) => trie.prove(k)));
  const proofs = proving.value;
  const claims = probes.map((k) => trie.getValueHash(k));
  let depth = 0;
  for (const p of proofs) depth += p.siblings.length;
  const verifying = timed(() => {
    let ok = 0;
    for (let i = 0; i < PROOFS; i++) if (verifyProof(root, probes[i]!, claims[i]!, proofs[i]!)) ok++;
    return ok;
  });
  if (verifying.value !== PROOFS) throw new Error(`${PROOFS - verifying.value} proofs failed to verify`);
  console.log(
    `${fmt(size)} keys: proofs (half members, half absent), per CPU second: generate ${fmt(PROOFS / proving.cpu)}, ` +
      `verify ${fmt(PROOFS / verifying.cpu)}; mean depth ${fmt(depth / PROOFS, 1)} siblings`,
  );
}
