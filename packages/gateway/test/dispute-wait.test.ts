/**
 * The chain takes a dispute only once its block time has passed the request's timestamp + the
 * dispute wait (the provider's time to answer), and only on a lease its renter kept running
 * through that wait: a lease opened, disputed and closed in one block no longer buries a provider.
 * The gateway, which disputes a request that got no answer and then drops the lease, must hold
 * the dispute until the chain's time has passed the wait and close the lease only after it, or its
 * disputes are refused. And the chain takes one dispute per wait of lease time its renter kept
 * and paid for: the gateway sends no more than that allowance, and records the rest as not sent
 * rather than holding a closing lease open (paying the failing provider) to earn more. The
 * gateway is real; its node is the small one of `fake-node.ts`.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { decode, fromHex, signedTransactionCodec } from '@unc/core';
import { encodeSignedJobRequest, type LeaseJson } from '@unc/sdk';
import { Gateway } from '../src/gateway.js';
import { gatewayOptions, listening, mempoolOnlyNode } from './fake-node.js';

const UNC = 10n ** 18n;
const T0 = 1_000_000;
const WAIT = 120_000;

async function waitFor(what: string, probe: () => boolean): Promise<void> {
  const deadline = Date.now() + 30_000; // generous: only a real failure should reach it
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** What the tests reach inside the gateway. */
interface Inside {
  client: { waitForTransaction(hash: string): Promise<unknown> };
  leases: Map<string, unknown>;
  ticking: boolean;
  chainTime: { blockMs: number; readMs: number };
  dispute(lease: unknown, jobId: string, requestHex: string, reason: string): void;
  dropLease(lease: unknown, reason: string): void;
  sendDueDisputes(): void;
  topUpLeases(): void;
}

/** A real gateway on the fake node, with the node's transactions (`sent`) and block time (`state`). */
async function withGateway(
  run: (gw: Gateway, inside: Inside, sent: string[], dir: string) => Promise<void>,
  /** unc_getLease's answer by lease id (read when asked, so a getter may change it). */
  leaseOnChain: Record<string, unknown> = {},
): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-dispute-'));
  const sent: string[] = [];
  const state = { txStatus: 'pending', timeMs: T0, params: { disputeWaitMs: WAIT }, lease: leaseOnChain };
  const node = mempoolOnlyNode(sent, state);
  const gw = new Gateway(
    gatewayOptions(await listening(node), dir, {
      renterSeed: new Uint8Array(32).fill(9),
      budgetPerHour: 100n * UNC,
      now: () => T0,
    }),
  );
  try {
    await gw.start();
    const inside = gw as unknown as Inside;
    await waitFor('the first tick', () => !inside.ticking);
    await run(gw, inside, sent, dir);
  } finally {
    await gw.stop();
    await new Promise<void>((r) => node.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A serving lease of the pool, opened on chain at `startMs` for 3 hours. */
function servingLease(leaseId: string, startMs: number) {
  const view = {
    id: leaseId,
    pricePerHour: UNC.toString(),
    hours: 3,
    deposit: (3n * UNC).toString(),
    status: 'active',
    startTime: startMs,
    escrowUntil: startMs + 3 * 3_600_000,
    endTime: startMs + 3 * 3_600_000,
    disputes: 0,
    closedTime: null,
    closedReason: null,
  } as LeaseJson;
  return {
    row: {
      leaseId,
      offerId: 'aa'.repeat(32),
      chipId: 'bb'.repeat(32),
      provider: 'unc1provider',
      endpoint: 'http://127.0.0.1:1',
      pricePerHour: UNC.toString(),
      noticeMs: 60_000,
      openedMs: startMs,
      closedMs: null,
      closeReason: null,
    },
    price: UNC,
    slots: 1,
    inFlight: 0,
    lastActiveMs: T0,
    idleClients: [],
    allClients: [],
    ocrModelHash: '',
    modelHashes: new Map(),
    latencies: [],
    answered: 0,
    failed: 0,
    failureStreak: 0,
    closing: false,
    view,
    disputes: 0,
    toppingUp: false,
    topUpRetryAtMs: 0,
  };
}

/** A request the renter signed on `leaseId` at `timestampMs` (the fake node checks no signature). */
function request(leaseId: string, timestampMs: number, nonce: bigint): string {
  return encodeSignedJobRequest({
    request: {
      chainId: 'unc-inclusion-test',
      leaseId: fromHex(leaseId, 32),
      method: 'POST',
      path: '/v1/jobs',
      bodyHash: new Uint8Array(32).fill(1),
      timestampMs: BigInt(timestampMs),
      nonce,
    },
    signature: new Uint8Array(64),
  });
}

/** The actions the node was handed, in the order it got them. */
const kinds = (sent: string[]) =>
  sent.flatMap((hex) => decode(signedTransactionCodec, fromHex(hex)).tx.actions.map((a) => a.type));

describe('a dispute of a request that got no answer', () => {
  test('is sent once the chain’s time has passed the wait, and the lease is closed only after it', async () => {
    await withGateway(async (gw, inside, sent) => {
      const leaseId = 'dd'.repeat(32);
      const lease = servingLease(leaseId, T0 - 60_000);
      inside.leases.set(leaseId, lease);
      // What an attempt that got no answer does: dispute, then avoid the provider (drop its lease).
      inside.dispute(lease, 'job-1', request(leaseId, T0 - 1_000, 1n), 'no answer: timeout');
      inside.dropLease(lease, 'provider avoided');
      // Before: the dispute went at once (the chain now refuses it, DISPUTE_TOO_EARLY) and the lease
      // was closed right after (and a closed-too-soon lease takes no dispute at all).
      await new Promise((r) => setTimeout(r, 500));
      assert.deepEqual(kinds(sent), [], 'nothing sent before the wait has passed');
      assert.ok(inside.leases.has(leaseId), 'the lease is kept open for its dispute');
      // One block time short of the wait: still nothing.
      inside.chainTime = { blockMs: T0 - 1_000 + WAIT - 1, readMs: T0 };
      inside.sendDueDisputes();
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(kinds(sent), []);
      // The chain's time has passed it: the dispute goes, then the lease is closed.
      inside.chainTime = { blockMs: T0 - 1_000 + WAIT, readMs: T0 };
      inside.sendDueDisputes();
      await waitFor('the dispute and the close', () => kinds(sent).length === 2);
      assert.deepEqual(kinds(sent), ['dispute', 'closeLease']);
      assert.equal(gw.store.disputes()[0]?.leaseId, leaseId, 'recorded (this node never includes it)');
      assert.ok(!inside.leases.has(leaseId));
    });
  });

  test('goes only within the lease’s allowance (one per wait kept); the rest are recorded unsent', async () => {
    await withGateway(async (gw, inside, sent) => {
      const leaseId = 'ee'.repeat(32);
      // Opened just before its requests: at their due time it has been kept one wait, one dispute.
      const start = T0 - 2_000;
      const lease = servingLease(leaseId, start);
      inside.leases.set(leaseId, lease);
      // Three slots' requests got no answer at once; then the provider is avoided.
      for (let i = 0; i < 3; i++)
        inside.dispute(lease, `job-${i}`, request(leaseId, T0 - 1_000, BigInt(i)), 'no answer: timeout');
      inside.dropLease(lease, 'provider avoided');
      inside.chainTime = { blockMs: T0 - 1_000 + WAIT, readMs: T0 };
      inside.sendDueDisputes();
      // Before: all three went (the chain refuses two of them: TOO_MANY_DISPUTES).
      await waitFor('the dispute and the close', () => kinds(sent).length === 2);
      assert.deepEqual(kinds(sent), ['dispute', 'closeLease']);
      // Recorded all three: the one sent (this node never includes it), two not sent and why.
      const rows = gw.store.disputes();
      assert.equal(rows.length, 3);
      const unsent = rows.filter((r) => r.error?.startsWith('not sent'));
      assert.equal(unsent.length, 2);
      for (const r of unsent) {
        assert.equal(r.txHash, null);
        assert.match(r.error!, /TOO_MANY_DISPUTES/);
      }
    });
  });

  test('of a lease over on chain past its allowance is recorded unsent, not held pending for ever', async () => {
    await withGateway(async (gw, inside, sent) => {
      const leaseId = 'ff'.repeat(32);
      const start = T0 - 2_000;
      const lease = servingLease(leaseId, start);
      // Its escrow paid for one wait (pay-as-you-go), its one dispute recorded; then it ended on
      // chain and left the pool (refreshLeases), without the gateway ever closing it.
      lease.view = { ...lease.view, deposit: (UNC / 30n).toString(), status: 'ended', disputes: 1 };
      lease.disputes = 1;
      inside.dispute(lease, 'job-9', request(leaseId, T0 - 1_000, 9n), 'no answer: timeout');
      inside.chainTime = { blockMs: T0 - 1_000 + WAIT, readMs: T0 };
      inside.sendDueDisputes();
      // Before: it stayed pending (it waited for an allowance the lease can no longer earn),
      // unrecorded until the gateway stopped, and then as "before the response wait passed".
      await waitFor('the dispute recorded', () => gw.store.disputes().length === 1);
      const [row] = gw.store.disputes();
      assert.equal(row?.txHash, null);
      assert.match(row!.error!, /TOO_MANY_DISPUTES/);
      assert.deepEqual(kinds(sent), [], 'nothing sent: the chain would refuse it');
    });
  });

  test('after a top-up goes within the allowance the topped-up deposit earns', async () => {
    const leaseId = 'cc'.repeat(32);
    const start = T0 - 2_000;
    // Pay-as-you-go: escrowed for one wait (1/30 UNC at 1 UNC/h is 2 min), its one dispute recorded.
    const before = {
      ...servingLease(leaseId, start).view,
      deposit: (UNC / 30n).toString(),
      escrowUntil: start + WAIT,
      disputes: 1,
    };
    // The top-up adds an hour: the chain's view once the node has it.
    const after = { ...before, deposit: (UNC / 30n + UNC).toString(), escrowUntil: start + WAIT + 3_600_000 };
    let sent: string[] = [];
    const onChain = {
      get [leaseId]() {
        return sent.length > 0 ? after : before;
      },
    };
    await withGateway(async (_gw, inside, sentTxs) => {
      sent = sentTxs;
      // This node reports no inclusion; the top-up's own inclusion is not what is tested here.
      inside.client.waitForTransaction = async (hash) => ({
        hash,
        height: 4,
        index: 0,
        blockHash: '00'.repeat(32),
      });
      const lease = { ...servingLease(leaseId, start), view: before, disputes: 1, inFlight: 1 };
      inside.leases.set(leaseId, lease);
      // Busy, its escrow running out within the top-up horizon: topped up.
      inside.topUpLeases();
      assert.equal(lease.toppingUp, true);
      await waitFor('the top-up to settle', () => !lease.toppingUp);
      assert.deepEqual(kinds(sent), ['topUpLease']);
      // A request made after the first wait got no answer; its wait has passed by block time.
      inside.dispute(lease, 'job-1', request(leaseId, T0 + 10_000, 1n), 'no answer: timeout');
      inside.chainTime = { blockMs: start + 2 * WAIT, readMs: T0 };
      inside.sendDueDisputes();
      // Kept and paid for two waits by then: the chain takes a second dispute. Before: the
      // allowance was computed from the deposit before the top-up (one wait: one dispute), and
      // the dispute waited for an allowance the chain had already given.
      assert.equal(lease.disputes, 2, 'the second dispute is on its way');
      await waitFor('the dispute', () => kinds(sent).length === 2);
      assert.deepEqual(kinds(sent), ['topUpLease', 'dispute']);
      lease.inFlight = 0;
    }, onChain);
  });
});
