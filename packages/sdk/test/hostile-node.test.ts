/**
 * A node the client does not run answers what it likes: a body without end, a declared gigabyte,
 * a body trickled past the timeout, or `null`. The client must give up with a clear error, within
 * its bounds, never holding the answer whole first.
 */
import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { after, test } from 'node:test';
import { DEFAULT_MAX_ANSWER_BYTES, NodeUnreachableError, RpcClientError, UncClient } from '../src/index.js';

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
