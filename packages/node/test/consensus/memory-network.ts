/**
 * Test helper: an in-process implementation of the node's `Network` interface (p2p/types.ts), so
 * the consensus driver can be run between several nodes of one process in milliseconds. Gossip is
 * delivered to every connected member, asynchronously and in publication order per member, after
 * the receiver's own validation, as gossipsub does for a full mesh; peers can be cut off and
 * rejoined to simulate crashes and partitions. Not for production use.
 */
import type {
  ChainStatus,
  DirectMessage,
  GossipTopic,
  Network,
  NetworkHandlers,
  PeerInfo,
} from '../../src/p2p/types.js';

export class MemoryNetworkHub {
  private readonly members = new Map<string, MemoryNetworkForTests>();
  /** Counters of what was delivered and with which verdict, for assertions. */
  readonly verdicts = { accept: 0, ignore: 0, reject: 0 };

  join(peerId: string, handlers: NetworkHandlers): MemoryNetworkForTests {
    if (this.members.has(peerId)) throw new Error(`peer ${peerId} is already connected`);
    const net = new MemoryNetworkForTests(this, peerId, handlers);
    this.members.set(peerId, net);
    for (const other of this.members.values()) {
      if (other !== net) {
        other.connected(peerId);
        net.connected(other.peerId);
      }
    }
    return net;
  }

  leave(peerId: string): void {
    this.members.delete(peerId);
  }

  /**
   * Closes `peerId`'s links as a stopped process's socket would, telling every other member
   * (`onPeerDisconnected`). Only tests that call it get the signal; `leave` stays silent.
   */
  cut(peerId: string): void {
    this.members.delete(peerId);
    for (const other of this.members.values()) other.disconnected(peerId);
  }

  member(peerId: string): MemoryNetworkForTests | undefined {
    return this.members.get(peerId);
  }

  others(peerId: string): MemoryNetworkForTests[] {
    return [...this.members.values()].filter((m) => m.peerId !== peerId);
  }
}

export class MemoryNetworkForTests implements Network {
  readonly listenAddrs: string[];
  readonly penalties: { peer: string; reason: string }[] = [];
  private readonly listeners = new Set<(peer: string) => void>();
  private readonly disconnectListeners = new Set<(peer: string) => void>();
  private inbox: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly hub: MemoryNetworkHub,
    readonly peerId: string,
    readonly handlers: NetworkHandlers,
  ) {
    this.listenAddrs = [`/memory/${peerId}`];
  }

  connected(peer: string): void {
    for (const l of this.listeners) l(peer);
  }

  disconnected(peer: string): void {
    for (const l of this.disconnectListeners) l(peer);
  }

  /** Delivery into this member, one message at a time like a single gossip stream. */
  deliver(topic: GossipTopic, data: Uint8Array, from: string, direct = false): void {
    this.inbox = this.inbox.then(async () => {
      if (this.stopped) return;
      // `direct`: by `sendDirect`, which the receiver is told, as libp2p's direct protocol tells it.
      const verdict = await this.handlers.onGossip(topic, data, from, direct);
      this.hub.verdicts[verdict]++;
    });
  }

  async publish(topic: GossipTopic, data: Uint8Array): Promise<void> {
    if (this.stopped) return;
    for (const other of this.hub.others(this.peerId)) other.deliver(topic, data.slice(), this.peerId);
  }

  async sendDirect(peer: string, messages: readonly DirectMessage[]): Promise<void> {
    if (this.stopped) return;
    const target = this.hub.member(peer);
    for (const { topic, data } of messages) target?.deliver(topic, data.slice(), this.peerId, true);
  }

  peers(): PeerInfo[] {
    return this.hub
      .others(this.peerId)
      .map((m) => ({ id: m.peerId, addrs: m.listenAddrs, status: null, score: 0 }));
  }

  private target(peer: string): MemoryNetworkForTests {
    const m = this.hub.member(peer);
    if (!m) throw new Error(`peer ${peer} is not connected`);
    return m;
  }

  async requestStatus(peer: string): Promise<ChainStatus> {
    return this.target(peer).handlers.status();
  }

  async requestBlocks(peer: string, from: bigint, to: bigint): Promise<Uint8Array[]> {
    return this.target(peer).handlers.blocks(from, to);
  }

  async requestTxs(
    peer: string,
    blockHash: Uint8Array,
    ids: readonly Uint8Array[],
    _signal?: AbortSignal,
  ): Promise<Uint8Array[]> {
    return this.target(peer).handlers.txs?.(blockHash, ids) ?? [];
  }

  penalize(peer: string, reason: string): void {
    this.penalties.push({ peer, reason });
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
    this.stopped = true;
    this.hub.leave(this.peerId);
  }
}
