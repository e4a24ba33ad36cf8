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
  // A provider that keeps the receipt back: 202 with the id, then a GET answered "done" bare (or
  // with the status the test sets).
  let getStatus = 'done';
  let gets = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.method === 'GET') gets++;
      const status = req.method === 'POST' ? 202 : 200;
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ jobId, leaseId, model, status: req.method === 'POST' ? 'done' : getStatus }));
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

  const one = Buffer.from(new Float32Array([1]).buffer).toString('base64');
  const clientOf = () =>
    new ProviderClient({
      endpoint: url,
      chainId: 'unc-test-no-receipt',
      leaseId,
      renterSeed: new Uint8Array(randomBytes(32)),
      allowHttp: true,
      timeoutMs: 5_000,
    });

  test('is refused as missing its receipt', async () => {
    getStatus = 'done';
    gets = 0;
    await assert.rejects(
      clientOf().runJob(model, { x: { type: 'float32', dims: [1], data: one } }),
      (e: Error) => /without its receipt/.test(e.message),
    );
    assert.equal(gets, 1, 'read by its GET');
  });

  // Its GET saying the job still runs was waited on until the client's time limit: the provider's
  // word against itself, answered at once.
  test('a job answered done whose GET says it still runs is refused at once', async () => {
    getStatus = 'running';
    gets = 0;
    await assert.rejects(
      clientOf().runJob(model, { x: { type: 'float32', dims: [1], data: one } }),
      /provider answered job [0-9a-f]{64} done, but its GET says running/,
    );
    assert.equal(gets, 1, 'one GET, no waiting');
  });
});
