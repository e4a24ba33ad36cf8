/**
 * Equivocation evidence on chain (PROTOCOL.md §5, §6): anyone may include proof that a validator
 * signed two conflicting votes or proposals. It is checked against the validator set of the epoch
 * of the offence (kept for a few epochs, consensus/epoch-validators.ts), then the bond of the
 * account that registered the offending consensus key is slashed and the validator is tombstoned:
 * it leaves every validator set computed from then on, and the chips its account owns back no
 * validator for `tombstoneEpochs` epochs, whoever owns them then.
 *
 * Decisions (docs in docs/consensus.md):
 * - The slashed UNC is burned (recorded in supply.slashed), not paid to the reporter: a reward
 *   would let an equivocating validator report itself through a second account and take part of
 *   its own slash back.
 * - One offence per validator: once tombstoned, further evidence against it is refused, so the
 *   evidence records (one per tombstone) stay bounded.
 * - Evidence may be at most EVIDENCE_MAX_AGE_EPOCHS epochs old, less than the unbonding period
 *   (3 epochs), so an offender cannot unbond before its evidence lands.
 */
import { toHex } from '../bytes.js';
import { taggedHash } from '../crypto/hash.js';
import { type Codec, decode, encode, u64 } from '../encoding/codec.js';
import { DecodeError, ValidationError } from '../errors.js';
import { epochOf } from '../poci/liveness.js';
import { getPociParams } from '../poci/params.js';
import { slashBond } from '../rewards/bonds.js';
import { StateSpace } from '../state/accounts.js';
import type { StateOverlay, StateReader } from '../state/store.js';
import {
  accountOfConsensusKey,
  EVIDENCE_MAX_AGE_EPOCHS,
  type GenesisValidatorsLike,
  getConsensusParams,
  isTombstoned,
  tombstoneValidator,
  validatorSetForEpoch,
} from './epoch-validators.js';
import {
  type ConsensusEvidence,
  consensusEvidenceCodec,
  consensusEvidenceFault,
  defaultVerify,
  evidenceOffender,
  type VerifyFn,
} from './messages.js';

export interface ValidatorSlashedEvent {
  type: 'validatorSlashed';
  /** The offender's consensus key and the account whose bond was slashed. */
  validator: Uint8Array;
  account: Uint8Array;
  kind: ConsensusEvidence['type'];
  /** Height and round of the conflicting messages. */
  height: bigint;
  round: number;
  /** Burned from its bond (bonded, then unbonding). */
  slashed: bigint;
  reporter: Uint8Array;
}

/** The kind of an offence, with the tags of consensusEvidenceCodec. */
export const evidenceKindCodec: Codec<ConsensusEvidence['type']> = {
  name: 'EvidenceKind',
  write(w, v) {
    if (v === 'duplicate-vote') w.u8(1);
    else if (v === 'duplicate-proposal') w.u8(2);
    else throw new RangeError(`unknown evidence kind ${String(v)}`);
  },
  read(r) {
    const tag = r.u8('EvidenceKind');
    if (tag === 1) return 'duplicate-vote';
    if (tag === 2) return 'duplicate-proposal';
    throw new DecodeError(`unknown evidence kind tag ${tag}`);
  },
};

/** The identity of a piece of evidence: its canonical encoding is unique per offence. */
export function evidenceId(evidence: ConsensusEvidence): Uint8Array {
  return taggedHash('UNC/evidence', encode(consensusEvidenceCodec, evidence));
}

export function evidenceSlot(evidence: ConsensusEvidence): { height: bigint; round: number } {
  return { height: evidence.first.height, round: evidence.first.round };
}

function seenKey(id: Uint8Array): Uint8Array {
  const k = new Uint8Array(33);
  k[0] = StateSpace.consensusEvidence;
  k.set(id, 1);
  return k;
}

/** The height of the block that included this evidence, or null if it never was. */
export function evidenceIncludedAt(state: StateReader, evidence: ConsensusEvidence): bigint | null {
  const raw = state.get(seenKey(evidenceId(evidence)));
  return raw ? decode(u64, raw) : null;
}

/**
 * Everything short of applying it: throws ValidationError if `evidence` may not be included in a
 * block at `height` on top of `state` (a mempool runs this at admission). `genesis` is only needed
 * for states written before the genesis validator set was kept in the state.
 */
export function checkEvidence(
  state: StateReader,
  chainId: string,
  height: bigint,
  evidence: ConsensusEvidence,
  genesis: GenesisValidatorsLike | null = null,
  verify: VerifyFn = defaultVerify,
): void {
  const slot = evidenceSlot(evidence);
  const where = `evidence of ${evidence.type} at height ${slot.height} round ${slot.round}`;
  // No votes or proposals are signed at height 0 (the genesis): a fact of the bytes.
  if (slot.height === 0n) throw new ValidationError('BAD_EVIDENCE_PROOF', `${where}: height 0 has no votes`);
  // The messages of a height are signed after its block was proposed: a block can only carry
  // evidence of earlier heights.
  if (slot.height >= height) {
    throw new ValidationError('BAD_EVIDENCE', `${where}: not a height before ${height}`);
  }
  const p = getPociParams(state);
  const epoch = epochOf(slot.height, p);
  if (epoch + EVIDENCE_MAX_AGE_EPOCHS < epochOf(height, p)) {
    throw new ValidationError(
      'EVIDENCE_TOO_OLD',
      `${where}: epoch ${epoch} is more than ${EVIDENCE_MAX_AGE_EPOCHS} epochs before this block's`,
    );
  }
  if (evidenceIncludedAt(state, evidence) !== null) {
    throw new ValidationError('EVIDENCE_DUPLICATE', `${where}: already included`);
  }
  const offender = evidenceOffender(evidence);
  if (isTombstoned(state, offender)) {
    throw new ValidationError(
      'VALIDATOR_TOMBSTONED',
      `${where}: validator ${toHex(offender)} was already punished for equivocation`,
    );
  }
  const set = validatorSetForEpoch(state, genesis, epoch);
  if (!set) {
    throw new ValidationError('EVIDENCE_TOO_OLD', `${where}: the validator set of epoch ${epoch} is unknown`);
  }
  const fault = consensusEvidenceFault(chainId, set, evidence, verify);
  if (fault !== null) throw new ValidationError(fault.code, `${where}: ${fault.reason}`);
}

/** Applies an `evidence` action included at `ctx.height` by `reporter` (the sender's address). */
export function applyEvidence(
  state: StateOverlay,
  ctx: { chainId: string; height: bigint },
  reporter: Uint8Array,
  evidence: ConsensusEvidence,
): ValidatorSlashedEvent[] {
  checkEvidence(state, ctx.chainId, ctx.height, evidence);
  const validator = evidenceOffender(evidence);
  const account = accountOfConsensusKey(state, validator);
  state.set(seenKey(evidenceId(evidence)), encode(u64, ctx.height));
  const params = getConsensusParams(state);
  const slashed = slashBond(state, account, params.equivocationSlashBps);
  tombstoneValidator(
    state,
    validator,
    ctx.height,
    epochOf(ctx.height, getPociParams(state)),
    params.tombstoneEpochs,
  );
  const slot = evidenceSlot(evidence);
  return [
    {
      type: 'validatorSlashed',
      validator,
      account,
      kind: evidence.type,
      height: slot.height,
      round: slot.round,
      slashed,
      reporter,
    },
  ];
}
