/**
 * The randomness beacon (PROTOCOL.md §6). Each block's proposer evaluates its VRF on the previous
 * beacon and the height; the block carries the proof, and the hashed VRF output is the new beacon.
 * Nobody knows the next beacon before the previous block is final (the input is that block's
 * beacon), and the proposer cannot choose it: a VRF has one output per (key, input). What a
 * proposer can do is withhold its block, which hands the height to another proposer and so to
 * another beacon; that "last revealer" choice is inherent to proposer-made beacons, and costs the
 * withholder its block.
 */
import { taggedHash } from '../crypto/hash.js';
import { vrfProofToHash, vrfProve, vrfVerify } from '../crypto/vrf.js';
import { u64be } from './bytes.js';

export const BEACON_LENGTH = 32;

/** alpha = taggedHash('UNC/beacon-alpha', prevBeacon ‖ height u64). */
export function beaconAlpha(prevBeacon: Uint8Array, height: bigint): Uint8Array {
  if (prevBeacon.length !== BEACON_LENGTH) throw new RangeError(`beacon must be ${BEACON_LENGTH} bytes`);
  return taggedHash('UNC/beacon-alpha', prevBeacon, u64be(height));
}

/** beacon = taggedHash('UNC/beacon', beta): 32 bytes, and never the raw VRF output reused elsewhere. */
function beaconFromBeta(beta: Uint8Array): Uint8Array {
  return taggedHash('UNC/beacon', beta);
}

/** The beacon value and its 80-byte proof, for the block at `height` proposed by `proposerSeed`. */
export function nextBeacon(
  prevBeacon: Uint8Array,
  height: bigint,
  proposerSeed: Uint8Array,
): { beacon: Uint8Array; proof: Uint8Array } {
  const proof = vrfProve(proposerSeed, beaconAlpha(prevBeacon, height));
  // The proof was just made by us, so it is well formed and proof_to_hash cannot fail.
  return { beacon: beaconFromBeta(vrfProofToHash(proof)!), proof };
}

/** The beacon that `proof` yields if it is the proposer's valid proof for (prevBeacon, height). */
export function verifyBeacon(
  prevBeacon: Uint8Array,
  height: bigint,
  proposerPublicKey: Uint8Array,
  proof: Uint8Array,
): Uint8Array | null {
  if (!(prevBeacon instanceof Uint8Array) || prevBeacon.length !== BEACON_LENGTH) return null;
  const beta = vrfVerify(proposerPublicKey, proof, beaconAlpha(prevBeacon, height));
  return beta ? beaconFromBeta(beta) : null;
}
