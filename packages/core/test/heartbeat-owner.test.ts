/**
 * Only a chip's owner may send its heartbeat (core poci/execute.ts applyHeartbeat, NOT_CHIP_OWNER).
 * Heartbeats pay no fee: from any other key, copied answers were free state growth (every new key
 * kept a `{balance 0, nonce 1}` account) and a race that had the miner's own batch refused
 * ANSWER_REPLAYED. Refused before the answer's attestation is checked; a transfer earlier in the
 * block hands the answers to the new owner.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  type BlockExecutor,
  devSoftChipId,
  ed25519CheckKey,
  ed25519Sign,
  executeBlock,
  executeBlockAssuming,
  getAccount,
  type HeartbeatAnswer,
  heartbeatSignatureChecks,
  settleAssumed,
  type TxEnvelope,
  toHex,
  transferMessage,
  ValidationError,
} from '../src/index.js';
import {
  answer,
  CHAIN,
  heartbeatTx,
  type Key,
  key,
  miner,
  other,
  registerAction,
  TestChain,
  untilChallenged,
} from './harness.js';

/** A chip of miner's and one of other's, both with a challenge open to answer in the next block. */
function twoOwners() {
  const chain = new TestChain();
  chain.blocksUntil(2n);
  const mine = key('owner-test chip of miner');
  const theirs = key('owner-test chip of other');
  chain.block([
    chain.tx(miner, [registerAction(chain, mine, miner.address)]),
    chain.tx(other, [registerAction(chain, theirs, other.address)]),
  ]);
  chain.blocksUntil(20n);
  const a = untilChallenged(chain, mine);
  const b = untilChallenged(chain, theirs);
  // Both windows (W = 5 blocks) still open: the later challenge came at most a few blocks after.
  const answers = {
    mine: answer(chain, mine, a.epoch, a.slot),
    theirs: answer(chain, theirs, b.epoch, b.slot),
  };
  return { chain, mine, theirs, answers, open: chain.height <= a.height + 4n };
}

/** Miner's transfer of its chip `mine` to other, anchored at the head (not yet applied). */
function sellToOther(chain: TestChain, mine: Key): TxEnvelope {
  const chipId = devSoftChipId(mine.publicKey);
  const anchor = chain.height;
  return chain.tx(miner, [
    {
      type: 'transferChip',
      chipId,
      newOwner: other.address,
      anchorHeight: anchor,
      consent: {
        type: 'dev-soft',
        signature: ed25519Sign(
          mine.seed,
          transferMessage(CHAIN, chipId, other.address, chain.hashOf(anchor)),
        ),
      },
    },
  ]);
}

/** The executor's writes so far, as text. */
function writes(ex: BlockExecutor): string {
  return ex.overlay
    .changes()
    .map((w) => `${toHex(w.key)}=${w.value ? toHex(w.value) : '-'}`)
    .join(',');
}

function forged(a: HeartbeatAnswer): HeartbeatAnswer {
  const signature = Uint8Array.from((a.evidence as { signature: Uint8Array }).signature);
  signature[0]! ^= 1;
  return { ...a, evidence: { type: 'dev-soft', signature } };
}

describe('a heartbeat comes from the owner of every chip it answers for', () => {
  test('from another funded account or a brand-new key: refused NOT_CHIP_OWNER naming the answer, nothing written, no account made; from the owner: accepted', () => {
    const { chain, answers, open } = twoOwners();
    assert.ok(open, 'the first challenge is still open');
    const stranger = key('owner-test brand-new key');
    for (const [from, nonce] of [
      [other, chain.nonces.get(toHex(other.address)) ?? 0n],
      [stranger, 0n],
    ] as const) {
      const ex = chain.executor();
      const before = writes(ex);
      const r = ex.tryApply(heartbeatTx(from, nonce, [answers.mine], chain.height + 10n));
      assert.ok(r instanceof ValidationError, 'refused');
      assert.equal(r.code, 'NOT_CHIP_OWNER');
      assert.deepEqual(r.answer, {
        chipId: toHex(answers.mine.chipId),
        epoch: Number(answers.mine.epoch),
        slot: answers.mine.slot,
      });
      assert.equal(writes(ex), before, 'the refused heartbeat wrote nothing');
      const after = ex.finish().overlay;
      assert.equal(getAccount(after, stranger.address).nonce, 0n, 'no account for the stranger');
      assert.equal(
        after.changes().some((w) => Buffer.from(w.key).includes(Buffer.from(stranger.address))),
        false,
      );
    }
    // The owner's own heartbeat of the same answer lands.
    const events = chain.block(chain.heartbeats([answers.mine]));
    assert.ok(events.some((e) => e.type === 'slotAnswered'));
  });

  test("ownership is checked before the answer's attestation: a forged answer from a non-owner is NOT_CHIP_OWNER, not ATTEST_BAD_SIGNATURE", () => {
    const { chain, answers } = twoOwners();
    const bad = forged(answers.mine);
    assert.equal(
      chain.attempt(chain.tx(other, [{ type: 'heartbeat', answers: [bad] }], 0n))?.code,
      'NOT_CHIP_OWNER',
    );
    // From the owner the same answer reaches the signature check.
    assert.equal(
      chain.attempt(chain.tx(miner, [{ type: 'heartbeat', answers: [bad] }], 0n))?.code,
      'ATTEST_BAD_SIGNATURE',
    );
  });

  test("one chip not the sender's sinks the heartbeat, whatever else it answers", () => {
    const { chain, answers } = twoOwners();
    const r = chain.attempt(
      chain.tx(miner, [{ type: 'heartbeat', answers: [answers.mine, answers.theirs] }], 0n),
    );
    assert.equal(r?.code, 'NOT_CHIP_OWNER');
    assert.equal(r?.answer?.chipId, toHex(answers.theirs.chipId));
  });

  test('a transfer earlier in the block hands the answers to the new owner: the seller is refused, the buyer accepted', () => {
    const { chain, mine, answers } = twoOwners();
    const transfer = sellToOther(chain, mine);
    const minerNonce = transfer.stx.tx.nonce;
    const otherNonce = chain.nonces.get(toHex(other.address)) ?? 0n;
    const seller = chain.executor();
    seller.apply(transfer);
    const r = seller.tryApply(heartbeatTx(miner, minerNonce + 1n, [answers.mine], chain.height + 10n));
    assert.ok(r instanceof ValidationError);
    assert.equal(r.code, 'NOT_CHIP_OWNER');
    const buyer = chain.executor();
    buyer.apply(transfer);
    const ok = buyer.tryApply(heartbeatTx(other, otherNonce, [answers.mine], chain.height + 10n));
    assert.ok(!(ok instanceof ValidationError), `accepted (${ok instanceof ValidationError ? ok.code : ''})`);
    // Before the transfer, in the same block, the seller still answers for it.
    const before = chain.executor();
    assert.ok(
      !(
        before.tryApply(heartbeatTx(miner, minerNonce, [answers.mine], chain.height + 10n)) instanceof
        ValidationError
      ),
    );
  });

  test('the block pre-check gathers no answer of a chip the head gives another owner than the sender: it could only fail', () => {
    const { chain, theirs, answers } = twoOwners();
    const head = {
      height: chain.height,
      hash: chain.hashOf(chain.height),
      beacon: chain.beaconOf(chain.height),
    };
    const copy = heartbeatTx(other, 0n, [answers.mine, answers.theirs], chain.height + 10n);
    assert.deepEqual(
      heartbeatSignatureChecks(chain.state, CHAIN, copy, head).map((c) => toHex(c.publicKey)),
      [toHex(theirs.publicKey)],
      "only other's own chip's answer",
    );
  });

  test("a transfer earlier in the block: the pre-check reads the head's owner, so it leaves the buyer's answer out and gathers the seller's, and execution decides alone (the buyer's good answer lands, a forged one is refused, whatever the checks in flight say)", () => {
    const { chain, mine, answers } = twoOwners();
    const transfer = sellToOther(chain, mine);
    const otherNonce = chain.nonces.get(toHex(other.address)) ?? 0n;
    const minerNonce = transfer.stx.tx.nonce;
    const head = {
      height: chain.height,
      hash: chain.hashOf(chain.height),
      beacon: chain.beaconOf(chain.height),
    };
    const ctx = chain.executor().ctx;
    /** The block [transfer, tx] run as a node runs it: every check the head's pre-check gathers is in flight. */
    const run = (tx: TxEnvelope, inFlightPasses: boolean) => {
      const txs = [transfer, tx];
      const gathered = txs.flatMap((t) => heartbeatSignatureChecks(chain.state, CHAIN, t, head));
      const keys = new Set(gathered.map((c) => ed25519CheckKey(c.publicKey, c.message, c.signature)));
      const optimistic = executeBlockAssuming(chain.state, txs, ctx, {}, (k) => keys.has(k));
      let verdict: string;
      try {
        settleAssumed(
          optimistic,
          optimistic.assumed.map(() => inFlightPasses),
        );
        verdict = 'valid';
      } catch (err) {
        verdict = (err as ValidationError).code;
      }
      let inOrder: string;
      try {
        executeBlock(chain.state, txs, ctx);
        inOrder = 'valid';
      } catch (err) {
        inOrder = (err as ValidationError).code;
      }
      return { gathered: gathered.length, assumed: optimistic.assumed.length, verdict, inOrder };
    };
    // The buyer's answers: the head gives the chip to the seller, so nothing is gathered or assumed.
    const buyerGood = run(heartbeatTx(other, otherNonce, [answers.mine], chain.height + 10n), false);
    assert.deepEqual(buyerGood, { gathered: 0, assumed: 0, verdict: 'valid', inOrder: 'valid' });
    const buyerForged = run(heartbeatTx(other, otherNonce, [forged(answers.mine)], chain.height + 10n), true);
    assert.deepEqual(buyerForged, {
      gathered: 0,
      assumed: 0,
      verdict: 'ATTEST_BAD_SIGNATURE',
      inOrder: 'ATTEST_BAD_SIGNATURE',
    });
    // The seller's: gathered on the head's word, never consulted (refused on the owner first), so
    // even a check in flight that fails cannot change the verdict.
    for (const passes of [true, false]) {
      const seller = run(heartbeatTx(miner, minerNonce + 1n, [answers.mine], chain.height + 10n), passes);
      assert.deepEqual(seller, {
        gathered: 1,
        assumed: 0,
        verdict: 'NOT_CHIP_OWNER',
        inOrder: 'NOT_CHIP_OWNER',
      });
    }
  });

  test("property: a heartbeat answering for any chip not its sender's never changes state", () => {
    const { chain, answers } = twoOwners();
    const pool = [answers.mine, answers.theirs, forged(answers.mine), forged(answers.theirs)];
    const senders = [miner, other, key('owner-test stranger 1'), key('owner-test stranger 2')];
    const owned = (s: Key, a: HeartbeatAnswer) =>
      (s === miner && toHex(a.chipId) === toHex(answers.mine.chipId)) ||
      (s === other && toHex(a.chipId) === toHex(answers.theirs.chipId));
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: senders.length - 1 }),
        fc.array(fc.integer({ min: 0, max: pool.length - 1 }), { minLength: 1, maxLength: 6 }),
        (s, picks) => {
          const sender = senders[s]!;
          const list = picks.map((i) => pool[i]!);
          const firstForeign = list.findIndex((a) => !owned(sender, a));
          fc.pre(firstForeign >= 0);
          const ex = chain.executor();
          const before = writes(ex);
          const nonce = chain.nonces.get(toHex(sender.address)) ?? 0n;
          const r = ex.tryApply(heartbeatTx(sender, nonce, list, chain.height + 10n));
          assert.ok(r instanceof ValidationError, 'refused');
          assert.equal(writes(ex), before, 'nothing written');
          // Refused at the first foreign answer at the latest: the answers before it may fail first.
          if (firstForeign === 0) assert.equal(r.code, 'NOT_CHIP_OWNER');
        },
      ),
      { numRuns: 60 },
    );
  });
});
