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
  /** Waiting starts per key, keys in the order they began to wait. */
  private readonly waiting = new Map<string, (() => void)[]>();
  private waitingCount = 0;
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

  get queued(): number {
    return this.waitingCount;
  }

  /** Admits a task (throws QueueFullError at once when full) and resolves with its result. */
  admit<T>(task: () => Promise<T>, key = ''): Promise<T> {
    if (this.active >= this.concurrency && this.waitingCount >= this.maxQueued)
      throw new QueueFullError(this.maxQueued);
    return new Promise<T>((resolve, reject) => {
      const start = () => {
        this.active++;
        this.lastStart.set(key, ++this.tick);
        this.runningOf.set(key, (this.runningOf.get(key) ?? 0) + 1);
        task()
          .then(resolve, reject)
          .finally(() => {
            this.active--;
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
        this.waitingCount++;
      }
    });
  }

  /**
   * Admits several tasks of one key at once or none of them (QueueFullError when the running and
   * waiting places left are fewer than the tasks): a batch of jobs takes the places its jobs would
   * take sent one by one, and cannot squeeze past the limits by arriving together.
   */
  admitAll<T>(tasks: (() => Promise<T>)[], key = ''): Promise<T>[] {
    const free =
      Math.max(0, this.concurrency - this.active) + Math.max(0, this.maxQueued - this.waitingCount);
    if (tasks.length > free) throw new QueueFullError(this.maxQueued);
    return tasks.map((t) => this.admit(t, key));
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
    this.waitingCount--;
    start();
  }
}
