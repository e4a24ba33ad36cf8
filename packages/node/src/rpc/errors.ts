import type { JsonValue } from './json.js';
import { toJsonValue } from './json.js';

/**
 * The JSON-RPC 2.0 reserved codes, plus -32000 for the protocol's own (UncError) rejections and
 * -32005 for the server's own limits (as in EIP-1474); `error.data.reason` says which limit.
 */
export const RpcErrorCode = {
  PARSE_ERROR: -32700,
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
  INTERNAL_ERROR: -32603,
  APPLICATION_ERROR: -32000,
  LIMIT_EXCEEDED: -32005,
} as const;

/** `error.data.reason` of a -32005 answer. */
export type RpcLimitReason =
  | 'WORK_LIMIT'
  | 'RESPONSE_TOO_LARGE'
  | 'BATCH_RESPONSE_TOO_LARGE'
  | 'RATE_LIMITED'
  | 'CONCURRENCY_LIMIT'
  | 'SUBSCRIPTION_LIMIT'
  | 'CONNECTION_LIMIT'
  | 'BUSY';

/** Thrown by handlers to answer with a specific JSON-RPC error (typically -32602). */
export class RpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
    this.name = 'RpcError';
  }
}

export interface RpcErrorObject {
  code: number;
  message: string;
  data?: JsonValue;
}

/**
 * Node's own failures (ENOENT, ERR_INVALID_ARG_TYPE, …) also carry a string `code`, but they are
 * bugs or environment problems, and their messages can leak file paths: they stay internal errors.
 */
function isSystemError(err: object): boolean {
  const e = err as { code?: unknown; errno?: unknown; syscall?: unknown };
  return (
    typeof e.errno === 'number' ||
    typeof e.syscall === 'string' ||
    (typeof e.code === 'string' && e.code.startsWith('ERR_'))
  );
}

/**
 * Maps anything a handler throws to the error object a client sees. Returns `undefined` for
 * unexpected exceptions so the caller logs them and answers -32603 without the stack.
 */
export function toRpcErrorObject(err: unknown): RpcErrorObject | undefined {
  // A non-integer code is a handler bug; answering with it would make the response malformed.
  if (err instanceof RpcError && Number.isInteger(err.code)) {
    const out: RpcErrorObject = { code: err.code, message: err.message };
    if (err.data !== undefined) out.data = toJsonValue(err.data);
    return out;
  }
  if (typeof err === 'object' && err !== null && !isSystemError(err)) {
    const { code, message, answer } = err as { code?: unknown; message?: unknown; answer?: unknown };
    if (typeof code === 'string' && typeof message === 'string') {
      // A heartbeat refusal names its answer structured (core's ValidationError.answer), so a
      // miner rebuilds its batch from `data.answer`, not from the message's words.
      if (answer instanceof Object)
        return {
          code: RpcErrorCode.APPLICATION_ERROR,
          message,
          data: { reason: code, answer: toJsonValue(answer) },
        };
      return { code: RpcErrorCode.APPLICATION_ERROR, message, data: { reason: code } };
    }
  }
  return undefined;
}
