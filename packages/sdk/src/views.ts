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
  jobRequestDigest,
  type MarketAction,
  type MarketEvent,
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
  | { type: 'setConsensusKey'; publicKey: string }
  /** `operator` (an address, or null: none) answers for the sender's chips from the next block. */
  | { type: 'setHeartbeatOperator'; operator: string | null }
  | { type: 'unbond'; amount: string }
  | { type: 'evidence'; kind: string; validator: string; height: number; round: number }
  | MarketActionJson;

export type MarketActionJson =
  | {
      type: 'createOffer';
      chipIds: string[];
      pricePerHour: string;
      minHours: number;
      maxHours: number;
      noticeMs: number;
      endpoint: string;
      attributes: OfferAttributesJson;
      tlsFingerprints: string[];
    }
  | { type: 'closeOffer'; offerId: string }
  | { type: 'withdrawOfferChip'; offerId: string; chipId: string }
  | {
      type: 'openLease';
      offerId: string;
      chipId: string | null;
      hours: number;
      deposit: string;
      maxPricePerHour: string;
      termsDigest: string;
    }
  | { type: 'topUpLease'; leaseId: string; amount: string }
  | { type: 'closeLease'; leaseId: string }
  | { type: 'postReceipt'; leaseId: string; chipId: string; jobId: string; rating: number }
  | { type: 'dispute'; leaseId: string; requestHash: string; reason: string }
  | { type: 'updateOfferTls'; offerId: string; fingerprints: string[] };

export interface OfferAttributesJson {
  memoryMiB: number;
  region: string;
  runtimes: string[];
}

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
  /** A tpm2 answer accepted without credit (a miss): the TPM was asleep (its clock advanced
   *  `clockAdvanceMs`, less than `requiredMs`) or rebooted (both 0) since the previous answer. */
  | {
      type: 'answerUncredited';
      chipId: string;
      epoch: number;
      slot: number;
      slotHeight: number;
      reason: 'asleep' | 'rebooted';
      clockAdvanceMs: string;
      requiredMs: string;
    }
  | {
      type: 'chipRewarded';
      chipId: string;
      owner: string;
      epoch: number;
      answered: number;
      /** Challenges the chip's class drew in the epoch. */
      challenged: number;
      credited: number;
      power: string;
      weight: string;
      budget: string;
      totalWeight: string;
      amount: string;
    }
  | { type: 'bonded'; account: string; amount: string; released: string }
  | {
      type: 'validatorSlashed';
      validator: string;
      account: string;
      kind: string;
      height: number;
      round: number;
      slashed: string;
      reporter: string;
    }
  | { type: 'unbonded'; account: string; amount: string; releaseHeight: number; released: string }
  /** A block event: unbonded UNC returned to the balance at its release height. */
  | { type: 'unbondReleased'; account: string; amount: string }
  | { type: 'consensusKeySet'; account: string; publicKey: string }
  /** `operator` (null: none) answers for `owner`'s chips from height `from`. */
  | { type: 'heartbeatOperatorSet'; owner: string; operator: string | null; from: number }
  | MarketEventJson;

export type MarketEventJson =
  | { type: 'offerCreated'; offerId: string; provider: string; pricePerHour: string; chips: number }
  | { type: 'offerClosed'; offerId: string; provider: string; closesAt: number }
  | { type: 'offerChipWithdrawn'; offerId: string; chipId: string; provider: string }
  | {
      type: 'leaseOpened';
      leaseId: string;
      offerId: string;
      chipId: string;
      provider: string;
      renter: string;
      deposit: string;
      endTime: number;
    }
  | { type: 'leaseToppedUp'; leaseId: string; renter: string; amount: string; remaining: string }
  | { type: 'leaseClosing'; leaseId: string; chipId: string; endTime: number; reason: string }
  | {
      type: 'leaseSettled';
      leaseId: string;
      chipId: string;
      fromTime: number;
      toTime: number;
      cost: string;
      paid: string;
      refunded: string;
      answered: number;
      missed: number;
      remaining: string;
    }
  | {
      type: 'leaseClosed';
      leaseId: string;
      chipId: string;
      reason: string;
      returned: string;
      paid: string;
      refunded: string;
    }
  | {
      type: 'receiptPosted';
      leaseId: string;
      chipId: string;
      provider: string;
      jobId: string;
      rating: number;
    }
  | {
      type: 'disputeRecorded';
      leaseId: string;
      chipId: string;
      provider: string;
      requestHash: string;
      reason: string;
    };

export interface HeaderJson {
  chainId: string;
  height: number;
  time: string;
  timeMs: number;
  hash: string;
  prevHash: string;
  stateRoot: string;
  txRoot: string;
  /** The proposer's consensus key. */
  proposer: string;
  /** The account behind it (that earned the block's proposer fees). */
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
  /** The precommits that made the block final, and the round they were cast in. */
  commit: {
    height: number;
    round: number;
    blockHash: string;
    signatures: { validator: string; signature: string }[];
  };
}

/** A proven state entry: its value (null = absent) and the encoded Merkle proof. */
export interface ProvenEntryJson {
  value: string | null;
  proof: string;
}

/** A proven entry that names its state key: a client looks it up by a key it derived, never trusts it. */
export interface ProvenKeyEntryJson extends ProvenEntryJson {
  key: string;
}

/**
 * What unc_getChip and unc_getLease add with `proof` (as unc_getAccount): the head height and
 * state root read at, the record's Merkle proof and stored value, and the other records its derived
 * fields read (a chip's status: PoCI parameters, allow-list entry, revoked serials; a lease's
 * offer: endpoint and TLS fingerprints). LightClient.verifyChip / verifyLease check them.
 */
export interface RecordProofJson {
  height?: number;
  stateRoot?: string;
  proof?: string;
  value?: string | null;
  related?: ProvenKeyEntryJson[];
}

/** unc_getValidatorSetProof: the next epoch's set, proven against an epoch's last block. */
export interface ValidatorSetProofJson {
  height: number;
  epoch: number;
  set: ProvenEntryJson;
  genesis: ProvenEntryJson;
  params: ProvenEntryJson;
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

/** `unc_getTransactionStatus`: where a transaction is. A dropped one says why and at what height. */
export type TxStatusJson =
  | { hash: string; status: 'included'; height: number; index: number; blockHash: string }
  | { hash: string; status: 'pending' }
  | {
      hash: string;
      status: 'dropped';
      code: string;
      reason: string;
      height: number;
      /** The heartbeat answer the drop is about, when it is about one: chip id (hex), epoch, slot. */
      answer?: AnswerRefJson;
    }
  | { hash: string; status: 'unknown' };

/**
 * The heartbeat answer a refusal or drop is about (`error.data.answer`, a dropped status's `answer`):
 * a miner tells which answer of its batch sank it from this, not from the message's words.
 */
export interface AnswerRefJson {
  chipId: string;
  epoch: number;
  slot: number;
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
  /**
   * When asked for (`pending`): the next free nonce counting the sender's transactions pending at
   * this node, the ones in a decided block being written and the mempool's run without a gap. The
   * node's word: one that lies makes a transaction wait in a gap until it expires.
   */
  pendingNonce?: number;
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
  /** Peers connected over the p2p network (0 for a node without one). */
  peers: number;
  /** While the node catches up with its peers before joining consensus; null otherwise. */
  syncing: { height: number; target: number; blocksPerSecond: number; etaSeconds: number | null } | null;
  /**
   * Block sync stopped for good on two certified histories (CONFLICTING CHAIN), until the operator
   * restarts the node: the block height, why, this node's head hash and the peer's block hash, the
   * peer, and what to do (docs/operators.md). Null otherwise; absent from nodes before it existed.
   */
  syncStopped?: {
    height: number;
    reason: string;
    ours: string;
    theirs: string;
    peer: string | null;
    nextStep: string;
  } | null;
}

export interface ValidatorJson {
  /** Its consensus key: the key its node signs votes and proposals with (never an account key). */
  publicKey: string;
  /** The account that registered that key: its bond backs it, it owns the chips, it earns the proposer fees. */
  address: string;
  /**
   * Voting power: attested online power at the epoch start, each chip weighted by the share of its
   * challenges it answered in the epoch before (docs/consensus.md), counted only up to
   * `backedPower` (or its genesis weight).
   */
  power: string;
  /** Share of the set's power, in parts per million. */
  sharePpm: number;
  /** Base units bonded by `address` now. */
  bonded: string;
  /** Power units its bond backs now: bonded ÷ uncPerPowerUnit, 0 below minValidatorBond. */
  backedPower: string;
  /** Rated power of the chips `address` owns now, before liveness and the bond cap. */
  ratedPower: string;
}

/** The validator set that signs a height, and where it came from. */
export interface ValidatorSetJson {
  height: number;
  epoch: number;
  /** 'genesis' until an epoch boundary computed a set from bonds and online power. */
  source: 'genesis' | 'computed';
  totalPower: string;
  /** Power a commit needs: strictly more than 2/3 of the total. */
  quorumPower: string;
  validators: ValidatorJson[];
  /** Accounts with at least minValidatorBond bonded and a consensus key: candidates for the next sets. */
  candidates: number;
  /** The rules: base units a validator must bond, and base units of bond per unit of power. */
  minValidatorBond: string;
  uncPerPowerUnit: string;
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
  /** Challenges the chip's class drew in the epoch (S in expectation). */
  slotsChallenged: number;
  slotsMissed: number;
  /** Misses the grace budget forgave. */
  graceUsed: number;
  power: string;
  /** power × credited / challenged × UPTIME_SCALE (core rewards/emission.ts) */
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
    case 'setConsensusKey':
      return { type: 'setConsensusKey', publicKey: toHex(a.publicKey) };
    case 'setHeartbeatOperator':
      return { type: 'setHeartbeatOperator', operator: a.operator ? encodeAddress(a.operator) : null };
    case 'unbond':
      return { type: 'unbond', amount: a.amount.toString() };
    case 'evidence':
      return {
        type: 'evidence',
        kind: a.evidence.type,
        validator: toHex(
          a.evidence.type === 'duplicate-vote' ? a.evidence.first.validator : a.evidence.first.proposer,
        ),
        height: Number(a.evidence.first.height),
        round: a.evidence.first.round,
      };
    case 'createOffer':
    case 'closeOffer':
    case 'openLease':
    case 'topUpLease':
    case 'closeLease':
    case 'postReceipt':
    case 'dispute':
    case 'updateOfferTls':
    case 'withdrawOfferChip':
      return marketActionToJson(a);
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
    case 'answerUncredited':
      return {
        type: 'answerUncredited',
        chipId: toHex(e.chipId),
        epoch: Number(e.epoch),
        slot: e.slot,
        slotHeight: Number(e.slotHeight),
        reason: e.reason,
        clockAdvanceMs: e.clockAdvanceMs.toString(),
        requiredMs: e.requiredMs.toString(),
      };
    case 'chipRewarded':
      return {
        type: 'chipRewarded',
        chipId: toHex(e.chipId),
        owner: encodeAddress(e.owner),
        epoch: Number(e.epoch),
        answered: e.answered,
        challenged: e.challenged,
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
    case 'unbondReleased':
      return { type: 'unbondReleased', account: encodeAddress(e.account), amount: e.amount.toString() };
    case 'consensusKeySet':
      return { type: 'consensusKeySet', account: encodeAddress(e.account), publicKey: toHex(e.publicKey) };
    case 'heartbeatOperatorSet':
      return {
        type: 'heartbeatOperatorSet',
        owner: encodeAddress(e.owner),
        operator: e.operator ? encodeAddress(e.operator) : null,
        from: Number(e.from),
      };
    case 'validatorSlashed':
      return {
        type: 'validatorSlashed',
        validator: toHex(e.validator),
        account: encodeAddress(e.account),
        kind: e.kind,
        height: Number(e.height),
        round: e.round,
        slashed: e.slashed.toString(),
        reporter: encodeAddress(e.reporter),
      };
    case 'offerCreated':
    case 'offerClosed':
    case 'offerChipWithdrawn':
    case 'leaseOpened':
    case 'leaseToppedUp':
    case 'leaseClosing':
    case 'leaseSettled':
    case 'leaseClosed':
    case 'receiptPosted':
    case 'disputeRecorded':
      return marketEventToJson(e);
  }
}

/**
 * `proposerAccount`: the account that registered the proposer's consensus key (a node looks it up
 * in its state, accountOfConsensusKey); without it, the address of the key itself.
 */
export function headerToJson(
  header: BlockHeader,
  hash: Uint8Array,
  proposerAccount?: Uint8Array,
): HeaderJson {
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
    proposerAddress: encodeAddress(proposerAccount ?? addressFromPublicKey(header.proposer)),
    beacon: toHex(header.beacon),
    vrfProof: toHex(header.vrfProof),
    lastCommitHash: toHex(header.lastCommitHash),
    encoded: toHex(encode(blockHeaderCodec, header)),
  };
}

export function blockToJson(
  block: Block,
  hash: Uint8Array,
  txs: TxEnvelope[],
  full: boolean,
  proposerAccount?: Uint8Array,
): BlockJson {
  return {
    ...headerToJson(block.header, hash, proposerAccount),
    txCount: txs.length,
    txs: full ? txs.map(txToJson) : txs.map((t) => toHex(t.hash)),
    commit: {
      height: Number(block.commit.height),
      round: block.commit.round,
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
  /** answered: included in time; missed: window closed without an answer; open: answerable now.
   *  Only committed blocks challenge: there is no future challenge to show (PROTOCOL.md §4.3). */
  status: 'answered' | 'missed' | 'open';
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
  /** Hex of the registered attestation key (profile-specific), to verify job receipts offline. */
  keyMaterial?: string;
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
  /** The challenges the chip's class drew in the previous and the current epoch so far (`slot` is
   *  the index of the challenge in its epoch). */
  slots: SlotJson[];
  /** The chip's challenge class: a block challenges the chips of one class, drawn from its beacon. */
  challengeClass: number;
  /** The address whose heartbeats answer for the chip besides its owner (the owner's heartbeat
   *  operator in force at the next block; core poci/operator.ts), null for none. Absent from nodes
   *  older than the rule. */
  heartbeatOperator?: string | null;
  height?: number;
  stateRoot?: string;
  proof?: string;
  value?: string | null;
  related?: ProvenKeyEntryJson[];
}

export interface VendorJson {
  id: string;
  name: string;
  profile: string;
  roots: string[];
  /** tpm2: AK certificates must carry extendedKeyUsage tcg-kp-AIKCertificate (2.23.133.8.3). */
  requireAkEku: boolean;
  /** tpm2: AK certificates must name the device (HardwareModuleName): one TPM, one chip. */
  requireHardwareModuleName: boolean;
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
  /** Challenges per chip per epoch in expectation (S). */
  slotsPerEpoch: number;
  /** Number of challenge classes M = max(1, floor(epochBlocks / S)); each block challenges one. */
  challengeClasses: number;
  answerWindowBlocks: number;
  offlineAfterMisses: number;
  /** Chain time (ms) of the epoch's first block; null while the epoch has not started. */
  startTime: number | null;
  /** Sum over chips of power × credited slots so far (what the budget is split by). */
  totalWeight: string;
  /** Whether the budget is fixed (the epoch's last answer window has closed). */
  final: boolean;
  /** Final: the epoch's fixed budget (0 if nobody earned in it). Otherwise what it has accrued so far:
   *  E(min(now, its end)) − E(its start), its own span of the schedule (docs/security-audit-time.md
   *  T2: an epoch nobody earned in is allotted nothing, and its emission is carried into no other). */
  budget: string;
}

// ---- Compute rental (PROTOCOL.md §8) ----

export function marketActionToJson(a: MarketAction): MarketActionJson {
  switch (a.type) {
    case 'createOffer':
      return {
        type: 'createOffer',
        chipIds: a.chipIds.map(toHex),
        pricePerHour: a.pricePerHour.toString(),
        minHours: a.minHours,
        maxHours: a.maxHours,
        noticeMs: Number(a.noticeMs),
        endpoint: a.endpoint,
        attributes: { ...a.attributes, runtimes: [...a.attributes.runtimes] },
        tlsFingerprints: a.tlsFingerprints.map(toHex),
      };
    case 'closeOffer':
      return { type: 'closeOffer', offerId: toHex(a.offerId) };
    case 'withdrawOfferChip':
      return { type: 'withdrawOfferChip', offerId: toHex(a.offerId), chipId: toHex(a.chipId) };
    case 'openLease':
      return {
        type: 'openLease',
        offerId: toHex(a.offerId),
        chipId: a.chipId ? toHex(a.chipId) : null,
        hours: a.hours,
        deposit: a.deposit.toString(),
        maxPricePerHour: a.maxPricePerHour.toString(),
        termsDigest: toHex(a.termsDigest),
      };
    case 'topUpLease':
      return { type: 'topUpLease', leaseId: toHex(a.leaseId), amount: a.amount.toString() };
    case 'closeLease':
      return { type: 'closeLease', leaseId: toHex(a.leaseId) };
    case 'postReceipt':
      return {
        type: 'postReceipt',
        leaseId: toHex(a.signed.receipt.leaseId),
        chipId: toHex(a.signed.receipt.chipId),
        jobId: toHex(a.signed.receipt.jobId),
        rating: a.rating,
      };
    case 'dispute':
      return {
        type: 'dispute',
        leaseId: toHex(a.signed.request.leaseId),
        requestHash: toHex(jobRequestDigest(a.signed.request)),
        reason: a.reason,
      };
    case 'updateOfferTls':
      return { type: 'updateOfferTls', offerId: toHex(a.offerId), fingerprints: a.fingerprints.map(toHex) };
  }
}

export function marketEventToJson(e: MarketEvent): MarketEventJson {
  switch (e.type) {
    case 'offerCreated':
      return {
        type: 'offerCreated',
        offerId: toHex(e.offerId),
        provider: encodeAddress(e.provider),
        pricePerHour: e.pricePerHour.toString(),
        chips: e.chips,
      };
    case 'offerClosed':
      return {
        type: 'offerClosed',
        offerId: toHex(e.offerId),
        provider: encodeAddress(e.provider),
        closesAt: Number(e.closesAt),
      };
    case 'offerChipWithdrawn':
      return {
        type: 'offerChipWithdrawn',
        offerId: toHex(e.offerId),
        chipId: toHex(e.chipId),
        provider: encodeAddress(e.provider),
      };
    case 'leaseOpened':
      return {
        type: 'leaseOpened',
        leaseId: toHex(e.leaseId),
        offerId: toHex(e.offerId),
        chipId: toHex(e.chipId),
        provider: encodeAddress(e.provider),
        renter: encodeAddress(e.renter),
        deposit: e.deposit.toString(),
        endTime: Number(e.endTime),
      };
    case 'leaseToppedUp':
      return {
        type: 'leaseToppedUp',
        leaseId: toHex(e.leaseId),
        renter: encodeAddress(e.renter),
        amount: e.amount.toString(),
        remaining: e.remaining.toString(),
      };
    case 'leaseClosing':
      return {
        type: 'leaseClosing',
        leaseId: toHex(e.leaseId),
        chipId: toHex(e.chipId),
        endTime: Number(e.endTime),
        reason: e.reason,
      };
    case 'leaseSettled':
      return {
        type: 'leaseSettled',
        leaseId: toHex(e.leaseId),
        chipId: toHex(e.chipId),
        fromTime: Number(e.fromTime),
        toTime: Number(e.toTime),
        cost: e.cost.toString(),
        paid: e.paid.toString(),
        refunded: e.refunded.toString(),
        answered: e.answered,
        missed: e.missed,
        remaining: e.remaining.toString(),
      };
    case 'leaseClosed':
      return {
        type: 'leaseClosed',
        leaseId: toHex(e.leaseId),
        chipId: toHex(e.chipId),
        reason: e.reason,
        returned: e.returned.toString(),
        paid: e.paid.toString(),
        refunded: e.refunded.toString(),
      };
    case 'receiptPosted':
      return {
        type: 'receiptPosted',
        leaseId: toHex(e.leaseId),
        chipId: toHex(e.chipId),
        provider: encodeAddress(e.provider),
        jobId: toHex(e.jobId),
        rating: e.rating,
      };
    case 'disputeRecorded':
      return {
        type: 'disputeRecorded',
        leaseId: toHex(e.leaseId),
        chipId: toHex(e.chipId),
        provider: encodeAddress(e.provider),
        requestHash: toHex(e.requestHash),
        reason: e.reason,
      };
  }
}

/** Answered share of a chip's decided slots over a window (null when it had none). */
export interface UptimeJson {
  answered: number;
  missed: number;
  /** answered / (answered + missed), as a decimal string with 4 places, e.g. "0.9750". */
  ratio: string | null;
  /** The window, ms of block time. */
  windowMs: number;
}

export interface OfferChipJson {
  chipId: string;
  modelId: string;
  vendorId: string;
  /** Rated power (dense FP16 TFLOPS × 1000). */
  power: string;
  online: boolean;
  /** Free to rent now (no running lease, active, online, answered a challenge since its registration). */
  available: boolean;
  /** The running lease of the chip, if any. */
  leaseId: string | null;
  /** Over the last 24 h of block time, from the chip's slot log. */
  uptime: UptimeJson;
}

export interface OfferJson {
  id: string;
  provider: string;
  /** Base units per hour. */
  price: string;
  minHours: number;
  maxHours: number;
  noticeMs: number;
  endpoint: string;
  /** SHA-256 (hex) of the DER certificates the https endpoint may present; renters pin them. */
  tlsFingerprints: string[];
  attributes: OfferAttributesJson;
  /** 'open' accepts leases; 'closing' runs its leases on until `closesAt`; then 'closed'. */
  status: 'open' | 'closing' | 'closed';
  createdHeight: number;
  createdTime: number;
  closesAt: number | null;
  leasesOpened: number;
  chips: OfferChipJson[];
  /** Sums over the chips: the offer's rated power, and how many chips can be rented now. */
  power: string;
  available: number;
}

export interface LeaseJson {
  id: string;
  offerId: string;
  chipId: string;
  provider: string;
  renter: string;
  /** The key the provider's API authenticates the renter with (hex Ed25519). */
  renterPublicKey: string;
  endpoint: string;
  /** The offer's TLS certificate fingerprints (hex), read fresh with every lease. */
  tlsFingerprints: string[];
  pricePerHour: string;
  hours: number;
  deposit: string;
  paid: string;
  refunded: string;
  remaining: string;
  /** Cost accrued since the last settlement (not yet split or moved). */
  unsettled: string;
  /** The block time at which the lease ends: its escrow is exhausted (price × time since the start
   *  reaches the deposit) or its end time passes, whichever is first. Every reader computes it from
   *  the chain; the escrow pays up to exactly this moment and the provider serves no job from it on.
   *  A top-up before it moves it later. For a closed lease: the time it was paid through. */
  escrowUntil: number;
  /** 'closing': notice given, ending at endTime; 'ended': past escrowUntil at the head's time, no
   *  job is served (the chain settles and closes a lease in the first block at or after its end, so
   *  a head past it shows it closed). */
  status: 'active' | 'closing' | 'ended' | 'closed';
  startHeight: number;
  startTime: number;
  endTime: number;
  settledTime: number;
  slotsAnswered: number;
  slotsMissed: number;
  /** Why it is closing or ended ('escrowExhausted', 'ended', 'providerClosed', 'offerClosed', 'chipWithdrawn'). */
  closingReason: string | null;
  /** Disputes recorded on it (at most one per disputeWaitMs of lease time kept: leaseDisputeAllowance). */
  disputes: number;
  closedHeight: number | null;
  closedTime: number | null;
  closedReason: string | null;
  height?: number;
  stateRoot?: string;
  proof?: string;
  value?: string | null;
  related?: ProvenKeyEntryJson[];
}

export interface ProviderRecordJson {
  address: string;
  offers: number;
  leases: number;
  jobsReceipted: number;
  ratingsCount: number;
  /** Mean rating (1–5) as a decimal string with 2 places, null before the first rating. */
  rating: string | null;
  ratingsSum: number;
  disputes: number;
  earnings: string;
  openOffers: string[];
  activeLeases: number;
}

/** `unc_getParams`: the block and fee parameters. */
export interface ChainParamsJson {
  blockTimeMs: number;
  maxBlockTxs: number;
  maxBlockBytes: number;
  maxTxBytes: number;
  minFeePerByte: string;
  minFeePerAction: string;
  maxTxLifetimeBlocks: number;
  /** Dev-soft chips are accepted: a dev chain (renters may use plain-http providers). */
  devChain: boolean;
  /** A dispute is taken from its request's time + this (block time), ms. */
  disputeWaitMs: number;
  /** Receipts and disputes of a lease may be posted for this long after it ends, ms. */
  receiptWindowMs: number;
}

export interface GovernanceJson {
  threshold: number;
  keys: string[];
  nonce: number;
}

export interface MempoolJson {
  size: number;
  bytes: number;
}

/** `unc_sendTransaction`: the id of the admitted transaction; `replaced` when it replaced one with the same nonce. */
export interface SendResultJson {
  hash: string;
  replaced: boolean;
}
