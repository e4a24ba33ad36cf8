/**
 * Crash audit: `unc vendor revoke` rewrites the CA's revocation list (revocations.pem), the only
 * local record of every serial the vendor revoked, and reads it back at the next revoke. A process
 * killed part-way through that write (here by the kernel: a file-size limit the new list exceeds,
 * SIGXFSZ, as a full disk or a kill would cut it) must leave the previous list whole.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  createVendorCa,
  revocationListFromPem,
  revokeSerials,
  verifyRevocationList,
  writeVendorCa,
} from '@unc/miner';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const MINER = new URL('../src/index.js', import.meta.url).href;
// 400 more serials: the new list is some 6 KB, past the 2 KB the child may write to any file.
const CHILD = `
const { loadVendorCa, revokeSerials } = await import(process.env.MINER);
const ca = await loadVendorCa(process.env.CA_DIR);
const serials = Array.from({ length: 400 }, (_, i) => 0x1000000n + BigInt(i));
await revokeSerials(ca, process.env.CRL, serials, new Date('2025-07-02T00:00:00Z'));
`;

test('aud-crash: vendor revoke killed mid-write: the revocation list on disk is the previous one, whole', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'aud-crash-crl-'));
  dirs.push(dir);
  const ca = createVendorCa({
    vendorId: 'acme',
    notBefore: new Date('2025-01-01T00:00:00Z'),
    notAfter: new Date('2035-01-01T00:00:00Z'),
  });
  await writeVendorCa(ca, dir);
  const crl = join(dir, 'revocations.pem');
  const before = [3n, 10n, 77n];
  await revokeSerials(ca, crl, before, new Date('2025-07-01T00:00:00Z'));
  assert.ok(readFileSync(crl).length < 2048);

  const run = spawnSync(
    'bash',
    ['-c', 'ulimit -f 2 && exec "$0" --input-type=module -e "$CHILD"', process.execPath],
    { env: { ...process.env, CHILD, MINER, CA_DIR: dir, CRL: crl }, encoding: 'utf8' },
  );
  assert.ok(run.signal !== null || run.status !== 0, `the write was not cut: ${run.stderr}`);

  const list = verifyRevocationList(revocationListFromPem(readFileSync(crl, 'utf8')), ca.root);
  assert.equal(list.sequence, 1n);
  assert.deepEqual(list.serialNumbers, before);
  // The next revoke goes on from it.
  await revokeSerials(ca, crl, [5n], new Date('2025-07-03T00:00:00Z'));
  const next = verifyRevocationList(revocationListFromPem(readFileSync(crl, 'utf8')), ca.root);
  assert.equal(next.sequence, 2n);
  assert.deepEqual(next.serialNumbers, [3n, 5n, 10n, 77n]);
});
