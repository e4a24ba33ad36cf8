/**
 * A block's signatures checked on worker threads before it executes: the transactions' own and the
 * chip answers of its heartbeats. Execution skips only what a worker found valid; a forged
 * signature still fails in order, with the same error as without the pre-check.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import {
  type Action,
  type BlockContext,
  BlockExecutor,
  blockEventsCodec,
  challengesAsOf,
  chipClass,
  DEV_SOFT_VENDOR,
  devSoftChipId,
  ed25519Sign,
  ed25519Verify,
  encode,
  envelopeFromBytes,
  envelopeFromSigned,
  envelopeSignatureCheck,
  epochOf,
  executeBlock,
  executeBlockAssuming,
  genesisStateWrites,
  getChip,
  getPociParams,
  getRecentHash,
  type HeartbeatAnswer,
  type HeartbeatEvidence,
  heartbeatChallenge,
  heartbeatSignatureChecks,
  MemoryState,
  minimumFee,
  registrationMessage,
  type StateWrite,
  settleAssumed,
  sha256,
  signedTransactionCodec,
  signTransaction,
  type TxEnvelope,
  toHex,
  utf8,
  ValidationError,
} from '@unc/core';
import fc from 'fast-check';
import { BlockPreverifier } from '../../src/consensus/block-preverify.js';
import { DEV_MODELS, devGenesis, devKey, devValidator } from '../../src/dev.js';
import {
  type SignatureCheck,
  type SignatureVerifier,
  VerifyPool,
  VerifyPoolBusy,
} from '../../src/verify-pool.js';
import { type Key, namedKey } from '../fixtures.js';

const key = namedKey;

const genesis = devGenesis({ time: new Date('2026-01-01T00:00:00Z'), epochBlocks: 10 });
const owner = devKey(9);

class Chain {
  readonly state = new MemoryState();
  height = 0n;
  time = genesis.genesisTime;
  constructor() {
    this.state.apply(genesisStateWrites(genesis));
  }
  hashOf(h: bigint): Uint8Array {
    return sha256(utf8(`block ${h}`));
  }
  beaconOf(h: bigint): Uint8Array {
    return sha256(utf8(`beacon ${h}`));
  }
  head() {
    return { height: this.height, hash: this.hashOf(this.height), beacon: this.beaconOf(this.height) };
  }
  next(): BlockContext {
    return {
      chainId: genesis.chainId,
      height: this.height + 1n,
      time: this.time + 1000n,
      proposer: devValidator().publicKey,
      prevHash: this.hashOf(this.height),
      prevBeacon: this.beaconOf(this.height),
      beacon: this.beaconOf(this.height + 1n),
    };
  }
  block(txs: TxEnvelope[] = []): void {
    const ex = new BlockExecutor(this.state, this.next());
    for (const t of txs) ex.apply(t);
    this.state.apply(ex.finish().overlay.changes());
    this.height = ex.ctx.height;
    this.time = ex.ctx.time;
  }
}

function tx(from: Key, nonce: bigint, actions: Action[]): TxEnvelope {
  const base = { chainId: genesis.chainId, signer: from.publicKey, nonce, expiresAt: 500n, actions, fee: 0n };
  const size = encode(signedTransactionCodec, { tx: base, signature: new Uint8Array(64) }).length;
  const fee = minimumFee(genesis.params, size, actions.length);
  return envelopeFromSigned(signTransaction({ ...base, fee }, from.seed));
}

/** A registered dev chip and a heartbeat answering one of its open slots on the next block. */
function chainWithAnswer(): { chain: Chain; answer: HeartbeatAnswer } {
  const chain = new Chain();
  chain.block();
  const chip = key('dev chip for the pre-verify tests');
  const message = registrationMessage(genesis.chainId, owner.address, chain.hashOf(chain.height));
  chain.block([
    tx(owner, 0n, [
      {
        type: 'registerChip',
        anchorHeight: chain.height,
        evidence: {
          type: 'dev-soft',
          vendorId: DEV_SOFT_VENDOR,
          publicKey: chip.publicKey,
          modelId: DEV_MODELS[0]!.modelId,
          signature: ed25519Sign(chip.seed, message),
        },
      },
    ]),
  ]);
  const chipId = devSoftChipId(chip.publicKey);
  const p = getPociParams(chain.state);
  for (let i = 0; i < 200; i++) {
    chain.block();
    const next = chain.height + 1n;
    const epoch = epochOf(next, p);
    if (epoch < getChip(chain.state, chipId)!.firstEpoch) continue;
    const heights = challengesAsOf(chain.state, epoch, chipClass(chipId, p), chain.head(), p);
    const slot = heights.findIndex((h) => h < next && next <= h + p.answerWindowBlocks);
    if (slot < 0) continue;
    const slotHash = getRecentHash(chain.state, heights[slot]!) ?? chain.hashOf(heights[slot]!);
    const signature = ed25519Sign(chip.seed, heartbeatChallenge(genesis.chainId, chipId, slotHash));
    return { chain, answer: { chipId, epoch, slot, evidence: { type: 'dev-soft', signature } } };
  }
  throw new Error('no open slot found');
}

const pool = new VerifyPool({ threads: 2, batchSize: 4 });
after(() => pool.close());

describe('block pre-verification', () => {
  test('gathers the chip answer with the message execution will check', () => {
    const { chain, answer } = chainWithAnswer();
    const hb = tx(owner, 1n, [{ type: 'heartbeat', answers: [answer] }]);
    const checks = heartbeatSignatureChecks(chain.state, genesis.chainId, hb, chain.head());
    assert.equal(checks.length, 1);
    assert.deepEqual(checks[0]!.signature, (answer.evidence as { signature: Uint8Array }).signature);
  });

  test('the transaction and answer signatures are checked on the pool; execution skips exactly those', async () => {
    const { chain, answer } = chainWithAnswer();
    const hb = tx(owner, 1n, [{ type: 'heartbeat', answers: [answer] }]);
    const transfer = tx(devKey(1), 0n, [
      { type: 'transfer', to: devKey(2).address, amount: 1n, memo: new Uint8Array(0) },
    ]);
    // With the calling thread checking its share (one of the three) or idling until the pool answers.
    for (const shareWithCaller of [false, true]) {
      const pre = new BlockPreverifier(pool, { shareWithCaller });
      const envs = pre.decode({ txs: [hb.bytes, transfer.bytes] })!;
      assert.equal(await pre.preverify(envs, chain.state, genesis.chainId, chain.head(), () => false), 3);
      assert.ok(envs.every((e) => pre.isTxVerified(e)));
      // Nothing left to check the second time.
      assert.equal(await pre.preverify(envs, chain.state, genesis.chainId, chain.head(), () => false), 0);
      const run = () =>
        executeBlock(chain.state, envs, chain.next(), {
          isSignatureVerified: () => true,
          isEd25519Verified: pre.isEd25519Verified,
        });
      assert.equal(run().results.length, 2);
    }
  });

  test('a forged answer or transaction signature fails exactly as it does without the pre-check', async () => {
    const { chain, answer } = chainWithAnswer();
    const bad = Uint8Array.from((answer.evidence as { signature: Uint8Array }).signature);
    bad[5]! ^= 1;
    const forgedAnswer = tx(owner, 1n, [
      { type: 'heartbeat', answers: [{ ...answer, evidence: { type: 'dev-soft', signature: bad } }] },
    ]);
    const transfer = tx(devKey(1), 0n, [
      { type: 'transfer', to: devKey(2).address, amount: 1n, memo: new Uint8Array(0) },
    ]);
    const forgedTx = Uint8Array.from(transfer.bytes);
    forgedTx[forgedTx.length - 2]! ^= 1;
    for (const [block, shareWithCaller] of [
      [[forgedAnswer.bytes], false],
      [[forgedTx], false],
      [[forgedAnswer.bytes, transfer.bytes], true],
      [[forgedTx, forgedAnswer.bytes], true],
    ] as [Uint8Array[], boolean][]) {
      const pre = new BlockPreverifier(pool, { shareWithCaller });
      const envs = pre.decode({ txs: block })!;
      await pre.preverify(envs, chain.state, genesis.chainId, chain.head(), () => false);
      const codeOf = (opts: Parameters<typeof executeBlock>[3]) => {
        try {
          executeBlock(chain.state, envs, chain.next(), opts);
          return null;
        } catch (err) {
          assert.ok(err instanceof ValidationError);
          return err.code;
        }
      };
      const withPre = codeOf({
        isSignatureVerified: (h) => envs.some((e) => Buffer.compare(e.hash, h) === 0 && pre.isTxVerified(e)),
        isEd25519Verified: pre.isEd25519Verified,
      });
      const without = codeOf({});
      assert.ok(withPre !== null);
      assert.equal(withPre, without);
    }
  });

  test('a pass is remembered for the bytes that were verified, even if the block buffer changes meanwhile', async () => {
    const { chain, answer } = chainWithAnswer();
    const hb = tx(owner, 1n, [{ type: 'heartbeat', answers: [answer] }]);
    const raw = Uint8Array.from(hb.bytes);
    for (const shareWithCaller of [false, true]) {
      const pre = new BlockPreverifier(pool, { shareWithCaller });
      const envs = pre.decode({ txs: [Uint8Array.from(raw)] })!;
      const check = heartbeatSignatureChecks(chain.state, genesis.chainId, envs[0]!, chain.head())[0]!;
      const signature = check.signature;
      const original = Uint8Array.from(signature);
      const running = pre.preverify(envs, chain.state, genesis.chainId, chain.head(), () => false);
      // The decoded answer's signature is a view into the block's bytes: they change while the
      // workers check (a buffer reused by whoever owns it).
      signature[5]! ^= 1;
      await running;
      assert.equal(
        pre.isEd25519Verified(check.publicKey, check.message, signature),
        false,
        'a signature nobody checked counts as verified',
      );
      assert.ok(pre.isEd25519Verified(check.publicKey, check.message, original));
    }
  });

  test('a forged signature early in a block stops the pre-check: the checks past it are bounded, not the whole block', async () => {
    // A Byzantine proposer's block: its first transaction carries a forged signature (execution
    // stops there), followed by hundreds of valid ones. Before, every validator's workers checked
    // all of them; now at most `chunksAhead` chunks go to the pool past the failure.
    const chain = new Chain();
    const transfers = Array.from({ length: 300 }, (_, i) =>
      tx(key(`pre-check bound sender ${i}`), 0n, [
        { type: 'transfer', to: devKey(2).address, amount: 1n, memo: new Uint8Array(0) },
      ]),
    );
    const chunkChecks = 16;
    const chunksAhead = 2;
    for (const forgedAt of [0, 100]) {
      const raw = transfers.map((t) => t.bytes);
      const bad = Uint8Array.from(transfers[forgedAt]!.bytes);
      bad[bad.length - 2]! ^= 1;
      raw[forgedAt] = bad;
      for (const shareWithCaller of [false, true]) {
        const verifier = new CountingVerifier();
        const pre = new BlockPreverifier(verifier, { shareWithCaller, chunkChecks, chunksAhead });
        const envs = pre.decode({ txs: raw })!;
        const ran = await pre.preverify(envs, chain.state, genesis.chainId, chain.head(), () => false);
        // What ran: the workers' checks and, with shareWithCaller, the calling thread's share.
        assert.ok(verifier.checks <= ran);
        const total = ran;
        assert.ok(
          total <= forgedAt + chunkChecks * chunksAhead,
          `${total} checks for a block that fails at transaction ${forgedAt} (bound ${forgedAt + chunkChecks * chunksAhead})`,
        );
        // Everything before the forged transaction was still checked and passed.
        for (let i = 0; i < forgedAt; i++) assert.ok(pre.isTxVerified(envs[i]!), `transaction ${i}`);
        assert.equal(pre.isTxVerified(envs[forgedAt]!), false);
      }
    }
    // An honest block: every signature is checked, none is left to execution.
    const verifier = new CountingVerifier();
    const pre = new BlockPreverifier(verifier, { chunkChecks, chunksAhead });
    const envs = pre.decode({ txs: transfers.map((t) => t.bytes) })!;
    assert.equal(await pre.preverify(envs, chain.state, genesis.chainId, chain.head(), () => false), 300);
    assert.equal(verifier.checks, 300);
    assert.ok(envs.every((e) => pre.isTxVerified(e)));
  });

  test('with shareWithCaller the calling thread stops at its own first failure, not at the end of its share', async () => {
    // The consensus thread checks its share of each chunk (the first part, one in threads + 1).
    // A block forged at its first transaction made it go on through the rest of that share (256
    // checks with the default chunk and one worker) for a block that fails at once: work the
    // consensus thread did before, and without, any check of the block's validity.
    const chain = new Chain();
    const transfers = Array.from({ length: 40 }, (_, i) =>
      tx(key(`caller share sender ${i}`), 0n, [
        { type: 'transfer', to: devKey(2).address, amount: 1n, memo: new Uint8Array(0) },
      ]),
    );
    const raw = transfers.map((t) => t.bytes);
    const bad = Uint8Array.from(raw[0]!);
    bad[bad.length - 2]! ^= 1;
    raw[0] = bad;
    const verifier = new CountingVerifier();
    // One chunk of 40: this thread's share is the first 20, the worker's the last 20.
    const pre = new BlockPreverifier(verifier, { shareWithCaller: true, chunkChecks: 40, chunksAhead: 2 });
    const envs = pre.decode({ txs: raw })!;
    const ran = await pre.preverify(envs, chain.state, genesis.chainId, chain.head(), () => false);
    assert.equal(verifier.checks, 20, 'the worker checked its part of the chunk already sent');
    assert.equal(
      ran - verifier.checks,
      1,
      `this thread ran ${ran - verifier.checks} checks past a failure at its first`,
    );
    assert.equal(pre.isTxVerified(envs[0]!), false);
  });

  test("with shareWithCaller the calling thread checks one chunk's share per turn, also while it fills the pool", async () => {
    // The consensus thread yields between chunks (it awaits the workers' answers); at the start it
    // sends `chunksAhead` chunks at once, and it checked its share of each of them before its
    // first yield: twice the time it is meant to hold the thread (about 40 ms, not 20, by default).
    const chain = new Chain();
    const transfers = Array.from({ length: 80 }, (_, i) =>
      tx(key(`caller turn sender ${i}`), 0n, [
        { type: 'transfer', to: devKey(2).address, amount: 1n, memo: new Uint8Array(0) },
      ]),
    );
    const sent: number[] = [];
    const verifier = new CountingVerifier();
    const verify = verifier.verify.bind(verifier);
    verifier.verify = (checks) => {
      sent.push(checks.length);
      return verify(checks);
    };
    const pre = new BlockPreverifier(verifier, { shareWithCaller: true, chunkChecks: 40, chunksAhead: 2 });
    const envs = pre.decode({ txs: transfers.map((t) => t.bytes) })!;
    const running = pre.preverify(envs, chain.state, genesis.chainId, chain.head(), () => false);
    // What this thread checked before it first yielded: the chunks sent less what went to the pool.
    const before = sent.length * 40 - sent.reduce((a, b) => a + b, 0);
    assert.equal(sent.length, 2, 'both chunks are on the pool from the start');
    assert.ok(before <= 20, `${before} checks on this thread before its first yield (one share is 20)`);
    assert.equal(await running, 80);
    assert.ok(envs.every((e) => pre.isTxVerified(e)));
  });

  test('with the VerifyPool, the calling thread takes the checks the workers have not started, once the caller waits (not before the block it executes meanwhile)', async () => {
    const chain = new Chain();
    const transfers = Array.from({ length: 120 }, (_, i) =>
      tx(key(`assist sender ${i}`), 0n, [
        { type: 'transfer', to: devKey(2).address, amount: 1n, memo: new Uint8Array(0) },
      ]),
    );
    const one = new VerifyPool({ threads: 1, batchSize: 8 });
    try {
      const pre = new BlockPreverifier(one, { shareWithCaller: true });
      const envs = pre.decode({ txs: transfers.map((t) => t.bytes) })!;
      const running = pre.preverifyAll(envs, chain.state, genesis.chainId, chain.head(), () => false);
      // What the caller does before it waits (block sync executes the block before this one):
      // the calling thread has checked nothing of this block yet.
      assert.equal(one.assistedOnCaller, 0);
      assert.deepEqual(await running, { checked: 120, complete: true });
      // Then it took what the worker had not started (most of it: the worker holds 2 of 15 batches).
      assert.ok(one.assistedOnCaller > 0, `${one.assistedOnCaller} checks on the calling thread`);
      assert.ok(envs.every((e) => pre.isTxVerified(e)));
      // A forged signature: the calling thread stops at it, and the pre-check says it did not go through.
      const raw = transfers.map((t) => t.bytes);
      const bad = Uint8Array.from(raw[60]!);
      bad[bad.length - 2]! ^= 1;
      raw[60] = bad;
      const fresh = new BlockPreverifier(one, { shareWithCaller: true });
      const forged = fresh.decode({ txs: raw })!;
      const r = await fresh.preverifyAll(forged, chain.state, genesis.chainId, chain.head(), () => false);
      assert.equal(r.complete, false);
      assert.equal(fresh.isTxVerified(forged[60]!), false);
      for (let i = 0; i < 60; i++) assert.ok(fresh.isTxVerified(forged[i]!), `transaction ${i}`);
    } finally {
      await one.close();
    }
  });

  test('a pre-check nobody waits on yet (sync look-ahead, while the block before it executes) is left to the workers: the calling thread helps only once its caller waits', async () => {
    const chain = new Chain();
    const transfers = Array.from({ length: 96 }, (_, i) =>
      tx(key(`look-ahead sender ${i}`), 0n, [
        { type: 'transfer', to: devKey(2).address, amount: 1n, memo: new Uint8Array(0) },
      ]),
    );
    const one = new VerifyPool({ threads: 1, batchSize: 8 });
    try {
      const pre = new BlockPreverifier(one, { shareWithCaller: true, chunkChecks: 16 });
      const envs = pre.decode({ txs: transfers.map((t) => t.bytes) })!;
      let waits = false;
      const running = pre.preverifyAll(
        envs,
        chain.state,
        genesis.chainId,
        chain.head(),
        () => false,
        () => false,
        () => waits,
      );
      // The block before it executes meanwhile, awaiting its reads and writes: turns of the loop.
      for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
      assert.equal(one.assistedOnCaller, 0, 'no check on the calling thread while nobody waits');
      waits = true;
      assert.deepEqual(await running, { checked: 96, complete: true });
      assert.ok(envs.every((e) => pre.isTxVerified(e)));
    } finally {
      await one.close();
    }
  });

  test("another call's forged check on the pool (the next round's proposal, a look-ahead) does not stop this block's pre-check", async () => {
    // The calling thread's help (assist) once took every consensus check of the pool and stopped at
    // the first failure among them: a forged signature in any other block made this one's pre-check
    // stop at once, and the rest of this block was left to execution, one signature at a time.
    const chain = new Chain();
    const transfers = Array.from({ length: 64 }, (_, i) =>
      tx(key(`scoped assist sender ${i}`), 0n, [
        { type: 'transfer', to: devKey(2).address, amount: 1n, memo: new Uint8Array(0) },
      ]),
    );
    const one = new VerifyPool({ threads: 1, batchSize: 8, depth: 1 });
    try {
      const forgedElsewhere = transfers.slice(0, 24).map((t, i) => {
        const c = envelopeSignatureCheck(t);
        const signature = Uint8Array.from(c.signature);
        if (i % 2 === 0) signature[0]! ^= 1;
        return { publicKey: c.publicKey, message: c.message, signature };
      });
      const elsewhere = one.verify(forgedElsewhere, 'consensus');
      const pre = new BlockPreverifier(one, { shareWithCaller: true, chunkChecks: 16 });
      const envs = pre.decode({ txs: transfers.map((t) => t.bytes) })!;
      const r = await pre.preverifyAll(envs, chain.state, genesis.chainId, chain.head(), () => false);
      assert.deepEqual(r, { checked: 64, complete: true });
      assert.ok(envs.every((e) => pre.isTxVerified(e)));
      assert.deepEqual(
        await elsewhere,
        forgedElsewhere.map((_, i) => i % 2 !== 0),
      );
    } finally {
      await one.close();
    }
  });

  test('an abandoned pre-check (sync: the block before it failed) sends nothing more: the work left is what is in flight', async () => {
    // Block sync starts the next block's pre-check while the block before it executes; a peer
    // whose block fails served the next one too, a block's worth of valid signatures it need not
    // be able to commit. Before, that pre-check ran to its end.
    const chain = new Chain();
    const transfers = Array.from({ length: 300 }, (_, i) =>
      tx(key(`abandoned pre-check sender ${i}`), 0n, [
        { type: 'transfer', to: devKey(2).address, amount: 1n, memo: new Uint8Array(0) },
      ]),
    );
    const chunkChecks = 16;
    const chunksAhead = 2;
    const verifier = new CountingVerifier();
    const pre = new BlockPreverifier(verifier, { chunkChecks, chunksAhead });
    const envs = pre.decode({ txs: transfers.map((t) => t.bytes) })!;
    let abandoned = false;
    const running = pre.preverify(
      envs,
      chain.state,
      genesis.chainId,
      chain.head(),
      () => false,
      () => abandoned,
    );
    // The block before it fails while the first chunks are on the pool.
    abandoned = true;
    const ran = await running;
    assert.ok(ran <= chunkChecks * chunksAhead, `${ran} checks after the pre-check was abandoned`);
    assert.equal(verifier.checks, ran);
  });

  test('a pool closed mid pre-check (the node stops) ends it without an error, and nothing it did not answer counts as verified', async () => {
    const chain = new Chain();
    const transfers = Array.from({ length: 200 }, (_, i) =>
      tx(key(`closed pool sender ${i}`), 0n, [
        { type: 'transfer', to: devKey(2).address, amount: 1n, memo: new Uint8Array(0) },
      ]),
    );
    const closing = new VerifyPool({ threads: 1, batchSize: 8 });
    const pre = new BlockPreverifier(closing, { chunkChecks: 64, chunksAhead: 2 });
    const envs = pre.decode({ txs: transfers.map((t) => t.bytes) })!;
    const running = pre.preverify(envs, chain.state, genesis.chainId, chain.head(), () => false);
    await closing.close();
    // Before, close checked the queue on this thread and answered "valid"; with the rejection
    // unhandled here, the pre-check threw instead.
    assert.equal(await running, 0);
    assert.equal(envs.filter((e) => pre.isTxVerified(e)).length, 0);
  });

  test('optimistic: a block executed while its checks are in flight; a forged answer or transaction signature taken on trust refuses it with the inline error', async () => {
    const { chain, answer } = chainWithAnswer();
    const bad = Uint8Array.from((answer.evidence as { signature: Uint8Array }).signature);
    bad[5]! ^= 1;
    const hb = tx(owner, 1n, [{ type: 'heartbeat', answers: [answer] }]);
    const forgedAnswer = tx(owner, 1n, [
      { type: 'heartbeat', answers: [{ ...answer, evidence: { type: 'dev-soft', signature: bad } }] },
    ]);
    const transfer = (i: number) =>
      tx(devKey(1), BigInt(i), [
        { type: 'transfer', to: devKey(2).address, amount: 1n, memo: new Uint8Array(0) },
      ]);
    const forged = (t: TxEnvelope) => {
      const b = Uint8Array.from(t.bytes);
      b[b.length - 2]! ^= 1;
      return b;
    };
    for (const [name, block] of [
      ['valid', [hb.bytes, transfer(0).bytes, transfer(1).bytes]],
      ['forged answer first', [forgedAnswer.bytes, transfer(0).bytes, transfer(1).bytes]],
      ['forged answer last', [transfer(0).bytes, transfer(1).bytes, forgedAnswer.bytes]],
      ['forged transaction in the middle', [hb.bytes, forged(transfer(0)), transfer(1).bytes]],
      ['forged transaction last', [hb.bytes, transfer(0).bytes, forged(transfer(1))]],
    ] as [string, Uint8Array[]][]) {
      for (const shareWithCaller of [false, true]) {
        const pre = new BlockPreverifier(pool, { shareWithCaller });
        const envs = pre.decode({ txs: block })!;
        const checks = pre.launch(envs, chain.state, genesis.chainId, chain.head(), () => false)!;
        assert.equal(checks.size, 4, name);
        const run = executeBlockAssuming(chain.state, envs, chain.next(), {}, checks.inFlight, pre.hasPassed);
        // Execution checked no signature itself: every one was in flight.
        assert.equal(run.assumed.length, 4, name);
        const results = await checks.results(run.assumed.map((a) => a.key));
        const outcome = (f: () => { overlay: { changes(): StateWrite[] } }) => {
          try {
            return digestOf(f().overlay.changes());
          } catch (err) {
            assert.ok(err instanceof ValidationError);
            return `${err.code}: ${err.message}`;
          }
        };
        const optimistic = outcome(() => settleAssumed(run, results));
        assert.equal(
          optimistic,
          outcome(() => executeBlock(chain.state, envs, chain.next())),
          name,
        );
        assert.equal(name === 'valid', !/SIGNATURE/.test(optimistic), `${name}: ${optimistic}`);
      }
    }
  });

  test('optimistic: a chunk the pool refuses (busy) is no verdict: the checks execution relied on are made on the calling thread', async () => {
    const { chain, answer } = chainWithAnswer();
    const hb = tx(owner, 1n, [{ type: 'heartbeat', answers: [answer] }]);
    const busy: SignatureVerifier = {
      threads: 1,
      verify: () => Promise.reject(new VerifyPoolBusy('consensus', 0)),
      close: async () => {},
    };
    const pre = new BlockPreverifier(busy, { shareWithCaller: true });
    const envs = pre.decode({ txs: [hb.bytes] })!;
    const checks = pre.launch(envs, chain.state, genesis.chainId, chain.head(), () => false)!;
    const run = executeBlockAssuming(chain.state, envs, chain.next(), {}, checks.inFlight, pre.hasPassed);
    assert.equal(run.assumed.length, 2);
    assert.deepEqual(await checks.results(run.assumed.map((a) => a.key)), [true, true]);
    assert.equal(settleAssumed(run, [true, true]).results.length, 1);
    // Remembered: a second execution of the same block takes them as passes, nothing assumed.
    const again = executeBlockAssuming(chain.state, envs, chain.next(), {}, checks.inFlight, pre.hasPassed);
    assert.equal(again.assumed.length, 0);
  });

  /** Transfers from one key, `forgedAt` with a signature that does not verify. */
  function transfersWithForged(count: number, forgedAt: number): Uint8Array[] {
    return Array.from({ length: count }, (_, i) => {
      const t = tx(devKey(1), BigInt(i), [
        { type: 'transfer', to: devKey(2).address, amount: 1n, memo: new Uint8Array(0) },
      ]);
      if (i !== forgedAt) return t.bytes;
      const b = Uint8Array.from(t.bytes);
      b[b.length - 2]! ^= 1;
      return b;
    });
  }

  test("optimistic: a block's first third of checks goes to the workers before the rest is gathered (they would idle while this thread gathers), the rest in one chunk; the verdict is inline's", async () => {
    const { chain, answer } = chainWithAnswer();
    const hb = tx(owner, 1n, [{ type: 'heartbeat', answers: [answer] }]);
    const sizes: number[] = [];
    const recording: SignatureVerifier = {
      threads: 1,
      verify: (checks) => {
        sizes.push(checks.length);
        return Promise.resolve(checks.map((c) => ed25519Verify(c.publicKey, c.message, c.signature)));
      },
      close: async () => {},
    };
    const pre = new BlockPreverifier(recording, { shareWithCaller: true });
    // 10 checks: the heartbeat transaction's own and its answer, and 8 transfers'.
    const envs = pre.decode({ txs: [hb.bytes, ...transfersWithForged(8, -1)] })!;
    const checks = pre.launch(envs, chain.state, genesis.chainId, chain.head(), () => false)!;
    assert.deepEqual(sizes, [4, 6]);
    assert.equal(checks.size, 10);
    const run = executeBlockAssuming(chain.state, envs, chain.next(), {}, checks.inFlight, pre.hasPassed);
    assert.equal(run.assumed.length, 10);
    const done = settleAssumed(run, await checks.results(run.assumed.map((a) => a.key)));
    assert.equal(
      digestOf(done.overlay.changes()),
      digestOf(executeBlock(chain.state, envs, chain.next()).overlay.changes()),
    );
  });

  test("property: launch sends every gathered check once, in block order (a first chunk of at most a third, then chunks of at most chunkChecks), and the verdict is inline's whatever the pool answers first or refuses (blocks of 0, 1, 2 or more checks, transactions and answers, a forged one anywhere)", async () => {
    const { chain, answer } = chainWithAnswer();
    const good = (answer.evidence as { signature: Uint8Array }).signature;
    const forgedAnswer = Uint8Array.from(good);
    forgedAnswer[7]! ^= 1;
    const outcome = (f: () => { overlay: { changes(): StateWrite[] } }) => {
      try {
        return digestOf(f().overlay.changes());
      } catch (err) {
        assert.ok(err instanceof ValidationError);
        return `${err.code}: ${err.message}`;
      }
    };
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 7 }),
        fc.integer({ min: -1, max: 7 }),
        fc.option(fc.record({ at: fc.integer({ min: 0, max: 7 }), forged: fc.boolean() }), { nil: null }),
        fc.option(fc.integer({ min: 1, max: 5 }), { nil: undefined }),
        fc.boolean(),
        fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 8, maxLength: 8 }),
        async (transfers, forgedAt, heartbeat, chunkChecks, verifiedByMempool, answerOrder) => {
          const txs = transfersWithForged(transfers, forgedAt);
          if (heartbeat) {
            const evidence = { type: 'dev-soft' as const, signature: heartbeat.forged ? forgedAnswer : good };
            const hb = tx(owner, 1n, [{ type: 'heartbeat', answers: [{ ...answer, evidence }] }]);
            txs.splice(Math.min(heartbeat.at, txs.length), 0, hb.bytes);
          }
          // Chunks answered in an order of the run's choosing, some refused (busy): the verdict is
          // the same (the calling thread checks a refused chunk's named checks itself).
          const sent: SignatureCheck[][] = [];
          const answers: (() => void)[] = [];
          const recording: SignatureVerifier = {
            threads: 1,
            verify: (checks) => {
              const k = sent.length;
              sent.push([...checks]);
              return new Promise<boolean[]>((resolve, reject) => {
                answers.push(() =>
                  answerOrder[k % answerOrder.length]! === 0
                    ? reject(new VerifyPoolBusy('consensus', 0))
                    : resolve(checks.map((c) => ed25519Verify(c.publicKey, c.message, c.signature))),
                );
              });
            },
            close: async () => {},
          };
          const pre = new BlockPreverifier(recording, { chunkChecks });
          const envs = pre.decode({ txs })!;
          // The mempool vouches only for transactions whose signature does verify.
          const vouched = (env: TxEnvelope) => {
            if (!verifiedByMempool) return false;
            const c = envelopeSignatureCheck(env);
            return ed25519Verify(c.publicKey, c.message, c.signature);
          };
          const checks = pre.launch(envs, chain.state, genesis.chainId, chain.head(), vouched)!;
          const gathered: SignatureCheck[] = [];
          for (const env of envs) {
            if (!vouched(env)) gathered.push(envelopeSignatureCheck(env));
            gathered.push(...heartbeatSignatureChecks(chain.state, genesis.chainId, env, chain.head()));
          }
          const keyOf = (c: SignatureCheck) =>
            `${toHex(c.publicKey)}:${toHex(c.message)}:${toHex(c.signature)}`;
          const unique = [...new Set(gathered.map(keyOf))];
          assert.deepEqual(sent.flat().map(keyOf), unique, 'every gathered check once, in block order');
          assert.equal(checks.size, unique.length);
          const chunk = Math.max(1, chunkChecks ?? 512);
          let expected = 0;
          for (const env of envs) {
            expected++;
            for (const a of env.stx.tx.actions) if (a.type === 'heartbeat') expected += a.answers.length;
          }
          sent.forEach((part, i) => {
            assert.ok(part.length > 0);
            assert.ok(
              part.length <= (i === 0 ? Math.min(chunk, Math.max(1, Math.ceil(expected / 3))) : chunk),
            );
          });
          const run = executeBlockAssuming(
            chain.state,
            envs,
            chain.next(),
            {},
            checks.inFlight,
            pre.hasPassed,
          );
          const pending = checks.results(run.assumed.map((a) => a.key));
          // Answered later, in the order the run picked (a worker's answers come out of order).
          const order = answers
            .map((_, i) => i)
            .sort((a, b) => answerOrder[a % 8]! - answerOrder[b % 8]! || b - a);
          for (const i of order) {
            await new Promise((resolve) => setImmediate(resolve));
            answers[i]!();
          }
          const results = await pending;
          assert.equal(
            outcome(() => settleAssumed(run, results)),
            outcome(() => executeBlock(chain.state, envs, chain.next())),
          );
        },
      ),
      { numRuns: 60 },
    );
  });

  test('optimistic: once an assumed check failed with every one before it passed, the verdict is in; a later chunk that never answers does not hold it (nor the driver queue awaiting it)', async () => {
    const { chain } = chainWithAnswer();
    // The first chunk answers at once (its first check, the block's first transaction, forged);
    // every later chunk never answers.
    let calls = 0;
    const stuck: SignatureVerifier = {
      threads: 1,
      verify: (checks) => {
        calls++;
        if (calls > 1) return new Promise<boolean[]>(() => {});
        return Promise.resolve(checks.map((c) => ed25519Verify(c.publicKey, c.message, c.signature)));
      },
      close: async () => {},
    };
    const pre = new BlockPreverifier(stuck, { chunkChecks: 2 });
    const envs = pre.decode({ txs: transfersWithForged(6, 0) })!;
    const checks = pre.launch(envs, chain.state, genesis.chainId, chain.head(), () => false)!;
    assert.equal(calls, 3, 'three chunks in flight');
    const run = executeBlockAssuming(chain.state, envs, chain.next(), {}, checks.inFlight, pre.hasPassed);
    assert.equal(run.assumed.length, 6);
    const waited = await Promise.race([
      checks.results(run.assumed.map((a) => a.key)),
      new Promise<'never'>((resolve) => setTimeout(() => resolve('never'), 2_000)),
    ]);
    assert.notEqual(waited, 'never', 'the results came without the chunks that never answer');
    assert.throws(
      () => settleAssumed(run, waited as boolean[]),
      (err) =>
        err instanceof ValidationError && err.code === 'BAD_SIGNATURE' && /^transaction 0:/.test(err.message),
    );
    // The same error as in order.
    assert.throws(
      () => executeBlock(chain.state, envs, chain.next()),
      (err) =>
        err instanceof ValidationError && err.code === 'BAD_SIGNATURE' && /^transaction 0:/.test(err.message),
    );
  });

  test('optimistic: with the pool refusing (busy), the calling thread checks what execution relied on in its order and stops at the first that fails (in order, execution stops there too)', async () => {
    const { chain } = chainWithAnswer();
    const busy: SignatureVerifier = {
      threads: 1,
      verify: () => Promise.reject(new VerifyPoolBusy('consensus', 0)),
      close: async () => {},
    };
    const pre = new BlockPreverifier(busy, { shareWithCaller: true, chunkChecks: 3 });
    const envs = pre.decode({ txs: transfersWithForged(8, 1) })!;
    const checks = pre.launch(envs, chain.state, genesis.chainId, chain.head(), () => false)!;
    const run = executeBlockAssuming(chain.state, envs, chain.next(), {}, checks.inFlight, pre.hasPassed);
    assert.equal(run.assumed.length, 8);
    const results = await checks.results(run.assumed.map((a) => a.key));
    assert.deepEqual(results.slice(0, 2), [true, false]);
    assert.throws(
      () => settleAssumed(run, results),
      (err) =>
        err instanceof ValidationError && /^transaction 1: invalid transaction signature/.test(err.message),
    );
    // The checks past the forged one were not made here (none is remembered as a pass): a proposer
    // whose forged transaction comes first costs this thread no more checks than in order.
    assert.equal(pre.isTxVerified(envs[0]!), true);
    for (const env of envs.slice(2)) assert.equal(pre.isTxVerified(env), false);
  });

  test("optimistic: a block launched behind another call's checks (the next round's proposal, sent at once) is not queued behind them: the calling thread takes every check of its own the workers have not started", async () => {
    const { chain } = chainWithAnswer();
    const two = new VerifyPool({ threads: 2, batchSize: 4 });
    try {
      // Another block's checks fill both workers' queues first (a proposer of the next round may
      // send its block before this round's arrives; `launch` puts all of it on the pool).
      const k = key('another block');
      const msg = utf8('another block');
      const other = Array.from({ length: 4_000 }, () => ({
        publicKey: k.publicKey,
        message: msg,
        signature: ed25519Sign(k.seed, msg),
      }));
      let otherDone = false;
      void two.verify(other, 'consensus').then(
        () => {
          otherDone = true;
        },
        () => {},
      );
      const pre = new BlockPreverifier(two, { shareWithCaller: true, chunkChecks: 4 });
      const envs = pre.decode({ txs: transfersWithForged(12, -1) })!;
      const checks = pre.launch(envs, chain.state, genesis.chainId, chain.head(), () => false)!;
      const run = executeBlockAssuming(chain.state, envs, chain.next(), {}, checks.inFlight, pre.hasPassed);
      assert.equal(run.assumed.length, 12);
      const before = two.assistedOnCaller;
      const results = await checks.results(run.assumed.map((a) => a.key));
      assert.deepEqual(
        results,
        envs.map(() => true),
      );
      assert.equal(settleAssumed(run, results).results.length, 12);
      // Every one of its checks was made here (none had reached a worker, busy with the other
      // block), so it did not wait for the other block's checks.
      assert.equal(two.assistedOnCaller - before, 12);
      assert.equal(otherDone, false, 'settled before the other block’s checks were done');
    } finally {
      await two.close();
    }
  });

  test('a malformed transaction makes the block undecodable, not a crash', () => {
    const pre = new BlockPreverifier(pool);
    assert.equal(pre.decode({ txs: [new Uint8Array([1, 2, 3])] }), null);
    assert.ok(envelopeFromBytes);
  });

  test('property: with the worker pool or without, a block of hostile answers gets the same verdicts, events and writes', async () => {
    const { chain, answer } = chainWithAnswer();
    const chip = key('dev chip for the pre-verify tests');
    const good = (answer.evidence as { signature: Uint8Array }).signature;
    const challenge = heartbeatSignatureChecks(
      chain.state,
      genesis.chainId,
      heartbeatTx(owner, [answer], 1n),
      chain.head(),
    )[0]!.message;
    // One pre-verifier for every run: passes carry from block to block as in a node.
    const carried = new BlockPreverifier(pool, { shareWithCaller: true });
    type Spec =
      | { kind: 'good' | 'malleated' | 'otherMessage' | 'chipSignedTx' }
      | { kind: 'forged'; bit: number };
    const spec: fc.Arbitrary<Spec> = fc.oneof(
      fc.constantFrom<Spec>(
        { kind: 'good' },
        { kind: 'malleated' },
        { kind: 'otherMessage' },
        { kind: 'chipSignedTx' },
      ),
      fc.integer({ min: 0, max: 511 }).map((bit): Spec => ({ kind: 'forged', bit })),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(spec, { minLength: 1, maxLength: 8 }),
        fc.boolean(),
        fc.boolean(),
        async (specs, shareWithCaller, carry) => {
          const txs: TxEnvelope[] = [];
          specs.forEach((s) => {
            let evidence: HeartbeatEvidence = { type: 'dev-soft', signature: good };
            if (s.kind === 'forged') {
              const bad = Uint8Array.from(good);
              bad[s.bit >> 3]! ^= 1 << (s.bit & 7);
              evidence = { type: 'dev-soft', signature: bad };
            } else if (s.kind === 'malleated') {
              evidence = { type: 'dev-soft', signature: malleated(good) };
            } else if (s.kind === 'otherMessage') {
              const other = sha256(challenge);
              evidence = { type: 'dev-soft', signature: ed25519Sign(chip.seed, other) };
            } else if (s.kind === 'chipSignedTx') {
              // A transaction signed with the chip's own key: its signature is checked (and passes)
              // on the pool; offered as the chip's answer, it is a signature over another message.
              // (Its own answer is refused: the bait is only there for its signature.)
              const bait = heartbeatTx(chip, [
                { ...answer, evidence: { type: 'dev-soft', signature: malleated(good) } },
              ]);
              txs.push(bait);
              evidence = { type: 'dev-soft', signature: bait.stx.signature };
            }
            // From the chip's owner (only it may answer), all at its next nonce: the first that
            // executes takes it, so only the first good answer can get in.
            txs.push(heartbeatTx(owner, [{ ...answer, evidence }], 1n));
          });
          const pre = carry ? carried : new BlockPreverifier(pool, { shareWithCaller });
          const envs = pre.decode({ txs: txs.map((t) => t.bytes) })!;
          await pre.preverify(envs, chain.state, genesis.chainId, chain.head(), () => false);
          const verified = new Set(envs.filter((e) => pre.isTxVerified(e)).map((e) => toHex(e.hash)));
          const unverified = new Set(envs.filter((e) => !pre.isTxVerified(e)).map((e) => toHex(e.hash)));
          const withPool = runBlock(chain, envs, {
            isSignatureVerified: (h) => verified.has(toHex(h)) && !unverified.has(toHex(h)),
            isEd25519Verified: pre.isEd25519Verified,
          });
          const inline = runBlock(chain, envs, {});
          assert.deepEqual(withPool, inline);
          // Exactly the good answers can get in, the first of them only.
          const firstGood = specs.findIndex((s) => s.kind === 'good');
          assert.equal(inline.verdicts.filter((v) => v === 'ok').length, firstGood < 0 ? 0 : 1);
        },
      ),
      { numRuns: 30 },
    );
  });
});

/** A one-worker verifier that counts the checks it is given (and answers what core says). */
class CountingVerifier implements SignatureVerifier {
  readonly threads = 1;
  checks = 0;
  async verify(checks: readonly SignatureCheck[]): Promise<boolean[]> {
    // Answered on a later turn, as a worker would.
    await new Promise((resolve) => setImmediate(resolve));
    this.checks += checks.length;
    return checks.map((c) => ed25519Verify(c.publicKey, c.message, c.signature));
  }
  async close(): Promise<void> {}
}

/** A fee-free heartbeat transaction from `from` at `nonce` (a fresh sender's: 0). */
function heartbeatTx(from: Key, answers: HeartbeatAnswer[], nonce = 0n): TxEnvelope {
  return envelopeFromSigned(
    signTransaction(
      {
        chainId: genesis.chainId,
        signer: from.publicKey,
        nonce,
        expiresAt: 500n,
        actions: [{ type: 'heartbeat', answers }],
        fee: 0n,
      },
      from.seed,
    ),
  );
}

/** The signature with S + L in place of S: the same point equation, refused by the encoding rules. */
function malleated(signature: Uint8Array): Uint8Array {
  const L = 2n ** 252n + 27742317777372353535851937790883648493n;
  let s = 0n;
  for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(signature[i]!);
  s += L;
  const out = Uint8Array.from(signature);
  for (let i = 32; i < 64; i++) {
    out[i] = Number(s & 0xffn);
    s >>= 8n;
  }
  return out;
}

/** The block's transactions applied one by one: each verdict, every event and every write. */
function runBlock(
  chain: Chain,
  envs: readonly TxEnvelope[],
  opts: ConstructorParameters<typeof BlockExecutor>[2],
) {
  const ex = new BlockExecutor(chain.state, chain.next(), opts);
  const verdicts: string[] = [];
  const events = [...ex.blockEvents];
  for (const env of envs) {
    const r = ex.tryApply(env);
    if (r instanceof ValidationError) verdicts.push(r.code);
    else {
      verdicts.push('ok');
      events.push(...r.events);
    }
  }
  const writes: StateWrite[] = ex.finish().overlay.changes();
  return {
    verdicts,
    events: toHex(sha256(encode(blockEventsCodec, events))),
    writes: writes.map((w) => `${toHex(w.key)}=${w.value ? toHex(w.value) : '-'}`),
  };
}

function digestOf(writes: StateWrite[]): string {
  return writes.map((w) => `${toHex(w.key)}=${w.value ? toHex(w.value) : '-'}`).join(',');
}
