/**
 * A validator's word on which network peer is its node: "validator V runs as peer id X", signed by
 * V's consensus key. A node that holds such a binding and a direct connection to X learns at once
 * when X's connection closes (the process stopped: its socket closed) that V is likely down, and
 * waits only the short propose timeout at V's next turn instead of the whole one
 * (proposer-liveness.ts), rather than learning it only after a height without V's votes.
 *
 * Why a signature and not "the peer that V's messages come from": gossip relays every message,
 * and the peer it arrives from first is whoever was quickest, so a peer that relays V's votes
 * fast, then disconnects, could otherwise pose as V and make every node skip V's turn (V loses its
 * proposer share; a proposer that dislikes V's blocks gains). The binding names the peer id inside
 * what V signs, so who delivers it does not matter, and nobody but V can bind V to a peer: a
 * copy of V's binding binds V to V's own node only. V can bind itself to any peer id, even one it
 * does not run, and only make its own turns shorter when that peer goes away.
 *
 * Nothing here decides what is committed: a binding only shortens a wait (Tendermint is safe under
 * any timing), and a wrong guess costs one round of one proposer.
 */
import {
  chainIdCodec,
  defaultVerify,
  ed25519Sign,
  encode,
  publicKey,
  signature64,
  string,
  struct,
  type VerifyFn,
} from '@unc/core';

/** A libp2p peer id as text is about 52 characters; room for other key types, bounded. */
const MAX_PEER_ID_BYTES = 128;

export interface PeerBinding {
  validator: Uint8Array;
  peerId: string;
  signature: Uint8Array;
}

export const peerBindingCodec = struct<PeerBinding>('PeerBinding', {
  validator: publicKey,
  peerId: string(MAX_PEER_ID_BYTES, 'peerId'),
  signature: signature64,
});

/** The largest encoded binding (the gossip limit of its topic). */
export const MAX_PEER_BINDING_BYTES = 32 + 4 + MAX_PEER_ID_BYTES + 64 + 16;

const peerBindingSignCodec = struct<{
  domain: string;
  chainId: string;
  validator: Uint8Array;
  peerId: string;
}>('PeerBindingSignBytes', {
  domain: string(32, 'domain'),
  chainId: chainIdCodec,
  validator: publicKey,
  peerId: string(MAX_PEER_ID_BYTES, 'peerId'),
});

/** What a validator signs to bind itself to a peer id: its own domain, so it signs nothing else. */
export function peerBindingSignBytes(chainId: string, validator: Uint8Array, peerId: string): Uint8Array {
  return encode(peerBindingSignCodec, { domain: 'UNC/validator-peer', chainId, validator, peerId });
}

/** This validator's binding to its node's peer id. */
export function signPeerBinding(
  chainId: string,
  validator: Uint8Array,
  seed: Uint8Array,
  peerId: string,
): PeerBinding {
  return {
    validator,
    peerId,
    signature: ed25519Sign(seed, peerBindingSignBytes(chainId, validator, peerId)),
  };
}

/** Whether `binding` carries its validator's signature for this chain. */
export function peerBindingSigned(
  chainId: string,
  binding: PeerBinding,
  verify: VerifyFn = defaultVerify,
): boolean {
  return verify(
    binding.validator,
    peerBindingSignBytes(chainId, binding.validator, binding.peerId),
    binding.signature,
  );
}
