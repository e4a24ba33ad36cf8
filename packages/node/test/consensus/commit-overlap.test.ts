/**
 * Block execution overlaps the write of the previous block (docs/consensus.md, "Durability
 * before signing"): over a store whose batch write is held open, the next height starts and its
 * block is built on the decided block's state, but nothing for that height is signed until the
 * write resolves; a write that fails stops consensus for good and reports it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  certificateFromVotes,
  consensusEvidenceCodec,
  duplicateVoteEvidence,
  ed25519PublicKey,
  encode,
  encodeAddress,
  envelopeFromSigned,
  getAccount,
  signTransaction,
  signVote,
  type TxEnvelope,
  toHex,
} from '@unc/core';
import { feeFor, transferAction } from '@unc/sdk';
import { createApi } from '../../src/api.js';
import { BlockWriteError, Chain } from '../../src/chain.js';
import { DEFAULT_CONSENSUS_CONFIG, parseConsensusConfig } from '../../src/consensus/consensus-config.js';
import { type PrivvalStorage, parsePrivval } from '../../src/consensus/privval-store.js';
import { type DevKey, devGenesisJson, devKey, devValidator, devValidatorKey } from '../../src/dev.js';
import { silentLogger } from '../../src/log.js';
import { Mempool } from '../../src/mempool.js';
import { NodeCore } from '../../src/node-core.js';
import type { RpcContext } from '../../src/rpc/context.js';
import { VirtualClock } from '../../src/sim/virtual-clock.js';
import { type BatchOp, ChainDb, type KvStore, MemoryKv } from '../../src/storage/db.js';
import { chainServer } from '../../src/sync.js';
import { MemoryNetworkHub } from './memory-network.js';

/** A store whose batch writes can be held open (a slow fsync) and then released or failed. */
class HeldKv implements KvStore {
  readonly inner = new MemoryKv();
  holding = false;
  readonly held: { release: () => void; fail: (err: Error) => void }[] = [];
  get(key: Uint8Array) {
    return this.inner.get(key);
  }
  async batch(ops: BatchOp[], durable: boolean): Promise<void> {
    if (this.holding) {
      await new Promise<void>((release, fail) => this.held.push({ release, fail }));
    }
    await this.inner.batch(ops, durable);
  }
  entries(range: Parameters<KvStore['entries']>[0]) {
    return this.inner.entries(range);
  }
  close() {
    return this.inner.close();
  }
}

/** Signer state in memory; each write is what a validator would have fsynced before sending. */
function memoryStorage(): PrivvalStorage & {
  writes: string[];
  records: Map<string, Uint8Array>;
  /** Set: every write fails with it, as a full or failing disk's would. */
  failWith: Error | null;
} {
  const writes: string[] = [];
  const records = new Map<string, Uint8Array>();
  const storage = {
    where: 'memory',
    writes,
    records,
    failWith: null as Error | null,
    read: () => writes.at(-1) ?? null,
    write: (text: string) => {
      if (storage.failWith) throw storage.failWith;
      writes.push(text);
    },
    recordWhere: (name: string) => `memory/proposal-${name}`,
    readRecord: (name: string) => records.get(name) ?? null,
    writeRecord: (name: string, bytes: Uint8Array) => void records.set(name, bytes),
    pruneRecords: (keep: string | null) => {
      for (const name of records.keys()) if (name !== keep) records.delete(name);
    },
  };
  return storage;
}

/** The highest height the validator has signed anything at (its signer state as written). */
function signedHeight(storage: { writes: string[]; records: Map<string, Uint8Array> }): bigint {
  const last = storage.writes.at(-1);
  return last ? parsePrivval(last, (name) => storage.records.get(name) ?? null).state.height : 0n;
}

const T0 = Date.parse('2026-06-01T00:00:00Z');

async function singleValidator(opts: { blockWriteTimeoutMs?: number } = {}) {
  const genesis = devGenesisJson({ time: new Date(T0), blockTimeMs: 1000 });
  const store = new HeldKv();
  const chain = await Chain.open(ChainDb.over(store), genesis, silentLogger);
  const v = devValidator();
  const validator = { seed: v.seed, publicKey: ed25519PublicKey(v.seed) };
  const clock = new VirtualClock(T0 + 1);
  const storage = memoryStorage();
  const fatal: Error[] = [];
  const mempool = new Mempool();
  const core = new NodeCore({
    chain,
    mempool,
    validator,
    privvalPath: null,
    privvalStorage: storage,
    blockTimeMs: 1000,
    logger: silentLogger,
    clock,
    onFatal: (err) => fatal.push(err),
    ...opts,
  });
  // Every block built for a height, with what was on disk and in flight when its build began.
  const builds: { height: bigint; durableHeight: bigint; writing: boolean; signedHeight: bigint }[] = [];
  const build = chain.buildProposal.bind(chain);
  chain.buildProposal = (...args) => {
    builds.push({
      height: chain.tipHeight + 1n,
      durableHeight: chain.height,
      writing: chain.writing,
      signedHeight: signedHeight(storage),
    });
    return build(...args);
  };
  await core.driver.start(null);
  return { chain, store, clock, storage, fatal, builds, core, mempool, genesis };
}

/** Runs the virtual clock until `done` (each timer's promises settled), at most `ms` more. */
async function runUntil(clock: VirtualClock, done: () => boolean, ms = 20_000) {
  await clock.run(clock.now() + ms, done);
}

test('the next height is built on the decided block while its write is held, and nothing for it is signed before the write resolves', async () => {
  const { chain, store, clock, storage, builds, core, fatal } = await singleValidator();
  await runUntil(clock, () => chain.height >= 1n);
  assert.equal(chain.height, 1n);

  // A transfer in block 2: block 3, built while block 2 is being written, must see its effect.
  const sender = devKey(1);
  const body = {
    chainId: chain.genesis.chainId,
    signer: sender.publicKey,
    nonce: getAccount(chain.state, sender.address).nonce,
    fee: 0n,
    expiresAt: 1000n,
    actions: [transferAction(encodeAddress(devKey(2).address), 5n)],
  };
  body.fee = feeFor(body, chain.params);
  core.admit(envelopeFromSigned(signTransaction(body, sender.seed)));

  store.holding = true;
  await runUntil(clock, () => chain.tipHeight >= 2n);
  assert.equal(chain.tipHeight, 2n);
  assert.equal(store.held.length, 1, "block 2's write is held");
  // Let the next height start and run far past its round timeouts: the write is still held.
  await clock.run(clock.now() + 10_000);
  assert.equal(chain.height, 1n, 'RPC still sees block 1 as the head: block 2 is not on disk');
  assert.equal(chain.tipHeight, 2n);
  const third = builds.find((b) => b.height === 3n);
  assert.ok(third, 'block 3 was not built while block 2 was being written');
  assert.deepEqual(third, { height: 3n, durableHeight: 1n, writing: true, signedHeight: 2n });
  assert.equal(signedHeight(storage), 2n, 'something for height 3 was signed before block 2 was on disk');
  // What block 3 is built on: the state after block 2 (its transfer), not the durable one.
  const senderNonce = getAccount(chain.tipState, sender.address).nonce;
  assert.equal(senderNonce, body.nonce + 1n);
  assert.equal(getAccount(chain.state, sender.address).nonce, body.nonce);

  store.holding = false;
  store.held.shift()!.release();
  await runUntil(clock, () => chain.height >= 3n);
  assert.ok(chain.height >= 3n);
  assert.ok(signedHeight(storage) >= 3n);
  assert.equal(fatal.length, 0);
  // The block built during the write is the one that was committed, on block 2's state.
  assert.equal(builds.filter((b) => b.height === 3n).length, 1, 'block 3 was built again after the write');
  await core.stop();
});

test('a held write that fails stops consensus: nothing more is signed or committed, and the failure is reported', async () => {
  const { chain, store, clock, storage, fatal, core, genesis } = await singleValidator();
  await runUntil(clock, () => chain.height >= 1n);
  store.holding = true;
  await runUntil(clock, () => chain.tipHeight >= 2n);
  await clock.run(clock.now() + 3_000);
  const signedBefore = storage.writes.length;
  store.held.shift()!.fail(new Error('disk full'));
  await clock.run(clock.now() + 10_000);
  assert.equal(fatal.length, 1);
  assert.match(fatal[0]!.message, /block 2 could not be written.*disk full/);
  assert.equal(chain.height, 1n);
  assert.equal(storage.writes.length, signedBefore, 'signed after the write failed');
  assert.equal(signedHeight(storage), 2n);
  await assert.rejects(chain.untilDurable(), /disk full/);
  // The store holds block 1 only: a restart resumes from what is on disk.
  const reopened = await Chain.open(ChainDb.over(store.inner), genesis, silentLogger);
  assert.equal(reopened.height, 1n);
  await core.stop();
});

test('a write that never finishes is fatal after the configured limit, on the driver clock: the node stops and reopens from disk', async () => {
  // Before: the node signed nothing (right) but served block 1 as its head forever, and nothing
  // restarted it. Now the write counts as failed (BlockWriteError: the node exits with 70).
  const { chain, store, clock, storage, fatal, core, genesis } = await singleValidator({
    blockWriteTimeoutMs: 20_000,
  });
  await runUntil(clock, () => chain.height >= 1n);
  store.holding = true;
  await runUntil(clock, () => chain.tipHeight >= 2n);
  const heldAt = clock.now();
  assert.equal(store.held.length, 1, "block 2's write is held and never released");
  // A slow write, well under the limit, is waited for.
  await clock.run(heldAt + 15_000);
  assert.equal(fatal.length, 0, 'a slow write was taken as failed');
  const signedBefore = storage.writes.length;
  await runUntil(clock, () => fatal.length > 0, 10_000);
  assert.equal(fatal.length, 1, 'the hung write was never given up on');
  assert.ok(clock.now() - heldAt >= 20_000, 'given up on before the limit');
  assert.ok(clock.now() - heldAt <= 25_000, 'given up on long after the limit');
  assert.ok(fatal[0] instanceof BlockWriteError);
  assert.match(fatal[0]!.message, /block 2 could not be written.*not done after/);
  await assert.rejects(chain.untilDurable(), BlockWriteError);
  await clock.run(clock.now() + 10_000);
  assert.equal(fatal.length, 1);
  assert.equal(storage.writes.length, signedBefore, 'signed after the write was given up on');
  assert.equal(chain.height, 1n);
  // Stopping does not wait for the write that will never finish.
  await core.stop();
  const reopened = await Chain.open(ChainDb.over(store.inner), genesis, silentLogger);
  assert.equal(reopened.height, 1n, 'a restart resumes from what is on disk');
  // The disk coming back later changes nothing: the failure stands, and the head does not move
  // (before, the late write made block 2 the head and ran the commit listeners of a stopped node).
  const commitsAfter: bigint[] = [];
  chain.onCommit((c) => commitsAfter.push(c.block.header.height));
  store.held.shift()!.release();
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  await assert.rejects(chain.untilDurable(), /not done after/);
  assert.equal(chain.height, 1n, 'a write given up on became the head when the disk came back');
  assert.deepEqual(commitsAfter, []);
});

test('a stop while a write hangs ends at the write limit, with the failure reported, instead of waiting for good', async () => {
  // Before: stop() cancelled the write watchdog, then waited for the write in flight; a write that
  // never finished held the stop (SIGTERM, and the process with it) forever, and no exit 70 came.
  const { chain, store, clock, fatal, core } = await singleValidator({ blockWriteTimeoutMs: 20_000 });
  await runUntil(clock, () => chain.height >= 1n);
  store.holding = true;
  await runUntil(clock, () => chain.tipHeight >= 2n);
  assert.equal(store.held.length, 1, "block 2's write is held and never released");
  let stopped = false;
  const stopping = core.stop().then(() => {
    stopped = true;
  });
  await clock.run(clock.now() + 10_000);
  assert.equal(stopped, false, 'the stop did not wait for a write that may still finish');
  assert.equal(fatal.length, 0);
  await runUntil(clock, () => stopped, 20_000);
  assert.equal(stopped, true, 'the stop waited past the write limit');
  assert.equal(fatal.length, 1, 'the write given up on was not reported');
  assert.ok(fatal[0] instanceof BlockWriteError);
  await stopping;
  await assert.rejects(chain.untilDurable(), BlockWriteError);
});

test('a signer state that cannot be saved stops consensus and is reported (exit 70), instead of a node that stays up signing nothing', async () => {
  // Before: the save's error went to the work queue's log, the machine's actions (its signature,
  // the timeouts it scheduled, a decision's commit) were dropped with it, and the node stayed up
  // for good, signing nothing, its single-validator chain stalled; nothing restarted it.
  const { chain, store, clock, storage, fatal, core, genesis } = await singleValidator();
  await runUntil(clock, () => chain.height >= 2n);
  const savedBefore = storage.writes.length;
  storage.failWith = new Error('ENOSPC: no space left on device');
  await runUntil(clock, () => fatal.length > 0, 10_000);
  assert.equal(fatal.length, 1, 'the failed save was not reported');
  assert.match(fatal[0]!.message, /signer state could not be saved \(memory\): ENOSPC/);
  const height = chain.height;
  // The disk coming back changes nothing: consensus stopped, nothing more is signed or committed.
  storage.failWith = null;
  await clock.run(clock.now() + 10_000);
  assert.equal(fatal.length, 1);
  assert.equal(storage.writes.length, savedBefore, 'signed after the save failed');
  assert.equal(chain.height, height);
  await core.stop();
  // A restart resumes from what is on disk: the store and the last saved signer state.
  const reopened = await Chain.open(ChainDb.over(store.inner), genesis, silentLogger);
  assert.equal(reopened.height, height);
  assert.ok(signedHeight(storage) <= height + 1n);
});

test('the block write limit comes from config.json and is checked', () => {
  assert.deepEqual(parseConsensusConfig(undefined), {});
  assert.deepEqual(parseConsensusConfig({ blockWriteTimeoutMs: 90_000 }), { blockWriteTimeoutMs: 90_000 });
  assert.equal(DEFAULT_CONSENSUS_CONFIG.blockWriteTimeoutMs, 60_000);
  assert.throws(() => parseConsensusConfig({ blockWriteTimeoutMs: 0 }), /positive integer/);
  // 1 ms parsed, and made nearly every write fatal: a slow fsync is not a hung disk.
  assert.throws(() => parseConsensusConfig({ blockWriteTimeoutMs: 999 }), /at least 1000/);
  assert.deepEqual(parseConsensusConfig({ blockWriteTimeoutMs: 1000 }), { blockWriteTimeoutMs: 1000 });
  assert.throws(() => parseConsensusConfig({ blockWriteTimeoutMs: '60s' }), /positive integer/);
  assert.throws(() => parseConsensusConfig({ blockWriteTimeout: 5 }), /not a consensus setting/);
  assert.throws(() => parseConsensusConfig([]), /must be an object/);
});

test('a synced block whose write fails stops a follower, and the peer that served it is not blamed for our disk', async () => {
  const genesis = devGenesisJson({ time: new Date(T0), blockTimeMs: 1000 });
  // A peer ahead by a few blocks, serving them from its store.
  const source = await Chain.open(ChainDb.over(new MemoryKv()), genesis, silentLogger);
  const v = devValidator();
  const key = { seed: v.seed, publicKey: ed25519PublicKey(v.seed) };
  for (let i = 1n; i <= 3n; i++)
    await source.proposeAndCommit([], source.nextBlockTime(BigInt(T0) + i * 1000n), key, () => false);
  const hub = new MemoryNetworkHub();
  hub.join('source', { onGossip: () => 'ignore', ...chainServer(source) });

  // A follower (no validator key: it signs nothing) whose disk refuses the first synced block.
  const store = new HeldKv();
  const chain = await Chain.open(ChainDb.over(store), genesis, silentLogger);
  const fatal: Error[] = [];
  const core = new NodeCore({
    chain,
    mempool: new Mempool(),
    validator: null,
    privvalPath: null,
    blockTimeMs: 1000,
    logger: silentLogger,
    onFatal: (err) => fatal.push(err),
  });
  const network = hub.join('follower', core.driver.handlers());
  try {
    store.holding = true;
    const started = core.driver.start(network);
    while (store.held.length === 0) await new Promise((r) => setTimeout(r, 5));
    store.held.shift()!.fail(new Error('disk full'));
    await started;
    assert.equal(fatal.length, 1, 'the follower went on after its disk failed');
    assert.match(fatal[0]!.message, /block 1 could not be written.*disk full/);
    assert.deepEqual(network.penalties, [], 'the peer that served a good block was blamed for our disk');
    assert.equal(chain.height, 0n);
  } finally {
    await core.stop();
  }
});

test("evidence reported while the block before is written is signed with the tip's nonce: the mempool admits it", async () => {
  const keys = [0, 1, 2].map((i) => devValidatorKey(i));
  const genesis = devGenesisJson({
    time: new Date(T0),
    blockTimeMs: 1000,
    validators: keys.map((k) => ({ publicKey: k.publicKey, name: k.name })),
  });
  const store = new HeldKv();
  const chain = await Chain.open(ChainDb.over(store), genesis, silentLogger);
  const chainId = chain.genesis.chainId;
  const reporter = { seed: keys[0]!.seed, publicKey: keys[0]!.publicKey };
  const mempool = new Mempool();
  // The node of validator 0, not started: only its gossip handlers are used here.
  const core = new NodeCore({
    chain,
    mempool,
    validator: reporter,
    privvalPath: null,
    privvalStorage: memoryStorage(),
    blockTimeMs: 1000,
    logger: silentLogger,
    clock: new VirtualClock(T0 + 1),
  });
  /** Decides the next block with every validator's precommit; returns once its write began. */
  const decide = async (candidates: Iterable<TxEnvelope>) => {
    const { pending } = chain.buildProposal(
      candidates,
      chain.nextBlockTime(BigInt(T0) + (chain.tipHeight + 1n) * 1000n),
      reporter,
      () => false,
    );
    const votes = keys.map((k) =>
      signVote(
        chainId,
        {
          type: 'precommit',
          height: pending.block.header.height,
          round: 0,
          blockHash: pending.hash,
          validator: k.publicKey,
        },
        k.seed,
      ),
    );
    const { committed, durable } = await chain.beginCommit(pending, certificateFromVotes(votes));
    // What the driver does at once: the block's transactions leave the mempool.
    mempool.prune(committed.envelopes, [], chain.tipState, committed.block.header.height + 1n);
    return { durable };
  };
  /** Equivocation by `offender` at height 1, gossiped to validator 0. */
  const report = (offender: DevKey) => {
    const prevote = (fill: number) =>
      signVote(
        chainId,
        {
          type: 'prevote',
          height: 1n,
          round: 0,
          blockHash: new Uint8Array(32).fill(fill),
          validator: offender.publicKey,
        },
        offender.seed,
      );
    const evidence = duplicateVoteEvidence(chainId, prevote(0xab), prevote(0xcd));
    return core.driver.handlers().onGossip('evidence', encode(consensusEvidenceCodec, evidence), 'peer');
  };
  try {
    await (await decide([])).durable;
    assert.equal(await report(keys[1]!), 'accept');
    assert.equal(mempool.size, 1, 'the first evidence transaction (nonce 0) is pending');
    // Block 2 carries it; its write is held.
    store.holding = true;
    await decide(mempool.ordered(chain.tipState));
    assert.equal(chain.tipHeight, 2n);
    assert.equal(chain.height, 1n);
    assert.equal(mempool.size, 0);
    // Evidence of another validator arrives while block 2 is written: its transaction is the
    // reporter's second (nonce 1, block 2 used nonce 0), or the mempool refuses it for good.
    assert.equal(await report(keys[2]!), 'accept');
    assert.equal(mempool.size, 1, 'the evidence reported during the write was refused and forgotten');
    const [pendingTx] = [...mempool.ordered(chain.tipState)];
    assert.equal(pendingTx!.stx.tx.nonce, 1n);
    store.holding = false;
    store.held.shift()!.release();
    await chain.untilDurable();
    assert.equal(chain.height, 2n);
  } finally {
    store.holding = false;
    for (const held of store.held.splice(0)) held.release();
    await core.stop();
  }
});

test('a transaction in the decided block being written is reported pending by RPC, not unknown, then included', async () => {
  const { chain, store, clock, core, mempool } = await singleValidator();
  try {
    await runUntil(clock, () => chain.height >= 1n);
    const sender = devKey(1);
    const body = {
      chainId: chain.genesis.chainId,
      signer: sender.publicKey,
      nonce: getAccount(chain.state, sender.address).nonce,
      fee: 0n,
      expiresAt: 1000n,
      actions: [transferAction(encodeAddress(devKey(2).address), 5n)],
    };
    body.fee = feeFor(body, chain.params);
    const env = envelopeFromSigned(signTransaction(body, sender.seed));
    core.admit(env);
    const api = createApi({ chain, mempool, logger: silentLogger } as unknown as RpcContext);
    const status = async () =>
      (await api.methods.unc_getTransactionStatus!({ hash: toHex(env.hash) }, {} as never)) as {
        status: string;
      };
    assert.equal((await status()).status, 'pending');
    store.holding = true;
    await runUntil(clock, () => chain.tipHeight >= 2n);
    assert.equal(chain.height, 1n, 'block 2 is being written');
    assert.equal(mempool.has(env.hash), false, 'the block took it out of the mempool');
    assert.equal((await status()).status, 'pending', 'a transaction being written was reported unknown');
    await assert.rejects(
      Promise.resolve().then(() => api.methods.unc_getTransaction!({ hash: toHex(env.hash) }, {} as never)),
      /not yet included/,
    );
    store.holding = false;
    store.held.shift()!.release();
    await chain.untilDurable();
    assert.equal((await status()).status, 'included');
  } finally {
    store.holding = false;
    for (const held of store.held.splice(0)) held.release();
    await core.stop();
  }
});

test("the pending nonce counts a transaction in the decided block being written, which the head's nonce does not yet", async () => {
  const { chain, store, clock, core, mempool } = await singleValidator();
  try {
    await runUntil(clock, () => chain.height >= 1n);
    const sender = devKey(1);
    const committed = getAccount(chain.state, sender.address).nonce;
    const signed = (nonce: bigint) => {
      const body = {
        chainId: chain.genesis.chainId,
        signer: sender.publicKey,
        nonce,
        fee: 0n,
        expiresAt: 1000n,
        actions: [transferAction(encodeAddress(devKey(2).address), 5n)],
      };
      body.fee = feeFor(body, chain.params);
      return envelopeFromSigned(signTransaction(body, sender.seed));
    };
    core.admit(signed(committed));
    const api = createApi({ chain, mempool, logger: silentLogger } as unknown as RpcContext);
    const account = async () =>
      (await api.methods.unc_getAccount!(
        { address: encodeAddress(sender.address), pending: true },
        {} as never,
      )) as {
        nonce: number;
        pendingNonce: number;
      };
    const pending = await account();
    assert.equal(pending.nonce, Number(committed));
    assert.equal(pending.pendingNonce, Number(committed) + 1);
    store.holding = true;
    await runUntil(clock, () => chain.tipHeight >= 2n);
    assert.equal(chain.height, 1n, 'block 2 is being written');
    assert.equal(mempool.size, 0, 'the block took it out of the mempool');
    const during = await account();
    assert.equal(during.nonce, Number(committed), "the head's nonce: block 2 is not on disk");
    assert.equal(during.pendingNonce, Number(committed) + 1, 'the transaction being written was not counted');
    // One sent now, at that pending nonce, is admitted (the tip's state is what the mempool keeps to).
    core.admit(signed(committed + 1n));
    assert.equal(mempool.size, 1);
    assert.equal((await account()).pendingNonce, Number(committed) + 2);
    store.holding = false;
    store.held.shift()!.release();
    await chain.untilDurable();
    assert.equal((await account()).nonce, Number(committed) + 1);
    assert.equal((await account()).pendingNonce, Number(committed) + 2);
  } finally {
    store.holding = false;
    for (const held of store.held.splice(0)) held.release();
    await core.stop();
  }
});
