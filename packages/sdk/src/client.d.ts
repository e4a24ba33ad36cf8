/**
 * Typed JSON-RPC client for a UtilityNet node, over HTTP (calls) and WebSocket (subscriptions).
 * Everything the CLI and explorer read from a node goes through here.
 */
import type {
  AccountJson,
  BlockJson,
  HeaderJson,
  LeaseJson,
  OfferJson,
  ProviderRecordJson,
  StatusJson,
  SupplyJson,
  TxReceiptJson,
  TxStatusJson,
} from './views.js';
export declare class RpcClientError extends Error {
  readonly rpcCode: number;
  /** The protocol's reason code (e.g. NONCE_USED) when the node gave one. */
  readonly reason?: string | undefined;
  constructor(
    rpcCode: number,
    message: string,
    /** The protocol's reason code (e.g. NONCE_USED) when the node gave one. */
    reason?: string | undefined,
  );
}
/** The node could not be reached at all (refused, DNS, timeout). */
export declare class NodeUnreachableError extends Error {
  constructor(url: string, cause: string);
}
export interface ClientOptions {
  /** Per-request timeout, ms. */
  timeoutMs?: number;
}
export type TxInclusion =
  | {
      hash: string;
      status: 'included';
      height: number;
      index: number;
      blockHash: string;
    }
  | {
      hash: string;
      status: 'rejected';
      code: string;
      reason: string;
      height?: number;
    };
/** Checks a node URL's shape before anything is sent, so a typo gets a clear message. */
export declare function normalizeNodeUrl(url: string): string;
export declare class UncClient {
  readonly url: string;
  private nextId;
  private readonly timeoutMs;
  constructor(url: string, opts?: ClientOptions);
  call<T>(method: string, params?: unknown[] | Record<string, unknown>): Promise<T>;
  status(): Promise<StatusJson>;
  getBlock(ref?: number | string | 'latest', full?: boolean): Promise<BlockJson>;
  getBlocks(from: number, count: number): Promise<BlockJson[]>;
  getHeader(ref?: number | string | 'latest'): Promise<HeaderJson>;
  getTransaction(hash: string): Promise<TxReceiptJson>;
  /** Included, pending, dropped (with reason code and height) or unknown; never an error for those. */
  getTransactionStatus(hash: string): Promise<TxStatusJson>;
  getAccount(address: string, proof?: boolean): Promise<AccountJson>;
  getSupply(): Promise<SupplyJson>;
  getParams(): Promise<{
    blockTimeMs: number;
    maxBlockTxs: number;
    maxBlockBytes: number;
    maxTxBytes: number;
    minFeePerByte: string;
    minFeePerAction: string;
    maxTxLifetimeBlocks: number;
    /** Dev-soft chips are accepted: a dev chain (renters may use plain-http providers). */
    devChain?: boolean;
  }>;
  getGenesis(): Promise<Record<string, unknown>>;
  sendRawTransaction(hex: string): Promise<{
    hash: string;
    replaced: boolean;
  }>;
  sendRawTransactions(hexes: string[]): Promise<
    (
      | {
          hash: string;
          replaced: boolean;
        }
      | {
          error: {
            reason: string;
            message: string;
          };
        }
    )[]
  >;
  /** Open offers, newest first; with `provider`, its open and closing ones (`all`: closed too). */
  getOffers(opts?: { provider?: string; all?: boolean }): Promise<OfferJson[]>;
  getOffer(id: string): Promise<OfferJson>;
  getLease(id: string): Promise<LeaseJson>;
  /** The leases of a renter or of a provider, newest first. */
  getLeases(
    filter:
      | {
          renter: string;
        }
      | {
          provider: string;
        },
  ): Promise<LeaseJson[]>;
  getProviderRecord(address: string): Promise<ProviderRecordJson>;
  get wsUrl(): string;
  /** Opens a subscription; returns a function that closes it. */
  subscribe<T>(name: string, params: unknown, onEvent: (event: T) => void): Promise<Subscription>;
  /**
   * Resolves when the transaction is included in a committed block, or rejects with the reason
   * the block builder dropped it. Subscribes before checking, so no inclusion is missed.
   */
  waitForTransaction(hash: string, timeoutMs?: number): Promise<TxInclusion>;
}
export interface Subscription {
  id: string;
  close(): void;
  onClose(fn: () => void): void;
}
