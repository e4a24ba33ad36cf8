/**
 * The fee rows are the renter's audit and grow with every transaction the key sends. A spend check
 * must not read them all, nor ask the node about every pending one: it reads the fees of the hour
 * before the chain's block time (and after it) and the pending ones, by index, and asks the node
 * about a bounded number of pending fees; the status's totals come from a sum kept in the
 * database. What the budget proof needs (fees after the block time, pending ones) is still read,
 * and a fee older than the hour changes no spend decision (property below).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { feeMayStillBeCharged, Gateway } from '../src/gateway.js';
import { type BudgetLease, type FeePaid, hourPeak, MS_PER_HOUR } from '../src/policy.js';
import { mempoolOnlyNode } from './fake-node.js';

/** The fees table of a gateway database from before the seen time (the upgrade tests start from it). */
const FEES_TABLE_BEFORE_SEEN_MS =
  'CREATE TABLE fees (tx_hash TEXT PRIMARY KEY, kind TEXT NOT NULL, fee TEXT NOT NULL, at_ms INTEGER NOT NULL, included_ms INTEGER, expires_at TEXT)';

const UNC = 10n ** 18n;
const HOUR = Number(MS_PER_HOUR);

/** A gateway over the fake node and database, with a budget no test here reaches and no tick of its own. */
function gatewayOver(
  node: ReturnType<typeof mempoolOnlyNode>,
  dbPath: string,
  opts: { budgetPerHour?: bigint; now?: () => number } = {},
) {
  const gw = new Gateway({
    nodeUrl: `http://127.0.0.1:${(node.address() as AddressInfo).port}`,
    renterSeed: new Uint8Array(32).fill(7),
    budgetPerHour: opts.budgetPerHour ?? 1_000_000n * UNC,
    ...(opts.now ? { now: opts.now } : {}),
    models: [{ name: 'ocr' }],
    dbPath,
    allowHttp: true,
    inclusionWaitMs: 300,
    port: 0,
    tickMs: 3_600_000,
    targets: { minLeases: 0 },
  });
  const inside = gw as unknown as {
    ticking: boolean;
    spendAllowed(newRate: bigint, newFees: bigint): Promise<boolean>;
  };
  return { gw, inside };
}

/** Starts it and waits out its first tick, so that what a test counts next is its own. */
async function startQuiet(gw: Gateway, inside: { ticking: boolean }): Promise<void> {
  await gw.start();
  // Generous, and loud: a first tick still running when the test goes on would mix its counts in.
  const deadline = Date.now() + 60_000;
  while (inside.ticking) {
    if (Date.now() > deadline) throw new Error("the gateway's first tick did not end in 60 s");
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('a gateway with a long fee history', () => {
  test('a spend check reads the hour’s fees and the pending ones, and asks the node about a bounded number', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-fee-history-'));
    const chainMs = 1_000 * HOUR;
    const calls: Record<string, number> = {};
    const node = mempoolOnlyNode([], { txStatus: 'pending', timeMs: chainMs, calls });
    await new Promise<void>((r) => node.listen(0, '127.0.0.1', r));
    // A database from before the indexes and the kept total: 10,000 fees included long ago, a few
    // in the last hour, two in blocks after the latest block time the check reads, 100 pending.
    const dbPath = join(dir, 'g.db');
    const old = new Database(dbPath);
    old.exec(`CREATE TABLE fees (tx_hash TEXT PRIMARY KEY, kind TEXT NOT NULL, fee TEXT NOT NULL,
      at_ms INTEGER NOT NULL, included_ms INTEGER, expires_at TEXT)`);
    const insert = old.prepare('INSERT INTO fees VALUES (?, ?, ?, ?, ?, ?)');
    const hash = (i: number) => i.toString(16).padStart(64, '0');
    let allIncluded = 0n;
    let pending = 0n;
    old.transaction(() => {
      for (let i = 0; i < 10_000; i++) {
        const at = chainMs - 2 * HOUR - i * 60_000;
        insert.run(hash(i), 'openLease', `${UNC + BigInt(i)}`, at, at, '100');
        allIncluded += UNC + BigInt(i);
      }
      for (let i = 0; i < 5; i++) {
        const at = chainMs - i * 600_000;
        insert.run(hash(20_000 + i), 'dispute', '7', at, at, '100');
        allIncluded += 7n;
      }
      for (let i = 0; i < 2; i++)
        insert.run(hash(30_000 + i), 'dispute', '11', chainMs, chainMs + 1_000, '100');
      for (let i = 0; i < 100; i++) {
        insert.run(hash(40_000 + i), 'dispute', '13', chainMs - 1_000 + i, null, '1000000');
        pending += 13n;
      }
    })();
    old.close();
    const { gw, inside } = gatewayOver(node, dbPath);
    try {
      await startQuiet(gw, inside);
      gw.store.feeRowsRead = 0;
      for (const k of Object.keys(calls)) delete calls[k];
      assert.equal(await inside.spendAllowed(0n, 1n), true);
      // Before: all 10,107 rows read, and the node asked about each of the 100 pending fees.
      assert.ok(
        gw.store.feeRowsRead <= 100 + 5 + 2 + 32,
        `${gw.store.feeRowsRead} fee rows read by one spend check`,
      );
      assert.ok(
        (calls.unc_getTransactionStatus ?? 0) <= 32,
        `${calls.unc_getTransactionStatus} transaction statuses asked by one spend check`,
      );
      // The status's totals are every fee's, from the total kept (summed once from the old rows).
      gw.store.feeRowsRead = 0;
      const st = gw.status();
      assert.ok(
        gw.store.feeRowsRead <= 100 + 5 + 2 + 2,
        `${gw.store.feeRowsRead} fee rows read by the status`,
      );
      // (The status's chain time is never behind this machine's clock, far past the fake chain's
      // block times: every included fee is in it.)
      assert.equal(BigInt(st.fees), allIncluded + 22n + pending);
      assert.equal(BigInt(st.pendingFees), pending);
      // Nothing the renter audits is gone.
      assert.equal(gw.store.fees().length, 10_107);
    } finally {
      await gw.stop();
      await new Promise<void>((r) => node.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // Before, every check asked about the 32 oldest: 32 that stay pending (not yet past their expiry
  // height, or a status the node cannot give) kept every later fee from ever being placed.
  test('the checks take turns round the pending fees: none is left unasked behind 32 that stay pending', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-fee-turns-'));
    const chainMs = 1_000 * HOUR;
    const statusAsked: string[] = [];
    const node = mempoolOnlyNode([], { txStatus: 'pending', timeMs: chainMs, statusAsked });
    await new Promise<void>((r) => node.listen(0, '127.0.0.1', r));
    const dbPath = join(dir, 'g.db');
    const { GatewayStore } = await import('../src/store.js');
    const seed = new GatewayStore(dbPath);
    const hash = (i: number) => i.toString(16).padStart(64, '0');
    for (let i = 0; i < 40; i++)
      seed.addFee({
        txHash: hash(i),
        kind: 'dispute',
        fee: '13',
        atMs: chainMs - 1_000 + i,
        expiresAt: '1000000',
      });
    seed.close();
    const { gw, inside } = gatewayOver(node, dbPath);
    try {
      await startQuiet(gw, inside);
      statusAsked.length = 0;
      await inside.spendAllowed(0n, 0n);
      assert.equal(statusAsked.length, 32);
      await inside.spendAllowed(0n, 0n);
      assert.equal(statusAsked.length, 64);
      const unasked = Array.from({ length: 40 }, (_, i) => hash(i)).filter((h) => !statusAsked.includes(h));
      assert.deepEqual(unasked, [], 'every pending fee asked about within two checks');
    } finally {
      await gw.stop();
      await new Promise<void>((r) => node.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the kept total follows inclusions and removals', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-fee-total-'));
    const { GatewayStore } = await import('../src/store.js');
    const store = new GatewayStore(join(dir, 'g.db'));
    try {
      const big = 2n ** 70n;
      store.addFee({ txHash: 'a', kind: 'x', fee: big.toString(), atMs: 1, expiresAt: '9' });
      store.addFee({ txHash: 'b', kind: 'x', fee: '5', atMs: 2, expiresAt: '9' });
      assert.equal(store.includedFeeTotal(), 0n, 'pending fees are not in it');
      store.feeIncluded('a', 10, 10);
      store.feeIncluded('a', 20, 20);
      store.feeIncluded('b', 30, 30);
      assert.equal(store.includedFeeTotal(), big + 5n, 'placed twice, counted once');
      store.removeFee('b');
      store.removeFee('nope');
      assert.equal(store.includedFeeTotal(), big);
    } finally {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a total gone stale (rows written by an older build, or by hand) is summed again at the next open', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-fee-total-'));
    const { GatewayStore } = await import('../src/store.js');
    const path = join(dir, 'g.db');
    try {
      const first = new GatewayStore(path);
      first.addFee({ txHash: 'a', kind: 'x', fee: '7', atMs: 1, expiresAt: '9' });
      first.feeIncluded('a', 10, 10);
      first.close();
      // An older build knows nothing of fee_totals: it adds and places a fee in the rows alone.
      const raw = new Database(path);
      raw
        .prepare(
          "INSERT INTO fees (tx_hash, kind, fee, at_ms, expires_at, included_ms) VALUES ('b', 'x', '5', 2, '9', 20)",
        )
        .run();
      raw.close();
      const again = new GatewayStore(path);
      try {
        assert.equal(again.includedFeeTotal(), 12n);
      } finally {
        again.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// The block time of an included fee is the node's word. Before, a node that reported it two hours
// in the past put the fee in no window the spend check looked at: the gateway spent it again.
describe('a node that reports an included fee’s block time in the past', () => {
  test('the fee still counts for the hour after the gateway sent it, and the budget holds', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-fee-lie-'));
    let clock = Date.now();
    const chainMs = clock;
    const node = mempoolOnlyNode([], {
      txStatus: 'included',
      timeMs: chainMs,
      includedAtMs: chainMs - 2 * HOUR,
      // Past the transaction's expiry height (100): it can be charged no later than now.
      height: 101,
    });
    await new Promise<void>((r) => node.listen(0, '127.0.0.1', r));
    const dbPath = join(dir, 'g.db');
    const { GatewayStore } = await import('../src/store.js');
    const seed = new GatewayStore(dbPath);
    // Sent a second ago by the gateway's clock (written before it went to the node, as addFee is).
    seed.addFee({
      txHash: 'ab'.repeat(32),
      kind: 'openLease',
      fee: `${40n * UNC}`,
      atMs: clock - 1_000,
      expiresAt: '100',
    });
    seed.close();
    const { gw, inside } = gatewayOver(node, dbPath, { budgetPerHour: 100n * UNC, now: () => clock });
    try {
      await startQuiet(gw, inside);
      // 40 + 70 passes the budget of 100, 40 + 50 does not: the fee is counted…
      assert.equal(await inside.spendAllowed(0n, 70n * UNC), false, 'the fee dropped out of the hour');
      // …though the node's answer is taken (the fee is placed where it says).
      assert.equal(gw.store.fees()[0]!.includedMs, chainMs - 2 * HOUR);
      assert.equal(await inside.spendAllowed(0n, 50n * UNC), true, 'the fee counted once');
      assert.equal(BigInt(gw.status().spentLastHour), 40n * UNC);
      // An hour of the gateway's clock after it saw the fee included, only the block time decides.
      clock += HOUR + 1;
      assert.equal(await inside.spendAllowed(0n, 70n * UNC), true);
    } finally {
      await gw.stop();
      await new Promise<void>((r) => node.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// A fee can wait in the mempool up to its expiry height and be charged then: counted for the hour
// after its send only, a fee sent two hours ago and seen included now (its block time reported
// three hours back) lay in no window, though the chain charged it within the last minute.
describe('a fee included long after it was sent, its block time reported in the past', () => {
  test('counts for the hour after the gateway saw it included', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-fee-late-'));
    let clock = Date.now();
    const chainMs = clock;
    const node = mempoolOnlyNode([], {
      txStatus: 'included',
      timeMs: chainMs,
      includedAtMs: chainMs - 3 * HOUR,
      // Past the transaction's expiry height (100): it can be charged no later than now.
      height: 101,
    });
    await new Promise<void>((r) => node.listen(0, '127.0.0.1', r));
    const dbPath = join(dir, 'g.db');
    const { GatewayStore } = await import('../src/store.js');
    const seed = new GatewayStore(dbPath);
    seed.addFee({
      txHash: 'cd'.repeat(32),
      kind: 'openLease',
      fee: `${40n * UNC}`,
      atMs: clock - 2 * HOUR,
      expiresAt: '100',
    });
    seed.close();
    const { gw, inside } = gatewayOver(node, dbPath, { budgetPerHour: 100n * UNC, now: () => clock });
    try {
      await startQuiet(gw, inside);
      assert.equal(await inside.spendAllowed(0n, 70n * UNC), false, 'the late fee fell out of the hour');
      assert.equal(gw.store.fees()[0]!.includedMs, chainMs - 3 * HOUR);
      assert.equal(BigInt(gw.status().spentLastHour), 40n * UNC);
      clock += HOUR - 1_000;
      assert.equal(await inside.spendAllowed(0n, 70n * UNC), false, 'the late fee fell out within the hour');
      clock += 2_000;
      assert.equal(await inside.spendAllowed(0n, 70n * UNC), true);
    } finally {
      await gw.stop();
      await new Promise<void>((r) => node.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a database from before the seen time keeps included rows at the block time reported, within send and now', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-fee-seen-'));
    try {
      const dbPath = join(dir, 'old.db');
      const old = new Database(dbPath);
      old.exec(FEES_TABLE_BEFORE_SEEN_MS);
      const now = Date.now();
      const put = old.prepare('INSERT INTO fees VALUES (?, ?, ?, ?, ?, ?)');
      put.run('a', 'x', '1', 1_000, 5_000, '9'); // honest: seen about at its block time
      put.run('b', 'x', '1', 1_000, 10, '9'); // block time before its send
      put.run('c', 'x', '1', 1_000, now + 10 * HOUR, '9'); // a far-future block time
      put.run('d', 'x', '1', 1_000, null, '9'); // pending
      old.close();
      const { GatewayStore } = await import('../src/store.js');
      // The gateway's clock, not the host's, bounds the upgrade (a far-future block time is held
      // to it): an hour behind the host here, as a test's or a replay's clock may be.
      const gatewayNow = now - HOUR;
      const store = new GatewayStore(dbPath, { nowMs: () => gatewayNow });
      const seen = new Map(store.fees().map((f) => [f.txHash, f.seenMs]));
      store.close();
      assert.equal(seen.get('a'), 5_000);
      assert.equal(seen.get('b'), 1_000);
      assert.equal(seen.get('c'), gatewayNow);
      assert.equal(seen.get('d'), null);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// The spend check counts a fee whose block time lies after the chain's latest in every window
// (policy hourPeak); the status's spentLastHour stopped at the chain's time and showed none of it.
describe('a node that reports an included fee’s block time hours ahead', () => {
  test('spentLastHour counts it as the spend check does', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-fee-ahead-'));
    let clock = Date.now();
    const node = mempoolOnlyNode([], {
      txStatus: 'included',
      timeMs: clock,
      includedAtMs: clock + 10 * HOUR,
    });
    await new Promise<void>((r) => node.listen(0, '127.0.0.1', r));
    const dbPath = join(dir, 'g.db');
    const { GatewayStore } = await import('../src/store.js');
    const seed = new GatewayStore(dbPath);
    seed.addFee({
      txHash: 'ef'.repeat(32),
      kind: 'openLease',
      fee: `${40n * UNC}`,
      atMs: clock,
      expiresAt: '100',
    });
    seed.close();
    const { gw, inside } = gatewayOver(node, dbPath, { budgetPerHour: 100n * UNC, now: () => clock });
    try {
      await startQuiet(gw, inside);
      await inside.spendAllowed(0n, 0n);
      // Seen included more than an hour ago by the gateway's clock: only the block time decides.
      clock += HOUR + 1_000;
      assert.equal(await inside.spendAllowed(0n, 70n * UNC), false, 'the check counts it');
      assert.equal(BigInt(gw.status().spentLastHour), 40n * UNC);
      // The key paid it: the all-time figures show it, wherever the node placed its block. Before,
      // they stopped at the chain's latest block time and left it out.
      assert.equal(BigInt(gw.status().spent), 40n * UNC);
      assert.equal(BigInt(gw.status().fees), 40n * UNC);
    } finally {
      await gw.stop();
      await new Promise<void>((r) => node.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// A node can report a transaction included (at an old block time) while it holds it, and relay it
// later, until its expiry height: the chain then charges the fee in a later hour. Counted only for
// the hour after the gateway saw it "included", it was in no window by then, and the budget let
// the key spend it again.
describe('a node that reports a fee included while it holds the transaction', () => {
  test('the fee counts in every hour until an hour after the chain passed its expiry height', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-fee-held-'));
    let clock = Date.now();
    const state = { txStatus: 'included', timeMs: clock, height: 5, includedAtMs: clock - 3 * HOUR };
    const node = mempoolOnlyNode([], state);
    await new Promise<void>((r) => node.listen(0, '127.0.0.1', r));
    const dbPath = join(dir, 'g.db');
    const { GatewayStore } = await import('../src/store.js');
    const seed = new GatewayStore(dbPath);
    seed.addFee({
      txHash: 'ab'.repeat(32),
      kind: 'openLease',
      fee: `${40n * UNC}`,
      atMs: clock,
      expiresAt: '100',
    });
    seed.close();
    const { gw, inside } = gatewayOver(node, dbPath, { budgetPerHour: 100n * UNC, now: () => clock });
    const tick = (ms: number) => {
      clock += ms;
      state.timeMs = clock;
    };
    try {
      await startQuiet(gw, inside);
      await inside.spendAllowed(0n, 0n);
      assert.equal(gw.store.fees()[0]!.includedMs, clock - 3 * HOUR, 'placed where the node says');
      // Two hours on, the chain still below the expiry height: the transaction may yet be charged.
      // Before: seen included over an hour ago, at a block time hours back, it counted nowhere.
      tick(2 * HOUR);
      assert.equal(await inside.spendAllowed(0n, 70n * UNC), false, 'the held fee still counts');
      assert.equal(BigInt(gw.status().spentLastHour), 40n * UNC);
      // Why the budget is full, for the operator: the node's word "included" does not free it.
      assert.equal(BigInt(gw.status().heldFees), 40n * UNC);
      assert.equal(BigInt(gw.status().pendingFees), 0n);
      // The chain passes the expiry height: the last block that could charge it is behind…
      state.height = 101;
      assert.equal(await inside.spendAllowed(0n, 70n * UNC), false, 'counted for the hour after');
      tick(HOUR - 1_000);
      assert.equal(await inside.spendAllowed(0n, 70n * UNC), false, 'counted within that hour');
      // …and an hour later it has left every window a check looks at.
      tick(2_000);
      assert.equal(await inside.spendAllowed(0n, 70n * UNC), true);
      assert.equal(BigInt(gw.status().spentLastHour), 0n);
      assert.equal(BigInt(gw.status().heldFees), 0n);
      assert.equal(BigInt(gw.status().spent), 40n * UNC, 'still in the all-time figure');
    } finally {
      await gw.stop();
      await new Promise<void>((r) => node.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('an upgrade cut short changes nothing: the next start fills the new columns', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-fee-upgrade-cut-'));
    try {
      const dbPath = join(dir, 'old.db');
      const old = new Database(dbPath);
      old.exec(FEES_TABLE_BEFORE_SEEN_MS);
      old.prepare('INSERT INTO fees VALUES (?, ?, ?, ?, ?, ?)').run('a', 'x', '1', 1_000, 5_000, '9');
      // The upgrade's first fill of the rows fails (as a crash or a full disk would cut it short).
      old.exec("CREATE TRIGGER cut BEFORE UPDATE ON fees BEGIN SELECT RAISE(ABORT, 'cut short'); END");
      old.close();
      const { GatewayStore } = await import('../src/store.js');
      assert.throws(() => new GatewayStore(dbPath, { nowMs: () => 10_000 + HOUR }), /cut short/);
      const fix = new Database(dbPath);
      fix.exec('DROP TRIGGER cut');
      fix.close();
      const store = new GatewayStore(dbPath, { nowMs: () => 10_000 + HOUR });
      const [row] = store.fees();
      store.close();
      // Before: the columns were added outside a transaction, left empty by the failed fill and
      // never filled again (the next start saw them): seen_ms null took the row out of the seen
      // bound, expiry_seen_ms null held it in every window.
      assert.equal(row!.seenMs, 5_000);
      assert.equal(row!.expirySeenMs, 5_000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a database from before the expiry was watched: rows seen over an hour ago keep their bound', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-fee-expiry-upgrade-'));
    try {
      const dbPath = join(dir, 'old.db');
      const old = new Database(dbPath);
      old.exec(
        'CREATE TABLE fees (tx_hash TEXT PRIMARY KEY, kind TEXT NOT NULL, fee TEXT NOT NULL, at_ms INTEGER NOT NULL, included_ms INTEGER, expires_at TEXT, seen_ms INTEGER)',
      );
      const put = old.prepare('INSERT INTO fees VALUES (?, ?, ?, ?, ?, ?, ?)');
      const upgradeMs = 10_000 + HOUR;
      put.run('a', 'x', '1', 1_000, 5_000, '9', 6_000);
      put.run('b', 'x', '1', 1_000, null, '9', null);
      // Seen included within the hour before the upgrade: its node may still hold it.
      put.run('c', 'x', '1', 1_000, 5_000, '9', upgradeMs - 60_000);
      old.close();
      const { GatewayStore } = await import('../src/store.js');
      const store = new GatewayStore(dbPath, { nowMs: () => upgradeMs });
      const rows = new Map(store.fees().map((f) => [f.txHash, f.expirySeenMs]));
      // Watched from now on: the pending one is marked once included and the chain is past it.
      store.feeIncluded('b', 7_000, upgradeMs + 1_000);
      store.feesExpired(9, upgradeMs + 2_000);
      const before = store.fees().find((f) => f.txHash === 'b')!.expirySeenMs;
      store.feesExpired(10, upgradeMs + 3_000);
      const after = new Map(store.fees().map((f) => [f.txHash, f.expirySeenMs]));
      store.close();
      assert.equal(rows.get('a'), 6_000);
      assert.equal(rows.get('b'), null);
      // Before: marked with its seen time, it left every window an hour after the node said
      // "included", the hold the new column closes escaped for the rows of the upgrade's last hour.
      assert.equal(rows.get('c'), null, 'watched as a new row');
      assert.equal(before, null, 'height 9 is not past an expiry height of 9');
      assert.equal(after.get('b'), upgradeMs + 3_000);
      assert.equal(after.get('c'), upgradeMs + 3_000);
      assert.equal(after.get('a'), 6_000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the spend check’s read of the fee rows', () => {
  test('every row the check counts is read once: pending, in the hour, or still chargeable', async () => {
    const { GatewayStore } = await import('../src/store.js');
    const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-fee-read-'));
    const T = 10 * HOUR;
    const time = fc.integer({ min: T - 4 * HOUR, max: T + HOUR });
    // As the gateway writes them: seen_ms with every inclusion, expiry_seen_ms only after it.
    const row = fc
      .record({
        atMs: time,
        included: fc.option(fc.record({ at: time, seen: time, expirySeen: fc.option(time, { nil: null }) }), {
          nil: null,
        }),
        expiresAt: fc.option(fc.constant('100'), { nil: null }),
      })
      .map((r) => ({
        atMs: r.atMs,
        includedMs: r.included?.at ?? null,
        seenMs: r.included?.seen ?? null,
        expirySeenMs: r.included?.expirySeen ?? null,
        expiresAt: r.expiresAt,
      }));
    // One database, emptied for each case (a database per case cost a file's syncs each).
    const store = new GatewayStore(join(dir, 'p.db'), { nowMs: () => T });
    const db = (store as unknown as { db: Database.Database }).db;
    const put = db.prepare(
      'INSERT INTO fees (tx_hash, kind, fee, at_ms, included_ms, seen_ms, expiry_seen_ms, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    );
    const fill = db.transaction(
      (
        rows: {
          atMs: number;
          includedMs: number | null;
          seenMs: number | null;
          expirySeenMs: number | null;
          expiresAt: string | null;
        }[],
      ) => {
        db.exec('DELETE FROM fees');
        rows.forEach((r, i) =>
          put.run(`t${i}`, 'x', '1', r.atMs, r.includedMs, r.seenMs, r.expirySeenMs, r.expiresAt),
        );
      },
    );
    try {
      fc.assert(
        fc.property(fc.array(row, { maxLength: 12 }), time, time, (rows, fromMs, seenFromMs) => {
          fill(rows);
          const read = store.feesSince(fromMs, seenFromMs).map((f) => f.txHash);
          assert.equal(new Set(read).size, read.length, 'no row read twice');
          const needed = store
            .fees()
            .filter(
              (f) => f.includedMs === null || f.includedMs >= fromMs || feeMayStillBeCharged(f, seenFromMs),
            )
            .map((f) => f.txHash);
          for (const h of needed) assert.equal(read.includes(h), true, `${h} not read`);
        }),
        { numRuns: 300 },
      );
    } finally {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the spend check’s hour', () => {
  test('fees placed before the hour that ends at the block time change no spend figure', () => {
    const fee = fc.record({
      fee: fc.bigInt({ min: 0n, max: 10n ** 20n }),
      includedAtMs: fc.option(fc.integer({ min: -3 * HOUR, max: HOUR }), { nil: null }),
    });
    const lease = fc
      .record({
        pricePerHour: fc.bigInt({ min: 0n, max: 10n ** 19n }),
        openedAtMs: fc.integer({ min: -3 * HOUR, max: 0 }),
        length: fc.option(fc.integer({ min: 0, max: 3 * HOUR }), { nil: null }),
      })
      .map(
        (l): BudgetLease => ({
          pricePerHour: l.pricePerHour,
          openedAtMs: l.openedAtMs,
          endedAtMs: l.length === null ? null : l.openedAtMs + l.length,
        }),
      );
    fc.assert(
      fc.property(
        fc.array(lease, { maxLength: 6 }),
        fc.array(fee, { maxLength: 20 }),
        fc.bigInt({ min: 0n, max: 10n ** 19n }),
        fc.bigInt({ min: 0n, max: 10n ** 19n }),
        fc.integer({ min: -HOUR, max: HOUR }),
        (leases, fees, rate, future, nowMs) => {
          const read: FeePaid[] = fees.filter(
            (f) => f.includedAtMs === null || f.includedAtMs >= nowMs - HOUR,
          );
          assert.equal(
            hourPeak(leases, read, rate, future, nowMs),
            hourPeak(leases, fees, rate, future, nowMs),
          );
        },
      ),
      { numRuns: 500 },
    );
  });
});
