/**
 * What the `/blocks/1` serving tests (blocks-serve, blocks-serve-drain, blocks-serve-stall) start
 * the same way: a chain on the dev genesis in a temp dir, and loopback networks that serve its
 * status and a `blocks` handler, each with a node key of its own. One per test file (the stall
 * test: one per run); `close` (in its `after`) stops the networks, then closes the databases and
 * removes the dirs.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Chain } from '../src/chain.js';
import { devGenesisJson } from '../src/dev.js';
import { silentLogger } from '../src/log.js';
import { type Libp2pNetwork, type NetworkOptions, startNetwork } from '../src/p2p/libp2p.js';
import type { NetworkHandlers } from '../src/p2p/types.js';
import { ChainDb } from '../src/storage/db.js';
import { chainServer } from '../src/sync.js';

export const SERVE_GENESIS = devGenesisJson({ time: new Date('2026-06-01T00:00:00Z') });

/** `firstSeed`: the byte the first node key is filled with, the next ones counting up from it. */
export function serveNetworks(opts: { dirPrefix: string; firstSeed: number }) {
  const dirs: string[] = [];
  const dbs: ChainDb[] = [];
  const nets: Libp2pNetwork[] = [];
  let seed = opts.firstSeed;
  return {
    /** A chain at genesis, in a temp dir of its own. */
    async chain(): Promise<Chain> {
      const dir = mkdtempSync(join(tmpdir(), opts.dirPrefix));
      dirs.push(dir);
      const db = await ChainDb.open(dir);
      dbs.push(db);
      return Chain.open(db, SERVE_GENESIS, silentLogger);
    },
    /** A network on loopback serving `chain`'s status and `blocks`, with `extra` options. */
    async net(
      chain: Chain,
      blocks: NetworkHandlers['blocks'],
      extra: Partial<NetworkOptions> = {},
    ): Promise<Libp2pNetwork> {
      const n = await startNetwork({
        listen: ['/ip4/127.0.0.1/tcp/0'],
        nodeKey: new Uint8Array(32).fill(seed++),
        chainId: chain.genesis.chainId,
        genesisHash: chain.genesisHash,
        scoring: { recoveryPerSecond: 0 },
        logger: silentLogger,
        handlers: { onGossip: () => 'ignore', status: chainServer(chain).status, blocks },
        ...extra,
      });
      nets.push(n);
      return n;
    },
    async close(): Promise<void> {
      await Promise.all(nets.map((n) => n.stop()));
      await Promise.all(dbs.map((d) => d.close()));
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    },
  };
}
