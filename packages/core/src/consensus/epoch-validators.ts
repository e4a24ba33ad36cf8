/**
 * The validator set of each epoch, from the state (PROTOCOL.md §6): the top N accounts by the
 * online attested power of the chips they own, among those that posted a validator bond. The
 * bonding account's Ed25519 key (the signer of its bond transaction) is its consensus key, and its
 * voting weight is that online power at the epoch start.
 *
 * The set is computed once, at the end of the last block of an epoch (so the state after that
 * block already names who must sign the first block of the next one) and stored in a ring of the
 * last few epochs, so every node reads the same set cheaply and evidence of a recent epoch can be
 * checked against the set that was in force. Until a computed set exists (or whenever one comes
 * out empty) the previous set stays; the first is the genesis validators.
 *
 * Cost. Candidates and chips are enumerable through state indexes (consensus/indexed-set.ts): the
 * bonded candidates, and per owner its chips with their total rated power, kept up to date O(1)
 * per bond, unbond, registration, transfer and deregistration. At the boundary every candidate's
 * rated power is read (one access each), candidates are visited in order of rated power (an upper
 * bound of online power), and a candidate's chips are evaluated (liveness is lazy, docs/poci.md:
 * about S·(K/S + 2) hashes per chip) only until N candidates are found whose online power beats the
 * next one's upper bound. So the work is O(candidates) accesses plus the chips of the candidates
 * that can still make the cut, typically the top N, never all chips of the chain.
 */
import { compareBytes, equalBytes } from '../bytes.js';
import { addressFromPublicKey } from '../crypto/address.js';
import { type Codec, decode, encode, struct, u32, u64 } from '../encoding/codec.js';
import { publicKey as publicKeyCodec } from '../encoding/primitives.js';
import { effectiveStatus, getChip } from '../poci/chips.js';
import { type ChallengeLookup, challengeLookup, epochOf, isOnline } from '../poci/liveness.js';
import { getPociParams, type PociParams } from '../poci/params.js';
import { getBond } from '../rewards/bonds.js';
import { StateSpace } from '../state/accounts.js';
import type { StateOverlay, StateReader } from '../state/store.js';
import { IndexedSet } from './indexed-set.js';
import { MAX_VALIDATORS, type Validator, ValidatorSet, validatorListCodec } from './validators.js';

// ---- Parameters ----

export interface ConsensusParams {
  /** N: validators per epoch (PROTOCOL.md §6, default 100). */
  maxValidators: number;
  /** Basis points of an equivocating validator's bond (bonded + unbonding) that are burned. */
  equivocationSlashBps: bigint;
}

export const DEFAULT_CONSENSUS_PARAMS: Readonly<ConsensusParams> = Object.freeze({
  maxValidators: 100,
  equivocationSlashBps: 500n,
});

export const consensusParamsCodec: Codec<ConsensusParams> = struct<ConsensusParams>('ConsensusParams', {
  maxValidators: u32,
  equivocationSlashBps: u64,
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

// ---- Candidates: bonded accounts and their consensus keys ----

/** An account's consensus key, stored with its first bond; never deleted (tombstones last). */
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

function validatorKeyKey(address: Uint8Array): Uint8Array {
  const k = new Uint8Array(22);
  k[0] = StateSpace.validatorCandidate;
  k[1] = 0x03;
  k.set(address, 2);
  return k;
}

export function getValidatorKey(state: StateReader, address: Uint8Array): ValidatorKeyRecord | null {
  const raw = state.get(validatorKeyKey(address));
  return raw ? decode(validatorKeyCodec, raw) : null;
}

function putValidatorKey(state: StateOverlay, address: Uint8Array, r: ValidatorKeyRecord): void {
  state.set(validatorKeyKey(address), encode(validatorKeyCodec, r));
}

/** Called for every bond action: remembers the signer's key and makes it a candidate. */
export function noteValidatorBond(state: StateOverlay, publicKey: Uint8Array): void {
  const address = addressFromPublicKey(publicKey);
  const record = getValidatorKey(state, address);
  if (!record) putValidatorKey(state, address, { publicKey: publicKey.slice(), tombstonedAt: 0n });
  if (record && record.tombstonedAt !== 0n) return;
  candidates.add(state, NO_GROUP, address);
}

/** Called after an unbond: an account with nothing bonded any more is no candidate. */
export function noteValidatorUnbond(state: StateOverlay, address: Uint8Array): void {
  if (getBond(state, address).bonded === 0n) candidates.remove(state, NO_GROUP, address);
}

/** Removes a validator for good (equivocation): it is left out of every set computed from now on. */
export function tombstoneValidator(state: StateOverlay, publicKey: Uint8Array, height: bigint): void {
  const address = addressFromPublicKey(publicKey);
  putValidatorKey(state, address, { publicKey: publicKey.slice(), tombstonedAt: height });
  candidates.remove(state, NO_GROUP, address);
}

export function isTombstoned(state: StateReader, publicKey: Uint8Array): boolean {
  const r = getValidatorKey(state, addressFromPublicKey(publicKey));
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

/** Sum of the rated power of the chips in `owner`'s index: an upper bound of its online power. */
export function ownerRatedPower(state: StateReader, owner: Uint8Array): bigint {
  return ownerChips.head(state, owner).weight;
}

type ChipEvent =
  | { type: 'chipRegistered'; chipId: Uint8Array; owner: Uint8Array; power: bigint }
  | { type: 'chipTransferred'; chipId: Uint8Array; from: Uint8Array; to: Uint8Array }
  | { type: 'chipDeregistered'; chipId: Uint8Array; owner: Uint8Array };

/**
 * Keeps the owner index in step with what chip actions did, read from their events (the events
 * are the record of every ownership change). Returns the events unchanged.
 */
export function indexChipEvents<E extends { type: string }>(state: StateOverlay, events: E[]): E[] {
  for (const raw of events) {
    const e = raw as unknown as ChipEvent;
    switch (e.type) {
      case 'chipRegistered':
        ownerChips.add(state, e.owner, e.chipId, e.power);
        break;
      case 'chipTransferred': {
        const power = getChip(state, e.chipId)?.power ?? 0n;
        ownerChips.remove(state, e.from, e.chipId, power);
        ownerChips.add(state, e.to, e.chipId, power);
        break;
      }
      case 'chipDeregistered':
        ownerChips.remove(state, e.owner, e.chipId, getChip(state, e.chipId)?.power ?? 0n);
        break;
    }
  }
  return events;
}

/** Rated power of `owner`'s active chips that are online at `height` (docs/poci.md). */
export function onlinePowerOf(
  state: StateReader,
  owner: Uint8Array,
  height: bigint,
  p: PociParams = getPociParams(state),
  challengesOf: ChallengeLookup = challengeLookup(state),
): bigint {
  let power = 0n;
  for (const chipId of chipsOfOwner(state, owner)) {
    const chip = getChip(state, chipId);
    if (!chip || !equalBytes(chip.owner, owner)) continue;
    if (effectiveStatus(state, chip).status !== 'active') continue;
    if (isOnline(chip, height, p, challengesOf)) power += chip.power;
  }
  return power;
}

// ---- The computation ----

/** Canonical rank: more power first, then the smaller public key, so ties never depend on order. */
export function compareValidatorRank(a: Validator, b: Validator): number {
  if (a.power !== b.power) return a.power > b.power ? -1 : 1;
  return compareBytes(a.publicKey, b.publicKey);
}

/**
 * The top `maxValidators` bonded candidates by online power at `height` (the first height of the
 * epoch the set is for), in rank order. Candidates without online power are left out, so the
 * result may be empty.
 */
export function computeValidatorSet(state: StateReader, height: bigint): Validator[] {
  const { maxValidators } = getConsensusParams(state);
  const p = getPociParams(state);
  const challengesOf = challengeLookup(state);
  const ranked: { publicKey: Uint8Array; address: Uint8Array; bound: bigint }[] = [];
  for (const address of validatorCandidates(state)) {
    const key = getValidatorKey(state, address);
    if (!key || key.tombstonedAt > 0n) continue;
    if (getBond(state, address).bonded === 0n) continue;
    const bound = ownerRatedPower(state, address);
    if (bound === 0n) continue;
    ranked.push({ publicKey: key.publicKey, address, bound });
  }
  ranked.sort((a, b) => compareValidatorRank({ ...a, power: a.bound }, { ...b, power: b.bound }));
  const top: Validator[] = [];
  for (const c of ranked) {
    // Nobody left can beat the last place: its bound is at most this one's (strict, for ties).
    if (top.length === maxValidators && top[maxValidators - 1]!.power > c.bound) break;
    const power = onlinePowerOf(state, c.address, height, p, challengesOf);
    if (power === 0n) continue;
    const v = { publicKey: c.publicKey, power };
    let i = top.length;
    while (i > 0 && compareValidatorRank(v, top[i - 1]!) < 0) i--;
    if (i >= maxValidators) continue;
    top.splice(i, 0, v);
    if (top.length > maxValidators) top.pop();
  }
  return top;
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
 * End-of-block hook (BlockExecutor.finish): at the last block of an epoch, computes and stores the
 * next epoch's set. O(1) on every other block.
 */
export function endBlockValidators(state: StateOverlay, height: bigint): void {
  const p = getPociParams(state);
  const next = epochOf(height + 1n, p);
  if (height === 0n || next === epochOf(height, p)) return;
  let validators = computeValidatorSet(state, height + 1n);
  if (validators.length === 0) {
    const previous = getStoredSet(state, next - 1n);
    const kept = previous && previous.epoch === next - 1n ? previous.validators : [];
    // A tombstoned validator does not come back with the kept set, unless nobody else is left:
    // a chain with no validator could never make another block.
    const honest = kept.filter((v) => !isTombstoned(state, v.publicKey));
    validators = honest.length > 0 ? honest : kept;
  }
  state.set(ringKey(next), encode(storedSetCodec, { epoch: next, validators }));
  state.set(LATEST_KEY, encode(u64, next));
}
