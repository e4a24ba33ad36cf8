// Block sync against a long-range history (attack review): keys of validators whose bonds were
// released long ago still sign valid commits at old heights, so a history they build from there
// verifies block by block. A node syncing from genesis took whichever history the peer it asked
// first served, and blamed the honest peers whose blocks then did not apply; a certified block that
// did not extend its head was "a bad block" like any other. The dev chain has one validator: two
// histories it signs from the same genesis stand for the real chain and the one old keys built.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { blockCodec, blockHash, decode } from '@unc/core';
import type { StatusJson } from '@unc/sdk';
import { rpcMethods } from '@unc/sdk/schema';
import * as v from 'valibot';
import { createApi } from '../src/api.js';
import type { Chain } from '../src/chain.js';
import { type Clock, systemClock } from '../src/clock.js';
import { SyncReactor } from '../src/consensus/sync-reactor.js';
import { type Logger, silentLogger } from '../src/log.js';
import { fakeNetwork, grow, newLog, peerOf, recordingLogger, tempChains } from './sync-fakes.js';

const chains = tempChains('unc-aud-sync-');
after(() => chains.close());

/** Empty blocks up to `height`, each 500 ms later than `grow` makes them: another history. */
const growFork = (chain: Chain, height: bigint) => grow(chain, height, 500n);

async function hashAt(chain: Chain, height: bigint): Promise<Uint8Array> {
  const raw = await chain.db.getBlockBytes(height);
  return blockHash(decode(blockCodec, raw!).header);
}

/** What the code under test may lack (old code): read and set without compile errors. */
type CheckpointChain = {
  trustedCheckpoint?: { height: bigint; hash: Uint8Array } | null;
  trustCheckpoint?: (cp: { height: bigint; hash: Uint8Array }) => Promise<void>;
};
const conflictOf = (r: SyncReactor) => (r as unknown as { conflict?: unknown }).conflict ?? null;

describe('block sync against a long-range history', () => {
  let real: Chain;
  let fork: Chain;
  const FORK_AT = 5n;
  const CHECKPOINT = 10n;

  before(async () => {
    real = await chains.open();
    fork = await chains.open();
    await grow(real, 20n);
    await grow(fork, FORK_AT);
    await growFork(fork, 30n);
  });

  const reactor = (chain: Chain, logger: Logger = silentLogger) =>
    new SyncReactor({ clock: systemClock, chain, logger, onSynced: () => {} });

  test('with a trusted checkpoint, a node syncing from genesis never commits a block at its height but the trusted one', async () => {
    const fresh = await chains.open();
    const cp = { height: CHECKPOINT, hash: await hashAt(real, CHECKPOINT) };
    (fresh as unknown as CheckpointChain).trustedCheckpoint = cp;
    const log = newLog();
    // Only the long-range peer answers (an eclipsed node, or the first to be asked).
    const r = reactor(fresh);
    await r.catchUp(fakeNetwork(real, { oldKeys: peerOf(fork) }, log));
    assert.ok(fresh.height < CHECKPOINT, `synced the other history to ${fresh.height}, past the checkpoint`);
    // Its certified block at the checkpoint's height is not the checkpoint: the node, on that
    // history below it, stops there (it must be wiped) rather than blaming the peer and going on.
    assert.notEqual(conflictOf(r), null);
  });

  test('a node that followed another history below the checkpoint stops syncing when the checkpoint arrives, and says so', async () => {
    const fresh = await chains.open();
    (fresh as unknown as CheckpointChain).trustedCheckpoint = {
      height: CHECKPOINT,
      hash: await hashAt(real, CHECKPOINT),
    };
    await reactor(fresh).catchUp(fakeNetwork(real, { oldKeys: peerOf(fork) }, newLog()));
    const at = fresh.height;
    const log = newLog();
    const lines: string[] = [];
    const r = reactor(fresh, recordingLogger(lines));
    await r.catchUp(fakeNetwork(real, { honest: peerOf(real) }, log));
    assert.equal(fresh.height, at);
    assert.notEqual(conflictOf(r), null, 'no conflict reported');
    assert.deepEqual(log.penalized, [], 'the honest peer serving the checkpoint was blamed');
    assert.ok(lines.some((l) => l.startsWith('error CONFLICTING CHAIN')));
  });

  test("a block the head's validators certified that does not extend the head stops sync (two certified histories), blaming no one", async () => {
    // On the real chain at 10; a peer serves its history from 11: certified by the same set.
    const node = await chains.open();
    await reactor(node).catchUp(fakeNetwork(real, { honest: peerOf(real) }, newLog()));
    assert.equal(node.height, 20n);
    const behind = await chains.open();
    await grow(behind, CHECKPOINT);
    const log = newLog();
    const r = reactor(behind);
    await r.catchUp(fakeNetwork(real, { oldKeys: peerOf(fork) }, log));
    assert.equal(behind.height, CHECKPOINT);
    assert.notEqual(conflictOf(r), null, 'a certified conflicting block was taken for a bad block');
    // Stopped for good: a later sync, even from the honest peer, does not run.
    await r.catchUp(fakeNetwork(real, { honest: peerOf(real) }, log));
    assert.equal(behind.height, CHECKPOINT);
  });

  test("a wrong checkpoint (or one above the network's head) stops sync at its height, blaming no honest peer (review)", async () => {
    // The operator typed the checkpoint wrong, or took it from a bad source: the block the head's
    // validators certified at its height is not it. Before, the honest peer serving that block was
    // penalised and set aside for ten minutes as if it had served a bad block, at every sync.
    const node = await chains.open();
    await grow(node, CHECKPOINT - 1n);
    (node as unknown as CheckpointChain).trustedCheckpoint = {
      height: CHECKPOINT,
      hash: new Uint8Array(32).fill(0xee),
    };
    const log = newLog();
    const lines: string[] = [];
    const r = reactor(node, recordingLogger(lines));
    await r.catchUp(fakeNetwork(real, { honest: peerOf(real) }, log));
    assert.equal(node.height, CHECKPOINT - 1n);
    assert.deepEqual(log.penalized, [], "the honest peer was blamed for the operator's checkpoint");
    assert.notEqual(conflictOf(r), null, 'no conflict reported');
    assert.ok(lines.some((l) => l.startsWith('error CONFLICTING CHAIN')));
  });

  test('with a trusted checkpoint ahead, a certified block off the head sets its peer aside: the checkpoint decides, sync goes on (review)', async () => {
    // Old keys (a set long unbonded) sign a block off the real chain at no cost: with the
    // checkpoint ahead, stopping for good let them halt every node syncing through their heights,
    // at every restart; the checkpoint tells the histories apart once reached.
    const node = await chains.open();
    await grow(node, FORK_AT + 1n);
    (node as unknown as CheckpointChain).trustedCheckpoint = {
      height: CHECKPOINT,
      hash: await hashAt(real, CHECKPOINT),
    };
    const log = newLog();
    const r = reactor(node);
    await r.catchUp(fakeNetwork(real, { oldKeys: peerOf(fork) }, log));
    assert.equal(node.height, FORK_AT + 1n);
    assert.equal(conflictOf(r), null, 'sync stopped for good though the checkpoint ahead decides');
    assert.deepEqual(log.penalized, []);
    await r.catchUp(fakeNetwork(real, { honest: peerOf(real) }, log));
    assert.equal(node.height, 20n);
  });

  test('a chain store holding another block at the checkpoint height is refused at start', async () => {
    const other = await chains.open();
    await grow(other, FORK_AT);
    await growFork(other, 12n);
    const trust = (other as unknown as CheckpointChain).trustCheckpoint;
    assert.equal(typeof trust, 'function', 'no way to check a chain store against a checkpoint');
    await assert.rejects(
      trust!.call(other, { height: CHECKPOINT, hash: await hashAt(real, CHECKPOINT) }),
      /trusted checkpoint/,
    );
    await trust!.call(real, { height: CHECKPOINT, hash: await hashAt(real, CHECKPOINT) });
  });

  test('a sync spanning more than the unbonding period with no checkpoint ahead warns the operator', async () => {
    const fresh = await chains.open();
    const epochBlocks = (await import('@unc/core')).getPociParams(fresh.tipState).epochBlocks;
    const far = await chains.open();
    await grow(far, 3n * epochBlocks + 2n);
    const lines: string[] = [];
    await reactor(fresh, recordingLogger(lines)).catchUp(fakeNetwork(far, { honest: peerOf(far) }, newLog()));
    assert.ok(
      lines.some((l) => l.startsWith('warn') && l.includes('unbonding period')),
      'no weak-subjectivity warning',
    );
  });

  /** A node on the real chain at CHECKPOINT whose sync from the long-range peer stopped for good. */
  async function stoppedReactor(lines: string[], clock: Clock = systemClock) {
    const behind = await chains.open();
    await grow(behind, CHECKPOINT);
    const log = newLog();
    const r = new SyncReactor({ clock, chain: behind, logger: recordingLogger(lines), onSynced: () => {} });
    await r.catchUp(fakeNetwork(real, { oldKeys: peerOf(fork) }, log));
    return { behind, r, log };
  }

  test('unc_status reports that block sync stopped: height, why, both hashes, the peer and the next step (review)', async () => {
    const { behind, r } = await stoppedReactor([]);
    const driver = {
      syncProgress: null,
      get syncStopped() {
        return conflictOf(r);
      },
    };
    const api = createApi({
      chain: behind,
      mempool: { size: 0, bytes: 0, has: () => false, dropped: () => null },
      validator: null,
      network: null,
      driver,
      metrics: { render: () => '' },
      logger: silentLogger,
      submit: () => ({ replaced: false }),
      submitMany: async () => [],
      recentRejection: () => null,
      watchTx: () => () => {},
      watchBlocks: () => () => {},
    } as never);
    const status = (await api.methods.unc_status!([], { transport: 'http' })) as StatusJson;
    // Before, a stopped node answered like a healthy one at rest: monitoring saw nothing.
    assert.ok(status.syncStopped, 'unc_status does not say that sync stopped');
    assert.equal(status.syncStopped.height, Number(CHECKPOINT + 1n));
    assert.equal(status.syncStopped.ours, Buffer.from(await hashAt(behind, CHECKPOINT)).toString('hex'));
    assert.equal(status.syncStopped.theirs, Buffer.from(await hashAt(fork, CHECKPOINT + 1n)).toString('hex'));
    assert.equal(status.syncStopped.peer, 'oldKeys');
    assert.match(status.syncStopped.nextStep, /--trusted-checkpoint/);
    assert.match(status.syncStopped.reason, /certified/);
    // The answer has the shape the SDK reads (strict schema: no undeclared field).
    v.parse(rpcMethods.unc_status.result.schema, JSON.parse(JSON.stringify(status)));
  });

  test('repeated sync attempts after the stop log it once, then a reminder at most every few minutes (review)', async () => {
    let offset = 0;
    const clock: Clock = { now: () => systemClock.now() + offset, schedule: systemClock.schedule };
    const lines: string[] = [];
    const { r } = await stoppedReactor(lines, clock);
    const about = (l: string) => l.includes('CONFLICTING CHAIN') || l.includes('sync stopped');
    assert.equal(lines.filter((l) => l.startsWith('error CONFLICTING CHAIN')).length, 1);
    // A stall check asks for a sync every few seconds: each used to log the stop again.
    const net = fakeNetwork(real, { honest: peerOf(real) }, newLog());
    for (let i = 0; i < 20; i++) {
      offset += 5_000;
      await r.catchUp(net);
    }
    assert.equal(lines.filter(about).length, 1, `logged again:\n${lines.filter(about).join('\n')}`);
    offset += 5 * 60_000;
    await r.catchUp(net);
    await r.catchUp(net);
    assert.equal(lines.filter(about).length, 2, 'no reminder after five minutes');
  });
});
