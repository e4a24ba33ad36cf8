/**
 * The node core's wiring of admission.ts `dropTaken` (node-core.ts `pruneAfter`): a real
 * single-validator core on a virtual clock commits a block, and the transactions still waiting in
 * its admission queue for their signature check whose nonce that block used are refused at once
 * (NONCE_USED) with their checks cancelled, while a later nonce of the same sender, waiting the
 * same way, is still checked and admitted. The unit tests (admission-drop.test.ts) drive
 * `dropTaken` by hand; these would pass with the call removed from the core.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ed25519PublicKey,
  encodeAddress,
  envelopeFromSigned,
  getAccount,
  signTransaction,
  type TxEnvelope,
} from '@unc/core';
import { feeFor, transferAction } from '@unc/sdk';
import { Chain } from '../../src/chain.js';
import { devGenesisJson, devKey, devValidator } from '../../src/dev.js';
import { silentLogger } from '../../src/log.js';
import { Mempool } from '../../src/mempool.js';
import { NodeCore } from '../../src/node-core.js';
import { VirtualClock } from '../../src/sim/virtual-clock.js';
import { ChainDb, MemoryKv } from '../../src/storage/db.js';
import { code, HeldCancellingVerifier } from '../admission-fixtures.js';

const T0 = Date.parse('2026-06-01T00:00:00Z');

function transfer(chain: Chain, from: number, nonce: bigint, amount: bigint): TxEnvelope {
  const k = devKey(from);
  const body = {
    chainId: chain.genesis.chainId,
    signer: k.publicKey,
    nonce,
    fee: 0n,
    expiresAt: 1000n,
    actions: [transferAction(encodeAddress(devKey(7).address), amount)],
  };
  body.fee = feeFor(body, chain.params);
  return envelopeFromSigned(signTransaction(body, k.seed));
}

test('a block the core commits refuses the queued transactions whose nonce it used, without their signature checks', async () => {
  const genesis = devGenesisJson({ time: new Date(T0), blockTimeMs: 1000 });
  const chain = await Chain.open(ChainDb.over(new MemoryKv()), genesis, silentLogger);
  const v = devValidator();
  const clock = new VirtualClock(T0 + 1);
  const verifier = new HeldCancellingVerifier({ consensusAtOnce: true });
  const core = new NodeCore({
    chain,
    mempool: new Mempool(),
    validator: { seed: v.seed, publicKey: ed25519PublicKey(v.seed) },
    privvalPath: null,
    privvalStorage: {
      where: 'memory',
      read: () => null,
      write: () => {},
      recordWhere: (name) => `memory/${name}`,
      readRecord: () => null,
      writeRecord: () => {},
      pruneRecords: () => {},
    },
    blockTimeMs: 1000,
    logger: silentLogger,
    clock,
    verifier,
  });
  try {
    await core.driver.start(null);
    await clock.run(clock.now() + 20_000, () => chain.height >= 1n);
    const sender = devKey(1);
    const nonce = getAccount(chain.state, sender.address).nonce;
    // In the mempool (checked here), for the next block.
    const taken = transfer(chain, 1, nonce, 5n);
    core.admit(taken);
    // Waiting for their checks: another transaction of the same nonce (a block will use it: it can
    // never be admitted), and the sender's next nonce (the block does not use it).
    const sameNonce = transfer(chain, 1, nonce, 6n);
    const nextNonce = transfer(chain, 1, nonce + 1n, 7n);
    const queued = core.submitMany([sameNonce, nextNonce]);
    await new Promise((r) => setImmediate(r));
    assert.equal(core.admission.queued, 2);
    assert.equal(verifier.made, 0);

    const before = chain.height;
    await clock.run(clock.now() + 20_000, () => getAccount(chain.tipState, sender.address).nonce > nonce);
    assert.ok(chain.tipHeight > before, 'a block committed');
    assert.equal(getAccount(chain.tipState, sender.address).nonce, nonce + 1n, 'the block took `taken`');
    assert.equal(core.admission.dropStats.txs, 1, 'the commit dropped the same-nonce transaction');
    assert.equal(core.admission.dropStats.checksCancelled, 1);

    verifier.answerAll();
    await clock.run(clock.now() + 1_000);
    const results = await queued;
    assert.deepEqual(results.map(code), ['NONCE_USED', 'admitted']);
    assert.equal(verifier.made, 1, 'only the next nonce was checked');
    // Pending, or already taken by the next block.
    assert.ok(
      core.mempool.has(nextNonce.hash) || getAccount(chain.tipState, sender.address).nonce === nonce + 2n,
    );
  } finally {
    await core.stop();
  }
});
