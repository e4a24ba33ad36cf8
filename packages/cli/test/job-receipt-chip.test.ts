/**
 * `unc job run|ocr` checks a receipt against the key of the chip it names: that chip must be the
 * leased one (the chain refuses any other for the lease, RECEIPT_WRONG_CHIP). Before, a provider
 * answering with a receipt of another chip of its own (a cheaper one) got "receipt verified", and
 * with `--prove` "verified against the chip key proven on chain".
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { toHex, UncError } from '@unc/core';
import { checkReceiptChip } from '../src/commands/job.js';

test('a receipt of another chip than the leased one is refused; the leased chip passes', () => {
  const leased = new Uint8Array(32).fill(0xa1);
  const other = new Uint8Array(32).fill(0xb2);
  assert.throws(
    () => checkReceiptChip(toHex(leased), other),
    (err: Error) => err instanceof UncError && err.code === 'RECEIPT_WRONG_CHIP',
  );
  checkReceiptChip(toHex(leased), leased);
  checkReceiptChip(toHex(leased).toUpperCase(), leased);
  // No lease record (a node without unc_getLease, --endpoint given): nothing to compare with.
  checkReceiptChip(undefined, other);
});
