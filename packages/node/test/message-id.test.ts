/**
 * Gossip ids (p2p/message-id.ts): the seen-cache and relay de-duplication key on what the signer
 * vouches for. `sentAt` is not signed, so a genuine vote or proposal re-wrapped with another one
 * must be the same message (keyed on every byte it was a new one, relayed network-wide again).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encode, signVote, toHex } from '@unc/core';
import fc from 'fast-check';
import { txBatchCodec, voteMessageCodec } from '../src/consensus/wire.js';
import { devValidatorKey } from '../src/dev.js';
import { gossipTopicName } from '../src/p2p/libp2p.js';
import { gossipMessageId } from '../src/p2p/message-id.js';

const CHAIN = 'unc-dev-1';
const v = devValidatorKey(0);
const vote = (round: number) =>
  signVote(CHAIN, { type: 'prevote', height: 3n, round, blockHash: null, validator: v.publicKey }, v.seed);
const id = (topic: 'vote' | 'tx', data: Uint8Array) =>
  toHex(gossipMessageId(gossipTopicName(CHAIN, topic), topic, data));

test('a vote re-wrapped with any other sentAt has the same gossip id; another vote has another', () => {
  fc.assert(
    fc.property(
      fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
      fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
      (a, b) => {
        const first = encode(voteMessageCodec, { vote: vote(0), sentAt: a });
        const again = encode(voteMessageCodec, { vote: vote(0), sentAt: b });
        assert.equal(id('vote', again), id('vote', first));
      },
    ),
    { numRuns: 50 },
  );
  assert.notEqual(
    id('vote', encode(voteMessageCodec, { vote: vote(1), sentAt: 1n })),
    id('vote', encode(voteMessageCodec, { vote: vote(0), sentAt: 1n })),
  );
});

test('transactions (no unsigned trailer) are keyed on every byte, and topics never share an id', () => {
  const a = encode(txBatchCodec, [new Uint8Array(40).fill(1)]);
  const b = a.slice();
  b[b.length - 1]! ^= 1;
  assert.notEqual(id('tx', a), id('tx', b), 'the last bytes of a transaction batch count');
  const data = encode(voteMessageCodec, { vote: vote(0), sentAt: 1n });
  assert.notEqual(id('tx', data), id('vote', data));
  // A message shorter than the trailer is hashed whole (it is malformed and rejected anyway).
  assert.equal(gossipMessageId('/x', 'vote', new Uint8Array(3)).byteLength, 32);
});
