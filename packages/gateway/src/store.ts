/**
 * The gateway's embedded database (SQLite through better-sqlite3): every job with its input, result,
 * receipt and cost, every lease it opened, every dispute it recorded. Written before the caller is
 * answered, in WAL mode with synchronous=FULL, so a restart (or a crash) loses no job and no
 * receipt: queued and running jobs are queued again, answered ones keep their answers.
 */
import { createHash } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { MS_PER_HOUR } from './policy.js';

const ONE_HOUR_MS = Number(MS_PER_HOUR);

export function inputHash(input: string): string {
  return createHash('sha256').update(input).digest('hex');
}

export type JobStatus = 'queued' | 'running' | 'done' | 'failed';

export interface JobRow {
  id: string;
  idempotencyKey: string | null;
  model: string;
  /** The request as the caller sent it (JSON), kept until the job is answered, so a restart can run it. */
  input: string | null;
  /** SHA-256 (hex) of the request: an idempotency key reused with another request is refused. */
  inputHash: string;
  status: JobStatus;
  attempts: number;
  leaseId: string | null;
  provider: string | null;
  chipId: string | null;
  /** The result the caller gets (JSON: ocr or outputs). */
  result: string | null;
  receiptHex: string | null;
  /** Base units (decimal string): the lease's price × the chip time the receipt reports. */
  cost: string | null;
  error: string | null;
  createdMs: number;
  startedMs: number | null;
  finishedMs: number | null;
}

export interface LeaseRow {
  leaseId: string;
  offerId: string;
  chipId: string;
  provider: string;
  endpoint: string;
  pricePerHour: string;
  noticeMs: number;
  openedMs: number;
  closedMs: number | null;
  closeReason: string | null;
}

/** A transaction the renter's key sent (or may have sent) and the fee it pays. */
/** A lease opening sent (or about to be) and not yet seen included or dropped; amounts are decimal strings. */
export interface PendingOpenRow {
  txHash: string;
  pricePerHour: string;
  /** The transaction's expiry height. */
  expiresAt: string;
  noticeMs: number;
}

export interface FeeRow {
  txHash: string;
  kind: string;
  /** Base units (decimal string). */
  fee: string;
  /** When it was handed to the node (the gateway's clock). */
  atMs: number;
  /** Block time of the block that included it; null until the gateway has seen that block. */
  includedMs: number | null;
  /**
   * When the gateway first learned it was included (its own clock); null while pending. The chain
   * charged it at or before then, whatever block time the node reports (feesSince).
   */
  seenMs: number | null;
  /**
   * When the gateway first saw the chain past this fee's expiry height (its own clock); null until
   * then. A node may report a transaction included while it holds it and relays it later, up to
   * that height: until an hour after it the fee counts in every window (gateway `feesCounted`).
   */
  expirySeenMs: number | null;
  /** The height after which it can no longer be included (decimal string); null in rows from before it was kept. */
  expiresAt: string | null;
}

export interface DisputeRow {
  leaseId: string;
  jobId: string;
  requestHex: string;
  reason: string;
  txHash: string | null;
  error: string | null;
  createdMs: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY,
  idempotency_key TEXT UNIQUE,
  model TEXT NOT NULL,
  input TEXT,
  input_hash TEXT NOT NULL,
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  lease_id TEXT,
  provider TEXT,
  chip_id TEXT,
  result TEXT,
  receipt_hex TEXT,
  cost TEXT,
  error TEXT,
  created_ms INTEGER NOT NULL,
  started_ms INTEGER,
  finished_ms INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, created_ms);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs(status, finished_ms);
CREATE TABLE IF NOT EXISTS leases (
  lease_id TEXT PRIMARY KEY,
  offer_id TEXT NOT NULL,
  chip_id TEXT NOT NULL,
  provider TEXT NOT NULL,
  endpoint TEXT NOT NULL,
  price_per_hour TEXT NOT NULL,
  notice_ms INTEGER NOT NULL,
  opened_ms INTEGER NOT NULL,
  closed_ms INTEGER,
  close_reason TEXT
);
CREATE TABLE IF NOT EXISTS disputes (
  lease_id TEXT NOT NULL,
  job_id TEXT NOT NULL,
  request_hex TEXT NOT NULL,
  reason TEXT NOT NULL,
  tx_hash TEXT,
  error TEXT,
  created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS disputes_created ON disputes(created_ms);
CREATE TABLE IF NOT EXISTS fees (
  tx_hash TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  fee TEXT NOT NULL,
  at_ms INTEGER NOT NULL,
  included_ms INTEGER,
  expires_at TEXT,
  seen_ms INTEGER,
  expiry_seen_ms INTEGER
);
CREATE TABLE IF NOT EXISTS pending_opens (
  tx_hash TEXT PRIMARY KEY,
  price_per_hour TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  notice_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS avoided (
  provider TEXT PRIMARY KEY,
  until_ms INTEGER NOT NULL,
  reason TEXT NOT NULL
);
`;

/**
 * Fee rows are kept for the renter's audit, so they grow with every transaction: a spend check
 * reads only the ones that can fall in its hour (by the block time that included them) and the
 * pending ones, through these indexes, and the total of every included fee is kept in a row of its
 * own (TEXT: a bigint of base units passes SQLite's 64-bit integers), updated with the fee rows.
 */
const FEE_INDEXES = `
CREATE INDEX IF NOT EXISTS fees_included ON fees(included_ms);
CREATE INDEX IF NOT EXISTS fees_pending ON fees(at_ms) WHERE included_ms IS NULL;
CREATE INDEX IF NOT EXISTS fees_seen ON fees(seen_ms);
CREATE INDEX IF NOT EXISTS fees_expiry_seen ON fees(expiry_seen_ms);
CREATE INDEX IF NOT EXISTS fees_unexpired ON fees(included_ms)
  WHERE included_ms IS NOT NULL AND expiry_seen_ms IS NULL AND expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS fee_totals (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  included TEXT NOT NULL
);
`;

type Row = Record<string, unknown>;

function feeFromRow(r: Row): FeeRow {
  return {
    txHash: r.tx_hash as string,
    kind: r.kind as string,
    fee: r.fee as string,
    atMs: Number(r.at_ms),
    includedMs: r.included_ms === null || r.included_ms === undefined ? null : Number(r.included_ms),
    seenMs: r.seen_ms === null || r.seen_ms === undefined ? null : Number(r.seen_ms),
    expirySeenMs:
      r.expiry_seen_ms === null || r.expiry_seen_ms === undefined ? null : Number(r.expiry_seen_ms),
    expiresAt: (r.expires_at as string | null | undefined) ?? null,
  };
}

function jobFromRow(r: Row): JobRow {
  return {
    id: r.id as string,
    idempotencyKey: (r.idempotency_key as string | null) ?? null,
    model: r.model as string,
    input: (r.input as string | null) ?? null,
    inputHash: r.input_hash as string,
    status: r.status as JobStatus,
    attempts: Number(r.attempts),
    leaseId: (r.lease_id as string | null) ?? null,
    provider: (r.provider as string | null) ?? null,
    chipId: (r.chip_id as string | null) ?? null,
    result: (r.result as string | null) ?? null,
    receiptHex: (r.receipt_hex as string | null) ?? null,
    cost: (r.cost as string | null) ?? null,
    error: (r.error as string | null) ?? null,
    createdMs: Number(r.created_ms),
    startedMs: r.started_ms === null ? null : Number(r.started_ms),
    finishedMs: r.finished_ms === null ? null : Number(r.finished_ms),
  };
}

function leaseFromRow(r: Row): LeaseRow {
  return {
    leaseId: r.lease_id as string,
    offerId: r.offer_id as string,
    chipId: r.chip_id as string,
    provider: r.provider as string,
    endpoint: r.endpoint as string,
    pricePerHour: r.price_per_hour as string,
    noticeMs: Number(r.notice_ms),
    openedMs: Number(r.opened_ms),
    closedMs: r.closed_ms === null ? null : Number(r.closed_ms),
    closeReason: (r.close_reason as string | null) ?? null,
  };
}

/**
 * Makes the database file readable by its owner only (0600), created so before SQLite opens it:
 * it holds every job's input and result and the renter's spending, and with the default umask
 * any local user could read them. SQLite gives its -wal and -shm files the database file's mode;
 * those an older build left world-readable are tightened too. A missing folder is created
 * 0700; an existing one is left as it is (it may be shared, e.g. /tmp): the CLI tightens its own.
 */
function privateFile(path: string): void {
  if (!existsSync(path)) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    closeSync(openSync(path, 'a', 0o600));
  }
  for (const f of [path, `${path}-wal`, `${path}-shm`]) if (existsSync(f)) chmodSync(f, 0o600);
}

function pendingOpenOf(r: Row): PendingOpenRow {
  return {
    txHash: r.tx_hash as string,
    pricePerHour: r.price_per_hour as string,
    expiresAt: r.expires_at as string,
    noticeMs: Number(r.notice_ms),
  };
}

export class GatewayStore {
  private readonly db: Database.Database;
  /** Where the last pruneDisputes call stopped reading; null: at the start. */
  private disputeCursor: { createdMs: number; rowid: number } | null = null;

  /**
   * `readonly`: for `unc gateway jobs/receipts` beside a running gateway. `nowMs`: the gateway's
   * clock (its `now` option), the one its rows are written with; the upgrade of an older database
   * reads it, so a test's or a replay's clock decides, not the host's.
   */
  constructor(path: string, opts: { readonly?: boolean; nowMs?: () => number } = {}) {
    if (!opts.readonly && path !== ':memory:') privateFile(path);
    this.db = new Database(path, { readonly: opts.readonly ?? false, fileMustExist: opts.readonly ?? false });
    if (!opts.readonly) {
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = FULL');
      this.db.exec(SCHEMA);
      // The upgrade is one transaction: a crash between adding a column and filling it left old
      // rows unfilled for good (the next start sees the column): with seen_ms unset, included
      // rows left every window a check reads; with expiry_seen_ms unset, every old included row
      // was read by every check and counted in every window until an hour past the next start.
      this.db.transaction(() => {
        // Databases from before fees were placed at their inclusion's block time: the rows read as
        // not yet seen included, and the next refresh asks the node where each one landed.
        const feeColumns = new Set(
          (this.db.prepare('PRAGMA table_info(fees)').all() as Row[]).map((c) => c.name as string),
        );
        if (!feeColumns.has('included_ms')) this.db.exec('ALTER TABLE fees ADD COLUMN included_ms INTEGER');
        if (!feeColumns.has('expires_at')) this.db.exec('ALTER TABLE fees ADD COLUMN expires_at TEXT');
        // Rows included before the gateway kept when it saw that: the block time the node reported,
        // not before the send nor after now (a node's far-future time would hold it in every window
        // for ever). An honest node's block time is about when the gateway saw it.
        if (!feeColumns.has('seen_ms')) {
          this.db.exec('ALTER TABLE fees ADD COLUMN seen_ms INTEGER');
          this.db
            .prepare(
              'UPDATE fees SET seen_ms = MIN(MAX(at_ms, included_ms), ?) WHERE included_ms IS NOT NULL',
            )
            .run((opts.nowMs ?? Date.now)());
        }
        // Rows included before the gateway kept when it saw their expiry height pass: those seen
        // included over an hour ago are bounded by that, as they were then (nothing better is known
        // of them now, and held in every window the whole history would stop spending for an
        // hour). Those seen within the hour are still counted by it: left unmarked, they count on
        // until the chain is seen past their expiry height, as new ones do (marked with the seen
        // time, a node holding one escaped the budget an hour after it reported it included).
        if (!feeColumns.has('expiry_seen_ms')) {
          this.db.exec('ALTER TABLE fees ADD COLUMN expiry_seen_ms INTEGER');
          this.db
            .prepare(
              'UPDATE fees SET expiry_seen_ms = seen_ms WHERE included_ms IS NOT NULL AND (expires_at IS NULL OR seen_ms < ?)',
            )
            .run((opts.nowMs ?? Date.now)() - ONE_HOUR_MS);
        }
        // After the columns exist (a database from before included_ms had none to index).
        this.db.exec(FEE_INDEXES);
        this.initFeeTotal();
      })();
    }
    this.db.pragma('busy_timeout = 5000');
  }

  close(): void {
    this.db.close();
  }

  insertJob(job: {
    id: string;
    idempotencyKey: string | null;
    model: string;
    input: string;
    createdMs: number;
  }): void {
    this.db
      .prepare(
        `INSERT INTO jobs (id, idempotency_key, model, input, input_hash, status, created_ms)
         VALUES (?, ?, ?, ?, ?, 'queued', ?)`,
      )
      .run(job.id, job.idempotencyKey, job.model, job.input, inputHash(job.input), job.createdMs);
  }

  jobByKey(key: string): JobRow | null {
    const r = this.db.prepare('SELECT * FROM jobs WHERE idempotency_key = ?').get(key) as Row | undefined;
    return r ? jobFromRow(r) : null;
  }

  job(id: string): JobRow | null {
    const r = this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as Row | undefined;
    return r ? jobFromRow(r) : null;
  }

  /** Jobs newest first, at most `limit`, optionally of one status. */
  jobs(opts: { limit: number; status?: JobStatus; beforeMs?: number }): JobRow[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (opts.status) {
      where.push('status = ?');
      args.push(opts.status);
    }
    if (opts.beforeMs !== undefined) {
      where.push('created_ms < ?');
      args.push(opts.beforeMs);
    }
    const sql = `SELECT * FROM jobs ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_ms DESC, id LIMIT ?`;
    return (this.db.prepare(sql).all(...args, opts.limit) as Row[]).map(jobFromRow);
  }

  /** Every answered job with its receipt, oldest first (what `receipts --export` writes). */
  receipts(): JobRow[] {
    return (
      this.db.prepare("SELECT * FROM jobs WHERE status = 'done' ORDER BY finished_ms, id").all() as Row[]
    ).map(jobFromRow);
  }

  /**
   * Deletes at most `limit` finished jobs (done or failed) that finished before `beforeMs` and
   * returns how many went (each status read through `jobs_finished` in finish order, so the work is
   * the rows deleted, not the table). Queued and running ones are never touched, whatever their
   * age. Bounded, so one call holds the database (and the gateway's event loop) for a short while
   * whatever the backlog; the next call takes the rest.
   */
  pruneFinishedJobs(beforeMs: number, limit: number): number {
    const r = this.db
      .prepare(
        `DELETE FROM jobs WHERE id IN (
           SELECT id FROM jobs WHERE status = 'done' AND finished_ms < @before
           UNION ALL SELECT id FROM jobs WHERE status = 'failed' AND finished_ms < @before
           LIMIT @limit)`,
      )
      .run({ before: beforeMs, limit });
    return r.changes;
  }

  /** Jobs a restart must run again: queued, or running when the gateway stopped. Oldest first. */
  unfinishedJobs(): JobRow[] {
    return (
      this.db
        .prepare("SELECT * FROM jobs WHERE status IN ('queued', 'running') ORDER BY created_ms, id")
        .all() as Row[]
    ).map(jobFromRow);
  }

  countByStatus(): Record<JobStatus, number> {
    const out: Record<JobStatus, number> = { queued: 0, running: 0, done: 0, failed: 0 };
    for (const r of this.db.prepare('SELECT status, COUNT(*) AS n FROM jobs GROUP BY status').all() as Row[])
      out[r.status as JobStatus] = Number(r.n);
    return out;
  }

  markRunning(
    id: string,
    attempt: { leaseId: string; provider: string; chipId: string; nowMs: number },
  ): void {
    this.db
      .prepare(
        `UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_id = ?, provider = ?, chip_id = ?,
         started_ms = COALESCE(started_ms, ?) WHERE id = ?`,
      )
      .run(attempt.leaseId, attempt.provider, attempt.chipId, attempt.nowMs, id);
  }

  /** Back to the queue after a failed attempt (its count stays). */
  requeue(id: string, error: string): void {
    this.db.prepare("UPDATE jobs SET status = 'queued', error = ? WHERE id = ?").run(error, id);
  }

  /** The answer, its receipt and cost in one write; the input is no longer needed. */
  finish(
    id: string,
    done: { result: string; receiptHex: string; cost: bigint; leaseId: string; nowMs: number },
  ): void {
    this.db
      .prepare(
        `UPDATE jobs SET status = 'done', result = ?, receipt_hex = ?, cost = ?, lease_id = ?, error = NULL,
         input = NULL, finished_ms = ? WHERE id = ?`,
      )
      .run(done.result, done.receiptHex, done.cost.toString(), done.leaseId, done.nowMs, id);
  }

  fail(id: string, error: string, nowMs: number): void {
    this.db
      .prepare("UPDATE jobs SET status = 'failed', error = ?, input = NULL, finished_ms = ? WHERE id = ?")
      .run(error, nowMs, id);
  }

  putLease(l: LeaseRow): void {
    this.db
      .prepare(
        `INSERT OR REPLACE INTO leases (lease_id, offer_id, chip_id, provider, endpoint, price_per_hour,
         notice_ms, opened_ms, closed_ms, close_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        l.leaseId,
        l.offerId,
        l.chipId,
        l.provider,
        l.endpoint,
        l.pricePerHour,
        l.noticeMs,
        l.openedMs,
        l.closedMs,
        l.closeReason,
      );
  }

  closeLease(leaseId: string, nowMs: number, reason: string): void {
    this.db
      .prepare('UPDATE leases SET closed_ms = ?, close_reason = ? WHERE lease_id = ? AND closed_ms IS NULL')
      .run(nowMs, reason, leaseId);
  }

  leases(): LeaseRow[] {
    return (this.db.prepare('SELECT * FROM leases ORDER BY opened_ms, lease_id').all() as Row[]).map(
      leaseFromRow,
    );
  }

  addDispute(d: DisputeRow): void {
    this.db
      .prepare(
        'INSERT INTO disputes (lease_id, job_id, request_hex, reason, tx_hash, error, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?)',
      )
      .run(d.leaseId, d.jobId, d.requestHex, d.reason, d.txHash, d.error, d.createdMs);
  }

  disputes(): DisputeRow[] {
    return (this.db.prepare('SELECT * FROM disputes ORDER BY created_ms').all() as Row[]).map((r) => ({
      leaseId: r.lease_id as string,
      jobId: r.job_id as string,
      requestHex: r.request_hex as string,
      reason: r.reason as string,
      txHash: (r.tx_hash as string | null) ?? null,
      error: (r.error as string | null) ?? null,
      createdMs: Number(r.created_ms),
    }));
  }

  /** How many disputes are recorded (the status page): counted, not read row by row. */
  disputeCount(): number {
    return Number((this.db.prepare('SELECT COUNT(*) AS n FROM disputes').get() as Row).n);
  }

  /**
   * Deletes the final ones among at most `limit` dispute rows recorded before `beforeMs`, and
   * returns how many went. A row is final once nothing can change what it records: sent (its transaction is in
   * a block: the chain recorded the dispute, and nothing on chain resolves it further, core
   * `applyDispute`), or not sent and no longer postable, its lease over for longer than the chain's
   * posting window (`receiptWindowMs` after its end, core `checkPostingWindow`: LEASE_CLOSED past
   * it), or a lease this database does not know. A row not sent whose lease still runs, or ended
   * within the window, stays whatever its age: its signed request is what `unc market dispute`
   * posts by hand. The lease's end is taken as the gateway saw it close plus its notice (the chain
   * runs a closing lease through its notice), on the gateway's clock, as its rows are. Without
   * this the table grew with every failed request, for ever.
   *
   * Bounded in the rows it reads, not only in those it deletes: at most `limit` rows per call, in
   * `(created_ms, rowid)` order through `disputes_created`, from where the last call stopped (a
   * cursor kept here, back to the start once a call reaches the cutoff). Rows still postable (not
   * sent, their lease running) are kept whatever their age, and a caller whose requests fail on a
   * long lease (each dispute refused over the budget, say) piles them up ahead of the final ones:
   * a pass that filtered them out inside one `LIMIT`ed DELETE read every one of them again, each
   * time, on the gateway's one thread. `more`: the call stopped at `limit` rows, the next goes on.
   */
  pruneDisputes(
    beforeMs: number,
    nowMs: number,
    postingWindowMs: number,
    limit: number,
  ): { deleted: number; more: boolean } {
    const from = this.disputeCursor ?? { createdMs: Number.MIN_SAFE_INTEGER, rowid: 0 };
    const rows = this.db
      .prepare(
        `SELECT d.rowid AS rowid, d.created_ms AS created_ms,
                (d.tx_hash IS NOT NULL OR l.lease_id IS NULL
                 OR (l.closed_ms IS NOT NULL AND l.closed_ms + l.notice_ms + @window < @now)) AS final
           FROM disputes d LEFT JOIN leases l ON l.lease_id = d.lease_id
          WHERE d.created_ms < @before
            AND (d.created_ms > @fromMs OR (d.created_ms = @fromMs AND d.rowid > @fromRow))
          ORDER BY d.created_ms, d.rowid LIMIT @limit`,
      )
      .all({
        before: beforeMs,
        now: nowMs,
        window: postingWindowMs,
        fromMs: from.createdMs,
        fromRow: from.rowid,
        limit,
      }) as Row[];
    const remove = this.db.prepare('DELETE FROM disputes WHERE rowid = ?');
    let deleted = 0;
    this.db.transaction(() => {
      for (const r of rows) if (Number(r.final) === 1) deleted += remove.run(r.rowid).changes;
    })();
    const more = rows.length === limit && limit > 0;
    const last = rows[rows.length - 1];
    this.disputeCursor =
      more && last ? { createdMs: Number(last.created_ms), rowid: Number(last.rowid) } : null;
    return { deleted, more };
  }

  /** Written before the transaction is handed to the node: a crash after it cannot hide the fee. */
  addFee(f: Omit<FeeRow, 'includedMs' | 'seenMs' | 'expirySeenMs'>): void {
    this.db
      .prepare('INSERT OR IGNORE INTO fees (tx_hash, kind, fee, at_ms, expires_at) VALUES (?, ?, ?, ?, ?)')
      .run(f.txHash, f.kind, f.fee, f.atMs, f.expiresAt);
  }

  /** The node refused the transaction, or it was dropped or expired uncharged: it pays nothing. */
  removeFee(txHash: string): void {
    this.db.transaction(() => {
      const r = this.db.prepare('SELECT fee, included_ms FROM fees WHERE tx_hash = ?').get(txHash) as
        | Row
        | undefined;
      if (!r) return;
      if (r.included_ms !== null) this.addToFeeTotal(-BigInt(r.fee as string));
      this.db.prepare('DELETE FROM fees WHERE tx_hash = ?').run(txHash);
    })();
  }

  /**
   * The transaction is in a block of this block time: its fee was charged then, the node says;
   * `seenMs` is when the gateway learned it (its own clock), the latest the charge can be.
   */
  feeIncluded(txHash: string, blockTimeMs: number, seenMs: number): void {
    this.db.transaction(() => {
      const r = this.db.prepare('SELECT fee, included_ms FROM fees WHERE tx_hash = ?').get(txHash) as
        | Row
        | undefined;
      if (!r) return;
      if (r.included_ms === null) this.addToFeeTotal(BigInt(r.fee as string));
      this.db
        .prepare('UPDATE fees SET included_ms = ?, seen_ms = ? WHERE tx_hash = ?')
        .run(blockTimeMs, seenMs, txHash);
    })();
  }

  /**
   * The chain is at `height` (the gateway saw it at `nowMs`, its own clock): the included fees whose
   * expiry height it has passed can no longer be charged later than now. Only rows not yet marked
   * are read (a partial index): each row is marked once.
   */
  feesExpired(height: number, nowMs: number): void {
    this.db
      .prepare(
        `UPDATE fees SET expiry_seen_ms = ? WHERE included_ms IS NOT NULL AND expiry_seen_ms IS NULL
         AND expires_at IS NOT NULL AND CAST(expires_at AS INTEGER) < ?`,
      )
      .run(nowMs, height);
  }

  /** Every fee row, oldest first: the renter's audit (what the key paid, for what, when). */
  fees(): FeeRow[] {
    return this.readFees(this.db.prepare('SELECT * FROM fees ORDER BY at_ms, tx_hash').all() as Row[]);
  }

  /**
   * What a spend check needs of the fees: every one not yet placed at a block time, every one
   * placed at `fromMs` or later (the hour before the chain's latest block time, and after it), and
   * every one the gateway saw included, or saw the chain pass its expiry height, at `seenFromMs`
   * or later (its own clock), and every included one whose expiry height it has not yet seen
   * passed, wherever they were placed. Other rows are not read: they lie in no window the check
   * looks at.
   */
  feesSince(fromMs: number, seenFromMs: number): FeeRow[] {
    return this.readFees(
      this.db
        .prepare(
          `SELECT * FROM fees WHERE included_ms IS NULL
           UNION ALL SELECT * FROM fees WHERE included_ms >= ?
           UNION ALL SELECT * FROM fees WHERE included_ms < ? AND seen_ms >= ?
           UNION ALL SELECT * FROM fees WHERE included_ms < ? AND seen_ms < ? AND expiry_seen_ms >= ?
           UNION ALL SELECT * FROM fees WHERE included_ms < ? AND seen_ms < ?
             AND included_ms IS NOT NULL AND expiry_seen_ms IS NULL AND expires_at IS NOT NULL
           ORDER BY at_ms, tx_hash`,
        )
        .all(fromMs, fromMs, seenFromMs, fromMs, seenFromMs, seenFromMs, fromMs, seenFromMs) as Row[],
    );
  }

  /**
   * Fees not yet placed at a block time, oldest sent first, at most `limit`; with `after`, only
   * those after that one in this order (where the last read stopped).
   */
  pendingFees(limit: number, after?: { atMs: number; txHash: string }): FeeRow[] {
    if (!after)
      return this.readFees(
        this.db
          .prepare('SELECT * FROM fees WHERE included_ms IS NULL ORDER BY at_ms, tx_hash LIMIT ?')
          .all(limit) as Row[],
      );
    return this.readFees(
      this.db
        .prepare(
          `SELECT * FROM fees WHERE included_ms IS NULL AND (at_ms, tx_hash) > (?, ?)
           ORDER BY at_ms, tx_hash LIMIT ?`,
        )
        .all(after.atMs, after.txHash, limit) as Row[],
    );
  }

  /** Every fee placed at a block time, summed: kept in the database, not summed from the rows. */
  includedFeeTotal(): bigint {
    const r = this.db.prepare('SELECT included FROM fee_totals WHERE id = 1').get() as Row | undefined;
    return r ? BigInt(r.included as string) : 0n;
  }

  /** Fee rows read since the store was opened (by the spend checks and the status): tests read it. */
  feeRowsRead = 0;

  private readFees(rows: Row[]): FeeRow[] {
    this.feeRowsRead += rows.length;
    return rows.map(feeFromRow);
  }

  private addToFeeTotal(delta: bigint): void {
    const next = this.includedFeeTotal() + delta;
    this.db
      .prepare(
        'INSERT INTO fee_totals (id, included) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET included = excluded.included',
      )
      .run(next.toString());
  }

  /**
   * Summed from the rows at every open, not only when the total is missing: a build from before the
   * total was kept, or a hand edit, can change the rows without it, and one scan per start is
   * cheap next to a scan per spend check.
   */
  private initFeeTotal(): void {
    this.db.transaction(() => {
      let sum = 0n;
      for (const r of this.db
        .prepare('SELECT fee FROM fees WHERE included_ms IS NOT NULL')
        .iterate() as IterableIterator<Row>)
        sum += BigInt(r.fee as string);
      this.db
        .prepare(
          'INSERT INTO fee_totals (id, included) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET included = excluded.included',
        )
        .run(sum.toString());
    })();
  }

  /**
   * A lease opening about to be handed to the node, until the chain shows it included or dropped
   * or its expiry height passes: a restart counts its rate against the budget as a running lease's.
   */
  addPendingOpen(o: PendingOpenRow): void {
    this.db
      .prepare(
        'INSERT OR REPLACE INTO pending_opens (tx_hash, price_per_hour, expires_at, notice_ms) VALUES (?, ?, ?, ?)',
      )
      .run(o.txHash, o.pricePerHour, o.expiresAt, o.noticeMs);
  }

  removePendingOpen(txHash: string): void {
    this.db.prepare('DELETE FROM pending_opens WHERE tx_hash = ?').run(txHash);
  }

  /**
   * What `unc gateway forget-opening` would forget of the opening sent as `txHash`: its row, and
   * its fee's row while that is not placed in a block (an included fee was charged, the node
   * says, and stays in the renter's audit and spend checks). Null: no such pending opening.
   */
  pendingOpening(txHash: string): { open: PendingOpenRow; heldFee: FeeRow | null } | null {
    const r = this.db.prepare('SELECT * FROM pending_opens WHERE tx_hash = ?').get(txHash) as Row | undefined;
    if (!r) return null;
    const fee = this.readFees(
      this.db.prepare('SELECT * FROM fees WHERE tx_hash = ? AND included_ms IS NULL').all(txHash) as Row[],
    );
    return { open: pendingOpenOf(r), heldFee: fee[0] ?? null };
  }

  /**
   * Forgets a pending opening and its held fee (`pendingOpening`), by its owner's word: an opening
   * whose expiry height a hostile node inflated is otherwise counted against the budget until the
   * chain reaches that height (for ever), and only a hand edit of the database cleared it. One
   * transaction (WAL: a gateway running on the same file reads it before or after, never half),
   * and it removes what was shown or nothing: rows that changed meanwhile (settled by a running
   * gateway, the fee seen included) are not touched and the call returns null.
   */
  forgetPendingOpening(
    txHash: string,
    shown: { open: PendingOpenRow; heldFee: FeeRow | null },
  ): { open: PendingOpenRow; heldFee: FeeRow | null } | null {
    return this.db.transaction(() => {
      const now = this.pendingOpening(txHash);
      if (!now || JSON.stringify(now) !== JSON.stringify(shown)) return null;
      this.db.prepare('DELETE FROM pending_opens WHERE tx_hash = ?').run(txHash);
      if (now.heldFee)
        this.db.prepare('DELETE FROM fees WHERE tx_hash = ? AND included_ms IS NULL').run(txHash);
      return now;
    })();
  }

  pendingOpens(): PendingOpenRow[] {
    return (this.db.prepare('SELECT * FROM pending_opens ORDER BY tx_hash').all() as Row[]).map(
      pendingOpenOf,
    );
  }

  avoid(provider: string, untilMs: number, reason: string): void {
    this.db
      .prepare(
        `INSERT INTO avoided (provider, until_ms, reason) VALUES (?, ?, ?)
         ON CONFLICT(provider) DO UPDATE SET until_ms = MAX(until_ms, excluded.until_ms), reason = excluded.reason`,
      )
      .run(provider, untilMs, reason);
  }

  avoided(): { provider: string; untilMs: number; reason: string }[] {
    return (this.db.prepare('SELECT * FROM avoided').all() as Row[]).map((r) => ({
      provider: r.provider as string,
      untilMs: Number(r.until_ms),
      reason: r.reason as string,
    }));
  }
}
