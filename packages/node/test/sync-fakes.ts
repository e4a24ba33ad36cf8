/**
 * Shared by the block-sync tests against peers that lie or answer short (sync-liar, sync-budget):
 * chains on disk of the dev genesis, grown with empty blocks, and a fake network whose peers each
 * claim a height and answer ranges as the test says, counting what was asked and who was penalised.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ed25519PublicKey } from '@unc/core';
import { Chain } from '../src/chain.js';
import { devGenesisJson, devValidator } from '../src/dev.js';
import { type LogFields, type Logger, silentLogger } from '../src/log.js';
import type { BlockRequestOptions, ChainStatus, Network } from '../src/p2p/types.js';
import { ChainDb } from '../src/storage/db.js';
import { chainServer } from '../src/sync.js';

export const GENESIS = devGenesisJson({ time: new Date('2026-06-01T00:00:00Z') });

/** Chains opened in temporary directories named `prefix…`; `close` closes and removes them all. */
export function tempChains(prefix: string) {
  const dirs: string[] = [];
  const dbs: ChainDb[] = [];
  return {
    async open(): Promise<Chain> {
      const dir = mkdtempSync(join(tmpdir(), prefix));
      dirs.push(dir);
      const db = await ChainDb.open(dir);
      dbs.push(db);
      return Chain.open(db, GENESIS, silentLogger);
    },
    async close(): Promise<void> {
      await Promise.all(dbs.map((d) => d.close()));
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    },
  };
}

/**
 * Empty blocks up to `height`, proposed by the dev validator; `laterMs` later than the default
 * times (500: another history from the same genesis, as old keys could sign).
 */
export async function grow(chain: Chain, height: bigint, laterMs = 0n): Promise<void> {
  const v = devValidator();
  const key = { seed: v.seed, publicKey: ed25519PublicKey(v.seed) };
  for (let i = chain.height + 1n; i <= height; i++)
    await chain.proposeAndCommit(
      [],
      chain.nextBlockTime(BigInt(Date.parse('2026-06-01T00:00:00Z')) + i * 1000n + laterMs),
      key,
      () => false,
    );
}

/** A peer of the fake network: its status claim and how it answers a range. */
export interface FakePeer {
  claim(): bigint;
  /** `opts`: the requester's cancel signal and first-block callback, for peers that use them. */
  blocks(from: bigint, to: bigint, opts?: BlockRequestOptions): Promise<Uint8Array[]>;
}

export interface Log {
  asked: Map<string, number>;
  penalized: string[];
}

export const newLog = (): Log => ({ asked: new Map(), penalized: [] });

export function fakeNetwork(
  source: Pick<Chain, 'genesis' | 'genesisHash' | 'head'>,
  peers: Record<string, FakePeer>,
  log: Log,
): Network {
  const status = (height: bigint): ChainStatus => ({
    chainId: source.genesis.chainId,
    genesisHash: source.genesisHash,
    height,
    headHash: source.head.hash,
  });
  return {
    peerId: 'me',
    listenAddrs: [],
    publish: async () => {},
    peers: () => Object.keys(peers).map((id) => ({ id, addrs: [], status: null, score: 0 })),
    requestStatus: async (peer) => status(peers[peer]!.claim()),
    requestBlocks: async (peer, from, to, opts) => {
      log.asked.set(peer, (log.asked.get(peer) ?? 0) + 1);
      return peers[peer]!.blocks(from, to, opts);
    },
    requestTxs: async () => [],
    penalize: (peer) => log.penalized.push(peer),
    onPeerConnected: () => () => {},
    sendDirect: async () => {},
    stop: async () => {},
  };
}

/** A peer serving `chain`'s blocks, or what `at(from)` answers in their place where it answers. */
export const peerOf = (chain: Chain, at?: (from: bigint) => Uint8Array[] | null): FakePeer => {
  const server = chainServer(chain);
  return {
    claim: () => chain.height,
    blocks: async (from, to) => at?.(from) ?? server.blocks(from, to),
  };
};

/** A logger that records each line as `level message`. */
export function recordingLogger(lines: string[]): Logger {
  const rec =
    (level: string) =>
    (msg: string, _f?: LogFields): void => {
      lines.push(`${level} ${msg}`);
    };
  const logger: Logger = {
    ...silentLogger,
    debug: rec('debug'),
    info: rec('info'),
    warn: rec('warn'),
    error: rec('error'),
    child: () => logger,
  };
  return logger;
}
