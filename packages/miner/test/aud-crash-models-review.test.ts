/**
 * Review of the model store's torn-file check (commit): at an upload of a model already on disk it
 * hashes the file there. Read whole into memory, a model past 2 GiB could not be read at all and was
 * taken for torn: the upload of any renter dropped every other holder of it. And every upload of a
 * model again cost a full read and hash of it, though only a power loss (which ends the process)
 * tears a file: once per start is enough.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs, { closeSync, ftruncateSync, openSync, writeFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import { test } from 'node:test';
import { contentHash, toHex } from '@unc/core';
import { ModelStore } from '../src/index.js';
import { suiteTempDir } from './helpers.js';

const root = suiteTempDir('aud-crash-models-review-');
const [A, B, C] = ['aa', 'bb', 'cc'].map((b) => b.repeat(32)) as [string, string, string];

/** A sparse file of `size` zero bytes (no disk blocks used). */
function zeros(path: string, size: number): void {
  const fd = openSync(path, 'w');
  try {
    ftruncateSync(fd, size);
  } finally {
    closeSync(fd);
  }
}

test('aud-crash review: a model past 2 GiB uploaded again by another renter keeps its holders', async () => {
  const dir = join(root.path, 'big');
  const size = 2 ** 31 + 1;
  const h = createHash('sha256');
  h.update(Uint8Array.of(11));
  h.update('UNC/content');
  const chunk = Buffer.alloc(1 << 24);
  for (let left = size; left > 0; left -= chunk.length)
    h.update(left >= chunk.length ? chunk : chunk.subarray(0, left));
  const hash = h.digest('hex');
  const first = new ModelStore(dir);
  await first.init();
  zeros(first.pathOf(hash), size);
  writeFileSync(first.holdersPathOf(hash), `${A}\n`);

  const store = new ModelStore(dir);
  await store.init();
  const tmp = join(dir, '.upload.0123456789abcdef.tmp');
  zeros(tmp, size);
  assert.deepEqual(await store.commit(tmp, hash, B), { stored: true });
  assert.deepEqual(store.holdersOf(hash).sort(), [A, B], 'a holder lost the model to another renter upload');
});

test('aud-crash review: a model uploaded again is hashed from disk once per start, not at every upload', async () => {
  const dir = join(root.path, 'once');
  const model = new Uint8Array(randomBytes(64 * 1024));
  const hash = toHex(contentHash(model));
  const first = new ModelStore(dir);
  await first.init();
  await first.put(model, A);

  const store = new ModelStore(dir);
  await store.init();
  const path = store.pathOf(hash);
  let reads = 0;
  const real = { readFile: fs.promises.readFile, createReadStream: fs.createReadStream };
  const p = fs.promises as unknown as Record<string, unknown>;
  const f = fs as unknown as Record<string, unknown>;
  p.readFile = (file: unknown, ...rest: unknown[]) => {
    if (String(file) === path) reads++;
    return (real.readFile as (...a: unknown[]) => unknown)(file, ...rest);
  };
  f.createReadStream = (file: unknown, ...rest: unknown[]) => {
    if (String(file) === path) reads++;
    return (real.createReadStream as (...a: unknown[]) => unknown)(file, ...rest);
  };
  syncBuiltinESMExports();
  try {
    for (const renter of [B, C, B, A, C]) await store.put(model, renter);
  } finally {
    p.readFile = real.readFile;
    f.createReadStream = real.createReadStream;
    syncBuiltinESMExports();
  }
  assert.equal(reads, 1);
  assert.deepEqual(store.holdersOf(hash).sort(), [A, B, C]);
  assert.deepEqual(await store.get(hash), model);
});
