/**
 * docs/security-audit-governance.md (audgov): governance, the validator set, slashing and the
 * genesis validators, tested against the real executor.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  type Action,
  CHALLENGE_HISTORY_EPOCHS,
  computeValidatorSet,
  DEFAULT_CONSENSUS_PARAMS,
  duplicateVoteEvidence,
  type Genesis,
  type GovProposal,
  genesisStateWrites,
  genesisToJson,
  getBond,
  getGovernance,
  getHandoverParams,
  getPociParams,
  HANDOVER_PARAMS_KEY,
  handedOverAt,
  handoverPending,
  handoverShortfall,
  isTombstoned,
  latestValidatorSetEpoch,
  MAX_VALIDATORS,
  MemoryState,
  parseGenesis,
  sha256,
  signVote,
  toHex,
  utf8,
  validatorSetAt,
  validatorSetForEpoch,
} from '../src/index.js';
import {
  answer,
  CHAIN,
  TestChain as Chain,
  consensusKey,
  genesis,
  govAction,
  type Key,
  key,
  miner,
  other,
  POCI,
  registerAction,
  setConsensusKeyAction,
  slotsOf,
  type TestChain,
  validator,
} from './harness.js';

function runAnswering(chain: TestChain, chips: readonly Key[], until: bigint): void {
  while (chain.height < until) {
    const due: ReturnType<typeof answer>[] = [];
    const epoch = (chain.height - 1n) / POCI.epochBlocks;
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

/** Four genesis validators; `other` registers one sim-h100 chip, sets a consensus key and bonds exactly the minimum. */
function loneBondedChip(handover: Genesis['handover']): {
  chain: TestChain;
  g: Genesis;
  gvs: Key[];
  chip: Key;
} {
  const gvs = [validator, key('gv2'), key('gv3'), key('gv4')];
  const g = genesis(POCI, {
    validators: gvs.map((v, i) => ({ publicKey: v.publicKey, name: `g${i}` })),
    handover,
  });
  const chain = new Chain(g);
  assert.equal(validatorSetAt(chain.state, g).size, 4);
  const chip = key('audgov-lone-chip');
  chain.block([
    chain.tx(other, [
      registerAction(chain, chip, other.address),
      setConsensusKeyAction(other),
      { type: 'bond', amount: DEFAULT_CONSENSUS_PARAMS.minValidatorBond },
    ]),
  ]);
  assert.equal(getBond(chain.state, other.address).bonded, DEFAULT_CONSENSUS_PARAMS.minValidatorBond);
  return { chain, g, gvs, chip };
}

const keysOf = (set: { validators: readonly { publicKey: Uint8Array }[] }) =>
  set.validators.map((v) => toHex(v.publicKey)).sort();

describe('audgov G1: a computed set replaces the genesis set only once it is big enough (CONSENSUS)', () => {
  test('attack: with the default bar, one outside account with the minimum bond and one chip does NOT take the chain (it did from epoch 2)', () => {
    const { chain, g, gvs, chip } = loneBondedChip(undefined);
    runAnswering(chain, [chip], 40n);
    // The chip answered: the computed set would be that one key (it was stored before the fix).
    assert.deepEqual(
      computeValidatorSet(chain.state, chain.height + 1n, new Uint8Array(32)).map((v) => toHex(v.publicKey)),
      [toHex(consensusKey(other).publicKey)],
    );
    const set = validatorSetAt(chain.state, g);
    assert.deepEqual(keysOf(set), gvs.map((v) => toHex(v.publicKey)).sort());
    assert.equal(set.has(consensusKey(other).publicKey), false);
    assert.equal(handedOverAt(chain.state), null);
    // What a node logs at each such boundary (handoverPending): why the genesis set stays.
    const pending = handoverPending(chain.state, chain.height + 1n);
    assert.ok(pending !== null && pending.validators === 1 && /fewer than 4/.test(pending.shortfall));
    // The defaults: 100 × what the minimum bond backs, and 4 validators.
    assert.deepEqual(getHandoverParams(chain.state), {
      minWeight:
        100n * (DEFAULT_CONSENSUS_PARAMS.minValidatorBond / DEFAULT_CONSENSUS_PARAMS.uncPerPowerUnit),
      minValidators: 4,
    });
  });

  test('a set meeting both bars takes over, and from then on the genesis set never comes back (an emptied computed set keeps the computed one)', () => {
    const { chain, g, gvs, chip } = loneBondedChip({ minWeight: 900_000n, minValidators: 1 });
    runAnswering(chain, [chip], 40n);
    const set = validatorSetAt(chain.state, g);
    assert.deepEqual(keysOf(set), [toHex(consensusKey(other).publicKey)]);
    assert.ok(set.totalPower >= 900_000n);
    const at = handedOverAt(chain.state);
    assert.ok(at !== null && at >= 1n);
    // The validator unbonds everything: the computed set comes out empty; the kept set is the
    // computed one (the liveness fallback), never the unbonded genesis keys again.
    chain.block([chain.tx(other, [{ type: 'unbond', amount: DEFAULT_CONSENSUS_PARAMS.minValidatorBond }])]);
    runAnswering(chain, [chip], chain.height + 3n * POCI.epochBlocks);
    const later = validatorSetAt(chain.state, g);
    assert.deepEqual(keysOf(later), [toHex(consensusKey(other).publicKey)]);
    for (const gv of gvs) assert.equal(later.has(gv.publicKey), false);
    assert.equal(handedOverAt(chain.state), at);
  });

  test('after the handover too, a computed set short of the bar is not stored: one epoch in which the honest validator measured 0 does not hand the chain to a lone small key (review of G1)', () => {
    const gvs = [validator, key('gv2'), key('gv3'), key('gv4')];
    const handover = { minWeight: 1_500_000n, minValidators: 2 };
    const g = genesis(POCI, {
      validators: gvs.map((v, i) => ({ publicKey: v.publicKey, name: `g${i}` })),
      handover,
    });
    const chain = new Chain(g);
    // The honest validator (miner, two chips) and a small one (other, one chip), each bonded.
    const honest = [key('review-honest-chip-0'), key('review-honest-chip-1')];
    const small = key('review-small-chip');
    chain.block([
      chain.tx(miner, [
        ...honest.map((c) => registerAction(chain, c, miner.address)),
        setConsensusKeyAction(miner),
        { type: 'bond', amount: 3n * DEFAULT_CONSENSUS_PARAMS.minValidatorBond },
      ]),
      chain.tx(other, [
        registerAction(chain, small, other.address),
        setConsensusKeyAction(other),
        { type: 'bond', amount: 3n * DEFAULT_CONSENSUS_PARAMS.minValidatorBond },
      ]),
    ]);
    runAnswering(chain, [...honest, small], 40n);
    const both = [toHex(consensusKey(miner).publicKey), toHex(consensusKey(other).publicKey)].sort();
    assert.deepEqual(keysOf(validatorSetAt(chain.state, g)), both);
    const at = handedOverAt(chain.state);
    assert.notEqual(at, null);
    // The honest chips answer nothing for two epochs (an outage): the computed set is the small
    // key alone, short of the bar. Before, it was stored and the small key held 100% of the weight.
    runAnswering(chain, [small], 80n);
    assert.deepEqual(
      computeValidatorSet(chain.state, chain.height + 1n, new Uint8Array(32)).map((v) => toHex(v.publicKey)),
      [toHex(consensusKey(other).publicKey)],
    );
    assert.deepEqual(keysOf(validatorSetAt(chain.state, g)), both);
    // What a node logs at that boundary (handoverPending): the previous validators kept, and why.
    const pending = handoverPending(chain.state, chain.height + 1n);
    assert.ok(pending?.handedOver && /fewer than 2/.test(pending.shortfall));
    // The honest chips answer again: a computed set meeting the bar serves; the genesis set never returns.
    runAnswering(chain, [...honest, small], 120n);
    const after = validatorSetAt(chain.state, g);
    assert.deepEqual(keysOf(after), both);
    assert.ok(after.totalPower >= handover.minWeight);
    for (const gv of gvs) assert.equal(after.has(gv.publicKey), false);
    assert.equal(handedOverAt(chain.state), at);
    assert.equal(handoverPending(chain.state, chain.height + 1n), null);
  });

  test('after the handover, a set kept only by the liveness fallback (every serving validator unbonded) gives way to a bonded computed set short of the bar (read5core: it kept the unbonded keys at weight 1 for good, nothing at stake)', () => {
    const gvs = [validator, key('gv2'), key('gv3'), key('gv4')];
    const handover = { minWeight: 1_500_000n, minValidators: 2 };
    const g = genesis(POCI, {
      validators: gvs.map((v, i) => ({ publicKey: v.publicKey, name: `g${i}` })),
      handover,
    });
    const chain = new Chain(g);
    const bond = 3n * DEFAULT_CONSENSUS_PARAMS.minValidatorBond;
    const chips = [key('read5-chip-0'), key('read5-chip-1')];
    const stayer = key('read5-stayer');
    const stayerChip = key('read5-stayer-chip');
    chain.block([
      chain.tx(miner, [
        registerAction(chain, chips[0]!, miner.address),
        setConsensusKeyAction(miner),
        { type: 'bond', amount: bond },
        { type: 'transfer', to: stayer.address, amount: 2n * bond, memo: new Uint8Array(0) },
      ]),
      chain.tx(other, [
        registerAction(chain, chips[1]!, other.address),
        setConsensusKeyAction(other),
        { type: 'bond', amount: bond },
      ]),
      chain.tx(stayer, [registerAction(chain, stayerChip, stayer.address), setConsensusKeyAction(stayer)]),
    ]);
    runAnswering(chain, [...chips, stayerChip], 40n);
    const both = [toHex(consensusKey(miner).publicKey), toHex(consensusKey(other).publicKey)].sort();
    assert.deepEqual(keysOf(validatorSetAt(chain.state, g)), both);
    assert.notEqual(handedOverAt(chain.state), null);
    // A third account bonds behind its chip; the two serving validators unbond everything (they
    // leave: nothing of theirs is at stake any more).
    chain.block([chain.tx(stayer, [{ type: 'bond', amount: bond }])]);
    chain.block([
      chain.tx(miner, [{ type: 'unbond', amount: bond }]),
      chain.tx(other, [{ type: 'unbond', amount: bond }]),
    ]);
    runAnswering(chain, [...chips, stayerChip], chain.height + 3n * POCI.epochBlocks);
    const computed = computeValidatorSet(chain.state, chain.height + 1n, new Uint8Array(32));
    assert.deepEqual(
      computed.map((v) => toHex(v.publicKey)),
      [toHex(consensusKey(stayer).publicKey)],
    );
    assert.notEqual(handoverShortfall(computed, handover), null);
    // The bonded key serves, not the two unbonded ones kept at weight 1 by the fallback.
    assert.deepEqual(keysOf(validatorSetAt(chain.state, g)), [toHex(consensusKey(stayer).publicKey)]);
  });

  test('property: after the handover, every stored set meets the bar or is the set before it, kept (nobody unbonds here: the same validators), whatever the outages', () => {
    const gvs = [validator, key('gv2'), key('gv3'), key('gv4')];
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 2 }), { minLength: 2, maxLength: 2 }),
        fc.integer({ min: 1, max: 2 }),
        fc.constantFrom(900_000n, 1_500_000n, 2_500_000n),
        // Per epoch from the third on, which owners' chips answer (bit 0: miner, bit 1: other).
        fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 4, maxLength: 4 }),
        (chips, minValidators, minWeight, outages) => {
          const handover = { minWeight, minValidators };
          const g = genesis(POCI, {
            validators: gvs.map((v, i) => ({ publicKey: v.publicKey, name: `g${i}` })),
            handover,
          });
          const chain = new Chain(g);
          const owned: Key[][] = [0, 1].map((i) =>
            Array.from({ length: chips[i]! }, (_, c) => key(`prop-outage-chip-${i}-${c}`)),
          );
          chain.block(
            [miner, other].map((owner, i) =>
              chain.tx(owner, [
                ...owned[i]!.map((chip) => registerAction(chain, chip, owner.address)),
                setConsensusKeyAction(owner),
                { type: 'bond', amount: 3n * DEFAULT_CONSENSUS_PARAMS.minValidatorBond },
              ]),
            ),
          );
          runAnswering(chain, owned.flat(), 40n);
          for (const mask of outages) {
            const answering = owned.filter((_, i) => (mask >> i) & 1).flat();
            runAnswering(chain, answering, chain.height + POCI.epochBlocks);
          }
          const at = handedOverAt(chain.state);
          if (at === null) return;
          const latest = latestValidatorSetEpoch(chain.state)!;
          for (let e = latest - 2n; e <= latest; e++) {
            if (e <= at) continue;
            const now = validatorSetForEpoch(chain.state, g, e)!;
            const before = validatorSetForEpoch(chain.state, g, e - 1n)!;
            if (handoverShortfall(now.validators, handover) === null) continue;
            const weights = new Map(before.validators.map((v) => [toHex(v.publicKey), v.power]));
            for (const v of now.validators) {
              const w = weights.get(toHex(v.publicKey));
              assert.ok(
                w !== undefined && v.power <= w,
                `epoch ${e}: a short set that is not the one before, kept`,
              );
            }
          }
        },
      ),
      { numRuns: 10 },
    );
  });

  test('a set short of either bar is not stored: the genesis set serves on (too few validators; too little weight)', () => {
    for (const handover of [
      { minWeight: 1n, minValidators: 2 },
      { minWeight: 989_001n, minValidators: 1 },
    ]) {
      const { chain, g, gvs, chip } = loneBondedChip(handover);
      runAnswering(chain, [chip], 40n);
      assert.deepEqual(keysOf(validatorSetAt(chain.state, g)), gvs.map((v) => toHex(v.publicKey)).sort());
      assert.equal(handedOverAt(chain.state), null);
      assert.equal(
        handoverShortfall(computeValidatorSet(chain.state, 41n, new Uint8Array(32)), handover) !== null,
        true,
      );
    }
  });

  test('property: whatever the bar and the bonded candidates, the genesis set serves until a stored set meets the bar, and only the handover epoch opens that', () => {
    const gvs = [validator, key('gv2'), key('gv3'), key('gv4')];
    const genesisKeys = gvs.map((v) => toHex(v.publicKey)).sort();
    fc.assert(
      fc.property(
        fc.subarray([0, 1]),
        fc.array(fc.integer({ min: 1, max: 2 }), { minLength: 2, maxLength: 2 }),
        fc.integer({ min: 1, max: 3 }),
        fc.constantFrom(1n, 900_000n, 1_000_000n, 1_500_000n, 2_500_000n),
        (who, chips, minValidators, minWeight) => {
          const handover = { minWeight, minValidators };
          const g = genesis(POCI, {
            validators: gvs.map((v, i) => ({ publicKey: v.publicKey, name: `g${i}` })),
            handover,
          });
          const chain = new Chain(g);
          const owned: Key[] = [];
          chain.block(
            who.map((i) => {
              const owner = [miner, other][i]!;
              const mine = Array.from({ length: chips[i]! }, (_, c) => key(`prop-chip-${i}-${c}`));
              owned.push(...mine);
              return chain.tx(owner, [
                ...mine.map((chip) => registerAction(chain, chip, owner.address)),
                setConsensusKeyAction(owner),
                { type: 'bond', amount: 3n * DEFAULT_CONSENSUS_PARAMS.minValidatorBond },
              ]);
            }),
          );
          runAnswering(chain, owned, 60n);
          const at = handedOverAt(chain.state);
          const set = validatorSetAt(chain.state, g);
          if (at === null) {
            assert.deepEqual(keysOf(set), genesisKeys);
          } else {
            // Handed over: the stored set of the handover epoch met the bar, and no genesis key is a
            // validator (none of them bonded).
            const first = validatorSetForEpoch(chain.state, g, at);
            if (first) assert.equal(handoverShortfall(first.validators, handover), null);
            for (const gv of gvs) assert.equal(set.has(gv.publicKey), false);
          }
          // Fewer candidates than the bar's seats: never handed over.
          if (who.length < minValidators) assert.equal(at, null);
          // The lowest bar and any candidate with a chip: handed over.
          if (minWeight === 1n && minValidators === 1 && who.length > 0) assert.notEqual(at, null);
        },
      ),
      { numRuns: 12 },
    );
  });

  test('genesis: handoverMinWeight and handoverMinValidators parse strictly, round-trip, and are in the state only when given', () => {
    const json = genesisToJson(genesis(POCI, { handover: undefined }));
    assert.equal('handoverMinWeight' in json, false);
    const plain = parseGenesis(json);
    assert.equal(plain.handover, undefined);
    assert.equal(new Chain(plain).state.get(HANDOVER_PARAMS_KEY), undefined);
    const given = parseGenesis({ ...json, handoverMinWeight: '5000000', handoverMinValidators: 7 });
    assert.deepEqual(given.handover, { minWeight: 5_000_000n, minValidators: 7 });
    assert.deepEqual(parseGenesis(genesisToJson(given)).handover, given.handover);
    assert.deepEqual(getHandoverParams(new Chain(given).state), given.handover);
    // One field alone: the other is the default of this genesis's consensus parameters.
    const one = parseGenesis({ ...json, consensus: { maxValidators: 3 }, handoverMinWeight: '9' });
    assert.deepEqual(one.handover, { minWeight: 9n, minValidators: 3 });
    for (const [field, value] of [
      ['handoverMinWeight', '0'],
      ['handoverMinWeight', 5],
      ['handoverMinWeight', (1n << 128n).toString()],
      ['handoverMinWeight', '-1'],
      ['handoverMinValidators', 0],
      ['handoverMinValidators', 1.5],
      ['handoverMinValidators', '4'],
      ['handoverMinValidators', 101], // above the default maxValidators (100)
      ['handoverMinValidators', MAX_VALIDATORS + 1],
    ] as const) {
      assert.throws(
        () => parseGenesis({ ...json, [field]: value }),
        (e: unknown) => (e as { code?: string }).code === 'BAD_GENESIS',
        `${field} = ${String(value)}`,
      );
    }
  });
});

describe('audgov G2: a genesis lists each governance key and each validator once', () => {
  test('a governance key listed twice is BAD_GENESIS (threshold 2 of [A, A] could never be met: checkApprovals counts distinct keys)', () => {
    const json = genesisToJson(genesis()) as { governance: { threshold: number; keys: string[] } };
    const k = json.governance.keys[0]!;
    const twice = { ...json, governance: { threshold: 2, keys: [k, k.toUpperCase()] } };
    assert.throws(
      () => parseGenesis(twice),
      (e: unknown) =>
        (e as { code?: string }).code === 'BAD_GENESIS' && /governance\.keys\[1\]/.test((e as Error).message),
    );
  });

  test('a validator listed twice is BAD_GENESIS at parse (it parsed, and the node failed later building the set)', () => {
    const json = genesisToJson(genesis()) as { validators: { publicKey: string; name: string }[] };
    const v = json.validators[0]!;
    const twice = { ...json, validators: [v, { ...v, publicKey: v.publicKey.toUpperCase(), name: 'b' }] };
    assert.throws(
      () => parseGenesis(twice),
      (e: unknown) =>
        (e as { code?: string }).code === 'BAD_GENESIS' && /validators\[1\]/.test((e as Error).message),
    );
  });

  test('more validators than a set may hold is BAD_GENESIS at parse', () => {
    const json = genesisToJson(genesis()) as { validators: { publicKey: string; name: string }[] };
    const many = Array.from({ length: MAX_VALIDATORS + 1 }, (_, i) => ({
      publicKey: toHex(key(`many-${i}`).publicKey),
      name: `v${i}`,
    }));
    assert.throws(
      () => parseGenesis({ ...json, validators: many }),
      (e: unknown) =>
        (e as { code?: string }).code === 'BAD_GENESIS' && /validators: at most/.test((e as Error).message),
    );
  });

  test('genesisStateWrites refuses a Genesis object listing a governance key or a validator twice', () => {
    const g = genesis();
    assert.throws(
      () =>
        genesisStateWrites({
          ...g,
          governance: { threshold: 1, keys: [g.governance.keys[0]!, g.governance.keys[0]!.slice()] },
        }),
      /twice/,
    );
    assert.throws(
      () =>
        genesisStateWrites({
          ...g,
          validators: [
            g.validators[0]!,
            { ...g.validators[0]!, publicKey: g.validators[0]!.publicKey.slice() },
          ],
        }),
      /twice/,
    );
    // Distinct lists still write a state.
    new MemoryState().apply(genesisStateWrites(g));
  });
});

/** A governance action approved by the test chain's one governance key, for `chainId` at `nonce`. */

describe('audgov G3: a genesis validator weighs the power its genesis entry gives it (docs/operators.md §2)', () => {
  test("a `power` in the genesis is the validator's weight (it was dropped: every genesis validator weighed 1)", () => {
    const json = genesisToJson(genesis()) as {
      validators: { publicKey: string; name: string; power?: string }[];
    };
    const second = key('weighted genesis validator');
    const weighted = {
      ...json,
      validators: [
        { ...json.validators[0]!, power: '3' },
        { publicKey: toHex(second.publicKey), name: 'w' },
      ],
    };
    const g = parseGenesis(weighted);
    const state = new MemoryState();
    state.apply(genesisStateWrites(g));
    const set = validatorSetAt(state, g);
    assert.equal(set.powerOf(validator.publicKey), 3n);
    assert.equal(set.powerOf(second.publicKey), 1n);
    assert.equal(set.totalPower, 4n);
    // It round-trips, and an entry without one still writes no power.
    const back = genesisToJson(g) as { validators: { power?: string }[] };
    assert.equal(back.validators[0]!.power, '3');
    assert.equal('power' in back.validators[1]!, false);
    for (const power of ['0', '-1', '1.5', (1n << 64n).toString()]) {
      const v = { ...weighted, validators: [{ ...json.validators[0]!, power }] };
      assert.throws(
        () => parseGenesis(v),
        (e: unknown) => (e as { code?: string }).code === 'BAD_GENESIS',
      );
    }
  });
});

describe('audgov: what was checked and found sound', () => {
  test('an approval is bound to its chain, its nonce and its proposal', () => {
    const chain = new Chain();
    const p = getPociParams(chain.state);
    const k5: GovProposal = { type: 'setPociParams', params: { ...p, offlineAfterMisses: 5 } };
    const k6: GovProposal = { type: 'setPociParams', params: { ...p, offlineAfterMisses: 6 } };
    // Signed for another chain id, or for the next nonce: refused.
    assert.equal(
      chain.attempt(chain.tx(miner, [govAction(chain, k5, 'unc-other-1')]))?.code,
      'GOV_BAD_APPROVAL',
    );
    assert.equal(chain.attempt(chain.tx(miner, [govAction(chain, k5, CHAIN, 1n)]))?.code, 'GOV_BAD_APPROVAL');
    // Approvals of one proposal do not carry another.
    const a5 = govAction(chain, k5) as Extract<Action, { type: 'governance' }>;
    assert.equal(chain.attempt(chain.tx(miner, [{ ...a5, proposal: k6 }]))?.code, 'GOV_BAD_APPROVAL');
    // Any sender may carry a valid one; once executed, its approvals are spent.
    chain.block([chain.tx(other, [a5])]);
    assert.equal(getPociParams(chain.state).offlineAfterMisses, 5);
    assert.equal(chain.attempt(chain.tx(miner, [a5]))?.code, 'GOV_BAD_APPROVAL');
  });

  test('governance cannot change what epochs are made of (epochBlocks, S, W, grace); a refused proposal spends no nonce', () => {
    const chain = new Chain();
    const p = getPociParams(chain.state);
    for (const params of [
      { ...p, epochBlocks: p.epochBlocks + 1n },
      { ...p, slotsPerEpoch: p.slotsPerEpoch + 1 },
      { ...p, answerWindowBlocks: p.answerWindowBlocks + 1n },
      { ...p, graceSlotsPerEpoch: 0 },
      { ...p, offlineAfterMisses: 0 },
      { ...p, registrationMaxAgeBlocks: 201n },
    ]) {
      assert.equal(
        chain.attempt(chain.tx(miner, [govAction(chain, { type: 'setPociParams', params })]))?.code,
        'BAD_PROPOSAL',
      );
    }
    assert.equal(getGovernance(chain.state).nonce, 0n);
  });

  test('K past what the miss count can reach is accepted and turns the offline rule off (G4, LOW, left)', () => {
    const chain = new Chain();
    const p = getPociParams(chain.state);
    const never = Number(CHALLENGE_HISTORY_EPOCHS) * 32 + 1;
    chain.block([
      chain.tx(miner, [
        govAction(chain, { type: 'setPociParams', params: { ...p, offlineAfterMisses: never } }),
      ]),
    ]);
    assert.equal(getPociParams(chain.state).offlineAfterMisses, never);
  });

  test('two reports of one offence in one block, by two senders: one slash, the second refused', () => {
    const gvs = [validator, key('gv2')];
    const g = genesis(POCI, { validators: gvs.map((v, i) => ({ publicKey: v.publicKey, name: `g${i}` })) });
    const chain = new Chain(g);
    chain.blocksUntil(5n);
    const offender = gvs[1]!;
    const vote = (name: string, round: number) =>
      signVote(
        CHAIN,
        { type: 'prevote', height: 4n, round, blockHash: sha256(utf8(name)), validator: offender.publicKey },
        offender.seed,
      );
    const e1 = duplicateVoteEvidence(CHAIN, vote('A', 0), vote('B', 0));
    const e2 = duplicateVoteEvidence(CHAIN, vote('A', 1), vote('B', 1));
    const { events, rejected } = chain.propose([
      chain.tx(miner, [{ type: 'evidence', evidence: e1 }]),
      chain.tx(other, [{ type: 'evidence', evidence: e2 }]),
    ]);
    assert.equal(events.filter((e) => e.type === 'validatorSlashed').length, 1);
    assert.deepEqual(
      rejected.map((r) => r.error.code),
      ['VALIDATOR_TOMBSTONED'],
    );
    assert.equal(isTombstoned(chain.state, offender.publicKey), true);
  });
});
