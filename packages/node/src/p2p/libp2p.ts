/**
 * The peer-to-peer layer over libp2p (PROTOCOL.md §7): TCP + Noise + Yamux + identify + gossipsub,
 * two request/response protocols (status, block ranges) and our own peer scoring. Everything on
 * the wire is namespaced by chain id, so nodes of two chains never mix traffic; a peer that shares
 * the chain id but not the genesis is found by the status exchange on connect and refused.
 */
import '../polyfill.js';

import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys';
import {
  type GossipSub,
  type GossipSubComponents,
  gossipsub,
  StrictNoSign,
  type TopicValidatorResult,
} from '@libp2p/gossipsub';
import { identify } from '@libp2p/identify';
import type { Connection, MultiaddrConnection, PeerId, Stream } from '@libp2p/interface';
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id';
import { tcp } from '@libp2p/tcp';
import { multiaddr } from '@multiformats/multiaddr';
import { chainIdCodec, encode, equalBytes, MAX_TX_BYTES, toHex } from '@unc/core';
import * as lp from 'it-length-prefixed';
import { createLibp2p, type Libp2p } from 'libp2p';
import { sleep, systemClock } from '../clock.js';
import { MAX_COMPACT_PROPOSAL_BYTES } from '../consensus/wire.js';
import { type Logger, silentLogger } from '../log.js';
import { announceable, namedListenAddresses, storablePeerAddress } from './announce.js';
import {
  type ConnectionLimits,
  connectionLimits,
  connectionManagerSettings,
  exactAddressOf,
  type InboundKeys,
  inboundKeys,
  streamMuxerSettings,
} from './connection-limits.js';
import {
  type BlockRange,
  blockRangeCodec,
  decodeBlockRangeRequest,
  decodeStatusFrame,
  decodeTxRequest,
  MAX_REQUEST_BYTES,
  MAX_STATUS_BYTES,
  MAX_TX_REQUEST_BYTES,
  statusCodec,
  type TxRequest,
  txRequestCodec,
} from './frames.js';
import { gossipMessageId } from './message-id.js';
import {
  BlockAnswerBudget,
  BlockReadSlots,
  DEFAULT_BLOCK_SERVE_LIMITS,
  ServeBudget,
  type ServeBudgetLimits,
} from './serve-budget.js';
import {
  type BlockRequestOptions,
  type BlockTake,
  type ChainStatus,
  type DirectMessage,
  type GossipTopic,
  MAX_BLOCKS_PER_REQUEST,
  MAX_DIRECT_MESSAGES,
  MAX_TXS_PER_REQUEST,
  type Network,
  type NetworkHandlers,
  type PeerInfo,
  type Verdict,
} from './types.js';
import {
  connectionBacklog,
  connectionWriteBytes,
  type UnreadHolding,
  unreadToClose,
  writeFrameInChunks,
} from './write-gate.js';

export const GOSSIP_TOPICS: readonly GossipTopic[] = [
  'tx',
  'proposal',
  'compact-proposal',
  'vote',
  'evidence',
  // Last: the direct protocol numbers topics by their place here.
  'validator-peer',
];

/**
 * Per-topic ceilings on a gossiped message's data. A transaction is at most `maxTxBytes` (64 KiB)
 * and a proposal carries a whole block (at most `maxBlockBytes`, 8 MiB, plus header and commit),
 * so each limit leaves headroom over the protocol's own maximum without letting one peer make us
 * buffer much more than a legitimate message could ever need. A compact proposal carries 32 bytes
 * per transaction instead of the transaction (at most 100,000 of them: 3.2 MB).
 */
export const DEFAULT_MAX_MESSAGE_BYTES: Readonly<Record<GossipTopic, number>> = {
  tx: 128 * 1024,
  proposal: 9 * 1024 * 1024,
  'compact-proposal': MAX_COMPACT_PROPOSAL_BYTES,
  vote: 4 * 1024,
  evidence: 64 * 1024,
  // A public key, a peer id of at most 128 bytes and a signature (consensus/peer-binding.ts).
  'validator-peer': 512,
};

/**
 * The most addresses `tooFastFrom` keeps a rate window for: past it the ended windows go (every
 * one, should they all be current). Each is a few dozen bytes; a connection's socket costs more.
 */
const MAX_RATE_ENTRIES = 16_384;

/** The part of libp2p's components `listenAddrs` reads (the announced addresses are filtered). */
interface ListenComponents {
  transportManager: { getAddrs(): { toString(): string }[] };
}

/** An inbound connection in its handshake: its socket, its remote multiaddr and when it came. */
interface PendingInbound {
  conn: MultiaddrConnection;
  remote: string;
  /** Its subnet (`inboundKeys`): the per-subnet limit counts over every address's entries. */
  subnet: string;
  since: number;
}

function withoutPeerId(addr: string): string {
  return addr.replace(/\/p2p\/[^/]+$/, '');
}

/** How long after its last connection closed a peer leaves libp2p's peer store (`forgetLater`). */
const FORGET_PEER_AFTER_MS = 2_000;

/** One encoded block with its commit: the largest block plus a generous commit. */
export const DEFAULT_MAX_BLOCK_FRAME_BYTES = 9 * 1024 * 1024;
/** A block-range answer stops growing here, so one request cannot pin 64 × 9 MiB in memory. */
export const DEFAULT_MAX_BLOCKS_RESPONSE_BYTES = 64 * 1024 * 1024;

/**
 * A connection holding more than this in user space for its peer to read (`connectionWriteBytes`:
 * its socket, TCP and Noise write buffers and every stream's) is closed: its peer is not reading.
 * Block answers bound their own share (write-gate.ts), but gossipsub writes each message to a
 * peer's outbound stream with no backpressure and no bound, and a direct send, a `/txs/1` answer or
 * a stream's negotiation hands its first bytes down whatever the connection holds: a peer that
 * stopped reading its socket had every gossiped message kept for it, without end (review of
 * p2pbound). Three of the largest proposals: an honest reader on a slow link that gets a full
 * proposal and the transactions around it stays far below.
 */
export const DEFAULT_MAX_CONNECTION_WRITE_BYTES = 32 * 1024 * 1024;
/**
 * What all connections together may hold for their peers to read: past it, the connection holding
 * the most is closed, then the next, until the rest fit. The per-connection bound alone let a peer
 * with many connections (or many peers) each stay just under it pin 32 MiB × the connection limit
 * (200 by default: 6.4 GiB). The one holding the most is the one not reading (an honest reader
 * holds what a round trip takes), never the newest or an arbitrary one, so the peers that read
 * stay connected.
 */
export const DEFAULT_MAX_TOTAL_WRITE_BYTES = 256 * 1024 * 1024;
/** How often the connections' write buffers are looked at (`DEFAULT_MAX_CONNECTION_WRITE_BYTES`). */
export const DEFAULT_WRITE_WATCH_INTERVAL_MS = 1_000;

/** How much each kind of misbehaviour costs. Scores start at 0 and recover towards it over time. */
export const PENALTY = {
  invalidGossip: 10,
  oversizedGossip: 20,
  malformedRequest: 20,
  badResponse: 25,
  /** A timeout or a broken stream is as likely to be the network as the peer: a light cost. */
  failedRequest: 5,
  /** `penalize()`: misbehaviour found by the node (e.g. a sync answer whose block does not apply). */
  reported: 20,
} as const;

export interface ScoringOptions {
  /** At or below this score the peer is disconnected and refused for `banMs`. Default -50. */
  threshold: number;
  /** How long a peer stays refused. Default 10 minutes. */
  banMs: number;
  /** Points per second a negative score recovers, so old, rare faults are forgiven. Default 0.1. */
  recoveryPerSecond: number;
}

/** A kind of misbehaviour (a key of PENALTY): a bounded label, where a penalty's reason is free text. */
export type PenaltyKind = keyof typeof PENALTY;

/**
 * Why a peer was banned, a bounded label: its score fell to the threshold (`score`), a banned peer
 * connected again (`reconnected`: the ban starts over), it does not speak this chain's protocols
 * (`unsupported`) or its status names another chain or genesis (`wrong-chain`).
 */
export type BanCause = 'score' | 'reconnected' | 'unsupported' | 'wrong-chain';

/**
 * Optional hooks, e.g. for Prometheus counters; each is called synchronously and must not throw.
 * `reason` is free text for logs (it may name a topic, a size, an error); `kind` and `cause` are
 * the bounded forms of it, for labels.
 */
export interface NetworkMetricsHooks {
  gossip?(topic: GossipTopic, verdict: Verdict, bytes: number): void;
  penalty?(peer: string, reason: string, score: number, kind: PenaltyKind): void;
  ban?(peer: string, reason: string, cause: BanCause): void;
  peerCount?(count: number): void;
  request?(protocol: RequestKind, outcome: RequestOutcome, ms: number): void;
  /** A block-serving read slot held by a stalled write went to a waiting request (serve-budget.ts). */
  blockSlotTakenOver?(): void;
  /**
   * A connection was closed for holding what its peer did not read: more than
   * `maxConnectionWriteBytes` (`bound` 'connection'), or the most of all connections while they
   * held more than `maxTotalWriteBytes` together ('total').
   */
  unreadConnectionClosed?(bound: 'connection' | 'total'): void;
}

export type RequestOutcome =
  | 'ok'
  | 'timeout'
  | 'unreachable'
  | 'unsupported'
  | 'bad-response'
  | 'failed'
  | 'cancelled';

export interface NetworkOptions {
  /** Multiaddrs to listen on, e.g. `/ip4/0.0.0.0/tcp/26656` or `/ip4/127.0.0.1/tcp/0`. */
  listen: string[];
  /**
   * Multiaddrs announced to peers (identify) instead of the listen addresses: where peers reach
   * this node (behind a NAT: the public address the host does not see). Announced as given.
   * Absent: the listen addresses, less the non-public ones a wildcard listen expands to (the
   * loopback, the LAN, link-local): a non-public address the operator names in `listen` is
   * announced (announce.ts). A public one libp2p announces only once AutoNAT verified it, which
   * is not run: a wildcard or public listen announces nothing without `announce`.
   */
  announce?: string[];
  /** Peers (multiaddrs, ideally with /p2p/<id>) dialled at start and again while under `targetPeers`. */
  bootstrap?: string[];
  /** 32-byte Ed25519 seed of the node's network identity; the same seed gives the same peer id. */
  nodeKey: Uint8Array;
  chainId: string;
  genesisHash: Uint8Array;
  handlers: NetworkHandlers;
  maxMessageBytes?: Partial<Record<GossipTopic, number>>;
  maxBlockFrameBytes?: number;
  maxBlocksResponseBytes?: number;
  /** Below this many connected peers the bootstrap list is redialled. Default 8. */
  targetPeers?: number;
  /** Period of the maintenance pass (redial, expired bans, unfinished handshakes). Default 5000. */
  maintenanceIntervalMs?: number;
  /** Deadline of one request (dial, send, whole answer). Default 10000. */
  requestTimeoutMs?: number;
  scoring?: Partial<ScoringOptions>;
  /** What `/txs/1` serves per peer and in all per interval (serve-budget.ts). */
  txServe?: Partial<ServeBudgetLimits>;
  /** What `/blocks/1` serves per peer and in all per interval (serve-budget.ts). */
  blockServe?: Partial<ServeBudgetLimits>;
  /**
   * A connection holding more than this for its peer to read is closed (`DEFAULT_MAX_CONNECTION_WRITE_BYTES`,
   * 32 MiB), looked at every `writeWatchIntervalMs` (default 1000).
   */
  maxConnectionWriteBytes?: number;
  /**
   * All connections holding more than this together for their peers to read: the one holding the
   * most is closed, until the rest fit (`DEFAULT_MAX_TOTAL_WRITE_BYTES`, 256 MiB).
   */
  maxTotalWriteBytes?: number;
  writeWatchIntervalMs?: number;
  /** Connection limits (see `ConnectionLimits`); explicit values, never the library's defaults. */
  connections?: Partial<ConnectionLimits>;
  logger?: Logger;
  metrics?: NetworkMetricsHooks;
  /**
   * The clock (ms) bans, score recovery, the serve budgets and pending handshakes are timed by: monotonic by default
   * (`performance.now`). On the wall clock a step back (NTP, an operator, a VM restore) froze every
   * peer's serve window and aged every score down for as long as the step; a step forward lifted
   * every ban and refilled every budget at once.
   */
  now?: () => number;
}

/** What `startNetwork` returns: the `Network` the node uses, plus operator/test conveniences. */
export interface Libp2pNetwork extends Network {
  readonly chainId: string;
  /** The underlying node, for embedders that need more of libp2p (and for tests of misbehaviour). */
  readonly libp2p: Libp2p;
  /** Dials a multiaddr and resolves with the peer id once connected. */
  dial(addr: string): Promise<string>;
  /** Always offered here: libp2p tells when a peer's last connection closes. */
  onPeerDisconnected(listener: (peer: string) => void): () => void;
  /** Whether the peer is currently refused (score fell below the threshold, or another chain). */
  isBanned(peer: string): boolean;
  /** Peers in this node's gossipsub mesh for a topic (peers it forwards that topic to). */
  meshPeers(topic: GossipTopic): string[];
  /** The connection limits in force. */
  readonly connectionLimits: ConnectionLimits;
}

export function gossipTopicName(chainId: string, topic: GossipTopic): string {
  return `/unc/${chainId}/${topic}/1`;
}

export function statusProtocol(chainId: string): string {
  return `/unc/${chainId}/status/1`;
}

export function blocksProtocol(chainId: string): string {
  return `/unc/${chainId}/blocks/1`;
}

export function txsProtocol(chainId: string): string {
  return `/unc/${chainId}/txs/1`;
}

/**
 * Gossip messages pushed to one peer (`sendDirect`, the catch-up of a new connection): frames of
 * a topic byte (its index in GOSSIP_TOPICS) and the message, one stream per catch-up.
 */
export function directProtocol(chainId: string): string {
  return `/unc/${chainId}/direct/1`;
}

export type RequestKind = 'status' | 'blocks' | 'txs';

function protocolOf(kind: RequestKind, chainId: string): string {
  return kind === 'status'
    ? statusProtocol(chainId)
    : kind === 'blocks'
      ? blocksProtocol(chainId)
      : txsProtocol(chainId);
}

/** The peer id a node key gives, without starting anything (e.g. to write bootstrap lists). */
export async function peerIdFromNodeKey(seed: Uint8Array): Promise<string> {
  return peerIdFromPrivateKey(await privateKeyFromSeed(seed)).toString();
}

async function privateKeyFromSeed(seed: Uint8Array) {
  if (!(seed instanceof Uint8Array) || seed.byteLength !== 32) {
    throw new TypeError(
      `node key must be a 32-byte Ed25519 seed, got ${seed?.byteLength ?? typeof seed} bytes`,
    );
  }
  return generateKeyPairFromSeed('Ed25519', seed);
}

/** Why a request failed; the kind decides how much (if anything) the peer is blamed. */
export class PeerRequestError extends Error {
  override readonly name = 'PeerRequestError';
  constructor(
    readonly kind: Exclude<RequestOutcome, 'ok'>,
    readonly peer: string,
    message: string,
  ) {
    super(message);
  }
}

class MalformedRequest extends Error {}

/** Methods the gossipsub class has but its exported `GossipSub` interface leaves out. */
interface GossipSubService extends GossipSub {
  reportMessageValidationResult(
    msgId: string,
    propagationSource: string,
    acceptance: TopicValidatorResult,
  ): void;
  getMeshPeers(topic: string): string[];
}

interface ScoreEntry {
  score: number;
  updatedAt: number;
}

function peerIdOfAddr(addr: string): string | null {
  const m = /\/p2p\/([^/]+)$/.exec(addr);
  return m ? m[1]! : null;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * One length-prefixed frame: a request, a status, a transaction (at most 64 KiB). A block's frame
 * (up to 9 MiB, over the library's own 4 MiB default bound) goes in pieces (write-gate.ts).
 */
async function sendFrame(stream: Stream, data: Uint8Array, signal: AbortSignal): Promise<void> {
  const frame = lp.encode.single(data, { maxDataLength: data.byteLength });
  if (!stream.send(frame)) await stream.onDrain({ signal });
}

/** `source`'s chunks, each counted (`onBytes`) as it arrives. */
async function* countingSource<T extends { byteLength: number }>(
  source: AsyncIterable<T>,
  onBytes: (bytes: number) => void,
): AsyncGenerator<T> {
  for await (const chunk of source) {
    onBytes(chunk.byteLength);
    yield chunk;
  }
}

/** A direct frame's start: the varint length of topic byte and message, then the topic byte. */
function directFrameHeader(topicIndex: number, messageBytes: number): Uint8Array {
  const header: number[] = [];
  let n = messageBytes + 1;
  for (; n >= 0x80; n = Math.floor(n / 0x80)) header.push((n % 0x80) | 0x80);
  header.push(n, topicIndex);
  return Uint8Array.from(header);
}

/** The first length-prefixed frame on a stream, bounded by `maxBytes`. */
async function readFrame(stream: Stream, maxBytes: number): Promise<Uint8Array> {
  try {
    for await (const frame of lp.decode(stream, { maxDataLength: maxBytes })) return frame.subarray();
  } catch (err) {
    throw new MalformedRequest(`unreadable request: ${errorMessage(err)}`);
  }
  throw new MalformedRequest('stream ended before a request frame');
}

class Libp2pNetworkImpl implements Libp2pNetwork {
  private readonly scores = new Map<string, ScoreEntry>();
  private readonly bannedUntil = new Map<string, number>();
  private readonly statuses = new Map<string, ChainStatus>();
  private readonly handshaking = new Set<string>();
  private readonly connectListeners = new Set<(peer: string) => void>();
  private readonly disconnectListeners = new Set<(peer: string) => void>();
  private readonly topicByWire = new Map<string, GossipTopic>();
  private readonly maxBytes: Record<GossipTopic, number>;
  private readonly scoring: ScoringOptions;
  private readonly requestTimeoutMs: number;
  private readonly maxBlockFrameBytes: number;
  private readonly maxBlocksResponseBytes: number;
  private readonly txServeBudget: ServeBudget;
  private readonly blockServeBudget: ServeBudget;
  /** Block reads in flight for `/blocks/1` answers: what their waits may pin (serve-budget.ts). */
  private readonly blockReadSlots = new BlockReadSlots();
  /** The connection limits in force (explicit, connection-limits.ts). */
  readonly connectionLimits: ConnectionLimits;
  private readonly log: Logger;
  private node!: Libp2p<{ identify: unknown; pubsub: GossipSubService }>;
  private timer: NodeJS.Timeout | undefined;
  private writeWatch: NodeJS.Timeout | undefined;
  private stopped = false;
  /** What each connection held unread at the last look (`closeUnread`), by connection id. */
  private unreadBefore = new Map<string, number>();
  /** Inbound connections in their handshake, by address (`inboundKeys`, `tooManyPendingFrom`). */
  private pendingByAddress = new Map<string, PendingInbound[]>();
  /** Inbound connections per address and per subnet (`inboundKeys`) in its current one-second window (`tooFastFrom`). */
  private readonly inboundRate = new Map<string, { since: number; count: number }>();
  /** The bootstrap peers' IP addresses (`exactAddressOf`), exempt from every per-address limit. */
  private readonly bootstrapAddresses: ReadonlySet<string>;
  /**
   * Each open connection's keys (`inboundKeys`) and exemption, read once (`countedAs`): the gater
   * looks at every open connection for each inbound one, and reading an address (an IPv6 one
   * through the URL parser) each time cost ~20 µs a connection, 4 ms a look at 200 of them, at
   * whatever rate an attacker's fresh addresses reached the gater, on the thread consensus runs on.
   */
  private readonly connectionKeys = new WeakMap<Connection, { keys: InboundKeys | null; exempt: boolean }>();
  /** How many open connections' addresses `countedAs` read (once each; p2p-defaults.test.ts). */
  connectionAddressReads = 0;
  peerId = '';
  /** NetworkOptions.now: what every p2p limit is timed by, never the wall clock. */
  private readonly now: () => number;

  constructor(private readonly opts: NetworkOptions) {
    this.now = opts.now ?? (() => performance.now());
    this.blockReadSlots.onTakenOver = () => this.opts.metrics?.blockSlotTakenOver?.();
    this.maxBytes = { ...DEFAULT_MAX_MESSAGE_BYTES, ...opts.maxMessageBytes };
    this.scoring = { threshold: -50, banMs: 10 * 60_000, recoveryPerSecond: 0.1, ...opts.scoring };
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 10_000;
    this.maxBlockFrameBytes = opts.maxBlockFrameBytes ?? DEFAULT_MAX_BLOCK_FRAME_BYTES;
    this.maxBlocksResponseBytes = opts.maxBlocksResponseBytes ?? DEFAULT_MAX_BLOCKS_RESPONSE_BYTES;
    this.txServeBudget = new ServeBudget(opts.txServe);
    this.blockServeBudget = new ServeBudget(opts.blockServe, DEFAULT_BLOCK_SERVE_LIMITS, 'blockServe');
    this.connectionLimits = connectionLimits(opts.connections);
    this.bootstrapAddresses = new Set(
      (opts.bootstrap ?? []).map(exactAddressOf).filter((a): a is string => a !== null),
    );
    this.log = (opts.logger ?? silentLogger).child('p2p');
    for (const t of GOSSIP_TOPICS) this.topicByWire.set(gossipTopicName(opts.chainId, t), t);
  }

  get chainId(): string {
    return this.opts.chainId;
  }

  get libp2p(): Libp2p {
    return this.node;
  }

  /**
   * Where it listens, every address (with its peer id), whatever is announced (`announce`): the
   * transports' own addresses, a wildcard expanded to each interface's.
   */
  get listenAddrs(): string[] {
    const { transportManager } = (this.node as unknown as { components: ListenComponents }).components;
    return transportManager.getAddrs().map((m) => `${m.toString()}/p2p/${this.peerId}`);
  }

  async start(): Promise<void> {
    const { opts } = this;
    if (opts.genesisHash.byteLength !== 32) throw new TypeError('genesisHash must be 32 bytes');
    encode(chainIdCodec, opts.chainId); // a chain id the status codec cannot carry fails here, not per peer
    for (const t of GOSSIP_TOPICS) {
      const max = this.maxBytes[t];
      if (!Number.isSafeInteger(max) || max <= 0)
        throw new RangeError(`maxMessageBytes.${t} must be positive`);
    }
    for (const key of ['maxConnectionWriteBytes', 'maxTotalWriteBytes', 'writeWatchIntervalMs'] as const) {
      const v = opts[key];
      if (v !== undefined && (!Number.isSafeInteger(v) || v <= 0))
        throw new RangeError(`${key} must be positive`);
    }
    for (const [what, addrs] of [
      ['bootstrap', opts.bootstrap],
      ['announce', opts.announce],
    ] as const) {
      for (const addr of addrs ?? []) {
        try {
          multiaddr(addr);
        } catch (err) {
          throw new TypeError(`invalid ${what} multiaddr ${JSON.stringify(addr)}: ${errorMessage(err)}`);
        }
      }
    }
    const privateKey = await privateKeyFromSeed(opts.nodeKey);
    const largestMessage = Math.max(...GOSSIP_TOPICS.map((t) => this.maxBytes[t]));
    const refused = (peer: PeerId) => this.isBanned(peer.toString());
    const named = namedListenAddresses(opts.listen);
    this.node = await createLibp2p({
      start: false,
      privateKey,
      addresses: {
        listen: opts.listen,
        ...(opts.announce?.length
          ? { announce: opts.announce }
          : { announceFilter: (addrs) => addrs.filter((a) => announceable(a.toString(), named)) }),
      },
      // What peers announce is kept only where public (announce.ts): none of it is dialled anyway.
      peerStore: { addressFilter: (_peer, addr) => storablePeerAddress(addr.toString()) },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux(streamMuxerSettings(this.connectionLimits))],
      // Explicit limits, never the library's defaults (connection-limits.ts).
      connectionManager: connectionManagerSettings(this.connectionLimits, opts.bootstrap),
      connectionGater: {
        denyInboundConnection: (conn) =>
          this.tooFastFrom(conn.remoteAddr.toString()) ||
          this.tooManyFrom(conn.remoteAddr.toString()) ||
          this.tooManyPendingFrom(conn),
        denyDialPeer: refused,
        denyInboundEncryptedConnection: refused,
        denyOutboundEncryptedConnection: refused,
      },
      services: {
        identify: identify(),
        pubsub: gossipsub({
          // Consensus messages carry their own validator signatures; a libp2p signature per message
          // would only add bytes and CPU. Ids are hashes of the signed content (message-id.ts), so
          // the same transaction published by two nodes is one message, and a vote or proposal
          // re-wrapped with another (unsigned) `sentAt` is a duplicate, not relayed again.
          globalSignaturePolicy: StrictNoSign,
          msgIdFn: (msg) => gossipMessageId(msg.topic, this.topicByWire.get(msg.topic), msg.data),
          // Nothing is forwarded until handlers.onGossip has judged it (reportMessageValidationResult).
          asyncValidation: true,
          allowPublishToZeroTopicPeers: true,
          ignoreDuplicatePublishError: true,
          emitSelf: false,
          allowedTopics: [...this.topicByWire.keys()],
          // The RPC frame bound: one maximal message plus room for control data. Per-topic limits
          // are checked on each message below, where the sender can be blamed.
          maxInboundDataLength: largestMessage + 1024 * 1024,
          // A peer reads and writes gossip on one stream each way; a second covers a replacement
          // while the old one closes. The library's 32 inbound let one peer hold 32 streams, each
          // buffering up to maxInboundDataLength (a stream it replaces is only half-closed).
          maxInboundStreams: 2,
          maxOutboundStreams: 2,
          // Peer exchange: a PRUNE may name other peers (signed records), which gossipsub then
          // dials by peer id at whatever addresses they carry, past `openStream`'s rule. Refused
          // from everyone (the library takes it from a peer scoring 10 or more; ours score 0 now).
          scoreThresholds: { acceptPXThreshold: Number.POSITIVE_INFINITY },
        }) as unknown as (components: GossipSubComponents) => GossipSubService,
      },
    });
    this.peerId = this.node.peerId.toString();

    await this.node.handle(statusProtocol(opts.chainId), (s, c) => this.serve('status', s, c), {
      maxInboundStreams: 4,
      maxOutboundStreams: 4,
    });
    await this.node.handle(blocksProtocol(opts.chainId), (s, c) => this.serve('blocks', s, c), {
      maxInboundStreams: 4,
      maxOutboundStreams: 8,
    });
    // Transactions of the proposal being decided (compact proposals): few streams per peer.
    await this.node.handle(txsProtocol(opts.chainId), (s, c) => this.serve('txs', s, c), {
      maxInboundStreams: 2,
      maxOutboundStreams: 4,
    });
    // Two streams per connection, each way: one for consensus (a catch-up, a re-send, a relayed
    // held proposal, a binding) and one for the mempool share (mempool-reactor.ts, one batch per
    // stream, one at a time), which the receiver reads a frame at a time, admitting each batch
    // (signature checks) before the next: with one stream, a consensus message sent meanwhile
    // was refused (too many streams), not queued. A peer that does not read holds only its own.
    await this.node.handle(directProtocol(opts.chainId), (s, c) => this.receiveDirect(s, c), {
      maxInboundStreams: 2,
      maxOutboundStreams: 2,
    });
    const pubsub = this.node.services.pubsub;
    pubsub.addEventListener('gossipsub:message', (evt) => {
      const { propagationSource, msgId, msg } = evt.detail;
      void this.validate(msgId, propagationSource.toString(), msg.topic, msg.data);
    });
    this.node.addEventListener('peer:connect', (evt) => {
      void this.handshake(evt.detail.toString());
      this.opts.metrics?.peerCount?.(this.node.getPeers().length);
    });
    // libp2p tells of a peer's disconnection once its last connection closed.
    this.node.addEventListener('peer:disconnect', (evt) => {
      const peer = evt.detail.toString();
      this.forgetLater(evt.detail);
      this.statuses.delete(peer);
      this.opts.metrics?.peerCount?.(this.node.getPeers().length);
      for (const l of this.disconnectListeners) l(peer);
    });

    try {
      await this.node.start();
    } catch (err) {
      // E.g. the port is taken: release whatever did start, and say what was asked for.
      await Promise.resolve(this.node.stop()).catch(() => undefined);
      throw new Error(`could not start p2p on ${opts.listen.join(', ')}: ${errorMessage(err)}`, {
        cause: err,
      });
    }
    for (const wire of this.topicByWire.keys()) pubsub.subscribe(wire);
    this.log.info('p2p listening', { peerId: this.peerId, addrs: this.listenAddrs.join(',') });

    this.dialBootstrap();
    this.timer = setInterval(() => this.maintain(), opts.maintenanceIntervalMs ?? 5000);
    this.timer.unref();
    this.writeWatch = setInterval(
      () => this.closeUnread(),
      opts.writeWatchIntervalMs ?? DEFAULT_WRITE_WATCH_INTERVAL_MS,
    );
    this.writeWatch.unref();
  }

  // ---- gossip ----------------------------------------------------------------------------------

  async publish(topic: GossipTopic, data: Uint8Array): Promise<void> {
    const max = this.maxBytes[topic];
    if (max === undefined) throw new TypeError(`unknown gossip topic: ${String(topic)}`);
    if (data.byteLength > max) {
      throw new RangeError(`${topic} message of ${data.byteLength} bytes exceeds the limit of ${max}`);
    }
    await this.node.services.pubsub.publish(gossipTopicName(this.opts.chainId, topic), data);
  }

  async sendDirect(peer: string, messages: readonly DirectMessage[]): Promise<void> {
    if (messages.length === 0 || this.stopped) return;
    if (messages.length > MAX_DIRECT_MESSAGES)
      throw new RangeError(`a direct send carries at most ${MAX_DIRECT_MESSAGES} messages`);
    const signal = AbortSignal.timeout(this.requestTimeoutMs);
    const stream = await this.openStream(peerIdFromString(peer), directProtocol(this.opts.chainId), signal);
    // A peer that never reads costs us one stream until the deadline, no more.
    const onAbort = () => stream.abort(new Error('direct send timed out'));
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      for (const { topic, data } of messages) {
        const index = GOSSIP_TOPICS.indexOf(topic);
        if (index < 0 || data.byteLength > this.maxBytes[topic]) continue;
        // The length prefix and topic byte, then the message by reference: the driver shares one
        // encoding among all its catch-ups, and a peer that does not read must not make each
        // send in flight hold a copy of a block (up to 9 MiB) until the deadline.
        if (!stream.send(directFrameHeader(index, data.byteLength))) await stream.onDrain({ signal });
        if (!stream.send(data)) await stream.onDrain({ signal });
      }
      await stream.close({ signal });
    } catch (err) {
      stream.abort(err as Error);
      throw err;
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** A peer's catch-up: each message checked like gossip (and scored), never forwarded. */
  private async receiveDirect(stream: Stream, connection: Connection): Promise<void> {
    const peer = connection.remotePeer.toString();
    if (this.isBanned(peer)) {
      stream.abort(new Error('peer is banned'));
      return;
    }
    const largest = Math.max(...GOSSIP_TOPICS.map((t) => this.maxBytes[t]));
    const signal = AbortSignal.timeout(this.requestTimeoutMs);
    const onAbort = () => stream.abort(new Error('direct receive timed out'));
    signal.addEventListener('abort', onAbort, { once: true });
    let count = 0;
    try {
      for await (const chunk of lp.decode(stream, { maxDataLength: largest + 1 })) {
        const frame = chunk.subarray();
        const topic = GOSSIP_TOPICS[frame[0] ?? 255];
        if (++count > MAX_DIRECT_MESSAGES || topic === undefined) {
          this.scoreDown(peer, 'invalidGossip', 'malformed direct message');
          stream.abort(new Error('malformed direct message'));
          return;
        }
        if (frame.byteLength - 1 > this.maxBytes[topic]) {
          // Priced as oversized gossip is (validate), not as the lighter malformed message.
          this.scoreDown(peer, 'oversizedGossip', `oversized direct ${topic} message`);
          stream.abort(new Error('oversized direct message'));
          return;
        }
        let verdict: Verdict = 'ignore';
        try {
          verdict = await this.opts.handlers.onGossip(topic, frame.subarray(1), peer, true);
        } catch (err) {
          this.log.error('direct message validation threw; ignoring it', {
            topic,
            peer,
            error: err as Error,
          });
        }
        if (verdict === 'reject') this.scoreDown(peer, 'invalidGossip', `invalid direct ${topic} message`);
        if (this.stopped || this.isBanned(peer)) {
          stream.abort(new Error('stopped'));
          return;
        }
      }
      await stream.close({ signal });
    } catch (err) {
      const name = (err as Error).name;
      // A length prefix over every gossip limit: refused before its data is read, and the
      // sender's doing, as an oversized gossip message is.
      if (name === 'InvalidDataLengthError' || name === 'InvalidDataLengthLengthError')
        this.scoreDown(peer, 'oversizedGossip', 'oversized direct message');
      else if (!signal.aborted) this.log.debug('direct receive failed', { peer, error: errorMessage(err) });
      stream.abort(err as Error);
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  private async validate(msgId: string, from: string, wireTopic: string, data: Uint8Array): Promise<void> {
    const topic = this.topicByWire.get(wireTopic);
    let verdict: Verdict = 'ignore';
    if (topic === undefined) {
      verdict = 'reject';
      this.scoreDown(from, 'invalidGossip', `message on unknown topic ${wireTopic}`);
    } else if (data.byteLength > this.maxBytes[topic]) {
      verdict = 'reject';
      this.scoreDown(
        from,
        'oversizedGossip',
        `oversized ${topic} message (${data.byteLength} > ${this.maxBytes[topic]} bytes)`,
      );
    } else if (!this.isBanned(from)) {
      try {
        const v = await this.opts.handlers.onGossip(topic, data, from);
        if (v === 'accept' || v === 'ignore' || v === 'reject') verdict = v;
        else
          this.log.error('onGossip returned no verdict; ignoring the message', { topic, verdict: String(v) });
      } catch (err) {
        // A bug in our own validator must not be blamed on the peer.
        this.log.error('gossip validation threw; ignoring the message', { topic, from, error: err as Error });
      }
      if (verdict === 'reject') this.scoreDown(from, 'invalidGossip', `invalid ${topic} message`);
    }
    if (this.stopped) return;
    this.node.services.pubsub.reportMessageValidationResult(msgId, from, verdict as TopicValidatorResult);
    if (topic !== undefined) this.opts.metrics?.gossip?.(topic, verdict, data.byteLength);
  }

  meshPeers(topic: GossipTopic): string[] {
    return this.node.services.pubsub.getMeshPeers(gossipTopicName(this.opts.chainId, topic));
  }

  // ---- requests --------------------------------------------------------------------------------

  async requestStatus(peer: string): Promise<ChainStatus> {
    const [frame] = await this.request(
      'status',
      peer,
      new Uint8Array(0),
      MAX_STATUS_BYTES,
      1,
      MAX_STATUS_BYTES,
    );
    if (frame === undefined) {
      // What a peer that hangs up on us mid-request looks like: not provably malicious.
      this.scoreDown(peer, 'failedRequest', 'empty status answer');
      throw new PeerRequestError('failed', peer, `status request to ${peer}: empty answer`);
    }
    let status: ChainStatus;
    try {
      status = decodeStatusFrame(frame);
    } catch (err) {
      this.scoreDown(peer, 'badResponse', `malformed status: ${errorMessage(err)}`);
      throw new PeerRequestError('bad-response', peer, `malformed status from ${peer}: ${errorMessage(err)}`);
    }
    if (status.chainId !== this.opts.chainId || !equalBytes(status.genesisHash, this.opts.genesisHash)) {
      const why = `on chain ${status.chainId} with genesis ${toHex(status.genesisHash)}`;
      this.ban(peer, 'wrong-chain', `peer is ${why}`);
      throw new PeerRequestError('bad-response', peer, `peer ${peer} is ${why}`);
    }
    this.statuses.set(peer, status);
    return status;
  }

  async requestTxs(
    peer: string,
    blockHash: Uint8Array,
    ids: readonly Uint8Array[],
    cancel?: AbortSignal,
  ): Promise<Uint8Array[]> {
    if (ids.length === 0 || ids.length > MAX_TXS_PER_REQUEST) {
      throw new RangeError(`a transaction request names 1…${MAX_TXS_PER_REQUEST} ids`);
    }
    return this.request(
      'txs',
      peer,
      encode(txRequestCodec, { blockHash, ids: [...ids] }),
      MAX_TX_BYTES,
      ids.length,
      this.maxBlockFrameBytes,
      cancel,
    );
  }

  async requestBlocks(
    peer: string,
    from: bigint,
    to: bigint,
    opts: BlockRequestOptions = {},
  ): Promise<Uint8Array[]> {
    if (from < 0n || to < from || to - from + 1n > BigInt(MAX_BLOCKS_PER_REQUEST)) {
      throw new RangeError(`block range ${from}…${to} must be 1…${MAX_BLOCKS_PER_REQUEST} ascending heights`);
    }
    return this.request(
      'blocks',
      peer,
      encode(blockRangeCodec, { from, to }),
      this.maxBlockFrameBytes,
      Number(to - from + 1n),
      this.maxBlocksResponseBytes,
      opts.signal,
      opts.onBlock,
      opts.onBytes,
    );
  }

  /**
   * One request: a length-prefixed request frame, then the answer's frames until the peer closes
   * its side. The deadline covers everything, so a peer that trickles bytes cannot hold us.
   */
  private async request(
    kind: RequestKind,
    peer: string,
    body: Uint8Array,
    maxFrameBytes: number,
    maxFrames: number,
    maxTotalBytes: number,
    cancel?: AbortSignal,
    onFrame?: () => void,
    onBytes?: (bytes: number) => void,
  ): Promise<Uint8Array[]> {
    const started = performance.now();
    const protocol = protocolOf(kind, this.opts.chainId);
    const fail = (failure: Exclude<RequestOutcome, 'ok'>, message: string): never => {
      // Abandoned by the caller: nobody's fault, whatever the stream looked like when it stopped.
      const outcome = cancel?.aborted ? 'cancelled' : failure;
      this.opts.metrics?.request?.(kind, outcome, performance.now() - started);
      if (outcome === 'bad-response') this.scoreDown(peer, 'badResponse', message);
      else if (outcome === 'timeout' || outcome === 'failed') this.scoreDown(peer, 'failedRequest', message);
      throw new PeerRequestError(outcome, peer, `${kind} request to ${peer}: ${message}`);
    };
    let id: PeerId;
    try {
      id = peerIdFromString(peer);
    } catch {
      throw new TypeError(`not a peer id: ${peer}`);
    }
    const deadline = AbortSignal.timeout(this.requestTimeoutMs);
    const signal = cancel ? AbortSignal.any([deadline, cancel]) : deadline;
    if (cancel?.aborted) return fail('cancelled', 'abandoned before it was sent');
    let stream: Stream;
    try {
      stream = await this.openStream(id, protocol, signal);
    } catch (err) {
      const e = err as Error;
      if (e.name === 'UnsupportedProtocolError') return fail('unsupported', `does not speak ${protocol}`);
      if (signal.aborted) return fail('timeout', 'timed out opening a stream');
      return fail('unreachable', e.message);
    }
    const onAbort = () => stream.abort(new Error('request timed out'));
    signal.addEventListener('abort', onAbort, { once: true });
    const frames: Uint8Array[] = [];
    try {
      await sendFrame(stream, body, signal);
      await stream.close({ signal });
      let total = 0;
      // Bytes reported as they arrive, not only whole frames: a 9 MiB block on a modest link takes
      // seconds, and the syncer would take a peer sending it for a silent one (sync.ts hedging).
      const source = onBytes ? countingSource(stream, onBytes) : stream;
      for await (const frame of lp.decode(source, { maxDataLength: maxFrameBytes })) {
        total += frame.byteLength;
        if (frames.length === maxFrames) {
          stream.abort(new Error('too many frames'));
          return fail('bad-response', `more than the ${maxFrames} frames asked for`);
        }
        if (total > maxTotalBytes) {
          stream.abort(new Error('answer too large'));
          return fail('bad-response', `answer exceeds ${maxTotalBytes} bytes`);
        }
        frames.push(frame.subarray());
        onFrame?.();
      }
    } catch (err) {
      if (err instanceof PeerRequestError) throw err;
      const e = err as Error & { code?: string };
      if (signal.aborted) return fail('timeout', `no complete answer within ${this.requestTimeoutMs} ms`);
      if (e.name === 'InvalidDataLengthError' || e.name === 'InvalidDataLengthLengthError') {
        stream.abort(e);
        return fail('bad-response', `answer frame over ${maxFrameBytes} bytes`);
      }
      return fail('failed', e.message);
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
    this.opts.metrics?.request?.(kind, 'ok', performance.now() - started);
    return frames;
  }

  private async serve(kind: RequestKind, stream: Stream, connection: Connection): Promise<void> {
    const peer = connection.remotePeer.toString();
    if (this.isBanned(peer)) {
      stream.abort(new Error('peer is banned'));
      return;
    }
    const signal = AbortSignal.timeout(this.requestTimeoutMs);
    const onAbort = () => stream.abort(new Error('answer timed out'));
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      const request = await readFrame(stream, kind === 'txs' ? MAX_TX_REQUEST_BYTES : MAX_REQUEST_BYTES);
      if (kind === 'txs') {
        let asked: TxRequest;
        try {
          asked = decodeTxRequest(request);
        } catch (err) {
          throw new MalformedRequest(errorMessage(err));
        }
        // Only transactions of a block held for the height being decided, only those named, and
        // within the peer's budget (serve-budget.ts): past it, a short answer.
        let total = 0;
        const relaying = this.opts.handlers.isRelayingPeer?.(peer) ?? false;
        const served = this.txServeBudget.takeIds(peer, asked.ids.length, this.now())
          ? (this.opts.handlers.txs?.(asked.blockHash, asked.ids) ?? []).slice(0, asked.ids.length)
          : [];
        for (const tx of served) {
          total += tx.byteLength;
          if (total > this.maxBlockFrameBytes) break;
          if (!this.txServeBudget.takeBytes(peer, tx.byteLength, this.now(), relaying)) break;
          await sendFrame(stream, tx, signal);
        }
      } else if (kind === 'status') {
        if (request.byteLength !== 0) throw new MalformedRequest('status request must be empty');
        await sendFrame(stream, encode(statusCodec, this.opts.handlers.status()), signal);
      } else {
        let range: BlockRange;
        try {
          range = decodeBlockRangeRequest(request);
        } catch (err) {
          throw new MalformedRequest(errorMessage(err));
        }
        const { from, to } = range;
        // Within the peer's budget (serve-budget.ts), and the cap applied as each block is read,
        // not after the handler has read them all: past the cap, a short answer (a valid one);
        // past the budget, a wait for it to renew, bounded well inside the requester's deadline
        // (answering short at once got honest servers distrusted by honest syncers: sync.ts).
        const asked = Number(to - from + 1n);
        // Bytes handed to the stream: less its write buffer, what has drained (stall detection).
        let queued = 0;
        const answer = new BlockAnswerBudget(this.blockServeBudget, {
          peer,
          asked,
          capBytes: this.maxBlocksResponseBytes,
          maxBlockBytes: this.maxBlockFrameBytes,
          relaying: this.opts.handlers.isRelayingPeer?.(peer) ?? false,
          now: this.now,
          sleep: (ms) => sleep(systemClock, ms),
          slots: this.blockReadSlots,
          // A reset or aborted stream (the syncer cancelled it): no answer will be read.
          gone: () => stream.status === 'reset' || stream.status === 'aborted',
          // A write that drains too little for a while gives its slot to a waiter (serve-budget.ts).
          drained: () => queued - stream.writeBufferLength,
          abort: () => stream.abort(new Error('block write stalled')),
        });
        let sent = 0;
        // In pieces, each once the connection's own buffers hold little (write-gate.ts): handed
        // whole, a block went down to the connection as far as the peer's window allowed (any
        // size it liked), and a peer not reading its socket left it there, outside the slots.
        const backlog = connectionBacklog(connection);
        if (!backlog) this.warnNoBacklog();
        // The overall serve window is charged once the frame is written (its last piece handed
        // to the muxer), not when the block was read: a peer that never reads its answers then holds
        // only its own window (serve-budget.ts ServeBudget.chargeAll).
        const send = async (block: Uint8Array) => {
          await writeFrameInChunks(stream, block, {
            backlog,
            signal,
            onQueued: (bytes) => {
              queued += bytes;
            },
          });
          sent++;
          answer.sent(block.byteLength);
        };
        const take: BlockTake = async (bytes, block) => {
          if (bytes > this.maxBlockFrameBytes)
            this.log.error('block too large to serve', { height: from + BigInt(answer.count), bytes });
          if (!(await answer.take(bytes))) return false;
          // Sent before the next block is read: an answer whose peer does not read pins one
          // block, not all it asked for, while it waits for the request deadline.
          if (block) await send(block);
          return true;
        };
        // Holds a read slot and the peer's room before each block is read: serve-budget.ts.
        take.room = () => answer.room();
        // The handler keeps no block it handed over (each is sent before `take` resolves).
        take.sends = true;
        try {
          // Inside the try: a read that throws still gives back its slot and what it held.
          const blocks = (await answer.ids()) ? await this.opts.handlers.blocks(from, to, take) : [];
          // Only blocks not sent as they were taken come back (BlockTake.sends).
          const sentBefore = sent;
          for (const [i, block] of blocks.entries()) {
            // Blocks `take` did not see (a handler that ignores it) are held to the same limits here.
            if (sentBefore + i >= answer.count && !(await take(block.byteLength))) break;
            await send(block);
          }
        } finally {
          // Any slot and room still held go back (blocks never sent were never charged overall).
          answer.end();
        }
      }
      await stream.close({ signal });
    } catch (err) {
      if (err instanceof MalformedRequest) {
        this.scoreDown(peer, 'malformedRequest', `malformed ${kind} request: ${err.message}`);
      } else if (!signal.aborted) {
        this.log.debug('could not answer a request', { kind, peer, error: errorMessage(err) });
      }
      stream.abort(err as Error);
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  private warnedNoBacklog = false;

  /** Once: a connection whose write buffers `connectionBacklog` cannot see (a libp2p upgrade). */
  private warnNoBacklog(): void {
    if (this.warnedNoBacklog) return;
    this.warnedNoBacklog = true;
    this.log.warn('connection write buffers not visible: block answers are gated on their streams only');
  }

  // ---- peers, scores, bans ---------------------------------------------------------------------

  peers(): PeerInfo[] {
    return this.node.getPeers().map((id) => {
      const s = id.toString();
      return {
        id: s,
        addrs: this.node.getConnections(id).map((c) => c.remoteAddr.toString()),
        status: this.statuses.get(s) ?? null,
        score: this.scoreOf(s),
      };
    });
  }

  penalize(peer: string, reason: string): void {
    this.scoreDown(peer, 'reported', reason);
  }

  onPeerConnected(listener: (peer: string) => void): () => void {
    this.connectListeners.add(listener);
    return () => this.connectListeners.delete(listener);
  }

  onPeerDisconnected(listener: (peer: string) => void): () => void {
    this.disconnectListeners.add(listener);
    return () => this.disconnectListeners.delete(listener);
  }

  /**
   * Whether an inbound connection from `remote` (a multiaddr) is one too many from its address
   * (`maxInboundConnectionsPerAddress`: an IPv4 address, an IPv6 /64) or its subnet
   * (`maxInboundConnectionsPerSubnet`: a /24, a /48). Bootstrap peers' addresses are exempt, as
   * they are from the connection manager's limits (connection-limits.ts), and not counted.
   */
  private tooManyFrom(remote: string): boolean {
    const keys = inboundKeys(remote);
    if (keys === null || !this.node || this.exempt(remote)) return false;
    let fromAddress = 0;
    let fromSubnet = 0;
    for (const c of this.node.getConnections()) {
      if (c.direction !== 'inbound') continue;
      const { keys: k, exempt } = this.countedAs(c);
      if (exempt) continue;
      if (k?.address === keys.address) fromAddress++;
      if (k?.subnet === keys.subnet) fromSubnet++;
    }
    const limits = this.connectionLimits;
    return (
      fromAddress >= limits.maxInboundConnectionsPerAddress ||
      fromSubnet >= limits.maxInboundConnectionsPerSubnet
    );
  }

  /** An open connection's keys and exemption (`connectionKeys`), read at its first look. */
  private countedAs(c: Connection): { keys: InboundKeys | null; exempt: boolean } {
    let counted = this.connectionKeys.get(c);
    if (counted === undefined) {
      const remote = c.remoteAddr.toString();
      this.connectionAddressReads++;
      counted = { keys: inboundKeys(remote), exempt: this.exempt(remote) };
      this.connectionKeys.set(c, counted);
    }
    return counted;
  }

  /**
   * Whether an inbound connection from `remote` is one more this second than its address may open
   * (`inboundConnectionsPerAddressPerSecond`), counted by `inboundKeys`: libp2p counts the rate per
   * exact address, so one IPv6 host (a /64) had it 2^64 times over, a Noise handshake each (the
   * per-address counts bound how many at once, not how many a second). Over one-second windows on
   * the p2p clock; bootstrap addresses exempt. A connection its address's rate let through counts
   * toward its subnet's too (`inboundConnectionsPerSubnetPerSecond`): per address alone, a /24's
   * 256 addresses, or a /48's 65,536 /64s, had as many times the rate, and each connection that
   * is dropped right after the responder's Noise message (a key pair, two Diffie-Hellmans and a
   * signature on this node's thread) costs its sender a TCP handshake and 32 bytes.
   */
  private tooFastFrom(remote: string): boolean {
    const keys = inboundKeys(remote);
    if (keys === null || this.exempt(remote)) return false;
    const now = this.now();
    const limits = this.connectionLimits;
    if (this.tick(keys.address, now) > limits.inboundConnectionsPerAddressPerSecond) return true;
    return (
      keys.subnet !== keys.address &&
      this.tick(keys.subnet, now) > limits.inboundConnectionsPerSubnetPerSecond
    );
  }

  /** Counts one more connection in `key`'s current one-second window (`tooFastFrom`); its count. */
  private tick(key: string, now: number): number {
    let window = this.inboundRate.get(key);
    if (window === undefined || now - window.since >= 1_000 || now < window.since) {
      if (this.inboundRate.size >= MAX_RATE_ENTRIES) this.forgetRates(now);
      window = { since: now, count: 0 };
      this.inboundRate.set(key, window);
    }
    return ++window.count;
  }

  /** Forgets the rate windows that ended (all of them, should that not make room). */
  private forgetRates(now: number): void {
    for (const [key, w] of this.inboundRate) if (now - w.since >= 1_000) this.inboundRate.delete(key);
    if (this.inboundRate.size >= MAX_RATE_ENTRIES) this.inboundRate.clear();
  }

  /** Whether `remote` (a multiaddr) is a bootstrap peer's address, exactly: no limit refuses those. */
  private exempt(remote: string): boolean {
    const address = exactAddressOf(remote);
    return address !== null && this.bootstrapAddresses.has(address);
  }

  /**
   * A new stream on a connection already open to `id`, never a dial. libp2p's dialProtocol dials a
   * peer it is not connected to at the addresses that peer announced (identify), unchecked: one that
   * hung up just before we wrote to it had this node connect to whatever host and port it named,
   * the operator's LAN included (up to 25 a time). Only the operator's multiaddrs are dialled
   * (bootstrap, `dial`).
   */
  private async openStream(id: PeerId, protocol: string, signal: AbortSignal): Promise<Stream> {
    const connection = this.node.getConnections(id).find((c) => c.status === 'open');
    if (connection === undefined) throw new Error(`not connected to ${id.toString()}`);
    return connection.newStream(protocol, { signal });
  }

  /**
   * Drops a departed peer from libp2p's peer store. The store kept every peer id ever connected,
   * with the addresses and protocols it announced (up to 10 identify messages of 8 KiB), in memory
   * and never read again: fresh peer ids cost an attacker nothing, so one host connecting a few
   * times a second grew it without bound. Nothing here reads it back (we dial only multiaddrs).
   * Later, not at once: the registrar reads the peer's protocols on disconnect to tell gossipsub.
   */
  private forgetLater(id: PeerId): void {
    const timer = setTimeout(() => {
      if (this.stopped || this.node.getConnections(id).length > 0) return;
      this.node.peerStore.delete(id).catch((err) => {
        this.log.debug('could not forget a peer', { peer: id.toString(), error: errorMessage(err) });
      });
    }, FORGET_PEER_AFTER_MS);
    timer.unref();
  }

  /**
   * Whether an inbound connection still in its handshake is one too many from its address
   * (`maxIncomingPendingConnectionsPerAddress`) or its subnet (`…PerSubnet`); if not, it is
   * counted until its handshake ends: its socket closed, a connection on it opened, or its upgrade
   * timed out. Bootstrap addresses are exempt, as from every other limit.
   */
  private tooManyPendingFrom(conn: MultiaddrConnection): boolean {
    const remote = conn.remoteAddr.toString();
    const keys = inboundKeys(remote);
    if (keys === null || !this.node || this.exempt(remote)) return false;
    // On the p2p clock (NetworkOptions.now), as every other limit here: on the wall clock a step
    // forward let an address past its limit at once, and a step back kept its entries counted.
    const now = this.now();
    const upgraded = this.upgradedRemotes();
    const pending = this.stillPending(keys.address, now, upgraded);
    if (pending.length >= this.connectionLimits.maxIncomingPendingConnectionsPerAddress) return true;
    if (
      this.pendingInSubnet(keys, now, upgraded) >=
      this.connectionLimits.maxIncomingPendingConnectionsPerSubnet
    )
      return true;
    pending.push({ conn, remote: withoutPeerId(remote), subnet: keys.subnet, since: now });
    this.pendingByAddress.set(keys.address, pending);
    return false;
  }

  /**
   * How many connections from `keys`'s subnet are still in their handshake. Over every address's
   * entries: at most the library's `maxIncomingPendingConnections` of them get this far.
   */
  private pendingInSubnet(keys: InboundKeys, now: number, upgraded: ReadonlySet<string>): number {
    let n = 0;
    for (const address of [...this.pendingByAddress.keys()]) {
      const pending = this.stillPending(address, now, upgraded);
      if (pending[0]?.subnet === keys.subnet) n += pending.length;
    }
    return n;
  }

  /** The connections from `address` (`inboundKeys`) still in their handshake at `now` (the others forgotten). */
  private stillPending(
    address: string,
    now: number,
    upgraded: ReadonlySet<string> = this.upgradedRemotes(),
  ): PendingInbound[] {
    const tracked = this.pendingByAddress.get(address) ?? [];
    if (tracked.length === 0) return tracked;
    const pending = tracked.filter(
      (p) =>
        p.conn.status === 'open' &&
        !upgraded.has(p.remote) &&
        now - p.since < this.connectionLimits.inboundUpgradeTimeoutMs,
    );
    if (pending.length === 0) this.pendingByAddress.delete(address);
    else this.pendingByAddress.set(address, pending);
    return pending;
  }

  /** The remote addresses of the connections open now, without their peer ids (`stillPending`). */
  private upgradedRemotes(): ReadonlySet<string> {
    // An upgraded connection's remote address names the peer too (`/p2p/<id>`); its socket's does not.
    return new Set(this.node.getConnections().map((c) => withoutPeerId(c.remoteAddr.toString())));
  }

  isBanned(peer: string): boolean {
    const until = this.bannedUntil.get(peer);
    if (until === undefined) return false;
    if (this.now() < until) return true;
    this.bannedUntil.delete(peer);
    this.scores.delete(peer);
    return false;
  }

  async dial(addr: string): Promise<string> {
    const conn = await this.node.dial(multiaddr(addr), {
      signal: AbortSignal.timeout(this.requestTimeoutMs),
    });
    return conn.remotePeer.toString();
  }

  private scoreOf(peer: string): number {
    const entry = this.scores.get(peer);
    if (!entry) return 0;
    const now = this.now();
    entry.score = Math.min(
      0,
      entry.score + ((now - entry.updatedAt) / 1000) * this.scoring.recoveryPerSecond,
    );
    entry.updatedAt = now;
    return entry.score;
  }

  private scoreDown(peer: string, kind: PenaltyKind, reason: string): void {
    if (peer === this.peerId || this.isBanned(peer)) return;
    const score = this.scoreOf(peer) - PENALTY[kind];
    this.scores.set(peer, { score, updatedAt: this.now() });
    this.log.info('peer scored down', { peer, reason, score });
    this.opts.metrics?.penalty?.(peer, reason, score, kind);
    if (score <= this.scoring.threshold) this.ban(peer, 'score', `score ${score.toFixed(1)} after ${reason}`);
  }

  /** Disconnects the peer and makes the connection gater refuse it both ways until the ban ends. */
  private ban(peer: string, cause: BanCause, reason: string): void {
    if (peer === this.peerId) return;
    this.bannedUntil.set(peer, this.now() + this.scoring.banMs);
    this.statuses.delete(peer);
    this.log.warn('peer disconnected and banned', { peer, reason, banMs: this.scoring.banMs });
    this.opts.metrics?.ban?.(peer, reason, cause);
    if (this.stopped) return;
    try {
      this.node.hangUp(peerIdFromString(peer)).catch((err) => {
        this.log.debug('hang-up failed', { peer, error: errorMessage(err) });
      });
    } catch {
      // Not a parseable peer id: nothing is connected under it anyway.
    }
  }

  /** The status exchange every new connection goes through before the node hears of the peer. */
  private async handshake(peer: string): Promise<void> {
    if (this.handshaking.has(peer) || this.stopped) return;
    if (this.isBanned(peer)) {
      this.ban(peer, 'reconnected', 'banned peer reconnected');
      return;
    }
    this.handshaking.add(peer);
    try {
      const status = await this.requestStatus(peer);
      this.log.debug('peer connected', { peer, height: status.height });
    } catch (err) {
      if (err instanceof PeerRequestError && err.kind === 'unsupported') {
        this.ban(peer, 'unsupported', `does not speak this chain's protocols (${this.opts.chainId})`);
      } else {
        this.log.debug('status exchange failed; retried by maintenance', { peer, error: errorMessage(err) });
      }
      return;
    } finally {
      this.handshaking.delete(peer);
    }
    if (this.stopped || this.node.getConnections(peerIdFromString(peer)).length === 0) return;
    for (const listener of this.connectListeners) {
      try {
        listener(peer);
      } catch (err) {
        this.log.error('peer-connected listener failed', { error: errorMessage(err) });
      }
    }
  }

  private dialBootstrap(): void {
    const connected = new Set(this.node.getPeers().map((p) => p.toString()));
    for (const addr of this.opts.bootstrap ?? []) {
      const id = peerIdOfAddr(addr);
      if (id !== null && (id === this.peerId || connected.has(id) || this.isBanned(id))) continue;
      this.dial(addr).catch((err) => {
        this.log.debug('bootstrap dial failed', { addr, error: errorMessage(err) });
      });
    }
  }

  /**
   * Closes each connection holding more than `maxConnectionWriteBytes` for its peer to read: what
   * it holds goes with it (`DEFAULT_MAX_CONNECTION_WRITE_BYTES`). Then, while the others hold more
   * than `maxTotalWriteBytes` together, the one holding the most (`DEFAULT_MAX_TOTAL_WRITE_BYTES`).
   * Not a penalty: an honest peer on a link far too slow looks the same, and may connect again.
   */
  private closeUnread(): void {
    if (this.stopped) return;
    const max = this.opts.maxConnectionWriteBytes ?? DEFAULT_MAX_CONNECTION_WRITE_BYTES;
    const maxTotal = this.opts.maxTotalWriteBytes ?? DEFAULT_MAX_TOTAL_WRITE_BYTES;
    const holding: UnreadHolding<Connection>[] = [];
    const before = this.unreadBefore;
    this.unreadBefore = new Map();
    for (const connection of this.node.getConnections()) {
      const bytes = connectionWriteBytes(connection);
      if (bytes > max) this.closeNotReading(connection, bytes, 'connection', max);
      else if (bytes > 0) {
        holding.push({ connection, bytes, before: before.get(connection.id) ?? 0 });
        this.unreadBefore.set(connection.id, bytes);
      }
    }
    for (const connection of unreadToClose(holding, maxTotal)) {
      this.closeNotReading(connection, connectionWriteBytes(connection), 'total', maxTotal);
    }
  }

  private closeNotReading(
    connection: Connection,
    bytes: number,
    bound: 'connection' | 'total',
    max: number,
  ): void {
    const peer = connection.remotePeer.toString();
    this.log.warn('connection closed: its peer does not read what it is sent', { peer, bytes, bound, max });
    this.opts.metrics?.unreadConnectionClosed?.(bound);
    try {
      connection.abort(new Error(`peer not reading: ${bytes} bytes waiting for it`));
    } catch (err) {
      // On a timer: a throw here would end the process.
      this.log.error('could not close a connection', { peer, error: errorMessage(err) });
    }
  }

  private maintain(): void {
    if (this.stopped) return;
    for (const peer of [...this.bannedUntil.keys()]) this.isBanned(peer);
    // A score back at zero is what an unknown peer has: kept, every fresh peer id that once sent
    // something invalid (ids cost nothing) stayed in the map for good.
    for (const peer of [...this.scores.keys()])
      if (!this.bannedUntil.has(peer) && this.scoreOf(peer) === 0) this.scores.delete(peer);
    const now = this.now();
    const upgraded = this.upgradedRemotes();
    for (const address of [...this.pendingByAddress.keys()]) this.stillPending(address, now, upgraded);
    this.forgetRates(now);
    if (this.node.getPeers().length < (this.opts.targetPeers ?? 8)) this.dialBootstrap();
    for (const id of this.node.getPeers()) {
      const peer = id.toString();
      if (!this.statuses.has(peer)) void this.handshake(peer);
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    clearInterval(this.writeWatch);
    await this.node.stop();
  }
}

/** Starts a node's networking; resolves once it listens. Bootstrap peers are dialled in the background. */
export async function startNetwork(options: NetworkOptions): Promise<Libp2pNetwork> {
  const network = new Libp2pNetworkImpl(options);
  await network.start();
  return network;
}
