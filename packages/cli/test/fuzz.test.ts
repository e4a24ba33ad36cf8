/**
 * The fuzz harness (bench/fuzz.ts, `npm run fuzz`) in CI: a small run over every target must find
 * nothing, and the harness must notice a crash, a hang and an unhandled rejection when there is one.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { DecodeError } from '@unc/core';
import { type FuzzTarget, Rng, runFuzz, shares } from '../bench/fuzz-lib.js';
import { createTargets } from '../bench/fuzz-targets.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'unc-fuzz-test-'));
  dirs.push(d);
  return d;
}

describe('fuzz harness', () => {
  test('every target takes its share of 2,500 inputs without a crash, hang or unhandled rejection', async () => {
    // The provider over HTTP loads ONNX Runtime and the OCR models; the provider tests cover that
    // server, and `npm run fuzz` fuzzes it.
    const setup = await createTargets({ providerHttp: false });
    try {
      // A generous hang budget: a loaded CI machine can stall one call; real hangs are far longer.
      const report = await runFuzz(setup.targets, {
        inputs: 2500,
        seed: 'ci',
        hangMs: 10_000,
        artifactsDir: tempDir(),
      });
      assert.equal(report.inputs, 2500);
      for (const t of report.targets) assert.ok(t.inputs > 0, `${t.name} got no inputs`);
      assert.deepEqual(
        report.findings.map((f) => `${f.kind} in ${f.target}: ${f.error}`),
        [],
      );
      // Mutants of valid encodings get past the decoders often enough to reach the deeper checks.
      for (const name of ['tx', 'block', 'consensus', 'x509', 'tpm']) {
        const t = report.targets.find((x) => x.name === name)!;
        assert.ok(t.accepted > 0, `${name}: nothing decoded`);
      }
    } finally {
      await setup.close();
    }
  });

  test('reports a TypeError as a crash with its input saved, and not a classified error', async () => {
    const dir = tempDir();
    const target: FuzzTarget = {
      name: 'buggy',
      description: 'throws a TypeError on inputs that start with 0x42',
      weight: 1,
      seeds: [Uint8Array.of(0x41, 1, 2, 3)],
      run(input) {
        if (input.length === 0) throw new DecodeError('empty');
        if (input[0] === 0x42) (null as unknown as { x: number }).x;
      },
      classified: (err) => err instanceof DecodeError,
    };
    const report = await runFuzz([target], { inputs: 2000, seed: 'crash', artifactsDir: dir });
    const crash = report.findings.find((f) => f.kind === 'crash');
    assert.ok(crash, 'the crash was not found');
    assert.match(crash.error, /^TypeError/);
    assert.equal(crash.inputHex.slice(0, 2), '42');
    assert.equal(readFileSync(crash.file!, 'utf8').trim(), crash.inputHex);
    assert.ok(report.targets[0]!.rejected > 0, 'the classified DecodeError should count as a rejection');
    assert.equal(
      report.findings.filter((f) => f.kind === 'crash').length,
      1,
      'the same crash is reported once, with a count',
    );
  });

  test('reports an input slower than the budget as a hang', async () => {
    // (Unhandled rejections are reported too, but node's test runner fails any test that leaves
    // one, so that path is left to `npm run fuzz`.)
    let calls = 0;
    const target: FuzzTarget = {
      name: 'slow',
      description: 'busy for 1.5 s once',
      weight: 1,
      seeds: [Uint8Array.of(1)],
      run() {
        calls++;
        if (calls === 3) {
          const end = performance.now() + 1_500;
          while (performance.now() < end);
        }
      },
      classified: () => false,
    };
    // A 500 ms budget, not 20 ms: on two loaded cores an input that does nothing can be descheduled
    // for tens of ms and read as a second hang; the slow one is three times over the budget.
    const report = await runFuzz([target], { inputs: 20, seed: 'hang', hangMs: 500, artifactsDir: null });
    assert.deepEqual(
      report.findings.map((f) => f.kind),
      ['hang'],
    );
  });

  test('the same seed gives the same inputs; the count is split exactly by weight', async () => {
    const a = new Rng('s/t');
    const b = new Rng('s/t');
    assert.deepEqual(a.bytes(64), b.bytes(64));
    const w = (weight: number) => ({ weight }) as FuzzTarget;
    assert.deepEqual(shares([w(3), w(1)], 10), [8, 2]);
    assert.equal(
      shares([w(14), w(6), w(1)], 1_000_000).reduce((x, y) => x + y, 0),
      1_000_000,
    );
  });
});
