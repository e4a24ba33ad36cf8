/**
 * The simulator's network: the node's `Network` interface (p2p/types.ts) between the nodes of one
 * process, on the virtual clock. Every link has a latency drawn from the run's latency profile
 * plus jitter (so messages overtake each other), loses messages with the run's loss rate, and is
 * cut by partitions and by crashes. Gossip reaches every reachable peer directly (a full mesh, no
 * relaying), so a message lost on a link is lost for that peer until the sender gossips again,
 * which is what the driver's re-gossip and sync are for. Requests (status, block ranges) take a
 * round trip and fail if the link is down when they are sent or answered. A crash or a partition
 * closes the links it cuts, and each end hears of it at once (`onPeerDisconnected`), as a stopped
 * process's closed socket tells its peers.
 */
import type { SimRng } from '@unc/core';
import type {
  BlockRequestOptions,
  ChainStatus,
  DirectMessage,
  GossipTopic,
  Network,
  NetworkHandlers,
  PeerInfo,
} from '../p2p/types.js';
import type { VirtualClock } from './virtual-clock.js';

/** One-way latency between two nodes, by where they are. */
export interface LatencyProfile {
  name: string;
  /** Regions the nodes are spread over, round-robin by index. */
  regions: number;
  /** Base one-way latency within a region and between regions, ms. */
  localMs: number;
  remoteMs: number;
  /** Uniform extra delay in [0, jitterMs) per message. */
  jitterMs: number;
}

export const LATENCY_PROFILES: Record<'lan' | 'wan50' | 'continents', LatencyProfile> = {
  lan: { name: 'LAN', regions: 1, localMs: 1, remoteMs: 1, jitterMs: 1 },
  wan50: { name: '50 ms', regions: 1, localMs: 50, remoteMs: 50, jitterMs: 10 },
  continents: { name: '200 ms across continents', regions: 3, localMs: 10, remoteMs: 200, jitterMs: 40 },
};

/** One message a (Byzantine) node sends: to the listed peers, or to every peer it reaches. */
export interface Send {
  data: Uint8Array;
  to?: readonly string[];
}

/**
 * Sees what a (Byzantine) node hears, before the node does; `false` keeps the message from the
 * node (its own made-up messages coming back, which it would otherwise hold against its own).
 */
export type Heard = (topic: GossipTopic, data: Uint8Array) => boolean;

/** Rewrites what a (Byzantine) node publishes; `peers` are those it reaches now. */
export type Outgoing = (topic: GossipTopic, data: Uint8Array, peers: readonly string[]) => Send[];

export interface NetworkStats {
  sent: number;
  delivered: number;
  dropped: number;
  /** Of `sent`, those sent to one peer only (the catch-up of a newly connected peer). */
  direct: number;
  /** Messages a receiver's checks rejected (the verdict that scores a peer down), by `from>to`. */
  rejected: Record<string, number>;
}

const REQUEST_TIMEOUT_MS = 2_000;

export class SimNetwork {
  private readonly members = new Map<string, SimPeerNetwork>();
  private readonly index = new Map<string, number>();
  /** Partition groups: nodes in different groups cannot reach each other. Null: no partition. */
  private groups: Map<string, number> | null = null;
  loss = 0;
  /** Whether a cut link tells its ends (`SimPeerNetwork.disconnected`). */
  disconnectSignals = true;
  readonly stats: NetworkStats = { sent: 0, delivered: 0, dropped: 0, direct: 0, rejected: {} };

  constructor(
    readonly clock: VirtualClock,
    private readonly rng: SimRng,
    public profile: LatencyProfile,
    ids: readonly string[],
  ) {
    ids.forEach((id, i) => this.index.set(id, i));
  }

  /** A node (re)starting: it and every peer it can reach hear of the connection. */
  attach(id: string, handlers: NetworkHandlers, outgoing?: Outgoing, heard?: Heard): SimPeerNetwork {
    if (this.members.has(id)) throw new Error(`${id} is already attached`);
    const net = new SimPeerNetwork(this, id, handlers, outgoing, heard);
    this.members.set(id, net);
    for (const other of this.members.values()) {
      if (other !== net && this.reachable(id, other.peerId)) this.connect(id, other.peerId);
    }
    return net;
  }

  /** A node crashing: gone at once, with whatever was in flight to it. */
  detach(id: string): void {
    const net = this.members.get(id);
    if (net) net.down = true;
    const peers = net ? this.peersOf(id) : [];
    this.members.delete(id);
    for (const peer of peers) this.members.get(peer)?.disconnected(id);
  }

  /** Splits the nodes into groups that cannot reach each other; null heals. */
  partition(groups: string[][] | null): void {
    const before = this.groups;
    if (groups === null) this.groups = null;
    else {
      this.groups = new Map();
      groups.forEach((g, i) => {
        for (const id of g) this.groups!.set(id, i);
      });
    }
    // Links cut close at both ends; links that came back up reconnect, as a transport would redial.
    const ids = [...this.members.keys()];
    for (const a of ids)
      for (const b of ids) {
        if (a >= b) continue;
        if (!this.reachable(a, b) && sameGroup(before, a, b)) {
          this.members.get(a)?.disconnected(b);
          this.members.get(b)?.disconnected(a);
        } else if (this.reachable(a, b) && !sameGroup(before, a, b)) this.connect(a, b);
      }
  }

  reachable(a: string, b: string): boolean {
    if (!this.members.has(a) || !this.members.has(b)) return false;
    return sameGroup(this.groups, a, b);
  }

  member(id: string): SimPeerNetwork | undefined {
    return this.members.get(id);
  }

  peersOf(id: string): string[] {
    return [...this.members.keys()].filter((p) => p !== id && this.reachable(id, p));
  }

  /** One-way delay of a message from `a` to `b`. */
  delay(a: string, b: string): number {
    const p = this.profile;
    const ra = (this.index.get(a) ?? 0) % p.regions;
    const rb = (this.index.get(b) ?? 0) % p.regions;
    return (ra === rb ? p.localMs : p.remoteMs) + this.rng.next() * p.jitterMs;
  }

  /** Bytes sent per gossip topic (and per request kind), summed over every link. */
  readonly bytes: Record<string, number> = {};

  countBytes(kind: string, n: number): void {
    this.bytes[kind] = (this.bytes[kind] ?? 0) + n;
  }

  /** `direct`: by `sendDirect` (the receiver is told, as libp2p's direct protocol tells it). */
  send(from: string, to: string, topic: GossipTopic, data: Uint8Array, direct = false): void {
    this.stats.sent++;
    this.countBytes(topic, data.byteLength);
    if (!this.reachable(from, to) || (this.loss > 0 && this.rng.chance(this.loss))) {
      this.stats.dropped++;
      return;
    }
    const target = this.members.get(to)!;
    this.clock.schedule(this.delay(from, to), () => {
      // The link may have gone down while the message was on it.
      if (target.down || !this.reachable(from, to)) {
        this.stats.dropped++;
        return;
      }
      this.stats.delivered++;
      target.deliver(topic, data, from, direct);
    });
  }

  /** A request's round trip: rejects if the link is down at either end of it. */
  request<T>(from: string, to: string, answer: (peer: SimPeerNetwork) => T | Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (!this.reachable(from, to)) {
        reject(new Error(`peer ${to} is not reachable`));
        return;
      }
      const target = this.members.get(to)!;
      this.clock.schedule(this.delay(from, to), () => {
        if (target.down || !this.reachable(from, to)) {
          this.clock.schedule(REQUEST_TIMEOUT_MS, () => reject(new Error(`request to ${to} timed out`)));
          return;
        }
        Promise.resolve()
          .then(() => answer(target))
          .then(
            (value) =>
              this.clock.schedule(this.delay(to, from), () => {
                if (this.reachable(from, to)) resolve(value);
                else reject(new Error(`peer ${to} went away`));
              }),
            (err: Error) => this.clock.schedule(this.delay(to, from), () => reject(err)),
          );
      });
    });
  }

  private connect(a: string, b: string): void {
    this.members.get(a)?.connected(b);
    this.members.get(b)?.connected(a);
  }
}

function sameGroup(groups: Map<string, number> | null, a: string, b: string): boolean {
  if (!groups) return true;
  return groups.get(a) === groups.get(b);
}

export class SimPeerNetwork implements Network {
  readonly listenAddrs: string[];
  readonly penalties: { peer: string; reason: string }[] = [];
  down = false;
  private readonly listeners = new Set<(peer: string) => void>();
  private readonly disconnectListeners = new Set<(peer: string) => void>();

  constructor(
    private readonly hub: SimNetwork,
    readonly peerId: string,
    private readonly handlers: NetworkHandlers,
    private readonly outgoing?: Outgoing,
    private readonly heard?: Heard,
  ) {
    this.listenAddrs = [`/sim/${peerId}`];
  }

  connected(peer: string): void {
    if (this.down) return;
    for (const l of this.listeners) l(peer);
  }

  disconnected(peer: string): void {
    if (this.down || !this.hub.disconnectSignals) return;
    for (const l of this.disconnectListeners) l(peer);
  }

  deliver(topic: GossipTopic, data: Uint8Array, from: string, direct = false): void {
    if (this.down) return;
    if (this.heard?.(topic, data) === false) return;
    void Promise.resolve(this.handlers.onGossip(topic, data, from, direct)).then((verdict) => {
      if (verdict === 'reject') {
        this.penalize(from, `rejected ${topic}`);
        const link = `${from}>${this.peerId}`;
        this.hub.stats.rejected[link] = (this.hub.stats.rejected[link] ?? 0) + 1;
      }
    });
  }

  async publish(topic: GossipTopic, data: Uint8Array): Promise<void> {
    if (this.down) return;
    const peers = this.hub.peersOf(this.peerId);
    if (!this.outgoing) {
      for (const peer of peers) this.hub.send(this.peerId, peer, topic, data);
      return;
    }
    for (const m of this.outgoing(topic, data, peers))
      for (const peer of m.to ?? peers) this.hub.send(this.peerId, peer, topic, m.data);
  }

  /** To one peer only; a Byzantine node's rewrite applies as to gossip, limited to that peer. */
  async sendDirect(peer: string, messages: readonly DirectMessage[]): Promise<void> {
    if (this.down) return;
    this.hub.stats.direct += messages.length;
    for (const { topic, data } of messages) {
      if (!this.outgoing) {
        this.hub.send(this.peerId, peer, topic, data, true);
        continue;
      }
      for (const m of this.outgoing(topic, data, [peer]))
        if (!m.to || m.to.includes(peer)) this.hub.send(this.peerId, peer, topic, m.data, true);
    }
  }

  peers(): PeerInfo[] {
    if (this.down) return [];
    return this.hub.peersOf(this.peerId).map((id) => ({ id, addrs: [`/sim/${id}`], status: null, score: 0 }));
  }

  requestStatus(peer: string): Promise<ChainStatus> {
    return this.hub.request(this.peerId, peer, (p) => p.handlers.status());
  }

  requestBlocks(
    peer: string,
    from: bigint,
    to: bigint,
    opts: BlockRequestOptions = {},
  ): Promise<Uint8Array[]> {
    return cancellable(
      opts.signal,
      this.hub.request(this.peerId, peer, (p) => p.handlers.blocks(from, to)),
    );
  }

  requestTxs(
    peer: string,
    blockHash: Uint8Array,
    ids: readonly Uint8Array[],
    signal?: AbortSignal,
  ): Promise<Uint8Array[]> {
    return cancellable(
      signal,
      this.hub.request(this.peerId, peer, (p) => {
        const txs = p.handlers.txs?.(blockHash, ids) ?? [];
        this.hub.countBytes('txs-request', 32 + 32 * ids.length);
        this.hub.countBytes(
          'txs-answer',
          txs.reduce((n, t) => n + t.byteLength, 0),
        );
        return txs;
      }),
    );
  }

  penalize(peer: string, reason: string): void {
    if (this.penalties.length < 1_000) this.penalties.push({ peer, reason });
  }

  onPeerConnected(listener: (peer: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  onPeerDisconnected(listener: (peer: string) => void): () => void {
    this.disconnectListeners.add(listener);
    return () => this.disconnectListeners.delete(listener);
  }

  async stop(): Promise<void> {
    this.hub.detach(this.peerId);
  }
}

/** A request the caller may abandon: it rejects when `signal` aborts (its answer, if any, is dropped). */
function cancellable<T>(signal: AbortSignal | undefined, request: Promise<T>): Promise<T> {
  if (!signal) return request;
  if (signal.aborted) return Promise.reject(new Error('request abandoned'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new Error('request abandoned'));
    signal.addEventListener('abort', onAbort, { once: true });
    request.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
