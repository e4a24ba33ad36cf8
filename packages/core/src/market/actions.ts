/**
 * The compute-rental actions (PROTOCOL.md §8). Their codecs live here so that
 * chain/transaction.ts only lists them under their tags (10–16).
 */
import { type Codec, list, option, string, struct, u8, u32, u64, u128 } from '../encoding/codec.js';
import { hash32 } from '../encoding/primitives.js';
import { type SignedReceipt, signedReceiptCodec } from './receipt.js';
import { type SignedJobRequest, signedJobRequestCodec } from './request.js';

export const MAX_OFFER_CHIPS = 32;
export const MAX_ENDPOINT_BYTES = 256;
export const MAX_REGION_BYTES = 32;
export const MAX_RUNTIMES = 8;
export const MAX_RUNTIME_BYTES = 32;
export const MAX_REASON_BYTES = 256;
/** TLS certificate fingerprints an offer lists: the current one and, while rotating, the next. */
export const MAX_TLS_FINGERPRINTS = 2;

export interface OfferAttributes {
  /** Accelerator memory in MiB (0 = not stated). */
  memoryMiB: number;
  region: string;
  runtimes: string[];
}

export const offerAttributesCodec: Codec<OfferAttributes> = struct<OfferAttributes>('OfferAttributes', {
  memoryMiB: u32,
  region: string(MAX_REGION_BYTES, 'region'),
  runtimes: list(string(MAX_RUNTIME_BYTES, 'runtime'), MAX_RUNTIMES, 'runtimes'),
});

/** A provider offers some of its chips for rent. */
export interface CreateOfferAction {
  type: 'createOffer';
  chipIds: Uint8Array[];
  /** Base units per hour of rented time. */
  pricePerHour: bigint;
  minHours: number;
  maxHours: number;
  /** How long leases keep running after the provider announces it stops, ms of block time. */
  noticeMs: bigint;
  endpoint: string;
  attributes: OfferAttributes;
  /**
   * SHA-256 of the DER certificates the endpoint presents (https only): renters connect only to
   * an endpoint whose certificate is listed here, whatever a certificate authority says.
   */
  tlsFingerprints: Uint8Array[];
}

/**
 * The provider replaces the TLS fingerprints of its offer: both old and new while it rotates its
 * certificate, then only the new one.
 */
export interface UpdateOfferTlsAction {
  type: 'updateOfferTls';
  offerId: Uint8Array;
  fingerprints: Uint8Array[];
}

/** The provider withdraws an offer; open leases run on until the notice period ends. */
export interface CloseOfferAction {
  type: 'closeOffer';
  offerId: Uint8Array;
}

/**
 * The provider takes one chip out of its open offer: no new lease takes it; a running lease of it
 * under the offer gets the offer's notice, as at `closeOffer`, and ends then.
 */
export interface WithdrawOfferChipAction {
  type: 'withdrawOfferChip';
  offerId: Uint8Array;
  chipId: Uint8Array;
}

/** A renter rents one chip of an offer for `hours`, depositing escrow. */
export interface OpenLeaseAction {
  type: 'openLease';
  offerId: Uint8Array;
  /** The chip to rent; none = the offer's first chip that is free and proven online. */
  chipId: Uint8Array | null;
  hours: number;
  /** Escrow to deposit; 0 = price × hours. */
  deposit: bigint;
  /**
   * The highest offer price per hour the renter accepts (base units; the offer's `pricePerHour`
   * above it refuses the lease with PRICE_ABOVE_MAX). Without it the renter signed only a deposit:
   * a node showing a cheap price could have that deposit spent at the offer's real, higher price
   * (drained that many times faster). No "any price" value: 0 accepts no offer.
   */
  maxPricePerHour: bigint;
  /**
   * leaseTermsDigest of the offer's other terms as the renter saw them (notice, endpoint, chips
   * and their hardware, durations, attributes): the chain refuses the lease with OFFER_CHANGED
   * when the offer's terms differ, so a node cannot have a lease opened on terms it never showed.
   */
  termsDigest: Uint8Array;
}

export interface TopUpLeaseAction {
  type: 'topUpLease';
  leaseId: Uint8Array;
  amount: bigint;
}

/** The renter closes at once; the provider closes after the offer's notice period. */
export interface CloseLeaseAction {
  type: 'closeLease';
  leaseId: Uint8Array;
}

/** The renter posts a chip-signed job receipt with a rating of 1–5. */
export interface PostReceiptAction {
  type: 'postReceipt';
  signed: SignedReceipt;
  rating: number;
}

/**
 * The renter records a request the provider never answered: the request itself, signed by the
 * lease's renter key (so a dispute is bound to a request that was made, and names its lease).
 */
export interface DisputeAction {
  type: 'dispute';
  signed: SignedJobRequest;
  reason: string;
}

export type MarketAction =
  | CreateOfferAction
  | CloseOfferAction
  | OpenLeaseAction
  | TopUpLeaseAction
  | CloseLeaseAction
  | PostReceiptAction
  | DisputeAction
  | UpdateOfferTlsAction
  | WithdrawOfferChipAction;

export const createOfferCodec = struct<Omit<CreateOfferAction, 'type'>>('CreateOffer', {
  chipIds: list(hash32, MAX_OFFER_CHIPS, 'chipIds'),
  pricePerHour: u128,
  minHours: u32,
  maxHours: u32,
  noticeMs: u64,
  endpoint: string(MAX_ENDPOINT_BYTES, 'endpoint'),
  attributes: offerAttributesCodec,
  tlsFingerprints: list(hash32, MAX_TLS_FINGERPRINTS, 'tlsFingerprints'),
});
export const updateOfferTlsCodec = struct<Omit<UpdateOfferTlsAction, 'type'>>('UpdateOfferTls', {
  offerId: hash32,
  fingerprints: list(hash32, MAX_TLS_FINGERPRINTS, 'fingerprints'),
});
export const closeOfferCodec = struct<Omit<CloseOfferAction, 'type'>>('CloseOffer', { offerId: hash32 });
export const withdrawOfferChipCodec = struct<Omit<WithdrawOfferChipAction, 'type'>>('WithdrawOfferChip', {
  offerId: hash32,
  chipId: hash32,
});
export const openLeaseCodec = struct<Omit<OpenLeaseAction, 'type'>>('OpenLease', {
  offerId: hash32,
  chipId: option(hash32),
  hours: u32,
  deposit: u128,
  maxPricePerHour: u128,
  termsDigest: hash32,
});
export const topUpLeaseCodec = struct<Omit<TopUpLeaseAction, 'type'>>('TopUpLease', {
  leaseId: hash32,
  amount: u128,
});
export const closeLeaseCodec = struct<Omit<CloseLeaseAction, 'type'>>('CloseLease', { leaseId: hash32 });
export const postReceiptCodec = struct<Omit<PostReceiptAction, 'type'>>('PostReceipt', {
  signed: signedReceiptCodec,
  rating: u8,
});
export const disputeCodec = struct<Omit<DisputeAction, 'type'>>('Dispute', {
  signed: signedJobRequestCodec,
  reason: string(MAX_REASON_BYTES, 'reason'),
});
