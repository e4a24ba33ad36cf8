/**
 * The mempool reactor: transaction gossip. Out, it batches the transactions this node admitted
 * into one message per burst; in, it admits a peer's batch through the node's admission queue
 * (`admitTxs`: bounded, signatures checked by the verifier, admitted in slices that yield to
 * consensus) or, without one, each transaction directly (`admitTx`), and scores the peer by what
 * the batch held.
 */
import { encode, type TxEnvelope, ValidationError } from '@unc/core';
import type { AdmissionResult } from '../admission.js';
import type { Cancel, Clock } from '../clock.js';
import type { Verdict } from '../p2p/types.js';
import { AdmissionTimes, type Admitted, TxIndex } from './compact-block.js';
import { decodeTxBatch } from './gossip-checks.js';
import { MAX_TX_BATCH_BYTES, MAX_TXS_PER_MESSAGE, txBatchCodec } from './wire.js';

export interface MempoolReactorOptions {
  clock: Clock;
  /** Admits a gossiped transaction to the mempool; throws a ValidationError when it is refused. */
  admitTx(env: TxEnvelope): void;
  /**
   * Admits a batch through the admission queue; each gets its result, in order. Rejects, having
   * done nothing, with an error whose code is 'BUSY' when the queue is full.
   */
  admitTxs?(envs: readonly TxEnvelope[]): Promise<AdmissionResult[]>;
  /** Sends a batch on the `tx` topic (a no-op without a network). */
  publishBatch(data: Uint8Array): void;
  /** Whether there is a network to announce to at all. */
  connected(): boolean;
}

/** Gossiped transactions held from their arrival (`heard`): a quarter of the index's bounds. */
export const HEARD_MAX_ENTRIES = 12_500;
export const HEARD_MAX_BYTES = 16 * 1024 * 1024;

export class MempoolReactor {
  /** What this node admitted, by wire id: compact proposals are rebuilt from it. */
  private readonly txIndex = new TxIndex();
  /**
   * Every transaction gossiped to this node, from its arrival: those still waiting in its
   * admission queue (under load for a second or more), those it did not admit (the queue full, a
   * nonce ahead of its state...). Not in its mempool, but a peer that admitted one may put it in a
   * block, and rebuilding that block from here beats fetching it from a busy proposer. Used only
   * to rebuild compact proposals, whose transactions are all checked; bounded on its own
   * (`HEARD_MAX_*`), so junk gossip can push out only other gossiped ones, never what this node
   * admitted.
   */
  private readonly heard = new TxIndex(HEARD_MAX_ENTRIES, HEARD_MAX_BYTES);
  /** When each recent transaction was admitted here: what a proposal carries (compact-block.ts). */
  private readonly admitted = new AdmissionTimes();
  private txOut: Uint8Array[] = [];
  private txOutBytes = 0;
  private txFlush: Cancel | null = null;
  private stopped = false;

  constructor(private readonly opts: MempoolReactorOptions) {}

  /** Announces a transaction this node admitted (from RPC) to its peers, batched. */
  announceTx(env: TxEnvelope): void {
    if (!this.opts.connected() || this.stopped) return;
    this.txIndex.add(env.bytes);
    this.admitted.record(env.hash, { at: this.opts.clock.now() });
    if (this.txOutBytes + env.bytes.length > MAX_TX_BATCH_BYTES || this.txOut.length >= MAX_TXS_PER_MESSAGE)
      this.flushTxs();
    this.txOut.push(env.bytes);
    this.txOutBytes += env.bytes.length;
    this.txFlush ??= this.opts.clock.schedule(20, () => this.flushTxs());
  }

  flushTxs(): void {
    this.txFlush?.();
    this.txFlush = null;
    if (this.txOut.length === 0 || !this.opts.connected()) return;
    const batch = this.txOut;
    this.txOut = [];
    this.txOutBytes = 0;
    this.opts.publishBatch(encode(txBatchCodec, batch));
  }

  /** When this node admitted a recent transaction (by its hash), from RPC or gossip. */
  admittedAt(hash: Uint8Array): Admitted | undefined {
    return this.admitted.get(hash);
  }

  /** A transaction this node admitted, by its wire id (compact-block.ts). */
  lookup(id: Uint8Array): Uint8Array | undefined {
    return this.txIndex.get(id) ?? this.heard.get(id);
  }

  onTxGossip(data: Uint8Array): Verdict | Promise<Verdict> {
    const envelopes = decodeTxBatch(data);
    if (!envelopes) return 'reject';
    for (const env of envelopes) this.heard.add(env.bytes);
    if (this.opts.admitTxs) return this.admitQueued(envelopes, this.opts.admitTxs);
    let admitted = 0;
    for (const env of envelopes) {
      try {
        this.opts.admitTx(env);
        this.txIndex.add(env.bytes);
        this.admitted.record(env.hash, { at: this.opts.clock.now() });
        admitted++;
      } catch (err) {
        // A transaction valid at the sender may already be stale here (nonce used, duplicate).
        if (!(err instanceof ValidationError)) throw err;
        // But a signature that does not verify is the relay's fault whatever the state: ignoring
        // it would let a peer make this node check up to a batch of signatures per message, free.
        if (err.code === 'BAD_SIGNATURE') return 'reject';
      }
    }
    return admitted > 0 ? 'accept' : 'ignore';
  }

  /**
   * The batch through the admission queue. A full queue drops it unforwarded ('ignore': a busy
   * node is no fault of the peer); a signature that fails is the relay's fault.
   */
  private async admitQueued(
    envelopes: readonly TxEnvelope[],
    admitTxs: (envs: readonly TxEnvelope[]) => Promise<AdmissionResult[]>,
  ): Promise<Verdict> {
    let results: AdmissionResult[];
    try {
      results = await admitTxs(envelopes);
    } catch (err) {
      if ((err as { code?: unknown }).code === 'BUSY') return 'ignore';
      throw err;
    }
    let admitted = 0;
    const now = this.opts.clock.now();
    for (const [i, r] of results.entries()) {
      if (!(r instanceof ValidationError)) {
        admitted++;
        this.txIndex.add(envelopes[i]!.bytes);
        this.admitted.record(envelopes[i]!.hash, { at: now });
      } else if (r.code === 'BAD_SIGNATURE') return 'reject';
    }
    return admitted > 0 ? 'accept' : 'ignore';
  }

  stop(): void {
    this.stopped = true;
    this.txFlush?.();
    this.txFlush = null;
  }
}
