/**
 * How the long-running commands (`unc dev`, `unc start`, `unc miner start`, `unc gateway start`)
 * stop on SIGINT or SIGTERM, from the moment their action begins (docs/operators.md, "Stopping"):
 *
 * - During start-up a signal never kills the process outright: the step under way (opening the
 *   database, the RPC server, libp2p, a software TPM) runs to its end, or gives up early where it
 *   can (the node's start takes an AbortSignal; a miner agent's start is interrupted by its stop),
 *   no later step starts, what has started is stopped in reverse order, and the process exits 0.
 *   A start-up that fails on its own also stops what it had started (a node, its swtpm children)
 *   before the error is reported (exit 1).
 * - Once ready, the first signal stops everything in reverse order and exits 0 (1 if a stop fails).
 * - A second signal while stopping is answered with a line saying so; a third exits at once with
 *   128 + the signal's number (130 for SIGINT, 143 for SIGTERM), the shell's code for "ended by
 *   that signal", after killing the child processes it knows (swtpm) so none is left behind.
 */
import { constants } from 'node:os';
import { UncError } from '@unc/core';

/** The signal that makes a stop already under way exit at once (the third). */
export const FORCE_AT_SIGNAL = 3;

/** The exit status of a stop forced by a further signal: 128 + its number (130, 143). */
export function forcedExitCode(signal: NodeJS.Signals): number {
  return 128 + (constants.signals[signal] ?? 0);
}

export interface ShutdownLog {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** Thrown by a step when a stop was asked for: the start-up goes no further. */
class StopRequested extends Error {
  constructor() {
    super('stopped during start-up');
  }
}

interface Stoppable {
  name: string;
  stop: () => Promise<void>;
  /** At a forced exit: synchronous, no waiting (kill a child process by its pid). */
  force?: () => void;
}

export class Shutdown {
  private readonly started: Stoppable[] = [];
  /** Stops already begun by an interrupted step: waited for before the process exits. */
  private readonly interrupts: Promise<void>[] = [];
  private readonly controller = new AbortController();
  private signals = 0;
  private isReady = false;
  private stopping = false;
  /** Start-up steps under way. */
  private inStep = 0;
  private readonly handler = (signal: NodeJS.Signals) => this.onSignal(signal);

  constructor(
    private readonly log: ShutdownLog,
    private readonly exit: (code: number) => void = (code) => process.exit(code),
  ) {}

  /** From here on SIGINT and SIGTERM are this object's. */
  install(): this {
    process.on('SIGINT', this.handler);
    process.on('SIGTERM', this.handler);
    return this;
  }

  /** Gives SIGINT and SIGTERM back (tests: the process's own handlers stay as they were). */
  dispose(): void {
    process.off('SIGINT', this.handler);
    process.off('SIGTERM', this.handler);
  }

  /** Aborted at the first signal: a start-up step that can give up early takes it. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Whether a signal asked for a stop. */
  get requested(): boolean {
    return this.signals > 0;
  }

  /** Something started that a stop must stop (stopped in reverse order of adding). */
  add(name: string, stop: () => Promise<void>, force?: () => void): void {
    this.started.push({ name, stop, ...(force ? { force } : {}) });
  }

  /**
   * One start-up step. Not begun when a stop was asked for before it; when one is asked for while
   * it runs, `interrupt` (if given) is called at once to make it end early, else it runs to its
   * end. Either way the start-up then goes no further (`startUp` stops what has started).
   */
  async step<T>(start: () => Promise<T>, interrupt?: () => Promise<void>): Promise<T> {
    if (this.requested) throw new StopRequested();
    let onAbort: (() => void) | null = null;
    if (interrupt) {
      onAbort = () => this.interrupts.push(interrupt().catch(() => {}));
      this.controller.signal.addEventListener('abort', onAbort, { once: true });
    }
    this.inStep++;
    try {
      const value = await start();
      if (this.requested) throw new StopRequested();
      return value;
    } finally {
      this.inStep--;
      if (onAbort) this.controller.signal.removeEventListener('abort', onAbort);
    }
  }

  /**
   * Runs a command's start-up. A stop asked for during it stops what started and exits (0, or 1
   * if a stop failed; false is returned only where `exit` returns, in tests); a start-up that
   * fails on its own stops what started, then throws. True: ready, a signal now stops at once.
   */
  async startUp(run: () => Promise<void>): Promise<boolean> {
    try {
      await run();
      // The steps check after each await; a last plain await may have let one in.
      if (this.requested) throw new StopRequested();
    } catch (err) {
      if (this.requested) {
        if (!(err instanceof StopRequested) && !isAbort(err))
          this.log.warn('start-up ended while stopping', { error: (err as Error).message });
        await this.stopAll('stopped during start-up');
        return false;
      }
      this.stopping = true;
      await this.stopEach().catch(() => {});
      throw err;
    }
    this.isReady = true;
    return true;
  }

  private onSignal(signal: NodeJS.Signals): void {
    this.signals++;
    if (this.signals === 1) {
      if (!this.isReady && !this.stopping && this.inStep === 0 && this.started.length === 0) {
        // Reading options, asking the node for its status: nothing to stop, nothing half-written.
        this.log.info(`received ${signal} before anything started: exiting`);
        this.stopping = true;
        this.exit(0);
        return;
      }
      this.log.info(
        this.isReady
          ? `received ${signal}, stopping`
          : `received ${signal} during start-up: stopping once the step under way ends`,
      );
      this.controller.abort(new UncError('STOPPING', `received ${signal}`));
      if (this.isReady) void this.stopAll('stopped');
      return;
    }
    if (this.signals < FORCE_AT_SIGNAL) {
      this.log.warn(`received ${signal} again: still stopping; send it once more to exit at once`);
      return;
    }
    const code = forcedExitCode(signal);
    this.log.error(`received ${signal}, a third signal: exiting at once without finishing the stop`, {
      exitCode: code,
    });
    for (const s of [...this.started].reverse()) {
      try {
        s.force?.();
      } catch {
        // gone already
      }
    }
    this.exit(code);
  }

  /** Stops everything started, newest first, then exits: 0, or 1 if a stop failed. */
  private async stopAll(done: string): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    try {
      await this.stopEach();
    } catch (err) {
      this.log.error('error while stopping', { error: (err as Error).message });
      this.exit(1);
      return;
    }
    this.log.info(done);
    this.exit(0);
  }

  /** Every stop is tried; the first failure is thrown once all have run. */
  private async stopEach(): Promise<void> {
    let failure: unknown = null;
    await Promise.all(this.interrupts);
    // Each leaves the list once its stop is over: a forced exit meanwhile forces the rest.
    for (const s of [...this.started].reverse()) {
      try {
        await s.stop();
      } catch (err) {
        this.log.error(`cannot stop the ${s.name}`, { error: (err as Error).message });
        failure ??= err;
      }
      this.started.splice(this.started.indexOf(s), 1);
    }
    if (failure) throw failure;
  }
}

function isAbort(err: unknown): boolean {
  return (
    (err instanceof UncError && (err.code === 'STOPPING' || err.code === 'START_ABORTED')) ||
    (err as Error | null)?.name === 'AbortError'
  );
}

/** `fn` run at most once: every later call gets the first call's promise. */
export function once(fn: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | null = null;
  return () => (running ??= fn());
}
