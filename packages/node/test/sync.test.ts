import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  type Block,
  blockCodec,
  blockHash,
  certificateFromVotes,
  commitFromCertificate,
  decode,
  ed25519PublicKey,
  ed25519Verify,
  encode,
  envelopeFromBytes,
  signedTransactionCodec,
  signVote,
  toHex,
  txRootOf,
} from '@unc/core';
import { Chain } from '../src/chain.js';
import { systemClock } from '../src/clock.js';
import { BlockPreverifier } from '../src/consensus/block-preverify.js';
import { preverifySyncedBlock, SyncReactor } from '../src/consensus/sync-reactor.js';
import { devGenesisJson, devKey, devValidator } from '../src/dev.js';
import { silentLogger } from '../src/log.js';
import { type Libp2pNetwork, startNetwork } from '../src/p2p/libp2p.js';
import type { NetworkHandlers } from '../src/p2p/types.js';
import { ChainDb } from '../src/storage/db.js';
import {
  bestPeerHeight,
  chainServer,
  chainSyncTarget,
  isBehind,
  type SyncProgress,
  syncChain,
} from '../src/sync.js';
import { type SignatureCheck, type SignatureVerifier, VerifyPool } from '../src/verify-pool.js';

const HEIGHT = 20n;
const GENESIS = devGenesisJson({ time: new Date('2026-06-01T00:00:00Z') });

const dirs: string[] = [];
const dbs: ChainDb[] = [];
const nets: Libp2pNetwork[] = [];
after(async () => {
  await Promise.all(nets.map((n) => n.stop()));
  await Promise.all(dbs.map((d) => d.close()));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function openChain(genesis: unknown = GENESIS): Promise<Chain> {
  const dir = mkdtempSync(join(tmpdir(), 'unc-sync-test-'));
  dirs.push(dir);
  const db = await ChainDb.open(dir);
  dbs.push(db);
  return Chain.open(db, genesis, silentLogger);
}

/** Empty blocks 1…`height` on `chain`, each decided by the dev validator alone. */
async function grow(chain: Chain, height: bigint): Promise<void> {
  const v = devValidator();
  const key = { seed: v.seed, publicKey: ed25519PublicKey(v.seed) };
  for (let i = chain.height + 1n; i <= height; i++) {
    await chain.proposeAndCommit(
      [],
      chain.nextBlockTime(BigInt(Date.parse('2026-06-01T00:00:00Z')) + i * 1000n),
      key,
      () => false,
    );
  }
}

let seedCounter = 100;
async function net(chain: Chain, handlers: Partial<NetworkHandlers> = {}): Promise<Libp2pNetwork> {
  const n = await startNetwork({
    listen: ['/ip4/127.0.0.1/tcp/0'],
    nodeKey: new Uint8Array(32).fill(seedCounter++),
    chainId: chain.genesis.chainId,
    genesisHash: chain.genesisHash,
    requestTimeoutMs: 3000,
    maintenanceIntervalMs: 200,
    // No recovery, so scores can be compared exactly however slow the machine is.
    scoring: { recoveryPerSecond: 0 },
    logger: silentLogger,
    handlers: { onGossip: () => 'ignore', ...chainServer(chain), ...handlers },
  });
  nets.push(n);
  return n;
}

async function connect(a: Libp2pNetwork, b: Libp2pNetwork): Promise<void> {
  await a.dial(b.listenAddrs[0]!);
  // Generous: libp2p's dial and handshake on two busy cores can take over 10 s.
  const deadline = Date.now() + 30_000;
  while (!a.peers().some((p) => p.id === b.peerId && p.status !== null)) {
    if (Date.now() > deadline) throw new Error('no handshake in 30 s');
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * A block re-signed by the dev validator (the sole validator: its precommit is a quorum), as a
 * Byzantine validator set could: a header it changed still comes with a commit that verifies.
 */
function resigned(chain: Chain, b: Block): Block {
  const v = devValidator();
  const hash = blockHash(b.header);
  const vote = signVote(
    chain.genesis.chainId,
    { type: 'precommit', height: b.header.height, round: 0, blockHash: hash, validator: v.publicKey },
    v.seed,
  );
  return { ...b, commit: commitFromCertificate(certificateFromVotes([vote])) };
}

/** `n` transfers whose signatures are random bytes: well-formed, and every one forged. */
function forgedTransfers(chainId: string, n: number): Uint8Array[] {
  const from = devKey(3);
  return Array.from({ length: n }, (_, i) => {
    const signature = new Uint8Array(64);
    signature.fill(i % 251, 0, 32);
    signature.fill(7, 32);
    return encode(signedTransactionCodec, {
      tx: {
        chainId,
        signer: from.publicKey,
        nonce: BigInt(i),
        expiresAt: 500n,
        actions: [{ type: 'transfer', to: devKey(9).address, amount: 1n, memo: new Uint8Array(0) }],
        fee: 10_000_000n,
      },
      signature,
    });
  });
}

/** A pool with one "worker" that counts the checks it is handed (it checks them on this thread). */
class CountingVerifier implements SignatureVerifier {
  readonly threads = 1;
  checks = 0;
  async verify(checks: readonly SignatureCheck[]): Promise<boolean[]> {
    this.checks += checks.length;
    return checks.map((c) => ed25519Verify(c.publicKey, c.message, c.signature));
  }
  async close(): Promise<void> {}
}

describe('block sync', () => {
  let source: Chain;

  before(async () => {
    source = await openChain();
    const v = devValidator();
    const key = { seed: v.seed, publicKey: ed25519PublicKey(v.seed) };
    for (let i = 1n; i <= HEIGHT; i++) {
      await source.proposeAndCommit(
        [],
        source.nextBlockTime(BigInt(Date.parse('2026-06-01T00:00:00Z')) + i * 1000n),
        key,
        () => false,
      );
    }
    assert.equal(source.height, HEIGHT);
  });

  test('a fresh node syncs the whole chain from a peer, in order, with progress and an ETA', async () => {
    const server = await net(source);
    const fresh = await openChain();
    const client = await net(fresh);
    await connect(client, server);

    assert.equal(await isBehind(client, fresh.height, 5), true);
    assert.equal(await isBehind(client, HEIGHT - 3n, 5), false);
    assert.deepEqual(await bestPeerHeight(client), { peer: server.peerId, height: HEIGHT });

    const progress: SyncProgress[] = [];
    const result = await syncChain({
      network: client,
      chain: chainSyncTarget(fresh),
      onProgress: (p) => progress.push(p),
      batchSize: 6,
      parallel: 3,
      progressIntervalMs: 0,
    });
    assert.equal(result.height, HEIGHT);
    assert.equal(result.target, HEIGHT);
    assert.equal(result.applied, Number(HEIGHT));
    assert.deepEqual(result.excluded, []);
    assert.equal(fresh.height, HEIGHT);
    assert.equal(toHex(fresh.head.hash), toHex(source.head.hash));
    assert.equal(toHex(fresh.state.trie.root), toHex(source.state.trie.root));

    assert.ok(
      progress.length >= Number(HEIGHT),
      `one report per block at interval 0, got ${progress.length}`,
    );
    const heights = progress.map((p) => p.height);
    assert.deepEqual(
      heights,
      [...heights].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)),
      'heights only grow',
    );
    const last = progress.at(-1)!;
    assert.equal(last.height, HEIGHT);
    assert.equal(last.target, HEIGHT);
    assert.equal(last.etaSeconds, 0);
    assert.ok(last.blocksPerSecond > 0);
    assert.ok(progress.some((p) => p.height < HEIGHT && p.etaSeconds !== null && p.etaSeconds > 0));

    // Caught up: another call has nothing to do.
    const again = await syncChain({ network: client, chain: chainSyncTarget(fresh) });
    assert.equal(again.applied, 0);
    assert.equal(await isBehind(client, fresh.height, 0), false);
  });

  test("the next fetched block is handed over (prepare) before this one applies: its checks overlap this block's execution", async () => {
    const server = await net(source);
    const fresh = await openChain();
    const client = await net(fresh);
    await connect(client, server);
    const target = chainSyncTarget(fresh);
    const events: string[] = [];
    const heightOf = (encoded: Uint8Array) => decode(blockCodec, encoded).header.height;
    const result = await syncChain({
      network: client,
      chain: {
        height: target.height,
        applyBlock: async (encoded) => {
          events.push(`apply ${heightOf(encoded)}`);
          await target.applyBlock(encoded);
        },
        prepare: (following, current) =>
          events.push(`prepare ${heightOf(following)} after ${heightOf(current)}`),
      },
      batchSize: 4,
      parallel: 2,
    });
    assert.equal(result.height, HEIGHT);
    // Within each answer of 4 blocks, every block but the last names its successor first.
    for (let h = 1n; h <= HEIGHT; h++) {
      const applied = events.indexOf(`apply ${h}`);
      assert.ok(applied >= 0);
      if (h % 4n !== 0n && h < HEIGHT) assert.equal(events[applied - 1], `prepare ${h + 1n} after ${h}`);
    }
  });

  test('a peer serving a corrupted block is penalised and sync completes from another', async () => {
    const honest = await net(source);
    const served = new Map<string, number>();
    const liar = await net(source, {
      // Same status as the honest peer, but every block it serves has a forged state root.
      blocks: async (from, to) => {
        served.set('liar', (served.get('liar') ?? 0) + 1);
        const blocks = await chainServer(source).blocks(from, to);
        return blocks.map((raw) => {
          const b = decode(blockCodec, raw);
          return encode(blockCodec, {
            ...b,
            header: { ...b.header, stateRoot: new Uint8Array(32).fill(0xee) },
          });
        });
      },
    });
    const fresh = await openChain();
    const client = await net(fresh);
    await connect(client, honest);
    await connect(client, liar);

    const result = await syncChain({
      network: client,
      chain: chainSyncTarget(fresh),
      batchSize: 4,
      parallel: 2,
    });
    assert.ok((served.get('liar') ?? 0) > 0, 'the liar was asked for a range');
    assert.equal(result.height, HEIGHT);
    assert.equal(result.target, HEIGHT);
    assert.deepEqual(result.excluded, [liar.peerId]);
    assert.equal(toHex(fresh.head.hash), toHex(source.head.hash));
    const liarScore = client.peers().find((p) => p.id === liar.peerId)!.score;
    assert.ok(liarScore <= -20, `liar score ${liarScore}`);
    assert.ok(client.peers().find((p) => p.id === honest.peerId)!.score > liarScore);
  });

  test("the sync reactor abandons the next block's pre-check when the block before it fails (a bad peer's answer costs no more)", async () => {
    const liar = await net(source, {
      blocks: async (from, to) => {
        const blocks = await chainServer(source).blocks(from, to);
        return blocks.map((raw) => {
          const b = decode(blockCodec, raw);
          // Signed by the validators (a Byzantine quorum), so its commit verifies and its
          // signatures are pre-checked: only executing it shows it wrong.
          return encode(
            blockCodec,
            resigned(source, { ...b, header: { ...b.header, stateRoot: new Uint8Array(32).fill(0xee) } }),
          );
        });
      },
    });
    const fresh = await openChain();
    const client = await net(fresh);
    await connect(client, liar);
    const started: { height: bigint; abandoned: (() => boolean) | undefined }[] = [];
    const reactor = new SyncReactor({
      clock: systemClock,
      chain: fresh,
      logger: silentLogger,
      onSynced: () => {},
      preverify: async (block, _parent, abandoned) => {
        started.push({ height: block.header.height, abandoned });
        return null;
      },
    });
    await reactor.catchUp(client);
    assert.equal(fresh.height, 0n);
    // Block 1 failed; block 2's pre-check had started while it executed, and was told to stop.
    assert.deepEqual(
      started.map((s) => s.height),
      [1n, 2n],
    );
    assert.equal(started[1]!.abandoned?.(), true);
  });

  for (const attack of [
    {
      name: 'a commit that does not verify (the header names the forged body)',
      tamper: (b: Block, txs: Uint8Array[]): Block => ({
        ...b,
        header: { ...b.header, txRoot: txRootOf(txs.map((raw) => envelopeFromBytes(raw))) },
        txs,
      }),
    },
    {
      name: 'a genuine header and commit with a forged body',
      tamper: (b: Block, txs: Uint8Array[]): Block => ({ ...b, txs }),
    },
  ])
    test(`a synced block with ${attack.name} is dropped with its peer before any of its transaction signatures is checked`, async () => {
      const liar = await net(source, {
        blocks: async (from) => {
          // One block per answer: the first is the one that must cost nothing.
          const blocks = await chainServer(source).blocks(from, from);
          return blocks.map((raw) =>
            encode(
              blockCodec,
              attack.tamper(decode(blockCodec, raw), forgedTransfers(source.genesis.chainId, 300)),
            ),
          );
        },
      });
      const fresh = await openChain();
      const client = await net(fresh);
      await connect(client, liar);
      const pool = new CountingVerifier();
      const preverifier = new BlockPreverifier(pool, { shareWithCaller: true });
      let preverified = 0;
      const reactor = new SyncReactor({
        clock: systemClock,
        chain: fresh,
        logger: silentLogger,
        onSynced: () => {},
        preverify: (block, parent, abandoned) => {
          preverified++;
          return preverifySyncedBlock(preverifier, fresh, block, parent, abandoned, () => false);
        },
      });
      await reactor.catchUp(client);
      assert.equal(fresh.height, 0n, 'nothing applied');
      assert.ok(client.peers().find((p) => p.id === liar.peerId)!.score < 0, 'the liar is penalised');
      // The pool's checks are counted; this thread's share is taken only beside a chunk sent to
      // the pool, so zero here means zero checks anywhere.
      assert.equal(pool.checks, 0, `${pool.checks} forged signatures checked for a block nobody vouched for`);
      if (attack.name.startsWith('a commit')) assert.equal(preverified, 0, 'no pre-check started');
    });

  test("the look-ahead never pre-checks an epoch's first block before the block that computes its validator set has run", async () => {
    // Before the first epoch boundary the state stores no set and answers the genesis set for
    // any height: a commit by the genesis validators for block 25 (epoch 1) "verified" while
    // block 24 (which computes epoch 1's set, possibly another one) had not run, and bought a
    // pre-check of block 25's signatures on a set that may not be the one that signs it.
    const genesis = devGenesisJson({ time: new Date('2026-06-01T00:00:00Z'), epochBlocks: 24 });
    const source24 = await openChain(genesis);
    await grow(source24, 26n);
    const server = await net(source24);
    const fresh = await openChain(genesis);
    const client = await net(fresh);
    await connect(client, server);
    const started: { height: bigint; parent: bigint | null; tip: bigint }[] = [];
    const reactor = new SyncReactor({
      clock: systemClock,
      chain: fresh,
      logger: silentLogger,
      onSynced: () => {},
      preverify: async (block, parent) => {
        started.push({
          height: block.header.height,
          parent: parent?.header.height ?? null,
          tip: fresh.tipHeight,
        });
        return null;
      },
    });
    await reactor.catchUp(client);
    assert.equal(fresh.height, 26n);
    const first = started.filter((s) => s.height === 25n);
    assert.deepEqual(
      first,
      [{ height: 25n, parent: null, tip: 24n }],
      JSON.stringify(first, (_, v) => `${v}`),
    );
    // Within an epoch the look-ahead still runs (the head state knows the set).
    assert.ok(started.some((s) => s.height === 10n && s.parent === 9n));
    assert.ok(started.some((s) => s.height === 26n && s.parent === 25n));
  });

  test("a look-ahead pre-check that did not go through (a wrong guess of the head) is no verdict: the block's rest is checked again once it is current", async () => {
    // The look-ahead gathers a block's answers on the state before the block before it ran; a
    // chip that block registers, or an epoch it opens, makes other keys and challenges, so a
    // check can fail there that passes on the real head. Before, that miss stood as the block's
    // first failure and the rest of the block was left to execution, one signature at a time.
    const server = await net(source);
    const fresh = await openChain();
    const client = await net(fresh);
    await connect(client, server);
    const calls: { height: bigint; parent: bigint | null; tip: bigint }[] = [];
    const reactor = new SyncReactor({
      clock: systemClock,
      chain: fresh,
      logger: silentLogger,
      onSynced: () => {},
      preverify: async (block, parent) => {
        calls.push({
          height: block.header.height,
          parent: parent?.header.height ?? null,
          tip: fresh.tipHeight,
        });
        // Odd heights' look-aheads "miss" (as a wrong guess would), even heights' go through.
        return {
          envelopes: block.txs.map((raw) => envelopeFromBytes(raw)),
          isSignatureVerified: () => false,
          isEd25519Verified: () => false,
          complete: parent === undefined || block.header.height % 2n === 0n,
        };
      },
    });
    await reactor.catchUp(client);
    assert.equal(fresh.height, source.height);
    const looked = calls.filter((c) => c.parent !== null);
    assert.ok(
      looked.length >= 4,
      JSON.stringify(calls, (_, v) => `${v}`),
    );
    for (const ahead of looked) {
      const again = calls.filter((c) => c.height === ahead.height && c.parent === null);
      if (ahead.height % 2n === 1n)
        assert.deepEqual(
          again.map((c) => c.tip),
          [ahead.height - 1n],
          `block ${ahead.height}: checked again on its real head, once`,
        );
      else
        assert.equal(
          again.length,
          0,
          `block ${ahead.height}: a look-ahead that went through is not repeated`,
        );
    }
  });

  test('a look-ahead that found a forged signature is checked again once current and the block still fails there: nothing applied past it, its peer penalised', async () => {
    // "No verdict" from a look-ahead must not become a pass: block 2 (a Byzantine quorum signed
    // its header, which names a body of forged transfers) is pre-checked while block 1 executes,
    // fails there, is checked again on its real head, and is refused by execution.
    const liar = await net(source, {
      blocks: async (from, to) => {
        const blocks = await chainServer(source).blocks(from, to);
        return blocks.map((raw) => {
          const b = decode(blockCodec, raw);
          if (b.header.height !== 2n) return raw;
          const txs = forgedTransfers(source.genesis.chainId, 40);
          const txRoot = txRootOf(txs.map((t) => envelopeFromBytes(t)));
          return encode(blockCodec, resigned(source, { ...b, header: { ...b.header, txRoot }, txs }));
        });
      },
    });
    const fresh = await openChain();
    const client = await net(fresh);
    await connect(client, liar);
    const pool = new VerifyPool({ threads: 1 });
    try {
      const preverifier = new BlockPreverifier(pool, { shareWithCaller: true });
      const calls: { height: bigint; ahead: boolean; complete: boolean | undefined }[] = [];
      const reactor = new SyncReactor({
        clock: systemClock,
        chain: fresh,
        logger: silentLogger,
        onSynced: () => {},
        preverify: async (block, parent, abandoned, awaited) => {
          const r = await preverifySyncedBlock(
            preverifier,
            fresh,
            block,
            parent,
            abandoned,
            () => false,
            awaited,
          );
          calls.push({ height: block.header.height, ahead: parent !== undefined, complete: r?.complete });
          return r;
        },
      });
      await reactor.catchUp(client);
      assert.equal(fresh.height, 1n, 'block 2 was not applied');
      assert.ok(client.peers().find((p) => p.id === liar.peerId)!.score < 0, 'its peer is penalised');
      assert.deepEqual(
        calls.filter((c) => c.height === 2n),
        [
          { height: 2n, ahead: true, complete: false },
          { height: 2n, ahead: false, complete: false },
        ],
      );
    } finally {
      await pool.close();
    }
  });

  test('a look-ahead pre-check is marked awaited only once its block is applied (the calling thread helps the workers only then)', async () => {
    const server = await net(source);
    const fresh = await openChain();
    const client = await net(fresh);
    await connect(client, server);
    const looks: { height: bigint; atStart: boolean; awaited: () => boolean }[] = [];
    const reactor = new SyncReactor({
      clock: systemClock,
      chain: fresh,
      logger: silentLogger,
      onSynced: () => {},
      preverify: async (block, parent, _abandoned, awaited) => {
        if (parent) {
          assert.ok(awaited, 'a look-ahead is told when its block waits on it');
          looks.push({
            height: block.header.height,
            atStart: awaited(),
            awaited,
          });
        }
        return null;
      },
    });
    await reactor.catchUp(client);
    assert.equal(fresh.height, source.height);
    assert.ok(looks.length >= 4, `${looks.length} look-aheads`);
    for (const look of looks)
      assert.equal(look.atStart, false, `block ${look.height}: not awaited when started`);
    const applied = looks.filter((l) => l.height <= fresh.tipHeight);
    assert.ok(
      applied.some((l) => l.awaited()),
      'the look-aheads of applied blocks were awaited',
    );
  });

  test("each synced block's commit signatures are verified once, though the commit is checked before its pre-check and again when it is applied", async () => {
    const server = await net(source);
    const fresh = await openChain();
    const client = await net(fresh);
    await connect(client, server);
    let verified = 0;
    const reactor = new SyncReactor({
      clock: systemClock,
      chain: fresh,
      logger: silentLogger,
      onSynced: () => {},
      preverify: async () => null,
      verifyCommitSignature: (publicKey, message, signature) => {
        verified++;
        return ed25519Verify(publicKey, message, signature);
      },
    });
    await reactor.catchUp(client);
    assert.equal(fresh.height, HEIGHT);
    // One precommit per block (the dev validator alone), verified once: without the memo of
    // passes the commit's second check verified every validator's signature again on this
    // thread (about 25 ms a block with 100 validators, measured on this machine).
    assert.equal(verified, Number(HEIGHT));
  });

  test('a peer that claims blocks it does not serve is dropped; sync stops at what others can give', async () => {
    const honest = await net(source);
    const boaster = await net(source, {
      status: () => ({ ...chainServer(source).status(), height: HEIGHT + 1000n }),
    });
    const fresh = await openChain();
    const client = await net(fresh);
    await connect(client, honest);
    await connect(client, boaster);

    const result = await syncChain({ network: client, chain: chainSyncTarget(fresh), batchSize: 8 });
    assert.equal(result.height, HEIGHT);
    assert.equal(result.target, HEIGHT, 'the boaster no longer sets the target');
    assert.deepEqual(result.excluded, [boaster.peerId]);
    assert.ok(client.peers().find((p) => p.id === boaster.peerId)!.score < 0);
  });

  test('without peers, sync returns at once and nobody is ahead', async () => {
    const fresh = await openChain();
    const lonely = await net(fresh);
    const result = await syncChain({ network: lonely, chain: chainSyncTarget(fresh) });
    assert.deepEqual(result, { height: 0n, target: 0n, applied: 0, excluded: [], slower: [], disproved: [] });
    assert.equal(await isBehind(lonely, 0n, 0), false);
    assert.equal(await bestPeerHeight(lonely), null);
  });
});
