/**
 * Inputs `npm run fuzz` (packages/cli/bench/fuzz.ts) found that made a decoder throw something
 * other than the project's own errors. Each stays here so that it keeps failing cleanly.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DecodeError, decode, encode, Reader, vendorCodec } from '../src/index.js';

describe('fuzz regressions', () => {
  test('a vendor with an unknown profile tag is a DecodeError, not a RangeError', () => {
    const bytes = encode(vendorCodec, { id: 'v', name: 'n', profile: 'tpm2', roots: [] });
    // id (4 + 1), name (4 + 1), then the profile byte.
    bytes[10] = 54;
    assert.throws(
      () => vendorCodec.read(new Reader(bytes)),
      (err: unknown) => err instanceof DecodeError && /unknown profile tag 54/.test(err.message),
    );
    assert.throws(() => decode(vendorCodec, bytes), /^DecodeError: unknown profile tag 54$/);
  });

  test('a vendor with unknown requirement bits is a DecodeError, not a RangeError', () => {
    const bytes = encode(vendorCodec, { id: 'v', name: 'n', profile: 'tpm2', roots: [] });
    // The requirements byte is the record's last.
    bytes[bytes.length - 1] = 173;
    assert.throws(
      () => vendorCodec.read(new Reader(bytes)),
      (err: unknown) => err instanceof DecodeError && /unknown vendor requirement bits 173/.test(err.message),
    );
  });
});
