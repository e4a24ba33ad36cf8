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

/**
 * The heartbeat answer a refusal is about (chip id in hex, epoch, slot): carried beside the code so
 * that a miner can tell which answer of its batch sank it without reading the message's words (a
 * rewording would silently stop that). Not part of any state or hash.
 */
export interface AnswerRef {
  chipId: string;
  epoch: number;
  slot: number;
}

/** A well-formed transaction or block that the protocol rules reject. */
export class ValidationError extends UncError {
  constructor(
    code: string,
    message: string,
    /** The heartbeat answer refused, when the refusal is about one. */
    readonly answer?: AnswerRef,
  ) {
    super(code, message);
    this.name = 'ValidationError';
  }
}

/**
 * A refusal judged against state that its code alone would read as provable from the bytes: a
 * transfer's consent that does not verify (`ATTEST_BAD_SIGNATURE`) was checked against the chip's
 * key as this state holds it, and a chip deregistered and registered again with a new key makes an
 * honest consent fail on a node that has not seen the new key yet. Node policy (mempool refusal
 * cache, relay blame, final refusals) must treat it as a state reason, whatever its code.
 */
export class StateRefusal extends ValidationError {
  constructor(code: string, message: string) {
    super(code, message);
    this.name = 'StateRefusal';
  }
}

export function assert(condition: unknown, code: string, message: string): asserts condition {
  if (!condition) throw new ValidationError(code, message);
}
