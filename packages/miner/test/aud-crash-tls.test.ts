/**
 * Crash audit: `unc market offer rotate-tls` sends the transaction that pins the next certificate,
 * then promotes it with four renames (promoteNextCertificate). A process killed between two of
 * them leaves the key or the certificate missing; the agent's next start (ensureProviderCertificate)
 * must then serve a pair the chain pins (the old one or the next one), never a fresh third one that
 * no renter accepts, and a rerun of the rotation must find a certificate.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  ensureProviderCertificate,
  finishInterruptedPromotion,
  prepareNextCertificate,
  readProviderCertificate,
} from '@unc/miner';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

// The promotion in a child process that kills itself (SIGKILL) just before its `cut`-th rename:
// node:fs's renameSync is wrapped and the ESM bindings synced, so tls.js calls the wrapper.
const CHILD = `
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
const real = fs.renameSync;
let n = 0;
const cut = Number(process.env.CUT);
fs.renameSync = (from, to) => {
  if (n++ === cut) process.kill(process.pid, 'SIGKILL');
  return real(from, to);
};
syncBuiltinESMExports();
const { promoteNextCertificate } = await import(process.env.TLS_MODULE);
promoteNextCertificate(process.env.TLS_DIR);
`;
const TLS_MODULE = new URL('../src/provider/tls.js', import.meta.url).href;

function keyMatches(pair: { keyPem: string; certPem: string }): boolean {
  return new X509Certificate(pair.certPem).checkPrivateKey(createPrivateKey(pair.keyPem));
}

for (const cut of [0, 1, 2, 3, 4]) {
  test(`aud-crash: rotate-tls killed before rename ${cut} of 4: the restarted agent serves a pinned, matching pair`, () => {
    const dir = mkdtempSync(join(tmpdir(), 'aud-crash-tls-'));
    dirs.push(dir);
    const old = ensureProviderCertificate(dir);
    const next = prepareNextCertificate(dir);
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', CHILD], {
      env: { ...process.env, CUT: String(cut), TLS_MODULE, TLS_DIR: dir },
      encoding: 'utf8',
    });
    if (cut < 4) assert.equal(run.signal, 'SIGKILL', `the child was not killed: ${run.stderr}`);
    else assert.equal(run.status, 0, run.stderr);

    // The agent's start.
    const served = ensureProviderCertificate(dir);
    assert.equal(served.created, false, 'a fresh certificate that the chain pins nowhere was made');
    // Once a rename ran, the rotation's transaction was on chain and the next pair is the one to serve.
    assert.equal(served.fingerprint, cut === 0 ? old.fingerprint : next.fingerprint);
    assert.ok(keyMatches(served), 'the key served does not match the certificate');
    // What `unc market offer rotate-tls` run again reads first (it refuses with NO_TLS_CERT without one).
    assert.equal(readProviderCertificate(dir)?.fingerprint, served.fingerprint);
  });
}

test('aud-crash: rotate-tls run again after a kill mid-promotion finds the promoted pair, without an agent start', () => {
  const dir = mkdtempSync(join(tmpdir(), 'aud-crash-tls-'));
  dirs.push(dir);
  ensureProviderCertificate(dir);
  const next = prepareNextCertificate(dir);
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', CHILD], {
    env: { ...process.env, CUT: '2', TLS_MODULE, TLS_DIR: dir },
    encoding: 'utf8',
  });
  assert.equal(run.signal, 'SIGKILL', run.stderr);
  assert.equal(readProviderCertificate(dir), null);
  // What `unc market offer rotate-tls` does first.
  assert.equal(finishInterruptedPromotion(dir), true);
  assert.equal(readProviderCertificate(dir)?.fingerprint, next.fingerprint);
  assert.equal(finishInterruptedPromotion(dir), false);
});
