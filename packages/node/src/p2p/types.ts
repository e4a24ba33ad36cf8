/**
 * What the node needs from the peer-to-peer network (PROTOCOL.md §7), independent of libp2p:
 * gossip with validation before forwarding, request/response for status and block ranges, and
 * peer scoring. The consensus driver and sync are written against this interface; `libp2p.ts`
 * implements it over TCP + Noise + Yamux + identify + gossipsub.
 */

/**
 * Gossip topics; each is namespaced by chain id on the wire so two chains never mix.
 * `validator-peer` (a validator's signed binding to its node's peer id, consensus/peer-binding.ts)
 * is sent only directly to a connected peer and never relayed.
 */
export type GossipTopic = 'tx' | 'proposal' | 'compact-proposal' | 'vote' | 'evidence' | 'validator-peer';

/**
 * The outcome of validating a gossiped message: `accept` forwards it, `ignore` drops it silently
 * (duplicate, stale, not yet checkable), `reject` drops it and scores the sender down.
 */
export type Verdict = 'accept' | 'ignore' | 'reject';

export interface ChainStatus {
  chainId: string;
  genesisHash: Uint8Array;
  /** Height and hash of the latest committed (final) block. */
  height: bigint;
  headHash: Uint8Array;
}

/** The node side: what the network asks of the node. */
export interface NetworkHandlers {
  /**
   * Validates a gossiped message before it is forwarded (and delivers it to the node). `direct`:
   * it came by `sendDirect`, to this node alone, and nothing forwards it whatever the verdict.
   */
  onGossip(topic: GossipTopic, data: Uint8Array, from: string, direct?: boolean): Verdict | Promise<Verdict>;
  /** This node's status, answered to peers' status requests. */
  status(): ChainStatus;
  /**
   * Encoded committed blocks (`blockCodec`, each with its commit) for heights `from`…`to`
   * inclusive, in order, as many as the node has (possibly fewer than asked). `take`, when given,
   * is asked about each block read, before the next is read: false ends the answer without that
   * block (the network's response cap and serve budget, libp2p.ts), so a request never makes the
   * node read and hold more than what it will send plus one block. It may wait (for the serve
   * budget to renew) before it answers; `take.room`, when given, is asked before each block is
   * read (and may wait, holding no block, for the peer's budget and a read slot); a handler that
   * asked it must then offer the block read to `take`, or end the answer, which gives it back.
   */
  blocks(from: bigint, to: bigint, take?: BlockTake): Promise<Uint8Array[]>;
  /**
   * Encoded transactions of a block this node holds for the height being decided, one per
   * wanted wire id (`sha256` of the transaction's bytes) that the block contains, in the order
   * asked; none for a block it does not hold (compact proposals, consensus/compact-block.ts).
   * A node without it serves none.
   */
  txs?(blockHash: Uint8Array, ids: readonly Uint8Array[]): Uint8Array[];
  /**
   * Whether `peer` relayed a consensus message this node accepted (a vote or proposal of the
   * height being decided, new here): such peers carry the network's traffic and get the share of
   * the `/txs/1` serve budget kept for them (p2p/serve-budget.ts). Without it, no peer does.
   */
  isRelayingPeer?(peer: string): boolean;
}

export interface PeerInfo {
  id: string;
  addrs: string[];
  /** The peer's last known status (from a status request), if any. */
  status: ChainStatus | null;
  score: number;
}

export interface Network {
  readonly peerId: string;
  /** Multiaddrs this node listens on, with its peer id (/ip4/…/tcp/…/p2p/…). */
  readonly listenAddrs: string[];
  publish(topic: GossipTopic, data: Uint8Array): Promise<void>;
  peers(): PeerInfo[];
  requestStatus(peer: string): Promise<ChainStatus>;
  /**
   * At most `MAX_BLOCKS_PER_REQUEST` blocks per call; the answer is checked by the caller.
   * `signal` abandons the request (another peer answered the range first: sync.ts hedging): it
   * rejects, releases the stream, and blames no one. `onBlock` is called as each block of the
   * answer arrives, `onBytes` as each chunk of it does, part of a block or more (a network that
   * delivers answers whole may never call them).
   */
  requestBlocks(peer: string, from: bigint, to: bigint, opts?: BlockRequestOptions): Promise<Uint8Array[]>;
  /**
   * Transactions of a proposed block by wire id (at most `MAX_TXS_PER_REQUEST`); the caller
   * checks each answer against the id it asked for. `signal` abandons the request (the height it
   * was for is decided): it rejects at once, releases the stream, and blames no one.
   */
  requestTxs(
    peer: string,
    blockHash: Uint8Array,
    ids: readonly Uint8Array[],
    signal?: AbortSignal,
  ): Promise<Uint8Array[]>;
  /** Misbehaviour found outside gossip validation (e.g. a bad block in a sync answer). */
  penalize(peer: string, reason: string): void;
  /**
   * Called once per new connection, after the peer passed the status exchange (same chain id and
   * genesis), so its status is already in `peers()`. Returns the unsubscribe function.
   */
  onPeerConnected(listener: (peer: string) => void): () => void;
  /**
   * Called when the last direct connection to `peer` closes (its process stopped, the link
   * broke), whether or not it passed the status exchange. Returns the unsubscribe function. A
   * network without it gives no such signal (proposer liveness then waits for silence).
   */
  onPeerDisconnected?(listener: (peer: string) => void): () => void;
  /**
   * Sends gossip messages to one peer only, not relayed by it (the catch-up of a newly connected
   * peer: the consensus messages it missed). The peer checks each like gossip. Resolves when sent
   * or given up on (a peer that does not read is not waited for).
   */
  sendDirect(peer: string, messages: readonly DirectMessage[]): Promise<void>;
  stop(): Promise<void>;
}

/** One gossip message sent to a single peer (`Network.sendDirect`). */
export interface DirectMessage {
  topic: GossipTopic;
  data: Uint8Array;
}

/** Most messages one catch-up carries: a height's proposals and votes of a few rounds. */
export const MAX_DIRECT_MESSAGES = 2_048;

/**
 * Asked about each block a `/blocks/1` handler read (its encoded size): false ends the answer
 * without it. `block`, when given, is sent before `take` resolves true (the answer streams: a peer
 * that does not read holds one block of this node's memory per stream, not a whole answer). With
 * `sends` set, the handler returns only the blocks it did not hand to `take` (they are sent after
 * it returns): keeping those sent until the answer ended pinned a whole answer (up to 64 MiB) per
 * stream of a slow reader. `room`, when present, is asked before each
 * read: false ends the answer unread; it may wait for the peer's serve budget and a block read slot
 * (serve-budget.ts BlockAnswerBudget.room). `readBlockRange` (sync.ts) reads a range this way.
 */
export interface BlockTake {
  (bytes: number, block?: Uint8Array): boolean | Promise<boolean>;
  room?: () => Promise<boolean>;
  sends?: boolean;
}

/** Options of `Network.requestBlocks`. */
export interface BlockRequestOptions {
  signal?: AbortSignal;
  onBlock?: () => void;
  onBytes?: (bytes: number) => void;
}

export const MAX_BLOCKS_PER_REQUEST = 64;
/** Wire ids per transaction request (32 bytes each: a 128 KiB request). */
export const MAX_TXS_PER_REQUEST = 4_096;
