/**
 * A node the client does not run answers what it likes: a body without end, a declared gigabyte,
 * a body trickled past the timeout, or `null`. The client must give up with a clear error, within
 * its bounds, never holding the answer whole first.
 */
import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { after, test } from 'node:test';
import {
  DEFAULT_MAX_ANSWER_BYTES,
  type HubOptions,
  NodeUnreachableError,
  RpcClientError,
  UncClient,
} from '../src/index.js';

const servers: { server: Server; sockets: Set<Socket> }[] = [];
after(async () => {
  for (const { server, sockets } of servers) {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  }
});

/** A hostile node: `answer` writes whatever it wants on each request. */
async function hostileNode(answer: (res: ServerResponse) => void): Promise<string> {
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => answer(res));
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  servers.push({ server, sockets });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Writes `chunk` for ever, as fast as the client reads, until the client hangs up. */
function endless(res: ServerResponse, chunk: Buffer): void {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.write('{"jsonrpc":"2.0","id":1,"result":"');
  const pump = () => {
    while (!res.destroyed && res.write(chunk)) {}
    if (!res.destroyed) res.once('drain', pump);
  };
  res.on('close', () => res.removeAllListeners('drain'));
  pump();
}

const reasonOf = (err: unknown) => (err as RpcClientError).reason;

test('an answer without end is given up past maxAnswerBytes, long before the timeout', async () => {
  let bytesSent = 0;
  const chunk = Buffer.alloc(64 * 1024, 'a');
  const url = await hostileNode((res) => {
    const write = res.write.bind(res);
    res.write = ((c: Buffer | string, ...rest: never[]) => {
      bytesSent += Buffer.byteLength(c);
      return write(c, ...rest);
    }) as typeof res.write;
    endless(res, chunk);
  });
  const client = new UncClient(url, { timeoutMs: 20_000, maxAnswerBytes: 1024 * 1024 });
  const started = Date.now();
  const err = await client.call('unc_status').catch((e) => e);
  assert.ok(err instanceof RpcClientError, String(err));
  assert.equal(reasonOf(err), 'ANSWER_TOO_LARGE', err.message);
  assert.ok(Date.now() - started < 10_000, 'gave up at the limit, not at the timeout');
  // The stream was cancelled: the node could not push much past the limit (socket buffers aside).
  await new Promise((r) => setTimeout(r, 200));
  assert.ok(bytesSent < 64 * 1024 * 1024, `the node pushed ${bytesSent} bytes`);
});

test('a declared length over the limit is refused before its body is read', async () => {
  const url = await hostileNode((res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(2 ** 30) });
    res.write('{"jsonrpc":"2.0","id":1,"result":');
  });
  const client = new UncClient(url, { timeoutMs: 5_000 });
  const err = await client.call('unc_status').catch((e) => e);
  assert.equal(reasonOf(err), 'ANSWER_TOO_LARGE', String(err));
  assert.match(err.message, new RegExp(String(DEFAULT_MAX_ANSWER_BYTES)));
});

test('the default limit holds: an answer one byte over DEFAULT_MAX_ANSWER_BYTES is refused', async () => {
  const url = await hostileNode((res) => endless(res, Buffer.alloc(1024 * 1024, 'b')));
  const client = new UncClient(url, { timeoutMs: 20_000 });
  const err = await client.call('unc_status').catch((e) => e);
  assert.equal(reasonOf(err), 'ANSWER_TOO_LARGE', String(err));
});

test('a body trickled past the timeout is a cut-off answer, not a wait without end', async () => {
  const url = await hostileNode((res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"jsonrpc":"2.0","id":1,"result":"');
    const timer = setInterval(() => res.write('x'), 50);
    res.on('close', () => clearInterval(timer));
  });
  const client = new UncClient(url, { timeoutMs: 500 });
  const started = Date.now();
  const err = await client.call('unc_status').catch((e) => e);
  assert.ok(err instanceof NodeUnreachableError, String(err));
  assert.match(err.message, /cut off/);
  assert.ok(Date.now() - started < 5_000);
});

test('an answer that is JSON but not an object is a clear error, not a TypeError', async () => {
  for (const body of ['null', '7', '"x"']) {
    const url = await hostileNode((res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(body);
    });
    const err = await new UncClient(url).call('unc_status').catch((e) => e);
    assert.ok(err instanceof RpcClientError, `${body}: ${err}`);
    assert.match(err.message, /no JSON-RPC body/);
  }
});

/** A node that sends one 2 MiB notification: the client, bound to 1 MiB, must close the socket unread. */
async function oversizedNotification(subscriptions: HubOptions): Promise<void> {
  const { WebSocketServer } = await import('ws');
  const http = createServer((_req, res) => res.writeHead(404).end());
  const wss = new WebSocketServer({ server: http });
  const closed = new Promise<number>((resolve) => {
    wss.on('connection', (socket) => {
      socket.on('close', (code) => resolve(code));
      socket.on('message', (data) => {
        const { id } = JSON.parse(String(data)) as { id: number };
        socket.send(JSON.stringify({ jsonrpc: '2.0', id, result: 'sub-1' }));
        // Two MiB of one notification: over the client's bound of one.
        const result = 'x'.repeat(2 * 1024 * 1024);
        socket.send(
          JSON.stringify({
            jsonrpc: '2.0',
            method: 'unc_subscription',
            params: { subscription: 'sub-1', result },
          }),
        );
      });
    });
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  const client = new UncClient(url, {
    maxAnswerBytes: 1024 * 1024,
    subscriptions,
  });
  let delivered = 0;
  try {
    await client.subscribe('pending', {}, () => delivered++);
    const code = await Promise.race([
      closed,
      new Promise<string>((r) => setTimeout(() => r('not closed in 5 s'), 5_000)),
    ]);
    assert.equal(code, 1009, 'the socket closed as "message too big"');
    assert.equal(delivered, 0, 'the oversized message was delivered');
  } finally {
    client.close();
    for (const s of wss.clients) s.terminate();
    await new Promise((r) => wss.close(r));
    await new Promise((r) => http.close(r));
  }
}

test('a subscription message over maxAnswerBytes closes the socket unread (ws maxPayload)', () =>
  oversizedNotification({ mode: 'websocket', maxSocketFailures: 1 }));

test('subscription options that leave maxMessageBytes unset (undefined) keep the client’s bound', () =>
  // A wrapper passing its own optional setting on (`maxMessageBytes: opts.cap`) must not lift the
  // bound to the ws package's 100 MiB by spreading an undefined over the client's maxAnswerBytes.
  oversizedNotification({ mode: 'websocket', maxSocketFailures: 1, maxMessageBytes: undefined }));
