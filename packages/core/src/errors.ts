/**
 * One error family for everything the protocol rejects. `code` is stable and machine-readable
 * (RPC clients and tests match on it); `message` is the one-line explanation a user sees.
 */
export class UncError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'UncError';
  }
}

/** Malformed bytes or values that cannot be decoded. */
export class DecodeError extends UncError {
  constructor(message: string) {
    super('DECODE', message);
    this.name = 'DecodeError';
  }
}

/** A well-formed transaction or block that the protocol rules reject. */
export class ValidationError extends UncError {
  constructor(code: string, message: string) {
    super(code, message);
    this.name = 'ValidationError';
  }
}

export function assert(condition: unknown, code: string, message: string): asserts condition {
  if (!condition) throw new ValidationError(code, message);
}
