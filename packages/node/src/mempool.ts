/**
 * Pending transactions. Bounded in count and bytes; a block takes the highest fees first, each
 * sender's transactions in nonce order; a transaction with the same sender and nonce replaces
 * one already here only if it pays at least 10% more. Every rejection says why.
 */
import {
  type BlockContext,
  type ChainParams,
  checkTransactionStateless,
  getAccount,
  keyId,
  type StateReader,
  type TxEnvelope,
  ValidationError,
  verifyEnvelopeSignature,
} from '@unc/core';

export interface MempoolOptions {
  maxTxs: number;
  maxBytes: number;
  /** How far past the sender's next nonce a transaction may queue. */
  maxNonceGap: bigint;
}

export const DEFAULT_MEMPOOL_OPTIONS: MempoolOptions = {
  maxTxs: 100_000,
  maxBytes: 64 * 1024 * 1024,
  maxNonceGap: 1000n,
};

/** Replacement must raise the fee by at least this fraction (numerator/denominator). */
const REPLACE_BUMP_NUM = 11n;
const REPLACE_BUMP_DEN = 10n;

interface SenderQueue {
  byNonce: Map<bigint, TxEnvelope>;
}

export class Mempool {
  private readonly senders = new Map<string, SenderQueue>();
  private readonly byHash = new Map<string, TxEnvelope>();
  private totalBytes = 0;
  /** Hashes whose signatures were checked on admission, so block execution can skip them. */
  private readonly verified = new Set<string>();

  constructor(private readonly opts: MempoolOptions = DEFAULT_MEMPOOL_OPTIONS) {}

  get size(): number {
    return this.byHash.size;
  }

  get bytes(): number {
    return this.totalBytes;
  }

  has(hash: Uint8Array): boolean {
    return this.byHash.has(keyId(hash));
  }

  /**
   * Whether `env` was admitted with its signature checked. The bytes are compared, not only the
   * hash: the hash leaves the signature out, so another signature on the same body is unchecked.
   */
  isVerified = (env: TxEnvelope): boolean => {
    const id = keyId(env.hash);
    if (!this.verified.has(id)) return false;
    const held = this.byHash.get(id);
    return held !== undefined && Buffer.compare(held.bytes, env.bytes) === 0;
  };

  /**
   * Admits a transaction checked against the state the next block starts from.
   * Throws a ValidationError with the reason when it is not admitted.
   */
  add(env: TxEnvelope, state: StateReader, params: ChainParams, next: BlockContext): { replaced: boolean } {
    const id = keyId(env.hash);
    if (this.byHash.has(id)) throw new ValidationError('DUPLICATE', 'transaction is already in the mempool');
    checkTransactionStateless(env, params, next);
    const account = getAccount(state, env.sender);
    const { nonce, fee } = env.stx.tx;
    if (nonce < account.nonce) {
      throw new ValidationError('NONCE_USED', `nonce ${nonce} already used (next is ${account.nonce})`);
    }
    if (nonce > account.nonce + this.opts.maxNonceGap) {
      throw new ValidationError(
        'NONCE_GAP',
        `nonce ${nonce} is too far ahead of the next nonce ${account.nonce}`,
      );
    }
    if (account.balance < fee) {
      throw new ValidationError('INSUFFICIENT_FUNDS', `balance ${account.balance} cannot pay the fee ${fee}`);
    }
    const senderId = keyId(env.sender);
    const queue = this.senders.get(senderId);
    const existing = queue?.byNonce.get(nonce);
    if (existing && fee * REPLACE_BUMP_DEN < existing.stx.tx.fee * REPLACE_BUMP_NUM) {
      throw new ValidationError(
        'REPLACEMENT_UNDERPRICED',
        `a transaction with nonce ${nonce} is pending; a replacement must pay at least 10% more than ${existing.stx.tx.fee}`,
      );
    }
    if (
      !existing &&
      (this.byHash.size >= this.opts.maxTxs || this.totalBytes + env.bytes.length > this.opts.maxBytes)
    ) {
      throw new ValidationError('MEMPOOL_FULL', 'mempool is full; try again later or raise the fee');
    }
    if (!verifyEnvelopeSignature(env))
      throw new ValidationError('BAD_SIGNATURE', 'invalid transaction signature');

    if (existing) this.remove(existing);
    const q = this.senders.get(senderId) ?? { byNonce: new Map() };
    this.senders.set(senderId, q);
    q.byNonce.set(nonce, env);
    this.byHash.set(id, env);
    this.verified.add(id);
    this.totalBytes += env.bytes.length;
    return { replaced: existing !== undefined };
  }

  private remove(env: TxEnvelope): void {
    const id = keyId(env.hash);
    if (!this.byHash.delete(id)) return;
    this.verified.delete(id);
    this.totalBytes -= env.bytes.length;
    const senderId = keyId(env.sender);
    const q = this.senders.get(senderId);
    if (q) {
      q.byNonce.delete(env.stx.tx.nonce);
      if (q.byNonce.size === 0) this.senders.delete(senderId);
    }
  }

  /**
   * Picks transactions for the next block: highest fee first among each sender's next
   * executable transaction, stopping at the block's count and byte limits.
   */
  select(state: StateReader, maxTxs: number, maxBytes: number): TxEnvelope[] {
    const heap = new MaxHeap<TxEnvelope>(compareForBlock);
    const nextNonce = new Map<string, bigint>();
    for (const [senderId, q] of this.senders) {
      const first = q.byNonce.values().next().value as TxEnvelope;
      const n = getAccount(state, first.sender).nonce;
      nextNonce.set(senderId, n);
      const head = q.byNonce.get(n);
      if (head) heap.push(head);
    }
    const out: TxEnvelope[] = [];
    let bytes = 0;
    while (out.length < maxTxs && heap.size > 0) {
      const env = heap.pop()!;
      if (bytes + env.bytes.length > maxBytes) continue;
      out.push(env);
      bytes += env.bytes.length;
      const senderId = keyId(env.sender);
      const n = env.stx.tx.nonce + 1n;
      nextNonce.set(senderId, n);
      const following = this.senders.get(senderId)?.byNonce.get(n);
      if (following) heap.push(following);
    }
    return out;
  }

  /** After a block: drops what it included and whatever can no longer apply (used nonce, expired). */
  prune(
    included: readonly TxEnvelope[],
    rejected: readonly TxEnvelope[],
    state: StateReader,
    height: bigint,
  ): void {
    for (const env of included) this.remove(env);
    for (const env of rejected) this.remove(env);
    for (const q of this.senders.values()) {
      const first = q.byNonce.values().next().value as TxEnvelope;
      const next = getAccount(state, first.sender).nonce;
      for (const env of [...q.byNonce.values()]) {
        if (env.stx.tx.nonce < next || env.stx.tx.expiresAt < height) this.remove(env);
      }
    }
  }
}

/** Higher fee first; ties by hash so every node orders the same pool the same way. */
function compareForBlock(a: TxEnvelope, b: TxEnvelope): number {
  if (a.stx.tx.fee !== b.stx.tx.fee) return a.stx.tx.fee > b.stx.tx.fee ? 1 : -1;
  return Buffer.compare(b.hash, a.hash);
}

class MaxHeap<T> {
  private readonly items: T[] = [];
  constructor(private readonly cmp: (a: T, b: T) => number) {}
  get size(): number {
    return this.items.length;
  }
  push(item: T): void {
    const a = this.items;
    a.push(item);
    let i = a.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.cmp(a[i]!, a[parent]!) <= 0) break;
      [a[i], a[parent]] = [a[parent]!, a[i]!];
      i = parent;
    }
  }
  pop(): T | undefined {
    const a = this.items;
    if (a.length === 0) return undefined;
    const top = a[0];
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.cmp(a[l]!, a[m]!) > 0) m = l;
        if (r < a.length && this.cmp(a[r]!, a[m]!) > 0) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }
}
