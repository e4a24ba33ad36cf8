/**
 * The one place the explorer touches the sdk.
 *
 * Runtime values come from the sdk's client file alone (`@unc/sdk/client`, a Vite and tsconfig alias
 * of packages/sdk/src/client.ts): the `@unc/sdk` barrel also re-exports code that imports @unc/core,
 * which needs node:crypto and does not bundle for a browser. Types come from the barrel (they are
 * erased at build time). When the sdk gains a browser-safe entry, only this file changes.
 */

export type {
  AccountJson,
  AccountTransactionsPage,
  AccountTxJson,
  ActionJson,
  BlockJson,
  ChipEventJson,
  ChipJson,
  ChipsPage,
  EpochJson,
  HeaderJson,
  LeaseEventsPage,
  LeaseJson,
  ModelJson,
  NetworkHistoryPage,
  NetworkStatsJson,
  OfferChipJson,
  OfferJson,
  ProviderRecordJson,
  RewardJson,
  SlotJson,
  StatusJson,
  SupplyJson,
  TxEventJson,
  TxJson,
  TxReceiptJson,
  TxStatusJson,
  UptimeJson,
  ValidatorJson,
  ValidatorSetJson,
  VendorJson,
} from '@unc/sdk';
export type { Subscription } from '@unc/sdk/client';
export { NodeUnreachableError, RpcClientError, UncClient } from '@unc/sdk/client';

/** The chain parameters (`unc_getParams`). */
export interface ParamsJson {
  blockTimeMs: number;
  maxBlockTxs: number;
  maxBlockBytes: number;
  maxTxBytes: number;
  minFeePerByte: string;
  minFeePerAction: string;
  maxTxLifetimeBlocks: number;
}

/** The part of `unc_getGenesis` the explorer reads (the node returns more). */
export interface GenesisJson {
  chainId: string;
  genesisTime: string;
  validators: { publicKey: string; name: string }[];
  poci?: {
    epochBlocks: number;
    slotsPerEpoch: number;
    answerWindowBlocks: number;
    offlineAfterMisses: number;
    graceSlotsPerEpoch: number;
  };
}
