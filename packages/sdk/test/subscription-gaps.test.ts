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
  await waitFor('the first block', () => seen.length === 1, 30_000);
  head = 255;
  await waitFor('block 255', () => seen.at(-1) === 255, 30_000);
  hub.close();
  assert.deepEqual(
    seen,
    Array.from({ length: 251 }, (_, i) => 5 + i),
  );
});

test('a node that accepts and drops every WebSocket at once is not reconnected to every 250 ms (backoff grows)', async () => {
  let opened = 0;
  class DroppingSocket {
    onopen: ((ev: unknown) => void) | null = null;
    onerror: ((ev: unknown) => void) | null = null;
    onclose: ((ev: unknown) => void) | null = null;
    onmessage: ((ev: { data: unknown }) => void) | null = null;
    constructor(_url: string) {
      opened++;
      setTimeout(() => this.onopen?.({}), 1);
    }
    send(text: string): void {
      const { id } = JSON.parse(text) as { id: number };
      setTimeout(() => {
        this.onmessage?.({ data: JSON.stringify({ jsonrpc: '2.0', id, result: `sub${id}` }) });
        // Subscribed, then dropped straight away: what a node shedding connections does.
        setTimeout(() => this.onclose?.({}), 5);
      }, 1);
    }
    close(): void {}
  }
  const g = globalThis as { WebSocket?: unknown };
  const saved = g.WebSocket;
  g.WebSocket = DroppingSocket;
  const transport = {
    wsUrl: 'ws://127.0.0.1:1',
    call: async (method: string): Promise<unknown> => {
      if (method === 'unc_status') return { height: 1 };
      return { height: 1 };
    },
  };
  const hub = new SubscriptionHub(transport, { mode: 'websocket' });
  try {
    await hub.subscribe('newBlocks', [], () => {});
    await new Promise((r) => setTimeout(r, 4000));
  } finally {
    hub.close();
    g.WebSocket = saved;
  }
  // Reopened after 250, 500, 1000 and 2000 ms: at most 5 sockets in 4 s (16 at a fixed 250 ms).
  assert.ok(opened >= 2, `reconnected at all (${opened})`);
  assert.ok(opened <= 5, `${opened} sockets in 4 s`);
});
