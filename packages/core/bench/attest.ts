/**
 * Attestation benchmark (PROTOCOL.md §4): what registering and heartbeating chips costs a node.
 * Run: npm run bench:attest [-- --chips N] [-- --seconds S] [-- --epoch-only] [-- --blocks B]
 *   [-- --answering A] [-- --pool-threads T] [-- --stream] [-- --warm-keys] [-- --rounds R]
 *   [-- --modes m1,m2]
 *
 * 1. This machine's raw single-core verify rates with node:crypto (cached KeyObjects), and what
 *    importing a key costs, so that the other numbers can be read on any machine.
 * 2. Per attestation profile: registrations/s (verifyEvidence with the full chain checks at a
 *    pinned block time, on the committed fixtures) and heartbeats/s (poci/attest.ts
 *    verifyHeartbeat against the registered key), each as a ratio to the matching raw verify.
 * 3. One epoch of a chain with N dev-soft chips (default 100,000) that answer every challenge: each
 *    block challenges one of M = epochBlocks / 4 classes (drawn from its beacon), the chips of that
 *    class answer in fee-free Heartbeat transactions in the next block (4 per chip per epoch in
 *    expectation), and every block is executed with BlockExecutor, as a node does. CPU time per
 *    epoch, per answer. `--blocks B` measures the epoch's first B blocks only (per-answer and
 *    per-block costs at 1,000,000 chips without signing 4,000,000 answers first). `--answering A`:
 *    only the first A chips have key pairs and answer; the others are registered with 32 random
 *    bytes as their key and stay silent (a key pair per chip was most of the setup at 1,000,000).
 *    The same blocks are then executed again from the same state with the node's verify pool
 *    (packages/node VerifyPool and BlockPreverifier, loaded from its build; T worker threads,
 *    default the node's, a core but one; 0 skips this): in the consensus driver's order (a block's
 *    signatures on the pool, then the block), the same with the main thread checking its share
 *    while it waits, and pipelined (the next block's on the pool while this one executes), without
 *    and with the main thread sharing the next block's checks once it is done executing, and
 *    optimistic (a block's checks on the pool while that block executes, taking on trust the checks
 *    in flight and settling once their results are in: the consensus driver's order for a
 *    proposal since it executes optimistically), without and with the main thread helping, in
 *    wall-clock time, with the main thread's and the pool workers' own CPU per answer (Linux) beside it
 *    and the rate those CPU figures allow on the machine's cores when idle; each must end
 *    in the same state as the inline run. Each mode runs `--rounds R` times (default 3), the modes
 *    interleaved with a different one first each round, and each run is compared with the raw
 *    one-key Ed25519 rate sampled right before and after it; a mode reports the median of its runs'
 *    ratios and their lowest and highest. `--modes m1,m2` runs only those modes (node, shared,
 *    pipelined, pipelined-shared, optimistic, optimistic-shared).
 *
 * Rates are operations per second of process CPU time (process.cpuUsage), measured after a
 * warm-up in short rounds interleaved with what they are compared with, the best round counting
 * (this machine is shared; other load only slows a round down). The epoch is one long run, so its
 * raw Ed25519 reference is sampled in between its blocks and averaged instead. The last line is a
 * JSON summary prefixed `json: `. Progress goes to stderr.
 */
import {
  constants,
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  sign,
  verify,
} from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import {
  type Evidence,
  parseCertificate,
  parseCertificates,
  pemToDer,
  rsaAllowListChipId,
  type SubjectPublicKey,
  splitSpdmReport,
  type TrustContext,
  verifyChain,
  verifyEvidence,
} from '../src/attestation/index.js';
import { fromHex, toHex, utf8 } from '../src/bytes.js';
import {
  DEFAULT_GENESIS_ALLOCATION_BPS,
  DEFAULT_MAX_SUPPLY,
  type Genesis,
  genesisAllocation,
  genesisStateWrites,
  parseGenesis,
} from '../src/chain/genesis.js';
import { DEFAULT_PARAMS, feeActions, minimumFee } from '../src/chain/params.js';
import {
  type Action,
  envelopeFromSigned,
  type HeartbeatAnswer,
  MAX_ACTIONS_PER_TX,
  MAX_ANSWERS_PER_HEARTBEAT,
  signedTransactionCodec,
  signTransaction,
  type Transaction,
  type TxEnvelope,
  verifyTransactionSignature,
} from '../src/chain/transaction.js';
import { addressFromPublicKey, encodeAddress } from '../src/crypto/address.js';
import { ed25519PublicKey, ed25519Sign, ed25519Verify } from '../src/crypto/ed25519.js';
import { sha256 } from '../src/crypto/hash.js';
import { encode } from '../src/encoding/codec.js';
import { DEV_SOFT_VENDOR, devSoftChipId, verifyHeartbeat } from '../src/poci/attest.js';
import { type Chip, getChip, putChip } from '../src/poci/chips.js';
import type { HeartbeatEvidence } from '../src/poci/evidence.js';
import {
  blockChallengeClass,
  challengeClasses,
  chipClass,
  epochStart,
  heartbeatChallenge,
  MAX_CHALLENGES_PER_EPOCH,
  registrationMessage,
} from '../src/poci/liveness.js';
import { DEFAULT_POCI_PARAMS, type PociParams } from '../src/poci/params.js';
import type { Profile } from '../src/poci/registry.js';
import { type BlockContext, BlockExecutor } from '../src/state/execute.js';
import { executeBlockAssuming, settleAssumed } from '../src/state/optimistic.js';
import { MemoryState, StateOverlay, type StateReader } from '../src/state/store.js';

// ---------------------------------------------------------------------------------------------
// Arguments, formatting, timing
// ---------------------------------------------------------------------------------------------

function argValue(name: string): string | undefined {
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === name) {
      // An option given last, or followed by another option, has no value: refused, rather than
      // run the default (`--rounds` at the end of a command line silently ran 3 rounds).
      const value = argv[i + 1];
      if (value === undefined || value.startsWith('--')) throw new Error(`${name} needs a value`);
      return value;
    }
    if (a.startsWith(`${name}=`)) return a.slice(name.length + 1);
  }
  return undefined;
}

function positiveNumber(name: string, fallback: number, integer: boolean): number {
  const raw = argValue(name);
  if (raw === undefined) return fallback;
  const v = Number(raw);
  if (!Number.isFinite(v) || v <= 0 || (integer && !Number.isInteger(v))) {
    throw new Error(`${name} must be a positive ${integer ? 'integer' : 'number'}, got "${raw}"`);
  }
  return v;
}

const CHIPS = positiveNumber('--chips', 100_000, true);
/** Seconds per raw-rate and per-profile measurement. */
const SECONDS = positiveNumber('--seconds', 2, false);
/** Only part 3 (the epoch, which samples its own raw Ed25519 reference): for profiling and large N. */
const EPOCH_ONLY = process.argv.includes('--epoch-only');
/** Blocks of the epoch measured in part 3 (at most the epoch's). */
const MEASURED_BLOCKS = positiveNumber('--blocks', Number(DEFAULT_POCI_PARAMS.epochBlocks), true);
/** Chips that have key pairs and answer their challenges (the rest of the N stay silent). */
const ANSWERING = Math.min(CHIPS, positiveNumber('--answering', CHIPS, true));
/**
 * Worker threads of the verify pool for the pre-verified runs of part 3 (default: the node's, a
 * worker per core but one; `--pool-threads 0` skips them).
 */
/**
 * `--stream`: each block's answers are signed and its transactions built just before the block
 * executes (outside its measured CPU) and dropped after it, instead of all of them up front; the
 * chips keep a 32-byte seed each instead of a key pair. Memory is then the state plus 64 bytes per
 * answering chip, whatever the answers of the epoch (a full 1,000,000-chip epoch is 4,000,000). The
 * verify pool runs replay the stored blocks, so they are skipped.
 */
const STREAM = process.argv.includes('--stream');
/**
 * `--warm-keys`: before the measured window, core's Ed25519 KeyObject cache is filled with the
 * keys of the chips that answer in it (at most the cache's size), as on a node that saw them
 * answer in the previous epoch: the steady state, where the default cold start makes each chip's
 * first answer of the window import its key. (The warm-up verifies another message, so no answer's
 * own check is done ahead.)
 */
const WARM_KEYS = process.argv.includes('--warm-keys');
const POOL_THREADS =
  argValue('--pool-threads') === '0' || STREAM
    ? 0
    : positiveNumber('--pool-threads', Math.max(1, availableParallelism() - 1), true);

const ALL_POOL_MODES = [
  'node',
  'shared',
  'pipelined',
  'pipelined-shared',
  'optimistic',
  'optimistic-shared',
] as const;
/**
 * `--modes a,b`: only these verify-pool modes (default all six, in the order above). For profiling
 * one mode (`node --cpu-prof ... --modes optimistic-shared`) and for shorter timed runs.
 */
const POOL_MODES: readonly PoolMode[] = (() => {
  const raw = argValue('--modes');
  if (raw === undefined) return ALL_POOL_MODES;
  const modes = raw.split(',').map((m) => m.trim());
  for (const m of modes)
    if (!(ALL_POOL_MODES as readonly string[]).includes(m))
      throw new Error(`--modes: unknown mode "${m}" (one of ${ALL_POOL_MODES.join(', ')})`);
  return modes as PoolMode[];
})();
/**
 * `--rounds R` (default 3): each verify-pool mode runs R times, the modes interleaved (round 1 runs
 * every mode, then round 2 starts again with a different first mode, ...), each run with raw
 * Ed25519 sampled right before and after it, and its ratio taken against that raw rate. A mode's
 * ratio is the median of its runs, reported with its lowest and highest. A single run per mode in a
 * fixed order, compared with a raw rate averaged over the whole epoch, swung by up to 0.3 between
 * modes of one build on this shared 2-core machine (a burst of other load, GC and JIT state
 * carried from the mode before).
 */
const POOL_ROUNDS = positiveNumber('--rounds', 3, true);
// Without the pool there are no pool runs for these to shape: refused rather than ignored, so a
// command line never reads as measuring what it did not run.
if (POOL_THREADS === 0)
  for (const option of ['--modes', '--rounds'])
    if (argValue(option) !== undefined)
      throw new Error(`${option} shapes the verify-pool runs, which --pool-threads 0 and --stream leave out`);

function fmt(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

function cpuSeconds(since: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(since);
  return (d.user + d.system) / 1e6;
}

/**
 * CPU seconds of the calling thread alone (Linux: /proc/thread-self/stat, in clock ticks of 10 ms;
 * null elsewhere). Node 20 has no per-thread CPU clock; with workers, process.cpuUsage counts all.
 */
function threadCpuSeconds(): number | null {
  try {
    const stat = readFileSync('/proc/thread-self/stat', 'latin1');
    // Fields after the command name (which is in parentheses and may contain spaces).
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return null;
  }
}

/** The process's threads (Linux: /proc/self/task), to tell the verify pool's workers apart. */
function threadIds(): string[] {
  try {
    return readdirSync('/proc/self/task');
  } catch {
    return [];
  }
}

/** CPU seconds of the given threads of this process (those that still run), or null. */
function threadsCpuSeconds(ids: readonly string[]): number | null {
  if (ids.length === 0) return null;
  let total = 0;
  for (const id of ids) {
    try {
      const stat = readFileSync(`/proc/self/task/${id}/stat`, 'latin1');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      total += (Number(f[11]) + Number(f[12])) / 100;
    } catch {
      // The thread ended; the pool's threads live until close().
    }
  }
  return total;
}

function wallSeconds(since: bigint): number {
  return Number(process.hrtime.bigint() - since) / 1e9;
}

function progress(line: string): void {
  process.stderr.write(`${line}\n`);
}

interface Rate {
  /** Operations per CPU second. */
  perSec: number;
  ops: number;
  cpuS: number;
}

// process.cpuUsage counts every thread, the GC's helpers too: a full collection before each timed
// round keeps one measurement's garbage from being billed to the next.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Measurements are split into rounds; the best one counts (other load only ever slows a round). */
const ROUNDS = 20;

/** Warms `fn` up (JIT, key caches) and returns a batch size of about 10 ms. */
function calibrate(fn: () => void, seconds: number): number {
  const warmStart = process.cpuUsage();
  let batch = 1;
  while (cpuSeconds(warmStart) < Math.min(0.25, seconds / 4)) {
    for (let i = 0; i < batch; i++) fn();
    if (batch < 1 << 16) batch *= 2;
  }
  const probeStart = process.cpuUsage();
  const probeN = Math.max(1, batch >> 2);
  for (let i = 0; i < probeN; i++) fn();
  const perOp = Math.max(cpuSeconds(probeStart) / probeN, 1e-7);
  return Math.max(1, Math.floor(0.01 / perOp));
}

/**
 * Calls `fn` in batches until `seconds` of process CPU time have passed, after a full GC unless
 * `collect` is false (with a large heap the collection's background sweeping would be billed to `fn`).
 */
function runFor(fn: () => void, batch: number, seconds: number, collect = true): Rate {
  if (collect) gc();
  const start = process.cpuUsage();
  let ops = 0;
  let cpuS = 0;
  while (cpuS < seconds) {
    for (let i = 0; i < batch; i++) fn();
    ops += batch;
    cpuS = cpuSeconds(start);
  }
  return { perSec: ops / cpuS, ops, cpuS };
}

/**
 * Measures each of `fns` for `seconds` of process CPU time, in ROUNDS interleaved rounds (so that
 * what they are compared with ran under the same conditions), and returns each one's best round in
 * operations per CPU second.
 */
function measureTogether(fns: readonly (() => void)[], seconds = SECONDS): Rate[] {
  const batches = fns.map((fn) => calibrate(fn, seconds));
  const best: Rate[] = fns.map(() => ({ perSec: 0, ops: 0, cpuS: 0 }));
  for (let round = 0; round < ROUNDS; round++) {
    fns.forEach((fn, k) => {
      const r = runFor(fn, batches[k]!, seconds / ROUNDS);
      if (r.perSec > best[k]!.perSec) best[k] = r;
    });
  }
  return best;
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`benchmark self-check failed: ${what}`);
}

// ---------------------------------------------------------------------------------------------
// Fixtures (packages/core/test/attestation/fixtures; see its README.md)
// ---------------------------------------------------------------------------------------------

/** From dist/bench/attest.js up to packages/core/. */
const FIXTURES = new URL('../../test/attestation/fixtures/', import.meta.url);

function fixtureBytes(path: string): Uint8Array {
  return new Uint8Array(readFileSync(new URL(path, FIXTURES)));
}

function fixtureText(path: string): string {
  return readFileSync(new URL(path, FIXTURES), 'utf8');
}

/** Block time (ms) of an ISO date. */
function ms(iso: string): bigint {
  return BigInt(Date.parse(iso));
}

/** Inside the TPM fixtures' validity window 2026-01-01 … 2036-01-01. */
const TPM_AT = ms('2030-06-01T00:00:00Z');
/** Inside every validity period of NVIDIA's sample chain. */
const NVIDIA_AT = ms('2025-06-01T00:00:00Z');

// ---------------------------------------------------------------------------------------------
// 1. Raw verify rates
// ---------------------------------------------------------------------------------------------

type Primitive = 'P-256' | 'P-384' | 'Ed25519' | 'RSA-2048';

interface RawCase {
  name: Primitive;
  label: string;
  /** Verifies the case's signature with `key` (the case's public key). */
  verifyWith: (key: KeyObject) => boolean;
  publicKey: KeyObject;
  spki: Buffer;
}

/**
 * Node 20 can deadlock when a KeyObject returned by generateKeyPairSync is exported: seen here after
 * ~90,000 JWK exports, ExportJWKEdKey allocated, the GC ran, and the finalizer of the finished key
 * generation job (~KeyGenJob) waited forever on a mutex. So keys are generated straight into DER
 * and the KeyObjects are imported from it.
 */
type KeyKind = { type: 'ec'; curve: 'P-256' | 'P-384' } | { type: 'ed25519' } | { type: 'rsa2048' };

function generateDer(kind: KeyKind): { spki: Buffer; pkcs8: Buffer } {
  const publicKeyEncoding = { type: 'spki', format: 'der' } as const;
  const privateKeyEncoding = { type: 'pkcs8', format: 'der' } as const;
  if (kind.type === 'ec') {
    const p = generateKeyPairSync('ec', { namedCurve: kind.curve, publicKeyEncoding, privateKeyEncoding });
    return { spki: p.publicKey, pkcs8: p.privateKey };
  }
  if (kind.type === 'ed25519') {
    const p = generateKeyPairSync('ed25519', { publicKeyEncoding, privateKeyEncoding });
    return { spki: p.publicKey, pkcs8: p.privateKey };
  }
  const p = generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding, privateKeyEncoding });
  return { spki: p.publicKey, pkcs8: p.privateKey };
}

function newKeyPair(kind: KeyKind): { publicKey: KeyObject; privateKey: KeyObject; spki: Buffer } {
  const { spki, pkcs8 } = generateDer(kind);
  return {
    publicKey: importSpki(spki),
    privateKey: createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }),
    spki,
  };
}

function rawCases(): RawCase[] {
  const message = randomBytes(32);
  const ec = (curve: 'P-256' | 'P-384', hash: 'sha256' | 'sha384'): RawCase => {
    const { publicKey, privateKey, spki } = newKeyPair({ type: 'ec', curve });
    const sig = sign(hash, message, privateKey);
    return {
      name: curve,
      label: `ECDSA ${curve}/${hash === 'sha256' ? 'SHA-256' : 'SHA-384'}`,
      verifyWith: (key) => verify(hash, message, key, sig),
      publicKey,
      spki,
    };
  };
  const ed = newKeyPair({ type: 'ed25519' });
  const edSig = sign(null, message, ed.privateKey);
  const rsa = newKeyPair({ type: 'rsa2048' });
  const rsaSig = sign('sha256', message, { key: rsa.privateKey, padding: constants.RSA_PKCS1_PADDING });
  return [
    ec('P-256', 'sha256'),
    ec('P-384', 'sha384'),
    {
      name: 'Ed25519',
      label: 'Ed25519',
      verifyWith: (key) => verify(null, message, key, edSig),
      publicKey: ed.publicKey,
      spki: ed.spki,
    },
    {
      name: 'RSA-2048',
      label: 'RSA-2048 PKCS#1 v1.5/SHA-256',
      verifyWith: (key) => verify('sha256', message, { key, padding: constants.RSA_PKCS1_PADDING }, rsaSig),
      publicKey: rsa.publicKey,
      spki: rsa.spki,
    },
  ];
}

interface RawResult {
  /** Verifies per second with a cached KeyObject. */
  verify: number;
  /** Verifies per second when each imports its key first (createPublicKey from SPKI DER). */
  verifyCold: number;
}

/** What core does on a KeyObject cache miss (crypto/ed25519.ts, attestation/x509.ts). */
function importSpki(der: Buffer): KeyObject {
  return createPublicKey({ key: der, format: 'der', type: 'spki' });
}

// ---------------------------------------------------------------------------------------------
// 2. Profiles: registration (verifyEvidence) and heartbeat (verifyHeartbeat)
// ---------------------------------------------------------------------------------------------

interface ProfileCase {
  profile: Profile;
  /** The raw primitive its evidence signature uses. */
  primitive: Primitive;
  evidence: Evidence;
  atMs: bigint;
  message: Uint8Array;
  /** Every signature verification one registration performs, by primitive. */
  registrationVerifies: Primitive[];
  /** Builds the registered chip's record from the registration statement. */
  keyMaterial: (details: Readonly<Record<string, string | number | bigint>>) => Uint8Array;
  heartbeat: HeartbeatEvidence;
}

function primitiveOf(key: SubjectPublicKey): Primitive {
  if (key.kind === 'ec') return key.curve;
  if (key.bits === 2048) return 'RSA-2048';
  throw new Error(`no raw rate for RSA-${key.bits}`);
}

/** The signature checks verifyChain makes for `leafFirst` (one per link up to the anchor). */
function chainVerifies(leafFirst: Uint8Array[], roots: Uint8Array[], atMs: bigint): Primitive[] {
  const { path } = verifyChain(
    parseCertificates(leafFirst, 'chain'),
    parseCertificates(roots, 'root'),
    atMs,
    new Set(),
  );
  const out: Primitive[] = [];
  for (let i = 0; i + 1 < path.length; i++) out.push(primitiveOf(path[i + 1]!.publicKey.key));
  return out;
}

function profileCases(): { cases: ProfileCase[]; trust: TrustContext } {
  // tpm2: the P-256 AK's quote, its certificate, the ECC intermediate and the root.
  const tpmMessage = fromHex(fixtureText('tpm/message.hex').trim(), 32);
  const akCert = fixtureBytes('tpm/ak-ecc-cert.der');
  const tpmChain = [fixtureBytes('tpm/int-ecc.der')];
  const tpmRoots = [fixtureBytes('tpm/root.der')];
  const attest = fixtureBytes('tpm/quote-ecc.attest');
  const tpmSig = fixtureBytes('tpm/quote-ecc.sig');
  const akKey = parseCertificate(akCert).publicKey.key;

  // nvidia-spdm: NVIDIA's published H100 sample; the requester nonce is fixed in the report.
  const report = fromHex(fixtureText('nvidia-h100/report.hex').trim());
  const { request, response } = splitSpdmReport(report);
  const nvChain = pemToDer(fixtureText('nvidia-h100/chain.pem'));
  const nvRoots = pemToDer(fixtureText('nvidia-h100/device_root.pem'));
  const nonce = request.slice(4, 36);
  const leafKey = parseCertificate(nvChain[0]!).publicKey;

  // rsa2048-allowlist: a generated RSA-2048 key on the vendor's allow-list.
  const rsa = newKeyPair({ type: 'rsa2048' });
  const rsaSpki = new Uint8Array(rsa.spki);
  const rsaMessage = sha256(utf8('bench: rsa2048-allowlist message'));
  const rsaSig = new Uint8Array(
    sign('sha256', rsaMessage, { key: rsa.privateKey, padding: constants.RSA_PKCS1_PADDING }),
  );

  // dev-soft: a generated Ed25519 key.
  const devSeed = sha256(utf8('bench: dev-soft key'));
  const devPub = ed25519PublicKey(devSeed);
  const devMessage = sha256(utf8('bench: dev-soft message'));
  const devSig = ed25519Sign(devSeed, devMessage);

  const trust: TrustContext = {
    devSoftEnabled: true,
    vendors: [
      {
        vendorId: 'tpm-vendor',
        profile: 'tpm2',
        roots: tpmRoots,
        revokedSerials: [],
        revokedChipIds: [],
        models: ['UNC-TPU-1'],
      },
      {
        vendorId: 'nvidia',
        profile: 'nvidia-spdm',
        roots: nvRoots,
        revokedSerials: [],
        revokedChipIds: [],
        models: ['gh100-1010-0200-882'],
      },
      {
        vendorId: 'rsa-vendor',
        profile: 'rsa2048-allowlist',
        roots: [],
        revokedSerials: [],
        revokedChipIds: [],
        allowList: { [toHex(rsaAllowListChipId(rsaSpki))]: 'RSA-CHIP-1' },
      },
      { vendorId: DEV_SOFT_VENDOR, profile: 'dev-soft', roots: [], revokedSerials: [], revokedChipIds: [] },
    ],
  };

  const cases: ProfileCase[] = [
    {
      profile: 'tpm2',
      primitive: primitiveOf(akKey),
      evidence: {
        type: 'tpm2',
        vendorId: 'tpm-vendor',
        attest,
        signature: tpmSig,
        akCertificate: akCert,
        chain: tpmChain,
      },
      atMs: TPM_AT,
      message: tpmMessage,
      registrationVerifies: [primitiveOf(akKey), ...chainVerifies([akCert, ...tpmChain], tpmRoots, TPM_AT)],
      keyMaterial: (d) => fromHex(String(d.signingKey)),
      heartbeat: { type: 'tpm2', attest, signature: tpmSig },
    },
    {
      profile: 'nvidia-spdm',
      primitive: primitiveOf(leafKey.key),
      evidence: { type: 'nvidia-spdm', vendorId: 'nvidia', request, response, chain: nvChain },
      atMs: NVIDIA_AT,
      message: nonce,
      registrationVerifies: [primitiveOf(leafKey.key), ...chainVerifies(nvChain, nvRoots, NVIDIA_AT)],
      keyMaterial: () => leafKey.der,
      heartbeat: { type: 'nvidia-spdm', request, response },
    },
    {
      profile: 'rsa2048-allowlist',
      primitive: 'RSA-2048',
      evidence: { type: 'rsa2048-allowlist', vendorId: 'rsa-vendor', publicKey: rsaSpki, signature: rsaSig },
      atMs: TPM_AT,
      message: rsaMessage,
      registrationVerifies: ['RSA-2048'],
      keyMaterial: () => rsaSpki,
      heartbeat: { type: 'rsa2048-allowlist', signature: rsaSig },
    },
    {
      profile: 'dev-soft',
      primitive: 'Ed25519',
      evidence: {
        type: 'dev-soft',
        vendorId: DEV_SOFT_VENDOR,
        modelId: 'sim-h100',
        publicKey: devPub,
        signature: devSig,
      },
      atMs: TPM_AT,
      message: devMessage,
      registrationVerifies: ['Ed25519'],
      keyMaterial: () => devPub,
      heartbeat: { type: 'dev-soft', signature: devSig },
    },
  ];
  return { cases, trust };
}

function countVerifies(list: Primitive[]): string {
  const counts = new Map<Primitive, number>();
  for (const p of list) counts.set(p, (counts.get(p) ?? 0) + 1);
  return [...counts].map(([p, n]) => `${p} x${n}`).join(' + ');
}

// ---------------------------------------------------------------------------------------------
// 3. One epoch of heartbeats
// ---------------------------------------------------------------------------------------------

const CHAIN_ID = 'unc-bench-attest';
const GENESIS_TIME = 1_795_000_000_000n;
const POCI: PociParams = {
  ...DEFAULT_POCI_PARAMS,
  epochBlocks: 3600n,
  slotsPerEpoch: 4,
  answerWindowBlocks: 20n,
  devSoftEnabled: true,
};
/** The epoch measured; chips are written into state at genesis with their first slots in it. */
const EPOCH = 1n;
/** The size of core's Ed25519 public KeyObject cache (PUBLIC_CACHE_LIMIT in src/crypto/ed25519.ts). */
const ED25519_KEY_CACHE = 200_000;

function account(name: string) {
  const seed = sha256(utf8(name));
  const publicKey = ed25519PublicKey(seed);
  return { seed, publicKey, address: addressFromPublicKey(publicKey) };
}

const miner = account('bench: miner');
const validator = account('bench: validator');
const governance = account('bench: governance');

/**
 * The bench chain's genesis, through parseGenesis like a node's genesis file, so that whatever the
 * document leaves out takes core's defaults. Chain parameters are the defaults.
 */
function benchGenesis(): Genesis {
  const allocation = genesisAllocation({
    maxSupply: DEFAULT_MAX_SUPPLY,
    genesisAllocationBps: DEFAULT_GENESIS_ALLOCATION_BPS,
  });
  const g = parseGenesis({
    chainId: CHAIN_ID,
    genesisTime: new Date(Number(GENESIS_TIME)).toISOString(),
    accounts: [{ address: encodeAddress(miner.address), balance: allocation.toString() }],
    validators: [{ publicKey: toHex(validator.publicKey), name: 'v' }],
    governance: { threshold: 1, keys: [toHex(governance.publicKey)] },
    poci: {
      epochBlocks: Number(POCI.epochBlocks),
      slotsPerEpoch: POCI.slotsPerEpoch,
      answerWindowBlocks: Number(POCI.answerWindowBlocks),
      devSoftEnabled: POCI.devSoftEnabled,
    },
    vendors: [{ id: DEV_SOFT_VENDOR, name: 'dev', profile: 'dev-soft', roots: [] }],
    models: [{ vendorId: DEV_SOFT_VENDOR, modelId: 'sim-h100', name: 'sim', power: '989000' }],
  });
  check(g.poci.epochBlocks === POCI.epochBlocks && g.poci.devSoftEnabled, 'genesis POCI parameters');
  return g;
}

const hashOf = (h: bigint): Uint8Array => sha256(utf8(`block ${h}`));
const beaconOf = (h: bigint): Uint8Array => sha256(utf8(`beacon ${h}`));

function blockContext(height: bigint): BlockContext {
  return {
    chainId: CHAIN_ID,
    height,
    time: GENESIS_TIME + height * 1000n,
    proposer: validator.publicKey,
    prevHash: hashOf(height - 1n),
    prevBeacon: beaconOf(height - 1n),
    beacon: beaconOf(height),
  };
}

interface BlockRun {
  reads: number;
  writes: number;
  execCpuS: number;
  commitCpuS: number;
  answered: number;
  missed: number;
}

/** Executes one block on `state` like a node (BlockExecutor), then commits its writes. */
function runBlock(
  state: MemoryState,
  height: bigint,
  txs: readonly TxEnvelope[],
  isSignatureVerified: (hash: Uint8Array) => boolean,
  isEd25519Verified?: (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array) => boolean,
): BlockRun {
  const c0 = process.cpuUsage();
  const ex = new BlockExecutor(
    state,
    blockContext(height),
    isEd25519Verified ? { isSignatureVerified, isEd25519Verified } : { isSignatureVerified },
  );
  for (const t of txs) ex.apply(t);
  const done = ex.finish();
  const execCpuS = cpuSeconds(c0);
  const c1 = process.cpuUsage();
  state.apply(done.overlay.changes());
  const commitCpuS = cpuSeconds(c1);
  let answered = 0;
  let missed = 0;
  for (const r of done.results) {
    for (const e of r.events) {
      if (e.type === 'slotAnswered') answered++;
      else if (e.type === 'slotMissed') missed++;
    }
  }
  return { reads: done.overlay.reads, writes: done.overlay.writes, execCpuS, commitCpuS, answered, missed };
}

const NOT_VERIFIED = (): boolean => false;

let template: Chip | undefined;

/**
 * A chip record exactly as core writes it when a chip registers (a dev-soft chip registered by a
 * transaction on a scratch chain). The benchmark's chips are copies with their own id and key, so
 * they stay complete records whatever fields a Chip gains.
 */
function registeredChipTemplate(): Chip {
  if (template) return template;
  const state = new MemoryState();
  state.apply(genesisStateWrites(benchGenesis()));
  runBlock(state, 1n, [], NOT_VERIFIED);
  const secret = sha256(utf8('bench: template chip'));
  const publicKey = ed25519PublicKey(secret);
  const message = registrationMessage(CHAIN_ID, miner.address, hashOf(1n));
  const action: Action = {
    type: 'registerChip',
    anchorHeight: 1n,
    evidence: {
      type: 'dev-soft',
      vendorId: DEV_SOFT_VENDOR,
      modelId: 'sim-h100',
      publicKey,
      signature: ed25519Sign(secret, message),
    },
  };
  const tx: Transaction = {
    chainId: CHAIN_ID,
    signer: miner.publicKey,
    nonce: 0n,
    fee: 0n,
    expiresAt: 10n,
    actions: [action],
  };
  const size = encode(signedTransactionCodec, { tx, signature: new Uint8Array(64) }).length;
  const fee = minimumFee(DEFAULT_PARAMS, size, feeActions(tx.actions));
  runBlock(state, 2n, [envelopeFromSigned(signTransaction({ ...tx, fee }, miner.seed))], NOT_VERIFIED);
  const chip = getChip(state, devSoftChipId(publicKey));
  check(chip !== null, 'the template chip registers');
  template = chip!;
  return template;
}

/** The fixed DER around a raw Ed25519 key (RFC 8410): SPKI = 12 bytes ‖ key, PKCS#8 = 16 bytes ‖ seed. */
const ED25519_SPKI_PREFIX = 12;
const ED25519_PKCS8_PREFIX = 16;

/**
 * A chip's software key, its private KeyObject imported from JWK: importing 100,000 seeds through
 * PKCS#8 DER (what core's ed25519Sign does on a cache miss) would dominate the setup.
 */
function chipKey(): { privateKey: () => KeyObject; publicKey: Uint8Array } {
  const { spki, pkcs8 } = generateDer({ type: 'ed25519' });
  check(
    spki.length === ED25519_SPKI_PREFIX + 32 && pkcs8.length === ED25519_PKCS8_PREFIX + 32,
    'Ed25519 DER',
  );
  const publicKey = new Uint8Array(spki.subarray(ED25519_SPKI_PREFIX));
  const privateKey = () =>
    createPrivateKey({
      key: {
        kty: 'OKP',
        crv: 'Ed25519',
        d: pkcs8.subarray(ED25519_PKCS8_PREFIX).toString('base64url'),
        x: Buffer.from(publicKey).toString('base64url'),
      },
      format: 'jwk',
    });
  return { privateKey, publicKey };
}

/** Sizes of the canonical encoding, to pack answers into transactions that fit maxTxBytes. */
function txLayout(sample: HeartbeatAnswer): { base: number; perAction: number; perAnswer: number } {
  const size = (actions: Action[]) =>
    encode(signedTransactionCodec, {
      tx: { chainId: CHAIN_ID, signer: miner.publicKey, nonce: 0n, fee: 0n, expiresAt: 0n, actions },
      signature: new Uint8Array(64),
    }).length;
  const base = size([]);
  const oneAction = size([{ type: 'heartbeat', answers: [] }]);
  const oneAnswer = size([{ type: 'heartbeat', answers: [sample] }]);
  return { base, perAction: oneAction - base, perAnswer: oneAnswer - oneAction };
}

/**
 * Packs answers greedily: at most MAX_ANSWERS_PER_HEARTBEAT per action, MAX_ACTIONS_PER_TX actions
 * per transaction, and no transaction over maxTxBytes.
 */
function packAnswers(
  answers: HeartbeatAnswer[],
  layout: { base: number; perAction: number; perAnswer: number },
  maxTxBytes: number,
): Action[][] {
  const txs: Action[][] = [];
  let actions: Action[] = [];
  let current: HeartbeatAnswer[] = [];
  let bytes = layout.base;
  const closeAction = () => {
    if (current.length > 0) actions.push({ type: 'heartbeat', answers: current });
    current = [];
  };
  const closeTx = () => {
    closeAction();
    if (actions.length > 0) txs.push(actions);
    actions = [];
    bytes = layout.base;
  };
  for (const a of answers) {
    if (current.length >= MAX_ANSWERS_PER_HEARTBEAT) closeAction();
    let cost = layout.perAnswer + (current.length === 0 ? layout.perAction : 0);
    // Actions in the transaction once this answer is in (the open one counts).
    if (bytes + cost > maxTxBytes || actions.length + 1 > MAX_ACTIONS_PER_TX) {
      closeTx();
      cost = layout.perAnswer + layout.perAction;
    }
    current.push(a);
    bytes += cost;
  }
  closeTx();
  return txs;
}

interface EmptyBlockStats {
  /** Distinct "reads/writes" pairs of ordinary blocks, with how many blocks had each. */
  ordinary: Map<string, number>;
  epochStart: { height: bigint; reads: number; writes: number }[];
  cpuS: number;
  blocks: number;
}

function emptyBlockStats(): EmptyBlockStats {
  return { ordinary: new Map(), epochStart: [], cpuS: 0, blocks: 0 };
}

function recordEmpty(stats: EmptyBlockStats, height: bigint, run: BlockRun): void {
  if (height === epochStart((height - 1n) / POCI.epochBlocks, POCI)) {
    stats.epochStart.push({ height, reads: run.reads, writes: run.writes });
  } else {
    const k = `${run.reads}/${run.writes}`;
    stats.ordinary.set(k, (stats.ordinary.get(k) ?? 0) + 1);
  }
  stats.cpuS += run.execCpuS + run.commitCpuS;
  stats.blocks++;
}

function describeEmpty(stats: EmptyBlockStats): string {
  const ordinary = [...stats.ordinary].map(([rw, n]) => `${rw} in ${fmt(n)} blocks`).join(', ');
  const starts = stats.epochStart.map((s) => `${s.reads}/${s.writes} at epoch start ${s.height}`).join(', ');
  return `${ordinary}${starts ? `; ${starts}` : ''}`;
}

/** Runs the heartbeat-free blocks before the measured epoch (1 … epochStart(EPOCH) − 1). */
function epochBlocksWithoutHeartbeats(state: MemoryState, stats: EmptyBlockStats, none: () => boolean): void {
  for (let h = 1n; h < epochStart(EPOCH, POCI); h++) recordEmpty(stats, h, runBlock(state, h, [], none));
}

/** Raw Ed25519 verify/s, warm and with a key import, sampled in between the epoch's blocks. */
class Ed25519Sampler {
  private readonly fns: (() => void)[];
  private readonly batches: number[];
  private readonly ops = [0, 0, 0];
  private readonly cpuS = [0, 0, 0];

  /**
   * `workload`: (key, message, signature) triples of the run's own answers, KeyObjects imported
   * beforehand: raw verify over many keys and messages in turn, as the executor meets them (one key
   * and message hot in cache is the best case).
   */
  constructor(
    c: RawCase,
    workload: readonly { key: KeyObject; message: Uint8Array; signature: Uint8Array }[],
  ) {
    let next = 0;
    this.fns = [
      () => {
        if (!c.verifyWith(c.publicKey)) throw new Error('Ed25519 failed');
      },
      () => {
        if (!c.verifyWith(importSpki(c.spki))) throw new Error('Ed25519 failed');
      },
      () => {
        const w = workload[next]!;
        next = next + 1 === workload.length ? 0 : next + 1;
        if (!verify(null, w.message, w.key, w.signature)) throw new Error('Ed25519 failed');
      },
    ];
    if (workload.length === 0) this.fns.pop();
    this.batches = this.fns.map((fn) => calibrate(fn, 1));
  }

  /** Samples every rate for `seconds` each, into `rates`. */
  sample(seconds: number): void {
    this.fns.forEach((fn, k) => {
      const r = runFor(fn, this.batches[k]!, seconds, false);
      this.ops[k]! += r.ops;
      this.cpuS[k]! += r.cpuS;
    });
  }

  /**
   * The one-key verify rate alone, for `seconds`, kept out of `rates`: what a verify-pool run is
   * divided by (its ratio needs no other rate, and sampling all three beside each of the
   * `--rounds` × modes runs cost 1.5 s a run, 27 s of a default bench).
   */
  sampleVerify(seconds: number): { ops: number; cpuS: number } {
    const r = runFor(this.fns[0]!, this.batches[0]!, seconds, false);
    return { ops: r.ops, cpuS: r.cpuS };
  }

  /** Operations per CPU second over all samples. */
  get rates(): RawResult & { verifyWorkload: number | null } {
    return {
      verify: this.ops[0]! / this.cpuS[0]!,
      verifyCold: this.ops[1]! / this.cpuS[1]!,
      verifyWorkload: this.fns.length > 2 ? this.ops[2]! / this.cpuS[2]! : null,
    };
  }
}

/** A digest of the whole in-memory state: the runs with the verify pool must end where inline did. */
function stateDigest(state: MemoryState): string {
  // Hashed incrementally: spreading every key and value into one call overflows the stack once the
  // state holds ~100,000 chips. Lengths go in too, so two states cannot share a digest by a shifted boundary.
  const ids = [...state.map.keys()].sort();
  const digest = createHash('sha256');
  const length = Buffer.alloc(4);
  for (const id of ids) {
    const w = state.map.get(id)!;
    for (const part of [w.key, w.value ?? new Uint8Array(0)]) {
      length.writeUInt32BE(part.length);
      digest.update(length);
      digest.update(part);
    }
  }
  return digest.digest('hex');
}

/** What the benchmark uses of packages/node (loaded from its build: core does not depend on node). */
interface NodePoolModules {
  VerifyPool: new (opts: { threads: number }) => { readonly threads: number; close(): Promise<void> };
  BlockPreverifier: new (
    pool: unknown,
    opts?: { shareWithCaller?: boolean },
  ) => {
    preverify(
      envs: readonly TxEnvelope[],
      state: StateReader,
      chainId: string,
      head: { height: bigint; hash: Uint8Array; beacon: Uint8Array },
      alreadyVerified: (env: TxEnvelope) => boolean,
    ): Promise<number>;
    launch(
      envs: readonly TxEnvelope[],
      state: StateReader,
      chainId: string,
      head: { height: bigint; hash: Uint8Array; beacon: Uint8Array },
      alreadyVerified: (env: TxEnvelope) => boolean,
    ): {
      readonly size: number;
      inFlight(key: string): boolean;
      results(keys: readonly string[]): Promise<boolean[]>;
    } | null;
    isEd25519Verified: (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array) => boolean;
    hasPassed: (key: string) => boolean;
  };
}

async function loadNodePool(): Promise<NodePoolModules | null> {
  const at = (path: string) => new URL(`../../../node/dist/src/${path}`, import.meta.url).href;
  try {
    const pool = await import(at('verify-pool.js'));
    const pre = await import(at('consensus/block-preverify.js'));
    return { VerifyPool: pool.VerifyPool, BlockPreverifier: pre.BlockPreverifier };
  } catch (err) {
    progress(`the verify pool runs are skipped: packages/node is not built (${(err as Error).message})`);
    return null;
  }
}

type PoolMode = 'node' | 'shared' | 'pipelined' | 'pipelined-shared' | 'optimistic' | 'optimistic-shared';

/** Modes where the main thread executes while the workers check (their times overlap). */
const overlaps = (mode: PoolMode) => mode.startsWith('pipelined') || mode.startsWith('optimistic');

interface PoolRun {
  mode: PoolMode;
  threads: number;
  answered: number;
  /** Wall-clock seconds of the window (gathering, pool, execution and commit). */
  wallS: number;
  /** Process CPU seconds, every thread (workers included). */
  cpuS: number;
  /** CPU seconds of the main thread (gathering, execution, commit), when the platform tells. */
  mainCpuS: number | null;
  /** Signatures the pool checked. */
  poolChecks: number;
  /** CPU seconds of the threads the pool started (its workers), when the platform tells. */
  workerCpuS: number | null;
  /** Which of the `--rounds` this run was (1-based). */
  round: number;
  /** Raw one-key Ed25519 verify/s (CPU time, one thread) sampled right before and after this run. */
  rawVerify: number;
  /** The 1-minute load average as the run started (os.loadavg). */
  loadBefore: number;
}

/**
 * The window once more with the node's verify pool: in `node` mode each block's signatures go to
 * the pool when the block arrives (gathered on the head state, as the consensus driver does) and
 * the block executes once they are back; in `pipelined` mode the next block's signatures are on
 * the pool while this block executes (gathered on the state before this block, with this block as
 * the head: what a node can do with a block it already holds, e.g. in sync); in `optimistic` mode a
 * block's signatures go to the pool and the same block executes at once, taking on trust the
 * checks in flight, then waits for those results (the main thread helping in `optimistic-shared`)
 * and only then applies the block, as the consensus driver validates a proposal
 * (Chain.validateProposalOptimistically). Execution checks inline whatever the pool did not vouch
 * for.
 */
async function runWindowWithPool(
  modules: NodePoolModules,
  mode: PoolMode,
  state: MemoryState,
  first: bigint,
  blockTxs: readonly TxEnvelope[][],
  isSignatureVerified: (hash: Uint8Array) => boolean,
): Promise<PoolRun> {
  const loadBefore = loadavg()[0]!;
  const before = new Set(threadIds());
  const pool = new modules.VerifyPool({ threads: POOL_THREADS });
  const pipelined = mode === 'pipelined' || mode === 'pipelined-shared';
  const pre = new modules.BlockPreverifier(pool, {
    shareWithCaller: mode === 'shared' || mode === 'pipelined-shared' || mode === 'optimistic-shared',
  });
  const isTxVerified = (env: TxEnvelope) => isSignatureVerified(env.hash);
  const headAt = (h: bigint) => ({ height: h, hash: hashOf(h), beacon: beaconOf(h) });
  // Workers start and load core before the clock starts.
  const warm = blockTxs.find((t) => t.length > 0);
  if (warm)
    await new modules.BlockPreverifier(pool).preverify(warm, state, CHAIN_ID, headAt(first), () => false);
  // The threads that started with the pool: its workers (each a thread of its own).
  const workerThreads = threadIds().filter((id) => !before.has(id));
  let answered = 0;
  let poolChecks = 0;
  const p0 = threadsCpuSeconds(workerThreads);
  const w0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  const t0 = threadCpuSeconds();
  const preverify = (b: number, head: bigint) =>
    pre.preverify(blockTxs[b]!, state, CHAIN_ID, headAt(head), isTxVerified).then((n) => {
      poolChecks += n;
    });
  let next = pipelined ? preverify(0, first) : null;
  for (let b = 0; b < blockTxs.length; b++) {
    const height = first + BigInt(b) + 1n;
    if (mode === 'optimistic' || mode === 'optimistic-shared') {
      answered += await runBlockOptimistically(
        pre,
        state,
        height,
        blockTxs[b]!,
        headAt(height - 1n),
        isSignatureVerified,
        (n) => {
          poolChecks += n;
        },
      );
      continue;
    }
    if (pipelined) {
      await next;
      next = b + 1 < blockTxs.length ? preverify(b + 1, height) : null;
    } else await preverify(b, height - 1n);
    const r = runBlock(state, height, blockTxs[b]!, isSignatureVerified, pre.isEd25519Verified);
    answered += r.answered;
  }
  await next;
  const cpuS = cpuSeconds(c0);
  const t1 = threadCpuSeconds();
  const p1 = threadsCpuSeconds(workerThreads);
  const wallS = wallSeconds(w0);
  const threads = pool.threads;
  await pool.close();
  const mainCpuS = t0 === null || t1 === null ? null : t1 - t0;
  const workerCpuS = p0 === null || p1 === null ? null : p1 - p0;
  // Filled in by the caller, which samples the raw rate around the run.
  return {
    mode,
    threads,
    answered,
    wallS,
    cpuS,
    mainCpuS,
    poolChecks,
    workerCpuS,
    round: 0,
    rawVerify: 0,
    loadBefore,
  };
}

/**
 * One block the way the consensus driver validates a proposal: its checks launched on the pool,
 * the block executed at once taking the checks in flight on trust, its writes made ready (the
 * driver builds the trie meanwhile), then the assumed checks' results awaited and the block
 * settled; only then is it applied. Returns the answers it accepted.
 */
async function runBlockOptimistically(
  pre: InstanceType<NodePoolModules['BlockPreverifier']>,
  state: MemoryState,
  height: bigint,
  txs: readonly TxEnvelope[],
  head: { height: bigint; hash: Uint8Array; beacon: Uint8Array },
  isSignatureVerified: (hash: Uint8Array) => boolean,
  onPoolChecks: (n: number) => void,
): Promise<number> {
  const checks = pre.launch(txs, state, CHAIN_ID, head, (env) => isSignatureVerified(env.hash));
  const run = executeBlockAssuming(
    state,
    txs,
    blockContext(height),
    { isSignatureVerified },
    checks ? (key) => checks.inFlight(key) : () => false,
    pre.hasPassed,
  );
  const changes = run.execution?.overlay.changes() ?? [];
  const results = checks ? await checks.results(run.assumed.map((a) => a.key)) : [];
  onPoolChecks(checks?.size ?? 0);
  const done = settleAssumed(run, results);
  state.apply(changes);
  let answered = 0;
  for (const r of done.results) for (const e of r.events) if (e.type === 'slotAnswered') answered++;
  return answered;
}

/** A pool run's answers per wall-clock second ÷ the raw one-key verify rate sampled beside it. */
function ratioOf(run: PoolRun): number {
  return run.answered / run.wallS / run.rawVerify;
}

/** The run with the median ratio (the lower middle one of an even count). */
function medianRun(runs: readonly PoolRun[]): PoolRun {
  const sorted = [...runs].sort((a, b) => ratioOf(a) - ratioOf(b));
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

/**
 * Answers/s a pool run's CPU figures allow on this machine's cores, idle (other threads, GC, left
 * out): pipelined or optimistic, the main thread and the workers (their CPU shared over their threads) overlap,
 * so the busier side sets the pace; in the driver's order the main thread waits for the workers,
 * so their times add up. Either way all of it cannot take more than the cores. An upper bound from
 * CPU time, for an idle rerun to check; not a wall-clock measurement.
 */
function cpuBoundRate(run: PoolRun): number {
  const main = run.mainCpuS ?? 0;
  const workers = run.workerCpuS ?? 0;
  const perWorker = workers / Math.max(1, run.threads);
  const cores = availableParallelism();
  const paced = overlaps(run.mode) ? Math.max(main, perWorker) : main + perWorker;
  return run.answered / Math.max(paced, (main + workers) / cores);
}

async function runEpoch(edCase: RawCase) {
  const setupStart = process.hrtime.bigint();
  const none = NOT_VERIFIED;

  // Zero chips: the same blocks, for comparison of the per-block state accesses.
  const bare = new MemoryState();
  bare.apply(genesisStateWrites(benchGenesis()));
  const bareStats = emptyBlockStats();
  epochBlocksWithoutHeartbeats(bare, bareStats, none);
  recordEmpty(bareStats, epochStart(EPOCH, POCI), runBlock(bare, epochStart(EPOCH, POCI), [], none));

  // N chips, written straight into state at genesis (registration is not what is measured).
  const state = new MemoryState();
  state.apply(genesisStateWrites(benchGenesis()));
  const template = registeredChipTemplate();
  const chipIds: Uint8Array[] = new Array(CHIPS);
  const chipSecrets: (KeyObject | null)[] = new Array(STREAM ? 0 : CHIPS);
  /** --stream: the answering chips' seeds and public keys, 32 bytes each. */
  const chipSeeds = new Uint8Array(STREAM ? ANSWERING * 32 : 0);
  const chipPubs = new Uint8Array(STREAM ? ANSWERING * 32 : 0);
  /** The public keys of the chips that sign in the measured blocks. */
  const chipPublicKeys = new Map<number, Uint8Array>();
  // Only the chips of the classes that the measured blocks challenge sign anything: the others'
  // private keys are not kept (at 1,000,000 chips and a few measured blocks, most chips).
  const first = epochStart(EPOCH, POCI);
  const blocks = Math.min(MEASURED_BLOCKS, Number(POCI.epochBlocks));
  const measuredClasses = new Set<number>();
  for (let b = 0; b < blocks; b++) {
    measuredClasses.add(Number(blockChallengeClass(beaconOf(first + BigInt(b)), POCI)));
  }
  const setup = new StateOverlay(state);
  for (let i = 0; i < CHIPS; i++) {
    let publicKey: Uint8Array;
    if (STREAM && i < ANSWERING) {
      // A fresh pair as DER, its raw halves kept: importing a private key from PKCS#8 DER (core's
      // ed25519PublicKey and ed25519Sign do) took 0.5 ms of CPU a key here, most of the setup.
      const { spki, pkcs8 } = generateDer({ type: 'ed25519' });
      chipSeeds.set(pkcs8.subarray(ED25519_PKCS8_PREFIX), i * 32);
      publicKey = new Uint8Array(spki.subarray(ED25519_SPKI_PREFIX));
      chipPubs.set(publicKey, i * 32);
    } else {
      const kp =
        i < ANSWERING ? chipKey() : { privateKey: () => null, publicKey: new Uint8Array(randomBytes(32)) };
      publicKey = kp.publicKey;
      const chipId = devSoftChipId(publicKey);
      chipSecrets[i] = measuredClasses.has(Number(chipClass(chipId, POCI))) ? kp.privateKey() : null;
      if (chipSecrets[i]) chipPublicKeys.set(i, publicKey);
    }
    const chipId = devSoftChipId(publicKey);
    chipIds[i] = chipId;
    putChip(
      setup,
      // Registered at genesis, first slots in the measured epoch, nothing settled yet.
      {
        ...template,
        chipId,
        keyMaterial: publicKey,
        registeredAt: 0n,
        firstEpoch: EPOCH,
        settledThrough: 0n,
      },
    );
    if ((i + 1) % Math.max(1, Math.floor(CHIPS / 10)) === 0)
      progress(`setup: ${fmt(i + 1)}/${fmt(CHIPS)} chips`);
  }
  state.apply(setup.changes());

  const stats = emptyBlockStats();
  epochBlocksWithoutHeartbeats(state, stats, none);
  progress(`setup: ${fmt(stats.blocks)} blocks without heartbeats executed`);

  // The measured window: the epoch's first block (which opens it and fixes its seed) up to the
  // block after its last slot block, which carries the answers to that slot.
  const last = first + BigInt(blocks); // block after the last measured slot block
  const totals = {
    execCpuS: 0,
    commitCpuS: 0,
    answered: 0,
    missed: 0,
    txs: 0,
    heartbeatBlocks: 0,
    /** State reads and writes of the blocks that carried answers, and their answers. */
    hbReads: 0,
    hbWrites: 0,
    hbAnswers: 0,
    maxReadsPerAnswer: 0,
    maxWritesPerAnswer: 0,
  };
  const wallStart = process.hrtime.bigint();
  let wallS = 0;
  const firstRun = runBlock(state, first, [], none);
  wallS += wallSeconds(wallStart);
  totals.execCpuS += firstRun.execCpuS;
  totals.commitCpuS += firstRun.commitCpuS;
  recordEmpty(stats, first, firstRun);

  // Client side (not measured): block h challenges the class drawn from its beacon; every chip of
  // that class signs the challenge of block h, and the answers go into the block after it. (The
  // bench knows its own beacons, so it prepares this ahead; a real chip learns it at block h.)
  const S = POCI.slotsPerEpoch;
  const M = Number(challengeClasses(POCI));
  const classOf = new Int32Array(CHIPS);
  const classSize = new Int32Array(M + 1);
  // The answering chips by class (silent ones, --answering, sign nothing).
  for (let i = 0; i < ANSWERING; i++) {
    classOf[i] = Number(chipClass(chipIds[i]!, POCI));
    classSize[classOf[i]! + 1]!++;
  }
  for (let k = 0; k < M; k++) classSize[k + 1]! += classSize[k]!;
  const classChips = new Int32Array(ANSWERING);
  const classFill = classSize.slice(0, M);
  for (let i = 0; i < ANSWERING; i++) classChips[classFill[classOf[i]!]!++] = i;
  const blockClass = new Int32Array(blocks);
  const perBlock = new Int32Array(blocks + 1);
  const drawn = new Int32Array(M);
  for (let b = 0; b < blocks; b++) {
    const k = Number(blockChallengeClass(beaconOf(first + BigInt(b)), POCI));
    const full = drawn[k]! >= MAX_CHALLENGES_PER_EPOCH;
    blockClass[b] = full ? -1 : k;
    if (!full) drawn[k]!++;
    perBlock[b + 1] = perBlock[b]! + (full ? 0 : classSize[k + 1]! - classSize[k]!);
  }
  const entries = perBlock[blocks]!;
  const entryChip = new Int32Array(entries);
  const entrySlot = new Uint8Array(entries);
  // --stream: each block's answers are signed when the block is built (signatureOf).
  const signatures = new Uint8Array(STREAM ? 0 : entries * 64);
  drawn.fill(0);
  for (let b = 0; b < blocks; b++) {
    const k = blockClass[b]!;
    if (k < 0) continue;
    const slot = drawn[k]!++;
    const h = first + BigInt(b);
    for (let x = classSize[k]!, e = perBlock[b]!; x < classSize[k + 1]!; x++, e++) {
      const i = classChips[x]!;
      entryChip[e] = i;
      entrySlot[e] = slot;
      if (!STREAM)
        signatures.set(
          sign(null, heartbeatChallenge(CHAIN_ID, chipIds[i]!, hashOf(h)), chipSecrets[i]!),
          e * 64,
        );
    }
    if (!STREAM && (b + 1) % Math.max(1, Math.floor(blocks / 10)) === 0)
      progress(`signing: ${b + 1}/${blocks} blocks`);
  }
  chipSecrets.length = 0;
  /** The answer of entry e (to the challenge of block b), as the chip signs it. */
  const signatureOf = (e: number, b: number): Uint8Array => {
    if (!STREAM) return signatures.slice(e * 64, e * 64 + 64);
    const i = entryChip[e]!;
    const message = heartbeatChallenge(CHAIN_ID, chipIds[i]!, hashOf(first + BigInt(b)));
    // Imported from JWK for each signature (cheap), not cached: 64 bytes a chip is all that is kept.
    const key = createPrivateKey({
      key: {
        kty: 'OKP',
        crv: 'Ed25519',
        d: Buffer.from(chipSeeds.subarray(i * 32, i * 32 + 32)).toString('base64url'),
        x: Buffer.from(chipPubs.subarray(i * 32, i * 32 + 32)).toString('base64url'),
      },
      format: 'jwk',
    });
    return new Uint8Array(sign(null, message, key));
  };
  const publicKeyOf = (i: number): Uint8Array =>
    STREAM ? chipPubs.subarray(i * 32, i * 32 + 32) : chipPublicKeys.get(i)!;
  const order = entryChip;
  void S;

  const layout = txLayout({
    chipId: new Uint8Array(32),
    epoch: EPOCH,
    slot: 0,
    evidence: { type: 'dev-soft', signature: new Uint8Array(64) },
  });
  const maxTxBytes = DEFAULT_PARAMS.maxTxBytes;
  const verified = new Set<string>();
  const isSignatureVerified = (hash: Uint8Array) => verified.has(toHex(hash));
  let nonce = 0n;
  let maxAnswersPerTx = 0;
  let maxAnswersPerBlock = 0;
  /** Block b's transactions (built in block order: each takes the miner's next nonce). */
  const buildBlockTxs = (b: number): TxEnvelope[] => {
    const height = first + BigInt(b) + 1n;
    const answers: HeartbeatAnswer[] = [];
    for (let e = perBlock[b]!; e < perBlock[b + 1]!; e++) {
      const i = entryChip[e]!;
      answers.push({
        chipId: chipIds[i]!,
        epoch: EPOCH,
        slot: entrySlot[e]!,
        evidence: { type: 'dev-soft', signature: signatureOf(e, b) },
      });
    }
    maxAnswersPerBlock = Math.max(maxAnswersPerBlock, answers.length);
    const envs: TxEnvelope[] = [];
    for (const actions of packAnswers(answers, layout, maxTxBytes)) {
      const tx: Transaction = {
        chainId: CHAIN_ID,
        signer: miner.publicKey,
        nonce,
        fee: 0n,
        expiresAt: height + 10n,
        actions,
      };
      nonce++;
      const env = envelopeFromSigned(signTransaction(tx, miner.seed));
      check(env.bytes.length <= maxTxBytes, `a transaction of ${env.bytes.length} bytes fits maxTxBytes`);
      // What mempool admission does before the block: the signature is checked once.
      check(verifyTransactionSignature(env.stx), 'transaction signature');
      verified.add(toHex(env.hash));
      let n = 0;
      for (const a of actions) if (a.type === 'heartbeat') n += a.answers.length;
      maxAnswersPerTx = Math.max(maxAnswersPerTx, n);
      envs.push(env);
    }
    return envs;
  };
  const blockTxs: TxEnvelope[][] = new Array(STREAM ? 0 : blocks);
  for (let b = 0; b < blockTxs.length; b++) {
    blockTxs[b] = buildBlockTxs(b);
    if ((b + 1) % Math.max(1, Math.floor(blocks / 10)) === 0)
      progress(`building transactions: ${b + 1}/${blocks} blocks`);
  }

  // How often a chip's key is still in core's FIFO KeyObject cache when its answer is verified.
  const cache = new Map<number, true>();
  let warmKeys: { keys: number; rssBytesPerKey: number } | null = null;
  if (WARM_KEYS && entries > 0) {
    const otherMessage = utf8('bench: key warm-up, not an answer');
    const anySignature = signatureOf(
      0,
      blockClass.findIndex((k) => k >= 0),
    );
    // What holding the imported keys costs (RSS, after a full collection on either side).
    gc();
    const rss0 = process.memoryUsage.rss();
    for (let e = 0; e < entries && cache.size < ED25519_KEY_CACHE; e++) {
      const i = entryChip[e]!;
      if (cache.has(i)) continue;
      cache.set(i, true);
      check(!ed25519Verify(publicKeyOf(i), otherMessage, anySignature), 'the warm-up verifies nothing');
    }
    gc();
    warmKeys = { keys: cache.size, rssBytesPerKey: (process.memoryUsage.rss() - rss0) / cache.size };
    progress(`--warm-keys: ${fmt(cache.size)} chip keys imported into core's cache`);
  }
  let cacheHits = 0;
  for (const i of order) {
    if (cache.has(i)) {
      cacheHits++;
      continue;
    }
    if (cache.size >= ED25519_KEY_CACHE) {
      const oldest = cache.keys().next();
      if (!oldest.done) cache.delete(oldest.value);
    }
    cache.set(i, true);
  }
  const setupWallS = wallSeconds(setupStart) - wallS;

  // The measured part: execute every block of the window like a node. Raw Ed25519 is sampled
  // before, in between (every 10%, outside the blocks' time) and after, so that the ratios compare
  // like with like on a machine whose speed drifts.
  // Up to 20,000 of the window's own answers, for the raw reference over many keys.
  const workload: { key: KeyObject; message: Uint8Array; signature: Uint8Array }[] = [];
  for (let b = 0; b < blocks && workload.length < 20_000; b++) {
    for (let e = perBlock[b]!; e < perBlock[b + 1]! && workload.length < 20_000; e++) {
      const i = entryChip[e]!;
      const x = Buffer.from(publicKeyOf(i)).toString('base64url');
      workload.push({
        key: createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' }),
        message: heartbeatChallenge(CHAIN_ID, chipIds[i]!, hashOf(first + BigInt(b))),
        signature: signatureOf(e, b),
      });
    }
  }
  const sampler = new Ed25519Sampler(edCase, workload);
  sampler.sample(0.1);
  // The state as the window starts, for the runs with the verify pool below (none with --stream).
  const windowStart = POOL_THREADS > 0 ? new Map(state.map) : null;
  let streamBuildWallS = 0;
  for (let b = 0; b < blocks; b++) {
    const height = first + BigInt(b) + 1n;
    let txs: TxEnvelope[];
    if (STREAM) {
      const w = process.hrtime.bigint();
      txs = buildBlockTxs(b);
      streamBuildWallS += wallSeconds(w);
    } else txs = blockTxs[b]!;
    const w0 = process.hrtime.bigint();
    const r = runBlock(state, height, txs, isSignatureVerified);
    wallS += wallSeconds(w0);
    totals.execCpuS += r.execCpuS;
    totals.commitCpuS += r.commitCpuS;
    totals.answered += r.answered;
    totals.missed += r.missed;
    totals.txs += txs.length;
    if (txs.length > 0) {
      totals.heartbeatBlocks++;
      totals.hbReads += r.reads;
      totals.hbWrites += r.writes;
      totals.hbAnswers += r.answered;
      totals.maxReadsPerAnswer = Math.max(totals.maxReadsPerAnswer, r.reads / r.answered);
      totals.maxWritesPerAnswer = Math.max(totals.maxWritesPerAnswer, r.writes / r.answered);
    } else recordEmpty(stats, height, r);
    if ((b + 1) % Math.max(1, Math.floor(blocks / 10)) === 0) {
      sampler.sample(0.1);
      progress(
        `epoch: ${(((b + 1) / blocks) * 100).toFixed(0)}% (${b + 1}/${blocks} blocks, ` +
          `${fmt(totals.answered)} answers, ${fmt(totals.execCpuS, 1)} s CPU, ` +
          `${fmt((totals.execCpuS / Math.max(1, totals.answered)) * 1e6, 1)} µs per answer, ` +
          `rss ${fmt(process.memoryUsage.rss() / 2 ** 20)} MiB)`,
      );
    }
  }
  const rootInline = POOL_THREADS > 0 ? stateDigest(state) : '';
  // The raw rates the inline run is compared with: taken now, from the samples between its blocks
  // only. Folded in, the samples beside the pool runs below (0.5 s of each rate a run, 18 runs by
  // default: 9 s against the 1.1 s between the blocks) had made up nearly all of this reference,
  // measured minutes after the blocks it is set against; they now sample the one-key rate alone,
  // kept apart.
  const ed = sampler.rates;

  // The same window again, each block's signatures pre-verified on the node's worker pool
  // (packages/node: VerifyPool and BlockPreverifier, as the consensus driver uses them), once as
  // the node does today (a block's checks on the pool, awaited, then the block executes) and once
  // pipelined (the next block's checks on the pool while this block executes). Wall-clock time,
  // since the work is on several threads.
  const pooled: PoolRun[] = [];
  const modules = POOL_THREADS > 0 ? await loadNodePool() : null;
  if (modules) {
    for (let round = 1; round <= POOL_ROUNDS; round++) {
      // Interleaved, each round starting one mode further on: no mode always runs first (cold JIT)
      // or always right after the same other one (its garbage, its heap size).
      const shift = (round - 1) % POOL_MODES.length;
      const order = [...POOL_MODES.slice(shift), ...POOL_MODES.slice(0, shift)];
      for (const mode of order) {
        state.map.clear();
        for (const [k, v] of windowStart!) state.map.set(k, v);
        const r0 = sampler.sampleVerify(0.25);
        const run = await runWindowWithPool(modules, mode, state, first, blockTxs, isSignatureVerified);
        const r1 = sampler.sampleVerify(0.25);
        run.round = round;
        run.rawVerify = (r0.ops + r1.ops) / (r0.cpuS + r1.cpuS);
        check(
          run.answered === entries,
          `${mode}: all ${entries} answers were accepted (got ${run.answered})`,
        );
        check(stateDigest(state) === rootInline, `${mode}: the same state as executing inline`);
        pooled.push(run);
        progress(
          `epoch with the verify pool (${mode}, round ${round}/${POOL_ROUNDS}): ` +
            `${ratioOf(run).toFixed(3)} x raw beside it`,
        );
      }
    }
  }
  check(totals.answered === entries, `all ${entries} answers were accepted (got ${totals.answered})`);
  check(totals.missed === 0, 'no slot was missed');

  const answers = totals.answered;
  const perAnswerUs = (totals.execCpuS / answers) * 1e6;
  const answersPerSec = answers / totals.execCpuS;
  // What the window's blocks cost without their heartbeats (the empty-block average), taken out.
  const baseCpuS = (stats.cpuS / stats.blocks) * (blocks + 1);
  const keyCacheHitRate = cacheHits / answers;
  const rawWithImportsPerSec = 1 / (keyCacheHitRate / ed.verify + (1 - keyCacheHitRate) / ed.verifyCold);
  return {
    chips: CHIPS,
    answers,
    blocks: blocks + 1,
    firstHeight: Number(first),
    lastHeight: Number(last),
    heartbeatBlocks: totals.heartbeatBlocks,
    txs: totals.txs,
    maxAnswersPerTx,
    maxAnswersPerBlock,
    layout,
    execCpuS: totals.execCpuS,
    commitCpuS: totals.commitCpuS,
    wallS,
    setupWallS: setupWallS + streamBuildWallS,
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    warmKeys,
    perAnswerUs,
    answersPerSec,
    rawAlongside: ed,
    ratioToEd25519: answersPerSec / ed.verify,
    baseCpuS,
    netPerAnswerUs: ((totals.execCpuS - baseCpuS) / answers) * 1e6,
    rawWithImportsPerSec,
    ratioToEd25519WithImports: answersPerSec / rawWithImportsPerSec,
    keyCacheHitRate,
    stats,
    bareStats,
    readsPerAnswer: totals.hbReads / totals.hbAnswers,
    writesPerAnswer: totals.hbWrites / totals.hbAnswers,
    maxReadsPerAnswer: totals.maxReadsPerAnswer,
    maxWritesPerAnswer: totals.maxWritesPerAnswer,
    pooled,
  };
}

// ---------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  console.log(
    `node ${process.version}, ${process.platform}/${process.arch}, ${cpus().length}x ${cpus()[0]?.model ?? '?'}, ` +
      `${fmt(totalmem() / 2 ** 30)} GiB, load average ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
  );
  console.log(
    `rates are operations per second of process CPU time (one thread): ${fmt(SECONDS, 1)} s each after a ` +
      `warm-up, in ${ROUNDS} rounds interleaved with what they are compared with; the best round counts`,
  );

  if (EPOCH_ONLY) {
    const ed = rawCases().find((c) => c.name === 'Ed25519')!;
    check(ed.verifyWith(ed.publicKey), 'Ed25519 verifies');
    reportEpoch(await runEpoch(ed), {});
    return;
  }

  // 1. Raw rates
  console.log('');
  console.log('1. Raw single-core verify rates, node:crypto, cached KeyObjects, 32-byte message:');
  const raw = {} as Record<Primitive, RawResult>;
  const rawByName = new Map<Primitive, RawCase>();
  const all = rawCases();
  const warm = (c: RawCase) => () => {
    if (!c.verifyWith(c.publicKey)) throw new Error(`${c.label} failed`);
  };
  const cold = (c: RawCase) => () => {
    if (!c.verifyWith(importSpki(c.spki))) throw new Error(`${c.label} failed`);
  };
  for (const c of all) {
    check(c.verifyWith(c.publicKey), `${c.label} verifies`);
    rawByName.set(c.name, c);
  }
  const rates = measureTogether([...all.map(warm), ...all.map(cold)]);
  all.forEach((c, k) => {
    const v = rates[k]!;
    const c2 = rates[all.length + k]!;
    raw[c.name] = { verify: v.perSec, verifyCold: c2.perSec };
    console.log(
      `   ${c.label.padEnd(30)} ${fmt(v.perSec).padStart(8)} verifies/s (${fmt(1e6 / v.perSec, 1).padStart(6)} µs); ` +
        `importing the key first each time: ${fmt(c2.perSec).padStart(6)}/s ` +
        `(${fmt(1e6 / c2.perSec, 1).padStart(6)} µs, key import +${fmt(1e6 / c2.perSec - 1e6 / v.perSec, 1)} µs)`,
    );
  });
  progress('raw: done');
  // Core imports keys from SPKI DER. For comparison only: the same key from JWK (no DER decoding).
  const edCase = rawByName.get('Ed25519')!;
  const edJwk = {
    kty: 'OKP',
    crv: 'Ed25519',
    x: edCase.spki.subarray(ED25519_SPKI_PREFIX).toString('base64url'),
  };
  const [importDer, importJwk] = measureTogether(
    [
      () => {
        importSpki(edCase.spki);
      },
      () => {
        createPublicKey({ key: edJwk, format: 'jwk' });
      },
    ],
    SECONDS / 2,
  ) as [Rate, Rate];
  console.log(
    `   Ed25519 key import alone: ${fmt(1e6 / importDer.perSec, 1)} µs from SPKI DER (core's way), ` +
      `${fmt(1e6 / importJwk.perSec, 1)} µs from JWK (for comparison)`,
  );

  // 2. Profiles
  console.log('');
  console.log(
    '2. Attestation profiles, steady state: warm caches (core caches KeyObjects by key, so after the first call ' +
      'no key is imported again; a key seen for the first time adds the import cost shown in 1.):',
  );
  const { cases, trust } = profileCases();
  const profiles: Record<string, unknown>[] = [];
  for (const c of cases) {
    const statement = verifyEvidence(c.evidence, trust, c.atMs, c.message);
    check(statement.profile === c.profile, `${c.profile} registration verifies`);
    const chip: Chip = {
      ...registeredChipTemplate(),
      chipId: statement.chipId,
      vendorId: statement.vendorId,
      modelId: statement.modelId,
      profile: c.profile,
      keyMaterial: c.keyMaterial(statement.details),
    };
    verifyHeartbeat(chip, c.heartbeat, c.message);
    // The raw verifies this profile uses, measured again in rounds interleaved with it.
    const prims = [...new Set<Primitive>([c.primitive, ...c.registrationVerifies])];
    const rates = measureTogether([
      ...prims.map((p) => warm(rawByName.get(p)!)),
      () => {
        verifyEvidence(c.evidence, trust, c.atMs, c.message);
      },
      () => {
        verifyHeartbeat(chip, c.heartbeat, c.message);
      },
    ]);
    const alongside = new Map(prims.map((p, k) => [p, rates[k]!.perSec]));
    const reg = rates[prims.length]!;
    const hb = rates[prims.length + 1]!;
    const matching = alongside.get(c.primitive)!;
    const rawCostS = c.registrationVerifies.reduce((s, p) => s + 1 / alongside.get(p)!, 0);
    const n = c.registrationVerifies.length;
    const regInfo = `${n} signature check${n === 1 ? '' : 's'}: ${countVerifies(c.registrationVerifies)}`;
    const rawInfo = prims.map((p) => `${p} ${fmt(alongside.get(p)!)}/s`).join(', ');
    console.log(
      `   ${c.profile} (evidence signed with ${c.primitive}; raw verifies measured alongside: ${rawInfo}):`,
    );
    console.log(
      `     registration ${fmt(reg.perSec, 1).padStart(9)}/s = ${(reg.perSec / matching).toFixed(3)}x raw ${c.primitive}` +
        ` (${regInfo}; ${(reg.perSec * rawCostS * 100).toFixed(0)}% of its time is those raw verifies)`,
    );
    console.log(
      `     heartbeat    ${fmt(hb.perSec, 1).padStart(9)}/s = ${(hb.perSec / matching).toFixed(3)}x raw ${c.primitive}` +
        ` (${fmt(1e6 / hb.perSec, 1)} µs, of which raw verify ${fmt(1e6 / matching, 1)} µs)`,
    );
    profiles.push({
      profile: c.profile,
      primitive: c.primitive,
      rawAlongsidePerSec: Object.fromEntries(alongside),
      registrationPerSec: reg.perSec,
      registrationRatio: reg.perSec / matching,
      registrationVerifies: c.registrationVerifies,
      registrationRawShare: reg.perSec * rawCostS,
      heartbeatPerSec: hb.perSec,
      heartbeatRatio: hb.perSec / matching,
    });
    progress(`profiles: ${c.profile} done`);
  }

  reportEpoch(await runEpoch(edCase), {
    seconds: SECONDS,
    raw: Object.fromEntries(
      Object.entries(raw).map(([k, v]) => [
        k,
        { verifyPerSec: v.verify, verifyWithImportPerSec: v.verifyCold },
      ]),
    ),
    ed25519ImportUs: { spkiDer: 1e6 / importDer.perSec, jwk: 1e6 / importJwk.perSec },
    profiles,
  });
}

/** Prints part 3 and the JSON summary (with `parts12`, the figures of parts 1 and 2 when they ran). */
function reportEpoch(e: Awaited<ReturnType<typeof runEpoch>>, parts12: Record<string, unknown>): void {
  // 3. Epoch
  console.log('');
  console.log(
    `3. The chain processing the heartbeats of ${fmt(CHIPS)} dev chips${ANSWERING < CHIPS ? ` (${fmt(ANSWERING)} of them answering, --answering; the others silent)` : ''} (each block challenges one of ${fmt(Number(challengeClasses(POCI)))} classes: 4 challenges per chip per epoch in expectation): CPU time per epoch`,
  );
  console.log(
    `   epoch ${EPOCH} (epochBlocks ${POCI.epochBlocks}, slotsPerEpoch ${POCI.slotsPerEpoch}, answerWindowBlocks ` +
      `${POCI.answerWindowBlocks}): blocks ${e.firstHeight}…${e.lastHeight} (${fmt(e.blocks)} blocks: ` +
      (e.blocks - 1 === Number(POCI.epochBlocks)
        ? 'the epoch and the block after its last slot block)'
        : `the epoch's first ${fmt(e.blocks - 1)} blocks (--blocks) and the block after the last of them)`),
  );
  console.log(
    `   ${fmt(e.answers)} answers, each in the block right after its challenging block: ${fmt(e.txs)} fee-free Heartbeat ` +
      `transactions in ${fmt(e.heartbeatBlocks)} blocks (at most ${fmt(e.maxAnswersPerBlock)} answers in a block, ` +
      `${fmt(e.maxAnswersPerTx)} in a transaction: an answer is ${e.layout.perAnswer} bytes, so maxTxBytes ` +
      `${fmt(DEFAULT_PARAMS.maxTxBytes)} binds before ${MAX_ANSWERS_PER_HEARTBEAT} answers per action)`,
  );
  console.log(
    "   executed with BlockExecutor like a node: every answer's Ed25519 signature checked against the chip's key " +
      'in state; transaction signatures pre-verified (isSignatureVerified, as after mempool admission: ' +
      `${fmt(e.txs)} Ed25519 verifies, ${((e.txs / e.answers) * 100).toFixed(1)}% as many as answers); chips written into state at genesis (copies of ` +
      `a record core wrote for a registered chip) with their first slots in epoch ${EPOCH}; trie and storage not included`,
  );
  console.log(
    `   CPU time for the epoch: ${fmt(e.execCpuS, 2)} s in BlockExecutor (${fmt(e.wallS, 2)} s wall incl. ` +
      `committing to the in-memory state, which took ${fmt(e.commitCpuS, 2)} s CPU)`,
  );
  console.log(
    `   per answer ${fmt(e.perAnswerUs, 1)} µs; ${fmt(e.answersPerSec)} answers/s; ` +
      `answers/s ÷ raw Ed25519 verify/s = ${e.ratioToEd25519.toFixed(3)} (raw Ed25519 sampled in between the ` +
      `blocks: ${fmt(e.rawAlongside.verify)}/s warm, ${fmt(e.rawAlongside.verifyCold)}/s with a key import)`,
  );
  if (e.rawAlongside.verifyWorkload !== null) {
    console.log(
      `   raw Ed25519 over the run's own answers (up to 20,000 different keys, messages and signatures in turn, ` +
        `KeyObjects imported beforehand), sampled alongside: ${fmt(e.rawAlongside.verifyWorkload)}/s ` +
        `(${((e.rawAlongside.verifyWorkload / e.rawAlongside.verify) * 100).toFixed(0)}% of the one-key rate); ` +
        `answers/s ÷ that = ${(e.answersPerSec / e.rawAlongside.verifyWorkload).toFixed(3)}`,
    );
  }
  const modes = [...new Set(e.pooled.map((r) => r.mode))];
  for (const mode of modes) {
    const runs = e.pooled.filter((r) => r.mode === mode);
    // The run with the median ratio stands for the mode (its CPU figures below are that run's).
    const run = medianRun(runs);
    const ratios = runs.map(ratioOf);
    const perSec = run.answered / run.wallS;
    console.log(
      `   ${run.mode.startsWith('pipelined') ? 'pipelined' : run.mode.startsWith('optimistic') ? 'optimistic' : "with the node's verify pool"} (${run.threads} worker threads, ${availableParallelism()} cores): ` +
        (run.mode === 'node'
          ? "each block's signatures checked on the pool, then the block executed, the main thread waiting for the workers (the consensus driver's order before it shared the checks): "
          : run.mode === 'shared'
            ? "the same, the main thread checking its share (BlockPreverifier shareWithCaller) instead of waiting (the consensus driver's order for a proposal until it executed optimistically): "
            : run.mode === 'pipelined'
              ? "the next block checked on the pool while this one executes (block sync's order, sync-reactor prepare), the main thread not sharing: "
              : run.mode === 'pipelined-shared'
                ? "the same, the main thread sharing the next block's checks (shareWithCaller, as the node's driver builds its pre-checker for sync too): "
                : run.mode === 'optimistic'
                  ? 'a block executed while its own checks run on the pool, accepted once those it relied on are back, the main thread not helping: '
                  : "the same, the main thread helping with the checks left once it has executed (the consensus driver's order for a proposal): ") +
        `${fmt(run.wallS, 2)} s wall (${fmt(run.cpuS, 2)} s CPU, all threads) for ${fmt(run.answered)} answers, ` +
        `${fmt((run.wallS / run.answered) * 1e6, 1)} µs wall per answer; ${fmt(perSec)} answers/s; answers/s ÷ raw ` +
        `Ed25519 verify/s on one core = ${ratioOf(run).toFixed(3)} ` +
        `(${fmt(run.poolChecks)} signatures checked on the pool; same state as inline)`,
    );
    console.log(
      `     ${runs.length} run${runs.length === 1 ? '' : 's'}, each ÷ the raw rate sampled right beside it: ` +
        `median ${ratioOf(run).toFixed(3)}, lowest ${Math.min(...ratios).toFixed(3)}, highest ` +
        `${Math.max(...ratios).toFixed(3)} (${runs
          .map(
            (r) =>
              `round ${r.round}: ${ratioOf(r).toFixed(3)}, raw ${fmt(r.rawVerify)}/s, load ${r.loadBefore.toFixed(2)}`,
          )
          .join('; ')})`,
    );
    if (run.mainCpuS !== null) {
      // Load-independent: what the executing thread spends per answer once the signatures are
      // checked elsewhere, i.e. the rate one core sustains with enough cores verifying beside it.
      const mainUs = (run.mainCpuS / run.answered) * 1e6;
      const otherUs = ((run.cpuS - run.mainCpuS) / run.answered) * 1e6;
      const workers =
        run.workerCpuS === null
          ? `workers and other threads ${fmt(otherUs, 1)} µs`
          : `the pool's worker threads ${fmt((run.workerCpuS / run.answered) * 1e6, 1)} µs ` +
            `(${fmt((run.workerCpuS / Math.max(1, run.poolChecks)) * 1e6, 1)} µs per signature checked there, raw ` +
            `verify ${fmt(1e6 / run.rawVerify, 1)} µs), other threads (GC, I/O) ` +
            `${fmt(((run.cpuS - run.mainCpuS - run.workerCpuS) / run.answered) * 1e6, 1)} µs`;
      console.log(
        `     CPU per answer: main thread ${fmt(mainUs, 1)} µs (gathering the checks, executing, committing), ` +
          `${workers}; the main thread alone sustains ${fmt(1e6 / mainUs)} answers/s ` +
          `= ${(1e6 / mainUs / run.rawVerify).toFixed(3)} x raw Ed25519 verify on one core` +
          (run.workerCpuS === null
            ? ''
            : `; on ${availableParallelism()} idle cores these CPU figures bound the rate at ` +
              `${(cpuBoundRate(run) / run.rawVerify).toFixed(3)} x raw (main and workers overlapping when pipelined or optimistic, ` +
              "added up in the driver's order; an upper bound, not a wall-clock measurement)"),
      );
    }
  }
  console.log(
    `   of that, the window's ${fmt(e.blocks)} blocks cost ${fmt(e.baseCpuS, 2)} s without their heartbeats ` +
      `(the empty-block average below); the rest is ${fmt(e.netPerAnswerUs, 1)} µs per answer`,
  );
  console.log(
    `   core's Ed25519 KeyObject cache holds ${fmt(ED25519_KEY_CACHE)} keys (FIFO): in this order of answers about ` +
      `${(e.keyCacheHitRate * 100).toFixed(0)}% find their chip's key there (simulated), the others import it ` +
      `(${WARM_KEYS ? 'warmed first, --warm-keys: the steady state' : 'cold, not steady state'}); raw Ed25519 verify plus those imports: ${fmt(e.rawWithImportsPerSec)}/s, ` +
      `answers/s ÷ that = ${e.ratioToEd25519WithImports.toFixed(3)}`,
  );
  if (e.warmKeys)
    console.log(
      `   --warm-keys: ${fmt(e.warmKeys.keys)} keys imported before the window; the process's RSS grew ` +
        `${fmt(e.warmKeys.rssBytesPerKey)} bytes per key held (KeyObject and its OpenSSL key)`,
    );
  const epochSeconds = (e.blocks - 1) * (DEFAULT_PARAMS.blockTimeMs / 1000);
  console.log(
    `   at ${DEFAULT_PARAMS.blockTimeMs} ms blocks the measured blocks last ${fmt(epochSeconds)} s: heartbeats take ` +
      `${((e.execCpuS / epochSeconds) * 100).toFixed(2)}% of one core`,
  );
  console.log(
    `   state reads/writes per block without heartbeats (${fmt(e.chips)} chips in state): ${describeEmpty(e.stats)}`,
  );
  console.log(
    `   state reads/writes of the blocks with answers (the block's own included, tx overlays counted ` +
      `once more when they commit): ${e.readsPerAnswer.toFixed(1)} reads, ${e.writesPerAnswer.toFixed(1)} writes ` +
      `per answer on average (at most ${e.maxReadsPerAnswer.toFixed(1)} / ${e.maxWritesPerAnswer.toFixed(1)} in a block)`,
  );
  console.log(
    `   the same blocks with 0 chips in state: ${describeEmpty(e.bareStats)}; ` +
      `${fmt((e.stats.cpuS / e.stats.blocks) * 1e6, 1)} µs CPU per such block`,
  );
  console.log(
    `   (setup, signing and transaction building, not measured: ${fmt(e.setupWallS, 1)} s wall` +
      `${STREAM ? ', --stream: each block built just before it ran' : ''}; peak RSS ${fmt(e.peakRssMiB)} MiB)`,
  );

  const summary = {
    bench: 'attest',
    node: process.version,
    cpu: cpus()[0]?.model ?? null,
    cores: cpus().length,
    ...parts12,
    epoch: {
      chips: e.chips,
      answers: e.answers,
      blocks: e.blocks,
      txs: e.txs,
      maxAnswersPerTx: e.maxAnswersPerTx,
      pooled: e.pooled.map((r) => ({
        ...r,
        answersPerWallSec: r.answered / r.wallS,
        ratioToEd25519: ratioOf(r),
        mainThreadRatioToEd25519: r.mainCpuS === null ? null : r.answered / r.mainCpuS / r.rawVerify,
        cpuBoundRatioToEd25519: r.workerCpuS === null ? null : cpuBoundRate(r) / r.rawVerify,
      })),
      pooledByMode: Object.fromEntries(
        [...new Set(e.pooled.map((r) => r.mode))].map((mode) => {
          const ratios = e.pooled.filter((r) => r.mode === mode).map(ratioOf);
          return [
            mode,
            {
              runs: ratios.length,
              medianRatio: ratioOf(medianRun(e.pooled.filter((r) => r.mode === mode))),
              lowestRatio: Math.min(...ratios),
              highestRatio: Math.max(...ratios),
            },
          ];
        }),
      ),
      txSignatures: 'pre-verified (isSignatureVerified)',
      execCpuS: e.execCpuS,
      commitCpuS: e.commitCpuS,
      wallS: e.wallS,
      perAnswerUs: e.perAnswerUs,
      answersPerSec: e.answersPerSec,
      ratioToEd25519: e.ratioToEd25519,
      baseCpuS: e.baseCpuS,
      netPerAnswerUs: e.netPerAnswerUs,
      ratioToEd25519WithImports: e.ratioToEd25519WithImports,
      keyCacheHitRate: e.keyCacheHitRate,
      readsPerAnswer: e.readsPerAnswer,
      writesPerAnswer: e.writesPerAnswer,
      emptyBlockReadsWrites: Object.fromEntries(e.stats.ordinary),
      emptyBlockReadsWritesNoChips: Object.fromEntries(e.bareStats.ordinary),
      epochStartReadsWrites: e.stats.epochStart.map((s) => ({
        height: Number(s.height),
        reads: s.reads,
        writes: s.writes,
      })),
    },
  };
  console.log(`json: ${JSON.stringify(summary)}`);
}

await main();
