/**
 * Finished jobs leave the gateway's database once older than its retention (jobRetentionMs): the
 * jobs table no longer grows with every job served, for ever.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { Gateway, JOB_RETENTION_MS } from '../src/gateway.js';

const DAY = 86_400_000;

describe('gateway job retention', () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-retention-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  let clock = 100 * DAY;
  const make = (name: string, jobRetentionMs?: number) =>
    new Gateway({
      // Never started and never reaching a node: only the tick's pruning is exercised.
      nodeUrl: 'http://127.0.0.1:1',
      renterSeed: new Uint8Array(32).fill(7),
      budgetPerHour: 1n,
      models: [{ name: 'ocr' }],
      dbPath: join(dir, name),
      now: () => clock,
      chainRefreshMs: 1e15,
      targets: { minLeases: 0 },
      ...(jobRetentionMs === undefined ? {} : { jobRetentionMs }),
    });
  const tick = (gw: Gateway) => (gw as unknown as { tick(): Promise<void> }).tick();

  test('by default a job finished more than 30 days ago is deleted; a newer one and an unfinished one stay', async () => {
    const gw = make('default.db');
    try {
      assert.equal(JOB_RETENTION_MS, 30 * DAY);
      const old = gw.submit({ model: 'ocr', image: 'AA==' }, 'old').row.id;
      const fresh = gw.submit({ model: 'ocr', image: 'AQ==' }, 'fresh').row.id;
      const waiting = gw.submit({ model: 'ocr', image: 'Ag==' }, 'waiting').row.id;
      gw.store.fail(old, 'no provider', clock - 31 * DAY);
      gw.store.fail(fresh, 'no provider', clock - 29 * DAY);
      gw.store.markRunning(waiting, { leaseId: 'l', provider: 'p', chipId: 'c', nowMs: 0 });
      await tick(gw);
      assert.equal(gw.store.job(old), null, 'past the retention: deleted');
      assert.ok(gw.store.job(fresh), 'within it: kept');
      assert.ok(gw.store.job(waiting), 'unfinished: kept whatever its age');
      // Its key is free again: the same request is a new job.
      assert.equal(gw.submit({ model: 'ocr', image: 'AA==' }, 'old').created, true);
      // Two days on, the other one is past it too.
      clock += 2 * DAY;
      await tick(gw);
      assert.equal(gw.store.job(fresh), null);
    } finally {
      gw.store.close();
    }
  });

  test('0 keeps every job; a negative or fractional retention is refused', async () => {
    const gw = make('forever.db', 0);
    try {
      const id = gw.submit({ model: 'ocr', image: 'AA==' }, null).row.id;
      gw.store.fail(id, 'no provider', 0);
      await tick(gw);
      assert.ok(gw.store.job(id));
    } finally {
      gw.store.close();
    }
    assert.throws(() => make('bad.db', -1), /jobRetentionMs/);
    assert.throws(() => make('bad2.db', 1.5), /jobRetentionMs/);
  });
});

describe('gateway dispute retention', () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-dispute-retention-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const clock = 100 * DAY;
  const make = (name: string, jobRetentionMs?: number) =>
    new Gateway({
      nodeUrl: 'http://127.0.0.1:1',
      renterSeed: new Uint8Array(32).fill(7),
      budgetPerHour: 1n,
      models: [{ name: 'ocr' }],
      dbPath: join(dir, name),
      now: () => clock,
      chainRefreshMs: 1e15,
      targets: { minLeases: 0 },
      ...(jobRetentionMs === undefined ? {} : { jobRetentionMs }),
    });
  const tick = (gw: Gateway) => (gw as unknown as { tick(): Promise<void> }).tick();
  const record = (gw: Gateway, jobId: string, txHash: string | null, createdMs: number) =>
    gw.store.addDispute({
      leaseId: 'l1',
      jobId,
      requestHex: 'aa',
      reason: 'no answer',
      txHash,
      error: txHash ? null : 'not sent',
      createdMs,
    });

  test('a tick deletes the disputes past the retention once final; one still postable on a running lease stays', async () => {
    const gw = make('disputes.db');
    try {
      gw.store.putLease({
        leaseId: 'l1',
        offerId: 'o',
        chipId: 'c',
        provider: 'p',
        endpoint: 'https://x',
        pricePerHour: '1',
        noticeMs: 0,
        openedMs: 0,
        closedMs: null,
        closeReason: null,
      });
      record(gw, 'sent-old', 'ab'.repeat(32), clock - 31 * DAY);
      record(gw, 'unsent-old', null, clock - 31 * DAY);
      record(gw, 'sent-new', 'cd'.repeat(32), clock - 29 * DAY);
      await tick(gw);
      assert.deepEqual(
        gw.store.disputes().map((d) => d.jobId),
        ['unsent-old', 'sent-new'],
        'the final one past the retention went; the one its running lease may still take and the newer one stayed',
      );
      assert.equal(gw.status().disputes, 2);
    } finally {
      gw.store.close();
    }
  });

  test('0 keeps every dispute', async () => {
    const gw = make('disputes-forever.db', 0);
    try {
      record(gw, 'sent-old', 'ab'.repeat(32), 0);
      await tick(gw);
      assert.equal(gw.store.disputes().length, 1);
    } finally {
      gw.store.close();
    }
  });
});
