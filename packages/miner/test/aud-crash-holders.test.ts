/**
 * Crash audit: a model's holder record (`<hash>.holders`) was written to a temporary file and
 * renamed over the old one with no fsync of either. A power loss after the rename could leave the
 * record empty: the model held by nobody (first to be evicted, its renters' shares no longer
 * counting it). A test cannot cut the power: here the records' bytes stay in a page cache of the
 * test's own (node:fs/promises wrapped, the ESM bindings synced) that reaches the file only through
 * a sync of a handle open on it; what the cache holds at the end is lost, as a power loss loses it.
 * The folder must be fsynced after the rename too, or the rename itself may not survive.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import { test } from 'node:test';
import { contentHash, toHex } from '@unc/core';
import { ModelStore } from '../src/index.js';
import { suiteTempDir } from './helpers.js';

const root = suiteTempDir('aud-crash-holders-');
const [A, B] = ['aa', 'bb'].map((b) => b.repeat(32)) as [string, string];

const isRecord = (path: string) => /\.holders(\.[0-9a-f.]+\.tmp)?$/.test(path);

/**
 * Runs `fn` with the holder records' bytes held in memory until a handle open on their file is
 * synced; at the end whatever is still held is lost. Returns what happened to `dir`, in order:
 * 'rename' (a record renamed in) or 'fsync' (the folder synced).
 */
async function powerLossAfter(dir: string, fn: () => Promise<void>): Promise<string[]> {
  const p = fs.promises as unknown as Record<string, unknown>;
  const f = fs as unknown as Record<string, unknown>;
  const real = {
    writeFile: fs.promises.writeFile,
    open: fs.promises.open,
    rename: fs.promises.rename,
    openSync: fs.openSync,
    fsyncSync: fs.fsyncSync,
  };
  const cache = new Map<string, string | Uint8Array>();
  const events: string[] = [];
  const dirFds = new Set<number>();
  p.writeFile = async (file: unknown, data: string | Uint8Array, ...rest: unknown[]) => {
    if (!isRecord(String(file))) return (real.writeFile as (...a: unknown[]) => unknown)(file, data, ...rest);
    await real.writeFile(String(file), '');
    cache.set(String(file), data);
  };
  p.open = async (file: unknown, ...rest: unknown[]) => {
    const handle = await (real.open as (...a: unknown[]) => Promise<fs.promises.FileHandle>)(file, ...rest);
    const path = String(file);
    const sync = handle.sync.bind(handle);
    handle.sync = async () => {
      const held = cache.get(path);
      if (held !== undefined) {
        await handle.write(typeof held === 'string' ? Buffer.from(held) : held, 0, undefined, 0);
        cache.delete(path);
      }
      return sync();
    };
    return handle;
  };
  p.rename = async (from: unknown, to: unknown) => {
    await real.rename(String(from), String(to));
    // The page cache follows the file to its new name.
    const held = cache.get(String(from));
    cache.delete(String(from));
    if (held !== undefined) cache.set(String(to), held);
    if (isRecord(String(to))) events.push('rename');
  };
  f.openSync = (path: fs.PathLike, ...rest: unknown[]) => {
    const fd = (real.openSync as (...a: unknown[]) => number)(path, ...rest);
    if (String(path) === dir) dirFds.add(fd);
    return fd;
  };
  f.fsyncSync = (fd: number) => {
    if (dirFds.has(fd)) events.push('fsync');
    real.fsyncSync(fd);
  };
  syncBuiltinESMExports();
  try {
    await fn();
  } finally {
    Object.assign(p, { writeFile: real.writeFile, open: real.open, rename: real.rename });
    Object.assign(f, { openSync: real.openSync, fsyncSync: real.fsyncSync });
    syncBuiltinESMExports();
  }
  // The power loss: what never reached the disk is gone.
  cache.clear();
  return events;
}

test('aud-crash: a model’s holder record survives a power loss right after it was written', async () => {
  const dir = join(root.path, 'holders');
  const model = new Uint8Array(randomBytes(4096));
  const hash = toHex(contentHash(model));
  const events = await powerLossAfter(dir, async () => {
    const store = new ModelStore(dir);
    await store.init();
    await store.put(model, A);
    await store.put(model, B);
    assert.deepEqual(store.holdersOf(hash), [A, B]);
  });
  assert.ok(events.includes('rename'), 'the record was written through the wrapped calls');
  // Every record renamed in is followed by a sync of the folder before the next change.
  events.forEach((e, i) => {
    if (e === 'rename')
      assert.equal(events[i + 1], 'fsync', `folder not synced after a rename: ${events.join(' ')}`);
  });

  const after = new ModelStore(dir);
  await after.init();
  assert.deepEqual(after.holdersOf(hash).sort(), [A, B], 'the holders were lost with the power');
  assert.equal(after.bytes(A), model.length);
});
