/**
 * The gateway's decisions, as pure functions of what it knows and of the time passed in (a virtual
 * clock in tests): which offer to lease, whether the budget allows it, when to open or close leases,
 * which lease takes a job, and what to do when an attempt fails. No I/O, no clock, no randomness:
 * `gateway.ts` gathers the facts, calls these, and carries out the answer.
 *
 * Money is bigint base units (1 UNC = 10^18) per hour, as on chain.
 */

export const MS_PER_HOUR = 3_600_000n;
const PPM = 1_000_000n;

// ---------------------------------------------------------------------------------------------
// Offers.

/** One rentable chip of one open offer, with what the chain says about it and its provider. */
export interface OfferCandidate {
  offerId: string;
  chipId: string;
  provider: string;
  /** Base units per hour. */
  pricePerHour: bigint;
  /** Attested power of the chip (dense FP16 TFLOPS × 1000), from its registration. */
  power: bigint;
  /** Answered share of its decided challenge slots over the last 24 h, ppm; null: none decided. */
  uptimePpm: bigint | null;
  minHours: number;
  /** The longest the offer rents for (default: minHours). */
  maxHours?: number;
  noticeMs: number;
  /** The provider's on-chain record. */
  jobsReceipted: bigint;
  disputes: bigint;
}

/** Uptime assumed for a chip with no decided slot yet: a newcomer is neither trusted nor shut out. */
export const UNKNOWN_UPTIME_PPM = 500_000n;

/**
 * The provider's record as a factor in ppm: 1 with no dispute, falling with the share of disputed
 * requests among its receipted jobs (a dispute counts four jobs, so one dispute in four jobs halves
 * it). Receipts and disputes are both on chain, and both cost lease time (PROTOCOL.md §8): a
 * dispute counts only on a lease its renter kept, and paid for, through the provider's response
 * wait (16 at most per lease), and a receipt only for a job inside the time its lease ran. What the
 * chain cannot tell apart is a provider renting its own chip through a second account: that lease
 * pays the provider itself, so receipted jobs can still be bought for fees and a lease's time on
 * the provider's own chip. The factor is a hint among price and uptime, not proof of service.
 */
export function recordPpm(jobsReceipted: bigint, disputes: bigint): bigint {
  const jobs = jobsReceipted < 0n ? 0n : jobsReceipted;
  const d = disputes < 0n ? 0n : disputes;
  return ((jobs + 1n) * PPM) / (jobs + 1n + 4n * d);
}

/**
 * What one unit of attested power costs per hour, adjusted for reliability: price ÷ power ÷ uptime
 * ÷ record. Lower is better. Base units per hour per unit of power, scaled by 10^12 so integer
 * division keeps the order of close prices. Null when the chip claims no power (nothing to buy).
 */
export function effectiveCost(c: OfferCandidate): bigint | null {
  // The chain admits no offer at a price of 0 or below, so a node listing one lies; leased, its
  // deposit (price × minimum hours) would be signed as 0, which means price × hours at the offer's
  // real price on chain: the node, not the budget, would decide what leaves the renter's balance.
  if (c.pricePerHour <= 0n) return null;
  if (c.power <= 0n) return null;
  const uptime = c.uptimePpm === null ? UNKNOWN_UPTIME_PPM : c.uptimePpm;
  if (uptime <= 0n) return null;
  const record = recordPpm(c.jobsReceipted, c.disputes);
  // price × 10^12 / power, then ÷ (uptime/10^6) ÷ (record/10^6).
  return (((c.pricePerHour * PPM * PPM) / c.power) * PPM * PPM) / uptime / record;
}

/**
 * The candidates worth leasing, best first: leasable within `rateLeft` (base units per hour the
 * budget still allows), not from an avoided provider, not a chip already held. Ties go to the lower
 * price, then to the offer and chip id so the order never depends on the order the node listed them.
 */
export function rankOffers(
  candidates: readonly OfferCandidate[],
  opts: { rateLeft: bigint; avoidedProviders: ReadonlySet<string>; heldChips: ReadonlySet<string> },
): OfferCandidate[] {
  const scored: { c: OfferCandidate; cost: bigint }[] = [];
  for (const c of candidates) {
    if (c.pricePerHour > opts.rateLeft) continue;
    if (opts.avoidedProviders.has(c.provider) || opts.heldChips.has(c.chipId)) continue;
    const cost = effectiveCost(c);
    if (cost === null) continue;
    scored.push({ c, cost });
  }
  scored.sort(
    (a, b) =>
      cmp(a.cost, b.cost) ||
      cmp(a.c.pricePerHour, b.c.pricePerHour) ||
      cmpStr(a.c.offerId, b.c.offerId) ||
      cmpStr(a.c.chipId, b.c.chipId),
  );
  return scored.map((s) => s.c);
}

// ---------------------------------------------------------------------------------------------
// Budget: a cap on the rate of spending, UNC per hour.

/** A lease the gateway holds or held, as the budget sees it. */
export interface BudgetLease {
  pricePerHour: bigint;
  openedAtMs: number;
  /** When it stopped costing (closed, or its escrow ran out); null while it runs. */
  endedAtMs: number | null;
}

/** Base units per hour the running leases cost together. */
export function committedRate(leases: readonly BudgetLease[]): bigint {
  let sum = 0n;
  for (const l of leases) if (l.endedAtMs === null) sum += l.pricePerHour;
  return sum;
}

/**
 * Whether one more lease at `pricePerHour` keeps the rate of spending within `budgetPerHour`.
 * Leases whose opening is in flight count as running: two decisions taken before either lease is
 * on chain must not together pass the budget.
 */
export function canAfford(
  leases: readonly BudgetLease[],
  pendingRates: readonly bigint[],
  pricePerHour: bigint,
  budgetPerHour: bigint,
): boolean {
  if (pricePerHour < 0n) return false;
  let committed = committedRate(leases);
  for (const p of pendingRates) committed += p;
  return committed + pricePerHour <= budgetPerHour;
}

/** A lease's status as the chain reports it. */
export type ChainLeaseStatus = 'active' | 'closing' | 'ended' | 'closed';

/**
 * Whether a lease still costs, by its status on chain: an active lease does, and so does one whose
 * provider gave notice ('closing'): the escrow pays it until its notice ends unless the renter
 * closes it. 'ended' (escrow used up or end time passed) and 'closed' cost nothing more.
 */
export function stillCosts(status: ChainLeaseStatus): boolean {
  return status === 'active' || status === 'closing';
}

/**
 * The rate the renter's leases cost now, from the chain where it lists them and from the
 * gateway's own records otherwise. The chain is the truth: it also lists a lease whose opening
 * transaction went through but whose record the gateway never wrote (it crashed between the two,
 * or stopped waiting for the transaction), and a lease the gateway took for over that in fact runs
 * on through a provider's notice. A lease only the records know costs until they say it ended.
 */
export function committedRateOnChain(
  records: readonly { leaseId: string; pricePerHour: bigint; endedAtMs: number | null }[],
  onChain: readonly { leaseId: string; pricePerHour: bigint; status: ChainLeaseStatus }[],
): bigint {
  let sum = 0n;
  const listed = new Set<string>();
  for (const l of onChain) {
    if (listed.has(l.leaseId)) continue;
    listed.add(l.leaseId);
    if (stillCosts(l.status)) sum += l.pricePerHour;
  }
  for (const r of records) if (!listed.has(r.leaseId) && r.endedAtMs === null) sum += r.pricePerHour;
  return sum;
}

/** Whether one more lease at `pricePerHour` keeps `committed` plus the openings in flight within the budget. */
export function canAffordRate(
  committed: bigint,
  pendingRates: readonly bigint[],
  pricePerHour: bigint,
  budgetPerHour: bigint,
): boolean {
  if (pricePerHour < 0n) return false;
  let sum = committed;
  for (const p of pendingRates) sum += p;
  return sum + pricePerHour <= budgetPerHour;
}

/** What the leases have cost up to `nowMs`: price × time held, rounded down (bigint). */
export function spentBy(leases: readonly BudgetLease[], nowMs: number): bigint {
  let sum = 0n;
  for (const l of leases) {
    const end = Math.min(l.endedAtMs ?? nowMs, nowMs);
    if (end > l.openedAtMs) sum += (l.pricePerHour * BigInt(end - l.openedAtMs)) / MS_PER_HOUR;
  }
  return sum;
}

// ---------------------------------------------------------------------------------------------
// Spending: lease charges and transaction fees together, within the budget in any hour.

/**
 * A transaction fee the renter's key paid, or may have paid. The chain charges it at the block
 * time of the block that includes the transaction, which the gateway learns only once it sees it
 * included: sent at one time, it may land in a block an hour later. So it counts from the moment
 * the transaction is handed to the node, and until its block is known it counts in every window
 * a spend check looks at (each of them ends after the send, so each could hold it); from then on
 * at its block's time, as the chain charged it. A transaction dropped or past its expiry height
 * without inclusion paid nothing and is forgotten.
 */
export interface FeePaid {
  fee: bigint;
  /** Block time (ms) of the block that included it; null while that is not known. */
  includedAtMs: number | null;
}

/** Lease charges accrued in [fromMs, toMs], each lease rounded up (never less than the chain charges). */
export function chargesIn(leases: readonly BudgetLease[], fromMs: number, toMs: number): bigint {
  let sum = 0n;
  for (const l of leases) {
    const start = Math.max(l.openedAtMs, fromMs);
    const end = Math.min(l.endedAtMs ?? toMs, toMs);
    if (end > start) sum += ceilDiv(l.pricePerHour * BigInt(end - start), MS_PER_HOUR);
  }
  return sum;
}

/** Fees of transactions included at block times in [fromMs, toMs]. */
export function feesIn(fees: readonly FeePaid[], fromMs: number, toMs: number): bigint {
  let sum = 0n;
  for (const f of fees)
    if (f.includedAtMs !== null && f.includedAtMs >= fromMs && f.includedAtMs <= toMs) sum += f.fee;
  return sum;
}

/** Fees of transactions that may still be included (or were, in a block not yet seen). */
export function pendingFees(fees: readonly FeePaid[]): bigint {
  let sum = 0n;
  for (const f of fees) if (f.includedAtMs === null) sum += f.fee;
  return sum;
}

/** Everything the key spent up to `nowMs`: every lease's charges and every fee, pending ones too. */
export function totalSpent(leases: readonly BudgetLease[], fees: readonly FeePaid[], nowMs: number): bigint {
  return (
    chargesIn(leases, Number.MIN_SAFE_INTEGER, nowMs) +
    feesIn(fees, Number.MIN_SAFE_INTEGER, nowMs) +
    pendingFees(fees)
  );
}

/**
 * The most the key could spend in any one-hour window that holds `nowMs` (the chain's latest block
 * time: every transaction not yet seen included lands after it), if from now on the leases cost
 * `futureRate` per hour for a whole hour and `futureFees` are paid: the maximum over window starts
 * s in [now − 1 h, now] of what was spent in [s, now] plus futureRate × (s + 1 h − now) plus the
 * pending fees plus futureFees. The function of s is piecewise linear, so its maximum is at the
 * ends or where a lease opened or ended or a fee was charged. A window that starts after `nowMs`
 * holds at most what the one starting at `nowMs` does. A fee charged, or a lease's last charges,
 * at a block time after `nowMs` (read after it) count in every window, as pending fees do.
 */
export function hourPeak(
  leases: readonly BudgetLease[],
  fees: readonly FeePaid[],
  futureRate: bigint,
  futureFees: bigint,
  nowMs: number,
): bigint {
  const hour = Number(MS_PER_HOUR);
  const from = nowMs - hour;
  const starts = new Set<number>([from, nowMs]);
  for (const l of leases) {
    if (l.openedAtMs > from && l.openedAtMs < nowMs) starts.add(l.openedAtMs);
    if (l.endedAtMs !== null && l.endedAtMs > from && l.endedAtMs < nowMs) starts.add(l.endedAtMs);
  }
  for (const f of fees)
    if (f.includedAtMs !== null && f.includedAtMs > from && f.includedAtMs < nowMs)
      starts.add(f.includedAtMs);
  // What the reads show after `nowMs` (they come after the block time is read: a transaction
  // included, or a lease ended, in a block since) lies in the windows ahead as much as a pending
  // fee does: left out (feesIn and chargesIn stop at `nowMs`) it was in no window at all.
  let after = pendingFees(fees);
  for (const f of fees) if (f.includedAtMs !== null && f.includedAtMs > nowMs) after += f.fee;
  for (const l of leases)
    if (l.endedAtMs !== null && l.endedAtMs > nowMs)
      after += chargesIn([l], nowMs, Math.min(l.endedAtMs, nowMs + hour));
  let peak = 0n;
  for (const s of starts) {
    const ahead = ceilDiv(futureRate * BigInt(s + hour - nowMs), MS_PER_HOUR);
    const v = chargesIn(leases, s, nowMs) + feesIn(fees, s, nowMs) + ahead + after + futureFees;
    if (v > peak) peak = v;
  }
  return peak;
}

/** What one more spending step would add, and what is already set aside. */
export interface SpendStep {
  /** Base units per hour of the leases that still cost and of those being opened. */
  committedRate: bigint;
  /** Fees set aside for what must still be paid: one closing per lease that still costs or is being opened. */
  reservedFees: bigint;
  /** The rate of the lease this step opens (0 for a dispute or a top-up). */
  newRate: bigint;
  /** The fees this step pays now, and any it commits to (a new lease's closing). */
  newFees: bigint;
}

/**
 * Whether a step that spends (opening a lease, disputing a request, topping up escrow) keeps every
 * one-hour window within the budget, counting lease charges and transaction fees together, on the
 * chain's block times (`nowMs`: the latest block time, read fresh with the leases and the fees'
 * inclusions). Taken before every transaction that is not a closing (whose fee is reserved when
 * its lease opens), this bounds what the chain charges the key in any hour of block time by
 * `budgetPerHour`: take the last step whose check stood before the window's end. What lands in
 * the window after that check's block time was counted by it (the leases it knew of or was
 * opening, the fees still pending or reserved, its own); what landed before is history it read.
 */
export function canSpend(
  history: { leases: readonly BudgetLease[]; fees: readonly FeePaid[] },
  step: SpendStep,
  budgetPerHour: bigint,
  nowMs: number,
): boolean {
  if (step.newRate < 0n || step.newFees < 0n || step.committedRate < 0n || step.reservedFees < 0n)
    return false;
  const peak = hourPeak(
    history.leases,
    history.fees,
    step.committedRate + step.newRate,
    step.reservedFees + step.newFees,
    nowMs,
  );
  return peak <= budgetPerHour;
}

/** A lease of the renter as the chain lists it, for the spend history. */
export interface ChainLeaseTimes {
  leaseId: string;
  pricePerHour: bigint;
  status: ChainLeaseStatus;
  /** Block times, ms. */
  startTime: number;
  escrowUntil: number;
  closedTime: number | null;
}

/**
 * The leases whose charges the spend history holds: those the chain lists, with the chain's block
 * times (a closed or ended lease cost until it was paid through; a running one costs on), and
 * those only the records know, with the records' times.
 */
export function spendLeases(
  records: readonly { leaseId: string; pricePerHour: bigint; openedAtMs: number; endedAtMs: number | null }[],
  onChain: readonly ChainLeaseTimes[],
): BudgetLease[] {
  const out: BudgetLease[] = [];
  const listed = new Set<string>();
  for (const l of onChain) {
    if (listed.has(l.leaseId)) continue;
    listed.add(l.leaseId);
    const ended =
      l.status === 'closed'
        ? Math.min(l.closedTime ?? l.escrowUntil, l.escrowUntil)
        : l.status === 'ended'
          ? l.escrowUntil
          : null;
    out.push({ pricePerHour: l.pricePerHour, openedAtMs: l.startTime, endedAtMs: ended });
  }
  for (const r of records)
    if (!listed.has(r.leaseId))
      out.push({ pricePerHour: r.pricePerHour, openedAtMs: r.openedAtMs, endedAtMs: r.endedAtMs });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Escrow: a lease is opened for as long as its offer allows with the least deposit the offer
// accepts, and topped up while it is busy; no job goes to it once its escrow could run out
// before the job's answer.

/**
 * Whether a job may be sent to a lease whose escrow pays until `escrowUntilMs` (block time): only
 * if the chain's time, as last seen, plus the time the job may take stays before it. A job sent
 * later would be refused by the provider (or answered unpaid), a wasted attempt at best.
 */
export function escrowCovers(escrowUntilMs: number, chainNowMs: number, jobMs: number): boolean {
  return chainNowMs + jobMs < escrowUntilMs;
}

/**
 * The top-up a lease needs now, or 0: a lease in use (jobs running or waiting) whose escrow runs
 * out within `aheadMs` of the chain's time, and that may still run past it (its end time is
 * later), gets one more `hoursPerTopUp` of its price, no more than what its end time allows.
 */
export function topUpAmount(
  lease: { pricePerHour: bigint; escrowUntilMs: number; endTimeMs: number; inUse: boolean },
  chainNowMs: number,
  aheadMs: number,
  hoursPerTopUp: number,
): bigint {
  if (!lease.inUse || lease.pricePerHour <= 0n) return 0n;
  if (lease.escrowUntilMs - chainNowMs > aheadMs) return 0n;
  if (lease.escrowUntilMs >= lease.endTimeMs) return 0n;
  const room = ceilDiv(lease.pricePerHour * BigInt(lease.endTimeMs - lease.escrowUntilMs), MS_PER_HOUR);
  const want = lease.pricePerHour * BigInt(Math.max(1, hoursPerTopUp));
  return want < room ? want : room;
}

/**
 * Whether a transaction not seen included never will be, from its status at one node and the
 * chain's latest height. A drop the node reports does not say so, whatever its code: evicted from
 * a full pool, or replaced there, it was gossiped before and another node's proposer may still
 * include it; and NONCE_USED or EXPIRED is only the node's word, which a hostile node gives while
 * it keeps the signature to relay once a second opening (or dispute) has been signed. Only the
 * chain past its expiry height settles it: no block can include it after that.
 */
export function neverIncluded(
  st: { status: string; code?: string },
  height: number | null,
  expiresAt: bigint | null,
): boolean {
  if (st.status === 'included') return false;
  return height !== null && expiresAt !== null && BigInt(height) > expiresAt;
}

/**
 * Why a top-up decided earlier must not go out now, judged by the lease as the chain shows it at
 * the moment of sending (read inside the one-at-a-time transaction queue, with the chain's latest
 * block time), or null to send it. The decision was taken on the pool's view, refreshed every few
 * seconds: in between, the provider may have given notice (the lease is closing, and the chain
 * still takes a top-up into it: money into a lease that is ending), or its end time or escrow may
 * have passed.
 */
export function topUpRefusal(
  lease: { status: ChainLeaseStatus; escrowUntilMs: number; endTimeMs: number },
  blockTimeMs: number,
): string | null {
  if (lease.status === 'closing') return 'its provider gave notice: the lease is closing';
  if (lease.status !== 'active') return `the lease is ${lease.status}`;
  if (blockTimeMs >= lease.endTimeMs) return 'the lease reached its end time';
  if (blockTimeMs >= lease.escrowUntilMs) return 'its escrow ran out';
  return null;
}

function ceilDiv(a: bigint, b: bigint): bigint {
  return a <= 0n ? 0n : (a + b - 1n) / b;
}

/** The share of a lease's price a job used: price × the chip time its receipt reports. */
export function jobCost(pricePerHour: bigint, durationMs: bigint): bigint {
  return (pricePerHour * (durationMs < 0n ? 0n : durationMs)) / MS_PER_HOUR;
}

// ---------------------------------------------------------------------------------------------
// Scaling.

export interface PoolLease {
  leaseId: string;
  /** Jobs running on it now, and how many it may run at once. */
  inFlight: number;
  slots: number;
  openedAtMs: number;
  /** When its last job finished (or it opened, before any); meaningful while inFlight is 0. */
  lastActiveMs: number;
  /** The offer's notice period: a lease is closed only after it has been idle this long. */
  noticeMs: number;
}

export interface PoolView {
  leases: readonly PoolLease[];
  /** Leases being opened now (transaction sent, not yet usable). */
  opening: number;
  queued: number;
  /** How long the oldest queued job has waited, ms (0 with an empty queue). */
  oldestWaitMs: number;
  /** p99 of the latency of jobs finished in the recent window, ms; null with none. */
  recentP99Ms: number | null;
  /** When the last lease was opened (ms), or null. */
  lastOpenedMs: number | null;
}

export interface ScaleTargets {
  /** Open a lease when the oldest queued job has waited longer than this. */
  queueWaitMs: number;
  /** … or when the recent p99 latency is above this while jobs are queued. */
  latencyP99Ms: number;
  /** Close a lease idle this long (and at least its offer's notice period). */
  idleCloseMs: number;
  minLeases: number;
  maxLeases: number;
  /** After opening a lease, wait this long before opening another: let it take load first. */
  scaleUpCooldownMs: number;
}

export interface ScaleDecision {
  open: number;
  close: string[];
  reason: string;
}

/**
 * Opens a lease when jobs wait too long or run too slowly (one per cooldown, never past
 * `maxLeases`), or when fewer than `minLeases` are held; closes leases idle for the idle period and
 * their notice period while no job waits, down to `minLeases` (the longest idle first). The budget
 * is checked when an offer is chosen (`canAfford`), not here.
 */
export function decideScale(view: PoolView, t: ScaleTargets, nowMs: number): ScaleDecision {
  const held = view.leases.length + view.opening;
  if (held < t.minLeases) return { open: t.minLeases - held, close: [], reason: 'below the minimum' };
  const cooled = view.lastOpenedMs === null || nowMs - view.lastOpenedMs >= t.scaleUpCooldownMs;
  const freeSlots = view.leases.reduce((n, l) => n + Math.max(0, l.slots - l.inFlight), 0);
  if (view.queued > 0 && held < t.maxLeases && view.opening === 0 && cooled) {
    if (view.leases.length === 0) return { open: 1, close: [], reason: 'jobs wait and no lease is held' };
    if (view.oldestWaitMs > t.queueWaitMs && freeSlots === 0)
      return { open: 1, close: [], reason: `queue wait ${view.oldestWaitMs} ms > ${t.queueWaitMs} ms` };
    if (view.recentP99Ms !== null && view.recentP99Ms > t.latencyP99Ms && freeSlots === 0)
      return { open: 1, close: [], reason: `p99 ${view.recentP99Ms} ms > ${t.latencyP99Ms} ms` };
  }
  if (view.queued > 0) return { open: 0, close: [], reason: 'jobs queued' };
  const idle = view.leases
    .filter((l) => l.inFlight === 0 && nowMs - l.lastActiveMs >= Math.max(t.idleCloseMs, l.noticeMs))
    .sort((a, b) => a.lastActiveMs - b.lastActiveMs || cmpStr(a.leaseId, b.leaseId));
  const closable = Math.max(0, view.leases.length - t.minLeases);
  const close = idle.slice(0, closable).map((l) => l.leaseId);
  return { open: 0, close, reason: close.length > 0 ? 'idle' : 'steady' };
}

// ---------------------------------------------------------------------------------------------
// Routing and retries.

export interface RoutableLease {
  leaseId: string;
  provider: string;
  inFlight: number;
  slots: number;
}

/** The most jobs sent to one lease at once when the operator did not set `slotsPerLease`. */
export const DEFAULT_MAX_SLOTS_PER_LEASE = 16;

/** A count a provider reported: a positive safe integer, or null for anything else. */
function reportedCount(v: unknown): number | null {
  return typeof v === 'number' && Number.isSafeInteger(v) && v > 0 ? v : null;
}

/**
 * Jobs the gateway sends one lease at once, from what its provider reports in `GET /v1/health`
 * (its job concurrency and how many jobs one renter may have) and the operator's `slotsPerLease`.
 * The provider's numbers are its own word: one that claimed a concurrency of 1e9 (or a non-number,
 * which made no limit at all) was sent every queued job at once, each on a new connection, answered
 * none, and cost the gateway a timeout and a dispute each. So only a positive safe integer is
 * taken (else 1 slot; a missing per-renter limit counts as 64), and without `slotsPerLease` the
 * provider gets at most DEFAULT_MAX_SLOTS_PER_LEASE. `slotsPerLease` is the operator's choice, but
 * never above the provider's per-renter limit (past it the provider refuses with 429).
 */
export function leaseSlots(
  reported: { concurrency?: unknown; maxJobsPerRenter?: unknown },
  slotsPerLease?: number,
): number {
  const perRenter = reportedCount(reported.maxJobsPerRenter) ?? 64;
  // The operator's number passes the same check (the Gateway refuses a bad one at start): a NaN
  // or 0 here made the slot count NaN, and no job was ever sent to the lease.
  const operator = slotsPerLease === undefined ? null : reportedCount(slotsPerLease);
  const wanted = operator ?? Math.min(reportedCount(reported.concurrency) ?? 1, DEFAULT_MAX_SLOTS_PER_LEASE);
  return Math.max(1, Math.min(wanted, perRenter));
}

/**
 * The lease for a job's next attempt: one with a free slot, of a provider not avoided, preferring
 * leases the job has not tried, then the least loaded (ties: lease id). Null when none can take it
 * now (the job waits in the queue).
 */
export function pickLease(
  leases: readonly RoutableLease[],
  opts: { avoidedProviders: ReadonlySet<string>; triedLeases: ReadonlySet<string> },
): RoutableLease | null {
  let best: RoutableLease | null = null;
  const key = (l: RoutableLease) => [opts.triedLeases.has(l.leaseId) ? 1 : 0, l.inFlight / l.slots] as const;
  for (const l of leases) {
    if (l.inFlight >= l.slots || opts.avoidedProviders.has(l.provider)) continue;
    if (!best) {
      best = l;
      continue;
    }
    const [ta, la] = key(l);
    const [tb, lb] = key(best);
    if (ta < tb || (ta === tb && (la < lb || (la === lb && l.leaseId < best.leaseId)))) best = l;
  }
  return best;
}

/** How an attempt on a provider failed. */
export type AttemptFailure =
  /** No answer within the attempt's time limit. */
  | 'timeout'
  /** The connection failed or broke: no answer. */
  | 'unreachable'
  /** The provider answered with a server error or a malformed answer. */
  | 'provider-error'
  /** It answered, but the receipt or the outputs do not verify against the chain. */
  | 'bad-receipt'
  /** It refused the lease (not active any more, or not ours): the lease is dropped from the pool. */
  | 'lease-refused'
  /** Too busy now (its queue or our quota is full): try elsewhere, nothing held against it. */
  | 'busy'
  /** The job itself is bad (the input does not decode, the model rejects it): no provider can run it. */
  | 'rejected-input'
  /**
   * The gateway's own side failed (its node did not answer while the receipt was checked, its
   * database refused a write): nothing is held against the provider, the job is tried again.
   */
  | 'gateway-error';

export interface RetryDecision {
  retry: boolean;
  /** Keep the provider out of routing and leasing until this time (ms); null: not avoided. */
  avoidUntilMs: number | null;
  /** Record the renter-signed request on chain as unanswered. */
  dispute: boolean;
}

export interface RetryPolicy {
  maxAttempts: number;
  /** How long a provider that did not answer is avoided. */
  avoidMs: number;
}

/** A provider whose receipt does not verify is never used again by this gateway. */
export const AVOID_FOREVER = Number.MAX_SAFE_INTEGER;

/**
 * Distinct providers that must refuse a job's input before the job fails as bad: one provider's
 * word is not enough, or a dishonest provider could fail every job routed to it at no cost to
 * itself (no dispute, no avoidance) by calling each input bad.
 */
export const REJECTIONS_TO_FAIL = 2;

/**
 * What follows a failed attempt (`attempts` counts it). A request that got no answer is disputed
 * and its provider avoided for a while; a receipt that does not verify gets its provider avoided
 * for good; an input refused by `REJECTIONS_TO_FAIL` distinct providers (`rejectedBy`, this one
 * included) fails, since every provider would refuse it too. Anything else is tried on another
 * lease until `maxAttempts`.
 */
export function decideRetry(
  failure: AttemptFailure,
  attempts: number,
  policy: RetryPolicy,
  nowMs: number,
  rejectedBy = 1,
): RetryDecision {
  const more = attempts < policy.maxAttempts;
  switch (failure) {
    case 'rejected-input':
      return { retry: more && rejectedBy < REJECTIONS_TO_FAIL, avoidUntilMs: null, dispute: false };
    case 'gateway-error':
      return { retry: more, avoidUntilMs: null, dispute: false };
    case 'timeout':
    case 'unreachable':
      return { retry: more, avoidUntilMs: nowMs + policy.avoidMs, dispute: true };
    case 'provider-error':
      return { retry: more, avoidUntilMs: nowMs + policy.avoidMs, dispute: false };
    case 'bad-receipt':
      return { retry: more, avoidUntilMs: AVOID_FOREVER, dispute: false };
    case 'lease-refused':
      // The lease is dropped either way; without avoiding its provider a while, a provider that
      // refuses a live lease is the cheapest again at once, leased again and dropped again, the
      // renter paying a fee each way.
      return { retry: more, avoidUntilMs: nowMs + policy.avoidMs, dispute: false };
    case 'busy':
      return { retry: more, avoidUntilMs: null, dispute: false };
  }
}

/**
 * Attempts in a row a lease may fail (answered with no result, however politely: busy, lease
 * refused, errors) before its provider is avoided for a while and the lease closed. Without it a
 * provider that answers every job "busy" at once keeps a lease the renter pays for, and being
 * the least loaded it takes every job's first attempt.
 */
export const LEASE_FAILURE_STREAK_LIMIT = 5;

/** The lease's run of failed attempts after this one (reset by an answer). */
export function failureStreak(streak: number, failure: AttemptFailure | null): number {
  if (failure === null) return 0;
  // Not the provider's doing: the input, or the gateway itself.
  if (failure === 'rejected-input' || failure === 'gateway-error') return streak;
  return streak + 1;
}

/**
 * The least time between two uploads of one model again to one lease, after its provider answered
 * a job MODEL_NOT_FOUND (its store evicted the model). A time bound, not a count of jobs served
 * between: what it limits is the renter's upload bandwidth (a model may be 256 MiB), and a
 * provider serving a stream of small jobs would pass any job count in seconds. An honest provider
 * evicts a model used this lease's jobs rarely; one that loses it twice in 10 minutes is thrashing
 * its store, and leasing elsewhere is better for the renter too.
 */
export const REUPLOAD_EVERY_MS = 10 * 60_000;

/** Whether a model last uploaded again to a lease at `lastMs` (undefined: never) may be now. */
export function reuploadAllowed(lastMs: number | undefined, nowMs: number): boolean {
  return lastMs === undefined || nowMs - lastMs >= REUPLOAD_EVERY_MS;
}

/** Classifies a provider API error by its HTTP status and code. */
export function classifyProviderError(status: number, code: string): AttemptFailure {
  // 408: the provider found our upload too slow (its upload pace, UPLOAD_TOO_SLOW): our link or
  // a crowded provider, not a fault of its own; as an error, 5 of them while uploads contended
  // avoided an honest provider.
  if (status === 429 || status === 503 || status === 408) return 'busy';
  // Its model store full of models in use (507): a crowded provider, not a fault of its own. One
  // that answers so to every job is avoided after LEASE_FAILURE_STREAK_LIMIT of them, as a busy one is.
  if (code === 'STORE_FULL') return 'busy';
  // MODEL_NOT_FOUND that comes this far is not an eviction the gateway took care of (`run` uploads
  // the model again, at most once per REUPLOAD_EVERY_MS): our model lost again right after it was
  // stored anew, or the provider's own built-in OCR model "missing". As busy, a provider answering
  // it to 4 jobs in 5 kept its lease for ever (the streak reset by each job served) and cost the
  // renter a model upload per job refused; as a provider error it is avoided and the lease closed.
  if (code === 'MODEL_NOT_FOUND') return 'provider-error';
  if (code.startsWith('LEASE_') || code === 'NOT_RENTER') return 'lease-refused';
  if (status === 400 || status === 411 || status === 413 || status === 414 || status === 422)
    return 'rejected-input';
  return 'provider-error';
}

// ---------------------------------------------------------------------------------------------
// Latency statistics.

/** The q-quantile (0…1) of `values` by the nearest-rank method; null for none. */
export function quantile(values: readonly number[], q: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1]!;
}

function cmp(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function cmpStr(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
