/**
 * A deliberately tiny structured logger. The node runs as a long-lived daemon whose output is read
 * both by people (text lines) and by log shippers (JSON lines, UNC_LOG_FORMAT=json), so every entry
 * is a message plus flat key/value fields rather than free-form interpolated text.
 */

import { Writable } from 'node:stream';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;

export interface Logger {
  readonly component: string;
  readonly level: LogLevel;
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger for a sub-component (`parent.child`) sharing this one's level, format and stream. */
  child(component: string): Logger;
}

export interface LoggerOptions {
  level?: LogLevel;
  json?: boolean;
  stream?: NodeJS.WritableStream;
  /** Injectable so tests can pin timestamps. */
  clock?: () => Date;
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

function isLevel(value: unknown): value is LogLevel {
  return typeof value === 'string' && Object.hasOwn(RANK, value);
}

function envLevel(): LogLevel {
  const raw = process.env.UNC_LOG_LEVEL?.trim().toLowerCase();
  return isLevel(raw) ? raw : 'info';
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

function errorFields(err: Error): Record<string, unknown> {
  const out: Record<string, unknown> = { name: err.name, message: err.message };
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' || typeof code === 'number') out.code = code;
  if (err.stack) out.stack = err.stack;
  return out;
}

/** JSON.stringify replacer: bigint and bytes would otherwise throw or print as `{"0":…}`. */
function replacer(this: unknown, key: string, value: unknown): unknown {
  // Buffer#toJSON has already run by the time the replacer sees `value`, so look at the raw one.
  const raw = (this as Record<string, unknown>)[key];
  if (raw instanceof Uint8Array) return hex(raw);
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Error) return errorFields(value);
  if (value instanceof Map) return Object.fromEntries(value);
  if (value instanceof Set) return [...value];
  return value;
}

const UNSERIALISABLE = '"[unserialisable]"';

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value, replacer) ?? String(value);
  } catch {
    // Circular structures must never take the process down through a log call.
    return UNSERIALISABLE;
  }
}

function textValue(value: unknown): string {
  let s: string;
  if (typeof value === 'string') s = value;
  else if (typeof value === 'bigint' || typeof value === 'number' || typeof value === 'boolean') {
    return String(value);
  } else if (value === null || value === undefined) return String(value);
  else if (value instanceof Uint8Array) return hex(value);
  else if (value instanceof Error) s = `${value.name}: ${value.message}`;
  else {
    const json = safeJson(value);
    s = json === UNSERIALISABLE ? '[unserialisable]' : json;
  }
  // Quote only when needed so that common values stay grep-friendly (`height=42 peer=abc`).
  return /^[^\s"=\\]+$/.test(s) ? s : JSON.stringify(s);
}

interface Sink {
  threshold: number;
  json: boolean;
  stream: NodeJS.WritableStream;
  clock: () => Date;
}

function write(sink: Sink, level: LogLevel, component: string, msg: string, fields?: LogFields): void {
  if (RANK[level] < sink.threshold) return;
  const time = sink.clock().toISOString();
  let line: string;
  if (sink.json) {
    const entry: Record<string, unknown> = { time, level, component, msg };
    for (const [k, v] of Object.entries(fields ?? {})) {
      // The fixed keys win so that a stray `level` field cannot disguise an entry's severity;
      // a field that cannot be serialised is replaced rather than losing the whole entry.
      if (!(k in entry)) entry[k] = safeJson(v) === UNSERIALISABLE ? '[unserialisable]' : v;
    }
    line = `${safeJson(entry)}\n`;
  } else {
    const parts = [time, level.toUpperCase().padEnd(5), `[${component}]`, msg];
    const stacks: string[] = [];
    for (const [k, v] of Object.entries(fields ?? {})) {
      if (v === undefined) continue;
      parts.push(`${k}=${textValue(v)}`);
      if (v instanceof Error && v.stack) stacks.push(v.stack);
    }
    line = parts.join(' ');
    for (const stack of stacks) line += `\n  ${stack.replace(/\n/g, '\n  ')}`;
    line += '\n';
  }
  try {
    sink.stream.write(line);
  } catch {
    // A closed stdout/stderr (e.g. a vanished pipe) must not crash the node.
  }
}

function make(sink: Sink, level: LogLevel, component: string): Logger {
  return {
    component,
    level,
    debug: (msg, fields) => write(sink, 'debug', component, msg, fields),
    info: (msg, fields) => write(sink, 'info', component, msg, fields),
    warn: (msg, fields) => write(sink, 'warn', component, msg, fields),
    error: (msg, fields) => write(sink, 'error', component, msg, fields),
    child: (sub) => make(sink, level, `${component}.${sub}`),
  };
}

export function createLogger(component: string, opts: LoggerOptions = {}): Logger {
  const level = opts.level ?? envLevel();
  const sink: Sink = {
    threshold: RANK[level],
    json: opts.json ?? process.env.UNC_LOG_FORMAT?.trim().toLowerCase() === 'json',
    // stderr keeps stdout free for command output that other programs may parse.
    stream: opts.stream ?? process.stderr,
    clock: opts.clock ?? (() => new Date()),
  };
  return make(sink, level, component);
}

/** A logger that drops everything, for tests and embedders that bring their own. */
export const silentLogger: Logger = createLogger('silent', {
  level: 'error',
  stream: new Writable({ write: (_chunk, _enc, done) => done() }),
});
