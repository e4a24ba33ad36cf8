/**
 * Review of the TLS promotion recovery (finishInterruptedPromotion): it moves files into place at
 * the agent's start and before rotate-tls. Only the states a kill between promoteNextCertificate's
 * renames leaves are to be finished; in any other, a key and a certificate that are not one pair
 * (or a key that does not parse) were moved in, and the API could serve neither the old pair nor
 * the new one. Such a folder is left as it is, with an error that names the files.
 */
import assert from 'node:assert/strict';
import {
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  ensureProviderCertificate,
  finishInterruptedPromotion,
  prepareNextCertificate,
  promoteNextCertificate,
  TLS_FILES,
} from '@unc/miner';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function rotating(): string {
  const dir = mkdtempSync(join(tmpdir(), 'aud-crash-tls-match-'));
  dirs.push(dir);
  ensureProviderCertificate(dir);
  prepareNextCertificate(dir);
  return dir;
}

/** Every file of the folder and its bytes. */
function snapshot(dir: string): Record<string, string> {
  return Object.fromEntries(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f), 'latin1')]));
}

test('aud-crash review: provider.key beside next.key and next.crt (no kill leaves that) is not paired with next.crt', () => {
  const dir = rotating();
  // provider.crt lost some other way (removed by hand): the old key is still there, next.key too.
  rmSync(join(dir, TLS_FILES.cert));
  const before = snapshot(dir);
  assert.throws(() => finishInterruptedPromotion(dir), /is not the key of/);
  assert.deepEqual(snapshot(dir), before, 'files were moved');
  assert.throws(() => ensureProviderCertificate(dir), /is not the key of/);
  assert.deepEqual(snapshot(dir), before, 'files were moved');
});

test('aud-crash review: a next key that does not parse is not moved into place', () => {
  const dir = rotating();
  // Cut after both current files went aside; next.key damaged (a write of an older version).
  renameSync(join(dir, TLS_FILES.key), join(dir, TLS_FILES.previousKey));
  renameSync(join(dir, TLS_FILES.cert), join(dir, TLS_FILES.previousCert));
  const pem = readFileSync(join(dir, TLS_FILES.nextKey), 'utf8');
  writeFileSync(join(dir, TLS_FILES.nextKey), pem.slice(0, pem.length / 2));
  const before = snapshot(dir);
  assert.throws(() => finishInterruptedPromotion(dir), /not a readable key and certificate/);
  assert.deepEqual(snapshot(dir), before, 'files were moved');
});

test('aud-crash review: a dangling link at provider.crt is not taken for a missing certificate', () => {
  const dir = rotating();
  rmSync(join(dir, TLS_FILES.cert));
  symlinkSync(join(dir, 'nowhere.crt'), join(dir, TLS_FILES.cert));
  rmSync(join(dir, TLS_FILES.nextKey));
  const before = readdirSync(dir).sort();
  // Both halves are there (one a link): nothing to finish, nothing renamed over the link.
  assert.equal(finishInterruptedPromotion(dir), false);
  assert.deepEqual(readdirSync(dir).sort(), before);
});

test('aud-crash review: promoteNextCertificate refuses a next pair that does not match, leaving the current one', () => {
  const dir = rotating();
  const served = ensureProviderCertificate(dir);
  // next.key replaced by another key: promoted, the API could load neither pair.
  const other = mkdtempSync(join(tmpdir(), 'aud-crash-tls-match-'));
  dirs.push(other);
  writeFileSync(join(dir, TLS_FILES.nextKey), ensureProviderCertificate(other).keyPem);
  assert.throws(() => promoteNextCertificate(dir), /is not the key of/);
  const still = ensureProviderCertificate(dir);
  assert.equal(still.fingerprint, served.fingerprint);
  assert.equal(still.created, false);
});
