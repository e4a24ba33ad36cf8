/**
 * The mempool attacks found by running the real programs as an attacker, each a regression test,
 * and property tests of the pool's bookkeeping. A tiny chain over MemoryState runs the same block
 * executor a node runs, so "would execute now" is checked against real chip and validator state.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type Action,
  addressFromPublicKey,
  type BlockContext,
  BlockExecutor,
  type ConsensusEvidence,
  challengesAsOf,
  chipClass,
  chipKey,
  DEV_SOFT_VENDOR,
  devSoftChipId,
  duplicateVoteEvidence,
  ed25519Sign,
  ed25519Verify,
  encode,
  envelopeFromSigned,
  epochOf,
  feeActions,
  genesisStateWrites,
  getAccount,
  getChip,
  getPociParams,
  getRecentHash,
  type HeartbeatAnswer,
  heartbeatChallenge,
  MemoryState,
  minimumFee,
  registrationMessage,
  type StateReader,
  sha256,
  signedTransactionCodec,
  signTransaction,
  signVote,
  type TxEnvelope,
  toHex,
  transferMessage,
  utf8,
  ValidationError,
} from '@unc/core';
import fc from 'fast-check';
import { AdmissionQueue, clockSlices } from '../src/admission.js';
import { systemClock } from '../src/clock.js';
import { DEV_MODELS, devGenesis, devKey, devValidator } from '../src/dev.js';
import { Mempool, PROVABLY_BAD_EVIDENCE } from '../src/mempool.js';
import type { SignatureVerifier } from '../src/verify-pool.js';
import { batchOf, gossipNode, hexOf } from './admission-fixtures.js';
import { type Key, namedKey } from './fixtures.js';

const key = namedKey;

const genesis = devGenesis({ time: new Date('2026-01-01T00:00:00Z'), epochBlocks: 10 });
const params = genesis.params;
const owner = devKey(9);
const rich = devKey(1);
const broke = key('attacker with nothing');

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

function tx(from: Key, nonce: bigint, actions: Action[], fee: bigint | 'min' = 'min', expiresAt = 50n) {
  const base = { chainId: genesis.chainId, signer: from.publicKey, nonce, expiresAt, actions, fee: 0n };
  const size = encode(signedTransactionCodec, { tx: base, signature: new Uint8Array(64) }).length;
  const f = fee === 'min' ? minimumFee(params, size, feeActions(actions)) : fee;
  return envelopeFromSigned(signTransaction({ ...base, fee: f }, from.seed));
}

const transfer = (amount: bigint, to = devKey(8).address): Action => ({
  type: 'transfer',
  to,
  amount,
  memo: new Uint8Array(0),
});

function refused(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => e instanceof ValidationError && e.code === code, `expected ${code}`);
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

/** A dev chip's registration to `ownerAddress`, anchored at the chain's head. */
function registration(chain: Chain, chip: Key, ownerAddress: Uint8Array): Action {
  const message = registrationMessage(genesis.chainId, ownerAddress, chain.hashOf(chain.height));
  return {
    type: 'registerChip',
    anchorHeight: chain.height,
    evidence: {
      type: 'dev-soft',
      vendorId: DEV_SOFT_VENDOR,
      publicKey: chip.publicKey,
      modelId: DEV_MODELS[0]!.modelId,
      signature: ed25519Sign(chip.seed, message),
    },
  };
}

/** A registered dev chip of `owner` and the chain advanced until one of its slots is open. */
function chainWithOpenSlot(): { chain: Chain; chip: Key; answer: HeartbeatAnswer; nonce: bigint } {
  const chain = new Chain();
  chain.block();
  const chip = key('dev chip for the mempool tests');
  const register = tx(owner, 0n, [registration(chain, chip, owner.address)]);
  chain.block([register]);
  const chipId = devSoftChipId(chip.publicKey);
  const p = getPociParams(chain.state);
  for (let i = 0; i < 200; i++) {
    chain.block();
    const next = chain.height + 1n;
    const c = getChip(chain.state, chipId)!;
    const epoch = epochOf(next, p);
    if (epoch < c.firstEpoch) continue;
    const head = { height: chain.height, beacon: chain.beaconOf(chain.height) };
    const heights = challengesAsOf(chain.state, epoch, chipClass(chipId, p), head, p);
    const slot = heights.findIndex((h) => h < next && next <= h + p.answerWindowBlocks);
    if (slot < 0) continue;
    const slotHash = getRecentHash(chain.state, heights[slot]!) ?? chain.hashOf(heights[slot]!);
    const challenge = heartbeatChallenge(genesis.chainId, chipId, slotHash);
    return {
      chain,
      chip,
      nonce: 1n,
      answer: {
        chipId,
        epoch,
        slot,
        evidence: { type: 'dev-soft', signature: ed25519Sign(chip.seed, challenge) },
      },
    };
  }
  throw new Error('no open slot found');
}

const heartbeat = (answer: HeartbeatAnswer): Action => ({ type: 'heartbeat', answers: [answer] });

function fakeEvidence(k: Key, height: bigint): ConsensusEvidence {
  const vote = (blockHash: Uint8Array) =>
    signVote(
      genesis.chainId,
      { type: 'precommit', height, round: 0, blockHash, validator: k.publicKey },
      k.seed,
    );
  return duplicateVoteEvidence(genesis.chainId, vote(sha256(utf8('A'))), vote(sha256(utf8('B'))));
}

/** `n` registered dev chips of `owner`, the chain advanced until every one has a slot open, and
 *  (with `distinct`) those slots at more than one height; each answer with its window's close. */
function chainWithOpenSlots(
  n: number,
  distinct: boolean,
): { chain: Chain; answers: { answer: HeartbeatAnswer; deadline: bigint; from: Key; nonce: bigint }[] } {
  const chain = new Chain();
  // Each chip its own owner (only the owner may answer for it, and one fee-free transaction per
  // sender may wait): funded by `owner`, then registering its chip.
  const owners = Array.from({ length: n }, (_, i) => key(`owner of dev chip ${i} for the reserve tests`));
  chain.block([
    tx(
      owner,
      0n,
      owners.map((o) => transfer(10n ** 20n, o.address)),
    ),
  ]);
  const chips = Array.from({ length: n }, (_, i) => key(`dev chip ${i} for the reserve tests`));
  chain.block(chips.map((chip, i) => tx(owners[i]!, 0n, [registration(chain, chip, owners[i]!.address)])));
  const p = getPociParams(chain.state);
  for (let i = 0; i < 200; i++) {
    chain.block();
    const next = chain.height + 1n;
    const epoch = epochOf(next, p);
    const head = { height: chain.height, beacon: chain.beaconOf(chain.height) };
    const answers: { answer: HeartbeatAnswer; deadline: bigint; from: Key; nonce: bigint }[] = [];
    for (const [i, chip] of chips.entries()) {
      const chipId = devSoftChipId(chip.publicKey);
      if (epoch < getChip(chain.state, chipId)!.firstEpoch) break;
      const heights = challengesAsOf(chain.state, epoch, chipClass(chipId, p), head, p);
      const slot = heights.findIndex((h) => h < next && next <= h + p.answerWindowBlocks);
      if (slot < 0) break;
      const slotHash = getRecentHash(chain.state, heights[slot]!) ?? chain.hashOf(heights[slot]!);
      const challenge = heartbeatChallenge(genesis.chainId, chipId, slotHash);
      answers.push({
        answer: {
          chipId,
          epoch,
          slot,
          evidence: { type: 'dev-soft', signature: ed25519Sign(chip.seed, challenge) },
        },
        deadline: heights[slot]! + p.answerWindowBlocks,
        from: owners[i]!,
        nonce: 1n,
      });
    }
    if (answers.length < n) continue;
    if (distinct && new Set(answers.map((a) => a.deadline)).size < 2) continue;
    return { chain, answers };
  }
  throw new Error("no height found with every chip's slot open");
}

/** A proposer's build (driver.buildValue + chain.buildProposal): the pool in block order, each
 *  tried on the block, at most `maxIncluded` included (the proposal budget); then the pool pruned. */
function buildBlock(chain: Chain, pool: Mempool, maxIncluded: number) {
  const ex = new BlockExecutor(chain.state, chain.next());
  const included: TxEnvelope[] = [];
  const rejected: { env: TxEnvelope; error: ValidationError }[] = [];
  const it = pool.ordered(chain.state);
  for (let next = it.next(); !next.done && included.length < maxIncluded; ) {
    const r = ex.tryApply(next.value);
    const taken = !(r instanceof ValidationError);
    if (taken) included.push(next.value);
    else rejected.push({ env: next.value, error: r });
    next = it.next(taken);
  }
  it.return(undefined);
  chain.state.apply(ex.finish().overlay.changes());
  chain.height = ex.ctx.height;
  chain.time = ex.ctx.time;
  pool.prune(included, rejected, chain.state, chain.height + 1n);
  return { included, rejected };
}

describe('mempool attacks', () => {
  test('a zero-balance key cannot fill the pool with heartbeats for chips that are not there', () => {
    const chain = new Chain();
    chain.block();
    const pool = new Mempool();
    const bogus = (i: number): HeartbeatAnswer => ({
      chipId: sha256(utf8(`no such chip ${i}`)),
      epoch: 0n,
      slot: 0,
      evidence: { type: 'dev-soft', signature: new Uint8Array(64) },
    });
    const codes = new Set<string | null>();
    for (let n = 0; n < 200; n++) {
      codes.add(
        codeOf(() =>
          pool.add(tx(broke, BigInt(n), [heartbeat(bogus(n))], 0n), chain.state, params, chain.next()),
        ),
      );
    }
    assert.equal(pool.size, 0, 'not one of them is admitted');
    assert.deepEqual([...codes].sort(), ['NONCE_GAP', 'UNKNOWN_CHIP']);
  });

  test('a zero-balance key cannot fill the pool with evidence that does not verify against the validator set', () => {
    const chain = new Chain();
    chain.block();
    chain.block();
    const pool = new Mempool();
    let admitted = 0;
    for (let n = 0; n < 100; n++) {
      const ev = tx(
        broke,
        BigInt(n),
        [{ type: 'evidence', evidence: fakeEvidence(broke, 1n + BigInt(n)) }],
        0n,
      );
      if (codeOf(() => pool.add(ev, chain.state, params, chain.next())) === null) admitted++;
    }
    assert.equal(admitted, 0);
    assert.equal(pool.size, 0);
  });

  test('a real heartbeat is admitted once: not again from another key, not queued behind, not after it is answered', () => {
    const { chain, answer } = chainWithOpenSlot();
    const pool = new Mempool();
    const first = tx(owner, 1n, [heartbeat(answer)], 0n);
    pool.add(first, chain.state, params, chain.next());
    // The same answer, copied into a transaction of a key with nothing: only the owner may answer.
    refused(
      () => pool.add(tx(broke, 0n, [heartbeat(answer)], 0n), chain.state, params, chain.next()),
      'NOT_CHIP_OWNER',
    );
    // A fee-free transaction may not queue behind the sender's next nonce.
    refused(
      () => pool.add(tx(owner, 2n, [heartbeat(answer)], 0n), chain.state, params, chain.next()),
      'NONCE_GAP',
    );
    // Nor replace a fee-free one with another fee-free one (free churn).
    refused(
      () => pool.add(tx(owner, 1n, [heartbeat(answer)], 0n, 49n), chain.state, params, chain.next()),
      'REPLACEMENT_UNDERPRICED',
    );
    assert.equal(pool.size, 1);
    chain.block(pool.select(chain.state, 100, 1 << 20));
    pool.prune([first], [], chain.state, chain.height + 1n);
    assert.equal(pool.size, 0);
    // Once on chain, the answer is a replay: core's own rule says so at admission.
    refused(
      () => pool.add(tx(owner, 2n, [heartbeat(answer)], 0n), chain.state, params, chain.next()),
      'ANSWER_REPLAYED',
    );
  });

  test("another key's copy of a chip's answers is refused at admission (NOT_CHIP_OWNER) before its signature or the answer is checked", async () => {
    const { chain, answer } = chainWithOpenSlot();
    const pool = new Mempool();
    const next = chain.next();
    let signatureChecks = 0;
    let evidenceChecks = 0;
    const verifier: SignatureVerifier = {
      threads: 1,
      verify: async (checks) => {
        signatureChecks += checks.length;
        return checks.map((c) => ed25519Verify(c.publicKey, c.message, c.signature));
      },
      checkEvidence: async (checks) => {
        evidenceChecks += checks.length;
        return checks.map(() => null);
      },
      close: async () => {},
    };
    const queue = new AdmissionQueue(
      verifier,
      {
        cheapRefusal: (env, countPending) => pool.cheapRefusal(env, chain.state, params, next, countPending),
        costlyChecks: (env) => pool.costlyChecks(env, chain.state, next),
        admit: (env, verdicts) => pool.add(env, chain.state, params, next, true, verdicts),
      },
      {},
      clockSlices(systemClock),
    );
    const forgedAnswer: HeartbeatAnswer = {
      ...answer,
      evidence: { type: 'dev-soft', signature: new Uint8Array(64).fill(1) },
    };
    // Copies from a key with nothing (which would be left an account for good) and from a funded
    // one, the answer as seen in gossip or forged: none is the chip's owner.
    const copies = [
      tx(broke, 0n, [heartbeat(answer)], 0n),
      tx(rich, 0n, [heartbeat(answer)], 0n),
      tx(broke, 0n, [heartbeat(forgedAnswer)], 0n),
    ];
    const results = await queue.submit(copies);
    for (const r of results) {
      assert.ok(r instanceof ValidationError, 'refused');
      assert.equal(r.code, 'NOT_CHIP_OWNER');
      assert.equal(r.answer?.epoch, Number(answer.epoch));
    }
    assert.equal(signatureChecks, 0, 'no signature checked for the copies');
    assert.equal(evidenceChecks, 0);
    assert.equal(pool.size, 0, 'none holds the slot');
    // The owner's own heartbeat of the same answer is admitted: one signature check.
    const own = await queue.submit([tx(owner, 1n, [heartbeat(answer)], 0n)]);
    assert.ok(!(own[0] instanceof ValidationError), `admitted (${(own[0] as ValidationError).code})`);
    assert.equal(signatureChecks, 1);
    assert.equal(pool.size, 1);
    // Admitted directly (Mempool.add, signature not checked yet), a copy is refused the same way.
    refused(() => pool.add(copies[1]!, chain.state, params, next), 'NOT_CHIP_OWNER');
    queue.stop();
  });

  test("a heartbeat from the owner's heartbeat operator is admitted from the block after its naming, fee-free from a key with nothing; before it and after its removal it is refused at the owner screen, before its signature", () => {
    const { chain, answer } = chainWithOpenSlot();
    const hot = key('heartbeat operator with nothing');
    const copy = () => tx(hot, 0n, [heartbeat(answer)], 0n);
    // Not named: a stranger's copy.
    assert.equal(
      new Mempool().cheapRefusal(copy(), chain.state, params, chain.next())?.code,
      'NOT_CHIP_OWNER',
    );
    chain.block([tx(owner, 1n, [{ type: 'setHeartbeatOperator', operator: hot.address }])]);
    const pool = new Mempool();
    assert.equal(pool.cheapRefusal(copy(), chain.state, params, chain.next()), null);
    pool.add(copy(), chain.state, params, chain.next());
    assert.equal(pool.size, 1, 'the operator holds the slot, fee-free');
    chain.block([tx(owner, 2n, [{ type: 'setHeartbeatOperator', operator: null }])]);
    assert.equal(
      new Mempool().cheapRefusal(copy(), chain.state, params, chain.next())?.code,
      'NOT_CHIP_OWNER',
    );
    refused(() => new Mempool().add(copy(), chain.state, params, chain.next()), 'NOT_CHIP_OWNER');
  });

  test("an operator's pending heartbeat is dropped once its removal is committed: it no longer holds the owner's slot", () => {
    const { chain, answer } = chainWithOpenSlot();
    const hot = key('heartbeat operator removed while pending');
    chain.block([tx(owner, 1n, [{ type: 'setHeartbeatOperator', operator: hot.address }])]);
    const pool = new Mempool();
    const pending = tx(hot, 0n, [heartbeat(answer)], 0n);
    pool.add(pending, chain.state, params, chain.next());
    assert.equal(pool.size, 1);
    // The removal lands in a block that does not take the operator's heartbeat: from the next
    // block it can only fail, and pending it held the slot's claim, so that the owner's own answer
    // was refused ALREADY_PENDING on every node that was not the next proposer.
    const removal = tx(owner, 2n, [{ type: 'setHeartbeatOperator', operator: null }]);
    chain.block([removal]);
    pool.prune([removal], [], chain.state, chain.height + 1n);
    assert.equal(pool.size, 0);
    assert.equal(pool.dropped(pending.hash)?.code, 'NOT_CHIP_OWNER');
  });

  test("the seller's operator's pending heartbeat is dropped once the chip's sale is committed", () => {
    const { chain, chip, answer } = chainWithOpenSlot();
    const hot = key('heartbeat operator of a seller');
    const buyer = key('buyer of the operated chip');
    chain.block([tx(owner, 1n, [{ type: 'setHeartbeatOperator', operator: hot.address }])]);
    const pool = new Mempool();
    const pending = tx(hot, 0n, [heartbeat(answer)], 0n);
    pool.add(pending, chain.state, params, chain.next());
    const anchorHeight = chain.height;
    const consent = {
      type: 'dev-soft' as const,
      signature: ed25519Sign(
        chip.seed,
        transferMessage(genesis.chainId, answer.chipId, buyer.address, chain.hashOf(anchorHeight)),
      ),
    };
    const sale = tx(owner, 2n, [
      { type: 'transferChip', chipId: answer.chipId, newOwner: buyer.address, anchorHeight, consent },
    ]);
    chain.block([sale]);
    assert.equal(getChip(chain.state, answer.chipId)?.owner.join(), buyer.address.join(), 'sold');
    pool.prune([sale], [], chain.state, chain.height + 1n);
    assert.equal(pool.size, 0);
    assert.equal(pool.dropped(pending.hash)?.code, 'NOT_CHIP_OWNER');
  });

  test("a block naming an operator re-screens only the heartbeats of the namer, its operators and a chip's seller, not every pending one", () => {
    const { chain, answer } = chainWithOpenSlot();
    const pool = new Mempool();
    pool.add(tx(owner, 1n, [heartbeat(answer)], 0n), chain.state, params, chain.next());
    // Another account names an operator (a fee and a burn; a removal, a transfer of a chip
    // between its own accounts: a fee alone): none of that touches the owner's right to answer.
    const nonce = getAccount(chain.state, rich.address).nonce;
    const naming = tx(rich, nonce, [{ type: 'setHeartbeatOperator', operator: key('its hot key').address }]);
    chain.block([naming]);
    const chipRecord = toHex(chipKey(answer.chipId));
    let chipReads = 0;
    const counted: StateReader = {
      get: (k: Uint8Array) => {
        if (toHex(k) === chipRecord) chipReads++;
        return chain.state.get(k);
      },
    };
    pool.prune([naming], [], counted, chain.height + 1n);
    assert.equal(pool.size, 1, "the owner's own heartbeat stays");
    assert.equal(
      chipReads,
      0,
      'a pending heartbeat of an account the block did not touch is not looked up again',
    );
  });

  test('genuine evidence from a key with nothing is admitted once', () => {
    const chain = new Chain();
    for (let i = 0; i < 3; i++) chain.block();
    const v = devValidator();
    const evidence = fakeEvidence({ ...v, address: addressFromPublicKey(v.publicKey) }, 1n);
    const pool = new Mempool();
    const first = tx(broke, 0n, [{ type: 'evidence', evidence }], 0n);
    // Fee-free and spending nothing: the balance screen before the signature check lets it by.
    assert.equal(pool.cheapRefusal(first, chain.state, params, chain.next()), null);
    pool.add(first, chain.state, params, chain.next());
    refused(
      () =>
        pool.add(
          tx(key('another'), 0n, [{ type: 'evidence', evidence }], 0n),
          chain.state,
          params,
          chain.next(),
        ),
      'ALREADY_PENDING',
    );
    assert.equal(pool.size, 1);
  });

  test('nonces 1…N without 0 stay bounded per sender', () => {
    const chain = new Chain();
    const pool = new Mempool({ maxNonceGap: 64n, maxTxsPerSender: 16 });
    let admitted = 0;
    for (let n = 1; n <= 200; n++) {
      if (
        codeOf(() => pool.add(tx(rich, BigInt(n), [transfer(1n)]), chain.state, params, chain.next())) ===
        null
      )
        admitted++;
    }
    assert.equal(admitted, 16);
    assert.equal(pool.size, 16);
    refused(() => pool.add(tx(rich, 65n, [transfer(1n)]), chain.state, params, chain.next()), 'NONCE_GAP');
    // The missing nonce 0 still gets in, pushing out the sender's own highest nonce.
    const zero = tx(rich, 0n, [transfer(1n)]);
    pool.add(zero, chain.state, params, chain.next());
    assert.equal(pool.size, 16);
    assert.equal(pool.dropped(tx(rich, 16n, [transfer(1n)]).hash)?.code, 'EVICTED');
    assert.deepEqual(
      pool.select(chain.state, 100, 1 << 20).map((e) => e.stx.tx.nonce),
      [...Array.from({ length: 16 }, (_, i) => BigInt(i))],
    );
    pool.checkInvariants();
  });

  test('a full pool of low-fee junk still takes a transfer that pays more, evicting the junk', () => {
    const chain = new Chain();
    const pool = new Mempool({ maxTxs: 45 });
    const senders = Array.from({ length: 9 }, (_, i) => devKey(i));
    for (const s of senders)
      for (let n = 0n; n < 5n; n++) pool.add(tx(s, n, [transfer(1n)]), chain.state, params, chain.next());
    assert.equal(pool.size, 45);
    // The same fee rate evicts nothing.
    refused(
      () => pool.add(tx(devKey(9), 0n, [transfer(1n)]), chain.state, params, chain.next()),
      'MEMPOOL_FULL',
    );
    const generous = tx(devKey(9), 0n, [transfer(1n)], 1000n * minimumFee(params, 200, 1));
    pool.add(generous, chain.state, params, chain.next());
    assert.ok(pool.has(generous.hash));
    assert.equal(pool.size, 45);
    pool.checkInvariants();
    // What went is a tail (a highest nonce), so no sender's queue has a gap.
    const dropped = senders.flatMap((s) =>
      Array.from({ length: 5 }, (_, n) => tx(s, BigInt(n), [transfer(1n)])).filter((t) =>
        pool.dropped(t.hash),
      ),
    );
    assert.equal(dropped.length, 1);
    assert.equal(dropped[0]!.stx.tx.nonce, 4n);
    assert.equal(pool.dropped(dropped[0]!.hash)!.code, 'EVICTED');
  });

  test('a gapped queue is evicted before a paying executable one, whatever its fee', () => {
    const chain = new Chain();
    const pool = new Mempool({ maxTxs: 3 });
    const gapped = tx(devKey(2), 5n, [transfer(1n)], 10n * minimumFee(params, 200, 1));
    pool.add(gapped, chain.state, params, chain.next());
    pool.add(tx(devKey(3), 0n, [transfer(1n)]), chain.state, params, chain.next());
    pool.add(tx(devKey(4), 0n, [transfer(1n)]), chain.state, params, chain.next());
    pool.add(tx(devKey(5), 0n, [transfer(1n)]), chain.state, params, chain.next());
    assert.equal(pool.dropped(gapped.hash)?.code, 'EVICTED');
    assert.equal(pool.size, 3);
  });

  test('a fee-free heartbeat gets into a pool full of paying transactions', () => {
    const { chain, answer } = chainWithOpenSlot();
    const pool = new Mempool({ maxTxs: 20 });
    for (let i = 0; i < 20; i++)
      pool.add(
        tx(devKey(i % 5), BigInt(Math.floor(i / 5)), [transfer(1n)], 'min', chain.height + 50n),
        chain.state,
        params,
        chain.next(),
      );
    assert.equal(pool.size, 20);
    const hb = tx(owner, 1n, [heartbeat(answer)], 0n, chain.height + 50n);
    assert.equal(pool.cheapRefusal(hb, chain.state, params, chain.next()), null);
    pool.add(hb, chain.state, params, chain.next());
    assert.ok(pool.has(hb.hash));
    assert.equal(pool.size, 20);
    pool.checkInvariants();
  });

  test('a transfer beyond the balance is refused at admission, counting what the sender already queued', () => {
    const chain = new Chain();
    const pool = new Mempool();
    refused(
      () => pool.add(tx(broke, 0n, [transfer(1n)], 'min'), chain.state, params, chain.next()),
      'INSUFFICIENT_FUNDS',
    );
    // The same answer before any signature check (Mempool.cheapRefusal, the admission queue's
    // screen), with the same words: signed once, such a transaction re-gossiped was checked again
    // on every delivery.
    const unfunded = tx(broke, 0n, [transfer(1n)], 'min');
    const early = pool.cheapRefusal(unfunded, chain.state, params, chain.next());
    assert.ok(early instanceof ValidationError && early.code === 'INSUFFICIENT_FUNDS');
    assert.throws(
      () => pool.add(unfunded, chain.state, params, chain.next()),
      (e: unknown) => e instanceof ValidationError && e.message === early.message,
    );
    // A funded key: each transfer of most of the balance fits alone, not two of them.
    const balance = genesis.accounts.find((a) => Buffer.compare(a.address, rich.address) === 0)!.balance;
    const big = balance - 10n ** 15n;
    pool.add(tx(rich, 0n, [transfer(big)]), chain.state, params, chain.next());
    const second = tx(rich, 1n, [transfer(big)]);
    assert.equal(pool.cheapRefusal(second, chain.state, params, chain.next())?.code, 'INSUFFICIENT_FUNDS');
    // A replacement of the queued one (same nonce, 10% more fee) is not counted twice.
    assert.equal(
      pool.cheapRefusal(tx(rich, 0n, [transfer(big)], 10n ** 15n), chain.state, params, chain.next()),
      null,
    );
    refused(
      () => pool.add(tx(rich, 1n, [transfer(big)]), chain.state, params, chain.next()),
      'INSUFFICIENT_FUNDS',
    );
    refused(
      () => pool.add(tx(devKey(2), 0n, [transfer(balance)]), chain.state, params, chain.next()),
      'INSUFFICIENT_FUNDS',
    );
    refused(
      () =>
        pool.add(tx(devKey(2), 0n, [{ type: 'bond', amount: balance }]), chain.state, params, chain.next()),
      'INSUFFICIENT_FUNDS',
    );
    assert.equal(pool.size, 1);
  });

  test('every way out of the pool but inclusion is remembered with reason and height, and the memory is bounded', () => {
    const chain = new Chain();
    chain.block();
    const pool = new Mempool({ maxRememberedDrops: 3 });
    const seen: string[] = [];
    pool.onDrop((_env, d) => seen.push(`${d.code}@${d.height}`));
    const a = tx(rich, 0n, [transfer(1n)]);
    pool.add(a, chain.state, params, chain.next());
    const bump = tx(rich, 0n, [transfer(1n)], 10n * a.stx.tx.fee);
    pool.add(bump, chain.state, params, chain.next());
    assert.deepEqual(pool.dropped(a.hash), {
      code: 'REPLACED',
      reason: pool.dropped(a.hash)!.reason,
      height: 1n,
    });
    const b = tx(devKey(2), 0n, [transfer(1n)], 'min', 3n);
    pool.add(b, chain.state, params, chain.next());
    pool.prune(
      [],
      [{ env: bump, error: new ValidationError('INSUFFICIENT_FUNDS', 'balance 0 is less') }],
      chain.state,
      2n,
    );
    assert.equal(pool.dropped(bump.hash)?.code, 'INSUFFICIENT_FUNDS');
    assert.equal(pool.dropped(bump.hash)?.height, 1n);
    pool.prune([], [], chain.state, 4n); // b expired at 3
    assert.equal(pool.dropped(b.hash)?.code, 'EXPIRED');
    assert.deepEqual(seen, ['REPLACED@1', 'INSUFFICIENT_FUNDS@1', 'EXPIRED@3']);
    // Re-admitting a dropped transaction forgets the drop.
    pool.add(a, chain.state, params, chain.next());
    assert.equal(pool.dropped(a.hash), null);
    for (let n = 1n; n <= 5n; n++) {
      const t = tx(devKey(3), 0n, [transfer(n)]);
      pool.add(t, chain.state, params, chain.next());
      pool.prune([], [{ env: t, error: new ValidationError('X', 'x') }], chain.state, 2n);
    }
    pool.checkInvariants();
  });

  test('a copy of an answer that another node included leaves the pool with the block: it cannot hold the slot', () => {
    const { chain, answer } = chainWithOpenSlot();
    const pool = new Mempool();
    // The owner's answer in one transaction here (another key's copy is refused NOT_CHIP_OWNER)…
    const copy = tx(owner, 1n, [heartbeat(answer)], 0n, 80n);
    pool.add(copy, chain.state, params, chain.next());
    // …and in another (sent to another node) that another proposer includes: this one never executes.
    const own = tx(owner, 1n, [heartbeat(answer)], 0n);
    chain.block([own]);
    pool.prune([own], [], chain.state, chain.height + 1n);
    assert.equal(pool.size, 0, 'the copy still holds the slot');
    assert.equal(pool.dropped(copy.hash)?.code, 'ANSWER_REPLAYED');
    pool.checkInvariants();
  });

  test('a fee-free transaction is not replaced by another fee-free one for a token fee (free churn)', () => {
    const { chain, answer } = chainWithOpenSlot();
    const pool = new Mempool();
    pool.add(tx(owner, 1n, [heartbeat(answer)], 0n), chain.state, params, chain.next());
    // Each bump re-runs the stateful check everywhere it is gossiped, for a fee far below the minimum.
    refused(
      () => pool.add(tx(owner, 1n, [heartbeat(answer)], 1n), chain.state, params, chain.next()),
      'REPLACEMENT_UNDERPRICED',
    );
    // Paying the minimum fee is a real replacement.
    pool.add(tx(owner, 1n, [heartbeat(answer)], 'min'), chain.state, params, chain.next());
    assert.equal(pool.size, 1);
  });

  test('attack: a paying heartbeat with a garbled answer is refused at admission, at any nonce, alone or beside other actions', () => {
    // A failed transaction pays nothing, whatever fee it declares: admitted, the junk answer was
    // gossiped to every node and failed only at the proposer, then was sent again at the same nonce.
    const { chain, answer } = chainWithOpenSlot();
    const expiresAt = chain.height + 50n;
    const garbledAnswer: HeartbeatAnswer = {
      ...answer,
      evidence: { type: 'dev-soft', signature: new Uint8Array(64).fill(7) },
    };
    const garbled = tx(owner, 1n, [heartbeat(garbledAnswer)], 'min', expiresAt);
    assert.ok(garbled.stx.tx.fee > 0n);

    // What a proposer makes of it: left out of the block, the sender charged nothing.
    const before = getAccount(chain.state, owner.address).balance;
    const ex = new BlockExecutor(chain.state, chain.next());
    const outcome = ex.tryApply(garbled);
    assert.ok(outcome instanceof ValidationError && outcome.code === 'ATTEST_BAD_SIGNATURE');
    ex.finish();
    assert.equal(getAccount(chain.state, owner.address).balance, before);

    const pool = new Mempool();
    refused(() => pool.add(garbled, chain.state, params, chain.next()), 'ATTEST_BAD_SIGNATURE');
    // Behind a pending transaction of the same sender, where the whole transaction cannot be
    // previewed (its nonce is not the next one), and beside a paying action.
    pool.add(tx(owner, 1n, [transfer(1n)], 'min', expiresAt), chain.state, params, chain.next());
    refused(
      () =>
        pool.add(
          tx(owner, 2n, [heartbeat(garbledAnswer)], 'min', expiresAt),
          chain.state,
          params,
          chain.next(),
        ),
      'ATTEST_BAD_SIGNATURE',
    );
    refused(
      () =>
        pool.add(
          tx(owner, 2n, [transfer(1n), heartbeat(garbledAnswer)], 'min', expiresAt),
          chain.state,
          params,
          chain.next(),
        ),
      'ATTEST_BAD_SIGNATURE',
    );
    assert.equal(pool.size, 1);
    // The real answer, paying, is admitted behind the transfer.
    const real = tx(owner, 2n, [heartbeat(answer)], 'min', expiresAt);
    pool.add(real, chain.state, params, chain.next());
    assert.ok(pool.has(real.hash));
    pool.checkInvariants();
  });

  test('attack: copies of a paying heartbeat with a garbled answer cost a lookup each, not another answer check', () => {
    // Relayed by every peer (or resent at will), each copy of the junk was verified again on the
    // main thread: the refusal is provable from the bytes, so it is remembered for good.
    const { chain, answer } = chainWithOpenSlot();
    const garbledAnswer: HeartbeatAnswer = {
      ...answer,
      evidence: { type: 'dev-soft', signature: new Uint8Array(64).fill(7) },
    };
    const garbled = tx(owner, 1n, [heartbeat(garbledAnswer)], 'min', chain.height + 50n);
    const pool = new Mempool();
    refused(() => pool.add(garbled, chain.state, params, chain.next()), 'ATTEST_BAD_SIGNATURE');
    assert.equal(pool.freeActionChecks, 1);
    // A relayed copy: refused by the screen before its signature is queued, and again if added.
    const copy = pool.cheapRefusal(garbled, chain.state, params, chain.next());
    assert.equal(copy?.code, 'ATTEST_BAD_SIGNATURE');
    refused(() => pool.add(garbled, chain.state, params, chain.next()), 'ATTEST_BAD_SIGNATURE');
    // On a later head too: no state makes the answer verify.
    chain.block();
    refused(() => pool.add(garbled, chain.state, params, chain.next()), 'ATTEST_BAD_SIGNATURE');
    assert.equal(pool.freeActionChecks, 1);
    assert.equal(pool.size, 0);
  });

  test('a paying heartbeat refused for a state reason is not remembered: a copy is checked again', () => {
    const { chain, answer } = chainWithOpenSlot();
    const window = getPociParams(chain.state).answerWindowBlocks;
    const paying = tx(owner, 1n, [heartbeat(answer)], 'min', chain.height + window + 50n);
    // Past its slot's window the answer is refused (too late, or its epoch gone), which only this
    // state says: a copy is screened and checked again, never refused from memory.
    for (let i = 0n; i <= window; i++) chain.block();
    const pool = new Mempool();
    const code = codeOf(() => pool.add(paying, chain.state, params, chain.next()));
    assert.ok(code !== null && !PROVABLY_BAD_EVIDENCE.has(code), `refused for a state reason, not ${code}`);
    assert.equal(pool.cheapRefusal(paying, chain.state, params, chain.next()), null);
    refused(() => pool.add(paying, chain.state, params, chain.next()), code);
    assert.equal(pool.freeActionChecks, 2);
  });

  test('attack: paying evidence that does not verify is refused at admission; a report takes the next nonce, alone', () => {
    // As for a paying heartbeat: failed at the proposer it pays nothing, so admitted it was junk
    // gossiped to every node for free, sent again at the same nonce at will.
    const chain = new Chain();
    for (let i = 0; i < 3; i++) chain.block();
    const junk: Action = { type: 'evidence', evidence: fakeEvidence(broke, 1n) };
    const garbled = tx(owner, 0n, [junk]);
    assert.ok(garbled.stx.tx.fee > 0n);

    // What a proposer makes of it: left out of the block, the sender charged nothing.
    const before = getAccount(chain.state, owner.address).balance;
    const ex = new BlockExecutor(chain.state, chain.next());
    const outcome = ex.tryApply(garbled);
    assert.ok(outcome instanceof ValidationError && outcome.code === 'BAD_EVIDENCE');
    ex.finish();
    assert.equal(getAccount(chain.state, owner.address).balance, before);

    const pool = new Mempool();
    refused(() => pool.add(garbled, chain.state, params, chain.next()), 'BAD_EVIDENCE');
    // A report holds its offender's one place, so it must be sure to land in the next block: at
    // the sender's next nonce (not behind a transaction of its own) and alone (nothing beside it
    // that could fail at the block).
    pool.add(tx(owner, 0n, [transfer(1n)]), chain.state, params, chain.next());
    refused(() => pool.add(tx(owner, 1n, [junk]), chain.state, params, chain.next()), 'NONCE_GAP');
    const v = devValidator();
    const evidence = fakeEvidence({ ...v, address: addressFromPublicKey(v.publicKey) }, 1n);
    const real: Action = { type: 'evidence', evidence };
    refused(() => pool.add(tx(owner, 1n, [real]), chain.state, params, chain.next()), 'NONCE_GAP');
    refused(
      () => pool.add(tx(rich, 0n, [transfer(1n), real]), chain.state, params, chain.next()),
      'EVIDENCE_NOT_ALONE',
    );
    refused(
      () => pool.add(tx(rich, 0n, [real, real]), chain.state, params, chain.next()),
      'EVIDENCE_NOT_ALONE',
    );
    assert.equal(pool.size, 1);
    // Genuine evidence, paying, alone, at the sender's next nonce is admitted.
    const report = tx(rich, 0n, [real]);
    pool.add(report, chain.state, params, chain.next());
    assert.ok(pool.has(report.hash));
    pool.checkInvariants();
  });

  test("property: a pending report at its sender's next nonce is the first transaction of every block drawn from the pool", () => {
    const chain = new Chain();
    for (let i = 0; i < 4; i++) chain.block();
    const v = devValidator();
    const offender = { ...v, address: addressFromPublicKey(v.publicKey) };
    const payers = [0, 2, 3, 4, 5, 6, 7].map((i) => devKey(i));
    fc.assert(
      fc.property(
        fc.array(fc.record({ who: fc.nat(payers.length - 1), feeMul: fc.integer({ min: 1, max: 50 }) }), {
          maxLength: 40,
        }),
        fc.constantFrom<bigint | 'min'>(0n, 'min'),
        fc.integer({ min: 0, max: 5 }),
        fc.integer({ min: 1, max: 30 }),
        (paying, reportFee, behind, maxTxs) => {
          const pool = new Mempool();
          const nonces = new Map<number, bigint>();
          for (const p of paying) {
            const n = nonces.get(p.who) ?? 0n;
            const fee = BigInt(p.feeMul) * minimumFee(params, 200, 1);
            if (
              codeOf(() =>
                pool.add(
                  tx(payers[p.who]!, n, [transfer(1n)], fee, 1000n),
                  chain.state,
                  params,
                  chain.next(),
                ),
              ) === null
            )
              nonces.set(p.who, n + 1n);
          }
          // The reporter (devKey(1), funded) with its report at nonce 0 and transactions of its own
          // behind it paying far more.
          const reporter = rich;
          const report = tx(
            reporter,
            0n,
            [{ type: 'evidence', evidence: fakeEvidence(offender, 1n) }],
            reportFee,
            1000n,
          );
          pool.add(report, chain.state, params, chain.next());
          for (let i = 1; i <= behind; i++)
            pool.add(
              tx(reporter, BigInt(i), [transfer(1n)], 60n * minimumFee(params, 200, 1), 1000n),
              chain.state,
              params,
              chain.next(),
            );
          const picked = pool.select(chain.state, maxTxs, params.maxBlockBytes);
          assert.equal(picked[0], report);
          pool.checkInvariants();
        },
      ),
      { numRuns: 40 },
    );
  });

  test('attack: a batch holding a heartbeat refused before its answer is checked is not forwarded whole, its valid transaction published here', async () => {
    // The owner's fee-free heartbeat pending here, then a batch of a valid transfer and another
    // fee-free heartbeat of the same nonce and answer with a garbled signature: refused here as an
    // underpriced replacement (after its signature check, before its answer is looked at).
    // Forwarded whole, the batch would reach a node without the pending heartbeat, which checks
    // that answer and judges the relay (this node) by it.
    const { chain, answer } = chainWithOpenSlot();
    const next = chain.next();
    const hex = hexOf;
    const nodeOn = () => gossipNode(chain.state, params, next);
    const expiresAt = chain.height + 50n;
    const here = nodeOn();
    const pending = tx(owner, 1n, [heartbeat(answer)], 0n, expiresAt);
    assert.deepEqual(await here.queue.submit([pending]), [{ replaced: false }]);
    const garbled = tx(
      owner,
      1n,
      [heartbeat({ ...answer, evidence: { type: 'dev-soft', signature: new Uint8Array(64).fill(7) } })],
      0n,
      expiresAt,
    );
    const valid = tx(rich, 0n, [transfer(1n)], 'min', expiresAt);
    assert.equal(await here.reactor.onTxGossip(batchOf(valid, garbled), 'relay'), 'ignore');
    const [refusal] = await here.queue.submit([garbled]);
    assert.ok(refusal instanceof ValidationError && refusal.code === 'REPLACEMENT_UNDERPRICED');
    assert.deepEqual(
      here.pool.pendingOf(owner.address).map((e) => hex(e.hash)),
      [hex(pending.hash)],
    );
    here.reactor.flushTxs();
    assert.deepEqual(here.published, [[hex(valid.hash)]], 'the admitted one alone, published by this node');

    // What a node without the pending heartbeat makes of that batch: it checks the answer.
    const downstream = nodeOn();
    assert.equal(await downstream.reactor.onTxGossip(batchOf(valid, garbled), 'this node'), 'reject');
    here.reactor.stop();
    downstream.reactor.stop();
    here.queue.stop();
    downstream.queue.stop();
  });
});

/**
 * A pool of 300 minimum-fee transfers from five spammers, and one fee-free answer from its own key
 * per open slot of `answers`.
 */
function spamAndAnswers(
  chain: Chain,
  answers: { answer: HeartbeatAnswer; from: Key; nonce: bigint }[],
): Mempool {
  const pool = new Mempool();
  const spammers = [0, 2, 3, 4, 5].map((i) => devKey(i));
  for (let k = 0; k < 300; k++) {
    const s = k % spammers.length;
    pool.add(
      tx(spammers[s]!, BigInt(Math.floor(k / spammers.length)), [transfer(1n)], 'min', chain.height + 50n),
      chain.state,
      params,
      chain.next(),
    );
  }
  for (const a of answers)
    pool.add(
      tx(a.from, a.nonce, [heartbeat(a.answer)], 0n, chain.height + 50n),
      chain.state,
      params,
      chain.next(),
    );
  return pool;
}

describe('the fee-free reserve', () => {
  test('a fee-free answer goes into the next block while minimum-fee transfers pending exceed the block budget', () => {
    const { chain, answer } = chainWithOpenSlot();
    const pool = new Mempool();
    const perBlock = 100; // the proposal budget's smallest count (ProposalBudget minTxs)
    const spammers = [0, 2, 3, 4, 5].map((i) => devKey(i));
    // More of the cheapest paying transactions pending than two blocks take.
    for (let k = 0; k < 2 * perBlock + 5; k++) {
      const s = k % spammers.length;
      const t = tx(
        spammers[s]!,
        BigInt(Math.floor(k / spammers.length)),
        [transfer(1n)],
        'min',
        chain.height + 50n,
      );
      pool.add(t, chain.state, params, chain.next());
    }
    // The honest chip's answer, fee-free as the miner agent sends it, admitted last.
    const hb = tx(owner, 1n, [heartbeat(answer)], 0n, chain.height + 50n);
    pool.add(hb, chain.state, params, chain.next());
    const { included } = buildBlock(chain, pool, perBlock);
    assert.equal(included.length, perBlock);
    assert.ok(included.includes(hb), 'the fee-free answer is in the next block');
    assert.equal(getChip(chain.state, answer.chipId)!.slotsAnswered, 1n);
    // The rest of the block went by fee, as before: the reserve took one place.
    assert.equal(included.filter((e) => e.stx.tx.fee > 0n).length, perBlock - 1);
    pool.checkInvariants();
  });

  test('answers go nearest deadline first, whatever order they came in', () => {
    const { chain, answers } = chainWithOpenSlots(3, true);
    const pool = new Mempool();
    // Admitted latest deadline first, each from its own key (one fee-free transaction per sender).
    const byLatest = [...answers].sort((a, b) =>
      a.deadline > b.deadline ? -1 : a.deadline < b.deadline ? 1 : 0,
    );
    for (const a of byLatest)
      pool.add(
        tx(a.from, a.nonce, [heartbeat(a.answer)], 0n, chain.height + 50n),
        chain.state,
        params,
        chain.next(),
      );
    const deadlines = [...pool.ordered(chain.state)].map((e) => {
      const a = e.stx.tx.actions[0]!;
      assert.equal(a.type, 'heartbeat');
      return answers.find((x) => Buffer.compare(x.answer.chipId, a.answers[0]!.chipId) === 0)!.deadline;
    });
    assert.deepEqual(
      deadlines,
      [...deadlines].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)),
    );
    assert.ok(deadlines[0]! < deadlines.at(-1)!);
  });

  test('one pending piece of evidence per offender: the others could only fail once it is in', () => {
    const chain = new Chain();
    for (let i = 0; i < 4; i++) chain.block();
    const v = devValidator();
    const offender = { ...v, address: addressFromPublicKey(v.publicKey) };
    const pool = new Mempool();
    pool.add(
      tx(broke, 0n, [{ type: 'evidence', evidence: fakeEvidence(offender, 1n) }], 0n),
      chain.state,
      params,
      chain.next(),
    );
    // Other conflicting votes of the same validator, from keys with nothing: each would be drawn
    // into the fee-free reserve only to fail once the first has tombstoned the validator.
    refused(
      () =>
        pool.add(
          tx(key('another'), 0n, [{ type: 'evidence', evidence: fakeEvidence(offender, 2n) }], 0n),
          chain.state,
          params,
          chain.next(),
        ),
      'ALREADY_PENDING',
    );
    assert.equal(pool.size, 1);
  });

  test('the smallest transfers do not shrink the reserve: its bytes are held to a quarter of the block limit, not of what went in', () => {
    const { chain, answers } = chainWithOpenSlots(40, false);
    const pool = spamAndAnswers(chain, answers);
    const freeOf = (picked: TxEnvelope[]) => picked.filter((e) => e.stx.tx.fee === 0n);
    // A heartbeat (256 bytes) is larger than a minimum transfer (186): held to a quarter of the
    // bytes so far, only 20 answers went into a block of 100.
    const picked = pool.select(chain.state, 100, params.maxBlockBytes);
    assert.equal(picked.length, 100);
    assert.ok(freeOf(picked).length >= 25, `${freeOf(picked).length} answers in a block of 100`);
    // The block's byte limit still bounds them: with room for two answers in its quarter, the
    // third is drawn while the share is still at it, and the rest only after the paying ones.
    const size = freeOf(picked)[0]!.bytes.length;
    const drawn: TxEnvelope[] = [];
    for (const env of pool.ordered(chain.state, 4 * 2 * size)) if (drawn.push(env) === 40) break;
    assert.equal(freeOf(drawn).length, 3);
  });

  test('evidence is not starved behind answers that fill the reserve: it goes first', () => {
    const { chain, answers } = chainWithOpenSlots(40, false);
    const v = devValidator();
    const offender = { ...v, address: addressFromPublicKey(v.publicKey) };
    const pool = spamAndAnswers(chain, answers);
    // The validator's report expires 20 blocks on (evidence-pool.ts) and is not sent again.
    const report = tx(
      broke,
      0n,
      [{ type: 'evidence', evidence: fakeEvidence(offender, chain.height - 1n) }],
      0n,
      chain.height + 20n,
    );
    pool.add(report, chain.state, params, chain.next());
    // More answers pending than a block's reserve takes (40 against 25).
    const { included } = buildBlock(chain, pool, 100);
    assert.ok(included.includes(report), 'the report is in the next block');
  });

  test('a paying claim weighs what its fee counts (feeActions), so a few large claims do not shrink the reserve to a few answers', () => {
    // revmoney: a claim of N chips pays N per-action fees (audmoney M-1), yet weighed one action
    // here. 128 claims of 64 KiB fill a block's bytes with a weight of 128, against which the
    // reserve took ~43 answers a block, whatever the chips' due answers.
    const { chain, answers } = chainWithOpenSlots(12, false);
    const pool = new Mempool();
    const chipIds = answers.map((a) => a.answer.chipId);
    const claimers = [0, 2, 3].map((i) => devKey(i));
    // More claims pending than the block takes: the reserve, not an empty paying queue, decides.
    for (const [i, c] of [...claimers, ...claimers, ...claimers, ...claimers].entries()) {
      const actions: Action[] = [{ type: 'claimRewards', chipIds: [...chipIds, ...chipIds].slice(0, 20) }];
      const base = {
        chainId: genesis.chainId,
        signer: c.publicKey,
        nonce: BigInt(Math.floor(i / claimers.length)),
        expiresAt: 1000n,
        actions,
        fee: 0n,
      };
      const size = encode(signedTransactionCodec, { tx: base, signature: new Uint8Array(64) }).length;
      // Paying well over the minimum: drawn before the answers whenever the reserve is shut.
      const fee = BigInt(10 + (i % claimers.length)) * minimumFee(params, size, feeActions(actions));
      pool.add(
        envelopeFromSigned(signTransaction({ ...base, fee }, c.seed)),
        chain.state,
        params,
        chain.next(),
      );
    }
    for (const a of answers)
      pool.add(tx(a.from, a.nonce, [heartbeat(a.answer)], 0n, 1000n), chain.state, params, chain.next());
    const picked = pool.select(chain.state, 10, 1 << 20);
    const free = picked.filter((e) => e.stx.tx.fee === 0n).length;
    // Weighed 20 each, one claim opens room for five answers: F C F F F F F F C F, eight answers.
    // Weighed 1 each, four claims open room for one: F C C C C F C C C F, three.
    assert.equal(picked.length, 10);
    assert.ok(free >= 7, `${free} answers in a block of 10 with claims of 20 chips pending`);
  });

  test('property: while a fee-free transaction waits, a paying one is drawn only once the fee-free share is past a quarter', () => {
    const { chain, answers } = chainWithOpenSlots(4, false);
    const payers = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => devKey(i));
    fc.assert(
      fc.property(
        fc.array(fc.record({ who: fc.nat(payers.length - 1), feeMul: fc.integer({ min: 1, max: 30 }) }), {
          maxLength: 30,
        }),
        fc.nat(answers.length),
        fc.integer({ min: 1, max: 40 }),
        (paying, free, maxTxs) => {
          const pool = new Mempool();
          const nonces = new Map<number, bigint>();
          for (const p of paying) {
            const n = nonces.get(p.who) ?? 0n;
            const fee = BigInt(p.feeMul) * minimumFee(params, 200, 1);
            if (
              codeOf(() =>
                pool.add(
                  tx(payers[p.who]!, n, [transfer(1n)], fee, 1000n),
                  chain.state,
                  params,
                  chain.next(),
                ),
              ) === null
            )
              nonces.set(p.who, n + 1n);
          }
          for (let i = 0; i < free; i++)
            pool.add(
              tx(answers[i]!.from, answers[i]!.nonce, [heartbeat(answers[i]!.answer)], 0n, 1000n),
              chain.state,
              params,
              chain.next(),
            );
          const picked = pool.select(chain.state, maxTxs, 1 << 20);
          assert.equal(picked.length, Math.min(maxTxs, pool.size));
          let count = 0;
          let bytes = 0;
          let freeCount = 0;
          let freeBytes = 0;
          for (const e of picked) {
            const isFree = e.stx.tx.fee === 0n;
            if (!isFree && freeCount < free)
              assert.ok(
                freeCount * 4 > count || freeBytes * 4 > 1 << 20,
                `a paying transaction drawn with the fee-free share at ${freeCount}/${count} txs, ${freeBytes}/${bytes} bytes`,
              );
            count++;
            bytes += e.bytes.length;
            if (isFree) {
              freeCount++;
              freeBytes += e.bytes.length;
            }
          }
          // Fee-free ones past the reserve still fill a block that has room left.
          if (picked.length < maxTxs) assert.equal(freeCount, free);
        },
      ),
      { numRuns: 40 },
    );
  });
});

describe('mempool properties', () => {
  test('property: after any adds and a prune, every eviction key is the one a pool built afresh from the same contents holds', () => {
    const keys = Array.from({ length: 5 }, (_, i) => devKey(i));
    const opts = {
      maxTxs: 14,
      maxBytes: 1 << 20,
      maxTxsPerSender: 6,
      maxBytesPerSender: 1 << 20,
      maxNonceGap: 6n,
      maxRememberedDrops: 5,
    };
    const op = fc.oneof(
      {
        arbitrary: fc.record({
          kind: fc.constant('add' as const),
          who: fc.nat(keys.length - 1),
          // Ahead of the next nonce (a gap) or at one already queued (a replacement if it pays more).
          nonce: fc.nat(6),
          feeMul: fc.integer({ min: 1, max: 30 }),
          memo: fc.nat(120),
          // Blocks it may wait before it expires.
          life: fc.nat(4),
        }),
        weight: 4,
      },
      fc.record({
        kind: fc.constant('block' as const),
        take: fc.nat(6),
        // A sender's next nonce used by a transaction the pool never saw (its queued one is dropped).
        foreign: fc.option(fc.nat(keys.length - 1), { nil: undefined }),
        // Pending transactions reported as rejected, by index among those pending (front, middle, tail).
        reject: fc.array(fc.nat(20), { maxLength: 3 }),
      }),
    );
    const contents = (pool: Mempool) => keys.flatMap((k) => pool.pendingOf(k.address));
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const c = new Chain();
        const pool = new Mempool(opts);
        const nonces = new Map<number, bigint>();
        for (const o of ops) {
          if (o.kind === 'add') {
            const base = nonces.get(o.who) ?? 0n;
            const actions = [{ ...transfer(1n), memo: new Uint8Array(o.memo) } as Action];
            const fee = BigInt(o.feeMul) * minimumFee(params, 200 + o.memo, 1);
            const t = tx(keys[o.who]!, base + BigInt(o.nonce), actions, fee, c.height + 1n + BigInt(o.life));
            codeOf(() => pool.add(t, c.state, params, c.next()));
            continue;
          }
          const picked = pool.select(c.state, o.take, 1 << 20);
          const senders = new Set(picked.map((e) => toHex(e.sender)));
          const block = [...picked];
          if (o.foreign !== undefined && !senders.has(toHex(keys[o.foreign]!.address))) {
            const n = nonces.get(o.foreign) ?? 0n;
            block.push(
              tx(
                keys[o.foreign]!,
                n,
                [{ ...transfer(2n), memo: utf8('never pending') } as Action],
                'min',
                1000n,
              ),
            );
          }
          const pending = contents(pool);
          const rejected = o.reject
            .filter((i) => i < pending.length)
            .map((i) => ({ env: pending[i]!, error: new ValidationError('X', 'rejected') }));
          c.block(block);
          for (const env of block) {
            const who = keys.findIndex((k) => Buffer.compare(k.publicKey, env.stx.tx.signer) === 0);
            nonces.set(who, env.stx.tx.nonce + 1n);
          }
          pool.prune(block, rejected, c.state, c.height + 1n);
          // Read before checkInvariants, which recomputes every key (rekeying the heap) and throws
          // on a difference: compared here first, a stale key shows as the orders that differ.
          const fresh = new Mempool(opts);
          for (const env of contents(pool)) fresh.add(env, c.state, params, c.next());
          const got = pool.evictionOrder();
          const want = fresh.evictionOrder();
          assert.deepEqual(
            got.map((q) => [q.sender, q.cls, q.tail]),
            want.map((q) => [q.sender, q.cls, q.tail]),
          );
          // The cheapest entry may differ between entries of one rate; the rate may not.
          got.forEach((q, i) => assert.equal(q.fee * BigInt(want[i]!.size), want[i]!.fee * BigInt(q.size)));
          pool.checkInvariants();
        }
      }),
      { numRuns: 40 },
    );
  });
  test('property: caps hold, bookkeeping is exact and select takes each sender from its next nonce without gaps', () => {
    const keys = Array.from({ length: 6 }, (_, i) => devKey(i));
    const op = fc.oneof(
      fc.record({
        kind: fc.constant('add' as const),
        who: fc.nat(keys.length - 1),
        nonce: fc.nat(12),
        feeMul: fc.integer({ min: 1, max: 40 }),
        memo: fc.nat(250),
      }),
      fc.record({ kind: fc.constant('block' as const), take: fc.nat(6) }),
    );
    fc.assert(
      fc.property(
        fc.record({
          maxTxs: fc.integer({ min: 1, max: 12 }),
          maxBytes: fc.integer({ min: 300, max: 4000 }),
          perSender: fc.integer({ min: 1, max: 6 }),
          perSenderBytes: fc.integer({ min: 300, max: 2000 }),
          gap: fc.integer({ min: 0, max: 8 }),
        }),
        fc.array(op, { maxLength: 60 }),
        (limits, ops) => {
          const c = new Chain();
          const pool = new Mempool({
            maxTxs: limits.maxTxs,
            maxBytes: limits.maxBytes,
            maxTxsPerSender: limits.perSender,
            maxBytesPerSender: limits.perSenderBytes,
            maxNonceGap: BigInt(limits.gap),
            maxRememberedDrops: 5,
          });
          const nonces = new Map<number, bigint>();
          for (const o of ops) {
            if (o.kind === 'add') {
              const k = keys[o.who]!;
              const base = nonces.get(o.who) ?? 0n;
              const actions = [{ ...transfer(1n), memo: new Uint8Array(o.memo) } as Action];
              const fee = BigInt(o.feeMul) * minimumFee(params, 200 + o.memo, 1);
              const t = tx(k, base + BigInt(o.nonce), actions, fee, 1000n);
              codeOf(() => pool.add(t, c.state, params, c.next()));
            } else {
              const picked = pool.select(c.state, o.take, 1 << 20);
              // Per sender: consecutive nonces from the account's next one.
              const next = new Map<number, bigint>();
              for (const e of picked) {
                const who = keys.findIndex((k) => Buffer.compare(k.publicKey, e.stx.tx.signer) === 0);
                const expected = next.get(who) ?? nonces.get(who) ?? 0n;
                assert.equal(e.stx.tx.nonce, expected);
                next.set(who, expected + 1n);
              }
              c.block(picked);
              for (const [who, n] of next) nonces.set(who, n);
              pool.prune(picked, [], c.state, c.height + 1n);
            }
            pool.checkInvariants();
            assert.ok(pool.size <= limits.maxTxs && pool.bytes <= limits.maxBytes);
          }
        },
      ),
      { numRuns: 60 },
    );
  });
});
