/**
 * A sender's next free nonce counting its pending transactions (Mempool.nextNonce; RPC
 * `unc_getAccount` with `pending`; the sdk's `nextNonce`, which `buildTransaction` signs at): the
 * committed nonce, then one past each transaction of the gapless run after it, so that a second
 * transaction sent before the first is included queues behind it instead of colliding with it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  DEFAULT_PARAMS,
  encode,
  encodeAddress,
  envelopeFromSigned,
  minimumFee,
  signedTransactionCodec,
  signTransaction,
  type TxEnvelope,
  ValidationError,
} from '@unc/core';
import { buildTransaction, encodeSigned, transferAction, UncClient } from '@unc/sdk';
import fc from 'fast-check';
import { devGenesisJson, devKey, devValidator } from '../src/dev.js';
import { silentLogger } from '../src/log.js';
import { Mempool } from '../src/mempool.js';
import { UncNode } from '../src/node.js';
import { devBlockOne } from './fixtures.js';

const { genesis, state, next } = devBlockOne();

function tx(from: number, nonce: bigint): TxEnvelope {
  const k = devKey(from);
  const base = {
    chainId: genesis.chainId,
    signer: k.publicKey,
    nonce,
    expiresAt: 100n,
    actions: [{ type: 'transfer' as const, to: devKey(9).address, amount: 1n, memo: new Uint8Array(0) }],
    fee: 0n,
  };
  const size = encode(signedTransactionCodec, { tx: base, signature: new Uint8Array(64) }).length;
  return envelopeFromSigned(signTransaction({ ...base, fee: minimumFee(DEFAULT_PARAMS, size, 1) }, k.seed));
}

describe('Mempool.nextNonce', () => {
  // Signed once: a run only chooses which of them it admits, and in which order.
  const mine = Array.from({ length: 12 }, (_, n) => tx(1, BigInt(n)));
  const others = Array.from({ length: 12 }, (_, n) => tx(2, BigInt(n)));

  test('is the lowest nonce at or past the committed one that no pending transaction of the sender holds', () => {
    fc.assert(
      fc.property(
        fc.shuffledSubarray(mine),
        fc.shuffledSubarray(others),
        fc.nat({ max: 3 }),
        (own, foreign, committed) => {
          const pool = new Mempool();
          for (const env of [...own, ...foreign]) pool.add(env, state, genesis.params, next);
          const held = new Set(own.map((e) => e.stx.tx.nonce));
          let expected = BigInt(committed);
          while (held.has(expected)) expected++;
          assert.equal(pool.nextNonce(devKey(1).address, BigInt(committed)), expected);
          // Another sender's transactions never move it, and a sender with none pending gets the
          // committed nonce back.
          assert.equal(pool.nextNonce(devKey(3).address, BigInt(committed)), BigInt(committed));
        },
      ),
      { numRuns: 200 },
    );
  });

  test('a transaction parked past a gap does not count: the gap is the next free nonce', () => {
    const pool = new Mempool();
    for (const n of [0, 1, 3, 4]) pool.add(mine[n]!, state, genesis.params, next);
    assert.equal(pool.nextNonce(devKey(1).address, 0n), 2n);
    pool.add(mine[2]!, state, genesis.params, next);
    assert.equal(pool.nextNonce(devKey(1).address, 0n), 5n);
  });

  test('an earlier transaction that fails as a block is built leaves the later one in a gap, which the next one signed at the pending nonce fills', () => {
    // A failure uses no nonce (it pays nothing, and the builder leaves it out): the one signed
    // behind it waits. Others can cause the failure (the offer a lease opening names closed).
    const pool = new Mempool();
    for (const n of [0, 1]) pool.add(mine[n]!, state, genesis.params, next);
    assert.equal(pool.nextNonce(devKey(1).address, 0n), 2n);
    pool.prune([], [{ env: mine[0]!, error: new ValidationError('NO_SUCH_OFFER', 'closed') }], state, 2n);
    assert.equal(pool.pendingOf(devKey(1).address).length, 1, 'the later one stays, parked');
    assert.equal(pool.nextNonce(devKey(1).address, 0n), 0n, 'the gap is the next free nonce');
    // The key's next transaction takes it, and the parked one is in the run again (it lands after).
    pool.add(tx(1, 0n), state, genesis.params, next);
    assert.equal(pool.nextNonce(devKey(1).address, 0n), 2n);
    pool.checkInvariants();
  });
});

describe('unc_getAccount with pending, on a running node', () => {
  const dirs: string[] = [];
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  test('two transactions built back to back from one key are both admitted, the second queued behind the first', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'unc-pending-nonce-'));
    dirs.push(dataDir);
    // Blocks far apart: the first transaction is still pending when the second is built.
    const node = await UncNode.start({
      dataDir,
      genesis: devGenesisJson(),
      validatorSeed: devValidator().seed,
      rpcPort: 0,
      blockTimeMs: 60_000,
      logger: silentLogger,
    });
    try {
      const client = new UncClient(node.rpcUrl);
      const k = devKey(1);
      const address = encodeAddress(k.address);
      const to = encodeAddress(devKey(2).address);
      const before = await client.getAccount(address, false);
      assert.equal(before.pendingNonce, undefined, 'the answer an older client reads is unchanged');
      const pendingOf = async () =>
        (
          await client.call<{ nonce: number; pendingNonce?: number }>('unc_getAccount', {
            address,
            pending: true,
          })
        ).pendingNonce;
      assert.equal(await pendingOf(), before.nonce);

      const first = await buildTransaction(client, k.seed, [transferAction(to, 1n)]);
      const a = await client.sendRawTransaction(encodeSigned(first));
      assert.equal(await pendingOf(), before.nonce + 1);
      const second = await buildTransaction(client, k.seed, [transferAction(to, 2n)]);
      assert.equal(second.tx.nonce, first.tx.nonce + 1n, 'the second is signed past the pending first');
      const b = await client.sendRawTransaction(encodeSigned(second));
      assert.equal(b.replaced, false);
      assert.equal(await pendingOf(), before.nonce + 2);
      // The committed nonce has not moved: both wait in the mempool.
      assert.equal((await client.getAccount(address)).nonce, before.nonce);
      // A transaction parked past a gap (the sender's own, signed) does not move it.
      const parked = signTransaction({ ...second.tx, nonce: second.tx.nonce + 2n }, k.seed);
      await client.sendRawTransaction(encodeSigned(parked));
      assert.equal(await pendingOf(), before.nonce + 2);
      // An explicit nonce is still the caller's: the committed one replaces the first, at a higher fee.
      const replacement = await buildTransaction(client, k.seed, [transferAction(to, 1n)], {
        nonce: first.tx.nonce,
        fee: first.tx.fee * 2n,
      });
      assert.equal(replacement.tx.nonce, first.tx.nonce);
      assert.equal((await client.sendRawTransaction(encodeSigned(replacement))).replaced, true);
      assert.ok(a.hash);
    } finally {
      await node.stop();
    }
  });
});
