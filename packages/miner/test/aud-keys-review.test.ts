/**
 * Review of the owner-only rule of the provider's TLS key and a vendor CA's keys (aud-key-files):
 * a key file another user owns is refused like one others may read.
 */
import assert from 'node:assert/strict';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { UncError } from '@unc/core';
import { ensureProviderCertificate, TLS_FILES } from '../src/provider/tls.js';
import { createVendorCa, loadVendorCa, writeVendorCa } from '../src/vendor/ca.js';

const ownedByOther = (err: unknown) =>
  err instanceof UncError && err.code === 'BAD_KEY_FILE' && /uid 4242/.test(err.message);

test('review: a provider TLS key or vendor CA key another user owns is refused', {
  skip: process.getuid?.() !== 0 && 'needs root to give the file to another user',
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-keyfiles-'));
  try {
    const tls = join(dir, 'tls');
    const made = ensureProviderCertificate(tls);
    // Mode 600 still, but uid 4242 can read it, or open it to everyone, whenever they like.
    chownSync(join(tls, TLS_FILES.key), 4242, 4242);
    assert.throws(() => ensureProviderCertificate(tls), ownedByOther);
    chownSync(join(tls, TLS_FILES.key), 0, 0);
    assert.equal(ensureProviderCertificate(tls).fingerprint, made.fingerprint);

    const ca = join(dir, 'ca');
    await writeVendorCa(
      createVendorCa({
        vendorId: 'acme',
        notBefore: new Date('2026-01-01T00:00:00Z'),
        notAfter: new Date('2036-01-01T00:00:00Z'),
      }),
      ca,
    );
    for (const file of ['root.key.pem', 'intermediate.key.pem']) {
      chownSync(join(ca, file), 4242, 4242);
      await assert.rejects(loadVendorCa(ca), ownedByOther);
      chownSync(join(ca, file), 0, 0);
    }
    assert.equal((await loadVendorCa(ca)).vendorId, 'acme');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
