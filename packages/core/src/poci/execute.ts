/**
 * POCI's part of the state transition: governance of the registries, chip registration, transfer
 * and deregistration, and heartbeat answers. Each function either applies fully or throws a
 * ValidationError (the caller's overlay is discarded then).
 */

import { AttestationError } from '../attestation/errors.js';
import type { EvidenceCheck } from '../attestation/index.js';
import { canonicalAllowlistKey, rsaAllowListChipId } from '../attestation/rsa-allowlist.js';
import { checkTpmClockMonotonic, type TpmClockEvent } from '../attestation/tpm2.js';
import { normalizeRevocationId, parseCertificate } from '../attestation/x509.js';
import { equalBytes, toHex } from '../bytes.js';
import { getParams } from '../chain/params.js';
import type {
  Action,
  ClaimRewardsAction,
  DeregisterChipAction,
  GovernanceAction,
  HeartbeatAction,
  HeartbeatAnswer,
  RegisterChipAction,
  Transaction,
  TransferChipAction,
} from '../chain/transaction.js';
import { reweighOwnerChip } from '../consensus/epoch-validators.js';
import { type AnswerRef, StateRefusal, ValidationError } from '../errors.js';
import { chipLeasedRefusal, chipLeasedRefusalAtAdmission } from '../market/execute.js';
import {
  addAnswerWeight,
  finalizeEpochIfDue,
  HeldRecords,
  popcount,
  pruneEpochs,
  type RewardPaid,
  recordBlockChallenge,
  settleChipRewards,
} from '../rewards/emission.js';
import type { StateOverlay, StateReader } from '../state/store.js';
import {
  type ConsentCheck,
  type ConsentVerdicts,
  type Ed25519Verified,
  type EvidenceVerdicts,
  type RegisteredIdentity,
  registrationCheck,
  verifyConsent,
  verifyHeartbeat,
  verifyRegistration,
} from './attest.js';
import {
  type Chip,
  ChipStatus,
  credentialRevocation,
  effectiveStatus,
  getChip,
  getTpmAkChip,
  putChip,
  putTpmAkChip,
  REVOKED_CHIP_GRACE_EPOCHS,
  type TpmClock,
} from './chips.js';
import type { HeartbeatEvidence } from './evidence.js';
import { checkApprovals, getGovernance, putGovernance } from './governance.js';
import {
  answeredIn,
  answeredMask,
  type ChallengeLookup,
  challengeLookup,
  chipClass,
  epochOf,
  epochStart,
  getEpochRecord,
  getRecentHash,
  getRecentTime,
  heartbeatChallenge,
  MAX_CHALLENGES_PER_EPOCH,
  markAnswered,
  markUncredited,
  putEpochRecord,
  putRecentHash,
  putRecentTime,
  registrationMessage,
  type SlotOutcome,
  type TpmAnswerCredit,
  tpmAnswerCredit,
  tpmBatchAnswerCredit,
  tpmClockRequiredMs,
  tpmCreditSlackMs,
  transferMessage,
  unansweredSlots,
  uncreditedIn,
} from './liveness.js';
import { mayAnswerFor, pruneRemovedHeartbeatOperators } from './operator.js';
import { getPociParams, type PociParams, putPociParams } from './params.js';
import {
  type ChipModel,
  checkId,
  deleteModel,
  getModel,
  getVendor,
  MAX_MODEL_POWER,
  modelPowerAt,
  putAllowlistEntry,
  putModel,
  putVendor,
  setSerialRevoked,
} from './registry.js';
import { forgetSeatShare, rememberSeatShare } from './seat-share.js';

export interface PociContext {
  chainId: string;
  height: bigint;
  time: bigint;
  /** Chip signatures already found valid (checked in parallel before the block): skips only a pass. */
  isEd25519Verified?: Ed25519Verified;
  /** Told each time a costly attestation check starts (ExecuteOptions.onCostlyCheck); changes nothing. */
  onCostlyCheck?: () => void;
  /** Told as each chip a claim settles starts (ExecuteOptions.onActionWork); changes nothing. */
  onActionWork?: () => void;
  /**
   * Registration evidence already checked elsewhere (a node's verify workers), for the very same
   * inputs only (attest.ts EvidenceVerdicts): the same answer as checking it here, sooner.
   */
  evidenceVerdicts?: EvidenceVerdicts;
  /** Transfer consents already checked elsewhere, for the very same inputs only (attest.ts ConsentVerdicts). */
  consentVerdicts?: ConsentVerdicts;
}

export type PociEvent =
  | { type: 'governance'; proposal: string; nonce: bigint }
  | {
      type: 'chipRegistered';
      chipId: Uint8Array;
      owner: Uint8Array;
      vendorId: string;
      modelId: string;
      power: bigint;
    }
  | { type: 'chipTransferred'; chipId: Uint8Array; from: Uint8Array; to: Uint8Array }
  | { type: 'chipDeregistered'; chipId: Uint8Array; owner: Uint8Array }
  | { type: 'slotAnswered'; chipId: Uint8Array; epoch: bigint; slot: number; slotHeight: bigint }
  | {
      type: 'slotMissed';
      chipId: Uint8Array;
      epoch: bigint;
      slot: number;
      slotHeight: bigint;
      reason: string;
    }
  | { type: 'chipRebooted'; chipId: Uint8Array; resetCount: number; restartCount: number }
  | {
      /** An answer accepted but not credited (tpm2): a miss for everything answers count for. */
      type: 'answerUncredited';
      chipId: Uint8Array;
      epoch: bigint;
      slot: number;
      slotHeight: bigint;
      /** 'asleep': the TPM clock advanced less than `requiredMs`; 'rebooted': resetCount or
       *  restartCount changed (then both figures are 0). */
      reason: 'asleep' | 'rebooted';
      clockAdvanceMs: bigint;
      requiredMs: bigint;
    }
  | {
      type: 'chipRewarded';
      chipId: Uint8Array;
      owner: Uint8Array;
      epoch: bigint;
      answered: number;
      challenged: number;
      credited: number;
      power: bigint;
      weight: bigint;
      budget: bigint;
      totalWeight: bigint;
      amount: bigint;
    };

function rewardEvents(chip: Chip, paid: RewardPaid[]): PociEvent[] {
  return paid.map((r) => ({
    type: 'chipRewarded',
    chipId: chip.chipId,
    owner: chip.owner,
    epoch: r.epoch,
    answered: r.answered,
    challenged: r.challenged,
    credited: r.credited,
    power: r.power,
    weight: r.weight,
    budget: r.budget,
    totalWeight: r.totalWeight,
    amount: r.amount,
  }));
}

/** Pays the chips their final epochs' rewards; anyone may ask (the owner is paid). */
export function applyClaimRewards(
  state: StateOverlay,
  ctx: PociContext,
  action: ClaimRewardsAction,
): PociEvent[] {
  if (action.chipIds.length === 0) throw new ValidationError('EMPTY_CLAIM', 'name at least one chip');
  const p = getPociParams(state);
  const events: PociEvent[] = [];
  for (const chipId of action.chipIds) {
    ctx.onActionWork?.();
    const chip = getChip(state, chipId);
    if (!chip) throw new ValidationError('UNKNOWN_CHIP', `chip ${toHex(chipId)} is not registered`);
    const paid = settleChipRewards(state, chip, p);
    putChip(state, chip);
    events.push(...rewardEvents(chip, paid));
  }
  return events;
}

/** Misses recorded per answer at most; a chip silent for longer gets one summary event. */
const MAX_MISS_EVENTS = 16;
/** Misses counted per answer at most (a bound on the work one answer can cause). */
const MAX_MISSES_COUNTED = 256;

/**
 * Block-start bookkeeping, O(1): remember the previous block's hash; record the class that the
 * previous block challenged (from its beacon, known only now that it is committed); open a new
 * epoch; fix the budget of an epoch that became final.
 */
export function beginBlockPoci(
  state: StateOverlay,
  ctx: PociContext,
  prevHash: Uint8Array,
  prevBeacon: Uint8Array,
): void {
  putRecentHash(state, ctx.height - 1n, prevHash);
  // The records of heartbeat operators the block before removed (poci/operator.ts).
  pruneRemovedHeartbeatOperators(state, ctx.height);
  // The block's own time, for the credit of answers to its challenge (tpmAnswerCredit).
  putRecentTime(state, ctx.height, ctx.time);
  const p = getPociParams(state);
  const epoch = epochOf(ctx.height, p);
  if (ctx.height >= 2n) recordBlockChallenge(state, ctx.height - 1n, prevBeacon, p);
  if (ctx.height === epochStart(epoch, p) && !getEpochRecord(state, epoch)) {
    // The seed is the beacon of the last block of the previous epoch: unknown until that block.
    putEpochRecord(state, {
      epoch,
      seed: prevBeacon,
      startHeight: ctx.height,
      startTime: ctx.time,
      totalWeight: 0n,
      final: false,
      budget: 0n,
      remainingBudget: 0n,
      remainingWeight: 0n,
    });
  }
  finalizeEpochIfDue(state, ctx.height, p);
  pruneEpochs(state, ctx.height, p);
}

export function applyGovernance(
  state: StateOverlay,
  ctx: PociContext,
  action: GovernanceAction,
): PociEvent[] {
  const g = getGovernance(state);
  checkApprovals(g, ctx.chainId, action.proposal, action.approvals);
  const p = action.proposal;
  try {
    switch (p.type) {
      case 'setVendor':
        checkId(p.vendor.id, 'vendor id');
        if ((p.vendor.requireAkEku || p.vendor.requireHardwareModuleName) && p.vendor.profile !== 'tpm2') {
          throw new ValidationError('BAD_PROPOSAL', 'AK requirements apply to tpm2 vendors only');
        }
        checkVendorRoots(p.vendor.roots);
        putVendor(state, p.vendor);
        break;
      case 'setModel':
        checkId(p.model.vendorId, 'vendor id');
        checkId(p.model.modelId, 'model id');
        if (!getVendor(state, p.model.vendorId)) {
          throw new ValidationError('UNKNOWN_VENDOR', `vendor "${p.model.vendorId}" is not registered`);
        }
        if (p.model.power <= 0n || p.model.power > MAX_MODEL_POWER)
          throw new ValidationError('BAD_POWER', `a model's rated power must be 1…${MAX_MODEL_POWER}`);
        putModel(state, { ...p.model, ...modelSchedule(state, ctx, p.model) });
        break;
      case 'removeModel':
        checkId(p.vendorId, 'vendor id');
        checkId(p.modelId, 'model id');
        if (!getModel(state, p.vendorId, p.modelId)) {
          throw new ValidationError('UNKNOWN_MODEL', `model ${p.vendorId}/${p.modelId} is not registered`);
        }
        deleteModel(state, p.vendorId, p.modelId);
        break;
      case 'setAllowlist':
        if (!getModel(state, p.entry.vendorId, p.entry.modelId)) {
          throw new ValidationError(
            'UNKNOWN_MODEL',
            `model ${p.entry.vendorId}/${p.entry.modelId} is not registered`,
          );
        }
        // Only a listing is checked: removing an entry must work whatever its key (an entry
        // stored before this check could hold a key that does not parse).
        if (p.entry.allowed) checkAllowlistKey(p.entry.publicKey);
        putAllowlistEntry(state, p.entry);
        if (!p.entry.allowed) {
          // A removal names a key, not its bytes: the key listed in its one encoding goes too, so
          // a removal spelled without the rsaEncryption NULL is no silent no-op (audchip C4).
          const canonical = canonicalAllowlistKey(p.entry.publicKey);
          if (canonical && !equalBytes(canonical, p.entry.publicKey))
            putAllowlistEntry(state, { ...p.entry, publicKey: canonical });
        }
        break;
      case 'revokeSerial': {
        // A serial is unique only per issuing CA: revoked alone it revoked every certificate of the
        // vendor's CAs with that serial, other chips' too. So the action names the issuer as well.
        const id = normalizeRevocationId(p.serial);
        if (id === null) {
          throw new ValidationError(
            'BAD_SERIAL',
            'a revoked certificate is named by its issuer and serial: <first 16 bytes of SHA-256 of the issuer Name DER, hex>:<serial hex>, lowercase, no leading zero octets (certificateRevocationId)',
          );
        }
        setSerialRevoked(state, p.vendorId, id, p.revoked);
        break;
      }
      case 'revokeChip': {
        const chip = getChip(state, p.chipId);
        if (!chip) throw new ValidationError('UNKNOWN_CHIP', `chip ${toHex(p.chipId)} is not registered`);
        chip.status = ChipStatus.revoked;
        chip.statusReason = p.reason || 'revoked by governance';
        putChip(state, chip);
        break;
      }
      case 'setPociParams':
        checkPociParams(p.params);
        checkPociParamsChange(getPociParams(state), p.params);
        putPociParams(state, p.params);
        break;
    }
  } catch (err) {
    if (err instanceof RangeError) throw new ValidationError('BAD_PROPOSAL', err.message);
    throw err;
  }
  putGovernance(state, { ...g, nonce: g.nonce + 1n });
  return [{ type: 'governance', proposal: p.type, nonce: g.nonce }];
}

/**
 * Every root of a vendor must parse as registration will parse it (parseTrustedRoots): a root
 * that does not (garbage, or a key outside the x509 parser's bounds such as RSA-8192) would make
 * every registration under the vendor fail, so governance refuses it here rather than store it, and
 * a genesis is refused at load (chain/genesis.ts) for the same reason.
 */
export function checkVendorRoots(roots: readonly Uint8Array[]): void {
  roots.forEach((der, i) => {
    try {
      parseCertificate(der);
    } catch (err) {
      if (err instanceof AttestationError)
        throw new ValidationError('BAD_VENDOR_ROOT', `vendor root ${i} does not parse: ${err.message}`);
      throw err;
    }
  });
}

/**
 * An allow-listed key must be one registration can accept (an RSA-2048 SubjectPublicKeyInfo,
 * parsed as rsa2048-allowlist evidence is): any other key lists a chip that can never register.
 */
function checkAllowlistKey(publicKey: Uint8Array): void {
  try {
    rsaAllowListChipId(publicKey);
  } catch (err) {
    if (err instanceof AttestationError)
      throw new ValidationError('BAD_ALLOWLIST_KEY', `the allow-listed key does not parse: ${err.message}`);
    throw err;
  }
}

export function checkPociParams(p: PociParams): void {
  if (p.slotsPerEpoch < 1 || p.slotsPerEpoch > 8) throw new RangeError('slotsPerEpoch must be 1…8');
  if (p.epochBlocks < BigInt(p.slotsPerEpoch) * 2n)
    throw new RangeError('epochBlocks too small for the slots');
  if (p.answerWindowBlocks < 1n || p.answerWindowBlocks > 200n)
    throw new RangeError('answerWindowBlocks must be 1…200');
  // A chip keeps the answered-slot masks of two epochs; unsettled slots (the last W blocks) must
  // fall inside them.
  if (p.epochBlocks <= p.answerWindowBlocks + 1n)
    throw new RangeError('epochBlocks must exceed answerWindowBlocks + 1');
  if (p.registrationMaxAgeBlocks < 1n || p.registrationMaxAgeBlocks > 200n) {
    throw new RangeError('registrationMaxAgeBlocks must be 1…200');
  }
  if (p.offlineAfterMisses < 1) throw new RangeError('offlineAfterMisses must be at least 1');
  if (p.graceSlotsPerEpoch > p.slotsPerEpoch)
    throw new RangeError('graceSlotsPerEpoch exceeds slotsPerEpoch');
}

/**
 * Epoch numbers (B), challenge classes (M = floor(B / S)), answer windows (W, which also fixes the
 * height at which an epoch becomes final) and the grace rule (S, G) are baked into the records of
 * open and unpaid epochs: class lists, answer masks, class weights and epoch totals. Changing them
 * on a live chain re-files heights into epochs already final or paid (a live change of B made every
 * following block throw), so they change only with a chain upgrade; K, the registration age and
 * dev-soft may change at any time.
 */
export function checkPociParamsChange(current: PociParams, next: PociParams): void {
  for (const field of ['epochBlocks', 'slotsPerEpoch', 'answerWindowBlocks', 'graceSlotsPerEpoch'] as const) {
    if (current[field] !== next[field]) {
      throw new RangeError(`${field} is fixed for the life of the chain (epochs already use it)`);
    }
  }
}

function anchorHash(state: StateReader, ctx: PociContext, anchorHeight: bigint, p: PociParams): Uint8Array {
  if (anchorHeight >= ctx.height || anchorHeight + p.registrationMaxAgeBlocks < ctx.height) {
    throw new ValidationError(
      'STALE_ANCHOR',
      `the anchor block ${anchorHeight} must be one of the last ${p.registrationMaxAgeBlocks} blocks before ${ctx.height}`,
    );
  }
  const hash = getRecentHash(state, anchorHeight);
  if (!hash) throw new ValidationError('STALE_ANCHOR', `block ${anchorHeight} is not a recent block`);
  return hash;
}

/** The anchor and the evidence of a registration: the costly part of its validity (a chain, a quote). */
function verifyRegisterChip(
  state: StateReader,
  ctx: PociContext,
  owner: Uint8Array,
  action: RegisterChipAction,
  p: PociParams,
): RegisteredIdentity {
  const message = registrationMessage(ctx.chainId, owner, anchorHash(state, ctx, action.anchorHeight, p));
  ctx.onCostlyCheck?.();
  return verifyRegistration(state, action.evidence, p, ctx.time, message, ctx.evidenceVerdicts);
}

/**
 * The evidence checks of `tx`'s registrations, as `checkCostlyActions` would make them against
 * `state` at `ctx`, as plain data to make elsewhere (`runEvidenceCheck` on a worker thread) and hand
 * back through `ctx.evidenceVerdicts`. A registration whose cheap part already fails (an anchor
 * not recent, a vendor not registered) has none: `checkCostlyActions` refuses it before any check.
 */
export function registrationEvidenceChecks(
  state: StateReader,
  ctx: PociContext,
  owner: Uint8Array,
  tx: Transaction,
): EvidenceCheck[] {
  const checks: EvidenceCheck[] = [];
  if (costlyActionCount(tx) === 0) return checks;
  const p = getPociParams(state);
  for (const a of tx.actions) {
    if (a.type !== 'registerChip') continue;
    try {
      const message = registrationMessage(ctx.chainId, owner, anchorHash(state, ctx, a.anchorHeight, p));
      checks.push(registrationCheck(state, a.evidence, p, ctx.time, message));
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
    }
  }
  return checks;
}

/** The anchor and the consent of a transfer: a TPM quote or signature by the chip. */
function verifyTransferConsent(
  state: StateReader,
  ctx: PociContext,
  chip: Chip,
  action: TransferChipAction,
  p: PociParams,
): { tpmClock: TpmClock | null } {
  const check = transferConsentCheckOf(state, ctx, chip, action, p);
  ctx.onCostlyCheck?.();
  return verifyConsent(check, ctx.consentVerdicts);
}

/**
 * The consent check of a transfer of `chip`, its message bound to the transfer's anchor (throws the
 * anchor's ValidationError when it is not recent). Shared by execution and `transferConsentChecks`,
 * so that the check a worker makes ahead is the one execution looks up in `ctx.consentVerdicts`.
 */
function transferConsentCheckOf(
  state: StateReader,
  ctx: PociContext,
  chip: Chip,
  action: TransferChipAction,
  p: PociParams,
): ConsentCheck {
  const message = transferMessage(
    ctx.chainId,
    chip.chipId,
    action.newOwner,
    anchorHash(state, ctx, action.anchorHeight, p),
  );
  return consentCheck(chip, action.consent, message);
}

/**
 * The chip of a transfer whose consent `checkCostlyActions` checks, or null for one it passes over:
 * a chip that is not `owner`'s active one (execution refuses that transfer before any costly work,
 * and `owner`'s earlier pending transactions may yet register it). Shared with
 * `transferConsentChecks`, so that the checks made ahead are those made inline.
 */
function consentingChip(
  state: StateReader,
  owner: Uint8Array,
  action: TransferChipAction,
  atMs: bigint,
): Chip | null {
  const chip = getChip(state, action.chipId);
  if (!chip || !equalBytes(chip.owner, owner) || effectiveStatus(state, chip, atMs).status !== 'active')
    return null;
  return chip;
}

/** A chip goes to another account: a transfer to its own owner is refused (it moved nothing, and ended the chip's lease). */
function sameOwnerRefusal(owner: Uint8Array, action: TransferChipAction): ValidationError | null {
  if (!equalBytes(action.newOwner, owner)) return null;
  return new ValidationError(
    'SAME_OWNER',
    `chip ${toHex(action.chipId)} already belongs to the sender: a chip is transferred to another account`,
  );
}

/**
 * The refusal a node gives at admission, for a few lookups and before any costly check, to a chip
 * transfer or deregistration by `sender` that execution refuses before any costly work whatever
 * `sender`'s own transactions do first: a transfer to the sender itself (`SAME_OWNER`, from the
 * bytes alone), or a chip of the sender's held by a lease that binds it at block time `time` and
 * that the sender cannot end at once (`CHIP_LEASED`, market/execute.ts chipLeasedRefusalAtAdmission:
 * its offer gives notice; with `earlier`, the sender's actions that run before this one, also an
 * offer without notice none of them ends). Null otherwise, and for any other action. Node policy,
 * not a block rule: the state (a lease the renter closes, the notice running out) may let the same
 * transaction through later.
 */
export function chipActionRefusal(
  state: StateReader,
  time: bigint,
  sender: Uint8Array,
  action: Action,
  earlier?: readonly Action[],
): ValidationError | null {
  if (action.type === 'transferChip') {
    const same = sameOwnerRefusal(sender, action);
    if (same) return same;
    return consentingChip(state, sender, action, time)
      ? chipLeasedRefusalAtAdmission(state, action.chipId, sender, time, 'transferred', earlier)
      : null;
  }
  if (action.type === 'deregisterChip') {
    const chip = getChip(state, action.chipId);
    if (!chip || !equalBytes(chip.owner, sender)) return null;
    return chipLeasedRefusalAtAdmission(state, action.chipId, sender, time, 'deregistered', earlier);
  }
  return null;
}

function consentCheck(chip: Chip, consent: HeartbeatEvidence, message: Uint8Array): ConsentCheck {
  return { consent, profile: chip.profile, keyMaterial: chip.keyMaterial, message };
}

/**
 * The consent checks of `tx`'s chip transfers, as `checkCostlyActions` would make them against
 * `state` at `ctx`, as plain data to make elsewhere (`runConsentCheck` on a worker thread) and hand
 * back through `ctx.consentVerdicts`. A transfer `checkCostlyActions` passes over (a chip that is
 * not the sender's active one) or refuses before its consent (chipActionRefusal: to its sender, or
 * of a leased chip; an anchor not recent) has none.
 */
export function transferConsentChecks(
  state: StateReader,
  ctx: PociContext,
  owner: Uint8Array,
  tx: Transaction,
): ConsentCheck[] {
  const checks: ConsentCheck[] = [];
  if (costlyActionCount(tx) === 0) return checks;
  const p = getPociParams(state);
  for (const a of tx.actions) {
    if (a.type !== 'transferChip') continue;
    if (chipActionRefusal(state, ctx.time, owner, a)) continue;
    const chip = consentingChip(state, owner, a, ctx.time);
    if (!chip) continue;
    try {
      checks.push(transferConsentCheckOf(state, ctx, chip, a, p));
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
    }
  }
  return checks;
}

/**
 * CONSENSUS CHANGE (chipleft, audchip C6): a registration over an existing record must be anchored
 * at or after the record's last transfer or deregistration (`releasedAt`). The registration message
 * names only the chain, the owner and the anchor, so evidence the chip signed for its owner before
 * it changed hands, or before it was deregistered, would register it again for that owner, without
 * the chip, while its anchor is recent. A signature over the hash of block `releasedAt` or a later
 * one was made after the release. Null when `anchorHeight` is fine.
 */
function anchorBeforeReleaseRefusal(existing: Chip | null, anchorHeight: bigint): ValidationError | null {
  if (!existing || anchorHeight >= existing.releasedAt) return null;
  return new ValidationError(
    'ANCHOR_BEFORE_RELEASE',
    `chip ${toHex(existing.chipId)} was transferred or deregistered at height ${existing.releasedAt}, after this registration's anchor ${anchorHeight}: evidence signed before then cannot register it again; sign a registration anchored at block ${existing.releasedAt} or later`,
  );
}

/**
 * One TPM, one chip: the same AK under another chip id (certified once with a device name and once
 * without) would be answered by the same TPM twice. The rule for the chip id holds here too: only
 * a deregistered chip frees its key, and, as for the chip id (anchorBeforeReleaseRefusal), only to
 * evidence anchored at or after that record's last release (review revchipleft, CONSENSUS CHANGE):
 * else a seller's evidence for the TPM's other chip id, signed before the sale, registered the TPM
 * again without it once the buyer deregistered it, and the buyer's chip id was held against it.
 */
function refuseHeldAttestationKey(state: StateReader, id: RegisteredIdentity, anchorHeight: bigint): void {
  if (!id.akKeyId) return;
  const holderId = getTpmAkChip(state, id.akKeyId);
  const holder = holderId && !equalBytes(holderId, id.chipId) ? getChip(state, holderId) : null;
  // Compared with `deregistered` alone: no block time needed (expiry reads revoked).
  const held = holder ? effectiveStatus(state, holder, null).status : 'deregistered';
  if (held !== 'deregistered') {
    throw new ValidationError(
      'CHIP_ALREADY_REGISTERED',
      `this TPM's attestation key is already registered as chip ${toHex(holderId!)} (${held}); one TPM is one chip`,
    );
  }
  const early = anchorBeforeReleaseRefusal(holder, anchorHeight);
  if (early) throw early;
}

/**
 * Actions whose validity costs attestation work (certificate chains, TPM quotes, SPDM
 * transcripts: milliseconds each, where a transfer costs microseconds), for a node's policy on
 * failures, which pay nothing: a registration and a transfer's consent.
 */
export function costlyActionCount(tx: Transaction): number {
  let n = 0;
  for (const a of tx.actions) if (a.type === 'registerChip' || a.type === 'transferChip') n++;
  return n;
}

/**
 * The costly part of `tx`'s chip actions, alone, against `state` as the next block at `ctx` would
 * run it for `owner`: a registration's anchor and evidence, a transfer's anchor and consent; and
 * the cheap refusal a registration meets only after its evidence, a chip already registered (here
 * or earlier in `tx`). Returns the ids of the chips `tx` registers. Throws the ValidationError
 * execution would throw from that part (a transfer's consent failure as a StateRefusal: it depends
 * on the chip's key in `state`). A transfer to its sender, or of a chip a lease binds that the
 * sender cannot end at once, is refused before its consent's check (chipActionRefusal: SAME_OWNER,
 * CHIP_LEASED); one whose chip answered in an epoch of its owner's that is not final yet is refused
 * before it too (CHIP_REWARDS_PENDING, as a registration of it again after its evidence), which
 * execution refuses only after the consent. A transfer whose chip is not the sender's active one is
 * passed over (execution refuses it before any costly work, and the sender's earlier pending
 * transactions may yet register it). Node policy, not a block rule: a failed transaction pays
 * nothing, so a mempool refuses at admission what fails here rather than hand it to every proposer
 * to execute (docs/poci.md, "Registration"); nothing is written.
 */
export function checkCostlyActions(
  state: StateReader,
  ctx: PociContext,
  owner: Uint8Array,
  tx: Transaction,
): Uint8Array[] {
  const registered: Uint8Array[] = [];
  if (costlyActionCount(tx) === 0) return registered;
  const p = getPociParams(state);
  for (const a of tx.actions) {
    if (a.type === 'registerChip') {
      const id = verifyRegisterChip(state, ctx, owner, a, p);
      const { chipId } = id;
      const existing = getChip(state, chipId);
      if (
        registered.some((c) => equalBytes(c, chipId)) ||
        (existing && effectiveStatus(state, existing, ctx.time).status !== 'deregistered')
      ) {
        throw new ValidationError('CHIP_ALREADY_REGISTERED', `chip ${toHex(chipId)} is already registered`);
      }
      const early = anchorBeforeReleaseRefusal(existing, a.anchorHeight);
      if (early) throw early;
      refuseHeldAttestationKey(state, id, a.anchorHeight);
      if (existing) {
        const pending = rewardsPendingRefusal(state, existing, existing.epoch, p, 'register it again');
        if (pending) throw pending;
      }
      registered.push(chipId);
    } else if (a.type === 'transferChip') {
      // A transfer to its sender, or of a chip its lease binds: refused before the consent's check.
      const refusal = chipActionRefusal(state, ctx.time, owner, a);
      if (refusal) throw refusal;
      const chip = consentingChip(state, owner, a, ctx.time);
      if (!chip) continue;
      // Refused after the consent in a block, at no fee: here before it, on the same state.
      const current = epochOf(ctx.height, p);
      const pending = rewardsPendingRefusal(state, chip, current - 1n, p, 'transfer it');
      if (pending) throw pending;
      try {
        verifyTransferConsent(state, ctx, chip, a, p);
      } catch (err) {
        // The consent is checked against the chip's key as this state holds it: a node that has
        // not seen the chip re-registered with a new key refuses an honest consent. No failure
        // of it proves the bytes bad (only a registration's evidence, checked against nothing the
        // chip record holds, can).
        if (err instanceof ValidationError && !(err instanceof StateRefusal))
          throw new StateRefusal(err.code, err.message);
        throw err;
      }
    }
  }
  return registered;
}

export function applyRegisterChip(
  state: StateOverlay,
  ctx: PociContext,
  owner: Uint8Array,
  action: RegisterChipAction,
): PociEvent[] {
  const p = getPociParams(state);
  const id = verifyRegisterChip(state, ctx, owner, action, p);
  const vendor = getVendor(state, id.vendorId);
  if (!vendor)
    throw new ValidationError('ATTEST_UNKNOWN_VENDOR', `vendor "${id.vendorId}" is not registered`);
  if (vendor.profile !== id.profile) {
    throw new ValidationError(
      'ATTEST_WRONG_PROFILE',
      `vendor "${vendor.id}" uses ${vendor.profile}, not ${id.profile}`,
    );
  }
  const model = getModel(state, id.vendorId, id.modelId);
  if (!model)
    throw new ValidationError('ATTEST_UNKNOWN_MODEL', `model ${id.vendorId}/${id.modelId} is not registered`);
  // The power of its first epoch (a change made in this one is in force there).
  const power = modelPowerAt(model, epochOf(ctx.height, p) + 1n);
  const existing = getChip(state, id.chipId);
  refuseHeldAttestationKey(state, id, action.anchorHeight);
  const events: PociEvent[] = [];
  if (existing) {
    const { status } = effectiveStatus(state, existing, ctx.time);
    if (status !== 'deregistered') {
      throw new ValidationError(
        'CHIP_ALREADY_REGISTERED',
        `chip ${toHex(id.chipId)} is already registered (${status}); one chip is one identity`,
      );
    }
    const early = anchorBeforeReleaseRefusal(existing, action.anchorHeight);
    if (early) throw early;
    // The old record's epochs are its former owner's: pay what is final now, and refuse to
    // overwrite an epoch that is not final yet (the new record starts with empty masks).
    events.push(...rewardEvents(existing, settleChipRewards(state, existing, p)));
    const pending = rewardsPendingRefusal(state, existing, existing.epoch, p, 'register it again');
    if (pending) throw pending;
  }
  const chip: Chip = {
    chipId: id.chipId,
    owner,
    vendorId: id.vendorId,
    modelId: id.modelId,
    profile: id.profile,
    power,
    keyMaterial: id.keyMaterial,
    certSerials: id.certSerials,
    registeredAt: ctx.height,
    firstEpoch: epochOf(ctx.height, p) + 1n,
    status: ChipStatus.active,
    statusReason: '',
    tpmClock: id.tpmClock,
    // The first answer's credit is measured from the evidence, held against the block that
    // includes it (the evidence was signed before it; its anchor may be 100 blocks older).
    creditClock: id.tpmClock,
    creditClockTime: ctx.time,
    priorCredit: null,
    epoch: 0n,
    answered: 0,
    prevAnswered: 0,
    uncredited: 0,
    prevUncredited: 0,
    lastAnsweredSlot: 0n,
    lastAnsweredAt: 0n,
    settledThrough: ctx.height,
    slotsAnswered: existing?.slotsAnswered ?? 0n,
    slotsMissed: existing?.slotsMissed ?? 0n,
    rewardsEarned: existing?.rewardsEarned ?? 0n,
    rewardedThrough: epochOf(ctx.height, p) + 1n,
    prevPower: power,
    certsNotAfter: id.certsNotAfter,
    // Kept from the old record: its release still bounds the anchors of later registrations.
    releasedAt: existing?.releasedAt ?? 0n,
  };
  putChip(state, chip);
  // The remembered seat share is the old record's (its answers): the new one has none yet.
  forgetSeatShare(state, chip.chipId);
  if (id.akKeyId) putTpmAkChip(state, id.akKeyId, id.chipId);
  return [
    ...events,
    {
      type: 'chipRegistered',
      chipId: id.chipId,
      owner,
      vendorId: id.vendorId,
      modelId: id.modelId,
      power,
    },
  ];
}

/**
 * CONSENSUS CHANGE (branch modelpower): when a `setModel` changes a model's power. The new power is
 * in force from the next epoch (chips read it when their answers move on to it, rollChipPower);
 * the epoch under way keeps the old one, so no weight already recorded moves. A second change in
 * the same epoch replaces the pending one. A change while an answer may still land for the epoch
 * before the previous change took effect (that epoch is not final) is refused
 * `MODEL_POWER_PENDING`: the record keeps two powers, and that epoch's would be lost.
 */
function modelSchedule(
  state: StateReader,
  ctx: PociContext,
  m: ChipModel,
): { prevPower: bigint; powerFrom: bigint } {
  const old = getModel(state, m.vendorId, m.modelId);
  if (!old) return { prevPower: m.power, powerFrom: 0n };
  if (old.power === m.power || old.powerFrom > epochOf(ctx.height, getPociParams(state))) {
    return { prevPower: old.prevPower, powerFrom: old.powerFrom };
  }
  const epoch = epochOf(ctx.height, getPociParams(state));
  if (old.powerFrom === epoch && epoch > 0n && getEpochRecord(state, epoch - 1n)?.final === false) {
    throw new ValidationError(
      'MODEL_POWER_PENDING',
      `model ${m.vendorId}/${m.modelId}: its power changed from epoch ${epoch}, and answers for epoch ${epoch - 1n} (at the power before) may still land; change it again once epoch ${epoch - 1n} is final`,
    );
  }
  return { prevPower: old.power, powerFrom: epoch + 1n };
}

/**
 * CONSENSUS CHANGE (branch modelpower): when a chip's masks move on to `epoch` (its first answer
 * there), its powers move with them: `prevPower` is what its answers in `epoch` − 1 weighed (its
 * `power` when that was its epoch, else the model's for that epoch: no answer of it weighed
 * anything yet), and `power` the model's in `epoch` (modelPowerAt). Every answer of one chip in one
 * epoch is weighed at one power, so its class's `powerByAnswered` buckets stay exact, and a model
 * change reaches every chip from the epoch after the change, at O(1) per chip as it answers. The
 * owner's index follows `power` (its sum bounds the owner's seat power). Only an active chip
 * answers, so its model exists.
 */
function rollChipPower(state: StateOverlay, chip: Chip, epoch: bigint): void {
  const model = getModel(state, chip.vendorId, chip.modelId);
  if (!model) return;
  chip.prevPower = epoch === chip.epoch + 1n ? chip.power : modelPowerAt(model, epoch - 1n);
  const power = modelPowerAt(model, epoch);
  if (power !== chip.power) reweighOwnerChip(state, chip.owner, chip.chipId, chip.power, power);
  chip.power = power;
}

/**
 * The oldest epoch, at or before `through`, in which the chip answered but that is not final yet
 * (so not payable yet), or null. O(1): a chip holds the masks of two epochs.
 */
function unpaidPendingEpoch(state: StateReader, chip: Chip, through: bigint): bigint | null {
  for (const [epoch, mask] of [
    [chip.epoch - 1n, chip.prevAnswered],
    [chip.epoch, chip.answered],
  ] as [bigint, number][]) {
    if (epoch < 0n || epoch > through || epoch < chip.firstEpoch || epoch < chip.rewardedThrough) continue;
    const r = getEpochRecord(state, epoch);
    if (mask !== 0 && r && !r.final) return epoch;
  }
  return null;
}

/**
 * `CHIP_REWARDS_PENDING` when the chip answered in an epoch at or before `through` that is not final
 * yet, or null. A read: settling the final epochs first (as execution does) changes no mask and no
 * finality, so admission asks it on the next block's opening state and refuses what the block would.
 */
function rewardsPendingRefusal(
  state: StateReader,
  chip: Chip,
  through: bigint,
  p: PociParams,
  what: 'transfer it' | 'register it again',
): ValidationError | null {
  const pending = unpaidPendingEpoch(state, chip, through);
  if (pending === null) return null;
  return new ValidationError(
    'CHIP_REWARDS_PENDING',
    `chip ${toHex(chip.chipId)} has unpaid rewards of epoch ${pending}, final from height ${finalFrom(pending, p)}; ${what} from then on`,
  );
}

/** The first height at which epoch `e` is final (its last answer window has closed). */
function finalFrom(e: bigint, p: PociParams): bigint {
  return epochStart(e + 1n, p) + p.answerWindowBlocks + 1n;
}

function ownedActiveChip(state: StateOverlay, chipId: Uint8Array, owner: Uint8Array, atMs: bigint): Chip {
  const chip = getChip(state, chipId);
  if (!chip) throw new ValidationError('UNKNOWN_CHIP', `chip ${toHex(chipId)} is not registered`);
  if (!equalBytes(chip.owner, owner))
    throw new ValidationError('NOT_OWNER', `chip ${toHex(chipId)} is not yours`);
  const { status, reason } = effectiveStatus(state, chip, atMs);
  if (status !== 'active')
    throw new ValidationError(
      'CHIP_INACTIVE',
      `chip ${toHex(chipId)} is ${status}${reason ? `: ${reason}` : ''}`,
    );
  return chip;
}

export function applyTransferChip(
  state: StateOverlay,
  ctx: PociContext,
  owner: Uint8Array,
  action: TransferChipAction,
): PociEvent[] {
  // CONSENSUS CHANGE: a transfer to the sender itself moved nothing but ended the chip's lease at
  // once (SAME_OWNER); a chip its lease binds stays with its provider (CHIP_LEASED). Both before
  // the consent's check, so neither costs one.
  const same = sameOwnerRefusal(owner, action);
  if (same) throw same;
  const chip = ownedActiveChip(state, action.chipId, owner, ctx.time);
  const leased = chipLeasedRefusal(state, chip.chipId, owner, ctx.time, 'transferred');
  if (leased) throw leased;
  const p = getPociParams(state);
  const { tpmClock } = verifyTransferConsent(state, ctx, chip, action, p);
  // The consent is a TPM attestation like a heartbeat's, and its clock becomes the one the next
  // heartbeat is held to: taken without the heartbeats' check, a rolled-back TPM (replayed or
  // restored state) could reset the clock guard by consenting to a transfer.
  const rebooted = advanceTpmClock(chip, tpmClock, () => `chip ${toHex(chip.chipId).slice(0, 16)}… transfer`);
  // The seller is paid for every final epoch before the owner changes. An epoch the seller owned
  // to its end but that is not final yet (the first W + 1 blocks of the next epoch) would be paid
  // to the buyer: the transfer waits for it. The current epoch, owned by both, goes to the owner
  // when it is final (the buyer).
  const events = rewardEvents(chip, settleChipRewards(state, chip, p));
  const current = epochOf(ctx.height, p);
  const pending = rewardsPendingRefusal(state, chip, current - 1n, p, 'transfer it');
  if (pending) throw pending;
  const from = chip.owner;
  chip.owner = action.newOwner;
  // Evidence the chip signed for the seller before now registers it no more (audchip C6).
  chip.releasedAt = ctx.height;
  putChip(state, chip);
  if (rebooted) events.push(rebooted);
  return [...events, { type: 'chipTransferred', chipId: chip.chipId, from, to: action.newOwner }];
}

/** `text` cut to at most `max` characters (every reason built here is ASCII: a byte each). */
function clip(text: string, max: number): string {
  return text.length <= max ? text : text.slice(0, max);
}

/**
 * The chip `sender` may deregister (audchip C3, CONSENSUS CHANGE, chipleft): its owner's active
 * chip, as before; or a chip its credentials no longer vouch for (a certificate revoked, its
 * allow-list key removed, dev-soft turned off, its certificates expired: effectiveStatus says
 * revoked while the record says active), by its owner or by anyone. A revoked record held its chip
 * id for ever before: a rogue vendor CA's squat of another vendor's device name outlived the
 * revocation of its certificate, and a chip whose certificates expired could not be registered
 * again with fresh ones. Anyone may free such a record, since the chip earns nothing while revoked
 * and registers again only with valid evidence the chip signs after this block (the release bound,
 * anchorBeforeReleaseRefusal); its final rewards are paid to its owner as at any deregistration. A
 * chip governance revoked by name (revokeChip) stays revoked: that is a ban of the chip, which a
 * registration again would lift. Nor is a chip whose model governance removed (chipint): re-adding
 * the model makes it active again, so it is not freed for others (and reads CHIP_INACTIVE).
 */
function deregistrableChip(
  state: StateOverlay,
  ctx: PociContext,
  chipId: Uint8Array,
  sender: Uint8Array,
): Chip {
  const chip = getChip(state, chipId);
  if (!chip) throw new ValidationError('UNKNOWN_CHIP', `chip ${toHex(chipId)} is not registered`);
  const { status, reason } = effectiveStatus(state, chip, ctx.time);
  // Only a revocation of its credentials (chipint): not its model's removal, which re-adding the
  // model undoes (the chip reads revoked meanwhile: CHIP_INACTIVE, as before), nor a ban by name.
  const credential = chip.status === ChipStatus.active ? credentialRevocation(state, chip, ctx.time) : null;
  const credentialsRevoked = credential !== null;
  const owner = equalBytes(chip.owner, sender);
  if (!credentialsRevoked && !owner) {
    throw new ValidationError(
      'NOT_OWNER',
      `chip ${toHex(chipId)} is not yours (anyone may deregister a chip only once its credentials are revoked)`,
    );
  }
  if (credentialsRevoked && !owner) {
    // Not during a revocation governance may yet undo (review revchipleft): only once the chip has
    // been silent for the grace, its last answer, transfer or registration that long ago.
    let quiet = chip.registeredAt;
    if (chip.lastAnsweredAt > quiet) quiet = chip.lastAnsweredAt;
    if (chip.releasedAt > quiet) quiet = chip.releasedAt;
    const from = quiet + REVOKED_CHIP_GRACE_EPOCHS * getPociParams(state).epochBlocks;
    if (ctx.height < from) {
      throw new ValidationError(
        'NOT_OWNER',
        `chip ${toHex(chipId)} is not yours: it is revoked (${credential}), and anyone but its owner may deregister it only once it has been silent ${REVOKED_CHIP_GRACE_EPOCHS} epochs, from height ${from}`,
      );
    }
  }
  if (status !== 'active' && !credentialsRevoked) {
    throw new ValidationError(
      'CHIP_INACTIVE',
      `chip ${toHex(chipId)} is ${status}${reason ? `: ${reason}` : ''}`,
    );
  }
  return chip;
}

export function applyDeregisterChip(
  state: StateOverlay,
  ctx: PociContext,
  sender: Uint8Array,
  action: DeregisterChipAction,
): PociEvent[] {
  const chip = deregistrableChip(state, ctx, action.chipId, sender);
  const owner = chip.owner;
  // CONSENSUS CHANGE: as for a transfer, a chip its lease binds is not deregistered (CHIP_LEASED):
  // the deregistration ended the lease at once, skipping the notice its renter signed for.
  const leased = chipLeasedRefusal(state, chip.chipId, owner, ctx.time, 'deregistered');
  if (leased) throw leased;
  const p = getPociParams(state);
  // What is final is paid now; the rest can be claimed once final (claimRewards).
  const events = rewardEvents(chip, settleChipRewards(state, chip, p));
  // CONSENSUS CHANGE: the misses not yet recorded are recorded now. A deregistered chip answers
  // nothing more (no heartbeat records them later), and a registration again starts a fresh record
  // that carries only the recorded count (`slotsMissed`, which renters see): they were lost. Every
  // challenge the record drew (the heights below this block) is settled, those whose window is
  // still open too, since no answer to them can come now.
  if (ctx.height > chip.settledThrough) {
    recordMisses(
      events,
      chip,
      ctx.height,
      ctx.height,
      p,
      challengeLookup(state),
      (m) =>
        uncreditedIn(chip, m.epoch, m.slot)
          ? UNCREDITED_MISS
          : m.slotHeight + p.answerWindowBlocks < ctx.height
            ? `no answer included by height ${m.slotHeight + p.answerWindowBlocks}`
            : `the chip was deregistered at height ${ctx.height} before answering`,
      undefined,
      true,
    );
  }
  const revoked = chip.status === ChipStatus.active ? credentialRevocation(state, chip, ctx.time) : null;
  chip.status = ChipStatus.deregistered;
  chip.statusReason =
    revoked !== null
      ? clip(
          `deregistered by ${equalBytes(sender, owner) ? 'its owner' : toHex(sender)} once revoked: ${revoked}`,
          256,
        )
      : 'deregistered by its owner';
  chip.releasedAt = ctx.height;
  putChip(state, chip);
  // It lends no seat and answers nothing from now on: its remembered seat share goes with it.
  forgetSeatShare(state, chip.chipId);
  return [...events, { type: 'chipDeregistered', chipId: chip.chipId, owner }];
}

/**
 * Moves the chip's TPM clock on to `tpmClock` (from a heartbeat or a transfer consent; null: no TPM
 * clock), refusing one that went backwards by the one rule of checkTpmClockMonotonic: resetCount
 * never goes back, and within one reset neither the restartCount nor the clock does, so an old
 * attestation or a TPM restored to an earlier state is refused. Returns the chipRebooted event when
 * the TPM reset or restarted since the last one.
 */
function advanceTpmClock(
  chip: Chip,
  tpmClock: TpmClock | null,
  where: () => string,
  /** The heartbeat answer, for a heartbeat's refusal (none for a transfer's consent). */
  ref?: () => AnswerRef,
): PociEvent | null {
  if (!tpmClock) return null;
  const prev = chip.tpmClock;
  let event: TpmClockEvent;
  try {
    event = checkTpmClockMonotonic(prev, tpmClock);
  } catch (err) {
    if (err instanceof AttestationError)
      throw new ValidationError('TPM_CLOCK_BACKWARDS', `${where()}: ${err.message}`, ref?.());
    throw err;
  }
  chip.tpmClock = tpmClock;
  if (event === 'reboot' || event === 'restart') {
    return {
      type: 'chipRebooted',
      chipId: chip.chipId,
      resetCount: tpmClock.resetCount,
      restartCount: tpmClock.restartCount,
    };
  }
  return null;
}

/**
 * Whether the answer windows of the challenges of blocks `a` and `b` (W blocks each, after the
 * block) share a height: then one heartbeat could carry answers to both.
 */
export function windowsOverlap(a: bigint, b: bigint, windowBlocks: bigint): boolean {
  return (a > b ? a - b : b - a) < windowBlocks;
}

/** A chip's credit reference (Chip.creditClock, creditClockTime) as it was at some point. */
interface CreditReference {
  clock: TpmClock | null;
  time: bigint;
}

/**
 * CONSENSUS (docs/poci.md, "Asleep between challenges"): whether a tpm2 answer with `tpmClock`, to
 * the challenge of block `slotHeight`, is credited. Measured against the chip's reference clock (its
 * previous accepted answer's, or its registration evidence's), with a slack of W × the target block
 * interval + 2D (tpmCreditSlackMs); the reference then moves on to this answer, credited or not, so a chip that stays up
 * is credited again at its next answer. Call before advanceTpmClock (which refuses a clock that
 * went back; an answer refused for it changes nothing, the overlay being dropped).
 */
function answerCredit(
  state: StateOverlay,
  chip: Chip,
  tpmClock: TpmClock,
  slotHeight: bigint,
  slack: () => bigint,
  where: () => string,
  ref: () => AnswerRef,
  batchStart: CreditReference,
  windowBlocks: bigint,
): { reason: TpmAnswerCredit; clockAdvanceMs: bigint; requiredMs: bigint } {
  const slotTime = getRecentTime(state, slotHeight);
  if (slotTime === null)
    throw new ValidationError('SLOT_NOT_OPEN', `${where()}: slot block time unavailable`, ref());
  const prev = chip.creditClock;
  const prevTime = chip.creditClockTime;
  const prior = chip.priorCredit;
  chip.creditClock = tpmClock;
  // The newest challenge block answered: an older one answered later (its window still open) was
  // signed after it all the same, since the clock never goes back between accepted answers.
  if (slotTime > prevTime) chip.creditClockTime = slotTime;
  if (!prev) return { reason: 'credited', clockAdvanceMs: 0n, requiredMs: 0n };
  chip.priorCredit = { clock: prev, time: prevTime, slotHeight };
  const slackMs = slack();
  // An earlier answer of the same heartbeat may have been signed with this one, late in its
  // window (docs/poci.md, "Answers signed together"): measured from the reference before it too.
  let reason = batchStart.clock
    ? tpmBatchAnswerCredit(batchStart.clock, batchStart.time, prev, prevTime, tpmClock, slotTime, slackMs)
    : tpmAnswerCredit(prev, prevTime, tpmClock, slotTime, slackMs);
  // CONSENSUS CHANGE (docs/poci.md, "Answers sent apart"): the chip's previous answer, in an
  // earlier heartbeat, to a challenge whose window overlapped this one's, could have been held
  // back and sent with this one; measured as that heartbeat would have measured it, no more.
  if (reason === 'asleep' && prior && windowsOverlap(prior.slotHeight, slotHeight, windowBlocks)) {
    reason = tpmBatchAnswerCredit(prior.clock, prior.time, prev, prevTime, tpmClock, slotTime, slackMs);
  }
  if (reason !== 'asleep') return { reason, clockAdvanceMs: 0n, requiredMs: 0n };
  return {
    reason,
    clockAdvanceMs: tpmClock.clock - prev.clock,
    requiredMs: tpmClockRequiredMs(slotTime - prevTime, slackMs),
  };
}

/**
 * The first answer of `answers` whose chip is not registered or that `sender` may not answer for
 * in the block at `height` (neither its owner nor the owner's heartbeat operator there), refused as
 * applyHeartbeat's unknown-chip and owner rules refuse it (UNKNOWN_CHIP, NOT_CHIP_OWNER), or null.
 * Only those two rules: execution may refuse an earlier answer for another reason first (a chip
 * inactive, a slot not open), so this is not always the refusal execution gives. A chip lookup per
 * answer and no attestation check: a node runs it before a heartbeat's signature is even checked
 * (Mempool cheapRefusal), so that a copy of someone else's answers sent from another key costs it
 * nothing.
 */
export function heartbeatOwnerRefusal(
  state: StateReader,
  sender: Uint8Array,
  answers: readonly HeartbeatAnswer[],
  height: bigint,
): ValidationError | null {
  const answerer = new AnswererCheck(state, sender, height);
  for (const answer of answers) {
    const chip = getChip(state, answer.chipId);
    if (chip && answerer.mayAnswerFor(chip.owner)) continue;
    // Built only for the refusal, as in applyHeartbeat (an honest heartbeat's hex was a cost).
    const where = answerWhere(answer);
    const ref = answerRef(answer);
    return chip
      ? notChipOwner(where, ref)
      : new ValidationError('UNKNOWN_CHIP', `${where}: not registered`, ref);
  }
  return null;
}

/** A miss's reason when the challenge was answered but not credited (answerUncredited). */
const UNCREDITED_MISS =
  'answered without credit: the TPM was asleep or rebooted since the previous answer (answerUncredited)';

/**
 * Records the chip's misses above its settled height as judged at `asOf` (unansweredSlots: at most
 * the newest MAX_MISSES_COUNTED, `slotMissed` events pushed onto `events` for the first
 * MAX_MISS_EVENTS of them) and moves its settled height to `settleTo`. A heartbeat settles the
 * challenges whose windows have closed; a deregistration (`openWindows`) every one the record drew
 * below its block, over the same 64 epochs an answer in that block would look back.
 */
function recordMisses(
  events: PociEvent[],
  chip: Chip,
  settleTo: bigint,
  asOf: bigint,
  p: PociParams,
  challengesOf: ChallengeLookup,
  reason: (m: SlotOutcome) => string,
  cls?: bigint,
  openWindows = false,
): void {
  const missed = unansweredSlots(
    chip,
    chip.settledThrough,
    asOf,
    p,
    challengesOf,
    MAX_MISSES_COUNTED,
    cls,
    openWindows,
  );
  for (const m of missed.slice(0, MAX_MISS_EVENTS)) {
    events.push({
      type: 'slotMissed',
      chipId: chip.chipId,
      epoch: m.epoch,
      slot: m.slot,
      slotHeight: m.slotHeight,
      reason: reason(m),
    });
  }
  chip.slotsMissed += BigInt(missed.length);
  chip.settledThrough = settleTo;
}

/** Where an answer is, in a refusal's message (words for people). */
function answerWhere(answer: HeartbeatAnswer): string {
  return `chip ${toHex(answer.chipId).slice(0, 16)}… epoch ${answer.epoch} slot ${answer.slot}`;
}

/** The same, structured, for a refusal's `answer`. */
function answerRef(answer: HeartbeatAnswer): AnswerRef {
  return { chipId: toHex(answer.chipId), epoch: Number(answer.epoch), slot: Number(answer.slot) };
}

function notChipOwner(where: string, ref: AnswerRef): ValidationError {
  return new ValidationError(
    'NOT_CHIP_OWNER',
    `${where}: a heartbeat must be sent by the chip's owner or the owner's heartbeat operator`,
    ref,
  );
}

/**
 * Whether one heartbeat's sender may answer for a chip's owner (mayAnswerFor), each owner's
 * operator record read once per heartbeat: an operator named by many owners answers for up to
 * MAX_ANSWERS_PER_HEARTBEAT chips in one action, so at most that many owners' records are read.
 */
class AnswererCheck {
  private readonly byOwner = new Map<string, boolean>();
  constructor(
    private readonly state: StateReader,
    private readonly sender: Uint8Array,
    private readonly height: bigint,
  ) {}

  mayAnswerFor(owner: Uint8Array): boolean {
    if (equalBytes(owner, this.sender)) return true;
    const id = toHex(owner);
    let may = this.byOwner.get(id);
    if (may === undefined) {
      may = mayAnswerFor(this.state, owner, this.sender, this.height);
      this.byOwner.set(id, may);
    }
    return may;
  }
}

/**
 * Applies `sender`'s answers. CONSENSUS CHANGE: `sender` must own every chip it answers for, or be
 * its owner's heartbeat operator in this block (NOT_CHIP_OWNER; poci/operator.ts). Heartbeats pay no fee, so from any other key they were free state growth (each
 * new key left a `{balance 0, nonce 1}` account for good, answers copied from the mempool) and a
 * race: a copy of a miner's answers landing first had the miner's own batch refused
 * ANSWER_REPLAYED, to be rebuilt and resent, paying urgent fees near the window's close.
 */
export function applyHeartbeat(
  state: StateOverlay,
  ctx: PociContext,
  sender: Uint8Array,
  action: HeartbeatAction,
): PociEvent[] {
  if (action.answers.length === 0)
    throw new ValidationError('EMPTY_HEARTBEAT', 'a heartbeat needs at least one answer');
  const p = getPociParams(state);
  const challengesOf = challengeLookup(state);
  const events: PociEvent[] = [];
  const currentEpoch = epochOf(ctx.height, p);
  // The class and epoch records the answers change: decoded once, written once after the last.
  const held = new HeldRecords();
  // The credit slack of tpm2 answers, W × the target block interval + 2D (tpmCreditSlackMs): read
  // once, when first needed.
  let slackMs: bigint | null = null;
  const slack = () => (slackMs ??= tpmCreditSlackMs(p.answerWindowBlocks, getParams(state).blockTimeMs));
  // Per tpm2 chip (by id), its credit reference before this heartbeat's first answer of it.
  const batchStart = new Map<string, CreditReference>();
  // Operator records are written only by setHeartbeatOperator, in force from the next block, so
  // nothing this heartbeat does changes what they say for this block.
  const answerer = new AnswererCheck(state, sender, ctx.height);
  for (const answer of action.answers) {
    // Built only for an error: the hex of every accepted answer's chip id was a cost of its own.
    const where = () => answerWhere(answer);
    const ref = () => answerRef(answer);
    const chip = getChip(state, answer.chipId);
    if (!chip) throw new ValidationError('UNKNOWN_CHIP', `${where()}: not registered`, ref());
    // Before any other check, and long before the answer's attestation: a heartbeat from a key
    // that does not own the chip costs its refusal a lookup. The owner is read here, in order, so
    // a transfer earlier in the block (or the transaction) hands the answers to the new owner, and
    // to the new owner's operator: the seller's operator no longer answers for the chip.
    if (!answerer.mayAnswerFor(chip.owner)) throw notChipOwner(where(), ref());
    // With the block time: a chip whose certificates have expired answers no more (audchip C2).
    const { status, reason } = effectiveStatus(state, chip, ctx.time);
    if (status !== 'active')
      throw new ValidationError(
        'CHIP_INACTIVE',
        `${where()}: chip is ${status}${reason ? `: ${reason}` : ''}`,
        ref(),
      );
    if (answer.epoch < chip.firstEpoch || answer.epoch > currentEpoch || answer.epoch + 1n < currentEpoch) {
      throw new ValidationError('SLOT_NOT_OPEN', `${where()}: not a current epoch of this chip`, ref());
    }
    // `slot` is the index of the challenge among those of the chip's class in the epoch. The class
    // (a hash) and its record (a decode) are worked out once per answer and handed to the miss
    // count, the settlement and the reweighing below, which each looked them up again before. Only
    // the block's opening bookkeeping appends heights, and nothing below writes this record before
    // addAnswerWeight does, so every reader sees the same values as with its own lookup.
    const cls = chipClass(chip.chipId, p);
    const classRecord = held.classRecord(state, answer.epoch, cls);
    const challenges = classRecord.heights;
    if (answer.slot >= MAX_CHALLENGES_PER_EPOCH || answer.slot >= challenges.length) {
      throw new ValidationError(
        'SLOT_NOT_OPEN',
        `${where()}: no such challenge (the chip's class has drawn ${challenges.length} in the epoch so far)`,
        ref(),
      );
    }
    const slotHeight = challenges[answer.slot]!;
    if (ctx.height > slotHeight + p.answerWindowBlocks) {
      throw new ValidationError(
        'ANSWER_TOO_LATE',
        `${where()}: the window for slot block ${slotHeight} closed at height ${slotHeight + p.answerWindowBlocks}`,
        ref(),
      );
    }
    if (answeredIn(chip, answer.epoch, answer.slot) || uncreditedIn(chip, answer.epoch, answer.slot)) {
      throw new ValidationError('ANSWER_REPLAYED', `${where()}: already answered`, ref());
    }
    const slotHash = getRecentHash(state, slotHeight);
    if (!slotHash)
      throw new ValidationError('SLOT_NOT_OPEN', `${where()}: slot block hash unavailable`, ref());
    // A failure here stays provable from the bytes (relay blame, unlike a transfer's consent): the
    // key it is checked against changes only with a new registration, whose answers start at
    // firstEpoch, after the epoch it was made in, so a node holding an older key refuses them
    // above (SLOT_NOT_OPEN), and one holding the new key refuses older answers the same way.
    const { tpmClock } = verifyHeartbeat(
      chip,
      answer.evidence,
      heartbeatChallenge(ctx.chainId, chip.chipId, slotHash),
      ctx.isEd25519Verified,
    );
    // The credit is measured against the clock of the chip's previous accepted answer, before the
    // monotonic guard moves the stored clock on.
    let credit: ReturnType<typeof answerCredit> | null = null;
    if (tpmClock) {
      const id = toHex(chip.chipId);
      let start = batchStart.get(id);
      if (!start) batchStart.set(id, (start = { clock: chip.creditClock, time: chip.creditClockTime }));
      credit = answerCredit(
        state,
        chip,
        tpmClock,
        slotHeight,
        slack,
        where,
        ref,
        start,
        p.answerWindowBlocks,
      );
    }
    const rebooted = advanceTpmClock(chip, tpmClock, where, ref);
    if (rebooted) events.push(rebooted);
    // Record the misses whose windows closed since the chip's outcomes were last settled.
    const settleTo = ctx.height - p.answerWindowBlocks - 1n;
    if (settleTo > chip.settledThrough) {
      recordMisses(
        events,
        chip,
        settleTo,
        ctx.height,
        p,
        (e, c) => (e === answer.epoch && c === cls ? challenges : challengesOf(e, c)),
        (m) =>
          uncreditedIn(chip, m.epoch, m.slot)
            ? UNCREDITED_MISS
            : `no answer included by height ${m.slotHeight + p.answerWindowBlocks}`,
        cls,
      );
    }
    // Pay what is final before the answered-slot window moves on, then weigh this answer.
    // The epoch records the settlement reads are handed to the reweighing (the answer's epoch is
    // usually one of them), so that each is decoded once per answer; nothing writes them between.
    const paid = settleChipRewards(state, chip, p, cls, held.epochs);
    if (paid.length > 0) events.push(...rewardEvents(chip, paid));
    // The seat windows the masks can no longer hold once they move on are remembered first, by an
    // uncredited answer too (markUncredited moves them as markAnswered does; its bit is a miss there).
    if (answer.epoch > chip.epoch) {
      rememberSeatShare(state, chip, answer.epoch, p, (e, c) => held.classRecord(state, e, c).heights, cls);
      // The masks move on (markAnswered / markUncredited below): so do the powers, the new epoch's
      // read from the model (CONSENSUS CHANGE, branch modelpower).
      rollChipPower(state, chip, answer.epoch);
    }
    if (credit && credit.reason !== 'credited') {
      // Accepted (the chip's clock and block time move on, so it is credited again at its next
      // answer if it stays up), but a miss for everything answers count for: rewards, the offline
      // streak, validator seats, lease settlement. Kept in its own mask so it cannot be answered
      // again, and settled as a miss once its window closes.
      markUncredited(chip, answer.epoch, answer.slot);
      putChip(state, chip);
      events.push({
        type: 'answerUncredited',
        chipId: chip.chipId,
        epoch: answer.epoch,
        slot: answer.slot,
        slotHeight,
        reason: credit.reason,
        clockAdvanceMs: credit.clockAdvanceMs,
        requiredMs: credit.requiredMs,
      });
      continue;
    }
    const before = popcount(answeredMask(chip, answer.epoch));
    markAnswered(chip, answer.epoch, answer.slot);
    const power = answer.epoch === chip.epoch ? chip.power : chip.prevPower;
    addAnswerWeight(state, answer.epoch, cls, power, before, p, classRecord, held.epochs, held);
    if (slotHeight > chip.lastAnsweredSlot) chip.lastAnsweredSlot = slotHeight;
    chip.lastAnsweredAt = ctx.height;
    chip.slotsAnswered += 1n;
    putChip(state, chip);
    events.push({
      type: 'slotAnswered',
      chipId: chip.chipId,
      epoch: answer.epoch,
      slot: answer.slot,
      slotHeight,
    });
  }
  held.flush(state);
  return events;
}
