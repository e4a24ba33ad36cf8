/**
 * Review of `unc vendor revoke` (revokeSerials): it reads the revocation list, adds serials and
 * writes it back. Two revokes at once (two terminals, a script run twice) each read the same list and
 * the last write won: the other's serials were dropped while its caller was told they were revoked,
 * and a chip the vendor meant to cut off stayed trusted. A revoke either lands in the list or fails.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { createVendorCa, revocationListFromPem, revokeSerials, verifyRevocationList } from '@unc/miner';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

test('aud-crash review: of two revokes at once, none is told its serials are revoked when they are not', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'aud-crash-crl-lock-'));
  dirs.push(dir);
  const ca = createVendorCa({
    vendorId: 'acme',
    notBefore: new Date('2025-01-01T00:00:00Z'),
    notAfter: new Date('2035-01-01T00:00:00Z'),
  });
  const crl = join(dir, 'revocations.pem');
  await revokeSerials(ca, crl, [1n], new Date('2025-07-01T00:00:00Z'));
  const batches = [[10n, 11n], [20n], [30n, 31n, 32n]];
  const results = await Promise.allSettled(
    batches.map((serials) => revokeSerials(ca, crl, serials, new Date('2025-07-02T00:00:00Z'))),
  );
  const list = verifyRevocationList(revocationListFromPem(readFileSync(crl, 'utf8')), ca.root);
  let landed = 0;
  results.forEach((r, i) => {
    if (r.status !== 'fulfilled') return;
    landed++;
    for (const s of batches[i]!)
      assert.ok(list.serialNumbers.includes(s), `serial ${s} was reported revoked but is not in the list`);
  });
  assert.ok(landed >= 1);
  assert.ok(list.serialNumbers.includes(1n));
  // Once they are done, the next revoke goes on from the list.
  await revokeSerials(ca, crl, [40n], new Date('2025-07-03T00:00:00Z'));
  const next = verifyRevocationList(revocationListFromPem(readFileSync(crl, 'utf8')), ca.root);
  assert.equal(next.sequence, list.sequence + 1n);
  assert.ok(next.serialNumbers.includes(40n));
});
