import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decode, ed25519PublicKey, encode } from '@unc/core';
import {
  MAX_PEER_BINDING_BYTES,
  peerBindingCodec,
  peerBindingSigned,
  signPeerBinding,
} from '../../src/consensus/peer-binding.js';

const seedV = new Uint8Array(32).fill(7);
const seedM = new Uint8Array(32).fill(9);
const v = ed25519PublicKey(seedV);
const m = ed25519PublicKey(seedM);
const peerV = '12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo';
const peerM = '12D3KooWH3uVF6wv47WnArKHk5p6cvgCJEb74UTmxztmQDc298L3';

describe('peer binding: a validator signs which peer id is its node', () => {
  test('a genuine binding checks, and survives its encoding', () => {
    const binding = signPeerBinding('unc-test', v, seedV, peerV);
    const bytes = encode(peerBindingCodec, binding);
    assert.ok(bytes.byteLength <= MAX_PEER_BINDING_BYTES);
    assert.ok(peerBindingSigned('unc-test', decode(peerBindingCodec, bytes)));
  });

  test('a peer cannot bind a validator to itself: every altered binding fails', () => {
    const genuine = signPeerBinding('unc-test', v, seedV, peerV);
    // V's own binding re-pointed at the attacker's peer id.
    assert.equal(peerBindingSigned('unc-test', { ...genuine, peerId: peerM }), false);
    // The attacker's own signature claiming V.
    const forged = signPeerBinding('unc-test', v, seedM, peerM);
    assert.equal(peerBindingSigned('unc-test', forged), false);
    // A genuine binding of another chain.
    assert.equal(peerBindingSigned('unc-other', genuine), false);
    // The attacker may bind itself, which binds only itself.
    assert.ok(peerBindingSigned('unc-test', signPeerBinding('unc-test', m, seedM, peerM)));
  });

  test('a peer id over the bound is refused by the codec', () => {
    assert.throws(() =>
      encode(peerBindingCodec, { validator: v, peerId: 'x'.repeat(129), signature: new Uint8Array(64) }),
    );
  });
});
