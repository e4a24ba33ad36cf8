/**
 * A batch answered with its id only (202, docs/jobs.md "Batches"), from a provider that does not
 * play along: the client reads it by the id of the request it signed, not the one the 202 names;
 * ANSWERS_UNREAD is tried again only until the client's time limit; and that limit holds for the
 * whole read, a GET still waiting when it passes included. Before, the GET sent just before the
 * limit had the client's whole time limit again, so a provider that refused until then and then
 * held its GET kept the renter waiting twice as long as it asked.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { jobIdOf, jobRequestDigest, toHex } from '@unc/core';
import { ProviderClient } from '../src/index.js';

describe('a batch answered with its id only', () => {
  const leaseId = toHex(randomBytes(32));
  const model = toHex(randomBytes(32));
  /** A batch id of the provider's choosing: not the request's. */
  const otherId = toHex(randomBytes(32));
  /** What the provider does with a GET: its number (from 1) and the answer to write, or hold it. */
  let onGet: (n: number, res: ServerResponse) => void = () => {};
  const gets: string[] = [];
  const held: ServerResponse[] = [];
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.method === 'POST') {
        res.writeHead(202, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ batchId: otherId, leaseId, model, status: 'done' }));
        return;
      }
      gets.push(req.url ?? '');
      onGet(gets.length, res);
    });
  });
  const refuse = (res: ServerResponse, status: number, code: string) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { code, message: code } }));
  };
  let url = '';
  before(async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    for (const res of held) res.destroy();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  const one = Buffer.from(new Float32Array([1]).buffer).toString('base64');
  const inputs = [{ x: { type: 'float32' as const, dims: [1], data: one } }];
  const clientOf = (timeoutMs: number) =>
    new ProviderClient({
      endpoint: url,
      chainId: 'unc-test-batch-id-only',
      leaseId,
      renterSeed: new Uint8Array(randomBytes(32)),
      allowHttp: true,
      timeoutMs,
    });

  test('is read by the id of the request signed, not the one the provider names', async () => {
    gets.length = 0;
    onGet = (_, res) => refuse(res, 404, 'JOB_NOT_FOUND');
    const client = clientOf(5_000);
    try {
      await assert.rejects(
        client.runBatch(model, inputs),
        (e: Error & { code?: string }) => e.code === 'JOB_NOT_FOUND',
      );
      const { request } = client.lastJobRequest!;
      const own = toHex(jobIdOf(Buffer.from(leaseId, 'hex'), jobRequestDigest(request), request.nonce));
      assert.notEqual(own, otherId);
      assert.deepEqual(gets, [`/v1/jobs/${own}`]);
    } finally {
      client.close();
    }
  });

  test('refused ANSWERS_UNREAD for good, it is given up at the time limit, after a growing pause', async () => {
    gets.length = 0;
    onGet = (_, res) => refuse(res, 429, 'ANSWERS_UNREAD');
    const client = clientOf(3_000);
    try {
      await assert.rejects(client.runBatch(model, inputs), (e: Error & { code?: string }) =>
        e.code === 'ANSWERS_UNREAD' ? true : /could not be read in time/.test(e.message),
      );
      // Paused 20, 40, 80, … ms up to 1 s between tries: a handful, not one per millisecond.
      assert.ok(gets.length >= 2 && gets.length <= 12, `${gets.length} GETs`);
    } finally {
      client.close();
    }
  });

  test('a definitive answer that comes past the time limit is passed on as it is, not as a timeout', async () => {
    const hour = 3_600_000;
    const realNow = Date.now;
    let skew = 0;
    Date.now = () => realNow() + skew;
    gets.length = 0;
    onGet = (n, res) => {
      if (n === 1) refuse(res, 429, 'ANSWERS_UNREAD');
      else {
        // The limit passes while this GET is answered: its answer still says what happened.
        skew = hour + 1_000;
        refuse(res, 404, 'JOB_NOT_FOUND');
      }
    };
    const client = clientOf(hour);
    try {
      await assert.rejects(
        client.runBatch(model, inputs),
        (e: Error & { code?: string }) => e.code === 'JOB_NOT_FOUND',
      );
    } finally {
      Date.now = realNow;
      client.close();
    }
  });

  test("a GET held by the provider ends with the client's time limit, not a whole limit later", {
    timeout: 60_000,
  }, async () => {
    // The client's limit is an hour; its clock is moved on to a moment before it ends when the
    // provider refuses the first GET, and the provider never answers the second. Before, that GET
    // had an hour of its own (this test timed out); now it has what was left of the client's.
    const hour = 3_600_000;
    const realNow = Date.now;
    let skew = 0;
    Date.now = () => realNow() + skew;
    gets.length = 0;
    onGet = (n, res) => {
      if (n === 1) {
        skew = hour - 500;
        refuse(res, 429, 'ANSWERS_UNREAD');
      } else held.push(res);
    };
    const client = clientOf(hour);
    try {
      // Told as the time limit running out, not as a provider out of reach (which the held GET's
      // own timeout said before: CI saw it when a short limit ended during the last GET).
      await assert.rejects(client.runBatch(model, inputs), /could not be read in time/);
      assert.equal(gets.length, 2);
    } finally {
      Date.now = realNow;
      client.close();
    }
  });
});
