import assert from 'node:assert/strict';
import { test } from 'node:test';
import { every, sleep } from '../../src/clock.js';
import { VirtualClock } from '../../src/sim/virtual-clock.js';

test('timers fire in time order, ties in scheduling order, cancelled ones never; time jumps', async () => {
  const clock = new VirtualClock(1_000);
  const seen: string[] = [];
  clock.schedule(30, () => seen.push(`c@${clock.now()}`));
  clock.schedule(10, () => seen.push(`a@${clock.now()}`));
  clock.schedule(10, () => seen.push(`b@${clock.now()}`));
  const cancel = clock.schedule(20, () => seen.push('cancelled'));
  cancel();
  // Fractions round up to whole milliseconds, like Date.now().
  clock.schedule(0.2, () => seen.push(`d@${clock.now()}`));
  await clock.run(1_025);
  assert.deepEqual(seen, ['d@1001', 'a@1010', 'b@1010']);
  assert.equal(clock.now(), 1_025);
  await clock.run(2_000);
  assert.deepEqual(seen.slice(3), ['c@1030']);
});

test('promise chains started by a timer settle before the next timer fires', async () => {
  const clock = new VirtualClock(0);
  const seen: string[] = [];
  clock.schedule(5, () => {
    void (async () => {
      await Promise.resolve();
      await sleep(clock, 10);
      seen.push(`slept@${clock.now()}`);
      await Promise.resolve();
      seen.push('after');
    })();
  });
  clock.schedule(15, () => seen.push(`t15@${clock.now()}`));
  await clock.run(100);
  // The sleep was scheduled at 5 for 15, after the timer already due at 15.
  assert.deepEqual(seen, ['t15@15', 'slept@15', 'after']);
});

test('every() repeats until cancelled; run() stops when asked', async () => {
  const clock = new VirtualClock(0);
  let n = 0;
  const stop = every(clock, 100, () => n++);
  await clock.run(1_000, () => n >= 3);
  assert.equal(n, 3);
  assert.equal(clock.now(), 300);
  stop();
  await clock.run(5_000);
  assert.equal(n, 3);
});
