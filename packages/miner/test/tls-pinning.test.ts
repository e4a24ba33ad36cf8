/**
 * Security regressions of the pinned TLS transport and the provider's certificate files, without
 * ONNX Runtime: small https servers with certificates of their own stand in for the provider.
 *
 * - A certificate the chain retired (a leaked key) must stop being accepted by a long-lived
 *   client: the cached fingerprints are re-read once they are old, and kept-alive connections
 *   to a certificate no longer listed are dropped rather than reused.
 * - A malformed or unreadable certificate file must not crash the agent that watches it.
 * - The key is written so that a link planted at its path is replaced, not followed.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  lstatSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:https';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ProviderClient } from '@unc/sdk';
import {
  createProviderCertificate,
  ensureProviderCertificate,
  TLS_FILES,
  type TlsPair,
  watchProviderCertificate,
} from '../src/index.js';
import { tempDir } from './helpers.js';

async function serve(
  pair: TlsPair,
  tag: string,
): Promise<{ server: Server; url: string; hits: () => number }> {
  let hits = 0;
  const server = createServer(
    { key: pair.keyPem, cert: pair.certPem, minVersion: 'TLSv1.3' },
    (_req, res) => {
      hits++;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ ok: true, chainId: tag }));
    },
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return { server, url: `https://127.0.0.1:${port}`, hits: () => hits };
}

describe('pinned TLS: a retired certificate stops being accepted', () => {
  const servers: Server[] = [];
  const clients: ProviderClient[] = [];
  after(() => {
    for (const c of clients) c.close();
    for (const s of servers) s.close();
  });

  test('a long-lived client re-reads old fingerprints and drops connections to a retired certificate', async () => {
    const real = createProviderCertificate('provider');
    const leaked = createProviderCertificate('leaked key');
    // The man in the middle holds the leaked key: the chain listed it until the provider retired it.
    const mitm = await serve(leaked, 'impostor');
    servers.push(mitm.server);
    let chain = [real.fingerprint, leaked.fingerprint];
    let reads = 0;
    const client = new ProviderClient({
      endpoint: mitm.url,
      chainId: 'c',
      leaseId: new Uint8Array(randomBytes(32)),
      renterSeed: new Uint8Array(randomBytes(32)),
      tlsFingerprints: chain,
      refreshTlsFingerprints: async () => {
        reads++;
        return chain;
      },
      tlsFingerprintsMaxAgeMs: 50,
    });
    clients.push(client);
    assert.equal((await client.health()).chainId, 'impostor'); // listed then: a kept-alive connection
    chain = [real.fingerprint]; // the provider retires the leaked certificate
    await new Promise((r) => setTimeout(r, 100));
    const hitsBefore = mitm.hits();
    await assert.rejects(client.health(), { code: 'TLS_FINGERPRINT_MISMATCH' });
    assert.ok(reads >= 1, 'the old list was re-read');
    assert.equal(mitm.hits(), hitsBefore, 'the kept-alive connection to the retired certificate was reused');
    assert.deepEqual(client.tlsFingerprints, [real.fingerprint]);
  });

  test('requests that find the list old share one re-read; a failed re-read fails the request', async () => {
    const real = createProviderCertificate('provider');
    const provider = await serve(real, 'provider');
    servers.push(provider.server);
    let reads = 0;
    let nodeDown = false;
    const client = new ProviderClient({
      endpoint: provider.url,
      chainId: 'c',
      leaseId: new Uint8Array(randomBytes(32)),
      renterSeed: new Uint8Array(randomBytes(32)),
      tlsFingerprints: [real.fingerprint],
      refreshTlsFingerprints: async () => {
        reads++;
        await new Promise((r) => setTimeout(r, 20));
        if (nodeDown) throw new Error('node unreachable');
        return [real.fingerprint];
      },
      tlsFingerprintsMaxAgeMs: 50,
    });
    clients.push(client);
    await new Promise((r) => setTimeout(r, 100));
    const answers = await Promise.all([1, 2, 3, 4, 5].map(() => client.health()));
    assert.equal(answers.length, 5);
    assert.equal(reads, 1);
    nodeDown = true;
    await new Promise((r) => setTimeout(r, 100));
    await assert.rejects(client.health(), /node unreachable/);
  });
});

describe('provider TLS files', () => {
  test('a malformed or unreadable certificate file is reported, not thrown out of the watcher', async () => {
    const dir = await tempDir('unc-tls-watch-');
    const crashes: Error[] = [];
    const onCrash = (err: Error) => crashes.push(err);
    process.prependListener('uncaughtException', onCrash);
    const errors: string[] = [];
    const reloads: string[] = [];
    const pair = ensureProviderCertificate(dir.path);
    const stop = watchProviderCertificate(
      dir.path,
      (p) => reloads.push(p.fingerprint),
      20,
      (err) => errors.push(err.message),
    );
    try {
      // The watcher's first look at the files is asynchronous: a change before it is its baseline.
      await new Promise((r) => setTimeout(r, 200));
      // Half written (a `cp` in progress).
      writeFileSync(join(dir.path, TLS_FILES.cert), '-----BEGIN CERTIFICATE-----\nMII');
      for (let i = 0; errors.length === 0 && i < 500; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(crashes.length, 0, `the watcher threw: ${crashes[0]?.message}`);
      assert.ok(errors.length > 0, 'the bad file was not reported');
      // The whole new pair lands: it is served.
      const next = createProviderCertificate();
      writeFileSync(join(dir.path, TLS_FILES.key), next.keyPem);
      writeFileSync(join(dir.path, TLS_FILES.cert), next.certPem);
      for (let i = 0; !reloads.includes(next.fingerprint) && i < 500; i++)
        await new Promise((r) => setTimeout(r, 20));
      assert.ok(reloads.includes(next.fingerprint), 'the new pair was not reloaded');
      assert.notEqual(next.fingerprint, pair.fingerprint);
    } finally {
      stop();
      process.removeListener('uncaughtException', onCrash);
      await dir.remove();
    }
  });

  test('the key replaces a link planted at its path instead of writing through it', async () => {
    const dir = await tempDir('unc-tls-link-');
    try {
      const victim = join(dir.path, 'victim.txt');
      writeFileSync(victim, 'not a key');
      chmodSync(victim, 0o644);
      const tls = join(dir.path, 'tls');
      ensureProviderCertificate(tls);
      // Only the certificate is missing, and the key path is a link: the pair is made afresh.
      rmSync(join(tls, TLS_FILES.cert));
      rmSync(join(tls, TLS_FILES.key));
      symlinkSync(victim, join(tls, TLS_FILES.key));
      ensureProviderCertificate(tls);
      assert.equal(readFileSync(victim, 'utf8'), 'not a key', 'the private key was written through the link');
      assert.equal(statSync(victim).mode & 0o777, 0o644);
      assert.equal(statSync(join(tls, TLS_FILES.key)).mode & 0o777, 0o600);
      assert.ok(!lstatSync(join(tls, TLS_FILES.key)).isSymbolicLink());
      assert.ok(existsSync(join(tls, TLS_FILES.cert)));
    } finally {
      await dir.remove();
    }
  });
});
