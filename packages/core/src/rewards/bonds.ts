/**
 * Validator bonds: UNC a validator pledges, and the slashing hook consensus calls with provable
 * equivocation. Unbonded UNC stays slashable until `releaseHeight`, so a validator cannot escape a
 * slash by unbonding just before its evidence lands; at that height it returns to the balance by
 * itself (PROTOCOL.md §6), with no transaction and no fee: every unbond puts its account in a queue
 * keyed by the release height, and each block's opening bookkeeping releases that height's entries.
 */

import { type Codec, decode, encode, struct, u64, u128 } from '../encoding/codec.js';
import { ValidationError } from '../errors.js';
import { getAccount, putAccount, StateSpace } from '../state/accounts.js';
import type { StateOverlay, StateReader } from '../state/store.js';
import { getSupply, putSupply } from '../state/supply.js';

export interface Bond {
  bonded: bigint;
  unbonding: bigint;
  releaseHeight: bigint;
}

export const bondCodec: Codec<Bond> = struct<Bond>('Bond', {
  bonded: u128,
  unbonding: u128,
  releaseHeight: u64,
});

export function bondKey(address: Uint8Array): Uint8Array {
  const k = new Uint8Array(21);
  k[0] = StateSpace.bond;
  k.set(address, 1);
  return k;
}

export function getBond(state: StateReader, address: Uint8Array): Bond {
  const raw = state.get(bondKey(address));
  return raw ? decode(bondCodec, raw) : { bonded: 0n, unbonding: 0n, releaseHeight: 0n };
}

function putBond(state: StateOverlay, address: Uint8Array, b: Bond): void {
  state.set(bondKey(address), b.bonded === 0n && b.unbonding === 0n ? null : encode(bondCodec, b));
}

// ---- The release queue, O(1) per unbond: `0x00 0x20 ‖ u64 height` → how many entries the height
// has (u32), and `0x00 0x21 ‖ u64 height ‖ u32 i` → the account of entry i. (One list value per
// height made every unbond read and rewrite the whole list: quadratic in the unbonds of one block.)

export function releaseQueueKey(height: bigint): Uint8Array {
  const k = new Uint8Array(10);
  k[0] = StateSpace.system;
  k[1] = 0x20;
  new DataView(k.buffer).setBigUint64(2, height);
  return k;
}

function releaseEntryKey(height: bigint, index: number): Uint8Array {
  const k = new Uint8Array(14);
  k[0] = StateSpace.system;
  k[1] = 0x21;
  const v = new DataView(k.buffer);
  v.setBigUint64(2, height);
  v.setUint32(10, index);
  return k;
}

function releaseCount(state: StateReader, height: bigint): number {
  const raw = state.get(releaseQueueKey(height));
  return raw ? new DataView(raw.buffer, raw.byteOffset, raw.byteLength).getUint32(0) : 0;
}

/** The accounts queued for release at `height`, in the order they unbonded (for readers). */
export function releasesAt(state: StateReader, height: bigint): Uint8Array[] {
  const out: Uint8Array[] = [];
  const n = releaseCount(state, height);
  for (let i = 0; i < n; i++) {
    const a = state.get(releaseEntryKey(height, i));
    if (a) out.push(a);
  }
  return out;
}

/** O(1): an account unbonding twice in one block is queued twice; the second entry finds nothing. */
function queueRelease(state: StateOverlay, address: Uint8Array, height: bigint): void {
  const n = releaseCount(state, height);
  state.set(releaseEntryKey(height, n), Uint8Array.from(address));
  const count = new Uint8Array(4);
  new DataView(count.buffer).setUint32(0, n + 1);
  state.set(releaseQueueKey(height), count);
}

export interface UnbondRelease {
  account: Uint8Array;
  amount: bigint;
}

/**
 * Block-start bookkeeping: returns every unbonding that ends at `height` to its account's balance.
 * O(unbonds queued for this height), nothing else; an entry whose account unbonded again later
 * (and so moved its release height) or was slashed to nothing is skipped.
 */
export function releaseUnbondedAt(state: StateOverlay, height: bigint): UnbondRelease[] {
  const n = releaseCount(state, height);
  if (n === 0) return [];
  state.set(releaseQueueKey(height), null);
  const out: UnbondRelease[] = [];
  for (let i = 0; i < n; i++) {
    const key = releaseEntryKey(height, i);
    const account = state.get(key);
    if (!account) continue;
    state.set(key, null);
    const b = getBond(state, account);
    if (b.releaseHeight !== height) continue;
    const amount = release(state, account, b, height);
    if (amount === 0n) continue;
    putBond(state, account, b);
    out.push({ account, amount });
  }
  return out;
}

/** Returns released unbonding UNC to the balance. */
function release(state: StateOverlay, address: Uint8Array, b: Bond, height: bigint): bigint {
  if (b.unbonding === 0n || height < b.releaseHeight) return 0n;
  const amount = b.unbonding;
  const account = getAccount(state, address);
  account.balance += amount;
  putAccount(state, address, account);
  b.unbonding = 0n;
  return amount;
}

export function applyBond(state: StateOverlay, address: Uint8Array, amount: bigint, height: bigint): bigint {
  if (amount <= 0n) throw new ValidationError('BAD_AMOUNT', 'bond amount must be positive');
  const b = getBond(state, address);
  const released = release(state, address, b, height);
  const account = getAccount(state, address);
  if (account.balance < amount) {
    throw new ValidationError(
      'INSUFFICIENT_FUNDS',
      `balance ${account.balance} is less than the bond ${amount}`,
    );
  }
  account.balance -= amount;
  putAccount(state, address, account);
  b.bonded += amount;
  putBond(state, address, b);
  return released;
}

export function applyUnbond(
  state: StateOverlay,
  address: Uint8Array,
  amount: bigint,
  height: bigint,
  unbondingBlocks: bigint,
): bigint {
  const b = getBond(state, address);
  const released = release(state, address, b, height);
  if (amount <= 0n || amount > b.bonded) {
    throw new ValidationError(
      'BAD_AMOUNT',
      `unbond amount must be positive and at most the bond ${b.bonded}`,
    );
  }
  b.bonded -= amount;
  b.unbonding += amount;
  b.releaseHeight = height + unbondingBlocks;
  putBond(state, address, b);
  queueRelease(state, address, b.releaseHeight);
  return released;
}

/**
 * The slashing hook: burns `bps` basis points of everything the validator has at stake (bonded,
 * then unbonding) and records it in the supply. Returns the amount slashed.
 */
export function slashBond(state: StateOverlay, address: Uint8Array, bps: bigint): bigint {
  if (bps < 0n || bps > 10_000n) throw new RangeError('slash basis points must be 0…10000');
  const b = getBond(state, address);
  const amount = ((b.bonded + b.unbonding) * bps) / 10_000n;
  const fromBonded = amount < b.bonded ? amount : b.bonded;
  b.bonded -= fromBonded;
  b.unbonding -= amount - fromBonded;
  putBond(state, address, b);
  const supply = getSupply(state);
  supply.slashed += amount;
  putSupply(state, supply);
  return amount;
}
