/**
 * Crash audit: the provider's model store names a model by its content hash once renamed in. Before
 * its bytes are flushed, a power loss can leave the name with no bytes (or zeroed ones): the state
 * planted here, since a test cannot cut the power. The store must not keep it as the model: a renter
 * uploading the model again was told it is stored while every job kept loading the torn file.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { contentHash, toHex } from '@unc/core';
import { ModelStore } from '../src/index.js';
import { suiteTempDir } from './helpers.js';

const root = suiteTempDir('aud-crash-models-');

const RENTER = 'aa'.repeat(32);

for (const [what, torn] of [
  ['empty', (n: number) => new Uint8Array(n * 0)],
  ['zeroed', (n: number) => new Uint8Array(n)],
] as const) {
  test(`aud-crash: a model file left ${what} by a power loss is replaced by the next upload of the model`, async () => {
    const dir = join(root.path, what);
    const model = new Uint8Array(randomBytes(4096));
    const hash = toHex(contentHash(model));
    const first = new ModelStore(dir);
    await first.init();
    await first.put(model, RENTER);
    // The power loss: the name survived, the bytes did not.
    writeFileSync(first.pathOf(hash), torn(model.length));

    const store = new ModelStore(dir);
    await store.init();
    const again = await store.put(model, RENTER);
    assert.equal(again.hash, hash);
    assert.deepEqual(await store.get(hash), model, 'the torn file is still served as the model');
    assert.equal(store.bytes(), model.length);
    assert.equal(store.bytes(RENTER), model.length);
  });
}
