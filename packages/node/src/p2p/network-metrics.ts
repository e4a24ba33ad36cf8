/**
 * The Prometheus series behind the network's metrics hooks (libp2p.ts NetworkMetricsHooks): the
 * node registers them with its other series and hands the hooks to the network it starts.
 *
 * Labels are bounded sets only (docs/rpc.md "Metrics"): a gossip topic and verdict, a request's
 * protocol and outcome, a penalty's kind, a ban's cause, the unread bound that closed a connection. Never a peer id (free to make: one series
 * per id would grow without end) nor a penalty's free-text reason (it names sizes and errors).
 */
import { DEFAULT_SECONDS_BUCKETS, type Registry } from '../metrics.js';
import type { NetworkMetricsHooks } from './libp2p.js';

export function networkMetrics(r: Registry): NetworkMetricsHooks {
  const gossipMessages = r.counter(
    'unc_p2p_gossip_messages_total',
    'Gossip messages judged, by topic and verdict (accept: forwarded; ignore: not forwarded, no fault; reject: not forwarded, its sender scored down)',
  );
  const gossipBytes = r.counter(
    'unc_p2p_gossip_bytes_total',
    'Bytes of the gossip messages judged, by topic and verdict',
  );
  const penalties = r.counter('unc_p2p_peer_penalties_total', 'Peers scored down, by kind of misbehaviour');
  const bans = r.counter(
    'unc_p2p_peer_bans_total',
    'Peers disconnected and refused for the ban time, by cause',
  );
  // The same gauge the node sets at each scrape (node.ts): here also as peers come and go.
  const peers = r.gauge('unc_p2p_peers', 'Connected peers');
  const requests = r.counter(
    'unc_p2p_requests_total',
    'Requests this node made to peers (status, blocks, txs), by protocol and outcome',
  );
  const requestSeconds = r.histogram(
    'unc_p2p_request_duration_seconds',
    'Time of the requests this node made to peers, from dial to the whole answer, by protocol and outcome',
    DEFAULT_SECONDS_BUCKETS,
  );
  // Nonzero means peers held block-serving slots with writes they did not read (serve-budget.ts
  // BlockReadSlots.reclaimStalled): sybils pinning slots, or readers on links too slow to serve.
  const takenOver = r.counter(
    'unc_p2p_block_slots_taken_over_total',
    'Block-serving read slots taken from a stalled write (a peer not reading its answer) for a waiting request',
  );
  // Nonzero means peers stopped reading what they were sent (libp2p.ts maxConnectionWriteBytes,
  // maxTotalWriteBytes): processes stopped, links far too slow, or peers pinning this node's memory.
  const unreadClosed = r.counter(
    'unc_p2p_unread_connections_closed_total',
    'Connections closed for holding what their peer did not read, by bound: more than their own (32 MiB by default), or the most while all held more than theirs (256 MiB)',
  );
  return {
    gossip: (topic, verdict, bytes) => {
      gossipMessages.inc(1, { topic, verdict });
      gossipBytes.inc(bytes, { topic, verdict });
    },
    penalty: (_peer, _reason, _score, kind) => penalties.inc(1, { reason: kind }),
    ban: (_peer, _reason, cause) => bans.inc(1, { reason: cause }),
    peerCount: (count) => peers.set(count),
    request: (protocol, outcome, ms) => {
      requests.inc(1, { protocol, outcome });
      requestSeconds.observe(ms / 1000, { protocol, outcome });
    },
    blockSlotTakenOver: () => takenOver.inc(),
    unreadConnectionClosed: (bound) => unreadClosed.inc(1, { bound }),
  };
}
