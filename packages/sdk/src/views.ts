/**
 * The JSON shapes of the RPC: what the node returns and what the SDK, CLI and explorer read.
 * Hashes and keys are lowercase hex, addresses bech32, amounts decimal strings of base units
 * (never JS numbers), heights and nonces numbers.
 */
import {
  type Action,
  addressFromPublicKey,
  type Block,
  type BlockHeader,
  blockHeaderCodec,
  encode,
  encodeAddress,
  type TxEnvelope,
  type TxEvent,
  toHex,
} from '@unc/core';

export type ActionJson = { type: 'transfer'; to: string; amount: string; memo: string };

export interface TxJson {
  hash: string;
  chainId: string;
  from: string;
  signer: string;
  nonce: number;
  fee: string;
  expiresAt: number;
  actions: ActionJson[];
  signature: string;
  size: number;
}

export type TxEventJson =
  | { type: 'transfer'; from: string; to: string; amount: string; memo: string }
  | { type: 'fee'; payer: string; amount: string; burned: string; toProposer: string };

export interface HeaderJson {
  chainId: string;
  height: number;
  time: string;
  timeMs: number;
  hash: string;
  prevHash: string;
  stateRoot: string;
  txRoot: string;
  proposer: string;
  proposerAddress: string;
  beacon: string;
  vrfProof: string;
  lastCommitHash: string;
  /** The canonical encoding of the header, so a client can recompute its hash itself. */
  encoded: string;
}

export interface BlockJson extends HeaderJson {
  txCount: number;
  txs: string[] | TxJson[];
  commit: { height: number; blockHash: string; signatures: { validator: string; signature: string }[] };
}

export interface TxReceiptJson {
  hash: string;
  height: number;
  index: number;
  blockHash: string;
  time: string;
  tx: TxJson;
  events: TxEventJson[];
}

export interface AccountJson {
  address: string;
  balance: string;
  nonce: number;
  /** The committed height the balance is read at. */
  height: number;
  stateRoot: string;
  /** Encoded Merkle proof of the account against stateRoot, when asked for. */
  proof?: string;
  /** The encoded account value the proof is for (absent when the account does not exist). */
  value?: string | null;
}

export interface StatusJson {
  chainId: string;
  height: number;
  hash: string;
  stateRoot: string;
  time: string;
  timeMs: number;
  genesisHash: string;
  mempool: { size: number; bytes: number };
  validator: string | null;
  version: string;
}

export interface SupplyJson {
  maxSupply: string;
  genesisAllocation: string;
  miningReserve: string;
  minted: string;
  burned: string;
  slashed: string;
  circulating: string;
}

export function actionToJson(a: Action): ActionJson {
  switch (a.type) {
    case 'transfer':
      return { type: 'transfer', to: encodeAddress(a.to), amount: a.amount.toString(), memo: toHex(a.memo) };
  }
}

export function txToJson(env: TxEnvelope): TxJson {
  const { tx, signature } = env.stx;
  return {
    hash: toHex(env.hash),
    chainId: tx.chainId,
    from: encodeAddress(env.sender),
    signer: toHex(tx.signer),
    nonce: Number(tx.nonce),
    fee: tx.fee.toString(),
    expiresAt: Number(tx.expiresAt),
    actions: tx.actions.map(actionToJson),
    signature: toHex(signature),
    size: env.bytes.length,
  };
}

export function eventToJson(e: TxEvent): TxEventJson {
  switch (e.type) {
    case 'transfer':
      return {
        type: 'transfer',
        from: encodeAddress(e.from),
        to: encodeAddress(e.to),
        amount: e.amount.toString(),
        memo: toHex(e.memo),
      };
    case 'fee':
      return {
        type: 'fee',
        payer: encodeAddress(e.payer),
        amount: e.amount.toString(),
        burned: e.burned.toString(),
        toProposer: e.toProposer.toString(),
      };
  }
}

export function headerToJson(header: BlockHeader, hash: Uint8Array): HeaderJson {
  return {
    chainId: header.chainId,
    height: Number(header.height),
    time: new Date(Number(header.time)).toISOString(),
    timeMs: Number(header.time),
    hash: toHex(hash),
    prevHash: toHex(header.prevHash),
    stateRoot: toHex(header.stateRoot),
    txRoot: toHex(header.txRoot),
    proposer: toHex(header.proposer),
    proposerAddress: encodeAddress(addressFromPublicKey(header.proposer)),
    beacon: toHex(header.beacon),
    vrfProof: toHex(header.vrfProof),
    lastCommitHash: toHex(header.lastCommitHash),
    encoded: toHex(encode(blockHeaderCodec, header)),
  };
}

export function blockToJson(block: Block, hash: Uint8Array, txs: TxEnvelope[], full: boolean): BlockJson {
  return {
    ...headerToJson(block.header, hash),
    txCount: txs.length,
    txs: full ? txs.map(txToJson) : txs.map((t) => toHex(t.hash)),
    commit: {
      height: Number(block.commit.height),
      blockHash: toHex(block.commit.blockHash),
      signatures: block.commit.signatures.map((s) => ({
        validator: toHex(s.validator),
        signature: toHex(s.signature),
      })),
    },
  };
}
