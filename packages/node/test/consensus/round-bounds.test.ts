/**
 * What a round bounds (consensus/driver.ts): proposals for rounds far ahead are held, not checked,
 * fetched nor relayed, until their round comes near; a fetch lets go of its slots when its round
 * is over (unless the machine may still need its block); a fetch whose first peer lacks the ids
 * asks the peers that announced them, then relaying peers, before anyone else.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { decode, equalBytes, toHex } from '@unc/core';
import { until as waitUntil } from '@unc/test-utils';
import { txsOfBlock } from '../../src/consensus/compact-block.js';
import { MAX_FAR_ROUND_PROPOSALS, MAX_FAR_ROUND_PROPOSALS_PER_PROPOSER } from '../../src/consensus/driver.js';
import { compactProposalCodec, proposalMessageCodec } from '../../src/consensus/wire.js';
import { devGenesisJson, devValidatorKey } from '../../src/dev.js';
import { silentLogger } from '../../src/log.js';
import { UncNode } from '../../src/node.js';
import type { NetworkHandlers } from '../../src/p2p/types.js';
import { MemoryNetworkHub } from './memory-network.js';
import { nextHeight, type Validator } from './test-nodes.js';

const dirs: string[] = [];
const running = new Set<UncNode>();
after(async () => {
  for (const n of running) await n.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const validators = [0, 1, 2, 3].map((i) => devValidatorKey(i));
const genesis = devGenesisJson({
  blockTimeMs: 150,
  validators: validators.map((v, i) => ({ publicKey: v.publicKey, name: `v${i}` })),
});

/** A node of the 4-validator chain (v0, or a follower), at height 1, alone: it stays in round 0. */
async function startAt1(hub: MemoryNetworkHub, seed?: Uint8Array) {
  const dir = mkdtempSync(join(tmpdir(), 'unc-rounds-test-'));
  dirs.push(dir);
  const node = await UncNode.start({
    dataDir: dir,
    genesis,
    ...(seed ? { validatorSeed: seed } : {}),
    rpcPort: 0,
    logger: silentLogger,
    network: async (handlers) => hub.join('n0', handlers),
  });
  running.add(node);
  await waitUntil('the driver to run height 1', () => node.driver.position.height === 1n, {
    timeoutMs: 60_000,
    intervalMs: 25,
  });
  const { proposerOf, proposalFor, vote, gossip } = nextHeight(node);
  const prevote = (v: Validator, round: number, blockHash: Uint8Array | null) =>
    vote(v, 'prevote', round, blockHash);
  return { node, proposerOf, proposalFor, prevote, gossip };
}

function silentPeer(node: UncNode, extra: Partial<NetworkHandlers> = {}): NetworkHandlers {
  return { onGossip: () => 'ignore', status: () => node.driver.status(), blocks: async () => [], ...extra };
}

test('a proposer signing a proposal for each of 50 far-future turns makes no node check or relay them; each is handled when its round comes near', async () => {
  // Before: each was a new signature from its round's own proposer, so each was checked (its block
  // executed) and relayed once, at every node, for as many turns ahead as the proposer cared to sign.
  const hub = new MemoryNetworkHub();
  const { node, proposerOf, proposalFor, prevote, gossip } = await startAt1(hub, validators[0]!.seed);
  hub.join('relay', silentPeer(node));
  let checks = 0;
  // A block is checked in order (validateProposal) or, its signatures on the pool, optimistically.
  const validate = node.chain.validateProposal.bind(node.chain);
  node.chain.validateProposal = (...args) => {
    checks++;
    return validate(...args);
  };
  const validateOptimistically = node.chain.validateProposalOptimistically.bind(node.chain);
  node.chain.validateProposalOptimistically = (...args) => {
    checks++;
    return validateOptimistically(...args);
  };
  // One validator (not v0) and 50 of its own turns, from round 2 on.
  const proposer = [2, 3, 4, 5, 6, 7, 8, 9].map(proposerOf).find((v) => v !== validators[0])!;
  const rounds: number[] = [];
  for (let r = 2; rounds.length < 50; r++) if (proposerOf(r) === proposer) rounds.push(r);
  const verdicts: string[] = [];
  for (const [i, r] of rounds.entries())
    verdicts.push(await gossip('proposal', proposalFor(r, String(i + 2)).full, 'relay'));
  assert.equal(node.driver.position.round, 0);
  assert.equal(verdicts.filter((v) => v === 'accept').length, 0, 'far-future proposals were relayed');
  assert.equal(checks, 0, 'far-future proposals were checked');
  assert.equal(
    node.driver.heldFarRoundProposals,
    MAX_FAR_ROUND_PROPOSALS_PER_PROPOSER,
    "the held ones are bounded, one proposer's the more so",
  );

  // Two validators' prevotes of the round before the nearest turn (f+1): v0 skips to that round,
  // and the held proposal for the next one is checked then, once.
  const [nearest] = rounds;
  const others = validators.filter((v) => v !== validators[0]).slice(0, 2);
  for (const v of others) await gossip('vote', prevote(v, nearest! - 1, null), `relay-${toHex(v.publicKey)}`);
  await waitUntil(
    'v0 to reach the round before the nearest turn',
    () => node.driver.position.round >= nearest! - 1,
    {
      timeoutMs: 60_000,
      intervalMs: 5,
    },
  );
  await waitUntil('the held proposal to be checked', () => checks === 1, {
    timeoutMs: 60_000,
    intervalMs: 5,
  });
  assert.equal(node.driver.farRoundStats.released, 1);
  assert.equal(node.driver.heldFarRoundProposals, MAX_FAR_ROUND_PROPOSALS_PER_PROPOSER - 1);
});

test("one proposer's far turns, nearest to a lagging node, leave places for the others' proposals", async () => {
  // Before: held nearest first with no bound per proposer, a Byzantine proposer's own turns just
  // ahead of a lagging node took every place, and the honest proposal of the round the network
  // was in was dropped: the node prevoted nil there once it skipped to it.
  const hub = new MemoryNetworkHub();
  const { node, proposerOf, proposalFor, gossip } = await startAt1(hub, validators[0]!.seed);
  hub.join('relay', silentPeer(node));
  const byzantine = [2, 3, 4, 5, 6, 7, 8, 9].map(proposerOf).find((v) => v !== validators[0])!;
  const rounds: number[] = [];
  for (let r = 2; rounds.length < 10; r++) if (proposerOf(r) === byzantine) rounds.push(r);
  let i = 0;
  for (const r of rounds) await gossip('proposal', proposalFor(r, String(++i + 1)).full, 'relay');
  // An honest proposer's turn past all of them: the round the network has moved to.
  let honestRound = rounds.at(-1)! + 1;
  while (proposerOf(honestRound) === byzantine || proposerOf(honestRound) === validators[0]) honestRound++;
  await gossip('proposal', proposalFor(honestRound, String(++i + 1)).full, 'relay');
  const held = (node.driver as unknown as { farRounds: Map<string, { round: number }> }).farRounds;
  assert.ok(
    [...held.values()].some((h) => h.round === honestRound),
    `the honest round ${honestRound} was shut out by ${[...held.values()].map((h) => h.round)}`,
  );
  assert.ok(held.size <= MAX_FAR_ROUND_PROPOSALS);
});

test('far-future compact proposals take no fetch; once their round is near they are fetched', async () => {
  const hub = new MemoryNetworkHub();
  const { node, proposalFor, prevote, gossip } = await startAt1(hub);
  const asked: string[] = [];
  hub.join('relay', silentPeer(node));
  const net = hub.member('n0')!;
  net.requestTxs = async (_peer, hash) => {
    asked.push(toHex(hash));
    return [];
  };
  const far = [5, 6, 7].map((r) => ({ round: r, ...proposalFor(r, String(r)) }));
  for (const p of far) assert.equal(await gossip('compact-proposal', p.compact, 'relay'), 'ignore');
  assert.equal(asked.length, 0, 'fetched for a round far ahead');
  // f+1 prevotes of round 4: round 5's proposal is now for the next round, and fetched.
  for (const v of validators.slice(0, 2)) await gossip('vote', prevote(v, 4, null), 'relay');
  await waitUntil('round 5 to be fetched for', () => asked.includes(far[0]!.hash), {
    timeoutMs: 60_000,
    intervalMs: 5,
  });
  assert.ok(!asked.includes(far[2]!.hash), 'round 7 is still two ahead');
});

test('a round that moves on releases its fetches (not one whose block has a polka): the relay can be fetched from again', async () => {
  // Before: only a decided height released fetches. A fetch whose last peer never answers held its
  // slots, and its relaying peer's (one fetch per peer), until the request timed out, through the
  // rounds after.
  const hub = new MemoryNetworkHub();
  const { node, proposalFor, prevote, gossip } = await startAt1(hub);
  for (const id of ['p1', 'p2', 'p3', 'p4']) hub.join(id, silentPeer(node));
  const requests: { peer: string; hash: string; signal: AbortSignal | undefined }[] = [];
  const net = hub.member('n0')!;
  net.requestTxs = (peer, hash, _ids, signal) => {
    requests.push({ peer, hash: toHex(hash), signal });
    return new Promise((_, reject) => signal?.addEventListener('abort', () => reject(signal.reason)));
  };
  // Round 1's proposer signs four blocks for its turn, each relayed by another peer: four fetches.
  const round1 = [1, 2, 3, 4].map((i) => proposalFor(1, String(i + 1)));
  const verdicts = round1.map((p, i) => Promise.resolve(gossip('compact-proposal', p.compact, `p${i + 1}`)));
  await waitUntil('the four fetches to start', () => requests.length >= 4, {
    timeoutMs: 60_000,
    intervalMs: 5,
  });
  // 2/3+ prevote the first block in round 1 (the machine may still lock on it or decide it), then
  // f+1 prevote nil in round 2: the node moves to round 2.
  for (const v of validators.slice(1, 4)) await gossip('vote', prevote(v, 1, round1[0]!.blockHash), 'p1');
  for (const v of validators.slice(1, 3)) await gossip('vote', prevote(v, 2, null), 'p1');
  await waitUntil('round 2', () => node.driver.position.round === 2, { timeoutMs: 60_000, intervalMs: 5 });
  const outstanding = (hash: string) => requests.filter((r) => r.hash === hash && !r.signal?.aborted).length;
  // Well inside a peer's share of the round (1 s): nothing but the release can have ended them.
  await new Promise((r) => setTimeout(r, 50));
  for (const p of round1.slice(1))
    assert.equal(outstanding(p.hash), 0, 'a fetch of a round that is over still runs');
  assert.equal(outstanding(round1[0]!.hash), 1, 'the fetch of the block with a polka was let go');
  for (const v of verdicts.slice(1)) assert.equal(await v, 'ignore');
  // The relays' slots are free: a proposal of round 2 from p2 is fetched for at once.
  const round2 = proposalFor(2, '9');
  void gossip('compact-proposal', round2.compact, 'p2');
  await waitUntil(
    'the round-2 proposal to be fetched for',
    () => requests.some((r) => r.hash === round2.hash),
    {
      timeoutMs: 500,
      intervalMs: 5,
    },
  );
  // And no released fetch comes back to ask another peer.
  await new Promise((r) => setTimeout(r, 1_500));
  for (const p of round1.slice(1))
    assert.equal(outstanding(p.hash), 0, 'a released fetch asked another peer');
});

test('a relay that lacks the ids: the peers that announced them, then relaying peers, are asked at once, not fresh ids', async () => {
  const hub = new MemoryNetworkHub();
  const { node, proposerOf, proposalFor, prevote, gossip } = await startAt1(hub, validators[0]!.seed);
  // Fresh ids connected first (the network lists them first), then a validator's peer and the relay.
  for (const id of ['sybil-1', 'sybil-2', 'sybil-3', 'validator-peer', 'announcer', 'relay'])
    hub.join(id, silentPeer(node));
  const round = [0, 1].find((r) => proposerOf(r) !== validators[0])!;
  // The second block is the next round's: a second one of the same round would be its proposer's
  // equivocation, over the round's execution cap, and held, not fetched (execution-cap.test.ts).
  const nextRound = round + 1;
  assert.ok(
    nextRound <= 1 && proposerOf(nextRound) !== validators[0],
    'the next round is another’s turn too',
  );
  const first = proposalFor(round, '2');
  const second = proposalFor(nextRound, '3');
  const blocks = new Map([
    [first.hash, first.block],
    [second.hash, second.block],
  ]);
  const asked: { peer: string; hash: string }[] = [];
  let relayAnswers: () => void = () => {};
  const net = hub.member('n0')!;
  net.requestTxs = async (peer, hash, ids, signal) => {
    asked.push({ peer, hash: toHex(hash) });
    if (peer === 'relay') {
      // It holds the request a moment (the announcer's copy arrives meanwhile), then lacks them.
      await new Promise<void>((resolve) => {
        relayAnswers = resolve;
      });
      return [];
    }
    if (peer === 'validator-peer' || peer === 'announcer') return txsOfBlock(blocks.get(toHex(hash))!, ids);
    // Fresh ids never answer: each would hold the fetch for its share of the round.
    return new Promise((_, reject) => signal?.addEventListener('abort', () => reject(signal.reason)));
  };
  // 'validator-peer' relayed a genuine vote this node accepted: a relaying peer.
  const other = validators.find((v) => v !== validators[0] && v !== proposerOf(round))!;
  assert.equal(await gossip('vote', prevote(other, 0, null), 'validator-peer'), 'accept');

  // 1. The same proposal from another peer while the relay is asked: that peer is asked next.
  const verdict = Promise.resolve(gossip('compact-proposal', first.compact, 'relay'));
  await waitUntil('the relay to be asked', () => asked.length === 1, { timeoutMs: 60_000, intervalMs: 2 });
  assert.equal(await gossip('compact-proposal', first.compact, 'announcer'), 'ignore');
  relayAnswers();
  await waitUntil('a second peer to be asked', () => asked.length >= 2, { timeoutMs: 60_000, intervalMs: 2 });
  assert.deepEqual(
    asked.map((a) => a.peer),
    ['relay', 'announcer'],
    'the peer that announced the ids was not asked next',
  );
  assert.equal(await verdict, 'accept');

  // 2. Nobody else sent it: the relaying peer is asked next, before the fresh ids listed first.
  asked.length = 0;
  const verdict2 = Promise.resolve(gossip('compact-proposal', second.compact, 'relay'));
  await waitUntil('the relay to be asked', () => asked.length === 1, { timeoutMs: 60_000, intervalMs: 2 });
  relayAnswers();
  await waitUntil('a second peer to be asked', () => asked.length >= 2, { timeoutMs: 60_000, intervalMs: 2 });
  assert.deepEqual(
    asked.map((a) => a.peer),
    ['relay', 'validator-peer'],
    'a fresh id was asked before the relaying peer',
  );
  await verdict2;
});

test('far-round proposals kept from before their height began are held, not checked, when it starts', async () => {
  // Proposals for a height after the next are kept unforwarded (their set is not known yet) and
  // replayed when that height starts; the replay went straight to the check, so each of a
  // proposer's far-future turns sent to a node that was behind was executed there. White-box:
  // the kept messages are put where gossip of a later height leaves them, then replayed.
  const hub = new MemoryNetworkHub();
  const { node, proposerOf, proposalFor } = await startAt1(hub, validators[0]!.seed);
  let checks = 0;
  // A block is checked in order (validateProposal) or, its signatures on the pool, optimistically.
  const validate = node.chain.validateProposal.bind(node.chain);
  node.chain.validateProposal = (...args) => {
    checks++;
    return validate(...args);
  };
  const validateOptimistically = node.chain.validateProposalOptimistically.bind(node.chain);
  node.chain.validateProposalOptimistically = (...args) => {
    checks++;
    return validateOptimistically(...args);
  };
  const rounds = [5, 6, 7, 8, 9, 10, 11, 12, 13, 14]
    .filter((r) => proposerOf(r) !== validators[0])
    .slice(0, 6);
  const driver = node.driver as unknown as {
    futureProposals: { kind: 'proposal'; msg: unknown; from: string }[];
    replayBuffered(height: bigint): Promise<void>;
    enqueue(task: () => Promise<void>): Promise<void>;
  };
  for (const [i, r] of rounds.entries()) {
    const { full } = proposalFor(r, String(i + 2));
    driver.futureProposals.push({ kind: 'proposal', msg: decode(proposalMessageCodec, full), from: 'relay' });
  }
  await driver.enqueue(() => driver.replayBuffered(1n));
  assert.equal(checks, 0, 'far-round proposals kept for their height were checked when it started');
  const perProposer = new Map<Validator, number>();
  for (const r of rounds) perProposer.set(proposerOf(r), (perProposer.get(proposerOf(r)) ?? 0) + 1);
  const holdable = [...perProposer.values()].reduce(
    (n, c) => n + Math.min(c, MAX_FAR_ROUND_PROPOSALS_PER_PROPOSER),
    0,
  );
  assert.equal(node.driver.heldFarRoundProposals, Math.min(MAX_FAR_ROUND_PROPOSALS, holdable));
});

test('a held proposal handled once its round is near is relayed once (compact) to the peers that did not send it', async () => {
  // Held, it got `ignore`: gossip did not forward it, and its id is in this node's seen-cache, so
  // it cannot be published again. Before, a peer hearing the network only through this node got the
  // round's votes from it (and skipped to that round) but never the proposal, until a stall re-send.
  const hub = new MemoryNetworkHub();
  const { node, proposalFor, prevote, gossip } = await startAt1(hub);
  const downstream: { topic: string; data: Uint8Array }[] = [];
  const sentToRelay: string[] = [];
  hub.join(
    'relay',
    silentPeer(node, {
      onGossip: (topic) => {
        sentToRelay.push(topic);
        return 'ignore';
      },
    }),
  );
  hub.join(
    'downstream',
    silentPeer(node, {
      onGossip: (topic, data) => {
        downstream.push({ topic, data });
        return 'ignore';
      },
    }),
  );
  const far = proposalFor(2, '2');
  assert.equal(await gossip('proposal', far.full, 'relay'), 'ignore');
  assert.equal(node.driver.heldFarRoundProposals, 1);
  const compactOfFar = () =>
    downstream.filter(
      (m) =>
        m.topic === 'compact-proposal' &&
        equalBytes(
          decode(compactProposalCodec, m.data).proposal.signature,
          decode(proposalMessageCodec, far.full).proposal.signature,
        ),
    );
  assert.equal(compactOfFar().length, 0, 'a held proposal was sent on before its round');
  // f+1 prevotes of round 1: round 2 is next, the held proposal is handled, accepted, and sent on.
  for (const v of validators.slice(0, 2)) await gossip('vote', prevote(v, 1, null), 'relay');
  await waitUntil('the held proposal to reach the downstream peer', () => compactOfFar().length > 0, {
    timeoutMs: 60_000,
    intervalMs: 5,
  });
  assert.equal(node.driver.farRoundStats.relayed, 1);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(compactOfFar().length, 1, 'relayed more than once');
  assert.ok(!sentToRelay.includes('compact-proposal'), 'sent back to the peer it came from');
});
