import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  type Action,
  accountCodec,
  actionCodec,
  addressFromPublicKey,
  bondCodec,
  CONSENSUS_PARAMS_KEY,
  type ConsensusEvidence,
  type ConsensusParams,
  checkEvidence,
  chipsOfOwner,
  chipTombstonedThrough,
  circulatingSupply,
  consensusParamsCodec,
  DEFAULT_CONSENSUS_PARAMS,
  DEFAULT_POCI_PARAMS,
  decode,
  devSoftChipId,
  duplicateProposalEvidence,
  duplicateVoteEvidence,
  ed25519Sign,
  encode,
  epochOf,
  equalBytes,
  evidenceIncludedAt,
  getBond,
  getPociParams,
  getRecentHash,
  getSupply,
  indexChipEvents,
  isTombstoned,
  MAX_RECENT_CHIP_TRANSFERS,
  MemoryState,
  StateOverlay,
  StateSpace,
  sha256,
  signProposal,
  signVote,
  TRANSFER_MEMORY_EPOCHS,
  toHex,
  tombstoneBarredThrough,
  tombstoneValidator,
  transferMessage,
  txEventCodec,
  utf8,
  ValidationError,
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
  registerAction,
  setConsensusKeyAction,
  slotsOf,
  TestChain,
  validator,
} from '../harness.js';

/** 10,000 UNC: backs 10^7 units of power at the defaults, more than the chips below. */
const BOND = 10n ** 22n;
const MINER = consensusKey(miner);
const OTHER = consensusKey(other);
const G = genesis();
const BLOCK_A = sha256(utf8('block A'));
const BLOCK_B = sha256(utf8('block B'));

function doubleVote(k: Key, height: bigint, round = 0, chainId = G.chainId): ConsensusEvidence {
  const vote = (blockHash: Uint8Array) =>
    signVote(chainId, { type: 'precommit', height, round, blockHash, validator: k.publicKey }, k.seed);
  return duplicateVoteEvidence(chainId, vote(BLOCK_A), vote(BLOCK_B));
}

function doubleProposal(k: Key, height: bigint): ConsensusEvidence {
  const proposal = (blockHash: Uint8Array) =>
    signProposal(G.chainId, { height, round: 1, polRound: -1, blockHash, proposer: k.publicKey }, k.seed);
  return duplicateProposalEvidence(G.chainId, proposal(BLOCK_A), proposal(BLOCK_B));
}

const report = (evidence: ConsensusEvidence): Action => ({ type: 'evidence', evidence });

function holdings(chain: TestChain): bigint {
  let sum = 0n;
  for (const { key: k, value } of chain.state.map.values()) {
    if (!value) continue;
    if (k[0] === StateSpace.account) sum += decode(accountCodec, value).balance;
    if (k[0] === StateSpace.bond) {
      const b = decode(bondCodec, value);
      sum += b.bonded + b.unbonding;
    }
  }
  return sum;
}

function setConsensusParams(chain: TestChain, p: Partial<ConsensusParams>): void {
  chain.state.apply([
    { key: CONSENSUS_PARAMS_KEY, value: encode(consensusParamsCodec, { ...DEFAULT_CONSENSUS_PARAMS, ...p }) },
  ]);
}

/** Produces blocks up to `until`, answering every open slot of `chips` (they stay online). */
function runAnswering(chain: TestChain, chips: Key[], until: bigint): void {
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

/** The chips of twoValidators(). */
const CHIPS = () => [key('ev-m1'), key('ev-m2'), key('ev-o1')];

/**
 * Miner and other are bonded validators of epoch 2 (miner with two H100s, other with one): their
 * chips, registered in epoch 0, answer their challenges through epoch 1 (a chip counts for voting
 * power only once it has answered). Returns at height 40, the last block of epoch 1.
 */
function twoValidators(): TestChain {
  const chain = new TestChain(G);
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
  runAnswering(chain, CHIPS(), 40n);
  assert.equal(validatorSetAt(chain.state, G).size, 2);
  return chain;
}

describe('equivocation evidence', () => {
  test('a double vote slashes the bond (burned), tombstones the validator and empties its seat next epoch', () => {
    const chain = twoValidators();
    runAnswering(chain, CHIPS(), 44n);
    const evidence = doubleVote(MINER, 43n, 2);
    const supplyBefore = getSupply(chain.state);
    const events = chain.block([chain.tx(other, [report(evidence)])]);
    const slashEvent = events.find((e) => e.type === 'validatorSlashed');
    const expected = (BOND * DEFAULT_CONSENSUS_PARAMS.equivocationSlashBps) / 10_000n;
    assert.deepEqual(slashEvent, {
      type: 'validatorSlashed',
      validator: MINER.publicKey,
      account: miner.address,
      kind: 'duplicate-vote',
      height: 43n,
      round: 2,
      slashed: expected,
      reporter: other.address,
    });
    assert.deepEqual(decode(txEventCodec, encode(txEventCodec, slashEvent!)), slashEvent);
    assert.equal(getBond(chain.state, miner.address).bonded, BOND - expected);
    assert.equal(getSupply(chain.state).slashed, supplyBefore.slashed + expected);
    assert.equal(holdings(chain), circulatingSupply(getSupply(chain.state)), 'supply invariant holds');
    assert.ok(isTombstoned(chain.state, MINER.publicKey));
    assert.equal(evidenceIncludedAt(chain.state, evidence), 45n);
    // The current epoch's set is fixed; the next one is computed without the offender.
    assert.ok(validatorSetAt(chain.state, G).has(MINER.publicKey));
    runAnswering(chain, CHIPS(), 60n);
    const next = validatorSetAt(chain.state, G);
    assert.ok(!next.has(MINER.publicKey));
    assert.ok(next.has(OTHER.publicKey));
    // Bonding again does not bring a tombstoned validator back.
    chain.block([chain.tx(miner, [{ type: 'bond', amount: BOND }])]);
    runAnswering(chain, CHIPS(), 80n);
    assert.ok(!validatorSetAt(chain.state, G).has(MINER.publicKey));
  });

  test('the same evidence twice is refused, and so is a second offence of a tombstoned validator', () => {
    const chain = twoValidators();
    chain.blocksUntil(42n);
    const evidence = doubleVote(MINER, 41n);
    const tx = chain.tx(other, [report(evidence)]);
    chain.block([tx]);
    const again = chain.attempt(chain.tx(other, [report(evidence)]));
    assert.equal(again?.code, 'EVIDENCE_DUPLICATE');
    const second = chain.attempt(chain.tx(other, [report(doubleProposal(MINER, 42n))]));
    assert.equal(second?.code, 'VALIDATOR_TOMBSTONED');
    // Twice in one transaction: the second sees the first's write.
    const chain2 = twoValidators();
    chain2.blocksUntil(42n);
    const twice = chain2.attempt(chain2.tx(other, [report(evidence), report(evidence)]));
    assert.equal(twice?.code, 'EVIDENCE_DUPLICATE');
  });

  test('bad evidence gets a ValidationError and changes nothing', () => {
    const chain = twoValidators();
    chain.blocksUntil(50n);
    const before = new Map(chain.state.map);
    // BAD_EVIDENCE where the state decides (the set, the height); the byte-provable faults have
    // their own codes, which nodes remember and blame on the relay.
    const cases: [ConsensusEvidence, string | string[]][] = [
      [doubleVote(key('stranger'), 45n), 'BAD_EVIDENCE'],
      [doubleVote(MINER, 51n), 'BAD_EVIDENCE'],
      // Signed for another chain: no signature holds here (or, before they are checked, the order
      // under this chain's sign bytes does not).
      [doubleVote(MINER, 45n, 0, 'another-chain'), ['BAD_EVIDENCE_SIGNATURE', 'BAD_EVIDENCE_PROOF']],
      [doubleVote(validator, 45n), 'BAD_EVIDENCE'],
      // The account key is no validator key: votes it signs are nobody's.
      [doubleVote(miner, 45n), 'BAD_EVIDENCE'],
      [doubleVote(MINER, 0n), 'BAD_EVIDENCE_PROOF'],
    ];
    const ev = doubleVote(MINER, 45n);
    if (ev.type !== 'duplicate-vote') throw new Error('unreachable');
    cases.push([{ ...ev, first: ev.second, second: ev.first }, 'BAD_EVIDENCE_PROOF']);
    cases.push([
      { ...ev, second: { ...ev.second, signature: ev.second.signature.map((b) => b ^ 1) } },
      'BAD_EVIDENCE_SIGNATURE',
    ]);
    cases.push([{ ...ev, second: ev.first }, 'BAD_EVIDENCE_PROOF']);
    cases.push([{ ...ev, second: { ...ev.second, round: 1 } }, 'BAD_EVIDENCE_PROOF']);
    cases.push([{ ...ev, second: { ...ev.second, validator: OTHER.publicKey } }, 'BAD_EVIDENCE_PROOF']);
    for (const [evidence, code] of cases) {
      const refused = chain.attempt(chain.tx(other, [report(evidence)]));
      if (Array.isArray(code)) assert.ok(code.includes(refused?.code ?? ''), `${refused?.message}`);
      else assert.equal(refused?.code, code, `${refused?.message}`);
    }
    assert.deepEqual(chain.state.map, before);
    assert.ok(!isTombstoned(chain.state, MINER.publicKey));
  });

  test('evidence is checked against the set of its own epoch, for a bounded number of epochs', () => {
    const chain = twoValidators();
    // Epoch 0 was the genesis validator's: its double vote at height 5 is valid evidence.
    const genesisOffence = doubleVote(validator, 5n);
    chain.blocksUntil(45n);
    assert.equal(checkEvidence(chain.state, G.chainId, 46n, genesisOffence), undefined);
    // The miner was no validator in epoch 0.
    assert.throws(() => checkEvidence(chain.state, G.chainId, 46n, doubleVote(MINER, 5n)), {
      code: 'BAD_EVIDENCE',
    });
    chain.blocksUntil(60n);
    const old = chain.attempt(chain.tx(other, [report(genesisOffence)]));
    assert.equal(old?.code, 'EVIDENCE_TOO_OLD');
    const recent = chain.block([chain.tx(other, [report(doubleProposal(MINER, 41n))])]);
    assert.equal(recent.find((e) => e.type === 'validatorSlashed')?.type, 'validatorSlashed');
  });

  test('the evidence action has tag 20 and round-trips', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 1n, max: 1n << 40n }),
        fc.nat({ max: 1000 }),
        fc.boolean(),
        (h, r, votes) => {
          const ev = votes ? doubleVote(MINER, h, r) : doubleProposal(MINER, h);
          const bytes = encode(actionCodec, report(ev));
          assert.equal(bytes[0], 20);
          assert.deepEqual(decode(actionCodec, bytes), report(ev));
          assert.equal(toHex(encode(actionCodec, decode(actionCodec, bytes))), toHex(bytes));
        },
      ),
      { numRuns: 20 },
    );
  });

  test('property: any slash keeps balances + bonds = genesis + minted − burned − slashed', () => {
    fc.assert(
      fc.property(fc.integer({ min: 41, max: 59 }), fc.boolean(), (height, votes) => {
        const chain = twoValidators();
        chain.blocksUntil(BigInt(height));
        const ev = votes ? doubleVote(OTHER, BigInt(height)) : doubleProposal(OTHER, BigInt(height));
        chain.block([chain.tx(miner, [report(ev)])]);
        assert.equal(holdings(chain), circulatingSupply(getSupply(chain.state)));
        assert.ok(getSupply(chain.state).slashed > 0n);
        assert.equal(getBond(chain.state, other.address).bonded, BOND - BOND / 20n);
      }),
      { numRuns: 5 },
    );
  });

  test('attack: a tombstoned operator’s chips moved to a fresh key back nobody for tombstoneEpochs epochs', () => {
    const chain = twoValidators();
    setConsensusParams(chain, { tombstoneEpochs: 2n });
    const chips = [key('ev-m1'), key('ev-m2')];
    runAnswering(chain, CHIPS(), 44n);
    chain.block([chain.tx(other, [report(doubleVote(MINER, 43n))])]);
    const chipIds = chips.map((c) => devSoftChipId(c.publicKey));
    // Slashed in epoch 2: its chips back no validator in epochs 3 and 4.
    for (const id of chipIds) assert.equal(chipTombstonedThrough(chain.state, id), 4n);
    // The operator moves its chips to a fresh account with a fresh consensus key and a full bond.
    const fresh = key('fresh-operator');
    chain.block([
      chain.tx(miner, [{ type: 'transfer', to: fresh.address, amount: 2n * BOND, memo: new Uint8Array() }]),
    ]);
    const anchor = chain.height;
    const anchorHash = getRecentHash(chain.state, anchor) ?? chain.hashOf(anchor);
    chain.block([
      chain.tx(
        miner,
        chips.map((c, i) => ({
          type: 'transferChip' as const,
          chipId: chipIds[i]!,
          newOwner: fresh.address,
          anchorHeight: anchor,
          consent: {
            type: 'dev-soft' as const,
            signature: ed25519Sign(
              c.seed,
              transferMessage(G.chainId, chipIds[i]!, fresh.address, anchorHash),
            ),
          },
        })),
      ),
    ]);
    chain.block([chain.tx(fresh, [setConsensusKeyAction(fresh), { type: 'bond', amount: BOND }])]);
    assert.deepEqual(chipsOfOwner(chain.state, fresh.address).map(toHex).sort(), chipIds.map(toHex).sort());
    const FRESH = consensusKey(fresh).publicKey;
    const live = [...chips, key('ev-o1')];
    for (const until of [60n, 80n]) {
      runAnswering(chain, live, until);
      const set = validatorSetAt(chain.state, G);
      assert.ok(!set.has(FRESH), `the chips back nobody in the set after height ${until}`);
      assert.ok(set.has(OTHER.publicKey) && !set.has(MINER.publicKey));
    }
    // The transfer did not clear the mark; once it runs out, the chips back the new owner.
    for (const id of chipIds) assert.equal(chipTombstonedThrough(chain.state, id), 4n);
    runAnswering(chain, live, 100n);
    assert.equal(validatorSetAt(chain.state, G).powerOf(FRESH), 2n * 989_000n);
  });

  test('property: a slash burns real UNC (at least minValidatorBond × slash bps) and keeps total = genesis + mined − burned − slashed', () => {
    const MIN = DEFAULT_CONSENSUS_PARAMS.minValidatorBond;
    const BPS = DEFAULT_CONSENSUS_PARAMS.equivocationSlashBps;
    fc.assert(
      fc.property(
        fc.bigInt({ min: MIN, max: 20n * MIN }),
        fc.integer({ min: 41, max: 59 }),
        fc.boolean(),
        (bond, height, votes) => {
          const chain = new TestChain(G);
          chain.block([
            chain.tx(other, [
              registerAction(chain, key('pp-chip'), other.address, chain.height, 'sim-a100'),
              setConsensusKeyAction(other),
              { type: 'bond', amount: bond },
            ]),
          ]);
          runAnswering(chain, [key('pp-chip')], 40n);
          chain.blocksUntil(BigInt(height));
          assert.ok(
            validatorSetAt(chain.state, G).has(OTHER.publicKey),
            'the minimum bond makes a validator',
          );
          const before = getSupply(chain.state);
          const ev = votes ? doubleVote(OTHER, BigInt(height)) : doubleProposal(OTHER, BigInt(height));
          const events = chain.block([chain.tx(miner, [report(ev)])]);
          const slashed = events.find((e) => e.type === 'validatorSlashed');
          assert.ok(slashed?.type === 'validatorSlashed');
          assert.equal(slashed.slashed, (bond * BPS) / 10_000n);
          assert.ok(slashed.slashed >= (MIN * BPS) / 10_000n && slashed.slashed >= 10n ** 18n, 'real UNC');
          const after = getSupply(chain.state);
          assert.equal(after.slashed - before.slashed, slashed.slashed);
          assert.equal(getBond(chain.state, other.address).bonded, bond - slashed.slashed);
          assert.equal(
            holdings(chain),
            after.genesisAllocation + after.minted - after.burned - after.slashed,
            'total = genesis + mined − burned − slashed',
          );
          assert.equal(holdings(chain), circulatingSupply(after));
        },
      ),
      { numRuns: 6 },
    );
  });

  test('attack: chips moved away before the evidence lands, even through a second account, are barred too', () => {
    const chain = twoValidators();
    setConsensusParams(chain, { tombstoneEpochs: 2n });
    const chips = [key('ev-m1'), key('ev-m2')];
    const chipIds = chips.map((c) => devSoftChipId(c.publicKey));
    const [hop, fresh] = [key('hop-account'), key('fresh-after-hop')];
    chain.block([
      chain.tx(miner, [
        { type: 'transfer', to: hop.address, amount: BOND, memo: new Uint8Array() },
        { type: 'transfer', to: fresh.address, amount: 2n * BOND, memo: new Uint8Array() },
      ]),
    ]);
    // Miner equivocates at height 48, then launders its chips miner → hop → fresh before anyone reports.
    const move = (from: Key, to: Key) => {
      const anchor = chain.height;
      const anchorHash = getRecentHash(chain.state, anchor) ?? chain.hashOf(anchor);
      chain.block([
        chain.tx(
          from,
          chips.map((c, i) => ({
            type: 'transferChip' as const,
            chipId: chipIds[i]!,
            newOwner: to.address,
            anchorHeight: anchor,
            consent: {
              type: 'dev-soft' as const,
              signature: ed25519Sign(c.seed, transferMessage(G.chainId, chipIds[i]!, to.address, anchorHash)),
            },
          })),
        ),
      ]);
    };
    // Chips that answered in epoch 1 change hands once it is final (height 47).
    runAnswering(chain, CHIPS(), 48n);
    move(miner, hop);
    move(hop, fresh);
    chain.block([chain.tx(fresh, [setConsensusKeyAction(fresh), { type: 'bond', amount: BOND }])]);
    assert.equal(chipsOfOwner(chain.state, miner.address).length, 0, 'nothing left to mark at the slash');
    chain.block([chain.tx(other, [report(doubleVote(MINER, 48n))])]);
    for (const id of chipIds) assert.equal(tombstoneBarredThrough(chain.state, id), 4n);
    const FRESH = consensusKey(fresh).publicKey;
    const live = [...chips, key('ev-o1')];
    for (const until of [60n, 80n]) {
      runAnswering(chain, live, until);
      assert.ok(!validatorSetAt(chain.state, G).has(FRESH), `barred in the set after height ${until}`);
    }
    runAnswering(chain, live, 100n);
    assert.equal(validatorSetAt(chain.state, G).powerOf(FRESH), 2n * 989_000n, 'the bar runs out');
  });

  test('attack: chips deregistered before the offence is reported and registered again by another account are barred too', () => {
    // The validator keeps its seat (and the chips' power) to the end of the epoch in which it
    // deregisters them; the tombstone finds no chip under it, so only the chip's history can bar them.
    const chain = twoValidators();
    setConsensusParams(chain, { tombstoneEpochs: 2n });
    const chips = [key('ev-m1'), key('ev-m2')];
    const chipIds = chips.map((c) => devSoftChipId(c.publicKey));
    const fresh = key('fresh-after-rereg');
    chain.block([
      chain.tx(miner, [{ type: 'transfer', to: fresh.address, amount: 2n * BOND, memo: new Uint8Array() }]),
    ]);
    // Epoch 2 (heights 41..60): the miner's chips stop answering; epoch 1 is final at 47, so the
    // chips can be registered again from then on. The miner equivocates at height 48.
    runAnswering(chain, [key('ev-o1')], 47n);
    chain.block([
      chain.tx(
        miner,
        chipIds.map((chipId) => ({ type: 'deregisterChip' as const, chipId })),
      ),
    ]);
    chain.block([
      chain.tx(fresh, [
        registerAction(chain, chips[0]!, fresh.address),
        registerAction(chain, chips[1]!, fresh.address),
        setConsensusKeyAction(fresh),
        { type: 'bond', amount: BOND },
      ]),
    ]);
    assert.ok(validatorSetAt(chain.state, G).has(MINER.publicKey), 'the miner still holds its epoch-2 seat');
    assert.equal(chipsOfOwner(chain.state, miner.address).length, 0, 'nothing left to mark at the slash');
    chain.block([chain.tx(other, [report(doubleVote(MINER, 48n))])]);
    for (const id of chipIds) assert.equal(tombstoneBarredThrough(chain.state, id), 4n);
    const FRESH = consensusKey(fresh).publicKey;
    // Registered again in epoch 2, the chips count from epoch 3 on, once they have answered: the
    // set of epoch 4 is the first they could back, and it is within the bar.
    runAnswering(chain, [key('ev-o1')], 60n);
    runAnswering(chain, CHIPS(), 80n);
    assert.ok(!validatorSetAt(chain.state, G).has(FRESH), 'barred in the set of epoch 4');
    runAnswering(chain, CHIPS(), 100n);
    assert.equal(validatorSetAt(chain.state, G).powerOf(FRESH), 2n * 989_000n, 'the bar runs out');
  });

  test('a deregistration is never refused; a registration after MAX_RECENT_CHIP_TRANSFERS changes of hands waits', () => {
    const chain = twoValidators();
    const chip = key('ev-o1');
    const chipId = devSoftChipId(chip.publicKey);
    const owners = [other, key('pp-a')];
    chain.block([
      chain.tx(miner, [{ type: 'transfer', to: owners[1]!.address, amount: BOND, memo: new Uint8Array() }]),
    ]);
    const transfer = (from: Key, to: Key) => {
      const anchor = chain.height;
      const anchorHash = getRecentHash(chain.state, anchor) ?? chain.hashOf(anchor);
      return chain.tx(from, [
        {
          type: 'transferChip',
          chipId,
          newOwner: to.address,
          anchorHeight: anchor,
          consent: {
            type: 'dev-soft',
            signature: ed25519Sign(chip.seed, transferMessage(G.chainId, chipId, to.address, anchorHash)),
          },
        },
      ]);
    };
    const deregister = (from: Key) => chain.tx(from, [{ type: 'deregisterChip', chipId }]);
    const register = (by: Key) => chain.tx(by, [registerAction(chain, chip, by.address)]);
    // It answered in epoch 1: it changes hands once that epoch is final (height 47).
    chain.blocksUntil(47n);
    // Deregister/register cycles and transfers fill the memory: each deregistration counts.
    let owner = 0;
    for (let i = 0; i < MAX_RECENT_CHIP_TRANSFERS - 1; i++) {
      if (i % 2 === 0) {
        chain.block([deregister(owners[owner]!)]);
        owner = 1 - owner;
        chain.block([register(owners[owner]!)]);
      } else {
        chain.block([transfer(owners[owner]!, owners[1 - owner]!)]);
        owner = 1 - owner;
      }
    }
    // One more leaves room for nothing but a deregistration: the owner can always give it up.
    chain.block([transfer(owners[owner]!, owners[1 - owner]!)]);
    owner = 1 - owner;
    assert.equal(
      chain.attempt(transfer(owners[owner]!, owners[1 - owner]!))?.code,
      'CHIP_TRANSFERS_TOO_FREQUENT',
    );
    chain.block([deregister(owners[owner]!)]);
    assert.equal(chain.attempt(register(owners[1 - owner]!))?.code, 'CHIP_TRANSFERS_TOO_FREQUENT');
    assert.equal(chain.attempt(register(owners[owner]!))?.code, 'CHIP_TRANSFERS_TOO_FREQUENT');
    // `other` owned it in epoch 2 and is tombstoned now: none of the later owners can launder it.
    chain.block([chain.tx(miner, [report(doubleVote(OTHER, 41n))])]);
    const through =
      epochOf(chain.height, getPociParams(chain.state)) + DEFAULT_CONSENSUS_PARAMS.tombstoneEpochs;
    assert.equal(tombstoneBarredThrough(chain.state, chipId), through);
    // Once the memory window has passed, the chip registers again; the bar stays as its own mark.
    chain.blocksUntil(20n * (4n + TRANSFER_MEMORY_EPOCHS) + 1n);
    chain.block([register(owners[1]!)]);
    assert.equal(chipTombstonedThrough(chain.state, chipId), through);
    assert.equal(tombstoneBarredThrough(chain.state, chipId), through);
  });

  test('a chip may change hands at most MAX_RECENT_CHIP_TRANSFERS times in TRANSFER_MEMORY_EPOCHS epochs; old bars outlive the memory', () => {
    const chain = twoValidators();
    const chip = key('ev-o1');
    const chipId = devSoftChipId(chip.publicKey);
    const owners = [other, key('pp-a'), key('pp-b')];
    chain.block([
      chain.tx(
        miner,
        owners
          .slice(1)
          .map((o) => ({ type: 'transfer' as const, to: o.address, amount: BOND, memo: new Uint8Array() })),
      ),
    ]);
    const transfer = (i: number) => {
      const [from, to] = [owners[i % 3]!, owners[(i + 1) % 3]!];
      const anchor = chain.height;
      const anchorHash = getRecentHash(chain.state, anchor) ?? chain.hashOf(anchor);
      return chain.tx(from, [
        {
          type: 'transferChip',
          chipId,
          newOwner: to.address,
          anchorHeight: anchor,
          consent: {
            type: 'dev-soft',
            signature: ed25519Sign(chip.seed, transferMessage(G.chainId, chipId, to.address, anchorHash)),
          },
        },
      ]);
    };
    // It answered in epoch 1: it changes hands once that epoch is final (height 47).
    chain.blocksUntil(47n);
    for (let i = 0; i < MAX_RECENT_CHIP_TRANSFERS; i++) chain.block([transfer(i)]);
    assert.equal(chain.attempt(transfer(MAX_RECENT_CHIP_TRANSFERS))?.code, 'CHIP_TRANSFERS_TOO_FREQUENT');
    // `other` owned it in epoch 2 and is tombstoned now: the chip is barred…
    chain.block([chain.tx(miner, [report(doubleVote(OTHER, 41n))])]);
    const tombstoneEpochs = DEFAULT_CONSENSUS_PARAMS.tombstoneEpochs;
    assert.equal(tombstoneBarredThrough(chain.state, chipId), 2n + tombstoneEpochs);
    // …and stays barred after the memory of that transfer is gone.
    chain.blocksUntil(20n * (3n + TRANSFER_MEMORY_EPOCHS) + 1n);
    chain.block([transfer(MAX_RECENT_CHIP_TRANSFERS)]);
    assert.equal(chipTombstonedThrough(chain.state, chipId), 2n + tombstoneEpochs);
    assert.equal(tombstoneBarredThrough(chain.state, chipId), 2n + tombstoneEpochs);
  });
});

describe('the tombstone follows the chips (state level)', () => {
  const EPOCH = DEFAULT_POCI_PARAMS.epochBlocks;
  const N = DEFAULT_CONSENSUS_PARAMS.tombstoneEpochs;
  /** Epoch of the offence; its set was computed from the owners after its epoch's first block − 1. */
  const OFFENCE_EPOCH = 5n;
  const V_KEY = sha256(utf8('offender consensus key'));
  const V = addressFromPublicKey(V_KEY);
  const ACCOUNTS = [V, ...['a', 'b', 'c'].map((n) => sha256(utf8(n)).subarray(0, 20))];
  const CHIP_IDS = [sha256(utf8('chip 0')), sha256(utf8('chip 1'))];

  type Op = { gap: number; chip: number; kind: 'transfer' | 'deregister'; to: number };
  const op = (maxGap: number) =>
    fc.record({
      gap: fc.integer({ min: 0, max: maxGap }),
      chip: fc.integer({ min: 0, max: CHIP_IDS.length - 1 }),
      kind: fc.constantFrom('transfer' as const, 'deregister' as const),
      to: fc.integer({ min: 0, max: ACCOUNTS.length - 1 }),
    });

  test('property: a chip that backed the offender in the epoch of the offence is barred for the full tombstone, whatever transfers, deregistrations and registrations came between', () => {
    fc.assert(
      fc.property(
        fc.array(op(Number(EPOCH)), { maxLength: 12, size: 'max' }),
        // Dense enough to fill the memory of changes of hands (MAX_RECENT_CHIP_TRANSFERS).
        fc.array(op(40), { minLength: 10, maxLength: 40, size: 'max' }),
        fc.integer({ min: 0, max: Number(3n * EPOCH - 1n) }),
        fc.array(op(Number(EPOCH)), { maxLength: 12, size: 'max' }),
        (before, between, reportAfter, after) => {
          const state = new StateOverlay(new MemoryState());
          const owners: (Uint8Array | null)[] = CHIP_IDS.map(() => null);
          // Applies one chip action's event at `height` as a transaction would: all or nothing.
          const apply = (o: Op, height: bigint) => {
            const chipId = CHIP_IDS[o.chip]!;
            const owner = owners[o.chip]!;
            let to = ACCOUNTS[o.to]!;
            if (owner && equalBytes(to, owner)) to = ACCOUNTS[(o.to + 1) % ACCOUNTS.length]!;
            const event = !owner
              ? { type: 'chipRegistered', chipId, owner: to, power: 1n }
              : o.kind === 'transfer'
                ? { type: 'chipTransferred', chipId, from: owner, to }
                : { type: 'chipDeregistered', chipId, owner };
            const tx = state.child();
            try {
              indexChipEvents(tx, [event], height);
            } catch (err) {
              assert.ok(
                err instanceof ValidationError && err.code === 'CHIP_TRANSFERS_TOO_FREQUENT',
                String(err),
              );
              assert.notEqual(event.type, 'chipDeregistered', 'a deregistration is never refused');
              return;
            }
            tx.commit();
            owners[o.chip] = event.type === 'chipDeregistered' ? null : to;
          };
          const run = (ops: Op[], from: bigint, last: bigint) => {
            let h = from;
            for (const o of ops) {
              h += BigInt(o.gap);
              if (h > last) break;
              apply(o, h);
            }
          };
          indexChipEvents(state, [{ type: 'chipRegistered', chipId: CHIP_IDS[0]!, owner: V, power: 1n }], 1n);
          owners[0] = V;
          const offenceStart = OFFENCE_EPOCH * EPOCH + 1n;
          run(before, 2n, offenceStart - 1n);
          const backed = CHIP_IDS.filter((_, i) => owners[i] !== null && equalBytes(owners[i]!, V));
          // The evidence lands at most EVIDENCE_MAX_AGE_EPOCHS (2) epochs after the offence's.
          const reported = offenceStart + BigInt(reportAfter);
          run(between, offenceStart, reported);
          const epoch = epochOf(reported, DEFAULT_POCI_PARAMS);
          tombstoneValidator(state, V_KEY, reported, epoch, N);
          for (const id of backed) assert.ok(tombstoneBarredThrough(state, id) >= epoch + N, 'barred');
          // Later changes of hands, past the memory window too, do not lift the bar.
          run(after, reported + 1n, reported + 10n * EPOCH);
          for (const id of backed) assert.ok(tombstoneBarredThrough(state, id) >= epoch + N, 'still barred');
        },
      ),
      { numRuns: 300 },
    );
  });
});
