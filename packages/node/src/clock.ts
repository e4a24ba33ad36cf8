/**
 * Time, passed in. The consensus reactors, the mempool reactor, the sync reactor and the evidence
 * pool read the time and set timers only through a `Clock`, never through `Date.now()` or
 * `setTimeout`: a real node passes `systemClock`, the simulator a virtual clock that jumps from
 * one timer to the next, so a run of many nodes is deterministic and far faster than real time.
 */

/** Cancels a timer; calling it after the timer fired, or twice, does nothing. */
export type Cancel = () => void;

export interface Clock {
  /** Milliseconds since the Unix epoch (the virtual clock's own epoch in the simulator). */
  now(): number;
  /** Runs `fn` once after `delayMs` (0 or more). */
  schedule(delayMs: number, fn: () => void): Cancel;
  /**
   * Milliseconds from an arbitrary origin that never step (a real node: `performance.now`), for
   * how long something lasts: marks "until then" a step of the wall clock (NTP, an operator, a VM
   * restore) must neither lift nor extend. Never a time to compare with a block's. Absent (the
   * simulator's virtual clock, which never steps): `now()` (`monotonicNow`).
   */
  monotonic?(): number;
}

/** The clock's `monotonic` reading, or its `now()` where it has none. */
export function monotonicNow(clock: Clock): number {
  return clock.monotonic ? clock.monotonic() : clock.now();
}

/** The wall clock and Node's timers: what a real node passes. */
export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  schedule(delayMs, fn) {
    const t = setTimeout(fn, Math.max(0, delayMs));
    return () => clearTimeout(t);
  },
};

/** Resolves after `ms` of the clock's time. */
export function sleep(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => clock.schedule(ms, resolve));
}

/** Runs `fn` every `ms` until cancelled. */
export function every(clock: Clock, ms: number, fn: () => void): Cancel {
  let cancel: Cancel = () => {};
  let stopped = false;
  const tick = () => {
    if (stopped) return;
    cancel = clock.schedule(ms, tick);
    fn();
  };
  cancel = clock.schedule(ms, tick);
  return () => {
    stopped = true;
    cancel();
  };
}
