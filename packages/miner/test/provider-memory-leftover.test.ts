/**
 * Memory a renter's job leaves in its job process. ONNX Runtime's arena keeps what a run
 * allocated, and the job's outputs wait in the heap for a collection: one renter's job that
 * allocated just under the memory limit (refused OUTPUT_TOO_LARGE, for a model of a few bytes)
 * left its warm process holding it, and the next renter's job there, which fits a fresh process,
 * was killed with JOB_MEMORY, blamed on that renter. A process left holding more than half the
 * limit is now replaced before another job runs in it.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { silentLogger } from '@unc/node';
import type { ProviderError } from '@unc/sdk';
import { DevSoftSigner, ProviderServer } from '../src/index.js';
import { expandModel } from './fixtures/attack-models.js';
import { tempDir } from './helpers.js';
import { InMemoryLeaseSource, leaseRenter } from './provider-helpers.js';

const CHAIN = 'unc-test-leftover';
const signer = new DevSoftSigner(new Uint8Array(randomBytes(32)), 'dev-h100', 'dev-chip-leftover');
const leases = new InMemoryLeaseSource();
const ONE = Buffer.from(new Float32Array([1]).buffer).toString('base64');
let dir: { path: string; remove(): Promise<void> };
let provider: ProviderServer;
let url: string;

before(async () => {
  dir = await tempDir('unc-provider-leftover-');
  provider = new ProviderServer({
    chainId: CHAIN,
    signers: [signer],
    leases,
    modelDir: join(dir.path, 'models'),
    concurrency: 1,
    jobMemoryBytes: 1024 ** 3,
    logger: silentLogger,
  });
  url = await provider.start();
});
after(async () => {
  await provider?.stop();
  await dir?.remove();
});

test("a job that fits a fresh job process is not killed for what another renter's job left in it", {
  timeout: 180_000,
}, async () => {
  const attacker = await leaseRenter(leases, signer, url, CHAIN);
  const victim = await leaseRenter(leases, signer, url, CHAIN);
  // 40 Mi floats: 160 MiB of output, allocated in ONNX Runtime and copied out; more than the output
  // limit (16 MiB), so both jobs are refused, each after it ran alone within the 1 GiB limit.
  const { modelHash: mine } = await victim.client.uploadModel(expandModel(40 * 1024 * 1024 + 1));
  const { modelHash: theirs } = await attacker.client.uploadModel(expandModel(40 * 1024 * 1024));
  const run = (c: typeof attacker.client, model: string) =>
    c.runJob(model, { x: { type: 'float32', dims: [1], data: ONE } }).then(
      () => 'done',
      (e: ProviderError) => e.code,
    );
  assert.equal(await run(attacker.client, theirs), 'OUTPUT_TOO_LARGE');
  // Before, the process kept ~470 MiB of it and this job passed the limit there: JOB_MEMORY.
  assert.equal(await run(victim.client, mine), 'OUTPUT_TOO_LARGE');
});

// An honest provider's process whose sessions hold over half the limit was replaced after every
// job (every model loaded again): it is first asked to drop its sessions and collect its heap,
// and kept when that brings it back under half. A pool of its own: what the process gives back
// depends on what ran in it before (the allocator keeps some), so it starts fresh.
