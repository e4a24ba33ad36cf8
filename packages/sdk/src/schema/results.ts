/**
 * The shapes of the RPC results, as schemas: the OpenRPC document is generated from them, and the
 * node's conformance test checks every method's real answer against them (strict objects, so a
 * field added to the node and not here fails it). The TypeScript types callers use are the
 * interfaces in views.ts.
 */
import * as v from 'valibot';
import { AddressText, Amount, Hash, HexString, Int, IsoTime, Power, PowerSum, Tagged } from './shapes.js';

const nullable = v.nullable;
const opt = v.optional;

export const TxResult = v.strictObject({
  hash: Hash,
  chainId: v.string(),
  from: AddressText,
  signer: HexString,
  nonce: Int,
  fee: Amount,
  expiresAt: Int,
  actions: v.array(Tagged),
  signature: HexString,
  size: Int,
});

const headerEntries = {
  chainId: v.string(),
  height: Int,
  time: IsoTime,
  timeMs: Int,
  hash: Hash,
  prevHash: Hash,
  stateRoot: Hash,
  txRoot: Hash,
  proposer: HexString,
  proposerAddress: AddressText,
  beacon: HexString,
  vrfProof: HexString,
  lastCommitHash: Hash,
  encoded: v.pipe(HexString, v.description('the canonical header bytes (its hash is `hash`)')),
};

export const HeaderResult = v.strictObject(headerEntries);

export const BlockResult = v.strictObject({
  ...headerEntries,
  txCount: Int,
  txs: v.union([v.array(Hash), v.array(TxResult)]),
  commit: v.strictObject({
    height: Int,
    round: Int,
    blockHash: Hash,
    signatures: v.array(v.strictObject({ validator: HexString, signature: HexString })),
  }),
});

export const TxReceiptResult = v.strictObject({
  hash: Hash,
  height: Int,
  index: Int,
  blockHash: Hash,
  time: IsoTime,
  tx: TxResult,
  events: v.array(Tagged),
});

const included = { hash: Hash, status: v.literal('included'), height: Int, index: Int, blockHash: HexString };
export const TxStatusResult = v.union([
  v.strictObject(included),
  v.strictObject({ hash: Hash, status: v.literal('pending') }),
  v.strictObject({
    hash: Hash,
    status: v.literal('dropped'),
    code: v.string(),
    reason: v.string(),
    height: Int,
  }),
  v.strictObject({ hash: Hash, status: v.literal('unknown') }),
]);

export const TxInclusionEvent = v.union([
  v.strictObject(included),
  v.strictObject({
    hash: Hash,
    status: v.literal('rejected'),
    code: v.string(),
    reason: v.string(),
    height: opt(Int),
  }),
]);

export const AccountResult = v.strictObject({
  address: AddressText,
  balance: Amount,
  nonce: Int,
  height: v.pipe(Int, v.description('the committed height the balance is read at')),
  stateRoot: Hash,
  proof: opt(v.pipe(HexString, v.description('encoded Merkle proof against stateRoot'))),
  value: opt(nullable(HexString)),
  pendingNonce: opt(
    v.pipe(
      Int,
      v.description(
        "with `pending`: the next free nonce counting the sender's transactions pending at this node (its word)",
      ),
    ),
  ),
});

const ProvenEntry = v.strictObject({
  value: v.pipe(nullable(HexString), v.description('the stored value, null when absent')),
  proof: v.pipe(HexString, v.description('encoded Merkle proof against the block state root')),
});

/**
 * With `proof`: the head height and state root the record was read at, its Merkle proof and stored
 * value (null: proven absent), and the other records its derived fields read (`related`, each under
 * the state key a client derives itself from the proven record; docs/rpc.md "Light clients").
 */
const ProvenKeyEntry = v.strictObject({
  key: v.pipe(
    HexString,
    v.description('the state key (a client matches it to a key it derived, never trusts it)'),
  ),
  value: v.pipe(nullable(HexString), v.description('the stored value, null when absent')),
  proof: v.pipe(HexString, v.description('encoded Merkle proof against the state root')),
});
const RecordProof = {
  height: opt(v.pipe(Int, v.description('with proof: the committed height the record is read at'))),
  stateRoot: opt(Hash),
  proof: opt(v.pipe(HexString, v.description('encoded Merkle proof of the record against stateRoot'))),
  value: opt(nullable(HexString)),
  related: opt(v.array(ProvenKeyEntry)),
};

export const ValidatorSetProofResult = v.strictObject({
  height: v.pipe(Int, v.description("the epoch's last block, whose state root the proofs are against")),
  epoch: v.pipe(Int, v.description('the epoch whose set the block stored')),
  set: v.pipe(ProvenEntry, v.description('the ring slot of that epoch (its validators, [] = genesis)')),
  genesis: v.pipe(ProvenEntry, v.description('the genesis validators')),
  params: v.pipe(ProvenEntry, v.description('the PoCI parameters (epochBlocks)')),
});

export const StatusResult = v.strictObject({
  chainId: v.string(),
  height: Int,
  hash: Hash,
  stateRoot: Hash,
  time: IsoTime,
  timeMs: Int,
  genesisHash: Hash,
  mempool: v.strictObject({ size: Int, bytes: Int }),
  validator: nullable(HexString),
  version: v.string(),
  peers: Int,
  syncing: nullable(
    v.strictObject({
      height: Int,
      target: Int,
      blocksPerSecond: v.number(),
      etaSeconds: nullable(v.number()),
    }),
  ),
  // Optional: nodes before it answer without it.
  syncStopped: opt(
    nullable(
      v.strictObject({
        height: Int,
        reason: v.string(),
        ours: Hash,
        theirs: Hash,
        peer: nullable(v.string()),
        nextStep: v.string(),
      }),
    ),
  ),
});

export const ValidatorSetResult = v.strictObject({
  height: Int,
  epoch: Int,
  source: v.picklist(['genesis', 'computed']),
  totalPower: PowerSum,
  quorumPower: PowerSum,
  validators: v.array(
    v.strictObject({
      publicKey: HexString,
      address: AddressText,
      power: Amount,
      sharePpm: Int,
      bonded: Amount,
      backedPower: Amount,
      ratedPower: PowerSum,
    }),
  ),
  candidates: Int,
  minValidatorBond: Amount,
  uncPerPowerUnit: Amount,
});

export const SupplyResult = v.strictObject({
  maxSupply: Amount,
  genesisAllocation: Amount,
  miningReserve: Amount,
  minted: Amount,
  reserveRemaining: Amount,
  burned: Amount,
  slashed: Amount,
  circulating: Amount,
  emittedAllowance: Amount,
  allocatedToEpochs: Amount,
  halvingPeriodMs: Int,
  currentEpoch: nullable(v.strictObject({ epoch: Int, totalWeight: Amount, startTime: Int })),
});

export const RewardResult = v.strictObject({
  chipId: Hash,
  owner: AddressText,
  epoch: Int,
  paidAt: Int,
  slotsAnswered: Int,
  slotsChallenged: Int,
  slotsMissed: Int,
  graceUsed: Int,
  power: Amount,
  weight: Amount,
  epochBudget: Amount,
  networkWeight: Amount,
  amount: Amount,
});

export const ParamsResult = v.strictObject({
  blockTimeMs: Int,
  maxBlockTxs: Int,
  maxBlockBytes: Int,
  maxTxBytes: Int,
  minFeePerByte: Amount,
  minFeePerAction: Amount,
  maxTxLifetimeBlocks: Int,
  devChain: v.boolean(),
  disputeWaitMs: Int,
  receiptWindowMs: Int,
});

export const GenesisResult = v.pipe(
  v.looseObject({ chainId: v.string() }),
  v.description('the genesis document (docs/genesis: its JSON form)'),
);

export const SendResult = v.strictObject({ hash: Hash, replaced: v.boolean() });
export const SendManyResult = v.array(
  v.union([
    SendResult,
    v.strictObject({ error: v.strictObject({ reason: v.string(), message: v.string() }) }),
    // "Busy, retry" for this one (a node catching up that could not judge it yet): only with reason
    // BUSY, and a wait that is a whole number of milliseconds, not negative.
    v.strictObject({
      error: v.strictObject({
        reason: v.literal('BUSY'),
        message: v.string(),
        retryAfterMs: v.pipe(v.number(), v.integer(), v.minValue(0)),
      }),
    }),
  ]),
);
export const MempoolResult = v.strictObject({ size: Int, bytes: Int });

export const ChipResult = v.strictObject({
  chipId: Hash,
  owner: AddressText,
  vendorId: v.string(),
  modelId: v.string(),
  profile: v.string(),
  power: Amount,
  certSerials: v.array(v.string()),
  keyMaterial: opt(HexString),
  status: v.picklist(['active', 'deregistered', 'revoked']),
  statusReason: v.string(),
  online: v.boolean(),
  consecutiveMisses: Int,
  registeredAt: Int,
  firstEpoch: Int,
  lastAnsweredAt: Int,
  slotsAnswered: Int,
  slotsMissed: Int,
  rewardsEarned: Amount,
  tpmClock: nullable(v.strictObject({ clock: Amount, resetCount: Int, restartCount: Int })),
  slots: v.array(
    v.strictObject({
      epoch: Int,
      slot: Int,
      height: Int,
      status: v.picklist(['answered', 'missed', 'open']),
      windowEnd: Int,
    }),
  ),
  challengeClass: Int,
  heartbeatOperator: opt(nullable(AddressText)),
});
/** unc_getChip: a chip, with `proof` its Merkle proofs (RecordProof). */
export const ProvenChipResult = v.strictObject({ ...ChipResult.entries, ...RecordProof });

export const ChipEventResult = v.strictObject({ height: Int, event: Tagged });

export const GovernanceResult = v.strictObject({ threshold: Int, keys: v.array(HexString), nonce: Int });

export const VendorResult = v.strictObject({
  id: v.string(),
  name: v.string(),
  profile: v.string(),
  roots: v.array(HexString),
  requireAkEku: v.boolean(),
  requireHardwareModuleName: v.boolean(),
});

export const ModelResult = v.strictObject({
  vendorId: v.string(),
  modelId: v.string(),
  name: v.string(),
  power: Amount,
});

export const EpochResult = v.strictObject({
  epoch: Int,
  startHeight: Int,
  endHeight: Int,
  seed: nullable(HexString),
  epochBlocks: Int,
  slotsPerEpoch: Int,
  challengeClasses: Int,
  answerWindowBlocks: Int,
  offlineAfterMisses: Int,
  startTime: nullable(Int),
  totalWeight: Amount,
  final: v.boolean(),
  budget: Amount,
});

const Uptime = v.strictObject({
  answered: Int,
  missed: Int,
  ratio: nullable(v.string()),
  windowMs: Int,
});

export const OfferResult = v.strictObject({
  id: Hash,
  provider: AddressText,
  price: v.pipe(Amount, v.description('base units per hour')),
  minHours: Int,
  maxHours: Int,
  noticeMs: Int,
  endpoint: v.string(),
  tlsFingerprints: v.array(Hash),
  attributes: v.strictObject({ memoryMiB: Int, region: v.string(), runtimes: v.array(v.string()) }),
  status: v.picklist(['open', 'closing', 'closed']),
  createdHeight: Int,
  createdTime: Int,
  closesAt: nullable(Int),
  leasesOpened: Int,
  chips: v.array(
    v.strictObject({
      chipId: Hash,
      modelId: v.string(),
      vendorId: v.string(),
      power: Amount,
      online: v.boolean(),
      available: v.boolean(),
      leaseId: nullable(Hash),
      uptime: Uptime,
    }),
  ),
  power: Amount,
  available: Int,
});

export const LeaseResult = v.strictObject({
  id: Hash,
  offerId: Hash,
  chipId: Hash,
  provider: AddressText,
  renter: AddressText,
  renterPublicKey: HexString,
  endpoint: v.string(),
  tlsFingerprints: v.array(Hash),
  pricePerHour: Amount,
  hours: Int,
  deposit: Amount,
  paid: Amount,
  refunded: Amount,
  remaining: Amount,
  unsettled: Amount,
  escrowUntil: Int,
  status: v.picklist(['active', 'closing', 'ended', 'closed']),
  startHeight: Int,
  startTime: Int,
  endTime: Int,
  settledTime: Int,
  slotsAnswered: Int,
  slotsMissed: Int,
  closingReason: nullable(v.string()),
  disputes: Int,
  closedHeight: nullable(Int),
  closedTime: nullable(Int),
  closedReason: nullable(v.string()),
});
/** unc_getLease: a lease, with `proof` its Merkle proofs (RecordProof). */
export const ProvenLeaseResult = v.strictObject({ ...LeaseResult.entries, ...RecordProof });

export const ProviderRecordResult = v.strictObject({
  address: AddressText,
  offers: Int,
  leases: Int,
  jobsReceipted: Int,
  ratingsCount: Int,
  rating: nullable(v.string()),
  ratingsSum: Int,
  disputes: Int,
  earnings: Amount,
  openOffers: v.array(Hash),
  activeLeases: Int,
});

/** The network figures at one height, over every chip (unc_getNetworkStats, unc_getNetworkHistory). */
export const NetworkStatsResult = v.strictObject({
  epoch: Int,
  height: v.pipe(Int, v.description("the block the figures are for (an epoch's first block, or the head)")),
  chips: Int,
  activeChips: Int,
  activePower: Power,
  onlineChips: Int,
  onlinePower: Power,
  ratedPower: Power,
});

/** A page's `nextCursor`: pass it back as `cursor`; null when this page is the last. */
const NextCursor = v.pipe(nullable(v.string()), v.description('the cursor of the next page, or null'));

export const AccountTransactionsResult = v.strictObject({
  address: AddressText,
  transactions: v.array(
    v.strictObject({ hash: Hash, height: Int, index: Int, time: IsoTime, timeMs: Int, tx: TxResult }),
  ),
  nextCursor: NextCursor,
});

export const ChipsPageResult = v.strictObject({
  chips: v.array(ChipResult),
  total: v.pipe(Int, v.description('the chips that match, over all pages')),
  nextCursor: NextCursor,
});

export const NetworkHistoryResult = v.strictObject({
  epochs: v.array(NetworkStatsResult),
  nextCursor: NextCursor,
});

export const LeaseEventsResult = v.strictObject({
  leaseId: Hash,
  events: v.array(
    v.strictObject({
      height: Int,
      txIndex: v.pipe(
        nullable(Int),
        v.description(
          "null for the block's own events (lease settlements at an epoch start or a lease's end)",
        ),
      ),
      event: Tagged,
    }),
  ),
  nextCursor: NextCursor,
});
