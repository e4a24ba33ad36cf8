/**
 * Carried bodies (compact-block.ts): a proposer sends with its compact proposal the bodies of the
 * transactions its peers very probably lack yet (those it admitted only just now), so that they
 * need not fetch them from it, the busiest node, before the propose timeout.
 */
import assert from 'node:assert/strict';
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
  type TxEnvelope,
  toHex,
  ValidationError,
} from '@unc/core';
import { transferAction } from '@unc/sdk';
import { until as waitUntil } from '@unc/test-utils';
import fc from 'fast-check';
import { AdmissionBusy } from '../../src/admission.js';
import { systemClock } from '../../src/clock.js';
import {
  AdmissionTimes,
  carriedMatchesIds,
  carrying,
  compactOf,
  encodeCompactWithin,
  MAX_CARRIED_BYTES,
  mayBeMissingAtPeers,
  Rebuild,
  wireTxId,
} from '../../src/consensus/compact-block.js';
import { MempoolReactor } from '../../src/consensus/mempool-reactor.js';
import {
  type CompactProposalMessage,
  compactProposalCodec,
  MAX_COMPACT_PROPOSAL_BYTES,
  type ProposalMessage,
  txBatchCodec,
} from '../../src/consensus/wire.js';
import { devGenesisJson, devKey } from '../../src/dev.js';
import type { NetworkHandlers } from '../../src/p2p/types.js';
import { MemoryNetworkHub } from './memory-network.js';
import { withIds } from './signed-ids.js';
import { fourValidatorGenesis, TestNodes, validators } from './test-nodes.js';

const nodes = new TestNodes();
after(() => nodes.stopAll());

function transfer(nonce: bigint, payer = 1): Uint8Array {
  const key = devKey(payer);
  const body = {
    chainId: 'unc-dev-1',
    signer: key.publicKey,
    nonce,
    expiresAt: 1_000n,
    fee: parseUnc('1'),
    actions: [transferAction('unc1vystcnlgdeut2u2v57a0lacv4url68zepr0t34', parseUnc('1'))],
  };
  return envelopeFromSigned(signTransaction(body, key.seed)).bytes;
}

/** A compact message over `txs` (header and signatures made up: only the carried rule is looked at). */
function compactOver(txs: Uint8Array[], carried: Uint8Array[]): CompactProposalMessage {
  const zero = new Uint8Array(32);
  const commit = { height: 4n, round: 0, blockHash: zero, signatures: [] };
  const msg = {
    proposal: {
      height: 5n,
      round: 0,
      polRound: -1,
      blockHash: zero,
      proposer: zero,
      signature: new Uint8Array(64),
    },
    block: { header: {}, txs, commit },
    lastCommit: commit,
    idsSignature: new Uint8Array(64),
    sentAt: 1n,
  } as unknown as ProposalMessage;
  return compactOf(msg, carried);
}

describe('carried bodies: the pure parts', () => {
  test('a transaction may be missing at peers while admitted here within the last block interval', () => {
    assert.equal(mayBeMissingAtPeers(undefined, 1_000, 1_000), false, 'unknown: not carried');
    assert.equal(mayBeMissingAtPeers({ at: 500 }, 1_000, 1_000), true);
    assert.equal(mayBeMissingAtPeers({ at: 1 }, 1_000, 1_000), true);
    assert.equal(mayBeMissingAtPeers({ at: 0 }, 1_000, 1_000), false);
  });

  test('admission times are bounded in count, the oldest forgotten first', () => {
    const times = new AdmissionTimes(2);
    const hashes = [1, 2, 3].map((i) => new Uint8Array(32).fill(i));
    for (const [i, h] of hashes.entries()) times.record(h, { at: i });
    assert.equal(times.size, 2);
    assert.equal(times.get(hashes[0]!), undefined);
    assert.deepEqual(times.get(hashes[2]!), { at: 2 });
  });

  test('carried bodies must be transactions of the signed ids, in block order, each once, within the byte bound', () => {
    const txs = [transfer(0n), transfer(1n), transfer(2n)];
    assert.equal(carriedMatchesIds(compactOver(txs, [])), true);
    assert.equal(carriedMatchesIds(compactOver(txs, [txs[0]!, txs[2]!])), true);
    assert.equal(carriedMatchesIds(compactOver(txs, [txs[2]!, txs[0]!])), false, 'out of order');
    assert.equal(carriedMatchesIds(compactOver(txs, [txs[1]!, txs[1]!])), false, 'twice');
    assert.equal(carriedMatchesIds(compactOver(txs, [transfer(7n)])), false, 'not in the block');
    const other = txs[1]!.slice();
    other[other.length - 1]! ^= 1; // same transaction hash, other signature bytes: another wire id
    assert.equal(carriedMatchesIds(compactOver(txs, [other])), false, 'other bytes under the same hash');
    const big = new Uint8Array(MAX_CARRIED_BYTES + 1);
    const huge = compactOver(txs, []);
    assert.equal(
      carriedMatchesIds({ ...huge, txIds: [wireTxId(big)], carried: [big] }),
      false,
      'over the bound',
    );
  });

  test('a compact proposal is rebuilt from its carried bodies without holding or fetching them', () => {
    const txs = [transfer(0n), transfer(1n), transfer(2n)];
    const held = new Map([[toHex(wireTxId(txs[0]!)), txs[0]!]]);
    const rebuild = new Rebuild(compactOver(txs, [txs[1]!, txs[2]!]), (id) => held.get(toHex(id)));
    assert.equal(rebuild.complete, true);
    assert.deepEqual(rebuild.full().block.txs, txs);
    const partly = new Rebuild(compactOver(txs, [txs[2]!]), (id) => held.get(toHex(id)));
    assert.deepEqual(partly.missing().map(toHex), [toHex(wireTxId(txs[1]!))]);
  });

  test('a compact proposal with a full block’s ids and 1 MiB of bodies is cut to the topic’s ceiling, its bodies from the end', () => {
    // 99,000 ids (small transactions, a block within 8 MiB) and 1 MiB of bodies.
    const bodies = Array.from({ length: 16 }, (_, i) => new Uint8Array(64 * 1024 - 64).fill(i));
    const zero = new Uint8Array(32);
    const header = {
      chainId: 'unc-dev-1',
      height: 5n,
      time: 1n,
      prevHash: zero,
      stateRoot: zero,
      txRoot: zero,
      proposer: zero,
      beacon: zero,
      vrfProof: new Uint8Array(80),
      lastCommitHash: zero,
    };
    const msg: CompactProposalMessage = {
      ...compactOver([], []),
      header,
      txIds: [...bodies.map(wireTxId), ...Array.from({ length: 99_000 }, () => new Uint8Array(32))],
      carried: bodies,
    };
    assert.ok(
      encode(compactProposalCodec, msg).byteLength > MAX_COMPACT_PROPOSAL_BYTES,
      'whole, it is too large',
    );
    const data = encodeCompactWithin(msg);
    assert.ok(data.byteLength <= MAX_COMPACT_PROPOSAL_BYTES);
    const sent = decode(compactProposalCodec, data);
    assert.ok(sent.carried.length > 0 && sent.carried.length < bodies.length);
    assert.deepEqual(sent.carried, bodies.slice(0, sent.carried.length));
    assert.equal(carriedMatchesIds(sent), true);
    // One that fits goes as it is.
    const small = { ...msg, txIds: msg.txIds.slice(0, 16) };
    assert.deepEqual(encodeCompactWithin(small), encode(compactProposalCodec, small));
  });

  test('a rebuild under way is filled from another copy of the proposal, and a fetch answer crossing it is no fault', () => {
    const txs = [transfer(0n), transfer(1n), transfer(2n)];
    const stripped = new Rebuild(compactOver(txs, []), () => undefined);
    const asked = stripped.missing();
    assert.equal(asked.length, 3);
    // Only signed transactions go in: a body of no id of the list fills nothing.
    assert.equal(stripped.fillFrom([transfer(9n), txs[1]!]), false);
    assert.equal(stripped.completedByCopy.aborted, false);
    assert.deepEqual(stripped.missing().map(toHex), [toHex(wireTxId(txs[0]!)), toHex(wireTxId(txs[2]!))]);
    // The answer to the request sent before (all three) fills the rest, the one already filled too.
    assert.equal(stripped.fill(txs), true);
    assert.equal(stripped.complete, true);
    assert.deepEqual(stripped.full().block.txs, txs);
    // Completed by a copy: the fetch under way is told to stop.
    const other = new Rebuild(compactOver(txs, []), () => undefined);
    assert.equal(other.fillFrom(txs), true);
    assert.equal(other.fillFrom(txs), false, 'completed once: a further copy hands nothing on');
    assert.equal(other.completedByCopy.aborted, true);
    // A transaction of no id asked is still the answering peer's fault.
    const third = new Rebuild(compactOver(txs, []), () => undefined);
    assert.equal(third.fill([transfer(9n)]), false);
  });

  test('carrying: fresh candidates go in with their bodies until the bound; past it they are left out, not taken', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({ size: fc.integer({ min: 1, max: 50 }), fresh: fc.boolean(), accept: fc.boolean() }),
          {
            maxLength: 40,
          },
        ),
        fc.integer({ min: 0, max: 200 }),
        (candidates, bound) => {
          const envs = candidates.map((c, i) => ({
            hash: new Uint8Array([i]),
            bytes: new Uint8Array(c.size),
          }));
          const answers: (boolean | undefined)[] = [];
          function* source(): Generator<TxEnvelope, void, boolean | undefined> {
            for (const env of envs) answers.push(yield env as unknown as TxEnvelope);
          }
          const carried: TxEnvelope[] = [];
          const gen = carrying(source(), (env) => candidates[env.hash[0]!]!.fresh, bound, carried);
          const taken: number[] = [];
          for (let next = gen.next(); !next.done; ) {
            const i = next.value.hash[0]!;
            const accept = candidates[i]!.accept;
            if (accept) taken.push(i);
            next = gen.next(accept);
          }
          // Carried: exactly the fresh ones taken, in order, within the bound.
          const carriedIdx = carried.map((e) => e.hash[0]!);
          assert.deepEqual(
            carriedIdx,
            taken.filter((i) => candidates[i]!.fresh),
          );
          assert.ok(carried.reduce((n, e) => n + e.bytes.byteLength, 0) <= bound);
          // Every candidate got an answer; a fresh one past the bound was answered "not taken".
          assert.equal(answers.length, envs.length);
          let bytes = 0;
          for (const [i, c] of candidates.entries()) {
            if (!c.fresh) {
              assert.equal(answers[i], c.accept);
              continue;
            }
            if (bytes + c.size > bound)
              assert.equal(answers[i], false, 'past the bound: left for a later block');
            else {
              assert.equal(answers[i], c.accept);
              if (c.accept) bytes += c.size;
            }
          }
        },
      ),
    );
  });
});

test('a proposer carries the bodies of the transactions its own clients just sent', async () => {
  const hub = new MemoryNetworkHub();
  // One validator (it proposes every height) and a peer that only listens.
  const genesis = devGenesisJson({
    blockTimeMs: 300,
    validators: [{ publicKey: validators[0]!.publicKey, name: 'v0' }],
  });
  const node = await nodes.start(hub, genesis, 'unc-carried-test-');
  const heard: CompactProposalMessage[] = [];
  hub.join('listener', {
    onGossip: (topic, data) => {
      if (topic === 'compact-proposal') heard.push(decode(compactProposalCodec, data));
      return 'ignore';
    },
    status: () => node.driver.status(),
    blocks: async () => [],
    txs: () => [],
  });
  await waitUntil('the chain to run', () => node.chain.tipHeight >= 1n, {
    timeoutMs: 60_000,
    intervalMs: 20,
  });
  const tx = transfer(0n);
  node.submit(envelopeFromBytes(tx));
  await waitUntil('a compact proposal with the transaction', () => heard.some((m) => m.txIds.length > 0), {
    timeoutMs: 30_000,
    intervalMs: 10,
  });
  const msg = heard.find((m) => m.txIds.length > 0)!;
  assert.deepEqual(msg.txIds.map(toHex), [toHex(wireTxId(tx))]);
  // Just sent by its own client: the peers cannot hold it yet, so its body travels along.
  assert.deepEqual(msg.carried.map(toHex), [toHex(tx)]);
});

test('a validator uses a compact proposal whose missing transactions were carried, with no peer serving any; made-up bodies are rejected', async () => {
  const hub = new MemoryNetworkHub();
  const genesis = fourValidatorGenesis(150);
  const node = await nodes.start(hub, genesis, 'unc-carried-test-');
  const relayHandlers: NetworkHandlers = {
    onGossip: () => 'ignore',
    status: () => node.driver.status(),
    blocks: async () => [],
    txs: () => [],
  };
  hub.join('relay', relayHandlers);
  await waitUntil('the driver to run height 1', () => node.driver.position.height === 1n, {
    timeoutMs: 60_000,
    intervalMs: 25,
  });
  const gossip = node.driver.handlers().onGossip;
  const txs = [transfer(0n), transfer(1n)];
  const v1 = validators[1]!;
  const { pending } = node.chain.buildProposal(
    txs.map(envelopeFromBytes),
    node.chain.nextBlockTime(BigInt(Date.now())),
    { seed: v1.seed, publicKey: v1.publicKey },
    () => false,
  );
  assert.equal(pending.block.txs.length, 2);
  const proposal = signProposal(
    'unc-dev-1',
    { height: 1n, round: 0, polRound: -1, blockHash: pending.hash, proposer: v1.publicKey },
    v1.seed,
  );
  const message = withIds(
    { proposal, block: pending.block, lastCommit: pending.lastCommit, sentAt: 1n },
    v1.seed,
  );
  // A body that is no transaction of the signed list: made up on the way, rejected.
  const madeUp = encode(compactProposalCodec, compactOf(message, [transfer(9n)]));
  assert.equal(await gossip('compact-proposal', madeUp, 'relay'), 'reject');
  // The genuine one, both bodies carried: rebuilt and used with nothing fetched.
  const carried = encode(compactProposalCodec, compactOf(message, txs));
  assert.equal(await gossip('compact-proposal', carried, 'relay'), 'accept');
  assert.deepEqual(
    node.driver.handlers().txs!(pending.hash, [wireTxId(txs[1]!)]),
    [txs[1]!],
    'the block is held',
  );
  // The same proposal carrying another subset: a different message, not relayed again.
  const stripped = encode(compactProposalCodec, compactOf(message, [txs[0]!]));
  assert.notEqual(await gossip('compact-proposal', stripped, 'relay2'), 'accept');
});

test('gossiped transactions rebuild a proposal from their arrival: still queued for admission, or not admitted (busy queue, refused)', async () => {
  let answer: (envs: readonly TxEnvelope[]) => Promise<(ValidationError | { replaced: boolean })[]>;
  const reactor = new MempoolReactor({
    clock: systemClock,
    admitTx: () => {
      throw new ValidationError('NONCE_GAP', 'too far ahead');
    },
    admitTxs: (envs: readonly TxEnvelope[]) => answer(envs) as never,
    publishBatch: () => {},
    connected: () => true,
  });
  // Still waiting in the admission queue (under load, for a second or more).
  let admit: () => void = () => {};
  answer = (envs) => new Promise((resolve) => (admit = () => resolve(envs.map(() => ({ replaced: false })))));
  const queued = transfer(3n);
  const verdict = reactor.onTxGossip(encode(txBatchCodec, [queued]), 'relay');
  assert.deepEqual(reactor.lookup(wireTxId(queued)), queued, 'held while queued for admission');
  admit();
  assert.equal(await verdict, 'accept');
  const busy = [transfer(0n), transfer(1n)];
  answer = async () => {
    throw new AdmissionBusy(1);
  };
  assert.equal(await reactor.onTxGossip(encode(txBatchCodec, busy), 'relay'), 'ignore');
  for (const tx of busy)
    assert.deepEqual(reactor.lookup(wireTxId(tx)), tx, 'held though not admitted (queue full)');
  const refused = transfer(5n);
  answer = async (envs) => envs.map(() => new ValidationError('NONCE_GAP', 'too far ahead'));
  assert.equal(await reactor.onTxGossip(encode(txBatchCodec, [refused]), 'relay'), 'ignore');
  assert.deepEqual(reactor.lookup(wireTxId(refused)), refused, 'held though refused by this node’s state');
});

test('a copy with its bodies stripped, raced first: the genuine copy’s bodies complete its rebuild, whose fetch stops', async () => {
  const hub = new MemoryNetworkHub();
  const genesis = fourValidatorGenesis(150);
  // Every peer asked for transactions holds the request until it is given up (a relay that raced
  // a stripped copy and never answers, then peers as busy as the proposer).
  const asked: string[] = [];
  const node = await nodes.start(hub, genesis, 'unc-carried-test-', {
    network: async (handlers) => {
      const net = hub.join('v0', handlers);
      net.requestTxs = (peer, _hash, _ids, signal) => {
        asked.push(peer);
        return new Promise((_, reject) => {
          if (signal?.aborted) reject(signal.reason);
          signal?.addEventListener('abort', () => reject(signal.reason), { once: true });
        });
      };
      return net;
    },
  });
  for (const peer of ['relay', 'relay2'])
    hub.join(peer, { onGossip: () => 'ignore', status: () => node.driver.status(), blocks: async () => [] });
  await waitUntil('the driver to run height 1', () => node.driver.position.height === 1n, {
    timeoutMs: 60_000,
    intervalMs: 25,
  });
  const gossip = node.driver.handlers().onGossip;
  // Only v0 runs: it stays in round 0. The proposal is its round's own proposer's (worth a fetch).
  const set = node.chain.validatorSet();
  const beacon = node.chain.head.header.beacon;
  const proposerOf = (round: number) =>
    validators.find((v) => equalBytes(v.publicKey, selectProposer(set, beacon, 1n, round).publicKey))!;
  const round = [0, 1].find((r) => proposerOf(r) !== validators[0])!;
  const proposer = proposerOf(round);
  const txs = [transfer(0n), transfer(1n)];
  const { pending } = node.chain.buildProposal(
    txs.map(envelopeFromBytes),
    node.chain.nextBlockTime(BigInt(Date.now())),
    { seed: proposer.seed, publicKey: proposer.publicKey },
    () => false,
  );
  const proposal = signProposal(
    'unc-dev-1',
    { height: 1n, round, polRound: -1, blockHash: pending.hash, proposer: proposer.publicKey },
    proposer.seed,
  );
  const message = withIds(
    { proposal, block: pending.block, lastCommit: pending.lastCommit, sentAt: 1n },
    proposer.seed,
  );
  // The relay strips the bodies and gets its copy in first: this node starts fetching from it.
  let strippedVerdict: string | undefined;
  const stripped = Promise.resolve(
    gossip('compact-proposal', encode(compactProposalCodec, compactOf(message, [])), 'relay'),
  ).then((v) => (strippedVerdict = v));
  await waitUntil('the fetch to start', () => asked.length > 0, { timeoutMs: 30_000, intervalMs: 5 });
  assert.equal(asked[0], 'relay');
  // The genuine copy, carrying both bodies, arrives while that fetch waits: it completes the block.
  const genuine = encode(compactProposalCodec, compactOf(message, txs));
  assert.equal(await gossip('compact-proposal', genuine, 'relay2'), 'accept');
  // The fetch under way stops (before, it held its slot and that relay's turn until given up).
  await waitUntil('the stripped copy’s fetch to stop', () => strippedVerdict !== undefined, {
    timeoutMs: 20_000,
    intervalMs: 10,
  });
  assert.equal(await stripped, 'ignore', 'the genuine copy handed the block on, not this one');
  assert.deepEqual(
    node.driver.handlers().txs!(pending.hash, [wireTxId(txs[0]!), wireTxId(txs[1]!)]),
    txs,
    'the block is held',
  );
});
