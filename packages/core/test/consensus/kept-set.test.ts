/**
 * What an empty computed set keeps (epoch-validators.ts `keptValidators`, docs/consensus.md
 * Fallbacks): the set before, or the genesis validators when that is the genesis set, less the
 * tombstoned validators and those holding their seat by a bond that is now below minValidatorBond,
 * unless nobody would be left.
 *
 * Regressions (both found by an audit, both failed before the fix):
 * - the genesis set is stored as [] ("the genesis validators"), so the tombstone filter ran over
 *   nothing and a genesis validator tombstoned for equivocation kept its seat for as long as no
 *   bonded set was computed, free to equivocate again (evidence against a tombstoned validator is
 *   refused VALIDATOR_TOMBSTONED);
 * - a validator kept that way after its whole bond was unbonded voted on, and once the unbonding was
 *   released its equivocation slashed nothing.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  type Action,
  applySetConsensusKey,
  bondCodec,
  bondKey,
  type ConsensusEvidence,
  consensusKeyMessage,
  DEFAULT_CONSENSUS_PARAMS,
  devSoftChipId,
  duplicateVoteEvidence,
  ed25519Sign,
  encode,
  endBlockValidators,
  type Genesis,
  genesisStateWrites,
  getBond,
  isTombstoned,
  MemoryState,
  StateOverlay,
  sha256,
  signVote,
  toHex,
  tombstoneValidator,
  utf8,
  type Validator,
  validatorSetAt,
} from '../../src/index.js';
import {
  answer,
  consensusKey,
  genesis,
  type Key,
  key,
  miner,
  other,
  POCI,
  registerAction,
  setConsensusKeyAction,
  slotsOf,
  TestChain,
  validator,
} from '../harness.js';

const V2 = key('second genesis validator');
const G2 = genesis(POCI, {
  validators: [
    { publicKey: validator.publicKey, name: 'v1' },
    { publicKey: V2.publicKey, name: 'v2' },
  ],
});

function doubleVote(g: Genesis, offender: Key, height: bigint): ConsensusEvidence {
  const vote = (name: string) =>
    signVote(
      g.chainId,
      { type: 'precommit', height, round: 0, blockHash: sha256(utf8(name)), validator: offender.publicKey },
      offender.seed,
    );
  return duplicateVoteEvidence(g.chainId, vote('A'), vote('B'));
}

const keys = (g: Genesis, state: MemoryState) =>
  [...validatorSetAt(state, g).validators].map((v) => toHex(v.publicKey)).sort();

describe('the genesis set kept by an empty computed set', () => {
  test('a genesis validator tombstoned for equivocation is out of the set of the next epochs', () => {
    const chain = new TestChain(G2);
    chain.blocksUntil(5n);
    chain.block([chain.tx(other, [{ type: 'evidence', evidence: doubleVote(G2, V2, 4n) }])]);
    assert.equal(isTombstoned(chain.state, V2.publicKey), true, 'the evidence landed');
    const again = chain.attempt(chain.tx(other, [{ type: 'evidence', evidence: doubleVote(G2, V2, 6n) }]));
    assert.equal(again?.code, 'VALIDATOR_TOMBSTONED', 'no second punishment: it must not serve on');

    chain.blocksUntil(20n); // the last block of epoch 0 computes the set of epoch 1 (empty: no bonds)
    assert.deepEqual(keys(G2, chain.state), [toHex(validator.publicKey)]);
    chain.blocksUntil(40n); // kept again, from the explicit list this time
    assert.deepEqual(keys(G2, chain.state), [toHex(validator.publicKey)]);
  });

  test('the only genesis validator, tombstoned, serves on: a chain with no validator stops', () => {
    const G1 = genesis(POCI);
    const chain = new TestChain(G1);
    chain.blocksUntil(5n);
    chain.block([chain.tx(other, [{ type: 'evidence', evidence: doubleVote(G1, validator, 4n) }])]);
    assert.equal(isTombstoned(chain.state, validator.publicKey), true);
    chain.blocksUntil(20n);
    assert.deepEqual(keys(G1, chain.state), [toHex(validator.publicKey)]);
  });
});

const BOND = 10n ** 22n;
const MINER = consensusKey(miner);
const OTHER = consensusKey(other);
const CHIPS = [key('ev-m1'), key('ev-m2'), key('ev-o1')];
const PAIR = genesis();

/** Two bonded validators (miner: ev-m1, ev-m2; other: ev-o1), in the set of epoch 2. */
function bondedPair(): TestChain {
  const chain = new TestChain(PAIR);
  chain.block([
    chain.tx(miner, [
      registerAction(chain, key('ev-m1'), miner.address),
      registerAction(chain, key('ev-m2'), miner.address),
      setConsensusKeyAction(miner),
      { type: 'bond', amount: BOND },
    ]),
  ]);
  chain.block([
    chain.tx(other, [
      registerAction(chain, key('ev-o1'), other.address),
      setConsensusKeyAction(other),
      { type: 'bond', amount: BOND },
    ]),
  ]);
  runAnswering(chain, CHIPS, 40n);
  assert.equal(validatorSetAt(chain.state, PAIR).size, 2);
  return chain;
}

function runAnswering(chain: TestChain, chips: readonly Key[], until: bigint): void {
  while (chain.height < until) {
    const due: ReturnType<typeof answer>[] = [];
    const epoch = (chain.height - 1n) / 20n;
    for (const c of chips) {
      for (const e of [epoch - 1n, epoch]) {
        if (e < 1n) continue;
        slotsOf(chain, c, e).forEach((h, slot) => {
          if (h === chain.height) due.push(answer(chain, c, e, slot));
        });
      }
    }
    chain.block(chain.heartbeats(due));
  }
}

describe('a computed set kept by an empty computed set', () => {
  test('a kept validator whose bond fell below the minimum is out, its chips still online', () => {
    const chain = bondedPair();
    // Height 41 (epoch 2): miner unbonds everything, its chips answering on; other gives up its only
    // chip and keeps its bond. The set of epoch 3 computed at height 60 is empty (miner: no bond;
    // other: no chip), so the set of epoch 2 is kept, less miner.
    const unbond: Action = { type: 'unbond', amount: BOND };
    chain.block([
      chain.tx(miner, [unbond]),
      chain.tx(other, [{ type: 'deregisterChip', chipId: devSoftChipId(key('ev-o1').publicKey) }]),
    ]);
    runAnswering(chain, CHIPS.slice(0, 2), 60n);
    assert.deepEqual(keys(PAIR, chain.state), [toHex(OTHER.publicKey)]);
    runAnswering(chain, CHIPS.slice(0, 2), 102n);
    assert.equal(getBond(chain.state, miner.address).unbonding, 0n, 'released at height 101');
    assert.deepEqual(keys(PAIR, chain.state), [toHex(OTHER.publicKey)]);
  });

  test('the trade-off: when every kept validator unbonded, they all serve on (with their unbonding slashable)', () => {
    const chain = bondedPair();
    const unbond: Action = { type: 'unbond', amount: BOND };
    chain.block([chain.tx(miner, [unbond]), chain.tx(other, [unbond])]); // height 41, epoch 2
    runAnswering(chain, CHIPS, 60n);
    assert.deepEqual(keys(PAIR, chain.state), [toHex(MINER.publicKey), toHex(OTHER.publicKey)].sort());
    // An equivocation in epoch 3 still costs the unbonding (released only at height 101).
    const vote = (name: string) =>
      signVote(
        PAIR.chainId,
        {
          type: 'precommit',
          height: 62n,
          round: 0,
          blockHash: sha256(utf8(name)),
          validator: MINER.publicKey,
        },
        MINER.seed,
      );
    runAnswering(chain, CHIPS, 63n);
    const events = chain.block([
      chain.tx(other, [
        { type: 'evidence', evidence: duplicateVoteEvidence(PAIR.chainId, vote('A'), vote('B')) },
      ]),
    ]);
    const slashed = events.find((e) => e.type === 'validatorSlashed') as { slashed: bigint } | undefined;
    assert.equal(slashed?.slashed, (BOND * DEFAULT_CONSENSUS_PARAMS.equivocationSlashBps) / 10_000n);
  });
});

describe('the weight of a kept validator', () => {
  test('a kept validator that unbonded most of its bond votes with no more than its bond now backs', () => {
    const chain = bondedPair();
    const before = validatorSetAt(chain.state, PAIR).powerOf(MINER.publicKey);
    assert.equal(before, 2n * 989_000n, 'its two chips, well within what 10,000 UNC backs');
    // Height 41 (epoch 2): both give up their chips, so the set of epoch 3 computed at height 60 is
    // empty and the set of epoch 2 is kept; miner also unbonds all but the minimum, which backs
    // 1,000,000 units, about half its weight.
    const MIN = DEFAULT_CONSENSUS_PARAMS.minValidatorBond;
    const deregister = (c: Key): Action => ({ type: 'deregisterChip', chipId: devSoftChipId(c.publicKey) });
    chain.block([
      chain.tx(miner, [deregister(CHIPS[0]!), deregister(CHIPS[1]!), { type: 'unbond', amount: BOND - MIN }]),
      chain.tx(other, [deregister(CHIPS[2]!)]),
    ]);
    chain.blocksUntil(60n);
    const kept = validatorSetAt(chain.state, PAIR);
    assert.deepEqual(keys(PAIR, chain.state), [toHex(MINER.publicKey), toHex(OTHER.publicKey)].sort());
    assert.equal(kept.powerOf(MINER.publicKey), MIN / DEFAULT_CONSENSUS_PARAMS.uncPerPowerUnit);
    assert.equal(kept.powerOf(OTHER.publicKey), 989_000n, 'its bond still backs its weight: unchanged');
  });
  test('in the fallback, a kept validator keeping a sliver bonded does not outvote the others alone', () => {
    // Regression (review of the bond cap): every kept validator is below the minimum, so all serve
    // (the liveness fallback). Weighed by bonded ÷ uncPerPowerUnit with a floor of 1, miner, keeping
    // 0.01 UNC bonded (10 units), outweighed other (unbonded whole, its 10,000 UNC still slashable in
    // unbonding) ten to one: alone a quorum, free to finalise what it liked for 0.01 UNC at stake. A
    // bond below the minimum backs nothing (bondBacking), so in the fallback each votes with 1.
    const chain = bondedPair();
    const SLIVER = 10n ** 16n;
    const deregister = (c: Key): Action => ({ type: 'deregisterChip', chipId: devSoftChipId(c.publicKey) });
    chain.block([
      chain.tx(miner, [
        deregister(CHIPS[0]!),
        deregister(CHIPS[1]!),
        { type: 'unbond', amount: BOND - SLIVER },
      ]),
      chain.tx(other, [deregister(CHIPS[2]!), { type: 'unbond', amount: BOND }]),
    ]);
    chain.blocksUntil(60n);
    const kept = validatorSetAt(chain.state, PAIR);
    assert.deepEqual(keys(PAIR, chain.state), [toHex(MINER.publicKey), toHex(OTHER.publicKey)].sort());
    assert.equal(kept.hasQuorum(kept.powerOf(MINER.publicKey)), false, 'no quorum of its own');
    assert.equal(kept.powerOf(MINER.publicKey), kept.powerOf(OTHER.publicKey));
  });
});

describe('keptValidators, property', () => {
  const N = 5;
  const genesisKeys = Array.from({ length: N }, (_, i) => key(`kept-genesis-${i}`));
  const accounts = Array.from({ length: N }, (_, i) => key(`kept-account-${i}`));
  const G = genesis(POCI, {
    // Weights about what the minimum bond backs, so the bond cap of a kept validator binds for some.
    validators: genesisKeys.map((k, i) => ({
      publicKey: k.publicKey,
      name: `g${i}`,
      power: BigInt(i + 1) * 400_000n,
    })),
  });
  const MIN = DEFAULT_CONSENSUS_PARAMS.minValidatorBond;
  const PER_UNIT = DEFAULT_CONSENSUS_PARAMS.uncPerPowerUnit;
  /** Per genesis validator, what happens to it before a boundary. */
  const fate = fc.record({
    /** Its key registered as the consensus key of an account (a seat held by a bond from then on). */
    registered: fc.boolean(),
    bonded: fc.oneof(
      fc.constantFrom(0n, MIN - 1n, MIN, 2n * MIN),
      fc.bigInt({ min: 0n, max: 3n * MIN }),
      fc.bigInt({ min: MIN, max: MIN + 3n * PER_UNIT }),
    ),
    tombstoned: fc.boolean(),
  });
  type Fate = { registered: boolean; bonded: bigint; tombstoned: boolean };

  /**
   * One epoch's changes: registrations (first round only: a key is registered once), bonds set
   * (the registering account's, else the genesis key's own address, which buys nothing), tombstones.
   */
  function apply(state: StateOverlay, registered: boolean[], fates: readonly Fate[], first: boolean): void {
    fates.forEach((f, i) => {
      const k = genesisKeys[i]!;
      const account = accounts[i]!;
      if (first && f.registered) {
        const proof = ed25519Sign(k.seed, consensusKeyMessage(G.chainId, account.address));
        applySetConsensusKey(state, G.chainId, account.address, k.publicKey, proof);
        registered[i] = true;
      }
      const holder = registered[i] ? account : k;
      const bond = { bonded: f.bonded, unbonding: 0n, releaseHeight: 0n };
      state.set(bondKey(holder.address), f.bonded === 0n ? null : encode(bondCodec, bond));
      if (f.tombstoned && !isTombstoned(state, k.publicKey))
        tombstoneValidator(state, k.publicKey, 10n, 0n, 0n);
    });
  }

  /** The invariants of one boundary: `before` the set that ended, `after` the one kept. */
  function check(
    state: StateOverlay,
    registered: boolean[],
    beforeSet: readonly Validator[],
    afterSet: readonly Validator[],
  ): void {
    const before = beforeSet.map((v) => toHex(v.publicKey));
    const after = afterSet.map((v) => toHex(v.publicKey));
    const index = new Map(genesisKeys.map((k, i) => [toHex(k.publicKey), i]));
    const tombstoned = (h: string) => isTombstoned(state, genesisKeys[index.get(h)!]!.publicKey);
    const unstaked = (h: string) => {
      const i = index.get(h)!;
      return registered[i] === true && getBond(state, accounts[i]!.address).bonded < MIN;
    };
    assert.ok(after.length > 0, 'never empty');
    assert.ok(
      after.every((h) => before.includes(h)),
      'only validators of the set before',
    );
    const fit = before.filter((h) => !tombstoned(h) && !unstaked(h));
    const honest = before.filter((h) => !tombstoned(h));
    if (fit.length > 0) assert.deepEqual(after, fit, 'exactly those fit to serve, when there are any');
    else if (honest.length > 0) assert.deepEqual(after, honest, 'else those not tombstoned');
    else assert.deepEqual(after, before, 'else the set before, whole');
    // The weights: never more than before, nor than the bond backs now (1 at least, so that the
    // liveness fallback forms a set); a seat the genesis gave (no account) keeps its weight.
    for (const v of afterSet) {
      const h = toHex(v.publicKey);
      const i = index.get(h)!;
      const old = beforeSet.find((w) => toHex(w.publicKey) === h)!.power;
      if (!registered[i]) {
        assert.equal(v.power, old, 'a genesis seat keeps its genesis weight');
        continue;
      }
      const bonded = getBond(state, accounts[i]!.address).bonded;
      // Below the minimum a bond backs nothing (bondBacking): the fallback's weight is then 1.
      const backs = bonded < MIN ? 0n : bonded / PER_UNIT;
      const most = backs > 0n ? backs : 1n;
      assert.equal(v.power, old < most ? old : most, 'its weight, capped at what its bond backs now');
      assert.ok(v.power <= most && v.power <= old);
    }
  }

  test('two boundaries with no bonded set: never empty, never a tombstoned or unstaked one while others fit, never a weight above what the bond backs now', () => {
    fc.assert(
      fc.property(
        fc.array(fate, { minLength: N, maxLength: N }),
        fc.array(fate, { minLength: N, maxLength: N }),
        (f1, f2) => {
          const base = new MemoryState();
          base.apply(genesisStateWrites(G));
          const state = new StateOverlay(base);
          const list = (s: StateOverlay) => [...validatorSetAt(s, G).validators];
          const registered: boolean[] = [];
          const genesisSet = list(state);
          apply(state, registered, f1, true);
          endBlockValidators(state, POCI.epochBlocks, new Uint8Array(32));
          const first = list(state);
          check(state, registered, genesisSet, first);
          apply(state, registered, f2, false);
          endBlockValidators(state, 2n * POCI.epochBlocks, new Uint8Array(32));
          check(state, registered, first, list(state));
        },
      ),
      { numRuns: 60 },
    );
  });
});
