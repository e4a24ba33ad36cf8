import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { toHex } from '../../src/bytes.js';
import { BFT_QUORUM, selectProposer, ValidatorSet } from '../../src/consensus/validators.js';
import { ed25519PublicKey } from '../../src/crypto/ed25519.js';
import { sha256 } from '../../src/crypto/hash.js';

function key(i: number): Uint8Array {
  return ed25519PublicKey(sha256(Uint8Array.of(1, i)));
}

function setOf(powers: bigint[]): ValidatorSet {
  return new ValidatorSet(powers.map((power, i) => ({ publicKey: key(i), power })));
}

describe('consensus/validators: the set', () => {
  test('members are sorted by key whatever the input order; total power is exact', () => {
    const members = [5n, 1n, 7n, 3n].map((power, i) => ({ publicKey: key(i), power }));
    const a = new ValidatorSet(members);
    const b = new ValidatorSet([...members].reverse());
    assert.deepEqual(
      a.validators.map((v) => toHex(v.publicKey)),
      b.validators.map((v) => toHex(v.publicKey)),
    );
    const hexes = a.validators.map((v) => toHex(v.publicKey));
    assert.deepEqual(hexes, [...hexes].sort());
    assert.equal(a.totalPower, 16n);
    assert.deepEqual(a.hash(), b.hash());
    assert.equal(a.powerOf(key(2)), 7n);
    assert.equal(a.powerOf(key(9)), 0n);
    assert.equal(a.has(key(9)), false);
  });

  test('property: quorumPower is the least power that has a quorum', () => {
    fc.assert(
      fc.property(
        fc.array(fc.bigInt({ min: 1n, max: 10n ** 24n }), { minLength: 1, maxLength: 20 }),
        (powers) => {
          const set = setOf(powers);
          assert.equal(set.hasQuorum(set.quorumPower), true);
          assert.equal(set.hasQuorum(set.quorumPower - 1n), false);
        },
      ),
    );
  });

  test('quorum is strictly more than 2/3, in exact integer arithmetic', () => {
    const three = setOf([1n, 1n, 1n]);
    assert.equal(three.hasQuorum(2n), false, '2 of 3 is exactly 2/3: not more');
    assert.equal(three.hasQuorum(3n), true);
    const four = setOf([1n, 1n, 1n, 1n]);
    assert.equal(four.hasQuorum(2n), false);
    assert.equal(four.hasQuorum(3n), true);
    assert.equal(four.hasOneHonest(1n), false, '1 of 4 could be the one faulty validator');
    assert.equal(four.hasOneHonest(2n), true);
    // Huge powers: floating point would get this wrong.
    const big = 10n ** 30n;
    const set = setOf([big, big, big + 1n]);
    assert.equal(set.hasQuorum(2n * big), false);
    assert.equal(set.hasQuorum(2n * big + 1n), true);
    assert.deepEqual(set.quorum, BFT_QUORUM);
  });

  test('quorum agrees with power * 3 > total * 2 for random sets', () => {
    fc.assert(
      fc.property(
        fc.array(fc.bigInt({ min: 1n, max: 1n << 64n }), { minLength: 1, maxLength: 8 }),
        fc.nat(),
        (powers, pick) => {
          const set = setOf(powers);
          const subset = powers.filter((_, i) => (pick >> i) & 1).reduce((a, b) => a + b, 0n);
          assert.equal(set.hasQuorum(subset), subset * 3n > set.totalPower * 2n);
          assert.equal(set.hasOneHonest(subset), subset * 3n > set.totalPower);
        },
      ),
    );
  });

  test('bad sets are refused', () => {
    assert.throws(() => new ValidatorSet([]), /empty/);
    assert.throws(() => setOf([0n]), /positive/);
    assert.throws(() => setOf([-1n]), /positive/);
    assert.throws(
      () =>
        new ValidatorSet([
          { publicKey: key(0), power: 1n },
          { publicKey: key(0), power: 2n },
        ]),
      /twice/,
    );
    assert.throws(() => new ValidatorSet([{ publicKey: new Uint8Array(31), power: 1n }]), /32 bytes/);
    assert.throws(
      () => new ValidatorSet([{ publicKey: key(0), power: 1n }], { numerator: 1n, denominator: 1n }),
    );
  });
});

describe('consensus/validators: proposer selection', () => {
  const beacon = sha256(Uint8Array.of(42));

  test('deterministic, and a function of (beacon, height, round) only', () => {
    const set = setOf([3n, 1n, 4n, 1n, 5n]);
    const again = setOf([3n, 1n, 4n, 1n, 5n]);
    for (let h = 1n; h < 50n; h++) {
      for (let r = 0; r < 3; r++) {
        assert.deepEqual(selectProposer(set, beacon, h, r), selectProposer(again, beacon, h, r));
      }
    }
    const seen = new Set<string>();
    for (let r = 0; r < 40; r++) seen.add(toHex(selectProposer(set, beacon, 7n, r).publicKey));
    assert.ok(seen.size > 1, 'rounds draw different proposers');
  });

  test('frequency is proportional to power (each within 5 standard deviations)', () => {
    const powers = [1n, 2n, 3n, 4n, 10n];
    const set = setOf(powers);
    const total = Number(set.totalPower);
    const counts = new Map<string, number>();
    const draws = 20_000;
    for (let i = 0; i < draws; i++) {
      const h = BigInt(1 + (i >> 2));
      const p = selectProposer(set, beacon, h, i & 3);
      const id = toHex(p.publicKey);
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    for (const v of set.validators) {
      const p = Number(v.power) / total;
      const expected = draws * p;
      const sd = Math.sqrt(draws * p * (1 - p));
      const got = counts.get(toHex(v.publicKey)) ?? 0;
      assert.ok(
        Math.abs(got - expected) < 5 * sd,
        `power ${v.power}: ${got} draws, expected ${expected.toFixed(0)}`,
      );
    }
  });

  test('a single validator always proposes (dev mode runs the same code)', () => {
    const solo = setOf([7n]);
    for (let r = 0; r < 10; r++) assert.deepEqual(selectProposer(solo, beacon, 1n, r).publicKey, key(0));
  });
});
