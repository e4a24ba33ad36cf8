import { addressFromPublicKey } from '../crypto/address.js';
import { ed25519Sign, ed25519Verify } from '../crypto/ed25519.js';
import { taggedHash } from '../crypto/hash.js';
import {
  bytes,
  type Codec,
  decode,
  encode,
  list,
  option,
  struct,
  taggedUnion,
  u8,
  u64,
  u128,
} from '../encoding/codec.js';

export const MAX_ACTIONS_PER_TX = 64;
export const MAX_MEMO_BYTES = 256;

import { type ConsensusEvidence, consensusEvidenceCodec } from '../consensus/messages.js';
import { address, chainIdCodec, hash32, publicKey, signature64 } from '../encoding/primitives.js';
import {
  closeLeaseCodec,
  closeOfferCodec,
  createOfferCodec,
  disputeCodec,
  type MarketAction,
  openLeaseCodec,
  postReceiptCodec,
  topUpLeaseCodec,
  updateOfferTlsCodec,
  withdrawOfferChipCodec,
} from '../market/actions.js';
import {
  type HeartbeatEvidence,
  heartbeatEvidenceCodec,
  type RegistrationEvidence,
  registrationEvidenceCodec,
} from '../poci/evidence.js';
import { type Approval, approvalsCodec, type GovProposal, govProposalCodec } from '../poci/governance.js';

export {
  address,
  chainIdCodec,
  hash32,
  MAX_CHAIN_ID_BYTES,
  publicKey,
  signature64,
} from '../encoding/primitives.js';
export const MAX_ANSWERS_PER_HEARTBEAT = 1024;

export interface TransferAction {
  type: 'transfer';
  to: Uint8Array;
  amount: bigint;
  memo: Uint8Array;
}

/** A governance proposal with the multisig approvals that enact it. */
export interface GovernanceAction {
  type: 'governance';
  proposal: GovProposal;
  approvals: Approval[];
}

/** Registers the chip whose evidence this is, owned by the transaction's sender. */
export interface RegisterChipAction {
  type: 'registerChip';
  /** Height of the recent block whose hash the registration message names. */
  anchorHeight: bigint;
  evidence: RegistrationEvidence;
}

export interface HeartbeatAnswer {
  chipId: Uint8Array;
  epoch: bigint;
  slot: number;
  evidence: HeartbeatEvidence;
}

/** Answers to challenge slots; fee-free when a transaction holds only these. */
export interface HeartbeatAction {
  type: 'heartbeat';
  answers: HeartbeatAnswer[];
}

/** Moves a chip to a new owner; the chip itself signs its consent. */
export interface TransferChipAction {
  type: 'transferChip';
  chipId: Uint8Array;
  newOwner: Uint8Array;
  anchorHeight: bigint;
  consent: HeartbeatEvidence;
}

export interface DeregisterChipAction {
  type: 'deregisterChip';
  chipId: Uint8Array;
}

/** Pays chips their rewards for final epochs (chips that stopped answering are paid this way). */
export interface ClaimRewardsAction {
  type: 'claimRewards';
  chipIds: Uint8Array[];
}

/**
 * Names the key the sender's validator node votes with (PROTOCOL.md §6): a key of its own (made by
 * `unc init`), never the account key. `signature` is that key's signature of
 * consensusKeyMessage(chainId, sender), so nobody can claim another's key. Set once per account.
 */
export interface SetConsensusKeyAction {
  type: 'setConsensusKey';
  publicKey: Uint8Array;
  signature: Uint8Array;
}

/**
 * Pledges UNC as a validator bond (slashable for equivocation). With a consensus key set, the
 * account is a validator candidate.
 */
export interface BondAction {
  type: 'bond';
  amount: bigint;
}

/** Starts unbonding; the UNC returns to the balance after the unbonding period. */
export interface UnbondAction {
  type: 'unbond';
  amount: bigint;
}

/**
 * Proof that a validator equivocated (consensus/evidence-action.ts): slashes its bond and removes
 * it from the validator sets computed from then on. Anyone may send it.
 */
export interface EvidenceAction {
  type: 'evidence';
  evidence: ConsensusEvidence;
}

/**
 * Names the one address whose heartbeats answer for the sender's chips from the next block on (or
 * none: only the sender). The operator can send heartbeats for those chips and nothing else; the
 * rewards still go to the chips' owner (poci/operator.ts, docs/poci.md "Heartbeat operator").
 */
export interface SetHeartbeatOperatorAction {
  type: 'setHeartbeatOperator';
  operator: Uint8Array | null;
}

/** Every action the state machine knows. Tags are stable forever; new actions take new tags. */
export type Action =
  | TransferAction
  | GovernanceAction
  | RegisterChipAction
  | HeartbeatAction
  | TransferChipAction
  | DeregisterChipAction
  | ClaimRewardsAction
  | BondAction
  | UnbondAction
  | MarketAction
  | EvidenceAction
  | SetConsensusKeyAction
  | SetHeartbeatOperatorAction;

export const heartbeatAnswerCodec: Codec<HeartbeatAnswer> = struct<HeartbeatAnswer>('HeartbeatAnswer', {
  chipId: hash32,
  epoch: u64,
  slot: u8,
  evidence: heartbeatEvidenceCodec,
});

export const actionCodec: Codec<Action> = taggedUnion<Action>('Action', {
  transfer: [1, struct('Transfer', { to: address, amount: u128, memo: bytes(MAX_MEMO_BYTES, 'memo') })],
  governance: [2, struct('Governance', { proposal: govProposalCodec, approvals: approvalsCodec })],
  registerChip: [3, struct('RegisterChip', { anchorHeight: u64, evidence: registrationEvidenceCodec })],
  heartbeat: [
    4,
    struct('Heartbeat', { answers: list(heartbeatAnswerCodec, MAX_ANSWERS_PER_HEARTBEAT, 'answers') }),
  ],
  transferChip: [
    5,
    struct('TransferChip', {
      chipId: hash32,
      newOwner: address,
      anchorHeight: u64,
      consent: heartbeatEvidenceCodec,
    }),
  ],
  deregisterChip: [6, struct('DeregisterChip', { chipId: hash32 })],
  claimRewards: [7, struct('ClaimRewards', { chipIds: list(hash32, 1024, 'chipIds') })],
  bond: [8, struct('Bond', { amount: u128 })],
  unbond: [9, struct('Unbond', { amount: u128 })],
  // Compute rental (market/actions.ts); tags 10–19 are the market's.
  createOffer: [10, createOfferCodec],
  closeOffer: [11, closeOfferCodec],
  openLease: [12, openLeaseCodec],
  topUpLease: [13, topUpLeaseCodec],
  closeLease: [14, closeLeaseCodec],
  postReceipt: [15, postReceiptCodec],
  dispute: [16, disputeCodec],
  updateOfferTls: [17, updateOfferTlsCodec],
  withdrawOfferChip: [18, withdrawOfferChipCodec],
  evidence: [20, struct('Evidence', { evidence: consensusEvidenceCodec })],
  setConsensusKey: [21, struct('SetConsensusKey', { publicKey, signature: signature64 })],
  setHeartbeatOperator: [22, struct('SetHeartbeatOperator', { operator: option(address) })],
});

export interface Transaction {
  chainId: string;
  signer: Uint8Array;
  nonce: bigint;
  fee: bigint;
  /** Last height at which the transaction may be included. */
  expiresAt: bigint;
  actions: Action[];
}

export const transactionCodec: Codec<Transaction> = struct<Transaction>('Transaction', {
  chainId: chainIdCodec,
  signer: publicKey,
  nonce: u64,
  fee: u128,
  expiresAt: u64,
  actions: list(actionCodec, MAX_ACTIONS_PER_TX, 'actions'),
});

export interface SignedTransaction {
  tx: Transaction;
  signature: Uint8Array;
}

export const signedTransactionCodec: Codec<SignedTransaction> = struct<SignedTransaction>(
  'SignedTransaction',
  {
    tx: transactionCodec,
    signature: signature64,
  },
);

const SIGN_DOMAIN = new TextEncoder().encode('UNC/tx\0');

function signingBytes(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(SIGN_DOMAIN.length + body.length);
  out.set(SIGN_DOMAIN);
  out.set(body, SIGN_DOMAIN.length);
  return out;
}

/** The transaction id: a hash of the signed body (not the signature, so ids are not malleable). */
export function transactionHash(tx: Transaction): Uint8Array {
  return taggedHash('UNC/tx', encode(transactionCodec, tx));
}

export function signTransaction(tx: Transaction, secretSeed: Uint8Array): SignedTransaction {
  return { tx, signature: ed25519Sign(secretSeed, signingBytes(encode(transactionCodec, tx))) };
}

export function verifyTransactionSignature(stx: SignedTransaction): boolean {
  return ed25519Verify(stx.tx.signer, signingBytes(encode(transactionCodec, stx.tx)), stx.signature);
}

export function senderAddress(tx: Transaction): Uint8Array {
  return addressFromPublicKey(tx.signer);
}

/**
 * A transaction as it travels: decoded once, with its encoding, id and size kept together so the
 * mempool, the block builder and storage never re-encode or re-hash it.
 */
export interface TxEnvelope {
  readonly stx: SignedTransaction;
  readonly bytes: Uint8Array;
  readonly hash: Uint8Array;
  readonly sender: Uint8Array;
}

export function envelopeFromBytes(raw: Uint8Array): TxEnvelope {
  const stx = decode(signedTransactionCodec, raw);
  const bodyLength = raw.length - 64;
  return {
    stx,
    bytes: raw,
    hash: taggedHash('UNC/tx', raw.subarray(0, bodyLength)),
    sender: addressFromPublicKey(stx.tx.signer),
  };
}

export function envelopeFromSigned(stx: SignedTransaction): TxEnvelope {
  return envelopeFromBytes(encode(signedTransactionCodec, stx));
}

/** Signature check that reuses the envelope's bytes (the body is the encoding minus the signature). */
export function verifyEnvelopeSignature(env: TxEnvelope): boolean {
  return ed25519Verify(env.stx.tx.signer, envelopeSigningMessage(env), env.stx.signature);
}

/** The message an envelope's signature signs (for checking it elsewhere, e.g. on a worker thread). */
export function envelopeSigningMessage(env: TxEnvelope): Uint8Array {
  return signingBytes(env.bytes.subarray(0, env.bytes.length - 64));
}
