/**
 * A set of fixed-length members kept in the state so that it can be enumerated: the state is a
 * key-value map that only answers `get`, so "all chips of an owner" or "all bonded candidates"
 * must be stored as such. Members sit in a dense array (slot i → member) with a reverse index
 * (member → slot); removal moves the last member into the hole. Add, remove and membership are
 * O(1) state accesses, enumeration is one access per member, and a running weight total gives an
 * O(1) upper bound (used to rank candidates before looking at their chips).
 *
 * Keys: prefix ‖ 0x00 ‖ group → head {count, weight}; prefix ‖ 0x01 ‖ group ‖ u32 slot → member;
 * prefix ‖ 0x02 ‖ group ‖ member → u32 slot. Groups and members have fixed lengths per set, so no
 * two keys can be confused.
 */
import { concatBytes } from '../bytes.js';
import { type Codec, decode, encode, struct, u32, u128 } from '../encoding/codec.js';
import type { StateOverlay, StateReader } from '../state/store.js';
import { u32be } from './bytes.js';

export interface IndexedSetHead {
  count: number;
  /** Sum of the weights the members were added with. */
  weight: bigint;
}

const headCodec: Codec<IndexedSetHead> = struct<IndexedSetHead>('IndexedSetHead', {
  count: u32,
  weight: u128,
});

const EMPTY_HEAD: Readonly<IndexedSetHead> = Object.freeze({ count: 0, weight: 0n });

export class IndexedSet {
  constructor(
    private readonly prefix: number,
    private readonly groupLength: number,
    private readonly memberLength: number,
  ) {}

  private check(group: Uint8Array, member?: Uint8Array): void {
    if (group.length !== this.groupLength) throw new RangeError(`group must be ${this.groupLength} bytes`);
    if (member && member.length !== this.memberLength) {
      throw new RangeError(`member must be ${this.memberLength} bytes`);
    }
  }

  private headKey(group: Uint8Array): Uint8Array {
    return concatBytes(Uint8Array.of(this.prefix, 0x00), group);
  }

  private slotKey(group: Uint8Array, slot: number): Uint8Array {
    return concatBytes(Uint8Array.of(this.prefix, 0x01), group, u32be(slot));
  }

  private positionKey(group: Uint8Array, member: Uint8Array): Uint8Array {
    return concatBytes(Uint8Array.of(this.prefix, 0x02), group, member);
  }

  head(state: StateReader, group: Uint8Array): IndexedSetHead {
    this.check(group);
    const raw = state.get(this.headKey(group));
    return raw ? decode(headCodec, raw) : { ...EMPTY_HEAD };
  }

  private putHead(state: StateOverlay, group: Uint8Array, head: IndexedSetHead): void {
    state.set(this.headKey(group), head.count === 0 ? null : encode(headCodec, head));
  }

  private slotOf(state: StateReader, group: Uint8Array, member: Uint8Array): number | null {
    const raw = state.get(this.positionKey(group, member));
    return raw ? decode(u32, raw) : null;
  }

  has(state: StateReader, group: Uint8Array, member: Uint8Array): boolean {
    this.check(group, member);
    return this.slotOf(state, group, member) !== null;
  }

  /** Adds `member` with `weight`; false (and no change) if it is already there. */
  add(state: StateOverlay, group: Uint8Array, member: Uint8Array, weight = 0n): boolean {
    this.check(group, member);
    if (this.slotOf(state, group, member) !== null) return false;
    const head = this.head(state, group);
    state.set(this.slotKey(group, head.count), member.slice());
    state.set(this.positionKey(group, member), encode(u32, head.count));
    this.putHead(state, group, { count: head.count + 1, weight: head.weight + weight });
    return true;
  }

  /** Removes `member`, which was added with `weight`; false (and no change) if it is not there. */
  remove(state: StateOverlay, group: Uint8Array, member: Uint8Array, weight = 0n): boolean {
    this.check(group, member);
    const slot = this.slotOf(state, group, member);
    if (slot === null) return false;
    const head = this.head(state, group);
    const last = head.count - 1;
    if (slot !== last) {
      const moved = state.get(this.slotKey(group, last))!;
      state.set(this.slotKey(group, slot), moved);
      state.set(this.positionKey(group, moved), encode(u32, slot));
    }
    state.set(this.slotKey(group, last), null);
    state.set(this.positionKey(group, member), null);
    const rest = head.weight - weight;
    this.putHead(state, group, { count: last, weight: rest < 0n ? 0n : rest });
    return true;
  }

  /** Moves the group's weight by `member`'s change of weight (from → to); false if it is not there. */
  reweigh(state: StateOverlay, group: Uint8Array, member: Uint8Array, from: bigint, to: bigint): boolean {
    this.check(group, member);
    if (this.slotOf(state, group, member) === null) return false;
    const head = this.head(state, group);
    const weight = head.weight - from + to;
    this.putHead(state, group, { count: head.count, weight: weight < 0n ? 0n : weight });
    return true;
  }

  /** The members in slot order (which depends on history; callers sort what must be canonical). */
  members(state: StateReader, group: Uint8Array): Uint8Array[] {
    const { count } = this.head(state, group);
    const out: Uint8Array[] = [];
    for (let i = 0; i < count; i++) out.push(state.get(this.slotKey(group, i))!);
    return out;
  }
}
