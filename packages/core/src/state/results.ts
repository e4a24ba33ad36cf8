import { address, hash32, MAX_MEMO_BYTES, publicKey } from '../chain/transaction.js';
import { evidenceKindCodec } from '../consensus/evidence-action.js';
import {
  bytes,
  type Codec,
  list,
  option,
  string,
  struct,
  taggedUnion,
  u8,
  u32,
  u64,
  u128,
} from '../encoding/codec.js';
import { DecodeError } from '../errors.js';
import { MAX_REASON_BYTES } from '../market/actions.js';
import { idCodec } from '../poci/registry.js';
import type { TxEvent, TxResult } from './execute.js';

/** Why an answer was not credited: u8 1 asleep, 2 rebooted. */
const uncreditedReasonCodec: Codec<'asleep' | 'rebooted'> = {
  name: 'UncreditedReason',
  write(w, v) {
    if (v === 'asleep') w.u8(1);
    else if (v === 'rebooted') w.u8(2);
    else throw new RangeError(`unknown uncredited reason ${String(v)}`);
  },
  read(r) {
    const tag = r.u8('UncreditedReason');
    if (tag === 1) return 'asleep';
    if (tag === 2) return 'rebooted';
    throw new DecodeError(`unknown uncredited reason tag ${tag}`);
  },
};

/** Stored with each block so `getTransaction` can say what a transaction did. */
export const txEventCodec: Codec<TxEvent> = taggedUnion<TxEvent>('TxEvent', {
  transfer: [
    1,
    struct('TransferEvent', { from: address, to: address, amount: u128, memo: bytes(MAX_MEMO_BYTES) }),
  ],
  fee: [2, struct('FeeEvent', { payer: address, amount: u128, burned: u128, toProposer: u128 })],
  governance: [3, struct('GovernanceEvent', { proposal: string(32, 'proposal'), nonce: u64 })],
  chipRegistered: [
    4,
    struct('ChipRegisteredEvent', {
      chipId: hash32,
      owner: address,
      vendorId: idCodec,
      modelId: idCodec,
      power: u128,
    }),
  ],
  chipTransferred: [5, struct('ChipTransferredEvent', { chipId: hash32, from: address, to: address })],
  chipDeregistered: [6, struct('ChipDeregisteredEvent', { chipId: hash32, owner: address })],
  slotAnswered: [7, struct('SlotAnsweredEvent', { chipId: hash32, epoch: u64, slot: u8, slotHeight: u64 })],
  slotMissed: [
    8,
    struct('SlotMissedEvent', {
      chipId: hash32,
      epoch: u64,
      slot: u8,
      slotHeight: u64,
      reason: string(256, 'reason'),
    }),
  ],
  chipRebooted: [9, struct('ChipRebootedEvent', { chipId: hash32, resetCount: u32, restartCount: u32 })],
  chipRewarded: [
    10,
    struct('ChipRewardedEvent', {
      chipId: hash32,
      owner: address,
      epoch: u64,
      answered: u8,
      challenged: u8,
      credited: u8,
      power: u128,
      weight: u128,
      budget: u128,
      totalWeight: u128,
      amount: u128,
    }),
  ],
  bonded: [11, struct('BondedEvent', { account: address, amount: u128, released: u128 })],
  unbonded: [
    12,
    struct('UnbondedEvent', { account: address, amount: u128, releaseHeight: u64, released: u128 }),
  ],
  // Unbonded UNC returned at its release height (rewards/bonds.ts), a block event.
  unbondReleased: [40, struct('UnbondReleasedEvent', { account: address, amount: u128 })],
  // An account named its validator's consensus key (consensus/epoch-validators.ts).
  consensusKeySet: [41, struct('ConsensusKeySetEvent', { account: address, publicKey })],
  // An owner named its heartbeat operator, in force from `from` (poci/operator.ts).
  heartbeatOperatorSet: [
    43,
    struct('HeartbeatOperatorSetEvent', { owner: address, operator: option(address), from: u64 }),
  ],
  // A tpm2 answer accepted without credit: the TPM was asleep or rebooted (poci/execute.ts).
  answerUncredited: [
    42,
    struct('AnswerUncreditedEvent', {
      chipId: hash32,
      epoch: u64,
      slot: u8,
      slotHeight: u64,
      reason: uncreditedReasonCodec,
      clockAdvanceMs: u64,
      requiredMs: u64,
    }),
  ],
  // Compute rental (market/settle.ts).
  offerCreated: [
    13,
    struct('OfferCreatedEvent', { offerId: hash32, provider: address, pricePerHour: u128, chips: u8 }),
  ],
  offerClosed: [14, struct('OfferClosedEvent', { offerId: hash32, provider: address, closesAt: u64 })],
  offerChipWithdrawn: [
    22,
    struct('OfferChipWithdrawnEvent', { offerId: hash32, chipId: hash32, provider: address }),
  ],
  leaseOpened: [
    15,
    struct('LeaseOpenedEvent', {
      leaseId: hash32,
      offerId: hash32,
      chipId: hash32,
      provider: address,
      renter: address,
      deposit: u128,
      endTime: u64,
    }),
  ],
  leaseToppedUp: [
    16,
    struct('LeaseToppedUpEvent', { leaseId: hash32, renter: address, amount: u128, remaining: u128 }),
  ],
  leaseClosing: [
    17,
    struct('LeaseClosingEvent', {
      leaseId: hash32,
      chipId: hash32,
      endTime: u64,
      reason: string(64, 'reason'),
    }),
  ],
  leaseSettled: [
    18,
    struct('LeaseSettledEvent', {
      leaseId: hash32,
      chipId: hash32,
      fromTime: u64,
      toTime: u64,
      cost: u128,
      paid: u128,
      refunded: u128,
      answered: u32,
      missed: u32,
      remaining: u128,
    }),
  ],
  leaseClosed: [
    19,
    struct('LeaseClosedEvent', {
      leaseId: hash32,
      chipId: hash32,
      reason: string(64, 'reason'),
      returned: u128,
      paid: u128,
      refunded: u128,
    }),
  ],
  receiptPosted: [
    20,
    struct('ReceiptPostedEvent', {
      leaseId: hash32,
      chipId: hash32,
      provider: address,
      jobId: hash32,
      rating: u8,
    }),
  ],
  disputeRecorded: [
    21,
    struct('DisputeRecordedEvent', {
      leaseId: hash32,
      chipId: hash32,
      provider: address,
      requestHash: hash32,
      reason: string(MAX_REASON_BYTES, 'reason'),
    }),
  ],
  // Consensus (consensus/evidence-action.ts); 30 and up, leaving 22–29 to the market.
  validatorSlashed: [
    30,
    struct('ValidatorSlashedEvent', {
      validator: hash32,
      account: address,
      kind: evidenceKindCodec,
      height: u64,
      round: u32,
      slashed: u128,
      reporter: address,
    }),
  ],
});

export const txResultCodec: Codec<TxResult> = struct<TxResult>('TxResult', {
  hash: hash32,
  events: list(txEventCodec, 1024, 'events'),
});

export const blockResultsCodec: Codec<TxResult[]> = list(txResultCodec, 100_000, 'results');

/** A block's own events, from its begin-block work (e.g. the market's epoch-end settlement). */
export const blockEventsCodec: Codec<TxEvent[]> = list(txEventCodec, 1_000_000, 'blockEvents');
