/**
 * unc_getChip / unc_getLease with `proof` on a real dev chain, checked by the SDK light client
 * (LightClient.verifyChip / verifyLease): an honest node's answers verify (the chip's key and
 * status proven, an absent chip or lease proven absent through NOT_FOUND's error.data.absence),
 * and a hostile node in front of it is refused: a forged chip key beside the real proof, another
 * chip's genuine proof served for the one asked, a NOT_FOUND without a proof of absence.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEV_SOFT_VENDOR, devSoftChipId, ed25519Sign, fromHex, registrationMessage, toHex } from '@unc/core';
import {
  buildTransaction,
  type ChipJson,
  encodeSigned,
  LightClient,
  ProofError,
  type ProofErrorCode,
  signedHash,
} from '@unc/sdk';
import { rpcMethods } from '@unc/sdk/schema';
import * as v from 'valibot';
import { devChipKey, devKey } from '../src/dev.js';
import { RPC_COSTS } from '../src/rpc-costs.js';
import { useDevNode } from './dev-node.js';

const dev = useDevNode('record-proofs');
const owner = devKey(9);
const chips = [devChipKey(0), devChipKey(1)];
const ids = chips.map((c) => toHex(devSoftChipId(c.publicKey)));

function anchor() {
  const g = dev.node.chain.genesis;
  return {
    kind: 'genesis' as const,
    chainId: g.chainId,
    validators: g.validators,
    epochBlocks: g.poci.epochBlocks,
  };
}

let registered: Promise<void> | null = null;
/** Both dev chips registered by `owner` (once for the file). */
function register(): Promise<void> {
  registered ??= (async () => {
    const { chainId } = await dev.client.status();
    const head = await dev.client.getHeader('latest');
    const message = registrationMessage(chainId, owner.address, fromHex(head.hash, 32));
    const stx = await buildTransaction(
      dev.client,
      owner.seed,
      chips.map((c) => ({
        type: 'registerChip' as const,
        anchorHeight: BigInt(head.height),
        evidence: {
          type: 'dev-soft' as const,
          vendorId: DEV_SOFT_VENDOR,
          publicKey: c.publicKey,
          modelId: 'sim-h100',
          signature: ed25519Sign(c.seed, message),
        },
      })),
    );
    await dev.client.sendRawTransaction(encodeSigned(stx));
    const outcome = await dev.client.waitForTransaction(signedHash(stx), 60_000);
    assert.equal(outcome.status, 'included', JSON.stringify(outcome));
  })();
  return registered;
}

async function refused(p: Promise<unknown>, code: ProofErrorCode, why: RegExp): Promise<void> {
  await assert.rejects(p, (err: Error) => {
    assert.ok(err instanceof ProofError, `${err.name}: ${err.message}`);
    assert.equal(err.code, code, err.message);
    assert.match(err.message, why);
    return true;
  });
}

/** The honest node, its unc_getChip answers rewritten by the test's attacker. */
function hostileChips(rewrite: (asked: string) => Promise<ChipJson>) {
  return {
    getBlock: (h: number) => dev.client.getBlock(h),
    getValidatorSetProof: (h: number) => dev.client.getValidatorSetProof(h),
    getChip: (chipId: string) => rewrite(chipId),
  };
}

test('a registered chip verifies: its key and status proven against a verified header', async () => {
  await register();
  const json = await dev.client.getChip(ids[0]!, true);
  assert.ok(v.safeParse(rpcMethods.unc_getChip.result.schema, json).success);
  assert.equal(typeof json.proof, 'string');
  // A dev-soft chip's status reads the PoCI parameters (devSoftEnabled): proven beside the record.
  assert.ok((json.related?.length ?? 0) >= 1);
  const lc = new LightClient(dev.client, anchor());
  const r = await lc.verifyChip(dev.client, ids[0]!);
  assert.ok(r.chip);
  assert.equal(toHex(r.chip.keyMaterial), toHex(chips[0]!.publicKey));
  assert.equal(r.status, 'active');
  assert.equal(r.header.header.height, BigInt(r.json.height!));
  // Without the flag, the answer is as before.
  assert.equal((await dev.client.getChip(ids[0]!)).proof, undefined);
});

test('absent chips and leases are proven absent, not taken on the node’s word', async () => {
  await register();
  const lc = new LightClient(dev.client, anchor());
  const chip = await lc.verifyChip(dev.client, '42'.repeat(32));
  assert.equal(chip.chip, null);
  const lease = await lc.verifyLease(dev.client, '43'.repeat(32));
  assert.equal(lease.lease, null);
  const bare = hostileChips(async () => {
    return dev.client.getChip('42'.repeat(32));
  });
  await refused(
    new LightClient(bare, anchor()).verifyChip(bare, '42'.repeat(32)),
    'NOT_PROVEN',
    /no proof of absence/,
  );
});

test('a hostile node serving a forged chip key or another chip’s proof is refused', async () => {
  await register();
  const forgedKey = hostileChips(async (asked) => ({
    ...(await dev.client.getChip(asked, true)),
    keyMaterial: toHex(devKey(7).publicKey),
  }));
  await refused(
    new LightClient(forgedKey, anchor()).verifyChip(forgedKey, ids[0]!),
    'MISMATCH',
    /keyMaterial/,
  );
  // Chip 1's genuine answer and proof, under chip 0's id: the client proves it under chipKey(chip 0).
  const swapped = hostileChips(async () => ({
    ...(await dev.client.getChip(ids[1]!, true)),
    chipId: ids[0]!,
  }));
  await refused(
    new LightClient(swapped, anchor()).verifyChip(swapped, ids[0]!),
    'BAD_PROOF',
    /Merkle proof does not match/,
  );
  // Hiding a chip that exists behind a NOT_FOUND with another id's absence proof.
  const hiding = hostileChips(async () => {
    await dev.client.getChip('42'.repeat(32), true);
    return assert.fail('chip 42… exists');
  });
  await refused(
    new LightClient(hiding, anchor()).verifyChip(hiding, ids[0]!),
    'BAD_PROOF',
    /Merkle proof does not match/,
  );
});

test('a proof costs more than a plain read', () => {
  assert.equal(RPC_COSTS.unc_getChip!([ids[0], true]), 10);
  assert.equal(RPC_COSTS.unc_getChip!({ chipId: ids[0] }), 1);
  assert.equal(RPC_COSTS.unc_getLease!({ id: ids[0], proof: true }), 2);
});
