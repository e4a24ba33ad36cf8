/**
 * The node's core: chain, mempool and the consensus driver with its reactors, wired together,
 * with every piece of I/O passed in: the chain's store (LevelDB or memory), the clock, the
 * network (`driver.start(network)`), where the signer state lives. `UncNode` (node.ts) wraps a
 * core with LevelDB, libp2p, the RPC server and metrics; the simulator (sim/) runs many cores on
 * a virtual clock over a simulated network. Both run this same code.
 */
import type { BlockContext, ConsentVerdicts, EvidenceVerdicts, TimeoutParams, TxEnvelope } from '@unc/core';
import { keyId, toHex, ValidationError, VerifiedSignatures } from '@unc/core';
import {
  type AdmissionOptions,
  AdmissionQueue,
  type AdmissionResult,
  clockSlices,
  deferWhileBehind,
  isFinalRefusal,
  type SliceScheduler,
  SyncingRefusal,
} from './admission.js';
import type { Chain, CommittedBlock, Rejected, ValidatorKey } from './chain.js';
import { type Clock, systemClock } from './clock.js';
import { PASSED_CAPACITY } from './consensus/block-preverify.js';
import { ConsensusDriver, type DriverHost } from './consensus/driver.js';
import type { PrivvalStorage } from './consensus/privval-store.js';
import type { Logger } from './log.js';
import type { Mempool } from './mempool.js';
import { InThreadVerifier, type SignatureVerifier } from './verify-pool.js';

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
  /**
   * Who checks Ed25519 signatures for admission and a proposed block's pre-check: the worker-thread
   * `VerifyPool` in a real node; by default the calling thread (`InThreadVerifier`), which the
   * simulator uses so that a run depends only on its seed. The caller closes it.
   */
  verifier?: SignatureVerifier;
  /** The admission queue's bound and slice length (admission.ts). */
  admission?: Partial<AdmissionOptions>;
  /**
   * How admission measures and ends its slices: by default the clock (the simulator's virtual
   * time, which does not move while code runs, so a slice ends only when the queue is empty); a
   * real node passes `eventLoopSlices` (performance.now and setImmediate).
   */
  slices?: SliceScheduler;
  /** Proposals gossip transaction ids (consensus/compact-block.ts); default true. */
  compactProposals?: boolean;
  /** DriverOptions.overlapCommit. */
  overlapCommit?: boolean;
  /** DriverOptions.blockWriteTimeoutMs. */
  blockWriteTimeoutMs?: number;
  /** DriverOptions.allowFreshSigner: sign at once with a signer that has no saved state. */
  allowFreshSigner?: boolean;
  /** DriverOptions.paceHeights. */
  paceHeights?: boolean;
  /** After every change to the mempool's contents (metrics). */
  onMempoolChanged?(): void;
  /**
   * A transaction refused at admission, with the code the client gets (metrics); for a refusal
   * deferred as BUSY because the node is behind its peers (admission.ts SyncingRefusal), also the
   * refusal its stale state gave, which the BUSY would otherwise hide.
   */
  onAdmissionRefused?(code: string, deferred?: string): void;
  /** A decided block could not be written, or the signer state saved: consensus stopped (DriverHost.onFatal). */
  onFatal?(error: Error): void;
}

export class NodeCore {
  readonly chain: Chain;
  readonly mempool: Mempool;
  readonly driver: ConsensusDriver;
  /** Transactions from RPC and gossip: bounded, signatures checked by the verifier, in slices. */
  readonly admission: AdmissionQueue;
  private readonly logger: Logger;

  constructor(private readonly opts: NodeCoreOptions) {
    this.chain = opts.chain;
    this.mempool = opts.mempool;
    this.logger = opts.logger;
    const verifier = opts.verifier ?? new InThreadVerifier();
    // One memory of the signature checks that passed, for admission and the block pre-check: each
    // transaction's signature is checked once here, whichever of its gossip, a peer's
    // re-announcement or a block carrying it came first (4 validators at saturation checked about
    // 2 signatures per admitted transaction, most of the second ones refused at once as duplicates).
    const passed = new VerifiedSignatures(PASSED_CAPACITY);
    this.admission = new AdmissionQueue(
      verifier,
      {
        cheapRefusal: (env, countPending) =>
          this.mempool.cheapRefusal(
            env,
            this.chain.tipState,
            this.chain.params,
            this.nextContext(),
            countPending,
          ),
        costlyChecks: (env) => this.mempool.costlyChecks(env, this.chain.tipState, this.nextContext()),
        // The tip's hash names its state and the next block's context (its time among them).
        costlyHead: () => toHex(this.chain.tip.hash),
        takenRefusal: (env) => this.mempool.takenRefusal(env, this.chain.tipState),
        admit: (env, verdicts, consents) => this.addToMempool(env, true, verdicts, consents),
      },
      opts.admission,
      opts.slices ?? clockSlices(opts.clock ?? systemClock),
      passed,
    );
    this.driver = new ConsensusDriver({
      chain: opts.chain,
      host: this.driverHost(),
      verifyPool: verifier,
      verifiedSignatures: passed,
      validator: opts.validator,
      privvalPath: opts.privvalPath,
      ...(opts.privvalStorage ? { privvalStorage: opts.privvalStorage } : {}),
      ...(opts.clock ? { clock: opts.clock } : {}),
      blockTimeMs: opts.blockTimeMs,
      ...(opts.timeouts ? { timeouts: opts.timeouts } : {}),
      ...(opts.compactProposals !== undefined ? { compactProposals: opts.compactProposals } : {}),
      ...(opts.overlapCommit !== undefined ? { overlapCommit: opts.overlapCommit } : {}),
      ...(opts.blockWriteTimeoutMs !== undefined ? { blockWriteTimeoutMs: opts.blockWriteTimeoutMs } : {}),
      ...(opts.allowFreshSigner ? { allowFreshSigner: true } : {}),
      ...(opts.paceHeights !== undefined ? { paceHeights: opts.paceHeights } : {}),
      logger: opts.logger.child('consensus'),
    });
  }

  /** Validates and admits a transaction, then gossips it; throws a ValidationError saying why not. */
  submit(env: TxEnvelope): { replaced: boolean } {
    const result = this.admit(env);
    this.driver.announceTx(env);
    return result;
  }

  /** Admits one transaction at once (signature checked here); throws a ValidationError saying why not. */
  admit(env: TxEnvelope): { replaced: boolean } {
    try {
      return this.addToMempool(env, false);
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      const answer = deferWhileBehind(err, this.driver.retryWhileBehind());
      this.refused(answer);
      throw answer;
    }
  }

  /**
   * Admits many transactions through the admission queue and gossips those admitted; each gets
   * its result or its ValidationError, in order. Rejects with AdmissionBusy, admitting nothing,
   * when the queue is full.
   */
  async submitMany(envs: readonly TxEnvelope[]): Promise<AdmissionResult[]> {
    const results = await this.admitQueued(envs);
    results.forEach((r, i) => {
      if (!(r instanceof ValidationError)) this.driver.announceTx(envs[i]!);
    });
    return results;
  }

  /** Through the admission queue (RPC and gossip alike); refusals counted once, here. */
  private async admitQueued(envs: readonly TxEnvelope[]): Promise<AdmissionResult[]> {
    const results = await this.admission.submit(envs);
    // A node behind its peers judged these on stale state: what depends on the state is "busy,
    // retry" (admission.ts FINAL_REFUSALS), not a refusal the client would give up on. Asked once
    // per batch, after admission: the head may have moved while the batch waited.
    let retryAfterMs: number | null | undefined;
    return results.map((r) => {
      if (!(r instanceof ValidationError)) return r;
      if (!isFinalRefusal(r)) retryAfterMs ??= this.driver.retryWhileBehind();
      const answer = deferWhileBehind(r, retryAfterMs ?? null);
      this.refused(answer);
      return answer;
    });
  }

  private refused(answer: ValidationError): void {
    if (answer instanceof SyncingRefusal) this.opts.onAdmissionRefused?.(answer.code, answer.refusal.code);
    else this.opts.onAdmissionRefused?.(answer.code);
  }

  /** Stops taking transactions and stops the driver. */
  async stop(): Promise<void> {
    this.admission.stop();
    await this.driver.stop();
  }

  /** The context the next block starts from, which admission checks transactions against. */
  private nextContext(): BlockContext {
    const head = this.chain.tip.header;
    return {
      chainId: this.chain.genesis.chainId,
      height: head.height + 1n,
      time: head.time + 1n,
      proposer: head.proposer,
      prevHash: this.chain.tip.hash,
      prevBeacon: head.beacon,
      // Not known before the next block is proposed; admission never finishes a block, and no
      // transaction sees it (core's TxContext).
      beacon: new Uint8Array(32),
    };
  }

  private addToMempool(
    env: TxEnvelope,
    signatureChecked: boolean,
    verdicts?: EvidenceVerdicts,
    consents?: ConsentVerdicts,
  ): { replaced: boolean } {
    const result = this.mempool.add(
      env,
      this.chain.tipState,
      this.chain.params,
      this.nextContext(),
      signatureChecked,
      verdicts,
      consents,
    );
    this.opts.onMempoolChanged?.();
    return result;
  }

  private driverHost(): DriverHost {
    return {
      proposalCandidates: () => this.mempool.ordered(this.chain.tipState, this.chain.params.maxBlockBytes),
      pendingBytes: () => this.mempool.bytes,
      backlog: () => this.mempool.size + this.admission.queued,
      reannounceCandidates: (maxSenders: number) =>
        this.mempool.longestPending(this.chain.tipState, maxSenders),
      isTxVerified: (env: TxEnvelope) => this.mempool.isVerified(env),
      onRejected: (rejected: Rejected[]) => this.dropRejected(rejected),
      onCommitted: (committed: CommittedBlock) => this.pruneAfter(committed),
      admitTx: (env: TxEnvelope) => {
        this.admit(env);
      },
      admitTxs: (envs: readonly TxEnvelope[]) => this.admitQueued(envs),
      onFatal: (error: Error) => {
        this.admission.stop();
        this.opts.onFatal?.(error);
      },
    };
  }

  /** Candidates that no longer apply on the head state: out of the mempool, their watchers told. */
  private dropRejected(rejected: Rejected[]): void {
    this.mempool.prune([], rejected, this.chain.tipState, this.chain.tipHeight + 1n);
    this.opts.onMempoolChanged?.();
  }

  private pruneAfter(committed: CommittedBlock): void {
    this.mempool.prune(committed.envelopes, [], this.chain.tipState, committed.block.header.height + 1n);
    // Reports of evidence that can no longer land leave now, before the evidence pool's flush after
    // this commit: each holds its offender's one place here.
    this.mempool.recheckEvidence(this.chain.tipState, this.nextContext());
    this.opts.onMempoolChanged?.();
    // What still waits in the admission queue that this block took (its copies from gossip and
    // re-announcements): refused now, their signature checks not made (admission.ts dropTaken).
    if (committed.envelopes.length > 0)
      this.admission.dropTaken(new Set(committed.envelopes.map((env) => keyId(env.sender))));
    if (committed.envelopes.length > 0 || committed.block.header.height % 60n === 0n) {
      this.logger.info('committed block', {
        height: committed.block.header.height,
        txs: committed.envelopes.length,
        hash: toHex(committed.hash).slice(0, 16),
      });
    }
  }
}
