/**
 * bench:signer — what the signer file (consensus/privval-store.ts) costs a proposer per height:
 * the three saves of a height as the driver makes them (the proposal with its block's record file,
 * then the prevote, then the precommit; each fsynced before its signature is released), on a
 * realistic block of signed transfers, with real signatures from a PrivValidator.
 *
 *   npm run bench:signer -- [--heights 10] [--txs 5000] [--dir <a directory on the disk to measure>]
 *
 * Per height: main-thread CPU (user + system) and wall time of the three saves. The machine's own
 * limit, measured in the same run on the same directory: the raw writes the saves cannot do
 * without (the record's bytes once and the state file's three times, each written and fsynced,
 * nothing else), alternated with the saves height by height so that both see the same load. The
 * ratios say how far the signer file is from that floor.
 */
import { closeSync, fsyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import {
  type Block,
  blockHash,
  type Commit,
  ed25519PublicKey,
  ed25519Sign,
  encode,
  envelopeFromSigned,
  PrivValidator,
  type SignedTransaction,
  sha256,
  signedTransactionCodec,
  signTransaction,
  utf8,
} from '@unc/core';
import {
  filePrivvalStorage,
  proposalRecordBytes,
  type SignedProposalRecord,
  serializePrivval,
  storePrivval,
} from '../src/consensus/privval-store.js';
import { devGenesisJson, devKey } from '../src/dev.js';

const { values } = parseArgs({
  options: {
    heights: { type: 'string', default: '10' },
    txs: { type: 'string', default: '5000' },
    dir: { type: 'string' },
  },
});
const HEIGHTS = Number(values.heights);
const TXS = Number(values.txs);
const CHAIN_ID = String(devGenesisJson({ time: new Date() }).chainId);

/** TXS transfers from 200 senders, signed as a wallet signs them (their bytes are what a block holds). */
function transfers(): Uint8Array[] {
  const senders = Array.from({ length: 200 }, (_, i) => devKey(i + 1));
  const to = devKey(0).address;
  return Array.from({ length: TXS }, (_, i) => {
    const from = senders[i % senders.length]!;
    const base = {
      chainId: CHAIN_ID,
      signer: from.publicKey,
      nonce: BigInt(Math.floor(i / senders.length)),
      expiresAt: 1_000_000n,
      actions: [{ type: 'transfer' as const, to, amount: 1_000n, memo: new Uint8Array(0) }],
      fee: 0n,
    };
    // A fee that covers its size at any realistic rate: the record holds the bytes, not their validity.
    const size = encode(signedTransactionCodec, {
      tx: base,
      signature: new Uint8Array(64),
    } as SignedTransaction).length;
    return envelopeFromSigned(signTransaction({ ...base, fee: BigInt(size) * 10n }, from.seed)).bytes;
  });
}

/** A last commit of four validators' precommits, as a four-validator chain's blocks carry. */
function lastCommitFor(height: bigint): Commit {
  const blockHashBefore = sha256(utf8(`block ${height - 1n}`));
  return {
    height: height - 1n,
    round: 0,
    blockHash: blockHashBefore,
    signatures: Array.from({ length: 4 }, (_, k) => {
      const seed = sha256(utf8(`bench validator ${k}`));
      return { validator: ed25519PublicKey(seed), signature: ed25519Sign(seed, blockHashBefore) };
    }),
  };
}

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** The floor: `bytes` written to a fresh file and fsynced (open, write all, fsync, close). */
function rawWrite(path: string, bytes: Uint8Array): void {
  const fd = openSync(path, 'w', 0o600);
  try {
    for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at, bytes.length - at);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0
    ? 0
    : s.length % 2
      ? s[(s.length - 1) / 2]!
      : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

const fmt = (x: number, d = 1) => x.toFixed(d);

async function main(): Promise<void> {
  const base = values.dir ?? tmpdir();
  const dir = mkdtempSync(join(base, 'unc-bench-signer-'));
  try {
    const txs = transfers();
    const seed = sha256(utf8('bench signer validator'));
    const signer = new PrivValidator(seed, CHAIN_ID);
    const storage = filePrivvalStorage(join(dir, 'privval.json'));
    const save = { cpu: [] as number[], wall: [] as number[] };
    const raw = { cpu: [] as number[], wall: [] as number[] };
    let recordBytes = 0;
    let stateBytes = 0;
    for (let i = 0; i < HEIGHTS; i++) {
      const height = BigInt(i + 1);
      const lastCommit = lastCommitFor(height);
      const block: Block = {
        header: {
          chainId: CHAIN_ID,
          height,
          time: 1_000_000n + height * 1_000n,
          prevHash: lastCommit.blockHash,
          stateRoot: sha256(utf8(`state ${height}`)),
          txRoot: sha256(utf8(`txs ${height}`)),
          proposer: signer.publicKey,
          beacon: sha256(utf8(`beacon ${height}`)),
          vrfProof: new Uint8Array(80).fill(6),
          lastCommitHash: sha256(utf8(`last commit ${height}`)),
        },
        txs,
        commit: { height, round: 0, blockHash: new Uint8Array(32), signatures: [] },
      };
      const hash = blockHash(block.header);
      // Signing is not the file's cost: each signature is made first, then its save is timed.
      const proposal = signer.signProposal({
        height,
        round: 0,
        polRound: -1,
        blockHash: hash,
        proposer: signer.publicKey,
      })!;
      const lastProposal: SignedProposalRecord = { proposal, block, lastCommit };
      const publicKey = Buffer.from(signer.publicKey).toString('hex');
      let cpu = 0;
      let wall = 0;
      const timed = (f: () => void) => {
        const c = cpuMs();
        const w = performance.now();
        f();
        wall += performance.now() - w;
        cpu += cpuMs() - c;
      };
      timed(() => storePrivval(storage, { publicKey, state: signer.state, lastProposal }));
      for (const type of ['prevote', 'precommit'] as const) {
        signer.signVote({ type, height, round: 0, blockHash: hash, validator: signer.publicKey });
        timed(() => storePrivval(storage, { publicKey, state: signer.state, lastProposal }));
      }
      save.cpu.push(cpu);
      save.wall.push(wall);

      // The floor for the same height, on the same disk: the record's bytes and the state file's,
      // three times, each written and fsynced (no encoding, no rename, no directory fsync).
      const record = proposalRecordBytes(lastProposal).bytes;
      const state = Buffer.from(serializePrivval({ publicKey, state: signer.state, lastProposal }), 'utf8');
      recordBytes = record.length;
      stateBytes = state.length;
      const c = cpuMs();
      const w = performance.now();
      rawWrite(join(dir, 'raw-record'), record);
      for (let k = 0; k < 3; k++) rawWrite(join(dir, 'raw-state'), state);
      raw.wall.push(performance.now() - w);
      raw.cpu.push(cpuMs() - c);
    }
    const m = {
      saveCpu: median(save.cpu),
      saveWall: median(save.wall),
      rawCpu: median(raw.cpu),
      rawWall: median(raw.wall),
    };
    console.log(
      `bench:signer — ${HEIGHTS} heights, a block of ${TXS} signed transfers (record ${fmt(recordBytes / 1e6, 2)} MB, state file ${stateBytes} bytes), in ${dir}`,
    );
    console.log('per height (median): proposal + prevote + precommit saves');
    console.log(`  signer file:  CPU ${fmt(m.saveCpu)} ms, wall ${fmt(m.saveWall)} ms`);
    console.log(
      `  raw writes:   CPU ${fmt(m.rawCpu)} ms, wall ${fmt(m.rawWall)} ms  (record once + state thrice, each fsynced)`,
    );
    console.log(
      `  ratio signer / raw: CPU ${fmt(m.saveCpu / Math.max(m.rawCpu, 1e-3), 2)} x, wall ${fmt(m.saveWall / Math.max(m.rawWall, 1e-3), 2)} x`,
    );
    console.log(
      `  ranges: signer CPU ${fmt(Math.min(...save.cpu))}–${fmt(Math.max(...save.cpu))} ms, wall ${fmt(Math.min(...save.wall))}–${fmt(Math.max(...save.wall))} ms; raw wall ${fmt(Math.min(...raw.wall))}–${fmt(Math.max(...raw.wall))} ms`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
