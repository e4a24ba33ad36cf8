/**
 * Security regressions of the pinned TLS transport and the provider's certificate files, without
 * ONNX Runtime: small https servers with certificates of their own stand in for the provider.
 *
 * - A certificate the chain retired (a leaked key) must stop being accepted by a long-lived
 *   client: the cached fingerprints are re-read once they are old, and kept-alive connections
 *   to a certificate no longer listed are dropped rather than reused.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import { after, describe, test } from 'node:test';
import { ProviderClient } from '@unc/sdk';
import { createProviderCertificate, type TlsPair } from '../src/index.js';

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
});
