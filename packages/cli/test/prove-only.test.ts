/**
 * `--max-age`, `--genesis` and `--trusted-checkpoint` bound and anchor the light client's check:
 * without `--prove` nothing is checked, and they were silently ignored (a user who passed
 * `--max-age 60` took a node's answer as no older than a minute). Each command that has them now
 * refuses them without `--prove` (PROVE_REQUIRED) before asking any node: the node given here is
 * unreachable, so a command that went on would fail otherwise.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { runUnc, tempHome } from './helpers.js';

const home = tempHome();
after(() => home.cleanup());
const nowhere = ['--node', 'http://127.0.0.1:9', '--home', home.dir];
const lease = ['--lease', 'ab'.repeat(32), '--from', 'dev3'];

test('a prove-only option without --prove is refused, coded, for every command that has it', async () => {
  const cases: string[][] = [
    ['query', 'account', 'unc1qurswpc8qurswpc8qurswpc8qurswpc8v77tvl', '--max-age', '60'],
    ['query', 'chip', 'ab'.repeat(32), '--max-age', '60'],
    ['query', 'lease', 'ab'.repeat(32), '--trusted-checkpoint', '3600:' + 'ab'.repeat(32)],
    ['job', 'verify', 'ab', '--max-age', '60'],
    ['job', 'ocr', 'image.png', ...lease, '--genesis', 'genesis.json'],
    ['job', 'run', '--model', 'm.onnx', '--input', 'i.json', ...lease, '--max-age', '60'],
    ['gateway', 'start', '--from', 'dev3', '--budget', '1', '--models', 'ocr', '--max-age', '60'],
  ];
  for (const args of cases) {
    const r = await runUnc([...args, ...nowhere]);
    assert.equal(r.code, 1, `unc ${args.join(' ')}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /only with --prove/, args.join(' '));
    assert.match(r.stderr, /\[PROVE_REQUIRED\]/, args.join(' '));
  }
  // Both named when both are given.
  const two = await runUnc([
    'query',
    'chip',
    'ab'.repeat(32),
    '--max-age',
    '60',
    '--genesis',
    'g.json',
    ...nowhere,
  ]);
  assert.match(two.stderr, /--max-age, --genesis apply only with --prove/);
});

test("--max-age's default alone is no refusal: the command goes on (and fails only on the unreachable node)", async () => {
  const r = await runUnc(['query', 'chip', 'ab'.repeat(32), ...nowhere]);
  assert.equal(r.code, 1);
  assert.doesNotMatch(r.stderr, /PROVE_REQUIRED/);
  // With --prove the options are taken (the missing genesis file is the next refusal).
  const proven = await runUnc(['query', 'chip', 'ab'.repeat(32), '--prove', '--max-age', '60', ...nowhere]);
  assert.doesNotMatch(proven.stderr, /PROVE_REQUIRED/);
});
