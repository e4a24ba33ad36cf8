/**
 * Security audit of every path that moves UNC (docs/security-audit-money.md): a conservation
 * property over random sequences of money transactions run through the real BlockExecutor, and the
 * regression tests of the audit's findings.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  type Action,
  accountCodec,
  addressFromPublicKey,
  bondCodec,
  circulatingSupply,
  cumulativeEmission,
  DEFAULT_HALVING_PERIOD_MS,
  DEFAULT_PARAMS,
  decode,
  devSoftChipId,
  EVIDENCE_MAX_AGE_EPOCHS,
  encode,
  envelopeFromSigned,
  epochOf,
  epochStart,
  feeActions,
  getAccount,
  getBond,
  getChip,
  getSupply,
  type HeartbeatAnswer,
  type MemoryState,
  minimumFee,
  StateSpace,
  signedTransactionCodec,
  signTransaction,
  type TxEnvelope,
  type TxEvent,
} from '../src/index.js';
import {
  answer,
  CHAIN,
  GENESIS_TIME,
  type Key,
  key,
  miner,
  other,
  POCI,
  registerAction,
  slotsOf,
  TestChain,
  validator,
} from './harness.js';

const UNC = 10n ** 18n;

/** Σ balances + Σ bonds (bonded and unbonding): what the supply ledger says is in circulation. */
function holdings(state: MemoryState): bigint {
  let sum = 0n;
  for (const { key: k, value } of state.map.values()) {
    if (!value) continue;
    if (k[0] === StateSpace.account) sum += decode(accountCodec, value).balance;
    if (k[0] === StateSpace.bond) {
      const b = decode(bondCodec, value);
      sum += b.bonded + b.unbonding;
    }
  }
  return sum;
}

/** A transaction of `from` at its next nonce with exactly `fee` (the harness picks the minimum). */
function txWithFee(chain: TestChain, from: Key, actions: Action[], fee: bigint): TxEnvelope {
  return envelopeFromSigned(
    signTransaction(
      {
        chainId: CHAIN,
        signer: from.publicKey,
        nonce: getAccount(chain.state, from.address).nonce,
        expiresAt: chain.height + 100n,
        actions,
        fee,
      },
      from.seed,
    ),
  );
}

/** Encoded size of a transaction of `from` with these actions (the fee field is fixed-width). */
function txSize(chain: TestChain, from: Key, actions: Action[]): number {
  return encode(signedTransactionCodec, {
    tx: {
      chainId: CHAIN,
      signer: from.publicKey,
      nonce: getAccount(chain.state, from.address).nonce,
      expiresAt: chain.height + 100n,
      actions,
      fee: 0n,
    },
    signature: new Uint8Array(64),
  }).length;
}

describe('audmoney: conservation over random money histories', () => {
  test('property: transfers, fees, bonds, unbonds, releases, heartbeats and claims conserve every base unit, block by block', () => {
    const owner = key('audmoney-owner');
    const fresh = [key('audmoney-fresh-1'), key('audmoney-fresh-2')];
    const senders = [miner, other, ...fresh];
    // Recipients include the senders, the chip owner and two addresses that never sign anything.
    const recipients = [
      ...senders.map((k) => k.address),
      owner.address,
      key('audmoney-sink-1').address,
      key('audmoney-sink-2').address,
    ];
    const chips = [key('audmoney-chip-1'), key('audmoney-chip-2'), key('audmoney-chip-3')];
    const chipIds = chips.map((c) => devSoftChipId(c.publicKey));
    const proposerAccount = addressFromPublicKey(validator.publicKey);

    type Op =
      | { op: 'transfer'; from: number; to: number; share: number; overdraw: boolean }
      | { op: 'bond'; from: number; share: number }
      | { op: 'unbond'; from: number; share: number; all: boolean }
      | { op: 'claim'; from: number; mask: number }
      | { op: 'pair'; from: number; to: number; share: number }
      | { op: 'idle' };
    const who = fc.integer({ min: 0, max: senders.length - 1 });
    const share = fc.integer({ min: 1, max: 1000 });
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      fc.record({
        op: fc.constant('transfer' as const),
        from: who,
        to: fc.integer({ min: 0, max: recipients.length - 1 }),
        share,
        overdraw: fc.boolean(),
      }),
      fc.record({ op: fc.constant('bond' as const), from: who, share }),
      fc.record({ op: fc.constant('unbond' as const), from: who, share, all: fc.boolean() }),
      fc.record({ op: fc.constant('claim' as const), from: who, mask: fc.integer({ min: 1, max: 7 }) }),
      // Two actions, the second of which may fail: the first must then not happen either.
      fc.record({
        op: fc.constant('pair' as const),
        from: who,
        to: fc.integer({ min: 0, max: recipients.length - 1 }),
        share,
      }),
      fc.constant({ op: 'idle' as const }),
    );

    fc.assert(
      fc.property(
        fc.array(opArb, { minLength: 40, maxLength: 90 }),
        fc.array(fc.integer({ min: 200, max: 5000 }), { minLength: 5, maxLength: 5 }),
        fc.integer({ min: 0, max: 255 }),
        // What each transaction pays over its minimum: odd fees too, whose split burns the odd unit.
        fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 90, maxLength: 90 }),
        (ops, intervals, missMask, tips) => {
          const chain = new TestChain();
          chain.step = (h) => BigInt(intervals[Number(h % 5n)]!);
          chain.blocksUntil(2n);
          chain.block([
            chain.tx(miner, [
              { type: 'transfer', to: owner.address, amount: 10n * UNC, memo: new Uint8Array(0) },
            ]),
          ]);
          chain.block([
            chain.tx(
              owner,
              chips.map((c) => registerAction(chain, c, owner.address)),
            ),
          ]);
          let burnedByFees = getSupply(chain.state).burned;
          let toProposer = getAccount(chain.state, proposerAccount).balance;

          const check = (events: readonly TxEvent[]) => {
            for (const e of events) {
              if (e.type === 'fee') {
                burnedByFees += e.burned;
                toProposer += e.toProposer;
                assert.equal(e.amount, e.burned + e.toProposer, 'a fee event splits exactly what was paid');
              }
            }
            const supply = getSupply(chain.state);
            assert.equal(
              holdings(chain.state),
              circulatingSupply(supply),
              'balances + bonds = genesis + minted − burned − slashed',
            );
            assert.equal(supply.burned, burnedByFees, 'every burned unit is a fee event’s');
            assert.equal(
              getAccount(chain.state, proposerAccount).balance,
              toProposer,
              'the proposer gets exactly its halves',
            );
            assert.ok(
              supply.minted <=
                cumulativeEmission(
                  supply.miningReserve,
                  DEFAULT_HALVING_PERIOD_MS,
                  chain.time - GENESIS_TIME,
                ),
            );
            for (const s of senders) {
              const b = getBond(chain.state, s.address);
              assert.ok(
                b.unbonding === 0n || b.releaseHeight > chain.height,
                'no unbonding is overdue (locked for ever)',
              );
            }
          };

          for (const [n, o] of ops.entries()) {
            // The chips' answers to the challenge of the last block (fee-free, from their owner).
            const h = chain.height + 1n;
            const epoch = epochOf(h - 1n, POCI);
            const batch: HeartbeatAnswer[] = [];
            chips.forEach((chip, i) => {
              const record = getChip(chain.state, chipIds[i]!);
              if (!record || epoch < record.firstEpoch) return;
              slotsOf(chain, chip, epoch).forEach((slotHeight, slot) => {
                const skip = ((missMask >> ((i * 3 + slot) % 8)) & 1) === 1;
                if (slotHeight === h - 1n && !skip) batch.push(answer(chain, chip, epoch, slot));
              });
            });
            const txs: TxEnvelope[] =
              batch.length > 0 ? [chain.tx(owner, [{ type: 'heartbeat', answers: batch }], 0n)] : [];

            let action: Action[] | null = null;
            let from: Key = miner;
            if (o.op !== 'idle') {
              from = senders[o.from]!;
              const balance = getAccount(chain.state, from.address).balance;
              const bond = getBond(chain.state, from.address);
              const part = 'share' in o ? (balance * BigInt(o.share)) / 1000n : 0n;
              if (o.op === 'transfer') {
                const amount = o.overdraw ? balance + 1n : part > 0n ? part : 1n;
                action = [{ type: 'transfer', to: recipients[o.to]!, amount, memo: new Uint8Array(0) }];
              } else if (o.op === 'bond') {
                action = [{ type: 'bond', amount: part > 0n ? part : 1n }];
              } else if (o.op === 'unbond') {
                const amount = o.all ? bond.bonded + 1n : (bond.bonded * BigInt(o.share)) / 1000n;
                action = [{ type: 'unbond', amount: amount > 0n ? amount : 1n }];
              } else if (o.op === 'claim') {
                action = [{ type: 'claimRewards', chipIds: chipIds.filter((_, i) => (o.mask >> i) & 1) }];
              } else {
                action = [
                  {
                    type: 'transfer',
                    to: recipients[o.to]!,
                    amount: part > 0n ? part : 1n,
                    memo: new Uint8Array(0),
                  },
                  // Over the balance (refused, and the transfer with it) or a half of what is left.
                  { type: 'bond', amount: o.share > 500 ? balance : (balance - part) / 2n + 1n },
                ];
              }
            }
            if (action) {
              const min = minimumFee(DEFAULT_PARAMS, txSize(chain, from, action), feeActions(action));
              txs.push(chain.tx(from, action, min + BigInt(tips[n]!)));
            }
            // Built as a proposer builds: every candidate tried on the block's one executor, the
            // failing ones left out. Whatever a refused transaction left behind (its fee, the
            // transfer before its failing bond) would be in the committed state and break the sums.
            const { events, rejected } = chain.propose(txs);
            // Only the money transaction may fail (an overdraft, an unbond over the bond, the
            // pair's bond): the chips' heartbeats always apply.
            for (const r of rejected) assert.equal(r.env, txs[txs.length - 1], r.error.message);
            if (rejected.length > 0) assert.ok(action && txs.length === (batch.length > 0 ? 2 : 1));
            check(events);
          }
          // Let every unbonding run out and the last epochs become final; claim everything.
          chain.blocksUntil(chain.height + 3n * POCI.epochBlocks + POCI.answerWindowBlocks + 2n);
          check(chain.block([chain.tx(other, [{ type: 'claimRewards', chipIds }])]));
          for (const s of senders)
            assert.equal(getBond(chain.state, s.address).unbonding, 0n, 'every unbonding returned');
        },
      ),
      { numRuns: 10 },
    );
  });
});

describe('audmoney M-1: a claim pays the per-action fee for every chip it settles', () => {
  test('claimRewards naming N chips is FEE_TOO_LOW below N per-action fees, valid at N (CONSENSUS)', () => {
    const chain = new TestChain();
    chain.blocksUntil(2n);
    const chips = [
      key('audmoney-claim-1'),
      key('audmoney-claim-2'),
      key('audmoney-claim-3'),
      key('audmoney-claim-4'),
    ];
    chain.block([
      chain.tx(
        miner,
        chips.map((c) => registerAction(chain, c, miner.address)),
      ),
    ]);
    const actions: Action[] = [
      { type: 'claimRewards', chipIds: chips.map((c) => devSoftChipId(c.publicKey)) },
    ];
    const size = txSize(chain, other, actions);
    // Each named chip is a settlement (epoch records read) and a chip record rewritten: priced as one
    // action, a 64 KiB claim of ~2,000 chips cost ~1/30 of what transfers pay for the same work.
    const oneAction = minimumFee(DEFAULT_PARAMS, size, 1);
    const refused = chain.attempt(txWithFee(chain, other, actions, oneAction));
    assert.equal(refused?.code, 'FEE_TOO_LOW');
    const perChip = minimumFee(DEFAULT_PARAMS, size, chips.length);
    assert.equal(chain.attempt(txWithFee(chain, other, actions, perChip - 1n))?.code, 'FEE_TOO_LOW');
    assert.equal(chain.attempt(txWithFee(chain, other, actions, perChip)), null);
  });

  test('a claim of one chip, and every other action, still pays one per-action fee', () => {
    const chain = new TestChain();
    chain.blocksUntil(2n);
    const chip = key('audmoney-claim-solo');
    chain.block([chain.tx(miner, [registerAction(chain, chip, miner.address)])]);
    const actions: Action[] = [
      { type: 'claimRewards', chipIds: [devSoftChipId(chip.publicKey)] },
      { type: 'transfer', to: miner.address, amount: 1n, memo: new Uint8Array(0) },
    ];
    const fee = minimumFee(DEFAULT_PARAMS, txSize(chain, other, actions), 2);
    assert.equal(chain.attempt(txWithFee(chain, other, actions, fee)), null);
    assert.equal(chain.attempt(txWithFee(chain, other, actions, fee - 1n))?.code, 'FEE_TOO_LOW');
  });
});

describe('audmoney: unbonded UNC stays slashable for as long as evidence can land', () => {
  test('property: an unbond at any height of an epoch releases only after the last block that may carry evidence of that epoch', () => {
    fc.assert(
      fc.property(fc.integer({ min: 3, max: 3 * Number(POCI.epochBlocks) }), (at) => {
        const chain = new TestChain();
        chain.blocksUntil(2n);
        chain.block([chain.tx(other, [{ type: 'bond', amount: 5n * UNC }])]);
        chain.blocksUntil(BigInt(at));
        const events = chain.block([chain.tx(other, [{ type: 'unbond', amount: 2n * UNC }])]);
        const unbonded = events.find((e) => e.type === 'unbonded');
        assert.ok(unbonded?.type === 'unbonded');
        // Its stake backed the validator set of its own epoch (fixed at the block before it): evidence
        // of an offence in that epoch is accepted up to the last block of epoch + EVIDENCE_MAX_AGE_EPOCHS.
        const epoch = epochOf(chain.height, POCI);
        const lastEvidenceHeight = epochStart(epoch + EVIDENCE_MAX_AGE_EPOCHS + 1n, POCI) - 1n;
        assert.ok(
          unbonded.releaseHeight > lastEvidenceHeight,
          `unbond at ${chain.height} releases at ${unbonded.releaseHeight}, evidence may land until ${lastEvidenceHeight}`,
        );
        // And it does come back by itself at that height, whole.
        const before = getAccount(chain.state, other.address).balance;
        chain.blocksUntil(unbonded.releaseHeight);
        assert.equal(getAccount(chain.state, other.address).balance, before + 2n * UNC);
        assert.equal(getBond(chain.state, other.address).unbonding, 0n);
      }),
      { numRuns: 12 },
    );
  });
});
