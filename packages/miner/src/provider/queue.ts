/**
 * A bounded job queue: at most `concurrency` jobs run at once and at most `maxQueued` wait, so a
 * renter flooding the provider gets 429s instead of exhausting its memory.
 */
export class QueueFullError extends Error {
  constructor(maxQueued: number) {
    super(`the job queue is full (${maxQueued} waiting); retry later`);
    this.name = 'QueueFullError';
  }
}

export class JobQueue {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

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
    return this.waiting.length;
  }

  /** Admits a task (throws QueueFullError at once when full) and resolves with its result. */
  admit<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.concurrency && this.waiting.length >= this.maxQueued)
      throw new QueueFullError(this.maxQueued);
    return new Promise<T>((resolve, reject) => {
      const start = () => {
        this.active++;
        task()
          .then(resolve, reject)
          .finally(() => {
            this.active--;
            this.waiting.shift()?.();
          });
      };
      if (this.active < this.concurrency) start();
      else this.waiting.push(start);
    });
  }
}
