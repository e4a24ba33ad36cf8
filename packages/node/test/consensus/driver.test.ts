import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  blockHash,
  commitHash,
  consensusEvidenceCodec,
  decode,
  duplicateVoteEvidence,
  encode,
  envelopeFromSigned,
  equalBytes,
  isTombstoned,
  PrivValidator,
  parseUnc,
  selectProposer,
  signProposal,
  signTransaction,
  signVote,
  toHex,
  ValidatorSet,
  verifyBlockCommit,
  voteCodec,
} from '@unc/core';
import { feeFor, transferAction } from '@unc/sdk';
import { until as waitUntil } from '@unc/test-utils';
import { compactOf } from '../../src/consensus/compact-block.js';
import { loadPrivval } from '../../src/consensus/privval-store.js';
import {
  compactProposalCodec,
  proposalMessageCodec,
  txBatchCodec,
  voteMessageCodec,
} from '../../src/consensus/wire.js';
import { devGenesisJson, devKey, devValidatorKey } from '../../src/dev.js';
import { silentLogger } from '../../src/log.js';
import { UncNode } from '../../src/node.js';
import { gossipMessageId } from '../../src/p2p/message-id.js';
import type { DirectMessage } from '../../src/p2p/types.js';
import { MemoryNetworkHub } from './memory-network.js';
import { withIds } from './signed-ids.js';
import { devTransfer } from './test-nodes.js';

const dirs: string[] = [];
const running = new Set<UncNode>();
after(async () => {
  for (const n of running) await n.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'unc-driver-test-'));
  dirs.push(d);
  return d;
}

const TIMEOUTS = {
  proposeMs: 400,
  proposeDeltaMs: 100,
  prevoteMs: 200,
  prevoteDeltaMs: 100,
  precommitMs: 200,
  precommitDeltaMs: 100,
};

const validators = [0, 1, 2, 3].map((i) => devValidatorKey(i));
const genesis = devGenesisJson({
  blockTimeMs: 150,
  validators: validators.map((v, i) => ({ publicKey: v.publicKey, name: `v${i}` })),
});

async function startNode(
  hub: MemoryNetworkHub,
  id: string,
  dataDir: string,
  seed?: Uint8Array,
  timeouts = TIMEOUTS,
  allowFreshSigner = false,
) {
  const node = await UncNode.start({
    dataDir,
    genesis,
    ...(seed ? { validatorSeed: seed } : {}),
    ...(allowFreshSigner ? { allowFreshSigner: true } : {}),
    rpcPort: 0,
    timeouts,
    logger: silentLogger,
    network: async (handlers) => hub.join(id, handlers),
  });
  running.add(node);
  return node;
}

async function stopNode(node: UncNode): Promise<void> {
  await node.stop();
  running.delete(node);
}

// Generous: four in-process validators on two busy cores can take well over 15 s to get somewhere.
const until = (what: string, cond: () => boolean | Promise<boolean>, ms = 60_000) =>
  waitUntil(what, cond, { timeoutMs: ms, intervalMs: 25 });

/** The highest head among `nodes` once it has not moved for `stillMs` (at most 30 s of waiting). */
async function settledHeight(nodes: UncNode[], stillMs = 2_000): Promise<bigint> {
  const deadline = Date.now() + 30_000;
  let last = maxHeight(nodes);
  let since = Date.now();
  for (;;) {
    await new Promise((r) => setTimeout(r, 50));
    const now = maxHeight(nodes);
    if (now !== last) {
      last = now;
      since = Date.now();
    } else if (Date.now() - since >= stillMs) return now;
    if (Date.now() > deadline) throw new Error(`the head never settled: still moving at ${now}`);
  }
}

/** Every pair of nodes holds the same block at every height both have: no fork. */
async function assertNoFork(nodes: UncNode[]): Promise<void> {
  const top = nodes.reduce((m, n) => (n.chain.height < m ? n.chain.height : m), nodes[0]!.chain.height);
  for (let h = 1n; h <= top; h++) {
    const hashes = new Set<string>();
    for (const n of nodes) hashes.add(toHex((await n.chain.blockAt(h))!.header.prevHash));
    assert.equal(hashes.size, 1, `nodes disagree below height ${h}`);
  }
  const heads = new Set<string>();
  for (const n of nodes) heads.add(toHex((await n.chain.blockAt(top))!.header.stateRoot));
  assert.equal(heads.size, 1, `nodes disagree at height ${top}`);
}

const maxHeight = (nodes: UncNode[]) => nodes.reduce((m, n) => (n.chain.height > m ? n.chain.height : m), 0n);
const minHeight = (nodes: UncNode[]) =>
  nodes.reduce((m, n) => (n.chain.height < m ? n.chain.height : m), nodes[0]!.chain.height);

test('4 validators over the in-memory network: agree, survive one crash, stall without a quorum, resume, and a follower syncs', async () => {
  const hub = new MemoryNetworkHub();
  const dataDirs = validators.map(() => tempDir());
  const nodes = await Promise.all(validators.map((v, i) => startNode(hub, `v${i}`, dataDirs[i]!, v.seed)));

  // Agreement: several heights, identical on all four, each with a quorum certificate.
  await until('height 5 on all validators', () => minHeight(nodes) >= 5n);
  await assertNoFork(nodes);
  const set = new ValidatorSet(validators.map((v) => ({ publicKey: v.publicKey, power: 1n })));
  for (let h = 1n; h <= 4n; h++) {
    const block = (await nodes[0]!.chain.blockAt(h))!;
    assert.ok(
      block.commit.signatures.length >= 3,
      `block ${h} has ${block.commit.signatures.length} signatures`,
    );
    verifyBlockCommit(
      set,
      'unc-dev-1',
      block.commit,
      (await nodes[1]!.chain.blockAt(h + 1n))!.header.prevHash,
      h,
    );
  }
  // Every node stores, for each block, the certificate the next block's header names (the next
  // proposer's quorum), even where its own quorum of precommits was another one.
  for (let h = 1n; h < nodes[0]!.chain.height; h++) {
    const block = (await nodes[0]!.chain.blockAt(h))!;
    const next = (await nodes[0]!.chain.blockAt(h + 1n))!;
    assert.equal(toHex(commitHash(block.commit)), toHex(next.header.lastCommitHash), `commit of block ${h}`);
  }
  // Proposers rotate: more than one validator built blocks.
  const proposers = new Set<string>();
  for (let h = 1n; h <= 5n; h++) proposers.add(toHex((await nodes[0]!.chain.blockAt(h))!.header.proposer));
  assert.ok(proposers.size > 1, 'a single validator proposed every block');

  // One validator down: the other three (3/4 > 2/3) go on.
  await stopNode(nodes[3]!);
  const h1 = maxHeight(nodes.slice(0, 3));
  await until('3 validators to go on', () => minHeight(nodes.slice(0, 3)) >= h1 + 4n);

  // It comes back on the same data directory: syncs the blocks it missed, then votes again.
  nodes[3] = await startNode(hub, 'v3', dataDirs[3]!, validators[3]!.seed);
  await until(
    'the restarted validator to catch up',
    () => nodes[3]!.chain.height >= maxHeight(nodes.slice(0, 3)),
  );
  const h2 = maxHeight(nodes);
  await until('all four to go on', () => minHeight(nodes) >= h2 + 3n);
  await assertNoFork(nodes);

  // Two of four down: 2/4 is no quorum; nothing is finalized and the survivors do not fork.
  await stopNode(nodes[2]!);
  await stopNode(nodes[3]!);
  // Precommits of a block the four finalized just before the stop can still be on their way (later
  // than any fixed pause on a loaded machine): take the height once it has held still for 2 s.
  const stalled = await settledHeight(nodes.slice(0, 2));
  await new Promise((r) => setTimeout(r, 2_000));
  assert.equal(maxHeight(nodes.slice(0, 2)), stalled, 'a block was finalized without a quorum');
  await assertNoFork(nodes.slice(0, 2));

  // One returns: three of four again, finalization resumes.
  nodes[2] = await startNode(hub, 'v2', dataDirs[2]!, validators[2]!.seed);
  await until('finalization to resume', () => minHeight(nodes.slice(0, 3)) >= stalled + 3n, 20_000);
  await assertNoFork(nodes.slice(0, 3));

  // A node without a validator key syncs from genesis and follows the head; a transaction sent to
  // it reaches the proposers by gossip and is finalized.
  const follower = await startNode(hub, 'f', tempDir());
  await until('the follower to sync', () => follower.chain.height >= minHeight(nodes.slice(0, 3)));
  const env = devTransfer(follower.chain.params, 0n, parseUnc('1'));
  const included = new Promise<number>((resolve, reject) =>
    follower.watchTx(env.hash, (e) =>
      e.status === 'included' ? resolve(e.height) : reject(new Error(e.reason)),
    ),
  );
  follower.submit(env);
  const height = await included;
  await until(
    'validators to hold the block with the transaction',
    () => minHeight(nodes.slice(0, 3)) >= BigInt(height),
  );
  for (const n of nodes.slice(0, 3)) {
    const block = (await n.chain.blockAt(BigInt(height)))!;
    assert.equal(block.txs.length, 1);
  }
  const followHeight = follower.chain.height;
  await until('the follower to follow new blocks', () => follower.chain.height >= followHeight + 2n);
  await assertNoFork([...nodes.slice(0, 3), follower]);
  await stopNode(follower);
  for (const n of nodes.slice(0, 3)) await stopNode(n);
});

test('gossip from outside the validator set, with forged signatures or malformed bytes is rejected', async () => {
  const hub = new MemoryNetworkHub();
  const node = await startNode(hub, 'v0', tempDir(), validators[0]!.seed);
  try {
    const gossip = node.driver.handlers().onGossip;
    const height = node.chain.height + 1n;
    const vote = (seed: Uint8Array, publicKey: Uint8Array) =>
      signVote(
        'unc-dev-1',
        { type: 'prevote', height, round: 0, blockHash: null, validator: publicKey },
        seed,
      );
    const wrap = (v: ReturnType<typeof vote>) => encode(voteMessageCodec, { vote: v, sentAt: 1n });
    assert.equal(await gossip('vote', new Uint8Array([1, 2, 3]), 'x'), 'reject');
    assert.equal(await gossip('proposal', new Uint8Array(40), 'x'), 'reject');
    assert.equal(await gossip('tx', new Uint8Array([9]), 'x'), 'reject');
    assert.equal(await gossip('evidence', new Uint8Array([7, 7]), 'x'), 'reject');
    // A transaction whose signature does not verify is the relay's fault whatever the state: a
    // batch of them costs a signature check each, so the peer is scored down, not just ignored.
    const payer = devKey(1);
    const body = {
      chainId: 'unc-dev-1',
      signer: payer.publicKey,
      nonce: 0n,
      expiresAt: 1_000n,
      actions: [transferAction('unc1vystcnlgdeut2u2v57a0lacv4url68zepr0t34', parseUnc('1'))],
    };
    const fee = feeFor(body, {
      minFeePerByte: node.chain.params.minFeePerByte,
      minFeePerAction: node.chain.params.minFeePerAction,
    });
    const good = envelopeFromSigned(signTransaction({ ...body, fee }, payer.seed)).bytes;
    const badSig = good.slice();
    badSig[badSig.length - 1]! ^= 1;
    assert.equal(await gossip('tx', encode(txBatchCodec, [badSig]), 'x'), 'reject');
    assert.equal(node.mempool.size, 0);
    const outsider = devKey(5);
    assert.equal(await gossip('vote', wrap(vote(outsider.seed, outsider.publicKey)), 'x'), 'reject');
    const forged = { ...vote(validators[1]!.seed, validators[1]!.publicKey) };
    forged.signature = forged.signature.slice();
    forged.signature[0]! ^= 1;
    assert.equal(await gossip('vote', wrap(forged), 'x'), 'reject');
    const old = signVote(
      'unc-dev-1',
      { type: 'prevote', height: 0n, round: 0, blockHash: null, validator: validators[1]!.publicKey },
      validators[1]!.seed,
    );
    assert.equal(await gossip('vote', wrap(old), 'x'), 'ignore');
    assert.equal(
      await gossip('vote', wrap(vote(validators[1]!.seed, validators[1]!.publicKey)), 'x'),
      'accept',
    );

    // A proposal whose block copy does not match what the proposer signed is refused before it
    // reaches the state machine; the genuine message is then still accepted.
    await until('the driver to run height 1', () => node.driver.position.height === 1n);
    const v1 = validators[1]!;
    const { pending } = node.chain.buildProposal(
      [],
      node.chain.nextBlockTime(BigInt(Date.now())),
      { seed: v1.seed, publicKey: v1.publicKey },
      () => false,
    );
    const proposal = signProposal(
      'unc-dev-1',
      { height: 1n, round: 0, polRound: -1, blockHash: pending.hash, proposer: v1.publicKey },
      v1.seed,
    );
    const message = withIds(
      { proposal, block: pending.block, lastCommit: pending.lastCommit, sentAt: 1n },
      v1.seed,
    );
    const altered = { ...message, lastCommit: { ...message.lastCommit, round: 7 } };
    assert.equal(await gossip('proposal', encode(proposalMessageCodec, altered), 'relay'), 'reject');
    assert.equal(await gossip('proposal', encode(proposalMessageCodec, message), 'relay'), 'accept');
  } finally {
    await stopNode(node);
  }
});

test('the signer state is on disk after every signature: a restarted validator cannot sign a conflicting vote', async () => {
  const dir = tempDir();
  const single = devGenesisJson({ blockTimeMs: 50 });
  const key = devValidatorKey(0);
  const node = await UncNode.start({
    dataDir: dir,
    genesis: single,
    validatorSeed: key.seed,
    rpcPort: 0,
    logger: silentLogger,
  });
  running.add(node);
  await until('a few blocks', () => node.chain.height >= 3n);
  await stopNode(node);
  const path = join(dir, 'privval.json');
  const stored = loadPrivval(path, key.publicKey)!;
  assert.ok(stored.state.height >= 3n, `privval at ${stored.state.height}`);
  // A validator alone publishes nothing (it has no network), yet its last proposal and the block
  // it names are still kept: after a restart only this file holds that block.
  const own = stored.lastProposal;
  assert.ok(own, 'the last proposal is kept');
  assert.deepEqual(blockHash(own.block.header), own.proposal.blockHash);
  const precommit = stored.state.votes.find(
    (v) => v.type === 'precommit' && v.height === stored.state.height,
  );
  assert.ok(precommit?.blockHash, 'the last precommit is kept');
  // The same slot with another block: refused by the restored signer, whatever the process did.
  const restored = new PrivValidator(key.seed, 'unc-dev-1', stored.state);
  const conflicting = restored.signVote({
    type: 'precommit',
    height: precommit.height,
    round: precommit.round,
    blockHash: new Uint8Array(32).fill(9),
    validator: key.publicKey,
  });
  assert.equal(conflicting, null);
  assert.deepEqual(decode(voteCodec, encode(voteCodec, precommit)).blockHash, precommit.blockHash);

  // A damaged state file stops the node instead of letting it sign from scratch.
  writeFileSync(path, '{ not json');
  await assert.rejects(
    UncNode.start({
      dataDir: dir,
      genesis: single,
      validatorSeed: key.seed,
      rpcPort: 0,
      logger: silentLogger,
    }),
    /refusing to sign without it/,
  );
});

test('evidence of a validator that voted twice, gossiped to a validator, is put on chain by it: the offender is tombstoned everywhere', async () => {
  const hub = new MemoryNetworkHub();
  const nodes = await Promise.all(validators.map((v, i) => startNode(hub, `v${i}`, tempDir(), v.seed)));
  try {
    await until('height 3 on all validators', () => minHeight(nodes) >= 3n);
    const offender = validators[3]!;
    const prevote = (blockHash: Uint8Array | null) =>
      signVote(
        'unc-dev-1',
        { type: 'prevote', height: 2n, round: 0, blockHash, validator: offender.publicKey },
        offender.seed,
      );
    const evidence = duplicateVoteEvidence(
      'unc-dev-1',
      prevote(new Uint8Array(32).fill(0xab)),
      prevote(new Uint8Array(32).fill(0xcd)),
    );
    const gossip = nodes[0]!.driver.handlers().onGossip;
    assert.equal(await gossip('evidence', encode(consensusEvidenceCodec, evidence), 'x'), 'accept');
    // The same evidence again is not news.
    assert.equal(await gossip('evidence', encode(consensusEvidenceCodec, evidence), 'x'), 'ignore');
    // The receiving validator submits it (fee-free, signed by its own key); every node applies it.
    await until(
      'the offender to be tombstoned on every validator',
      () => nodes.every((n) => isTombstoned(n.chain.state, offender.publicKey)),
      20_000,
    );
    await assertNoFork(nodes);
  } finally {
    for (const n of nodes) await stopNode(n);
  }
});

test('a peer that reconnects in a loop gets one catch-up per block interval, sent to it alone; fresh identities are capped in all', async () => {
  const hub = new MemoryNetworkHub();
  // One validator of four: it cannot decide, so its height and its messages stay put.
  const node = await startNode(hub, 'v0', tempDir(), validators[0]!.seed);
  const net = hub.member('v0')!;
  const published: string[] = [];
  const publish = net.publish.bind(net);
  net.publish = async (topic, data) => {
    published.push(topic);
    return publish(topic, data);
  };
  const direct: { peer: string; messages: number }[] = [];
  net.sendDirect = async (peer, messages) => {
    direct.push({ peer, messages: messages.length });
  };
  await until(
    'a vote of its own to catch peers up with',
    () => node.driver.position.round >= 0 && published.includes('vote'),
    5_000,
  ).catch(() => undefined);
  const stats = node.driver.catchUpStats;
  const before = { ...stats };
  const publishedBefore = published.length;
  // 50 reconnections of one peer, at once: one catch-up, to it.
  for (let i = 0; i < 50; i++) net.connected('churner');
  // 300 peer ids never seen before, at once: at most 128 catch-ups in the interval (the other half
  // of the 256 is kept for peers that relay consensus messages).
  for (let i = 0; i < 300; i++) net.connected(`fresh-${i}`);
  await until(
    'the catch-ups to be sent',
    () => direct.length >= 128 || stats.sent - before.sent >= 128,
    5_000,
  ).catch(() => undefined);
  assert.equal(direct.filter((d) => d.peer === 'churner').length, 1, 'one catch-up for 50 reconnections');
  assert.ok(stats.refused - before.refused >= 49 + 172, `refused ${stats.refused - before.refused}`);
  assert.ok(direct.length <= 128, `${direct.length} catch-ups`);
  for (const d of direct) assert.ok(d.messages <= 2_048);
  // None of it went to every peer: publishes since are the node's own consensus traffic only
  // (a round's prevote and precommit at most), not 351 re-broadcasts.
  assert.ok(published.length - publishedBefore < 20, `${published.length - publishedBefore} publishes`);
  await stopNode(node);
});

test('on a healthy chain a connection gets its own catch-up and nothing else: no re-send of the height to every peer', async () => {
  // A fresh connection used to bring forward the re-broadcast of the whole height (proposals and
  // votes, relayed network-wide) once per block interval, however healthy the chain.
  const hub = new MemoryNetworkHub();
  // A long propose timeout: the stall re-send (a height idle for a block interval and a propose
  // timeout) rarely fires. On a loaded machine it (or a failed round's polka) still may, so
  // re-sends are told apart by cause: one a connection brought forward is counted on its own.
  const slowStall = { ...TIMEOUTS, proposeMs: 10_000 };
  const nodes = await Promise.all(
    validators.map((v, i) => startNode(hub, `v${i}`, tempDir(), v.seed, slowStall)),
  );
  try {
    await until('height 2 on all validators', () => minHeight(nodes) >= 2n);
    const net = hub.member('v0')!;
    const sent: string[] = [];
    const publish = net.publish.bind(net);
    net.publish = async (topic, data) => {
      if (topic === 'vote' || topic === 'proposal' || topic === 'compact-proposal')
        sent.push(toHex(gossipMessageId(topic, topic, data)));
      return publish(topic, data);
    };
    const directTo: string[] = [];
    const sendDirect = net.sendDirect.bind(net);
    net.sendDirect = async (peer, messages) => {
      // Not a re-send of the height: a proposal v0 held (it lagged two rounds on a loaded machine)
      // is sent on once, alone and compact, when handled (`relayReleased`).
      if (!(messages.length === 1 && messages[0]!.topic === 'compact-proposal')) directTo.push(peer);
      return sendDirect(peer, messages);
    };
    // Fresh peers connect right after each commit (the chain is as healthy as it gets).
    let wave = 0;
    const stopListening = nodes[0]!.driver.onCommit(() => {
      if (wave >= 3) return;
      wave++;
      for (let i = 0; i < 20; i++) net.connected(`fresh-${wave}-${i}`);
    });
    const start = nodes[0]!.chain.height;
    const { driver } = nodes[0]!;
    const regossipsBefore = { ...driver.regossipStats };
    const polkasBefore = driver.polkaStats.sent;
    await until('three more heights', () => nodes[0]!.chain.height >= start + 4n);
    stopListening();
    assert.equal(wave, 3);
    assert.equal(new Set(sent).size, sent.length, 'a consensus message was sent to every peer again');
    // Each wave connects just after a commit: the height is never overdue then, however slow the
    // machine, so no connection may bring the re-send forward.
    assert.equal(
      driver.regossipStats.onConnect,
      regossipsBefore.onConnect,
      'a connection re-sent the height',
    );
    // Direct sends to the peers that stayed: only a stall's re-send or a polka (a round failed on a
    // loaded machine) may explain them, never a connection.
    const explained =
      driver.regossipStats.rounds !== regossipsBefore.rounds || driver.polkaStats.sent !== polkasBefore;
    if (!explained)
      assert.deepEqual(
        directTo.filter((p) => !p.startsWith('fresh-')),
        [],
        'peers that stayed connected were sent the height again',
      );
    assert.ok(directTo.length > 0, 'the new peers got their catch-ups');
  } finally {
    for (const n of nodes) await stopNode(n);
  }
});

test('a stalled height is re-sent to each peer directly (gossip would drop it as seen), at most once per block interval', async () => {
  const hub = new MemoryNetworkHub();
  // One validator of four: it cannot decide, so its height stalls.
  const node = await startNode(hub, 'v0', tempDir(), validators[0]!.seed);
  const net = hub.member('v0')!;
  hub.join('peer-a', {
    onGossip: () => 'ignore',
    status: () => node.driver.status(),
    blocks: async () => [],
  });
  const published: string[] = [];
  const publish = net.publish.bind(net);
  net.publish = async (topic, data) => {
    if (topic === 'vote') published.push(toHex(gossipMessageId(topic, topic, data)));
    return publish(topic, data);
  };
  const direct: string[] = [];
  net.sendDirect = async (peer) => {
    direct.push(peer);
  };
  const before = direct.length;
  await until('a re-send of the stalled height', () => node.driver.regossipStats.rounds >= 2, 10_000);
  assert.ok(direct.slice(before).includes('peer-a'), 'the connected peer was sent the height');
  assert.equal(new Set(published).size, published.length, 'a vote was published twice');
  await stopNode(node);
});

test('a flood of fresh peer ids cannot take the catch-ups of peers that relay consensus messages', async () => {
  const hub = new MemoryNetworkHub();
  // One validator of four: it cannot decide, so its height and its messages stay put.
  const node = await startNode(hub, 'v0', tempDir(), validators[0]!.seed);
  const net = hub.member('v0')!;
  const direct: string[] = [];
  net.sendDirect = async (peer) => {
    direct.push(peer);
  };
  await until('the driver to run height 1', () => node.driver.position.height === 1n, 5_000);
  // Peers that relayed a genuine vote of the height being decided (another validator's).
  const gossip = node.driver.handlers().onGossip;
  const relays = ['relay-a', 'relay-b', 'relay-c'];
  for (const [i, relay] of relays.entries()) {
    const vote = signVote(
      'unc-dev-1',
      { type: 'prevote', height: 1n, round: i, blockHash: null, validator: validators[1]!.publicKey },
      validators[1]!.seed,
    );
    assert.equal(await gossip('vote', encode(voteMessageCodec, { vote, sentAt: 1n }), relay), 'accept');
  }
  // 1,000 fresh ids connect first, then the relays (their links flapped).
  for (let i = 0; i < 1_000; i++) net.connected(`sybil-${i}`);
  for (const relay of relays) net.connected(relay);
  await until('the relays’ catch-ups', () => relays.every((r) => direct.includes(r)), 5_000).catch(() => {});
  assert.deepEqual(
    relays.filter((r) => !direct.includes(r)),
    [],
    'relaying peers were refused their catch-up',
  );
  assert.ok(direct.filter((p) => p.startsWith('sybil-')).length <= 128);
  await stopNode(node);
});

test('sending back a vote this node already holds does not make a peer a relaying one (no catch-up priority)', async () => {
  // Direct messages bypass gossip's seen-cache: a fresh id sent the height's votes in its own
  // catch-up could send one back, have it accepted again, and join the peers whose catch-ups are
  // kept; a crowd of such ids then took every catch-up, a genuine relay's included.
  const hub = new MemoryNetworkHub();
  const node = await startNode(hub, 'v0', tempDir(), validators[0]!.seed);
  const net = hub.member('v0')!;
  const direct: string[] = [];
  net.sendDirect = async (peer) => {
    direct.push(peer);
  };
  await until('the driver to run height 1', () => node.driver.position.height === 1n, 5_000);
  const gossip = node.driver.handlers().onGossip;
  const vote = signVote(
    'unc-dev-1',
    { type: 'prevote', height: 1n, round: 0, blockHash: null, validator: validators[1]!.publicKey },
    validators[1]!.seed,
  );
  const wire = encode(voteMessageCodec, { vote, sentAt: 1n });
  assert.equal(await gossip('vote', wire, 'relay-a'), 'accept');
  const echoes = Array.from({ length: 300 }, (_, i) => `echo-${i}`);
  for (const echo of echoes) await gossip('vote', wire, echo);
  // 1,000 fresh ids take the catch-ups left to unproven peers; then the echoes, then the relay.
  for (let i = 0; i < 1_000; i++) net.connected(`sybil-${i}`);
  for (const echo of echoes) net.connected(echo);
  net.connected('relay-a');
  await until('the relay’s catch-up', () => direct.includes('relay-a'), 5_000).catch(() => {});
  assert.equal(direct.filter((p) => p.startsWith('echo-')).length, 0, 'echoing a held vote bought catch-ups');
  assert.ok(direct.includes('relay-a'), 'the relaying peer was refused its catch-up');
  // The same notion gives the relay the share of the /txs/1 serve budget kept for relaying peers.
  const { isRelayingPeer } = node.driver.handlers();
  assert.ok(isRelayingPeer, 'the network is not told which peers relay');
  assert.equal(isRelayingPeer('relay-a'), true);
  assert.equal(isRelayingPeer('echo-0'), false);
  assert.equal(isRelayingPeer('sybil-0'), false);
  await stopNode(node);
});

test('fetches for a decided height let go of their requests and slots at once, not after a request timeout', async () => {
  // Compact proposals whose ids nobody serves, from peers that never answer: each fetch held an
  // overall slot (9 in all) until its request timed out, long after its height was decided.
  const hub = new MemoryNetworkHub();
  const nodes = await Promise.all(validators.map((v, i) => startNode(hub, `v${i}`, tempDir(), v.seed)));
  const follower = await startNode(hub, 'follower', tempDir());
  const unanswered: (() => void)[] = [];
  try {
    await until('height 2 on the follower', () => follower.chain.height >= 2n);
    const net = hub.member('follower')!;
    const held: AbortSignal[] = [];
    net.requestTxs = (_peer, _hash, _ids, signal) => {
      if (signal) held.push(signal);
      // A peer that never answers; only the caller's signal ends the wait (or the test's end: a
      // real request has its own deadline, this one none, and a fetch still held when the test
      // fails would hold the follower's stop, and the test file, for ever).
      return new Promise((_resolve, reject) => {
        signal?.addEventListener('abort', () => reject(new Error('abandoned')));
        unanswered.push(() => reject(new Error('the test is over')));
      });
    };
    const gossip = follower.driver.handlers().onGossip;
    let sentAt = 0n;
    const stopListening = follower.driver.onCommit((c) => {
      if (sentAt !== 0n) return;
      const height = c.block.header.height + 1n;
      sentAt = height;
      const set = follower.chain.validatorSet();
      const beacon = follower.chain.head.header.beacon;
      for (const round of [0, 1])
        for (let i = 0; i < 4; i++) {
          const proposer = validators.find((v) =>
            equalBytes(v.publicKey, selectProposer(set, beacon, height, round).publicKey),
          )!;
          const env = envelopeFromSigned(
            signTransaction(
              {
                chainId: 'unc-dev-1',
                signer: devKey(1).publicKey,
                nonce: 0n,
                expiresAt: 1_000n,
                // Another fee, another transaction: eight blocks, each needing a fetch.
                fee: parseUnc(String(1 + round * 4 + i)),
                actions: [transferAction('unc1vystcnlgdeut2u2v57a0lacv4url68zepr0t34', parseUnc('1'))],
              },
              devKey(1).seed,
            ),
          );
          const { pending } = follower.chain.buildProposal(
            [env],
            follower.chain.nextBlockTime(BigInt(Date.now())),
            { seed: proposer.seed, publicKey: proposer.publicKey },
            () => false,
          );
          assert.equal(pending.block.txs.length, 1);
          const proposal = signProposal(
            'unc-dev-1',
            { height, round, polRound: -1, blockHash: pending.hash, proposer: proposer.publicKey },
            proposer.seed,
          );
          const message = { proposal, block: pending.block, lastCommit: pending.lastCommit, sentAt: 1n };
          void gossip(
            'compact-proposal',
            encode(compactProposalCodec, compactOf(withIds(message, proposer.seed))),
            `silent-${round}-${i}`,
          );
        }
    });
    // Sent while the follower waits for that height: only the first content of each round is
    // fetched (a further one would be ignored once rebuilt), so one fetch per round at least.
    await until('the fetches to start', () => held.length >= 2, 30_000);
    stopListening();
    await until('the height they were for to be decided', () => follower.chain.height >= sentAt);
    // The fake peer never times a request out, so any bound tells "let go" from "held".
    await until('every request to be let go', () => held.every((s) => s.aborted), 30_000).catch(() => {});
    assert.deepEqual(
      held.map((s) => s.aborted),
      held.map(() => true),
      'a fetch for a decided height still holds its request',
    );
  } finally {
    for (const answer of unanswered) answer();
    for (const n of [...nodes, follower]) await stopNode(n);
  }
});

test('catch-ups share one encoding of each message: a crowd of new peers does not make the node encode the height once per peer', async () => {
  const hub = new MemoryNetworkHub();
  // Alone on the network with a quarter of the power: a fresh signer would wait for a peer to
  // compare its chain store with (driver.ts `caughtUpToSign`); this test needs its votes.
  const node = await startNode(hub, 'v0', tempDir(), validators[0]!.seed, TIMEOUTS, true);
  const net = hub.member('v0')!;
  const published: string[] = [];
  const publish = net.publish.bind(net);
  net.publish = async (topic, data) => {
    published.push(topic);
    return publish(topic, data);
  };
  const direct: (readonly DirectMessage[])[] = [];
  net.sendDirect = async (_peer, messages) => {
    direct.push(messages);
  };
  await until('a vote of its own to catch peers up with', () => published.includes('vote'), 5_000);
  net.connected('new-1');
  net.connected('new-2');
  await until('both catch-ups', () => direct.length === 2, 5_000);
  const [first, second] = direct as [readonly DirectMessage[], readonly DirectMessage[]];
  assert.ok(first.length > 0);
  assert.equal(second.length, first.length);
  for (const [i, m] of first.entries()) {
    assert.equal(second[i]!.topic, m.topic);
    // The same bytes, not an equal copy: encoded once, held once while sends are in flight.
    assert.ok(second[i]!.data === m.data, `message ${i} (${m.topic}) encoded again`);
  }
  await stopNode(node);
});

test("a block's pre-check on the workers only for its round's proposer, one block per round: other validators' and a proposer's extra blocks are not pre-checked", async () => {
  // Any validator may sign proposals and a proposer may sign many blocks for its round; before,
  // each distinct block made every validator's workers check all of its signatures first.
  const hub = new MemoryNetworkHub();
  const node = await startNode(hub, 'v0', tempDir(), validators[0]!.seed);
  try {
    let poolChecks = 0;
    const pool = node.verifyPool;
    const verify = pool.verify.bind(pool);
    pool.verify = (checks, lane) => {
      if (lane === 'consensus') poolChecks += checks.length;
      return verify(checks, lane);
    };
    await until('the driver to run height 1', () => node.driver.position.height === 1n);
    const gossip = node.driver.handlers().onGossip;
    const params = node.chain.params;
    const txsPerBlock = 12;
    // Distinct valid blocks: the same sender's transfers, a different amount in each block.
    const transfers = (amount: bigint) =>
      Array.from({ length: txsPerBlock }, (_, i) => devTransfer(params, BigInt(i), amount));
    let sent = 0;
    let amount = 1n;
    // A relay's altered copies first: genuine signed proposals with other transactions attached
    // (the header commits to the transactions, so these are refused); none is pre-checked, and
    // none takes the round's turn from the genuine block.
    for (const round of [0, 1]) {
      for (const v of validators.slice(1)) {
        const signedFor = node.chain.buildProposal(
          transfers(1000n + amount++),
          node.chain.nextBlockTime(BigInt(Date.now())),
          { seed: v.seed, publicKey: v.publicKey },
          () => false,
        ).pending;
        const proposal = signProposal(
          'unc-dev-1',
          { height: 1n, round, polRound: -1, blockHash: signedFor.hash, proposer: v.publicKey },
          v.seed,
        );
        const block = { ...signedFor.block, txs: transfers(2000n + amount++).map((t) => t.bytes) };
        // The proposer's signature over the genuine transaction ids, carried with other transactions.
        const { idsSignature } = withIds(
          { proposal, block: signedFor.block, lastCommit: signedFor.lastCommit, sentAt: 1n },
          v.seed,
        );
        const message = { proposal, block, lastCommit: signedFor.lastCommit, sentAt: 1n, idsSignature };
        await gossip('proposal', encode(proposalMessageCodec, message), `relay-${sent++}`);
      }
    }
    assert.equal(poolChecks, 0, 'a body its proposer did not sign was pre-checked');
    for (const round of [0, 1]) {
      for (const v of validators.slice(1)) {
        for (let copy = 0; copy < 3; copy++) {
          const { pending } = node.chain.buildProposal(
            transfers(amount++),
            node.chain.nextBlockTime(BigInt(Date.now())),
            { seed: v.seed, publicKey: v.publicKey },
            () => false,
          );
          assert.equal(pending.block.txs.length, txsPerBlock);
          const proposal = signProposal(
            'unc-dev-1',
            { height: 1n, round, polRound: -1, blockHash: pending.hash, proposer: v.publicKey },
            v.seed,
          );
          const message = withIds(
            { proposal, block: pending.block, lastCommit: pending.lastCommit, sentAt: 1n },
            v.seed,
          );
          await gossip('proposal', encode(proposalMessageCodec, message), `relay-${sent++}`);
        }
      }
    }
    // 18 genuine blocks of 12 signatures came in (216 checks before); at most one block per round of
    // height 1 that its proposer proposed is pre-checked (rounds 0 and 1).
    assert.ok(node.driver.position.height === 1n, 'still deciding height 1');
    assert.ok(poolChecks <= 2 * txsPerBlock, `${poolChecks} signatures pre-checked for ${sent} blocks`);
    // The proposer's own first block still is (height 1's proposers here are among v1-v3).
    assert.ok(poolChecks >= txsPerBlock, `${poolChecks} signatures pre-checked`);
  } finally {
    await stopNode(node);
  }
});

test("a relay's copy of a valid proposal with a transaction's signature altered (the header does not commit to it) is refused before any check, and the genuine copy is valid and pre-checked", async () => {
  const hub = new MemoryNetworkHub();
  const node = await startNode(hub, 'v0', tempDir(), validators[0]!.seed);
  try {
    let poolChecks = 0;
    const pool = node.verifyPool;
    const verify = pool.verify.bind(pool);
    pool.verify = (checks, lane) => {
      if (lane === 'consensus') poolChecks += checks.length;
      return verify(checks, lane);
    };
    await until('the driver to run height 1', () => node.driver.position.height === 1n);
    const gossip = node.driver.handlers().onGossip;
    const params = node.chain.params;
    const transfers = Array.from({ length: 12 }, (_, i) => devTransfer(params, BigInt(i), 5n));
    // The round's own proposer (not this node), so that its block is the one pre-checked.
    const driver = node.driver as unknown as { proposerAt(height: bigint, round: number): Uint8Array };
    const round = [0, 1, 2, 3].find(
      (r) => toHex(driver.proposerAt(1n, r)) !== toHex(validators[0]!.publicKey),
    )!;
    const proposer = validators.find((v) => toHex(v.publicKey) === toHex(driver.proposerAt(1n, round)))!;
    const { pending } = node.chain.buildProposal(
      transfers,
      node.chain.nextBlockTime(BigInt(Date.now())),
      { seed: proposer.seed, publicKey: proposer.publicKey },
      () => false,
    );
    assert.equal(pending.block.txs.length, transfers.length);
    const proposal = signProposal(
      'unc-dev-1',
      { height: 1n, round, polRound: -1, blockHash: pending.hash, proposer: proposer.publicKey },
      proposer.seed,
    );
    const genuine = withIds(
      { proposal, block: pending.block, lastCommit: pending.lastCommit, sentAt: 1n },
      proposer.seed,
    );
    // The same header, transaction ids and transactions root: only a signature's last byte differs.
    const alteredCopy = (flip: number) => {
      const txs = pending.block.txs.map((t) => t.slice());
      txs[0]![txs[0]!.length - 1]! ^= flip;
      return encode(proposalMessageCodec, { ...genuine, block: { ...pending.block, txs } });
    };
    // The altered copy still carries the proposer's signature over the genuine transaction ids: it
    // is refused as altered in transit, before any signature of it is checked.
    assert.equal(await gossip('proposal', alteredCopy(1), 'relay-evil'), 'reject');
    assert.equal(poolChecks, 0, 'nothing of the altered copy was checked');
    // The genuine copy: valid, and pre-checked on the workers.
    assert.equal(await gossip('proposal', encode(proposalMessageCodec, genuine), 'relay-good'), 'accept');
    assert.ok(poolChecks >= 1, 'the genuine copy was pre-checked');
    // Later altered copies are refused too; the genuine one, already relayed, is not relayed again.
    assert.equal(await gossip('proposal', alteredCopy(2), 'relay-evil-2'), 'reject');
    assert.equal(await gossip('proposal', encode(proposalMessageCodec, genuine), 'relay-good-2'), 'ignore');
  } finally {
    await stopNode(node);
  }
});

test('a proposal whose own copy has a forged signature is still refused when no valid copy comes first', async () => {
  const hub = new MemoryNetworkHub();
  const node = await startNode(hub, 'v0', tempDir(), validators[0]!.seed);
  try {
    await until('the driver to run height 1', () => node.driver.position.height === 1n);
    const gossip = node.driver.handlers().onGossip;
    const params = node.chain.params;
    const env = devTransfer(params, 0n, 5n);
    const v1 = validators[1]!;
    const { pending } = node.chain.buildProposal(
      [env],
      node.chain.nextBlockTime(BigInt(Date.now())),
      { seed: v1.seed, publicKey: v1.publicKey },
      () => false,
    );
    const proposal = signProposal(
      'unc-dev-1',
      { height: 1n, round: 0, polRound: -1, blockHash: pending.hash, proposer: v1.publicKey },
      v1.seed,
    );
    const txs = pending.block.txs.map((t) => t.slice());
    txs[0]![txs[0]!.length - 1]! ^= 1;
    // The proposer itself signed the transaction ids of the forged copy: its own block is invalid.
    const forged = encode(
      proposalMessageCodec,
      withIds(
        { proposal, block: { ...pending.block, txs }, lastCommit: pending.lastCommit, sentAt: 1n },
        v1.seed,
      ),
    );
    // Every copy that carries the forged signature is refused (not forwarded), the first and those
    // after it; none is held against the peer that passed it on: the proposer signed those bytes,
    // and a relay forwards a proposal unchecked while it buffers it (driver.ts routeProposal).
    const net = hub.member('v0')!;
    const blamed: string[] = [];
    net.penalize = (peer) => blamed.push(peer);
    for (const from of ['a', 'b', 'c']) assert.equal(await gossip('proposal', forged, from), 'ignore');
    assert.deepEqual(blamed, []);
  } finally {
    await stopNode(node);
  }
});

test('paceHeights: a node started with it off never paces its proposals; one left on counts its heights', async () => {
  const hub = new MemoryNetworkHub();
  const nodes = await Promise.all(
    validators.map(async (v, i) => {
      const node = await UncNode.start({
        dataDir: tempDir(),
        genesis,
        validatorSeed: v.seed,
        rpcPort: 0,
        timeouts: TIMEOUTS,
        logger: silentLogger,
        network: async (handlers) => hub.join(`v${i}`, handlers),
        // Two with the loop off (config.json consensus.paceHeights false), two with the default.
        ...(i < 2 ? { paceHeights: false } : {}),
      });
      running.add(node);
      return node;
    }),
  );
  // Heights decided in round 0 are counted by the nodes that pace (not a timing: which heights
  // were counted, not how long they took).
  await until('the pacing nodes to be shown heights', () =>
    nodes.slice(2).every((n) => n.driver!.heightPace.heightsSeen > 0),
  );
  for (const n of nodes.slice(0, 2)) {
    assert.equal(n.driver!.heightPace.heightsSeen, 0, 'a node with pacing off was shown a height');
    assert.ok(Number.isNaN(n.driver!.heightPace.recentHeightMs), 'a node with pacing off counted a height');
    assert.equal(n.driver!.proposalBudget.pace, 1);
  }
  for (const n of nodes) await stopNode(n);
});
