/**
 * accountsTouched dedupes by a scan of the few addresses a transaction names (and by keys past a
 * handful): the list must be what the Map of latin1 keys it replaced gave, for any mix of
 * actions and events, repeated addresses, and fields that are not addresses.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { keyId, type TxEnvelope, type TxResult, toHex } from '@unc/core';
import fc from 'fast-check';
import { accountsTouched } from '../src/indexes.js';

const ACCOUNT_FIELDS = ['from', 'to', 'payer', 'account', 'owner', 'provider', 'renter'] as const;

/** The implementation before this branch (a Map keyed by each address's latin1 string). */
function accountsTouchedBefore(env: TxEnvelope, result: TxResult | undefined): Uint8Array[] {
  const seen = new Map<string, Uint8Array>();
  const add = (a: unknown) => {
    if (a instanceof Uint8Array && a.length === 20) seen.set(keyId(a), a);
  };
  add(env.sender);
  for (const action of env.stx.tx.actions) {
    if (action.type === 'transfer') add(action.to);
    else if (action.type === 'transferChip') add(action.newOwner);
  }
  for (const event of result?.events ?? []) {
    const fields = event as unknown as Record<string, unknown>;
    for (const name of ACCOUNT_FIELDS) add(fields[name]);
  }
  return [...seen.values()];
}

test('accountsTouched names the same accounts in the same order as the Map it replaced', () => {
  // Addresses drawn from a small pool (so they repeat, as fresh copies with equal bytes), with
  // byte strings of other lengths and non-bytes mixed in.
  const pool = fc.sample(fc.uint8Array({ minLength: 20, maxLength: 20 }), { numRuns: 40, seed: 3 });
  const address = fc.nat({ max: pool.length - 1 }).map((i) => Uint8Array.from(pool[i]!));
  const field = fc.oneof(
    address,
    address,
    fc.uint8Array({ maxLength: 33 }),
    fc.constant(undefined),
    fc.bigInt(),
  );
  const action = fc.oneof(
    fc.record({ type: fc.constant('transfer'), to: field }),
    fc.record({ type: fc.constant('transferChip'), newOwner: field }),
    fc.record({ type: fc.constant('heartbeat') }),
  );
  const event = fc.record(
    Object.fromEntries([...ACCOUNT_FIELDS, 'chipId'].map((k) => [k, field])) as Record<
      string,
      fc.Arbitrary<unknown>
    >,
    { requiredKeys: [] },
  );
  fc.assert(
    fc.property(
      address,
      fc.array(action, { maxLength: 30 }),
      fc.option(fc.array(event, { maxLength: 12 })),
      (sender, actions, events) => {
        const env = { sender, stx: { tx: { actions } } } as unknown as TxEnvelope;
        const result = events === null ? undefined : ({ events } as unknown as TxResult);
        assert.deepEqual(
          accountsTouched(env, result).map(toHex),
          accountsTouchedBefore(env, result).map(toHex),
        );
      },
    ),
    { numRuns: 1000 },
  );
});
