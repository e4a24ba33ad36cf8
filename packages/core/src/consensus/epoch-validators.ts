/**
 * The validator set of each epoch, from the state (docs/consensus.md): the top N accounts by the
 * online attested power of the chips they own, among those that posted at least the minimum
 * validator bond. Each validator votes with a consensus key of its own, registered by its account
 * (setConsensusKey, with proof of possession), never the account key; its voting weight is its
 * seat power at the epoch start (seatPowerOf: each proven-online chip's power × the share of its
 * challenges it answered, each counted at the first boundary after its deadline, the last measured
 * share carried through a boundary that drew none of its class), counted only up to bonded ÷
 * uncPerPowerUnit, so influence always has UNC at stake. Chips of a tombstoned validator back nobody
 * for tombstoneEpochs epochs.
 *
 * The set is computed once, at the end of the last block of an epoch (so the state after that
 * block already names who must sign the first block of the next one), equal weights ranked by a
 * hash of that block's own VRF beacon and the consensus key, and stored in a ring of the
 * last few epochs, so every node reads the same set cheaply and evidence of a recent epoch can be
 * checked against the set that was in force. Until a computed set exists (or whenever one comes
 * out empty, or short of the handover bar) the previous set stays; the first is the genesis validators.
 *
 * Cost. Candidates and chips are enumerable through state indexes (consensus/indexed-set.ts): the
 * bonded candidates, and per owner its chips with their total rated power, kept up to date O(1)
 * per bond, unbond, registration, transfer and deregistration. At the boundary every candidate's
 * rated power is read (one access each), candidates are visited in order of rated power (an upper
 * bound of seat power), and a candidate's chips are evaluated (liveness is lazy, docs/poci.md:
 * about S·(K/S + 2) hashes per chip; its seat window, two class lists, poci/seat-share.ts) only
 * until N candidates are found whose seat power beats the next one's upper bound. So the work is
 * O(candidates) accesses plus the chips of the candidates that can still make the cut, typically
 * the top N, never all chips of the chain. A candidate holds at least minValidatorBond bonded, so
 * their number is bounded by the supply over that minimum.
 */
import { compareBytes, equalBytes, toHex, utf8 } from '../bytes.js';
import { addressFromPublicKey } from '../crypto/address.js';
import { ed25519Verify } from '../crypto/ed25519.js';
import { taggedHash } from '../crypto/hash.js';
import { type Codec, decode, encode, list, struct, u32, u64, u128 } from '../encoding/codec.js';
import { address as addressCodec, publicKey as publicKeyCodec } from '../encoding/primitives.js';
import { ValidationError } from '../errors.js';
import { type Chip, chipRatedPower, effectiveStatus, getChip } from '../poci/chips.js';
import {
  type ChallengeLookup,
  challengeLookup,
  chipClass,
  epochOf,
  getRecentTime,
  isProvenOnline,
} from '../poci/liveness.js';
import { getPociParams, POCI_PARAMS_KEY, type PociParams } from '../poci/params.js';
import { chipSeatShare } from '../poci/seat-share.js';
import { getBond } from '../rewards/bonds.js';
import { StateSpace } from '../state/accounts.js';
import type { StateOverlay, StateReader } from '../state/store.js';
import { IndexedSet } from './indexed-set.js';
import { MAX_VALIDATORS, type Validator, ValidatorSet, validatorListCodec } from './validators.js';

// ---- Parameters ----

export interface ConsensusParams {
  /** N: validators per epoch (docs/consensus.md, default 100). */
  maxValidators: number;
  /** Basis points of an equivocating validator's bond (bonded + unbonding) that are burned. */
  equivocationSlashBps: bigint;
  /** Base units an account must have bonded to be in a computed set (default 1,000 UNC). */
  minValidatorBond: bigint;
  /**
   * Base units of bond per unit of chip power: a validator's voting weight is its seat power,
   * counted only up to bonded ÷ this (default 10^15, 0.001 UNC: an H100's 989,000 units need
   * 989 UNC bonded).
   */
  uncPerPowerUnit: bigint;
  /** Epochs after the one of a tombstone in which the offender's chips back no validator. */
  tombstoneEpochs: bigint;
}

export const DEFAULT_CONSENSUS_PARAMS: Readonly<ConsensusParams> = Object.freeze({
  maxValidators: 100,
  equivocationSlashBps: 500n,
  minValidatorBond: 1_000n * 10n ** 18n,
  uncPerPowerUnit: 10n ** 15n,
  tombstoneEpochs: 720n,
});

export const consensusParamsCodec: Codec<ConsensusParams> = struct<ConsensusParams>('ConsensusParams', {
  maxValidators: u32,
  equivocationSlashBps: u64,
  minValidatorBond: u128,
  uncPerPowerUnit: u128,
  tombstoneEpochs: u64,
});

const VALIDATOR_SETS = StateSpace.validatorSets;
export const CONSENSUS_PARAMS_KEY = Uint8Array.of(VALIDATOR_SETS, 0x03);

export function checkConsensusParams(p: ConsensusParams): void {
  if (!Number.isInteger(p.maxValidators) || p.maxValidators < 1 || p.maxValidators > MAX_VALIDATORS) {
    throw new RangeError(`maxValidators must be 1…${MAX_VALIDATORS}`);
  }
  if (p.equivocationSlashBps < 0n || p.equivocationSlashBps > 10_000n) {
    throw new RangeError('equivocationSlashBps must be 0…10000');
  }
  if (p.minValidatorBond < 1n || p.minValidatorBond >= 1n << 128n) {
    throw new RangeError('minValidatorBond must be at least 1 base unit');
  }
  if (p.uncPerPowerUnit < 1n || p.uncPerPowerUnit >= 1n << 128n) {
    throw new RangeError('uncPerPowerUnit must be at least 1 base unit');
  }
  if (p.tombstoneEpochs < 0n || p.tombstoneEpochs >= 1n << 32n) {
    throw new RangeError('tombstoneEpochs must be 0…2^32-1');
  }
}

/** Absent from the state means the defaults (chains whose genesis predates these parameters). */
export function getConsensusParams(state: StateReader): ConsensusParams {
  const raw = state.get(CONSENSUS_PARAMS_KEY);
  return raw ? decode(consensusParamsCodec, raw) : { ...DEFAULT_CONSENSUS_PARAMS };
}

export function putConsensusParams(state: StateOverlay, p: ConsensusParams): void {
  checkConsensusParams(p);
  state.set(CONSENSUS_PARAMS_KEY, encode(consensusParamsCodec, p));
}

// ---- Handover: when a computed set may replace the genesis set ----

/**
 * CONSENSUS (docs/consensus.md, Genesis validators; audit G1): a computed set replaces the GENESIS
 * set only once it has at least `minValidators` validators and a total voting weight of at least
 * `minWeight` (the units of computed weights: chip power capped by bond). Before, the first
 * non-empty computed set took over however small: one account with the minimum bond and one chip
 * became the only validator and could censor everyone else's bonds and heartbeats for good.
 * The bar stays after the handover: a later computed set short of it keeps the set serving too
 * (endBlockValidators). Genesis parameters, fixed for the life of the chain.
 */
export interface HandoverParams {
  minWeight: bigint;
  minValidators: number;
}

/** Default handover weight: this many times what the minimum validator bond backs. */
export const DEFAULT_HANDOVER_BOND_MULTIPLE = 100n;
/** Default number of distinct validators a computed set needs to replace the genesis set. */
export const DEFAULT_HANDOVER_MIN_VALIDATORS = 4;
/** handoverMinWeight is stored as u128. */
export const MAX_HANDOVER_WEIGHT = (1n << 128n) - 1n;

/**
 * The defaults for a genesis that does not name the handover parameters (never 0: 0 is the G1
 * bug): 100 × (minValidatorBond ÷ uncPerPowerUnit), the weight of 100 validators at the minimum
 * bond, each fully backed (100,000 UNC bonded behind about 100 H100s of proven seat power at the
 * default parameters), and min(4, maxValidators) validators. A capture then costs at least 100×
 * the minimum bond and as much proven chip power, spread over at least 4 keys; a launch that wants
 * a different bar names it in its genesis.
 */
export function defaultHandoverParams(
  p: Pick<ConsensusParams, 'minValidatorBond' | 'uncPerPowerUnit' | 'maxValidators'>,
): HandoverParams {
  let minWeight = DEFAULT_HANDOVER_BOND_MULTIPLE * (p.minValidatorBond / p.uncPerPowerUnit);
  if (minWeight < 1n) minWeight = 1n;
  if (minWeight > MAX_HANDOVER_WEIGHT) minWeight = MAX_HANDOVER_WEIGHT;
  const minValidators =
    p.maxValidators < DEFAULT_HANDOVER_MIN_VALIDATORS ? p.maxValidators : DEFAULT_HANDOVER_MIN_VALIDATORS;
  return { minWeight, minValidators };
}

export const handoverParamsCodec: Codec<HandoverParams> = struct<HandoverParams>('HandoverParams', {
  minWeight: u128,
  minValidators: u32,
});

export function checkHandoverParams(h: HandoverParams, maxValidators: number): void {
  if (h.minWeight < 1n || h.minWeight > MAX_HANDOVER_WEIGHT) {
    throw new RangeError('handoverMinWeight must be 1…2^128-1');
  }
  if (!Number.isInteger(h.minValidators) || h.minValidators < 1 || h.minValidators > maxValidators) {
    throw new RangeError(`handoverMinValidators must be 1…maxValidators (${maxValidators})`);
  }
}

export const HANDOVER_PARAMS_KEY = Uint8Array.of(VALIDATOR_SETS, 0x04);
/** Written once, at the boundary where a computed set first replaced the genesis set: that epoch (u64). */
export const HANDED_OVER_KEY = Uint8Array.of(VALIDATOR_SETS, 0x05);

/** Absent from the state means the defaults derived from the consensus parameters. */
export function getHandoverParams(state: StateReader): HandoverParams {
  const raw = state.get(HANDOVER_PARAMS_KEY);
  return raw ? decode(handoverParamsCodec, raw) : defaultHandoverParams(getConsensusParams(state));
}

export function putHandoverParams(state: StateOverlay, h: HandoverParams): void {
  checkHandoverParams(h, getConsensusParams(state).maxValidators);
  state.set(HANDOVER_PARAMS_KEY, encode(handoverParamsCodec, h));
}

/** The epoch from which a computed set replaced the genesis set, or null while the genesis set serves. */
export function handedOverAt(state: StateReader): bigint | null {
  const raw = state.get(HANDED_OVER_KEY);
  return raw ? decode(u64, raw) : null;
}

/** Why a computed set may not replace the genesis set (null: it may). */
export function handoverShortfall(validators: readonly Validator[], h: HandoverParams): string | null {
  const keys = new Set(validators.map((v) => toHex(v.publicKey)));
  const weight = validators.reduce((sum, v) => sum + v.power, 0n);
  if (keys.size < h.minValidators) return `${keys.size} validators, fewer than ${h.minValidators}`;
  if (weight < h.minWeight) return `total weight ${weight}, below ${h.minWeight}`;
  return null;
}

/**
 * For operators (not consensus): with `state` the state after an epoch's last block and `nextHeight`
 * the next epoch's first height, what the computed set that the handover bar kept out looked like
 * (the genesis set serving on, or after the handover the previous computed set: `handedOver`):
 * null when no candidate has weight (the set serving goes on for lack of any), or when the set met
 * the bar. The tie-break seed does not matter here: it orders equal weights, which changes neither
 * the count nor the total.
 */
export function handoverPending(
  state: StateReader,
  nextHeight: bigint,
): {
  validators: number;
  weight: bigint;
  shortfall: string;
  params: HandoverParams;
  handedOver: boolean;
} | null {
  const handedOver = handedOverAt(state) !== null;
  // After the handover, a boundary that stored a set other than a kept one (each validator one of
  // the ending epoch's, at no more weight: keptValidators) stored a computed set that met the bar;
  // only the others pay for a second computation.
  const epoch = epochOf(nextHeight, getPociParams(state));
  if (handedOver && (!mayBeKept(state, epoch) || !keptStillBonded(state, epoch - 1n))) return null;
  const set = computeValidatorSet(state, nextHeight, new Uint8Array(32));
  if (set.length === 0) return null;
  const params = getHandoverParams(state);
  const shortfall = handoverShortfall(set, params);
  if (shortfall === null) return null;
  return {
    validators: set.length,
    weight: set.reduce((n, v) => n + v.power, 0n),
    shortfall,
    params,
    handedOver,
  };
}

/** Whether the set stored for `epoch` may be the ending epoch's kept (keptValidators), not a computed one. */
function mayBeKept(state: StateReader, epoch: bigint): boolean {
  const now = getStoredSet(state, epoch);
  const before = getStoredSet(state, epoch - 1n);
  if (!now || now.epoch !== epoch || !before || before.epoch !== epoch - 1n) return false;
  const weights = new Map(before.validators.map((v) => [toHex(v.publicKey), v.power]));
  return now.validators.every((v) => {
    const w = weights.get(toHex(v.publicKey));
    return w !== undefined && v.power <= w;
  });
}

// ---- Candidates: bonded accounts and their consensus keys ----

/**
 * An account's consensus key, registered by a `setConsensusKey` action signed by the account and
 * carrying a signature of the consensus key itself (proof of possession); never deleted
 * (tombstones last). Records written before consensus keys were separate hold the account's own
 * key: such an account is no candidate until it registers a consensus key.
 */
export interface ValidatorKeyRecord {
  publicKey: Uint8Array;
  /** Height at which equivocation evidence removed it for good; 0 = never. */
  tombstonedAt: bigint;
}

const validatorKeyCodec: Codec<ValidatorKeyRecord> = struct<ValidatorKeyRecord>('ValidatorKey', {
  publicKey: publicKeyCodec,
  tombstonedAt: u64,
});

const candidates = new IndexedSet(StateSpace.validatorCandidate, 0, 20);
const NO_GROUP = new Uint8Array(0);

/** `0x10 ‖ sub ‖ id`: the validator records that live beside the candidate index. */
function validatorRecordKey(sub: number, id: Uint8Array): Uint8Array {
  const k = new Uint8Array(2 + id.length);
  k[0] = StateSpace.validatorCandidate;
  k[1] = sub;
  k.set(id, 2);
  return k;
}

function validatorKeyKey(address: Uint8Array): Uint8Array {
  return validatorRecordKey(0x03, address);
}

/** `0x10 0x04 ‖ consensus public key` → the account that registered it (forever: keys are not reused). */
function consensusKeyOwnerKey(publicKey: Uint8Array): Uint8Array {
  return validatorRecordKey(0x04, publicKey);
}

/** `0x10 0x05 ‖ chip id` → the last epoch in which the chip backs no validator (a tombstone's). */
function chipTombstoneKey(chipId: Uint8Array): Uint8Array {
  return validatorRecordKey(0x05, chipId);
}

/**
 * `0x10 0x06 ‖ chip id` → the chip's recent owners: who it left (a transfer away or a
 * deregistration), at which height, for as long as evidence against them could still land
 * (TRANSFER_MEMORY_EPOCHS). So a tombstone also reaches chips that left the offender between the
 * offence and the evidence (tombstoneBarredThrough). Keyed by chip id beside the chip record, so a
 * registration of a deregistered chip (a new record) keeps it, and keeps the chip's own mark.
 */
function chipHistoryKey(chipId: Uint8Array): Uint8Array {
  return validatorRecordKey(0x06, chipId);
}

interface PastOwner {
  owner: Uint8Array;
  /** Height of the transfer away from it, or of its deregistration. */
  height: bigint;
}

/**
 * Changes of hands of one chip remembered within TRANSFER_MEMORY_EPOCHS before a transfer, or a
 * registration of the deregistered chip, is refused. A deregistration is never refused, so the
 * list may hold one more entry (a chip leaves its owner by deregistration only while active, and
 * it is active again only through a registration, which is refused at this bound).
 */
export const MAX_RECENT_CHIP_TRANSFERS = 8;
/**
 * Epochs a transfer is remembered: evidence of an offence in epoch e lands by epoch
 * e + EVIDENCE_MAX_AGE_EPOCHS, so a transfer older than that plus one epoch can no longer be
 * followed by a tombstone of the owner it left.
 */
export const TRANSFER_MEMORY_EPOCHS = 3n;

const pastOwnersCodec: Codec<PastOwner[]> = list(
  struct<PastOwner>('PastOwner', { owner: addressCodec, height: u64 }),
  MAX_RECENT_CHIP_TRANSFERS + 1,
  'pastOwners',
);

function pastOwners(state: StateReader, chipId: Uint8Array): PastOwner[] {
  const raw = state.get(chipHistoryKey(chipId));
  return raw ? decode(pastOwnersCodec, raw) : [];
}

export function getValidatorKey(state: StateReader, address: Uint8Array): ValidatorKeyRecord | null {
  const raw = state.get(validatorKeyKey(address));
  return raw ? decode(validatorKeyCodec, raw) : null;
}

function putValidatorKey(state: StateOverlay, address: Uint8Array, r: ValidatorKeyRecord): void {
  state.set(validatorKeyKey(address), encode(validatorKeyCodec, r));
}

/** A record that names the account's own key is a legacy one: it names no consensus key. */
function hasConsensusKey(address: Uint8Array, r: ValidatorKeyRecord | null): r is ValidatorKeyRecord {
  return r !== null && !equalBytes(addressFromPublicKey(r.publicKey), address);
}

/** The registered consensus key of `address`, or null (none registered). */
export function consensusKeyOf(state: StateReader, address: Uint8Array): Uint8Array | null {
  const r = getValidatorKey(state, address);
  return hasConsensusKey(address, r) ? r.publicKey : null;
}

/**
 * The account behind a consensus key: the one that registered it, else (genesis validators, and
 * records from before consensus keys were separate) the key's own address.
 */
export function accountOfConsensusKey(state: StateReader, publicKey: Uint8Array): Uint8Array {
  const raw = state.get(consensusKeyOwnerKey(publicKey));
  return raw ?? addressFromPublicKey(publicKey);
}

/** What a consensus key signs to prove it agrees to vote for `account` on chain `chainId`. */
export function consensusKeyMessage(chainId: string, account: Uint8Array): Uint8Array {
  return taggedHash('UNC/consensus-key', utf8(chainId), account);
}

export interface ConsensusKeySetEvent {
  type: 'consensusKeySet';
  account: Uint8Array;
  publicKey: Uint8Array;
}

/**
 * The `setConsensusKey` action: `account` (the sender, holder of the bond and the chips) names
 * the key its validator node votes with. Refused if it is the account's own key, if the key is
 * taken (by another account, or a genesis validator that was tombstoned), if the account already
 * has one (no rotation: evidence of an old epoch must still find its account), or if `signature`
 * is not the key's signature of consensusKeyMessage(chainId, account).
 */
export function applySetConsensusKey(
  state: StateOverlay,
  chainId: string,
  account: Uint8Array,
  publicKey: Uint8Array,
  signature: Uint8Array,
): ConsensusKeySetEvent[] {
  if (equalBytes(addressFromPublicKey(publicKey), account)) {
    throw new ValidationError(
      'CONSENSUS_KEY_IS_ACCOUNT_KEY',
      'the consensus key must be a key of its own, not the account key (PROTOCOL §6)',
    );
  }
  const record = getValidatorKey(state, account);
  if (record && record.tombstonedAt !== 0n) {
    throw new ValidationError('VALIDATOR_TOMBSTONED', 'this account was tombstoned for equivocation');
  }
  if (hasConsensusKey(account, record)) {
    throw new ValidationError(
      'CONSENSUS_KEY_SET',
      `this account's consensus key is ${toHex(record.publicKey)}`,
    );
  }
  if (state.get(consensusKeyOwnerKey(publicKey)) || isTombstoned(state, publicKey)) {
    throw new ValidationError(
      'CONSENSUS_KEY_TAKEN',
      `consensus key ${toHex(publicKey)} is already registered`,
    );
  }
  if (!ed25519Verify(publicKey, consensusKeyMessage(chainId, account), signature)) {
    throw new ValidationError(
      'BAD_SIGNATURE',
      'the consensus key did not sign this account and chain (proof of possession)',
    );
  }
  putValidatorKey(state, account, { publicKey: publicKey.slice(), tombstonedAt: 0n });
  state.set(consensusKeyOwnerKey(publicKey), account.slice());
  if (meetsMinimumBond(state, account)) candidates.add(state, NO_GROUP, account);
  return [{ type: 'consensusKeySet', account, publicKey }];
}

/**
 * Whether `account` has at least minValidatorBond bonded: the price of a place in the candidate
 * index. Every epoch boundary reads each candidate (computeValidatorSet), so a candidacy that cost
 * one bonded base unit let anyone add three state reads to every boundary block of every node, for
 * ever, for about 0.00003 UNC of fees per account (a million candidates for a few dozen UNC). A bond
 * under the minimum backs no weight anyway (bondBacking), so leaving it out changes no set.
 */
function meetsMinimumBond(state: StateReader, account: Uint8Array): boolean {
  return getBond(state, account).bonded >= getConsensusParams(state).minValidatorBond;
}

/** Called for every bond action: an account with a consensus key and the minimum bond becomes a candidate. */
export function noteValidatorBond(state: StateOverlay, account: Uint8Array): void {
  const record = getValidatorKey(state, account);
  if (!hasConsensusKey(account, record) || record.tombstonedAt !== 0n) return;
  if (!meetsMinimumBond(state, account)) return;
  candidates.add(state, NO_GROUP, account);
}

/** Called after an unbond: an account left with less than the minimum bond is no candidate. */
export function noteValidatorUnbond(state: StateOverlay, address: Uint8Array): void {
  if (!meetsMinimumBond(state, address)) candidates.remove(state, NO_GROUP, address);
}

/**
 * Removes a validator for good (equivocation): it is left out of every set computed from now on,
 * and the tombstone follows its chips: every chip its account owns backs no validator (whoever
 * owns it later) up to epoch `epoch + tombstoneEpochs`. O(chips of that account). Chips that left
 * it before (transfer, deregistration) are barred through their past owners (tombstoneBarredThrough).
 */
export function tombstoneValidator(
  state: StateOverlay,
  publicKey: Uint8Array,
  height: bigint,
  epoch: bigint,
  tombstoneEpochs: bigint,
): Uint8Array {
  const address = accountOfConsensusKey(state, publicKey);
  putValidatorKey(state, address, { publicKey: publicKey.slice(), tombstonedAt: height });
  candidates.remove(state, NO_GROUP, address);
  const until = epoch + tombstoneEpochs;
  for (const chipId of chipsOfOwner(state, address)) {
    if (chipTombstonedThrough(state, chipId) < until) state.set(chipTombstoneKey(chipId), encode(u64, until));
  }
  return address;
}

/** The last epoch in which `chipId` backs no validator because of a tombstone (-1: none). */
export function chipTombstonedThrough(state: StateReader, chipId: Uint8Array): bigint {
  const raw = state.get(chipTombstoneKey(chipId));
  return raw ? decode(u64, raw) : -1n;
}

/**
 * The last epoch in which a tombstone of a past owner bars `entry`'s chip, or -1: the owner it
 * left was tombstoned (evidence included at height T) and the transfer was no earlier than the
 * first epoch the offence can have been in (epochOf(T) − EVIDENCE_MAX_AGE_EPOCHS) and no later
 * than T: it may have backed the offender when it offended. Conservative by up to two epochs.
 */
function pastOwnerBar(
  state: StateReader,
  entry: PastOwner,
  p: Pick<PociParams, 'epochBlocks'>,
  n: bigint,
): bigint {
  const record = getValidatorKey(state, entry.owner);
  if (!record || record.tombstonedAt === 0n || entry.height > record.tombstonedAt) return -1n;
  const tombstoneEpoch = epochOf(record.tombstonedAt, p);
  if (epochOf(entry.height, p) + EVIDENCE_MAX_AGE_EPOCHS < tombstoneEpoch) return -1n;
  return tombstoneEpoch + n;
}

/**
 * The last epoch in which `chipId` backs no validator because of a tombstone (-1: none): its own
 * mark (set at the tombstone for the chips the offender owned) or that of a recent past owner.
 */
export function tombstoneBarredThrough(
  state: StateReader,
  chipId: Uint8Array,
  p: Pick<PociParams, 'epochBlocks'> = getPociParams(state),
  tombstoneEpochs: bigint = getConsensusParams(state).tombstoneEpochs,
): bigint {
  let through = chipTombstonedThrough(state, chipId);
  for (const entry of pastOwners(state, chipId)) {
    const bar = pastOwnerBar(state, entry, p, tombstoneEpochs);
    if (bar > through) through = bar;
  }
  return through;
}

/**
 * The chip's past owners still remembered at `height`. Entries past TRANSFER_MEMORY_EPOCHS are
 * dropped (and the list written back without them), a bar they carry first turned into the chip's
 * own mark (so it lasts its full length).
 */
function recentPastOwners(state: StateOverlay, chipId: Uint8Array, height: bigint): PastOwner[] {
  const p = getPociParams(state);
  const { tombstoneEpochs } = getConsensusParams(state);
  const all = pastOwners(state, chipId);
  const kept: PastOwner[] = [];
  let mark = chipTombstonedThrough(state, chipId);
  for (const entry of all) {
    if (epochOf(entry.height, p) + TRANSFER_MEMORY_EPOCHS >= epochOf(height, p)) {
      kept.push(entry);
      continue;
    }
    const bar = pastOwnerBar(state, entry, p, tombstoneEpochs);
    if (bar > mark) mark = bar;
  }
  if (mark > chipTombstonedThrough(state, chipId)) state.set(chipTombstoneKey(chipId), encode(u64, mark));
  if (kept.length < all.length) state.set(chipHistoryKey(chipId), encode(pastOwnersCodec, kept));
  return kept;
}

/**
 * Past owners are never evicted to make room (an offender could push itself out of the list by
 * changing hands many times before the evidence lands): the chip waits instead.
 */
function refuseIfHistoryFull(kept: PastOwner[], chipId: Uint8Array, what: string): void {
  if (kept.length >= MAX_RECENT_CHIP_TRANSFERS) {
    throw new ValidationError(
      'CHIP_TRANSFERS_TOO_FREQUENT',
      `chip ${toHex(chipId)} changed hands ${kept.length} times in the last ${TRANSFER_MEMORY_EPOCHS} epochs; ${what} waits until the oldest is forgotten`,
    );
  }
}

/**
 * Chip `chipId` left `from` at `height` (a transfer, or a deregistration: `refusable` false):
 * remembers it. A transfer is refused when MAX_RECENT_CHIP_TRANSFERS are remembered; a
 * deregistration never is (an owner may always give up a chip), and a registration of the
 * deregistered chip is refused instead (noteChipRegistration), which bounds the list.
 */
function noteChipLeft(
  state: StateOverlay,
  chipId: Uint8Array,
  from: Uint8Array,
  height: bigint,
  refusable: boolean,
): void {
  const kept = recentPastOwners(state, chipId, height);
  if (refusable) refuseIfHistoryFull(kept, chipId, 'a transfer');
  kept.push({ owner: from.slice(), height });
  state.set(chipHistoryKey(chipId), encode(pastOwnersCodec, kept));
}

/**
 * A registration of a chip that changed hands MAX_RECENT_CHIP_TRANSFERS times in the memory window
 * (deregistrations included) is refused: otherwise deregister/register cycles would grow the list
 * without bound, or push the offender out of it.
 */
function noteChipRegistration(state: StateOverlay, chipId: Uint8Array, height: bigint): void {
  refuseIfHistoryFull(recentPastOwners(state, chipId, height), chipId, 'a registration');
}

export function isTombstoned(state: StateReader, publicKey: Uint8Array): boolean {
  const r = getValidatorKey(state, accountOfConsensusKey(state, publicKey));
  return r !== null && r.tombstonedAt !== 0n;
}

/** Addresses of the bonded, non-tombstoned candidates (in storage order). */
export function validatorCandidates(state: StateReader): Uint8Array[] {
  return candidates.members(state, NO_GROUP);
}

/** How many candidates there are: one state read (validatorCandidates reads one per candidate). */
export function validatorCandidateCount(state: StateReader): number {
  return candidates.head(state, NO_GROUP).count;
}

// ---- Chips by owner ----

const ownerChips = new IndexedSet(StateSpace.ownerChips, 20, 32);

/** Chip ids registered to `owner` (not deregistered; revoked ones stay and count as offline). */
export function chipsOfOwner(state: StateReader, owner: Uint8Array): Uint8Array[] {
  return ownerChips.members(state, owner);
}

/** How many chips `owner`'s index holds: one state read, where chipsOfOwner reads every member. */
export function ownerChipCount(state: StateReader, owner: Uint8Array): number {
  return ownerChips.head(state, owner).count;
}

/** Sum of the rated power of the chips in `owner`'s index: an upper bound of its online and seat power. */
export function ownerRatedPower(state: StateReader, owner: Uint8Array): bigint {
  return ownerChips.head(state, owner).weight;
}

/**
 * A chip's weight in its owner's index follows its `power` (CONSENSUS CHANGE, branch modelpower:
 * moved when the chip's answers reach an epoch whose model power differs, poci/execute.ts
 * rollChipPower). O(1).
 */
export function reweighOwnerChip(
  state: StateOverlay,
  owner: Uint8Array,
  chipId: Uint8Array,
  from: bigint,
  to: bigint,
): void {
  ownerChips.reweigh(state, owner, chipId, from, to);
}

type ChipEvent =
  | { type: 'chipRegistered'; chipId: Uint8Array; owner: Uint8Array; power: bigint }
  | { type: 'chipTransferred'; chipId: Uint8Array; from: Uint8Array; to: Uint8Array }
  | { type: 'chipDeregistered'; chipId: Uint8Array; owner: Uint8Array };

/**
 * Keeps the owner index in step with what chip actions did, read from their events (the events
 * are the record of every ownership change), and remembers recent past owners of transferred and
 * deregistered chips (`height`: the block's) so a tombstone reaches them. Returns the events
 * unchanged. Throws CHIP_TRANSFERS_TOO_FREQUENT for a transfer or registration of a chip that
 * changed hands too often lately (the caller's transaction is then refused as a whole).
 */
export function indexChipEvents<E extends { type: string }>(
  state: StateOverlay,
  events: E[],
  height: bigint,
): E[] {
  for (const raw of events) {
    const e = raw as unknown as ChipEvent;
    switch (e.type) {
      case 'chipRegistered':
        noteChipRegistration(state, e.chipId, height);
        ownerChips.add(state, e.owner, e.chipId, e.power);
        break;
      case 'chipTransferred': {
        const power = getChip(state, e.chipId)?.power ?? 0n;
        ownerChips.remove(state, e.from, e.chipId, power);
        ownerChips.add(state, e.to, e.chipId, power);
        noteChipLeft(state, e.chipId, e.from, height, true);
        break;
      }
      case 'chipDeregistered':
        ownerChips.remove(state, e.owner, e.chipId, getChip(state, e.chipId)?.power ?? 0n);
        // A validator that deregisters its chips keeps its seat to the end of the epoch; if it
        // equivocates in it, the tombstone must still reach the chips when another account
        // registers them again, as it does for a transfer (docs/consensus.md).
        noteChipLeft(state, e.chipId, e.owner, height, false);
        break;
    }
  }
  return events;
}

/**
 * Rated power of `owner`'s active chips that are proven online at `height` (isProvenOnline,
 * docs/poci.md): online by the miss rule and answered at least one challenge of their current
 * registration, so a fresh registration lends its owner no weight before it has shown it exists.
 * With `epoch`, chips that a tombstone bars from backing a validator in that epoch count nothing.
 * No consensus path calls this any more (the set uses seatPowerOf, whose loop this one mirrors):
 * it is kept for the tests that check the proven-online rule, none of which passes `epoch`.
 */
export function onlinePowerOf(
  state: StateReader,
  owner: Uint8Array,
  height: bigint,
  p: PociParams = getPociParams(state),
  challengesOf: ChallengeLookup = challengeLookup(state),
  epoch: bigint | null = null,
): bigint {
  const tombstoneEpochs = epoch === null ? 0n : getConsensusParams(state).tombstoneEpochs;
  let power = 0n;
  for (const chipId of chipsOfOwner(state, owner)) {
    const chip = getChip(state, chipId);
    if (!chip || !equalBytes(chip.owner, owner)) continue;
    if (effectiveStatus(state, chip, getRecentTime(state, height - 1n)).status !== 'active') continue;
    if (epoch !== null && tombstoneBarredThrough(state, chipId, p, tombstoneEpochs) >= epoch) continue;
    if (isProvenOnline(chip, height, p, challengesOf)) power += seatRatedPower(state, chip, height, p);
  }
  return power;
}

/**
 * What one chip lends its owner's seat in the set computed at the end of an epoch (`height`: the
 * first height of the next one, b), if it is proven online at `height`; nothing otherwise: its
 * power × the share of its class's challenges it answered (poci/seat-share.ts, chipSeatShare)
 * over the window of boundary b (the challenges whose answer window closed since the boundary
 * before, so each counts once, answered or missed, and none still open at a boundary is lost: it
 * counts at the next), after the grace of rewards (creditedChallenges: all of them when it still
 * answered at least S, its class having drawn more than S, and missed at most G), floored. A
 * window in which the class drew no challenge measured nothing: the chip is then weighed by the
 * newest earlier window of its current registration that counted one (read from its masks, or the
 * share remembered when they moved on), and by nothing if none did, so an unmeasured boundary is
 * never a free full seat. The K-miss rule alone holds a seat for a chip that is up only near each
 * epoch's end (it never misses K in a row at the boundary); the share makes the seat follow the
 * uptime that rewards already follow. Reads: the class's lists of epochs b−2 and b−1 (memoised
 * with those of the miss count), more only for the windows that counted nothing, plus the
 * remembered share when none of the readable ones counted a challenge.
 */
export function chipSeatPower(
  state: StateReader,
  chip: Chip,
  height: bigint,
  p: PociParams,
  challengesOf: ChallengeLookup,
): bigint {
  const cls = chipClass(chip.chipId, p);
  const lists = new Map<bigint, readonly bigint[]>();
  const lookup: ChallengeLookup = (e, c) => {
    if (c !== cls) return challengesOf(e, c);
    let heights = lists.get(e);
    if (!heights) lists.set(e, (heights = challengesOf(e, c)));
    return heights;
  };
  if (!isProvenOnline(chip, height, p, lookup, cls)) return 0n;
  const share = chipSeatShare(state, chip, epochOf(height, p), p, lookup, cls);
  if (share === null) return 0n;
  return (seatRatedPower(state, chip, height, p) * BigInt(share.credited)) / BigInt(share.counted);
}

/**
 * The power a chip counts for in a seat computed at `height` (CONSENSUS CHANGE, branch modelpower):
 * its model's power in force at `height`'s epoch, at most `chip.power` (its weight in the owner's
 * index, whose sum must bound the owner's seat power). A lowered power counts from the first set
 * computed once it is in force; a raised one once the chip answered in an epoch where it is (its
 * `power`, and its index weight, move then).
 */
function seatRatedPower(state: StateReader, chip: Chip, height: bigint, p: PociParams): bigint {
  const rated = chipRatedPower(state, chip, epochOf(height, p));
  return rated < chip.power ? rated : chip.power;
}

/**
 * An owner's seat power at the end of an epoch (`height`: the first height of the next one): the
 * sum of chipSeatPower over its active chips, minus the chips a tombstone bars from backing a
 * validator in `epoch` (the epoch the set is for). Before the bond cap (bondBacking).
 */
export function seatPowerOf(
  state: StateReader,
  owner: Uint8Array,
  height: bigint,
  p: PociParams = getPociParams(state),
  challengesOf: ChallengeLookup = challengeLookup(state),
  epoch: bigint = epochOf(height, p),
): bigint {
  const tombstoneEpochs = getConsensusParams(state).tombstoneEpochs;
  // The boundary block's time (kept in state for its challenge): a chip whose certificates have
  // expired by then lends nothing, as a revoked one (audchip C2). None kept: the record as it is.
  const atMs = getRecentTime(state, height - 1n);
  let power = 0n;
  for (const chipId of chipsOfOwner(state, owner)) {
    const chip = getChip(state, chipId);
    if (!chip || !equalBytes(chip.owner, owner)) continue;
    if (effectiveStatus(state, chip, atMs).status !== 'active') continue;
    if (tombstoneBarredThrough(state, chipId, p, tombstoneEpochs) >= epoch) continue;
    power += chipSeatPower(state, chip, height, p, challengesOf);
  }
  return power;
}

/** What `bonded` backs: the most chip power it may count for (docs/consensus.md). */
export function bondBacking(
  bonded: bigint,
  params: Pick<ConsensusParams, 'minValidatorBond' | 'uncPerPowerUnit'>,
): bigint {
  return bonded < params.minValidatorBond ? 0n : bonded / params.uncPerPowerUnit;
}

// ---- The computation ----

/**
 * taggedHash('UNC/validator-tie', seed ‖ consensus key): the order among candidates of equal
 * weight. `seed` is the beacon of the block that computes the set (the epoch's last block,
 * endBlockValidators): its proposer's VRF output, which nobody knows before that block is proposed,
 * so no candidate can have placed its chips under a key that wins it.
 */
export function validatorTieBreak(seed: Uint8Array, publicKey: Uint8Array): Uint8Array {
  return taggedHash('UNC/validator-tie', seed, publicKey);
}

/** A validator with its tie-break (validatorTieBreak) for the epoch being ranked. */
export interface RankedValidator extends Validator {
  tie: Uint8Array;
}

/**
 * Canonical rank, a total order: more power first, then the smaller tie-break, then the smaller
 * public key. Not the key alone: a key is chosen freely, so one ground to start with zero bytes
 * would win every tie.
 */
export function compareValidatorRank(a: RankedValidator, b: RankedValidator): number {
  if (a.power !== b.power) return a.power > b.power ? -1 : 1;
  return compareBytes(a.tie, b.tie) || compareBytes(a.publicKey, b.publicKey);
}

/**
 * The top `maxValidators` bonded candidates by voting weight at `height` (the first height of the
 * epoch the set is for), in rank order, each under its consensus key. Voting weight = seat power
 * of the account's chips (seatPowerOf, which leaves out chips barred by a tombstone), capped at what its bond backs
 * (bondBacking: nothing below minValidatorBond). Equal weights are ordered by validatorTieBreak with
 * `seed` (the beacon of block height − 1, endBlockValidators). Candidates without weight are left
 * out, so the result may be empty.
 */
export function computeValidatorSet(state: StateReader, height: bigint, seed: Uint8Array): Validator[] {
  if (seed.length !== 32) throw new RangeError('the tie-break seed must be 32 bytes');
  const params = getConsensusParams(state);
  const { maxValidators } = params;
  const p = getPociParams(state);
  const challengesOf = challengeLookup(state);
  const epoch = epochOf(height, p);
  const ranked: {
    publicKey: Uint8Array;
    tie: Uint8Array;
    address: Uint8Array;
    bound: bigint;
    backing: bigint;
  }[] = [];
  for (const address of validatorCandidates(state)) {
    const key = getValidatorKey(state, address);
    if (!hasConsensusKey(address, key) || key.tombstonedAt > 0n) continue;
    const backing = bondBacking(getBond(state, address).bonded, params);
    if (backing === 0n) continue;
    const rated = ownerRatedPower(state, address);
    const bound = rated < backing ? rated : backing;
    if (bound === 0n) continue;
    ranked.push({
      publicKey: key.publicKey,
      tie: validatorTieBreak(seed, key.publicKey),
      address,
      bound,
      backing,
    });
  }
  ranked.sort((a, b) => compareValidatorRank({ ...a, power: a.bound }, { ...b, power: b.bound }));
  const top: RankedValidator[] = [];
  for (const c of ranked) {
    // Nobody left can beat the last place: its bound is at most this one's (strict, for ties).
    if (top.length === maxValidators && top[maxValidators - 1]!.power > c.bound) break;
    const seat = seatPowerOf(state, c.address, height, p, challengesOf, epoch);
    const power = seat < c.backing ? seat : c.backing;
    if (power === 0n) continue;
    const v = { publicKey: c.publicKey, tie: c.tie, power };
    let i = top.length;
    while (i > 0 && compareValidatorRank(v, top[i - 1]!) < 0) i--;
    if (i >= maxValidators) continue;
    top.splice(i, 0, v);
    if (top.length > maxValidators) top.pop();
  }
  return top.map(({ publicKey, power }) => ({ publicKey, power }));
}

// ---- Stored sets ----

/** Sets of this many recent epochs are kept (the next one, the current one and two before). */
export const VALIDATOR_SET_RING = 4n;
/** Evidence may be this many epochs older than the block that includes it (within unbonding). */
export const EVIDENCE_MAX_AGE_EPOCHS = 2n;

interface StoredSet {
  epoch: bigint;
  /** Empty = the genesis validators. */
  validators: Validator[];
}

const storedSetCodec: Codec<StoredSet> = struct<StoredSet>('EpochValidators', {
  epoch: u64,
  validators: validatorListCodec,
});

const LATEST_KEY = Uint8Array.of(VALIDATOR_SETS, 0x00);
const GENESIS_SET_KEY = Uint8Array.of(VALIDATOR_SETS, 0x02);

function ringKey(epoch: bigint): Uint8Array {
  return Uint8Array.of(VALIDATOR_SETS, 0x01, Number(epoch % VALIDATOR_SET_RING));
}

function getStoredSet(state: StateReader, epoch: bigint): StoredSet | null {
  const raw = state.get(ringKey(epoch));
  return raw ? decode(storedSetCodec, raw) : null;
}

/** The epoch of the newest stored set, or null before the first epoch boundary. */
export function latestValidatorSetEpoch(state: StateReader): bigint | null {
  const raw = state.get(LATEST_KEY);
  return raw ? decode(u64, raw) : null;
}

export interface GenesisValidatorsLike {
  validators: readonly { publicKey: Uint8Array; power?: bigint }[];
}

/** The genesis validators carry equal weight (1 each) unless the genesis gives them a power. */
export function genesisValidatorList(genesis: GenesisValidatorsLike): Validator[] {
  return genesis.validators.map((v) => ({ publicKey: v.publicKey, power: v.power ?? 1n }));
}

export function genesisValidatorSet(genesis: GenesisValidatorsLike): ValidatorSet {
  return new ValidatorSet(genesisValidatorList(genesis));
}

/** Written with the genesis state, so that the state alone can check evidence of epoch 0. */
export function putGenesisValidators(state: StateOverlay, genesis: GenesisValidatorsLike): void {
  state.set(GENESIS_SET_KEY, encode(validatorListCodec, genesisValidatorList(genesis)));
}

function genesisSetOf(state: StateReader, genesis: GenesisValidatorsLike | null): ValidatorSet | null {
  const raw = state.get(GENESIS_SET_KEY);
  if (raw) return new ValidatorSet(decode(validatorListCodec, raw));
  return genesis ? genesisValidatorSet(genesis) : null;
}

/**
 * The set of `epoch` if it is still known: null for an epoch whose set is not computed yet or was
 * dropped from the ring (too old), or when it is the genesis set and neither the state nor
 * `genesis` has it.
 */
export function validatorSetForEpoch(
  state: StateReader,
  genesis: GenesisValidatorsLike | null,
  epoch: bigint,
): ValidatorSet | null {
  const latest = latestValidatorSetEpoch(state);
  if (latest === null) return genesisSetOf(state, genesis);
  if (epoch > latest || latest - epoch >= VALIDATOR_SET_RING) return null;
  const stored = getStoredSet(state, epoch);
  if (stored === null) return genesisSetOf(state, genesis); // before the first boundary
  if (stored.epoch !== epoch) return null;
  return stored.validators.length === 0 ? genesisSetOf(state, genesis) : new ValidatorSet(stored.validators);
}

/** The set that votes on heights of epochOf(height) (null as for validatorSetForEpoch). */
export function validatorSetForHeight(
  state: StateReader,
  genesis: GenesisValidatorsLike | null,
  height: bigint,
): ValidatorSet | null {
  return validatorSetForEpoch(state, genesis, epochOf(height, getPociParams(state)));
}

/**
 * The set that must sign the next block: with `state` the state after the head, the set of the
 * epoch of head + 1 (at an epoch's last block the next epoch's set is already stored).
 */
export function validatorSetAt(state: StateReader, genesis: GenesisValidatorsLike): ValidatorSet {
  const latest = latestValidatorSetEpoch(state);
  if (latest === null) return genesisSetOf(state, genesis)!;
  return validatorSetForEpoch(state, genesis, latest)!;
}

/**
 * What an empty computed set keeps for the next epoch (CONSENSUS: docs/consensus.md, Fallbacks):
 * the set of `epoch` (the ending one), or the genesis validators when that is the genesis set
 * (stored as [], or no set stored yet), less the validators that may no longer serve:
 * - tombstoned ones (the genesis set's too: stored as [], it used to keep a tombstoned genesis
 *   validator for as long as no bonded set was computed, free to equivocate again, since evidence
 *   against a tombstoned validator is refused);
 * - ones that hold their seat by a bond (a registered consensus key) and have less than
 *   minValidatorBond bonded now: kept epoch after epoch, they voted on with nothing at stake once
 *   their unbonding was released, and their equivocation slashed 0. Genesis validators (keys no
 *   account registered) hold their seat by the genesis, not a bond, and are not asked for one.
 * Whoever is left serves; if nobody is, the tombstone filter alone, and if nobody is left even then
 * the kept set as it is: a chain with no validator could never make another block. So the bond
 * rule yields to liveness when every kept validator unbonded: they serve on unbonded (their
 * unbonding slashable for its 3 epochs) until a computed set replaces them.
 * Each serves with the weight it had, capped at what its bond backs now (keptWeight).
 * The list is returned as [] (the genesis set, as stored before) when it is the genesis set whole,
 * every weight unchanged.
 */
/**
 * Whether a validator of `epoch`'s stored set, not tombstoned, still holds at least the minimum
 * bond (or has no account: a genesis seat), as keptValidators' `staked` reads it.
 */
function keptStillBonded(state: StateReader, epoch: bigint): boolean {
  const previous = getStoredSet(state, epoch);
  if (!previous || previous.epoch !== epoch || previous.validators.length === 0) return true;
  const { minValidatorBond } = getConsensusParams(state);
  return previous.validators.some((v) => {
    if (isTombstoned(state, v.publicKey)) return false;
    const account = state.get(consensusKeyOwnerKey(v.publicKey));
    return account === undefined || getBond(state, account).bonded >= minValidatorBond;
  });
}

function keptValidators(state: StateReader, epoch: bigint): Validator[] {
  const previous = getStoredSet(state, epoch);
  let kept = previous && previous.epoch === epoch ? previous.validators : [];
  const genesis = kept.length === 0;
  if (genesis) {
    const raw = state.get(GENESIS_SET_KEY);
    // A state written before the genesis set was kept in it: nothing to filter against.
    if (!raw) return [];
    kept = decode(validatorListCodec, raw);
  }
  const params = getConsensusParams(state);
  const honest = kept.filter((v) => !isTombstoned(state, v.publicKey));
  const staked = honest.filter((v) => {
    const account = state.get(consensusKeyOwnerKey(v.publicKey));
    return account === undefined || getBond(state, account).bonded >= params.minValidatorBond;
  });
  const chosen = staked.length > 0 ? staked : honest.length > 0 ? honest : kept;
  const serving = chosen.map((v) => ({ publicKey: v.publicKey, power: keptWeight(state, v, params) }));
  const whole = serving.length === kept.length && serving.every((v, i) => v.power === kept[i]!.power);
  return genesis && whole ? [] : serving;
}

/**
 * CONSENSUS (docs/consensus.md, Fallbacks): the weight a kept validator votes with in the next
 * epoch: its weight in the set it is kept from, but never more than its bond backs now
 * (bondBacking). Its weight came from a bond that may since have been mostly unbonded; kept as it
 * was, it voted with influence its stake no longer backed, and an equivocation slashed a bond far
 * smaller than the weight it wielded. Seat power is no bound here: a fresh computation came out
 * empty, so it weighs every candidate at 0. At least 1, so the liveness fallback (every kept
 * validator below the minimum) still forms a set, each with 1: below the minimum a bond backs
 * nothing, as for a computed set. Counted as bonded ÷ uncPerPowerUnit there, a validator keeping a
 * sliver bonded outvoted, alone, peers that had unbonded whole (their stake slashable all the same).
 * A genesis validator whose key no account registered has no bond: its seat is the genesis's, and
 * so is its weight.
 */
function keptWeight(
  state: StateReader,
  v: Validator,
  params: Pick<ConsensusParams, 'minValidatorBond' | 'uncPerPowerUnit'>,
): bigint {
  const account = state.get(consensusKeyOwnerKey(v.publicKey));
  if (account === undefined) return v.power;
  const backing = bondBacking(getBond(state, account).bonded, params);
  const power = backing < v.power ? backing : v.power;
  return power > 0n ? power : 1n;
}

/**
 * End-of-block hook (BlockExecutor.finish): at the last block of an epoch, computes and stores the
 * next epoch's set, its ties broken with `beacon`, that block's own beacon (BlockContext.beacon,
 * verified against the block's proposer before the block runs). O(1) on every other block.
 */
export function endBlockValidators(state: StateOverlay, height: bigint, beacon: Uint8Array): void {
  const p = getPociParams(state);
  const next = epochOf(height + 1n, p);
  if (height === 0n || next === epochOf(height, p)) return;
  let validators = computeValidatorSet(state, height + 1n, beacon);
  if (validators.length > 0 && handoverShortfall(validators, getHandoverParams(state)) !== null) {
    // A computed set short of the handover bar is not stored, in the genesis era (audit G1) and
    // after it (review of G1): the set that serves goes on, as for an empty computed set. After
    // the handover the old rule stored any non-empty set, so one epoch in which every honest
    // validator's measured seat power fell to 0 (its chips' challenges missed: an outage, a miner
    // release that broke heartbeats, its heartbeats crowded out) handed the chain to one
    // minimum-bond key whose chip did answer, which as sole proposer then kept it for good.
    // Except after the handover when no validator of the set serving holds a bond any more (read5core,
    // CONSENSUS CHANGE): keptValidators would keep them by its liveness fallback, each at weight 1
    // with nothing at stake, for as long as the bonded candidates stay short of the bar (for good,
    // if they left and stopped their nodes). A bonded set, however small, replaces them, as any
    // non-empty computed set did before the bar; while one kept validator is still bonded, the bar holds.
    if (handedOverAt(state) === null || keptStillBonded(state, next - 1n)) validators = [];
  } else if (validators.length > 0 && handedOverAt(state) === null) {
    state.set(HANDED_OVER_KEY, encode(u64, next));
  }
  if (validators.length === 0) validators = keptValidators(state, next - 1n);
  state.set(ringKey(next), encode(storedSetCodec, { epoch: next, validators }));
  state.set(LATEST_KEY, encode(u64, next));
}

// ---- Proofs for light clients ----

/**
 * The state keys a light client proves against the state root of an epoch's last block to learn
 * the set that signs the next epoch (docs/rpc.md, unc_getValidatorSetProof): the ring slot the
 * boundary wrote for `nextEpoch`, the genesis set (what a stored [] stands for), and the PoCI
 * parameters (their epochBlocks places the next boundary).
 */
export function validatorSetProofKeys(nextEpoch: bigint): {
  set: Uint8Array;
  genesis: Uint8Array;
  params: Uint8Array;
} {
  return { set: ringKey(nextEpoch), genesis: GENESIS_SET_KEY.slice(), params: POCI_PARAMS_KEY.slice() };
}

/** The state key of the newest stored set's epoch (changes exactly at an epoch boundary). */
export const LATEST_VALIDATOR_SET_KEY: Uint8Array = LATEST_KEY;

/** Decodes a ring slot's value: the epoch it was written for and its validators ([] = genesis). */
export function decodeStoredValidatorSet(raw: Uint8Array): { epoch: bigint; validators: Validator[] } {
  return decode(storedSetCodec, raw);
}

/** Decodes the genesis set's stored value. */
export function decodeValidatorList(raw: Uint8Array): Validator[] {
  return decode(validatorListCodec, raw);
}
