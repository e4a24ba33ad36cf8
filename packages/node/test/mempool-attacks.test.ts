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
  DEV_SOFT_VENDOR,
  devSoftChipId,
  duplicateVoteEvidence,
  ed25519Sign,
  encode,
  envelopeFromSigned,
  epochOf,
  genesisStateWrites,
  getChip,
  getPociParams,
  getRecentHash,
  type HeartbeatAnswer,
  heartbeatChallenge,
  MemoryState,
  minimumFee,
  registrationMessage,
  sha256,
  signedTransactionCodec,
  signTransaction,
  signVote,
  type TxEnvelope,
  utf8,
  ValidationError,
} from '@unc/core';
import fc from 'fast-check';
import { DEV_MODELS, devGenesis, devKey, devValidator } from '../src/dev.js';
import { Mempool } from '../src/mempool.js';
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
  const f = fee === 'min' ? minimumFee(params, size, actions.length) : fee;
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

/** A registered dev chip of `owner` and the chain advanced until one of its slots is open. */
function chainWithOpenSlot(): { chain: Chain; chip: Key; answer: HeartbeatAnswer; nonce: bigint } {
  const chain = new Chain();
  chain.block();
  const chip = key('dev chip for the mempool tests');
  const message = registrationMessage(genesis.chainId, owner.address, chain.hashOf(chain.height));
  const register = tx(owner, 0n, [
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
  ]);
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
    // The same answer, copied into a transaction of a key with nothing: one pending answer per slot.
    refused(
      () => pool.add(tx(broke, 0n, [heartbeat(answer)], 0n), chain.state, params, chain.next()),
      'ALREADY_PENDING',
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
      () => pool.add(tx(broke, 0n, [heartbeat(answer)], 0n), chain.state, params, chain.next()),
      'ANSWER_REPLAYED',
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
    // A key with nothing copies a chip's answer from gossip and gets here first.
    const copy = tx(broke, 0n, [heartbeat(answer)], 0n, 80n);
    pool.add(copy, chain.state, params, chain.next());
    // The owner's own transaction is included by another proposer; the copy can never execute now.
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
});

describe('mempool properties', () => {
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
