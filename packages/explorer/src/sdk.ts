/**
 * The one place the explorer touches the sdk: imported as a package like any app would, through
 * its browser entry (the `browser` export condition; core swaps node:crypto for @noble there).
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
/** Renting from the browser: signers (a keystore file, a dev key), pre-flights, the lease action. */
export {
  checkFunds,
  checkLeaseTerms,
  describeOfferTerms,
  devSigner,
  encodeSigned,
  keystoreSigner,
  type NetworkHistory,
  type NetworkStats,
  NodeUnreachableError,
  offerTermsDigest,
  openLeaseAction,
  prepareTransaction,
  RpcClientError,
  recordBurnOf,
  type Signer,
  type Subscription,
  signedHash,
  signerAddress,
  UncClient,
} from '@unc/sdk';

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
