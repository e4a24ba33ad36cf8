/**
 * Admission checks each signature once: a copy of a transaction whose very bytes are still being
 * checked waits for that answer, and a check that passed here before (admission or a block's
 * pre-check, which share the memory of passes) is not made again. Only the exact bytes count: a
 * copy with another signature on the same body (the same hash) is checked as always.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  DEFAULT_PARAMS,
  ed25519CheckKey,
  ed25519Verify,
  envelopeFromBytes,
  envelopeSignatureCheck,
  type TxEnvelope,
  VerifiedSignatures,
} from '@unc/core';
import {
  AdmissionQueue,
  BUSY_RETRY_AFTER_MS,
  clockSlices,
  deferWhileBehind,
  isRetryableRefusal,
  SignatureCheckBusy,
} from '../src/admission.js';
import { createApi } from '../src/api.js';
import { systemClock } from '../src/clock.js';
import { BlockPreverifier } from '../src/consensus/block-preverify.js';
import { silentLogger } from '../src/log.js';
import { Mempool } from '../src/mempool.js';
import { type SignatureCheck, type SignatureVerifier, VerifyPoolBusy } from '../src/verify-pool.js';
import { code, settle } from './admission-fixtures.js';
import { devBlockOneTransfers, forged } from './fixtures.js';

/** The dev chain after block one; `tx(from, nonce)` a transfer from dev key `from` (fixtures.ts). */
const { state, next, tx } = devBlockOneTransfers();

/** Answers each call only when the test says so, counting every check it is given. */
class GatedVerifier implements SignatureVerifier {
  readonly threads = 1;
  readonly checks: SignatureCheck[] = [];
  private readonly gates: (() => void)[] = [];

  verify(checks: readonly SignatureCheck[]): Promise<boolean[]> {
    this.checks.push(...checks);
    const answers = checks.map((c) => ed25519Verify(c.publicKey, c.message, c.signature));
    return new Promise((resolve) => this.gates.push(() => resolve(answers)));
  }

  /** Answers every call made so far, in order. */
  answerAll(): void {
    for (const open of this.gates.splice(0)) open();
  }

  async close(): Promise<void> {}
}

function setup(
  verifier: SignatureVerifier,
  passed: VerifiedSignatures | null = new VerifiedSignatures(1_000),
) {
  const mempool = new Mempool();
  const queue = new AdmissionQueue(
    verifier,
    {
      cheapRefusal: (env, countPending) =>
        mempool.cheapRefusal(env, state, DEFAULT_PARAMS, next, countPending),
      admit: (env) => mempool.add(env, state, DEFAULT_PARAMS, next, true),
    },
    {},
    clockSlices(systemClock),
    passed,
  );
  return { mempool, queue, passed };
}

describe('admission checks each signature once', () => {
  test('a copy of the same bytes arriving while the first is checked waits for that answer', async () => {
    const verifier = new GatedVerifier();
    const { queue, mempool } = setup(verifier);
    const a = tx(1, 0n);
    const b = tx(2, 0n);
    // The gossip of a batch, then a peer's re-announcement of part of it, before any answer.
    const first = queue.submit([a, b]);
    const again = queue.submit([envelopeFromBytes(Uint8Array.from(a.bytes))]);
    const [r1, r2] = await settle(verifier, [first, again]);
    assert.deepEqual(r1!.map(code), ['admitted', 'admitted']);
    assert.deepEqual(r2!.map(code), ['DUPLICATE']);
    assert.equal(verifier.checks.length, 2, 'a, b: the copy of a is not checked again');
    assert.equal(queue.checksSent, 2);
    assert.equal(mempool.size, 2);
  });

  test('a copy of bytes whose signature failed is refused too, on the first answer', async () => {
    const verifier = new GatedVerifier();
    const { queue, mempool } = setup(verifier);
    const bad = forged(tx(1, 0n));
    const first = queue.submit([bad]);
    const again = queue.submit([envelopeFromBytes(Uint8Array.from(bad.bytes))]);
    const [r1, r2] = await settle(verifier, [first, again]);
    assert.deepEqual(r1!.map(code), ['BAD_SIGNATURE']);
    assert.deepEqual(r2!.map(code), ['BAD_SIGNATURE']);
    assert.equal(verifier.checks.length, 1);
    assert.equal(mempool.size, 0);
  });

  test('another signature on the same body is checked itself: a forged copy is refused, a valid one admitted', async () => {
    // Forged first, valid copy while the forged one is in flight: the valid one must not take the
    // forged one's answer (same hash), nor the forged one a valid one's.
    for (const order of ['forged first', 'valid first'] as const) {
      const verifier = new GatedVerifier();
      const { queue, mempool, passed } = setup(verifier);
      const good = tx(3, 0n);
      const bad = forged(good);
      const [x, y] = order === 'forged first' ? [bad, good] : [good, bad];
      const [r1, r2] = await settle(verifier, [queue.submit([x]), queue.submit([y])]);
      const byBytes = new Map([
        [Buffer.from(x.bytes).toString('hex'), code(r1![0])],
        [Buffer.from(y.bytes).toString('hex'), code(r2![0])],
      ]);
      assert.equal(byBytes.get(Buffer.from(good.bytes).toString('hex')), 'admitted', order);
      // The forged copy: refused for its signature if checked first, as a duplicate of the pending
      // valid one otherwise; never admitted, and never remembered as passed.
      const forgedCode = byBytes.get(Buffer.from(bad.bytes).toString('hex'));
      assert.ok(forgedCode === 'BAD_SIGNATURE' || forgedCode === 'DUPLICATE', `${order}: ${forgedCode}`);
      assert.equal(verifier.checks.length, 2, order);
      const c = envelopeSignatureCheck(bad);
      assert.equal(passed!.isVerified(c.publicKey, c.message, c.signature), false);
      assert.equal(mempool.size, 1);
      assert.ok(mempool.isVerified(good));
      assert.ok(!mempool.isVerified(bad));
    }
  });

  test('a forged copy of a transaction whose valid copy passed is checked and refused', async () => {
    const verifier = new GatedVerifier();
    const { queue, passed } = setup(verifier);
    const good = tx(4, 0n);
    const c = envelopeSignatureCheck(good);
    passed!.add(c);
    // Not in this mempool (say it passed in a block's pre-check): the forged copy has the same
    // hash, so only a key over the exact bytes keeps it from taking the valid one's pass.
    const [r] = await settle(verifier, [queue.submit([forged(good)])]);
    assert.deepEqual(r!.map(code), ['BAD_SIGNATURE']);
    assert.equal(verifier.checks.length, 1);
  });

  test('a check that passed here before (a block pre-check) is not sent again; admission passes go to the shared memory', async () => {
    const verifier = new GatedVerifier();
    const passed = new VerifiedSignatures(1_000);
    const pre = new BlockPreverifier(verifier, { passed });
    const { queue, mempool } = setup(verifier, passed);
    const seen = tx(5, 0n);
    const fresh = tx(6, 0n);
    const s = envelopeSignatureCheck(seen);
    passed.add(s);
    const [r] = await settle(verifier, [queue.submit([seen, fresh])]);
    assert.deepEqual(r!.map(code), ['admitted', 'admitted']);
    assert.equal(verifier.checks.length, 1, 'only the transaction not checked before');
    assert.ok(mempool.isVerified(seen));
    // What admission found valid, the block pre-check sharing the memory skips.
    const f = envelopeSignatureCheck(fresh);
    assert.ok(pre.hasPassed(ed25519CheckKey(f.publicKey, f.message, f.signature)));
  });

  test('a copy of a check whose call the pool refused (busy) is answered busy, not checked on this thread', async () => {
    let calls = 0;
    const inThread: SignatureCheck[] = [];
    const verifier: SignatureVerifier = {
      threads: 1,
      verify(checks) {
        inThread.push(...checks);
        // The first call: the admission lane is full.
        if (calls++ === 0) return Promise.reject(new VerifyPoolBusy('admission', 1));
        return Promise.resolve(checks.map((c) => ed25519Verify(c.publicKey, c.message, c.signature)));
      },
      async close() {},
    };
    const { queue, mempool } = setup(verifier);
    const a = tx(8, 0n);
    const first = queue.submit([a]);
    const again = queue.submit([envelopeFromBytes(Uint8Array.from(a.bytes)), tx(9, 0n)]);
    await assert.rejects(first, (e: Error & { code?: string }) => e.code === 'BUSY');
    const r = await again;
    assert.deepEqual(r.map(code), ['BUSY', 'admitted']);
    assert.equal(inThread.length, 2, 'the copy was sent nowhere');
    assert.equal(mempool.size, 1);
    // "Busy, retry" like the first call's refusal, not a verdict: it says when, and a node behind
    // its peers does not turn it into a deferred state refusal.
    const busy = r[0] as SignatureCheckBusy;
    assert.ok(busy instanceof SignatureCheckBusy);
    assert.equal(busy.retryAfterMs, BUSY_RETRY_AFTER_MS);
    assert.ok(isRetryableRefusal(busy));
    assert.equal(deferWhileBehind(busy, 1_000), busy);
  });

  test('over RPC, a copy answered busy is -32005 BUSY with retryAfterMs (one) and an entry with retryAfterMs (many)', async () => {
    const a = tx(10, 0n);
    const hex = Buffer.from(a.bytes).toString('hex');
    const api = createApi({
      chain: {},
      mempool: { size: 0, bytes: 0, has: () => false, dropped: () => null },
      validator: null,
      network: null,
      driver: undefined,
      metrics: { render: () => '' },
      logger: silentLogger,
      submit: () => ({ replaced: false }),
      submitMany: async (envs: readonly TxEnvelope[]) => envs.map(() => new SignatureCheckBusy()),
      recentRejection: () => null,
      watchTx: () => () => {},
      watchBlocks: () => () => {},
    } as never);
    await assert.rejects(
      Promise.resolve(api.methods.unc_sendTransaction!({ tx: hex }, { transport: 'http' })),
      (e: { code?: number; data?: { reason?: string; retryAfterMs?: number } }) =>
        e.code === -32005 && e.data?.reason === 'BUSY' && e.data.retryAfterMs === BUSY_RETRY_AFTER_MS,
    );
    const many = (await api.methods.unc_sendTransactions!({ txs: [hex] }, { transport: 'http' })) as {
      error?: { reason: string; retryAfterMs?: number };
    }[];
    assert.equal(many[0]!.error?.reason, 'BUSY');
    assert.equal(many[0]!.error?.retryAfterMs, BUSY_RETRY_AFTER_MS);
  });

  test('without a shared memory, only copies in flight are folded', async () => {
    const verifier = new GatedVerifier();
    const { queue } = setup(verifier, null);
    const a = tx(7, 0n);
    const [r1] = await settle(verifier, [queue.submit([a])]);
    assert.deepEqual(r1!.map(code), ['admitted']);
    const [r2] = await settle(verifier, [queue.submit([tx(7, 1n)])]);
    assert.deepEqual(r2!.map(code), ['admitted']);
    assert.equal(verifier.checks.length, 2);
  });
});
