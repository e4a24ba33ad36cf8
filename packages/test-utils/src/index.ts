/**
 * What the packages' tests share: waiting for a condition with a deadline, asserting that a call
 * fails with a given error class and code, and a stand-in JSON-RPC node whose answers a test
 * writes. Test code only (a devDependency everywhere).
 */
import assert from 'node:assert/strict';

type Falsy = null | undefined | false;

/**
 * Polls `probe` until it returns something other than null, undefined or false, and returns that.
 * A probe that throws counts as "not yet"; its last error is in the timeout message.
 */
export async function until<T>(
  what: string,
  probe: () => T | Falsy | Promise<T | Falsy>,
  opts: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== null && value !== undefined && value !== false) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`,
      );
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 100));
  }
}

/** Asserts that `fn` throws an instance of `type` with this `code`, and a message matching `re`. */
export function rejects<E extends Error & { code: string }>(
  fn: () => unknown,
  type: abstract new (...args: never[]) => E,
  code: string,
  re?: RegExp,
): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof type, `expected ${type.name}, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (re) assert.match(err.message, re);
    return true;
  });
}

export { type JsonRpcNode, type RpcAnswers, startJsonRpcNode } from './json-rpc-node.js';
