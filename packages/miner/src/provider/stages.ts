/**
 * Where one job's time goes through the provider (bench:jobs --stages): a clock that cuts the
 * request's path into named stages. The job process stamps its part (message received, work done)
 * with the same clock: CLOCK_MONOTONIC (process.hrtime), which every process of the machine shares,
 * so the transfer to it and back is measured, not guessed.
 */

import { availableParallelism } from 'node:os';

/** Milliseconds on the machine's monotonic clock, comparable between its processes. */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/**
 * What a job process stamped on its answer: when its request arrived and when its work ended, and
 * the CPU time its process (all its threads) spent in between.
 */
export interface JobProcessStamps {
  received: number;
  done: number;
  cpuMs: number;
}

/** CPU ms this process (all its threads) has used so far. */
export function processCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** The times of one request to a job process, as the sandbox and the job process saw them. */
export interface SandboxTiming {
  /** The provider handed the request to the channel. */
  sent?: number;
  /** The job process's own stamps (absent if it sent none, or nonsense). */
  job?: JobProcessStamps;
  /** The answer was decoded in the provider. */
  answered?: number;
}

/** One job's stages in order, each with its duration in ms. */
export type JobStages = [stage: string, ms: number][];

/** A job's way through the provider: when its handler began (monotonicMs) and its stages. */
export interface JobTiming {
  began: number;
  stages: JobStages;
  /** CPU ms of the job process during the run (its own stamp), when it sent one. */
  jobCpuMs: number | null;
}

export class StageClock {
  readonly stages: JobStages = [];
  /** CPU ms of the job process during the run (its own stamp), when it sent one. */
  jobCpuMs: number | null = null;
  private last: number;

  constructor(readonly began = monotonicMs()) {
    this.last = began;
  }

  /** Ends the stage `name` at `at` (now by default); the next stage starts there. */
  mark(name: string, at = monotonicMs()): void {
    this.stages.push([name, at - this.last]);
    this.last = at;
  }

  /** The stages of a request to a job process: to it, its work, back (or all three as one). */
  markSandbox(t: SandboxTiming, wait: string, work: string): void {
    if (t.sent === undefined || t.answered === undefined) return;
    this.mark(wait, t.sent);
    const j = t.job;
    if (j && t.sent <= j.received && j.received <= j.done && j.done <= t.answered) {
      this.mark('to job process', j.received);
      this.mark(work, j.done);
      // The job process runs the renter's model and its word is checked: a CPU time below zero,
      // or above what all the machine's cores give in the run's time (a millisecond of rounding
      // allowed), was taken as it came and moved the CPU ratios bench:jobs reports.
      if (j.cpuMs >= 0 && j.cpuMs <= (j.done - j.received) * availableParallelism() + 1)
        this.jobCpuMs = j.cpuMs;
      this.mark('from job process', t.answered);
    } else this.mark(`${work} (job process, with transfers)`, t.answered);
  }
}
