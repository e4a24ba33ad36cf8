/** A heartbeat refusal carries the answer it names, structured, in the JSON-RPC error's data. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ValidationError } from '@unc/core';
import { toRpcErrorObject } from '../src/rpc/errors.js';

// A miner tells which answer of its batch sank the heartbeat from `data.answer`; read from the
// message's words, a rewording in core silently stopped it (the whole batch failed instead).
test('a refusal about one heartbeat answer names it in error.data.answer; others carry the reason only', () => {
  const answer = { chipId: 'ab'.repeat(32), epoch: 3, slot: 12 };
  assert.deepEqual(toRpcErrorObject(new ValidationError('ANSWER_REPLAYED', 'already answered', answer)), {
    code: -32000,
    message: 'already answered',
    data: { reason: 'ANSWER_REPLAYED', answer },
  });
  assert.deepEqual(toRpcErrorObject(new ValidationError('FEE_TOO_LOW', 'too low')), {
    code: -32000,
    message: 'too low',
    data: { reason: 'FEE_TOO_LOW' },
  });
});
