/**
 * Subscriptions when the node refuses the WebSocket (HTTP 429, as a node past maxWsConnectionsPerIp
 * answers): the hub says why, polls without hammering the node, tries the WebSocket again with a
 * growing wait and goes back to it once one opens, with no height skipped or repeated. The node is
 * a small fake (an HTTP server whose upgrades this test refuses or lets through, and a JSON-RPC
 * answerer); it and its timer are stopped at the end.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { type WebSocket, WebSocketServer } from 'ws';
import { SubscriptionHub } from '../src/subscriptions.js';

let height = 1;
let refuse = true;
/** Sockets still to be dropped when they ask to subscribe (a node restarting, a proxy's idle cut). */
let dropOnSubscribe = 0;
let upgrades = 0;
let server: Server;
let wss: WebSocketServer;
let ticker: ReturnType<typeof setInterval>;
let wsUrl = '';
const subscribed = new Set<WebSocket>();

before(async () => {
  wss = new WebSocketServer({ noServer: true });
  server = createServer((_req, res) => res.writeHead(404).end());
  server.on('upgrade', (req, socket, head) => {
    upgrades++;
    if (refuse) {
      socket.end(
        'HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n',
      );
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('message', (data) => {
        const msg = JSON.parse(String(data)) as { id: number; method: string };
        if (msg.method === 'unc_subscribe' && dropOnSubscribe > 0) {
          dropOnSubscribe--;
          ws.terminate();
        } else if (msg.method === 'unc_subscribe') {
          ws.send(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result: 'sub1' }));
          subscribed.add(ws);
        } else ws.send(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result: true }));
      });
      ws.on('close', () => subscribed.delete(ws));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  wsUrl = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
  ticker = setInterval(() => {
    height++;
    const note = JSON.stringify({
      jsonrpc: '2.0',
      method: 'unc_subscription',
      params: { subscription: 'sub1', result: { height } },
    });
    for (const ws of subscribed) ws.send(note);
  }, 40);
});

after(async () => {
  clearInterval(ticker);
  for (const ws of wss.clients) ws.terminate();
  wss.close();
  await new Promise<void>((r) => server.close(() => r()));
});

const until = async (cond: () => boolean, ms: number, what: string) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

/** The node's HTTP side, in process: the head and its blocks. */
const answer = async (method: string, params: unknown[]): Promise<unknown> => {
  if (method === 'unc_status') return { height };
  if (method === 'unc_getBlock') return { height: params[0] };
  throw new Error(`unexpected ${method}`);
};

test('refused WebSockets: the reason is kept, polling takes over, and the WebSocket comes back when it may', async () => {
  refuse = true;
  upgrades = 0;
  const hub = new SubscriptionHub({ wsUrl, call: answer }, { pollIntervalMs: 30, socketRetryMs: 150 });
  const modes: boolean[] = [];
  hub.onModeChange((polling) => modes.push(polling));
  const seen: number[] = [];
  const sub = await hub.subscribe('newBlocks', [], (b) => seen.push((b as { height: number }).height));
  try {
    assert.equal(hub.isPolling, true);
    assert.match(hub.lastSocketError ?? '', /429/, 'why the WebSocket failed is not said');
    await until(() => seen.length >= 5, 5_000, 'blocks by polling');
    // Tries of the WebSocket while polling are spaced out (150 ms doubling), never a storm.
    await new Promise((r) => setTimeout(r, 1_000));
    assert.ok(upgrades <= 3 + 5, `${upgrades} upgrade tries in about a second`);
    assert.ok(upgrades > 3, 'the WebSocket is never tried again while polling');
    refuse = false;
    await until(() => !hub.isPolling, 15_000, 'the hub back on the WebSocket');
    const onSocket = seen.length;
    await until(() => seen.length >= onSocket + 5, 5_000, 'blocks over the WebSocket');
    assert.equal(subscribed.size, 1);
    assert.deepEqual(modes, [true, false]);
    // Across both switches, every height once and in order.
    for (let i = 1; i < seen.length; i++)
      assert.equal(seen[i], seen[i - 1]! + 1, `at ${i}: ${seen.join(',')}`);
  } finally {
    sub.close();
    hub.close();
  }
});

test('a poll the node refuses waits what the node asks (retryAfterMs) before the next, not the poll interval', async () => {
  refuse = true;
  let calls = 0;
  const limited = async (): Promise<unknown> => {
    calls++;
    throw Object.assign(new Error('rate limited'), { retryAfterMs: 1_000 });
  };
  const hub = new SubscriptionHub({ wsUrl, call: limited }, { pollIntervalMs: 20, mode: 'polling' });
  const sub = await hub.subscribe('newBlocks', [], () => {});
  try {
    await new Promise((r) => setTimeout(r, 1_500));
    // At 20 ms a poll, ~75 calls; waiting what the node asks, 2.
    assert.ok(calls <= 3, `${calls} polls in 1.5 s of refusals`);
  } finally {
    sub.close();
    hub.close();
  }
});

test('a hub that fell back to polling and went idle still goes back to the WebSocket for its next subscription', async () => {
  refuse = true;
  const hub = new SubscriptionHub({ wsUrl, call: answer }, { pollIntervalMs: 30, socketRetryMs: 150 });
  const first = await hub.subscribe('newBlocks', [], () => {});
  assert.equal(hub.isPolling, true);
  first.close();
  refuse = false;
  const seen: number[] = [];
  const second = await hub.subscribe('newBlocks', [], (b) => seen.push((b as { height: number }).height));
  try {
    await until(() => !hub.isPolling, 5_000, 'the hub back on the WebSocket');
    await until(() => seen.length >= 3, 5_000, 'blocks');
  } finally {
    second.close();
    hub.close();
  }
});

test('a hub closed while it waits to try the WebSocket again opens none afterwards, and leaves no timer', async () => {
  refuse = true;
  upgrades = 0;
  const hub = new SubscriptionHub({ wsUrl, call: answer }, { pollIntervalMs: 30, socketRetryMs: 150 });
  const pending = hub
    .subscribe('newBlocks', [], () => {})
    .then(
      (sub) => sub,
      () => null,
    );
  // Refused once: the hub now sleeps before its next try.
  await until(() => upgrades >= 1, 5_000, 'a first try of the WebSocket');
  hub.close();
  const triedBeforeClose = upgrades;
  refuse = false;
  const sub = await pending;
  // Longer than every wait the hub could have had pending (250 ms, 500 ms; a retry's 150 ms).
  await new Promise((r) => setTimeout(r, 1_500));
  try {
    assert.equal(wss.clients.size, 0, 'a WebSocket opened after the hub was closed');
    assert.ok(upgrades <= triedBeforeClose + 1, `${upgrades - triedBeforeClose} tries after close`);
    assert.equal(hub.isPolling, false, 'a closed hub went on to poll');
  } finally {
    sub?.close();
    for (const ws of wss.clients) ws.terminate();
  }
});

test('a WebSocket lost while the hub moves its subscriptions onto it ends none of them: no height skipped or repeated', async () => {
  refuse = true;
  const hub = new SubscriptionHub({ wsUrl, call: answer }, { pollIntervalMs: 30, socketRetryMs: 150 });
  const seen: number[] = [];
  let ended = false;
  const sub = await hub.subscribe('newBlocks', [], (b) => seen.push((b as { height: number }).height));
  sub.onClose(() => {
    ended = true;
  });
  try {
    assert.equal(hub.isPolling, true);
    await until(() => seen.length >= 3, 5_000, 'blocks by polling');
    // The next try opens, and the socket drops as the hub subscribes on it.
    dropOnSubscribe = 1;
    refuse = false;
    await until(() => dropOnSubscribe === 0, 10_000, 'the socket dropped under the subscribe');
    const before = seen.length;
    await until(() => ended || seen.length >= before + 10, 15_000, 'blocks after the drop');
    assert.equal(ended, false, 'the subscription ended because its socket dropped');
    for (let i = 1; i < seen.length; i++)
      assert.equal(seen[i], seen[i - 1]! + 1, `at ${i}: ${seen.join(',')}`);
  } finally {
    dropOnSubscribe = 0;
    sub.close();
    hub.close();
  }
});
