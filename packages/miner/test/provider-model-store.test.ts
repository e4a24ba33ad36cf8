/**
 * The model store's quota. Without one a renter filled the disk with models (each upload padded to
 * a new hash stayed for good), and a full disk failed every request. Models past the quota are
 * evicted (they are content-addressed: whoever needs one uploads it again), never one pinned by a
 * queued or running job: one renter's models past its share evict its own least recently used,
 * and past the total whole models, those of the renter holding the most first.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { silentLogger } from '@unc/node';
import type { ProviderClient } from '@unc/sdk';
import { DevSoftSigner, ModelStore, ProviderServer, StoreFullError } from '../src/index.js';
import { affineModel } from './fixtures/make-fixtures.js';
import { suiteTempDir, tempDir } from './helpers.js';
import { InMemoryLeaseSource, leaseRenter } from './provider-helpers.js';

const CHAIN = 'unc-test-model-store';
const MiB = 1024 * 1024;
const A = 'aa'.repeat(32);
const B = 'bb'.repeat(32);

/** A valid model padded with a doc_string (ModelProto field 6) of `pad` random bytes: a new hash each time. */
function padded(pad: number): Uint8Array {
  const len: number[] = [];
  for (let n = pad; ; ) {
    const b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n) len.push(b | 0x80);
    else {
      len.push(b);
      break;
    }
  }
  return new Uint8Array([...affineModel(), 0x32, ...len, ...randomBytes(pad)]);
}

function onDiskBytes(dir: string): { files: number; bytes: number } {
  const files = readdirSync(dir).filter((n) => n.endsWith('.onnx'));
  return { files: files.length, bytes: files.reduce((s, n) => s + statSync(join(dir, n)).size, 0) };
}

describe('model store quota', () => {
  const dir = suiteTempDir('unc-model-store-');

  test('past the quota the least recently used models are evicted, never a pinned one', async () => {
    const store = new ModelStore(join(dir.path, 'lru'), { maxBytes: 3_000, maxBytesPerRenter: 3_000 });
    await store.init();
    const m = [0, 1, 2, 3, 4].map(() => new Uint8Array(randomBytes(1_000)));
    const h: string[] = [];
    for (const x of m.slice(0, 3)) h.push((await store.put(x, A)).hash);
    // Model 0 used by a job since; model 1 pinned by a queued job.
    store.touch(h[0]!);
    const unpin = store.pin(h[1]!);
    h.push((await store.put(m[3]!, A)).hash); // evicts model 2, the least recently used not pinned
    assert.deepEqual(
      [
        await store.onDisk(h[0]!),
        await store.onDisk(h[1]!),
        await store.onDisk(h[2]!),
        await store.onDisk(h[3]!),
      ],
      [true, true, false, true],
    );
    assert.equal(store.bytes(), 3_000);
    // Everything pinned: nothing can go, the new model is refused and nothing is evicted.
    const more = [h[0]!, h[3]!].map((x) => store.pin(x));
    await assert.rejects(store.put(m[4]!, A), StoreFullError);
    assert.equal(store.bytes(), 3_000);
    assert.equal(onDiskBytes(join(dir.path, 'lru')).files, 3);
    for (const u of [unpin, ...more]) u();
    // Unpinned again: room is made, and an evicted model stored again is there again.
    assert.equal((await store.put(m[2]!, A)).stored, true);
    assert.ok(await store.has(h[2]!));
    assert.equal(store.bytes(), 3_000);
    assert.equal(onDiskBytes(join(dir.path, 'lru')).bytes, 3_000);
  });

  test("one renter past its share evicts its own models, not another renter's", async () => {
    const store = new ModelStore(join(dir.path, 'share'), { maxBytes: 10_000, maxBytesPerRenter: 2_000 });
    await store.init();
    const theirs = (await store.put(new Uint8Array(randomBytes(1_000)), B)).hash;
    for (let i = 0; i < 20; i++) await store.put(new Uint8Array(randomBytes(1_000)), A);
    assert.equal(store.bytes(A), 2_000);
    assert.equal(store.bytes(B), 1_000);
    assert.ok(await store.onDisk(theirs));
    assert.equal(onDiskBytes(join(dir.path, 'share')).files, 3);
  });

  test("renters that each stay inside their share cannot flush a smaller renter's models", async () => {
    const store = new ModelStore(join(dir.path, 'flush'), { maxBytes: 6_000, maxBytesPerRenter: 3_000 });
    await store.init();
    const C = 'cc'.repeat(32);
    // B's model is the least recently used of all once the others start uploading.
    const theirs = (await store.put(new Uint8Array(randomBytes(1_000)), B)).hash;
    for (let i = 0; i < 20; i++)
      for (const r of [A, C]) await store.put(new Uint8Array(randomBytes(1_000)), r);
    assert.ok(await store.onDisk(theirs));
    assert.equal(store.bytes(B), 1_000);
    assert.equal(store.bytes(), 6_000);
    assert.equal(onDiskBytes(join(dir.path, 'flush')).bytes, 6_000);
  });

  test('models stored before a restart count against the quota, oldest first to go', async () => {
    const path = join(dir.path, 'restart');
    const first = new ModelStore(path, { maxBytes: 100_000 });
    await first.init();
    for (let i = 0; i < 5; i++) await first.put(new Uint8Array(randomBytes(1_000)), A);
    const again = new ModelStore(path, { maxBytes: 2_500 });
    await again.init();
    assert.equal(again.bytes(), 5_000);
    await again.put(new Uint8Array(randomBytes(1_000)), A);
    assert.equal(again.bytes(), 2_000);
    assert.equal(onDiskBytes(path).bytes, 2_000);
  });
});

describe('provider model store quota', () => {
  const leases = new InMemoryLeaseSource();
  const chip = new DevSoftSigner(new Uint8Array(randomBytes(32)), 'dev-h100', 'store-chip');
  let dir: { path: string; remove(): Promise<void> };
  let provider: ProviderServer;
  let url: string;

  async function renter(): Promise<ProviderClient> {
    return (await leaseRenter(leases, chip, url, CHAIN)).client;
  }

  before(async () => {
    dir = await tempDir('unc-provider-store-');
    provider = new ProviderServer({
      chainId: CHAIN,
      signers: [chip],
      leases,
      modelDir: join(dir.path, 'models'),
      stateDir: join(dir.path, 'state'),
      concurrency: 1,
      maxStoreBytes: 5 * MiB,
      logger: silentLogger,
    });
    url = await provider.start();
  });
  after(async () => {
    await provider?.stop();
    await dir?.remove();
  });

  test('40 uploads of 1 MiB from one renter leave at most the quota on disk; the latest still runs', {
    timeout: 300_000,
  }, async () => {
    const r = await renter();
    let last = '';
    for (let i = 0; i < 40; i++) last = (await r.uploadModel(padded(MiB))).modelHash;
    const { files, bytes } = onDiskBytes(join(dir.path, 'models'));
    assert.ok(bytes <= 5 * MiB, `${files} models, ${bytes} bytes on disk`);
    const x = { x: { type: 'float32' as const, dims: [1, 4], data: Buffer.alloc(16).toString('base64') } };
    assert.equal((await r.runJob(last, x)).job.status, 'done');
  });
});
