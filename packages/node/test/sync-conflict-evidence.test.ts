// A sync conflict proves double signing (attack review): a peer serving a block the head's
// validators certified that does not extend the head holds, one height below, a block certified
// at the head's height other than the head. Both commits of one round: every validator in both
// signed two conflicting precommits of one slot. Sync was only refused; the evidence was lost.
// The dev chain has one validator, which signs both histories (real keys, real signatures).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  blockCodec,
  type ConsensusEvidence,
  certificateFromVotes,
  commitFromCertificate,
  consensusEvidenceCodec,
  decode,
  ed25519PublicKey,
  encode,
  evidenceOffender,
  sha256,
  signVote,
  toHex,
  utf8,
} from '@unc/core';
import type { Chain } from '../src/chain.js';
import { systemClock } from '../src/clock.js';
import { EvidencePool } from '../src/consensus/evidence-pool.js';
import { checkEvidenceGossip } from '../src/consensus/gossip-checks.js';
import { commitConflictEvidence } from '../src/consensus/sync-evidence.js';
import { SyncReactor } from '../src/consensus/sync-reactor.js';
import { devValidator, devValidatorKey } from '../src/dev.js';
import { silentLogger } from '../src/log.js';
import { Mempool } from '../src/mempool.js';
import { chainServer } from '../src/sync.js';
import {
  type FakePeer,
  fakeNetwork,
  grow,
  newLog,
  peerOf,
  recordingLogger,
  tempChains,
} from './sync-fakes.js';

const chains = tempChains('unc-sync-evidence-');
after(() => chains.close());

const dev = devValidator();
const KEY = { seed: dev.seed, publicKey: ed25519PublicKey(dev.seed) };

describe('a sync conflict proves double signing', () => {
  let real: Chain;
  let fork: Chain;
  const FORK_AT = 5n;
  const HEAD = 10n;

  before(async () => {
    real = await chains.open();
    fork = await chains.open();
    await grow(real, 20n);
    await grow(fork, FORK_AT);
    await grow(fork, 30n, 500n);
  });

  test('a peer serving a conflicting certified block yields duplicate-vote evidence the evidence pool takes and submits; the chain stays', async () => {
    const behind = await chains.open();
    await grow(behind, HEAD);
    const mempool = new Mempool();
    const published: Uint8Array[] = [];
    const pool = new EvidencePool({
      chain: behind,
      validator: KEY,
      logger: silentLogger,
      nextValidators: () => behind.validatorSet(),
      admitTx: (env) => {
        const head = behind.tip.header;
        mempool.add(env, behind.tipState, behind.params, {
          chainId: behind.genesis.chainId,
          height: head.height + 1n,
          time: head.time + 1n,
          proposer: head.proposer,
          prevHash: behind.tip.hash,
          prevBeacon: head.beacon,
          beacon: new Uint8Array(32),
        });
      },
      announceTx: () => {},
      publishEvidence: (data) => published.push(data),
    });
    const found: ConsensusEvidence[] = [];
    const accepted: boolean[] = [];
    const lines: string[] = [];
    const r = new SyncReactor({
      clock: systemClock,
      chain: behind,
      logger: recordingLogger(lines),
      onSynced: () => {},
      onEvidence: (e) => {
        found.push(e);
        accepted.push(pool.reportEvidence(e, 'sync'));
      },
    });
    await r.catchUp(fakeNetwork(real, { oldKeys: peerOf(fork) }, newLog()));
    await r.probesSettled();
    // Never switches chains because of it.
    assert.equal(behind.height, HEAD);
    assert.notEqual(r.conflict, null);
    assert.equal(found.length, 1, 'no evidence from two certified blocks at one height');
    const evidence = found[0]!;
    assert.equal(evidence.type, 'duplicate-vote');
    assert.equal(evidence.first.height, HEAD);
    assert.equal(toHex(evidenceOffender(evidence)), toHex(KEY.publicKey));
    assert.deepEqual(accepted, [true], 'the evidence pool refused it');
    // Gossiped in the pool's own format, which a peer's gossip check accepts.
    assert.equal(published.length, 1);
    assert.deepEqual(published[0], encode(consensusEvidenceCodec, evidence));
    const checked = checkEvidenceGossip(published[0]!, {
      chainId: behind.genesis.chainId,
      validators: behind.validatorSet(),
      hasEnoughAgainst: () => false,
      canLand: () => true,
    });
    assert.ok(
      'deliver' in checked,
      `gossip check refused it: ${String((checked as { verdict?: unknown }).verdict)}`,
    );
    // Put on chain by this validator: an evidence transaction admitted to the mempool.
    assert.equal(mempool.size, 1, 'no evidence transaction admitted');
    assert.ok(
      lines.some((l) => l.startsWith('error DOUBLE SIGNING')),
      'not logged loudly',
    );
    // Probed once: a later sync attempt asks no more.
    const log = newLog();
    await r.catchUp(fakeNetwork(real, { oldKeys: peerOf(fork) }, log));
    await r.probesSettled();
    assert.equal(found.length, 1);
    assert.deepEqual(log.asked, new Map(), 'asked again after the stop');
  });

  test('the evidence probe does not hold catchUp (the driver runs it in its consensus queue)', async () => {
    const behind = await chains.open();
    await grow(behind, HEAD);
    const server = chainServer(fork);
    let asked!: () => void;
    const probeAsked = new Promise<void>((resolve) => {
      asked = resolve;
    });
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    // Serves the fork, but holds its answer to the probe (its block at our head's height).
    const holding: FakePeer = {
      claim: () => fork.height,
      blocks: async (from, to) => {
        if (from !== HEAD) return server.blocks(from, to);
        asked();
        await released;
        return server.blocks(from, to);
      },
    };
    const found: ConsensusEvidence[] = [];
    const r = new SyncReactor({
      clock: systemClock,
      chain: behind,
      logger: silentLogger,
      onSynced: () => {},
      onEvidence: (e) => found.push(e),
    });
    const done = r.catchUp(fakeNetwork(real, { oldKeys: holding }, newLog())).then(() => 'returned');
    await probeAsked;
    let turns = 0;
    const pending = new Promise<string>((resolve) => {
      const spin = (): void => {
        if (++turns >= 20) resolve('held');
        else setImmediate(spin);
      };
      setImmediate(spin);
    });
    const state = await Promise.race([done, pending]);
    release();
    await done;
    await r.probesSettled();
    assert.equal(state, 'returned', 'catchUp waited for the peer to answer the evidence probe');
    assert.equal(found.length, 1, 'the probe, run apart, found no evidence');
  });

  test('a peer that serves another block at the fork (not the parent it certified on) yields no evidence', async () => {
    const behind = await chains.open();
    await grow(behind, HEAD);
    const found: ConsensusEvidence[] = [];
    // Asked for its block at the fork, it answers with ours: not the refused block's parent.
    const ours = await behind.db.getBlockBytes(HEAD);
    const swapped = peerOf(fork, (from) => (from === HEAD ? [ours!] : null));
    const r = new SyncReactor({
      clock: systemClock,
      chain: behind,
      logger: silentLogger,
      onSynced: () => {},
      onEvidence: (e) => found.push(e),
    });
    await r.catchUp(fakeNetwork(real, { oldKeys: swapped }, newLog()));
    await r.probesSettled();
    assert.notEqual(r.conflict, null);
    assert.equal(behind.height, HEAD);
    assert.deepEqual(found, []);
    // Sanity: the bytes it served decode as our block.
    assert.equal(decode(blockCodec, ours!).header.height, HEAD);
  });

  test('a peer that does not serve the other block at the fork: another peer is asked, the block known by its hash', async () => {
    const behind = await chains.open();
    await grow(behind, HEAD);
    const found: ConsensusEvidence[] = [];
    const ours = await behind.db.getBlockBytes(HEAD);
    const swapped = peerOf(fork, (from) => (from === HEAD ? [ours!] : null));
    // Behind this node (never synced from), yet holding the other history's block at the fork.
    const other: FakePeer = { claim: () => 1n, blocks: (from, to) => chainServer(fork).blocks(from, to) };
    const r = new SyncReactor({
      clock: systemClock,
      chain: behind,
      logger: silentLogger,
      onSynced: () => {},
      onEvidence: (e) => found.push(e),
    });
    await r.catchUp(fakeNetwork(real, { oldKeys: swapped, other }, newLog()));
    await r.probesSettled();
    assert.notEqual(r.conflict, null);
    assert.equal(found.length, 1, 'the double signing went unreported once the first peer did not serve');
  });

  test('a peer serving the block at the fork under a commit of bad signatures only: another peer is asked', async () => {
    const behind = await chains.open();
    await grow(behind, HEAD);
    const found: ConsensusEvidence[] = [];
    const theirs = decode(blockCodec, (await fork.db.getBlockBytes(HEAD))!);
    const forged = encode(blockCodec, {
      ...theirs,
      commit: {
        ...theirs.commit,
        signatures: theirs.commit.signatures.map((s) => ({ ...s, signature: new Uint8Array(64).fill(7) })),
      },
    });
    const other: FakePeer = { claim: () => 1n, blocks: (from, to) => chainServer(fork).blocks(from, to) };
    const r = new SyncReactor({
      clock: systemClock,
      chain: behind,
      logger: silentLogger,
      onSynced: () => {},
      onEvidence: (e) => found.push(e),
    });
    const forger = peerOf(fork, (from) => (from === HEAD ? [forged] : null));
    await r.catchUp(fakeNetwork(real, { oldKeys: forger, other }, newLog()));
    await r.probesSettled();
    assert.equal(found.length, 1, 'a forged commit at the fork ended the probe');
  });

  for (const [what, change] of [
    ['another round', { round: 1 }],
    ['another height', { height: HEAD + 1n }],
  ] as const)
    test(`a peer serving the block at the fork under a commit claiming ${what} (unchecked): another peer is asked`, async () => {
      const behind = await chains.open();
      await grow(behind, HEAD);
      const found: ConsensusEvidence[] = [];
      const theirs = decode(blockCodec, (await fork.db.getBlockBytes(HEAD))!);
      const forged = encode(blockCodec, { ...theirs, commit: { ...theirs.commit, ...change } });
      const other: FakePeer = { claim: () => 1n, blocks: (from, to) => chainServer(fork).blocks(from, to) };
      const r = new SyncReactor({
        clock: systemClock,
        chain: behind,
        logger: silentLogger,
        onSynced: () => {},
        onEvidence: (e) => found.push(e),
      });
      const forger = peerOf(fork, (from) => (from === HEAD ? [forged] : null));
      await r.catchUp(fakeNetwork(real, { oldKeys: forger, other }, newLog()));
      await r.probesSettled();
      assert.equal(found.length, 1, `a commit claiming ${what} ended the probe`);
    });

  test('an entry with a bad signature placed first in the fork commit does not hide the genuine one after it', async () => {
    const behind = await chains.open();
    await grow(behind, HEAD);
    const found: ConsensusEvidence[] = [];
    const theirs = decode(blockCodec, (await fork.db.getBlockBytes(HEAD))!);
    const forged = encode(blockCodec, {
      ...theirs,
      commit: {
        ...theirs.commit,
        signatures: [
          { validator: KEY.publicKey, signature: new Uint8Array(64).fill(7) },
          ...theirs.commit.signatures,
        ],
      },
    });
    const r = new SyncReactor({
      clock: systemClock,
      chain: behind,
      logger: silentLogger,
      onSynced: () => {},
      onEvidence: (e) => found.push(e),
    });
    await r.catchUp(
      fakeNetwork(real, { oldKeys: peerOf(fork, (from) => (from === HEAD ? [forged] : null)) }, newLog()),
    );
    await r.probesSettled();
    assert.equal(found.length, 1, 'the forged first entry hid the validator that signed both');
  });
});

describe('commitConflictEvidence', () => {
  const chainId = 'unc-test';
  const keys = [devValidatorKey(1), devValidatorKey(2), devValidatorKey(3)];
  const blockA = sha256(utf8('a'));
  const blockB = sha256(utf8('b'));
  const commit = (round: number, hash: Uint8Array, signers: typeof keys) =>
    commitFromCertificate(
      certificateFromVotes(
        signers.map((k) =>
          signVote(
            chainId,
            { type: 'precommit', height: 7n, round, blockHash: hash, validator: k.publicKey },
            k.seed,
          ),
        ),
      ),
    );

  test('one piece per validator in both commits of one round, bounded by the limit', () => {
    const out = commitConflictEvidence(
      chainId,
      commit(0, blockA, keys),
      commit(0, blockB, keys.slice(1)),
      10,
    );
    assert.equal(out.kind, 'evidence');
    if (out.kind !== 'evidence') return;
    assert.deepEqual(
      out.evidence.map((e) => toHex(evidenceOffender(e))).sort(),
      keys
        .slice(1)
        .map((k) => toHex(k.publicKey))
        .sort(),
    );
    const capped = commitConflictEvidence(chainId, commit(0, blockA, keys), commit(0, blockB, keys), 1);
    assert.equal(capped.kind === 'evidence' && capped.evidence.length, 1);
  });

  test("a peer's entry with a bad signature costs one signature check, not the caller's check; entries tried are bounded", () => {
    const real = commit(0, blockB, keys);
    const forged = {
      ...real,
      signatures: Array.from({ length: 50 }, (_, i) => ({
        validator: keys[i % keys.length]!.publicKey,
        signature: new Uint8Array(64).fill(9),
      })),
    };
    let checks = 0;
    const out = commitConflictEvidence(chainId, commit(0, blockA, keys), forged, 10, () => {
      checks++;
      return true;
    });
    assert.deepEqual(out, { kind: 'evidence', evidence: [], rejected: 6 });
    assert.equal(checks, 0, 'a forged entry reached the costly check');
    let tried = 0;
    commitConflictEvidence(chainId, commit(0, blockA, keys), real, 10, () => {
      tried++;
      return false;
    });
    assert.equal(tried, keys.length);
  });

  test('different rounds: no duplicate-vote evidence, the overlap counted', () => {
    const out = commitConflictEvidence(chainId, commit(0, blockA, keys), commit(1, blockB, keys), 10);
    assert.deepEqual(out, { kind: 'rounds', ours: 0, theirs: 1, both: 3, rejected: 0 });
  });

  test('the same block: nothing', () => {
    assert.equal(
      commitConflictEvidence(chainId, commit(0, blockA, keys), commit(1, blockA, keys), 10).kind,
      'none',
    );
  });
});
