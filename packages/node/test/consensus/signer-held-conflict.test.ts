/**
 * A held fresh signer (no privval.json) on a node whose block sync stopped with CONFLICTING CHAIN
 * (sync-reactor.ts `refuseConflict`): no peer will ever bring its head up, so it stays held until
 * a restart. Its warning said "peers claim heights above the head" and pointed to
 * --allow-fresh-signer, which would have it sign on a history the network may not follow; it must
 * name the conflict and the way out of it instead.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { blockCodec, blockHash, decode, ed25519PublicKey } from '@unc/core';
import { until } from '@unc/test-utils';
import type { Chain } from '../../src/chain.js';
import { devValidator } from '../../src/dev.js';
import type { Logger } from '../../src/log.js';
import { UncNode } from '../../src/node.js';
import { chainServer } from '../../src/sync.js';
import { GENESIS, grow, tempChains } from '../sync-fakes.js';
import { MemoryNetworkHub } from './memory-network.js';

const chains = tempChains('unc-held-conflict-');
const dirs: string[] = [];
const running = new Set<UncNode>();
after(async () => {
  for (const n of running) await n.stop();
  await chains.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Empty blocks up to `height`, each 500 ms later than `grow` makes them: another history. */
async function growFork(chain: Chain, height: bigint): Promise<void> {
  const v = devValidator();
  const key = { seed: v.seed, publicKey: ed25519PublicKey(v.seed) };
  for (let i = chain.height + 1n; i <= height; i++)
    await chain.proposeAndCommit(
      [],
      chain.nextBlockTime(BigInt(Date.parse('2026-06-01T00:00:00Z')) + i * 1000n + 500n),
      key,
      () => false,
    );
}

test('a held fresh signer stopped by CONFLICTING CHAIN says so, and not --allow-fresh-signer', async () => {
  const real = await chains.open();
  const fork = await chains.open();
  await grow(real, 8n);
  await grow(fork, 2n);
  await growFork(fork, 8n);
  // The operator's checkpoint names the other history's block 4: the real chain's certified block
  // 4 is not it, so sync stops there for good.
  const raw = await fork.db.getBlockBytes(4n);
  const checkpoint = { height: 4n, hash: blockHash(decode(blockCodec, raw!).header) };

  const warnings: { msg: string; fields: Record<string, unknown> }[] = [];
  const capture = (component: string): Logger => ({
    component,
    level: 'debug',
    debug: () => {},
    info: () => {},
    warn: (msg, fields) => {
      warnings.push({ msg, fields: { ...(fields ?? {}) } });
    },
    error: () => {},
    child: (c) => capture(`${component}.${c}`),
  });
  const hub = new MemoryNetworkHub();
  hub.join('real', { onGossip: () => 'ignore', ...chainServer(real) });
  const dataDir = mkdtempSync(join(tmpdir(), 'unc-held-conflict-node-'));
  dirs.push(dataDir);
  const node = await UncNode.start({
    dataDir,
    genesis: GENESIS,
    validatorSeed: devValidator().seed,
    rpcPort: 0,
    logger: capture('node'),
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
