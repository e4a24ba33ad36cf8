import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import {
  type Action,
  accountCodec,
  actionCodec,
  type BlockHeader,
  blockHash,
  blockHeaderCodec,
  type Commit,
  certificateFromVotes,
  commitCodec,
  commitFromCertificate,
  commitHash,
  decode,
  decodeAddress,
  ed25519PublicKey,
  encode,
  fromHex,
  type HeartbeatOperator,
  heartbeatOperatorCodec,
  signedTransactionCodec,
  signTransaction,
  signVote,
  type Transaction,
  type TxEvent,
  toHex,
  transactionCodec,
  transactionHash,
  txEventCodec,
  utf8,
  ValidatorSet,
  verifyBlockCommit,
  verifyTransactionSignature,
  voteSignBytes,
} from '../src/index.js';

// Compiled to dist/test; the JSON stays in the source tree.
const v = JSON.parse(readFileSync(new URL('../../test/vectors/codec.json', import.meta.url), 'utf8'));

test('transaction vector: encoding, id, signature and sender', () => {
  const t = v.transaction;
  const seed = fromHex(v.keySeedHex, 32);
  assert.equal(toHex(ed25519PublicKey(seed)), t.signerHex);
  const tx: Transaction = {
    chainId: t.chainId,
    signer: fromHex(t.signerHex, 32),
    nonce: BigInt(t.nonce),
    fee: BigInt(t.fee),
    expiresAt: BigInt(t.expiresAt),
    actions: [
      {
        type: 'transfer',
        to: decodeAddress(t.transfer.to),
        amount: BigInt(t.transfer.amount),
        memo: utf8(t.transfer.memo),
      },
    ],
  };
  assert.equal(toHex(encode(transactionCodec, tx)), t.encodedHex);
  assert.deepEqual(decode(transactionCodec, fromHex(t.encodedHex)), tx);
  assert.equal(toHex(transactionHash(tx)), t.hashHex);
  const stx = signTransaction(tx, seed);
  assert.equal(toHex(encode(signedTransactionCodec, stx)), t.signedHex);
  assert.ok(verifyTransactionSignature(decode(signedTransactionCodec, fromHex(t.signedHex))));
});

test('header vector: encoding and hash', () => {
  const h = v.header;
  const header: BlockHeader = {
    chainId: h.chainId,
    height: BigInt(h.height),
    time: BigInt(h.time),
    prevHash: fromHex(h.prevHashHex),
    stateRoot: fromHex(h.stateRootHex),
    txRoot: fromHex(h.txRootHex),
    proposer: fromHex(h.proposerHex),
    beacon: fromHex(h.beaconHex),
    vrfProof: new Uint8Array(0),
    lastCommitHash: fromHex(h.lastCommitHashHex),
  };
  assert.equal(toHex(encode(blockHeaderCodec, header)), h.encodedHex);
  assert.equal(toHex(blockHash(header)), h.hashHex);
  assert.equal(h.txRootHex.length, 64);
});

test('account vector', () => {
  const a = v.account;
  assert.equal(
    toHex(encode(accountCodec, { balance: BigInt(a.balance), nonce: BigInt(a.nonce) })),
    a.encodedHex,
  );
});

test('commit vector: precommit sign bytes, encoding with the round, hash, and verification', () => {
  const c = v.commit;
  const seeds: Uint8Array[] = c.validatorSeedsHex.map((h: string) => fromHex(h, 32));
  const blockHashBytes = fromHex(c.blockHashHex, 32);
  const unsigned = (seed: Uint8Array) => ({
    type: 'precommit' as const,
    height: BigInt(c.height),
    round: c.round as number,
    blockHash: blockHashBytes,
    validator: ed25519PublicKey(seed),
  });
  assert.equal(toHex(voteSignBytes(v.header.chainId, unsigned(seeds[0]!))), c.precommitSignBytesHex);
  const commit = commitFromCertificate(
    certificateFromVotes(seeds.map((s) => signVote(v.header.chainId, unsigned(s), s))),
  );
  assert.equal(toHex(encode(commitCodec, commit)), c.encodedHex);
  assert.equal(toHex(commitHash(commit)), c.hashHex);
  const decoded: Commit = decode(commitCodec, fromHex(c.encodedHex));
  assert.deepEqual(decoded, commit);
  assert.equal(decoded.round, 3);
  const set = new ValidatorSet(seeds.map((s) => ({ publicKey: ed25519PublicKey(s), power: 1n })));
  assert.equal(verifyBlockCommit(set, v.header.chainId, decoded, fromHex(v.header.hashHex), 42n), 2n);
});

test('setHeartbeatOperator vector: action tag 22, an option of an address', () => {
  const h = v.setHeartbeatOperator;
  const some: Action = { type: 'setHeartbeatOperator', operator: decodeAddress(h.operator) };
  const none: Action = { type: 'setHeartbeatOperator', operator: null };
  assert.equal(toHex(encode(actionCodec, some)), h.someHex);
  assert.equal(toHex(encode(actionCodec, none)), h.noneHex);
  assert.deepEqual(decode(actionCodec, fromHex(h.someHex)), some);
  assert.deepEqual(decode(actionCodec, fromHex(h.noneHex)), none);
});

test('heartbeat operator vectors: the state record (0x0F ‖ owner) and the event (tag 43)', () => {
  const h = v.setHeartbeatOperator;
  const operator = decodeAddress(h.operator);
  const record: HeartbeatOperator = { previous: null, operator, from: BigInt(h.from) };
  assert.equal(toHex(encode(heartbeatOperatorCodec, record)), h.recordHex);
  assert.deepEqual(decode(heartbeatOperatorCodec, fromHex(h.recordHex)), record);
  const event: TxEvent = {
    type: 'heartbeatOperatorSet',
    owner: decodeAddress(h.owner),
    operator,
    from: BigInt(h.from),
  };
  assert.equal(toHex(encode(txEventCodec, event)), h.eventHex);
  assert.deepEqual(decode(txEventCodec, fromHex(h.eventHex)), event);
});
