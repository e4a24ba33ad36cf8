/**
 * A block that commits transactions still waiting in the admission queue (their gossip or a peer's
 * re-announcement arrived while the block was on its way) has them refused at once, with the
 * refusal admission would have given after the check (NONCE_USED), and their signature checks
 * still waiting for a worker are not made (admission.ts `dropTaken`, verify-pool.ts `cancel`).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  DEFAULT_PARAMS,
  envelopeFromBytes,
  envelopeSignatureCheck,
  keyId,
  type TxEnvelope,
  ValidationError,
  VerifiedSignatures,
} from '@unc/core';
import { AdmissionQueue, clockSlices } from '../src/admission.js';
import { systemClock } from '../src/clock.js';
import { Mempool } from '../src/mempool.js';
import {
  ANSWER_CANCELLED,
  packBatch,
  type SignatureVerifier,
  VerifyPool,
  verifyClaimed,
} from '../src/verify-pool.js';
import { code, HeldCancellingVerifier, settle } from './admission-fixtures.js';
import { devBlockOneTransfers } from './fixtures.js';

/** The dev chain after block one; `tx(from, nonce)` a transfer from dev key `from` (fixtures.ts). */
const { state, next, tx } = devBlockOneTransfers();

/** A queue on the dev state whose committed head has used the nonces in `taken` (sender → next nonce). */
function setup(verifier: SignatureVerifier) {
  const mempool = new Mempool();
  const used = new Map<string, bigint>();
  const takenRefusal = (env: TxEnvelope): ValidationError | null => {
    const nextNonce = used.get(keyId(env.sender));
    return nextNonce !== undefined && env.stx.tx.nonce < nextNonce
      ? new ValidationError('NONCE_USED', `nonce ${env.stx.tx.nonce} already used (next is ${nextNonce})`)
      : null;
  };
  const queue = new AdmissionQueue(
    verifier,
    {
      // The head as a commit left it: the screen and admission refuse a used nonce as the node does.
      cheapRefusal: (env, countPending) =>
        takenRefusal(env) ?? mempool.cheapRefusal(env, state, DEFAULT_PARAMS, next, countPending),
      takenRefusal,
      admit: (env) => {
        const refusal = takenRefusal(env);
        if (refusal) throw refusal;
        return mempool.add(env, state, DEFAULT_PARAMS, next, true);
      },
    },
    {},
    clockSlices(systemClock),
    new VerifiedSignatures(1_000),
  );
  /** A block committed `envs`: their senders' nonces move past them. */
  const commit = (envs: readonly TxEnvelope[]) => {
    for (const env of envs) {
      const id = keyId(env.sender);
      const after = env.stx.tx.nonce + 1n;
      if ((used.get(id) ?? 0n) < after) used.set(id, after);
    }
    return queue.dropTaken(new Set(envs.map((e) => keyId(e.sender))));
  };
  return { mempool, queue, commit };
}

describe('a committed block drops the queued admission checks of what it took', () => {
  test('a transaction the block took is refused NONCE_USED without its signature check; the rest is checked and admitted', async () => {
    const verifier = new HeldCancellingVerifier();
    const { queue, mempool, commit } = setup(verifier);
    const a = tx(1, 0n); // the block takes it
    const a1 = tx(1, 1n); // same sender, a nonce the block did not use
    const b = tx(2, 0n); // a sender the block did not touch
    const first = queue.submit([a, a1, b]);
    // A re-announced copy of `a` queued behind, waiting on the first check of the same bytes.
    const copy = queue.submit([envelopeFromBytes(Uint8Array.from(a.bytes))]);
    assert.equal(queue.checksSent, 3);
    assert.equal(commit([a]), 2, 'a and its copy');
    const [r1, r2] = await settle(verifier, [first, copy]);
    assert.deepEqual(r1!.map(code), ['NONCE_USED', 'admitted', 'admitted']);
    assert.deepEqual(r2!.map(code), ['NONCE_USED']);
    // Before: a's check was made, then admission refused it NONCE_USED (a wasted check).
    assert.equal(verifier.made, 2, 'a1 and b only');
    assert.equal(queue.checksWasted, 0);
    assert.deepEqual(queue.dropStats, { txs: 2, checksCancelled: 1 });
    assert.ok(!mempool.has(a.hash) && mempool.has(a1.hash) && mempool.has(b.hash));
  });

  test('a copy arriving after the drop is refused by the screen, and nothing waits on the cancelled check', async () => {
    const verifier = new HeldCancellingVerifier();
    const { queue, commit } = setup(verifier);
    const a = tx(1, 0n);
    const first = queue.submit([a]);
    commit([a]);
    const later = queue.submit([envelopeFromBytes(Uint8Array.from(a.bytes))]);
    const [r1, r2] = await settle(verifier, [first, later]);
    assert.deepEqual([code(r1![0]), code(r2![0])], ['NONCE_USED', 'NONCE_USED']);
    assert.equal(verifier.made, 0);
  });

  test('a check already answered is not undone: the drop only refuses sooner, and counts it wasted', async () => {
    const verifier = new HeldCancellingVerifier();
    const { queue, commit } = setup(verifier);
    const a = tx(1, 0n);
    const b = tx(2, 0n);
    // b's job heads the queue and is held (its answer not given), a's answer given: a waits
    // behind b, checked, when the block takes it.
    const held = queue.submit([b]);
    const first = queue.submit([a]);
    // Answer only the second call.
    verifier.answerAt(1);
    await new Promise((r) => setImmediate(r));
    assert.equal(commit([a]), 1);
    const [r1, r2] = await settle(verifier, [held, first]);
    assert.deepEqual([code(r1![0]), code(r2![0])], ['admitted', 'NONCE_USED']);
    assert.equal(queue.checksWasted, 1);
    assert.equal(queue.dropStats.checksCancelled, 0);
  });
});

describe('the verify pool does not make cancelled admission checks', () => {
  test('a worker (or the calling thread) that takes a cancelled check skips it', () => {
    const checks = [tx(1, 0n), tx(2, 0n), tx(3, 0n)].map(envelopeSignatureCheck);
    const batch = packBatch(1, checks);
    Atomics.store(batch.ok, 1, ANSWER_CANCELLED);
    const r = verifyClaimed(batch);
    assert.equal(r.checked, 2);
    assert.deepEqual([...batch.ok], [1, ANSWER_CANCELLED, 1]);
  });

  test('cancelled checks queued for a worker are not made; a batch all cancelled is answered without one', async () => {
    // One worker holding one admission batch: the next calls wait in the pool's own queue (the
    // main thread hands them out only when it reads an answer), where the cancel finds them.
    const pool = new VerifyPool({ threads: 1, depth: 1, admissionDepth: 1, batchSize: 4 });
    try {
      const checksOf = (from: number) => [0n, 1n, 2n].map((n) => envelopeSignatureCheck(tx(from, n)));
      const c1 = pool.verify(checksOf(1), 'admission');
      const c2 = pool.verify(checksOf(2), 'admission');
      const c3 = pool.verify(checksOf(3), 'admission');
      assert.equal(pool.cancel(c2, [1]), 1);
      assert.equal(pool.cancel(c3, [0, 1, 2]), 3);
      const [a1, a2, a3] = await Promise.all([c1, c2, c3]);
      assert.deepEqual(a1, [true, true, true]);
      assert.deepEqual(a2, [true, false, true]);
      assert.deepEqual(a3, [false, false, false]);
      assert.equal(pool.checksCancelled, 4);
      // A consensus call is never cancelled.
      const block = pool.verify(checksOf(4), 'consensus');
      assert.equal(pool.cancel(block, [0]), 0);
      assert.deepEqual(await block, [true, true, true]);
    } finally {
      await pool.close();
    }
  });
});
