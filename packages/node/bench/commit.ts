/**
 * bench:commit — what the overlap of block execution with the previous block's write buys, both
 * ways in one run: a single validator's node core (driver, mempool, chain) on a real LevelDB
 * commits pre-admitted transfers back to back, once with the next height waiting for each
 * block's fsynced batch (`overlapCommit: false`, the old path) and once building and executing
 * the next block while the batch is written (the default). Modes alternate over rounds, each on a
 * fresh database, so both see the same machine load.
 *
 *   npm run bench:commit -- [--heights 30] [--rounds 2] [--senders 200] [--txs 1000]
 *
 * Per mode: the time per height (commit to commit, once durable), finalized transfers/s, the
 * main-thread time of the commit itself (building the batch and handing it to LevelDB), the
 * write's latency (until fsynced), and how long consensus sat waiting for it (old: the whole
 * write; new: only the part not hidden behind the next block's build and execution). The
 * ratio against this machine's own limit: the time per height over the sum of its parts measured
 * in the same run (build and execute + commit until fsynced), which the sequential path pays in
 * full; the rest of a height is signing (each signature's signer state is fsynced first), the
 * machine's steps and the mempool's upkeep.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import {
  DEFAULT_PARAMS,
  ed25519PublicKey,
  encodeAddress,
  envelopeFromSigned,
  signTransaction,
  type TxEnvelope,
} from '@unc/core';
import { feeFor, transferAction } from '@unc/sdk';
import { Chain } from '../src/chain.js';
import { devAccounts, devGenesisJson, devKey, devValidator } from '../src/dev.js';
import { silentLogger } from '../src/log.js';
import { DEFAULT_MEMPOOL_OPTIONS, Mempool } from '../src/mempool.js';
import { NodeCore } from '../src/node-core.js';
import { ChainDb } from '../src/storage/db.js';

const { values } = parseArgs({
  options: {
    heights: { type: 'string', default: '30' },
    rounds: { type: 'string', default: '2' },
    senders: { type: 'string', default: '200' },
    txs: { type: 'string', default: '1000' },
  },
});
const HEIGHTS = Number(values.heights);
const ROUNDS = Number(values.rounds);
const SENDERS = Number(values.senders);
const TXS = Number(values.txs);
/** Every block carries TXS transfers (maxBlockTxs): both modes commit the same blocks. */
const PER_SENDER = Math.ceil(((HEIGHTS + 2) * TXS) / SENDERS);

interface ModeFigures {
  heights: number;
  txs: number;
  wallMs: number;
  /** Commit to commit (durable), per height. */
  perHeightMs: number[];
  /** Main thread: building the batch and handing it over (Chain.startWrite up to its return). */
  commitSyncMs: number[];
  /** Hand-over to fsynced. */
  writeMs: number[];
  /** Consensus waiting on a write: the whole write (sequential), or the signing gate (overlap). */
  stallMs: number[];
  /** Building (proposer) the next block: mempool draw and execution. */
  buildMs: number[];
}

const genesisTime = new Date();
const genesisJson = devGenesisJson({ time: genesisTime, accounts: SENDERS });
const genesis = { ...genesisJson, params: { ...(genesisJson.params as object), maxBlockTxs: TXS } };
const v = devValidator();
const validator = { seed: v.seed, publicKey: ed25519PublicKey(v.seed) };

function presign(): TxEnvelope[] {
  const to = encodeAddress(devKey(0).address);
  const senders = devAccounts(SENDERS);
  const out: TxEnvelope[] = [];
  const chainId = String(genesisJson.chainId);
  for (let nonce = 0; nonce < PER_SENDER; nonce++) {
    for (const s of senders) {
      const base = {
        chainId,
        signer: s.publicKey,
        nonce: BigInt(nonce),
        expiresAt: 80_000n,
        actions: [transferAction(to, 1n)],
      };
      out.push(envelopeFromSigned(signTransaction({ ...base, fee: feeFor(base, DEFAULT_PARAMS) }, s.seed)));
    }
  }
  return out;
}

async function runMode(overlap: boolean, txs: readonly TxEnvelope[]): Promise<ModeFigures> {
  const dir = mkdtempSync(join(tmpdir(), 'unc-bench-commit-'));
  const db = await ChainDb.open(join(dir, 'chain'));
  try {
    const chain = await Chain.open(db, genesis, silentLogger);
    const mempool = new Mempool({
      ...DEFAULT_MEMPOOL_OPTIONS,
      maxTxsPerSender: PER_SENDER + 1,
      maxNonceGap: BigInt(PER_SENDER + 1),
      maxBytesPerSender: 64 * 1024 * 1024,
    });
    const core = new NodeCore({
      chain,
      mempool,
      validator,
      privvalPath: join(dir, 'privval.json'),
      // Heights back to back: the block interval would otherwise hide what a height costs. 1 ms,
      // not 0: the proposer's pacing (HeightPace) refuses an interval that is not positive.
      blockTimeMs: 1,
      logger: silentLogger,
      overlapCommit: overlap,
    });
    for (const env of txs) core.admit(env);
    const f: ModeFigures = {
      heights: 0,
      txs: 0,
      wallMs: 0,
      perHeightMs: [],
      commitSyncMs: [],
      writeMs: [],
      stallMs: [],
      buildMs: [],
    };
    // Instruments the chain's own methods (the bench measures the real path, it changes nothing).
    const internals = chain as unknown as { startWrite: (...a: unknown[]) => Promise<void> };
    const startWrite = internals.startWrite.bind(chain);
    internals.startWrite = (...args: unknown[]) => {
      const t0 = performance.now();
      const written = startWrite(...args);
      const handed = performance.now();
      f.commitSyncMs.push(handed - t0);
      written.then(
        () => {
          f.writeMs.push(performance.now() - t0);
          if (!overlap) f.stallMs.push(performance.now() - handed);
        },
        () => {},
      );
      return written;
    };
    const untilDurable = chain.untilDurable.bind(chain);
    chain.untilDurable = () => {
      const p = untilDurable();
      if (overlap && chain.writing) {
        const t0 = performance.now();
        p.then(
          () => f.stallMs.push(performance.now() - t0),
          () => {},
        );
      }
      return p;
    };
    const build = chain.buildProposal.bind(chain);
    chain.buildProposal = (...args) => {
      const t0 = performance.now();
      const out = build(...args);
      f.buildMs.push(performance.now() - t0);
      return out;
    };
    let last = 0;
    const done = new Promise<void>((resolve) => {
      chain.onCommit((c) => {
        const now = performance.now();
        if (last > 0) f.perHeightMs.push(now - last);
        else f.wallMs = -now;
        last = now;
        if (f.perHeightMs.length > 0) f.txs += c.envelopes.length;
        if (f.perHeightMs.length >= HEIGHTS) resolve();
      });
    });
    await core.driver.start(null);
    // No time budget: every block takes maxBlockTxs transfers, whatever the machine's load.
    core.driver.proposalBudget.budgetMs = Number.MAX_SAFE_INTEGER;
    await done;
    f.wallMs += last;
    f.heights = f.perHeightMs.length;
    await core.stop();
    return f;
  } finally {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
const pct = (xs: number[], p: number) => {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const fmt = (x: number) => x.toFixed(1).padStart(8);

function merge(all: ModeFigures[]): ModeFigures {
  const m: ModeFigures = {
    heights: 0,
    txs: 0,
    wallMs: 0,
    perHeightMs: [],
    commitSyncMs: [],
    writeMs: [],
    stallMs: [],
    buildMs: [],
  };
  for (const f of all) {
    m.heights += f.heights;
    m.txs += f.txs;
    m.wallMs += f.wallMs;
    for (const k of ['perHeightMs', 'commitSyncMs', 'writeMs', 'stallMs', 'buildMs'] as const)
      m[k].push(...f[k]);
  }
  return m;
}

console.log(
  `bench:commit  ${HEIGHTS} heights × ${ROUNDS} rounds per mode, ${SENDERS} senders, ${TXS} transfers a block, LevelDB in ${tmpdir()}`,
);
const t0 = performance.now();
const transfers = presign();
console.log(`pre-signed ${transfers.length} transfers in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
const results: Record<'sequential' | 'overlap', ModeFigures[]> = { sequential: [], overlap: [] };
for (let r = 0; r < ROUNDS; r++) {
  // Alternate the order so that neither mode always runs on a warmer (or busier) machine.
  const order: ('sequential' | 'overlap')[] =
    r % 2 === 0 ? ['sequential', 'overlap'] : ['overlap', 'sequential'];
  for (const mode of order) {
    results[mode].push(await runMode(mode === 'overlap', transfers));
    process.stderr.write(`  round ${r + 1}: ${mode} done\n`);
  }
}

console.log('\n                                   sequential    overlap   (ms unless said; mean / p90)');
const seq = merge(results.sequential);
const ovl = merge(results.overlap);
const row = (name: string, a: number[], b: number[]) =>
  console.log(`${name.padEnd(34)}${fmt(mean(a))} /${fmt(pct(a, 90))}  ${fmt(mean(b))} /${fmt(pct(b, 90))}`);
row('time per height', seq.perHeightMs, ovl.perHeightMs);
row('build + execute next block', seq.buildMs, ovl.buildMs);
row('commit on the main thread', seq.commitSyncMs, ovl.commitSyncMs);
row('commit start until fsynced', seq.writeMs, ovl.writeMs);
row('consensus waiting on the write', seq.stallMs, ovl.stallMs);
const tps = (f: ModeFigures) => (f.txs / f.wallMs) * 1000;
console.log(`${'finalized transfers/s'.padEnd(34)}${fmt(tps(seq))}            ${fmt(tps(ovl))}`);
console.log(
  `${'transfers per block'.padEnd(34)}${fmt(seq.txs / seq.heights)}            ${fmt(ovl.txs / ovl.heights)}`,
);
// The limit of this machine in this run: the sequential path pays the build and the whole commit
// (main thread, then the write until fsynced) per height, one after the other.
const parts = (f: ModeFigures) => mean(f.buildMs) + mean(f.writeMs);
console.log(
  `\nratio time per height / (build + commit until fsynced), same run: sequential ${(mean(seq.perHeightMs) / parts(seq)).toFixed(2)}, overlap ${(mean(ovl.perHeightMs) / parts(ovl)).toFixed(2)}`,
);
console.log(
  `ratio overlap / sequential: time per height ${(mean(ovl.perHeightMs) / mean(seq.perHeightMs)).toFixed(2)}, transfers/s ${(tps(ovl) / tps(seq)).toFixed(2)}, consensus waiting on writes ${(mean(ovl.stallMs) / Math.max(1e-9, mean(seq.stallMs))).toFixed(2)}`,
);
