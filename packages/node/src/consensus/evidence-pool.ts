/**
 * The evidence pool: equivocation evidence seen by this node's machine or gossiped by peers is
 * logged and gossiped once, and a validator puts it on chain itself in a transaction of its own
 * once the block after the evidence's height is being built.
 */
import {
  addressFromPublicKey,
  type ConsensusEvidence,
  checkEvidence,
  consensusEvidenceCodec,
  encode,
  envelopeFromSigned,
  evidenceOffender,
  evidenceSlot,
  getAccount,
  isTombstoned,
  signTransaction,
  type TxEnvelope,
  toHex,
  ValidationError,
  type ValidatorSet,
} from '@unc/core';
import { isRetryableRefusal } from '../admission.js';
import type { Chain, ValidatorKey } from '../chain.js';
import type { Logger } from '../log.js';
import type { Verdict } from '../p2p/types.js';
import { checkEvidenceGossip } from './gossip-checks.js';

export interface EvidencePoolOptions {
  chain: Chain;
  /** The validator's key; null for a node that follows consensus without voting (it only relays). */
  validator: ValidatorKey | null;
  logger: Logger;
  /** The set that votes on the block after the head. */
  nextValidators(): ValidatorSet;
  /** Admits a transaction to the mempool; throws a ValidationError when it is refused. */
  admitTx(env: TxEnvelope): void;
  /** Gossips a transaction this node admitted. */
  announceTx(env: TxEnvelope): void;
  /** Sends evidence on the `evidence` topic. */
  publishEvidence(data: Uint8Array): void;
  /**
   * Told the offender of each new piece of evidence, both its signatures checked: by this node's
   * machine (`observed`) or by `checkEvidenceGossip` against the set.
   */
  onEquivocation?(offender: Uint8Array): void;
}

const MAX_SEEN = 1_000;
const MAX_WAITING = 64;
/** Blocks an evidence transaction stays valid (its `expiresAt` past the tip it was built on). */
export const EVIDENCE_TX_LIFETIME = 20n;

/**
 * A piece of evidence this validator will put on chain, and the transaction of its own that carries
 * it while one is pending (until that lands, expires or loses its nonce to another).
 */
interface Waiting {
  evidence: ConsensusEvidence;
  sent: { nonce: bigint; expiresAt: bigint } | null;
}
/**
 * Pieces of evidence taken per offender (logged, gossiped on, put on chain). One proves the
 * offence; a second covers a first that cannot land. An offender can sign any number of
 * conflicting pairs, and each further piece would cost every node two signature checks and a
 * relay to all its peers, and this validator an evidence transaction.
 */
export const MAX_EVIDENCE_PER_OFFENDER = 2;

export class EvidencePool {
  private readonly evidenceSeen = new Set<string>();
  /**
   * Pieces taken per offender (hex key) that can still land; offenders are validators of the set,
   * checked. Re-checked once per tip (`pruneUnlandable`).
   */
  private readonly piecesByOffender = new Map<string, ConsensusEvidence[]>();
  /** The tip height `piecesByOffender` was last re-checked at. */
  private prunedAt = -1n;
  /**
   * Evidence this validator will put on chain once the block after its height is being built, kept
   * until it is on chain (or can no longer land), not only until its transaction is admitted.
   */
  private evidenceToSubmit: Waiting[] = [];

  constructor(private readonly opts: EvidencePoolOptions) {}

  onEvidenceGossip(data: Uint8Array): Verdict {
    const checked = checkEvidenceGossip(data, {
      chainId: this.opts.chain.genesis.chainId,
      validators: this.opts.nextValidators(),
      hasEnoughAgainst: (offender) => this.hasEnoughAgainst(offender),
      canLand: (evidence) => this.holdsPlace(evidence),
    });
    if (!('deliver' in checked)) return checked.verdict;
    return this.reportEvidence(checked.deliver, 'gossip') ? 'accept' : 'ignore';
  }

  /** Whether this node took `MAX_EVIDENCE_PER_OFFENDER` pieces against `offender` already. */
  hasEnoughAgainst(offender: Uint8Array): boolean {
    this.pruneUnlandable();
    return (this.piecesByOffender.get(toHex(offender))?.length ?? 0) >= MAX_EVIDENCE_PER_OFFENDER;
  }

  /**
   * Whether a taken piece holds one of its offender's places: it can land on the tip now (the
   * block's check, signatures aside: they were checked when it was taken), or its offender is
   * punished already (nothing more can land against it). A piece that cannot land (too old, of
   * a height the chain has not reached, of an epoch whose set lacks the key) must not: the
   * offender could sign two such pairs itself and get every node to refuse the one that can.
   */
  private holdsPlace(evidence: ConsensusEvidence): boolean {
    const { chain } = this.opts;
    const state = chain.tipState;
    if (isTombstoned(state, evidenceOffender(evidence))) return true;
    const head = chain.tip.header.height;
    const height = evidenceSlot(evidence).height;
    // The height being decided lands in the block after it; one further ahead cannot land yet.
    if (height > head + 1n) return false;
    const at = height > head ? height + 1n : head + 1n;
    try {
      checkEvidence(state, chain.genesis.chainId, at, evidence, chain.genesis, () => true);
      return true;
    } catch {
      return false;
    }
  }

  /** Frees the places of pieces that can no longer land; once per tip. */
  private pruneUnlandable(): void {
    const head = this.opts.chain.tipHeight;
    if (head === this.prunedAt) return;
    this.prunedAt = head;
    for (const [id, pieces] of this.piecesByOffender) {
      const kept = pieces.filter((e) => this.holdsPlace(e));
      if (kept.length === 0) this.piecesByOffender.delete(id);
      else this.piecesByOffender.set(id, kept);
    }
  }

  /** Logs and gossips equivocation evidence once, up to `MAX_EVIDENCE_PER_OFFENDER` pieces per offender. */
  reportEvidence(evidence: ConsensusEvidence, source: string): boolean {
    const bytes = encode(consensusEvidenceCodec, evidence);
    const key = toHex(bytes);
    if (this.evidenceSeen.has(key)) return false;
    const offender = evidenceOffender(evidence);
    if (this.hasEnoughAgainst(offender)) return false;
    if (this.evidenceSeen.size > MAX_SEEN) this.evidenceSeen.clear();
    this.evidenceSeen.add(key);
    const id = toHex(offender);
    // A piece that cannot land now (gossip ones were refused before their signatures were
    // checked; this node's machine only sees the height being decided) takes no place and does
    // not wait to be put on chain: an offender's pairs of heights far ahead would otherwise push
    // out of the waiting list (MAX_WAITING) pieces that can land.
    const holdsPlace = this.holdsPlace(evidence);
    if (holdsPlace) {
      const pieces = this.piecesByOffender.get(id);
      if (pieces) pieces.push(evidence);
      else if (this.piecesByOffender.size < MAX_SEEN) this.piecesByOffender.set(id, [evidence]);
    }
    this.opts.logger.warn('equivocation evidence', {
      type: evidence.type,
      offender: toHex(offender),
      source,
    });
    this.opts.onEquivocation?.(offender);
    if (source !== 'gossip') this.opts.publishEvidence(bytes);
    if (holdsPlace) this.submitEvidence(evidence);
    return true;
  }

  /**
   * A validator puts the evidence on chain itself, in a transaction its own key signs and pays
   * for: slashing must not depend on somebody else noticing. A block carries evidence of earlier
   * heights only, so evidence of the height being decided waits for its commit. Evidence already
   * included, too old or about a tombstoned validator is dropped by the check the block will make.
   */
  private submitEvidence(evidence: ConsensusEvidence): void {
    if (!this.opts.validator) return;
    if (this.evidenceToSubmit.length >= MAX_WAITING) this.evidenceToSubmit.shift();
    this.evidenceToSubmit.push({ evidence, sent: null });
    this.flushEvidence();
  }

  /**
   * Submits the evidence whose height is now decided (the tip); called after every commit. Evidence
   * refused with a retryable "busy", or waiting for this validator's next nonce, stays for the next
   * call; any other refusal drops it. Evidence whose transaction was admitted stays too, until it is
   * on chain: should that transaction leave unincluded (expired, its nonce taken by another of this
   * validator's), a fresh one is sent. Byzantine proposers leaving the report out of their blocks
   * for its whole lifetime would otherwise get the equivocation forgotten, hence never slashed.
   */
  flushEvidence(): void {
    const { validator, chain, logger } = this.opts;
    if (!validator || this.evidenceToSubmit.length === 0) return;
    // The tip, not the durable head: the transaction goes to the mempool, which admits against the
    // tip, into a block built on it. A nonce read from the head while the block before is still
    // being written would be one that block used (when it carried this validator's transaction),
    // and the evidence would be refused and forgotten.
    const head = chain.tip.header;
    const state = chain.tipState;
    const chainId = chain.genesis.chainId;
    const sender = addressFromPublicKey(validator.publicKey);
    const nonce = getAccount(state, sender).nonce;
    const waiting: Waiting[] = [];
    /** The entry sent by this flush: it goes last, so the others take the nonce before its next turn. */
    let sentNow: Waiting | null = null;
    // A fee-free transaction must take the sender's next nonce, so one of this validator's at a
    // time: once one is admitted, the rest wait for the commit that includes it (another at the
    // same nonce would be refused REPLACEMENT_UNDERPRICED and forgotten).
    // Entries whose transaction left unincluded go after the rest: the next nonce goes to a piece
    // not tried yet first, so proposers leaving one report out do not hold the others back too.
    const dead = (e: Waiting) =>
      e.sent !== null && (head.height >= e.sent.expiresAt || e.sent.nonce !== nonce);
    // A transaction of an earlier flush that can still land holds the nonce (in the mempool until
    // a block past its expiry); whatever its place in the list.
    let nonceTaken = this.evidenceToSubmit.some((e) => e.sent !== null && !dead(e));
    const entries = [...this.evidenceToSubmit.filter((e) => !dead(e)), ...this.evidenceToSubmit.filter(dead)];
    for (const entry of entries) {
      const { evidence } = entry;
      if (evidenceSlot(evidence).height > head.height) {
        waiting.push(entry);
        continue;
      }
      try {
        // The block's check on the tip: once it fails the evidence can never land (already on
        // chain, by this transaction or somebody else's; too old under EVIDENCE_MAX_AGE_EPOCHS;
        // the offender tombstoned) and is dropped below. That is what bounds the keeping.
        checkEvidence(state, chainId, head.height + 1n, evidence, chain.genesis);
        if (nonceTaken) {
          waiting.push(entry);
          continue;
        }
        // Evidence-only transactions are fee-free: a validator with an empty balance can report.
        const tx = {
          chainId,
          signer: validator.publicKey,
          nonce,
          fee: 0n,
          expiresAt: head.height + EVIDENCE_TX_LIFETIME,
          actions: [{ type: 'evidence' as const, evidence }],
        };
        const env = envelopeFromSigned(signTransaction(tx, validator.seed));
        const resent = entry.sent !== null;
        this.opts.admitTx(env);
        nonceTaken = true;
        sentNow = { evidence, sent: { nonce, expiresAt: tx.expiresAt } };
        this.opts.announceTx(env);
        logger.info(resent ? 'resubmitted equivocation evidence' : 'submitted equivocation evidence', {
          offender: toHex(evidenceOffender(evidence)),
          tx: toHex(env.hash),
        });
      } catch (err) {
        if (
          isRetryableRefusal(err) ||
          (err instanceof ValidationError &&
            (err.code === 'REPLACEMENT_UNDERPRICED' ||
              err.code === 'EVIDENCE_PENDING' ||
              err.code === 'ALREADY_PENDING' ||
              err.code === 'MEMPOOL_FULL'))
        ) {
          // "Busy, retry" (the node is behind its peers and judged the transaction on stale state,
          // or its admission queue is full) is no verdict on the evidence: dropped, the
          // equivocation would go unslashed. Nor is a pending transaction of this validator's
          // holding the next nonce (one of an earlier flush, or the operator's): it leaves the
          // mempool when included or expired (or, a report of other evidence, EVIDENCE_PENDING,
          // when it lands). Nor is another pending report of the same offender (the mempool holds
          // one per offender, at its sender's next nonce, due in the next block): should it not
          // land after all (the state moved under it, the mempool's recheckEvidence after each
          // commit), the place is free at the next flush. Nor is a full mempool
          // (MEMPOOL_FULL: a fee-free report evicts no other fee-free transaction, and heartbeats
          // can fill a pool): it passes with the next blocks, and dropped here the equivocation
          // went unreported by this validator for good.
          // Kept for the next flush (after the next commit).
          // Bounded: tried once per flush, MAX_WAITING entries, and `checkEvidence` drops it once
          // it is too old to land (or was included by somebody else's report).
          waiting.push(entry);
          logger.info('equivocation evidence deferred, retried after the next commit', {
            offender: toHex(evidenceOffender(evidence)),
            error: (err as Error).message,
          });
          continue;
        }
        if (
          err instanceof ValidationError &&
          (err.code === 'EVIDENCE_DUPLICATE' || err.code === 'VALIDATOR_TOMBSTONED')
        ) {
          // The outcome sought: on chain (this report or another), or the offender punished.
          logger.info('equivocation evidence done with', { error: err.message });
          continue;
        }
        logger.warn('equivocation evidence not submitted', { error: (err as Error).message });
      }
    }
    // Last in the list: once its transaction left unincluded, the other entries that left theirs
    // come before it (in turn), else the one resent first would be resent first for ever and
    // proposers leaving that one report out would hold back every other.
    if (sentNow) waiting.push(sentNow);
    this.evidenceToSubmit = waiting;
  }
}
