/**
 * A stand-in node for tests of clients (the CLI, the gateway): a JSON-RPC server over HTTP on
 * loopback that answers each method from a table the test writes, so a test can show a client any
 * answer a hostile or broken node could give, and see what it sends.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Each method's answer from its positional parameters; one that throws is a JSON-RPC error (-32000). */
export type RpcAnswers = Record<string, (params: unknown[]) => unknown>;

export interface JsonRpcNode {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** Stops listening and ends its open sockets. */
  close(): Promise<void>;
}

/**
 * Starts a node that answers POSTed JSON-RPC requests from `answers` (read at each request, so a
 * test may change an answer between calls): an unknown method gets -32601, an answer that throws
 * -32000 with the error's text; anything but a POST gets 404.
 */
export async function startJsonRpcNode(answers: RpcAnswers): Promise<JsonRpcNode> {
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      if (req.method !== 'POST') return void res.writeHead(404).end();
      const { id, method, params } = JSON.parse(body) as { id: number; method: string; params: unknown[] };
      let reply: unknown;
      try {
        const answer = Object.hasOwn(answers, method) ? answers[method] : undefined;
        reply = answer
          ? { jsonrpc: '2.0', id, result: answer(params) }
          : { jsonrpc: '2.0', id, error: { code: -32601, message: `no ${method}` } };
      } catch (err) {
        reply = { jsonrpc: '2.0', id, error: { code: -32000, message: String(err) } };
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(reply));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
