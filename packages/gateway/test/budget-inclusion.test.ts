/**
 * A lease opening whose inclusion the gateway did not see (the wait for it failed) may still be
 * included until its expiry height. Until then its rate must count against the budget: otherwise a
 * second opening passes the spend check while the first sits in the mempool, and once both are
 * included the key pays for two leases an hour on a budget for one. The gateway is real; its node
 * is a small JSON-RPC server that accepts every transaction and never reports one included (no
 * WebSocket, so every wait for inclusion fails at once, as a timed-out wait does).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Gateway } from '../src/gateway.js';
import { MS_PER_HOUR } from '../src/policy.js';
import { GatewayStore } from '../src/store.js';
import { gatewayOptions, listening, mempoolOnlyNode } from './fake-node.js';

/** Waits out the gateway's first tick (loudly, at most 60 s), so that what a test counts is its own. */
async function firstTickDone(inside: { ticking: boolean }): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (inside.ticking) {
    if (Date.now() > deadline) throw new Error("the gateway's first tick did not end in 60 s");
    await new Promise((r) => setTimeout(r, 20));
  }
}

const UNC = 10n ** 18n;

describe('a lease opening not seen included', () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-inclusion-'));
  const sent: string[] = [];
  const state = { txStatus: 'pending' };
  const node = mempoolOnlyNode(sent, state);
  let gw: Gateway;
  before(async () => {
    // Only the test's openings (gatewayOptions: no tick of its own): a tick (every transaction
    // reads as dropped here) once opened another right after the third, and the count read 3.
    gw = new Gateway(gatewayOptions(await listening(node), dir));
    await gw.start();
    const inside = gw as unknown as { ticking: boolean };
    await firstTickDone(inside);
  });
  after(async () => {
    await gw.stop();
    await new Promise<void>((r) => node.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  test('counts against the budget while it may still be included, a NONCE_USED drop too; not past its expiry height', async () => {
    await gw.openLease('first');
    assert.equal(sent.length, 1, 'the first opening is sent');
    // Before: the failed wait released its rate, the chain listed no lease, and a second opening
    // of the same price was sent: two leases at once on a budget for one.
    await gw.openLease('second');
    assert.equal(sent.length, 1, 'no second opening while the first may still be included');
    // "Dropped, its nonce used" is the node's word: a hostile one says so and relays it later.
    // Before, the opening was forgotten on that answer and a second one went out.
    const settleOpens = (h: number) =>
      (gw as unknown as { settleOpens(h: number | null): Promise<void> }).settleOpens(h);
    state.txStatus = 'dropped';
    await settleOpens(5);
    await gw.openLease('third');
    assert.equal(sent.length, 1, 'no second opening on a NONCE_USED answer alone');
    // Past its expiry height no block can include it: the budget has room again.
    await settleOpens(Number(gw.store.fees()[0]!.expiresAt) + 1);
    await gw.openLease('fourth');
    assert.equal(sent.length, 2, 'an opening is sent again once the first is past its expiry height');
  });
});

// A node answers the sending of a lease opening with an error (NONCE_USED, EXPIRED) while it keeps
// the signed transaction, to relay it once the gateway, taking the answer as final, has signed a
// second opening: two leases (two deposits, two fees) on a budget for one.
describe('a lease opening the node refuses', () => {
  for (const reason of ['NONCE_USED', 'EXPIRED']) {
    test(`(${reason}) still counts, opening and fee, until the chain is past its expiry height`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-refused-'));
      const sent: string[] = [];
      const state: { txStatus: string; refuseSend?: string } = { txStatus: 'unknown', refuseSend: reason };
      const node = mempoolOnlyNode(sent, state);
      const gw = new Gateway(gatewayOptions(await listening(node), dir));
      const inside = gw as unknown as {
        ticking: boolean;
        settleOpens(h: number | null): Promise<void>;
        settleFees(chain: { height: number; timeMs: number } | null): Promise<void>;
      };
      try {
        await gw.start();
        await firstTickDone(inside);
        await gw.openLease('first');
        assert.equal(sent.length, 1);
        // Before: the refusal removed the fee and the opening's rate, and a second opening went out.
        assert.equal(gw.store.fees().length, 1, 'its fee still counts');
        assert.equal(BigInt(gw.status().openingPerHour) > 0n, true, 'its rate still counts');
        await inside.settleOpens(5);
        await inside.settleFees({ height: 5, timeMs: 1_000_000 });
        await gw.openLease('second');
        assert.equal(sent.length, 1, 'no second opening while the first may still be included');
        // The node looked up by hash knows nothing of it, and the chain is past its expiry height:
        // it can no longer be included.
        const past = Number(gw.store.fees()[0]!.expiresAt) + 1;
        await inside.settleOpens(past);
        await inside.settleFees({ height: past, timeMs: 1_000_000 });
        assert.equal(gw.store.fees().length, 0);
        assert.equal(gw.status().openingPerHour, '0');
      } finally {
        await gw.stop();
        await new Promise<void>((r) => node.close(() => r()));
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});

describe('a transaction dropped from its node’s mempool only', () => {
  test('still counts (opening and fee) until its nonce is used or its expiry height passes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-evicted-'));
    const sent: string[] = [];
    const state: { txStatus: string; dropCode?: string } = { txStatus: 'pending' };
    const node = mempoolOnlyNode(sent, state);
    // Only the test's own steps: no tick opens or settles anything in between.
    const gw = new Gateway(gatewayOptions(await listening(node), dir));
    const inside = gw as unknown as {
      ticking: boolean;
      settleOpens(h: number | null): Promise<void>;
      settleFees(chain: { height: number; timeMs: number } | null): Promise<void>;
    };
    try {
      await gw.start();
      await firstTickDone(inside);
      await gw.openLease('first');
      assert.equal(sent.length, 1);
      // Evicted from this node's full mempool: it was gossiped, and another node may include it.
      // Before, the opening's rate and its fee were forgotten, and a second opening went out.
      state.txStatus = 'dropped';
      state.dropCode = 'EVICTED';
      await inside.settleOpens(5);
      await inside.settleFees({ height: 5, timeMs: 1_000_000 });
      assert.equal(gw.store.fees().length, 1, 'its fee still counts');
      await gw.openLease('second');
      assert.equal(sent.length, 1, 'no second opening while the first may still be included');
      // Past its expiry height it can no longer be included.
      await inside.settleOpens(1_000_000_000);
      await inside.settleFees({ height: 1_000_000_000, timeMs: 1_000_000 });
      assert.equal(gw.store.fees().length, 0);
      await gw.openLease('third');
      assert.equal(sent.length, 2);
    } finally {
      await gw.stop();
      await new Promise<void>((r) => node.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// A node can report an opening included (with no lease opened) while it holds the transaction,
// and relay it later, until its expiry height: the lease then opens beside the ones opened
// meanwhile. Forgotten at the report, its rate let a second opening through on a budget for one.
describe('a lease opening reported included without a lease', () => {
  test('counts against the budget until its expiry height has passed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-open-held-'));
    const sent: string[] = [];
    const state: { txStatus: string; height: number } = { txStatus: 'included', height: 5 };
    const node = mempoolOnlyNode(sent, state);
    const gw = new Gateway(gatewayOptions(await listening(node), dir));
    const inside = gw as unknown as { ticking: boolean; settleOpens(h: number | null): Promise<void> };
    try {
      await gw.start();
      for (let i = 0; i < 500 && inside.ticking; i++) await new Promise((r) => setTimeout(r, 20));
      await gw.openLease('first');
      assert.equal(sent.length, 1);
      // "Included", and its receipt names no lease (the fake node's receipts carry no events).
      await inside.settleOpens(state.height);
      await gw.openLease('second');
      assert.equal(sent.length, 1, 'no second opening while the first may still open a lease');
      // Why, for the operator: the rate it holds.
      const held = BigInt(gw.status().openingPerHour);
      assert.equal(held > 0n, true);
      // Past its expiry height no block can include it: the budget has room again.
      const expiresAt = Number(gw.store.fees()[0]!.expiresAt);
      state.height = expiresAt + 1;
      await inside.settleOpens(state.height);
      assert.equal(BigInt(gw.status().openingPerHour), 0n);
      await gw.openLease('third');
      assert.equal(sent.length, 2);
    } finally {
      await gw.stop();
      await new Promise<void>((r) => node.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('a fee row from before expiry heights were kept, unknown to the node', () => {
  test('is placed at the chain’s block time, not at the gateway’s clock when it was sent', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-legacy-fee-'));
    const sent: string[] = [];
    const chainMs = 10 * 3_600_000;
    const node = mempoolOnlyNode(sent, { txStatus: 'unknown', timeMs: chainMs });
    const gw = new Gateway(
      gatewayOptions(await listening(node), dir, {
        budgetPerHour: UNC,
      }),
    );
    const inside = gw as unknown as {
      ticking: boolean;
      settleFees(chain: { height: number; timeMs: number } | null): Promise<void>;
    };
    try {
      await gw.start();
      await firstTickDone(inside);
      // Sent by an older gateway whose clock ran two hours behind the chain's.
      gw.store.addFee({
        txHash: 'ee'.repeat(32),
        kind: 'dispute',
        fee: '5',
        atMs: chainMs - 2 * 3_600_000,
        expiresAt: null,
      });
      await inside.settleFees({ height: 5, timeMs: chainMs });
      // Before: placed at its send time by the gateway's clock, two hours back, it was in no
      // window a check looks at: a fee the chain may have just charged, counted nowhere.
      assert.equal(gw.store.fees()[0]?.includedMs, chainMs);
    } finally {
      await gw.stop();
      await new Promise<void>((r) => node.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('a lease opening not seen included, across a restart', () => {
  test('still counts against the budget after the gateway restarts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-inclusion-restart-'));
    const sent: string[] = [];
    const node = mempoolOnlyNode(sent, { txStatus: 'pending' });
    const nodeUrl = await listening(node);
    const gateway = () =>
      new Gateway({
        nodeUrl,
        renterSeed: new Uint8Array(32).fill(7),
        budgetPerHour: UNC + UNC / 10n,
        models: [{ name: 'ocr' }],
        dbPath: join(dir, 'g.db'),
        allowHttp: true,
        inclusionWaitMs: 300,
        port: 0,
      });
    try {
      const first = gateway();
      await first.start();
      await first.openLease('first');
      await first.stop();
      assert.equal(sent.length, 1);
      // Before: the restarted gateway knew nothing of the opening in the mempool and sent another.
      const second = gateway();
      await second.start();
      await second.openLease('after the restart');
      await second.stop();
      assert.equal(sent.length, 1, 'no second opening while the first may still be included');
    } finally {
      await new Promise<void>((r) => node.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the spend the status shows', () => {
  test("is counted from the chain's block times, as the spend check counts it", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-shown-'));
    const t0 = 1_000_000;
    const minutes = (n: number) => n * 60_000;
    // The lease ran 10 minutes on chain (its escrow ran out), while the gateway was down; it was
    // recorded as ended when the gateway came back, 5 hours later.
    const leaseId = 'cc'.repeat(32);
    const state = {
      txStatus: 'pending',
      leases: [
        {
          id: leaseId,
          pricePerHour: UNC.toString(),
          status: 'closed',
          startTime: t0,
          escrowUntil: t0 + minutes(10),
          closedTime: t0 + minutes(10),
        },
      ],
    };
    const node = mempoolOnlyNode([], state);
    const gw = new Gateway({
      nodeUrl: await listening(node),
      renterSeed: new Uint8Array(32).fill(7),
      budgetPerHour: UNC,
      models: [{ name: 'ocr' }],
      dbPath: join(dir, 'g.db'),
      allowHttp: true,
      port: 0,
      now: () => t0 + minutes(6 * 60),
    });
    try {
      gw.store.putLease({
        leaseId,
        offerId: 'aa'.repeat(32),
        chipId: 'bb'.repeat(32),
        provider: 'unc1provider',
        endpoint: 'http://127.0.0.1:1',
        pricePerHour: UNC.toString(),
        noticeMs: 60_000,
        openedMs: t0,
        closedMs: null,
        closeReason: null,
      });
      gw.store.closeLease(leaseId, t0 + minutes(5 * 60), 'found ended');
      await gw.start();
      await (gw as unknown as { refreshLeases(): Promise<void> }).refreshLeases();
      const shown = gw.status();
      // Before: 5 UNC, five hours of a lease that cost ten minutes.
      const tenMinutes = (UNC * BigInt(minutes(10)) + MS_PER_HOUR - 1n) / MS_PER_HOUR;
      assert.equal(shown.spent, tenMinutes.toString());
      assert.equal(shown.spentLastHour, '0');
    } finally {
      await gw.stop();
      await new Promise<void>((r) => node.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('a fee charged in a later block than it was sent', () => {
  test("counts at its block's time, and in every hour until that block is known", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-fee-block-'));
    const t0 = 1_000_000;
    const minutes = (n: number) => n * 60_000;
    let clock = t0;
    const sent: string[] = [];
    const state: { txStatus: string; timeMs: number; includedAtMs?: number; height?: number } = {
      txStatus: 'pending',
      timeMs: t0,
    };
    const node = mempoolOnlyNode(sent, state);
    const gw = new Gateway(
      gatewayOptions(await listening(node), dir, {
        budgetPerHour: 10n * UNC,
        now: () => clock,
      }),
    );
    const refresh = () => (gw as unknown as { refreshLeases(): Promise<void> }).refreshLeases();
    try {
      await gw.start();
      await gw.openLease('one');
      assert.equal(sent.length, 1);
      const fee = BigInt(gw.store.fees()[0]!.fee);
      // Two hours on, not seen included: it may still land in any hour, so it counts in this one.
      clock = t0 + minutes(120);
      state.timeMs = clock;
      await refresh();
      assert.equal(gw.status().pendingFees, fee.toString());
      assert.equal(BigInt(gw.status().spentLastHour) >= fee, true);
      // Seen included at 1:55 (block time): it counts there, in the hour up to 2:01. The chain is
      // past its expiry height by then: no later block can charge it (else it would count on
      // until an hour after that height passed).
      state.txStatus = 'included';
      state.height = Number(gw.store.fees()[0]!.expiresAt) + 1;
      state.includedAtMs = t0 + minutes(115);
      clock = t0 + minutes(121);
      state.timeMs = clock;
      await refresh();
      assert.equal(gw.store.fees()[0]!.includedMs, t0 + minutes(115));
      assert.equal(gw.status().pendingFees, '0');
      // Before: counted where it was sent (0:00), so absent from the hour up to 2:01.
      assert.equal(BigInt(gw.status().spentLastHour) >= fee, true);
      // An hour after its block it still counts: the gateway saw it included at 2:01 by its own
      // clock, the latest the chain can have charged it (the block time is the node's word)…
      clock = t0 + minutes(176);
      state.timeMs = clock;
      assert.equal(BigInt(gw.status().spentLastHour) >= fee, true);
      // …and an hour after that, it has left the window.
      clock = t0 + minutes(182);
      state.timeMs = clock;
      assert.equal(gw.status().spentLastHour, '0');
    } finally {
      await gw.stop();
      await new Promise<void>((r) => node.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// A hostile node can report a height far ahead: the opening's expiry height is then far ahead too,
// and it counted against the budget until the chain got there (for ever); only a hand edit of the
// database cleared it. Its renter now forgets it (`unc gateway forget-opening`, another connection
// to the same database), and a running gateway stops counting it at its next settle.
describe('a lease opening with an inflated expiry height', () => {
  test('forgotten by its renter beside the running gateway, counts no more, nor does its held fee', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-forget-'));
    const sent: string[] = [];
    const state = { txStatus: 'pending', height: 1_000_000_000 };
    const node = mempoolOnlyNode(sent, state);
    const gw = new Gateway(gatewayOptions(await listening(node), dir));
    const inside = gw as unknown as { ticking: boolean; settleOpens(h: number | null): Promise<void> };
    try {
      await gw.start();
      await firstTickDone(inside);
      await gw.openLease('first');
      assert.equal(sent.length, 1);
      const [fee] = gw.store.fees();
      assert.ok(BigInt(fee!.expiresAt!) > 1_000_000_000n, 'its expiry height is the node’s, inflated');
      await inside.settleOpens(5);
      await gw.openLease('second');
      assert.equal(sent.length, 1, 'it holds the budget');
      // What the command does, through its own connection to the database.
      const other = new GatewayStore(join(dir, 'g.db'));
      const shown = other.pendingOpening(fee!.txHash);
      assert.equal(shown?.open.txHash, fee!.txHash);
      assert.equal(shown?.heldFee?.fee, fee!.fee);
      assert.equal(other.pendingOpening('ab'.repeat(32)), null, 'an unknown hash is no opening');
      assert.deepEqual(other.forgetPendingOpening(fee!.txHash, shown!), shown);
      other.close();
      assert.equal(gw.store.fees().length, 0, 'its held fee is gone at once');
      // Before: no such step; the running gateway counted it in memory whatever the database held.
      await inside.settleOpens(5);
      assert.equal(gw.status().openingPerHour, '0');
      await gw.openLease('third');
      assert.equal(sent.length, 2, 'the budget has room again');
    } finally {
      await gw.stop();
      await new Promise<void>((r) => node.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('is not forgotten when it changed since it was shown (a running gateway settled it, its fee seen included)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-forget-'));
    const store = new GatewayStore(join(dir, 'g.db'));
    try {
      const txHash = 'cd'.repeat(32);
      store.addFee({ txHash, kind: 'openLease', fee: '1000', atMs: 1, expiresAt: '999999999999' });
      store.addPendingOpen({
        txHash,
        pricePerHour: UNC.toString(),
        expiresAt: '999999999999',
        noticeMs: 60_000,
      });
      const shown = store.pendingOpening(txHash)!;
      store.feeIncluded(txHash, 5, 5);
      assert.equal(store.forgetPendingOpening(txHash, shown), null);
      assert.equal(store.pendingOpens().length, 1, 'nothing changed');
      // Shown again: the fee charged on chain (the node says) stays in the audit; the opening goes.
      const again = store.pendingOpening(txHash)!;
      assert.equal(again.heldFee, null);
      assert.deepEqual(store.forgetPendingOpening(txHash, again), again);
      assert.equal(store.pendingOpens().length, 0);
      assert.equal(store.fees().length, 1);
    } finally {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
