/**
 * Shared by the admission tests (admission-drop, admission-dedup, consensus/commit-drops-admission):
 * a verifier whose answers wait for the test, and the helpers that let submits settle and read
 * their results.
 */
import {
  decode,
  ed25519Verify,
  encode,
  envelopeFromBytes,
  type TxEnvelope,
  ValidationError,
} from '@unc/core';
import { AdmissionQueue, type AdmissionResult } from '../src/admission.js';
import { systemClock } from '../src/clock.js';
import { MempoolReactor } from '../src/consensus/mempool-reactor.js';
import { txBatchCodec } from '../src/consensus/wire.js';
import { Mempool } from '../src/mempool.js';
import {
  InThreadVerifier,
  type SignatureCheck,
  type SignatureVerifier,
  type VerifyLane,
} from '../src/verify-pool.js';

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

/**
 * A node's gossip path for the forwarding tests (costly-admission, mempool-attacks): a mempool
 * behind a real admission queue and reactor on the given state, and the batches it publishes
 * itself, as transaction hashes in hex.
 */
export function gossipNode(
  state: Parameters<Mempool['add']>[1],
  params: Parameters<Mempool['add']>[2],
  next: Parameters<Mempool['add']>[3],
) {
  const pool = new Mempool();
  const queue = new AdmissionQueue(new InThreadVerifier(), {
    cheapRefusal: (env, countPending) => pool.cheapRefusal(env, state, params, next, countPending),
    admit: (env) => pool.add(env, state, params, next, true),
  });
  const published: string[][] = [];
  const reactor = new MempoolReactor({
    clock: systemClock,
    admitTx: () => {
      throw new Error('unused: batches go through the admission queue');
    },
    admitTxs: (envs) => queue.submit(envs),
    publishBatch: (data) =>
      published.push(decode(txBatchCodec, data).map((b) => hexOf(envelopeFromBytes(b).hash))),
    connected: () => true,
  });
  return { pool, queue, reactor, published };
}

/** A gossip message of these transactions. */
export function batchOf(...envs: TxEnvelope[]): Uint8Array {
  return encode(
    txBatchCodec,
    envs.map((e) => e.bytes),
  );
}

export const hexOf = (b: Uint8Array) => Buffer.from(b).toString('hex');
