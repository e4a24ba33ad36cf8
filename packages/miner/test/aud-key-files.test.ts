/**
 * The provider's TLS key and a vendor CA's keys are unencrypted files: loaded only while no one
 * but their owner may read them (BAD_KEY_FILE, OpenSSH's rule; docs/signatures.md, "Which key
 * signs what").
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { UncError } from '@unc/core';
import { ensureProviderCertificate, TLS_FILES } from '../src/provider/tls.js';
import { createVendorCa, loadVendorCa, writeVendorCa } from '../src/vendor/ca.js';

const badKeyFile = (err: unknown) =>
  err instanceof UncError && err.code === 'BAD_KEY_FILE' && /chmod 600/.test(err.message);

test('attack: a provider TLS key others can read is refused, not served', {
  skip: process.platform === 'win32',
}, () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-keyfiles-'));
  try {
    const made = ensureProviderCertificate(dir);
    assert.equal(made.created, true);
    chmodSync(join(dir, TLS_FILES.key), 0o644);
    assert.throws(() => ensureProviderCertificate(dir), badKeyFile);
    chmodSync(join(dir, TLS_FILES.key), 0o600);
    assert.equal(ensureProviderCertificate(dir).fingerprint, made.fingerprint);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('attack: a vendor CA whose keys others can read is refused before it issues anything', {
  skip: process.platform === 'win32',
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-keyfiles-'));
  try {
    const ca = createVendorCa({
      vendorId: 'acme',
      notBefore: new Date('2026-01-01T00:00:00Z'),
      notAfter: new Date('2036-01-01T00:00:00Z'),
    });
    await writeVendorCa(ca, dir);
    assert.equal((await loadVendorCa(dir)).vendorId, 'acme');
    for (const file of ['root.key.pem', 'intermediate.key.pem']) {
      chmodSync(join(dir, file), 0o640);
      await assert.rejects(loadVendorCa(dir), badKeyFile);
      chmodSync(join(dir, file), 0o600);
    }
    assert.equal((await loadVendorCa(dir)).vendorId, 'acme');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
