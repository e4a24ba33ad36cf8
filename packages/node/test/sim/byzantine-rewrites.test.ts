import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encode, SimRng, signVote } from '@unc/core';
import { voteMessageCodec } from '../../src/consensus/wire.js';
import { devValidatorKey } from '../../src/dev.js';
import { byzantineWiring } from '../../src/sim/byzantine.js';

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
