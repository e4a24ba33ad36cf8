/**
 * `unc query account --prove` is one call for its user: past the light client's per-call boundary
 * limit it goes on while each call moves forward, and stops on anything else or no progress.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BoundaryLimitError, type LightClient, ProofError } from '@unc/sdk';
import { verifyAccountWalking } from '../src/commands/query.js';

type Result = Awaited<ReturnType<LightClient['verifyAccount']>>;
const done = { balance: 5n } as unknown as Result;

function scripted(steps: (Error | Result)[]): Pick<LightClient, 'verifyAccount'> & { calls: number } {
  const lc = {
    calls: 0,
    verifyAccount: async () => {
      const step = steps[lc.calls++]!;
      if (step instanceof Error) throw step;
      return step;
    },
  };
  return lc;
}

const client = {} as Parameters<LightClient['verifyAccount']>[0];
const limit = (through: bigint) => new BoundaryLimitError('more than 64 epoch boundaries', through);

test('goes on past each boundary limit while the verified boundary moves forward', async () => {
  const lc = scripted([limit(230_400n), limit(460_800n), done]);
  const seen: bigint[] = [];
  assert.equal(await verifyAccountWalking(lc, client, 'unc1x', (t) => seen.push(t)), done);
  assert.deepEqual(seen, [230_400n, 460_800n]);
  assert.equal(lc.calls, 3);
});

test('a call that made no progress, or any other refusal, ends it', async () => {
  const stuck = scripted([limit(100n), limit(100n), done]);
  await assert.rejects(
    verifyAccountWalking(stuck, client, 'unc1x', () => {}),
    (e) => e instanceof BoundaryLimitError,
  );
  assert.equal(stuck.calls, 2);
  const forged = scripted([limit(100n), new ProofError('not signed by its validators'), done]);
  await assert.rejects(
    verifyAccountWalking(forged, client, 'unc1x', () => {}),
    /not signed/,
  );
  assert.equal(forged.calls, 2);
});
