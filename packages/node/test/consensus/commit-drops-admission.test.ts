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
  ed25519Verify,
  encodeAddress,
  envelopeFromSigned,
  getAccount,
  signTransaction,
  type TxEnvelope,
  ValidationError,
} from '@unc/core';
import { feeFor, transferAction } from '@unc/sdk';
import type { AdmissionResult } from '../../src/admission.js';
import { Chain } from '../../src/chain.js';
import { devGenesisJson, devKey, devValidator } from '../../src/dev.js';
import { silentLogger } from '../../src/log.js';
import { Mempool } from '../../src/mempool.js';
import { NodeCore } from '../../src/node-core.js';
import { VirtualClock } from '../../src/sim/virtual-clock.js';
import { ChainDb, MemoryKv } from '../../src/storage/db.js';
import type { SignatureCheck, SignatureVerifier, VerifyLane } from '../../src/verify-pool.js';

const T0 = Date.parse('2026-06-01T00:00:00Z');

/**
 * Checks in-thread; admission calls wait until `release` (a queue behind busy workers), and a
 * cancelled check is not made, as the pool's. Block checks are answered at once.
 */
class HeldAdmissionVerifier implements SignatureVerifier {
  readonly threads = 1;
  /** Admission checks made. */
  made = 0;
  private readonly held: { answer: Promise<boolean[]>; cancelled: Set<number>; open: () => void }[] = [];

  verify(checks: readonly SignatureCheck[], lane: VerifyLane = 'admission'): Promise<boolean[]> {
    if (lane === 'consensus')
      return Promise.resolve(checks.map((c) => ed25519Verify(c.publicKey, c.message, c.signature)));
    const run = (cancelled: ReadonlySet<number>) =>
      checks.map((c, k) => {
        if (cancelled.has(k)) return false;
        this.made++;
        return ed25519Verify(c.publicKey, c.message, c.signature);
      });
    const cancelled = new Set<number>();
    let open = () => {};
    const answer = new Promise<boolean[]>((resolve) => {
      open = () => resolve(run(cancelled));
    });
    this.held.push({ answer, cancelled, open });
    return answer;
  }

  cancel(answer: Promise<boolean[]>, positions: readonly number[]): number {
    const call = this.held.find((c) => c.answer === answer);
    if (!call) return 0;
    for (const p of positions) call.cancelled.add(p);
    return positions.length;
  }

  release(): void {
    for (const c of this.held.splice(0)) c.open();
  }

  async close(): Promise<void> {}
}

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

function code(r: AdmissionResult | undefined): string {
  return r instanceof ValidationError ? r.code : 'admitted';
}

test('a block the core commits refuses the queued transactions whose nonce it used, without their signature checks', async () => {
  const genesis = devGenesisJson({ time: new Date(T0), blockTimeMs: 1000 });
  const chain = await Chain.open(ChainDb.over(new MemoryKv()), genesis, silentLogger);
  const v = devValidator();
  const clock = new VirtualClock(T0 + 1);
  const verifier = new HeldAdmissionVerifier();
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

    verifier.release();
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
