// The network's metrics hooks reach the node's GET /metrics: a node started with a real libp2p
// network as `unc start` starts it (the node's hooks handed to startNetwork), a second network
// dialling it over TCP, gossip judged, requests made, the peer scored down until banned; then the
// series read from /metrics over HTTP, as Prometheus reads them. Before, of all those hooks only the
// block-slot takeover had a series. Labels are bounded sets: never a peer id.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { devValidator } from '../src/dev.js';
import { silentLogger } from '../src/log.js';
import { UncNode } from '../src/node.js';
import { type Libp2pNetwork, startNetwork } from '../src/p2p/libp2p.js';
import { SERVE_GENESIS, serveNetworks } from './serve-networks.js';

const networks = serveNetworks({ dirPrefix: 'unc-p2p-metrics-', firstSeed: 240 });
const dir = mkdtempSync(join(tmpdir(), 'unc-p2p-metrics-node-'));
let node: UncNode | undefined;
after(async () => {
  await node?.stop();
  await networks.close();
  rmSync(dir, { recursive: true, force: true });
});

async function waitFor(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!(await cond())) {
    if (Date.now() > deadline) assert.fail(`never: ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function handshaken(a: Libp2pNetwork, b: Libp2pNetwork): boolean {
  return a.peers().some((p) => p.id === b.peerId && p.status !== null);
}

/** The value of the series `name{labels}` (exactly those labels) in a /metrics text, or null. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | null {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries(
      [...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]),
    );
    const want = Object.entries(labels);
    if (Object.keys(have).length === want.length && want.every(([k, v]) => have[k] === v))
      return Number(m[3]);
  }
  return null;
}

test('/metrics has the p2p series: gossip by topic and verdict, requests by protocol and outcome, penalties and bans by reason', async () => {
  node = await UncNode.start({
    dataDir: dir,
    genesis: SERVE_GENESIS,
    validatorSeed: devValidator().seed,
    rpcPort: 0,
    logger: silentLogger,
    network: (handlers, chain, metrics) =>
      startNetwork({
        listen: ['/ip4/127.0.0.1/tcp/0'],
        nodeKey: new Uint8Array(32).fill(239),
        chainId: chain.genesis.chainId,
        genesisHash: chain.genesisHash,
        handlers,
        logger: silentLogger,
        metrics,
      }),
  });
  const scrape = async () => {
    const res = await fetch(`${node!.rpcUrl}/metrics`);
    assert.equal(res.status, 200);
    return res.text();
  };
  const net = node.network as Libp2pNetwork;
  const peer = await networks.net(await networks.chain(), async () => []);
  await peer.dial(net.listenAddrs[0]!);
  await waitFor(() => handshaken(net, peer) && handshaken(peer, net), 'the status exchange both ways');
  await waitFor(
    () => net.meshPeers('evidence').includes(peer.peerId) && peer.meshPeers('evidence').includes(net.peerId),
    'the evidence mesh',
  );
  // Evidence that does not decode: rejected, its sender scored down (one penalty, invalidGossip).
  const junk = new Uint8Array([0xff, 0x00, 0x01]);
  await peer.publish('evidence', junk);
  await waitFor(
    async () =>
      sample(await scrape(), 'unc_p2p_gossip_messages_total', { topic: 'evidence', verdict: 'reject' }) === 1,
    'the rejected evidence counted',
  );
  // The node's own findings (sync answers that do not apply, ...) until the peer's score falls to
  // the ban threshold (-50: 10 for the junk, then 20 per report, less what it recovered meanwhile).
  let reports = 0;
  while (!net.isBanned(peer.peerId)) {
    net.penalize(peer.peerId, 'test report');
    reports++;
  }
  assert.ok(reports >= 2 && reports <= 3, `${reports} reports`);

  const text = await scrape();
  assert.equal(
    sample(text, 'unc_p2p_gossip_bytes_total', { topic: 'evidence', verdict: 'reject' }),
    junk.byteLength,
  );
  assert.equal(sample(text, 'unc_p2p_peer_penalties_total', { reason: 'invalidGossip' }), 1, text);
  assert.equal(sample(text, 'unc_p2p_peer_penalties_total', { reason: 'reported' }), reports, text);
  assert.equal(sample(text, 'unc_p2p_peer_bans_total', { reason: 'score' }), 1, text);
  // The status request of the handshake: counted and timed.
  const statusOk = sample(text, 'unc_p2p_requests_total', { protocol: 'status', outcome: 'ok' });
  assert.ok(statusOk !== null && statusOk >= 1, text);
  assert.equal(
    sample(text, 'unc_p2p_request_duration_seconds_count', { protocol: 'status', outcome: 'ok' }),
    statusOk,
  );
  assert.equal(
    sample(text, 'unc_p2p_request_duration_seconds_bucket', {
      protocol: 'status',
      outcome: 'ok',
      le: '+Inf',
    }),
    statusOk,
  );
  for (const [name, type] of [
    ['unc_p2p_gossip_messages_total', 'counter'],
    ['unc_p2p_gossip_bytes_total', 'counter'],
    ['unc_p2p_peer_penalties_total', 'counter'],
    ['unc_p2p_peer_bans_total', 'counter'],
    ['unc_p2p_requests_total', 'counter'],
    ['unc_p2p_request_duration_seconds', 'histogram'],
    ['unc_p2p_peers', 'gauge'],
    ['unc_p2p_block_slots_taken_over_total', 'counter'],
    ['unc_p2p_unread_connections_closed_total', 'counter'],
  ])
    assert.match(text, new RegExp(`^# TYPE ${name} ${type}$`, 'm'));
  // No peer id anywhere in the text: not the banned peer's, not the node's own.
  assert.ok(!text.includes(peer.peerId) && !text.includes(net.peerId), 'no peer id in /metrics');
});
