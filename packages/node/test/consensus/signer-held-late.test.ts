/**
 * A held fresh signer (no privval.json: its data directory was lost) was released as soon as it
 * had caught up, and then signed at the height under way, the one its lost life may have voted at.
 * Its own earlier messages there that reached it only after the release (a peer's catch-up or
 * re-send coming late, a round later) bound it no more: it signed a second, conflicting vote
 * (equivocation evidence: slashed and tombstoned). It now stays held until that height is decided
 * without it; where it is not (its vote may be needed for the quorum), it is released after a
 * bounded wait, from the round the others are stuck in, never an earlier one (driver.ts
 * `lateSignerFloor`). But for a new chain's launch: caught up at its first block, with an empty
 * store at start and no trace of its key, it is released at once, as at genesis (`launchExempt`).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  blockHash,
  commitHash,
  decode,
  encode,
  equalBytes,
  PrivValidator,
  SIGN_STEP,
  signVote,
  toHex,
  type Vote,
  voteSignBytes,
} from '@unc/core';
import { until } from '@unc/test-utils';
import fc from 'fast-check';
import {
  FRESH_SIGNER_LAUNCH_HEAD,
  FRESH_SIGNER_STUCK_WAIT,
  withRoundFloor,
} from '../../src/consensus/driver.js';
import { voteMessageCodec } from '../../src/consensus/wire.js';
import type { UncNode } from '../../src/node.js';
import { chainServer, readBlockRange } from '../../src/sync.js';
import { MemoryNetworkHub } from './memory-network.js';
import { fourValidatorGenesis, nextHeight, TestNodes, validators } from './test-nodes.js';

const CHAIN = 'unc-dev-1';
const BLOCK_MS = 150;
const TIMEOUTS = {
  proposeMs: 400,
  proposeDeltaMs: 100,
  prevoteMs: 200,
  prevoteDeltaMs: 100,
  precommitMs: 200,
  precommitDeltaMs: 100,
};
/** What the held signer waits, at most, for the height under way to be decided without it. */
const STUCK_MS = FRESH_SIGNER_STUCK_WAIT * (BLOCK_MS + TIMEOUTS.proposeMs);
/**
 * The head the held signer catches up at: past a new chain's first block, where one with no trace
 * of its key is released at once (`launchExempt`; tested below), and H the height under way then.
 */
const HEAD = FRESH_SIGNER_LAUNCH_HEAD + 1n;
const H = HEAD + 1n;
/** A head whose height after next v0 does not propose at round 0 (the restart test). */
const LATER_HEAD = HEAD + 2n;
const genesis = fourValidatorGenesis(BLOCK_MS);
const [v0, v1, v2, v3] = validators as [
  (typeof validators)[0],
  (typeof validators)[0],
  (typeof validators)[0],
  (typeof validators)[0],
];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('a held fresh signer whose own earlier messages come after it caught up', () => {
  const nodes = new TestNodes();
  after(() => nodes.stopAll());

  /**
   * v0 with no privval.json, and one peer `p` that claims a block v0 does not have (and serves
   * none) until told the truth: v0's signer stays held meanwhile. What v0 sends is kept.
   */
  async function heldV0(prefix: string, timeouts = TIMEOUTS, onFatal?: (error: Error) => void, head = HEAD) {
    const hub = new MemoryNetworkHub();
    const peer = { claim: head + 1n, votes: [] as Vote[] };
    hub.join('p', {
      onGossip: (topic, data) => {
        if (topic === 'vote') peer.votes.push(decode(voteMessageCodec, data).vote);
        return 'ignore';
      },
      status: () => ({
        chainId: CHAIN,
        genesisHash: new Uint8Array(32),
        height: peer.claim,
        headHash: new Uint8Array(32),
      }),
      blocks: async () => [],
    });
    const dataDir = mkdtempSync(join(tmpdir(), prefix));
    const node = await nodes.start(hub, genesis, prefix, {
      allowFreshSigner: false,
      timeouts,
      dataDir,
      ...(onFatal ? { onFatal } : {}),
    });
    assert.ok(node.driver.holdingFreshSigner, 'a peer ahead holds the fresh signer');
    assert.equal(node.chain.tipHeight, 0n);
    // Past a new chain's launch (where every validator starts fresh, released at once): v1…v3
    // decide heights 1…head, which v0 follows, held.
    await decideWithoutV0(node, head);
    assert.ok(node.driver.holdingFreshSigner);
    const mine = (height: bigint) =>
      peer.votes.filter((v) => equalBytes(v.validator, v0.publicKey) && v.height === height);
    return { node, peer, mine, hub, dataDir };
  }

  /** v1…v3 decide the heights up to `head`, each in a round v0 does not propose. */
  async function decideWithoutV0(node: UncNode, head: bigint) {
    while (node.chain.height < head) {
      const height = node.chain.height + 1n;
      // The height started (a block interval after the last).
      if (height > 1n) await sleep(4 * BLOCK_MS);
      const h = nextHeight(node);
      const round = [0, 1].find((r) => !equalBytes(h.proposerOf(r).publicKey, v0.publicKey));
      assert.ok(round !== undefined, 'v0 proposes rounds 0 and 1');
      const p = h.proposalFor(round, '0.02');
      assert.equal(await h.gossip('proposal', p.full, 'p'), 'accept');
      for (const v of [v1, v2, v3]) await h.gossip('vote', h.vote(v, 'prevote', round, p.blockHash), 'p');
      for (const v of [v1, v2, v3]) await h.gossip('vote', h.vote(v, 'precommit', round, p.blockHash), 'p');
      await until(`v0 follows height ${height}`, () => node.chain.height >= height, { timeoutMs: 60_000 });
    }
  }

  /** The first round from `from` on whose proposer, and the next round's, are not v0. */
  function roundOfOthers(node: UncNode, from: number) {
    const h = nextHeight(node);
    let round = from;
    const isV0 = (r: number) => equalBytes(h.proposerOf(r).publicKey, v0.publicKey);
    while (isV0(round) || isV0(round + 1)) round++;
    return { h, round };
  }

  test('caught up, it signs nothing at the height under way, and its own late vote there binds nothing it signs', async () => {
    // A long propose timeout: the height is decided well within the wait for a stuck one.
    const { node, peer, mine } = await heldV0('unc-held-late-', { ...TIMEOUTS, proposeMs: 3_000 });
    const h = nextHeight(node);
    // A round the machine takes a proposal in now (rounds further ahead are held for later).
    const round = [0, 1].find((r) => !equalBytes(h.proposerOf(r).publicKey, v0.publicKey));
    assert.ok(round !== undefined, 'v0 proposes rounds 0 and 1');
    const B = h.proposalFor(round, '0.03');
    peer.claim = HEAD;
    // Caught up: before, it was released here, at once, and signed from height H on.
    await sleep(1_500);
    assert.ok(node.driver.holdingFreshSigner, 'released while the height under way is undecided');
    // Before its folder was lost, v0 prevoted A at (H, round); that prevote reaches it only now.
    const A = new Uint8Array(32).fill(0xaa);
    const late = h.vote(v0, 'prevote', round, A);
    await h.gossip('vote', late, 'p');
    const lateSignature = toHex(decode(voteMessageCodec, late).vote.signature);
    assert.equal(await h.gossip('proposal', B.full, 'p'), 'accept');
    for (const v of [v1, v2, v3]) await h.gossip('vote', h.vote(v, 'prevote', round, B.blockHash), 'p');
    for (const v of [v1, v2, v3]) await h.gossip('vote', h.vote(v, 'precommit', round, B.blockHash), 'p');
    await until('v0 follows B at height H', () => node.chain.height >= H, { timeoutMs: 60_000 });
    assert.equal(toHex(node.chain.tip.hash), B.hash);
    // Height H decided without it: released, it signs from height H + 1.
    await until('the signer released', () => !node.driver.holdingFreshSigner, { timeoutMs: 60_000 });
    // Before: v0 prevoted B at (H, round) beside its own prevote for A (duplicate-vote evidence).
    assert.deepEqual(
      mine(H)
        .filter((v) => toHex(v.signature) !== lateSignature)
        .map((v) => `${v.type}@${v.round}`),
      [],
      'v0 signed at height H, where its lost signer voted',
    );
  });

  test('its lost life precommitted at the height it waited out, and that height was decided with it: released, not stopped', async () => {
    // An honest crash: v0 prevoted and precommitted B at height H, then lost its folder. v1 and v2
    // (v3 down) decide B with v0's precommit, so height H's commit holds it. That height was
    // under way when v0 caught up: the lost life stopped there, and v0 signs from height H + 1.
    const fatal: Error[] = [];
    const { node, peer, mine } = await heldV0(
      'unc-held-own-commit-',
      { ...TIMEOUTS, proposeMs: 3_000 },
      (e) => fatal.push(e),
    );
    const h = nextHeight(node);
    const round = [0, 1].find((r) => !equalBytes(h.proposerOf(r).publicKey, v0.publicKey));
    assert.ok(round !== undefined, 'v0 proposes rounds 0 and 1');
    const B = h.proposalFor(round, '0.03');
    peer.claim = HEAD;
    await sleep(1_500);
    assert.ok(node.driver.holdingFreshSigner, 'released while the height under way is undecided');
    assert.equal(await h.gossip('proposal', B.full, 'p'), 'accept');
    const lost = [h.vote(v0, 'prevote', round, B.blockHash), h.vote(v0, 'precommit', round, B.blockHash)];
    const lostSignatures = lost.map((m) => toHex(decode(voteMessageCodec, m).vote.signature));
    for (const m of lost) await h.gossip('vote', m, 'p');
    for (const v of [v1, v2]) await h.gossip('vote', h.vote(v, 'prevote', round, B.blockHash), 'p');
    for (const v of [v1, v2]) await h.gossip('vote', h.vote(v, 'precommit', round, B.blockHash), 'p');
    await until('v0 follows B at height H', () => node.chain.height >= H, { timeoutMs: 60_000 });
    const decided = await node.chain.blockAt(H);
    assert.ok(
      decided?.commit.signatures.some((s) => equalBytes(s.validator, v0.publicKey)),
      "height H's commit holds the lost life's precommit",
    );
    await until('the signer released or stopped', () => !node.driver.holdingFreshSigner || fatal.length > 0, {
      timeoutMs: 60_000,
    });
    // Before: SIGNER_STATE_MISSING, fatal (exit 70), for the very height it had waited out.
    assert.deepEqual(
      fatal.map((e) => e.message),
      [],
    );
    await until('v0 signs at height H + 1', () => mine(H + 1n).length > 0, { timeoutMs: 60_000 });
    assert.deepEqual(
      mine(H)
        .filter((v) => !lostSignatures.includes(toHex(v.signature)))
        .map((v) => `${v.type}@${v.round}`),
      [],
      'v0 signed at height H, where its lost signer voted',
    );
  });

  test('restarted during the wait, it waits again; restarted right after its release, it is not held again', async () => {
    const fatal: Error[] = [];
    const onFatal = (e: Error) => fatal.push(e);
    const timeouts = { ...TIMEOUTS, proposeMs: 3_000 };
    // Caught up at a later head than the other tests: the height after the one it waits out must
    // not be v0's to propose at round 0 (it would sign at once on its release; the proposer order
    // of these chains is fixed, and v0 has round 0 of heights 4 and 5).
    const HEAD = LATER_HEAD;
    const H = HEAD + 1n;
    const held = await heldV0('unc-held-restart-', timeouts, onFatal, HEAD);
    const { peer, hub, dataDir } = held;
    peer.claim = HEAD;
    await sleep(1_500);
    assert.ok(held.node.driver.holdingFreshSigner);
    // A restart during the wait: nothing was saved while held, so it starts held again, and waits
    // out height H again (what it noted is gone; the peers' re-sends bring it back).
    await held.node.stop();
    const restart = () =>
      nodes.start(hub, genesis, 'unc-held-restart-', { allowFreshSigner: false, timeouts, dataDir, onFatal });
    const node = await restart();
    assert.ok(node.driver.holdingFreshSigner, 'released by a restart during the wait');
    await sleep(1_500);
    assert.ok(node.driver.holdingFreshSigner, 'released while the height under way is undecided');
    const h = nextHeight(node);
    const round = [0, 1].find((r) => !equalBytes(h.proposerOf(r).publicKey, v0.publicKey));
    assert.ok(round !== undefined, 'v0 proposes rounds 0 and 1');
    const B = h.proposalFor(round, '0.03');
    assert.equal(await h.gossip('proposal', B.full, 'p'), 'accept');
    // The lost life's prevote and precommit decide height H with v1 and v2.
    for (const v of [v0, v1, v2]) await h.gossip('vote', h.vote(v, 'prevote', round, B.blockHash), 'p');
    for (const v of [v0, v1, v2]) await h.gossip('vote', h.vote(v, 'precommit', round, B.blockHash), 'p');
    await until('v0 follows B at height H', () => node.chain.height >= H, { timeoutMs: 60_000 });
    // Not v0's turn at height H + 1, round 0: it signs nothing there before its propose timeout (3 s).
    assert.ok(!equalBytes(nextHeight(node).proposerOf(0).publicKey, v0.publicKey));
    await until('the signer released', () => !node.driver.holdingFreshSigner || fatal.length > 0, {
      timeoutMs: 60_000,
      intervalMs: 5,
    });
    assert.deepEqual(
      fatal.map((e) => e.message),
      [],
    );
    // Restarted before its first signature: the start guard, which finds the lost life's precommit
    // at height H, must find its signer state too (saved once the released machine starts).
    await node.stop();
    assert.deepEqual(
      held.mine(H + 1n).map((v) => `${v.type}@${v.round}`),
      [],
      'v0 signed at height H + 1 before the restart: nothing tested',
    );
    const again = await restart();
    assert.equal(again.driver.holdingFreshSigner, false, 'held again after its release');
    assert.deepEqual(
      fatal.map((e) => e.message),
      [],
    );
  });

  test('its key precommitted at a height decided after the one it waited out: a signer alive meanwhile, fatal', async () => {
    const fatal: Error[] = [];
    const { node, peer } = await heldV0('unc-held-twin-', { ...TIMEOUTS, proposeMs: 3_000 }, (e) =>
      fatal.push(e),
    );
    peer.claim = HEAD;
    await sleep(1_500);
    assert.ok(node.driver.holdingFreshSigner, 'released while the height under way is undecided');
    // A peer ahead again keeps it from trying to release while heights H and H + 1 are decided.
    peer.claim = H + 2n;
    const decide = async (signers: (typeof validators)[0][]) => {
      // The height started (a block interval after the last), in a round it takes a proposal in now.
      await sleep(4 * BLOCK_MS);
      const h = nextHeight(node);
      const round = [0, 1].find((r) => !equalBytes(h.proposerOf(r).publicKey, v0.publicKey));
      assert.ok(round !== undefined, 'v0 proposes rounds 0 and 1');
      const B = h.proposalFor(round, '0.03');
      const before = node.chain.height;
      assert.equal(await h.gossip('proposal', B.full, 'p'), 'accept');
      for (const v of signers) await h.gossip('vote', h.vote(v, 'prevote', round, B.blockHash), 'p');
      for (const v of signers) await h.gossip('vote', h.vote(v, 'precommit', round, B.blockHash), 'p');
      await until('the height decided', () => node.chain.height > before, { timeoutMs: 60_000 });
    };
    await decide([v1, v2, v3]);
    // Height 3 was under way only after this node caught up: a process signing with this key then.
    await decide([v0, v1, v2]);
    assert.equal(node.chain.height, H + 1n);
    peer.claim = H + 1n;
    await until('the signer stopped or released', () => fatal.length > 0 || !node.driver.holdingFreshSigner, {
      timeoutMs: 60_000,
    });
    assert.equal(fatal.length, 1, 'released although its key signed at a height decided while it waited');
    assert.match(fatal[0]!.message, new RegExp(`at height\\(s\\) ${H + 1n}:`));
    assert.ok(node.driver.holdingFreshSigner);
  });

  test('its vote needed for the quorum: released after a bounded wait, from the round the others are in, and the chain goes on', async () => {
    const { node, peer, mine } = await heldV0('unc-held-stuck-');
    const { h, round } = roundOfOthers(node, 2);
    // v3 is down; v1 and v2 (half the power) cannot decide without v0. They are stuck in `round`
    // (their nil prevotes there take the held machine to it: over a third of the power).
    const stuck = [v1, v2].map((v) => h.vote(v, 'prevote', round, null));
    for (const m of stuck) await h.gossip('vote', m, 'p');
    peer.claim = HEAD;
    const caughtUpAt = Date.now();
    await until('the signer released', () => !node.driver.holdingFreshSigner, { timeoutMs: 60_000 });
    const heldMs = Date.now() - caughtUpAt;
    assert.ok(heldMs >= STUCK_MS / 2, `released after ${heldMs} ms, not after waiting for the height`);
    // The height is started again on release, at round 0; past its propose timeout there (a
    // re-send lost, or slow), the peers' re-sends take it to `round` again.
    await sleep(2 * TIMEOUTS.proposeMs);
    for (const m of stuck) await h.gossip('vote', m, 'p');
    await until('v0 prevotes nil in the round the others are stuck in', () =>
      mine(H).some((v) => v.type === 'prevote' && v.round === round && v.blockHash === null),
    );
    // Before: released at once on a machine started at round 0, it prevoted nil at (H, 0), a round
    // its lost signer may have voted in, unseen.
    assert.deepEqual(
      mine(H)
        .filter((v) => v.round < round)
        .map((v) => `${v.type}@${v.round}`),
      [],
      'v0 signed at a round before the one it was released at',
    );
    // Liveness: with v0, v1 and v2 (3/4 of the power) the height is decided.
    for (const v of [v1, v2]) await h.gossip('vote', h.vote(v, 'precommit', round, null), 'p');
    await until('v0 precommits nil in that round', () =>
      mine(H).some((v) => v.type === 'precommit' && v.round === round),
    );
    const B = h.proposalFor(round + 1, '0.03');
    assert.equal(await h.gossip('proposal', B.full, 'p'), 'accept');
    for (const v of [v1, v2]) await h.gossip('vote', h.vote(v, 'prevote', round + 1, B.blockHash), 'p');
    for (const v of [v1, v2]) await h.gossip('vote', h.vote(v, 'precommit', round + 1, B.blockHash), 'p');
    await until('height H decided with v0', () => node.chain.height >= H, { timeoutMs: 60_000 });
    assert.equal(toHex(node.chain.tip.hash), B.hash);
    assert.ok(
      mine(H).some(
        (v) =>
          v.type === 'precommit' &&
          v.round === round + 1 &&
          v.blockHash !== null &&
          equalBytes(v.blockHash, B.blockHash),
      ),
      'v0 precommitted B',
    );
  });

  test("a new chain's validator caught up at the first block, with no trace of its key: released at once, it signs at height 2", async () => {
    // A propose timeout so long that the bounded wait (3 × (block interval + propose timeout),
    // 180 s) cannot release it within the test's 60 s: only the launch exemption can.
    const { node, peer, mine } = await heldV0(
      'unc-held-launch-',
      { ...TIMEOUTS, proposeMs: 60_000 },
      undefined,
      1n,
    );
    peer.claim = 1n;
    // Before: held until height 2 was decided without it (each such validator of a new chain sat
    // out a height: the simulator's peer-catch-up run sent 4.2 times the calm run's messages).
    await until('the signer released', () => !node.driver.holdingFreshSigner, { timeoutMs: 60_000 });
    assert.equal(node.chain.height, 1n, 'released only once height 2 was decided');
    const h = nextHeight(node);
    if (!equalBytes(h.proposerOf(0).publicKey, v0.publicKey)) {
      const B = h.proposalFor(0, '0.03');
      assert.equal(await h.gossip('proposal', B.full, 'p'), 'accept');
    }
    await until(
      'v0 prevotes at height 2',
      () => mine(2n).some((v) => v.type === 'prevote' && v.round === 0),
      {
        timeoutMs: 60_000,
      },
    );
  });

  test("a new chain's first block, but its key's precommit there came late: a trace of its lost life, held", async () => {
    const { node, peer } = await heldV0(
      'unc-held-launch-trace-',
      { ...TIMEOUTS, proposeMs: 60_000 },
      undefined,
      1n,
    );
    // v0's lost life precommitted block 1 too, after the quorum (not in commit 1): it comes late.
    const block1 = await node.chain.blockAt(1n);
    assert.ok(block1);
    assert.ok(!block1.commit.signatures.some((s) => equalBytes(s.validator, v0.publicKey)));
    const lostPrecommit: Vote = signVote(
      CHAIN,
      {
        type: 'precommit',
        height: 1n,
        round: block1.commit.round,
        blockHash: node.chain.tip.hash,
        validator: v0.publicKey,
      },
      v0.seed,
    );
    const late = encode(voteMessageCodec, { vote: lostPrecommit, sentAt: 1n });
    await node.driver.handlers().onGossip('vote', late, 'p');
    peer.claim = 1n;
    await sleep(1_500);
    // Without the trace condition: released at once, at the height its lost life went on to.
    assert.ok(node.driver.holdingFreshSigner, 'released at a launch although its key signed there');
  });

  test("a new chain's first block, its key's precommit there only in the next proposal's last commit: a trace of its lost life, held", async () => {
    // v0's lost life precommitted block 1 (then lost its folder). The height-2 proposer gathered
    // that precommit into its commit of block 1, the one its proposal carries; the commit v0 holds
    // (gathered here while held) lacks it, and no vote of its key reached it on its own.
    const timeouts = { ...TIMEOUTS, proposeMs: 60_000 };
    const source = await nodes.start(new MemoryNetworkHub(), genesis, 'unc-held-launch-lc-src-', {
      fullNode: true,
      timeouts,
    });
    const h1 = nextHeight(source);
    const round = [0, 1].find((r) => !equalBytes(h1.proposerOf(r).publicKey, v0.publicKey));
    assert.ok(round !== undefined, 'v0 proposes rounds 0 and 1');
    const B = h1.proposalFor(round, '0.02');
    const prevotes = [v1, v2, v3].map((v) => h1.vote(v, 'prevote', round, B.blockHash));
    const precommits = [v0, v1, v2, v3].map((v) => h1.vote(v, 'precommit', round, B.blockHash));
    assert.equal(await h1.gossip('proposal', B.full, 'p'), 'accept');
    for (const m of prevotes) await h1.gossip('vote', m, 'p');
    for (const m of precommits) await h1.gossip('vote', m, 'p');
    await until('the source decides block 1', () => source.chain.height >= 1n, { timeoutMs: 60_000 });
    const withV0 = await source.chain.blockAt(1n);
    assert.ok(withV0, 'block 1 stored');
    assert.ok(withV0.commit.signatures.some((s) => equalBytes(s.validator, v0.publicKey)));
    // v0, fresh on an empty folder, follows block 1 held (a peer claims height 2), without v0's precommit.
    const hub = new MemoryNetworkHub();
    const peer = { claim: 2n };
    hub.join('p', {
      onGossip: () => 'ignore',
      status: () => ({
        chainId: CHAIN,
        genesisHash: new Uint8Array(32),
        height: peer.claim,
        headHash: new Uint8Array(32),
      }),
      blocks: async () => [],
    });
    const node = await nodes.start(hub, genesis, 'unc-held-launch-lc-', {
      allowFreshSigner: false,
      timeouts,
    });
    assert.ok(node.driver.holdingFreshSigner);
    const gossip = node.driver.handlers().onGossip;
    assert.equal(await gossip('proposal', B.full, 'p'), 'accept');
    for (const m of prevotes) await gossip('vote', m, 'p');
    for (const m of precommits.slice(1)) await gossip('vote', m, 'p');
    await until('v0 follows block 1', () => node.chain.height >= 1n, { timeoutMs: 60_000 });
    const held = await node.chain.blockAt(1n);
    assert.ok(held && !held.commit.signatures.some((s) => equalBytes(s.validator, v0.publicKey)));
    // The height-2 proposal, built on the source's commit of block 1 (v0's precommit in it).
    const h2 = nextHeight(source);
    const r2 = [0, 1].find((r) => !equalBytes(h2.proposerOf(r).publicKey, v0.publicKey));
    assert.ok(r2 !== undefined, 'v0 proposes rounds 0 and 1 at height 2');
    const C = h2.proposalFor(r2, '0.03');
    assert.ok(
      equalBytes(C.block.header.lastCommitHash, commitHash(withV0.commit)),
      'built on the commit with v0',
    );
    await sleep(4 * BLOCK_MS);
    assert.equal(await gossip('proposal', C.full, 'p'), 'accept');
    peer.claim = 1n;
    await sleep(1_500);
    // Before: released at once (`launchExempt`), to sign at height 2, where its lost life went on.
    assert.ok(node.driver.holdingFreshSigner, 'released at a launch although its key precommitted block 1');
  });

  test("a new chain's first block proposed by its key, its precommit left out of commit 1: a trace in the chain itself, fatal", async () => {
    // v0's lost life proposed block 1 (its key is the header's proposer: it signed the proposal and
    // the VRF proof), then lost its folder; v1…v3 decided it, and commit 1 holds only their three
    // precommits (a commit holds those its proposer gathered). Its lost life went on to height 2.
    const timeouts = { ...TIMEOUTS, proposeMs: 60_000 };
    const source = await nodes.start(new MemoryNetworkHub(), genesis, 'unc-held-launch-src-', {
      fullNode: true,
      timeouts,
    });
    const h = nextHeight(source);
    const round = [0, 1, 2, 3, 4, 5, 6, 7].find((r) => equalBytes(h.proposerOf(r).publicKey, v0.publicKey));
    assert.ok(round !== undefined, 'v0 proposes none of rounds 0…7 at height 1');
    const B = h.proposalFor(round, '0.03');
    // The others' prevotes (over a third of the power) take the machine to v0's round.
    for (const v of [v1, v2, v3]) await h.gossip('vote', h.vote(v, 'prevote', round, B.blockHash), 'p');
    await h.gossip('proposal', B.full, 'p');
    for (const v of [v1, v2, v3]) await h.gossip('vote', h.vote(v, 'precommit', round, B.blockHash), 'p');
    await until('block 1 decided', () => source.chain.height >= 1n, { timeoutMs: 60_000 });
    const block1 = await source.chain.blockAt(1n);
    assert.ok(block1 && equalBytes(block1.header.proposer, v0.publicKey), "block 1 is v0's");
    assert.ok(!block1.commit.signatures.some((s) => equalBytes(s.validator, v0.publicKey)));
    // v0 starts again on an empty folder, and syncs block 1 from a peer: it sees no message of its key.
    const hub = new MemoryNetworkHub();
    hub.join('p', { onGossip: () => 'ignore', ...chainServer(source.chain) });
    const fatal: Error[] = [];
    const node = await nodes.start(hub, genesis, 'unc-held-launch-proposer-', {
      allowFreshSigner: false,
      timeouts,
      onFatal: (e) => fatal.push(e),
    });
    await until('the signer released or stopped', () => !node.driver.holdingFreshSigner || fatal.length > 0, {
      timeoutMs: 60_000,
    });
    assert.equal(node.chain.height, 1n);
    // Before: released at once (`launchExempt`), to sign at height 2, where its lost life went on.
    assert.ok(node.driver.holdingFreshSigner, 'released although its key proposed block 1');
    assert.equal(fatal.length, 1);
    assert.match(fatal[0]!.message, /at height\(s\) 1:/);
  });

  test('first caught up with a peer behind the network, then synced further: it waits out the height after the one it synced to', async () => {
    // The network is at height 3 (decided by v1…v3; v0's lost life was voting at height 4), but the
    // one peer that answers v0 at first is one height behind, at 2: v0 takes 2 for the network's
    // head, and would wait out height 3, decided already.
    const timeouts = { ...TIMEOUTS, proposeMs: 60_000 };
    const source = await nodes.start(new MemoryNetworkHub(), genesis, 'unc-held-lagging-src-', {
      fullNode: true,
      timeouts,
    });
    await decideWithoutV0(source, 3n);
    const hashes = new Map<bigint, Uint8Array>();
    for (let height = 1n; height <= 3n; height++) {
      const block = await source.chain.blockAt(height);
      assert.ok(block);
      hashes.set(height, blockHash(block.header));
    }
    const lagging = { upTo: 2n };
    const hub = new MemoryNetworkHub();
    hub.join('p', {
      onGossip: () => 'ignore',
      status: () => ({
        chainId: CHAIN,
        genesisHash: source.chain.genesisHash,
        height: lagging.upTo,
        headHash: hashes.get(lagging.upTo)!,
      }),
      blocks: (from, to, take) =>
        readBlockRange(from, to < lagging.upTo ? to : lagging.upTo, source.chain, take),
    });
    const node = await nodes.start(hub, genesis, 'unc-held-lagging-', { allowFreshSigner: false, timeouts });
    await sleep(1_500);
    assert.equal(node.chain.height, 2n);
    assert.ok(node.driver.holdingFreshSigner, 'released while the height after its head is undecided');
    // The peer catches up with the network: v0 syncs height 3.
    lagging.upTo = 3n;
    await until('v0 syncs to height 3', () => node.chain.height >= 3n, { timeoutMs: 60_000 });
    await sleep(1_500);
    // Before: released at once (its head passed the one it first caught up at), signing at
    // height 4, where its lost life voted.
    assert.ok(node.driver.holdingFreshSigner, 'released at the height its lost life was voting at');
  });

  test('released before the next height starts: its signer state is on disk at once', async () => {
    // A long block interval: the height after the head starts 3 s after block 1's time. v0 syncs
    // block 1 at its start and is released there (`launchExempt`), before the height starts.
    const slow = fourValidatorGenesis(3_000);
    const source = await nodes.start(new MemoryNetworkHub(), slow, 'unc-held-saved-src-', {
      fullNode: true,
      timeouts: TIMEOUTS,
    });
    await decideWithoutV0(source, 1n);
    const hub = new MemoryNetworkHub();
    hub.join('p', { onGossip: () => 'ignore', ...chainServer(source.chain) });
    const dataDir = mkdtempSync(join(tmpdir(), 'unc-held-saved-'));
    const node = await nodes.start(hub, slow, 'unc-held-saved-', {
      allowFreshSigner: false,
      timeouts: TIMEOUTS,
      dataDir,
    });
    assert.equal(node.chain.height, 1n);
    assert.equal(node.driver.holdingFreshSigner, false, 'released at its start');
    // Before: written only once the machine first ran at height 2, seconds later; a restart
    // meanwhile found no signer state (held again, or refused where its lost life's precommit is
    // in the height it waited out).
    assert.ok(existsSync(join(dataDir, 'privval.json')), 'released, its signer state not on disk');
  });

  test("a new chain's first block, but its store held blocks when it started: an earlier life of this folder, held", async () => {
    const first = await heldV0('unc-held-launch-store-', { ...TIMEOUTS, proposeMs: 60_000 }, undefined, 1n);
    await first.node.stop();
    // Its privval.json lost, its chain store kept (block 1, decided on this folder).
    const node = await nodes.start(first.hub, genesis, 'unc-held-launch-store-', {
      allowFreshSigner: false,
      timeouts: { ...TIMEOUTS, proposeMs: 60_000 },
      dataDir: first.dataDir,
    });
    assert.equal(node.chain.tipHeight, 1n);
    first.peer.claim = 1n;
    await sleep(1_500);
    assert.ok(
      node.driver.holdingFreshSigner,
      'released at a launch although an earlier life decided blocks here',
    );
  });
});

describe('withRoundFloor', () => {
  const A = new Uint8Array(32).fill(1);
  test('refuses every round of the height before the floor, keeps a later state and the lock', () => {
    assert.equal(withRoundFloor(null, 5n, 0), null);
    const floored = withRoundFloor(null, 5n, 3);
    assert.deepEqual(floored && [floored.height, floored.round, floored.step, floored.signature], [
      5n,
      3,
      0,
      null,
    ]);
    const lock: Vote = {
      type: 'precommit',
      height: 5n,
      round: 1,
      blockHash: A,
      validator: v0.publicKey,
      signature: new Uint8Array(64),
    };
    const seen = {
      height: 5n,
      round: 1,
      step: SIGN_STEP.precommit,
      signBytes: new Uint8Array(1),
      signature: new Uint8Array(64),
      lock,
      votes: [lock],
    };
    const raised = withRoundFloor(seen, 5n, 3);
    assert.equal(raised?.round, 3);
    assert.equal(raised?.lock, lock, 'starts locked as its seen precommit left it');
    assert.equal(withRoundFloor({ ...seen, round: 4 }, 5n, 3)?.round, 4, 'a later seen slot stands');
  });

  test('property: a signer released with a round floor signs nothing at the height before it, nor against a seen vote', () => {
    const H = 7n;
    const hashOf = (n: number | null) => (n === null ? null : new Uint8Array(32).fill(n + 1));
    const slot = fc.record({
      type: fc.constantFrom('prevote' as const, 'precommit' as const),
      height: fc.bigInt({ min: H - 1n, max: H + 1n }),
      round: fc.integer({ min: 0, max: 5 }),
      hash: fc.option(fc.integer({ min: 0, max: 2 }), { nil: null }),
    });
    type Slot = { type: 'prevote' | 'precommit'; height: bigint; round: number; hash: number | null };
    const unsigned = (m: Slot) => ({
      type: m.type,
      height: m.height,
      round: m.round,
      blockHash: hashOf(m.hash),
      validator: v0.publicKey,
    });
    fc.assert(
      fc.property(
        fc.option(slot, { nil: null }),
        fc.integer({ min: 0, max: 5 }),
        fc.array(slot),
        (seenSlot, floor, tries) => {
          const seenVote = seenSlot && signVote(CHAIN, unsigned({ ...seenSlot, height: H }), v0.seed);
          const seen = seenVote && {
            height: H,
            round: seenVote.round,
            step: SIGN_STEP[seenVote.type],
            signBytes: voteSignBytes(CHAIN, seenVote),
            signature: seenVote.signature,
            lock: seenVote.type === 'precommit' && seenVote.blockHash ? seenVote : null,
            votes: [seenVote],
          };
          const state = withRoundFloor(seen, H, floor);
          const signer = new PrivValidator(v0.seed, CHAIN, state ?? undefined);
          for (const m of tries) {
            if (m.height < H) continue; // released at H - 1: it signs only from H on
            const out = signer.signVote(unsigned(m));
            if (!out || m.height !== H) continue;
            if (seenVote && equalBytes(out.signature, seenVote.signature)) continue;
            assert.ok(m.round >= floor, `signed ${m.type} at round ${m.round} under the floor ${floor}`);
            if (seenVote)
              assert.ok(
                m.round > seenVote.round ||
                  (m.round === seenVote.round && SIGN_STEP[m.type] > SIGN_STEP[seenVote.type]),
                `signed ${m.type}@${m.round} at or before the seen ${seenVote.type}@${seenVote.round}`,
              );
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
