/** Set-up the node's mempool, admission and pre-verification tests share (test code only). */
import {
  type Action,
  addressFromPublicKey,
  type BlockContext,
  DEFAULT_PARAMS,
  DEV_SOFT_VENDOR,
  ed25519PublicKey,
  encode,
  envelopeFromBytes,
  envelopeFromSigned,
  type Genesis,
  genesisStateWrites,
  MemoryState,
  minimumFee,
  parseGenesis,
  sha256,
  signedTransactionCodec,
  signTransaction,
  type TxEnvelope,
  utf8,
} from '@unc/core';
import { DEV_MODELS, devGenesisJson, devKey } from '../src/dev.js';

export type Key = { seed: Uint8Array; publicKey: Uint8Array; address: Uint8Array };

/** A key derived from a name: the same name gives the same key in every run. */
export function namedKey(name: string): Key {
  const seed = sha256(utf8(name));
  const publicKey = ed25519PublicKey(seed);
  return { seed, publicKey, address: addressFromPublicKey(publicKey) };
}

/** A dev-soft registration of the chip `publicKey` (first dev model), signed `signature` over the anchor at `anchorHeight`. */
export function devSoftRegistration(publicKey: Uint8Array, signature: Uint8Array, anchorHeight = 1n): Action {
  return {
    type: 'registerChip',
    anchorHeight,
    evidence: {
      type: 'dev-soft',
      vendorId: DEV_SOFT_VENDOR,
      publicKey,
      modelId: DEV_MODELS[0]!.modelId,
      signature,
    },
  };
}

/** The dev genesis of 2026-01-01 applied to a fresh state, and the context of block 1 on it. */
export function devBlockOne(): { genesis: Genesis; state: MemoryState; next: BlockContext } {
  const genesis = parseGenesis(devGenesisJson({ time: new Date('2026-01-01T00:00:00Z') }));
  const state = new MemoryState();
  state.apply(genesisStateWrites(genesis));
  const next: BlockContext = {
    chainId: genesis.chainId,
    height: 1n,
    time: genesis.genesisTime + 1000n,
    proposer: genesis.validators[0]!.publicKey,
    prevHash: new Uint8Array(32),
    prevBeacon: new Uint8Array(32),
    beacon: new Uint8Array(32),
  };
  return { genesis, state, next };
}

/**
 * A transfer of 1 base unit from dev key `from` to dev key 9 on `chainId`, at the minimum fee for
 * its size, valid up to height 100.
 */
export function devTransfer(chainId: string, from: number, nonce: bigint): TxEnvelope {
  const k = devKey(from);
  const base = {
    chainId,
    signer: k.publicKey,
    nonce,
    expiresAt: 100n,
    actions: [{ type: 'transfer' as const, to: devKey(9).address, amount: 1n, memo: new Uint8Array(0) }],
    fee: 0n,
  };
  const size = encode(signedTransactionCodec, { tx: base, signature: new Uint8Array(64) }).length;
  return envelopeFromSigned(signTransaction({ ...base, fee: minimumFee(DEFAULT_PARAMS, size, 1) }, k.seed));
}

/** The dev chain after block one (devBlockOne), with `tx(from, nonce)`: a devTransfer on it. */
export function devBlockOneTransfers() {
  const one = devBlockOne();
  return {
    ...one,
    tx: (from: number, nonce: bigint): TxEnvelope => devTransfer(one.genesis.chainId, from, nonce),
  };
}

/** The same body (the same hash) under a signature that does not verify. */
export function forged(env: TxEnvelope): TxEnvelope {
  const bytes = Uint8Array.from(env.bytes);
  bytes[bytes.length - 1]! ^= 1;
  return envelopeFromBytes(bytes);
}
