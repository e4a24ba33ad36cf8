import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  blockChallengeClass,
  chipClass,
  DEV_SOFT_VENDOR,
  devSoftChipId,
  ed25519Sign,
  fromHex,
  getPociParams,
  registrationMessage,
  toHex,
} from '@unc/core';
import { buildTransaction, type ChipJson, encodeSigned, signedHash } from '@unc/sdk';
import { devChipKey, devKey } from '../src/dev.js';
import { useDevNode } from './dev-node.js';

const dev = useDevNode('challenges-rpc');

test('unc_getChip lists only challenges of committed blocks: exactly the blocks whose beacon drew its class', async () => {
  const chip = devChipKey(11);
  const owner = devKey(3);
  const status = await dev.client.status();
  const anchor = await dev.client.getHeader('latest');
  const message = registrationMessage(status.chainId, owner.address, fromHex(anchor.hash, 32));
  const stx = await buildTransaction(dev.client, owner.seed, [
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
  await dev.client.sendRawTransaction(encodeSigned(stx));
  assert.equal((await dev.client.waitForTransaction(signedHash(stx), 15_000)).status, 'included');
  const chipId = devSoftChipId(chip.publicKey);
  const p = getPociParams(dev.node.chain.state);
  const cls = chipClass(chipId, p);
  const first = (await dev.client.call<ChipJson>('unc_getChip', [toHex(chipId)])).firstEpoch;
  // Watch two epochs; at every look, what the node lists is exactly what the committed blocks drew.
  const until = (first + 2) * Number(p.epochBlocks);
  let seen = 0;
  while (Number(dev.node.chain.height) < until) {
    const view = await dev.client.call<ChipJson>('unc_getChip', [toHex(chipId)]);
    const head = Number((await dev.client.status()).height);
    assert.equal(view.challengeClass, Number(cls));
    for (const s of view.slots) {
      assert.ok(s.height <= head, `challenge at ${s.height} listed at head ${head}: a future block`);
      assert.ok(['answered', 'missed', 'open'].includes(s.status), s.status);
    }
    // Every listed height drew the chip's class, and every committed block of those epochs that
    // drew it (except one committed after the view was read) is listed.
    const epochs = new Set(view.slots.map((s) => s.epoch));
    for (const s of view.slots) {
      const h = await dev.client.getHeader(s.height);
      assert.equal(blockChallengeClass(fromHex(h.beacon, 32), p), cls);
    }
    const viewHead = view.slots.at(-1)?.height ?? 0;
    for (const e of epochs) {
      const start = e * Number(p.epochBlocks) + 1;
      for (let h = start; h <= Math.min(viewHead, start + Number(p.epochBlocks) - 1); h++) {
        const header = await dev.client.getHeader(h);
        const drawn = blockChallengeClass(fromHex(header.beacon, 32), p) === cls;
        assert.equal(
          view.slots.some((s) => s.height === h),
          drawn,
          `block ${h} ${drawn ? 'drew' : 'did not draw'} class ${cls}`,
        );
      }
    }
    seen = Math.max(seen, view.slots.length);
    await new Promise((r) => setTimeout(r, 150));
  }
  assert.ok(seen > 0, 'the chip was challenged in two epochs');
});
