/**
 * A virtual clock for the simulator: `now()` is what the simulation says, and `run` jumps from one
 * due timer to the next, letting every promise the timer's work started settle before the next
 * one fires. The node code under simulation does no real I/O (memory store, simulated network),
 * so one turn of the event loop (setImmediate) after a timer settles all of its work. Timers due
 * at the same instant fire in the order they were scheduled, so a run is a function of its seed.
 */
import type { Cancel, Clock } from '../clock.js';

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

export class VirtualClock implements Clock {
  private time: number;
  private seq = 0;
  /** A binary min-heap on (at, seq). */
  private readonly heap: Timer[] = [];
  /** Timers fired so far (the simulator reports it). */
  fired = 0;

  constructor(startMs: number) {
    this.time = startMs;
  }

  now(): number {
    return this.time;
  }

  schedule(delayMs: number, fn: () => void): Cancel {
    // Whole milliseconds, like Date.now(): block times and message stamps are integers.
    const timer: Timer = {
      at: this.time + Math.max(0, Math.ceil(delayMs)),
      seq: this.seq++,
      fn,
      cancelled: false,
    };
    this.push(timer);
    return () => {
      timer.cancelled = true;
    };
  }

  /** Timers still pending (cancelled ones excluded lazily: an upper bound). */
  get pending(): number {
    return this.heap.length;
  }

  /**
   * Fires every timer due up to `untilMs` (or until `stop()` says so), in time order, settling the
   * promises each one starts; leaves the clock at `untilMs`.
   */
  async run(untilMs: number, stop?: () => boolean): Promise<void> {
    await settle();
    for (;;) {
      if (stop?.()) return;
      const next = this.heap[0];
      if (!next || next.at > untilMs) break;
      this.pop();
      if (next.cancelled) continue;
      this.time = next.at;
      this.fired++;
      next.fn();
      await settle();
    }
    this.time = Math.max(this.time, untilMs);
  }

  private push(t: Timer): void {
    const h = this.heap;
    h.push(t);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(h[i]!, h[parent]!)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && before(h[l]!, h[m]!)) m = l;
      if (r < h.length && before(h[r]!, h[m]!)) m = r;
      if (m === i) return;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
}

function before(a: Timer, b: Timer): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/** Lets every queued promise callback run (they all run before the next macrotask). */
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
