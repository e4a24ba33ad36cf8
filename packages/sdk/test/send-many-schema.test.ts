/**
 * The per-transaction answers of unc_sendTransactions: `retryAfterMs` is accepted only where the
 * node sends it (reason BUSY, a node catching up) and only as a wait a client can use.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as v from 'valibot';
import { SendManyResult } from '../src/schema/results.js';

const ok = (answer: unknown) => v.safeParse(SendManyResult, answer).success;

test('a BUSY entry with a wait, and plain refusals, are accepted', () => {
  assert.ok(ok([{ error: { reason: 'BUSY', message: 'catching up', retryAfterMs: 1_000 } }]));
  assert.ok(ok([{ error: { reason: 'NONCE_GAP', message: 'ahead' } }]));
  assert.ok(ok([{ hash: 'ab'.repeat(32), replaced: false }]));
});

test('a wait that is negative, fractional, or on a final refusal is a malformed answer', () => {
  // Before: retryAfterMs was any integer on any reason, so a node could tell a client to retry a
  // final refusal, or to wait a negative time.
  assert.ok(!ok([{ error: { reason: 'BUSY', message: 'x', retryAfterMs: -5 } }]));
  assert.ok(!ok([{ error: { reason: 'BUSY', message: 'x', retryAfterMs: 0.5 } }]));
  assert.ok(!ok([{ error: { reason: 'BAD_SIGNATURE', message: 'x', retryAfterMs: 100 } }]));
});
