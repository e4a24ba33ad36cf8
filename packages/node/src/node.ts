/**
 * A running node: chain + mempool + block production (single-validator mode) + RPC + metrics.
 * Everything with timers or sockets lives here; the rules live in @unc/core.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ed25519PublicKey, keyId, type TxEnvelope, toHex, ValidationError } from '@unc/core';
import { createApi } from './api.js';
import { Chain, type CommittedBlock, type ValidatorKey } from './chain.js';
import { explorerHandler } from './explorer.js';
import { createLogger, type Logger } from './log.js';
import { DEFAULT_MEMPOOL_OPTIONS, Mempool, type MempoolOptions } from './mempool.js';
import { Registry } from './metrics.js';
import { startRpcServer } from './rpc/server.js';
import { ChainDb } from './storage/db.js';

export interface NodeOptions {
  /** Data directory; the database lives in `<dataDir>/chain`. */
  dataDir: string;
  genesis: unknown;
  /** The validator's Ed25519 seed; without it the node does not produce blocks. */
  validatorSeed?: Uint8Array;
  rpcHost?: string;
  rpcPort?: number;
  mempool?: Partial<MempoolOptions>;
  /** Overrides the genesis block interval for this node's producer (dev chains). */
  blockTimeMs?: number;
  /** A built explorer (packages/explorer/dist) to serve at /explorer/. */
  explorerDir?: string;
  logger?: Logger;
}

export const NODE_VERSION = '0.1.0';

type TxWatcher = (
  event:
    | { status: 'included'; height: number; index: number; blockHash: string }
    | { status: 'rejected'; code: string; reason: string },
) => void;

export class UncNode {
  readonly metrics = new Registry();
  private stopped = false;
  private producerTimer: NodeJS.Timeout | null = null;
  private producing: Promise<void> = Promise.resolve();
  private rpc: { url: string; wsUrl: string; port: number; close(): Promise<void> } | null = null;
  private readonly txWatchers = new Map<string, Set<TxWatcher>>();
  private readonly blockWatchers = new Set<(b: CommittedBlock) => void>();
  private readonly m;

  private constructor(
    readonly chain: Chain,
    readonly mempool: Mempool,
    private readonly db: ChainDb,
    readonly validator: ValidatorKey | null,
    private readonly blockTimeMs: number,
    readonly logger: Logger,
  ) {
    const r = this.metrics;
    this.m = {
      height: r.gauge('unc_block_height', 'Height of the latest committed block'),
      interval: r.histogram(
        'unc_block_interval_seconds',
        'Time between consecutive committed blocks',
        [0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
      ),
      blockTxs: r.histogram(
        'unc_block_transactions',
        'Transactions per committed block',
        [0, 1, 10, 100, 1000, 5000, 10000, 20000],
      ),
      txs: r.counter('unc_transactions_total', 'Transactions committed'),
      tps: r.gauge('unc_transactions_per_second', 'Transactions per second over the last block interval'),
      mempoolSize: r.gauge('unc_mempool_transactions', 'Transactions waiting in the mempool'),
      mempoolBytes: r.gauge('unc_mempool_bytes', 'Bytes of transactions waiting in the mempool'),
      rejected: r.counter('unc_mempool_rejections_total', 'Transactions refused or dropped, by reason'),
    };
    this.m.height.set(Number(chain.height));
  }

  static async start(opts: NodeOptions): Promise<UncNode> {
    const logger = opts.logger ?? createLogger('node');
    mkdirSync(opts.dataDir, { recursive: true });
    const db = await ChainDb.open(join(opts.dataDir, 'chain'));
    let chain: Chain;
    try {
      chain = await Chain.open(db, opts.genesis, logger.child('chain'));
    } catch (err) {
      await db.close();
      throw err;
    }
    const validator = opts.validatorSeed
      ? { seed: opts.validatorSeed, publicKey: ed25519PublicKey(opts.validatorSeed) }
      : null;
    if (
      validator &&
      !chain.genesis.validators.some((v) => toHex(v.publicKey) === toHex(validator.publicKey))
    ) {
      await db.close();
      throw new Error('the validator key is not a validator of this chain (genesis)');
    }
    const node = new UncNode(
      chain,
      new Mempool({ ...DEFAULT_MEMPOOL_OPTIONS, ...opts.mempool }),
      db,
      validator,
      opts.blockTimeMs ?? chain.params.blockTimeMs,
      logger,
    );
    chain.onCommit((c) => node.afterCommit(c));
    try {
      node.rpc = await startRpcServer(
        {
          host: opts.rpcHost ?? '127.0.0.1',
          port: opts.rpcPort ?? 3030,
          maxBodyBytes: 16 * 1024 * 1024,
          maxBatchSize: 10_000,
          maxWsConnections: 256,
          maxSubscriptionsPerConnection: 10_000,
        },
        {
          ...createApi(node),
          ...(opts.explorerDir ? { httpFallback: explorerHandler(opts.explorerDir) } : {}),
        },
      );
    } catch (err) {
      await db.close();
      throw err;
    }
    if (opts.explorerDir) node.explorerUrl = `${node.rpcUrl}/explorer/`;
    if (validator) node.scheduleNextBlock();
    return node;
  }

  get rpcUrl(): string {
    return this.rpc!.url.replace(/\/$/, '');
  }

  /** Where the explorer is served, when this node serves one. */
  explorerUrl: string | null = null;

  get wsUrl(): string {
    return this.rpc!.wsUrl.replace(/\/$/, '');
  }

  /** Validates and admits a transaction; throws a ValidationError saying why not. */
  submit(env: TxEnvelope): { replaced: boolean } {
    const head = this.chain.head.header;
    try {
      const result = this.mempool.add(env, this.chain.state, this.chain.params, {
        chainId: this.chain.genesis.chainId,
        height: head.height + 1n,
        time: head.time + 1n,
        proposer: head.proposer,
        prevHash: this.chain.head.hash,
        prevBeacon: head.beacon,
      });
      this.m.mempoolSize.set(this.mempool.size);
      this.m.mempoolBytes.set(this.mempool.bytes);
      return result;
    } catch (err) {
      if (err instanceof ValidationError) this.m.rejected.inc(1, { reason: err.code });
      throw err;
    }
  }

  watchTx(hash: Uint8Array, watcher: TxWatcher): () => void {
    const id = keyId(hash);
    let set = this.txWatchers.get(id);
    if (!set) this.txWatchers.set(id, (set = new Set()));
    set.add(watcher);
    return () => {
      set.delete(watcher);
      if (set.size === 0) this.txWatchers.delete(id);
    };
  }

  watchBlocks(watcher: (b: CommittedBlock) => void): () => void {
    this.blockWatchers.add(watcher);
    return () => this.blockWatchers.delete(watcher);
  }

  private notifyTx(hash: Uint8Array, event: Parameters<TxWatcher>[0]): void {
    const set = this.txWatchers.get(keyId(hash));
    if (!set) return;
    this.txWatchers.delete(keyId(hash));
    for (const w of set) w(event);
  }

  private lastBlockTime: bigint | null = null;

  private afterCommit(c: CommittedBlock): void {
    const { header } = c.block;
    this.m.height.set(Number(header.height));
    this.m.txs.inc(c.envelopes.length);
    this.m.blockTxs.observe(c.envelopes.length);
    if (this.lastBlockTime !== null) {
      const seconds = Number(header.time - this.lastBlockTime) / 1000;
      this.m.interval.observe(seconds);
      if (seconds > 0) this.m.tps.set(c.envelopes.length / seconds);
    }
    this.lastBlockTime = header.time;
    const blockHash = toHex(c.hash);
    c.envelopes.forEach((env, index) => {
      this.notifyTx(env.hash, { status: 'included', height: Number(header.height), index, blockHash });
    });
    for (const w of this.blockWatchers) w(c);
  }

  private scheduleNextBlock(): void {
    if (this.stopped) return;
    const next = Number(this.chain.head.header.time) + this.blockTimeMs;
    const delay = Math.max(0, next - Date.now());
    this.producerTimer = setTimeout(() => {
      this.producing = this.produceBlock()
        .then(() => undefined)
        .catch((err) =>
          this.logger.error('block production failed', { error: (err as Error).stack ?? String(err) }),
        )
        .finally(() => this.scheduleNextBlock());
    }, delay);
  }

  /** Builds, commits and announces one block from the mempool. */
  async produceBlock(): Promise<CommittedBlock> {
    if (!this.validator) throw new Error('this node has no validator key');
    const params = this.chain.params;
    const candidates = this.mempool.select(this.chain.state, params.maxBlockTxs, params.maxBlockBytes);
    const time = this.chain.nextBlockTime(BigInt(Date.now()));
    const { committed, rejected } = await this.chain.proposeAndCommit(
      candidates,
      time,
      this.validator,
      this.mempool.isVerified,
    );
    for (const r of rejected) {
      this.m.rejected.inc(1, { reason: r.error.code });
      this.logger.debug('dropped transaction at block building', {
        hash: toHex(r.env.hash),
        reason: r.error.message,
      });
      this.notifyTx(r.env.hash, { status: 'rejected', code: r.error.code, reason: r.error.message });
    }
    this.mempool.prune(
      committed.envelopes,
      rejected.map((r) => r.env),
      this.chain.state,
      committed.block.header.height + 1n,
    );
    this.m.mempoolSize.set(this.mempool.size);
    this.m.mempoolBytes.set(this.mempool.bytes);
    if (committed.envelopes.length > 0 || committed.block.header.height % 60n === 0n) {
      this.logger.info('committed block', {
        height: committed.block.header.height,
        txs: committed.envelopes.length,
        hash: toHex(committed.hash).slice(0, 16),
      });
    }
    return committed;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.producerTimer) clearTimeout(this.producerTimer);
    await this.producing;
    await this.rpc?.close();
    await this.db.close();
  }
}
