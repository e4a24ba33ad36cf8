/**
 * AUDIT (audslash, LOW): a validator kept by the "empty computed set keeps the previous one"
 * fallback votes on after its whole bond was unbonded and released; its equivocation slashes 0.
 *
 * docs/consensus.md: "So influence always has UNC at stake, and a slash costs at least
 * minValidatorBond × equivocationSlashBps / 10⁴". endBlockValidators keeps the previous set when
 * the computed one is empty, without looking at bonds, for as many epochs as the computed set stays
 * empty. Unbonding lasts 3 epochs (and evidence may be 2 epochs old), so from the fourth epoch
 * after the unbond the kept validators hold no stake at all.
 *
 * Steps: two bonded validators (the harness of evidence.test.ts). At the first block of epoch 2
 * both unbond everything (chips stay online). Every later boundary computes an empty set (no bond
 * backs any weight) and keeps {miner, other}. At height 101 the unbonding is released to their
 * balances. At height 103 miner double-votes; the evidence lands, the slash is 0.
 *
 * Expected on sound code: either nobody unbonded sits in the set, or the slash is at least the
 * documented floor. FAILS on current code.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type Action,
  DEFAULT_CONSENSUS_PARAMS,
  duplicateVoteEvidence,
  getBond,
  sha256,
  signVote,
  utf8,
  validatorSetAt,
} from '../../src/index.js';
import {
  answer,
  consensusKey,
  genesis,
  key,
  miner,
  other,
  registerAction,
  setConsensusKeyAction,
  slotsOf,
  TestChain,
} from '../harness.js';

const BOND = 10n ** 22n;
const MINER = consensusKey(miner);
const OTHER = consensusKey(other);
const G = genesis();
const CHIPS = () => [key('ev-m1'), key('ev-m2'), key('ev-o1')];

function runAnswering(chain: TestChain, until: bigint): void {
  while (chain.height < until) {
    const due: ReturnType<typeof answer>[] = [];
    const epoch = (chain.height - 1n) / 20n;
    for (const c of CHIPS()) {
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

test('AUDIT LOW: a kept validator whose bond was unbonded and released still votes, and its equivocation slashes nothing', () => {
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
  runAnswering(chain, 40n);
  assert.equal(validatorSetAt(chain.state, G).size, 2);

  const unbond: Action = { type: 'unbond', amount: BOND };
  chain.block([chain.tx(miner, [unbond]), chain.tx(other, [unbond])]); // height 41, epoch 2
  runAnswering(chain, 102n);
  assert.equal(getBond(chain.state, miner.address).bonded, 0n);
  assert.equal(getBond(chain.state, miner.address).unbonding, 0n, 'released at height 101');
  const set = validatorSetAt(chain.state, G);
  assert.ok(set.has(MINER.publicKey) && set.has(OTHER.publicKey), 'both kept, with no stake');

  const vote = (name: string) =>
    signVote(
      G.chainId,
      {
        type: 'precommit',
        height: 102n,
        round: 0,
        blockHash: sha256(utf8(name)),
        validator: MINER.publicKey,
      },
      MINER.seed,
    );
  const events = chain.block([
    chain.tx(other, [{ type: 'evidence', evidence: duplicateVoteEvidence(G.chainId, vote('A'), vote('B')) }]),
  ]);
  const slashed = events.find((e) => e.type === 'validatorSlashed') as { slashed: bigint } | undefined;
  assert.ok(slashed, 'the evidence landed');
  const floor =
    (DEFAULT_CONSENSUS_PARAMS.minValidatorBond * DEFAULT_CONSENSUS_PARAMS.equivocationSlashBps) / 10_000n;
  assert.ok(slashed.slashed >= floor, `slashed ${slashed.slashed}: the documented floor is ${floor}`);
});
