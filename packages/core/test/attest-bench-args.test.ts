/**
 * bench:attest's command line: a bad --rounds or --modes is refused before the bench starts (it
 * runs for minutes), with a message that names the option; and a short run goes through every
 * attestation profile.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';

const script = new URL('../bench/attest.js', import.meta.url).pathname;

/** The bench run with `args`; a bench that started instead of refusing them is stopped (status null). */
function run(args: string[]) {
  return spawnSync(process.execPath, [script, ...args], { encoding: 'utf8', timeout: 60_000 });
}

describe('bench:attest command line', () => {
  for (const [args, message] of [
    [['--rounds'], /--rounds needs a value/],
    [['--modes'], /--modes needs a value/],
    [['--modes', '--rounds', '2'], /--modes needs a value/],
    [['--rounds', '0'], /--rounds must be a positive integer, got "0"/],
    [['--rounds', '1.5'], /--rounds must be a positive integer, got "1.5"/],
    [['--modes', 'optimistic,fast'], /--modes: unknown mode "fast"/],
    [['--modes', ''], /--modes: unknown mode ""/],
    [
      ['--pool-threads', '0', '--rounds', '2'],
      /--rounds shapes the verify-pool runs, which --pool-threads 0/,
    ],
    [
      ['--stream', '--modes', 'node'],
      /--modes shapes the verify-pool runs, which --pool-threads 0 and --stream/,
    ],
  ] as [string[], RegExp][]) {
    test(`${args.join(' ') || '(empty)'} is refused at once`, () => {
      const r = run(args);
      assert.notEqual(r.status, null, 'it ran the bench instead of refusing its command line');
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, message);
    });
  }
});

test('a short bench:attest run goes through every attestation profile', () => {
  // Its trust must list the model ids the verifiers read from the fixtures: the NVIDIA sample's is
  // its board, `gh100-1010-0200-882`, since audit audchip C1, and the bench listed the old "GH100",
  // so it stopped at ATTEST_UNKNOWN_MODEL (review revchip). Seconds: raw rates at 0.05 s, one block.
  const r = run(['--seconds', '0.05', '--chips', '10', '--blocks', '1', '--pool-threads', '0']);
  assert.equal(r.status, 0, r.stderr.slice(-2000));
  for (const profile of ['tpm2', 'nvidia-spdm', 'rsa2048-allowlist', 'dev-soft'])
    assert.match(r.stdout, new RegExp(`profiles: ${profile} done|   ${profile} \\(evidence signed`));
});
