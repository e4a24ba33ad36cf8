import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { checkBenchArgs } from '../bench/bench-args.js';

const spec = { valued: ['seconds', 'trace'], flags: ['skip-single'] };

describe('bench command lines', () => {
  test('known options run; help is help; anything else is refused before the bench starts', () => {
    assert.deepEqual(checkBenchArgs([], spec), { kind: 'run' });
    assert.deepEqual(checkBenchArgs(['--seconds', '10', '--skip-single', '--trace', 'f'], spec), {
      kind: 'run',
    });
    assert.deepEqual(checkBenchArgs(['--help'], spec), { kind: 'help' });
    assert.deepEqual(checkBenchArgs(['--seconds', '5', '-h'], spec), { kind: 'help' });
    assert.deepEqual(checkBenchArgs(['--second', '10'], spec), {
      kind: 'error',
      message: 'unknown option --second',
    });
    assert.deepEqual(checkBenchArgs(['--seconds'], spec), {
      kind: 'error',
      message: '--seconds needs a value',
    });
    assert.deepEqual(checkBenchArgs(['--seconds', '--skip-single'], spec), {
      kind: 'error',
      message: '--seconds needs a value',
    });
    assert.deepEqual(checkBenchArgs(['10'], spec), { kind: 'error', message: 'unexpected argument "10"' });
  });

  // Both ran a whole testnet for `--help` before: these would time out rather than exit at once.
  for (const bench of ['consensus', 'tps'])
    test(`bench:${bench} prints its usage for --help and refuses an unknown option`, () => {
      const script = new URL(`../bench/${bench}.js`, import.meta.url).pathname;
      const help = spawnSync(process.execPath, [script, '--help'], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(help.status, 0, help.stderr);
      assert.match(help.stdout, new RegExp(`usage: npm run bench:${bench}`));
      const bad = spawnSync(process.execPath, [script, '--bogus'], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(bad.status, 2, bad.stderr);
      assert.match(bad.stderr, /unknown option --bogus/);
    });
});
