/**
 * A small seeded PRNG (xoshiro128**, Blackman and Vigna) for the simulator. Consensus code itself
 * never draws random numbers; the simulator needs many cheap, reproducible ones (delays, losses,
 * fault schedules) so that a seed replays a run exactly on any machine. 32-bit integer arithmetic
 * only (Math.imul, >>>), which JavaScript defines exactly.
 */

import { utf8 } from '../bytes.js';
import { sha256 } from '../crypto/hash.js';
import { u32be } from './bytes.js';

export class SimRng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** Seeds from SHA-256 of the label and seed, so that streams with different labels are unrelated. */
  constructor(seed: number, label = '') {
    const h = sha256(utf8(`UNC/sim-rng/${label}`), u32be(seed >>> 0));
    const view = new DataView(h.buffer, h.byteOffset, h.byteLength);
    this.s0 = view.getUint32(0);
    this.s1 = view.getUint32(4);
    this.s2 = view.getUint32(8);
    this.s3 = view.getUint32(12);
    // The all-zero state is the one fixed point of the generator.
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextU32() / 0x1_0000_0000;
  }

  /** Uniform integer in [0, n), n ≤ 2^32; the bias of the multiply-shift is below 2^-32 · n. */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** An integer in [min, max]. */
  range(min: number, max: number): number {
    return min + this.int(max - min + 1);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('pick from an empty list');
    return items[this.int(items.length)]!;
  }

  shuffle<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
