import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  type Action,
  DEV_SOFT_VENDOR,
  devSoftChipId,
  ed25519Sign,
  encodeAddress,
  fromHex,
  heartbeatChallenge,
  registrationMessage,
  toHex,
  transferMessage,
} from '@unc/core';
import {
  buildTransaction,
  closeLeaseAction,
  createOfferAction,
  encodeSigned,
  type LeaseJson,
  LightClient,
  type OfferJson,
  offerTermsDigest,
  openLeaseAction,
  ProofError,
  RpcClientError,
  signedHash,
  type TxEventJson,
  topUpLeaseAction,
  UncClient,
} from '@unc/sdk';
import { devChipKey, devGenesisJson, devKey, devValidator } from '../src/dev.js';
import { silentLogger } from '../src/log.js';
import { UncNode } from '../src/node.js';

const UNC = 10n ** 18n;
const provider = devKey(9);
const renter = devKey(1);
const chip = devChipKey(0);
const chipId = toHex(devSoftChipId(chip.publicKey));

let node: UncNode;
let client: UncClient;
let dir: string;

async function submit(seed: Uint8Array, actions: Action[]) {
  const stx = await buildTransaction(client, seed, actions);
  const hash = signedHash(stx);
  await client.sendRawTransaction(encodeSigned(stx));
  return { hash, outcome: await client.waitForTransaction(hash, 60_000) };
}

async function send(seed: Uint8Array, actions: Action[]): Promise<TxEventJson[]> {
  const { hash, outcome } = await submit(seed, actions);
  assert.equal(outcome.status, 'included', JSON.stringify(outcome));
  return (await client.getTransaction(hash)).events;
}

/**
 * Answers the chip's open challenges (as the miner agent does) until it has answered one: only a
 * chip proven online is rented. Its first challenge comes in the epoch after its registration.
 */
async function proveOnline(
  key: { seed: Uint8Array; publicKey: Uint8Array },
  sender: Uint8Array,
): Promise<void> {
  const answered = new Set<string>();
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const view = await client.getChip(toHex(devSoftChipId(key.publicKey)));
    if (view.lastAnsweredAt > 0) {
      // From now on the chip answers as a miner agent's would, in the background: a loaded
      // machine can let enough windows pass between two tests for a chip left alone to go
      // offline (seen: a lease refused, "chip … is offline").
      agent.keys.push(key);
      return;
    }
    await answerOpenSlots(key, sender, answered);
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail('the chip never answered a challenge');
}

/** Answers the chip's open challenges not in `answered` (and records them there). */
async function answerOpenSlots(
  key: { seed: Uint8Array; publicKey: Uint8Array },
  sender: Uint8Array,
  answered: Set<string>,
): Promise<void> {
  const id = devSoftChipId(key.publicKey);
  const { chainId } = await client.status();
  const view = await client.getChip(toHex(id));
  for (const slot of view.slots) {
    const k = `${slot.epoch}:${slot.slot}`;
    if (slot.status !== 'open' || answered.has(k)) continue;
    answered.add(k);
    const hash = (await client.getHeader(slot.height)).hash;
    const signature = ed25519Sign(key.seed, heartbeatChallenge(chainId, id, fromHex(hash, 32)));
    const answer = {
      chipId: id,
      epoch: BigInt(slot.epoch),
      slot: slot.slot,
      evidence: { type: 'dev-soft' as const, signature },
    };
    // An answer window is a few seconds: on a loaded machine the answer can
    // reach a block after it closed, and the chain rightly refuses it. That is no failure of
    // this set-up: the next open slot is answered, as the miner agent would.
    const { outcome } = await submit(sender, [{ type: 'heartbeat', answers: [answer] }]);
    if (outcome.status === 'rejected' && outcome.code === 'ANSWER_TOO_LATE') continue;
    assert.equal(outcome.status, 'included', JSON.stringify(outcome));
  }
}

/**
 * The proven chips' background answers, from an account of their own (no nonce shared with the
 * tests' transactions), until the file's tests end.
 */
const agent = {
  keys: [] as { seed: Uint8Array; publicKey: Uint8Array }[],
  running: true,
  done: Promise.resolve(),
  start(): void {
    const sender = devKey(7).seed;
    const answered = new Map<string, Set<string>>();
    this.done = (async () => {
      while (this.running) {
        for (const key of [...this.keys]) {
          const id = toHex(key.publicKey);
          if (!answered.has(id)) answered.set(id, new Set());
          // A failed answer (the node stopping, a window just closed) is the next round's to mend.
          await answerOpenSlots(key, sender, answered.get(id)!).catch(() => undefined);
          if (!this.running) return;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
  },
  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  },
};

/**
 * The lease once its last period is decided: a close with a challenge still open holds that
 * period's cost until its windows close, by W blocks after it (docs/jobs.md, "How a lease is paid"). Waits by height, up
 * to twice the window, and returns the lease as it is then.
 */
async function decided(id: string): Promise<LeaseJson> {
  let l = await client.getLease(id);
  const W = 20; // the dev genesis's answer window
  while (l.remaining !== '0' && (await client.status()).height <= (l.closedHeight ?? 0) + 2 * W) {
    await new Promise((r) => setTimeout(r, 100));
    l = await client.getLease(id);
  }
  return l;
}

/** A light client trusting the node's genesis (as `--prove --genesis`). */
function lightClient(): LightClient {
  const g = node.chain.genesis;
  return new LightClient(client, {
    kind: 'genesis',
    chainId: g.chainId,
    validators: g.validators,
    epochBlocks: g.poci.epochBlocks,
  });
}

async function rpcError(p: Promise<unknown>): Promise<RpcClientError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof RpcClientError, String(err));
    return err;
  }
  assert.fail('expected an RPC error');
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'unc-market-test-'));
  node = await UncNode.start({
    dataDir: dir,
    genesis: devGenesisJson({ epochBlocks: 30 }),
    validatorSeed: devValidator().seed,
    rpcPort: 0,
    // 200 ms blocks: an answer window (20 blocks) of 4 s, which a loaded machine's answers make;
    // at 50 ms (a 1 s window) they missed enough windows for the chip to read as offline.
    blockTimeMs: 200,
    logger: silentLogger,
  });
  client = new UncClient(node.rpcUrl);
  agent.start();
  const status = await client.status();
  const anchor = await client.getHeader('latest');
  const message = registrationMessage(status.chainId, provider.address, fromHex(anchor.hash, 32));
  await send(provider.seed, [
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
});

after(async () => {
  await agent.stop();
  await node?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('market RPC', () => {
  let offerId: string;
  let leaseId: string;

  test('an offer is listed with its terms, chips, power and 24 h uptime', async () => {
    const events = await send(provider.seed, [
      createOfferAction({
        chipIds: [chipId],
        pricePerHour: 36n * UNC,
        minHours: 1,
        maxHours: 24,
        noticeMs: 600_000n,
        endpoint: 'http://127.0.0.1:9/jobs',
        attributes: { memoryMiB: 81_920, region: 'eu-west', runtimes: ['onnx'] },
      }),
    ]);
    const created = events.find((e) => e.type === 'offerCreated');
    assert.ok(created && created.type === 'offerCreated');
    offerId = created.offerId;
    const offers = await client.getOffers();
    assert.equal(offers.length, 1);
    const o: OfferJson = await client.getOffer(offerId);
    assert.deepEqual(offers[0], o);
    assert.equal(o.provider, encodeAddress(provider.address));
    assert.equal(o.price, (36n * UNC).toString());
    assert.equal(o.noticeMs, 600_000);
    assert.equal(o.endpoint, 'http://127.0.0.1:9/jobs');
    assert.equal(o.status, 'open');
    assert.equal(o.power, '989000');
    assert.equal(o.chips[0]?.modelId, 'sim-h100');
    assert.equal(o.chips[0]?.uptime.windowMs, 86_400_000);
    // Registered but never challenged yet: online by the miss rule, but not proven, so not rentable.
    assert.equal(o.chips[0]?.online, true);
    assert.equal(o.chips[0]?.available, false);
    assert.equal(o.available, 0);
    // Admitted to the pool (admission checks the sender), refused by the block that would include it.
    const stx = await buildTransaction(client, renter.seed, [
      openLeaseAction(offerId, 2, {
        chipId,
        maxPricePerHour: 36n * UNC,
        // Computed from the node's report of the offer: the chain must agree with it to the byte.
        termsDigest: offerTermsDigest(await client.getOffer(offerId)),
      }),
    ]);
    await client.sendRawTransaction(encodeSigned(stx));
    const refused = await client.waitForTransaction(signedHash(stx), 15_000);
    assert.equal(refused.status, 'rejected', JSON.stringify(refused));
    assert.ok(refused.status === 'rejected');
    assert.equal(refused.code, 'CHIP_UNAVAILABLE');
    assert.match(refused.reason, /has not answered a challenge since its registration/);
    await proveOnline(chip, provider.seed);
    const proven = await client.getOffer(offerId);
    assert.equal(proven.chips[0]?.available, true);
    assert.equal(proven.available, 1);
    assert.deepEqual(await client.getOffers({ provider: encodeAddress(renter.address) }), []);
  });

  test('a lease shows its parties, renter key, endpoint and balanced amounts', async () => {
    const events = await send(renter.seed, [
      openLeaseAction(offerId, 2, {
        chipId,
        maxPricePerHour: 36n * UNC,
        // Computed from the node's report of the offer: the chain must agree with it to the byte.
        termsDigest: offerTermsDigest(await client.getOffer(offerId)),
      }),
    ]);
    const opened = events.find((e) => e.type === 'leaseOpened');
    assert.ok(opened && opened.type === 'leaseOpened');
    leaseId = opened.leaseId;
    const l: LeaseJson = await client.getLease(leaseId);
    assert.equal(l.id, leaseId);
    assert.equal(l.offerId, offerId);
    assert.equal(l.chipId, chipId);
    assert.equal(l.provider, encodeAddress(provider.address));
    assert.equal(l.renter, encodeAddress(renter.address));
    assert.equal(l.renterPublicKey, toHex(renter.publicKey));
    assert.equal(l.endpoint, 'http://127.0.0.1:9/jobs');
    assert.equal(l.pricePerHour, (36n * UNC).toString());
    assert.equal(l.deposit, (72n * UNC).toString());
    assert.equal(l.status, 'active');
    assert.equal(l.endTime - l.startTime, 2 * 3_600_000);
    assert.equal(l.escrowUntil, l.endTime, 'a full deposit covers the whole lease');
    assert.equal(BigInt(l.paid) + BigInt(l.refunded) + BigInt(l.remaining), BigInt(l.deposit));
    assert.equal((await client.getOffer(offerId)).chips[0]?.leaseId, leaseId);
    const byRenter = await client.getLeases({ renter: encodeAddress(renter.address) });
    const byProvider = await client.getLeases({ provider: encodeAddress(provider.address) });
    assert.deepEqual(
      byRenter.map((x) => x.id),
      [leaseId],
    );
    assert.deepEqual(
      byProvider.map((x) => x.id),
      [leaseId],
    );
    // The light client proves the same lease: record, status at the verified block time, and the
    // offer's endpoint (unc_getLease with proof, node and SDK computing it by the same rules).
    const proven = await lightClient().verifyLease(client, leaseId);
    assert.ok(proven.lease);
    assert.equal(proven.status, 'active');
    assert.equal(proven.endpoint, 'http://127.0.0.1:9/jobs');
    assert.equal(toHex(proven.lease.renterPublicKey), toHex(renter.publicKey));
  });

  test('attack: the leased chip’s transfer or deregistration is refused at submission, before any consent check', async () => {
    // The provider moved a leased chip (to another account, or to itself) and the lease ended at
    // once, skipping the notice its renter signed for. The node refuses both at a lookup now.
    const { chainId } = await client.status();
    const anchor = await client.getHeader('latest');
    const id = devSoftChipId(chip.publicKey);
    const transferTo = (to: Uint8Array): Action => ({
      type: 'transferChip',
      chipId: id,
      newOwner: to,
      anchorHeight: BigInt(anchor.height),
      consent: {
        type: 'dev-soft',
        signature: ed25519Sign(chip.seed, transferMessage(chainId, id, to, fromHex(anchor.hash, 32))),
      },
    });
    const checks = node.mempool.evidenceChecks;
    const refused = async (actions: Action[]) => {
      const stx = await buildTransaction(client, provider.seed, actions);
      return rpcError(client.sendRawTransaction(encodeSigned(stx)));
    };
    const leased = await refused([transferTo(devKey(3).address)]);
    assert.equal(leased.reason, 'CHIP_LEASED', leased.message);
    assert.match(leased.message, /is leased .* not transferred while the lease runs/);
    assert.equal((await refused([transferTo(provider.address)])).reason, 'SAME_OWNER');
    assert.equal((await refused([{ type: 'deregisterChip', chipId: id }])).reason, 'CHIP_LEASED');
    assert.equal(node.mempool.evidenceChecks, checks, 'no consent was checked');
    assert.equal((await client.getChip(chipId)).owner, encodeAddress(provider.address));
    assert.equal((await client.getLease(leaseId)).status, 'active');
  });

  test('attack: a lease ends the moment its escrow runs out: the chain closes it in the first block at or after it', async () => {
    // Another provider and chip, so the records the other tests check stay theirs.
    const provider2 = devKey(8);
    const chip2 = devChipKey(1);
    const chip2Id = toHex(devSoftChipId(chip2.publicKey));
    const status = await client.status();
    const anchor = await client.getHeader('latest');
    const message = registrationMessage(status.chainId, provider2.address, fromHex(anchor.hash, 32));
    await send(provider2.seed, [
      {
        type: 'registerChip',
        anchorHeight: BigInt(anchor.height),
        evidence: {
          type: 'dev-soft',
          vendorId: DEV_SOFT_VENDOR,
          publicKey: chip2.publicKey,
          modelId: 'sim-h100',
          signature: ed25519Sign(chip2.seed, message),
        },
      },
    ]);
    await proveOnline(chip2, provider2.seed);
    const created = (
      await send(provider2.seed, [
        createOfferAction({
          chipIds: [chip2Id],
          pricePerHour: 36n * UNC,
          minHours: 0,
          maxHours: 24,
          noticeMs: 0n,
          endpoint: 'http://127.0.0.1:9/jobs',
        }),
      ])
    ).find((e) => e.type === 'offerCreated');
    assert.ok(created && created.type === 'offerCreated');
    // An offer without notice: a transfer of the leased chip that nothing of the provider's ends
    // first failed in the block, paying nothing; it is refused at submission now, before any
    // consent check. After the provider's pending closeLease it is not (this one then fails its
    // consent check, so the chip stays for what follows).
    const held = (
      await send(renter.seed, [
        openLeaseAction(created.offerId, 24, {
          chipId: chip2Id,
          deposit: UNC,
          maxPricePerHour: 36n * UNC,
          termsDigest: offerTermsDigest(await client.getOffer(created.offerId)),
        }),
      ])
    ).find((e) => e.type === 'leaseOpened');
    assert.ok(held && held.type === 'leaseOpened');
    const anchor2 = await client.getHeader('latest');
    const id2 = devSoftChipId(chip2.publicKey);
    const to = devKey(3).address;
    const move = (signature: Uint8Array): Action => ({
      type: 'transferChip',
      chipId: id2,
      newOwner: to,
      anchorHeight: BigInt(anchor2.height),
      consent: { type: 'dev-soft', signature },
    });
    const consent = ed25519Sign(
      chip2.seed,
      transferMessage(status.chainId, id2, to, fromHex(anchor2.hash, 32)),
    );
    const checks = node.mempool.evidenceChecks;
    const alone = await rpcError(
      client.sendRawTransaction(
        encodeSigned(await buildTransaction(client, provider2.seed, [move(consent)])),
      ),
    );
    assert.equal(alone.reason, 'CHIP_LEASED', alone.message);
    assert.equal(node.mempool.evidenceChecks, checks, 'no consent was checked');
    const close = await buildTransaction(client, provider2.seed, [closeLeaseAction(held.leaseId)]);
    const closed = signedHash(close);
    await client.sendRawTransaction(encodeSigned(close));
    const after = await buildTransaction(client, provider2.seed, [move(new Uint8Array(64))], {
      nonce: close.tx.nonce + 1n,
    });
    const refused = await rpcError(client.sendRawTransaction(encodeSigned(after)));
    assert.notEqual(refused.reason, 'CHIP_LEASED', refused.message);
    assert.equal((await client.waitForTransaction(closed, 60_000)).status, 'included');
    // 1.5 s of a 36 UNC/h lease: 0.015 UNC of escrow on a 24-hour lease.
    const opened = (
      await send(renter.seed, [
        openLeaseAction(created.offerId, 24, {
          chipId: chip2Id,
          deposit: 15n * 10n ** 15n,
          maxPricePerHour: 36n * UNC,
          termsDigest: offerTermsDigest(await client.getOffer(created.offerId)),
        }),
      ])
    ).find((e) => e.type === 'leaseOpened');
    assert.ok(opened && opened.type === 'leaseOpened');
    const fresh = await client.getLease(opened.leaseId);
    assert.equal(fresh.escrowUntil, fresh.startTime + 1500, 'the moment the escrow is spent, from the chain');
    assert.ok(fresh.escrowUntil < fresh.endTime);
    while ((await client.getHeader('latest')).timeMs < fresh.escrowUntil)
      await new Promise((r) => setTimeout(r, 50));
    // The first block at or after that moment settled and closed it, before its transactions.
    const ended = await decided(opened.leaseId);
    assert.equal(ended.status, 'closed', 'the chain closed it in the first block at or after its end');
    assert.equal(ended.closedReason, 'escrowExhausted');
    assert.equal(ended.settledTime, fresh.escrowUntil, 'the escrow paid up to exactly that moment');
    assert.equal(ended.remaining, '0');
    assert.equal(BigInt(ended.paid) + BigInt(ended.refunded), 15n * 10n ** 15n, 'every unit of the escrow');
  });

  test('epoch ends settle the lease; top-up and close keep every unit accounted for', async () => {
    const start = (await client.status()).height;
    // Wait past two epoch boundaries (30 blocks each).
    while ((await client.status()).height < start + 61) await new Promise((r) => setTimeout(r, 100));
    const mid = await client.getLease(leaseId);
    assert.ok(BigInt(mid.paid) + BigInt(mid.refunded) > 0n, 'settled at the epoch ends');
    assert.ok(mid.settledTime > mid.startTime);
    await send(renter.seed, [topUpLeaseAction(leaseId, 5n)]);
    const events = await send(renter.seed, [closeLeaseAction(leaseId)]);
    assert.ok(events.some((e) => e.type === 'leaseClosed'));
    const l = await decided(leaseId);
    assert.equal(l.status, 'closed');
    assert.equal(l.closedReason, 'renterClosed');
    const proven = await lightClient().verifyLease(client, leaseId);
    assert.ok(proven.lease);
    assert.equal(proven.status, 'closed');
    // A node showing the closed lease as open, beside the honest proof, is refused.
    const hostile = {
      getBlock: (h: number) => client.getBlock(h),
      getValidatorSetProof: (h: number) => client.getValidatorSetProof(h),
      getLease: async (id: string): Promise<LeaseJson> => ({
        ...(await client.getLease(id, true)),
        status: 'active',
        closedHeight: null,
        closedTime: null,
        closedReason: null,
      }),
    };
    await assert.rejects(
      lightClient().verifyLease(hostile, leaseId),
      (e: Error) => e instanceof ProofError && e.code === 'MISMATCH' && /status/.test(e.message),
    );
    assert.equal(l.remaining, '0');
    assert.equal(BigInt(l.paid) + BigInt(l.refunded), 72n * UNC + 5n);
    const rec = await client.getProviderRecord(encodeAddress(provider.address));
    assert.equal(rec.offers, 1);
    assert.equal(rec.leases, 1);
    assert.equal(rec.earnings, l.paid);
    assert.deepEqual(rec.openOffers, [offerId]);
    assert.equal(rec.activeLeases, 0);
    assert.equal(rec.rating, null);
    // The lease's log (unc_getLeaseEvents), newest first: opened, the epoch-end settlements (block
    // events, no transaction), the top-up and the close; page by page it is the same list.
    type LogPage = {
      events: { height: number; txIndex: number | null; event: { type: string } }[];
      nextCursor: string | null;
    };
    const log = await client.call<LogPage>('unc_getLeaseEvents', { leaseId, limit: 500 });
    const types = log.events.map((e) => e.event.type);
    assert.equal(types.at(-1), 'leaseOpened');
    assert.ok(types.includes('leaseToppedUp') && types.includes('leaseClosed'), types.join());
    assert.ok(
      log.events.some((e) => e.event.type === 'leaseSettled' && e.txIndex === null),
      'epoch-end settlements are block events',
    );
    const heights = log.events.map((e) => e.height);
    assert.deepEqual(
      heights,
      [...heights].sort((a, b) => b - a),
    );
    const paged: LogPage['events'] = [];
    let cursor: string | null = null;
    do {
      const page: LogPage = await client.call('unc_getLeaseEvents', {
        leaseId,
        limit: 1,
        ...(cursor ? { cursor } : {}),
      });
      paged.push(...page.events);
      cursor = page.nextCursor;
    } while (cursor);
    assert.deepEqual(paged, log.events);
    // The provider's history names the lease the renter opened (it touched the provider's account).
    const providerTxs = await client.call<{ transactions: { tx: { actions: { type: string }[] } }[] }>(
      'unc_getAccountTransactions',
      { address: encodeAddress(provider.address), limit: 100 },
    );
    assert.ok(providerTxs.transactions.some((t) => t.tx.actions.some((a) => a.type === 'openLease')));
  });

  test('bad parameters are -32602 and unknown ids NOT_FOUND', async () => {
    assert.equal((await rpcError(client.call('unc_getLease', ['zz']))).rpcCode, -32602);
    assert.equal((await rpcError(client.call('unc_getLeases', [{}]))).rpcCode, -32602);
    assert.equal((await rpcError(client.call('unc_getLeases', { renter: 'unc1nope' }))).rpcCode, -32602);
    assert.equal((await rpcError(client.call('unc_getProviderRecord', []))).rpcCode, -32602);
    const missing = await rpcError(client.getOffer('00'.repeat(32)));
    assert.equal(missing.reason, 'NOT_FOUND');
    assert.equal((await rpcError(client.getLease('11'.repeat(32)))).reason, 'NOT_FOUND');
  });
});
