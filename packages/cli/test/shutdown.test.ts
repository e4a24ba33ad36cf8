/**
 * The stop sequence the long-running commands share (shutdown.ts), driven by the real SIGINT and
 * SIGTERM listeners it installs (process.emit calls them as a delivered signal would) with the
 * process's exit replaced by a recorder. The commands themselves, with real signals, are in
 * stop-signals.e2e.test.ts.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import fc from 'fast-check';
import { forcedExitCode, Shutdown } from '../src/shutdown.js';

interface Harness {
  shutdown: Shutdown;
  exits: number[];
  lines: string[];
  exited: Promise<number>;
}

const installed: Shutdown[] = [];
afterEach(() => {
  for (const s of installed.splice(0)) s.dispose();
});

function harness(): Harness {
  const exits: number[] = [];
  const lines: string[] = [];
  let onExit: (code: number) => void = () => {};
  const exited = new Promise<number>((resolve) => (onExit = resolve));
  const log = (level: string) => (msg: string) => lines.push(`${level} ${msg}`);
  const shutdown = new Shutdown({ info: log('info'), warn: log('warn'), error: log('error') }, (code) => {
    exits.push(code);
    onExit(code);
  }).install();
  installed.push(shutdown);
  return { shutdown, exits, lines, exited };
}

const signal = (name: NodeJS.Signals) => process.emit(name as 'SIGINT', name as 'SIGINT');
const tick = () => new Promise((r) => setImmediate(r));

/** A promise and the function that settles it: a step that ends when the test says so. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open = () => {};
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

describe('shutdown', () => {
  test('forced exit codes are 128 + the signal number', () => {
    assert.equal(forcedExitCode('SIGINT'), 130);
    assert.equal(forcedExitCode('SIGTERM'), 143);
  });

  test('a signal before anything started exits 0 at once', () => {
    const h = harness();
    signal('SIGTERM');
    assert.deepEqual(h.exits, [0]);
  });

  test('a signal during a step: the step ends, no later step starts, what started stops newest first, exit 0', async () => {
    const h = harness();
    const stopped: string[] = [];
    const g = gate();
    let laterStarted = false;
    const ready = h.shutdown.startUp(async () => {
      await h.shutdown.step(async () => {
        h.shutdown.add('a', async () => void stopped.push('a'));
      });
      await h.shutdown.step(async () => {
        h.shutdown.add('b', async () => void stopped.push('b'));
        await g.promise;
      });
      await h.shutdown.step(async () => {
        laterStarted = true;
      });
    });
    await tick();
    signal('SIGINT');
    await tick();
    assert.deepEqual(h.exits, [], 'no exit while the step is under way');
    assert.deepEqual(stopped, [], 'nothing stopped under a running step');
    g.open();
    assert.equal(await ready, false);
    assert.deepEqual(h.exits, [0]);
    assert.deepEqual(stopped, ['b', 'a']);
    assert.equal(laterStarted, false);
    assert.ok(h.lines.some((l) => l.includes('during start-up')));
  });

  test('a step that can be interrupted is, and its stop is waited for', async () => {
    const h = harness();
    const g = gate();
    let interrupted = false;
    let interruptDone = false;
    const ready = h.shutdown.startUp(async () => {
      await h.shutdown.step(
        async () => {
          await g.promise;
          throw new Error('the agent was stopped while it was starting');
        },
        async () => {
          interrupted = true;
          await tick();
          interruptDone = true;
          g.open();
        },
      );
    });
    await tick();
    signal('SIGTERM');
    assert.equal(interrupted, true, 'interrupted at the signal');
    assert.equal(await ready, false);
    assert.equal(interruptDone, true);
    assert.deepEqual(h.exits, [0]);
  });

  test('a start-up that fails on its own stops what started, then throws', async () => {
    const h = harness();
    const stopped: string[] = [];
    await assert.rejects(
      h.shutdown.startUp(async () => {
        await h.shutdown.step(async () => h.shutdown.add('node', async () => void stopped.push('node')));
        await h.shutdown.step(async () => {
          throw new Error('swtpm did not start');
        });
      }),
      /swtpm did not start/,
    );
    assert.deepEqual(stopped, ['node']);
    assert.deepEqual(h.exits, []);
  });

  test('once ready: the first signal stops and exits 0; a failed stop exits 1', async () => {
    for (const fails of [false, true]) {
      const h = harness();
      assert.equal(
        await h.shutdown.startUp(async () => {
          h.shutdown.add('miner', async () => {
            if (fails) throw new Error('cannot close');
          });
        }),
        true,
      );
      signal('SIGTERM');
      assert.equal(await h.exited, fails ? 1 : 0);
      h.shutdown.dispose();
    }
  });

  test('a second signal while stopping is answered; a third exits at once with 128 + its number, forcing what it can', async () => {
    for (const [name, code] of [
      ['SIGINT', 130],
      ['SIGTERM', 143],
    ] as const) {
      const h = harness();
      const hung = gate();
      const forced: string[] = [];
      await h.shutdown.startUp(async () => {
        h.shutdown.add(
          'software TPM',
          async () => {},
          () => forced.push('swtpm'),
        );
        h.shutdown.add('miner', () => hung.promise);
      });
      signal(name);
      await tick();
      assert.deepEqual(h.exits, []);
      signal(name);
      assert.deepEqual(h.exits, [], 'the second signal does not exit');
      assert.ok(h.lines.some((l) => l.startsWith('warn') && l.includes('still stopping')));
      signal(name);
      assert.deepEqual(h.exits, [code]);
      assert.deepEqual(forced, ['swtpm']);
      hung.open();
      h.shutdown.dispose();
    }
  });

  test('property: whatever step a signal lands in, every started thing is stopped once, newest first, and no step starts after it', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 8 }), fc.nat(), async (steps, at) => {
        const signalAt = at % steps;
        const h = harness();
        const stops: number[] = [];
        const begun: number[] = [];
        const ready = h.shutdown.startUp(async () => {
          for (let i = 0; i < steps; i++) {
            await h.shutdown.step(async () => {
              begun.push(i);
              h.shutdown.add(`step ${i}`, async () => void stops.push(i));
              if (i === signalAt) signal('SIGTERM');
              await tick();
            });
          }
        });
        assert.equal(await ready, false);
        assert.deepEqual(
          begun,
          Array.from({ length: signalAt + 1 }, (_, i) => i),
        );
        assert.deepEqual(
          stops,
          Array.from({ length: signalAt + 1 }, (_, i) => signalAt - i),
        );
        assert.deepEqual(h.exits, [0]);
        h.shutdown.dispose();
      }),
      { numRuns: 50 },
    );
  });
});
