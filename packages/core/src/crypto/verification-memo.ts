/**
 * A process-wide memo of signature and VRF results, for the simulator of real nodes only
 * (packages/node/src/sim). A simulation runs every validator of a network in one process, and each
 * of them checks the same votes, proposals and beacon proofs: without the memo a 4-validator seed
 * spends most of its time doing the same curve arithmetic five times over. With it, the real
 * check still runs once per distinct input, and every node gets its answer.
 *
 * Keyed on the whole input (public key, message or alpha, signature or proof), so a forged or
 * altered input is a different key and is checked for itself; false and null answers are kept
 * too, so a forgery is refused by every node exactly as it would be without the memo. VRF proofs
 * are deterministic per (secret seed, alpha), so proving is memoised the same way. Results are
 * the same with the memo as without it, which keeps a seed's replay exact. Bounded (two
 * generations, BoundedCache), and off unless a simulation turns it on: a node never does.
 */
import { bytesToLatin1 } from '../platform/node.js';
import { BoundedCache } from './bounded-cache.js';

interface Memo {
  ed25519: BoundedCache<boolean>;
  vrfVerify: BoundedCache<Uint8Array | null>;
  vrfProve: BoundedCache<Uint8Array>;
  stats: VerificationMemoStats;
}

export interface VerificationMemoStats {
  /** Checks (or proofs) answered from the memo, and those that ran the real arithmetic. */
  hits: number;
  misses: number;
}

let memo: Memo | null = null;
let holders = 0;

/**
 * Turns the memo on until every holder has released it (simulations may overlap in one process);
 * `limit` bounds each of its three tables.
 */
export function holdVerificationMemo(limit = 200_000): { release(): void; stats: VerificationMemoStats } {
  if (!memo)
    memo = {
      ed25519: new BoundedCache(limit),
      vrfVerify: new BoundedCache(limit),
      vrfProve: new BoundedCache(limit),
      stats: { hits: 0, misses: 0 },
    };
  holders++;
  let released = false;
  const stats = memo.stats;
  return {
    stats,
    release() {
      if (released) return;
      released = true;
      if (--holders === 0) memo = null;
    },
  };
}

/** One field of a key: its length, then its bytes one character each (cheaper than hex). */
const part = (b: Uint8Array) => `${b.length}:${bytesToLatin1(b)}`;

/** The memoised answer of `check` for this exact input, or the answer of running it. */
export function memoEd25519(
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
  check: () => boolean,
): boolean {
  if (!memo) return check();
  const key = `${part(publicKey)}|${part(signature)}|${part(message)}`;
  const known = memo.ed25519.get(key);
  if (known !== undefined) {
    memo.stats.hits++;
    return known;
  }
  memo.stats.misses++;
  const ok = check();
  memo.ed25519.set(key, ok);
  return ok;
}

export function memoVrfVerify(
  publicKey: Uint8Array,
  pi: Uint8Array,
  alpha: Uint8Array,
  check: () => Uint8Array | null,
): Uint8Array | null {
  if (!memo) return check();
  const key = `${part(publicKey)}|${part(pi)}|${part(alpha)}`;
  const known = memo.vrfVerify.get(key);
  if (known !== undefined) {
    memo.stats.hits++;
    return known === null ? null : known.slice();
  }
  memo.stats.misses++;
  const beta = check();
  memo.vrfVerify.set(key, beta === null ? null : beta.slice());
  return beta;
}

export function memoVrfProve(secretSeed: Uint8Array, alpha: Uint8Array, prove: () => Uint8Array): Uint8Array {
  if (!memo) return prove();
  const key = `${part(secretSeed)}|${part(alpha)}`;
  const known = memo.vrfProve.get(key);
  if (known !== undefined) {
    memo.stats.hits++;
    return known.slice();
  }
  memo.stats.misses++;
  const pi = prove();
  memo.vrfProve.set(key, pi.slice());
  return pi;
}
