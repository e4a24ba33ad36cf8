/**
 * All of a client's subscriptions over one WebSocket. The socket opens with the first
 * subscription and closes with the last; when it drops, it is reopened (backoff 250 ms doubling
 * to 5 s) and every live subscription is made again. Block subscriptions never skip or repeat a
 * height: a gap (a reconnect, or events out of order) is filled over HTTP before later blocks are
 * delivered. Where no WebSocket can be opened (`maxSocketFailures` tries in a row, or no
 * WebSocket implementation), the hub polls over HTTP instead, with the same events, and tries the
 * WebSocket again now and then (`socketRetryMs`, doubling to 60 s, jittered), going back to it once
 * it opens: a node refuses a WebSocket past its cap per address (8; HTTP 429), so a client behind a
 * shared address gets one when a neighbour's closes, rather than polling for good. Why the last
 * try failed is `lastSocketError`; a failed poll waits longer before the next (doubling to 10 s,
 * or the node's retryAfterMs), so a refused or away node is not asked twice a second by each.
 */
import type { BlockJson, TxStatusJson } from './views.js';

export interface Subscription {
  id: string;
  close(): void;
  /** Called if the subscription ends other than by close() (the node refused it again). */
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

/** What the hub needs from the client: HTTP calls, for polling and for filling gaps. */
export interface HubTransport {
  wsUrl: string;
  call(method: string, params: unknown[]): Promise<unknown>;
}

export interface HubOptions {
  /** Consecutive failed connects before falling back to polling (default 3). */
  maxSocketFailures?: number;
  /** Polling interval, ms (default 500). */
  pollIntervalMs?: number;
  /** 'auto' (default): WebSocket, polling when it cannot connect; or force one. */
  mode?: 'auto' | 'websocket' | 'polling';
  /**
   * The largest message read from the socket, in bytes (the client passes its `maxAnswerBytes`);
   * one over it closes the socket (1009) unread. Node only (the `ws` package): a browser's own
   * WebSocket has no such setting.
   */
  maxMessageBytes?: number;
  /** While polling ('auto'): the first wait before the WebSocket is tried again, ms (default 5,000). */
  socketRetryMs?: number;
}

/** The longest wait between tries of the WebSocket while polling. */
export const MAX_SOCKET_RETRY_MS = 60_000;
/** The longest wait between polls after failed ones. */
export const MAX_POLL_BACKOFF_MS = 10_000;

interface Entry {
  localId: string;
  name: string;
  params: unknown;
  onEvent: (event: unknown) => void;
  closers: (() => void)[];
  serverId: string | null;
  /** newBlocks: the last height delivered, and the chain of deliveries (kept in order). */
  lastHeight: number | null;
  delivery: Promise<void>;
  /** tx: delivered once, then the subscription is over. */
  done: boolean;
  pollTimer: ReturnType<typeof setTimeout> | null;
  /** Bumped when polling starts or stops for it: a poll in flight from before does not go on. */
  pollRun: number;
  /** Polls in a row that failed: the next waits longer. */
  pollFailures: number;
}

type RpcMessage = {
  id?: number;
  result?: unknown;
  error?: { code: number; message: string; data?: unknown };
  method?: string;
  params?: { subscription: string; result: unknown };
};

export class SubscriptionHub {
  private socket: MinimalWebSocket | null = null;
  private failures = 0;
  /**
   * Sockets in a row that dropped within STABLE_SOCKET_MS of opening. A node that accepts and then
   * drops at once (full, or shedding load) would otherwise be reconnected to, resubscribed and
   * backfilled every 250 ms forever, by every client: the backoff grows with these drops too.
   */
  private quickDrops = 0;
  private openedAt = 0;
  private polling: boolean;
  private readonly entries = new Map<string, Entry>();
  private readonly byServerId = new Map<string, Entry>();
  private readonly pending = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: unknown) => void; onAnswer?: (result: unknown) => void }
  >();
  private nextId = 1;
  private nextLocal = 1;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly maxFailures: number;
  private readonly pollMs: number;
  /** WebSockets this hub has opened (for tests and diagnostics). */
  socketsOpened = 0;
  /** Why the last WebSocket failed to open (a 429 reads "Unexpected server response: 429" in Node). */
  lastSocketError: string | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  /** Tries of the WebSocket while polling that failed in a row (the wait doubles with each). */
  private retries = 0;
  private readonly modeListeners: Array<(polling: boolean) => void> = [];

  constructor(
    private readonly transport: HubTransport,
    private readonly opts: HubOptions = {},
    private readonly toError: (e: { code: number; message: string; data?: unknown }) => Error = (e) =>
      new Error(e.message),
  ) {
    this.maxFailures = opts.maxSocketFailures ?? 3;
    this.pollMs = opts.pollIntervalMs ?? 500;
    this.polling = opts.mode === 'polling';
  }

  /** Whether the hub is polling over HTTP instead of using a WebSocket. */
  get isPolling(): boolean {
    return this.polling;
  }

  /** Calls `fn` each time the hub goes from the WebSocket to polling or back. */
  onModeChange(fn: (polling: boolean) => void): () => void {
    this.modeListeners.push(fn);
    return () => {
      const i = this.modeListeners.indexOf(fn);
      if (i >= 0) this.modeListeners.splice(i, 1);
    };
  }

  private setPolling(polling: boolean): void {
    if (this.polling === polling) return;
    this.polling = polling;
    for (const fn of [...this.modeListeners]) fn(polling);
  }

  async subscribe(name: string, params: unknown, onEvent: (event: unknown) => void): Promise<Subscription> {
    const entry: Entry = {
      localId: `s${this.nextLocal++}`,
      name,
      params,
      onEvent,
      closers: [],
      serverId: null,
      lastHeight: null,
      delivery: Promise.resolve(),
      done: false,
      pollTimer: null,
      pollRun: 0,
      pollFailures: 0,
    };
    this.entries.set(entry.localId, entry);
    try {
      if (this.polling) {
        this.startPolling(entry);
        // A hub that fell back and went idle (no retry pending) tries the WebSocket again too.
        this.scheduleSocketRetry();
      } else {
        await this.ensureSocket();
        if (!this.entries.has(entry.localId)) throw new Error('the subscription hub was closed');
        if (this.polling) this.startPolling(entry);
        else await this.bind(entry);
      }
    } catch (err) {
      this.entries.delete(entry.localId);
      this.closeIfIdle();
      throw err;
    }
    return {
      id: entry.localId,
      close: () => this.remove(entry, false),
      onClose: (fn) => entry.closers.push(fn),
    };
  }

  /** Stops everything (the client is done). */
  close(): void {
    for (const e of [...this.entries.values()]) this.remove(e, false);
  }

  private remove(entry: Entry, byNode: boolean): void {
    if (!this.entries.delete(entry.localId)) return;
    if (entry.pollTimer) clearTimeout(entry.pollTimer);
    entry.pollRun++;
    if (entry.serverId) {
      this.byServerId.delete(entry.serverId);
      if (this.socket && !byNode) {
        this.send('unc_unsubscribe', [entry.serverId]).catch(() => {});
      }
    }
    if (byNode) for (const fn of entry.closers) fn();
    this.closeIfIdle();
  }

  private closeIfIdle(): void {
    if (this.entries.size > 0) return;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.retries = 0;
    const s = this.socket;
    this.socket = null;
    if (s) {
      s.onclose = null;
      s.close();
    }
  }

  private async ensureSocket(): Promise<void> {
    // Closed (no subscription left) while it slept or opened: it opens nothing more and keeps none.
    while (!this.socket && !this.polling && this.entries.size > 0) {
      try {
        await this.open();
        this.failures = 0;
        if (this.entries.size === 0) this.closeIfIdle();
      } catch (err) {
        if (this.entries.size === 0) return;
        this.failures++;
        if (this.opts.mode !== 'websocket' && this.failures >= this.maxFailures) {
          this.switchToPolling();
          return;
        }
        if (this.opts.mode === 'websocket' && this.failures >= this.maxFailures) throw err;
        await sleep(backoff(this.failures));
      }
    }
  }

  private async open(): Promise<void> {
    const WS = await webSocketImpl(this.opts.maxMessageBytes);
    if (!WS) throw new Error('no WebSocket implementation');
    const socket = new WS(this.transport.wsUrl);
    this.socketsOpened++;
    try {
      await new Promise<void>((resolve, reject) => {
        socket.onopen = () => resolve();
        // Node's `ws` says why ("Unexpected server response: 429"); a browser never does.
        socket.onerror = (ev) => {
          const why = (ev as { message?: unknown } | null)?.message;
          reject(
            new Error(
              `WebSocket to ${this.transport.wsUrl} failed${typeof why === 'string' && why ? `: ${why}` : ''}`,
            ),
          );
        };
        socket.onclose = () => reject(new Error(`WebSocket to ${this.transport.wsUrl} closed`));
      });
    } catch (err) {
      this.lastSocketError = (err as Error).message;
      socket.onopen = socket.onerror = socket.onclose = null;
      try {
        socket.close();
      } catch {
        // Never opened: nothing to close.
      }
      throw err;
    }
    this.lastSocketError = null;
    socket.onmessage = (msg) => this.onMessage(String(msg.data));
    socket.onerror = () => {};
    socket.onclose = () => this.onSocketLost(socket);
    this.socket = socket;
    this.openedAt = Date.now();
  }

  private onMessage(text: string): void {
    let data: RpcMessage;
    try {
      data = JSON.parse(text) as RpcMessage;
    } catch {
      return;
    }
    if (data.method === 'unc_subscription' && data.params) {
      const entry = this.byServerId.get(data.params.subscription);
      if (entry) this.deliver(entry, data.params.result);
      return;
    }
    if (typeof data.id === 'number') {
      const p = this.pending.get(data.id);
      if (!p) return;
      this.pending.delete(data.id);
      if (data.error) p.reject(this.toError(data.error));
      else {
        // Synchronously: a notification for a new subscription can follow in the same batch of
        // frames, before any promise continuation runs.
        p.onAnswer?.(data.result);
        p.resolve(data.result);
      }
    }
  }

  private send(method: string, params: unknown[], onAnswer?: (result: unknown) => void): Promise<unknown> {
    const socket = this.socket;
    if (!socket) return Promise.reject(new Error('no socket'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, onAnswer ? { resolve, reject, onAnswer } : { resolve, reject });
      socket.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
    });
  }

  private async bind(entry: Entry): Promise<void> {
    const serverId = (await this.send('unc_subscribe', [entry.name, entry.params], (id) => {
      entry.serverId = id as string;
      this.byServerId.set(id as string, entry);
    })) as string;
    if (!this.entries.has(entry.localId)) {
      this.byServerId.delete(serverId);
      this.send('unc_unsubscribe', [serverId]).catch(() => {});
    }
  }

  private onSocketLost(socket: MinimalWebSocket): void {
    if (this.socket !== socket) return;
    this.socket = null;
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.reject(new Error('the WebSocket closed'));
    }
    this.byServerId.clear();
    for (const e of this.entries.values()) e.serverId = null;
    if (this.entries.size === 0) return;
    this.quickDrops = Date.now() - this.openedAt < STABLE_SOCKET_MS ? this.quickDrops + 1 : 0;
    this.reconnectTimer = setTimeout(() => void this.reconnect(), backoff(1 + this.quickDrops));
  }

  private async reconnect(): Promise<void> {
    this.reconnectTimer = null;
    if (this.entries.size === 0) return;
    try {
      await this.ensureSocket();
    } catch {
      // mode 'websocket' and the node stays away: the subscriptions end.
      for (const e of [...this.entries.values()]) this.remove(e, true);
      return;
    }
    for (const entry of [...this.entries.values()]) {
      if (this.polling) {
        if (!entry.pollTimer) this.startPolling(entry);
      } else await this.bind(entry).catch(() => this.bindFailed(entry));
      // A block subscription fills what it missed while the socket was down.
      if (entry.name === 'newBlocks' && entry.lastHeight !== null) this.deliver(entry, null);
    }
  }

  private switchToPolling(): void {
    this.setPolling(true);
    for (const entry of this.entries.values()) this.startPolling(entry);
    this.scheduleSocketRetry();
  }

  /** While polling in 'auto' mode, tries the WebSocket again after a wait that doubles (jittered). */
  private scheduleSocketRetry(): void {
    if (this.opts.mode === 'polling' || this.retryTimer || this.entries.size === 0) return;
    const base = Math.min(MAX_SOCKET_RETRY_MS, (this.opts.socketRetryMs ?? 5_000) * 2 ** this.retries);
    // Jittered, so that clients refused together (one proxy's, a node's restart) do not come back together.
    const wait = base / 2 + Math.random() * (base / 2);
    this.retryTimer = setTimeout(() => void this.retrySocket(), wait);
  }

  private async retrySocket(): Promise<void> {
    this.retryTimer = null;
    if (!this.polling || this.socket || this.entries.size === 0) return;
    try {
      await this.open();
    } catch {
      this.retries++;
      this.scheduleSocketRetry();
      return;
    }
    if (this.entries.size === 0) {
      this.closeIfIdle();
      return;
    }
    this.retries = 0;
    this.failures = 0;
    this.setPolling(false);
    for (const entry of [...this.entries.values()]) {
      if (entry.pollTimer) clearTimeout(entry.pollTimer);
      entry.pollTimer = null;
      entry.pollRun++;
      await this.bind(entry).catch(() => this.bindFailed(entry));
      // What came while the socket was being opened and bound is filled over HTTP.
      if (entry.name === 'newBlocks' && entry.lastHeight !== null) this.deliver(entry, null);
    }
  }

  /**
   * A subscription the node would not make again on a new socket. Refused while the socket is up
   * (e.g. its limits changed): it is over. The socket lost under it: it stays, and is made again
   * with the others when the socket is back (onSocketLost), or polled.
   */
  private bindFailed(entry: Entry): void {
    if (this.socket) this.remove(entry, true);
  }

  /** Delivers an event; for newBlocks, in height order with any gap filled over HTTP first. */
  private deliver(entry: Entry, event: unknown): void {
    if (entry.name === 'tx') {
      if (entry.done) return;
      entry.done = true;
      entry.onEvent(event);
      return;
    }
    if (entry.name !== 'newBlocks') {
      entry.onEvent(event);
      return;
    }
    const block = event as BlockJson | null;
    entry.delivery = entry.delivery.then(async () => {
      if (!this.entries.has(entry.localId)) return;
      const target = block ? block.height : await this.headHeight();
      if (entry.lastHeight !== null) {
        // The whole gap, however long: one block fetched and delivered at a time (nothing is
        // buffered), so a long outage costs requests, never a silently skipped height.
        for (let h = entry.lastHeight + 1; h < target; h++) {
          const missed = (await this.transport.call('unc_getBlock', [h])) as BlockJson;
          if (!this.entries.has(entry.localId)) return;
          entry.lastHeight = h;
          entry.onEvent(missed);
        }
        if (entry.lastHeight >= target) return;
      }
      const latest = block ?? ((await this.transport.call('unc_getBlock', [target])) as BlockJson);
      if (!this.entries.has(entry.localId)) return;
      entry.lastHeight = latest.height;
      entry.onEvent(latest);
    });
    entry.delivery = entry.delivery.catch(() => {});
  }

  private async headHeight(): Promise<number> {
    return ((await this.transport.call('unc_status', [])) as { height: number }).height;
  }

  private startPolling(entry: Entry): void {
    if (entry.pollTimer) clearTimeout(entry.pollTimer);
    const run = ++entry.pollRun;
    const live = () => this.entries.has(entry.localId) && entry.pollRun === run && this.polling;
    const tick = async () => {
      entry.pollTimer = null;
      if (!live()) return;
      let wait = this.pollMs;
      try {
        if (entry.name === 'newBlocks') {
          const height = await this.headHeight();
          if (entry.lastHeight === null || height > entry.lastHeight) {
            const block = (await this.transport.call('unc_getBlock', [height])) as BlockJson;
            this.deliver(entry, block);
            await entry.delivery;
          }
        } else if (entry.name === 'tx') {
          const hash = Array.isArray(entry.params)
            ? entry.params[0]
            : (entry.params as { hash?: unknown })?.hash;
          const s = (await this.transport.call('unc_getTransactionStatus', [hash])) as TxStatusJson;
          if (s.status === 'included') this.deliver(entry, s);
          else if (s.status === 'dropped')
            this.deliver(entry, {
              hash: s.hash,
              status: 'rejected',
              code: s.code,
              reason: s.reason,
              height: s.height,
              ...(s.answer ? { answer: s.answer } : {}),
            });
          if (entry.done) {
            this.remove(entry, false);
            return;
          }
        }
        entry.pollFailures = 0;
      } catch (err) {
        // The node is away or refuses (rate limit): wait longer each time, at least what it asks.
        entry.pollFailures++;
        const e = err as { retryAfterMs?: unknown; data?: { retryAfterMs?: unknown } } | null;
        const asked = typeof e?.retryAfterMs === 'number' ? e.retryAfterMs : e?.data?.retryAfterMs;
        wait = Math.min(MAX_POLL_BACKOFF_MS, this.pollMs * 2 ** entry.pollFailures);
        if (typeof asked === 'number' && Number.isFinite(asked))
          wait = Math.max(wait, Math.min(asked, MAX_POLL_BACKOFF_MS));
      }
      if (live()) entry.pollTimer = setTimeout(() => void tick(), wait);
    };
    void tick();
  }
}

/** A socket that stayed open this long was a working connection: its drop starts the backoff over. */
const STABLE_SOCKET_MS = 5000;

function backoff(failures: number): number {
  return Math.min(5000, 250 * 2 ** Math.max(0, failures - 1));
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The runtime's own WebSocket (Node 22's, a browser's), as found when this module loaded. */
const builtinWebSocket = (globalThis as { WebSocket?: WebSocketCtor }).WebSocket;

async function webSocketImpl(maxMessageBytes?: number): Promise<WebSocketCtor | null> {
  const global = (globalThis as { WebSocket?: WebSocketCtor }).WebSocket;
  // In Node the `ws` package before the runtime's own WebSocket (Node 22's): only it bounds a
  // message (`maxPayload`, else 100 MiB), and a node the client does not run may send any. One
  // the program installed itself (a polyfill, a test's) is its choice and is used as it is.
  if (typeof process !== 'undefined' && process.versions?.node && global === builtinWebSocket) {
    try {
      const mod = (await import('ws')) as unknown as {
        default: new (url: string, protocols: string[], options: { maxPayload?: number }) => MinimalWebSocket;
      };
      const Ws = mod.default;
      const options = maxMessageBytes === undefined ? {} : { maxPayload: maxMessageBytes };
      return function BoundedWebSocket(url: string) {
        return new Ws(url, [], options);
      } as unknown as WebSocketCtor;
    } catch {}
  }
  return global ?? null;
}
