/**
 * The offer terms a renter signs when it opens a lease (PROTOCOL.md §8): a digest of everything the
 * offer states that the lease is taken on, so that a lease is never opened on terms its renter did
 * not see. The renter reads the offer from a node it may not trust; without this, a hostile node
 * could show a 30-day notice period, another endpoint or better hardware than the chain holds, and
 * the renter's signature would still open a lease on the chain's terms.
 *
 * Left out, on purpose:
 * - the price: the renter signs a ceiling for it instead (`maxPricePerHour`, PRICE_ABOVE_MAX), the
 *   one term where the renter is served by any value at or below the one it saw;
 * - the TLS fingerprints: the provider rotates them during its leases (updateOfferTls), so the
 *   renter pins the ones the chain holds when it connects, not those of the opening; signing them
 *   would bind nothing later and refuse honest openings during every rotation;
 * - the status and counters: a closed offer is refused on its own (OFFER_CLOSED).
 */
import { taggedHash } from '../crypto/hash.js';
import { type Codec, encode, list, string, struct, u32, u64, u128 } from '../encoding/codec.js';
import { address, hash32 } from '../encoding/primitives.js';
import { idCodec } from '../poci/registry.js';
import {
  MAX_ENDPOINT_BYTES,
  MAX_OFFER_CHIPS,
  type OfferAttributes,
  offerAttributesCodec,
} from './actions.js';

/** The hardware of an offered chip, as its registration recorded it ('' and 0 for a chip no longer registered). */
export interface OfferedChip {
  chipId: Uint8Array;
  vendorId: string;
  modelId: string;
  /** Rated power (dense FP16 TFLOPS × 1000). */
  power: bigint;
}

export interface LeaseTerms {
  offerId: Uint8Array;
  provider: Uint8Array;
  /** In the offer's order: without a chip named, the chain rents the first free one. */
  chips: OfferedChip[];
  minHours: number;
  maxHours: number;
  noticeMs: bigint;
  endpoint: string;
  attributes: OfferAttributes;
}

const offeredChipCodec: Codec<OfferedChip> = struct<OfferedChip>('OfferedChip', {
  chipId: hash32,
  vendorId: idCodec,
  modelId: idCodec,
  power: u128,
});

export const leaseTermsCodec: Codec<LeaseTerms> = struct<LeaseTerms>('LeaseTerms', {
  offerId: hash32,
  provider: address,
  chips: list(offeredChipCodec, MAX_OFFER_CHIPS, 'chips'),
  minHours: u32,
  maxHours: u32,
  noticeMs: u64,
  endpoint: string(MAX_ENDPOINT_BYTES, 'endpoint'),
  attributes: offerAttributesCodec,
});

/** What an openLease signs as `termsDigest`: SHA-256 of the tagged canonical encoding of the terms. */
export function leaseTermsDigest(t: LeaseTerms): Uint8Array {
  return taggedHash('UNC/lease-terms', encode(leaseTermsCodec, t));
}
