/**
 * Audit of chain time (docs/security-audit-time.md, "TPM credit and block-time skew"): a tpm2
 * answer is credited when its TPM clock advanced at least ⌈4/5 × (T₁ − T₀)⌉ − W × blockTimeMs, T₀
 * and T₁ the block times of the two challenge blocks. Those are proposers' clocks, which the
 * consensus lets differ from the real time by up to the drift (5 s) either way for a block decided
 * in its first rounds (gossip-checks.ts: further ahead is refused, further behind not prevoted).
 * Pinned here: where that skew costs an honest always-on chip nothing (default parameters, a chip
 * that signs in the first blocks of each window), and the two places where it does (left, MEDIUM).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { type TpmClock, tpmAnswerCredit } from '../src/index.js';

const DRIFT = 5_000n;
const W = 20n;

/**
 * An always-on chip: its TPM runs at `ratePct`% of real time. Challenge blocks decided at real
 * times r₀ and r₁ = r₀ + Δ are stamped r + e; the chip signs its answers d₀ and d₁ after them.
 */
function credit(o: {
  deltaMs: bigint;
  e0: bigint;
  e1: bigint;
  d0: bigint;
  d1: bigint;
  ratePct: bigint;
  blockTimeMs: bigint;
}): 'credited' | 'asleep' | 'rebooted' {
  const r0 = 1_800_000_000_000n;
  const r1 = r0 + o.deltaMs;
  const s0 = r0 + o.d0;
  const s1 = r1 + o.d1;
  const base = 10_000_000n;
  const prev: TpmClock = { clock: base, resetCount: 1, restartCount: 0 };
  const next: TpmClock = { clock: base + (o.ratePct * (s1 - s0)) / 100n, resetCount: 1, restartCount: 0 };
  return tpmAnswerCredit(prev, r0 + o.e0, next, r1 + o.e1, W * o.blockTimeMs);
}

describe('audit: TPM credit under the block-time skew consensus allows', () => {
  test('property: at the default 1 s blocks (slack 20 s), a prompt always-on chip (TPM at 85–115%) is credited whatever each block’s skew within ±drift', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 1_000n, max: 3n * 3_600_000n }),
        fc.bigInt({ min: -DRIFT, max: DRIFT }),
        fc.bigInt({ min: -DRIFT, max: DRIFT }),
        fc.bigInt({ min: 0n, max: 2_000n }),
        fc.bigInt({ min: 0n, max: W * 1_000n }),
        fc.bigInt({ min: 85n, max: 115n }),
        (deltaMs, e0, e1, d0, d1, ratePct) => {
          fc.pre(deltaMs + e1 - e0 > 0n && d0 < deltaMs + d1);
          assert.equal(credit({ deltaMs, e0, e1, d0, d1, ratePct, blockTimeMs: 1_000n }), 'credited');
        },
      ),
      { numRuns: 2_000 },
    );
  });

  test('LEFT (LOW): a chip that signed its previous answer late in its window, TPM at 85%, loses an answer to ±drift skew at the defaults', () => {
    const late = { deltaMs: 60_000n, d0: 20_000n, d1: 0n, ratePct: 85n, blockTimeMs: 1_000n };
    assert.equal(credit({ ...late, e0: 0n, e1: 0n }), 'credited', 'true block times: credited');
    assert.equal(credit({ ...late, e0: -DRIFT, e1: DRIFT }), 'asleep', 'stamped −5 s / +5 s: not credited');
  });

  test('LEFT (MEDIUM): with W × blockTimeMs under twice the drift (200 ms blocks: slack 4 s), one block stamped +drift costs a prompt chip its answer', () => {
    const fast = { deltaMs: 1_000n, d0: 500n, d1: 0n, ratePct: 100n, blockTimeMs: 200n, e0: 0n };
    assert.equal(credit({ ...fast, e1: 0n }), 'credited', 'true block times: credited');
    assert.equal(
      credit({ ...fast, e1: DRIFT }),
      'asleep',
      'its challenge block stamped 5 s ahead: not credited',
    );
  });
});
