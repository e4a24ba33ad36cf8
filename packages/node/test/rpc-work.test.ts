/**
 * The work an RPC request does, counted (state reads, log rows read), against what it is priced at:
 * unc_getOffer/unc_getOffers read a chip's events of the uptime window only, and once; the owner
 * forms of unc_getRewards and unc_getChips read the owner's chips, not every chip on chain.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  type Action,
  type BlockContext,
  BlockExecutor,
  challengeLookup,
  chipCodec,
  DEV_SOFT_VENDOR,
  decode,
  devSoftChipId,
  ed25519Sign,
  encode,
  encodeAddress,
  envelopeFromSigned,
  genesisStateWrites,
  getChip,
  getPociParams,
  leasesByProvider,
  listInsert,
  listItems,
  MemoryState,
  minimumFee,
  offersByProvider,
  openOffers,
  registrationMessage,
  StateOverlay,
  type StateReader,
  StateSpace,
  sha256,
  signedTransactionCodec,
  signTransaction,
  type TxEnvelope,
  toHex,
  txEventCodec,
  unansweredSlots,
  utf8,
} from '@unc/core';
import { createOfferAction, type OfferJson, type UptimeJson } from '@unc/sdk';
import { createApi } from '../src/api.js';
import { LiveState } from '../src/chain.js';
import { DEV_MODELS, devGenesis, devKey, devValidator } from '../src/dev.js';
import { silentLogger } from '../src/log.js';
import { rpcCosts } from '../src/rpc-costs.js';
import { ChainDb } from '../src/storage/db.js';
import { namedKey } from './fixtures.js';

const genesis = devGenesis({ time: new Date('2026-01-01T00:00:00Z'), epochBlocks: 10 });
const params = genesis.params;
const owner = devKey(9);
const OFFER_CHIPS = 32;
/** Chips of another owner: what a scan of every chip would read. */
const OTHER_CHIPS = 400;

function tx(from: { seed: Uint8Array; publicKey: Uint8Array }, nonce: bigint, actions: Action[]): TxEnvelope {
  const base = { chainId: genesis.chainId, signer: from.publicKey, nonce, expiresAt: 500n, actions, fee: 0n };
  const size = encode(signedTransactionCodec, { tx: base, signature: new Uint8Array(64) }).length;
  return envelopeFromSigned(
    signTransaction({ ...base, fee: minimumFee(params, size, actions.length) }, from.seed),
  );
}

/** A chain of a few blocks: `owner` registers 32 dev-soft chips and offers them all. */
function marketState(): { state: MemoryState; chipIds: Uint8Array[]; offerId: Uint8Array } {
  const state = new MemoryState();
  state.apply(genesisStateWrites(genesis));
  let height = 0n;
  let time = genesis.genesisTime;
  const hashOf = (h: bigint) => sha256(utf8(`block ${h}`));
  const block = (txs: TxEnvelope[]) => {
    const ctx: BlockContext = {
      chainId: genesis.chainId,
      height: height + 1n,
      time: time + 1000n,
      proposer: devValidator().publicKey,
      prevHash: hashOf(height),
      prevBeacon: sha256(utf8(`beacon ${height}`)),
      beacon: sha256(utf8(`beacon ${height + 1n}`)),
    };
    const ex = new BlockExecutor(state, ctx);
    for (const t of txs) ex.apply(t);
    state.apply(ex.finish().overlay.changes());
    height = ctx.height;
    time = ctx.time;
  };
  block([]);
  const chips = Array.from({ length: OFFER_CHIPS }, (_, i) => namedKey(`rpc-work chip ${i}`));
  const message = registrationMessage(genesis.chainId, owner.address, hashOf(height));
  block([
    tx(
      owner,
      0n,
      chips.map((c) => ({
        type: 'registerChip',
        anchorHeight: height,
        evidence: {
          type: 'dev-soft',
          vendorId: DEV_SOFT_VENDOR,
          publicKey: c.publicKey,
          modelId: DEV_MODELS[0]!.modelId,
          signature: ed25519Sign(c.seed, message),
        },
      })),
    ),
  ]);
  const chipIds = chips.map((c) => devSoftChipId(c.publicKey));
  block([
    tx(owner, 1n, [
      createOfferAction({
        chipIds: chipIds.map(toHex),
        pricePerHour: 10n ** 18n,
        minHours: 1,
        maxHours: 24,
        noticeMs: 0n,
        endpoint: 'http://127.0.0.1:9/jobs',
      }),
    ]),
  ]);
  return { state, chipIds, offerId: listItems(state, openOffers, 1)[0]! };
}

/** A StateReader that counts its reads, and the full listings asked of it. */
function counting(live: LiveState) {
  const counts = { gets: 0, keysIn: 0 };
  const state = {
    get(key: Uint8Array) {
      counts.gets++;
      return live.get(key);
    },
    keysIn(space: number) {
      counts.keysIn++;
      return live.keysIn(space);
    },
    get trie() {
      return live.trie;
    },
  };
  return { state: state as unknown as LiveState, counts };
}

const BLOCK_MS = 1000n;
/** Events every EVENT_STEP heights, up to the head: 200 per chip, the last 87 inside the 24 h. */
const EVENT_STEP = 1000n;
const HEAD = 200_000n;

/** The RPC over `chain` alone: no mempool, validator, network or watchers behind it. */
function apiOver(chain: unknown) {
  return createApi({
    chain,
    mempool: { size: 0, bytes: 0, has: () => false, dropped: () => null },
    validator: null,
    network: null,
    driver: undefined,
    metrics: { render: () => '' },
    logger: silentLogger,
    submit: () => ({ replaced: false }),
    submitMany: async () => [],
    recentRejection: () => null,
    watchTx: () => () => {},
    watchBlocks: () => () => {},
  } as never);
}

describe('RPC work: offers, rewards and chip lists', () => {
  let dir: string;
  let db: ChainDb;
  let live: LiveState;
  let chipIds: Uint8Array[];
  let offerId: Uint8Array;
  before(async () => {
    const m = marketState();
    chipIds = m.chipIds;
    offerId = m.offerId;
    live = new LiveState();
    for (const w of m.state.map.values()) live.load(w.key, w.value!);
    const proto = getChip(m.state, chipIds[0]!)!;
    const other = namedKey('rpc-work other owner');
    for (let i = 0; i < OTHER_CHIPS; i++) {
      const id = sha256(utf8(`rpc-work clone ${i}`));
      live.load(
        Uint8Array.of(StateSpace.chip, ...id),
        encode(chipCodec, { ...proto, chipId: id, owner: other.address }),
      );
    }
    dir = mkdtempSync(join(tmpdir(), 'unc-rpc-work-'));
    db = await ChainDb.open(join(dir, 'db'));
    for (let h = EVENT_STEP; h <= HEAD; h += EVENT_STEP) await writeAnswers(h);
  });
  after(async () => {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Block `h`: every offered chip answers the slot at `h`. */
  async function writeAnswers(h: bigint): Promise<void> {
    await db.commitBlock({
      height: h,
      hash: sha256(utf8(`rpc-work ${h}`)),
      block: new Uint8Array(0),
      txHashes: [],
      results: new Uint8Array(0),
      stateChanges: [],
      chipEvents: chipIds.map((chipId) => ({
        chipId,
        txIndex: 0,
        eventIndex: 0,
        event: encode(txEventCodec, { type: 'slotAnswered', chipId, epoch: 1n, slot: 0, slotHeight: h }),
      })),
    });
  }

  /** The node as the API sees it, at `head`, block h stamped h seconds; log rows read counted. */
  function node(state: LiveState, head: { height: bigint }) {
    const rows = { read: 0 };
    const chainDb = {
      chipEvents: async (...args: Parameters<ChainDb['chipEvents']>) => {
        const out = await db.chipEvents(...args);
        rows.read += out.length;
        return out;
      },
    };
    const chain = {
      state,
      db: chainDb,
      get height() {
        return head.height;
      },
      get head() {
        return {
          header: {
            time: head.height * BLOCK_MS,
            height: head.height,
            stateRoot: new Uint8Array(32),
            beacon: new Uint8Array(32),
          },
          hash: sha256(utf8(`rpc-work head ${head.height}`)),
        };
      },
      genesis,
      params,
      blockAt: async (h: bigint) => ({ header: { time: h * BLOCK_MS }, txs: [] }),
    };
    const api = apiOver(chain);
    const call = async <T>(name: string, p: unknown): Promise<T> =>
      (await api.methods[name]!(p, { transport: 'http' })) as T;
    return { call, rows };
  }

  /** Answers in the 24 h window ending at `head`: slot heights h with h * 1 s >= head time - 24 h. */
  function answersInWindow(head: bigint): number {
    const since = head - 86_400n;
    let n = 0;
    for (let h = EVENT_STEP; h <= head; h += EVENT_STEP) if (h >= since) n++;
    return n;
  }

  test('an offer reads each chip’s events of the 24 h window, then only those of new blocks', async () => {
    const head = { height: HEAD };
    const { call, rows } = node(live, head);
    const offer = await call<OfferJson>('unc_getOffer', [toHex(offerId)]);
    const window = answersInWindow(HEAD);
    assert.equal(window, 87);
    for (const c of offer.chips) {
      // The answer is unchanged: the answers in the window (none is recorded missed).
      assert.equal((c.uptime as UptimeJson).answered, window);
    }
    // Main read the newest 2,000 events of each chip whatever their height: 200 each here.
    assert.equal(rows.read, OFFER_CHIPS * window);

    // The same head again, and the listing: nothing more is read.
    rows.read = 0;
    await call('unc_getOffer', [toHex(offerId)]);
    const listed = await call<OfferJson[]>('unc_getOffers', []);
    assert.equal(listed[0]?.chips[0]?.uptime.answered, window);
    assert.equal(rows.read, 0);

    // One more block with an answer per chip: one row per chip is read, and the window slides.
    await writeAnswers(HEAD + EVENT_STEP);
    head.height = HEAD + EVENT_STEP;
    const later = await call<OfferJson>('unc_getOffer', [toHex(offerId)]);
    assert.equal(rows.read, OFFER_CHIPS);
    assert.equal(later.chips[0]?.uptime.answered, answersInWindow(HEAD + EVENT_STEP));
  });

  test('concurrent requests for an offer wait for one read of each chip’s window', async () => {
    const { call, rows } = node(live, { height: HEAD });
    const offers = await Promise.all([1, 2, 3].map(() => call<OfferJson>('unc_getOffer', [toHex(offerId)])));
    assert.equal(rows.read, OFFER_CHIPS * answersInWindow(HEAD));
    for (const o of offers) assert.equal(o.chips[31]?.uptime.answered, answersInWindow(HEAD));
  });

  test('ChainDb.chipEvents reads a height range, newest first', async () => {
    const chipId = chipIds[0]!;
    const heights = async (range?: { from?: bigint; to?: bigint }) =>
      (await db.chipEvents(chipId, 1000, range)).map((r) => Number(r.height));
    assert.deepEqual(await heights({ from: 198_500n, to: 199_999n }), [199_000]);
    assert.deepEqual(await heights({ from: 199_000n, to: 200_000n }), [200_000, 199_000]);
    assert.deepEqual(await heights({ from: 200_001n, to: 200_000n }), []);
    assert.equal((await heights()).length, 201);
    assert.equal((await heights({ from: 0n })).length, 201);
    assert.deepEqual(
      (await db.chipEvents(chipId, 2, { from: 1000n })).map((r) => r.height),
      [201_000n, 200_000n],
    );
  });

  test('an owner’s rewards and chips read the owner’s chips, not every chip on chain', async () => {
    const { state, counts } = counting(live);
    const { call } = node(state, { height: HEAD });
    const address = encodeAddress(owner.address);

    counts.gets = 0;
    const rewards = await call<unknown[]>('unc_getRewards', [address]);
    assert.deepEqual(rewards, []);
    assert.equal(counts.keysIn, 0);
    // The owner's index: a head and a member per chip (plus what a constant few lookups cost).
    assert.ok(counts.gets <= OFFER_CHIPS * 2 + 8, `${counts.gets} state reads`);

    // What rendering the owner's chips one by one reads (a chip, its epoch's challenges, …).
    counts.gets = 0;
    for (const id of chipIds) await call('unc_getChip', [toHex(id)]);
    const rendering = counts.gets;
    counts.gets = 0;
    const chips = await call<{ chipId: string }[]>('unc_getChips', [address]);
    assert.deepEqual(
      chips.map((c) => c.chipId),
      chipIds.map(toHex).sort(),
    );
    assert.equal(counts.keysIn, 0);
    // Plus the owner's index: a head and a member per chip.
    assert.ok(
      counts.gets <= rendering + OFFER_CHIPS + 8,
      `${counts.gets} state reads, ${rendering} to render`,
    );
  });

  test('unc_getChips without an owner: the first 1,000 chips by id, from keys sorted once per change', async () => {
    const { state, counts } = counting(live);
    const { call } = node(state, { height: HEAD });
    const chips = await call<{ chipId: string }[]>('unc_getChips', []);
    const all = [
      ...chipIds.map(toHex),
      ...Array.from({ length: OTHER_CHIPS }, (_, i) => toHex(sha256(utf8(`rpc-work clone ${i}`)))),
    ].sort();
    assert.deepEqual(
      chips.map((c) => c.chipId),
      all,
    );
    assert.equal(counts.keysIn, 1);
  });

  test('LiveState.keysIn sorts again only when a key of the namespace comes or goes', () => {
    const s = new LiveState();
    const key = (i: number) => Uint8Array.of(StateSpace.chip, ...sha256(utf8(`keysIn ${i}`)));
    for (let i = 0; i < 5; i++) s.load(key(i), Uint8Array.of(i));
    const first = s.keysIn(StateSpace.chip);
    assert.equal(first.length, 5);
    // The same answer while only values change (a chip answering a challenge rewrites its record).
    s.apply([{ key: key(0), value: Uint8Array.of(9) }], s.trie);
    assert.equal(s.keysIn(StateSpace.chip), first);
    s.apply([{ key: key(5), value: Uint8Array.of(5) }], s.trie);
    const added = s.keysIn(StateSpace.chip);
    assert.notEqual(added, first);
    assert.equal(added.length, 6);
    assert.deepEqual(
      added.map((k) => toHex(k)),
      [...added.map((k) => toHex(k))].sort(),
    );
    s.apply([{ key: key(2), value: null }], s.trie);
    assert.equal(s.keysIn(StateSpace.chip).length, 5);
  });

  test('prices: an offer per chip, a listing per offer, an owner’s chips per 100 of them', () => {
    const costs = rpcCosts(() => live as StateReader);
    assert.equal(costs.unc_getOffer!([toHex(offerId)]), OFFER_CHIPS);
    assert.equal(costs.unc_getOffer!({ id: `0x${toHex(offerId)}` }), OFFER_CHIPS);
    assert.equal(costs.unc_getOffer!([toHex(new Uint8Array(32))]), 1);
    assert.equal(costs.unc_getOffer!(['nonsense']), 1);
    // Fewer than 100 offers: the list price; a provider's list is priced by its own count.
    assert.equal(costs.unc_getOffers!([]), 100);
    assert.equal(costs.unc_getOffers!([encodeAddress(owner.address)]), 100);
    assert.equal(costs.unc_getOffers!(['unc1bad']), 100);
    assert.equal(costs.unc_getChips!([encodeAddress(owner.address)]), 100);
    assert.equal(costs.unc_getChips!([]), 100);
  });
});

describe('offer uptime against the whole-log computation', () => {
  test('the cached window counts what reading the whole log counts, at every head', async () => {
    // Random logs (answers, misses recorded late, other events), heads that move by 0 to 4 blocks,
    // a block's events on disk before it is the head (the commit overlap), concurrent requests.
    const m = marketState();
    const live = new LiveState();
    for (const w of m.state.map.values()) live.load(w.key, w.value!);
    const dir = mkdtempSync(join(tmpdir(), 'unc-rpc-review-'));
    const db = await ChainDb.open(join(dir, 'db'));
    const blockMs = 3_600_000n; // 1 h blocks: a 24-block window
    const head = { height: 5n };
    const chain = {
      state: live,
      db,
      get height() {
        return head.height;
      },
      get head() {
        return {
          header: {
            time: head.height * blockMs,
            height: head.height,
            stateRoot: new Uint8Array(32),
            beacon: new Uint8Array(32),
          },
          hash: sha256(utf8(`review head ${head.height}`)),
        };
      },
      genesis,
      params,
      blockAt: async (h: bigint) => ({ header: { time: h * blockMs }, txs: [] }),
    };
    const api = apiOver(chain);
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const chips = m.chipIds.slice(0, 6);
    let written = 0n;
    const write = async (h: bigint) => {
      const chipEvents: { chipId: Uint8Array; txIndex: number; eventIndex: number; event: Uint8Array }[] = [];
      for (const chipId of chips) {
        const n = rnd(4);
        for (let i = 0; i < n; i++) {
          const k = rnd(3);
          const slotHeight = h - 1n - BigInt(rnd(k === 1 ? 60 : 20));
          const event =
            k === 0
              ? {
                  type: 'slotAnswered' as const,
                  chipId,
                  epoch: 1n,
                  slot: 0,
                  slotHeight: slotHeight < 0n ? 0n : slotHeight,
                }
              : k === 1
                ? {
                    type: 'slotMissed' as const,
                    chipId,
                    epoch: 1n,
                    slot: 0,
                    slotHeight: slotHeight < 0n ? 0n : slotHeight,
                    reason: 'x',
                  }
                : { type: 'chipRebooted' as const, chipId, resetCount: 1, restartCount: 1 };
          chipEvents.push({ chipId, txIndex: i, eventIndex: 0, event: encode(txEventCodec, event) });
        }
      }
      await db.commitBlock({
        height: h,
        hash: sha256(utf8(`review ${h}`)),
        block: new Uint8Array(0),
        txHashes: [],
        results: new Uint8Array(0),
        stateChanges: [],
        chipEvents,
      });
      written = h;
    };
    /** The uptime as computed before the cache (the newest 2,000 events), over the heights up to the head. */
    const old = async (chipId: Uint8Array) => {
      let lo = 0n;
      let hi = head.height;
      const time = head.height * blockMs - 86_400_000n;
      while (lo < hi) {
        const mid = (lo + hi) / 2n;
        if (mid * blockMs >= time) hi = mid;
        else lo = mid + 1n;
      }
      const since = lo;
      const chip = getChip(live, chipId)!;
      let answered = 0;
      let missed = 0;
      for (const row of await db.chipEvents(chipId, 2000, { to: head.height })) {
        const e = decode(txEventCodec, row.event);
        if (e.type === 'slotAnswered' && e.slotHeight >= since) answered++;
        if (e.type === 'slotMissed' && e.slotHeight >= since) missed++;
      }
      const p = getPociParams(live);
      missed += unansweredSlots(
        chip,
        chip.settledThrough,
        head.height,
        p,
        challengeLookup(live),
        1024,
      ).filter((s) => s.slotHeight >= since).length;
      return { answered, missed };
    };
    try {
      for (let h = 1n; h <= head.height; h++) await write(h);
      let checks = 0;
      for (let step = 0; step < 300; step++) {
        const next = head.height + BigInt(rnd(5)); // 0..4 blocks on (several at once sometimes)
        while (written < next) await write(written + 1n);
        head.height = next;
        // The commit overlap: the next block's events are on disk before it is the head.
        if (rnd(3) === 0 && written === head.height) await write(head.height + 1n);
        const calls = 1 + rnd(3);
        const offers = await Promise.all(
          Array.from(
            { length: calls },
            () => api.methods.unc_getOffer!([toHex(m.offerId)], { transport: 'http' }) as Promise<OfferJson>,
          ),
        );
        for (const offer of offers)
          for (const [i, chipId] of chips.entries()) {
            const want = await old(chipId);
            const got = offer.chips[i]!.uptime as UptimeJson;
            assert.deepEqual(
              { answered: got.answered, missed: got.missed },
              want,
              `head ${head.height} chip ${i}`,
            );
            checks++;
          }
      }
      assert.ok(checks > 3000, `${checks} checks`);
    } finally {
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

test('unc_getProviderRecord is priced by the offers and leases it reads (up to 1,000 of each)', () => {
  const provider = devKey(11);
  const state = new MemoryState();
  const costs = rpcCosts(() => state as StateReader);
  const address = encodeAddress(provider.address);
  assert.equal(costs.unc_getProviderRecord!([address]), 1);
  const overlay = new StateOverlay(state);
  for (let i = 0; i < 1500; i++) {
    listInsert(overlay, offersByProvider(provider.address), sha256(utf8(`offer ${i}`)));
    listInsert(overlay, leasesByProvider(provider.address), sha256(utf8(`lease ${i}`)));
  }
  state.apply(overlay.changes());
  assert.equal(costs.unc_getProviderRecord!([address]), 100);
  assert.equal(costs.unc_getProviderRecord!({ address }), 100);
  assert.equal(costs.unc_getProviderRecord!(['unc1bad']), 1);
  assert.equal(costs.unc_getProviderRecord!([]), 1);
});
