/**
 * When each stage of one height happened on this node, in ms since the height started here: the
 * proposal built or received, rebuilt from the mempool (and fetched), pre-checked, executed, the
 * two votes, the decision, the commit and the write. Logged once per height at debug level (one
 * line per block, `height stages`), for finding which stage makes a height run past the block
 * interval; it decides nothing.
 */

import type { LogFields } from '../log.js';

/**
 * The most stages one height keeps. Stage names carry the round of a peer's proposal (`arrived@r7`),
 * and any validator may sign proposals for any round of the height, so without a bound a peer could
 * grow one height's trace (and its log line) without end. An honest height has about 15.
 */
export const MAX_TRACE_STAGES = 64;

export class HeightTrace {
  private readonly marks = new Map<string, number>();
  private readonly details: LogFields = {};
  /** Stages not kept once the bound was reached (logged as `dropped`). */
  private dropped = 0;

  constructor(
    readonly height: bigint,
    /** This node's clock when the height started here. */
    readonly startedAt: number,
  ) {}

  /** The first time `stage` happened at this height (later ones are not kept), with details. */
  mark(stage: string, now: number, fields?: LogFields): void {
    if (this.marks.has(stage)) return;
    if (this.marks.size >= MAX_TRACE_STAGES) {
      this.dropped++;
      return;
    }
    this.marks.set(stage, now - this.startedAt);
    if (fields) for (const [k, v] of Object.entries(fields)) this.details[`${stage}.${k}`] = v;
  }

  /** Milliseconds from the height's start to `stage`, if it happened. */
  at(stage: string): number | undefined {
    return this.marks.get(stage);
  }

  /** The stages in the order they happened, then their details: one log line's fields. */
  fields(): LogFields {
    const out: LogFields = { height: this.height };
    for (const [stage, ms] of [...this.marks].sort((a, b) => a[1] - b[1])) out[stage] = ms;
    return { ...out, ...this.details, ...(this.dropped > 0 ? { dropped: this.dropped } : {}) };
  }
}
