/**
 * The node's indexes (docs/rpc.md, "Indexes") on a real LevelDB: 5,000 chips registered through
 * transactions, paged by cursor and summed over all of them (unc_getChips stops at 1,000); an
 * account's transactions, received ones included; all of it after a restart, and rebuilt for a data
 * dir written before the indexes existed.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  type Action,
  addressFromPublicKey,
  DEV_SOFT_VENDOR,
  ed25519PublicKey,
  ed25519Sign,
  encodeAddress,
  fromHex,
  registrationMessage,
  sha256,
} from '@unc/core';
import {
  type AccountTransactionsPage,
  buildTransaction,
  type ChipJson,
  type ChipsPage,
  encodeSigned,
  LimitExceededError,
  type NetworkHistoryPage,
  type NetworkStatsJson,
  signedHash,
  UncClient,
} from '@unc/sdk';
import { ClassicLevel } from 'classic-level';
import { devGenesisJson, devKey, devValidator } from '../src/dev.js';
import { silentLogger } from '../src/log.js';
import { UncNode } from '../src/node.js';
import { Bucket, INDEX_VERSION } from '../src/storage/db.js';

const CHIPS = 5000;
const OWNERS = [1, 2, 3, 4, 5].map((i) => devKey(i));
const genesis = devGenesisJson({ blockTimeMs: 250, epochBlocks: 24 });
const dir = mkdtempSync(join(tmpdir(), 'unc-indexes-'));
const nodes: UncNode[] = [];
after(async () => {
  for (const n of nodes) await n.stop().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
});

async function start(validator: boolean): Promise<{ node: UncNode; client: UncClient }> {
  const node = await UncNode.start({
    dataDir: dir,
    genesis,
    ...(validator ? { validatorSeed: devValidator().seed } : {}),
    rpcPort: 0,
    // This test reads every page of 5,000 chips and of each history, several times, as fast as it
    // can: far past a client's rate (each page is priced by what it reads, rpc-costs.ts). The rate
    // limit has its own tests (rpc/server.test.ts); here the reader is exempt, as `unc dev`'s are.
    rpc: { unlimitedAddresses: ['127.0.0.1', '::1'] },
    logger: silentLogger,
  });
  nodes.push(node);
  return { node, client: new UncClient(node.rpcUrl) };
}

async function stop(node: UncNode): Promise<void> {
  await node.stop();
  nodes.splice(nodes.indexOf(node), 1);
}

/** Every page of an account's transactions, following nextCursor. */
async function allAccountTxs(client: UncClient, address: string, extra: Record<string, unknown> = {}) {
  const out: AccountTransactionsPage['transactions'] = [];
  let cursor: string | null = null;
  for (let pages = 0; pages < 100; pages++) {
    const page: AccountTransactionsPage = await paced(() =>
      client.call('unc_getAccountTransactions', {
        address,
        limit: 7,
        ...extra,
        ...(cursor ? { cursor } : {}),
      }),
    );
    out.push(...page.transactions);
    cursor = page.nextCursor;
    if (!cursor) return out;
  }
  throw new Error('more than 100 pages');
}

/**
 * A page, waiting as the node asks when the per-IP rate limit is reached: 25 pages of 200 chips are
 * 2,500 work units, five seconds of the default rate, so a fast run meets the limit by design.
 */
async function paced<T>(read: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      return await read();
    } catch (err) {
      if (!(err instanceof LimitExceededError)) throw err;
      await new Promise((r) => setTimeout(r, err.retryAfterMs ?? 200));
    }
  }
}

async function allChips(client: UncClient): Promise<{ chips: ChipJson[]; pages: number; total: number }> {
  const chips: ChipJson[] = [];
  let cursor: string | null = null;
  let pages = 0;
  let total = 0;
  do {
    const page: ChipsPage = await paced(() =>
      client.call('unc_listChips', { limit: 200, ...(cursor ? { cursor } : {}) }),
    );
    chips.push(...page.chips);
    total = page.total;
    cursor = page.nextCursor;
    pages++;
  } while (cursor);
  return { chips, pages, total };
}

/** Heads must not move while a comparison reads: a node without a validator key produces nothing. */
async function frozenChecks(client: UncClient, recipient: string, before: Map<string, string[]>) {
  const stats = await client.call<NetworkStatsJson>('unc_getNetworkStats');
  assert.equal(stats.chips, CHIPS);
  assert.equal(stats.activeChips, CHIPS);
  // The old list stops at 1,000: a sum over it is what the explorer's charts used to show.
  assert.equal((await client.call<ChipJson[]>('unc_getChips')).length, 1000);
  const { chips, pages, total } = await allChips(client);
  assert.equal(total, CHIPS);
  assert.equal(pages, CHIPS / 200);
  assert.equal(new Set(chips.map((c) => c.chipId)).size, CHIPS, 'no chip twice across pages');
  assert.deepEqual(
    chips.map((c) => c.chipId),
    chips.map((c) => c.chipId).sort(),
    'pages are in chip id order',
  );
  // Proven online: a registration that never answered is "online" to the miss rule alone.
  const online = chips.filter((c) => c.status === 'active' && c.online && c.lastAnsweredAt > 0);
  assert.equal(stats.onlineChips, online.length);
  assert.equal(stats.onlinePower, online.reduce((s, c) => s + BigInt(c.power), 0n).toString());
  assert.equal(stats.activePower, chips.reduce((s, c) => s + BigInt(c.power), 0n).toString());
  assert.ok(BigInt(stats.activePower) > 1000n * 989_000n, 'more power than 1,000 chips can have');
  for (const [address, hashes] of before) {
    assert.deepEqual(
      (await allAccountTxs(client, address)).map((t) => t.hash),
      hashes,
      `history of ${address}`,
    );
  }
  const received = await allAccountTxs(client, recipient);
  assert.equal(received.length, 1);
  assert.equal(received[0]!.tx.actions[0]!.type, 'transfer');
}

test('5,000 chips: paged by cursor, summed over all; account histories; kept across a restart and rebuilt for an older data dir', async () => {
  const a = await start(true);
  const { client } = a;
  const status = await client.status();
  const sent: string[] = [];
  const perOwner = CHIPS / OWNERS.length;
  for (const [o, owner] of OWNERS.entries()) {
    // Each owner's batch anchors at the head it is signed at: an anchor read once for all of them
    // fell out of the last 100 blocks on a loaded CI machine while the batches were signed.
    const anchor = await client.getHeader('latest');
    const message = registrationMessage(status.chainId, owner.address, fromHex(anchor.hash, 32));
    const nonce = BigInt((await client.getAccount(encodeAddress(owner.address))).nonce);
    const txs: string[] = [];
    for (let t = 0; t * 64 < perOwner; t++) {
      const actions: Action[] = [];
      for (let i = t * 64; i < Math.min(perOwner, (t + 1) * 64); i++) {
        const seed = sha256(new TextEncoder().encode(`indexes-test-chip-${o}-${i}`));
        actions.push({
          type: 'registerChip',
          anchorHeight: BigInt(anchor.height),
          evidence: {
            type: 'dev-soft',
            vendorId: DEV_SOFT_VENDOR,
            publicKey: ed25519PublicKey(seed),
            modelId: i % 2 === 0 ? 'sim-h100' : 'sim-a100',
            signature: ed25519Sign(seed, message),
          },
        });
      }
      const stx = await buildTransaction(client, owner.seed, actions, { nonce: nonce + BigInt(t) });
      txs.push(encodeSigned(stx));
      sent.push(signedHash(stx));
    }
    // The RPC prices each registration at a unit at least (its check costs the same whatever its
    // size), so 1,000 registrations go in calls under the per-request work limit.
    for (let c = 0; c < txs.length; c += 4) {
      const results = await client.call<{ hash?: string; error?: unknown }[]>('unc_sendTransactions', [
        txs.slice(c, c + 4),
      ]);
      assert.ok(
        results.every((r) => r.hash),
        JSON.stringify(results.find((r) => !r.hash)),
      );
    }
  }
  // A transfer to an account that never sends: its history holds what it received.
  const recipient = encodeAddress(
    addressFromPublicKey(ed25519PublicKey(sha256(new TextEncoder().encode('r')))),
  );
  const sender = OWNERS[0]!;
  const transfer = await buildTransaction(
    client,
    sender.seed,
    [
      {
        type: 'transfer',
        to: addressFromPublicKey(ed25519PublicKey(sha256(new TextEncoder().encode('r')))),
        amount: 5n,
        memo: new Uint8Array(0),
      },
    ],
    { nonce: BigInt(Math.ceil(perOwner / 64)) },
  );
  await client.sendRawTransaction(encodeSigned(transfer));
  for (const hash of [...sent, signedHash(transfer)]) {
    assert.equal((await client.waitForTransaction(hash, 60_000)).status, 'included');
  }
  // An epoch that starts after the registrations records the figures of all 5,000.
  const registeredAt = (await client.status()).height;
  let history: NetworkHistoryPage = { epochs: [], nextCursor: null };
  for (let waited = 0; !(history.epochs[0]?.height > registeredAt && history.nextCursor); waited += 200) {
    assert.ok(waited < 30_000, 'an epoch starts within 30 s');
    await new Promise((r) => setTimeout(r, 200));
    // One per page: epoch 0 (recorded at height 1) is always older than this one, so there is a
    // next page however few epochs the registrations took (two epochs left none past a page of 2).
    history = await client.call<NetworkHistoryPage>('unc_getNetworkHistory', { limit: 1 });
  }
  const recorded = history.epochs[0]!;
  // Recorded at the epoch's first block.
  assert.equal((recorded.height - 1) % 24, 0);
  assert.equal(recorded.chips, CHIPS);
  assert.equal(recorded.activeChips, CHIPS);
  assert.ok(history.nextCursor, 'older epochs on the next page');
  const older = await a.client.call<NetworkHistoryPage>('unc_getNetworkHistory', {
    cursor: history.nextCursor,
  });
  assert.ok(older.epochs.length > 0 && older.epochs.every((e) => e.epoch < recorded.epoch));
  assert.equal(older.epochs.at(-1)!.epoch, 0, 'the oldest page ends at epoch 0');

  const histories = new Map<string, string[]>();
  for (const owner of OWNERS) {
    const address = encodeAddress(owner.address);
    const txs = await allAccountTxs(a.client, address);
    assert.equal(txs.length, Math.ceil(perOwner / 64) + (owner === sender ? 1 : 0));
    const keys = txs.map((t) => t.height * 1e6 + t.index);
    assert.deepEqual(
      keys,
      [...keys].sort((x, y) => y - x),
      'newest first',
    );
    histories.set(
      address,
      txs.map((t) => t.hash),
    );
  }
  // Heartbeat-free view: these accounts sent none, so it is the same list.
  const sansHeartbeats = await allAccountTxs(a.client, encodeAddress(sender.address), { heartbeats: false });
  assert.deepEqual(
    sansHeartbeats.map((t) => t.hash),
    histories.get(encodeAddress(sender.address)),
  );
  await assert.rejects(
    a.client.call('unc_getAccountTransactions', { address: recipient, limit: 0 }),
    /limit/,
  );
  await assert.rejects(
    a.client.call('unc_getAccountTransactions', { address: recipient, cursor: 'x' }),
    /cursor/,
  );
  await assert.rejects(a.client.call('unc_listChips', { cursor: 'ZZ' }), /cursor/);
  // Names and positions the methods do not take are refused, as the schema-bound methods refuse
  // them, not ignored (a misspelt limit silently gave the default page).
  await assert.rejects(
    a.client.call('unc_getAccountTransactions', { address: recipient, limt: 5 }),
    /unknown parameter "limt"/,
  );
  await assert.rejects(
    a.client.call('unc_listChips', JSON.parse('{"__proto__": {"limit": 5}}')),
    /unknown parameter "__proto__"/,
  );
  await assert.rejects(a.client.call('unc_getNetworkHistory', [null, 5, 'extra']), /at most 2/);
  await assert.rejects(a.client.call('unc_getLeaseEvents', [{ leaseId: '00'.repeat(32), x: 1 }]), /"x"/);
  await stop(a.node);

  // Restarted without a validator key, the head stays put while the pages are read.
  const b = await start(false);
  await frozenChecks(b.client, recipient, histories);
  const historyAfter = await b.client.call<NetworkHistoryPage>('unc_getNetworkHistory', { limit: 2 });
  assert.deepEqual(historyAfter.epochs[0], recorded);
  await stop(b.node);

  // A data dir from before the indexes: no account entries and no version. Opening it rebuilds them.
  const raw = new ClassicLevel<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
  await raw.open();
  await raw.clear({ gte: new Uint8Array([Bucket.accountTxs]), lt: new Uint8Array([Bucket.accountTxs + 1]) });
  await raw.del(new Uint8Array([Bucket.meta, ...new TextEncoder().encode('indexVersion')]));
  await raw.close();
  const c = await start(false);
  assert.equal(await c.node.chain.db.getIndexVersion(), INDEX_VERSION);
  await frozenChecks(c.client, recipient, histories);
  await stop(c.node);
});
