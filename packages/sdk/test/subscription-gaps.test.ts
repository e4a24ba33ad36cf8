/**
 * The hub's gap filling against a scripted node (no network): however many blocks passed while the
 * client was away, newBlocks delivers every height once, in order.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SubscriptionHub } from '../src/subscriptions.js';

async function waitFor(what: string, ok: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('newBlocks after a gap of 250 blocks (an outage): every height once, in order, none skipped', async () => {
  let head = 5;
  const transport = {
    wsUrl: 'ws://127.0.0.1:1',
    call: async (method: string, params: unknown[]): Promise<unknown> => {
      if (method === 'unc_status') return { height: head };
      if (method === 'unc_getBlock') return { height: params[0] as number };
      throw new Error(`unexpected ${method}`);
    },
  };
  const hub = new SubscriptionHub(transport, { mode: 'polling', pollIntervalMs: 5 });
  const seen: number[] = [];
  await hub.subscribe('newBlocks', [], (b) => seen.push((b as { height: number }).height));
  await waitFor('the first block', () => seen.length === 1, 10_000);
  head = 255;
  await waitFor('block 255', () => seen.at(-1) === 255, 30_000);
  hub.close();
  assert.deepEqual(
    seen,
    Array.from({ length: 251 }, (_, i) => 5 + i),
  );
});
