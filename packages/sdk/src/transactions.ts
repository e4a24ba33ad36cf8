/**
 * Building and signing transactions for a node: fills in the chain id, nonce, expiry and the
 * minimum fee from what the node reports, then signs with the caller's key.
 */
import {
  type Action,
  addressFromPublicKey,
  decodeAddress,
  disputeAllowance,
  disputeAllowanceUntil,
  encode,
  encodeAddress,
  feeActions,
  formatUnc,
  fromHex,
  LeaseStatus,
  leaseTermsDigest,
  minimumFee,
  type OfferAttributes,
  recordBurn,
  type SignedJobRequest,
  type SignedReceipt,
  type SignedTransaction,
  signedTransactionCodec,
  type Transaction,
  toHex,
  transactionHash,
  UncError,
} from '@unc/core';
import type { UncClient } from './client.js';
import { U128_MAX } from './schema/shapes.js';
import { type Signer, seedSigner } from './signer.js';
import type { LeaseJson, OfferJson } from './views.js';

export interface BuildOptions {
  /**
   * Defaults to the sender's next free nonce as the node reports it, counting its transactions
   * pending there (`UncClient.nextNonce`): a second transaction sent before the first is included
   * queues behind it. Pass the committed nonce to replace a pending transaction instead.
   */
  nonce?: bigint;
  /** Defaults to the chain's minimum fee for this transaction's size. */
  fee?: bigint;
  /** Blocks from the current height until the transaction expires (default 100). */
  ttlBlocks?: bigint;
  /**
   * The expiry height itself, instead of the node's height plus `ttlBlocks`: for a caller that
   * verified the head (a light client). A node reporting a height far ahead has the transaction
   * signed to stay valid that much longer: held back and relayed late, or counted as pending by a
   * caller that waits for the chain to pass its expiry (the gateway's budget) for ever.
   */
  expiresAt?: bigint;
  /**
   * The chain id the user saw and confirmed: signing for another is refused. The node is asked
   * for its status again here, and without this a node could show one chain (a testnet) in the
   * confirmation and then have the same key sign for another (where the same key holds real funds).
   */
  chainId?: string;
}

/**
 * Refuses (CHAIN_CHANGED) a node status naming another chain than the one pinned: the chain id a
 * user confirmed, or the one the node named when a key was unlocked. A node answers each status
 * call anew, and one that showed a testnet first and another chain next would have the key sign
 * there, where the same key may hold real funds. The one check for every signer of the edge
 * (prepareTransaction, the miner agent, the gateway), so that their refusals cannot drift apart.
 * `pinned` undefined: nothing pinned, nothing checked.
 */
export function assertChainUnchanged(reported: string, pinned: string | undefined): void {
  if (pinned !== undefined && reported !== pinned)
    throw new UncError(
      'CHAIN_CHANGED',
      `the node reported chain "${pinned}" before and now reports "${reported}": nothing was signed`,
    );
}

/** The exact minimum fee of a transaction: the fee field is fixed-width, so the size is known. */
export function feeFor(
  tx: Omit<Transaction, 'fee'>,
  params: { minFeePerByte: bigint; minFeePerAction: bigint },
): bigint {
  const size = encode(signedTransactionCodec, {
    tx: { ...tx, fee: 0n },
    signature: new Uint8Array(64),
  }).length;
  return minimumFee(params, size, feeActions(tx.actions));
}

/**
 * The transaction `publicKey` would sign, unsigned: chain id, next free nonce, expiry and the exact
 * minimum fee filled in from the node. A wallet shows it (chain id, amounts, fee) before signing.
 */
export async function prepareTransaction(
  client: UncClient,
  publicKey: Uint8Array,
  actions: Action[],
  opts: BuildOptions = {},
): Promise<Transaction> {
  const [status, params] = await Promise.all([client.status(), client.getParams()]);
  assertChainUnchanged(status.chainId, opts.chainId);
  const nonce = opts.nonce ?? (await client.nextNonce(encodeAddress(addressFromPublicKey(publicKey))));
  const base = {
    chainId: status.chainId,
    signer: publicKey,
    nonce,
    expiresAt: opts.expiresAt ?? BigInt(status.height) + (opts.ttlBlocks ?? 100n),
    actions,
  };
  const fee =
    opts.fee ??
    feeFor(base, {
      minFeePerByte: BigInt(params.minFeePerByte),
      minFeePerAction: BigInt(params.minFeePerAction),
    });
  return { ...base, fee };
}

/**
 * Builds and signs a transaction. `by` is a Signer (seed, keystore, hardware, remote); a raw
 * 32-byte seed is still accepted and wrapped in a seed signer.
 */
export async function buildTransaction(
  client: UncClient,
  by: Signer | Uint8Array,
  actions: Action[],
  opts: BuildOptions = {},
): Promise<SignedTransaction> {
  const who = by instanceof Uint8Array ? seedSigner(by) : by;
  return who.signTransaction(await prepareTransaction(client, who.publicKey, actions, opts));
}

export function transferAction(to: string, amount: bigint, memo = ''): Action {
  return { type: 'transfer', to: decodeAddress(to), amount, memo: new TextEncoder().encode(memo) };
}

/**
 * Names `operator` (an address) as the one key whose heartbeats answer for the sender's chips from
 * the next block, or none (null). The operator can do nothing else for the owner; rewards stay the
 * owner's. Naming one burns 100 × minFeePerAction (a record kept for good; recordBurnOf counts it).
 */
export function setHeartbeatOperatorAction(operator: string | null): Action {
  return { type: 'setHeartbeatOperator', operator: operator === null ? null : decodeAddress(operator) };
}

export function encodeSigned(stx: SignedTransaction): string {
  return toHex(encode(signedTransactionCodec, stx));
}

export function signedHash(stx: SignedTransaction): string {
  return toHex(transactionHash(stx.tx));
}

/** Signs, submits and returns the hash; does not wait for inclusion. */
export async function sendTransaction(client: UncClient, stx: SignedTransaction): Promise<string> {
  const { hash } = await client.sendRawTransaction(encodeSigned(stx));
  return hash;
}

// ---- Compute rental (PROTOCOL.md §8): ids are hex, amounts base units ----

export interface OfferTerms {
  chipIds: string[];
  pricePerHour: bigint;
  minHours: number;
  maxHours: number;
  noticeMs: bigint;
  endpoint: string;
  attributes?: Partial<OfferAttributes>;
  /** SHA-256 fingerprints (hex) of the endpoint's TLS certificates; required for https://. */
  tlsFingerprints?: string[];
}

export function createOfferAction(t: OfferTerms): Action {
  return {
    type: 'createOffer',
    chipIds: t.chipIds.map((c) => fromHex(c, 32)),
    pricePerHour: t.pricePerHour,
    minHours: t.minHours,
    maxHours: t.maxHours,
    noticeMs: t.noticeMs,
    endpoint: t.endpoint,
    attributes: {
      memoryMiB: t.attributes?.memoryMiB ?? 0,
      region: t.attributes?.region ?? '',
      runtimes: t.attributes?.runtimes ?? [],
    },
    tlsFingerprints: (t.tlsFingerprints ?? []).map((f) => fromHex(f, 32)),
  };
}

/** Replaces an offer's TLS fingerprints (hex): [old, new] while rotating, then [new]. */
export function updateOfferTlsAction(offerId: string, fingerprints: string[]): Action {
  return {
    type: 'updateOfferTls',
    offerId: fromHex(offerId, 32),
    fingerprints: fingerprints.map((f) => fromHex(f, 32)),
  };
}

export function closeOfferAction(offerId: string): Action {
  return { type: 'closeOffer', offerId: fromHex(offerId, 32) };
}

/** Takes one chip (hex) out of an open offer: a running lease of it gets the offer's notice. */
export function withdrawOfferChipAction(offerId: string, chipId: string): Action {
  return { type: 'withdrawOfferChip', offerId: fromHex(offerId, 32), chipId: fromHex(chipId, 32) };
}

const unc = (base: bigint | string): string => `${formatUnc(BigInt(base))} UNC`;

/**
 * Pre-flight for a lease, the chain's own rules on what the node reports (PROTOCOL §8): the offer is
 * open, the hours fit, the chip belongs to the offer, the deposit covers the minimum; returns the
 * escrow (`deposit`, or price × hours when it is absent or 0). Whether a chip is free is left to
 * the chain: a lease that has just ended frees its chip only when the next lease is applied. The
 * lease must then be signed with `maxPricePerHour` = the price shown (`o.price`) and `termsDigest` =
 * offerTermsDigest(o), so that the chain refuses it if the node lied about the price or the terms.
 */
export function checkLeaseTerms(
  o: OfferJson,
  hours: number,
  chipId: string | undefined,
  deposit: bigint | undefined,
): bigint {
  if (o.status !== 'open')
    throw new UncError('OFFER_CLOSED', `offer ${o.id} is ${o.status}: it takes no new leases`);
  const shortest = Math.max(1, o.minHours);
  if (!Number.isSafeInteger(hours) || hours < shortest || hours > o.maxHours)
    throw new UncError(
      'BAD_DURATION',
      `offer ${o.id} rents for ${shortest}…${o.maxHours} hours, not ${hours}`,
    );
  if (chipId !== undefined && !o.chips.some((c) => c.chipId === chipId))
    throw new UncError('CHIP_NOT_OFFERED', `chip ${chipId} is not in offer ${o.id}`);
  const price = BigInt(o.price);
  // The chain refuses an offer whose price is not positive, so a node reporting one lies; and the
  // escrow shown would then be 0, which signed as the deposit means "price × hours" at the chain's
  // real price: the amount leaving the balance would be the node's choice, not the one shown.
  // Nor one above u128 (the width of every amount on chain): signed as maxPricePerHour, it would
  // make the encoder throw a RangeError rather than this clear refusal.
  if (price <= 0n || price > U128_MAX)
    throw new UncError(
      'BAD_OFFER',
      `the node reports offer ${o.id} at ${unc(price)} per hour; the chain admits no such price: nothing was signed`,
    );
  const minimum = price * BigInt(o.minHours);
  const escrow = deposit === undefined || deposit === 0n ? price * BigInt(hours) : deposit;
  if (escrow > U128_MAX)
    throw new UncError(
      'BAD_DEPOSIT',
      `the deposit ${unc(escrow)} exceeds the largest amount the chain holds (u128): nothing was signed`,
    );
  if (escrow < minimum)
    throw new UncError(
      'DEPOSIT_TOO_LOW',
      `the deposit ${unc(escrow)} is below price × minimum duration = ${unc(minimum)} for offer ${o.id}`,
    );
  return escrow;
}

/**
 * A whole number as a node's JSON writes one: a non-negative safe integer, or its decimal digits.
 * Not BigInt() alone: it also reads '\r   989000' (leading and trailing whitespace), '0x…' and
 * `true`, and the confirmation prints the node's text as is, so a carriage return and spaces
 * blanked the chip and hardware on its line while the digest still matched the chain's.
 */
function plainInt(v: unknown, what: string): bigint {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return BigInt(v);
  if (typeof v === 'string' && /^(0|[1-9][0-9]*)$/.test(v)) return BigInt(v);
  throw new TypeError(`${what} is not a whole number: ${JSON.stringify(v)}`);
}

/**
 * The digest of an offer's terms as the node reported them (core's leaseTermsDigest: notice,
 * endpoint, chips and their hardware, durations, attributes, provider), to sign as an openLease's
 * `termsDigest`. Computed here from what is shown, never taken from the node: the chain compares
 * it with the offer it holds (OFFER_CHANGED), so a node that misreported a term gets no lease.
 * Throws BAD_OFFER when the report cannot be a chain offer (nothing would be signed on it).
 */
export function offerTermsDigest(o: OfferJson): Uint8Array {
  try {
    return leaseTermsDigest({
      offerId: fromHex(o.id, 32),
      provider: decodeAddress(o.provider),
      chips: o.chips.map((c) => ({
        chipId: fromHex(c.chipId, 32),
        vendorId: c.vendorId,
        modelId: c.modelId,
        power: plainInt(c.power, 'power'),
      })),
      minHours: o.minHours,
      maxHours: o.maxHours,
      noticeMs: plainInt(o.noticeMs, 'noticeMs'),
      endpoint: o.endpoint,
      attributes: {
        memoryMiB: o.attributes.memoryMiB,
        region: o.attributes.region,
        runtimes: [...(o.attributes.runtimes ?? [])],
      },
    });
  } catch (err) {
    throw new UncError(
      'BAD_OFFER',
      `the node's report of offer ${o.id} is not a chain offer (${err instanceof Error ? err.message : String(err)}): nothing was signed`,
    );
  }
}

/**
 * The offer terms a renter signs with offerTermsDigest, one line each, for a confirmation screen:
 * what is shown is what the digest covers (and the digest itself, to compare with another view).
 * `digest`: offerTermsDigest(o) where the caller already computed it for the transaction it signs
 * (the digest shown is then the very one signed); computed here otherwise.
 */
export function describeOfferTerms(o: OfferJson, digest: Uint8Array = offerTermsDigest(o)): string[] {
  const a = o.attributes;
  const attrs = [
    a.memoryMiB > 0 ? `${a.memoryMiB} MiB memory` : null,
    a.region ? `region ${a.region}` : null,
    (a.runtimes ?? []).length > 0 ? `runtimes ${(a.runtimes ?? []).join(', ')}` : null,
  ].filter((x) => x !== null);
  return [
    `provider   ${o.provider}`,
    `notice     ${o.noticeMs} ms (${(o.noticeMs / 60_000).toFixed(1)} min): how long the lease runs on once the provider stops`,
    `endpoint   ${o.endpoint}`,
    `hours      ${Math.max(1, o.minHours)}…${o.maxHours}`,
    `attributes ${attrs.length > 0 ? attrs.join('; ') : 'none stated'}`,
    ...o.chips.map(
      (c) =>
        `chip       ${c.chipId} ${c.vendorId || '?'}/${c.modelId || '?'} power ${c.power} (TFLOPS × 1000)`,
    ),
    `terms      ${toHex(digest)} (signed: the chain refuses the lease if the offer's terms differ)`,
  ];
}

/**
 * What `actions` burn on top of the fee for the records they keep in the state (core's
 * stateEntryBurn: 100 × minFeePerAction for a lease, a receipt, a dispute, a transfer to an address with no
 * account). A transfer's recipient is looked up on the node, and each transfer to one it has no
 * account for counts, as the node's admission check (maxSpend) counts it.
 */
export async function recordBurnOf(
  client: Pick<UncClient, 'getAccount'>,
  actions: Action[],
  minFeePerAction: bigint,
): Promise<bigint> {
  const fresh = new Map<string, boolean>();
  for (const a of actions) {
    if (a.type !== 'transfer') continue;
    const to = encodeAddress(a.to);
    if (fresh.has(to)) continue;
    const acc = await client.getAccount(to);
    // The chain removes an account with nothing in it: one without balance or nonce has none.
    fresh.set(to, BigInt(acc.balance) === 0n && acc.nonce === 0);
  }
  let total = 0n;
  for (const a of actions)
    total += recordBurn(minFeePerAction, a, (addr) => fresh.get(encodeAddress(addr)) === true);
  return total;
}

/**
 * Pre-flight of any payment: the balance must cover what leaves it, the fee and what the actions
 * burn for the records they keep (`burn`, recordBurnOf) (amounts in UNC).
 */
export function checkFunds(p: {
  from: string;
  balance: bigint;
  spend: bigint;
  fee: bigint;
  burn?: bigint;
}): void {
  const burn = p.burn ?? 0n;
  const need = p.spend + p.fee + burn;
  if (p.balance < need) {
    throw new UncError(
      'INSUFFICIENT_FUNDS',
      `${p.from} holds ${unc(p.balance)} but this needs ${unc(need)} (${p.spend > 0n ? `${unc(p.spend)} + ` : ''}fee ${unc(p.fee)}${burn > 0n ? ` + ${unc(burn)} burned for the records it keeps` : ''}); nothing was signed`,
    );
  }
}

/**
 * `deposit` 0 (the default) deposits price × hours. `maxPricePerHour` is required: the price per
 * hour the renter was shown (or the most it accepts); the chain refuses the lease (PRICE_ABOVE_MAX)
 * when the offer costs more, so a node showing a cheaper price than the chain's cannot have the
 * deposit spent at the real one. `termsDigest` is required too: offerTermsDigest of the offer as
 * shown; the chain refuses the lease (OFFER_CHANGED) when the offer's other terms differ.
 */
export function openLeaseAction(
  offerId: string,
  hours: number,
  opts: { chipId?: string; deposit?: bigint; maxPricePerHour: bigint; termsDigest: Uint8Array },
): Action {
  return {
    type: 'openLease',
    offerId: fromHex(offerId, 32),
    chipId: opts.chipId ? fromHex(opts.chipId, 32) : null,
    hours,
    deposit: opts.deposit ?? 0n,
    maxPricePerHour: opts.maxPricePerHour,
    termsDigest: opts.termsDigest,
  };
}

export function topUpLeaseAction(leaseId: string, amount: bigint): Action {
  return { type: 'topUpLease', leaseId: fromHex(leaseId, 32), amount };
}

export function closeLeaseAction(leaseId: string): Action {
  return { type: 'closeLease', leaseId: fromHex(leaseId, 32) };
}

/**
 * Rates a job with its receipt: counted only for a job run while the lease ran, posted within the
 * chain's `receiptWindowMs` (unc_getParams) of the lease's end.
 */
export function postReceiptAction(signed: SignedReceipt, rating: number): Action {
  return { type: 'postReceipt', signed, rating };
}

/**
 * Disputes a request the provider never answered: the renter-signed request itself is the proof.
 * The chain takes it from block time ≥ the request's timestamp + `disputeWaitMs` (unc_getParams),
 * on a lease the renter kept running through that wait, and only while the lease has recorded
 * fewer than its allowance (`leaseDisputeAllowance`); send it no sooner.
 */
export function disputeAction(signed: SignedJobRequest, reason: string): Action {
  return { type: 'dispute', signed, reason };
}

/** How many disputes a lease may record by a block time, as the chain counts them (core `disputeAllowance`). */
export interface DisputeAllowance {
  /** The most disputes the lease may have recorded in all at that block time. */
  allowed: number;
  /**
   * Block time (ms) from which the allowance grows no further (core `disputeAllowanceUntil`): the
   * end its renter kept (and paid for), or one wait past the lease's end if the provider cut it short.
   */
  keptUntilMs: number;
  /** Block time (ms) from which one more is allowed, or null when the lease was not kept that long. */
  nextAtMs: number | null;
}

/**
 * The chain's dispute allowance of a lease as the node shows it (PROTOCOL.md §8, docs/jobs.md): one
 * per `disputeWaitMs` of lease time its renter kept and paid for by `atMs` (block time), at least
 * one. A renter compares it with `lease.disputes` before it sends one: past it the chain refuses
 * the whole transaction (TOO_MANY_DISPUTES).
 */
export function leaseDisputeAllowance(
  lease: LeaseJson,
  atMs: number,
  disputeWaitMs: number,
): DisputeAllowance {
  const kept = {
    startTime: BigInt(lease.startTime),
    hours: lease.hours,
    pricePerHour: BigInt(lease.pricePerHour),
    deposited: BigInt(lease.deposit),
    endTime: BigInt(lease.endTime),
    status: lease.status === 'closed' ? LeaseStatus.closed : LeaseStatus.active,
    closedReason: lease.closedReason ?? '',
    closedTime: BigInt(lease.closedTime ?? 0),
  };
  const wait = BigInt(disputeWaitMs);
  const allowed = disputeAllowance(kept, BigInt(atMs), wait);
  const keptUntil = disputeAllowanceUntil(kept, wait);
  const next = kept.startTime + (allowed + 1n) * wait;
  return {
    allowed: Number(allowed),
    keptUntilMs: Number(keptUntil),
    nextAtMs: next <= keptUntil ? Number(next) : null,
  };
}
