/**
 * Heartbeat operators (CONSENSUS CHANGE, docs/poci.md "Heartbeat operator"): an owner names one
 * address whose heartbeats answer for the owner's chips, so the miner host holds a hot key that
 * can do nothing else, and the owner's key (funds, transfers, deregistration, offers) stays cold.
 *
 * State: `0x0F ‖ owner address` → HeartbeatOperator. A change made in block h takes effect at h + 1:
 * the record keeps the operator in force before it (`previous`) beside the new one and the height
 * from which the new one counts, so a lookup is one read whatever the height asked about.
 */
import { equalBytes } from '../bytes.js';
import { type Codec, decode, encode, option, struct, u64 } from '../encoding/codec.js';
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
  return [{ type: 'heartbeatOperatorSet', owner: sender, operator, from: next.from }];
}
