import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { ed25519PublicKey, ed25519Sign, ed25519Verify, sha256, utf8 } from '@unc/core';
import fc from 'fast-check';
import {
  packBatch,
  type SignatureCheck,
  unpackBatch,
  VerifyPool,
  VerifyPoolBusy,
} from '../src/verify-pool.js';

const seed = sha256(utf8('verify pool test key'));
const publicKey = ed25519PublicKey(seed);

function check(i: number, valid: boolean): SignatureCheck {
  const message = utf8(`message ${i}`);
  const signature = ed25519Sign(seed, message);
  if (!valid) signature[i % 64] ^= 1;
  return { publicKey, message, signature };
}

describe('VerifyPool', () => {
  const pool = new VerifyPool({ threads: 2, batchSize: 16 });
  after(() => pool.close());

  test('answers exactly what ed25519Verify answers, in order, across batches and threads', async () => {
    const checks = Array.from({ length: 100 }, (_, i) => check(i, i % 7 !== 3));
    const got = await pool.verify(checks);
    assert.deepEqual(
      got,
      checks.map((c) => ed25519Verify(c.publicKey, c.message, c.signature)),
    );
    assert.equal(got.filter((x) => !x).length, 14);
    assert.equal(pool.queued('admission'), 0);
  });

  test("a call smaller than a batch is still split over every worker (a block's answers use every core)", async () => {
    const wide = new VerifyPool({ threads: 2, batchSize: 128 });
    try {
      const checks = Array.from({ length: 40 }, (_, i) => check(i, true));
      const answer = wide.verify(checks, 'consensus');
      // Dispatch is synchronous: both workers hold a part of the call before it returns.
      const slots = (wide as unknown as { slots: { inFlight: { chunk: { checks: unknown[] } }[] }[] }).slots;
      assert.deepEqual(
        slots.map((s) => s.inFlight.map((b) => b.chunk.checks.length)),
        [[20], [20]],
      );
      assert.deepEqual(await answer, Array(40).fill(true));
    } finally {
      await wide.close();
    }
  });

  test('a worker is handed its next batch before it answers the first (it never waits on the main thread)', async () => {
    const one = new VerifyPool({ threads: 1, batchSize: 4, depth: 2 });
    try {
      const checks = Array.from({ length: 12 }, (_, i) => check(i, i !== 5));
      const answer = one.verify(checks);
      const slot = (one as unknown as { slots: { inFlight: { chunk: { checks: unknown[] } }[] }[] })
        .slots[0]!;
      assert.deepEqual(
        slot.inFlight.map((b) => b.chunk.checks.length),
        [4, 4],
      );
      assert.deepEqual(
        await answer,
        checks.map((_, i) => i !== 5),
      );
      assert.equal(slot.inFlight.length, 0);
    } finally {
      await one.close();
    }
  });

  test('a worker that dies holding several batches loses none of them, and order is kept', async () => {
    const one = new VerifyPool({ threads: 1, batchSize: 5, depth: 3 });
    try {
      const checks = Array.from({ length: 30 }, (_, i) => check(i, i % 4 !== 1));
      const pending = one.verify(checks);
      await (
        one as unknown as { slots: { worker: { terminate(): Promise<number> } }[] }
      ).slots[0]!.worker.terminate();
      assert.deepEqual(
        await pending,
        checks.map((c) => ed25519Verify(c.publicKey, c.message, c.signature)),
      );
      assert.equal(one.queued('admission'), 0);
    } finally {
      await one.close();
    }
  });

  test('a depth or batch size that could never dispatch anything is refused when the pool is made, not left to hang every call', () => {
    for (const bad of [{ depth: 0 }, { depth: 1.5 }, { batchSize: 0 }, { threads: -1 }]) {
      assert.throws(() => new VerifyPool({ threads: 1, ...bad }), /verify pool/, JSON.stringify(bad));
    }
  });

  test('an option given as undefined (a config that leaves it out) takes its default', {
    timeout: 20_000,
  }, async () => {
    const one = new VerifyPool({ threads: 1, depth: undefined, batchSize: undefined });
    try {
      const checks = Array.from({ length: 6 }, (_, i) => check(i, i !== 2));
      assert.deepEqual(
        await one.verify(checks),
        checks.map((_, i) => i !== 2),
      );
    } finally {
      await one.close();
    }
  });

  test('a key, message or signature that is a view into a larger buffer crosses intact', async () => {
    const c = check(1, true);
    const big = new Uint8Array(1000);
    big.set(c.signature, 500);
    const [ok] = await pool.verify([{ ...c, signature: big.subarray(500, 564) }]);
    assert.equal(ok, true);
  });

  test('property: the pool never disagrees with the main thread (malformed input included)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            i: fc.nat(1000),
            valid: fc.boolean(),
            short: fc.boolean(),
          }),
          { minLength: 1, maxLength: 40 },
        ),
        async (specs) => {
          const checks = specs.map(({ i, valid, short }) => {
            const c = check(i, valid);
            return short ? { ...c, signature: c.signature.subarray(0, 63) } : c;
          });
          const got = await pool.verify(checks, 'consensus');
          assert.deepEqual(
            got,
            checks.map((c) => ed25519Verify(c.publicKey, c.message, c.signature)),
          );
        },
      ),
      { numRuns: 30 },
    );
  });

  test('a lane that cannot take a whole call refuses it at once, queueing nothing', async () => {
    const small = new VerifyPool({ threads: 1, batchSize: 8, maxQueued: { consensus: 100, admission: 10 } });
    try {
      const first = small.verify(Array.from({ length: 8 }, (_, i) => check(i, true)));
      await assert.rejects(
        small.verify(Array.from({ length: 3 }, (_, i) => check(i, true))),
        (err: unknown) => err instanceof VerifyPoolBusy && err.lane === 'admission' && err.limit === 10,
      );
      assert.equal(small.queued('admission'), 8);
      // The consensus lane has its own bound: admission traffic cannot starve it.
      assert.deepEqual(await small.verify([check(1, true)], 'consensus'), [true]);
      assert.equal((await first).length, 8);
      assert.equal(small.queued('admission'), 0);
    } finally {
      await small.close();
    }
  });

  test('consensus checks are served before admission checks already waiting', async () => {
    const one = new VerifyPool({ threads: 1, batchSize: 4 });
    try {
      const order: string[] = [];
      const admission = one
        .verify(
          Array.from({ length: 40 }, (_, i) => check(i, true)),
          'admission',
        )
        .then(() => order.push('admission'));
      const consensus = one.verify([check(99, true)], 'consensus').then(() => order.push('consensus'));
      await Promise.all([admission, consensus]);
      assert.deepEqual(order, ['consensus', 'admission']);
    } finally {
      await one.close();
    }
  });

  test('a worker that dies does not lose its batch', async () => {
    const one = new VerifyPool({ threads: 1, batchSize: 50 });
    try {
      const pending = one.verify(Array.from({ length: 50 }, (_, i) => check(i, i !== 7)));
      // Kill the only worker while its batch is in flight.
      await (
        one as unknown as { slots: { worker: { terminate(): Promise<number> } }[] }
      ).slots[0]!.worker.terminate();
      const got = await pending;
      assert.equal(got.length, 50);
      assert.equal(got.filter((x) => !x).length, 1);
      assert.equal(got[7], false);
      assert.equal(one.threads, 1);
      assert.deepEqual(await one.verify([check(3, true)]), [true]);
    } finally {
      await one.close();
    }
  });

  test('a call split over two workers keeps its order when one of them dies mid-call', async () => {
    const two = new VerifyPool({ threads: 2, batchSize: 128 });
    try {
      const checks = Array.from({ length: 60 }, (_, i) => check(i, i % 11 !== 4));
      const pending = two.verify(checks, 'consensus');
      // The second half is on the second worker: it dies with it, and is checked on this thread.
      await (
        two as unknown as { slots: { worker: { terminate(): Promise<number> } }[] }
      ).slots[1]!.worker.terminate();
      assert.deepEqual(
        await pending,
        checks.map((c) => ed25519Verify(c.publicKey, c.message, c.signature)),
      );
      assert.equal(two.queued('consensus'), 0);
    } finally {
      await two.close();
    }
  });

  test('without threads it checks on the calling thread', async () => {
    const inline = new VerifyPool({ threads: 0 });
    assert.deepEqual(await inline.verify([check(1, true), check(2, false)]), [true, false]);
    await inline.close();
  });

  test('pack and unpack are inverse', () => {
    const checks = [
      check(1, true),
      check(2, false),
      { publicKey, message: new Uint8Array(0), signature: new Uint8Array(64) },
    ];
    const back = unpackBatch(packBatch(5, checks));
    assert.deepEqual(
      back.map((c) => [Buffer.from(c.publicKey), Buffer.from(c.message), Buffer.from(c.signature)]),
      checks.map((c) => [Buffer.from(c.publicKey), Buffer.from(c.message), Buffer.from(c.signature)]),
    );
  });
});
