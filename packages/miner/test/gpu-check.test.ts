/**
 * scripts/gpu-check.sh on a machine without CUDA: it must say so and exit non-zero, never show CPU
 * figures as GPU ones. The driver check is pointed at stand-ins for nvidia-smi (absent, failing,
 * present); what the script then finds about ONNX Runtime's CUDA provider is real.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chmod, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { tempDir } from './helpers.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
const SCRIPT = join(ROOT, 'scripts', 'gpu-check.sh');

function run(smi: string): { status: number | null; out: string } {
  const r = spawnSync(SCRIPT, ['--jobs', '1'], {
    env: { ...process.env, UNC_GPU_CHECK_NVIDIA_SMI: smi },
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** Whether this onnxruntime-node has its CUDA provider library (the CPU build does not). */
function runtimeHasCuda(): boolean {
  const bin = join(dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json')), 'bin');
  return readdirSync(bin).some((napi) => {
    const dir = join(bin, napi, process.platform, process.arch);
    return existsSync(dir) && readdirSync(dir).some((f) => f.startsWith('libonnxruntime_providers_cuda'));
  });
}

describe('scripts/gpu-check.sh', () => {
  test('without an NVIDIA driver it says CUDA is not available and exits 2', () => {
    const r = run('unc-test-no-such-nvidia-smi');
    assert.equal(r.status, 2, r.out);
    assert.match(r.out, /CUDA NOT AVAILABLE: no NVIDIA driver here/);
  });

  test('when nvidia-smi finds no GPU it exits 2', async () => {
    const dir = await tempDir('unc-gpu-check-');
    try {
      const smi = join(dir.path, 'nvidia-smi');
      await writeFile(
        smi,
        '#!/bin/sh\necho "NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver." >&2\nexit 9\n',
      );
      await chmod(smi, 0o755);
      const r = run(smi);
      assert.equal(r.status, 2, r.out);
      assert.match(r.out, /found no usable GPU: NVIDIA-SMI has failed/);
    } finally {
      await dir.remove();
    }
  });

  test('with a GPU but the CPU build of onnxruntime-node it names the fallback, says how to install CUDA and exits 3', {
    skip: runtimeHasCuda() ? 'this onnxruntime-node has the CUDA provider' : false,
  }, async () => {
    const dir = await tempDir('unc-gpu-check-');
    try {
      const smi = join(dir.path, 'nvidia-smi');
      await writeFile(smi, '#!/bin/sh\necho "NVIDIA H100 80GB HBM3, 550.54.15, 81559 MiB"\n');
      await chmod(smi, 0o755);
      const r = run(smi);
      assert.equal(r.status, 3, r.out);
      assert.match(r.out, /CUDA provider library ABSENT/);
      assert.match(r.out, /CUDA NOT AVAILABLE: the provider asked for 'cuda' runs on 'cpu'/);
      assert.match(r.out, /CUDA execution provider unavailable; running ONNX jobs on the CPU/);
      assert.match(r.out, /ONNXRUNTIME_NODE_INSTALL=cuda12/);
      assert.doesNotMatch(r.out, /speed-up/);
    } finally {
      await dir.remove();
    }
  });
});
