import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  addressFromPublicKey,
  DEFAULT_PARAMS,
  encode,
  envelopeFromSigned,
  minimumFee,
  putAccount,
  StateOverlay,
  sha256,
  signedTransactionCodec,
  signTransaction,
  type TxEnvelope,
  utf8,
  ValidationError,
} from '@unc/core';
import { rejects as rejectsWith } from '@unc/test-utils';
import { devKey } from '../src/dev.js';
import { Mempool } from '../src/mempool.js';
import { devBlockOne } from './fixtures.js';

const { genesis, state, next } = devBlockOne();

function tx(
  from: number,
  nonce: bigint,
  extraFee = 0n,
  opts: { chainId?: string; amount?: bigint } = {},
): TxEnvelope {
  const k = devKey(from);
  const base = {
    chainId: opts.chainId ?? genesis.chainId,
    signer: k.publicKey,
    nonce,
    expiresAt: 100n,
    actions: [
      {
        type: 'transfer' as const,
        to: devKey(9).address,
        amount: opts.amount ?? 1n,
        memo: new Uint8Array(0),
      },
    ],
    fee: 0n,
  };
  const size = encode(signedTransactionCodec, { tx: base, signature: new Uint8Array(64) }).length;
  return envelopeFromSigned(
    signTransaction({ ...base, fee: minimumFee(DEFAULT_PARAMS, size, 1) + extraFee }, k.seed),
  );
}

const rejects = (fn: () => unknown, code: string) => rejectsWith(fn, ValidationError, code);

describe('mempool', () => {
  test('orders by fee across senders and by nonce within a sender', () => {
    const pool = new Mempool();
    const a1 = tx(1, 1n, 5000n);
    const a0 = tx(1, 0n, 10n);
    const b0 = tx(2, 0n, 1000n);
    const c0 = tx(3, 0n, 100_000n);
    for (const t of [a1, a0, b0, c0]) pool.add(t, state, genesis.params, next);
    const order = pool.select(state, 10, 1 << 20).map((e) => e.hash);
    // c0 (highest fee), then b0, then a0 (a1 may not come before its predecessor), then a1.
    assert.deepEqual(order, [c0.hash, b0.hash, a0.hash, a1.hash]);
    assert.equal(pool.select(state, 2, 1 << 20).length, 2);
  });

  test('replace-by-fee needs at least 10% more; duplicates and used nonces are refused with reasons', () => {
    const pool = new Mempool();
    const first = tx(1, 0n, 1_000_000_000_000n);
    pool.add(first, state, genesis.params, next);
    rejects(() => pool.add(first, state, genesis.params, next), 'DUPLICATE');
    rejects(
      () => pool.add(tx(1, 0n, 1_000_000_000_001n), state, genesis.params, next),
      'REPLACEMENT_UNDERPRICED',
    );
    const bumped = tx(1, 0n, 10_000_000_000_000n);
    assert.deepEqual(pool.add(bumped, state, genesis.params, next), { replaced: true });
    assert.equal(pool.size, 1);
    assert.ok(pool.has(bumped.hash) && !pool.has(first.hash));
    rejects(() => pool.add(tx(1, 5000n), state, genesis.params, next), 'NONCE_GAP');
    rejects(() => pool.add(tx(1, 0n, 0n, { chainId: 'other' }), state, genesis.params, next), 'WRONG_CHAIN');
  });

  test('bounded in count and in bytes', () => {
    const byCount = new Mempool({ maxTxs: 2, maxBytes: 1 << 20, maxNonceGap: 100n });
    byCount.add(tx(1, 0n), state, genesis.params, next);
    byCount.add(tx(1, 1n), state, genesis.params, next);
    rejects(() => byCount.add(tx(1, 2n), state, genesis.params, next), 'MEMPOOL_FULL');
    const one = tx(2, 0n);
    const byBytes = new Mempool({ maxTxs: 100, maxBytes: one.bytes.length + 10, maxNonceGap: 100n });
    byBytes.add(one, state, genesis.params, next);
    rejects(() => byBytes.add(tx(2, 1n), state, genesis.params, next), 'MEMPOOL_FULL');
    assert.equal(byBytes.bytes, one.bytes.length);
  });

  test('a bad signature is refused and leaves the pool unchanged', () => {
    const pool = new Mempool();
    const good = tx(1, 0n);
    const forged = envelopeFromSigned({ tx: { ...good.stx.tx, nonce: 1n }, signature: good.stx.signature });
    rejects(() => pool.add(forged, state, genesis.params, next), 'BAD_SIGNATURE');
    assert.equal(pool.size, 0);
  });

  test('only the exact bytes admitted count as verified, not another signature on the same body', () => {
    const pool = new Mempool();
    const good = tx(1, 0n);
    pool.add(good, state, genesis.params, next);
    assert.equal(pool.isVerified(good), true);
    const resigned = envelopeFromSigned({ tx: good.stx.tx, signature: new Uint8Array(64).fill(7) });
    assert.deepEqual(resigned.hash, good.hash);
    assert.equal(pool.isVerified(resigned), false);
    assert.equal(pool.isVerified(tx(2, 0n)), false);
    pool.prune([good], [], state, 2n);
    assert.equal(pool.isVerified(good), false);
  });

  test('prune drops included, rejected, used-nonce and expired transactions', () => {
    const pool = new Mempool();
    const t0 = tx(1, 0n);
    const t1 = tx(1, 1n);
    const other = tx(2, 0n);
    for (const t of [t0, t1, other]) pool.add(t, state, genesis.params, next);
    pool.prune([t0], [], state, 2n);
    assert.equal(pool.size, 2);
    pool.prune([], [], state, 101n); // past expiry height 100
    assert.equal(pool.size, 0);
  });

  test('a drop listener that throws mid-prune leaves no queue keyed on a removed entry: a full-pool add still evicts and ends', () => {
    // Before, the rejected sender's queue kept its removed tail as the eviction pick: the last add
    // below removed nothing and picked it again, forever.
    const pool = new Mempool({ maxTxs: 4, maxNonceGap: 100n });
    const cheap = [0n, 1n, 2n].map((n) => tx(1, n));
    for (const t of [...cheap, tx(2, 0n, 1_000_000n)]) pool.add(t, state, genesis.params, next);
    let throws = 1;
    pool.onDrop(() => {
      if (throws-- > 0) throw new Error('listener failed');
    });
    const refused = { env: cheap[2]!, error: new ValidationError('TEST', 'refused') };
    assert.throws(() => pool.prune([], [refused], state, 2n), /listener failed/);
    assert.equal(pool.has(cheap[2]!.hash), false);
    pool.checkInvariants();
    assert.equal(pool.evictionOrder()[0]?.tail, 1n, 'the cheap sender is evicted from its new tail');
    pool.add(tx(3, 0n, 1_000_000n), state, genesis.params, next); // full again
    pool.add(tx(4, 0n, 1_000_000n), state, genesis.params, next); // must evict
    assert.equal(pool.size, 4);
    assert.equal(pool.has(cheap[1]!.hash), false);
    assert.equal(pool.has(cheap[0]!.hash), true);
    pool.checkInvariants();
  });

  test('longestPending: includable runs of the senders longest in the pool, one account read per sender visited, however large the pool', () => {
    // Before, a re-announcement took the first of `ordered`, whose heap over every sender cost
    // about half a second at 100,000 senders, every four block intervals.
    const funded = new StateOverlay(state);
    const pool = new Mempool({ maxTxs: 10_000 });
    /** A transfer by a synthetic sender (funded here; the signature is taken as checked). */
    const synthetic = (i: number, nonce: bigint): TxEnvelope => {
      const signer = sha256(utf8(`sender ${i}`));
      putAccount(funded, addressFromPublicKey(signer), { balance: 10n ** 18n, nonce: 0n });
      const body = {
        chainId: genesis.chainId,
        signer,
        nonce,
        expiresAt: 100n,
        fee: 10n ** 15n,
        actions: [{ type: 'transfer' as const, to: devKey(9).address, amount: 1n, memo: new Uint8Array(0) }],
      };
      return envelopeFromSigned({ tx: body, signature: new Uint8Array(64) });
    };
    const gapped = synthetic(0, 1n); // first in the pool, but nonce 0 is missing: not includable
    const run = [0n, 1n, 2n].map((n) => synthetic(1, n));
    for (const env of [gapped, ...run]) pool.add(env, funded, genesis.params, next, true);
    for (let i = 2; i < 3_000; i++) pool.add(synthetic(i, 0n), funded, genesis.params, next, true);
    const reads = funded.reads;
    const seen = [...pool.longestPending(funded, 10)];
    assert.ok(funded.reads - reads <= 10, `${funded.reads - reads} reads for 10 senders`);
    assert.deepEqual(
      seen.slice(0, 3).map((e) => e.hash),
      run.map((e) => e.hash),
      'the gapped sender skipped, the next one’s run in nonce order',
    );
    assert.equal(seen.length, 3 + 8);
  });
});
