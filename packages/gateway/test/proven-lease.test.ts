/**
 * `unc gateway start --prove`: every lease value the gateway acts on (price, times, escrow,
 * status, renter…) and the chain's height and time are proven, not the node's word. A node that
 * reports a lease cheaper than it is (the budget then lets more leases open), lists another
 * renter's lease as this one's, claims a head it cannot prove (an expiry passed, a dispute due),
 * goes back to an older state, or answers at a block below one already verified is refused, and
 * nothing is decided on its answer. The gateway is real; its node is proven-node.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  addressFromPublicKey,
  ed25519PublicKey,
  encodeAddress,
  type Lease,
  LeaseStatus,
  type Offer,
  OfferStatus,
  putLease,
  putMarketParams,
  putOffer,
} from '@unc/core';
import { ProofError, type ProofErrorCode } from '@unc/sdk';
import { Gateway } from '../src/gateway.js';
import { gatewayOptions, listening } from './fake-node.js';
import { provenWorld, rpcNode, validatorKey } from './proven-node.js';

const CHAIN = 'unc-gateway-prove-lease-test';
const TIME = 1_700_000_000_000;
const HOUR = 3_600_000;
const UNC = 10n ** 18n;
const id = (n: number) => new Uint8Array(32).fill(n);
const addr = (n: number) => new Uint8Array(20).fill(n);
/** gatewayOptions' renter: key 7. */
const renter = addressFromPublicKey(ed25519PublicKey(new Uint8Array(32).fill(7)));

const offer: Offer = {
  id: id(5),
  provider: addr(9),
  chipIds: [id(1)],
  pricePerHour: UNC,
  minHours: 1,
  maxHours: 24,
  noticeMs: 600_000n,
  endpoint: 'https://gpu.example:8443/jobs',
  attributes: { memoryMiB: 0, region: '', runtimes: [] },
  createdHeight: 1n,
  createdTime: BigInt(TIME - 10 * HOUR),
  status: OfferStatus.open,
  closedTime: 0n,
  closesAt: 0n,
  leasesOpened: 2n,
  tlsFingerprints: [id(0xf0)],
};

function lease(n: number, who: Uint8Array): Lease {
  return {
    id: id(n),
    offerId: id(5),
    chipId: id(1),
    provider: addr(9),
    renter: who,
    renterPublicKey: id(0x77),
    pricePerHour: UNC,
    hours: 24,
    startHeight: 1n,
    startTime: BigInt(TIME - HOUR),
    endTime: BigInt(TIME + 23 * HOUR),
    deposited: 24n * UNC,
    accrued: 0n,
    paid: 0n,
    refunded: 0n,
    remaining: 24n * UNC,
    settledTime: BigInt(TIME - HOUR),
    slotCursor: 0n,
    slotsAnswered: 0n,
    slotsMissed: 0n,
    status: LeaseStatus.active,
    closingReason: '',
    closedHeight: 0n,
    closedTime: 0n,
    closedReason: '',
    disputes: 0,
  };
}

const mine = lease(3, renter);
const theirs = lease(4, addr(0x44));
const world = provenWorld(CHAIN, (o) => {
  putMarketParams(o, { disputeWaitMs: 123_000n, receiptWindowMs: 86_400_000n });
  putOffer(o, offer);
  putLease(o, mine);
  putLease(o, theirs);
});
/** Block h is stamped TIME + h seconds. */
const timeOf = (h: number) => TIME + h * 1000;

/** What the node answers; each test sets it. */
const node = {
  height: 2,
  /** The block served for a height asked (default: that height's). */
  block: (h: number) => world.block(h, timeOf(h)).json as unknown,
  leases: () => [{ id: 'dd' }] as unknown[],
  lease: (leaseId: string, height: number): unknown =>
    world.leaseAnswer(leaseId === mineId ? mine : theirs, height, timeOf(height)),
  /** The height unc_getLease answers at (default: the head's). */
  leaseHeight: () => node.height,
  /** The lease an included opening's events name. */
  opened: '',
};
const mineId = '03'.repeat(32);
const theirsId = '04'.repeat(32);
const server = rpcNode({
  unc_status: () => ({ chainId: CHAIN, height: node.height, timeMs: timeOf(node.height), time: '' }),
  unc_getParams: () => ({ minFeePerByte: '1000', minFeePerAction: '100000' }),
  unc_getBlock: (p) => node.block(p[0] as number),
  unc_getLeases: () => node.leases(),
  unc_getLease: (p) => node.lease(p[0] as string, node.leaseHeight()),
  unc_getTransactionStatus: (p) => ({ hash: p[0], status: 'included', height: 2, index: 0 }),
  unc_getTransaction: (p) => ({
    hash: p[0],
    height: 2,
    index: 0,
    blockHash: '00'.repeat(32),
    time: new Date(timeOf(2)).toISOString(),
    tx: {},
    events: [{ type: 'leaseOpened', leaseId: node.opened }],
  }),
});
const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-prove-lease-'));
const gateways: Gateway[] = [];
after(async () => {
  for (const gw of gateways) await gw.stop();
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
});

let n = 0;
async function gateway(nowMs = timeOf(2) + 60_000): Promise<Private> {
  const url = server.listening
    ? `http://127.0.0.1:${(server.address() as { port: number }).port}`
    : await listening(server);
  const name = `g${n++}`;
  const gw = new Gateway(
    gatewayOptions(url, join(dir, name), {
      dbPath: join(dir, `${name}.db`),
      now: () => nowMs,
      trustAnchor: {
        kind: 'genesis',
        chainId: CHAIN,
        validators: [{ publicKey: validatorKey }],
        epochBlocks: 1000n,
      },
    }),
  );
  gateways.push(gw);
  return gw as unknown as Private;
}

/** The gateway's chain reads the tests drive (private: the pool's ticks are not run here). */
interface Private {
  disputeWaitMs: number;
  readChainLeases(): Promise<{ id: string; pricePerHour: string }[]>;
  spendAllowed(newRate: bigint, newFees: bigint): Promise<boolean>;
  settleOpens(height: number | null): Promise<void>;
  unsettledOpens: Map<string, object>;
  store: {
    addPendingOpen(o: { txHash: string; pricePerHour: string; expiresAt: string; noticeMs: number }): void;
    pendingOpens(): unknown[];
    leases(): { leaseId: string }[];
  };
}

function reset(): void {
  node.height = 2;
  node.block = (h) => world.block(h, timeOf(h)).json;
  node.leases = () => [{ id: mineId }];
  node.lease = (leaseId, height) =>
    world.leaseAnswer(leaseId === mineId ? mine : theirs, height, timeOf(height));
  node.leaseHeight = () => node.height;
}

async function refused(p: Promise<unknown>, code: ProofErrorCode, why: RegExp): Promise<void> {
  await assert.rejects(p, (err: Error) => {
    assert.ok(err instanceof ProofError, `${err.name}: ${err.message}`);
    assert.equal(err.code, code, err.message);
    assert.match(err.message, why);
    return true;
  });
}

test("the renter's leases are proven: a price reported lower than the chain's is refused", async () => {
  reset();
  const gw = await gateway();
  const honest = await gw.readChainLeases();
  assert.deepEqual(
    honest.map((l) => [l.id, l.pricePerHour]),
    [[mineId, UNC.toString()]],
  );
  // The node halves the price: the budget would count half the rate, and let a second lease open.
  node.lease = (_leaseId, height) => ({
    ...(world.leaseAnswer(mine, height, timeOf(height)) as object),
    pricePerHour: (UNC / 2n).toString(),
  });
  await refused(gw.readChainLeases(), 'MISMATCH', /pricePerHour/);
  // …or ends it early in its answer (escrowUntil), which the gateway decides top-ups and jobs on.
  node.lease = (_leaseId, height) => ({
    ...(world.leaseAnswer(mine, height, timeOf(height)) as object),
    escrowUntil: TIME,
  });
  await refused(gw.readChainLeases(), 'MISMATCH', /escrowUntil/);
});

test("another renter's lease listed as this one's is refused, though its record is genuine", async () => {
  reset();
  const gw = await gateway();
  node.leases = () => [{ id: mineId }, { id: theirsId }];
  await refused(gw.readChainLeases(), 'WRONG_RECORD', /not this gateway's/);
});

test('the head is verified: a height that goes back, or that no signed block proves, is refused', async () => {
  reset();
  const gw = await gateway();
  assert.equal(typeof (await gw.spendAllowed(0n, 0n)), 'boolean');
  // Back to block 1 (true, and signed, but older than block 2 verified already).
  node.height = 1;
  await refused(gw.spendAllowed(0n, 0n), 'HEAD_WENT_BACK', /block 1, below block 2 verified before/);
  // A height far ahead (an expiry passed, a dispute due) that the node cannot prove: it serves
  // block 2 for it, or a block nobody signed.
  node.height = 9;
  node.block = () => world.block(2, timeOf(2)).json;
  await refused(gw.spendAllowed(0n, 0n), 'INVALID_PROOF', /asked for block 9, got block 2/);
  node.block = (h) => {
    const b = world.block(h, timeOf(h)).json;
    return { ...b, commit: { ...b.commit, signatures: [] } };
  };
  await refused(gw.spendAllowed(0n, 0n), 'INVALID_PROOF', /not signed by its validators/);
  // The claims it could not prove raised nothing: the honest head is taken again.
  reset();
  node.height = 3;
  assert.equal(typeof (await gw.spendAllowed(0n, 0n)), 'boolean');
});

test('a lease answered at a block below the verified head is refused; so is a head too old', async () => {
  reset();
  const gw = await gateway();
  node.height = 2;
  await gw.spendAllowed(0n, 0n);
  // The head stays at 2, the lease comes from block 1: a true state, from before (escrow since spent).
  node.leaseHeight = () => 1;
  await refused(gw.readChainLeases(), 'HEAD_WENT_BACK', /lease .* was read at block 1, below block 2/);
  // A fresh gateway whose clock is an hour past block 2: the head is stale (true but old).
  reset();
  const late = await gateway(timeOf(2) + HOUR);
  await refused(late.spendAllowed(0n, 0n), 'STALE', /older than the oldest accepted/);
});

test("the dispute wait is the chain's, proven with the lease, not unc_getParams' word", async () => {
  reset();
  const gw = await gateway();
  // What start() took from the node's unc_getParams: a wait of 1 ms (disputes sent at once, each
  // refused by the chain and its fee lost).
  gw.disputeWaitMs = 1;
  await gw.readChainLeases();
  assert.equal(gw.disputeWaitMs, 123_000);
});

test('an opening seen late is recorded only with a lease it can have opened, not another of the renter’s', async () => {
  // The renter's lease 3 (chip 1 of offer 5, 1 UNC/h, opened at block 1) is genuine and proven of
  // this renter, but not this opening's: the node names it for a transaction whose lease it hides.
  // Recorded, the refresh would close it (out of the pool), and the opening would count no more.
  const opening = (hash: string, open: object, rate: bigint) => {
    gw.store.addPendingOpen({
      txHash: hash,
      pricePerHour: rate.toString(),
      expiresAt: '102',
      noticeMs: 600_000,
    });
    gw.unsettledOpens.set(hash, { rate, expiresAt: 102n, noticeMs: 600_000, abandoned: true, ...open });
  };
  reset();
  node.opened = mineId;
  const gw = await gateway();
  // This run's opening signed chip 2 of offer 6: not lease 3's terms.
  const terms = { offerId: '06'.repeat(32), chipId: '02'.repeat(32), provider: encodeAddress(addr(9)) };
  opening('a1'.repeat(32), { endpoint: offer.endpoint, terms }, UNC);
  // A previous run's, whose terms are not kept: it signed at most 0.5 UNC/h, lease 3 costs 1.
  opening('a2'.repeat(32), {}, UNC / 2n);
  await gw.settleOpens(2);
  assert.deepEqual(gw.store.leases(), [], 'no lease recorded');
  // Still counted (their own leases may be hidden) until the chain passes their expiry height.
  assert.equal(gw.unsettledOpens.size, 2);
  assert.equal(gw.store.pendingOpens().length, 2);
  await gw.settleOpens(103);
  assert.equal(gw.unsettledOpens.size, 0);
  // One it can have opened (lease 3's price, before its expiry, no terms known) is recorded.
  opening('a3'.repeat(32), {}, UNC);
  await gw.settleOpens(2);
  assert.deepEqual(
    gw.store.leases().map((r) => r.leaseId),
    [mineId],
  );
});
