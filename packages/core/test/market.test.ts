import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  type Action,
  accountCodec,
  actionCodec,
  answeredIn,
  BlockExecutor,
  bondCodec,
  CHALLENGE_HISTORY_EPOCHS,
  ChipStatus,
  checkCostlyActions,
  chipActionRefusal,
  chipClass,
  circulatingSupply,
  costThrough,
  DEFAULT_MARKET_PARAMS,
  DEFAULT_PARAMS,
  decode,
  devSoftChipId,
  disputeAllowance,
  disputeId,
  ed25519Sign,
  effectiveStatus,
  encode,
  epochOf,
  equalBytes,
  escrowUntil,
  type Genesis,
  genesisToJson,
  getAccount,
  getChallengeClass,
  getChip,
  getChipMarket,
  getHeldTally,
  getLease,
  getMarketParams,
  getOffer,
  getPociParams,
  getProviderRecord,
  getSupply,
  type HeartbeatAnswer,
  HOUR_MS,
  hasMark,
  hasProvenOnline,
  type JobReceipt,
  jobRequestDigest,
  type Lease,
  LeaseStatus,
  type LeaseTerms,
  leaseCodec,
  leaseEndsAt,
  leasesByRenter,
  leaseTermsCodec,
  leaseTermsDigest,
  leaseTermsOf,
  listItems,
  MARK_PRUNE_PER_BLOCK,
  MARKET_PARAMS_KEY,
  MemoryState,
  markCount,
  markOnce,
  nextId,
  parseGenesis,
  pruneMarks,
  putChip,
  RECEIPT_CLOCK_SLACK_MS,
  receiptDigest,
  STATE_ENTRY_BURN_ACTIONS,
  StateOverlay,
  StateSpace,
  scheduleMarkPrune,
  sha256,
  slaSplit,
  type TxEnvelope,
  type TxEvent,
  taggedHash,
  toHex,
  transferConsentChecks,
  transferMessage,
  txEventCodec,
  utf8,
  ValidationError,
} from '../src/index.js';
import {
  answer,
  CHAIN,
  genesis,
  type Key,
  key,
  miner,
  other,
  registerAction,
  slotsOf,
  TestChain,
  validator,
} from './harness.js';

const UNC = 10n ** 18n;
/** 1 UNC per hour: exactly 10^18 / 3.6·10^6 is not an integer, so rounding is exercised. */
const PRICE = UNC;
const MINUTE = 60_000n;
const TLS_A = sha256(utf8('tls certificate a'));
const TLS_B = sha256(utf8('tls certificate b'));
const chipA = key('market-chip-a');
const chipB = key('market-chip-b');
const idA = devSoftChipId(chipA.publicKey);
const idB = devSoftChipId(chipB.publicKey);
const provider = miner;
const renter = other;
/** What opening a lease burns for the record it keeps (stateEntryBurn). */
const LEASE_BURN = STATE_ENTRY_BURN_ACTIONS * DEFAULT_PARAMS.minFeePerAction;
/** A terms digest for the encoding tests, where no offer is read. */
const TERMS = sha256(utf8('lease terms'));

/** TestChain that also keeps the block-level events (epoch-end settlements) and answers slots. */
class MarketChain extends TestChain {
  blockEvents: TxEvent[] = [];
  answered = new Set<string>();
  /** Slots that must go unanswered, as "chipHex:epoch:slot". */
  skip: (chip: Key, epoch: bigint, slot: number) => boolean = () => false;
  chips: Key[] = [];

  override block(txs: TxEnvelope[] = []): TxEvent[] {
    const height = this.height + 1n;
    const answers = this.dueAnswers(height);
    const all = [...txs];
    const ex = new BlockExecutor(this.state, {
      chainId: CHAIN,
      height,
      time: this.time + this.step(height),
      proposer: validator.publicKey,
      prevHash: this.hashOf(this.height),
      prevBeacon: this.beaconOf(this.height),
      beacon: this.beaconOf(this.height + 1n),
    });
    const events: TxEvent[] = [];
    for (const t of all) events.push(...ex.apply(t).events);
    // The answers after the block's other transactions, signed by their chips' owners (only they
    // may answer) at the nonces those left: the providers' own transactions take theirs first.
    const live = answers.filter((a) => {
      const chip = getChip(ex.overlay, a.chipId);
      return chip !== null && effectiveStatus(ex.overlay, chip, null).status === 'active';
    });
    for (const t of this.heartbeats(live, 0n, false, ex.overlay)) {
      all.push(t);
      events.push(...ex.apply(t).events);
    }
    this.blockEvents.push(...ex.blockEvents);
    this.state.apply(ex.finish().overlay.changes());
    this.height = height;
    this.time = ex.ctx.time;
    for (const t of all) this.nonces.set(Buffer.from(t.sender).toString('hex'), t.stx.tx.nonce + 1n);
    this.events.push(...events);
    return events;
  }

  /** Tries `t` in the next block (with its block-start bookkeeping), committing nothing. */
  try(t: TxEnvelope): ValidationError | null {
    const ex = new BlockExecutor(this.state, {
      chainId: CHAIN,
      height: this.height + 1n,
      time: this.time + this.step(this.height + 1n),
      proposer: validator.publicKey,
      prevHash: this.hashOf(this.height),
      prevBeacon: this.beaconOf(this.height),
      beacon: this.beaconOf(this.height + 1n),
    });
    const r = ex.tryApply(t);
    return r instanceof ValidationError ? r : null;
  }

  private dueAnswers(next: bigint): HeartbeatAnswer[] {
    const p = getPociParams(this.state);
    const out: HeartbeatAnswer[] = [];
    const current = epochOf(next, p);
    for (const chip of this.chips) {
      const rec = getChip(this.state, devSoftChipId(chip.publicKey));
      if (!rec || effectiveStatus(this.state, rec, null).status !== 'active') continue;
      for (const e of [current - 1n, current]) {
        if (e < rec.firstEpoch) continue;
        slotsOf(this, chip, e).forEach((h, slot) => {
          const id = `${Buffer.from(chip.publicKey).toString('hex')}:${e}:${slot}`;
          if (h >= next || next > h + p.answerWindowBlocks || this.answered.has(id)) return;
          this.answered.add(id);
          if (!this.skip(chip, e, slot)) out.push(answer(this, chip, e, slot));
        });
      }
    }
    return out;
  }
}

function offerAction(chipIds: Uint8Array[], over: Partial<Record<string, unknown>> = {}): Action {
  return {
    type: 'createOffer',
    chipIds,
    pricePerHour: PRICE,
    minHours: 1,
    maxHours: 10,
    noticeMs: 30n * MINUTE,
    endpoint: 'https://provider.example/api',
    attributes: { memoryMiB: 81_920, region: 'eu-west', runtimes: ['onnx'] },
    tlsFingerprints: [TLS_A],
    ...over,
  } as Action;
}

/**
 * Registers chips A and B to the provider; with `proven` (the default), runs blocks until each has
 * answered its first challenge, since only a chip proven online can be rented.
 */
function setup(step = MINUTE, proven = true, g: Genesis = genesis()): MarketChain {
  const chain = new MarketChain(g);
  chain.step = () => step;
  chain.chips = [chipA, chipB];
  chain.blocksUntil(2n);
  chain.block([
    chain.tx(provider, [
      registerAction(chain, chipA, provider.address),
      registerAction(chain, chipB, provider.address),
    ]),
  ]);
  if (proven) untilProven(chain, [idA, idB]);
  return chain;
}

/**
 * Registers a deregistered chip to `owner` in the first block that accepts it (a chip's unpaid
 * rewards hold its re-registration back until their epoch is final).
 */
function registerAgain(chain: MarketChain, chip: Key, owner: Key, max = 60): void {
  for (let i = 0; i < max; i++) {
    const tx = chain.tx(owner, [registerAction(chain, chip, owner.address)]);
    const refusal = chain.try(tx);
    if (!refusal) {
      chain.block([tx]);
      return;
    }
    assert.equal(refusal.code, 'CHIP_REWARDS_PENDING', refusal.message);
    chain.block();
  }
  throw new Error('the chip could not be registered again');
}

/** Runs blocks until every chip named has answered a challenge of its current registration. */
function untilProven(chain: MarketChain, ids: Uint8Array[], max = 400): void {
  for (let i = 0; i < max; i++) {
    if (ids.every((id) => hasProvenOnline(getChip(chain.state, id)!))) return;
    chain.block();
  }
  throw new Error('a chip never answered');
}

function find<T extends TxEvent['type']>(events: TxEvent[], type: T): Extract<TxEvent, { type: T }> {
  const e = events.find((x) => x.type === type);
  assert.ok(e, `no ${type} event`);
  return e as Extract<TxEvent, { type: T }>;
}

function createOffer(chain: MarketChain, chipIds = [idA, idB], over = {}): Uint8Array {
  return find(chain.block([chain.tx(provider, [offerAction(chipIds, over)])]), 'offerCreated').offerId;
}

/** A third account, which buys chips. */
const buyer = key('market-buyer');

/** `chip`'s transfer to `to`, its consent signed by the chip and anchored at the head. */
function transferAction(chain: MarketChain, chip: Key, to: Uint8Array): Action {
  const chipId = devSoftChipId(chip.publicKey);
  const anchor = chain.height;
  return {
    type: 'transferChip',
    chipId,
    newOwner: to,
    anchorHeight: anchor,
    consent: {
      type: 'dev-soft',
      signature: ed25519Sign(chip.seed, transferMessage(CHAIN, chipId, to, chain.hashOf(anchor))),
    },
  };
}

/** The terms digest a renter that read offer `offerId` from `chain`'s state signs. */
function terms(chain: MarketChain, offerId: Uint8Array): Uint8Array {
  const offer = getOffer(chain.state, offerId);
  return offer ? leaseTermsDigest(leaseTermsOf(chain.state, offer)) : TERMS;
}

/**
 * The `openLease` action a renter that read offer `offerId` from `chain` signs at the list price
 * `PRICE`: one hour, no deposit, any chip unless `over` says otherwise.
 */
function leaseAction(
  chain: MarketChain,
  offerId: Uint8Array,
  over: { chipId?: Uint8Array | null; hours?: number; deposit?: bigint } = {},
): Action {
  return {
    type: 'openLease',
    offerId,
    chipId: over.chipId ?? null,
    hours: over.hours ?? 1,
    deposit: over.deposit ?? 0n,
    maxPricePerHour: PRICE,
    termsDigest: terms(chain, offerId),
  };
}

function openLease(
  chain: MarketChain,
  offerId: Uint8Array,
  hours = 2,
  deposit = 0n,
  chipId: Uint8Array | null = null,
) {
  return find(
    chain.block([chain.tx(renter, [leaseAction(chain, offerId, { chipId, hours, deposit })])]),
    'leaseOpened',
  ).leaseId;
}

function code(chain: MarketChain, from: Key, actions: Action[]): string | null {
  return chain.try(chain.tx(from, actions))?.code ?? null;
}

function lease(chain: MarketChain, id: Uint8Array): Lease {
  const l = getLease(chain.state, id);
  assert.ok(l);
  return l;
}

function sumHoldings(chain: MarketChain): bigint {
  let sum = 0n;
  for (const { key: k, value } of chain.state.map.values()) {
    if (!value) continue;
    if (k[0] === StateSpace.account) sum += decode(accountCodec, value).balance;
    if (k[0] === StateSpace.bond) {
      const b = decode(bondCodec, value);
      sum += b.bonded + b.unbonding;
    }
    if (k[0] === StateSpace.lease) sum += decode(leaseCodec, value).remaining;
  }
  return sum;
}

function allLeases(chain: MarketChain): Lease[] {
  const out: Lease[] = [];
  for (const { key: k, value } of chain.state.map.values())
    if (value && k[0] === StateSpace.lease) out.push(decode(leaseCodec, value));
  return out;
}

function checkInvariants(chain: MarketChain): void {
  assert.equal(
    sumHoldings(chain),
    circulatingSupply(getSupply(chain.state)),
    'balances + bonds + escrow = genesis + minted − burned − slashed',
  );
  for (const l of allLeases(chain)) {
    assert.equal(l.deposited, l.paid + l.refunded + l.remaining, 'deposited = paid + refunded + remaining');
    assert.ok(l.accrued <= costThrough(l.pricePerHour, l.startTime, l.endTime), 'never charged past the end');
    assert.ok(l.settledTime <= leaseEndsAt(l), 'never settled past the moment the lease ended');
    if (l.status === LeaseStatus.closed && l.remaining !== 0n) {
      // Its last period held for its open challenges, each decided the block after its window.
      assert.ok(
        (getHeldTally(chain.state, l.id)?.pending ?? 0) > 0,
        'a closed lease holds a period only while a challenge of it is pending',
      );
    }
  }
}

describe('market: offers', () => {
  test('a provider offers its own active chips; bad offers change nothing and say why', () => {
    const chain = setup();
    const before = chain.state.map.size;
    assert.equal(code(chain, renter, [offerAction([idA])]), 'NOT_OWNER');
    assert.equal(code(chain, provider, [offerAction([sha256(utf8('nope'))])]), 'UNKNOWN_CHIP');
    assert.equal(code(chain, provider, [offerAction([idA, idA])]), 'BAD_OFFER');
    assert.equal(code(chain, provider, [offerAction([])]), 'BAD_OFFER');
    assert.equal(code(chain, provider, [offerAction([idA], { pricePerHour: 0n })]), 'BAD_PRICE');
    assert.equal(code(chain, provider, [offerAction([idA], { minHours: 3, maxHours: 2 })]), 'BAD_DURATION');
    assert.equal(code(chain, provider, [offerAction([idA], { minHours: 0, maxHours: 0 })]), 'BAD_DURATION');
    assert.equal(code(chain, provider, [offerAction([idA], { endpoint: 'ftp://x' })]), 'BAD_ENDPOINT');
    assert.equal(code(chain, provider, [offerAction([idA], { endpoint: 'http://a b' })]), 'BAD_ENDPOINT');
    assert.equal(
      code(chain, provider, [offerAction([idA], { noticeMs: 31n * 24n * HOUR_MS })]),
      'BAD_NOTICE',
    );
    assert.equal(
      code(chain, provider, [
        offerAction([idA], { attributes: { memoryMiB: 0, region: 'EU West', runtimes: [] } }),
      ]),
      'BAD_ATTRIBUTES',
    );
    assert.equal(chain.state.map.size, before, 'refused offers wrote nothing');

    const offerId = createOffer(chain, [idA]);
    const offer = getOffer(chain.state, offerId);
    assert.ok(offer);
    assert.equal(offer.pricePerHour, PRICE);
    assert.deepEqual(offer.attributes.runtimes, ['onnx']);
    assert.equal(code(chain, provider, [offerAction([idA])]), 'CHIP_ALREADY_OFFERED');
    const second = createOffer(chain, [idB]);
    assert.notDeepEqual(second, offerId, 'ids are unique');
    assert.equal(getProviderRecord(chain.state, provider.address).offers, 2n);
  });

  test("a chip re-registered by a new owner is not bound by its former owner's offer", () => {
    const chain = setup();
    const old = createOffer(chain, [idA]);
    chain.block([chain.tx(provider, [{ type: 'deregisterChip', chipId: idA }])]);
    registerAgain(chain, chipA, renter);
    assert.equal(code(chain, provider, [offerAction([idA])]), 'NOT_OWNER');
    const fresh = find(chain.block([chain.tx(renter, [offerAction([idA])])]), 'offerCreated').offerId;
    assert.notDeepEqual(fresh, old);
    // Re-registered, the chip has proven nothing yet: it is offered, but not rented before it answers.
    assert.equal(code(chain, provider, [leaseAction(chain, fresh)]), 'CHIP_UNAVAILABLE');
    untilProven(chain, [idA]);
    assert.equal(code(chain, provider, [leaseAction(chain, fresh)]), null, 'the new offer rents the chip');
    assert.equal(
      code(chain, renter, [leaseAction(chain, old)]),
      'CHIP_UNAVAILABLE',
      'the old offer cannot rent a chip its provider lost',
    );
  });

  test('closing an offer refuses new leases and ends running ones when the notice ends', () => {
    const chain = setup();
    const offerId = createOffer(chain);
    const leaseId = openLease(chain, offerId, 5);
    assert.equal(code(chain, renter, [{ type: 'closeOffer', offerId }]), 'NOT_PROVIDER');
    const events = chain.block([chain.tx(provider, [{ type: 'closeOffer', offerId }])]);
    const closedAt = chain.time;
    assert.equal(find(events, 'offerClosed').closesAt, closedAt + 30n * MINUTE);
    assert.equal(find(events, 'leaseClosing').endTime, closedAt + 30n * MINUTE);
    assert.equal(code(chain, provider, [{ type: 'closeOffer', offerId }]), 'OFFER_CLOSED');
    assert.equal(code(chain, renter, [leaseAction(chain, offerId)]), 'OFFER_CLOSED');
    assert.equal(lease(chain, leaseId).status, LeaseStatus.closing, 'the lease runs on during the notice');
    // The chips are free to be offered again at once; the leased one stays leased until the notice ends.
    createOffer(chain, [idA, idB]);
    while (lease(chain, leaseId).status !== LeaseStatus.closed) chain.block();
    const l = lease(chain, leaseId);
    assert.equal(l.closedReason, 'offerClosed');
    assert.equal(l.endTime, closedAt + 30n * MINUTE);
    assert.equal(
      l.accrued,
      costThrough(PRICE, l.startTime, l.endTime),
      'charged exactly up to the notice end',
    );
    checkInvariants(chain);
  });
});

describe('market: TLS fingerprints', () => {
  test('an https offer pins 1–2 certificate fingerprints, an http one none', () => {
    const chain = setup();
    const https = 'https://203.0.113.7:7443';
    // (A third fingerprint does not even encode: the codec's list bound is 2.)
    for (const tlsFingerprints of [[], [TLS_A, TLS_A]])
      assert.equal(
        code(chain, provider, [offerAction([idA], { endpoint: https, tlsFingerprints })]),
        'BAD_TLS',
      );
    assert.equal(
      code(chain, provider, [
        offerAction([idA], { endpoint: 'http://10.0.0.1:7070', tlsFingerprints: [TLS_A] }),
      ]),
      'BAD_TLS',
    );
    const plain = createOffer(chain, [idB], { endpoint: 'http://10.0.0.1:7070', tlsFingerprints: [] });
    assert.deepEqual(getOffer(chain.state, plain)!.tlsFingerprints, []);
    const offerId = createOffer(chain, [idA], { endpoint: https, tlsFingerprints: [TLS_A] });
    assert.deepEqual(getOffer(chain.state, offerId)!.tlsFingerprints, [TLS_A]);
  });

  test('rotation: only the provider posts [old, new] then [new]; closed offers are frozen', () => {
    const chain = setup();
    const offerId = createOffer(chain, [idA]);
    const update = (fingerprints: Uint8Array[]) =>
      ({ type: 'updateOfferTls', offerId, fingerprints }) as Action;
    assert.equal(code(chain, renter, [update([TLS_A, TLS_B])]), 'NOT_PROVIDER');
    assert.equal(code(chain, provider, [update([])]), 'BAD_TLS');
    assert.equal(code(chain, provider, [update([TLS_B, TLS_B])]), 'BAD_TLS');
    chain.block([chain.tx(provider, [update([TLS_A, TLS_B])])]);
    assert.deepEqual(getOffer(chain.state, offerId)!.tlsFingerprints, [TLS_A, TLS_B]);
    chain.block([chain.tx(provider, [update([TLS_B])])]);
    assert.deepEqual(getOffer(chain.state, offerId)!.tlsFingerprints, [TLS_B]);
    // During the notice period the leases still connect, so the certificate may still rotate (an
    // offer nobody leased leaves the state when it closes: it has no notice period to serve).
    openLease(chain, offerId, 2);
    chain.block([chain.tx(provider, [{ type: 'closeOffer', offerId }])]);
    assert.equal(code(chain, provider, [update([TLS_A])]), null);
    while (chain.time < getOffer(chain.state, offerId)!.closesAt) chain.block();
    assert.equal(code(chain, provider, [update([TLS_A])]), 'OFFER_CLOSED');
    assert.equal(code(chain, provider, [{ ...update([TLS_A]), offerId: TLS_A } as Action]), 'UNKNOWN_OFFER');
  });
});

describe('market: leases', () => {
  test('opening a lease moves the deposit into escrow and records the renter key', () => {
    const chain = setup();
    const offerId = createOffer(chain);
    const balance = getAccount(chain.state, renter.address).balance;
    assert.equal(code(chain, renter, [leaseAction(chain, offerId, { hours: 11 })]), 'BAD_DURATION');
    assert.equal(
      code(chain, renter, [leaseAction(chain, offerId, { hours: 2, deposit: PRICE - 1n })]),
      'DEPOSIT_TOO_LOW',
    );
    assert.equal(
      code(chain, renter, [leaseAction(chain, offerId, { chipId: sha256(utf8('x')), hours: 2 })]),
      'CHIP_NOT_OFFERED',
    );
    assert.equal(code(chain, provider, [leaseAction(chain, offerId, { hours: 2 })]), 'SELF_LEASE');
    const poor = key('poor');
    assert.equal(code(chain, poor, [leaseAction(chain, offerId, { hours: 2 })]), 'INSUFFICIENT_FUNDS');

    const tx = chain.tx(renter, [leaseAction(chain, offerId, { chipId: idB, hours: 2 })]);
    const events = chain.block([tx]);
    const opened = find(events, 'leaseOpened');
    const l = lease(chain, opened.leaseId);
    assert.deepEqual(l.chipId, idB);
    assert.deepEqual(l.renterPublicKey, renter.publicKey);
    assert.equal(l.deposited, 2n * PRICE);
    assert.equal(l.remaining, 2n * PRICE);
    assert.equal(l.endTime, chain.time + 2n * HOUR_MS);
    assert.equal(
      getAccount(chain.state, renter.address).balance,
      balance - 2n * PRICE - tx.stx.tx.fee - LEASE_BURN,
      'deposit, fee and the burn of the lease record left the balance',
    );
    assert.deepEqual(getChipMarket(chain.state, idB).leaseId, opened.leaseId);
    assert.equal(
      code(chain, renter, [leaseAction(chain, offerId, { chipId: idB, hours: 2 })]),
      'CHIP_UNAVAILABLE',
    );
    // Without a chip named, the free one is taken; then none is left.
    const second = openLease(chain, offerId, 1);
    assert.deepEqual(lease(chain, second).chipId, idA);
    assert.equal(code(chain, renter, [leaseAction(chain, offerId)]), 'CHIP_UNAVAILABLE');
    assert.deepEqual(
      listItems(chain.state, leasesByRenter(renter.address)).map((x) => Buffer.from(x).toString('hex')),
      [second, opened.leaseId].map((x) => Buffer.from(x).toString('hex')),
      'newest first',
    );
    checkInvariants(chain);
  });

  test('every epoch end pays the provider for answered slots and refunds missed ones, exactly', () => {
    const chain = setup();
    const p = getPociParams(chain.state);
    // The lease opens in epoch E − 1; the chip misses the first slot of epoch E and answers all others.
    const E = epochOf(chain.height + 1n, p) + 1n;
    chain.skip = (chip, epoch, slot) => chip === chipA && epoch === E && slot === 0;
    const offerId = createOffer(chain, [idA]);
    const leaseId = openLease(chain, offerId, 3);
    assert.equal(epochOf(chain.height, p), E - 1n);
    const start = lease(chain, leaseId).startTime;
    // The provider's chips also earn POCI rewards (they answer): those are counted apart.
    const rewards = () => getChip(chain.state, idA)!.rewardsEarned + getChip(chain.state, idB)!.rewardsEarned;
    const providerBefore = getAccount(chain.state, provider.address).balance - rewards();
    chain.blocksUntil((E + 1n) * p.epochBlocks); // the block before epoch E + 1's first
    const mid = lease(chain, leaseId);
    const [settle1] = chain.blockEvents.filter((e) => e.type === 'leaseSettled') as Extract<
      TxEvent,
      { type: 'leaseSettled' }
    >[];
    assert.ok(settle1, 'settled at the end of epoch E − 1');
    assert.equal(settle1.missed, 0, 'the chip answered every decided slot of epoch E − 1');
    assert.equal(settle1.paid, settle1.cost, 'a proven chip with no miss is paid in full');
    chain.block(); // first block of epoch E + 1: settles epoch E's decided slots
    const after = lease(chain, leaseId);
    const settled = chain.blockEvents.at(-1) as Extract<TxEvent, { type: 'leaseSettled' }>;
    assert.equal(settled.type, 'leaseSettled');
    const decided = chain.height - p.answerWindowBlocks - 1n;
    // The period's slots: the tail of epoch E − 1 not yet decided at E's start, then epoch E's.
    const inPeriod = [E - 1n, E]
      .flatMap((e) => slotsOf(chain, chipA, e).map((h, j) => ({ e, h, j })))
      .filter(({ h }) => h > mid.slotCursor && h <= decided);
    const missed = inPeriod.filter(({ e, j }) => e === E && j === 0).length;
    const answered = inPeriod.length - missed;
    assert.equal(settled.answered, answered);
    assert.equal(settled.missed, missed);
    const cost = costThrough(PRICE, start, chain.time) - mid.accrued;
    assert.equal(settled.cost, cost);
    const expectedPaid = (cost * BigInt(answered)) / BigInt(answered + missed);
    assert.equal(settled.paid, expectedPaid);
    assert.equal(settled.refunded, cost - expectedPaid);
    assert.equal(after.accrued, costThrough(PRICE, start, chain.time));
    assert.equal(
      getAccount(chain.state, provider.address).balance - rewards() - providerBefore,
      after.paid,
      'the provider was credited exactly what the lease paid',
    );
    assert.equal(getProviderRecord(chain.state, provider.address).earnings, after.paid);
    checkInvariants(chain);
  });

  test('the renter closes at any time: settled to the block, the rest refunded', () => {
    const chain = setup();
    const offerId = createOffer(chain, [idA]);
    const leaseId = openLease(chain, offerId, 4);
    chain.blocksUntil(chain.height + 7n);
    const stranger = key('stranger');
    chain.block([
      chain.tx(renter, [{ type: 'transfer', to: stranger.address, amount: UNC, memo: new Uint8Array() }]),
    ]);
    assert.equal(code(chain, stranger, [{ type: 'closeLease', leaseId }]), 'NOT_PARTY');
    const before = getAccount(chain.state, renter.address).balance;
    const refundedBefore = lease(chain, leaseId).refunded;
    const tx = chain.tx(renter, [{ type: 'closeLease', leaseId }]);
    const events = chain.block([tx]);
    const closed = find(events, 'leaseClosed');
    assert.equal(closed.reason, 'renterClosed');
    const l = lease(chain, leaseId);
    assert.equal(l.status, LeaseStatus.closed);
    assert.equal(l.accrued, costThrough(PRICE, l.startTime, chain.time));
    assert.equal(l.remaining, 0n);
    assert.equal(l.paid + l.refunded, 4n * PRICE);
    assert.equal(
      getAccount(chain.state, renter.address).balance,
      before - tx.stx.tx.fee + (l.refunded - refundedBefore),
      'the renter got back the missed share and the unused escrow',
    );
    assert.equal(getChipMarket(chain.state, idA).leaseId, null, 'the chip is free again');
    assert.equal(code(chain, renter, [{ type: 'closeLease', leaseId }]), 'LEASE_CLOSED');
    assert.equal(code(chain, renter, [{ type: 'topUpLease', leaseId, amount: 1n }]), 'LEASE_CLOSED');
    openLease(chain, offerId, 1);
    checkInvariants(chain);
  });

  test('the provider closes only with notice; the end time closes and settles', () => {
    const chain = setup();
    const offerId = createOffer(chain, [idA], { noticeMs: 10n * MINUTE });
    const leaseId = openLease(chain, offerId, 2);
    const events = chain.block([chain.tx(provider, [{ type: 'closeLease', leaseId }])]);
    const closing = find(events, 'leaseClosing');
    assert.equal(closing.reason, 'providerClosed');
    assert.equal(closing.endTime, chain.time + 10n * MINUTE);
    assert.equal(lease(chain, leaseId).status, LeaseStatus.closing);
    assert.equal(code(chain, provider, [{ type: 'closeLease', leaseId }]), 'ALREADY_CLOSING');
    // Still running during the notice: the renter may top up.
    chain.block([chain.tx(renter, [{ type: 'topUpLease', leaseId, amount: 5n }])]);
    while (lease(chain, leaseId).status !== LeaseStatus.closed) chain.block();
    const l = lease(chain, leaseId);
    assert.equal(l.closedReason, 'providerClosed');
    assert.equal(l.accrued, costThrough(PRICE, l.startTime, l.endTime));
    assert.equal(l.deposited, 2n * PRICE + 5n);
    checkInvariants(chain);
  });

  test('an exhausted escrow closes the lease; a top-up keeps it going', () => {
    const chain = setup();
    const offerId = createOffer(chain, [idA, idB]);
    // Deposit for the minimum hour only, on a 3-hour lease.
    const starved = openLease(chain, offerId, 3, PRICE, idA);
    const fed = openLease(chain, offerId, 3, PRICE, idB);
    chain.block([chain.tx(renter, [{ type: 'topUpLease', leaseId: fed, amount: 2n * PRICE }])]);
    assert.equal(code(chain, provider, [{ type: 'topUpLease', leaseId: fed, amount: 1n }]), 'NOT_RENTER');
    assert.equal(code(chain, renter, [{ type: 'topUpLease', leaseId: fed, amount: 0n }]), 'BAD_AMOUNT');
    chain.blocksUntil(chain.height + 2n * 60n); // two hours of one-minute blocks
    const s = lease(chain, starved);
    assert.equal(s.status, LeaseStatus.closed);
    assert.equal(s.closedReason, 'escrowExhausted');
    assert.equal(s.accrued, PRICE, 'the whole escrow was drawn, no more');
    const f = lease(chain, fed);
    assert.notEqual(f.status, LeaseStatus.closed);
    chain.blocksUntil(chain.height + 80n);
    assert.equal(lease(chain, fed).closedReason, 'ended');
    checkInvariants(chain);
  });

  test('attack: an exhausted escrow ends the lease that moment, not at the next epoch start', () => {
    const chain = setup();
    const offerId = createOffer(chain, [idA], { minHours: 0 });
    // 10 minutes' worth of escrow on a 3-hour lease, opened in an epoch's first block.
    const p = getPociParams(chain.state);
    chain.blocksUntil((epochOf(chain.height, p) + 1n) * p.epochBlocks);
    const deposit = PRICE / 6n;
    const leaseId = openLease(chain, offerId, 3, deposit, idA);
    const l0 = lease(chain, leaseId);
    const until = escrowUntil(l0);
    assert.ok(costThrough(PRICE, l0.startTime, until) >= deposit, 'the escrow is spent at that moment');
    assert.ok(costThrough(PRICE, l0.startTime, until - 1n) < deposit, 'and not a millisecond before');
    // Walk to the first block at or after the moment, well before the next epoch start.
    while (chain.time + 2n * MINUTE < until) chain.block();
    assert.equal(code(chain, renter, [{ type: 'topUpLease', leaseId, amount: PRICE }]), null, 'still open');
    while (chain.time < until) chain.block();
    // Settled and closed by the chain in the first block at or after that moment, before any of its
    // transactions: no top-up revives it, and the chip is free.
    const closed = find(chain.blockEvents, 'leaseClosed');
    assert.equal(closed.reason, 'escrowExhausted');
    const l = lease(chain, leaseId);
    assert.equal(l.status, LeaseStatus.closed);
    assert.equal(l.closedHeight, chain.height, 'closed in the first block at or after its end');
    assert.equal(l.settledTime, until, 'the escrow paid up to exactly that moment');
    assert.equal(l.accrued, deposit);
    assert.equal(l.paid + l.refunded, deposit);
    assert.equal(code(chain, renter, [{ type: 'topUpLease', leaseId, amount: PRICE }]), 'LEASE_CLOSED');
    const events = chain.block([chain.tx(renter, [leaseAction(chain, offerId, { chipId: idA })])]);
    find(events, 'leaseOpened');
    checkInvariants(chain);
  });

  test('attack: a chip that never answered a challenge is not rented, named or picked', () => {
    // Fails on the old rule: a fresh registration counts as online until it has missed K
    // challenges (~45 min at defaults), so a lease opened on it and paid for that unproven time.
    const chain = setup(MINUTE, false);
    const offerId = createOffer(chain, [idA, idB]); // offering an unproven chip is fine
    const named = chain.try(chain.tx(renter, [leaseAction(chain, offerId, { chipId: idA })]));
    assert.equal(named?.code, 'CHIP_UNAVAILABLE');
    assert.match(named.message, /has not answered a challenge since its registration/);
    const before = chain.state.map.size;
    assert.equal(code(chain, renter, [leaseAction(chain, offerId)]), 'CHIP_UNAVAILABLE');
    assert.equal(chain.state.map.size, before, 'the refusal wrote nothing');
    // Once it has answered its first challenge (in the epoch after its registration), it is rented.
    untilProven(chain, [idA]);
    const leaseId = openLease(chain, offerId, 1, 0n, idA);
    assert.deepEqual(lease(chain, leaseId).chipId, idA);
    checkInvariants(chain);
  });

  test('attack: a leased chip deregistered and registered again does not carry its lease onto the fresh record', () => {
    // The provider re-registers the chip within an epoch. Left to the next epoch start, the lease
    // ran on over the fresh record, which answered nothing yet and forgot the old record's misses;
    // the deregistration settles and closes the lease in its own transaction. With an offer that
    // gives no notice, the provider ends the lease and deregisters in one transaction.
    const chain = setup();
    const p = getPociParams(chain.state);
    const offerId = createOffer(chain, [idA], { noticeMs: 0n });
    chain.blocksUntil((epochOf(chain.height, p) + 1n) * p.epochBlocks); // an epoch's last block
    const X = epochOf(chain.height + 1n, p);
    // The chip answers nothing in epoch X, so nothing of X holds its re-registration back.
    chain.skip = (chip, e) => chip === chipA && e === X;
    const leaseId = openLease(chain, offerId, 3); // opens in the first block of epoch X
    const events = chain.block([
      chain.tx(provider, [
        { type: 'closeLease', leaseId },
        { type: 'deregisterChip', chipId: idA },
      ]),
    ]);
    assert.equal(find(events, 'leaseClosed').reason, 'providerClosed');
    const l = lease(chain, leaseId);
    assert.equal(l.status, LeaseStatus.closed, 'closed by the deregistration itself');
    assert.equal(l.closedHeight, chain.height);
    assert.equal(l.paid + l.refunded, l.deposited);
    assert.equal(getChipMarket(chain.state, idA).leaseId, null, 'the chip is free');
    registerAgain(chain, chipA, provider);
    assert.equal(epochOf(chain.height, p), X, 'registered again within epoch X');
    assert.equal(hasProvenOnline(getChip(chain.state, idA)!), false);
    const paid = l.paid;
    untilProven(chain, [idA]);
    chain.blocksUntil((epochOf(chain.height, p) + 1n) * p.epochBlocks + 1n);
    assert.equal(lease(chain, leaseId).paid, paid, 'the old lease pays nothing for the fresh record');
    // The fresh record, once proven, is rented by a lease of its own.
    const again = openLease(chain, offerId, 1, 0n, idA);
    assert.deepEqual(lease(chain, again).chipId, idA);
    checkInvariants(chain);
  });

  test('attack: a sold chip does not keep paying its seller for the lease it served', () => {
    // The provider sells a chip whose lease it ended (an offer without notice: in the same
    // transaction). The buyer's chip keeps answering its challenges; left to the next epoch start,
    // the seller was paid for those answers as if it still served the lease.
    const chain = setup();
    const p = getPociParams(chain.state);
    const offerId = createOffer(chain, [idA], { noticeMs: 0n });
    const leaseId = openLease(chain, offerId, 3);
    chain.blocksUntil(chain.height + 5n);
    let events: TxEvent[] | null = null;
    for (let i = 0; i < 60 && !events; i++) {
      const tx = chain.tx(provider, [
        { type: 'closeLease', leaseId },
        transferAction(chain, chipA, buyer.address),
      ]);
      const refusal = chain.try(tx);
      if (refusal) {
        assert.equal(refusal.code, 'CHIP_REWARDS_PENDING', refusal.message);
        chain.block();
      } else events = chain.block([tx]);
    }
    assert.ok(events, 'the chip could not be transferred');
    assert.deepEqual(getChip(chain.state, idA)!.owner, buyer.address);
    assert.equal(find(events, 'leaseClosed').reason, 'providerClosed');
    const l = lease(chain, leaseId);
    assert.equal(l.status, LeaseStatus.closed, 'closed by the transfer itself');
    const { paid } = l;
    const earnings = getProviderRecord(chain.state, provider.address).earnings;
    const answeredBefore = getChip(chain.state, idA)!.slotsAnswered;
    // The chip answers on for its buyer across the next epoch start: the seller earns nothing more.
    chain.blocksUntil((epochOf(chain.height, p) + 2n) * p.epochBlocks + 1n);
    assert.ok(getChip(chain.state, idA)!.slotsAnswered > answeredBefore, 'the sold chip kept answering');
    assert.equal(lease(chain, leaseId).paid, paid);
    assert.equal(getProviderRecord(chain.state, provider.address).earnings, earnings);
    checkInvariants(chain);
  });

  test('attack: a provider cannot skip its notice by moving a leased chip (transfer, to itself too, or deregistration)', () => {
    // A transfer, or a deregistration, ended the chip's lease at once: the unused escrow came back,
    // but the renter lost the notice period it signed for. A transfer to the owner itself did the
    // same and moved nothing. Now the chip stays while its lease binds it, closing or not.
    const chain = setup();
    const offerId = createOffer(chain, [idA], { noticeMs: 30n * MINUTE });
    const leaseId = openLease(chain, offerId, 3);
    const moves = (): [string | null, string | null, string | null] => [
      chain.try(chain.tx(provider, [transferAction(chain, chipA, buyer.address)]))?.code ?? null,
      chain.try(chain.tx(provider, [transferAction(chain, chipA, provider.address)]))?.code ?? null,
      chain.try(chain.tx(provider, [{ type: 'deregisterChip', chipId: idA }]))?.code ?? null,
    ];
    assert.deepEqual(moves(), ['CHIP_LEASED', 'SAME_OWNER', 'CHIP_LEASED']);
    const refusal = chain.try(chain.tx(provider, [transferAction(chain, chipA, buyer.address)]));
    assert.match(
      refusal!.message,
      /is leased .* give notice first \(closeLease, withdrawOfferChip or closeOffer: the lease then ends within 1800 s\)/,
    );
    // The provider gives notice: the lease is closing, and binds the chip until the notice has run.
    const closing = find(
      chain.block([chain.tx(provider, [{ type: 'closeLease', leaseId }])]),
      'leaseClosing',
    );
    assert.equal(closing.endTime, chain.time + 30n * MINUTE);
    assert.deepEqual(moves(), ['CHIP_LEASED', 'SAME_OWNER', 'CHIP_LEASED']);
    assert.match(
      chain.try(chain.tx(provider, [{ type: 'deregisterChip', chipId: idA }]))!.message,
      /its notice runs until .* deregister it from then on/,
    );
    // Once the notice has run the chip moves: from the block whose time reaches its end on.
    while (chain.time + 2n * MINUTE < closing.endTime) chain.block();
    assert.equal(chain.time + MINUTE, closing.endTime - MINUTE, 'the next block is the last of the notice');
    assert.equal(moves()[0], 'CHIP_LEASED', 'one block before the notice ends');
    chain.block();
    let events: TxEvent[] | null = null;
    for (let i = 0; i < 60 && !events; i++) {
      const tx = chain.tx(provider, [transferAction(chain, chipA, buyer.address)]);
      const r = chain.try(tx);
      if (r) {
        assert.equal(r.code, 'CHIP_REWARDS_PENDING', r.message);
        chain.block();
      } else events = chain.block([tx]);
    }
    assert.ok(events, 'the chip could not be transferred after the notice');
    assert.deepEqual(getChip(chain.state, idA)!.owner, buyer.address);
    const l = lease(chain, leaseId);
    assert.equal(l.status, LeaseStatus.closed);
    assert.equal(l.closedReason, 'providerClosed');
    assert.equal(l.endTime, closing.endTime);
    assert.equal(
      l.accrued,
      costThrough(PRICE, l.startTime, l.endTime),
      'served and charged through the notice',
    );
    checkInvariants(chain);
  });

  test('a chip whose lease has ended is deregistered: the chain closed the lease in the first block at its end', () => {
    const chain = setup();
    const p = getPociParams(chain.state);
    const offerId = createOffer(chain, [idA], { minHours: 0 });
    // Ten minutes of escrow, opened in an epoch's first block: it runs out well before the next.
    chain.blocksUntil((epochOf(chain.height, p) + 1n) * p.epochBlocks);
    const leaseId = openLease(chain, offerId, 3, PRICE / 6n, idA);
    const until = escrowUntil(lease(chain, leaseId));
    assert.equal(code(chain, provider, [{ type: 'deregisterChip', chipId: idA }]), 'CHIP_LEASED');
    while (chain.time < until) chain.block();
    const endBlock = chain.height;
    chain.block([chain.tx(provider, [{ type: 'deregisterChip', chipId: idA }])]);
    const l = lease(chain, leaseId);
    assert.equal(l.status, LeaseStatus.closed);
    assert.equal(l.closedReason, 'escrowExhausted');
    assert.equal(l.closedHeight, endBlock, 'closed in the first block at or after its end');
    assert.equal(l.settledTime, until);
    assert.equal(getChip(chain.state, idA)!.status, ChipStatus.deregistered);
    checkInvariants(chain);
  });

  test('settlement costs nothing on blocks that are not an epoch start', () => {
    const chain = setup();
    const offerId = createOffer(chain);
    openLease(chain, offerId, 3);
    openLease(chain, offerId, 3);
    const p = getPociParams(chain.state);
    while ((chain.height + 1n - 1n) % p.epochBlocks === 0n) chain.block();
    const ex = new BlockExecutor(chain.state, {
      chainId: CHAIN,
      height: chain.height + 1n,
      time: chain.time + MINUTE,
      proposer: validator.publicKey,
      prevHash: chain.hashOf(chain.height),
      prevBeacon: chain.beaconOf(chain.height),
      beacon: chain.beaconOf(chain.height + 1n),
    });
    assert.equal(ex.blockEvents.length, 0);
    const touched = ex.overlay
      .changes()
      .filter((w) => w.key[0] >= StateSpace.offer && w.key[0] <= StateSpace.marketIndex);
    assert.equal(touched.length, 0, 'no market writes outside an epoch start');
  });
});

describe('market: a leased chip stays with its provider until the lease ends', () => {
  test('admission refuses a leased chip’s transfer before its consent is checked, and a transfer to the sender at once', () => {
    const chain = setup();
    const noticed = createOffer(chain, [idA], { noticeMs: 30n * MINUTE });
    const noNotice = createOffer(chain, [idB], { noticeMs: 0n });
    openLease(chain, noticed, 2, 0n, idA);
    openLease(chain, noNotice, 2, 0n, idB);
    // As a node's mempool asks it: on the next block's opening state, at its time.
    const ex = new BlockExecutor(chain.state, {
      chainId: CHAIN,
      height: chain.height + 1n,
      time: chain.time + MINUTE,
      proposer: validator.publicKey,
      prevHash: chain.hashOf(chain.height),
      prevBeacon: chain.beaconOf(chain.height),
      beacon: chain.beaconOf(chain.height + 1n),
    });
    let costly = 0;
    const ctx = { ...ex.ctx, onCostlyCheck: () => costly++ };
    const tx = (actions: Action[]) => chain.tx(provider, actions).stx.tx;
    const refusal = (actions: Action[]): string | null => {
      try {
        checkCostlyActions(ex.overlay, ctx, provider.address, tx(actions));
        return null;
      } catch (err) {
        assert.ok(err instanceof ValidationError);
        return err.code;
      }
    };
    const toBuyer = transferAction(chain, chipA, buyer.address);
    assert.equal(refusal([toBuyer]), 'CHIP_LEASED');
    assert.equal(refusal([transferAction(chain, chipA, provider.address)]), 'SAME_OWNER');
    assert.equal(refusal([transferAction(chain, chipB, provider.address)]), 'SAME_OWNER');
    assert.equal(costly, 0, 'no consent was checked');
    assert.deepEqual(transferConsentChecks(ex.overlay, ctx, provider.address, tx([toBuyer])), []);
    // The cheap screen a node runs before the signature: the same refusals, deregistration too.
    const screen = (a: Action) => chipActionRefusal(ex.overlay, ctx.time, provider.address, a)?.code ?? null;
    assert.equal(screen(toBuyer), 'CHIP_LEASED');
    assert.equal(screen({ type: 'deregisterChip', chipId: idA }), 'CHIP_LEASED');
    assert.equal(screen(transferAction(chain, chipA, provider.address)), 'SAME_OWNER');
    // Someone else's chip, or a chip not registered: passed over here, execution refuses it.
    assert.equal(chipActionRefusal(ex.overlay, ctx.time, renter.address, toBuyer), null);
    // An offer without notice: the provider's own closeLease (earlier in the transaction, or
    // pending) ends the lease at once, so admission does not refuse what would then be valid.
    const bToBuyer = transferAction(chain, chipB, buyer.address);
    assert.equal(screen(bToBuyer), null);
    assert.equal(screen({ type: 'deregisterChip', chipId: idB }), null);
    const leaseB = getChipMarket(chain.state, idB).leaseId!;
    assert.equal(refusal([{ type: 'closeLease', leaseId: leaseB }, bToBuyer]), null);
    assert.equal(costly, 1, 'its consent was checked');
    assert.equal(transferConsentChecks(ex.overlay, ctx, provider.address, tx([bToBuyer])).length, 1);
    // ...and so it executes; without the closeLease it is refused.
    assert.equal(code(chain, provider, [bToBuyer]), 'CHIP_LEASED');
    assert.equal(code(chain, provider, [{ type: 'closeLease', leaseId: leaseB }, bToBuyer]), null);
  });

  test('a chip still offered can be leased again the moment its lease ends; once its offer is closed it moves', () => {
    // What the docs tell a provider: a renter's openLease earlier in the block binds the chip again
    // (a few base units suffice on an offer without a minimum duration), so close the offer first.
    const chain = setup();
    const offerId = createOffer(chain, [idA], { minHours: 0, noticeMs: 30n * MINUTE });
    const first = openLease(chain, offerId, 1, 0n, idA);
    while (chain.time + MINUTE < leaseEndsAt(lease(chain, first))) chain.block();
    const sameBlock = (txs: TxEnvelope[]): (ValidationError | null)[] => {
      const ex = new BlockExecutor(chain.state, {
        chainId: CHAIN,
        height: chain.height + 1n,
        time: chain.time + MINUTE,
        proposer: validator.publicKey,
        prevHash: chain.hashOf(chain.height),
        prevBeacon: chain.beaconOf(chain.height),
        beacon: chain.beaconOf(chain.height + 1n),
      });
      return txs.map((t) => {
        const r = ex.tryApply(t);
        return r instanceof ValidationError ? r : null;
      });
    };
    const toBuyer = () => chain.tx(provider, [transferAction(chain, chipA, buyer.address)]);
    assert.notEqual(sameBlock([toBuyer()])[0]?.code, 'CHIP_LEASED', 'the lease has ended: the chip may move');
    const dust = chain.tx(renter, [leaseAction(chain, offerId, { chipId: idA, hours: 1, deposit: 1n })]);
    const [opened, moved] = sameBlock([dust, toBuyer()]);
    assert.equal(opened, null);
    assert.equal(moved?.code, 'CHIP_LEASED', 'a lease opened earlier in the block binds the chip again');
    chain.block([chain.tx(provider, [{ type: 'closeOffer', offerId }])]);
    assert.equal(
      code(chain, renter, [leaseAction(chain, offerId, { chipId: idA, deposit: 1n })]),
      'OFFER_CLOSED',
    );
    for (let i = 0; i < 60 && !equalBytes(getChip(chain.state, idA)!.owner, buyer.address); i++) {
      const tx = toBuyer();
      const r = chain.try(tx);
      if (r) {
        assert.equal(r.code, 'CHIP_REWARDS_PENDING', r.message);
        chain.block();
      } else chain.block([tx]);
    }
    assert.deepEqual(getChip(chain.state, idA)!.owner, buyer.address);
    checkInvariants(chain);
  });

  test('property: a chip its lease binds never changes owner nor leaves; no lease is cut short but by its renter; top-ups never outlast the notice', () => {
    type Op =
      | { op: 'wait'; blocks: number }
      | { op: 'transfer'; toSelf: boolean }
      | { op: 'transferBack' }
      | { op: 'deregister' }
      | { op: 'register' }
      | { op: 'providerClose' }
      | { op: 'renterClose' }
      | { op: 'closeOffer' }
      | { op: 'newOffer' }
      | { op: 'topUp'; share: number }
      | { op: 'open'; hours: number; share: number };
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ op: fc.constant('wait' as const), blocks: fc.integer({ min: 1, max: 25 }) }),
      fc.record({ op: fc.constant('transfer' as const), toSelf: fc.boolean() }),
      fc.constant({ op: 'transferBack' as const }),
      fc.constant({ op: 'deregister' as const }),
      fc.constant({ op: 'register' as const }),
      fc.constant({ op: 'providerClose' as const }),
      fc.constant({ op: 'renterClose' as const }),
      fc.constant({ op: 'closeOffer' as const }),
      fc.constant({ op: 'newOffer' as const }),
      // Per mille of an hour's price: the renter tries to keep the chip bound by paying for more.
      fc.record({ op: fc.constant('topUp' as const), share: fc.integer({ min: 1, max: 5000 }) }),
      fc.record({
        op: fc.constant('open' as const),
        hours: fc.integer({ min: 1, max: 3 }),
        // Per mille of price × hours: below 1000 the escrow runs out before the booked end.
        share: fc.integer({ min: 50, max: 1000 }),
      }),
    );
    fc.assert(
      fc.property(
        fc.constantFrom(0n, 2n * MINUTE, 30n * MINUTE),
        fc.array(opArb, { minLength: 1, maxLength: 12 }),
        (noticeMs, ops) => {
          const chain = setup();
          chain.block([
            chain.tx(provider, [
              { type: 'transfer', to: buyer.address, amount: UNC, memo: new Uint8Array() },
            ]),
          ]);
          const offerTerms = { minHours: 0, maxHours: 3, noticeMs };
          let offerId = createOffer(chain, [idA], offerTerms);
          /** The latest end each lease may have: its provider's notice, once given, caps it. */
          const capped = new Map<string, bigint>();
          const currentLease = (): Lease | null => {
            const id = getChipMarket(chain.state, idA).leaseId;
            return id ? getLease(chain.state, id) : null;
          };
          /** Whether a running lease of the provider's binds the chip at the next block's time. */
          const bound = (): boolean => {
            const l = currentLease();
            const chip = getChip(chain.state, idA);
            return (
              l !== null &&
              chip !== null &&
              l.status !== LeaseStatus.closed &&
              equalBytes(l.provider, chip.owner) &&
              chain.time + MINUTE < leaseEndsAt(l)
            );
          };
          const step = (from: Key, actions: Action[]): string | null => {
            const tx = chain.tx(from, actions);
            const refusal = chain.try(tx);
            const wasBound = bound();
            const before = getChip(chain.state, idA);
            if (refusal) {
              chain.block();
            } else {
              chain.block([tx]);
              const after = getChip(chain.state, idA);
              if (wasBound && before) {
                assert.ok(after && equalBytes(after.owner, before.owner), 'a bound chip changed owner');
                assert.equal(after.status, before.status, 'a bound chip left');
              }
            }
            for (const l of allLeases(chain)) {
              const cap = capped.get(toHex(l.id));
              if (cap !== undefined) assert.ok(leaseEndsAt(l) <= cap, 'a lease outlasted its notice');
              if (l.status !== LeaseStatus.closed) continue;
              assert.notEqual(l.closedReason, 'chipUnavailable');
              if (l.closedReason !== 'renterClosed')
                assert.ok(l.closedTime >= leaseEndsAt(l), `lease closed (${l.closedReason}) before its end`);
            }
            checkInvariants(chain);
            return refusal?.code ?? null;
          };
          /** The provider's notice on its leases of the chip's offer: their ends may not pass it. */
          const noticeGiven = (ids: Uint8Array[]) => {
            for (const id of ids) {
              const cap = chain.time + noticeMs;
              const was = capped.get(toHex(id));
              if (was === undefined || cap < was) capped.set(toHex(id), cap);
            }
          };
          for (const o of ops) {
            const wasBound = bound();
            switch (o.op) {
              case 'wait':
                for (let i = 0; i < o.blocks; i++) step(provider, []);
                break;
              case 'transfer': {
                const to = o.toSelf ? provider.address : buyer.address;
                const c = step(provider, [transferAction(chain, chipA, to)]);
                if (o.toSelf) assert.equal(c, 'SAME_OWNER');
                else if (wasBound) assert.equal(c, 'CHIP_LEASED');
                else assert.notEqual(c, 'CHIP_LEASED');
                break;
              }
              case 'transferBack':
                step(buyer, [transferAction(chain, chipA, provider.address)]);
                break;
              case 'deregister': {
                const c = step(provider, [{ type: 'deregisterChip', chipId: idA }]);
                if (wasBound) assert.equal(c, 'CHIP_LEASED');
                else assert.notEqual(c, 'CHIP_LEASED');
                break;
              }
              case 'register':
                step(provider, [registerAction(chain, chipA, provider.address)]);
                break;
              case 'providerClose':
              case 'renterClose': {
                const l = currentLease();
                if (!l) break;
                const c = step(o.op === 'renterClose' ? renter : provider, [
                  { type: 'closeLease', leaseId: l.id },
                ]);
                if (c === null && o.op === 'providerClose') noticeGiven([l.id]);
                break;
              }
              case 'closeOffer': {
                const l = currentLease();
                const c = step(provider, [{ type: 'closeOffer', offerId }]);
                if (c === null && l && equalBytes(l.offerId, offerId)) noticeGiven([l.id]);
                break;
              }
              case 'newOffer': {
                const tx = chain.tx(provider, [offerAction([idA], offerTerms)]);
                if (chain.try(tx)) step(provider, []);
                else offerId = find(chain.block([tx]), 'offerCreated').offerId;
                break;
              }
              case 'topUp': {
                const l = currentLease();
                if (l)
                  step(renter, [
                    { type: 'topUpLease', leaseId: l.id, amount: (PRICE * BigInt(o.share)) / 1000n },
                  ]);
                break;
              }
              case 'open':
                step(renter, [
                  leaseAction(chain, offerId, {
                    chipId: idA,
                    hours: o.hours,
                    deposit: (PRICE * BigInt(o.hours) * BigInt(o.share)) / 1000n,
                  }),
                ]);
                break;
            }
          }
        },
      ),
      { numRuns: 15 },
    );
  });
});

describe('POCI: misses across a deregistration', () => {
  test('misses not yet recorded are recorded at the deregistration, and a registration again keeps them', () => {
    // Misses are recorded lazily, at the chip's next answer. A deregistered chip answers no more,
    // and its registration again started a fresh record carrying only the recorded count: the
    // misses of its last silent stretch vanished from `slotsMissed`, which renters read.
    const chain = setup();
    const p = getPociParams(chain.state);
    const from = epochOf(chain.height, p) + 1n;
    chain.skip = (chip, e) => chip === chipA && e >= from;
    chain.blocksUntil((from + 1n) * p.epochBlocks + 3n);
    const before = getChip(chain.state, idA)!;
    const height = chain.height + 1n; // the deregistration's block
    const cls = chipClass(idA, p);
    const expected: { epoch: bigint; slot: number; slotHeight: bigint }[] = [];
    for (let e = before.firstEpoch; e <= epochOf(height, p); e++)
      getChallengeClass(chain.state, e, cls).heights.forEach((h, slot) => {
        if (h > before.settledThrough && h < height && !answeredIn(before, e, slot))
          expected.push({ epoch: e, slot, slotHeight: h });
      });
    assert.ok(expected.length >= 2, `the chip's class drew ${expected.length} challenges it left unanswered`);
    const events = chain.block([chain.tx(provider, [{ type: 'deregisterChip', chipId: idA }])]);
    const missed = events.filter((e) => e.type === 'slotMissed');
    assert.deepEqual(
      missed.map((e) => ({ epoch: e.epoch, slot: e.slot, slotHeight: e.slotHeight })),
      expected,
    );
    for (const e of missed)
      assert.equal(
        e.reason,
        e.slotHeight + p.answerWindowBlocks < height
          ? `no answer included by height ${e.slotHeight + p.answerWindowBlocks}`
          : `the chip was deregistered at height ${height} before answering`,
      );
    const after = getChip(chain.state, idA)!;
    assert.equal(after.slotsMissed, before.slotsMissed + BigInt(expected.length));
    assert.equal(after.settledThrough, height);
    registerAgain(chain, chipA, provider);
    const again = getChip(chain.state, idA)!;
    assert.equal(again.registeredAt, chain.height, 'a fresh record');
    assert.equal(again.slotsMissed, after.slotsMissed, 'the recorded misses carried over');
    assert.equal(again.slotsAnswered, before.slotsAnswered);
  });

  test('a deregistration in the last blocks of an epoch counts the same 64 epochs of history as an answer there', () => {
    // The deregistration counted its misses as if judged W + 1 blocks later, to take the challenges
    // whose window is still open: in an epoch's last W + 1 blocks that moved the 64-epoch history
    // bound one epoch on, and the oldest epoch's misses of a long silent stretch went uncounted.
    const chain = setup();
    const p = getPociParams(chain.state);
    const from = epochOf(chain.height, p) + 1n;
    chain.skip = (chip, e) => chip === chipA && e >= from;
    const e = from + CHALLENGE_HISTORY_EPOCHS; // the silent stretch is longer than the history
    chain.blocksUntil((e + 1n) * p.epochBlocks - 2n);
    const before = getChip(chain.state, idA)!;
    const height = chain.height + 1n; // the deregistration's block: the epoch's last
    assert.equal(epochOf(height, p), e);
    assert.ok(
      height + p.answerWindowBlocks + 1n > (e + 1n) * p.epochBlocks,
      'within W + 1 blocks of its end',
    );
    const cls = chipClass(idA, p);
    let expected = 0;
    for (let x = e - CHALLENGE_HISTORY_EPOCHS + 1n; x <= e; x++)
      for (const h of getChallengeClass(chain.state, x, cls).heights)
        if (h > before.settledThrough && h < height) expected++;
    assert.ok(expected > 0 && expected < 256, `${expected} misses: under the count's cap`);
    chain.block([chain.tx(provider, [{ type: 'deregisterChip', chipId: idA }])]);
    assert.equal(getChip(chain.state, idA)!.slotsMissed - before.slotsMissed, BigInt(expected));
  });
});

describe('market: the renter signs the price and the offer terms', () => {
  /** Applies `t` in a fresh next-block executor: its refusal, and whether the state was left untouched. */
  function refusal(chain: MarketChain, t: TxEnvelope): { error: ValidationError | null; unchanged: boolean } {
    const ex = new BlockExecutor(chain.state, {
      chainId: CHAIN,
      height: chain.height + 1n,
      time: chain.time + chain.step(chain.height + 1n),
      proposer: validator.publicKey,
      prevHash: chain.hashOf(chain.height),
      prevBeacon: chain.beaconOf(chain.height),
      beacon: chain.beaconOf(chain.height + 1n),
    });
    const before = ex.overlay.changes();
    const r = ex.tryApply(t);
    return {
      error: r instanceof ValidationError ? r : null,
      unchanged:
        ex.overlay.changes().length === before.length &&
        ex.overlay.changes().every((w, i) => equalWrite(w, before[i]!)),
    };
  }
  const equalWrite = (
    a: { key: Uint8Array; value: Uint8Array | null },
    b: { key: Uint8Array; value: Uint8Array | null },
  ) =>
    Buffer.compare(a.key, b.key) === 0 &&
    (a.value === null ? b.value === null : b.value !== null && Buffer.compare(a.value, b.value) === 0);

  test('a lease at a price above the signed maxPricePerHour is refused and changes nothing', () => {
    // The attack: a node shows a pay-as-you-go offer (minHours 0) at a quarter of its real price; the
    // renter confirms 4 h of the shown price. That deposit meets the offer's minimum (0), so without a
    // signed price the lease opened at the real price and the escrow ran out in 1 h instead of 4.
    const chain = setup();
    const offerId = createOffer(chain, [idA, idB], { minHours: 0 });
    const shown = PRICE / 4n;
    const balance = getAccount(chain.state, renter.address).balance;
    const t = chain.tx(renter, [
      {
        type: 'openLease',
        offerId,
        chipId: null,
        hours: 4,
        deposit: 4n * shown,
        maxPricePerHour: shown,
        termsDigest: terms(chain, offerId),
      },
    ]);
    const r = refusal(chain, t);
    assert.equal(r.error?.code, 'PRICE_ABOVE_MAX', r.error?.message);
    assert.ok(r.unchanged, 'the refused lease wrote nothing');
    assert.equal(
      code(chain, renter, [
        {
          type: 'openLease',
          offerId,
          chipId: null,
          hours: 4,
          deposit: 4n * shown,
          maxPricePerHour: PRICE - 1n,
          termsDigest: terms(chain, offerId),
        },
      ]),
      'PRICE_ABOVE_MAX',
    );
    chain.block();
    assert.equal(getAccount(chain.state, renter.address).balance, balance);
    assert.equal(getOffer(chain.state, offerId)!.leasesOpened, 0n);
    assert.equal(getChipMarket(chain.state, idA).leaseId, null);
  });

  test('at or below maxPricePerHour the lease opens at the offer price, not at the maximum signed', () => {
    const chain = setup();
    const offerId = createOffer(chain);
    const balance = getAccount(chain.state, renter.address).balance;
    // Signed for up to 3× the price with deposit 0 (= price × hours): the offer's price is paid.
    const t = chain.tx(renter, [
      {
        type: 'openLease',
        offerId,
        chipId: idA,
        hours: 2,
        deposit: 0n,
        maxPricePerHour: 3n * PRICE,
        termsDigest: terms(chain, offerId),
      },
    ]);
    const above = lease(chain, find(chain.block([t]), 'leaseOpened').leaseId);
    assert.equal(above.pricePerHour, PRICE);
    assert.equal(above.deposited, 2n * PRICE);
    assert.equal(
      getAccount(chain.state, renter.address).balance,
      balance - 2n * PRICE - t.stx.tx.fee - LEASE_BURN,
    );
    // Exactly the price is accepted too.
    const exact = openLease(chain, offerId, 1, 0n, idB);
    assert.equal(lease(chain, exact).pricePerHour, PRICE);
  });

  test('property: a lease is refused with PRICE_ABOVE_MAX exactly when the offer price exceeds the maximum', () => {
    const chain = setup();
    const offerId = createOffer(chain, [idA, idB], { minHours: 0 });
    fc.assert(
      fc.property(
        fc.oneof(
          fc.bigInt({ min: 0n, max: 2n ** 128n - 1n }),
          fc.bigInt({ min: PRICE - 3n, max: PRICE + 3n }),
        ),
        (max) => {
          const got = code(chain, renter, [
            {
              type: 'openLease',
              offerId,
              chipId: null,
              hours: 1,
              deposit: 1n,
              maxPricePerHour: max,
              termsDigest: terms(chain, offerId),
            },
          ]);
          assert.equal(got, max < PRICE ? 'PRICE_ABOVE_MAX' : null);
        },
      ),
      { numRuns: 40 },
    );
  });
  /**
   * What a hostile node can misreport of an offer besides its price, each as the renter would then
   * see (and sign) the terms: none of them may open a lease.
   */
  const MISREPORTS: [string, (t: LeaseTerms) => LeaseTerms][] = [
    ['a 30-day notice', (t) => ({ ...t, noticeMs: 30n * 24n * 60n * MINUTE })],
    ['another endpoint', (t) => ({ ...t, endpoint: 'https://elsewhere.example/api' })],
    ['a better chip model', (t) => ({ ...t, chips: t.chips.map((c) => ({ ...c, modelId: 'h200' })) })],
    ['another vendor', (t) => ({ ...t, chips: t.chips.map((c) => ({ ...c, vendorId: 'other' })) })],
    ['twice the power', (t) => ({ ...t, chips: t.chips.map((c) => ({ ...c, power: 2n * c.power })) })],
    ['one chip fewer', (t) => ({ ...t, chips: t.chips.slice(1) })],
    ['the chips in another order', (t) => ({ ...t, chips: [...t.chips].reverse() })],
    ['a longer minimum', (t) => ({ ...t, minHours: t.minHours + 1 })],
    ['a longer maximum', (t) => ({ ...t, maxHours: t.maxHours + 1 })],
    [
      'more memory',
      (t) => ({ ...t, attributes: { ...t.attributes, memoryMiB: 2 * t.attributes.memoryMiB } }),
    ],
    ['another region', (t) => ({ ...t, attributes: { ...t.attributes, region: 'us-east' } })],
    ['another runtime', (t) => ({ ...t, attributes: { ...t.attributes, runtimes: ['cuda'] } })],
    ['another provider', (t) => ({ ...t, provider: other.address })],
  ];
  const openOn = (offerId: Uint8Array, termsDigest: Uint8Array): Action => ({
    type: 'openLease',
    offerId,
    chipId: null,
    hours: 2,
    deposit: 2n * PRICE,
    maxPricePerHour: PRICE,
    termsDigest,
  });

  test('attack: a lease on offer terms the node misreported is refused with OFFER_CHANGED and changes nothing', () => {
    // The offer gives no notice (the provider may stop serving at once); the node shows a 30-day one,
    // another endpoint, better hardware...: before, the renter signed the offer id alone (and a
    // price), and the chain opened the lease on the offer's real terms.
    const chain = setup();
    const offerId = createOffer(chain, [idA, idB], { noticeMs: 0n });
    const real = leaseTermsOf(chain.state, getOffer(chain.state, offerId)!);
    const balance = getAccount(chain.state, renter.address).balance;
    for (const [what, misreport] of MISREPORTS) {
      const shown = misreport(real);
      assert.notDeepEqual(shown, real, what);
      const r = refusal(chain, chain.tx(renter, [openOn(offerId, leaseTermsDigest(shown))]));
      assert.equal(r.error?.code, 'OFFER_CHANGED', `${what}: ${r.error?.message}`);
      assert.ok(r.unchanged, `${what}: the refused lease wrote nothing`);
    }
    chain.block();
    assert.equal(getAccount(chain.state, renter.address).balance, balance);
    assert.equal(getOffer(chain.state, offerId)!.leasesOpened, 0n);
    // The terms as the chain holds them open the lease.
    const t = chain.tx(renter, [openOn(offerId, leaseTermsDigest(real))]);
    const opened = lease(chain, find(chain.block([t]), 'leaseOpened').leaseId);
    assert.equal(opened.pricePerHour, PRICE);
  });

  test('property: a lease is refused with OFFER_CHANGED exactly when the signed terms are not the offer’s', () => {
    const chain = setup();
    const offerId = createOffer(chain, [idA, idB], { minHours: 0 });
    const real = leaseTermsOf(chain.state, getOffer(chain.state, offerId)!);
    fc.assert(
      fc.property(fc.option(fc.constantFrom(...MISREPORTS), { nil: null }), (m) => {
        const shown = m ? m[1](real) : real;
        const got = code(chain, renter, [openOn(offerId, leaseTermsDigest(shown))]);
        assert.equal(got, m ? 'OFFER_CHANGED' : null, m?.[0]);
      }),
      { numRuns: 40 },
    );
  });

  test('a TLS certificate rotated between the renter’s read and the inclusion does not refuse the lease', () => {
    // The fingerprints are not among the signed terms: they change during leases by design, and the
    // renter pins those the chain holds when it connects.
    const chain = setup();
    const offerId = createOffer(chain, [idA]);
    const read = terms(chain, offerId);
    chain.block([chain.tx(provider, [{ type: 'updateOfferTls', offerId, fingerprints: [TLS_A, TLS_B] }])]);
    assert.deepEqual(terms(chain, offerId), read);
    find(chain.block([chain.tx(renter, [openOn(offerId, read)])]), 'leaseOpened');
  });

  test('a chip re-registered under another model between the read and the inclusion refuses the lease', () => {
    // The hardware is read from the chips' records when the lease opens, not from the offer: the
    // renter signed for the hardware it was shown, whichever record the chip has by then.
    const chain = setup();
    const offerId = createOffer(chain, [idA, idB]);
    const read = terms(chain, offerId);
    const chip = getChip(chain.state, idA)!;
    const w = new StateOverlay(chain.state);
    putChip(w, { ...chip, modelId: `${chip.modelId}-other` });
    chain.state.apply(w.changes());
    assert.equal(code(chain, renter, [openOn(offerId, read)]), 'OFFER_CHANGED');
  });
});

describe('market: lease terms digest', () => {
  const text = fc.string({ maxLength: 8 });
  const bytes32 = fc.uint8Array({ minLength: 32, maxLength: 32 });
  const termsArb: fc.Arbitrary<LeaseTerms> = fc.record({
    offerId: bytes32,
    provider: fc.uint8Array({ minLength: 20, maxLength: 20 }),
    chips: fc.array(
      fc.record({
        chipId: bytes32,
        vendorId: text,
        modelId: text,
        power: fc.bigInt({ min: 0n, max: 2n ** 64n }),
      }),
      { maxLength: 4 },
    ),
    minHours: fc.nat(100),
    maxHours: fc.nat(100),
    noticeMs: fc.bigInt({ min: 0n, max: 2n ** 40n }),
    endpoint: text.map((s) => `https://${s}`),
    attributes: fc.record({
      memoryMiB: fc.nat(1 << 20),
      region: text,
      runtimes: fc.array(text, { maxLength: 3 }),
    }),
  });

  test('property: the terms encoding round-trips, and two terms share a digest only when they are equal', () => {
    fc.assert(
      fc.property(termsArb, termsArb, (a, b) => {
        const bytes = encode(leaseTermsCodec, a);
        assert.deepEqual(encode(leaseTermsCodec, decode(leaseTermsCodec, bytes)), bytes);
        const same = Buffer.compare(encode(leaseTermsCodec, a), encode(leaseTermsCodec, b)) === 0;
        assert.equal(Buffer.compare(leaseTermsDigest(a), leaseTermsDigest(b)) === 0, same);
      }),
      { numRuns: 200 },
    );
  });
});

describe('market: receipts and disputes', () => {
  const WAIT = DEFAULT_MARKET_PARAMS.disputeWaitMs;
  function receiptFor(leaseId: Uint8Array, chipId: Uint8Array, n: number, startMs: bigint): JobReceipt {
    return {
      chainId: CHAIN,
      leaseId,
      chipId,
      jobId: sha256(utf8(`job ${n}`)),
      modelHash: sha256(utf8('model')),
      inputHash: sha256(utf8(`in ${n}`)),
      outputHash: sha256(utf8(`out ${n}`)),
      startMs,
      durationMs: 2n,
    };
  }
  const sign = (chip: Key, r: JobReceipt) => ({
    receipt: r,
    evidence: { type: 'dev-soft' as const, signature: ed25519Sign(chip.seed, receiptDigest(r)) },
  });
  /** Runs blocks until the next one's time is at least `t`. */
  function nextBlockAt(chain: MarketChain, t: bigint): void {
    while (chain.time + chain.step(chain.height + 1n) < t) chain.block();
  }

  test('the renter rates jobs with chip-signed receipts, once each', () => {
    const chain = setup();
    const offerId = createOffer(chain, [idA]);
    const leaseId = openLease(chain, offerId, 2);
    const at = lease(chain, leaseId).startTime + 1_000n;
    const good = sign(chipA, receiptFor(leaseId, idA, 1, at));
    assert.equal(code(chain, renter, [{ type: 'postReceipt', signed: good, rating: 6 }]), 'BAD_RATING');
    assert.equal(code(chain, provider, [{ type: 'postReceipt', signed: good, rating: 5 }]), 'NOT_RENTER');
    const forged = sign(chipB, receiptFor(leaseId, idA, 2, at));
    assert.match(
      code(chain, renter, [{ type: 'postReceipt', signed: forged, rating: 5 }]) ?? '',
      /ATTEST|SIGNATURE/,
    );
    const otherChip = sign(chipB, receiptFor(leaseId, idB, 3, at));
    assert.equal(
      code(chain, renter, [{ type: 'postReceipt', signed: otherChip, rating: 5 }]),
      'RECEIPT_WRONG_CHIP',
    );
    const events = chain.block([chain.tx(renter, [{ type: 'postReceipt', signed: good, rating: 4 }])]);
    assert.equal(find(events, 'receiptPosted').rating, 4);
    assert.equal(code(chain, renter, [{ type: 'postReceipt', signed: good, rating: 4 }]), 'RECEIPT_REPLAYED');
    const sameJob = sign(chipA, {
      ...receiptFor(leaseId, idA, 1, at),
      outputHash: sha256(utf8('other output')),
    });
    assert.equal(
      code(chain, renter, [{ type: 'postReceipt', signed: sameJob, rating: 5 }]),
      'RECEIPT_REPLAYED',
      'one rating per job, whatever else the receipt says',
    );
    chain.block([
      chain.tx(renter, [
        { type: 'postReceipt', signed: sign(chipA, receiptFor(leaseId, idA, 9, at)), rating: 2 },
      ]),
    ]);
    const rec = getProviderRecord(chain.state, provider.address);
    assert.equal(rec.jobsReceipted, 2n);
    assert.equal(rec.ratingsCount, 2n);
    assert.equal(rec.ratingsSum, 6n);
  });

  test('a receipt counts only for a job run while the lease ran, posted within the window after its end', () => {
    const chain = setup();
    const offerId = createOffer(chain, [idA]);
    const leaseId = openLease(chain, offerId, 2);
    const start = lease(chain, leaseId).startTime;
    const post = (n: number, at: bigint, duration = 2n): Action => ({
      type: 'postReceipt',
      signed: sign(chipA, { ...receiptFor(leaseId, idA, n, at), durationMs: duration }),
      rating: 5,
    });
    // A chip's clock may stray a little from block time, not more.
    assert.equal(
      code(chain, renter, [post(1, start - RECEIPT_CLOCK_SLACK_MS - 1n)]),
      'RECEIPT_OUTSIDE_LEASE',
    );
    const nextTime = chain.time + chain.step(chain.height + 1n);
    assert.equal(code(chain, renter, [post(2, nextTime + RECEIPT_CLOCK_SLACK_MS)]), 'RECEIPT_OUTSIDE_LEASE');
    assert.equal(code(chain, renter, [post(3, start - RECEIPT_CLOCK_SLACK_MS)]), null);
    // The renter closes the lease; a job that ran before the close is still rated afterwards.
    chain.block();
    chain.block([chain.tx(renter, [{ type: 'closeLease', leaseId }])]);
    const closed = lease(chain, leaseId).closedTime;
    assert.equal(
      code(chain, renter, [post(4, closed + RECEIPT_CLOCK_SLACK_MS, 1n)]),
      'RECEIPT_OUTSIDE_LEASE',
      'a job said to end after the close',
    );
    chain.block([chain.tx(renter, [post(5, start + MINUTE)])]);
    assert.equal(getProviderRecord(chain.state, provider.address).jobsReceipted, 1n);
    // ... for receiptWindowMs after the close, not after.
    chain.step = () => DEFAULT_MARKET_PARAMS.receiptWindowMs;
    chain.block();
    assert.equal(code(chain, renter, [post(6, start + MINUTE)]), 'LEASE_CLOSED');
  });

  test('attack: a provider inflates its record through a second account on a lease closed in its opening block', () => {
    const chain = setup();
    const offerId = createOffer(chain, [idA], { minHours: 1 });
    const sybil = key('market-sybil');
    chain.block([
      chain.tx(provider, [
        { type: 'transfer', to: sybil.address, amount: 10n * UNC, memo: new Uint8Array() },
      ]),
    ]);
    // The lease id is predictable (the lease counter), so one transaction opens and closes it.
    const leaseId = nextId(new StateOverlay(chain.state), CHAIN, 'lease');
    chain.block([
      chain.tx(sybil, [leaseAction(chain, offerId, { chipId: idA }), { type: 'closeLease', leaseId }]),
    ]);
    const l = lease(chain, leaseId);
    assert.equal(l.status, LeaseStatus.closed);
    assert.equal(l.paid, 0n, 'the lease paid nothing');
    // Receipts its own chip signs for made-up jobs, claimed at the lease's very moment or later.
    for (const at of [l.startTime, chain.time, l.startTime - 1_000n]) {
      const receipts = Array.from(
        { length: 64 },
        (_, i): Action => ({
          type: 'postReceipt',
          signed: sign(chipA, { ...receiptFor(leaseId, idA, i, at), durationMs: 0n }),
          rating: 5,
        }),
      );
      assert.equal(code(chain, sybil, receipts), 'RECEIPT_OUTSIDE_LEASE');
    }
    const rec = getProviderRecord(chain.state, provider.address);
    assert.equal(rec.jobsReceipted, 0n);
    assert.equal(rec.ratingsSum, 0n);
  });

  function signedRequest(leaseId: Uint8Array, time: bigint, n: number, by: Key = renter) {
    const request = {
      chainId: CHAIN,
      leaseId,
      method: 'POST',
      path: '/v1/jobs',
      bodyHash: sha256(utf8(`body ${n}`)),
      timestampMs: time,
      nonce: BigInt(n),
    };
    return { request, signature: ed25519Sign(by.seed, jobRequestDigest(request)) };
  }
  const dispute = (signed: ReturnType<typeof signedRequest>, reason = 'no answer after 60 s'): Action => ({
    type: 'dispute',
    signed,
    reason,
  });

  test('the renter records unanswered requests it signed as disputes, once each, after the response wait', () => {
    const chain = setup();
    const offerId = createOffer(chain, [idA]);
    const leaseId = openLease(chain, offerId, 2);
    const signed = signedRequest(leaseId, chain.time, 1);
    assert.equal(code(chain, provider, [dispute(signed)]), 'NOT_RENTER');
    assert.equal(code(chain, renter, [dispute(signed, ' ')]), 'BAD_REASON');
    // The provider has disputeWaitMs (block time) to answer.
    assert.equal(code(chain, renter, [dispute(signed)]), 'DISPUTE_TOO_EARLY');
    nextBlockAt(chain, signed.request.timestampMs + WAIT - MINUTE);
    assert.equal(chain.time + chain.step(chain.height + 1n), signed.request.timestampMs + WAIT - MINUTE);
    assert.equal(code(chain, renter, [dispute(signed)]), 'DISPUTE_TOO_EARLY');
    nextBlockAt(chain, signed.request.timestampMs + WAIT);
    const events = chain.block([chain.tx(renter, [dispute(signed)])]);
    const recorded = find(events, 'disputeRecorded');
    assert.equal(recorded.reason, 'no answer after 60 s');
    assert.deepEqual(recorded.requestHash, jobRequestDigest(signed.request), 'bound to the signed request');
    assert.equal(code(chain, renter, [dispute(signed)]), 'DISPUTE_REPLAYED');
    assert.equal(getProviderRecord(chain.state, provider.address).disputes, 1n);
    assert.equal(lease(chain, leaseId).disputes, 1);
  });

  // Each dispute leaves its replay mark (0x0C 0x03) in the state until its lease's posting window
  // has passed after its close (pruneMarks), as a receipt does: on a
  // lease of its own chip at one base unit an hour, a provider's second account added one per wait
  // (12 an hour per chip, for as long as the lease runs) for the per-action fee alone.
  test('a dispute, whose replay mark stays, burns like a receipt (100 per-action fees)', () => {
    const chain = setup();
    const offerId = createOffer(chain, [idA]);
    const leaseId = openLease(chain, offerId, 2);
    const signed = signedRequest(leaseId, chain.time, 1);
    nextBlockAt(chain, signed.request.timestampMs + WAIT);
    const before = getAccount(chain.state, renter.address).balance;
    const tx = chain.tx(renter, [dispute(signed)]);
    const events = chain.block([tx]);
    find(events, 'disputeRecorded');
    const paid = before - getAccount(chain.state, renter.address).balance;
    assert.equal(paid, tx.stx.tx.fee + LEASE_BURN);
    const fee = find(events, 'fee');
    assert.equal(fee.burned, tx.stx.tx.fee - tx.stx.tx.fee / 2n + LEASE_BURN);
  });

  test('attack: dispute spam — only signed requests, on a lease kept through the wait, at most a bounded number', () => {
    const chain = setup();
    const offerId = createOffer(chain, [idA, idB]);
    const leaseId = openLease(chain, offerId, 2, 0n, idA);
    const t = chain.time;
    nextBlockAt(chain, t + WAIT);
    // A request nobody signed, or signed by another key than the lease's renter key.
    const forged = { ...signedRequest(leaseId, t, 1), signature: new Uint8Array(64) };
    assert.equal(code(chain, renter, [dispute(forged)]), 'BAD_REQUEST_SIGNATURE');
    assert.equal(
      code(chain, renter, [dispute(signedRequest(leaseId, t, 2, key('x')))]),
      'BAD_REQUEST_SIGNATURE',
    );
    // A signed request of another chain, or from before the lease began.
    const foreign = signedRequest(leaseId, t, 3);
    foreign.request.chainId = 'other-chain';
    assert.equal(code(chain, renter, [dispute(foreign)]), 'WRONG_CHAIN');
    assert.equal(
      code(chain, renter, [dispute(signedRequest(leaseId, t - 1n - MINUTE, 4))]),
      'REQUEST_OUTSIDE_LEASE',
    );
    // One per wait of lease time kept so far, however many requests went unanswered.
    chain.block([chain.tx(renter, [dispute(signedRequest(leaseId, t, 100))])]);
    assert.equal(code(chain, renter, [dispute(signedRequest(leaseId, t, 101))]), 'TOO_MANY_DISPUTES');
    nextBlockAt(chain, t + 2n * WAIT);
    chain.block([chain.tx(renter, [dispute(signedRequest(leaseId, t, 101))])]);
    assert.equal(lease(chain, leaseId).disputes, 2);
    // A lease its renter closed before the wait was over records no dispute at all.
    const tiny = openLease(chain, offerId, 1, 0n, idB);
    const tinyStart = chain.time;
    chain.block([chain.tx(renter, [{ type: 'closeLease', leaseId: tiny }])]);
    nextBlockAt(chain, tinyStart + WAIT);
    assert.equal(code(chain, renter, [dispute(signedRequest(tiny, tinyStart, 1))]), 'LEASE_TOO_SHORT');
    assert.equal(getProviderRecord(chain.state, provider.address).disputes, 2n);
  });

  test('attack: a stranger buries an idle rival with disputes in the transaction that opens and closes its lease', () => {
    const chain = setup();
    const offerId = createOffer(chain, [idA], { minHours: 1 });
    const mallory = key('market-mallory');
    chain.block([
      chain.tx(other, [{ type: 'transfer', to: mallory.address, amount: 10n * UNC, memo: new Uint8Array() }]),
    ]);
    const burst = (leaseId: Uint8Array, at: bigint, from = 0, length = 16) =>
      Array.from({ length }, (_, i) => dispute(signedRequest(leaseId, at, from + i, mallory), 'no answer'));
    // One transaction: open, 16 disputes "made" in this very block, close (deposit back whole).
    const leaseId = nextId(new StateOverlay(chain.state), CHAIN, 'lease');
    const t = chain.time + chain.step(chain.height + 1n);
    const open: Action = leaseAction(chain, offerId, { chipId: idA });
    assert.equal(
      code(chain, mallory, [open, ...burst(leaseId, t), { type: 'closeLease', leaseId }]),
      'DISPUTE_TOO_EARLY',
    );
    // Opened and closed at once, then disputed once the wait has passed: it never ran.
    chain.block([chain.tx(mallory, [open, { type: 'closeLease', leaseId }])]);
    nextBlockAt(chain, t + WAIT);
    assert.equal(code(chain, mallory, burst(leaseId, t)), 'REQUEST_OUTSIDE_LEASE');
    assert.equal(getProviderRecord(chain.state, provider.address).disputes, 0n);
    // Kept through the wait, the disputes count, but the lease time is paid (to the provider).
    const before = getAccount(chain.state, mallory.address).balance;
    const kept = find(chain.block([chain.tx(mallory, [open])]), 'leaseOpened').leaseId;
    const keptStart = chain.time;
    nextBlockAt(chain, keptStart + WAIT);
    // ...and only one per wait kept: 16 in one transaction are refused whole.
    assert.equal(
      code(chain, mallory, [...burst(kept, keptStart, 100), { type: 'closeLease', leaseId: kept }]),
      'TOO_MANY_DISPUTES',
    );
    chain.block([
      chain.tx(mallory, [...burst(kept, keptStart, 100, 1), { type: 'closeLease', leaseId: kept }]),
    ]);
    assert.equal(getProviderRecord(chain.state, provider.address).disputes, 1n);
    const l = lease(chain, kept);
    assert.ok(l.closedTime - l.startTime >= WAIT);
    assert.ok(l.paid >= costThrough(l.pricePerHour, 0n, WAIT), 'the disputes cost the wait in lease time');
    assert.ok(before - getAccount(chain.state, mallory.address).balance >= l.paid);
  });

  test('genesis: an optional market section sets the dispute wait and the receipt window (absent: the defaults, not written)', () => {
    const plain = parseGenesis(genesisToJson(genesis()));
    assert.equal(plain.market, undefined);
    const defaults = new MarketChain(plain);
    assert.equal(defaults.state.get(MARKET_PARAMS_KEY), undefined, 'defaults are not written');
    assert.deepEqual(getMarketParams(defaults.state), DEFAULT_MARKET_PARAMS);
    const json = genesisToJson(
      genesis(undefined, { market: { disputeWaitMs: 60_000n, receiptWindowMs: HOUR_MS } }),
    );
    assert.deepEqual(json.market, { disputeWaitMs: 60_000, receiptWindowMs: 3_600_000 });
    const parsed = parseGenesis(json);
    assert.deepEqual(parsed.market, { disputeWaitMs: 60_000n, receiptWindowMs: HOUR_MS });
    assert.deepEqual(parseGenesis({ ...json, market: { disputeWaitMs: 10_000 } }).market, {
      ...DEFAULT_MARKET_PARAMS,
      disputeWaitMs: 10_000n,
    });
    // No wait at all would let one transaction open, dispute and close again.
    // A window shorter than the wait: a request made just before a provider's close (notice 0)
    // could never be disputed (the window after the close ends before the wait does).
    for (const market of [
      { disputeWaitMs: 0 },
      { receiptWindowMs: 0 },
      { disputeWaitMs: '5' },
      { disputeWaitMs: 2 * 3_600_000, receiptWindowMs: 60_000 },
    ])
      assert.throws(() => parseGenesis({ ...json, market }), /market/);
    // A chain with a one-minute wait takes the dispute one minute after the request.
    const chain = setup(MINUTE, true, parsed);
    const offerId = createOffer(chain, [idA]);
    const leaseId = openLease(chain, offerId, 2);
    const signed = signedRequest(leaseId, chain.time, 1);
    chain.block([chain.tx(renter, [dispute(signed)])]);
    assert.equal(lease(chain, leaseId).disputes, 1);
  });

  test('a request in the last wait of a lease its renter kept to its booked end is still disputed', () => {
    const chain = setup();
    const offerId = createOffer(chain, [idA]);
    const leaseId = openLease(chain, offerId, 1);
    const end = lease(chain, leaseId).endTime;
    // Made a minute before the end: no wait is left inside the lease, yet the renter paid all of it.
    const late = signedRequest(leaseId, end - MINUTE, 1);
    nextBlockAt(chain, end - MINUTE + WAIT);
    chain.block([chain.tx(renter, [dispute(late)])]);
    assert.equal(getProviderRecord(chain.state, provider.address).disputes, 1n);
    // A renter that closes before its booked end must still have kept the lease through the wait.
    const early = openLease(chain, offerId, 2);
    const t = chain.time;
    chain.block();
    chain.block([chain.tx(renter, [{ type: 'closeLease', leaseId: early }])]);
    nextBlockAt(chain, t + WAIT);
    assert.equal(code(chain, renter, [dispute(signedRequest(early, t, 2))]), 'LEASE_TOO_SHORT');
  });

  test('a provider cannot escape a dispute by closing the lease during the wait', () => {
    const chain = setup();
    const offerId = createOffer(chain, [idA], { noticeMs: 0n });
    const leaseId = openLease(chain, offerId, 2);
    const signed = signedRequest(leaseId, chain.time, 1);
    chain.block([chain.tx(provider, [{ type: 'closeLease', leaseId }])]);
    nextBlockAt(chain, signed.request.timestampMs + WAIT);
    assert.ok(chain.time >= leaseEndsAt(lease(chain, leaseId)), 'the provider ended the lease');
    chain.block([chain.tx(renter, [dispute(signed)])]);
    assert.equal(getProviderRecord(chain.state, provider.address).disputes, 1n);
  });

  /** The lease time its renter kept (and paid for) by block time `t`, restated from the rule. */
  function keptMs(l: Lease, t: bigint, wait: bigint): bigint {
    let until = l.startTime + BigInt(l.hours) * HOUR_MS;
    if (escrowUntil(l) < until) until = escrowUntil(l);
    if (l.status === LeaseStatus.closed && l.closedReason === 'renterClosed' && l.closedTime < until)
      until = l.closedTime;
    // Cut short by the provider: one wait past its actual end, no more.
    let ran = escrowUntil(l) < l.endTime ? escrowUntil(l) : l.endTime;
    if (l.status === LeaseStatus.closed && l.closedTime < ran) ran = l.closedTime;
    if (ran + wait < until) until = ran + wait;
    if (t < until) until = t;
    return until > l.startTime ? until - l.startTime : 0n;
  }
  /** One dispute per wait kept, at least one. */
  const allowanceOf = (l: Lease, t: bigint, wait: bigint) => {
    const n = keptMs(l, t, wait) / wait;
    return n > 1n ? n : 1n;
  };

  /**
   * Tries `tx` in a scratch next block: null when it applies, else its refusal's code, after
   * checking that the refusal left the block's state exactly as it was.
   */
  function refusal(chain: MarketChain, tx: TxEnvelope): string | null {
    const ex = new BlockExecutor(chain.state, {
      chainId: CHAIN,
      height: chain.height + 1n,
      time: chain.time + chain.step(chain.height + 1n),
      proposer: validator.publicKey,
      prevHash: chain.hashOf(chain.height),
      prevBeacon: chain.beaconOf(chain.height),
      beacon: chain.beaconOf(chain.height + 1n),
    });
    const writes = () =>
      ex.overlay
        .changes()
        .map(
          (w) =>
            `${Buffer.from(w.key).toString('hex')}=${w.value ? Buffer.from(w.value).toString('hex') : '-'}`,
        )
        .join(',');
    const before = writes();
    const r = ex.tryApply(tx);
    if (!(r instanceof ValidationError)) return null;
    assert.equal(writes(), before, `the refused transaction (${r.code}) changed the state`);
    return r.code;
  }

  test('attack: a stranger rents a low-priced chip for the wait and files dispute after dispute: one per wait of rent', () => {
    const chain = setup();
    // 1000 base units an hour: the wait costs next to nothing.
    const offerId = createOffer(chain, [idA], { pricePerHour: 1_000n, minHours: 0 });
    const mallory = key('market-mallory');
    chain.block([
      chain.tx(other, [{ type: 'transfer', to: mallory.address, amount: 10n * UNC, memo: new Uint8Array() }]),
    ]);
    const opened = chain.block([
      chain.tx(mallory, [
        {
          type: 'openLease',
          offerId,
          chipId: idA,
          hours: 1,
          deposit: 0n,
          maxPricePerHour: 1_000n,
          termsDigest: terms(chain, offerId),
        },
      ]),
    ]);
    const leaseId = find(opened, 'leaseOpened').leaseId;
    const start = lease(chain, leaseId).startTime;
    const burst = (from: number, n: number) =>
      Array.from({ length: n }, (_, i) =>
        dispute(signedRequest(leaseId, start, from + i, mallory), 'no answer'),
      );
    nextBlockAt(chain, start + WAIT);
    // Before: 16 in this transaction, and 16 more on every lease kept through a wait.
    assert.equal(refusal(chain, chain.tx(mallory, burst(0, 16))), 'TOO_MANY_DISPUTES');
    chain.block([chain.tx(mallory, burst(0, 1))]);
    for (let i = 1; i < 4; i++) {
      assert.equal(refusal(chain, chain.tx(mallory, burst(16 * i, 16))), 'TOO_MANY_DISPUTES');
      assert.equal(refusal(chain, chain.tx(mallory, burst(16 * i, 1))), 'TOO_MANY_DISPUTES');
    }
    assert.equal(lease(chain, leaseId).disputes, 1);
    assert.equal(getProviderRecord(chain.state, provider.address).disputes, 1n);
    // The next one needs the next wait of rent.
    nextBlockAt(chain, start + 2n * WAIT);
    assert.equal(refusal(chain, chain.tx(mallory, burst(100, 2))), 'TOO_MANY_DISPUTES');
    chain.block([chain.tx(mallory, burst(100, 1))]);
    assert.equal(getProviderRecord(chain.state, provider.address).disputes, 2n);
  });

  test('an honest renter of a failing provider gains a dispute per wait it keeps the lease, however long', () => {
    const chain = setup();
    const offerId = createOffer(chain, [idA]);
    const leaseId = openLease(chain, offerId, 2);
    const start = lease(chain, leaseId).startTime;
    const unanswered = (from: number, n: number) =>
      Array.from({ length: n }, (_, i) =>
        dispute(signedRequest(leaseId, start + BigInt(i) * MINUTE, from + i)),
      );
    // An hour kept: twelve 5-minute waits, twelve disputes (in one transaction), not a thirteenth.
    nextBlockAt(chain, start + HOUR_MS);
    chain.block([chain.tx(renter, unanswered(0, 12))]);
    assert.equal(refusal(chain, chain.tx(renter, unanswered(12, 1))), 'TOO_MANY_DISPUTES');
    // Kept (and paid) to its booked end, disputed within the window after it: 24 in all, then no more.
    nextBlockAt(chain, start + 2n * HOUR_MS + 10n * MINUTE);
    chain.block([chain.tx(renter, unanswered(12, 12))]);
    assert.equal(refusal(chain, chain.tx(renter, unanswered(24, 1))), 'TOO_MANY_DISPUTES');
    assert.equal(lease(chain, leaseId).disputes, 24);
    assert.equal(getProviderRecord(chain.state, provider.address).disputes, 24n);
  });

  test('attack: a renter whose lease the provider cut short gains no disputes past one wait after its end, for no rent', () => {
    const chain = setup();
    const offerId = createOffer(chain, [idA], { noticeMs: 0n });
    // Ten hours booked and deposited: all but what it runs comes back to the renter.
    const leaseId = openLease(chain, offerId, 10);
    const start = lease(chain, leaseId).startTime;
    const unanswered = (from: number, n: number) =>
      Array.from({ length: n }, (_, i) => dispute(signedRequest(leaseId, start, from + i)));
    // The provider closes it after ten minutes (a renter burying it in disputes, a repricing).
    nextBlockAt(chain, start + 10n * MINUTE);
    chain.block([chain.tx(provider, [{ type: 'closeLease', leaseId }])]);
    const end = leaseEndsAt(lease(chain, leaseId));
    assert.ok(end <= start + 11n * MINUTE);
    // Its requests stay disputable, one per wait up to one wait past the end...
    const allowed = (end + WAIT - start) / WAIT;
    nextBlockAt(chain, end + WAIT);
    chain.block([chain.tx(renter, unanswered(0, Number(allowed)))]);
    assert.equal(code(chain, renter, [dispute(signedRequest(leaseId, start, 99))]), 'TOO_MANY_DISPUTES');
    // ...but waiting out the posting window earns none: the lease no longer runs, nor is paid for.
    nextBlockAt(chain, start + 2n * HOUR_MS);
    assert.equal(code(chain, renter, unanswered(100, 1)), 'TOO_MANY_DISPUTES');
    assert.equal(lease(chain, leaseId).disputes, Number(allowed));
    const l = lease(chain, leaseId);
    assert.equal(disputeAllowance(l, chain.time, WAIT), allowed);
  });

  // CONSENSUS CHANGE (docs/jobs.md "Replay marks are pruned"): a closed lease's receipt and dispute
  // marks leave the state once its posting window has passed; a replay is then refused by the window.
  test('the replay marks of a closed lease are pruned after its posting window; a replay is still refused', () => {
    const chain = setup();
    const offerId = createOffer(chain, [idA]);
    const leaseId = openLease(chain, offerId, 2);
    const start = lease(chain, leaseId).startTime;
    const receipt = sign(chipA, receiptFor(leaseId, idA, 1, start + 1_000n));
    const post: Action = { type: 'postReceipt', signed: receipt, rating: 5 };
    const signed = signedRequest(leaseId, chain.time, 1);
    nextBlockAt(chain, signed.request.timestampMs + WAIT);
    chain.block([chain.tx(renter, [post, dispute(signed)])]);
    const receiptMark = taggedHash('UNC/receipt-once', leaseId, receipt.receipt.jobId);
    const disputeMark = disputeId(leaseId, jobRequestDigest(signed.request));
    assert.ok(hasMark(chain.state, 'receipt', receiptMark));
    assert.ok(hasMark(chain.state, 'dispute', disputeMark));
    assert.equal(markCount(chain.state, leaseId), 2);
    chain.block([chain.tx(renter, [{ type: 'closeLease', leaseId }])]);
    const closed = lease(chain, leaseId).closedTime;
    // Up to the window's last moment the marks stay (a replay there is refused by them).
    nextBlockAt(chain, closed + DEFAULT_MARKET_PARAMS.receiptWindowMs);
    assert.equal(code(chain, renter, [post]), 'RECEIPT_REPLAYED');
    assert.equal(code(chain, renter, [dispute(signed)]), 'DISPUTE_REPLAYED');
    chain.block();
    assert.ok(hasMark(chain.state, 'receipt', receiptMark), 'kept through the window');
    chain.block();
    assert.ok(chain.time > closed + DEFAULT_MARKET_PARAMS.receiptWindowMs);
    assert.equal(hasMark(chain.state, 'receipt', receiptMark), false, 'receipt mark pruned');
    assert.equal(hasMark(chain.state, 'dispute', disputeMark), false, 'dispute mark pruned');
    assert.equal(markCount(chain.state, leaseId), 0);
    const left = [...chain.state.map.values()].filter(
      (w) => w.key[0] === 0x0c && w.key[1] >= 0x0a && w.key[1] <= 0x0d,
    );
    assert.deepEqual(left, [], 'no list, count or queue entry left');
    // The replays: refused by the posting window, nothing recorded.
    assert.equal(code(chain, renter, [post]), 'LEASE_CLOSED');
    assert.equal(code(chain, renter, [dispute(signed)]), 'LEASE_CLOSED');
    const rec = getProviderRecord(chain.state, provider.address);
    assert.equal(rec.jobsReceipted, 1n);
    assert.equal(rec.disputes, 1n);
  });

  test('property: pruning replay marks changes no result of any later action or settlement (only the pruned keys differ)', () => {
    const wait = MINUTE;
    const g = genesis(undefined, { market: { disputeWaitMs: wait, receiptWindowMs: 10n * MINUTE } });
    type Op =
      | { op: 'wait'; blocks: number }
      | { op: 'receipt'; job: number }
      | { op: 'dispute'; n: number }
      | { op: 'close' };
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ op: fc.constant('wait' as const), blocks: fc.integer({ min: 1, max: 8 }) }),
      fc.record({ op: fc.constant('receipt' as const), job: fc.integer({ min: 0, max: 3 }) }),
      fc.record({ op: fc.constant('dispute' as const), n: fc.integer({ min: 0, max: 3 }) }),
      fc.constant({ op: 'close' as const }),
    );
    // The marks and their lists, counts and queue: what pruning removes, and all it may change.
    const markSpace = (k: Uint8Array) =>
      k[0] === 0x0c && [0x02, 0x03, 0x0a, 0x0b, 0x0c, 0x0d].includes(k[1]!);
    // Without pruning: the prune queue is dropped after every block, before the next can read it
    // (an entry is due no sooner than its lease's window after the block that queued it).
    const unqueue = (c: MarketChain) => {
      for (const [id, w] of c.state.map)
        if (w.key[0] === 0x0c && (w.key[1] === 0x0c || w.key[1] === 0x0d)) c.state.map.delete(id);
    };
    const marks = (c: MarketChain) =>
      [...c.state.map.values()].filter((w) => w.key[0] === 0x0c && (w.key[1] === 0x02 || w.key[1] === 0x03))
        .length;
    let prunedRuns = 0;
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 24 }), (ops) => {
        const chains = [setup(MINUTE, true, g), setup(MINUTE, true, g)] as const;
        const [pruned, kept] = chains;
        const leaseIds = chains.map((c) => openLease(c, createOffer(c, [idA]), 1));
        assert.deepEqual(leaseIds[0], leaseIds[1]);
        const leaseId = leaseIds[0]!;
        const start = lease(pruned, leaseId).startTime;
        for (const o of ops) {
          const outcomes = chains.map((c) => {
            const events: TxEvent[] = [];
            const refusals: (string | null)[] = [];
            const send = (actions: Action[]) => {
              const tx = c.tx(renter, actions);
              const why = c.try(tx)?.code ?? null;
              refusals.push(why);
              events.push(...c.block(why === null ? [tx] : []));
            };
            if (o.op === 'wait') for (let i = 0; i < o.blocks; i++) events.push(...c.block());
            else if (o.op === 'receipt')
              send([
                {
                  type: 'postReceipt',
                  signed: sign(chipA, receiptFor(leaseId, idA, o.job, start + 1_000n)),
                  rating: 4,
                },
              ]);
            else if (o.op === 'dispute')
              send([dispute(signedRequest(leaseId, start + BigInt(o.n) * 1_000n, o.n))]);
            else send([{ type: 'closeLease', leaseId }]);
            events.push(...c.blockEvents.splice(0));
            if (c === kept) unqueue(c);
            return { events, refusals };
          });
          assert.deepEqual(outcomes[0], outcomes[1], `op ${JSON.stringify(o)}`);
        }
        const rest = (c: MarketChain) =>
          [...c.state.map.values()]
            .filter((w) => !markSpace(w.key))
            .map((w) => `${toHex(w.key)}=${toHex(w.value!)}`)
            .sort();
        assert.deepEqual(rest(pruned), rest(kept), 'the states differ only in the pruned keys');
        assert.ok(marks(pruned) <= marks(kept));
        if (marks(pruned) < marks(kept)) prunedRuns++;
      }),
      { numRuns: 25, seed: 7 },
    );
    assert.ok(prunedRuns > 0, 'some runs pruned marks (the property was exercised)');
  });

  test('pruning is bounded per block and drains a backlog in key order', () => {
    const s = new StateOverlay(new MemoryState());
    const ids = [sha256(utf8('lease a')), sha256(utf8('lease b'))];
    for (const id of ids) {
      for (let i = 0; i < 200; i++) markOnce(s, 'receipt', id, sha256(utf8(`${toHex(id)} ${i}`)));
      scheduleMarkPrune(s, id, 1_000n);
    }
    assert.equal(pruneMarks(s, 1_000n), 0, 'not before the window has passed');
    assert.equal(pruneMarks(s, 1_001n), MARK_PRUNE_PER_BLOCK - 1, 'a lease of 200 and its entry, then 55');
    assert.equal(markCount(s, ids[0]!), 0);
    assert.equal(markCount(s, ids[1]!), 200 - (MARK_PRUNE_PER_BLOCK - 1 - 200));
    assert.equal(pruneMarks(s, 1_001n), 200 - (MARK_PRUNE_PER_BLOCK - 1 - 200));
    assert.equal(pruneMarks(s, 1_001n), 0);
    assert.equal(markCount(s, ids[1]!), 0);
    assert.deepEqual(
      s.changes().filter((w) => w.value !== null),
      [],
      'every mark, list entry, count and queue entry gone',
    );
  });

  test('property: a lease records at most one dispute per wait of lease time kept; a refused dispute changes nothing', () => {
    const wait = 2n * MINUTE;
    const g = genesis(undefined, { market: { disputeWaitMs: wait, receiptWindowMs: HOUR_MS } });
    type Op =
      | { op: 'wait'; blocks: number }
      | { op: 'dispute'; n: number; back: number }
      | { op: 'close' }
      | { op: 'providerClose' };
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ op: fc.constant('wait' as const), blocks: fc.integer({ min: 1, max: 12 }) }),
      fc.record({
        op: fc.constant('dispute' as const),
        n: fc.integer({ min: 1, max: 6 }),
        // Made this many minutes before the latest request the wait allows (some before the lease).
        back: fc.integer({ min: 0, max: 20 }),
      }),
      fc.constant({ op: 'close' as const }),
      // The provider cuts it short (its notice is 3 minutes): the renter gains no rent-free allowance.
      fc.constant({ op: 'providerClose' as const }),
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 2 }),
        fc.integer({ min: 1, max: 1000 }),
        fc.array(opArb, { minLength: 1, maxLength: 12 }),
        (hours, share, ops) => {
          const chain = setup(MINUTE, true, g);
          const offerId = createOffer(chain, [idA], { minHours: 0, maxHours: 2, noticeMs: 3n * MINUTE });
          // Below 500‰ pay-as-you-go: the escrow runs out before the booked end.
          const full = PRICE * BigInt(hours);
          const deposit = share < 500 ? (full * BigInt(share)) / 500n + 1n : full;
          const leaseId = openLease(chain, offerId, hours, deposit, idA);
          let nonce = 0;
          for (const o of ops) {
            if (o.op === 'wait') {
              for (let i = 0; i < o.blocks; i++) chain.block();
            } else if (o.op === 'close') {
              const close = chain.tx(renter, [{ type: 'closeLease', leaseId }]);
              chain.block(refusal(chain, close) === null ? [close] : []);
            } else if (o.op === 'providerClose') {
              const close = chain.tx(provider, [{ type: 'closeLease', leaseId }]);
              chain.block(refusal(chain, close) === null ? [close] : []);
            } else {
              const at = chain.time + chain.step(chain.height + 1n);
              const requestMs = at - wait - BigInt(o.back) * MINUTE;
              const tx = chain.tx(
                renter,
                Array.from({ length: o.n }, () => dispute(signedRequest(leaseId, requestMs, nonce++))),
              );
              const before = lease(chain, leaseId);
              const allowed = allowanceOf(before, at, wait);
              assert.equal(disputeAllowance(before, at, wait), allowed);
              const why = refusal(chain, tx);
              if (why === null) {
                assert.ok(BigInt(before.disputes + o.n) <= allowed, 'recorded past the allowance');
                chain.block([tx]);
              } else {
                if (why === 'TOO_MANY_DISPUTES') assert.ok(BigInt(before.disputes + o.n) > allowed);
                chain.block();
              }
            }
            const l = lease(chain, leaseId);
            assert.ok(BigInt(l.disputes) <= allowanceOf(l, chain.time, wait));
            assert.equal(getProviderRecord(chain.state, provider.address).disputes, BigInt(l.disputes));
          }
        },
      ),
      { numRuns: 15 },
    );
  });
});

describe('market: encoding', () => {
  test('actions and events round-trip through the canonical codec', () => {
    const actions: Action[] = [
      offerAction([idA]),
      { type: 'closeOffer', offerId: idA },
      { type: 'withdrawOfferChip', offerId: idA, chipId: idB },
      {
        type: 'openLease',
        offerId: idA,
        chipId: null,
        hours: 3,
        deposit: 7n,
        maxPricePerHour: PRICE,
        termsDigest: TERMS,
      },
      {
        type: 'openLease',
        offerId: idA,
        chipId: idB,
        hours: 3,
        deposit: 0n,
        maxPricePerHour: PRICE,
        termsDigest: TERMS,
      },
      { type: 'topUpLease', leaseId: idA, amount: 1n },
      { type: 'closeLease', leaseId: idA },
      {
        type: 'dispute',
        signed: {
          request: {
            chainId: CHAIN,
            leaseId: idA,
            method: 'POST',
            path: '/v1/jobs?wait=1',
            bodyHash: idB,
            timestampMs: 5n,
            nonce: 7n,
          },
          signature: new Uint8Array(64).fill(3),
        },
        reason: 'x',
      },
      { type: 'updateOfferTls', offerId: idA, fingerprints: [TLS_A, TLS_B] },
    ];
    const tags = [10, 11, 18, 12, 12, 13, 14, 16, 17];
    actions.forEach((a, i) => {
      const bytes = encode(actionCodec, a);
      assert.equal(bytes[0], tags[i]);
      assert.deepEqual(decode(actionCodec, bytes), a);
    });
    const e: TxEvent = {
      type: 'leaseSettled',
      leaseId: idA,
      chipId: idB,
      fromTime: 1n,
      toTime: 2n,
      cost: 3n,
      paid: 2n,
      refunded: 1n,
      answered: 2,
      missed: 1,
      remaining: 9n,
    };
    assert.deepEqual(decode(txEventCodec, encode(txEventCodec, e)), e);
  });

  test('TLS fingerprints are laid out as docs/encoding.md says; the encoding without them is refused', () => {
    const u32 = (n: number) => Uint8Array.of(n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255);
    const cat = (...parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => [...p]));
    // tag 17 UpdateOfferTls { offerId: bytes32, fingerprints: list(≤2) of bytes32 }
    assert.deepEqual(
      encode(actionCodec, { type: 'updateOfferTls', offerId: idA, fingerprints: [TLS_A, TLS_B] }),
      cat(Uint8Array.of(17), idA, u32(2), TLS_A, TLS_B),
    );
    // CreateOffer: tlsFingerprints is the last field, after the attributes.
    const offer = encode(actionCodec, offerAction([idA], { tlsFingerprints: [TLS_A] }));
    assert.deepEqual(offer.subarray(offer.length - 36), cat(u32(1), TLS_A));
    // An offer encoded before the field existed (no trailing list) does not decode as an empty list.
    assert.throws(() => decode(actionCodec, offer.subarray(0, offer.length - 36)), /tlsFingerprints/);
  });

  test('OpenLease ends with the signed maxPricePerHour (u128) and termsDigest (bytes32); an encoding without them is refused', () => {
    const u32 = (n: number) => Uint8Array.of(n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255);
    const u128 = (v: bigint) =>
      Uint8Array.from({ length: 16 }, (_, i) => Number((v >> BigInt(8 * (15 - i))) & 255n));
    const cat = (...parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => [...p]));
    // tag 12 OpenLease { offerId: bytes32, chipId: option(bytes32), hours: u32, deposit: u128, maxPricePerHour: u128, termsDigest: bytes32 }
    const bytes = encode(actionCodec, {
      type: 'openLease',
      offerId: idA,
      chipId: null,
      hours: 3,
      deposit: 7n,
      maxPricePerHour: PRICE,
      termsDigest: TERMS,
    });
    assert.deepEqual(
      bytes,
      cat(Uint8Array.of(12), idA, Uint8Array.of(0), u32(3), u128(7n), u128(PRICE), TERMS),
    );
    // A lease signed before the fields existed (no price bound, no terms) is not read with defaults.
    assert.throws(() => decode(actionCodec, bytes.subarray(0, bytes.length - 32)));
    assert.throws(() => decode(actionCodec, bytes.subarray(0, bytes.length - 48)));
  });
});

describe('market: properties', () => {
  test('property: cost split is exact and never pays more than the cost', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: 10n ** 30n }),
        fc.nat(16),
        fc.nat(16),
        fc.boolean(),
        (cost, a, m, online) => {
          const { paid, refunded } = slaSplit(cost, a, m, online);
          assert.equal(paid + refunded, cost);
          assert.ok(paid >= 0n && refunded >= 0n);
          if (m === 0 && a > 0) assert.equal(paid, cost);
        },
      ),
    );
  });

  test('property: costs telescope: settling in any number of pieces draws the same total', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 1n, max: 10n ** 24n }),
        fc.array(fc.bigInt({ min: 0n, max: 10n * HOUR_MS }), { maxLength: 20 }),
        (price, cuts) => {
          const points = [...cuts].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
          let drawn = 0n;
          let prev = 0n;
          for (const t of points) {
            drawn += costThrough(price, 0n, t) - costThrough(price, 0n, prev);
            prev = t;
          }
          assert.equal(drawn, costThrough(price, 0n, prev));
        },
      ),
    );
  });

  test('property: re-registrations between leases: no pay for an undecided period unless proven online, every unit conserved', () => {
    type Op = { op: 'wait'; blocks: number } | { op: 'reregister' } | { op: 'reopen'; hours: number };
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ op: fc.constant('wait' as const), blocks: fc.integer({ min: 1, max: 30 }) }),
      fc.constant({ op: 'reregister' as const }),
      fc.record({ op: fc.constant('reopen' as const), hours: fc.integer({ min: 1, max: 3 }) }),
    );
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 8 }), fc.nat(255), (ops, missMask) => {
        const chain = setup();
        chain.skip = (_c, e, s) => ((missMask >> Number((e * 4n + BigInt(s)) % 8n)) & 1) === 1;
        const offerId = createOffer(chain, [idA], { minHours: 0, maxHours: 3 });
        openLease(chain, offerId, 3);
        const proven = () => hasProvenOnline(getChip(chain.state, idA) ?? ({ lastAnsweredAt: 0n } as never));
        // Every block: a settlement without a decided slot pays only if the chip was proven online
        // before the block (block-start settlement) or after it (a close after the block's answers).
        const step = (txs: TxEnvelope[] = []) => {
          const wasProven = proven();
          const [e0, b0] = [chain.events.length, chain.blockEvents.length];
          chain.block(txs);
          for (const e of [...chain.blockEvents.slice(b0), ...chain.events.slice(e0)]) {
            if (e.type !== 'leaseSettled') continue;
            assert.equal(e.paid + e.refunded, e.cost);
            if (e.answered + e.missed === 0 && e.paid > 0n)
              assert.ok(wasProven || proven(), 'paid an undecided period of a chip that never answered');
          }
          checkInvariants(chain);
        };
        for (const o of ops) {
          if (o.op === 'wait') for (let i = 0; i < o.blocks; i++) step();
          else if (o.op === 'reregister') {
            const txs = [chain.tx(provider, [{ type: 'deregisterChip', chipId: idA }])];
            let refusal = chain.try(txs[0]!);
            // A chip its lease binds is not deregistered: the renter gives it back first.
            const current = getChipMarket(chain.state, idA).leaseId;
            if (refusal?.code === 'CHIP_LEASED' && current) {
              step([chain.tx(renter, [{ type: 'closeLease', leaseId: current }])]);
              txs[0] = chain.tx(provider, [{ type: 'deregisterChip', chipId: idA }]);
              refusal = chain.try(txs[0]);
            }
            if (!refusal) step(txs);
            for (
              let i = 0;
              i < 60 && effectiveStatus(chain.state, getChip(chain.state, idA)!, null).status !== 'active';
              i++
            ) {
              const again = chain.tx(provider, [registerAction(chain, chipA, provider.address)]);
              if (chain.try(again)) step();
              else step([again]);
            }
          } else {
            const current = getChipMarket(chain.state, idA).leaseId;
            if (current) {
              const close = chain.tx(renter, [{ type: 'closeLease', leaseId: current }]);
              if (!chain.try(close)) step([close]);
            }
            const open = chain.tx(renter, [leaseAction(chain, offerId, { chipId: idA, hours: o.hours })]);
            const refusal = chain.try(open);
            if (refusal) assert.equal(refusal.code, 'CHIP_UNAVAILABLE');
            else step([open]);
          }
        }
        // Run everything out: every deposit is paid or refunded to the base unit.
        for (let i = 0; i < 240; i++) step();
        for (const l of allLeases(chain)) {
          assert.equal(l.status, LeaseStatus.closed);
          assert.equal(l.paid + l.refunded, l.deposited);
        }
      }),
      { numRuns: 12 },
    );
  });

  test('property: random lease histories conserve every base unit', () => {
    type Op =
      | { op: 'open'; chip: 0 | 1; hours: number; extra: bigint; share: number }
      | { op: 'topUp'; chip: 0 | 1; amount: bigint }
      | { op: 'renterClose'; chip: 0 | 1 }
      | { op: 'providerClose'; chip: 0 | 1 }
      | { op: 'closeOffer' }
      | { op: 'withdraw'; chip: 0 | 1 }
      | { op: 'wait'; blocks: number };
    const chipIdx = fc.constantFrom<0 | 1>(0, 1);
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      fc.record({
        op: fc.constant('open' as const),
        chip: chipIdx,
        hours: fc.integer({ min: 1, max: 3 }),
        extra: fc.bigInt({ min: 0n, max: 10n ** 18n }),
        // Pay-as-you-go: this share (per mille) of price × hours, so escrows run out mid-lease.
        share: fc.integer({ min: 1, max: 1000 }),
      }),
      fc.record({
        op: fc.constant('topUp' as const),
        chip: chipIdx,
        amount: fc.bigInt({ min: 1n, max: 10n ** 18n }),
      }),
      fc.record({ op: fc.constant('renterClose' as const), chip: chipIdx }),
      fc.record({ op: fc.constant('providerClose' as const), chip: chipIdx }),
      fc.constant({ op: 'closeOffer' as const }),
      fc.record({ op: fc.constant('withdraw' as const), chip: chipIdx }),
      fc.record({ op: fc.constant('wait' as const), blocks: fc.integer({ min: 1, max: 40 }) }),
    );
    fc.assert(
      fc.property(
        fc.array(opArb, { minLength: 1, maxLength: 14 }),
        fc.bigInt({ min: 1n, max: 5n * 10n ** 18n }),
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 20, max: 120 }),
        (ops, price, missMask, stepSeconds) => {
          const chain = setup(BigInt(stepSeconds) * 1000n);
          // Which slots go unanswered: a per-run pattern over (epoch, slot).
          chain.skip = (_c, e, s) => ((missMask >> Number((e * 4n + BigInt(s)) % 8n)) & 1) === 1;
          const offerTerms = { pricePerHour: price, minHours: 0, maxHours: 3, noticeMs: 7n * MINUTE };
          let offerId = createOffer(chain, [idA, idB], offerTerms);
          const ids = [idA, idB];
          const deposits = new Map<string, bigint>();
          for (const o of ops) {
            const chipId = ids[o.op === 'closeOffer' || o.op === 'wait' ? 0 : o.chip]!;
            const current = getChipMarket(chain.state, chipId).leaseId;
            let txs: TxEnvelope[] = [];
            if (o.op === 'open') {
              const full = price * BigInt(o.hours);
              const deposit = o.share < 500 ? (full * BigInt(o.share)) / 500n + 1n : full + o.extra;
              txs = [
                chain.tx(renter, [
                  {
                    type: 'openLease',
                    offerId,
                    chipId,
                    hours: o.hours,
                    deposit,
                    maxPricePerHour: price,
                    termsDigest: terms(chain, offerId),
                  },
                ]),
              ];
            } else if (o.op === 'topUp' && current) {
              txs = [chain.tx(renter, [{ type: 'topUpLease', leaseId: current, amount: o.amount }])];
            } else if (o.op === 'renterClose' && current) {
              txs = [chain.tx(renter, [{ type: 'closeLease', leaseId: current }])];
            } else if (o.op === 'providerClose' && current) {
              txs = [chain.tx(provider, [{ type: 'closeLease', leaseId: current }])];
            } else if (o.op === 'closeOffer') {
              txs = [chain.tx(provider, [{ type: 'closeOffer', offerId }])];
            } else if (o.op === 'withdraw') {
              txs = [chain.tx(provider, [{ type: 'withdrawOfferChip', offerId, chipId }])];
            }
            const refusal = txs[0] ? chain.try(txs[0]) : null;
            if (refusal) {
              chain.block();
            } else {
              const events = chain.block(txs);
              for (const e of events) {
                if (e.type === 'leaseOpened') deposits.set(Buffer.from(e.leaseId).toString('hex'), e.deposit);
                if (e.type === 'leaseToppedUp') {
                  const k = Buffer.from(e.leaseId).toString('hex');
                  deposits.set(k, deposits.get(k)! + e.amount);
                }
                if (e.type === 'offerClosed') {
                  offerId = createOffer(chain, [idA, idB], offerTerms);
                }
              }
            }
            if (o.op === 'wait') chain.blocksUntil(chain.height + BigInt(o.blocks));
            checkInvariants(chain);
          }
          // Run every lease out, then each one's deposits are exactly paid + refunded.
          chain.blocksUntil(chain.height + (4n * 3600n) / BigInt(stepSeconds) + 40n);
          checkInvariants(chain);
          for (const l of allLeases(chain)) {
            assert.equal(l.status, LeaseStatus.closed);
            assert.equal(l.deposited, deposits.get(Buffer.from(l.id).toString('hex')));
            assert.equal(l.paid + l.refunded, l.deposited);
            assert.ok(l.accrued <= costThrough(l.pricePerHour, l.startTime, l.endTime));
            if (l.closedReason === 'escrowExhausted') {
              // Paid to exactly the moment the escrow ran out: all of it drawn, nothing past it.
              assert.equal(l.settledTime, escrowUntil(l));
              assert.equal(l.accrued, l.deposited);
            }
          }
          assert.equal(
            listItems(chain.state, { tag: 1, scope: new Uint8Array(0) }).length,
            0,
            'no active lease left',
          );
          // Every held challenge decided: its queue entries and its lease's tally are gone.
          for (const { key: k, value } of chain.state.map.values())
            if (value && k[0] === StateSpace.marketIndex)
              assert.ok(k[1] !== 0x07 && k[1] !== 0x08 && k[1] !== 0x09, `held key ${toHex(k)} left`);
        },
      ),
      { numRuns: 25 },
    );
  });
});

describe('market: admission refuses what would fail in the block for free', () => {
  /** The next block's opening state, as a node's mempool builds it, and a context that counts consent checks. */
  function nextBlock(chain: MarketChain) {
    const ex = new BlockExecutor(chain.state, {
      chainId: CHAIN,
      height: chain.height + 1n,
      time: chain.time + MINUTE,
      proposer: validator.publicKey,
      prevHash: chain.hashOf(chain.height),
      prevBeacon: chain.beaconOf(chain.height),
      beacon: chain.beaconOf(chain.height + 1n),
    });
    const counter = { costly: 0 };
    return { ex, counter, ctx: { ...ex.ctx, onCostlyCheck: () => counter.costly++ } };
  }

  function costlyRefusal(chain: MarketChain, actions: Action[]): { code: string | null; costly: number } {
    const { ex, ctx, counter } = nextBlock(chain);
    try {
      checkCostlyActions(ex.overlay, ctx, provider.address, chain.tx(provider, actions).stx.tx);
      return { code: null, costly: counter.costly };
    } catch (err) {
      assert.ok(err instanceof ValidationError);
      return { code: err.code, costly: counter.costly };
    }
  }

  test('attack: a chip leased without notice is not moved unless the sender ends the lease first (closeLease, closeOffer), in the transaction or pending before it', () => {
    // Admitted as "the sender may close the lease first", a bare transfer or deregistration of
    // such a chip failed in the block with CHIP_LEASED, paying nothing, for block space.
    const chain = setup();
    const offerId = createOffer(chain, [idB], { noticeMs: 0n });
    const leaseId = openLease(chain, offerId, 2, 0n, idB);
    const { ex, ctx } = nextBlock(chain);
    const move = transferAction(chain, chipB, buyer.address);
    const dereg: Action = { type: 'deregisterChip', chipId: idB };
    const screen = (a: Action, earlier?: Action[]) =>
      chipActionRefusal(ex.overlay, ctx.time, provider.address, a, earlier)?.code ?? null;
    assert.equal(screen(move, []), 'CHIP_LEASED');
    assert.equal(screen(dereg, []), 'CHIP_LEASED');
    // What the block says of each: the same.
    assert.equal(code(chain, provider, [move]), 'CHIP_LEASED');
    assert.equal(code(chain, provider, [dereg]), 'CHIP_LEASED');
    for (const ends of [
      { type: 'closeLease', leaseId },
      { type: 'closeOffer', offerId },
    ] as Action[]) {
      assert.equal(screen(move, [ends]), null);
      assert.equal(screen(dereg, [ends]), null);
    }
    // Another lease's or offer's close ends nothing here.
    const other = createOffer(chain, [idA], { noticeMs: 0n });
    assert.equal(screen(move, [{ type: 'closeOffer', offerId: other }]), 'CHIP_LEASED');
    assert.equal(screen(move, [{ type: 'closeLease', leaseId: offerId }]), 'CHIP_LEASED');
    // Unknown earlier actions (not given): left to the block, as before.
    assert.equal(screen(move), null);
  });

  test('attack: a transfer held back by rewards not final yet is refused before its consent is checked, as the block refuses it', () => {
    // The block refused it (CHIP_REWARDS_PENDING) only after the consent's check, and for free.
    const chain = setup();
    const p = getPociParams(chain.state);
    // The first blocks of an epoch: the chip answered in the last one, which is not final yet.
    chain.blocksUntil((epochOf(chain.height, p) + 2n) * p.epochBlocks + 1n);
    const move = transferAction(chain, chipA, buyer.address);
    assert.equal(code(chain, provider, [move]), 'CHIP_REWARDS_PENDING');
    assert.deepEqual(costlyRefusal(chain, [move]), { code: 'CHIP_REWARDS_PENDING', costly: 0 });
    // Once final, both let it through (its consent checked once here).
    while (code(chain, provider, [move]) === 'CHIP_REWARDS_PENDING') chain.block();
    assert.deepEqual(costlyRefusal(chain, [transferAction(chain, chipA, buyer.address)]), {
      code: null,
      costly: 1,
    });
  });

  test('attack: a registration again held back by rewards not final yet is refused at admission, as the block refuses it', () => {
    const chain = setup();
    const p = getPociParams(chain.state);
    chain.blocksUntil((epochOf(chain.height, p) + 2n) * p.epochBlocks - 2n);
    chain.block([chain.tx(provider, [{ type: 'deregisterChip', chipId: idA }])]);
    const again = registerAction(chain, chipA, provider.address);
    assert.equal(code(chain, provider, [again]), 'CHIP_REWARDS_PENDING');
    assert.equal(
      costlyRefusal(chain, [registerAction(chain, chipA, provider.address)]).code,
      'CHIP_REWARDS_PENDING',
    );
  });
});

describe('market: the challenges of a closed lease’s last answer window', () => {
  for (const answers of [true, false]) {
    test(`attack: a challenge still open when the lease closes counts for it once its window closes (${answers ? 'answered: paid' : 'missed: refunded'})`, () => {
      // Judged at the close, a challenge drawn in the lease's last W blocks whose window was still
      // open counted for nobody: a chip could go silent for the last window of every lease.
      const chain = setup();
      const p = getPociParams(chain.state);
      const offerId = createOffer(chain, [idA], { noticeMs: 0n });
      const leaseId = openLease(chain, offerId, 2, 0n, idA);
      const opened = chain.height;
      const drawnAtHead = () => slotsOf(chain, chipA, epochOf(chain.height, p)).indexOf(chain.height);
      do chain.block();
      while (
        drawnAtHead() < 0 ||
        epochOf(chain.height + p.answerWindowBlocks + 2n, p) !== epochOf(chain.height, p)
      );
      const h = chain.height;
      const slot = drawnAtHead();
      const epoch = epochOf(h, p);
      chain.skip = (chip, e, s) => !answers && chip === chipA && e === epoch && s === slot;
      // The renter's close comes before the chip's answer in the block: the challenge is open then.
      const events = chain.block([chain.tx(renter, [{ type: 'closeLease', leaseId }])]);
      assert.equal(find(events, 'leaseClosed').reason, 'renterClosed');
      chain.blocksUntil(chain.height + p.answerWindowBlocks);
      const l = lease(chain, leaseId);
      let judged = 0;
      for (let e = epochOf(opened, p); e <= epoch; e++)
        judged += slotsOf(chain, chipA, e).filter((x) => x >= opened && x <= h).length;
      assert.equal(l.slotsAnswered + l.slotsMissed, BigInt(judged), 'every challenge drawn while it ran');
      assert.equal(l.slotsMissed, answers ? 0n : 1n);
      assert.equal(l.remaining, 0n, 'all of the escrow is paid out once the last window has closed');
      assert.equal(l.paid + l.refunded, l.deposited);
      if (!answers) assert.ok(l.refunded > 0n, 'the missed challenge refunds its share');
      checkInvariants(chain);
    });
  }
});

describe('market: one chip withdrawn from an open offer', () => {
  test('encoding: tag 18, offer id then chip id', () => {
    const bytes = encode(actionCodec, { type: 'withdrawOfferChip', offerId: idA, chipId: idB });
    assert.deepEqual([...bytes], [18, ...idA, ...idB]);
  });

  test('a free chip leaves at once: no lease takes it, it may move or be offered anew; the rest of the offer runs on', () => {
    const chain = setup();
    const offerId = createOffer(chain, [idA, idB], { minHours: 0 });
    chain.block([chain.tx(provider, [{ type: 'withdrawOfferChip', offerId, chipId: idA }])]);
    assert.deepEqual(getOffer(chain.state, offerId)!.chipIds, [idB]);
    assert.equal(getChipMarket(chain.state, idA).offerId, null);
    assert.equal(code(chain, renter, [leaseAction(chain, offerId, { chipId: idA })]), 'CHIP_NOT_OFFERED');
    const leaseId = openLease(chain, offerId, 1);
    assert.deepEqual(lease(chain, leaseId).chipId, idB, 'any chip: the one left');
    // No lease binds it: it may move, or go into another offer.
    assert.notEqual(code(chain, provider, [transferAction(chain, chipA, buyer.address)]), 'CHIP_LEASED');
    createOffer(chain, [idA]);
    checkInvariants(chain);
  });

  test('a leased chip gets the offer’s notice, ends its lease then, and is not leased again; the other chips are untouched', () => {
    const chain = setup();
    const offerId = createOffer(chain, [idA, idB], { minHours: 0, noticeMs: 10n * MINUTE });
    const leaseA = openLease(chain, offerId, 2, 0n, idA);
    const leaseB = openLease(chain, offerId, 2, 0n, idB);
    const signedBefore = leaseAction(chain, offerId, { chipId: idA, deposit: 1n });
    const events = chain.block([chain.tx(provider, [{ type: 'withdrawOfferChip', offerId, chipId: idA }])]);
    const closing = find(events, 'leaseClosing');
    assert.deepEqual(closing.leaseId, leaseA);
    assert.equal(closing.reason, 'chipWithdrawn');
    assert.equal(closing.endTime, chain.time + 10n * MINUTE, 'the offer’s notice');
    assert.equal(lease(chain, leaseB).status, LeaseStatus.active, 'the other chip’s lease runs on');
    assert.equal(code(chain, provider, [transferAction(chain, chipA, buyer.address)]), 'CHIP_LEASED');
    while (lease(chain, leaseA).status !== LeaseStatus.closed) chain.block();
    assert.equal(lease(chain, leaseA).closedReason, 'chipWithdrawn');
    assert.equal(getChipMarket(chain.state, idA).leaseId, null);
    assert.equal(code(chain, renter, [signedBefore]), 'OFFER_CHANGED');
    assert.equal(
      code(chain, renter, [leaseAction(chain, offerId, { chipId: idA, deposit: 1n })]),
      'CHIP_NOT_OFFERED',
    );
    assert.notEqual(code(chain, provider, [transferAction(chain, chipA, buyer.address)]), 'CHIP_LEASED');
    assert.equal(lease(chain, leaseB).status, LeaseStatus.active);
    checkInvariants(chain);
  });

  test('every withdrawal says so in an event (tag 22), a free chip’s too, which moves nothing else', () => {
    const chain = setup();
    const offerId = createOffer(chain, [idA, idB], { minHours: 0 });
    const events = chain.block([chain.tx(provider, [{ type: 'withdrawOfferChip', offerId, chipId: idA }])]);
    const e = find(events, 'offerChipWithdrawn');
    assert.deepEqual(e.offerId, offerId);
    assert.deepEqual(e.chipId, idA);
    assert.deepEqual(e.provider, provider.address);
    const bytes = encode(txEventCodec, e);
    assert.equal(bytes[0], 22);
    assert.deepEqual(decode(txEventCodec, bytes), e);
  });

  test('attack: a withdrawal of an offer’s last chip ends no lease, so the transfer after it is refused at admission, not after its consent', () => {
    // LAST_OFFER_CHIP fails the whole transaction in the block, paying nothing: admitted as "the
    // withdrawal ends the lease first", the transfer's consent was checked by every node for free.
    const chain = setup();
    const offerId = createOffer(chain, [idB], { noticeMs: 0n });
    openLease(chain, offerId, 2, 0n, idB);
    const withdraw: Action = { type: 'withdrawOfferChip', offerId, chipId: idB };
    const move = transferAction(chain, chipB, buyer.address);
    assert.equal(code(chain, provider, [withdraw, move]), 'LAST_OFFER_CHIP');
    const ex = new BlockExecutor(chain.state, {
      chainId: CHAIN,
      height: chain.height + 1n,
      time: chain.time + MINUTE,
      proposer: validator.publicKey,
      prevHash: chain.hashOf(chain.height),
      prevBeacon: chain.beaconOf(chain.height),
      beacon: chain.beaconOf(chain.height + 1n),
    });
    assert.equal(
      chipActionRefusal(ex.overlay, ex.ctx.time, provider.address, move, [withdraw])?.code,
      'CHIP_LEASED',
    );
    // closeOffer does end it: that one is let through.
    assert.equal(
      chipActionRefusal(ex.overlay, ex.ctx.time, provider.address, move, [{ type: 'closeOffer', offerId }]),
      null,
    );
  });

  test('attack: a former owner’s withdrawal from its old offer touches neither the new owner’s offer nor its lease', () => {
    const chain = setup();
    const old = createOffer(chain, [idA, idB], { noticeMs: 0n });
    // The chip goes to the renter (once its rewards are final), who offers it; the provider rents it.
    let move = chain.tx(provider, [transferAction(chain, chipA, renter.address)]);
    for (let i = 0; i < 200 && chain.try(move)?.code === 'CHIP_REWARDS_PENDING'; i++) {
      chain.block();
      move = chain.tx(provider, [transferAction(chain, chipA, renter.address)]);
    }
    chain.block([move]);
    assert.deepEqual(getChip(chain.state, idA)!.owner, renter.address);
    const mine = find(
      chain.block([chain.tx(renter, [offerAction([idA], { noticeMs: 0n })])]),
      'offerCreated',
    ).offerId;
    const leaseId = find(
      chain.block([chain.tx(provider, [{ ...leaseAction(chain, mine, { chipId: idA }) }])]),
      'leaseOpened',
    ).leaseId;
    chain.block([chain.tx(provider, [{ type: 'withdrawOfferChip', offerId: old, chipId: idA }])]);
    assert.deepEqual(getOffer(chain.state, old)!.chipIds, [idB]);
    assert.deepEqual(getChipMarket(chain.state, idA).offerId, mine, 'the new owner’s offer keeps it');
    assert.deepEqual(getChipMarket(chain.state, idA).leaseId, leaseId);
    assert.equal(lease(chain, leaseId).status, LeaseStatus.active, 'its lease runs on');
    checkInvariants(chain);
  });

  test('without notice the lease ends in the withdrawal’s transaction, and the chip may move in it', () => {
    const chain = setup();
    const offerId = createOffer(chain, [idA, idB], { noticeMs: 0n });
    const leaseA = openLease(chain, offerId, 2, 0n, idA);
    const withdraw: Action = { type: 'withdrawOfferChip', offerId, chipId: idA };
    const move = transferAction(chain, chipA, buyer.address);
    const ex = new BlockExecutor(chain.state, {
      chainId: CHAIN,
      height: chain.height + 1n,
      time: chain.time + MINUTE,
      proposer: validator.publicKey,
      prevHash: chain.hashOf(chain.height),
      prevBeacon: chain.beaconOf(chain.height),
      beacon: chain.beaconOf(chain.height + 1n),
    });
    assert.equal(chipActionRefusal(ex.overlay, ex.ctx.time, provider.address, move, [withdraw]), null);
    const otherChip: Action = { type: 'withdrawOfferChip', offerId, chipId: idB };
    assert.equal(
      chipActionRefusal(ex.overlay, ex.ctx.time, provider.address, move, [otherChip])?.code,
      'CHIP_LEASED',
    );
    chain.block([chain.tx(provider, [withdraw])]);
    assert.equal(lease(chain, leaseA).status, LeaseStatus.closed);
    assert.equal(lease(chain, leaseA).closedReason, 'chipWithdrawn');
    checkInvariants(chain);
  });

  test('refusals change nothing and say why', () => {
    const chain = setup();
    const offerId = createOffer(chain, [idA, idB]);
    const w = (chipId: Uint8Array, id = offerId): Action => ({
      type: 'withdrawOfferChip',
      offerId: id,
      chipId,
    });
    assert.equal(code(chain, renter, [w(idA)]), 'NOT_PROVIDER');
    assert.equal(code(chain, provider, [w(sha256(utf8('no such chip')))]), 'CHIP_NOT_OFFERED');
    assert.equal(code(chain, provider, [w(idA, sha256(utf8('no such offer')))]), 'UNKNOWN_OFFER');
    assert.equal(code(chain, provider, [w(idA), w(idA)]), 'CHIP_NOT_OFFERED');
    assert.equal(code(chain, provider, [w(idA), w(idB)]), 'LAST_OFFER_CHIP');
    // A closed offer stays in state only if it ever opened a lease (one that never did is deleted
    // at its close: aud-bloat-offers), so the offer is leased before it closes.
    openLease(chain, offerId, 2, 0n, idB);
    chain.block([chain.tx(provider, [{ type: 'closeOffer', offerId }])]);
    assert.equal(code(chain, provider, [w(idA)]), 'OFFER_CLOSED');
    assert.deepEqual(getOffer(chain.state, offerId)!.chipIds, [idA, idB]);
    const neverLeased = createOffer(chain, [idA]);
    chain.block([chain.tx(provider, [{ type: 'closeOffer', offerId: neverLeased }])]);
    assert.equal(code(chain, provider, [w(idA, neverLeased)]), 'UNKNOWN_OFFER', 'deleted at its close');
  });
});
