/**
 * Results of finished jobs kept for their GET (docs/jobs.md, "Batches" and the unread answers):
 * a job or batch answered 202 with its id only, or a job sent with "wait": false. The store of
 * finished jobs drops its oldest results first; a kept one is passed over until its GET's answer
 * was taken, `timeoutMs` passed, or a bound below ended its keep. Unkept, ~12 jobs of ~21 MiB
 * outputs from any renter pushed out every result still waiting, and its renter got
 * JOB_NOT_FOUND for a job it paid for.
 *
 * Bounded, or the keeps would pin the store:
 * - per renter key, `bytesPerRenter` and `resultsPerRenter`: past either, that renter's own oldest
 *   keep ends;
 * - all renters together, `bytes` and `results` (half of the store's bounds, so the store can
 *   always drop the rest): past either, the oldest keep of the renter holding the most of it (in
 *   bytes, or in results) ends, on a tie that of the renter that began keeping last.
 *
 * So several renters (leases) that together fill the total cannot starve another: a keep ends
 * for the total only when its renter holds at least as much as every other one, which is more
 * than the total's equal part among the renters keeping (past the total, the most any one holds
 * is more than the total over their number). A renter whose keeps, the new one included, stay
 * within that equal part never loses one to the others, a newcomer included; one holding more
 * loses first. A result is whole: a renter whose one result is larger than the equal part while
 * every other renter holds at least as much loses that keep, as holding it would take another
 * renter below its part (provider-keeps.test.ts checks these properties).
 */

/** Why a keep ended under a bound: its renter's own bound, or the total's bytes or results. */
export type KeepBound = 'renter' | 'bytes' | 'results';

export interface KeepLimits {
  bytesPerRenter: number;
  resultsPerRenter: number;
  bytes: number;
  results: number;
  /** How long a result stays kept at most, ms (the GET's answer may take that long to be taken). */
  timeoutMs: number;
}

interface Mark {
  renter: string;
  bytes: number;
  timer: NodeJS.Timeout;
}

/** One renter key's keeps, oldest first, and their bytes. */
interface RenterKeeps {
  ids: Set<string>;
  bytes: number;
}

export class ResultKeeps {
  private readonly marks = new Map<string, Mark>();
  /** In the order the renters began keeping (a renter whose keeps all ended begins anew). */
  private readonly byRenter = new Map<string, RenterKeeps>();
  private keptBytes = 0;

  constructor(private readonly limits: KeepLimits) {}

  has(id: string): boolean {
    return this.marks.has(id);
  }

  /** Bytes of the kept results, all renters together. */
  get bytes(): number {
    return this.keptBytes;
  }

  /** Kept results, all renters together. */
  get results(): number {
    return this.marks.size;
  }

  bytesOf(renter: string): number {
    return this.byRenter.get(renter)?.bytes ?? 0;
  }

  resultsOf(renter: string): number {
    return this.byRenter.get(renter)?.ids.size ?? 0;
  }

  /** The renters keeping results, in the order they began. */
  renters(): string[] {
    return [...this.byRenter.keys()];
  }

  /**
   * Keeps the result `id` of `renter` (`bytes` of outputs) for its GET, then brings the keeps
   * within their bounds; returns the keeps that ended for a bound, in order (the new one may be
   * among them: a result larger than its renter's bound, or of the renter holding the most).
   */
  keep(id: string, renter: string, bytes: number): { id: string; renter: string; bound: KeepBound }[] {
    this.end(id);
    let mine = this.byRenter.get(renter);
    if (!mine) {
      mine = { ids: new Set(), bytes: 0 };
      this.byRenter.set(renter, mine);
    }
    const timer = setTimeout(() => this.end(id), this.limits.timeoutMs);
    timer.unref();
    this.marks.set(id, { renter, bytes, timer });
    mine.ids.add(id);
    mine.bytes += bytes;
    this.keptBytes += bytes;
    const ended: { id: string; renter: string; bound: KeepBound }[] = [];
    const endOldest = (of: string, u: RenterKeeps, bound: KeepBound) => {
      const oldest = u.ids.values().next().value!;
      ended.push({ id: oldest, renter: of, bound });
      this.end(oldest);
    };
    while (mine.bytes > this.limits.bytesPerRenter || mine.ids.size > this.limits.resultsPerRenter)
      endOldest(renter, mine, 'renter');
    while (this.keptBytes > this.limits.bytes) endOldest(...this.heaviest((u) => u.bytes), 'bytes');
    while (this.marks.size > this.limits.results) endOldest(...this.heaviest((u) => u.ids.size), 'results');
    return ended;
  }

  /** Ends a result's keep (fetched, timed out, or dropped with its provider); none: nothing. */
  end(id: string): void {
    const mark = this.marks.get(id);
    if (!mark) return;
    clearTimeout(mark.timer);
    this.marks.delete(id);
    this.keptBytes -= mark.bytes;
    const mine = this.byRenter.get(mark.renter)!;
    mine.ids.delete(id);
    mine.bytes -= mark.bytes;
    if (mine.ids.size === 0) this.byRenter.delete(mark.renter);
  }

  /** Ends every keep (a stopped provider: their timers held the results for timeoutMs). */
  endAll(): void {
    for (const id of [...this.marks.keys()]) this.end(id);
  }

  /**
   * The renter holding the most by `weight`; on a tie the one that began keeping last, so a
   * newcomer (an attacker's key as well) cannot end the keeps of a renter already waiting.
   * Called only while something is kept past a total, so some renter keeps something.
   */
  private heaviest(weight: (u: RenterKeeps) => number): [string, RenterKeeps] {
    let most: [string, RenterKeeps] | undefined;
    for (const entry of this.byRenter) if (!most || weight(entry[1]) >= weight(most[1])) most = entry;
    return most!;
  }
}
