/**
 * Pending transactions. A block takes the highest fees first, each sender's transactions in nonce
 * order, with a share kept for fee-free ones (heartbeats, evidence; see `ordered`); a transaction
 * with the same sender and nonce replaces one already here only if it pays at least 10% more.
 * Every refusal says why, and every transaction that leaves without being included is
 * remembered, for a while, with why and when (`dropped`).
 *
 * What keeps one key from filling every node's pool:
 * - Fee-free transactions (heartbeats, evidence) cost their sender nothing, so they are admitted
 *   only if they would execute now: core's own rules run on a scratch copy of the next block's
 *   state, at the sender's next nonce, and no two pending transactions answer the same slot or
 *   report the same offender. A heartbeat must come from the owner of every chip it answers for
 *   (core's NOT_CHIP_OWNER): others' are refused before their signature is checked, as are a chip
 *   transfer to its own sender and a transfer or deregistration of a chip its lease binds (core's
 *   chipActionRefusal: SAME_OWNER, CHIP_LEASED), before any consent check. A paying
 *   transaction's heartbeats are checked the same way (alone, at any nonce): it pays nothing if
 *   they fail.
 * - A transaction reporting evidence, paying or not, holds the one place its offender has here, so
 *   it must be sure to land in the next block: it carries that one evidence action and nothing else
 *   (EVIDENCE_NOT_ALONE), takes the sender's next nonce (NONCE_GAP), would execute now (core's rules
 *   on the next block's opening state), is drawn through the fee-free reserve before anything else
 *   (`ordered`), is replaced only by one reporting the same offender (EVIDENCE_PENDING), and is
 *   checked again after every commit (`recheckEvidence`). A paying one parked at a nonce gap used to
 *   hold the place, never includable and never paid for, for up to its whole lifetime: the
 *   offender's own evidence kept every honest report out (ALREADY_PENDING) until the offence was
 *   too old to punish.
 * - A transaction that fails in a block pays nothing either, whatever fee it declares: so one with
 *   costly actions (a chip registration's certificate chain and quote, a transfer's consent;
 *   milliseconds each) is admitted only if that costly part passes on the next block's state
 *   (core's `checkCostlyActions`). Junk evidence never enters the pool, is never gossiped, and no
 *   proposer spends its block's time on it; what still fails later (the state changed since) is
 *   bounded per block by the builder (chain.ts MAX_REJECTED_COSTLY_PER_BLOCK).
 * - A sender's queue is capped in count, bytes and distance ahead of its next nonce, and its
 *   balance must cover the fees and values of all its queued transactions together.
 * - When the pool is full, a transaction that pays a higher fee per byte evicts the lowest: the
 *   tail of a sender's queue (never leaving a gap), queues with a gap (that cannot execute) first.
 */
import {
  type Action,
  type AnswerRef,
  applyHeartbeat,
  type BlockContext,
  BlockExecutor,
  BoundedCache,
  type ChainParams,
  type ConsentVerdicts,
  type CostlyCheck,
  checkCostlyActions,
  checkTransactionStateless,
  chipActionRefusal,
  chipClass,
  costlyActionCount,
  type EvidenceVerdicts,
  evidenceOffender,
  feeActions,
  formatUnc,
  getAccount,
  getChallengeClass,
  getHeartbeatOperatorRecord,
  getPociParams,
  type HeartbeatAnswer,
  heartbeatOwnerRefusal,
  isFeeFree,
  keyId,
  maxSpend,
  minimumFee,
  type PociParams,
  registrationEvidenceChecks,
  type StateReader,
  StateRefusal,
  type TxEnvelope,
  toHex,
  transferConsentChecks,
  ValidationError,
  verifyEnvelopeSignature,
} from '@unc/core';

export interface MempoolOptions {
  maxTxs: number;
  maxBytes: number;
  /** How far past the sender's next nonce a transaction may queue. */
  maxNonceGap: bigint;
  /** Pending transactions one sender may have queued. */
  maxTxsPerSender: number;
  /** Bytes of pending transactions one sender may have queued. */
  maxBytesPerSender: number;
  /** Dropped transactions remembered (with reason and height) for queries; the oldest go first. */
  maxRememberedDrops: number;
  /** Costly-evidence refusals remembered by transaction hash, so that copies cost a lookup. */
  maxRememberedEvidenceRefusals: number;
}

export const DEFAULT_MEMPOOL_OPTIONS: MempoolOptions = {
  maxTxs: 100_000,
  maxBytes: 64 * 1024 * 1024,
  maxNonceGap: 64n,
  maxTxsPerSender: 64,
  maxBytesPerSender: 1024 * 1024,
  maxRememberedDrops: 10_000,
  maxRememberedEvidenceRefusals: 20_000,
};

/**
 * Evidence refusals that the bytes alone prove (garbled evidence, a signature that does not verify
 * over the anchored message): no state of the chain makes them pass, so a peer relaying one is at
 * fault, as for a bad transaction signature. Every other refusal of evidence (vendor unknown or
 * revoked, certificate expired at block time, root not trusted, anchor not recent) depends on the
 * state, which the relay may see otherwise, and blames nobody.
 */
export const PROVABLY_BAD_EVIDENCE: ReadonlySet<string> = new Set([
  'ATTEST_MALFORMED',
  'ATTEST_BAD_SIGNATURE',
  // Consensus evidence that proves no offence (two signers or slots, no conflict, out of order) or
  // whose vote or proposal signature does not verify (core's consensusEvidenceFault). Evidence
  // refused BAD_EVIDENCE (a signer outside the epoch's set, a height the chain has not passed)
  // depends on the state and blames nobody.
  'BAD_EVIDENCE_PROOF',
  'BAD_EVIDENCE_SIGNATURE',
]);

/**
 * A transaction reporting consensus evidence carries that one action and nothing else (node
 * policy, not a rule of blocks): it holds its offender's one place in the pool, and anything beside
 * the evidence that could fail at the block (an answer whose window closes, another piece of
 * evidence whose offender another report tombstones first, a transfer, a lease) would let it hold
 * that place and fail, so that no report of the offender lands. Null when `tx` is fine.
 */
export function evidenceShapeRefusal(tx: { actions: readonly { type: string }[] }): ValidationError | null {
  if (tx.actions.length <= 1 || !tx.actions.some((a) => a.type === 'evidence')) return null;
  return new ValidationError(
    'EVIDENCE_NOT_ALONE',
    'a transaction reporting evidence carries that one evidence action and nothing else',
  );
}

/**
 * Whether `err` proves the bytes bad whatever the state: a PROVABLY_BAD_EVIDENCE code, unless core
 * judged it against state (a StateRefusal: a transfer's consent checked against the chip's key as
 * this node's state holds it, which a re-registration may have changed).
 */
export function provablyBadEvidence(err: ValidationError): boolean {
  return PROVABLY_BAD_EVIDENCE.has(err.code) && !(err instanceof StateRefusal);
}

/**
 * What admission reports for an error thrown by core's execution rules: a refusal as it is, any
 * other failure as INVALID (a transaction that could not be applied is refused, not a crash).
 */
function asRefusal(err: unknown): ValidationError {
  if (err instanceof ValidationError) return err;
  return new ValidationError('INVALID', `transaction could not be applied: ${(err as Error).message}`);
}

/** An evidence refusal remembered: for any state ('*': provably bad) or for one head (its hash). */
interface EvidenceRefusal {
  code: string;
  message: string;
  head: string;
}

/** Why and when (the chain height) a transaction left the pool without being included. */
export interface DroppedTx {
  code: string;
  reason: string;
  height: bigint;
  /** The heartbeat answer the drop is about, when it is about one (core's ValidationError.answer). */
  answer?: AnswerRef;
}

/** Replacement must raise the fee by at least this fraction (numerator/denominator). */
const REPLACE_BUMP_NUM = 11n;
const REPLACE_BUMP_DEN = 10n;

interface Entry {
  env: TxEnvelope;
  id: string;
  nonce: bigint;
  fee: bigint;
  size: number;
  /** Fee plus the value its actions can move out of the sender's balance. */
  cost: bigint;
  /** Admitted without the minimum fee, by the stateful check. */
  free: boolean;
  /** Heartbeat slots it answers and evidence it reports: one pending transaction each. */
  claims: string[];
  /** Its share of a block, as the fee-free reserve counts it: answers and evidence, else actions. */
  weight: number;
  /**
   * Fee-free only: the last height it is any use at, the earliest answer window's close (slot
   * height + W) for a heartbeat, its expiry for evidence; the reserve serves the nearest first.
   */
  deadline: bigint;
  /** Whether it answers a heartbeat slot (evidence goes before answers in the reserve). */
  answers: boolean;
  /**
   * Whether it reports evidence (its one action): drawn through the fee-free reserve, paying or
   * not, so that it lands in the next block.
   */
  evidence: boolean;
  /** Admission order: among equal deadlines, the one waiting longest goes first. */
  seq: number;
}

/**
 * Eviction priority of a sender's queue, lowest evicted first: queues with a gap (cls 0), then
 * paying queues by their lowest fee per byte (cls 1); queues of fee-free transactions only (cls 2)
 * are never evicted to make room for paying ones.
 */
interface EvictKey {
  cls: 0 | 1 | 2;
  fee: bigint;
  size: number;
}

interface SenderQueue {
  id: string;
  byNonce: Map<bigint, Entry>;
  bytes: number;
  cost: bigint;
  /** The account's next nonce when last looked at. */
  base: bigint;
  key: EvictKey;
  /** The highest nonce: what eviction takes, so that no gap is left behind. */
  tail: Entry | null;
  /** The paying entry with the lowest fee per byte (null: fee-free entries only). */
  cheapest: Entry | null;
  /** Position in the eviction heap. */
  pos: number;
}

export class Mempool {
  private readonly opts: MempoolOptions;
  private readonly senders = new Map<string, SenderQueue>();
  private readonly byHash = new Map<string, Entry>();
  private readonly claims = new Map<string, string>();
  private readonly evictHeap = new EvictionHeap();
  private readonly drops = new Map<string, DroppedTx>();
  private totalBytes = 0;
  /** Hashes whose signatures were checked on admission, so block execution can skip them. */
  private readonly verified = new Set<string>();
  private dropListener: ((env: TxEnvelope, drop: DroppedTx) => void) | null = null;
  /** The next block's opening state, for the stateful check of fee-free transactions. */
  private preflight: { key: string; executor: BlockExecutor } | null = null;
  private admitted = 0;
  /**
   * Why costly evidence (or a paying transaction's heartbeat answer, provably bad) was refused, by
   * transaction hash (the hash covers the evidence and the
   * sender, not the transaction signature, and the refusal depends on those alone): the same junk
   * relayed by every peer, or resubmitted, is refused for a lookup, not another chain check.
   */
  private readonly evidenceRefusals: BoundedCache<EvidenceRefusal>;
  /** Costly evidence checks run (tests and diagnostics). */
  evidenceChecks = 0;
  /**
   * Registrations' evidence and transfers' consents verified on this (the calling) thread, not
   * found among the verdicts admission brought from the verify workers: each holds the event loop
   * for milliseconds.
   */
  evidenceCheckedHere = 0;
  /** Paying transactions' heartbeats and evidence checked (checkFreeActionsWouldExecute; tests and diagnostics). */
  freeActionChecks = 0;

  constructor(opts: Partial<MempoolOptions> = {}) {
    this.opts = { ...DEFAULT_MEMPOOL_OPTIONS, ...opts };
    this.evidenceRefusals = new BoundedCache(Math.max(2, this.opts.maxRememberedEvidenceRefusals));
  }

  get size(): number {
    return this.byHash.size;
  }

  get bytes(): number {
    return this.totalBytes;
  }

  get limits(): Readonly<MempoolOptions> {
    return this.opts;
  }

  has(hash: Uint8Array): boolean {
    return this.byHash.has(keyId(hash));
  }

  /** Called for every transaction that leaves the pool without being included. */
  onDrop(listener: (env: TxEnvelope, drop: DroppedTx) => void): void {
    this.dropListener = listener;
  }

  /** Why a transaction recently left the pool without being included; null if it did not. */
  dropped(hash: Uint8Array): DroppedTx | null {
    return this.drops.get(keyId(hash)) ?? null;
  }

  /**
   * The refusals that cost no signature check (already pending, nonce used, malformed for this
   * chain, a heartbeat for chips not the sender's): a batch is screened with this before its
   * signatures are queued for checking, so a flood of stale or duplicate copies costs a map lookup
   * each, not a signature check.
   */
  cheapRefusal(
    env: TxEnvelope,
    state: StateReader,
    params: ChainParams,
    next: BlockContext,
    /**
     * Whether what the sender's pending transactions may spend counts against its balance: not for
     * a transaction that follows one of the same sender in its batch, which may replace a pending
     * one (and spend less) before this one is admitted. Its own cost still must fit the balance.
     */
    countPending = true,
  ): ValidationError | null {
    if (this.byHash.has(keyId(env.hash)))
      return new ValidationError('DUPLICATE', 'transaction is already in the mempool');
    const refused = this.rememberedEvidenceRefusal(env, next);
    if (refused) return refused;
    try {
      checkTransactionStateless(env, params, next);
    } catch (err) {
      if (err instanceof ValidationError) return err;
      throw err;
    }
    const shape = evidenceShapeRefusal(env.stx.tx);
    if (shape) return shape;
    const account = getAccount(state, env.sender);
    if (env.stx.tx.nonce < account.nonce)
      return new ValidationError(
        'NONCE_USED',
        `nonce ${env.stx.tx.nonce} already used (next is ${account.nonce})`,
      );
    // The balance too (a state read, as `add` does it): signed once from keys that hold nothing,
    // such transactions were refused only after their signature check, so re-gossiped in new
    // batch orders (each a new message id) they had every node check them again, for nothing.
    // A fee-free transaction (a chip heartbeat) with no value spends nothing and passes.
    return (
      this.fundsRefusal(env, state, account.balance, countPending) ??
      ownerRefusal(env, state, next.height) ??
      // After a transaction of the same sender earlier in the batch (not admitted yet, and it may
      // end the lease), a lease without notice is left to `add`.
      chipRefusal(env, state, next, countPending ? this.pendingActionsBefore(env) : undefined)
    );
  }

  /**
   * The actions of the sender's pending transactions at nonces below `env`'s, which run before it
   * (at most a sender's queue); none looked at when `env` moves no chip.
   */
  private pendingActionsBefore(env: TxEnvelope): Action[] {
    const { actions, nonce } = env.stx.tx;
    if (!actions.some((a) => a.type === 'transferChip' || a.type === 'deregisterChip')) return [];
    const q = this.senders.get(keyId(env.sender));
    const out: Action[] = [];
    if (q) for (const e of q.byNonce.values()) if (e.nonce < nonce) out.push(...e.env.stx.tx.actions);
    return out;
  }

  /**
   * NONCE_USED when `state` (the committed head) has used `env`'s nonce: a block took it or
   * another transaction of that nonce. Final: nonces only grow. What admission asks, after a
   * commit, of the transactions still waiting for their signature check (admission.ts `dropTaken`).
   */
  takenRefusal(env: TxEnvelope, state: StateReader): ValidationError | null {
    const { nonce } = getAccount(state, env.sender);
    if (env.stx.tx.nonce >= nonce) return null;
    return new ValidationError('NONCE_USED', `nonce ${env.stx.tx.nonce} already used (next is ${nonce})`);
  }

  /**
   * INSUFFICIENT_FUNDS when the sender's balance cannot pay `env`'s fee and value on top of what
   * its pending transactions may spend (a pending one of the same nonce, which `env` replaces,
   * aside); null otherwise.
   */
  private fundsRefusal(
    env: TxEnvelope,
    state: StateReader,
    balance: bigint,
    countPending = true,
  ): ValidationError | null {
    const { tx } = env.stx;
    const q = countPending ? this.senders.get(keyId(env.sender)) : undefined;
    const existing = q?.byNonce.get(tx.nonce);
    const cost = maxSpend(state, tx);
    const queuedCost = (q?.cost ?? 0n) - (existing?.cost ?? 0n);
    if (balance >= queuedCost + cost) return null;
    const others = (q?.byNonce.size ?? 0) - (existing ? 1 : 0);
    return new ValidationError(
      'INSUFFICIENT_FUNDS',
      `balance ${formatUnc(balance)} UNC cannot pay ${formatUnc(cost)} UNC (fee, value and what its records burn)` +
        (others > 0 ? ` on top of ${queuedCost} for ${others} pending transaction(s)` : ''),
    );
  }

  /**
   * The sender's next free nonce counting what it has pending here: `stateNonce` (its next nonce
   * in the state this pool is kept against, the tip's) and then one past each pending transaction
   * of the run that follows it without a gap. A transaction parked past a gap does not count: the
   * gap is the next free nonce, and a transaction there is what lets the parked ones land. Only
   * transactions admitted here count, so only ones whose signatures checked: nobody else can move
   * a sender's answer. At most `maxTxsPerSender` lookups (RPC `unc_getAccount` with `pending`).
   */
  nextNonce(sender: Uint8Array, stateNonce: bigint): bigint {
    const q = this.senders.get(keyId(sender));
    if (!q) return stateNonce;
    let n = stateNonce;
    while (q.byNonce.has(n)) n++;
    return n;
  }

  /** Pending transactions of one sender, by nonce (tests and diagnostics). */
  pendingOf(sender: Uint8Array): TxEnvelope[] {
    const q = this.senders.get(keyId(sender));
    if (!q) return [];
    return [...q.byNonce.values()].sort((a, b) => (a.nonce < b.nonce ? -1 : 1)).map((e) => e.env);
  }

  /**
   * Every sender queue's eviction key as the pool holds it (not recomputed), first to be evicted
   * first, with the nonce eviction would take: what property tests compare with a pool built
   * afresh from the same contents (tests and diagnostics).
   */
  evictionOrder(): { sender: string; cls: number; fee: bigint; size: number; tail: bigint | null }[] {
    return [...this.senders.values()]
      .sort((a, b) => compareKeys(a.key, b.key) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .map((q) => ({ sender: q.id, ...q.key, tail: q.tail?.nonce ?? null }));
  }

  /** Internal consistency (property tests): throws if any bookkeeping disagrees with the contents. */
  checkInvariants(): void {
    let bytes = 0;
    let count = 0;
    for (const [id, q] of this.senders) {
      if (q.byNonce.size === 0) throw new Error(`empty queue ${id}`);
      if (q.byNonce.size > this.opts.maxTxsPerSender) throw new Error('sender count cap exceeded');
      let qBytes = 0;
      let qCost = 0n;
      for (const [nonce, e] of q.byNonce) {
        if (e.nonce !== nonce || this.byHash.get(e.id) !== e) throw new Error('entry index mismatch');
        qBytes += e.size;
        qCost += e.cost;
        for (const c of e.claims) if (this.claims.get(c) !== e.id) throw new Error('claim mismatch');
      }
      if (qBytes !== q.bytes || qCost !== q.cost) throw new Error('sender accounting mismatch');
      const { key, tail } = q;
      q.tail = null;
      this.rekey(q); // from scratch
      if (q.tail !== tail || compareKeys(q.key, key) !== 0 || q.key.cls !== key.cls)
        throw new Error('incremental eviction key differs from a recomputed one');
      if (q.bytes > this.opts.maxBytesPerSender) throw new Error('sender byte cap exceeded');
      if (this.evictHeap.at(q.pos) !== q) throw new Error('heap position mismatch');
      bytes += qBytes;
      count += q.byNonce.size;
    }
    if (count !== this.byHash.size || bytes !== this.totalBytes) throw new Error('pool accounting mismatch');
    if (this.evictHeap.size !== this.senders.size) throw new Error('heap size mismatch');
    if (count > this.opts.maxTxs || bytes > this.opts.maxBytes) throw new Error('pool cap exceeded');
    if (this.drops.size > this.opts.maxRememberedDrops) throw new Error('drop memory cap exceeded');
    this.evictHeap.check();
  }

  /**
   * Whether `env` was admitted with its signature checked. The bytes are compared, not only the
   * hash: the hash leaves the signature out, so another signature on the same body is unchecked.
   */
  isVerified = (env: TxEnvelope): boolean => {
    const id = keyId(env.hash);
    if (!this.verified.has(id)) return false;
    const held = this.byHash.get(id);
    return held !== undefined && Buffer.compare(held.env.bytes, env.bytes) === 0;
  };

  /**
   * Admits a transaction checked against the state the next block starts from.
   * Throws a ValidationError with the reason when it is not admitted.
   */
  add(
    env: TxEnvelope,
    state: StateReader,
    params: ChainParams,
    next: BlockContext,
    /** The signature of these very bytes was found valid already (on a verify-pool worker). */
    signatureChecked = false,
    /** Registration evidence already checked (on a verify-pool worker), for the very same checks. */
    verdicts?: EvidenceVerdicts,
    /** Transfer consents already checked (on a verify-pool worker), for the very same checks. */
    consents?: ConsentVerdicts,
  ): { replaced: boolean } {
    const id = keyId(env.hash);
    if (this.byHash.has(id)) throw new ValidationError('DUPLICATE', 'transaction is already in the mempool');
    checkTransactionStateless(env, params, next);
    const { tx } = env.stx;
    const { nonce, fee } = tx;
    const account = getAccount(state, env.sender);
    if (nonce < account.nonce) {
      throw new ValidationError('NONCE_USED', `nonce ${nonce} already used (next is ${account.nonce})`);
    }
    const free = isFeeFree(tx) && fee < minimumFee(params, env.bytes.length, feeActions(tx.actions));
    const shape = evidenceShapeRefusal(tx);
    if (shape) throw shape;
    const evidence = tx.actions[0]?.type === 'evidence';
    if ((free || evidence) && nonce !== account.nonce) {
      throw new ValidationError(
        'NONCE_GAP',
        `a ${free ? 'fee-free transaction' : 'transaction reporting evidence'} must use the sender's next nonce ${account.nonce}, not ${nonce}`,
      );
    }
    if (nonce > account.nonce + this.opts.maxNonceGap) {
      throw new ValidationError(
        'NONCE_GAP',
        `nonce ${nonce} is more than ${this.opts.maxNonceGap} ahead of the next nonce ${account.nonce}`,
      );
    }
    const senderId = keyId(env.sender);
    const q = this.senders.get(senderId);
    if (q && q.base !== account.nonce) {
      q.base = account.nonce;
      this.updateKey(q);
    }
    const existing = q?.byNonce.get(nonce);
    // A fee-free transaction is replaced only by one that pays the minimum: bumping 0 → 1 → 2 …
    // would have every node re-run the stateful check (and gossip it) for a token fee.
    if (
      existing &&
      ((existing.free && free) ||
        fee <= existing.fee ||
        fee * REPLACE_BUMP_DEN < existing.fee * REPLACE_BUMP_NUM)
    ) {
      throw new ValidationError(
        'REPLACEMENT_UNDERPRICED',
        existing.free && free
          ? `a fee-free transaction with nonce ${nonce} is pending; a replacement must pay the minimum fee`
          : `a transaction with nonce ${nonce} is pending; a replacement must pay at least 10% more than ${formatUnc(existing.fee)} UNC`,
      );
    }
    // A report of evidence is replaced only by one reporting the same offender: another transaction
    // of that nonce (paying 10% more, and never paid if it failed) would free the offender's place
    // just before a block, each time, with the honest reports refused until the next commit.
    if (existing?.evidence) {
      const claimed = claimsOf(env);
      const lost = existing.claims.find((c) => !claimed.includes(c));
      if (lost !== undefined) {
        throw new ValidationError(
          'EVIDENCE_PENDING',
          `the pending transaction with nonce ${nonce} reports ${lost}; a replacement must report it too (it lands in the next block)`,
        );
      }
    }
    const unfunded = this.fundsRefusal(env, state, account.balance);
    if (unfunded) throw unfunded;
    // The admission queue screened this in cheapRefusal, before the signature check; a transaction
    // admitted directly is screened here, before its signature check and the pending claims alike.
    // The chip rule again either way: the sender's earlier transactions of its batch are pending
    // now, and one of them may have been all that ended a lease without notice.
    const notOwner =
      (signatureChecked ? null : ownerRefusal(env, state, next.height)) ??
      chipRefusal(env, state, next, this.pendingActionsBefore(env));
    if (notOwner) throw notOwner;
    const cost = maxSpend(state, tx);
    const claims = claimsOf(env);
    for (const c of claims) {
      const holder = this.claims.get(c);
      if (holder !== undefined && holder !== existing?.id) {
        throw new ValidationError(
          'ALREADY_PENDING',
          `${c} is already in a pending transaction`,
          answerOfClaim(env, c),
        );
      }
    }
    const size = env.bytes.length;
    // The sender's own caps: a lower nonce pushes out the sender's own highest ones.
    const ownEvicted: Entry[] = [];
    if (q) {
      let count = q.byNonce.size - (existing ? 1 : 0) + 1;
      let bytes = q.bytes - (existing?.size ?? 0) + size;
      const overOwn = () => count > this.opts.maxTxsPerSender || bytes > this.opts.maxBytesPerSender;
      if (overOwn()) {
        const byNonceDesc = [...q.byNonce.values()].sort((a, b) => (a.nonce > b.nonce ? -1 : 1));
        for (const e of byNonceDesc) {
          if (!overOwn() || e.nonce <= nonce) break;
          ownEvicted.push(e);
          count--;
          bytes -= e.size;
        }
      }
      if (overOwn()) {
        throw new ValidationError(
          'SENDER_LIMIT',
          `the sender has ${q.byNonce.size} pending transactions (${q.bytes} bytes); the limit is ` +
            `${this.opts.maxTxsPerSender} (${this.opts.maxBytesPerSender} bytes)`,
        );
      }
    } else if (size > this.opts.maxBytesPerSender) {
      throw new ValidationError('SENDER_LIMIT', `transaction is larger than a sender's queue may be`);
    }
    const freedCount = (existing ? 1 : 0) + ownEvicted.length;
    const freedBytes = (existing?.size ?? 0) + ownEvicted.reduce((s, e) => s + e.size, 0);
    const over = () => ({
      count: this.byHash.size - freedCount + 1 - this.opts.maxTxs,
      bytes: this.totalBytes - freedBytes + size - this.opts.maxBytes,
    });
    const full = over();
    // Only a full pool needs the new transaction's priority (and then it is worth computing).
    const newKey =
      full.count > 0 || full.bytes > 0 ? this.keyForNew(q, nonce, fee, size, free, ownEvicted) : null;
    // Refuse cheaply, before any signature check, when nothing here could make room.
    if (newKey && !this.canEvictFor(q, newKey)) {
      throw new ValidationError('MEMPOOL_FULL', 'mempool is full; try again later or raise the fee');
    }
    if (!signatureChecked && !verifyEnvelopeSignature(env))
      throw new ValidationError('BAD_SIGNATURE', 'invalid transaction signature');
    // Fee-free, or reporting evidence (so at the sender's next nonce): the whole transaction as the
    // next block would run it.
    if (free || evidence) this.checkWouldExecute(env, state, next);
    else {
      this.checkFreeActionsWouldExecute(env, state, next);
      // One pending registration per chip: only the first of several (from any accounts) could
      // execute, each other one failing after its evidence check, for nothing.
      for (const chipId of this.checkCostly(env, state, next, verdicts, consents)) {
        const c = `registration of chip ${toHex(chipId)}`;
        const holder = this.claims.get(c);
        if (holder !== undefined && holder !== existing?.id) {
          const refusal = new ValidationError('ALREADY_PENDING', `${c} is already in a pending transaction`);
          // Until the head moves, so that relayed copies do not have the evidence checked again.
          this.evidenceRefusals.set(id, {
            code: refusal.code,
            message: refusal.message,
            head: keyId(next.prevHash),
          });
          throw refusal;
        }
        claims.push(c);
      }
    }

    // Make room: the lowest-priority tails of other senders, all or none.
    const evicted: { entry: Entry; queue: SenderQueue }[] = [];
    for (let need = over(); need.count > 0 || need.bytes > 0; need = over()) {
      const victim = this.evictHeap.peek();
      if (!newKey || !victim || victim === q || !victim.tail || compareKeys(victim.key, newKey) >= 0) {
        for (const { entry, queue } of evicted.reverse()) {
          this.insert(queue, entry);
          this.verified.add(entry.id);
        }
        throw new ValidationError('MEMPOOL_FULL', 'mempool is full; try again later or raise the fee');
      }
      const entry = victim.tail;
      evicted.push({ entry, queue: victim });
      this.removeEntry(victim, entry);
    }
    const height = next.height - 1n;
    for (const { entry } of evicted) {
      this.recordDrop(entry, 'EVICTED', 'evicted from a full mempool by a transaction paying more', height);
    }
    if (q) {
      for (const e of ownEvicted) {
        this.removeEntry(q, e);
        this.recordDrop(e, 'EVICTED', `evicted by the same sender's nonce ${nonce} (sender limit)`, height);
      }
      if (existing) {
        this.removeEntry(q, existing);
        this.recordDrop(existing, 'REPLACED', `replaced by ${toHex(env.hash)}, which pays more`, height);
      }
    }
    const queue =
      this.senders.get(senderId) ??
      this.newQueue(senderId, account.nonce); /* removeEntry may have emptied and deleted it */
    // A paying one weighs what its fee counts (core feeActions: a claim, each chip it names): weighed
    // one action, a few 64 KiB claims filled a block's bytes at a weight that shut the reserve.
    const weight = free
      ? tx.actions.reduce((n, a) => n + (a.type === 'heartbeat' ? a.answers.length : 1), 0)
      : feeActions(tx.actions);
    const deadline = free || evidence ? freeDeadline(env, state, next) : 0n;
    const answers = claims.some((c) => c.startsWith('heartbeat'));
    const seq = this.admitted++;
    this.insert(queue, {
      env,
      id,
      nonce,
      fee,
      size,
      cost,
      free,
      claims,
      weight,
      deadline,
      answers,
      evidence,
      seq,
    });
    this.verified.add(id);
    this.drops.delete(id);
    return { replaced: existing !== undefined };
  }

  /** A remembered refusal of `env`'s costly evidence that still holds at `next`, or null. */
  private rememberedEvidenceRefusal(env: TxEnvelope, next: BlockContext): ValidationError | null {
    const r = this.evidenceRefusals.get(keyId(env.hash));
    if (!r || (r.head !== '*' && r.head !== keyId(next.prevHash))) return null;
    // A provable code remembered for one head only was a state reason (a StateRefusal): it must
    // still read as one (no relay blame, not final).
    return r.head !== '*' && PROVABLY_BAD_EVIDENCE.has(r.code)
      ? new StateRefusal(r.code, r.message)
      : new ValidationError(r.code, r.message);
  }

  /**
   * The costly part of `env`'s actions (evidence, consents) on the next block's opening state, for
   * every paying transaction: its declared fee is charged only if it executes, so junk evidence
   * admitted here would cost every proposer its verification for nothing. Last in `add`, after
   * every cheaper refusal and the signature, so only a signed, funded transaction that fits gets
   * this far. A refusal is remembered: for good when the bytes prove it, else for this head.
   * Returns the ids of the chips it registers.
   */
  private checkCostly(
    env: TxEnvelope,
    state: StateReader,
    next: BlockContext,
    verdicts?: EvidenceVerdicts,
    consents?: ConsentVerdicts,
  ): Uint8Array[] {
    const cached = this.rememberedEvidenceRefusal(env, next);
    if (cached) throw cached;
    if (costlyActionCount(env.stx.tx) === 0) return [];
    this.evidenceChecks++;
    // Asked only just before a registration's evidence would be verified: a miss is one check here.
    const evidenceVerdicts: EvidenceVerdicts = (check) => {
      const known = verdicts?.(check);
      if (!known) this.evidenceCheckedHere++;
      return known;
    };
    const consentVerdicts: ConsentVerdicts = (check) => {
      const known = consents?.(check);
      if (!known) this.evidenceCheckedHere++;
      return known;
    };
    try {
      return checkCostlyActions(
        this.nextBlock(state, next).overlay,
        { ...next, evidenceVerdicts, consentVerdicts },
        env.sender,
        env.stx.tx,
      );
    } catch (err) {
      // Anything else is a bug here (core turns every verifier failure into a ValidationError):
      // neither remembered nor blamed on the transaction.
      if (!(err instanceof ValidationError)) throw err;
      const head = provablyBadEvidence(err) ? '*' : keyId(next.prevHash);
      this.evidenceRefusals.set(keyId(env.hash), { code: err.code, message: err.message, head });
      throw err;
    }
  }

  /**
   * The costly checks `add` would make for `env` on the next block's opening state (its
   * registrations' evidence, its transfers' consents), as plain data for the verify workers
   * (admission.ts); none for a transaction whose refusal is remembered (a copy costs a lookup, not
   * a check) or that has no chip action.
   */
  costlyChecks(env: TxEnvelope, state: StateReader, next: BlockContext): CostlyCheck[] {
    // Most transactions have no chip action: no refusal lookup, no next-block executor for them.
    if (costlyActionCount(env.stx.tx) === 0) return [];
    if (this.rememberedEvidenceRefusal(env, next)) return [];
    const overlay = this.nextBlock(state, next).overlay;
    return [
      ...registrationEvidenceChecks(overlay, next, env.sender, env.stx.tx),
      ...transferConsentChecks(overlay, next, env.sender, env.stx.tx),
    ];
  }

  /**
   * The next block's executor, its opening bookkeeping done (the head's hash recorded, which a
   * registration anchored at the head signs; the slot challenges drawn): made once per head.
   */
  private nextBlock(state: StateReader, next: BlockContext): BlockExecutor {
    const key = `${next.height}:${keyId(next.prevHash)}:${next.time}`;
    if (this.preflight?.key !== key) this.preflight = { key, executor: new BlockExecutor(state, next) };
    return this.preflight.executor;
  }

  /**
   * Core's execution rules, on a scratch copy of the next block's opening state. A refusal the bytes
   * prove (evidence that proves no offence or whose signatures fail) is remembered for good, so
   * that the copies peers relay are refused by cheapRefusal for a lookup, not checked again.
   */
  private checkWouldExecute(env: TxEnvelope, state: StateReader, next: BlockContext): void {
    const cached = this.rememberedEvidenceRefusal(env, next);
    if (cached) throw cached;
    try {
      this.nextBlock(state, next).preview(env);
    } catch (err) {
      throw this.rememberIfProvablyBad(env, asRefusal(err));
    }
  }

  /**
   * After a commit (`state` the new head's, `next` the block after it): every pending report of
   * evidence checked again as the next block would run it, and those that would fail dropped (with
   * the reason), so that the offender's place goes to a report that can land: the evidence pool
   * of every validator tries its own again after each commit (evidence-pool.ts). A report fails
   * once the state moved under it (its evidence too old after an epoch boundary, its offender
   * tombstoned by another report, its fee no longer covered): left here, it held the place on every
   * node that was not the next proposer until that node built a block. At most one report per
   * offender is pending, each due in the next block: a few checks per commit.
   */
  recheckEvidence(state: StateReader, next: BlockContext): void {
    const reports: Entry[] = [];
    for (const [claim, id] of this.claims) {
      const e = claim.startsWith('evidence') ? this.byHash.get(id) : undefined;
      if (e?.evidence) reports.push(e);
    }
    const at = next.height - 1n;
    for (const e of reports) {
      try {
        this.nextBlock(state, next).preview(e.env);
      } catch (err) {
        const refusal = asRefusal(err);
        const q = this.senders.get(keyId(e.env.sender));
        if (!q || q.byNonce.get(e.nonce) !== e) continue;
        this.removeEntry(q, e);
        this.recordDrop(e, refusal.code, refusal.message, at);
      }
    }
  }

  /**
   * The heartbeats of a paying transaction, alone, as the next block would run them for its
   * sender: its declared fee is charged only if it executes, so an answer that does not verify (or
   * a slot that is not open) admitted here would be gossiped to every node and fail at the proposer
   * for nothing, then be sent again at the same nonce. They are checked as a fee-free transaction's
   * are (core's applyHeartbeat, on this thread, once); those actions alone, not the whole
   * transaction, because a paying one may wait behind the sender's earlier nonces, which no preview
   * of the whole transaction could pass (NONCE_GAP). They do not depend on what the sender's other
   * actions do (a sender cannot hand itself a chip), so alone they are refused only where the whole
   * transaction would fail too. (Evidence is never beside other actions and always at the next
   * nonce, EVIDENCE_NOT_ALONE: the whole transaction is previewed, checkWouldExecute.) A refusal the
   * bytes prove (an answer garbled or not signed over its challenge) is remembered for good, as
   * checkCostly's are, so that the copies every peer relays are refused by cheapRefusal for a
   * lookup, not verified again on this thread; a refusal for a state reason is not remembered (a
   * later head may let it through).
   */
  private checkFreeActionsWouldExecute(env: TxEnvelope, state: StateReader, next: BlockContext): void {
    const { actions } = env.stx.tx;
    if (!actions.some((a) => a.type === 'heartbeat')) return;
    const cached = this.rememberedEvidenceRefusal(env, next);
    if (cached) throw cached;
    this.freeActionChecks++;
    const executor = this.nextBlock(state, next);
    // One scratch copy for all of them, thrown away after: two actions answering the same slot
    // fail as in a block, and nothing is seen by the next transaction.
    const scratch = executor.overlay.child();
    try {
      for (const a of actions)
        if (a.type === 'heartbeat') applyHeartbeat(scratch, executor.ctx, env.sender, a);
    } catch (err) {
      throw this.rememberIfProvablyBad(env, asRefusal(err));
    }
  }

  /** A refusal the bytes prove is remembered for good (head '*'), whatever the state; returned as is. */
  private rememberIfProvablyBad(env: TxEnvelope, refusal: ValidationError): ValidationError {
    if (provablyBadEvidence(refusal))
      this.evidenceRefusals.set(keyId(env.hash), { code: refusal.code, message: refusal.message, head: '*' });
    return refusal;
  }

  /** The priority the new transaction would have: its own fee rate, capped by its predecessors'. */
  private keyForNew(
    q: SenderQueue | undefined,
    nonce: bigint,
    fee: bigint,
    size: number,
    free: boolean,
    ownEvicted: readonly Entry[],
  ): EvictKey {
    if (free) return { cls: 2, fee: 0n, size: 1 };
    let key: EvictKey = { cls: 1, fee, size };
    const base = q?.base ?? nonce;
    // Appending to a queue without a gap, the common case: O(1).
    if (q && ownEvicted.length === 0 && q.key.cls !== 0 && q.tail && nonce === q.tail.nonce + 1n) {
      const c = q.cheapest;
      return c && lowerRate(c.fee, c.size, fee, size) ? { cls: 1, fee: c.fee, size: c.size } : key;
    }
    for (let n = base; n < nonce; n++) {
      const e = q?.byNonce.get(n);
      if (!e || ownEvicted.includes(e)) return { ...key, cls: 0 };
      if (!e.free && lowerRate(e.fee, e.size, key.fee, key.size)) key = { cls: 1, fee: e.fee, size: e.size };
    }
    return key;
  }

  private canEvictFor(q: SenderQueue | undefined, key: EvictKey): boolean {
    const victim = this.evictHeap.peek();
    return victim !== undefined && victim !== q && compareKeys(victim.key, key) < 0;
  }

  private newQueue(id: string, base: bigint): SenderQueue {
    const q: SenderQueue = {
      id,
      byNonce: new Map(),
      bytes: 0,
      cost: 0n,
      base,
      key: { cls: 0, fee: 0n, size: 1 },
      tail: null,
      cheapest: null,
      pos: -1,
    };
    this.senders.set(id, q);
    return q;
  }

  private insert(q: SenderQueue, e: Entry): void {
    if (!this.senders.has(q.id)) this.senders.set(q.id, q);
    q.byNonce.set(e.nonce, e);
    q.bytes += e.size;
    q.cost += e.cost;
    this.byHash.set(e.id, e);
    this.totalBytes += e.size;
    for (const c of e.claims) this.claims.set(c, e.id);
    // Incremental: the new entry can only raise the tail or lower the cheapest rate.
    if (!q.tail || e.nonce > q.tail.nonce) q.tail = e;
    if (!e.free && (!q.cheapest || lowerRate(e.fee, e.size, q.cheapest.fee, q.cheapest.size))) q.cheapest = e;
    this.updateKey(q);
  }

  /** Takes an entry out, keeping every index and the sender's eviction key up to date. */
  private removeEntry(q: SenderQueue, e: Entry, rekey = true): void {
    if (q.byNonce.get(e.nonce) !== e) return;
    q.byNonce.delete(e.nonce);
    q.bytes -= e.size;
    q.cost -= e.cost;
    this.byHash.delete(e.id);
    this.verified.delete(e.id);
    this.totalBytes -= e.size;
    for (const c of e.claims) if (this.claims.get(c) === e.id) this.claims.delete(c);
    if (q.byNonce.size === 0) {
      this.senders.delete(q.id);
      this.evictHeap.remove(q);
      q.tail = null;
      q.cheapest = null;
    } else if (e === q.tail || e === q.cheapest) {
      if (rekey) this.rekey(q);
    } else if (rekey) this.updateKey(q);
  }

  /** Recomputes a queue's tail and cheapest entry (O(queue), which the per-sender cap bounds). */
  private rekey(q: SenderQueue): void {
    let tail: Entry | null = null;
    let cheapest: Entry | null = null;
    for (const e of q.byNonce.values()) {
      if (!tail || e.nonce > tail.nonce) tail = e;
      if (!e.free && (!cheapest || lowerRate(e.fee, e.size, cheapest.fee, cheapest.size))) cheapest = e;
    }
    q.tail = tail;
    q.cheapest = cheapest;
    this.updateKey(q);
  }

  /**
   * The eviction key from the tail and cheapest entry, O(log senders). A queue has a gap unless it
   * holds exactly the nonces from the account's next one to its tail (entries below the next
   * nonce, until pruned, count as a gap too: such a queue goes first).
   */
  private updateKey(q: SenderQueue): void {
    const { tail, cheapest } = q;
    const gapped = !tail || tail.nonce - q.base + 1n !== BigInt(q.byNonce.size);
    q.key = {
      cls: gapped ? 0 : cheapest ? 1 : 2,
      fee: cheapest?.fee ?? 0n,
      size: cheapest?.size ?? 1,
    };
    this.evictHeap.update(q);
  }

  private recordDrop(e: Entry, code: string, reason: string, height: bigint, answer?: AnswerRef): void {
    const drop: DroppedTx = answer ? { code, reason, height, answer } : { code, reason, height };
    this.drops.delete(e.id);
    this.drops.set(e.id, drop);
    while (this.drops.size > this.opts.maxRememberedDrops) this.drops.delete(this.drops.keys().next().value!);
    this.dropListener?.(e.env, drop);
  }

  /**
   * Picks transactions for the next block in `ordered`'s order, stopping at the block's count and
   * byte limits (one that does not fit in the bytes left is passed over).
   */
  select(state: StateReader, maxTxs: number, maxBytes: number): TxEnvelope[] {
    const out: TxEnvelope[] = [];
    let bytes = 0;
    const it = this.ordered(state, maxBytes);
    for (let next = it.next(); !next.done && out.length < maxTxs; ) {
      const env = next.value;
      const fits = bytes + env.bytes.length <= maxBytes;
      if (fits) {
        out.push(env);
        bytes += env.bytes.length;
      }
      next = it.next(fits);
    }
    it.return(undefined);
    return out;
  }

  /**
   * The includable transactions (each sender's run from its account's next nonce, no gap) of the
   * first `maxSenders` sender queues, those in the pool longest first (a queue is made when its
   * first transaction comes and dropped when it empties): what a re-announcement looks at
   * (mempool-reactor.ts `reannounce`). Costs one account read per sender visited and nothing for
   * the rest of the pool; `ordered` builds a heap over every sender first, about half a second
   * with 100,000 of them, on the event loop.
   */
  *longestPending(state: StateReader, maxSenders: number): Generator<TxEnvelope, void, undefined> {
    let visited = 0;
    for (const q of this.senders.values()) {
      if (++visited > maxSenders) return;
      const first = q.byNonce.values().next().value as Entry;
      for (let n = getAccount(state, first.env.sender).nonce; ; n++) {
        const e = q.byNonce.get(n);
        if (!e) break;
        yield e.env;
      }
    }
  }

  /**
   * The pool in block order, drawn lazily by a block builder: each sender's next executable
   * transaction. The builder says (the value it passes to `next`) whether the transaction went into
   * the block; a sender's following one is offered only after it did (after a rejection the rest
   * could only fail with a nonce gap).
   *
   * Paying transactions go highest fee first. Fee-free ones (heartbeats, evidence) are drawn
   * first while the fee-free share of what went in so far is at most a quarter of its weight
   * (answers and evidence of a fee-free transaction, the per-action fees of a paying one: core
   * feeActions), and their bytes at
   * most a quarter of `maxBlockBytes`, nearest deadline first; past that share they wait for room
   * after the paying ones. The bytes are held to the block's limit, not to the bytes that went in
   * so far: against the smallest transfers (186 bytes) a quarter of those let a 100-transaction
   * block take 20 dev-soft answers (256 bytes) instead of 25, and fewer still of real chips' (a
   * TPM quote is ~600 bytes: 9; an SPDM response a few KiB: 2 or 3), so that an attacker's
   * cheapest spam shrank the reserve it must not fill. Without the
   * reserve, anyone keeping more minimum-fee transfers pending than a block takes kept every
   * heartbeat out until its answer window closed: honest chips went offline and an epoch's reward
   * went to the chips that answered with a fee, the attacker's own. The share holds for every
   * prefix of the block, so it needs no knowledge of the builder's budget (the proposal's execution
   * budget), and every transaction drawn still counts against that budget.
   * Fee-free transactions cannot fill the reserve with junk: each is admitted only if it would
   * execute now, one per sender at a time, one per answered slot or reported offender. Reports of
   * evidence go through the reserve paying or not (first of all, compareFreeForBlock): each holds
   * its offender's one place here and must land in the next block; they are as bounded (one per
   * offender, at the sender's next nonce, previewed whole).
   */
  *ordered(
    state: StateReader,
    /** The block's byte limit (ChainParams.maxBlockBytes); the fee-free bytes are held to a quarter. */
    maxBlockBytes = Number.POSITIVE_INFINITY,
  ): Generator<TxEnvelope, void, boolean | undefined> {
    const paid = new MaxHeap<Entry>(compareForBlock);
    const free = new MaxHeap<Entry>(compareFreeForBlock);
    // Reports of evidence go through the reserve too, paying or not: first of all (compareFreeForBlock),
    // so that one at the sender's next nonce lands in the next block whatever the fees pending.
    const push = (e: Entry) => (e.free || e.evidence ? free : paid).push(e);
    for (const q of this.senders.values()) {
      const first = q.byNonce.values().next().value as Entry;
      const head = q.byNonce.get(getAccount(state, first.env.sender).nonce);
      if (head) push(head);
    }
    let weight = 0;
    let freeWeight = 0;
    let freeBytes = 0;
    while (paid.size > 0 || free.size > 0) {
      const reserveOpen =
        freeWeight * FREE_SHARE_DEN <= weight * FREE_SHARE_NUM &&
        freeBytes * FREE_SHARE_DEN <= maxBlockBytes * FREE_SHARE_NUM;
      const e = (free.size > 0 && (reserveOpen || paid.size === 0) ? free : paid).pop()!;
      const taken = yield e.env;
      if (taken === false) continue;
      weight += e.weight;
      if (e.free || e.evidence) {
        freeWeight += e.weight;
        freeBytes += e.size;
      }
      const following = this.senders.get(keyId(e.env.sender))?.byNonce.get(e.nonce + 1n);
      if (following) push(following);
    }
  }

  /**
   * After a block (or a failed try at building one): drops what was included, what was rejected
   * (with the rejection's reason) and whatever can no longer apply (used nonce, expired).
   * `height` is the next block's; drops are recorded at the height before it, the head's.
   */
  prune(
    included: readonly TxEnvelope[],
    rejected: readonly { env: TxEnvelope; error: ValidationError }[],
    state: StateReader,
    height: bigint,
  ): void {
    const at = height - 1n;
    // Removals below leave each queue's tail, cheapest entry and eviction key stale (rekey false):
    // the last loop recomputes them for every queue left, once. Rekeyed per removal, a block took
    // its transactions from the front of their senders' queues, where the cheapest entry is when
    // fees are equal, and paid a scan of the whole queue for each one (O(block × queue)).
    // Should anything throw part way (a drop listener, a state read), the queues touched and not
    // yet rekeyed are rekeyed on the way out: a tail left pointing at a removed entry would be
    // what eviction picks, removes nothing, and picks again, so that the next full-pool add spun.
    const stale = new Set<SenderQueue>();
    const remove = (q: SenderQueue, e: Entry) => {
      stale.add(q);
      this.removeEntry(q, e, false);
    };
    try {
      this.pruneEntries(included, rejected, state, height, at, stale, remove);
    } finally {
      for (const q of stale) if (q.byNonce.size > 0 && this.senders.get(q.id) === q) this.rekey(q);
    }
  }

  private pruneEntries(
    included: readonly TxEnvelope[],
    rejected: readonly { env: TxEnvelope; error: ValidationError }[],
    state: StateReader,
    height: bigint,
    at: bigint,
    stale: Set<SenderQueue>,
    remove: (q: SenderQueue, e: Entry) => void,
  ): void {
    for (const env of included) {
      const e = this.byHash.get(keyId(env.hash));
      if (e) remove(this.senders.get(keyId(env.sender))!, e);
    }
    // What the block answered or reported can never execute again: another pending transaction
    // holding the same slot or evidence (a copy from another key that got here first, which a
    // proposer elsewhere did not take) would otherwise keep refusing it until it expires.
    for (const env of included) {
      for (const c of claimsOf(env)) {
        const holder = this.claims.get(c);
        const e = holder === undefined ? undefined : this.byHash.get(holder);
        if (!e) continue;
        remove(this.senders.get(keyId(e.env.sender))!, e);
        const heartbeat = c.startsWith('heartbeat');
        this.recordDrop(
          e,
          heartbeat ? 'ANSWER_REPLAYED' : 'EVIDENCE_DUPLICATE',
          `${c} was ${heartbeat ? 'answered' : 'reported'} by ${toHex(env.hash)} at height ${at}`,
          at,
          answerOfClaim(e.env, c),
        );
      }
    }
    for (const { env, error } of rejected) {
      const e = this.byHash.get(keyId(env.hash));
      if (!e) continue;
      remove(this.senders.get(keyId(env.sender))!, e);
      this.recordDrop(e, error.code, error.message, at, error.answer);
    }
    // A block that names or removes a heartbeat operator, or moves a chip, can take away a pending
    // heartbeat's right to answer from the next block (core's NOT_CHIP_OWNER): left pending, it
    // holds its slots' claims, so the owner's own answer was refused ALREADY_PENDING on every node
    // that was not the next proposer. Only the heartbeats of those who could lose that right are
    // screened again, a chip lookup per answer: every pending one after each such block made one
    // transaction (a removal or a chip moved between two of one's accounts: a fee, no burn) cost
    // every node a lookup per answer in its whole pool (answerersChanged).
    for (const id of answerersChanged(included, state)) {
      const q = this.senders.get(id);
      if (q) {
        for (const e of [...q.byNonce.values()]) {
          const refusal = ownerRefusal(e.env, state, height);
          if (!refusal) continue;
          remove(q, e);
          this.recordDrop(e, refusal.code, refusal.message, at, refusal.answer);
        }
      }
    }
    for (const q of [...this.senders.values()]) {
      const first = q.byNonce.values().next().value as Entry;
      const next = getAccount(state, first.env.sender).nonce;
      stale.add(q); // a new base alone can change its key
      q.base = next;
      for (const e of [...q.byNonce.values()]) {
        if (e.nonce < next) {
          remove(q, e);
          this.recordDrop(e, 'NONCE_USED', `nonce ${e.nonce} was used by another transaction`, at);
        } else if (e.env.stx.tx.expiresAt < height) {
          remove(q, e);
          this.recordDrop(e, 'EXPIRED', `expired at height ${e.env.stx.tx.expiresAt}`, at);
        }
      }
      if (q.byNonce.size > 0) this.rekey(q);
      stale.delete(q);
    }
  }
}

/** Whether `action` can change who may answer for a chip (its owner, or the owner's operator). */
function changesAnswerer(action: Action): boolean {
  return action.type === 'setHeartbeatOperator' || action.type === 'transferChip';
}

/**
 * The senders (by keyId) whose pending heartbeats the `included` block may have made refusable:
 * for each sender of an action that changes who answers (changesAnswerer), itself (a chip's seller)
 * and the operators its record names, the one in force in the block (`previous` when named there)
 * and the one from the next (`state` is after the block). Nobody else answered for its chips.
 */
function answerersChanged(included: readonly TxEnvelope[], state: StateReader): Set<string> {
  const out = new Set<string>();
  for (const env of included) {
    if (!env.stx.tx.actions.some(changesAnswerer)) continue;
    out.add(keyId(env.sender));
    const record = getHeartbeatOperatorRecord(state, env.sender);
    if (record?.previous) out.add(keyId(record.previous));
    if (record?.operator) out.add(keyId(record.operator));
  }
  return out;
}

/**
 * A heartbeat answering for a chip that is not registered or not its sender's (nor its owner's
 * heartbeat operator's in the next block; core's heartbeatOwnerRefusal, on the head's state), or null. Anyone could copy the answers of a miner's
 * pending heartbeat into one of their own; core refuses it (NOT_CHIP_OWNER), and a node refuses it
 * at this lookup, before its signature and any chip answer are checked, so that it costs nothing.
 */
function ownerRefusal(env: TxEnvelope, state: StateReader, height: bigint): ValidationError | null {
  for (const a of env.stx.tx.actions) {
    if (a.type !== 'heartbeat') continue;
    const refusal = heartbeatOwnerRefusal(state, env.sender, a.answers, height);
    if (refusal) return refusal;
  }
  return null;
}

/**
 * A chip transfer to its own sender (SAME_OWNER), or a transfer or deregistration of a chip that a
 * lease binds at the next block's time and that the sender does not end first (CHIP_LEASED): core's
 * chipActionRefusal, on the head's state, or null. Execution refuses both before any costly check,
 * so a node refuses them at these lookups, before the signature and the transfer's consent are
 * checked (the consent's check is milliseconds on a TPM chip). `pendingBefore`: the actions of the
 * sender's pending transactions that run before `env`, when known; a lease of an offer without
 * notice is then refused too unless one of them, or an action before it in `env`, ends it
 * (closeLease, closeOffer, withdrawOfferChip of a chip not its offer's last). Such a transfer failed in
 * the block, paying nothing.
 */
function chipRefusal(
  env: TxEnvelope,
  state: StateReader,
  next: BlockContext,
  pendingBefore?: readonly Action[],
): ValidationError | null {
  const { actions } = env.stx.tx;
  for (const [i, a] of actions.entries()) {
    if (a.type !== 'transferChip' && a.type !== 'deregisterChip') continue;
    const earlier = pendingBefore && [...pendingBefore, ...actions.slice(0, i)];
    const refusal = chipActionRefusal(state, next.time, env.sender, a, earlier);
    if (refusal) return refusal;
  }
  return null;
}

function heartbeatClaim(ans: HeartbeatAnswer): string {
  return `heartbeat of chip ${toHex(ans.chipId).slice(0, 16)}… epoch ${ans.epoch} slot ${ans.slot}`;
}

/** The heartbeat answer of `env` that `claim` names (structured, for the refusal), if it names one. */
function answerOfClaim(env: TxEnvelope, claim: string): AnswerRef | undefined {
  for (const a of env.stx.tx.actions)
    if (a.type === 'heartbeat')
      for (const ans of a.answers)
        if (heartbeatClaim(ans) === claim)
          return { chipId: toHex(ans.chipId), epoch: Number(ans.epoch), slot: Number(ans.slot) };
  return undefined;
}

/** What a transaction claims that only one pending transaction may: answered slots, reported evidence. */
function claimsOf(env: TxEnvelope): string[] {
  const out: string[] = [];
  for (const a of env.stx.tx.actions) {
    if (a.type === 'heartbeat') {
      for (const ans of a.answers) out.push(heartbeatClaim(ans));
    } else if (a.type === 'evidence') {
      // One per offender, not per piece of evidence: the first included tombstones the validator
      // and every other one fails then. A validator signing conflicting votes at will (and keys
      // with nothing sending them fee-free) would otherwise have a pile of them drawn into every
      // block's fee-free reserve, each failing there.
      out.push(`evidence against validator ${toHex(evidenceOffender(a.evidence))}`);
    }
  }
  return out;
}

/** Whether fee a/size a is a lower rate than fee b/size b. */
function lowerRate(feeA: bigint, sizeA: number, feeB: bigint, sizeB: number): boolean {
  return feeA * BigInt(sizeB) < feeB * BigInt(sizeA);
}

/** Eviction order, lowest first; equal keys compare 0 (a tie never evicts). */
function compareKeys(a: EvictKey, b: EvictKey): number {
  if (a.cls !== b.cls) return a.cls - b.cls;
  const l = a.fee * BigInt(b.size);
  const r = b.fee * BigInt(a.size);
  return l < r ? -1 : l > r ? 1 : 0;
}

/** A min-heap of sender queues by eviction key (ties by sender, so every node evicts alike). */
class EvictionHeap {
  private readonly items: SenderQueue[] = [];

  get size(): number {
    return this.items.length;
  }

  at(i: number): SenderQueue | undefined {
    return this.items[i];
  }

  peek(): SenderQueue | undefined {
    return this.items[0];
  }

  private less(a: SenderQueue, b: SenderQueue): boolean {
    const c = compareKeys(a.key, b.key);
    return c < 0 || (c === 0 && a.id < b.id);
  }

  /** Inserts `q` or moves it to where its (changed) key belongs. */
  update(q: SenderQueue): void {
    if (q.pos < 0 || this.items[q.pos] !== q) {
      q.pos = this.items.length;
      this.items.push(q);
    }
    this.down(this.up(q.pos));
  }

  remove(q: SenderQueue): void {
    const i = q.pos;
    if (i < 0 || this.items[i] !== q) return;
    const last = this.items.pop()!;
    q.pos = -1;
    if (last !== q) {
      this.items[i] = last;
      last.pos = i;
      this.down(this.up(i));
    }
  }

  check(): void {
    this.items.forEach((q, i) => {
      if (q.pos !== i) throw new Error('heap position mismatch');
      if (i > 0 && this.less(q, this.items[(i - 1) >> 1]!)) throw new Error('heap order violated');
    });
  }

  private swap(i: number, j: number): void {
    const a = this.items;
    [a[i], a[j]] = [a[j]!, a[i]!];
    a[i]!.pos = i;
    a[j]!.pos = j;
  }

  private up(i: number): number {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(this.items[i]!, this.items[parent]!)) break;
      this.swap(i, parent);
      i = parent;
    }
    return i;
  }

  private down(i: number): void {
    const a = this.items;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < a.length && this.less(a[l]!, a[m]!)) m = l;
      if (r < a.length && this.less(a[r]!, a[m]!)) m = r;
      if (m === i) return;
      this.swap(i, m);
      i = m;
    }
  }
}

/** Higher fee first; ties by hash so every node orders the same pool the same way. */
function compareForBlock(a: Entry, b: Entry): number {
  if (a.fee !== b.fee) return a.fee > b.fee ? 1 : -1;
  return Buffer.compare(b.env.hash, a.env.hash);
}

/**
 * The fee-free share of a block's weight and bytes that `ordered` keeps for fee-free transactions
 * while any is pending (a quarter: up to 25 of the 100 transactions of the smallest proposal).
 */
const FREE_SHARE_NUM = 1;
const FREE_SHARE_DEN = 4;

/**
 * Fee-free order: evidence first, then the nearest deadline first, so that an answer about to
 * expire is not queued behind answers still having many blocks to go, then the one waiting longest.
 * Evidence goes before answers although it stays valid for epochs: the validator that reports it
 * does so in a transaction that expires 20 blocks on (evidence-pool.ts sends a fresh one then, but
 * only once that one expired), so behind answers that fill the reserve every block (enough chips,
 * the offender's own among them, under spam) an equivocation waited, and before the pool resent
 * went unpunished. It takes little: one pending report per offender,
 * of a validator of the set, and the first included tombstones it for good.
 */
function compareFreeForBlock(a: Entry, b: Entry): number {
  if (a.answers !== b.answers) return a.answers ? -1 : 1;
  if (a.deadline !== b.deadline) return a.deadline < b.deadline ? 1 : -1;
  return b.seq - a.seq;
}

/**
 * The last height a fee-free transaction can go in: its expiry, or sooner the close of the
 * earliest answer window it answers in (slot height + W). A slot the next block's opening records
 * is the head's height (core's beginBlockPoci); the admission check already found every slot open.
 */
function freeDeadline(env: TxEnvelope, state: StateReader, next: BlockContext): bigint {
  let deadline = env.stx.tx.expiresAt;
  let p: PociParams | null = null;
  const classes = new Map<string, readonly bigint[]>();
  for (const a of env.stx.tx.actions) {
    if (a.type !== 'heartbeat') continue;
    p ??= getPociParams(state);
    for (const ans of a.answers) {
      const cls = chipClass(ans.chipId, p);
      const k = `${ans.epoch}:${cls}`;
      let heights = classes.get(k);
      if (!heights) classes.set(k, (heights = getChallengeClass(state, ans.epoch, cls).heights));
      const slotHeight = heights[ans.slot] ?? next.height - 1n;
      if (slotHeight + p.answerWindowBlocks < deadline) deadline = slotHeight + p.answerWindowBlocks;
    }
  }
  return deadline;
}

class MaxHeap<T> {
  private readonly items: T[] = [];
  constructor(private readonly cmp: (a: T, b: T) => number) {}
  get size(): number {
    return this.items.length;
  }
  push(item: T): void {
    const a = this.items;
    a.push(item);
    let i = a.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.cmp(a[i]!, a[parent]!) <= 0) break;
      [a[i], a[parent]] = [a[parent]!, a[i]!];
      i = parent;
    }
  }
  pop(): T | undefined {
    const a = this.items;
    if (a.length === 0) return undefined;
    const top = a[0];
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.cmp(a[l]!, a[m]!) > 0) m = l;
        if (r < a.length && this.cmp(a[r]!, a[m]!) > 0) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }
}
