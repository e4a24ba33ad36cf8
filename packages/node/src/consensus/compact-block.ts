/**
 * Compact proposals: a proposal gossips its block's transactions by wire id, the `sha256` of each
 * transaction's bytes (signature included), since its peers already hold nearly all of them from
 * transaction gossip. A peer rebuilds the block from the transactions it holds (`TxIndex`),
 * fetches only the missing ones from the peer that sent the proposal (or another), and hands the
 * rebuilt block to the same checks as a full proposal: the header's hash is the signed one, its
 * transaction root and last-commit hash must match what was rebuilt. The block, its hash and what
 * is stored never change; this is only how a proposal travels.
 *
 * Why wire ids and not transaction hashes: a transaction's hash leaves its signature out, so two
 * different envelopes (one with a signature that does not verify) share it. With ids over the
 * bytes, the rebuilt block is byte for byte the proposer's, and an answer to a fetch is checked
 * against the id that asked for it before anything else looks at it.
 *
 * Attacks and bounds:
 * - ids nobody serves: the fetch gives up (request timeout); the proposal never reaches the
 *   machine and the round's propose timeout makes this node prevote nil, as for a missing one;
 * - altered id lists: the proposer signs the id list (`compactIdsSignBytes`), checked with the
 *   proposal's signature before any fetch, so a copy of a genuine proposal with other ids is
 *   rejected (its sender scored down) and cannot take a round's fetch slots from the genuine one;
 * - an answer whose bytes do not hash to the id asked: dropped, the peer penalised;
 * - fetch floods: a node serves only transactions of a block it holds for the height being
 *   decided, and only those the request names; requests are bounded in ids and answers in bytes;
 * - memory: the index holds at most `maxEntries` transactions and `TX_INDEX_MAX_BYTES` (oldest
 *   dropped first), fetches run one per proposal and per peer, `MAX_FETCHES` at once per round;
 * - slots: only a proposal the machine can use is fetched for: signed by its round's proposer,
 *   for a round no later than the next (any validator can sign proposals out of turn or for its
 *   turns far ahead, with ids nobody serves);
 * - amplification: an answer holds each transaction asked for once, however often it is named.
 *
 * Carried bodies: a proposer puts into its compact proposal the bodies of the block's transactions
 * it admitted only within the last block interval (`mayBeMissingAtPeers`, `carrying`), which its
 * peers may well not hold yet: a client's transfers reach one validator over RPC, and under load
 * its peers' admission queues drop or delay the gossip of them. Without the bodies every peer had to fetch them from the
 * proposer while it was the busiest node, and a fetch that outlived the propose timeout cost the
 * round (BENCHMARKS.md, "Carried bodies"). Bounds: at most `MAX_CARRIED_BYTES` per proposal; each
 * body must hash to an id of the signed list, in block order, each once (`carriedMatchesIds`), so
 * a relay can strip bodies (its receivers fetch them) but not make a receiver hold anything the
 * proposer did not sign.
 */
import {
  type Block,
  chainIdCodec,
  defaultVerify,
  ed25519Sign,
  encode,
  equalBytes,
  hash32,
  keyId,
  sha256,
  signature64,
  string,
  struct,
  type TxEnvelope,
  toHex,
  type VerifyFn,
} from '@unc/core';
import {
  type CompactProposalMessage,
  compactProposalCodec,
  MAX_COMPACT_PROPOSAL_BYTES,
  type ProposalMessage,
  txIdsCodec,
} from './wire.js';

/**
 * Fetches in flight at once for one round (the current or the next; the earlier rounds of the
 * height share one more): at most 2 × 4 + 1 rebuilds held, each at most a block's ids and bytes.
 */
export const MAX_FETCHES = 4;
/**
 * Fetches in flight at once in all: the bound on the memory they hold. A fetch outlives its height
 * until the request in flight ends (up to a request timeout), so the per-round counts alone would
 * let stalled fetches of past heights pile up.
 */
export const MAX_FETCHES_IN_ALL = 2 * MAX_FETCHES + 1;
/** Peers asked in turn for a proposal's missing transactions before giving up. */
export const MAX_FETCH_PEERS = 3;

/** The wire id of a transaction: the hash of its bytes, signature included. */
export function wireTxId(bytes: Uint8Array): Uint8Array {
  return sha256(bytes);
}

const compactIdsSignCodec = struct<{
  domain: string;
  chainId: string;
  proposalSignature: Uint8Array;
  txIdsHash: Uint8Array;
}>('CompactIdsSignBytes', {
  domain: string(32, 'domain'),
  chainId: chainIdCodec,
  proposalSignature: signature64,
  txIdsHash: hash32,
});

/**
 * What a proposer signs to vouch for a compact proposal's id list: 'UNC/compact-ids' ‖ chainId ‖
 * the proposal's signature (which binds height, round, polRound, block hash and proposer) ‖ the
 * `sha256` of the id list in its canonical encoding. Only how a proposal travels is signed: the
 * block, its hash and the proposal's own signature are those of PROTOCOL.md, unchanged.
 */
export function compactIdsSignBytes(
  chainId: string,
  proposalSignature: Uint8Array,
  txIds: readonly Uint8Array[],
): Uint8Array {
  return encode(compactIdsSignCodec, {
    domain: 'UNC/compact-ids',
    chainId,
    proposalSignature,
    txIdsHash: sha256(encode(txIdsCodec, [...txIds])),
  });
}

/**
 * Whether the proposal's proposer signed this id list. Checked before anything is fetched for it:
 * an altered copy (the genuine signed proposal with other ids) is the sender's fault and takes no
 * fetch slot.
 */
export function compactIdsSigned(
  chainId: string,
  msg: CompactProposalMessage,
  verify: VerifyFn = defaultVerify,
): boolean {
  return verify(
    msg.proposal.proposer,
    compactIdsSignBytes(chainId, msg.proposal.signature, msg.txIds),
    msg.idsSignature,
  );
}

/** The wire ids of a block's transactions and the hash of their list, computed once per block. */
const blockIds = new WeakMap<Block, { ids: Uint8Array[]; idsHash: string }>();

/** The wire ids of `block`'s transactions, and `sha256` of their list as the proposer signs it. */
export function wireIdsOfBlock(block: Block): { ids: Uint8Array[]; idsHash: string } {
  let held = blockIds.get(block);
  if (!held) {
    const ids = block.txs.map(wireTxId);
    held = { ids, idsHash: idListHash(ids) };
    blockIds.set(block, held);
  }
  return held;
}

/** `sha256` of an id list in its canonical encoding (hex): what `compactIdsSignBytes` covers. */
export function idListHash(ids: readonly Uint8Array[]): string {
  return toHex(sha256(encode(txIdsCodec, [...ids])));
}

/**
 * Whether the proposal's proposer signed the wire ids of this full proposal's transactions: the
 * bytes travelling are the proposer's, so a block found invalid is its fault, not a relay's.
 */
export function fullIdsSigned(
  chainId: string,
  msg: ProposalMessage,
  verify: VerifyFn = defaultVerify,
): boolean {
  return verify(
    msg.proposal.proposer,
    compactIdsSignBytes(chainId, msg.proposal.signature, wireIdsOfBlock(msg.block).ids),
    msg.idsSignature,
  );
}

/** The proposer's signature over its proposal's transaction ids (`proposerSeed`: the proposer's key). */
export function signProposalIds(
  chainId: string,
  proposal: ProposalMessage['proposal'],
  block: Block,
  proposerSeed: Uint8Array,
): Uint8Array {
  return ed25519Sign(
    proposerSeed,
    compactIdsSignBytes(chainId, proposal.signature, wireIdsOfBlock(block).ids),
  );
}

/**
 * The compact form of a full proposal message: the same proposer-signed id list, ids instead of
 * bytes, with the bodies of `carried` (transactions of the block, in block order) alongside.
 */
export function compactOf(msg: ProposalMessage, carried: readonly Uint8Array[] = []): CompactProposalMessage {
  return {
    proposal: msg.proposal,
    header: msg.block.header,
    blockCommit: msg.block.commit,
    txIds: wireIdsOfBlock(msg.block).ids,
    lastCommit: msg.lastCommit,
    idsSignature: msg.idsSignature,
    carried: [...carried],
    sentAt: msg.sentAt,
  };
}

/**
 * The most bytes of transaction bodies one compact proposal carries: 1 MiB, about 5,000 transfers,
 * far under the topic's 4 MiB with a full block's ids. Past it the proposer leaves its freshest
 * transactions for a later block rather than make every peer fetch them (`carrying`).
 */
export const MAX_CARRIED_BYTES = 1024 * 1024;

/**
 * A compact proposal's encoding within `maxBytes` (the gossip topic's ceiling): its carried bodies
 * cut from the end until it fits. A block of tens of thousands of small transactions has ids of
 * up to 3.2 MB, and with 1 MiB of bodies more the message would pass the ceiling, so every peer
 * would drop the proposer's proposal (and score down the node that sent it). The bodies left out
 * are fetched, as without carrying.
 */
export function encodeCompactWithin(
  msg: CompactProposalMessage,
  maxBytes: number = MAX_COMPACT_PROPOSAL_BYTES,
): Uint8Array {
  const data = encode(compactProposalCodec, msg);
  if (data.byteLength <= maxBytes || msg.carried.length === 0) return data;
  let excess = data.byteLength - maxBytes;
  let keep = msg.carried.length;
  // Each body takes its bytes and a 4-byte length.
  while (keep > 0 && excess > 0) excess -= msg.carried[--keep]!.byteLength + 4;
  return encode(compactProposalCodec, { ...msg, carried: msg.carried.slice(0, keep) });
}

/**
 * Whether a compact proposal's carried bodies are ones its proposer could have sent: at most
 * `MAX_CARRIED_BYTES`, each the transaction of one id of the signed list, in the list's order and
 * each once. Otherwise the message was made or altered by its sender (rejected): bodies matching
 * no id would be bytes held for nothing, and repeats a way to inflate a message.
 */
export function carriedMatchesIds(msg: CompactProposalMessage): boolean {
  if (msg.carried.length === 0) return true;
  if (msg.carried.length > msg.txIds.length) return false;
  let bytes = 0;
  for (const body of msg.carried) bytes += body.byteLength;
  if (bytes > MAX_CARRIED_BYTES) return false;
  let at = 0;
  for (const id of carriedIds(msg)) {
    while (at < msg.txIds.length && !equalBytes(msg.txIds[at]!, id)) at++;
    if (at === msg.txIds.length) return false;
    at++;
  }
  return true;
}

/** The wire ids of a message's carried bodies, hashed once per decoded message (checked on arrival, then rebuilt from). */
const carriedIdsOf = new WeakMap<CompactProposalMessage, Uint8Array[]>();

function carriedIds(msg: CompactProposalMessage): Uint8Array[] {
  let ids = carriedIdsOf.get(msg);
  if (!ids) {
    ids = msg.carried.map((body) => wireTxId(body));
    carriedIdsOf.set(msg, ids);
  }
  return ids;
}

/** When this node admitted a transaction (its clock): what the proposer knows of what its peers lack. */
export interface Admitted {
  at: number;
  /**
   * For re-announcement (mempool-reactor.ts): blocks this node had seen committed when it admitted
   * it, and the full blocks of backlog it had ahead then. Absent: not known (due by time alone).
   */
  commits?: number;
  ahead?: number;
}

/**
 * Whether a transaction admitted here (`admitted`, undefined if not known) may still be missing
 * at this node's peers `now`, so that a proposal carries its body: one admitted within the last
 * block interval, from this node's own clients (its peers have it only once their admission of
 * its gossip is through, and a busy peer drops gossip it has no room to admit) or from a peer's
 * gossip (the other peers get the same gossip at about the same time, but under load admit it
 * hundreds of ms later: in bench:consensus a proposal of 1,043 transfers, 250 of them carried as
 * the proposer's own, still had 500 gossiped ones missing at a peer, fetched in 500 ms). Older ones
 * go by id only: fetched if a peer still lacks them. This is the proposer's own choice of how its
 * proposal travels; what the block holds is unchanged.
 */
export function mayBeMissingAtPeers(
  admitted: Admitted | undefined,
  now: number,
  blockTimeMs: number,
): boolean {
  return admitted !== undefined && now - admitted.at < blockTimeMs;
}

/**
 * Admission times of recent transactions, by transaction hash (`keyId`): bounded in count, the
 * oldest forgotten first (a forgotten one is just not carried).
 */
export class AdmissionTimes {
  private readonly byHash = new Map<string, Admitted>();

  constructor(private readonly maxEntries = 50_000) {}

  get size(): number {
    return this.byHash.size;
  }

  record(hash: Uint8Array, admitted: Admitted): void {
    const key = keyId(hash);
    this.byHash.delete(key);
    this.byHash.set(key, admitted);
    while (this.byHash.size > this.maxEntries) this.byHash.delete(this.byHash.keys().next().value as string);
  }

  get(hash: Uint8Array): Admitted | undefined {
    return this.byHash.get(keyId(hash));
  }
}

/**
 * A block builder's candidates (`Mempool.ordered`), passed through with the carry rule: a
 * transaction that `mayBeMissing` goes into the block with its body carried while the carried
 * bytes stay within `maxCarriedBytes`; past that it is answered "not taken" (the source then holds
 * back its sender's following nonces) and left for a later block, when its peers will hold it.
 * Those the builder took with their bodies are added to `carried`, in block order.
 */
export function* carrying(
  source: Iterable<TxEnvelope>,
  mayBeMissing: (env: TxEnvelope) => boolean,
  maxCarriedBytes: number,
  carried: TxEnvelope[],
): Generator<TxEnvelope, void, boolean | undefined> {
  const it = source[Symbol.iterator]() as Iterator<TxEnvelope, unknown, boolean | undefined>;
  let bytes = 0;
  try {
    for (let next = it.next(); !next.done; ) {
      const env = next.value;
      const carry = mayBeMissing(env);
      if (carry && bytes + env.bytes.byteLength > maxCarriedBytes) {
        next = it.next(false);
        continue;
      }
      const taken = yield env;
      if (carry && taken !== false) {
        carried.push(env);
        bytes += env.bytes.byteLength;
      }
      next = it.next(taken);
    }
  } finally {
    it.return?.();
  }
}

/**
 * The bytes the index holds at most: the mempool's own byte cap. A count alone bounds nothing
 * useful: transactions are up to 64 KiB, and the index keeps what left the mempool (replaced,
 * evicted by a higher fee, included), which costs a spammer nothing, so 50,000 of them would be
 * 3.2 GB held on every node.
 */
export const TX_INDEX_MAX_BYTES = 64 * 1024 * 1024;

/**
 * Transactions this node holds by wire id: those it admitted (from RPC or gossip). Bounded in
 * count and bytes: past either, the oldest go first (a block that needs one of those fetches it).
 */
export class TxIndex {
  private readonly byId = new Map<string, Uint8Array>();
  private heldBytes = 0;

  constructor(
    private readonly maxEntries = 50_000,
    private readonly maxBytes = TX_INDEX_MAX_BYTES,
  ) {}

  get size(): number {
    return this.byId.size;
  }

  /** The transaction bytes held. */
  get bytes(): number {
    return this.heldBytes;
  }

  add(bytes: Uint8Array): void {
    if (bytes.byteLength > this.maxBytes) return;
    const id = toHex(wireTxId(bytes));
    if (this.byId.has(id)) return;
    while (this.byId.size >= this.maxEntries || this.heldBytes + bytes.byteLength > this.maxBytes) {
      const [oldest, held] = this.byId.entries().next().value as [string, Uint8Array];
      this.byId.delete(oldest);
      this.heldBytes -= held.byteLength;
    }
    this.byId.set(id, bytes);
    this.heldBytes += bytes.byteLength;
  }

  get(id: Uint8Array): Uint8Array | undefined {
    return this.byId.get(toHex(id));
  }
}

/** A compact proposal being rebuilt: the transactions found so far, and which are still missing. */
export class Rebuild {
  readonly txs: (Uint8Array | null)[];
  private missingCount: number;
  private readonly filledByCopy = new AbortController();
  /** Ids filled in from another copy (`fillFrom`), perhaps asked for meanwhile. */
  private readonly filledLate = new Set<string>();

  constructor(
    readonly msg: CompactProposalMessage,
    lookup: (id: Uint8Array) => Uint8Array | undefined,
  ) {
    // The bodies the proposer carried, by id (each matches an id: `carriedMatchesIds`, checked on
    // arrival; one that did not would just never be looked up).
    const carried = new Map<string, Uint8Array>();
    const ids = carriedIds(msg);
    msg.carried.forEach((body, i) => carried.set(toHex(ids[i]!), body));
    this.txs = msg.txIds.map(
      (id) => lookup(id) ?? (carried.size > 0 ? carried.get(toHex(id)) : undefined) ?? null,
    );
    this.missingCount = this.txs.reduce((n, t) => n + (t === null ? 1 : 0), 0);
  }

  /** The ids still missing, in block order. */
  missing(): Uint8Array[] {
    const out: Uint8Array[] = [];
    this.txs.forEach((t, i) => {
      if (t === null) out.push(this.msg.txIds[i]!);
    });
    return out;
  }

  get complete(): boolean {
    return this.missingCount === 0;
  }

  /**
   * Aborted once another copy of the proposal completed this rebuild with its carried bodies
   * (`fillFrom`): the fetch under way stops waiting for its peer.
   */
  get completedByCopy(): AbortSignal {
    return this.filledByCopy.signal;
  }

  /** The transactions found so far (held here or carried), in block order. */
  found(): Uint8Array[] {
    return this.txs.filter((t): t is Uint8Array => t !== null);
  }

  /**
   * Fills in, of `bodies`, those still missing: what another copy of the same signed proposal
   * found (its carried bodies above all). A relay can race a copy with its bodies stripped; the
   * genuine copy arriving while that one's fetch is under way still completes the block, rather
   * than being dropped as a copy of a proposal being fetched. Each body is matched by its own
   * hash, so nothing but the signed transactions goes in. Returns whether this call completed the
   * rebuild (its caller then hands the block on; once, however many copies follow).
   */
  fillFrom(bodies: readonly Uint8Array[]): boolean {
    if (this.complete || bodies.length === 0) return false;
    const byId = new Map<string, Uint8Array>();
    for (const body of bodies) byId.set(toHex(wireTxId(body)), body);
    this.txs.forEach((t, i) => {
      if (t !== null) return;
      const id = toHex(this.msg.txIds[i]!);
      const body = byId.get(id);
      if (body === undefined) return;
      this.txs[i] = body;
      this.filledLate.add(id);
      this.missingCount--;
    });
    if (this.complete) this.filledByCopy.abort(new Error('completed by another copy’s carried bodies'));
    return this.complete;
  }

  /**
   * Fills in fetched transactions. Each must hash to an id that is still missing, or to one filled
   * in meanwhile (another copy carried it while the request was out); returns false (and fills in
   * nothing) if any does not: the peer answered with something it was not asked.
   */
  fill(answer: readonly Uint8Array[]): boolean {
    const wanted = new Map<string, number[]>();
    this.txs.forEach((t, i) => {
      if (t !== null) return;
      const k = toHex(this.msg.txIds[i]!);
      const at = wanted.get(k);
      if (at) at.push(i);
      else wanted.set(k, [i]);
    });
    const found: [number[], Uint8Array][] = [];
    for (const bytes of answer) {
      const id = toHex(wireTxId(bytes));
      const at = wanted.get(id);
      if (!at) {
        if (this.filledLate.has(id)) continue;
        return false;
      }
      found.push([at, bytes]);
    }
    for (const [at, bytes] of found)
      for (const i of at) {
        if (this.txs[i] === null) this.missingCount--;
        this.txs[i] = bytes;
      }
    return true;
  }

  /** The full proposal message, once complete: exactly the proposer's block. */
  full(): ProposalMessage {
    if (!this.complete) throw new Error('the block is not complete');
    const block: Block = {
      header: this.msg.header,
      txs: this.txs as Uint8Array[],
      commit: this.msg.blockCommit,
    };
    return {
      proposal: this.msg.proposal,
      block,
      lastCommit: this.msg.lastCommit,
      idsSignature: this.msg.idsSignature,
      sentAt: this.msg.sentAt,
    };
  }
}

/** Each held block's transactions by wire id, hashed once however many requests it answers. */
const wireIdsOf = new WeakMap<Block, Map<string, Uint8Array>>();

/**
 * The transactions of `block` that `ids` name, in the order asked (a fetch answer), each once: a
 * request naming one large transaction thousands of times would otherwise turn a few KiB asked
 * into the whole answer budget sent (an amplifier for anyone who can open a stream).
 */
export function txsOfBlock(block: Block, ids: readonly Uint8Array[]): Uint8Array[] {
  let byId = wireIdsOf.get(block);
  if (!byId) {
    byId = new Map();
    for (const tx of block.txs) byId.set(toHex(wireTxId(tx)), tx);
    wireIdsOf.set(block, byId);
  }
  const out: Uint8Array[] = [];
  const sent = new Set<string>();
  for (const id of ids) {
    const key = toHex(id);
    const tx = byId.get(key);
    if (tx && !sent.has(key)) {
      sent.add(key);
      out.push(tx);
    }
  }
  return out;
}
