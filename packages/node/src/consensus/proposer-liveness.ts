/**
 * Which proposers are worth waiting for, as far as this node can tell. A round whose proposer is
 * taken to be down waits only a short propose timeout for its proposal; with one of four
 * validators stopped, every round it would propose otherwise costs the whole propose timeout
 * (3 s) and the chain crawls.
 *
 * A proposer counts as down (a wait of `absentProposeMs`, or `shortProposeMs`) when either:
 * - nothing signed by it (a vote or a proposal, signature checked) arrived for the last
 *   `absentAfterHeights` heights: a crashed or cut-off validator;
 * - its last turn as proposer ended in this node's propose timeout with no proposal from it, and
 *   no proposal of it arrived in time since: a validator that votes but does not propose (or
 *   proposes too late to be used) is held to the short timeout until it proposes in time again;
 * - it is cut off: the direct connection to the peer it signed as its node (peer-binding.ts)
 *   closed, none to that peer is open again, and nothing signed by it for the height being
 *   decided (or a later one) arrived since. A stopped process closes its sockets, so this is
 *   known at once, where silence takes a whole height to show (with a stopped validator drawn as
 *   proposer at the first height after the stop, that height took 3 s + more rounds);
 * - it equivocated: this node holds evidence, both signatures checked, that it signed two
 *   conflicting votes or proposals for one slot (`equivocated`). Such a validator is Byzantine
 *   by proof, not by guess, and stays in the set until the evidence removes it at the epoch's
 *   end; meanwhile every round it is drawn for could cost the whole propose timeout, which grows
 *   with the round, however it spends it (a re-proposal whose polka it never sent: simulator seed
 *   74339, four such rounds running cost 19 s at one height).
 *
 * Only this node's own observations count: its own timeouts, messages whose signature it
 * checked, its own connections to peers that a validator bound to itself by signature, and, at
 * start, the commit certificates of its own last blocks (`recallCommits`). Those hold any 2/3+ of
 * the precommits, chosen by a block's proposer or a sync peer, so a Byzantine one can leave out an
 * honest validator: that costs it at most its turns until its first message after this node's
 * start, and no missed turn (a wait cut short proves nothing, the driver's `onTimeout`).
 * Otherwise nobody can make an honest proposer look silent without stopping its messages from
 * reaching this node for a whole height (the network, not a message), or closing this node's very
 * connection to that validator's node; a peer no validator signed for closes its connections without effect
 * (a validator reached only through relays gives no such signal: the first rules apply). A
 * Byzantine proposer that withholds its proposal, or sends it after the timeout, pays a short
 * timeout at its next turn instead of the long one.
 *
 * Timeouts decide only how soon a round gives up, never what is decided (Tendermint is safe
 * under any timing), so a wrong guess costs a round, nothing more.
 */

export interface ProposerLivenessOptions {
  /** Heights without a message from a validator after which it counts as down. */
  absentAfterHeights: number;
  /** The propose timeout for a round of a proposer that missed its last turn but is heard from. */
  shortProposeMs: number;
  /**
   * The propose timeout for a round of a proposer heard from not at all for the last heights: a
   * crashed validator, which a wait cannot bring back. Not zero: a validator just back from a
   * restart proposes at once, and a few network hops let its proposal count.
   */
  absentProposeMs: number;
}

export const DEFAULT_PROPOSER_LIVENESS: ProposerLivenessOptions = {
  // Two whole heights without a vote: every live validator votes at every height, and a vote that
  // arrives after this node committed still counts (the driver passes late votes for the head).
  // One height was too few under load: a validator slower than the others (4 validators
  // saturated on 2 cores) votes for a height after the other three decided it, and its votes are
  // checked here only after the next height began. Taken for absent, its turn as proposer got
  // the 100 ms wait while its block took 100–400 ms to arrive: two of three peers prevoted nil,
  // and the height was decided in round 1 at 2.5 s (traced in one run of three; in another a
  // 5.3 s height began the same way). A stopped validator is still known at once by its closed
  // connection (`isCutOff`), and one that votes but misses its turns by `missedTurn`; only a
  // validator silent without a closed connection (a partition) now costs one height more.
  absentAfterHeights: 2,
  shortProposeMs: 500,
  absentProposeMs: 100,
};

/** How many validators' marks are kept at most (a set's size is bounded by the chain's params). */
const MAX_TRACKED = 10_000;
/**
 * Peers one validator may be bound to at once (the latest kept): a node key that changed, or a
 * validator run behind a few sentry nodes. It is cut off only once none of them is connected.
 */
export const MAX_PEERS_PER_VALIDATOR = 4;
/** Heights between two sweeps of the marks of validators never seen (`prune`). */
const SWEEP_HEIGHTS = 64n;

export class ProposerLiveness {
  private readonly opts: ProposerLivenessOptions;
  private readonly lastSeen = new Map<string, bigint>();
  /** Proposers whose last turn this node timed out on, with no timely proposal since. */
  private readonly missed = new Set<string>();
  /** The first height this node watched: before K heights of watching, nobody counts as absent. */
  private since: bigint | null = null;
  /** Peer ids each validator signed as its node (peer-binding.ts), oldest first. */
  private readonly peersOf = new Map<string, string[]>();
  /** Peers this node holds a direct connection to (bounded like the marks). */
  private readonly connected = new Set<string>();
  /**
   * Validators whose bound peer's connection closed with none open again, with the height being
   * decided then: a signed message of theirs for that height or a later one lifts it.
   */
  private readonly cutOff = new Map<string, bigint>();
  /** Validators this node holds checked equivocation evidence against: never lifted. */
  private readonly equivocators = new Set<string>();

  constructor(opts: Partial<ProposerLivenessOptions> = {}) {
    this.opts = { ...DEFAULT_PROPOSER_LIVENESS, ...opts };
  }

  get shortProposeMs(): number {
    return this.opts.shortProposeMs;
  }

  /**
   * The propose wait of a proposer that missed its last turn, given the machine's `delayMs` for
   * `round`: the short wait doubled with the round. A wait below it (absent, cut off, equivocator)
   * is one its running out proves nothing by (the driver's `onTimeout`).
   */
  missedTurnWait(delayMs: number, round: number): number {
    return Math.min(delayMs, this.opts.shortProposeMs * 2 ** Math.max(0, Math.min(round, 30)));
  }

  /** How many of the latest commits `recallCommits` wants (the heights a silence is judged over, and one). */
  get heightsToRecall(): number {
    return this.opts.absentAfterHeights + 1;
  }

  /**
   * Heights this node holds but did not watch (it restarted, or synced them): each signer of a
   * height's commit certificate counts as seen then, and the heights count as watched. Otherwise
   * a node knows nothing for `absentAfterHeights` heights after it starts, and waits each silent
   * validator's turns out in full meanwhile; where its vote completes a quorum, every node waits
   * with it (simulator seed 77988: 7 validators, 2 silent, a validator restarted: rounds of 5 s
   * and more at one height until the restarted one had watched two heights). A validator alive
   * but missing from the certificates (its precommit came late) gets the short wait until its
   * first message of the height arrives, which lifts it (`saw`), and the short wait running out
   * counts as no missed turn. Certificates are read from this node's committed blocks, their
   * signatures checked when committed; which 2/3+ they hold, a block's proposer or a sync peer
   * chose (see the header).
   */
  recallCommits(commits: readonly { height: bigint; signers: readonly Uint8Array[] }[]): void {
    for (const { height, signers } of commits) {
      if (this.since === null || height < this.since) this.since = height;
      for (const signer of signers) this.saw(signer, height);
    }
  }

  /** A vote or proposal of `validator` at `height`, its signature checked, arrived. */
  saw(validator: Uint8Array, height: bigint): void {
    const id = idOf(validator);
    const cut = this.cutOff.get(id);
    // Only a message signed since the connection closed: one of an earlier height may have been
    // on its way through a relay when the process stopped.
    if (cut !== undefined && height >= cut) this.cutOff.delete(id);
    const prev = this.lastSeen.get(id);
    if (prev === undefined && this.lastSeen.size >= MAX_TRACKED) return;
    if (prev === undefined || height > prev) this.lastSeen.set(id, height);
  }

  /** This node's propose timeout fired in a round of `proposer` with no proposal from it. */
  missedTurn(proposer: Uint8Array): void {
    if (this.missed.size < MAX_TRACKED) this.missed.add(idOf(proposer));
  }

  /** A proposal of `proposer` arrived before this node's propose timeout for its round fired. */
  proposedInTime(proposer: Uint8Array): void {
    this.missed.delete(idOf(proposer));
  }

  /**
   * `validator` signed `peer` as its node (a binding whose signature the caller checked, of a
   * validator of the set). Binding an already-connected peer needs `peerConnected` too.
   */
  bindPeer(validator: Uint8Array, peer: string): void {
    const id = idOf(validator);
    const peers = this.peersOf.get(id) ?? [];
    if (peers.includes(peer)) return;
    if (peers.length === 0 && this.peersOf.size >= MAX_TRACKED) return;
    peers.push(peer);
    if (peers.length > MAX_PEERS_PER_VALIDATOR) peers.shift();
    this.peersOf.set(id, peers);
  }

  /** A direct connection to `peer` is open (a new one, or the first after all had closed). */
  peerConnected(peer: string): void {
    if (this.connected.size < MAX_TRACKED) this.connected.add(peer);
    for (const [id, peers] of this.peersOf) if (peers.includes(peer)) this.cutOff.delete(id);
  }

  /**
   * The last direct connection to `peer` closed while `height` was being decided. Each validator
   * bound to it with no other bound peer connected is cut off; a peer no validator signed for
   * changes nothing. Returns how many validators it cut off.
   */
  peerDisconnected(peer: string, height: bigint): number {
    this.connected.delete(peer);
    let cut = 0;
    for (const [id, peers] of this.peersOf) {
      if (!peers.includes(peer) || peers.some((p) => this.connected.has(p))) continue;
      if (this.cutOff.size >= MAX_TRACKED) break;
      this.cutOff.set(id, height);
      cut++;
    }
    return cut;
  }

  /**
   * Evidence that `validator` equivocated reached this node, both signatures checked (observed by
   * its own machine, or gossiped and checked against the set). Nothing lifts the mark: no honest
   * signer ever signs two conflicting messages for one slot, so the proof cannot be made against
   * one, and the offender leaves the set once the evidence is committed.
   */
  equivocated(validator: Uint8Array): void {
    if (this.equivocators.size < MAX_TRACKED) this.equivocators.add(idOf(validator));
  }

  /** Whether this node holds checked evidence that `validator` equivocated. */
  hasEquivocated(validator: Uint8Array): boolean {
    return this.equivocators.has(idOf(validator));
  }

  /**
   * The validator (hex key) that signed `peer` as its node, leaving out any this node holds
   * equivocation evidence against; the least key when several did. For the held blocks' ranking
   * and places (driver.ts `holdUnexecuted`): a peer only a validator's signature can bind, so a
   * flood of fresh peer ids cannot pass for one, and all the peers a validator binds share its one
   * identity.
   */
  boundValidator(peer: string): string | undefined {
    let out: string | undefined;
    for (const [id, peers] of this.peersOf)
      if (peers.includes(peer) && !this.equivocators.has(id) && (out === undefined || id < out)) out = id;
    return out;
  }

  /** Whether `validator`'s bound node is disconnected from this node and silent since. */
  isCutOff(validator: Uint8Array): boolean {
    return this.cutOff.has(idOf(validator));
  }

  /**
   * Whether nothing signed by `validator` arrived for the last `absentAfterHeights` heights, or
   * it is cut off (`isCutOff`) and `cutOffCounts` (the caller's judgement, `proposeTimeout`).
   */
  isAbsent(validator: Uint8Array, height: bigint, cutOffCounts = true): boolean {
    this.since ??= height;
    if (cutOffCounts && this.isCutOff(validator)) return true;
    const k = BigInt(this.opts.absentAfterHeights);
    if (height - this.since <= k) return false;
    const seen = this.lastSeen.get(idOf(validator));
    return seen === undefined || height - seen > k;
  }

  /** Whether to wait only a short propose timeout for `validator` proposing at `height`. */
  isDown(validator: Uint8Array, height: bigint): boolean {
    return this.isAbsent(validator, height) || this.missed.has(idOf(validator));
  }

  /**
   * The propose timeout to use for `round` of `proposer` at `height`, given the machine's.
   *
   * The short waits double with each round, so they still grow without bound like the machine's:
   * Tendermint is live only because, once messages arrive within some unknown delay, a round's
   * timeouts eventually exceed it. A wait fixed at 500 ms would hold a proposer whose proposal
   * needs longer (a far region, a big block on a loaded network) to the short wait for good (it
   * never proposes "in time" again), and once every proposer is so marked, after a partition
   * that timed everyone out, no round could ever succeed. At round 0 the wait is the short one.
   */
  /**
   * `cutOffCounts`: whether being cut off makes a proposer absent. The driver says no while the
   * validators not cut off lack 2/3+ of the power (a split, or this node's own link down): no
   * round can succeed then, and racing through rounds on short waits only multiplies the votes
   * sent (a split of 16 that healed 16 times sent three times the messages).
   */
  proposeTimeout(
    proposer: Uint8Array,
    height: bigint,
    delayMs: number,
    round: number,
    cutOffCounts = true,
  ): number {
    const grown = (ms: number) => Math.min(delayMs, ms * 2 ** Math.max(0, round));
    // A proposer cut off is not waited for longer at later rounds: its silence is seen (its
    // node's connection closed, and nothing it signed for this height or later arrived since), not
    // guessed from a delay that a longer wait might outlast, and anything it signs for the height
    // lifts the mark (`saw`), after which it gets the whole wait. Doubled like the others, a
    // stopped validator drawn as proposer six rounds running (one height in 4,096 with four
    // validators; seen in bench:consensus) held the other three 12.8 s at one height.
    if (cutOffCounts && this.isCutOff(proposer)) return Math.min(delayMs, this.opts.absentProposeMs);
    // A proven equivocator gets the short wait of an absent proposer, whatever the others' state
    // and whatever it signs, doubled with the round. Not flat like a cut-off one's: in the
    // simulator (seed 71368: 200 ms links, an equivocating proposer, two crashes) a flat 100 ms
    // in its rounds held the height 34 s against 15 s before and 7 s doubled, and 1,000 seeds
    // around it agreed; its proposal never had the time the links need, and the honest rounds
    // between failed until the waits had grown. Doubled, its rounds still cost 100, 200, 400 ms…
    // where the machine's cost 3 s and more (seed 74339: 26.7 s → 8.1 s).
    if (this.hasEquivocated(proposer)) return grown(this.opts.absentProposeMs);
    if (this.isAbsent(proposer, height, cutOffCounts)) return grown(this.opts.absentProposeMs);
    if (this.missed.has(idOf(proposer))) return this.missedTurnWait(delayMs, round);
    return delayMs;
  }

  /**
   * Marks (a missed turn, a cut-off, bound peers) of validators with no `lastSeen` entry (never
   * seen, or forgotten by `prune` before the mark was written), by the height a sweep first found
   * them unseen.
   */
  private readonly unseenSince = new Map<string, bigint>();
  /** The height of the last sweep of `unseenSince` (one per `SWEEP_HEIGHTS`). */
  private sweptAt: bigint | null = null;

  /**
   * Forgets validators not seen for long (the set changes at epoch boundaries). Before, only
   * validators with a `lastSeen` entry were forgotten: the marks of one never seen (a validator
   * bound to its peer that never voted, one whose turns were missed while unseen, one cut off
   * after its `lastSeen` was pruned) stayed for good, and once MAX_TRACKED of them piled up
   * (validators leaving the set over epochs) no new validator's binding or cut-off was taken. Now
   * such marks go once they stayed unseen for `keepHeights` too, found by a sweep every
   * `SWEEP_HEIGHTS` heights (each walks the marks once: bounded by 3 × MAX_TRACKED). Equivocation
   * marks are kept, as ever: nothing lifts a proof.
   */
  prune(height: bigint, keepHeights = 1_000n): void {
    for (const [id, h] of this.lastSeen)
      if (height - h > keepHeights) {
        this.lastSeen.delete(id);
        this.forget(id);
      }
    if (this.sweptAt !== null && height - this.sweptAt < SWEEP_HEIGHTS && height >= this.sweptAt) return;
    this.sweptAt = height;
    const marked = new Set<string>([...this.missed, ...this.cutOff.keys(), ...this.peersOf.keys()]);
    for (const id of this.unseenSince.keys())
      if (!marked.has(id) || this.lastSeen.has(id)) this.unseenSince.delete(id);
    for (const id of marked) {
      if (this.lastSeen.has(id)) continue;
      const since = this.unseenSince.get(id);
      if (since === undefined) this.unseenSince.set(id, height);
      else if (height - since >= keepHeights) {
        this.unseenSince.delete(id);
        this.forget(id);
      }
    }
  }

  /** Drops a validator's marks but its equivocation proof. */
  private forget(id: string): void {
    this.missed.delete(id);
    this.cutOff.delete(id);
    this.peersOf.delete(id);
  }
}

function idOf(validator: Uint8Array): string {
  return Buffer.from(validator).toString('hex');
}
