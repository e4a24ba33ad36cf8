/**
 * What the gateway accepts before any lease is involved: a bounded queue, idempotency keys bound
 * to one request, and bad jobs refused with a clear code and nothing stored.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { Gateway, GatewayHttpError } from '../src/gateway.js';

describe('gateway submissions', () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-submit-'));
  // Never started: no chain is read, no lease opened; submissions only queue.
  const gw = new Gateway({
    nodeUrl: 'http://127.0.0.1:1',
    renterSeed: new Uint8Array(32).fill(7),
    budgetPerHour: 1n,
    models: [{ name: 'ocr' }],
    dbPath: join(dir, 'g.db'),
    maxQueued: 2,
  });
  after(() => {
    gw.store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const code = (fn: () => unknown): string => {
    try {
      fn();
    } catch (err) {
      assert.ok(err instanceof GatewayHttpError, String(err));
      return err.code;
    }
    return 'accepted';
  };

  test('bad jobs are refused and nothing is stored', () => {
    assert.equal(
      code(() => gw.submit({ model: 'llama', image: 'AA==' }, null)),
      'UNKNOWN_MODEL',
    );
    assert.equal(
      code(() => gw.submit({ model: 'ocr', image: '' }, null)),
      'BAD_IMAGE',
    );
    assert.equal(
      code(() => gw.submit({ model: 'ocr', image: 'not base64!' }, null)),
      'BAD_IMAGE',
    );
    assert.equal(
      code(() => gw.submit('ocr', null)),
      'BAD_JOB',
    );
    assert.equal(
      code(() => gw.submit({ model: 'ocr', image: 'AA==' }, 'has space')),
      'BAD_IDEMPOTENCY_KEY',
    );
    assert.equal(
      code(() => gw.submit({ model: 'ocr', image: 'AA==' }, 'k'.repeat(129))),
      'BAD_IDEMPOTENCY_KEY',
    );
    assert.equal(gw.store.jobs({ limit: 10 }).length, 0);
  });

  test('an idempotency key returns its job, and is refused for another request', () => {
    const first = gw.submit({ model: 'ocr', image: 'AA==' }, 'order-1');
    assert.equal(first.created, true);
    const again = gw.submit({ model: 'ocr', image: 'AA==' }, 'order-1');
    assert.equal(again.created, false);
    assert.equal(again.row.id, first.row.id);
    assert.equal(
      code(() => gw.submit({ model: 'ocr', image: 'AQ==' }, 'order-1')),
      'IDEMPOTENCY_KEY_REUSED',
    );
  });

  test('the queue is bounded: past maxQueued a submission is refused, a known key still answered', () => {
    gw.submit({ model: 'ocr', image: 'Ag==' }, null);
    assert.equal(
      code(() => gw.submit({ model: 'ocr', image: 'Aw==' }, null)),
      'QUEUE_FULL',
    );
    assert.equal(gw.submit({ model: 'ocr', image: 'AA==' }, 'order-1').created, false);
    assert.equal(gw.store.jobs({ limit: 10 }).length, 2);
  });

  test('the bytes the waiting jobs hold are bounded too, not only their number', () => {
    // 10,000 jobs of 16 MiB each would be 160 GiB in memory: a bound on the count alone is not one.
    const small = new Gateway({
      nodeUrl: 'http://127.0.0.1:1',
      renterSeed: new Uint8Array(32).fill(7),
      budgetPerHour: 1n,
      models: [{ name: 'ocr' }],
      dbPath: join(dir, 'bytes.db'),
      maxQueuedBytes: 4096,
    });
    try {
      const image = 'A'.repeat(3000);
      assert.equal(small.submit({ model: 'ocr', image }, null).created, true);
      assert.equal(
        code(() => small.submit({ model: 'ocr', image: `B${image.slice(1)}` }, null)),
        'QUEUE_FULL',
      );
      assert.equal(
        small.submit({ model: 'ocr', image: 'AA==' }, null).created,
        true,
        'a small one still fits',
      );
      assert.equal(small.store.jobs({ limit: 10 }).length, 2);
    } finally {
      small.store.close();
    }
  });
});
