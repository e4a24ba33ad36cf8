/**
 * Review of the TLS promotion recovery: the agent's start (ensureProviderCertificate, which finishes
 * a cut promotion) while `rotate-tls` promotes in another process. Between the promotion's renames
 * the folder looks exactly like a cut one; finished under it, the promotion's next rename moved the
 * new certificate to previous.crt and the one after failed, leaving no certificate (the next start
 * made a fresh pair that no offer pins). The two take the folder's move lock.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  ensureProviderCertificate,
  prepareNextCertificate,
  readProviderCertificate,
  TLS_FILES,
} from '@unc/miner';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

// The promotion in a child that, after its first rename, says so (a marker file) and then holds
// still for 3 s: the window between two renames, widened.
const CHILD = `
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
const real = fs.renameSync;
let n = 0;
fs.renameSync = (from, to) => {
  real(from, to);
  if (n++ === 0) {
    fs.writeFileSync(process.env.MARKER, '');
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 3000);
  }
};
syncBuiltinESMExports();
const { promoteNextCertificate } = await import(process.env.TLS_MODULE);
promoteNextCertificate(process.env.TLS_DIR);
`;
const TLS_MODULE = new URL('../src/provider/tls.js', import.meta.url).href;

test('aud-crash review: an agent starting while rotate-tls promotes leaves the promoted pair whole', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'aud-crash-tls-race-'));
  dirs.push(dir);
  const old = ensureProviderCertificate(dir);
  const next = prepareNextCertificate(dir);
  const marker = join(dir, '..', `${dir.split('/').pop()}.marker`);
  dirs.push(marker);
  const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD], {
    env: { ...process.env, TLS_MODULE, TLS_DIR: dir, MARKER: marker },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  try {
    while (!existsSync(marker)) {
      if (child.exitCode !== null) assert.fail(`the promotion ended first: ${stderr}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    // The agent's start, mid-promotion.
    const served = ensureProviderCertificate(dir);
    assert.equal(served.created, false);
    assert.equal(await exited, 0, `the promotion failed: ${stderr}`);
    assert.equal(served.fingerprint, next.fingerprint);
    const now = readProviderCertificate(dir);
    assert.equal(now?.fingerprint, next.fingerprint, 'the promoted pair is not in place');
    const previous = readFileSync(join(dir, TLS_FILES.previousCert), 'utf8');
    assert.equal(previous, old.certPem, 'previous.crt is not the old certificate');
    assert.ok(
      new X509Certificate(previous).checkPrivateKey(
        createPrivateKey(readFileSync(join(dir, TLS_FILES.previousKey), 'utf8')),
      ),
    );
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  }
});
