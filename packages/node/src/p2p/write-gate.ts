/**
 * Large answers (a `/blocks/1` block's frame, up to 9 MiB) written a piece at a time, each piece
 * handed to its stream only once the stream has passed on the one before and the connection's own
 * write buffers hold little (PROTOCOL.md §7, docs/consensus.md "A `/blocks/1` server bounds").
 *
 * Why: a yamux stream sends as much of its write buffer as its send window allows, and the window
 * is what the peer's muxer granted, up to 4 GiB: nothing on the sending side bounds it. What the
 * window lets through goes down to the connection at once (the Noise layer's write buffer, the TCP
 * layer's, node's socket buffer), whether or not the socket drains. So a peer that granted a huge
 * window and never read its TCP socket had each stream's block, whole, in this node's memory
 * (measured: 12 MiB of two 8 MiB blocks on one connection, what the kernel did not take), where
 * no read slot counts it, and left there after the answer ended, as long as the connection lived.
 * Written here in `WRITE_CHUNK_BYTES` pieces, each only once the connection holds at most
 * `MAX_CONNECTION_BACKLOG_BYTES` in user space, a connection so holds at most about
 * `MAX_CONNECTION_BACKLOG_BYTES` plus a piece per stream of these answers, whatever the window.
 *
 * The connection's buffers are libp2p internals (its TCP `maConn` with the socket, the muxer's
 * `maConn`, the Noise layer): `connectionBacklog` finds them, or returns null (a transport without
 * them), and a test over real connections (test/blocks-serve-buffer.test.ts) fails if an upgrade
 * moves them.
 */
import type { Connection, Stream } from '@libp2p/interface';
import * as lp from 'it-length-prefixed';

/**
 * The piece handed to a stream at a time: with its yamux header (12 bytes), one whole Noise
 * message (at most 65,519 bytes of plaintext), not one and a sliver (64 KiB pieces were two
 * messages each, the second of 29 bytes). Small enough that the pieces of a connection's few
 * answer streams are a small amount, large enough that an honest reader's 9 MiB block is about
 * 150 hand-offs, not a per-byte cost.
 */
export const WRITE_CHUNK_BYTES = 65_519 - 12;

/**
 * What a connection may hold in user space (socket, TCP and Noise write buffers) before another
 * piece is handed to one of its streams. The kernel's send buffer (up to 4 MiB by default on
 * Linux) keeps an honest reader's link busy meanwhile: the socket drains into it.
 */
export const MAX_CONNECTION_BACKLOG_BYTES = 256 * 1024;

/**
 * How long a writer waits for the connection's next 'drain' before it looks again anyway: a
 * safety net only (a backlog above the socket's own bound always ends in a 'drain').
 */
const BACKLOG_RECHECK_MS = 1_000;

export interface ConnectionBacklog {
  /** Bytes written to the connection and not yet handed to the kernel. */
  bytes(): number;
  /** What dispatches 'drain' (as its socket drains) and 'close'. */
  readonly events: EventTarget;
}

interface MessageStreamInternals extends EventTarget {
  writeBufferLength: number;
}

interface ConnectionInternals {
  maConn?: MessageStreamInternals & { socket?: { writableLength?: number } };
  muxer?: { maConn?: MessageStreamInternals };
}

function isMessageStream(x: unknown): x is MessageStreamInternals {
  const s = x as MessageStreamInternals | undefined;
  return typeof s?.writeBufferLength === 'number' && typeof s.addEventListener === 'function';
}

/** The user-space write buffers of a libp2p connection (libp2p 3.x internals), or null. */
export function connectionBacklog(connection: Connection): ConnectionBacklog | null {
  const c = connection as unknown as ConnectionInternals;
  const raw = c.maConn;
  if (!isMessageStream(raw)) return null;
  const encrypted = c.muxer?.maConn;
  const layers = isMessageStream(encrypted) && encrypted !== raw ? [raw, encrypted] : [raw];
  return {
    bytes: () => {
      let n = raw.socket?.writableLength ?? 0;
      for (const l of layers) n += l.writeBufferLength;
      return n;
    },
    events: raw,
  };
}

/**
 * Everything a connection holds in user space for its peer to read: its socket, TCP and Noise
 * write buffers (`connectionBacklog`; none counted where they are not visible) and every stream's
 * own write buffer (gossipsub's outbound stream, direct sends, answers).
 */
export function connectionWriteBytes(connection: Connection): number {
  let n = connectionBacklog(connection)?.bytes() ?? 0;
  for (const s of connection.streams) n += s.writeBufferLength;
  return n;
}

function streamGone(stream: Stream): boolean {
  return stream.status === 'aborted' || stream.status === 'reset' || stream.status === 'closed';
}

/**
 * Resolves once all that was written to `stream` has left its write buffer for the muxer; rejects
 * if the stream closes (an abort, a reset) or `signal` aborts first. A 'drain' says only that the
 * muxer can take more: a peer whose muxer granted its stream window a few bytes at a time raised
 * one per grant, the frame still queued nearly whole, and its server queued block after block
 * (yamux bounds no write buffer), each charged to the overall serve window as sent, for a few
 * bytes received of each.
 */
export async function written(stream: Stream, signal: AbortSignal): Promise<void> {
  while (stream.writeBufferLength > 0) {
    signal.throwIfAborted();
    await new Promise<void>((resolve, reject) => {
      const settle = (err?: unknown) => {
        stream.removeEventListener('idle', onIdle);
        stream.removeEventListener('close', onClose);
        signal.removeEventListener('abort', onAbort);
        if (err === undefined) resolve();
        else reject(err);
      };
      const onIdle = () => settle();
      const onClose = (evt: Event) =>
        settle((evt as Event & { error?: Error }).error ?? new Error('stream closed'));
      const onAbort = () => settle(signal.reason ?? new Error('aborted'));
      stream.addEventListener('idle', onIdle);
      stream.addEventListener('close', onClose);
      signal.addEventListener('abort', onAbort);
    });
  }
  // An abort empties the write buffer unsent ('idle' then 'close'): nothing was written.
  if (stream.status === 'aborted' || stream.status === 'reset') throw new Error(`stream ${stream.status}`);
}

/**
 * Resolves once the connection holds at most `max` bytes in user space; rejects if `stream`
 * closes (its answer was taken over or cancelled: the block it holds must go now, not at the
 * deadline) or `signal` aborts first.
 */
async function roomOnConnection(
  stream: Stream,
  backlog: ConnectionBacklog,
  max: number,
  signal: AbortSignal,
): Promise<void> {
  while (backlog.bytes() > max) {
    signal.throwIfAborted();
    if (streamGone(stream)) throw new Error(`stream ${stream.status}`);
    await new Promise<void>((resolve, reject) => {
      const settle = (err?: unknown) => {
        clearTimeout(timer);
        backlog.events.removeEventListener('drain', onWake);
        backlog.events.removeEventListener('close', onWake);
        stream.removeEventListener('close', onWake);
        signal.removeEventListener('abort', onAbort);
        if (err === undefined) resolve();
        else reject(err);
      };
      const onWake = () => settle();
      const onAbort = () => settle(signal.reason ?? new Error('aborted'));
      const timer = setTimeout(onWake, BACKLOG_RECHECK_MS);
      backlog.events.addEventListener('drain', onWake);
      backlog.events.addEventListener('close', onWake);
      stream.addEventListener('close', onWake);
      signal.addEventListener('abort', onAbort);
    });
    // The layers below pass on what the drain made room for in microtasks of their own.
    await new Promise((r) => setImmediate(r));
  }
  if (streamGone(stream)) throw new Error(`stream ${stream.status}`);
}

export interface ChunkedWriteOptions {
  /** The connection's buffers (`connectionBacklog`); null: pieces gated on the stream alone. */
  backlog: ConnectionBacklog | null;
  signal: AbortSignal;
  /** Called with each piece's size as it is handed to the stream. */
  onQueued?: (bytes: number) => void;
  chunkBytes?: number;
  maxBacklogBytes?: number;
}

/**
 * Writes `data`, length-prefixed, to `stream` in pieces: each once the stream's write buffer is
 * empty (the piece before it passed on) and the connection holds at most `maxBacklogBytes`;
 * resolves once the last piece has left the stream's buffer. The stream then never holds more than
 * a piece, and the connection gains at most a piece per writer over its bound, whatever window the
 * peer granted.
 */
export async function writeFrameInChunks(
  stream: Stream,
  data: Uint8Array,
  opts: ChunkedWriteOptions,
): Promise<void> {
  const frame = lp.encode.single(data, { maxDataLength: data.byteLength });
  const chunk = opts.chunkBytes ?? WRITE_CHUNK_BYTES;
  const max = opts.maxBacklogBytes ?? MAX_CONNECTION_BACKLOG_BYTES;
  for (let at = 0; at < frame.byteLength; ) {
    await written(stream, opts.signal);
    if (opts.backlog) await roomOnConnection(stream, opts.backlog, max, opts.signal);
    const end = Math.min(at + chunk, frame.byteLength);
    // A copy, not a view: the layers below keep what they hold until the connection drains or
    // closes, after the answer and its read slot are gone, and a view of a few bytes keeps its
    // whole block (up to 9 MiB) in memory. (`subarray` copies only a piece across the prefix.)
    const piece = frame.subarray(at, end);
    // Whether the muxer took it all or not, the next round waits for it (`written`, the backlog).
    stream.send(piece.buffer === data.buffer ? piece.slice() : piece);
    opts.onQueued?.(end - at);
    at = end;
  }
  await written(stream, opts.signal);
}

/** A connection's unread bytes at this look and at the one before (0 if it was not there then). */
export interface UnreadHolding<C> {
  connection: C;
  bytes: number;
  before: number;
}

/**
 * Which connections to close, in order, while all together hold more than `maxTotal` for their
 * peers to read: those holding the most steadily first, the least of what each held at this look
 * and the one before, then the most held now. Ranked by what each holds now alone, a peer with
 * many connections each kept just under an honest one's burst (an honest peer mid-way through a
 * large proposal on a slow link) had the honest one closed at every look while its own stayed,
 * pinning the total. Held across two looks, a byte is one its peer did not read for a whole
 * interval; an honest reader's drain within one, so to rank above it a peer must hold what it
 * does not read, and is closed first. O(n log n) in the connections, once per look.
 */
export function unreadToClose<C>(holding: readonly UnreadHolding<C>[], maxTotal: number): C[] {
  let total = 0;
  for (const h of holding) total += h.bytes;
  if (total <= maxTotal) return [];
  const ranked = [...holding].sort(
    (a, b) => Math.min(b.bytes, b.before) - Math.min(a.bytes, a.before) || b.bytes - a.bytes,
  );
  const out: C[] = [];
  for (const h of ranked) {
    if (total <= maxTotal) break;
    out.push(h.connection);
    total -= h.bytes;
  }
  return out;
}
