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

export class RpcClientError extends Error {
  constructor(
    readonly rpcCode: number,
    message: string,
    /** The protocol's reason code (e.g. NONCE_USED) when the node gave one. */
    readonly reason?: string,
  ) {
    super(message);
    this.name = 'RpcClientError';
  }
}

/** The node could not be reached at all (refused, DNS, timeout). */
export class NodeUnreachableError extends Error {
  constructor(url: string, cause: string) {
    super(`cannot reach the node at ${url}: ${cause}`);
    this.name = 'NodeUnreachableError';
  }
}

interface RpcResponse {
  jsonrpc: '2.0';
  id: number | null;
  result?: unknown;
  error?: { code: number; message: string; data?: { reason?: string } };
}

export interface ClientOptions {
  /** Per-request timeout, ms. */
  timeoutMs?: number;
}

export type TxInclusion =
  | { hash: string; status: 'included'; height: number; index: number; blockHash: string }
  | { hash: string; status: 'rejected'; code: string; reason: string; height?: number };

/** Checks a node URL's shape before anything is sent, so a typo gets a clear message. */
export function normalizeNodeUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new RpcClientError(0, `invalid node URL "${url}": expected e.g. http://127.0.0.1:3030`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new RpcClientError(0, `invalid node URL "${url}": must start with http:// or https://`);
  }
  return parsed.toString().replace(/\/$/, '');
}

export class UncClient {
  readonly url: string;
  private nextId = 1;
  private readonly timeoutMs: number;

  constructor(url: string, opts: ClientOptions = {}) {
    this.url = normalizeNodeUrl(url);
    this.timeoutMs = opts.timeoutMs ?? 30_000;
  }

  async call<T>(method: string, params: unknown[] | Record<string, unknown> = []): Promise<T> {
    const id = this.nextId++;
    let res: Response;
    try {
      res = await fetch(this.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id, method, params }),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      const cause = (err as Error & { cause?: { code?: string; message?: string } }).cause;
      throw new NodeUnreachableError(this.url, cause?.code ?? cause?.message ?? (err as Error).message);
    }
    let body: RpcResponse;
    try {
      body = (await res.json()) as RpcResponse;
    } catch {
      throw new RpcClientError(
        0,
        `the node at ${this.url} answered HTTP ${res.status} with no JSON-RPC body`,
      );
    }
    if (body.error) throw new RpcClientError(body.error.code, body.error.message, body.error.data?.reason);
    return body.result as T;
  }

  status(): Promise<StatusJson> {
    return this.call('unc_status');
  }
  getBlock(ref: number | string | 'latest' = 'latest', full = false): Promise<BlockJson> {
    return this.call('unc_getBlock', [ref, full]);
  }
  getBlocks(from: number, count: number): Promise<BlockJson[]> {
    return this.call('unc_getBlocks', [from, count]);
  }
  getHeader(ref: number | string | 'latest' = 'latest'): Promise<HeaderJson> {
    return this.call('unc_getHeader', [ref]);
  }
  getTransaction(hash: string): Promise<TxReceiptJson> {
    return this.call('unc_getTransaction', [hash]);
  }
  /** Included, pending, dropped (with reason code and height) or unknown; never an error for those. */
  getTransactionStatus(hash: string): Promise<TxStatusJson> {
    return this.call('unc_getTransactionStatus', [hash]);
  }
  getAccount(address: string, proof = false): Promise<AccountJson> {
    return this.call('unc_getAccount', [address, proof]);
  }
  getSupply(): Promise<SupplyJson> {
    return this.call('unc_getSupply');
  }
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
  }> {
    return this.call('unc_getParams');
  }
  getGenesis(): Promise<Record<string, unknown>> {
    return this.call('unc_getGenesis');
  }
  sendRawTransaction(hex: string): Promise<{ hash: string; replaced: boolean }> {
    return this.call('unc_sendTransaction', [hex]);
  }
  sendRawTransactions(
    hexes: string[],
  ): Promise<({ hash: string; replaced: boolean } | { error: { reason: string; message: string } })[]> {
    return this.call('unc_sendTransactions', [hexes]);
  }

  /** Open offers, newest first; with `provider`, its open and closing ones (`all`: closed too). */
  getOffers(opts: { provider?: string; all?: boolean } = {}): Promise<OfferJson[]> {
    return this.call('unc_getOffers', opts);
  }
  getOffer(id: string): Promise<OfferJson> {
    return this.call('unc_getOffer', [id]);
  }
  getLease(id: string): Promise<LeaseJson> {
    return this.call('unc_getLease', [id]);
  }
  /** The leases of a renter or of a provider, newest first. */
  getLeases(filter: { renter: string } | { provider: string }): Promise<LeaseJson[]> {
    return this.call('unc_getLeases', filter);
  }
  getProviderRecord(address: string): Promise<ProviderRecordJson> {
    return this.call('unc_getProviderRecord', [address]);
  }

  get wsUrl(): string {
    return this.url.replace(/^http/, 'ws');
  }

  /** Opens a subscription; returns a function that closes it. */
  async subscribe<T>(name: string, params: unknown, onEvent: (event: T) => void): Promise<Subscription> {
    const WS = await webSocketImpl();
    const socket = new WS(this.wsUrl);
    await new Promise<void>((resolve, reject) => {
      socket.onopen = () => resolve();
      socket.onerror = () => reject(new NodeUnreachableError(this.wsUrl, 'WebSocket connection failed'));
    });
    const id = this.nextId++;
    const subscriptionId = await new Promise<string>((resolve, reject) => {
      socket.onmessage = (msg) => {
        const data = JSON.parse(String(msg.data)) as RpcResponse & {
          method?: string;
          params?: { subscription: string; result: T };
        };
        if (data.id === id) {
          if (data.error)
            reject(new RpcClientError(data.error.code, data.error.message, data.error.data?.reason));
          else resolve(data.result as string);
        } else if (data.method === 'unc_subscription' && data.params) {
          onEvent(data.params.result);
        }
      };
      socket.send(JSON.stringify({ jsonrpc: '2.0', id, method: 'unc_subscribe', params: [name, params] }));
    });
    return {
      id: subscriptionId,
      close: () => socket.close(),
      onClose: (fn: () => void) => {
        socket.onclose = () => fn();
      },
    };
  }

  /**
   * Resolves when the transaction is included in a committed block, or rejects with the reason
   * the block builder dropped it. Subscribes before checking, so no inclusion is missed.
   */
  async waitForTransaction(hash: string, timeoutMs = 60_000): Promise<TxInclusion> {
    return new Promise<TxInclusion>((resolve, reject) => {
      let sub: Subscription | null = null;
      let settled = false;
      const settle = (fn: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        sub?.close();
        fn();
      };
      const timer = setTimeout(
        () =>
          settle(() =>
            reject(new RpcClientError(0, `transaction ${hash} not included after ${timeoutMs} ms`)),
          ),
        timeoutMs,
      );
      this.subscribe<TxInclusion>('tx', [hash], (event) => settle(() => resolve(event)))
        .then((s) => {
          sub = s;
          // The event can arrive in the same frame batch as the subscription's id.
          if (settled) s.close();
          else
            s.onClose(() => settle(() => reject(new RpcClientError(0, 'the node closed the subscription'))));
        })
        .catch((err) => settle(() => reject(err)));
    });
  }
}

export interface Subscription {
  id: string;
  close(): void;
  onClose(fn: () => void): void;
}

interface MinimalWebSocket {
  onopen: ((ev: unknown) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  onclose: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  send(data: string): void;
  close(): void;
}

type WebSocketCtor = new (url: string) => MinimalWebSocket;

async function webSocketImpl(): Promise<WebSocketCtor> {
  const native = (globalThis as { WebSocket?: WebSocketCtor }).WebSocket;
  if (native) return native;
  // Node 20 has no global WebSocket; the `ws` package provides the same interface.
  const mod = (await import('ws')) as unknown as { default: WebSocketCtor };
  return mod.default;
}
