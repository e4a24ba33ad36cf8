/**
 * A node behind its peers (they decided heights it has not committed) answers refusals that depend
 * on its stale state with "busy, retry" (-32005 BUSY with retryAfterMs), so the client does not
 * give the transaction up; refusals no later state can change stay final. "Behind" is believed
 * only from votes signed by validators holding more than a third of the power, never fewer.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { encode, envelopeFromSigned, fromHex, parseUnc, signTransaction, signVote, toHex } from '@unc/core';
import { transferAction } from '@unc/sdk';
import { until as waitUntil } from '@unc/test-utils';
import { txBatchCodec, voteMessageCodec } from '../../src/consensus/wire.js';
import { devKey } from '../../src/dev.js';
import type { UncNode } from '../../src/node.js';
import { MemoryNetworkHub } from './memory-network.js';
import { fourValidatorGenesis, TestNodes, validators } from './test-nodes.js';

const nodes = new TestNodes();
after(() => nodes.stopAll());

/** A transfer by dev key `k` at `nonce`, on `chainId`. */
function transfer(k: number, nonce: bigint, chainId = 'unc-dev-1'): string {
  const payer = devKey(k);
  const body = {
    chainId,
    signer: payer.publicKey,
    nonce,
    expiresAt: 1_000n,
    fee: parseUnc('1'),
    actions: [transferAction('unc1vystcnlgdeut2u2v57a0lacv4url68zepr0t34', parseUnc('1'))],
  };
  return toHex(envelopeFromSigned(signTransaction(body, payer.seed)).bytes);
}

/** A precommit by validator `i` at `height`, as gossip carries it. */
function precommit(i: number, height: bigint): Uint8Array {
  const v = validators[i]!;
  return encode(voteMessageCodec, {
    vote: signVote(
      'unc-dev-1',
      { type: 'precommit', height, round: 0, blockHash: new Uint8Array(32).fill(7), validator: v.publicKey },
      v.seed,
    ),
    sentAt: 1n,
  });
}

async function rpc(node: UncNode, method: string, params: unknown) {
  const res = await fetch(node.rpcUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  });
  return (await res.json()) as {
    result?: unknown;
    error?: { code: number; message: string; data?: Record<string, unknown> };
  };
}

/** A full node of the four-validator chain, alone at height 0 (nobody to decide height 1 with). */
async function nodeAtZero(prefix: string): Promise<UncNode> {
  const hub = new MemoryNetworkHub();
  const node = await nodes.start(hub, fourValidatorGenesis(200), prefix, { fullNode: true });
  await waitUntil('the driver to run height 1', () => node.driver.position.height === 1n, {
    timeoutMs: 60_000,
    intervalMs: 25,
  });
  return node;
}

test('votes at height 5 by validators with over a third of the power: a nonce too far ahead or a balance not credited yet gets BUSY with retryAfterMs; final refusals stay final', async () => {
  const node = await nodeAtZero('unc-behind-');
  const gossip = node.driver.handlers().onGossip;
  // Before: NONCE_GAP, a final refusal from a node whose state is five blocks old.
  for (const i of [1, 2]) await gossip('vote', precommit(i, 5n), 'relay');
  assert.equal(node.chain.tipHeight, 0n);

  const one = await rpc(node, 'unc_sendTransaction', [transfer(1, 100n)]);
  assert.equal(one.error?.code, -32005, JSON.stringify(one));
  assert.equal(one.error?.data?.reason, 'BUSY');
  assert.equal(one.error?.data?.refusal, 'NONCE_GAP');
  assert.equal(one.error?.data?.syncing, true);
  assert.ok(Number(one.error?.data?.retryAfterMs) >= 250);

  const many = await rpc(node, 'unc_sendTransactions', [
    [
      transfer(1, 101n), // NONCE_GAP on stale state: BUSY
      transfer(90, 0n), // an account the blocks this node lacks may fund: BUSY
      transfer(1, 0n, 'unc-other'), // WRONG_CHAIN: final whatever the state
      `${transfer(2, 0n).slice(0, -2)}00`, // a signature that does not verify: final
    ],
  ]);
  const results = many.result as { hash?: string; error?: { reason: string; retryAfterMs?: number } }[];
  assert.equal(results[0]!.error?.reason, 'BUSY');
  assert.ok(Number(results[0]!.error?.retryAfterMs) >= 250);
  assert.equal(results[1]!.error?.reason, 'BUSY');
  assert.equal(results[2]!.error?.reason, 'WRONG_CHAIN');
  assert.equal(results[3]!.error?.reason, 'BAD_SIGNATURE');
  assert.equal(results[3]!.error?.retryAfterMs, undefined);
  // Gossip refused so is no fault of the peer that relayed it: ignored, not rejected.
  const batch = encode(txBatchCodec, [fromHex(transfer(1, 102n))]);
  assert.equal(await gossip('tx', batch, 'relay'), 'ignore');
  // What the stale state admits is still admitted.
  const ok = await rpc(node, 'unc_sendTransaction', [transfer(1, 0n)]);
  assert.ok((ok.result as { hash?: string } | undefined)?.hash, JSON.stringify(ok));

  // Metrics: BUSY as the clients saw it, and the refusal each BUSY deferred, not hidden by it.
  const metrics = await (await fetch(`${node.rpcUrl}/metrics`)).text();
  const series = (name: string, reason: string) =>
    Number(new RegExp(`^${name}\\{reason="${reason}"\\} (\\d+)$`, 'm').exec(metrics)?.[1] ?? 0);
  // The single call, the first of the batch, the gossiped batch; and the unfunded sender's.
  assert.equal(series('unc_mempool_rejections_total', 'BUSY'), 4, metrics);
  assert.equal(series('unc_mempool_deferred_total', 'NONCE_GAP'), 3, metrics);
  assert.equal(series('unc_mempool_deferred_total', 'INSUFFICIENT_FUNDS'), 1, metrics);
  // Final refusals are counted as themselves, and never as deferred.
  assert.equal(series('unc_mempool_rejections_total', 'WRONG_CHAIN'), 1, metrics);
  assert.equal(series('unc_mempool_rejections_total', 'BAD_SIGNATURE'), 1, metrics);
  assert.equal(series('unc_mempool_deferred_total', 'WRONG_CHAIN'), 0, metrics);
});

test('a single validator (under a third of the power) signing far-future votes does not make a node answer BUSY', async () => {
  const node = await nodeAtZero('unc-behind-one-');
  const gossip = node.driver.handlers().onGossip;
  for (const h of [5n, 50n, 5_000n]) await gossip('vote', precommit(3, h), 'relay');
  const one = await rpc(node, 'unc_sendTransaction', [transfer(1, 100n)]);
  assert.equal(one.error?.code, -32000, JSON.stringify(one));
  assert.equal(one.error?.data?.reason, 'NONCE_GAP');
});
