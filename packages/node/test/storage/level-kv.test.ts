/**
 * The chain database's writes on a real LevelDB (`LevelKv`, a chained batch since the throughput
 * work): an op LevelDB refuses half-way leaves nothing written and no batch left open; `durable`
 * reaches LevelDB as `sync`; a process killed with SIGKILL in the middle of its block commits
 * reopens with every block whole or absent and the head on the last whole one. And the chain over
 * a store whose writes fail: its head and state never move past what the store holds.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ed25519PublicKey, toHex } from '@unc/core';
import { ClassicLevel } from 'classic-level';
import fc from 'fast-check';
import { Chain } from '../../src/chain.js';
import { devGenesisJson, devValidator } from '../../src/dev.js';
import { silentLogger } from '../../src/log.js';
import { type BatchOp, ChainDb, type KvStore, LevelKv, MemoryKv } from '../../src/storage/db.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'unc-level-kv-'));
  dirs.push(dir);
  return dir;
}

const bytes = (...b: number[]) => Uint8Array.from(b);

/** A LevelDB whose open resources (iterators, chained batches) and batch writes are watched. */
async function watchedLevel() {
  const db = new ClassicLevel<Uint8Array, Uint8Array>(tempDir(), {
    keyEncoding: 'view',
    valueEncoding: 'view',
  });
  await db.open();
  const open = new Set<object>();
  const attach = db.attachResource.bind(db);
  const detach = db.detachResource.bind(db);
  db.attachResource = (r) => {
    open.add(r);
    attach(r);
  };
  db.detachResource = (r) => {
    open.delete(r);
    detach(r);
  };
  const writeOptions: unknown[] = [];
  const batch = db.batch.bind(db) as () => ReturnType<typeof db.batch>;
  (db as unknown as { batch: () => unknown }).batch = () => {
    const b = batch();
    const write = b.write.bind(b);
    b.write = (options?: unknown) => {
      writeOptions.push(options);
      return write(options as Parameters<typeof write>[0]);
    };
    return b;
  };
  return { db, kv: new LevelKv(db), open, writeOptions };
}

test('an op LevelDB refuses half-way: the batch rejects, nothing of it is written, and the batch is closed', async () => {
  const { db, kv, open } = await watchedLevel();
  try {
    const ops = [
      { type: 'put', key: bytes(1), value: bytes(10) },
      { type: 'del', key: bytes(9) },
      { type: 'put', key: bytes(2), value: undefined as unknown as Uint8Array },
      { type: 'put', key: bytes(3), value: bytes(30) },
    ] as BatchOp[];
    for (let i = 0; i < 3; i++) {
      await assert.rejects(kv.batch(ops, true), (e: { code?: string }) => e.code === 'LEVEL_INVALID_VALUE');
      // Released at once, not left attached (with its ops in native memory) until the db closes.
      assert.equal(open.size, 0, 'the refused batch is still open');
    }
    assert.equal(await kv.get(bytes(1)), undefined);
    assert.equal(await kv.get(bytes(3)), undefined);
    // The store still takes whole batches afterwards.
    await kv.batch([{ type: 'put', key: bytes(1), value: bytes(11) }], true);
    assert.deepEqual(new Uint8Array((await kv.get(bytes(1)))!), bytes(11));
    assert.equal(open.size, 0);
  } finally {
    await db.close();
  }
});

test('durable reaches LevelDB as sync on the chained batch, and an empty batch writes nothing', async () => {
  const { db, kv, open, writeOptions } = await watchedLevel();
  try {
    await kv.batch([{ type: 'put', key: bytes(1), value: bytes(1) }], true);
    await kv.batch([{ type: 'put', key: bytes(2), value: bytes(2) }], false);
    await kv.batch([], true);
    assert.deepEqual(writeOptions, [{ sync: true }, { sync: false }, { sync: true }]);
    assert.equal(open.size, 0);
  } finally {
    await db.close();
  }
});

/**
 * The child: commits blocks of `STATE_KEYS` state entries each through ChainDb (one chained,
 * fsynced batch per block, as a node does) and prints each height once commitBlock resolved.
 */
const STATE_KEYS = 4000;
const child = (dbModule: string, dir: string) => `
import { ChainDb } from ${JSON.stringify(dbModule)};
const db = await ChainDb.open(${JSON.stringify(dir)});
let height = ((await db.getHead())?.height ?? -1n) + 1n;
for (;;) {
  const stateChanges = [];
  for (let i = 0; i < ${STATE_KEYS}; i++) {
    const key = new Uint8Array(12);
    new DataView(key.buffer).setBigUint64(0, height);
    new DataView(key.buffer).setUint32(8, i);
    stateChanges.push({ key, value: new Uint8Array(200).fill(Number(height % 256n)) });
  }
  const hash = new Uint8Array(32);
  new DataView(hash.buffer).setBigUint64(0, height);
  await db.commitBlock({ height, hash, block: new Uint8Array(5000).fill(7), txHashes: [], results: new Uint8Array(0), stateChanges });
  process.stdout.write(height + '\\n');
  height++;
}`;

test('SIGKILL in the middle of block commits: every block is whole or absent, and none that was acknowledged is lost', async () => {
  const dir = tempDir();
  const dbModule = new URL('../../src/storage/db.js', import.meta.url).href;
  let acknowledged = -1n;
  for (let crash = 0; crash < 3; crash++) {
    const proc = spawn(process.execPath, ['--input-type=module', '-e', child(dbModule, dir)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      proc.on('exit', (_code, signal) => resolve(signal)),
    );
    // Killed after 2–4 acknowledged commits and a few ms more: most kills land inside a write.
    const killAfter = 2 + crash;
    let seen = 0;
    let buffered = '';
    proc.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) {
        acknowledged = BigInt(line);
        if (++seen === killAfter) setTimeout(() => proc.kill('SIGKILL'), 3 + crash * 7);
      }
    });
    assert.equal(await exited, 'SIGKILL');

    const db = await ChainDb.open(dir);
    try {
      const head = await db.getHead();
      assert.ok(head, 'no head after the crash');
      assert.ok(
        head.height >= acknowledged,
        `head ${head.height} is behind acknowledged block ${acknowledged}`,
      );
      assert.ok(await db.getBlockBytes(head.height), 'the head block is missing');
      assert.equal(await db.getBlockBytes(head.height + 1n), undefined, 'a block past the head was written');
      const perHeight = new Map<bigint, number>();
      for await (const [key, value] of db.stateEntries()) {
        const height = new DataView(key.buffer, key.byteOffset).getBigUint64(0);
        assert.equal(value[0], Number(height % 256n));
        perHeight.set(height, (perHeight.get(height) ?? 0) + 1);
      }
      for (let h = 0n; h <= head.height; h++)
        assert.equal(perHeight.get(h), STATE_KEYS, `block ${h} is partial`);
      assert.equal(perHeight.size, Number(head.height) + 1, 'state entries of a block past the head');
    } finally {
      await db.close();
    }
  }
});

/**
 * The child: a single validator's chain on LevelDB committing as consensus now does, each block
 * built and executed on the tip while the one before is still being written and fsynced; it
 * signs the next block's precommit only once that write resolved and prints each height when
 * its batch is durable.
 */
const overlapChild = (modules: Record<string, string>, dir: string) => `
import { certificateFromVotes, ed25519PublicKey, signVote } from ${JSON.stringify(modules.core)};
import { Chain } from ${JSON.stringify(modules.chain)};
import { devGenesisJson, devValidator } from ${JSON.stringify(modules.dev)};
import { silentLogger } from ${JSON.stringify(modules.log)};
import { ChainDb } from ${JSON.stringify(modules.db)};
const genesis = devGenesisJson({ time: new Date('2026-06-01T00:00:00Z') });
const chain = await Chain.open(await ChainDb.open(${JSON.stringify(dir)}), genesis, silentLogger);
const seed = devValidator().seed;
const key = { seed, publicKey: ed25519PublicKey(seed) };
let durable = Promise.resolve();
for (;;) {
  const { pending } = chain.buildProposal([], chain.nextBlockTime(BigInt(Date.now())), key, () => false);
  const height = pending.block.header.height;
  await durable;
  const vote = signVote(chain.genesis.chainId, { type: 'precommit', height, round: 0, blockHash: pending.hash, validator: key.publicKey }, seed);
  const started = await chain.beginCommit(pending, certificateFromVotes([vote]));
  durable = started.durable.then(() => process.stdout.write(height + '\\n'));
}`;

test("SIGKILL while the next block executes during the previous block's write: the chain reopens whole, with no durable block lost", async () => {
  const dir = tempDir();
  const modules = {
    core: import.meta.resolve('@unc/core'),
    chain: new URL('../../src/chain.js', import.meta.url).href,
    dev: new URL('../../src/dev.js', import.meta.url).href,
    log: new URL('../../src/log.js', import.meta.url).href,
    db: new URL('../../src/storage/db.js', import.meta.url).href,
  };
  const genesis = devGenesisJson({ time: new Date('2026-06-01T00:00:00Z') });
  let acknowledged = -1n;
  for (let crash = 0; crash < 3; crash++) {
    const proc = spawn(process.execPath, ['--input-type=module', '-e', overlapChild(modules, dir)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      proc.on('exit', (_code, signal) => resolve(signal)),
    );
    const killAfter = 5 + crash * 3;
    let seen = 0;
    let buffered = '';
    proc.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) {
        acknowledged = BigInt(line);
        if (++seen === killAfter) setTimeout(() => proc.kill('SIGKILL'), 1 + crash * 2);
      }
    });
    assert.equal(await exited, 'SIGKILL');
    // Chain.open rebuilds the state and checks its root against the head block's.
    const db = await ChainDb.open(dir);
    try {
      const chain = await Chain.open(db, genesis, silentLogger);
      assert.ok(chain.height >= acknowledged, `head ${chain.height} is behind durable block ${acknowledged}`);
      assert.equal(await db.getBlockBytes(chain.height + 1n), undefined, 'a block past the head was written');
    } finally {
      await db.close();
    }
  }
  assert.ok(acknowledged >= 15n, `only ${acknowledged} blocks over three runs`);
});

/** A store whose batches fail on request, refused whole as LevelDB refuses a write. */
class FailingKv implements KvStore {
  fail = false;
  constructor(readonly inner: MemoryKv) {}
  get(key: Uint8Array) {
    return this.inner.get(key);
  }
  async batch(ops: BatchOp[], durable: boolean): Promise<void> {
    if (this.fail) throw new Error('disk full');
    await this.inner.batch(ops, durable);
  }
  entries(range: Parameters<KvStore['entries']>[0]) {
    return this.inner.entries(range);
  }
  close() {
    return this.inner.close();
  }
}

test('property: a block whose write fails moves neither the head nor the state, and nothing is committed after it; the chain always equals what reopens from its store', async () => {
  const genesis = devGenesisJson({ time: new Date('2026-06-01T00:00:00Z') });
  const v = devValidator();
  const key = { seed: v.seed, publicKey: ed25519PublicKey(v.seed) };
  await fc.assert(
    fc.asyncProperty(fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }), async (failures) => {
      const store = new FailingKv(new MemoryKv());
      const chain = await Chain.open(ChainDb.over(store), genesis, silentLogger);
      let t = BigInt(Date.parse('2026-06-01T00:00:00Z'));
      let failed = false;
      for (const fail of failures) {
        const before = {
          height: chain.height,
          hash: toHex(chain.head.hash),
          root: toHex(chain.state.trie.root),
        };
        store.fail = fail;
        t += 1000n;
        const attempt = chain.proposeAndCommit([], chain.nextBlockTime(t), key, () => false);
        // A failed write is final: the node stops rather than build on state that is not on disk.
        if (fail || failed) {
          await assert.rejects(attempt, /disk full/);
          failed = true;
          assert.deepEqual(
            { height: chain.height, hash: toHex(chain.head.hash), root: toHex(chain.state.trie.root) },
            before,
          );
        } else await attempt;
        const reopened = await Chain.open(ChainDb.over(store.inner), genesis, silentLogger);
        assert.equal(reopened.height, chain.height);
        assert.equal(toHex(reopened.head.hash), toHex(chain.head.hash));
        assert.equal(toHex(reopened.state.trie.root), toHex(chain.state.trie.root));
      }
    }),
    { numRuns: 15 },
  );
});
