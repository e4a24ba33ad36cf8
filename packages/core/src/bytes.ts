/** Small byte helpers shared by every package; no dependencies beyond the platform. */
import { bytesToHex, hexToBytesChecked } from './platform/node.js';

export function toHex(bytes: Uint8Array): string {
  return bytesToHex(bytes);
}

/** Strict hex decoding: optional 0x prefix, even length, hex digits only. */
export function fromHex(hex: string, expectedLength?: number): Uint8Array {
  const body = hex.startsWith('0x') || hex.startsWith('0X') ? hex.slice(2) : hex;
  const out = hexToBytesChecked(body);
  if (out === null)
    throw new TypeError(`not a hex string: ${hex.length > 80 ? `${hex.slice(0, 80)}…` : hex}`);
  if (expectedLength !== undefined && out.length !== expectedLength) {
    throw new TypeError(`expected ${expectedLength} bytes of hex, got ${out.length}`);
  }
  return out;
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Lexicographic order of byte strings (shorter prefix first). */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

export function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}
