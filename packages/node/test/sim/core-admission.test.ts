/**
 * The node core admits through the admission queue with its verifier and slicing passed in: the
 * simulator's configuration (an in-thread verifier, slices on the virtual clock) has the same
 * stages and answers as a real node's worker pool: a batch beyond the bound is refused whole with
 * BUSY before any signature is checked, a forged signature is refused, the rest is admitted, and
 * nothing happens until the clock lets the slice run.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ed25519Verify,
  envelopeFromBytes,
  envelopeFromSigned,
  signTransaction,
  type TxEnvelope,
  ValidationError,
} from '@unc/core';
import { transferAction } from '@unc/sdk';
import { AdmissionBusy, clockSlices } from '../../src/admission.js';
import { Chain } from '../../src/chain.js';
import { devGenesisJson, devKey } from '../../src/dev.js';
import { silentLogger } from '../../src/log.js';
import { Mempool } from '../../src/mempool.js';
import { NodeCore } from '../../src/node-core.js';
import { VirtualClock } from '../../src/sim/virtual-clock.js';
import { ChainDb, MemoryKv } from '../../src/storage/db.js';
import { InThreadVerifier } from '../../src/verify-pool.js';

test('NodeCore on a virtual clock: admission queue with an injected in-thread verifier', async () => {
  const genesis = devGenesisJson({ time: new Date('2026-01-01T00:00:00Z') });
  const chain = await Chain.open(ChainDb.over(new MemoryKv()), genesis, silentLogger);
  const clock = new VirtualClock(Date.parse('2026-01-01T00:00:01Z'));
  let checks = 0;
  const verifier = new InThreadVerifier((publicKey, message, signature) => {
    checks++;
    return ed25519Verify(publicKey, message, signature);
  });
  const mempool = new Mempool();
  const core = new NodeCore({
    chain,
    mempool,
    validator: null,
    privvalPath: null,
    blockTimeMs: 1000,
    logger: silentLogger,
    clock,
    verifier,
    slices: clockSlices(clock),
    admission: { maxQueued: 3 },
  });
  const txs: TxEnvelope[] = [1, 2, 3, 4].map((i) => {
    const k = devKey(i);
    const tx = {
      chainId: chain.genesis.chainId,
      signer: k.publicKey,
      nonce: 0n,
      fee: 10n ** 16n,
      expiresAt: 1000n,
      actions: [transferAction('unc1vystcnlgdeut2u2v57a0lacv4url68zepr0t34', 1n)],
    };
    return envelopeFromSigned(signTransaction(tx, k.seed));
  });
  try {
    await assert.rejects(core.submitMany(txs), AdmissionBusy);
    assert.equal(checks, 0, 'a refused batch costs no signature check');
    assert.equal(mempool.size, 0);

    const bytes = Uint8Array.from(txs[2]!.bytes);
    bytes[bytes.length - 1]! ^= 1;
    const forged = envelopeFromBytes(bytes);
    let results: Awaited<ReturnType<NodeCore['submitMany']>> | null = null;
    const done = core.submitMany([txs[0]!, txs[1]!, forged]).then((r) => {
      results = r;
    });
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(results, null, 'the slice waits for the clock');
    assert.equal(mempool.size, 0);
    await clock.run(clock.now() + 1);
    await done;
    const [a, b, c] = results!;
    assert.ok(!(a instanceof ValidationError) && !(b instanceof ValidationError));
    assert.ok(c instanceof ValidationError && c.code === 'BAD_SIGNATURE');
    assert.equal(checks, 3, 'each signature checked once, by the injected verifier');
    assert.equal(mempool.size, 2);
    assert.equal(core.admission.queued, 0);
  } finally {
    await core.stop();
  }
});
