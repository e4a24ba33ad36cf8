/**
 * The driver's side of validators' peer bindings (consensus/peer-binding.ts): which deliveries it
 * takes, and which it drops before any signature check.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { encode } from '@unc/core';
import { until as waitUntil } from '@unc/test-utils';
import { peerBindingCodec, signPeerBinding } from '../../src/consensus/peer-binding.js';
import { devGenesisJson, devValidatorKey } from '../../src/dev.js';
import { silentLogger } from '../../src/log.js';
import { UncNode } from '../../src/node.js';
import type { NetworkHandlers } from '../../src/p2p/types.js';
import { MemoryNetworkHub } from './memory-network.js';

const dirs: string[] = [];
const running = new Set<UncNode>();
after(async () => {
  for (const n of running) await n.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const validators = [0, 1, 2, 3].map((i) => devValidatorKey(i));
const genesis = devGenesisJson({
  blockTimeMs: 150,
  validators: validators.map((v, i) => ({ publicKey: v.publicKey, name: `v${i}` })),
});

const bindingOf = (i: number, peerId: string) =>
  encode(
    peerBindingCodec,
    signPeerBinding('unc-dev-1', validators[i]!.publicKey, validators[i]!.seed, peerId),
  );

test('a binding is taken only from the peer it names: replayed or made-up ones cost no signature check', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-binding-test-'));
  dirs.push(dir);
  const hub = new MemoryNetworkHub();
  const node = await UncNode.start({
    dataDir: dir,
    genesis,
    rpcPort: 0,
    logger: silentLogger,
    network: async (handlers) => hub.join('n0', handlers),
  });
  running.add(node);
  await waitUntil('the driver to run', () => node.driver.position.height >= 1n, {
    timeoutMs: 60_000,
    intervalMs: 25,
  });
  const { onGossip } = node.driver.handlers();
  // A peer replays v1's genuine binding of v1's node, and floods bindings v2 signed for peer ids
  // that are not its own: none is taken (before: each was a signature check, and taken).
  assert.equal(await onGossip('validator-peer', bindingOf(1, 'node-of-v1'), 'relay'), 'ignore');
  for (let i = 0; i < 20; i++)
    assert.equal(await onGossip('validator-peer', bindingOf(2, `made-up-${i}`), 'relay'), 'ignore');
  assert.equal(node.driver.livenessStats.bindings, 0);
  // From the peer it names, the same binding is taken, once.
  assert.equal(await onGossip('validator-peer', bindingOf(1, 'node-of-v1'), 'node-of-v1'), 'ignore');
  assert.equal(await onGossip('validator-peer', bindingOf(1, 'node-of-v1'), 'node-of-v1'), 'ignore');
  assert.equal(node.driver.livenessStats.bindings, 1);
});

test('a validator bound to two peers, one connected before the node started, is not cut off when only the other closes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-binding-test-'));
  dirs.push(dir);
  const hub = new MemoryNetworkHub();
  // Silent peers that answer a status request as the node itself would (none is ahead).
  let started: UncNode | null = null;
  const quiet: NetworkHandlers = {
    onGossip: () => 'ignore',
    status: () => {
      if (!started) throw new Error('not yet');
      return started.driver.status();
    },
    blocks: async () => [],
  };
  // v1's node and its sentry are connected before the node (and its driver) starts.
  hub.join('node-of-v1', quiet);
  hub.join('sentry-of-v1', quiet);
  const node = await UncNode.start({
    dataDir: dir,
    genesis,
    rpcPort: 0,
    logger: silentLogger,
    network: async (handlers) => hub.join('n0', handlers),
  });
  running.add(node);
  started = node;
  await waitUntil('the driver to run', () => node.driver.position.height >= 1n, {
    timeoutMs: 60_000,
    intervalMs: 25,
  });
  const { onGossip } = node.driver.handlers();
  await onGossip('validator-peer', bindingOf(1, 'node-of-v1'), 'node-of-v1');
  await onGossip('validator-peer', bindingOf(1, 'sentry-of-v1'), 'sentry-of-v1');
  assert.equal(node.driver.livenessStats.bindings, 2);
  // The sentry goes: v1's node is still connected (before: it was never recorded, so v1 was cut off).
  hub.cut('sentry-of-v1');
  assert.equal(node.driver.livenessStats.cutOff, 0);
  // Its node goes too: now it is cut off.
  hub.cut('node-of-v1');
  assert.equal(node.driver.livenessStats.cutOff, 1);
});
