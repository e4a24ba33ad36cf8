/**
 * A validator refuses to start with a fresh signer when its signer state file is missing and the
 * chain store's last commits hold its precommits (consensus/signer-guard.ts): before, the driver
 * started a signer that remembered nothing, so a node that crashed during a height and lost
 * privval.json could sign a second, conflicting vote at it.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { blockCodec, blockHash, decode, ed25519PublicKey } from '@unc/core';
import { until } from '@unc/test-utils';
import { Chain, type ValidatorKey } from '../../src/chain.js';
import type { PrivvalStorage } from '../../src/consensus/privval-store.js';
import {
  recentlySignedHeights,
  refuseFreshSignerAfterSigning,
  SIGNER_GUARD_HEIGHTS,
  SignerStateMissing,
} from '../../src/consensus/signer-guard.js';
import { devGenesisJson, devValidator, devValidatorKey } from '../../src/dev.js';
import { type Logger, silentLogger } from '../../src/log.js';
import { UncNode } from '../../src/node.js';
import { ChainDb, type KvStore, MemoryKv } from '../../src/storage/db.js';
import { chainServer } from '../../src/sync.js';
import { GENESIS, grow, tempChains } from '../sync-fakes.js';
import { MemoryNetworkHub } from './memory-network.js';
import { fourValidatorGenesis, validators } from './test-nodes.js';

const GENESIS_TIME = Date.parse('2026-06-01T00:00:00Z');
const dev = devValidator();
const KEY: ValidatorKey = { seed: dev.seed, publicKey: ed25519PublicKey(dev.seed) };

/** A signer state store holding `text` (null: nothing was ever written). */
function storage(text: string | null): PrivvalStorage {
  return {
    where: 'memory:privval.json',
    read: () => text,
    write: () => {},
    recordWhere: (name) => `memory:privval.json.proposal-${name}`,
    readRecord: () => null,
    writeRecord: () => {},
    pruneRecords: () => {},
  };
}

interface Warning {
  msg: string;
  fields: Record<string, unknown>;
}

/** A logger keeping every warning it is given in `warnings`, and nothing else. */
function warningsTo(warnings: Warning[], component: string): Logger {
  return {
    component,
    level: 'debug',
    debug: () => {},
    info: () => {},
    warn: (msg, fields) => {
      warnings.push({ msg, fields: { ...(fields ?? {}) } });
    },
    error: () => {},
    child: (c) => warningsTo(warnings, `${component}.${c}`),
  };
}

async function chainOf(blocks: number): Promise<Chain> {
  const chain = await Chain.open(
    ChainDb.over(new MemoryKv()),
    devGenesisJson({ time: new Date(GENESIS_TIME) }),
    silentLogger,
  );
  for (let i = 0; i < blocks; i++) {
    const at = BigInt(GENESIS_TIME) + (chain.tipHeight + 1n) * 1000n;
    await chain.proposeAndCommit([], chain.nextBlockTime(at), KEY, () => false);
  }
  return chain;
}

describe('the signer guard', () => {
  test('refuses a missing signer state once this key signed one of the last commits', async () => {
    const chain = await chainOf(12);
    assert.deepEqual(
      await recentlySignedHeights(chain, KEY.publicKey),
      Array.from({ length: Number(SIGNER_GUARD_HEIGHTS) }, (_, i) => 12n - BigInt(i)),
    );
    await assert.rejects(
      refuseFreshSignerAfterSigning(storage(null), chain, KEY.publicKey),
      (err: unknown) => {
        assert.ok(err instanceof SignerStateMissing);
        assert.match(err.message, /memory:privval\.json \(the signer state\) is missing/);
        assert.match(err.message, /height\(s\) 12, 11, /);
        assert.match(err.message, /--allow-fresh-signer/);
        assert.match(err.message, /synced past height 13/);
        return true;
      },
    );
    // The operator said so, or the state is there (loadPrivvalFrom judges it): no refusal.
    await refuseFreshSignerAfterSigning(storage(null), chain, KEY.publicKey, true);
    await refuseFreshSignerAfterSigning(storage('{}'), chain, KEY.publicKey);
  });

  test('searches the decided block still being written too', async () => {
    // A store whose writes wait until released: block 4 is decided (the tip) but not yet the head.
    const inner = new MemoryKv();
    const held: (() => void)[] = [];
    let holding = false;
    const store: KvStore = {
      get: (key) => inner.get(key),
      batch: async (ops, durable) => {
        if (holding) await new Promise<void>((release) => held.push(release));
        await inner.batch(ops, durable);
      },
      entries: (range) => inner.entries(range),
      close: () => inner.close(),
    };
    const chain = await Chain.open(
      ChainDb.over(store),
      devGenesisJson({ time: new Date(GENESIS_TIME) }),
      silentLogger,
    );
    const commitNext = () =>
      chain.proposeAndCommit(
        [],
        chain.nextBlockTime(BigInt(GENESIS_TIME) + (chain.tipHeight + 1n) * 1000n),
        KEY,
        () => false,
      );
    for (let i = 0; i < 3; i++) await commitNext();
    holding = true;
    const writing = commitNext();
    await until('block 4 in flight', () => chain.writing && chain.tipHeight === 4n);
    assert.equal(chain.height, 3n);
    // Before: the search began at the head (3), and a release racing the write missed block 4.
    assert.deepEqual(await recentlySignedHeights(chain, KEY.publicKey, 2n), [4n, 3n]);
    holding = false;
    for (const release of held) release();
    await writing;
    assert.deepEqual(await recentlySignedHeights(chain, KEY.publicKey, 2n), [4n, 3n]);
  });

  test('lets a validator that never signed here start afresh', async () => {
    // A fresh chain, and one whose commits are another validator's.
    await refuseFreshSignerAfterSigning(storage(null), await chainOf(0), KEY.publicKey);
    const stranger = devValidatorKey(3).publicKey;
    await refuseFreshSignerAfterSigning(storage(null), await chainOf(5), stranger);
  });
});

describe('a validator node', () => {
  const dirs: string[] = [];
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  test('does not start without privval.json after signing with its chain store, unless told to', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'unc-signer-guard-'));
    dirs.push(dataDir);
    const genesis = devGenesisJson();
    const options = {
      dataDir,
      genesis,
      validatorSeed: dev.seed,
      rpcPort: 0,
      blockTimeMs: 50,
      logger: silentLogger,
    };
    const node = await UncNode.start(options);
    try {
      await until('a few blocks', () => node.chain.height >= 3n);
    } finally {
      await node.stop();
    }
    const privval = join(dataDir, 'privval.json');
    assert.ok(existsSync(privval));
    rmSync(privval);

    await assert.rejects(UncNode.start(options), (err: unknown) => {
      assert.ok(err instanceof SignerStateMissing, String(err));
      assert.match(err.message, /privval\.json \(the signer state\) is missing/);
      return true;
    });
    // The refusal closed the store: the operator's explicit start opens it again.
    const allowed = await UncNode.start({ ...options, allowFreshSigner: true });
    await allowed.stop();
  });
});

/**
 * The start guard searches the chain store, and a node that lost its whole data directory (a dead
 * disk, a new machine) starts with an empty one: it passed, synced, and signed at once, at the
 * height after the head it synced to, which the lost node may have signed already (a second,
 * conflicting vote: slashed and tombstoned). A fresh signer is now held until the node has caught
 * up with its peers and the commits it then holds show no precommit of its key (driver.ts
 * `releaseSigner`).
 */
describe('a fresh signer on an empty data directory', () => {
  const TIMEOUTS = {
    proposeMs: 400,
    proposeDeltaMs: 100,
    prevoteMs: 200,
    prevoteDeltaMs: 100,
    precommitMs: 200,
    precommitDeltaMs: 100,
  };
  const genesis = fourValidatorGenesis(150);
  const dirs: string[] = [];
  const running = new Set<UncNode>();
  after(async () => {
    for (const n of running) await n.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  const tempDir = () => {
    const d = mkdtempSync(join(tmpdir(), 'unc-fresh-signer-'));
    dirs.push(d);
    return d;
  };
  const start = async (hub: MemoryNetworkHub, i: number, dataDir: string, onFatal?: (e: Error) => void) => {
    const node = await UncNode.start({
      dataDir,
      genesis,
      validatorSeed: validators[i]!.seed,
      rpcPort: 0,
      timeouts: TIMEOUTS,
      logger: silentLogger,
      network: async (handlers) => hub.join(`v${i}`, handlers),
      ...(onFatal ? { onFatal } : {}),
    });
    running.add(node);
    return node;
  };
  const stop = async (hub: MemoryNetworkHub, node: UncNode, id: string) => {
    await node.stop();
    running.delete(node);
    hub.cut(id);
  };
  const wait = <T>(what: string, cond: () => T | false | Promise<T | false>) =>
    until<T>(what, cond, { timeoutMs: 90_000, intervalMs: 25 });

  test('waits until caught up, finds its own precommits in the synced commits, and stops without signing', async () => {
    const hub = new MemoryNetworkHub();
    const nodes = await Promise.all([0, 1, 2, 3].map((i) => start(hub, i, tempDir())));
    const v0 = validators[0]!.publicKey;
    await wait(
      'v0 precommits in the last commits',
      async () => (await recentlySignedHeights(nodes[1]!.chain, v0)).length >= 2,
    );
    // v0 loses its disk; with v3 down too the others (half the power) cannot decide, so the last
    // commits they hold keep v0's precommits however long the restart takes.
    await stop(hub, nodes[0]!, 'v0');
    await stop(hub, nodes[3]!, 'v3');
    const halted = await wait<bigint>('the others to agree on the head', () => {
      const [a, b] = [nodes[1]!.chain.height, nodes[2]!.chain.height];
      return a === b && !nodes[1]!.chain.writing && !nodes[2]!.chain.writing && a;
    });
    assert.ok((await recentlySignedHeights(nodes[1]!.chain, v0)).length > 0);

    const wiped = tempDir();
    const fatal: { error: Error | null } = { error: null };
    const restarted = await start(hub, 0, wiped, (e) => {
      fatal.error = e;
    });
    const privval = join(wiped, 'privval.json');
    // Before: the signer signed (and saved privval.json) at once, at the height after the head it
    // synced to, where the lost node may have voted already.
    await wait('the restarted v0 to stop or sign', () => fatal.error !== null || existsSync(privval));
    const error = fatal.error;
    assert.ok(error instanceof SignerStateMissing, `expected SIGNER_STATE_MISSING, got ${error}`);
    assert.equal(error.code, 'SIGNER_STATE_MISSING');
    assert.ok(restarted.chain.height >= halted, 'it refused only once caught up');
    assert.ok(!existsSync(privval), 'a held signer saved a signer state');
    assert.ok(restarted.driver.holdingFreshSigner);
  });

  test('a key that never signed starts signing once caught up, above the head it synced to', async () => {
    const hub = new MemoryNetworkHub();
    // Three of the four decide without v3 (3/4 of the power).
    const nodes = await Promise.all([0, 1, 2].map((i) => start(hub, i, tempDir())));
    await wait('a few blocks', () => nodes[0]!.chain.height >= 3n);
    let fatal: Error | null = null;
    const fresh = await start(hub, 3, tempDir(), (e) => {
      fatal = e;
    });
    const syncedTo = fresh.chain.height;
    assert.ok(syncedTo >= 3n, 'it caught up during its start');
    const v3 = validators[3]!.publicKey;
    const signed = await wait<bigint[]>('v3 precommits in a commit', async () => {
      const found = await recentlySignedHeights(nodes[0]!.chain, v3, 1_000n);
      return found.length > 0 && found;
    });
    assert.equal(fatal, null);
    assert.equal(fresh.driver.holdingFreshSigner, false);
    for (const h of signed) assert.ok(h > syncedTo, `v3 signed at ${h}, not above ${syncedTo}`);
  });
});

/**
 * A peer that claims a height above ours keeps a held fresh signer a follower (the claim is what
 * a node behind its peers sees, and a bare status costs nothing to lie in). That trade-off stays,
 * but it was silent: a validator held by a liar signed nothing, forever, and said nothing. It now
 * warns, naming the peers that claim to be ahead and the way out.
 */
describe('a held fresh signer kept back by a peer that claims to be ahead', () => {
  const TIMEOUTS = {
    proposeMs: 400,
    proposeDeltaMs: 100,
    prevoteMs: 200,
    prevoteDeltaMs: 100,
    precommitMs: 200,
    precommitDeltaMs: 100,
  };
  const genesis = fourValidatorGenesis(150);
  const dirs: string[] = [];
  const running = new Set<UncNode>();
  after(async () => {
    for (const n of running) await n.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  test('says so, loudly: the peer, its claim, and --allow-fresh-signer', async () => {
    const hub = new MemoryNetworkHub();
    const warnings: Warning[] = [];
    // The liar: answers every status with a height far above anyone's, serves no block.
    hub.join('liar', {
      onGossip: () => 'ignore',
      status: () => ({
        chainId: 'x',
        genesisHash: new Uint8Array(32),
        height: 1_000_000n,
        headHash: new Uint8Array(32),
      }),
      blocks: async () => [],
    });
    const dataDir = mkdtempSync(join(tmpdir(), 'unc-fresh-signer-liar-'));
    dirs.push(dataDir);
    const node = await UncNode.start({
      dataDir,
      genesis,
      validatorSeed: validators[3]!.seed,
      rpcPort: 0,
      timeouts: TIMEOUTS,
      logger: warningsTo(warnings, 'node'),
      network: async (handlers) => hub.join('v3', handlers),
    });
    running.add(node);
    const held = await until(
      'a warning that the fresh signer is held',
      () => warnings.find((w) => /fresh signer held/.test(w.msg)) ?? false,
      { timeoutMs: 60_000, intervalMs: 50 },
    );
    assert.ok(node.driver.holdingFreshSigner);
    assert.match(String(held.fields.ahead), /liar@1000000/);
    assert.match(String(held.fields.wayOut), /--allow-fresh-signer/);
  });
});

/**
 * A held fresh signer on a node whose block sync stopped with CONFLICTING CHAIN (sync-reactor.ts
 * `refuseConflict`): no peer will ever bring its head up, so it stays held until a restart. Its
 * warning said "peers claim heights above the head" and pointed to --allow-fresh-signer, which
 * would have it sign on a history the network may not follow.
 */
describe('a held fresh signer whose block sync stopped with CONFLICTING CHAIN', () => {
  const chains = tempChains('unc-held-conflict-');
  const dirs: string[] = [];
  const running = new Set<UncNode>();
  after(async () => {
    for (const n of running) await n.stop();
    await chains.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  test('says so, with the way out of the conflict, not --allow-fresh-signer', async () => {
    const real = await chains.open();
    const fork = await chains.open();
    await grow(real, 8n);
    await grow(fork, 2n);
    await grow(fork, 8n, 500n);
    // The operator's checkpoint names the other history's block 4: the real chain's certified
    // block 4 is not it, so sync stops there for good.
    const raw = await fork.db.getBlockBytes(4n);
    const checkpoint = { height: 4n, hash: blockHash(decode(blockCodec, raw!).header) };
    const warnings: Warning[] = [];
    const hub = new MemoryNetworkHub();
    hub.join('real', { onGossip: () => 'ignore', ...chainServer(real) });
    const dataDir = mkdtempSync(join(tmpdir(), 'unc-held-conflict-node-'));
    dirs.push(dataDir);
    const node = await UncNode.start({
      dataDir,
      genesis: GENESIS,
      validatorSeed: dev.seed,
      rpcPort: 0,
      logger: warningsTo(warnings, 'node'),
      trustedCheckpoint: checkpoint,
      network: async (handlers) => hub.join('v', handlers),
    });
    running.add(node);
    const held = await until(
      'a warning that the fresh signer is held',
      () => warnings.find((w) => /fresh signer held/.test(w.msg)) ?? false,
      { timeoutMs: 60_000, intervalMs: 50 },
    );
    assert.ok(node.driver.holdingFreshSigner);
    assert.equal(node.chain.height, 3n, 'sync went past the conflict');
    assert.match(String(held.fields.why), /CONFLICTING CHAIN/);
    assert.doesNotMatch(String(held.fields.wayOut), /restart with --allow-fresh-signer/);
    assert.match(String(held.fields.wayOut), /trusted-checkpoint/);
  });
});
