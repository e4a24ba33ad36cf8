/**
 * Whether this node's head is behind heights the network has decided, from evidence a peer cannot
 * forge: a node behind its peers judges transactions on stale state (a sender's nonce looks too
 * far ahead, a balance not yet credited), and a final refusal from it makes the client give up a
 * transaction, and with it every later nonce of its sender. While behind, such refusals are
 * answered "busy, retry" instead (node-core.ts, admission.ts `deferWhileBehind`).
 *
 * The evidence, never a peer's bare claim of its height (a status answer costs nothing to lie in):
 * - votes, signature checked, by members of the set voting after the head (gossip-checks.ts
 *   buffers them): a validator votes at height h only once it committed h - 1, so when validators
 *   holding more than a third of the power (at least one honest) were seen voting at h or above,
 *   h - 1 is decided. Fewer than a third of the power (what Byzantine validators may hold) signing
 *   far-future votes moves nothing.
 * - blocks whose commit certificate verified against the set the head state knows (sync's
 *   look-ahead, sync-reactor.ts): +2/3 of the power signed them.
 *
 * Bounded: evidence older than `evidenceTtlMs` is dropped, and a node seen behind for `maxStuckMs`
 * at the same head height (peers that vote but withhold the blocks, a chain that cannot apply
 * them) answers finally again until its head moves, so no one can keep it answering "retry"
 * forever. Memory: one
 * entry per member of the set (votes by others are not counted).
 */
import { keyId, type ValidatorSet } from '@unc/core';

export interface BehindViewOptions {
  /** How long a vote or a certificate counts as evidence. */
  evidenceTtlMs: number;
  /** How long the node may stay behind with its head not moving before it answers finally again. */
  maxStuckMs: number;
}

export const DEFAULT_BEHIND_VIEW_OPTIONS: BehindViewOptions = { evidenceTtlMs: 30_000, maxStuckMs: 30_000 };

export class BehindView {
  private readonly opts: BehindViewOptions;
  /** The highest height each validator was seen voting at, and when. */
  private readonly votedAt = new Map<string, { key: Uint8Array; height: bigint; at: number }>();
  /** The highest height seen with a verified commit certificate, and when. */
  private certified: { height: bigint; at: number } | null = null;
  /**
   * The head's height when last looked at, and since when this node has been seen behind at it
   * (null: not yet). The stuck bound counts from there, not from the head's last move: a node back
   * from a split that lasted longer than `maxStuckMs` has a head that has not moved for that long,
   * and is behind only from now.
   */
  private head: { height: bigint; behindSince: number | null } | null = null;

  constructor(opts: Partial<BehindViewOptions> = {}) {
    this.opts = { ...DEFAULT_BEHIND_VIEW_OPTIONS, ...opts };
  }

  /** A vote at `height` by `validator`, its signature checked and the validator a member of the set. */
  sawVote(validator: Uint8Array, height: bigint, now: number): void {
    const id = keyId(validator);
    const seen = this.votedAt.get(id);
    if (seen && seen.height > height) return;
    this.votedAt.set(id, { key: validator, height, at: now });
  }

  /** A block at `height` whose commit certificate verified. */
  sawCertified(height: bigint, now: number): void {
    if (this.certified && this.certified.height > height) return;
    this.certified = { height, at: now };
  }

  /** The head's height now: a new height starts a new stuck window (`behind`). */
  noteHead(height: bigint): void {
    if (this.head?.height !== height) this.head = { height, behindSince: null };
  }

  /**
   * The highest height known decided, or null: the certificate's, or the height below the one
   * that validators of `set` with more than a third of its power reached.
   */
  decided(set: ValidatorSet, now: number): bigint | null {
    const fresh = (at: number) => now - at <= this.opts.evidenceTtlMs;
    let best = this.certified && fresh(this.certified.at) ? this.certified.height : null;
    const votes: { height: bigint; power: bigint }[] = [];
    for (const [id, v] of this.votedAt) {
      // Stale, or no longer a member (the set changed at an epoch boundary): forgotten.
      if (!fresh(v.at) || !set.has(v.key)) {
        this.votedAt.delete(id);
        continue;
      }
      votes.push({ height: v.height, power: set.powerOf(v.key) });
    }
    votes.sort((a, b) => (a.height > b.height ? -1 : a.height < b.height ? 1 : 0));
    let power = 0n;
    for (const v of votes) {
      power += v.power;
      if (set.hasOneHonest(power)) {
        if (best === null || v.height - 1n > best) best = v.height - 1n;
        break;
      }
    }
    return best;
  }

  /** Whether the network decided heights above `headHeight` and this node is still catching up. */
  behind(headHeight: bigint, set: ValidatorSet, now: number): boolean {
    this.noteHead(headHeight);
    const decided = this.decided(set, now);
    if (decided === null || decided <= headHeight) return false;
    // Counted once per head height and never reset while the head stays: evidence that lapses and
    // comes back gives no second window, so "retry" lasts at most maxStuckMs per height.
    const head = this.head!;
    head.behindSince ??= now;
    return now - head.behindSince < this.opts.maxStuckMs;
  }
}
