import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { DEFAULT_TIMEOUTS, encode, sha256, signVote, timeoutFor, utf8 } from '@unc/core';
import { until as waitUntil } from '@unc/test-utils';
import { nilQuorumPrecommitWait } from '../../src/consensus/driver.js';
import { voteMessageCodec } from '../../src/consensus/wire.js';
import { MemoryNetworkHub } from './memory-network.js';
import { fourValidatorGenesis, TestNodes, validators } from './test-nodes.js';

const machine = (round: number) => timeoutFor(DEFAULT_TIMEOUTS, 'precommit', round);

describe('the precommit wait after a nil quorum', () => {
  test('is short in the first rounds: round 1 waits 200 ms, not 1.5 s', () => {
    assert.equal(nilQuorumPrecommitWait(machine(0), 0), 100);
    assert.equal(nilQuorumPrecommitWait(machine(1), 1), 200);
    assert.equal(nilQuorumPrecommitWait(machine(2), 2), 400);
  });

  test("grows without bound and is never longer than the machine's, which it soon is", () => {
    // Tendermint is live only if every round's waits eventually outgrow the network's delay.
    for (let round = 0; round < 500; round++) {
      const wait = nilQuorumPrecommitWait(machine(round), round);
      const next = nilQuorumPrecommitWait(machine(round + 1), round + 1);
      assert.ok(wait <= machine(round));
      assert.ok(next > wait, `round ${round + 1}: ${next} ms after ${wait} ms`);
      if (round >= 6) assert.equal(wait, machine(round), `round ${round}: the machine's own wait`);
    }
    assert.equal(nilQuorumPrecommitWait(50, 0), 50, 'a machine wait under 100 ms is kept');
  });

  test('stays short in every round whose proposer is cut off (its connection closed, silent since)', () => {
    for (const round of [0, 1, 5, 6, 40])
      assert.equal(nilQuorumPrecommitWait(machine(round), round, true), 100);
    assert.equal(nilQuorumPrecommitWait(50, 3, true), 50);
  });
});

describe('a nil quorum completed after the precommit wait was scheduled', () => {
  const nodes = new TestNodes();
  after(() => nodes.stopAll());

  /** Votes of height 1, round 0 signed by `v` and gossiped to `node`; and a 20 s wait. */
  const voting = (node: Awaited<ReturnType<TestNodes['start']>>) => {
    const gossip = node.driver.handlers().onGossip;
    const send = (
      v: (typeof validators)[number],
      type: 'prevote' | 'precommit',
      blockHash: Uint8Array | null,
    ) =>
      gossip(
        'vote',
        encode(voteMessageCodec, {
          vote: signVote(
            'unc-dev-1',
            { type, height: 1n, round: 0, blockHash, validator: v.publicKey },
            v.seed,
          ),
          sentAt: 1n,
        }),
        'relay',
        false,
      );
    const until = (what: string, cond: () => boolean) =>
      waitUntil(what, cond, { timeoutMs: 20_000, intervalMs: 10 });
    return { send, until };
  };

  test("a Byzantine validator's early precommit for a block does not buy the round the machine's whole wait", async () => {
    // The wait is scheduled once 2/3+ precommitted anything, and its length was chosen then: a
    // Byzantine validator precommitting first made every failed round wait 1 s + 0.5 s per round,
    // though the honest nil precommits completed a nil quorum a moment later (simulator seed
    // 74339: a height of 35 s). Here the machine's wait is a minute: only the short wait ends the
    // round within the test's patience.
    const node = await nodes.start(new MemoryNetworkHub(), fourValidatorGenesis(150), 'unc-nilwait-test-', {
      timeouts: {
        proposeMs: 200,
        proposeDeltaMs: 0,
        prevoteMs: 200,
        prevoteDeltaMs: 0,
        precommitMs: 60_000,
        precommitDeltaMs: 0,
      },
    });
    const { send, until } = voting(node);
    await until('height 1', () => node.driver.position.height === 1n);
    await send(validators[1]!, 'prevote', null);
    await send(validators[2]!, 'prevote', null);
    await until('v0 to precommit in round 0', () => node.driver.position.step === 'precommit');
    // The Byzantine validator first, then one honest nil precommit: 2/3+ precommitted, no nil quorum yet.
    await send(validators[3]!, 'precommit', sha256(utf8('a block nobody saw')));
    await send(validators[1]!, 'precommit', null);
    assert.equal(node.driver.position.round, 0);
    // The last honest nil precommit completes the nil quorum: the round ends after the short wait.
    await send(validators[2]!, 'precommit', null);
    await until(
      'round 1 after the short wait, not the machine’s minute',
      () => node.driver.position.round >= 1,
    );
  });
  test("this node's own nil precommit completing the nil quorum ends the round after the short wait too", async () => {
    // The nil quorum need not be completed by a precommit received: here 2/3+ precommitted (the
    // Byzantine validator for a block, two honest ones nil) while this node was still prevoting,
    // so the wait was scheduled long; its own nil precommit, cast on the nil polka (a prevote
    // event, not a precommit one), is what completes the nil quorum.
    const long = 60_000;
    const node = await nodes.start(
      new MemoryNetworkHub(),
      fourValidatorGenesis(150),
      'unc-nilwait-own-test-',
      {
        timeouts: {
          proposeMs: 200,
          proposeDeltaMs: 0,
          prevoteMs: long,
          prevoteDeltaMs: 0,
          precommitMs: long,
          precommitDeltaMs: 0,
        },
      },
    );
    const { send, until } = voting(node);
    await until('height 1', () => node.driver.position.height === 1n);
    await until('v0 to prevote in round 0', () => node.driver.position.step === 'prevote');
    await send(validators[3]!, 'precommit', sha256(utf8('a block nobody saw')));
    await send(validators[1]!, 'precommit', null);
    await send(validators[2]!, 'precommit', null);
    assert.equal(node.driver.position.step, 'prevote', 'still prevoting: the wait was scheduled long');
    // A nil polka (whatever v0 prevoted): v0 precommits nil, completing the nil quorum.
    await send(validators[1]!, 'prevote', null);
    await send(validators[2]!, 'prevote', null);
    await send(validators[3]!, 'prevote', null);
    await until(
      'round 1 after the short wait, not the machine’s minute',
      () => node.driver.position.round >= 1,
    );
  });
});
