/**
 * Only a renter that uploaded a model's bytes runs it. Model hashes are public once a renter posts
 * a receipt; a renter with any lease on the provider ran another renter's model by its hash (free
 * use, extraction by queries, its input names in error messages). Each stored model keeps the
 * renter keys that uploaded it (its holders) in a record beside it; a job naming a model its
 * renter does not hold gets 404 MODEL_NOT_FOUND, the same answer as an absent model.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { contentHash, toHex } from '@unc/core';
import { silentLogger } from '@unc/node';
import { ProviderClient, type ProviderError, type TensorJson } from '@unc/sdk';
import fc from 'fast-check';
import { DevSoftSigner, ModelStore, ProviderServer } from '../src/index.js';
import { affineModel } from './fixtures/make-fixtures.js';
import { suiteTempDir, tempDir } from './helpers.js';
import { activeLease, InMemoryLeaseSource } from './provider-helpers.js';

const CHAIN = 'unc-test-model-holders';
const A = 'aa'.repeat(32);
const B = 'bb'.repeat(32);
const C = 'cc'.repeat(32);

const x: Record<string, TensorJson> = {
  x: { type: 'float32', dims: [1, 4], data: Buffer.alloc(16).toString('base64') },
};

function holdersOnDisk(dir: string, hash: string): string[] {
  const path = join(dir, `${hash}.holders`);
  return existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter(Boolean) : [];
}

describe('model store holders', () => {
  const dir = suiteTempDir('unc-model-holders-');

  test('an upload of bytes already stored adds its renter; the answer is the first upload’s', async () => {
    const path = join(dir.path, 'join');
    const store = new ModelStore(path);
    await store.init();
    const m = new Uint8Array(randomBytes(1_000));
    const first = await store.put(m, A);
    assert.equal(first.stored, true);
    assert.ok(store.holds(first.hash, A) && !store.holds(first.hash, B));
    // B is told "stored" as if it were the first: the answer does not say A had it.
    assert.equal((await store.put(m, B)).stored, true);
    assert.equal((await store.put(m, A)).stored, false);
    assert.ok(store.holds(first.hash, B));
    assert.deepEqual(holdersOnDisk(path, first.hash).sort(), [A, B]);
    // The model counts whole against each holder's share, once against the total.
    assert.deepEqual([store.bytes(A), store.bytes(B), store.bytes()], [1_000, 1_000, 1_000]);
  });

  test("a holder's own share evicting a shared model takes only that holder out; the last one's takes the bytes", async () => {
    const path = join(dir.path, 'share');
    const store = new ModelStore(path, { maxBytes: 100_000, maxBytesPerRenter: 2_000 });
    await store.init();
    const shared = new Uint8Array(randomBytes(1_000));
    const { hash } = await store.put(shared, A);
    await store.put(shared, B);
    // A's share (2 models) pushes the shared model, its least recently used, out of A's set.
    await store.put(new Uint8Array(randomBytes(1_000)), A);
    await store.put(new Uint8Array(randomBytes(1_000)), A);
    assert.ok(!store.holds(hash, A));
    assert.ok(store.holds(hash, B));
    assert.ok(await store.onDisk(hash));
    assert.deepEqual(holdersOnDisk(path, hash), [B]);
    assert.deepEqual([store.bytes(A), store.bytes(B)], [2_000, 1_000]);
    // B's share pushes it out too: nobody holds it, its file and record go.
    await store.put(new Uint8Array(randomBytes(1_000)), B);
    await store.put(new Uint8Array(randomBytes(1_000)), B);
    assert.ok(!store.known(hash));
    assert.ok(!existsSync(store.pathOf(hash)));
    assert.ok(!existsSync(store.holdersPathOf(hash)));
    assert.deepEqual([store.bytes(A), store.bytes(B), store.bytes()], [2_000, 2_000, 4_000]);
  });

  test('past the total a model goes whole: the largest holder keeps a model another still holds, its own goes', async () => {
    const path = join(dir.path, 'total');
    const store = new ModelStore(path, { maxBytes: 3_000, maxBytesPerRenter: 3_000 });
    await store.init();
    const shared = new Uint8Array(randomBytes(1_000));
    const { hash } = await store.put(shared, A);
    await store.put(shared, B);
    const a2 = (await store.put(new Uint8Array(randomBytes(1_000)), A)).hash;
    const a3 = (await store.put(new Uint8Array(randomBytes(1_000)), A)).hash;
    // A holds 3 000 (the most): C's upload evicts a2, A's least recently used of the models only
    // A holds. Taking A out of the shared model (its least recently used) would free nothing.
    await store.put(new Uint8Array(randomBytes(1_000)), C);
    assert.deepEqual(store.holdersOf(hash).sort(), [A, B]);
    assert.deepEqual(holdersOnDisk(path, hash).sort(), [A, B]);
    assert.ok(!(await store.onDisk(a2)));
    assert.ok(await store.onDisk(a3));
    assert.deepEqual(
      [store.bytes(A), store.bytes(B), store.bytes(C), store.bytes()],
      [2_000, 1_000, 1_000, 3_000],
    );
  });

  test('one upload past the total does not strip a heavy renter of the models it shares', async () => {
    const path = join(dir.path, 'strip');
    const store = new ModelStore(path, { maxBytes: 4_000, maxBytesPerRenter: 4_000 });
    await store.init();
    const shared: string[] = [];
    for (let i = 0; i < 3; i++) {
      const m = new Uint8Array(randomBytes(1_000));
      shared.push((await store.put(m, A)).hash);
      await store.put(m, B);
    }
    const own = (await store.put(new Uint8Array(randomBytes(1_000)), A)).hash;
    // A holds 4 000, B 3 000: C's model evicts A's own, and every shared model keeps both holders.
    await store.put(new Uint8Array(randomBytes(1_000)), C);
    for (const h of shared) assert.deepEqual(store.holdersOf(h).sort(), [A, B]);
    assert.ok(!store.known(own));
    assert.deepEqual(
      [store.bytes(A), store.bytes(B), store.bytes(C), store.bytes()],
      [3_000, 3_000, 1_000, 4_000],
    );
  });

  test("past the total, joining a light renter's model does not expose it; models heavier keys share go whole", async () => {
    const path = join(dir.path, 'join-attack');
    const store = new ModelStore(path, { maxBytes: 3_000, maxBytesPerRenter: 3_000 });
    await store.init();
    // V's model is public: key A sends its bytes too, and two models of its own it shares with B.
    const V = 'dd'.repeat(32);
    const theirs = new Uint8Array(randomBytes(1_000));
    const { hash } = await store.put(theirs, V);
    await store.put(theirs, A);
    const mine: string[] = [];
    for (let i = 0; i < 2; i++) {
      const m = new Uint8Array(randomBytes(1_000));
      mine.push((await store.put(m, A)).hash);
      await store.put(m, B);
    }
    // A holds 3 000, B 2 000, V 1 000. C's upload evicts the least recently used model A and B
    // share, whole; V's model, A's least recently used, keeps both its holders.
    await store.put(new Uint8Array(randomBytes(1_000)), C);
    assert.deepEqual(store.holdersOf(hash).sort(), [A, V].sort());
    assert.ok(!store.known(mine[0]!));
    assert.deepEqual(store.holdersOf(mine[1]!).sort(), [A, B]);
    assert.deepEqual(
      [store.bytes(V), store.bytes(A), store.bytes(B), store.bytes(C), store.bytes()],
      [1_000, 2_000, 1_000, 1_000, 3_000],
    );
  });

  test("one upload evicting a renter's many tiny models reads each model's holders a bounded number of times", async () => {
    // Weighing every model for each eviction was quadratic: a renter may store its share divided
    // by a few bytes, and one upload that had to evict 8 000 of 16 000 models of 16 bytes held the event
    // loop for 37 s. The holders read are counted (each read iterates a model's holder set).
    const path = join(dir.path, 'many');
    const n = 1_000;
    const store = new ModelStore(path, { maxBytes: 16 * n, maxBytesPerRenter: 16 * n });
    await store.init();
    const hashes: string[] = [];
    for (let i = 0; i < n; i++) {
      const body = new Uint8Array(16);
      new DataView(body.buffer).setUint32(0, i);
      hashes.push((await store.put(body, A)).hash);
    }
    let reads = 0;
    class CountedSet<T> extends Set<T> {
      override [Symbol.iterator]() {
        reads++;
        return super[Symbol.iterator]();
      }
    }
    // The store's own entries (private): each model's holder set is swapped for a counted one.
    const entries = (store as unknown as { entries: Map<string, { holders: Set<string> }> }).entries;
    for (const e of entries.values()) e.holders = new CountedSet(e.holders);
    await store.put(new Uint8Array(randomBytes(8 * n)), B);
    assert.ok(reads <= 4 * n, `${reads} reads of holder sets for ${n} models`);
    // A's least recently used half went, whole.
    assert.deepEqual(
      hashes.map((h) => store.known(h)),
      hashes.map((_, i) => i >= n / 2),
    );
    assert.deepEqual([store.bytes(A), store.bytes(B), store.bytes()], [8 * n, 8 * n, 16 * n]);
  });

  test('holders per model are bounded: past the cap the least recently active leaves and may upload again', async () => {
    const path = join(dir.path, 'cap');
    const store = new ModelStore(path, { maxHoldersPerModel: 2 });
    await store.init();
    const m = new Uint8Array(randomBytes(1_000));
    const { hash } = await store.put(m, A);
    await store.put(m, B);
    store.touch(hash, A); // A ran a job since: B is the least recently active
    await store.put(m, C);
    assert.deepEqual(store.holdersOf(hash), [A, C]);
    assert.deepEqual(holdersOnDisk(path, hash), [A, C]);
    assert.equal(store.bytes(B), 0);
    // B comes back with the bytes: it holds the model again, A (now least recently active) leaves.
    assert.equal((await store.put(m, B)).stored, true);
    assert.deepEqual(store.holdersOf(hash), [C, B]);
  });

  test('property: shares, total, holder caps and the records on disk stay coherent', async () => {
    const keys = [A, B, C];
    const bodies = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => new Uint8Array(randomBytes(300 + 150 * i)));
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat(7), fc.nat(2), fc.boolean()), { minLength: 1, maxLength: 30 }),
        async (steps) => {
          const path = join(dir.path, `prop-${run++}`);
          const opts = { maxBytes: 3_000, maxBytesPerRenter: 2_000, maxHoldersPerModel: 2 };
          const store = new ModelStore(path, opts);
          await store.init();
          for (const [m, r, use] of steps) {
            const uploader = keys[r]!;
            const before = new Map(
              bodies.map((b) => toHex(contentHash(b))).map((h) => [h, store.holdersOf(h)] as const),
            );
            const hadBytes = store.bytes(uploader);
            const { hash } = await store.put(bodies[m]!, uploader);
            assert.ok(store.holds(hash, uploader), 'the uploader holds the model it just sent');
            // An upload takes a renter out of a model that stays only for its holder cap (the model
            // sent) or for the uploader's own share; past the total a model goes whole, so no
            // holder is removed without its bytes being freed.
            for (const [h, was] of before) {
              if (h === hash || !store.known(h)) continue;
              const now = store.holdersOf(h);
              for (const k of was)
                if (!now.includes(k)) {
                  assert.equal(k, uploader, 'past the total, a model stored keeps its holders');
                  assert.ok(hadBytes + bodies[m]!.length > opts.maxBytesPerRenter, 'only past its share');
                }
            }
            if (use) store.touch(hash, uploader);
          }
          const check = (s: ModelStore) => {
            let total = 0;
            const per = new Map<string, number>();
            for (const body of bodies) {
              const hash = toHex(contentHash(body));
              if (!s.known(hash)) continue;
              total += body.length;
              const holders = s.holdersOf(hash);
              assert.ok(holders.length <= opts.maxHoldersPerModel);
              for (const k of holders) per.set(k, (per.get(k) ?? 0) + body.length);
            }
            assert.equal(s.bytes(), total);
            assert.ok(total <= opts.maxBytes);
            for (const k of keys) {
              assert.equal(s.bytes(k), per.get(k) ?? 0);
              assert.ok(s.bytes(k) <= opts.maxBytesPerRenter);
            }
          };
          check(store);
          // Files on disk are the models known, each with its holders' record (none for nobody).
          const names = readdirSync(path).sort();
          const expected: string[] = [];
          for (const body of bodies) {
            const hash = toHex(contentHash(body));
            if (!store.known(hash)) continue;
            expected.push(`${hash}.onnx`);
            if (store.holdersOf(hash).length > 0) expected.push(`${hash}.holders`);
            // The record keeps the order of its last write (a job's use is not written).
            assert.deepEqual(holdersOnDisk(path, hash).sort(), store.holdersOf(hash).sort());
          }
          assert.deepEqual(names, expected.sort());
          // A restart reads back the same holders.
          const again = new ModelStore(path, opts);
          await again.init();
          for (const body of bodies) {
            const hash = toHex(contentHash(body));
            assert.deepEqual(again.holdersOf(hash).sort(), store.holdersOf(hash).sort());
          }
          check(again);
        },
      ),
      { numRuns: 40 },
    );
  });

  test('holders survive a restart; a model found without a record is held by nobody', async () => {
    const path = join(dir.path, 'restart');
    const first = new ModelStore(path);
    await first.init();
    const held = (await first.put(new Uint8Array(randomBytes(1_000)), A)).hash;
    await first.put(new Uint8Array(randomBytes(1_000)), B);
    const bare = (await first.put(new Uint8Array(randomBytes(1_000)), B)).hash;
    rmSync(first.holdersPathOf(bare));
    const again = new ModelStore(path);
    await again.init();
    assert.ok(again.holds(held, A) && !again.holds(held, B));
    assert.ok(again.known(bare));
    assert.deepEqual(again.holdersOf(bare), []);
    assert.deepEqual([again.bytes(A), again.bytes(B), again.bytes()], [1_000, 1_000, 3_000]);
  });
});

describe('provider: a job runs only a model its renter uploaded', () => {
  const leases = new InMemoryLeaseSource();
  const chip = new DevSoftSigner(new Uint8Array(randomBytes(32)), 'dev-h100', 'holders-chip');
  let dir: { path: string; remove(): Promise<void> };
  let provider: ProviderServer;
  let url: string;

  function server(): ProviderServer {
    return new ProviderServer({
      chainId: CHAIN,
      signers: [chip],
      leases,
      modelDir: join(dir.path, 'models'),
      stateDir: join(dir.path, 'state'),
      concurrency: 1,
      logger: silentLogger,
    });
  }

  /** A renter key with its lease; `()` gives a client of the provider as it listens now. */
  async function renter(): Promise<() => ProviderClient> {
    const { seed, leaseId } = await activeLease(leases, chip);
    // A restarted provider listens on another port: the client is built for each use.
    return () =>
      new ProviderClient({ endpoint: url, chainId: CHAIN, leaseId, renterSeed: seed, allowHttp: true });
  }

  function failure(p: Promise<unknown>): Promise<{ status: number; code: string; message: string } | null> {
    return p.then(
      () => null,
      (e: ProviderError) => ({ status: e.status, code: e.code, message: e.message }),
    );
  }

  before(async () => {
    dir = await tempDir('unc-provider-holders-');
    provider = server();
    url = await provider.start();
  });
  after(async () => {
    await provider?.stop();
    await dir?.remove();
  });

  test("renter B cannot run A's model by its hash; after uploading the same bytes it can", async () => {
    const a = await renter();
    const b = await renter();
    const { modelHash } = await a().uploadModel(affineModel());
    assert.equal((await a().runJob(modelHash, x)).job.status, 'done');
    // B knows the hash (from a posted receipt): its job and batch are answered as for no model.
    const absent = toHex(randomBytes(32));
    const refused = await failure(b().runJob(modelHash, x));
    const unknown = await failure(b().runJob(absent, x));
    assert.ok(refused && unknown);
    assert.deepEqual([refused.status, refused.code], [404, 'MODEL_NOT_FOUND']);
    assert.deepEqual([unknown.status, unknown.code], [404, 'MODEL_NOT_FOUND']);
    assert.equal(refused.message.replace(modelHash, '<hash>'), unknown.message.replace(absent, '<hash>'));
    // Wrong inputs get the same answer: the model's input names are not revealed.
    const wrong = await failure(b().runJob(modelHash, { nope: x.x! }));
    assert.deepEqual([wrong?.status, wrong?.code], [404, 'MODEL_NOT_FOUND']);
    const batch = await failure(b().runBatch(modelHash, [x]));
    assert.deepEqual([batch?.status, batch?.code], [404, 'MODEL_NOT_FOUND']);
    // B proves it has the model by sending its bytes: told "stored" like a first upload, then runs it.
    const up = await b().uploadModel(affineModel());
    assert.deepEqual([up.modelHash, up.stored], [modelHash, true]);
    assert.equal((await b().runJob(modelHash, x)).job.status, 'done');
    // A, uploading again, is told it already had it.
    assert.equal((await a().uploadModel(affineModel())).stored, false);
  });

  test('holders persist across a provider restart; a model without a record must be uploaded again', {
    timeout: 120_000,
  }, async () => {
    const a = await renter();
    const b = await renter();
    const { modelHash } = await a().uploadModel(affineModel());
    await provider.stop();
    provider = server();
    url = await provider.start();
    assert.equal((await a().runJob(modelHash, x)).job.status, 'done');
    assert.equal((await failure(b().runJob(modelHash, x)))?.code, 'MODEL_NOT_FOUND');
    // A store from before holders were kept: the model is there, held by nobody.
    await provider.stop();
    rmSync(join(dir.path, 'models', `${modelHash}.holders`));
    provider = server();
    url = await provider.start();
    assert.equal((await failure(a().runJob(modelHash, x)))?.code, 'MODEL_NOT_FOUND');
    assert.equal((await a().uploadModel(affineModel())).stored, true);
    assert.equal((await a().runJob(modelHash, x)).job.status, 'done');
  });
});
