#!/usr/bin/env node
// Writes packages/core/test/vectors/codec.json: inputs in readable form, and the canonical
// encodings and hashes the core produced for them. Run once when the encoding is defined; from
// then on the test checks every build against these bytes, so any change of the encoding is seen.
import { writeFileSync } from 'node:fs';
import * as core from '../packages/core/dist/src/index.js';

const seed = core.sha256(core.utf8('UNC codec vector key'));
const signer = core.ed25519PublicKey(seed);
const tx = {
  chainId: 'unc-vectors-1',
  signer,
  nonce: 7n,
  fee: 123456789000000n,
  expiresAt: 1000n,
  actions: [
    {
      type: 'transfer',
      to: core.addressFromPublicKey(core.sha256(core.utf8('recipient'))),
      amount: 12_500_000_000_000_000_000n,
      memo: core.utf8('hello'),
    },
  ],
};
const stx = core.signTransaction(tx, seed);
const header = {
  chainId: 'unc-vectors-1',
  height: 42n,
  time: 1_795_000_000_000n,
  prevHash: core.sha256(core.utf8('prev')),
  stateRoot: core.sha256(core.utf8('state')),
  txRoot: core.transactionsRoot([core.transactionHash(tx)]),
  proposer: signer,
  beacon: core.sha256(core.utf8('beacon')),
  vrfProof: new Uint8Array(0),
  lastCommitHash: core.sha256(core.utf8('commit')),
};
const headerHash = core.blockHash(header);
// Two precommits of the header's block in round 3: what validators sign and what a block carries.
const voterSeeds = ['UNC vector validator 1', 'UNC vector validator 2'].map((n) => core.sha256(core.utf8(n)));
const precommits = voterSeeds.map((s) =>
  core.signVote(
    header.chainId,
    {
      type: 'precommit',
      height: header.height,
      round: 3,
      blockHash: headerHash,
      validator: core.ed25519PublicKey(s),
    },
    s,
  ),
);
const commit = core.commitFromCertificate(core.certificateFromVotes(precommits));
const hex = core.toHex;
const out = {
  description:
    'Canonical encoding vectors of UtilityNet. Inputs are readable; *Hex fields are the expected bytes.',
  keySeedHex: hex(seed),
  transaction: {
    chainId: tx.chainId,
    signerHex: hex(signer),
    nonce: '7',
    fee: tx.fee.toString(),
    expiresAt: '1000',
    transfer: {
      to: core.encodeAddress(tx.actions[0].to),
      amount: tx.actions[0].amount.toString(),
      memo: 'hello',
    },
    encodedHex: hex(core.encode(core.transactionCodec, tx)),
    hashHex: hex(core.transactionHash(tx)),
    signedHex: hex(core.encode(core.signedTransactionCodec, stx)),
    sender: core.encodeAddress(core.addressFromPublicKey(signer)),
  },
  header: {
    chainId: header.chainId,
    height: '42',
    time: header.time.toString(),
    prevHashHex: hex(header.prevHash),
    stateRootHex: hex(header.stateRoot),
    txRootHex: hex(header.txRoot),
    proposerHex: hex(header.proposer),
    beaconHex: hex(header.beacon),
    lastCommitHashHex: hex(header.lastCommitHash),
    encodedHex: hex(core.encode(core.blockHeaderCodec, header)),
    hashHex: hex(core.blockHash(header)),
  },
  commit: {
    validatorSeedsHex: voterSeeds.map(hex),
    height: '42',
    round: 3,
    blockHashHex: hex(headerHash),
    precommitSignBytesHex: hex(
      core.voteSignBytes(header.chainId, {
        type: 'precommit',
        height: header.height,
        round: 3,
        blockHash: headerHash,
        validator: precommits[0].validator,
      }),
    ),
    encodedHex: hex(core.encode(core.commitCodec, commit)),
    hashHex: hex(core.commitHash(commit)),
  },
  account: {
    balance: '1000000000000000000',
    nonce: '3',
    encodedHex: hex(core.encode(core.accountCodec, { balance: 10n ** 18n, nonce: 3n })),
  },
};
writeFileSync(
  new URL('../packages/core/test/vectors/codec.json', import.meta.url),
  `${JSON.stringify(out, null, 2)}\n`,
);
console.log('wrote packages/core/test/vectors/codec.json');
