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

export type ActionJson =
  | { type: 'transfer'; to: string; amount: string; memo: string }
  | { type: 'governance'; proposal: string; detail: Record<string, unknown>; approvals: string[] }
  | { type: 'registerChip'; anchorHeight: number; profile: string }
  | { type: 'heartbeat'; answers: { chipId: string; epoch: number; slot: number; profile: string }[] }
  | { type: 'transferChip'; chipId: string; newOwner: string }
  | { type: 'deregisterChip'; chipId: string }
  | { type: 'claimRewards'; chipIds: string[] }
  | { type: 'bond'; amount: string }
  | { type: 'unbond'; amount: string };

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
  | { type: 'fee'; payer: string; amount: string; burned: string; toProposer: string }
  | { type: 'governance'; proposal: string; nonce: number }
  | {
      type: 'chipRegistered';
      chipId: string;
      owner: string;
      vendorId: string;
      modelId: string;
      power: string;
    }
  | { type: 'chipTransferred'; chipId: string; from: string; to: string }
  | { type: 'chipDeregistered'; chipId: string; owner: string }
  | { type: 'slotAnswered'; chipId: string; epoch: number; slot: number; slotHeight: number }
  | { type: 'slotMissed'; chipId: string; epoch: number; slot: number; slotHeight: number; reason: string }
  | { type: 'chipRebooted'; chipId: string; resetCount: number; restartCount: number }
  | {
      type: 'chipRewarded';
      chipId: string;
      owner: string;
      epoch: number;
      answered: number;
      credited: number;
      power: string;
      weight: string;
      budget: string;
      totalWeight: string;
      amount: string;
    }
  | { type: 'bonded'; account: string; amount: string; released: string }
  | { type: 'unbonded'; account: string; amount: string; releaseHeight: number; released: string };

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
  /** The 3% allocated at genesis. */
  genesisAllocation: string;
  /** The 97% that only mining may create. */
  miningReserve: string;
  /** Mined so far (paid to chip owners). */
  minted: string;
  reserveRemaining: string;
  burned: string;
  slashed: string;
  /** genesisAllocation + minted − burned − slashed. */
  circulating: string;
  /** E(t): what the schedule allows to have been mined by the latest block time. */
  emittedAllowance: string;
  /** Budgets fixed for final epochs so far (paid as chips are settled). */
  allocatedToEpochs: string;
  halvingPeriodMs: number;
  currentEpoch: { epoch: number; totalWeight: string; startTime: number } | null;
}

export interface RewardJson {
  chipId: string;
  owner: string;
  epoch: number;
  /** Height at which it was paid. */
  paidAt: number;
  slotsAnswered: number;
  slotsMissed: number;
  graceUsed: number;
  power: string;
  /** power × credited slots */
  weight: string;
  epochBudget: string;
  networkWeight: string;
  amount: string;
}

export function actionToJson(a: Action): ActionJson {
  switch (a.type) {
    case 'transfer':
      return { type: 'transfer', to: encodeAddress(a.to), amount: a.amount.toString(), memo: toHex(a.memo) };
    case 'governance':
      return {
        type: 'governance',
        proposal: a.proposal.type,
        detail: toJsonish(a.proposal) as Record<string, unknown>,
        approvals: a.approvals.map((x) => toHex(x.publicKey)),
      };
    case 'registerChip':
      return { type: 'registerChip', anchorHeight: Number(a.anchorHeight), profile: a.evidence.type };
    case 'heartbeat':
      return {
        type: 'heartbeat',
        answers: a.answers.map((x) => ({
          chipId: toHex(x.chipId),
          epoch: Number(x.epoch),
          slot: x.slot,
          profile: x.evidence.type,
        })),
      };
    case 'transferChip':
      return { type: 'transferChip', chipId: toHex(a.chipId), newOwner: encodeAddress(a.newOwner) };
    case 'deregisterChip':
      return { type: 'deregisterChip', chipId: toHex(a.chipId) };
    case 'claimRewards':
      return { type: 'claimRewards', chipIds: a.chipIds.map(toHex) };
    case 'bond':
      return { type: 'bond', amount: a.amount.toString() };
    case 'unbond':
      return { type: 'unbond', amount: a.amount.toString() };
  }
}

/** Plain JSON for nested protocol values: bytes as hex, bigints as decimal strings. */
export function toJsonish(v: unknown): unknown {
  if (typeof v === 'bigint') return v.toString();
  if (v instanceof Uint8Array) return toHex(v);
  if (Array.isArray(v)) return v.map(toJsonish);
  if (v && typeof v === 'object')
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toJsonish(x)]));
  return v;
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
    case 'governance':
      return { type: 'governance', proposal: e.proposal, nonce: Number(e.nonce) };
    case 'chipRegistered':
      return {
        type: 'chipRegistered',
        chipId: toHex(e.chipId),
        owner: encodeAddress(e.owner),
        vendorId: e.vendorId,
        modelId: e.modelId,
        power: e.power.toString(),
      };
    case 'chipTransferred':
      return {
        type: 'chipTransferred',
        chipId: toHex(e.chipId),
        from: encodeAddress(e.from),
        to: encodeAddress(e.to),
      };
    case 'chipDeregistered':
      return { type: 'chipDeregistered', chipId: toHex(e.chipId), owner: encodeAddress(e.owner) };
    case 'slotAnswered':
      return {
        type: 'slotAnswered',
        chipId: toHex(e.chipId),
        epoch: Number(e.epoch),
        slot: e.slot,
        slotHeight: Number(e.slotHeight),
      };
    case 'slotMissed':
      return {
        type: 'slotMissed',
        chipId: toHex(e.chipId),
        epoch: Number(e.epoch),
        slot: e.slot,
        slotHeight: Number(e.slotHeight),
        reason: e.reason,
      };
    case 'chipRebooted':
      return {
        type: 'chipRebooted',
        chipId: toHex(e.chipId),
        resetCount: e.resetCount,
        restartCount: e.restartCount,
      };
    case 'chipRewarded':
      return {
        type: 'chipRewarded',
        chipId: toHex(e.chipId),
        owner: encodeAddress(e.owner),
        epoch: Number(e.epoch),
        answered: e.answered,
        credited: e.credited,
        power: e.power.toString(),
        weight: e.weight.toString(),
        budget: e.budget.toString(),
        totalWeight: e.totalWeight.toString(),
        amount: e.amount.toString(),
      };
    case 'bonded':
      return {
        type: 'bonded',
        account: encodeAddress(e.account),
        amount: e.amount.toString(),
        released: e.released.toString(),
      };
    case 'unbonded':
      return {
        type: 'unbonded',
        account: encodeAddress(e.account),
        amount: e.amount.toString(),
        releaseHeight: Number(e.releaseHeight),
        released: e.released.toString(),
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

export interface SlotJson {
  epoch: number;
  slot: number;
  height: number;
  /** answered: included in time; missed: window closed without an answer; open: answerable now;
   *  upcoming: the slot block is not committed yet. */
  status: 'answered' | 'missed' | 'open' | 'upcoming';
  windowEnd: number;
}

export interface ChipJson {
  chipId: string;
  owner: string;
  vendorId: string;
  modelId: string;
  profile: string;
  power: string;
  /** Serials of the certificates that vouched for the chip (revoking one revokes the chip). */
  certSerials: string[];
  status: 'active' | 'deregistered' | 'revoked';
  statusReason: string;
  online: boolean;
  consecutiveMisses: number;
  registeredAt: number;
  firstEpoch: number;
  lastAnsweredAt: number;
  slotsAnswered: number;
  slotsMissed: number;
  rewardsEarned: string;
  tpmClock: { clock: string; resetCount: number; restartCount: number } | null;
  /** The chip's slots in the previous and the current epoch. */
  slots: SlotJson[];
  nextSlot: SlotJson | null;
}

export interface VendorJson {
  id: string;
  name: string;
  profile: string;
  roots: string[];
}

export interface ModelJson {
  vendorId: string;
  modelId: string;
  name: string;
  power: string;
}

export interface ChipEventJson {
  height: number;
  event: TxEventJson;
}

export interface EpochJson {
  epoch: number;
  startHeight: number;
  endHeight: number;
  seed: string | null;
  epochBlocks: number;
  slotsPerEpoch: number;
  answerWindowBlocks: number;
  offlineAfterMisses: number;
}
