/**
 * Heartbeat operators (CONSENSUS CHANGE, docs/poci.md "Heartbeat operator"): an owner names one
 * address whose heartbeats answer for the owner's chips, so the miner host holds a hot key that
 * can do nothing else, and the owner's key (funds, transfers, deregistration, offers) stays cold.
 *
 * State: `0x0F ‖ owner address` → HeartbeatOperator. A change made in block h takes effect at h + 1:
 * the record keeps the operator in force before it (`previous`) beside the new one and the height
 * from which the new one counts, so a lookup is one read whatever the height asked about.
 *
 * A removal's record (no operator from `from` on) is needed only through its own block (where
 * `previous` still answers); the next block deletes it (CONSENSUS CHANGE, docs/poci.md "Heartbeat
 * operator"): before, every owner that ever removed its operator left a record for good. The
 * owners whose operator a block removed are listed under `0x0F ‖ u32 i` with `0x0F` → { height,
 * count }, and the next block's opening deletes each record still without an operator, then the
 * list: work bounded by the removals (each a paid action) of one block.
 */
import { equalBytes } from '../bytes.js';
import { type Codec, decode, encode, option, struct, u32, u64 } from '../encoding/codec.js';
import { address } from '../encoding/primitives.js';
import { ValidationError } from '../errors.js';
import { StateSpace } from '../state/accounts.js';
import type { StateOverlay, StateReader } from '../state/store.js';

export interface HeartbeatOperator {
  /** The operator in force below `from`. */
  previous: Uint8Array | null;
  /** The operator in force from `from` on (null: none). */
  operator: Uint8Array | null;
  from: bigint;
}

export const heartbeatOperatorCodec: Codec<HeartbeatOperator> = struct<HeartbeatOperator>(
  'HeartbeatOperator',
  { previous: option(address), operator: option(address), from: u64 },
);

/** The event of a `setHeartbeatOperator` (tag 43): `operator` answers for `owner` from `from`. */
export interface HeartbeatOperatorSetEvent {
  type: 'heartbeatOperatorSet';
  owner: Uint8Array;
  operator: Uint8Array | null;
  from: bigint;
}

export function heartbeatOperatorKey(owner: Uint8Array): Uint8Array {
  const k = new Uint8Array(21);
  k[0] = StateSpace.heartbeatOperator;
  k.set(owner, 1);
  return k;
}

/** `0x0F` alone: the block whose removals are listed, and how many (`0x0F ‖ u32 i` → owner). */
const REMOVALS_KEY = Uint8Array.of(StateSpace.heartbeatOperator);
interface Removals {
  height: bigint;
  count: number;
}
const removalsCodec: Codec<Removals> = struct<Removals>('HeartbeatOperatorRemovals', {
  height: u64,
  count: u32,
});

function removalEntryKey(i: number): Uint8Array {
  const k = new Uint8Array(5);
  k[0] = StateSpace.heartbeatOperator;
  new DataView(k.buffer).setUint32(1, i);
  return k;
}

/** Lists `owner`, whose operator the block at `height` removed, for the next block to delete. */
function listRemoval(state: StateOverlay, height: bigint, owner: Uint8Array): void {
  const raw = state.get(REMOVALS_KEY);
  const listed = raw ? decode(removalsCodec, raw) : null;
  const count = listed && listed.height === height ? listed.count : 0;
  state.set(removalEntryKey(count), owner.slice());
  state.set(REMOVALS_KEY, encode(removalsCodec, { height, count: count + 1 }));
}

/**
 * At the opening of the block at `height`: deletes the records of the owners whose operator an
 * earlier block removed and that named none since (their record then answers none at `height` and
 * after, as no record does), and the list. Returns how many records went.
 */
export function pruneRemovedHeartbeatOperators(state: StateOverlay, height: bigint): number {
  const raw = state.get(REMOVALS_KEY);
  if (!raw) return 0;
  const listed = decode(removalsCodec, raw);
  if (listed.height >= height) return 0;
  let removed = 0;
  for (let i = 0; i < listed.count; i++) {
    const entry = removalEntryKey(i);
    const owner = state.get(entry);
    state.set(entry, null);
    if (!owner) continue;
    const record = getHeartbeatOperatorRecord(state, owner);
    if (record && record.operator === null && record.from <= height) {
      state.set(heartbeatOperatorKey(owner), null);
      removed++;
    }
  }
  state.set(REMOVALS_KEY, null);
  return removed;
}

export function getHeartbeatOperatorRecord(state: StateReader, owner: Uint8Array): HeartbeatOperator | null {
  const raw = state.get(heartbeatOperatorKey(owner));
  return raw ? decode(heartbeatOperatorCodec, raw) : null;
}

/** The operator whose heartbeats answer for `owner`'s chips in the block at `height`, or null. */
export function heartbeatOperatorAt(
  state: StateReader,
  owner: Uint8Array,
  height: bigint,
): Uint8Array | null {
  const record = getHeartbeatOperatorRecord(state, owner);
  if (!record) return null;
  return height >= record.from ? record.operator : record.previous;
}

/**
 * Whether `sender` may answer for a chip of `owner` in the block at `height`: the owner itself, or
 * the operator the owner has in force there. The only place the operator relation is read: every
 * other action still takes the owner's own signature.
 */
export function mayAnswerFor(
  state: StateReader,
  owner: Uint8Array,
  sender: Uint8Array,
  height: bigint,
): boolean {
  if (equalBytes(owner, sender)) return true;
  const operator = heartbeatOperatorAt(state, owner, height);
  return operator !== null && equalBytes(operator, sender);
}

/**
 * `sender` names `operator` (or none) for its chips from the next block on: a heartbeat in the same
 * block still sees the operator in force before it, whatever the order of transactions, so that
 * removing a compromised operator is never raced within its own block by an ordering trick.
 * Refused: naming the sender itself (SELF_OPERATOR: it answers for its chips already) and removing
 * an operator when the last one named is none already (NO_HEARTBEAT_OPERATOR: it would write a
 * record for nothing).
 */
export function applySetHeartbeatOperator(
  state: StateOverlay,
  height: bigint,
  sender: Uint8Array,
  operator: Uint8Array | null,
): HeartbeatOperatorSetEvent[] {
  if (operator && equalBytes(operator, sender)) {
    throw new ValidationError(
      'SELF_OPERATOR',
      'an owner answers for its own chips already: name another address',
    );
  }
  const record = getHeartbeatOperatorRecord(state, sender);
  if (operator === null && (record === null || record.operator === null)) {
    throw new ValidationError('NO_HEARTBEAT_OPERATOR', 'no heartbeat operator is set to remove');
  }
  const inForce = record ? (height >= record.from ? record.operator : record.previous) : null;
  const next: HeartbeatOperator = { previous: inForce, operator, from: height + 1n };
  state.set(heartbeatOperatorKey(sender), encode(heartbeatOperatorCodec, next));
  if (operator === null) listRemoval(state, height, sender);
  return [{ type: 'heartbeatOperatorSet', owner: sender, operator, from: next.from }];
}
