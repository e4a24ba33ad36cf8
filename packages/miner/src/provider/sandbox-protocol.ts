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
    }
  | { id: number; op: 'check'; hash: string; path: string }
  | { id: number; op: 'run'; hash: string; path: string; inputs: RawTensor[] }
  | { id: number; op: 'ocr'; image: Uint8Array }
  /**
   * Several runs of one model, one after the other; each answers with a 'part' as it ends. No job
   * after the first starts once `budgetMs` have passed since the first began: the ones left are
   * not answered and go back to the provider's queue.
   */
  | { id: number; op: 'runMany'; hash: string; path: string; inputs: RawTensor[][]; budgetMs?: number }
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

/** Fields of a log message the provider takes: at most this many, each a string, number, boolean or null. */
export const MAX_LOG_FIELDS = 16;
/** Bytes of one log message the provider takes by default (sandbox.ts, MessageLimits.maxLogBytes). */
export const MAX_LOG_BYTES = 8 * 1024;

/** The size of a log message as counted against the limits: its text, field names and values. */
export function logSize(m: { msg: string; fields?: Record<string, unknown> }): number {
  let n = m.msg.length;
  for (const [k, v] of Object.entries(m.fields ?? {})) n += k.length + (typeof v === 'string' ? v.length : 8);
  return n;
}

const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n)}…` : s);

/**
 * A log message as a job process sends it. Runtime messages name parts of the renter's model (a
 * node name may be as long as the model), so the text is cut short here, and so are the fields,
 * to what the provider takes: 16 plain values, a 1,000-character text, 32-character names and
 * 400-character values, 7,945 at most of MAX_LOG_BYTES. Cut at 1,000 each, a message with many
 * long fields passed the provider's limit and had an honest job process killed (JOB_FLOOD).
 */
export function clippedLog(
  level: 'debug' | 'info' | 'warn' | 'error',
  msg: string,
  fields?: Record<string, unknown>,
): Extract<SandboxReply, { op: 'log' }> {
  // Anything but a plain value is written out as text (the provider refuses other fields).
  const clipped = fields
    ? Object.fromEntries(
        Object.entries(fields)
          .slice(0, MAX_LOG_FIELDS)
          .map(([k, v]) => [
            clip(k, 32),
            v === null || typeof v === 'number' || typeof v === 'boolean' ? v : clip(String(v), 400),
          ]),
      )
    : undefined;
  return { op: 'log', level, msg: clip(msg, 1000), ...(clipped ? { fields: clipped } : {}) };
}
