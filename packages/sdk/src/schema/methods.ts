/**
 * The one description of the node's JSON-RPC interface: for every method its parameters (names in
 * positional order, each a schema that checks and decodes it), the TypeScript type of its result
 * and a schema of that result. The node validates every call against it before a handler runs;
 * the sdk's client is typed by it; `rpc.discover` and docs/rpc.md are generated from it.
 *
 * Adding a method is one entry in `rpcMethods` (then the node's handler table does not compile
 * until it implements it, and `npm run docs:rpc` regenerates the reference).
 */
import * as v from 'valibot';
import type { TxInclusion } from '../client.js';
import type {
  AccountTransactionsPage,
  ChipsPage,
  LeaseEventsPage,
  NetworkHistoryPage,
  NetworkStatsJson,
} from '../index-views.js';
import type {
  AccountJson,
  BlockJson,
  ChainParamsJson,
  ChipEventJson,
  ChipJson,
  EpochJson,
  GovernanceJson,
  HeaderJson,
  LeaseJson,
  MempoolJson,
  ModelJson,
  OfferJson,
  ProviderRecordJson,
  RewardJson,
  SendResultJson,
  StatusJson,
  SupplyJson,
  TxEventJson,
  TxReceiptJson,
  TxStatusJson,
  ValidatorSetJson,
  ValidatorSetProofJson,
  VendorJson,
} from '../views.js';
import * as R from './results.js';
import { HexString, Tagged } from './shapes.js';
import {
  Address,
  BlockRefSchema,
  ChipCursor,
  ChipOrOwnerSchema,
  EpochCursor,
  Flag,
  Hash32,
  Height,
  HexBytes,
  intRange,
  LeaseEventCursor,
  TxCursor,
} from './values.js';

/** A result: its schema (for documents and conformance checks) and, as a phantom, its type. */
export interface ResultSpec<T, S extends v.GenericSchema = v.GenericSchema> {
  readonly schema: S;
  readonly __type?: T;
}
/** `returns<WireType>()(schema)`: the wire type callers know from views.ts, and the shape's schema. */
export const returns =
  <T>() =>
  <S extends v.GenericSchema>(schema: S): ResultSpec<T, S> => ({ schema });

export type ParamEntries = Record<string, v.GenericSchema>;
/** The decoded parameters a handler receives (an absent or null optional one is undefined). */
export type ParamsOutputOf<E extends ParamEntries> = v.InferOutput<v.ObjectSchema<E, undefined>>;
/** The parameters a client sends, by name. */
export type ParamsInputOf<E extends ParamEntries> = v.InferInput<v.ObjectSchema<E, undefined>>;

export interface MethodSpec<
  E extends ParamEntries = ParamEntries,
  T = unknown,
  S extends v.GenericSchema = v.GenericSchema,
> {
  /** Which section of the reference it is listed in. */
  readonly group: 'chain' | 'chips' | 'market' | 'indexes' | 'node';
  readonly summary: string;
  /** Parameters in positional order; a missing or null optional one takes its default. */
  readonly params: E;
  /** A rule across parameters (e.g. "exactly one of"); `message` is the error when it fails. */
  readonly check?: { test: (p: ParamsOutputOf<E>) => boolean; message: string };
  readonly result: ResultSpec<T, S>;
}

function method<const E extends ParamEntries, T, S extends v.GenericSchema>(
  spec: MethodSpec<E, T, S>,
): MethodSpec<E, T, S> {
  return spec;
}

const optional = <S extends v.GenericSchema>(schema: S) => v.nullish(schema);
const none = {} as const;

/** Page sizes of the index methods: the default and the most one page may ask for. */
export const INDEX_PAGES = {
  accountTransactions: { default: 25, max: 100 },
  chips: { default: 100, max: 200 },
  networkHistory: { default: 100, max: 1000 },
  leaseEvents: { default: 50, max: 500 },
} as const;
const pageLimit = (page: { max: number }) => optional(intRange(1, page.max));

export const rpcMethods = {
  unc_status: method({
    group: 'node',
    summary:
      "The node's head, chain id, mempool, peers, sync progress, and `syncStopped` when block sync stopped on conflicting certified histories.",
    params: none,
    result: returns<StatusJson>()(R.StatusResult),
  }),
  unc_getGenesis: method({
    group: 'chain',
    summary: 'The genesis document the chain started from.',
    params: none,
    result: returns<Record<string, unknown>>()(R.GenesisResult),
  }),
  unc_getParams: method({
    group: 'chain',
    summary:
      "Block and fee parameters; `devChain` when dev-soft chips are accepted; the market's dispute wait and receipt window.",
    params: none,
    result: returns<ChainParamsJson>()(R.ParamsResult),
  }),
  unc_getBlock: method({
    group: 'chain',
    summary:
      'A block: header fields, transaction ids (or, with `full`, the decoded transactions) and its commit.',
    params: { block: optional(BlockRefSchema), full: optional(Flag) },
    result: returns<BlockJson>()(R.BlockResult),
  }),
  unc_getBlocks: method({
    group: 'chain',
    summary: 'Up to `count` (1…100, default 20) block summaries from height `from` downward.',
    params: { from: Height, count: optional(intRange(1, 100)) },
    result: returns<BlockJson[]>()(v.array(R.BlockResult)),
  }),
  unc_getHeader: method({
    group: 'chain',
    summary: 'The header fields alone, with `encoded` so a client can recompute the hash.',
    params: { block: optional(BlockRefSchema) },
    result: returns<HeaderJson>()(R.HeaderResult),
  }),
  unc_getRawBlock: method({
    group: 'chain',
    summary: 'The canonical encoding of a block, hex.',
    params: { block: optional(BlockRefSchema) },
    result: returns<string>()(HexString),
  }),
  unc_getBlockEvents: method({
    group: 'chain',
    summary:
      "What a block did before its transactions: the market's settlement of leases at an epoch start, and the settlement and close of every lease whose end its time reached.",
    params: { block: optional(BlockRefSchema) },
    result: returns<TxEventJson[]>()(v.array(Tagged)),
  }),
  unc_getValidators: method({
    group: 'chain',
    summary: 'The validator set that signs `height` (default: the next block), as consensus uses it.',
    params: { height: optional(Height) },
    result: returns<ValidatorSetJson>()(R.ValidatorSetResult),
  }),
  unc_getTransaction: method({
    group: 'chain',
    summary:
      'An included transaction with its block position and events (PENDING/DROPPED/NOT_FOUND otherwise).',
    params: { hash: Hash32 },
    result: returns<TxReceiptJson>()(R.TxReceiptResult),
  }),
  unc_getTransactionStatus: method({
    group: 'chain',
    summary: 'Where a transaction is: included, pending, dropped (with reason and height) or unknown.',
    params: { hash: Hash32 },
    result: returns<TxStatusJson>()(R.TxStatusResult),
  }),
  unc_getAccount: method({
    group: 'chain',
    summary:
      "Balance and nonce at the head; with `proof`, a Merkle proof against its state root; with `pending`, `pendingNonce`: the next free nonce counting the sender's pending transactions.",
    params: { address: Address, proof: optional(Flag), pending: optional(Flag) },
    result: returns<AccountJson>()(R.AccountResult),
  }),
  unc_getValidatorSetProof: method({
    group: 'chain',
    summary:
      "At an epoch's last block, Merkle proofs of the next epoch's validator set against its state root (light clients).",
    params: { height: Height },
    result: returns<ValidatorSetProofJson>()(R.ValidatorSetProofResult),
  }),
  unc_getSupply: method({
    group: 'chain',
    summary: 'Supply accounting: minted, burned, slashed, circulating and the emission schedule so far.',
    params: none,
    result: returns<SupplyJson>()(R.SupplyResult),
  }),
  unc_sendTransaction: method({
    group: 'chain',
    summary: 'Submits one encoded, signed transaction to the mempool.',
    params: { tx: HexBytes },
    result: returns<SendResultJson>()(R.SendResult),
  }),
  unc_sendTransactions: method({
    group: 'chain',
    summary: 'Submits up to 10,000 transactions; each gets its own result or error, in order.',
    params: {
      txs: v.pipe(
        v.array(v.string(), 'must be an array of hex strings'),
        v.maxLength(10_000, 'at most 10000'),
      ),
    },
    result: returns<
      (SendResultJson | { error: { reason: string; message: string; retryAfterMs?: number } })[]
    >()(R.SendManyResult),
  }),
  unc_mempool: method({
    group: 'node',
    summary: 'Transactions and bytes in the mempool.',
    params: none,
    result: returns<MempoolJson>()(R.MempoolResult),
  }),
  unc_getChip: method({
    group: 'chips',
    summary:
      'A chip: owner, model, power, status, liveness and its challenge slots; with `proof`, Merkle proofs of its record and status against the head state root.',
    params: { chipId: Hash32, proof: optional(Flag) },
    result: returns<ChipJson>()(R.ProvenChipResult),
  }),
  unc_getChips: method({
    group: 'chips',
    summary: 'Chips (at most 1000), optionally of one owner.',
    params: { owner: optional(Address) },
    result: returns<ChipJson[]>()(v.array(R.ChipResult)),
  }),
  unc_getChipEvents: method({
    group: 'chips',
    summary: "A chip's event log, newest first (`limit` 1…1000, default 100).",
    params: { chipId: Hash32, limit: optional(intRange(1, 1000)) },
    result: returns<ChipEventJson[]>()(v.array(R.ChipEventResult)),
  }),
  unc_getRewards: method({
    group: 'chips',
    summary:
      'Per-epoch earnings of a chip, or of every chip an owner holds registered now (a deregistered chip: by its id), and why.',
    params: { target: ChipOrOwnerSchema },
    result: returns<RewardJson[]>()(v.array(R.RewardResult)),
  }),
  unc_getEpoch: method({
    group: 'chips',
    summary: 'An epoch (default: the current one): its heights, seed, weight and budget.',
    params: { epoch: optional(Height) },
    result: returns<EpochJson>()(R.EpochResult),
  }),
  unc_getGovernance: method({
    group: 'chips',
    summary: 'The governance multisig: threshold, keys and nonce.',
    params: none,
    result: returns<GovernanceJson>()(R.GovernanceResult),
  }),
  unc_getVendors: method({
    group: 'chips',
    summary: 'Registered chip vendors and their root certificates.',
    params: none,
    result: returns<VendorJson[]>()(v.array(R.VendorResult)),
  }),
  unc_getModels: method({
    group: 'chips',
    summary: 'Registered chip models and their rated power.',
    params: none,
    result: returns<ModelJson[]>()(v.array(R.ModelResult)),
  }),
  unc_getOffers: method({
    group: 'market',
    summary: 'Open offers, newest first; with `provider`, its open and closing ones (`all`: closed too).',
    params: { provider: optional(Address), all: optional(Flag) },
    result: returns<OfferJson[]>()(v.array(R.OfferResult)),
  }),
  unc_getOffer: method({
    group: 'market',
    summary: 'One offer with its chips, their availability and 24-hour uptime.',
    params: { id: Hash32 },
    result: returns<OfferJson>()(R.OfferResult),
  }),
  unc_getLease: method({
    group: 'market',
    summary:
      'One lease: escrow, settlement and status, computed from the chain alone; with `proof`, Merkle proofs of the lease and its offer against the head state root.',
    params: { id: Hash32, proof: optional(Flag) },
    result: returns<LeaseJson>()(R.ProvenLeaseResult),
  }),
  unc_getLeases: method({
    group: 'market',
    summary: 'The leases of a renter or of a provider (exactly one of them), newest first.',
    params: { renter: optional(Address), provider: optional(Address) },
    check: {
      test: (p) => (p.renter == null) !== (p.provider == null),
      message: 'give exactly one of "renter" or "provider" (an address)',
    },
    result: returns<LeaseJson[]>()(v.array(R.LeaseResult)),
  }),
  unc_getProviderRecord: method({
    group: 'market',
    summary: "A provider's record: offers, leases, receipted jobs, ratings, disputes, earnings.",
    params: { address: Address },
    result: returns<ProviderRecordJson>()(R.ProviderRecordResult),
  }),
  unc_getAccountTransactions: method({
    group: 'indexes',
    summary:
      'The transactions that touched an account (sent, received, or named in its events), newest first, one page (`limit` 1…100, default 25); `heartbeats: false` leaves out heartbeat-only ones.',
    params: {
      address: Address,
      cursor: optional(TxCursor),
      limit: pageLimit(INDEX_PAGES.accountTransactions),
      heartbeats: optional(Flag),
    },
    result: returns<AccountTransactionsPage>()(R.AccountTransactionsResult),
  }),
  unc_getLeaseEvents: method({
    group: 'indexes',
    summary:
      "A lease's log, newest first: its job receipts, settlements, disputes and closing (`limit` 1…500, default 50).",
    params: {
      leaseId: Hash32,
      cursor: optional(LeaseEventCursor),
      limit: pageLimit(INDEX_PAGES.leaseEvents),
    },
    result: returns<LeaseEventsPage>()(R.LeaseEventsResult),
  }),
  unc_listChips: method({
    group: 'indexes',
    summary:
      "Every chip (or an owner's) in chip id order, one page (`limit` 1…200, default 100), with the total that match.",
    params: { owner: optional(Address), cursor: optional(ChipCursor), limit: pageLimit(INDEX_PAGES.chips) },
    result: returns<ChipsPage>()(R.ChipsPageResult),
  }),
  unc_getNetworkStats: method({
    group: 'indexes',
    summary: "The network's figures as of the head, over every chip: chips, active and online, their power.",
    params: none,
    result: returns<NetworkStatsJson>()(R.NetworkStatsResult),
  }),
  unc_getNetworkHistory: method({
    group: 'indexes',
    summary:
      "The network's figures recorded at the first block of every epoch, newest first (`limit` 1…1000, default 100).",
    params: { cursor: optional(EpochCursor), limit: pageLimit(INDEX_PAGES.networkHistory) },
    result: returns<NetworkHistoryPage>()(R.NetworkHistoryResult),
  }),
} as const;

export interface SubscriptionSpec<
  E extends ParamEntries = ParamEntries,
  T = unknown,
  S extends v.GenericSchema = v.GenericSchema,
> {
  readonly summary: string;
  readonly params: E;
  readonly event: ResultSpec<T, S>;
}

function subscription<const E extends ParamEntries, T, S extends v.GenericSchema>(
  spec: SubscriptionSpec<E, T, S>,
): SubscriptionSpec<E, T, S> {
  return spec;
}

/** Names for `unc_subscribe [name, params]`, over WebSocket. */
export const rpcSubscriptions = {
  newBlocks: subscription({
    summary: 'One block summary (as `unc_getBlock`) per committed block.',
    params: none,
    event: returns<BlockJson>()(R.BlockResult),
  }),
  tx: subscription({
    summary:
      'Exactly one event: when the transaction is included, or rejected with the reason the block builder dropped it. Sent at once if it is already committed.',
    params: { hash: Hash32 },
    event: returns<TxInclusion>()(R.TxInclusionEvent),
  }),
} as const;

export type RpcMethods = typeof rpcMethods;
export type RpcMethodName = keyof RpcMethods;
export type RpcSubscriptionName = keyof typeof rpcSubscriptions;

type EntriesOf<S> = S extends { params: infer E extends ParamEntries } ? E : never;
type ResultOf<S> = S extends { result: ResultSpec<infer T, v.GenericSchema> }
  ? T
  : S extends { event: ResultSpec<infer T, v.GenericSchema> }
    ? T
    : never;
type DomainOf<S> = S extends { result: ResultSpec<unknown, infer R> } ? v.InferOutput<R> : never;

/** What a client sends, by name (the sdk types every call with it). */
export type RpcParamsIn<M extends RpcMethodName> = ParamsInputOf<EntriesOf<RpcMethods[M]>>;
/** What a handler receives: checked and decoded. */
export type RpcParamsOut<M extends RpcMethodName> = ParamsOutputOf<EntriesOf<RpcMethods[M]>>;
/** The wire (JSON) form of a method's answer: the views.ts type. */
export type RpcResult<M extends RpcMethodName> = ResultOf<RpcMethods[M]>;
/** The answer once parsed by its schema: amounts are bigint (what UncClient.read returns). */
export type RpcDomain<M extends RpcMethodName> = DomainOf<RpcMethods[M]>;
export type RpcSubscriptionParamsIn<S extends RpcSubscriptionName> = ParamsInputOf<
  EntriesOf<(typeof rpcSubscriptions)[S]>
>;
export type RpcSubscriptionParamsOut<S extends RpcSubscriptionName> = ParamsOutputOf<
  EntriesOf<(typeof rpcSubscriptions)[S]>
>;
export type RpcEvent<S extends RpcSubscriptionName> = ResultOf<(typeof rpcSubscriptions)[S]>;
