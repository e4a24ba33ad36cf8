/**
 * Transaction admission that never holds up consensus. Transactions from clients and peers pass
 * three stages:
 *
 * 1. a bounded queue: a batch that would take it past its limit is refused at once with
 *    AdmissionBusy (the RPC answers "busy, retry", gossip is ignored), so a flood costs the node
 *    nothing beyond the refusal;
 * 2. the cheap refusals (duplicate, nonce used, stateless rules) on the main thread, then the
 *    signatures of what is left on the verify pool's worker threads, in batches;
 *    Then the costly chip checks of the signed transactions (registrations' certificate chains
 *    and quotes, transfers' consents: ms each) on the same workers where the verifier has them
 *    (`checkEvidence`, and threads): one such check is never split across slices, so checked here 64 of them
 *    held the event loop a quarter of a second. A block that lands before they are admitted
 *    changes the block time every check reads: those go back to the workers, again for a further
 *    block during that, up to MAX_STALE_RESENDS times per batch (`resendStale`), not to this thread;
 * 3. the stateful admission proper (mempool.add, told the signature passed), in slices of at most
 *    `sliceMs`, yielding to the event loop between slices: a proposal or vote that arrives while
 *    thousands of transactions wait is handled after the current slice, not after all of them.
 *
 * Batches are admitted in the order they arrived (a sender's nonces stay in order), whatever
 * order the verifier answers them in.
 *
 * The verifier and the slicing are passed in, like the Clock: a real node checks on worker threads
 * and slices by the event loop; the simulator checks in-thread and slices by its virtual clock, so
 * its runs stay deterministic by seed while admission has the same stages and the same answers.
 */
import {
  type ConsentVerdict,
  type ConsentVerdicts,
  type CostlyCheck,
  type CostlyVerdict,
  costlyCheckKey,
  type Ed25519Check,
  type EvidenceVerdict,
  type EvidenceVerdicts,
  ed25519CheckKey,
  envelopeSignatureCheck,
  keyId,
  StateRefusal,
  type TxEnvelope,
  ValidationError,
  type VerifiedSignatures,
} from '@unc/core';
import type { Clock } from './clock.js';
import { PROVABLY_BAD_EVIDENCE } from './mempool.js';
import { type SignatureVerifier, VerifyPoolBusy, VerifyPoolClosed } from './verify-pool.js';

/** How admission measures a slice and yields between slices. */
export interface SliceScheduler {
  /** Milliseconds, for measuring a slice. */
  now(): number;
  /** Runs `fn` later, after what else is waiting (consensus messages, timers). */
  defer(fn: () => void): void;
}

/** A real node: slices of wall time, yielding to the event loop (I/O and timers run in between). */
export const eventLoopSlices: SliceScheduler = {
  now: () => performance.now(),
  defer: (fn) => {
    setImmediate(fn);
  },
};

/** Slices measured and deferred on a Clock (the simulator's virtual clock). */
export function clockSlices(clock: Clock): SliceScheduler {
  return {
    now: () => clock.now(),
    defer: (fn) => {
      clock.schedule(0, fn);
    },
  };
}

export interface AdmissionOptions {
  /** Transactions waiting in any stage; a batch that does not fit is refused whole. */
  maxQueued: number;
  /** Longest stretch of admission work before yielding to the event loop. */
  sliceMs: number;
}

export const DEFAULT_ADMISSION_OPTIONS: AdmissionOptions = { maxQueued: 20_000, sliceMs: 8 };

/**
 * How many times one admission call's stale evidence checks go back to the workers (admission's
 * resendStale): a block is seconds apart and a worker answer milliseconds, so a second or third
 * block during a resend is rare, and a bound keeps blocks that come faster from stalling admission.
 */
export const MAX_STALE_RESENDS = 3;

/** How long a refused client is told to wait before retrying. */
export const BUSY_RETRY_AFTER_MS = 250;

/** The admission queue is full: retry later. */
export class AdmissionBusy extends Error {
  readonly code = 'BUSY';
  constructor(
    readonly limit: number,
    readonly retryAfterMs = BUSY_RETRY_AFTER_MS,
  ) {
    super(`the node is busy admitting transactions (${limit} queued); retry in ${retryAfterMs} ms`);
    this.name = 'AdmissionBusy';
  }
}

/**
 * Refusals that no later state of the chain can change, final even from a node that is behind
 * its peers: the bytes or the signature are bad, the transaction is for another chain, a nonce
 * below the committed one (nonces only grow), an expiry already passed (heights only grow), the
 * very transaction already pending here, or a pending one it does not outbid. Every other refusal
 * depends on the state (a nonce too far ahead, a balance, the sender's queue, fee-free rules,
 * parameters governance may change), and a node behind judges it on stale state.
 */
export const FINAL_REFUSALS: ReadonlySet<string> = new Set([
  'BAD_SIGNATURE',
  'DECODE',
  'WRONG_CHAIN',
  'NO_ACTIONS',
  'BAD_AMOUNT',
  // A chip transferred to its own sender: the bytes alone say so (core's sameOwnerRefusal).
  'SAME_OWNER',
  'EXPIRED',
  'NONCE_USED',
  'DUPLICATE',
  'REPLACEMENT_UNDERPRICED',
  'ALREADY_PENDING',
  'INTERNAL',
  // A report of evidence beside other actions (node policy, mempool.ts evidenceShapeRefusal).
  'EVIDENCE_NOT_ALONE',
  // Evidence the bytes prove bad: chip evidence garbled or not signed over its message, consensus
  // evidence that proves no offence or whose signatures do not verify.
  ...PROVABLY_BAD_EVIDENCE,
]);

/**
 * Whether `err` is final (FINAL_REFUSALS), unless core judged it against state (a StateRefusal: a
 * transfer's consent that does not verify against the chip's key as a stale state holds it).
 */
export function isFinalRefusal(err: ValidationError): boolean {
  return FINAL_REFUSALS.has(err.code) && !(err instanceof StateRefusal);
}

/**
 * A state-dependent refusal from a node that is behind its peers: "busy, retry" (code BUSY, as a
 * full admission queue's), with the refusal the stale state gave in `refusal`. The client retries
 * after `retryAfterMs`, at this node once it caught up or at another.
 */
export class SyncingRefusal extends ValidationError {
  constructor(
    readonly refusal: ValidationError,
    readonly retryAfterMs: number,
  ) {
    super(
      'BUSY',
      `the node is catching up with its peers and cannot judge this transaction yet (${refusal.code} on its stale state); retry in ${retryAfterMs} ms`,
    );
    this.name = 'SyncingRefusal';
  }
}

/**
 * A copy of a transaction whose very check an earlier call sent to the verify pool, and that call
 * was refused (a busy or closed pool): its signature was never checked, so "busy, retry" (code
 * BUSY, with `retryAfterMs`, as a full queue's), not a verdict.
 */
export class SignatureCheckBusy extends ValidationError {
  readonly retryAfterMs = BUSY_RETRY_AFTER_MS;
  constructor() {
    super('BUSY', `the node is busy checking signatures; retry in ${BUSY_RETRY_AFTER_MS} ms`);
    this.name = 'SignatureCheckBusy';
  }
}

/**
 * Whether a refusal says "retry later" rather than "no": a full admission queue (or verify pool)
 * or a state-dependent refusal from a node behind its peers. The same transaction may be admitted
 * once the queue drains or the node caught up.
 */
export function isRetryableRefusal(err: unknown): err is AdmissionBusy | SyncingRefusal | SignatureCheckBusy {
  return err instanceof AdmissionBusy || err instanceof SyncingRefusal || err instanceof SignatureCheckBusy;
}

/**
 * Refusals given after the transaction's signature verified here (`admitOne`). Every other one
 * was given before any check (`cheapRefusal`: a duplicate, keyed by a hash that leaves the
 * signature out, a nonce used, funds...), or instead of one (a busy pool, `dropTaken`): the
 * signature of those bytes is unknown, and a node past this one may find it forged.
 */
const refusedAfterCheck = new WeakSet<ValidationError>();

/** Whether `err` (or the refusal a SyncingRefusal defers) came after its transaction's signature verified here. */
export function refusedAfterSignatureCheck(err: ValidationError): boolean {
  return refusedAfterCheck.has(err instanceof SyncingRefusal ? err.refusal : err);
}

/** `err` as the node answers it: deferred when it depends on state and the node is behind (`retryAfterMs` not null). */
export function deferWhileBehind(err: ValidationError, retryAfterMs: number | null): ValidationError {
  if (retryAfterMs === null || isRetryableRefusal(err) || isFinalRefusal(err)) return err;
  return new SyncingRefusal(err, retryAfterMs);
}

/** Refusals that say the transaction (or its nonce) was taken before it was admitted here. */
const STALE_CODES: ReadonlySet<string> = new Set(['NONCE_USED', 'DUPLICATE']);

export type AdmissionResult = { replaced: boolean } | ValidationError;

export interface AdmissionHost {
  /**
   * The refusals that need no signature check, or null (Mempool.cheapRefusal on the head).
   * `countPending` false: an earlier transaction of the batch is the same sender's (it may replace
   * a pending one, so what the pending ones spend is not known until it is admitted).
   */
  cheapRefusal(env: TxEnvelope, countPending: boolean): ValidationError | null;
  /**
   * Optional: the costly checks `admit` would make for `env` on the present head (registration
   * evidence, transfer consents), as plain data to make on the verifier's workers
   * (Mempool.costlyChecks).
   */
  costlyChecks?(env: TxEnvelope): CostlyCheck[];
  /**
   * Optional: names the head `costlyChecks` reads (its state and the next block's context); while
   * it is unchanged the workers' verdicts cannot be stale and are not looked for again before
   * admission. Without it every transaction's checks are looked for.
   */
  costlyHead?(): string;
  /**
   * Optional: the refusal the committed head gives `env` whatever else happens, because a block
   * used its nonce (Mempool.takenRefusal), or null. Asked after a commit of the transactions still
   * queued whose sender the block touched (`dropTaken`); only a final refusal may be given here.
   */
  takenRefusal?(env: TxEnvelope): ValidationError | null;
  /**
   * The stateful admission, with the signature already found valid; throws a ValidationError.
   * `verdicts`, `consents`: evidence and consents already checked (on a worker), used for the very
   * same check only.
   */
  admit(env: TxEnvelope, verdicts?: EvidenceVerdicts, consents?: ConsentVerdicts): { replaced: boolean };
}

interface Job {
  envs: readonly TxEnvelope[];
  results: (AdmissionResult | undefined)[];
  /** Per transaction: whether its signature verified (set once the pool answered). */
  verified: boolean[] | null;
  /**
   * Transactions whose very check (key, message and signature, byte for byte) an earlier job sent
   * to the pool: they take that job's answer (`copyOf`) instead of a second check of the same bytes.
   */
  copies: Map<number, { job: Job; index: number }>;
  /**
   * Transactions whose signature check this job sent to the pool (not copies, not known valid):
   * each to its position in the pool call (`answer`) and its check key (`inFlight`).
   */
  sent: ReadonlyMap<number, { position: number; key: string }>;
  /** The pool call of those checks, until it is answered (`dropTaken` cancels from it). */
  answer: Promise<boolean[]> | null;
  /** Each transaction's sender (keyId), to find those a committed block touched. */
  senders: readonly string[];
  /** Transactions refused by `dropTaken` (a block took their nonce while they waited). */
  dropped: Set<number>;
  /** Costly checks (evidence, consents) made on the workers, by costlyCheckKey (set with `verified`). */
  verdicts: Map<string, CostlyVerdict> | null;
  /** `host.costlyHead()` when the checks were made (undefined: unknown). */
  checkedOn: string | undefined;
  /** How many times the checks a new head changed were sent to the workers again (MAX_STALE_RESENDS). */
  resends: number;
  /** Those checks are on the workers now: the drain waits for them. */
  resending: boolean;
  next: number;
  resolve: (r: AdmissionResult[]) => void;
}

export class AdmissionQueue {
  private readonly opts: AdmissionOptions;
  private readonly jobs: Job[] = [];
  /**
   * The checks sent to the pool and not answered yet, by `ed25519CheckKey` (the exact bytes): a
   * copy of the same transaction arriving meanwhile (its gossip and a peer's re-announcement, two
   * peers' re-announcements) waits for that answer instead of being checked again. Under load most
   * copies arrived while the first still waited in the queue, and each cost a signature check
   * before `admit` refused it as a duplicate.
   */
  private readonly inFlight = new Map<string, { job: Job; index: number }>();
  /** Signature checks sent to the pool (tests and diagnostics). */
  checksSent = 0;
  /**
   * Of those, checks whose transaction was then refused as a nonce already used or a duplicate:
   * a block committed it (or another copy was admitted) while its check waited, so the check was
   * spent for nothing (metrics: unc_admission_checks_wasted_total).
   */
  checksWasted = 0;
  /**
   * Transactions refused while queued because a committed block used their nonce (`dropTaken`),
   * and of their checks sent to the pool, those it had not made yet and will not make.
   */
  readonly dropStats = { txs: 0, checksCancelled: 0 };
  private held = 0;
  private draining = false;
  private stopped = false;

  constructor(
    private readonly pool: SignatureVerifier,
    private readonly host: AdmissionHost,
    opts: Partial<AdmissionOptions> = {},
    private readonly slices: SliceScheduler = eventLoopSlices,
    /**
     * Checks this node found valid, by their exact bytes (the block pre-checker's, shared): a
     * transaction whose check passed here already (in a block, or an earlier copy admitted or
     * refused for another reason) is not checked again, and what admission checks and finds valid
     * is added, so a block carrying it skips it too. Only passes are held, under the bytes that
     * were verified: another signature on the same body is another key, checked as always.
     */
    private readonly passed: VerifiedSignatures | null = null,
  ) {
    this.opts = { ...DEFAULT_ADMISSION_OPTIONS, ...opts };
  }

  /** Transactions accepted into the queue and not yet decided. */
  get queued(): number {
    return this.held;
  }

  get limit(): number {
    return this.opts.maxQueued;
  }

  /**
   * Admits `envs` in order; each gets its result or its refusal. Rejects with AdmissionBusy, having
   * done nothing, when the queue cannot take the whole batch.
   */
  submit(envs: readonly TxEnvelope[]): Promise<AdmissionResult[]> {
    if (this.stopped) return Promise.reject(new AdmissionBusy(this.opts.maxQueued));
    if (envs.length === 0) return Promise.resolve([]);
    if (this.held + envs.length > this.opts.maxQueued) {
      return Promise.reject(new AdmissionBusy(this.opts.maxQueued));
    }
    this.held += envs.length;
    return new Promise((resolve, reject) => {
      const job: Job = {
        envs,
        results: new Array(envs.length),
        verified: null,
        copies: new Map(),
        sent: new Map(),
        answer: null,
        senders: envs.map((env) => keyId(env.sender)),
        dropped: new Set(),
        verdicts: null,
        checkedOn: undefined,
        resends: 0,
        resending: false,
        next: 0,
        resolve,
      };
      // In the queue from now, in call order: the pool may answer a later call first (several
      // workers, or the calling thread's share of a batch), and the drain waits for the oldest.
      this.jobs.push(job);
      const sentKeys: string[] = [];
      const release = () => {
        for (const key of sentKeys) if (this.inFlight.get(key)?.job === job) this.inFlight.delete(key);
      };
      const forget = () => {
        release();
        this.jobs.splice(this.jobs.indexOf(job), 1);
        this.held -= envs.length;
        // A later call that was answered may now be at the head.
        this.scheduleDrain();
      };
      /** The transactions whose signature check goes to the pool, in the order of `checks`. */
      const toCheck: number[] = [];
      /** Checks that passed here before (`passed`): not sent again. */
      const knownValid: number[] = [];
      let answer: Promise<boolean[]>;
      try {
        // Senders with a transaction earlier in the batch that passed the screen: it may replace a
        // pending one by one that spends less before their next is admitted.
        const senders = new Set<string>();
        const checks: Ed25519Check[] = [];
        const sentAs = new Map<number, { position: number; key: string }>();
        for (const [i, env] of envs.entries()) {
          const sender = job.senders[i]!;
          const refusal = this.host.cheapRefusal(env, !senders.has(sender));
          if (refusal) {
            job.results[i] = refusal;
            continue;
          }
          senders.add(sender);
          const check = envelopeSignatureCheck(env);
          // The key is made now, from the bytes the pool copies now (`verify` packs them before it
          // returns): what passes is remembered under the very bytes that were checked.
          const key = ed25519CheckKey(check.publicKey, check.message, check.signature);
          const earlier = this.inFlight.get(key);
          if (this.passed?.hasKey(key)) knownValid.push(i);
          else if (earlier) job.copies.set(i, earlier);
          else {
            this.inFlight.set(key, { job, index: i });
            sentAs.set(i, { position: checks.length, key });
            sentKeys.push(key);
            checks.push(check);
            toCheck.push(i);
          }
        }
        job.sent = sentAs;
        this.checksSent += checks.length;
        answer = this.pool.verify(checks, 'admission');
        job.answer = answer;
      } catch (err) {
        // A bug (a host or verifier that throws, not a refusal): this call fails, but a job left at
        // the head unanswered would hold every later call forever.
        forget();
        reject(err);
        return;
      }
      answer.then(
        (ok) => {
          job.answer = null;
          const verified = new Array<boolean>(envs.length).fill(false);
          toCheck.forEach((i, k) => {
            verified[i] = ok[k]!;
          });
          for (const i of knownValid) verified[i] = true;
          if (this.passed)
            sentKeys.forEach((key, k) => {
              if (ok[k]) this.passed!.addKey(key);
            });
          release();
          // Before the checks are built: a block landing after this cannot pass for no change.
          job.checkedOn = this.host.costlyHead?.();
          this.checkCostly(envs, verified).then(
            (verdicts) => {
              job.verdicts = verdicts;
              job.verified = verified;
              this.scheduleDrain();
            },
            (err) => {
              forget();
              reject(err instanceof VerifyPoolBusy ? new AdmissionBusy(this.opts.maxQueued) : err);
            },
          );
        },
        (err) => {
          forget();
          // A closed pool (the node stops) checked nothing: "busy, retry", nothing admitted.
          reject(
            err instanceof VerifyPoolBusy || err instanceof VerifyPoolClosed
              ? new AdmissionBusy(this.opts.maxQueued)
              : err,
          );
        },
      );
    });
  }

  stop(): void {
    this.stopped = true;
  }

  /**
   * Whether costly checks (evidence, consents) go to the verifier's workers: it has `checkEvidence`
   * (VerifyPool's name: it takes every kind of costly check) and threads behind it.
   * A pool without threads would answer on the calling thread, every check of a call at once;
   * without them here, admit checks them on this thread too, but in slices, one registration at a
   * time (as for a verifier without `checkEvidence`: the in-thread one, the simulator's).
   */
  private get costlyOnWorkers(): boolean {
    return (
      this.pool.checkEvidence !== undefined && this.pool.threads > 0 && this.host.costlyChecks !== undefined
    );
  }

  /**
   * A block committed, touching `senders` (keyId): the queued transactions of theirs whose nonce
   * it used (`host.takenRefusal`: the block took them, or another of the same nonce) are refused
   * now with that final refusal (NONCE_USED, what admission would have answered after the check),
   * and their signature checks still waiting for a worker are cancelled. At saturation about one
   * admission check in ten was of such a transaction: it arrived (gossip, a re-announcement) while
   * the block that took it was on its way, waited behind the queue, and was refused once checked.
   * Nothing is admitted here and nothing unchecked is let through: a dropped transaction only
   * gets its refusal sooner. A copy of it in a later batch (same bytes) is refused the same way.
   * Returns how many were dropped.
   */
  dropTaken(senders: ReadonlySet<string>): number {
    const { takenRefusal } = this.host;
    if (!takenRefusal || senders.size === 0) return 0;
    let dropped = 0;
    for (const job of this.jobs) {
      const cancel: number[] = [];
      for (let i = job.next; i < job.envs.length; i++) {
        if (job.results[i] !== undefined || !senders.has(job.senders[i]!)) continue;
        let refusal: ValidationError | null;
        try {
          refusal = takenRefusal(job.envs[i]!);
        } catch {
          // A bug in the host: admission decides it as it would have, after its check.
          refusal = null;
        }
        if (!refusal) continue;
        job.results[i] = refusal;
        job.dropped.add(i);
        dropped++;
        const sent = job.sent.get(i);
        if (!sent) continue;
        // A later copy arriving now must not wait on a check that will not be made.
        if (this.inFlight.get(sent.key)?.job === job) this.inFlight.delete(sent.key);
        if (job.answer) cancel.push(sent.position);
        else this.checksWasted++; // answered already: the check was made for nothing
      }
      if (cancel.length === 0) continue;
      const marked = this.pool.cancel?.(job.answer!, cancel) ?? 0;
      this.dropStats.checksCancelled += marked;
      // Taken by a worker before the cancel came (or a pool that cannot cancel): made for nothing.
      this.checksWasted += cancel.length - marked;
    }
    this.dropStats.txs += dropped;
    return dropped;
  }

  /**
   * The costly checks (evidence, consents) of the signed transactions (signatures first: a forged
   * transaction gets no costly check), on the verifier's workers, by check key. Null where there are none or no
   * workers take them (`costlyOnWorkers`: admit checks them on this thread, in slices); a worker
   * that died or a pool that closed meanwhile leaves them to this thread too. Rejects with the
   * pool's VerifyPoolBusy when its admission lane is full.
   */
  private async checkCostly(
    envs: readonly TxEnvelope[],
    verified: readonly boolean[],
  ): Promise<Map<string, CostlyVerdict> | null> {
    const { host } = this;
    if (!this.costlyOnWorkers) return null;
    // Each distinct check once: copies of one registration in a call (a batch may carry the same
    // transaction many times; all pass the cheap screen before the first is admitted) would each
    // take a worker's milliseconds, where checked here the copies after the first cost a lookup.
    const checks: CostlyCheck[] = [];
    const keys: string[] = [];
    const seen = new Set<string>();
    envs.forEach((env, i) => {
      if (!verified[i]) return;
      for (const check of host.costlyChecks!(env)) {
        const key = costlyCheckKey(check);
        if (seen.has(key)) continue;
        seen.add(key);
        checks.push(check);
        keys.push(key);
      }
    });
    if (checks.length === 0) return null;
    return this.sendCostly(checks, keys);
  }

  /** `checks` (keyed `keys`) on the workers; null where the pool closed meanwhile. */
  private async sendCostly(
    checks: CostlyCheck[],
    keys: string[],
  ): Promise<Map<string, CostlyVerdict> | null> {
    let verdicts: (CostlyVerdict | null)[];
    try {
      verdicts = await this.pool.checkEvidence!(checks);
    } catch (err) {
      if (err instanceof VerifyPoolClosed) return null;
      throw err;
    }
    const out = new Map<string, CostlyVerdict>();
    keys.forEach((key, k) => {
      const v = verdicts[k];
      if (v) out.set(key, v);
    });
    return out;
  }

  /**
   * Before `job`'s transaction `from` is admitted: whether its costly checks, as the head now
   * makes them, lack a verdict (a block came after the workers checked them: the block time is an
   * input of every check, so every verdict of the job misses). Then the checks of its transactions
   * still to decide that lack one go back to the workers and the drain waits for them (returns
   * true); checked here they would hold the event loop for milliseconds each, which under load (a
   * block every interval, a queue behind it) would be most of them. Another block during that
   * resend makes them stale again: they go back again, up to MAX_STALE_RESENDS times per job (a
   * job waiting on its resend holds every later one, so blocks faster than the workers answer must
   * not hold admission for ever). Past that, and a check a dead worker or a full or closed pool
   * left unanswered, is checked here, in the drain's slices: the answer is the same either way,
   * only where it is computed differs.
   */
  private resendStale(job: Job, from: number, head: () => string | undefined): boolean {
    const { host } = this;
    if (job.resends >= MAX_STALE_RESENDS || !this.costlyOnWorkers) return false;
    const headNow = head();
    if (job.checkedOn !== undefined && headNow === job.checkedOn) return false;
    const known = job.verdicts;
    /** The checks of `env` with no verdict, each with its key (built, and keyed, once). */
    const misses = (env: TxEnvelope): { check: CostlyCheck; key: string }[] => {
      try {
        return host.costlyChecks!(env)
          .map((check) => ({ check, key: costlyCheckKey(check) }))
          .filter(({ key }) => !known?.has(key));
      } catch {
        // A bug in the host, not a refusal: admitOne meets it again and answers INTERNAL; it must
        // not escape the drain loop and stop admission.
        return [];
      }
    };
    const first = job.verified![from] ? misses(job.envs[from]!) : [];
    if (first.length === 0) return false;
    job.resends++;
    // The head these checks are made on: a block landing after this makes them miss again.
    job.checkedOn = headNow;
    const checks: CostlyCheck[] = [];
    const keys: string[] = [];
    const seen = new Set<string>();
    for (let i = from; i < job.envs.length; i++) {
      if (!job.verified![i] || job.results[i] !== undefined) continue;
      for (const { check, key } of i === from ? first : misses(job.envs[i]!)) {
        if (seen.has(key)) continue;
        seen.add(key);
        checks.push(check);
        keys.push(key);
      }
    }
    job.resending = true;
    const merge = (fresh: Map<string, CostlyVerdict> | null) => {
      if (fresh) {
        job.verdicts ??= new Map();
        for (const [k, v] of fresh) job.verdicts.set(k, v);
      }
      job.resending = false;
      this.scheduleDrain();
    };
    // Part of this job is decided already: a full lane cannot refuse the rest, they are checked here.
    this.sendCostly(checks, keys).then(merge, () => merge(null));
    return true;
  }

  private scheduleDrain(): void {
    if (this.draining) return;
    this.draining = true;
    this.slices.defer(() => this.drain());
  }

  /** One slice of admissions, then back to the event loop if more wait. */
  private drain(): void {
    this.draining = false;
    const start = this.slices.now();
    // The head, named once a slice (host.costlyHead hex-encodes the tip): no block lands while
    // the slice runs (it yields only at its end), and each transaction's resendStale asks it.
    let headNow: string | undefined;
    const head = () => (headNow ??= this.host.costlyHead?.());
    while (this.jobs.length > 0) {
      const job = this.jobs[0]!;
      // Its signatures are not answered yet: the drain resumes when they are (submit).
      if (job.verified === null || job.resending) return;
      while (job.next < job.envs.length) {
        const i = job.next;
        if (job.results[i] === undefined) {
          // The evidence checks a block made stale go back to the workers: resumed when answered.
          if (this.resendStale(job, i, head)) return;
          // A copy of a transaction `dropTaken` refused (the same bytes, the same nonce): the same
          // refusal; its check was not made.
          const copy = job.copies.get(i);
          const result =
            copy?.job.dropped.has(copy.index) === true
              ? copy.job.results[copy.index]!
              : this.admitOne(job.envs[i]!, this.verifiedAt(job, i), job.verdicts);
          job.results[i] = result;
          if (job.sent.has(i) && result instanceof ValidationError && STALE_CODES.has(result.code))
            this.checksWasted++;
        }
        job.next++;
        if (this.slices.now() - start >= this.opts.sliceMs) {
          this.scheduleDrain();
          return;
        }
      }
      this.jobs.shift();
      this.held -= job.envs.length;
      job.resolve(job.results as AdmissionResult[]);
    }
  }

  /**
   * Whether the signature of `job`'s transaction `i` verified: its own answer, or for a copy of an
   * earlier job's check, that job's answer for the same bytes. Jobs drain in order, so the earlier
   * job was answered by now; one whose call failed (a busy or closed pool) answered nothing
   * (null), and its copy is answered "busy, retry" like it: never checked on this thread.
   */
  private verifiedAt(job: Job, i: number): boolean | null {
    const copy = job.copies.get(i);
    if (!copy) return job.verified![i]!;
    return copy.job.verified?.[copy.index] ?? null;
  }

  private admitOne(
    env: TxEnvelope,
    verified: boolean | null,
    verdicts: Map<string, CostlyVerdict> | null,
  ): AdmissionResult {
    if (verified === null) return new SignatureCheckBusy();
    if (!verified) return new ValidationError('BAD_SIGNATURE', 'invalid transaction signature');
    const result = this.admitVerified(env, verdicts);
    if (result instanceof ValidationError) refusedAfterCheck.add(result);
    return result;
  }

  private admitVerified(env: TxEnvelope, verdicts: Map<string, CostlyVerdict> | null): AdmissionResult {
    try {
      if (!verdicts) return this.host.admit(env);
      // The key carries the kind of check (costlyCheckKey): a verdict under an evidence check's
      // key was made by runEvidenceCheck, one under a consent check's key by runConsentCheck.
      return this.host.admit(
        env,
        (check) => verdicts.get(costlyCheckKey(check)) as EvidenceVerdict | undefined,
        (check) => verdicts.get(costlyCheckKey(check)) as ConsentVerdict | undefined,
      );
    } catch (err) {
      if (err instanceof ValidationError) return err;
      // A bug, not the transaction's fault; it must not escape the drain loop and stop admission.
      return new ValidationError('INTERNAL', `admission failed: ${(err as Error).message}`);
    }
  }
}
