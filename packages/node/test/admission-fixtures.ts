/**
 * Shared by the admission tests (admission-drop, admission-dedup, consensus/commit-drops-admission):
 * a verifier whose answers wait for the test, and the helpers that let submits settle and read
 * their results.
 */
import { ed25519Verify, ValidationError } from '@unc/core';
import type { AdmissionResult } from '../src/admission.js';
import type { SignatureCheck, SignatureVerifier, VerifyLane } from '../src/verify-pool.js';

/**
 * Checks in-thread, but each call waits until `answerAll` (a queue behind busy workers); a cancelled
 * check is not made (answered false), like the pool's. Counts the checks it made. With
 * `consensusAtOnce`, a block's checks (the consensus lane) are answered at once and not counted.
 */
export class HeldCancellingVerifier implements SignatureVerifier {
  readonly threads = 1;
  /** Checks made (held calls only). */
  made = 0;
  private readonly held: { answer: Promise<boolean[]>; cancelled: Set<number>; open: () => void }[] = [];

  constructor(private readonly opts: { consensusAtOnce?: boolean } = {}) {}

  verify(checks: readonly SignatureCheck[], lane: VerifyLane = 'admission'): Promise<boolean[]> {
    if (this.opts.consensusAtOnce && lane === 'consensus')
      return Promise.resolve(checks.map((c) => ed25519Verify(c.publicKey, c.message, c.signature)));
    const cancelled = new Set<number>();
    let open: () => void = () => {};
    const answer = new Promise<boolean[]>((resolve) => {
      open = () =>
        resolve(
          checks.map((c, k) => {
            if (cancelled.has(k)) return false;
            this.made++;
            return ed25519Verify(c.publicKey, c.message, c.signature);
          }),
        );
    });
    this.held.push({ answer, cancelled, open });
    return answer;
  }

  cancel(answer: Promise<boolean[]>, positions: readonly number[]): number {
    const call = this.held.find((c) => c.answer === answer);
    if (!call) return 0;
    for (const p of positions) call.cancelled.add(p);
    return positions.length;
  }

  /** Answers only the held call at `position` (0 the oldest), ahead of those before it. */
  answerAt(position: number): void {
    this.held.splice(position, 1)[0]!.open();
  }

  /** Answers every call held so far, in order. */
  answerAll(): void {
    for (const c of this.held.splice(0)) c.open();
  }

  async close(): Promise<void> {}
}

/** Lets the submits settle while the verifier answers whatever it holds. */
export async function settle<T>(verifier: { answerAll(): void }, calls: Promise<T>[]): Promise<T[]> {
  const all = Promise.all(calls);
  for (let i = 0; i < 50; i++) {
    verifier.answerAll();
    await new Promise((r) => setImmediate(r));
  }
  return all;
}

/** A submit's result as its refusal code, or 'admitted'. */
export function code(r: AdmissionResult | undefined): string {
  return r instanceof ValidationError ? r.code : 'admitted';
}
