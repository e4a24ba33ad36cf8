/**
 * A running node: chain + mempool + consensus driver + peer-to-peer network + RPC + metrics.
 * Everything with timers or sockets lives here; the rules live in @unc/core. Without a network
 * and with the only validator's key, the driver decides every block alone (the dev chain).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ed25519PublicKey, keyId, type TimeoutParams, type TxEnvelope, toHex, UncError } from '@unc/core';
import {
  type AdmissionOptions,
  type AdmissionQueue,
  type AdmissionResult,
  eventLoopSlices,
} from './admission.js';
import { createApi } from './api.js';
import { Chain, type CommittedBlock, type TrustedCheckpoint, type ValidatorKey } from './chain.js';
import { systemClock } from './clock.js';
import type { ConsensusDriver } from './consensus/driver.js';
import { filePrivvalStorage } from './consensus/privval-store.js';
import { refuseFreshSignerAfterSigning } from './consensus/signer-guard.js';
import { explorerHandler } from './explorer.js';
import { createLogger, type Logger } from './log.js';
import { DEFAULT_MEMPOOL_OPTIONS, type DroppedTx, Mempool, type MempoolOptions } from './mempool.js';
import { Registry } from './metrics.js';
import { NodeCore } from './node-core.js';
import type { NetworkMetricsHooks } from './p2p/libp2p.js';
import { networkMetrics } from './p2p/network-metrics.js';
import type { Network, NetworkHandlers } from './p2p/types.js';
import type { RpcContext, TxWatcher } from './rpc/context.js';
import { type RpcLimits, startRpcServer } from './rpc/server.js';
import { rpcCosts } from './rpc-costs.js';
import { instrumentRpcMethods } from './rpc-metrics.js';
import { registerRuntimeMetrics } from './runtime-metrics.js';
import { ChainDb } from './storage/db.js';
import { VerifyPool, type VerifyPoolOptions } from './verify-pool.js';

export interface NodeOptions {
  /** Data directory; the database lives in `<dataDir>/chain`. */
  dataDir: string;
  genesis: unknown;
  /** The validator's Ed25519 seed; without it the node follows the chain without voting. */
  validatorSeed?: Uint8Array;
  /**
   * Start a validator with a fresh signer although `privval.json` is missing and the chain store's
   * last commits hold this key's precommits (consensus/signer-guard.ts; refused otherwise), and let
   * it sign at once: without it a fresh signer signs nothing until the node has caught up with its
   * peers and the commits it then holds show no precommit of this key (fatal, exit 70, if they do:
   * driver.ts `releaseSigner`). For one start, after the operator made sure the node cannot vote
   * again at a height it voted at.
   */
  allowFreshSigner?: boolean;
  /**
   * A block height and hash the operator trusts (`unc start --trusted-checkpoint`, config
   * `sync.trustedCheckpoint`): no other block at its height is accepted, a store holding another is
   * refused at start, and sync stops if the checkpoint does not extend the head (Chain.trustCheckpoint).
   */
  trustedCheckpoint?: TrustedCheckpoint;
  /**
   * Starts the peer-to-peer network with the handlers the node answers peers with. Without it the
   * node has no peers: a single-validator chain.
   */
  network?: (handlers: NetworkHandlers, chain: Chain, metrics: NetworkMetricsHooks) => Promise<Network>;
  /** Consensus round timeouts (defaults suit ~1 s blocks). */
  timeouts?: TimeoutParams;
  rpcHost?: string;
  rpcPort?: number;
  /** RPC limits (docs/rpc.md); each one left out takes its DEFAULT_RPC_LIMITS value. */
  rpc?: Partial<RpcLimits>;
  mempool?: Partial<MempoolOptions>;
  /** Overrides the genesis block interval for this node (dev chains). */
  blockTimeMs?: number;
  /**
   * A decided block could not be written to disk, or the signer state could not be saved;
   * consensus has already stopped. Default: log and exit the process with status 70, since no
   * later block may build on state not on disk, and a validator that cannot save what it signed
   * must not sign.
   */
  onFatal?: (error: Error) => void;
  /**
   * A decided block whose write is pending this long (ms) is taken as failed: `onFatal`, as for a
   * write that reported an error (DriverOptions.blockWriteTimeoutMs; config.json `consensus`).
   */
  blockWriteTimeoutMs?: number;
  /** A built explorer (packages/explorer/dist) to serve at /explorer/. */
  explorerDir?: string;
  logger?: Logger;
  /** Signature-check worker threads and their queue bounds (default: defaultVerifyThreads, a worker per core where they run below the main thread, Linux, else one per core but one). */
  verifyPool?: Partial<VerifyPoolOptions>;
  /** The admission queue's bound and slice length (admission.ts). */
  admission?: Partial<AdmissionOptions>;
  /**
   * Whether a validator's proposal size follows how long heights take (HeightPace; default true,
   * `consensus.paceHeights` in config.json): off, the execution budget alone (an A/B baseline).
   */
  paceHeights?: boolean;
  /**
   * Aborted (SIGINT/SIGTERM during `unc start`): start() takes no further step, stops what it has
   * started (the database closed, the RPC server and network stopped) and rejects with
   * START_ABORTED. A step under way (the database opening, libp2p starting) runs to its end first.
   */
  signal?: AbortSignal;
}

/** The rejection of a start() whose `signal` was aborted. */
export function startAborted(): UncError {
  return new UncError('START_ABORTED', 'the node was stopped while it was starting');
}

export { NODE_VERSION } from './version.js';

export class UncNode {
  readonly metrics = new Registry();
  private stopped = false;
  /** Set once started: chain, mempool and the consensus driver with its reactors. */
  core!: NodeCore;
  /** Set once started: runs consensus (or, alone, decides every block itself). */
  driver!: ConsensusDriver;
  network: Network | null = null;
  /** The hooks the node's network reports to, as Prometheus series of `metrics`. */
  readonly networkMetrics: NetworkMetricsHooks;
  private rpc: { url: string; wsUrl: string; port: number; close(): Promise<void> } | null = null;
  private readonly txWatchers = new Map<string, Set<TxWatcher>>();
  private readonly blockWatchers = new Set<(b: CommittedBlock) => void>();
  private readonly m;
  private readonly stopRuntimeMetrics: () => void;
  /** Ed25519 checks on worker threads: admission, and a proposed or synced block's signatures. */
  readonly verifyPool: VerifyPool;

  private constructor(
    readonly chain: Chain,
    readonly mempool: Mempool,
    private readonly db: ChainDb,
    readonly validator: ValidatorKey | null,
    readonly blockTimeMs: number,
    readonly logger: Logger,
    opts: Pick<NodeOptions, 'verifyPool' | 'admission'> = {},
  ) {
    this.verifyPool = new VerifyPool(opts.verifyPool);
    const r = this.metrics;
    this.stopRuntimeMetrics = registerRuntimeMetrics(r);
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
      // A node behind its peers answers a state-dependent refusal BUSY (retry): counted as BUSY
      // above, as the client saw it, and here by the refusal the stale state gave, so that a
      // syncing node's NONCE_GAP or INSUFFICIENT_FUNDS stays visible.
      deferred: r.counter(
        'unc_mempool_deferred_total',
        'Transactions answered BUSY (retry) while the node is behind its peers, by the refusal its stale state gave',
      ),
      round: r.gauge('unc_consensus_round', 'Consensus round in which the latest block was decided'),
      lateBlocks: r.counter(
        'unc_consensus_late_blocks_total',
        'Blocks decided only after one or more failed rounds (proposer down or late)',
      ),
      peers: r.gauge('unc_p2p_peers', 'Connected peers'),
    };
    this.networkMetrics = networkMetrics(r);
    this.m.height.set(Number(chain.height));
  }

  static async start(opts: NodeOptions): Promise<UncNode> {
    const logger = opts.logger ?? createLogger('node');
    const aborted = () => opts.signal?.aborted === true;
    if (aborted()) throw startAborted();
    mkdirSync(opts.dataDir, { recursive: true });
    const db = await ChainDb.open(join(opts.dataDir, 'chain'));
    let chain: Chain;
    try {
      if (aborted()) throw startAborted();
      chain = await Chain.open(db, opts.genesis, logger.child('chain'));
      if (opts.trustedCheckpoint)
        await chain.trustCheckpoint(opts.trustedCheckpoint, join(opts.dataDir, 'chain'));
      if (aborted()) throw startAborted();
    } catch (err) {
      await db.close();
      throw err;
    }
    const validator = opts.validatorSeed
      ? { seed: opts.validatorSeed, publicKey: ed25519PublicKey(opts.validatorSeed) }
      : null;
    if (validator) {
      // A missing signer state after this key signed with this chain store: refused, not started
      // afresh (signer-guard.ts), unless the operator says so for this start.
      try {
        await refuseFreshSignerAfterSigning(
          filePrivvalStorage(join(opts.dataDir, 'privval.json')),
          chain,
          validator.publicKey,
          opts.allowFreshSigner,
        );
      } catch (err) {
        await db.close();
        throw err;
      }
    }
    if (validator && !chain.validatorSet().has(validator.publicKey)) {
      // Not an error: a consensus key joins the set at an epoch boundary once an account has
      // registered it (setConsensusKey), bonded at least the minimum and its chips hold enough
      // online power; until then the node follows and signs nothing.
      logger.warn('the consensus key is not in the current validator set; it will vote once it is', {
        validator: toHex(validator.publicKey),
      });
    }
    const node = new UncNode(
      chain,
      new Mempool({ ...DEFAULT_MEMPOOL_OPTIONS, ...opts.mempool }),
      db,
      validator,
      opts.blockTimeMs ?? chain.params.blockTimeMs,
      logger,
      opts,
    );
    chain.onCommit((c) => node.afterCommit(c));
    node.mempool.onDrop((env, drop) => node.onDropped(env, drop));
    try {
      node.core = new NodeCore({
        chain,
        mempool: node.mempool,
        verifier: node.verifyPool,
        ...(opts.admission ? { admission: opts.admission } : {}),
        slices: eventLoopSlices,
        validator,
        privvalPath: validator ? join(opts.dataDir, 'privval.json') : null,
        blockTimeMs: opts.blockTimeMs ?? chain.params.blockTimeMs,
        ...(opts.timeouts ? { timeouts: opts.timeouts } : {}),
        ...(opts.paceHeights !== undefined ? { paceHeights: opts.paceHeights } : {}),
        logger,
        clock: systemClock,
        ...(opts.blockWriteTimeoutMs !== undefined ? { blockWriteTimeoutMs: opts.blockWriteTimeoutMs } : {}),
        ...(opts.allowFreshSigner ? { allowFreshSigner: true } : {}),
        onMempoolChanged: () => {
          node.m.mempoolSize.set(node.mempool.size);
          node.m.mempoolBytes.set(node.mempool.bytes);
        },
        onAdmissionRefused: (code, deferred) => {
          node.m.rejected.inc(1, { reason: code });
          if (deferred !== undefined) node.m.deferred.inc(1, { reason: deferred });
        },
        onFatal:
          opts.onFatal ??
          ((error) => {
            logger.error('FATAL: exiting: consensus stopped', { error: error.message });
            process.exit(70);
          }),
      });
      node.driver = node.core.driver;
      node.registerGossipMetrics();
      node.driver.onCommit((_, round) => {
        node.m.round.set(round);
        if (round > 0) node.m.lateBlocks.inc();
        node.m.peers.set(node.network?.peers().length ?? 0);
      });
    } catch (err) {
      node.stopRuntimeMetrics();
      await db.close();
      await node.verifyPool.close();
      throw err;
    }
    const api = createApi(node.rpcContext());
    try {
      if (aborted()) throw startAborted();
      node.rpc = await startRpcServer(
        {
          ...opts.rpc,
          host: opts.rpcHost ?? '127.0.0.1',
          port: opts.rpcPort ?? 3030,
        },
        {
          ...api,
          methods: instrumentRpcMethods(api.methods, node.metrics),
          costs: rpcCosts(() => node.chain.state),
          ...(opts.explorerDir ? { httpFallback: explorerHandler(opts.explorerDir) } : {}),
        },
      );
    } catch (err) {
      // The samplers of the runtime metrics (event-loop monitor, GC observer) go with the node.
      node.stopRuntimeMetrics();
      await db.close();
      await node.verifyPool.close();
      throw err;
    }
    if (opts.explorerDir) node.explorerUrl = `${node.rpcUrl}/explorer/`;
    try {
      if (aborted()) throw startAborted();
      if (opts.network) node.network = await opts.network(node.driver.handlers(), chain, node.networkMetrics);
      if (aborted()) throw startAborted();
      await node.driver.start(node.network);
      if (aborted()) throw startAborted();
    } catch (err) {
      await node.stop();
      throw err;
    }
    return node;
  }

  /**
   * Admission's signature checks (sent, and spent on transactions a block took meanwhile) and the
   * transaction bytes this node sent as gossip, by how: read from the counters at scrape time.
   */
  private registerGossipMetrics(): void {
    const r = this.metrics;
    const checks = r.counter(
      'unc_admission_signature_checks_total',
      'Signature checks admission sent to the verifier',
    );
    const wasted = r.counter(
      'unc_admission_checks_wasted_total',
      'Admission signature checks whose transaction was then refused as already taken (nonce used, duplicate)',
    );
    const dropped = r.counter(
      'unc_admission_dropped_total',
      'Queued transactions refused once a block used their nonce, before their signature check was made',
    );
    const cancelled = r.counter(
      'unc_admission_checks_cancelled_total',
      'Admission signature checks not made: their transaction was taken by a block while they waited',
    );
    const gossip = r.counter(
      'unc_tx_gossip_bytes_total',
      'Transaction bytes sent as gossip, by how (published once per batch; re-announced and shared per peer)',
    );
    const last = { checks: 0, wasted: 0, dropped: 0, cancelled: 0, published: 0, reannounced: 0, shared: 0 };
    const add = (c: typeof checks, key: keyof typeof last, now: number, labels?: Record<string, string>) => {
      if (now > last[key]) c.inc(now - last[key], labels);
      last[key] = now;
    };
    r.onCollect(() => {
      const admission = this.core.admission;
      add(checks, 'checks', admission.checksSent);
      add(wasted, 'wasted', admission.checksWasted);
      add(dropped, 'dropped', admission.dropStats.txs);
      add(cancelled, 'cancelled', admission.dropStats.checksCancelled);
      add(gossip, 'published', this.driver.mempoolPublishStats.bytes, { how: 'published' });
      add(gossip, 'reannounced', this.driver.mempoolReannounceStats.bytes, { how: 'reannounced' });
      add(gossip, 'shared', this.driver.mempoolShareStats.bytes, { how: 'shared' });
    });
  }

  /** The narrow view of this node that the RPC methods are built from. */
  private rpcContext(): RpcContext {
    const node = this;
    return {
      chain: this.chain,
      mempool: this.mempool,
      validator: this.validator,
      get network() {
        return node.network;
      },
      get driver() {
        return node.driver;
      },
      metrics: this.metrics,
      logger: this.logger,
      submit: (env) => this.submit(env),
      submitMany: (envs) => this.submitMany(envs),
      recentRejection: (hash) => this.recentRejection(hash),
      watchTx: (hash, watcher) => this.watchTx(hash, watcher),
      watchBlocks: (watcher) => this.watchBlocks(watcher),
    };
  }

  get rpcUrl(): string {
    return this.rpc!.url.replace(/\/$/, '');
  }

  /** Where the explorer is served, when this node serves one. */
  explorerUrl: string | null = null;

  get wsUrl(): string {
    return this.rpc!.wsUrl.replace(/\/$/, '');
  }

  /** Validates and admits a transaction, then gossips it; throws a ValidationError saying why not. */
  submit(env: TxEnvelope): { replaced: boolean } {
    return this.core.submit(env);
  }

  /**
   * Admits many transactions through the admission queue (signatures on the worker threads,
   * admission in slices that yield to consensus) and gossips the admitted ones. Rejects with
   * AdmissionBusy, having done nothing, when the queue is full.
   */
  submitMany(envs: readonly TxEnvelope[]): Promise<AdmissionResult[]> {
    return this.core.submitMany(envs);
  }

  /** Transactions from RPC and gossip, admitted in slices that yield to consensus. */
  get admission(): AdmissionQueue {
    return this.core.admission;
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

  /**
   * Why a transaction left the mempool without being included (rejected at block building,
   * evicted, replaced, expired, nonce used), remembered for a while by the mempool: a client that
   * sends a transaction and then subscribes to it or looks it up must still hear why it was
   * dropped if that happened in between (included ones are found in the database).
   */
  recentRejection(hash: Uint8Array): DroppedTx | null {
    return this.mempool.dropped(hash);
  }

  private onDropped(env: TxEnvelope, drop: DroppedTx): void {
    this.m.rejected.inc(1, { reason: drop.code });
    this.logger.debug('dropped transaction', {
      hash: toHex(env.hash),
      code: drop.code,
      reason: drop.reason,
      height: drop.height,
    });
    this.notifyTx(env.hash, {
      status: 'rejected',
      code: drop.code,
      reason: drop.reason,
      height: Number(drop.height),
      ...(drop.answer ? { answer: drop.answer } : {}),
    });
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
    // Nobody watching (the common case under load): no event object and no id per transaction.
    if (this.txWatchers.size > 0) {
      const blockHash = toHex(c.hash);
      const height = Number(header.height);
      c.envelopes.forEach((env, index) => {
        this.notifyTx(env.hash, { status: 'included', height, index, blockHash });
      });
    }
    for (const w of this.blockWatchers) w(c);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.core) await this.core.stop();
    await this.network?.stop();
    await this.rpc?.close();
    await this.db.close();
    this.stopRuntimeMetrics();
    await this.verifyPool.close();
  }
}
