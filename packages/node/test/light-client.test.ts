/**
 * The SDK light client against a real dev chain (epochs of 24 blocks, 100 ms blocks): it verifies
 * headers across epoch boundaries from the genesis alone, and refuses what a hostile node (a test
 * double in front of the honest one) forges: a header with another state root, a commit with too
 * little power, a commit signed for another chain, a validator set proof that does not match.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type BlockHeader,
  blockHash,
  blockHeaderCodec,
  decode,
  encode,
  encodeAddress,
  fromHex,
  signVote,
  toHex,
  validatorListCodec,
} from '@unc/core';
import {
  type BlockJson,
  LightClient,
  type LightClientSource,
  ProofError,
  type ValidatorSetProofJson,
} from '@unc/sdk';
import { rpcMethods } from '@unc/sdk/schema';
import * as v from 'valibot';
import { devKey, devValidator } from '../src/dev.js';
import { useDevNode } from './dev-node.js';

const dev = useDevNode('light-client');
const EPOCH = 24;

function genesisAnchor() {
  const g = dev.node.chain.genesis;
  return {
    kind: 'genesis' as const,
    chainId: g.chainId,
    validators: g.validators,
    epochBlocks: g.poci.epochBlocks,
  };
}

async function pastHeight(h: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Number(dev.node.chain.height) <= h) {
    if (Date.now() > deadline) throw new Error(`chain stuck below ${h}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The honest node, with `block` and `proof` rewritten by the test's attacker. */
function hostile(
  rewrite: {
    block?: (b: BlockJson) => BlockJson;
    proof?: (p: ValidatorSetProofJson) => ValidatorSetProofJson | Promise<ValidatorSetProofJson>;
  } = {},
): LightClientSource {
  return {
    getBlock: async (h) => (rewrite.block ?? ((b) => b))(await dev.client.getBlock(h)),
    getValidatorSetProof: async (h) =>
      (rewrite.proof ?? ((p) => p))(await dev.client.getValidatorSetProof(h)),
  };
}

function withHeader(b: BlockJson, change: (h: BlockHeader) => BlockHeader): BlockJson {
  const header = change(decode(blockHeaderCodec, fromHex(b.encoded)));
  return { ...b, encoded: toHex(encode(blockHeaderCodec, header)), hash: toHex(blockHash(header)) };
}

async function refused(p: Promise<unknown>, why: RegExp): Promise<void> {
  await assert.rejects(p, (err: Error) => {
    assert.ok(err instanceof ProofError, `${err.name}: ${err.message}`);
    assert.match(err.message, why);
    return true;
  });
}

test('verifies a header two epochs on from the genesis alone, and an account against it', async () => {
  await pastHeight(2 * EPOCH + 2);
  const proof = await dev.client.getValidatorSetProof(EPOCH);
  assert.ok(v.safeParse(rpcMethods.unc_getValidatorSetProof.result.schema, proof).success);
  assert.equal(proof.epoch, 1);
  const lc = new LightClient(dev.client, genesisAnchor());
  const height = 2 * EPOCH + 1;
  const verified = await lc.verifyHeight(height);
  assert.equal(verified.header.height, BigInt(height));
  assert.equal(verified.boundariesCrossed, 2, 'blocks 24 and 48 verified, the sets of epochs 1 and 2 proven');
  assert.equal(toHex(verified.hash), (await dev.client.getHeader(height)).hash);
  // Learnt sets are kept: the same epoch needs no boundary again.
  assert.equal((await lc.verifyHeight(height + 1)).boundariesCrossed, 0);

  const address = encodeAddress(devKey(0).address);
  const account = await lc.verifyAccount(dev.client, address);
  assert.equal(account.balance.toString(), account.account.balance);
  assert.equal(account.header.header.height, BigInt(account.account.height));
});

test('a trusted checkpoint at an epoch boundary anchors like the genesis; a wrong hash is refused', async () => {
  await pastHeight(2 * EPOCH + 2);
  const hash = fromHex((await dev.client.getHeader(EPOCH)).hash);
  const chainId = dev.node.chain.genesis.chainId;
  const lc = new LightClient(dev.client, { kind: 'checkpoint', chainId, height: BigInt(EPOCH), hash });
  assert.equal((await lc.verifyHeight(2 * EPOCH + 1)).boundariesCrossed, 1);
  await refused(lc.verifyHeight(EPOCH - 1), /before the trust anchor/);
  const wrong = hash.slice();
  wrong[0]! ^= 1;
  const bad = new LightClient(dev.client, {
    kind: 'checkpoint',
    chainId,
    height: BigInt(EPOCH),
    hash: wrong,
  });
  await refused(bad.verifyHeight(2 * EPOCH + 1), /not the trusted checkpoint/);
});

test('a hostile node is refused: forged state root, too little power, another chain, wrong set proof', async () => {
  await pastHeight(2 * EPOCH + 2);
  const target = 2 * EPOCH + 1;
  const attacker = devKey(7);
  const forgedRoot = new Uint8Array(32).fill(0xab);

  // A header whose state root gives the attacker what it likes, the real commit beside it.
  const forgeRoot = hostile({
    block: (b) => (b.height === target ? withHeader(b, (h) => ({ ...h, stateRoot: forgedRoot })) : b),
  });
  await refused(
    new LightClient(forgeRoot, genesisAnchor()).verifyHeight(target),
    /not signed by its validators.*commit is for block/,
  );

  // The same header, with a commit the attacker signed itself (not a validator).
  const selfSigned = hostile({
    block: (b) => {
      if (b.height !== target) return b;
      const forged = withHeader(b, (h) => ({ ...h, stateRoot: forgedRoot }));
      const vote = signVote(
        dev.node.chain.genesis.chainId,
        {
          type: 'precommit',
          height: BigInt(target),
          round: 0,
          blockHash: fromHex(forged.hash),
          validator: attacker.publicKey,
        },
        attacker.seed,
      );
      return {
        ...forged,
        commit: {
          height: target,
          round: 0,
          blockHash: forged.hash,
          signatures: [{ validator: toHex(vote.validator), signature: toHex(vote.signature) }],
        },
      };
    },
  });
  await refused(new LightClient(selfSigned, genesisAnchor()).verifyHeight(target), /is not a validator/);

  // Too little power: the commit without its signatures.
  const unsigned = hostile({
    block: (b) => (b.height === target ? { ...b, commit: { ...b.commit, signatures: [] } } : b),
  });
  await refused(new LightClient(unsigned, genesisAnchor()).verifyHeight(target), /no quorum/);

  // The validator's real signature over this block, but for another chain: the vote bytes bind
  // the chain id, so it does not verify here.
  const otherChain = hostile({
    block: (b) => {
      if (b.height !== target) return b;
      const vote = signVote(
        'other-chain',
        {
          type: 'precommit',
          height: BigInt(target),
          round: 0,
          blockHash: fromHex(b.hash),
          validator: devValidator().publicKey,
        },
        devValidator().seed,
      );
      return {
        ...b,
        commit: {
          ...b.commit,
          signatures: [{ validator: toHex(vote.validator), signature: toHex(vote.signature) }],
        },
      };
    },
  });
  await refused(new LightClient(otherChain, genesisAnchor()).verifyHeight(target), /bad signature/);
  // And a header of another chain (its own commit valid there) is refused by its chain id.
  const anchor = { ...genesisAnchor(), chainId: 'unc-other' };
  await refused(new LightClient(dev.client, anchor).verifyHeight(target), /is of chain/);

  // A validator set proof claiming the attacker is epoch 1's only validator: the value no longer
  // matches its Merkle proof against block 24's (verified) state root.
  const attackerSet = toHex(encode(validatorListCodec, [{ publicKey: attacker.publicKey, power: 1n }]));
  const wrongSet = hostile({
    proof: (p) => ({ ...p, genesis: { ...p.genesis, value: attackerSet } }),
  });
  await refused(
    new LightClient(wrongSet, genesisAnchor()).verifyHeight(target),
    /genesis validators: the Merkle proof does not match/,
  );
  // The proof of another key (the latest-epoch pointer) passed off as the ring slot.
  const otherKey = hostile({
    proof: (p) => ({ ...p, set: { value: null, proof: p.params.proof } }),
  });
  await refused(
    new LightClient(otherKey, genesisAnchor()).verifyHeight(target),
    /set of epoch 1: the Merkle proof does not match/,
  );
  // A proof taken at another boundary (block 48's, for epoch 2) served for block 24.
  const stale = hostile({ proof: () => dev.client.getValidatorSetProof(2 * EPOCH) });
  await refused(new LightClient(stale, genesisAnchor()).verifyHeight(target), /Merkle proof does not match/);
});
