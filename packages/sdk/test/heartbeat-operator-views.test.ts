/**
 * The heartbeat operator action and event as JSON (what the RPC, the CLI and the explorer show):
 * named, not "unknown", with addresses in bech32 and none as null; the builder round-trips it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { actionCodec, decode, encode, encodeAddress, recordBurn, STATE_ENTRY_BURN_ACTIONS } from '@unc/core';
import { actionToJson, eventToJson, setHeartbeatOperatorAction } from '../src/index.js';

const operator = encodeAddress(new Uint8Array(20).fill(7));
const owner = encodeAddress(new Uint8Array(20).fill(9));

test('setHeartbeatOperator: built from an address or none, encoded as tag 22, shown with the operator', () => {
  const named = setHeartbeatOperatorAction(operator);
  assert.deepEqual(decode(actionCodec, encode(actionCodec, named)), named);
  assert.deepEqual(actionToJson(named), { type: 'setHeartbeatOperator', operator });
  assert.deepEqual(actionToJson(setHeartbeatOperatorAction(null)), {
    type: 'setHeartbeatOperator',
    operator: null,
  });
  // The burn a wallet shows before signing: naming keeps a record, removing keeps none.
  assert.equal(
    recordBurn(3n, named, () => false),
    STATE_ENTRY_BURN_ACTIONS * 3n,
  );
  assert.equal(
    recordBurn(3n, setHeartbeatOperatorAction(null), () => false),
    0n,
  );
  assert.throws(() => setHeartbeatOperatorAction('unc1notanaddress'));
});

test('heartbeatOperatorSet event: owner, operator (or null) and the height it takes effect', () => {
  assert.deepEqual(
    eventToJson({
      type: 'heartbeatOperatorSet',
      owner: new Uint8Array(20).fill(9),
      operator: new Uint8Array(20).fill(7),
      from: 12n,
    }),
    { type: 'heartbeatOperatorSet', owner, operator, from: 12 },
  );
  assert.deepEqual(
    eventToJson({
      type: 'heartbeatOperatorSet',
      owner: new Uint8Array(20).fill(9),
      operator: null,
      from: 13n,
    }),
    { type: 'heartbeatOperatorSet', owner, operator: null, from: 13 },
  );
});
