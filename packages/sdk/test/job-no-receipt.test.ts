/**
 * A provider that answers a job done without its receipt (here through the 202-then-GET path,
 * docs/jobs.md) is refused with what is wrong. Before, the client said "the job is done, not
 * done", which names no fault.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { toHex } from '@unc/core';
import { ProviderClient } from '../src/index.js';

describe('a job answered done without a receipt', () => {
  const leaseId = toHex(randomBytes(32));
  const jobId = toHex(randomBytes(32));
  const model = toHex(randomBytes(32));
  // A provider that keeps the receipt back: 202 with the id, then a GET answered "done" bare.
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const status = req.method === 'POST' ? 202 : 200;
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ jobId, leaseId, model, status: 'done' }));
    });
  });
  let url = '';
  before(async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  test('is refused as missing its receipt', async () => {
    const client = new ProviderClient({
      endpoint: url,
      chainId: 'unc-test-no-receipt',
      leaseId,
      renterSeed: new Uint8Array(randomBytes(32)),
      allowHttp: true,
    });
    const one = Buffer.from(new Float32Array([1]).buffer).toString('base64');
    await assert.rejects(client.runJob(model, { x: { type: 'float32', dims: [1], data: one } }), (e: Error) =>
      /without its receipt/.test(e.message),
    );
  });
});
