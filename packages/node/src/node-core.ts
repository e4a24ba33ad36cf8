/**
 * The node's core: chain, mempool and the consensus driver with its reactors, wired together,
 * with every piece of I/O passed in: the chain's store (LevelDB or memory), the clock, the
 * network (`driver.start(network)`), where the signer state lives. `UncNode` (node.ts) wraps a
 * core with LevelDB, libp2p, the RPC server and metrics; the simulator (sim/) runs many cores on
 * a virtual clock over a simulated network. Both run this same code.
 */
import type { TimeoutParams, TxEnvelope } from '@unc/core';
import { toHex, ValidationError } from '@unc/core';
import type { Chain, CommittedBlock, Rejected, ValidatorKey } from './chain.js';
import type { Clock } from './clock.js';
import { ConsensusDriver, type DriverHost } from './consensus/driver.js';
import type { PrivvalStorage } from './consensus/privval-store.js';
import type { Logger } from './log.js';
import type { Mempool } from './mempool.js';

export interface NodeCoreOptions {
  chain: Chain;
  mempool: Mempool;
  /** The validator's key; null for a node that follows the chain without voting. */
  validator: ValidatorKey | null;
  /** Where the signer state lives: a file path (real node) or a storage (simulator). */
  privvalPath: string | null;
  privvalStorage?: PrivvalStorage;
  blockTimeMs: number;
  timeouts?: TimeoutParams;
  logger: Logger;
  clock?: Clock;
  /** After every change to the mempool's contents (metrics). */
  onMempoolChanged?(): void;
  /** A transaction refused at admission, with the code (metrics). */
  onAdmissionRefused?(code: string): void;
}

export class NodeCore {
  readonly chain: Chain;
  readonly mempool: Mempool;
  readonly driver: ConsensusDriver;
  private readonly logger: Logger;

  constructor(private readonly opts: NodeCoreOptions) {
    this.chain = opts.chain;
    this.mempool = opts.mempool;
    this.logger = opts.logger;
    this.driver = new ConsensusDriver({
      chain: opts.chain,
      host: this.driverHost(),
      validator: opts.validator,
      privvalPath: opts.privvalPath,
      ...(opts.privvalStorage ? { privvalStorage: opts.privvalStorage } : {}),
      ...(opts.clock ? { clock: opts.clock } : {}),
      blockTimeMs: opts.blockTimeMs,
      ...(opts.timeouts ? { timeouts: opts.timeouts } : {}),
      logger: opts.logger.child('consensus'),
    });
  }

  /** Validates and admits a transaction, then gossips it; throws a ValidationError saying why not. */
  submit(env: TxEnvelope): { replaced: boolean } {
    const result = this.admit(env);
    this.driver.announceTx(env);
    return result;
  }

  admit(env: TxEnvelope): { replaced: boolean } {
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
      this.opts.onMempoolChanged?.();
      return result;
    } catch (err) {
      if (err instanceof ValidationError) this.opts.onAdmissionRefused?.(err.code);
      throw err;
    }
  }

  private driverHost(): DriverHost {
    return {
      proposalCandidates: () => this.mempool.ordered(this.chain.state),
      isTxVerified: (env: TxEnvelope) => this.mempool.isVerified(env),
      onRejected: (rejected: Rejected[]) => this.dropRejected(rejected),
      onCommitted: (committed: CommittedBlock) => this.pruneAfter(committed),
      admitTx: (env: TxEnvelope) => {
        this.admit(env);
      },
    };
  }

  /** Candidates that no longer apply on the head state: out of the mempool, their watchers told. */
  private dropRejected(rejected: Rejected[]): void {
    this.mempool.prune([], rejected, this.chain.state, this.chain.height + 1n);
    this.opts.onMempoolChanged?.();
  }

  private pruneAfter(committed: CommittedBlock): void {
    this.mempool.prune(committed.envelopes, [], this.chain.state, committed.block.header.height + 1n);
    this.opts.onMempoolChanged?.();
    if (committed.envelopes.length > 0 || committed.block.header.height % 60n === 0n) {
      this.logger.info('committed block', {
        height: committed.block.header.height,
        txs: committed.envelopes.length,
        hash: toHex(committed.hash).slice(0, 16),
      });
    }
  }
}
