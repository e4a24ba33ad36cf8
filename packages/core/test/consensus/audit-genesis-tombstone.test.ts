/**
 * AUDIT (audslash): a tombstoned genesis validator keeps its seat while no bonded set is computed.
 *
 * docs/consensus.md: applying evidence "tombstones the offender: … it is missing from every set
 * computed from the next epoch boundary on", and "a computed set that comes out empty keeps the
 * previous one (without tombstoned validators, unless no one else would be left)".
 *
 * endBlockValidators (epoch-validators.ts) stores the genesis set as an empty list. When the
 * computed set is empty it keeps `previous.validators`, which for the genesis set is [] (or the
 * ring slot is absent), so the tombstone filter runs over nothing and [] is stored again:
 * validatorSetForEpoch reads [] as "the genesis validators", the tombstoned one included. The
 * offender keeps voting and proposing, and every further piece of evidence against it is refused
 * VALIDATOR_TOMBSTONED: after its first (bond-free) punishment it may equivocate at no cost.
 *
 * Expected on sound code: the offender is out of the set of the next epoch. FAILS on current code.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type ConsensusEvidence,
  duplicateVoteEvidence,
  isTombstoned,
  sha256,
  signVote,
  utf8,
  validatorSetAt,
} from '../../src/index.js';
import { genesis, key, other, POCI, TestChain, validator } from '../harness.js';

const V2 = key('second genesis validator');
const G = genesis(POCI, {
  validators: [
    { publicKey: validator.publicKey, name: 'v1' },
    { publicKey: V2.publicKey, name: 'v2' },
  ],
});

function doubleVote(height: bigint): ConsensusEvidence {
  const vote = (name: string) =>
    signVote(
      G.chainId,
      { type: 'precommit', height, round: 0, blockHash: sha256(utf8(name)), validator: V2.publicKey },
      V2.seed,
    );
  return duplicateVoteEvidence(G.chainId, vote('A'), vote('B'));
}

test('AUDIT MEDIUM: a genesis validator tombstoned for equivocation stays in the (genesis) set of the next epochs', () => {
  const chain = new TestChain(G);
  chain.blocksUntil(5n);
  chain.block([chain.tx(other, [{ type: 'evidence', evidence: doubleVote(4n) }])]);
  assert.equal(isTombstoned(chain.state, V2.publicKey), true, 'the evidence landed');
  // A second offence is refused from now on: no further punishment is possible.
  const again = chain.attempt(chain.tx(other, [{ type: 'evidence', evidence: doubleVote(6n) }]));
  assert.equal(again?.code, 'VALIDATOR_TOMBSTONED');

  chain.blocksUntil(20n); // the last block of epoch 0 computes the set of epoch 1 (empty: no bonds)
  const set = validatorSetAt(chain.state, G);
  assert.equal(set.has(validator.publicKey), true, 'the honest genesis validator serves on');
  assert.equal(set.has(V2.publicKey), false, 'the tombstoned genesis validator must be out of the set');
});
