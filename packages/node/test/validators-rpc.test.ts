import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type Action,
  consensusKeyMessage,
  DEV_SOFT_VENDOR,
  devSoftChipId,
  ed25519Sign,
  encodeAddress,
  fromHex,
  registrationMessage,
  toHex,
} from '@unc/core';
import {
  type BlockJson,
  buildTransaction,
  encodeSigned,
  type RpcClientError,
  signedHash,
  type ValidatorSetJson,
} from '@unc/sdk';
import { devChipKey, devKey, devValidator } from '../src/dev.js';
import { useDevNode } from './dev-node.js';

const dev = useDevNode('validators-rpc');

test('unc_getValidators: the set that signs the next block, its power and quorum, and bonds', async () => {
  const before = Number(dev.node.chain.height);
  const set = await dev.client.call<ValidatorSetJson>('unc_getValidators', []);
  assert.equal(set.source, 'genesis');
  assert.equal(set.validators.length, 1);
  const v = set.validators[0]!;
  assert.equal(v.publicKey, toHex(devValidator().publicKey));
  assert.equal(v.address, encodeAddress(devValidator().address));
  assert.equal(set.quorumPower, set.totalPower, 'one validator: its own power is the quorum');
  assert.equal(v.sharePpm, 1_000_000);
  // Blocks come every 100 ms: the next block is the one after the head at the time of the call.
  assert.ok(set.height > before && set.height <= Number(dev.node.chain.height) + 1, `height ${set.height}`);

  assert.equal(v.bonded, '0');
  assert.equal(v.backedPower, '0', 'a genesis validator needs no bond in the genesis set');
  assert.equal(set.minValidatorBond, (1000n * 10n ** 18n).toString());
  assert.equal(set.uncPerPowerUnit, (10n ** 15n).toString());

  // A bond alone makes no candidate: the account must name a consensus key of its own.
  const bonder = devKey(4);
  const send = async (actions: Action[]) => {
    const stx = await buildTransaction(dev.client, bonder.seed, actions);
    await dev.client.sendRawTransaction(encodeSigned(stx));
    assert.equal((await dev.client.waitForTransaction(signedHash(stx), 15_000)).status, 'included');
  };
  await send([{ type: 'bond', amount: 10n ** 18n }]);
  assert.equal((await dev.client.call<ValidatorSetJson>('unc_getValidators', [])).candidates, 0);
  // Nor does a key with less than the minimum bond (each candidate is read at every epoch boundary).
  const consensus = devChipKey(99);
  const { chainId } = await dev.client.status();
  await send([
    {
      type: 'setConsensusKey',
      publicKey: consensus.publicKey,
      signature: ed25519Sign(consensus.seed, consensusKeyMessage(chainId, bonder.address)),
    },
  ]);
  assert.equal((await dev.client.call<ValidatorSetJson>('unc_getValidators', [])).candidates, 0);
  // With the minimum bond it is a candidate (it joins a set at an epoch boundary, with attested
  // online power).
  await send([{ type: 'bond', amount: 999n * 10n ** 18n }]);
  assert.equal((await dev.client.call<ValidatorSetJson>('unc_getValidators', [])).candidates, 1);
  // Past an epoch boundary with no bonded account holding online chips, the genesis set goes on.
  while (dev.node.chain.height < 30n) await new Promise((r) => setTimeout(r, 50));
  assert.equal((await dev.client.call<ValidatorSetJson>('unc_getValidators', [])).source, 'genesis');
});

test('unc_getValidators refuses a height beyond the next block; blocks carry their commit round', async () => {
  await assert.rejects(
    dev.client.call('unc_getValidators', [Number(dev.node.chain.height) + 50]),
    (err: RpcClientError) => err.rpcCode === -32602 && /beyond the next block/.test(err.message),
  );
  const block = await dev.client.call<BlockJson>('unc_getBlock', ['latest']);
  assert.equal(block.commit.round, 0);
  assert.equal(block.commit.signatures.length, 1);
});

test('a transaction dropped at block building before its client subscribed is still reported, with the reason', async () => {
  const chip = devChipKey(7);
  const status = await dev.client.status();
  const register = async (owner: ReturnType<typeof devKey>) => {
    const anchor = await dev.client.getHeader('latest');
    const message = registrationMessage(status.chainId, owner.address, fromHex(anchor.hash, 32));
    return buildTransaction(dev.client, owner.seed, [
      {
        type: 'registerChip',
        anchorHeight: BigInt(anchor.height),
        evidence: {
          type: 'dev-soft',
          vendorId: DEV_SOFT_VENDOR,
          publicKey: chip.publicKey,
          modelId: 'sim-h100',
          signature: ed25519Sign(chip.seed, message),
        },
      },
    ]);
  };
  // Two owners register the same chip: the second is refused at admission (one pending
  // registration per chip, mempool.ts), so what fails at block building is a paying transaction
  // whose execution admission does not run: a deregistration of a chip nobody registered.
  const first = await register(devKey(5));
  const second = await register(devKey(6));
  const [, refused] = await dev.client.sendRawTransactions([encodeSigned(first), encodeSigned(second)]);
  assert.ok(
    refused && 'error' in refused && refused.error.reason === 'ALREADY_PENDING',
    JSON.stringify(refused),
  );
  const orphan = await buildTransaction(dev.client, devKey(6).seed, [
    { type: 'deregisterChip', chipId: devSoftChipId(devChipKey(8).publicKey) },
  ]);
  await dev.client.sendRawTransactions([encodeSigned(orphan)]);
  const height = dev.node.chain.height;
  while (dev.node.chain.height < height + 3n) await new Promise((r) => setTimeout(r, 50));
  const outcomes = await Promise.all(
    [first, orphan].map((stx) => dev.client.waitForTransaction(signedHash(stx), 5_000)),
  );
  assert.deepEqual(
    outcomes.map((o) => o.status),
    ['included', 'rejected'],
  );
  const dropped = outcomes[1]!;
  assert.ok(dropped.status === 'rejected' && dropped.code === 'UNKNOWN_CHIP', JSON.stringify(dropped));
});
