/**
 * Failed transactions pay nothing, so chip evidence (a registration's certificate chain and quote,
 * milliseconds to check) that fails must be refused at admission, for paying transactions too, and
 * what still fails in a block must be bounded by its cost, not only by its count.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  type Action,
  type BlockContext,
  BlockExecutor,
  type CostlyCheck,
  costlyCheckKey,
  devSoftChipId,
  type EvidenceCheck,
  ed25519PublicKey,
  ed25519Sign,
  encode,
  envelopeFromSigned,
  evidenceCheckKey,
  genesisStateWrites,
  getRecentHash,
  isConsentCheck,
  MemoryState,
  minimumFee,
  parseGenesis,
  registrationMessage,
  runEvidenceCheck,
  StateRefusal,
  sha256,
  signedTransactionCodec,
  signTransaction,
  type TxEnvelope,
  transferMessage,
  utf8,
  ValidationError,
} from '@unc/core';
import {
  AdmissionQueue,
  deferWhileBehind,
  eventLoopSlices,
  MAX_STALE_RESENDS,
  type SliceScheduler,
  SyncingRefusal,
} from '../src/admission.js';
import { Chain, MAX_REJECTED_COSTLY_PER_BLOCK } from '../src/chain.js';
import { systemClock } from '../src/clock.js';
import { MempoolReactor } from '../src/consensus/mempool-reactor.js';
import { txBatchCodec } from '../src/consensus/wire.js';
import { devGenesis, devGenesisJson, devKey, devValidator } from '../src/dev.js';
import { silentLogger } from '../src/log.js';
import { Mempool } from '../src/mempool.js';
import { RPC_COSTS } from '../src/rpc-costs.js';
import { ChainDb } from '../src/storage/db.js';
import { answerEvidence, InThreadVerifier, type SignatureVerifier, VerifyPool } from '../src/verify-pool.js';
import { batchOf, gossipNode, hexOf } from './admission-fixtures.js';
import { devSoftRegistration, type Key, namedKey } from './fixtures.js';

const TPM_VENDOR = 'test-tpm';
const time = new Date('2026-01-01T00:00:00Z');
const genesisOpts = {
  time,
  vendors: [{ id: TPM_VENDOR, name: 'A TPM vendor', profile: 'tpm2' as const, roots: [] }],
  models: [{ vendorId: TPM_VENDOR, modelId: 'tpm-model', name: 'TPM model', power: 1000n }],
};
const genesis = devGenesis(genesisOpts);
const params = genesis.params;
const owner = devKey(1);

function tx(from: Key, nonce: bigint, actions: Action[]): TxEnvelope {
  const base = { chainId: genesis.chainId, signer: from.publicKey, nonce, expiresAt: 50n, actions, fee: 0n };
  const size = encode(signedTransactionCodec, { tx: base, signature: new Uint8Array(64) }).length;
  // Ten times the minimum: a fee is declared, but a transaction that fails pays none of it.
  const fee = 10n * minimumFee(params, size, actions.length);
  return envelopeFromSigned(signTransaction({ ...base, fee }, from.seed));
}

/** A dev-soft registration of `chip`, anchored at `anchor` (hash `anchorHash`); `forge` breaks its signature. */
function devRegistration(chip: Key, anchor: bigint, anchorHash: Uint8Array, forge = false): Action {
  const signature = ed25519Sign(chip.seed, registrationMessage(genesis.chainId, owner.address, anchorHash));
  if (forge) signature[0]! ^= 1;
  return devSoftRegistration(chip.publicKey, signature, anchor);
}

/** A tpm2 registration whose certificate chain is made up: bytes that are no certificate at all. */
function madeUpTpmRegistration(i: number, anchor: bigint): Action {
  const junk = (label: string, n: number) => {
    const out = new Uint8Array(n);
    for (let k = 0; k < n; k += 32) out.set(sha256(utf8(`${label} ${i} ${k}`)).slice(0, n - k), k);
    return out;
  };
  return {
    type: 'registerChip',
    anchorHeight: anchor,
    evidence: {
      type: 'tpm2',
      vendorId: TPM_VENDOR,
      attest: junk('attest', 120),
      signature: junk('signature', 256),
      akCertificate: junk('ak certificate', 900),
      chain: [junk('intermediate', 900), junk('root', 900)],
    },
  };
}

/** The context of the block after `ctx`, one second later, its parent's hash and beacon made up from `ctx`'s height. */
function following(ctx: BlockContext): BlockContext {
  return {
    ...ctx,
    height: ctx.height + 1n,
    time: ctx.time + 1000n,
    prevHash: sha256(utf8(`block ${ctx.height}`)),
    prevBeacon: sha256(utf8(`beacon ${ctx.height}`)),
    beacon: sha256(utf8(`beacon ${ctx.height + 1n}`)),
  };
}

/** Genesis state plus one block, so that block 1 can anchor registrations; the context of block 2. */
function stateAtOne(): { state: MemoryState; next: BlockContext; anchorHash: Uint8Array } {
  const state = new MemoryState();
  state.apply(genesisStateWrites(parseGenesis(devGenesisJson(genesisOpts))));
  const one: BlockContext = {
    chainId: genesis.chainId,
    height: 1n,
    time: genesis.genesisTime + 1000n,
    proposer: devValidator().publicKey,
    prevHash: sha256(utf8('block 0')),
    prevBeacon: sha256(utf8('beacon 0')),
    beacon: sha256(utf8('beacon 1')),
  };
  const ex = new BlockExecutor(state, one);
  state.apply(ex.finish().overlay.changes());
  const next = following(one);
  // Block 1's hash, as block 2 records it when it opens: what a registration anchored there signs.
  const anchorHash = getRecentHash(new BlockExecutor(state, next).overlay, 1n);
  assert.ok(anchorHash);
  return { state, next, anchorHash };
}

function codeOf(fn: () => unknown): string | null {
  try {
    fn();
    return null;
  } catch (e) {
    if (e instanceof ValidationError) return e.code;
    throw e;
  }
}

describe('admission of costly evidence', () => {
  test('a paying registration with a made-up certificate chain is refused at admission, and its copies cost a lookup', () => {
    const { state, next } = stateAtOne();
    const pool = new Mempool();
    const junk = tx(owner, 0n, [madeUpTpmRegistration(0, 1n)]);
    assert.equal(
      codeOf(() => pool.add(junk, state, params, next)),
      'ATTEST_MALFORMED',
    );
    assert.equal(pool.size, 0);
    assert.equal(pool.evidenceChecks, 1);
    // Relayed again by every peer: refused before its signature is checked, the chain not parsed again.
    assert.equal(pool.cheapRefusal(junk, state, params, next)?.code, 'ATTEST_MALFORMED');
    assert.equal(
      codeOf(() => pool.add(junk, state, params, next)),
      'ATTEST_MALFORMED',
    );
    assert.equal(pool.evidenceChecks, 1);
  });

  test('a paying dev-soft registration whose signature does not verify is refused; a genuine one is admitted', () => {
    const { state, next, anchorHash } = stateAtOne();
    const pool = new Mempool();
    const forged = tx(owner, 0n, [devRegistration(namedKey('chip a'), 1n, anchorHash, true)]);
    assert.equal(
      codeOf(() => pool.add(forged, state, params, next)),
      'ATTEST_BAD_SIGNATURE',
    );
    const genuine = tx(owner, 0n, [devRegistration(namedKey('chip a'), 1n, anchorHash)]);
    pool.add(genuine, state, params, next);
    assert.equal(pool.size, 1);
    // A transaction without costly actions costs no evidence check.
    const checks = pool.evidenceChecks;
    pool.add(
      tx(owner, 1n, [{ type: 'transfer', to: devKey(2).address, amount: 1n, memo: new Uint8Array(0) }]),
      state,
      params,
      next,
    );
    assert.equal(pool.evidenceChecks, checks);
  });

  test('one pending registration per chip, from any account: the others could only fail after their evidence check', () => {
    const { state, next, anchorHash } = stateAtOne();
    const pool = new Mempool();
    const chip = namedKey('chip c');
    const other = devKey(2);
    const registration = (from: Key) => {
      const signature = ed25519Sign(
        chip.seed,
        registrationMessage(genesis.chainId, from.address, anchorHash),
      );
      return devSoftRegistration(chip.publicKey, signature);
    };
    pool.add(tx(owner, 0n, [registration(owner)]), state, params, next);
    const second = tx(other, 0n, [registration(other)]);
    assert.equal(
      codeOf(() => pool.add(second, state, params, next)),
      'ALREADY_PENDING',
    );
    const checks = pool.evidenceChecks;
    assert.equal(pool.cheapRefusal(second, state, params, next)?.code, 'ALREADY_PENDING');
    assert.equal(pool.evidenceChecks, checks);
    // Twice in one transaction: the second could only fail.
    const twice = tx(owner, 1n, [
      devRegistration(namedKey('chip d'), 1n, anchorHash),
      devRegistration(namedKey('chip d'), 1n, anchorHash),
    ]);
    assert.equal(
      codeOf(() => pool.add(twice, state, params, next)),
      'CHIP_ALREADY_REGISTERED',
    );
    assert.equal(pool.size, 1);
  });

  test('a refusal for a state reason is remembered for that head only, and does not blame the relay', async () => {
    const { state, next, anchorHash } = stateAtOne();
    const pool = new Mempool();
    const unknownVendor = devRegistration(namedKey('chip b'), 1n, anchorHash);
    (unknownVendor as { evidence: { vendorId: string } }).evidence.vendorId = 'not-registered';
    const env = tx(owner, 0n, [unknownVendor]);
    assert.equal(
      codeOf(() => pool.add(env, state, params, next)),
      'ATTEST_UNKNOWN_VENDOR',
    );
    assert.equal(pool.cheapRefusal(env, state, params, next)?.code, 'ATTEST_UNKNOWN_VENDOR');
    // On another head it is checked again (the vendor may have been registered since).
    const later = { ...next, prevHash: sha256(utf8('another head')) };
    assert.equal(pool.cheapRefusal(env, state, params, later), null);

    // Gossip: a batch refused for junk evidence is the relay's fault, one refused for a state reason is not.
    const reactor = new MempoolReactor({
      clock: systemClock,
      admitTx: (e) => {
        pool.add(e, state, params, next);
      },
      publishBatch: () => {},
      connected: () => false,
    });
    const gossip = (e: TxEnvelope) => reactor.onTxGossip(encode(txBatchCodec, [e.bytes]), 'relay');
    assert.equal(await gossip(tx(owner, 0n, [madeUpTpmRegistration(1, 1n)])), 'reject');
    assert.equal(await gossip(env), 'ignore');
  });

  test('attack: a batch holding a registration refused before its evidence check is not forwarded whole, its valid transaction published here', async () => {
    // An attacker's pending registration here, then a batch of a valid transaction and another
    // registration of the same nonce and fee with junk evidence: refused here as an underpriced
    // replacement, after its signature check but before its evidence was looked at. Forwarded
    // whole, the batch reaches a node without the pending one, which checks that evidence, finds
    // it provably bad and blames this node: honest relays banned by each other, for free.
    const { state, next, anchorHash } = stateAtOne();
    const nodeOn = () => gossipNode(state, params, next);
    const hex = hexOf;
    const here = nodeOn();
    const chip = namedKey('replaced chip');
    const pending = tx(owner, 0n, [devRegistration(chip, 1n, anchorHash)]);
    assert.deepEqual(await here.queue.submit([pending]), [{ replaced: false }]);
    const junk = tx(owner, 0n, [devRegistration(chip, 1n, anchorHash, true)]);
    assert.equal(junk.stx.tx.fee, pending.stx.tx.fee);
    const valid = tx(devKey(2), 0n, [
      { type: 'transfer', to: devKey(3).address, amount: 1n, memo: new Uint8Array(0) },
    ]);
    const checks = here.pool.evidenceChecks;
    assert.equal(await here.reactor.onTxGossip(batchOf(valid, junk), 'relay'), 'ignore');
    assert.equal(here.pool.evidenceChecks, checks, 'the junk evidence was not checked here');
    const [refusal] = await here.queue.submit([junk]);
    assert.ok(refusal instanceof ValidationError && refusal.code === 'REPLACEMENT_UNDERPRICED');
    here.reactor.flushTxs();
    assert.deepEqual(here.published, [[hex(valid.hash)]], 'the admitted one alone, published by this node');

    // What a node without the pending registration makes of that batch: its relay is to blame.
    const downstream = nodeOn();
    assert.equal(await downstream.reactor.onTxGossip(batchOf(valid, junk), 'this node'), 'reject');
    here.reactor.stop();
    downstream.reactor.stop();
  });
});

describe('admission checks registration evidence on the verify workers', () => {
  /** A verifier whose evidence checks are counted (made on this thread, as a worker makes them). */
  function countingVerifier(): SignatureVerifier & { evidenceChecked: number } {
    const inThread = new InThreadVerifier();
    const v = {
      threads: 1,
      evidenceChecked: 0,
      verify: inThread.verify.bind(inThread),
      checkEvidence: async (checks: readonly EvidenceCheck[]) => {
        v.evidenceChecked += checks.length;
        return answerEvidence(checks);
      },
      close: async () => {},
    };
    return v;
  }

  function queueFor(pool: Mempool, verifier: SignatureVerifier, state: MemoryState, next: BlockContext) {
    return {
      queue: new AdmissionQueue(
        verifier,
        {
          cheapRefusal: (env, countPending) => pool.cheapRefusal(env, state, params, next, countPending),
          costlyChecks: (env) => pool.costlyChecks(env, state, next),
          admit: (env, verdicts) => pool.add(env, state, params, next, true, verdicts),
        },
        {},
        eventLoopSlices,
      ),
    };
  }

  test('attack: 64 registrations in a batch cost the event loop no evidence check, and are decided as inline', async () => {
    const { state, next, anchorHash } = stateAtOne();
    const pool = new Mempool();
    const verifier = countingVerifier();
    const { queue } = queueFor(pool, verifier, state, next);
    const envs = Array.from({ length: 64 }, (_, i) =>
      tx(owner, BigInt(i), [devRegistration(namedKey(`worker chip ${i}`), 1n, anchorHash, i === 63)]),
    );
    const results = await queue.submit(envs);
    // Every registration was checked on the "workers", none on this thread.
    assert.equal(verifier.evidenceChecked, 64);
    assert.equal(pool.evidenceCheckedHere, 0);
    // The same answers as inline: 63 admitted, the forged one refused as provably bad.
    assert.equal(pool.size, 63);
    const last = results[63];
    assert.ok(last instanceof ValidationError && last.code === 'ATTEST_BAD_SIGNATURE');
    const inline = new Mempool();
    assert.equal(
      codeOf(() => inline.add(envs[63]!, state, params, next)),
      'ATTEST_BAD_SIGNATURE',
    );
    assert.equal(inline.evidenceCheckedHere, 1);
  });

  test('attack: copies of one registration in a batch cost one worker check, not one each', async () => {
    const { state, next, anchorHash } = stateAtOne();
    const pool = new Mempool();
    const verifier = countingVerifier();
    const { queue } = queueFor(pool, verifier, state, next);
    const env = tx(owner, 0n, [devRegistration(namedKey('copied chip'), 1n, anchorHash)]);
    const results = await queue.submit(Array.from({ length: 20 }, () => env));
    // All twenty passed the cheap screen and their signatures (none was admitted yet); the
    // evidence is the same check, made once.
    assert.equal(verifier.evidenceChecked, 1);
    assert.equal(pool.evidenceCheckedHere, 0);
    assert.equal(pool.size, 1);
    assert.ok(!(results[0] instanceof ValidationError));
    assert.ok(results.slice(1).every((r) => r instanceof ValidationError && r.code === 'DUPLICATE'));
  });

  test('a verdict is used only for the very check it was made for: on another head the evidence is checked here', async () => {
    const { state, next, anchorHash } = stateAtOne();
    const pool = new Mempool();
    const env = tx(owner, 0n, [devRegistration(namedKey('moved chip'), 1n, anchorHash)]);
    const [check] = pool.costlyChecks(env, state, next);
    assert.ok(check && !isConsentCheck(check));
    const verdict = runEvidenceCheck(check);
    const stale = { ...check, atMs: check.atMs - 1n };
    // A verdict for other inputs (another head's time) is not taken for this one.
    pool.add(env, state, params, next, true, (c) =>
      evidenceCheckKey(c) === evidenceCheckKey(stale) ? verdict : undefined,
    );
    assert.equal(pool.evidenceCheckedHere, 1);
    assert.equal(pool.size, 1);
  });

  test('attack: a block between the worker check and admission sends the stale checks back to the workers, not to this thread', async () => {
    const { state, next, anchorHash } = stateAtOne();
    const pool = new Mempool();
    // The head the host reads; a block (the next time) lands once the workers answered the first
    // call, before the drain admits anything: every verdict's key carries the old block time.
    const head = { next };
    const moved: BlockContext = { ...next, time: next.time + 1n };
    const inThread = new InThreadVerifier();
    const calls: number[] = [];
    const verifier: SignatureVerifier = {
      threads: 1,
      verify: inThread.verify.bind(inThread),
      checkEvidence: async (checks: readonly EvidenceCheck[]) => {
        calls.push(checks.length);
        const answers = answerEvidence(checks);
        head.next = moved;
        return answers;
      },
      close: async () => {},
    };
    const queue = new AdmissionQueue(
      verifier,
      {
        cheapRefusal: (env, countPending) => pool.cheapRefusal(env, state, params, head.next, countPending),
        costlyChecks: (env) => pool.costlyChecks(env, state, head.next),
        costlyHead: () => String(head.next.time),
        admit: (env, verdicts) => pool.add(env, state, params, head.next, true, verdicts),
      },
      {},
      eventLoopSlices,
    );
    const envs = Array.from({ length: 8 }, (_, i) =>
      tx(owner, BigInt(i), [devRegistration(namedKey(`stale chip ${i}`), 1n, anchorHash, i === 5)]),
    );
    const results = await queue.submit(envs);
    // Checked on the "workers" twice (before the block, then with its time), never on this thread.
    assert.deepEqual(calls, [8, 8]);
    assert.equal(pool.evidenceCheckedHere, 0);
    // The answers inline admission gives on the moved head.
    const inline = new Mempool();
    const expected = envs.map((env) => {
      try {
        return inline.add(env, state, params, moved);
      } catch (err) {
        return err;
      }
    });
    assert.equal(inline.evidenceCheckedHere, 8);
    assert.deepEqual(
      results.map((r) => (r instanceof ValidationError ? r.code : r)),
      expected.map((r) => (r instanceof ValidationError ? r.code : r)),
    );
    assert.equal(pool.size, 7);
  });

  test('on an unchanged head the checks are built once, at receipt, not again before admission', async () => {
    const { state, next, anchorHash } = stateAtOne();
    const pool = new Mempool();
    const inThread = new InThreadVerifier();
    let built = 0;
    const queue = new AdmissionQueue(
      {
        threads: 1,
        verify: inThread.verify.bind(inThread),
        checkEvidence: async (c) => answerEvidence(c),
        close: async () => {},
      },
      {
        cheapRefusal: (env, countPending) => pool.cheapRefusal(env, state, params, next, countPending),
        costlyChecks: (env) => {
          built++;
          return pool.costlyChecks(env, state, next);
        },
        costlyHead: () => 'the same head',
        admit: (env, verdicts) => pool.add(env, state, params, next, true, verdicts),
      },
      {},
      eventLoopSlices,
    );
    const envs = Array.from({ length: 4 }, (_, i) =>
      tx(owner, BigInt(i), [devRegistration(namedKey(`same head chip ${i}`), 1n, anchorHash)]),
    );
    const results = await queue.submit(envs);
    assert.ok(results.every((r) => !(r instanceof ValidationError)));
    assert.equal(built, 4);
    assert.equal(pool.evidenceCheckedHere, 0);
  });

  /** A queue whose head moves (a block) after each of the first `blocks` worker answers. */
  function movingHeadQueue(blocks: number) {
    const { state, next, anchorHash } = stateAtOne();
    const pool = new Mempool();
    const head = { next };
    const inThread = new InThreadVerifier();
    const calls: number[] = [];
    const verifier: SignatureVerifier = {
      threads: 1,
      verify: inThread.verify.bind(inThread),
      checkEvidence: async (checks: readonly CostlyCheck[]) => {
        calls.push(checks.length);
        const answers = answerEvidence(checks);
        if (calls.length <= blocks) head.next = { ...head.next, time: head.next.time + 1n };
        return answers;
      },
      close: async () => {},
    };
    const queue = new AdmissionQueue(
      verifier,
      {
        cheapRefusal: (env, countPending) => pool.cheapRefusal(env, state, params, head.next, countPending),
        costlyChecks: (env) => pool.costlyChecks(env, state, head.next),
        costlyHead: () => String(head.next.time),
        admit: (env, verdicts, consents) => pool.add(env, state, params, head.next, true, verdicts, consents),
      },
      {},
      eventLoopSlices,
    );
    const envs = Array.from({ length: 3 }, (_, i) =>
      tx(owner, BigInt(i), [devRegistration(namedKey(`twice stale chip ${i}`), 1n, anchorHash, i === 1)]),
    );
    return { pool, queue, calls, envs };
  }

  test('attack: a second block during the resend sends what is still stale back to the workers again, not to this thread', async () => {
    const { pool, queue, calls, envs } = movingHeadQueue(2);
    const results = await queue.submit(envs);
    // Checked on the "workers" three times (each block made the last answers stale), never here.
    assert.deepEqual(calls, [3, 3, 3]);
    assert.equal(pool.evidenceCheckedHere, 0);
    assert.deepEqual(
      results.map((r) => (r instanceof ValidationError ? r.code : 'admitted')),
      ['admitted', 'ATTEST_BAD_SIGNATURE', 'admitted'],
    );
  });

  test('a block after every worker answer: sent back a bounded number of times, then checked here, with the inline answer', async () => {
    const { pool, queue, calls, envs } = movingHeadQueue(Number.POSITIVE_INFINITY);
    const results = await queue.submit(envs);
    assert.equal(calls.length, 1 + MAX_STALE_RESENDS);
    assert.equal(pool.evidenceCheckedHere, 3);
    assert.deepEqual(
      results.map((r) => (r instanceof ValidationError ? r.code : 'admitted')),
      ['admitted', 'ATTEST_BAD_SIGNATURE', 'admitted'],
    );
  });

  test('with a real worker pool: genuine registrations admitted, none checked on this thread', async () => {
    const { state, next, anchorHash } = stateAtOne();
    const pool = new Mempool();
    const workers = new VerifyPool({ threads: 1 });
    try {
      const { queue } = queueFor(pool, workers, state, next);
      const envs = Array.from({ length: 4 }, (_, i) =>
        tx(owner, BigInt(i), [devRegistration(namedKey(`pool chip ${i}`), 1n, anchorHash)]),
      );
      const results = await queue.submit(envs);
      assert.ok(results.every((r) => !(r instanceof ValidationError)));
      assert.equal(pool.size, 4);
      assert.equal(pool.evidenceCheckedHere, 0);
    } finally {
      await workers.close();
    }
  });

  test('a pool without threads leaves the evidence to admission, one registration a slice, not all of a call at once', async () => {
    const { state, next, anchorHash } = stateAtOne();
    const pool = new Mempool();
    const inline = new VerifyPool({ threads: 0 });
    try {
      // Slices of 0 ms: each ends after one transaction. Counted as the queue defers them.
      let slices = 0;
      const counted: SliceScheduler = {
        now: eventLoopSlices.now,
        defer: (fn) => {
          slices++;
          eventLoopSlices.defer(fn);
        },
      };
      /** Evidence checks this thread made in each admit, in order. */
      const perAdmit: number[] = [];
      const queue = new AdmissionQueue(
        inline,
        {
          cheapRefusal: (env, countPending) => pool.cheapRefusal(env, state, params, next, countPending),
          costlyChecks: (env) => pool.costlyChecks(env, state, next),
          costlyHead: () => 'the same head',
          admit: (env, verdicts) => {
            const before = pool.evidenceCheckedHere;
            try {
              return pool.add(env, state, params, next, true, verdicts);
            } finally {
              perAdmit.push(pool.evidenceCheckedHere - before);
            }
          },
        },
        { sliceMs: 0 },
        counted,
      );
      const envs = Array.from({ length: 4 }, (_, i) =>
        tx(owner, BigInt(i), [devRegistration(namedKey(`no thread chip ${i}`), 1n, anchorHash, i === 2)]),
      );
      const results = await queue.submit(envs);
      // Each registration checked in its own admit, that is in its own slice: none was answered
      // beforehand, all at once, by the pool on this thread.
      assert.deepEqual(perAdmit, [1, 1, 1, 1]);
      assert.ok(slices >= envs.length, `${slices} slices`);
      assert.deepEqual(
        results.map((r) => (r instanceof ValidationError ? r.code : 'admitted')),
        ['admitted', 'admitted', 'ATTEST_BAD_SIGNATURE', 'admitted'],
      );
    } finally {
      await inline.close();
    }
  });
});

describe('admission of transfer consents', () => {
  /** Block 2 registers `chips` to `owner` (dev-soft); the context of block 3 and the anchor. */
  function chipsRegistered(chips: Key[]) {
    const { state, next, anchorHash } = stateAtOne();
    const two = new BlockExecutor(state, next);
    chips.forEach((chip, i) => {
      two.apply(tx(owner, BigInt(i), [devRegistration(chip, 1n, anchorHash)]));
    });
    state.apply(two.finish().overlay.changes());
    const three = following(next);
    return { state, three, anchorHash };
  }

  /** A transfer of `chip` to a new owner, its consent signed with `signer` (the chip's key unless forged). */
  function transferOf(chip: Key, nonce: bigint, anchorHash: Uint8Array, signer = chip): TxEnvelope {
    const chipId = devSoftChipId(chip.publicKey);
    const newOwner = devKey(3).address;
    return tx(owner, nonce, [
      {
        type: 'transferChip',
        chipId,
        newOwner,
        anchorHeight: 1n,
        consent: {
          type: 'dev-soft',
          signature: ed25519Sign(signer.seed, transferMessage(genesis.chainId, chipId, newOwner, anchorHash)),
        },
      },
    ]);
  }

  test('attack: consents in a batch are checked on the verify workers, none on this thread, with the inline answers', async () => {
    const chips = [namedKey('consent chip a'), namedKey('consent chip b')];
    const { state, three, anchorHash } = chipsRegistered(chips);
    const envs = [
      transferOf(chips[0]!, 2n, anchorHash),
      transferOf(chips[1]!, 3n, anchorHash, namedKey('not the chip')),
    ];
    const inThread = new InThreadVerifier();
    const sent: CostlyCheck[] = [];
    const pool = new Mempool();
    const queue = new AdmissionQueue(
      {
        threads: 1,
        verify: inThread.verify.bind(inThread),
        checkEvidence: async (checks: readonly CostlyCheck[]) => {
          sent.push(...checks);
          return answerEvidence(checks);
        },
        close: async () => {},
      },
      {
        cheapRefusal: (env, countPending) => pool.cheapRefusal(env, state, params, three, countPending),
        costlyChecks: (env) => pool.costlyChecks(env, state, three),
        admit: (env, verdicts, consents) => pool.add(env, state, params, three, true, verdicts, consents),
      },
      {},
      eventLoopSlices,
    );
    const results = await queue.submit(envs);
    // Both consents went to the "workers", none was checked here.
    assert.equal(sent.length, 2);
    assert.ok(sent.every(isConsentCheck));
    assert.equal(pool.evidenceCheckedHere, 0);
    // The answers inline admission gives: the genuine consent admitted, the forged one refused.
    const inline = new Mempool();
    const expected = envs.map((env) => {
      try {
        inline.add(env, state, params, three);
        return 'admitted';
      } catch (err) {
        return err instanceof StateRefusal ? `state ${err.code}` : String(err);
      }
    });
    assert.equal(inline.evidenceCheckedHere, 2);
    assert.deepEqual(
      results.map((r) =>
        r instanceof StateRefusal ? `state ${r.code}` : r instanceof ValidationError ? String(r) : 'admitted',
      ),
      expected,
    );
    assert.deepEqual(expected, ['admitted', 'state ATTEST_BAD_SIGNATURE']);
  });

  test('a consent verdict is used only for the very check it was made for: another chip key is checked here', () => {
    const chip = namedKey('consent chip c');
    const { state, three, anchorHash } = chipsRegistered([chip]);
    const env = transferOf(chip, 1n, anchorHash, namedKey('not the chip either'));
    const pool = new Mempool();
    const [check] = pool.costlyChecks(env, state, three);
    assert.ok(check && isConsentCheck(check));
    // A passing verdict made for another key (a chip re-registered since): not taken for this one.
    const other = { ...check, keyMaterial: namedKey('another key').publicKey };
    const pass = { ok: true as const, tpmClock: null };
    let refusal: unknown;
    try {
      pool.add(env, state, params, three, true, undefined, (c) =>
        costlyCheckKey(c) === costlyCheckKey(other) ? pass : undefined,
      );
    } catch (err) {
      refusal = err;
    }
    assert.equal(pool.evidenceCheckedHere, 1);
    assert.ok(refusal instanceof StateRefusal && refusal.code === 'ATTEST_BAD_SIGNATURE');
    // The very check's verdict is taken (a pass here, to show it is the one used), checked nowhere.
    const trusting = new Mempool();
    trusting.add(env, state, params, three, true, undefined, (c) =>
      costlyCheckKey(c) === costlyCheckKey(check) ? pass : undefined,
    );
    assert.equal(trusting.evidenceCheckedHere, 0);
    assert.equal(trusting.size, 1);
  });

  test('attack: a consent refused against a stale chip key is a state reason: remembered for that head only, no relay blame, not final', async () => {
    // Block 2 registers the chip under key A: the state this node holds.
    const chip = namedKey('chip t');
    const { state, three, anchorHash } = chipsRegistered([chip]);
    // Its peers have seen the chip deregistered and registered again under key B (a TPM or NVIDIA
    // chip keeps its id across a new key): the owner's honest consent, signed with B, fails here.
    const transfer = transferOf(chip, 1n, anchorHash, namedKey('chip t, registered again'));
    const pool = new Mempool();
    let refusal: unknown;
    try {
      pool.add(transfer, state, params, three);
    } catch (err) {
      refusal = err;
    }
    assert.ok(refusal instanceof StateRefusal, `expected a StateRefusal, got ${refusal}`);
    assert.equal(refusal.code, 'ATTEST_BAD_SIGNATURE');
    // Remembered for this head only: once this node catches up, it checks the consent again.
    assert.ok(pool.cheapRefusal(transfer, state, params, three) instanceof StateRefusal);
    const later = { ...three, prevHash: sha256(utf8('another head')) };
    assert.equal(pool.cheapRefusal(transfer, state, params, later), null);
    // A node behind its peers answers "busy, retry", not a final refusal.
    assert.ok(deferWhileBehind(refusal, 1000) instanceof SyncingRefusal);
    // The relay is not at fault, first check and remembered refusal alike.
    const reactor = new MempoolReactor({
      clock: systemClock,
      admitTx: (e) => {
        pool.add(e, state, params, three);
      },
      publishBatch: () => {},
      connected: () => false,
    });
    const gossip = (e: TxEnvelope) => reactor.onTxGossip(encode(txBatchCodec, [e.bytes]), 'relay');
    assert.equal(await gossip(transfer), 'ignore');
    const fresh = new Mempool();
    const freshReactor = new MempoolReactor({
      clock: systemClock,
      admitTx: (e) => {
        fresh.add(e, state, params, three);
      },
      publishBatch: () => {},
      connected: () => false,
    });
    assert.equal(await freshReactor.onTxGossip(encode(txBatchCodec, [transfer.bytes]), 'relay'), 'ignore');
    // A registration whose own signature fails is still provably bad: remembered for good, blamed.
    const forged = tx(owner, 1n, [devRegistration(namedKey('chip u'), 1n, anchorHash, true)]);
    assert.equal(await freshReactor.onTxGossip(encode(txBatchCodec, [forged.bytes]), 'relay'), 'reject');
    assert.equal(fresh.cheapRefusal(forged, state, params, later)?.code, 'ATTEST_BAD_SIGNATURE');
    assert.ok(!(fresh.cheapRefusal(forged, state, params, later) instanceof StateRefusal));
  });
});

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('the proposal builder', () => {
  test('executes a bounded number of failing registrations per block, then passes them over; cheap ones still go in', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'unc-costly-test-'));
    dirs.push(dir);
    const db = await ChainDb.open(dir);
    try {
      const chain = await Chain.open(db, devGenesisJson(genesisOpts), silentLogger);
      const v = devValidator();
      const key = { seed: v.seed, publicKey: ed25519PublicKey(v.seed) };
      const t0 = BigInt(time.getTime());
      await chain.proposeAndCommit([], chain.nextBlockTime(t0 + 1000n), key, () => false);
      const anchorHash = chain.tip.hash;
      // Every one reaches its evidence check: same sender, same nonce (a failure moves no nonce).
      const junk = Array.from({ length: 3 * MAX_REJECTED_COSTLY_PER_BLOCK }, (_, i) =>
        tx(owner, 0n, [devRegistration(namedKey(`junk chip ${i}`), 1n, anchorHash, true)]),
      );
      const honestTransfer = tx(devKey(2), 0n, [
        { type: 'transfer', to: devKey(3).address, amount: 1n, memo: new Uint8Array(0) },
      ]);
      const { pending, rejected } = chain.buildProposal(
        [...junk, honestTransfer],
        chain.nextBlockTime(t0 + 2000n),
        key,
        () => false,
      );
      // Each rejected registration is one evidence check executed: bounded by weight, not count.
      const executedJunk = rejected.filter((r) => r.error.code === 'ATTEST_BAD_SIGNATURE').length;
      assert.equal(executedJunk, MAX_REJECTED_COSTLY_PER_BLOCK);
      assert.equal(rejected.length, MAX_REJECTED_COSTLY_PER_BLOCK);
      assert.deepEqual(
        pending.envelopes.map((e) => e.hash),
        [honestTransfer.hash],
      );
    } finally {
      await db.close();
    }
  });
});

describe('the per-block bound on failing costly actions', () => {
  test('cannot be filled by transactions whose chip actions fail before any evidence check', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'unc-costly-test-'));
    dirs.push(dir);
    const db = await ChainDb.open(dir);
    try {
      const chain = await Chain.open(db, devGenesisJson(genesisOpts), silentLogger);
      const v = devValidator();
      const key = { seed: v.seed, publicKey: ed25519PublicKey(v.seed) };
      const t0 = BigInt(time.getTime());
      await chain.proposeAndCommit([], chain.nextBlockTime(t0 + 1000n), key, () => false);
      const anchorHash = chain.tip.hash;
      // A transfer of a chip that does not exist: admission passes it over (the sender's earlier
      // transactions might register it), and execution refuses it at a lookup, before any consent
      // check. Free to send (a failure pays nothing), it must not count as a failing costly action.
      const transferOfNoChip = (i: number): Action => ({
        type: 'transferChip',
        chipId: sha256(utf8(`no such chip ${i}`)),
        newOwner: devKey(3).address,
        anchorHeight: 1n,
        consent: { type: 'dev-soft', signature: new Uint8Array(64) },
      });
      const { state, next } = stateAtOne();
      const pool = new Mempool();
      pool.add(tx(owner, 0n, [transferOfNoChip(0)]), state, params, next);
      assert.equal(pool.size, 1, 'admitted: nothing costly to check');
      const junk = Array.from({ length: 2 * MAX_REJECTED_COSTLY_PER_BLOCK }, (_, i) =>
        tx(owner, 0n, [transferOfNoChip(i)]),
      );
      const registrant = devKey(2);
      const honest = tx(registrant, 0n, [
        devSoftRegistration(
          namedKey('honest chip').publicKey,
          ed25519Sign(
            namedKey('honest chip').seed,
            registrationMessage(genesis.chainId, registrant.address, anchorHash),
          ),
        ),
      ]);
      const { pending, rejected } = chain.buildProposal(
        [...junk, honest],
        chain.nextBlockTime(t0 + 2000n),
        key,
        () => false,
      );
      assert.equal(rejected.length, junk.length);
      assert.ok(rejected.every((r) => r.error.code === 'UNKNOWN_CHIP'));
      assert.deepEqual(
        pending.envelopes.map((e) => e.hash),
        [honest.hash],
      );
    } finally {
      await db.close();
    }
  });
});

test('RPC submission is priced for the evidence a transaction carries, plain transfers as before', () => {
  const send = RPC_COSTS.unc_sendTransactions!;
  const hexOf = (env: TxEnvelope) => Buffer.from(env.bytes).toString('hex');
  const transfer = hexOf(
    tx(owner, 0n, [{ type: 'transfer', to: devKey(2).address, amount: 1n, memo: new Uint8Array(0) }]),
  );
  const registration = hexOf(tx(owner, 0n, [madeUpTpmRegistration(0, 1n)]));
  assert.equal(send([[transfer]]), 0.1);
  assert.equal(send([Array(3_000).fill(transfer)]), 300);
  // ~3 KiB of made-up chain: about a unit, ten signature checks' worth, where a transfer is a tenth.
  assert.ok(send([[registration]]) >= 1, `a registration costs ${send([[registration]])} units`);
  assert.ok(RPC_COSTS.unc_sendTransaction!({ tx: registration }) >= 2);
});

test('attack (audchip C5): RPC prices a registration at a unit at least, however small its evidence', () => {
  // The check costs what a chain and a quote cost (two signature checks at least: the evidence's
  // own, then the link to the vendor's root), not what its bytes weigh: a made-up registration of
  // ~600 bytes is as dear as a 3 KiB one. Priced by bytes alone, 64 of them in one transaction cost
  // ~20 units and 64 checks on the verify workers (admission sends every check of a transaction to
  // them at once).
  const small = (i: number): Action => {
    const action = madeUpTpmRegistration(i, 1n);
    if (action.type !== 'registerChip' || action.evidence.type !== 'tpm2') throw new Error('tpm2');
    const e = action.evidence;
    return {
      ...action,
      evidence: {
        ...e,
        attest: e.attest.subarray(0, 80),
        signature: e.signature.subarray(0, 70),
        akCertificate: e.akCertificate.subarray(0, 450),
        chain: [],
      },
    };
  };
  const hexOf = (env: TxEnvelope) => Buffer.from(env.bytes).toString('hex');
  const many = hexOf(
    tx(
      owner,
      0n,
      Array.from({ length: 64 }, (_, i) => small(i)),
    ),
  );
  assert.ok(many.length / 2 < 64 * 1024, `${many.length / 2} bytes`);
  const units = RPC_COSTS.unc_sendTransaction!({ tx: many });
  assert.ok(units >= 64, `64 registrations cost ${units} units`);
  assert.ok(RPC_COSTS.unc_sendTransactions!([[many]]) >= 64);
  // A transfer of a chip is a costly check too (its consent).
  const consent = hexOf(
    tx(owner, 0n, [
      {
        type: 'transferChip',
        chipId: new Uint8Array(32),
        newOwner: devKey(2).address,
        anchorHeight: 1n,
        consent: { type: 'dev-soft', signature: new Uint8Array(64) },
      },
    ]),
  );
  assert.ok(RPC_COSTS.unc_sendTransaction!({ tx: consent }) >= 2);
  // Plain transfers cost what they did, and a hex string that is no transaction is priced by length.
  const transfer = hexOf(
    tx(owner, 0n, [{ type: 'transfer', to: devKey(2).address, amount: 1n, memo: new Uint8Array(0) }]),
  );
  assert.equal(RPC_COSTS.unc_sendTransactions!([[transfer]]), 0.1);
  assert.equal(RPC_COSTS.unc_sendTransaction!({ tx: 'zz'.repeat(4608) }), 3);
});
