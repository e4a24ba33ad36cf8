/**
 * A CPU provider that runs more jobs at once than the machine has cores says so at start: each job
 * then costs more CPU (docs/jobs.md). The check asks the job processes as started, so a CUDA
 * request that fell back to the CPU (a machine without a usable GPU) is warned about too; asked of
 * the option alone, it was not.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { createLogger } from '@unc/node';
import { DevSoftSigner, ProviderServer } from '../src/index.js';
import { tempDir } from './helpers.js';
import { InMemoryLeaseSource } from './provider-helpers.js';

const WARNING = 'more jobs run at once than this machine has cores';

/** Starts a provider, returns the lines it logged at warn or above and the execution provider it runs. */
async function startedWith(
  name: string,
  concurrency: number,
  executionProvider: 'cpu' | 'cuda',
): Promise<{ lines: string[]; effective: string }> {
  const lines: string[] = [];
  const logger = createLogger('provider', {
    level: 'warn',
    json: true,
    stream: new Writable({
      write: (chunk, _enc, done) => {
        lines.push(String(chunk));
        done();
      },
    }),
  });
  const dir = await tempDir(`unc-provider-conc-${name}-`);
  const provider = new ProviderServer({
    chainId: 'unc-test-concurrency',
    signers: [new DevSoftSigner(new Uint8Array(randomBytes(32)), 'dev-h100', `dev-chip-${name}`)],
    leases: new InMemoryLeaseSource(),
    modelDir: join(dir.path, 'models'),
    concurrency,
    executionProvider,
    logger,
  });
  try {
    await provider.start();
    return {
      lines,
      effective: (provider as unknown as { sandbox: { executionProvider: string } }).sandbox
        .executionProvider,
    };
  } finally {
    await provider.stop();
    await dir.remove();
  }
}

describe('a provider running more jobs at once than cores', () => {
  test('warns at start on the CPU, not at the cores', { timeout: 120_000 }, async () => {
    const cores = availableParallelism();
    const over = await startedWith('over', cores + 1, 'cpu');
    assert.equal(over.lines.filter((l) => l.includes(WARNING)).length, 1, over.lines.join(''));
    assert.match(over.lines.find((l) => l.includes(WARNING))!, new RegExp(`"cores":${cores}`));
    const at = await startedWith('at', cores, 'cpu');
    assert.equal(at.lines.filter((l) => l.includes(WARNING)).length, 0, at.lines.join(''));
  });

  test('warns when a CUDA request fell back to the CPU', { timeout: 120_000 }, async () => {
    const r = await startedWith('cuda', availableParallelism() + 1, 'cuda');
    // On a machine whose GPU works the jobs run there: no warning is due.
    const expected = r.effective === 'cpu' ? 1 : 0;
    assert.equal(r.lines.filter((l) => l.includes(WARNING)).length, expected, r.lines.join(''));
  });
});
