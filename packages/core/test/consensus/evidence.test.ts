import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  type Action,
  accountCodec,
  actionCodec,
  bondCodec,
  type ConsensusEvidence,
  checkEvidence,
  circulatingSupply,
  DEFAULT_CONSENSUS_PARAMS,
  decode,
  duplicateProposalEvidence,
  duplicateVoteEvidence,
  encode,
  evidenceIncludedAt,
  getBond,
  getSupply,
  isTombstoned,
  StateSpace,
  sha256,
  signProposal,
  signVote,
  toHex,
  txEventCodec,
  utf8,
  validatorSetAt,
} from '../../src/index.js';
import { genesis, type Key, key, miner, other, registerAction, TestChain, validator } from '../harness.js';

const BOND = 10n ** 21n;
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

/** Miner and other are bonded validators of epoch 1 (miner with two H100s, other with one). */
function twoValidators(): TestChain {
  const chain = new TestChain(G);
  chain.block([
    chain.tx(miner, [
      registerAction(chain, key('ev-m1'), miner.address),
      registerAction(chain, key('ev-m2'), miner.address),
      { type: 'bond', amount: BOND },
    ]),
  ]);
  chain.block([
    chain.tx(other, [registerAction(chain, key('ev-o1'), other.address), { type: 'bond', amount: BOND }]),
  ]);
  chain.blocksUntil(20n);
  assert.equal(validatorSetAt(chain.state, G).size, 2);
  return chain;
}

describe('equivocation evidence', () => {
  test('a double vote slashes the bond (burned), tombstones the validator and empties its seat next epoch', () => {
    const chain = twoValidators();
    chain.blocksUntil(24n);
    const evidence = doubleVote(miner, 23n, 2);
    const supplyBefore = getSupply(chain.state);
    const events = chain.block([chain.tx(other, [report(evidence)])]);
    const slashEvent = events.find((e) => e.type === 'validatorSlashed');
    const expected = (BOND * DEFAULT_CONSENSUS_PARAMS.equivocationSlashBps) / 10_000n;
    assert.deepEqual(slashEvent, {
      type: 'validatorSlashed',
      validator: miner.publicKey,
      account: miner.address,
      kind: 'duplicate-vote',
      height: 23n,
      round: 2,
      slashed: expected,
      reporter: other.address,
    });
    assert.deepEqual(decode(txEventCodec, encode(txEventCodec, slashEvent!)), slashEvent);
    assert.equal(getBond(chain.state, miner.address).bonded, BOND - expected);
    assert.equal(getSupply(chain.state).slashed, supplyBefore.slashed + expected);
    assert.equal(holdings(chain), circulatingSupply(getSupply(chain.state)), 'supply invariant holds');
    assert.ok(isTombstoned(chain.state, miner.publicKey));
    assert.equal(evidenceIncludedAt(chain.state, evidence), 25n);
    // The current epoch's set is fixed; the next one is computed without the offender.
    assert.ok(validatorSetAt(chain.state, G).has(miner.publicKey));
    chain.blocksUntil(40n);
    const next = validatorSetAt(chain.state, G);
    assert.ok(!next.has(miner.publicKey));
    assert.ok(next.has(other.publicKey));
    // Bonding again does not bring a tombstoned validator back.
    chain.block([chain.tx(miner, [{ type: 'bond', amount: BOND }])]);
    chain.blocksUntil(60n);
    assert.ok(!validatorSetAt(chain.state, G).has(miner.publicKey));
  });

  test('the same evidence twice is refused, and so is a second offence of a tombstoned validator', () => {
    const chain = twoValidators();
    chain.blocksUntil(22n);
    const evidence = doubleVote(miner, 21n);
    const tx = chain.tx(other, [report(evidence)]);
    chain.block([tx]);
    const again = chain.attempt(chain.tx(other, [report(evidence)]));
    assert.equal(again?.code, 'EVIDENCE_DUPLICATE');
    const second = chain.attempt(chain.tx(other, [report(doubleProposal(miner, 22n))]));
    assert.equal(second?.code, 'VALIDATOR_TOMBSTONED');
    // Twice in one transaction: the second sees the first's write.
    const chain2 = twoValidators();
    chain2.blocksUntil(22n);
    const twice = chain2.attempt(chain2.tx(other, [report(evidence), report(evidence)]));
    assert.equal(twice?.code, 'EVIDENCE_DUPLICATE');
  });

  test('bad evidence gets a ValidationError and changes nothing', () => {
    const chain = twoValidators();
    chain.blocksUntil(30n);
    const before = new Map(chain.state.map);
    const cases: [ConsensusEvidence, string][] = [
      [doubleVote(key('stranger'), 25n), 'BAD_EVIDENCE'],
      [doubleVote(miner, 31n), 'BAD_EVIDENCE'],
      [doubleVote(miner, 25n, 0, 'another-chain'), 'BAD_EVIDENCE'],
      [doubleVote(validator, 25n), 'BAD_EVIDENCE'],
    ];
    const ev = doubleVote(miner, 25n);
    if (ev.type !== 'duplicate-vote') throw new Error('unreachable');
    cases.push([{ ...ev, first: ev.second, second: ev.first }, 'BAD_EVIDENCE']);
    cases.push([
      { ...ev, second: { ...ev.second, signature: ev.second.signature.map((b) => b ^ 1) } },
      'BAD_EVIDENCE',
    ]);
    cases.push([{ ...ev, second: ev.first }, 'BAD_EVIDENCE']);
    for (const [evidence, code] of cases) {
      const refused = chain.attempt(chain.tx(other, [report(evidence)]));
      assert.equal(refused?.code, code, `${refused?.message}`);
    }
    assert.deepEqual(chain.state.map, before);
    assert.ok(!isTombstoned(chain.state, miner.publicKey));
  });

  test('evidence is checked against the set of its own epoch, for a bounded number of epochs', () => {
    const chain = twoValidators();
    // Epoch 0 was the genesis validator's: its double vote at height 5 is valid evidence.
    const genesisOffence = doubleVote(validator, 5n);
    chain.blocksUntil(45n);
    assert.equal(checkEvidence(chain.state, G.chainId, 46n, genesisOffence), undefined);
    // The miner was no validator in epoch 0.
    assert.throws(() => checkEvidence(chain.state, G.chainId, 46n, doubleVote(miner, 5n)), {
      code: 'BAD_EVIDENCE',
    });
    chain.blocksUntil(60n);
    const old = chain.attempt(chain.tx(other, [report(genesisOffence)]));
    assert.equal(old?.code, 'EVIDENCE_TOO_OLD');
    const recent = chain.block([chain.tx(other, [report(doubleProposal(miner, 41n))])]);
    assert.equal(recent.find((e) => e.type === 'validatorSlashed')?.type, 'validatorSlashed');
  });

  test('the evidence action has tag 20 and round-trips', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 1n, max: 1n << 40n }),
        fc.nat({ max: 1000 }),
        fc.boolean(),
        (h, r, votes) => {
          const ev = votes ? doubleVote(miner, h, r) : doubleProposal(miner, h);
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
      fc.property(fc.integer({ min: 21, max: 39 }), fc.boolean(), (height, votes) => {
        const chain = twoValidators();
        chain.blocksUntil(BigInt(height));
        const ev = votes ? doubleVote(other, BigInt(height)) : doubleProposal(other, BigInt(height));
        chain.block([chain.tx(miner, [report(ev)])]);
        assert.equal(holdings(chain), circulatingSupply(getSupply(chain.state)));
        assert.ok(getSupply(chain.state).slashed > 0n);
        assert.equal(getBond(chain.state, other.address).bonded, BOND - BOND / 20n);
      }),
      { numRuns: 5 },
    );
  });
});
