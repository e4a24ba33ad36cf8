/**
 * `UncClient.nextNonce`, the nonce `buildTransaction` signs at by default: the node's
 * `pendingNonce` (unc_getAccount with `pending`), never below the committed nonce; from a node
 * older than the flag, which refuses a third parameter, the committed nonce.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import { addressFromPublicKey, encodeAddress } from '@unc/core';
import {
  buildTransaction,
  MAX_PENDING_NONCE_AHEAD,
  MalformedAnswerError,
  seedSigner,
  transferAction,
  UncClient,
} from '../src/index.js';

const servers: Server[] = [];
after(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

type Answer = { result: unknown } | { error: { code: number; message: string; data?: unknown } };

/** A node answering each request from `answer(method, params)`; every request is recorded. */
async function node(answer: (method: string, params: unknown[]) => Answer) {
  const calls: { method: string; params: unknown[] }[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const { id, method, params } = JSON.parse(body) as { id: number; method: string; params: unknown[] };
      calls.push({ method, params });
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ jsonrpc: '2.0', id, ...answer(method, params) }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  servers.push(server);
  return { client: new UncClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`), calls };
}

const seed = new Uint8Array(32).fill(7);
const address = encodeAddress(addressFromPublicKey(seedSigner(seed).publicKey));
const account = (extra: Record<string, unknown> = {}) => ({
  address,
  balance: '1000000000000000000000',
  nonce: 4,
  height: 10,
  stateRoot: '00'.repeat(32),
  ...extra,
});
const chain = (method: string): Answer | null =>
  method === 'unc_status'
    ? { result: { chainId: 'unc-dev-next-nonce', height: 10 } }
    : method === 'unc_getParams'
      ? { result: { minFeePerByte: '1000', minFeePerAction: '100000' } }
      : null;

test('buildTransaction signs at the pending nonce the node reports, asking with the pending flag', async () => {
  const { client, calls } = await node((method) => chain(method) ?? { result: account({ pendingNonce: 6 }) });
  const stx = await buildTransaction(client, seed, [transferAction(address, 1n)]);
  assert.equal(stx.tx.nonce, 6n);
  assert.deepEqual(calls.find((c) => c.method === 'unc_getAccount')?.params, [address, false, true]);
  // An explicit nonce is the caller's: the account is not even asked.
  const before = calls.length;
  const explicit = await buildTransaction(client, seed, [transferAction(address, 1n)], { nonce: 4n });
  assert.equal(explicit.tx.nonce, 4n);
  assert.equal(calls.slice(before).filter((c) => c.method === 'unc_getAccount').length, 0);
});

test('a node older than the pending flag (it refuses a third parameter): the committed nonce', async () => {
  const { client, calls } = await node((method, params) => {
    const known = chain(method);
    if (known) return known;
    if (params.length > 2)
      return { error: { code: -32602, message: 'expected at most 2 parameter(s) (address, proof), got 3' } };
    return { result: account() };
  });
  assert.equal(await client.nextNonce(address), 4n);
  assert.deepEqual(
    calls.map((c) => c.params.length),
    [3, 2],
  );
  // Any other error is not taken for an old node.
  const { client: down } = await node(() => ({ error: { code: -32000, message: 'disk on fire' } }));
  await assert.rejects(down.nextNonce(address), /disk on fire/);
});

test('a pending nonce below the committed one, or not a safe integer, is not taken: the committed nonce', async () => {
  for (const pendingNonce of [3, -1, 2 ** 60, 4.5, '9', null]) {
    const { client } = await node(() => ({ result: account({ pendingNonce }) }));
    assert.equal(await client.nextNonce(address), 4n, `pendingNonce ${JSON.stringify(pendingNonce)}`);
  }
});

test('a pending nonce past what any default node queues is refused, not signed at: the transaction could only wait in a gap', async () => {
  // nonce 4: a default node's answer is at most MAX_PENDING_NONCE_AHEAD past it (its queue, and a
  // decided block being written).
  const { client: ok } = await node(() => ({
    result: account({ pendingNonce: 4 + MAX_PENDING_NONCE_AHEAD }),
  }));
  assert.equal(await ok.nextNonce(address), BigInt(4 + MAX_PENDING_NONCE_AHEAD));
  for (const pendingNonce of [5 + MAX_PENDING_NONCE_AHEAD, 2 ** 40, Number.MAX_SAFE_INTEGER]) {
    const { client, calls } = await node((method) => chain(method) ?? { result: account({ pendingNonce }) });
    await assert.rejects(client.nextNonce(address), (err: unknown) => {
      assert.ok(err instanceof MalformedAnswerError, String(err));
      assert.match((err as Error).message, /pendingNonce/);
      return true;
    });
    // Nothing signed: buildTransaction stops there too.
    await assert.rejects(buildTransaction(client, seed, [transferAction(address, 1n)]), MalformedAnswerError);
    assert.equal(calls.filter((c) => c.method === 'unc_sendTransaction').length, 0);
  }
});

test('a committed nonce that is not a non-negative safe integer is a malformed answer, not a nonce to sign at', async () => {
  for (const nonce of ['12345678901234567890123', -1, 4.5, 2 ** 60, null, 'x']) {
    const { client } = await node(() => ({ result: account({ nonce }) }));
    await assert.rejects(client.nextNonce(address), MalformedAnswerError, `nonce ${JSON.stringify(nonce)}`);
  }
});
