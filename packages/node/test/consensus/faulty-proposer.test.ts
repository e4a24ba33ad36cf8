/**
 * Proposers whose rounds a node stops waiting out in full (consensus/proposer-liveness.ts), seen
 * from validator 0 alone with the other three signed by the test:
 * - a proven equivocator: once this node holds evidence against it, each of its rounds waits the
 *   short propose timeout, not the machine's growing one;
 * - a proposer whose re-proposal came checked valid but without its polka: the round counts as
 *   a turn it missed, like a silent one's;
 * - this node's own re-proposal carries its polka's prevotes to every peer (its proof of lock).
 *
 * The waits are read from the node's own debug line `timeout scheduled` (height, round, step,
 * delayMs): the machine's waits here are long enough that the short one cannot be mistaken.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, describe, test } from 'node:test';
import {
  certificateFromVotes,
  decode,
  equalBytes,
  sha256,
  signVote,
  type TimeoutParams,
  toHex,
  utf8,
} from '@unc/core';
import { until as waitUntil } from '@unc/test-utils';
import { Chain } from '../../src/chain.js';
import { voteMessageCodec } from '../../src/consensus/wire.js';
import { createLogger, silentLogger } from '../../src/log.js';
import type { NetworkHandlers } from '../../src/p2p/types.js';
import { ChainDb } from '../../src/storage/db.js';
import { MemoryNetworkHub } from './memory-network.js';
import { fourValidatorGenesis, nextHeight, TestNodes, type Validator, validators } from './test-nodes.js';

const nodes = new TestNodes();
after(() => nodes.stopAll());

/** A debug logger that keeps each `timeout scheduled` line's fields; `waitOf` reads `height`'s. */
function timeoutLog(height = 1n) {
  const scheduled: { height: string; round: number; step: string; delayMs: number }[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) {
        if (!line) continue;
        const entry = JSON.parse(line) as Record<string, unknown>;
        if (entry.msg === 'timeout scheduled') scheduled.push(entry as unknown as (typeof scheduled)[number]);
      }
      done();
    },
  });
  const logger = createLogger('v0', { level: 'debug', json: true, stream });
  const waitOf = (round: number, step: string) =>
    scheduled.find((e) => e.height === String(height) && e.round === round && e.step === step)?.delayMs;
  return { logger, waitOf };
}

const until = (what: string, cond: () => boolean) =>
  waitUntil(what, cond, { timeoutMs: 20_000, intervalMs: 10 });

/** The two validators other than v0 and `x`: their two nil prevotes move v0 to a later round (line 55). */
const othersThan = (x: Validator) => validators.filter((v) => v !== validators[0] && v !== x);

/** A validator other than v0 and two rounds of its from `minFirst` on: the earliest first turn. */
function twoTurns(proposerOf: (round: number) => Validator, minFirst: number) {
  let best: { x: Validator; first: number; next: number } | null = null;
  for (const x of validators.slice(1)) {
    const turns: number[] = [];
    for (let r = minFirst; r < 12 && turns.length < 2; r++) if (proposerOf(r) === x) turns.push(r);
    if (turns.length === 2 && (!best || turns[0]! < best.first))
      best = { x, first: turns[0]!, next: turns[1]! };
  }
  if (!best) throw new Error('no validator with two turns in the first rounds');
  return best;
}

/** The machine's timeouts: the propose wait as given, 200 ms prevote and precommit waits. */
const machineWaits = (proposeMs: number, proposeDeltaMs: number): TimeoutParams => ({
  proposeMs,
  proposeDeltaMs,
  prevoteMs: 200,
  prevoteDeltaMs: 0,
  precommitMs: 200,
  precommitDeltaMs: 0,
});

/** v0 alone on its hub at height 1, its `timeout scheduled` lines kept, and height 1's messages. */
async function startLogged(prefix: string, timeouts: TimeoutParams) {
  const { logger, waitOf } = timeoutLog();
  const node = await nodes.start(new MemoryNetworkHub(), fourValidatorGenesis(150), prefix, {
    timeouts,
    logger,
  });
  await until('height 1', () => node.driver.position.height === 1n);
  return { node, waitOf, ...nextHeight(node) };
}

describe('a proposer this node holds equivocation evidence against', () => {
  test('waits only the short propose timeout in each of its rounds', async () => {
    const { node, waitOf, proposerOf, vote, gossip } = await startLogged(
      'unc-equivocator-test-',
      machineWaits(60_000, 0),
    );
    const { x, first } = twoTurns(proposerOf, 1);
    // x prevotes two different blocks in round 0: the machine sees it and keeps the evidence.
    await gossip('vote', vote(x, 'prevote', 0, sha256(utf8('block a'))), 'relay', false);
    await gossip('vote', vote(x, 'prevote', 0, sha256(utf8('block b'))), 'relay', false);
    for (const v of othersThan(x)) await gossip('vote', vote(v, 'prevote', first, null), 'relay', false);
    await until(`round ${first}, x's turn`, () => waitOf(first, 'propose') !== undefined);
    assert.equal(
      waitOf(first, 'propose'),
      100 * 2 ** first,
      `round ${first}: the short wait (100 ms doubled per round), not the machine's 60 s`,
    );
    await until(`v0 to give up on x's round ${first}`, () => node.driver.position.step !== 'propose');
  });
});

describe('a re-proposal whose polka never reached this node', () => {
  /**
   * x re-proposes at its first turn (a round-0 polka nobody ever saw) a block of its own, valid or
   * not; v0 waits that round out; at x's next turn v0 must wait only a missed turn's short wait.
   * The machine's propose wait grows 4 s a round: round 1 is waited out in 4.5 s, and the short
   * waits of later rounds (500 ms doubling) stay well under the machine's.
   */
  async function missedTurnAfterReProposal(prefix: string, invalidBlock: boolean) {
    const machine = machineWaits(500, 4_000);
    const { node, waitOf, proposerOf, proposalFor, vote, gossip } = await startLogged(prefix, machine);
    const { x, first, next } = twoTurns(proposerOf, 1);
    assert.ok(first <= 2 && next <= 4, `x's turns ${first} and ${next}: the test's waits assume early ones`);
    for (const v of othersThan(x)) await gossip('vote', vote(v, 'prevote', first, null), 'relay', false);
    await until(`round ${first}`, () => node.driver.position.round === first);
    await gossip('proposal', proposalFor(first, '1', x, 0, invalidBlock).full, 'relay');
    await until(`x's round ${first} to be waited out`, () => node.driver.position.step !== 'propose');
    for (const v of othersThan(x)) await gossip('vote', vote(v, 'prevote', next, null), 'relay', false);
    await until(`round ${next}, x's next turn`, () => waitOf(next, 'propose') !== undefined);
    const machineWait = machine.proposeMs + machine.proposeDeltaMs * next;
    assert.equal(
      waitOf(next, 'propose'),
      Math.min(machineWait, 500 * 2 ** next),
      `round ${next}: the short wait of a missed turn, not the machine's ${machineWait} ms`,
    );
  }

  test("counts as a turn its proposer missed: its next round waits the short timeout, not the machine's", () =>
    missedTurnAfterReProposal('unc-no-polka-test-', false));

  test('counts as a missed turn also when its block is invalid: the polka is what line 28 waits for', () =>
    // Line 28 acts on a re-proposal only with its polka, valid block or not: without it the round
    // is waited out in full. A proposer that signs a polRound over a block nobody can accept
    // (here a wrong state root) is as much at fault as one that withholds a valid block's polka.
    missedTurnAfterReProposal('unc-no-polka-bad-test-', true));

  test('is what a proposer holding the polka sends with its re-proposal, straight to every peer', async () => {
    // v0 saw a polka in round 0 (it and the others prevoted the round-0 block), the round failed
    // to decide, and v0 re-proposes the block at its own turn. The prevotes go to each peer by a
    // direct send of their own: gossip would drop them, every node having relayed them once.
    const hub = new MemoryNetworkHub();
    const batches: { peer: string; messages: readonly { topic: string; data: Uint8Array }[] }[] = [];
    const node = await nodes.start(hub, fourValidatorGenesis(150), 'unc-pol-send-test-', {
      timeouts: {
        proposeMs: 60_000,
        proposeDeltaMs: 0,
        prevoteMs: 60_000,
        prevoteDeltaMs: 0,
        precommitMs: 60_000,
        precommitDeltaMs: 0,
      },
      network: async (handlers) => {
        const net = hub.join('v0', handlers);
        const send = net.sendDirect.bind(net);
        net.sendDirect = (peer, messages) => {
          batches.push({ peer, messages });
          return send(peer, messages);
        };
        return net;
      },
    });
    const silent: NetworkHandlers = {
      onGossip: () => 'ignore',
      status: () => node.driver.status(),
      blocks: async () => [],
    };
    hub.join('peer', silent);
    await until('height 1', () => node.driver.position.height === 1n);
    const { proposerOf, proposalFor, vote, gossip } = nextHeight(node);
    const v0 = validators[0]!;
    assert.notEqual(proposerOf(0), v0, 'round 0 is another validator’s');
    const own = [...Array(16).keys()].find((r) => proposerOf(r) === v0);
    assert.ok(own !== undefined, 'v0 has a turn in the first rounds');
    const block = proposalFor(0, '1', proposerOf(0));
    await gossip('proposal', block.full, 'relay');
    for (const v of validators.slice(1))
      await gossip('vote', vote(v, 'prevote', 0, block.blockHash), 'relay', false);
    await until('v0 to lock on the polka and precommit', () => node.driver.position.step === 'precommit');
    // Two validators in v0's round: it joins that round (line 55) and re-proposes the block.
    for (const v of validators.slice(2)) await gossip('vote', vote(v, 'prevote', own, null), 'relay', false);
    const isPolka = (b: (typeof batches)[number]) =>
      b.peer === 'peer' &&
      b.messages.length > 0 &&
      b.messages.every((m) => {
        if (m.topic !== 'vote') return false;
        const { vote: v } = decode(voteMessageCodec, m.data);
        return (
          v.type === 'prevote' &&
          v.round === 0 &&
          v.blockHash !== null &&
          equalBytes(v.blockHash, block.blockHash)
        );
      });
    await until('the polka sent to the peer', () => batches.some(isPolka));
    const sent = batches.find(isPolka)!;
    const signers = sent.messages.map((m) => toHex(decode(voteMessageCodec, m.data).vote.validator)).sort();
    assert.deepEqual(
      signers,
      validators.map((v) => toHex(v.publicKey)).sort(),
      'all four prevotes of the polka',
    );
    assert.equal(node.driver.polkaStats.sent, 1);
  });
});

describe('a node that restarts', () => {
  test("knows a validator missing from its last commits for silent at once, waits its turn only the absent proposer's short wait, and holds nothing against it once heard from", async () => {
    // Three heights committed by v0, v1 and v2 alone (v3 silent), written to the data directory
    // as a node that ran them would have; then the node starts on it. Before, it knew nothing for
    // two heights and waited each of v3's turns out in full: where its vote completed a quorum,
    // every node waited with it (simulator seed 77988: 21.6 s).
    const genesis = fourValidatorGenesis(150);
    const dataDir = mkdtempSync(join(tmpdir(), 'unc-recall-test-'));
    const db = await ChainDb.open(join(dataDir, 'chain'));
    const chain = await Chain.open(db, genesis, silentLogger);
    const signers = validators.slice(0, 3);
    for (let h = 1n; h <= 3n; h++) {
      const { pending } = chain.buildProposal(
        [],
        chain.nextBlockTime(BigInt(Date.now())),
        { seed: validators[0]!.seed, publicKey: validators[0]!.publicKey },
        () => false,
      );
      const votes = signers.map((v) =>
        signVote(
          'unc-dev-1',
          { type: 'precommit', height: h, round: 0, blockHash: pending.hash, validator: v.publicKey },
          v.seed,
        ),
      );
      await chain.commitDecided(pending, certificateFromVotes(votes));
    }
    await chain.untilDurable();
    await db.close();

    const { logger, waitOf } = timeoutLog(4n);
    // v0 signed those commits, and this data directory has no privval.json (the node that ran
    // them would have had one, saying height 3: nothing a signer starting at height 4 needs).
    const node = await nodes.start(new MemoryNetworkHub(), genesis, 'unc-recall-test-', {
      dataDir,
      allowFreshSigner: true,
      timeouts: machineWaits(60_000, 0),
      logger,
    });
    await until('height 4', () => node.driver.position.height === 4n);
    const { proposerOf, vote, gossip } = nextHeight(node);
    const v3 = validators[3]!;
    const turn = [...Array(16).keys()].find((r) => proposerOf(r) === v3);
    assert.ok(turn !== undefined, 'v3 has a turn in the first rounds');
    if (turn > 0)
      for (const v of validators.slice(1, 3))
        await gossip('vote', vote(v, 'prevote', turn, null), 'relay', false);
    await until(`round ${turn}, v3's turn`, () => waitOf(turn, 'propose') !== undefined);
    assert.equal(
      waitOf(turn, 'propose'),
      100 * 2 ** turn,
      `round ${turn}: the absent proposer's wait (100 ms doubled per round), not the machine's 60 s`,
    );
    // That wait running out proves nothing against v3 (it may be alive, its precommits late):
    // once it is heard from, its next turn waits in full, not a missed turn's 500 ms.
    await until(`v0 to give up on v3's round ${turn}`, () => node.driver.position.step !== 'propose');
    await gossip('vote', vote(v3, 'prevote', turn, null), 'relay', false);
    const next = [...Array(32).keys()].find((r) => r > turn && proposerOf(r) === v3)!;
    for (const v of validators.slice(1, 3))
      await gossip('vote', vote(v, 'prevote', next, null), 'relay', false);
    await until(`round ${next}, v3's next turn`, () => waitOf(next, 'propose') !== undefined);
    assert.equal(waitOf(next, 'propose'), 60_000, `round ${next}: the machine's wait, v3 being heard from`);
  });
});
