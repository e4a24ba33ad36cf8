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
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { type RawData, type WebSocket, WebSocketServer } from 'ws';
import { createLogger, type Logger } from '../log.js';
import { RpcError, RpcErrorCode, type RpcErrorObject, toRpcErrorObject } from './errors.js';
import { type JsonValue, toJsonValue } from './json.js';

export { RpcError, RpcErrorCode, type RpcErrorObject, toRpcErrorObject } from './errors.js';
export { type JsonValue, toJsonValue } from './json.js';

export type RpcTransport = 'http' | 'ws';
export interface RpcContext {
  transport: RpcTransport;
}

export type RpcHandler = (params: unknown, ctx: RpcContext) => unknown | Promise<unknown>;
/** Starts a subscription that calls `emit` for each event; returns the function that stops it. */
export type RpcSubscription = (params: unknown, emit: (result: unknown) => void) => () => void;

export interface RpcServerOptions {
  /** Callers pass 127.0.0.1 unless they mean to expose the node; nothing here defaults to 0.0.0.0. */
  host: string;
  /** 0 picks a free port; the chosen one is returned. */
  port: number;
  /** Largest HTTP body and WebSocket message accepted. */
  maxBodyBytes: number;
  maxBatchSize: number;
  maxWsConnections: number;
  maxSubscriptionsPerConnection: number;
  /** How often idle WebSocket clients are pinged; one missed pong drops them. Default 30 s. */
  pingIntervalMs?: number;
}

export interface HealthReport {
  ok: boolean;
  [key: string]: unknown;
}

export interface RpcServerModules {
  methods: Record<string, RpcHandler>;
  subscriptions: Record<string, RpcSubscription>;
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

const DEFAULT_PING_INTERVAL_MS = 30_000;
const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';
const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
/** Media types that JSON-RPC clients send in the wild; all mean "JSON". */
const ACCEPTED_MEDIA_TYPES = new Set(['application/json', 'application/json-rpc', 'application/jsonrequest']);
/** Echoed method names are clipped so that an error response cannot be larger than the request. */
const MAX_ECHOED_NAME = 64;

type RpcId = string | number | null;

interface RpcResponse {
  jsonrpc: '2.0';
  id: RpcId;
  result?: JsonValue;
  error?: RpcErrorObject;
}

/** Per-message state: the WebSocket connection, if any, and work to run once the reply is sent. */
interface Call {
  ctx: RpcContext;
  conn?: Connection;
  afterSend: Array<() => void>;
}

/** Array.isArray narrows `unknown` to `any[]`; this keeps untrusted input typed as unknown. */
function isList(value: unknown): value is readonly unknown[] {
  return Array.isArray(value);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function clip(name: string): string {
  return name.length > MAX_ECHOED_NAME ? `${name.slice(0, MAX_ECHOED_NAME)}…` : name;
}

function errorResponse(id: RpcId, code: number, message: string, data?: JsonValue): RpcResponse {
  const error: RpcErrorObject = { code, message };
  if (data !== undefined) error.data = data;
  return { jsonrpc: '2.0', id, error };
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

function validateOptions(opts: RpcServerOptions): void {
  const positive: Array<keyof RpcServerOptions> = [
    'maxBodyBytes',
    'maxBatchSize',
    'maxWsConnections',
    'maxSubscriptionsPerConnection',
  ];
  for (const key of positive) {
    const v = opts[key];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) {
      throw new RangeError(`rpc option ${key} must be a positive integer (got ${String(v)})`);
    }
  }
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

/** One WebSocket client and the subscriptions it owns. */
class Connection {
  readonly subs = new Map<string, () => void>();
  alive = true;
  closed = false;

  constructor(
    readonly ws: WebSocket,
    private readonly slowConsumerBytes: number,
    private readonly log: Logger,
  ) {}

  send(text: string): void {
    if (this.closed || this.ws.readyState !== this.ws.OPEN) return;
    // A client that subscribes and never reads would otherwise grow our send buffer without bound.
    if (this.ws.bufferedAmount > this.slowConsumerBytes) {
      this.log.warn('dropping slow websocket consumer', { buffered: this.ws.bufferedAmount });
      this.dispose();
      this.ws.terminate();
      return;
    }
    this.ws.send(text);
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
  const log = modules.logger ?? createLogger('rpc');
  const { methods, subscriptions } = modules;
  const pingIntervalMs = opts.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS;
  const slowConsumerBytes = Math.max(8 * 1024 * 1024, 8 * opts.maxBodyBytes);

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
    if (conn.subs.size >= opts.maxSubscriptionsPerConnection) {
      throw new RpcError(RpcErrorCode.APPLICATION_ERROR, 'too many subscriptions on this connection', {
        reason: 'SUBSCRIPTION_LIMIT',
        limit: opts.maxSubscriptionsPerConnection,
      });
    }
    const id = randomBytes(8).toString('hex');
    let active = true;
    // Events emitted before the client has the id in hand (e.g. a snapshot sent synchronously on
    // subscribe) are held back until the subscribe response has gone out.
    let pending: unknown[] | undefined = [];
    const deliver = (result: unknown): void => {
      let text: string;
      try {
        text = JSON.stringify({
          jsonrpc: '2.0',
          method: SUBSCRIPTION_NOTIFICATION,
          params: { subscription: id, result: toJsonValue(result) },
        });
      } catch (err) {
        log.error('subscription event not serialisable', { subscription: name, err });
        return;
      }
      conn.send(text);
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
    call.afterSend.push(() => {
      const held = pending ?? [];
      pending = undefined;
      for (const result of held) if (active && !conn.closed) deliver(result);
    });
    return id;
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

  /** Handles one request object; resolves to its serialised response, or undefined for a notification. */
  async function handleOne(raw: unknown, call: Call): Promise<string | undefined> {
    if (!isRecord(raw)) {
      return JSON.stringify(
        errorResponse(null, RpcErrorCode.INVALID_REQUEST, 'Invalid request: not an object'),
      );
    }
    const hasId = Object.hasOwn(raw, 'id');
    const id = raw.id;
    const validId = id === null || typeof id === 'string' || typeof id === 'number';
    const replyId: RpcId = hasId && validId ? id : null;
    const invalid = (why: string): string =>
      JSON.stringify(errorResponse(replyId, RpcErrorCode.INVALID_REQUEST, `Invalid request: ${why}`));
    if (raw.jsonrpc !== '2.0') return invalid('jsonrpc must be "2.0"');
    if (typeof raw.method !== 'string') return invalid('method must be a string');
    if (hasId && !validId) return invalid('id must be a string, a number or null');
    const params = raw.params;
    if (params !== undefined && (typeof params !== 'object' || params === null)) {
      return invalid('params must be an array or an object');
    }
    const method = raw.method;

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
      const result = toJsonValue(await invoke(method, params, call));
      return JSON.stringify({ jsonrpc: '2.0', id: replyId, result } satisfies RpcResponse);
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
    let payload: unknown;
    try {
      payload = JSON.parse(text);
    } catch {
      return JSON.stringify(errorResponse(null, RpcErrorCode.PARSE_ERROR, 'Parse error'));
    }
    if (!isList(payload)) return handleOne(payload, call);
    if (payload.length === 0) {
      return JSON.stringify(
        errorResponse(null, RpcErrorCode.INVALID_REQUEST, 'Invalid request: empty batch'),
      );
    }
    if (payload.length > opts.maxBatchSize) {
      const why = `batch of ${payload.length} exceeds the limit of ${opts.maxBatchSize}`;
      return JSON.stringify(errorResponse(null, RpcErrorCode.INVALID_REQUEST, `Invalid request: ${why}`));
    }
    const replies = (await Promise.all(payload.map((item) => handleOne(item, call)))).filter(
      (r): r is string => r !== undefined,
    );
    // Each reply is already valid JSON, so joining avoids a second serialisation pass.
    return replies.length > 0 ? `[${replies.join(',')}]` : undefined;
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
    const body = await readBody(req, opts.maxBodyBytes);
    if (body.kind === 'aborted') return;
    if (body.kind === 'too-large') {
      // The rest of an oversized body is not worth reading; close once the error is out.
      res.setHeader('Connection', 'close');
      const message = `Request body exceeds ${opts.maxBodyBytes} bytes`;
      sendRpcFailure(res, 413, RpcErrorCode.INVALID_REQUEST, message);
      return;
    }
    const reply = await handleText(body.body.toString('utf8'), { ctx: { transport: 'http' }, afterSend: [] });
    if (reply === undefined) {
      if (!res.headersSent && !res.destroyed) res.writeHead(204).end();
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

  // ---- WebSocket ----

  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: opts.maxBodyBytes,
    // Compression would let a small frame inflate into a large message and costs CPU per client.
    perMessageDeflate: false,
    clientTracking: false,
  });

  function rejectUpgrade(socket: Duplex, status: number, message: string): void {
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\n` +
        `Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(message)}\r\n\r\n${message}`,
    );
  }

  function onConnection(ws: WebSocket): void {
    const conn = new Connection(ws, slowConsumerBytes, log);
    connections.add(conn);
    ws.on('pong', () => {
      conn.alive = true;
    });
    // Protocol violations (oversized frames, bad UTF-8) surface here; ws closes the socket itself.
    ws.on('error', (err) => log.debug('websocket error', { err }));
    ws.on('close', () => {
      connections.delete(conn);
      conn.dispose();
    });
    ws.on('message', (data: RawData) => {
      conn.alive = true;
      const call: Call = { ctx: { transport: 'ws' }, conn, afterSend: [] };
      handleText(rawToString(data), call)
        .then((reply) => {
          if (reply !== undefined) conn.send(reply);
          for (const fn of call.afterSend) fn();
        })
        .catch((err: unknown) => log.error('websocket message failed', { err }));
    });
  }

  function onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', (err) => log.debug('upgrade socket error', { err }));
    const path = pathOf(req.url);
    if (path !== '/' && path !== '/ws') {
      rejectUpgrade(socket, 404, 'WebSocket is served at / and /ws');
      return;
    }
    if (closing) {
      rejectUpgrade(socket, 503, 'server is shutting down');
      return;
    }
    if (upgradeSockets.size >= opts.maxWsConnections) {
      log.warn('websocket connection limit reached', { limit: opts.maxWsConnections });
      rejectUpgrade(socket, 503, 'too many WebSocket connections');
      return;
    }
    // Counted on the raw socket so that a failed handshake (which ws answers itself) frees its slot.
    upgradeSockets.add(socket);
    socket.once('close', () => upgradeSockets.delete(socket));
    wss.handleUpgrade(req, socket, head, onConnection);
  }

  function pingAll(): void {
    for (const conn of connections) {
      if (!conn.alive) {
        log.debug('dropping unresponsive websocket client');
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
  }

  // ---- lifecycle ----

  const server = createServer((req, res) => void onRequest(req, res));
  // Bounds on slow clients: headers must arrive quickly, and a whole request within 30 s.
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.on('upgrade', onUpgrade);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: opts.host, port: opts.port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => log.error('rpc server error', { err }));

  const pingTimer = setInterval(pingAll, pingIntervalMs);
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
