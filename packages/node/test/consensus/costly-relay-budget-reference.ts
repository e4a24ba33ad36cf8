/**
 * The waiting queue's push-out as it was before `MostWaiting` (costly-relay-budget.ts): each look
 * for a transaction to push out walked the whole queue. Kept, verbatim but for its name, the
 * imports and the walk counter (`entriesWalked`), only as the reference the property test compares
 * the new choice with (costly-relay-budget.test.ts); never used by the node.
 */

import type { TxEnvelope } from '@unc/core';
import { keyId } from '@unc/core';
import {
  type CostlyRelayBudgetOptions,
  DEFAULT_COSTLY_RELAY_BUDGET,
  type Deferred,
} from '../../src/consensus/costly-relay-budget.js';

interface Bucket {
  level: number;
  at: number;
}

export class WalkingCostlyRelayBudget {
  private readonly opts: CostlyRelayBudgetOptions;
  /** Per peer, by last use (a Map keeps insertion order: re-inserted when touched). */
  private readonly buckets = new Map<string, Bucket>();
  private readonly all: Bucket;
  /** Waiting transactions by hash, oldest first. */
  private readonly waiting = new Map<string, Deferred>();
  private readonly waitingPerPeer = new Map<string, number>();
  /** Of those, the ones waiting with a proven peer's precedence. */
  private readonly provenPerPeer = new Map<string, number>();
  /**
   * All of those together. At most half the queue keeps precedence: else 4 proven ids (proven is
   * only having delivered some consensus message first) at their 128 each would fill the queue
   * with entries no unproven peer may push out, and every unproven peer's would be refused.
   */
  private provenWaiting = 0;
  /** Transactions dropped because the waiting queue was full (tests and diagnostics). */
  droppedDeferred = 0;
  /** Walks of the full waiting queue for a transaction to push out (`defer`; tests and diagnostics). */
  fullQueueWalks = 0;
  /** Waiting transactions looked at by those walks. */
  entriesWalked = 0;

  constructor(opts: Partial<CostlyRelayBudgetOptions> = {}, now = 0) {
    this.opts = { ...DEFAULT_COSTLY_RELAY_BUDGET, ...opts };
    this.all = { level: this.opts.total, at: now };
  }

  /** Transactions waiting for budget. */
  get deferred(): number {
    return this.waiting.size;
  }

  private refill(b: Bucket, cap: number, refillMs: number, now: number): void {
    if (now > b.at) b.level = Math.min(cap, b.level + (now - b.at) / refillMs);
    b.at = Math.max(b.at, now);
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
    const key = keyId(env.hash);
    const d = this.waiting.get(key);
    if (d) this.remove(key, d);
    return d !== undefined;
  }

  private remove(key: string, d: Deferred): void {
    this.waiting.delete(key);
    WalkingCostlyRelayBudget.count(this.waitingPerPeer, d.peer, -1);
    if (d.proven) {
      WalkingCostlyRelayBudget.count(this.provenPerPeer, d.peer, -1);
      this.provenWaiting--;
    }
  }

  private static count(m: Map<string, number>, peer: string, by: number): void {
    const n = (m.get(peer) ?? 0) + by;
    if (n <= 0) m.delete(peer);
    else m.set(peer, n);
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
    const mine = this.waitingPerPeer.get(arrived.peer) ?? 0;
    // Past its share a proven peer's wait as anyone's: pushed out first, it holding most.
    const d =
      arrived.proven &&
      ((this.provenPerPeer.get(arrived.peer) ?? 0) >= this.opts.maxDeferredProvenPerPeer ||
        this.provenWaiting >= Math.floor(this.opts.maxDeferred / 2))
        ? { ...arrived, proven: false }
        : arrived;
    if (this.waiting.size >= this.opts.maxDeferred) {
      /** The newest waiting transaction of the peer (proven or not, as asked) holding most. */
      const victimAmong = (proven: boolean) => {
        this.fullQueueWalks++;
        let found: { key: string; d: Deferred } | null = null;
        let most = 0;
        for (const [k, w] of this.waiting) {
          this.entriesWalked++;
          if (w.proven !== proven) continue;
          const n = this.waitingPerPeer.get(w.peer) ?? 0;
          // Ties: the newest (later in the map) of the peers holding most.
          if (n >= most) {
            most = n;
            found = { key: k, d: w };
          }
        }
        return { victim: found, most };
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
      this.remove(victim.key, victim.d);
      this.droppedDeferred++;
    }
    this.waiting.set(key, d);
    // Counted again, not `mine + 1`: a proven peer's arrival may have pushed out its own overflow.
    WalkingCostlyRelayBudget.count(this.waitingPerPeer, d.peer, 1);
    if (d.proven) {
      WalkingCostlyRelayBudget.count(this.provenPerPeer, d.peer, 1);
      this.provenWaiting++;
    }
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
        for (const [key, d] of this.waiting) {
          if (d.proven !== proven || turn.has(d.peer)) continue;
          turn.add(d.peer);
          let ready = this.tryTake(d.peer, d.cost, now);
          const fromTotal = !ready && now - d.at >= this.opts.maxWaitMs;
          if (fromTotal) ready = this.tryTake(d.peer, d.cost, now, true);
          if (!ready) continue;
          this.remove(key, d);
          out.push(fromTotal ? { ...d, fromTotal } : d);
          took = true;
        }
      }
    }
    return out;
  }
}
