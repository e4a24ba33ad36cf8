/**
 * A provider request "signed" by the identity key with (R = identity, S = 0), which satisfies the
 * Ed25519 equation for any request, is refused like any bad signature; an honest request with the
 * same headers passes (so the refusal is the signature rule, not the harness).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ed25519PublicKey, sha256, toHex, utf8 } from '@unc/core';
import { JOB_HEADERS, signJobRequest } from '@unc/sdk';
import { RequestAuthenticator } from '../src/provider/auth.js';
import { HttpError } from '../src/provider/errors.js';

test('provider auth refuses the identity key with the (R = identity, S = 0) signature', () => {
  const chainId = 'unc-auth-test-1';
  const now = 1_795_000_000_000;
  const auth = new RequestAuthenticator(chainId, { windowMs: 60_000, maxNonces: 1000, now: () => now });
  const leaseId = sha256(utf8('lease'));
  const body = utf8('{"model":"m"}');
  const renterSeed = sha256(utf8('renter'));
  const honest = signJobRequest(
    renterSeed,
    { chainId, leaseId, method: 'POST', path: '/v1/jobs', body },
    { timestampMs: BigInt(now), nonce: 7n },
  );
  const ok = auth.verify('POST', '/v1/jobs', honest);
  assert.equal(ok.renterKeyHex, toHex(ed25519PublicKey(renterSeed)));

  const identity = `01${'00'.repeat(31)}`;
  const forged = {
    ...honest,
    [JOB_HEADERS.renter]: identity,
    [JOB_HEADERS.signature]: identity + '00'.repeat(32),
  };
  assert.throws(
    () => auth.verify('POST', '/v1/jobs', forged),
    (e: unknown) => e instanceof HttpError && e.status === 401 && e.code === 'AUTH_BAD_SIGNATURE',
  );
});
