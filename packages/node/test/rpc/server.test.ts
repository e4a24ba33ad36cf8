import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { connect as netConnect, createServer as netCreateServer, Socket } from 'node:net';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import WebSocket from 'ws';
import { createLogger } from '../../src/log.js';
import { WANT_MS } from '../../src/rpc/clients.js';
import {
  ClientTally,
  clientKey,
  DEFAULT_RPC_LIMITS,
  heldBy,
  overBudget,
  parseRpcLimits,
  prefixesOf,
  RateLimiter,
  RpcError,
  type RpcServer,
  type RpcServerModules,
  type RpcServerOptions,
  type RpcSubscription,
  readDebt,
  refusedUnrun,
  roomAhead,
  shedOrder,
  startRpcServer,
  type Tallied,
  toJsonValue,
  type WsHolding,
  type WsPlace,
} from '../../src/rpc/server.js';

const OPTS = {
  host: '127.0.0.1',
  port: 0,
  maxBodyBytes: 64 * 1024,
  maxBatchSize: 10,
  maxWsConnections: 4,
  maxSubscriptionsPerConnection: 3,
  // Most tests fire many requests from loopback; the per-IP limits have tests of their own.
  rateLimitPerSecond: 0,
  maxConnectionsPerIp: 1_000,
  maxWsConnectionsPerIp: 1_000,
} satisfies RpcServerOptions;

class AppError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Collects log lines so tests can check what was logged (and that nothing leaks to the client). */
function captureLogger() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { lines, logger: createLogger('rpc-test', { level: 'error', json: true, stream }) };
}

/** State the test handlers expose so tests can observe subscription lifecycles. */
const manualEmitters = new Map<number, (result: unknown) => void>();
let nextManual = 0;
let activeSubscriptions = 0;
let notified: unknown[] = [];

const manual: RpcSubscription = (_params, emit) => {
  const key = nextManual++;
  manualEmitters.set(key, emit);
  activeSubscriptions++;
  // Emitted synchronously, before the client has the id: must arrive after the subscribe reply.
  emit({ snapshot: key });
  return () => {
    manualEmitters.delete(key);
    activeSubscriptions--;
  };
};

function modules(extra: Partial<RpcServerModules> = {}): RpcServerModules {
  return {
    methods: {
      echo: (params) => params,
      add: (params) => {
        const list: unknown = params;
        if (!Array.isArray(list) || list.length !== 2 || !list.every((p) => typeof p === 'number')) {
          throw new RpcError(-32602, 'add expects [number, number]', { got: params });
        }
        const [a, b] = list as [number, number];
        return a + b;
      },
      typed: () => ({
        big: 2n ** 70n,
        bytes: new Uint8Array([0xde, 0xad, 0xbe, 0xef]),
        map: new Map<unknown, unknown>([
          ['a', 1n],
          [7n, new Uint8Array([1])],
        ]),
        nested: [{ n: -5n }],
      }),
      transport: (_params, ctx) => ctx.transport,
      nothing: () => undefined,
      slow: async (params) => {
        await new Promise((r) => setTimeout(r, 20));
        return params;
      },
      appFail: () => {
        throw new AppError('INSUFFICIENT_FUNDS', 'balance 3 is below 5');
      },
      internalFail: () => {
        throw new Error('secret detail at /home/node/keys');
      },
      systemFail: () => {
        const err = new Error("ENOENT: no such file or directory, open '/secret/path'") as Error & {
          code: string;
          errno: number;
          syscall: string;
        };
        err.code = 'ENOENT';
        err.errno = -2;
        err.syscall = 'open';
        throw err;
      },
      rejects: () => Promise.reject(new Error('async secret')),
      circular: () => {
        const o: Record<string, unknown> = {};
        o.self = o;
        return o;
      },
      notifyMe: (params) => {
        notified.push(params);
        return 'ignored';
      },
    },
    subscriptions: {
      manual,
      broken: () => {
        throw new RpcError(-32602, 'broken subscription params');
      },
    },
    ...extra,
  };
}

/** A `shared` subscription whose every subscriber's emit is in `emitters` while it lasts. */
function sharedInto(emitters: Set<(r: unknown) => void>): RpcServerModules['subscriptions'] {
  return {
    shared: (_params, emit) => {
      emitters.add(emit);
      return () => emitters.delete(emit);
    },
  };
}

interface HttpReply {
  status: number;
  headers: Headers;
  text: string;
  json: unknown;
}

async function post(
  server: RpcServer,
  body: string | Uint8Array,
  contentType = 'application/json',
): Promise<HttpReply> {
  const res = await fetch(server.url, { method: 'POST', headers: { 'content-type': contentType }, body });
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

async function rpc(server: RpcServer, method: string, params?: unknown, id: unknown = 1): Promise<unknown> {
  const body: Record<string, unknown> = { jsonrpc: '2.0', method, id };
  if (params !== undefined) body.params = params;
  return (await post(server, JSON.stringify(body))).json;
}

/** Checks the JSON-RPC 2.0 response shape; returns the error code, or undefined for a result. */
function checkResponse(value: unknown): number | undefined {
  assert.ok(typeof value === 'object' && value !== null && !Array.isArray(value), `not an object: ${value}`);
  const r = value as Record<string, unknown>;
  assert.equal(r.jsonrpc, '2.0');
  assert.ok(r.id === null || typeof r.id === 'string' || typeof r.id === 'number', 'bad id');
  assert.notEqual('result' in r, 'error' in r, 'exactly one of result/error');
  if ('result' in r) return undefined;
  const e = r.error as Record<string, unknown>;
  assert.ok(Number.isInteger(e.code), 'integer error code');
  assert.equal(typeof e.message, 'string');
  return e.code as number;
}

function errorOf(value: unknown): { code: number; message: string; data?: unknown } {
  const r = value as { error?: { code: number; message: string; data?: unknown } };
  assert.ok(r.error, `expected an error, got ${JSON.stringify(value)}`);
  return r.error;
}

/** A WebSocket client that queues every message, so tests can await them in order. */
class Client {
  readonly ws: WebSocket;
  private readonly queue: unknown[] = [];
  private readonly waiters: Array<(v: unknown) => void> = [];
  private nextId = 1;

  constructor(url: string, options?: WebSocket.ClientOptions) {
    this.ws = new WebSocket(url, options);
    this.ws.on('message', (data) => {
      const msg: unknown = JSON.parse(data.toString());
      const waiter = this.waiters.shift();
      if (waiter) waiter(msg);
      else this.queue.push(msg);
    });
  }

  /** `options.localAddress` (e.g. 127.0.0.2) makes it another client address on Linux loopback. */
  static async open(url: string, options?: WebSocket.ClientOptions): Promise<Client> {
    const c = new Client(url, options);
    await new Promise<void>((resolve, reject) => {
      c.ws.once('open', () => resolve());
      c.ws.once('error', reject);
    });
    return c;
  }

  // Generous: a deadline here only bounds how long a real failure takes to show; on a loaded
  // machine a WebSocket frame can take longer than 2 s to come.
  next(timeoutMs = 15_000): Promise<unknown> {
    const queued = this.queue.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('timed out waiting for a message')), timeoutMs);
      this.waiters.push((v) => {
        clearTimeout(timer);
        resolve(v);
      });
    });
  }

  sendRaw(text: string): void {
    this.ws.send(text);
  }

  async call(method: string, params?: unknown): Promise<unknown> {
    const id = this.nextId++;
    this.ws.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
    const msg = (await this.next()) as { id?: unknown };
    assert.equal(msg.id, id, `expected the reply to ${id}, got ${JSON.stringify(msg)}`);
    return msg;
  }

  closed(): Promise<number> {
    if (this.ws.readyState === WebSocket.CLOSED) return Promise.resolve(-1);
    return new Promise((resolve) => this.ws.once('close', (code) => resolve(code)));
  }

  async close(): Promise<void> {
    const done = this.closed();
    this.ws.close();
    await done;
  }
}

async function waitFor(check: () => boolean, timeoutMs = 15_000): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > timeoutMs) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('toJsonValue', () => {
  it('converts bigint, bytes, Map and Set recursively', () => {
    assert.deepEqual(
      toJsonValue({
        a: 12345678901234567890n,
        b: new Uint8Array([0, 255, 16]),
        c: Buffer.from('ab'),
        d: new Map<unknown, unknown>([
          ['k', [1n]],
          [2n, 'two'],
          [new Uint8Array([0xab]), true],
        ]),
        e: new Set([1, 2n]),
        f: new Date(0),
        g: new BigUint64Array([3n]),
      }),
      {
        a: '12345678901234567890',
        b: '00ff10',
        c: '6162',
        d: { k: ['1'], 2: 'two', ab: true },
        e: [1, '2'],
        f: '1970-01-01T00:00:00.000Z',
        g: ['3'],
      },
    );
  });

  it('follows JSON.stringify for undefined, functions and non-finite numbers', () => {
    assert.equal(toJsonValue(undefined), null);
    assert.deepEqual(toJsonValue({ a: undefined, b: () => 1, c: Number.NaN }), { c: null });
    assert.deepEqual(toJsonValue([undefined, Number.POSITIVE_INFINITY]), [null, null]);
  });

  it('keeps a __proto__ key as data and rejects cycles', () => {
    const parsed: unknown = JSON.parse('{"__proto__":{"x":1}}');
    const out = toJsonValue(parsed) as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(out), Object.prototype);
    assert.deepEqual(Object.keys(out), ['__proto__']);
    const cyclic: unknown[] = [];
    cyclic.push(cyclic);
    assert.throws(() => toJsonValue(cyclic), /circular/);
    const shared = { x: 1 };
    assert.deepEqual(toJsonValue([shared, shared]), [{ x: 1 }, { x: 1 }]);
  });
});

describe('rpc server over HTTP', () => {
  let server: RpcServer;
  const captured = captureLogger();
  let healthy = true;

  before(async () => {
    server = await startRpcServer(
      OPTS,
      modules({
        logger: captured.logger,
        health: () => ({ ok: healthy, height: 7n }),
        metrics: () => '# TYPE unc_up gauge\nunc_up 1\n',
        httpFallback: (req, res) => {
          if (req.url !== '/explorer') return false;
          res.writeHead(200, { 'content-type': 'text/html' }).end('<h1>explorer</h1>');
          return true;
        },
      }),
    );
  });
  after(() => server.close());

  it('listens on an ephemeral port and reports its URLs', () => {
    assert.ok(server.port > 0);
    assert.equal(server.url, `http://127.0.0.1:${server.port}/`);
    assert.equal(server.wsUrl, `ws://127.0.0.1:${server.port}/`);
  });

  it('answers a single request, serialising bigint, bytes and Map', async () => {
    assert.deepEqual(await rpc(server, 'add', [2, 3]), { jsonrpc: '2.0', id: 1, result: 5 });
    assert.deepEqual(await rpc(server, 'typed', undefined, 'str-id'), {
      jsonrpc: '2.0',
      id: 'str-id',
      result: {
        big: '1180591620717411303424',
        bytes: 'deadbeef',
        map: { a: '1', 7: '01' },
        nested: [{ n: '-5' }],
      },
    });
    assert.deepEqual(await rpc(server, 'transport'), { jsonrpc: '2.0', id: 1, result: 'http' });
    assert.deepEqual(await rpc(server, 'nothing', undefined, null), {
      jsonrpc: '2.0',
      id: null,
      result: null,
    });
  });

  it('answers -32700 to unparseable JSON', async () => {
    for (const body of ['{', '', 'nope', '{"jsonrpc":"2.0",}', '\u0000']) {
      const r = await post(server, body);
      assert.equal(r.status, 200);
      assert.deepEqual(r.json, { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } });
    }
  });

  it('answers -32600 to invalid request objects, echoing a usable id', async () => {
    const cases: Array<[unknown, unknown]> = [
      [1, null],
      ['str', null],
      [null, null],
      [{ method: 'echo', id: 1 }, 1],
      [{ jsonrpc: '1.0', method: 'echo', id: 2 }, 2],
      [{ jsonrpc: '2.0', method: 5, id: 3 }, 3],
      [{ jsonrpc: '2.0', id: 4 }, 4],
      [{ jsonrpc: '2.0', method: 'echo', params: 'x', id: 5 }, 5],
      [{ jsonrpc: '2.0', method: 'echo', params: null, id: 6 }, 6],
      [{ jsonrpc: '2.0', method: 'echo', id: { x: 1 } }, null],
      [{ jsonrpc: '2.0', method: 'echo', id: [1] }, null],
      // Without an id it is still an invalid request, not a notification: it gets an answer.
      [{ jsonrpc: '2.0', method: 7 }, null],
    ];
    for (const [body, id] of cases) {
      const r = await post(server, JSON.stringify(body));
      assert.equal(r.status, 200);
      assert.equal(checkResponse(r.json), -32600, JSON.stringify(body));
      assert.equal((r.json as { id: unknown }).id, id, JSON.stringify(body));
    }
  });

  it('answers -32600 to an empty batch and to a batch over maxBatchSize', async () => {
    const empty = await post(server, '[]');
    assert.equal(errorOf(empty.json).code, -32600);
    assert.match(errorOf(empty.json).message, /empty batch/);
    const big = Array.from({ length: OPTS.maxBatchSize + 1 }, (_, i) => ({
      jsonrpc: '2.0',
      method: 'echo',
      id: i,
    }));
    const over = await post(server, JSON.stringify(big));
    assert.equal(errorOf(over.json).code, -32600);
    assert.match(errorOf(over.json).message, /exceeds the limit of 10/);
    const atLimit = await post(server, JSON.stringify(big.slice(0, OPTS.maxBatchSize)));
    assert.equal((atLimit.json as unknown[]).length, OPTS.maxBatchSize);
  });

  it('answers -32601 to unknown methods, including Object.prototype names', async () => {
    for (const method of [
      'nope',
      'constructor',
      '__proto__',
      'toString',
      'hasOwnProperty',
      'x'.repeat(500),
    ]) {
      const e = errorOf(await rpc(server, method));
      assert.equal(e.code, -32601, method);
      assert.ok(e.message.length < 100, 'long names are clipped');
    }
    assert.equal(errorOf(await rpc(server, 'unc_subscribe', ['manual'])).code, -32601);
    assert.equal(errorOf(await rpc(server, 'unc_unsubscribe', ['00'])).code, -32601);
  });

  it('answers -32602 with data when a handler throws RpcError', async () => {
    assert.deepEqual(await rpc(server, 'add', ['a', 1n.toString()]), {
      jsonrpc: '2.0',
      id: 1,
      error: { code: -32602, message: 'add expects [number, number]', data: { got: ['a', '1'] } },
    });
  });

  it('maps errors carrying a string code to -32000 with the reason', async () => {
    assert.deepEqual(await rpc(server, 'appFail'), {
      jsonrpc: '2.0',
      id: 1,
      error: { code: -32000, message: 'balance 3 is below 5', data: { reason: 'INSUFFICIENT_FUNDS' } },
    });
  });

  it('answers -32603 to unexpected exceptions, logs them and leaks nothing', async () => {
    captured.lines.length = 0;
    for (const method of ['internalFail', 'systemFail', 'rejects', 'circular']) {
      const r = await post(server, JSON.stringify({ jsonrpc: '2.0', method, id: 9 }));
      assert.deepEqual(r.json, { jsonrpc: '2.0', id: 9, error: { code: -32603, message: 'Internal error' } });
      assert.doesNotMatch(r.text, /secret|stack|at /);
    }
    assert.equal(captured.lines.length, 4);
    const first = JSON.parse(captured.lines[0]!) as { level: string; method: string; err: { stack: string } };
    assert.equal(first.level, 'error');
    assert.equal(first.method, 'internalFail');
    assert.match(first.err.stack, /secret detail/);
  });

  it('answers a mixed batch in order and leaves notifications out', async () => {
    notified = [];
    const r = await post(
      server,
      JSON.stringify([
        { jsonrpc: '2.0', method: 'slow', params: ['first'], id: 'a' },
        { jsonrpc: '2.0', method: 'notifyMe', params: { n: 1 } },
        1,
        { jsonrpc: '2.0', method: 'nope', id: 'c' },
        { jsonrpc: '2.0', method: 'add', params: [1, 1], id: 'd' },
      ]),
    );
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, [
      { jsonrpc: '2.0', id: 'a', result: ['first'] },
      { jsonrpc: '2.0', id: null, error: { code: -32600, message: 'Invalid request: not an object' } },
      { jsonrpc: '2.0', id: 'c', error: { code: -32601, message: 'Method not found: nope' } },
      { jsonrpc: '2.0', id: 'd', result: 2 },
    ]);
    assert.deepEqual(notified, [{ n: 1 }]);
  });

  it('runs notifications without replying (204), even when they fail', async () => {
    notified = [];
    const single = await post(server, JSON.stringify({ jsonrpc: '2.0', method: 'notifyMe', params: [1] }));
    assert.equal(single.status, 204);
    assert.equal(single.text, '');
    const batch = await post(
      server,
      JSON.stringify([
        { jsonrpc: '2.0', method: 'notifyMe', params: [2] },
        { jsonrpc: '2.0', method: 'appFail' },
        { jsonrpc: '2.0', method: 'nope' },
      ]),
    );
    assert.equal(batch.status, 204);
    assert.deepEqual(notified, [[1], [2]]);
  });

  it('answers 413 with a JSON-RPC error to an oversized body (declared or streamed)', async () => {
    const huge = JSON.stringify({
      jsonrpc: '2.0',
      method: 'echo',
      params: ['x'.repeat(OPTS.maxBodyBytes)],
      id: 1,
    });
    const declared = await post(server, huge);
    assert.equal(declared.status, 413);
    assert.equal(checkResponse(declared.json), -32600);
    assert.match(errorOf(declared.json).message, /exceeds 65536 bytes/);

    // Chunked transfer has no Content-Length, so the limit must be enforced while reading.
    const streamed = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(
        server.url,
        { method: 'POST', headers: { 'content-type': 'application/json' } },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on('error', reject);
      const chunk = 'x'.repeat(16 * 1024);
      for (let i = 0; i < 5; i++) req.write(chunk);
      req.end();
    });
    assert.equal(streamed.status, 413);
    assert.equal(checkResponse(JSON.parse(streamed.body)), -32600);
    assert.deepEqual(await rpc(server, 'add', [1, 2]), { jsonrpc: '2.0', id: 1, result: 3 });
  });

  it('rejects a wrong content type with 415 and other verbs with 405', async () => {
    const wrongType = await post(server, '{}', 'text/plain');
    assert.equal(wrongType.status, 415);
    assert.match(errorOf(wrongType.json).message, /application\/json/);
    const withCharset = await post(
      server,
      JSON.stringify({ jsonrpc: '2.0', method: 'echo', id: 1 }),
      'Application/JSON; charset=utf-8',
    );
    assert.equal(withCharset.status, 200);
    const put = await fetch(server.url, { method: 'PUT', body: '{}' });
    assert.equal(put.status, 405);
    assert.match(put.headers.get('allow') ?? '', /POST/);
    await put.text();
    const wrongPath = await fetch(`${server.url}rpc`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    assert.equal(wrongPath.status, 404);
    await wrongPath.text();
  });

  it('allows cross-origin calls (CORS)', async () => {
    const pre = await fetch(server.url, {
      method: 'OPTIONS',
      headers: { origin: 'http://localhost:5173', 'access-control-request-method': 'POST' },
    });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get('access-control-allow-origin'), '*');
    assert.match(pre.headers.get('access-control-allow-methods') ?? '', /POST/);
    assert.match(pre.headers.get('access-control-allow-headers') ?? '', /content-type/i);
    const r = await post(server, JSON.stringify({ jsonrpc: '2.0', method: 'echo', id: 1 }));
    assert.equal(r.headers.get('access-control-allow-origin'), '*');
  });

  it('serves /health (503 when not ok) and /metrics', async () => {
    healthy = true;
    const ok = await fetch(`${server.url}health`);
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { ok: true, height: '7' });
    healthy = false;
    const bad = await fetch(`${server.url}health`);
    assert.equal(bad.status, 503);
    assert.deepEqual(await bad.json(), { ok: false, height: '7' });
    healthy = true;
    const metrics = await fetch(`${server.url}metrics`);
    assert.equal(metrics.status, 200);
    assert.equal(metrics.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
    assert.equal(await metrics.text(), '# TYPE unc_up gauge\nunc_up 1\n');
  });

  it('hands other GET paths to the fallback and 404s the rest', async () => {
    const page = await fetch(`${server.url}explorer`);
    assert.equal(page.status, 200);
    assert.equal(await page.text(), '<h1>explorer</h1>');
    const missing = await fetch(`${server.url}nowhere`);
    assert.equal(missing.status, 404);
    await missing.text();
  });
});

describe('rpc server over WebSocket', () => {
  let server: RpcServer;
  const captured = captureLogger();

  before(async () => {
    server = await startRpcServer(OPTS, modules({ logger: captured.logger }));
  });
  after(() => server.close());

  it('answers methods, batches and errors on / and /ws', async () => {
    for (const url of [server.wsUrl, `${server.wsUrl}ws`]) {
      const c = await Client.open(url);
      assert.deepEqual(await c.call('transport'), { jsonrpc: '2.0', id: 1, result: 'ws' });
      assert.equal(errorOf(await c.call('nope')).code, -32601);
      c.sendRaw('{bad');
      assert.equal(errorOf(await c.next()).code, -32700);
      c.sendRaw(
        JSON.stringify([
          { jsonrpc: '2.0', method: 'add', params: [1, 2], id: 'x' },
          { jsonrpc: '2.0', method: 'notifyMe' },
        ]),
      );
      assert.deepEqual(await c.next(), [{ jsonrpc: '2.0', id: 'x', result: 3 }]);
      await c.close();
    }
  });

  it('refuses upgrades on other paths', async () => {
    const ws = new WebSocket(`${server.wsUrl}elsewhere`);
    const status = await new Promise<number>((resolve) => {
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('error', () => resolve(-1));
    });
    assert.equal(status, 404);
  });

  it('delivers subscription events after the subscribe reply, and stops them on unsubscribe', async () => {
    const c = await Client.open(server.wsUrl);
    const before = activeSubscriptions;
    const keyBefore = nextManual;
    const sub = (await c.call('unc_subscribe', ['manual', { any: 'params' }])) as { result: string };
    assert.match(sub.result, /^[0-9a-f]{16}$/);
    assert.equal(activeSubscriptions, before + 1);
    // The snapshot emitted synchronously inside subscribe arrives after the id.
    assert.deepEqual(await c.next(), {
      jsonrpc: '2.0',
      method: 'unc_subscription',
      params: { subscription: sub.result, result: { snapshot: keyBefore } },
    });
    manualEmitters.get(keyBefore)!({ height: 5n, hash: new Uint8Array([1, 2]) });
    assert.deepEqual(await c.next(), {
      jsonrpc: '2.0',
      method: 'unc_subscription',
      params: { subscription: sub.result, result: { height: '5', hash: '0102' } },
    });
    assert.deepEqual(await c.call('unc_unsubscribe', [sub.result]), { jsonrpc: '2.0', id: 2, result: true });
    assert.equal(activeSubscriptions, before);
    assert.ok(!manualEmitters.has(keyBefore));
    assert.deepEqual(await c.call('unc_unsubscribe', [sub.result]), { jsonrpc: '2.0', id: 3, result: false });
    await c.close();
  });

  it('validates subscribe and unsubscribe params', async () => {
    const c = await Client.open(server.wsUrl);
    for (const params of [undefined, [], [1], ['manual', {}, 'extra'], { name: 'manual' }]) {
      assert.equal(errorOf(await c.call('unc_subscribe', params)).code, -32602, JSON.stringify(params));
    }
    assert.match(errorOf(await c.call('unc_subscribe', ['nope'])).message, /unknown subscription/);
    assert.equal(errorOf(await c.call('unc_subscribe', ['toString'])).code, -32602);
    const broken = errorOf(await c.call('unc_subscribe', ['broken']));
    assert.deepEqual(broken, { code: -32602, message: 'broken subscription params' });
    assert.equal(errorOf(await c.call('unc_unsubscribe', [])).code, -32602);
    assert.equal(errorOf(await c.call('unc_unsubscribe', [5])).code, -32602);
    await c.close();
  });

  it('cleans up every subscription of a connection when it disconnects', async () => {
    const before = activeSubscriptions;
    const c = await Client.open(server.wsUrl);
    const ids: string[] = [];
    for (let i = 0; i < OPTS.maxSubscriptionsPerConnection; i++) {
      ids.push(((await c.call('unc_subscribe', ['manual'])) as { result: string }).result);
      await c.next(); // snapshot
    }
    assert.equal(new Set(ids).size, ids.length);
    assert.equal(activeSubscriptions, before + OPTS.maxSubscriptionsPerConnection);
    c.ws.terminate();
    await waitFor(() => activeSubscriptions === before);
  });

  it('limits subscriptions per connection', async () => {
    const c = await Client.open(server.wsUrl);
    for (let i = 0; i < OPTS.maxSubscriptionsPerConnection; i++) {
      assert.equal(
        typeof ((await c.call('unc_subscribe', ['manual'])) as { result: unknown }).result,
        'string',
      );
      await c.next();
    }
    const over = errorOf(await c.call('unc_subscribe', ['manual']));
    assert.equal(over.code, -32005);
    assert.match(over.message, /too many subscriptions/);
    assert.deepEqual(over.data, { reason: 'SUBSCRIPTION_LIMIT', limit: OPTS.maxSubscriptionsPerConnection });
    await c.close();
  });

  it('ignores unc_subscribe sent as a notification', async () => {
    const before = activeSubscriptions;
    const c = await Client.open(server.wsUrl);
    c.sendRaw(JSON.stringify({ jsonrpc: '2.0', method: 'unc_subscribe', params: ['manual'] }));
    assert.deepEqual(await c.call('echo', [1]), { jsonrpc: '2.0', id: 1, result: [1] });
    assert.equal(activeSubscriptions, before);
    await c.close();
  });

  it('limits concurrent connections and frees slots on disconnect', async () => {
    const clients = await Promise.all(
      Array.from({ length: OPTS.maxWsConnections }, () => Client.open(server.wsUrl)),
    );
    const extra = new WebSocket(server.wsUrl);
    const status = await new Promise<number>((resolve) => {
      extra.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      extra.on('open', () => resolve(101));
      extra.on('error', () => resolve(-1));
    });
    assert.equal(status, 503);
    await clients[0]!.close();
    const again = await (async () => {
      for (let attempt = 0; attempt < 50; attempt++) {
        try {
          return await Client.open(server.wsUrl);
        } catch {
          await new Promise((r) => setTimeout(r, 10));
        }
      }
      throw new Error('slot was never freed');
    })();
    assert.deepEqual(await again.call('echo', ['ok']), { jsonrpc: '2.0', id: 1, result: ['ok'] });
    await Promise.all([again.close(), ...clients.slice(1).map((c) => c.close())]);
  });

  it('closes a connection whose message exceeds maxBodyBytes (1009)', async () => {
    const c = await Client.open(server.wsUrl);
    const closed = c.closed();
    c.ws.on('error', () => {});
    c.sendRaw('x'.repeat(OPTS.maxBodyBytes + 1));
    assert.equal(await closed, 1009);
    // The server is unaffected.
    const d = await Client.open(server.wsUrl);
    assert.deepEqual(await d.call('echo', []), { jsonrpc: '2.0', id: 1, result: [] });
    await d.close();
  });
});

/** A raw socket that completes a WebSocket handshake, then sends masked text frames by hand. */
async function rawWebSocket(port: number): Promise<{ socket: Socket; send(text: string): void }> {
  const socket = netConnect(port, '127.0.0.1');
  socket.on('error', () => {});
  const handshake = await new Promise<string>((resolve) => {
    socket.once('connect', () =>
      socket.write(
        'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
      ),
    );
    socket.once('data', (d) => resolve(d.toString()));
  });
  assert.match(handshake, /^HTTP\/1.1 101/);
  return {
    socket,
    send(text: string) {
      const payload = Buffer.from(text);
      assert.ok(payload.length < 126, 'fits a one-byte frame length');
      const mask = Buffer.from([1, 2, 3, 4]);
      const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
      socket.write(Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]));
    },
  };
}

/** Sends raw bytes and resolves once the server has closed the socket, with what it answered. */
function rawHttp(port: number, text: string): Promise<{ socket: Socket; answer: Promise<string> }> {
  const socket = netConnect(port, '127.0.0.1');
  socket.on('error', () => {});
  let received = '';
  socket.on('data', (d) => {
    received += d.toString();
  });
  const answer = new Promise<string>((resolve) => socket.once('close', () => resolve(received)));
  return new Promise((resolve) =>
    socket.once('connect', () => {
      socket.write(text);
      resolve({ socket, answer });
    }),
  );
}

/** A WebSocket upgrade: 101 and the open socket, or the refusal's status and body. */
function upgrade(
  url: string,
  options: WebSocket.ClientOptions = {},
): Promise<{ status: number; body: string; ws: WebSocket }> {
  const ws = new WebSocket(url, options);
  ws.on('error', () => {});
  return new Promise((resolve) => {
    ws.on('open', () => resolve({ status: 101, body: '', ws }));
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => {
        body += d.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, ws }));
    });
  });
}

/** The status code of an HTTP/1.1 reply's text ('200', '429'). */
const statusOf = (text: string): string => text.slice(9, 12);

/** A raw HTTP/1.1 socket of a test, connected from a loopback address of its choosing. */
interface RawClient {
  socket: Socket;
  /** All it received, once it closed. */
  answer: Promise<string>;
  /**
   * Writes a POST of `method` (no params): closed after its reply unless `keepAlive`, with an
   * X-Forwarded-For header if `forwarded` is given.
   */
  post(method: string, opts?: { keepAlive?: boolean; forwarded?: string }): void;
  /** Posts `method` kept alive and waits for its reply: its status, or 'closed' if the socket closed first. */
  ask(method?: string): Promise<string>;
}

/**
 * What the tests of the per-client limits over real sockets share: servers (OPTS with the test's
 * options, a quiet logger, and beside the usual methods `hold`, which waits until `open()`, with
 * `running` counting the calls it holds), raw sockets and WebSockets to them from loopback
 * addresses. `withRawClients` opens the gate, ends every socket and stops every server at the end,
 * whatever the test did.
 */
class RawClients {
  running = 0;
  open: () => void = () => {};
  private readonly gate = new Promise<void>((resolve) => {
    this.open = resolve;
  });
  private readonly servers: RpcServer[] = [];
  private readonly sockets: Socket[] = [];
  private readonly webSockets: WebSocket[] = [];

  async start(options: Partial<RpcServerOptions>, extra: Partial<RpcServerModules> = {}): Promise<RpcServer> {
    const base = modules({ logger: captureLogger().logger, ...extra });
    const hold = async () => {
      this.running++;
      await this.gate;
      this.running--;
      return 'held';
    };
    const server = await startRpcServer(
      { ...OPTS, ...options },
      { ...base, methods: { ...base.methods, hold } },
    );
    this.servers.push(server);
    return server;
  }

  /** A socket from `localAddress` to `server`, connected (the server counts it when it accepts it, in order). */
  async connect(server: RpcServer, localAddress: string): Promise<RawClient> {
    const socket = netConnect({ port: server.port, host: '127.0.0.1', localAddress });
    this.sockets.push(socket);
    socket.on('error', () => {});
    let received = '';
    const waiting: Array<() => void> = [];
    socket.on('data', (d) => {
      received += d.toString();
      for (const w of waiting.splice(0)) w();
    });
    const answer = new Promise<string>((resolve) => socket.once('close', () => resolve(received)));
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    const post = (
      method: string,
      { keepAlive = false, forwarded }: { keepAlive?: boolean; forwarded?: string } = {},
    ) => {
      const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method, params: [] });
      const headers =
        (keepAlive ? '' : 'Connection: close\r\n') +
        (forwarded === undefined ? '' : `X-Forwarded-For: ${forwarded}\r\n`);
      socket.write(
        `POST / HTTP/1.1\r\nHost: x\r\n${headers}Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
      );
    };
    const ask = async (method = 'echo'): Promise<string> => {
      const from = received.length;
      post(method, { keepAlive: true });
      while (!received.slice(from).includes('\r\n\r\n')) {
        if (socket.destroyed) return 'closed';
        await Promise.race([new Promise<void>((r) => waiting.push(r)), answer]);
      }
      return statusOf(received.slice(from));
    };
    return { socket, answer, post, ask };
  }

  /** A WebSocket upgrade (upgrade), its socket ended at the end. */
  async upgrade(
    url: string,
    options: WebSocket.ClientOptions = {},
  ): Promise<{ status: number; body: string; ws: WebSocket }> {
    const up = await upgrade(url, options);
    this.webSockets.push(up.ws);
    return up;
  }

  async end(): Promise<void> {
    this.open();
    for (const socket of this.sockets) socket.destroy();
    for (const ws of this.webSockets) ws.terminate();
    for (const server of this.servers) await server.close();
  }
}

async function withRawClients(test: (clients: RawClients) => Promise<void>): Promise<void> {
  const clients = new RawClients();
  try {
    await test(clients);
  } finally {
    await clients.end();
  }
}

describe('rpc server limits', () => {
  const quiet = () => ({ logger: captureLogger().logger });

  it('counts clients per IPv4 address and per IPv6 /64', () => {
    assert.equal(clientKey('203.0.113.9'), '203.0.113.9');
    assert.equal(clientKey('::ffff:203.0.113.9'), '203.0.113.9');
    assert.equal(clientKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
    assert.equal(clientKey('2001:db8:1:2:bbbb:cccc:dddd:eeee'), '2001:db8:1:2::/64');
    assert.equal(clientKey('2001:db8::1'), '2001:db8:0:0::/64');
    assert.equal(clientKey('::1'), '0:0:0:0::/64');
    assert.equal(clientKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
  });

  it('also counts a client under its prefixes: an IPv6 /64 its /48 and /32, IPv4 its /24 and /16', () => {
    assert.deepEqual(prefixesOf(clientKey('2001:db8:1:2:aaaa::1')), ['2001:db8:1::/48', '2001:db8::/32']);
    assert.deepEqual(prefixesOf(clientKey('2001:db8:1:ffff::9')), ['2001:db8:1::/48', '2001:db8::/32']);
    assert.deepEqual(prefixesOf(clientKey('2001:db8::1')), ['2001:db8:0::/48', '2001:db8::/32']);
    assert.deepEqual(prefixesOf(clientKey('203.0.113.9')), ['203.0.113.0/24', '203.0.0.0/16']);
    // An IPv4-mapped address is its IPv4 address, prefixes included.
    assert.deepEqual(prefixesOf(clientKey('::ffff:203.0.113.9')), ['203.0.113.0/24', '203.0.0.0/16']);
    assert.equal(prefixesOf(clientKey(undefined)), undefined);
  });

  it('rate-limits a whole IPv6 /48 to a few /64s, however many /64s it spreads over', () => {
    const rate = 10;
    const burst = 20;
    const now = 1_000_000;
    const limiter = new RateLimiter(rate, burst);
    // One /64 alone is held to its own bucket, as before.
    let one = 0;
    while (limiter.take(clientKey('2001:db8:9:1::1'), 1, now) === 0) one++;
    assert.equal(one, burst);
    // An attacker holding 2001:db8:1::/48 asks from 1,000 of its /64s: the /48 gets a few bursts, not 1,000.
    let taken = 0;
    for (let i = 0; i < 1_000; i++) {
      const addr = `2001:db8:1:${i.toString(16)}::1`;
      while (limiter.take(clientKey(addr), 1, now) === 0) taken++;
    }
    assert.equal(taken, 4 * burst);
    // Refused requests did not drain the /64 buckets: a fresh /64 of the spent /48 waits for the /48.
    const wait = limiter.take(clientKey('2001:db8:1:ffff::1'), 1, now);
    assert.ok(wait > 0);
    assert.equal(limiter.take(clientKey('2001:db8:1:ffff::1'), 1, now + wait), 0);
    // Neighbouring /48s, and IPv4 and IPv4-mapped clients of networks of their own, keep their own
    // full budgets (IPv4 /24s and /16s are held as /48s and /32s are: their own test).
    let other = 0;
    while (limiter.take(clientKey('2001:db8:2:1::1'), 1, now) === 0) other++;
    assert.equal(other, burst);
    let v4 = 0;
    for (let i = 0; i < 100; i++) {
      while (limiter.take(clientKey(`198.${i}.100.7`), 1, now) === 0) v4++;
    }
    assert.equal(v4, 100 * burst);
    // ::ffff:198.5.100.7 is 198.5.100.7: its bucket was spent above.
    assert.ok(limiter.take(clientKey('::ffff:198.5.100.7'), 1, now) > 0);
  });

  it('holds all 65,536 /64s of a /48 to the /48 budget, even with the bucket table full', () => {
    const limiter = new RateLimiter(1, 10);
    const now = 5_000;
    // A full table of busy IPv4 clients: each new /64 below pushes an old bucket out.
    for (let i = 0; i < 65_536; i++) limiter.take(`10.${i >> 8}.${i & 255}.1`, 1, now);
    let taken = 0;
    for (let i = 0; i < 65_536; i++) {
      if (limiter.take(clientKey(`2001:db8:7:${i.toString(16)}::1`), 1, now) === 0) taken++;
    }
    // The /48's bucket is never the one pushed out (so never handed back full): 4 bursts in all.
    assert.equal(taken, 40);
  });

  it('times its buckets by a monotonic clock: a wall-clock step neither refills nor freezes them', async (t) => {
    // The limiter the server makes (no clock passed). The wall clock is stepped as NTP or an
    // operator would: on it, a step forward handed everyone a full burst, a step back froze them.
    let wall = Date.now();
    t.mock.method(Date, 'now', () => wall);
    // 2 units a second: a unit comes back after 500 ms of real time, so a loaded machine's pause
    // between two lines (at 100 a second, 10 ms was enough) does not refill the bucket under the test.
    const limiter = new RateLimiter(2, 5);
    const client = clientKey('198.51.100.7');
    let taken = 0;
    while (limiter.take(client, 1) === 0) taken++;
    assert.equal(taken, 5);
    wall += 3_600_000;
    assert.ok(limiter.take(client, 1) > 0, 'an hour stepped forward is no refill');
    wall -= 86_400_000;
    // One unit is back after 500 ms of real time, whatever the wall clock says.
    await new Promise((resolve) => setTimeout(resolve, 700));
    const wait = limiter.take(client, 1);
    assert.equal(wait, 0, `a day stepped back froze the bucket (wait ${wait} ms)`);
    limiter.prune();
    assert.deepEqual(limiter.sizes().slice(0, 1), [1], 'pruning keeps a bucket that is not full');
  });

  it('counts toward a /48 only what its /64 was admitted, so one /64 cannot lock out its /48', () => {
    // Sockets are counted even when refused (they are open until the refusal is out): before, a
    // /64 opening sockets past its own cap, each refused, also filled its /48's count.
    const tally = new ClientTally(2);
    const flooder = clientKey('2001:db8:9:1::1');
    const refused = Array.from({ length: 100 }, () => tally.add(flooder));
    assert.equal(refused.filter((c) => c.within).length, 2);
    assert.ok(!tally.fits(flooder), 'the flooding /64 is still over its own cap');
    for (let i = 2; i <= 4; i++) {
      const neighbour = clientKey(`2001:db8:9:${i}::1`);
      assert.ok(
        tally.add(neighbour).within && tally.add(neighbour).within,
        `the /64 ${i} of the /48 is let in`,
      );
    }
    assert.ok(!tally.fits(clientKey('2001:db8:9:5::1')), 'the /48 cap (4 × 2) still holds');
    // Released (each as it was counted), nothing is left over.
    for (const c of refused) tally.remove(c);
    assert.ok(tally.fits(flooder), 'its own count is back to none');
    assert.ok(tally.fits(clientKey('2001:db8:9:5::1')), 'the /48 holds the 3 × 2 of the others only');
  });

  it('caps the sockets and messages in progress of an IPv6 /48 at 4 /64s worth (real sockets)', async () => {
    // Loopback offers no /48 of IPv6 addresses to connect from. The sockets are real, from
    // 127.0.0.K, and for this test only the server reads such an address as the IPv6 the map
    // gives (a rewrite of the peer name under Socket#remoteAddress): what is tested is the wiring of the caps in the
    // server (onSocket, handleMessage), with addresses the kernel cannot provide here.
    const fake = new Map<string, string>();
    for (let k = 1; k <= 6; k++) {
      fake.set(`127.0.${k}.1`, `2001:db8:5:${k}::1`); // six /64s of the /48 2001:db8:5::
      fake.set(`127.0.${k}.2`, `2001:db8:6:${k}::1`); // and of another /48
    }
    type Peer = { address?: string; family?: string; port?: number };
    const sockets = Socket.prototype as unknown as { _getpeername(): Peer };
    const real = sockets._getpeername;
    sockets._getpeername = function (this: Socket): Peer {
      const peer = real.call(this);
      const address = peer.address === undefined ? undefined : fake.get(peer.address);
      return address === undefined ? peer : { ...peer, address, family: 'IPv6' };
    };
    try {
      await withRawClients(async (clients) => {
        const server = await clients.start({ maxConnectionsPerIp: 2, maxInflightPerIp: 1 });
        const connectFrom = (from: string) => clients.connect(server, from);
        // Sockets: the /64 :1 opens 5 (2 within its cap; 3 refused, yet open until answered), the
        // /64s :2 to :4 two each: all within the /48's 8, as the refused ones of :1 do not count.
        const flood = [];
        for (let i = 0; i < 5; i++) flood.push(await connectFrom('127.0.1.1'));
        const neighbours = [];
        for (let k = 2; k <= 4; k++)
          for (let i = 0; i < 2; i++) neighbours.push(await connectFrom(`127.0.${k}.1`));
        const over = await connectFrom('127.0.5.1');
        const elsewhere = await connectFrom('127.0.1.2');
        for (const c of [...flood, ...neighbours, over, elsewhere]) c.post('echo');
        assert.deepEqual((await Promise.all(flood.map((c) => c.answer))).map(statusOf), [
          '200',
          '200',
          '429',
          '429',
          '429',
        ]);
        const answers = await Promise.all(neighbours.map((c) => c.answer));
        assert.deepEqual(answers.map(statusOf), Array(6).fill('200'), 'the other /64s of the /48 get in');
        const refused = await over.answer;
        assert.equal(statusOf(refused), '429', 'a fifth /64 of the /48 is over its 8');
        assert.match(refused, /CONNECTION_LIMIT/);
        assert.equal(statusOf(await elsewhere.answer), '200', 'another /48 is not affected');
        // Messages in progress: one each for the /64s :1 to :4 of the /48 (held), a fifth /64 refused.
        const holders = [];
        for (let k = 1; k <= 4; k++) holders.push(await connectFrom(`127.0.${k}.1`));
        const fifth = await connectFrom('127.0.6.1');
        for (const c of holders) c.post('hold');
        await waitFor(() => clients.running === 4);
        fifth.post('echo');
        const busy = await fifth.answer;
        assert.equal(statusOf(busy), '429');
        assert.match(busy, /CONCURRENCY_LIMIT/);
        clients.open();
        assert.deepEqual(
          (await Promise.all(holders.map((c) => c.answer))).map(statusOf),
          Array(4).fill('200'),
        );
      });
    } finally {
      sockets._getpeername = real;
    }
  });

  it('caps the sockets and messages in progress of an IPv4 /24 and /16 (real sockets from 127.x.y.z)', async () => {
    // Before, IPv4 addresses had no prefix: 127.0.0.1, .2, .3 … each had a whole cap. The sockets
    // are real, from loopback addresses the kernel provides (127.0.0.0/8 is all local), unfaked.
    await withRawClients(async (clients) => {
      // An address 2 sockets (or 1 message in progress); a /24 twice that, a /16 three times. Each
      // cap on a server of its own, so that no socket of one part is still counted in the other.
      const shares = { subnetShare: 2, networkShare: 3 };
      const sockets = await clients.start({ ...shares, maxConnectionsPerIp: 2 });
      const messages = await clients.start({ ...shares, maxInflightPerIp: 1 });
      const dataOf = (text: string): { reason: string; limit: number; network?: string } =>
        (JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { error: { data: never } }).error.data;
      const opened = [];
      for (const from of [
        '127.0.0.1',
        '127.0.0.1',
        '127.0.0.1', // over its address's 2
        '127.0.0.2',
        '127.0.0.2', // the /24 127.0.0.0/24 holds 4 now
        '127.0.0.3', // over the /24's 4
        '127.0.1.1',
        '127.0.1.1', // the /16 127.0.0.0/16 holds 6 now
        '127.0.2.1', // over the /16's 6
        '127.1.0.1',
        '127.1.0.1', // a lone address of another /16: its whole cap
      ]) {
        opened.push(await clients.connect(sockets, from));
      }
      for (const c of opened) c.post('echo');
      const answers = await Promise.all(opened.map((c) => c.answer));
      assert.deepEqual(answers.map(statusOf), [
        '200',
        '200',
        '429',
        '200',
        '200',
        '429',
        '200',
        '200',
        '429',
        '200',
        '200',
      ]);
      assert.deepEqual(dataOf(answers[2]!), { reason: 'CONNECTION_LIMIT', limit: 2 });
      assert.deepEqual(dataOf(answers[5]!), {
        reason: 'CONNECTION_LIMIT',
        limit: 4,
        network: '127.0.0.0/24',
      });
      assert.deepEqual(dataOf(answers[8]!), {
        reason: 'CONNECTION_LIMIT',
        limit: 6,
        network: '127.0.0.0/16',
      });
      assert.match(answers[5]!, /your network 127\.0\.0\.0\/24/);
      // Messages in progress: one each for 127.0.0.1 and .2 fill the /24's 2; .3 is refused, while
      // 127.0.1.1 (same /16, another /24) and 127.1.0.1 are not.
      const holders = [];
      for (const from of ['127.0.0.1', '127.0.0.2']) holders.push(await clients.connect(messages, from));
      for (const c of holders) c.post('hold');
      await waitFor(() => clients.running === 2);
      const third = await clients.connect(messages, '127.0.0.3');
      third.post('echo');
      const busy = await third.answer;
      assert.equal(statusOf(busy), '429');
      assert.deepEqual(dataOf(busy), { reason: 'CONCURRENCY_LIMIT', limit: 2, network: '127.0.0.0/24' });
      for (const from of ['127.0.1.1', '127.1.0.1']) {
        const other = await clients.connect(messages, from);
        other.post('echo');
        assert.equal(statusOf(await other.answer), '200', `${from} is not held by 127.0.0.0/24`);
      }
      clients.open();
      assert.deepEqual((await Promise.all(holders.map((c) => c.answer))).map(statusOf), ['200', '200']);
    });
  });

  it('caps connections and messages in progress per IPv6 /48 too, at 4 /64s worth', () => {
    // Before, the caps were per /64 only: a /48 holds 65,536 of them, each with a full cap.
    const tally = new ClientTally(2);
    const counted = Array.from({ length: 65_536 }, (_v, i) =>
      tally.add(clientKey(`2001:db8:7:${i.toString(16)}::1`)),
    );
    assert.equal(counted.filter((c) => c.within).length, 8, 'the /48 as a whole: 4 × 2');
    assert.ok(!tally.fits(clientKey('2001:db8:7:ffff::9')), 'a /64 of it not yet seen is refused too');
    // Other /48s and IPv4 addresses are not affected.
    assert.ok(tally.add(clientKey('2001:db8:8::1')).within && tally.add(clientKey('2001:db8:8::2')).within);
    assert.ok(!tally.add(clientKey('2001:db8:8::3')).within, 'a /64 still has its own cap');
    assert.ok(tally.add('10.0.0.1').within && tally.add('10.0.0.2').within && tally.fits('10.0.0.1'));
    // Released, the /48 has room again (remove undoes add, refused ones included).
    for (const c of counted) tally.remove(c);
    assert.ok(tally.fits(clientKey('2001:db8:7:ffff::9')));
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.nat({ max: 7 }), fc.nat({ max: 3 }))), (steps) => {
        // Any sequence of adds and removes: no /64 counted past 2, no /48 past 8, among those admitted.
        const t = new ClientTally(2);
        const held: string[] = [];
        const tickets: Tallied[] = [];
        for (const [add, a, b] of steps) {
          const key = clientKey(`2001:db8:${b}:${a}::1`);
          if (add) {
            if (t.fits(key)) {
              const c = t.add(key);
              assert.ok(c.within);
              held.push(key);
              tickets.push(c);
            }
          } else {
            const i = held.indexOf(key);
            if (i !== -1) {
              t.remove(tickets[i]!);
              held.splice(i, 1);
              tickets.splice(i, 1);
            }
          }
          for (const k of held) assert.ok(held.filter((h) => h === k).length <= 2);
          for (const blk of new Set(held.map((h) => prefixesOf(h)?.[0]))) {
            assert.ok(held.filter((h) => prefixesOf(h)?.[0] === blk).length <= 8);
          }
        }
      }),
    );
  });

  it('bounds a value in UTF-8 bytes, not characters', () => {
    // 1,000 three-byte characters: 3,000 bytes of JSON; before, 1,003 "bytes" passed a 2,000 bound.
    const euros = '€'.repeat(1_000);
    assert.throws(() => toJsonValue(euros, 2_000), /exceeds 2000 bytes/);
    assert.throws(() => toJsonValue({ [euros]: 1 }, 2_000), /exceeds 2000 bytes/);
    assert.throws(() => toJsonValue(new Map([[euros, 1]]), 2_000), /exceeds 2000 bytes/);
    assert.equal(toJsonValue(euros, 3_003), euros);
  });

  it('reads limits from a config object, refusing unknown keys and wrong types', async () => {
    assert.deepEqual(parseRpcLimits(undefined), {});
    assert.deepEqual(parseRpcLimits({ maxBatchSize: 50, unlimitedAddresses: ['10.0.0.5'] }), {
      maxBatchSize: 50,
      unlimitedAddresses: ['10.0.0.5'],
    });
    assert.throws(() => parseRpcLimits({ maxBatchSise: 50 }), /rpc\.maxBatchSise is not an RPC limit/);
    assert.throws(() => parseRpcLimits({ maxWork: '5' }), /rpc\.maxWork must be a non-negative integer/);
    assert.throws(() => parseRpcLimits([]), /must be an object/);
    // Ranges are the server's to check.
    await assert.rejects(
      startRpcServer({ ...OPTS, maxWork: 10, rateLimitBurst: 5 }, modules()),
      /rateLimitBurst/,
    );
    await assert.rejects(
      startRpcServer({ ...OPTS, maxSubscriptionsPerConnection: 0 }, modules()),
      RangeError,
    );
  });

  it('answers an unc_getBlocks-style batch over the work limit with -32005, running only what fits', async () => {
    let blocksRead = 0;
    // Like unc_getBlocks: each call reads `count` blocks and costs that many work units.
    const getBlocks = (params: unknown) => {
      const count = (params as number[])[1]!;
      blocksRead += count;
      return Array.from({ length: count }, (_, i) => ({ height: i, hash: 'ab'.repeat(32), txs: [] }));
    };
    // Default limits, except the rate limit that would otherwise step in first.
    const server = await startRpcServer(
      { host: '127.0.0.1', port: 0, rateLimitPerSecond: 0 },
      modules({
        ...quiet(),
        methods: { getBlocks },
        costs: { getBlocks: (p) => (Array.isArray(p) && typeof p[1] === 'number' ? p[1] : 1) },
      }),
    );
    try {
      const batch = Array.from({ length: DEFAULT_RPC_LIMITS.maxBatchSize }, (_, i) => ({
        jsonrpc: '2.0',
        id: i,
        method: 'getBlocks',
        params: [1_000_000, 100],
      }));
      const res = await post(server, JSON.stringify(batch));
      assert.equal(res.status, 200);
      const replies = res.json as Array<{
        id: number;
        result?: unknown[];
        error?: { code: number; data: unknown };
      }>;
      assert.equal(replies.length, batch.length);
      const ran = DEFAULT_RPC_LIMITS.maxWork / 100;
      assert.equal(replies.filter((r) => r.result).length, ran);
      assert.equal(blocksRead, ran * 100);
      for (const r of replies.slice(ran)) {
        assert.equal(r.error?.code, -32005);
        assert.deepEqual(r.error?.data, { reason: 'WORK_LIMIT', limit: DEFAULT_RPC_LIMITS.maxWork });
      }
      assert.ok(res.text.length < DEFAULT_RPC_LIMITS.maxBatchResponseBytes);
      // A single request over the limit does not run at all.
      const one = errorOf(await rpc(server, 'getBlocks', [5, DEFAULT_RPC_LIMITS.maxWork + 1]));
      assert.equal(one.code, -32005);
      assert.match(one.message, /work units/);
      assert.equal(blocksRead, ran * 100);
    } finally {
      await server.close();
    }
  });

  it('caps the bytes of one response and of a batch response', async () => {
    let calls = 0;
    const server = await startRpcServer(
      { ...OPTS, maxResponseBytes: 10_000, maxBatchResponseBytes: 25_000 },
      modules({
        ...quiet(),
        methods: {
          big: (params) => {
            calls++;
            return { data: 'x'.repeat((params as number[])[0]!) };
          },
        },
      }),
    );
    try {
      const tooBig = errorOf(await rpc(server, 'big', [20_000]));
      assert.equal(tooBig.code, -32005);
      assert.deepEqual(tooBig.data, { reason: 'RESPONSE_TOO_LARGE', limit: 10_000 });
      const batch = Array.from({ length: 6 }, (_, i) => ({
        jsonrpc: '2.0',
        id: i,
        method: 'big',
        params: [8_000],
      }));
      calls = 0;
      const res = await post(server, JSON.stringify(batch));
      const replies = res.json as Array<{ result?: unknown; error?: { code: number; data: unknown } }>;
      assert.equal(replies.length, 6);
      assert.equal(replies.filter((r) => r.result).length, 3);
      for (const r of replies.slice(3)) {
        assert.equal(r.error?.code, -32005);
        assert.deepEqual(r.error?.data, { reason: 'BATCH_RESPONSE_TOO_LARGE', limit: 25_000 });
      }
      // The request that overflowed ran; the ones after it were answered without running.
      assert.equal(calls, 4);
      assert.ok(res.text.length <= 25_000 + 1_000, `batch reply of ${res.text.length} bytes`);
    } finally {
      await server.close();
    }
  });

  it('serialises an event once however many subscribers receive it', async () => {
    const emitters = new Set<(r: unknown) => void>();
    const server = await startRpcServer(
      OPTS,
      modules({
        ...quiet(),
        subscriptions: sharedInto(emitters),
      }),
    );
    try {
      const clients = [await Client.open(server.wsUrl), await Client.open(server.wsUrl)];
      const ids: string[] = [];
      for (const c of clients) {
        for (let i = 0; i < OPTS.maxSubscriptionsPerConnection; i++) {
          ids.push(((await c.call('unc_subscribe', ['shared'])) as { result: string }).result);
        }
      }
      let serialised = 0;
      const event = {
        toJSON() {
          serialised++;
          return { height: 7, note: 'one block' };
        },
      };
      for (const emit of emitters) emit(event);
      const got: Array<{ params: { subscription: string; result: unknown } }> = [];
      for (const c of clients) {
        for (let i = 0; i < OPTS.maxSubscriptionsPerConnection; i++)
          got.push((await c.next()) as (typeof got)[0]);
      }
      assert.deepEqual(new Set(got.map((m) => m.params.subscription)), new Set(ids));
      for (const m of got) assert.deepEqual(m.params.result, { height: 7, note: 'one block' });
      assert.equal(serialised, 1);
      for (const c of clients) await c.close();
    } finally {
      await server.close();
    }
  });

  it('caps open connections per IP address (HTTP and WebSocket alike), unless exempt', async () => {
    const server = await startRpcServer({ ...OPTS, maxConnectionsPerIp: 2 }, modules(quiet()));
    try {
      const idle = [netConnect(server.port, '127.0.0.1'), netConnect(server.port, '127.0.0.1')];
      for (const s of idle) await new Promise((r) => s.once('connect', r));
      const res = await post(server, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'echo', params: [1] }));
      assert.equal(res.status, 429);
      assert.equal(res.headers.get('retry-after'), '1');
      const err = errorOf(res.json);
      assert.equal(err.code, -32005);
      assert.deepEqual(err.data, { reason: 'CONNECTION_LIMIT', limit: 2 });
      const ws = new WebSocket(server.wsUrl);
      ws.on('error', () => {});
      const status = await new Promise<number>((resolve) => {
        ws.on('unexpected-response', (_req, r) => resolve(r.statusCode ?? 0));
        ws.on('open', () => resolve(101));
      });
      assert.equal(status, 429);
      for (const s of idle) s.destroy();
      let after: HttpReply | undefined;
      const start = Date.now();
      while (Date.now() - start < 2000) {
        after = await post(server, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'echo', params: [1] }));
        if (after.status === 200) break;
      }
      assert.equal(after?.status, 200);
    } finally {
      await server.close();
    }
    const exempt = await startRpcServer(
      { ...OPTS, maxConnectionsPerIp: 1, unlimitedAddresses: ['127.0.0.1'] },
      modules(quiet()),
    );
    try {
      const idle = netConnect(exempt.port, '127.0.0.1');
      await new Promise((r) => idle.once('connect', r));
      assert.deepEqual(await rpc(exempt, 'echo', [1]), { jsonrpc: '2.0', id: 1, result: [1] });
      idle.destroy();
    } finally {
      await exempt.close();
    }
    // An IPv6 address is matched however it is written (sockets give the canonical form), and an
    // IPv4-mapped one as its IPv4 address; before, '0:0:0:0:0:0:0:1' never matched '::1', silently.
    const exempt6 = await startRpcServer(
      { ...OPTS, host: '::1', maxConnectionsPerIp: 1, unlimitedAddresses: ['0:0:0:0:0:0:0:1'] },
      modules(quiet()),
    );
    try {
      const idle = netConnect(exempt6.port, '::1');
      await new Promise((r) => idle.once('connect', r));
      assert.deepEqual(await rpc(exempt6, 'echo', [1]), { jsonrpc: '2.0', id: 1, result: [1] });
      idle.destroy();
    } finally {
      await exempt6.close();
    }
  });

  it('refuses unlimitedAddresses entries that are not IP addresses, which never matched a client', async () => {
    for (const bad of ['localhost', '10.0.0.0/8', '10.0.0.256', '']) {
      assert.throws(() => parseRpcLimits({ unlimitedAddresses: [bad] }), /rpc\.unlimitedAddresses/, bad);
      await assert.rejects(
        startRpcServer({ ...OPTS, unlimitedAddresses: [bad] }, modules()),
        /unlimitedAddresses/,
      );
    }
  });

  it('holds a /24 to an eighth of the WebSockets, so that other networks always get in', async () => {
    // Before, only the per-IP socket cap held WebSockets: at the defaults a /24's share of it
    // (4 × 64) was every one of maxWsConnections (256), and one /24 could take them all.
    // 64 WebSockets in all: a network gets at most 8 of them (an address alone its own 8).
    await withRawClients(async (clients) => {
      const server = await clients.start({ maxWsConnections: 64, maxWsConnectionsPerIp: 8 });
      for (const from of ['127.0.0.1', '127.0.0.2'])
        for (let i = 0; i < 4; i++) {
          const up = await clients.upgrade(server.wsUrl, { localAddress: from });
          assert.equal(up.status, 101, `${from} #${i}`);
        }
      const refused = await clients.upgrade(server.wsUrl, { localAddress: '127.0.0.3' });
      assert.equal(refused.status, 429);
      assert.deepEqual(errorOf(JSON.parse(refused.body)).data, {
        reason: 'CONNECTION_LIMIT',
        limit: 8,
        network: '127.0.0.0/24',
      });
      for (const from of ['127.0.1.1', '127.1.0.1']) {
        const other = await clients.upgrade(server.wsUrl, { localAddress: from });
        assert.equal(other.status, 101, `${from}: another network still gets in`);
      }
      const d = DEFAULT_RPC_LIMITS;
      assert.ok(
        d.maxWsConnectionsPerIp * d.subnetShare * 8 <= d.maxWsConnections,
        'at the defaults, 8 /24s fit',
      );
    });
  });

  it('closes an idle keep-alive socket of a neighbour over its fair part for the address that wants in', async () => {
    // Before, the waiting mark only refused the holders more: two addresses each at their own cap
    // (at the defaults 2 × 64, a /24's whole 128) kept their keep-alive sockets open with a request
    // every few seconds, and a third address of the /24 was refused for as long as they cared.
    await withRawClients(async (clients) => {
      // An address 2 sockets, a /24 4: two addresses fill it.
      const server = await clients.start({
        maxConnectionsPerIp: 2,
        subnetShare: 2,
        keepAliveTimeoutMs: 60_000,
      });
      const holders = [];
      for (const from of ['127.0.0.2', '127.0.0.2', '127.0.0.3', '127.0.0.3']) {
        const c = await clients.connect(server, from);
        assert.equal(await c.ask(), '200', from);
        holders.push(c);
      }
      const first = await clients.connect(server, '127.0.0.4');
      assert.equal(await first.ask(), '429', 'the /24 is full');
      await first.answer;
      const again = await clients.connect(server, '127.0.0.4');
      assert.equal(await again.ask(), '200', 'an idle socket of a holder made room for the one waiting');
      await Promise.race(holders.map((c) => c.answer));
      assert.equal(holders.filter((c) => c.socket.destroyed).length, 1, 'one holder socket, no more');
      for (const c of holders.filter((h) => !h.socket.destroyed)) assert.equal(await c.ask(), '200');
    });
  });

  it('closes a busy socket of a neighbour over its fair part once its reply is out, for the address that wants in', async () => {
    // Holders that kept a request in hand on every socket (pipelined, or slow) were never idle at
    // the moment a neighbour was refused, so none of their sockets was taken back.
    await withRawClients(async (clients) => {
      // An address 2 sockets, a /24 4: two addresses fill it. Messages in progress: no cap in reach.
      const server = await clients.start({
        maxConnectionsPerIp: 2,
        subnetShare: 2,
        maxInflightPerIp: 100,
        keepAliveTimeoutMs: 60_000,
      });
      const holders = [];
      for (const from of ['127.0.0.2', '127.0.0.2', '127.0.0.3', '127.0.0.3'])
        holders.push(await clients.connect(server, from));
      const held = holders.map((c) => c.ask('hold'));
      await waitFor(() => clients.running === 4);
      const first = await clients.connect(server, '127.0.0.4');
      assert.equal(await first.ask(), '429', 'the /24 is full');
      await first.answer;
      clients.open();
      assert.deepEqual(await Promise.all(held), Array(4).fill('200'), 'every reply in hand is out');
      const again = await clients.connect(server, '127.0.0.4');
      assert.equal(await again.ask(), '200', 'a holder socket made room once its reply was out');
      await Promise.race(holders.map((c) => c.answer));
      assert.equal(holders.filter((c) => c.socket.destroyed).length, 1, 'one holder socket, no more');
    });
  });

  it('takes back no more than a holder holds past its fair part, however often a neighbour is refused', async () => {
    // Each refusal of an address that wants in took one more busy socket of the first holder still
    // over its fair part by its count, which did not drop until the replies were out: refused
    // twice, the neighbour had both of one holder's sockets closed, and none of the other's.
    await withRawClients(async (clients) => {
      // An address 2 sockets, a /24 4: with a third address wanting in, each fair part is 1.
      const server = await clients.start({
        maxConnectionsPerIp: 2,
        subnetShare: 2,
        maxInflightPerIp: 100,
        keepAliveTimeoutMs: 60_000,
      });
      const holders = [];
      const held = [];
      // One at a time, so that the server holds them in this order.
      for (const from of ['127.0.0.2', '127.0.0.2', '127.0.0.3', '127.0.0.3']) {
        const c = await clients.connect(server, from);
        holders.push(c);
        held.push(c.ask('hold'));
        await waitFor(() => clients.running === holders.length);
      }
      for (let i = 0; i < 2; i++) {
        assert.equal(await (await clients.connect(server, '127.0.0.4')).ask(), '429', `refusal ${i}`);
      }
      clients.open();
      assert.deepEqual(await Promise.all(held), Array(4).fill('200'), 'every reply in hand is out');
      const after = [];
      for (const c of holders) after.push(await c.ask());
      assert.deepEqual(
        [...after].sort(),
        ['200', '200', 'closed', 'closed'],
        'two holder sockets taken back',
      );
      assert.ok(after[0] === '200' || after[1] === '200', `127.0.0.2 keeps its fair part (${after})`);
      assert.ok(after[2] === '200' || after[3] === '200', `127.0.0.3 keeps its fair part (${after})`);
    });
  });

  it('times the waiting mark on a monotonic clock: a step of the wall clock neither stretches nor cuts it', async () => {
    // Before, ClientTally's wants were timed by Date.now(): an NTP step back of an hour kept a
    // neighbour that left wanting in for that hour, holding its network's other addresses to their
    // fair part.
    await withRawClients(async (clients) => {
      // An address 2 sockets, a /24 4.
      const server = await clients.start({ maxConnectionsPerIp: 2, subnetShare: 2 });
      /** One request, closed after its reply: the status of that reply. */
      const once = async (c: RawClient): Promise<string> => {
        c.post('echo');
        return statusOf(await c.answer);
      };
      const wall = Date.now;
      const mono = performance.now.bind(performance);
      try {
        const a = await clients.connect(server, '127.0.0.2');
        await clients.connect(server, '127.0.0.2');
        await clients.connect(server, '127.0.0.3');
        await clients.connect(server, '127.0.0.3');
        assert.equal(
          await once(await clients.connect(server, '127.0.0.4')),
          '429',
          'the /24 is full: .4 wants in',
        );
        assert.equal(await once(a), '200', 'one socket of .2 done: room for one');
        // The wall clock steps back an hour while 11 s pass: the want has expired.
        const start = wall();
        Date.now = () => start - 3_600_000;
        const base = mono();
        performance.now = () => base + WANT_MS + 1_000;
        assert.equal(
          await once(await clients.connect(server, '127.0.0.2')),
          '200',
          'no one wants in any more',
        );
      } finally {
        Date.now = wall;
        performance.now = mono;
      }
    });
  });

  it("counts a trusted proxy's requests as its X-Forwarded-For client, and no one else's header", async () => {
    await withRawClients(async (clients) => {
      // One message in progress per client; 127.0.0.2 (and a second proxy it forwards from) trusted.
      const server = await clients.start({
        maxConnectionsPerIp: 2,
        maxInflightPerIp: 1,
        maxWsConnectionsPerIp: 1,
        trustedProxies: ['127.0.0.2', '10.9.9.9'],
      });
      /** Sends a request from `from`; its answer (an object: an async function would await it). */
      const ask = async (
        from: string,
        method: string,
        forwarded?: string,
      ): Promise<{ answer: Promise<string> }> => {
        const c = await clients.connect(server, from);
        c.post(method, forwarded === undefined ? {} : { forwarded });
        return { answer: c.answer };
      };
      const held = [(await ask('127.0.0.2', 'hold', '203.0.113.5')).answer];
      await waitFor(() => clients.running === 1);
      // Another client behind the proxy is not held by 203.0.113.5's message (before: both were
      // 127.0.0.2, whose one message was in progress).
      assert.equal(statusOf(await (await ask('127.0.0.2', 'echo', '198.51.100.7')).answer), '200');
      // 203.0.113.5 again, whatever it wrote itself left of what the proxies appended.
      for (const chain of ['1.1.1.1, 203.0.113.5', '127.0.0.1, 203.0.113.5, 10.9.9.9']) {
        const again = await (await ask('127.0.0.2', 'echo', chain)).answer;
        assert.equal(statusOf(again), '429', chain);
        assert.match(again, /CONCURRENCY_LIMIT/);
      }
      // The attack: a peer that is not a trusted proxy sends the header; it is still itself.
      held.push((await ask('127.0.0.3', 'hold')).answer);
      await waitFor(() => clients.running === 2);
      const spoofed = await (await ask('127.0.0.3', 'echo', '198.51.100.99')).answer;
      assert.equal(statusOf(spoofed), '429', 'a header from an untrusted peer is ignored');
      // Malformed (a port, a name, padding past the bound): the proxy's own address, answered.
      for (const bad of ['203.0.113.5:443', 'localhost', `${'1'.repeat(8_000)}`])
        assert.equal(statusOf(await (await ask('127.0.0.2', 'echo', bad)).answer), '200', bad.slice(0, 20));
      // WebSocket upgrades too: one WebSocket per client, counted as the forwarded client.
      const ws = async (from: string, forwarded?: string): Promise<number> => {
        const headers = forwarded === undefined ? undefined : { 'x-forwarded-for': forwarded };
        return (await clients.upgrade(server.wsUrl, { localAddress: from, headers })).status;
      };
      assert.equal(await ws('127.0.0.2', '203.0.113.5'), 101);
      assert.equal(await ws('127.0.0.2', '203.0.113.5'), 429, 'the same client behind the proxy');
      assert.equal(await ws('127.0.0.2', '198.51.100.7'), 101, 'another client behind the proxy');
      assert.equal(await ws('127.0.0.3', '198.51.100.1'), 101);
      assert.equal(
        await ws('127.0.0.3', '198.51.100.2'),
        429,
        'an untrusted peer is itself, whatever it says',
      );
      clients.open();
      assert.deepEqual((await Promise.all(held)).map(statusOf), ['200', '200']);
    });
  });

  it('reads trustedProxies from a config object, IP addresses one by one', async () => {
    assert.deepEqual(parseRpcLimits({ trustedProxies: ['10.0.0.5', '::1'] }), {
      trustedProxies: ['10.0.0.5', '::1'],
    });
    assert.deepEqual(DEFAULT_RPC_LIMITS.trustedProxies, [], 'no proxy trusted unless configured');
    for (const bad of ['localhost', '10.0.0.0/8', '']) {
      assert.throws(() => parseRpcLimits({ trustedProxies: [bad] }), /rpc\.trustedProxies/, bad);
      await assert.rejects(startRpcServer({ ...OPTS, trustedProxies: [bad] }, modules()), /trustedProxies/);
    }
    assert.throws(() => parseRpcLimits({ trustedProxies: '10.0.0.5' }), /a list of addresses/);
  });

  it('rate-limits requests per IP, counting each request of a batch, with a retry hint', async () => {
    const server = await startRpcServer(
      { ...OPTS, rateLimitPerSecond: 1, rateLimitBurst: 8, maxWork: 8 },
      modules(quiet()),
    );
    try {
      const batch = (n: number) =>
        JSON.stringify(
          Array.from({ length: n }, (_, i) => ({ jsonrpc: '2.0', id: i, method: 'echo', params: [i] })),
        );
      // A message costs a unit (for parsing it) and each of its requests one more: 5 of 8.
      assert.equal((await post(server, batch(4))).status, 200);
      // 3 left: this message takes 1, its first two requests run, the third is refused.
      const res = await post(server, batch(3));
      assert.equal(res.status, 200);
      const replies = res.json as Array<{
        result?: unknown;
        error?: { code: number; data: { reason: string } };
      }>;
      assert.deepEqual(
        replies.map((r) => r.result ?? r.error?.data.reason),
        [[0], [1], 'RATE_LIMITED'],
      );
      assert.equal(replies[2]!.error!.code, -32005);
      // Spent: the next message is refused before it is even parsed, with HTTP 429.
      const single = await post(
        server,
        JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'echo', params: [] }),
      );
      assert.equal(single.status, 429);
      assert.ok(Number(single.headers.get('retry-after')) >= 1);
      const err = errorOf(single.json) as { code: number; data: { reason: string; retryAfterMs: number } };
      assert.equal(err.code, -32005);
      assert.equal(err.data.reason, 'RATE_LIMITED');
      assert.ok(err.data.retryAfterMs > 0);
      // WebSocket messages draw on the same bucket.
      const c = await Client.open(server.wsUrl);
      c.sendRaw(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'echo', params: [1] }));
      const wsErr = errorOf(await c.next()) as { data: { reason: string } };
      assert.equal(wsErr.data.reason, 'RATE_LIMITED');
      await c.close();
    } finally {
      await server.close();
    }
  });

  it('refuses, before parsing, a message of more JSON values than any request needs', async () => {
    let ran = 0;
    const server = await startRpcServer(
      { ...OPTS, maxBodyBytes: 16 * 1024 * 1024, maxWork: 1_000 },
      modules({
        ...quiet(),
        methods: {
          count: (params) => {
            ran++;
            return (params as unknown[]).length;
          },
        },
      }),
    );
    try {
      // JSON.parse takes ~1 µs per value (objects more): 16 MiB of `{},` held the event loop for
      // seconds, for the 256 units its size was charged. A value per 100 is a unit of work.
      const flood = (n: number, item: string) =>
        `{"jsonrpc":"2.0","id":1,"method":"count","params":[${`${item},`.repeat(n - 1)}${item}]}`;
      const refused = await post(server, flood(200_000, '{}'));
      assert.deepEqual(errorOf(refused.json).data, { reason: 'WORK_LIMIT', limit: 1_000 });
      assert.equal(ran, 0);
      // What real requests send (10,000 transactions in unc_sendTransactions) is far below it.
      const ok = await post(server, flood(10_000, '"00"'));
      assert.equal((ok.json as { result: number }).result, 10_000);
    } finally {
      await server.close();
    }
  });

  it('charges big replies to the rate limit, a unit per 64 KiB', async () => {
    const server = await startRpcServer(
      { ...OPTS, rateLimitPerSecond: 1, rateLimitBurst: 20, maxWork: 20 },
      modules({ ...quiet(), methods: { big: () => 'x'.repeat(20 * 64 * 1024) } }),
    );
    try {
      // The request itself costs 2 of 20; its 1.25 MiB reply costs 20 more, after the fact.
      assert.equal(typeof ((await rpc(server, 'big')) as { result: unknown }).result, 'string');
      const next = await post(server, JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'echo', params: [] }));
      assert.equal(next.status, 429);
      assert.equal((errorOf(next.json).data as { reason: string }).reason, 'RATE_LIMITED');
    } finally {
      await server.close();
    }
  });

  it('charges a reply to the rate limit by its bytes, not its characters', async () => {
    // 640 Ki three-byte characters: 30 units of reply by bytes; by characters (before), 10.
    const server = await startRpcServer(
      { ...OPTS, rateLimitPerSecond: 1, rateLimitBurst: 100, maxWork: 100 },
      modules({
        ...quiet(),
        methods: { euros: () => '€'.repeat(640 * 1024), probe: () => 'ok' },
        costs: { probe: () => 79 },
      }),
    );
    try {
      // The request costs 2 of 100 and its reply 30 more: 68 left (88 when charged by characters),
      // short of the probe's 80 (one for its message, 79 for itself) for some 12 s of refill.
      assert.equal(typeof ((await rpc(server, 'euros')) as { result: unknown }).result, 'string');
      const next = await post(server, JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'probe', params: [] }));
      assert.equal(next.status, 429);
      assert.equal((errorOf(next.json).data as { reason: string }).reason, 'RATE_LIMITED');
    } finally {
      await server.close();
    }
  });

  it('caps the messages of one IP in progress at once (HTTP pipelining and parallel sockets alike)', async () => {
    let running = 0;
    let most = 0;
    // The calls run until the test opens the gate (not for a time: under load, a 50 ms sleep let
    // the first calls end before the last arrived, and more than 2 ran).
    let open = (): void => {};
    let gate = new Promise<void>((r) => {
      open = r;
    });
    const closeGate = (): void => {
      gate = new Promise<void>((r) => {
        open = r;
      });
    };
    const server = await startRpcServer(
      { ...OPTS, maxInflightPerIp: 2 },
      modules({
        ...quiet(),
        methods: {
          slow: async () => {
            most = Math.max(most, ++running);
            await gate;
            running--;
            return 'done';
          },
        },
      }),
    );
    try {
      const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'slow', params: [] });
      let settled = 0;
      const asked = Array.from({ length: 6 }, () => post(server, body).finally(() => settled++));
      // Two run, held at the gate; the four others are answered meanwhile.
      await waitFor(() => running === 2 && settled === 4);
      open();
      const replies = await Promise.all(asked);
      assert.equal(most, 2);
      const refused = replies.filter((r) => r.status === 429);
      assert.equal(refused.length, 4);
      for (const r of refused) {
        assert.equal(r.headers.get('retry-after'), '1');
        assert.deepEqual(errorOf(r.json).data, { reason: 'CONCURRENCY_LIMIT', limit: 2 });
      }
      // Pipelined on one socket: Node hands all of them over at once, and the cap still holds.
      const request = `POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
      most = 0;
      closeGate();
      const raw = await rawHttp(server.port, request.repeat(5));
      // Node parses the 5 at once and hands them all over (no timer in between): 2 run, 3 refused.
      await waitFor(() => running === 2);
      open();
      await waitFor(() => running === 0);
      raw.socket.end();
      const text = await raw.answer;
      assert.equal(most, 2);
      assert.equal(text.match(/HTTP\/1.1 200/g)?.length, 2);
      assert.equal(text.match(/HTTP\/1.1 429/g)?.length, 3);
    } finally {
      await server.close();
    }
  });

  it('counts a reply the client is not reading as a message in progress until it is sent', async () => {
    let called = 0;
    const server = await startRpcServer(
      { ...OPTS, maxInflightPerIp: 1, maxResponseBytes: 64 * 1024 * 1024 },
      modules({
        ...quiet(),
        methods: {
          // Far more than the kernel's socket buffers take: the rest waits in the server's memory.
          big: () => {
            called++;
            return 'x'.repeat(40 * 1024 * 1024);
          },
          echo: (params) => params,
        },
      }),
    );
    try {
      const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'big', params: [] });
      const socket = netConnect(server.port, '127.0.0.1');
      socket.on('error', () => {});
      await new Promise((r) => socket.once('connect', r));
      socket.pause(); // a client that reads its reply slowly, or not at all
      socket.write(
        `POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
      );
      await waitFor(() => called === 1);
      await new Promise((r) => setTimeout(r, 100));
      // Otherwise every socket of an address could pin a reply of maxResponseBytes in memory.
      const refused = await post(
        server,
        JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'echo', params: [] }),
      );
      assert.equal(refused.status, 429);
      assert.deepEqual(errorOf(refused.json).data, { reason: 'CONCURRENCY_LIMIT', limit: 1 });
      socket.destroy();
      await new Promise((r) => setTimeout(r, 100));
      const ok = await post(server, JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'echo', params: [] }));
      assert.equal(ok.status, 200);
    } finally {
      await server.close();
    }
  });

  it('handles the messages of one WebSocket one at a time', async () => {
    let running = 0;
    let most = 0;
    const server = await startRpcServer(
      OPTS,
      modules({
        ...quiet(),
        methods: {
          slow: async (params) => {
            most = Math.max(most, ++running);
            await new Promise((r) => setTimeout(r, 10));
            running--;
            return params;
          },
        },
      }),
    );
    try {
      const c = await Client.open(server.wsUrl);
      for (let i = 0; i < 8; i++)
        c.sendRaw(JSON.stringify({ jsonrpc: '2.0', id: i, method: 'slow', params: [i] }));
      const ids: unknown[] = [];
      for (let i = 0; i < 8; i++) ids.push(((await c.next()) as { id: unknown }).id);
      assert.deepEqual(ids, [0, 1, 2, 3, 4, 5, 6, 7]);
      assert.equal(most, 1);
      await c.close();
    } finally {
      await server.close();
    }
  });

  it('cuts off clients that send their headers or body too slowly', async () => {
    const server = await startRpcServer(
      { ...OPTS, headersTimeoutMs: 200, requestTimeoutMs: 400 },
      modules(quiet()),
    );
    try {
      const slowHeaders = await rawHttp(server.port, 'POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n');
      const slowBody = await rawHttp(
        server.port,
        'POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"jsonrpc"',
      );
      const silent = await rawHttp(server.port, '');
      // Each socket is closed by the server (with 408 where an answer is still possible) well
      // before the test runner's own timeout; without the cut-off these would hang.
      const answers = await Promise.race([
        Promise.all([slowHeaders.answer, slowBody.answer, silent.answer]),
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error('slow clients not cut off')), 8_000),
        ),
      ]);
      assert.match(answers[0], /^(HTTP\/1.1 408|$)/);
      assert.match(answers[1], /^(HTTP\/1.1 408|$)/);
      assert.deepEqual(await rpc(server, 'echo', [1]), { jsonrpc: '2.0', id: 1, result: [1] });
    } finally {
      await server.close();
    }
  });

  it('drops a WebSocket client that stops reading once its send buffer passes the limit', async () => {
    const emitters = new Set<(r: unknown) => void>();
    const server = await startRpcServer(
      { ...OPTS, maxWsBufferedBytes: 256 * 1024 },
      modules({
        ...quiet(),
        subscriptions: sharedInto(emitters),
      }),
    );
    try {
      const client = await rawWebSocket(server.port);
      client.send(JSON.stringify({ jsonrpc: '2.0', method: 'unc_subscribe', params: ['shared'], id: 1 }));
      await waitFor(() => emitters.size === 1);
      client.socket.pause(); // reads nothing from now on
      const chunk = 'x'.repeat(64 * 1024);
      // Fewer bytes than the old fixed 8 MiB threshold, more than the kernel buffers hold.
      for (let sent = 0; sent < 7 * 1024 * 1024 && emitters.size > 0; sent += chunk.length) {
        for (const emit of emitters) emit({ chunk });
        await new Promise((r) => setImmediate(r));
      }
      await waitFor(() => emitters.size === 0);
      client.socket.destroy();
    } finally {
      await server.close();
    }
  });
});

/** A WebSocket client's underlying socket (the ws library keeps it in `_socket`). */
function socketOf(ws: WebSocket): Socket {
  return (ws as unknown as { _socket: Socket })._socket;
}

/**
 * Makes a ws client a silent holder: it reads nothing more from its socket but sends a pong every
 * few ms, blind, so pongs alone say it is alive (until its socket closes).
 */
function holdSilently(ws: WebSocket): void {
  socketOf(ws).pause();
  const pongs = setInterval(() => {
    if (ws.readyState === WebSocket.OPEN) ws.pong();
    else clearInterval(pongs);
  }, 10);
  // A failed test must not be kept running by it.
  pongs.unref();
}

describe('rpc server: WebSocket clients that hold unsent bytes', () => {
  const MiB = 1024 * 1024;
  /** Clients of the running test: closed, passed or failed, so that none keeps the process alive. */
  const opened: Client[] = [];
  async function closeAll(server: RpcServer): Promise<void> {
    for (const c of opened.splice(0)) socketOf(c.ws)?.destroy();
    await server.close();
  }
  /**
   * A server whose unsent bytes are capped at 32 MiB, per client and in total, and whose ping round
   * (60 s) does not come within a test unless `over` says otherwise: only the caps decide. Its log
   * is captured, not printed.
   */
  function startCapped(
    extra: Partial<RpcServerModules>,
    over: Partial<RpcServerOptions> = {},
  ): Promise<RpcServer> {
    return startRpcServer(
      {
        ...OPTS,
        pingIntervalMs: 60_000,
        maxWsBufferedBytes: 32 * MiB,
        maxWsBufferedBytesTotal: 32 * MiB,
        ...over,
      },
      modules({ logger: captureLogger().logger, ...extra }),
    );
  }

  it('counts what a client reads short of the read floor as debt (readDebt)', () => {
    const floor = 64 * 1024;
    assert.equal(readDebt(0, 0, 0, floor, 5 * MiB), 0, 'nothing waited at the last round');
    assert.equal(readDebt(0, 24 * MiB, 0, floor, 24 * MiB), floor, 'a silent holder');
    assert.equal(readDebt(floor, 24 * MiB, 0, floor, 24 * MiB), 2 * floor, '... round after round');
    assert.equal(readDebt(0, 24 * MiB, floor - 1, floor, 24 * MiB), 1, 'a trickle below the floor');
    assert.equal(readDebt(0, 24 * MiB, floor, floor, 24 * MiB), 0, 'at the floor');
    assert.equal(readDebt(3 * floor, 24 * MiB, 2 * MiB, floor, 20 * MiB), 0, 'a burst pays the debt back');
    assert.equal(readDebt(0, 24 * MiB, 2 * MiB, floor, 20 * MiB), 0, '... but saves no credit');
    assert.equal(
      readDebt(0, 1_000, 1_000, floor, 10),
      0,
      'less than the floor waited, and all of it was read',
    );
    assert.equal(readDebt(5 * floor, 24 * MiB, 100, floor, 0), 0, 'the last bytes of a write, all read');
    assert.equal(readDebt(0, 24 * MiB, 0, 0, 24 * MiB), 1, 'with no floor, no progress at all still owes');
  });

  it('keeps a reader at the floor within the kernel buffers of debt, however bursty (property)', () => {
    // The kernel passes on what the client reads in bursts of up to `buffer` bytes: over any run
    // of rounds, it has taken at least what the client read less `buffer`.
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: MiB }),
        fc.integer({ min: 0, max: 8 * MiB }),
        fc.array(fc.nat({ max: 4 * MiB }), { minLength: 1, maxLength: 200 }),
        (floor, buffer, bursts) => {
          // A client reading exactly `floor` a round; the kernel releases it in arbitrary bursts, held
          // back by at most `buffer`.
          let read = 0;
          let taken = 0;
          let debt = 0;
          for (const burst of bursts) {
            read += floor;
            const next = Math.min(read, Math.max(taken + burst, read - buffer));
            debt = readDebt(debt, 64 * MiB, next - taken, floor, 64 * MiB);
            taken = next;
            assert.ok(debt <= buffer, `debt ${debt} over the kernel's ${buffer}`);
          }
        },
      ),
    );
  });

  it('over the total, drops in shedOrder, only as many as needed, never one holding nothing (property)', () => {
    const holding = fc.record({
      pending: fc.nat({ max: 64 * MiB }),
      behind: fc.boolean(),
      took: fc.nat({ max: 64 * MiB }),
      measured: fc.boolean(),
    });
    fc.assert(
      fc.property(
        fc.array(holding, { maxLength: 40 }),
        fc.nat({ max: 32 * MiB }),
        fc.integer({ min: 1, max: 512 * MiB }),
        fc.boolean(),
        (holdings, incoming, cap, anyHolder) => {
          const drop = overBudget(holdings, incoming, cap, anyHolder);
          assert.equal(new Set(drop).size, drop.length);
          const total = holdings.reduce((t, h) => t + h.pending, incoming);
          if (total <= cap) assert.deepEqual(drop, []);
          const kept = holdings.filter((_h, i) => !drop.includes(i));
          const left = kept.reduce((t, h) => t + h.pending, incoming);
          const eligible = (h: WsHolding) => h.pending > 0 && (anyHolder || h.behind);
          // Under the cap afterwards, unless every client it may drop is gone.
          if (left > cap) assert.ok(!kept.some(eligible));
          for (const i of drop) assert.ok(eligible(holdings[i]!));
          // No more than needed: without the last one dropped it would still be over.
          if (drop.length > 0) assert.ok(left + holdings[drop.at(-1)!]!.pending > cap);
          // Worst first, and none kept that is worse than one dropped.
          for (let k = 1; k < drop.length; k++) {
            assert.ok(shedOrder(holdings[drop[k - 1]!]!, holdings[drop[k]!]!) <= 0);
          }
          for (const i of drop) {
            for (const h of kept.filter(eligible)) assert.ok(shedOrder(holdings[i]!, h) <= 0);
          }
        },
      ),
    );
  });

  it('makes room by time to drain: floor-rate holders go before a fast reader of a bigger reply', () => {
    // Rounds of 30 s at the 64 KiB/s floor: a client reading at the floor takes ~1.9 MiB a round.
    const floorRound = 30 * 64 * 1024;
    const attackers: WsHolding[] = Array.from({ length: 11 }, () => ({
      pending: 23 * MiB,
      behind: false,
      took: floorRound,
      measured: true,
    }));
    // An honest client reading its 24 MiB reply at ten times the floor, and one whose 24 MiB reply
    // went out since the last round (how fast it reads is not known yet).
    const honest: WsHolding = { pending: 24 * MiB, behind: false, took: 10 * floorRound, measured: true };
    const fresh: WsHolding = { pending: 24 * MiB, behind: false, took: 0, measured: false };
    const holdings = [...attackers, honest, fresh];
    // The total is full (11 × 23 + 48 = 301 MiB > 256 MiB) and a 24 MiB reply was refused.
    const drop = overBudget(holdings, 24 * MiB, 256 * MiB, true);
    assert.ok(drop.length > 0);
    assert.ok(!drop.includes(11), 'the fast reader is not dropped');
    assert.ok(!drop.includes(12), 'the fresh burst is not dropped');
    assert.ok(
      shedOrder({ ...honest, behind: true }, attackers[0]!) < 0,
      'one behind the read floor goes first whatever its speed',
    );
    assert.ok(shedOrder({ ...honest, took: 0 }, attackers[0]!) < 0, 'one that took nothing drains never');
  });

  it('answers a big reply "busy" rather than queue it past the total, and drops no one', async () => {
    // Four clients ask a 24 MiB reply each and read nothing, against a 32 MiB total: before, all
    // four were queued (96 MiB) until a ping round (60 s here) found them behind the floor.
    let asked = 0;
    const server = await startCapped({
      methods: {
        big: () => {
          asked++;
          return 'x'.repeat(24 * MiB);
        },
      },
    });
    try {
      const clients = await Promise.all([1, 2, 3, 4].map(() => Client.open(server.wsUrl)));
      opened.push(...clients);
      const answers = clients.map((c) => {
        const answer = c.next(60_000);
        c.sendRaw(JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'big', params: [] }));
        socketOf(c.ws).pause();
        return answer;
      });
      await waitFor(() => asked === 4);
      // The replies are serialised and handed to the sockets before any timer fires.
      await new Promise((r) => setTimeout(r, 20));
      assert.ok(
        clients.every((c) => c.ws.readyState === WebSocket.OPEN),
        'no one is dropped',
      );
      for (const c of clients) socketOf(c.ws).resume();
      const got = (await Promise.all(answers)) as Array<{
        id: number;
        result?: string;
        error?: { code: number; data: { reason: string; retryAfterMs: number } };
      }>;
      const full = got.filter((m) => m.result?.length === 24 * MiB).length;
      const busy = got.filter((m) => m.error?.code === -32005 && m.error.data.reason === 'BUSY');
      // At most the total plus one message (32 + 24 MiB) waited: two replies, not four.
      assert.ok(full >= 1 && full <= 2, `${full} full replies`);
      assert.equal(busy.length, 4 - full);
      for (const m of busy) {
        assert.equal(m.id, 7);
        // Until the next ping round, which makes room.
        assert.ok(m.error!.data.retryAfterMs > 0 && m.error!.data.retryAfterMs <= 60_000);
      }
    } finally {
      await closeAll(server);
    }
  });

  it('makes room at the next ping round for a reply it answered "busy"', async () => {
    const server = await startCapped(
      { methods: { big: () => 'x'.repeat(24 * MiB) } },
      { pingIntervalMs: 300 },
    );
    try {
      const [holder, asker] = (await Promise.all([1, 2].map(() => Client.open(server.wsUrl)))) as [
        Client,
        Client,
      ];
      opened.push(holder, asker);
      holder.sendRaw(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'big', params: [] }));
      holdSilently(holder.ws);
      const holderGone = holder.closed();
      // The holder's 24 MiB waits (the kernel takes a few MiB of it at most): no room for another.
      let answer = (await asker.call('big', [])) as { result?: string; error?: { data: { reason: string } } };
      assert.equal(answer.error?.data.reason, 'BUSY');
      // Within a round or two the silent holder goes to make room, and the retry is answered.
      while (answer.result === undefined) {
        await new Promise((r) => setTimeout(r, 50));
        answer = (await asker.call('big', [])) as typeof answer;
      }
      assert.equal(answer.result.length, 24 * MiB);
      await holderGone;
    } finally {
      await closeAll(server);
    }
  });

  it('books the reply a ping round made room for, even after events took that room', async () => {
    // Before, events sent after the round (which do not wait in line) took the room the round made
    // for the head of the line, its retry was refused again and renewed its place: it stayed at
    // the head, room kept for it from everyone behind, as long as events filled the total.
    const emitters = new Set<(r: unknown) => void>();
    const server = await startCapped(
      { methods: { big: () => 'x'.repeat(24 * MiB) }, subscriptions: sharedInto(emitters) },
      // Rounds far enough apart that the steps after the first round fit before the next.
      { pingIntervalMs: 3_000 },
    );
    type Answer = { result?: string; error?: { data: { reason: string } } };
    try {
      const holder = await Client.open(server.wsUrl, { localAddress: '127.0.0.3' });
      const subscriber = await Client.open(server.wsUrl, { localAddress: '127.0.0.4' });
      const asker = await Client.open(server.wsUrl);
      opened.push(holder, subscriber, asker);
      await subscriber.call('unc_subscribe', ['shared']);
      holder.sendRaw(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'big', params: [] }));
      holdSilently(holder.ws);
      const holderGone = holder.closed();
      // The two replies may go out in either order: ask until the holder's is the one waiting.
      let answer = (await asker.call('big', [])) as Answer;
      while (answer.error?.data.reason !== 'BUSY') answer = (await asker.call('big', [])) as Answer;
      // The round drops the silent holder to make room for the asker's reply; the asker is due.
      await holderGone;
      // An event takes that room before the asker comes back.
      socketOf(subscriber.ws).pause();
      for (const emit of emitters) emit({ chunk: 'y'.repeat(24 * MiB) });
      answer = (await asker.call('big', [])) as Answer;
      assert.equal(answer.result?.length, 24 * MiB, `refused again: ${JSON.stringify(answer.error)}`);
    } finally {
      await closeAll(server);
    }
  });

  it('answers each request of a refused batch "busy", and stops the subscriptions it made', async () => {
    const emitters = new Set<(r: unknown) => void>();
    const server = await startCapped({
      methods: { big: () => 'x'.repeat(24 * MiB) },
      subscriptions: sharedInto(emitters),
    });
    try {
      const [holder, asker] = (await Promise.all([1, 2].map(() => Client.open(server.wsUrl)))) as [
        Client,
        Client,
      ];
      opened.push(holder, asker);
      holder.sendRaw(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'big', params: [] }));
      holdSilently(holder.ws);
      // The two big replies may go out in either order: ask until the holder's is the one waiting.
      let probe = (await asker.call('big', [])) as { error?: { data: { reason: string } } };
      while (probe.error?.data.reason !== 'BUSY') probe = (await asker.call('big', [])) as typeof probe;
      asker.sendRaw(
        JSON.stringify([
          { jsonrpc: '2.0', id: 'sub', method: 'unc_subscribe', params: ['shared'] },
          { jsonrpc: '2.0', method: 'big', params: [] },
          { jsonrpc: '2.0', id: 'big', method: 'big', params: [] },
        ]),
      );
      const batch = (await asker.next()) as Array<{ id: unknown; error?: { data: { reason: string } } }>;
      assert.deepEqual(
        batch.map((m) => [m.id, m.error?.data.reason]),
        [
          ['sub', 'BUSY'],
          ['big', 'BUSY'],
        ],
      );
      // The client never learnt the subscription's id: it must not live on until disconnect.
      assert.equal(emitters.size, 0);
      assert.equal(holder.ws.readyState, WebSocket.OPEN, 'no one is dropped for a refused reply');
    } finally {
      await closeAll(server);
    }
  });

  it('keeps room in line for those holding less, a /48 counted as 4 /64s, and never two ahead of each other', () => {
    const place = (seq: number, bytes = 24 * MiB): WsPlace => ({
      bytes,
      kind: 'big',
      seq,
      round: 0,
      due: false,
    });
    const honest = '10.0.0.1';
    const attacker = '10.0.0.2';
    // The honest client holds nothing and was refused; the attacker holds 20 MiB: it gets no room
    // ahead of the honest one's 24 MiB, however early it asks.
    const line = new Map([[honest, place(5)]]);
    const held = new Map([[attacker, 20 * MiB]]);
    assert.equal(roomAhead(line, attacker, held), 24 * MiB);
    assert.equal(roomAhead(line, honest, held), 0, 'nobody ahead of the honest one');
    // Holding as much (nothing): who was refused first goes first; one not in line goes last.
    line.set(attacker, place(9, 32 * MiB));
    held.delete(attacker);
    assert.equal(roomAhead(line, honest, held), 0);
    assert.equal(roomAhead(line, attacker, held), 24 * MiB);
    assert.equal(roomAhead(line, '10.0.0.3', held), 32 * MiB, 'the largest reply of those ahead');
    // Spread over the /64s of a /48, 64 MiB is 16 MiB a /64 for its place, however little each holds.
    const spread = new Map<string, number>([['2001:db8:1::/48', 64 * MiB]]);
    for (let i = 0; i < 64; i++) spread.set(clientKey(`2001:db8:1:${i}::1`), MiB);
    assert.equal(heldBy(clientKey('2001:db8:1:7::1'), spread), 16 * MiB);
    spread.set(honest, 8 * MiB);
    assert.equal(roomAhead(new Map([[honest, place(1)]]), clientKey('2001:db8:1:7::1'), spread), 24 * MiB);
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.tuple(fc.constantFrom('10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4'), fc.nat(3)), {
          selector: (t) => t[0],
          minLength: 2,
        }),
        fc.array(fc.nat({ max: 4 }), { minLength: 4, maxLength: 4 }),
        (entries, holds) => {
          const keys = ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4'];
          const line = new Map(entries.map(([k, _s], i) => [k, place(i, MiB)]));
          const held = new Map(keys.map((k, i) => [k, holds[i]! * MiB]));
          // Of two clients in line, exactly one keeps room from the other: none wait on each other.
          for (const [a] of entries) {
            for (const [b] of entries) {
              if (a === b) continue;
              const onlyA = new Map([[a, line.get(a)!]]);
              const onlyB = new Map([[b, line.get(b)!]]);
              const both = new Map([...onlyA, ...onlyB]);
              const aWaitsOnB = roomAhead(both, a, held) > 0;
              const bWaitsOnA = roomAhead(both, b, held) > 0;
              assert.notEqual(aWaitsOnB, bWaitsOnA);
            }
          }
          // The one holding least (first refused among them) has room kept for nobody ahead of it.
          const first = [...line.keys()].sort(
            (a, b) => held.get(a)! - held.get(b)! || line.get(a)!.seq - line.get(b)!.seq,
          )[0]!;
          assert.equal(roomAhead(line, first, held), 0);
        },
      ),
    );
  });

  it('keeps room freed after a "busy" for the client refused, not for whoever asks first', async () => {
    // No ping round in the test (60 s): room is freed only by the attacker reading its reply.
    let asked = 0;
    const server = await startCapped({
      methods: {
        big: () => {
          asked++;
          return 'x'.repeat(24 * MiB);
        },
        echo: (p) => p,
      },
    });
    type Answer = { result?: string; error?: { data: { reason: string } } };
    try {
      // The attacker at another address (127.0.0.2) than the honest client (127.0.0.1).
      const attacker = await Client.open(server.wsUrl, { localAddress: '127.0.0.2' });
      const again = await Client.open(server.wsUrl, { localAddress: '127.0.0.2' });
      const honest = await Client.open(server.wsUrl);
      opened.push(attacker, again, honest);
      // The attacker's 24 MiB waits (the kernel takes a few MiB at most): the honest one is refused.
      const held = attacker.next(60_000);
      attacker.sendRaw(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'big', params: [] }));
      socketOf(attacker.ws).pause();
      await waitFor(() => asked === 1);
      // The reply is serialised and handed to the socket before any timer fires.
      await new Promise((r) => setTimeout(r, 20));
      const answer = (await honest.call('big', [])) as Answer;
      assert.equal(answer.error?.data.reason, 'BUSY');
      // The attacker reads its reply, freeing the room, and asks again at once, first.
      socketOf(attacker.ws).resume();
      assert.equal(((await held) as Answer).result?.length, 24 * MiB);
      // A round trip on its connection: the server has seen the socket drained (whatever the answer).
      await attacker.call('echo', []);
      const grab = (await again.call('big', [])) as Answer;
      assert.equal(grab.error?.data.reason, 'BUSY', 'the room is kept for the client refused before');
      const retry = (await honest.call('big', [])) as Answer;
      assert.equal(retry.result?.length, 24 * MiB, 'the honest retry gets it');
    } finally {
      await closeAll(server);
    }
  });

  /** A server with no ping round in the test (60 s), a 32 MiB total and a 24 MiB `big` method. */
  async function lineServer(
    more: Partial<RpcServerOptions> = {},
  ): Promise<{ server: RpcServer; asked: () => number }> {
    let asked = 0;
    const server = await startCapped(
      {
        methods: {
          big: () => {
            asked++;
            return 'x'.repeat(24 * MiB);
          },
          echo: (p) => p,
        },
      },
      more,
    );
    return { server, asked: () => asked };
  }
  type BigAnswer = { result?: string; error?: { data: { reason: string } } };

  /** The attacker (127.0.0.2) holds its 24 MiB reply unread; `honest` is refused "busy". */
  async function refusedBehindAttacker(server: RpcServer, asked: () => number) {
    const attacker = await Client.open(server.wsUrl, { localAddress: '127.0.0.2' });
    const again = await Client.open(server.wsUrl, { localAddress: '127.0.0.2' });
    const honest = await Client.open(server.wsUrl);
    opened.push(attacker, again, honest);
    const held = attacker.next(60_000);
    attacker.sendRaw(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'big', params: [] }));
    socketOf(attacker.ws).pause();
    await waitFor(() => asked() === 1);
    // The reply is serialised and handed to the socket before any timer fires.
    await new Promise((r) => setTimeout(r, 20));
    const answer = (await honest.call('big', [])) as BigAnswer;
    assert.equal(answer.error?.data.reason, 'BUSY');
    /** The attacker reads its reply, freeing the room; a round trip has the server see it drained. */
    const drain = async (): Promise<void> => {
      socketOf(attacker.ws).resume();
      assert.equal(((await held) as BigAnswer).result?.length, 24 * MiB);
      await attacker.call('echo', []);
    };
    return { again, honest, drain };
  }

  it('keeps the place of a client refused a big reply while it, or its address, gets small ones', async () => {
    // Before, any reply booked for a client in line ended its place: one small poll (a wallet's,
    // or anyone's behind the same NAT) threw it away, and the attacker took the room again.
    const { server, asked } = await lineServer();
    try {
      const { again, honest, drain } = await refusedBehindAttacker(server, asked);
      const neighbour = await Client.open(server.wsUrl);
      opened.push(neighbour);
      assert.deepEqual(((await honest.call('echo', [1])) as { result: unknown }).result, [1]);
      assert.deepEqual(((await neighbour.call('echo', [2])) as { result: unknown }).result, [2]);
      await drain();
      const grab = (await again.call('big', [])) as BigAnswer;
      assert.equal(grab.error?.data.reason, 'BUSY', 'the room is kept for the client refused before');
      const retry = (await honest.call('big', [])) as BigAnswer;
      assert.equal(retry.result?.length, 24 * MiB, 'the honest retry gets it');
    } finally {
      await closeAll(server);
    }
  });

  it('keeps no place for a client whose WebSockets all closed', async () => {
    const { server, asked } = await lineServer();
    try {
      const { again, honest, drain } = await refusedBehindAttacker(server, asked);
      honest.ws.close();
      await waitFor(() => honest.ws.readyState === WebSocket.CLOSED);
      await drain();
      const grab = (await again.call('big', [])) as BigAnswer;
      assert.equal(grab.result?.length, 24 * MiB, 'no room is kept for a client gone');
    } finally {
      await closeAll(server);
    }
  });

  it('looks at no connection to book a reply while even the largest place in line fits beside it', async () => {
    // Before, with anyone in line every reply (and every request's check) counted the unsent bytes
    // of every connection, even with the total nearly empty. Counted: reads of bufferedAmount.
    const { server, asked } = await lineServer({ maxWsConnections: 32 });
    const getter = Object.getOwnPropertyDescriptor(WebSocket.prototype, 'bufferedAmount')!;
    let reads = 0;
    try {
      const { again, drain } = await refusedBehindAttacker(server, asked);
      // The honest client keeps its place (24 MiB) in line; the total holds nothing once drained.
      await drain();
      const idle = await Promise.all(
        Array.from({ length: 20 }, () => Client.open(server.wsUrl, { localAddress: '127.0.0.4' })),
      );
      opened.push(...idle);
      Object.defineProperty(WebSocket.prototype, 'bufferedAmount', {
        ...getter,
        get(this: WebSocket) {
          reads++;
          return getter.get!.call(this);
        },
      });
      assert.deepEqual(((await again.call('echo', [3])) as { result: unknown }).result, [3]);
      assert.ok(reads < idle.length, `${reads} reads of bufferedAmount for one small reply`);
    } finally {
      Object.defineProperty(WebSocket.prototype, 'bufferedAmount', getter);
      await closeAll(server);
    }
  });

  it('renews a place, and asks room for it, only for a retry of what it waits for (refused unrun)', () => {
    // Before, any request refused unrun renewed its client's place and asked the next round for the
    // place's size: a client polling something else kept a place it no longer needed alive, and
    // every round dropped holders for room nobody took.
    const place = { bytes: 24 * MiB, kind: 'big' };
    assert.deepEqual(refusedUnrun(place, 'big'), { renew: true, roomBytes: 24 * MiB });
    assert.deepEqual(refusedUnrun(place, 'echo'), { renew: false, roomBytes: 1 });
    assert.deepEqual(refusedUnrun(undefined, 'big'), { renew: false, roomBytes: 1 });
  });

  it('makes no place of a guessed size for a request refused unrun, so a client gone keeps no room', async () => {
    // Before, a request refused before computing took a place of maxResponseBytes (its size
    // unknown), for two rounds: with a total no larger, everyone else was refused, nothing held.
    const emitters = new Set<(r: unknown) => void>();
    const server = await startCapped({
      methods: { echo: (p) => p },
      subscriptions: sharedInto(emitters),
    });
    try {
      const holder = await Client.open(server.wsUrl, { localAddress: '127.0.0.3' });
      const ghost = await Client.open(server.wsUrl, { localAddress: '127.0.0.2' });
      opened.push(holder, ghost);
      await holder.call('unc_subscribe', ['shared']);
      holdSilently(holder.ws);
      for (const emit of emitters) emit({ chunk: 'x'.repeat(24 * MiB) });
      for (const emit of emitters) emit({ chunk: 'y'.repeat(24 * MiB) });
      const busy = (await ghost.call('echo', [1])) as { error?: { data: { reason: string } } };
      assert.equal(busy.error?.data.reason, 'BUSY');
      // The ghost's socket stays open (it only stops asking): the busy answer past the total
      // dropped the holder, so nothing is held.
      await waitFor(() => holder.ws.readyState === WebSocket.CLOSED);
      const honest = await Client.open(server.wsUrl);
      opened.push(honest);
      const answer = (await honest.call('echo', [2])) as { result?: unknown; error?: unknown };
      assert.deepEqual(answer.result, [2], `honest small call refused: ${JSON.stringify(answer.error)}`);
    } finally {
      await closeAll(server);
    }
  });

  it('refuses "busy" unrun a call whose reply could not fit, whatever its size', async () => {
    const emitters = new Set<(r: unknown) => void>();
    let computed = 0;
    const server = await startCapped({
      methods: {
        costly: () => {
          computed++;
          return 'x'.repeat(MiB);
        },
      },
      subscriptions: sharedInto(emitters),
    });
    try {
      const [holder, asker] = (await Promise.all([1, 2].map(() => Client.open(server.wsUrl)))) as [
        Client,
        Client,
      ];
      opened.push(holder, asker);
      await holder.call('unc_subscribe', ['shared']);
      holdSilently(holder.ws);
      // Two 24 MiB events to a holder that reads nothing: the second goes out as the total (32 MiB)
      // was not over without it, and leaves it over (48 MiB, less what the kernel took).
      for (const emit of emitters) emit({ chunk: 'x'.repeat(24 * MiB) });
      for (const emit of emitters) emit({ chunk: 'y'.repeat(24 * MiB) });
      // (The busy answer, as any message past the total, then drops the holder: only one check.)
      const batch = [
        { jsonrpc: '2.0', id: 'a', method: 'costly', params: [] },
        { jsonrpc: '2.0', id: 'b', method: 'costly', params: [] },
      ];
      asker.sendRaw(JSON.stringify(batch));
      const replies = (await asker.next()) as Array<{ id: string; error?: { data: { reason: string } } }>;
      assert.deepEqual(
        replies.map((m) => [m.id, m.error?.data.reason]),
        [
          ['a', 'BUSY'],
          ['b', 'BUSY'],
        ],
      );
      assert.equal(computed, 0, 'no reply was computed to be refused');
    } finally {
      await closeAll(server);
    }
  });

  it('drops a client that answers pings but reads nothing of what waits for it', async () => {
    const emitters = new Set<(r: unknown) => void>();
    // Floor 4 MiB/s, slack 1 MiB: it goes a round or two after the kernel buffers are full (rounds
    // of 200 ms: a 50 ms round can pass, on a loaded machine, before a pong sent in time is read).
    const server = await startRpcServer(
      { ...OPTS, pingIntervalMs: 200, minWsReadBytesPerSecond: 4 * MiB, wsReadSlackBytes: MiB },
      modules({
        logger: captureLogger().logger,
        subscriptions: sharedInto(emitters),
      }),
    );
    try {
      const holder = await Client.open(server.wsUrl);
      opened.push(holder);
      await holder.call('unc_subscribe', ['shared']);
      holdSilently(holder.ws);
      // 24 MiB: below maxWsBufferedBytes (32 MiB), more than the kernel buffers take.
      for (const emit of emitters) emit({ chunk: 'x'.repeat(24 * MiB) });
      await waitFor(() => emitters.size === 0);
    } finally {
      await closeAll(server);
    }
  });

  it('keeps a client that reads a large reply slowly, over many ping rounds', async () => {
    const server = await startRpcServer(
      { ...OPTS, pingIntervalMs: 200, minWsReadBytesPerSecond: MiB },
      modules({
        logger: captureLogger().logger,
        methods: { big: () => 'x'.repeat(24 * MiB), echo: (p) => p },
      }),
    );
    try {
      const reader = await Client.open(server.wsUrl);
      opened.push(reader);
      // Reads 256 KiB, then nothing for 20 ms: the 24 MiB reply takes a couple of seconds (about ten
      // rounds) to come, and the ping of each round is stuck behind it, yet it reads at about ten
      // times the read floor (1 MiB/s; a stall of the process costs one round's floor, as rounds
      // are counted, not timed).
      const socket = socketOf(reader.ws);
      let got = 0;
      let mark = 0;
      socket.on('data', (chunk: Buffer) => {
        got += chunk.length;
        if (got - mark < 256 * 1024) return;
        mark = got;
        socket.pause();
        setTimeout(() => socket.resume(), 20);
      });
      const reply = (await reader.call('big', [])) as { result: string };
      assert.equal(reply.result.length, 24 * MiB);
      assert.equal(reader.ws.readyState, WebSocket.OPEN);
      assert.deepEqual(await reader.call('echo', [1]), { jsonrpc: '2.0', id: 2, result: [1] });
    } finally {
      await closeAll(server);
    }
  });

  it('over the total of all clients, drops the one holding the most, at a send or a ping round', async () => {
    const emitters = new Map<number, (r: unknown) => void>();
    const server = await startRpcServer(
      {
        ...OPTS,
        pingIntervalMs: 500,
        maxWsBufferedBytes: 16 * MiB,
        maxWsBufferedBytesTotal: 16 * MiB,
      },
      modules({
        logger: captureLogger().logger,
        subscriptions: {
          keyed: (params, emit) => {
            const key = (params as number[])[0]!;
            emitters.set(key, emit);
            return () => emitters.delete(key);
          },
        },
      }),
    );
    try {
      const open = await Promise.all([1, 2, 3].map(() => Client.open(server.wsUrl)));
      opened.push(...open);
      const [big, small, reader] = open as [Client, Client, Client];
      await big.call('unc_subscribe', ['keyed', [1]]);
      await small.call('unc_subscribe', ['keyed', [2]]);
      await reader.call('unc_subscribe', ['keyed', [3]]);
      holdSilently(big.ws);
      holdSilently(small.ws);
      // 14 + 10 MiB unsent: each under the per-connection cap, together over the total.
      emitters.get(1)!({ chunk: 'x'.repeat(14 * MiB) });
      emitters.get(2)!({ chunk: 'x'.repeat(10 * MiB) });
      emitters.get(3)!({ chunk: 'small' });
      // The third event finds the total over the cap even without it: the total stays under the cap
      // plus one message, so the larger fresh holder goes now (or at the ping round, if first).
      await waitFor(() => !emitters.has(1));
      // Dropping the larger was enough: the other silent holder goes only by its own rounds.
      assert.ok(emitters.has(2), 'only the largest holder is dropped to get under the total');
      assert.ok(emitters.has(3));
      await reader.next();
    } finally {
      await closeAll(server);
    }
  });

  it('drops a client that reads nothing and misses pongs, even with bytes of ours waiting', async () => {
    const emitters = new Set<(r: unknown) => void>();
    // No read floor (so no debt to drop it): only the pong can. A peer that vanished or froze with
    // bytes of ours unsent is excused a missed pong for a few rounds, not for as long as they wait.
    const server = await startRpcServer(
      { ...OPTS, pingIntervalMs: 200, minWsReadBytesPerSecond: 0 },
      modules({
        logger: captureLogger().logger,
        subscriptions: sharedInto(emitters),
      }),
    );
    try {
      const frozen = await Client.open(server.wsUrl);
      opened.push(frozen);
      await frozen.call('unc_subscribe', ['shared']);
      // It reads nothing more, so it never sees a ping, let alone answers one.
      socketOf(frozen.ws).pause();
      // More than the kernel buffers take: bytes of ours wait at every round.
      for (const emit of emitters) emit({ chunk: 'x'.repeat(24 * MiB) });
      await waitFor(() => emitters.size === 0, 30_000);
    } finally {
      await closeAll(server);
    }
  });

  it('refuses a total below the per-connection cap', async () => {
    await assert.rejects(
      startRpcServer({ ...OPTS, maxWsBufferedBytes: 8 * MiB, maxWsBufferedBytesTotal: 4 * MiB }, modules()),
      /maxWsBufferedBytesTotal must be at least maxWsBufferedBytes/,
    );
  });
});

describe('rpc server lifecycle', () => {
  it('drops clients that stop answering pings', async () => {
    const before = activeSubscriptions;
    const server = await startRpcServer(
      { ...OPTS, pingIntervalMs: 40 },
      modules({ logger: captureLogger().logger }),
    );
    try {
      // A well-behaved client answers pings automatically and stays connected.
      const good = await Client.open(server.wsUrl);
      // A raw socket that completes the handshake but never reads a frame plays the dead client.
      const dead = netConnect(server.port, '127.0.0.1');
      const handshake = await new Promise<string>((resolve) => {
        dead.once('connect', () =>
          dead.write(
            'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
              'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
          ),
        );
        dead.once('data', (d) => resolve(d.toString()));
      });
      assert.match(handshake, /^HTTP\/1.1 101/);
      // Subscribe through a masked client frame so that we can see the cleanup.
      const payload = Buffer.from(
        JSON.stringify({ jsonrpc: '2.0', method: 'unc_subscribe', params: ['manual'], id: 1 }),
      );
      const mask = Buffer.from([1, 2, 3, 4]);
      const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
      assert.ok(payload.length < 126, 'fits a one-byte frame length');
      dead.write(Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]));
      await waitFor(() => activeSubscriptions === before + 1);
      const closed = new Promise<void>((resolve) => dead.once('close', () => resolve()));
      dead.on('error', () => {});
      await closed;
      await waitFor(() => activeSubscriptions === before);
      assert.equal(good.ws.readyState, WebSocket.OPEN);
      assert.deepEqual(await good.call('echo', [1]), { jsonrpc: '2.0', id: 1, result: [1] });
      await good.close();
    } finally {
      await server.close();
    }
  });

  it('close() terminates sockets, stops subscriptions and frees the port', async () => {
    const before = activeSubscriptions;
    const server = await startRpcServer(OPTS, modules({ logger: captureLogger().logger }));
    const c = await Client.open(server.wsUrl);
    await c.call('unc_subscribe', ['manual']);
    const closed = c.closed();
    // A keep-alive HTTP connection must not hold the port open either.
    assert.deepEqual(await rpc(server, 'echo', [1]), { jsonrpc: '2.0', id: 1, result: [1] });
    await server.close();
    assert.equal(activeSubscriptions, before);
    await closed;
    await server.close(); // idempotent
    const probe = netCreateServer();
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.listen(server.port, '127.0.0.1', () => resolve());
    });
    await new Promise<void>((resolve) => probe.close(() => resolve()));
  });

  it('rejects invalid options and a port already in use', async () => {
    await assert.rejects(startRpcServer({ ...OPTS, maxBatchSize: 0 }, modules()), RangeError);
    await assert.rejects(startRpcServer({ ...OPTS, port: 70_000 }, modules()), RangeError);
    const first = await startRpcServer(OPTS, modules({ logger: captureLogger().logger }));
    try {
      await assert.rejects(
        startRpcServer({ ...OPTS, port: first.port }, modules({ logger: captureLogger().logger })),
        /EADDRINUSE/,
      );
    } finally {
      await first.close();
    }
  });
});

describe('rpc server robustness (property-based)', () => {
  let server: RpcServer;

  before(async () => {
    server = await startRpcServer(OPTS, modules({ logger: captureLogger().logger }));
  });
  after(() => server.close());

  /** Whatever was sent, the reply must be a well-formed JSON-RPC response, batch or nothing. */
  async function assertWellFormed(body: string | Uint8Array): Promise<void> {
    const r = await post(server, body);
    if (r.status === 204) {
      assert.equal(r.text, '');
      return;
    }
    assert.equal(r.status, 200, r.text);
    assert.match(r.headers.get('content-type') ?? '', /^application\/json/);
    if (Array.isArray(r.json)) {
      assert.ok(r.json.length > 0);
      for (const item of r.json) checkResponse(item);
    } else {
      checkResponse(r.json);
    }
  }

  const methodNames = fc.constantFrom(
    'echo',
    'add',
    'typed',
    'nothing',
    'appFail',
    'internalFail',
    'circular',
    'nope',
    'constructor',
    '__proto__',
    'unc_subscribe',
  );
  const requestLike = fc.record(
    {
      jsonrpc: fc.oneof(fc.constant('2.0'), fc.jsonValue()),
      method: fc.oneof(methodNames, fc.jsonValue()),
      params: fc.jsonValue(),
      id: fc.oneof(fc.integer(), fc.string(), fc.constant(null), fc.jsonValue()),
    },
    { requiredKeys: [] },
  );

  it('never crashes on random strings', async () => {
    await fc.assert(fc.asyncProperty(fc.string({ unit: 'binary', maxLength: 200 }), assertWellFormed), {
      numRuns: 150,
    });
  });

  it('never crashes on random JSON values', async () => {
    await fc.assert(
      fc.asyncProperty(fc.jsonValue({ maxDepth: 4 }), (v) => assertWellFormed(JSON.stringify(v) ?? 'null')),
      { numRuns: 150 },
    );
  });

  it('never crashes on random bytes', async () => {
    await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), assertWellFormed), { numRuns: 150 });
  });

  it('never crashes on random request-shaped objects and batches', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(requestLike, fc.array(requestLike, { minLength: 1, maxLength: OPTS.maxBatchSize })),
        (v) => assertWellFormed(JSON.stringify(v)),
      ),
      { numRuns: 200 },
    );
  });

  it('never crashes on random WebSocket messages', async () => {
    const c = await Client.open(server.wsUrl);
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.string({ maxLength: 200 }),
          requestLike.map((r) => JSON.stringify(r)),
        ),
        async (text) => {
          c.sendRaw(text);
          // Fence with a request of our own: every reply before it must be well-formed.
          c.sendRaw(JSON.stringify({ jsonrpc: '2.0', method: 'echo', params: ['fence'], id: 'fence' }));
          for (;;) {
            const msg = await c.next();
            if (Array.isArray(msg)) for (const item of msg as unknown[]) checkResponse(item);
            else if ((msg as { method?: unknown }).method === 'unc_subscription') continue;
            else if (checkResponse(msg) === undefined && (msg as { id: unknown }).id === 'fence') break;
          }
        },
      ),
      { numRuns: 100 },
    );
    await c.close();
  });

  it('still answers after all of that', async () => {
    assert.deepEqual(await rpc(server, 'add', [20, 22]), { jsonrpc: '2.0', id: 1, result: 42 });
  });
});
