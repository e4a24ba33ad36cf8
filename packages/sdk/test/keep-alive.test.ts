/**
 * Kept-alive connections the server closed while this process was busy: the next request on one
 * fails before the server read a byte, and the client must send it again on a fresh connection
 * instead of failing the renter's job (seen as ECONNRESET under load).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { plainHttpAgent, RequestTimeoutError, sendRequest } from '../src/tls.js';

/**
 * A minimal HTTP/1.1 server in another process: it answers each request with the count so far,
 * keeps the connection (no keep-alive hint, as a proxy in front of a provider may send none) and
 * closes it after 200 ms idle.
 */
async function startServer(): Promise<{ child: ChildProcess; url: URL }> {
  const child = spawn(
    process.execPath,
    [
      '-e',
      `let n = 0;
       const s = require('node:net').createServer((sock) => {
         let buf = '';
         let idle = setTimeout(() => sock.destroy(), 200);
         sock.on('data', (d) => {
           buf += d.toString('latin1');
           const end = buf.indexOf('\\r\\n\\r\\n');
           if (end < 0) return;
           const len = Number(/content-length: *(\\d+)/i.exec(buf.slice(0, end))?.[1] ?? 0);
           if (buf.length < end + 4 + len) return;
           buf = buf.slice(end + 4 + len);
           const body = String(++n);
           sock.write('HTTP/1.1 200 OK\\r\\ncontent-length: ' + body.length + '\\r\\n\\r\\n' + body);
           clearTimeout(idle);
           idle = setTimeout(() => sock.destroy(), 200);
         });
         sock.on('error', () => {});
       });
       s.listen(0, '127.0.0.1', () => console.log(s.address().port));`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const [line] = (await once(child.stdout!, 'data')) as [Buffer];
  return { child, url: new URL(`http://127.0.0.1:${line.toString().trim()}/`) };
}

/**
 * A server that answers its first request, reads the second whole and drops its connection
 * without an answer (as a provider that stops while serving it), and refuses bytes it has seen
 * before as a replay, as a provider's nonce check does.
 */
async function startDroppingServer(): Promise<{ child: ChildProcess; url: URL }> {
  const child = spawn(
    process.execPath,
    [
      '-e',
      `let n = 0;
       const seen = new Set();
       const s = require('node:net').createServer((sock) => {
         let buf = '';
         sock.on('data', (d) => {
           buf += d.toString('latin1');
           const end = buf.indexOf('\\r\\n\\r\\n');
           if (end < 0) return;
           const len = Number(/content-length: *(\\d+)/i.exec(buf.slice(0, end))?.[1] ?? 0);
           if (buf.length < end + 4 + len) return;
           const body = buf.slice(end + 4, end + 4 + len);
           buf = buf.slice(end + 4 + len);
           const answer = (status, text) =>
             sock.write('HTTP/1.1 ' + status + '\\r\\ncontent-length: ' + text.length + '\\r\\n\\r\\n' + text);
           if (seen.has(body)) return answer('409 Conflict', '{"error":{"code":"AUTH_REPLAY","message":"replay"}}');
           seen.add(body);
           if (++n === 2) return setTimeout(() => sock.destroy(), 50);
           answer('200 OK', String(n));
         });
         sock.on('error', () => {});
       });
       s.listen(0, '127.0.0.1', () => console.log(s.address().port));`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const [line] = (await once(child.stdout!, 'data')) as [Buffer];
  return { child, url: new URL(`http://127.0.0.1:${line.toString().trim()}/`) };
}

const busy = (ms: number) => {
  const until = Date.now() + ms;
  while (Date.now() < until);
};

describe('keep-alive', () => {
  test('a request on a connection the server closed meanwhile is sent again, once, and answered', async () => {
    const { child, url } = await startServer();
    const agent = plainHttpAgent();
    try {
      const req = { method: 'POST', headers: {}, body: new Uint8Array([1, 2, 3]), agent, timeoutMs: 10_000 };
      assert.equal((await sendRequest(url, req)).body.toString(), '1');
      // The server closes the idle connection while this process is too busy to notice.
      busy(800);
      const again = await sendRequest(url, req);
      assert.equal(again.status, 200);
      // Answered exactly once more: the failed attempt never reached the server's handler.
      assert.equal(again.body.toString(), '2');
    } finally {
      agent.destroy();
      child.kill('SIGKILL');
    }
  });

  test('a request whose connection broke after the server read it fails as unanswered, not as a replay', async () => {
    const { child, url } = await startDroppingServer();
    const agent = plainHttpAgent();
    try {
      const req = (b: number) => ({
        method: 'POST',
        headers: {},
        body: new Uint8Array([b]),
        agent,
        timeoutMs: 10_000,
      });
      assert.equal((await sendRequest(url, req(1))).body.toString(), '1');
      // The server has the request, then drops the connection: the re-sent bytes are a replay to
      // it. The caller is told its request got no answer (it was answered 409 AUTH_REPLAY).
      await assert.rejects(
        sendRequest(url, req(2)),
        (e: Error & { code?: string }) => e.code === 'ECONNRESET',
      );
    } finally {
      agent.destroy();
      child.kill('SIGKILL');
    }
  });

  test('a request is dropped at its time limit, also when the answer stalls after its headers', async () => {
    // One server that never answers, one that sends its headers and part of the body, then stalls.
    const server = createServer((req, res) => {
      req.resume();
      if (req.url === '/part') {
        res.writeHead(200, { 'content-length': '100' });
        res.write('partial');
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    const agent = plainHttpAgent();
    try {
      for (const path of ['/never', '/part']) {
        const started = performance.now();
        await assert.rejects(
          sendRequest(new URL(`http://127.0.0.1:${port}${path}`), {
            method: 'GET',
            headers: {},
            agent,
            timeoutMs: 300,
          }),
          (e: Error) => e instanceof RequestTimeoutError && (e as RequestTimeoutError).code === 'TIMEOUT',
        );
        // Not before its limit (the timer is the request's, not the socket's idle time).
        assert.ok(performance.now() - started >= 290, path);
      }
    } finally {
      agent.destroy();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
