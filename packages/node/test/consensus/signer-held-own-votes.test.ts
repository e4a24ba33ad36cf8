/**
 * A held fresh signer (no privval.json: its data directory was lost) was released once caught up
 * and the last commits it held showed no precommit of its key, and then signed from the height
 * after its head as if it had never signed there. But the lost node may have voted at that
 * undecided height (a prevote and precommit of a round that decided nothing yet), and its peers
 * re-send those votes: released, it signed a second, conflicting vote in the same slot
 * (equivocation: slashed and tombstoned). The driver now notes every message of its own key seen
 * above the head while held, and releases the signer with the state they prove
 * (signer-guard.ts `OwnSignaturesAbove`), so the signer refuses any conflicting signature there.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  decode,
  defaultVerify,
  encode,
  equalBytes,
  PrivValidator,
  proposalSignBytes,
  SIGN_STEP,
  signProposal,
  signVote,
  toHex,
  type Vote,
  voteSignBytes,
} from '@unc/core';
import { until } from '@unc/test-utils';
import fc from 'fast-check';
import { loadPrivval } from '../../src/consensus/privval-store.js';
import { OwnSignaturesAbove } from '../../src/consensus/signer-guard.js';
import { voteMessageCodec } from '../../src/consensus/wire.js';
import type { UncNode } from '../../src/node.js';
import { MemoryNetworkHub } from './memory-network.js';
import { fourValidatorGenesis, nextHeight, TestNodes, validators } from './test-nodes.js';

const CHAIN = 'unc-dev-1';
const TIMEOUTS = {
  // Long enough that the round the test plays is still the machine's when its messages come.
  proposeMs: 3_000,
  proposeDeltaMs: 100,
  prevoteMs: 200,
  prevoteDeltaMs: 100,
  precommitMs: 200,
  precommitDeltaMs: 100,
};
const genesis = fourValidatorGenesis(150);
const [v0, v1, v2, v3] = validators as [
  (typeof validators)[0],
  (typeof validators)[0],
  (typeof validators)[0],
  (typeof validators)[0],
];

describe('a held fresh signer that sees its own votes above its head', () => {
  const nodes = new TestNodes();
  after(() => nodes.stopAll());

  /**
   * v0 with no privval.json, and one peer `p` that claims a block v0 does not have (and serves
   * none) until told the truth: v0's signer stays held meanwhile. What v0 sends is kept.
   */
  async function heldV0(prefix: string) {
    const hub = new MemoryNetworkHub();
    const peer = { claim: 1n, votes: [] as Vote[] };
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
      timeouts: TIMEOUTS,
      dataDir,
    });
    assert.ok(node.driver.holdingFreshSigner, 'a peer ahead holds the fresh signer');
    assert.equal(node.chain.tipHeight, 0n);
    return { node, peer, privval: join(dataDir, 'privval.json') };
  }

  /** The first round of height 1 that v0 does not propose, and a block B proposed there. */
  function roundOfOther(node: UncNode) {
    const h = nextHeight(node);
    let round = 0;
    while (equalBytes(h.proposerOf(round).publicKey, v0.publicKey)) round++;
    return { h, round, B: h.proposalFor(round, '0.03') };
  }

  /** Released: B is proposed at `round`, v1…v3 prevote and precommit it, and v0 decides it. */
  async function playRound(node: UncNode, peer: { claim: bigint }, ctx: ReturnType<typeof roundOfOther>) {
    const { h, round, B } = ctx;
    peer.claim = 0n;
    await until('the signer released', () => !node.driver.holdingFreshSigner, { timeoutMs: 60_000 });
    assert.equal(await h.gossip('proposal', B.full, 'p'), 'accept');
    for (const v of [v1, v2, v3]) await h.gossip('vote', h.vote(v, 'prevote', round, B.blockHash), 'p');
    for (const v of [v1, v2, v3]) await h.gossip('vote', h.vote(v, 'precommit', round, B.blockHash), 'p');
    await until('v0 decides B at height 1', () => node.chain.tipHeight >= 1n, { timeoutMs: 60_000 });
    assert.equal(toHex(node.chain.tip.hash), B.hash);
  }

  test('released, it signs no vote conflicting with its own prevote and precommit seen at the undecided height', async () => {
    const { node, peer, privval } = await heldV0('unc-held-own-');
    const ctx = roundOfOther(node);
    const { h, round } = ctx;
    // Before its folder was lost, v0 prevoted and precommitted block A at (1, round); the others
    // never decided A, and a peer re-sends v0's votes while v0 is held.
    const A = new Uint8Array(32).fill(0xaa);
    const ownPrevote = h.vote(v0, 'prevote', round, A);
    const ownPrecommit = h.vote(v0, 'precommit', round, A);
    assert.equal(await h.gossip('vote', ownPrevote, 'p'), 'accept');
    assert.equal(await h.gossip('vote', ownPrecommit, 'p'), 'accept');
    const own = [ownPrevote, ownPrecommit].map((m) => toHex(decode(voteMessageCodec, m).vote.signature));

    await playRound(node, peer, ctx);
    // Before: released at height 1 with a signer that remembered nothing, v0 prevoted and
    // precommitted B at (1, round): two votes conflicting with its own, each evidence against it.
    const conflicting = peer.votes.filter(
      (v) => equalBytes(v.validator, v0.publicKey) && v.height === 1n && !own.includes(toHex(v.signature)),
    );
    assert.deepEqual(
      conflicting.map((v) => `${v.type}@${v.round}`),
      [],
      'v0 signed other votes at height 1 than its own seen ones',
    );
    const stored = loadPrivval(privval, v0.publicKey);
    assert.ok(stored, 'the released signer saved its state');
    assert.equal(stored.state.height, 1n);
    assert.equal(stored.state.round, round);
    assert.equal(stored.state.step, SIGN_STEP.precommit);
    assert.ok(stored.state.lock?.blockHash && equalBytes(stored.state.lock.blockHash, A), 'locked on A');
    assert.ok(stored.state.signature && own.includes(toHex(stored.state.signature)));
  });

  test('released with its own votes seen, it saves that state before it signs anything', async () => {
    const { node, peer, privval } = await heldV0('unc-held-save-');
    const h = nextHeight(node);
    // The lost node precommitted A at (1, 3): released, the signer refuses everything at height 1
    // up to that slot, so no new signature saves the state before round 4. A crash meanwhile must
    // not lose what it saw: restarted held, with the peers no longer re-sending those votes, it
    // could be released fresh and sign against them. (The height's start saves it.)
    const A = new Uint8Array(32).fill(0xaa);
    assert.equal(await h.gossip('vote', h.vote(v0, 'prevote', 3, A), 'p'), 'accept');
    assert.equal(await h.gossip('vote', h.vote(v0, 'precommit', 3, A), 'p'), 'accept');
    peer.claim = 0n;
    await until('the signer released', () => !node.driver.holdingFreshSigner, { timeoutMs: 60_000 });
    const stored = loadPrivval(privval, v0.publicKey);
    assert.ok(stored, 'the state seen is on disk at release');
    assert.equal(stored.state.height, 1n);
    assert.equal(stored.state.round, 3);
    assert.equal(stored.state.step, SIGN_STEP.precommit);
    assert.ok(stored.state.lock?.blockHash && equalBytes(stored.state.lock.blockHash, A));
  });

  test('a forged "own" vote (the signature is another key\'s) does not hold it back', async () => {
    const { node, peer } = await heldV0('unc-held-forged-');
    const ctx = roundOfOther(node);
    const { h, round, B } = ctx;
    const A = new Uint8Array(32).fill(0xaa);
    // v0's name on a precommit for A at (1, round), signed by v1: gossip rejects it, and the
    // driver's own check would not count it either.
    const unsigned = { type: 'precommit' as const, height: 1n, round, blockHash: A };
    const forged = {
      ...unsigned,
      validator: v0.publicKey,
      signature: signVote(CHAIN, { ...unsigned, validator: v1.publicKey }, v1.seed).signature,
    };
    const data = encode(voteMessageCodec, { vote: forged, sentAt: 1n });
    assert.equal(await h.gossip('vote', data, 'p'), 'reject');

    await playRound(node, peer, ctx);
    await until(
      'v0 to precommit B at height 1',
      () =>
        peer.votes.some(
          (v) =>
            equalBytes(v.validator, v0.publicKey) &&
            v.height === 1n &&
            v.type === 'precommit' &&
            v.round === round &&
            v.blockHash !== null &&
            equalBytes(v.blockHash, B.blockHash),
        ),
      { timeoutMs: 60_000 },
    );
    const mine = peer.votes.filter((v) => equalBytes(v.validator, v0.publicKey) && v.height === 1n);
    assert.ok(mine.every((v) => v.blockHash === null || !equalBytes(v.blockHash, A)));
  });

  test('its own genuine vote at a far height (another chain, same chain id) does not stop it signing', async () => {
    const { node, peer } = await heldV0('unc-held-far-');
    const ctx = roundOfOther(node);
    const { h, round, B } = ctx;
    // The same key and chain id on another chain (a relaunch, a test chain): a precommit there at
    // height 1000 is genuine here too. Kept for a later height, it is no sign that v0 voted at
    // height 1, the one it will sign at: before, the released signer's state began at 1000, and
    // it signed nothing until this chain got there.
    const far = signVote(
      CHAIN,
      {
        type: 'precommit',
        height: 1_000n,
        round: 0,
        blockHash: new Uint8Array(32).fill(0xbb),
        validator: v0.publicKey,
      },
      v0.seed,
    );
    assert.equal(await h.gossip('vote', encode(voteMessageCodec, { vote: far, sentAt: 1n }), 'p'), 'ignore');
    await playRound(node, peer, ctx);
    await until(
      'v0 to precommit B at height 1',
      () =>
        peer.votes.some(
          (v) =>
            equalBytes(v.validator, v0.publicKey) &&
            v.height === 1n &&
            v.type === 'precommit' &&
            v.round === round &&
            v.blockHash !== null &&
            equalBytes(v.blockHash, B.blockHash),
        ),
      { timeoutMs: 60_000 },
    );
  });
});

describe('OwnSignaturesAbove', () => {
  const HEAD = 5n;
  const other = validators[1]!;
  const seen = () => new OwnSignaturesAbove(CHAIN, v0.publicKey, defaultVerify);

  test('counts only messages of its own key, signed by it, above the head', () => {
    const own = seen();
    const A = new Uint8Array(32).fill(1);
    const vote = (height: bigint, seed = v0.seed, validator = v0.publicKey) =>
      signVote(CHAIN, { type: 'precommit', height, round: 0, blockHash: A, validator }, seed);
    assert.equal(own.noteVote(vote(6n, other.seed), HEAD), false, 'signed by another key');
    assert.equal(own.noteVote(vote(6n, other.seed, other.publicKey), HEAD), false, 'another key');
    assert.equal(own.noteVote(vote(5n), HEAD), false, 'at the head');
    assert.equal(own.noteVote(vote(2n), HEAD), false, 'below the head');
    const forgedProposal = {
      ...signProposal(
        CHAIN,
        { height: 6n, round: 1, polRound: -1, blockHash: A, proposer: v0.publicKey },
        other.seed,
      ),
    };
    assert.equal(own.noteProposal(forgedProposal, HEAD), false, 'a proposal signed by another key');
    assert.equal(own.stateAbove(HEAD), null);
    assert.equal(own.noteVote(vote(6n), HEAD), true);
    assert.equal(own.stateAbove(HEAD)?.height, 6n);
    // Once the head reached it, it proves nothing the commits do not: no state.
    assert.equal(own.stateAbove(6n), null);
  });

  test('a far height says nothing of the height it releases at, and hides no nearer one', () => {
    const own = seen();
    const A = new Uint8Array(32).fill(1);
    const vote = (height: bigint, round = 0) =>
      signVote(CHAIN, { type: 'precommit', height, round, blockHash: A, validator: v0.publicKey }, v0.seed);
    // Another chain with this chain id and key: genuine here, at any height.
    assert.equal(own.noteVote(vote(1_000_000n), HEAD), true);
    assert.equal(own.stateAbove(HEAD), null, 'released at HEAD, it signs from HEAD + 1 on');
    // The lost node's own precommit at the undecided height, seen after the far one, still counts.
    assert.equal(own.noteVote(vote(HEAD + 1n, 2), HEAD), true);
    const state = own.stateAbove(HEAD);
    assert.equal(state?.height, HEAD + 1n);
    assert.equal(state?.round, 2);
  });

  test('bounded: heights pile up to a fixed number, the nearest kept', () => {
    const own = seen();
    const A = new Uint8Array(32).fill(1);
    const vote = (height: bigint) =>
      signVote(CHAIN, { type: 'prevote', height, round: 0, blockHash: A, validator: v0.publicKey }, v0.seed);
    for (let h = 1_000n; h > HEAD; h--) own.noteVote(vote(h), HEAD);
    for (let h = 2_000n; h < 2_100n; h++) own.noteVote(vote(h), HEAD);
    assert.ok(own.heightsKept <= 8, `kept ${own.heightsKept} heights`);
    assert.equal(own.stateAbove(HEAD)?.height, HEAD + 1n);
    // Heights the head passed are dropped.
    own.noteVote(vote(HEAD + 5n), HEAD + 3n);
    assert.equal(own.stateAbove(HEAD + 3n)?.height, HEAD + 4n);
  });

  test('property: a signer released with the state seen signs nothing conflicting with a message seen at head + 1, nor before the latest there', () => {
    type Msg = {
      kind: 'proposal' | 'prevote' | 'precommit';
      height: bigint;
      round: number;
      hash: number | null;
    };
    const msg = fc.record({
      kind: fc.constantFrom('proposal' as const, 'prevote' as const, 'precommit' as const),
      height: fc.bigInt({ min: 3n, max: 8n }),
      round: fc.integer({ min: 0, max: 3 }),
      hash: fc.option(fc.integer({ min: 0, max: 2 }), { nil: null }),
    });
    const hashOf = (n: number | null) => (n === null ? null : new Uint8Array(32).fill(n + 1));
    const signed = (m: Msg, seed: Uint8Array) => {
      const blockHash = hashOf(m.hash) ?? new Uint8Array(32);
      if (m.kind === 'proposal') {
        const p = signProposal(
          CHAIN,
          { height: m.height, round: m.round, polRound: -1, blockHash, proposer: v0.publicKey },
          seed,
        );
        return { p, bytes: proposalSignBytes(CHAIN, p) };
      }
      const v = signVote(
        CHAIN,
        {
          type: m.kind,
          height: m.height,
          round: m.round,
          blockHash: hashOf(m.hash),
          validator: v0.publicKey,
        },
        seed,
      );
      return { v, bytes: voteSignBytes(CHAIN, v) };
    };
    const slot = (m: Msg) => [m.height, m.round, SIGN_STEP[m.kind]] as const;
    const before = (a: Msg, b: Msg) => {
      const [ha, ra, sa] = slot(a);
      const [hb, rb, sb] = slot(b);
      return ha !== hb ? ha < hb : ra !== rb ? ra < rb : sa <= sb;
    };
    fc.assert(
      fc.property(
        fc.array(fc.record({ m: msg, forged: fc.boolean() }), { maxLength: 12 }),
        fc.array(msg, { maxLength: 24 }),
        (heard, attempts) => {
          const own = seen();
          const genuine: { m: Msg; bytes: Uint8Array }[] = [];
          for (const { m, forged } of heard) {
            const s = signed(m, forged ? other.seed : v0.seed);
            if ('p' in s && s.p) own.noteProposal(s.p, HEAD);
            else if ('v' in s && s.v) own.noteVote(s.v, HEAD);
            // Only head + 1 binds the released signer: the lost node signed at no height above it
            // once this node caught up, and a later one (another chain) must not stop it signing.
            if (!forged && m.height === HEAD + 1n) genuine.push({ m, bytes: s.bytes });
          }
          const signer = new PrivValidator(v0.seed, CHAIN, own.stateAbove(HEAD) ?? undefined);
          assert.equal(own.stateAbove(HEAD) !== null, genuine.length > 0);
          assert.ok((own.stateAbove(HEAD)?.height ?? HEAD + 1n) === HEAD + 1n, 'a state beyond head + 1');
          for (const m of attempts) {
            if (m.height <= HEAD) continue; // a released signer signs only above its head
            const s = signed(m, v0.seed);
            const blockHash = hashOf(m.hash) ?? new Uint8Array(32);
            const out =
              m.kind === 'proposal'
                ? signer.signProposal({
                    height: m.height,
                    round: m.round,
                    polRound: -1,
                    blockHash,
                    proposer: v0.publicKey,
                  })
                : signer.signVote({
                    type: m.kind,
                    height: m.height,
                    round: m.round,
                    blockHash: hashOf(m.hash),
                    validator: v0.publicKey,
                  });
            if (!out) continue;
            // A signature that exists already (the lost node's own) is no new one; any other lies
            // after every slot seen.
            if (genuine.some((g) => equalBytes(g.bytes, s.bytes))) continue;
            for (const g of genuine)
              assert.ok(
                !before(m, g.m),
                `signed ${m.kind} ${m.height}/${m.round} at or before a seen ${g.m.kind} ${g.m.height}/${g.m.round}`,
              );
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
