/**
 * JSON-RPC 2.0 over HTTP (POST /) and WebSocket (/ or /ws) on one port, plus the node's small
 * operational GET endpoints (/health, /metrics) and a hook for other GET pages (the explorer).
 *
 * The server knows nothing about the chain: callers hand it a table of methods and subscriptions.
 * Its job is to be the hardened boundary: every byte a client sends is untrusted, so every failure
 * mode (bad JSON, oversized bodies, handler bugs, slow or dead sockets) ends in a well-formed error
 * or a dropped connection, never a crash or a leaked stack trace.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse, STATUS_CODES } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { type RawData, type WebSocket, WebSocketServer } from 'ws';
import { createLogger, type Logger } from '../log.js';
import {
  ClientTally,
  clientKey,
  DEFAULT_PREFIX_SHARES,
  describeLevel,
  forwardedClient,
  type Level,
  levelsOf,
  MAX_WANTS,
  MIN_NETWORKS,
  normalAddress,
  type PrefixShares,
  RateLimiter,
  type Tallied,
  tallyNow,
  unlimitedEntry,
} from './clients.js';
import {
  RpcError,
  RpcErrorCode,
  type RpcErrorObject,
  type RpcLimitReason,
  toRpcErrorObject,
} from './errors.js';
import { JsonTooLargeError, type JsonValue, toJsonValue } from './json.js';
import { WsLine } from './line.js';

export {
  ClientTally,
  clientKey,
  DEFAULT_PREFIX_SHARES,
  forwardedClient,
  type Level,
  levelsOf,
  MAX_FORWARDED_CHARS,
  MAX_FORWARDED_HOPS,
  MAX_TRACKED_CLIENTS,
  MIN_NETWORKS,
  type PrefixShares,
  prefixesOf,
  RateLimiter,
  type Tallied,
} from './clients.js';
export {
  RpcError,
  RpcErrorCode,
  type RpcErrorObject,
  type RpcLimitReason,
  toRpcErrorObject,
} from './errors.js';
export { JsonTooLargeError, type JsonValue, toJsonValue } from './json.js';
export { endsPlace, heldBy, refusedUnrun, roomAhead, WsLine, type WsPlace } from './line.js';

export type RpcTransport = 'http' | 'ws';
export interface RpcContext {
  transport: RpcTransport;
}

export type RpcHandler = (params: unknown, ctx: RpcContext) => unknown | Promise<unknown>;
/**
 * Starts a subscription that calls `emit` for each event; returns the function that stops it.
 * An object passed to `emit` is serialised once and the text shared by every subscriber it is
 * emitted to (the server remembers it by identity), so it must not be changed after emitting.
 */
export type RpcSubscription = (params: unknown, emit: (result: unknown) => void) => () => void;
/** What a call costs in work units, from its (untrusted, unvalidated) params; 1 when absent. */
export type RpcCost = (params: unknown) => number;

/** Every bound the server puts on clients; docs/rpc.md lists them with the error each answers. */
export interface RpcLimits {
  /** Largest HTTP body and WebSocket message accepted (HTTP 413 / WebSocket close 1009). */
  maxBodyBytes: number;
  /** Most requests in one batch. */
  maxBatchSize: number;
  /** Most work units one request, or one batch in total, may ask for (see RpcServerModules.costs). */
  maxWork: number;
  /** Largest serialised response to one request. */
  maxResponseBytes: number;
  /** Largest serialised batch response; the requests past it are answered with an error. */
  maxBatchResponseBytes: number;
  /** Most open sockets (HTTP and WebSocket together). */
  maxConnections: number;
  /**
   * Most open sockets from one IP address (an IPv4 address, an IPv6 /64); its /24 or /48, and its
   * /16 or /32, get subnetShare and networkShare times that, shared by all of their addresses, but
   * at most maxConnections / MIN_NETWORKS (8) each, so that 8 networks always fit.
   */
  maxConnectionsPerIp: number;
  maxWsConnections: number;
  /**
   * Most WebSockets of one IP address (also counted in maxConnectionsPerIp); its networks get their
   * shares of it, at most maxWsConnections / MIN_NETWORKS each. Before, only the per-IP socket cap
   * held WebSockets: a /24's share of it (4 × 64) was every one of maxWsConnections (256).
   */
  maxWsConnectionsPerIp: number;
  maxSubscriptionsPerConnection: number;
  /**
   * Most messages (requests or batches) of one IP address being handled at once, over all its
   * connections: what bounds the replies in memory for one client (HTTP pipelining included). An
   * HTTP message counts until its reply has been handed to the socket. Its prefixes get their
   * shares' worth, as for maxConnectionsPerIp.
   */
  maxInflightPerIp: number;
  /**
   * Work units per second one IP address may spend, refilled continuously; 0 turns it off. Each of
   * its prefixes has a bucket of its share's worth (rate and burst), shared by all of its addresses.
   */
  rateLimitPerSecond: number;
  /** Work units an IP address may spend at once (the bucket size); at least maxWork. */
  rateLimitBurst: number;
  /**
   * How many addresses' worth of every per-IP limit (connections, messages in progress, rate, and
   * places in the WebSocket line) an IPv4 /24 or IPv6 /48 gets, shared by all of its addresses; 0:
   * no cap per /24 or /48. See clients.ts for the trade-off.
   */
  subnetShare: number;
  /** The same for an IPv4 /16 or IPv6 /32; 0 (the default): no cap per /16 or /32, which hold too many unrelated clients to cap by default. */
  networkShare: number;
  /** Time a client has to send a request's headers (also the upgrade request of a WebSocket). */
  headersTimeoutMs: number;
  /** Time a client has to send a whole request; also how long an HTTP socket may sit idle. */
  requestTimeoutMs: number;
  /** How long an idle keep-alive HTTP socket is kept open between requests. */
  keepAliveTimeoutMs: number;
  /** A WebSocket client whose unsent replies and events exceed this is dropped (it is not reading). */
  maxWsBufferedBytes: number;
  /**
   * Unsent replies and events of all WebSocket clients together (at least maxWsBufferedBytes): a
   * reply past it is answered -32005 BUSY; past it, clients are dropped in shedOrder (behind the
   * read floor first, then the slowest to drain), at a send only to keep it under the cap plus one
   * message, at a ping round to get under it and make room for the largest reply refused.
   */
  maxWsBufferedBytesTotal: number;
  /**
   * The read floor: a WebSocket client with unsent bytes waiting must read at least this many a
   * second of them (or all of them), measured at each ping round.
   */
  minWsReadBytesPerSecond: number;
  /**
   * How far (bytes) a WebSocket client may fall behind the read floor before it is dropped: more
   * than one socket's kernel buffers hold, as they pass a steady reader's bytes on in bursts.
   */
  wsReadSlackBytes: number;
  /** How often idle WebSocket clients are pinged; one missed pong drops them. */
  pingIntervalMs: number;
  /** Addresses exempt from the per-IP connection cap and the rate limit (e.g. a trusted proxy). */
  unlimitedAddresses: readonly string[];
  /**
   * Reverse proxies whose X-Forwarded-For is believed (forwardedClient): a request whose socket
   * comes from one is counted as the right-most address of the header that is not one of them. No
   * other peer's header is read (anyone can send one). Their sockets skip the per-IP socket cap
   * (their clients are counted per request and per WebSocket instead). Empty by default.
   */
  trustedProxies: readonly string[];
}

/** The limits that are lists of IP addresses, one by one (unlimitedEntry). */
const ADDRESS_LISTS: ReadonlySet<string> = new Set(['unlimitedAddresses', 'trustedProxies']);

export const DEFAULT_RPC_LIMITS: Readonly<RpcLimits> = Object.freeze({
  maxBodyBytes: 16 * 1024 * 1024,
  maxBatchSize: 1_000,
  maxWork: 1_000,
  // A full block is up to 8 MiB (maxBlockBytes): 16 MiB as hex, more as JSON.
  maxResponseBytes: 32 * 1024 * 1024,
  maxBatchResponseBytes: 32 * 1024 * 1024,
  maxConnections: 1_024,
  maxConnectionsPerIp: 64,
  maxWsConnections: 256,
  // A /24 (4 addresses' worth) 32: an eighth of maxWsConnections.
  maxWsConnectionsPerIp: 8,
  maxSubscriptionsPerConnection: 32,
  maxInflightPerIp: 16,
  rateLimitPerSecond: 500,
  rateLimitBurst: 2_000,
  subnetShare: DEFAULT_PREFIX_SHARES.subnet,
  networkShare: DEFAULT_PREFIX_SHARES.network,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  maxWsBufferedBytes: 32 * 1024 * 1024,
  // 256 connections at maxWsBufferedBytes each would be 8 GiB.
  maxWsBufferedBytesTotal: 256 * 1024 * 1024,
  // 0.5 Mbit/s: a silent holder makes no progress at all, and a client that trickles just above
  // the floor pays for the memory it holds with bandwidth.
  minWsReadBytesPerSecond: 64 * 1024,
  // A silent holder goes after 8 MiB / 64 KiB/s ≈ 2 minutes (the total cap bounds all of them).
  wsReadSlackBytes: 8 * 1024 * 1024,
  pingIntervalMs: 30_000,
  unlimitedAddresses: Object.freeze([]) as readonly string[],
  trustedProxies: Object.freeze([]) as readonly string[],
});

/**
 * Reads limits from a config file's `rpc` object: a known key with a value of the right type, or a
 * TypeError that names the key (values are range-checked when the server starts).
 */
export function parseRpcLimits(value: unknown, where = 'rpc'): Partial<RpcLimits> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new TypeError(`${where} must be an object`);
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    if (!Object.hasOwn(DEFAULT_RPC_LIMITS, key)) {
      throw new TypeError(
        `${where}.${key} is not an RPC limit (known: ${Object.keys(DEFAULT_RPC_LIMITS).join(', ')})`,
      );
    }
    const list = ADDRESS_LISTS.has(key);
    const ok = list
      ? Array.isArray(v) && v.every((a) => typeof a === 'string')
      : typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
    if (!ok) {
      const want = list ? 'a list of addresses' : 'a non-negative integer';
      throw new TypeError(`${where}.${key} must be ${want}`);
    }
    if (list) checkUnlimited(v as string[], `${where}.${key}`);
    out[key] = v;
  }
  return out as Partial<RpcLimits>;
}

/** Throws a TypeError naming `where` when an entry is not one IP address (unlimitedEntry). */
function checkUnlimited(entries: readonly string[], where: string): void {
  for (const entry of entries) {
    try {
      unlimitedEntry(entry);
    } catch (err) {
      throw new TypeError(
        `${where}: ${(err as Error).message} (list addresses one by one, no names or ranges)`,
      );
    }
  }
}

export interface RpcServerOptions extends Partial<RpcLimits> {
  /** Callers pass 127.0.0.1 unless they mean to expose the node; nothing here defaults to 0.0.0.0. */
  host: string;
  /** 0 picks a free port; the chosen one is returned. */
  port: number;
}

export interface HealthReport {
  ok: boolean;
  [key: string]: unknown;
}

export interface RpcServerModules {
  methods: Record<string, RpcHandler>;
  subscriptions: Record<string, RpcSubscription>;
  /**
   * Work units of the methods that do more than one unit of work (e.g. one per block read);
   * every other call costs 1. Checked against maxWork and charged to the caller's rate limit
   * before the method runs.
   */
  costs?: Record<string, RpcCost>;
  metrics?: () => string | Promise<string>;
  health?: () => HealthReport | Promise<HealthReport>;
  /** Serves other GET paths (e.g. the explorer); returns false when it did not handle the request. */
  httpFallback?: (req: IncomingMessage, res: ServerResponse) => boolean;
  logger?: Logger;
}

export interface RpcServer {
  url: string;
  wsUrl: string;
  port: number;
  close(): Promise<void>;
}

export const SUBSCRIBE_METHOD = 'unc_subscribe';
export const UNSUBSCRIBE_METHOD = 'unc_unsubscribe';
export const SUBSCRIPTION_NOTIFICATION = 'unc_subscription';

const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';
const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
/** Media types that JSON-RPC clients send in the wild; all mean "JSON". */
const ACCEPTED_MEDIA_TYPES = new Set(['application/json', 'application/json-rpc', 'application/jsonrequest']);
const NOTIFICATION_TAIL = Buffer.from('}}');
/**
 * Bytes moved cost rate limit too: a message one unit per started PARSE_UNIT_CHARS (for parsing
 * it), a reply one unit per whole PARSE_UNIT_CHARS (so replies are in effect bandwidth-limited).
 */
const PARSE_UNIT_CHARS = 64 * 1024;
/**
 * JSON.parse costs per value far more than per byte (~1 µs a value, objects more: 16 MiB of `{},`
 * took seconds), so a message is also charged a unit per PARSE_UNIT_VALUES separators and
 * brackets, counted before parsing, and one with more than maxWork units of them is refused unparsed.
 */
const PARSE_UNIT_VALUES = 100;

/** Commas, colons and opening brackets in `text` (inside strings too), counting up to `cap` + 1. */
function countJsonValues(text: string, cap: number): number {
  let n = 0;
  // indexOf is a native scan: 16 MiB without any of them takes a few milliseconds.
  for (const ch of [',', ':', '[', '{']) {
    for (let i = text.indexOf(ch); i !== -1; i = text.indexOf(ch, i + 1)) if (++n > cap) return n;
  }
  return n;
}
/** Echoed method names are clipped so that an error response cannot be larger than the request. */
const MAX_ECHOED_NAME = 64;

type RpcId = string | number | null;

interface ConnectionRefusal {
  status: 429 | 503;
  error: RpcError;
}

interface RpcResponse {
  jsonrpc: '2.0';
  id: RpcId;
  result?: JsonValue;
  error?: RpcErrorObject;
}

/**
 * Per-message state: the WebSocket connection, if any, work to run once the reply is sent, and what
 * the message (one request or a whole batch) has used of its limits so far.
 */
interface Call {
  ctx: RpcContext;
  conn?: Connection;
  afterSend: Array<() => void>;
  /** Rate-limit key of the client; null when it is exempt. */
  client: string | null;
  batch: boolean;
  work: number;
  /** Bytes the reply may still grow by. */
  bytesLeft: number;
  /** Set once the batch reply is full: the requests left are answered with an error unrun. */
  full: boolean;
  replies: number;
  /** The ids of the replies, in order (to answer them "busy" when the reply does not fit). */
  ids: RpcId[];
  /** Subscriptions the call made (stopped if its reply is refused). */
  subscribed: string[];
  rateLimited: number;
  retryAfterMs: number;
  /**
   * Whether no WebSocket reply could fit when its first request was checked (see wsNoRoom): looked
   * at once a message, as it costs a look at every connection.
   */
  noRoom?: boolean;
  /** The method of a single request (once checked to be a string): what a place in line waits for. */
  method?: string;
}

/** Array.isArray narrows `unknown` to `any[]`; this keeps untrusted input typed as unknown. */
function isList(value: unknown): value is readonly unknown[] {
  return Array.isArray(value);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A JSON-RPC id this server echoes: null, a string or a number. */
function isValidId(id: unknown): id is RpcId {
  return id === null || typeof id === 'string' || typeof id === 'number';
}

/** The id a request's reply carries: its own when valid, else null. */
function replyIdOf(raw: unknown): RpcId {
  if (!isRecord(raw) || !Object.hasOwn(raw, 'id')) return null;
  return isValidId(raw.id) ? raw.id : null;
}

function clip(name: string): string {
  return name.length > MAX_ECHOED_NAME ? `${name.slice(0, MAX_ECHOED_NAME)}…` : name;
}

function errorResponse(id: RpcId, code: number, message: string, data?: JsonValue): RpcResponse {
  const error: RpcErrorObject = { code, message };
  if (data !== undefined) error.data = data;
  return { jsonrpc: '2.0', id, error };
}

function limitError(reason: RpcLimitReason, message: string, limit: number, extra?: object): RpcError {
  return new RpcError(RpcErrorCode.LIMIT_EXCEEDED, message, { reason, limit, ...extra });
}

function limitResponse(id: RpcId, err: RpcError): RpcResponse {
  return errorResponse(id, err.code, err.message, toJsonValue(err.data));
}

function pathOf(url: string | undefined): string {
  // Split by hand: `new URL` would read a request target like `//host/x` as a host name.
  const raw = url ?? '/';
  const end = raw.search(/[?#]/);
  return end === -1 ? raw : raw.slice(0, end);
}

function rawToString(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString('utf8');
  return data.toString('utf8');
}

function resolveLimits(opts: RpcServerOptions): RpcLimits {
  const limits: RpcLimits = { ...DEFAULT_RPC_LIMITS };
  for (const key of Object.keys(DEFAULT_RPC_LIMITS) as Array<keyof RpcLimits>) {
    if (opts[key] !== undefined) (limits as unknown as Record<string, unknown>)[key] = opts[key];
  }
  for (const key of Object.keys(DEFAULT_RPC_LIMITS) as Array<keyof RpcLimits>) {
    if (ADDRESS_LISTS.has(key)) continue;
    const v = limits[key];
    const min =
      key === 'rateLimitPerSecond' ||
      key === 'minWsReadBytesPerSecond' ||
      key === 'subnetShare' ||
      key === 'networkShare'
        ? 0
        : 1;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
      const what = min === 0 ? 'a non-negative integer' : 'a positive integer';
      throw new RangeError(`rpc option ${key} must be ${what} (got ${String(v)})`);
    }
  }
  for (const key of ['unlimitedAddresses', 'trustedProxies'] as const) {
    const list = limits[key];
    if (!Array.isArray(list) || !list.every((a) => typeof a === 'string')) {
      throw new TypeError(`rpc option ${key} must be a list of addresses`);
    }
    checkUnlimited(list, `rpc option ${key}`);
  }
  if (limits.rateLimitBurst < limits.maxWork) {
    throw new RangeError('rpc option rateLimitBurst must be at least maxWork (or no batch could ever run)');
  }
  if (limits.maxWsBufferedBytesTotal < limits.maxWsBufferedBytes) {
    throw new RangeError('rpc option maxWsBufferedBytesTotal must be at least maxWsBufferedBytes');
  }
  if (limits.headersTimeoutMs > limits.requestTimeoutMs) {
    throw new RangeError('rpc option headersTimeoutMs must not exceed requestTimeoutMs');
  }
  return limits;
}

function validateOptions(opts: RpcServerOptions): void {
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65_535) {
    throw new RangeError(`rpc option port must be 0..65535 (got ${opts.port})`);
  }
  if (typeof opts.host !== 'string' || opts.host === '') throw new TypeError('rpc option host is required');
}

type BodyResult = { kind: 'ok'; body: Buffer } | { kind: 'too-large' } | { kind: 'aborted' };

function readBody(req: IncomingMessage, limit: number): Promise<BodyResult> {
  const declared = Number(req.headers['content-length']);
  // Refuse before reading a byte when the client announces an oversized body.
  if (Number.isFinite(declared) && declared > limit) return Promise.resolve({ kind: 'too-large' });
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const settle = (r: BodyResult): void => {
      if (settled) return;
      settled = true;
      resolve(r);
    };
    req.on('data', (chunk: Buffer) => {
      if (settled) return; // keep draining, but stop buffering
      size += chunk.length;
      if (size > limit) {
        chunks.length = 0;
        settle({ kind: 'too-large' });
      } else {
        chunks.push(chunk);
      }
    });
    req.on('end', () => settle({ kind: 'ok', body: Buffer.concat(chunks, size) }));
    req.on('error', () => settle({ kind: 'aborted' }));
    req.on('close', () => settle({ kind: 'aborted' }));
  });
}

/**
 * How far behind the read floor a WebSocket client is after one more ping round: of the
 * `pendingBefore` bytes waiting at the round before, the kernel took `taken` since (the client read
 * them), and the floor asks for `floor` of them (or all, when fewer waited). What it reads short of
 * that adds to its debt, what it reads over pays it back (never into credit); a client with nothing
 * waiting, or that read all of it (`pendingNow` is 0), owes nothing. Debt rather than "a round
 * without progress", because the kernel's buffers (a few MiB) pass a steady reader's bytes on in
 * bursts: over any stretch of rounds, a client reading at the floor owes at most what they hold.
 * `pendingBefore` may count bytes of a write in progress that the kernel already had, so a client
 * that read all the rest is known by `pendingNow`.
 */
export function readDebt(
  debtBefore: number,
  pendingBefore: number,
  taken: number,
  floor: number,
  pendingNow: number,
): number {
  if (pendingBefore <= 0 || pendingNow <= 0) return 0;
  return Math.max(0, debtBefore + Math.max(1, Math.min(pendingBefore, floor)) - taken);
}

/**
 * What one WebSocket client holds in our memory, unsent; whether it is behind the read floor; and
 * how fast it drains: `took`, the bytes the kernel took from its socket over the last ping round,
 * meaningful only when `measured` (bytes of ours waited for it all that round, at its start and at
 * its end). A client not measured got what it holds since the last round (a fresh burst), or read
 * all it had: how fast it reads is not known.
 */
export interface WsHolding {
  pending: number;
  behind: boolean;
  took: number;
  measured: boolean;
}

/**
 * The order in which to drop holders: those behind the read floor first, then those measured, the
 * longest time to drain first (pending ÷ what the kernel took last round), then fresh bursts, the
 * largest first. Time to drain, not bytes held: eleven clients holding 23 MiB each at the floor
 * would otherwise see an honest client reading its 24 MiB reply at ten times the floor dropped in
 * their place. Fresh bursts last, as a reply or event that just went out says nothing yet of its
 * reader (a fresh burst is measured, and behind if it reads nothing, by the next round).
 * Negative: `a` goes before `b`.
 */
export function shedOrder(a: WsHolding, b: WsHolding): number {
  if (a.behind !== b.behind) return a.behind ? -1 : 1;
  if (a.measured !== b.measured) return a.measured ? -1 : 1;
  if (a.measured) {
    // pending ÷ took compared without dividing: a client that took nothing drains never.
    const slowness = b.pending * Math.max(0, a.took) - a.pending * Math.max(0, b.took);
    if (slowness !== 0) return slowness;
  }
  return b.pending - a.pending;
}

/**
 * Which clients (indices into `holdings`, in the order to drop them) to drop so that all unsent
 * bytes plus `incoming` more fit `cap`: those behind the read floor only, or, when `anyHolder`,
 * any holder in shedOrder. A client holding nothing is never dropped (it reads as fast as it is
 * sent to); nothing is dropped when all fits.
 */
export function overBudget(
  holdings: readonly WsHolding[],
  incoming: number,
  cap: number,
  anyHolder: boolean,
): number[] {
  let total = incoming;
  for (const h of holdings) total += h.pending;
  if (total <= cap) return [];
  const order = holdings
    .map((_h, i) => i)
    .filter((i) => holdings[i]!.pending > 0 && (anyHolder || holdings[i]!.behind))
    .sort((a, b) => shedOrder(holdings[a]!, holdings[b]!) || a - b);
  const drop: number[] = [];
  for (const i of order) {
    if (total <= cap) break;
    drop.push(i);
    total -= holdings[i]!.pending;
  }
  return drop;
}

/**
 * Bytes the kernel has taken from a WebSocket's socket so far, or undefined when the socket does not
 * say. ws.bufferedAmount will not do: it counts a write as unsent until the whole of it has gone, so a
 * client steadily reading a 24 MiB reply looks like one reading nothing until the last byte. libuv's
 * write queue (writeQueueSize, what Node's own socket timeout watches for progress) shrinks as the
 * kernel takes bytes, and the handle's bytesWritten counts what was handed to it.
 */
function bytesTaken(ws: WebSocket): number | undefined {
  const socket = (
    ws as unknown as { _socket?: { _handle?: { bytesWritten?: unknown; writeQueueSize?: unknown } } }
  )._socket;
  const written = socket?._handle?.bytesWritten;
  const queued = socket?._handle?.writeQueueSize;
  return typeof written === 'number' && typeof queued === 'number' ? written - queued : undefined;
}

/**
 * The kind of a batch's reply, for a place in line. A single request may name this method too, but
 * no such method exists: its error reply is far below half of any place it could end.
 */
const BATCH_KIND = '[batch]';

/** One WebSocket client and the subscriptions it owns. */
class Connection {
  readonly subs = new Map<string, () => void>();
  alive = true;
  closed = false;
  /** Bytes it read short of the read floor (see readDebt). */
  debt = 0;
  /** Ping rounds for which a missed pong is excused: our ping may be stuck behind our data. */
  graceRounds = 0;
  /** bytesTaken and bufferedAmount at the last ping round. */
  private takenAtRound: number;
  private pendingAtRound = 0;
  /** Bytes the kernel took over the last round, and whether ours waited all that round (WsHolding). */
  private took = 0;
  private measured = false;

  constructor(
    readonly ws: WebSocket,
    /** Rate-limit key; null when the client is exempt. */
    readonly client: string | null,
    private readonly maxBufferedBytes: number,
    /**
     * Books bytes about to be sent against the budget of all clients: an event always (which may
     * drop this one), a reply only when it fits (false: it does not, answer "busy" instead).
     */
    private readonly budget: {
      event(bytes: number): void;
      reply(bytes: number, client: string | null, kind: string): boolean;
    },
    private readonly log: Logger,
  ) {
    this.takenAtRound = bytesTaken(ws) ?? 0;
  }

  /**
   * At a ping round: updates its debt to the read floor, and the rounds for which a missed pong is
   * excused (`grace` while bytes of ours wait and the kernel took some of them since the last round,
   * counting down otherwise: the kernel's buffers may still hold a few MiB ahead of our ping). Bytes
   * waiting alone do not renew it: a peer that vanished, or froze, with some of ours unsent reads
   * nothing, and when what waits is less than the floor its debt grows by that little a round, so
   * it would hold its connection for hours. Where the socket does not say what the kernel took, it
   * owes nothing (the per-connection and total caps, and pongs, still hold it).
   */
  round(floor: number, grace: number): void {
    const taken = bytesTaken(this.ws);
    const pending = this.ws.bufferedAmount;
    this.debt =
      taken === undefined
        ? 0
        : readDebt(this.debt, this.pendingAtRound, taken - this.takenAtRound, floor, pending);
    const progressed = taken === undefined || taken > this.takenAtRound;
    this.measured = taken !== undefined && this.pendingAtRound > 0 && pending > 0;
    this.took = taken === undefined ? 0 : taken - this.takenAtRound;
    this.takenAtRound = taken ?? 0;
    this.pendingAtRound = pending;
    this.graceRounds = pending > 0 && progressed ? grace : Math.max(0, this.graceRounds - 1);
  }

  /** What it holds unsent now, and how fast it drained at the last round (see shedOrder). */
  holding(): WsHolding {
    return {
      pending: this.ws.bufferedAmount,
      behind: this.debt > 0,
      took: this.took,
      measured: this.measured,
    };
  }

  /**
   * Sends a reply, or `busy()` in its place when the reply does not fit the total of unsent bytes
   * of all clients (nobody is dropped for a reply); false when refused.
   */
  sendReply(data: string, kind: string, busy: () => string): boolean {
    if (this.closed || this.ws.readyState !== this.ws.OPEN) return true;
    if (this.budget.reply(Buffer.byteLength(data), this.client, kind)) {
      this.write(data);
      return true;
    }
    this.send(busy());
    return false;
  }

  /** Sends one text message (a Buffer holds its UTF-8 bytes). */
  send(data: string | Buffer): void {
    if (this.closed || this.ws.readyState !== this.ws.OPEN) return;
    this.budget.event(typeof data === 'string' ? Buffer.byteLength(data) : data.length);
    this.write(data);
  }

  /** Hands a message already booked against the total to the socket. */
  private write(data: string | Buffer): void {
    if (this.closed) return;
    // A client that subscribes and never reads would otherwise grow our send buffer without bound.
    if (this.ws.bufferedAmount > this.maxBufferedBytes) {
      this.log.warn('dropping slow websocket consumer', {
        buffered: this.ws.bufferedAmount,
        limit: this.maxBufferedBytes,
      });
      this.dispose();
      this.ws.terminate();
      return;
    }
    this.ws.send(data, { binary: false });
  }

  /** Stops every subscription; idempotent, as both close() and the socket's close event call it. */
  dispose(): void {
    if (this.closed) return;
    this.closed = true;
    const stops = [...this.subs.values()];
    this.subs.clear();
    for (const stop of stops) stop();
  }
}

export async function startRpcServer(opts: RpcServerOptions, modules: RpcServerModules): Promise<RpcServer> {
  validateOptions(opts);
  const limits = resolveLimits(opts);
  const log = modules.logger ?? createLogger('rpc');
  const { methods, subscriptions } = modules;
  const costs = modules.costs ?? {};
  const unlimited = new Set(limits.unlimitedAddresses.map(unlimitedEntry));
  const shares: PrefixShares = { subnet: limits.subnetShare, network: limits.networkShare };
  const rateLimiter = new RateLimiter(limits.rateLimitPerSecond, limits.rateLimitBurst, shares);
  /** What a level's cap (the client's, or one of its prefixes') is, in words. */
  const capWords = (level: Level, cap: number): string =>
    `${describeLevel(level)} (limit ${cap}${level.share === 1 ? '' : ' for its addresses together'})`;
  const trusted = new Set(limits.trustedProxies.map(unlimitedEntry));
  /** The rate-limit key of an address, or null when it is exempt. */
  const keyOf = (address: string | undefined): string | null =>
    unlimited.has(normalAddress(address)) ? null : clientKey(address);
  /** A request's client: its socket's peer, or behind a trusted proxy its X-Forwarded-For client. */
  const clientOf = (req: IncomingMessage): string | null =>
    keyOf(forwardedClient(req.socket.remoteAddress, req.headers['x-forwarded-for'], trusted));
  /** The key a socket counts under for the per-IP socket cap: none for a trusted proxy's. */
  const socketClientOf = (socket: Socket): string | null =>
    trusted.has(normalAddress(socket.remoteAddress)) ? null : keyOf(socket.remoteAddress);

  const connections = new Set<Connection>();
  /** Raw sockets from accepted upgrades, including ones still mid-handshake, so close() can end them. */
  const upgradeSockets = new Set<Duplex>();
  let closing: Promise<void> | undefined;

  // ---- JSON-RPC dispatch (shared by both transports) ----

  function internalError(err: unknown, method: string): RpcErrorObject {
    let mapped: RpcErrorObject | undefined;
    try {
      mapped = toRpcErrorObject(err);
    } catch (conversionError) {
      err = conversionError;
    }
    if (mapped) return mapped;
    log.error('rpc method failed', { method: clip(method), err });
    return { code: RpcErrorCode.INTERNAL_ERROR, message: 'Internal error' };
  }

  function subscribe(conn: Connection, params: unknown, call: Call): string {
    if (!isList(params) || params.length < 1 || params.length > 2 || typeof params[0] !== 'string') {
      throw new RpcError(RpcErrorCode.INVALID_PARAMS, `${SUBSCRIBE_METHOD} expects [name, params?]`);
    }
    const name: string = params[0];
    if (!Object.hasOwn(subscriptions, name)) {
      throw new RpcError(RpcErrorCode.INVALID_PARAMS, `unknown subscription: ${clip(name)}`);
    }
    if (conn.subs.size >= limits.maxSubscriptionsPerConnection) {
      throw limitError(
        'SUBSCRIPTION_LIMIT',
        `too many subscriptions on this connection (limit ${limits.maxSubscriptionsPerConnection})`,
        limits.maxSubscriptionsPerConnection,
      );
    }
    const id = randomBytes(8).toString('hex');
    let active = true;
    // Events emitted before the client has the id in hand (e.g. a snapshot sent synchronously on
    // subscribe) are held back until the subscribe response has gone out.
    let pending: unknown[] | undefined = [];
    // The envelope around the shared result text: only the subscription id differs per subscriber.
    const head = Buffer.from(
      `{"jsonrpc":"2.0","method":"${SUBSCRIPTION_NOTIFICATION}","params":{"subscription":"${id}","result":`,
    );
    const deliver = (result: unknown): void => {
      const body = eventBytes(result, name);
      if (body) conn.send(Buffer.concat([head, body, NOTIFICATION_TAIL]));
    };
    const emit = (result: unknown): void => {
      if (!active || conn.closed) return;
      if (pending) pending.push(result);
      else deliver(result);
    };
    // Reserve the slot first so that a subscription which re-enters cannot overshoot the limit.
    conn.subs.set(id, () => {});
    let unsubscribe: () => void;
    try {
      unsubscribe = subscriptions[name]!(params[1], emit);
    } catch (err) {
      active = false;
      conn.subs.delete(id);
      throw err;
    }
    const stop = (): void => {
      if (!active) return;
      active = false;
      pending = undefined;
      try {
        if (typeof unsubscribe === 'function') unsubscribe();
      } catch (err) {
        log.error('unsubscribe failed', { subscription: name, err });
      }
    };
    if (conn.closed) {
      stop();
    } else {
      conn.subs.set(id, stop);
    }
    call.subscribed.push(id);
    call.afterSend.push(() => {
      const held = pending ?? [];
      pending = undefined;
      for (const result of held) if (active && !conn.closed) deliver(result);
    });
    return id;
  }

  /**
   * An event's result as JSON bytes, serialised once per emitted object however many subscribers
   * it goes to (a block to thousands of `newBlocks` subscribers is one serialisation).
   */
  const eventTexts = new WeakMap<object, Buffer | null>();
  function eventBytes(result: unknown, name: string): Buffer | null {
    const key = typeof result === 'object' && result !== null ? result : undefined;
    if (key) {
      const cached = eventTexts.get(key);
      if (cached !== undefined) return cached;
    }
    let bytes: Buffer | null;
    try {
      bytes = Buffer.from(JSON.stringify(toJsonValue(result)));
    } catch (err) {
      log.error('subscription event not serialisable', { subscription: name, err });
      bytes = null;
    }
    if (key) eventTexts.set(key, bytes);
    return bytes;
  }

  function unsubscribe(conn: Connection, params: unknown): boolean {
    if (!isList(params) || params.length !== 1 || typeof params[0] !== 'string') {
      throw new RpcError(RpcErrorCode.INVALID_PARAMS, `${UNSUBSCRIBE_METHOD} expects [subscriptionId]`);
    }
    const stop = conn.subs.get(params[0]);
    if (!stop) return false;
    conn.subs.delete(params[0]);
    stop();
    return true;
  }

  async function invoke(method: string, params: unknown, call: Call): Promise<unknown> {
    if (method === SUBSCRIBE_METHOD || method === UNSUBSCRIBE_METHOD) {
      if (!call.conn) {
        throw new RpcError(RpcErrorCode.METHOD_NOT_FOUND, `${method} is only available over WebSocket`);
      }
      return method === SUBSCRIBE_METHOD
        ? subscribe(call.conn, params, call)
        : unsubscribe(call.conn, params);
    }
    // hasOwn keeps `constructor`, `__proto__` and friends from resolving to Object.prototype.
    if (!Object.hasOwn(methods, method)) {
      throw new RpcError(RpcErrorCode.METHOD_NOT_FOUND, `Method not found: ${clip(method)}`);
    }
    return methods[method]!(params, call.ctx);
  }

  function newCall(ctx: RpcContext, client: string | null, conn?: Connection): Call {
    return {
      ctx,
      ...(conn ? { conn } : {}),
      afterSend: [],
      client,
      batch: false,
      work: 0,
      bytesLeft: limits.maxResponseBytes,
      full: false,
      replies: 0,
      ids: [],
      subscribed: [],
      rateLimited: 0,
      retryAfterMs: 0,
    };
  }

  /** Work units of one call: the method's own measure, else 1; never trusted to be sane. */
  function costOf(method: string, params: unknown): number {
    if (!Object.hasOwn(costs, method)) return 1;
    let cost: number;
    try {
      cost = costs[method]!(params);
    } catch {
      return 1; // the method itself will reject the params
    }
    return Number.isFinite(cost) && cost > 1 ? Math.ceil(cost) : 1;
  }

  /** Charges a call to the message's work budget and the client's rate limit; the error if refused. */
  function admit(call: Call, cost: number): RpcError | undefined {
    if (call.work + cost > limits.maxWork) {
      return call.batch
        ? limitError(
            'WORK_LIMIT',
            `batch exceeds the work limit of ${limits.maxWork} units (this request needs ${cost})`,
            limits.maxWork,
          )
        : limitError(
            'WORK_LIMIT',
            `request needs ${cost} work units; the limit is ${limits.maxWork}`,
            limits.maxWork,
          );
    }
    const limited = charge(call, cost);
    if (limited) return limited;
    call.work += cost;
    return undefined;
  }

  /** Takes `cost` units from the client's rate limit; the error to answer with when it is spent. */
  function charge(call: Call, cost: number): RpcError | undefined {
    if (call.client === null) return undefined;
    const waitMs = rateLimiter.take(call.client, cost);
    if (waitMs === 0) return undefined;
    call.rateLimited++;
    call.retryAfterMs = Math.max(call.retryAfterMs, waitMs);
    return limitError(
      'RATE_LIMITED',
      `rate limit of your address or its network exceeded (${limits.rateLimitPerSecond} work units per second an address); retry in ${waitMs} ms`,
      limits.rateLimitPerSecond,
      { retryAfterMs: waitMs },
    );
  }

  function batchFullError(): RpcError {
    return limitError(
      'BATCH_RESPONSE_TOO_LARGE',
      `batch response exceeds ${limits.maxBatchResponseBytes} bytes; send the rest in another batch`,
      limits.maxBatchResponseBytes,
    );
  }

  /**
   * When the next WebSocket ping round runs (monotonic ms, tallyNow: a wall-clock step would tell
   * refused clients to wait far too long or not at all): it makes room for refused replies.
   */
  let nextWsRoundAt = tallyNow() + limits.pingIntervalMs;

  /**
   * What a WebSocket message is answered with in place of a reply that does not fit the total of
   * unsent bytes (maxWsBufferedBytesTotal): -32005 BUSY for each request the reply answered, to be
   * retried once the next ping round has made room.
   */
  function busyText(call: Call): string {
    if (call.batch) return `[${call.ids.map(busyReply).join(',')}]`;
    return busyReply(call.ids[0] ?? null);
  }

  /** -32005 BUSY for one request, to retry once the next ping round has made room. */
  function busyReply(id: RpcId): string {
    const retryAfterMs = Math.min(limits.pingIntervalMs, Math.max(1, nextWsRoundAt - tallyNow()));
    return JSON.stringify(
      limitResponse(
        id,
        limitError(
          'BUSY',
          'the server holds too many unsent replies; retry shortly',
          limits.maxWsBufferedBytesTotal,
          {
            retryAfterMs,
          },
        ),
      ),
    );
  }

  /** Serialises a result within the bytes the reply has left, or answers why it cannot. */
  function resultText(replyId: RpcId, value: unknown, call: Call): string {
    const room = Math.min(limits.maxResponseBytes, call.bytesLeft);
    const tooLarge = (): string => {
      if (room < limits.maxResponseBytes) {
        call.full = true;
        return JSON.stringify(limitResponse(replyId, batchFullError()));
      }
      const err = limitError(
        'RESPONSE_TOO_LARGE',
        `response exceeds ${limits.maxResponseBytes} bytes; ask for less`,
        limits.maxResponseBytes,
      );
      return JSON.stringify(limitResponse(replyId, err));
    };
    let result: JsonValue;
    try {
      result = toJsonValue(value, room);
    } catch (err) {
      if (err instanceof JsonTooLargeError) return tooLarge();
      throw err;
    }
    const text = JSON.stringify({ jsonrpc: '2.0', id: replyId, result } satisfies RpcResponse);
    return Buffer.byteLength(text) > room ? tooLarge() : text;
  }

  /**
   * Handles one request object; resolves to its serialised response, or undefined for a
   * notification. The id the reply carries is worked out once, here, and kept in `call.ids` for
   * busyText.
   */
  async function handleOne(raw: unknown, call: Call): Promise<string | undefined> {
    const replyId = replyIdOf(raw);
    const reply = await answerOne(raw, replyId, call);
    if (reply !== undefined) call.ids.push(replyId);
    return reply;
  }

  async function answerOne(raw: unknown, replyId: RpcId, call: Call): Promise<string | undefined> {
    if (!isRecord(raw)) {
      const refused = admit(call, 1);
      if (refused) return JSON.stringify(limitResponse(null, refused));
      return JSON.stringify(
        errorResponse(null, RpcErrorCode.INVALID_REQUEST, 'Invalid request: not an object'),
      );
    }
    const hasId = Object.hasOwn(raw, 'id');
    const validId = isValidId(raw.id);
    const invalid = (why: string): string => {
      const refused = admit(call, 1);
      if (refused) return JSON.stringify(limitResponse(replyId, refused));
      return JSON.stringify(errorResponse(replyId, RpcErrorCode.INVALID_REQUEST, `Invalid request: ${why}`));
    };
    if (raw.jsonrpc !== '2.0') return invalid('jsonrpc must be "2.0"');
    if (typeof raw.method !== 'string') return invalid('method must be a string');
    if (hasId && !validId) return invalid('id must be a string, a number or null');
    const params = raw.params;
    if (params !== undefined && (typeof params !== 'object' || params === null)) {
      return invalid('params must be an array or an object');
    }
    const method = raw.method;
    call.method ??= method;

    if (call.full) return hasId ? JSON.stringify(limitResponse(replyId, batchFullError())) : undefined;
    // A reply is computed before it is refused BUSY: when no reply of this client could fit now,
    // whatever its size, it is refused unrun (CPU spent on a block read for nothing, else). Not an
    // unsubscribe, which only frees room; nor a notification, which has no reply to refuse.
    if (
      hasId &&
      call.conn &&
      method !== UNSUBSCRIBE_METHOD &&
      (call.noRoom ??= wsNoRoom(call.conn, call.batch ? BATCH_KIND : method))
    ) {
      return busyReply(replyId);
    }
    const refused = admit(call, costOf(method, params));
    if (refused) return hasId ? JSON.stringify(limitResponse(replyId, refused)) : undefined;

    if (!hasId) {
      // A subscription whose id the client never learns could only leak until disconnect.
      if (method === SUBSCRIBE_METHOD) return undefined;
      try {
        await invoke(method, params, call);
      } catch (err) {
        // Nobody receives the error object; this only logs the failure if it is unexpected.
        internalError(err, method);
      }
      return undefined;
    }
    try {
      return resultText(replyId, await invoke(method, params, call), call);
    } catch (err) {
      return JSON.stringify({
        jsonrpc: '2.0',
        id: replyId,
        error: internalError(err, method),
      } satisfies RpcResponse);
    }
  }

  /** Parses one HTTP body or WebSocket message; resolves to the reply text, or undefined for none. */
  async function handleText(text: string, call: Call): Promise<string | undefined> {
    // Parsing is work too, paid before it is done: a unit per started 64 KiB of message, and a unit
    // per PARSE_UNIT_VALUES values in it.
    const maxValues = limits.maxWork * PARSE_UNIT_VALUES;
    const values = countJsonValues(text, maxValues);
    if (values > maxValues) {
      charge(call, Math.ceil(text.length / PARSE_UNIT_CHARS)); // for the scan that found it
      call.rateLimited = 0;
      call.replies = 1;
      const err = limitError(
        'WORK_LIMIT',
        `message holds more than ${maxValues} JSON values; the limit is ${limits.maxWork} work units at one per ${PARSE_UNIT_VALUES}`,
        limits.maxWork,
      );
      return JSON.stringify(limitResponse(null, err));
    }
    const refused = charge(
      call,
      Math.ceil(text.length / PARSE_UNIT_CHARS) + Math.floor(values / PARSE_UNIT_VALUES),
    );
    if (refused) {
      call.replies = 1;
      return JSON.stringify(limitResponse(null, refused));
    }
    let payload: unknown;
    try {
      payload = JSON.parse(text);
    } catch {
      const refused = admit(call, 1);
      if (refused) return JSON.stringify(limitResponse(null, refused));
      return JSON.stringify(errorResponse(null, RpcErrorCode.PARSE_ERROR, 'Parse error'));
    }
    if (!isList(payload)) {
      const reply = await handleOne(payload, call);
      if (reply !== undefined) call.replies = 1;
      return reply;
    }
    if (payload.length === 0) {
      return JSON.stringify(
        errorResponse(null, RpcErrorCode.INVALID_REQUEST, 'Invalid request: empty batch'),
      );
    }
    if (payload.length > limits.maxBatchSize) {
      const why = `batch of ${payload.length} exceeds the limit of ${limits.maxBatchSize}`;
      return JSON.stringify(errorResponse(null, RpcErrorCode.INVALID_REQUEST, `Invalid request: ${why}`));
    }
    call.batch = true;
    call.bytesLeft = limits.maxBatchResponseBytes - 2;
    // One request at a time: the batch's work and reply bytes are checked as they accumulate, so
    // memory holds one result under construction, never a whole batch of them.
    const replies: string[] = [];
    for (const item of payload) {
      const reply = await handleOne(item, call);
      if (reply === undefined) continue;
      replies.push(reply);
      call.bytesLeft -= Buffer.byteLength(reply) + 1;
    }
    call.replies = replies.length;
    // Each reply is already valid JSON, so joining avoids a second serialisation pass.
    return replies.length > 0 ? `[${replies.join(',')}]` : undefined;
  }

  /** Messages being handled per client (rate-limit key), and per prefix. */
  const inflight = new ClientTally(limits.maxInflightPerIp, shares);

  /**
   * A per-IP cap's refusal: its limit is the cap of the level it hit (as `tally` holds it), a prefix
   * named in `network`.
   */
  function perIpError(
    reason: RpcLimitReason,
    what: string,
    client: string,
    level: Level,
    tally: ClientTally,
    tail = '',
  ): RpcError {
    const cap = tally.cap(client, level.key) ?? 0;
    // Under the cap, a network refuses an address only for holding its fair part while others wait.
    const fair = tally.count(level.key) < cap ? ', of which you hold your fair part while others wait' : '';
    return limitError(
      reason,
      `${what} from ${capWords(level, cap)}${fair}${tail}`,
      cap,
      level.share === 1 ? undefined : { network: level.key },
    );
  }

  /**
   * handleText within the client's in-flight cap, then the reply's size charged to it: a unit per
   * whole 64 KiB sent back.
   */
  async function handleMessage(text: string, call: Call, res?: ServerResponse): Promise<string | undefined> {
    const client = call.client;
    if (client === null) return handleText(text, call);
    const now = tallyNow();
    const over = inflight.ask(client, now);
    if (over !== undefined) {
      call.rateLimited = call.replies = 1;
      call.retryAfterMs = 1_000;
      const err = perIpError(
        'CONCURRENCY_LIMIT',
        'too many requests in progress',
        client,
        over,
        inflight,
        '; wait for replies',
      );
      return JSON.stringify(limitResponse(null, err));
    }
    const counted = inflight.add(client, now);
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      inflight.remove(counted);
    };
    let held = false;
    try {
      const reply = await handleText(text, call);
      // Bytes, not characters: a reply of 3-byte characters costs three times its length to send.
      if (reply !== undefined) {
        rateLimiter.debit(client, Math.floor(Buffer.byteLength(reply) / PARSE_UNIT_CHARS));
      }
      // An HTTP reply stays in this process's memory until the client has read it: the message is
      // in progress until then, or every socket of a client that reads slowly pins a reply.
      if (res && reply !== undefined && !res.destroyed) {
        held = true;
        res.once('close', release);
      }
      return reply;
    } finally {
      if (!held) release();
    }
  }

  // ---- HTTP ----

  function send(res: ServerResponse, status: number, contentType: string, body: string): void {
    if (res.headersSent || res.destroyed) return;
    res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  }

  function sendRpcFailure(res: ServerResponse, status: number, code: number, message: string): void {
    send(res, status, JSON_CONTENT_TYPE, JSON.stringify(errorResponse(null, code, message)));
  }

  /** Answers a socket over a connection cap with its JSON-RPC error, then closes it. */
  function refuseHttp(res: ServerResponse, refusal: ConnectionRefusal): void {
    res.setHeader('Connection', 'close');
    if (refusal.status === 429) res.setHeader('Retry-After', '1');
    send(res, refusal.status, JSON_CONTENT_TYPE, JSON.stringify(limitResponse(null, refusal.error)));
  }

  async function handlePost(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = pathOf(req.url);
    if (path !== '/') {
      sendRpcFailure(
        res,
        404,
        RpcErrorCode.INVALID_REQUEST,
        `JSON-RPC is served at POST /, not ${clip(path)}`,
      );
      return;
    }
    const mediaType = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (!ACCEPTED_MEDIA_TYPES.has(mediaType)) {
      const message = 'Content-Type must be application/json';
      sendRpcFailure(res, 415, RpcErrorCode.INVALID_REQUEST, message);
      return;
    }
    const body = await readBody(req, limits.maxBodyBytes);
    if (body.kind === 'aborted') return;
    if (body.kind === 'too-large') {
      // The rest of an oversized body is not worth reading; close once the error is out.
      res.setHeader('Connection', 'close');
      const message = `Request body exceeds ${limits.maxBodyBytes} bytes`;
      sendRpcFailure(res, 413, RpcErrorCode.INVALID_REQUEST, message);
      return;
    }
    const call = newCall({ transport: 'http' }, clientOf(req));
    const reply = await handleMessage(body.body.toString('utf8'), call, res);
    if (reply === undefined) {
      if (!res.headersSent && !res.destroyed) res.writeHead(204).end();
    } else if (call.rateLimited > 0 && call.rateLimited >= call.replies) {
      // Nothing in the message ran: say so at the HTTP level too, with when to come back.
      res.setHeader('Retry-After', String(Math.max(1, Math.ceil(call.retryAfterMs / 1000))));
      send(res, 429, JSON_CONTENT_TYPE, reply);
    } else {
      send(res, 200, JSON_CONTENT_TYPE, reply);
    }
  }

  async function handleGet(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = pathOf(req.url);
    if (path === '/health' && modules.health) {
      let report: HealthReport;
      try {
        report = await modules.health();
      } catch (err) {
        log.error('health check failed', { err });
        report = { ok: false, error: 'health check failed' };
      }
      res.setHeader('Cache-Control', 'no-store');
      send(res, report.ok ? 200 : 503, JSON_CONTENT_TYPE, JSON.stringify(toJsonValue(report)));
      return;
    }
    if (path === '/metrics' && modules.metrics) {
      const text = await modules.metrics();
      res.setHeader('Cache-Control', 'no-store');
      send(res, 200, METRICS_CONTENT_TYPE, text);
      return;
    }
    if (modules.httpFallback?.(req, res)) return;
    send(res, 404, JSON_CONTENT_TYPE, JSON.stringify({ error: `not found: ${clip(path)}` }));
  }

  async function onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // The explorer and other browser tools may be served from a different origin (port).
    res.setHeader('Access-Control-Allow-Origin', '*');
    res.setHeader('X-Content-Type-Options', 'nosniff');
    const method = req.method ?? 'GET';
    const refusal = refusals.get(req.socket);
    if (refusal) {
      // Drain whatever body came with it so the answer is not lost to a reset.
      req.resume();
      refuseHttp(res, refusal);
      return;
    }
    try {
      if (method === 'OPTIONS') {
        res.writeHead(204, {
          'Access-Control-Allow-Methods': 'GET, POST, OPTIONS',
          'Access-Control-Allow-Headers': 'Content-Type',
          'Access-Control-Max-Age': '600',
        });
        res.end();
      } else if (method === 'POST') {
        await handlePost(req, res);
      } else if (method === 'GET' || method === 'HEAD') {
        await handleGet(req, res);
      } else {
        res.setHeader('Allow', 'GET, HEAD, POST, OPTIONS');
        send(res, 405, JSON_CONTENT_TYPE, JSON.stringify({ error: `method ${clip(method)} not allowed` }));
      }
    } catch (err) {
      log.error('http request failed', { method, path: clip(pathOf(req.url)), err });
      if (res.headersSent) res.destroy();
      else send(res, 500, JSON_CONTENT_TYPE, JSON.stringify({ error: 'internal error' }));
    }
  }

  // ---- connection caps ----

  /** Sockets over a cap: their first request is answered with this error, then they are closed. */
  const refusals = new WeakMap<Socket, ConnectionRefusal>();
  const perClient = new ClientTally(
    limits.maxConnectionsPerIp,
    shares,
    Math.floor(limits.maxConnections / MIN_NETWORKS),
  );
  let openSockets = 0;
  /**
   * Admitted HTTP sockets counted toward a network that have sent a request, by network: one of an
   * address holding more than its fair part is taken back when a neighbour is refused at the
   * network's cap (reclaimSocket). A fresh socket joins with its first request (it has its
   * headersTimeoutMs to send one); a WebSocket leaves on upgrade (its subscriptions live on it).
   */
  const heldByPrefix = new Map<string, Map<Socket, Tallied>>();
  const tallied = new WeakMap<Socket, Tallied>();
  /** Sockets with a request in hand, and those to close as soon as their reply is out. */
  const busy = new WeakSet<Socket>();
  const closeAfterReply = new WeakSet<Socket>();
  /**
   * Sockets taken back (closed, or to close after their reply) and not yet closed, and how many per
   * client: they still count until they close, and one holder must not lose more than its surplus.
   */
  const takenBack = new WeakSet<Socket>();
  const leaving = new Map<string, number>();

  function takeBack(socket: Socket, counted: Tallied): void {
    takenBack.add(socket);
    leaving.set(counted.client, (leaving.get(counted.client) ?? 0) + 1);
  }

  function taken(socket: Socket, counted: Tallied | null): void {
    if (counted === null || !takenBack.delete(socket)) return;
    const n = (leaving.get(counted.client) ?? 0) - 1;
    if (n <= 0) leaving.delete(counted.client);
    else leaving.set(counted.client, n);
  }

  function setHeld(socket: Socket, held: boolean): void {
    const counted = tallied.get(socket);
    if (counted === undefined) return;
    for (const prefix of counted.prefixes) {
      let sockets = heldByPrefix.get(prefix);
      if (held && !socket.destroyed) {
        if (sockets === undefined) heldByPrefix.set(prefix, (sockets = new Map()));
        sockets.set(socket, counted);
      } else if (sockets?.delete(socket) && sockets.size === 0) {
        heldByPrefix.delete(prefix);
      }
    }
  }

  /**
   * A client refused at a network's cap that now wants in (ClientTally.ask) gets one socket of a
   * neighbour holding more than its fair part taken back, so that its retry finds room: an idle one
   * (kept alive between requests) closed at once, else a busy one closed once its reply is out.
   * The fairness mark alone only refused the holders more, and holders that kept their sockets open
   * (a request every few seconds, or one always in hand) held the whole network for good.
   */
  function reclaimSocket(client: string, prefix: string, now: number): void {
    if (!perClient.wanting(prefix, now).includes(client)) return;
    const held = heldByPrefix.get(prefix);
    if (held === undefined) return;
    const verdicts = new Map<string, boolean>();
    let later: Socket | undefined;
    for (const [socket, counted] of held) {
      if (takenBack.has(socket)) continue;
      let surplus = verdicts.get(counted.client);
      if (surplus === undefined) {
        surplus = perClient.surplus(counted.client, prefix, now, leaving.get(counted.client) ?? 0);
        verdicts.set(counted.client, surplus);
      }
      if (!surplus) continue;
      if (!busy.has(socket)) {
        takeBack(socket, counted);
        setHeld(socket, false);
        socket.destroy();
        return;
      }
      later ??= socket;
    }
    if (later !== undefined) {
      takeBack(later, tallied.get(later)!);
      closeAfterReply.add(later);
    }
  }

  function onSocket(socket: Socket): void {
    openSockets++;
    const client = socketClientOf(socket);
    const now = tallyNow();
    const over = client === null ? undefined : perClient.over(client, now);
    // Counted even when refused: the socket is open until its refusal has gone out.
    const counted = client === null ? null : perClient.add(client, now);
    if (counted?.within && counted.prefixes.length > 0) tallied.set(socket, counted);
    socket.once('close', () => {
      openSockets--;
      setHeld(socket, false);
      taken(socket, counted);
      if (counted !== null) perClient.remove(counted);
    });
    if (openSockets > 2 * limits.maxConnections) {
      // Far over the cap: not even an answer is worth the memory.
      socket.destroy();
      return;
    }
    if (openSockets > limits.maxConnections) {
      log.warn('rpc connection limit reached', { limit: limits.maxConnections });
      refusals.set(socket, {
        status: 503,
        error: limitError(
          'CONNECTION_LIMIT',
          `too many open connections (limit ${limits.maxConnections})`,
          limits.maxConnections,
        ),
      });
    } else if (over !== undefined) {
      refusals.set(socket, {
        status: 429,
        error: perIpError('CONNECTION_LIMIT', 'too many open connections', client!, over, perClient),
      });
      if (over.key !== client) reclaimSocket(client!, over.key, now);
    }
  }

  // ---- WebSocket ----

  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: limits.maxBodyBytes,
    // Compression would let a small frame inflate into a large message and costs CPU per client.
    perMessageDeflate: false,
    clientTracking: false,
  });

  function rejectUpgrade(
    socket: Duplex,
    status: number,
    message: string,
    contentType = 'text/plain; charset=utf-8',
    extraHeaders = '',
  ): void {
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\n${extraHeaders}` +
        `Content-Type: ${contentType}\r\nContent-Length: ${Buffer.byteLength(message)}\r\n\r\n${message}`,
    );
  }

  /** Refuses an upgrade over a connection cap with a JSON-RPC error body, as an HTTP request gets. */
  function rejectUpgradeWith(socket: Duplex, refusal: ConnectionRefusal): void {
    const body = JSON.stringify(limitResponse(null, refusal.error));
    rejectUpgrade(
      socket,
      refusal.status,
      body,
      JSON_CONTENT_TYPE,
      refusal.status === 429 ? 'Retry-After: 1\r\n' : '',
    );
  }

  function onConnection(ws: WebSocket, req: IncomingMessage): void {
    const conn = new Connection(
      ws,
      clientOf(req),
      limits.maxWsBufferedBytes,
      { event: bookWsEvent, reply: bookWsReply },
      log,
    );
    connections.add(conn);
    ws.on('pong', () => {
      conn.alive = true;
    });
    // Protocol violations (oversized frames, bad UTF-8) surface here; ws closes the socket itself.
    ws.on('error', (err) => log.debug('websocket error', { err }));
    ws.on('close', () => {
      connections.delete(conn);
      conn.dispose();
      // A client gone keeps no room: its place lasts only while one of its WebSockets is open.
      const client = conn.client;
      if (client === null || wsLine.get(client) === undefined) return;
      for (const c of connections) if (c.client === client && !c.closed) return;
      wsLine.leave(client);
    });
    // One message at a time per connection, and no reading while one is in hand: a client that
    // fires thousands of messages without waiting holds one reply in memory, not thousands.
    const queue: RawData[] = [];
    let busy = false;
    const pump = (): void => {
      const data = queue.shift();
      if (data === undefined || conn.closed) {
        busy = false;
        queue.length = 0;
        if (!conn.closed && ws.isPaused) ws.resume();
        return;
      }
      busy = true;
      const call = newCall({ transport: 'ws' }, conn.client, conn);
      handleMessage(rawToString(data), call)
        .then((reply) => {
          const kind = call.batch ? BATCH_KIND : (call.method ?? '');
          if (reply === undefined || conn.sendReply(reply, kind, () => busyText(call))) {
            for (const fn of call.afterSend) fn();
            return;
          }
          // Refused: the client never learns the ids of subscriptions the call made.
          for (const id of call.subscribed) unsubscribe(conn, [id]);
        })
        .catch((err: unknown) => log.error('websocket message failed', { err }))
        .finally(pump);
    };
    ws.on('message', (data: RawData) => {
      conn.alive = true;
      queue.push(data);
      if (!ws.isPaused) ws.pause();
      if (!busy) pump();
    });
  }

  /**
   * WebSockets per client (as clientOf: behind a trusted proxy, its X-Forwarded-For client) and per
   * network, each network at most an eighth (MIN_NETWORKS) of maxWsConnections.
   */
  const wsPerClient = new ClientTally(
    limits.maxWsConnectionsPerIp,
    shares,
    Math.floor(limits.maxWsConnections / MIN_NETWORKS),
  );

  function onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', (err) => log.debug('upgrade socket error', { err }));
    // A WebSocket (or a socket on its way to be one) is never taken back: its subscriptions live on it.
    setHeld(socket as Socket, false);
    tallied.delete(socket as Socket);
    const path = pathOf(req.url);
    if (path !== '/' && path !== '/ws') {
      rejectUpgrade(socket, 404, 'WebSocket is served at / and /ws');
      return;
    }
    if (closing) {
      rejectUpgrade(socket, 503, 'server is shutting down');
      return;
    }
    const refusal = refusals.get(socket as Socket);
    if (refusal) {
      rejectUpgradeWith(socket, refusal);
      return;
    }
    if (upgradeSockets.size >= limits.maxWsConnections) {
      log.warn('websocket connection limit reached', { limit: limits.maxWsConnections });
      rejectUpgradeWith(socket, {
        status: 503,
        error: limitError(
          'CONNECTION_LIMIT',
          `too many WebSocket connections (limit ${limits.maxWsConnections})`,
          limits.maxWsConnections,
        ),
      });
      return;
    }
    const client = clientOf(req);
    if (client !== null) {
      const now = tallyNow();
      const over = wsPerClient.ask(client, now);
      if (over !== undefined) {
        rejectUpgradeWith(socket, {
          status: 429,
          error: perIpError('CONNECTION_LIMIT', 'too many WebSocket connections', client, over, wsPerClient),
        });
        return;
      }
      const counted = wsPerClient.add(client, now);
      socket.once('close', () => wsPerClient.remove(counted));
    }
    // Counted on the raw socket so that a failed handshake (which ws answers itself) frees its slot.
    upgradeSockets.add(socket);
    socket.once('close', () => upgradeSockets.delete(socket));
    wss.handleUpgrade(req, socket, head, onConnection);
  }

  /**
   * At most this many bytes are unsent on all WebSockets together: the sum at the last count plus
   * what was sent since. The sum is counted again (one look at every connection) only when this
   * passes maxWsBufferedBytesTotal, so a send costs nothing extra while clients keep up.
   */
  let wsUnsentBound = 0;

  /** The largest reply refused since the last ping round, for want of room in the total. */
  let wsRefusedBytes = 0;

  /**
   * The line for room in the total: clients (rate-limit keys) refused a reply for want of it (see
   * WsLine), at most as many as WebSockets, and per prefix its share of places.
   */
  const wsLine = new WsLine(limits.maxWsConnections, shares);

  /**
   * Unsent bytes of all WebSockets together (the total is also taken as the new bound), and per
   * client and per prefix (levelsOf): one look at every connection.
   */
  function countWsHeld(): { total: number; held: Map<string, number> } {
    const held = new Map<string, number>();
    let total = 0;
    for (const c of connections) {
      if (c.closed) continue;
      const pending = c.ws.bufferedAmount;
      total += pending;
      if (c.client === null || pending <= 0) continue;
      for (const { key } of levelsOf(c.client, shares)) held.set(key, (held.get(key) ?? 0) + pending);
    }
    wsUnsentBound = total;
    return { total, held };
  }

  /** Puts a client refused a reply of `bytes` in the line, or keeps its place. */
  function joinWsLine(client: string | null, bytes: number, kind: string): void {
    const want = Math.min(bytes, limits.maxWsBufferedBytesTotal);
    wsRefusedBytes = Math.max(wsRefusedBytes, want);
    // An exempt client (a trusted proxy) does not wait in line.
    if (client !== null) wsLine.refused(client, want, kind);
  }

  /**
   * Whether no reply to this connection could be booked now, whatever its size: it is over its own
   * cap, or the total (with the room kept for those ahead of it in the line) is full.
   */
  function wsNoRoom(conn: Connection, kind: string): boolean {
    if (conn.ws.bufferedAmount > limits.maxWsBufferedBytes) return true;
    // The round made room for it (it is due): its retry runs, and is booked (bookWsReply).
    if (wsLine.due(conn.client, kind)) return false;
    if (wsUnsentBound + wsLine.most < limits.maxWsBufferedBytesTotal) return false; // no scans
    const queued = wsLine.othersThan(conn.client);
    if (!queued && wsUnsentBound < limits.maxWsBufferedBytesTotal) return false;
    const { total, held } = countWsHeld();
    const ahead = queued ? wsLine.ahead(conn.client as string, held) : 0;
    if (total + ahead < limits.maxWsBufferedBytesTotal) return false;
    // Its busy answer, refused too, may take a place of that answer's own small size: a position.
    wsRefusedBytes = Math.max(wsRefusedBytes, wsLine.refusedUnrun(conn.client, kind));
    return true;
  }

  /**
   * Books an event (or a busy answer) about to be sent to a client. Past the total cap, clients
   * behind the read floor are dropped (perhaps the one sent to), in shedOrder; clients that keep
   * up are dropped only when the total is over the cap even without this message, so that it
   * stays under the cap plus one message, while a small burst every subscriber gets at once (a new
   * block) still goes out.
   */
  function bookWsEvent(bytes: number): void {
    if (wsUnsentBound + bytes <= limits.maxWsBufferedBytesTotal) {
      wsUnsentBound += bytes;
      return;
    }
    let total = shedWsBytes(bytes, false);
    if (total > limits.maxWsBufferedBytesTotal) total = shedWsBytes(0, true);
    wsUnsentBound = total + bytes;
  }

  /**
   * Books a reply if it fits the total cap; false (and nobody dropped) when it does not. Replies are
   * refused rather than queued: otherwise a client opening connections, asking big replies and
   * reading none of them held a whole per-connection cap on each of them (8 GiB over 256) until a
   * ping round found it behind, then reconnected at once. A reply larger than the cap still goes
   * when nothing else waits (it would never fit). The next ping round makes room for the largest
   * reply refused (see pingAll).
   */
  function bookWsReply(bytes: number, client: string | null, kind: string): boolean {
    // With others in line, the room kept for them is counted (one look at every connection and
    // the line), unless even the largest place fits beside it in the bound. The reply a round made
    // room for (its client due) is booked even if events took that room since: the total goes
    // over the cap by that one reply at most, until the next send or round sheds.
    const queued = wsLine.othersThan(client);
    const room = limits.maxWsBufferedBytesTotal - bytes;
    if (wsUnsentBound + (queued ? wsLine.most : 0) <= room || wsLine.dueFor(client, bytes, kind)) {
      wsUnsentBound += bytes;
      wsLine.booked(client, bytes, kind);
      return true;
    }
    const { total, held } = countWsHeld();
    const ahead = queued ? wsLine.ahead(client, held) : 0;
    if (total + ahead > 0 && total + ahead > room) {
      joinWsLine(client, bytes, kind);
      return false;
    }
    wsUnsentBound += bytes;
    wsLine.booked(client, bytes, kind);
    return true;
  }

  /**
   * Drops clients (see overBudget) so that the unsent bytes of all plus `incoming` fit the total
   * cap; returns the unsent bytes of those left, without `incoming`.
   */
  function shedWsBytes(incoming: number, anyHolder: boolean): number {
    const list = [...connections].filter((c) => !c.closed);
    const holdings = list.map((c) => c.holding());
    const drop = new Set(overBudget(holdings, incoming, limits.maxWsBufferedBytesTotal, anyHolder));
    let total = 0;
    list.forEach((c, i) => {
      if (!drop.has(i)) {
        total += holdings[i]!.pending;
        return;
      }
      log.warn('dropping websocket client: unsent bytes of all clients over the cap', {
        buffered: holdings[i]!.pending,
        behind: holdings[i]!.behind,
        took: holdings[i]!.took,
        limit: limits.maxWsBufferedBytesTotal,
      });
      c.dispose();
      c.ws.terminate();
    });
    wsUnsentBound = total + incoming;
    return total;
  }

  function pingAll(): void {
    // What a client must have read of what waited for it, over one round.
    const floor = Math.floor((limits.minWsReadBytesPerSecond * limits.pingIntervalMs) / 1000);
    // Rounds a client at the floor takes to read what the kernel may hold once all is handed to it.
    const grace = Math.min(16, Math.max(2, Math.ceil(limits.wsReadSlackBytes / Math.max(1, floor))));
    for (const conn of connections) {
      // A client reading a large reply slowly gets our ping only once it has read what is ahead of
      // it: then the read floor, not the pong, says whether it is alive.
      const excused = conn.graceRounds > 0;
      conn.round(floor, grace);
      if (!conn.alive && !excused) {
        log.debug('dropping unresponsive websocket client');
        conn.dispose();
        conn.ws.terminate();
        continue;
      }
      // Over the limit for a whole interval: it is not reading, even if nothing new was sent.
      if (conn.ws.bufferedAmount > limits.maxWsBufferedBytes) {
        log.warn('dropping slow websocket consumer', { buffered: conn.ws.bufferedAmount });
        conn.dispose();
        conn.ws.terminate();
        continue;
      }
      // Pongs do not show that a client reads: it can send them blind while its socket holds up to
      // maxWsBufferedBytes of ours (8 GiB over 256 connections). What the kernel took does.
      if (conn.debt > limits.wsReadSlackBytes) {
        log.warn('dropping websocket client below the read floor', {
          buffered: conn.ws.bufferedAmount,
          floorPerSecond: limits.minWsReadBytesPerSecond,
          debt: conn.debt,
        });
        conn.dispose();
        conn.ws.terminate();
        continue;
      }
      conn.alive = false;
      try {
        conn.ws.ping();
      } catch {
        // Not open yet or already closing; the next round decides.
      }
    }
    // Still over the total after a whole round, or replies were refused for want of room: holders
    // go, keeping up or not, the slowest to drain first, until the largest refused reply fits (else
    // clients reading at the floor could fill the total and have every big reply refused for ever).
    shedWsBytes(wsRefusedBytes, true);
    wsRefusedBytes = 0;
    // Those refused before the last round had it make room for them, and did not come back; the
    // head of those left is due.
    wsLine.endRound(wsLine.size > 0 ? countWsHeld().held : new Map());
  }

  // ---- lifecycle ----

  const server = createServer(
    {
      // Bounds on slow clients: the headers must arrive within headersTimeoutMs and the whole
      // request within requestTimeoutMs. Node checks these every connectionsCheckingInterval
      // (30 s by default, which let a slow-header client live ~26 s past a 10 s timeout).
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(limits.headersTimeoutMs / 4))),
    },
    (req, res) => void onRequest(req, res),
  );
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  // A socket on which nothing moves (a client that stopped reading its reply) is closed. The ws
  // library turns this off on the sockets it takes over; pings watch those.
  server.timeout = limits.requestTimeoutMs;
  server.on('upgrade', onUpgrade);
  server.on('connection', onSocket);
  // A socket with a request in hand is busy (reclaimSocket waits for its reply); idle again after.
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket;
    setHeld(socket, true);
    busy.add(socket);
    res.once('close', () => {
      busy.delete(socket);
      if (closeAfterReply.has(socket)) {
        setHeld(socket, false);
        socket.destroy();
      }
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: opts.host, port: opts.port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => log.error('rpc server error', { err }));

  nextWsRoundAt = tallyNow() + limits.pingIntervalMs;
  const pingTimer = setInterval(() => {
    nextWsRoundAt = tallyNow() + limits.pingIntervalMs;
    pingAll();
    rateLimiter.prune();
    // Expired wants of networks no one asks about any more (each refusal sweeps a slice only).
    for (const tally of [inflight, perClient, wsPerClient]) tally.sweep(tallyNow(), MAX_WANTS);
  }, limits.pingIntervalMs);
  pingTimer.unref();

  const { port } = server.address() as AddressInfo;
  const hostInUrl = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  const url = `http://${hostInUrl}:${port}/`;
  const wsUrl = `ws://${hostInUrl}:${port}/`;
  if (opts.host === '0.0.0.0' || opts.host === '::') {
    log.warn('rpc is listening on all interfaces; make sure that is intended', { host: opts.host });
  }
  log.info('rpc listening', { url, ws: wsUrl });

  function close(): Promise<void> {
    closing ??= new Promise<void>((resolve) => {
      clearInterval(pingTimer);
      for (const conn of connections) {
        conn.dispose();
        conn.ws.terminate();
      }
      for (const socket of upgradeSockets) socket.destroy();
      wss.close();
      server.close(() => resolve());
      server.closeAllConnections();
    });
    return closing;
  }

  return { url, wsUrl, port, close };
}
