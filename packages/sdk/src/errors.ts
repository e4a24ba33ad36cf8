/**
 * What can go wrong talking to a node, as classes a caller can tell apart: `instanceof` for the
 * kind, `reason` for the protocol's own code (`NOT_FOUND`, `NONCE_USED`, `RATE_LIMITED`, …).
 */

/** The reasons a node gives in `error.data.reason` that callers commonly act on; others are strings too. */
export type RpcReason =
  | 'NOT_FOUND'
  | 'PENDING'
  | 'DROPPED'
  | 'DECODE'
  | 'BAD_ADDRESS'
  | 'WORK_LIMIT'
  | 'RESPONSE_TOO_LARGE'
  | 'BATCH_RESPONSE_TOO_LARGE'
  | 'RATE_LIMITED'
  | 'CONCURRENCY_LIMIT'
  | 'SUBSCRIPTION_LIMIT'
  | 'CONNECTION_LIMIT'
  | (string & {});

export class RpcClientError extends Error {
  constructor(
    readonly rpcCode: number,
    message: string,
    /** The protocol's reason code (e.g. NONCE_USED) when the node gave one. */
    readonly reason?: RpcReason,
    /** `error.data` as the node sent it. */
    readonly data?: unknown,
  ) {
    super(message);
    this.name = 'RpcClientError';
  }
}

/** -32602: a parameter was missing or malformed; `field` names it. Nothing happened on the node. */
export class InvalidParamsError extends RpcClientError {
  constructor(
    message: string,
    readonly field: string | undefined,
    data?: unknown,
  ) {
    super(-32602, message, undefined, data);
    this.name = 'InvalidParamsError';
  }
}

/** The thing asked for does not exist (reason NOT_FOUND). */
export class NotFoundError extends RpcClientError {
  constructor(message: string, data?: unknown) {
    super(-32000, message, 'NOT_FOUND', data);
    this.name = 'NotFoundError';
  }
}

/** -32005: one of the node's limits; `retryAfterMs` when waiting helps (rate limits). */
export class LimitExceededError extends RpcClientError {
  constructor(
    message: string,
    reason: RpcReason | undefined,
    readonly retryAfterMs: number | undefined,
    data?: unknown,
  ) {
    super(-32005, message, reason, data);
    this.name = 'LimitExceededError';
  }
}

/** The node's answer did not have the shape the schema declares (a bug, or not a UtilityNet node). */
export class MalformedAnswerError extends RpcClientError {
  constructor(method: string, detail: string) {
    super(0, `the node's answer to ${method} is malformed: ${detail}`);
    this.name = 'MalformedAnswerError';
  }
}

/** The node could not be reached at all (refused, DNS, timeout). */
export class NodeUnreachableError extends Error {
  constructor(url: string, cause: string) {
    super(`cannot reach the node at ${url}: ${cause}`);
    this.name = 'NodeUnreachableError';
  }
}

/** The right class for a JSON-RPC error object. */
export function errorFromRpc(error: { code: number; message: string; data?: unknown }): RpcClientError {
  const data = error.data as { reason?: unknown; field?: unknown; retryAfterMs?: unknown } | undefined;
  const reason = typeof data?.reason === 'string' ? data.reason : undefined;
  if (error.code === -32602)
    return new InvalidParamsError(
      error.message,
      typeof data?.field === 'string' ? data.field : undefined,
      data,
    );
  if (error.code === -32005)
    return new LimitExceededError(
      error.message,
      reason,
      typeof data?.retryAfterMs === 'number' ? data.retryAfterMs : undefined,
      data,
    );
  if (reason === 'NOT_FOUND') return new NotFoundError(error.message, data);
  return new RpcClientError(error.code, error.message, reason, data);
}

/** Whether `err` is an RPC error with this reason (narrows it). */
export function hasReason(err: unknown, reason: RpcReason): err is RpcClientError {
  return err instanceof RpcClientError && err.reason === reason;
}
