/**
 * What the RPC methods may use of the node: a chain reader, a view of the mempool, transaction
 * admission (direct, or through the bounded admission queue), the watchers that push events to subscribers, and a few status fields. The RPC is
 * built from this context (node.ts builds it) rather than from the whole node, so a method cannot
 * reach into consensus or the network, and the RPC modules do not import node.ts (which imports
 * them): there is no import cycle between the node and its RPC (test/rpc/import-cycles.test.ts).
 */
import type { AnswerRef, TxEnvelope } from '@unc/core';
import type { AdmissionResult } from '../admission.js';
import type { Chain, CommittedBlock } from '../chain.js';
import type { Logger } from '../log.js';
import type { DroppedTx, Mempool } from '../mempool.js';
import type { SyncProgress } from '../sync.js';

export type TxWatcher = (
  event:
    | { status: 'included'; height: number; index: number; blockHash: string }
    | { status: 'rejected'; code: string; reason: string; height: number; answer?: AnswerRef },
) => void;

export interface RpcContext {
  /** The committed chain: head, state, blocks and indexes (read only by the methods). */
  readonly chain: Chain;
  /** What the mempool holds and what it recently dropped. */
  readonly mempool: Pick<Mempool, 'size' | 'bytes' | 'has' | 'dropped' | 'nextNonce'>;
  /** This node's consensus key, if it is a validator. */
  readonly validator: { readonly publicKey: Uint8Array } | null;
  /** Connected peers (the count is reported). */
  readonly network: { peers(): readonly unknown[] } | null;
  /** Block-sync progress while the node catches up. */
  readonly driver:
    | {
        readonly syncProgress: SyncProgress | null;
        /** Why block sync stopped for good (consensus/sync-reactor.ts SyncConflict), or null. */
        readonly syncStopped: {
          height: bigint;
          why: string;
          head: string;
          theirs: string;
          peer?: string;
          nextStep: string;
        } | null;
      }
    | undefined;
  readonly metrics: { render(): string };
  readonly logger: Logger;
  /** Validates and admits a transaction, then gossips it; throws a ValidationError saying why not. */
  submit(env: TxEnvelope): { replaced: boolean };
  /**
   * Admits transactions through the admission queue (signatures checked off the main thread,
   * admission in slices that yield to consensus) and gossips those admitted; each gets its result
   * or its ValidationError, in order. Rejects with AdmissionBusy, admitting nothing, when full.
   */
  submitMany(envs: readonly TxEnvelope[]): Promise<AdmissionResult[]>;
  /** Why a transaction recently left the mempool without being included, if it did. */
  recentRejection(hash: Uint8Array): DroppedTx | null;
  watchTx(hash: Uint8Array, watcher: TxWatcher): () => void;
  watchBlocks(watcher: (b: CommittedBlock) => void): () => void;
}
