/**
 * What a gateway listening beyond loopback shows to whoever reaches it without its token: whether
 * it is up, nothing more. The renter, its leases, its providers and its spend are for the token's
 * holder. The gateway is real; its node is a small JSON-RPC server that answers the reads a start
 * makes (status, params, an empty market).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Gateway } from '../src/gateway.js';

function emptyChainNode(): Server {
  const answers: Record<string, unknown> = {
    unc_status: { chainId: 'unc-exposure-test', height: 5, timeMs: 1_000_000, time: '' },
    unc_getParams: { minFeePerByte: '1000', minFeePerAction: '100000' },
    unc_getOffers: [],
    unc_getLeases: [],
  };
  return createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      const { id, method } = JSON.parse(body) as { id: number; method: string };
      const reply =
        method in answers
          ? { jsonrpc: '2.0', id, result: answers[method] }
          : { jsonrpc: '2.0', id, error: { code: -32601, message: `no ${method} here` } };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(reply));
    });
  });
}

describe('a gateway beyond loopback, asked without its token', () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-exposure-'));
  const node = emptyChainNode();
  let gw: Gateway;
  let base = '';
  before(async () => {
    await new Promise<void>((r) => node.listen(0, '127.0.0.1', r));
    gw = new Gateway({
      nodeUrl: `http://127.0.0.1:${(node.address() as AddressInfo).port}`,
      renterSeed: new Uint8Array(32).fill(7),
      budgetPerHour: 10n ** 18n,
      models: [{ name: 'ocr' }],
      dbPath: join(dir, 'g.db'),
      // Every interface: the case the token exists for.
      host: '0.0.0.0',
      port: 0,
      apiToken: 'sesame',
    });
    await gw.start();
    base = `http://127.0.0.1:${new URL(gw.url).port}`;
  });
  after(async () => {
    await gw.stop();
    await new Promise<void>((r) => node.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });
  const get = (path: string, token?: string) =>
    fetch(`${base}${path}`, token ? { headers: { authorization: `Bearer ${token}` } } : {});

  test('/v1/health says up or down only', async () => {
    // Before: {ok, chainId, leases, queued} to anyone.
    const open = await get('/v1/health');
    assert.equal(open.status, 200);
    assert.deepEqual(await open.json(), { ok: true });
    const full = (await (await get('/v1/health', 'sesame')).json()) as Record<string, unknown>;
    assert.equal(full.chainId, 'unc-exposure-test');
    assert.equal(full.leases, 0);
  });

  test('/metrics (spend, leases, providers) needs the token', async () => {
    // Before: the whole Prometheus text, spend and providers included, to anyone.
    for (const token of [undefined, 'wrong']) {
      const r = await get('/metrics', token);
      assert.equal(r.status, 401);
      const text = await r.text();
      assert.doesNotMatch(text, /unc_gateway_spent/);
    }
    const r = await get('/metrics', 'sesame');
    assert.equal(r.status, 200);
    const text = await r.text();
    assert.match(text, /unc_gateway_spent_base_units 0/);
    assert.match(text, /unc_gateway_fees_base_units 0/);
  });

  test('status and jobs need it as before', async () => {
    assert.equal((await get('/v1/status')).status, 401);
    assert.equal((await get('/v1/jobs')).status, 401);
    assert.equal((await get('/v1/status', 'sesame')).status, 200);
  });
});
