/**
 * Heartbeat operators (CONSENSUS CHANGE, core poci/operator.ts, docs/poci.md "Heartbeat operator"):
 * an owner names one address whose heartbeats answer for the owner's chips, so the miner host holds
 * a hot key that can do nothing else. Rewards still go to the owner; the operator pays its own
 * fees; a change takes effect from the next block; a chip sold leaves the seller's operator behind.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  actionCodec,
  applySetHeartbeatOperator,
  DEFAULT_PARAMS,
  decode,
  devSoftChipId,
  ed25519Sign,
  encode,
  getAccount,
  getHeartbeatOperatorRecord,
  heartbeatOperatorAt,
  heartbeatOwnerRefusal,
  heartbeatSignatureChecks,
  MemoryState,
  maxSpend,
  mayAnswerFor,
  pruneRemovedHeartbeatOperators,
  STATE_ENTRY_BURN_ACTIONS,
  StateOverlay,
  type TxEnvelope,
  type TxEvent,
  toHex,
  transferMessage,
  txEventCodec,
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
  slotsOf,
  TestChain,
  untilChallenged,
} from './harness.js';

const chipKey = key('operator-test chip');
const chipId = devSoftChipId(chipKey.publicKey);
const op = key('operator-test hot key');

const nonceOf = (chain: TestChain, k: Key) => chain.nonces.get(toHex(k.address)) ?? 0n;

/** A heartbeat of `from` at its next nonce answering the chip's challenge at (epoch, slot). */
function beat(chain: TestChain, from: Key, at: { epoch: bigint; slot: number }): TxEnvelope {
  return heartbeatTx(
    from,
    nonceOf(chain, from),
    [answer(chain, chipKey, at.epoch, at.slot)],
    chain.height + 10n,
  );
}

const setOperator = (chain: TestChain, owner: Key, operator: Key | null) =>
  chain.tx(owner, [{ type: 'setHeartbeatOperator', operator: operator ? operator.address : null }]);

/** Miner's chip registered and challengeable; op named as its operator, in force from the block after. */
function withOperator(): TestChain {
  const chain = new TestChain();
  chain.blocksUntil(2n);
  chain.block([chain.tx(miner, [registerAction(chain, chipKey, miner.address)])]);
  chain.block([setOperator(chain, miner, op)]);
  chain.blocksUntil(20n);
  return chain;
}

describe('a heartbeat operator answers for its owner’s chips, and does nothing else', () => {
  test('the action round-trips in its one encoding (tag 22, option of an address)', () => {
    for (const operator of [op.address, null]) {
      const bytes = encode(actionCodec, { type: 'setHeartbeatOperator', operator });
      assert.equal(bytes[0], 22);
      assert.deepEqual(decode(actionCodec, bytes), { type: 'setHeartbeatOperator', operator });
    }
    assert.throws(() => decode(actionCodec, Uint8Array.of(22, 2)), /option tag/);
    for (const operator of [op.address, null]) {
      const event = { type: 'heartbeatOperatorSet' as const, owner: miner.address, operator, from: 7n };
      const bytes = encode(txEventCodec, event);
      assert.equal(bytes[0], 43);
      assert.deepEqual(decode(txEventCodec, bytes), event);
    }
  });

  test('naming an operator burns a lasting record’s price (maxSpend counts it); removing burns nothing', () => {
    const chain = new TestChain();
    const burn = STATE_ENTRY_BURN_ACTIONS * DEFAULT_PARAMS.minFeePerAction;
    const naming = setOperator(chain, miner, op);
    assert.equal(maxSpend(chain.state, naming.stx.tx), naming.stx.tx.fee + burn);
    const before = getAccount(chain.state, miner.address).balance;
    const events = chain.block([naming]);
    const fee = events.find((e) => e.type === 'fee');
    assert.equal(fee?.type === 'fee' && fee.burned, naming.stx.tx.fee - naming.stx.tx.fee / 2n + burn);
    assert.equal(getAccount(chain.state, miner.address).balance, before - naming.stx.tx.fee - burn);
    const set = events.find((e) => e.type === 'heartbeatOperatorSet');
    assert.deepEqual(set, {
      type: 'heartbeatOperatorSet',
      owner: miner.address,
      operator: op.address,
      from: 2n,
    });
    const removal = setOperator(chain, miner, null);
    assert.equal(maxSpend(chain.state, removal.stx.tx), removal.stx.tx.fee);
    chain.block([removal]);
    // Removing what is already removed, or naming oneself, is refused with nothing changed.
    assert.equal(chain.attempt(setOperator(chain, miner, null))?.code, 'NO_HEARTBEAT_OPERATOR');
    assert.equal(chain.attempt(setOperator(chain, miner, miner))?.code, 'SELF_OPERATOR');
    assert.equal(chain.attempt(setOperator(chain, other, null))?.code, 'NO_HEARTBEAT_OPERATOR');
  });

  test('an operator heartbeat is accepted as the owner’s; the rewards go to the owner, never to the operator, who pays nothing and owns nothing', () => {
    const chain = withOperator();
    const ownerBefore = getAccount(chain.state, miner.address);
    const events: TxEvent[] = [];
    let answered = 0;
    // Four epochs of the operator answering every challenge: earlier epochs become final and are paid.
    while (chain.height < 100n) {
      const at = untilChallenged(chain, chipKey);
      events.push(...chain.block([beat(chain, op, at)]));
      answered++;
    }
    assert.ok(answered >= 4, `answered ${answered}`);
    assert.ok(events.filter((e) => e.type === 'slotAnswered').length === answered);
    const rewards = events.filter((e) => e.type === 'chipRewarded');
    assert.ok(rewards.length > 0, 'rewards paid');
    let paid = 0n;
    for (const r of rewards) {
      assert.ok(r.type === 'chipRewarded');
      assert.equal(toHex(r.owner), toHex(miner.address));
      paid += r.amount;
    }
    assert.ok(paid > 0n);
    const ownerAfter = getAccount(chain.state, miner.address);
    assert.equal(ownerAfter.balance, ownerBefore.balance + paid, 'the owner got every reward');
    assert.equal(ownerAfter.nonce, ownerBefore.nonce, 'the owner signed nothing');
    assert.deepEqual(getAccount(chain.state, op.address), { balance: 0n, nonce: BigInt(answered) });
  });

  test('named in a block, the operator answers from the next one; removed, it is refused from the next one', () => {
    const chain = new TestChain();
    chain.blocksUntil(2n);
    chain.block([chain.tx(miner, [registerAction(chain, chipKey, miner.address)])]);
    chain.blocksUntil(20n);
    let at = untilChallenged(chain, chipKey);
    // Not named yet: a stranger's key.
    assert.equal(chain.attempt(beat(chain, op, at))?.code, 'NOT_CHIP_OWNER');
    // Named in this block: a heartbeat later in the same block is still refused.
    const same = chain.executor();
    same.apply(setOperator(chain, miner, op));
    const r = same.tryApply(beat(chain, op, at));
    assert.ok(r instanceof ValidationError && r.code === 'NOT_CHIP_OWNER');
    chain.block([setOperator(chain, miner, op)]);
    assert.equal(
      toHex(heartbeatOperatorAt(chain.state, miner.address, chain.height + 1n)!),
      toHex(op.address),
    );
    chain.block([beat(chain, op, at)]);
    // Removed in a block: that block still takes the operator's answer (whatever the order), the next does not.
    at = untilChallenged(chain, chipKey);
    const removal = setOperator(chain, miner, null);
    const sameBlock = chain.executor();
    sameBlock.apply(removal);
    assert.ok(!(sameBlock.tryApply(beat(chain, op, at)) instanceof ValidationError));
    chain.block([removal]);
    assert.equal(heartbeatOperatorAt(chain.state, miner.address, chain.height + 1n), null);
    assert.equal(chain.attempt(beat(chain, op, at))?.code, 'NOT_CHIP_OWNER');
    // The node's admission rule reads the same record, at the next block's height.
    assert.equal(
      heartbeatOwnerRefusal(
        chain.state,
        op.address,
        [answer(chain, chipKey, at.epoch, at.slot)],
        chain.height + 1n,
      )?.code,
      'NOT_CHIP_OWNER',
    );
    // The owner still answers.
    chain.block([beat(chain, miner, at)]);
  });

  test('a removed operator’s record is deleted by the next block (CONSENSUS CHANGE: it stayed for good, state an owner could grow)', () => {
    const chain = withOperator();
    assert.notEqual(getHeartbeatOperatorRecord(chain.state, miner.address), null);
    chain.block([setOperator(chain, miner, null)]);
    // Through its own block the record still names the operator in force there.
    const kept = getHeartbeatOperatorRecord(chain.state, miner.address);
    assert.equal(kept?.operator, null);
    assert.equal(toHex(kept!.previous!), toHex(op.address));
    chain.block([]);
    assert.equal(getHeartbeatOperatorRecord(chain.state, miner.address), null, 'the removal record stayed');
    assert.equal(chain.state.get(Uint8Array.of(0x0f)), undefined, 'the removal list stayed');
    // Removed, named again, removed in one block: the same; named again after: a fresh record.
    chain.block([
      chain.tx(miner, [
        { type: 'setHeartbeatOperator', operator: op.address },
        { type: 'setHeartbeatOperator', operator: null },
      ]),
    ]);
    chain.block([]);
    assert.equal(getHeartbeatOperatorRecord(chain.state, miner.address), null);
    chain.block([setOperator(chain, miner, op)]);
    chain.block([]);
    assert.equal(
      toHex(heartbeatOperatorAt(chain.state, miner.address, chain.height + 1n)!),
      toHex(op.address),
    );
  });

  test('the operator cannot transfer, deregister, offer or spend for the owner', () => {
    const chain = withOperator();
    const anchor = chain.height;
    const consent = {
      type: 'dev-soft' as const,
      signature: ed25519Sign(
        chipKey.seed,
        transferMessage(CHAIN, chipId, other.address, chain.hashOf(anchor)),
      ),
    };
    // The operator holds no UNC: give it some so that each refusal is the rule's, not its fee's.
    chain.block([
      chain.tx(other, [{ type: 'transfer', to: op.address, amount: 10n ** 18n, memo: new Uint8Array() }]),
    ]);
    const ownerBefore = getAccount(chain.state, miner.address).balance;
    const tries: [string, TxEnvelope][] = [
      [
        'transferChip',
        chain.tx(op, [
          { type: 'transferChip', chipId, newOwner: other.address, anchorHeight: anchor, consent },
        ]),
      ],
      ['deregisterChip', chain.tx(op, [{ type: 'deregisterChip', chipId }])],
      [
        'createOffer',
        chain.tx(op, [
          {
            type: 'createOffer',
            chipIds: [chipId],
            pricePerHour: 1n,
            minHours: 1,
            maxHours: 2,
            noticeMs: 0n,
            endpoint: 'http://127.0.0.1:1',
            attributes: { memoryMiB: 1, region: 'x', runtimes: [] },
            tlsFingerprints: [],
          },
        ]),
      ],
    ];
    for (const [what, t] of tries) {
      const r = chain.attempt(t);
      assert.ok(r instanceof ValidationError, `${what} refused`);
      assert.equal(r.code, 'NOT_OWNER', what);
    }
    // A transfer spends the operator's own balance, never the owner's.
    const spend = chain.tx(op, [
      { type: 'transfer', to: op.address, amount: 10n ** 20n, memo: new Uint8Array() },
    ]);
    assert.equal(chain.attempt(spend)?.code, 'INSUFFICIENT_FUNDS');
    // The operator naming an operator names one for its own chips only: not an answerer for miner's.
    const relay = key('operator-test relay');
    chain.block([setOperator(chain, op, relay)]);
    const at = untilChallenged(chain, chipKey);
    assert.equal(chain.attempt(beat(chain, relay, at))?.code, 'NOT_CHIP_OWNER');
    assert.equal(getAccount(chain.state, miner.address).balance, ownerBefore);
  });

  test('a chip sold is no longer answered by the seller’s operator, even later in the block of the sale; the buyer’s operator answers', () => {
    const chain = withOperator();
    const buyerOp = key('operator-test buyer hot key');
    chain.block([setOperator(chain, other, buyerOp)]);
    const at = untilChallenged(chain, chipKey);
    const anchor = chain.height;
    const sale = chain.tx(miner, [
      {
        type: 'transferChip',
        chipId,
        newOwner: other.address,
        anchorHeight: anchor,
        consent: {
          type: 'dev-soft',
          signature: ed25519Sign(
            chipKey.seed,
            transferMessage(CHAIN, chipId, other.address, chain.hashOf(anchor)),
          ),
        },
      },
    ]);
    const ex = chain.executor();
    ex.apply(sale);
    const r = ex.tryApply(beat(chain, op, at));
    assert.ok(r instanceof ValidationError && r.code === 'NOT_CHIP_OWNER', 'seller’s operator refused');
    assert.ok(
      !(ex.tryApply(beat(chain, buyerOp, at)) instanceof ValidationError),
      'buyer’s operator accepted',
    );
    chain.block([sale]);
    assert.equal(chain.attempt(beat(chain, op, at))?.code, 'NOT_CHIP_OWNER');
  });

  test('the block pre-check gathers an operator’s answers (they will be checked) and leaves out a stranger’s', () => {
    const chain = withOperator();
    const at = untilChallenged(chain, chipKey);
    const head = {
      height: chain.height,
      hash: chain.hashOf(chain.height),
      beacon: chain.beaconOf(chain.height),
    };
    assert.equal(heartbeatSignatureChecks(chain.state, CHAIN, beat(chain, op, at), head).length, 1);
    assert.equal(
      heartbeatSignatureChecks(chain.state, CHAIN, beat(chain, key('operator-test stranger'), at), head)
        .length,
      0,
    );
  });

  test('an operator named by many owners answers for all their chips in one heartbeat, each owner paid for its own chip', () => {
    const chain = new TestChain();
    chain.blocksUntil(2n);
    const chips = [key('operator-test many 1'), key('operator-test many 2')];
    chain.block([
      chain.tx(miner, [
        registerAction(chain, chips[0]!, miner.address),
        { type: 'setHeartbeatOperator', operator: op.address },
      ]),
      chain.tx(other, [
        registerAction(chain, chips[1]!, other.address),
        { type: 'setHeartbeatOperator', operator: op.address },
      ]),
    ]);
    assert.ok(getHeartbeatOperatorRecord(chain.state, other.address));
    chain.blocksUntil(20n);
    // Answer whatever each chip draws over two epochs, both chips' answers in the operator's heartbeats.
    const events: TxEvent[] = [];
    const pending = new Map<string, ReturnType<typeof answer>>();
    while (chain.height < 80n) {
      chain.block();
      const epoch = (chain.height - 1n) / 20n;
      for (const c of chips) {
        const at = untilChallengedNow(chain, c, epoch);
        if (at !== null) pending.set(toHex(c.publicKey), answer(chain, c, epoch, at));
      }
      if (pending.size > 0) {
        events.push(
          ...chain.block([heartbeatTx(op, nonceOf(chain, op), [...pending.values()], chain.height + 10n)]),
        );
        pending.clear();
      }
    }
    const owners = new Map([
      [toHex(devSoftChipId(chips[0]!.publicKey)), toHex(miner.address)],
      [toHex(devSoftChipId(chips[1]!.publicKey)), toHex(other.address)],
    ]);
    const rewards = events.filter((e) => e.type === 'chipRewarded');
    assert.ok(rewards.length >= 2);
    for (const r of rewards) {
      assert.ok(r.type === 'chipRewarded');
      assert.equal(toHex(r.owner), owners.get(toHex(r.chipId)));
    }
    assert.equal(getAccount(chain.state, op.address).balance, 0n);
  });

  test('property: whoever answers (owner or operator) and whenever the operator is named or removed, no reward ever reaches the operator, and every reward reaches the owner', () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom('owner', 'operator', 'rename', 'remove'), { minLength: 4, maxLength: 8 }),
        (moves) => {
          const chain = withOperator();
          let named = true;
          const ownerStart = getAccount(chain.state, miner.address).balance;
          let ownerSpent = 0n;
          let paid = 0n;
          const collect = (events: TxEvent[]) => {
            for (const e of events) {
              if (e.type === 'chipRewarded') {
                assert.equal(toHex(e.owner), toHex(miner.address));
                paid += e.amount;
              }
              if (e.type === 'fee' && toHex(e.payer) === toHex(miner.address)) ownerSpent += e.amount;
              if (e.type === 'transfer') assert.notEqual(toHex(e.to), toHex(op.address));
            }
          };
          for (const move of moves) {
            if (move === 'rename' || move === 'remove') {
              const t = setOperator(chain, miner, move === 'rename' ? op : null);
              if (move === 'remove' && !named) {
                assert.equal(chain.attempt(t)?.code, 'NO_HEARTBEAT_OPERATOR');
                continue;
              }
              collect(chain.block([t]));
              named = move === 'rename';
              continue;
            }
            const at = untilChallenged(chain, chipKey);
            const from = move === 'owner' ? miner : op;
            const t = beat(chain, from, at);
            if (from === op && !named) {
              assert.equal(chain.attempt(t)?.code, 'NOT_CHIP_OWNER');
              collect(chain.block([beat(chain, miner, at)]));
            } else {
              collect(chain.block([t]));
            }
          }
          // A claim at the end pays whatever is final (sent by the operator: still the owner's).
          chain.blocksUntil(chain.height + 30n);
          chain.block([
            chain.tx(other, [
              { type: 'transfer', to: op.address, amount: 10n ** 18n, memo: new Uint8Array() },
            ]),
          ]);
          collect(chain.block([chain.tx(op, [{ type: 'claimRewards', chipIds: [chipId] }])]));
          assert.equal(getAccount(chain.state, miner.address).balance, ownerStart - ownerSpent + paid);
          const opAccount = getAccount(chain.state, op.address);
          // The operator holds exactly what it was given minus the claim's fee: no reward.
          assert.ok(opAccount.balance < 10n ** 18n);
        },
      ),
      { numRuns: 6 },
    );
  });
});

/** The slot index of `chip`'s challenge at the head in `epoch`, or null when the head did not challenge it. */
function untilChallengedNow(chain: TestChain, chip: Key, epoch: bigint): number | null {
  const slots = slotsOf(chain, chip, epoch);
  return slots[slots.length - 1] === chain.height ? slots.length - 1 : null;
}

test('property: the record answers like a plain model, set any number of times in one block or in consecutive ones; a refused removal changes nothing', () => {
  const owner = key('record-model owner').address;
  const candidates = [
    key('record-model a').address,
    key('record-model b').address,
    key('record-model c').address,
  ];
  const block = fc.array(fc.option(fc.integer({ min: 0, max: 2 }), { nil: null }), { maxLength: 4 });
  fc.assert(
    fc.property(
      fc.array(fc.record({ gap: fc.integer({ min: 1, max: 3 }), ops: block }), { maxLength: 12 }),
      (blocks) => {
        const state = new StateOverlay(new MemoryState());
        // The model: what was in force when the block opened, and the last accepted naming.
        let inForce: Uint8Array | null = null;
        let lastNamed: Uint8Array | null = null;
        let height = 1n;
        const hex = (a: Uint8Array | null) => (a ? toHex(a) : null);
        for (const { gap, ops } of blocks) {
          height += BigInt(gap);
          inForce = lastNamed;
          // The block's opening (beginBlockPoci) deletes the records of removals before it.
          pruneRemovedHeartbeatOperators(state, height);
          // A record stays only while an operator is named (or is being removed in this block).
          assert.equal(getHeartbeatOperatorRecord(state, owner) !== null, lastNamed !== null);
          for (const i of ops) {
            const operator = i === null ? null : candidates[i]!;
            const scratch = state.child();
            let refused: string | null = null;
            try {
              const events = applySetHeartbeatOperator(scratch, height, owner, operator);
              assert.equal(events[0]!.from, height + 1n);
              scratch.commit();
            } catch (err) {
              refused = (err as ValidationError).code;
            }
            if (operator === null && lastNamed === null) assert.equal(refused, 'NO_HEARTBEAT_OPERATOR');
            else {
              assert.equal(refused, null);
              lastNamed = operator;
            }
            // This block still sees what was in force when it opened; the next one, the last naming.
            assert.equal(hex(heartbeatOperatorAt(state, owner, height)), hex(inForce));
            assert.equal(hex(heartbeatOperatorAt(state, owner, height + 1n)), hex(lastNamed));
            for (const c of candidates)
              assert.equal(mayAnswerFor(state, owner, c, height), hex(inForce) === toHex(c));
          }
        }
        // Once the next block opened, nothing of a removal is left: no record, no list.
        pruneRemovedHeartbeatOperators(state, height + 1n);
        assert.equal(getHeartbeatOperatorRecord(state, owner) !== null, lastNamed !== null);
        assert.equal(state.get(Uint8Array.of(0x0f)), undefined);
        assert.equal(state.get(Uint8Array.of(0x0f, 0, 0, 0, 0)), undefined);
      },
    ),
    { numRuns: 300 },
  );
});
