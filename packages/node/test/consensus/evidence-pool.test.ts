/**
 * The evidence pool on a real chain (a dev genesis on an in-memory store): a validator's own
 * evidence transaction refused with a retryable "busy" (a node behind its peers, a full admission
 * queue) stays waiting and is submitted at a later flush; a final refusal drops it. The retrying is
 * bounded: at most MAX_WAITING entries, each tried once per flush, dropped once too old to land.
 *
 * `admitTx` here is a scripted stand-in for NodeCore.admit: it answers the refusal a test asks for
 * and records what it admits; everything else (chain, state, keys, evidence checks) is real.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type ConsensusEvidence,
  certificateFromVotes,
  consensusEvidenceCodec,
  duplicateVoteEvidence,
  ed25519PublicKey,
  encode,
  envelopeFromSigned,
  evidenceOffender,
  sha256,
  signTransaction,
  signVote,
  type TxEnvelope,
  toHex,
  utf8,
  ValidationError,
} from '@unc/core';
import { AdmissionBusy, SyncingRefusal } from '../../src/admission.js';
import { Chain, type ValidatorKey } from '../../src/chain.js';
import { EvidencePool, type EvidencePoolOptions } from '../../src/consensus/evidence-pool.js';
import { checkEvidenceGossip } from '../../src/consensus/gossip-checks.js';
import { devGenesisJson, devValidator, devValidatorKey } from '../../src/dev.js';
import { silentLogger } from '../../src/log.js';
import { Mempool } from '../../src/mempool.js';
import { ChainDb, MemoryKv } from '../../src/storage/db.js';

const GENESIS_TIME = Date.parse('2026-06-01T00:00:00Z');
const dev = devValidator();
const KEY: ValidatorKey = { seed: dev.seed, publicKey: ed25519PublicKey(dev.seed) };

/** A chain of the one dev validator, `blocks` blocks past genesis, epochs of `epochBlocks`. */
async function chainAt(blocks: number, epochBlocks = 60): Promise<Chain> {
  const genesis = devGenesisJson({ time: new Date(GENESIS_TIME), epochBlocks });
  const chain = await Chain.open(ChainDb.over(new MemoryKv()), genesis, silentLogger);
  for (let i = 0; i < blocks; i++) await commitOne(chain);
  return chain;
}

async function commitOne(chain: Chain): Promise<void> {
  const at = BigInt(GENESIS_TIME) + (chain.tipHeight + 1n) * 1000n;
  await chain.proposeAndCommit([], chain.nextBlockTime(at), KEY, () => false);
}

/** A block of `candidates` proposed by the dev validator and precommitted by all of `signers`. */
async function commitSigned(
  chain: Chain,
  candidates: Iterable<TxEnvelope>,
  signers: readonly ValidatorKey[],
) {
  const at = BigInt(GENESIS_TIME) + (chain.tipHeight + 1n) * 1000n;
  const { pending } = chain.buildProposal(candidates, chain.nextBlockTime(at), KEY, () => false);
  const height = pending.block.header.height;
  const votes = signers.map((v) =>
    signVote(
      chain.genesis.chainId,
      { type: 'precommit', height, round: 0, blockHash: pending.hash, validator: v.publicKey },
      v.seed,
    ),
  );
  return chain.commitDecided(pending, certificateFromVotes(votes));
}

/**
 * A chain whose validators are the dev validator and `others`, one block past genesis, that block
 * precommitted by all of them.
 */
async function chainWithValidators(others: readonly ValidatorKey[]): Promise<Chain> {
  const all = [KEY, ...others];
  const genesis = devGenesisJson({
    time: new Date(GENESIS_TIME),
    validators: all.map((v, i) => ({ publicKey: v.publicKey, name: `v${i}` })),
  });
  const chain = await Chain.open(ChainDb.over(new MemoryKv()), genesis, silentLogger);
  await commitSigned(chain, [], all);
  return chain;
}

/** `env` added to `mempool` on `chain`'s tip, as NodeCore.admit adds it (the next block's context). */
function addOnTip(mempool: Mempool, chain: Chain, env: TxEnvelope): void {
  const head = chain.tip.header;
  mempool.add(env, chain.tipState, chain.params, {
    chainId: chain.genesis.chainId,
    height: head.height + 1n,
    time: head.time + 1n,
    proposer: head.proposer,
    prevHash: chain.tip.hash,
    prevBeacon: head.beacon,
    beacon: new Uint8Array(32),
  });
}

/** `offender`'s two precommits for different blocks at `height`, `round` (default: the dev validator's). */
function doubleVote(
  chainId: string,
  height: bigint,
  round = 0,
  offender: ValidatorKey = KEY,
): ConsensusEvidence {
  const vote = (name: string) =>
    signVote(
      chainId,
      { type: 'precommit', height, round, blockHash: sha256(utf8(name)), validator: offender.publicKey },
      offender.seed,
    );
  return duplicateVoteEvidence(chainId, vote('block A'), vote('block B'));
}

/** The offence (height, round) an admitted evidence transaction reports. */
function reported(env: TxEnvelope): string {
  const action = env.stx.tx.actions[0]!;
  assert.equal(action.type, 'evidence');
  const e = (action as { evidence: ConsensusEvidence }).evidence;
  assert.equal(e.type, 'duplicate-vote');
  const first = (e as Extract<ConsensusEvidence, { type: 'duplicate-vote' }>).first;
  return `${first.height}/${first.round}`;
}

/** The dev validator's evidence pool on `chain`, admitting with `admitTx`; the rest as `over` says. */
function devPool(
  chain: Chain,
  admitTx: EvidencePoolOptions['admitTx'],
  over: Partial<EvidencePoolOptions> = {},
): EvidencePool {
  return new EvidencePool({
    chain,
    validator: KEY,
    logger: silentLogger,
    nextValidators: () => chain.validatorSet(),
    admitTx,
    announceTx: () => {},
    publishEvidence: () => {},
    ...over,
  });
}

/**
 * A pool on `chain` whose `admitTx` throws `refuse(attempt)` when it returns one, else admits;
 * with what it publishes (a count) and the offenders it reports (hex keys).
 */
function poolOn(chain: Chain, refuse: (attempt: number) => Error | null) {
  const tried: TxEnvelope[] = [];
  const admitted: TxEnvelope[] = [];
  const announced: string[] = [];
  const offenders: string[] = [];
  const published = { count: 0 };
  const pool = devPool(
    chain,
    (env) => {
      tried.push(env);
      const err = refuse(tried.length);
      if (err) throw err;
      admitted.push(env);
    },
    {
      announceTx: (env) => announced.push(toHex(env.hash)),
      publishEvidence: () => void published.count++,
      onEquivocation: (offender) => offenders.push(toHex(offender)),
    },
  );
  return { pool, tried, admitted, announced, offenders, published };
}

const behind = () =>
  new SyncingRefusal(new ValidationError('NONCE_GAP', 'nonce too far ahead on stale state'), 250);

test('evidence refused "busy, retry" by a node behind its peers stays waiting and is submitted at the next flush', async () => {
  const chain = await chainAt(1);
  const { pool, tried, admitted, announced } = poolOn(chain, (n) => (n === 1 ? behind() : null));
  assert.equal(pool.reportEvidence(doubleVote(chain.genesis.chainId, 1n), 'machine'), true);
  assert.equal(tried.length, 1);
  assert.equal(admitted.length, 0);

  await commitOne(chain);
  pool.flushEvidence(); // as the driver does after every commit
  assert.equal(tried.length, 2);
  assert.equal(admitted.length, 1);
  assert.equal(reported(admitted[0]!), '1/0');
  assert.deepEqual(announced, [toHex(admitted[0]!.hash)]);

  // Submitted once: nothing left to submit.
  pool.flushEvidence();
  assert.equal(tried.length, 2);
});

test('a full admission queue (AdmissionBusy) is retryable too', async () => {
  const chain = await chainAt(1);
  const { pool, tried, admitted } = poolOn(chain, (n) => (n === 1 ? new AdmissionBusy(20_000) : null));
  pool.reportEvidence(doubleVote(chain.genesis.chainId, 1n), 'machine');
  assert.equal(admitted.length, 0);
  pool.flushEvidence();
  assert.equal(tried.length, 2);
  assert.equal(admitted.length, 1);
});

test('evidence refused because another report of the offender is pending stays waiting: that one may leave the pool unincluded', async () => {
  const chain = await chainAt(1);
  const { pool, tried, admitted } = poolOn(chain, (n) =>
    n === 1
      ? new ValidationError(
          'ALREADY_PENDING',
          'evidence against validator … is already in a pending transaction',
        )
      : null,
  );
  pool.reportEvidence(doubleVote(chain.genesis.chainId, 1n), 'machine');
  assert.equal(admitted.length, 0);
  await commitOne(chain);
  pool.flushEvidence();
  assert.equal(tried.length, 2);
  assert.equal(admitted.length, 1);
});

test('a final refusal drops the evidence: never tried again', async () => {
  const chain = await chainAt(1);
  const { pool, tried, admitted } = poolOn(chain, () => new ValidationError('INSUFFICIENT_FUNDS', 'final'));
  pool.reportEvidence(doubleVote(chain.genesis.chainId, 1n), 'machine');
  assert.equal(tried.length, 1);
  await commitOne(chain);
  pool.flushEvidence();
  pool.flushEvidence();
  assert.equal(tried.length, 1);
  assert.equal(admitted.length, 0);
});

test('evidence refused "busy" for ever is tried once per flush and dropped once too old to land', async () => {
  // Epochs of 22 blocks (the least a 20-block answer window allows): evidence of height 1
  // (epoch 0) can land in a block of epoch 2 at the latest, so up to height 66 (epochOf(h) =
  // (h - 1) / 22).
  const chain = await chainAt(1, 22);
  const { pool, tried } = poolOn(chain, () => behind());
  pool.reportEvidence(doubleVote(chain.genesis.chainId, 1n), 'machine');
  assert.equal(tried.length, 1);
  while (chain.tipHeight < 65n) {
    await commitOne(chain);
    const triedBefore: number = tried.length;
    pool.flushEvidence();
    assert.equal(tried.length, triedBefore + 1, `one try at head ${chain.tipHeight}`);
  }
  // Head 66: the next block (67) is in epoch 3, more than 2 epochs after the offence's.
  await commitOne(chain);
  const before = tried.length;
  pool.flushEvidence();
  pool.flushEvidence();
  assert.equal(tried.length, before, 'too old: dropped by checkEvidence, not tried');
});

test('the waiting list stays bounded (MAX_WAITING, the oldest given up) however many reports are refused "busy"', async () => {
  // 35 offenders in a set of 36, two pieces each (MAX_EVIDENCE_PER_OFFENDER): 70 reports.
  const offenders: ValidatorKey[] = Array.from({ length: 35 }, (_, i) => {
    const seed = sha256(utf8(`offender ${i}`));
    return { seed, publicKey: ed25519PublicKey(seed) };
  });
  const chain = await chainWithValidators(offenders);
  const { pool, tried } = poolOn(chain, () => behind());
  const chainId = chain.genesis.chainId;
  const reports: string[] = [];
  for (const offender of offenders)
    for (const round of [0, 1]) {
      pool.reportEvidence(doubleVote(chainId, 1n, round, offender), 'machine');
      reports.push(`${toHex(offender.publicKey)}/${round}`);
    }
  const before = tried.length;
  pool.flushEvidence();
  assert.equal(tried.length - before, 64);
  // The newest are the ones kept.
  const kept = tried.slice(before).map((env) => {
    const e = (env.stx.tx.actions[0] as { evidence: Extract<ConsensusEvidence, { type: 'duplicate-vote' }> })
      .evidence;
    return `${toHex(e.first.validator)}/${e.first.round}`;
  });
  assert.deepEqual(kept, reports.slice(6));
});

test('evidence deferred together lands one transaction per block: the fee-free nonce a pending one holds defers the next, not drops it', async () => {
  // The dev validator proposes and reports; two other validators equivocated at height 1.
  const others = [devValidatorKey(1), devValidatorKey(2)];
  const all = [KEY, ...others];
  const chain = await chainWithValidators(others);
  const mempool = new Mempool();
  let behindPeers = true;
  // NodeCore.admit's path: the real mempool on the tip, "busy, retry" while behind.
  const pool = devPool(chain, (env) => {
    if (behindPeers) throw behind();
    addOnTip(mempool, chain, env);
  });
  const chainId = chain.genesis.chainId;
  for (const offender of others) pool.reportEvidence(doubleVote(chainId, 1n, 0, offender), 'gossip');
  assert.equal(mempool.size, 0);

  behindPeers = false;
  const slashed: string[] = [];
  for (let i = 0; i < 4 && slashed.length < 2; i++) {
    pool.flushEvidence();
    // Fee-free transactions take the sender's next nonce: one of this validator's at a time.
    assert.ok(mempool.size <= 1, `at most one pending, not ${mempool.size}`);
    const committed = await commitSigned(chain, mempool.ordered(chain.tipState), all);
    mempool.prune(committed.envelopes, [], chain.tipState, committed.block.header.height + 1n);
    for (const env of committed.envelopes) {
      assert.equal(reported(env), '1/0');
      const action = env.stx.tx.actions[0] as { evidence: ConsensusEvidence };
      slashed.push(toHex(evidenceOffender(action.evidence)));
    }
  }
  assert.deepEqual(
    slashed,
    others.map((v) => toHex(v.publicKey)),
    'both equivocations on chain, one block apart',
  );
});

test('the offender of each new piece of evidence is told once, gossiped or observed; refused gossip tells nothing', async () => {
  const chain = await chainAt(1);
  const { pool, offenders } = poolOn(chain, () => null);
  const evidence = doubleVote(chain.genesis.chainId, 1n);
  assert.equal(pool.onEvidenceGossip(encode(consensusEvidenceCodec, evidence)), 'accept');
  assert.deepEqual(offenders, [toHex(KEY.publicKey)]);
  assert.equal(pool.reportEvidence(evidence, 'observed'), false, 'the same evidence again');
  assert.equal(pool.reportEvidence(doubleVote(chain.genesis.chainId, 1n, 1), 'observed'), true);
  assert.equal(offenders.length, 2);
  // Two votes of another chain: their signatures do not check here.
  const forged = doubleVote('another-chain', 1n, 2);
  assert.notEqual(pool.onEvidenceGossip(encode(consensusEvidenceCodec, forged)), 'accept');
  assert.equal(offenders.length, 2);
});

test('gossiped evidence marks nobody unless both signatures are the offender’s over this chain and the offender is in the set', async () => {
  // What an attacker could make of an honest validator's messages: its genuine single vote paired
  // with one it never signed (the signature copied, or bytes flipped), or a pair signed by a key
  // outside the set. Each is refused before the offender is told.
  const chain = await chainAt(1);
  const { pool, offenders } = poolOn(chain, () => null);
  const chainId = chain.genesis.chainId;
  const genuine = doubleVote(chainId, 1n) as Extract<ConsensusEvidence, { type: 'duplicate-vote' }>;
  // The second vote's signature replaced by the first's: one genuine signature, one that is not.
  const copied: ConsensusEvidence = {
    ...genuine,
    second: { ...genuine.second, signature: genuine.first.signature },
  };
  const flipped = genuine.second.signature.slice();
  flipped[0]! ^= 1;
  const broken: ConsensusEvidence = { ...genuine, second: { ...genuine.second, signature: flipped } };
  const strangerSeed = sha256(utf8('not a validator'));
  const stranger: ValidatorKey = { seed: strangerSeed, publicKey: ed25519PublicKey(strangerSeed) };
  const outsider = doubleVote(chainId, 1n, 0, stranger);
  for (const evidence of [copied, broken, outsider])
    assert.notEqual(pool.onEvidenceGossip(encode(consensusEvidenceCodec, evidence)), 'accept');
  assert.deepEqual(offenders, []);
  assert.equal(pool.onEvidenceGossip(encode(consensusEvidenceCodec, genuine)), 'accept');
  assert.deepEqual(offenders, [toHex(KEY.publicKey)]);
});

test('an offender signing pair after pair of conflicting votes gets two pieces taken, not one per pair: the rest are neither checked, relayed nor put on chain', async () => {
  const chain = await chainAt(1);
  let verified = 0;
  const { pool, tried, published } = poolOn(chain, () => null);
  const pieces = [0, 1, 2, 3].map((round) => doubleVote(chain.genesis.chainId, 1n, round));
  assert.equal(pool.onEvidenceGossip(encode(consensusEvidenceCodec, pieces[0]!)), 'accept');
  assert.equal(pool.reportEvidence(pieces[1]!, 'observed'), true);
  assert.equal(pool.hasEnoughAgainst(KEY.publicKey), true);
  // A third piece, gossiped: refused before its signatures are checked (a broken one says so).
  const broken = structuredClone(pieces[2]!) as Extract<ConsensusEvidence, { type: 'duplicate-vote' }>;
  broken.second.signature = new Uint8Array(64);
  const check = checkEvidenceGossip(encode(consensusEvidenceCodec, broken), {
    chainId: chain.genesis.chainId,
    validators: chain.validatorSet(),
    hasEnoughAgainst: (o) => {
      verified++;
      return pool.hasEnoughAgainst(o);
    },
  });
  assert.deepEqual(check, { verdict: 'ignore' });
  assert.equal(verified, 1);
  assert.equal(pool.onEvidenceGossip(encode(consensusEvidenceCodec, pieces[2]!)), 'ignore');
  assert.equal(pool.reportEvidence(pieces[3]!, 'observed'), false);
  assert.equal(
    published.count,
    1,
    'only the observed piece is published (a gossiped one travels on by gossip)',
  );
  // One of this validator's fee-free transactions pending at a time: the second piece waits for
  // the first's nonce, and takes it once the first expired unincluded.
  assert.equal(tried.length, 1, 'the second piece waits behind the first’s nonce');
  while (chain.tipHeight < tried[0]!.stx.tx.expiresAt) await commitOne(chain);
  pool.flushEvidence();
  assert.deepEqual(tried.map(reported), ['1/0', '1/1'], 'one evidence transaction per piece taken');
});

test('pieces that cannot land do not fill an offender’s two: its own pairs at a height far ahead, then pieces grown too old, leave room for one that can', async () => {
  // The attack: an equivocator signs two pairs at a height the chain will not reach for ages
  // (they wait, never submitted) before equivocating for real. Counted, they would get every
  // honest node to refuse the one piece that can land, and the offender would go unslashed.
  const chain = await chainAt(1, 22);
  const chainId = chain.genesis.chainId;
  const { pool, tried } = poolOn(chain, () => behind());
  for (const round of [0, 1]) {
    const far = doubleVote(chainId, 1_000_000n, round);
    // Gossiped: refused before its signatures are checked, and not relayed.
    assert.equal(pool.onEvidenceGossip(encode(consensusEvidenceCodec, far)), 'ignore');
    // Seen otherwise: taken (logged), but holding no place.
    assert.equal(pool.reportEvidence(far, 'observed'), true);
  }
  assert.equal(pool.hasEnoughAgainst(KEY.publicKey), false, 'pieces of a height far ahead count for nothing');
  // Two pieces of height 1 that can land now fill it ("busy" for ever: they stay waiting).
  for (const round of [0, 1])
    assert.equal(pool.reportEvidence(doubleVote(chainId, 1n, round), 'observed'), true);
  assert.equal(pool.hasEnoughAgainst(KEY.publicKey), true);
  assert.equal(pool.reportEvidence(doubleVote(chainId, 1n, 2), 'observed'), false);
  // Head 66: the next block (67) is more than 2 epochs after height 1's; they can no longer land.
  while (chain.tipHeight < 66n) await commitOne(chain);
  pool.flushEvidence();
  assert.equal(pool.hasEnoughAgainst(KEY.publicKey), false, 'pieces dropped as too old free their places');
  const before = tried.length;
  assert.equal(pool.reportEvidence(doubleVote(chainId, 66n), 'observed'), true);
  assert.equal(tried.length, before + 1, 'the piece that can land is put on chain');
});

test('an offender’s pairs of a height far ahead do not push a piece that can land out of the waiting list', async () => {
  const chain = await chainAt(1);
  const chainId = chain.genesis.chainId;
  const { pool, tried } = poolOn(chain, () => behind());
  assert.equal(pool.reportEvidence(doubleVote(chainId, 1n), 'observed'), true);
  // MAX_WAITING (64) pieces of a height the chain will not reach for ages, signed by the offender.
  // Reported as seen (gossip refuses them before their signatures are checked).
  for (let round = 0; round < 64; round++)
    assert.equal(pool.reportEvidence(doubleVote(chainId, 1_000_000n, round), 'observed'), true);
  const before = tried.length;
  pool.flushEvidence();
  assert.deepEqual(
    tried.slice(before).map(reported),
    ['1/0'],
    'the piece of height 1 still waits and is tried',
  );
});

/** A pool on `chain` admitting to a real mempool on the tip (NodeCore.admit's path), with what it tried. */
function poolOnMempool(chain: Chain) {
  const mempool = new Mempool();
  const tried: TxEnvelope[] = [];
  const pool = devPool(chain, (env) => {
    tried.push(env);
    addOnTip(mempool, chain, env);
  });
  return { pool, mempool, tried };
}

test('evidence whose transaction expires unincluded (proposers leaving it out) is resubmitted in a fresh transaction, until it lands', async () => {
  // The attack: Byzantine proposers keep the report out of their blocks for its 20-block lifetime;
  // the pool forgot it once admitted, and the equivocation went unslashed for good.
  const others = [devValidatorKey(1), devValidatorKey(2)];
  const all = [KEY, ...others];
  const chain = await chainWithValidators(others);
  const { pool, mempool, tried } = poolOnMempool(chain);
  const offender = others[0]!;
  pool.reportEvidence(doubleVote(chain.genesis.chainId, 1n, 0, offender), 'gossip');
  assert.equal(tried.length, 1);
  assert.equal(mempool.size, 1);
  const first = tried[0]!;

  // Blocks that leave it out, up to its expiry (height 21): nothing resubmitted while it can land.
  while (chain.tipHeight < first.stx.tx.expiresAt) {
    const committed = await commitSigned(chain, [], all);
    mempool.prune(committed.envelopes, [], chain.tipState, committed.block.header.height + 1n);
    pool.flushEvidence();
    if (chain.tipHeight < first.stx.tx.expiresAt) assert.equal(tried.length, 1, `head ${chain.tipHeight}`);
  }
  // Expired and pruned from the mempool: a fresh transaction carries the same evidence.
  assert.equal(tried.length, 2);
  const second = tried[1]!;
  assert.notEqual(toHex(second.hash), toHex(first.hash));
  assert.equal(second.stx.tx.expiresAt, chain.tipHeight + 20n);
  assert.equal(reported(second), '1/0');
  assert.ok(mempool.has(second.hash));

  // An honest proposer includes it: slashed, and never sent again.
  const committed = await commitSigned(chain, mempool.ordered(chain.tipState), all);
  assert.deepEqual(
    committed.envelopes.map((e) => toHex(e.hash)),
    [toHex(second.hash)],
  );
  mempool.prune(committed.envelopes, [], chain.tipState, committed.block.header.height + 1n);
  for (let i = 0; i < 25; i++) {
    pool.flushEvidence();
    await commitSigned(chain, [], all);
  }
  assert.equal(tried.length, 2, 'on chain: done with');
});

test('evidence whose transactions keep expiring is resubmitted once per lifetime, and dropped once too old to land', async () => {
  // Epochs of 22 blocks: evidence of height 1 (epoch 0) can land up to height 66.
  const chain = await chainAt(1, 22);
  const { pool, tried } = poolOn(chain, () => null);
  pool.reportEvidence(doubleVote(chain.genesis.chainId, 1n), 'machine');
  const sentAt: bigint[] = [chain.tipHeight];
  while (chain.tipHeight < 90n) {
    await commitOne(chain);
    const before = tried.length;
    pool.flushEvidence();
    if (tried.length > before) sentAt.push(chain.tipHeight);
  }
  assert.deepEqual(sentAt, [1n, 21n, 41n, 61n], 'a fresh one each time the last expired, none once too old');
  for (const env of tried) assert.equal(reported(env), '1/0');
});

test('evidence whose transaction lost its nonce to another of the validator’s is resubmitted without waiting for its expiry', async () => {
  const others = [devValidatorKey(1), devValidatorKey(2)];
  const all = [KEY, ...others];
  const chain = await chainWithValidators(others);
  const chainId = chain.genesis.chainId;
  const { pool, tried } = poolOn(chain, () => null);
  pool.reportEvidence(doubleVote(chainId, 1n, 0, others[0]), 'machine');
  assert.equal(tried.length, 1);
  // Another transaction of the validator's key at the same nonce lands first (the operator's, sent
  // from another node, reporting another offender): the pool's can never land now, though it is
  // far from expired.
  const elsewhere = envelopeFromSigned(
    signTransaction(
      {
        chainId,
        signer: KEY.publicKey,
        nonce: tried[0]!.stx.tx.nonce,
        fee: 0n,
        expiresAt: chain.tipHeight + 10n,
        actions: [{ type: 'evidence', evidence: doubleVote(chainId, 1n, 0, others[1]) }],
      },
      KEY.seed,
    ),
  );
  const committed = await commitSigned(chain, [elsewhere], all);
  assert.equal(committed.envelopes.length, 1);
  pool.flushEvidence();
  assert.equal(tried.length, 2, 'resubmitted at the next nonce');
  assert.equal(tried[1]!.stx.tx.nonce, tried[0]!.stx.tx.nonce + 1n);
  assert.equal(reported(tried[1]!), '1/0');
});

test('reports whose transactions keep expiring take the nonce in turn: the one just resent goes behind the others', async () => {
  // Two offenders; proposers leave every report out. After the first's transaction expired the
  // second took the nonce; once that one expired too, the first went back to the end of the queue
  // behind it and the one just resent kept the nonce for good: proposers leaving one report out
  // held every other back.
  const others = [devValidatorKey(1), devValidatorKey(2)];
  const all = [KEY, ...others];
  const chain = await chainWithValidators(others);
  const { pool, tried } = poolOn(chain, () => null);
  pool.reportEvidence(doubleVote(chain.genesis.chainId, 1n, 0, others[0]), 'machine');
  pool.reportEvidence(doubleVote(chain.genesis.chainId, 1n, 0, others[1]), 'machine');
  const offenderOf = (env: TxEnvelope) => {
    const a = env.stx.tx.actions[0]!;
    return a.type === 'evidence' ? toHex(evidenceOffender(a.evidence)) : '';
  };
  while (tried.length < 4) {
    const last = tried[tried.length - 1]!;
    while (chain.tipHeight < last.stx.tx.expiresAt) await commitSigned(chain, [], all);
    pool.flushEvidence();
  }
  const [a, b] = others.map((k) => toHex(k.publicKey));
  assert.deepEqual(tried.map(offenderOf), [a, b, a, b], 'each in turn');
});
