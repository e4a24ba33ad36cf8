/**
 * On-chain registries of POCI (PROTOCOL.md §4.1): vendors (trust anchors, profile, revocations)
 * and chip models (rated power). Changed only through governance proposals.
 */
import { utf8 } from '../bytes.js';
import { sha256 } from '../crypto/hash.js';
import {
  bool,
  bytes,
  type Codec,
  decode,
  encode,
  list,
  string,
  struct,
  u8,
  u64,
  u128,
} from '../encoding/codec.js';
import { DecodeError } from '../errors.js';
import { StateSpace } from '../state/accounts.js';
import type { StateOverlay, StateReader } from '../state/store.js';

export const PROFILES = ['tpm2', 'nvidia-spdm', 'rsa2048-allowlist', 'dev-soft'] as const;
export type Profile = (typeof PROFILES)[number];

export const profileCodec: Codec<Profile> = {
  name: 'Profile',
  write(w, v) {
    const i = PROFILES.indexOf(v);
    if (i < 0) throw new RangeError(`unknown profile ${v}`);
    w.u8(i);
  },
  read(r) {
    const i = r.u8('profile');
    const p = PROFILES[i];
    if (!p) throw new DecodeError(`unknown profile tag ${i}`);
    return p;
  },
};

export const MAX_ID_BYTES = 64;
export const idCodec = string(MAX_ID_BYTES, 'id');

export interface Vendor {
  id: string;
  name: string;
  profile: Profile;
  /** Root certificates (DER) that chip certificate chains must end in; empty for allow-list profiles. */
  roots: Uint8Array[];
  /** tpm2 only: AK certificates must carry extendedKeyUsage tcg-kp-AIKCertificate (2.23.133.8.3). */
  requireAkEku?: boolean;
  /**
   * tpm2 only: AK certificates must name the device (HardwareModuleName), so the chip id is the
   * device's and a TPM cannot register as several chips through several AKs.
   */
  requireHardwareModuleName?: boolean;
}

/** Bits of a vendor's `requirements` byte; a flag that is off is left out of the Vendor object. */
export const VENDOR_FLAGS = { requireAkEku: 1, requireHardwareModuleName: 2 } as const;

const vendorFieldsCodec = struct<Omit<Vendor, keyof typeof VENDOR_FLAGS> & { requirements: number }>(
  'Vendor',
  {
    id: idCodec,
    name: string(128, 'name'),
    profile: profileCodec,
    roots: list(bytes(8192, 'root'), 8, 'roots'),
    requirements: u8,
  },
);

/** Vendor = id ‖ name ‖ profile ‖ roots ‖ requirements: u8 (VENDOR_FLAGS bits; others must be 0). */
export const vendorCodec: Codec<Vendor> = {
  name: 'Vendor',
  write(w, v) {
    let requirements = 0;
    for (const [flag, bit] of Object.entries(VENDOR_FLAGS)) {
      if (v[flag as keyof typeof VENDOR_FLAGS]) requirements |= bit;
    }
    vendorFieldsCodec.write(w, { id: v.id, name: v.name, profile: v.profile, roots: v.roots, requirements });
  },
  read(r) {
    const { requirements, ...v } = vendorFieldsCodec.read(r);
    if (requirements & ~(VENDOR_FLAGS.requireAkEku | VENDOR_FLAGS.requireHardwareModuleName)) {
      throw new DecodeError(`unknown vendor requirement bits ${requirements}`);
    }
    const out: Vendor = { ...v };
    if (requirements & VENDOR_FLAGS.requireAkEku) out.requireAkEku = true;
    if (requirements & VENDOR_FLAGS.requireHardwareModuleName) out.requireHardwareModuleName = true;
    return out;
  },
};

export interface ChipModel {
  vendorId: string;
  modelId: string;
  name: string;
  /** Rated compute power: dense FP16 TFLOPS × 1000. */
  power: bigint;
}

/**
 * The most rated power a model may have: 10^12 units, a million H100s (989,000) in one chip. The
 * epoch's total weight (a u128) sums power × UPTIME_SCALE (~1.44·10^14) over every chip; one model
 * near u128 / UPTIME_SCALE (~2.4·10^24, e.g. a power entered with 18 decimals) made each other
 * chip's answer overflow that total and be refused while one chip of that model answered: it took
 * the whole emission and every other chip went offline. At this bound the total holds 2·10^12 chips.
 */
export const MAX_MODEL_POWER = 10n ** 12n;

export const chipModelCodec: Codec<ChipModel> = struct<ChipModel>('ChipModel', {
  vendorId: idCodec,
  modelId: idCodec,
  name: string(128, 'name'),
  power: u128,
});

/**
 * A model as the state keeps it (CONSENSUS CHANGE, branch modelpower): the registry is the one
 * source of a chip's rated power, and a `setModel` that changes it takes effect from the next
 * epoch: `power` is in force from epoch `powerFrom` on, `prevPower` before it (modelPowerAt). Two
 * values are enough: a change is refused (`MODEL_POWER_PENDING`) while an answer may still land
 * for an epoch before the previous change took effect (docs/poci.md, "A model's power").
 */
export interface StoredModel extends ChipModel {
  prevPower: bigint;
  powerFrom: bigint;
}

export const storedModelCodec: Codec<StoredModel> = struct<StoredModel>('StoredModel', {
  vendorId: idCodec,
  modelId: idCodec,
  name: string(128, 'name'),
  power: u128,
  prevPower: u128,
  powerFrom: u64,
});

/** The model's rated power in force in `epoch`. */
export function modelPowerAt(m: StoredModel, epoch: bigint): bigint {
  return epoch >= m.powerFrom ? m.power : m.prevPower;
}

export interface AllowlistEntry {
  vendorId: string;
  /** The chip's public key (SubjectPublicKeyInfo DER for RSA chips). */
  publicKey: Uint8Array;
  modelId: string;
  allowed: boolean;
}

export const allowlistEntryCodec: Codec<AllowlistEntry> = struct<AllowlistEntry>('AllowlistEntry', {
  vendorId: idCodec,
  publicKey: bytes(1024, 'publicKey'),
  modelId: idCodec,
  allowed: bool,
});

function key(space: number, ...parts: Uint8Array[]): Uint8Array {
  // Parts are separated by a zero byte; ids cannot contain one (validated on entry).
  const chunks: number[] = [space];
  parts.forEach((p, i) => {
    if (i > 0) chunks.push(0);
    chunks.push(...p);
  });
  return Uint8Array.from(chunks);
}

export function checkId(id: string, what: string): void {
  if (!/^[a-z0-9][a-z0-9._-]{0,63}$/.test(id)) {
    throw new RangeError(`${what} "${id}" must be 1-64 lowercase letters, digits, '.', '_' or '-'`);
  }
}

export const vendorKey = (id: string) => key(StateSpace.vendor, utf8(id));
export const modelKey = (vendorId: string, modelId: string) =>
  key(StateSpace.model, utf8(vendorId), utf8(modelId));
export const allowlistKey = (vendorId: string, publicKey: Uint8Array) =>
  key(StateSpace.allowlist, utf8(vendorId), sha256(publicKey));
export const revokedSerialKey = (vendorId: string, serialHex: string) =>
  key(StateSpace.revokedSerial, utf8(vendorId), utf8(serialHex.toLowerCase()));

export function getVendor(state: StateReader, id: string): Vendor | null {
  const raw = state.get(vendorKey(id));
  return raw ? decode(vendorCodec, raw) : null;
}
export function putVendor(state: StateOverlay, v: Vendor): void {
  state.set(vendorKey(v.id), encode(vendorCodec, v));
}
export function getModel(state: StateReader, vendorId: string, modelId: string): StoredModel | null {
  const raw = state.get(modelKey(vendorId, modelId));
  return raw ? decode(storedModelCodec, raw) : null;
}
/** Without a schedule (genesis, a new model) the power is in force in every epoch. */
export function putModel(state: StateOverlay, m: ChipModel & Partial<StoredModel>): void {
  const stored: StoredModel = {
    vendorId: m.vendorId,
    modelId: m.modelId,
    name: m.name,
    power: m.power,
    prevPower: m.prevPower ?? m.power,
    powerFrom: m.powerFrom ?? 0n,
  };
  state.set(modelKey(m.vendorId, m.modelId), encode(storedModelCodec, stored));
}
/** Governance `removeModel`: its chips stop counting at once (effectiveStatus: revoked). */
export function deleteModel(state: StateOverlay, vendorId: string, modelId: string): void {
  state.set(modelKey(vendorId, modelId), null);
}
export function getAllowlistEntry(
  state: StateReader,
  vendorId: string,
  publicKey: Uint8Array,
): AllowlistEntry | null {
  const raw = state.get(allowlistKey(vendorId, publicKey));
  return raw ? decode(allowlistEntryCodec, raw) : null;
}
export function putAllowlistEntry(state: StateOverlay, e: AllowlistEntry): void {
  state.set(allowlistKey(e.vendorId, e.publicKey), e.allowed ? encode(allowlistEntryCodec, e) : null);
}
export function isSerialRevoked(state: StateReader, vendorId: string, serialHex: string): boolean {
  return state.get(revokedSerialKey(vendorId, serialHex)) !== undefined;
}
export function setSerialRevoked(
  state: StateOverlay,
  vendorId: string,
  serialHex: string,
  revoked: boolean,
): void {
  state.set(revokedSerialKey(vendorId, serialHex), revoked ? Uint8Array.of(1) : null);
}
