/**
 * TPM marshalling on top of core's big-endian Writer/Reader. The TPM's own conventions differ
 * from the chain's canonical codec in one place that matters: sized buffers (TPM2B_*) carry a
 * u16 length, not a u32 one.
 */
import { DecodeError, Reader, Writer } from '@unc/core';
import { DIGEST_SIZES } from './constants.js';

export function marshal(write: (w: Writer) => void): Uint8Array {
  const w = new Writer();
  write(w);
  return w.finish();
}

export function writeTpm2b(w: Writer, bytes: Uint8Array): void {
  if (bytes.length > 0xffff) throw new RangeError(`TPM2B buffer of ${bytes.length} bytes is too long`);
  w.u16(bytes.length);
  w.raw(bytes);
}

export function readTpm2b(r: Reader, what: string, max = 0xffff): Uint8Array {
  const n = r.u16(`${what} size`);
  if (n > max) throw new DecodeError(`${what} size ${n} exceeds its maximum ${max}`);
  return r.raw(n, what);
}

/** Prefixes already-marshalled bytes with their u16 size, as a TPM2B_* wrapper of a structure. */
export function tpm2b(bytes: Uint8Array): Uint8Array {
  return marshal((w) => writeTpm2b(w, bytes));
}

/** Parses `bytes` completely with `read`; trailing bytes mean a malformed structure. */
export function unmarshal<T>(bytes: Uint8Array, what: string, read: (r: Reader) => T): T {
  const r = new Reader(bytes);
  const value = read(r);
  r.end(what);
  return value;
}

/** One bank of a TPML_PCR_SELECTION: a hash algorithm and the PCR indices selected in it. */
export interface PcrSelection {
  readonly hashAlg: number;
  readonly pcrs: readonly number[];
}

/** PC-client TPMs have 24 PCRs, so selections are at least 3 octets; larger ones are legal. */
const MIN_SIZEOF_SELECT = 3;

export function writePcrSelections(w: Writer, selections: readonly PcrSelection[]): void {
  w.u32(selections.length);
  for (const sel of selections) {
    const highest = sel.pcrs.reduce((m, p) => Math.max(m, p), -1);
    const size = Math.max(MIN_SIZEOF_SELECT, Math.ceil((highest + 1) / 8));
    if (size > 255) throw new RangeError(`PCR index ${highest} out of range`);
    const bitmap = new Uint8Array(size);
    for (const pcr of sel.pcrs) {
      if (!Number.isInteger(pcr) || pcr < 0) throw new RangeError(`bad PCR index ${pcr}`);
      bitmap[pcr >> 3]! |= 1 << (pcr & 7);
    }
    w.u16(sel.hashAlg);
    w.u8(size);
    w.raw(bitmap);
  }
}

export function readPcrSelections(r: Reader): PcrSelection[] {
  const count = r.u32('TPML_PCR_SELECTION count');
  // The TPM supports at most one selection per implemented hash algorithm (HASH_COUNT).
  if (count > 16) throw new DecodeError(`TPML_PCR_SELECTION count ${count} is implausible`);
  const out: PcrSelection[] = [];
  for (let i = 0; i < count; i++) {
    const hashAlg = r.u16('TPMS_PCR_SELECTION hash');
    const size = r.u8('sizeofSelect');
    const bitmap = r.raw(size, 'pcrSelect');
    const pcrs: number[] = [];
    for (let byte = 0; byte < size; byte++) {
      for (let bit = 0; bit < 8; bit++) if (bitmap[byte]! & (1 << bit)) pcrs.push(byte * 8 + bit);
    }
    out.push({ hashAlg, pcrs });
  }
  return out;
}

export function digestSize(hashAlg: number): number {
  const size = DIGEST_SIZES.get(hashAlg);
  if (size === undefined) throw new RangeError(`unsupported hash algorithm 0x${hashAlg.toString(16)}`);
  return size;
}
