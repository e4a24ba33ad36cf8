/**
 * Where the provider's server is bound, with the timeouts every transport (plain HTTP or TLS) gets.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';

export interface ListenOptions {
  host: string;
  port: number;
}

/** Creates a plain HTTP server, listens, and returns it with its base URL. */
export async function listenHttp(
  opts: ListenOptions,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  return { server, url: await listenOn(server, opts, 'http') };
}

/** Binds a server made elsewhere (an https one) with the same timeouts; returns its base URL. */
export async function listenOn(
  server: Server | HttpsServer,
  opts: ListenOptions,
  scheme: 'http' | 'https',
): Promise<string> {
  // Slow clients cannot hold a request open for ever (uploads of the largest models included).
  server.headersTimeout = 20_000;
  server.requestTimeout = 300_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const a = server.address() as AddressInfo;
  const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
  return `${scheme}://${host}:${a.port}`;
}
