/** Set-up the node's mempool, admission and pre-verification tests share (test code only). */
import {
  addressFromPublicKey,
  type BlockContext,
  ed25519PublicKey,
  type Genesis,
  genesisStateWrites,
  MemoryState,
  parseGenesis,
  sha256,
  utf8,
} from '@unc/core';
import { devGenesisJson } from '../src/dev.js';

export type Key = { seed: Uint8Array; publicKey: Uint8Array; address: Uint8Array };

/** A key derived from a name: the same name gives the same key in every run. */
export function namedKey(name: string): Key {
  const seed = sha256(utf8(name));
  const publicKey = ed25519PublicKey(seed);
  return { seed, publicKey, address: addressFromPublicKey(publicKey) };
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
  };
  return { genesis, state, next };
}
