/**
 * The provider's job queue with weighted tasks (a group of a batch's jobs takes the places of its
 * jobs): whatever the order of admissions and completions, the jobs admitted never pass
 * concurrency + maxQueued, no more than `concurrency` tasks run, and a batch is admitted exactly
 * when its jobs sent one by one would all have been.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { JobQueue, QueueFullError } from '../src/provider/queue.js';

describe('provider job queue', () => {
  test('weighted admission never passes the limits and matches admitting the jobs one by one', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 0, max: 6 }),
        fc.array(
          fc.oneof(
            fc.record({ admit: fc.integer({ min: 1, max: 5 }), key: fc.integer({ min: 0, max: 2 }) }),
            fc.nat(),
          ),
          {
            maxLength: 60,
          },
        ),
        async (concurrency, maxQueued, ops) => {
          const q = new JobQueue(concurrency, maxQueued);
          const running: (() => void)[] = [];
          let admitted = 0;
          for (const op of ops) {
            if (typeof op === 'number') {
              // Finish one running task, if any.
              const finish = running.splice(op % Math.max(1, running.length), 1)[0];
              finish?.();
              await new Promise((r) => setImmediate(r));
            } else {
              const fits = admitted + op.admit <= concurrency + maxQueued;
              try {
                const weight = op.admit;
                void q
                  .admit(
                    () =>
                      new Promise<void>((resolve) => {
                        running.push(() => {
                          admitted -= weight;
                          resolve();
                        });
                      }),
                    String(op.key),
                    weight,
                  )
                  .catch(() => undefined);
                assert.ok(fits, 'admitted past the limit');
                admitted += weight;
              } catch (err) {
                assert.ok(err instanceof QueueFullError);
                assert.ok(!fits, 'refused although it fits');
              }
            }
            assert.ok(q.running <= concurrency);
            assert.equal(q.running, running.length);
            assert.equal(q.running + q.queued, admitted);
          }
          while (running.length) {
            running.shift()!();
            await new Promise((r) => setImmediate(r));
          }
          assert.equal(q.running + q.queued, 0);
        },
      ),
      { numRuns: 150 },
    );
  });

  test('a task that takes its turn lets a waiting task run first and keeps its places', async () => {
    const q = new JobQueue(1, 8);
    const order: string[] = [];
    let stepTwo: () => void = () => undefined;
    const group = q.admit(
      async () => {
        order.push('a1');
        await new Promise<void>((r) => {
          stepTwo = r;
        });
        await q.turn('a');
        order.push('a2');
      },
      'a',
      4,
    );
    const alone = q.admit(async () => {
      order.push('b');
    }, 'b');
    assert.equal(q.running, 1);
    assert.equal(q.queued, 4);
    stepTwo();
    await Promise.all([group, alone]);
    assert.deepEqual(order, ['a1', 'b', 'a2']);
    // Every place is given back, and nothing runs or waits.
    assert.equal(q.running, 0);
    assert.equal(q.queued, 0);
    // With nobody waiting, taking a turn does not stop the task.
    await q.admit(async () => {
      await q.turn('c');
      assert.equal(q.running, 1);
    }, 'c');
  });

  test('a task taking its turn goes behind keys that started since it began', async () => {
    const q = new JobQueue(2, 8);
    const order: string[] = [];
    const gate = () => {
      let open: () => void = () => undefined;
      const p = new Promise<void>((r) => {
        open = r;
      });
      return { p, open };
    };
    const groupStep = gate();
    const firstB = gate();
    const group = q.admit(
      async () => {
        await groupStep.p;
        await q.turn('a');
        order.push('a resumes');
      },
      'a',
      4,
    );
    // b started after a's group began, and has another job waiting.
    const b1 = q.admit(async () => {
      await firstB.p;
    }, 'b');
    const b2 = q.admit(async () => {
      order.push('b2');
    }, 'b');
    groupStep.open();
    await new Promise((r) => setTimeout(r, 10));
    firstB.open();
    await Promise.all([group, b1, b2]);
    // Without the group's turn counting as a start it would resume first: its start is older.
    assert.deepEqual(order, ['b2', 'a resumes']);
  });
});
