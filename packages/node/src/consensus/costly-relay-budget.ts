/**
 * How many costly chip checks (registration evidence, transfer consents: milliseconds each) a
 * relaying peer may make this node spend on transactions that then fail for a state reason. Such
 * a failure is no proof against the relay (its state may differ), so it is not scored; without a
 * bound a peer could gossip such transactions without end, each costing every node a check.
 *
 * Checks are reserved when a batch arrives, before any is made (a bound read from failures
 * already recorded let one big batch be checked in full first), and given back for the
 * transactions admitted (or refused for good: a duplicate, a nonce used) — an honest relay, whose
 * transactions are admitted, keeps its budget full. A transaction over its relay's budget is not
 * dropped: gossipsub marks a message seen before it is validated, so a dropped honest copy could
 * not come again for minutes. It waits in a small queue (`deferred`) until its relay's budget
 * refills, or until a copy of it comes from a peer with budget, and is then admitted if valid.
 *
 * Peer ids cost nothing, so every structure is bounded and a budget over all peers (`total`)
 * bounds what many ids get together; a peer this node found relaying accepted consensus messages
 * (`proven`) is served first and its waiting transactions are pushed out only by another proven
 * peer holding fewer. No peer has a fixed share of the queue: while it has room every transaction
 * waits, and a full one pushes out the newest of the peer holding most. A fixed share let a relay
 * whose share was full forward an honest batch first (the message id covers the whole batch), so
 * the honest transaction was dropped here and gossipsub dropped its honest copies as seen. A
 * relay must now fill the whole queue alone (and hold most of it) to have what it forwards first
 * dropped; re-announcement, sent directly (in no seen-cache), brings such a transaction again.
 * A batch whose costly checks were not all well spent is not forwarded whole (mempool-reactor.ts
 * `settle`): the nodes past this one would charge them to this node.
 */
import { keyId, type TxEnvelope } from '@unc/core';

export interface CostlyRelayBudgetOptions {
  /** Checks one peer may have outstanding or failed, at most (its bucket). */
  perPeer: number;
  /** One check of a peer's bucket comes back every this many ms. */
  perPeerRefillMs: number;
  /** Checks all peers together may have outstanding or failed. */
  total: number;
  /** One check of the total comes back every this many ms. */
  totalRefillMs: number;
  /** Peers whose bucket is tracked (the oldest-touched is forgotten past it: a fresh full bucket). */
  maxPeers: number;
  /**
   * A proven peer's waiting transactions that keep its precedence (pushed out only by a proven
   * peer's); past it they wait as an unproven peer's would, so one proven peer cannot hold the
   * whole queue and lock out every other peer's.
   */
  maxDeferredProvenPerPeer: number;
  /** Transactions waiting, all peers together. */
  maxDeferred: number;
  /**
   * A transaction waiting this long is checked on the total budget alone: a peer that relays an
   * honest transaction first (gossipsub then drops the others' copies) and keeps its own budget
   * spent on junk cannot hold it back for longer.
   */
  maxWaitMs: number;
}

/**
 * A failing check costs a verify worker a few ms: 32 at once and one every 2 s per peer, 256 at
 * once and 16 a second over all peers, are a few per cent of one core once the bursts are spent.
 * An honest relay's burst (an operator registering or selling many chips at once: some 20 TPM
 * registrations fill a 100 KiB batch) is checked 32 at a time, the rest waiting (as many as the
 * queue holds) for the budget its admitted ones give back. A waiting transaction is a copy of at
 * most 64 KiB (the gossip codec's bound on one): 512 of them, 32 MiB at worst.
 */
export const DEFAULT_COSTLY_RELAY_BUDGET: CostlyRelayBudgetOptions = {
  perPeer: 32,
  perPeerRefillMs: 2_000,
  total: 256,
  totalRefillMs: 62.5,
  maxPeers: 4_096,
  maxDeferredProvenPerPeer: 128,
  maxDeferred: 512,
  maxWaitMs: 10_000,
};

interface Bucket {
  level: number;
  at: number;
}

export interface Deferred {
  env: TxEnvelope;
  peer: string;
  /** Checks its admission reserves (core's costlyActionCount). */
  cost: number;
  proven: boolean;
  /** When it started waiting. */
  at: number;
  /**
   * Set by `takeReady`: its checks were reserved from the total alone (it waited `maxWaitMs`
   * with its relay's bucket short), so what comes back goes to the total alone (`refund`).
   */
  fromTotal?: boolean;
}

/** A waiting transaction, linked to its relay's waiting ones of the same kind (`PeerWaiting`). */
interface Waiting {
  key: string;
  d: Deferred;
  /** Its place in arrival order: the queue's own order (a Map keeps insertion order). */
  seq: number;
  /** The relay's next older and next newer of the same kind. */
  older: Waiting | null;
  newer: Waiting | null;
}

/** A relay with transactions waiting. Index 0 of each pair: without precedence; 1: a proven peer's. */
interface PeerWaiting {
  peer: string;
  /** Its waiting transactions, both kinds. */
  count: number;
  /** Its newest waiting transaction of each kind (the others linked from it, `Waiting.older`). */
  newest: [Waiting | null, Waiting | null];
  /** How many of each kind. */
  size: [number, number];
  /** Its place in `MostWaiting` of each kind; -1 while it holds none of that kind. */
  at: [number, number];
}

/**
 * The relays holding transactions of one kind, as a binary heap: the one holding most (both kinds
 * counted) on top, ties to the one whose newest of this kind arrived last: the relay whose newest
 * transaction a full queue pushes out (`CostlyRelayBudget.defer`). A relay moves in it by
 * log2(relays) steps at most as a transaction of its arrives or leaves.
 */
class MostWaiting {
  private readonly heap: PeerWaiting[] = [];
  /** Comparisons made (tests: the work a push-out costs). */
  steps = 0;

  constructor(private readonly kind: 0 | 1) {}

  top(): PeerWaiting | undefined {
    return this.heap[0];
  }

  /** Whether `a` comes before `b`: holds more, or as many and its newest of this kind is newer. */
  private before(a: PeerWaiting, b: PeerWaiting): boolean {
    this.steps++;
    if (a.count !== b.count) return a.count > b.count;
    return a.newest[this.kind]!.seq > b.newest[this.kind]!.seq;
  }

  private place(p: PeerWaiting, i: number): void {
    this.heap[i] = p;
    p.at[this.kind] = i;
  }

  /** `p` (in it or not yet) comes before where it is: it holds more, or has a newer newest. */
  raised(p: PeerWaiting): void {
    let i = p.at[this.kind];
    if (i < 0) i = this.heap.length;
    while (i > 0) {
      const up = (i - 1) >> 1;
      const parent = this.heap[up]!;
      if (!this.before(p, parent)) break;
      this.place(parent, i);
      i = up;
    }
    this.place(p, i);
  }

  /** `p` (in it) comes after where it is: it holds fewer, or its newest is older. */
  lowered(p: PeerWaiting): void {
    const n = this.heap.length;
    let i = p.at[this.kind];
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const child = r < n && this.before(this.heap[r]!, this.heap[l]!) ? r : l;
      const c = this.heap[child]!;
      if (!this.before(c, p)) break;
      this.place(c, i);
      i = child;
    }
    this.place(p, i);
  }

  /** `p` holds none of this kind any more. */
  delete(p: PeerWaiting): void {
    const i = p.at[this.kind];
    p.at[this.kind] = -1;
    const last = this.heap.pop()!;
    if (last === p) return;
    // The last relay takes its place, then moves up or down to where it belongs.
    this.place(last, i);
    this.lowered(last);
    if (last.at[this.kind] === i) this.raised(last);
  }
}

export class CostlyRelayBudget {
  private readonly opts: CostlyRelayBudgetOptions;
  /** Per peer, by last use (a Map keeps insertion order: re-inserted when touched). */
  private readonly buckets = new Map<string, Bucket>();
  private readonly all: Bucket;
  /** Waiting transactions by hash, oldest first. */
  private readonly waiting = new Map<string, Waiting>();
  /** The relays with transactions waiting: how many, of each kind (`PeerWaiting`). */
  private readonly peers = new Map<string, PeerWaiting>();
  /**
   * The relays holding transactions of each kind (index 0: without precedence, 1: with a proven
   * peer's), the one `defer` pushes out of first on top (`MostWaiting`): a full queue's push-out
   * is a look at the top, not a walk of the queue.
   */
  private readonly mostWaiting: [MostWaiting, MostWaiting] = [new MostWaiting(0), new MostWaiting(1)];
  /** Arrival order of the waiting transactions (`Waiting.seq`). */
  private arrivals = 0;
  /**
   * The waiting transactions with a proven peer's precedence, all relays together (`PeerWaiting`
   * size[1] of each). At most half the queue keeps precedence: else 4 proven ids (proven is
   * only having delivered some consensus message first) at their 128 each would fill the queue
   * with entries no unproven peer may push out, and every unproven peer's would be refused.
   */
  private provenWaiting = 0;
  /** Transactions dropped because the waiting queue was full (tests and diagnostics). */
  droppedDeferred = 0;
  /** Looks for a transaction to push out of the full waiting queue (`defer`; tests and diagnostics). */
  pushOutLooks = 0;

  /** Comparisons of two relays made so far to keep them in order (`MostWaiting`; tests). */
  get pushOutSteps(): number {
    return this.mostWaiting[0].steps + this.mostWaiting[1].steps;
  }

  constructor(opts: Partial<CostlyRelayBudgetOptions> = {}, now = 0) {
    this.opts = { ...DEFAULT_COSTLY_RELAY_BUDGET, ...opts };
    this.all = { level: this.opts.total, at: now };
  }

  /** Transactions waiting for budget. */
  get deferred(): number {
    return this.waiting.size;
  }

  /**
   * The reactor's clock is the driver's (a real node's wall clock: block times need it). A step
   * back refills nothing and the bucket counts on from the new time: kept at the old one, every
   * bucket stayed as spent as it was for as long as the step (an hour's NTP correction kept every
   * relay's costly transactions waiting an hour). A step forward refills at most a full bucket,
   * what waiting that long gives anyway.
   */
  private refill(b: Bucket, cap: number, refillMs: number, now: number): void {
    if (now > b.at) b.level = Math.min(cap, b.level + (now - b.at) / refillMs);
    b.at = now;
  }

  private bucket(peer: string, now: number): Bucket {
    let b = this.buckets.get(peer);
    if (b) this.buckets.delete(peer);
    else {
      b = { level: this.opts.perPeer, at: now };
      // Past the bound the peer touched longest ago is forgotten (a full bucket again when it
      // comes back): what many ids gain that way `total` bounds.
      if (this.buckets.size >= this.opts.maxPeers) this.buckets.delete(this.buckets.keys().next().value!);
    }
    this.buckets.set(peer, b);
    this.refill(b, this.opts.perPeer, this.opts.perPeerRefillMs, now);
    return b;
  }

  /**
   * Reserves `cost` checks for a transaction `peer` relayed: true when both its bucket and the
   * total hold them (a transaction costing more than a full bucket needs a full one). `totalOnly`:
   * from the total alone, the bucket neither looked at nor charged (a transaction that waited
   * `maxWaitMs`). Not charged: a bucket charged past its level would sink below zero, a debt
   * without bound that outlasts whatever ran it up. An honest relay made to relay transactions
   * that fail here for a state reason (evidence valid at its head, expired at this node's block
   * time) while its bucket is spent would have every costly transaction it relays wait the full
   * `maxWaitMs` long after that stopped, one `perPeerRefillMs` per check of debt; and the debt
   * bounds no attacker, whose waiting junk is checked on the total alone however deep its bucket
   * sank. The total bounds what such checks cost, whoever relays them.
   */
  tryTake(peer: string, cost: number, now: number, totalOnly = false): boolean {
    if (cost <= 0) return true;
    const b = totalOnly ? null : this.bucket(peer, now);
    this.refill(this.all, this.opts.total, this.opts.totalRefillMs, now);
    if (this.all.level < Math.min(cost, this.opts.total)) return false;
    if (b) {
      if (b.level < Math.min(cost, this.opts.perPeer)) return false;
      b.level -= cost;
    }
    this.all.level -= cost;
    return true;
  }

  /**
   * Gives back checks reserved for a transaction that was admitted (or refused for good).
   * `totalOnly`: they were reserved from the total alone, and go back to it alone; given to the
   * bucket, each honest copy a relay let wait out `maxWaitMs` would add to its bucket checks it
   * never paid, to spend on junk.
   */
  refund(peer: string, cost: number, now: number, totalOnly = false): void {
    if (cost <= 0) return;
    const b = totalOnly ? undefined : this.buckets.get(peer);
    if (b) {
      this.refill(b, this.opts.perPeer, this.opts.perPeerRefillMs, now);
      b.level = Math.min(this.opts.perPeer, b.level + cost);
    }
    this.refill(this.all, this.opts.total, this.opts.totalRefillMs, now);
    this.all.level = Math.min(this.opts.total, this.all.level + cost);
  }

  /** Whether `env` waits for budget. */
  isDeferred(env: TxEnvelope): boolean {
    return this.waiting.has(keyId(env.hash));
  }

  /**
   * Takes `env` out of the waiting queue (a copy from a peer with budget goes ahead now). Returns
   * whether it was waiting: its place is free again.
   */
  undefer(env: TxEnvelope): boolean {
    const w = this.waiting.get(keyId(env.hash));
    if (w) this.remove(w);
    return w !== undefined;
  }

  /** Waits `d` (not waiting yet), the newest of its relay's of its kind. */
  private add(key: string, d: Deferred): void {
    const kind = d.proven ? 1 : 0;
    let p = this.peers.get(d.peer);
    if (!p) {
      p = { peer: d.peer, count: 0, newest: [null, null], size: [0, 0], at: [-1, -1] };
      this.peers.set(d.peer, p);
    }
    const w: Waiting = { key, d, seq: this.arrivals++, older: p.newest[kind], newer: null };
    if (w.older) w.older.newer = w;
    p.newest[kind] = w;
    p.size[kind]++;
    p.count++;
    this.waiting.set(key, w);
    if (d.proven) this.provenWaiting++;
    // It holds one more, its newest is the newest of all: it only moves up, in both orders.
    for (const k of [0, 1] as const) if (p.size[k] > 0) this.mostWaiting[k].raised(p);
  }

  private remove(w: Waiting): void {
    const { d } = w;
    const kind = d.proven ? 1 : 0;
    const p = this.peers.get(d.peer)!;
    this.waiting.delete(w.key);
    if (w.newer) w.newer.older = w.older;
    else p.newest[kind] = w.older;
    if (w.older) w.older.newer = w.newer;
    p.size[kind]--;
    p.count--;
    if (d.proven) this.provenWaiting--;
    // It holds one fewer, its newest may be older: it only moves down, or out of an order.
    for (const k of [0, 1] as const) {
      if (p.size[k] > 0) this.mostWaiting[k].lowered(p);
      else if (p.at[k] >= 0) this.mostWaiting[k].delete(p);
    }
    if (p.count === 0) this.peers.delete(d.peer);
  }

  /**
   * Queues `env`, relayed by `peer` over its budget, until budget refills. Already waiting: kept
   * as it is. While the queue has room it waits, however many its relay has waiting (an honest
   * relay's burst; an honest batch a relay forwarded first). A full queue: it pushes out the
   * newest transaction of the unproven peer holding most, unless `peer` would then hold as many;
   * a proven peer's (up to `maxDeferredProvenPerPeer` of them, and half the queue in all) are
   * pushed out only by another proven peer's. Returns whether it waits.
   */
  defer(arrived: Deferred): boolean {
    const key = keyId(arrived.env.hash);
    if (this.waiting.has(key)) return true;
    const own = this.peers.get(arrived.peer);
    const mine = own?.count ?? 0;
    // Past its share a proven peer's wait as anyone's: pushed out first, it holding most.
    const d =
      arrived.proven &&
      ((own?.size[1] ?? 0) >= this.opts.maxDeferredProvenPerPeer ||
        this.provenWaiting >= Math.floor(this.opts.maxDeferred / 2))
        ? { ...arrived, proven: false }
        : arrived;
    if (this.waiting.size >= this.opts.maxDeferred) {
      /**
       * The newest waiting transaction (proven or not, as asked) of the peer holding most; ties:
       * the newest of those peers' (their newest of that kind, arrival order). The top of
       * `mostWaiting`, where it was a walk of the whole queue (512 by default) per look, and a
       * batch of pushes out made up to 256 of them.
       */
      const victimAmong = (proven: boolean) => {
        this.pushOutLooks++;
        const top = this.mostWaiting[proven ? 1 : 0].top();
        return { victim: top ? top.newest[proven ? 1 : 0] : null, most: top?.count ?? 0 };
      };
      let { victim, most } = victimAmong(false);
      // A queue full of proven peers' transactions: a proven peer holding fewer pushes out the
      // newest of the one holding most. Else a few ids that relayed some votes first, each keeping
      // its own bucket spent and its share of the queue full, would have every over-budget
      // transaction of every other peer dropped, proven ones' too.
      if (!victim && d.proven) {
        ({ victim, most } = victimAmong(true));
        if (victim && mine + 1 >= most) victim = null;
      }
      if (!victim || (!d.proven && mine + 1 >= most)) {
        this.droppedDeferred++;
        return false;
      }
      this.remove(victim);
      this.droppedDeferred++;
    }
    // Counted on what it holds now, not `mine + 1`: a proven peer's arrival may have pushed out
    // its own overflow.
    this.add(key, d);
    return true;
  }

  /**
   * The waiting transactions whose relay's budget now holds their checks, reserved and out of the
   * queue: proven peers' first, then one per peer per turn (oldest first), so that many peers
   * waiting cannot keep one peer's transaction waiting behind all of theirs. One that waited
   * `maxWaitMs` is reserved from its relay's bucket if that holds it, else from the total alone
   * (`fromTotal`).
   */
  takeReady(now: number): Deferred[] {
    const out: Deferred[] = [];
    for (const proven of [true, false]) {
      let took = true;
      while (took) {
        took = false;
        const turn = new Set<string>();
        for (const w of this.waiting.values()) {
          const { d } = w;
          if (d.proven !== proven || turn.has(d.peer)) continue;
          turn.add(d.peer);
          let ready = this.tryTake(d.peer, d.cost, now);
          const fromTotal = !ready && now - d.at >= this.opts.maxWaitMs;
          if (fromTotal) ready = this.tryTake(d.peer, d.cost, now, true);
          if (!ready) continue;
          this.remove(w);
          out.push(fromTotal ? { ...d, fromTotal } : d);
          took = true;
        }
      }
    }
    return out;
  }
}
