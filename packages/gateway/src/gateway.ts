/**
 * The elastic inference gateway: an HTTP service in front of leases on the market. It keeps a pool
 * of leases (opened and closed by `policy.ts`'s decisions within a UNC-per-hour budget), routes each
 * job to a lease with a free slot, retries a job whose provider errs, times out or goes offline on
 * another lease, disputes on chain a request that got no answer, and answers only with a receipt it
 * has verified against the chip's on-chain key. Every job, receipt, cost, lease and dispute is in
 * the embedded database before the caller hears of it (`store.ts`).
 *
 * The chain is read through the sdk's RPC client; providers are reached through the sdk's
 * ProviderClient (renter-signed requests, TLS pinned to the offer's certificates).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  addressFromPublicKey,
  type Chip,
  contentHash,
  DEFAULT_MARKET_PARAMS,
  decodeAddress,
  ed25519PublicKey,
  encodeAddress,
  type SignedReceipt,
  toHex,
} from '@unc/core';
import {
  assertChainUnchanged,
  buildTransaction,
  type ChipJson,
  type ChipRecord,
  checkFresh,
  closeLeaseAction,
  decodeSignedJobRequest,
  decodeSignedReceipt,
  disputeAction,
  encodeSignedJobRequest,
  encodeSignedReceipt,
  feeFor,
  type JobResult,
  type LeaseJson,
  LightClient,
  leaseDisputeAllowance,
  NodeUnreachableError,
  OCR_MODEL,
  type OfferJson,
  offerTermsDigest,
  openLeaseAction,
  ProofError,
  ProviderClient,
  ProviderError,
  type ProviderRecordJson,
  RpcClientError,
  receiptToJson,
  recordBurnOf,
  sendTransaction,
  signedHash,
  type TensorJson,
  type TrustAnchor,
  type TxEventJson,
  tensorsFromJson,
  topUpLeaseAction,
  UncClient,
  verifyReceiptOffline,
  walkBoundaries,
} from '@unc/sdk';
import Database from 'better-sqlite3';
import {
  type AttemptFailure,
  AVOID_FOREVER,
  type BudgetLease,
  type ChainLeaseTimes,
  canAffordRate,
  canSpend,
  chargesIn,
  classifyProviderError,
  committedRate,
  committedRateOnChain,
  decideRetry,
  decideScale,
  escrowCovers,
  type FeePaid,
  failureStreak,
  feesIn,
  jobCost,
  LEASE_FAILURE_STREAK_LIMIT,
  leaseSlots,
  MS_PER_HOUR,
  neverIncluded,
  type OfferCandidate,
  pendingFees,
  pickLease,
  quantile,
  REUPLOAD_EVERY_MS,
  type RetryPolicy,
  rankOffers,
  reuploadAllowed,
  type ScaleTargets,
  spendLeases,
  stillCosts,
  topUpAmount,
  topUpRefusal,
} from './policy.js';
import { STATUS_PAGE } from './status-page.js';
import { type FeeRow, GatewayStore, inputHash, type JobRow, type LeaseRow } from './store.js';

export interface GatewayLogger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

const quietLogger: GatewayLogger = { info() {}, warn() {}, error() {} };

/** A model the gateway serves: the provider's built-in OCR, or an ONNX file uploaded to every lease. */
export type GatewayModel = { name: 'ocr' } | { name: string; onnx: Uint8Array };

export interface GatewayOptions {
  nodeUrl: string;
  /** The renter key: it pays for the leases and signs every request. */
  renterSeed: Uint8Array;
  /**
   * The chain the renter key was unlocked for (`unc gateway start` checks the home's chain pin
   * against it): a node whose status then names another chain gets nothing signed (CHAIN_CHANGED).
   */
  chainId?: string;
  /** The most the pool may cost, base units per hour. */
  budgetPerHour: bigint;
  /**
   * With it (`unc gateway start --prove`), what the gateway acts on is read through the light
   * client (Merkle proofs against headers the validators signed, walked from this anchor), never
   * on the node's word: the chip key every receipt is checked against and the chip's liveness
   * (LightClient.verifyChip); every lease value (price, start, end, escrow, deposit, status, chip,
   * provider, offer, endpoint, TLS pins, disputes: LightClient.verifyLease, each lease of this
   * renter's or refused); and the chain's height and time (the node's head verified, never below
   * a height verified before). What stays the node's word: which leases it lists (a list has no
   * proof of completeness: the records of the leases the gateway opened count besides), the
   * offers it lists (the opening signs their terms and price ceiling), transaction inclusion and
   * fee times, and the chain parameters (docs/gateway.md "--prove").
   */
  trustAnchor?: TrustAnchor;
  /**
   * With `trustAnchor`: a chip or lease record, or a head, read at a block older than this (ms,
   * by `now`) is refused (STALE), default 10 minutes. The node picks the height, and a chip
   * deregistered and registered again holds another key: an old state would check receipts
   * against the key it had before; an old lease shows escrow since spent.
   */
  proofMaxAgeMs?: number;
  models: GatewayModel[];
  dbPath: string;
  host?: string;
  port?: number;
  targets?: Partial<ScaleTargets>;
  retry?: Partial<RetryPolicy>;
  /** Time limit of one attempt on a provider (default 30 s). */
  attemptTimeoutMs?: number;
  /**
   * How long a transaction is waited for before the gateway goes on without seeing it included
   * (default 30 s). An opening not seen included still counts against the budget until it is.
   */
  inclusionWaitMs?: number;
  /** Jobs waiting at most (default 10,000): past it a submission is refused with 503. */
  maxQueued?: number;
  /** Largest request body (default 16 MiB). */
  maxBodyBytes?: number;
  /**
   * Bytes of input the unanswered jobs may hold together in memory (default 512 MiB): past it a
   * submission is refused with 503, as past `maxQueued`. Without it 10,000 jobs of 16 MiB each
   * could be queued.
   */
  maxQueuedBytes?: number;
  /** Time a client has to send its whole request, headers and body (default 60 s). */
  requestTimeoutMs?: number;
  /**
   * Jobs sent to one lease at once (default: the provider's job concurrency, at most 16: a
   * provider's own word is not trusted further; never above its per-renter job limit).
   */
  slotsPerLease?: number;
  /** How often the pool is reconsidered, ms (default 500). */
  tickMs?: number;
  /**
   * How long a finished job (done or failed: its result, receipt and cost) is kept in the database
   * after it finished, ms (default JOB_RETENTION_MS, 30 days; 0 keeps every job for ever). Past it
   * the job is deleted: `GET /v1/jobs/<id>` answers 404 and its idempotency key may be used again.
   * Without it the table grew with every job served, for ever.
   */
  jobRetentionMs?: number;
  /** How often lease and chip state is read from the chain, ms (default 2,000). */
  chainRefreshMs?: number;
  /** Only offers of these providers (addresses) are leased; default: any. */
  providers?: string[];
  /** If set, every API call but /health and /metrics needs `Authorization: Bearer <token>`. */
  apiToken?: string;
  /** Dev chains only: providers may serve plain http. */
  allowHttp?: boolean;
  logger?: GatewayLogger;
  /** The clock (ms); tests pass their own. */
  now?: () => number;
}

const DEFAULT_TARGETS: ScaleTargets = {
  queueWaitMs: 2_000,
  latencyP99Ms: 5_000,
  idleCloseMs: 60_000,
  minLeases: 1,
  maxLeases: 4,
  scaleUpCooldownMs: 3_000,
};
const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 5, avoidMs: 300_000 };
const RECENT_WINDOW_MS = 30_000;
/** How long a finished job stays in the database by default (GatewayOptions.jobRetentionMs): 30 days. */
export const JOB_RETENTION_MS = 30 * 86_400_000;
/** Finished jobs deleted at most per pass, and the time between passes that found no more. */
const JOB_PRUNE_BATCH = 1_000;
const JOB_PRUNE_EVERY_MS = 60_000;
/** Pending fees whose inclusion one spend check (or tick) asks the node about (settleFees). */
const MAX_FEES_SETTLED_PER_CHECK = 32;
const IDEMPOTENCY_KEY = /^[A-Za-z0-9_.:-]{1,128}$/;

interface LeaseState {
  row: LeaseRow;
  price: bigint;
  slots: number;
  inFlight: number;
  lastActiveMs: number;
  /** One client per slot: each runs one request at a time, so its last signed request is that job's. */
  idleClients: ProviderClient[];
  allClients: ProviderClient[];
  ocrModelHash: string;
  modelHashes: Map<string, string>;
  /** Uploads of a model again (its provider's store evicted it) under way, by model name. */
  reuploads: Map<string, Promise<unknown>>;
  /**
   * By model name: uploads of it again to this lease so far, and when (gateway clock, ms) the
   * last began; at most one per REUPLOAD_EVERY_MS.
   */
  reuploaded: Map<string, { count: number; lastMs: number }>;
  /** Latencies (ms) of this lease's attempts that answered. */
  latencies: number[];
  answered: number;
  failed: number;
  /** Attempts failed in a row (see `failureStreak`). */
  failureStreak: number;
  closing: boolean;
  /**
   * The lease as the chain last showed it: its escrow and end time (what jobs and top-ups are
   * decided on), its start, hours and deposit (what its dispute allowance is computed from). One
   * view, replaced whole on each read: copies of some of its fields, updated by a top-up while the
   * view kept the deposit from before it, let the allowance lag the chain's (fewer disputes sent
   * than the chain takes). With it the disputes it has recorded or that are on their way: the
   * chain takes one per disputeWaitMs of lease time kept and paid for (TOO_MANY_DISPUTES past it).
   */
  view: LeaseJson;
  disputes: number;
  /** A top-up of its escrow is on its way. */
  toppingUp: boolean;
  /** After a top-up that failed (over the budget, the node refused it), none before this time. */
  topUpRetryAtMs: number;
}

interface PendingDispute {
  lease: LeaseState;
  jobId: string;
  requestHex: string;
  reason: string;
  /** The block time (ms) from which the chain takes it: the request's timestamp + the wait. */
  dueMs: number;
  /** Handed to the node, not yet answered: its lease still waits for it. */
  sending: boolean;
}

/** The protocol's default dispute wait (core DEFAULT_MARKET_PARAMS), for a node that does not name it. */
const DEFAULT_DISPUTE_WAIT_MS = Number(DEFAULT_MARKET_PARAMS.disputeWaitMs);
/** The protocol's default posting window (core DEFAULT_MARKET_PARAMS), for a node that does not name it. */
const DEFAULT_RECEIPT_WINDOW_MS = Number(DEFAULT_MARKET_PARAMS.receiptWindowMs);

interface QueuedJob {
  id: string;
  model: string;
  body: JobBody;
  enqueuedMs: number;
  createdMs: number;
  attempts: number;
  tried: Set<string>;
  /** Providers that called this job's input bad (it fails once enough distinct ones have). */
  rejectedBy: Set<string>;
}

type JobBody = { model: string; image?: string; inputs?: Record<string, TensorJson> };

/** A job as the API shows it. */
export interface GatewayJobView {
  jobId: string;
  status: JobRow['status'];
  model: string;
  attempts: number;
  leaseId: string | null;
  provider: string | null;
  chipId: string | null;
  createdMs: number;
  finishedMs: number | null;
  latencyMs: number | null;
  error: string | null;
  result: unknown;
  receipt: { hex: string; json: ReturnType<typeof receiptToJson> } | null;
  /** Base units: the lease's price × the chip time the receipt reports. */
  cost: string | null;
}

export function jobView(row: JobRow): GatewayJobView {
  let receipt: GatewayJobView['receipt'] = null;
  if (row.receiptHex) {
    receipt = { hex: row.receiptHex, json: receiptToJson(decodeSignedReceipt(row.receiptHex)) };
  }
  return {
    jobId: row.id,
    status: row.status,
    model: row.model,
    attempts: row.attempts,
    leaseId: row.leaseId,
    provider: row.provider,
    chipId: row.chipId,
    createdMs: row.createdMs,
    finishedMs: row.finishedMs,
    latencyMs: row.finishedMs === null ? null : row.finishedMs - row.createdMs,
    error: row.status === 'done' ? null : row.error,
    result: row.result ? JSON.parse(row.result) : null,
    receipt,
    cost: row.cost,
  };
}

export class GatewayHttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export class Gateway {
  readonly store: GatewayStore;
  private readonly client: UncClient;
  private readonly now: () => number;
  private readonly log: GatewayLogger;
  private readonly targets: ScaleTargets;
  private readonly retry: RetryPolicy;
  private readonly renterAddress: string;
  private readonly leases = new Map<string, LeaseState>();
  private readonly queue: QueuedJob[] = [];
  private readonly waiters = new Map<string, ((row: JobRow) => void)[]>();
  private readonly avoided = new Map<string, number>();
  private readonly recent: { atMs: number; latencyMs: number }[] = [];
  private readonly chips = new Map<string, { chip: ChipJson; readMs: number }>();
  private readonly provenChips = new Map<string, { chip: Chip; readMs: number }>();
  /** Set with `trustAnchor`: keeps the validator sets it learnt between reads. */
  private lightClient: LightClient | null = null;
  /**
   * With `trustAnchor`: the newest block any proven read was at (a head, a lease, a chip). A node
   * whose head, or whose answer, is at a lower height serves an older state than one already
   * verified: refused (`HEAD_WENT_BACK`), never acted on.
   */
  private provenHeight = 0n;
  /**
   * With `trustAnchor`: leases proven closed, not read again. Their status, price, times and deposit
   * are final; their dispute count and a held last period's settlement (paid, refunded, remaining)
   * may still change on chain, and are not taken from here (disputes: the gateway's own count).
   */
  private readonly provenClosed = new Map<string, LeaseJson>();
  private readonly records = new Map<string, { record: ProviderRecordJson; readMs: number }>();
  private readonly models = new Map<string, Uint8Array | null>();
  private pendingOpens: bigint[] = [];
  /**
   * Lease openings handed to the node whose inclusion was not seen (the wait timed out, the node
   * blinked): such a transaction may still be included until its expiry height, so its rate counts
   * as running until the chain shows it included (its lease is then recorded, and closed as out of
   * the pool) or dropped, or its expiry has passed. Without this a second opening passed the spend
   * check while the first sat in the mempool, and both ran: past the budget.
   */
  /**
   * The renter's leases as the chain last listed them (read by every refresh and spend check):
   * the status shows the spend from them, as the spend check counts it.
   */
  private chainLeases: ChainLeaseTimes[] = [];
  private readonly unsettledOpens = new Map<
    string,
    {
      rate: bigint;
      expiresAt: bigint;
      noticeMs: number;
      abandoned: boolean;
      /** The endpoint of the offer terms signed; unknown for one a previous run sent. */
      endpoint?: string;
      /** The offer, chip and provider the opening signed; unknown for one a previous run sent. */
      terms?: { offerId: string; chipId: string; provider: string };
    }
  >();
  /** Input bytes held by each unanswered job, and their sum (bounded by `maxQueuedBytes`). */
  private readonly heldBytes = new Map<string, number>();
  private heldBytesTotal = 0;
  /** Leases on their way into the pool (adopted) or out of it (closing on chain): left alone by the refresh. */
  private readonly settling = new Set<string>();
  private readonly closingOnChain = new Set<string>();
  /** Lease openings under way (from the offer search to the lease answering). */
  private opening = 0;
  private lastOpenedMs: number | null = null;
  private lastChainReadMs = 0;
  /** When finished jobs were last pruned (0: at the next tick). */
  private lastJobPruneMs = 0;
  /** When final disputes were last pruned (0: at the next tick). */
  private lastDisputePruneMs = 0;
  /** The chain's window after a lease's end in which its disputes are still taken (unc_getParams). */
  private receiptWindowMs = DEFAULT_RECEIPT_WINDOW_MS;
  private chainId = '';
  private txChain: Promise<unknown> = Promise.resolve();
  private feeParams = { minFeePerByte: 0n, minFeePerAction: 0n };
  /** The chain's latest block time (ms) and when (gateway clock) it was read. */
  private chainTime = { blockMs: 0, readMs: 0 };
  private timer: NodeJS.Timeout | null = null;
  private server: Server | null = null;
  private ticking = false;
  private stopped = false;
  private storeClosed = false;
  private counters = { submitted: 0, answered: 0, failed: 0, retries: 0, disputes: 0, rejectedReceipts: 0 };
  /**
   * How long after a request's timestamp the chain takes a dispute of it (block time; the node's
   * `disputeWaitMs`), and the disputes waiting for it. Their lease is kept open until they are sent:
   * the chain takes a dispute only on a lease its renter kept running through the wait.
   */
  private disputeWaitMs = DEFAULT_DISPUTE_WAIT_MS;
  private readonly pendingDisputes: PendingDispute[] = [];
  url = '';

  constructor(private readonly opts: GatewayOptions) {
    this.now = opts.now ?? Date.now;
    // Before the database is opened: a refused option leaves no handle open.
    if (
      opts.jobRetentionMs !== undefined &&
      !(Number.isSafeInteger(opts.jobRetentionMs) && opts.jobRetentionMs >= 0)
    )
      throw new Error(
        `jobRetentionMs must be an integer ≥ 0 (0 keeps every job), not ${opts.jobRetentionMs}`,
      );
    this.store = new GatewayStore(opts.dbPath, { nowMs: this.now });
    this.client = new UncClient(opts.nodeUrl);
    if (opts.trustAnchor) this.lightClient = new LightClient(this.client, opts.trustAnchor);
    this.log = opts.logger ?? quietLogger;
    this.targets = { ...DEFAULT_TARGETS, ...opts.targets };
    this.retry = { ...DEFAULT_RETRY, ...opts.retry };
    this.renterAddress = encodeAddress(addressFromPublicKey(ed25519PublicKey(opts.renterSeed)));
    if (opts.models.length === 0)
      throw new Error('the gateway needs at least one model (ocr or an .onnx file)');
    for (const m of opts.models) this.models.set(m.name, 'onnx' in m ? m.onnx : null);
    if (opts.budgetPerHour <= 0n) throw new Error('the budget must be more than 0 UNC/h');
    if (
      opts.slotsPerLease !== undefined &&
      !(Number.isSafeInteger(opts.slotsPerLease) && opts.slotsPerLease > 0)
    )
      throw new Error(`slotsPerLease must be a positive integer, not ${opts.slotsPerLease}`);
    // Whoever reaches the API spends the renter's budget: beyond loopback it must ask for a token.
    if (!isLoopbackHost(opts.host ?? '127.0.0.1') && !opts.apiToken)
      throw new Error(
        `the gateway would listen on ${opts.host} without an API token: anyone who reaches it could spend the budget (give it a token, or listen on 127.0.0.1)`,
      );
  }

  get renter(): string {
    return this.renterAddress;
  }

  /** Reads the chain, adopts the leases and jobs a previous run left, starts the API and the pool. */
  async start(): Promise<void> {
    const [chainStatus, params] = await Promise.all([this.client.status(), this.client.getParams()]);
    // Every lease and request is signed for this answer, not the one the key was unlocked for.
    assertChainUnchanged(chainStatus.chainId, this.opts.chainId);
    this.chainId = chainStatus.chainId;
    // With `trustAnchor` the block time is the verified header's, not the status's word.
    const head = this.lightClient ? await this.chainHead() : chainStatus;
    this.chainTime = { blockMs: head.timeMs, readMs: this.now() };
    this.feeParams = {
      minFeePerByte: BigInt(params.minFeePerByte),
      minFeePerAction: BigInt(params.minFeePerAction),
    };
    if (Number.isSafeInteger(params.disputeWaitMs)) this.disputeWaitMs = params.disputeWaitMs;
    if (Number.isSafeInteger(params.receiptWindowMs) && params.receiptWindowMs >= 0)
      this.receiptWindowMs = params.receiptWindowMs;
    const nowMs = this.now();
    for (const a of this.store.avoided()) if (a.untilMs > nowMs) this.avoided.set(a.provider, a.untilMs);
    // Openings a previous run sent and never saw settled: counted until the refresh settles them.
    for (const o of this.store.pendingOpens())
      this.unsettledOpens.set(o.txHash, {
        rate: BigInt(o.pricePerHour),
        expiresAt: BigInt(o.expiresAt),
        noticeMs: o.noticeMs,
        abandoned: true,
      });
    for (const row of this.store.leases()) {
      if (row.closedMs !== null) continue;
      const lease = await this.readLease(row.leaseId).catch((err) => this.unreadLease(row.leaseId, err));
      if (lease === undefined) continue;
      if (lease?.status === 'closing') {
        // Its provider gave notice: it costs until the notice ends unless the renter closes it.
        this.closeOnChain(row.leaseId, 'the provider gave notice');
        continue;
      }
      if (lease?.status !== 'active') {
        this.store.closeLease(row.leaseId, nowMs, lease ? `found ${lease.status}` : 'not found');
        continue;
      }
      await this.adopt(row, lease).catch((err) => {
        // Left open it would spend its escrow on a provider that does not serve: close it.
        this.log.warn('a lease from the previous run does not answer; closing it', {
          leaseId: row.leaseId,
          err: String(err),
        });
        this.closeOnChain(row.leaseId, 'no health answer after a restart');
      });
    }
    for (const row of this.store.unfinishedJobs()) {
      if (!row.input) {
        this.store.fail(row.id, 'its input was lost', nowMs);
        continue;
      }
      this.store.requeue(row.id, row.error ?? '');
      this.hold(row.id, row.input.length);
      this.queue.push({
        id: row.id,
        model: row.model,
        body: JSON.parse(row.input) as JobBody,
        enqueuedMs: nowMs,
        createdMs: row.createdMs,
        attempts: row.attempts,
        tried: new Set(),
        rejectedBy: new Set(),
      });
    }
    this.server = apiServer(
      (req, res) => {
        this.handle(req, res).catch((err) => {
          const e =
            err instanceof GatewayHttpError ? err : new GatewayHttpError(500, 'INTERNAL', String(err));
          if (!(err instanceof GatewayHttpError)) this.log.error('request failed', { err: String(err) });
          if (!res.headersSent) sendJson(res, e.status, { error: { code: e.code, message: e.message } });
          else res.end();
        });
      },
      { requestTimeoutMs: this.opts.requestTimeoutMs ?? 60_000 },
    );
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.opts.port ?? 0, this.opts.host ?? '127.0.0.1', () => resolve());
    });
    const addr = this.server.address() as AddressInfo;
    this.url = `http://${addr.address}:${addr.port}`;
    this.timer = setInterval(() => void this.tick(), this.opts.tickMs ?? 500);
    this.pump();
    void this.tick();
  }

  /** Stops taking jobs; running attempts are left to finish or are taken up again at the next start. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    const closed = new Promise<void>((resolve) =>
      this.server ? this.server.close(() => resolve()) : resolve(),
    );
    // Running attempts get a few seconds to bring their answers home; the rest run again next start.
    const deadline = Date.now() + 5_000;
    while ([...this.leases.values()].some((l) => l.inFlight > 0) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    this.server?.closeAllConnections();
    await closed;
    await this.txChain.catch(() => {});
    for (const d of this.pendingDisputes.splice(0).filter((p) => !p.sending))
      this.store.addDispute({
        leaseId: d.lease.row.leaseId,
        jobId: d.jobId,
        requestHex: d.requestHex,
        reason: d.reason,
        txHash: null,
        error: `the gateway stopped before the provider's response wait passed (block time ${new Date(d.dueMs).toISOString()})`,
        createdMs: this.now(),
      });
    this.storeClosed = true;
    for (const l of this.leases.values()) for (const c of l.allClients) c.close();
    // Its subscription socket (opened by waiting for transactions) would keep the process alive.
    this.client.close();
    this.store.close();
  }

  // -------------------------------------------------------------------------------------------
  // Jobs.

  /** Validates and stores a job (or finds the one with the same idempotency key). */
  submit(body: unknown, idempotencyKey: string | null): { row: JobRow; created: boolean } {
    if (this.stopped) throw new GatewayHttpError(503, 'STOPPING', 'the gateway is stopping');
    if (idempotencyKey !== null && !IDEMPOTENCY_KEY.test(idempotencyKey))
      throw new GatewayHttpError(400, 'BAD_IDEMPOTENCY_KEY', 'Idempotency-Key: 1…128 of A-Z a-z 0-9 _ . : -');
    const job = this.parseJob(body);
    const input = JSON.stringify(job);
    if (idempotencyKey !== null) {
      const existing = this.store.jobByKey(idempotencyKey);
      if (existing) {
        if (existing.inputHash !== inputHash(input))
          throw new GatewayHttpError(
            409,
            'IDEMPOTENCY_KEY_REUSED',
            `Idempotency-Key "${idempotencyKey}" was used for another job (${existing.id})`,
          );
        return { row: existing, created: false };
      }
    }
    const maxQueued = this.opts.maxQueued ?? 10_000;
    if (this.queue.length >= maxQueued)
      throw new GatewayHttpError(
        503,
        'QUEUE_FULL',
        `${this.queue.length} jobs are waiting already; retry later`,
      );
    const maxQueuedBytes = this.opts.maxQueuedBytes ?? 512 * 1024 * 1024;
    if (this.heldBytesTotal + input.length > maxQueuedBytes)
      throw new GatewayHttpError(
        503,
        'QUEUE_FULL',
        `the waiting jobs hold ${this.heldBytesTotal} bytes of input already; retry later`,
      );
    const nowMs = this.now();
    const id = toHex(randomBytes(16));
    this.store.insertJob({ id, idempotencyKey, model: job.model, input, createdMs: nowMs });
    this.queue.push({
      id,
      model: job.model,
      body: job,
      enqueuedMs: nowMs,
      createdMs: nowMs,
      attempts: 0,
      tried: new Set(),
      rejectedBy: new Set(),
    });
    this.counters.submitted++;
    this.hold(id, input.length);
    this.pump();
    return { row: this.store.job(id)!, created: true };
  }

  /** Resolves when the job is done or failed (or at once if it is). */
  waitFor(id: string, timeoutMs: number): Promise<JobRow> {
    const row = this.store.job(id);
    if (!row) return Promise.reject(new GatewayHttpError(404, 'JOB_NOT_FOUND', `no job ${id}`));
    if (row.status === 'done' || row.status === 'failed') return Promise.resolve(row);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        const list = this.waiters.get(id) ?? [];
        this.waiters.set(
          id,
          list.filter((f) => f !== done),
        );
        resolve(this.store.job(id)!);
      }, timeoutMs);
      const done = (r: JobRow) => {
        clearTimeout(timer);
        resolve(r);
      };
      this.waiters.set(id, [...(this.waiters.get(id) ?? []), done]);
    });
  }

  private parseJob(body: unknown): JobBody {
    if (typeof body !== 'object' || body === null || Array.isArray(body))
      throw new GatewayHttpError(400, 'BAD_JOB', 'the body must be a JSON object {model, image | inputs}');
    const { model, image, inputs } = body as Record<string, unknown>;
    if (typeof model !== 'string' || !this.models.has(model))
      throw new GatewayHttpError(
        400,
        'UNKNOWN_MODEL',
        `model must be one of ${[...this.models.keys()].join(', ')}`,
      );
    if (model === OCR_MODEL) {
      if (typeof image !== 'string' || image.length === 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(image))
        throw new GatewayHttpError(
          400,
          'BAD_IMAGE',
          'an OCR job needs image: the PNG or JPEG bytes in base64',
        );
      return { model, image };
    }
    try {
      tensorsFromJson(inputs);
    } catch (err) {
      throw new GatewayHttpError(400, 'BAD_INPUTS', (err as Error).message);
    }
    return { model, inputs: inputs as Record<string, TensorJson> };
  }

  /** Sends queued jobs to leases with a free slot, oldest first. */
  private pump(): void {
    if (this.stopped) return;
    const routable = this.servingLeases().map((l) => ({
      leaseId: l.row.leaseId,
      provider: l.row.provider,
      inFlight: l.inFlight,
      slots: l.slots,
    }));
    if (routable.length === 0) return;
    const avoided = this.avoidedNow();
    for (let i = 0; i < this.queue.length; ) {
      const job = this.queue[i]!;
      const pick = pickLease(routable, { avoidedProviders: avoided, triedLeases: job.tried });
      if (!pick) {
        if (routable.every((l) => l.inFlight >= l.slots)) return;
        i++;
        continue;
      }
      this.queue.splice(i, 1);
      pick.inFlight++;
      void this.attempt(job, this.leases.get(pick.leaseId)!);
    }
  }

  /**
   * The leases that may take a job now: not closing, and paid for (by the chain's time as last
   * seen) until past the longest a job may take. A lease whose escrow runs out sooner takes no
   * job; it is topped up while busy (`topUpLeases`), or it ends and leaves the pool.
   */
  private servingLeases(): LeaseState[] {
    const chainNow = this.chainNowMs();
    const jobMs = this.opts.attemptTimeoutMs ?? 30_000;
    return [...this.leases.values()].filter(
      (l) => !l.closing && escrowCovers(l.view.escrowUntil, chainNow, jobMs),
    );
  }

  /**
   * The chain's time now, for deciding whether a lease's escrow still covers a job: the latest
   * block time read plus the time since, or the gateway's clock if that is later (a chain whose
   * blocks lag must not make the gateway send jobs past an escrow a provider already sees as
   * spent). Erring late only stops a lease taking jobs a little early.
   */
  chainNowMs(): number {
    const nowMs = this.now();
    return Math.max(nowMs, this.chainTime.blockMs + Math.max(0, nowMs - this.chainTime.readMs));
  }

  private async attempt(job: QueuedJob, lease: LeaseState): Promise<void> {
    lease.inFlight++;
    const client = lease.idleClients.pop() ?? this.newClient(lease);
    job.attempts++;
    job.tried.add(lease.row.leaseId);
    const started = this.now();
    this.store.markRunning(job.id, {
      leaseId: lease.row.leaseId,
      provider: lease.row.provider,
      chipId: lease.row.chipId,
      nowMs: started,
    });
    try {
      const result = await this.run(job, lease, client);
      const receipt = await this.verify(result.receipt, lease);
      if (this.storeClosed) return;
      const nowMs = this.now();
      const answer = result.job.ocr ? { ocr: result.job.ocr } : { outputs: result.job.outputs };
      this.store.finish(job.id, {
        result: JSON.stringify(answer),
        receiptHex: encodeSignedReceipt(result.receipt),
        cost: jobCost(lease.price, receipt.durationMs),
        leaseId: lease.row.leaseId,
        nowMs,
      });
      lease.latencies.push(nowMs - started);
      if (lease.latencies.length > 1000) lease.latencies.splice(0, lease.latencies.length - 1000);
      lease.answered++;
      lease.failureStreak = failureStreak(lease.failureStreak, null);
      this.recent.push({ atMs: nowMs, latencyMs: nowMs - job.createdMs });
      this.counters.answered++;
      this.settle(job.id);
    } catch (err) {
      lease.failed++;
      const failure = classifyAttemptFailure(err);
      if (failure === 'bad-receipt') this.counters.rejectedReceipts++;
      if (failure === 'rejected-input') job.rejectedBy.add(lease.row.provider);
      const nowMs = this.now();
      const decision = decideRetry(failure, job.attempts, this.retry, nowMs, job.rejectedBy.size);
      const why = `${failure} on lease ${lease.row.leaseId.slice(0, 16)}: ${(err as Error).message}`;
      this.log.warn('attempt failed', {
        job: job.id,
        lease: lease.row.leaseId,
        failure,
        err: (err as Error).message,
      });
      if (this.storeClosed) return;
      // The dispute is queued before the lease's closing: a closed lease takes no dispute.
      if (decision.dispute && client.lastJobRequest)
        this.dispute(lease, job.id, encodeSignedJobRequest(client.lastJobRequest), `no answer: ${failure}`);
      if (decision.avoidUntilMs !== null) this.avoidProvider(lease.row.provider, decision.avoidUntilMs, why);
      lease.failureStreak = failureStreak(lease.failureStreak, failure);
      if (decision.avoidUntilMs === null && lease.failureStreak >= LEASE_FAILURE_STREAK_LIMIT)
        this.avoidProvider(
          lease.row.provider,
          nowMs + this.retry.avoidMs,
          `${lease.failureStreak} attempts in a row failed (last: ${why})`,
        );
      if (failure === 'lease-refused') this.dropLease(lease, 'the provider refused it');
      if (this.stopped) {
        // Stopping: the job is run again at the next start, not failed.
        this.store.requeue(job.id, why);
      } else if (decision.retry) {
        this.counters.retries++;
        this.store.requeue(job.id, why);
        this.queue.unshift({ ...job, enqueuedMs: job.enqueuedMs });
      } else {
        this.store.fail(job.id, why, nowMs);
        this.counters.failed++;
        this.settle(job.id);
      }
    } finally {
      lease.inFlight--;
      lease.lastActiveMs = this.now();
      client.lastJobRequest = null;
      if (this.leases.has(lease.row.leaseId)) lease.idleClients.push(client);
      else client.close();
      this.pump();
    }
  }

  /**
   * One attempt's steps (the job; after MODEL_NOT_FOUND the model's upload again and the job
   * again) share one deadline, `attemptTimeoutMs` from the attempt's start: each step had its own
   * before, and a provider answering each just in time (or MODEL_NOT_FOUND, then a slow upload)
   * held a job, and one of its lease's slots, for three times the limit. A step is not begun past
   * the deadline (by the gateway's clock), and one under way is given up at it (the provider's
   * late answer is dropped; the request it did not answer in time is disputable as any timeout).
   */
  private async run(job: QueuedJob, lease: LeaseState, client: ProviderClient): Promise<JobResult> {
    const deadlineMs = this.now() + (this.opts.attemptTimeoutMs ?? 30_000);
    const step = <T>(what: string, go: () => Promise<T>): Promise<T> => {
      const left = deadlineMs - this.now();
      if (left <= 0)
        return Promise.reject(new AttemptDeadlineError(`the attempt's deadline passed before ${what}`));
      let timer: NodeJS.Timeout | undefined;
      const expired = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new AttemptDeadlineError(`the attempt's deadline passed during ${what}`)),
          left,
        );
        timer.unref();
      });
      const p = go();
      // Given up at the deadline: its own late failure must not go unhandled.
      p.catch(() => {});
      return Promise.race([p, expired]).finally(() => clearTimeout(timer));
    };
    return this.runSteps(job, lease, client, step);
  }

  private async runSteps(
    job: QueuedJob,
    lease: LeaseState,
    client: ProviderClient,
    step: <T>(what: string, go: () => Promise<T>) => Promise<T>,
  ): Promise<JobResult> {
    if (job.body.model === OCR_MODEL)
      return step('the job', () => client.runOcr(Buffer.from(job.body.image!, 'base64'), lease.ocrModelHash));
    const hash = lease.modelHashes.get(job.body.model);
    if (!hash)
      throw new ProviderError(503, 'MODEL_NOT_UPLOADED', `model ${job.body.model} is not on this lease yet`);
    const name = job.body.model;
    // Uploads of the model again begun before this job was sent: one begun since answers its
    // MODEL_NOT_FOUND (sent before the model was stored anew) without another.
    const uploadsBefore = lease.reuploaded.get(name)?.count ?? 0;
    try {
      return await step('the job', () => client.runJob(hash, job.body.inputs!));
    } catch (err) {
      // A provider's model store has a quota and evicts least recently used models past it (its
      // renters' uploads, ours included): "no such model" is then its honest answer, and taken
      // as a provider error it avoided an honest provider and closed our lease. The model is
      // uploaded again, once, and the job sent again on this lease. The request it answered is no
      // request without an answer: it is never disputed, even if the upload gets none.
      const bytes = this.models.get(name);
      if (!(err instanceof ProviderError && err.code === 'MODEL_NOT_FOUND') || !bytes) throw err;
      client.lastJobRequest = null;
      // At most one upload again per model and lease per REUPLOAD_EVERY_MS: a provider answering
      // MODEL_NOT_FOUND to 4 jobs in 5 and serving the fifth reset its failure streak each time,
      // kept its lease for ever, and cost the renter a whole model upload (up to 256 MiB) per job
      // refused. Past the limit it is the provider's error: avoided, the lease closed (no dispute:
      // it answered).
      // An upload under way is joined; one begun (and done) since this job was sent stored the
      // model anew after it: the job is only sent again. Neither counts against the limit.
      const last = lease.reuploaded.get(name);
      const underWay = lease.reuploads.has(name);
      const storedSinceSent = (last?.count ?? 0) !== uploadsBefore;
      if (!underWay && !storedSinceSent && !reuploadAllowed(last?.lastMs, this.now()))
        throw new ProviderError(
          502,
          'MODEL_LOST',
          `the provider lost model ${name} again within ${REUPLOAD_EVERY_MS / 60_000} minutes of storing it anew`,
        );
      try {
        if (underWay || !storedSinceSent)
          await step('the model upload again', () => this.reupload(lease, client, name, bytes));
      } catch (e) {
        // The provider took these very bytes when the lease was adopted (a refusal there avoids
        // it and closes the lease): refusing them now is its doing, not the job's input. Taken
        // for a bad input, it held nothing against the provider (streak unchanged, never
        // avoided), and every job it answered MODEL_NOT_FOUND cost the renter a model upload.
        if (e instanceof ProviderError && classifyAttemptFailure(e) === 'rejected-input')
          throw new ProviderError(
            502,
            'MODEL_REFUSED',
            `the provider refused the model it took for this lease: ${e.message}`,
          );
        throw e;
      }
      return await step('the job again', () => client.runJob(hash, job.body.inputs!));
    }
  }

  /**
   * Uploads a model to a lease again; jobs of the lease that found it missing at once share one
   * upload (each its own would take the provider's few places for models being received).
   */
  private async reupload(lease: LeaseState, client: ProviderClient, name: string, bytes: Uint8Array) {
    let upload = lease.reuploads.get(name);
    if (!upload) {
      upload = client.uploadModel(bytes).finally(() => lease.reuploads.delete(name));
      lease.reuploads.set(name, upload);
      const count = (lease.reuploaded.get(name)?.count ?? 0) + 1;
      lease.reuploaded.set(name, { count, lastMs: this.now() });
      this.log.info('uploading a model again (the provider evicted it)', {
        lease: lease.row.leaseId,
        model: name,
      });
    }
    await upload;
  }

  /**
   * The receipt against the chain: signed by the leased chip's registered key (read from the node),
   * for this lease and chain. The client already matched it to the model, inputs and outputs.
   */
  private async verify(signed: SignedReceipt, lease: LeaseState): Promise<SignedReceipt['receipt']> {
    if (toHex(signed.receipt.chipId) !== lease.row.chipId)
      throw new BadReceiptError('the receipt names another chip than the leased one');
    const chip = await this.receiptChip(lease.row.chipId);
    try {
      return verifyReceiptOffline(signed, chip, this.chainId);
    } catch (err) {
      throw new BadReceiptError(`the receipt does not verify against the chain: ${(err as Error).message}`);
    }
  }

  /** The node's view of a chip (liveness: advisory, for choosing providers). */
  private async chip(chipId: string): Promise<ChipJson> {
    const cached = this.chips.get(chipId);
    if (cached && this.now() - cached.readMs < 30_000) return cached.chip;
    const chip = await this.client.call<ChipJson>('unc_getChip', [chipId]);
    this.chips.set(chipId, { chip, readMs: this.now() });
    return chip;
  }

  /** The record a receipt is checked against: proven with `trustAnchor`, else the node's view. */
  private async receiptChip(chipId: string): Promise<ChipRecord> {
    if (!this.lightClient) return this.chip(chipId);
    const cached = this.provenChips.get(chipId);
    if (cached && this.now() - cached.readMs < 30_000) return cached.chip;
    const { chip } = await this.provenChip(this.lightClient, chipId);
    this.provenChips.set(chipId, { chip, readMs: this.now() });
    return chip;
  }

  /**
   * A leased chip's status and liveness, which decide whether its provider is avoided: proven
   * with `trustAnchor` (read afresh: a node calling an offline chip online kept its lease paid),
   * else the node's view.
   */
  private async liveness(chipId: string): Promise<{ online: boolean; status: string }> {
    if (!this.lightClient) return this.chip(chipId);
    const r = await this.provenChip(this.lightClient, chipId);
    this.provenChips.set(chipId, { chip: r.chip, readMs: this.now() });
    return { online: r.online, status: r.status };
  }

  /** The chip record proven by the light client (its key, status and liveness at a verified block). */
  private async provenChip(lc: LightClient, chipId: string): Promise<ProvenChipRead> {
    const floor = this.provenHeight;
    const r = await walkBoundaries(() => lc.verifyChip(this.client, chipId, this.freshness()));
    if (r.chip === null)
      throw new ProofError(
        `chip ${chipId} is proven absent from the chain: no key to check receipts against`,
        'NOT_PROVEN',
      );
    this.noteProvenHeight(r.header.header.height, floor, `chip ${chipId}`);
    return r;
  }

  /** What a proven read accepts: a block no older than `proofMaxAgeMs` by the gateway's clock. */
  private freshness(): { notBefore: bigint } {
    return { notBefore: BigInt(this.now() - (this.opts.proofMaxAgeMs ?? DEFAULT_PROOF_MAX_AGE_MS)) };
  }

  /**
   * A proven read at `height`, asked once `floor` (the newest height then verified) was known:
   * refused below it (the node went back to an older state, true but old: a lease's escrow since
   * spent, a head before an expiry), kept as the newest otherwise. Reads in flight together may
   * end in any order; only what was verified before a read was asked binds its answer.
   */
  private noteProvenHeight(height: bigint, floor: bigint, what: string): void {
    if (height < floor)
      throw new ProofError(
        `${what} was read at block ${height}, below block ${floor} verified before: the node went back to an older state (or another node answers); not acted on. ${WENT_BACK_ADVICE(floor)}`,
        'HEAD_WENT_BACK',
      );
    if (height > this.provenHeight) this.provenHeight = height;
  }

  /**
   * The chain's head as the gateway acts on it (expiry heights, escrow and dispute times): the
   * node's status, and with `trustAnchor` its height verified (the header a commit of the
   * validators signs, no older than `proofMaxAgeMs`, never below a height verified before) and its
   * time the header's, not the status's.
   */
  private async chainHead(): Promise<{ height: number; timeMs: number }> {
    const floor = this.provenHeight;
    const st = await this.client.status();
    const lc = this.lightClient;
    if (!lc) return { height: st.height, timeMs: st.timeMs };
    if (!Number.isSafeInteger(st.height) || st.height < 1)
      throw new ProofError(`the node's head height ${String(st.height)} is not a block height`, 'MALFORMED');
    // A lower claim is refused without fetching anything; a higher one counts only once verified
    // (an unprovable claim must not raise the floor the honest answers are then held to).
    if (BigInt(st.height) < floor)
      throw new ProofError(
        `the node's head is block ${st.height}, below block ${floor} verified before: the node went back to an older state (or another node answers); not acted on. ${WENT_BACK_ADVICE(floor)}`,
        'HEAD_WENT_BACK',
      );
    const v = await walkBoundaries(() => lc.verifyHeight(st.height));
    checkFresh(v.header.time, this.freshness(), "the node's head", st.height);
    this.noteProvenHeight(v.header.height, floor, "the node's head");
    return { height: Number(v.header.height), timeMs: Number(v.header.time) };
  }

  /**
   * A lease of this renter's: with `trustAnchor` proven (LightClient.verifyLease: every field,
   * its offer's endpoint and TLS pins, its status at the verified block), of this renter or
   * refused (WRONG_RECORD), at a block no older than `proofMaxAgeMs` nor below one verified
   * before; without it, the node's word. A lease the chain does not hold is an error either way.
   */
  private async readLease(leaseId: string): Promise<LeaseJson> {
    const lc = this.lightClient;
    if (!lc) return this.client.getLease(leaseId);
    const closed = this.provenClosed.get(leaseId);
    if (closed) return closed;
    const floor = this.provenHeight;
    const r = await walkBoundaries(() => lc.verifyLease(this.client, leaseId, this.freshness()));
    if (r.lease === null) throw new ProvenAbsentError(`lease ${leaseId} is proven absent from the chain`);
    if (r.json.renter !== this.renterAddress)
      throw new ProofError(
        `lease ${leaseId} is proven to be of renter ${r.json.renter}, not this gateway's ${this.renterAddress}`,
        'WRONG_RECORD',
      );
    this.noteProvenHeight(r.header.header.height, floor, `lease ${leaseId}`);
    // When the chain takes a dispute, proven beside the lease (unc_getParams' is the node's word):
    // a node naming a shorter wait had disputes sent early (refused, their fees lost), a longer
    // one had leases kept open (and paid) past the wait.
    if (r.market.disputeWaitMs <= BigInt(Number.MAX_SAFE_INTEGER))
      this.disputeWaitMs = Number(r.market.disputeWaitMs);
    // checkLease compared every field of the answer with the proven record: the answer is proven.
    const lease: LeaseJson = {
      ...r.json,
      endpoint: r.endpoint,
      tlsFingerprints: r.tlsFingerprints,
      status: r.status,
    };
    if (lease.status === 'closed') this.provenClosed.set(leaseId, lease);
    return lease;
  }

  /**
   * A lease read that failed, for callers that go on without it: undefined (left for the next
   * pass) when the proof failed (the node lied or lags: nothing is decided on its word), null
   * when the lease was not found (the node's word without `trustAnchor`, proven with it).
   */
  private unreadLease(leaseId: string, err: unknown): null | undefined {
    if (err instanceof ProofError) {
      this.log.warn('a lease read was not proven; left for the next pass', {
        lease: leaseId,
        err: String(err),
      });
      return undefined;
    }
    return null;
  }

  /**
   * The renter's leases the node lists, each proven with `trustAnchor` (readLease). Which leases it
   * lists stays its word (no proof of a list's completeness): the records of the leases this
   * gateway opened count besides (committedRateOnChain, spendLeases).
   */
  private async readLeases(): Promise<LeaseJson[]> {
    const listed = await this.client.getLeases({ renter: this.renterAddress });
    if (!this.lightClient) return listed;
    const out: LeaseJson[] = [];
    for (const l of listed) out.push(await this.readLease(l.id));
    return out;
  }

  private hold(id: string, bytes: number): void {
    this.heldBytes.set(id, bytes);
    this.heldBytesTotal += bytes;
  }

  /** The job is answered or failed: its input leaves memory. */
  private settle(id: string): void {
    this.heldBytesTotal -= this.heldBytes.get(id) ?? 0;
    this.heldBytes.delete(id);
    const list = this.waiters.get(id);
    if (!list) return;
    this.waiters.delete(id);
    const row = this.store.job(id)!;
    for (const f of list) f(row);
  }

  private avoidedNow(): Set<string> {
    const nowMs = this.now();
    const out = new Set<string>();
    for (const [p, until] of this.avoided) if (until > nowMs) out.add(p);
    return out;
  }

  private avoidProvider(provider: string, untilMs: number, reason: string): void {
    this.avoided.set(provider, Math.max(untilMs, this.avoided.get(provider) ?? 0));
    this.store.avoid(provider, untilMs, reason);
    // Its leases take no more jobs; they are closed (the renter closes at once, unused escrow back).
    for (const l of this.leases.values())
      if (l.row.provider === provider) this.dropLease(l, `provider avoided: ${reason}`);
  }

  /**
   * Queues a dispute of a request that got no answer. The chain takes it only once its block time
   * has passed the request's timestamp + the dispute wait (the provider's time to answer), so it is
   * sent then (`sendDueDisputes`), and its lease is kept open until it is sent (`dropLease`).
   */
  private dispute(lease: LeaseState, jobId: string, requestHex: string, reason: string): void {
    const request = decodeSignedJobRequest(requestHex);
    this.counters.disputes++;
    const dueMs = Number(request.request.timestampMs) + this.disputeWaitMs;
    this.pendingDisputes.push({ lease, jobId, requestHex, reason, dueMs, sending: false });
    this.sendDueDisputes();
  }

  /**
   * Sends the disputes whose wait the chain's latest block time (as last read) has passed; each
   * stays pending (holding its lease open) until the node has answered it. Only as many as the
   * lease's dispute allowance takes (one per disputeWaitMs of lease time kept and paid for): the
   * chain refuses more. Past it, a dispute of a lease still serving waits for the next one the
   * lease earns; one of a closing lease, or of one over on chain, is recorded unsent (holding the lease open longer would be
   * rent paid to the failing provider only to record its failure again).
   */
  private sendDueDisputes(): void {
    for (const d of [...this.pendingDisputes]) {
      if (d.sending || d.dueMs > this.chainTime.blockMs) continue;
      const l = d.lease;
      const { allowed } = leaseDisputeAllowance(l.view, this.chainTime.blockMs, this.disputeWaitMs);
      if (l.disputes >= allowed) {
        // A lease still serving earns more; one closing, or already out of the pool (over on
        // chain: it earns no more), never will, and its dispute would wait here for ever.
        if (!l.closing && this.leases.get(l.row.leaseId) === l) continue;
        this.pendingDisputes.splice(this.pendingDisputes.indexOf(d), 1);
        const error = `not sent: lease ${l.row.leaseId} has ${l.disputes} disputes, all the chain allows it so far (one per ${this.disputeWaitMs / 1000} s of lease time kept; TOO_MANY_DISPUTES past it), and it is closing or over`;
        this.log.warn('dispute not sent', { lease: l.row.leaseId, job: d.jobId, err: error });
        this.store.addDispute({
          leaseId: l.row.leaseId,
          jobId: d.jobId,
          requestHex: d.requestHex,
          reason: d.reason,
          txHash: null,
          error,
          createdMs: this.now(),
        });
        continue;
      }
      d.sending = true;
      l.disputes++;
      this.sendDispute(l, d.jobId, d.requestHex, d.reason)
        .then((sent) => {
          if (!sent) l.disputes--;
        })
        .catch(() => undefined) // already logged; a store closed meanwhile is the only other cause
        .finally(() => {
          const i = this.pendingDisputes.indexOf(d);
          if (i >= 0) this.pendingDisputes.splice(i, 1);
        });
    }
  }

  private disputePending(lease: LeaseState): boolean {
    return this.pendingDisputes.some((d) => d.lease === lease);
  }

  /** Sends one dispute; true when the node took it (it counts against the lease's allowance). */
  private sendDispute(
    lease: LeaseState,
    jobId: string,
    requestHex: string,
    reason: string,
  ): Promise<boolean> {
    const request = decodeSignedJobRequest(requestHex);
    return this.sendTx([disputeAction(request, reason.slice(0, 200))], 'dispute', {
      newRate: 0n,
      commitsClose: false,
    })
      .then(({ hash }) => {
        this.store.addDispute({
          leaseId: lease.row.leaseId,
          jobId,
          requestHex,
          reason,
          txHash: hash,
          error: null,
          createdMs: this.now(),
        });
        return true;
      })
      .catch((err) => {
        this.log.warn('dispute not recorded', { lease: lease.row.leaseId, err: String(err) });
        this.store.addDispute({
          leaseId: lease.row.leaseId,
          jobId,
          requestHex,
          reason,
          txHash: null,
          error: String((err as Error).message ?? err),
          createdMs: this.now(),
        });
        return false;
      });
  }

  // -------------------------------------------------------------------------------------------
  // The pool.

  private async tick(): Promise<void> {
    if (this.ticking || this.stopped) return;
    this.ticking = true;
    try {
      const nowMs = this.now();
      // First: it needs no chain, so a node down does not hold the database's growth up.
      this.pruneFinishedJobs(nowMs);
      this.pruneDisputes(nowMs);
      if (nowMs - this.lastChainReadMs >= (this.opts.chainRefreshMs ?? 2_000)) {
        this.lastChainReadMs = nowMs;
        await this.refreshLeases();
      }
      this.sendDueDisputes();
      while (this.recent.length > 0 && nowMs - this.recent[0]!.atMs > RECENT_WINDOW_MS) this.recent.shift();
      const decision = decideScale(this.poolView(nowMs), this.targets, nowMs);
      for (const id of decision.close) {
        const l = this.leases.get(id);
        if (l) this.dropLease(l, 'idle');
      }
      if (decision.open > 0) {
        this.log.info('scaling up', { reason: decision.reason });
        for (let i = 0; i < decision.open; i++) void this.openLease(decision.reason);
      }
      this.topUpLeases();
      this.pump();
    } catch (err) {
      this.log.warn('pool tick failed', { err: String(err) });
    } finally {
      this.ticking = false;
    }
  }

  /**
   * Deletes the jobs finished longer than the retention ago, a bounded batch per tick: a full batch
   * means more are due and the next tick goes on; otherwise the next pass is a minute away.
   */
  private pruneFinishedJobs(nowMs: number): void {
    const retention = this.opts.jobRetentionMs ?? JOB_RETENTION_MS;
    if (retention === 0 || nowMs - this.lastJobPruneMs < JOB_PRUNE_EVERY_MS) return;
    const deleted = this.store.pruneFinishedJobs(nowMs - retention, JOB_PRUNE_BATCH);
    this.lastJobPruneMs = deleted === JOB_PRUNE_BATCH ? 0 : nowMs;
    if (deleted > 0) this.log.info('finished jobs pruned', { deleted, retentionMs: retention });
  }

  /**
   * Deletes the final dispute rows (store.pruneDisputes) recorded longer than the job retention ago
   * (the renter's audit keeps a dispute as long as the job it disputes; 0 keeps them all), a
   * bounded batch per tick like the jobs'. A failing provider, or a caller who makes requests fail,
   * otherwise grew the table with every request disputed or recorded as not sent. A tick reads at
   * most a batch of rows, deleted or not (store.pruneDisputes).
   */
  private pruneDisputes(nowMs: number): void {
    const retention = this.opts.jobRetentionMs ?? JOB_RETENTION_MS;
    if (retention === 0 || nowMs - this.lastDisputePruneMs < JOB_PRUNE_EVERY_MS) return;
    const { deleted, more } = this.store.pruneDisputes(
      nowMs - retention,
      nowMs,
      this.receiptWindowMs,
      JOB_PRUNE_BATCH,
    );
    // A batch read whole: the next tick reads on (each tick reads at most a batch).
    this.lastDisputePruneMs = more ? 0 : nowMs;
    if (deleted > 0) this.log.info('final disputes pruned', { deleted, retentionMs: retention });
  }

  private poolView(nowMs: number) {
    const oldest = this.queue.reduce((m, j) => Math.min(m, j.enqueuedMs), Number.POSITIVE_INFINITY);
    return {
      leases: this.servingLeases().map((l) => ({
        leaseId: l.row.leaseId,
        inFlight: l.inFlight,
        slots: l.slots,
        openedAtMs: l.row.openedMs,
        lastActiveMs: l.lastActiveMs,
        noticeMs: l.row.noticeMs,
      })),
      opening: this.opening,
      queued: this.queue.length,
      oldestWaitMs: this.queue.length === 0 ? 0 : nowMs - oldest,
      recentP99Ms: quantile(
        this.recent.map((r) => r.latencyMs),
        0.99,
      ),
      lastOpenedMs: this.lastOpenedMs,
    };
  }

  /** Opens the best affordable offer; never rejects (its callers do not wait for it). */
  async openLease(reason: string): Promise<void> {
    // Counted from now, so the next tick neither opens another nor finds the cooldown over.
    this.opening++;
    this.lastOpenedMs = this.now();
    try {
      await this.openBestOffer(reason);
    } catch (err) {
      // Called without waiting (`void`): a rejection here would end the process on the first
      // blink of the node (offers or leases unreadable). The next tick tries again.
      this.log.warn('could not look for a lease to open', { reason, err: String(err) });
    } finally {
      this.opening--;
      this.lastOpenedMs = this.now();
    }
  }

  private async openBestOffer(reason: string): Promise<void> {
    const offers = await this.client.getOffers();
    const candidates: OfferCandidate[] = [];
    // The entry each candidate was ranked from: its terms are the ones signed (termsDigest). Not
    // looked up again by id: a node listing an offer twice (the chain's entry, filtered out, then a
    // copy that passes) would have the chain's terms signed for a lease the filters refused.
    const rankedFrom = new Map<OfferCandidate, OfferJson>();
    for (const o of offers) {
      if (o.status !== 'open') continue;
      if (this.opts.providers && !this.opts.providers.includes(o.provider)) continue;
      if (!this.opts.allowHttp && !o.endpoint.startsWith('https://')) continue;
      const record = await this.record(o.provider);
      for (const c of o.chips) {
        if (!c.available || !c.online) continue;
        const candidate = candidateOf(o, c, record);
        rankedFrom.set(candidate, o);
        candidates.push(candidate);
      }
    }
    const held = new Set([...this.leases.values()].map((l) => l.row.chipId));
    const committed = await this.committedNow();
    const ranked = rankOffers(candidates, {
      rateLeft: this.opts.budgetPerHour - committed - this.pendingRates().reduce((a, b) => a + b, 0n),
      avoidedProviders: this.avoidedNow(),
      heldChips: held,
    });
    const best = ranked[0];
    if (!best) {
      this.log.warn('no offer to lease within the budget', { reason, committed: committed.toString() });
      return;
    }
    if (!canAffordRate(committed, this.pendingRates(), best.pricePerHour, this.opts.budgetPerHour)) return;
    // Counted as running from the moment its transaction passes the spend check: in flight until
    // it is handed to the node, then as an opening that may be included (`unsettledOpens`, kept
    // across restarts) until the chain lists its lease or shows it will not.
    let pending = false;
    let sentHash: string | null = null;
    const release = () => {
      if (pending) this.pendingOpens.splice(this.pendingOpens.indexOf(best.pricePerHour), 1);
      pending = false;
    };
    try {
      // As long as the offer allows, with the least deposit it accepts: the escrow is topped up
      // while the lease is busy, and the renter's close refunds what was not used.
      const hours = Math.max(1, best.maxHours ?? best.minHours, best.minHours);
      const deposit = best.pricePerHour * BigInt(Math.max(1, best.minHours));
      const { events } = await this.sendTx(
        // The price ranked and budgeted is signed as the most the lease may cost: the offers are the
        // node's word, and a lease at a higher real price would overrun the budget and drain the deposit.
        [
          openLeaseAction(best.offerId, hours, {
            chipId: best.chipId,
            deposit,
            maxPricePerHour: best.pricePerHour,
            termsDigest: offerTermsDigest(rankedFrom.get(best) as OfferJson),
          }),
        ],
        'openLease',
        {
          newRate: best.pricePerHour,
          commitsClose: true,
          onAllowed: () => {
            this.pendingOpens.push(best.pricePerHour);
            pending = true;
          },
          onSending: (hash, expiresAt) => {
            // Counted from here as an opening that may be included (once: not as in flight too).
            release();
            sentHash = hash;
            this.unsettledOpens.set(hash, {
              rate: best.pricePerHour,
              expiresAt,
              noticeMs: best.noticeMs,
              abandoned: false,
              endpoint: (rankedFrom.get(best) as OfferJson).endpoint,
              terms: {
                offerId: (rankedFrom.get(best) as OfferJson).id.toLowerCase(),
                chipId: best.chipId.toLowerCase(),
                provider: encodeAddress(decodeAddress((rankedFrom.get(best) as OfferJson).provider)),
              },
            });
            this.store.addPendingOpen({
              txHash: hash,
              pricePerHour: best.pricePerHour.toString(),
              expiresAt: expiresAt.toString(),
              noticeMs: best.noticeMs,
            });
          },
        },
      );
      const opened = events.find((e) => e.type === 'leaseOpened') as
        | Extract<TxEventJson, { type: 'leaseOpened' }>
        | undefined;
      // Included without a lease, the node says: it may hold the transaction and relay it later,
      // until its expiry height, and the lease would then open beside the ones opened meanwhile.
      // Its rate counts on (the catch below leaves it to settleOpens) until that height passes.
      if (!opened) throw new Error('the lease transaction opened no lease');
      // The lease id is the node's word (the chain derives it from a counter): one naming a lease
      // recorded already would have that row replaced (its endpoint moved to this offer's, a closed
      // one counted open again). Left as it is; the opening counts on until settleOpens.
      if (this.store.leases().some((r) => r.leaseId === opened.leaseId))
        throw new Error(
          `LEASE_ID_TAKEN: the node reports the new lease as ${opened.leaseId}, a lease recorded already; its record is kept (the node may be lying)`,
        );
      const lease = await this.readLease(opened.leaseId);
      // The endpoint recorded is the one in the terms signed (termsDigest: the chain refused the
      // lease had the offer named another), not the node's later report of it: see adopt. So are
      // the offer and its provider (in the terms too: a bad receipt bans the recorded provider, so
      // a node naming another had an honest one banned for the liar's receipts), and the chip: the
      // opening names it (the chain leases exactly that chip, CHIP_NOT_OFFERED or
      // CHIP_UNAVAILABLE otherwise), and receipts are checked against it (verify, proven with
      // `trustAnchor`); the node's word would let a provider answer from a chip the node names.
      const signedOffer = rankedFrom.get(best) as OfferJson;
      const row = {
        ...openLeaseRow(lease, best.noticeMs, this.now()),
        endpoint: signedOffer.endpoint,
        offerId: signedOffer.id.toLowerCase(),
        // Canonical: the digest bound its bytes, not its spelling.
        provider: encodeAddress(decodeAddress(signedOffer.provider)),
        chipId: best.chipId.toLowerCase(),
      };
      const otherwise =
        lease.chipId !== row.chipId || lease.provider !== row.provider || lease.offerId !== row.offerId;
      // Proven (`trustAnchor`), a lease on other terms than the opening signed is not this opening's
      // (the chain opens none otherwise): the node named another lease of this renter's.
      if (otherwise && this.lightClient)
        throw new Error(
          `LEASE_NOT_OPENED: the node reports the new lease as ${row.leaseId}, proven to be on chip ${lease.chipId} of offer ${lease.offerId} (provider ${lease.provider}), not the chip, offer and provider the opening signed; not recorded`,
        );
      if (otherwise)
        this.log.warn(
          'the node reports the new lease otherwise than the opening signed; recorded as signed',
          {
            lease: row.leaseId,
            signed: { offer: row.offerId, provider: row.provider, chip: row.chipId },
            reported: { offer: lease.offerId, provider: lease.provider, chip: lease.chipId },
          },
        );
      // Recorded before it is used: the budget counts it from now on, across restarts too.
      this.settling.add(row.leaseId);
      this.store.putLease(row);
      // Recorded: the opening is settled (until here a crash left it to the next run's refresh,
      // which records its lease from the chain).
      if (sentHash) this.forgetOpen(sentHash);
      // On chain and recorded: counted from here as the others are.
      release();
      this.log.info('lease opened', {
        lease: row.leaseId,
        provider: row.provider,
        price: row.pricePerHour,
        reason,
      });
      await this.adopt(row, lease).catch((err) => {
        this.log.warn('the new lease does not answer; closing it', { lease: row.leaseId, err: String(err) });
        this.avoidProvider(row.provider, this.now() + this.retry.avoidMs, `no health answer: ${String(err)}`);
        this.closeOnChain(row.leaseId, 'no health answer');
      });
      this.settling.delete(row.leaseId);
    } catch (err) {
      this.log.warn('could not open a lease', { offer: best.offerId, err: String(err) });
      // Sent but not seen included: it counts on until the refresh settles it (settleOpens).
      const unsettled = sentHash ? this.unsettledOpens.get(sentHash) : undefined;
      if (unsettled) unsettled.abandoned = true;
    } finally {
      release();
    }
  }

  private forgetOpen(hash: string): void {
    this.unsettledOpens.delete(hash);
    this.store.removePendingOpen(hash);
  }

  /** The rates of the leases being opened: those in flight and those sent but not yet settled. */
  private pendingRates(): bigint[] {
    return [...this.pendingOpens, ...[...this.unsettledOpens.values()].map((o) => o.rate)];
  }

  /**
   * Settles the openings sent but never seen included (`unsettledOpens`): one included is recorded
   * with its lease (which the refresh then closes as out of the pool: nobody waits for it now, and
   * unrecorded it would run on, unused, until its escrow ran out); one dropped, or past its expiry
   * height, no longer counts; one reported included without a lease counts until that height too,
   * or until its renter forgets it (`unc gateway forget-opening`).
   */
  private async settleOpens(height: number | null): Promise<void> {
    // Forgotten by the renter (`unc gateway forget-opening`, which removes its row) while this
    // gateway runs: counted no more here either, or it would hold the budget until a restart.
    const stored = new Set(this.store.pendingOpens().map((o) => o.txHash));
    for (const [hash, open] of [...this.unsettledOpens]) {
      if (!open.abandoned) continue;
      if (!stored.has(hash)) {
        this.unsettledOpens.delete(hash);
        this.log.warn('a pending lease opening was forgotten by hand; it no longer counts', { tx: hash });
        continue;
      }
      const st = await this.client.getTransactionStatus(hash).catch(() => null);
      if (!st) continue;
      if (st.status === 'included') {
        const receipt = await this.client.getTransaction(hash).catch(() => null);
        if (!receipt) continue;
        const opened = receipt.events.find((e) => e.type === 'leaseOpened') as
          | Extract<TxEventJson, { type: 'leaseOpened' }>
          | undefined;
        let named = opened !== undefined;
        if (opened && !this.store.leases().some((r) => r.leaseId === opened.leaseId)) {
          const lease = await this.readLease(opened.leaseId).catch(() => null);
          if (!lease) continue;
          // Proven (`trustAnchor`): a lease this opening cannot have opened is another of this
          // renter's that the node named (LEASE_NOT_OPENED, as openBestOffer refuses it): recorded
          // it would be closed as out of the pool, and this opening's own lease left uncounted.
          const other = this.lightClient ? notOpenedBy(lease, open) : null;
          if (other) {
            named = false;
            this.log.warn('the node names a lease this opening did not open; not recorded', {
              lease: lease.id,
              tx: hash,
              why: other,
            });
          } else {
            // Its endpoint is the one of the terms signed, never the node's report of it; one a
            // previous run sent is not known (not kept across restarts): recorded as none, so a
            // restart before its close refuses it (ENDPOINT_CHANGED) and closes it, not adopts it.
            this.store.putLease({
              ...openLeaseRow(lease, open.noticeMs, this.now()),
              endpoint: open.endpoint ?? UNKNOWN_ENDPOINT,
            });
            this.log.warn('a lease opening seen late is recorded and closed', { lease: lease.id, tx: hash });
          }
        }
        // Included without a lease (a failed opening, or a node that reports a transaction
        // included while it holds it, or names a lease it did not open): counted until no block
        // can include it any more.
        if (named || (height !== null && BigInt(height) > open.expiresAt)) this.forgetOpen(hash);
      } else if (neverIncluded(st, height, open.expiresAt)) {
        this.forgetOpen(hash);
      }
    }
  }

  /** The pending fee the last settleFees asked about last: the next one reads on after it. */
  private feeCursor: { atMs: number; txHash: string } | null = null;

  /**
   * Places the fees of transactions not yet seen included: at the block time of the block that
   * included one; one dropped, or not included by its expiry height, paid nothing and is removed.
   * Until then a fee counts in every window a spend check looks at (policy `FeePaid`).
   */
  private async settleFees(chain: { height: number; timeMs: number } | null): Promise<void> {
    const height = chain?.height ?? null;
    // At most MAX_FEES_SETTLED_PER_CHECK chain reads per check: a fee left unread still counts as
    // pending (in every window), so reading fewer can only hold spending back, never let more by;
    // the next check or tick reads on from where this one stopped, round the pending fees. Always
    // from the oldest, 32 that stay pending (not yet expired, or their status unreadable) kept
    // every later fee from being placed: all counted in every window, spending stopped.
    const batch = this.store.pendingFees(MAX_FEES_SETTLED_PER_CHECK, this.feeCursor ?? undefined);
    if (batch.length < MAX_FEES_SETTLED_PER_CHECK) {
      const taken = new Set(batch.map((f) => f.txHash));
      for (const f of this.store.pendingFees(MAX_FEES_SETTLED_PER_CHECK - batch.length))
        if (!taken.has(f.txHash)) batch.push(f);
    }
    const last = batch.at(-1);
    this.feeCursor = last ? { atMs: last.atMs, txHash: last.txHash } : null;
    for (const f of batch) {
      const st = await this.client.getTransactionStatus(f.txHash).catch(() => null);
      if (!st) continue;
      if (st.status === 'included') {
        const receipt = await this.client.getTransaction(f.txHash).catch(() => null);
        const blockMs = receipt ? Date.parse(receipt.time) : Number.NaN;
        if (Number.isFinite(blockMs)) this.store.feeIncluded(f.txHash, blockMs, this.now());
      } else if (neverIncluded(st, height, f.expiresAt === null ? null : BigInt(f.expiresAt)))
        this.store.removeFee(f.txHash);
      // A row from before expiry heights were kept, that the node does not know (or only dropped
      // from its own mempool): nothing bounds when it could land, and counted in every window for
      // ever it would stop all spending. It is placed at the chain's latest block time, where it
      // counts for the hour ahead: its send time is the gateway's clock, which may lag the chain's
      // by more than an hour (the fee then in no window the checks look at).
      else if ((st.status === 'unknown' || st.status === 'dropped') && f.expiresAt === null && chain)
        this.store.feeIncluded(f.txHash, chain.timeMs, this.now());
    }
    // Included fees (those just placed too) whose expiry height the chain has passed: none of them
    // can be charged after now (feesCounted counts them for the hour from here).
    if (height !== null) this.store.feesExpired(height, this.now());
  }

  /**
   * Whether a transaction that spends (`newRate` more per hour from now, `newFees` now and later)
   * keeps every hour's spend within the budget: the renter's leases from the chain (and those only
   * the records know), every fee its key paid, the leases being opened, one closing fee reserved
   * for each lease that still costs. If the chain cannot be read, nothing is spent.
   */
  private async spendAllowed(newRate: bigint, newFees: bigint): Promise<boolean> {
    // The chain's block time first: whatever the leases and fee statuses read after it show as
    // not yet included lands in a block after it.
    const st = await this.chainHead();
    if (st.timeMs >= this.chainTime.blockMs) this.chainTime = { blockMs: st.timeMs, readMs: this.now() };
    const onChain = await this.readChainLeases();
    await this.settleFees(st);
    const records = this.store.leases();
    const leases = this.spendHistory(records);
    const listed = new Set(onChain.map((l) => l.id));
    const costing =
      onChain.filter((l) => stillCosts(l.status)).length +
      records.filter((r) => !listed.has(r.leaseId) && r.closedMs === null).length +
      this.pendingRates().length;
    const committed =
      committedRateOnChain(
        records.map((l) => ({
          leaseId: l.leaseId,
          pricePerHour: BigInt(l.pricePerHour),
          endedAtMs: l.closedMs,
        })),
        onChain.map((l) => ({ leaseId: l.id, pricePerHour: BigInt(l.pricePerHour), status: l.status })),
      ) + this.pendingRates().reduce((a, b) => a + b, 0n);
    return canSpend(
      // Fees of the hour before the block time (and after it) and the pending ones: an older fee
      // lies in no window the check looks at (policy hourPeak).
      { leases, fees: this.feesCounted(st.timeMs - Number(MS_PER_HOUR)).counted },
      {
        committedRate: committed,
        reservedFees: this.closeFee() * BigInt(costing),
        newRate,
        newFees,
      },
      this.opts.budgetPerHour,
      st.timeMs,
    );
  }

  /** The renter's leases from the chain, kept for the status (`chainLeases`). */
  private async readChainLeases(): Promise<LeaseJson[]> {
    const onChain = await this.readLeases();
    this.chainLeases = onChain.map((l) => ({
      leaseId: l.id,
      pricePerHour: BigInt(l.pricePerHour),
      status: l.status,
      startTime: l.startTime,
      escrowUntil: l.escrowUntil,
      closedTime: l.closedTime,
    }));
    return onChain;
  }

  /** The leases whose charges the spend counts: the chain's times where it lists them (`spendLeases`). */
  private spendHistory(records: readonly LeaseRow[] = this.store.leases()): BudgetLease[] {
    return spendLeases(
      records.map((l) => ({
        leaseId: l.leaseId,
        pricePerHour: BigInt(l.pricePerHour),
        openedAtMs: l.openedMs,
        endedAtMs: l.closedMs,
      })),
      this.chainLeases,
    );
  }

  /**
   * The fees as the spend check counts them (`counted`): the pending ones and those placed at
   * `fromMs` or later (store `feesSince`), and every fee the gateway saw included within the last
   * hour of its own clock counted as pending (in every window), wherever the node says its block
   * lies. The block time of an included fee is the node's word: a node that lies can report it
   * hours in the past, out of every window, and the gateway would spend the fee again. Validity
   * rules for consensus use block time, never the wall clock, so that every node agrees; this is
   * the gateway's own spending limit, where its own clock is the honest reference. A fee is charged
   * no earlier than it was sent and no later than the gateway learned of it (`seenMs`): counted
   * pending until an hour after that, it lies in every window that can hold its charge. An hour
   * after the send was not enough: a fee that waited in the mempool (up to its expiry height)
   * was charged late, in windows that still held the gateway's next checks. Nor is the time it saw
   * the fee included: a node can report a transaction included while it holds it, and relay it
   * later, up to its expiry height; so a fee also counts pending until an hour after the gateway
   * saw the chain past that height (`expirySeenMs`), after which no block can charge it. With it,
   * the node can make the check count more, never less than was spent (short of lying about the
   * chain's height, which every expiry decision here takes from it).
   */
  private feesCounted(fromMs: number): { counted: FeePaid[]; paid: FeePaid[] } {
    const seenFrom = this.now() - Number(MS_PER_HOUR);
    const rows = this.store.feesSince(fromMs, seenFrom);
    const mayStillCharge = (f: FeeRow) => feeMayStillBeCharged(f, seenFrom);
    return {
      counted: rows.map((f) => ({
        fee: BigInt(f.fee),
        includedAtMs: f.includedMs !== null && mayStillCharge(f) ? null : f.includedMs,
      })),
      // As the chain charged them (the node's word): the pending ones and those placed from `fromMs`.
      paid: rows
        .filter((f) => f.includedMs === null || f.includedMs >= fromMs)
        .map((f) => ({ fee: BigInt(f.fee), includedAtMs: f.includedMs })),
    };
  }

  /** The fee of a transaction of these actions: nonce and expiry are fixed-width, so it is exact. */
  private feeOf(actions: Parameters<typeof buildTransaction>[2]): bigint {
    return feeFor(
      {
        chainId: this.chainId,
        signer: ed25519PublicKey(this.opts.renterSeed),
        nonce: 0n,
        expiresAt: 0n,
        actions,
      },
      this.feeParams,
    );
  }

  private closeFee(): bigint {
    return this.feeOf([closeLeaseAction('00'.repeat(32))]);
  }

  /**
   * Tops up the escrow of each busy lease that would run out soon (within the budget: only the fee
   * is spent, the rate is counted already). A lease not topped up takes no job past its escrow and
   * ends; the pool opens another if jobs wait.
   */
  private topUpLeases(): void {
    const chainNow = this.chainNowMs();
    const aheadMs = Math.max(TOP_UP_AHEAD_MS, 2 * (this.opts.attemptTimeoutMs ?? 30_000));
    for (const l of this.leases.values()) {
      if (l.closing || l.toppingUp || this.now() < l.topUpRetryAtMs) continue;
      const amount = topUpAmount(
        {
          pricePerHour: l.price,
          escrowUntilMs: l.view.escrowUntil,
          endTimeMs: l.view.endTime,
          inUse: l.inFlight > 0 || this.queue.length > 0,
        },
        chainNow,
        aheadMs,
        1,
      );
      if (amount === 0n) continue;
      l.toppingUp = true;
      this.sendTx([topUpLeaseAction(l.row.leaseId, amount)], 'topUpLease', {
        newRate: 0n,
        commitsClose: false,
        // In the queue, right before it goes: the lease as the chain shows it now, not as the
        // last refresh did (a notice given since would take the money into a lease that is ending).
        precheck: async () => {
          // Head first: a lease proven at a later block than the head passes the height check.
          const st = await this.chainHead();
          const lease = await this.readLease(l.row.leaseId);
          const why = topUpRefusal(
            { status: lease.status, escrowUntilMs: lease.escrowUntil, endTimeMs: lease.endTime },
            st.timeMs,
          );
          if (why === null) return;
          l.view = lease;
          if (lease.status === 'closing') this.dropLease(l, 'the provider gave notice');
          throw new TopUpRefusedError(`top-up of lease ${l.row.leaseId} not sent: ${why}`);
        },
      })
        .then(async () => {
          const lease = await this.readLease(l.row.leaseId);
          // The deposit grew: the dispute allowance (computed from the view) grows with it.
          l.view = lease;
          this.log.info('lease topped up', { lease: l.row.leaseId, amount: amount.toString() });
        })
        .catch((err) => {
          // Not every tick: each try reads the chain and builds a transaction.
          l.topUpRetryAtMs = this.now() + TOP_UP_RETRY_MS;
          this.log.warn('lease not topped up', { lease: l.row.leaseId, err: String(err) });
        })
        .finally(() => {
          l.toppingUp = false;
        });
    }
  }

  /**
   * What the renter's leases cost now: the chain's list of them (which also shows a lease opened
   * but never recorded, after a crash or a transaction that was waited for too briefly) joined with
   * the records. If the chain cannot be read, nothing is opened.
   */
  private async committedNow(): Promise<bigint> {
    const onChain = await this.readLeases();
    return committedRateOnChain(
      this.store.leases().map((l) => ({
        leaseId: l.leaseId,
        pricePerHour: BigInt(l.pricePerHour),
        endedAtMs: l.closedMs,
      })),
      onChain.map((l) => ({ leaseId: l.id, pricePerHour: BigInt(l.pricePerHour), status: l.status })),
    );
  }

  /** Makes a lease routable: reads the provider's health, uploads the ONNX models. */
  private async adopt(row: LeaseRow, lease: LeaseJson): Promise<void> {
    const state: LeaseState = {
      row,
      price: BigInt(row.pricePerHour),
      slots: 1,
      inFlight: 0,
      lastActiveMs: this.now(),
      idleClients: [],
      allClients: [],
      ocrModelHash: '',
      modelHashes: new Map(),
      reuploads: new Map(),
      reuploaded: new Map(),
      latencies: [],
      answered: 0,
      failed: 0,
      failureStreak: 0,
      closing: false,
      view: lease,
      disputes: lease.disputes,
      toppingUp: false,
      topUpRetryAtMs: 0,
    };
    // Jobs (the renter's inputs) go to the recorded endpoint only. A node reporting another could
    // have them sent to its own server, answered with receipts of a chip key it reports too; a
    // lease cannot move (an offer's endpoint never changes on chain), so a different one is a lie.
    if (row.endpoint === UNKNOWN_ENDPOINT || lease.endpoint !== row.endpoint)
      throw new Error(
        `ENDPOINT_CHANGED: the node reports lease ${row.leaseId} at ${lease.endpoint}, but it was recorded at ${row.endpoint}; nothing sent to either`,
      );
    const probe = this.newClient(state, lease.tlsFingerprints);
    const health = await probe.health();
    state.ocrModelHash = health.ocrModelHash;
    // The provider's numbers are checked and capped (leaseSlots): a claimed 1e9 took every job.
    state.slots = leaseSlots(
      { concurrency: health.queue?.concurrency, maxJobsPerRenter: health.limits?.maxJobsPerRenter },
      this.opts.slotsPerLease,
    );
    for (const [name, bytes] of this.models) {
      if (!bytes) continue;
      const up = await probe.uploadModel(bytes);
      state.modelHashes.set(name, up.modelHash);
    }
    state.idleClients.push(probe);
    this.leases.set(row.leaseId, state);
    this.pump();
  }

  private newClient(lease: LeaseState, fingerprints?: string[]): ProviderClient {
    const client = new ProviderClient({
      endpoint: lease.row.endpoint,
      chainId: this.chainId,
      leaseId: lease.row.leaseId,
      renterSeed: this.opts.renterSeed,
      timeoutMs: this.opts.attemptTimeoutMs ?? 30_000,
      tlsFingerprints: fingerprints ?? lease.allClients[0]?.tlsFingerprints ?? [],
      // The offer's pins as the chain holds them now (with `trustAnchor` proven: the lease's offer).
      refreshTlsFingerprints: async () =>
        this.lightClient
          ? (await this.readLease(lease.row.leaseId)).tlsFingerprints
          : (await this.client.getOffer(lease.row.offerId)).tlsFingerprints,
      allowHttp: this.opts.allowHttp ?? false,
    });
    lease.allClients.push(client);
    return client;
  }

  /**
   * Takes a lease out of routing and closes it on chain once its running jobs are over and its
   * disputes sent: the chain takes a dispute only on a lease kept running through the dispute wait.
   */
  private dropLease(lease: LeaseState, reason: string): void {
    if (lease.closing) return;
    lease.closing = true;
    this.log.info('closing lease', { lease: lease.row.leaseId, reason });
    const close = () => {
      this.leases.delete(lease.row.leaseId);
      for (const c of lease.idleClients) c.close();
      this.closeOnChain(lease.row.leaseId, reason);
    };
    const done = () => lease.inFlight === 0 && !this.disputePending(lease);
    if (done()) close();
    else {
      const wait = setInterval(() => {
        if (done() || this.stopped) {
          clearInterval(wait);
          close();
        }
      }, 200);
    }
  }

  private closeOnChain(leaseId: string, reason: string): void {
    if (this.closingOnChain.has(leaseId)) return;
    this.settling.add(leaseId);
    this.closingOnChain.add(leaseId);
    this.sendTx([closeLeaseAction(leaseId)], 'closeLease')
      .then(() => {
        if (!this.storeClosed) this.store.closeLease(leaseId, this.now(), reason);
      })
      .catch(async (err) => {
        // Already over on chain (ended, or closed by its chip's absence): nothing more is owed.
        const l = await this.readLease(leaseId).catch(() => null);
        if (this.storeClosed) return;
        if (l && !stillCosts(l.status)) this.store.closeLease(leaseId, this.now(), `${reason} (${l.status})`);
        else
          this.log.warn('could not close lease; the refresh tries again', {
            lease: leaseId,
            err: String(err),
          });
      })
      .finally(() => {
        this.settling.delete(leaseId);
        this.closingOnChain.delete(leaseId);
      });
  }

  /** Lease and chip state from the chain: a lease that ended or whose chip went offline leaves the pool. */
  private async refreshLeases(): Promise<void> {
    const st = await this.chainHead().catch((err) => {
      if (err instanceof ProofError) this.log.warn("the node's head is not proven", { err: String(err) });
      return null;
    });
    await this.readChainLeases().catch(() => undefined);
    if (st && st.timeMs >= this.chainTime.blockMs)
      this.chainTime = { blockMs: st.timeMs, readMs: this.now() };
    for (const l of [...this.leases.values()]) {
      if (l.closing) continue;
      const lease = await this.readLease(l.row.leaseId).catch(() => null);
      if (!lease) continue;
      l.view = lease;
      l.disputes = Math.max(l.disputes, lease.disputes);
      if (lease.status === 'closing') {
        // The provider gave notice. The lease would cost until the notice ends, so the renter
        // closes it at once (after its running jobs); it counts against the budget until then.
        this.dropLease(l, 'the provider gave notice');
        continue;
      }
      if (lease.status !== 'active') {
        this.leases.delete(l.row.leaseId);
        this.store.closeLease(l.row.leaseId, this.now(), `lease ${lease.status}`);
        continue;
      }
      this.chips.delete(l.row.chipId);
      const chip = await this.liveness(l.row.chipId).catch(() => null);
      if (chip && (!chip.online || chip.status !== 'active')) {
        this.avoidProvider(
          l.row.provider,
          this.now() + this.retry.avoidMs,
          `chip ${l.row.chipId.slice(0, 16)} offline`,
        );
      }
    }
    await this.settleOpens(st?.height ?? null);
    await this.settleFees(st ?? null);
    // Leases out of the pool but not yet recorded as over: over on chain now, or still costing
    // (a close that failed) and closed again.
    for (const row of this.store.leases()) {
      if (row.closedMs !== null || this.leases.has(row.leaseId) || this.settling.has(row.leaseId)) continue;
      const lease = await this.readLease(row.leaseId).catch(() => null);
      if (!lease || this.settling.has(row.leaseId)) continue;
      if (!stillCosts(lease.status))
        this.store.closeLease(
          row.leaseId,
          this.now(),
          lease.closedReason ?? lease.closingReason ?? lease.status,
        );
      else this.closeOnChain(row.leaseId, 'out of the pool');
    }
  }

  private async record(provider: string): Promise<ProviderRecordJson | null> {
    const cached = this.records.get(provider);
    if (cached && this.now() - cached.readMs < 30_000) return cached.record;
    const record = await this.client.getProviderRecord(provider).catch(() => null);
    if (record) this.records.set(provider, { record, readMs: this.now() });
    return record;
  }

  /**
   * One transaction at a time, so the renter's nonces never race. Its fee is recorded before it is
   * handed to the node. A transaction that spends (`spend`: opening a lease, a dispute, a top-up)
   * is sent only if the spend check passes (taken here, in turn, so two cannot pass it together);
   * a closing is always sent, its fee reserved when its lease was opened.
   */
  private sendTx(
    actions: Parameters<typeof buildTransaction>[2],
    kind: string,
    spend?: {
      newRate: bigint;
      commitsClose: boolean;
      /** Run in the queue after the spend check, right before sending; throwing keeps the transaction from being sent. */
      precheck?: () => Promise<void>;
      onAllowed?: () => void;
      /** About to be handed to the node: from now it may be included, until `expiresAt`. */
      onSending?: (hash: string, expiresAt: bigint) => void;
    },
  ): Promise<{ hash: string; events: TxEventJson[] }> {
    const run = async () => {
      // For the chain read at start (the key's unlock named it): the node's status is read again
      // inside, and a node that then reports another chain would have the key sign there, where
      // the same key may hold funds. Refused (CHAIN_CHANGED), nothing signed.
      // With `trustAnchor` the expiry counts from the verified head, not the node's status: a fee
      // (and an opening's rate) counts as pending until the chain is seen past it, and a node
      // reporting a height far ahead while the transaction is built had it signed to expire only
      // then (refused by the chain, or held to be relayed late) and counted for ever.
      // A node gone back below the newest verified height (restarted from a snapshot, a replica
      // behind a balancer) still gets closings: they expire past that verified height instead.
      const head = this.lightClient
        ? await this.chainHead().catch((err) => {
            if (spend || !(err instanceof ProofError) || err.code !== 'HEAD_WENT_BACK') throw err;
            return { height: Number(this.provenHeight) };
          })
        : null;
      const stx = await buildTransaction(this.client, this.opts.renterSeed, actions, {
        chainId: this.chainId,
        ...(head ? { expiresAt: BigInt(head.height) + TX_TTL_BLOCKS } : {}),
      });
      // What the key pays besides the escrow: the fee, and what the chain burns for the records
      // the actions keep (a lease's: core stateEntryBurn), which leaves the balance like a fee.
      const paid = stx.tx.fee + (await recordBurnOf(this.client, actions, this.feeParams.minFeePerAction));
      if (spend) {
        const fees = paid + (spend.commitsClose ? this.closeFee() : 0n);
        if (!(await this.spendAllowed(spend.newRate, fees)))
          throw new OverBudgetError(
            `${kind} not sent: with its fee of ${paid} base units (what it burns included) it would pass the budget of ${this.opts.budgetPerHour} per hour`,
          );
        // Last, right before it goes: the spend check reads the chain for a while (every pending
        // fee's status), and a notice landing meanwhile was missed by a precheck taken before it.
        await spend.precheck?.();
        spend.onAllowed?.();
      }
      const hash = signedHash(stx);
      this.store.addFee({
        txHash: hash,
        kind,
        fee: paid.toString(),
        atMs: this.now(),
        expiresAt: stx.tx.expiresAt.toString(),
      });
      spend?.onSending?.(hash, stx.tx.expiresAt);
      // A refusal (NONCE_USED, EXPIRED, any error) is only the node's word: a hostile node answers
      // "refused" while it keeps the signature to relay later, and a gateway that forgot the
      // opening (and its fee) then signed a second one: two leases, two fees, on a budget for
      // one. Like a send that got no answer, it stays pending (its fee, and an opening's rate via
      // the caller's catch) until settleFees/settleOpens see it included or the chain past its
      // expiry height (neverIncluded), as the CLI's checkBeforeRerunning tells its user.
      await sendTransaction(this.client, stx);
      await this.client.waitForTransaction(hash, this.opts.inclusionWaitMs ?? 30_000);
      const receipt = await this.client.getTransaction(hash);
      // Charged at its block's time: from now on it counts there, not in every window.
      const blockMs = Date.parse(receipt.time);
      if (Number.isFinite(blockMs) && !this.storeClosed) this.store.feeIncluded(hash, blockMs, this.now());
      return { hash, events: receipt.events };
    };
    const p = this.txChain.then(run, run);
    this.txChain = p.catch(() => {});
    return p;
  }

  // -------------------------------------------------------------------------------------------
  // Status.

  status() {
    const nowMs = this.now();
    // Spending on the chain's clock, as the spend check counts it (charges and fees are at block times).
    const chainMs = this.chainNowMs();
    // From the chain's block times, as the spend check counts them: the records' times are when
    // the gateway saw a lease open or end (a lease whose escrow ran out while the gateway was
    // down was recorded as ended only at its restart, and shown as costing all that while).
    const budget = this.spendHistory();
    const hourAgo = chainMs - Number(MS_PER_HOUR);
    const { paid: fees, counted } = this.feesCounted(hourAgo);
    // Every fee placed at a block time, from the total the database keeps (the rows are the
    // renter's audit and grow without end): those the node placed after the chain's latest block
    // time too. The key paid them (the node says they are included); left out, a node reporting
    // block times ahead of its chain hid them from the renter's total.
    const includedFees = this.store.includedFeeTotal();
    return {
      renter: this.renterAddress,
      chainId: this.chainId,
      budgetPerHour: this.opts.budgetPerHour.toString(),
      committedPerHour: committedRate(budget).toString(),
      /**
       * The rates of lease openings not yet settled (being sent, or sent and not seen to open a
       * lease: one the node says is included with none counts until its expiry height passes):
       * held against the budget beside `committedPerHour`. One held for long is a node that reports
       * no height past the expiry (stalled, or lying): no lease opens meanwhile.
       */
      openingPerHour: this.pendingRates()
        .reduce((a, b) => a + b, 0n)
        .toString(),
      /** Everything the key spent: the leases' charges and every transaction fee. */
      spent: (
        chargesIn(budget, Number.MIN_SAFE_INTEGER, chainMs) +
        includedFees +
        pendingFees(fees)
      ).toString(),
      fees: (includedFees + pendingFees(fees)).toString(),
      /** Fees of transactions not yet seen included: counted in every hour until they are. */
      pendingFees: pendingFees(fees).toString(),
      /**
       * Fees of transactions the node says are included that a later block could still charge
       * (feesCounted): counted in every hour too. One held for hours is a node that reports no
       * height past the transaction's expiry (stalled, or lying): the gateway fails closed.
       */
      heldFees: (pendingFees(counted) - pendingFees(fees)).toString(),
      /**
       * Spent in the last hour of block time, charges and fees (pending ones too, and those sent in
       * the gateway's last hour, as the spend check counts them: feesCounted): the budget bounds this.
       */
      spentLastHour: (
        chargesIn(budget, hourAgo, chainMs) +
        // A fee placed after the chain's time counts in every window ahead, as in the check
        // (policy hourPeak); stopped at chainMs, a node's far-future block time hid it here.
        feesIn(counted, hourAgo, Number.MAX_SAFE_INTEGER) +
        pendingFees(counted)
      ).toString(),
      queue: { queued: this.queue.length, oldestWaitMs: this.poolView(nowMs).oldestWaitMs },
      jobs: this.store.countByStatus(),
      recentP99Ms: quantile(
        this.recent.map((r) => r.latencyMs),
        0.99,
      ),
      counters: { ...this.counters },
      pool: [...this.leases.values()].map((l) => ({
        leaseId: l.row.leaseId,
        provider: l.row.provider,
        chipId: l.row.chipId,
        endpoint: l.row.endpoint,
        pricePerHour: l.row.pricePerHour,
        slots: l.slots,
        inFlight: l.inFlight,
        answered: l.answered,
        failed: l.failed,
        closing: l.closing,
        p50Ms: quantile(l.latencies, 0.5),
        p99Ms: quantile(l.latencies, 0.99),
      })),
      leases: this.store.leases(),
      avoided: [...this.avoided]
        .filter(([, u]) => u > nowMs)
        .map(([provider, untilMs]) => ({
          provider,
          untilMs: untilMs === AVOID_FOREVER ? null : untilMs,
        })),
      disputes: this.store.disputeCount(),
    };
  }

  private metrics(): string {
    const s = this.status();
    const lines = [
      '# TYPE unc_gateway_jobs gauge',
      ...Object.entries(s.jobs).map(([k, v]) => `unc_gateway_jobs{status="${k}"} ${v}`),
      '# TYPE unc_gateway_queue_length gauge',
      `unc_gateway_queue_length ${s.queue.queued}`,
      '# TYPE unc_gateway_queue_oldest_wait_seconds gauge',
      `unc_gateway_queue_oldest_wait_seconds ${s.queue.oldestWaitMs / 1000}`,
      '# TYPE unc_gateway_leases gauge',
      `unc_gateway_leases ${s.pool.length}`,
      '# TYPE unc_gateway_leases_opened_total counter',
      `unc_gateway_leases_opened_total ${s.leases.length}`,
      '# TYPE unc_gateway_budget_base_units_per_hour gauge',
      `unc_gateway_budget_base_units_per_hour ${s.budgetPerHour}`,
      '# TYPE unc_gateway_committed_base_units_per_hour gauge',
      `unc_gateway_committed_base_units_per_hour ${s.committedPerHour}`,
      '# TYPE unc_gateway_spent_base_units counter',
      `unc_gateway_spent_base_units ${s.spent}`,
      '# TYPE unc_gateway_fees_base_units counter',
      `unc_gateway_fees_base_units ${s.fees}`,
      '# TYPE unc_gateway_spent_last_hour_base_units gauge',
      `unc_gateway_spent_last_hour_base_units ${s.spentLastHour}`,
      '# TYPE unc_gateway_retries_total counter',
      `unc_gateway_retries_total ${s.counters.retries}`,
      '# TYPE unc_gateway_disputes_total counter',
      `unc_gateway_disputes_total ${s.counters.disputes}`,
      '# TYPE unc_gateway_rejected_receipts_total counter',
      `unc_gateway_rejected_receipts_total ${s.counters.rejectedReceipts}`,
      '# TYPE unc_gateway_job_latency_p99_seconds gauge',
      `unc_gateway_job_latency_p99_seconds ${(s.recentP99Ms ?? 0) / 1000}`,
      '# TYPE unc_gateway_provider_latency_seconds gauge',
      ...s.pool.flatMap((l) => [
        `unc_gateway_provider_latency_seconds{provider="${l.provider}",lease="${l.leaseId}",quantile="0.5"} ${(l.p50Ms ?? 0) / 1000}`,
        `unc_gateway_provider_latency_seconds{provider="${l.provider}",lease="${l.leaseId}",quantile="0.99"} ${(l.p99Ms ?? 0) / 1000}`,
      ]),
    ];
    return `${lines.join('\n')}\n`;
  }

  // -------------------------------------------------------------------------------------------
  // HTTP.

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://gateway');
    const path = url.pathname;
    const refused = browserAttack(req.method ?? 'GET', req.headers, Boolean(this.opts.apiToken));
    if (refused) throw refused;
    // With a token (which any listener beyond loopback has), the pool, the spend and the providers
    // are shown only to its holder: a health probe without it learns up or down, nothing more.
    const authorized =
      !this.opts.apiToken || sameSecret(req.headers.authorization ?? '', `Bearer ${this.opts.apiToken}`);
    if (req.method === 'GET' && path === '/v1/health') {
      if (!authorized) {
        sendJson(res, this.stopped ? 503 : 200, { ok: !this.stopped });
        return;
      }
      sendJson(res, 200, {
        ok: !this.stopped,
        chainId: this.chainId,
        leases: this.leases.size,
        queued: this.queue.length,
      });
      return;
    }
    if (!authorized)
      throw new GatewayHttpError(401, 'UNAUTHORIZED', 'Authorization: Bearer <token> is required');
    if (req.method === 'GET' && path === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(this.metrics());
      return;
    }
    if (req.method === 'GET' && (path === '/' || path === '/status')) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(STATUS_PAGE);
      return;
    }
    if (req.method === 'GET' && path === '/v1/status') {
      sendJson(res, 200, this.status());
      return;
    }
    if (req.method === 'POST' && path === '/v1/jobs') {
      const body = await readJson(req, this.opts.maxBodyBytes ?? 16 * 1024 * 1024);
      const key = headerOf(req, 'idempotency-key');
      const { row, created } = this.submit(body, key);
      const wait = url.searchParams.get('wait');
      if (wait !== null && wait !== 'false' && wait !== '0') {
        const timeoutMs = Math.min(
          600_000,
          Math.max(1, Number(url.searchParams.get('timeoutMs') ?? 120_000) || 120_000),
        );
        const done = await this.waitFor(row.id, timeoutMs);
        sendJson(res, done.status === 'done' || done.status === 'failed' ? 200 : 202, jobView(done));
        return;
      }
      sendJson(res, created ? 202 : 200, jobView(row));
      return;
    }
    const m = /^\/v1\/jobs\/([0-9a-f]{32})$/.exec(path);
    if (req.method === 'GET' && m) {
      const row = this.store.job(m[1]!);
      if (!row) throw new GatewayHttpError(404, 'JOB_NOT_FOUND', `no job ${m[1]}`);
      sendJson(res, 200, jobView(row));
      return;
    }
    if (req.method === 'GET' && path === '/v1/jobs') {
      const limit = Math.min(1000, Math.max(1, Number(url.searchParams.get('limit') ?? 100) || 100));
      const status = url.searchParams.get('status');
      if (status !== null && !['queued', 'running', 'done', 'failed'].includes(status))
        throw new GatewayHttpError(400, 'BAD_STATUS', 'status is one of queued, running, done, failed');
      const rows = this.store.jobs({ limit, ...(status ? { status: status as JobRow['status'] } : {}) });
      sendJson(res, 200, { jobs: rows.map(jobView) });
      return;
    }
    throw new GatewayHttpError(404, 'NOT_FOUND', `no route ${req.method} ${path}`);
  }
}

export class BadReceiptError extends Error {}

/** An attempt ran past its one deadline (`attemptTimeoutMs` for all its steps together). */
export class AttemptDeadlineError extends Error {}

/** A transaction that would spend past the budget was not sent. */
export class OverBudgetError extends Error {}

/** A top-up the lease no longer wants by the time its turn in the transaction queue came. */
export class TopUpRefusedError extends Error {}

/** A busy lease is topped up when its escrow would run out within this (or two attempt timeouts). */
const TOP_UP_AHEAD_MS = 10 * 60_000;
const TOP_UP_RETRY_MS = 30_000;

/**
 * Why a proven lease cannot be the one an opening opened, or null: priced above the ceiling it
 * signed (`maxPricePerHour`, its `rate`), started after its expiry height, or (known for an opening
 * of this run) on another offer, chip or provider than its terms.
 */
function notOpenedBy(
  lease: LeaseJson,
  open: { rate: bigint; expiresAt: bigint; terms?: { offerId: string; chipId: string; provider: string } },
): string | null {
  if (BigInt(lease.pricePerHour) > open.rate)
    return `priced ${lease.pricePerHour} per hour, above the ${open.rate} the opening signed`;
  if (BigInt(lease.startHeight) > open.expiresAt)
    return `started at block ${lease.startHeight}, after the opening's expiry height ${open.expiresAt}`;
  const t = open.terms;
  if (t && (lease.offerId !== t.offerId || lease.chipId !== t.chipId || lease.provider !== t.provider))
    return `on chip ${lease.chipId} of offer ${lease.offerId} (provider ${lease.provider}), not the chip, offer and provider the opening signed`;
  return null;
}

/** What a gateway refusing a node's older state (`HEAD_WENT_BACK`) can do about it. */
const WENT_BACK_ADVICE = (floor: bigint) =>
  `The gateway goes on with the node once it is past block ${floor} (a node restarted from an older snapshot catches up; nothing is lost meanwhile, leases and jobs wait); if --node is a load balancer over several nodes, point it at one node (or make it sticky): a replica a block behind the other refuses every other read.`;

/** Blocks past the head a transaction the gateway signs stays valid (the sdk's default). */
const TX_TTL_BLOCKS = 100n;

/** How old a proven record or head the gateway takes by default (`proofMaxAgeMs`). */
export const DEFAULT_PROOF_MAX_AGE_MS = 600_000;

type ProvenChipRead = { chip: Chip; online: boolean; status: string };

/** A lease the light client proved absent (`trustAnchor`): the chain holds no such lease. */
class ProvenAbsentError extends Error {}

/**
 * How an attempt failed, from what it threw. The gateway's own failures (its node unreachable or
 * refusing while the receipt is checked against the chain or the TLS pins are read again, its
 * database refusing a write) are nobody else's: calling them a bad receipt would ban an honest
 * provider for good whenever the node blinks.
 */
export function classifyAttemptFailure(err: unknown): AttemptFailure {
  if (err instanceof BadReceiptError) return 'bad-receipt';
  if (err instanceof AttemptDeadlineError) return 'timeout';
  if (err instanceof NodeUnreachableError || err instanceof RpcClientError) return 'gateway-error';
  // The light client refused the node's answer (a chip key not proven, `trustAnchor`): the
  // gateway's node lied or lags, the provider did nothing; read as a bad receipt it was banned.
  if (err instanceof ProofError) return 'gateway-error';
  if (err instanceof Database.SqliteError) return 'gateway-error';
  if (err instanceof ProviderError) {
    if (err.code === 'JOB_FAILED') return 'rejected-input';
    if (err.code === 'BAD_RESPONSE') return 'provider-error';
    return classifyProviderError(err.status, err.code);
  }
  const msg = String((err as Error)?.message ?? err);
  if (/cannot reach the provider/.test(msg)) return /abort|timeout/i.test(msg) ? 'timeout' : 'unreachable';
  if (/TLS|certificate|fingerprint/i.test(msg)) return 'provider-error';
  // The client's own checks of what came back (receipt names other inputs, outputs, lease…).
  return 'bad-receipt';
}

function candidateOf(
  o: OfferJson,
  c: OfferJson['chips'][number],
  record: ProviderRecordJson | null,
): OfferCandidate {
  const ratio = c.uptime.ratio;
  return {
    offerId: o.id,
    chipId: c.chipId,
    provider: o.provider,
    pricePerHour: BigInt(o.price),
    power: BigInt(c.power),
    uptimePpm: ratio === null ? null : BigInt(Math.round(Number(ratio) * 1_000_000)),
    minHours: o.minHours,
    maxHours: o.maxHours,
    noticeMs: o.noticeMs,
    jobsReceipted: BigInt(record?.jobsReceipted ?? 0),
    disputes: BigInt(record?.disputes ?? 0),
  };
}

/**
 * The API's HTTP server. A request must arrive whole within `requestTimeoutMs` (408 otherwise): a
 * client trickling its body a byte at a time must not hold a socket and a body buffer for ever.
 * The limit covers receiving the request only, so a `?wait=1` answer may still take its 10 minutes.
 */
export function apiServer(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  opts: { requestTimeoutMs: number; checkEveryMs?: number },
): Server {
  const server = createServer(
    {
      requestTimeout: opts.requestTimeoutMs,
      headersTimeout: Math.min(opts.requestTimeoutMs, 60_000),
      connectionsCheckingInterval:
        opts.checkEveryMs ?? Math.min(30_000, Math.max(100, opts.requestTimeoutMs / 4)),
    },
    handler,
  );
  return server;
}

/**
 * Refuses what a web page in the operator's browser could make of a token-less gateway on
 * loopback. A page on any site may POST a "simple" text/plain body to 127.0.0.1 without asking
 * first (jobs that spend the budget), and a site whose name it points at 127.0.0.1 (DNS rebinding)
 * may read every answer. So a POST must be `application/json` (which a cross-site page can only
 * send after a CORS preflight this API never grants), and without a token the Host must be a
 * loopback name, which a rebound site's is not.
 */
export function browserAttack(
  method: string,
  headers: IncomingMessage['headers'],
  hasToken: boolean,
): GatewayHttpError | null {
  if (!hasToken && !isLoopbackHost(hostOfHeader(headers.host ?? '')))
    return new GatewayHttpError(
      403,
      'BAD_HOST',
      `Host "${headers.host ?? ''}" is not a loopback name: without an API token the gateway answers only 127.0.0.1, ::1 and localhost`,
    );
  if (method === 'POST' && !/^application\/json\s*(;|$)/i.test(headers['content-type'] ?? ''))
    return new GatewayHttpError(415, 'NOT_JSON', 'a POST needs content-type: application/json');
  return null;
}

/** The host name of a Host header, without its port. */
function hostOfHeader(host: string): string {
  if (host.startsWith('[')) return host.slice(0, host.indexOf(']') + 1);
  const colon = host.lastIndexOf(':');
  return colon === -1 ? host : host.slice(0, colon);
}

/** Loopback addresses only: 127.0.0.0/8, ::1, localhost (not 0.0.0.0 or ::, which mean every interface). */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** Compares a presented secret in time that does not depend on where it first differs. */
function sameSecret(presented: string, expected: string): boolean {
  const a = createHash('sha256').update(presented).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

function headerOf(req: IncomingMessage, name: string): string | null {
  const v = req.headers[name];
  return typeof v === 'string' ? v : null;
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(value));
}

async function readJson(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? '0');
  if (declared > maxBytes)
    throw new GatewayHttpError(413, 'BODY_TOO_LARGE', `the body is over ${maxBytes} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) {
      req.destroy();
      throw new GatewayHttpError(413, 'BODY_TOO_LARGE', `the body is over ${maxBytes} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new GatewayHttpError(400, 'BAD_JSON', 'the body is not JSON');
  }
}

/** The content hash (hex) of an ONNX file, as providers store it. */
export function modelHashOf(bytes: Uint8Array): string {
  return toHex(contentHash(bytes));
}

/**
 * Whether a later block could still charge this fee, as far as the gateway knows at `seenFromMs`
 * (an hour before its clock's now): seen included within the hour, or its transaction's expiry
 * height not yet seen passed, or seen passed within the hour (gateway `feesCounted`). Such a fee
 * counts in every window; store `feesSince` reads every one of them (fee-history.test.ts).
 */
export function feeMayStillBeCharged(
  f: Pick<FeeRow, 'atMs' | 'seenMs' | 'expiresAt' | 'expirySeenMs'>,
  seenFromMs: number,
): boolean {
  return (
    (f.seenMs ?? f.atMs) >= seenFromMs ||
    (f.expiresAt !== null && (f.expirySeenMs === null || f.expirySeenMs >= seenFromMs))
  );
}

/** The recorded endpoint of a lease opened by terms not known here: no node report ever matches it. */
const UNKNOWN_ENDPOINT = '';

/** The store's row for a lease the chain just opened for this gateway. */
function openLeaseRow(lease: LeaseJson, noticeMs: number, openedMs: number): LeaseRow {
  return {
    leaseId: lease.id,
    offerId: lease.offerId,
    chipId: lease.chipId,
    provider: lease.provider,
    endpoint: lease.endpoint,
    pricePerHour: lease.pricePerHour,
    noticeMs,
    openedMs,
    closedMs: null,
    closeReason: null,
  };
}
