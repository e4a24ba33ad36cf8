/**
 * The provider API over TLS 1.3 with a self-signed certificate pinned by fingerprint: a pinned
 * client runs jobs; an impostor (a TLS proxy on loopback with another certificate) receives no
 * byte of the job; plain http is refused unless allowed; a rotated certificate is picked up by a
 * renter that re-reads the fingerprints; a client certificate must be the renter's own key.
 */
import assert from 'node:assert/strict';
import { randomBytes, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { connect, createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createServer as createTlsServer, type Server as TlsServer, connect as tlsConnect } from 'node:tls';
import { ed25519PublicKey, toHex } from '@unc/core';
import { silentLogger } from '@unc/node';
import {
  certificateFingerprint,
  InsecureEndpointError,
  ProviderClient,
  ProviderError,
  TlsFingerprintError,
} from '@unc/sdk';
import {
  createProviderCertificate,
  DevSoftSigner,
  ensureProviderCertificate,
  ProviderServer,
  prepareNextCertificate,
  promoteNextCertificate,
  renterClientCertificate,
  TLS_FILES,
} from '../src/index.js';
import { fromPem } from '../src/vendor/pem.js';
import { tempDir } from './helpers.js';
import { fixture, InMemoryLeaseSource, OCR_SAMPLE_TEXT } from './provider-helpers.js';

const CHAIN = 'unc-test-provider-tls';

/** A TLS man in the middle: its own certificate, forwarding to `target`, counting what it is sent. */
async function startMitm(
  target: URL,
): Promise<{ server: TlsServer; url: string; fingerprint: string; received: () => number }> {
  const own = createProviderCertificate('impostor');
  let received = 0;
  const server = createTlsServer({ key: own.keyPem, cert: own.certPem, minVersion: 'TLSv1.3' }, (client) => {
    const upstream = tlsConnect({
      host: target.hostname,
      port: Number(target.port),
      rejectUnauthorized: false,
    });
    client.on('data', (d: Buffer) => {
      received += d.length;
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => client.write(d));
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close);
    upstream.on('error', close);
    client.on('close', close);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    server,
    url: `https://127.0.0.1:${port}`,
    fingerprint: own.fingerprint,
    received: () => received,
  };
}

describe('provider API over TLS, pinned by fingerprint', () => {
  const signer = new DevSoftSigner(new Uint8Array(randomBytes(32)), 'dev-h100', 'dev-chip-0');
  const renterSeed = new Uint8Array(randomBytes(32));
  const leaseId = toHex(randomBytes(32));
  const leases = new InMemoryLeaseSource();
  let dir: { path: string; remove(): Promise<void> };
  let tlsDir: string;
  let provider: ProviderServer;
  let url: string;
  let fingerprint: string;
  const clients: ProviderClient[] = [];
  const client = (extra: Partial<ConstructorParameters<typeof ProviderClient>[0]> = {}) => {
    const c = new ProviderClient({
      endpoint: url,
      chainId: CHAIN,
      leaseId,
      renterSeed,
      tlsFingerprints: [fingerprint],
      ...extra,
    });
    clients.push(c);
    return c;
  };

  before(async () => {
    leases.leases.set(leaseId, {
      id: leaseId,
      chipId: toHex(await signer.chipId()),
      renterPublicKey: toHex(ed25519PublicKey(renterSeed)),
      status: 'active',
    });
    dir = await tempDir('unc-provider-tls-');
    tlsDir = join(dir.path, 'tls');
    provider = new ProviderServer({
      chainId: CHAIN,
      signers: [signer],
      leases,
      modelDir: join(dir.path, 'models'),
      leaseCacheMs: 0,
      tls: { dir: tlsDir, watchIntervalMs: 50, handshakeTimeoutMs: 500 },
      logger: silentLogger,
    });
    url = await provider.start();
    fingerprint = provider.tlsFingerprint!;
  });

  after(async () => {
    for (const c of clients) c.close();
    await provider?.stop();
    await dir?.remove();
  });

  test('first start makes a P-256 key (0600) and a self-signed certificate; the URL is https', () => {
    assert.match(url, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(statSync(join(tlsDir, TLS_FILES.key)).mode & 0o777, 0o600);
    const pair = ensureProviderCertificate(tlsDir);
    assert.equal(pair.created, false);
    assert.equal(pair.fingerprint, fingerprint);
    const x = new X509Certificate(pair.certPem);
    assert.equal(x.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.ok(x.verify(x.publicKey), 'self-signed');
    assert.equal(certificateFingerprint(fromPem(pair.certPem, 'CERTIFICATE')), fingerprint);
  });

  test('an OCR job over TLS 1.3 with the pinned certificate; keep-alive reuses the connection', async () => {
    const c = client();
    const result = await c.runOcr(fixture('ocr-sample.png'));
    assert.equal(result.job.ocr?.text.split('\n')[0], OCR_SAMPLE_TEXT);
    assert.equal((await c.health()).chainId, CHAIN);
  });

  test('a man in the middle with another certificate is refused before any byte of the job leaves', async () => {
    const mitm = await startMitm(new URL(url));
    try {
      const c = client({ endpoint: mitm.url });
      const err = await c.runOcr(fixture('ocr-sample.png'), 'ab'.repeat(32)).then(
        () => assert.fail('the impostor was trusted'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof TlsFingerprintError, String(err));
      assert.deepEqual(err.expected, [fingerprint]);
      assert.notEqual(err.presented, fingerprint);
      assert.match(err.message, new RegExp(`${err.presented}.*${fingerprint}`));
      assert.equal(mitm.received(), 0, 'the impostor received application bytes');
      // Control: a client that pinned the impostor's certificate does send it the job.
      await client({ endpoint: mitm.url, tlsFingerprints: [mitm.fingerprint] }).health();
      assert.ok(mitm.received() > 0, 'the proxy counts what it is sent');
    } finally {
      mitm.server.close();
    }
  });

  test('a client that connects and never finishes its TLS handshake is cut off', async () => {
    const { port } = new URL(url);
    const socket = connect(Number(port), '127.0.0.1');
    const closed = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 20_000);
      socket.on('close', () => {
        clearTimeout(timer);
        resolve(true);
      });
      socket.on('error', () => undefined);
    });
    socket.destroy();
    assert.ok(closed, 'the silent connection was still open after 20 s');
  });

  test('plain http is refused unless allowed (dev chains), without connecting', async () => {
    let connections = 0;
    const plain: NetServer = createNetServer((s: Socket) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
    const port = (plain.address() as { port: number }).port;
    try {
      assert.throws(
        () =>
          new ProviderClient({ endpoint: `http://127.0.0.1:${port}`, chainId: CHAIN, leaseId, renterSeed }),
        (e: unknown) => e instanceof InsecureEndpointError && /plain http/.test((e as Error).message),
      );
      assert.throws(
        () => new ProviderClient({ endpoint: url, chainId: CHAIN, leaseId, renterSeed }),
        /no TLS certificate fingerprint/,
      );
      assert.equal(connections, 0);
    } finally {
      plain.close();
    }
  });

  test('mutual TLS: the renter key certificate is accepted, another key is refused', async () => {
    const own = client({ clientCertificate: renterClientCertificate(renterSeed) });
    assert.equal((await own.runOcr(fixture('ocr-sample.png'))).job.status, 'done');
    const other = client({ clientCertificate: renterClientCertificate(new Uint8Array(randomBytes(32))) });
    const err = await other.runOcr(fixture('ocr-sample.png'), 'ab'.repeat(32)).catch((e: unknown) => e);
    assert.ok(err instanceof ProviderError, String(err));
    assert.equal(err.code, 'CLIENT_CERT_MISMATCH');
  });

  test('a request refused for its client certificate is not read on: the connection is closed', async () => {
    // Refused before any check of the lease, its body (declared 1 GiB here) was drained to the
    // end on a kept-alive connection: anybody with a self-signed certificate could stream to the
    // provider for the whole request timeout.
    const u = new URL(url);
    const cert = renterClientCertificate(new Uint8Array(randomBytes(32)));
    const socket = tlsConnect({
      host: u.hostname,
      port: Number(u.port),
      rejectUnauthorized: false,
      key: cert.key,
      cert: cert.cert,
    });
    let text = '';
    const closed = new Promise<boolean>((resolve) => {
      socket.on('close', () => resolve(true));
      setTimeout(() => resolve(false), 2_000).unref();
    });
    socket.on('data', (c: Buffer) => {
      text += c.toString('latin1');
    });
    socket.on('error', () => undefined);
    await new Promise<void>((r) => socket.once('secureConnect', () => r()));
    socket.write(
      `POST /v1/models HTTP/1.1\r\nhost: x\r\nx-unc-renter: ${'ab'.repeat(32)}\r\ncontent-length: ${2 ** 30}\r\n\r\n`,
    );
    socket.write(Buffer.alloc(64 * 1024));
    const wasClosed = await closed;
    socket.destroy();
    assert.match(text, /^HTTP\/1\.1 403/);
    assert.match(text, /CLIENT_CERT_MISMATCH/);
    assert.ok(wasClosed, 'the provider keeps reading the refused body');
  });

  test('rotation: the agent serves the new certificate; a renter with a stale list re-reads it and connects', async () => {
    const old = fingerprint;
    const stale = client({ tlsFingerprints: [old] });
    await stale.health(); // a kept-alive connection under the old certificate
    const next = prepareNextCertificate(tlsDir);
    let chain = [old, next.fingerprint]; // what the chain lists during the overlap
    promoteNextCertificate(tlsDir);
    assert.ok(existsSync(join(tlsDir, TLS_FILES.previousCert)));
    for (let i = 0; provider.tlsFingerprint !== next.fingerprint; i++) {
      assert.ok(i < 100, 'the provider did not reload its certificate');
      await new Promise((r) => setTimeout(r, 50));
    }
    // The open connection keeps working; a job on it is not lost.
    assert.equal((await stale.health()).chainId, CHAIN);
    // A new connection with only the old fingerprint and no way to re-read: refused.
    const frozen = client({ tlsFingerprints: [old] });
    await assert.rejects(frozen.health(), TlsFingerprintError);
    // With the chain to re-read, it picks up the new fingerprint and connects.
    let reads = 0;
    const renter = client({
      tlsFingerprints: [old],
      refreshTlsFingerprints: async () => {
        reads++;
        return chain;
      },
    });
    assert.equal((await renter.runOcr(fixture('ocr-sample.png'))).job.status, 'done');
    assert.equal(reads, 1);
    assert.deepEqual(renter.tlsFingerprints, chain);
    // The old certificate is retired on chain: new renters pin only the new one.
    chain = [next.fingerprint];
    assert.equal((await client({ tlsFingerprints: chain }).health()).chainId, CHAIN);
  });
});

test('a key that cannot be put in place fails the call and leaves no temporary copy of it', async () => {
  const dir = await tempDir('unc-tls-');
  try {
    // A non-empty folder where provider.key goes: the rename fails after the key was written.
    mkdirSync(join(dir.path, TLS_FILES.key));
    writeFileSync(join(dir.path, TLS_FILES.key, 'pinned'), 'x');
    assert.throws(() => ensureProviderCertificate(dir.path), /EISDIR|ENOTEMPTY|EEXIST|EPERM/);
    assert.deepEqual(readdirSync(dir.path), [TLS_FILES.key]);
  } finally {
    await dir.remove();
  }
});

// A kill between a TLS file's temporary copy and its rename left the copy (a private key) at a name
// nobody looked after, one more at each such kill: nothing removed them.
test("a killed write's temporary copies of the TLS key and certificates are removed when the folder is loaded", async () => {
  const dir = await tempDir('unc-tls-');
  try {
    const old = new Date(Date.now() - 10 * 60_000);
    const stale = (name: string) => {
      writeFileSync(join(dir.path, name), 'a whole copy of a key\n');
      utimesSync(join(dir.path, name), old, old);
    };
    ensureProviderCertificate(dir.path);
    stale(`${TLS_FILES.key}.0123456789ab.tmp`);
    stale(`${TLS_FILES.nextKey}.abcdef012345.tmp`);
    stale(`${TLS_FILES.cert}.0123456789ab.tmp`);
    stale('other.key.0123456789ab.tmp');
    writeFileSync(join(dir.path, `${TLS_FILES.key}.eeeeeeeeeeee.tmp`), 'being written\n');
    assert.equal(ensureProviderCertificate(dir.path).created, false);
    assert.deepEqual(
      readdirSync(dir.path).sort(),
      [
        'other.key.0123456789ab.tmp',
        TLS_FILES.cert,
        TLS_FILES.key,
        `${TLS_FILES.key}.eeeeeeeeeeee.tmp`,
      ].sort(),
    );
  } finally {
    await dir.remove();
  }
});
