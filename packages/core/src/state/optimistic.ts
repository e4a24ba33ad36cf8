/**
 * A block executed while its signature checks are still running elsewhere (a node's worker
 * threads), accepted only once every check the execution relied on has come back valid.
 *
 * A validator's `executeBlock` treats any transaction that does not apply as making the whole
 * block invalid, so finding a bad signature after the block ran gives the same verdict as finding
 * it in order: the block is invalid, with the error the first failing check would have raised.
 * What execution may take on trust is narrow: only a check whose exact bytes (key, message,
 * signature: its `ed25519CheckKey`) the caller says are in flight for this block; anything else is
 * checked in order as always. Every check taken on trust is recorded, in the order execution
 * consulted it, and `settleAssumed` turns the execution into a verdict only once the caller has
 * every one of their results. A check in flight that execution never consulted plays no part: its
 * failure cannot make a valid block invalid.
 *
 * Nothing here writes anything: the execution's overlay is the caller's to apply once settled,
 * and a block whose assumed check failed is thrown away with it.
 */

import { equalBytes } from '../bytes.js';
import type { TxEnvelope } from '../chain/transaction.js';
import { ValidationError } from '../errors.js';
import { type BlockContext, type BlockExecution, BlockExecutor, type ExecuteOptions } from './execute.js';
import { ed25519CheckKey, envelopeSignatureCheck } from './preverify.js';
import type { StateReader } from './store.js';

/** A signature check execution took as valid because its result was still to come. */
export interface AssumedCheck {
  /** The check's `ed25519CheckKey`. */
  key: string;
  /** The transaction whose execution consulted it. */
  txIndex: number;
  /** The transaction's own signature, or a chip's dev-soft answer in one of its heartbeats. */
  kind: 'transaction' | 'answer';
}

export interface OptimisticExecution {
  /** The executed block, or null when a transaction failed for another reason (`error`). */
  execution: BlockExecution | null;
  /** The error in-order execution raised, prefixed with its transaction as `executeBlock` does. */
  error: ValidationError | null;
  /** The checks taken on trust, in the order execution consulted them. */
  assumed: AssumedCheck[];
}

/**
 * Executes `txs` as `executeBlock` does, except that a signature check whose key `inFlight` names
 * is taken as valid and recorded. The result says nothing yet: pass it to `settleAssumed` with the
 * results of `assumed`. Checks `options` or `passed` (remembered passes, by the same key, so that
 * each check is keyed once) already vouch for are not recorded.
 */
export function executeBlockAssuming(
  base: StateReader,
  txs: readonly TxEnvelope[],
  ctx: BlockContext,
  options: ExecuteOptions,
  inFlight: (key: string) => boolean,
  passed: (key: string) => boolean = () => false,
): OptimisticExecution {
  const assumed: AssumedCheck[] = [];
  let txIndex = 0;
  let current: TxEnvelope | undefined;
  const isSignatureVerified = (hash: Uint8Array): boolean => {
    if (options.isSignatureVerified?.(hash)) return true;
    // Only the transaction being applied: the hook is asked by hash, the check is keyed by bytes.
    if (!current || !equalBytes(hash, current.hash)) return false;
    const c = envelopeSignatureCheck(current);
    const key = ed25519CheckKey(c.publicKey, c.message, c.signature);
    if (passed(key)) return true;
    if (!inFlight(key)) return false;
    assumed.push({ key, txIndex, kind: 'transaction' });
    return true;
  };
  const isEd25519Verified = (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean => {
    if (options.isEd25519Verified?.(publicKey, message, signature)) return true;
    const key = ed25519CheckKey(publicKey, message, signature);
    if (passed(key)) return true;
    if (!inFlight(key)) return false;
    assumed.push({ key, txIndex, kind: 'answer' });
    return true;
  };
  const executor = new BlockExecutor(base, ctx, { isSignatureVerified, isEd25519Verified });
  for (; txIndex < txs.length; txIndex++) {
    current = txs[txIndex]!;
    try {
      executor.apply(current);
    } catch (err) {
      const code = err instanceof ValidationError ? err.code : 'INVALID';
      return {
        execution: null,
        error: new ValidationError(code, `transaction ${txIndex}: ${(err as Error).message}`),
        assumed,
      };
    }
  }
  return { execution: executor.finish(), error: null, assumed };
}

/**
 * The verdict of an optimistic execution once `valid[i]` is the result of `run.assumed[i]`: the
 * execution, or the ValidationError in-order execution gives. The first assumed check that did
 * not pass (in the order execution consulted them) fails the block with the error its inline
 * check raises, whatever execution found after it; only when all passed does `run.error` stand.
 */
export function settleAssumed(run: OptimisticExecution, valid: readonly boolean[]): BlockExecution {
  if (valid.length !== run.assumed.length) throw new Error('one result per assumed check');
  run.assumed.forEach((a, i) => {
    if (valid[i] === true) return;
    throw a.kind === 'transaction'
      ? new ValidationError('BAD_SIGNATURE', `transaction ${a.txIndex}: invalid transaction signature`)
      : new ValidationError(
          'ATTEST_BAD_SIGNATURE',
          `transaction ${a.txIndex}: the answer is not signed by the chip for this challenge`,
        );
  });
  if (run.error) throw run.error;
  return run.execution!;
}
