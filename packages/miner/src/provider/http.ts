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

/**
 * How slowly a request body may arrive. The provider books a body's bytes against its upload caps
 * (server.ts) as they arrive; a body that came in part and then stalled would keep its booking
 * (and its connection) until the request timeout. A body that falls behind this pace is refused
 * (408) and its booking freed. (Booked at the declared length before the first byte, two leases
 * declaring 256 + 64 MiB and sending nothing held the whole cap; the pace alone freed it for one
 * round trip every grace period, so nothing is booked before bytes come.)
 */
export interface UploadPace {
  /** Time a body has from its headers before it must keep up with minBytesPerSecond. */
  graceMs: number;
  /** Average rate a body must keep up, measured from its headers (after graceMs). */
  minBytesPerSecond: number;
  /** Longest gap between two chunks of a body (the first included). */
  idleMs: number;
}

/**
 * 1 MiB/s after 10 s: the largest model (256 MiB) then has 266 s, inside the 300 s request
 * timeout that bounded it before; a body that stops for 10 s is dropped.
 */
export const DEFAULT_UPLOAD_PACE: UploadPace = {
  graceMs: 10_000,
  minBytesPerSecond: 1024 * 1024,
  idleMs: 10_000,
};

/**
 * The instant by which a body that began at `began` and has `received` bytes, the last of them at
 * `lastAt`, must have sent more; at or past it the body is too slow.
 */
export function uploadDeadline(pace: UploadPace, began: number, received: number, lastAt: number): number {
  return Math.min(began + pace.graceMs + (received * 1000) / pace.minBytesPerSecond, lastAt + pace.idleMs);
}

/** Checks a pace's values; throws a clear error for a value that is not a positive number. */
export function checkUploadPace(pace: UploadPace): UploadPace {
  for (const [k, v] of Object.entries(pace))
    if (!(typeof v === 'number' && v > 0 && Number.isFinite(v)))
      throw new Error(`upload pace ${k} must be a positive number, not ${v}`);
  // Both bound the delay of watchUploadPace's timer, which Node runs after 1 ms past 2^31 - 1 ms.
  for (const k of ['graceMs', 'idleMs'] as const)
    if (pace[k] > 2 ** 31 - 1)
      throw new Error(
        `upload pace ${k} must be at most ${2 ** 31 - 1} ms (a timer's longest delay), not ${pace[k]}`,
      );
  return pace;
}

/**
 * Watches one body against a pace: `onTooSlow` is called once when it falls behind. One timer,
 * armed for the deadline and re-armed from there when the body got further meanwhile: nothing
 * per chunk but a clock read.
 */
export function watchUploadPace(
  pace: UploadPace,
  onTooSlow: () => void,
  now: () => number = Date.now,
): { received(total: number): void; stop(): void } {
  const began = now();
  let received = 0;
  let lastAt = began;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const check = () => {
    timer = undefined;
    const t = now();
    const due = uploadDeadline(pace, began, received, lastAt);
    if (t >= due) return onTooSlow();
    timer = setTimeout(check, Math.ceil(due - t));
    timer.unref?.();
  };
  check();
  return {
    received(total: number) {
      received = total;
      lastAt = now();
    },
    stop() {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
    },
  };
}
