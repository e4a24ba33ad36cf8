/**
 * The fuzzing engine behind `npm run fuzz`: a seeded PRNG, byte and JSON mutators, and a runner
 * that feeds each target its share of the inputs and sorts every outcome into accepted, rejected
 * (a classified error: the project's own error types, which callers turn into clear answers) or a
 * finding: any other exception (a crash), a call slower than the hang budget, or an unhandled
 * rejection while the target ran. Findings are saved as hex under the artifacts folder so that
 * `--target T --replay FILE` reproduces one.
 *
 * Deterministic: each target draws from its own generator, derived from the run seed and the
 * target name, so `--seed S --target T --inputs N` repeats exactly that target's part of a run.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';

// ---------------------------------------------------------------------------------------------
// Randomness

/** sfc32: small, fast, good enough for fuzzing, and seedable from any string. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: string) {
    const h = createHash('sha256').update(seed).digest();
    this.a = h.readUInt32LE(0);
    this.b = h.readUInt32LE(4);
    this.c = h.readUInt32LE(8);
    this.d = h.readUInt32LE(12);
    for (let i = 0; i < 12; i++) this.u32();
  }

  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }
  /** Uniform integer in [0, n). */
  int(n: number): number {
    return n <= 1 ? 0 : Math.floor((this.u32() / 0x1_0000_0000) * n);
  }
  chance(p: number): boolean {
    return this.u32() / 0x1_0000_0000 < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff;
    return out;
  }
  /** Small sizes most of the time, sometimes large ones. */
  size(max: number): number {
    const r = this.int(10);
    if (r < 6) return this.int(Math.min(max, 64) + 1);
    if (r < 9) return this.int(Math.min(max, 1024) + 1);
    return this.int(max + 1);
  }
}

// ---------------------------------------------------------------------------------------------
// Byte mutators

const INTERESTING_U8 = [0x00, 0x01, 0x02, 0x7f, 0x80, 0x81, 0x82, 0x84, 0xfe, 0xff];
const INTERESTING_U32 = [
  0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff,
];

function setUint(out: Uint8Array, at: number, width: number, value: number, little: boolean): void {
  for (let i = 0; i < width && at + i < out.length; i++) {
    const shift = little ? i * 8 : (width - 1 - i) * 8;
    out[at + i] = Math.floor(value / 2 ** shift) & 0xff;
  }
}

/** One mutation of `input`; `others` are the target's other seeds (for splicing). */
export function mutateBytes(rng: Rng, input: Uint8Array, others: readonly Uint8Array[]): Uint8Array {
  const len = input.length;
  const op = rng.int(12);
  switch (op) {
    case 0: {
      // Flip 1–4 bits.
      if (len === 0) return rng.bytes(1);
      const out = input.slice();
      for (let n = 1 + rng.int(4); n > 0; n--) out[rng.int(len)]! ^= 1 << rng.int(8);
      return out;
    }
    case 1: {
      // One byte to a random or boundary value.
      if (len === 0) return Uint8Array.of(rng.pick(INTERESTING_U8));
      const out = input.slice();
      out[rng.int(len)] = rng.chance(0.5) ? rng.pick(INTERESTING_U8) : rng.u32() & 0xff;
      return out;
    }
    case 2: {
      // Insert random bytes.
      const at = rng.int(len + 1);
      const ins = rng.bytes(1 + rng.int(rng.chance(0.8) ? 8 : 256));
      const out = new Uint8Array(len + ins.length);
      out.set(input.subarray(0, at));
      out.set(ins, at);
      out.set(input.subarray(at), at + ins.length);
      return out;
    }
    case 3: {
      // Delete a range.
      if (len === 0) return input;
      const at = rng.int(len);
      const n = 1 + rng.int(Math.min(len - at, rng.chance(0.8) ? 8 : 512));
      const out = new Uint8Array(len - n);
      out.set(input.subarray(0, at));
      out.set(input.subarray(at + n), at);
      return out;
    }
    case 4:
      // Truncate.
      return input.slice(0, rng.int(len + 1));
    case 5: {
      // Duplicate a range in place (repeated fields, doubled list items).
      if (len === 0) return input;
      const at = rng.int(len);
      const n = 1 + rng.int(Math.min(len - at, 64));
      const chunk = input.subarray(at, at + n);
      const out = new Uint8Array(len + n);
      out.set(input.subarray(0, at + n));
      out.set(chunk, at + n);
      out.set(input.subarray(at + n), at + 2 * n);
      return out;
    }
    case 6:
    case 7: {
      // A length field (u32/u16 big-endian as in the codec and TPM, little-endian as in SPDM,
      // u24, or a DER long-form length) set to a boundary or to what is left.
      if (len === 0) return input;
      const out = input.slice();
      const at = rng.int(len);
      const width = rng.pick([1, 2, 3, 4]);
      const remaining = len - at - width;
      const value = rng.chance(0.5)
        ? rng.pick(INTERESTING_U32)
        : Math.max(0, remaining + rng.pick([-2, -1, 0, 1, 2, 1000]));
      setUint(out, at, width, value % 2 ** (8 * width), rng.chance(0.3));
      return out;
    }
    case 8: {
      // Splice: a prefix of this input with a suffix of another.
      const other = others.length > 0 ? rng.pick(others) : rng.bytes(rng.size(256));
      const a = rng.int(len + 1);
      const b = rng.int(other.length + 1);
      const out = new Uint8Array(a + other.length - b);
      out.set(input.subarray(0, a));
      out.set(other.subarray(b), a);
      return out;
    }
    case 9: {
      // Overwrite a range with random bytes.
      if (len === 0) return input;
      const out = input.slice();
      const at = rng.int(len);
      const n = 1 + rng.int(Math.min(len - at, 32));
      out.set(rng.bytes(n), at);
      return out;
    }
    case 10: {
      // Copy one range of the input over another (moves tags, lengths and keys around).
      if (len < 2) return input;
      const out = input.slice();
      const from = rng.int(len);
      const to = rng.int(len);
      const n = 1 + rng.int(Math.min(len - from, len - to, 32));
      out.set(input.subarray(from, from + n), to);
      return out;
    }
    default: {
      // Increment or decrement one byte (off-by-one lengths and tags).
      if (len === 0) return input;
      const out = input.slice();
      const at = rng.int(len);
      out[at] = (out[at]! + (rng.chance(0.5) ? 1 : 255)) & 0xff;
      return out;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// JSON values

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const INTERESTING_NUMBERS = [
  0,
  -0,
  1,
  -1,
  2,
  0.5,
  -0.5,
  100,
  101,
  1000,
  1001,
  2 ** 31 - 1,
  2 ** 31,
  2 ** 32,
  2 ** 53 - 1,
  2 ** 53,
  2 ** 64,
  -(2 ** 53),
  1e21,
  1e308,
  -1e308,
  5e-324,
  1.5,
];
const INTERESTING_STRINGS = [
  '',
  '0',
  '-1',
  'latest',
  '0x',
  '00',
  'zz',
  '18446744073709551615',
  '18446744073709551616',
  '9999999999999999999',
  '99999999999999999999',
  '1e3',
  ' 1',
  'NaN',
  '__proto__',
  'constructor',
  'toString',
  'unc1',
  'unc1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq',
  'A'.repeat(64),
  'f'.repeat(64),
  '0'.repeat(64),
  `0x${'a'.repeat(64)}`,
  'é',
  '\u0000',
  '\ud800',
  '💥',
];

/** `extra` are values of the domain (real ids, addresses, heights) mixed into random ones. */
export function randomJson(rng: Rng, depth = 0, extra: readonly Json[] = []): Json {
  const r = rng.int(depth > 3 ? 6 : 9);
  switch (r) {
    case 0:
      return null;
    case 1:
      return rng.chance(0.5);
    case 2:
      return rng.chance(0.6) ? rng.pick(INTERESTING_NUMBERS) : rng.int(2 ** 31) - rng.int(2 ** 16);
    case 3:
      return rng.pick(INTERESTING_STRINGS);
    case 4: {
      const n = rng.size(80);
      let s = '';
      for (let i = 0; i < n; i++)
        s += String.fromCharCode(rng.chance(0.9) ? 0x20 + rng.int(95) : rng.int(0x10000));
      return s;
    }
    case 5:
      return extra.length > 0 ? rng.pick(extra) : rng.pick(INTERESTING_STRINGS);
    case 6:
    case 7: {
      const n = rng.int(6);
      return Array.from({ length: n }, () => randomJson(rng, depth + 1, extra));
    }
    default: {
      const out: { [key: string]: Json } = {};
      const n = rng.int(5);
      for (let i = 0; i < n; i++) {
        const key = rng.chance(0.3) ? rng.pick(INTERESTING_STRINGS) : String(randomJson(rng, 9, extra));
        if (key === '__proto__')
          Object.defineProperty(out, key, {
            value: randomJson(rng, depth + 1, extra),
            enumerable: true,
            writable: true,
            configurable: true,
          });
        else out[key] = randomJson(rng, depth + 1, extra);
      }
      return out;
    }
  }
}

function mutateString(rng: Rng, s: string): string {
  if (s.length === 0 || rng.chance(0.2)) return String(randomJson(rng, 9));
  const at = rng.int(s.length);
  switch (rng.int(5)) {
    case 0:
      return s.slice(0, at);
    case 1:
      return s.slice(0, at) + String.fromCharCode(rng.int(0x80)) + s.slice(at + 1);
    case 2:
      return s.slice(0, at) + s.slice(at + 1);
    case 3:
      return s.slice(0, at) + s.slice(at, at + 1 + rng.int(16)).repeat(1 + rng.int(4)) + s.slice(at);
    default:
      return s.toUpperCase();
  }
}

/** Replaces, removes or adds one node somewhere in a JSON value. */
export function mutateJson(rng: Rng, value: Json, extra: readonly Json[] = [], depth = 0): Json {
  const descend = rng.chance(0.7);
  if (Array.isArray(value)) {
    const out = value.slice();
    if (descend && out.length > 0) {
      const i = rng.int(out.length);
      out[i] = mutateJson(rng, out[i]!, extra, depth + 1);
    } else if (rng.chance(0.5) && out.length > 0) out.splice(rng.int(out.length), 1);
    else out.splice(rng.int(out.length + 1), 0, randomJson(rng, depth + 1, extra));
    return out;
  }
  if (value !== null && typeof value === 'object') {
    const out: { [key: string]: Json } = { ...value };
    const keys = Object.keys(out);
    if (descend && keys.length > 0) {
      const k = rng.pick(keys);
      out[k] = mutateJson(rng, out[k]!, extra, depth + 1);
    } else if (rng.chance(0.5) && keys.length > 0) delete out[rng.pick(keys)];
    else out[String(randomJson(rng, 9, extra))] = randomJson(rng, depth + 1, extra);
    return out;
  }
  if (typeof value === 'string' && rng.chance(0.6)) return mutateString(rng, value);
  if (typeof value === 'number' && rng.chance(0.5))
    return value + rng.pick([-1, 1, 0.5, 2 ** 53, -(2 ** 53)]);
  return randomJson(rng, depth, extra);
}

// ---------------------------------------------------------------------------------------------
// Targets and the runner

export interface FuzzTarget {
  readonly name: string;
  /** What the target reaches, for the report. */
  readonly description: string;
  /** Share of the inputs when a run covers several targets. */
  readonly weight: number;
  /** Valid encodings (bytes) or JSON texts to start mutating from. */
  readonly seeds: readonly Uint8Array[];
  /** 'json' targets mutate and generate JSON; their inputs are UTF-8 JSON texts. */
  readonly kind?: 'bytes' | 'json';
  /** Domain values mixed into random JSON (real ids, addresses). */
  readonly jsonExtras?: readonly Json[];
  /** Optional repair after mutation, e.g. re-signing a body so the input gets past the signature. */
  fixup?(rng: Rng, input: Uint8Array): Uint8Array;
  /**
   * Feeds one input; returning is acceptance, throwing a classified error is rejection. Returning
   * `false` is acceptance of an input not worth mutating further (e.g. gossip the node rejected).
   */
  run(input: Uint8Array): unknown;
  /** True for the errors callers turn into clear answers (the project's own error types). */
  classified(err: unknown): boolean;
  /**
   * The input is written to `<artifacts>/<name>-current.hex` before each call: for targets that
   * reach native code (image and model parsers), where a crash takes the process down with it.
   */
  readonly persistInput?: boolean;
  /** Optional counts the target keeps of what its inputs reached (e.g. gossip verdicts). */
  readonly tally?: Map<string, number>;
}

export interface Finding {
  target: string;
  kind: 'crash' | 'hang' | 'unhandled';
  error: string;
  stack: string;
  inputHex: string;
  file: string | null;
  ms: number;
  /** How many inputs gave the same finding (same error class, message shape and top frame). */
  count: number;
}

export interface TargetStats {
  name: string;
  inputs: number;
  accepted: number;
  rejected: number;
  findings: number;
  maxMs: number;
  totalMs: number;
  tally?: Record<string, number>;
}

export interface FuzzReport {
  seed: string;
  inputs: number;
  targets: TargetStats[];
  findings: Finding[];
  elapsedMs: number;
}

export interface FuzzOptions {
  inputs: number;
  seed: string;
  /** Inputs slower than this are reported as hangs. Default 1000 ms. */
  hangMs?: number;
  /** Where findings are saved as hex; null saves nothing. */
  artifactsDir?: string | null;
  /** A call blocked this long is a true hang: the watchdog saves the input and kills the process. */
  watchdogMs?: number;
  onProgress?: (line: string) => void;
}

/** Splits `total` over the targets by weight, exactly (the remainder goes to the heaviest). */
export function shares(targets: readonly FuzzTarget[], total: number): number[] {
  const sum = targets.reduce((a, t) => a + t.weight, 0);
  const out = targets.map((t) => Math.floor((total * t.weight) / sum));
  let rest = total - out.reduce((a, b) => a + b, 0);
  const order = targets.map((_, i) => i).sort((a, b) => targets[b]!.weight - targets[a]!.weight);
  for (let k = 0; rest > 0; k++, rest--) out[order[k % order.length]!]!++;
  return out;
}

function toHexString(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

function describe(err: unknown): { error: string; stack: string; signature: string } {
  if (err instanceof Error) {
    const stack = err.stack ?? `${err.name}: ${err.message}`;
    const frame = stack.split('\n').find((l) => l.trim().startsWith('at ')) ?? '';
    const shape = err.message
      .replace(/\d+/g, 'N')
      .replace(/[0-9a-f]{16,}/g, 'H')
      .slice(0, 120);
    return {
      error: `${err.name}: ${err.message}`.slice(0, 500),
      stack,
      signature: `${err.name}|${shape}|${frame.trim()}`,
    };
  }
  const s = String(err);
  return { error: `non-Error thrown: ${s.slice(0, 200)}`, stack: '', signature: `non-error|${typeof err}` };
}

/** The most recent inputs are kept per target so good mutants breed (bounded, replaced at random). */
const POOL_LIMIT = 256;

/** A watchdog thread: a call that blocks the event loop past `ms` cannot be timed from inside. */
function startWatchdog(
  ms: number,
  dir: string | null,
): { begin(t: string, input: Uint8Array): void; end(): void; stop(): void } {
  const CAP = 1 << 20;
  const sab = new SharedArrayBuffer(16 + 64 + CAP);
  const clock = new Float64Array(sab, 0, 1);
  const lens = new Int32Array(sab, 8, 2);
  const name = new Uint8Array(sab, 16, 64);
  const data = new Uint8Array(sab, 80, CAP);
  const code = `
    const { workerData } = require('node:worker_threads');
    const { writeFileSync, mkdirSync } = require('node:fs');
    const { join } = require('node:path');
    const { sab, ms, dir } = workerData;
    const clock = new Float64Array(sab, 0, 1);
    const lens = new Int32Array(sab, 8, 2);
    const name = new Uint8Array(sab, 16, 64);
    const data = new Uint8Array(sab, 80, ${CAP});
    setInterval(() => {
      const start = clock[0];
      if (start === 0 || Date.now() - start < ms) return;
      const target = Buffer.from(name.subarray(0, lens[1])).toString();
      const hex = Buffer.from(data.subarray(0, Math.min(lens[0], ${CAP}))).toString('hex');
      let file = '(not saved)';
      if (dir) {
        mkdirSync(dir, { recursive: true });
        file = join(dir, target + '-hang-' + Date.now() + '.hex');
        writeFileSync(file, hex + '\\n');
      }
      process.stderr.write('\\nfuzz: HANG in ' + target + ': one call has blocked for over ' + ms + ' ms; input saved to ' + file + '\\n');
      process.kill(process.pid, 'SIGKILL');
    }, Math.min(1000, ms / 2));
  `;
  const worker = new Worker(code, { eval: true, workerData: { sab, ms, dir } });
  worker.unref();
  return {
    begin(t, input) {
      const n = Buffer.from(t).subarray(0, 64);
      name.set(n);
      lens[1] = n.length;
      lens[0] = input.length;
      data.set(input.length <= CAP ? input : input.subarray(0, CAP));
      clock[0] = Date.now();
    },
    end() {
      clock[0] = 0;
    },
    stop() {
      void worker.terminate();
    },
  };
}

/** Makes one input for a target: a random one, or a seed or pool member mutated 1–5 times. */
export function nextInput(rng: Rng, target: FuzzTarget, pool: readonly Uint8Array[]): Uint8Array {
  const json = target.kind === 'json';
  const from = pool.length > 0 && rng.chance(0.3) ? pool : target.seeds;
  if (json) {
    if (from.length === 0 || rng.chance(0.1)) {
      return Buffer.from(JSON.stringify(randomJson(rng, 0, target.jsonExtras ?? [])));
    }
    let v: Json;
    try {
      v = JSON.parse(Buffer.from(rng.pick(from)).toString('utf8')) as Json;
    } catch {
      // A pool member whose text was damaged on purpose: start from a seed instead.
      v = JSON.parse(Buffer.from(rng.pick(target.seeds)).toString('utf8')) as Json;
    }
    for (let n = 1 + rng.int(3); n > 0; n--) v = mutateJson(rng, v, target.jsonExtras ?? []);
    const text = Buffer.from(JSON.stringify(v) ?? 'null');
    // Now and then the text itself is damaged, for the parsers that take raw JSON.
    return rng.chance(0.05) ? mutateBytes(rng, text, []) : text;
  }
  if (from.length === 0 || rng.chance(0.05)) return rng.bytes(rng.size(4096));
  let out = rng.pick(from);
  for (let n = 1 + (rng.chance(0.5) ? 0 : rng.int(5)); n > 0; n--) out = mutateBytes(rng, out, target.seeds);
  return target.fixup && rng.chance(0.3) ? target.fixup(rng, out) : out;
}

/** Runs one input through a target and sorts the outcome. */
export async function runOne(
  target: FuzzTarget,
  input: Uint8Array,
): Promise<{ outcome: 'accepted' | 'rejected' | 'crash'; err?: unknown; ms: number; breed?: boolean }> {
  const t0 = performance.now();
  try {
    let r = target.run(input);
    if (r && typeof (r as Promise<unknown>).then === 'function') r = await r;
    return { outcome: 'accepted', ms: performance.now() - t0, breed: r !== false };
  } catch (err) {
    const ms = performance.now() - t0;
    return target.classified(err) ? { outcome: 'rejected', ms } : { outcome: 'crash', err, ms };
  }
}

export async function runFuzz(targets: readonly FuzzTarget[], opts: FuzzOptions): Promise<FuzzReport> {
  const hangMs = opts.hangMs ?? 1000;
  const dir = opts.artifactsDir ?? null;
  const counts = shares(targets, opts.inputs);
  const findings = new Map<string, Finding>();
  const stats: TargetStats[] = [];
  const started = performance.now();
  const watchdog = startWatchdog(opts.watchdogMs ?? 60_000, dir);
  let current = '';
  let unhandled: unknown[] = [];
  const onUnhandled = (err: unknown) => unhandled.push(err);
  process.on('unhandledRejection', onUnhandled);
  process.on('uncaughtException', onUnhandled);

  const record = (target: string, kind: Finding['kind'], err: unknown, input: Uint8Array, ms: number) => {
    const d = describe(err);
    const key = `${target}|${kind}|${d.signature}`;
    const seen = findings.get(key);
    if (seen) {
      seen.count++;
      return;
    }
    const inputHex = toHexString(input);
    let file: string | null = null;
    if (dir) {
      mkdirSync(dir, { recursive: true });
      file = join(dir, `${target}-${kind}-${findings.size + 1}.hex`);
      writeFileSync(file, `${inputHex}\n`);
    }
    findings.set(key, { target, kind, error: d.error, stack: d.stack, inputHex, file, ms, count: 1 });
    opts.onProgress?.(`  ${kind} in ${target}: ${d.error}${file ? ` (input: ${file})` : ''}`);
  };

  try {
    for (const [i, target] of targets.entries()) {
      current = target.name;
      const n = counts[i]!;
      const rng = new Rng(`${opts.seed}/${target.name}`);
      const pool: Uint8Array[] = [];
      const s: TargetStats = {
        name: target.name,
        inputs: 0,
        accepted: 0,
        rejected: 0,
        findings: 0,
        maxMs: 0,
        totalMs: 0,
      };
      const t0 = performance.now();
      let lastReport = t0;
      for (let k = 0; k < n; k++) {
        const input = nextInput(rng, target, pool);
        if (target.persistInput && dir) {
          mkdirSync(dir, { recursive: true });
          writeFileSync(join(dir, `${target.name}-current.hex`), `${toHexString(input)}\n`);
        }
        watchdog.begin(current, input);
        const r = await runOne(target, input);
        watchdog.end();
        s.inputs++;
        s.totalMs += r.ms;
        if (r.ms > s.maxMs) s.maxMs = r.ms;
        if (r.outcome === 'accepted') {
          s.accepted++;
          if (!r.breed) {
            // Accepted without a crash, but refused: not a parent for further mutants.
          } else if (pool.length < POOL_LIMIT) pool.push(input);
          else pool[rng.int(POOL_LIMIT)] = input;
        } else if (r.outcome === 'rejected') s.rejected++;
        else {
          s.findings++;
          record(target.name, 'crash', r.err, input, r.ms);
        }
        if (r.ms > hangMs) {
          s.findings++;
          record(
            target.name,
            'hang',
            new Error(`took ${r.ms.toFixed(0)} ms (budget ${hangMs} ms)`),
            input,
            r.ms,
          );
        }
        if (unhandled.length > 0) {
          for (const e of unhandled) record(target.name, 'unhandled', e, input, r.ms);
          s.findings += unhandled.length;
          unhandled = [];
        }
        const now = performance.now();
        if (now - lastReport > 10_000) {
          lastReport = now;
          opts.onProgress?.(
            `  ${target.name}: ${k + 1}/${n} (${Math.round(((k + 1) * 1000) / (now - t0))}/s)`,
          );
        }
      }
      // Late rejections of this target's promises still count against it.
      await new Promise((r) => setImmediate(r));
      for (const e of unhandled) record(target.name, 'unhandled', e, new Uint8Array(), 0);
      s.findings += unhandled.length;
      unhandled = [];
      stats.push(s);
      if (target.tally && target.tally.size > 0) {
        s.tally = Object.fromEntries([...target.tally].sort((a, b) => b[1] - a[1]));
      }
      opts.onProgress?.(
        `${target.name.padEnd(18)} ${String(s.inputs).padStart(8)} inputs  ${String(s.accepted).padStart(8)} accepted  ${String(s.rejected).padStart(8)} rejected  ${s.findings} findings  max ${s.maxMs.toFixed(1)} ms  ${Math.round((s.inputs * 1000) / Math.max(1, s.totalMs))}/s`,
      );
      if (s.tally) {
        const parts = Object.entries(s.tally).map(([k, v]) => `${k} ${v}`);
        opts.onProgress?.(`${''.padEnd(18)} ${parts.join(', ')}`);
      }
    }
  } finally {
    watchdog.stop();
    process.off('unhandledRejection', onUnhandled);
    process.off('uncaughtException', onUnhandled);
  }
  return {
    seed: opts.seed,
    inputs: stats.reduce((a, s) => a + s.inputs, 0),
    targets: stats,
    findings: [...findings.values()],
    elapsedMs: performance.now() - started,
  };
}
