/**
 * Compact proposals (consensus/compact-block.ts): the block rebuilt from transactions a node holds
 * and those it fetches is exactly the proposer's, and the attacks on the fetch change nothing: ids
 * nobody serves, an answer with a different transaction under the same transaction hash, requests
 * for transactions of a block the node does not hold.
 */
import assert from 'node:assert/strict';
import { randomFillSync } from 'node:crypto';
import { after, describe, test } from 'node:test';
import {
  decode,
  encode,
  envelopeFromBytes,
  envelopeFromSigned,
  equalBytes,
  parseUnc,
  selectProposer,
  signProposal,
  signTransaction,
  toHex,
  type Vote,
} from '@unc/core';
import { transferAction } from '@unc/sdk';
import { until as waitUntil } from '@unc/test-utils';
import {
  compactOf,
  Rebuild,
  TX_INDEX_MAX_BYTES,
  TxIndex,
  txsOfBlock,
  wireTxId,
} from '../../src/consensus/compact-block.js';
import {
  compactProposalCodec,
  type ProposalMessage,
  proposalMessageCodec,
  voteMessageCodec,
} from '../../src/consensus/wire.js';
import { devKey } from '../../src/dev.js';
import type { NetworkHandlers } from '../../src/p2p/types.js';
import { MemoryNetworkHub } from './memory-network.js';
import { withIds } from './signed-ids.js';
import { fourValidatorGenesis, TestNodes, validators } from './test-nodes.js';

const nodes = new TestNodes();
after(() => nodes.stopAll());
const genesis = fourValidatorGenesis(150);

function transfer(nonce: bigint, fee = parseUnc('1')): Uint8Array {
  const payer = devKey(1);
  const body = {
    chainId: 'unc-dev-1',
    signer: payer.publicKey,
    nonce,
    expiresAt: 1_000n,
    actions: [transferAction('unc1vystcnlgdeut2u2v57a0lacv4url68zepr0t34', parseUnc('1'))],
  };
  return envelopeFromSigned(signTransaction({ ...body, fee }, payer.seed)).bytes;
}

/** The same transaction (same hash: it leaves the signature out) with other signature bytes. */
function malleated(tx: Uint8Array): Uint8Array {
  const other = tx.slice();
  other[other.length - 1]! ^= 1;
  return other;
}

describe('compact blocks: the pure parts', () => {
  test('a block rebuilt from held and fetched transactions is byte for byte the proposer’s', () => {
    const txs = [transfer(0n), transfer(1n), transfer(2n)];
    const msg = fakeMessage(txs);
    const compact = compactOf(withIds(msg, validators[0]!.seed));
    assert.deepEqual(
      compact.txIds.map(toHex),
      txs.map((t) => toHex(wireTxId(t))),
    );
    const index = new TxIndex();
    index.add(txs[0]!);
    index.add(txs[2]!);
    const rebuild = new Rebuild(compact, (id) => index.get(id));
    assert.equal(rebuild.complete, false);
    assert.deepEqual(rebuild.missing().map(toHex), [toHex(wireTxId(txs[1]!))]);
    assert.throws(() => rebuild.full(), /not complete/);
    assert.equal(rebuild.fill([txs[1]!]), true);
    assert.equal(rebuild.complete, true);
    assert.deepEqual(rebuild.full().block.txs, txs);
  });

  test('an answer with a different transaction under the same transaction hash fills in nothing', () => {
    const txs = [transfer(0n), transfer(1n)];
    const rebuild = new Rebuild(compactOf(withIds(fakeMessage(txs), validators[0]!.seed)), () => undefined);
    const other = malleated(txs[1]!);
    // Same transaction hash (what the header's transaction root commits to), different bytes.
    assert.ok(equalBytes(envelopeFromBytes(other).hash, envelopeFromBytes(txs[1]!).hash));
    assert.equal(rebuild.fill([txs[0]!, other]), false);
    assert.equal(rebuild.missing().length, 2, 'not even the genuine one of a bad answer is kept');
    assert.equal(rebuild.fill([txs[0]!]), true);
    assert.equal(rebuild.missing().length, 1);
  });

  test('the index is bounded (oldest first) and serving gives only the named transactions of the block', () => {
    const index = new TxIndex(2);
    const txs = [transfer(0n), transfer(1n), transfer(2n)];
    for (const t of txs) index.add(t);
    assert.equal(index.size, 2);
    assert.equal(index.get(wireTxId(txs[0]!)), undefined);
    assert.ok(index.get(wireTxId(txs[2]!)));
    const block = fakeMessage(txs.slice(0, 2)).block;
    assert.deepEqual(txsOfBlock(block, [wireTxId(txs[1]!), wireTxId(txs[2]!)]), [txs[1]]);
  });

  test('the index is bounded in bytes: what left the mempool cannot pile up to 50,000 × 64 KiB', () => {
    // Views over one buffer: distinct 64 KiB transactions (as far as the index can tell) without
    // allocating what the old index would have held.
    const txBytes = 64 * 1024;
    const count = TX_INDEX_MAX_BYTES / txBytes + 100;
    const pool = new Uint8Array(txBytes + count * 8);
    randomFillSync(pool);
    const index = new TxIndex();
    const views: Uint8Array[] = [];
    for (let i = 0; i < count; i++) {
      const v = pool.subarray(i * 8, i * 8 + txBytes);
      views.push(v);
      index.add(v);
    }
    assert.ok(index.bytes <= TX_INDEX_MAX_BYTES, `${index.bytes} bytes held`);
    assert.ok(index.size < count, `${index.size} of ${count} held`);
    assert.equal(index.get(wireTxId(views[0]!)), undefined, 'the oldest went first');
    assert.ok(index.get(wireTxId(views[count - 1]!)), 'the newest is held');
  });

  test('an answer holds each transaction once, however often a request names it (no amplifier)', () => {
    const txs = [transfer(0n), transfer(1n)];
    const block = fakeMessage(txs).block;
    const id = wireTxId(txs[1]!);
    assert.deepEqual(
      txsOfBlock(
        block,
        Array.from({ length: 4_096 }, () => id),
      ),
      [txs[1]],
    );
    assert.deepEqual(txsOfBlock(block, [id, wireTxId(txs[0]!), id]), [txs[1], txs[0]]);
  });
});

test('a node rebuilds a compact proposal, fetching what it lacks; wrong or missing answers leave the proposal unused', async () => {
  const hub = new MemoryNetworkHub();
  const node = await nodes.start(hub, genesis, 'unc-compact-test-');
  // The peer that relays the proposal; what it answers to transaction requests is up to the test.
  let answer: (ids: readonly Uint8Array[]) => Uint8Array[] = () => [];
  const relayHandlers: NetworkHandlers = {
    onGossip: () => 'ignore',
    status: () => node.driver.status(),
    blocks: async () => [],
    txs: (_hash, ids) => answer(ids),
  };
  hub.join('relay', relayHandlers);
  const penalties = () => (hub.member('v0')?.penalties ?? []).filter((p) => p.peer === 'relay');
  await waitUntil('the driver to run height 1', () => node.driver.position.height === 1n, {
    timeoutMs: 60_000,
    intervalMs: 25,
  });
  const gossip = node.driver.handlers().onGossip;

  // A block of v1 with a transaction v0 never saw.
  const tx = transfer(0n);
  const v1 = validators[1]!;
  const { pending } = node.chain.buildProposal(
    [envelopeFromBytes(tx)],
    node.chain.nextBlockTime(BigInt(Date.now())),
    { seed: v1.seed, publicKey: v1.publicKey },
    () => false,
  );
  assert.equal(pending.block.txs.length, 1);
  const proposal = signProposal(
    'unc-dev-1',
    { height: 1n, round: 0, polRound: -1, blockHash: pending.hash, proposer: v1.publicKey },
    v1.seed,
  );
  const message: ProposalMessage = withIds(
    { proposal, block: pending.block, lastCommit: pending.lastCommit, sentAt: 1n },
    v1.seed,
  );
  const compact = encode(compactProposalCodec, compactOf(withIds(message, v1.seed)));
  assert.ok(
    compact.byteLength < encode(proposalMessageCodec, message).byteLength,
    'the compact form is smaller',
  );

  // Nobody serves the transaction: the proposal never reaches the machine (its round's timeout
  // makes this node prevote nil, as for a missing proposal), and asking is nobody's fault.
  assert.equal(await gossip('compact-proposal', compact, 'relay'), 'ignore');
  assert.deepEqual(penalties(), []);
  assert.deepEqual(node.driver.handlers().txs!(pending.hash, [wireTxId(tx)]), [], 'the block is not held');

  // The same transaction with other signature bytes: not what was asked, the relay is penalised.
  answer = () => [malleated(tx)];
  assert.equal(await gossip('compact-proposal', compact, 'relay'), 'ignore');
  assert.equal(penalties().length, 1);
  assert.match(penalties()[0]!.reason, /other transactions/);

  // The genuine transaction: the block is rebuilt, checked as a full one, and accepted. Another
  // peer's copy with other ids is rejected before any fetch (the proposer signs the ids), so it
  // cannot take a fetch slot from the genuine one.
  answer = (ids) => ids.flatMap((id) => (equalBytes(id, wireTxId(tx)) ? [tx] : []));
  hub.join('evil', { ...relayHandlers, txs: () => [] });
  const altered = encode(compactProposalCodec, {
    ...compactOf(withIds(message, v1.seed)),
    txIds: [wireTxId(transfer(9n))],
  });
  const alteredVerdict = gossip('compact-proposal', altered, 'evil');
  assert.equal(await gossip('compact-proposal', compact, 'relay'), 'accept');
  assert.equal(await alteredVerdict, 'reject');
  // Now it holds the block, it serves the block's transactions, and only those named.
  assert.deepEqual(node.driver.handlers().txs!(pending.hash, [wireTxId(tx)]), [tx]);
  assert.deepEqual(node.driver.handlers().txs!(pending.hash, [wireTxId(transfer(5n))]), []);
});

test('no fetch for a compact proposal the machine cannot use: signed out of turn, or for a round far ahead', async () => {
  // A fetch slot is held until the peers asked give up, so such proposals with ids nobody serves,
  // signed by any one validator and sent from a few peer ids, kept every slot busy: an honest
  // proposal needing a fetch was then dropped at every node.
  const hub = new MemoryNetworkHub();
  const node = await nodes.start(hub, genesis, 'unc-compact-test-');
  const asked: string[] = [];
  hub.join('relay', {
    onGossip: () => 'ignore',
    status: () => node.driver.status(),
    blocks: async () => [],
    txs: (hash) => {
      asked.push(toHex(hash));
      return [];
    },
  });
  await waitUntil('the driver to run height 1', () => node.driver.position.height === 1n, {
    timeoutMs: 60_000,
    intervalMs: 25,
  });
  const gossip = node.driver.handlers().onGossip;
  const set = node.chain.validatorSet();
  const beacon = node.chain.head.header.beacon;
  const proposerOf = (round: number) =>
    validators.find((v) => equalBytes(v.publicKey, selectProposer(set, beacon, 1n, round).publicKey))!;
  // Only v0 runs: it stays in round 0 (no quorum to move on).
  // Each block holds one transaction v0 never saw (a fee of its own makes it a different one).
  const compactBy = (v: (typeof validators)[number], round: number, fee: string) => {
    const { pending } = node.chain.buildProposal(
      [envelopeFromBytes(transfer(0n, parseUnc(fee)))],
      node.chain.nextBlockTime(BigInt(Date.now())),
      { seed: v.seed, publicKey: v.publicKey },
      () => false,
    );
    const proposal = signProposal(
      'unc-dev-1',
      { height: 1n, round, polRound: -1, blockHash: pending.hash, proposer: v.publicKey },
      v.seed,
    );
    assert.equal(pending.block.txs.length, 1);
    const message = { proposal, block: pending.block, lastCommit: pending.lastCommit, sentAt: 1n };
    return {
      hash: toHex(pending.hash),
      data: encode(compactProposalCodec, compactOf(withIds(message, v.seed))),
    };
  };

  const outOfTurn = validators.find(
    (v) => !equalBytes(v.publicKey, proposerOf(0).publicKey) && v !== validators[0],
  )!;
  const bad = compactBy(outOfTurn, 0, '2');
  assert.equal(await gossip('compact-proposal', bad.data, 'relay'), 'ignore');
  const far = compactBy(proposerOf(50), 50, '3');
  assert.equal(await gossip('compact-proposal', far.data, 'relay'), 'ignore');
  assert.equal(asked.length, 0, 'nothing fetched for them');

  // The control: the next round's own proposer's is fetched for (this relay serves nothing).
  const round = [0, 1].find((r) => proposerOf(r) !== validators[0])!;
  const good = compactBy(proposerOf(round), round, '4');
  assert.equal(await gossip('compact-proposal', good.data, 'relay'), 'ignore');
  assert.ok(asked.includes(good.hash), 'the usable proposal was fetched for');
});

test('a genuine proposal is relayed once: re-wrapped (another sentAt) it is not relayed again, and with other signature bytes under the same transaction hashes it is rejected', async () => {
  // `sentAt` is not signed, nor are transaction signatures covered by the block hash: keyed on the
  // envelope, every such copy was accepted (and so relayed network-wide) again.
  const hub = new MemoryNetworkHub();
  const node = await nodes.start(hub, genesis, 'unc-compact-test-');
  hub.join('relay', { onGossip: () => 'ignore', status: () => node.driver.status(), blocks: async () => [] });
  await waitUntil('the driver to run height 1', () => node.driver.position.height === 1n, {
    timeoutMs: 60_000,
    intervalMs: 25,
  });
  const gossip = node.driver.handlers().onGossip;
  const tx = transfer(0n);
  const v1 = validators[1]!;
  const { pending } = node.chain.buildProposal(
    [envelopeFromBytes(tx)],
    node.chain.nextBlockTime(BigInt(Date.now())),
    { seed: v1.seed, publicKey: v1.publicKey },
    () => false,
  );
  const proposal = signProposal(
    'unc-dev-1',
    { height: 1n, round: 0, polRound: -1, blockHash: pending.hash, proposer: v1.publicKey },
    v1.seed,
  );
  const message: ProposalMessage = withIds(
    { proposal, block: pending.block, lastCommit: pending.lastCommit, sentAt: 1n },
    v1.seed,
  );
  assert.equal(await gossip('proposal', encode(proposalMessageCodec, message), 'relay'), 'accept');
  assert.equal(
    await gossip('proposal', encode(proposalMessageCodec, { ...message, sentAt: 2n }), 'relay'),
    'ignore',
  );
  // Other signature bytes under the same transaction hashes: not what the proposer signed the ids
  // of, so the copy was altered on the way (rejected, its sender scored down).
  const otherSignatureBytes = { ...message, block: { ...pending.block, txs: [malleated(tx)] } };
  assert.equal(
    await gossip('proposal', encode(proposalMessageCodec, otherSignatureBytes), 'relay'),
    'reject',
  );
  // Its compact form, from a peer that holds the block: the same signed proposal, not relayed.
  const compact = encode(compactProposalCodec, compactOf(withIds(message, v1.seed)));
  assert.equal(await gossip('compact-proposal', compact, 'relay'), 'ignore');
  // Another round's proposal of the same block (a re-proposal by that round's proposer) is news.
  const set = node.chain.validatorSet();
  const next = validators.find((v) =>
    equalBytes(v.publicKey, selectProposer(set, node.chain.head.header.beacon, 1n, 1).publicKey),
  )!;
  const round1 = signProposal(
    'unc-dev-1',
    { ...proposal, round: 1, polRound: 0, proposer: next.publicKey },
    next.seed,
  );
  assert.equal(
    await gossip(
      'proposal',
      encode(proposalMessageCodec, withIds({ ...message, proposal: round1 }, next.seed)),
      'relay',
    ),
    'accept',
  );
  // Out of turn (round 1 signed by round 0's proposer): of no use to anyone, so neither checked
  // nor relayed; each such signature used to cost every node a block check and be relayed.
  const outOfTurn = signProposal('unc-dev-1', { ...proposal, round: 1, polRound: 0 }, v1.seed);
  assert.notEqual(next, v1);
  assert.equal(
    await gossip(
      'proposal',
      encode(proposalMessageCodec, withIds({ ...message, proposal: outOfTurn }, v1.seed)),
      'relay',
    ),
    'ignore',
  );
});

test('a full proposal with one transaction signature altered in transit, arriving first, does not make a validator vote nil on the genuine one', async () => {
  // The block hash covers transaction hashes, which leave signatures out: the altered copy matched
  // the header and the proposal's signature, was found invalid, and "invalid" was kept under the
  // block hash, so the genuine copy arriving next was taken for invalid too and v0 prevoted nil.
  // One relay could stop a height this way (full proposals travel on every catch-up and re-send).
  const hub = new MemoryNetworkHub();
  const node = await nodes.start(hub, genesis, 'unc-compact-test-');
  const prevotes: Vote[] = [];
  const watcher: NetworkHandlers = {
    onGossip: (topic, data) => {
      if (topic !== 'vote') return 'ignore';
      const { vote } = decode(voteMessageCodec, data);
      if (vote.type === 'prevote' && equalBytes(vote.validator, validators[0]!.publicKey))
        prevotes.push(vote);
      return 'ignore';
    },
    status: () => node.driver.status(),
    blocks: async () => [],
  };
  hub.join('relay', watcher);
  hub.join('evil', { ...watcher, onGossip: () => 'ignore' });
  const penalties: { peer: string; reason: string }[] = [];
  const net = hub.member('v0')!;
  net.penalize = (peer, reason) => penalties.push({ peer, reason });
  await waitUntil('the driver to run height 1', () => node.driver.position.height === 1n, {
    timeoutMs: 60_000,
    intervalMs: 25,
  });
  const set = node.chain.validatorSet();
  const proposer = validators.find((v) =>
    equalBytes(v.publicKey, selectProposer(set, node.chain.head.header.beacon, 1n, 0).publicKey),
  )!;
  assert.notEqual(proposer, validators[0], 'v0 is not the proposer of round 0 (it votes on another’s block)');
  const gossip = node.driver.handlers().onGossip;
  const tx = transfer(0n);
  const { pending } = node.chain.buildProposal(
    [envelopeFromBytes(tx)],
    node.chain.nextBlockTime(BigInt(Date.now())),
    { seed: proposer.seed, publicKey: proposer.publicKey },
    () => false,
  );
  const proposal = signProposal(
    'unc-dev-1',
    { height: 1n, round: 0, polRound: -1, blockHash: pending.hash, proposer: proposer.publicKey },
    proposer.seed,
  );
  const genuine = withIds(
    { proposal, block: pending.block, lastCommit: pending.lastCommit, sentAt: 1n },
    proposer.seed,
  );
  const tampered = { ...genuine, block: { ...genuine.block, txs: [malleated(tx)] } };
  assert.equal(await gossip('proposal', encode(proposalMessageCodec, tampered), 'evil'), 'reject');
  assert.ok(
    penalties.every((p) => p.peer === 'evil'),
    'only the relay that sent the altered copy is blamed',
  );
  assert.equal(await gossip('proposal', encode(proposalMessageCodec, genuine), 'relay'), 'accept');
  await waitUntil('v0 to prevote in round 0', () => prevotes.some((v) => v.height === 1n && v.round === 0), {
    timeoutMs: 60_000,
    intervalMs: 10,
  });
  const prevote = prevotes.find((v) => v.height === 1n && v.round === 0)!;
  assert.ok(
    prevote.blockHash !== null && equalBytes(prevote.blockHash, pending.hash),
    'v0 prevoted nil on the genuine proposal',
  );
});

test('a relay that forwards a genuine compact proposal first and never answers the fetch does not make a validator vote nil', async () => {
  // The peer whose copy arrived first is asked first, and gossip drops the later copies as seen:
  // it was given the request's whole timeout (10 s), past the round's propose timeout (3 s).
  const hub = new MemoryNetworkHub();
  const node = await nodes.start(hub, genesis, 'unc-compact-test-');
  const prevotes: Vote[] = [];
  const handlers: NetworkHandlers = {
    onGossip: (topic, data) => {
      if (topic !== 'vote') return 'ignore';
      const { vote } = decode(voteMessageCodec, data);
      if (vote.type === 'prevote' && equalBytes(vote.validator, validators[0]!.publicKey))
        prevotes.push(vote);
      return 'ignore';
    },
    status: () => node.driver.status(),
    blocks: async () => [],
  };
  hub.join('evil', handlers);
  hub.join('good', handlers);
  await waitUntil('the driver to run height 1', () => node.driver.position.height === 1n, {
    timeoutMs: 60_000,
    intervalMs: 25,
  });
  const set = node.chain.validatorSet();
  const proposer = validators.find((v) =>
    equalBytes(v.publicKey, selectProposer(set, node.chain.head.header.beacon, 1n, 0).publicKey),
  )!;
  assert.notEqual(proposer, validators[0]);
  const tx = transfer(0n);
  const { pending } = node.chain.buildProposal(
    [envelopeFromBytes(tx)],
    node.chain.nextBlockTime(BigInt(Date.now())),
    { seed: proposer.seed, publicKey: proposer.publicKey },
    () => false,
  );
  const proposal = signProposal(
    'unc-dev-1',
    { height: 1n, round: 0, polRound: -1, blockHash: pending.hash, proposer: proposer.publicKey },
    proposer.seed,
  );
  const message = withIds(
    { proposal, block: pending.block, lastCommit: pending.lastCommit, sentAt: 1n },
    proposer.seed,
  );
  const asked: string[] = [];
  const net = hub.member('v0')!;
  net.requestTxs = (peer, _hash, ids, signal) => {
    asked.push(peer);
    if (peer === 'good') return Promise.resolve(txsOfBlock(pending.block, ids));
    // The relay holds the request open until it is given up on.
    return new Promise((_, reject) => signal?.addEventListener('abort', () => reject(signal.reason)));
  };
  const gossip = node.driver.handlers().onGossip;
  const verdict = gossip('compact-proposal', encode(compactProposalCodec, compactOf(message)), 'evil');
  await waitUntil('v0 to prevote in round 0', () => prevotes.some((v) => v.height === 1n && v.round === 0), {
    timeoutMs: 60_000,
    intervalMs: 10,
  });
  const prevote = prevotes.find((v) => v.height === 1n && v.round === 0)!;
  assert.equal(asked[0], 'evil', 'the relay whose copy came first is asked first');
  assert.ok(
    prevote.blockHash !== null && equalBytes(prevote.blockHash, pending.hash),
    'v0 prevoted nil: the silent relay held the fetch past the propose timeout',
  );
  assert.equal(await verdict, 'accept');
});

test("the next round's proposer cannot take the current round's fetch slots", async () => {
  const hub = new MemoryNetworkHub();
  // A full node (no validator key): both rounds' proposers are others, and it stays in round 0.
  const node = await nodes.start(hub, genesis, 'unc-compact-test-', { fullNode: true });
  const peers = ['p1', 'p2', 'p3', 'p4', 'relay'];
  for (const id of peers)
    hub.join(id, { onGossip: () => 'ignore', status: () => node.driver.status(), blocks: async () => [] });
  // Every transaction request is held until the test lets it go (a peer stalling to its timeout).
  const asked: string[] = [];
  const held: (() => void)[] = [];
  const net = hub.member('n0')!;
  net.requestTxs = (_peer, hash) => {
    asked.push(toHex(hash));
    return new Promise((resolve) => held.push(() => resolve([])));
  };
  await waitUntil('the driver to run height 1', () => node.driver.position.height === 1n, {
    timeoutMs: 60_000,
    intervalMs: 25,
  });
  const gossip = node.driver.handlers().onGossip;
  const set = node.chain.validatorSet();
  const beacon = node.chain.head.header.beacon;
  const proposerOf = (round: number) =>
    validators.find((v) => equalBytes(v.publicKey, selectProposer(set, beacon, 1n, round).publicKey))!;
  const compactBy = (round: number, fee: string) => {
    const v = proposerOf(round);
    const { pending } = node.chain.buildProposal(
      [envelopeFromBytes(transfer(0n, parseUnc(fee)))],
      node.chain.nextBlockTime(BigInt(Date.now())),
      { seed: v.seed, publicKey: v.publicKey },
      () => false,
    );
    const proposal = signProposal(
      'unc-dev-1',
      { height: 1n, round, polRound: -1, blockHash: pending.hash, proposer: v.publicKey },
      v.seed,
    );
    const message = { proposal, block: pending.block, lastCommit: pending.lastCommit, sentAt: 1n };
    return {
      hash: toHex(pending.hash),
      data: encode(compactProposalCodec, compactOf(withIds(message, v.seed))),
    };
  };
  // Round 1's proposer signs four proposals for its own turn, sent from four peers: all held.
  const spam = [1, 2, 3, 4].map(async (i) =>
    gossip('compact-proposal', compactBy(1, String(i + 1)).data, `p${i}`),
  );
  await waitUntil('the four fetches to start', () => asked.length === 4, {
    timeoutMs: 60_000,
    intervalMs: 5,
  });
  // Round 0's genuine proposal still gets a fetch of its own.
  const genuine = compactBy(0, '9');
  const verdict = Promise.resolve(gossip('compact-proposal', genuine.data, 'relay'));
  await waitUntil('the genuine proposal to be fetched for', () => asked.includes(genuine.hash), {
    timeoutMs: 60_000,
    intervalMs: 5,
  }).catch(() => {});
  const fetched = asked.includes(genuine.hash);
  // Let every request go (each fetch asks up to three peers in turn).
  let done = false;
  const all = Promise.all([verdict, ...spam]).finally(() => {
    done = true;
  });
  while (!done) {
    for (const release of held.splice(0)) release();
    await new Promise((r) => setTimeout(r, 5));
  }
  await all;
  assert.ok(fetched, "the current round's proposal was dropped: the next round's took every slot");
});

function fakeMessage(txs: Uint8Array[]): Omit<ProposalMessage, 'idsSignature'> {
  const zero = new Uint8Array(32);
  const header = {
    chainId: 'unc-dev-1',
    height: 5n,
    time: 1n,
    prevHash: zero,
    txRoot: zero,
    stateRoot: zero,
    lastCommitHash: zero,
    proposer: zero,
    beacon: new Uint8Array(80),
  };
  const commit = { height: 4n, round: 0, blockHash: zero, signatures: [] };
  return {
    proposal: {
      height: 5n,
      round: 0,
      polRound: -1,
      blockHash: zero,
      proposer: zero,
      signature: new Uint8Array(64),
    },
    block: { header, txs, commit } as unknown as ProposalMessage['block'],
    lastCommit: commit as unknown as ProposalMessage['lastCommit'],
    sentAt: 1n,
  };
}
