import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import {
  DEFAULT_PARAMS,
  decode,
  ed25519Verify,
  encode,
  envelopeFromBytes,
  envelopeFromSigned,
  getAccount,
  signTransaction,
  type TxEnvelope,
  ValidationError,
} from '@unc/core';
import {
  AdmissionBusy,
  AdmissionQueue,
  refusedAfterSignatureCheck,
  SyncingRefusal,
} from '../src/admission.js';
import { systemClock } from '../src/clock.js';
import { MempoolReactor, type MempoolReactorOptions } from '../src/consensus/mempool-reactor.js';
import { txBatchCodec } from '../src/consensus/wire.js';
import { devKey } from '../src/dev.js';
import { Mempool } from '../src/mempool.js';
import {
  type SignatureCheck,
  type SignatureVerifier,
  VerifyPool,
  VerifyPoolBusy,
} from '../src/verify-pool.js';
import { devBlockOneTransfers, forged } from './fixtures.js';

/** The dev chain after block one; `tx(from, nonce)` a transfer from dev key `from` (fixtures.ts). */
const { genesis, state, next, tx } = devBlockOneTransfers();

function setup(opts: { maxQueued?: number; sliceMs?: number } = {}, verifier: SignatureVerifier = pool) {
  const mempool = new Mempool();
  const checked: string[] = [];
  const queue = new AdmissionQueue(
    verifier,
    {
      cheapRefusal: (env, countPending) =>
        mempool.cheapRefusal(env, state, DEFAULT_PARAMS, next, countPending),
      admit: (env) => {
        checked.push(Buffer.from(env.hash).toString('hex'));
        return mempool.add(env, state, DEFAULT_PARAMS, next, true);
      },
    },
    opts,
  );
  return { mempool, queue, checked };
}

const pool = new VerifyPool({ threads: 2, batchSize: 8 });
after(() => pool.close());

describe('AdmissionQueue', () => {
  test('admits in order, each transaction with its own result', async () => {
    const { mempool, queue } = setup();
    const envs = Array.from({ length: 20 }, (_, i) => tx(i % 4, BigInt(Math.floor(i / 4))));
    const results = await queue.submit(envs);
    assert.equal(results.length, 20);
    for (const r of results) assert.deepEqual(r, { replaced: false });
    assert.equal(mempool.size, 20);
    assert.equal(queue.queued, 0);
    mempool.checkInvariants();
  });

  test('a forged signature is refused (BAD_SIGNATURE) and never reaches the mempool', async () => {
    const { mempool, queue, checked } = setup();
    const good = tx(1, 0n);
    const bad = forged(tx(2, 0n));
    const [a, b] = await queue.submit([good, bad]);
    assert.deepEqual(a, { replaced: false });
    assert.ok(b instanceof ValidationError && b.code === 'BAD_SIGNATURE');
    assert.equal(mempool.size, 1);
    assert.equal(checked.length, 1);
  });

  test('duplicates and used nonces are refused before any signature is checked', async () => {
    const { queue } = setup();
    const env = tx(1, 0n);
    await queue.submit([env]);
    const before = pool.queued('admission');
    // A copy of a pending transaction with a forged signature: refused as DUPLICATE, cheaply.
    const [dup] = await queue.submit([forged(env)]);
    assert.ok(dup instanceof ValidationError && dup.code === 'DUPLICATE');
    assert.equal(before, 0);
  });

  test('a verify pool closed under queued admissions answers BUSY and admits nothing it did not check', async () => {
    const closing = new VerifyPool({ threads: 1, batchSize: 8 });
    const { mempool, queue, checked } = setup({}, closing);
    const pending = queue.submit(Array.from({ length: 40 }, (_, i) => tx(i % 8, BigInt(Math.floor(i / 8)))));
    const refused = assert.rejects(
      pending,
      (err: unknown) => err instanceof AdmissionBusy && err.code === 'BUSY',
    );
    await closing.close();
    await refused;
    assert.equal(checked.length, 0, 'no transaction reached admission');
    assert.equal(mempool.size, 0);
    assert.equal(queue.queued, 0);
    await assert.rejects(queue.submit([tx(1, 0n)]), AdmissionBusy);
  });

  test('a full queue refuses a whole batch at once with BUSY, admitting nothing of it', async () => {
    const { mempool, queue } = setup({ maxQueued: 10 });
    const first = queue.submit(Array.from({ length: 8 }, (_, i) => tx(i, 0n)));
    await assert.rejects(
      queue.submit([tx(8, 0n), tx(9, 0n), tx(10, 0n)]),
      (err: unknown) => err instanceof AdmissionBusy && err.code === 'BUSY' && err.retryAfterMs > 0,
    );
    await first;
    assert.equal(mempool.size, 8);
    // Once drained, it takes batches again.
    assert.equal((await queue.submit([tx(8, 0n)])).length, 1);
  });

  test('a later call the verifier answers first is still admitted after the earlier one (nonces in order)', async () => {
    // The pool can answer out of order (several workers, or the main thread's share of a batch);
    // a sender's nonce 1 admitted before its nonce 0 would be refused as a gap.
    const answers: { checks: readonly SignatureCheck[]; resolve: (ok: boolean[]) => void }[] = [];
    const reversed: SignatureVerifier = {
      threads: 1,
      verify: (checks) => new Promise((resolve) => answers.push({ checks, resolve })),
      close: async () => {},
    };
    const mempool = new Mempool();
    const admitted: bigint[] = [];
    const queue = new AdmissionQueue(reversed, {
      cheapRefusal: (env, countPending) =>
        mempool.cheapRefusal(env, state, DEFAULT_PARAMS, next, countPending),
      admit: (env) => {
        admitted.push(env.stx.tx.nonce);
        return mempool.add(env, state, DEFAULT_PARAMS, next, true);
      },
    });
    const first = queue.submit([tx(1, 0n)]);
    const second = queue.submit([tx(1, 1n)]);
    assert.equal(answers.length, 2);
    answers[1]!.resolve([true]);
    await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(admitted, [], 'the later call waits for the earlier one');
    answers[0]!.resolve([true]);
    assert.deepEqual(await first, [{ replaced: false }]);
    assert.deepEqual(await second, [{ replaced: false }]);
    assert.deepEqual(admitted, [0n, 1n]);
    assert.equal(mempool.size, 2);
  });

  test('a call the verifier refuses (busy) leaves the calls behind it to be admitted', async () => {
    let calls = 0;
    const busyOnce: SignatureVerifier = {
      threads: 1,
      verify: (checks) =>
        ++calls === 1
          ? Promise.reject(new VerifyPoolBusy('admission', 1))
          : Promise.resolve(checks.map(() => true)),
      close: async () => {},
    };
    const mempool = new Mempool();
    const queue = new AdmissionQueue(busyOnce, {
      cheapRefusal: (env, countPending) =>
        mempool.cheapRefusal(env, state, DEFAULT_PARAMS, next, countPending),
      admit: (env) => mempool.add(env, state, DEFAULT_PARAMS, next, true),
    });
    const refused = queue.submit([tx(2, 0n)]);
    const later = queue.submit([tx(3, 0n)]);
    await assert.rejects(refused, (err: unknown) => err instanceof AdmissionBusy);
    assert.deepEqual(await later, [{ replaced: false }]);
    assert.equal(queue.queued, 0);
  });

  test('a call whose host throws (a bug, not a refusal) fails alone: the calls behind it are admitted, nothing stays held', async () => {
    // Every call waits in call order for the ones before it; one left in the queue unanswered would
    // hold all later admissions forever.
    const mempool = new Mempool();
    let throwOnce = true;
    const queue = new AdmissionQueue(new VerifyPool({ threads: 0 }), {
      cheapRefusal: (env) => {
        if (throwOnce) {
          throwOnce = false;
          throw new Error('state read failed');
        }
        return mempool.cheapRefusal(env, state, DEFAULT_PARAMS, next);
      },
      admit: (env) => mempool.add(env, state, DEFAULT_PARAMS, next, true),
    });
    const failed = queue.submit([tx(4, 0n)]);
    const later = queue.submit([tx(5, 0n)]);
    await assert.rejects(failed, /state read failed/);
    const outcome = await Promise.race([later, new Promise((r) => setTimeout(() => r('stalled'), 500))]);
    assert.deepEqual(outcome, [{ replaced: false }]);
    assert.equal(queue.queued, 0);
  });

  test('admission yields to the event loop between slices', async () => {
    // Slices of 0 ms: one transaction per turn of the event loop. A message that arrives while a
    // large batch is being admitted (a vote, a proposal) runs before the batch is done.
    const { queue } = setup({ sliceMs: 0 });
    const envs = Array.from({ length: 60 }, (_, i) => tx(i % 6, BigInt(Math.floor(i / 6))));
    let done = false;
    const batch = queue.submit(envs).then(() => {
      done = true;
    });
    let ranDuring = 0;
    const ticker = setInterval(() => {
      if (!done) ranDuring++;
    }, 0);
    await batch;
    clearInterval(ticker);
    assert.ok(ranDuring > 0, 'a timer ran while the batch was being admitted');
  });
});

/** Counts the signatures it is asked to check (checked on this thread). */
class CountingVerifier implements SignatureVerifier {
  readonly threads = 1;
  checks = 0;
  async verify(checks: readonly SignatureCheck[]): Promise<boolean[]> {
    this.checks += checks.length;
    return checks.map((c) => ed25519Verify(c.publicKey, c.message, c.signature));
  }
  async close(): Promise<void> {}
}

test('transactions their senders cannot pay, re-gossiped in new batch orders, cost no signature check', async () => {
  // The attack: sign transactions from keys that hold nothing once, then gossip them over and
  // over, each time in another order (another message id). Refused for funds only after their
  // signature check, every delivery had the node check them all again, and filled its queue.
  const verifier = new CountingVerifier();
  const { mempool, queue } = setup({}, verifier);
  const reactor = new MempoolReactor({
    clock: systemClock,
    admitTx: () => {
      throw new Error('unused: batches go through the admission queue');
    },
    admitTxs: (envs) => queue.submit(envs),
    publishBatch: () => {},
    connected: () => false,
  });
  // Keys 500… are not in the dev genesis: balance 0.
  const junk = Array.from({ length: 64 }, (_, i) => tx(500 + i, 0n));
  const verdicts = new Set<string>();
  for (let round = 0; round < 20; round++) {
    const order = junk.map((e) => e.bytes);
    for (let k = 0; k < round; k++) order.push(order.shift()!);
    verdicts.add(await reactor.onTxGossip(encode(txBatchCodec, order), 'relay'));
  }
  assert.equal(verifier.checks, 0);
  // Not the relay's fault (a block may have funded them where it came from): ignored, not scored.
  assert.deepEqual([...verdicts], ['ignore']);
  assert.equal(mempool.size, 0);
  const [refusal] = await queue.submit([junk[0]!]);
  assert.ok(refusal instanceof ValidationError && refusal.code === 'INSUFFICIENT_FUNDS');
  // A funded sender's transaction is still checked and admitted.
  const [ok] = await queue.submit([tx(1, 0n)]);
  assert.deepEqual(ok, { replaced: false });
  assert.equal(verifier.checks, 1);
});

test('a batch that replaces a pending transaction by a cheaper one, then spends the difference: both admitted', async () => {
  // The balance screen before the signature checks sees the pool as it is before the batch: the
  // replaced transaction's spending still counted, it refused the next nonce, which main admitted
  // (gossip carries an RPC client's submissions of 20 ms in one batch).
  const k = devKey(1);
  const balance = getAccount(state, k.address).balance;
  const mk = (nonce: bigint, amount: bigint, fee: bigint) =>
    envelopeFromSigned(
      signTransaction(
        {
          chainId: genesis.chainId,
          signer: k.publicKey,
          nonce,
          expiresAt: 100n,
          actions: [{ type: 'transfer' as const, to: devKey(9).address, amount, memo: new Uint8Array(0) }],
          fee,
        },
        k.seed,
      ),
    );
  const fee = 10n ** 15n;
  const verifier = new CountingVerifier();
  const { mempool, queue } = setup({}, verifier);
  // Pending: nonce 0 sends nearly everything.
  assert.deepEqual((await queue.submit([mk(0n, balance - 2n * fee, fee)]))[0], { replaced: false });
  const results = await queue.submit([mk(0n, 1n, 2n * fee), mk(1n, balance / 2n, fee)]);
  assert.deepEqual(results, [{ replaced: true }, { replaced: false }]);
  assert.equal(mempool.size, 2);
  // Its own cost beyond the balance is still refused before any signature check.
  const before = verifier.checks;
  const [next2, beyond] = await queue.submit([mk(2n, 1n, fee), mk(3n, balance, fee)]);
  assert.deepEqual(next2, { replaced: false });
  assert.ok(beyond instanceof ValidationError && beyond.code === 'INSUFFICIENT_FUNDS');
  assert.equal(verifier.checks - before, 1);
});

describe('a gossiped batch holding a copy refused before its signature check', () => {
  // The attack: a fee-paying transaction and a forged copy of one this node holds, in one batch.
  // The copy is refused here as a duplicate (its hash leaves the signature out), its signature
  // never checked; forwarded whole, the batch reaches a node without that transaction, which
  // checks the signature and scores this node (its relay) down: a few batches, and honest relays
  // ban each other. Not forwarded: what this node admitted from it, it publishes itself.
  const published: TxEnvelope[][] = [];
  const reactorOn = (admit: Pick<MempoolReactorOptions, 'admitTx' | 'admitTxs'>) =>
    new MempoolReactor({
      clock: systemClock,
      ...admit,
      publishBatch: (data) => published.push(decode(txBatchCodec, data).map((b) => envelopeFromBytes(b))),
      connected: () => true,
    });
  const batchOf = (...envs: TxEnvelope[]) =>
    encode(
      txBatchCodec,
      envs.map((e) => e.bytes),
    );
  const hashes = (envs: readonly TxEnvelope[] | undefined) =>
    envs?.map((e) => Buffer.from(e.hash).toString('hex'));

  for (const path of ['the admission queue', 'direct admission'] as const) {
    test(`${path}: not forwarded whole, the valid transaction published by this node; an honest batch forwarded`, async () => {
      published.length = 0;
      const { mempool, queue } = setup();
      const reactor = reactorOn(
        path === 'the admission queue'
          ? {
              admitTx: () => {
                throw new Error('unused: batches go through the admission queue');
              },
              admitTxs: (envs) => queue.submit(envs),
            }
          : { admitTx: (env) => mempool.add(env, state, DEFAULT_PARAMS, next) },
      );
      const held = tx(1, 0n);
      assert.equal(
        await reactor.onTxGossip(batchOf(held), 'relay'),
        'accept',
        'a checked batch is forwarded',
      );
      reactor.flushTxs();
      assert.equal(published.length, 0, 'gossip forwards it: this node does not publish it again');

      const fresh = tx(2, 0n);
      const mixed = batchOf(fresh, forged(held));
      assert.equal(
        await reactor.onTxGossip(mixed, 'relay'),
        'ignore',
        'not forwarded, its sender not scored',
      );
      if (path === 'the admission queue') {
        const [copy] = await queue.submit([forged(held)]);
        assert.ok(copy instanceof ValidationError && copy.code === 'DUPLICATE');
        assert.equal(refusedAfterSignatureCheck(copy), false);
      }
      reactor.flushTxs();
      assert.deepEqual(published.map(hashes), [hashes([fresh])], 'the admitted one alone, once');
      assert.equal(mempool.size, 2);

      // What a node without `held` makes of that batch: the relay that forwarded it is to blame.
      const behind = setup();
      const downstream = reactorOn({ admitTx: () => {}, admitTxs: (envs) => behind.queue.submit(envs) });
      assert.equal(await downstream.onTxGossip(mixed, 'this node'), 'reject');
      reactor.stop();
      downstream.stop();
    });
  }

  test('a batch whose only refusal came after its signature check is forwarded as before', async () => {
    published.length = 0;
    const { queue } = setup();
    const reactor = reactorOn({ admitTx: () => {}, admitTxs: (envs) => queue.submit(envs) });
    // A nonce too far ahead is refused only once its signature verified: a node past this one
    // checks that signature too, and finds it good.
    const gap = tx(3, 1_000n);
    const [refusal] = await setup().queue.submit([gap]);
    assert.ok(refusal instanceof ValidationError && refusal.code === 'NONCE_GAP');
    // Deferred while this node is behind, it is still a refusal after the check.
    assert.ok(refusedAfterSignatureCheck(new SyncingRefusal(refusal, 1_000)));
    assert.equal(await reactor.onTxGossip(batchOf(tx(4, 0n), gap), 'relay'), 'accept');
    reactor.flushTxs();
    assert.equal(published.length, 0, 'gossip forwards it: this node does not publish it again');
    reactor.stop();
  });
});
