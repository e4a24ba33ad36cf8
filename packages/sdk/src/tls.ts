/**
 * The renter's transport to a provider endpoint (PROTOCOL.md §8, docs/jobs.md "Transport
 * security"): TLS 1.3 pinned to the certificate fingerprints the offer lists on chain.
 *
 * Providers mostly run on bare IP addresses, where no public CA issues certificates; and a CA's
 * word would not say that this is the provider of this offer anyway. So no CA is consulted: the
 * SHA-256 of the DER certificate the endpoint presents must be one the chain lists for the offer.
 *
 * The check runs inside the agent's `createConnection`, which hands the socket to the HTTP client
 * only through its callback, after the handshake and the check: a request is never written to a
 * socket whose peer has not been checked, so an impostor receives the TLS handshake and nothing of
 * the job. Sockets are kept alive, so the handshake is paid once per connection, not per job.
 */
import { createHash } from 'node:crypto';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { isIP, type Socket } from 'node:net';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';

/** SHA-256 of a DER certificate, hex: the fingerprint an offer lists on chain. */
export function certificateFingerprint(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('hex');
}

/** The endpoint presented a certificate the chain does not list for the offer; nothing was sent. */
export class TlsFingerprintError extends Error {
  readonly code = 'TLS_FINGERPRINT_MISMATCH';
  constructor(
    readonly endpoint: string,
    readonly expected: readonly string[],
    readonly presented: string,
  ) {
    super(
      `the provider at ${endpoint} presented a TLS certificate with SHA-256 fingerprint ${presented}, ` +
        `but the chain lists ${expected.length > 0 ? expected.join(' or ') : 'no fingerprint'} for this offer: ` +
        'refused before sending anything (an impostor, or a certificate the provider has not posted)',
    );
    this.name = 'TlsFingerprintError';
  }
}

/** A plain-http endpoint outside a dev chain: the renter's data would travel in the clear. */
export class InsecureEndpointError extends Error {
  readonly code = 'INSECURE_ENDPOINT';
  constructor(endpoint: string) {
    super(
      `refusing the plain http:// provider endpoint ${endpoint}: inputs and outputs would travel in the clear; ` +
        'providers serve https:// with a certificate pinned on chain (plain http only on a dev chain)',
    );
    this.name = 'InsecureEndpointError';
  }
}

/** A client certificate (PEM) for mutual TLS; see `renterClientCertificate` in @unc/miner. */
export interface ClientCertificate {
  key: string | Buffer;
  cert: string | Buffer;
}

export interface PinnedAgentOptions {
  /** The endpoint, for error messages. */
  endpoint: string;
  /** Read at every new connection, so a refreshed list applies to the next one. */
  fingerprints: () => readonly string[];
  clientCertificate?: ClientCertificate;
  maxSockets?: number;
  /** Handshake deadline. */
  timeoutMs?: number;
}

type Done = (err: Error | null, socket?: Socket) => void;

/** A pinned agent; `dropUnlisted` closes idle connections whose certificate is no longer listed. */
export type PinnedHttpsAgent = HttpsAgent & { dropUnlisted(): void };

/** A keep-alive https.Agent whose connections are TLS 1.3 and pinned to `fingerprints()`. */
export function pinnedHttpsAgent(opts: PinnedAgentOptions): PinnedHttpsAgent {
  const agent = new HttpsAgent({ keepAlive: true, maxSockets: opts.maxSockets ?? 16 }) as PinnedHttpsAgent;
  // The fingerprint each connection was checked against. A connection is kept alive for reuse only
  // while its certificate is still listed: one the chain retired (say, a leaked key) is not reused.
  const checked = new WeakMap<Socket, string>();
  const listed = (socket: Socket) => {
    const fingerprint = checked.get(socket);
    return fingerprint !== undefined && opts.fingerprints().some((f) => f.toLowerCase() === fingerprint);
  };
  const keepSocketAlive = agent.keepSocketAlive.bind(agent);
  agent.keepSocketAlive = (socket: Socket) => listed(socket) && keepSocketAlive(socket);
  agent.dropUnlisted = () => {
    for (const sockets of Object.values(agent.freeSockets))
      for (const socket of sockets ?? []) if (!listed(socket)) socket.destroy();
  };
  const createConnection = (options: { host?: string; port?: number | string }, done: Done): undefined => {
    const host = options.host ?? 'localhost';
    const socket: TLSSocket = tlsConnect({
      host,
      port: Number(options.port ?? 443),
      ...(isIP(host) === 0 ? { servername: host } : {}),
      // No certificate authority decides; the chain's fingerprints do (checked below).
      rejectUnauthorized: false,
      minVersion: 'TLSv1.3',
      ALPNProtocols: ['http/1.1'],
      ...(opts.clientCertificate ?? {}),
    });
    let settled = false;
    const fail = (err: Error) => {
      socket.destroy();
      if (!settled) {
        settled = true;
        done(err);
      }
    };
    socket.setTimeout(opts.timeoutMs ?? 30_000, () =>
      fail(new Error(`TLS handshake with ${opts.endpoint} timed out`)),
    );
    socket.once('error', fail);
    socket.once('secureConnect', () => {
      const raw = socket.getPeerCertificate()?.raw;
      const presented = raw ? certificateFingerprint(raw) : '(no certificate)';
      const expected = opts.fingerprints().map((f) => f.toLowerCase());
      if (!expected.includes(presented))
        return fail(new TlsFingerprintError(opts.endpoint, expected, presented));
      socket.setTimeout(0);
      socket.removeListener('error', fail);
      settled = true;
      checked.set(socket, presented);
      // Only now does the HTTP client get the socket and write the request.
      done(null, socket);
    });
    return undefined;
  };
  (agent as unknown as { createConnection: typeof createConnection }).createConnection = createConnection;
  return agent;
}

/** A keep-alive agent for plain http (dev chains only). */
export function plainHttpAgent(maxSockets = 16): HttpAgent {
  return new HttpAgent({ keepAlive: true, maxSockets });
}

export interface SentRequest {
  method: string;
  headers: Record<string, string>;
  body?: Uint8Array;
  agent: HttpAgent | HttpsAgent;
  timeoutMs: number;
  /** The answer body is read up to this many bytes; past it the request is dropped (default: no limit). */
  maxResponseBytes?: number;
}

/** The answer was larger than the caller allows: nothing of it is kept. */
export class ResponseTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`the answer is over ${limit} bytes`);
    this.name = 'ResponseTooLargeError';
  }
}

/** One request over `agent`; resolves with the status and the whole answer body. */
export async function sendRequest(url: URL, req: SentRequest): Promise<{ status: number; body: Buffer }> {
  // A kept-alive connection the server closed while it sat idle (its keep-alive timeout, while
  // this process was busy and had not seen the close yet) fails the next request sent on it before
  // the server read a byte. The request is sent again on the next connection (each stale one is
  // destroyed by its error, so a fresh one comes at the latest after the pool's idle ones): the
  // same signed bytes, so the provider's replay check still lets it run at most once.
  let broken: Error | null = null;
  for (let attempt = 0; ; attempt++) {
    try {
      const res = await sendOnce(url, req);
      // A reset can also come after the server read the request (it stopped or crashed while
      // serving it): the re-sent bytes are then refused as a replay. What happened is the broken
      // connection, a request left without an answer (a dispute's case), not a replay by the caller.
      if (broken && res.status === 409 && isReplayAnswer(res.body)) throw broken;
      return res;
    } catch (err) {
      if (!(err instanceof StaleConnectionError)) throw err;
      if (attempt >= MAX_STALE_RETRIES) throw err.reason;
      broken = err.reason;
    }
  }
}

/** A provider's answer refusing a nonce it has seen (AUTH_REPLAY, docs/jobs.md). */
function isReplayAnswer(body: Buffer): boolean {
  try {
    return (
      (JSON.parse(body.toString('utf8')) as { error?: { code?: unknown } }).error?.code === 'AUTH_REPLAY'
    );
  } catch {
    return false;
  }
}

/** Idle connections a request may find closed in a row (the agents keep at most 16). */
const MAX_STALE_RETRIES = 17;

/** A request that failed on a reused idle connection before any answer came back. */
class StaleConnectionError extends Error {
  constructor(readonly reason: Error) {
    super(reason.message);
  }
}

/** No whole answer came within the request's time limit; the request was dropped. */
export class RequestTimeoutError extends Error {
  readonly code = 'TIMEOUT';
  constructor(readonly timeoutMs: number) {
    super(`no answer within ${timeoutMs} ms`);
    this.name = 'RequestTimeoutError';
  }
}

function sendOnce(url: URL, req: SentRequest): Promise<{ status: number; body: Buffer }> {
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((settleOk, settleErr) => {
    let answered = false;
    // The time limit of the whole request, answer included: one timer, cleared when it settles.
    // (An AbortSignal.timeout per request, with the listeners http.request hangs on it, cost the
    // renter about 0.1 ms of CPU per job, and its timer stayed queued for the whole limit.)
    const timer = setTimeout(() => r.destroy(new RequestTimeoutError(req.timeoutMs)), req.timeoutMs);
    timer.unref();
    const resolve = (v: { status: number; body: Buffer }) => {
      clearTimeout(timer);
      settleOk(v);
    };
    const reject = (err: Error) => {
      clearTimeout(timer);
      settleErr(err);
    };
    const r = send(
      url,
      {
        method: req.method,
        headers: {
          ...req.headers,
          ...(req.body ? { 'content-length': String(req.body.length) } : {}),
        },
        agent: req.agent,
      },
      (res: IncomingMessage) => {
        answered = true;
        const chunks: Buffer[] = [];
        let size = 0;
        const limit = req.maxResponseBytes ?? Number.POSITIVE_INFINITY;
        const declared = Number(res.headers['content-length'] ?? 0);
        if (declared > limit) {
          reject(new ResponseTooLargeError(limit));
          r.destroy();
          return;
        }
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > limit) {
            // Without a bound, whoever answers could fill this process's memory within the timeout.
            chunks.length = 0;
            reject(new ResponseTooLargeError(limit));
            r.destroy();
            return;
          }
          chunks.push(c);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    r.on('error', (err: Error & { code?: string }) => {
      const stale = r.reusedSocket && !answered && (err.code === 'ECONNRESET' || err.code === 'EPIPE');
      reject(stale ? new StaleConnectionError(err) : err);
    });
    r.end(req.body ? Buffer.from(req.body.buffer, req.body.byteOffset, req.body.length) : undefined);
  });
}
