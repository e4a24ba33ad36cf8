import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { concatBytes } from '../../src/bytes.js';
import { beaconAlpha, nextBeacon, verifyBeacon } from '../../src/consensus/beacon.js';
import { ed25519PublicKey } from '../../src/crypto/ed25519.js';
import { sha256, taggedHash } from '../../src/crypto/hash.js';
import { vrfProofToHash, vrfVerify } from '../../src/crypto/vrf.js';

const seedA = sha256(Uint8Array.of(1));
const seedB = sha256(Uint8Array.of(2));
const pkA = ed25519PublicKey(seedA);
const pkB = ed25519PublicKey(seedB);
const genesis = sha256(Uint8Array.of(0));

describe('consensus/beacon', () => {
  test('alpha is taggedHash("UNC/beacon-alpha", prevBeacon ‖ height u64 big-endian)', () => {
    const height = Uint8Array.of(0, 0, 0, 0, 0, 0, 0x01, 0x02);
    assert.deepEqual(beaconAlpha(genesis, 258n), taggedHash('UNC/beacon-alpha', genesis, height));
  });

  test('the proposer proves, anyone verifies, and gets the same 32-byte beacon', () => {
    const { beacon, proof } = nextBeacon(genesis, 1n, seedA);
    assert.equal(beacon.length, 32);
    assert.equal(proof.length, 80);
    assert.deepEqual(verifyBeacon(genesis, 1n, pkA, proof), beacon);
    // It is the hashed VRF output of the RFC 9381 proof over alpha.
    const beta = vrfVerify(pkA, proof, beaconAlpha(genesis, 1n));
    assert.ok(beta);
    assert.deepEqual(beacon, taggedHash('UNC/beacon', vrfProofToHash(proof)!));
  });

  test('a chain of beacons: each depends on the last, and nobody else can produce it', () => {
    let prev = genesis;
    const seen = new Set<string>();
    for (let h = 1n; h <= 5n; h++) {
      const seed = h % 2n === 0n ? seedA : seedB;
      const pk = h % 2n === 0n ? pkA : pkB;
      const { beacon, proof } = nextBeacon(prev, h, seed);
      assert.deepEqual(verifyBeacon(prev, h, pk, proof), beacon);
      assert.equal(verifyBeacon(prev, h, h % 2n === 0n ? pkB : pkA, proof), null, 'wrong proposer');
      seen.add(Buffer.from(beacon).toString('hex'));
      prev = beacon;
    }
    assert.equal(seen.size, 5);
  });

  test('wrong height, wrong previous beacon or a tampered proof do not verify', () => {
    const { proof } = nextBeacon(genesis, 3n, seedA);
    assert.equal(verifyBeacon(genesis, 4n, pkA, proof), null);
    assert.equal(verifyBeacon(sha256(genesis), 3n, pkA, proof), null);
    const tampered = proof.slice();
    tampered[50]! ^= 1;
    assert.equal(verifyBeacon(genesis, 3n, pkA, tampered), null);
    assert.equal(verifyBeacon(genesis, 3n, pkA, concatBytes(proof, Uint8Array.of(0))), null);
    assert.equal(verifyBeacon(genesis.subarray(0, 31), 3n, pkA, proof), null);
  });

  test('deterministic: the proposer has exactly one beacon to offer per height', () => {
    assert.deepEqual(nextBeacon(genesis, 9n, seedB), nextBeacon(genesis, 9n, seedB));
  });
});
