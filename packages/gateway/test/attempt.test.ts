/**
 * How the gateway reads a failed attempt, and what it refuses to start with: its own failures are
 * held against no provider, and an API that spends the budget is never open to the network
 * without a token.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { NodeUnreachableError, ProviderError, RpcClientError } from '@unc/sdk';
import Database from 'better-sqlite3';
import { BadReceiptError, classifyAttemptFailure, Gateway, isLoopbackHost } from '../src/gateway.js';

describe('attempt failures', () => {
  test("the gateway's node failing while a receipt is checked bans no provider", () => {
    // Before: anything unrecognised was a bad receipt, and a bad receipt avoids its provider for
    // good, so an honest provider was banned whenever the gateway's own node blinked.
    assert.equal(
      classifyAttemptFailure(new NodeUnreachableError('http://127.0.0.1:3030', 'ECONNREFUSED')),
      'gateway-error',
    );
    assert.equal(classifyAttemptFailure(new RpcClientError(-32000, 'rate limited')), 'gateway-error');
  });

  test("the gateway's database refusing a write bans no provider", () => {
    const db = new Database(':memory:');
    db.exec('CREATE TABLE t (k TEXT PRIMARY KEY)');
    db.prepare('INSERT INTO t VALUES (?)').run('a');
    let err: unknown;
    try {
      db.prepare('INSERT INTO t VALUES (?)').run('a');
    } catch (e) {
      err = e;
    }
    db.close();
    assert.ok(err);
    assert.equal(classifyAttemptFailure(err), 'gateway-error');
  });

  test('what the provider sent back still decides its blame', () => {
    assert.equal(classifyAttemptFailure(new BadReceiptError('signed by another key')), 'bad-receipt');
    assert.equal(classifyAttemptFailure(new Error('the receipt names another lease')), 'bad-receipt');
    assert.equal(classifyAttemptFailure(new ProviderError(422, 'JOB_FAILED', 'bad image')), 'rejected-input');
    assert.equal(classifyAttemptFailure(new ProviderError(429, 'QUEUE_FULL', 'busy')), 'busy');
    assert.equal(
      classifyAttemptFailure(new Error('cannot reach the provider at https://p: ECONNREFUSED')),
      'unreachable',
    );
    assert.equal(
      classifyAttemptFailure(
        new Error('cannot reach the provider at https://p: The operation was aborted due to timeout'),
      ),
      'timeout',
    );
  });
});

describe('listening beyond loopback', () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-host-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const make = (host: string, apiToken?: string) =>
    new Gateway({
      nodeUrl: 'http://127.0.0.1:1',
      renterSeed: new Uint8Array(32).fill(7),
      budgetPerHour: 1n,
      models: [{ name: 'ocr' }],
      dbPath: join(dir, `${host.replace(/[^a-z0-9]/gi, '_')}-${apiToken ?? 'none'}.db`),
      host,
      ...(apiToken ? { apiToken } : {}),
    });

  test('every interface without a token is refused: anyone reaching it could spend the budget', () => {
    assert.throws(() => make('0.0.0.0'), /without an API token/);
    assert.throws(() => make('::'), /without an API token/);
    assert.throws(() => make('192.168.1.10'), /without an API token/);
  });

  test('loopback without a token, or any address with one, is allowed', () => {
    for (const gw of [make('127.0.0.1'), make('localhost'), make('::1'), make('0.0.0.0', 'sesame')])
      gw.store.close();
    assert.equal(isLoopbackHost('127.1.2.3'), true);
    assert.equal(isLoopbackHost('[::1]'), true);
    assert.equal(isLoopbackHost('0.0.0.0'), false);
    assert.equal(isLoopbackHost('127.0.0.1.example.com'), false);
  });
});
