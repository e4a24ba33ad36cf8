/**
 * Chips: one record per attested device identity. The chip id is derived from what the hardware
 * attests (never chosen by the miner), so one chip can only ever be one identity on the chain.
 */
import {
  bytes,
  type Codec,
  decode,
  encode,
  list,
  option,
  string,
  struct,
  u8,
  u32,
  u64,
  u128,
} from '../encoding/codec.js';
import { address, hash32 } from '../encoding/primitives.js';
import { StateSpace } from '../state/accounts.js';
import type { StateOverlay, StateReader } from '../state/store.js';
import { getPociParams } from './params.js';
import {
  getAllowlistEntry,
  getModel,
  idCodec,
  isSerialRevoked,
  modelPowerAt,
  type Profile,
  profileCodec,
} from './registry.js';

export const ChipStatus = { active: 0, deregistered: 1, revoked: 2 } as const;
export type ChipStatusName = keyof typeof ChipStatus;

export interface TpmClock {
  clock: bigint;
  resetCount: number;
  restartCount: number;
}

export const tpmClockCodec: Codec<TpmClock> = struct<TpmClock>('TpmClock', {
  clock: u64,
  resetCount: u32,
  restartCount: u32,
});

/**
 * The credit reference a tpm2 chip had before its latest accepted answer, and that answer's
 * challenge height (docs/poci.md, "Answers sent apart"): an answer whose challenge's window
 * overlapped that one's could have been sent with it in one heartbeat, so it is measured from here
 * too.
 */
export interface PriorCredit {
  clock: TpmClock;
  time: bigint;
  slotHeight: bigint;
}

export const priorCreditCodec: Codec<PriorCredit> = struct<PriorCredit>('PriorCredit', {
  clock: tpmClockCodec,
  time: u64,
  slotHeight: u64,
});

export interface Chip {
  chipId: Uint8Array;
  owner: Uint8Array;
  vendorId: string;
  modelId: string;
  profile: Profile;
  /**
   * Rated power of the chip's answers in `epoch` (and `prevPower`: in `epoch` − 1), read from its
   * model (modelPowerAt) when its answers move on to a new epoch (CONSENSUS CHANGE, branch
   * modelpower): a governance change of the model reaches it from the next epoch, and what its
   * answers already weighed in an epoch never changes. Also its weight in its owner's index.
   */
  power: bigint;
  /** What heartbeats are verified with: the chip's attestation public key (profile-specific). */
  keyMaterial: Uint8Array;
  /** Serials (hex) of the certificates that vouched for the chip; revoking one revokes the chip. */
  certSerials: string[];
  registeredAt: bigint;
  /** First epoch in which the chip is challenged (the one after registration). */
  firstEpoch: bigint;
  status: number;
  statusReason: string;
  /** Latest attested TPM clock, to refuse a clock that goes backwards. */
  tpmClock: TpmClock | null;
  /**
   * The TPM clock an answer's credit is measured from (docs/poci.md, "Asleep between challenges"):
   * the clock of the chip's last accepted answer, or of its registration evidence (null: a profile
   * whose evidence carries no clock). A transfer consent moves `tpmClock`, never this one, so a
   * reboot a consent showed still costs the next answer its credit.
   */
  creditClock: TpmClock | null;
  /** Block time (ms) `creditClock` is held against: the newest challenge block among the accepted
   *  answers, or the block that included the registration. */
  creditClockTime: bigint;
  /** CONSENSUS CHANGE (sleepmend): the reference before the latest accepted answer (null: none
   *  yet, or a profile without a clock). */
  priorCredit: PriorCredit | null;
  /** Liveness: credited-answer bit masks (bit j = challenge j of the chip's class) of `epoch` and
   *  of the epoch before it. Everything answers count for reads these. */
  epoch: bigint;
  answered: number;
  prevAnswered: number;
  /** Answers accepted without credit (asleep or rebooted, tpm2 only), same epochs: a miss for
   *  every count, kept only so that the same challenge cannot be answered again. */
  uncredited: number;
  prevUncredited: number;
  /** Height of the newest answered challenge (0 = none yet) and where its answer was included. */
  lastAnsweredSlot: bigint;
  lastAnsweredAt: bigint;
  /** Every challenge at or below this height has its outcome recorded (answered, or a miss event). */
  settledThrough: bigint;
  /** Lifetime counters. */
  slotsAnswered: bigint;
  slotsMissed: bigint;
  /** Rewards credited to the owner so far, base units. */
  rewardsEarned: bigint;
  /** Epochs below this one are paid out (or had nothing to pay). */
  rewardedThrough: bigint;
  /** Rated power of the chip's answers in `epoch` − 1 (see `power`). */
  prevPower: bigint;
  /**
   * CONSENSUS CHANGE (chipleft, audchip C2): the end of validity (ms, the last whole second's
   * start, as the chain's certificate check reads it) of the earliest-ending certificate of the
   * registration's path, leaf to root; null for a profile without certificates. Past it the chip
   * reads revoked wherever block time is known (effectiveStatus with `atMs`): its answers are
   * refused, so it stops earning; the owner deregisters it and registers it with fresh
   * certificates.
   */
  certsNotAfter: bigint | null;
  /**
   * CONSENSUS CHANGE (chipleft, audchip C6): the height of this record's last transfer or
   * deregistration (0: none). A registration over this record must be anchored at or after it, so
   * that evidence the chip signed for an earlier owner cannot register it again once it changed
   * hands or was deregistered.
   */
  releasedAt: bigint;
}

export const chipCodec: Codec<Chip> = struct<Chip>('Chip', {
  chipId: hash32,
  owner: address,
  vendorId: idCodec,
  modelId: idCodec,
  profile: profileCodec,
  power: u128,
  keyMaterial: bytes(8192, 'keyMaterial'),
  certSerials: list(string(128, 'serial'), 8, 'certSerials'),
  registeredAt: u64,
  firstEpoch: u64,
  status: u8,
  statusReason: string(256, 'statusReason'),
  tpmClock: option(tpmClockCodec),
  creditClock: option(tpmClockCodec),
  creditClockTime: u64,
  priorCredit: option(priorCreditCodec),
  epoch: u64,
  answered: u32,
  prevAnswered: u32,
  uncredited: u32,
  prevUncredited: u32,
  lastAnsweredSlot: u64,
  lastAnsweredAt: u64,
  settledThrough: u64,
  slotsAnswered: u64,
  slotsMissed: u64,
  rewardsEarned: u128,
  rewardedThrough: u64,
  prevPower: u128,
  certsNotAfter: option(u64),
  releasedAt: u64,
});

export function chipKey(chipId: Uint8Array): Uint8Array {
  const k = new Uint8Array(33);
  k[0] = StateSpace.chip;
  k.set(chipId, 1);
  return k;
}

export function getChip(state: StateReader, chipId: Uint8Array): Chip | null {
  const raw = state.get(chipKey(chipId));
  return raw ? decode(chipCodec, raw) : null;
}

export function putChip(state: StateOverlay, chip: Chip): void {
  state.set(chipKey(chip.chipId), encode(chipCodec, chip));
}

function tpmAkIndexKey(akKeyId: Uint8Array): Uint8Array {
  const k = new Uint8Array(33);
  k[0] = StateSpace.tpmAk;
  k.set(akKeyId, 1);
  return k;
}

/**
 * The chip last registered with the tpm2 AK `akKeyId` (tpm2AkKeyId), or null. A chip's id is its
 * HardwareModuleName when the AK certificate names one, else the AK key: without this index the same
 * AK certified both ways would register as two chips, both answered by one TPM. The entry is never
 * removed: the chip's own status says whether it still holds the key (deregistered: it does not).
 */
export function getTpmAkChip(state: StateReader, akKeyId: Uint8Array): Uint8Array | null {
  return state.get(tpmAkIndexKey(akKeyId)) ?? null;
}

export function putTpmAkChip(state: StateOverlay, akKeyId: Uint8Array, chipId: Uint8Array): void {
  state.set(tpmAkIndexKey(akKeyId), new Uint8Array(chipId));
}

/**
 * CONSENSUS RULE (review revchipleft): a chip revoked through its credentials may be deregistered by
 * anyone but its owner only once it has been silent this many epochs (no answer, transfer or
 * registration in them: deregistrableChip, poci/execute.ts). A revocation governance undoes in time
 * (a serial revoked by mistake, an allow-list key or dev-soft turned back on) then costs the honest
 * owner nothing; a squatter's record or a chip whose certificates expired is freed a day later
 * (hour-long epochs). Its owner may deregister it at once.
 */
export const REVOKED_CHIP_GRACE_EPOCHS = 24n;

/**
 * Whether the certificate path the chip registered with has ended at block time `atMs`, read as
 * the registration's check reads a certificate (x509.ts checkCertificate: whole seconds, valid
 * through the last millisecond of notAfter).
 */
export function certificatesExpired(chip: Pick<Chip, 'certsNotAfter'>, atMs: bigint): boolean {
  return chip.certsNotAfter !== null && atMs - (atMs % 1000n) > chip.certsNotAfter;
}

/**
 * The chip's status with revocations applied: revoking a certificate serial deactivates every
 * chip it vouched for at once, without touching each chip record; so does removing an
 * rsa2048-allowlist chip's key from its vendor's allow-list (the entry is looked up on every
 * heartbeat, and everywhere else a chip's status matters, in O(1)); so does turning dev-soft off
 * (setPociParams) for every software chip; so does governance removing the chip's model (removeModel,
 * branch modelpower: re-adding it makes the chip active again). With the block time `atMs`, a chip whose registration's
 * certificate path has ended by then (certsNotAfter) reads revoked too (audchip C2): passed by every
 * action that credits or hands on a chip (heartbeats, transfers, offers, leases, deregistration),
 * by validator seats and network sums (the block's time kept in state) and by the node's views.
 */
export function effectiveStatus(
  state: StateReader,
  chip: Chip,
  /**
   * The block time (ms) the status is read at, required so that no caller forgets it (review
   * revchipleft): null only where no block time applies and the answer is compared with
   * `deregistered` alone (expiry reads revoked, never deregistered), or in a view of a record.
   */
  atMs: bigint | null,
): { status: ChipStatusName; reason: string } {
  if (chip.status === ChipStatus.deregistered) return { status: 'deregistered', reason: chip.statusReason };
  if (chip.status === ChipStatus.revoked) return { status: 'revoked', reason: chip.statusReason };
  const held = revokedCredential(state, chip);
  if (held !== null) return { status: 'revoked', reason: held };
  // CONSENSUS CHANGE (branch modelpower): a model governance removed rates no chip. Before, its
  // chips kept answering, earning and lending seat power at the power they registered with.
  // Checked after the credentials and before certificate expiry (chipint): one order, so one reason
  // text, on every node.
  if (!getModel(state, chip.vendorId, chip.modelId)) {
    return { status: 'revoked', reason: `model ${chip.vendorId}/${chip.modelId} removed by governance` };
  }
  if (atMs !== null && certificatesExpired(chip, atMs))
    return { status: 'revoked', reason: expiredReason(chip) };
  return { status: 'active', reason: '' };
}

function expiredReason(chip: Chip): string {
  return `a certificate of its registration expired at ${new Date(Number(chip.certsNotAfter)).toISOString()} (block time); deregister it and register it with fresh certificates`;
}

/** The first of the chip's credential revocations that does not depend on block time, or null. */
function revokedCredential(state: StateReader, chip: Chip): string | null {
  // A software (dev-soft) chip proves no hardware; it counts only while the chain accepts them.
  // Checked only at registration before, so chips registered while dev-soft was on kept answering,
  // earning rewards and lending validator power after governance turned it off (a chain leaving a
  // test phase kept every free software chip registered before, at any model's power).
  if (chip.profile === 'dev-soft' && !getPociParams(state).devSoftEnabled) {
    return 'this chain no longer accepts software (dev-soft) chips';
  }
  if (
    chip.profile === 'rsa2048-allowlist' &&
    !getAllowlistEntry(state, chip.vendorId, chip.keyMaterial)?.allowed
  ) {
    return `key removed from the allow-list of vendor ${chip.vendorId}`;
  }
  for (const serial of chip.certSerials) {
    if (isSerialRevoked(state, chip.vendorId, serial)) {
      return `certificate ${serial} revoked by vendor ${chip.vendorId}`;
    }
  }
  return null;
}

/**
 * Why the chip's credentials no longer vouch for it at block time `atMs` (a certificate serial
 * revoked, its allow-list key removed, dev-soft turned off, its certificates expired), or null;
 * whatever its record says. Not a model governance removed (re-adding it restores the chip) nor a
 * ban by name (revokeChip, in the record): only a credential revocation lets anyone deregister the
 * chip after REVOKED_CHIP_GRACE_EPOCHS (chipint, deregistrableChip).
 */
export function credentialRevocation(state: StateReader, chip: Chip, atMs: bigint): string | null {
  return revokedCredential(state, chip) ?? (certificatesExpired(chip, atMs) ? expiredReason(chip) : null);
}

/**
 * The chip's rated power as its model now states it (the newest `setModel`, even one not in force
 * for rewards until the next epoch; 0 once the model is removed): what a lease's terms name, so a
 * renter signs for the power governance stands by (CONSENSUS CHANGE, branch modelpower).
 */
export function chipModelPower(state: StateReader, chip: Chip): bigint {
  return getModel(state, chip.vendorId, chip.modelId)?.power ?? 0n;
}

/**
 * The chip's rated power in `epoch` as its model says now (0 once the model is removed): what
 * network figures, seat power (capped by `chip.power`, its weight in the owner's index) and lease
 * terms read.
 */
export function chipRatedPower(state: StateReader, chip: Chip, epoch: bigint): bigint {
  const model = getModel(state, chip.vendorId, chip.modelId);
  return model ? modelPowerAt(model, epoch) : 0n;
}
