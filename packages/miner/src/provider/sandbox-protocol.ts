/**
 * What the provider and its job processes (sandbox-runner.ts) say to each other, and the rules
 * for what of an error may reach a renter. Kept apart from the runner, which is a process entry
 * point (importing it would install its IPC handlers).
 */
import type { RawTensor } from '@unc/sdk';
import type { OcrModelFiles } from './ocr.js';
import type { ExecutionProviderName, OrtThreadOptions } from './onnx.js';
import type { JobProcessStamps } from './stages.js';

/** An error whose message is ours and safe to show a renter (no paths, no runtime internals). */
export class PublicJobError extends Error {
  constructor(
    readonly code: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'PublicJobError';
  }
}

export type SandboxRequest =
  | {
      id: number;
      op: 'init';
      executionProvider: ExecutionProviderName;
      ocr: OcrModelFiles;
      maxSessions: number;
      threads: OrtThreadOptions;
      /** Output bytes one run may return; more fails the job here, before anything is sent. */
      maxOutputBytes: number;
      /** The provider's limits on log messages: the job process keeps within them (clippedLog). */
      logLimits: LogLimits;
    }
  /**
   * A model is named by its hash and sent as its bytes (`model`) when this process may not hold its
   * session: the process never opens a model file (the model store is not in its sandbox, so it
   * cannot read another renter's model). Without `model` and without the session it answers
   * MODEL_NEEDED, and the provider sends the request again with the bytes.
   */
  | { id: number; op: 'check'; hash: string; model?: Uint8Array }
  | { id: number; op: 'run'; hash: string; model?: Uint8Array; inputs: RawTensor[] }
  | { id: number; op: 'ocr'; image: Uint8Array }
  /** Releases the cached model sessions (the OCR pipeline stays) and collects garbage. */
  | { id: number; op: 'drop' }
  /**
   * Several runs of one model, one after the other; each answers with a 'part' as it ends. No job
   * after the first starts once `budgetMs` have passed since the first began: the ones left are
   * not answered and go back to the provider's queue.
   */
  | {
      id: number;
      op: 'runMany';
      hash: string;
      model?: Uint8Array;
      inputs: RawTensor[][];
      budgetMs?: number;
    }
  | { id: number; op: 'ocrMany'; images: Uint8Array[]; budgetMs?: number };

/** A request before the sandbox gives it an id. */
export type SandboxCall = {
  [K in SandboxRequest['op']]: Omit<Extract<SandboxRequest, { op: K }>, 'id'>;
}[SandboxRequest['op']];

/** The outcome of one job of a runMany or ocrMany request. */
export type SandboxPart =
  | { op: 'part'; id: number; index: number; durationMs: number; ok: true; result: unknown }
  | {
      op: 'part';
      id: number;
      index: number;
      durationMs: number;
      ok: false;
      code: string;
      error: string;
      detail: string;
    };

export type SandboxReply =
  /** `at`: when the request arrived and its work ended, on the machine's monotonic clock (stages.ts). */
  | { id: number; ok: true; result?: unknown; at?: JobProcessStamps }
  | { id: number; ok: false; code: string; error: string; detail: string }
  | SandboxPart
  | { op: 'log'; level: 'debug' | 'info' | 'warn' | 'error'; msg: string; fields?: Record<string, unknown> };

const ANSI = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g');

/** Absolute paths and source locations out of a runtime message, first line only. */
export function redact(message: string): string {
  // At most 2,000 characters are looked at: the message may name parts of a model of any size.
  const line = (message.slice(0, 2000).split('\n')[0] ?? '').replace(ANSI, '');
  return (
    line
      .replace(/(?:[A-Za-z]:)?[/\\][^\s'"`:,;()[\]]*/g, '<path>')
      // "<path>:47 onnxruntime::Helper::Helper(const X&, bool) " — where in the runtime, not why.
      .replace(/<path>(?::\d+)?\s*(?:[\w~<>]+(?:::[\w~<>]+)+\([^)]*\)\s*)?/g, '')
      .slice(0, 400)
      .trim()
  );
}

/** What the provider takes of a job process's log messages; past any of these it kills the process. */
export interface LogLimits {
  /** UTF-8 bytes of one log message (its text and fields, logSize). */
  maxLogBytes: number;
  /** UTF-8 bytes of log messages during one request (a job, a group, a model load). */
  maxLogBytesPerJob: number;
  /** Log messages a second, on average… */
  maxLogsPerSecond: number;
  /** …and at once. */
  maxLogBurst: number;
}

/** Fields of a log message the provider takes: at most this many, each a string, number, boolean or null. */
export const MAX_LOG_FIELDS = 16;
/** Bytes of one log message the provider takes by default (sandbox.ts, MessageLimits.maxLogBytes). */
export const MAX_LOG_BYTES = 8 * 1024;

/** The provider's log limits unless told otherwise (sandbox.ts, SandboxOptions.messageLimits). */
export const DEFAULT_LOG_LIMITS: LogLimits = {
  maxLogBytes: MAX_LOG_BYTES,
  maxLogBytesPerJob: 64 * 1024,
  maxLogsPerSecond: 20,
  maxLogBurst: 50,
};

/** What a number, boolean or null field value counts for. */
const PLAIN_VALUE_BYTES = 8;

/**
 * The size of a log message as counted against the limits, in UTF-8 bytes: its text, field names
 * and values. Bytes, not characters: counted in UTF-16 code units, a text of 3-byte characters
 * (most CJK) passed at three times the limit in bytes and one of emoji at twice, and the
 * provider's limits are on what it buffers and writes to its log.
 */
export function logSize(m: { msg: string; fields?: Record<string, unknown> }): number {
  let n = Buffer.byteLength(m.msg, 'utf8');
  for (const [k, v] of Object.entries(m.fields ?? {}))
    n +=
      Buffer.byteLength(k, 'utf8') +
      (typeof v === 'string' ? Buffer.byteLength(v, 'utf8') : PLAIN_VALUE_BYTES);
  return n;
}

const ELLIPSIS = '…';
const ELLIPSIS_BYTES = Buffer.byteLength(ELLIPSIS, 'utf8');

/**
 * `s` cut to at most `max` UTF-8 bytes, an ellipsis included, on a character boundary: a cut inside
 * a character would leave a replacement character (3 bytes) that could carry it over the limit.
 */
export function clipUtf8(s: string, max: number): string {
  // Every UTF-16 code unit takes at least one byte: past `max` units the rest cannot fit anyway,
  // and a huge text is not encoded whole to be measured.
  const head = s.length > max ? s.slice(0, max + 1) : s;
  const bytes = Buffer.from(head, 'utf8');
  if (bytes.length <= max && head.length === s.length) return s;
  if (max < ELLIPSIS_BYTES) return '';
  let end = max - ELLIPSIS_BYTES;
  // Back to the first byte of a character (continuation bytes are 0b10xxxxxx).
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return `${bytes.subarray(0, end).toString('utf8')}${ELLIPSIS}`;
}

/** Bytes of a log message's text, field names and text values, as a job process cuts them. */
const MSG_BYTES = 1000;
const NAME_BYTES = 32;
const VALUE_BYTES = 400;

/**
 * A log message as a job process sends it. Runtime messages name parts of the renter's model (a
 * node name may be as long as the model), so the text is cut short here, and so are the fields,
 * to what the provider takes: 16 plain values, a 1,000-byte text, 32-byte names and 400-byte
 * values, 7,912 bytes at most of MAX_LOG_BYTES, counted as the provider counts them (logSize).
 * Cut at 1,000 characters each, a message with many long fields passed the provider's limit and
 * had an honest job process killed (JOB_FLOOD). A provider set to a lower limit (`maxBytes`, sent
 * in the job process's init) gets the fields that fit and the text cut to the rest.
 */
export function clippedLog(
  level: 'debug' | 'info' | 'warn' | 'error',
  msg: string,
  fields?: Record<string, unknown>,
  maxBytes = MAX_LOG_BYTES,
): Extract<SandboxReply, { op: 'log' }> {
  // Anything but a plain value is written out as text (the provider refuses other fields).
  let entries = fields
    ? Object.entries(fields)
        .slice(0, MAX_LOG_FIELDS)
        .map(([k, v]): [string, unknown] => [
          clipUtf8(k, NAME_BYTES),
          v === null || typeof v === 'number' || typeof v === 'boolean'
            ? v
            : clipUtf8(String(v), VALUE_BYTES),
        ])
    : undefined;
  let text = clipUtf8(msg, MSG_BYTES);
  const size = () => logSize({ msg: text, ...(entries ? { fields: Object.fromEntries(entries) } : {}) });
  // Within a lower limit: fields are dropped from the last, then the text is cut to what is left.
  while (entries && entries.length > 0 && size() > maxBytes) entries = entries.slice(0, -1);
  if (size() > maxBytes)
    text = clipUtf8(text, Math.max(0, maxBytes - (size() - Buffer.byteLength(text, 'utf8'))));
  // Names cut to the same text keep the last value, as an object would.
  return { op: 'log', level, msg: text, ...(entries ? { fields: Object.fromEntries(entries) } : {}) };
}

type LogReply = Extract<SandboxReply, { op: 'log' }>;

/**
 * What a job process lets out of its log messages: within the provider's limits, or nothing. Past
 * any of them the provider kills the process and fails its job, and a renter's model can make ONNX
 * Runtime warn about each of its nodes: each message is cut to the size limit (clippedLog), and
 * one that would pass the request's byte budget or the rate is dropped. The provider's bucket
 * fills by when messages arrive, and they may bunch up in its channel: this one runs at half its
 * rate and burst.
 */
export class LogGate {
  private limits: LogLimits = DEFAULT_LOG_LIMITS;
  /** Bytes let out during the current request (the provider counts them from its sending on). */
  private bytes = 0;
  /**
   * Bytes let out since the last answer (or since start): the provider may count them in the
   * request that was answered (they arrive before it sends the next) or in the next one (they
   * arrive after it sent it), so they count in both here.
   */
  private idleBytes = 0;
  private idle = true;
  private tokens: number;
  private at: number;

  constructor(private readonly now: () => number = () => performance.now()) {
    this.tokens = Math.floor(this.limits.maxLogBurst / 2);
    this.at = now();
  }

  /** The provider's limits (from its init message). */
  setLimits(limits: LogLimits): void {
    this.limits = limits;
    this.tokens = Math.min(this.tokens, Math.floor(limits.maxLogBurst / 2));
  }

  /** A request arrived: its log bytes count from those let out since the last answer. */
  newRequest(): void {
    this.bytes = this.idleBytes;
    this.idleBytes = 0;
    this.idle = false;
  }

  /** The current request was answered: what is logged until the next one counts in both. */
  answered(): void {
    this.idle = true;
    this.idleBytes = 0;
  }

  /** The message as it may be sent, or null when it must be dropped. */
  admit(level: LogReply['level'], msg: string, fields?: Record<string, unknown>): LogReply | null {
    const m = clippedLog(level, msg, fields, this.limits.maxLogBytes);
    const bytes = logSize(m);
    if (this.bytes + bytes > this.limits.maxLogBytesPerJob) return null;
    const now = this.now();
    const burst = Math.floor(this.limits.maxLogBurst / 2);
    this.tokens = Math.min(
      burst,
      this.tokens + ((now - this.at) / 1000) * (this.limits.maxLogsPerSecond / 2),
    );
    this.at = now;
    if (this.tokens < 1) return null;
    this.tokens -= 1;
    this.bytes += bytes;
    if (this.idle) this.idleBytes += bytes;
    return m;
  }
}
