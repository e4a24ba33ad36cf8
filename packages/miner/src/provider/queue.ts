/**
 * A bounded job queue: at most `concurrency` jobs run at once and at most `maxQueued` wait, so a
 * renter flooding the provider gets 429s instead of exhausting its memory. Waiting jobs are kept
 * per key (the renter) and the keys take turns: the next job is the oldest waiting one of the key
 * whose last job started longest ago (never first), so a renter with a backlog of slow jobs does
 * not hold up another renter's job behind all of them.
 */
export class QueueFullError extends Error {
  constructor(maxQueued: number) {
    super(`the job queue is full (${maxQueued} waiting); retry later`);
    this.name = 'QueueFullError';
  }
}

export class JobQueue {
  private active = 0;
  /** Jobs admitted and not finished: a task counts as its weight (a group of a batch's jobs). */
  private places = 0;
  /** Waiting starts per key, keys in the order they began to wait. */
  private readonly waiting = new Map<string, (() => void)[]>();
  /** When each key with running or waiting jobs last started one (a counter, not a clock). */
  private readonly lastStart = new Map<string, number>();
  private readonly runningOf = new Map<string, number>();
  private tick = 0;

  constructor(
    readonly concurrency: number,
    readonly maxQueued: number,
  ) {
    if (!Number.isInteger(concurrency) || concurrency < 1)
      throw new Error('concurrency must be an integer ≥ 1');
    if (!Number.isInteger(maxQueued) || maxQueued < 0) throw new Error('maxQueued must be an integer ≥ 0');
  }

  get running(): number {
    return this.active;
  }

  /** Jobs admitted that are not running (a group's jobs after its first count as waiting). */
  get queued(): number {
    return this.places - this.active;
  }

  /**
   * Admits a task (throws QueueFullError at once when full) and resolves with its result. A task
   * that runs `weight` jobs (a group of a batch, run in one job process) takes the places of that
   * many jobs until it ends, so a batch cannot squeeze past the limits by arriving together: it
   * fits only where its jobs sent one by one would all have been admitted.
   */
  admit<T>(task: () => Promise<T>, key = '', weight = 1): Promise<T> {
    if (!Number.isInteger(weight) || weight < 1) throw new Error('weight must be an integer ≥ 1');
    // With tasks of weight 1 this is the rule "a free runner, or a free waiting place".
    if (this.places + weight > this.concurrency + this.maxQueued) throw new QueueFullError(this.maxQueued);
    this.places += weight;
    return new Promise<T>((resolve, reject) => {
      const start = () => {
        this.active++;
        this.lastStart.set(key, ++this.tick);
        this.runningOf.set(key, (this.runningOf.get(key) ?? 0) + 1);
        task()
          .then(resolve, reject)
          .finally(() => {
            this.active--;
            this.places -= weight;
            const left = (this.runningOf.get(key) ?? 1) - 1;
            if (left > 0) this.runningOf.set(key, left);
            else {
              this.runningOf.delete(key);
              if (!this.waiting.has(key)) this.lastStart.delete(key);
            }
            this.next();
          });
      };
      if (this.active < this.concurrency) start();
      else {
        const q = this.waiting.get(key);
        if (q) q.push(start);
        else this.waiting.set(key, [start]);
      }
    });
  }

  /**
   * Called by a running task of `key` between two of its jobs (a group of a batch): when another
   * task waits, gives its runner up, keeping its places, and resolves when it is this key's turn
   * again; otherwise resolves at once. A group of slow jobs thus holds a runner for about one job,
   * not for all its jobs, while other renters wait.
   */
  turn(key = ''): Promise<void> {
    if (this.waiting.size === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const resume = () => {
        this.active++;
        this.lastStart.set(key, ++this.tick);
        this.runningOf.set(key, (this.runningOf.get(key) ?? 0) + 1);
        resolve();
      };
      const q = this.waiting.get(key);
      if (q) q.push(resume);
      else this.waiting.set(key, [resume]);
      this.active--;
      const left = (this.runningOf.get(key) ?? 1) - 1;
      if (left > 0) this.runningOf.set(key, left);
      else this.runningOf.delete(key);
      // It has just had its turn: keys that started since it began go first, not after it.
      this.lastStart.set(key, ++this.tick);
      this.next();
    });
  }

  /** Starts the oldest waiting task of the key whose last start is the oldest. */
  private next(): void {
    let key: string | null = null;
    let at = Number.POSITIVE_INFINITY;
    // At most maxQueued keys wait.
    for (const k of this.waiting.keys()) {
      const t = this.lastStart.get(k) ?? 0;
      if (t < at) {
        at = t;
        key = k;
      }
    }
    if (key === null) return;
    const q = this.waiting.get(key)!;
    const start = q.shift()!;
    if (q.length === 0) this.waiting.delete(key);
    start();
  }
}
