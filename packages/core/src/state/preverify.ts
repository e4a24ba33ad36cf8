/**
 * The Ed25519 signatures a block's execution will check, gathered before it runs so that they can
 * be checked in parallel (a node's worker threads) while execution itself stays sequential.
 *
 * Execution consults the results only through `isSignatureVerified` / `isEd25519Verified`
 * (ExecuteOptions), and only a pass is ever remembered: a signature found here to verify is one
 * the sequential check would pass, anything else is checked again in order. So what is gathered
 * here (from the head state, which the block may change before an answer is reached) can only
 * make execution faster, never decide differently.
 */

import { toHex } from '../bytes.js';
import { envelopeSigningMessage, type TxEnvelope } from '../chain/transaction.js';
import { sha256 } from '../crypto/index.js';
import { getChip } from '../poci/chips.js';
import { challengesAsOf, chipClass, getRecentHash, heartbeatChallenge } from '../poci/liveness.js';
import { mayAnswerFor } from '../poci/operator.js';
import { getPociParams, type PociParams } from '../poci/params.js';
import type { StateReader } from './store.js';

export interface Ed25519Check {
  publicKey: Uint8Array;
  message: Uint8Array;
  signature: Uint8Array;
}

/** The transaction's own signature check. */
export function envelopeSignatureCheck(env: TxEnvelope): Ed25519Check {
  return { publicKey: env.stx.tx.signer, message: envelopeSigningMessage(env), signature: env.stx.signature };
}

/** The chain's head, whose state the checks are gathered on. */
export interface PreverifyHead {
  height: bigint;
  hash: Uint8Array;
  beacon: Uint8Array;
}

/**
 * The dev-soft (Ed25519) chip answers in `env`'s heartbeats whose challenge the head state already
 * places (the slot's block and hash); answers it cannot place (unknown chip, other profiles, a
 * slot not drawn yet) or of a chip the head state gives another owner than the sender are left to
 * execution.
 */
export function heartbeatSignatureChecks(
  state: StateReader,
  chainId: string,
  env: TxEnvelope,
  head: PreverifyHead,
): Ed25519Check[] {
  const out: Ed25519Check[] = [];
  forEachHeartbeatSignatureCheck(state, chainId, env, head, (c) => out.push(c));
  return out;
}

/**
 * `heartbeatSignatureChecks`, each check handed to `visit` as soon as it is gathered: a node sends
 * a block's first checks to its workers while it still gathers the rest (one heartbeat carries up
 * to ~150 answers, each a chip record to decode and a challenge to hash).
 */
export function forEachHeartbeatSignatureCheck(
  state: StateReader,
  chainId: string,
  env: TxEnvelope,
  head: PreverifyHead,
  visit: (check: Ed25519Check) => void,
): void {
  // A block's answers are mostly to one challenge (the class its predecessor drew): the class's
  // heights and the slot block's hash are looked up once per (epoch, class) and per height, not
  // once per answer. Nothing writes `state` while this runs.
  const heightsOf = new Map<string, bigint[]>();
  const hashes = new Map<bigint, Uint8Array | null>();
  let p: PociParams | undefined;
  for (const action of env.stx.tx.actions) {
    if (action.type !== 'heartbeat') continue;
    p ??= getPociParams(state);
    for (const answer of action.answers) {
      if (answer.evidence.type !== 'dev-soft') continue;
      const chip = getChip(state, answer.chipId);
      if (chip?.profile !== 'dev-soft') continue;
      // Another key's heartbeat fails on its owner check before any answer is verified (a copy of
      // someone's answers in a proposer's block): its answers are not worth a worker's check.
      if (!mayAnswerFor(state, chip.owner, env.sender, head.height + 1n)) continue;
      const cls = chipClass(chip.chipId, p);
      const at = `${answer.epoch}/${cls}`;
      let heights = heightsOf.get(at);
      if (!heights) {
        heights = challengesAsOf(state, answer.epoch, cls, head, p);
        heightsOf.set(at, heights);
      }
      const slotHeight = heights[answer.slot];
      if (slotHeight === undefined) continue;
      let slotHash = hashes.get(slotHeight);
      if (slotHash === undefined) {
        slotHash = getRecentHash(state, slotHeight) ?? (slotHeight === head.height ? head.hash : null);
        hashes.set(slotHeight, slotHash);
      }
      if (!slotHash) continue;
      visit({
        publicKey: chip.keyMaterial,
        message: heartbeatChallenge(chainId, chip.chipId, slotHash),
        signature: answer.evidence.signature,
      });
    }
  }
}

/**
 * Checks whose three parts add up to at most this many bytes are keyed by the bytes themselves:
 * a chip's answer (key 32 + signature 64 + challenge 32), the check a block has most of. Anything
 * longer (a transaction's check signs its whole body) is keyed by a hash, so that no entry of the
 * set is larger than an answer's: at 512 bytes, small transactions made each remembered pass up to
 * four times the memory of a hashed one (measured: 123 MB against 28 MB for 200,000 passes).
 */
const EXACT_KEY_MAX_BYTES = 128;

/**
 * What identifies a check: all three parts (a signature alone vouches for nothing), with their
 * lengths, so that no other split of the same bytes (a longer key, a shorter signature) can name a
 * check that passed. A short check (a chip's answer: 32 + 64 + 32 bytes) is keyed by its exact
 * bytes, which is cheaper than hashing them and leaves nothing to collide; a longer one (a
 * transaction's, whose message is its whole signing body) by the SHA-256 of the same, under another
 * first character.
 */
export function ed25519CheckKey(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): string {
  const total = publicKey.length + signature.length + message.length;
  if (total <= EXACT_KEY_MAX_BYTES) {
    // Each length is below 2^16 here, so one UTF-16 code unit holds it exactly; each byte is one
    // code unit of its value (what latin1 decoding gives), made without a buffer to copy into: a
    // node keys every chip answer twice (pre-check and execution).
    return (
      `=${String.fromCharCode(publicKey.length, signature.length, message.length)}` +
      latin1Of(publicKey) +
      latin1Of(signature) +
      latin1Of(message)
    );
  }
  const lengths = new Uint8Array(12);
  const view = new DataView(lengths.buffer);
  view.setUint32(0, publicKey.length);
  view.setUint32(4, signature.length);
  view.setUint32(8, message.length);
  return `#${toHex(sha256(lengths, publicKey, signature, message))}`;
}

/** Each byte as the code unit of its value; for the short parts of an exactly keyed check. */
function latin1Of(bytes: Uint8Array): string {
  return String.fromCharCode.apply(null, bytes as unknown as number[]);
}

/**
 * Checks known to pass, bounded: in two generations of half the capacity each (as the key caches,
 * crypto/bounded-cache.ts: evicting one entry at a time from a full Set is slow in V8), the older
 * dropped whole when the younger is full. A forgotten pass is only checked again. Pass
 * `isVerified` as ExecuteOptions.isEd25519Verified.
 */
export class VerifiedSignatures {
  private young = new Set<string>();
  private old = new Set<string>();
  private readonly generation: number;

  constructor(capacity = 100_000) {
    if (!Number.isSafeInteger(capacity) || capacity < 2) throw new RangeError('capacity must be at least 2');
    this.generation = Math.floor(capacity / 2);
  }

  /** Passes held (never more than the capacity). */
  get size(): number {
    return this.young.size + this.old.size;
  }

  add(check: Ed25519Check): void {
    this.addKey(ed25519CheckKey(check.publicKey, check.message, check.signature));
  }

  /** A pass under its `ed25519CheckKey`, for a caller that made the key from the bytes it had checked. */
  addKey(key: string): void {
    if (this.young.has(key)) return;
    if (this.young.size >= this.generation) {
      this.old = this.young;
      this.young = new Set();
    }
    this.young.add(key);
  }

  isVerified = (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean =>
    this.hasKey(ed25519CheckKey(publicKey, message, signature));

  hasKey(key: string): boolean {
    return this.young.has(key) || this.old.has(key);
  }
}
