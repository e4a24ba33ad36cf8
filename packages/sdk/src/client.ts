/**
 * Typed JSON-RPC client for a UtilityNet node, over HTTP (calls) and WebSocket (subscriptions).
 * Everything the CLI and explorer read from a node goes through here.
 */
import * as v from 'valibot';
import {
  errorFromRpc,
  InvalidParamsError,
  MalformedAnswerError,
  NodeUnreachableError,
  RpcClientError,
} from './errors.js';
import {
  type RpcDomain,
  type RpcMethodName,
  type RpcParamsIn,
  type RpcResult,
  rpcMethods,
} from './schema/methods.js';
import { type HubOptions, type Subscription, SubscriptionHub } from './subscriptions.js';
import type {
  AccountJson,
  AnswerRefJson,
  BlockJson,
  ChainParamsJson,
  ChipEventJson,
  ChipJson,
  EpochJson,
  GovernanceJson,
  HeaderJson,
  LeaseJson,
  MempoolJson,
  ModelJson,
  OfferJson,
  ProviderRecordJson,
  RewardJson,
  SendResultJson,
  StatusJson,
  SupplyJson,
  TxEventJson,
  TxReceiptJson,
  TxStatusJson,
  ValidatorSetJson,
  ValidatorSetProofJson,
  VendorJson,
} from './views.js';

export { NodeUnreachableError, RpcClientError } from './errors.js';

/**
 * The index methods' answers as domain objects: power (TFLOPS × 1000) and amounts are bigint.
 * Their JSON (wire) forms are the *Page / *Json types of index-views.ts.
 */
export type NetworkStats = RpcDomain<'unc_getNetworkStats'>;
export type NetworkHistory = RpcDomain<'unc_getNetworkHistory'>;
export type AccountTransactions = RpcDomain<'unc_getAccountTransactions'>;
export type AccountTransaction = AccountTransactions['transactions'][number];
export type ChipPage = RpcDomain<'unc_listChips'>;
export type LeaseEvents = RpcDomain<'unc_getLeaseEvents'>;
/** One page of an index list: `cursor` is the previous page's `nextCursor` (absent: the first). */
export interface PageOptions {
  cursor?: string | null;
  limit?: number;
}
export type { HubOptions, Subscription } from './subscriptions.js';

/** A method's parameters: by name (typed by the schema) or positional, in the schema's order. */
export type CallParams<M extends RpcMethodName> = RpcParamsIn<M> | unknown[];

interface RpcResponse {
  jsonrpc: '2.0';
  id: number | null;
  result?: unknown;
  error?: { code: number; message: string; data?: unknown };
}

export interface ClientOptions {
  /** Per-request timeout, ms: the whole exchange, the answer's body read to its end included. */
  timeoutMs?: number;
  /** The largest answer body read, in bytes (default DEFAULT_MAX_ANSWER_BYTES). */
  maxAnswerBytes?: number;
  /** How subscriptions travel (WebSocket with reconnect, polling fallback). */
  subscriptions?: HubOptions;
}

export type TxInclusion =
  | { hash: string; status: 'included'; height: number; index: number; blockHash: string }
  | {
      hash: string;
      status: 'rejected';
      code: string;
      reason: string;
      height?: number;
      /** The heartbeat answer the drop is about, when it is about one. */
      answer?: AnswerRefJson;
    };

/**
 * The largest answer a node may send (64 MiB): twice a node's own default reply cap
 * (`maxResponseBytes`, 32 MiB). The node is not trusted: one that answered a gigabyte, or a body
 * that never ends, would otherwise be held whole in the client's memory (a CLI, a gateway, an
 * explorer tab) before a byte of it was looked at.
 */
export const DEFAULT_MAX_ANSWER_BYTES = 64 * 1024 * 1024;

/** A node's answer was over the client's `maxAnswerBytes`: it was not read further. */
export class AnswerTooLargeError extends RpcClientError {
  constructor(
    url: string,
    readonly limit: number,
  ) {
    super(0, `the node at ${url} sent an answer over ${limit} bytes: not read further`, 'ANSWER_TOO_LARGE');
    this.name = 'AnswerTooLargeError';
  }
}

/**
 * The body of `res` as text, read chunk by chunk and given up past `limit` bytes (the stream is
 * cancelled, so the connection is closed rather than drained).
 */
async function readBoundedText(res: Response, limit: number, url: string): Promise<string> {
  const declared = Number(res.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > limit) {
    await res.body?.cancel().catch(() => {});
    throw new AnswerTooLargeError(url, limit);
  }
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    let step: Awaited<ReturnType<typeof reader.read>>;
    try {
      step = await reader.read();
    } catch (err) {
      // The timeout (or a dropped connection) in the middle of the body: the answer never came whole.
      const cause = (err as Error & { cause?: { code?: string } }).cause;
      throw new NodeUnreachableError(url, `the answer was cut off: ${cause?.code ?? (err as Error).message}`);
    }
    if (step.done) break;
    size += step.value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      throw new AnswerTooLargeError(url, limit);
    }
    chunks.push(step.value);
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.byteLength;
  }
  return new TextDecoder().decode(all);
}

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

/**
 * How far past the committed nonce `UncClient.nextNonce` takes a node's `pendingNonce`: a default
 * node counts at most the key's transactions in the decided block being written (what its
 * proposer's queue held, 64 by default) and its own queue's gapless run (64 by default): 128 at
 * most. Twice that leaves room for nodes that keep somewhat more; an answer past it is refused
 * (MalformedAnswerError), so that no node can have the key sign where only a gap waits.
 */
export const MAX_PENDING_NONCE_AHEAD = 256;

export class UncClient {
  readonly url: string;
  private nextId = 1;
  private readonly timeoutMs: number;
  private readonly maxAnswerBytes: number;

  constructor(url: string, opts: ClientOptions = {}) {
    this.url = normalizeNodeUrl(url);
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.maxAnswerBytes = opts.maxAnswerBytes ?? DEFAULT_MAX_ANSWER_BYTES;
    this.subscriptionOptions = opts.subscriptions ?? {};
  }
  private readonly subscriptionOptions: HubOptions;

  /** A method of the schema: its params and answer are typed (the answer in its JSON form). */
  call<M extends RpcMethodName>(method: M, params?: CallParams<M>): Promise<RpcResult<M>>;
  /** Any method by name (e.g. one newer than this sdk); the caller states the answer's type. */
  call<T>(method: string, params?: unknown[] | Record<string, unknown>): Promise<T>;
  async call(method: string, params: unknown = []): Promise<unknown> {
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
    const text = await readBoundedText(res, this.maxAnswerBytes, this.url);
    let body: RpcResponse | null = null;
    try {
      body = JSON.parse(text) as RpcResponse;
    } catch {}
    if (typeof body !== 'object' || body === null) {
      throw new RpcClientError(
        0,
        `the node at ${this.url} answered HTTP ${res.status} with no JSON-RPC body`,
      );
    }
    if (body.error) throw errorFromRpc(body.error);
    return body.result;
  }

  /**
   * A method's answer checked against the schema and turned into domain values: amounts are
   * bigint. A node answering with another shape is a MalformedAnswerError, never a wrong value.
   */
  async read<M extends RpcMethodName>(method: M, params?: CallParams<M>): Promise<RpcDomain<M>> {
    const json = await this.call(method, params);
    const parsed = v.safeParse(rpcMethods[method].result.schema, json);
    if (!parsed.success) {
      const issue = parsed.issues[0];
      throw new MalformedAnswerError(method, `${v.getDotPath(issue) ?? '(root)'}: ${issue.message}`);
    }
    return parsed.output as RpcDomain<M>;
  }

  /** An account's balance in base units, and its next nonce, at `height`. */
  async account(
    address: string,
  ): Promise<{ address: string; balance: bigint; nonce: number; height: number }> {
    const a = await this.read('unc_getAccount', { address });
    return { address: a.address, balance: a.balance, nonce: a.nonce, height: a.height };
  }
  async balance(address: string): Promise<bigint> {
    return (await this.account(address)).balance;
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
  /** The canonical encoding of a block, hex. */
  getRawBlock(ref: number | string | 'latest' = 'latest'): Promise<string> {
    return this.call('unc_getRawBlock', [ref]);
  }
  /** What a block did before its transactions (lease settlements at an epoch start or a lease's end). */
  getBlockEvents(ref: number | string | 'latest' = 'latest'): Promise<TxEventJson[]> {
    return this.call('unc_getBlockEvents', [ref]);
  }
  /** The validator set that signs `height` (default: the next block). */
  getValidators(height?: number): Promise<ValidatorSetJson> {
    return this.call('unc_getValidators', height === undefined ? [] : [height]);
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
  /**
   * The nonce the key of `address` signs its next transaction at: the next free one counting its
   * transactions pending at the node (`pendingNonce`: the mempool's run after the committed nonce),
   * so that a second transaction sent before the first is included queues behind it instead of
   * colliding with it (eth_getTransactionCount(…, 'pending')). Never below the committed `nonce`.
   * A node older than the `pending` flag refuses it (-32602): its committed nonce then. The node's
   * word either way: one that says too high a nonce makes the transaction wait in a gap until it
   * expires (or until the key's other transactions fill the gap), as a lie about the committed
   * nonce always could; one that says too low gets it refused NONCE_USED or
   * REPLACEMENT_UNDERPRICED. A `pendingNonce` more than MAX_PENDING_NONCE_AHEAD past the committed
   * nonce, or a committed nonce that is not a count, is a MalformedAnswerError: nothing is signed.
   */
  async nextNonce(address: string): Promise<bigint> {
    let account: AccountJson;
    try {
      account = await this.call<AccountJson>('unc_getAccount', [address, false, true]);
    } catch (err) {
      if (!(err instanceof InvalidParamsError)) throw err;
      account = await this.getAccount(address);
    }
    // Read unchecked (`call`): a nonce that is not a count is refused here, not handed to BigInt
    // (a decimal string of any length parsed, a fraction a bare RangeError).
    if (!(Number.isSafeInteger(account.nonce) && account.nonce >= 0))
      throw new MalformedAnswerError('unc_getAccount', `nonce: not a non-negative safe integer`);
    const committed = BigInt(account.nonce);
    const pending = account.pendingNonce;
    if (!(typeof pending === 'number' && Number.isSafeInteger(pending) && BigInt(pending) > committed))
      return committed;
    // Past what a node keeps pending for one key: signed there, the transaction could only wait in
    // a gap (refused NONCE_GAP by every honest node) until it expires, the node holding it.
    if (BigInt(pending) - committed > BigInt(MAX_PENDING_NONCE_AHEAD))
      throw new MalformedAnswerError(
        'unc_getAccount',
        `pendingNonce ${pending} is more than ${MAX_PENDING_NONCE_AHEAD} past the committed nonce ${committed} (no node keeps that many of one key pending by default; pass an explicit nonce to sign there)`,
      );
    return BigInt(pending);
  }
  /** At an epoch's last block: the next set's Merkle proofs against its state root (light-client.ts). */
  getValidatorSetProof(height: number): Promise<ValidatorSetProofJson> {
    return this.call('unc_getValidatorSetProof', [height]);
  }
  getSupply(): Promise<SupplyJson> {
    return this.call('unc_getSupply');
  }
  getParams(): Promise<ChainParamsJson> {
    return this.call('unc_getParams');
  }
  getGenesis(): Promise<Record<string, unknown>> {
    return this.call('unc_getGenesis');
  }
  getMempool(): Promise<MempoolJson> {
    return this.call('unc_mempool');
  }
  sendRawTransaction(hex: string): Promise<SendResultJson> {
    return this.call('unc_sendTransaction', [hex]);
  }
  sendRawTransactions(
    hexes: string[],
  ): Promise<(SendResultJson | { error: { reason: string; message: string; retryAfterMs?: number } })[]> {
    return this.call('unc_sendTransactions', [hexes]);
  }

  /** With `proof`, Merkle proofs of the record and what its status reads (LightClient.verifyChip). */
  getChip(chipId: string, proof = false): Promise<ChipJson> {
    return this.call('unc_getChip', proof ? [chipId, true] : [chipId]);
  }
  /** Chips (at most 1000), optionally of one owner. */
  getChips(owner?: string): Promise<ChipJson[]> {
    return this.call('unc_getChips', owner === undefined ? [] : [owner]);
  }
  getChipEvents(chipId: string, limit = 100): Promise<ChipEventJson[]> {
    return this.call('unc_getChipEvents', [chipId, limit]);
  }
  /** Per-epoch earnings of a chip (64 hex digits) or of every chip of an owner address. */
  getRewards(target: string): Promise<RewardJson[]> {
    return this.call('unc_getRewards', [target]);
  }
  getEpoch(epoch?: number): Promise<EpochJson> {
    return this.call('unc_getEpoch', epoch === undefined ? [] : [epoch]);
  }
  getGovernance(): Promise<GovernanceJson> {
    return this.call('unc_getGovernance');
  }
  getVendors(): Promise<VendorJson[]> {
    return this.call('unc_getVendors');
  }
  getModels(): Promise<ModelJson[]> {
    return this.call('unc_getModels');
  }

  /** Open offers, newest first; with `provider`, its open and closing ones (`all`: closed too). */
  getOffers(opts: { provider?: string; all?: boolean } = {}): Promise<OfferJson[]> {
    return this.call('unc_getOffers', opts);
  }
  getOffer(id: string): Promise<OfferJson> {
    return this.call('unc_getOffer', [id]);
  }
  /** With `proof`, Merkle proofs of the lease and its offer (LightClient.verifyLease). */
  getLease(id: string, proof = false): Promise<LeaseJson> {
    return this.call('unc_getLease', proof ? [id, true] : [id]);
  }
  /** The leases of a renter or of a provider, newest first. */
  getLeases(filter: { renter: string } | { provider: string }): Promise<LeaseJson[]> {
    return this.call('unc_getLeases', filter);
  }
  getProviderRecord(address: string): Promise<ProviderRecordJson> {
    return this.call('unc_getProviderRecord', [address]);
  }
  /**
   * The transactions that touched `address`, newest first, one page (`limit` 1…100, default 25);
   * `heartbeats: false` leaves out heartbeat-only ones. Fees and amounts of `tx` are bigint.
   */
  getAccountTransactions(
    address: string,
    opts: PageOptions & { heartbeats?: boolean } = {},
  ): Promise<AccountTransactions> {
    return this.read('unc_getAccountTransactions', {
      address,
      cursor: opts.cursor ?? null,
      limit: opts.limit ?? null,
      heartbeats: opts.heartbeats ?? null,
    });
  }
  /** Every chip (or an owner's) in chip id order, one page (`limit` 1…200), with the total. */
  listChips(opts: PageOptions & { owner?: string } = {}): Promise<ChipPage> {
    return this.read('unc_listChips', {
      owner: opts.owner ?? null,
      cursor: opts.cursor ?? null,
      limit: opts.limit ?? null,
    });
  }
  /** A lease's log, newest first: receipts, settlements, disputes, closing (`limit` 1…500). */
  getLeaseEvents(leaseId: string, opts: PageOptions = {}): Promise<LeaseEvents> {
    return this.read('unc_getLeaseEvents', {
      leaseId,
      cursor: opts.cursor ?? null,
      limit: opts.limit ?? null,
    });
  }
  /** The network's figures as of the head, over every chip; power is bigint (TFLOPS × 1000). */
  getNetworkStats(): Promise<NetworkStats> {
    return this.read('unc_getNetworkStats');
  }
  /** The figures recorded at each epoch's first block, newest first (`limit` 1…1000). */
  getNetworkHistory(opts: PageOptions = {}): Promise<NetworkHistory> {
    return this.read('unc_getNetworkHistory', { cursor: opts.cursor ?? null, limit: opts.limit ?? null });
  }

  /** The node's OpenRPC document (`rpc.discover`). */
  discover(): Promise<Record<string, unknown>> {
    return this.call<Record<string, unknown>>('rpc.discover');
  }

  get wsUrl(): string {
    return this.url.replace(/^http/, 'ws');
  }

  /** The one WebSocket all of this client's subscriptions share (opened with the first). */
  private hubInstance: SubscriptionHub | null = null;
  get subscriptions(): SubscriptionHub {
    this.hubInstance ??= new SubscriptionHub(
      { wsUrl: this.wsUrl, call: (method, params) => this.call(method, params) },
      // The client's bound unless the caller set its own: an undefined spread over it (a wrapper
      // passing an unset option on) left the socket at the ws package's own 100 MiB.
      {
        ...this.subscriptionOptions,
        maxMessageBytes: this.subscriptionOptions.maxMessageBytes ?? this.maxAnswerBytes,
      },
      errorFromRpc,
    );
    return this.hubInstance;
  }

  /**
   * Opens a subscription (`newBlocks`, `tx`) on the client's shared WebSocket, made again after a
   * reconnect, or polled over HTTP where no WebSocket connects; returns a handle that closes it.
   */
  subscribe<T>(name: string, params: unknown, onEvent: (event: T) => void): Promise<Subscription> {
    return this.subscriptions.subscribe(name, params, onEvent as (event: unknown) => void);
  }

  /** Closes the shared WebSocket and every subscription on it. */
  close(): void {
    this.hubInstance?.close();
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
