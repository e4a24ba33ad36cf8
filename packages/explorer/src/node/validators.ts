/**
 * The validator set (`unc_getValidators [height?]`), with what pages derive from it: names of the
 * genesis validators, the signers' share of a commit. A node without the method (an older node)
 * answers "method not found"; the hook says so, and pages fall back to the genesis list.
 */
import { useEffect, useRef } from 'react';
import { big } from '../format';
import { RpcClientError, type ValidatorSetJson } from '../sdk';
import { useNode, useRpc } from './context';

/** JSON-RPC "method not found". */
const METHOD_NOT_FOUND = -32601;
/** The live set is re-read at most this often, as blocks arrive. */
const REFRESH_MIN_MS = 1000;

export function isMethodMissing(err: unknown): boolean {
  return err instanceof RpcClientError && err.rpcCode === METHOD_NOT_FOUND;
}

export interface ValidatorSetState {
  /** The set (of the height asked for); while a new height loads, the previous one. */
  set: ValidatorSetJson | undefined;
  /** The node has no `unc_getValidators`. */
  unsupported: boolean;
  error: unknown;
  loading: boolean;
}

/**
 * The set that signs `height`; `'next'` for the next block's (re-read as blocks arrive), `null` to
 * read nothing (yet).
 */
export function useValidatorSet(height: number | 'next' | null): ValidatorSetState {
  const node = useNode();
  const rpc = useRpc<ValidatorSetJson | undefined>(`validators:${height ?? 'none'}`, (c) =>
    height === null
      ? Promise.resolve(undefined)
      : c.call<ValidatorSetJson>('unc_getValidators', height === 'next' ? [] : [height]),
  );
  // The last set read, shown while the next height loads (no flicker as the head moves).
  const last = useRef<ValidatorSetJson | undefined>(undefined);
  if (rpc.data) last.current = rpc.data;

  // The next block's set follows the head: re-read when a block arrives, at most every second.
  const head = node.status?.height;
  const lastReload = useRef(0);
  const { reload } = rpc;
  const reloadRef = useRef(reload);
  reloadRef.current = reload;
  const unsupported = isMethodMissing(rpc.error);
  useEffect(() => {
    // An older node without the method is not asked again (a reconnect asks once more).
    if (height !== 'next' || head === undefined || unsupported) return;
    const wait = lastReload.current + REFRESH_MIN_MS - Date.now();
    const t = setTimeout(
      () => {
        lastReload.current = Date.now();
        reloadRef.current();
      },
      Math.max(0, wait),
    );
    return () => clearTimeout(t);
  }, [head, height, unsupported]);

  return {
    set: height === null || unsupported ? undefined : (rpc.data ?? last.current),
    unsupported,
    error: rpc.error,
    loading: rpc.loading,
  };
}

/** The signers' power in `set`, its share of the total, and whether it reaches the quorum. */
export function signedPower(
  set: ValidatorSetJson,
  signers: readonly string[],
): { power: bigint; total: bigint; quorum: boolean; count: number } {
  const keys = new Set(signers.map((k) => k.toLowerCase()));
  let power = 0n;
  let count = 0;
  for (const v of set.validators) {
    if (!keys.has(v.publicKey.toLowerCase())) continue;
    power += big(v.power);
    count++;
  }
  return { power, total: big(set.totalPower), quorum: power >= big(set.quorumPower), count };
}

/**
 * Where the set really comes from. The node says `computed` for every epoch after the first
 * boundary, also when that boundary found no bonded account with online power and kept the genesis
 * validators (power: their genesis weights, bonds: none). Such a set is the genesis set `kept`.
 */
export function setSource(
  set: Pick<ValidatorSetJson, 'source' | 'validators'>,
  genesisKeys: ReadonlySet<string> | null,
): { source: 'genesis' | 'computed'; kept: boolean } {
  if (set.source === 'genesis') return { source: 'genesis', kept: false };
  const kept =
    genesisKeys !== null &&
    set.validators.length > 0 &&
    set.validators.every((v) => genesisKeys.has(v.publicKey) && big(v.bonded) === 0n);
  return kept ? { source: 'genesis', kept: true } : { source: 'computed', kept: false };
}
