/**
 * The identity-key attack on every path that checks a transaction signature: the identity point
 * (y = 1) as the signer with the signature (R = identity, S = 0) satisfies the Ed25519 equation for
 * any message, so whoever knows nothing could spend from that key's address. The protocol's rule
 * set (docs/signatures.md) refuses it before the library is asked.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  addressFromPublicKey,
  concatBytes,
  DEFAULT_HALVING_PERIOD_MS,
  DEFAULT_PARAMS,
  DEFAULT_POCI_PARAMS,
  ED25519_SMALL_ORDER_ENCODINGS,
  ed25519PublicKey,
  encode,
  envelopeFromSigned,
  executeBlock,
  fromHex,
  type Genesis,
  genesisAllocation,
  genesisStateWrites,
  MemoryState,
  minimumFee,
  sha256,
  signedTransactionCodec,
  utf8,
  ValidationError,
  verifyEnvelopeSignature,
  verifyTransactionSignature,
} from '../src/index.js';

const CHAIN = 'unc-sig-test-1';
const proposerSeed = sha256(utf8('signature rules proposer'));
const proposer = ed25519PublicKey(proposerSeed);

function stateFunding(keys: Uint8Array[]): MemoryState {
  const g: Genesis = {
    chainId: CHAIN,
    genesisTime: 1_795_000_000_000n,
    params: { ...DEFAULT_PARAMS },
    maxSupply: 1_000_000_000n * 10n ** 18n,
    genesisAllocationBps: 300,
    accounts: [],
    validators: [{ publicKey: proposer, name: 'v' }],
    halvingPeriodMs: DEFAULT_HALVING_PERIOD_MS,
    governance: { threshold: 1, keys: [proposer] },
    poci: { ...DEFAULT_POCI_PARAMS },
    vendors: [],
    models: [],
  };
  const total = genesisAllocation(g);
  const each = total / BigInt(keys.length);
  g.accounts.push(
    ...keys.map((k, i) => ({
      address: addressFromPublicKey(k),
      balance: i === 0 ? total - each * BigInt(keys.length - 1) : each,
    })),
  );
  const s = new MemoryState();
  s.apply(genesisStateWrites(g));
  return s;
}

/** A transfer of 1 UNC out of `signer`'s account, "signed" with `signature`. */
function forgedTransfer(signer: Uint8Array, signature: Uint8Array) {
  const tx = {
    chainId: CHAIN,
    signer,
    nonce: 0n,
    expiresAt: 100n,
    actions: [
      {
        type: 'transfer' as const,
        to: addressFromPublicKey(proposer),
        amount: 10n ** 18n,
        memo: new Uint8Array(0),
      },
    ],
    fee: 0n,
  };
  const size = encode(signedTransactionCodec, { tx, signature }).length;
  return envelopeFromSigned({ tx: { ...tx, fee: minimumFee(DEFAULT_PARAMS, size, 1) }, signature });
}

const ctx = {
  chainId: CHAIN,
  height: 1n,
  time: 1_795_000_001_000n,
  proposer,
  prevHash: new Uint8Array(32),
  prevBeacon: new Uint8Array(32),
  beacon: new Uint8Array(32),
};

describe('small-order keys on the transaction path', () => {
  const identity = fromHex('0100000000000000000000000000000000000000000000000000000000000000');
  const identitySignature = concatBytes(identity, new Uint8Array(32));

  test('a transfer from the identity key with (R = identity, S = 0) is refused by every check', () => {
    const state = stateFunding([identity]);
    const env = forgedTransfer(identity, identitySignature);
    assert.equal(verifyTransactionSignature(env.stx), false);
    assert.equal(verifyEnvelopeSignature(env), false);
    assert.throws(
      () => executeBlock(state, [env], ctx),
      (e: unknown) => e instanceof ValidationError && e.code === 'BAD_SIGNATURE',
    );
  });

  test('so is a transfer from any small-order key with any small-order R and S = 0', () => {
    const keys = ED25519_SMALL_ORDER_ENCODINGS.map((hex) => fromHex(hex));
    const state = stateFunding(keys);
    for (const a of keys) {
      for (const r of keys) {
        const env = forgedTransfer(a, concatBytes(r, new Uint8Array(32)));
        assert.equal(verifyEnvelopeSignature(env), false);
        assert.throws(() => executeBlock(state, [env], ctx), ValidationError);
      }
    }
  });
});
