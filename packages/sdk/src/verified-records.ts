/**
 * Chips and leases checked against a verified header (LightClient.verifyChip / verifyLease): the
 * record is proven under the state key the CLIENT derives from the id it asked for (chipKey,
 * leaseKey), decoded with core's canonical codec, and every other record an answer's derived
 * field depends on (a chip's effective status, a lease's offer endpoint) is read through
 * `ProvenState`, which runs core's own function (effectiveStatus, getOffer) and proves each key
 * that function asks for: the node's `related` entries are only looked up by those keys. Each
 * field the node reported that the records decide is compared with the proven value, and a record
 * the node calls absent must come with a proof of its absence. Docs: docs/rpc.md "Light clients".
 */
import {
  answeredIn,
  CHALLENGE_HISTORY_EPOCHS,
  type Chip,
  type ChipStatusName,
  challengeLookup,
  challengesAsOf,
  chipClass,
  chipCodec,
  consecutiveMisses,
  decode,
  effectiveStatus,
  encodeAddress,
  epochOf,
  equalBytes,
  escrowUntil,
  getMarketParams,
  getOffer,
  getPociParams,
  heartbeatOperatorAt,
  LEASE_STATUS_NAMES,
  type Lease,
  LeaseStatus,
  leaseCodec,
  leaseCostThrough,
  leaseEndsAt,
  type MarketParams,
  type Offer,
  type StateReader,
  toHex,
  uncreditedIn,
} from '@unc/core';
import { decodeField, hexField, ProofError, provenValue } from './proof-fields.js';
import type { ChipJson, LeaseJson, ProvenKeyEntryJson, RecordProofJson, SlotJson } from './views.js';

/** What verifyRecord needs of the light client: a header verified by its validators' commit. */
export type HeaderVerifier<H extends { header: { stateRoot: Uint8Array; time: bigint } }> = (
  height: number,
) => Promise<H>;

/**
 * What a caller accepts of a proven record beyond the proofs. The node picks the height it answers
 * at, so a true but old state (a lease since closed, TLS pins since rotated, a chip since revoked)
 * verifies like a fresh one unless the caller bounds it: `notBefore` is the oldest block time
 * (ms) accepted, from the caller's own clock (e.g. now - 10 minutes); a record read at an older
 * block is refused (`STALE`). Only the verified header's time is compared, never the node's word.
 */
export interface RecordFreshness {
  notBefore?: bigint;
}

/**
 * More related entries than any answer needs: a chip's status reads at most 10 keys, its liveness
 * the PoCI parameters, its owner's heartbeat operator and its class's challenges of at most
 * CHALLENGE_HISTORY_EPOCHS epochs (a chip silent that long).
 */
const MAX_RELATED = 32 + Number(CHALLENGE_HISTORY_EPOCHS);

/**
 * A StateReader over the node's `related` entries: each key read must have an entry whose Merkle
 * proof matches the verified root for that key; an entry for a key never read is ignored.
 */
export class ProvenState implements StateReader {
  private readonly entries = new Map<string, ProvenKeyEntryJson>();

  constructor(
    private readonly root: Uint8Array,
    related: unknown,
    private readonly what: string,
  ) {
    if (related === undefined) return;
    if (!Array.isArray(related)) throw new ProofError(`${what}.related is not a list`, 'MALFORMED');
    if (related.length > MAX_RELATED)
      throw new ProofError(`${what}.related has more than ${MAX_RELATED} entries`, 'MALFORMED');
    for (const [i, e] of related.entries()) {
      if (typeof e !== 'object' || e === null)
        throw new ProofError(`${what}.related[${i}] is not an object`, 'MALFORMED');
      const id = toHex(hexField((e as ProvenKeyEntryJson).key, `${what}.related[${i}].key`));
      // The first entry for a key is the one checked: a second cannot make a bad first pass.
      if (!this.entries.has(id)) this.entries.set(id, e as ProvenKeyEntryJson);
    }
  }

  get(key: Uint8Array): Uint8Array | undefined {
    const id = toHex(key);
    const entry = this.entries.get(id);
    if (!entry) {
      throw new ProofError(
        `${this.what}: no proof of state key ${id}, which the answer depends on`,
        'MISSING_PROOF',
      );
    }
    return provenValue(this.root, key, entry, `${this.what}: state key ${id}`) ?? undefined;
  }
}

/** Runs a core function over proven state; anything but a ProofError it throws is a malformed record. */
function derive<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ProofError) throw err;
    throw new ProofError(`${what}: ${(err as Error).message}`, 'MALFORMED');
  }
}

/**
 * The record under `key` (derived by the caller from the id it asked for) at a verified header:
 * the header at `json.height` is verified, the node's stateRoot must be its root, and the record's
 * proof is checked under `key`. Returns the proven value (null: proven absent) and the related
 * entries as a proven reader.
 */
export async function verifyRecord<H extends { header: { stateRoot: Uint8Array; time: bigint } }>(
  verifyHeight: HeaderVerifier<H>,
  json: RecordProofJson,
  key: Uint8Array,
  what: string,
  freshness: RecordFreshness = {},
): Promise<{ value: Uint8Array | null; header: H; state: ProvenState }> {
  if (typeof json !== 'object' || json === null)
    throw new ProofError(`${what} is not an object`, 'MALFORMED');
  if (json.proof === undefined) throw new ProofError(`${what} came without a proof`, 'MISSING_PROOF');
  if (!Number.isSafeInteger(json.height) || (json.height as number) < 1)
    throw new ProofError(`${what}.height is not a positive integer`, 'MALFORMED');
  const header = await verifyHeight(json.height as number);
  const root = header.header.stateRoot;
  if (json.stateRoot !== toHex(root)) {
    throw new ProofError(
      `${what}.stateRoot ${String(json.stateRoot)} is not the verified header's`,
      'MISMATCH',
    );
  }
  checkFresh(header.header.time, freshness, what, json.height as number);
  const value = provenValue(root, key, { value: json.value as string | null, proof: json.proof }, what);
  return { value, header, state: new ProvenState(root, json.related, what) };
}

/** Refuses (`STALE`) a read at a verified block whose time is before `freshness.notBefore`. */
export function checkFresh(time: bigint, freshness: RecordFreshness, what: string, height: number): void {
  const { notBefore } = freshness;
  if (notBefore !== undefined && time < notBefore) {
    throw new ProofError(
      `${what} was read at block ${height} of ${isoTime(time)}, older than the oldest accepted (${isoTime(notBefore)}, from this machine's clock): the node may be serving an old state (or lags), the chain may have stalled, or this machine's clock may be ahead; ask another node, check the clock, or accept an older one`,
      'STALE',
    );
  }
}

function isoTime(ms: bigint): string {
  const d = new Date(Number(ms));
  return Number.isNaN(d.getTime()) ? `${ms} ms` : d.toISOString();
}

/** The proof of absence a NOT_FOUND answer to a `proof` request carries (`error.data.absence`). */
export function absenceOf(err: unknown): RecordProofJson | null {
  if (typeof err !== 'object' || err === null) return null;
  const e = err as { reason?: unknown; data?: unknown };
  if (e.reason !== 'NOT_FOUND') return null;
  const data = e.data as { absence?: unknown } | undefined;
  const absence = typeof data === 'object' && data !== null ? data.absence : undefined;
  if (typeof absence !== 'object' || absence === null) {
    throw new ProofError(
      `the node says it does not exist, with no proof of absence: ${(err as Error).message}`,
      'NOT_PROVEN',
    );
  }
  return absence as RecordProofJson;
}

function same(what: string, field: string, reported: unknown, proven: unknown): void {
  if (JSON.stringify(reported) !== JSON.stringify(proven)) {
    throw new ProofError(
      `${what}: the node reported ${field} ${JSON.stringify(reported)}, the proven record says ${JSON.stringify(proven)}`,
      'MISMATCH',
    );
  }
}

/** The liveness fields of a chip answer (ChipJson), as of the block `head`. */
export type ChipLivenessJson = Pick<
  ChipJson,
  'online' | 'consecutiveMisses' | 'slots' | 'challengeClass' | 'heartbeatOperator'
>;

/**
 * A chip's liveness as of the committed block `head`, from state alone: its class's challenges
 * (core challengesAsOf, consecutiveMisses over the recorded challenge lists), online by the miss
 * rule while active, and its owner's heartbeat operator in force at the next block (the first a
 * heartbeat sent now can land in). One function for the node's answer (unc_getChip) and the light
 * client's check of it, which runs it over proven state (every key it reads must be proven).
 */
export function chipLivenessJson(
  state: StateReader,
  chip: Chip,
  status: ChipStatusName,
  head: { height: bigint; beacon: Uint8Array },
): ChipLivenessJson {
  const p = getPociParams(state);
  const height = head.height;
  const current = epochOf(height, p);
  const cls = chipClass(chip.chipId, p);
  // Only challenges that exist: blocks already committed that drew the chip's class (the head's own
  // is answerable in the next block, so listed at once; nothing about future blocks is known).
  const slots: SlotJson[] = [];
  for (const e of [current - 1n, current]) {
    if (e < chip.firstEpoch || e < 0n) continue;
    challengesAsOf(state, e, cls, head, p).forEach((h, slot) => {
      const windowEnd = h + p.answerWindowBlocks;
      // An answer accepted without credit (asleep or rebooted) is a miss, and cannot be sent again.
      const outcome: SlotJson['status'] = answeredIn(chip, e, slot)
        ? 'answered'
        : uncreditedIn(chip, e, slot) || windowEnd < height + 1n
          ? 'missed'
          : 'open';
      slots.push({
        epoch: Number(e),
        slot,
        height: Number(h),
        status: outcome,
        windowEnd: Number(windowEnd),
      });
    });
  }
  slots.sort((a, b) => a.height - b.height);
  const misses = consecutiveMisses(chip, height, p, challengeLookup(state), cls);
  const operator = heartbeatOperatorAt(state, chip.owner, height + 1n);
  return {
    online: status === 'active' && misses < p.offlineAfterMisses,
    consecutiveMisses: misses,
    slots,
    challengeClass: Number(cls),
    heartbeatOperator: operator ? encodeAddress(operator) : null,
  };
}

export interface ProvenChip {
  chip: Chip;
  /** core effectiveStatus over proven state: the record's status, a revoked certificate or key. */
  status: ChipStatusName;
  statusReason: string;
  /**
   * Liveness at the verified header's block, from proven state: online by the miss rule while
   * active (not yet "proven online": `chip.lastAnsweredAt > 0` says it answered since its
   * registration), its consecutive misses, and the owner's heartbeat operator (an address, null:
   * none) in force at the next block.
   */
  online: boolean;
  consecutiveMisses: number;
  heartbeatOperator: string | null;
}

/** The chip record's value decoded and checked against what the node reported of it. */
export function checkChip(
  asked: Uint8Array,
  value: Uint8Array,
  state: StateReader,
  json: ChipJson,
  /**
   * The verified header: its height and beacon for the liveness, its block time for the status (a
   * chip past its certificates' end reads revoked, core effectiveStatus).
   */
  head: { height: bigint; beacon: Uint8Array; time: bigint },
): ProvenChip {
  const what = `chip ${toHex(asked)}`;
  const chip = decodeField((b) => decode(chipCodec, b), value, `${what} record`);
  if (!equalBytes(chip.chipId, asked))
    throw new ProofError(`${what}: the proven record is of chip ${toHex(chip.chipId)}`, 'WRONG_RECORD');
  if (json.chipId !== toHex(asked))
    throw new ProofError(
      `the node answered for chip ${String(json.chipId)}, not ${toHex(asked)}`,
      'WRONG_RECORD',
    );
  const { status, reason } = derive(`${what} status`, () => effectiveStatus(state, chip, head.time));
  same(what, 'owner', json.owner, encodeAddress(chip.owner));
  same(what, 'vendorId', json.vendorId, chip.vendorId);
  same(what, 'modelId', json.modelId, chip.modelId);
  same(what, 'profile', json.profile, chip.profile);
  same(what, 'power', json.power, chip.power.toString());
  same(what, 'certSerials', json.certSerials, chip.certSerials);
  if (json.keyMaterial !== undefined) same(what, 'keyMaterial', json.keyMaterial, toHex(chip.keyMaterial));
  same(what, 'status', json.status, status);
  same(what, 'statusReason', json.statusReason, reason);
  same(what, 'registeredAt', json.registeredAt, Number(chip.registeredAt));
  same(what, 'firstEpoch', json.firstEpoch, Number(chip.firstEpoch));
  same(what, 'slotsAnswered', json.slotsAnswered, Number(chip.slotsAnswered));
  same(what, 'slotsMissed', json.slotsMissed, Number(chip.slotsMissed));
  same(what, 'rewardsEarned', json.rewardsEarned, chip.rewardsEarned.toString());
  same(what, 'lastAnsweredAt', json.lastAnsweredAt, Number(chip.lastAnsweredAt));
  same(
    what,
    'tpmClock',
    json.tpmClock,
    chip.tpmClock
      ? {
          clock: chip.tpmClock.clock.toString(),
          resetCount: chip.tpmClock.resetCount,
          restartCount: chip.tpmClock.restartCount,
        }
      : null,
  );
  // Liveness and the heartbeat operator from proven state, as the node computes them at its head.
  const live = derive(`${what} liveness`, () => chipLivenessJson(state, chip, status, head));
  same(what, 'online', json.online, live.online);
  same(what, 'consecutiveMisses', json.consecutiveMisses, live.consecutiveMisses);
  same(what, 'slots', json.slots, live.slots);
  same(what, 'challengeClass', json.challengeClass, live.challengeClass);
  // Absent from nodes older than the field; checked whenever reported (and proven either way).
  if (json.heartbeatOperator !== undefined)
    same(what, 'heartbeatOperator', json.heartbeatOperator, live.heartbeatOperator);
  return {
    chip,
    status,
    statusReason: reason,
    online: live.online,
    consecutiveMisses: live.consecutiveMisses,
    heartbeatOperator: live.heartbeatOperator ?? null,
  };
}

export type LeaseStatusJson = LeaseJson['status'];

export interface ProvenLease {
  lease: Lease;
  /** The lease's offer (null: proven absent), whose endpoint and TLS fingerprints the renter dials. */
  offer: Offer | null;
  endpoint: string;
  tlsFingerprints: string[];
  /** As unc_getLease computes it, at the verified header's block time. */
  status: LeaseStatusJson;
  /**
   * The market parameters at the verified block (core getMarketParams over proven state): when a
   * dispute of a request on this lease is first taken (`disputeWaitMs`), and how long after its end
   * receipts and disputes may be posted (`receiptWindowMs`).
   */
  market: MarketParams;
}

/** The lease record's value decoded, its offer read through proven state, both checked against the answer. */
export function checkLease(
  asked: Uint8Array,
  value: Uint8Array,
  state: StateReader,
  time: bigint,
  json: LeaseJson,
): ProvenLease {
  const what = `lease ${toHex(asked)}`;
  const lease = decodeField((b) => decode(leaseCodec, b), value, `${what} record`);
  if (!equalBytes(lease.id, asked))
    throw new ProofError(`${what}: the proven record is of lease ${toHex(lease.id)}`, 'WRONG_RECORD');
  if (json.id !== toHex(asked))
    throw new ProofError(
      `the node answered for lease ${String(json.id)}, not ${toHex(asked)}`,
      'WRONG_RECORD',
    );
  const offer = derive(`${what} offer`, () => getOffer(state, lease.offerId));
  const market = derive(`${what} market parameters`, () => getMarketParams(state));
  const closed = lease.status === LeaseStatus.closed;
  // The node's own rule (market-api.ts leaseJson), at the block time of the head it read.
  const status: LeaseStatusJson = closed
    ? 'closed'
    : time >= leaseEndsAt(lease)
      ? 'ended'
      : (LEASE_STATUS_NAMES[lease.status] ?? 'active');
  const endpoint = offer?.endpoint ?? '';
  const tlsFingerprints = offer?.tlsFingerprints.map(toHex) ?? [];
  same(what, 'status', json.status, status);
  same(what, 'offerId', json.offerId, toHex(lease.offerId));
  same(what, 'chipId', json.chipId, toHex(lease.chipId));
  same(what, 'provider', json.provider, encodeAddress(lease.provider));
  same(what, 'renter', json.renter, encodeAddress(lease.renter));
  same(what, 'renterPublicKey', json.renterPublicKey, toHex(lease.renterPublicKey));
  same(what, 'endpoint', json.endpoint, endpoint);
  same(what, 'tlsFingerprints', json.tlsFingerprints, tlsFingerprints);
  same(what, 'pricePerHour', json.pricePerHour, lease.pricePerHour.toString());
  same(what, 'hours', json.hours, lease.hours);
  same(what, 'deposit', json.deposit, lease.deposited.toString());
  same(what, 'paid', json.paid, lease.paid.toString());
  same(what, 'refunded', json.refunded, lease.refunded.toString());
  same(what, 'remaining', json.remaining, lease.remaining.toString());
  same(what, 'startHeight', json.startHeight, Number(lease.startHeight));
  same(what, 'startTime', json.startTime, Number(lease.startTime));
  same(what, 'endTime', json.endTime, Number(lease.endTime));
  // The derived fields, by market-api.ts leaseJson's rules at the verified block time.
  const endsAt = leaseEndsAt(lease);
  let unsettled = closed ? 0n : leaseCostThrough(lease, time) - lease.accrued;
  if (unsettled > lease.remaining) unsettled = lease.remaining;
  if (unsettled < 0n) unsettled = 0n;
  const endedReason = escrowUntil(lease) < lease.endTime ? 'escrowExhausted' : lease.closingReason || 'ended';
  same(what, 'unsettled', json.unsettled, unsettled.toString());
  same(
    what,
    'escrowUntil',
    json.escrowUntil,
    Number(closed ? (lease.closedTime < endsAt ? lease.closedTime : endsAt) : endsAt),
  );
  same(what, 'settledTime', json.settledTime, Number(lease.settledTime));
  same(what, 'slotsAnswered', json.slotsAnswered, Number(lease.slotsAnswered));
  same(what, 'slotsMissed', json.slotsMissed, Number(lease.slotsMissed));
  same(
    what,
    'closingReason',
    json.closingReason,
    status === 'ended' ? endedReason : lease.closingReason || null,
  );
  same(what, 'disputes', json.disputes, lease.disputes);
  same(what, 'closedHeight', json.closedHeight, closed ? Number(lease.closedHeight) : null);
  same(what, 'closedTime', json.closedTime, closed ? Number(lease.closedTime) : null);
  same(what, 'closedReason', json.closedReason, closed ? lease.closedReason : null);
  return { lease, offer, endpoint, tlsFingerprints, status, market };
}
