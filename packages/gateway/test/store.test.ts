/** The gateway's SQLite store on disk: what a restart finds, and what it refuses. */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { GatewayStore } from '../src/store.js';

describe('gateway store', () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-store-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'g.db');

  test('a reopened database has every job, receipt, cost, lease, dispute and avoided provider', () => {
    const a = new GatewayStore(path);
    a.insertJob({
      id: 'j1',
      idempotencyKey: 'k1',
      model: 'ocr',
      input: '{"model":"ocr","image":"AA=="}',
      createdMs: 1,
    });
    a.insertJob({
      id: 'j2',
      idempotencyKey: null,
      model: 'ocr',
      input: '{"model":"ocr","image":"AQ=="}',
      createdMs: 2,
    });
    a.insertJob({
      id: 'j3',
      idempotencyKey: null,
      model: 'ocr',
      input: '{"model":"ocr","image":"Ag=="}',
      createdMs: 3,
    });
    a.markRunning('j1', { leaseId: 'l1', provider: 'p1', chipId: 'c1', nowMs: 5 });
    a.finish('j1', { result: '{"ocr":{}}', receiptHex: 'beef', cost: 123n, leaseId: 'l1', nowMs: 9 });
    a.markRunning('j2', { leaseId: 'l1', provider: 'p1', chipId: 'c1', nowMs: 6 });
    a.putLease({
      leaseId: 'l1',
      offerId: 'o1',
      chipId: 'c1',
      provider: 'p1',
      endpoint: 'https://x',
      pricePerHour: '1000',
      noticeMs: 0,
      openedMs: 1,
      closedMs: null,
      closeReason: null,
    });
    a.addDispute({
      leaseId: 'l1',
      jobId: 'j2',
      requestHex: '00',
      reason: 'no answer',
      txHash: 'h',
      error: null,
      createdMs: 7,
    });
    a.avoid('p2', Number.MAX_SAFE_INTEGER, 'bad receipt');
    a.avoid('p2', 10, 'later, shorter'); // never shortens a ban
    a.close();

    const b = new GatewayStore(path);
    const done = b.job('j1')!;
    assert.equal(done.status, 'done');
    assert.equal(done.receiptHex, 'beef');
    assert.equal(done.cost, '123');
    assert.equal(done.input, null, 'the input is dropped once answered');
    assert.equal(b.jobByKey('k1')?.id, 'j1');
    // Running when the gateway stopped, and queued: both to run again, oldest first, inputs kept.
    assert.deepEqual(
      b.unfinishedJobs().map((j) => [j.id, j.status, j.attempts, j.input !== null]),
      [
        ['j2', 'running', 1, true],
        ['j3', 'queued', 0, true],
      ],
    );
    assert.deepEqual(b.countByStatus(), { queued: 1, running: 1, done: 1, failed: 0 });
    assert.equal(b.leases()[0]?.closedMs, null);
    b.closeLease('l1', 20, 'idle');
    b.closeLease('l1', 30, 'again'); // the first close stands
    assert.equal(b.leases()[0]?.closedMs, 20);
    assert.equal(b.disputes().length, 1);
    assert.deepEqual(b.avoided(), [
      { provider: 'p2', untilMs: Number.MAX_SAFE_INTEGER, reason: 'later, shorter' },
    ]);
    assert.deepEqual(
      b.receipts().map((j) => j.id),
      ['j1'],
    );
    b.close();
  });

  test('one idempotency key names one job', () => {
    const s = new GatewayStore(path);
    assert.throws(
      () => s.insertJob({ id: 'j9', idempotencyKey: 'k1', model: 'ocr', input: '{}', createdMs: 9 }),
      /UNIQUE/,
    );
    s.close();
  });

  test('read-only: the CLI can read but not write, and a missing database is an error', () => {
    const r = new GatewayStore(path, { readonly: true });
    assert.equal(r.jobs({ limit: 10 }).length, 3);
    assert.throws(() => r.fail('j3', 'x', 1), /readonly/);
    r.close();
    assert.throws(() => new GatewayStore(join(dir, 'none.db'), { readonly: true }));
  });

  test('a database from before fees kept their block: its fees read as not yet seen included', () => {
    const old = join(dir, 'old.db');
    const db = new Database(old);
    db.exec(
      'CREATE TABLE fees (tx_hash TEXT PRIMARY KEY, kind TEXT NOT NULL, fee TEXT NOT NULL, at_ms INTEGER NOT NULL)',
    );
    db.prepare('INSERT INTO fees VALUES (?, ?, ?, ?)').run('aa', 'openLease', '5', 10);
    db.close();
    const store = new GatewayStore(old);
    assert.deepEqual(store.fees(), [
      {
        txHash: 'aa',
        kind: 'openLease',
        fee: '5',
        atMs: 10,
        includedMs: null,
        seenMs: null,
        expirySeenMs: null,
        expiresAt: null,
      },
    ]);
    store.feeIncluded('aa', 99, 99);
    assert.equal(store.fees()[0]!.includedMs, 99);
    store.close();
  });
});

// The database holds every job's input and result and the renter's spending: created with the
// default umask (0644, in a 0755 folder) any local user could read them.
describe('the gateway database on disk', () => {
  test('is created readable by its owner only, in a folder no one else can list', () => {
    const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-perms-'));
    try {
      const path = join(dir, 'gateway', 'g.db');
      const store = new GatewayStore(path);
      store.insertJob({ id: 'j1', idempotencyKey: null, model: 'ocr', input: '{}', createdMs: 1 });
      for (const f of [path, `${path}-wal`]) assert.equal(statSync(f).mode & 0o777, 0o600, f);
      assert.equal(statSync(join(dir, 'gateway')).mode & 0o077, 0);
      store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('left world-readable by an older build, is made the owner’s only when opened', () => {
    const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-perms-old-'));
    try {
      const path = join(dir, 'g.db');
      new Database(path).close();
      chmodSync(path, 0o644);
      new GatewayStore(path).close();
      assert.equal(statSync(path).mode & 0o777, 0o600);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('gateway store: finished jobs past the retention', () => {
  test('pruneFinishedJobs deletes done and failed jobs finished before the cutoff, at most a batch, never an unfinished one', () => {
    const s = new GatewayStore(':memory:');
    const add = (id: string, createdMs: number) =>
      s.insertJob({ id, idempotencyKey: `k-${id}`, model: 'ocr', input: '{}', createdMs });
    for (let i = 0; i < 5; i++) {
      add(`done${i}`, i);
      s.markRunning(`done${i}`, { leaseId: 'l', provider: 'p', chipId: 'c', nowMs: i });
      s.finish(`done${i}`, { result: '{}', receiptHex: 'beef', cost: 1n, leaseId: 'l', nowMs: 10 + i });
    }
    add('failed', 0);
    s.fail('failed', 'no provider', 12);
    add('late', 0);
    s.fail('late', 'no provider', 100);
    add('queued', 0);
    add('running', 0);
    s.markRunning('running', { leaseId: 'l', provider: 'p', chipId: 'c', nowMs: 1 });
    assert.equal(s.pruneFinishedJobs(15, 3), 3, 'a bounded batch');
    assert.equal(s.pruneFinishedJobs(15, 100), 3, 'the rest finished before 15');
    assert.equal(s.pruneFinishedJobs(15, 100), 0);
    const left = s
      .jobs({ limit: 100 })
      .map((j) => j.id)
      .sort();
    assert.deepEqual(left, ['late', 'queued', 'running'], 'old but unfinished jobs stay, and later ones');
    assert.equal(s.jobByKey('k-done0'), null, 'its idempotency key is free again');
    s.close();
  });
});

describe('gateway store: final disputes past the retention', () => {
  test('pruneDisputes deletes final rows recorded before the cutoff, at most a batch; a dispute still postable stays', () => {
    const s = new GatewayStore(':memory:');
    const lease = (leaseId: string, closedMs: number | null, noticeMs = 0) =>
      s.putLease({
        leaseId,
        offerId: 'o',
        chipId: 'c',
        provider: 'p',
        endpoint: 'https://x',
        pricePerHour: '1',
        noticeMs,
        openedMs: 0,
        closedMs,
        closeReason: closedMs === null ? null : 'idle',
      });
    const dispute = (leaseId: string, jobId: string, txHash: string | null, createdMs: number) =>
      s.addDispute({
        leaseId,
        jobId,
        requestHex: 'aa',
        reason: 'no answer',
        txHash,
        error: txHash ? null : 'x',
        createdMs,
      });
    const WINDOW = 1_000;
    const NOW = 10_000;
    lease('running', null);
    lease('ended-long-ago', 100, 50); // window over at 100 + 50 + 1000 = 1150 < NOW
    lease('ended-recently', 9_500); // window open until 10_500
    lease('in-notice', 8_000, 5_000); // runs through its notice: window open until 14_000
    // Sent (in a block): final, whichever lease.
    for (let i = 0; i < 4; i++) dispute('running', `sent${i}`, `hash${i}`, i);
    // Not sent: final only once the chain takes no dispute of its lease any more.
    dispute('ended-long-ago', 'unsent-over', null, 5);
    dispute('gone', 'unsent-unknown-lease', null, 6);
    dispute('running', 'unsent-running', null, 7);
    dispute('ended-recently', 'unsent-recent', null, 8);
    dispute('in-notice', 'unsent-notice', null, 9);
    // Final, but recorded after the cutoff: kept for the audit.
    dispute('running', 'sent-late', 'hash-late', 500);
    assert.deepEqual(s.pruneDisputes(100, NOW, WINDOW, 2), { deleted: 2, more: true }, 'a bounded batch');
    assert.deepEqual(
      s.pruneDisputes(100, NOW, WINDOW, 100),
      { deleted: 4, more: false },
      'the other final ones recorded before 100',
    );
    assert.equal(s.pruneDisputes(100, NOW, WINDOW, 100).deleted, 0);
    assert.deepEqual(
      s.disputes().map((d) => d.jobId),
      ['unsent-running', 'unsent-recent', 'unsent-notice', 'sent-late'],
    );
    assert.equal(s.disputeCount(), 4);
    // The lease ran out and the window passed: the open ones are final now.
    assert.equal(s.pruneDisputes(100, 20_000, WINDOW, 100).deleted, 2, 'windows of ended leases over');
    s.closeLease('running', 20_000, 'idle');
    assert.equal(s.pruneDisputes(100, 21_001, WINDOW, 100).deleted, 1);
    assert.deepEqual(
      s.disputes().map((d) => d.jobId),
      ['sent-late'],
    );
    s.close();
  });

  test('attack: old rows still postable ahead of the final ones are read at most a batch per call, the next call going on from there', () => {
    const s = new GatewayStore(':memory:');
    s.putLease({
      leaseId: 'running',
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
    const dispute = (jobId: string, txHash: string | null, createdMs: number) =>
      s.addDispute({
        leaseId: 'running',
        jobId,
        requestHex: 'aa',
        reason: 'r',
        txHash,
        error: null,
        createdMs,
      });
    // Requests a caller made fail on a lease that still runs (not sent: over budget), kept while
    // it runs: every pass read them all again to reach the final rows behind them.
    for (let i = 0; i < 5; i++) dispute(`unsent${i}`, null, i);
    dispute('sent5', 'h5', 5);
    dispute('sent6', 'h6', 6);
    assert.deepEqual(
      s.pruneDisputes(100, 1_000, 10, 3),
      { deleted: 0, more: true },
      'three rows read, none final',
    );
    assert.deepEqual(s.pruneDisputes(100, 1_000, 10, 3), { deleted: 1, more: true });
    assert.deepEqual(
      s.pruneDisputes(100, 1_000, 10, 3),
      { deleted: 1, more: false },
      'the end: from the start next time',
    );
    assert.deepEqual(s.pruneDisputes(100, 1_000, 10, 3), { deleted: 0, more: true });
    assert.deepEqual(
      s.disputes().map((d) => d.jobId),
      ['unsent0', 'unsent1', 'unsent2', 'unsent3', 'unsent4'],
    );
    s.close();
  });
});
