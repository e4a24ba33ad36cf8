/**
 * How the gateway reads a failed attempt, and what it refuses to start with: its own failures are
 * held against no provider, and an API that spends the budget is never open to the network
 * without a token.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { NodeUnreachableError, ProofError, ProviderClient, ProviderError, RpcClientError } from '@unc/sdk';
import Database from 'better-sqlite3';
import {
  apiServer,
  BadReceiptError,
  browserAttack,
  classifyAttemptFailure,
  Gateway,
  isLoopbackHost,
} from '../src/gateway.js';

describe('attempt failures', () => {
  test("the gateway's node failing while a receipt is checked bans no provider", () => {
    // Before: anything unrecognised was a bad receipt, and a bad receipt avoids its provider for
    // good, so an honest provider was banned whenever the gateway's own node blinked.
    assert.equal(
      classifyAttemptFailure(new NodeUnreachableError('http://127.0.0.1:3030', 'ECONNREFUSED')),
      'gateway-error',
    );
    assert.equal(classifyAttemptFailure(new RpcClientError(-32000, 'rate limited')), 'gateway-error');
  });

  test("the light client refusing the gateway's node's chip record bans no provider", () => {
    // With --prove a node serving a forged chip key fails the proof: the node's fault, not the
    // provider's; read as a bad receipt, a hostile node could have every honest provider banned.
    assert.equal(classifyAttemptFailure(new ProofError('keyMaterial differs', 'MISMATCH')), 'gateway-error');
    assert.equal(
      classifyAttemptFailure(new ProofError('no proof of absence', 'NOT_PROVEN')),
      'gateway-error',
    );
  });

  test("the gateway's database refusing a write bans no provider", () => {
    const db = new Database(':memory:');
    db.exec('CREATE TABLE t (k TEXT PRIMARY KEY)');
    db.prepare('INSERT INTO t VALUES (?)').run('a');
    let err: unknown;
    try {
      db.prepare('INSERT INTO t VALUES (?)').run('a');
    } catch (e) {
      err = e;
    }
    db.close();
    assert.ok(err);
    assert.equal(classifyAttemptFailure(err), 'gateway-error');
  });

  test('what the provider sent back still decides its blame', () => {
    assert.equal(classifyAttemptFailure(new BadReceiptError('signed by another key')), 'bad-receipt');
    assert.equal(classifyAttemptFailure(new Error('the receipt names another lease')), 'bad-receipt');
    assert.equal(classifyAttemptFailure(new ProviderError(422, 'JOB_FAILED', 'bad image')), 'rejected-input');
    assert.equal(classifyAttemptFailure(new ProviderError(429, 'QUEUE_FULL', 'busy')), 'busy');
    // A store full of models in use: a crowded provider.
    assert.equal(classifyAttemptFailure(new ProviderError(507, 'STORE_FULL', 'full')), 'busy');
    // A model "not found" that got this far is no eviction the gateway took care of (gateway
    // `run` uploads an evicted model again, within its limit): lost right after it was stored
    // anew, or the provider's own OCR model. As busy, it let a provider keep its lease while
    // refusing 4 jobs in 5.
    assert.equal(
      classifyAttemptFailure(new ProviderError(404, 'MODEL_NOT_FOUND', 'no model')),
      'provider-error',
    );
    assert.equal(
      classifyAttemptFailure(new ProviderError(502, 'MODEL_LOST', 'lost again')),
      'provider-error',
    );
    assert.equal(
      classifyAttemptFailure(new ProviderError(404, 'NOT_FOUND', 'no such endpoint')),
      'provider-error',
    );
    assert.equal(
      classifyAttemptFailure(new Error('cannot reach the provider at https://p: ECONNREFUSED')),
      'unreachable',
    );
    assert.equal(
      classifyAttemptFailure(
        new Error('cannot reach the provider at https://p: The operation was aborted due to timeout'),
      ),
      'timeout',
    );
    // The renter client's own time limit (sdk RequestTimeoutError, code TIMEOUT).
    assert.equal(
      classifyAttemptFailure(new Error('cannot reach the provider at https://p: TIMEOUT')),
      'timeout',
    );
  });
});

describe('a provider answering too much', () => {
  // A real socket: a "provider" that streams an endless answer (no content-length), and one that
  // declares a huge one. Without a bound the renter would hold all of it in memory.
  const sent = { bytes: 0 };
  const server = createServer((req, res) => {
    if (req.url === '/declared') {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(1 << 30) });
      res.write('{');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    const pump = () => {
      while (!res.destroyed && sent.bytes < 64 * 1024 * 1024) {
        sent.bytes += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      res.end();
    };
    res.on('close', () => {});
    pump();
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  const client = async (path: string) => {
    if (!server.listening) await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    return new ProviderClient({
      endpoint: `http://127.0.0.1:${port}${path}`,
      chainId: 'test',
      leaseId: new Uint8Array(32),
      renterSeed: new Uint8Array(32).fill(3),
      allowHttp: true,
      timeoutMs: 20_000,
      maxResponseBytes: 1024 * 1024,
    });
  };

  test('a streamed answer past the bound is dropped: a provider error, not a dispute', async () => {
    const c = await client('');
    const err = await c.health().then(
      () => null,
      (e: unknown) => e,
    );
    c.close();
    assert.ok(err instanceof ProviderError, String(err));
    assert.equal(err.code, 'RESPONSE_TOO_LARGE');
    assert.equal(classifyAttemptFailure(err), 'provider-error');
    assert.ok(sent.bytes < 32 * 1024 * 1024, `the reading stopped early (${sent.bytes} bytes sent)`);
  });

  test('a declared length past the bound is refused before reading it', async () => {
    const c = await client('/declared');
    const err = await c.health().then(
      () => null,
      (e: unknown) => e,
    );
    c.close();
    assert.ok(err instanceof ProviderError, String(err));
    assert.equal(err.code, 'RESPONSE_TOO_LARGE');
  });
});

describe('listening beyond loopback', () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-host-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const make = (host: string, apiToken?: string) =>
    new Gateway({
      nodeUrl: 'http://127.0.0.1:1',
      renterSeed: new Uint8Array(32).fill(7),
      budgetPerHour: 1n,
      models: [{ name: 'ocr' }],
      dbPath: join(dir, `${host.replace(/[^a-z0-9]/gi, '_')}-${apiToken ?? 'none'}.db`),
      host,
      ...(apiToken ? { apiToken } : {}),
    });

  test('every interface without a token is refused: anyone reaching it could spend the budget', () => {
    assert.throws(() => make('0.0.0.0'), /without an API token/);
    assert.throws(() => make('::'), /without an API token/);
    assert.throws(() => make('192.168.1.10'), /without an API token/);
  });

  test('loopback without a token, or any address with one, is allowed', () => {
    for (const gw of [make('127.0.0.1'), make('localhost'), make('::1'), make('0.0.0.0', 'sesame')])
      gw.store.close();
    assert.equal(isLoopbackHost('127.1.2.3'), true);
    assert.equal(isLoopbackHost('[::1]'), true);
    assert.equal(isLoopbackHost('0.0.0.0'), false);
    assert.equal(isLoopbackHost('127.0.0.1.example.com'), false);
  });
});

describe('a client trickling its request', () => {
  test('is cut off when the whole request has not arrived in time', async () => {
    let answered = 0;
    const server = apiServer(
      (req, res) => {
        // Reads the body first, as the API does.
        (async () => {
          for await (const _ of req);
          answered++;
          res.end();
        })().catch(() => {});
      },
      { requestTimeoutMs: 600, checkEveryMs: 100 },
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const socket = connect(port, '127.0.0.1');
    const answer: Buffer[] = [];
    socket.on('data', (c) => answer.push(c));
    socket.on('error', () => {});
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.write('POST /v1/jobs HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n{');
    // One byte every 100 ms: never idle long, never done.
    const drip = setInterval(() => socket.writable && socket.write(' '), 100);
    const limit = setTimeout(() => socket.destroy(), 10_000);
    await closed;
    clearInterval(drip);
    clearTimeout(limit);
    server.close();
    assert.match(Buffer.concat(answer).toString(), /^HTTP\/1\.1 408/);
    assert.equal(answered, 0);
  });
});

describe("a web page in the operator's browser", () => {
  const json = { 'content-type': 'application/json' };
  test('cannot submit a job with a simple cross-site POST (text/plain, no preflight)', () => {
    const e = browserAttack('POST', { host: '127.0.0.1:7080', 'content-type': 'text/plain' }, false);
    assert.equal(e?.code, 'NOT_JSON');
    assert.equal(browserAttack('POST', { host: '127.0.0.1:7080' }, true)?.code, 'NOT_JSON');
  });

  test('cannot read the API through a name rebound to 127.0.0.1', () => {
    assert.equal(browserAttack('GET', { host: 'evil.example:7080' }, false)?.code, 'BAD_HOST');
    assert.equal(browserAttack('POST', { host: 'evil.example', ...json }, false)?.code, 'BAD_HOST');
    assert.equal(browserAttack('GET', {}, false)?.code, 'BAD_HOST');
  });

  test('loopback names, JSON posts, and any name with a token pass', () => {
    for (const host of ['127.0.0.1:7080', 'localhost:7080', '[::1]:7080', 'localhost'])
      assert.equal(
        browserAttack('POST', { host, 'content-type': 'application/json; charset=utf-8' }, false),
        null,
      );
    assert.equal(browserAttack('GET', { host: 'gw.example.com' }, true), null);
  });
});

describe('scaling up while the node does not answer', () => {
  test('the attempt to open a lease fails quietly instead of rejecting (which would end the process)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-open-'));
    const gw = new Gateway({
      nodeUrl: 'http://127.0.0.1:1',
      renterSeed: new Uint8Array(32).fill(7),
      budgetPerHour: 10n ** 18n,
      models: [{ name: 'ocr' }],
      dbPath: join(dir, 'g.db'),
    });
    try {
      // Before: the node's error escaped the promise the pool's tick does not wait for: an
      // unhandled rejection, which ends a Node 20 process.
      await gw.openLease('jobs wait and no lease is held');
      assert.equal(gw.status().pool.length, 0);
    } finally {
      gw.store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
