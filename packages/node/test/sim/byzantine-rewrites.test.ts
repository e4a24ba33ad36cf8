import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decode, encode, SimRng, signProposal, signVote, verifyProposalSignature } from '@unc/core';
import { Chain } from '../../src/chain.js';
import {
  compactIdsSigned,
  compactOf,
  fullIdsSigned,
  signProposalIds,
} from '../../src/consensus/compact-block.js';
import {
  compactProposalCodec,
  type ProposalMessage,
  proposalMessageCodec,
  voteMessageCodec,
} from '../../src/consensus/wire.js';
import { devValidatorKey } from '../../src/dev.js';
import { silentLogger } from '../../src/log.js';
import { byzantineWiring } from '../../src/sim/byzantine.js';
import { genesisFor } from '../../src/sim/simulator.js';
import { ChainDb, MemoryKv } from '../../src/storage/db.js';

const forger = devValidatorKey(0);

function wiring() {
  const counts = new Map<string, number>();
  const w = byzantineWiring('forge-votes', {
    chainId: 'unc-dev-1',
    key: forger,
    others: [1, 2, 3].map((i) => devValidatorKey(i).publicKey),
    rng: new SimRng(7, 'byzantine/test'),
    core: () => null,
    now: () => 0,
    count: (kind) => void counts.set(kind, (counts.get(kind) ?? 0) + 1),
  });
  return { w, counts };
}

const voteMessage = (round: number) =>
  encode(voteMessageCodec, {
    vote: signVote(
      'unc-dev-1',
      { type: 'prevote', height: 1n, round, blockHash: null, validator: forger.publicKey },
      forger.seed,
    ),
    sentAt: 1n,
  });

test('a Byzantine node re-sends a message with the same made-up companions: the first rewrite is the attack', () => {
  const { w, counts } = wiring();
  const msg = voteMessage(0);
  const first = w.outgoing('vote', msg, ['a']).map((s) => s.data);
  const again = w.outgoing('vote', msg, ['b']).map((s) => s.data);
  assert.equal(first.length, 3, 'a broken signature, an impersonation, the vote itself');
  assert.deepEqual(again, first);
  assert.equal(counts.get('vote with a broken signature'), 1);
  // A different message is rewritten afresh.
  const other = w.outgoing('vote', voteMessage(1), ['a']).map((s) => s.data);
  assert.notDeepEqual(other[0], first[0]);
  assert.equal(counts.get('vote with a broken signature'), 2);
});

test('the remembered rewrites are bounded: past 4,096 messages the oldest are forgotten', () => {
  const { w, counts } = wiring();
  const msg = voteMessage(0);
  w.outgoing('vote', msg, ['a']);
  // Distinct messages without signing 4,096 votes: the sentAt differs.
  const { vote } = {
    vote: signVote(
      'unc-dev-1',
      { type: 'prevote', height: 1n, round: 9, blockHash: null, validator: forger.publicKey },
      forger.seed,
    ),
  };
  for (let i = 0; i < 4_096; i++)
    w.outgoing('vote', encode(voteMessageCodec, { vote, sentAt: BigInt(i + 2) }), ['a']);
  const before = counts.get('vote with a broken signature')!;
  w.outgoing('vote', msg, ['a']);
  assert.equal(
    counts.get('vote with a broken signature'),
    before + 1,
    'the first message was still remembered',
  );
});

test('repropose-without-polka: a fresh proposal of round r ≥ 1 goes out claiming polRound r - 1, validly signed in both encodings; round 0 is withheld; the rest passes', async () => {
  const chain = await Chain.open(ChainDb.over(new MemoryKv()), genesisFor(4), silentLogger);
  const { pending } = chain.buildProposal(
    [],
    chain.nextBlockTime(BigInt(Date.UTC(2026, 0, 1, 0, 0, 2))),
    { seed: forger.seed, publicKey: forger.publicKey },
    () => false,
  );
  const message = (round: number, polRound: number, key = forger): ProposalMessage => {
    const proposal = signProposal(
      'unc-dev-1',
      { height: 1n, round, polRound, blockHash: pending.hash, proposer: key.publicKey },
      key.seed,
    );
    return {
      proposal,
      block: pending.block,
      lastCommit: pending.lastCommit,
      idsSignature: signProposalIds('unc-dev-1', proposal, pending.block, key.seed),
      sentAt: 1n,
    };
  };
  const counts = new Map<string, number>();
  const w = byzantineWiring('repropose-without-polka', {
    chainId: 'unc-dev-1',
    key: forger,
    others: [1, 2, 3].map((i) => devValidatorKey(i).publicKey),
    rng: new SimRng(7, 'byzantine/test'),
    core: () => null,
    now: () => 0,
    count: (kind) => void counts.set(kind, (counts.get(kind) ?? 0) + 1),
  });
  const out = (topic: 'proposal' | 'compact-proposal', data: Uint8Array) =>
    w.outgoing(topic, data, ['a']).map((s) => s.data);

  // Whole: the same block and round, a polRound of the round before, signed by the proposer.
  const fresh = message(2, -1);
  const [whole, ...moreWhole] = out('proposal', encode(proposalMessageCodec, fresh));
  assert.equal(moreWhole.length, 0);
  const claimed = decode(proposalMessageCodec, whole!);
  assert.deepEqual(
    { round: claimed.proposal.round, polRound: claimed.proposal.polRound, block: claimed.proposal.blockHash },
    { round: 2, polRound: 1, block: pending.hash },
  );
  assert.ok(verifyProposalSignature('unc-dev-1', claimed.proposal));
  assert.ok(fullIdsSigned('unc-dev-1', claimed), 'the id list is signed over the new proposal');

  // Compact: the same claim, its id list signed anew.
  const [compact] = out('compact-proposal', encode(compactProposalCodec, compactOf(fresh)));
  const claimedCompact = decode(compactProposalCodec, compact!);
  assert.deepEqual(claimedCompact.proposal, claimed.proposal);
  assert.ok(compactIdsSigned('unc-dev-1', claimedCompact));
  assert.equal(counts.get('re-proposal without its polka (whole)'), 1);
  assert.equal(counts.get('re-proposal without its polka (compact)'), 1);

  // Round 0 (nothing to claim) is withheld; a genuine re-proposal and another proposer's pass.
  assert.deepEqual(out('proposal', encode(proposalMessageCodec, message(0, -1))), []);
  assert.equal(counts.get('withheld round-0 proposal'), 1);
  for (const m of [message(2, 0), message(2, -1, devValidatorKey(1))]) {
    const data = encode(proposalMessageCodec, m);
    assert.deepEqual(out('proposal', data), [data]);
  }

  // The made-up proposal re-sent by a peer is kept from the node (it would report itself); its
  // own and others' messages reach it.
  assert.equal(w.heard?.('proposal', whole!), false);
  assert.equal(w.heard?.('compact-proposal', compact!), false);
  assert.equal(w.heard?.('proposal', encode(proposalMessageCodec, fresh)), true);
  assert.equal(w.heard?.('vote', voteMessage(0)), true);
});
